import type { NewSuggestion, Repository } from '#shared/repository';
import type { AdvisorReport, IndexProposal } from './types.ts';

/** The stable deduplication key of an index proposal: what the index is, not what it is called. */
export const proposalKey = (
  p: Pick<IndexProposal, 'table' | 'method' | 'keys' | 'include' | 'where'>,
): string =>
  `${p.table} USING ${p.method} (${p.keys.join(', ')})${p.include.length > 0 ? ` INCLUDE (${p.include.join(', ')})` : ''}${p.where ? ` WHERE ${p.where}` : ''}`;

/** The repository row for one proposal (kind `create_index`). */
export const toSuggestion = (target: string, p: IndexProposal): NewSuggestion => ({
  target,
  kind: 'create_index',
  key: proposalKey(p),
  ddl: p.ddl,
  payload: {
    table: p.table,
    method: p.method,
    keys: p.keys,
    include: p.include,
    where: p.where,
    name: p.name,
    serves: p.serves,
    benefit: p.benefit,
    sizeBytes: p.sizeBytes,
    writeOverhead: p.writeOverhead,
    evaluatedWith: p.evaluatedWith,
    rationale: p.rationale,
  },
});

/**
 * Stores every proposal of `report` as a `create_index` suggestion for `target` (status
 * `proposed` when new; an existing one keeps its status and gets the fresh payload). Returns
 * which were created, so the caller announces only those (SNS).
 */
export const storeIndexProposals = async (
  repository: Pick<Repository, 'upsertSuggestion'>,
  target: string,
  report: Pick<AdvisorReport, 'proposals'>,
): Promise<{ id: number; created: boolean; proposal: IndexProposal }[]> => {
  const stored: { id: number; created: boolean; proposal: IndexProposal }[] = [];
  for (const proposal of report.proposals) {
    const { id, created } = await repository.upsertSuggestion(toSuggestion(target, proposal));
    stored.push({ id, created, proposal });
  }
  return stored;
};
