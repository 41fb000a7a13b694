import {
  SendMessageBatchCommand,
  type SendMessageBatchCommandOutput,
  type SendMessageBatchRequestEntry,
} from '@aws-sdk/client-sqs';
import type { SlowQueryMessage } from './message.ts';

/** The narrow SQS surface the collector needs; an SQSClient fits. */
export interface SqsSender {
  send(command: SendMessageBatchCommand): Promise<SendMessageBatchCommandOutput>;
}

/** A message SQS did not accept after the retries. */
export interface QueueSendFailure {
  target: string;
  fingerprint: string;
  code: string;
  message: string;
  /** SQS blamed the message itself (too big, invalid): retrying cannot help. */
  senderFault: boolean;
}

export interface QueueSendResult {
  sent: number;
  failed: QueueSendFailure[];
}

/** SendMessageBatch takes at most ten entries… */
const BATCH_SIZE = 10;
/**
 * …whose bodies and attributes add up to at most 256 KiB (the whole request fails with
 * BatchRequestTooLong otherwise). Counted in UTF-8 bytes: a 16,000-character query text with
 * non-ASCII identifiers or many escaped quotes is well over 16 KB of JSON.
 * https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html
 */
export const MAX_BATCH_BYTES = 262_144;

const toEntry = (id: string, message: SlowQueryMessage): SendMessageBatchRequestEntry => ({
  Id: id,
  MessageBody: JSON.stringify(message),
  MessageAttributes: {
    target: { DataType: 'String', StringValue: message.target },
    fingerprint: { DataType: 'String', StringValue: message.fingerprint },
  },
});

/** Size SQS counts for one entry: body plus each attribute's name, type and value. */
const entryBytes = (e: SendMessageBatchRequestEntry): number => {
  let bytes = Buffer.byteLength(e.MessageBody ?? '', 'utf8');
  for (const [name, a] of Object.entries(e.MessageAttributes ?? {})) {
    bytes += Buffer.byteLength(name, 'utf8') + Buffer.byteLength(a.DataType ?? '', 'utf8');
    bytes += Buffer.byteLength(a.StringValue ?? '', 'utf8');
  }
  return bytes;
};

type Pending = { id: string; message: SlowQueryMessage; entry: SendMessageBatchRequestEntry };

/** Splits into batches of at most ten entries and {@link MAX_BATCH_BYTES}. */
const toBatches = (messages: readonly SlowQueryMessage[]): Pending[][] => {
  const batches: Pending[][] = [];
  let batch: Pending[] = [];
  let bytes = 0;
  messages.forEach((message, i) => {
    const entry = toEntry(String(i), message);
    const size = entryBytes(entry);
    if (batch.length > 0 && (batch.length >= BATCH_SIZE || bytes + size > MAX_BATCH_BYTES)) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push({ id: entry.Id as string, message, entry });
    bytes += size;
  });
  if (batch.length > 0) batches.push(batch);
  return batches;
};

/**
 * Sends one message per slow fingerprint with SendMessageBatch, up to ten (and 256 KiB) per
 * request. Entries SQS
 * rejects without blaming the sender (throttling, internal errors) and whole requests that
 * fail are retried up to `retries` times; what still fails is returned as data, never thrown.
 */
export const sendSlowQueryMessages = async (
  sqs: SqsSender,
  queueUrl: string,
  messages: readonly SlowQueryMessage[],
  options: { retries?: number } = {},
): Promise<QueueSendResult> => {
  const retries = options.retries ?? 2;
  const failed: QueueSendFailure[] = [];
  let sent = 0;
  for (const batch of toBatches(messages)) {
    let pending = batch;
    for (let attempt = 0; pending.length > 0; attempt += 1) {
      const last = attempt >= retries;
      const entries = pending.map((p) => p.entry);
      let output: SendMessageBatchCommandOutput;
      try {
        output = await sqs.send(
          new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }),
        );
      } catch (err) {
        if (!last) continue;
        const e = err as { name?: string; message?: string };
        for (const p of pending) {
          failed.push({
            target: p.message.target,
            fingerprint: p.message.fingerprint,
            code: e.name ?? 'Error',
            message: e.message ?? String(err),
            senderFault: false,
          });
        }
        break;
      }
      sent += output.Successful?.length ?? 0;
      const byId = new Map(pending.map((p) => [p.id, p]));
      const retry: typeof pending = [];
      for (const f of output.Failed ?? []) {
        const p = f.Id !== undefined ? byId.get(f.Id) : undefined;
        if (!p) continue;
        if (!f.SenderFault && !last) {
          retry.push(p);
          continue;
        }
        failed.push({
          target: p.message.target,
          fingerprint: p.message.fingerprint,
          code: f.Code ?? 'Unknown',
          message: f.Message ?? 'rejected by SQS',
          senderFault: Boolean(f.SenderFault),
        });
      }
      pending = retry;
    }
  }
  return { sent, failed };
};
