// The web UI at `/` in headless Chromium (Debian's, driven by playwright-core): sign in with the
// admin token, create a network and a key, approve a pending node, make gateways, add an external
// client and see its QR code, and refuse a wrong token; external-client options, ingress
// endpoints and relay roles; the live map of paths, with 6 nodes and with 50.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Dialog, type Page } from 'playwright-core';
import type { Endpoint, NetworkPaths, PeerStatus, RegisterRequest } from '@wiremesh/protocol';
import {
  api,
  keyPair,
  registration,
  startTestCoordinator,
  type TestCoordinator,
} from './helpers.js';
import { selfSignedCertificate } from '../../../test/harness/certs.js';

const CHROMIUM = '/usr/bin/chromium';

// The page functions below run in Chromium, not Node. The tests' type check has no DOM lib (Node
// code must not see browser globals), so the few browser globals and element parts they use are
// declared here.
declare const document: {
  getElementById(id: string): object | null;
  querySelector(selector: string): object | null;
  querySelectorAll(selector: string): ArrayLike<object>;
};
declare const sessionStorage: { getItem(key: string): string | null };
type ImageElement = { naturalWidth: number };
type AnchorElement = { href: string };
type Rect = { left: number; right: number; top: number; bottom: number };
type SvgElement = { getBoundingClientRect(): Rect; getAttribute(name: string): string | null };
let c: TestCoordinator;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  expect(existsSync(CHROMIUM), 'Debian chromium is missing (scripts/install.sh installs it)').toBe(
    true,
  );
  // The relay fallback relays a pair after 1 s without a direct handshake (the map test).
  c = await startTestCoordinator({ relayAfterMs: 1_000 });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = await browser.newPage();
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await c?.close();
});

const admin = (method: string, path: string, body?: unknown) =>
  api(c.url, method, path, { token: c.admin, body });

/** Answers the next browser dialogs (prompt, confirm) with `values`, in order. */
function answer(...values: string[]): void {
  const handler = (d: Dialog): void => {
    void d.accept(values.shift());
    if (values.length === 0) page.off('dialog', handler);
  };
  page.on('dialog', handler);
}

async function signIn(): Promise<void> {
  await page.goto(c.url);
  // A test before may have left the tab signed in (the token stays in sessionStorage).
  await page.waitForSelector('#signin:not([hidden]), #app:not([hidden])');
  if (await page.isVisible('#signout')) await page.click('#signout');
  await page.fill('#token', c.admin);
  await page.click('#signin-form button');
  await page.waitForSelector('#app:not([hidden])');
}

/** A node registered (and approved at once) with an auto-approving key of `network`. */
interface TestNode {
  id: string;
  secret: string;
  reg: RegisterRequest;
}

async function enroll(
  network: string,
  names: string[],
  over: (name: string) => Partial<RegisterRequest> = () => ({}),
): Promise<Map<string, TestNode>> {
  const key = (await admin('POST', `/api/v1/networks/${network}/keys`, { autoApprove: true })).body
    .key as string;
  const out = new Map<string, TestNode>();
  for (const name of names) {
    const reg = registration(network, name, { enrollmentKey: key, ...over(name) });
    const r = await api(c.url, 'POST', '/api/v1/register', { body: reg });
    expect(r.status, r.text).toBe(201);
    out.set(name, { id: r.body.nodeId as string, secret: r.body.nodeSecret as string, reg });
  }
  return out;
}

/** What a node's agent reports about a peer: a direct handshake `ageMs` old (null: none). */
function peer(p: TestNode, ageMs: number | null, endpoint: Endpoint | null): PeerStatus {
  return {
    publicKey: p.reg.publicKey,
    latestHandshakeMs: null,
    rxBytes: 0,
    txBytes: 0,
    endpoint,
    handshakeAgeMs: ageMs,
  };
}

async function checkin(n: TestNode, body: Record<string, unknown>): Promise<void> {
  const r = await api(c.url, 'POST', '/api/v1/node/checkin', {
    token: n.secret,
    body: { protocolVersion: 1, ...body },
  });
  expect(r.status, r.text).toBe(200);
}

