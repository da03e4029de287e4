import {
  mkdtempSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentError } from '../src/errors.js';
import { StateStore, writeFileAtomic, type NetworkState } from '../src/state-store.js';
import { key, map, peer } from './fixtures.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wm-agent-state-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const state = (network = 'demo'): NetworkState => ({
  format: 1,
  network,
  server: 'http://10.0.0.1:8080',
  nodeId: 'node-1',
  nodeSecret: 'wmn_node-1.s3cret',
  name: 'alpha',
  interface: `wm-${network}`,
  backend: 'userspace',
  listenPort: null,
  publicKey: key(1),
  joinedAt: 1,
});

const mode = (p: string) => statSync(p).mode & 0o777;

describe('StateStore', () => {
  it('saves state, key and map with mode 0600 in a 0700 directory, and reads them back', () => {
    const store = new StateStore(join(dir, 'wm'));
    store.save(state());
    const secret = new Uint8Array(32).fill(7);
    store.saveKey('demo', secret);
    store.saveMap('demo', map([peer(2)], 4));
    expect(mode(join(dir, 'wm'))).toBe(0o700);
    for (const f of ['demo.json', 'demo.key', 'demo.map.json'])
      expect(mode(join(dir, 'wm', f))).toBe(0o600);
    expect(store.load('demo')).toEqual(state());
    expect(store.loadKey('demo')).toEqual(secret);
    expect(store.loadMap('demo')?.version).toBe(4);
    expect(store.networks()).toEqual(['demo']);
    expect(readdirSync(join(dir, 'wm')).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('forgets a network completely', () => {
    const store = new StateStore(dir);
    store.save(state('a'));
    store.save(state('b'));
    store.saveKey('a', new Uint8Array(32).fill(1));
    store.remove('a');
    expect(store.networks()).toEqual(['b']);
    expect(store.load('a')).toBeNull();
    expect(readdirSync(dir).sort()).toEqual(['b.json']);
  });

  it('reports damaged state as one actionable error', () => {
    const store = new StateStore(dir);
    writeFileSync(join(dir, 'demo.json'), '{"format":1,');
    expect(() => store.load('demo')).toThrow(AgentError);
    expect(() => store.load('demo')).toThrow(/leave --network demo/);
    writeFileSync(join(dir, 'demo.key'), 'not a key');
    expect(() => store.loadKey('demo')).toThrow(/join again/);
  });

  it('ignores a saved map that no longer validates', () => {
    const store = new StateStore(dir);
    writeFileSync(join(dir, 'demo.map.json'), JSON.stringify({ ...map([]), version: -1 }));
    expect(store.loadMap('demo')).toBeNull();
  });

  it('refuses names that are not network names', () => {
    const store = new StateStore(dir);
    expect(() => store.load('../etc')).toThrow(AgentError);
  });
});

describe('writeFileAtomic', () => {
  it('replaces a file whole and leaves the old one when the rename fails', () => {
    const p = join(dir, 'f');
    writeFileAtomic(p, 'one');
    writeFileAtomic(p, 'two');
    expect(readFileSync(p, 'utf8')).toBe('two');
    expect(mode(p)).toBe(0o600);
    // A directory in the way makes rename fail: the temporary file must not be left behind.
    const blocked = join(dir, 'blocked');
    mkdirSync(join(blocked, 'x'), { recursive: true });
    expect(() => writeFileAtomic(blocked, 'three')).toThrow();
    expect(readdirSync(dir).sort()).toEqual(['blocked', 'f']);
  });
});
