// The web UI at `/` in headless Chromium (Debian's, driven by playwright-core): sign in with the
// admin token, create a network and a key, approve a pending node, make gateways, add an external
// client and see its QR code, and refuse a wrong token.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { api, registration, startTestCoordinator, type TestCoordinator } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';

// The page functions below run in Chromium, not Node. The tests' type check has no DOM lib (Node
// code must not see browser globals), so the few browser globals and element parts they use are
// declared here.
declare const document: { getElementById(id: string): object | null };
declare const sessionStorage: { getItem(key: string): string | null };
type ImageElement = { naturalWidth: number };
type AnchorElement = { href: string };
let c: TestCoordinator;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  expect(existsSync(CHROMIUM), 'Debian chromium is missing (scripts/install.sh installs it)').toBe(
    true,
  );
  c = await startTestCoordinator();
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

  page.once('dialog', (d) => void d.accept('192.168.100.0/24'));
  await page.click('#nodes tr[data-node=alpha] button:has-text("Make egress")');
  await page.waitForSelector('#nodes tr[data-node=alpha]:has-text("egress 192.168.100.0/24")');
  // Asked for the endpoint clients dial; empty: the node's public endpoint.
  page.once('dialog', (d) => void d.accept(''));
  await page.click('#nodes tr[data-node=beta] button:has-text("Make ingress")');
  await page.waitForSelector('#nodes tr[data-node=beta]:has-text("ingress")');

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
