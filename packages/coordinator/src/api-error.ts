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
  const input = value === undefined ? {} : value;
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issues = r.error.issues.slice(0, 3).map((i) => {
    const where = i.path.length ? i.path.join('.') : what;
    if (i.code === 'unrecognized_keys') {
      const known = fieldsOf(schema);
      return `${where}: unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.join(', ')}${known === null ? '' : ` (this request takes ${known.join(', ')})`}`;
    }
    // zod words a missing field as "received undefined", which reads like a coordinator bug.
    return i.code === 'invalid_type' && valueAt(input, i.path) === undefined
      ? `${where}: missing (expected ${i.expected})`
      : `${where}: ${i.message}`;
  });
  throw new ApiError('validation_failed', `invalid ${what}: ${issues.join('; ')}`);
}

/** The field names of an object schema, or null for another kind. */
function fieldsOf(schema: z.ZodType): string[] | null {
  const shape = (schema as { shape?: unknown }).shape;
  return typeof shape === 'object' && shape !== null ? Object.keys(shape) : null;
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let v = value;
  for (const k of path) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, k)) return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}
