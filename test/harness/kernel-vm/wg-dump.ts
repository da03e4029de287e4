// Parser for `wg show IFACE dump` (wireguard-tools wg(8), "dump" output): one tab-separated line
// for the interface, then one per peer. Shared by the kernel VM and the userspace peers.

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
  const lines = text.split('\n').filter((l) => l.length > 0);
  const head = lines[0]?.split('\t');
  if (head === undefined || head.length !== 4) {
    throw new Error(`not a wg dump (interface line has ${head?.length ?? 0} fields)`);
  }
  const iface: WgDumpInterface = {
    publicKey: head[1] ?? '',
    listenPort: Number(head[2]),
    fwmark: head[3] ?? '',
  };
  const peers = lines.slice(1).map((line, i): WgDumpPeer => {
    const f = line.split('\t');
    if (f.length !== 8)
      throw new Error(`not a wg dump (peer line ${i + 1} has ${f.length} fields)`);
    const [pub, psk, endpoint, allowed, hs, rx, tx, ka] = f as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    return {
      publicKey: pub,
      hasPresharedKey: psk !== NONE,
      endpoint: endpoint === NONE ? null : endpoint,
      allowedIps: allowed === NONE ? [] : allowed.split(','),
      latestHandshake: Number(hs),
      rxBytes: Number(rx),
      txBytes: Number(tx),
      persistentKeepalive: ka === 'off' ? 0 : Number(ka),
    };
  });
  return { iface, peers };
}
