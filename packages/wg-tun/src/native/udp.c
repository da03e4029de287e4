/*
 * UDP transport for WireGuard datagrams: one non-blocking socket, AF_INET6 with IPV6_V6ONLY off so
 * it serves IPv4 (as v4-mapped addresses, reported as plain IPv4) and IPv6 on one port, falling back
 * to AF_INET where IPv6 is disabled. recvmmsg/sendmmsg move whole batches per syscall; with
 * offload on, runs of equal-size datagrams to one destination leave as one UDP_SEGMENT (GSO) send
 * and the kernel may hand over coalesced runs (UDP_GRO), which are split here (udp(7), kernel
 * Documentation/networking/segmentation-offloads.rst).
 */
#define _GNU_SOURCE
#include "io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

/* Kernel limits for one GSO send: UDP_MAX_SEGMENTS (include/linux/udp.h) and the largest UDP
 * payload over IPv4 (65535 - 20 - 8); GRO coalesces at most as many (UDP_GRO_CNT_MAX). */
#define WGTUN_GSO_MAX_SEGMENTS 64
#define WGTUN_GSO_MAX_BYTES 65507
#define WGTUN_TX_CTRL_LEN 32

/* room for the SO_RXQ_OVFL counter (a uint32 in one cmsg) with slack for anything else queued */
#define WGTUN_CTRL_LEN 64
#define WGTUN_HOST_MAX 128

typedef union {
  struct sockaddr sa;
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
} wgtun_sockaddr;

typedef struct {
  int family; /* of the socket */
  int gso, gro;
  struct mmsghdr *rx_msgs, *tx_msgs;
  struct iovec *rx_iov, *tx_iov;
  wgtun_sockaddr *rx_addr, *tx_addr;
  socklen_t *tx_addr_len;
  uint32_t *tx_first, *tx_count; /* per message: its first datagram and how many it carries */
  uint8_t *rx_ctrl, *tx_ctrl;
} udp_kind;

static void udp_free(void *p) {
  udp_kind *u = p;
  if (u == NULL) return;
  free(u->rx_msgs);
  free(u->tx_msgs);
  free(u->rx_iov);
  free(u->tx_iov);
  free(u->rx_addr);
  free(u->tx_addr);
  free(u->rx_ctrl);
  free(u->tx_ctrl);
  free(u->tx_addr_len);
  free(u->tx_first);
  free(u->tx_count);
  free(u);
}

/* Fills a 24-byte meta record (layout in io.h) from a socket address; v4-mapped becomes IPv4. */
static void meta_from_sockaddr(uint8_t *m, const wgtun_sockaddr *a) {
  memset(m, 0, WGTUN_META_STRIDE);
  if (a->sa.sa_family == AF_INET) {
    m[WGTUN_META_FAMILY] = 4;
    memcpy(m + WGTUN_META_PORT, &a->v4.sin_port, 2);
    memcpy(m + WGTUN_META_ADDR, &a->v4.sin_addr, 4);
  } else if (a->sa.sa_family == AF_INET6) {
    memcpy(m + WGTUN_META_PORT, &a->v6.sin6_port, 2);
    if (IN6_IS_ADDR_V4MAPPED(&a->v6.sin6_addr)) {
      m[WGTUN_META_FAMILY] = 4;
      memcpy(m + WGTUN_META_ADDR, a->v6.sin6_addr.s6_addr + 12, 4);
    } else {
      m[WGTUN_META_FAMILY] = 6;
      memcpy(m + WGTUN_META_SCOPE, &a->v6.sin6_scope_id, 4);
      memcpy(m + WGTUN_META_ADDR, &a->v6.sin6_addr, 16);
    }
  }
}

