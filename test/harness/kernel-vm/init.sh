#!/bin/busybox sh
# /init of the kernel interop VM: loads the WireGuard and NIC modules, configures eth0 from the
# kernel command line, then serves the host's commands on ttyS1 (see control protocol below).
# Command line (all optional): wm.ip4=ADDR/LEN wm.ip6=ADDR/LEN wm.wg=IFACE (created with
# `ip link add IFACE type wireguard`) wm.dump=SECONDS (print `wg show all dump` on ttyS0 that often).
/bin/busybox --install -s /bin
export PATH=/sbin:/bin
# This busybox runs its own applets before searching PATH; iproute2's ip (which knows
# `type wireguard` and `nodad`) must be named by path. Every host command gets the same function.
IP_FN='ip() { /sbin/ip "$@"; }'
eval "$IP_FN"
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# udev would make these; `wg setconf IFACE /dev/stdin` needs them.
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /var/run/wireguard

log() { echo "wm: $*" >/dev/ttyS0; }
arg() { for w in $(cat /proc/cmdline); do case "$w" in "wm.$1="*) echo "${w#*=}" ;; esac; done; }

for m in $(cat /etc/modules); do
  insmod "/lib/modules/$m" || log "ERROR insmod $m"
done

ip link set lo up
ip4="$(arg ip4)"
ip6="$(arg ip6)"
ip link set eth0 up || log "ERROR no eth0"
[ -n "$ip4" ] && { ip addr add "$ip4" dev eth0 || log "ERROR ip4 $ip4"; }
[ -n "$ip6" ] && { ip -6 addr add "$ip6" dev eth0 nodad || log "ERROR ip6 $ip6"; }
wg="$(arg wg)"
[ -n "$wg" ] && { ip link add "$wg" type wireguard || log "ERROR ip link add $wg type wireguard"; }

dump="$(arg dump)"
if [ -n "$dump" ]; then
  (while sleep "$dump"; do
    echo "wm: dump begin"
    wg show all dump
    echo "wm: dump end"
  done) >/dev/ttyS0 2>&1 &
fi
log "up $(uname -r) uptime $(cut -d' ' -f1 /proc/uptime)"

# Control protocol on ttyS1, one command at a time, every line newline-terminated:
#   host:  C <id> <timeout-seconds> <length> <base64 of a sh script>   (length of the base64 text)
#   guest: @@B <id>, the script's stdout+stderr base64-encoded on lines, @@E <id> <exit status>;
#          or @@X for a line that is not a whole frame (bytes lost on the way): the host resends.
# The script's output is base64 so that nothing it prints can look like a frame. Ids increase, so a
# resent copy of a frame that already ran is skipped.
# Raw mode: no 4096-byte canonical line limit, no echo, no CR/LF translation.
isnum() { case "$1" in '' | *[!0-9]*) return 1 ;; esac; }
serve() {
  echo "@@READY $(uname -r)"
  last=0
  while read -r tag id tmo len script; do
    if [ "$tag" != C ] || ! isnum "$id" || ! isnum "$tmo" || [ "${#script}" != "$len" ]; then
      log "control line is not a whole frame (${#script} of ${len:-?} chars): asking again"
      echo "@@X"
      continue
    fi
    [ "$id" -gt "$last" ] || { log "control frame $id again: already ran"; continue; }
    last=$id
    { echo "$IP_FN"; echo "$script" | base64 -d; } >/tmp/wm-cmd
    # setsid (in place, keeping timeout's PID) gives the command a process group of its own, killed
    # when it is done or timed out: timeout kills only the shell, and a child left running (a ping
    # still waiting for replies) would write into a later command's output at its own file offset.
    timeout "$tmo" setsid sh /tmp/wm-cmd </dev/null >/tmp/wm-out 2>&1 &
    pid=$!
    wait $pid
    rc=$?
    kill -9 -$pid 2>/dev/null
    echo "@@B $id"
    base64 </tmp/wm-out
    echo "@@E $id $rc"
  done
}
stty -F /dev/ttyS1 raw -echo
# A child serves, not PID 1: busybox timeout leaves a watcher process that is reparented to PID 1
# and exits up to a second after its command. Its SIGCHLD would interrupt PID 1's `read` mid-frame,
# and ash restarts the read without the bytes already taken: the command would be lost.
serve </dev/ttyS1 >/dev/ttyS1 2>/dev/ttyS0 &
wait $!
log "ERROR control channel closed"
poweroff -f
