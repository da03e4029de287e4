/*
 * Linux TUN device (Documentation/networking/tuntap.rst): /dev/net/tun + TUNSETIFF with
 * IFF_TUN | IFF_NO_PI, non-blocking; batches of read() into the rx ring, batches of write() from the
 * tx ring (a TUN fd takes one packet per write, so the batch saves JS<->C crossings, not syscalls).
 * With offloads, IFF_VNET_HDR + TUNSETOFFLOAD: a read may be a 64 KiB TCP/UDP super-segment, split
 * here into the rx ring (offload.c), and one write may carry many TCP segments coalesced.
 */
#define _GNU_SOURCE
#include "io.h"
#include "offload.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define WGTUN_PATH_MAX 1024

/* Newer than some installed headers: USO (Linux 6.2) and the header size ioctls. */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif
#ifndef TUNSETVNETHDRSZ
#define TUNSETVNETHDRSZ _IOW('T', 216, int)
#endif

/* Packets one super-segment may split into (a 64 KiB read at an MSS of 16 bytes); a read that
 * would make more is dropped as invalid. The rx ring keeps this many entries spare. */
#define WGTUN_VNET_MAX_SEGMENTS 4096
/* Bytes of ring one read may need at worst: 64 KiB of payload and a copy of the largest IPv4+TCP
 * headers (60 + 60) per segment, each aligned to 8. Reading stops while less is left. */
#define WGTUN_VNET_READ_ROOM (65535 + WGTUN_VNET_MAX_SEGMENTS * (120 + 7))
/* A read: the header and the largest IP packet, with a byte to spare to see truncation. */
#define WGTUN_VNET_SCRATCH (WGTUN_VNET_HDR_LEN + 65535 + 1)

typedef struct {
  int vnet;      /* IFF_VNET_HDR: every read and write carries a virtio_net_hdr */
  unsigned features; /* what TUNSETOFFLOAD accepted */
  char note[160]; /* why offloads are off or reduced, "" when all are on */
  uint8_t *scratch;
  uint8_t **pkts;
  uint32_t *lens, *next;
  wgtun_gro_group *groups;
  struct iovec iov[WGTUN_GRO_MAX_SEGMENTS + 1];
} tun_kind;

static void tun_kind_free(void *p) {
  tun_kind *t = p;
  if (t == NULL) return;
  free(t->scratch);
  free(t->pkts);
  free(t->lens);
  free(t->next);
  free(t->groups);
  free(t);
}

static int tun_read_batch(wgtun_io *io) {
  uint32_t n = 0;
  while (n < io->batch) {
    ssize_t r = read(io->fd, io->rx + (size_t)n * io->slot, io->slot);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (n > 0) break; /* deliver what we have; the error repeats on the next poll */
      return -errno;
    }
    io->rx_off[n] = n * io->slot;
    io->rx_len[n] = (uint32_t)r;
    n++;
  }
  io->stats.rx_packets += n;
  io->stats.rx_messages += n;
  return (int)n;
}

/* Reads with IFF_VNET_HDR: each read is split into packets packed into the rx ring, until a
 * batch of packets is in or the ring has too little room left for another read (the first read
 * always happens, so an adopted fd with a small ring still makes progress). */
static int tun_read_vnet(wgtun_io *io) {
  tun_kind *t = io->kind;
  size_t ring = (size_t)io->batch * io->slot, pos = 0;
  size_t room = t->features != 0 ? WGTUN_VNET_READ_ROOM : WGTUN_VNET_SCRATCH;
  uint32_t k = 0, reads = 0;
  while (k < io->batch && (k == 0 || ring - pos >= room)) {
    int n;
    uint32_t i;
    ssize_t r = read(io->fd, t->scratch, WGTUN_VNET_SCRATCH);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (k > 0) break;
      return -errno;
    }
    reads++;
    if (r >= WGTUN_VNET_SCRATCH) {
      io->stats.rx_dropped_truncated++;
      continue;
    }
    n = wgtun_vnet_split(t->scratch, (size_t)r, io->rx + pos, ring - pos, io->rx_off + k,
                         io->rx_len + k, io->rx_cap - k);
    if (n == WGTUN_SPLIT_NOROOM) {
      /* more than WGTUN_VNET_MAX_SEGMENTS, or a ring too small for this packet */
      io->stats.rx_dropped_truncated++;
      continue;
    }
    if (n <= 0) {
      io->stats.rx_dropped_invalid++;
      continue;
    }
    for (i = 0; i < (uint32_t)n; i++) io->rx_off[k + i] += (uint32_t)pos;
    pos = io->rx_off[k + n - 1] + io->rx_len[k + n - 1];
    pos = (pos + 7) & ~(size_t)7;
    k += (uint32_t)n;
  }
  io->stats.rx_packets += k;
  io->stats.rx_messages += reads;
  return (int)k;
}

