// The coordinator on TLS (issue 17): HTTPS with a self-signed certificate made here with openssl,
// the refusal to serve plain HTTP beyond loopback, the certificate reloaded on SIGHUP, and the
// agent's client verifying the certificate or pinning its fingerprint (given alone or carried
// in the enrollment key). Loopback only; no namespaces needed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  PROTOCOL_VERSION,
  formatFingerprint,
  parseFingerprint,
  splitEnrollmentKey,
} from '@wiremesh/protocol';
import { startCoordinator, type Coordinator } from '@wiremesh/coordinator';
import { AgentError, HttpCoordinator } from '@wiremesh/mesh-agent';
import { generatePrivateKey, keyToBase64, nobleCrypto, publicKeyOf } from '@wiremesh/wg-core';
import { COORDINATOR_JS } from './harness/agent-mesh.js';
import { selfSignedCertificate, type SelfSigned } from './harness/certs.js';

const dir = mkdtempSync(join(tmpdir(), 'wm-tls-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A self-signed certificate for 127.0.0.1 with its key; returns the paths and the fingerprint. */
function makeCert(name: string): SelfSigned {
  return selfSignedCertificate(dir, name, { subject: name, ips: ['127.0.0.1'], days: 2 });
}

const opts = (data: string) => ({ dataDir: join(dir, data), logLevel: 'silent' });

function publicKey(): string {
  const priv = generatePrivateKey((out) => randomBytes(out.length).copy(out));
  return keyToBase64(publicKeyOf(nobleCrypto, priv));
}

describe('serving', () => {
  it('refuses plain HTTP beyond loopback unless told, and certificate files that do not match', async () => {
    await expect(startCoordinator({ ...opts('a'), listen: '0.0.0.0:0' })).rejects.toThrow(
      /refusing to serve plain HTTP on 0\.0\.0\.0.*--tls-cert FILE --tls-key FILE.*--insecure-http/,
    );
    const insecure = await startCoordinator({
      ...opts('a'),
      listen: '0.0.0.0:0',
      insecureHttp: true,
    });
    expect(insecure.url).toMatch(/^http:\/\//);
    await insecure.close();
    const a = makeCert('one');
    const b = makeCert('two');
    await expect(
      startCoordinator({ ...opts('a'), listen: '127.0.0.1:0', tlsCert: a.cert, tlsKey: b.key }),
    ).rejects.toThrow(/does not belong to the certificate/);
    await expect(
      startCoordinator({ ...opts('a'), listen: '127.0.0.1:0', tlsCert: a.key, tlsKey: a.key }),
    ).rejects.toThrow(/is not a PEM certificate/);
  });

  it('the CLI says so in one line, prints the fingerprint and reloads the certificate on SIGHUP', async () => {
    const refused = spawn(process.execPath, [
      COORDINATOR_JS,
      'serve',
      '--listen',
      '0.0.0.0:0',
      '--data-dir',
      join(dir, 'cli0'),
    ]);
    let err = '';
    refused.stderr.on('data', (b: Buffer) => (err += b.toString()));
    expect(await new Promise((r) => refused.on('exit', r))).toBe(1);
    expect(err.trim().split('\n')).toHaveLength(1);
    expect(err).toContain('--insecure-http');

    const first = makeCert('cli');
    const child = spawn(process.execPath, [
      COORDINATOR_JS,
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      join(dir, 'cli'),
      '--tls-cert',
      first.cert,
      '--tls-key',
      first.key,
      '--log-level',
      'warn',
    ]);
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    try {
      const waitFor = async (re: RegExp) => {
        for (let i = 0; i < 200 && !re.test(out); i++) await new Promise((r) => setTimeout(r, 50));
        expect(out).toMatch(re);
      };
      await waitFor(/TLS certificate SHA-256 ([0-9A-F:]{95})/);
      expect(out).toContain(`TLS certificate SHA-256 ${first.fingerprint}`);
      expect(out).toMatch(/listening on https:\/\/127\.0\.0\.1:\d+/);
      const url = /listening on (https:\/\/\S+)/.exec(out)?.[1] ?? '';
      // A renewal: new files in place, then the signal.
      const renewed = makeCert('cli-renewed');
      writeFileSync(first.cert, readFileSync(renewed.cert));
      writeFileSync(first.key, readFileSync(renewed.key));
      child.kill('SIGHUP');
      await waitFor(/TLS certificate reloaded: SHA-256/);
      expect(out).toContain(`reloaded: SHA-256 ${renewed.fingerprint}`);
      const info = await new HttpCoordinator({
        server: url,
        serverFingerprint: parseFingerprint(renewed.fingerprint),
      }).info();
      expect(info.name).toBe('wiremesh-coordinator');
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.on('exit', r));
    }
  });
});

describe('the agent against a self-signed coordinator', () => {
  let c: Coordinator;
  let cert: ReturnType<typeof makeCert>;
  let admin: string;
  beforeAll(async () => {
    cert = makeCert('agent');
    c = await startCoordinator({
      ...opts('agent'),
      listen: '127.0.0.1:0',
      tlsCert: cert.cert,
      tlsKey: cert.key,
    });
    admin = c.adminToken ?? '';
  });
  afterAll(async () => c.close());

  /** An admin request trusting the test's certificate as a CA (as NODE_EXTRA_CA_CERTS would). */
  const call = (method: string, path: string, body?: unknown) =>
    new Promise<{ status: number; body: any; text: string }>((resolve, reject) => {
      const req = httpsRequest(
        `${c.url}${path}`,
        {
          method,
          ca: readFileSync(cert.cert),
          headers: {
            authorization: `Bearer ${admin}`,
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
        },
        (res) => {
          let text = '';
          res.on('data', (b: Buffer) => (text += b.toString()));
          res.on('end', () => {
            let parsed: unknown = null;
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = null;
            }
            resolve({ status: res.statusCode ?? 0, body: parsed, text });
          });
        },
      );
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });

  it('serves HTTPS and hands out keys that carry its fingerprint', async () => {
    expect(c.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(formatFingerprint(c.tlsFingerprint ?? new Uint8Array())).toBe(cert.fingerprint);
    expect(
      (await call('POST', '/api/v1/networks', { name: 'tls', ipv4Cidr: '10.44.0.0/24' })).status,
    ).toBe(201);
    const k = await call('POST', '/api/v1/networks/tls/keys', { autoApprove: true });
    expect(k.status).toBe(201);
    const split = splitEnrollmentKey(String(k.body.pinnedKey));
    if ('problem' in split) throw new Error(split.problem);
    expect(split.key).toBe(k.body.key);
    expect(formatFingerprint(split.fingerprint ?? new Uint8Array())).toBe(cert.fingerprint);
  });

  it('refuses a certificate it does not trust, with one line saying how to pin it', async () => {
    const e = await new HttpCoordinator({ server: c.url }).info().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AgentError);
    expect((e as AgentError).message).toMatch(
      /does not trust \(DEPTH_ZERO_SELF_SIGNED_CERT\).*--server-fingerprint/,
    );
    expect((e as AgentError).message).not.toContain('\n');
  });

  it('registers, checks in and streams over a pinned connection, with the key that carries the pin', async () => {
    const k = await call('POST', '/api/v1/networks/tls/keys', { autoApprove: true });
    const split = splitEnrollmentKey(String(k.body.pinnedKey));
    if ('problem' in split) throw new Error(split.problem);
    const api = new HttpCoordinator({ server: c.url, serverFingerprint: split.fingerprint });
    const reg = await api.register({
      protocolVersion: PROTOCOL_VERSION,
      network: 'tls',
      enrollmentKey: split.key,
      name: 'n1',
      publicKey: publicKey(),
      os: 'linux',
      version: 'test',
      backend: 'userspace',
    });
    expect(reg.state).toBe('approved');
    const node = new HttpCoordinator({
      server: c.url,
      nodeSecret: reg.nodeSecret,
      serverFingerprint: split.fingerprint,
    });
    expect((await node.checkin({ protocolVersion: PROTOCOL_VERSION })).state).toBe('approved');
    const ctl = new AbortController();
    const first = new Promise<string>((resolve, reject) => {
      node
        .stream((ev) => {
          resolve(ev.type);
          ctl.abort();
        }, ctl.signal)
        .catch(reject);
    });
    expect(await first).toBe('map');
    // An agent that predates pinning sends the whole pinned key: the coordinator checks its key part.
    const old = await call('POST', '/api/v1/networks/tls/keys', { autoApprove: true });
    const r = await api.register({
      protocolVersion: PROTOCOL_VERSION,
      network: 'tls',
      enrollmentKey: String(old.body.pinnedKey),
      name: 'n2',
      publicKey: publicKey(),
      os: 'linux',
      version: 'test',
      backend: 'userspace',
    });
    expect(r.state).toBe('approved');
  });

  it('refuses a wrong fingerprint with one clear line, before the request leaves', async () => {
    const wrong = new Uint8Array(32).fill(7);
    const nodeRequests = async () =>
      (await call('GET', '/metrics')).text
        .split('\n')
        .filter((l) => l.includes('route="/api/v1/node/'))
        .join('\n');
    const before = await nodeRequests();
    const node = new HttpCoordinator({
      server: c.url,
      nodeSecret: 'wmn_x.secret',
      serverFingerprint: wrong,
    });
    for (const attempt of [
      () => node.info(),
      () => node.checkin({ protocolVersion: PROTOCOL_VERSION }),
    ]) {
      const e = await attempt().catch((x: unknown) => x);
      expect(e).toBeInstanceOf(AgentError);
      const m = (e as AgentError).message;
      expect(m).toContain(
        `presented certificate SHA-256 ${cert.fingerprint}, not the pinned ${formatFingerprint(wrong)}: refusing to connect`,
      );
      expect(m).not.toContain('\n');
    }
    const ctl = new AbortController();
    const e = await node.stream(() => undefined, ctl.signal).catch((x: unknown) => x);
    expect((e as AgentError).message).toContain('not the pinned');
    // The node secret never reached the coordinator: it counted no further node request.
    expect(await nodeRequests()).toBe(before);
  });
});
