/**
 * The protocol version: one integer shared by agent and coordinator (CHANGELOG.md in this package
 * records every change with its date). A peer speaking a version outside the supported range is refused.
 */

/** The version this build of the protocol package speaks. */
export const PROTOCOL_VERSION = 1;

/** The oldest version a coordinator built from this package still accepts from agents. */
export const MIN_SUPPORTED_PROTOCOL_VERSION = 1;
