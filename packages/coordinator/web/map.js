// The live map of a network: its approved nodes on a ring (relays inside it) and every pair's
// path from GET /networks/:network/paths, drawn in plain SVG. Clicking a node shows its paths
// and dims the rest, which keeps ~50 nodes (1,225 pairs) readable.
const SVG = 'http://www.w3.org/2000/svg';
const W = 820;
const H = 820;
const R_OUTER = 250;
const R_INNER = 90;
const NODE_R = 7;
/** Up to this many nodes on a ring, labels are horizontal; more, they run along the radius. */
const FLAT_LABELS_MAX = 16;
/** Pairs listed in the side panel when no node is chosen. */
const MAX_LISTED = 40;
/** Path kinds in legend order, with how each is drawn. */
export const KINDS = {
  direct: { label: 'direct', color: '#2e7d32', dash: '' },
  lan: { label: 'LAN', color: '#1565c0', dash: '' },
  relay: { label: 'relay', color: '#e65100', dash: '7 4' },
  down: { label: 'down', color: '#c62828', dash: '2 4' },
  unknown: { label: 'no report', color: '#9aa1ad', dash: '1 5' },
};
const REASONS = {
  admin: 'an admin relays a node of the pair',
  no_direct_handshake: 'no direct handshake in time',
  nat_mapping_split: 'a NAT gives the node more than one public port',
};

const view = { selected: null, hidden: new Set(['unknown']) };

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) el.setAttribute(k, String(v));
  }
  for (const c of children.flat())
    el.append(c instanceof Node ? c : document.createTextNode(c ?? ''));
  return el;
}

/** An HTML element with attributes (on* are listeners) and children (nodes or text); app.js uses it too. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false)
      el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat())
    el.append(c instanceof Node ? c : document.createTextNode(c ?? ''));
  return el;
}

const ep = (e) => (e ? (e.ip.includes(':') ? `[${e.ip}]:${e.port}` : `${e.ip}:${e.port}`) : '');
const ago = (at, now) => {
  if (at === null) return 'never';
  const sec = Math.max(0, Math.round((now - at) / 1000));
  return sec < 60
    ? `${sec}s ago`
    : sec < 3600
      ? `${Math.round(sec / 60)}m ago`
      : `${Math.round(sec / 3600)}h ago`;
};
const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * Positions by node id: relays on an inner ring (one relay in the middle), the others on the
 * outer ring, each ring in name order so a node keeps its place across refreshes.
 */
function layout(nodes) {
  const inner = nodes.filter((n) => n.isRelay).sort(byName);
  const outer = nodes.filter((n) => !n.isRelay).sort(byName);
  const pos = new Map();
  const ring = (list, r) =>
    list.forEach((n, i) => {
      const t = -Math.PI / 2 + (2 * Math.PI * i) / list.length;
      pos.set(n.id, {
        x: W / 2 + r * Math.cos(t),
        y: H / 2 + r * Math.sin(t),
        t,
        ring: r,
        flat: list.length <= FLAT_LABELS_MAX,
      });
    });
  if (inner.length === 1)
    pos.set(inner[0].id, { x: W / 2, y: H / 2, t: -Math.PI / 2, ring: 0, flat: true });
  else ring(inner, R_INNER);
  ring(outer, outer.length === 1 && inner.length === 0 ? 0 : R_OUTER);
  return pos;
}

function sourceText(n, names) {
  if (n.publicEndpoint === null) return 'no public endpoint known';
  const src = n.endpointSource;
  if (src === null || src.kind === 'reflector') return `public ${ep(n.publicEndpoint)} (reflector)`;
  const by = names.get(src.byId) ?? src.byName;
  return src.reflector === null
    ? `public ${ep(n.publicEndpoint)} (observed by ${by})`
    : `public ${ep(n.publicEndpoint)} (observed by ${by}; the reflector saw ${ep(src.reflector)})`;
}

function linkText(l, names) {
  const [a, b] = [names.get(l.a), names.get(l.b)].sort();
  const kind = KINDS[l.path].label;
  if (l.path !== 'relay') return `${a} ↔ ${b}: ${kind}`;
  return `${a} ↔ ${b}: relay via ${names.get(l.relayId) ?? l.relayId} (${REASONS[l.reason] ?? l.reason})`;
}

