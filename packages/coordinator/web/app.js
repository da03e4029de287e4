// The coordinator's web UI: plain JavaScript over the admin REST API (no build step). The admin
// token lives in sessionStorage for this tab only and is sent as a Bearer header.
import { h, renderMap } from '/ui/map.js';

const API = '/api/v1';
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem('wiremesh-admin-token');
let current = null;
let timer = null;
let settingsOf = null;

async function call(method, path, body) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) {
    signOut('The admin token was not accepted; sign in again.');
    throw new Error('unauthorized');
  }
  if (!r.ok) {
    const e = await r.json().catch(() => ({ message: `HTTP ${r.status}` }));
    throw new Error(`${e.message}${e.code ? ` (${e.code})` : ''}`);
  }
  const type = r.headers.get('content-type') ?? '';
  return r.status === 204 ? null : type.includes('json') ? r.json() : r.blob();
}

function showError(e) {
  $('error').textContent = e ? String(e.message ?? e) : '';
}

async function act(fn) {
  try {
    showError(null);
    await fn();
    await refresh();
  } catch (e) {
    if (e.message !== 'unauthorized') showError(e);
  }
}

function signOut(message) {
  token = null;
  sessionStorage.removeItem('wiremesh-admin-token');
  clearInterval(timer);
  $('app').hidden = true;
  $('signout').hidden = true;
  $('signin').hidden = false;
  $('whoami').textContent = '';
  $('signin-error').textContent = message ?? '';
}

async function signIn(t) {
  token = t;
  try {
    await call('GET', '/networks');
  } catch (e) {
    if (e.message !== 'unauthorized') $('signin-error').textContent = e.message;
    return;
  }
  sessionStorage.setItem('wiremesh-admin-token', t);
  $('signin').hidden = true;
  $('app').hidden = false;
  $('signout').hidden = false;
  $('whoami').textContent = 'signed in as admin';
  await refresh();
  timer = setInterval(() => void refresh().catch(() => undefined), 5000);
}