/* The interface's current name (it may have been renamed since it was created). */
static int tun_current_name(wgtun_io *io, char name[IFNAMSIZ]) {
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  if (ioctl(io->fd, TUNGETIFF, &ifr) < 0) return -errno;
  memcpy(name, ifr.ifr_name, IFNAMSIZ);
  name[IFNAMSIZ - 1] = 0;
  return 0;
}

static napi_value throw_open_error(napi_env env, int err, const char *path) {
  char msg[WGTUN_PATH_MAX + 512], name[64];
  wgtun_errno_name(err, name, sizeof name);
  if (err == ENOENT || err == ENODEV || err == ENXIO)
    snprintf(msg, sizeof msg,
             "cannot open %s (%s): the TUN driver is missing; load it (modprobe tun), create the "
             "device node (mkdir -p /dev/net && mknod /dev/net/tun c 10 200), or in a container "
             "pass the device in (--device /dev/net/tun)",
             path, name);
  else if (err == EACCES || err == EPERM)
    snprintf(msg, sizeof msg,
             "cannot open %s (%s): permission denied; run as root or with CAP_NET_ADMIN and "
             "read/write access to the device",
             path, name);
  else
    snprintf(msg, sizeof msg, "cannot open %s (%s): %s", path, name, strerror(err));
  return wgtun_throw_errno(env, err, "open", msg);
}

static napi_value throw_setiff_error(napi_env env, int err, const char *ifname) {
  char msg[WGTUN_PATH_MAX + 512], name[64];
  const char *shown = ifname[0] != 0 ? ifname : "(kernel-chosen name)";
  wgtun_errno_name(err, name, sizeof name);
  if (err == EPERM || err == EACCES)
    snprintf(msg, sizeof msg,
             "cannot create TUN interface %s (%s): this needs CAP_NET_ADMIN; run as root or grant "
             "the capability (setcap cap_net_admin+ep on the node binary)",
             shown, name);
  else if (err == EBUSY)
    snprintf(msg, sizeof msg,
             "cannot create TUN interface %s (%s): an interface of that name exists and is in use "
             "(another process has it open); choose another name or stop its owner",
             shown, name);
  else if (err == EINVAL && ifname[0] != 0 && if_nametoindex(ifname) != 0)
    snprintf(msg, sizeof msg,
             "cannot create TUN interface %s (%s): the name is taken by an interface that is not "
             "a TUN device; choose another name or delete it (ip link del %s)",
             shown, name, ifname);
  else
    snprintf(msg, sizeof msg, "cannot create TUN interface %s (%s): %s", shown, name,
             strerror(err));
  return wgtun_throw_errno(env, err, "ioctl(TUNSETIFF)", msg);
}

/* Takes over an fd opened elsewhere (a parent before daemonizing passes it down, as wireguard-go
 * does with WG_TUN_FD): it must be a TUN fd attached with IFF_TUN | IFF_NO_PI. Returns 0 or throws. */
static int adopt_fd(napi_env env, int fd, struct ifreq *ifr) {
  char msg[300], name[64];
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) {
    wgtun_errno_name(errno, name, sizeof name);
    snprintf(msg, sizeof msg, "cannot use fd %d as a TUN device (%s): it is not open", fd, name);
    wgtun_throw_errno(env, errno, "fcntl", msg);
    return -1;
  }
  memset(ifr, 0, sizeof *ifr);
  if (ioctl(fd, TUNGETIFF, ifr) < 0) {
    int err = errno;
    wgtun_errno_name(err, name, sizeof name);
    snprintf(msg, sizeof msg, "cannot use fd %d as a TUN device (%s): %s", fd, name,
             err == EBADFD ? "it is not attached to an interface (no TUNSETIFF)"
                           : "it is not a /dev/net/tun fd");
    wgtun_throw_errno(env, err, "ioctl(TUNGETIFF)", msg);
    return -1;
  }
  if ((ifr->ifr_flags & (IFF_TUN | IFF_TAP | IFF_NO_PI)) != (IFF_TUN | IFF_NO_PI)) {
    snprintf(msg, sizeof msg,
             "cannot use fd %d as a TUN device (EINVAL): it was attached without IFF_TUN | IFF_NO_PI",
             fd);
    wgtun_throw_errno(env, EINVAL, "ioctl(TUNGETIFF)", msg);
    return -1;
  }
  if (fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    wgtun_throw_errno(env, errno, "fcntl", "cannot make the TUN fd non-blocking");
    return -1;
  }
  return 0;
}

