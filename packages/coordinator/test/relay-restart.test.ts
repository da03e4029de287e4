// The relay fallback across a coordinator restart, on SQLite and PostgreSQL: relay decisions and
// the pairs' waits are in the database, so the restarted coordinator keeps a relayed pair's relay
// in the maps at once and relays a waiting pair when its wait runs out, not a whole wait later.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type NetworkMap, type PeerStatus } from '@wiremesh/protocol';
import { startCoordinator, type Coordinator } from '../src/index.js';
import { api, autoApproveNetwork } from './helpers.js';
import { startPostgres, type PgServer } from './pg-server.js';

const RELAY_AFTER_MS = 15_000;

let pg: PgServer | undefined;
afterAll(() => pg?.stop());

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`relay fallback across a restart (${dialect})`, () => {
    it('keeps a relayed pair relayed at once and goes on with a waiting pair’s wait', async () => {
      let now = 1_700_000_000_000;
      const dir = mkdtempSync(join(tmpdir(), 'wm-coord-restart-'));
      let database: string | undefined;
      if (dialect === 'postgres') {
        pg ??= await startPostgres();
        database = pg.createDatabase('wiremesh_restart');
      }
      const start = () =>
        startCoordinator({
          listen: '127.0.0.1:0',
          dataDir: dir,
          ...(database === undefined ? {} : { database }),
          logger: pino({ level: 'silent' }),
          clock: () => now,
          relayAfterMs: RELAY_AFTER_MS,
        });
      let c: Coordinator = await start();
      try {
        const admin = { token: c.adminToken ?? '' };
        expect(admin.token).not.toBe('');
        const reg = await autoApproveNetwork(c.url, admin.token, 'nat', '10.9.0.0/16');
        const [a, d, e, r] = [await reg('a'), await reg('d'), await reg('e'), await reg('r')];
        expect(
          (
            await api(c.url, 'PUT', `/api/v1/nodes/${r.id}/relay`, {
              ...admin,
              body: { relayedNodeIds: [] },
            })
          ).status,
        ).toBe(200);
        const networkId = (await api(c.url, 'GET', '/api/v1/networks/nat', admin)).body
          .id as string;
        const status = (pk: string, ageMs: number | null): PeerStatus => ({
          publicKey: pk,
          latestHandshakeMs: null,
          rxBytes: 0,
          txBytes: 0,
          endpoint: null,
          handshakeAgeMs: ageMs,
        });
        const checkin = async (who: { secret: string }, peers: PeerStatus[]) => {
          const res = await api(c.url, 'POST', '/api/v1/node/checkin', {
            token: who.secret,
            body: { protocolVersion: PROTOCOL_VERSION, peers },
          });
          expect(res.status).toBe(200);
        };
        // a and d have configured each other from the start, a and e only once `eJoined`; no
        // direct handshake ever; everyone reaches the relay r.
        let eJoined = false;
        const round = async () => {
          await checkin(a, [
            status(d.pk, null),
            ...(eJoined ? [status(e.pk, null)] : []),
            status(r.pk, 1000),
          ]);
          await checkin(d, [status(a.pk, null), status(r.pk, 1000)]);
          await checkin(e, [...(eJoined ? [status(a.pk, null)] : []), status(r.pk, 1000)]);
          await checkin(r, [status(a.pk, 1000), status(d.pk, 1000), status(e.pk, 1000)]);
        };
        const mapOf = async (id: string) =>
          (await api<NetworkMap>(c.url, 'GET', `/api/v1/nodes/${id}/map`, admin)).body;
        // Check-ins also start evaluations by themselves: the assertions are on what the store
        // holds after an evaluation, which is what agents see.
        const evaluate = async () => {
          await round();
          return (c.relayFallback ?? expect.unreachable('relay fallback is on')).evaluate(
            networkId,
          );
        };

        const t0 = now;
        await evaluate();
        now = t0 + RELAY_AFTER_MS;
        await evaluate();
        expect((await mapOf(a.id)).self.peerRelays).toEqual([
          { peerId: d.id, relayId: r.id, reason: 'no_direct_handshake' },
        ]);
        now = t0 + 20_000;
        eJoined = true;
        expect((await evaluate()).nextCheckAt).toBe(t0 + 20_000 + RELAY_AFTER_MS);

        await c.close();
        now = t0 + 30_000;
        c = await start();
        // Before any check-in reaches the new coordinator.
        expect((await mapOf(a.id)).self.peerRelays).toEqual([
          { peerId: d.id, relayId: r.id, reason: 'no_direct_handshake' },
        ]);
        expect((await mapOf(d.id)).self.peerRelays).toEqual([
          { peerId: a.id, relayId: r.id, reason: 'no_direct_handshake' },
        ]);
        // a-e's wait began before the restart and runs out at t0 + 35 s, not 15 s from now.
        const d1 = await evaluate();
        expect(d1.remove).toEqual([]);
        expect(d1.nextCheckAt).toBe(t0 + 20_000 + RELAY_AFTER_MS);
        expect((await mapOf(a.id)).self.peerRelays).toEqual([
          { peerId: d.id, relayId: r.id, reason: 'no_direct_handshake' },
        ]);
        now = t0 + 20_000 + RELAY_AFTER_MS;
        await evaluate();
        const relays = (await mapOf(a.id)).self.peerRelays ?? [];
        expect([...relays].sort((x, y) => x.peerId.localeCompare(y.peerId))).toEqual(
          [
            { peerId: d.id, relayId: r.id, reason: 'no_direct_handshake' },
            { peerId: e.id, relayId: r.id, reason: 'no_direct_handshake' },
          ].sort((x, y) => x.peerId.localeCompare(y.peerId)),
        );
        expect((await mapOf(e.id)).self.peerRelays).toEqual([
          { peerId: a.id, relayId: r.id, reason: 'no_direct_handshake' },
        ]);
      } finally {
        await c.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
