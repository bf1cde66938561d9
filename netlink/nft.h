/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The in-pod nftables rule set (shape in inpod.h), built with libnftnl.
 * Builders only write into a caller buffer (no I/O, no root: unit-testable
 * by parsing the buffer back); the I/O functions send through an nl_sock
 * opened on NETLINK_NETFILTER inside the pod netns.
 *
 * Every rule carries a counter and a userdata comment "warren:<name>"
 * (NFTNL_UDATA_RULE_COMMENT, so `nft list` shows it as the rule comment);
 * CHECK finds rules by that tag.
 */
#ifndef WARREN_NFT_H
#define WARREN_NFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/inpod_mode.h"
#include "netlink/nl.h"

/* A base chain we create. hook is NF_INET_*; type "nat"|"filter"|"route". */
struct nft_chain_spec {
	const char *table;
	const char *name;
	const char *type;
	uint32_t hook;
	int32_t prio;
};

/* A rule we create, identified by its tag. family: NFPROTO_IPV4,
 * NFPROTO_IPV6, or NFPROTO_UNSPEC for family-independent rules. inbound:
 * part of inbound capture, left out for a pod that bypasses it
 * (ambient.istio.io/bypass-inbound-capture, Istio's "ingress mode").
 * The per-interface reroutes of struct inpod_mode are not in this table:
 * their tags are NFT_REROUTE_TAG_PREFIX + the interface name. */
#define NFT_REROUTE_TAG_PREFIX "warren:nat-pre-reroute-"
struct nft_rule_spec {
	const char *table;
	const char *chain;
	const char *tag;
	uint8_t family;
	bool inbound;
};

/* The expected objects, in creation order. Static storage; never freed. */
size_t nft_inpod_tables(const char *const **out);
size_t nft_inpod_chains(const struct nft_chain_spec **out);
size_t nft_inpod_rules(const struct nft_rule_spec **out);

#define NFT_BATCH_MAX_MSGS 64

/* One batch under construction: buf (caller memory, cap bytes) receives
 * BATCH_BEGIN .. BATCH_END, message i having sequence number seq0 + i.
 * msg[] remembers what each message does so a failed sequence number can
 * be named (nft_batch_describe). No allocation; nothing to free. */
struct nft_batch {
	void *buf;
	size_t cap;
	size_t len;
	uint32_t seq0;
	size_t nmsg;
	struct {
		uint8_t kind;
		const char *table;
		const char *name;
	} msg[NFT_BATCH_MAX_MSGS];
	char reroute_tag[INPOD_MAX_REROUTE][sizeof(NFT_REROUTE_TAG_PREFIX) + INPOD_IFNAMSIZ];
};

/* Recommended buffer size for either batch. */
#define NFT_BATCH_BUFSZ 65536

void nft_batch_init(struct nft_batch *b, void *buf, size_t cap, uint32_t seq0);

/* The apply batch: for each table, add table + flush table (so a re-apply
 * reconciles) + add chains + append rules in the shape of mode (see
 * struct inpod_mode); all NLM_F_ACK. 0 or -errno (-ENOSPC when buf is too
 * small, -ENOMEM). */
int nft_build_apply(struct nft_batch *b, const struct inpod_mode *mode);

/* The delete batch: add table + delete table for each table, so it never
 * fails when they are absent. 0 or -errno. */
int nft_build_delete(struct nft_batch *b);

/* Human description of the message with sequence number seq, e.g.
 * "add rule warren:nat-out-redirect-v4 to inet warren-nat output". */
void nft_batch_describe(const struct nft_batch *b, uint32_t seq, char *out, size_t outlen);

/* I/O. s must be a NETLINK_NETFILTER nl_sock. err gets a reason
 * (including the kernel's ext-ack text) on failure. 0 or -errno. */
int nft_apply(struct nl_sock *s, const struct inpod_mode *mode, char *err, size_t errlen);
int nft_delete(struct nl_sock *s, char *err, size_t errlen);

/* Is table (family inet) there? 1 yes, 0 no, -errno on error. */
int nft_table_exists(struct nl_sock *s, const char *table);

/* Fetch a chain of an inet table into *out: 0, -ENOENT when the table or
 * chain is absent, or -errno. nft_chain_matches() compares it with a spec
 * (type, hook and priority). */
struct nft_chain_info {
	char type[16];
	uint32_t hook;
	int32_t prio;
	bool has_hook;
};
int nft_chain_get(struct nl_sock *s, const char *table, const char *chain,
		  struct nft_chain_info *out);
bool nft_chain_matches(const struct nft_chain_info *ci, const struct nft_chain_spec *cs);

/* The tags found in one inet table, one entry per rule that has one. */
struct nft_tag {
	char chain[64];
	char tag[128];
	uint64_t handle;
};
struct nft_tags {
	struct nft_tag *v;
	size_t n, cap;
};

/* Dump the rules of inet table and collect their tags into *out (which
 * the caller frees with nft_tags_free, also on error). A missing table
 * yields an empty set. 0 or -errno. */
int nft_dump_tags(struct nl_sock *s, const char *table, struct nft_tags *out, char *err,
		  size_t errlen);
void nft_tags_free(struct nft_tags *t);
const struct nft_tag *nft_tags_find(const struct nft_tags *t, const char *chain,
				    const char *tag);

/* Tag of a parsed rule's userdata comment into out ("" if none). Exposed
 * for tests. Returns true when a comment was found. */
struct nftnl_rule;
bool nft_rule_tag(const struct nftnl_rule *r, char *out, size_t outlen);

#endif