/* Asks for checksum, TSO and USO offloads, then without USO (before Linux 6.2), then none; records
 * what was accepted and why anything is off. */
static void negotiate_offloads(int fd, int want, tun_kind *t) {
  unsigned all = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6;
  unsigned tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  char name[64];
  int size = WGTUN_VNET_HDR_LEN;
  t->features = 0;
  if (ioctl(fd, TUNSETVNETHDRSZ, &size) < 0) {
    /* adopted fds only: ours have the default size */
  }
  if (!want) {
    if (t->note[0] == 0) snprintf(t->note, sizeof t->note, "turned off");
  } else if (ioctl(fd, TUNSETOFFLOAD, all) == 0) {
    t->features = all;
  } else if (ioctl(fd, TUNSETOFFLOAD, tso) == 0) {
    wgtun_errno_name(errno, name, sizeof name);
    t->features = tso;
    snprintf(t->note, sizeof t->note, "no UDP segmentation: the kernel refused USO (needs Linux 6.2)");
  } else {
    wgtun_errno_name(errno, name, sizeof name);
    snprintf(t->note, sizeof t->note, "off: the kernel refused TUNSETOFFLOAD (%s)", name);
  }
  if (t->features == 0) ioctl(fd, TUNSETOFFLOAD, 0u);
}

static tun_kind *tun_kind_new(uint32_t batch) {
  tun_kind *t = calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  t->scratch = malloc(WGTUN_VNET_SCRATCH);
  t->pkts = calloc(batch, sizeof *t->pkts);
  t->lens = calloc(batch, sizeof *t->lens);
  t->next = calloc(batch, sizeof *t->next);
  t->groups = calloc(batch, sizeof *t->groups);
  if (!t->scratch || !t->pkts || !t->lens || !t->next || !t->groups) {
    tun_kind_free(t);
    return NULL;
  }
  return t;
}

/* new Tun(devicePath, name, batch, slot, fd, offload = 0): opens and attaches (name "" lets the kernel
 * choose), or with fd >= 0 adopts that fd instead (devicePath and name unused). offload 1 attaches
 * with IFF_VNET_HDR and asks for TSO/USO, falling back where the kernel refuses. */
