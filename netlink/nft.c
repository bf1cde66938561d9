/* SPDX-License-Identifier: Apache-2.0 */
/*
 * In-pod nftables rule set (contract in nft.h). The expressions are the
 * ones `nft` itself generates for the textual rules in inpod.h (checked
 * with `nft --debug=netlink`): in the inet family, network-header loads
 * are guarded by `meta nfproto`, transport loads by `meta l4proto tcp`.
 */
#include "netlink/nft.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "conf/warren.h"

enum rule_kind {
	RK_PROBE_SADDR_ACCEPT, /* meta l4proto tcp ip saddr PROBE accept */
	RK_PRE_REDIRECT,       /* ip daddr != lo tcp dport != 15008 mark&0xfff != 0x539 redirect :15006 */
	RK_PROBE_DADDR_ACCEPT, /* meta l4proto tcp ip daddr PROBE accept */
	RK_MARK_ACCEPT,        /* meta l4proto tcp mark&0xfff == 0x111 accept */
	RK_LO_ACCEPT,          /* oifname lo ip daddr != lo accept */
	RK_OUT_REDIRECT,       /* meta l4proto tcp ip daddr != lo mark&0xfff != 0x539 redirect :15001 */
	RK_CONNMARK_SET,       /* mark&0xfff == 0x539 ct mark set ct mark & 0xfffff000 | 0x111 */
	RK_MARK_RESTORE,       /* ct mark&0xfff == 0x111 meta mark set ct mark */
	RK_REROUTE,            /* iifname IF meta l4proto tcp redirect :15001 */
};

enum msg_kind { MK_BATCH, MK_ADD_TABLE, MK_FLUSH_TABLE, MK_DEL_TABLE, MK_ADD_CHAIN, MK_ADD_RULE };

static const char *const tables[] = { NFT_TABLE_NAT, NFT_TABLE_MANGLE };

static const struct nft_chain_spec chains[] = {
	{ NFT_TABLE_NAT, "prerouting", "nat", NF_INET_PRE_ROUTING, -100 },
	{ NFT_TABLE_NAT, "output", "nat", NF_INET_LOCAL_OUT, -100 },
	{ NFT_TABLE_MANGLE, "prerouting", "filter", NF_INET_PRE_ROUTING, -150 },
	{ NFT_TABLE_MANGLE, "output", "route", NF_INET_LOCAL_OUT, -150 },
};

#define V4 NFPROTO_IPV4
#define V6 NFPROTO_IPV6
#define ANY NFPROTO_UNSPEC

static const struct nft_rule_spec rules[] = {
	{ NFT_TABLE_NAT, "prerouting", "warren:nat-pre-probe-accept-v4", V4, true },
	{ NFT_TABLE_NAT, "prerouting", "warren:nat-pre-probe-accept-v6", V6, true },
	{ NFT_TABLE_NAT, "prerouting", "warren:nat-pre-redirect-v4", V4, true },
	{ NFT_TABLE_NAT, "prerouting", "warren:nat-pre-redirect-v6", V6, true },
	{ NFT_TABLE_NAT, "output", "warren:nat-out-probe-accept-v4", V4, false },
	{ NFT_TABLE_NAT, "output", "warren:nat-out-probe-accept-v6", V6, false },
	{ NFT_TABLE_NAT, "output", "warren:nat-out-mark-accept", ANY, false },
	{ NFT_TABLE_NAT, "output", "warren:nat-out-lo-accept-v4", V4, false },
	{ NFT_TABLE_NAT, "output", "warren:nat-out-lo-accept-v6", V6, false },
	{ NFT_TABLE_NAT, "output", "warren:nat-out-redirect-v4", V4, false },
	{ NFT_TABLE_NAT, "output", "warren:nat-out-redirect-v6", V6, false },
	{ NFT_TABLE_MANGLE, "prerouting", "warren:mangle-pre-connmark-set", ANY, false },
	{ NFT_TABLE_MANGLE, "output", "warren:mangle-out-mark-restore", ANY, false },
};

