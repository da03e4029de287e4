// The interim demo: two WireGuard engines in one process, wired back to back in memory. It shows a
// real Noise_IKpsk2 handshake and encrypted packets both ways with the crypto this machine has.
import { randomFillSync } from 'node:crypto';
import { Device, generatePrivateKey, keyToBase64 } from '../packages/wg-core/dist/index.js';
import { selectCrypto } from '../packages/wg-core/dist/native.js';

const { provider, reason } = selectCrypto();
console.log(`crypto: ${provider.name} (${reason})`);

const random = (b) => randomFillSync(b);
const start = performance.now();
const now = () => performance.now() - start;
const mk = (name, ip, address) => {
  const device = new Device({ crypto: provider, random, wallClock: Date.now });
  device.setPrivateKey(generatePrivateKey(random));
  return { name, ip, device, endpoint: { ip: address, port: 51820 } };
};
const alice = mk('alice', [10, 8, 0, 1], '127.0.0.1');
const bob = mk('bob', [10, 8, 0, 2], '127.0.0.2');
for (const [x, y] of [[alice, bob], [bob, alice]]) {
  x.device.addPeer(y.device.publicKey, { endpoint: y.endpoint, allowedIps: [{ address: new Uint8Array(y.ip), cidr: 32 }] });
  console.log(`${x.name}: public key ${keyToBase64(x.device.publicKey)}, tunnel address ${x.ip.join('.')}`);
}

const names = { 1: 'handshake initiation', 2: 'handshake response', 3: 'cookie reply', 4: 'transport data' };
function run(from, actions) {
  const queue = actions.map((a) => [from, a]);
  while (queue.length) {
    const [src, a] = queue.shift();
    const dst = src === alice ? bob : alice;
    if (a.type === 'send') {
      console.log(`  ${src.name} -> ${dst.name}: ${names[a.data[0]]}, ${a.data.length} bytes`);
      const out = [];
      dst.device.receive(a.data, src.endpoint, now(), out);
      for (const b of out) queue.push([dst, b]);
    } else if (a.type === 'deliver') {
      const p = a.data;
      const text = new TextDecoder().decode(p.subarray(20));
      console.log(`  ${src.name} delivers to its tunnel: ${p.length}-byte IPv4 packet ${[...p.subarray(12, 16)].join('.')} -> ${[...p.subarray(16, 20)].join('.')}: "${text}"`);
    } else {
      console.log(`  ${src.name} drops a packet: ${a.reason}`);
    }
  }
}
function packet(from, to, text) {
  const body = new TextEncoder().encode(text);
  const p = new Uint8Array(20 + body.length);
  p[0] = 0x45; p[2] = p.length >> 8; p[3] = p.length & 0xff; p[8] = 64; p[9] = 17;
  p.set(from.ip, 12); p.set(to.ip, 16); p.set(body, 20);
  return p;
}
for (const [from, to, text] of [[alice, bob, 'hello bob'], [bob, alice, 'hello alice'], [alice, bob, 'over and out']]) {
  console.log(`${from.name} sends "${text}" into its tunnel:`);
  const out = [];
  from.device.send(packet(from, to, text), now(), out);
  run(from, out);
}
for (const x of [alice, bob]) {
  const p = [...x.device.peers()][0];
  console.log(`${x.name}: sent ${p.txBytes} bytes, received ${p.rxBytes} bytes, handshake at ${new Date(p.lastHandshakeWallMs).toISOString()}`);
}
console.log('The mesh demo (coordinator + agents behind NATs in network namespaces): bash scripts/demo.sh');