/* Builds the destination address for a meta record on a socket of `family`; -1 if unreachable. */
static int sockaddr_from_meta(wgtun_sockaddr *a, socklen_t *len, const uint8_t *m, int family) {
  memset(a, 0, sizeof *a);
  if (m[WGTUN_META_FAMILY] == 4 && family == AF_INET) {
    a->v4.sin_family = AF_INET;
    memcpy(&a->v4.sin_port, m + WGTUN_META_PORT, 2);
    memcpy(&a->v4.sin_addr, m + WGTUN_META_ADDR, 4);
    *len = sizeof a->v4;
    return 0;
  }
  if (family != AF_INET6) return -1;
  a->v6.sin6_family = AF_INET6;
  memcpy(&a->v6.sin6_port, m + WGTUN_META_PORT, 2);
  if (m[WGTUN_META_FAMILY] == 4) {
    a->v6.sin6_addr.s6_addr[10] = 0xff;
    a->v6.sin6_addr.s6_addr[11] = 0xff;
    memcpy(a->v6.sin6_addr.s6_addr + 12, m + WGTUN_META_ADDR, 4);
  } else if (m[WGTUN_META_FAMILY] == 6) {
    memcpy(&a->v6.sin6_scope_id, m + WGTUN_META_SCOPE, 4);
    memcpy(&a->v6.sin6_addr, m + WGTUN_META_ADDR, 16);
  } else {
    return -1;
  }
  *len = sizeof a->v6;
  return 0;
}

/* Parses a numeric IPv4/IPv6 address (with an optional %scope) into a meta record (port zero). */
static int meta_from_text(uint8_t *m, const char *text) {
  struct in_addr a4;
  struct in6_addr a6;
  wgtun_sockaddr a;
  memset(&a, 0, sizeof a);
  if (inet_pton(AF_INET, text, &a4) == 1) {
    a.v4.sin_family = AF_INET;
    a.v4.sin_addr = a4;
  } else if (strchr(text, '%') == NULL) {
    if (inet_pton(AF_INET6, text, &a6) != 1) return -1;
    a.v6.sin6_family = AF_INET6;
    a.v6.sin6_addr = a6;
  } else {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET6;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICHOST;
    if (getaddrinfo(text, NULL, &hints, &res) != 0 || res == NULL) return -1;
    memcpy(&a.v6, res->ai_addr, sizeof a.v6);
    freeaddrinfo(res);
  }
  meta_from_sockaddr(m, &a);
  return 0;
}

static int udp_read_batch(wgtun_io *io) {
  udp_kind *u = io->kind;
  uint32_t i, k = 0;
  int n;
  for (i = 0; i < io->batch; i++) {
    struct msghdr *h = &u->rx_msgs[i].msg_hdr;
    h->msg_namelen = sizeof u->rx_addr[i];
    h->msg_controllen = WGTUN_CTRL_LEN;
    h->msg_flags = 0;
  }
  do n = recvmmsg(io->fd, u->rx_msgs, io->batch, MSG_DONTWAIT, NULL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN) {
      /* A queued socket error (reported once, then cleared) is no reason to stop receiving. */
      io->stats.rx_errors++;
      io->stats.last_errno = errno;
    }
    return 0;
  }
  io->stats.rx_messages += n;
  for (i = 0; i < (uint32_t)n; i++) {
    struct msghdr *h = &u->rx_msgs[i].msg_hdr;
    struct cmsghdr *c;
    uint32_t len = u->rx_msgs[i].msg_len, off = i * io->slot, segment = 0;
    uint8_t *meta;
    for (c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
        uint32_t dropped;
        memcpy(&dropped, CMSG_DATA(c), sizeof dropped);
        io->stats.rx_dropped_kernel = dropped; /* the kernel's running count for this socket */
      } else if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        int size;
        memcpy(&size, CMSG_DATA(c), sizeof size);
        if (size > 0) segment = (uint32_t)size;
      }
    }
    if (h->msg_flags & MSG_TRUNC) {
      io->stats.rx_dropped_truncated++;
      continue;
    }
    if (segment == 0 || segment >= len) segment = len;
    /* A GRO read holds several datagrams of `segment` bytes from one source (the last may be
     * shorter): each becomes its own packet with the same address record. */
    meta = io->rx_meta + (size_t)k * WGTUN_META_STRIDE;
    meta_from_sockaddr(meta, &u->rx_addr[i]);
    while (len > 0) {
      uint32_t part = len < segment ? len : segment;
      if (k >= io->rx_cap) {
        io->stats.rx_dropped_truncated++;
        break;
      }
      if (io->rx_meta + (size_t)k * WGTUN_META_STRIDE != meta)
        memcpy(io->rx_meta + (size_t)k * WGTUN_META_STRIDE, meta, WGTUN_META_STRIDE);
      io->rx_off[k] = off;
      io->rx_len[k] = part;
      k++;
      off += part;
      len -= part;
    }
  }
  io->stats.rx_packets += k;
  return (int)k;
}