static const enum rule_kind rule_kinds[] = {
	RK_PROBE_SADDR_ACCEPT, RK_PROBE_SADDR_ACCEPT, RK_PRE_REDIRECT, RK_PRE_REDIRECT,
	RK_PROBE_DADDR_ACCEPT, RK_PROBE_DADDR_ACCEPT, RK_MARK_ACCEPT,	RK_LO_ACCEPT,
	RK_LO_ACCEPT,	       RK_OUT_REDIRECT,	      RK_OUT_REDIRECT,	RK_CONNMARK_SET,
	RK_MARK_RESTORE,
};

_Static_assert(ARRAY_SIZE(rules) == ARRAY_SIZE(rule_kinds), "one kind per rule");
_Static_assert(2 + ARRAY_SIZE(tables) * 2 + ARRAY_SIZE(chains) + ARRAY_SIZE(rules) +
			       INPOD_MAX_REROUTE <=
		       NFT_BATCH_MAX_MSGS,
	       "apply batch fits nft_batch.msg[]");

size_t nft_inpod_tables(const char *const **out)
{
	*out = tables;
	return ARRAY_SIZE(tables);
}

size_t nft_inpod_chains(const struct nft_chain_spec **out)
{
	*out = chains;
	return ARRAY_SIZE(chains);
}

size_t nft_inpod_rules(const struct nft_rule_spec **out)
{
	*out = rules;
	return ARRAY_SIZE(rules);
}

/* ---- expression helpers: each returns 0 or -ENOMEM ---- */

static int add_expr(struct nftnl_rule *r, struct nftnl_expr *e)
{
	if (!e)
		return -ENOMEM;
	nftnl_rule_add_expr(r, e);
	return 0;
}

static int e_meta_load(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	}
	return add_expr(r, e);
}

static int e_meta_set(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, NFT_REG_1);
	}
	return add_expr(r, e);
}

static int e_ct_load(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("ct");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	}
	return add_expr(r, e);
}

static int e_ct_set(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("ct");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_SREG, NFT_REG_1);
	}
	return add_expr(r, e);
}

static int e_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
		nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	}
	return add_expr(r, e);
}

static int e_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("payload");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	}
	return add_expr(r, e);
}

/* reg1 = (reg1 & mask) ^ xor, on a host-order u32 (marks). */
static int e_bitwise(struct nftnl_rule *r, uint32_t mask, uint32_t xor)
{
	struct nftnl_expr *e = nftnl_expr_alloc("bitwise");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(uint32_t));
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &xor, sizeof(xor));
	}
	return add_expr(r, e);
}

static int e_counter(struct nftnl_rule *r)
{
	return add_expr(r, nftnl_expr_alloc("counter"));
}

static int e_accept(struct nftnl_rule *r)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT);
	}
	return add_expr(r, e);
}

/* redirect to :port: the port goes into a register in network byte
 * order, and redir reads REG_PROTO_MIN from it. */
static int e_redirect(struct nftnl_rule *r, uint16_t port)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");
	uint16_t be = htons(port);
	int ret;

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
		nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &be, sizeof(be));
	}
	ret = add_expr(r, e);
	if (ret < 0)
		return ret;
	e = nftnl_expr_alloc("redir");
	if (e)
		nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
	return add_expr(r, e);
}

static int m_nfproto(struct nftnl_rule *r, uint8_t fam)
{
	int ret = e_meta_load(r, NFT_META_NFPROTO);

	return ret < 0 ? ret : e_cmp(r, NFT_CMP_EQ, &fam, sizeof(fam));
}

static int m_tcp(struct nftnl_rule *r)
{
	uint8_t proto = IPPROTO_TCP;
	int ret = e_meta_load(r, NFT_META_L4PROTO);

	return ret < 0 ? ret : e_cmp(r, NFT_CMP_EQ, &proto, sizeof(proto));
}

/* ip/ip6 saddr or daddr OP addr. Caller has matched nfproto already. */
static int m_addr(struct nftnl_rule *r, uint8_t fam, bool daddr, uint32_t op, const char *addr)
{
	unsigned char buf[16];
	uint32_t off, len;
	int ret;

	if (fam == NFPROTO_IPV4) {
		off = daddr ? 16 : 12;
		len = 4;
	} else {
		off = daddr ? 24 : 8;
		len = 16;
	}
	if (inet_pton(fam == NFPROTO_IPV4 ? AF_INET : AF_INET6, addr, buf) != 1)
		return -EINVAL;
	ret = e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, off, len);
	return ret < 0 ? ret : e_cmp(r, op, buf, len);
}

