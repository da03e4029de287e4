// Parser for `wg show IFACE dump` (wireguard-tools wg(8), "dump" output): one tab-separated line
// for the interface, then one per peer, every field kept as printed (keys included) so that two
// implementations' dumps can be compared field by field. kernel-vm/wg-dump.ts builds on it.

/** `wg show IFACE dump`, parsed: the interface line, then one line per peer. */
export interface WgDump {
  privateKey: string;
  publicKey: string;
  listenPort: number;
  fwmark: string;
  peers: WgDumpPeer[];
}

/** One peer line of `wg show IFACE dump`. */
export interface WgDumpPeer {
  publicKey: string;
  presharedKey: string;
  endpoint: string;
  allowedIps: string[];
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: string;
}

const INTERFACE_FIELDS = 4;
const PEER_FIELDS = 8;

/**
 * Parses the text of `wg show IFACE dump` (single interface form). Throws Error naming the line
 * and its field count (never its text, which holds keys) when the text is not a dump.
 */
export function parseDump(text: string): WgDump {
  const lines = text.split('\n').filter((l) => l.length > 0);
  const head = lines[0]?.split('\t');
  if (head?.length !== INTERFACE_FIELDS) {
    throw new Error(`not a wg dump (interface line has ${head?.length ?? 0} fields)`);
  }
  return {
    privateKey: head[0]!,
    publicKey: head[1]!,
    listenPort: Number(head[2]),
    fwmark: head[3]!,
    peers: lines.slice(1).map((line, i) => {
      const f = line.split('\t');
      if (f.length !== PEER_FIELDS)
        throw new Error(`not a wg dump (peer line ${i + 1} has ${f.length} fields)`);
      return {
        publicKey: f[0]!,
        presharedKey: f[1]!,
        endpoint: f[2]!,
        allowedIps: f[3] === '(none)' ? [] : f[3]!.split(','),
        latestHandshake: Number(f[4]),
        rxBytes: Number(f[5]),
        txBytes: Number(f[6]),
        persistentKeepalive: f[7]!,
      };
    }),
  };
}
