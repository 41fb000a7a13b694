import { ArnFormat, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';

/**
 * EventBridge Scheduler as a principal, with the confused-deputy guard: only schedules of
 * this account's default schedule group may assume a role that trusts it.
 */
export const schedulerPrincipal = (scope: Construct): iam.ServicePrincipal => {
  const stack = Stack.of(scope);
  return new iam.ServicePrincipal('scheduler.amazonaws.com', {
    conditions: {
      StringEquals: {
        'aws:SourceAccount': stack.account,
        'aws:SourceArn': stack.formatArn({
          service: 'scheduler',
          resource: 'schedule-group',
          resourceName: 'default',
          arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
        }),
      },
    },
  });
};
