/**
 * What a node may claim about itself beyond the schema: a public key that is a usable Curve25519
 * point (not all-zero, not of low order: whitepaper §5.4, such a key makes every DH output zero),
 * and local endpoints that peers can actually dial (never loopback, unspecified or multicast).
 */
import { createPublicKey, diffieHellman, generateKeyPairSync } from 'node:crypto';
import type { Endpoint } from '@wiremesh/protocol';
import { isZeroKey, keyFromBase64 } from '@wiremesh/wg-core';
import { ipv4ToInt, ipv6ToBigInt } from './ip-pool.js';

/** Any private key: a low-order point times a clamped scalar (a multiple of 8) is the identity. */
const PROBE = generateKeyPairSync('x25519').privateKey;

/** Why `publicKey` (base64, already schema-valid) cannot be a WireGuard peer's key, or null. */
export function weakKeyProblem(publicKey: string): string | null {
  if (isZeroKey(keyFromBase64(publicKey)))
    return 'publicKey: the all-zero key is not a public key; generate a key pair';
  let shared: Buffer | null;
  try {
    const x = Buffer.from(publicKey, 'base64').toString('base64url');
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' });
    // OpenSSL refuses an all-zero result itself (RFC 7748 §6.1); the check covers either way.
    shared = diffieHellman({ privateKey: PROBE, publicKey: key });
  } catch {
    shared = null;
  }
  if (shared === null || isZeroKey(shared))
    return 'publicKey: a low-order Curve25519 point is not a usable public key; generate a key pair';
  return null;
}

const V4_UNDIALABLE: readonly [number, number, string][] = [
  [0x00000000, 8, 'unspecified (0.0.0.0/8)'],
  [0x7f000000, 8, 'loopback (127.0.0.0/8)'],
  [0xe0000000, 4, 'multicast (224.0.0.0/4)'],
  [0xffffffff, 32, 'broadcast (255.255.255.255)'],
];

function v4Problem(ip: string): string | null {
  const n = ipv4ToInt(ip);
  if (n === null) return null;
  for (const [base, prefix, what] of V4_UNDIALABLE)
    if (Math.floor(n / 2 ** (32 - prefix)) === Math.floor(base / 2 ** (32 - prefix))) return what;
  return null;
}

function v6Problem(ip: string): string | null {
  const n = ipv6ToBigInt(ip);
  if (n === null) return null;
  if (n === 0n) return 'unspecified (::)';
  if (n === 1n) return 'loopback (::1)';
  if (n >> 120n === 0xffn) return 'multicast (ff00::/8)';
  // An IPv4-mapped address (::ffff:a.b.c.d) is judged as the IPv4 address.
  if (n >> 32n === 0xffffn) {
    const v4 = Number(n & 0xffffffffn);
    return v4Problem([v4 >>> 24, (v4 >>> 16) & 0xff, (v4 >>> 8) & 0xff, v4 & 0xff].join('.'));
  }
  return null;
}

/** Why peers could not dial one of `endpoints` (a node's LAN candidates), or null. */
export function localEndpointProblem(endpoints: readonly Endpoint[] | undefined): string | null {
  for (const [i, e] of (endpoints ?? []).entries()) {
    const what = e.ip.includes(':') ? v6Problem(e.ip) : v4Problem(e.ip);
    if (what !== null)
      return `localEndpoints.${i}: ${e.ip} is ${what}, which no peer can dial; report LAN addresses only`;
  }
  return null;
}
