/**
 * MurmurHash3 x86 32-bit over the UTF-8 bytes of a key (Austin Appleby's reference,
 * https://github.com/aappleby/smhasher/blob/master/src/MurmurHash3.cpp). Chosen for the
 * router because it is well distributed (sequential keys such as `user:1`, `user:2` land on
 * unrelated slots), fast in JavaScript with `Math.imul`, and reproducible in any language.
 *
 * Changing the algorithm or {@link ROUTER_HASH_SEED} re-routes every key: the golden values
 * in test/unit/sharding catch that.
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

/**
 * The fixed seed of the router's hash (the seed used by the smhasher verification tests).
 * Part of the on-disk contract: rows were placed with it.
 */
export const ROUTER_HASH_SEED = 0x9747b28c;

const mixBlock = (h: number, block: number): number => {
  let k = Math.imul(block, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  const x = h ^ k;
  const rotated = (x << 13) | (x >>> 19);
  return (Math.imul(rotated, 5) + 0xe6546b64) | 0;
};

const mixTail = (h: number, tail: number): number => {
  let k = Math.imul(tail, C1);
  k = (k << 15) | (k >>> 17);
  return h ^ Math.imul(k, C2);
};

const finalize = (h: number, lengthBytes: number): number => {
  let x = h ^ lengthBytes;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
};

/**
 * MurmurHash3 x86_32 of `bytes[0..lengthBytes)`; an unsigned 32-bit integer.
 *
 * @example
 * murmur3x86_32(new TextEncoder().encode('test'), 0); // 0xba6bd213
 */
export const murmur3x86_32 = (
  bytes: Uint8Array,
  seed: number,
  lengthBytes: number = bytes.length,
): number => {
  let h = seed | 0;
  const blockEnd = lengthBytes & ~3;
  let i = 0;
  for (; i < blockEnd; i += 4) {
    const block =
      (bytes[i] as number) |
      ((bytes[i + 1] as number) << 8) |
      ((bytes[i + 2] as number) << 16) |
      ((bytes[i + 3] as number) << 24);
    h = mixBlock(h, block);
  }
  const rest = lengthBytes & 3;
  if (rest > 0) {
    let tail = 0;
    if (rest === 3) tail ^= (bytes[i + 2] as number) << 16;
    if (rest >= 2) tail ^= (bytes[i + 1] as number) << 8;
    tail ^= bytes[i] as number;
    h = mixTail(h, tail);
  }
  return finalize(h, lengthBytes);
};

/**
 * Hashes an all-ASCII string without encoding it (its UTF-8 bytes are its char codes).
 * Returns -1 when the string has a non-ASCII character, so the caller falls back to encoding;
 * checking once after the loop keeps the common ASCII path branch-free.
 */
const murmur3Ascii = (key: string, seed: number): number => {
  const length = key.length;
  let h = seed | 0;
  let seen = 0;
  const blockEnd = length & ~3;
  let i = 0;
  for (; i < blockEnd; i += 4) {
    const c0 = key.charCodeAt(i);
    const c1 = key.charCodeAt(i + 1);
    const c2 = key.charCodeAt(i + 2);
    const c3 = key.charCodeAt(i + 3);
    seen |= c0 | c1 | c2 | c3;
    h = mixBlock(h, c0 | (c1 << 8) | (c2 << 16) | (c3 << 24));
  }
  const rest = length & 3;
  if (rest > 0) {
    let tail = 0;
    if (rest === 3) {
      const c = key.charCodeAt(i + 2);
      seen |= c;
      tail ^= c << 16;
    }
    if (rest >= 2) {
      const c = key.charCodeAt(i + 1);
      seen |= c;
      tail ^= c << 8;
    }
    const c = key.charCodeAt(i);
    seen |= c;
    tail ^= c;
    h = mixTail(h, tail);
  }
  if (seen >= 0x80) return -1;
  return finalize(h, length);
};

/** Hashes a string's UTF-8 bytes to an unsigned 32-bit integer. */
export type StringHasher = (key: string) => number;

/**
 * Builds a MurmurHash3 x86_32 hasher over the UTF-8 bytes of a string. ASCII keys are hashed
 * straight from their char codes (no allocation); other keys are encoded into a scratch
 * buffer owned by this hasher (grown only for longer keys), so results equal
 * `murmur3x86_32(new TextEncoder().encode(key), seed)`, lone surrogates included (they
 * encode as U+FFFD, as TextEncoder does).
 */
export const createUtf8Hasher = (seed: number = ROUTER_HASH_SEED): StringHasher => {
  const encoder = new TextEncoder();
  let scratch = new Uint8Array(256);
  return (key: string): number => {
    const ascii = murmur3Ascii(key, seed);
    if (ascii >= 0) return ascii;
    // A UTF-16 code unit encodes to at most 3 UTF-8 bytes.
    if (scratch.length < key.length * 3) scratch = new Uint8Array(key.length * 3);
    const { written } = encoder.encodeInto(key, scratch);
    return murmur3x86_32(scratch, seed, written);
  };
};