static void set_buffer(int fd, int force_opt, int opt, uint32_t bytes) {
  int v = (int)bytes;
  /* The FORCE variants pass net.core.[rw]mem_max but need CAP_NET_ADMIN; else take what we may. */
  if (setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof v) == 0) return;
  setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);
}

static int get_int_opt(int fd, int level, int opt) {
  int v = 0;
  socklen_t len = sizeof v;
  getsockopt(fd, level, opt, &v, &len);
  return v;
}

static napi_value throw_bind_error(napi_env env, int err, const char *host, uint32_t port) {
  char msg[400], name[64];
  const char *shown = host[0] != 0 ? host : "all addresses";
  wgtun_errno_name(err, name, sizeof name);
  if (err == EADDRINUSE)
    snprintf(msg, sizeof msg,
             "cannot bind UDP port %u on %s (%s): another socket uses it; choose another port, or "
             "0 to let the kernel pick one",
             port, shown, name);
  else if (err == EACCES || err == EPERM)
    snprintf(msg, sizeof msg,
             "cannot bind UDP port %u on %s (%s): permission denied; run as root or choose a port "
             "above 1023",
             port, shown, name);
  else if (err == EADDRNOTAVAIL)
    snprintf(msg, sizeof msg,
             "cannot bind UDP port %u on %s (%s): no local interface has that address", port,
             shown, name);
  else
    snprintf(msg, sizeof msg, "cannot bind UDP port %u on %s (%s): %s", port, shown, name,
             strerror(err));
  return wgtun_throw_errno(env, err, "bind", msg);
}

static napi_value throw_mark_error(napi_env env, int err, uint32_t mark) {
  char msg[300], name[64];
  wgtun_errno_name(err, name, sizeof name);
  snprintf(msg, sizeof msg,
           "cannot set fwmark %u on the UDP socket (%s): %s; setting a mark needs CAP_NET_ADMIN or CAP_NET_RAW",
           mark, name, strerror(err));
  return wgtun_throw_errno(env, err, "setsockopt(SO_MARK)", msg);
}

/* new Udp(host, port, batch, slot, rcvbuf, sndbuf, fwmark, offload): host "" binds all addresses,
 * v4 and v6; fwmark 0 leaves the mark unset; offload 1 turns on GSO (and GRO when a slot holds 64 KiB)
 * where the kernel has them. */
