#!/usr/bin/env bash
# Fetches Debian's current amd64 kernel package (it ships WireGuard as wireguard.ko) and unpacks it
# into a cache, never into /boot, so the kernel interop test can boot it in qemu.
# Idempotent: once a kernel is cached this prints its paths without touching the network.
# Prints KEY=VALUE lines: KERNEL_RELEASE, KERNEL_IMAGE, KERNEL_MODULES (the lib/modules/<release> dir).
# Env: WIREMESH_KERNEL_CACHE (default /var/cache/wiremesh/kernel), WIREMESH_KERNEL_REFRESH=1 to
# re-resolve the package even when one is cached, WIREMESH_KERNEL_PACKAGE to pin a package name.
set -euo pipefail

cache="${WIREMESH_KERNEL_CACHE:-/var/cache/wiremesh/kernel}"
mkdir -p "$cache"
exec 9>"$cache/.lock"
# Two test runs (or install.sh and a test) may prepare at once: one unpacks, the other waits.
flock -w 600 9 || { echo "prepare.sh: timed out waiting for $cache/.lock" >&2; exit 1; }

say() {
  local rel="$1" dir="$cache/$1"
  echo "KERNEL_RELEASE=$rel"
  echo "KERNEL_IMAGE=$dir/boot/vmlinuz-$rel"
  echo "KERNEL_MODULES=$dir/lib/modules/$rel"
}

if [ -z "${WIREMESH_KERNEL_REFRESH:-}" ] && [ -z "${WIREMESH_KERNEL_PACKAGE:-}" ] && [ -f "$cache/current" ]; then
  rel="$(cat "$cache/current")"
  if [ -f "$cache/$rel/.complete" ]; then
    say "$rel"
    exit 0
  fi
fi

# linux-image-amd64 is the meta package; it depends on the concrete linux-image-<abi>-amd64.
resolve() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1
}
pkg="${WIREMESH_KERNEL_PACKAGE:-$(resolve)}"
if [ -z "$pkg" ]; then
  echo "prepare.sh: apt does not know linux-image-amd64 yet; running apt-get update" >&2
  apt-get update -qq >&2
  pkg="$(resolve)"
fi
if [ -z "$pkg" ]; then
  echo "prepare.sh: cannot resolve linux-image-amd64 to a kernel package (is deb.debian.org in apt's sources?)" >&2
  exit 1
fi
rel="${pkg#linux-image-}"

if [ ! -f "$cache/$rel/.complete" ]; then
  work="$(mktemp -d "$cache/.work.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  echo "prepare.sh: downloading $pkg" >&2
  # Sandbox user root: the download lands in our own root-owned directory.
  (cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2)
  deb="$(ls "$work"/*.deb)"
  # dpkg-deb -x only unpacks: no maintainer scripts, no initramfs-tools trigger, nothing in /boot.
  dpkg-deb -x "$deb" "$work/root"
  rm -rf "$work/root/usr" "$deb"
  [ -f "$work/root/boot/vmlinuz-$rel" ] || { echo "prepare.sh: $pkg has no boot/vmlinuz-$rel" >&2; exit 1; }
  # The package ships no modules.dep (the postinst makes it); build it here.
  depmod -b "$work/root" "$rel"
  grep -q '/wireguard\.ko' "$work/root/lib/modules/$rel/modules.dep" ||
    grep -q '/wireguard\.ko' "$work/root/lib/modules/$rel/modules.builtin" ||
    { echo "prepare.sh: $pkg has no wireguard module" >&2; exit 1; }
  touch "$work/root/.complete"
  rm -rf "${cache:?}/$rel"
  mv "$work/root" "$cache/$rel"
fi
echo "$rel" >"$cache/current.tmp" && mv "$cache/current.tmp" "$cache/current"
say "$rel"