it('manages a network end to end from the browser', { timeout: 60_000 }, async () => {
  await page.goto(c.url);
  await page.fill('#token', 'wma_wrong');
  await page.click('#signin-form button');
  await expect.poll(() => page.textContent('#signin-error')).toContain('not accepted');

  await page.fill('#token', c.admin);
  await page.click('#signin-form button');
  await page.waitForSelector('#app:not([hidden])');

  await page.fill('#network-form [name=name]', 'ui');
  await page.fill('#network-form [name=ipv4Cidr]', '10.60.0.0/24');
  await page.check('#network-form [name=allowJoinWithoutKey]');
  await page.click('#network-form button');
  await page.waitForSelector('#network-title:has-text("Network ui")');
  expect((await admin('GET', '/api/v1/networks/ui')).body.allowJoinWithoutKey).toBe(true);

  await page.check('#key-form [name=autoApprove]');
  await page.click('#key-form button');
  await page.waitForSelector('#new-key:not([hidden])');
  const key = /wmk_\S+/.exec((await page.textContent('#new-key')) ?? '')?.[0];
  expect(key).toBeDefined();

  const alpha = await api(c.url, 'POST', '/api/v1/register', { body: registration('ui', 'alpha') });
  const beta = await api(c.url, 'POST', '/api/v1/register', {
    body: registration('ui', 'beta', { enrollmentKey: key }),
  });
  expect([alpha.body.state, beta.body.state]).toEqual(['pending', 'approved']);
  await api(c.url, 'POST', '/api/v1/node/checkin', {
    token: beta.body.nodeSecret,
    body: {
      protocolVersion: 1,
      reflectedEndpoint: { ip: '198.51.100.20', port: 51820 },
      peers: [
        {
          publicKey: alpha.body.map?.self.publicKey ?? registration('ui', 'x').publicKey,
          latestHandshakeMs: Date.now(),
          rxBytes: 1,
          txBytes: 2,
          endpoint: null,
        },
      ],
    },
  });

  await page.click('[data-network=ui]');
  await page.click('#pending tr[data-node=alpha] button:has-text("Approve")');
  await page.waitForSelector('#nodes tr[data-node=alpha] .state-approved');
  expect((await admin('GET', `/api/v1/nodes/${alpha.body.nodeId}`)).body.state).toBe('approved');
  expect(await page.textContent('#nodes tr[data-node=beta]')).toContain(
    'public 198.51.100.20:51820',
  );
  expect(await page.textContent('#nodes tr[data-node=beta]')).toContain('1/1 peers up');

  // Asked for the ranges, then the outgoing interface.
  answer('192.168.100.0/24', 'eth0');
  await page.click('#nodes tr[data-node=alpha] button:has-text("Make egress")');
  await page.waitForSelector(
    '#nodes tr[data-node=alpha]:has-text("egress 192.168.100.0/24 out eth0")',
  );
  expect((await admin('GET', `/api/v1/nodes/${alpha.body.nodeId}`)).body.egress).toEqual({
    ranges: ['192.168.100.0/24'],
    interface: 'eth0',
  });
  // Asked for the endpoint clients dial; empty: the node's public endpoint.
  answer('');
  await page.click('#nodes tr[data-node=beta] button:has-text("Make ingress")');
  await page.waitForSelector('#nodes tr[data-node=beta]:has-text("ingress (its public endpoint)")');

  await page.fill('#ext-form [name=name]', 'phone');
  await page.click('#ext-form button');
  await page.waitForSelector('#qr:not([hidden])');
  await page.waitForFunction(
    () => (document.getElementById('qr-img') as ImageElement).naturalWidth > 100,
  );
  const conf = await page.evaluate(async () =>
    (await fetch((document.getElementById('qr-download') as AnchorElement).href)).text(),
  );
  expect(conf).toContain('Endpoint = 198.51.100.20:51820');
  expect(conf).toContain('AllowedIPs = 10.60.0.0/24, 192.168.100.0/24');
  expect(await page.getAttribute('#qr-download', 'download')).toBe('phone.conf');

  // DNS: a public TLD needs the confirmation, a custom record and a rename show in the names.
  await page.fill('#dns-domain-form [name=domain]', 'home.dev');
  await page.click('#dns-domain-form button');
  await page.waitForSelector('#error:has-text("public top-level domain .dev")');
  await page.fill('#dns-domain-form [name=domain]', 'home.internal');
  await page.click('#dns-domain-form button');
  await page.waitForSelector('#dns-names tr[data-dns="alpha.home.internal"]');
  await page.fill('#dns-record-form [name=name]', 'printer');
  await page.fill('#dns-record-form [name=ip]', '192.168.100.9');
  await page.click('#dns-record-form button');
  expect(
    await page.textContent('#dns-names tr[data-dns="printer.home.internal"]', { timeout: 5000 }),
  ).toContain('192.168.100.9');
  expect(await page.textContent('#dns-names tr[data-dns="phone.home.internal"]')).toContain(
    'external',
  );
  page.once('dialog', (d) => void d.accept('nas'));
  await page.click('#nodes tr[data-node=alpha] button:has-text("Rename")');
  await page.waitForSelector('#dns-names tr[data-dns="nas.home.internal"]');
  await page.click('#dns-names tr[data-dns="printer.home.internal"] button:has-text("Remove")');
  await page.waitForSelector('#dns-names tr[data-dns="printer.home.internal"]', {
    state: 'detached',
  });
  await page.screenshot({ path: `${c.dir}/ui.png`, fullPage: true });

  await page.click('#signout');
  await page.waitForSelector('#signin:not([hidden])');
  expect(await page.evaluate(() => sessionStorage.getItem('wiremesh-admin-token'))).toBeNull();
});

