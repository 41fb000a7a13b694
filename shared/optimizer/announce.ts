import { PublishCommand, type PublishCommandInput } from '@aws-sdk/client-sns';
import { isRetryablePublishError, type SnsPublisher } from '#shared/alerts';
import type { NewSuggestion } from '#shared/repository';

/** The SNS `kind` attribute of each suggestion kind (subscriptions filter on it). */
export const ANNOUNCEMENT_KINDS = {
  create_index: 'index_suggested',
  rewrite: 'rewrite_suggested',
  drop_index: 'index_unused',
} as const;

export interface AnnounceDeps {
  readonly sns: SnsPublisher;
  readonly topicArn: string;
  /** Extra attempts for throttling, 5xx and network errors. */
  readonly retries: number;
  /** Back-off between attempts (the handler passes a timer; tests pass a no-op). */
  readonly sleep: (ms: number) => Promise<void>;
}

/** One announcement that failed after its retries, as data. */
export interface AnnounceFailure {
  readonly suggestionId: number;
  readonly attempts: number;
  readonly error: Error;
}

const MAX_SUBJECT_CHARS = 100;
/** SNS takes at most 256 KiB per message (body and attributes); long SQL is cut well below. */
const MAX_MESSAGE_BYTES = 200_000;

const truncateUtf8 = (text: string, maxBytes: number): string => {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  const cut = bytes
    .subarray(0, maxBytes)
    .toString('utf8')
    .replace(/\uFFFD+$/, '');
  return `${cut}\n… (cut to ${maxBytes} bytes; the full text is in the repository)`;
};
const BASE_DELAY_MS = 200;

/** The Publish input for one new suggestion: a readable body, filterable attributes. */
export const buildSuggestionPublishInput = (
  topicArn: string,
  id: number,
  suggestion: NewSuggestion,
): PublishCommandInput => {
  const kind = ANNOUNCEMENT_KINDS[suggestion.kind];
  const payload = suggestion.payload;
  const what =
    suggestion.kind === 'rewrite'
      ? `rewrite suggested (${String(payload.title ?? payload.rule)})`
      : suggestion.kind === 'create_index'
        ? `index suggested on ${String(payload.table ?? '')}`
        : `index to drop (${String(payload.kind ?? 'unused')}): ${String(payload.index ?? '')}`;
  const subject = `dbopt ${suggestion.target}: ${what}`;
  const lines = [
    `Target: ${suggestion.target}`,
    `Suggestion #${id} (${suggestion.kind})`,
    ...(suggestion.ddl ? ['', suggestion.ddl] : []),
    ...(typeof payload.rewrittenSql === 'string'
      ? ['', 'Original:', String(payload.originalSql), '', 'Rewritten:', payload.rewrittenSql]
      : []),
    ...(typeof payload.costBefore === 'number' && typeof payload.costAfter === 'number'
      ? ['', `Estimated plan cost: ${payload.costBefore} → ${payload.costAfter}`]
      : []),
    ...(typeof payload.rationale === 'string' ? ['', payload.rationale] : []),
    ...(typeof payload.reason === 'string' ? ['', payload.reason] : []),
    ...(suggestion.kind === 'create_index'
      ? ['', `Build and verify: npx dbopt apply --suggestion ${id} --database-url …`]
      : []),
  ];
  return {
    TopicArn: topicArn,
    Subject:
      subject.length > MAX_SUBJECT_CHARS ? `${subject.slice(0, MAX_SUBJECT_CHARS - 1)}…` : subject,
    Message: truncateUtf8(lines.join('\n'), MAX_MESSAGE_BYTES),
    MessageAttributes: {
      kind: { DataType: 'String', StringValue: kind },
      target: { DataType: 'String', StringValue: suggestion.target },
      severity: { DataType: 'String', StringValue: 'INFO' },
    },
  };
};

/**
 * Publishes one announcement, retrying transient failures (throttling, 5xx, network) with
 * exponential back-off. Resolves with the failure as data instead of throwing.
 */
export const announceSuggestion = async (
  deps: AnnounceDeps,
  id: number,
  suggestion: NewSuggestion,
): Promise<AnnounceFailure | undefined> => {
  const input = buildSuggestionPublishInput(deps.topicArn, id, suggestion);
  for (let attempt = 1; ; attempt++) {
    try {
      await deps.sns.send(new PublishCommand(input));
      return undefined;
    } catch (err) {
      if (!isRetryablePublishError(err) || attempt > deps.retries) {
        return {
          suggestionId: id,
          attempts: attempt,
          error: err instanceof Error ? err : new Error(String(err)),
        };
      }
      await deps.sleep(BASE_DELAY_MS * 2 ** (attempt - 1));
    }
  }
};
