/*
 * Linux TUN device (Documentation/networking/tuntap.rst): /dev/net/tun + TUNSETIFF with
 * IFF_TUN | IFF_NO_PI, non-blocking; batches of read() into the rx ring, batches of write() from the
 * tx ring (a TUN fd takes one packet per write, so the batch saves JS<->C crossings, not syscalls).
 */
#define _GNU_SOURCE
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define WGTUN_PATH_MAX 1024

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

/* new Tun(devicePath, name, batch, slot, fd): opens and attaches (name "" lets the kernel choose),
 * or with fd >= 0 adopts that fd instead (devicePath and name unused). */
static napi_value tun_new(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], self, target, vname;
  char path[WGTUN_PATH_MAX], ifname[IFNAMSIZ];
  uint32_t batch, slot;
  int32_t adopt = -1;
  struct ifreq ifr;
  wgtun_io *io;
  int fd;

  napi_get_cb_info(env, info, &argc, argv, &self, NULL);
  napi_get_new_target(env, info, &target);
  if (target == NULL) return wgtun_throw_type(env, "Tun must be called with new");
  if (argc < 5) return wgtun_throw_type(env, "Tun(devicePath, name, batch, slot, fd)");
  if (wgtun_arg_string(env, argv[0], "devicePath", path, sizeof path) < 0) return NULL;
  if (wgtun_arg_string(env, argv[1], "interface name", ifname, sizeof ifname) < 0) return NULL;
  if (wgtun_arg_u32(env, argv[2], "batch", 1, WGTUN_MAX_BATCH, &batch) < 0) return NULL;
  if (wgtun_arg_u32(env, argv[3], "slot", WGTUN_MIN_SLOT, WGTUN_MAX_SLOT, &slot) < 0) return NULL;
  if (napi_get_value_int32(env, argv[4], &adopt) != napi_ok)
    return wgtun_throw_type(env, "fd must be a number (-1 to open the device)");

  if (adopt >= 0) {
    fd = adopt;
    if (adopt_fd(env, fd, &ifr) < 0) return NULL;
  } else {
    fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return throw_open_error(env, errno, path);
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, ifname, strlen(ifname));
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
      int err = errno;
      close(fd);
      return throw_setiff_error(env, err, ifname);
    }
  }
  ifr.ifr_name[IFNAMSIZ - 1] = 0;

  io = wgtun_io_new(env, self, fd, batch, slot, batch, 0, tun_read_batch);
  if (io == NULL) return NULL;
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

/* write(count): writes tx slots 0..count-1 (lengths in txLengths); returns how many the kernel took. */
static napi_value tun_write(napi_env env, napi_callback_info info) {
  napi_value result;
  uint32_t count, i, sent = 0;
  wgtun_io *io = wgtun_io_tx_count(env, info, "write(count)", &count);
  if (io == NULL) return NULL;
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

napi_value wgtun_tun_init(napi_env env, napi_value exports) {
  napi_value cls;
  napi_property_descriptor methods[] = {
      WGTUN_IO_METHODS,
      {"write", NULL, tun_write, NULL, NULL, NULL, napi_default_method, NULL},
      {"name", NULL, tun_name, NULL, NULL, NULL, napi_default_method, NULL},
      {"mtu", NULL, tun_mtu, NULL, NULL, NULL, napi_default_method, NULL},
      {"fd", NULL, tun_fd, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_define_class(env, "Tun", NAPI_AUTO_LENGTH, tun_new, NULL,
                    sizeof methods / sizeof methods[0], methods, &cls);
  napi_set_named_property(env, exports, "Tun", cls);
  return exports;
}