it('creates and revokes admin tokens and shows the audit log', { timeout: 60_000 }, async () => {
  await page.goto(c.url);
  await page.fill('#token', c.admin);
  await page.click('#signin-form button');
  await page.waitForSelector('#app:not([hidden])');

  await page.fill('#token-form [name=name]', 'grafana');
  await page.selectOption('#token-form [name=scope]', 'read');
  await page.click('#token-form button');
  await page.waitForSelector('#new-token:not([hidden])');
  const token = /wma_\S+/.exec((await page.textContent('#new-token')) ?? '')?.[0] ?? '';
  expect((await api(c.url, 'GET', '/api/v1/networks', { token })).status).toBe(200);
  expect((await api(c.url, 'DELETE', '/api/v1/networks/ui', { token })).status).toBe(403);
  await page.waitForSelector('#tokens tr[data-token=grafana]:has-text("active")');
  expect(await page.textContent('#tokens tr[data-token=grafana]')).toContain('read');

  await page.click('#tokens tr[data-token=grafana] button:has-text("Revoke")');
  await page.waitForSelector('#tokens tr[data-token=grafana]:has-text("revoked")');
  expect((await api(c.url, 'GET', '/api/v1/networks', { token })).status).toBe(401);
  // The log shows the browser's calls and the refused one, never the token.
  const audit = (await page.textContent('#audit')) ?? '';
  expect(audit).toMatch(/grafana127\.0\.0\.1DELETE \/api\/v1\/networks\/ui403/);
  expect(audit).toMatch(/admin127\.0\.0\.1POST \/api\/v1\/admin\/tokens201/);
  expect(audit).not.toContain(token);
  await page.screenshot({ path: `${c.dir}/ui-admins.png`, fullPage: true });
  await page.click('#signout');
  await page.waitForSelector('#signin:not([hidden])');
});