static int m_dport(struct nftnl_rule *r, uint32_t op, uint16_t port)
{
	uint16_t be = htons(port);
	int ret = e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, sizeof(be));

	return ret < 0 ? ret : e_cmp(r, op, &be, sizeof(be));
}

/* meta mark (or ct mark) & 0xfff OP value */
static int m_mark(struct nftnl_rule *r, bool ct, uint32_t op, uint32_t value)
{
	int ret = ct ? e_ct_load(r, NFT_CT_MARK) : e_meta_load(r, NFT_META_MARK);

	if (ret >= 0)
		ret = e_bitwise(r, MARK_MASK, 0);
	return ret < 0 ? ret : e_cmp(r, op, &value, sizeof(value));
}

/* meta oifname/iifname == ifname, zero padded to IFNAMSIZ: an exact match */
static int m_ifname(struct nftnl_rule *r, uint32_t key, const char *ifname)
{
	char name[INPOD_IFNAMSIZ] = "";
	int ret = e_meta_load(r, key);

	snprintf(name, sizeof(name), "%s", ifname);
	return ret < 0 ? ret : e_cmp(r, NFT_CMP_EQ, name, sizeof(name));
}

#define TRY(x)                    \
	do {                      \
		ret = (x);        \
		if (ret < 0)      \
			return ret; \
	} while (0)

/* ifname: only for RK_REROUTE. */
static int build_exprs(struct nftnl_rule *r, enum rule_kind k, uint8_t fam, const char *ifname)
{
	const char *lo = fam == NFPROTO_IPV4 ? "127.0.0.1" : "::1";
	const char *probe = fam == NFPROTO_IPV4 ? PROBE_SNAT_IPV4 : PROBE_SNAT_IPV6;
	int ret;

	switch (k) {
	case RK_PROBE_SADDR_ACCEPT:
	case RK_PROBE_DADDR_ACCEPT:
		TRY(m_nfproto(r, fam));
		TRY(m_tcp(r));
		TRY(m_addr(r, fam, k == RK_PROBE_DADDR_ACCEPT, NFT_CMP_EQ, probe));
		TRY(e_counter(r));
		return e_accept(r);
	case RK_PRE_REDIRECT:
		TRY(m_nfproto(r, fam));
		TRY(m_addr(r, fam, true, NFT_CMP_NEQ, lo));
		TRY(m_tcp(r));
		TRY(m_dport(r, NFT_CMP_NEQ, PORT_INBOUND_HBONE));
		TRY(m_mark(r, false, NFT_CMP_NEQ, MARK_TUNNEL));
		TRY(e_counter(r));
		return e_redirect(r, PORT_INBOUND_PLAIN);
	case RK_MARK_ACCEPT:
		TRY(m_tcp(r));
		TRY(m_mark(r, false, NFT_CMP_EQ, MARK_CONN));
		TRY(e_counter(r));
		return e_accept(r);
	case RK_LO_ACCEPT:
		TRY(m_ifname(r, NFT_META_OIFNAME, "lo"));
		TRY(m_nfproto(r, fam));
		TRY(m_addr(r, fam, true, NFT_CMP_NEQ, lo));
		TRY(e_counter(r));
		return e_accept(r);
	case RK_OUT_REDIRECT:
		TRY(m_nfproto(r, fam));
		TRY(m_tcp(r));
		TRY(m_addr(r, fam, true, NFT_CMP_NEQ, lo));
		TRY(m_mark(r, false, NFT_CMP_NEQ, MARK_TUNNEL));
		TRY(e_counter(r));
		return e_redirect(r, PORT_OUTBOUND);
	case RK_CONNMARK_SET:
		TRY(m_mark(r, false, NFT_CMP_EQ, MARK_TUNNEL));
		TRY(e_counter(r));
		TRY(e_ct_load(r, NFT_CT_MARK));
		TRY(e_bitwise(r, ~MARK_MASK, MARK_CONN));
		return e_ct_set(r, NFT_CT_MARK);
	case RK_MARK_RESTORE:
		TRY(m_mark(r, true, NFT_CMP_EQ, MARK_CONN));
		TRY(e_counter(r));
		TRY(e_ct_load(r, NFT_CT_MARK));
		return e_meta_set(r, NFT_META_MARK);
	case RK_REROUTE:
		TRY(m_ifname(r, NFT_META_IIFNAME, ifname));
		TRY(m_tcp(r));
		TRY(e_counter(r));
		return e_redirect(r, PORT_OUTBOUND);
	}
	return -EINVAL;
}

