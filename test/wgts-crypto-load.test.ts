// What the built wgts loads (issue 14, memory): with the native provider the pure-TS primitives
// (@noble/*, about 8 MiB resident) stay unloaded; forcing noble loads them on first use and they
// answer RFC 7748's vector. Runs the built dist in child processes, as wgts runs; no namespaces.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, test } from 'vitest';

import { cleanupAll, run } from './harness/netns.js';
import { tempFile, wgtsCommand } from './harness/wgts.js';

afterEach(() => cleanupAll());

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HOOK = join(ROOT, 'test/harness/record-imports.mjs');
const WG_CORE = join(ROOT, 'packages/wg-core/dist');
const WG_TUN = join(ROOT, 'packages/wg-tun/dist');
const RUN_MS = 30_000;
/** RFC 7748 §6.1: Alice's private key and its public key. */
const ALICE_PRIVATE = '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a';
const ALICE_PUBLIC = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';

/** Runs `node --import record-imports.mjs ARGS`; returns stdout and the module URLs it loaded. */
async function recorded(args: string[], env: NodeJS.ProcessEnv = {}) {
  const log = tempFile('', 'imports.log');
  try {
    const r = await run(null, [process.execPath, '--import', HOOK, ...args], {
      env: { ...process.env, ...env, RECORD_IMPORTS_TO: log },
      timeoutMs: RUN_MS,
    });
    expect(r.status, r.stderr).toBe(0);
    const urls = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    return { stdout: r.stdout, urls };
  } finally {
    rmSync(log, { force: true });
  }
}

/** A module script run by `node --input-type=module -e`: the device stack on a fake TUN and bind. */
function deviceScript(crypto: 'auto' | 'noble'): string {
  return `
    const { createUserspaceDevice, createFakeTun, createFakeNetwork } = await import(${JSON.stringify(`${WG_TUN}/index.js`)});
    const { nobleLoaded } = await import(${JSON.stringify(`${WG_CORE}/crypto/noble-lazy.js`)});
    const { nobleCrypto } = await import(${JSON.stringify(`${WG_CORE}/engine.js`)});
    const net = createFakeNetwork();
    const dev = createUserspaceDevice({
      name: 'wgload0', crypto: ${JSON.stringify(crypto)},
      tun: createFakeTun().device, openBind: (port) => net.bind({ port }),
    });
    dev.configure({ privateKey: ${JSON.stringify(Buffer.from(ALICE_PRIVATE, 'hex').toString('base64'))} });
    const before = nobleLoaded();
    const pub = Buffer.from(nobleCrypto.x25519Public(Buffer.from(${JSON.stringify(ALICE_PRIVATE)}, 'hex'))).toString('hex');
    process.stdout.write(JSON.stringify({ before, after: nobleLoaded(), pub, get: await dev.uapi('get=1\\n\\n') }));
    dev.close();
  `;
}

describe('the pure-TS crypto is loaded only when used', () => {
  test('wgts --version selects native without importing @noble', async () => {
    const { stdout, urls } = await recorded([...wgtsCommand().slice(1), '--version']);
    expect(stdout).toMatch(/^Crypto \(auto\): native /m);
    // The hook sees the static graph (positive control), and nothing of noble in it.
    expect(urls.some((u) => u.endsWith('/wg-core/dist/engine.js'))).toBe(true);
    expect(urls.filter((u) => /@noble|noble-impl/.test(u))).toEqual([]);
  });

  test('a native device never binds noble; nobleCrypto still works when first called', async () => {
    const { stdout, urls } = await recorded(['--input-type=module', '-e', deviceScript('auto')]);
    const out = JSON.parse(stdout) as { before: boolean; after: boolean; pub: string; get: string };
    expect(out.get).toContain('errno=0');
    expect(out.before).toBe(false);
    expect(out.after).toBe(true);
    expect(out.pub).toBe(ALICE_PUBLIC);
    expect(urls.filter((u) => /\/@noble\//.test(u))).toEqual([]);
  });

  test('a device forced to noble binds it at once and runs on it', async () => {
    const { stdout } = await recorded(['--input-type=module', '-e', deviceScript('noble')]);
    const out = JSON.parse(stdout) as { before: boolean; pub: string; get: string };
    expect(out.before).toBe(true);
    expect(out.pub).toBe(ALICE_PUBLIC);
    expect(out.get).toContain('errno=0');
  });
});
