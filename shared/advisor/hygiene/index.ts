/** Index hygiene: invalid, duplicate, prefix-redundant and unused indexes, each with a DROP. */
export {
  findIndexHygiene,
  type HygieneFinding,
  type HygieneKind,
  type HygieneOptions,
  type HygieneReport,
  type HygieneSkip,
} from './hygiene.ts';