static napi_value udp_new(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8], self, target, v;
  char host[WGTUN_HOST_MAX];
  uint32_t port, batch, slot, rcvbuf, sndbuf, mark, offload, rx_cap, i;
  int gso = 0, gro = 0;
  wgtun_sockaddr local;
  socklen_t local_len;
  const char *family_name;
  udp_kind *u;
  wgtun_io *io;
  int fd, family, one = 1, zero = 0;

  napi_get_cb_info(env, info, &argc, argv, &self, NULL);
  napi_get_new_target(env, info, &target);
  if (target == NULL) return wgtun_throw_type(env, "Udp must be called with new");
  if (argc < 8)
    return wgtun_throw_type(env, "Udp(host, port, batch, slot, rcvbuf, sndbuf, fwmark, offload)");
  if (wgtun_arg_string(env, argv[0], "host", host, sizeof host) < 0) return NULL;
  if (wgtun_arg_u32(env, argv[1], "port", 0, 65535, &port) < 0) return NULL;
  if (wgtun_arg_u32(env, argv[2], "batch", 1, WGTUN_MAX_BATCH, &batch) < 0) return NULL;
  if (wgtun_arg_u32(env, argv[3], "slot", WGTUN_MIN_SLOT, WGTUN_MAX_SLOT, &slot) < 0) return NULL;
  if (wgtun_arg_u32(env, argv[4], "rcvbuf", 0, INT32_MAX, &rcvbuf) < 0) return NULL;
  if (wgtun_arg_u32(env, argv[5], "sndbuf", 0, INT32_MAX, &sndbuf) < 0) return NULL;
  if (wgtun_arg_u32(env, argv[6], "fwmark", 0, UINT32_MAX, &mark) < 0) return NULL;
  if (wgtun_arg_u32(env, argv[7], "offload", 0, 1, &offload) < 0) return NULL;

  memset(&local, 0, sizeof local);
  if (host[0] == 0) {
    family = AF_INET6;
    local.v6.sin6_family = AF_INET6;
    local.v6.sin6_addr = in6addr_any;
    local.v6.sin6_port = htons((uint16_t)port);
    local_len = sizeof local.v6;
    fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 && errno == EAFNOSUPPORT) {
      family = AF_INET; /* a kernel booted with ipv6.disable=1 */
      memset(&local, 0, sizeof local);
      local.v4.sin_family = AF_INET;
      local.v4.sin_addr.s_addr = htonl(INADDR_ANY);
      local.v4.sin_port = htons((uint16_t)port);
      local_len = sizeof local.v4;
      fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    family_name = family == AF_INET6 ? "dual" : "ipv4";
  } else {
    uint8_t m[WGTUN_META_STRIDE];
    if (meta_from_text(m, host) < 0) {
      char msg[200];
      snprintf(msg, sizeof msg, "host %s is not a numeric IPv4 or IPv6 address", host);
      return wgtun_throw_type(env, msg);
    }
    m[WGTUN_META_PORT] = (uint8_t)(port >> 8);
    m[WGTUN_META_PORT + 1] = (uint8_t)port;
    family = m[WGTUN_META_FAMILY] == 4 ? AF_INET : AF_INET6;
    sockaddr_from_meta(&local, &local_len, m, family);
    family_name = family == AF_INET ? "ipv4" : "ipv6";
    fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  if (fd < 0) return wgtun_throw_errno(env, errno, "socket", "cannot create a UDP socket");
  if (family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, host[0] == 0 ? &zero : &one, sizeof zero);
  if (rcvbuf > 0) set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, rcvbuf);
  if (sndbuf > 0) set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, sndbuf);
  setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
  if (mark != 0 && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0) {
    int err = errno;
    close(fd);
    return throw_mark_error(env, err, mark);
  }
  if (bind(fd, &local.sa, local_len) < 0) {
    int err = errno;
    close(fd);
    return throw_bind_error(env, err, host, port);
  }
  local_len = sizeof local;
  getsockname(fd, &local.sa, &local_len);
  port = ntohs(family == AF_INET ? local.v4.sin_port : local.v6.sin6_port);
  if (offload) {
    int size = 0;
    socklen_t len = sizeof size;
    /* Reading UDP_SEGMENT succeeds exactly where sending with it is supported (Linux 4.18+). */
    gso = getsockopt(fd, SOL_UDP, UDP_SEGMENT, &size, &len) == 0;
    /* A coalesced read can be 64 KiB, so GRO only with slots that hold one (Linux 5.0+). */
    gro = slot >= WGTUN_MAX_SLOT && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  }
  rx_cap = gro ? batch * WGTUN_GSO_MAX_SEGMENTS : batch;

  u = calloc(1, sizeof *u);
  if (u != NULL) {
    u->family = family;
    u->gso = gso;
    u->gro = gro;
    u->tx_addr_len = calloc(batch, sizeof *u->tx_addr_len);
    u->tx_first = calloc(batch, sizeof *u->tx_first);
    u->tx_count = calloc(batch, sizeof *u->tx_count);
    u->tx_ctrl = calloc(batch, WGTUN_TX_CTRL_LEN);
    u->rx_msgs = calloc(batch, sizeof *u->rx_msgs);
    u->tx_msgs = calloc(batch, sizeof *u->tx_msgs);
    u->rx_iov = calloc(batch, sizeof *u->rx_iov);
    u->tx_iov = calloc(batch, sizeof *u->tx_iov);
    u->rx_addr = calloc(batch, sizeof *u->rx_addr);
    u->tx_addr = calloc(batch, sizeof *u->tx_addr);
    u->rx_ctrl = calloc(batch, WGTUN_CTRL_LEN);
  }
  if (u == NULL || !u->rx_msgs || !u->tx_msgs || !u->rx_iov || !u->tx_iov || !u->rx_addr ||
      !u->tx_addr || !u->rx_ctrl || !u->tx_addr_len || !u->tx_first || !u->tx_count ||
      !u->tx_ctrl) {
    udp_free(u);
    close(fd);
    return wgtun_throw_errno(env, ENOMEM, "malloc", "out of memory allocating UDP batch headers");
  }
  io = wgtun_io_new(env, self, fd, batch, slot, rx_cap, 1, udp_read_batch);
  if (io == NULL) {
    udp_free(u);
    return NULL;
  }
  io->kind = u;
  io->free_kind = udp_free;
  for (i = 0; i < batch; i++) {
    struct msghdr *h = &u->rx_msgs[i].msg_hdr;
    u->rx_iov[i].iov_base = io->rx + (size_t)i * slot;
    u->rx_iov[i].iov_len = slot;
    h->msg_name = &u->rx_addr[i];
    h->msg_iov = &u->rx_iov[i];
    h->msg_iovlen = 1;
    h->msg_control = u->rx_ctrl + (size_t)i * WGTUN_CTRL_LEN;
  }
  snprintf(io->label, sizeof io->label, "UDP socket on port %u", port);

  napi_create_uint32(env, port, &v);
  napi_set_named_property(env, self, "port", v);
  napi_create_string_utf8(env, family_name, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, self, "family", v);
  /* Linux reports twice the requested size (it counts its bookkeeping overhead). */
  napi_create_int32(env, get_int_opt(fd, SOL_SOCKET, SO_RCVBUF), &v);
  napi_set_named_property(env, self, "receiveBufferBytes", v);
  napi_create_int32(env, get_int_opt(fd, SOL_SOCKET, SO_SNDBUF), &v);
  napi_set_named_property(env, self, "sendBufferBytes", v);
  return self;
}

