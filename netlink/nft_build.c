/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared libnftnl building blocks (contract in nft_build.h).
 */
#include "netlink/nft_build.h"

#include <arpa/inet.h>
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

#include "conf/errbuf.h"
#include "conf/warren.h"

/* ---- expression helpers: each returns 0 or -ENOMEM ---- */

int nx_add(struct nftnl_rule *r, struct nftnl_expr *e)
{
	if (!e)
		return -ENOMEM;
	nftnl_rule_add_expr(r, e);
	return 0;
}

int nx_meta_load(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	}
	return nx_add(r, e);
}

int nx_meta_set(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, NFT_REG_1);
	}
	return nx_add(r, e);
}

int nx_ct_load(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("ct");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	}
	return nx_add(r, e);
}

int nx_ct_set(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("ct");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_SREG, NFT_REG_1);
	}
	return nx_add(r, e);
}

int nx_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
		nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	}
	return nx_add(r, e);
}

int nx_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("payload");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	}
	return nx_add(r, e);
}

/* reg1 = (reg1 & mask) ^ xor, on a host-order u32 (marks). */
int nx_bitwise(struct nftnl_rule *r, uint32_t mask, uint32_t xor)
{
	struct nftnl_expr *e = nftnl_expr_alloc("bitwise");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(uint32_t));
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &xor, sizeof(xor));
	}
	return nx_add(r, e);
}

int nx_counter(struct nftnl_rule *r)
{
	return nx_add(r, nftnl_expr_alloc("counter"));
}

int nx_accept(struct nftnl_rule *r)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT);
	}
	return nx_add(r, e);
}

/* redirect to :port: the port goes into a register in network byte
 * order, and redir reads REG_PROTO_MIN from it. */
int nx_redirect(struct nftnl_rule *r, uint16_t port)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");
	uint16_t be = htons(port);
	int ret;

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
		nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &be, sizeof(be));
	}
	ret = nx_add(r, e);
	if (ret < 0)
		return ret;
	e = nftnl_expr_alloc("redir");
	if (e)
		nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
	return nx_add(r, e);
}

int nx_nfproto(struct nftnl_rule *r, uint8_t fam)
{
	int ret = nx_meta_load(r, NFT_META_NFPROTO);

	return ret < 0 ? ret : nx_cmp(r, NFT_CMP_EQ, &fam, sizeof(fam));
}

int nx_tcp(struct nftnl_rule *r)
{
	uint8_t proto = IPPROTO_TCP;
	int ret = nx_meta_load(r, NFT_META_L4PROTO);

	return ret < 0 ? ret : nx_cmp(r, NFT_CMP_EQ, &proto, sizeof(proto));
}

/* ip/ip6 saddr or daddr OP addr. Caller has matched nfproto already. */
int nx_addr(struct nftnl_rule *r, uint8_t fam, bool daddr, uint32_t op, const char *addr)
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
	ret = nx_payload(r, NFT_PAYLOAD_NETWORK_HEADER, off, len);
	return ret < 0 ? ret : nx_cmp(r, op, buf, len);
}

int nx_dport(struct nftnl_rule *r, uint32_t op, uint16_t port)
{
	uint16_t be = htons(port);
	int ret = nx_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, sizeof(be));

	return ret < 0 ? ret : nx_cmp(r, op, &be, sizeof(be));
}

/* meta mark (or ct mark) & 0xfff OP value */
int nx_mark(struct nftnl_rule *r, bool ct, uint32_t op, uint32_t value)
{
	int ret = ct ? nx_ct_load(r, NFT_CT_MARK) : nx_meta_load(r, NFT_META_MARK);

	if (ret >= 0)
		ret = nx_bitwise(r, MARK_MASK, 0);
	return ret < 0 ? ret : nx_cmp(r, op, &value, sizeof(value));
}

/* meta oifname/iifname == ifname, zero padded to IFNAMSIZ: an exact match */
int nx_ifname(struct nftnl_rule *r, uint32_t key, const char *ifname)
{
	char name[INPOD_IFNAMSIZ] = "";
	int ret = nx_meta_load(r, key);

	snprintf(name, sizeof(name), "%s", ifname);
	return ret < 0 ? ret : nx_cmp(r, NFT_CMP_EQ, name, sizeof(name));
}


/* ---- batch building ---- */

void nft_batch_init(struct nft_batch *b, void *buf, size_t cap, uint32_t seq0)
{
	memset(b, 0, sizeof(*b));
	b->buf = buf;
	b->cap = cap;
	b->seq0 = seq0;
}

struct nlmsghdr *nftb_msg_start(struct nftb *bl, uint16_t type, uint16_t flags)
{
	uint32_t seq = bl->b->seq0 + (uint32_t)bl->b->nmsg;

	return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(bl->mb), type, NFPROTO_INET, flags,
				     seq);
}

int nftb_msg_end(struct nftb *bl, uint8_t kind, const char *table, const char *name)
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

int nftb_marker(struct nftb *bl, bool begin)
{
	uint32_t seq = bl->b->seq0 + (uint32_t)bl->b->nmsg;

	if (begin)
		nftnl_batch_begin(mnl_nlmsg_batch_current(bl->mb), seq);
	else
		nftnl_batch_end(mnl_nlmsg_batch_current(bl->mb), seq);
	return nftb_msg_end(bl, MK_BATCH, NULL, begin ? "begin" : "end");
}

