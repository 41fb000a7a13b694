import type { PublishCommand } from '@aws-sdk/client-sns';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '#shared/config';
import {
  announceSuggestion,
  buildSuggestionPublishInput,
  type OptimizerDeps,
  optimizerSettingsFromConfig,
  parseSlowQueryMessage,
  processSlowQueryBatch,
  suggestionTopicOf,
} from '#shared/optimizer';
import type { NewSuggestion, Suggestion } from '#shared/repository';
import { retryPendingAnnouncements } from '../../../shared/optimizer/optimize.ts';

const validBody = (overrides: Record<string, unknown> = {}) =>
  JSON.stringify({
    version: 1,
    target: 'nowhere',
    database: 'app',
    queryId: '42',
    fingerprint: 'fp',
    query: 'SELECT 1',
    calls: 10,
    totalExecTimeMs: 100,
    meanExecTimeMs: 10,
    stddevExecTimeMs: 1,
    rows: 10,
    sharedBlksHit: 1,
    sharedBlksRead: 1,
    tempBlksWritten: 0,
    intervalSeconds: 300,
    observedAt: '2026-11-27T10:00:00.000Z',
    findings: [],
    ...overrides,
  });

const INDEX: NewSuggestion = {
  target: 'primary',
  kind: 'create_index',
  key: 'create_index:public.orders:btree:customer_id::',
  ddl: 'CREATE INDEX CONCURRENTLY orders_customer_id_idx ON public.orders USING btree (customer_id);',
  payload: { table: 'public.orders', rationale: 'Serves 3 statements.' },
};

describe('parseSlowQueryMessage', () => {
  it('accepts a collector message', () => {
    // Act
    const message = parseSlowQueryMessage(validBody());
    // Assess
    expect(message).toMatchObject({ target: 'nowhere', queryId: '42', query: 'SELECT 1' });
  });

  it.each([
    ['not JSON', '{', 'not JSON'],
    ['a missing query', validBody({ query: undefined }), 'query'],
    ['a numeric queryId', validBody({ queryId: 42 }), 'queryId'],
    ['an unknown version', validBody({ version: 2 }), 'version'],
  ])('refuses %s, naming the field', (_name, body, field) => {
    // Act / Assess
    expect(() => parseSlowQueryMessage(body)).toThrow(
      expect.objectContaining({ code: 'MESSAGE_INVALID', message: expect.stringContaining(field) }),
    );
  });
});

describe('suggestion announcements', () => {
  it('builds a Publish input with kind, target and INFO severity attributes', () => {
    // Act
    const input = buildSuggestionPublishInput('arn:aws:sns:eu-west-1:1:t', 5, INDEX);
    // Assess
    expect(input).toMatchObject({
      TopicArn: 'arn:aws:sns:eu-west-1:1:t',
      Subject: 'dbopt primary: index suggested on public.orders',
      MessageAttributes: {
        kind: { DataType: 'String', StringValue: 'index_suggested' },
        target: { DataType: 'String', StringValue: 'primary' },
        severity: { DataType: 'String', StringValue: 'INFO' },
      },
    });
    expect(input.Message).toContain(INDEX.ddl);
    expect(input.Message).toContain('Serves 3 statements.');
    expect(input.Message).toContain('npx dbopt apply --suggestion 5');
  });

  it.each([
    ['rewrite', 'rewrite_suggested'],
    ['drop_index', 'index_unused'],
  ] as const)('marks a %s suggestion as %s', (kind, attribute) => {
    // Act
    const input = buildSuggestionPublishInput('arn:t', 1, { ...INDEX, kind });
    // Assess
    expect(input.MessageAttributes?.kind?.StringValue).toBe(attribute);
  });

  it('retries throttling and returns a permanent failure as data', async () => {
    // Prepare
    const errors = [
      Object.assign(new Error('slow down'), { name: 'ThrottledException' }),
      Object.assign(new Error('no such topic'), { name: 'NotFoundException' }),
    ];
    const sent: PublishCommand[] = [];
    const sleeps: number[] = [];
    const sns = {
      send: async (command: PublishCommand) => {
        sent.push(command);
        throw errors.shift();
      },
    };
    // Act
    const failure = await announceSuggestion(
      { sns, topicArn: 'arn:t', retries: 3, sleep: async (ms) => void sleeps.push(ms) },
      9,
      INDEX,
    );
    // Assess
    expect(sent).toHaveLength(2);
    expect(sleeps).toEqual([200]);
    expect(failure).toMatchObject({
      suggestionId: 9,
      attempts: 2,
      error: { name: 'NotFoundException' },
    });
  });

  it('resolves without a failure when the publish succeeds', async () => {
    // Prepare
    const sns = { send: async () => ({ MessageId: 'm' }) };
    // Act / Assess
    expect(
      await announceSuggestion(
        { sns, topicArn: 'arn:t', retries: 0, sleep: async () => {} },
        1,
        INDEX,
      ),
    ).toBe(undefined);
  });
});

