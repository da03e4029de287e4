#!/usr/bin/env node
// An attacker for the system tests (test/wgts-attack.test.ts), run by node in its own namespace:
// floods a WireGuard device with initiations whose mac1 is valid but whose static key it does not
// know (whitepaper §5.3, §5.4.7), or with garbage and mangled real messages of a live session.
// Plain JavaScript so that Node 20 runs it without a build; wg-core comes from its built dist.
//
// Usage: node attacker.mjs '<json config>' (see Config below). Reports one JSON object per line on
// stdout: {"event":"ready"}, {"event":"cookie"} (the first cookie reply), {"event":"flood-done",...},
// {"event":"post-check",...}. In 'garbage'
// mode it waits for SIGUSR2 before flooding and again before its post-check, so the test can
// snapshot `wg show` in between. Every wait is bounded; it exits non-zero with a message on failure.
import { randomBytes, randomFillSync, randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';

import {
  CookieGenerator,
  Device,
  Handshake,
  LocalIdentity,
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_COOKIE_REPLY_TYPE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_RESPONSE_SIZE,
  MESSAGE_TRANSPORT_MIN_SIZE,
  INITIATION_SENDER_INDEX_OFFSET,
  COOKIE_REPLY_RECEIVER_INDEX_OFFSET,
  keyFromBase64,
  readLe32,
  tai64n,
  writeLe32,
} from '@wiremesh/wg-core';
import { selectCrypto } from '@wiremesh/wg-core/native';

/**
 * @typedef {object} Config
 * @property {'initiations' | 'garbage'} mode
 * @property {{ address: string, port: number }} target   the victim's UDP endpoint (IPv4)
 * @property {string} victimPublicKey                       base64
 * @property {number} rate                                  datagrams per second
 * @property {number} count                                 datagrams in all
 * @property {string} [peerPrivateKey]   garbage: base64 key of a peer the victim knows
 * @property {string} [peerInner]        garbage: that peer's tunnel IPv4 address
 * @property {string} [victimInner]      garbage: the victim's tunnel IPv4 address
 */

/** Distinct ephemerals among the forged initiations (each costs X25519s to make). */
const FORGED_EPHEMERALS = 16;
/** Distinct forged initiations (sender indices) cycled through; each costs one mac1. */
const FORGED_POOL = 4096;
/** Datagrams sent back to back before yielding to the event loop (replies get read meanwhile). */
const MAX_BURST = 64;
/** Width of the buckets in which cookie replies are counted over time. */
const BUCKET_MS = 100;
/** How long replies are still counted after the last datagram went out. */
const LINGER_MS = 500;
/** Bounds on the garbage mode's session set-up and post-check. */
const SESSION_TIMEOUT_MS = 10_000;
const POST_CHECK_TIMEOUT_MS = 5_000;
const SIGNAL_TIMEOUT_MS = 60_000;
/** Echo replies collected (with their requests) before the flood: the real messages to mangle. */
const REAL_ECHOES = 4;
const ECHO_INTERVAL_MS = 50;
const TICK_MS = 50;
const MAX_NOISE_BYTES = 1500;
const MAX_SUFFIX_BYTES = 64;
const MAX_FLIPPED_BYTES = 3;
const IPV4_HEADER_LEN = 20;
const ICMP_HEADER_LEN = 8;
const ECHO_PAYLOAD_LEN = 56;
const ICMP_PROTOCOL = 1;
const ICMP_ECHO_REQUEST = 8;
const ICMP_ECHO_REPLY = 0;
const TTL = 64;

/** @param {string} message */
function fail(message) {
  process.stderr.write(`attacker: ${message}\n`);
  process.exit(1);
}

/** @param {object} event */
function report(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @param {Uint8Array} b */
const hex = (b) => Buffer.from(b).toString('hex');

/** @param {Uint8Array} b  @param {number} off  @param {number} len  RFC 1071 checksum. */
function checksum(b, off, len) {
  let sum = 0;
  for (let i = 0; i < len; i += 2) sum += (b[off + i] << 8) | (b[off + i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An IPv4 ICMP echo request from `src` to `dst` (dotted quads). */
function echoRequest(src, dst, seq) {
  const total = IPV4_HEADER_LEN + ICMP_HEADER_LEN + ECHO_PAYLOAD_LEN;
  const p = new Uint8Array(total);
  p[0] = 0x45;
  p[2] = total >>> 8;
  p[3] = total & 0xff;
  p[8] = TTL;
  p[9] = ICMP_PROTOCOL;
  p.set(src.split('.').map(Number), 12);
  p.set(dst.split('.').map(Number), 16);
  const ipSum = checksum(p, 0, IPV4_HEADER_LEN);
  p[10] = ipSum >>> 8;
  p[11] = ipSum & 0xff;
  const icmp = IPV4_HEADER_LEN;
  p[icmp] = ICMP_ECHO_REQUEST;
  p[icmp + 4] = 0x57;
  p[icmp + 6] = seq >>> 8;
  p[icmp + 7] = seq & 0xff;
  const icmpSum = checksum(p, icmp, total - icmp);
  p[icmp + 2] = icmpSum >>> 8;
  p[icmp + 3] = icmpSum & 0xff;
  return p;
}

/** @param {Uint8Array} p */
const isEchoReply = (p) =>
  p.length > IPV4_HEADER_LEN && p[9] === ICMP_PROTOCOL && p[IPV4_HEADER_LEN] === ICMP_ECHO_REPLY;

/** Resolves on the next SIGUSR2; rejects after SIGNAL_TIMEOUT_MS. */
function nextSignal() {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error('no SIGUSR2 from the test')),
      SIGNAL_TIMEOUT_MS,
    );
    process.once('SIGUSR2', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Sends `count` datagrams made by next(i) at `rate` per second, in bursts, yielding between them.
 * Resolves with the send timing.
 */
async function flood(socket, target, rate, count, next) {
  let sent = 0;
  let sendErrors = 0;
  const started = performance.now();
  while (sent < count) {
    const due = Math.min(count, Math.floor(((performance.now() - started) * rate) / 1000) + 1);
    const end = Math.min(due, sent + MAX_BURST);
    for (; sent < end; sent++) {
      socket.send(next(sent), target.port, target.address, (err) => {
        if (err) sendErrors++;
      });
    }
    await sleep(sent < due ? 0 : 1);
  }
  return { sent, sendErrors, started, ended: performance.now() };
}

/** Initiations with a valid mac1 from a static key the victim does not know; counts cookie replies. */
async function initiationFlood(config, socket) {
  const { provider: crypto } = selectCrypto();
  const victim = keyFromBase64(config.victimPublicKey);
  const forged = new LocalIdentity(crypto, randomBytes(32));
  const handshake = new Handshake(crypto, forged, victim, null);
  const macs = new CookieGenerator(crypto, victim);
  const bases = [];
  for (let i = 0; i < FORGED_EPHEMERALS; i++) {
    const msg = handshake.createInitiation(i + 1, randomBytes(32), tai64n(Date.now()));
    if (msg === null) fail('cannot create an initiation to the victim key');
    bases.push(msg);
  }
  /** @type {Uint8Array[]} */
  const pool = [];
  for (let i = 0; i < Math.min(FORGED_POOL, config.count); i++) {
    const msg = bases[i % FORGED_EPHEMERALS].slice();
    writeLe32(msg, INITIATION_SENDER_INDEX_OFFSET, i + 1);
    macs.addMacs(msg, 0);
    pool.push(msg);
  }

  let cookieReplies = 0;
  let otherReplies = 0;
  let firstReplyAt = Infinity;
  let lastReplyAt = -Infinity;
  /** @type {number[]} */
  const buckets = [];
  let sample = null;
  let t0 = performance.now();
  socket.on('message', (msg) => {
    const now = performance.now();
    if (msg.length !== MESSAGE_COOKIE_REPLY_SIZE || msg[0] !== MESSAGE_COOKIE_REPLY_TYPE) {
      otherReplies++;
      return;
    }
    if (cookieReplies++ === 0) report({ event: 'cookie' });
    firstReplyAt = Math.min(firstReplyAt, now);
    lastReplyAt = now;
    const b = Math.floor((now - t0) / BUCKET_MS);
    buckets[b] = (buckets[b] ?? 0) + 1;
    if (sample === null) {
      const index = readLe32(msg, COOKIE_REPLY_RECEIVER_INDEX_OFFSET);
      const initiation = pool[index - 1];
      if (initiation !== undefined) sample = { initiation: hex(initiation), reply: hex(msg) };
    }
  });
  report({ event: 'ready' });
  t0 = performance.now();
  const r = await flood(
    socket,
    config.target,
    config.rate,
    config.count,
    (i) => pool[i % pool.length],
  );
  await sleep(LINGER_MS);
  report({
    event: 'flood-done',
    sent: r.sent,
    sendErrors: r.sendErrors,
    floodMs: Math.round(r.ended - r.started),
    cookieReplies,
    otherReplies,
    firstReplyMs: Number.isFinite(firstReplyAt) ? Math.round(firstReplyAt - t0) : null,
    lastReplyMs: Number.isFinite(lastReplyAt) ? Math.round(lastReplyAt - t0) : null,
    repliesPerBucket: Array.from(buckets, (n) => n ?? 0),
    bucketMs: BUCKET_MS,
    sample,
  });
}

/** A real session as a peer the victim knows, then garbage and mangled copies of its messages. */
async function garbageFlood(config, socket) {
  const { provider: crypto } = selectCrypto();
  const victim = keyFromBase64(config.victimPublicKey);
  const device = new Device({
    crypto,
    random: (b) => void randomFillSync(b),
    wallClock: Date.now,
  });
  device.setPrivateKey(keyFromBase64(config.peerPrivateKey));
  const inner = config.victimInner.split('.').map(Number);
  device.addPeer(victim, {
    endpoint: { ip: config.target.address, port: config.target.port },
    allowedIps: [{ address: Uint8Array.from(inner), cidr: 32 }],
  });
  /** @type {Uint8Array[]} */
  const real = [];
  let recording = true;
  let echoReplies = 0;
  const out = [];
  const carryOut = () => {
    for (const a of out) {
      if (a.type === 'send') {
        if (recording) real.push(a.data.slice());
        socket.send(a.data, a.endpoint.port, a.endpoint.ip);
      } else if (a.type === 'deliver' && isEchoReply(a.data)) {
        echoReplies++;
      }
    }
    out.length = 0;
  };
  socket.on('message', (msg, rinfo) => {
    if (recording) real.push(Uint8Array.from(msg));
    device.receive(
      new Uint8Array(msg),
      { ip: rinfo.address, port: rinfo.port },
      performance.now(),
      out,
    );
    carryOut();
  });
  const ticker = setInterval(() => {
    device.tick(performance.now(), out);
    carryOut();
  }, TICK_MS);

  let seq = 0;
  const deadline = performance.now() + SESSION_TIMEOUT_MS;
  while (echoReplies < REAL_ECHOES) {
    if (performance.now() > deadline)
      fail(`no session with the victim: ${echoReplies} echo replies`);
    device.send(echoRequest(config.peerInner, config.victimInner, ++seq), performance.now(), out);
    carryOut();
    await sleep(ECHO_INTERVAL_MS);
  }
  // Silence from here: no timers, so the victim's counters for this peer only move if it accepts
  // something the flood sends.
  clearInterval(ticker);
  recording = false;
  report({ event: 'ready', realMessages: real.length, sizes: real.map((m) => m.length) });
  await nextSignal();

  const pick = () => real[randomInt(real.length)];
  const kinds = [
    // Noise of any length, an empty datagram included.
    () => randomBytes(randomInt(MAX_NOISE_BYTES + 1)),
    // A plausible header (type 1-4, reserved zero) at each message's exact size, random body.
    () => {
      const sizes = [
        MESSAGE_INITIATION_SIZE,
        MESSAGE_RESPONSE_SIZE,
        MESSAGE_COOKIE_REPLY_SIZE,
        MESSAGE_TRANSPORT_MIN_SIZE + 16 * randomInt(64),
      ];
      const type = randomInt(4);
      const b = randomBytes(sizes[type]);
      b[0] = type + 1;
      b[1] = b[2] = b[3] = 0;
      return b;
    },
    // A real message cut short.
    () => {
      const m = pick();
      return m.slice(0, randomInt(m.length));
    },
    // A real message with a few bytes flipped anywhere (header, index, counter, body, macs).
    () => {
      const m = pick().slice();
      for (let n = 1 + randomInt(MAX_FLIPPED_BYTES); n > 0; n--)
        m[randomInt(m.length)] ^= 1 + randomInt(255);
      return m;
    },
    // A real message again, verbatim: replays of transport counters, the initiation, the response.
    () => pick(),
    // A real message with bytes appended.
    () => Buffer.concat([pick(), randomBytes(1 + randomInt(MAX_SUFFIX_BYTES))]),
  ];
  let received = 0;
  socket.on('message', () => received++);
  const r = await flood(socket, config.target, config.rate, config.count, (i) =>
    kinds[i % kinds.length](),
  );
  await sleep(LINGER_MS);
  report({
    event: 'flood-done',
    sent: r.sent,
    sendErrors: r.sendErrors,
    floodMs: Math.round(r.ended - r.started),
    repliesDuringFlood: received,
  });

  await nextSignal();
  // The peer's session still works: one more echo through it.
  const before = echoReplies;
  const t = performance.now();
  device.send(echoRequest(config.peerInner, config.victimInner, ++seq), performance.now(), out);
  carryOut();
  while (echoReplies === before && performance.now() - t < POST_CHECK_TIMEOUT_MS) await sleep(10);
  report({ event: 'post-check', ok: echoReplies > before, ms: Math.round(performance.now() - t) });
}

async function main() {
  /** @type {Config} */
  let config;
  try {
    config = JSON.parse(process.argv[2] ?? '');
  } catch {
    fail('usage: attacker.mjs JSON-CONFIG');
  }
  const socket = createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
  socket.on('error', (err) => fail(`socket: ${err.message}`));
  await new Promise((resolve) => socket.bind(0, resolve));
  if (config.mode === 'initiations') await initiationFlood(config, socket);
  else if (config.mode === 'garbage') await garbageFlood(config, socket);
  else fail(`unknown mode ${config.mode}`);
  socket.close();
}

main().catch((err) => fail(err?.stack ?? String(err)));