function detail(el, paths, names) {
  const n = paths.nodes.find((x) => x.id === view.selected);
  if (n === undefined) {
    // No node chosen: the pairs that are not direct, which are what an admin looks for.
    const odd = paths.links.filter((l) => l.path === 'relay' || l.path === 'down');
    el.replaceChildren(
      h('p', {}, 'Click a node to see its paths.'),
      h('h4', {}, odd.length ? 'Relayed and broken pairs' : 'Every reported pair is direct'),
      h(
        'ul',
        { id: 'map-odd' },
        odd
          .slice(0, MAX_LISTED)
          .map((l) => h('li', { class: `path-${l.path}` }, linkText(l, names))),
        odd.length > MAX_LISTED ? h('li', {}, `and ${odd.length - MAX_LISTED} more`) : '',
      ),
    );
    return;
  }
  const clients = paths.extClients.filter((c) => c.ingressNodeId === n.id);
  const roles = [
    n.isRelay ? 'relay' : '',
    n.isIngressGateway
      ? `ingress (${clients.length} external client${clients.length === 1 ? '' : 's'})`
      : '',
    n.isEgressGateway ? 'egress' : '',
    n.relayedBy ? `relayed by ${names.get(n.relayedBy) ?? n.relayedBy}` : '',
  ].filter(Boolean);
  const rows = paths.links
    .filter((l) => l.a === n.id || l.b === n.id)
    .map((l) => {
      const peer = l.a === n.id ? l.b : l.a;
      const sent = l.a === n.id ? l.endpointAtoB : l.endpointBtoA;
      return { l, peer: names.get(peer) ?? peer, sent };
    })
    .sort((x, y) => (x.peer < y.peer ? -1 : x.peer > y.peer ? 1 : 0));
  el.replaceChildren(
    h('h4', {}, `${n.name} · ${n.addressV4} · ${n.online ? 'online' : 'offline'}`),
    h('p', {}, sourceText(n, names)),
    h(
      'p',
      {},
      n.localEndpoints.length ? `LAN ${n.localEndpoints.map(ep).join(', ')}` : 'no LAN endpoints',
    ),
    roles.length ? h('p', {}, roles.join(', ')) : '',
    clients.length ? h('p', {}, `clients: ${clients.map((c) => c.name).join(', ')}`) : '',
    h(
      'table',
      { id: 'map-peers' },
      h(
        'tr',
        {},
        ['Peer', 'Path', 'Via', 'Handshake', 'Sends to'].map((x) => h('th', {}, x)),
      ),
      rows.map(({ l, peer, sent }) =>
        h(
          'tr',
          { 'data-peer': peer },
          h('td', {}, peer),
          h('td', {}, h('span', { class: `path-${l.path}` }, KINDS[l.path].label)),
          h(
            'td',
            {},
            l.relayId
              ? `${names.get(l.relayId) ?? l.relayId} (${REASONS[l.reason] ?? l.reason})`
              : '',
          ),
          h('td', {}, ago(l.latestHandshakeAt, paths.at)),
          h('td', {}, ep(sent)),
        ),
      ),
    ),
  );
}

/**
 * Draws `paths` (a NetworkPaths) into `root` (the #map element holding #map-legend, #map-svg and
 * #map-detail); called on every refresh. The selection and the hidden kinds stay across calls.
 */
