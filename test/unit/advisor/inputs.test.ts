import { describe, expect, it } from 'vitest';
import {
  AdvisorError,
  advisorDatabaseOptions,
  advisorOptionsFromConfig,
  DEFAULT_ADVISOR_OPTIONS,
  type IndexProposal,
  proposalKey,
  storeIndexProposals,
  workloadFromFile,
} from '#shared/advisor';
import { loadConfig } from '#shared/config';
import { ConfigError } from '#shared/errors';

describe('advisor config', () => {
  it('has defaults equal to DEFAULT_ADVISOR_OPTIONS', () => {
    // Act
    const options = advisorOptionsFromConfig(loadConfig({ DB_HOST: 'h' }));

    // Assess
    expect(options).toEqual(DEFAULT_ADVISOR_OPTIONS);
  });

  it.each([
    ['ADVISOR_MIN_IMPROVEMENT', '1.5'],
    ['ADVISOR_MAX_INDEXES', '0'],
    ['ADVISOR_USE_HYPOPG', 'sometimes'],
    ['ADVISOR_DATABASE_URL', 'mysql://x'],
  ])('rejects %s=%s naming the variable', (key, value) => {
    // Act
    const load = () => loadConfig({ DB_HOST: 'h', [key]: value });

    // Assess
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(key);
  });
});

describe('advisorDatabaseOptions', () => {
  it('uses ADVISOR_DATABASE_URL (the DB endpoint) when set, else the primary, with one connection', () => {
    // Act
    const primary = advisorDatabaseOptions(
      loadConfig({ DB_HOST: 'proxy.internal', DB_POOL_MAX: '4' }),
    );
    const direct = advisorDatabaseOptions(
      loadConfig({
        DB_HOST: 'proxy.internal',
        ADVISOR_DATABASE_URL: 'postgres://adv@db.internal:5432/app',
      }),
    );

    // Assess
    expect(primary).toMatchObject({ host: 'proxy.internal', poolMax: 1 });
    expect(primary.connectionString).toBeUndefined();
    expect(direct).toMatchObject({
      connectionString: 'postgres://adv@db.internal:5432/app',
      host: 'db.internal',
      database: 'app',
      poolMax: 1,
    });
    expect(direct.queryTimeoutMs).toBeGreaterThan(30_000);
  });
});

describe('workloadFromFile', () => {
  it('reads templates (weights, params, kind inferred by the parser when absent)', async () => {
    // Prepare
    const json = JSON.stringify({
      templates: [
        { id: 'S1', sql: 'SELECT 1 FROM t WHERE a = $1', params: [[1]], weight_per_hour: 5 },
        { id: 'W1', sql: 'UPDATE t SET a = $1', params: [[2]], weight_per_hour: 3 },
      ],
    });

    // Act
    const workload = await workloadFromFile(json);

    // Assess
    expect(workload).toEqual([
      {
        id: 'S1',
        sql: 'SELECT 1 FROM t WHERE a = $1',
        params: [[1]],
        weightPerHour: 5,
        kind: 'read',
      },
      { id: 'W1', sql: 'UPDATE t SET a = $1', params: [[2]], weightPerHour: 3, kind: 'write' },
    ]);
  });

  it.each([
    ['not JSON', '{oops', 'not valid JSON'],
    ['no templates', { templates: [] }, 'templates'],
    ['a missing file', '/nonexistent/queries.json', 'Cannot read the workload file'],
  ])('rejects %s with WORKLOAD_INVALID', async (_, source, message) => {
    // Act
    const result = workloadFromFile(source as string | object);

    // Assess
    await expect(result).rejects.toThrow(AdvisorError);
    await expect(result).rejects.toThrow(message);
  });
});

describe('storeIndexProposals', () => {
  const proposal = (keys: string[]): IndexProposal => ({
    table: 'public.t',
    method: 'btree',
    keys,
    include: [],
    where: null,
    ddl: `CREATE INDEX CONCURRENTLY t_idx ON public.t USING btree (${keys.join(', ')});`,
    name: 't_idx',
    serves: ['q1'],
    benefit: { costBefore: 100, costAfter: 1, weightedCostReduction: 990 },
    sizeBytes: 8192,
    writeOverhead: {
      statements: [],
      entriesPerHour: 0,
      updatedColumns: [],
      hotUpdatesLost: false,
      costPerHour: 0,
    },
    evaluatedWith: 'hypopg',
    rationale: 'equality on a',
  });

  it('upserts one create_index suggestion per proposal with a stable key, reporting which are new', async () => {
    // Prepare: an in-memory repository that already knows the (a) index
    const rows = new Map<string, { id: number; payload: Record<string, unknown> }>([
      [proposalKey(proposal(['a'])), { id: 1, payload: {} }],
    ]);
    const repository = {
      upsertSuggestion: async (s: {
        key: string;
        kind: string;
        payload: Record<string, unknown>;
      }) => {
        const existing = rows.get(s.key);
        if (existing) {
          existing.payload = s.payload;
          return { id: existing.id, created: false };
        }
        rows.set(s.key, { id: rows.size + 1, payload: s.payload });
        return { id: rows.size, created: true };
      },
    };

    // Act
    const stored = await storeIndexProposals(repository, 'primary', {
      proposals: [proposal(['a']), proposal(['b', 'c'])],
    });

    // Assess
    expect(stored.map((s) => [s.id, s.created])).toEqual([
      [1, false],
      [2, true],
    ]);
    expect([...rows.keys()]).toEqual(['public.t USING btree (a)', 'public.t USING btree (b, c)']);
    expect(rows.get('public.t USING btree (b, c)')?.payload).toMatchObject({
      serves: ['q1'],
      sizeBytes: 8192,
    });
  });
});
