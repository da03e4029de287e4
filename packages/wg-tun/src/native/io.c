/*
 * Shared plumbing of the wg-tun addon (see io.h): ring allocation, uv_poll watching, one JS call
 * per batch through napi_make_callback, and a lifetime that survives close() from inside a callback,
 * garbage collection, and environment teardown (worker threads) without leaking fds.
 */
#define _GNU_SOURCE
#include "io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* libuv stops a poll handle on POLLERR; after this many in a row with nothing to read we give up. */
#define WGTUN_MAX_POLL_ERRORS 64
#define WGTUN_ALIGN 64

void wgtun_errno_name(int err, char *name, size_t len) {
  uv_err_name_r(-err, name, len);
  if (strncmp(name, "Unknown", 7) != 0) return;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *n = strerrorname_np(err);
  if (n != NULL) {
    snprintf(name, len, "%s", n);
    return;
  }
#endif
  if (err == EBADFD) snprintf(name, len, "EBADFD");
  else snprintf(name, len, "E%d", err);
}

napi_value wgtun_errno_error(napi_env env, int err, const char *syscall, const char *message) {
  char name[64];
  napi_value msg, code, errnum, sys, error;
  wgtun_errno_name(err, name, sizeof name);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  /* Node reports system errors with negative errno values (libuv's convention). */
  napi_create_int32(env, -err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys);
  napi_set_named_property(env, error, "syscall", sys);
  return error;
}

napi_value wgtun_throw_errno(napi_env env, int err, const char *syscall, const char *message) {
  napi_throw(env, wgtun_errno_error(env, err, syscall, message));
  return NULL;
}

napi_value wgtun_throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

napi_value wgtun_throw_range(napi_env env, const char *message) {
  napi_throw_range_error(env, NULL, message);
  return NULL;
}

