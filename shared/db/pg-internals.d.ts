// pg exports its internals through "./lib/*" but @types/pg does not describe them. Only the
// pieces shared/db/statement.ts uses are declared here.
declare module 'pg/lib/utils.js' {
  const utils: {
    /** pg's own parameter serializer: Date → ISO text, arrays → '{…}', objects → JSON. */
    prepareValue(value: unknown): unknown;
  };
  export default utils;
}