it(
  'edits and deletes a network, makes a relay, and creates a public-range network',
  { timeout: 60_000 },
  async () => {
    await page.goto(c.url);
    await page.fill('#token', c.admin);
    await page.click('#signin-form button');
    await page.waitForSelector('#app:not([hidden])');
    await page.click('[data-network=ui]');
    await page.waitForSelector('#network-title:has-text("Network ui")');
    expect(await page.inputValue('#settings-form [name=mtu]')).toBe('1420');
    await page.fill('#settings-form [name=mtu]', '1300');
    await page.fill('#settings-form [name=persistentKeepalive]', '15');
    await page.click('#settings-form button[type=submit]');
    await expect.poll(async () => (await admin('GET', '/api/v1/networks/ui')).body.mtu).toBe(1300);
    expect((await admin('GET', '/api/v1/networks/ui')).body.persistentKeepalive).toBe(15);
    await page.waitForSelector('#network-info:has-text("MTU 1300")');

    // The node beta relays for (alpha, renamed by the DNS test before this one).
    const before = (await admin('GET', '/api/v1/networks/ui/nodes')).body as { name: string }[];
    const other = before.find((n) => n.name !== 'beta')?.name ?? 'alpha';
    page.once('dialog', (d) => void d.accept(other));
    await page.click('#nodes tr[data-node=beta] button:has-text("Make relay")');
    await page.waitForSelector('#nodes tr[data-node=beta] button:has-text("Unmake relay")');
    const nodes = (await admin('GET', '/api/v1/networks/ui/nodes')).body as {
      name: string;
      isRelay: boolean;
      relayedBy: string | null;
      id: string;
    }[];
    const beta = nodes.find((n) => n.name === 'beta');
    expect(beta?.isRelay).toBe(true);
    expect(nodes.find((n) => n.name === other)?.relayedBy).toBe(beta?.id);

    page.once('dialog', (d) => void d.accept());
    await page.click('#network-delete');
    await expect.poll(async () => (await admin('GET', '/api/v1/networks/ui')).status).toBe(404);
    await page.waitForSelector('#network', { state: 'hidden' });

    await page.fill('#network-form [name=name]', 'pub');
    await page.fill('#network-form [name=ipv4Cidr]', '8.8.0.0/24');
    await page.click('#network-form button');
    await expect.poll(() => page.textContent('#error')).toContain('--allow-public-range');
    await page.check('#network-form [name=allowPublicRange]');
    await page.click('#network-form button');
    await page.waitForSelector('#network-title:has-text("Network pub")');
  },
);

