/** @wiremesh/protocol: not yet built; see the issue tracker. */
export {};
