import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import type { ALERT_SEVERITIES } from '../config.ts';

/** Message attribute the alert publishers set; subscription filter policies match on it. */
export const SEVERITY_ATTRIBUTE = 'severity';

export interface AlertSubscription {
  readonly protocol: 'email' | 'https';
  readonly endpoint: string;
  /** @default every severity */
  readonly severities?: readonly (typeof ALERT_SEVERITIES)[number][];
}

export interface AlertsProps {
  readonly subscriptions: readonly AlertSubscription[];
  /**
   * Encrypt the topic with a customer managed KMS key.
   * @default true (false under LocalStack, where KMS-encrypted topics add nothing)
   */
  readonly encrypted?: boolean;
}

/**
 * Services that publish to the topic on their own: CloudWatch alarms, RDS event
 * subscriptions and EventBridge. They need the key (encrypted topic) and the topic policy.
 */
const PUBLISHING_SERVICES = [
  'cloudwatch.amazonaws.com',
  'events.rds.amazonaws.com',
  'events.amazonaws.com',
] as const;

/**
 * The alert topic: dbopt alerts and index suggestions (message attribute `severity`),
 * CloudWatch alarms and RDS events. Encrypted with a rotating customer managed key whose
 * policy lets the publishing services use it, TLS-only (enforceSSL).
 *
 * Filter policies: a subscription with `severities` receives dbopt messages of those
 * severities, plus every message WITHOUT the attribute (alarm and RDS event notifications
 * carry no message attributes), so nobody misses an alarm by filtering.
 */
export class Alerts extends Construct {
  readonly topic: sns.Topic;
  readonly key?: kms.Key;

  constructor(scope: Construct, id: string, props: AlertsProps) {
    super(scope, id);
    const account = Stack.of(this).account;
    const sameAccount = { StringEquals: { 'aws:SourceAccount': account } };

    if (props.encrypted ?? true) {
      this.key = new kms.Key(this, 'Key', {
        description: 'dbopt alert topic encryption',
        enableKeyRotation: true,
        rotationPeriod: Duration.days(365),
        removalPolicy: RemovalPolicy.RETAIN,
      });
      this.key.addToResourcePolicy(
        new iam.PolicyStatement({
          sid: 'AllowAlertPublishers',
          principals: PUBLISHING_SERVICES.map((s) => new iam.ServicePrincipal(s)),
          actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          // In a key policy "*" means this key.
          resources: ['*'],
          conditions: sameAccount,
        }),
      );
    }

    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'dbopt alerts',
      enforceSSL: true,
      ...(this.key ? { masterKey: this.key } : {}),
    });
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowAlertPublishers',
        principals: PUBLISHING_SERVICES.map((s) => new iam.ServicePrincipal(s)),
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: sameAccount,
      }),
    );

    for (const sub of props.subscriptions) {
      const filterPolicy = sub.severities
        ? {
            [SEVERITY_ATTRIBUTE]: new sns.SubscriptionFilter([
              ...sub.severities,
              { exists: false },
            ]),
          }
        : undefined;
      this.topic.addSubscription(
        sub.protocol === 'email'
          ? new subscriptions.EmailSubscription(sub.endpoint, { filterPolicy })
          : new subscriptions.UrlSubscription(sub.endpoint, {
              protocol: sns.SubscriptionProtocol.HTTPS,
              filterPolicy,
            }),
      );
    }
  }

  /**
   * sns:Publish on this topic, plus kms:GenerateDataKey and kms:Decrypt on its key (what
   * publishing to an encrypted topic needs), without the `GenerateDataKey*` wildcard that
   * `Topic.grantPublish` would add.
   */
  grantPublish(grantee: iam.IGrantable): void {
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['sns:Publish'],
      resourceArns: [this.topic.topicArn],
    });
    if (this.key) {
      iam.Grant.addToPrincipal({
        grantee,
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resourceArns: [this.key.keyArn],
      });
    }
  }
}