const ago = (ms) => {
  if (ms === null) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60
    ? `${s}s ago`
    : s < 3600
      ? `${Math.round(s / 60)}m ago`
      : `${Math.round(s / 3600)}h ago`;
};
const ep = (e) => (e ? (e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`) : '');

function handshakes(node) {
  if (node.peers.length === 0) return 'no report';
  const fresh = node.peers.filter(
    (p) => p.latestHandshakeMs !== null && Date.now() - p.latestHandshakeMs < 180_000,
  ).length;
  return `${fresh}/${node.peers.length} peers up`;
}

function table(el, headers, rows) {
  el.replaceChildren(
    h(
      'tr',
      {},
      headers.map((x) => h('th', {}, x)),
    ),
    ...rows.map((r) =>
      h(
        'tr',
        r.attrs ?? {},
        r.cells.map((c) => h('td', {}, c)),
      ),
    ),
  );
  if (rows.length === 0) el.append(h('tr', {}, h('td', { colspan: headers.length }, 'none')));
}

/** Named admin tokens and the newest audit entries (every scope may read them). */
async function refreshAdmins() {
  const [tokens, audit] = await Promise.all([
    call('GET', '/admin/tokens'),
    call('GET', `/admin/audit?limit=${Number($('audit-limit').value)}`),
  ]);
  table(
    $('tokens'),
    ['Name', 'Scope', 'Created', 'Last used', 'State', ''],
    tokens.map((t) => ({
      attrs: { 'data-token': t.name },
      cells: [
        t.name,
        t.scope,
        ago(t.createdAt),
        t.lastUsedAt === null ? 'never' : ago(t.lastUsedAt),
        t.revoked ? 'revoked' : 'active',
        t.revoked
          ? ''
          : h(
              'button',
              { onclick: () => act(() => call('DELETE', `/admin/tokens/${t.id}`)) },
              'Revoke',
            ),
      ],
    })),
  );
  table(
    $('audit'),
    ['When', 'Who', 'From', 'What', 'Status'],
    audit.map((e) => ({
      attrs: { 'data-audit': e.id },
      cells: [
        new Date(e.at).toISOString(),
        e.actor,
        e.ip,
        `${e.method} ${e.path}`,
        String(e.status),
      ],
    })),
  );
}

async function refresh() {
  const networks = await call('GET', '/networks');
  $('networks').replaceChildren(
    ...networks.map((n) =>
      h(
        'li',
        {},
        h(
          'button',
          {
            class: n.name === current ? 'current' : '',
            'data-network': n.name,
            onclick: () => select(n.name),
          },
          `${n.name} (${n.ipv4Cidr})`,
        ),
      ),
    ),
  );
  await refreshAdmins();
  if (current !== null && !networks.some((n) => n.name === current)) current = null;
  $('network').hidden = current === null;
  if (current === null) return;
  const net = networks.find((n) => n.name === current);
  const [nodes, keys, clients, dns, paths] = await Promise.all([
    call('GET', `/networks/${current}/nodes`),
    call('GET', `/networks/${current}/keys`),
    call('GET', `/networks/${current}/extclients`),
    call('GET', `/networks/${current}/dns`),
    call('GET', `/networks/${current}/paths`),
  ]);
  renderMap($('map'), paths);
  $('network-title').textContent = `Network ${net.name}`;
  if (settingsOf !== net.name) {
    // Filled when another network is shown, not on every refresh (the admin may be typing).
    settingsOf = net.name;
    const form = $('settings-form');
    form.listenPort.value = net.listenPort;
    form.persistentKeepalive.value = net.persistentKeepalive;
    form.mtu.value = net.mtu;
    form.allowJoinWithoutKey.checked = net.allowJoinWithoutKey;
  }
  $('network-info').textContent =
    `${net.ipv4Cidr}${net.ipv6Cidr ? `, ${net.ipv6Cidr}` : ''} · port ${net.listenPort} · keepalive ${net.persistentKeepalive}s · MTU ${net.mtu} · ${net.allowJoinWithoutKey ? 'open join (approval needed)' : 'key required'} · map version ${net.revision}`;
  const names = new Map(nodes.map((n) => [n.id, n.name]));
  fillIngressChoice(nodes.filter((n) => n.state === 'approved' && n.isIngressGateway));
  const relayedBy = (id) => nodes.filter((x) => x.relayedBy === id && x.state === 'approved');
  const pending = nodes.filter((n) => n.state === 'pending');
  table(
    $('pending'),
    ['Name', 'Public key', 'OS', 'Backend', 'Registered', ''],
    pending.map((n) => ({
      attrs: { 'data-node': n.name },
      cells: [
        n.name,
        n.publicKey,
        n.os,
        n.backend,
        ago(n.createdAt),
        [
          h(
            'button',
            { onclick: () => act(() => call('POST', `/nodes/${n.id}/approve`)) },
            'Approve',
          ),
          h(
            'button',
            { onclick: () => act(() => call('POST', `/nodes/${n.id}/reject`)) },
            'Reject',
          ),
        ],
      ],
    })),
  );
  const active = nodes.filter((n) => n.state !== 'pending');
  table(
    $('nodes'),
    ['Name', 'State', 'Overlay', 'Endpoints', 'Backend', 'Last seen', 'Handshakes', 'Roles', ''],
    active.map((n) => ({
      attrs: { 'data-node': n.name },
      cells: [
        n.name,
        h('span', { class: `state-${n.state}` }, n.state),
        [n.addressV4, n.addressV6].filter(Boolean).join(' '),
        [
          n.reflectedEndpoint ? `public ${ep(n.reflectedEndpoint)}` : '',
          ...n.localEndpoints.map((e) => `lan ${ep(e)}`),
        ]
          .filter(Boolean)
          .join(', '),
        n.backend,
        ago(n.lastSeenAt),
        handshakes(n),
        [
          n.egress
            ? `egress ${n.egress.ranges.join(' ')}${n.egress.interface ? ` out ${n.egress.interface}` : ''}`
            : '',
          n.isIngressGateway ? `ingress ${n.ingressEndpoint ?? '(its public endpoint)'}` : '',
          n.isRelay
            ? relayedBy(n.id).length
              ? `relay for ${relayedBy(n.id)
                  .map((x) => x.name)
                  .join(' ')}`
              : 'relay'
            : '',
          n.relayedBy ? `via ${names.get(n.relayedBy) ?? n.relayedBy}` : '',
        ]
          .filter(Boolean)
          .join(', '),
        n.state === 'removed' || n.state === 'rejected'
          ? [
              h(
                'button',
                { onclick: () => act(() => call('POST', `/nodes/${n.id}/release`)) },
                'Release address',
              ),
            ]
          : [
              n.egress
                ? h(
                    'button',
                    { onclick: () => act(() => call('DELETE', `/nodes/${n.id}/egress`)) },
                    'Unmake egress',
                  )
                : h(
                    'button',
                    {
                      onclick: () =>
                        act(async () => {
                          const r = prompt(
                            'Egress ranges (comma-separated CIDRs)',
                            '192.168.100.0/24',
                          );
                          if (!r) return;
                          const out = prompt(
                            'Outgoing interface for NAT (empty: the one of the default route)',
                            '',
                          );
                          if (out === null) return;
                          await call('PUT', `/nodes/${n.id}/egress`, {
                            ranges: r
                              .split(',')
                              .map((s) => s.trim())
                              .filter(Boolean),
                            ...(out.trim() ? { interface: out.trim() } : {}),
                          });
                        }),
                    },
                    'Make egress',
                  ),
              h(
                'button',
                {
                  onclick: () =>
                    act(async () => {
                      // Empty: the node's reflected public endpoint, else its first LAN one.
                      const endpoint = prompt(
                        'Endpoint external clients dial (host:port; empty: the node’s public endpoint)',
                        n.ingressEndpoint ?? '',
                      );
                      if (endpoint === null) return;
                      await call(
                        'PUT',
                        `/nodes/${n.id}/ingress`,
                        endpoint.trim() ? { endpoint: endpoint.trim() } : {},
                      );
                    }),
                },
                n.isIngressGateway ? 'Ingress endpoint' : 'Make ingress',
              ),
              n.isIngressGateway
                ? h(
                    'button',
                    { onclick: () => act(() => call('DELETE', `/nodes/${n.id}/ingress`)) },
                    'Unmake ingress',
                  )
                : '',
              h(
                'button',
                {
                  onclick: () =>
                    act(async () => {
                      const r = prompt(
                        'Relay for these nodes (comma-separated names; empty: relay-capable only, the automatic fallback may use it)',
                        relayedBy(n.id)
                          .map((x) => x.name)
                          .join(', '),
                      );
                      if (r === null) return;
                      await call('PUT', `/nodes/${n.id}/relay`, {
                        relayedNodeIds: r
                          .split(',')
                          .map((s) => s.trim())
                          .filter(Boolean),
                      });
                    }),
                },
                n.isRelay ? 'Relay for…' : 'Make relay',
              ),
              n.isRelay
                ? h(
                    'button',
                    { onclick: () => act(() => call('DELETE', `/nodes/${n.id}/relay`)) },
                    'Unmake relay',
                  )
                : '',
              n.state === 'approved'
                ? h('button', { onclick: () => act(() => showNodeMap(n)) }, 'Map')
                : '',
              h(
                'button',
                {
                  onclick: () =>
                    act(async () => {
                      const name = prompt(`New name of ${n.name} (a DNS label)`, n.name);
                      if (name && name !== n.name)
                        await call('PUT', `/nodes/${n.id}/name`, { name });
                    }),
                },
                'Rename',
              ),
              h(
                'button',
                {
                  onclick: () =>
                    act(async () => {
                      if (confirm(`Remove node ${n.name}?`)) await call('DELETE', `/nodes/${n.id}`);
                    }),
                },
                'Remove',
              ),
            ],
      ],
    })),
  );
  table(
    $('keys'),
    ['Id', 'Name', 'Uses', 'Expires', 'Auto-approve', 'State', ''],
    keys.map((k) => ({
      cells: [
        k.id,
        k.name ?? '',
        k.maxUses === null ? `${k.uses}/unlimited` : `${k.uses}/${k.maxUses}`,
        k.expiresAt ? new Date(k.expiresAt).toLocaleString() : 'never',
        k.autoApprove ? 'yes' : 'no',
        k.revoked ? 'revoked' : 'active',
        k.revoked
          ? ''
          : h(
              'button',
              { onclick: () => act(() => call('DELETE', `/networks/${current}/keys/${k.id}`)) },
              'Revoke',
            ),
      ],
    })),
  );
  table(
    $('extclients'),
    ['Name', 'Address', 'Ingress', 'Public key', 'Key pair', 'DNS', ''],
    clients.map((c) => ({
      attrs: { 'data-client': c.name },
      cells: [
        c.name,
        [c.addressV4, c.addressV6].filter(Boolean).join(' '),
        names.get(c.ingressNodeId) ?? c.ingressNodeId,
        c.publicKey,
        c.hasPrivateKey ? 'generated (private key stored)' : 'the client’s own',
        c.dns.join(' '),
        [
          h('button', { onclick: () => act(() => showQr(c)) }, 'QR / config'),
          h(
            'button',
            { onclick: () => act(() => call('DELETE', `/extclients/${c.id}`)) },
            'Delete',
          ),
        ],
      ],
    })),
  );
  $('dns-domain-form').elements.domain.placeholder = `domain (now ${dns.domain})`;
  table(
    $('dns-names'),
    ['Name', 'Kind', 'Addresses', ''],
    dns.names.map((r) => ({
      attrs: { 'data-dns': r.dnsName },
      cells: [
        r.dnsName,
        r.kind,
        r.addresses.join(' '),
        r.kind === 'custom'
          ? h(
              'button',
              {
                onclick: () =>
                  act(() => call('DELETE', `/networks/${current}/dns/records/${r.id}`)),
              },
              'Remove',
            )
          : '',
      ],
    })),
  );
}

/** The network map node `n` gets (what `node map ID` prints). */
async function showNodeMap(n) {
  const map = await call('GET', `/nodes/${n.id}/map`);
  $('node-map-title').textContent = `Map of ${n.name} (version ${map.version})`;
  $('node-map-json').textContent = JSON.stringify(map, null, 2);
  $('node-map').hidden = false;
}

/** Offers the approved ingress gateways for a new external client, keeping the admin's choice. */
function fillIngressChoice(ingresses) {
  const select = $('ext-form').elements.ingress;
  const chosen = select.value;
  select.replaceChildren(
    ...(ingresses.length === 0
      ? [h('option', { value: '' }, 'none yet: make a node an ingress gateway')]
      : ingresses.map((n) =>
          h('option', { value: n.id }, `${n.name} (${n.ingressEndpoint ?? 'its public endpoint'})`),
        )),
  );
  if (ingresses.some((n) => n.id === chosen)) select.value = chosen;
}

async function showQr(c) {
  // A client with its own key pair: the config has a placeholder, so a QR code would only
  // import a broken tunnel; show the text (it holds no secret) to finish on the device.
  const [png, conf] = await Promise.all([
    c.hasPrivateKey ? call('GET', `/extclients/${c.id}/qr.png`) : null,
    call('GET', `/extclients/${c.id}/config`),
  ]);
  $('qr-title').textContent = `WireGuard configuration of ${c.name}`;
  $('qr-img').hidden = png === null;
  if (png !== null) $('qr-img').src = URL.createObjectURL(png);
  $('qr-own-key').hidden = c.hasPrivateKey;
  $('qr-config').hidden = c.hasPrivateKey;
  $('qr-config').textContent = c.hasPrivateKey ? '' : await conf.text();
  const link = $('qr-download');
  link.href = URL.createObjectURL(conf);
  link.download = `${c.name}.conf`;
  $('qr').hidden = false;
}

function select(name) {
  current = name;
  $('qr').hidden = true;
  $('node-map').hidden = true;
  $('new-key').hidden = true;
  void act(async () => undefined);
}

const fields = (form) => Object.fromEntries(new FormData(form).entries());

$('signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  void signIn($('token').value.trim());
});
$('signout').addEventListener('click', () => signOut());
$('network-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const f = fields(e.target);
  void act(async () => {
    await call('POST', '/networks', {
      name: f.name,
      ipv4Cidr: f.ipv4Cidr,
      ipv6Cidr: f.ipv6Cidr || undefined,
      allowJoinWithoutKey: f.allowJoinWithoutKey === 'on',
      ...(f.allowPublicRange === 'on' ? { allowPublicRange: true } : {}),
      ...(f.allowOverlap === 'on' ? { allowOverlap: true } : {}),
    });
    current = f.name;
    e.target.reset();
  });
});
$('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const f = fields(e.target);
  void act(async () => {
    const k = await call('POST', `/networks/${current}/keys`, {
      name: f.name || undefined,
      maxUses: f.maxUses ? Number(f.maxUses) : undefined,
      expiresInS: f.expiresInH ? Number(f.expiresInH) * 3600 : undefined,
      autoApprove: f.autoApprove === 'on',
    });
    // With TLS the pinned form carries the certificate's fingerprint (for self-signed ones).
    $('new-key').textContent = k.pinnedKey
      ? `New enrollment key (shown once): ${k.key} · pinned to this coordinator's certificate: ${k.pinnedKey}`
      : `New enrollment key (shown once): ${k.key}`;
    $('new-key').hidden = false;
    e.target.reset();
  });
});
$('ext-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const f = fields(e.target);
  void act(async () => {
    const dns = f.dns
      ? f.dns
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : undefined;
    const c = await call('POST', `/networks/${current}/extclients`, {
      name: f.name,
      ingressNodeId: f.ingress || undefined,
      publicKey: f.publicKey.trim() || undefined,
      dns,
      meshDns: f.meshDns === 'on',
    });
    e.target.reset();
    await showQr(c);
  });
});

