/** The parse-tree helpers live in shared/sql; scatter planning uses them through this module. */
export {
  type AstObject,
  asList,
  asObject,
  integerConst,
  nodeOf,
  nodeType,
  stringValues,
  structuralKey,
  walkNodes,
} from '#shared/sql';
