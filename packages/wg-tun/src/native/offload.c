/*
 * TCP/UDP segmentation and TCP coalescing for TUN offloads (offload.h). Segments follow the
 * kernel's GSO: each carries the super-segment's headers with its own lengths and checksums, IPv4
 * IDs counting up, TCP sequence numbers advanced, FIN and PSH on the last segment only, CWR on the
 * first only (RFC 3168 6.1.2). Coalescing is its inverse for what it accepts, so splitting a
 * coalesced write gives back the packets it was made of, byte for byte.
 */
#include "offload.h"

#include <string.h>

#define IPV4_MIN_HEADER 20
#define IPV6_HEADER 40
#define TCP_MIN_HEADER 20
#define UDP_HEADER 8
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPV4_MF 0x2000
#define IPV4_OFFSET_MASK 0x1fff
#define TCP_CSUM_OFFSET 16
#define UDP_CSUM_OFFSET 6
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_URG 0x20
#define TCP_CWR 0x80
#define MAX_IP_PACKET 65535u
#define OUT_ALIGN 8

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static uint16_t hdr16(const uint8_t *vnet, size_t at) {
  uint16_t v;
  memcpy(&v, vnet + at, 2); /* virtio_net_hdr on a TUN: native endian (legacy virtio) */
  return v;
}
static void put_hdr16(uint8_t *vnet, size_t at, uint16_t v) { memcpy(vnet + at, &v, 2); }

/* The one's-complement sum (RFC 1071) of len bytes as a big-endian 16-bit value, not folded to
 * its complement; len odd only for the last region of a sum. Adds the 32-bit halves of 64-bit
 * words in native order into 64-bit accumulators (no carry is lost below 2^31 words; four of them
 * keep the adds independent), then folds and swaps to network order (the sum is byte-order independent). */
static inline uint64_t load64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static uint32_t sum_bytes(const uint8_t *p, size_t len) {
  uint64_t a = 0, b = 0, c = 0, d = 0, s, w;
  uint32_t r;
  while (len >= 32) {
    uint64_t w0 = load64(p), w1 = load64(p + 8), w2 = load64(p + 16), w3 = load64(p + 24);
    a += (w0 & 0xffffffffu) + (w0 >> 32);
    b += (w1 & 0xffffffffu) + (w1 >> 32);
    c += (w2 & 0xffffffffu) + (w2 >> 32);
    d += (w3 & 0xffffffffu) + (w3 >> 32);
    p += 32;
    len -= 32;
  }
  while (len >= 8) {
    w = load64(p);
    a += (w & 0xffffffffu) + (w >> 32);
    p += 8;
    len -= 8;
  }
  if (len > 0) {
    w = 0;
    memcpy(&w, p, len);
    b += (w & 0xffffffffu) + (w >> 32);
  }
  s = a + b + c + d;
  s = (s & 0xffffffffu) + (s >> 32);
  s = (s & 0xffffffffu) + (s >> 32);
  s = (s & 0xffffffffu) + (s >> 32);
  r = (uint32_t)s;
  r = (r & 0xffff) + (r >> 16);
  r = (r & 0xffff) + (r >> 16);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  r = ((r & 0xff) << 8) | (r >> 8);
#endif
  return r;
}

/* sum_bytes of src while copying it to dst: one pass over the payload instead of two. */
static uint32_t sum_copy(uint8_t *dst, const uint8_t *src, size_t len) {
  uint64_t a = 0, b = 0, c = 0, d = 0, s;
  size_t done = 0;
  uint32_t r;
  while (len - done >= 32) {
    uint64_t w0 = load64(src + done), w1 = load64(src + done + 8), w2 = load64(src + done + 16),
             w3 = load64(src + done + 24);
    memcpy(dst + done, &w0, 8);
    memcpy(dst + done + 8, &w1, 8);
    memcpy(dst + done + 16, &w2, 8);
    memcpy(dst + done + 24, &w3, 8);
    a += (w0 & 0xffffffffu) + (w0 >> 32);
    b += (w1 & 0xffffffffu) + (w1 >> 32);
    c += (w2 & 0xffffffffu) + (w2 >> 32);
    d += (w3 & 0xffffffffu) + (w3 >> 32);
    done += 32;
  }
  memcpy(dst + done, src + done, len - done);
  s = a + b + c + d;
  s = (s & 0xffffffffu) + (s >> 32);
  s = (s & 0xffffffffu) + (s >> 32);
  s = (s & 0xffffffffu) + (s >> 32);
  r = (uint32_t)s;
  r = (r & 0xffff) + (r >> 16);
  r = (r & 0xffff) + (r >> 16);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  r = ((r & 0xff) << 8) | (r >> 8);
#endif
  return r + sum_bytes(src + done, len - done);
}

