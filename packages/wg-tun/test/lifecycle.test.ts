/**
 * The addon's lifetime rules: close() from inside a callback, callback exceptions, fds released by
 * close, by garbage collection, and by a worker thread ending; nothing leaks over many cycles.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { openTun } from '../src/tun.js';
import { openUdpBind } from '../src/udp.js';
import { deadline, spawnBounded } from './netns.js';

const WAIT_MS = 15_000;
const ADDON = JSON.stringify(
  fileURLToPath(new URL('../build/Release/wgtun.node', import.meta.url)),
);

const openFds = (): number => readdirSync('/proc/self/fd').length;

/** Runs a CommonJS snippet in a fresh node with the raw addon bound to `m`. */
function node(script: string, flags: string[] = []) {
  return spawnBounded(
    process.execPath,
    [...flags, '-e', `const m = require(${ADDON});\n${script}`],
    WAIT_MS,
  );
}

describe('addon lifecycle', () => {
  it('survives close() from inside its own callback and delivers nothing after', async () => {
    const a = openUdpBind();
    const b = openUdpBind();
    try {
      let calls = 0;
      const first = deadline('first batch', WAIT_MS);
      b.onDatagrams((batch) => {
        calls++;
        expect(batch.packet(0).length).toBe(1);
        b.close();
        first.done();
      });
      const to = { ip: '127.0.0.1', port: b.port };
      a.send([{ endpoint: to, data: Uint8Array.of(1) }]);
      await first.promise;
      a.send([{ endpoint: to, data: Uint8Array.of(2) }]);
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(calls).toBe(1);
      expect(b.closed).toBe(true);
    } finally {
      a.close();
      b.close();
    }
  });

  it('releases every fd it opens over many open/close cycles', () => {
    const before = openFds();
    for (let i = 0; i < 200; i++) openUdpBind({ batchSize: 4, slotBytes: 2048 }).close();
    // creating and deleting an interface waits for the kernel (RCU): fewer of those
    for (let i = 0; i < 20; i++) openTun({ batchSize: 4, slotBytes: 2048 }).close();
    expect(openFds()).toBe(before);
  });

  it('hands an exception thrown by a callback to uncaughtException', async () => {
    const exit = await node(`
      process.on('uncaughtException', (e) => { console.log('caught ' + e.message); a.close(); b.close(); });
      const a = new m.Udp('', 0, 8, 2048, 0, 0, 0, 0), b = new m.Udp('', 0, 8, 2048, 0, 0, 0, 0);
      b.start(() => { throw new Error('boom'); });
      a.txLengths[0] = 1; m.encodeAddress('127.0.0.1', b.port, a.txMeta, 0); a.send(1);
    `);
    expect(exit.stdout.trim()).toBe('caught boom');
    expect(exit.code).toBe(0);
  });

  it('closes a socket whose object was garbage-collected without close()', async () => {
    const exit = await node(
      `
      let u = new m.Udp('', 0, 8, 2048, 0, 0, 0, 0);
      const port = u.port;
      u = null;
      // finalizers run on a later turn of the loop: collect and look again, a bounded number of times
      let tries = 0;
      const check = () => {
        gc();
        try { new m.Udp('', port, 8, 2048, 0, 0, 0, 0).close(); console.log('port free'); }
        catch (e) { if (++tries < 50) setImmediate(check); else console.log(e.code); }
      };
      check();
    `,
      ['--expose-gc'],
    );
    expect(exit.stdout.trim()).toBe('port free');
  });

  it('closes what a worker thread left open when the worker ends', async () => {
    const exit = await node(`
      const { Worker } = require('node:worker_threads');
      const w = new Worker(\`
        const m = require(${ADDON.replaceAll('\\', '\\\\')});
        const u = new m.Udp('', 0, 8, 2048, 0, 0, 0, 0);
        u.start(() => {});
        require('node:worker_threads').parentPort.postMessage(u.port);
      \`, { eval: true });
      w.once('message', (port) => {
        w.terminate().then(() => {
          try { new m.Udp('', port, 8, 2048, 0, 0, 0, 0).close(); console.log('port free'); }
          catch (e) { console.log(e.code); }
        });
      });
    `);
    expect(exit.stderr).toBe('');
    expect(exit.stdout.trim()).toBe('port free');
  });
});
