import pg from 'pg';

/**
 * Names of the built-in types a result column most often has (pg_type.typname by OID), so a
 * response can say `dataType: "int4"` without a catalog round trip. Built-in OIDs are fixed
 * across PostgreSQL versions; user-defined types (enums, domains) are reported as `oid:<n>`.
 */
export const BUILTIN_TYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [16, 'bool'],
  [17, 'bytea'],
  [18, 'char'],
  [19, 'name'],
  [20, 'int8'],
  [21, 'int2'],
  [23, 'int4'],
  [25, 'text'],
  [26, 'oid'],
  [114, 'json'],
  [142, 'xml'],
  [650, 'cidr'],
  [700, 'float4'],
  [701, 'float8'],
  [790, 'money'],
  [829, 'macaddr'],
  [869, 'inet'],
  [1000, '_bool'],
  [1005, '_int2'],
  [1007, '_int4'],
  [1009, '_text'],
  [1014, '_bpchar'],
  [1015, '_varchar'],
  [1016, '_int8'],
  [1021, '_float4'],
  [1022, '_float8'],
  [1042, 'bpchar'],
  [1043, 'varchar'],
  [1082, 'date'],
  [1083, 'time'],
  [1114, 'timestamp'],
  [1184, 'timestamptz'],
  [1186, 'interval'],
  [1231, '_numeric'],
  [1266, 'timetz'],
  [1700, 'numeric'],
  [2249, 'record'],
  [2278, 'void'],
  [2950, 'uuid'],
  [2951, '_uuid'],
  [3802, 'jsonb'],
  [3807, '_jsonb'],
  [705, 'unknown'],
]);

/** OIDs returned as PostgreSQL's own text so JSON keeps them exact and time-zone-honest. */
const RAW_TEXT_OIDS: ReadonlySet<number> = new Set([
  17, // bytea: '\x…' hex instead of a Buffer that serializes as an array of numbers
  1082, // date: '2026-01-31', not a local-midnight Date
  1114, // timestamp without time zone: not reinterpreted in the Lambda's zone
  1184, // timestamptz: keeps the server's ISO text
]);

const identity = (value: string): string => value;

/**
 * Type parsers for API results: int8 and numeric stay strings (pg's default, exact), json and
 * jsonb are parsed, and the date/time/bytea types above stay as text.
 */
export const apiTypeParsers = {
  getTypeParser(oid: number, format?: string) {
    if (RAW_TEXT_OIDS.has(oid)) return identity;
    return pg.types.getTypeParser(oid, (format ?? 'text') as 'text');
  },
};
