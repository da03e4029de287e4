/**
 * Schema migrations, in order, written in the SQL subset SQLite and PostgreSQL share. Each runs
 * once, inside a transaction, recorded in `schema_migrations`; PostgreSQL replicas starting
 * together take an advisory lock so only one applies them.
 */
import type { Db } from './db.js';

/** Key of the PostgreSQL advisory lock held while migrating (any fixed number unique to us). */
const PG_MIGRATION_LOCK = 0x776d6967;

const MIGRATIONS: readonly { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE networks (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  ipv4_cidr TEXT NOT NULL,
  ipv6_cidr TEXT,
  listen_port INTEGER NOT NULL,
  persistent_keepalive INTEGER NOT NULL,
  mtu INTEGER NOT NULL,
  allow_without_key INTEGER NOT NULL,
  revision BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE enrollment_keys (
  id TEXT PRIMARY KEY,
  network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
  name TEXT,
  key_hash TEXT NOT NULL UNIQUE,
  max_uses INTEGER,
  uses INTEGER NOT NULL,
  expires_at BIGINT,
  auto_approve INTEGER NOT NULL,
  revoked INTEGER NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX enrollment_keys_network ON enrollment_keys(network_id);
CREATE TABLE nodes (
  id TEXT PRIMARY KEY,
  network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  public_key TEXT NOT NULL,
  state TEXT NOT NULL,
  host_index INTEGER NOT NULL,
  secret_hash TEXT NOT NULL,
  os TEXT NOT NULL,
  version TEXT NOT NULL,
  backend TEXT NOT NULL,
  listen_port INTEGER NOT NULL,
  local_endpoints TEXT NOT NULL,
  reflected_endpoint TEXT,
  egress_ranges TEXT,
  egress_interface TEXT,
  is_ingress INTEGER NOT NULL,
  ingress_endpoint TEXT,
  is_relay INTEGER NOT NULL,
  relayed_by TEXT,
  last_seen_at BIGINT,
  peer_status TEXT NOT NULL,
  enrollment_key_id TEXT,
  created_at BIGINT NOT NULL
);
CREATE INDEX nodes_network ON nodes(network_id);
CREATE UNIQUE INDEX nodes_active_name ON nodes(network_id, name) WHERE state IN ('pending', 'approved');
CREATE UNIQUE INDEX nodes_active_key ON nodes(network_id, public_key) WHERE state IN ('pending', 'approved');
CREATE TABLE addresses (
  network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
  host_index INTEGER NOT NULL,
  owner_id TEXT NOT NULL,
  PRIMARY KEY (network_id, host_index)
);
CREATE TABLE ext_clients (
  id TEXT PRIMARY KEY,
  network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  public_key TEXT NOT NULL,
  private_key TEXT,
  ingress_node_id TEXT NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
  host_index INTEGER NOT NULL,
  dns TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (network_id, name)
);
`,
  },
  {
    // Relay fallback: pairs of nodes that talk through a relay node because no direct handshake
    // succeeded (path-monitor.ts). node_a < node_b; a row exists only while the pair is relayed.
    version: 2,
    sql: `
CREATE TABLE pair_relays (
  network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
  node_a TEXT NOT NULL,
  node_b TEXT NOT NULL,
  relay_id TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (network_id, node_a, node_b)
);
`,
  },
  {
    // Relay fallback: pairs waiting for a direct handshake since `since` (unix ms) with endpoint
    // candidates `endpoints`, so a restarted coordinator (or another replica) relays a pair when
    // its wait runs out instead of starting the wait again. node_a < node_b.
    version: 3,
    sql: `
CREATE TABLE pair_waits (
  network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
  node_a TEXT NOT NULL,
  node_b TEXT NOT NULL,
  since BIGINT NOT NULL,
  endpoints TEXT NOT NULL,
  PRIMARY KEY (network_id, node_a, node_b)
);
`,
  },
  {
    // DNS names (store/dns.ts): a network's domain when the admin set one (else the default), and
    // the admin's custom records. Names are one namespace with nodes and external clients.
    version: 4,
    sql: `
CREATE TABLE dns_domains (
  network_id TEXT PRIMARY KEY REFERENCES networks(id) ON DELETE CASCADE,
  domain TEXT NOT NULL
);
CREATE TABLE dns_records (
  id TEXT PRIMARY KEY,
  network_id TEXT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  ip TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (network_id, name)
);
`,
  },
  {
    // Named admin tokens with scopes (store/admin-tokens.ts) and the audit log of mutating admin
    // calls (store/audit-log.ts). Version 4 belongs to DNS.
    version: 5,
    sql: `
CREATE TABLE admin_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  scope TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  created_at BIGINT NOT NULL,
  last_used_at BIGINT,
  revoked_at BIGINT
);
CREATE TABLE audit_log (
  seq BIGINT NOT NULL,
  id TEXT PRIMARY KEY,
  at BIGINT NOT NULL,
  actor TEXT NOT NULL,
  method TEXT NOT NULL,
  route TEXT NOT NULL,
  path TEXT NOT NULL,
  status INTEGER NOT NULL,
  ip TEXT NOT NULL
);
CREATE INDEX audit_log_seq ON audit_log(seq);
`,
  },
];

/** The newest schema version this build knows. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

/** Applies every migration `db` lacks. Throws if the database is newer than this build. */
export async function migrate(db: Db, now: number): Promise<void> {
  await db.tx(async (q) => {
    // Under the lock, so replicas starting together do not race on creating the table either.
    if (db.dialect === 'postgres')
      await q.get('SELECT pg_advisory_xact_lock(?)', [PG_MIGRATION_LOCK]);
    await q.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)',
    );
    const rows = await q.all<{ version: number }>('SELECT version FROM schema_migrations');
    const applied = new Set(rows.map((r) => Number(r.version)));
    const newest = Math.max(0, ...applied);
    if (newest > SCHEMA_VERSION) {
      throw new Error(
        `the database has schema version ${newest}, newer than this coordinator (${SCHEMA_VERSION}); upgrade the coordinator`,
      );
    }
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      await q.exec(m.sql);
      await q.run('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)', [
        m.version,
        now,
      ]);
    }
  });
}
