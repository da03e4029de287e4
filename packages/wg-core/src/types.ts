/** The engine's vocabulary at its boundary: endpoints in, actions out, typed drop reasons. */

/**
 * A UDP endpoint: a numeric IP address in text form and a port. The one endpoint shape of the
 * project: @wiremesh/protocol's wire `Endpoint` ({ip, port}) and the agent use it as it is.
 */
export interface Endpoint {
  readonly ip: string;
  readonly port: number;
}

/** Why the engine dropped a packet. Every untrusted input that is not accepted ends as one of these. */
export type DropReason =
  | 'malformed' // wrong length or unknown message type
  | 'mac1-invalid'
  | 'mac2-missing' // under load without a valid cookie: answered with a cookie reply
  | 'ratelimited'
  | 'no-private-key'
  | 'handshake-invalid' // decryption or authentication of a handshake message failed
  | 'unknown-peer' // an initiation from a static key we do not know
  | 'initiation-replay' // TAI64N timestamp not newer than the last accepted one
  | 'initiation-flood' // initiations from one peer faster than HANDSHAKE_INITIATION_RATE_MS
  | 'low-order-point'
  | 'unknown-index' // receiver index not in the index table
  | 'unexpected-response' // a response or cookie reply that answers nothing we sent
  | 'decrypt-failed'
  | 'replayed-counter'
  | 'keypair-expired'
  | 'invalid-inner-packet' // decrypted payload is not an IPv4/IPv6 packet of consistent length
  | 'source-not-allowed' // decrypted packet's source address not in the sender's allowed IPs
  | 'no-route' // outbound packet whose destination matches no peer's allowed IPs
  | 'no-endpoint' // peer has no known endpoint to send to
  | 'queue-full'; // too many packets waiting for a handshake

/** What the engine asks its shell to do. Pushed into a caller-owned array; the caller owns `data`. */
export type Action =
  | { readonly type: 'send'; readonly endpoint: Endpoint; readonly data: Uint8Array }
  | { readonly type: 'deliver'; readonly data: Uint8Array }
  | { readonly type: 'drop'; readonly reason: DropReason };

/** Wall-clock time in milliseconds since the Unix epoch; used only for TAI64N timestamps. */
export type WallClock = () => number;