static napi_value tun_new(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6], self, target, vname;
  char path[WGTUN_PATH_MAX], ifname[IFNAMSIZ];
  uint32_t batch, slot, offload;
  tun_kind *kind;
  int32_t adopt = -1;
  struct ifreq ifr;
  wgtun_io *io;
  int fd;

  napi_get_cb_info(env, info, &argc, argv, &self, NULL);
  napi_get_new_target(env, info, &target);
  if (target == NULL) return wgtun_throw_type(env, "Tun must be called with new");
  if (argc < 5) return wgtun_throw_type(env, "Tun(devicePath, name, batch, slot, fd, offload?)");
  if (wgtun_arg_string(env, argv[0], "devicePath", path, sizeof path) < 0) return NULL;
  if (wgtun_arg_string(env, argv[1], "interface name", ifname, sizeof ifname) < 0) return NULL;
  if (wgtun_arg_u32(env, argv[2], "batch", 1, WGTUN_MAX_BATCH, &batch) < 0) return NULL;
  if (wgtun_arg_u32(env, argv[3], "slot", WGTUN_MIN_SLOT, WGTUN_MAX_SLOT, &slot) < 0) return NULL;
  if (napi_get_value_int32(env, argv[4], &adopt) != napi_ok)
    return wgtun_throw_type(env, "fd must be a number (-1 to open the device)");
  offload = 0;
  if (argc >= 6 && wgtun_arg_u32(env, argv[5], "offload", 0, 1, &offload) < 0) return NULL;
  kind = tun_kind_new(batch);
  if (kind == NULL) return wgtun_throw_errno(env, ENOMEM, "malloc", "out of memory allocating TUN buffers");
  if (offload && (slot < WGTUN_MAX_SLOT || (size_t)batch * slot < 2 * (size_t)WGTUN_VNET_READ_ROOM)) {
    offload = 0;
    snprintf(kind->note, sizeof kind->note, "off: they need 64 KiB ring slots and batches of 16 or more");
  }

  if (adopt >= 0) {
    fd = adopt;
    if (adopt_fd(env, fd, &ifr) < 0) {
      tun_kind_free(kind);
      return NULL;
    }
    kind->vnet = (ifr.ifr_flags & IFF_VNET_HDR) != 0;
    if (offload && !kind->vnet)
      snprintf(kind->note, sizeof kind->note, "off: the fd was attached without IFF_VNET_HDR");
  } else {
    fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      tun_kind_free(kind);
      return throw_open_error(env, errno, path);
    }
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, ifname, strlen(ifname));
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
    kind->vnet = offload != 0;
    int rc = ioctl(fd, TUNSETIFF, &ifr);
    if (rc < 0 && offload && errno == EINVAL) {
      /* a kernel without IFF_VNET_HDR on TUN, or a name taken (which fails again below) */
      ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
      kind->vnet = 0;
      snprintf(kind->note, sizeof kind->note, "off: the kernel refused IFF_VNET_HDR (EINVAL)");
      rc = ioctl(fd, TUNSETIFF, &ifr);
    }
    if (rc < 0) {
      int err = errno;
      close(fd);
      tun_kind_free(kind);
      return throw_setiff_error(env, err, ifname);
    }
  }
  ifr.ifr_name[IFNAMSIZ - 1] = 0;
  if (kind->vnet) negotiate_offloads(fd, (int)offload, kind);
  else if (kind->note[0] == 0) snprintf(kind->note, sizeof kind->note, "turned off");

  io = wgtun_io_new(env, self, fd, batch, slot,
                    kind->vnet ? batch + WGTUN_VNET_MAX_SEGMENTS : batch, 0,
                    kind->vnet ? tun_read_vnet : tun_read_batch);
  if (io == NULL) {
    tun_kind_free(kind);
    return NULL;
  }
  io->kind = kind;
  io->free_kind = tun_kind_free;
  snprintf(io->label, sizeof io->label, "TUN interface %s", ifr.ifr_name);
  napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &vname);
  napi_set_named_property(env, self, "createdName", vname);
  return self;
}

/* fd(): the device's file descriptor (-1 once closed), to hand to a child process. */
static napi_value tun_fd(napi_env env, napi_callback_info info) {
  napi_value result;
  wgtun_io *io = wgtun_io_unwrap(env, info, NULL, NULL);
  if (io == NULL) return NULL;
  napi_create_int32(env, io->closed ? -1 : io->fd, &result);
  return result;
}

/* Writes one group (offload.h) with its virtio_net_hdr: 1 when the kernel took it, 0 when it
 * refused it (counted), -1 on EAGAIN (the caller counts the rest as dropped). */
static int write_group(wgtun_io *io, tun_kind *t, const wgtun_gro_group *g) {
  uint32_t n = 0, p = g->head;
  ssize_t r;
  t->iov[n].iov_base = (void *)g->vnet;
  t->iov[n++].iov_len = WGTUN_VNET_HDR_LEN;
  t->iov[n].iov_base = t->pkts[p];
  t->iov[n++].iov_len = t->lens[p];
  for (p = t->next[p]; p != UINT32_MAX; p = t->next[p]) {
    t->iov[n].iov_base = t->pkts[p] + g->header_len;
    t->iov[n++].iov_len = t->lens[p] - g->header_len;
  }
  do r = writev(io->fd, t->iov, (int)n);
  while (r < 0 && errno == EINTR);
  if (r >= 0) return 1;
  io->stats.last_errno = errno;
  if (errno == EAGAIN) return -1;
  io->stats.tx_errors += g->count;
  return 0;
}

/* write(count) with IFF_VNET_HDR: with TSO on, consecutive TCP segments of a flow go as one
 * super-segment (one syscall, one pass through the kernel's stack); else one packet per write. */