/* ---- batch building ---- */

void nft_batch_init(struct nft_batch *b, void *buf, size_t cap, uint32_t seq0)
{
	memset(b, 0, sizeof(*b));
	b->buf = buf;
	b->cap = cap;
	b->seq0 = seq0;
}

struct builder {
	struct nft_batch *b;
	struct mnl_nlmsg_batch *mb;
};

static struct nlmsghdr *msg_start(struct builder *bl, uint16_t type, uint16_t flags)
{
	uint32_t seq = bl->b->seq0 + (uint32_t)bl->b->nmsg;

	return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(bl->mb), type, NFPROTO_INET, flags,
				     seq);
}

static int msg_end(struct builder *bl, uint8_t kind, const char *table, const char *name)
{
	struct nft_batch *b = bl->b;

	if (b->nmsg >= NFT_BATCH_MAX_MSGS || !mnl_nlmsg_batch_next(bl->mb))
		return -ENOSPC;
	b->msg[b->nmsg].kind = kind;
	b->msg[b->nmsg].table = table;
	b->msg[b->nmsg].name = name;
	b->nmsg++;
	return 0;
}

static int put_batch_marker(struct builder *bl, bool begin)
{
	uint32_t seq = bl->b->seq0 + (uint32_t)bl->b->nmsg;

	if (begin)
		nftnl_batch_begin(mnl_nlmsg_batch_current(bl->mb), seq);
	else
		nftnl_batch_end(mnl_nlmsg_batch_current(bl->mb), seq);
	return msg_end(bl, MK_BATCH, NULL, begin ? "begin" : "end");
}

static int put_table(struct builder *bl, uint16_t type, uint16_t flags, uint8_t kind,
		     const char *name)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;

	if (!t)
		return -ENOMEM;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
	nlh = msg_start(bl, type, flags);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	return msg_end(bl, kind, name, NULL);
}

/* "flush table": DELRULE naming only the table deletes all its rules. */
static int put_flush(struct builder *bl, const char *table)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nlmsghdr *nlh;

	if (!r)
		return -ENOMEM;
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nlh = msg_start(bl, NFT_MSG_DELRULE, NLM_F_ACK);
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	return msg_end(bl, MK_FLUSH_TABLE, table, NULL);
}

static int put_chain(struct builder *bl, const struct nft_chain_spec *cs)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh;

	if (!c)
		return -ENOMEM;
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, cs->table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, cs->name);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, cs->type);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, cs->hook);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, cs->prio);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	nlh = msg_start(bl, NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_ACK);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nftnl_chain_free(c);
	return msg_end(bl, MK_ADD_CHAIN, cs->table, cs->name);
}

/* One rule: spec is an element of rules[] (kind from rule_kinds[]), or a
 * reroute (spec->family NFPROTO_UNSPEC, ifname set). */
static int put_rule(struct builder *bl, const struct nft_rule_spec *rs, enum rule_kind kind,
		    const char *ifname)
{
	struct nftnl_udata_buf *ud = NULL;
	struct nftnl_rule *r = NULL;
	struct nlmsghdr *nlh;
	int ret;

	r = nftnl_rule_alloc();
	ud = nftnl_udata_buf_alloc(256);
	if (!r || !ud) {
		ret = -ENOMEM;
		goto out;
	}
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, rs->table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, rs->chain);
	if (!nftnl_udata_put_strz(ud, NFTNL_UDATA_RULE_COMMENT, rs->tag)) {
		ret = -ENOSPC;
		goto out;
	}
	nftnl_rule_set_data(r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(ud),
			    nftnl_udata_buf_len(ud));
	ret = build_exprs(r, kind, rs->family, ifname);
	if (ret < 0)
		goto out;
	nlh = msg_start(bl, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK);
	nftnl_rule_nlmsg_build_payload(nlh, r);
	ret = msg_end(bl, MK_ADD_RULE, rs->table, rs->tag);
