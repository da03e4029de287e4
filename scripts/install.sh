#!/usr/bin/env bash
# Installs everything wiremesh needs on a fresh Debian machine: system packages, the pinned pnpm,
# the workspace's dependencies (with native builds), then builds the TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=12.4.2
APT_PACKAGES=(
  wireguard-tools wireguard-go iproute2 iptables nftables conntrack iperf3 iputils-ping
  qemu-system-x86 busybox-static cpio kmod
  python3 make g++
  gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user-static shellcheck systemd
  postgresql chromium openssl
)

need=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "wiremesh: these Debian packages are missing: ${need[*]}; run this script as root or install them." >&2
    exit 1
  fi
  echo "wiremesh: installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Debian's kernel (with wireguard.ko) for the kernel interop VM, unpacked into a cache, not /boot.
if [ "$(id -u)" -eq 0 ]; then
  bash test/harness/kernel-vm/prepare.sh >/dev/null
fi

if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  echo "wiremesh: installing pnpm $PNPM_VERSION"
  npm install -g "pnpm@$PNPM_VERSION" >/dev/null 2>&1
fi

# Native addons (ours, better-sqlite3) build against Node's own headers: nothing may be downloaded.
node_prefix=$(dirname "$(dirname "$(command -v node)")")
if [ -f "$node_prefix/include/node/node_api.h" ]; then export npm_config_nodedir="$node_prefix"; fi

pnpm install --frozen-lockfile --reporter=append-only | tail -n 3
pnpm run -s build

# wgts, the userspace WireGuard daemon (drop-in for wireguard-go), on PATH so that
# `WG_QUICK_USERSPACE_IMPLEMENTATION=wgts wg-quick up wg0` finds it.
chmod +x packages/wg-tun/dist/cli/wgts.js
if [ "$(id -u)" -eq 0 ]; then
  ln -sfn "$PWD/packages/wg-tun/dist/cli/wgts.js" /usr/local/bin/wgts
else
  echo "wiremesh: to put wgts on PATH, run as root: ln -sfn $PWD/packages/wg-tun/dist/cli/wgts.js /usr/local/bin/wgts"
fi
