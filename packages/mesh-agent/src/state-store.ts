/**
 * The agent's persistent state (one directory, default /var/lib/wiremesh): per joined network a
 * JSON file (node id, node secret, server, interface), the private key in its own file, and the
 * last good network map so the mesh comes back after a reboot even with the coordinator down.
 * Every file is written whole to a temporary file, synced and renamed (atomic on POSIX), mode 0600.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
  chmodSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { Backend, Name, NetworkMap, Port, WgKey } from '@wiremesh/protocol';
import { keyFromBase64, keyToBase64 } from '@wiremesh/wg-core';
import { SECRET_FILE_MODE, STATE_DIR_MODE } from './constants.js';
import { AgentError } from './errors.js';

const STATE_FORMAT = 1;
const TMP_RANDOM_BYTES = 6;

/** What the agent remembers about one joined network. */
export const NetworkState = z.object({
  format: z.literal(STATE_FORMAT),
  network: Name,
  server: z.string().url(),
  nodeId: z.string().min(1),
  /** Bearer secret of this node (`wmn_...`); never printed. */
  nodeSecret: z.string().min(1),
  name: Name,
  interface: z.string().min(1).max(15),
  backend: Backend,
  /** Listen port asked for at join (--port), or null for the network's default. */
  listenPort: Port.nullable(),
  publicKey: WgKey,
  joinedAt: z.int().min(0),
  /** The pinned SHA-256 of the coordinator's certificate (colon hex), or absent for none. */
  serverFingerprint: z.string().nullable().optional(),
});
/** What the agent remembers about one joined network. */
export type NetworkState = z.infer<typeof NetworkState>;

/**
 * Writes `data` to `path` atomically with `mode`: a temporary file in the same directory, fsync,
 * rename over the target, fsync of the directory. A crash leaves the old file or the new one,
 * never a torn one. Throws the fs error.
 */
export function writeFileAtomic(path: string, data: string, mode = SECRET_FILE_MODE): void {
  const dir = path.slice(0, path.lastIndexOf('/')) || '.';
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(TMP_RANDOM_BYTES).toString('hex')}`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  try {
    const dfd = openSync(dir, 'r');
    fsyncSync(dfd);
    closeSync(dfd);
  } catch {
    // Some filesystems refuse to sync a directory; the rename is still atomic.
  }
}

/** The state directory of one agent. Methods throw AgentError for unreadable or corrupt state. */
export class StateStore {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  /** Creates the directory (0700) if needed. */
  ensureDir(): void {
    mkdirSync(this.dir, { recursive: true, mode: STATE_DIR_MODE });
    try {
      if ((statSync(this.dir).mode & 0o777) !== STATE_DIR_MODE) chmodSync(this.dir, STATE_DIR_MODE);
    } catch {
      // best effort on odd filesystems
    }
  }

  private path(network: string, suffix: string): string {
    if (!Name.safeParse(network).success)
      throw new AgentError(
        'usage',
        `"${network}" is not a network name (lower-case letters, digits, inner hyphens)`,
      );
    return join(this.dir, `${network}${suffix}`);
  }

  /** Path of the private key file of `network` (wg(8) reads it directly). */
  keyPath(network: string): string {
    return this.path(network, '.key');
  }

  /** Names of the joined networks, sorted. */
  networks(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    return names
      .filter(
        (f) =>
          f.endsWith('.json') &&
          !f.endsWith('.map.json') &&
          !f.includes('.tmp-') &&
          f !== 'forwarding.json',
      )
      .map((f) => f.slice(0, -'.json'.length))
      .filter((n) => Name.safeParse(n).success)
      .sort();
  }

  /** The state of `network`, or null when not joined. */
  load(network: string): NetworkState | null {
    const file = this.path(network, '.json');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return null;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = null;
    }
    const r = NetworkState.safeParse(value);
    if (!r.success)
      throw new AgentError(
        'system',
        `the state file of ${network} in ${this.dir} is damaged: run "wiremesh leave --network ${network}" and join again`,
      );
    return r.data;
  }

  /** Saves the state of its network (0600, atomic). */
  save(state: NetworkState): void {
    this.ensureDir();
    writeFileAtomic(
      this.path(state.network, '.json'),
      `${JSON.stringify(NetworkState.parse(state), null, 2)}\n`,
    );
  }

  /** Saves the private key of `network` in base64 (0600, atomic). The caller keeps its bytes. */
  saveKey(network: string, privateKey: Uint8Array): void {
    this.ensureDir();
    writeFileAtomic(this.keyPath(network), `${keyToBase64(privateKey)}\n`);
  }

  /** The private key of `network` (fresh bytes the caller should wipe). */
  loadKey(network: string): Uint8Array {
    const file = this.keyPath(network);
    try {
      return keyFromBase64(readFileSync(file, 'utf8').trim());
    } catch {
      throw new AgentError(
        'system',
        `the private key of ${network} (${this.keyPath(network)}) is missing or damaged: run "wiremesh leave --network ${network}" and join again`,
      );
    }
  }

  /** The last good map of `network`, or null (none saved, or it no longer validates). */
  loadMap(network: string): NetworkMap | null {
    const file = this.path(network, '.map.json');
    try {
      const r = NetworkMap.safeParse(JSON.parse(readFileSync(file, 'utf8')));
      return r.success ? r.data : null;
    } catch {
      return null;
    }
  }

  /** Saves a (validated) map as the last good one of its network. */
  saveMap(network: string, map: NetworkMap): void {
    this.ensureDir();
    writeFileAtomic(this.path(network, '.map.json'), JSON.stringify(map));
  }

  /** Forgets `network`: state, key, map. Missing files are fine. */
  remove(network: string): void {
    for (const s of ['.json', '.key', '.map.json']) rmSync(this.path(network, s), { force: true });
  }
}
