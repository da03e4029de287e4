// Prints RELEASE.md for the tarballs in DIR (scripts/package.sh): what each contains, the
// versions, the prebuilt addons with their ELF machine type, and the registry dependencies.
// Usage: node release-note.mjs DIR
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const ELF_MACHINE_OFFSET = 18;
const ELF_MACHINES = { 0x3e: 'x86-64', 0xb7: 'AArch64' };

const dir = process.argv[2];
if (dir === undefined) {
  console.error('usage: node release-note.mjs DIR');
  process.exit(2);
}
const tarballs = readdirSync(dir)
  .filter((f) => f.endsWith('.tgz'))
  .sort();
const entry = (tgz, path) =>
  execFileSync('tar', ['-xzOf', join(dir, tgz), `package/${path}`], { maxBuffer: 1 << 26 });
const protocolSource = entry(
  tarballs.find((t) => t.startsWith('wiremesh-coordinator')),
  'node_modules/@wiremesh/protocol/dist/version.js',
).toString();
const protocol = /PROTOCOL_VERSION = (\d+)/.exec(protocolSource)?.[1] ?? '?';

const lines = ['# wiremesh release', '', `Protocol version ${protocol}.`, ''];
for (const tgz of tarballs) {
  const bytes = readFileSync(join(dir, tgz));
  const files = execFileSync('tar', ['-tzf', join(dir, tgz)])
    .toString()
    .trim()
    .split('\n');
  const manifest = JSON.parse(entry(tgz, 'package.json').toString());
  lines.push(`## ${tgz}`, '');
  lines.push(`- ${manifest.name} ${manifest.version}: ${manifest.description}`);
  lines.push(
    `- sha256 ${createHash('sha256').update(bytes).digest('hex')}, ${bytes.length} bytes, ${files.length} files`,
  );
  lines.push(`- commands: ${Object.keys(manifest.bin).join(', ')}`);
  const ours = manifest.bundleDependencies.map((n) => {
    const inner = JSON.parse(entry(tgz, `node_modules/${n}/package.json`).toString());
    return `${n} ${inner.version}`;
  });
  lines.push(`- bundled (ours): ${ours.join(', ')}`);
  const registry = Object.entries(manifest.dependencies)
    .filter(([n]) => !manifest.bundleDependencies.includes(n))
    .map(([n, v]) => `${n} ${v}`);
  lines.push(`- from the npm registry at install: ${registry.join(', ')}`);
  const optional = Object.entries(manifest.optionalDependencies ?? {}).map(([n, v]) => `${n} ${v}`);
  if (optional.length > 0)
    lines.push(
      `- optional (the pure-TypeScript crypto is used without it): ${optional.join(', ')}`,
    );
  for (const f of files.filter((f) => f.endsWith('.node'))) {
    const elf = entry(tgz, f.slice('package/'.length));
    const machine = ELF_MACHINES[elf.readUInt16LE(ELF_MACHINE_OFFSET)] ?? 'unknown';
    lines.push(
      `- prebuilt addon ${f.slice('package/'.length)} (ELF ${machine}, ${elf.length} bytes)`,
    );
  }
  lines.push('');
}
lines.push(
  'Install on a host with Node.js 20 (as root): `npm install -g ./FILE.tgz`. Without network access to',
  'the npm registry, use the cache made beside the tarballs (and, for better-sqlite3 on the same Node ABI and',
  'architecture as the build host, its prebuilt binary):',
  '`npm_config_better_sqlite3_local_prebuilds=$PWD/prebuilds npm install -g --offline --cache $PWD/npm-cache ./FILE.tgz`.',
  'Where no prebuilt addon fits (another architecture, musl), the install builds it from source',
  '(python3, make, a C compiler, Node headers), or says what is missing; the kernel WireGuard backend needs no addon.',
);
console.log(lines.join('\n'));
