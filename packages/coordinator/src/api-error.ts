/**
 * The coordinator's one error type: a code from the protocol's ERRORS registry and a message for
 * the user. The HTTP layer turns it into `{code, message}` with the registry's status. Messages
 * never contain secrets.
 */
import { statusOf, type ErrorCode } from '@wiremesh/protocol';
import type { z } from 'zod';

/** An error the API reports to its client. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  /** Seconds after which a rate-limited client may retry. */
  retryAfterS?: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }

  /** The HTTP status of this error's code. */
  get status(): number {
    return statusOf(this.code);
  }
}

/**
 * Parses `value` with `schema`. Returns the parsed value; throws ApiError('validation_failed')
 * naming the first problems (paths and zod's messages, never the offending values).
 */
export function parseBody<S extends z.ZodType>(
  schema: S,
  value: unknown,
  what = 'body',
): z.infer<S> {
  const r = schema.safeParse(value === undefined ? {} : value);
  if (r.success) return r.data;
  const issues = r.error.issues
    .slice(0, 3)
    .map((i) => `${i.path.length ? i.path.join('.') : what}: ${i.message}`);
  throw new ApiError('validation_failed', `invalid ${what}: ${issues.join('; ')}`);
}
