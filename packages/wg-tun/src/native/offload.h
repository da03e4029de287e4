/*
 * TUN offloads (IFF_VNET_HDR, TUNSETOFFLOAD): every read and write carries a virtio_net_hdr
 * (include/uapi/linux/virtio_net.h, 10 bytes, native endian on a TUN). Reads may be TCP or UDP
 * super-segments of up to 64 KiB that we split into MTU-sized packets (the kernel's GSO done here);
 * writes may be consecutive TCP segments of one flow coalesced into one super-segment (GRO).
 */
#ifndef WGTUN_OFFLOAD_H
#define WGTUN_OFFLOAD_H

#include <stddef.h>
#include <stdint.h>

#define WGTUN_VNET_HDR_LEN 10

/* virtio_net_hdr flags and gso_type values. */
#define WGTUN_VNET_F_NEEDS_CSUM 1
#define WGTUN_VNET_GSO_NONE 0
#define WGTUN_VNET_GSO_TCPV4 1
#define WGTUN_VNET_GSO_UDP 3
#define WGTUN_VNET_GSO_TCPV6 4
#define WGTUN_VNET_GSO_UDP_L4 5
#define WGTUN_VNET_GSO_ECN 0x80

/* wgtun_vnet_split's results other than a packet count. */
#define WGTUN_SPLIT_INVALID (-1) /* a header or packet that cannot be split: a counted drop */
#define WGTUN_SPLIT_NOROOM (-2)  /* the packets do not fit in the room given */

/* Most packets coalesced into one write: bounds the writev's iovec array. */
#define WGTUN_GRO_MAX_SEGMENTS 64
/* TCP flows with a group open at once in one write batch. */
#define WGTUN_GRO_MAX_FLOWS 16

/*
 * Splits one read from a TUN with IFF_VNET_HDR (`in`: the header, then one IP packet) into IP
 * packets with complete checksums, written to `out` at 8-byte aligned offsets; their offsets and
 * lengths go to off[] and len[]. Returns how many, WGTUN_SPLIT_NOROOM when they would not fit in
 * out_cap bytes or `max` packets (nothing counted then), or WGTUN_SPLIT_INVALID.
 */
int wgtun_vnet_split(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap, uint32_t *off,
                     uint32_t *len, uint32_t max);

/* One write of a coalesced batch: packets head, next[head], ... (count of them) behind `vnet`. */
typedef struct {
  uint8_t vnet[WGTUN_VNET_HDR_LEN];
  uint32_t head, tail, count;
  uint32_t header_len;  /* IP + TCP header bytes of each member */
  uint32_t gso_size;    /* TCP payload bytes of each member but the last */
  uint32_t total_len;   /* the coalesced packet's length */
  uint32_t next_seq;    /* the sequence number the next member must carry */
  uint16_t next_id;     /* IPv4: the IP ID the next member must carry */
  uint8_t open;
} wgtun_gro_group;

/*
 * Groups n IP packets for writing to a TUN with IFF_VNET_HDR, in order per flow: consecutive
 * in-order TCP segments of one flow with valid checksums (ACK, PSH on the last only, the same
 * options) become one group whose first packet is rewritten in place into the super-segment's
 * header (lengths, partial checksum) and whose header asks the kernel for TCP segmentation; every
 * other packet is a group of one with a zero header. next[] (n entries) links each group's members.
 * groups[] needs room for n. Returns the number of groups.
 */
uint32_t wgtun_gro_coalesce(uint8_t *const *pkts, const uint32_t *lens, uint32_t n, uint32_t *next,
                            wgtun_gro_group *groups);

#endif
