// `wg show IFACE dump` for the kernel VM and the userspace peers: the harness's parser
// (../wg-dump.ts) without the keys, `(none)` and `off` read as null and 0.
import { parseDump } from '../wg-dump.js';

/** The interface line of a dump. The private key is deliberately not kept. */
export interface WgDumpInterface {
  publicKey: string;
  listenPort: number;
  /** `off` or the mark as printed. */
  fwmark: string;
}

/** One peer line of a dump. */
export interface WgDumpPeer {
  publicKey: string;
  /** Whether a preshared key is set; the key itself is not kept. */
  hasPresharedKey: boolean;
  /** `host:port` (IPv6 in brackets) or null for `(none)`. */
  endpoint: string | null;
  allowedIps: string[];
  /** Seconds since the epoch; 0 when no handshake completed yet. */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  /** Seconds, or 0 for `off`. */
  persistentKeepalive: number;
}

/** A parsed dump of one interface. */
export interface WgDump {
  iface: WgDumpInterface;
  peers: WgDumpPeer[];
}

const NONE = '(none)';

/**
 * Parses the output of `wg show IFACE dump` (single interface form).
 * Returns the interface and its peers; throws Error naming the line when the text is not a dump.
 */
export function parseWgDump(text: string): WgDump {
  const dump = parseDump(text);
  return {
    iface: { publicKey: dump.publicKey, listenPort: dump.listenPort, fwmark: dump.fwmark },
    peers: dump.peers.map((p) => ({
      publicKey: p.publicKey,
      hasPresharedKey: p.presharedKey !== NONE,
      endpoint: p.endpoint === NONE ? null : p.endpoint,
      allowedIps: p.allowedIps,
      latestHandshake: p.latestHandshake,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      persistentKeepalive: p.persistentKeepalive === 'off' ? 0 : Number(p.persistentKeepalive),
    })),
  };
}
