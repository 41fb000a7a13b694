/**
 * Minimal, type-safe access to libpg-query's JSON parse tree (nodes are `{ Type: {...} }`),
 * shared by every capability that reads parse trees (scatter planning, rewrite rules).
 */
export type AstObject = Record<string, unknown>;

export const asObject = (value: unknown): AstObject | undefined =>
  value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as AstObject)
    : undefined;

export const asList = (value: unknown): readonly unknown[] => (Array.isArray(value) ? value : []);

/** The body of a node of type `type` (`{ FuncCall: {...} }` → `{...}`), if it is one. */
export const nodeOf = (wrapper: unknown, type: string): AstObject | undefined =>
  asObject(asObject(wrapper)?.[type]);

/** The node type name of a wrapped node (`{ FuncCall: {...} }` → `FuncCall`). */
export const nodeType = (wrapper: unknown): string => Object.keys(asObject(wrapper) ?? {})[0] ?? '';

export const stringValues = (nodes: unknown): string[] =>
  asList(nodes).map((n) => String(nodeOf(n, 'String')?.sval ?? ''));

/** Integer value of an `A_Const` (libpg-query omits `ival` for 0), or undefined. */
export const integerConst = (wrapper: unknown): number | undefined => {
  const constant = nodeOf(wrapper, 'A_Const');
  const ival = asObject(constant?.ival);
  if (!constant || !ival) return undefined;
  return typeof ival.ival === 'number' ? ival.ival : 0;
};

/** JSON of a node without `location`s, so the same expression written twice compares equal. */
export const structuralKey = (wrapper: unknown): string =>
  JSON.stringify(wrapper, (key, value: unknown) =>
    key === 'location' || key.endsWith('_start') || key.endsWith('_end') ? undefined : value,
  );

const isNodeTypeName = (key: string): boolean => {
  const first = key.charCodeAt(0);
  return first >= 65 && first <= 90; // A-Z: node types are PascalCase, fields are snake/camel
};

/**
 * Visits every wrapped node under `value` depth-first. `visit` returns false to skip a node's
 * children.
 */
export const walkNodes = (
  value: unknown,
  visit: (type: string, body: AstObject, wrapper: AstObject) => boolean,
): void => {
  if (Array.isArray(value)) {
    for (const item of value) walkNodes(item, visit);
    return;
  }
  const object = asObject(value);
  if (!object) return;
  for (const [key, child] of Object.entries(object)) {
    const body = asObject(child);
    if (body && isNodeTypeName(key) && Object.keys(object).length === 1) {
      if (visit(key, body, object)) walkNodes(body, visit);
    } else {
      walkNodes(child, visit);
    }
  }
};
