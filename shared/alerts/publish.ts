import { PublishCommand, type PublishCommandInput } from '@aws-sdk/client-sns';
import { AlertError } from './errors.ts';

/** The one SNS call the alerter makes; an `SNSClient` satisfies it. */
export interface SnsPublisher {
  send(command: PublishCommand): Promise<unknown>;
}

export interface PublishRetryOptions {
  /** Extra attempts after the first, for throttling, 5xx and network errors only. */
  retries: number;
  /** First back-off delay; doubles per attempt, half of it jittered. */
  baseDelayMs: number;
  maxDelayMs: number;
  sleep: (ms: number) => Promise<void>;
  /** Uniform in [0, 1); injected so tests are deterministic. */
  random: () => number;
}

/** SNS / AWS error names that mean "try again later" rather than "this request is wrong". */
const RETRYABLE_NAMES: ReadonlySet<string> = new Set([
  'ThrottledException',
  'KMSThrottlingException',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'InternalErrorException',
  'InternalFailure',
  'ServiceUnavailable',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
]);

/** Socket-level failures (Node `err.code`) that a later attempt may not hit. */
const RETRYABLE_NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
]);

interface AwsLikeError {
  name?: unknown;
  code?: unknown;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

/**
 * Throttling (429, ThrottledException), server errors (5xx) and network errors are worth
 * another attempt; authorization, missing topic and invalid parameters are not.
 */
export const isRetryablePublishError = (err: unknown): boolean => {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as AwsLikeError;
  if (e.$retryable) return true;
  if (typeof e.name === 'string' && RETRYABLE_NAMES.has(e.name)) return true;
  if (typeof e.code === 'string' && RETRYABLE_NETWORK_CODES.has(e.code)) return true;
  const status = e.$metadata?.httpStatusCode;
  return typeof status === 'number' && (status === 429 || status >= 500);
};

/** Exponential back-off with "equal jitter": half the delay fixed, half random. */
const backoffMs = (attempt: number, options: PublishRetryOptions): number => {
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + (options.random() * ceiling) / 2);
};

const messageIdOf = (response: unknown): string | undefined => {
  const id = (response as { MessageId?: unknown } | undefined)?.MessageId;
  return typeof id === 'string' ? id : undefined;
};

/**
 * Publishes once, retrying transient failures up to `retries` times. Rejects with
 * {@link AlertError} `ALERT_PUBLISH_FAILED` (cause: the last SNS error, details.attempts).
 */
export const publishWithRetry = async (
  sns: SnsPublisher,
  input: PublishCommandInput,
  options: PublishRetryOptions,
): Promise<{ messageId: string | undefined; attempts: number }> => {
  for (let attempt = 1; ; attempt++) {
    try {
      const response = await sns.send(new PublishCommand(input));
      return { messageId: messageIdOf(response), attempts: attempt };
    } catch (err) {
      const retryable = isRetryablePublishError(err);
      if (!retryable || attempt > options.retries) {
        const name = (err as { name?: unknown }).name;
        throw new AlertError(
          'ALERT_PUBLISH_FAILED',
          `SNS Publish failed after ${attempt} attempt(s) (${String(name ?? 'error')}: ${(err as Error).message})` +
            (retryable
              ? '; it is retried on the next run'
              : '; check the topic ARN and the publish permission (sns:Publish, kms:GenerateDataKey for encrypted topics)'),
          { cause: err, details: { attempts: attempt, retryable } },
        );
      }
      await options.sleep(backoffMs(attempt, options));
    }
  }
};
