/**
 * The one registry of coordinator error codes: every error body is `{code, message}` where `code`
 * comes from ERRORS, and the HTTP status is the registry's. Clients switch on `code`, never on text.
 */
import { z } from 'zod';

/** Every error code with its HTTP status and what a client should tell its user. */
export const ERRORS = {
  validation_failed: { status: 400, hint: 'the request body or query did not match the schema' },
  invalid_json: { status: 400, hint: 'the request body is not valid JSON' },
  bad_request: {
    status: 400,
    hint: 'the HTTP request itself is malformed (framing, URL encoding)',
  },
  unsupported_protocol_version: { status: 400, hint: 'upgrade the agent or the coordinator' },
  auth_required: { status: 401, hint: 'send Authorization: Bearer <token>' },
  invalid_token: { status: 401, hint: 'the token is unknown, malformed or was rotated' },
  enrollment_key_required: { status: 401, hint: 'this network needs an enrollment key (--key)' },
  forbidden: { status: 403, hint: 'this token may not use this route' },
  enrollment_key_invalid: {
    status: 403,
    hint: 'the enrollment key is unknown, revoked or for another network',
  },
  enrollment_key_expired: { status: 403, hint: 'ask the admin for a new enrollment key' },
  enrollment_key_exhausted: {
    status: 403,
    hint: 'the key has no uses left; ask the admin for a new one',
  },
  node_pending: { status: 403, hint: 'the node waits for an admin to approve it' },
  node_rejected: { status: 403, hint: 'an admin rejected this node' },
  node_removed: { status: 403, hint: 'this node was removed; join again' },
  not_found: { status: 404, hint: 'no such resource' },
  route_not_found: { status: 404, hint: 'no such route' },
  request_timeout: { status: 408, hint: 'the request did not arrive in time; send it again' },
  name_taken: { status: 409, hint: 'choose another name' },
  node_exists: { status: 409, hint: 'a node with this public key is already in the network' },
  public_domain: {
    status: 409,
    hint: 'the DNS domain ends in a public top-level domain; pick another or confirm it (--force)',
  },
  conflict: { status: 409, hint: 'the resource is in a state that does not allow this' },
  address_space_exhausted: {
    status: 409,
    hint: 'the network has no free address; release removed nodes or widen the range',
  },
  payload_too_large: { status: 413, hint: 'the request body is too large' },
  unsupported_media_type: { status: 415, hint: 'send Content-Type: application/json' },
  rate_limited: { status: 429, hint: 'too many requests; retry after the Retry-After seconds' },
  headers_too_large: { status: 431, hint: 'the request headers are too large' },
  internal: { status: 500, hint: 'the coordinator failed; see its log' },
  unavailable: { status: 503, hint: 'the coordinator cannot reach its database; retry later' },
} as const satisfies Record<string, { status: number; hint: string }>;

/** A stable error code from the registry. */
export type ErrorCode = keyof typeof ERRORS;

const CODES = Object.keys(ERRORS) as [ErrorCode, ...ErrorCode[]];

/** Schema of an error code (any code in ERRORS). */
export const ErrorCodeSchema = z.enum(CODES);

/** The body of every non-2xx coordinator response. */
export const ErrorBody = z.object({ code: ErrorCodeSchema, message: z.string() });
/** The body of every non-2xx coordinator response. */
export type ErrorBody = z.infer<typeof ErrorBody>;

/** The HTTP status the registry assigns to `code`. */
export function statusOf(code: ErrorCode): number {
  return ERRORS[code].status;
}