static uint16_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

/* The pseudo-header sum (RFC 793/768 for IPv4, RFC 8200 8.1 for IPv6) of an L4 length. */
static uint32_t pseudo_sum(const uint8_t *ip, int v6, uint8_t proto, uint32_t l4_len) {
  if (v6) return sum_bytes(ip + 8, 32) + (l4_len >> 16) + (l4_len & 0xffff) + proto;
  return sum_bytes(ip + 12, 8) + proto + l4_len;
}

static void ipv4_fix_checksum(uint8_t *ip, uint32_t ihl) {
  put16(ip + 10, 0);
  put16(ip + 10, (uint16_t)~fold(sum_bytes(ip, ihl)));
}

/* Parsed IP + L4 headers of one packet. */
typedef struct {
  int v6;
  uint32_t ihl, l4hl, hl; /* IP header, L4 header, both */
  uint8_t proto;
} headers;

/* Parses the IP header of pkt (exactly len bytes long as its length field says) and the TCP or
 * UDP header behind it; 0 or -1. IPv4 fragments and IPv6 extension headers are refused. */
static int parse_headers(const uint8_t *pkt, uint32_t len, headers *h) {
  uint8_t v = len > 0 ? pkt[0] >> 4 : 0;
  if (v == 4) {
    if (len < IPV4_MIN_HEADER) return -1;
    h->v6 = 0;
    h->ihl = (uint32_t)(pkt[0] & 15) * 4;
    if (h->ihl < IPV4_MIN_HEADER || h->ihl > len || get16(pkt + 2) != len) return -1;
    if (get16(pkt + 6) & (IPV4_MF | IPV4_OFFSET_MASK)) return -1;
    h->proto = pkt[9];
  } else if (v == 6) {
    if (len < IPV6_HEADER || (uint32_t)get16(pkt + 4) + IPV6_HEADER != len) return -1;
    h->v6 = 1;
    h->ihl = IPV6_HEADER;
    h->proto = pkt[6];
  } else {
    return -1;
  }
  if (h->proto == IPPROTO_TCP_) {
    if (len < h->ihl + TCP_MIN_HEADER) return -1;
    h->l4hl = (uint32_t)(pkt[h->ihl + 12] >> 4) * 4;
    if (h->l4hl < TCP_MIN_HEADER || h->ihl + h->l4hl > len) return -1;
  } else if (h->proto == IPPROTO_UDP_) {
    if (len < h->ihl + UDP_HEADER) return -1;
    h->l4hl = UDP_HEADER;
  } else {
    return -1;
  }
  h->hl = h->ihl + h->l4hl;
  return 0;
}

static size_t align_out(size_t n) { return (n + OUT_ALIGN - 1) & ~(size_t)(OUT_ALIGN - 1); }

/* Completes a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM): the field holds the pseudo-header
 * sum; the sum from csum_start to the end, that field included, is stored complemented. */
static int complete_checksum(uint8_t *pkt, uint32_t len, uint32_t start, uint32_t offset) {
  uint16_t c;
  if (start >= len || offset > len - start || len - start - offset < 2) return -1;
  c = (uint16_t)~fold(sum_bytes(pkt + start, len - start));
  if (c == 0 && offset == UDP_CSUM_OFFSET) c = 0xffff; /* UDP: 0 would mean "no checksum" */
  put16(pkt + start + offset, c);
  return 0;
}

