import { describe, expect, it } from 'vitest';
import { decodeEntry, encodeEntry } from '../../../shared/cache/entry-format.ts';
import { versionsMatch } from '../../../shared/cache/redis-ops.ts';

describe('entry framing', () => {
  it('round-trips payload, versions and time', () => {
    // Prepare
    const entry = {
      payload: '{"rows":[{"a":"x\\ny"}],"note":"é"}',
      versions: ['1700000000000000001', '42'],
      versionsReadAtMs: 1_700_000_000_000,
    };
    // Act
    const decoded = decodeEntry(encodeEntry(entry), 2);
    // Assess
    expect(decoded).toEqual(entry);
  });

  it('accepts an entry of a statement with no tables', () => {
    expect(
      decodeEntry(encodeEntry({ payload: 'p', versions: [], versionsReadAtMs: 1 }), 0),
    ).toEqual({ payload: 'p', versions: [], versionsReadAtMs: 1 });
  });

  const valid = encodeEntry({ payload: 'hello', versions: ['1', '2'], versionsReadAtMs: 5 });
  it.each([
    ['an empty string', ''],
    ['plain text', 'hello world'],
    ['JSON of another program', '{"p":"x","v":[1],"t":1}'],
    ['a truncated payload', valid.slice(0, -1)],
    ['an extended payload', `${valid}!`],
    ['a wrong format tag', valid.replace('rc1', 'rc2')],
    ['a non-numeric version', valid.replace(' 1,2', ' 1,x')],
    ['a header without newline', 'rc1 5 5 1,2'],
    ['a very long first line', `rc1 5 5 ${'1,'.repeat(10_000)}1\nhello`],
  ])('rejects %s', (_name, raw) => {
    expect(decodeEntry(raw, 2)).toBeUndefined();
  });

  it('rejects an entry whose table count differs from the statement', () => {
    expect(decodeEntry(valid, 3)).toBeUndefined();
  });
});

describe('versionsMatch', () => {
  it.each([
    [['1', '2'], ['1', '2'], true],
    [['1', '2'], ['1', '3'], false],
    [['1', '2'], ['1', null], false],
    [['1'], ['1', '2'], false],
    [[], [], true],
  ])('%j vs current %j → %s', (stored, current, expected) => {
    expect(versionsMatch(stored, current)).toBe(expected);
  });
});
