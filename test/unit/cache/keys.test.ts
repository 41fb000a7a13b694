import { describe, expect, it } from 'vitest';
import { bareTableName, deriveEntryKey, versionKeyOf } from '#shared/cache';
import { bareTableNames } from '../../../shared/cache/keys.ts';

const base = { sql: 'SELECT * FROM t WHERE id = $1', params: [1], target: 'main', role: 'app' };

describe('deriveEntryKey', () => {
  it('is stable for the same input and carries prefix and target', () => {
    // Act
    const a = deriveEntryKey('dbopt', base);
    const b = deriveEntryKey('dbopt', { ...base, params: [1] });
    // Assess
    expect(a).toBe(b);
    expect(a).toMatch(/^dbopt:rc:main:[A-Za-z0-9_-]{43}$/);
  });

  it.each([
    ['number vs string parameter', base, { ...base, params: ['1'] }],
    [
      'parameter order',
      { ...base, sql: 'SELECT $1, $2 FROM t', params: [1, 2] },
      { ...base, sql: 'SELECT $1, $2 FROM t', params: [2, 1] },
    ],
    ['role', base, { ...base, role: 'admin' }],
    ['target', base, { ...base, target: 'shard-2' }],
    ['sql text', base, { ...base, sql: `${base.sql} ` }],
    [
      'null vs missing object member',
      { ...base, params: [{}] },
      { ...base, params: [{ a: null }] },
    ],
    ['variant (row cap)', base, { ...base, variant: 'maxRows=5' }],
  ])('changes with the %s', (_name, reference, changed) => {
    // Act
    const referenceKey = deriveEntryKey('dbopt', reference);
    const changedKey = deriveEntryKey('dbopt', changed);
    // Assess
    expect(changedKey).not.toBe(referenceKey);
  });
});

describe('bareTableName', () => {
  it.each([
    ['users', 'users'],
    ['public.users', 'users'],
    ['cat.public.users', 'users'],
    ['"a.b"', 'a.b'],
    ['s."a.b"', 'a.b'],
    ['"my.schema".users', 'users'],
    ['"x""y"', 'x"y'],
    ['s."x"".y"', 'x".y'],
    ['"s.1"."t.2"', 't.2'],
    ['Users', 'Users'],
  ])('%s → %s', (input, expected) => {
    expect(bareTableName(input)).toBe(expected);
  });

  it('makes an unqualified read and a qualified write share one version key', () => {
    // Act
    const read = bareTableNames(['users', 'orders']);
    const written = bareTableNames(['public.users']);
    // Assess
    expect(read).toEqual(['orders', 'users']);
    expect(versionKeyOf('dbopt', 'main', written[0] ?? '')).toBe(
      versionKeyOf('dbopt', 'main', read[1] ?? ''),
    );
  });

  it('puts every version key of a target under one hash tag', () => {
    // Act
    const keys = ['users', 'a.b'].map((t) => versionKeyOf('dbopt', 'main', t));
    // Assess
    expect(keys).toEqual(['dbopt:{tv:main}:users', 'dbopt:{tv:main}:a.b']);
  });
});
