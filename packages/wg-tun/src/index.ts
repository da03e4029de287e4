/** @wiremesh/wg-tun: not yet built; see the issue tracker. */
export {};