it(
  'sets ingress endpoints and relay roles, and creates external clients with every option',
  { timeout: 90_000 },
  async () => {
    expect(
      (await admin('POST', '/api/v1/networks', { name: 'ext', ipv4Cidr: '10.61.0.0/24' })).status,
    ).toBe(201);
    const nodes = await enroll('ext', ['gw1', 'gw2']);
    const gw1 = nodes.get('gw1') as TestNode;
    const gw2 = nodes.get('gw2') as TestNode;
    await checkin(gw1, { reflectedEndpoint: { ip: '198.51.100.31', port: 51820 } });
    await checkin(gw2, { reflectedEndpoint: { ip: '198.51.100.32', port: 51820 } });
    await signIn();
    await page.click('[data-network=ext]');
    await page.waitForSelector('#network-title:has-text("Network ext")');

    // An enrollment key with a name.
    await page.fill('#key-form [name=name]', 'laptops');
    await page.click('#key-form button');
    await page.waitForSelector('#keys td:text-is("laptops")');

    // Ingress gateways: one on its public endpoint, one on an endpoint the admin gives, which
    // the admin then changes.
    answer('');
    await page.click('#nodes tr[data-node=gw1] button:has-text("Make ingress")');
    await page.waitForSelector(
      '#nodes tr[data-node=gw1]:has-text("ingress (its public endpoint)")',
    );
    answer('203.0.113.7:51820');
    await page.click('#nodes tr[data-node=gw2] button:has-text("Make ingress")');
    await page.waitForSelector('#nodes tr[data-node=gw2]:has-text("ingress 203.0.113.7:51820")');
    answer('203.0.113.5:51820');
    await page.click('#nodes tr[data-node=gw1] button:has-text("Ingress endpoint")');
    await page.waitForSelector('#nodes tr[data-node=gw1]:has-text("ingress 203.0.113.5:51820")');
    expect((await admin('GET', `/api/v1/nodes/${gw1.id}`)).body.ingressEndpoint).toBe(
      '203.0.113.5:51820',
    );

    // The client's own public key, through the second gateway: a wrong key is refused and
    // creates nothing; the right one gives a config with a placeholder instead of a QR code.
    await page.fill('#ext-form [name=name]', 'laptop');
    await page.selectOption('#ext-form [name=ingress]', { label: 'gw2 (203.0.113.7:51820)' });
    await page.fill('#ext-form [name=publicKey]', 'not-a-key');
    await page.click('#ext-form button');
    await page.waitForSelector('#error:has-text("publicKey")');
    expect((await admin('GET', '/api/v1/networks/ext/extclients')).body).toEqual([]);
    const own = keyPair();
    await page.fill('#ext-form [name=publicKey]', own.publicKey);
    await page.click('#ext-form button');
    await page.waitForSelector('#qr:not([hidden]) #qr-config:has-text("PrivateKey")');
    expect(await page.isHidden('#qr-img')).toBe(true);
    expect(await page.isVisible('#qr-own-key')).toBe(true);
    const conf = (await page.textContent('#qr-config')) ?? '';
    expect(conf).toContain('PrivateKey = <the private key of this client>');
    expect(conf).toContain('Endpoint = 203.0.113.7:51820');
    expect(conf).toContain(`PublicKey = ${gw2.reg.publicKey}`);
    const laptopRow = (await page.textContent('#extclients tr[data-client=laptop]')) ?? '';
    expect(laptopRow).toContain('gw2');
    expect(laptopRow).toContain('the client’s own');
    const [laptop] = (await admin('GET', '/api/v1/networks/ext/extclients')).body as {
      publicKey: string;
      hasPrivateKey: boolean;
      ingressNodeId: string;
    }[];
    expect(laptop).toMatchObject({
      publicKey: own.publicKey,
      hasPrivateKey: false,
      ingressNodeId: gw2.id,
    });

    // A generated key pair through the first gateway, with its own DNS server and no mesh DNS.
    await page.fill('#ext-form [name=name]', 'tablet');
    await page.selectOption('#ext-form [name=ingress]', { label: 'gw1 (203.0.113.5:51820)' });
    await page.fill('#ext-form [name=dns]', '192.168.100.1');
    await page.uncheck('#ext-form [name=meshDns]');
    await page.click('#ext-form button');
    await page.waitForSelector('#extclients tr[data-client=tablet]');
    await page.waitForFunction(
      () => (document.getElementById('qr-img') as ImageElement).naturalWidth > 100,
    );
    expect(await page.isHidden('#qr-config')).toBe(true);
    const tabletConf = await page.evaluate(async () =>
      (await fetch((document.getElementById('qr-download') as AnchorElement).href)).text(),
    );
    expect(tabletConf).toMatch(/^PrivateKey = [A-Za-z0-9+/]{43}=$/m);
    expect(tabletConf).toContain('Endpoint = 203.0.113.5:51820');
    expect(tabletConf).toContain('DNS = 192.168.100.1\n');
    expect(await page.textContent('#extclients tr[data-client=tablet]')).toContain(
      'generated (private key stored)',
    );

    // Relay roles: relay for a node, then for none (relay-capable only), then none at all.
    answer('gw2');
    await page.click('#nodes tr[data-node=gw1] button:has-text("Make relay")');
    await page.waitForSelector('#nodes tr[data-node=gw1]:has-text("relay for gw2")');
    expect((await admin('GET', `/api/v1/nodes/${gw2.id}`)).body.relayedBy).toBe(gw1.id);
    answer('');
    await page.click('#nodes tr[data-node=gw1] button:has-text("Relay for")');
    await expect
      .poll(async () => (await admin('GET', `/api/v1/nodes/${gw2.id}`)).body.relayedBy)
      .toBeNull();
    await page.waitForSelector('#nodes tr[data-node=gw1]:not(:has-text("relay for gw2"))');
    expect((await admin('GET', `/api/v1/nodes/${gw1.id}`)).body.isRelay).toBe(true);
    await page.click('#nodes tr[data-node=gw1] button:has-text("Unmake relay")');
    await page.waitForSelector('#nodes tr[data-node=gw1] button:has-text("Make relay")');
    expect((await admin('GET', `/api/v1/nodes/${gw1.id}`)).body.isRelay).toBe(false);

    // The audit log shows as many entries as asked for.
    for (let i = 0; i < 55; i++) await admin('PATCH', '/api/v1/networks/ext', { mtu: 1400 - i });
    const total = ((await admin('GET', '/api/v1/admin/audit?limit=1000')).body as unknown[]).length;
    expect(total).toBeGreaterThan(50);
    await page.selectOption('#audit-limit', '1000');
    await expect
      .poll(() => page.locator('#audit tr[data-audit]').count())
      .toBeGreaterThanOrEqual(total);
    await page.selectOption('#audit-limit', '50');
    await expect.poll(() => page.locator('#audit tr[data-audit]').count()).toBe(50);
    await page.click('#signout');
  },
);

