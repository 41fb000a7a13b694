/**
 * Exact arithmetic on PostgreSQL's text form of int8 and numeric values (pg returns both as
 * strings so nothing is rounded through a float). A finite value is `unscaled / 10^scale`.
 */
export type Decimal =
  | { readonly kind: 'finite'; readonly unscaled: bigint; readonly scale: number }
  | { readonly kind: 'nan' }
  | { readonly kind: 'infinity'; readonly negative: boolean };

const NAN: Decimal = Object.freeze({ kind: 'nan' });

/** Parses `-12.340`, `5`, `NaN`, `Infinity`, `-Infinity` (numeric never prints exponents). */
export const parseDecimal = (text: string): Decimal => {
  if (text === 'NaN') return NAN;
  if (text === 'Infinity' || text === '-Infinity') {
    return { kind: 'infinity', negative: text.startsWith('-') };
  }
  const dot = text.indexOf('.');
  if (dot === -1) return { kind: 'finite', unscaled: BigInt(text), scale: 0 };
  const fraction = text.slice(dot + 1);
  return {
    kind: 'finite',
    unscaled: BigInt(text.slice(0, dot) + fraction),
    scale: fraction.length,
  };
};

const TEN = 10n;
const pow10 = (n: number): bigint => TEN ** BigInt(n);
const abs = (n: bigint): bigint => (n < 0n ? -n : n);

/** Prints with exactly `scale` fraction digits, as PostgreSQL prints a numeric's dscale. */
export const formatDecimal = (value: Decimal): string => {
  if (value.kind === 'nan') return 'NaN';
  if (value.kind === 'infinity') return value.negative ? '-Infinity' : 'Infinity';
  const digits = abs(value.unscaled)
    .toString()
    .padStart(value.scale + 1, '0');
  const sign = value.unscaled < 0n ? '-' : '';
  if (value.scale === 0) return sign + digits;
  const cut = digits.length - value.scale;
  return `${sign}${digits.slice(0, cut)}.${digits.slice(cut)}`;
};

const rescale = (value: bigint, from: number, to: number): bigint => value * pow10(to - from);

/** a + b, keeping the larger display scale (what PostgreSQL's numeric sum does). */
export const addDecimal = (a: Decimal, b: Decimal): Decimal => {
  if (a.kind === 'nan' || b.kind === 'nan') return NAN;
  if (a.kind === 'infinity' && b.kind === 'infinity') {
    return a.negative === b.negative ? a : NAN;
  }
  if (a.kind === 'infinity') return a;
  if (b.kind === 'infinity') return b;
  const scale = Math.max(a.scale, b.scale);
  return {
    kind: 'finite',
    unscaled: rescale(a.unscaled, a.scale, scale) + rescale(b.unscaled, b.scale, scale),
    scale,
  };
};

/** Orders two decimals the way PostgreSQL orders numerics: NaN above everything, ±Infinity. */
export const compareDecimal = (a: Decimal, b: Decimal): number => {
  const rank = (d: Decimal): number =>
    d.kind === 'nan' ? 2 : d.kind === 'infinity' ? (d.negative ? -1 : 1) : 0;
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== 0 || rb !== 0 || a.kind !== 'finite' || b.kind !== 'finite') return ra - rb;
  const scale = Math.max(a.scale, b.scale);
  const diff = rescale(a.unscaled, a.scale, scale) - rescale(b.unscaled, b.scale, scale);
  return diff < 0n ? -1 : diff > 0n ? 1 : 0;
};

// PostgreSQL stores numerics in base-10000 digits (NBASE); the division scale depends on them.
const DEC_DIGITS = 4;
const NUMERIC_MIN_SIG_DIGITS = 16;
const NUMERIC_MAX_DISPLAY_SCALE = 1000;

/** Weight (base-10000 position) and value of the first non-zero base-10000 digit of |value|. */
const firstNbaseDigit = (unscaled: bigint, scale: number): { weight: number; digit: number } => {
  const magnitude = abs(unscaled);
  if (magnitude === 0n) return { weight: 0, digit: 0 };
  const integer = magnitude / pow10(scale);
  if (integer > 0n) {
    const weight = Math.floor((integer.toString().length - 1) / DEC_DIGITS);
    return { weight, digit: Number(integer / pow10(weight * DEC_DIGITS)) };
  }
  for (let k = 1; ; k += 1) {
    const shifted = (magnitude * pow10(k * DEC_DIGITS)) / pow10(scale);
    if (shifted > 0n) return { weight: -k, digit: Number(shifted) };
  }
};

/**
 * `sum / count` exactly as PostgreSQL's `numeric_div` computes it for `avg()` over integers and
 * numerics: the result scale comes from `select_div_scale` (at least 16 significant digits, never
 * less than either input's display scale) and the last digit is rounded half away from zero.
 * https://github.com/postgres/postgres/blob/REL_15_STABLE/src/backend/utils/adt/numeric.c
 */
export const divideDecimalByCount = (sum: Decimal, count: bigint): Decimal => {
  if (sum.kind !== 'finite') return sum;
  const first1 = firstNbaseDigit(sum.unscaled, sum.scale);
  const first2 = firstNbaseDigit(count, 0);
  let quotientWeight = first1.weight - first2.weight;
  if (first1.digit <= first2.digit) quotientWeight -= 1;
  const resultScale = Math.min(
    Math.max(NUMERIC_MIN_SIG_DIGITS - quotientWeight * DEC_DIGITS, sum.scale, 0),
    NUMERIC_MAX_DISPLAY_SCALE,
  );
  // |sum| / count scaled by 10^resultScale, i.e. n / d with the rounding done in integers.
  const n = abs(sum.unscaled) * pow10(resultScale);
  const d = pow10(sum.scale) * count;
  const rounded = (2n * n + d) / (2n * d);
  return { kind: 'finite', unscaled: sum.unscaled < 0n ? -rounded : rounded, scale: resultScale };
};
