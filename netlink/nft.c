/* SPDX-License-Identifier: Apache-2.0 */
/*
 * In-pod nftables rule set (contract in nft.h). The expressions are the
 * ones `nft` itself generates for the textual rules in inpod.h (checked
 * with `nft --debug=netlink`): in the inet family, network-header loads
 * are guarded by `meta nfproto`, transport loads by `meta l4proto tcp`.
 */
#include "netlink/nft.h"
#include "netlink/nft_build.h"

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

static const char *const nft_tables[] = { NFT_TABLE_NAT, NFT_TABLE_MANGLE };

static const struct nft_chain_spec nft_chains[] = {
	{ NFT_TABLE_NAT, "prerouting", "nat", NF_INET_PRE_ROUTING, -100 },
	{ NFT_TABLE_NAT, "output", "nat", NF_INET_LOCAL_OUT, -100 },
	{ NFT_TABLE_MANGLE, "prerouting", "filter", NF_INET_PRE_ROUTING, -150 },
	{ NFT_TABLE_MANGLE, "output", "route", NF_INET_LOCAL_OUT, -150 },
};

#define V4 NFPROTO_IPV4
#define V6 NFPROTO_IPV6
#define ANY NFPROTO_UNSPEC

static const struct nft_rule_spec nft_rules[] = {
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

static const enum rule_kind nft_rule_kinds[] = {
	RK_PROBE_SADDR_ACCEPT, RK_PROBE_SADDR_ACCEPT, RK_PRE_REDIRECT, RK_PRE_REDIRECT,
	RK_PROBE_DADDR_ACCEPT, RK_PROBE_DADDR_ACCEPT, RK_MARK_ACCEPT,	RK_LO_ACCEPT,
	RK_LO_ACCEPT,	       RK_OUT_REDIRECT,	      RK_OUT_REDIRECT,	RK_CONNMARK_SET,
	RK_MARK_RESTORE,
};

_Static_assert(ARRAY_SIZE(nft_rules) == ARRAY_SIZE(nft_rule_kinds), "one kind per rule");
_Static_assert(2 + ARRAY_SIZE(nft_tables) * 2 + ARRAY_SIZE(nft_chains) + ARRAY_SIZE(nft_rules) +
			       INPOD_MAX_REROUTE <=
		       NFT_BATCH_MAX_MSGS,
	       "apply batch fits nft_batch.msg[]");

size_t nft_inpod_tables(const char *const **out)
{
	*out = nft_tables;
	return ARRAY_SIZE(nft_tables);
}

size_t nft_inpod_chains(const struct nft_chain_spec **out)
{
	*out = nft_chains;
	return ARRAY_SIZE(nft_chains);
}

size_t nft_inpod_rules(const struct nft_rule_spec **out)
{
	*out = nft_rules;
	return ARRAY_SIZE(nft_rules);
}

/* ifname: only for RK_REROUTE. */
static int nft_build_exprs(struct nftnl_rule *r, enum rule_kind k, uint8_t fam, const char *ifname)
{
	const char *lo = fam == NFPROTO_IPV4 ? "127.0.0.1" : "::1";
	const char *probe = fam == NFPROTO_IPV4 ? PROBE_SNAT_IPV4 : PROBE_SNAT_IPV6;
	int ret;

	switch (k) {
	case RK_PROBE_SADDR_ACCEPT:
	case RK_PROBE_DADDR_ACCEPT:
		TRY(nx_nfproto(r, fam));
		TRY(nx_tcp(r));
		TRY(nx_addr(r, fam, k == RK_PROBE_DADDR_ACCEPT, NFT_CMP_EQ, probe));
		TRY(nx_counter(r));
		return nx_accept(r);
	case RK_PRE_REDIRECT:
		TRY(nx_nfproto(r, fam));
		TRY(nx_addr(r, fam, true, NFT_CMP_NEQ, lo));
		TRY(nx_tcp(r));
		TRY(nx_dport(r, NFT_CMP_NEQ, PORT_INBOUND_HBONE));
		TRY(nx_mark(r, false, NFT_CMP_NEQ, MARK_TUNNEL));
		TRY(nx_counter(r));
		return nx_redirect(r, PORT_INBOUND_PLAIN);
	case RK_MARK_ACCEPT:
		TRY(nx_tcp(r));
		TRY(nx_mark(r, false, NFT_CMP_EQ, MARK_CONN));
		TRY(nx_counter(r));
		return nx_accept(r);
	case RK_LO_ACCEPT:
		TRY(nx_ifname(r, NFT_META_OIFNAME, "lo"));
		TRY(nx_nfproto(r, fam));
		TRY(nx_addr(r, fam, true, NFT_CMP_NEQ, lo));
		TRY(nx_counter(r));
		return nx_accept(r);
	case RK_OUT_REDIRECT:
		TRY(nx_nfproto(r, fam));
		TRY(nx_tcp(r));
		TRY(nx_addr(r, fam, true, NFT_CMP_NEQ, lo));
		TRY(nx_mark(r, false, NFT_CMP_NEQ, MARK_TUNNEL));
		TRY(nx_counter(r));
		return nx_redirect(r, PORT_OUTBOUND);
	case RK_CONNMARK_SET:
		TRY(nx_mark(r, false, NFT_CMP_EQ, MARK_TUNNEL));
		TRY(nx_counter(r));
		TRY(nx_ct_load(r, NFT_CT_MARK));
		TRY(nx_bitwise(r, ~MARK_MASK, MARK_CONN));
		return nx_ct_set(r, NFT_CT_MARK);
	case RK_MARK_RESTORE:
		TRY(nx_mark(r, true, NFT_CMP_EQ, MARK_CONN));
		TRY(nx_counter(r));
		TRY(nx_ct_load(r, NFT_CT_MARK));
		return nx_meta_set(r, NFT_META_MARK);
	case RK_REROUTE:
		TRY(nx_ifname(r, NFT_META_IIFNAME, ifname));
		TRY(nx_tcp(r));
		TRY(nx_counter(r));
		return nx_redirect(r, PORT_OUTBOUND);
	}
	return -EINVAL;
}

static int nft_put_rule(struct nftb *bl, const struct nft_rule_spec *rs, enum rule_kind kind,
		    const char *ifname)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nlmsghdr *nlh;
	int ret;

	if (!r)
		return -ENOMEM;
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, rs->table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, rs->chain);
	ret = nx_comment(r, rs->tag);
	if (ret >= 0)
		ret = nft_build_exprs(r, kind, rs->family, ifname);
	if (ret >= 0) {
		nlh = nftb_msg_start(bl, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK);
		nftnl_rule_nlmsg_build_payload(nlh, r);
		ret = nftb_msg_end(bl, MK_ADD_RULE, rs->table, rs->tag);
	}
	nftnl_rule_free(r);
	return ret;
}


