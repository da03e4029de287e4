// Builds wgtun.node (binding.gyp) with node-gyp against the headers of the Node that runs this
// script, found next to its binary; never downloads headers. Runs as the package's install script.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

if (process.platform !== 'linux') {
  console.log(
    `wg-tun: the native TUN/UDP addon is Linux-only; skipping its build on ${process.platform}`,
  );
  process.exit(0);
}

// Where Node's own headers live: an explicit npm_config_nodedir first, then the install prefix
// of this node (/usr for Debian's nodejs, PREFIX for nvm and the official tarballs).
const candidates = [process.env.npm_config_nodedir, resolve(process.execPath, '..', '..')].filter(
  (d) => typeof d === 'string' && d !== '',
);
const nodedir = candidates.find(
  (d) =>
    existsSync(join(d, 'include', 'node', 'node_api.h')) &&
    existsSync(join(d, 'include', 'node', 'common.gypi')),
);
if (nodedir === undefined) {
  console.error(
    `wg-tun: cannot build the native addon: Node's C headers were not found (looked for include/node/node_api.h under ${candidates.join(', ')}).\n` +
      'Install the headers that match this node (Debian: they come with the nodejs package in /usr/include/node; ' +
      'nvm and nodejs.org tarballs ship PREFIX/include/node), or set npm_config_nodedir to the directory holding include/node.',
  );
  process.exit(1);
}

const versionFile = readFileSync(join(nodedir, 'include', 'node', 'node_version.h'), 'utf8');
const part = (name) => versionFile.match(new RegExp(`#define NODE_${name}_VERSION (\\d+)`))?.[1];
const headers = `${part('MAJOR')}.${part('MINOR')}.${part('PATCH')}`;
if (headers !== process.versions.node) {
  // Node-API is ABI-stable, so other headers still build a working addon; say so in case it matters.
  console.log(
    `wg-tun: building with Node ${headers} headers from ${nodedir} for Node ${process.versions.node}`,
  );
}

const require = createRequire(join(pkgDir, 'package.json'));
// node-gyp: the workspace's devDependency, else the one npm ships and names to install scripts.
let gyp = process.env.npm_config_node_gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  if (gyp === undefined || gyp === '' || !existsSync(gyp)) {
    console.error(
      'wg-tun: node-gyp is missing (a devDependency of @wiremesh/wg-tun, or the one npm ships): run `pnpm install` or install through npm.',
    );
    process.exit(1);
  }
}

const run = spawnSync(
  process.execPath,
  [gyp, 'rebuild', `--nodedir=${nodedir}`, '--loglevel=warn'],
  {
    cwd: pkgDir,
    stdio: 'inherit',
    env: { ...process.env, npm_config_nodedir: nodedir },
  },
);
if (run.status !== 0) {
  console.error(
    'wg-tun: building the native addon failed; it needs python3, make and a C compiler (Debian: apt-get install python3 make g++).',
  );
  process.exit(run.status ?? 1);
}