int wgtun_vnet_split(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap, uint32_t *off,
                     uint32_t *len, uint32_t max) {
  const uint8_t *pkt = in + WGTUN_VNET_HDR_LEN;
  uint32_t plen, payload, gso_size, nseg, i, seq0 = 0;
  uint8_t gso_type, flags, tcp_flags = 0;
  uint16_t id0 = 0;
  size_t pos = 0, need = 0;
  headers h;

  if (in_len <= WGTUN_VNET_HDR_LEN || in_len - WGTUN_VNET_HDR_LEN > MAX_IP_PACKET)
    return WGTUN_SPLIT_INVALID;
  plen = (uint32_t)(in_len - WGTUN_VNET_HDR_LEN);
  flags = in[0];
  gso_type = in[1] & (uint8_t)~WGTUN_VNET_GSO_ECN;

  if (gso_type == WGTUN_VNET_GSO_NONE) {
    if (max < 1 || plen > out_cap) return WGTUN_SPLIT_NOROOM;
    memcpy(out, pkt, plen);
    if ((flags & WGTUN_VNET_F_NEEDS_CSUM) &&
        complete_checksum(out, plen, hdr16(in, 6), hdr16(in, 8)) < 0)
      return WGTUN_SPLIT_INVALID;
    off[0] = 0;
    len[0] = plen;
    return 1;
  }

  if (parse_headers(pkt, plen, &h) < 0) return WGTUN_SPLIT_INVALID;
  if (gso_type == WGTUN_VNET_GSO_TCPV4 ? (h.v6 || h.proto != IPPROTO_TCP_)
      : gso_type == WGTUN_VNET_GSO_TCPV6 ? (!h.v6 || h.proto != IPPROTO_TCP_)
      : gso_type == WGTUN_VNET_GSO_UDP_L4 ? h.proto != IPPROTO_UDP_
                                         : 1)
    return WGTUN_SPLIT_INVALID;
  gso_size = hdr16(in, 4);
  if (gso_size == 0) return WGTUN_SPLIT_INVALID;
  payload = plen - h.hl;
  nseg = payload == 0 ? 1 : (payload + gso_size - 1) / gso_size;
  if (nseg > max) return WGTUN_SPLIT_NOROOM;
  for (i = 0; i < nseg; i++) {
    uint32_t chunk = i + 1 < nseg ? gso_size : payload - i * gso_size;
    need = align_out(need) + h.hl + chunk;
  }
  if (need > out_cap) return WGTUN_SPLIT_NOROOM;

  if (!h.v6) id0 = get16(pkt + 4);
  if (h.proto == IPPROTO_TCP_) {
    seq0 = get32(pkt + h.ihl + 4);
    tcp_flags = pkt[h.ihl + 13];
  }
  for (i = 0; i < nseg; i++) {
    uint32_t chunk = i + 1 < nseg ? gso_size : payload - i * gso_size;
    uint32_t seglen = h.hl + chunk, l4len = seglen - h.ihl;
    uint8_t *o, *l4;
    uint32_t data_sum;
    uint16_t c;
    pos = align_out(pos);
    o = out + pos;
    l4 = o + h.ihl;
    memcpy(o, pkt, h.hl);
    data_sum = sum_copy(o + h.hl, pkt + h.hl + (size_t)i * gso_size, chunk);
    if (h.v6) {
      put16(o + 4, (uint16_t)l4len);
    } else {
      put16(o + 2, (uint16_t)seglen);
      put16(o + 4, (uint16_t)(id0 + i));
      ipv4_fix_checksum(o, h.ihl);
    }
    if (h.proto == IPPROTO_TCP_) {
      uint8_t f = tcp_flags;
      if (i + 1 < nseg) f &= (uint8_t)~(TCP_FIN | TCP_PSH);
      if (i > 0) f &= (uint8_t)~TCP_CWR;
      put32(l4 + 4, seq0 + i * gso_size);
      l4[13] = f;
      put16(l4 + TCP_CSUM_OFFSET, 0);
      c = (uint16_t)~fold(pseudo_sum(o, h.v6, IPPROTO_TCP_, l4len) + sum_bytes(l4, h.l4hl) +
                          data_sum);
      put16(l4 + TCP_CSUM_OFFSET, c);
    } else {
      put16(l4 + 4, (uint16_t)l4len);
      put16(l4 + UDP_CSUM_OFFSET, 0);
      c = (uint16_t)~fold(pseudo_sum(o, h.v6, IPPROTO_UDP_, l4len) + sum_bytes(l4, h.l4hl) +
                          data_sum);
      put16(l4 + UDP_CSUM_OFFSET, c == 0 ? 0xffff : c);
    }
    off[i] = (uint32_t)pos;
    len[i] = seglen;
    pos += seglen;
  }
  return (int)nseg;
}