out:
	nftnl_rule_free(r);
	nftnl_udata_buf_free(ud);
	return ret;
}

/* mnl_nlmsg_batch lets the last message run past its limit, so the limit
 * is half the buffer (libmnl's documented sizing); our messages are far
 * smaller than half of NFT_BATCH_BUFSZ. */
static int batch_open(struct builder *bl, struct nft_batch *b)
{
	if (!b->buf || b->cap < 4096)
		return -ENOSPC;
	b->len = 0;
	b->nmsg = 0;
	bl->b = b;
	bl->mb = mnl_nlmsg_batch_start(b->buf, b->cap / 2);
	return bl->mb ? 0 : -ENOMEM;
}

static int batch_close(struct builder *bl, int ret)
{
	if (ret >= 0)
		ret = put_batch_marker(bl, false);
	if (ret >= 0)
		bl->b->len = mnl_nlmsg_batch_size(bl->mb);
	else
		bl->b->len = 0;
	mnl_nlmsg_batch_stop(bl->mb);
	return ret;
}

int nft_build_apply(struct nft_batch *b, const struct inpod_mode *mode)
{
	struct builder bl;
	int ret;

	assert(mode->n_reroute <= INPOD_MAX_REROUTE);
	ret = batch_open(&bl, b);
	if (ret < 0)
		return ret;
	ret = put_batch_marker(&bl, true);
	for (size_t t = 0; ret >= 0 && t < ARRAY_SIZE(tables); t++) {
		ret = put_table(&bl, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_ACK, MK_ADD_TABLE,
				tables[t]);
		if (ret >= 0)
			ret = put_flush(&bl, tables[t]);
		for (size_t c = 0; ret >= 0 && c < ARRAY_SIZE(chains); c++)
			if (!strcmp(chains[c].table, tables[t]))
				ret = put_chain(&bl, &chains[c]);
		/* Reroutes first: the inbound redirect would take their packets. */
		for (size_t i = 0; ret >= 0 && i < mode->n_reroute && !strcmp(tables[t], NFT_TABLE_NAT); i++) {
			const struct nft_rule_spec rs = { NFT_TABLE_NAT, "prerouting", b->reroute_tag[i],
							  NFPROTO_UNSPEC, false };

			snprintf(b->reroute_tag[i], sizeof(b->reroute_tag[i]), "%s%s",
				 NFT_REROUTE_TAG_PREFIX, mode->reroute[i]);
			ret = put_rule(&bl, &rs, RK_REROUTE, mode->reroute[i]);
		}
		for (size_t i = 0; ret >= 0 && i < ARRAY_SIZE(rules); i++)
			if (!strcmp(rules[i].table, tables[t]) && (mode->capture_inbound || !rules[i].inbound))
				ret = put_rule(&bl, &rules[i], rule_kinds[i], NULL);
	}
	return batch_close(&bl, ret);
}

int nft_build_delete(struct nft_batch *b)
{
	struct builder bl;
	int ret;

	ret = batch_open(&bl, b);
	if (ret < 0)
		return ret;
	ret = put_batch_marker(&bl, true);
	for (size_t t = 0; ret >= 0 && t < ARRAY_SIZE(tables); t++) {
		/* Adding first makes the delete succeed when absent. */
		ret = put_table(&bl, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_ACK, MK_ADD_TABLE,
				tables[t]);
		if (ret >= 0)
			ret = put_table(&bl, NFT_MSG_DELTABLE, NLM_F_ACK, MK_DEL_TABLE, tables[t]);
	}
	return batch_close(&bl, ret);
}

