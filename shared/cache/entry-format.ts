/**
 * The framing of one L2 entry: a one-line ASCII header, then the payload unchanged.
 *
 *   rc1 <versionsReadAtMs> <payloadLength> <v1>,<v2>,…\n<payload>
 *
 * Not JSON: the payload is itself JSON, and embedding it as a JSON string would escape every
 * quote and parse the whole payload twice. The declared length catches truncated or foreign
 * values; the versions are positional, aligned with the statement's sorted bare tables.
 */
export interface CacheEntry {
  readonly payload: string;
  /** Table versions read before the query ran, in the order of the statement's tables. */
  readonly versions: readonly string[];
  /** When those versions were read (epoch ms); informational. */
  readonly versionsReadAtMs: number;
}

const HEADER = /^rc1 (\d{1,15}) (\d{1,10}) ((?:\d{1,20}(?:,\d{1,20})*)?)$/;
/** Versions are at most 20 digits; a longer first line is not ours. */
const MAX_HEADER_CHARS = 64 + 21 * 256;

export const encodeEntry = (entry: CacheEntry): string =>
  `rc1 ${Math.trunc(entry.versionsReadAtMs)} ${entry.payload.length} ${entry.versions.join(',')}\n${entry.payload}`;

/**
 * Parses a stored value strictly; anything else (another program's value, truncation, a
 * different table count) is `undefined`, which the caller treats as garbage.
 */
export const decodeEntry = (raw: string, expectedVersions: number): CacheEntry | undefined => {
  const newline = raw.indexOf('\n');
  if (newline < 0 || newline > MAX_HEADER_CHARS) return undefined;
  const match = HEADER.exec(raw.slice(0, newline));
  if (!match) return undefined;
  const [, readAt = '', length = '', list = ''] = match;
  const versions = list === '' ? [] : list.split(',');
  if (versions.length !== expectedVersions) return undefined;
  const payload = raw.slice(newline + 1);
  if (payload.length !== Number(length)) return undefined;
  return { payload, versions, versionsReadAtMs: Number(readAt) };
};
