import { ArnFormat, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';

/**
 * How a Lambda reaches PostgreSQL: through RDS Proxy, over TLS, with IAM authentication.
 * The seed takes these from CDK context; the future `Database` construct will provide them.
 */
export interface DatabaseAccess {
  /** RDS Proxy endpoint host name. */
  readonly proxyEndpoint: string;
  /** Proxy resource id (`prx-…`): the resource part of the `rds-db:connect` ARN. */
  readonly proxyResourceId: string;
  readonly databaseName: string;
  /** @default 5432 */
  readonly port?: number;
}

/** Amazon CA bundle (Amazon Root and RDS CAs) shipped in the Lambda Node.js runtime. */
export const LAMBDA_RUNTIME_CA_BUNDLE = '/var/runtime/ca-cert.pem';

/**
 * Environment for `shared/config` to connect as `dbUser`: TLS with host-name verification and
 * a fresh IAM token per connection (no password anywhere).
 */
export const databaseEnvironment = (
  access: DatabaseAccess,
  dbUser: string,
): Record<string, string> => ({
  DB_HOST: access.proxyEndpoint,
  DB_PORT: String(access.port ?? 5432),
  DB_NAME: access.databaseName,
  DB_USER: dbUser,
  DB_IAM_AUTH: 'true',
  DB_SSL_MODE: 'verify-full',
  // Since nodejs20.x the runtime no longer loads the Amazon CAs at start-up; this adds them to
  // Node's store. RDS Proxy presents an ACM certificate (Amazon Root CA, which Node already
  // trusts); instance and cluster endpoints present RDS CA certificates, which only this has.
  NODE_EXTRA_CA_CERTS: LAMBDA_RUNTIME_CA_BUNDLE,
});

/**
 * Allows `grantee` to sign IAM auth tokens for exactly one database user behind one proxy:
 * `arn:<partition>:rds-db:<region>:<account>:dbuser:<proxy-resource-id>/<db-user>`.
 */
export const grantDatabaseConnect = (
  scope: IConstruct,
  grantee: iam.IGrantable,
  access: DatabaseAccess,
  dbUser: string,
): iam.Grant =>
  iam.Grant.addToPrincipal({
    grantee,
    actions: ['rds-db:connect'],
    resourceArns: [
      Stack.of(scope).formatArn({
        service: 'rds-db',
        resource: 'dbuser',
        resourceName: `${access.proxyResourceId}/${dbUser}`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      }),
    ],
  });