int nftb_table(struct nftb *bl, uint16_t type, uint16_t flags, uint8_t kind,
		     const char *name)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;

	if (!t)
		return -ENOMEM;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, name);
	nlh = nftb_msg_start(bl, type, flags);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	return nftb_msg_end(bl, kind, name, NULL);
}

/* "flush table": DELRULE naming only the table deletes all its rules. */
int nftb_flush_table(struct nftb *bl, const char *table)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nlmsghdr *nlh;

	if (!r)
		return -ENOMEM;
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
	nlh = nftb_msg_start(bl, NFT_MSG_DELRULE, NLM_F_ACK);
	nftnl_rule_nlmsg_build_payload(nlh, r);
	nftnl_rule_free(r);
	return nftb_msg_end(bl, MK_FLUSH_TABLE, table, NULL);
}

int nftb_chain(struct nftb *bl, const struct nft_chain_spec *cs)
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
	nlh = nftb_msg_start(bl, NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_ACK);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	nftnl_chain_free(c);
	return nftb_msg_end(bl, MK_ADD_CHAIN, cs->table, cs->name);
}

/* One rule: spec is an element of rules[] (kind from rule_kinds[]), or a
 * reroute (spec->family NFPROTO_UNSPEC, ifname set). */

/* mnl_nlmsg_batch lets the last message run past its limit, so the limit
 * is half the buffer (libmnl's documented sizing); our messages are far
 * smaller than half of NFT_BATCH_BUFSZ. */
int nftb_open(struct nftb *bl, struct nft_batch *b)
{
	if (!b->buf || b->cap < 4096)
		return -ENOSPC;
	b->len = 0;
	b->nmsg = 0;
	bl->b = b;
	bl->mb = mnl_nlmsg_batch_start(b->buf, b->cap / 2);
	return bl->mb ? 0 : -ENOMEM;
}

int nftb_begin(struct nftb *bl, struct nft_batch *b)
{
	int ret = nftb_open(bl, b);

	if (ret < 0)
		return ret;
	ret = nftb_marker(bl, true);
	return ret < 0 ? nftb_close(bl, ret) : 0;
}

int nftb_remove_table(struct nftb *bl, const char *table)
{
	int ret = nftb_table(bl, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_ACK, MK_ADD_TABLE, table);

	return ret < 0 ? ret : nftb_table(bl, NFT_MSG_DELTABLE, NLM_F_ACK, MK_DEL_TABLE, table);
}

int nftb_close(struct nftb *bl, int ret)
{
	if (ret >= 0)
		ret = nftb_marker(bl, false);
	if (ret >= 0)
		bl->b->len = mnl_nlmsg_batch_size(bl->mb);
	else
		bl->b->len = 0;
	mnl_nlmsg_batch_stop(bl->mb);
	return ret;
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
	case MK_ADD_SET:
		snprintf(out, outlen, "add set inet %s %s", b->msg[i].table, b->msg[i].name);
		break;
	case MK_FLUSH_SET:
		snprintf(out, outlen, "flush set inet %s %s", b->msg[i].table, b->msg[i].name);
		break;
	case MK_ADD_ELEMS:
		snprintf(out, outlen, "add element inet %s %s", b->msg[i].table, b->msg[i].name);
		break;
	default:
		snprintf(out, outlen, "nftables batch message %zu", i);
	}
}

int nx_comment(struct nftnl_rule *r, const char *tag)
{
	struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(256);
	int ret = 0;

	if (!ud)
		return -ENOMEM;
	if (!nftnl_udata_put_strz(ud, NFTNL_UDATA_RULE_COMMENT, tag))
		ret = -ENOSPC;
	else
		nftnl_rule_set_data(r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(ud),
				    nftnl_udata_buf_len(ud));
	nftnl_udata_buf_free(ud);
	return ret;
}

int nftb_run(struct nl_sock *s, size_t cap, nftb_build_fn build, const void *ctx, const char *op,
	     const char *hint, char *err, size_t errlen)
{
	struct nft_batch *b = malloc(sizeof(*b));
	void *buf = malloc(cap);
	char kerr[384] = "", what[160];
	uint32_t err_seq = 0;
	int ret;

	if (!b || !buf) {
		ret = -ENOMEM;
		errbuf_set(err, errlen, "building the nftables batch: out of memory");
		goto out;
	}
	nft_batch_init(b, buf, cap, nl_seq(s, NFT_BATCH_MAX_MSGS));
	ret = build(b, ctx);
	if (ret < 0) {
		errbuf_set(err, errlen, "building the nftables batch: %s", strerror(-ret));
		goto out;
	}
	ret = nl_talk(s, b->buf, b->len, 0, NULL, NULL, kerr, sizeof(kerr), &err_seq);
	if (ret < 0) {
		nft_batch_describe(b, err_seq, what, sizeof(what));
		errbuf_set(err, errlen, "nftables %s failed at \"%s\": %s%s", op, what, kerr, hint);
	}
out:
	free(buf);
	free(b);
	return ret;
}
