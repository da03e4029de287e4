#!/usr/bin/env bash
# Makes the release tarballs: wiremesh (the agent and wgts) and wiremesh-coordinator, each
# installable with `npm install -g ./FILE.tgz` on a host with Node 20 alone. Our workspace packages
# are bundled inside (pnpm pack resolves workspace:* to versions), third-party ones come from the
# npm registry at install time; the TUN/UDP addon ships prebuilt for linux-x64 and linux-arm64.
# Also writes RELEASE.md (what the tarballs contain) and, unless --no-cache, an npm cache holding
# every registry dependency so the tarballs install offline (npm install --offline --cache DIR).
#
#   bash scripts/package.sh [--out DIR] [--no-cache]      (default DIR: dist/release)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

out=$root/dist/release
cache=1
while (($#)); do
  case $1 in
    --out) out=$(realpath -m "$2"); shift 2 ;;
    --no-cache) cache=0; shift ;;
    *) echo "package.sh: unknown option $1 (use --out DIR, --no-cache)" >&2; exit 2 ;;
  esac
done

for tool in pnpm node aarch64-linux-gnu-gcc aarch64-linux-gnu-g++ make python3; do
  command -v "$tool" >/dev/null || {
    echo "package.sh: $tool is missing: run scripts/install.sh (it installs the developer packages)" >&2
    exit 1
  }
done
nodedir=$(dirname "$(dirname "$(command -v node)")")
[ -f "$nodedir/include/node/node_api.h" ] || {
  echo "package.sh: Node's headers are missing ($nodedir/include/node/node_api.h)" >&2
  exit 1
}

work=$(mktemp -d /tmp/wiremesh-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
mkdir -p "$out"

pnpm run -s build >/dev/null 2>&1 || { pnpm run -s build; exit 1; }

# The addon for both architectures, each built in its own copy of the sources (build/ of the
# workspace stays as it is). Node-API keeps one binary good for every Node >= 18.
gyp=$root/packages/wg-tun/node_modules/node-gyp/bin/node-gyp.js
for arch in x64 arm64; do
  src=$work/addon-$arch
  mkdir -p "$src/src"
  cp packages/wg-tun/binding.gyp "$src/"
  cp -r packages/wg-tun/src/native "$src/src/"
  if [ "$arch" = arm64 ]; then
    cross=(CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++)
  else
    cross=()
  fi
  (cd "$src" && env "${cross[@]}" node "$gyp" rebuild --arch="$arch" --nodedir="$nodedir" \
    --loglevel=error >"$work/gyp-$arch.log" 2>&1) || {
    cat "$work/gyp-$arch.log" >&2
    echo "package.sh: building the $arch addon failed" >&2
    exit 1
  }
  mkdir -p "$work/prebuilds/linux-$arch"
  cp "$src/build/Release/wgtun.node" "$work/prebuilds/linux-$arch/wgtun.napi.glibc.node"
done

mkdir -p "$work/packs"
for p in wg-core wg-tun protocol mesh-agent coordinator; do
  (cd "packages/$p" && pnpm pack --pack-destination "$work/packs" >/dev/null)
done

# stage NAME KIND OUTER BUNDLED...: the outer package with the bundled ones in its node_modules.
stage() {
  local dir=$work/stage/$1 kind=$2 outer=$3
  shift 3
  mkdir -p "$dir"
  tar -xzf "$work/packs/wiremesh-$outer-"*.tgz -C "$dir" --strip-components=1
  for p in "$@"; do
    mkdir -p "$dir/node_modules/@wiremesh/$p"
    tar -xzf "$work/packs/wiremesh-$p-"*.tgz -C "$dir/node_modules/@wiremesh/$p" --strip-components=1
  done
  if [ -d "$dir/node_modules/@wiremesh/wg-tun" ]; then
    cp -r "$work/prebuilds" "$dir/node_modules/@wiremesh/wg-tun/"
  fi
  node scripts/package/manifest.mjs "$dir" "$kind"
  # pnpm packs bundled dependencies from a hoisted node_modules only, which this stage is.
  (cd "$dir" && pnpm pack --config.node-linker=hoisted --pack-destination "$out" >/dev/null)
}
stage wiremesh agent mesh-agent wg-core wg-tun protocol
stage wiremesh-coordinator coordinator coordinator wg-core protocol

node scripts/package/release-note.mjs "$out" >"$out/RELEASE.md"

if ((cache)); then
  # better-sqlite3 (prebuild-install) takes NAME-vVERSION-node-vABI-linux-ARCH.tar.gz from
  # $npm_config_better_sqlite3_local_prebuilds before it downloads or compiles. The workspace
  # already built the version the coordinator pins against this Node: offer that binary as the
  # local prebuild, so priming the cache compiles nothing (another version would be compiled).
  prebuilt_name() { echo "better-sqlite3-v$1-node-v$(node -p process.versions.modules)-linux-$(node -p process.arch).tar.gz"; }
  mkdir -p "$out/prebuilds"
  ws_sqlite=$(dirname "$(node -p "require.resolve('better-sqlite3/package.json', { paths: ['packages/coordinator'] })")")
  ws_version=$(node -p "require('$ws_sqlite/package.json').version")
  pinned=$(node -p "require('./packages/coordinator/package.json').dependencies['better-sqlite3']")
  if [ "$ws_version" = "$pinned" ] && [ -f "$ws_sqlite/build/Release/better_sqlite3.node" ]; then
    tar -czf "$out/prebuilds/$(prebuilt_name "$ws_version")" -C "$ws_sqlite" build/Release/better_sqlite3.node
  fi
  # Every registry dependency into an npm cache beside the tarballs: one real install into a
  # throw-away prefix (native dependencies build against this Node's headers, nothing else is
  # downloaded), so that a later install with --offline --cache needs no network.
  npm_config_nodedir=$nodedir npm_config_better_sqlite3_local_prebuilds=$out/prebuilds \
    npm install -g --prefix "$work/prime" --cache "$out/npm-cache" \
    --no-audit --no-fund --loglevel=error "$out"/wiremesh-[0-9]*.tgz "$out"/wiremesh-coordinator-[0-9]*.tgz >/dev/null
  # Keep the binary the primed install has, so an offline install on a host like this one (same
  # Node ABI and architecture) needs no compiler.
  sqlite=$work/prime/lib/node_modules/wiremesh-coordinator/node_modules/better-sqlite3
  version=$(node -p "require('$sqlite/package.json').version")
  tar -czf "$out/prebuilds/$(prebuilt_name "$version")" -C "$sqlite" build/Release/better_sqlite3.node
fi
ls "$out"
