#!/usr/bin/env bash
# Builds the kernel interop VM's initramfs: static busybox, the WireGuard and NIC modules with every
# dependency (from the kernel's modules.dep, in load order), `wg` and iproute2's `ip` with their
# shared libraries, and init.sh as /init.
# Usage: build-initramfs.sh MODULES_DIR OUTPUT [EXTRA_BINARY...]
#   MODULES_DIR is lib/modules/<release> as printed by prepare.sh; OUTPUT is the cpio (newc, gzip)
#   to write; each EXTRA_BINARY (a path or a command name, e.g. iperf3) goes into /bin with its libraries.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
mods="${1:?usage: build-initramfs.sh MODULES_DIR OUTPUT [EXTRA_BINARY...]}"
out="${2:?usage: build-initramfs.sh MODULES_DIR OUTPUT [EXTRA_BINARY...]}"
shift 2
[ -f "$mods/modules.dep" ] || { echo "build-initramfs.sh: no modules.dep in $mods (run prepare.sh)" >&2; exit 1; }

# Modules the VM loads, named as in modules.dep; dependencies are added below.
WANTED=(wireguard virtio_pci virtio_net)

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,etc,proc,sys,dev,tmp,run,lib/modules,lib64,var/run}

bb="$(command -v busybox)"
! ldd "$bb" >/dev/null 2>&1 ||
  { echo "build-initramfs.sh: $bb is not static (install busybox-static)" >&2; exit 1; }
cp "$bb" "$stage/bin/busybox"

# Copies an executable and each shared library ldd names, at the same absolute paths.
add_binary() {
  local src dst="$2" lib
  src="$(command -v "$1" || true)"
  [ -n "$src" ] || { echo "build-initramfs.sh: $1 not found (install its Debian package)" >&2; exit 1; }
  cp -L "$src" "$stage/$dst"
  for lib in $(ldd "$src" | grep -o '/[^ ]*'); do
    mkdir -p "$stage$(dirname "$lib")"
    [ -e "$stage$lib" ] || cp -L "$lib" "$stage$lib"
  done
}
add_binary wg bin/wg
# busybox ip cannot create a link of type wireguard; iproute2's can.
add_binary /usr/sbin/ip sbin/ip
for extra in "$@"; do add_binary "$extra" "bin/$(basename "$extra")"; done

# Depth-first over modules.dep so each module follows everything it needs.
declare -A deps seen
while IFS=: read -r m d; do deps[$m]="$d"; done <"$mods/modules.dep"
order=()
visit() {
  local m="$1" d
  [ -n "${seen[$m]:-}" ] && return
  seen[$m]=1
  for d in ${deps[$m]}; do visit "$d"; done
  order+=("$m")
}
for want in "${WANTED[@]}"; do
  path=""
  for m in "${!deps[@]}"; do
    base="${m##*/}"; base="${base%.ko*}"
    if [ "${base//-/_}" = "$want" ]; then path="$m"; break; fi
  done
  if [ -z "$path" ]; then
    grep -q "/$want\.ko" "$mods/modules.builtin" && continue
    echo "build-initramfs.sh: module $want is neither in modules.dep nor built in" >&2
    exit 1
  fi
  visit "$path"
done
: >"$stage/etc/modules"
for m in "${order[@]}"; do
  name="${m##*/}"
  case "$m" in
    *.ko.xz) xz -dc "$mods/$m" >"$stage/lib/modules/${name%.xz}"; name="${name%.xz}" ;;
    *.ko.zst) zstd -qdc "$mods/$m" >"$stage/lib/modules/${name%.zst}"; name="${name%.zst}" ;;
    *.ko.gz) gzip -dc "$mods/$m" >"$stage/lib/modules/${name%.gz}"; name="${name%.gz}" ;;
    *) cp "$mods/$m" "$stage/lib/modules/$name" ;;
  esac
  echo "$name" >>"$stage/etc/modules"
done

cp "$here/init.sh" "$stage/init"
chmod 755 "$stage/init"
(cd "$stage" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) | gzip -1 >"$out.tmp"
mv "$out.tmp" "$out"