/* ------------------------------------------------------------------ coalescing */

/* What coalescing needs of one TCP packet. */
typedef struct {
  headers h;
  uint32_t payload;
  int candidate; /* may start or join a group: ACK (PSH allowed), data, valid checksums */
} tcp_info;

static int tcp_checksums_valid(const uint8_t *pkt, uint32_t len, const headers *h) {
  if (!h->v6 && fold(sum_bytes(pkt, h->ihl)) != 0xffff) return 0;
  return fold(pseudo_sum(pkt, h->v6, IPPROTO_TCP_, len - h->ihl) +
              sum_bytes(pkt + h->ihl, len - h->ihl)) == 0xffff;
}

/* 0 when pkt is not a TCP packet we can key by flow (then it is written alone). */
static int parse_tcp(const uint8_t *pkt, uint32_t len, tcp_info *t) {
  uint8_t f;
  if (parse_headers(pkt, len, &t->h) < 0 || t->h.proto != IPPROTO_TCP_) return 0;
  t->payload = len - t->h.hl;
  f = pkt[t->h.ihl + 13];
  t->candidate = t->payload > 0 && (f & (uint8_t)~TCP_PSH) == TCP_ACK &&
                 get16(pkt + t->h.ihl + 18) == 0 && tcp_checksums_valid(pkt, len, &t->h);
  return 1;
}

/* Same addresses and ports (the IP version already matched through the header lengths). */
static int same_flow(const uint8_t *a, const uint8_t *b, const headers *h) {
  if (a[0] >> 4 != b[0] >> 4) return 0;
  if (h->v6 ? memcmp(a + 8, b + 8, 32) != 0 : memcmp(a + 12, b + 12, 8) != 0) return 0;
  return memcmp(a + h->ihl, b + h->ihl, 4) == 0;
}

/* Whether p (a candidate) continues group g, whose first packet is f, as its next segment. */
static int can_join(const wgtun_gro_group *g, const uint8_t *f, const uint8_t *p,
                    const tcp_info *t) {
  const headers *h = &t->h;
  const uint8_t *ft = f + h->ihl, *pt = p + h->ihl;
  if (g->count >= WGTUN_GRO_MAX_SEGMENTS || g->header_len != h->hl) return 0;
  if ((uint32_t)(f[0] >> 4) != (h->v6 ? 6u : 4u)) return 0;
  if (t->payload > g->gso_size || g->total_len + t->payload > MAX_IP_PACKET) return 0;
  if (h->v6) {
    if (memcmp(f, p, 4) != 0 || f[7] != p[7]) return 0; /* class, flow label, hop limit */
  } else {
    if (f[1] != p[1] || f[8] != p[8] || get16(f + 6) != get16(p + 6)) return 0; /* TOS, TTL, DF */
    if (get16(p + 4) != g->next_id) return 0;
  }
  if (get32(pt + 4) != g->next_seq) return 0;
  if (memcmp(ft + 8, pt + 8, 4) != 0 || memcmp(ft + 14, pt + 14, 2) != 0) return 0; /* ack, window */
  return memcmp(ft + TCP_MIN_HEADER, pt + TCP_MIN_HEADER, h->l4hl - TCP_MIN_HEADER) == 0;
}

