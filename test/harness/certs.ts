// Self-signed certificates made with openssl, for the TLS tests and the demo's coordinator.
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface SelfSigned {
  cert: string;
  key: string;
  fingerprint: string;
}

/**
 * A self-signed P-256 certificate and its key written to `dir` as `NAME.crt` and `NAME.key`,
 * valid for the given IP addresses; returns the paths and the SHA-256 fingerprint.
 */
export function selfSignedCertificate(
  dir: string,
  name: string,
  opts: { subject: string; ips: readonly string[]; days: number },
): SelfSigned {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      String(opts.days),
      '-subj',
      `/CN=${opts.subject}`,
      '-addext',
      `subjectAltName=${opts.ips.map((ip) => `IP:${ip}`).join(',')}`,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) {
    throw new Error(
      `openssl could not make a certificate: ${(r.stderr ?? String(r.error)).trim()}`,
    );
  }
  return { cert, key, fingerprint: new X509Certificate(readFileSync(cert)).fingerprint256 };
}
