// Roaming (whitepaper section 2.1, "the most recent IP address and port ... from which it received
// an authenticated packet"): a road-warrior peer changes its listen port, moves to another NAT,
// onto the internet, to another address, and restarts on a new port; the public peer follows each
// time after the roamer's next authenticated packet, and traffic continues both ways. One suite
// over wireguard-go and wgts, on the namespace topology harness.
import { afterAll, describe, expect, test } from 'vitest';

import { cleanupAll, pollUntil } from './harness/netns.js';
import { withTopology, type Topology, type TopologySpec } from './harness/topology.js';
import {
  startDaemon,
  tempFile,
  uniqueIface,
  wgDump,
  wgKeypair,
  type Daemon,
  type Impl,
  type WgKeypair,
} from './harness/wgts.js';

afterAll(() => cleanupAll());

const INNER = { s: '10.98.0.1', m: '10.98.0.2' };
const PORT_S = 51820;
const PORTS_M = [40001, 40002, 40003] as const;
/** The roamer's first packet may wait for a handshake (and one 5 s retry). */
const FOLLOW_MS = 12_000;

/** [roamer, follower]: wgts roams against both, and wgts follows wireguard-go. */
const ROAM_PAIRS: [Impl, Impl][] = [
  ['wgts', 'wireguard-go'],
  ['wgts', 'wgts'],
  ['wireguard-go', 'wgts'],
];

const spec: TopologySpec = {
  prefix: 'wmroam',
  routers: [
    { name: 'rA', nat: 'home' },
    { name: 'rB', nat: 'home' },
  ],
  lans: [
    { name: 'lanA', router: 'rA', ipv4: '192.168.1.0/24' },
    { name: 'lanB', router: 'rB', ipv4: '192.168.2.0/24' },
  ],
  hosts: [
    { name: 's', lan: 'internet' },
    { name: 'm', lan: 'lanA' },
  ],
};

async function pingOnce(topo: Topology, node: string, address: string): Promise<boolean> {
  const r = await topo.exec(node, 'ping', ['-n', '-c', '1', '-W', '1', address], {
    timeoutMs: 5_000,
  });
  return r.status === 0;
}

async function pings(
  topo: Topology,
  node: string,
  address: string,
  count: number,
): Promise<number> {
  const r = await topo.exec(
    node,
    'ping',
    ['-n', '-c', String(count), '-i', '0.2', '-W', '1', address],
    {
      timeoutMs: 5_000 + count * 1_000,
    },
  );
  return Number(/(\d+) received/.exec(r.stdout)?.[1] ?? 0);
}

/** Starts `impl` on m with `key`, listening on `port`, with s as its endpoint; link up. */
async function startRoamer(
  topo: Topology,
  impl: Impl,
  key: WgKeypair,
  sKey: string,
  port: number,
): Promise<Daemon> {
  const d = await startDaemon(topo.ns('m'), impl, uniqueIface('m'));
  await topo.check('m', 'wg', [
    'set',
    d.iface,
    'private-key',
    tempFile(key.privateKey, 'm.key'),
    'listen-port',
    String(port),
    'peer',
    sKey,
    'allowed-ips',
    `${INNER.s}/32`,
    'endpoint',
    `${topo.node('s').ipv4}:${PORT_S}`,
  ]);
  await topo.check('m', 'ip', ['address', 'add', `${INNER.m}/24`, 'dev', d.iface]);
  await topo.check('m', 'ip', ['link', 'set', d.iface, 'up']);
  return d;
}

describe.each(ROAM_PAIRS)('%s roams, %s follows', (roamer, follower) => {
  test('port change, move to another NAT, onto the internet, new address, restart on a new port', async () => {
    await withTopology(spec, async (topo) => {
      const ks = wgKeypair();
      const km = wgKeypair();
      const s = await startDaemon(topo.ns('s'), follower, uniqueIface('s'));
      // s has no endpoint for m: it only ever learns it from m's packets.
      await topo.check('s', 'wg', [
        'set',
        s.iface,
        'private-key',
        tempFile(ks.privateKey, 's.key'),
        'listen-port',
        String(PORT_S),
        'peer',
        km.publicKey,
        'allowed-ips',
        `${INNER.m}/32`,
      ]);
      await topo.check('s', 'ip', ['address', 'add', `${INNER.s}/24`, 'dev', s.iface]);
      await topo.check('s', 'ip', ['link', 'set', s.iface, 'up']);
      let m = await startRoamer(topo, roamer, km, ks.publicKey, PORTS_M[0]);
      const timings: string[] = [];

      /** m sends first; s must then show m's new public endpoint and reach m through it. */
      const follows = async (step: string, port: number, sameSession: boolean): Promise<void> => {
        const before = (await wgDump(topo.ns('s'), s.iface)).peers[0]!;
        const started = performance.now();
        await pollUntil(
          `m to reach s after: ${step}`,
          () => pingOnce(topo, 'm', INNER.s),
          FOLLOW_MS,
          0,
        );
        const firstMs = performance.now() - started;
        const peer = (await wgDump(topo.ns('s'), s.iface)).peers[0]!;
        // Home routers keep source ports, so m's port shows through its NAT unchanged.
        expect(peer.endpoint, step).toBe(`${topo.publicAddress('m').ipv4}:${port}`);
        if (sameSession)
          expect(peer.latestHandshake, `${step}: no new handshake needed`).toBe(
            before.latestHandshake,
          );
        else expect(peer.latestHandshake, `${step}: a new handshake`).toBeGreaterThan(0);
        expect(await pings(topo, 's', INNER.m, 3), `${step}: s reaches m`).toBe(3);
        timings.push(`${step} ${firstMs.toFixed(0)} ms`);
      };

      // wireguard-go 0.0.20220316 keeps sending from its cached ("sticky") source address after
      // that address is gone: sendmsg fails with ENETUNREACH and only EINVAL clears the cache, and
      // its route listener asks for a route from the vanished source, which fails too. So when it
      // roams it gets its endpoint set again (which drops the cached source) after each move.
      // wgts needs no such help.
      const afterMove = async (): Promise<void> => {
        if (roamer !== 'wireguard-go') return;
        await topo.check('m', 'wg', [
          'set',
          m.iface,
          'peer',
          ks.publicKey,
          'endpoint',
          `${topo.node('s').ipv4}:${PORT_S}`,
        ]);
      };

      await follows('first contact from behind rA', PORTS_M[0], false);
      await topo.check('m', 'wg', ['set', m.iface, 'listen-port', String(PORTS_M[1])]);
      await follows('listen port change', PORTS_M[1], true);
      await topo.moveHost('m', 'lanB');
      await afterMove();
      await follows('move from rA to rB', PORTS_M[1], true);
      await topo.moveHost('m', 'internet');
      await afterMove();
      await follows('move onto the internet', PORTS_M[1], true);
      await topo.readdress('m', { ipv4: '203.0.113.200' });
      await afterMove();
      await follows('new public address', PORTS_M[1], true);
      await m.stop();
      m = await startRoamer(topo, roamer, km, ks.publicKey, PORTS_M[2]);
      await follows('restart on a new port', PORTS_M[2], false);
      expect(s.proc.running && m.proc.running).toBe(true);
      console.log(`${roamer} roaming, ${follower} following: ${timings.join('; ')}`);
    });
  });
});
