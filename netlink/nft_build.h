/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to netlink/: the libnftnl building blocks that the in-pod rule
 * set (nft.c) and the node's host table (nft_host.c) share.
 *
 * nx_*: append one match or statement to a rule under construction. The
 * value goes through register 1; each returns 0 or -ENOMEM (nx_addr also
 * -EINVAL for an unparsable address).
 *
 * nftb_*: append one message to a struct nft_batch (nft.h) opened with
 * nftb_open() and finished with nftb_close(), which writes the batch end
 * and the length. They return 0 or -errno (-ENOSPC when the buffer or the
 * message table is full). No allocation survives a call.
 */
#ifndef WARREN_NFT_BUILD_H
#define WARREN_NFT_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libmnl/libmnl.h>

#include "netlink/nft.h"

struct nftnl_rule;
struct nftnl_expr;

/* What each message of a batch does, for nft_batch_describe(). */
enum nftb_msg_kind {
	MK_BATCH,
	MK_ADD_TABLE,
	MK_FLUSH_TABLE,
	MK_DEL_TABLE,
	MK_ADD_CHAIN,
	MK_ADD_RULE,
	MK_ADD_SET,
	MK_FLUSH_SET,
	MK_ADD_ELEMS,
};

#define TRY(x)                    \
	do {                      \
		ret = (x);        \
		if (ret < 0)      \
			return ret; \
	} while (0)

int nx_add(struct nftnl_rule *r, struct nftnl_expr *e);
int nx_meta_load(struct nftnl_rule *r, uint32_t key);
int nx_meta_set(struct nftnl_rule *r, uint32_t key);
int nx_ct_load(struct nftnl_rule *r, uint32_t key);
int nx_ct_set(struct nftnl_rule *r, uint32_t key);
int nx_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len);
int nx_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len);
int nx_bitwise(struct nftnl_rule *r, uint32_t mask, uint32_t xor);
int nx_counter(struct nftnl_rule *r);
int nx_accept(struct nftnl_rule *r);
int nx_redirect(struct nftnl_rule *r, uint16_t port);
int nx_nfproto(struct nftnl_rule *r, uint8_t fam);
int nx_tcp(struct nftnl_rule *r);
/* ip/ip6 saddr or daddr OP addr (text). Caller has matched nfproto. */
int nx_addr(struct nftnl_rule *r, uint8_t fam, bool daddr, uint32_t op, const char *addr);
int nx_dport(struct nftnl_rule *r, uint32_t op, uint16_t port);
/* meta mark (or ct mark) & 0xfff OP value */
int nx_mark(struct nftnl_rule *r, bool ct, uint32_t op, uint32_t value);
/* meta oifname/iifname == ifname, zero padded: an exact match */
int nx_ifname(struct nftnl_rule *r, uint32_t key, const char *ifname);
/* The rule's userdata comment (what `nft list` shows as comment). */
int nx_comment(struct nftnl_rule *r, const char *tag);

struct nftb {
	struct nft_batch *b;
	struct mnl_nlmsg_batch *mb;
};

int nftb_open(struct nftb *bl, struct nft_batch *b);
/* nftb_open() and the batch's begin marker; on failure there is nothing
 * to close. */
int nftb_begin(struct nftb *bl, struct nft_batch *b);
/* ret: the building so far; the batch end is written only when ret >= 0.
 * Returns ret, or the end marker's error. */
int nftb_close(struct nftb *bl, int ret);
int nftb_marker(struct nftb *bl, bool begin);
struct nlmsghdr *nftb_msg_start(struct nftb *bl, uint16_t type, uint16_t flags);
int nftb_msg_end(struct nftb *bl, uint8_t kind, const char *table, const char *name);
int nftb_table(struct nftb *bl, uint16_t type, uint16_t flags, uint8_t kind, const char *name);
/* "flush table": every rule of the table goes; chains and sets stay. */
int nftb_flush_table(struct nftb *bl, const char *table);
int nftb_chain(struct nftb *bl, const struct nft_chain_spec *cs);
/* add table + delete table: the delete then never fails on an absent one. */
int nftb_remove_table(struct nftb *bl, const char *table);

/* One batch from start to end: a buffer of cap bytes, build(b, ctx), then
 * the exchange with the kernel. 0 or -errno; err (may be NULL) then says
 * "building the nftables batch: <why>" or "nftables <op> failed at
 * \"<message>\": <the kernel's words, ext-ack included><hint>". */
typedef int (*nftb_build_fn)(struct nft_batch *b, const void *ctx);
int nftb_run(struct nl_sock *s, size_t cap, nftb_build_fn build, const void *ctx, const char *op,
	     const char *hint, char *err, size_t errlen);

#endif