$('dns-domain-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const f = fields(e.target);
  void act(async () => {
    await call('PUT', `/networks/${current}/dns`, { domain: f.domain, force: f.force === 'on' });
    e.target.reset();
  });
});
$('dns-record-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const f = fields(e.target);
  void act(async () => {
    await call('POST', `/networks/${current}/dns/records`, { name: f.name, ip: f.ip });
    e.target.reset();
  });
});
$('settings-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const f = fields(e.target);
  void act(async () => {
    await call('PATCH', `/networks/${current}`, {
      listenPort: Number(f.listenPort),
      persistentKeepalive: Number(f.persistentKeepalive),
      mtu: Number(f.mtu),
      allowJoinWithoutKey: f.allowJoinWithoutKey === 'on',
    });
  });
});
$('network-delete').addEventListener('click', () => {
  void act(async () => {
    if (!confirm(`Delete network ${current} with all its nodes, keys and external clients?`))
      return;
    await call('DELETE', `/networks/${current}`);
    current = null;
    settingsOf = null;
  });
});
$('rotate-admin').addEventListener('click', () => {
  void act(async () => {
    if (!confirm('Rotate the first admin token? The old one stops working at once.')) return;
    const r = await call('POST', '/admin/token/rotate');
    // Signed in with the first token: go on with the new one (a named token is untouched).
    const still = await fetch(`${API}/networks`, { headers: { authorization: `Bearer ${token}` } });
    if (still.status === 401) {
      token = r.token;
      sessionStorage.setItem('wiremesh-admin-token', r.token);
    }
    $('new-token').textContent = `New first admin token (shown once): ${r.token}`;
    $('new-token').hidden = false;
  });
});
$('audit-limit').addEventListener('change', () => void act(async () => undefined));
$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const f = fields(e.target);
  void act(async () => {
    const t = await call('POST', '/admin/tokens', { name: f.name, scope: f.scope });
    $('new-token').textContent = `New admin token ${t.name} (shown once): ${t.token}`;
    $('new-token').hidden = false;
    e.target.reset();
  });
});

if (token) void signIn(token);
else signOut();
