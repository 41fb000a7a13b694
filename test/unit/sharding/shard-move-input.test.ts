import { describe, expect, it } from 'vitest';
import {
  type MoveIo,
  parseMoveTables,
  runShardMoveCommand,
  ShardMoveError,
} from '../../../local/shard-move.ts';

const files = (entries: Record<string, string>) => (path: string) => {
  const text = entries[path];
  if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
  return text;
};

const fakeIo = (entries: Record<string, string>, env: Record<string, string> = {}) => {
  const out: string[] = [];
  const err: string[] = [];
  const io: MoveIo = {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    env,
    readFile: files(entries),
    writeFile: () => {
      throw new Error('nothing may be written');
    },
    connect: () => Promise.reject(new Error('no database in unit tests')),
  };
  return { io, out, err };
};

describe('shard move inputs', () => {
  it('reads tables with a default schema and composite primary keys', () => {
    // Act
    const tables = parseMoveTables([
      { name: 'accounts', shardKey: 'id', primaryKey: ['id'] },
      { schema: 'app', name: 'events', shardKey: 'user_id', primaryKey: ['user_id', 'seq'] },
    ]);
    // Assess
    expect(tables).toEqual([
      { schema: 'public', name: 'accounts', shardKey: 'id', primaryKey: ['id'] },
      { schema: 'app', name: 'events', shardKey: 'user_id', primaryKey: ['user_id', 'seq'] },
    ]);
  });

  it.each<[string, unknown]>([
    ['an empty list', []],
    ['a missing shard key', [{ name: 't', primaryKey: ['id'] }]],
    ['an empty primary key', [{ name: 't', shardKey: 'id', primaryKey: [] }]],
    ['an identifier with a quote', [{ name: 't"; DROP', shardKey: 'id', primaryKey: ['id'] }]],
    [
      'a schema that is not a string',
      [{ schema: 1, name: 't', shardKey: 'id', primaryKey: ['id'] }],
    ],
  ])('rejects %s', (_label, value) => {
    // Act
    const act = () => parseMoveTables(value);
    // Assess
    expect(act).toThrow(ShardMoveError);
  });

  it.each<[string, Record<string, string>, RegExp]>([
    [
      'a new map that skips a version',
      { 'next.json': '{"version":3,"shards":["a","b"]}' },
      /version 2/,
    ],
    ['a --to map that is not a map', { 'next.json': '{"version":2}' }, /invalid --to map/],
    ['no shard URLs', { 'next.json': '{"version":2,"shards":["a","b"]}' }, /--urls FILE/],
  ])('the command refuses %s with one line and exit code 1', async (_label, extra, message) => {
    // Prepare
    const { io, err } = fakeIo({
      'map.json': '{"version":1,"shards":["a"]}',
      'tables.json': '[{"name":"t","shardKey":"id","primaryKey":["id"]}]',
      ...extra,
    });
    // Act
    const code = await runShardMoveCommand(
      { map: 'map.json', to: 'next.json', tables: 'tables.json' },
      io,
    );
    // Assess
    expect(code).toBe(1);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(/^dbopt: /);
    expect(err[0]).toMatch(message);
  });

  it('refuses an unknown --stop-after phase', async () => {
    // Prepare
    const { io, err } = fakeIo({});
    // Act
    const code = await runShardMoveCommand(
      { to: 'n.json', tables: 't.json', stopAfter: 'cleanup' as never },
      io,
    );
    // Assess
    expect(code).toBe(1);
    expect(err[0]).toContain('--stop-after must be copy, verify or switch');
  });
});
