// `wg show IFACE dump` for the system tests and the kernel VM harness: the product's parser
// (mesh-agent dataplane/wg-dump.ts, the one the agent runs) in the shape the tests compare, with
// wg(8)'s field names. Neither the private nor a preshared key is kept. Unlike the product's
// parser (total: bad lines are skipped), this one throws on text that is not a whole dump, so a
// test fails at the command that printed it.
import { parseWgDump } from '@wiremesh/mesh-agent';

/** `wg show IFACE dump`, parsed: the interface line, then one line per peer. */
export interface WgDump {
  /** Base64, or `(none)` (as wg(8) prints it) when the interface has no private key. */
  publicKey: string;
  listenPort: number;
  /** The firewall mark, or null for `off`. */
  fwmark: number | null;
  peers: WgDumpPeer[];
}

/** One peer line of `wg show IFACE dump`. */
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

const PEER_FIELDS = 8;
const NONE = '(none)';

/**
 * Parses the text of `wg show IFACE dump` (single interface form). Throws Error naming the line
 * and its field count (never its text, which holds keys) when the text is not a dump.
 */
export function parseDump(text: string): WgDump {
  const lines = text.split('\n').filter((l) => l.length > 0);
  const dump = parseWgDump(text);
  if (dump === null) {
    const fields = lines[0]?.split('\t').length ?? 0;
    throw new Error(`not a wg dump (interface line has ${fields} fields)`);
  }
  lines.slice(1).forEach((line, i) => {
    const fields = line.split('\t').length;
    if (fields !== PEER_FIELDS)
      throw new Error(`not a wg dump (peer line ${i + 1} has ${fields} fields)`);
  });
  return {
    publicKey: dump.device.publicKey ?? NONE,
    listenPort: dump.device.listenPort,
    fwmark: dump.device.fwmark,
    peers: dump.peers.map((p) => ({
      publicKey: p.publicKey,
      hasPresharedKey: p.hasPresharedKey,
      endpoint: p.endpoint,
      allowedIps: [...p.allowedIps],
      latestHandshake: p.latestHandshakeS,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      persistentKeepalive: p.persistentKeepalive,
    })),
  };
}
