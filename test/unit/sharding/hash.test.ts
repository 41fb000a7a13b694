import { describe, expect, it } from 'vitest';
import { murmur3x86_32, ROUTER_HASH_SEED } from '#shared/sharding';
import { createUtf8Hasher } from '../../../shared/sharding/hash.ts';

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('murmur3x86_32', () => {
  // Published MurmurHash3 x86_32 vectors (smhasher / widely reproduced test tables).
  it.each([
    ['', 0, 0],
    ['', 1, 0x514e28b7],
    ['test', 0, 0xba6bd213],
    ['abc', 0, 0xb3dd93fa],
    ['Hello, world!', 0, 0xc0363e43],
    ['The quick brown fox jumps over the lazy dog', 0, 0x2e4ff723],
    ['Hello, world!', 0x9747b28c, 0x24884cba],
    ['aaaa', 0x9747b28c, 0x5a97808a],
    ['a', 0x9747b28c, 0x7fa09ea6],
  ])('hash(%j, seed %d) = %d', (text, seed, expected) => {
    // Act
    const hash = murmur3x86_32(utf8(text), seed);
    // Assess
    expect(hash).toBe(expected);
  });
});

describe('createUtf8Hasher', () => {
  it.each([
    ['empty', ''],
    ['ASCII, 1 byte tail', 'user:0'],
    ['ASCII, 4-byte blocks only', 'user:123'],
    ['Latin-1 (2-byte UTF-8)', 'café:1'],
    ['CJK (3-byte UTF-8)', '顧客:42'],
    ['emoji (surrogate pair, 4-byte UTF-8)', 'key🙂x'],
    ['lone surrogate (encoded as U+FFFD)', 'a\ud800b'],
    ['non-ASCII after many ASCII blocks', `${'x'.repeat(41)}é`],
    ['longer than the scratch buffer', 'ü'.repeat(500)],
  ])('matches the byte reference for %s', (_name, key) => {
    // Prepare
    const hasher = createUtf8Hasher(ROUTER_HASH_SEED);
    // Act
    const fromString = hasher(key);
    // Assess
    expect(fromString).toBe(murmur3x86_32(utf8(key), ROUTER_HASH_SEED));
  });

  it('gives the same results when called again after a long key grew its buffer', () => {
    // Prepare
    const hasher = createUtf8Hasher(ROUTER_HASH_SEED);
    const keys = ['é', 'ü'.repeat(500), 'é', 'plain'];
    // Act
    const hashes = keys.map(hasher);
    // Assess
    expect(hashes).toEqual(keys.map((key) => murmur3x86_32(utf8(key), ROUTER_HASH_SEED)));
  });
});