/* offloads(): { gso, gro } as they are now (GSO turns itself off when a route refuses it). */
static napi_value udp_offloads(napi_env env, napi_callback_info info) {
  napi_value obj, v;
  udp_kind *u;
  wgtun_io *io = wgtun_io_unwrap(env, info, NULL, NULL);
  if (io == NULL) return NULL;
  u = io->kind;
  napi_create_object(env, &obj);
  napi_get_boolean(env, u->gso, &v);
  napi_set_named_property(env, obj, "gso", v);
  napi_get_boolean(env, u->gro, &v);
  napi_set_named_property(env, obj, "gro", v);
  return obj;
}

static int same_destination(const udp_kind *u, uint32_t a, uint32_t b) {
  return u->tx_addr_len[a] == u->tx_addr_len[b] &&
         memcmp(&u->tx_addr[a], &u->tx_addr[b], u->tx_addr_len[a]) == 0;
}

/* Sends datagrams first..first+count-1 one by one, without GSO; returns how many went. */
static uint32_t send_singly(wgtun_io *io, uint32_t first, uint32_t count) {
  udp_kind *u = io->kind;
  uint32_t i, sent = 0;
  for (i = first; i < first + count; i++) {
    struct msghdr h;
    ssize_t r;
    memset(&h, 0, sizeof h);
    h.msg_name = &u->tx_addr[i];
    h.msg_namelen = u->tx_addr_len[i];
    h.msg_iov = &u->tx_iov[i];
    h.msg_iovlen = 1;
    do r = sendmsg(io->fd, &h, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    io->stats.tx_messages++;
    if (r >= 0) {
      sent++;
      continue;
    }
    io->stats.last_errno = errno;
    if (errno == EAGAIN) {
      io->stats.tx_dropped_full += first + count - i;
      break;
    }
    io->stats.tx_errors++;
  }
  return sent;
}

/* send(count): sends tx slots 0..count-1 to the addresses in txMeta; returns how many were sent.
 * With GSO, each run of datagrams to one destination whose sizes are equal (the last may be
 * shorter) goes as one message. Datagrams the kernel refuses (unreachable, wrong family) are
 * skipped and counted; on EAGAIN the rest of the batch is dropped and counted. */
static napi_value udp_send(napi_env env, napi_callback_info info) {
  napi_value result;
  uint32_t count, i, m = 0, k = 0, done = 0, sent = 0;
  udp_kind *u;
  wgtun_io *io = wgtun_io_tx_count(env, info, "send(count)", &count);
  if (io == NULL) return NULL;
  u = io->kind;

  /* Datagrams with a usable destination, compacted to 0..m-1. */
  for (i = 0; i < count; i++) {
    uint32_t len = io->tx_len[i];
    if (len > io->slot ||
        sockaddr_from_meta(&u->tx_addr[m], &u->tx_addr_len[m],
                           io->tx_meta + (size_t)i * WGTUN_META_STRIDE, u->family) < 0) {
      io->stats.tx_errors++;
      io->stats.last_errno = len > io->slot ? EMSGSIZE : EAFNOSUPPORT;
      continue;
    }
    u->tx_iov[m].iov_base = io->tx + (size_t)i * io->slot;
    u->tx_iov[m].iov_len = len;
    m++;
  }

  /* Messages: one per run (GSO) or one per datagram. */
  for (i = 0; i < m; k++) {
    struct msghdr *h = &u->tx_msgs[k].msg_hdr;
    uint32_t first = i, size = (uint32_t)u->tx_iov[i].iov_len, total = size;
    i++;
    if (u->gso) {
      while (i < m && i - first < WGTUN_GSO_MAX_SEGMENTS && u->tx_iov[i].iov_len <= size &&
             total + u->tx_iov[i].iov_len <= WGTUN_GSO_MAX_BYTES && same_destination(u, first, i)) {
        total += (uint32_t)u->tx_iov[i].iov_len;
        i++;
        if (u->tx_iov[i - 1].iov_len < size) break; /* only the last segment may be shorter */
      }
    }
    memset(h, 0, sizeof *h);
    h->msg_name = &u->tx_addr[first];
    h->msg_namelen = u->tx_addr_len[first];
    h->msg_iov = &u->tx_iov[first];
    h->msg_iovlen = i - first;
    if (i - first > 1) {
      struct cmsghdr *c;
      uint16_t segment = (uint16_t)size;
      h->msg_control = u->tx_ctrl + (size_t)k * WGTUN_TX_CTRL_LEN;
      h->msg_controllen = CMSG_SPACE(sizeof segment);
      c = CMSG_FIRSTHDR(h);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof segment);
      memcpy(CMSG_DATA(c), &segment, sizeof segment);
    }
    u->tx_first[k] = first;
    u->tx_count[k] = i - first;
  }

  while (done < k) {
    int r = sendmmsg(io->fd, u->tx_msgs + done, k - done, MSG_DONTWAIT);
    int err;
    if (r > 0) {
      io->stats.tx_messages += r;
      for (i = done; i < done + (uint32_t)r; i++) sent += u->tx_count[i];
      done += (uint32_t)r;
      continue;
    }
    err = r < 0 ? errno : EIO;
    if (err == EINTR) continue;
    io->stats.last_errno = err;
    if (err == EAGAIN) {
      for (i = done; i < k; i++) io->stats.tx_dropped_full += u->tx_count[i];
      break;
    }
    if (u->tx_count[done] > 1) {
      /* The segmented send was refused: EMSGSIZE/EINVAL where a segment exceeds the path MTU (this
       * run only), EIO/EOPNOTSUPP where the route cannot offload (stop trying). Send it singly. */
      if (err != EMSGSIZE && err != EINVAL) u->gso = 0;
      sent += send_singly(io, u->tx_first[done], u->tx_count[done]);
    } else {
      io->stats.tx_errors++; /* this datagram's destination is refused: skip it, send the rest */
    }
    done++;
  }
  io->stats.tx_packets += sent;
  napi_create_uint32(env, sent, &result);
  return result;
}

