// Rewrites the package.json files of the release tarballs (scripts/package.sh): the outer
// `wiremesh` and `wiremesh-coordinator` packages take over the third-party dependencies of the
// workspace packages they bundle, so that `npm install -g FILE.tgz` needs nothing of ours from a
// registry. Usage: node manifest.mjs STAGE_DIR agent|coordinator
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [stage, kind] = process.argv.slice(2);
if (stage === undefined || (kind !== 'agent' && kind !== 'coordinator')) {
  console.error('usage: node manifest.mjs STAGE_DIR agent|coordinator');
  process.exit(2);
}

const read = (path) => JSON.parse(readFileSync(path, 'utf8'));
const write = (path, value) => writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);

const bundled = {
  agent: ['@wiremesh/wg-core', '@wiremesh/wg-tun', '@wiremesh/protocol'],
  coordinator: ['@wiremesh/wg-core', '@wiremesh/protocol'],
}[kind];

const outer = read(join(stage, 'package.json'));
const dependencies = {};
const optionalDependencies = {};
for (const manifest of [
  outer,
  ...bundled.map((n) => read(join(stage, 'node_modules', n, 'package.json'))),
]) {
  for (const [name, version] of Object.entries(manifest.dependencies ?? {}))
    if (!name.startsWith('@wiremesh/')) dependencies[name] = version;
  for (const [name, version] of Object.entries(manifest.optionalDependencies ?? {}))
    optionalDependencies[name] = version;
}
for (const name of bundled) {
  const path = join(stage, 'node_modules', name, 'package.json');
  const inner = read(path);
  dependencies[name] = inner.version;
  // npm takes every dependency of a bundled package for part of the bundle (and installs none of
  // them), so the outer package declares them instead; Node finds them one node_modules up.
  delete inner.dependencies;
  delete inner.optionalDependencies;
  delete inner.devDependencies;
  if (name === '@wiremesh/wg-tun') {
    // The prebuilt binaries ship; the install script keeps one that loads or builds from source.
    inner.scripts = { install: 'node scripts/install-native.mjs' };
    inner.files = [...inner.files, 'prebuilds'];
  } else {
    delete inner.scripts;
  }
  write(path, inner);
}

const name = kind === 'agent' ? 'wiremesh' : 'wiremesh-coordinator';
const result = {
  name,
  version: outer.version,
  description:
    kind === 'agent'
      ? 'wiremesh mesh agent (wiremesh) and userspace WireGuard daemon (wgts)'
      : 'wiremesh coordinator: networks, membership, push of network maps, web UI',
  license: outer.license,
  type: 'module',
  engines: { node: '>=20.19' },
  os: ['linux'],
  bin:
    kind === 'agent'
      ? { wiremesh: outer.bin.wiremesh, wgts: 'node_modules/@wiremesh/wg-tun/dist/cli/wgts.js' }
      : outer.bin,
  exports: outer.exports,
  files: outer.files,
  dependencies: Object.fromEntries(Object.entries(dependencies).sort()),
  // The coordinator uses wg-core's pure key helpers only: no native crypto to install for it.
  ...(kind === 'agent' ? { optionalDependencies } : {}),
  bundleDependencies: bundled,
};
if (result.license === undefined) delete result.license;
write(join(stage, 'package.json'), result);
