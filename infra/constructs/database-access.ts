import { ArnFormat, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';
import type { DboptFunction } from './dbopt-function.ts';

/**
 * How a Lambda reaches PostgreSQL: through RDS Proxy, over TLS, with IAM authentication.
 * The `Database` construct provides it (managed mode); existing mode takes it from context.
 */
export interface DatabaseAccess {
  /** RDS Proxy endpoint host name. */
  readonly proxyEndpoint: string;
  /** Proxy resource id (`prx-…`): the resource part of the `rds-db:connect` ARN. */
  readonly proxyResourceId: string;
  readonly databaseName: string;
  /** @default 5432 */
  readonly port?: number;
  /** The proxy's security group (managed mode): callers get ingress on it. */
  readonly securityGroup?: ec2.ISecurityGroup;
}

/**
 * The writer endpoint of a cluster or instance, reached directly (not through the proxy): the
 * optimizer's EXPLAIN/HypoPG sessions pin connections, which RDS Proxy must not multiplex.
 */
export interface DirectDatabaseAccess {
  readonly endpoint: string;
  /** `cluster-…` (Aurora) or `db-…` (instance): the resource part of `rds-db:connect`. */
  readonly resourceId: string;
  readonly databaseName: string;
  /** @default 5432 */
  readonly port?: number;
  /** The database's security group (managed mode): callers get ingress on it. */
  readonly securityGroup?: ec2.ISecurityGroup;
}

/** A direct endpoint in the shape {@link databaseEnvironment} and the grants take. */
export const directAsAccess = (direct: DirectDatabaseAccess): DatabaseAccess => ({
  proxyEndpoint: direct.endpoint,
  proxyResourceId: direct.resourceId,
  databaseName: direct.databaseName,
  ...(direct.port === undefined ? {} : { port: direct.port }),
  ...(direct.securityGroup ? { securityGroup: direct.securityGroup } : {}),
});

/**
 * Everything `fn` needs to reach `access` as `dbUser`: egress on the port inside the VPC,
 * ingress on the target's security group (when the stack owns it) and `rds-db:connect` for
 * exactly that user.
 */
export const connectFunctionToDatabase = (
  fn: DboptFunction,
  access: DatabaseAccess,
  dbUser: string,
): void => {
  const port = ec2.Port.tcp(access.port ?? 5432);
  fn.allowEgressInVpc(port, 'PostgreSQL inside the VPC');
  if (access.securityGroup && fn.securityGroup) {
    access.securityGroup.addIngressRule(fn.securityGroup, port, `PostgreSQL from ${fn.node.path}`);
  }
  grantDatabaseConnect(fn, fn.role, access, dbUser);
};

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

/**
 * How a group of functions reaches every database target (the primary and each shard), as
 * which user: the environment `shared/config` reads, and the network path + IAM grant.
 */
export interface DatabaseConnection {
  /** Environment for `shared/config`: DB_* for the primary, SHARD_MAP/SHARD_URLS for shards. */
  environmentFor(dbUser: string): Record<string, string>;
  /** Lets `fn` connect as `dbUser` to every target. */
  connect(fn: DboptFunction, dbUser: string): void;
}

export interface ShardAccess {
  readonly name: string;
  readonly access: DatabaseAccess;
}

/**
 * Every target over TLS with IAM auth: the primary as DB_*, each shard as an entry of
 * SHARD_URLS (`postgresql://<user>@<host>:<port>/<db>`, TLS settings from DB_SSL_MODE) and
 * SHARD_MAP listing the shards in order.
 */
export const iamConnection = (
  scope: IConstruct,
  primary: DatabaseAccess,
  shards: readonly ShardAccess[] = [],
): DatabaseConnection => ({
  environmentFor: (dbUser) => ({
    ...databaseEnvironment(primary, dbUser),
    ...(shards.length === 0
      ? {}
      : {
          SHARD_MAP: JSON.stringify({ version: 1, shards: shards.map((s) => ({ name: s.name })) }),
          SHARD_URLS: Stack.of(scope).toJsonString(
            Object.fromEntries(
              shards.map((s) => [
                s.name,
                `postgresql://${encodeURIComponent(dbUser)}@${s.access.proxyEndpoint}:${
                  s.access.port ?? 5432
                }/${encodeURIComponent(s.access.databaseName)}`,
              ]),
            ),
          ),
        }),
  }),
  connect: (fn, dbUser) => {
    for (const access of [primary, ...shards.map((s) => s.access)]) {
      connectFunctionToDatabase(fn, access, dbUser);
    }
  },
});

/**
 * A plain connection string and no IAM (the LocalStack profile, where RDS is a paid
 * feature): the database runs wherever the user points it, reachable from the Lambda
 * containers. TLS is off because a local PostgreSQL rarely has a certificate.
 */
export const plainConnection = (databaseUrl: string): DatabaseConnection => ({
  environmentFor: () => ({
    DATABASE_URL: databaseUrl,
    DB_SSL_MODE: 'disable',
    DB_IAM_AUTH: 'false',
  }),
  connect: () => undefined,
});
