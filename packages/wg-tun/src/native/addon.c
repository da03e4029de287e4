/*
 * Entry point of the wg-tun Node-API addon (wgtun.node): the Tun and Udp classes, the address
 * helpers, and the layout constants the TypeScript wrappers check against their own.
 */
#include "io.h"

static void set_u32(napi_env env, napi_value obj, const char *key, uint32_t v) {
  napi_value n;
  napi_create_uint32(env, v, &n);
  napi_set_named_property(env, obj, key, n);
}

static napi_value init(napi_env env, napi_value exports) {
  wgtun_tun_init(env, exports);
  wgtun_udp_init(env, exports);
  set_u32(env, exports, "META_STRIDE", WGTUN_META_STRIDE);
  set_u32(env, exports, "MAX_BATCH", WGTUN_MAX_BATCH);
  set_u32(env, exports, "MIN_SLOT", WGTUN_MIN_SLOT);
  set_u32(env, exports, "MAX_SLOT", WGTUN_MAX_SLOT);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