static napi_value write_vnet(napi_env env, wgtun_io *io, uint32_t count) {
  tun_kind *t = io->kind;
  napi_value result;
  uint32_t i, m = 0, ngroups, sent = 0, messages = 0;
  for (i = 0; i < count; i++) {
    uint32_t len = io->tx_len[i];
    if (len == 0 || len > io->slot) {
      io->stats.tx_errors++;
      io->stats.last_errno = EINVAL;
      continue;
    }
    t->pkts[m] = io->tx + (size_t)i * io->slot;
    t->lens[m++] = len;
  }
  if (t->features & TUN_F_TSO4) {
    ngroups = wgtun_gro_coalesce(t->pkts, t->lens, m, t->next, t->groups);
  } else {
    for (i = 0; i < m; i++) {
      memset(&t->groups[i], 0, sizeof t->groups[i]);
      t->groups[i].head = t->groups[i].tail = i;
      t->groups[i].count = 1;
      t->next[i] = UINT32_MAX;
    }
    ngroups = m;
  }
  for (i = 0; i < ngroups; i++) {
    int r = write_group(io, t, &t->groups[i]);
    if (r < 0) {
      uint32_t j;
      for (j = i; j < ngroups; j++) io->stats.tx_dropped_full += t->groups[j].count;
      break;
    }
    if (r > 0) {
      sent += t->groups[i].count;
      messages++;
    }
  }
  io->stats.tx_packets += sent;
  io->stats.tx_messages += messages;
  napi_create_uint32(env, sent, &result);
  return result;
}

/* write(count): writes tx slots 0..count-1 (lengths in txLengths); returns how many the kernel took. */
static napi_value tun_write(napi_env env, napi_callback_info info) {
  napi_value result;
  uint32_t count, i, sent = 0;
  wgtun_io *io = wgtun_io_tx_count(env, info, "write(count)", &count);
  if (io == NULL) return NULL;
  if (((tun_kind *)io->kind)->vnet) return write_vnet(env, io, count);
  for (i = 0; i < count; i++) {
    uint32_t len = io->tx_len[i];
    ssize_t r;
    if (len == 0 || len > io->slot) {
      io->stats.tx_errors++;
      io->stats.last_errno = EINVAL;
      continue;
    }
    do r = write(io->fd, io->tx + (size_t)i * io->slot, len);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      io->stats.last_errno = errno;
      if (errno == EAGAIN) {
        io->stats.tx_dropped_full += count - i;
        break;
      }
      io->stats.tx_errors++; /* EIO while the link is down, EINVAL for a malformed packet */
      continue;
    }
    sent++;
  }
  io->stats.tx_packets += sent;
  io->stats.tx_messages += sent;
  napi_create_uint32(env, sent, &result);
  return result;
}

/* name(): the interface's current name. */
static napi_value tun_name(napi_env env, napi_callback_info info) {
  char name[IFNAMSIZ];
  napi_value result;
  int r;
  wgtun_io *io = wgtun_io_unwrap(env, info, NULL, NULL);
  if (io == NULL) return NULL;
  if (io->closed) return wgtun_throw_errno(env, EBADF, "ioctl(TUNGETIFF)", "the TUN device is closed");
  r = tun_current_name(io, name);
  if (r < 0) return wgtun_throw_errno(env, -r, "ioctl(TUNGETIFF)", "cannot read the TUN interface's name");
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &result);
  return result;
}

/* mtu(value?): reads, or sets then reads, the interface MTU through SIOCGIFMTU/SIOCSIFMTU. */
static napi_value tun_mtu(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  napi_valuetype t = napi_undefined;
  struct ifreq ifr;
  char msg[256], name[IFNAMSIZ];
  int s, r;
  wgtun_io *io = wgtun_io_unwrap(env, info, &argc, argv);
  if (io == NULL) return NULL;
  if (io->closed) return wgtun_throw_errno(env, EBADF, "ioctl(SIOCGIFMTU)", "the TUN device is closed");
  r = tun_current_name(io, name);
  if (r < 0) return wgtun_throw_errno(env, -r, "ioctl(TUNGETIFF)", "cannot read the TUN interface's name");
  s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return wgtun_throw_errno(env, errno, "socket", "cannot open a socket for interface ioctls");
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, name, IFNAMSIZ);
  if (argc >= 1) napi_typeof(env, argv[0], &t);
  if (t != napi_undefined) {
    uint32_t mtu;
    if (wgtun_arg_u32(env, argv[0], "mtu", 68, 65535, &mtu) < 0) {
      close(s);
      return NULL;
    }
    ifr.ifr_mtu = (int)mtu;
    if (ioctl(s, SIOCSIFMTU, &ifr) < 0) {
      int err = errno;
      close(s);
      snprintf(msg, sizeof msg, "cannot set the MTU of %s to %u: %s", name, mtu, strerror(err));
      return wgtun_throw_errno(env, err, "ioctl(SIOCSIFMTU)", msg);
    }
  }
  if (ioctl(s, SIOCGIFMTU, &ifr) < 0) {
    int err = errno;
    close(s);
    /* ENODEV also when the interface was moved to another network namespace */
    snprintf(msg, sizeof msg, "cannot read the MTU of %s: %s (is it in another network namespace?)",
             name, strerror(err));
    return wgtun_throw_errno(env, err, "ioctl(SIOCGIFMTU)", msg);
  }
  close(s);
  napi_create_uint32(env, (uint32_t)ifr.ifr_mtu, &result);
  return result;
}

