import { AppError } from '#shared/errors';

/** One problem found in a shard map or a rebalance request, with the field it concerns. */
export interface ShardMapIssue {
  /** Dotted path of the offending field, e.g. `shards[1].name` or `change.add[0]`. */
  readonly field: string;
  readonly message: string;
}

const describeIssues = (heading: string, issues: readonly ShardMapIssue[]): string => {
  const fields = [...new Set(issues.map((i) => i.field))];
  const lines = issues.map((i) => `  ✖ ${i.field}: ${i.message}`);
  return `${heading} (${fields.join(', ')}):\n${lines.join('\n')}`;
};

/**
 * The shard map (the `SHARD_MAP` JSON from cdk.json context, or a config object) is not
 * valid. The message and `details.fields` name every bad field.
 */
export class ShardMapError extends AppError {
  readonly code = 'SHARD_MAP_INVALID';
  readonly issues: readonly ShardMapIssue[];

  constructor(issues: readonly ShardMapIssue[], options?: ErrorOptions) {
    super(describeIssues('Invalid shard map', issues), {
      ...options,
      details: { fields: [...new Set(issues.map((i) => i.field))], issues },
    });
    this.issues = Object.freeze([...issues]);
  }
}

/** A rebalance request cannot be applied to the current shard map (unknown or duplicate names). */
export class RebalancePlanError extends AppError {
  readonly code = 'REBALANCE_INVALID';
  readonly issues: readonly ShardMapIssue[];

  constructor(issues: readonly ShardMapIssue[], options?: ErrorOptions) {
    super(describeIssues('Invalid rebalance request', issues), {
      ...options,
      details: { fields: [...new Set(issues.map((i) => i.field))], issues },
    });
    this.issues = Object.freeze([...issues]);
  }
}