int wgtun_arg_u32(napi_env env, napi_value v, const char *what, uint32_t min, uint32_t max,
                  uint32_t *out) {
  char msg[160];
  napi_valuetype t;
  double d;
  napi_typeof(env, v, &t);
  if (t != napi_number) {
    snprintf(msg, sizeof msg, "%s must be a number", what);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  napi_get_value_double(env, v, &d);
  if (!(d >= min && d <= max) || d != (double)(uint32_t)d) {
    snprintf(msg, sizeof msg, "%s must be an integer from %u to %u, got %g", what, min, max, d);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  *out = (uint32_t)d;
  return 0;
}

int wgtun_arg_string(napi_env env, napi_value v, const char *what, char *buf, size_t len) {
  char msg[160];
  napi_valuetype t;
  size_t n = 0;
  napi_typeof(env, v, &t);
  if (t != napi_string) {
    snprintf(msg, sizeof msg, "%s must be a string", what);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  napi_get_value_string_utf8(env, v, NULL, 0, &n);
  if (n >= len) {
    snprintf(msg, sizeof msg, "%s is %zu bytes long; at most %zu allowed", what, n, len - 1);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  napi_get_value_string_utf8(env, v, buf, len, &n);
  return (int)n;
}

static void io_release(wgtun_io *io) {
  if (--io->refs > 0) return;
  if (io->free_kind != NULL) io->free_kind(io->kind);
  free(io);
}

/* Drops every JS-side handle the io holds; only outside a running callback (see deliver). */
static void io_release_js(wgtun_io *io) {
  napi_env env = io->env;
  if (io->callback != NULL) {
    napi_delete_reference(env, io->callback);
    io->callback = NULL;
  }
  if (io->buffers != NULL) {
    napi_delete_reference(env, io->buffers);
    io->buffers = NULL;
  }
  if (io->async != NULL) {
    napi_async_destroy(env, io->async);
    io->async = NULL;
  }
}

static void on_poll_closed(uv_handle_t *h) {
  wgtun_io *io = h->data;
  io->poll_state = WGTUN_POLL_NONE;
  if (io->cleanup != NULL) {
    napi_remove_async_cleanup_hook(io->cleanup);
    io->cleanup = NULL;
  }
  io_release(io);
}

static void stop_polling(wgtun_io *io) {
  if (!io->polling) return;
  io->polling = 0;
  uv_poll_stop(&io->poll);
  napi_reference_unref(io->env, io->self, NULL);
}

void wgtun_io_shutdown(wgtun_io *io) {
  if (io->closed) return;
  io->closed = 1;
  stop_polling(io);
  if (io->poll_state == WGTUN_POLL_OPEN) {
    io->poll_state = WGTUN_POLL_CLOSING;
    uv_close((uv_handle_t *)&io->poll, on_poll_closed);
  }
  /* uv_poll_stop removed the fd from epoll above, so closing it now is safe. */
  if (io->fd >= 0) {
    close(io->fd);
    io->fd = -1;
  }
  if (!io->in_callback) io_release_js(io);
}

/* The environment is going away (process exit or a worker ending): close while the loop still runs. */
static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  wgtun_io *io = arg;
  (void)handle;
  wgtun_io_shutdown(io);
  /* With a poll handle still closing, on_poll_closed removes the hook once it is closed. */
  if (io->poll_state == WGTUN_POLL_NONE && io->cleanup != NULL) {
    napi_remove_async_cleanup_hook(io->cleanup);
    io->cleanup = NULL;
  }
}

static void on_finalize(napi_env env, void *data, void *hint) {
  wgtun_io *io = data;
  (void)hint;
  wgtun_io_shutdown(io);
  io_release_js(io);
  if (io->self != NULL) {
    napi_delete_reference(env, io->self);
    io->self = NULL;
  }
  io_release(io);
}

/* Calls the JS callback once: cb(count) for a batch, or cb(-1, error) when the fd is dead. */
static void deliver(wgtun_io *io, int count, int err, const char *syscall) {
  napi_env env = io->env;
  napi_handle_scope scope;
  napi_value cb, recv, argv[2];
  size_t argc = 1;
  napi_status status;

  if (io->callback == NULL) return;
  napi_open_handle_scope(env, &scope);
  napi_get_reference_value(env, io->callback, &cb);
  napi_get_reference_value(env, io->self, &recv);
  napi_create_int32(env, count, &argv[0]);
  if (err != 0) {
    char msg[200];
    char name[64];
    wgtun_errno_name(err, name, sizeof name);
    if (err == EBADFD)
      snprintf(msg, sizeof msg, "%s is gone (%s): the interface was deleted; create it again",
               io->label, name);
    else
      snprintf(msg, sizeof msg, "%s failed (%s): %s; close it and open it again", io->label,
               name, strerror(err));
    argv[1] = wgtun_errno_error(env, err, syscall, msg);
    argc = 2;
  }
  io->in_callback = 1;
  status = napi_make_callback(env, io->async, recv, cb, argc, argv, NULL);
  io->in_callback = 0;
  if (status == napi_pending_exception) {
    /* No JS frame is below us: hand the exception to process 'uncaughtException' like Node's own
     * event callbacks do, instead of losing it. */
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
  if (io->closed) io_release_js(io);
  napi_close_handle_scope(env, scope);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  wgtun_io *io = h->data;
  int n;
  (void)events;
  if (io->closed) return;
  n = io->read_batch(io);
  if (n > 0) {
    io->poll_errors = 0;
    io->stats.rx_batches++;
    deliver(io, n, 0, "read");
    if (io->closed) return;
  }
  if (n < 0) {
    io->stats.last_errno = -n;
    stop_polling(io);
    deliver(io, -1, -n, "read");
    return;
  }
  if (status < 0 && io->polling) {
    /* POLLERR with nothing fatal to read (a socket's queued error, now cleared): libuv stopped the
     * handle, so start it again unless this keeps happening. */
    int soerr = 0;
    socklen_t len = sizeof soerr;
    getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
    if (++io->poll_errors > WGTUN_MAX_POLL_ERRORS) {
      int err = soerr != 0 ? soerr : EIO;
      io->stats.last_errno = err;
      stop_polling(io);
      deliver(io, -1, err, "poll");
      return;
    }
    uv_poll_start(&io->poll, UV_READABLE, on_poll);
  }
}

static size_t align_up(size_t n) { return (n + WGTUN_ALIGN - 1) & ~(size_t)(WGTUN_ALIGN - 1); }

static int define_view(napi_env env, napi_value self, napi_value ab, const char *name,
                       napi_typedarray_type type, size_t length, size_t offset) {
  napi_value view;
  napi_property_descriptor d = {0};
  if (napi_create_typedarray(env, type, length, ab, offset, &view) != napi_ok) return -1;
  d.utf8name = name;
  d.value = view;
  d.attributes = napi_enumerable;
  return napi_define_properties(env, self, 1, &d) == napi_ok ? 0 : -1;
}

wgtun_io *wgtun_io_new(napi_env env, napi_value self, int fd, uint32_t batch, uint32_t slot,
                       uint32_t rx_cap, int with_meta, wgtun_read_batch_fn read_batch) {
  wgtun_io *io = calloc(1, sizeof *io);
  size_t ring = (size_t)batch * slot;
  size_t rx_idx = align_up((size_t)rx_cap * sizeof(uint32_t));
  size_t tx_idx = align_up((size_t)batch * sizeof(uint32_t));
  size_t rx_meta = with_meta ? align_up((size_t)rx_cap * WGTUN_META_STRIDE) : 0;
  size_t tx_meta = with_meta ? align_up((size_t)batch * WGTUN_META_STRIDE) : 0;
  size_t o_rx = 0, o_tx = align_up(ring), o_off = o_tx + align_up(ring), o_len = o_off + rx_idx,
         o_txlen = o_len + rx_idx, o_rxmeta = o_txlen + tx_idx, o_txmeta = o_rxmeta + rx_meta,
         total = o_txmeta + tx_meta;
  void *data = NULL;
  napi_value ab, name;
  uv_loop_t *loop = NULL;

  if (io == NULL) {
    close(fd);
    wgtun_throw_errno(env, ENOMEM, "malloc", "out of memory allocating an I/O ring");
    return NULL;
  }
  io->env = env;
  io->fd = fd;
  io->batch = batch;
  io->slot = slot;
  io->rx_cap = rx_cap;
  io->read_batch = read_batch;
  if (napi_create_arraybuffer(env, total, &data, &ab) != napi_ok) {
    close(fd);
    free(io);
    return NULL; /* V8 already threw (allocation failure) */
  }
  napi_create_reference(env, ab, 1, &io->buffers);
  io->rx = (uint8_t *)data + o_rx;
  io->tx = (uint8_t *)data + o_tx;
  io->rx_off = (uint32_t *)((uint8_t *)data + o_off);
  io->rx_len = (uint32_t *)((uint8_t *)data + o_len);
  io->tx_len = (uint32_t *)((uint8_t *)data + o_txlen);
  if (with_meta) {
    io->rx_meta = (uint8_t *)data + o_rxmeta;
    io->tx_meta = (uint8_t *)data + o_txmeta;
  }
  if (define_view(env, self, ab, "rxBuffer", napi_uint8_array, ring, o_rx) ||
      define_view(env, self, ab, "txBuffer", napi_uint8_array, ring, o_tx) ||
      define_view(env, self, ab, "rxOffsets", napi_uint32_array, rx_cap, o_off) ||
      define_view(env, self, ab, "rxLengths", napi_uint32_array, rx_cap, o_len) ||
      define_view(env, self, ab, "txLengths", napi_uint32_array, batch, o_txlen) ||
      (with_meta && (define_view(env, self, ab, "rxMeta", napi_uint8_array,
                                 (size_t)rx_cap * WGTUN_META_STRIDE, o_rxmeta) ||
                     define_view(env, self, ab, "txMeta", napi_uint8_array,
                                 (size_t)batch * WGTUN_META_STRIDE, o_txmeta)))) {
    napi_delete_reference(env, io->buffers);
    close(fd);
    free(io);
    return NULL;
  }
  if (napi_wrap(env, self, io, on_finalize, NULL, &io->self) != napi_ok) {
    napi_delete_reference(env, io->buffers);
    close(fd);
    free(io);
    return NULL;
  }
  io->refs = 1;
  napi_create_string_utf8(env, "wiremesh:io", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &io->async);
  napi_get_uv_event_loop(env, &loop);
  if (uv_poll_init(loop, &io->poll, fd) == 0) {
    io->poll.data = io;
    io->poll_state = WGTUN_POLL_OPEN;
    io->refs++;
  }
  napi_add_async_cleanup_hook(env, on_env_cleanup, io, &io->cleanup);
  return io;
}

wgtun_io *wgtun_io_unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  void *data = NULL;
  size_t zero = 0;
  if (napi_get_cb_info(env, info, argc != NULL ? argc : &zero, argv, &self, NULL) != napi_ok ||
      napi_unwrap(env, self, &data) != napi_ok || data == NULL) {
    wgtun_throw_type(env, "not a wg-tun native object");
    return NULL;
  }
  return data;
}

wgtun_io *wgtun_io_tx_count(napi_env env, napi_callback_info info, const char *usage,
                            uint32_t *count) {
  size_t argc = 1;
  napi_value argv[1];
  wgtun_io *io = wgtun_io_unwrap(env, info, &argc, argv);
  if (io == NULL) return NULL;
  if (argc < 1) {
    wgtun_throw_type(env, usage);
    return NULL;
  }
  if (wgtun_arg_u32(env, argv[0], "count", 0, io->batch, count) < 0) return NULL;
  if (io->closed) *count = 0;
  return io;
}

napi_value wgtun_io_start(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], undefined;
  napi_valuetype t = napi_undefined;
  wgtun_io *io = wgtun_io_unwrap(env, info, &argc, argv);
  if (io == NULL) return NULL;
  if (argc >= 1) napi_typeof(env, argv[0], &t);
  if (t != napi_function) return wgtun_throw_type(env, "start(callback): callback must be a function");
  if (io->closed) return wgtun_throw_errno(env, EBADF, "start", "the device is closed");
  if (io->poll_state != WGTUN_POLL_OPEN) return wgtun_throw_errno(env, EINVAL, "uv_poll_init", "this fd cannot be polled");
  if (io->callback != NULL) napi_delete_reference(env, io->callback);
  napi_create_reference(env, argv[0], 1, &io->callback);
  if (!io->polling) {
    int r = uv_poll_start(&io->poll, UV_READABLE, on_poll);
    if (r != 0) return wgtun_throw_errno(env, -r, "uv_poll_start", "cannot watch the fd");
    io->polling = 1;
    io->poll_errors = 0;
    napi_reference_ref(env, io->self, NULL);
  }
  napi_get_undefined(env, &undefined);
  return undefined;
}

napi_value wgtun_io_stop(napi_env env, napi_callback_info info) {
  napi_value undefined;
  wgtun_io *io = wgtun_io_unwrap(env, info, NULL, NULL);
  if (io == NULL) return NULL;
  stop_polling(io);
  napi_get_undefined(env, &undefined);
  return undefined;
}

napi_value wgtun_io_close(napi_env env, napi_callback_info info) {
  napi_value undefined;
  wgtun_io *io = wgtun_io_unwrap(env, info, NULL, NULL);
  if (io == NULL) return NULL;
  wgtun_io_shutdown(io);
  napi_get_undefined(env, &undefined);
  return undefined;
}

static void set_number(napi_env env, napi_value obj, const char *key, double v) {
  napi_value n;
  napi_create_double(env, v, &n);
  napi_set_named_property(env, obj, key, n);
}

napi_value wgtun_io_stats(napi_env env, napi_callback_info info) {
  napi_value obj, last;
  wgtun_io *io = wgtun_io_unwrap(env, info, NULL, NULL);
  if (io == NULL) return NULL;
  napi_create_object(env, &obj);
  set_number(env, obj, "rxPackets", io->stats.rx_packets);
  set_number(env, obj, "rxBatches", io->stats.rx_batches);
  set_number(env, obj, "rxMessages", io->stats.rx_messages);
  set_number(env, obj, "rxDroppedTruncated", io->stats.rx_dropped_truncated);
  set_number(env, obj, "rxDroppedKernel", io->stats.rx_dropped_kernel);
  set_number(env, obj, "rxErrors", io->stats.rx_errors);
  set_number(env, obj, "rxDroppedInvalid", io->stats.rx_dropped_invalid);
  set_number(env, obj, "txPackets", io->stats.tx_packets);
  set_number(env, obj, "txMessages", io->stats.tx_messages);
  set_number(env, obj, "txDroppedFull", io->stats.tx_dropped_full);
  set_number(env, obj, "txErrors", io->stats.tx_errors);
  if (io->stats.last_errno != 0) {
    char name[64];
    wgtun_errno_name(io->stats.last_errno, name, sizeof name);
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &last);
  } else {
    napi_get_undefined(env, &last);
  }
  napi_set_named_property(env, obj, "lastError", last);
  return obj;
}
