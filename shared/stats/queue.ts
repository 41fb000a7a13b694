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

/** SendMessageBatch takes at most ten entries. */
const BATCH_SIZE = 10;

/**
 * Sends one message per slow fingerprint with SendMessageBatch, ten per request. Entries SQS
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
  for (let start = 0; start < messages.length; start += BATCH_SIZE) {
    const batch = messages.slice(start, start + BATCH_SIZE);
    let pending: { id: string; message: SlowQueryMessage }[] = batch.map((message, i) => ({
      id: String(start + i),
      message,
    }));
    for (let attempt = 0; pending.length > 0; attempt += 1) {
      const last = attempt >= retries;
      const entries: SendMessageBatchRequestEntry[] = pending.map((p) => ({
        Id: p.id,
        MessageBody: JSON.stringify(p.message),
        MessageAttributes: {
          target: { DataType: 'String', StringValue: p.message.target },
          fingerprint: { DataType: 'String', StringValue: p.message.fingerprint },
        },
      }));
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
