import type { Node } from 'libpg-query';
import type { StatementKind } from './types.ts';

// Statement node types whose kind is not implied by a Create/Alter/Drop prefix. DDL entries
// mirror GetCommandLogLevel() in src/backend/tcop/utility.c (what log_statement = 'ddl'
// logs), so the classification follows PostgreSQL's own rather than ours.
const KIND_BY_NODE_TYPE: ReadonlyMap<string, StatementKind> = new Map<string, StatementKind>([
  ['SelectStmt', 'select'],
  ['InsertStmt', 'insert'],
  ['UpdateStmt', 'update'],
  ['DeleteStmt', 'delete'],
  ['MergeStmt', 'merge'],
  ['TransactionStmt', 'transaction'],
  ['ExplainStmt', 'explain'],
  ['IndexStmt', 'ddl'],
  ['ViewStmt', 'ddl'],
  ['RuleStmt', 'ddl'],
  ['DefineStmt', 'ddl'],
  ['CompositeTypeStmt', 'ddl'],
  ['CommentStmt', 'ddl'],
  ['SecLabelStmt', 'ddl'],
  ['RenameStmt', 'ddl'],
  ['GrantStmt', 'ddl'],
  ['GrantRoleStmt', 'ddl'],
  ['RefreshMatViewStmt', 'ddl'],
  ['ImportForeignSchemaStmt', 'ddl'],
  ['ReassignOwnedStmt', 'ddl'],
  ['VariableSetStmt', 'utility'],
  ['VariableShowStmt', 'utility'],
  ['DiscardStmt', 'utility'],
  ['VacuumStmt', 'utility'],
  ['ClusterStmt', 'utility'],
  ['ReindexStmt', 'utility'],
  ['CheckPointStmt', 'utility'],
  ['CopyStmt', 'utility'],
  ['TruncateStmt', 'utility'],
  ['LockStmt', 'utility'],
  ['ConstraintsSetStmt', 'utility'],
  ['ListenStmt', 'utility'],
  ['NotifyStmt', 'utility'],
  ['UnlistenStmt', 'utility'],
  ['LoadStmt', 'utility'],
  ['CallStmt', 'utility'],
  ['DoStmt', 'utility'],
  ['PrepareStmt', 'utility'],
  ['ExecuteStmt', 'utility'],
  ['DeallocateStmt', 'utility'],
  ['DeclareCursorStmt', 'utility'],
  ['FetchStmt', 'utility'],
  ['ClosePortalStmt', 'utility'],
]);

/** Kind of a statement node type name (`SelectStmt`, `CreateStmt`…), ignoring its fields. */
export const kindOfNodeType = (nodeType: string): StatementKind => {
  const kind = KIND_BY_NODE_TYPE.get(nodeType);
  if (kind !== undefined) return kind;
  // CreateStmt, CreateTableAsStmt, AlterTableStmt, DropStmt, CreatedbStmt… all DDL.
  const isDdl =
    nodeType.startsWith('Create') || nodeType.startsWith('Alter') || nodeType.startsWith('Drop');
  return isDdl ? 'ddl' : 'other';
};

/** Node type name of a wrapped node (`{ SelectStmt: {…} }` → `SelectStmt`). */
export const nodeTypeOf = (node: Node | undefined): string | undefined => {
  if (node === undefined) return undefined;
  for (const key in node) return key;
  return undefined;
};

/** Kind of one parsed statement; SELECT … INTO creates a table, so it is DDL. */
export const classifyStatement = (node: Node | undefined): StatementKind => {
  const nodeType = nodeTypeOf(node);
  if (nodeType === undefined) return 'other';
  if (node !== undefined && 'SelectStmt' in node && node.SelectStmt.intoClause !== undefined) {
    return 'ddl';
  }
  return kindOfNodeType(nodeType);
};
