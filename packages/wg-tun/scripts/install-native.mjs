// The installed package's install script: keeps the prebuilt addon when it loads on this host,
// else builds from source (build-native.mjs). When neither works the install still succeeds (the
// kernel WireGuard backend needs no addon) and one line says what is missing; loading the addon
// later fails with the same advice.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(pkgDir, 'package.json'));

/** The path of a loadable addon for this host, or the reason there is none. */
function loadable() {
  try {
    const path = require('node-gyp-build').path(pkgDir);
    require(path);
    return { path };
  } catch (e) {
    return { reason: String(e instanceof Error ? e.message : e).split('\n')[0] };
  }
}

if (process.platform !== 'linux') {
  console.log(
    `wg-tun: the native TUN/UDP addon is Linux-only; nothing to do on ${process.platform}`,
  );
  process.exit(0);
}
const first = loadable();
if (first.path !== undefined) process.exit(0);
console.log(`wg-tun: no prebuilt addon loads here (${first.reason}); building it from source`);
const build = spawnSync(process.execPath, [join(pkgDir, 'scripts', 'build-native.mjs')], {
  cwd: pkgDir,
  stdio: 'inherit',
});
const second = build.status === 0 ? loadable() : { reason: 'the source build failed' };
if (second.path === undefined) {
  console.warn(
    `wg-tun: WARNING: no native addon for linux-${process.arch} (${second.reason}): the userspace WireGuard backend and wgts will not start; the kernel backend still works. Install python3, make, a C compiler and Node's headers, then run \`npm rebuild -g wiremesh\`.`,
  );
}