describe('processSlowQueryBatch', () => {
  it('reports bad bodies and unknown targets as batch item failures, with a log naming why', async () => {
    // Prepare
    const logged: string[] = [];
    const deps = {
      databaseFor: () => undefined,
      logger: {
        info: () => {},
        debug: () => {},
        warn: () => {},
        error: (message: string) => void logged.push(message),
      },
    } as unknown as OptimizerDeps;
    // Act
    const result = await processSlowQueryBatch(deps, [
      { messageId: 'a', body: validBody({ findings: 'none' }) },
      { messageId: 'b', body: validBody() },
    ]);
    // Assess
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: 'a' }, { itemIdentifier: 'b' }]);
    expect(logged[0]).toContain('findings');
    expect(logged[1]).toContain('No database is configured for target "nowhere"');
  });
});

describe('announcements that failed in an earlier run', () => {
  const stored = (id: number, outcome: Record<string, unknown> | null, status = 'proposed') =>
    ({
      ...INDEX,
      id,
      status,
      outcome,
      createdAt: new Date(0),
      updatedAt: new Date(0),
    }) as Suggestion;

  it('retries pending ones, clears the mark on success and gives up after 5 runs', async () => {
    // Prepare
    const rows = [
      stored(1, { announcePending: { runs: 1 } }),
      stored(2, { announcePending: { runs: 4 } }),
      stored(3, { announcePending: { runs: 5 } }),
      stored(4, { announcePending: { runs: 1 } }, 'rejected'),
      stored(5, null),
    ];
    const saved: Array<{ id: number; status: string; outcome?: Record<string, unknown> }> = [];
    const published: string[] = [];
    const sns = {
      send: async (command: PublishCommand) => {
        const id = /Suggestion #(\d+)/.exec(command.input.Message ?? '')?.[1] ?? '?';
        published.push(id);
        if (id === '2') throw Object.assign(new Error('denied'), { name: 'AuthorizationError' });
        return { MessageId: 'm' };
      },
    };
    const deps = {
      announce: { sns, topicArn: 'arn:t', retries: 0, sleep: async () => {} },
      repository: {
        listSuggestions: async () => rows,
        setSuggestionStatus: async (
          id: number,
          status: string,
          outcome?: Record<string, unknown>,
        ) => void saved.push({ id, status, outcome }),
      },
      logger: { error: () => {} },
    } as unknown as Parameters<typeof retryPendingAnnouncements>[0];

    // Act
    const result = await retryPendingAnnouncements(deps, 'primary');

    // Assess
    expect(published).toEqual(['1', '2']);
    expect(result.announced).toBe(1);
    expect(result.failures.map((f) => f.suggestionId)).toEqual([2]);
    expect(saved).toEqual([
      { id: 1, status: 'proposed', outcome: {} },
      {
        id: 2,
        status: 'proposed',
        outcome: { announcePending: expect.objectContaining({ runs: 5, error: 'denied' }) },
      },
    ]);
  });

  it('cuts a message over the SNS size limit instead of failing to publish it', () => {
    // Prepare
    const huge = `SELECT ${'x, '.repeat(150_000)}1`;
    // Act
    const input = buildSuggestionPublishInput('arn:t', 3, {
      ...INDEX,
      kind: 'rewrite',
      ddl: null,
      payload: { rule: 'or_list', originalSql: huge, rewrittenSql: huge },
    });
    // Assess
    const bytes = Buffer.byteLength(input.Message ?? '', 'utf8');
    expect(bytes).toBeLessThan(256 * 1024 - 2_000);
    expect(input.Message).toContain('Suggestion #3');
    expect(input.Message).toContain('the full text is in the repository');
  });
});