it(
  'draws the live map of direct, LAN and relayed paths from the agents’ reports',
  { timeout: 90_000 },
  async () => {
    expect(
      (await admin('POST', '/api/v1/networks', { name: 'map', ipv4Cidr: '10.62.0.0/24' })).status,
    ).toBe(201);
    // Two public hosts (a relay and an ingress in a data centre), two hosts behind one home NAT,
    // a laptop behind another NAT, and an office behind a NAT no one gets through.
    const lan: Record<string, Endpoint> = {
      relay: { ip: '203.0.113.10', port: 51820 },
      cloud: { ip: '203.0.113.20', port: 51820 },
      'home-nas': { ip: '192.168.1.10', port: 51820 },
      'home-pc': { ip: '192.168.1.11', port: 51820 },
      laptop: { ip: '10.0.0.5', port: 51820 },
      office: { ip: '172.16.0.7', port: 51820 },
    };
    const pub: Record<string, Endpoint> = {
      relay: lan.relay as Endpoint,
      cloud: lan.cloud as Endpoint,
      'home-nas': { ip: '198.51.100.5', port: 41000 },
      'home-pc': { ip: '198.51.100.5', port: 41001 },
      laptop: { ip: '198.51.100.9', port: 50000 },
      office: { ip: '192.0.2.44', port: 60000 },
    };
    const names = Object.keys(lan);
    const nodes = await enroll('map', names, (name) => ({
      localEndpoints: [lan[name] as Endpoint],
    }));
    const n = (name: string): TestNode => nodes.get(name) as TestNode;
    await admin('PUT', `/api/v1/nodes/${n('relay').id}/relay`, { relayedNodeIds: [] });
    await admin('PUT', `/api/v1/nodes/${n('cloud').id}/ingress`, {});
    await admin('POST', '/api/v1/networks/map/extclients', { name: 'phone' });
    const report = async (blocked: (a: string, b: string) => boolean): Promise<void> => {
      for (const a of names) {
        const peers = names
          .filter((b) => b !== a)
          .map((b) => {
            if (blocked(a, b)) return peer(n(b), null, pub[b] ?? null);
            const home = a.startsWith('home-') && b.startsWith('home-');
            return peer(n(b), 2_000, (home ? lan[b] : pub[b]) ?? null);
          });
        await checkin(n(a), { reflectedEndpoint: pub[a], peers });
      }
    };
    const officeBlocked = (a: string, b: string): boolean =>
      (a === 'office' || b === 'office') &&
      a !== 'relay' &&
      b !== 'relay' &&
      a !== 'cloud' &&
      b !== 'cloud';
    await report(officeBlocked);
    // The relay fallback relays the office's three pairs after its 1 s wait.
    const relayed = async (): Promise<string[]> => {
      const v = (await admin('GET', '/api/v1/networks/map/paths')).body as NetworkPaths;
      const name = new Map(v.nodes.map((x) => [x.id, x.name]));
      return v.links
        .filter((l) => l.path === 'relay')
        .map((l) => [name.get(l.a), name.get(l.b)].sort().join('--'))
        .sort();
    };
    await expect
      .poll(relayed, { timeout: 15_000 })
      .toEqual(['home-nas--office', 'home-pc--office', 'laptop--office']);

    await page.setViewportSize({ width: 1400, height: 1000 });
    await signIn();
    await page.click('[data-network=map]');
    const link = (pair: string) => `#map-svg path[data-link="${pair}"]`;
    await page.waitForSelector(`${link('laptop--office')}[data-path=relay][data-via=relay]`);
    expect(await page.getAttribute(link('cloud--laptop'), 'data-path')).toBe('direct');
    expect(await page.getAttribute(link('home-nas--home-pc'), 'data-path')).toBe('lan');
    expect(await page.getAttribute(link('cloud--office'), 'data-path')).toBe('direct');
    expect(await page.textContent(`${link('home-nas--office')} title`)).toBe(
      'home-nas ↔ office: relay via relay (no direct handshake in time)',
    );
    expect(await page.locator('#map-svg path[data-link]').count()).toBe(15);
    const legend = (await page.textContent('#map-legend')) ?? '';
    expect(legend).toContain('6 nodes');
    expect(legend).toContain('direct 11');
    expect(legend).toContain('LAN 1');
    expect(legend).toContain('relay 3');
    expect(await page.textContent('#map-svg [data-map-node=cloud] text')).toBe('cloud (ingress)');
    expect(await page.textContent('#map-svg [data-map-node=relay] text')).toBe('relay (relay)');

    const shot = join(c.dir, 'ui-map.png');
    await page.locator('#map').screenshot({ path: shot });
    expect(readFileSync(shot).subarray(1, 4).toString()).toBe('PNG');
    // `WIREMESH_UI_SCREENSHOTS=DIR` keeps it (docs/img/ui-map.png is made this way).
    const keep = process.env.WIREMESH_UI_SCREENSHOTS;
    if (keep) copyFileSync(shot, join(keep, 'ui-map.png'));

    // A node's own paths: selected, they stand out and its table names each peer's path.
    await page.click('#map-svg [data-map-node=office] circle');
    await page.waitForSelector('#map-detail h4:has-text("office")');
    expect(await page.textContent('#map-peers tr[data-peer=laptop]')).toContain(
      'relayrelay (no direct handshake in time)',
    );
    expect(await page.textContent('#map-peers tr[data-peer=cloud]')).toContain('direct');
    expect(await page.textContent('#map-detail')).toContain('public 192.0.2.44:60000 (reflector)');
    expect(await page.getAttribute(link('laptop--office'), 'opacity')).toBe('1');
    expect(await page.getAttribute(link('cloud--laptop'), 'opacity')).toBe('0.05');
    expect(await page.textContent('#map-detail')).toContain('LAN 172.16.0.7:51820');
    await page.click('#map-svg [data-map-node=cloud] circle');
    expect(await page.textContent('#map-detail')).toContain('ingress (1 external client)');

    // The map the office's agent gets (`node map ID`) holds the same relays.
    await page.click('#nodes tr[data-node=office] button:has-text("Map")');
    await page.waitForSelector('#node-map:not([hidden])');
    const officeMap = JSON.parse((await page.textContent('#node-map-json')) ?? '{}') as {
      self: { name: string; peerRelays?: { peerId: string; relayId: string }[] };
    };
    expect(officeMap.self.name).toBe('office');
    expect(officeMap.self.peerRelays?.map((r) => r.relayId)).toEqual([
      n('relay').id,
      n('relay').id,
      n('relay').id,
    ]);

    // Hiding a kind of path hides its lines, and the choice survives the refresh.
    await page.uncheck('#map-legend [data-kind=direct] input');
    await page.waitForSelector(link('cloud--laptop'), { state: 'detached' });
    expect(await page.locator('#map-svg path[data-link]').count()).toBe(4);
    await page.check('#map-legend [data-kind=direct] input');

    // Live: the office's NAT lets the laptop through; the pair goes direct and the open page
    // follows on its next refresh, with no reload.
    await report((a, b) => officeBlocked(a, b) && !(a === 'laptop' || b === 'laptop'));
    await page.waitForSelector(`${link('laptop--office')}[data-path=direct]`, { timeout: 20_000 });
    expect(await page.getAttribute(link('home-nas--office'), 'data-path')).toBe('relay');
    await page.click('#signout');
  },
);