void nft_batch_describe(const struct nft_batch *b, uint32_t seq, char *out, size_t outlen)
{
	size_t i = (size_t)(seq - b->seq0);

	if (!outlen)
		return;
	if (i >= b->nmsg) {
		snprintf(out, outlen, "nftables batch");
		return;
	}
	switch (b->msg[i].kind) {
	case MK_BATCH:
		snprintf(out, outlen, "nftables batch %s", b->msg[i].name);
		break;
	case MK_ADD_TABLE:
		snprintf(out, outlen, "add table inet %s", b->msg[i].table);
		break;
	case MK_FLUSH_TABLE:
		snprintf(out, outlen, "flush table inet %s", b->msg[i].table);
		break;
	case MK_DEL_TABLE:
		snprintf(out, outlen, "delete table inet %s", b->msg[i].table);
		break;
	case MK_ADD_CHAIN:
		snprintf(out, outlen, "add chain inet %s %s", b->msg[i].table, b->msg[i].name);
		break;
	case MK_ADD_RULE:
		snprintf(out, outlen, "add rule %s to inet %s", b->msg[i].name, b->msg[i].table);
		break;
	default:
		snprintf(out, outlen, "nftables batch message %zu", i);
	}
}

/* ---- I/O ---- */

/* mode: NULL for the delete batch. */
static int send_batch(struct nl_sock *s, const struct inpod_mode *mode, char *err, size_t errlen)
{
	struct nft_batch *b = NULL;
	void *buf = NULL;
	char kerr[384] = "", what[160];
	uint32_t err_seq = 0;
	int ret;

	b = malloc(sizeof(*b));
	buf = malloc(NFT_BATCH_BUFSZ);
	if (!b || !buf) {
		ret = -ENOMEM;
		goto out;
	}
	nft_batch_init(b, buf, NFT_BATCH_BUFSZ, nl_seq(s, NFT_BATCH_MAX_MSGS));
	ret = mode ? nft_build_apply(b, mode) : nft_build_delete(b);
	if (ret < 0) {
		if (err && errlen)
			snprintf(err, errlen, "building the nftables batch: %s", strerror(-ret));
		goto out;
	}
	ret = nl_talk(s, b->buf, b->len, 0, NULL, NULL, kerr, sizeof(kerr), &err_seq);
	if (ret < 0 && err && errlen) {
		nft_batch_describe(b, err_seq, what, sizeof(what));
		snprintf(err, errlen, "nftables %s failed at \"%s\": %s%s",
			 mode ? "apply" : "delete", what, kerr,
			 mode ? "; nothing was changed. Check that no other program owns "
				 "these tables and that the kernel has nf_tables with nat, "
				 "redir and ct support"
			       : "");
	}
out:
	free(buf);
	free(b);
	return ret;
}

int nft_apply(struct nl_sock *s, const struct inpod_mode *mode, char *err, size_t errlen)
{
	assert(mode);
	return send_batch(s, mode, err, errlen);
}

int nft_delete(struct nl_sock *s, char *err, size_t errlen)
{
	return send_batch(s, NULL, err, errlen);
}

int nft_table_exists(struct nl_sock *s, const char *table)
{
	char buf[512];
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;
	int ret;

	if (!t)
		return -ENOMEM;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK,
				    nl_seq(s, 1));
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	ret = nl_talk(s, buf, nlh->nlmsg_len, 0, NULL, NULL, NULL, 0, NULL);
	if (ret == -ENOENT)
		return 0;
	return ret < 0 ? ret : 1;
}

static int chain_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nft_chain_info *ci = data;
	struct nftnl_chain *c = nftnl_chain_alloc();
	const char *type;

	if (!c) {
		errno = ENOMEM;
		return MNL_CB_ERROR;
	}
	if (nftnl_chain_nlmsg_parse(nlh, c) < 0) {
		nftnl_chain_free(c);
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	type = nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE);
	snprintf(ci->type, sizeof(ci->type), "%s", type ? type : "");
	ci->has_hook = nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM);
	if (ci->has_hook) {
		ci->hook = nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM);
		ci->prio = nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO);
	}
	nftnl_chain_free(c);
	return MNL_CB_OK;
}

int nft_chain_get(struct nl_sock *s, const char *table, const char *chain,
		  struct nft_chain_info *out)
{
	char buf[512];
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh;

	memset(out, 0, sizeof(*out));
	if (!c)
		return -ENOMEM;
	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, chain);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETCHAIN, NFPROTO_INET, NLM_F_ACK,
				    nl_seq(s, 1));
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nftnl_chain_free(c);
	return nl_talk(s, buf, nlh->nlmsg_len, 0, chain_cb, out, NULL, 0, NULL);
}

