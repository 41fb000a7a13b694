import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createShardRouter, type ShardMapConfig } from '#shared/sharding';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TSX = join(ROOT, 'node_modules/.bin/tsx');
const CLI = join(ROOT, 'local/cli.ts');
const MAP = { version: 4, shards: [{ name: 's0' }, { name: 's1' }, { name: 's2' }] };

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `dbopt …` as a process, the way `npm run dbopt -- …` does. */
const dbopt = async (args: string[], env: Record<string, string> = {}): Promise<Run> => {
  try {
    const { stdout, stderr } = await promisify(execFile)(TSX, [CLI, ...args], {
      cwd: ROOT,
      env: { ...process.env, SHARD_MAP: '', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
};

describe('dbopt shard (as a process)', () => {
  let dir: string;
  let mapFile: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dbopt-shard-cli-'));
    mapFile = join(dir, 'map.json');
    await writeFile(mapFile, JSON.stringify(MAP));
    await writeFile(join(dir, 'bad.json'), '{"version": 1, "shards": [{"name": ""}]}');
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('plan --add --json prints a plan whose next map is a valid SHARD_MAP', async () => {
    // Act
    const run = await dbopt(['shard', 'plan', '--add', 's3', '--map', mapFile, '--json']);

    // Assess
    expect(run.code, run.stderr).toBe(0);
    const plan = JSON.parse(run.stdout) as { movedFraction: number; next: ShardMapConfig };
    expect(plan.movedFraction).toBe(0.25);
    const route = await dbopt(['shard', 'route', 'user:42'], {
      SHARD_MAP: JSON.stringify(plan.next),
    });
    const next = createShardRouter(plan.next).route('user:42');
    expect(route.code).toBe(0);
    expect(route.stdout).toContain('version 5, 4 shards');
    expect(route.stdout).toMatch(
      new RegExp(`"user:42" → slot +${next.slot} → ${next.shard}$`, 'm'),
    );
  });

  it.each([
    [
      ['shard', 'plan', '--remove', 'nope', '--map', 'MAP'],
      /^dbopt: cannot plan the change to .*map\.json \(version 4\): --remove nope: unknown shard "nope"/,
    ],
    [
      ['shard', 'plan', '--add', 's9', '--map', 'BAD'],
      /^dbopt: invalid shard map in .*bad\.json: shards\[0\]\.name: /,
    ],
    [['shard', 'route', 'k'], /^dbopt: no shard map: pass --map FILE/],
  ])('%j exits 1 with one line on stderr, no stack', async (args, message) => {
    // Act
    const files: Record<string, string> = { MAP: mapFile, BAD: join(dir, 'bad.json') };
    const run = await dbopt(args.map((arg) => files[arg] ?? arg));

    // Assess
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(message)]);
  });
});