it('keeps the map readable with 50 nodes', { timeout: 90_000 }, async () => {
  expect(
    (await admin('POST', '/api/v1/networks', { name: 'big', ipv4Cidr: '10.63.0.0/24' })).status,
  ).toBe(201);
  const names = Array.from({ length: 50 }, (_, i) => `node-${String(i).padStart(2, '0')}`);
  const nodes = await enroll('big', names);
  const all = [...nodes.values()];
  for (const a of all)
    await checkin(a, {
      reflectedEndpoint: { ip: '198.51.100.77', port: 40_000 + all.indexOf(a) },
      peers: all.filter((b) => b !== a).map((b) => peer(b, 1_000, null)),
    });
  await signIn();
  await page.click('[data-network=big]');
  await expect.poll(() => page.locator('#map-svg path[data-link]').count()).toBe(1225);
  // Every node and label is inside the drawing, and no two nodes crowd each other.
  const layout = await page.evaluate(() => {
    const svg = (document.querySelector('#map-svg svg') as SvgElement).getBoundingClientRect();
    const groups = Array.from(
      document.querySelectorAll('#map-svg [data-map-node]'),
    ) as SvgElement[];
    const centres = groups.map((g) => {
      const r = g.getBoundingClientRect();
      return { x: (r.left + r.right) / 2, y: (r.top + r.bottom) / 2 };
    });
    const circles = Array.from(
      document.querySelectorAll('#map-svg [data-map-node] circle'),
    ) as SvgElement[];
    const dots = circles.map((e) => {
      const r = e.getBoundingClientRect();
      return { x: (r.left + r.right) / 2, y: (r.top + r.bottom) / 2, size: r.right - r.left };
    });
    let closest = Infinity;
    for (let i = 0; i < dots.length; i++)
      for (let j = i + 1; j < dots.length; j++) {
        const a = dots[i] as { x: number; y: number };
        const b = dots[j] as { x: number; y: number };
        closest = Math.min(closest, Math.hypot(a.x - b.x, a.y - b.y));
      }
    const outside = groups
      .map((g) => g.getBoundingClientRect())
      .filter(
        (r) => r.left < svg.left || r.right > svg.right || r.top < svg.top || r.bottom > svg.bottom,
      ).length;
    return { count: centres.length, closest, size: dots[0]?.size ?? 0, outside };
  });
  expect(layout.count).toBe(50);
  expect(layout.outside).toBe(0);
  // Centres at least two node widths apart: room for a line of text between neighbours.
  expect(layout.closest).toBeGreaterThan(2 * layout.size);
  // Selecting a node draws its 49 paths and dims the other 1,176.
  await page.click('#map-svg [data-map-node=node-07] circle');
  await page.waitForSelector('#map-detail h4:has-text("node-07")');
  expect(await page.locator('#map-svg path[data-link][opacity="1"]').count()).toBe(49);
  expect(await page.locator('#map-svg path[data-link][opacity="0.05"]').count()).toBe(1176);
  expect(await page.locator('#map-peers tr[data-peer]').count()).toBe(49);
  await page.click('#signout');
});

