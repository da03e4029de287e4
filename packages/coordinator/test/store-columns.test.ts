// JSON columns are parsed once, at the store's edge, with a schema: damaged text is an error that
// names the row and the column (never a half-parsed record), on the way in through every read.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Endpoint } from '@wiremesh/protocol';
import { openSqlite } from '../src/sqlite.js';
import { migrate } from '../src/migrations.js';
import { Store } from '../src/store/index.js';
import { parseColumn } from '../src/store/json.js';
import { registration } from './helpers.js';

describe('parseColumn', () => {
  const Endpoints = z.array(Endpoint);

  it('parses what the store writes, and NULL as null', () => {
    expect(parseColumn(Endpoints, '[{"ip":"10.0.0.1","port":51820}]', 'c', 'node x')).toEqual([
      { ip: '10.0.0.1', port: 51820 },
    ]);
    expect(parseColumn(Endpoint.nullable(), null, 'c', 'node x')).toBeNull();
  });

  it('names the row and column of text that is not JSON or fails the schema', () => {
    expect(() => parseColumn(Endpoints, '[{', 'local_endpoints', 'node x')).toThrow(
      'stored node x has a column local_endpoints that is not JSON',
    );
    expect(() =>
      parseColumn(Endpoints, '[{"ip":"10.0.0.1","port":0}]', 'local_endpoints', 'node x'),
    ).toThrow(/^stored node x has a bad column local_endpoints: /);
    expect(() => parseColumn(Endpoints, null, 'local_endpoints', 'node x')).toThrow(
      /bad column local_endpoints/,
    );
  });
});

describe('the store with a damaged column', () => {
  it('refuses to read the node rather than hand on a bad record', async () => {
    const db = openSqlite(':memory:');
    try {
      await migrate(db, 0);
      const store = new Store(db);
      await store.networks.create({
        name: 'dmg',
        ipv4Cidr: '10.60.0.0/24',
        allowJoinWithoutKey: true,
      });
      const { node, secret } = await store.nodes.register(registration('dmg', 'a'));
      expect((await store.nodes.record(node.id)).localEndpoints).toEqual(node.localEndpoints);
      await db.run('UPDATE nodes SET local_endpoints = \'[{"ip":"nope","port":1}]\'');
      const message = `stored node ${node.id} has a bad column local_endpoints`;
      await expect(store.nodes.record(node.id)).rejects.toThrow(message);
      await expect(store.nodes.authenticate(secret)).rejects.toThrow(message);
      await expect(store.networkState(node.networkId)).rejects.toThrow(message);
    } finally {
      await db.close();
    }
  });

  it('refuses to read a DNS record whose address column is not an IP address', async () => {
    const db = openSqlite(':memory:');
    try {
      await migrate(db, 0);
      const store = new Store(db);
      const net = await store.networks.create({ name: 'dmg', ipv4Cidr: '10.60.0.0/24' });
      const rec = await store.dns.addRecord('dmg', { name: 'printer', ip: '192.168.1.9' });
      expect((await store.dns.listRecords('dmg')).map((r) => r.ip)).toEqual(['192.168.1.9']);
      await db.run("UPDATE dns_records SET ip = 'printer.lan'");
      const message = `stored DNS record ${rec.id} has a bad column ip`;
      await expect(store.dns.listRecords('dmg')).rejects.toThrow(message);
      await expect(store.networkState(net.id)).rejects.toThrow(message);
    } finally {
      await db.close();
    }
  });

  it('refuses a named admin token whose scope is not one it knows', async () => {
    const db = openSqlite(':memory:');
    try {
      await migrate(db, 0);
      const store = new Store(db);
      const t = await store.adminTokens.create('grafana', 'read');
      expect(await store.adminTokens.authenticate(t.token ?? '')).toEqual({
        actor: 'grafana',
        scope: 'read',
      });
      await db.run("UPDATE admin_tokens SET scope = 'root'");
      const message = `stored admin token ${t.id} has a bad column scope`;
      await expect(store.adminTokens.list()).rejects.toThrow(message);
      await expect(store.adminTokens.authenticate(t.token ?? '')).rejects.toThrow(message);
    } finally {
      await db.close();
    }
  });
});
