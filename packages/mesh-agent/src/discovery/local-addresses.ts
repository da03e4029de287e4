/**
 * The host's own addresses: endpoint candidates the agent reports (peers on the same LAN reach it
 * there, DESIGN.md "mesh-agent") and the subnets netmapToConfig must not route into the mesh.
 */
import { networkInterfaces } from 'node:os';
import { MAX_LOCAL_ENDPOINTS, type Endpoint } from '@wiremesh/protocol';
import { INTERFACE_PREFIX } from '../constants.js';
import type { LocalAddress } from '../reconcile/netmap.js';

/**
 * Global-scope addresses of the host's interfaces, leaving out loopback, link-local and every
 * interface in `exclude` or named like the agent's (`wm-*`): a tunnel address is never a way to
 * reach the tunnel. Returns a new array.
 */
export function localAddresses(exclude: ReadonlySet<string> = new Set()): LocalAddress[] {
  const out: LocalAddress[] = [];
  for (const [name, list] of Object.entries(networkInterfaces())) {
    if (exclude.has(name) || name.startsWith(INTERFACE_PREFIX)) continue;
    for (const a of list ?? []) {
      if (a.internal || a.cidr === null) continue;
      if (a.family === 'IPv6' && (a.address.toLowerCase().startsWith('fe80') || a.scopeid !== 0))
        continue;
      if (a.family === 'IPv4' && a.address.startsWith('169.254.')) continue;
      out.push({ address: a.address, cidr: a.cidr });
    }
  }
  return out;
}

/** The endpoint candidates to report: each local address with `port`, at most MAX_LOCAL_ENDPOINTS. */
export function localEndpoints(addresses: readonly LocalAddress[], port: number): Endpoint[] {
  return addresses.slice(0, MAX_LOCAL_ENDPOINTS).map((a) => ({ ip: a.address, port }));
}