bool nft_chain_matches(const struct nft_chain_info *ci, const struct nft_chain_spec *cs)
{
	return ci->has_hook && ci->hook == cs->hook && ci->prio == cs->prio &&
	       !strcmp(ci->type, cs->type);
}

static int udata_cb(const struct nftnl_udata *attr, void *data)
{
	const struct nftnl_udata **tb = data;
	uint8_t type = nftnl_udata_type(attr);

	if (type == NFTNL_UDATA_RULE_COMMENT)
		tb[type] = attr;
	return 0;
}

bool nft_rule_tag(const struct nftnl_rule *r, char *out, size_t outlen)
{
	const struct nftnl_udata *tb[NFTNL_UDATA_RULE_MAX + 1] = { 0 };
	const char *s;
	const void *ud;
	uint32_t len = 0, slen;

	if (outlen)
		out[0] = '\0';
	if (!nftnl_rule_is_set(r, NFTNL_RULE_USERDATA))
		return false;
	ud = nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len);
	if (!ud || nftnl_udata_parse(ud, len, udata_cb, tb) < 0 || !tb[NFTNL_UDATA_RULE_COMMENT])
		return false;
	s = nftnl_udata_get(tb[NFTNL_UDATA_RULE_COMMENT]);
	slen = nftnl_udata_len(tb[NFTNL_UDATA_RULE_COMMENT]);
	/* Userdata is opaque to the kernel: anyone may have written it. */
	if (!slen || s[slen - 1] != '\0' || slen > outlen)
		return false;
	memcpy(out, s, slen);
	return true;
}

struct dump_ctx {
	const char *table;
	struct nft_tags *tags;
};

static int tags_cb(const struct nlmsghdr *nlh, void *data)
{
	struct dump_ctx *dc = data;
	struct nft_tags *t = dc->tags;
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nft_tag tag = { 0 };
	const char *tbl, *chain;
	int ret = MNL_CB_OK;

	if (!r) {
		errno = ENOMEM;
		return MNL_CB_ERROR;
	}
	if (nftnl_rule_nlmsg_parse(nlh, r) < 0) {
		errno = EBADMSG;
		ret = MNL_CB_ERROR;
		goto out;
	}
	tbl = nftnl_rule_get_str(r, NFTNL_RULE_TABLE);
	chain = nftnl_rule_get_str(r, NFTNL_RULE_CHAIN);
	if (!tbl || strcmp(tbl, dc->table) || !chain ||
	    nftnl_rule_get_u32(r, NFTNL_RULE_FAMILY) != NFPROTO_INET ||
	    !nft_rule_tag(r, tag.tag, sizeof(tag.tag)))
		goto out;
	snprintf(tag.chain, sizeof(tag.chain), "%s", chain);
	tag.handle = nftnl_rule_get_u64(r, NFTNL_RULE_HANDLE);
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 16;
		struct nft_tag *nv = realloc(t->v, ncap * sizeof(*nv));

		if (!nv) {
			errno = ENOMEM;
			ret = MNL_CB_ERROR;
			goto out;
		}
		t->v = nv;
		t->cap = ncap;
	}
	t->v[t->n++] = tag;
out:
	nftnl_rule_free(r);
	return ret;
}

int nft_dump_tags(struct nl_sock *s, const char *table, struct nft_tags *out, char *err,
		  size_t errlen)
{
	char buf[512];
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct dump_ctx dc = { table, out };
	struct nlmsghdr *nlh;
	int ret;

	if (!r)
		return -ENOMEM;
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP,
				    nl_seq(s, 1));
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	ret = nl_talk(s, buf, nlh->nlmsg_len, NL_TALK_DUMP, tags_cb, &dc, err, errlen, NULL);
	if (ret == -ENOENT)
		ret = 0; /* no such table: no tags */
	return ret;
}

void nft_tags_free(struct nft_tags *t)
{
	if (!t)
		return;
	free(t->v);
	t->v = NULL;
	t->n = t->cap = 0;
}

const struct nft_tag *nft_tags_find(const struct nft_tags *t, const char *chain,
				    const char *tag)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].chain, chain) && !strcmp(t->v[i].tag, tag))
			return &t->v[i];
	return NULL;
}