/* setMark(mark): sets SO_MARK (0 clears it). */
static napi_value udp_set_mark(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], undefined;
  uint32_t mark;
  wgtun_io *io = wgtun_io_unwrap(env, info, &argc, argv);
  if (io == NULL) return NULL;
  if (argc < 1) return wgtun_throw_type(env, "setMark(mark)");
  if (wgtun_arg_u32(env, argv[0], "mark", 0, UINT32_MAX, &mark) < 0) return NULL;
  if (io->closed) return wgtun_throw_errno(env, EBADF, "setsockopt(SO_MARK)", "the UDP socket is closed");
  if (setsockopt(io->fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0)
    return throw_mark_error(env, errno, mark);
  napi_get_undefined(env, &undefined);
  return undefined;
}

static int meta_arg(napi_env env, napi_value arr, napi_value idx, uint8_t **m) {
  napi_typedarray_type type;
  size_t length;
  void *data;
  uint32_t index;
  napi_status s = napi_get_typedarray_info(env, arr, &type, &length, &data, NULL, NULL);
  if (s != napi_ok || type != napi_uint8_array) {
    wgtun_throw_type(env, "meta must be a Uint8Array");
    return -1;
  }
  if (wgtun_arg_u32(env, idx, "index", 0, WGTUN_MAX_BATCH, &index) < 0) return -1;
  if (((size_t)index + 1) * WGTUN_META_STRIDE > length) {
    wgtun_throw_range(env, "index is past the end of meta");
    return -1;
  }
  *m = (uint8_t *)data + (size_t)index * WGTUN_META_STRIDE;
  return 0;
}

