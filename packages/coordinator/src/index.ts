/** @wiremesh/coordinator: not yet built; see the issue tracker. */
export {};
