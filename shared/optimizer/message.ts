import { type SlowQueryMessage, SlowQueryMessageSchema } from '#shared/stats';
import { OptimizerError } from './errors.ts';

/**
 * Parses one SQS body into a {@link SlowQueryMessage}. A body that is not JSON, or does not
 * match the schema, raises `MESSAGE_INVALID` naming every bad field, e.g.
 * `query: Invalid input: expected string, received undefined`.
 */
export const parseSlowQueryMessage = (body: string): SlowQueryMessage => {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (err) {
    throw new OptimizerError(
      'MESSAGE_INVALID',
      `The message body is not JSON: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const parsed = SlowQueryMessageSchema.safeParse(json);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`);
    throw new OptimizerError(
      'MESSAGE_INVALID',
      `Invalid slow-query message: ${fields.join('; ')}`,
      {
        details: { fields: parsed.error.issues.map((i) => i.path.join('.')) },
      },
    );
  }
  return parsed.data;
};
