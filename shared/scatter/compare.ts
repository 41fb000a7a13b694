import { compareDecimal, parseDecimal } from './decimal.ts';

/** Orders two non-null values of one column; negative when `a` sorts first. */
export type ValueComparator = (a: unknown, b: unknown) => number;

/** How text values compare; defaults to code point order (the C / C.UTF-8 collations). */
export type TextCollator = (a: string, b: string) => number;

/** Code point order, which is byte order in UTF-8 (JavaScript's `<` compares UTF-16 units). */
export const compareCodePoints: TextCollator = (a, b) => {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i += 1) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(i);
    if (ca === cb) continue;
    // Only a surrogate (a code point above U+FFFF) against a BMP character above it needs care.
    const pa = a.codePointAt(i) ?? ca;
    const pb = b.codePointAt(i) ?? cb;
    return pa < pb ? -1 : 1;
  }
  return a.length - b.length;
};

const compareNumbers: ValueComparator = (a, b) => {
  const x = a as number;
  const y = b as number;
  // PostgreSQL sorts NaN above every other float, and equal to itself.
  if (Number.isNaN(x) || Number.isNaN(y)) return Number(Number.isNaN(x)) - Number(Number.isNaN(y));
  return x < y ? -1 : x > y ? 1 : 0;
};

const compareDecimalText: ValueComparator = (a, b) =>
  compareDecimal(parseDecimal(String(a)), parseDecimal(String(b)));

const compareBooleans: ValueComparator = (a, b) => Number(a) - Number(b);

/** date / timestamp text ('2026-01-31', 'infinity'): ISO text sorts lexicographically (AD years). */
const compareDateText: ValueComparator = (a, b) => {
  const rank = (v: string): number => (v === '-infinity' ? -1 : v === 'infinity' ? 1 : 0);
  const x = String(a);
  const y = String(b);
  const diff = rank(x) - rank(y);
  if (diff !== 0 || rank(x) !== 0) return diff;
  return x < y ? -1 : x > y ? 1 : 0;
};

// A timestamptz as PostgreSQL prints it with DateStyle ISO: 2026-01-02 03:04:05.123456+05:30.
const TIMESTAMPTZ_TEXT =
  /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?$/;

const timestamptzMicros = (text: string): number => {
  if (text === 'infinity') return Number.POSITIVE_INFINITY;
  if (text === '-infinity') return Number.NEGATIVE_INFINITY;
  const m = TIMESTAMPTZ_TEXT.exec(text);
  if (!m) throw new Error(`Unrecognised timestamptz text: ${text}`);
  const [, y, mo, d, h, mi, s, frac, sign, oh, om, os] = m;
  const utcMs = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  const offsetSeconds = Number(oh) * 3600 + Number(om ?? 0) * 60 + Number(os ?? 0);
  const micros = Number((frac ?? '').padEnd(6, '0'));
  return (utcMs / 1000 - (sign === '-' ? -offsetSeconds : offsetSeconds)) * 1e6 + micros;
};

const compareTimestamptzText: ValueComparator = (a, b) => {
  const x = timestamptzMicros(String(a));
  const y = timestamptzMicros(String(b));
  return x < y ? -1 : x > y ? 1 : 0;
};

const INT8 = 20;
const NUMERIC = 1700;
const NUMBER_OIDS: ReadonlySet<number> = new Set([21, 23, 26, 700, 701]);
const TEXT_OIDS: ReadonlySet<number> = new Set([19, 25, 1042, 1043]);
// date, timestamp, time and uuid all sort correctly as their canonical text.
const ISO_TEXT_OIDS: ReadonlySet<number> = new Set([1082, 1114, 1083, 2950]);

/**
 * The comparator for a result column of type `dataTypeId`, matching PostgreSQL's default
 * btree ordering, or undefined when the merge cannot order that type.
 */
export const comparatorFor = (
  dataTypeId: number,
  collator: TextCollator,
): ValueComparator | undefined => {
  if (NUMBER_OIDS.has(dataTypeId)) return compareNumbers;
  if (dataTypeId === INT8 || dataTypeId === NUMERIC) return compareDecimalText;
  if (dataTypeId === 16) return compareBooleans;
  if (TEXT_OIDS.has(dataTypeId)) return (a, b) => collator(String(a), String(b));
  if (ISO_TEXT_OIDS.has(dataTypeId)) return compareDateText;
  if (dataTypeId === 1184) return compareTimestamptzText;
  return undefined;
};
