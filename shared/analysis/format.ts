/**
 * A duration in words for people: "45s", "12m 3s", "2h 5m", "3d 4h".
 *
 * @example
 * formatDuration(7_500) // '2h 5m'
 */
export const formatDuration = (seconds: number): string => {
  if (!Number.isFinite(seconds) || seconds < 0) return 'unknown';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const units: [number, string][] = [
    [86_400, 'd'],
    [3_600, 'h'],
    [60, 'm'],
    [1, 's'],
  ];
  const parts: string[] = [];
  let rest = s;
  for (const [size, unit] of units) {
    if (rest >= size || parts.length > 0) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.filter((p) => !p.startsWith('0')).join(' ');
};

/** A 0..1 ratio as a percentage with up to one decimal: 0.9234 → "92.3%", 0.92 → "92%". */
export const formatPercent = (ratio: number): string =>
  `${Number((ratio * 100).toFixed(1)).toString()}%`;

/** A count or rate without noise: 3 → "3", 0.25 → "0.25", 12.345 → "12.3". */
export const formatNumber = (value: number): string => {
  const abs = Math.abs(value);
  const digits = abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return Number(value.toFixed(digits)).toString();
};
