/** @wiremesh/mesh-agent: not yet built; see the issue tracker. */
export {};