/* encodeAddress(address, port, meta, index): writes record `index` of meta; false if not numeric. */
static napi_value udp_encode_address(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  char text[WGTUN_HOST_MAX];
  uint32_t port;
  uint8_t *m;
  int ok;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4) return wgtun_throw_type(env, "encodeAddress(address, port, meta, index)");
  if (wgtun_arg_string(env, argv[0], "address", text, sizeof text) < 0) return NULL;
  if (wgtun_arg_u32(env, argv[1], "port", 0, 65535, &port) < 0) return NULL;
  if (meta_arg(env, argv[2], argv[3], &m) < 0) return NULL;
  ok = meta_from_text(m, text) == 0;
  if (ok) {
    m[WGTUN_META_PORT] = (uint8_t)(port >> 8);
    m[WGTUN_META_PORT + 1] = (uint8_t)port;
  }
  napi_get_boolean(env, ok, &result);
  return result;
}

/* decodeAddress(meta, index): the record's address as text, as `wg` prints it (getnameinfo). */
static napi_value udp_decode_address(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  char text[NI_MAXHOST];
  uint8_t *m;
  wgtun_sockaddr a;
  socklen_t len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) return wgtun_throw_type(env, "decodeAddress(meta, index)");
  if (meta_arg(env, argv[0], argv[1], &m) < 0) return NULL;
  if (m[WGTUN_META_FAMILY] == 4) {
    inet_ntop(AF_INET, m + WGTUN_META_ADDR, text, sizeof text);
  } else if (m[WGTUN_META_FAMILY] == 6) {
    sockaddr_from_meta(&a, &len, m, AF_INET6);
    if (getnameinfo(&a.sa, len, text, sizeof text, NULL, 0, NI_NUMERICHOST) != 0)
      inet_ntop(AF_INET6, &a.v6.sin6_addr, text, sizeof text);
  } else {
    return wgtun_throw_range(env, "meta record has no address family");
  }
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &result);
  return result;
}

napi_value wgtun_udp_init(napi_env env, napi_value exports) {
  napi_value cls, fn;
  napi_property_descriptor methods[] = {
      WGTUN_IO_METHODS,
      {"send", NULL, udp_send, NULL, NULL, NULL, napi_default_method, NULL},
      {"setMark", NULL, udp_set_mark, NULL, NULL, NULL, napi_default_method, NULL},
      {"offloads", NULL, udp_offloads, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_define_class(env, "Udp", NAPI_AUTO_LENGTH, udp_new, NULL,
                    sizeof methods / sizeof methods[0], methods, &cls);
  napi_set_named_property(env, exports, "Udp", cls);
  napi_create_function(env, "encodeAddress", NAPI_AUTO_LENGTH, udp_encode_address, NULL, &fn);
  napi_set_named_property(env, exports, "encodeAddress", fn);
  napi_create_function(env, "decodeAddress", NAPI_AUTO_LENGTH, udp_decode_address, NULL, &fn);
  napi_set_named_property(env, exports, "decodeAddress", fn);
  return exports;
}