/* Rewrites the first packet of a group of two or more into the super-segment's headers. */
static void seal_group(wgtun_gro_group *g, uint8_t *f, int last_psh) {
  uint32_t ihl = f[0] >> 4 == 6 ? IPV6_HEADER : (uint32_t)(f[0] & 15) * 4;
  uint32_t l4len = g->total_len - ihl;
  int v6 = f[0] >> 4 == 6;
  uint8_t *t = f + ihl;
  memset(g->vnet, 0, sizeof g->vnet);
  if (g->count < 2) return;
  if (v6) {
    put16(f + 4, (uint16_t)l4len);
  } else {
    put16(f + 2, (uint16_t)g->total_len);
    ipv4_fix_checksum(f, ihl);
  }
  if (last_psh) t[13] |= TCP_PSH;
  put16(t + TCP_CSUM_OFFSET, fold(pseudo_sum(f, v6, IPPROTO_TCP_, l4len)));
  g->vnet[0] = WGTUN_VNET_F_NEEDS_CSUM;
  g->vnet[1] = v6 ? WGTUN_VNET_GSO_TCPV6 : WGTUN_VNET_GSO_TCPV4;
  put_hdr16(g->vnet, 2, (uint16_t)g->header_len);
  put_hdr16(g->vnet, 4, (uint16_t)g->gso_size);
  put_hdr16(g->vnet, 6, (uint16_t)ihl);
  put_hdr16(g->vnet, 8, TCP_CSUM_OFFSET);
}

uint32_t wgtun_gro_coalesce(uint8_t *const *pkts, const uint32_t *lens, uint32_t n, uint32_t *next,
                            wgtun_gro_group *groups) {
  uint32_t open[WGTUN_GRO_MAX_FLOWS];
  uint8_t last_psh[WGTUN_GRO_MAX_FLOWS];
  uint32_t nopen = 0, ngroups = 0, i, j;
  tcp_info t;

  for (i = 0; i < n; i++) {
    const uint8_t *p = pkts[i];
    wgtun_gro_group *g;
    int found = -1, is_tcp = parse_tcp(p, lens[i], &t);
    next[i] = UINT32_MAX;
    if (is_tcp) {
      for (j = 0; j < nopen; j++)
        if (groups[open[j]].header_len == t.h.hl &&
            same_flow(pkts[groups[open[j]].head], p, &t.h)) {
          found = (int)j;
          break;
        }
    }
    if (found >= 0) {
      g = &groups[open[found]];
      if (t.candidate && can_join(g, pkts[g->head], p, &t)) {
        uint8_t f = p[t.h.ihl + 13];
        next[g->tail] = i;
        g->tail = i;
        g->count++;
        g->total_len += t.payload;
        g->next_seq = get32(p + t.h.ihl + 4) + t.payload;
        g->next_id = (uint16_t)(get16(p + 4) + 1);
        last_psh[found] = (f & TCP_PSH) != 0;
        if (t.payload < g->gso_size || (f & TCP_PSH)) g->open = 0;
        if (!g->open) {
          seal_group(g, pkts[g->head], last_psh[found]);
          open[found] = open[--nopen];
          last_psh[found] = last_psh[nopen];
        }
        continue;
      }
      /* The flow goes on without this group: it is complete, in order before this packet. */
      g->open = 0;
      seal_group(g, pkts[g->head], last_psh[found]);
      open[found] = open[--nopen];
      last_psh[found] = last_psh[nopen];
    }
    g = &groups[ngroups];
    memset(g, 0, sizeof *g);
    g->head = g->tail = i;
    g->count = 1;
    g->total_len = lens[i];
    if (is_tcp) {
      if (t.candidate && !(p[t.h.ihl + 13] & TCP_PSH)) {
        g->header_len = t.h.hl;
        g->gso_size = t.payload;
        g->next_seq = get32(p + t.h.ihl + 4) + t.payload;
        g->next_id = t.h.v6 ? 0 : (uint16_t)(get16(p + 4) + 1);
        g->open = 1;
        if (nopen == WGTUN_GRO_MAX_FLOWS) {
          /* the oldest open group is complete */
          seal_group(&groups[open[0]], pkts[groups[open[0]].head], last_psh[0]);
          groups[open[0]].open = 0;
          memmove(open, open + 1, (nopen - 1) * sizeof open[0]);
          memmove(last_psh, last_psh + 1, (nopen - 1) * sizeof last_psh[0]);
          nopen--;
        }
        open[nopen] = ngroups;
        last_psh[nopen] = 0;
        nopen++;
      }
    }
    if (!g->open) seal_group(g, pkts[g->head], 0);
    ngroups++;
  }
  for (j = 0; j < nopen; j++) {
    groups[open[j]].open = 0;
    seal_group(&groups[open[j]], pkts[groups[open[j]].head], last_psh[j]);
  }
  return ngroups;
}
