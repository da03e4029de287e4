/*
 * Shared plumbing of the wg-tun addon: a non-blocking fd watched by uv_poll, preallocated receive
 * and transmit rings that JS sees as ArrayBuffers, one JS callback per batch, errno-named errors.
 */
#ifndef WGTUN_IO_H
#define WGTUN_IO_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stdint.h>
#include <uv.h>

/* Per-datagram address record shared with JS (udp.ts decodes the same layout):
 * [0] family (0, 4 or 6), [1] zero, [2..3] port big-endian, [4..7] IPv6 scope id (native endian),
 * [8..23] address (IPv4 in the first 4 bytes). */
#define WGTUN_META_STRIDE 24
#define WGTUN_META_FAMILY 0
#define WGTUN_META_PORT 2
#define WGTUN_META_SCOPE 4
#define WGTUN_META_ADDR 8

/* Upper bounds that keep the rings sane; the TS wrappers validate first with friendlier errors. */
#define WGTUN_MAX_BATCH 1024
#define WGTUN_MAX_SLOT 65536
#define WGTUN_MIN_SLOT 1500

enum { WGTUN_POLL_NONE, WGTUN_POLL_OPEN, WGTUN_POLL_CLOSING };

typedef struct wgtun_io wgtun_io;

/* Reads up to io->batch packets into the rx ring; returns how many, or -errno when the fd is dead. */
typedef int (*wgtun_read_batch_fn)(wgtun_io *io);

typedef struct {
  double rx_packets, rx_batches, rx_messages, rx_dropped_truncated, rx_dropped_kernel, rx_errors;
  double rx_dropped_invalid; /* TUN reads whose virtio_net_hdr or packet could not be split */
  double tx_packets, tx_messages, tx_dropped_full, tx_errors;
  int last_errno;
} wgtun_stats;

struct wgtun_io {
  napi_env env;
  uv_poll_t poll;
  int fd;
  int closed;
  int polling;
  int in_callback;
  int refs; /* the JS object's wrap + an open poll handle; freed at zero */
  int poll_state; /* WGTUN_POLL_NONE, _OPEN or _CLOSING */
  int poll_errors;
  napi_ref self; /* weak, strong while polling so a reading device is not collected */
  napi_ref callback;
  napi_async_context async;
  napi_async_cleanup_hook_handle cleanup;
  wgtun_read_batch_fn read_batch;
  uint32_t batch, slot;
  uint32_t rx_cap; /* packets one read can yield: batch, or more when one read holds several (GRO) */
  /* rings, each owned by a JS ArrayBuffer held through a strong reference */
  napi_ref buffers;
  uint8_t *rx, *tx, *rx_meta, *tx_meta;
  uint32_t *rx_off, *rx_len, *tx_len;
  wgtun_stats stats;
  void *kind; /* the TUN or UDP specific part, freed with the io */
  void (*free_kind)(void *);
  char label[64]; /* "TUN interface wg0" / "UDP socket on port 51820", for error messages */
};

/* Fills `name` with the errno's symbolic name (ENOENT, EBUSY...). */
void wgtun_errno_name(int err, char *name, size_t len);

/* Creates an Error with a message, and Node's usual code/errno/syscall fields. */
napi_value wgtun_errno_error(napi_env env, int err, const char *syscall, const char *message);

/* Throws an Error built by wgtun_errno_error; returns NULL for the caller to return. */
napi_value wgtun_throw_errno(napi_env env, int err, const char *syscall, const char *message);

/* Throws TypeError/RangeError with a message; returns NULL. */
napi_value wgtun_throw_type(napi_env env, const char *message);
napi_value wgtun_throw_range(napi_env env, const char *message);

/* Allocates an io around an open fd and wraps it in `self`, creating the rings and exposing them as
 * read-only properties rxBuffer, rxOffsets, rxLengths, txBuffer, txLengths (and rxMeta, txMeta
 * when with_meta); rxOffsets, rxLengths and rxMeta have rx_cap entries. On failure closes fd,
 * throws, and returns NULL. */
wgtun_io *wgtun_io_new(napi_env env, napi_value self, int fd, uint32_t batch, uint32_t slot,
                       uint32_t rx_cap, int with_meta, wgtun_read_batch_fn read_batch);

/* Unwraps the io behind `this`; throws and returns NULL if there is none. */
wgtun_io *wgtun_io_unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv);

/* Methods shared by Tun and Udp: start(cb), stop(), close(), stats(). */
napi_value wgtun_io_start(napi_env env, napi_callback_info info);
napi_value wgtun_io_stop(napi_env env, napi_callback_info info);
napi_value wgtun_io_close(napi_env env, napi_callback_info info);
napi_value wgtun_io_stats(napi_env env, napi_callback_info info);

/* Their entries in a class's napi_define_class table: the NativeIo surface of addon.ts. */
#define WGTUN_IO_METHODS                                                                   \
  {"start", NULL, wgtun_io_start, NULL, NULL, NULL, napi_default_method, NULL},            \
      {"stop", NULL, wgtun_io_stop, NULL, NULL, NULL, napi_default_method, NULL},          \
      {"close", NULL, wgtun_io_close, NULL, NULL, NULL, napi_default_method, NULL},        \
      {"stats", NULL, wgtun_io_stats, NULL, NULL, NULL, napi_default_method, NULL}

/* The io behind `this` and the count argument of write(count)/send(count) (`usage`): 0..batch,
 * and 0 once closed so nothing is sent. Throws and returns NULL on a bad call. */
wgtun_io *wgtun_io_tx_count(napi_env env, napi_callback_info info, const char *usage,
                            uint32_t *count);

/* Stops polling and closes the fd; idempotent. */
void wgtun_io_shutdown(wgtun_io *io);

/* Reads an int32 argument in [min, max] or throws; returns 0 on success, -1 after throwing. */
int wgtun_arg_u32(napi_env env, napi_value v, const char *what, uint32_t min, uint32_t max,
                  uint32_t *out);

/* Copies a string argument (utf-8) into buf or throws; returns its length or -1 after throwing. */
int wgtun_arg_string(napi_env env, napi_value v, const char *what, char *buf, size_t len);

napi_value wgtun_tun_init(napi_env env, napi_value exports);
napi_value wgtun_udp_init(napi_env env, napi_value exports);

#endif
