import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type SlowQueryMessage,
  SlowQueryMessageSchema,
  sendSlowQueryMessages,
  toSlowQueryMessage,
} from '#shared/stats';
import { MAX_QUERY_CHARS } from '../../../shared/stats/message.ts';

const QUEUE = 'https://sqs.eu-west-1.amazonaws.com/000000000000/slow';

const message = (i: number): SlowQueryMessage =>
  SlowQueryMessageSchema.parse({
    version: 1,
    target: 'primary',
    database: 'app',
    queryId: String(1_000 + i),
    fingerprint: `fp${i}`,
    query: `SELECT * FROM t${i} WHERE id = $1`,
    calls: 10,
    totalExecTimeMs: 500,
    meanExecTimeMs: 50,
    stddevExecTimeMs: 5,
    rows: 10,
    sharedBlksHit: 100,
    sharedBlksRead: 1,
    tempBlksWritten: 0,
    intervalSeconds: 300,
    observedAt: '2026-11-27T10:00:00.000Z',
    findings: [{ kind: 'seq_scan', detail: 'sequential scan of public.t', relation: 'public.t' }],
  });

describe('sendSlowQueryMessages', () => {
  const sqsMock = mockClient(SQSClient);
  const sqs = new SQSClient({ region: 'eu-west-1' });
  beforeEach(() => sqsMock.reset());
  afterAll(() => sqsMock.restore());

  const acceptAll = () =>
    sqsMock.on(SendMessageBatchCommand).callsFake((input: SendMessageBatchCommand['input']) => ({
      Successful: (input.Entries ?? []).map((e) => ({
        Id: e.Id,
        MessageId: 'm',
        MD5OfMessageBody: 'x',
      })),
      Failed: [],
    }));

  it('sends ten entries per SendMessageBatch with the message as JSON body and filterable attributes', async () => {
    // Prepare
    acceptAll();
    const messages = Array.from({ length: 23 }, (_, i) => message(i));
    // Act
    const result = await sendSlowQueryMessages(sqs, QUEUE, messages);
    // Assess
    const calls = sqsMock.commandCalls(SendMessageBatchCommand);
    expect(calls.map((c) => c.args[0].input.Entries?.length)).toEqual([10, 10, 3]);
    expect(result).toEqual({ sent: 23, failed: [] });
    const first = calls[0]?.args[0].input;
    expect(first?.QueueUrl).toBe(QUEUE);
    expect(first?.Entries?.[0]).toEqual({
      Id: '0',
      MessageBody: JSON.stringify(messages[0]),
      MessageAttributes: {
        target: { DataType: 'String', StringValue: 'primary' },
        fingerprint: { DataType: 'String', StringValue: 'fp0' },
      },
    });
  });

  it('keeps each SendMessageBatch under 256 KiB when long non-ASCII query texts would exceed it', async () => {
    // Prepare: ten 16,000-character texts of two-byte characters are ~320 KB together.
    acceptAll();
    const long = `SELECT "${'é'.repeat(15_990)}" FROM t`;
    const messages = Array.from({ length: 10 }, (_, i) => ({ ...message(i), query: long }));
    // Act
    const result = await sendSlowQueryMessages(sqs, QUEUE, messages);
    // Assess
    const requests = sqsMock.commandCalls(SendMessageBatchCommand).map((c) => c.args[0].input);
    const bytes = requests.map((r) =>
      (r.Entries ?? []).reduce(
        (sum, e) =>
          sum +
          Buffer.byteLength(e.MessageBody ?? '') +
          Object.entries(e.MessageAttributes ?? {}).reduce(
            (n, [name, a]) =>
              n + Buffer.byteLength(name) + Buffer.byteLength(`${a.DataType}${a.StringValue}`),
            0,
          ),
        0,
      ),
    );
    expect(requests.length).toBeGreaterThan(1);
    expect(Math.max(...bytes)).toBeLessThanOrEqual(262_144);
    expect(requests.flatMap((r) => r.Entries?.map((e) => e.Id))).toEqual(
      messages.map((_, i) => String(i)),
    );
    expect(result).toEqual({ sent: 10, failed: [] });
  });

  it('retries entries SQS failed without blaming the sender, and reports sender faults at once', async () => {
    // Prepare
    sqsMock
      .on(SendMessageBatchCommand)
      .resolvesOnce({
        Successful: [{ Id: '0', MessageId: 'a', MD5OfMessageBody: 'x' }],
        Failed: [
          { Id: '1', Code: 'InternalError', SenderFault: false, Message: 'try again' },
          { Id: '2', Code: 'InvalidParameterValue', SenderFault: true, Message: 'too big' },
        ],
      })
      .resolvesOnce({
        Successful: [{ Id: '1', MessageId: 'b', MD5OfMessageBody: 'x' }],
        Failed: [],
      });
    // Act
    const result = await sendSlowQueryMessages(sqs, QUEUE, [message(0), message(1), message(2)]);
    // Assess
    const calls = sqsMock.commandCalls(SendMessageBatchCommand);
    expect(calls[1]?.args[0].input.Entries?.map((e) => e.Id)).toEqual(['1']);
    expect(result.sent).toBe(2);
    expect(result.failed).toEqual([
      {
        target: 'primary',
        fingerprint: 'fp2',
        code: 'InvalidParameterValue',
        message: 'too big',
        senderFault: true,
      },
    ]);
  });

  it('returns a batch that keeps failing after the retries as data, never throws', async () => {
    // Prepare
    sqsMock
      .on(SendMessageBatchCommand)
      .rejects(Object.assign(new Error('socket hang up'), { name: 'NetworkError' }));
    // Act
    const result = await sendSlowQueryMessages(sqs, QUEUE, [message(0), message(1)], {
      retries: 2,
    });
    // Assess
    expect(sqsMock.commandCalls(SendMessageBatchCommand)).toHaveLength(3);
    expect(result.sent).toBe(0);
    expect(result.failed.map((f) => [f.fingerprint, f.code])).toEqual([
      ['fp0', 'NetworkError'],
      ['fp1', 'NetworkError'],
    ]);
  });
});

describe('SlowQueryMessageSchema', () => {
  it.each<[string, Record<string, unknown>]>([
    ['a wrong version', { version: 2 }],
    ['a negative count', { calls: -1 }],
    ['a non-ISO time', { observedAt: 'yesterday' }],
    ['an unknown finding kind', { findings: [{ kind: 'vibes', detail: 'x' }] }],
  ])('refuses %s', (_name, patch) => {
    // Act / Assess
    expect(SlowQueryMessageSchema.safeParse({ ...message(0), ...patch }).success).toBe(false);
  });
});

describe('toSlowQueryMessage', () => {
  it('caps a long statement text at MAX_QUERY_CHARS so a message stays far below the SQS limit', () => {
    // Prepare
    const { query: _query, ...rest } = message(0);
    const statement = {
      ...rest,
      query: `SELECT ${'x, '.repeat(20_000)}1`,
      sumSquaresMs2: 0,
      entries: 1,
    };
    // Act
    const built = toSlowQueryMessage(statement, {
      target: 'primary',
      database: 'app',
      intervalSeconds: 300,
      observedAt: new Date('2026-11-27T10:00:00Z'),
      findings: [],
    });
    // Assess
    expect(built.query).toHaveLength(MAX_QUERY_CHARS);
    expect(statement.query.startsWith(built.query)).toBe(true);
  });
});
