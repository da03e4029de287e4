// Group commit: writers that commit together share one sync of the WAL, and no write (nor the
// change feed that pushes it to streams) resolves before a sync that began after its commit.
import { afterAll, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { groupCommit } from '../src/group-commit.js';
import { migrate } from '../src/migrations.js';
import { openSqlite } from '../src/sqlite.js';
import { Store } from '../src/store/index.js';
import { registration } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'wm-group-commit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const dbFile = (): string => join(dir, `db${files++}.sqlite`);

/** A sync that, once `hold` is set, finishes only when the test says so; counts the syncs begun. */
function gatedSync(): {
  sync: () => Promise<void>;
  begun: () => number;
  finish: () => void;
  hold: boolean;
} {
  const pending: (() => void)[] = [];
  let begun = 0;
  const g = {
    hold: true,
    sync: () =>
      new Promise<void>((resolve) => {
        begun++;
        if (g.hold) pending.push(resolve);
        else resolve();
      }),
    begun: () => begun,
    finish: () => pending.shift()?.(),
  };
  return g;
}

/** Lets promise callbacks and the event loop run. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 10));

describe('groupCommit', () => {
  it('makes callers that arrive during a sync wait for, and share, the next one', async () => {
    const g = gatedSync();
    const durable = groupCommit(g.sync);
    const done: number[] = [];
    void durable().then(() => done.push(0));
    for (let i = 1; i <= 20; i++) void durable().then(() => done.push(i));
    await settle();
    expect(g.begun()).toBe(1);
    g.finish();
    await settle();
    // The first sync may have begun before callers 1..20 committed: they are not done yet.
    expect(done).toEqual([0]);
    expect(g.begun()).toBe(2);
    g.finish();
    await settle();
    expect(done.sort((a, b) => a - b)).toEqual([...Array(21).keys()]);
    expect(g.begun()).toBe(2);
  });

  it('rejects the callers of a failed sync and serves later callers with a new one', async () => {
    let fail = true;
    const durable = groupCommit(async () => {
      if (fail) throw new Error('EIO');
    });
    await expect(durable()).rejects.toThrow('EIO');
    fail = false;
    await expect(durable()).resolves.toBeUndefined();
  });
});

describe('openSqlite with group commit', () => {
  it('resolves no transaction, and publishes no change, before its sync', async () => {
    const g = gatedSync();
    g.hold = false;
    const db = openSqlite(dbFile(), { syncLog: g.sync });
    await migrate(db, 0);
    const store = new Store(db);
    await store.networks.create({
      name: 'gc',
      ipv4Cidr: '10.70.0.0/16',
      allowJoinWithoutKey: true,
    });
    g.hold = true;

    const published: string[] = [];
    db.subscribe((id) => published.push(id));
    const before = g.begun();
    let resolved = 0;
    const writes = Array.from({ length: 50 }, (_, i) =>
      store.nodes.register(registration('gc', `n${i}`)).then(() => resolved++),
    );
    await settle();
    // All 50 have committed (the next one only needed the lock), none is answered.
    expect(resolved).toBe(0);
    expect(published).toEqual([]);
    expect(
      (await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM nodes', []))?.n,
      'committed while their sync is pending',
    ).toBe(50);
    while (resolved < 50) {
      g.finish();
      await settle();
    }
    await Promise.all(writes);
    expect(published).toHaveLength(50);
    // The first commit began a sync; the 49 behind it shared the next one.
    expect(g.begun() - before).toBe(2);
    await db.close();
  });

  it('fdatasyncs the WAL file by default, fewer times than there are concurrent writers', async () => {
    const file = dbFile();
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const spy = vi.spyOn(proto, 'datasync');
    const db = openSqlite(file);
    try {
      await db.exec('CREATE TABLE t (i INTEGER PRIMARY KEY)');
      spy.mockClear();
      await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          db.tx((q) => q.run('INSERT INTO t (i) VALUES (?)', [i])),
        ),
      );
      expect(spy.mock.calls.length).toBeGreaterThan(0);
      expect(spy.mock.calls.length).toBeLessThan(100);
    } finally {
      spy.mockRestore();
      await db.close();
    }
    // What resolved is in the file a new connection opens.
    const again = openSqlite(file);
    expect((await again.get<{ n: number }>('SELECT COUNT(*) AS n FROM t', []))?.n).toBe(100);
    await again.close();
  });
});