int nft_build_apply(struct nft_batch *b, const struct inpod_mode *mode)
{
	struct nftb bl;
	int ret;

	assert(mode->n_reroute <= INPOD_MAX_REROUTE);
	ret = nftb_begin(&bl, b);
	if (ret < 0)
		return ret;
	for (size_t t = 0; ret >= 0 && t < ARRAY_SIZE(nft_tables); t++) {
		ret = nftb_table(&bl, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_ACK, MK_ADD_TABLE,
				nft_tables[t]);
		if (ret >= 0)
			ret = nftb_flush_table(&bl, nft_tables[t]);
		for (size_t c = 0; ret >= 0 && c < ARRAY_SIZE(nft_chains); c++)
			if (!strcmp(nft_chains[c].table, nft_tables[t]))
				ret = nftb_chain(&bl, &nft_chains[c]);
		/* Reroutes first: the inbound redirect would take their packets. */
		for (size_t i = 0; ret >= 0 && i < mode->n_reroute && !strcmp(nft_tables[t], NFT_TABLE_NAT); i++) {
			const struct nft_rule_spec rs = { NFT_TABLE_NAT, "prerouting", b->reroute_tag[i],
							  NFPROTO_UNSPEC, false };

			snprintf(b->reroute_tag[i], sizeof(b->reroute_tag[i]), "%s%s",
				 NFT_REROUTE_TAG_PREFIX, mode->reroute[i]);
			ret = nft_put_rule(&bl, &rs, RK_REROUTE, mode->reroute[i]);
		}
		for (size_t i = 0; ret >= 0 && i < ARRAY_SIZE(nft_rules); i++)
			if (!strcmp(nft_rules[i].table, nft_tables[t]) && (mode->capture_inbound || !nft_rules[i].inbound))
				ret = nft_put_rule(&bl, &nft_rules[i], nft_rule_kinds[i], NULL);
	}
	return nftb_close(&bl, ret);
}

int nft_build_delete(struct nft_batch *b)
{
	struct nftb bl;
	int ret;

	ret = nftb_begin(&bl, b);
	if (ret < 0)
		return ret;
	for (size_t t = 0; ret >= 0 && t < ARRAY_SIZE(nft_tables); t++)
		ret = nftb_remove_table(&bl, nft_tables[t]);
	return nftb_close(&bl, ret);
}


/* ---- I/O ---- */

static int nft_build_apply_mode(struct nft_batch *b, const void *mode)
{
	return nft_build_apply(b, mode);
}

static int nft_batch_delete_cb(struct nft_batch *b, const void *unused)
{
	(void)unused;
	return nft_build_delete(b);
}

int nft_apply(struct nl_sock *s, const struct inpod_mode *mode, char *err, size_t errlen)
{
	assert(mode);
	return nftb_run(s, NFT_BATCH_BUFSZ, nft_build_apply_mode, mode, "apply",
			"; nothing was changed. Check that no other program owns these tables and "
			"that the kernel has nf_tables with nat, redir and ct support",
			err, errlen);
}

int nft_delete(struct nl_sock *s, char *err, size_t errlen)
{
	return nftb_run(s, NFT_BATCH_BUFSZ, nft_batch_delete_cb, NULL, "delete", "", err, errlen);
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

static int nft_chain_cb(const struct nlmsghdr *nlh, void *data)
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
	return nl_talk(s, buf, nlh->nlmsg_len, 0, nft_chain_cb, out, NULL, 0, NULL);
}

bool nft_chain_matches(const struct nft_chain_info *ci, const struct nft_chain_spec *cs)
{
	return ci->has_hook && ci->hook == cs->hook && ci->prio == cs->prio &&
	       !strcmp(ci->type, cs->type);
}

static int nft_udata_cb(const struct nftnl_udata *attr, void *data)
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
	if (!ud || nftnl_udata_parse(ud, len, nft_udata_cb, tb) < 0 || !tb[NFTNL_UDATA_RULE_COMMENT])
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

static int nft_tags_cb(const struct nlmsghdr *nlh, void *data)
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
	ret = nl_talk(s, buf, nlh->nlmsg_len, NL_TALK_DUMP, nft_tags_cb, &dc, err, errlen, NULL);
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