/* offloads(): what the TUN does: { vnetHeader, tso, uso, note } (note: why something is off). */
static napi_value tun_offloads(napi_env env, napi_callback_info info) {
  napi_value obj, v;
  tun_kind *t;
  wgtun_io *io = wgtun_io_unwrap(env, info, NULL, NULL);
  if (io == NULL) return NULL;
  t = io->kind;
  napi_create_object(env, &obj);
  napi_get_boolean(env, t->vnet != 0, &v);
  napi_set_named_property(env, obj, "vnetHeader", v);
  napi_get_boolean(env, (t->features & TUN_F_TSO4) != 0, &v);
  napi_set_named_property(env, obj, "tso", v);
  napi_get_boolean(env, (t->features & TUN_F_USO4) != 0, &v);
  napi_set_named_property(env, obj, "uso", v);
  napi_create_string_utf8(env, t->note, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "note", v);
  return obj;
}

/* A typed array argument's memory and element count, or -1 after throwing TypeError. */
static int typed_arg(napi_env env, napi_value v, napi_typedarray_type want, const char *what,
                     void **data, size_t *length) {
  bool is = false;
  napi_typedarray_type type;
  char msg[120];
  if (napi_is_typedarray(env, v, &is) == napi_ok && is &&
      napi_get_typedarray_info(env, v, &type, length, data, NULL, NULL) == napi_ok &&
      type == want)
    return 0;
  snprintf(msg, sizeof msg, "%s must be a %s", what,
           want == napi_uint8_array ? "Uint8Array" : "Uint32Array");
  napi_throw_type_error(env, NULL, msg);
  return -1;
}

/* vnetSplit(input, out, offsets, lengths): wgtun_vnet_split on one TUN read (header + packet);
 * returns the packet count, -1 (invalid) or -2 (no room). */
static napi_value offload_split(napi_env env, napi_callback_info info) {
  size_t argc = 4, in_len, out_len, n_off, n_len;
  napi_value argv[4], result;
  void *in, *out, *off, *len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4) return wgtun_throw_type(env, "vnetSplit(input, out, offsets, lengths)");
  if (typed_arg(env, argv[0], napi_uint8_array, "input", &in, &in_len) < 0 ||
      typed_arg(env, argv[1], napi_uint8_array, "out", &out, &out_len) < 0 ||
      typed_arg(env, argv[2], napi_uint32_array, "offsets", &off, &n_off) < 0 ||
      typed_arg(env, argv[3], napi_uint32_array, "lengths", &len, &n_len) < 0)
    return NULL;
  napi_create_int32(env,
                    wgtun_vnet_split(in, in_len, out, out_len, off, len,
                                     (uint32_t)(n_off < n_len ? n_off : n_len)),
                    &result);
  return result;
}

/* groCoalesce(buffer, offsets, lengths, count, out, outOffsets, outLengths): coalesces the count
 * packets in buffer (rewriting headers there) as a TUN write would; each write (header + packet)
 * goes to out. Returns the number of writes or -2 (no room). */
