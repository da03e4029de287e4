/**
 * TLS for the coordinator's HTTP API: the certificate and key files (PEM), their SHA-256
 * fingerprint (what agents pin for a self-signed certificate), and the rule that a coordinator
 * reachable beyond loopback speaks TLS unless told it sits behind a TLS-terminating proxy.
 */
import { X509Certificate, createPrivateKey, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';

/** A loaded certificate and key. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  /** SHA-256 of the leaf certificate's DER. */
  fingerprint: Uint8Array;
}

/**
 * Reads and checks a certificate and key (PEM). Throws an Error with a one-line message when a
 * file cannot be read, is not PEM of its kind, or the key does not belong to the certificate.
 */
export function loadTlsFiles(certFile: string, keyFile: string): TlsFiles {
  const read = (file: string, flag: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (e) {
      throw new Error(`${flag} ${file}: ${(e as { code?: string }).code ?? 'unreadable'}`);
    }
  };
  const cert = read(certFile, '--tls-cert');
  const key = read(keyFile, '--tls-key');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new Error(`--tls-cert ${certFile} is not a PEM certificate`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new Error(
      `--tls-key ${keyFile} is not a PEM private key (an encrypted key needs decrypting first)`,
    );
  }
  if (!x509.checkPrivateKey(privateKey))
    throw new Error(`--tls-key ${keyFile} does not belong to the certificate in ${certFile}`);
  return { cert, key, fingerprint: createHash('sha256').update(x509.raw).digest() };
}

/** Whether `host` (a listen address) is reachable only from this machine. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIPv4(host) && host.startsWith('127.');
}
