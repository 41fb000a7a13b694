/**
 * The repository's schema history. Append only: a released migration is never edited, a
 * change is a new version. Each runs in its own transaction together with its bookkeeping
 * row, so a failure leaves the schema at the previous version.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const REPOSITORY_SCHEMA = 'dbopt';

export const MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    version: 1,
    name: 'snapshots, metric history and alert state',
    sql: `
CREATE TABLE dbopt.snapshots (
  target text NOT NULL,
  kind text NOT NULL,
  taken_at timestamptz NOT NULL,
  stats_reset timestamptz,
  server_version_num integer NOT NULL,
  payload jsonb NOT NULL,
  PRIMARY KEY (target, kind)
);
COMMENT ON TABLE dbopt.snapshots IS 'Latest cumulative-counter snapshot per (target, kind); the next collection diffs against it';

CREATE TABLE dbopt.metric_history (
  target text NOT NULL,
  metric text NOT NULL,
  at timestamptz NOT NULL,
  value double precision NOT NULL,
  PRIMARY KEY (target, metric, at)
);
COMMENT ON TABLE dbopt.metric_history IS 'Per-interval metric values for trend analysis';

CREATE TABLE dbopt.alert_state (
  target text NOT NULL,
  kind text NOT NULL,
  severity text NOT NULL CHECK (severity IN ('WARNING', 'DEGRADED', 'CRITICAL')),
  opened_at timestamptz NOT NULL,
  last_sent_at timestamptz NOT NULL,
  summary text NOT NULL,
  PRIMARY KEY (target, kind)
);
COMMENT ON TABLE dbopt.alert_state IS 'Open alerts: deduplication, cooldown, escalation and resolution';
`,
  },
  {
    version: 2,
    name: 'suggestions',
    sql: `
CREATE TABLE dbopt.suggestions (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  target text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('create_index', 'drop_index', 'rewrite')),
  key text NOT NULL,
  ddl text,
  payload jsonb NOT NULL,
  status text NOT NULL DEFAULT 'proposed'
    CHECK (status IN ('proposed', 'applied', 'verified', 'rejected')),
  outcome jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (target, kind, key)
);
CREATE INDEX suggestions_status_target_idx ON dbopt.suggestions (status, target);
COMMENT ON TABLE dbopt.suggestions IS 'Advisor output: index, drop-index and rewrite suggestions with their lifecycle';
`,
  },
  {
    version: 3,
    name: 'metric history pruned by time',
    // collect-metrics prunes every minute (DELETE … WHERE at < $1): without this index that
    // is a sequential scan of the whole history, ~0.4 s and 90 MB of buffers at 3 targets ×
    // 30 metrics × 14 days, on the repository database (by default the watched primary).
    sql: `
CREATE INDEX metric_history_at_idx ON dbopt.metric_history (at);
`,
  },
  {
    version: 4,
    name: 'snapshot payloads in parts',
    // Through the RDS Data API a response is at most 1 MiB and a row at most 64 KB: a
    // 10k-statement snapshot (~1.1 MB of JSON) can be neither saved as one jsonb nor read back
    // in one row. Payloads over 60,000 bytes are stored as text parts here, and the snapshots
    // row keeps a small header naming their count and generation.
    sql: `
CREATE TABLE dbopt.snapshot_parts (
  target text NOT NULL,
  kind text NOT NULL,
  part integer NOT NULL CHECK (part >= 0),
  generation text NOT NULL,
  body text NOT NULL,
  PRIMARY KEY (target, kind, part)
);
COMMENT ON TABLE dbopt.snapshot_parts IS 'Large snapshot payloads (JSON text) split into parts of at most 60,000 bytes; dbopt.snapshots.payload names their count and generation';
`,
  },
]);