static napi_value offload_coalesce(napi_env env, napi_callback_info info) {
  size_t argc = 7, buf_len, n_off, n_len, out_len, n_ooff, n_olen, pos = 0;
  napi_value argv[7], result;
  void *buf, *off, *len, *out, *ooff, *olen;
  uint32_t count, i, ngroups;
  uint8_t **pkts;
  uint32_t *lens, *next;
  wgtun_gro_group *groups;
  int ret;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 7)
    return wgtun_throw_type(env, "groCoalesce(buffer, offsets, lengths, count, out, outOffsets, outLengths)");
  if (typed_arg(env, argv[0], napi_uint8_array, "buffer", &buf, &buf_len) < 0 ||
      typed_arg(env, argv[1], napi_uint32_array, "offsets", &off, &n_off) < 0 ||
      typed_arg(env, argv[2], napi_uint32_array, "lengths", &len, &n_len) < 0 ||
      wgtun_arg_u32(env, argv[3], "count", 0, WGTUN_MAX_BATCH, &count) < 0 ||
      typed_arg(env, argv[4], napi_uint8_array, "out", &out, &out_len) < 0 ||
      typed_arg(env, argv[5], napi_uint32_array, "outOffsets", &ooff, &n_ooff) < 0 ||
      typed_arg(env, argv[6], napi_uint32_array, "outLengths", &olen, &n_olen) < 0)
    return NULL;
  if (count > n_off || count > n_len || count > n_ooff || count > n_olen)
    return wgtun_throw_range(env, "count is larger than an offsets or lengths array");
  for (i = 0; i < count; i++) {
    uint32_t o = ((uint32_t *)off)[i], l = ((uint32_t *)len)[i];
    if (l == 0 || o > buf_len || l > buf_len - o)
      return wgtun_throw_range(env, "a packet lies outside the buffer or is empty");
  }
  pkts = calloc(count + 1, sizeof *pkts);
  lens = calloc(count + 1, sizeof *lens);
  next = calloc(count + 1, sizeof *next);
  groups = calloc(count + 1, sizeof *groups);
  if (!pkts || !lens || !next || !groups) {
    free(pkts), free(lens), free(next), free(groups);
    return wgtun_throw_errno(env, ENOMEM, "malloc", "out of memory");
  }
  for (i = 0; i < count; i++) {
    pkts[i] = (uint8_t *)buf + ((uint32_t *)off)[i];
    lens[i] = ((uint32_t *)len)[i];
  }
  ngroups = wgtun_gro_coalesce(pkts, lens, count, next, groups);
  ret = (int)ngroups;
  for (i = 0; i < ngroups && ret >= 0; i++) {
    const wgtun_gro_group *g = &groups[i];
    uint32_t p = g->head, start = (uint32_t)pos;
    size_t need = WGTUN_VNET_HDR_LEN + g->total_len;
    if (need > out_len - pos) {
      ret = WGTUN_SPLIT_NOROOM;
      break;
    }
    memcpy((uint8_t *)out + pos, g->vnet, WGTUN_VNET_HDR_LEN);
    pos += WGTUN_VNET_HDR_LEN;
    memcpy((uint8_t *)out + pos, pkts[p], lens[p]);
    pos += lens[p];
    for (p = next[p]; p != UINT32_MAX; p = next[p]) {
      memcpy((uint8_t *)out + pos, pkts[p] + g->header_len, lens[p] - g->header_len);
      pos += lens[p] - g->header_len;
    }
    ((uint32_t *)ooff)[i] = start;
    ((uint32_t *)olen)[i] = (uint32_t)(pos - start);
  }
  free(pkts), free(lens), free(next), free(groups);
  napi_create_int32(env, ret, &result);
  return result;
}

napi_value wgtun_tun_init(napi_env env, napi_value exports) {
  napi_value cls;
  napi_property_descriptor methods[] = {
      WGTUN_IO_METHODS,
      {"write", NULL, tun_write, NULL, NULL, NULL, napi_default_method, NULL},
      {"name", NULL, tun_name, NULL, NULL, NULL, napi_default_method, NULL},
      {"mtu", NULL, tun_mtu, NULL, NULL, NULL, napi_default_method, NULL},
      {"fd", NULL, tun_fd, NULL, NULL, NULL, napi_default_method, NULL},
      {"offloads", NULL, tun_offloads, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value fn;
  napi_define_class(env, "Tun", NAPI_AUTO_LENGTH, tun_new, NULL,
                    sizeof methods / sizeof methods[0], methods, &cls);
  napi_set_named_property(env, exports, "Tun", cls);
  napi_create_function(env, "vnetSplit", NAPI_AUTO_LENGTH, offload_split, NULL, &fn);
  napi_set_named_property(env, exports, "vnetSplit", fn);
  napi_create_function(env, "groCoalesce", NAPI_AUTO_LENGTH, offload_coalesce, NULL, &fn);
  napi_set_named_property(env, exports, "groCoalesce", fn);
  return exports;
}