describe('processSlowQueryBatch near the invocation deadline', () => {
  it.each([
    ['none left', -1_000, 0],
    ['less than the minimum budget', 10_000, 0],
    ['plenty', 600_000, 2],
  ])(
    'with %s, starts only the records there is time for; the rest are retried',
    async (_name, leftMs, started) => {
      // Prepare: every started record looks up its target (unknown here, so it fails fast)
      let lookups = 0;
      const warned: string[] = [];
      const deps = {
        databaseFor: () => {
          lookups++;
          return undefined;
        },
        logger: {
          info: () => {},
          debug: () => {},
          warn: (message: string) => void warned.push(message),
          error: () => {},
        },
      } as unknown as OptimizerDeps;
      // Act
      const result = await processSlowQueryBatch(
        deps,
        [
          { messageId: 'a', body: validBody() },
          { messageId: 'b', body: validBody() },
        ],
        { deadlineAtMs: Date.now() + leftMs },
      );
      // Assess
      expect(lookups).toBe(started);
      expect(result.batchItemFailures).toEqual([{ itemIdentifier: 'a' }, { itemIdentifier: 'b' }]);
      expect(result.results.map((r) => (r.error as { code?: string }).code)).toEqual(
        started === 0 ? ['NO_TIME_LEFT', 'NO_TIME_LEFT'] : ['UNKNOWN_TARGET', 'UNKNOWN_TARGET'],
      );
      expect(warned).toHaveLength(2 - started);
    },
  );
});

describe('optimizer configuration', () => {
  const base = { DATABASE_URL: 'postgres://u@h/db' };

  it('defaults: no auto-apply, limits, hygiene age, suggestions to the alert topic', () => {
    // Act
    const config = loadConfig({ ...base, ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:1:alerts' });
    // Assess
    expect(optimizerSettingsFromConfig(config)).toMatchObject({
      autoApply: false,
      hygieneMinIndexAgeDays: 7,
      workloadStatements: 50,
      applyLimits: { lockTimeoutMs: 5_000, maxIndexBytes: 1024 ** 3, maxBuildMs: 600_000 },
    });
    expect(suggestionTopicOf(config)).toBe('arn:aws:sns:us-east-1:1:alerts');
  });

  it('takes SUGGESTION_TOPIC_ARN over ALERT_TOPIC_ARN and parses ADVISOR_AUTO_APPLY', () => {
    // Act
    const config = loadConfig({
      ...base,
      ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:1:alerts',
      SUGGESTION_TOPIC_ARN: 'arn:aws:sns:us-east-1:1:suggestions',
      ADVISOR_AUTO_APPLY: 'true',
    });
    // Assess
    expect(suggestionTopicOf(config)).toBe('arn:aws:sns:us-east-1:1:suggestions');
    expect(config.ADVISOR_AUTO_APPLY).toBe(true);
  });

  it.each([
    ['APPLY_LOCK_TIMEOUT_MS', '0'],
    ['APPLY_MAX_INDEX_BYTES', 'big'],
    ['HYGIENE_MIN_INDEX_AGE_DAYS', '-1'],
    ['SUGGESTION_TOPIC_ARN', 'topic'],
    ['ADVISOR_AUTO_APPLY', 'maybe'],
  ])('refuses a bad %s', (key, value) => {
    // Act / Assess
    expect(() => loadConfig({ ...base, [key]: value })).toThrow(key);
  });
});