it(
  'shows the pinned enrollment key of a coordinator that serves TLS',
  { timeout: 60_000 },
  async () => {
    const tls = selfSignedCertificate(c.dir, 'ui-tls', {
      subject: 'wiremesh-ui-test',
      ips: ['127.0.0.1'],
      days: 2,
    });
    const secure = await startTestCoordinator({ tlsCert: tls.cert, tlsKey: tls.key });
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    try {
      expect(secure.url.startsWith('https://')).toBe(true);
      const p = await context.newPage();
      await p.goto(secure.url);
      await p.fill('#token', secure.admin);
      await p.click('#signin-form button');
      await p.waitForSelector('#app:not([hidden])');
      await p.fill('#network-form [name=name]', 'tls');
      await p.fill('#network-form [name=ipv4Cidr]', '10.64.0.0/24');
      await p.click('#network-form button');
      await p.waitForSelector('#network-title:has-text("Network tls")');
      await p.click('#key-form button');
      await p.waitForSelector('#new-key:not([hidden])');
      const text = (await p.textContent('#new-key')) ?? '';
      // The pinned form carries the SHA-256 of the certificate served, base64url.
      const sha = Buffer.from(tls.fingerprint.replaceAll(':', ''), 'hex').toString('base64url');
      const plain = /shown once\): (wmk_[^\s.]+) /.exec(text)?.[1];
      expect(plain).toBeDefined();
      expect(text).toContain(`certificate: ${plain}.${sha}`);
    } finally {
      await context.close();
      await secure.close();
    }
  },
);

it(
  'rotates the first admin token and stays signed in with the new one',
  { timeout: 60_000 },
  async () => {
    await signIn();
    const old = c.admin;
    answer('');
    await page.click('#rotate-admin');
    await page.waitForSelector('#new-token:not([hidden]):has-text("New first admin token")');
    const fresh = /wma_\S+/.exec((await page.textContent('#new-token')) ?? '')?.[0] ?? '';
    expect(fresh).not.toBe(old);
    expect((await api(c.url, 'GET', '/api/v1/networks', { token: old })).status).toBe(401);
    expect((await api(c.url, 'GET', '/api/v1/networks', { token: fresh })).status).toBe(200);
    c.admin = fresh;
    // The page goes on with the new token: its next call succeeds and it is still signed in.
    await page.fill('#network-form [name=name]', 'after');
    await page.fill('#network-form [name=ipv4Cidr]', '10.65.0.0/24');
    await page.click('#network-form button');
    await page.waitForSelector('#network-title:has-text("Network after")');
    expect(await page.isVisible('#app')).toBe(true);
    await page.click('#signout');
  },
);