export function renderMap(root, paths) {
  const names = new Map(paths.nodes.map((n) => [n.id, n.name]));
  if (view.selected !== null && !names.has(view.selected)) view.selected = null;
  const counts = Object.fromEntries(Object.keys(KINDS).map((k) => [k, 0]));
  for (const l of paths.links) counts[l.path] += 1;
  const redraw = () => renderMap(root, paths);

  root.querySelector('#map-legend').replaceChildren(
    h(
      'span',
      {},
      `${paths.nodes.length} nodes · map version ${paths.revision} · updated ${new Date(paths.at).toLocaleTimeString()}`,
    ),
    ...Object.entries(KINDS).map(([k, v]) =>
      h(
        'label',
        { 'data-kind': k },
        h('input', {
          type: 'checkbox',
          checked: !view.hidden.has(k),
          onchange: (e) => {
            if (e.target.checked) view.hidden.delete(k);
            else view.hidden.add(k);
            redraw();
          },
        }),
        h('span', {
          class: 'swatch',
          style: `border-top: 3px ${v.dash ? 'dashed' : 'solid'} ${v.color}`,
        }),
        `${v.label} ${counts[k]}`,
      ),
    ),
  );

  const pos = layout(paths.nodes);
  const sel = view.selected;
  // Unselected, a dense mesh is drawn faint so the relayed and broken pairs stand out.
  const faint = paths.links.length > 60 ? 0.25 : 0.7;
  const plain = (l) => l.path === 'direct' || l.path === 'lan';
  const links = paths.links
    .filter((l) => !view.hidden.has(l.path))
    // Relayed and broken pairs last, so they are drawn on top.
    .sort((x, y) => Number(!plain(x)) - Number(!plain(y)))
    .map((l) => {
      const a = pos.get(l.a);
      const b = pos.get(l.b);
      const k = KINDS[l.path];
      const mine = sel !== null && (l.a === sel || l.b === sel);
      const important = l.path === 'relay' || l.path === 'down';
      const opacity = sel === null ? (important ? 0.95 : faint) : mine ? 1 : 0.05;
      // A relayed pair bends towards its relay, so the eye follows it through the relay.
      const r = l.relayId ? pos.get(l.relayId) : undefined;
      const mx = (a.x + b.x) / 2;
      const my = (a.y + b.y) / 2;
      const d = r
        ? `M${a.x},${a.y} Q${2 * r.x - mx},${2 * r.y - my} ${b.x},${b.y}`
        : `M${a.x},${a.y} L${b.x},${b.y}`;
      const pair = [names.get(l.a), names.get(l.b)].sort().join('--');
      return s(
        'path',
        {
          d,
          fill: 'none',
          stroke: k.color,
          'stroke-width': mine || (sel === null && important) ? 2.5 : 1.2,
          'stroke-dasharray': k.dash || undefined,
          opacity,
          'data-link': pair,
          'data-path': l.path,
          'data-via': l.relayId ? names.get(l.relayId) : undefined,
        },
        s('title', {}, linkText(l, names)),
      );
    });

  const nodes = [...paths.nodes].sort(byName).map((n) => {
    const p = pos.get(n.id);
    // Labels run outwards along the radius, so neighbours on a crowded ring never overlap
    // (their spacing along the ring is far more than a line of text); the left half reads
    // left to right too.
    const deg = (p.t * 180) / Math.PI;
    const left = Math.cos(p.t) < -1e-9;
    const cos = Math.cos(p.t);
    const sin = Math.sin(p.t);
    const label =
      p.ring === 0
        ? { x: 0, y: -NODE_R - 8, anchor: 'middle', transform: undefined }
        : p.flat
          ? {
              x: cos * (NODE_R + 6),
              y: sin * (NODE_R + 10) + 4,
              anchor: Math.abs(cos) < 0.3 ? 'middle' : cos > 0 ? 'start' : 'end',
              transform: undefined,
            }
          : {
              x: left ? -(NODE_R + 6) : NODE_R + 6,
              y: 4,
              anchor: left ? 'end' : 'start',
              transform: `rotate(${left ? deg + 180 : deg})`,
            };
    const tags = [
      n.isRelay ? 'relay' : '',
      n.isIngressGateway ? 'ingress' : '',
      n.isEgressGateway ? 'egress' : '',
    ]
      .filter(Boolean)
      .join(', ');
    return s(
      'g',
      {
        class: `map-node${n.id === sel ? ' selected' : ''}${n.online ? '' : ' offline'}`,
        'data-map-node': n.name,
        transform: `translate(${p.x},${p.y})`,
        onclick: () => {
          view.selected = view.selected === n.id ? null : n.id;
          redraw();
        },
      },
      s(
        'title',
        {},
        `${n.name} ${n.addressV4}${tags ? ` (${tags})` : ''} · ${sourceText(n, names)}`,
      ),
      n.isRelay
        ? s('rect', {
            x: -NODE_R - 1,
            y: -NODE_R - 1,
            width: 2 * NODE_R + 2,
            height: 2 * NODE_R + 2,
            transform: 'rotate(45)',
          })
        : s('circle', { r: NODE_R }),
      n.isIngressGateway ? s('circle', { r: NODE_R + 4, class: 'ring' }) : '',
      s(
        'text',
        { x: label.x, y: label.y, 'text-anchor': label.anchor, transform: label.transform },
        tags ? `${n.name} (${tags})` : n.name,
      ),
    );
  });

  root.querySelector('#map-svg').replaceChildren(
    s(
      'svg',
      { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `map of network ${paths.network}` },
      s('rect', {
        width: W,
        height: H,
        class: 'bg',
        onclick: () => {
          view.selected = null;
          redraw();
        },
      }),
      s('g', {}, links),
      s('g', {}, nodes),
    ),
  );
  detail(root.querySelector('#map-detail'), paths, names);
}
