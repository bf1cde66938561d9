/* SPDX-License-Identifier: Apache-2.0 */
/*
 * netlink/ builders without root: build each message (nft apply/delete
 * batches, ip rule and route requests) into a buffer, parse it back with
 * libnftnl / libmnl and compare field by field.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/fib_rules.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>

#include "conf/warren.h"
#include "netlink/nft.h"
#include "netlink/nft_host.h"
#include "netlink/route.h"
#include "tests/unit/t.h"

#define SEQ0 1000u

static char batch_buf[NFT_BATCH_BUFSZ];
static struct nft_batch batch;

static int build_mode(const struct inpod_mode *mode)
{
	nft_batch_init(&batch, batch_buf, sizeof(batch_buf), SEQ0);
	return nft_build_apply(&batch, mode);
}

static int build_apply(bool capture_inbound)
{
	struct inpod_mode mode;

	inpod_mode_init(&mode);
	mode.capture_inbound = capture_inbound;
	return build_mode(&mode);
}

static int build(bool apply)
{
	if (apply)
		return build_apply(true);
	nft_batch_init(&batch, batch_buf, sizeof(batch_buf), SEQ0);
	return nft_build_delete(&batch);
}

/* Message i of the batch (NULL past the end). */
static const struct nlmsghdr *msg_at(size_t idx)
{
	const struct nlmsghdr *nlh = (const void *)batch.buf;
	int left = (int)batch.len;

	for (size_t i = 0; mnl_nlmsg_ok(nlh, left); i++, nlh = mnl_nlmsg_next(nlh, &left))
		if (i == idx)
			return nlh;
	return NULL;
}

static size_t msg_count(void)
{
	size_t n = 0;

	while (msg_at(n))
		n++;
	return n;
}

static uint16_t nft_type(const struct nlmsghdr *nlh)
{
	return nlh->nlmsg_type & 0xff;
}

static bool is_nft(const struct nlmsghdr *nlh, uint16_t msg)
{
	return (nlh->nlmsg_type >> 8) == NFNL_SUBSYS_NFTABLES && nft_type(nlh) == msg;
}

static void t_apply_batch_framing(void)
{
	size_t n;

	T_ASSERT_INT(build(true), 0);
	n = msg_count();
	T_ASSERT_INT(n, batch.nmsg);
	T_ASSERT(n >= 3);
	T_ASSERT_INT(msg_at(0)->nlmsg_type, NFNL_MSG_BATCH_BEGIN);
	T_ASSERT_INT(msg_at(n - 1)->nlmsg_type, NFNL_MSG_BATCH_END);
	for (size_t i = 0; i < n; i++) {
		const struct nlmsghdr *nlh = msg_at(i);
		const struct nfgenmsg *g = mnl_nlmsg_get_payload(nlh);

		T_ASSERT_INT(nlh->nlmsg_seq, SEQ0 + i);
		if (i == 0 || i == n - 1) {
			T_ASSERT_INT(ntohs(g->res_id), NFNL_SUBSYS_NFTABLES);
			continue;
		}
		T_ASSERT(nlh->nlmsg_flags & NLM_F_ACK);
		T_ASSERT(nlh->nlmsg_flags & NLM_F_REQUEST);
		T_ASSERT_INT(g->nfgen_family, NFPROTO_INET);
	}
}

/* Per table: add table, flush (DELRULE with only the table), chains, rules. */
static void t_apply_tables_and_flush(void)
{
	const char *const *tables;
	size_t ntables = nft_inpod_tables(&tables), n, seen = 0;

	T_ASSERT_INT(ntables, 2);
	T_ASSERT_STR(tables[0], "warren-nat");
	T_ASSERT_STR(tables[1], "warren-mangle");
	T_ASSERT_INT(build(true), 0);
	n = msg_count();
	for (size_t i = 1; i + 1 < n; i++) {
		const struct nlmsghdr *nlh = msg_at(i);
		struct nftnl_table *t;
		struct nftnl_rule *r;

		if (!is_nft(nlh, NFT_MSG_NEWTABLE))
			continue;
		T_ASSERT(nlh->nlmsg_flags & NLM_F_CREATE);
		T_ASSERT(!(nlh->nlmsg_flags & NLM_F_EXCL));
		t = nftnl_table_alloc();
		T_ASSERT(t);
		T_ASSERT_INT(nftnl_table_nlmsg_parse(nlh, t), 0);
		T_ASSERT_STR(nftnl_table_get_str(t, NFTNL_TABLE_NAME), tables[seen]);
		T_ASSERT_INT(nftnl_table_get_u32(t, NFTNL_TABLE_FAMILY), NFPROTO_INET);
		nftnl_table_free(t);
		/* the very next message flushes it */
		T_ASSERT(is_nft(msg_at(i + 1), NFT_MSG_DELRULE));
		r = nftnl_rule_alloc();
		T_ASSERT_INT(nftnl_rule_nlmsg_parse(msg_at(i + 1), r), 0);
		T_ASSERT_STR(nftnl_rule_get_str(r, NFTNL_RULE_TABLE), tables[seen]);
		T_ASSERT(!nftnl_rule_is_set(r, NFTNL_RULE_CHAIN));
		T_ASSERT(!nftnl_rule_is_set(r, NFTNL_RULE_HANDLE));
		nftnl_rule_free(r);
		seen++;
	}
	T_ASSERT_INT(seen, 2);
}

static void t_apply_chains(void)
{
	static const struct {
		const char *table, *name, *type;
		uint32_t hook;
		int32_t prio;
	} want[] = {
		{ "warren-nat", "prerouting", "nat", NF_INET_PRE_ROUTING, -100 },
		{ "warren-nat", "output", "nat", NF_INET_LOCAL_OUT, -100 },
		{ "warren-mangle", "prerouting", "filter", NF_INET_PRE_ROUTING, -150 },
		{ "warren-mangle", "output", "route", NF_INET_LOCAL_OUT, -150 },
	};
	size_t n, seen = 0;

	T_ASSERT_INT(build(true), 0);
	n = msg_count();
	for (size_t i = 0; i < n; i++) {
		const struct nlmsghdr *nlh = msg_at(i);
		struct nftnl_chain *c;

		if (!is_nft(nlh, NFT_MSG_NEWCHAIN))
			continue;
		T_ASSERT(seen < ARRAY_SIZE(want));
		c = nftnl_chain_alloc();
		T_ASSERT_INT(nftnl_chain_nlmsg_parse(nlh, c), 0);
		T_ASSERT_STR(nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE), want[seen].table);
		T_ASSERT_STR(nftnl_chain_get_str(c, NFTNL_CHAIN_NAME), want[seen].name);
		T_ASSERT_STR(nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE), want[seen].type);
		T_ASSERT_INT(nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM), want[seen].hook);
		T_ASSERT_INT(nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO), want[seen].prio);
		T_ASSERT_INT(nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY), NF_ACCEPT);
		nftnl_chain_free(c);
		seen++;
	}
	T_ASSERT_INT(seen, ARRAY_SIZE(want));
}

/* Parse rule messages of the apply batch, in order. Caller frees. */
static size_t parse_rules(struct nftnl_rule **out, size_t max)
{
	size_t n = msg_count(), k = 0;

	for (size_t i = 0; i < n && k < max; i++) {
		const struct nlmsghdr *nlh = msg_at(i);

		if (!is_nft(nlh, NFT_MSG_NEWRULE))
			continue;
		out[k] = nftnl_rule_alloc();
		if (nftnl_rule_nlmsg_parse(nlh, out[k]) < 0) {
			nftnl_rule_free(out[k]);
			break;
		}
		k++;
	}
	return k;
}

static void free_rules(struct nftnl_rule **r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		nftnl_rule_free(r[i]);
}

struct expr_view {
	const char *name[32];
	struct nftnl_expr *e[32];
	size_t n;
};

static void view(struct nftnl_rule *r, struct expr_view *v)
{
	struct nftnl_expr_iter *it = nftnl_expr_iter_create(r);
	struct nftnl_expr *e;

	v->n = 0;
	while (it && (e = nftnl_expr_iter_next(it)) && v->n < 32) {
		v->e[v->n] = e;
		v->name[v->n++] = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
	}
	nftnl_expr_iter_destroy(it);
}

static ssize_t find_expr(const struct expr_view *v, const char *name, size_t from)
{
	for (size_t i = from; i < v->n; i++)
		if (!strcmp(v->name[i], name))
			return (ssize_t)i;
	return -1;
}

static uint32_t cmp_u32(struct nftnl_expr *e)
{
	uint32_t len = 0, v = 0;
	const void *d = nftnl_expr_get(e, NFTNL_EXPR_CMP_DATA, &len);

	if (d && len <= sizeof(v))
		memcpy(&v, d, len);
	return v;
}

static void t_apply_rules_tags(void)
{
	const struct nft_rule_spec *spec;
	size_t nspec = nft_inpod_rules(&spec), n;
	struct nftnl_rule *r[64];
	char tag[128];

	T_ASSERT_INT(nspec, 13);
	T_ASSERT_INT(build(true), 0);
	n = parse_rules(r, 64);
	if (n != nspec) {
		free_rules(r, n);
		T_ASSERT_INT(n, nspec);
	}
	for (size_t i = 0; i < n; i++) {
		struct expr_view v;
		bool ok = nft_rule_tag(r[i], tag, sizeof(tag)) && !strcmp(tag, spec[i].tag) &&
			  !strcmp(nftnl_rule_get_str(r[i], NFTNL_RULE_TABLE), spec[i].table) &&
			  !strcmp(nftnl_rule_get_str(r[i], NFTNL_RULE_CHAIN), spec[i].chain) &&
			  nftnl_rule_get_u32(r[i], NFTNL_RULE_FAMILY) == NFPROTO_INET &&
			  !strncmp(tag, "warren:", 7);

		view(r[i], &v);
		ok = ok && find_expr(&v, "counter", 0) >= 0;
		for (size_t j = 0; ok && j < i; j++)
			ok = strcmp(spec[j].tag, spec[i].tag) != 0; /* tags are unique */
		if (!ok) {
			printf("#   rule %zu (%s) wrong\n", i, spec[i].tag);
			free_rules(r, n);
			T_ASSERT(ok);
		}
	}
	free_rules(r, n);
	/* Tags the shell test and the brief refer to exist. */
	{
		bool found = false;

		for (size_t i = 0; i < nspec; i++)
			found |= !strcmp(spec[i].tag, "warren:nat-out-redirect-v4") &&
				 !strcmp(spec[i].chain, "output");
		T_ASSERT(found);
	}
}

/* Ingress mode (bypass-inbound-capture): the batch is the full one minus
 * exactly the rules marked inbound, i.e. nat prerouting's probe accept and
 * 15006 redirect; the chains are still created, and outbound capture and
 * the mangle rules (which HBONE's inbound return path needs) stay. */
static void t_outbound_only_rules(void)
{
	const struct nft_rule_spec *spec;
	size_t nspec = nft_inpod_rules(&spec), n, ninbound = 0, k = 0, chains = 0;
	struct nftnl_rule *r[64];
	char tag[128];
	bool ok = true;

	for (size_t i = 0; i < nspec; i++) {
		if (!spec[i].inbound)
			continue;
		ninbound++;
		T_ASSERT_STR(spec[i].table, "warren-nat");
		T_ASSERT_STR(spec[i].chain, "prerouting");
	}
	T_ASSERT_INT(ninbound, 4);
	T_ASSERT_INT(build_apply(false), 0);
	for (size_t i = 0; msg_at(i); i++)
		chains += is_nft(msg_at(i), NFT_MSG_NEWCHAIN);
	T_ASSERT_INT(chains, 4);
	n = parse_rules(r, 64);
	for (size_t i = 0; i < nspec && ok; i++) {
		if (spec[i].inbound)
			continue;
		ok = k < n && nft_rule_tag(r[k], tag, sizeof(tag)) && !strcmp(tag, spec[i].tag);
		k++;
	}
	free_rules(r, n);
	T_ASSERT(ok);
	T_ASSERT_INT(n, nspec - ninbound);
}

/* Virtual interfaces: one rule per interface, first in nat prerouting
 * (before the inbound redirect would take the packets), matching the
 * zero-padded iifname exactly and redirecting TCP to 15001. */
static void t_reroute_rules(void)
{
	static const char *const names[] = { "tap0", "veth-vm.1" };
	struct inpod_mode mode;
	struct nftnl_rule *r[64];
	char tag[128], err[128];
	size_t n, first_pre = SIZE_MAX, nspec;
	const struct nft_rule_spec *spec;
	bool ok = true;

	nspec = nft_inpod_rules(&spec);
	inpod_mode_init(&mode);
	T_ASSERT_INT(inpod_mode_parse_reroute(&mode, " tap0, ,veth-vm.1,", err, sizeof(err)), 0);
	T_ASSERT_INT(mode.n_reroute, 2);
	T_ASSERT_INT(build_mode(&mode), 0);
	n = parse_rules(r, 64);
	for (size_t i = 0; i < n && first_pre == SIZE_MAX; i++)
		if (!strcmp(nftnl_rule_get_str(r[i], NFTNL_RULE_CHAIN), "prerouting"))
			first_pre = i;
	for (size_t k = 0; ok && k < 2; k++) {
		struct nftnl_rule *x = r[first_pre + k];
		struct expr_view v;
		char want[64], ifname[16] = "";
		ssize_t meta, redir, imm;
		uint32_t len = 0;
		const void *d;

		snprintf(want, sizeof(want), "warren:nat-pre-reroute-%s", names[k]);
		ok = nft_rule_tag(x, tag, sizeof(tag)) && !strcmp(tag, want) &&
		     !strcmp(nftnl_rule_get_str(x, NFTNL_RULE_TABLE), "warren-nat");
		view(x, &v);
		meta = find_expr(&v, "meta", 0);
		ok = ok && meta == 0 && nftnl_expr_get_u32(v.e[0], NFTNL_EXPR_META_KEY) == NFT_META_IIFNAME;
		d = ok ? nftnl_expr_get(v.e[1], NFTNL_EXPR_CMP_DATA, &len) : NULL;
		ok = ok && d && len == sizeof(ifname);
		if (ok)
			memcpy(ifname, d, sizeof(ifname));
		ok = ok && !strcmp(ifname, names[k]) && !ifname[strlen(names[k]) + 1];
		redir = find_expr(&v, "redir", 0);
		imm = find_expr(&v, "immediate", 0);
		d = imm >= 0 ? nftnl_expr_get(v.e[imm], NFTNL_EXPR_IMM_DATA, &len) : NULL;
		ok = ok && redir > imm && imm > 0 && d && len == 2 && ntohs(*(const uint16_t *)d) == 15001;
		ok = ok && find_expr(&v, "counter", 0) >= 0;
		if (!ok)
			printf("#   reroute rule %zu wrong\n", k);
	}
	/* then the full set, unchanged */
	ok = ok && n == nspec + 2 && nft_rule_tag(r[first_pre + 2], tag, sizeof(tag)) &&
	     !strcmp(tag, "warren:nat-pre-probe-accept-v4");
	free_rules(r, n);
	T_ASSERT(ok);
}

/* The annotation's list: trimmed, empty items skipped, every name checked
 * as the kernel does; an error leaves the mode as it was. */
static void t_reroute_parse(void)
{
	static const char *const bad[] = { "tap0,a/b", "x:1", "toolonginterface", ".", "..", "a b",
					   "tap0,tap0", "a,b,c,d,e,f,g,h,i", "tap0, lo" };
	struct inpod_mode mode;
	char err[160];

	inpod_mode_init(&mode);
	T_ASSERT(mode.capture_inbound);
	T_ASSERT_INT(inpod_mode_parse_reroute(&mode, "", err, sizeof(err)), 0);
	T_ASSERT_INT(mode.n_reroute, 0);
	T_ASSERT_INT(inpod_mode_parse_reroute(&mode, "eth1", err, sizeof(err)), 0);
	T_ASSERT_INT(mode.n_reroute, 1);
	T_ASSERT_INT(inpod_mode_parse_reroute(&mode, "a,b,c,d,e,f,g,fifteen-chars-x", err, sizeof(err)), 0);
	T_ASSERT_INT(mode.n_reroute, 8);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (inpod_mode_parse_reroute(&mode, bad[i], err, sizeof(err)) != -EINVAL || !err[0] ||
		    mode.n_reroute != 8) {
			printf("# \"%s\" accepted\n", bad[i]);
			T_ASSERT(false);
		}
	}
	T_ASSERT_INT(inpod_mode_parse_reroute(&mode, "a,b,c,d,e,f,g,h,i", err, sizeof(err)), -EINVAL);
	T_ASSERT_STR(err, "more than 8 interfaces");
	T_ASSERT_INT(inpod_mode_parse_reroute(&mode, "tap0,a/b", err, sizeof(err)), -EINVAL);
	T_ASSERT_STR(err, "\"a/b\" is not a network interface name (1-15 characters, no '/', ':' or spaces)");
}

/* Redirect rules: immediate port (network order) into a register, redir
 * reading REG_PROTO_MIN from it; 15006 in prerouting, 15001 in output;
 * and each also excludes marked (0x539/0xfff) packets. */
static void t_redirect_ports_and_marks(void)
{
	struct nftnl_rule *r[64];
	size_t n, redirects = 0;

	T_ASSERT_INT(build(true), 0);
	n = parse_rules(r, 64);
	for (size_t i = 0; i < n; i++) {
		struct expr_view v;
		ssize_t redir, imm, bw, cmp;
		uint32_t len = 0, reg;
		const uint16_t *port;
		const uint32_t *mask;
		const char *chain = nftnl_rule_get_str(r[i], NFTNL_RULE_CHAIN);
		bool ok;

		view(r[i], &v);
		redir = find_expr(&v, "redir", 0);
		if (redir < 0)
			continue;
		redirects++;
		imm = redir - 1;
		ok = imm >= 0 && !strcmp(v.name[imm], "immediate");
		if (ok) {
			reg = nftnl_expr_get_u32(v.e[imm], NFTNL_EXPR_IMM_DREG);
			port = nftnl_expr_get(v.e[imm], NFTNL_EXPR_IMM_DATA, &len);
			ok = len == 2 && reg ==
				  nftnl_expr_get_u32(v.e[redir], NFTNL_EXPR_REDIR_REG_PROTO_MIN) &&
			     ntohs(*port) == (!strcmp(chain, "prerouting") ? 15006 : 15001);
		}
		bw = find_expr(&v, "bitwise", 0);
		ok = ok && bw >= 0 && bw + 1 < (ssize_t)v.n && !strcmp(v.name[bw + 1], "cmp");
		if (ok) {
			mask = nftnl_expr_get(v.e[bw], NFTNL_EXPR_BITWISE_MASK, &len);
			cmp = bw + 1;
			ok = len == 4 && *mask == 0xfff &&
			     nftnl_expr_get_u32(v.e[cmp], NFTNL_EXPR_CMP_OP) == NFT_CMP_NEQ &&
			     cmp_u32(v.e[cmp]) == 0x539 &&
			     nftnl_expr_get_u32(v.e[bw - 1], NFTNL_EXPR_META_KEY) == NFT_META_MARK;
		}
		if (!ok) {
			printf("#   redirect rule %zu wrong\n", i);
			free_rules(r, n);
			T_ASSERT(ok);
		}
	}
	free_rules(r, n);
	T_ASSERT_INT(redirects, 4); /* pre v4/v6, out v4/v6 */
}

/* In the inet family every network-header load follows a meta nfproto
 * match for the right family, and every transport load a meta l4proto
 * tcp match. */
static void t_family_guards(void)
{
	struct nftnl_rule *r[64];
	size_t n;

	T_ASSERT_INT(build(true), 0);
	n = parse_rules(r, 64);
	T_ASSERT(n > 0);
	for (size_t i = 0; i < n; i++) {
		struct expr_view v;
		int nfproto = -1;
		bool tcp = false, ok = true;

		view(r[i], &v);
		for (size_t j = 0; j < v.n && ok; j++) {
			if (!strcmp(v.name[j], "meta") && j + 1 < v.n &&
			    nftnl_expr_is_set(v.e[j], NFTNL_EXPR_META_DREG)) {
				uint32_t key = nftnl_expr_get_u32(v.e[j], NFTNL_EXPR_META_KEY);

				if (key == NFT_META_NFPROTO)
					nfproto = (int)cmp_u32(v.e[j + 1]);
				if (key == NFT_META_L4PROTO)
					tcp = cmp_u32(v.e[j + 1]) == IPPROTO_TCP;
			}
			if (!strcmp(v.name[j], "payload")) {
				uint32_t base = nftnl_expr_get_u32(v.e[j], NFTNL_EXPR_PAYLOAD_BASE);
				uint32_t len = nftnl_expr_get_u32(v.e[j], NFTNL_EXPR_PAYLOAD_LEN);

				if (base == NFT_PAYLOAD_NETWORK_HEADER)
					ok = (nfproto == NFPROTO_IPV4 && len == 4) ||
					     (nfproto == NFPROTO_IPV6 && len == 16);
				else if (base == NFT_PAYLOAD_TRANSPORT_HEADER)
					ok = tcp;
			}
		}
		if (!ok) {
			printf("#   rule %zu lacks a family/protocol guard\n", i);
			free_rules(r, n);
			T_ASSERT(ok);
		}
	}
	free_rules(r, n);
}

/* Mangle rules: connmark set (mark 0x539 -> ct mark & 0xfffff000 | 0x111)
 * and restore (ct mark 0x111 -> meta mark set ct mark); the nat output
 * accept of replies marked 0x111. */
static void t_connmark_rules(void)
{
	struct nftnl_rule *r[64];
	size_t n, found = 0;
	char tag[128];

	T_ASSERT_INT(build(true), 0);
	n = parse_rules(r, 64);
	for (size_t i = 0; i < n; i++) {
		struct expr_view v;
		uint32_t len;
		const uint32_t *m, *x;
		bool ok = true;

		nft_rule_tag(r[i], tag, sizeof(tag));
		view(r[i], &v);
		if (!strcmp(tag, "warren:mangle-pre-connmark-set")) {
			found++;
			ok = v.n == 7 && !strcmp(v.name[0], "meta") &&
			     cmp_u32(v.e[2]) == 0x539 && !strcmp(v.name[3], "counter") &&
			     !strcmp(v.name[4], "ct") && !strcmp(v.name[5], "bitwise") &&
			     !strcmp(v.name[6], "ct") &&
			     nftnl_expr_get_u32(v.e[6], NFTNL_EXPR_CT_KEY) == NFT_CT_MARK &&
			     nftnl_expr_is_set(v.e[6], NFTNL_EXPR_CT_SREG);
			if (ok) {
				m = nftnl_expr_get(v.e[5], NFTNL_EXPR_BITWISE_MASK, &len);
				x = nftnl_expr_get(v.e[5], NFTNL_EXPR_BITWISE_XOR, &len);
				ok = *m == 0xfffff000u && *x == 0x111u;
			}
		} else if (!strcmp(tag, "warren:mangle-out-mark-restore")) {
			found++;
			ok = v.n == 6 && !strcmp(v.name[0], "ct") &&
			     nftnl_expr_get_u32(v.e[0], NFTNL_EXPR_CT_KEY) == NFT_CT_MARK &&
			     cmp_u32(v.e[2]) == 0x111 && !strcmp(v.name[4], "ct") &&
			     !strcmp(v.name[5], "meta") &&
			     nftnl_expr_get_u32(v.e[5], NFTNL_EXPR_META_KEY) == NFT_META_MARK &&
			     nftnl_expr_is_set(v.e[5], NFTNL_EXPR_META_SREG);
			if (ok) {
				m = nftnl_expr_get(v.e[1], NFTNL_EXPR_BITWISE_MASK, &len);
				ok = *m == 0xfff;
			}
		} else if (!strcmp(tag, "warren:nat-out-mark-accept")) {
			ssize_t bw = find_expr(&v, "bitwise", 0);

			found++;
			ok = bw > 0 && cmp_u32(v.e[bw + 1]) == 0x111 &&
			     nftnl_expr_get_u32(v.e[bw + 1], NFTNL_EXPR_CMP_OP) == NFT_CMP_EQ &&
			     !strcmp(v.name[v.n - 1], "immediate") &&
			     nftnl_expr_get_u32(v.e[v.n - 1], NFTNL_EXPR_IMM_VERDICT) == NF_ACCEPT;
		}
		if (!ok) {
			printf("#   %s wrong\n", tag);
			free_rules(r, n);
			T_ASSERT(ok);
		}
	}
	free_rules(r, n);
	T_ASSERT_INT(found, 3);
}

static void t_probe_addresses(void)
{
	struct nftnl_rule *r[64];
	size_t n, found = 0;
	char tag[128];
	unsigned char v4[4], v6[16];

	T_ASSERT_INT(inet_pton(AF_INET, PROBE_SNAT_IPV4, v4), 1);
	T_ASSERT_INT(inet_pton(AF_INET6, PROBE_SNAT_IPV6, v6), 1);
	T_ASSERT_INT(build(true), 0);
	n = parse_rules(r, 64);
	for (size_t i = 0; i < n; i++) {
		struct expr_view v;
		ssize_t p;
		uint32_t len = 0, off;
		const void *d;
		bool ok, sad;

		nft_rule_tag(r[i], tag, sizeof(tag));
		if (!strstr(tag, "probe-accept"))
			continue;
		found++;
		view(r[i], &v);
		p = find_expr(&v, "payload", 0);
		ok = p >= 0;
		if (ok) {
			off = nftnl_expr_get_u32(v.e[p], NFTNL_EXPR_PAYLOAD_OFFSET);
			d = nftnl_expr_get(v.e[p + 1], NFTNL_EXPR_CMP_DATA, &len);
			sad = strstr(tag, "-pre-") != NULL; /* prerouting matches saddr */
			if (strstr(tag, "-v4"))
				ok = len == 4 && !memcmp(d, v4, 4) && off == (sad ? 12u : 16u);
			else
				ok = len == 16 && !memcmp(d, v6, 16) && off == (sad ? 8u : 24u);
			ok = ok && nftnl_expr_get_u32(v.e[v.n - 1], NFTNL_EXPR_IMM_VERDICT) ==
					   NF_ACCEPT;
		}
		if (!ok) {
			printf("#   %s wrong\n", tag);
			free_rules(r, n);
			T_ASSERT(ok);
		}
	}
	free_rules(r, n);
	T_ASSERT_INT(found, 4);
}

static void t_delete_batch(void)
{
	const char *want[] = { "warren-nat", "warren-nat", "warren-mangle", "warren-mangle" };
	const uint16_t types[] = { NFT_MSG_NEWTABLE, NFT_MSG_DELTABLE, NFT_MSG_NEWTABLE,
				   NFT_MSG_DELTABLE };

	T_ASSERT_INT(build(false), 0);
	T_ASSERT_INT(msg_count(), 6);
	T_ASSERT_INT(msg_at(0)->nlmsg_type, NFNL_MSG_BATCH_BEGIN);
	T_ASSERT_INT(msg_at(5)->nlmsg_type, NFNL_MSG_BATCH_END);
	for (size_t i = 0; i < 4; i++) {
		const struct nlmsghdr *nlh = msg_at(i + 1);
		struct nftnl_table *t = nftnl_table_alloc();

		T_ASSERT(is_nft(nlh, types[i]));
		T_ASSERT(nlh->nlmsg_flags & NLM_F_ACK);
		T_ASSERT_INT(nftnl_table_nlmsg_parse(nlh, t), 0);
		T_ASSERT_STR(nftnl_table_get_str(t, NFTNL_TABLE_NAME), want[i]);
		T_ASSERT_INT(nftnl_table_get_u32(t, NFTNL_TABLE_FAMILY), NFPROTO_INET);
		nftnl_table_free(t);
	}
}

static void t_batch_errors_and_describe(void)
{
	static char small[1024];
	char d[160];

	struct inpod_mode mode;

	inpod_mode_init(&mode);
	nft_batch_init(&batch, small, sizeof(small), 1);
	T_ASSERT_INT(nft_build_apply(&batch, &mode), -ENOSPC);
	T_ASSERT_INT(batch.len, 0);
	T_ASSERT_INT(build(true), 0);
	nft_batch_describe(&batch, SEQ0 + 1, d, sizeof(d));
	T_ASSERT_STR(d, "add table inet warren-nat");
	nft_batch_describe(&batch, SEQ0 + 2, d, sizeof(d));
	T_ASSERT_STR(d, "flush table inet warren-nat");
	nft_batch_describe(&batch, SEQ0 + 3, d, sizeof(d));
	T_ASSERT_STR(d, "add chain inet warren-nat prerouting");
	nft_batch_describe(&batch, SEQ0 + 5, d, sizeof(d));
	T_ASSERT_STR(d, "add rule warren:nat-pre-probe-accept-v4 to inet warren-nat");
	nft_batch_describe(&batch, SEQ0 + 999, d, sizeof(d));
	T_ASSERT_STR(d, "nftables batch");
}

/* ---- the node's host table (nft_host.h) ---- */

static void *host_buf;

static int build_host(const struct nft_host_elem *el, size_t n, long long uid)
{
	const struct nft_host_spec spec = { .kubelet_uid = uid, .elems = el, .n = n };
	size_t cap = nft_host_bufsz(n);

	free(host_buf);
	host_buf = malloc(cap);
	if (!host_buf)
		return -ENOMEM;
	nft_batch_init(&batch, host_buf, cap, SEQ0);
	return nft_build_host_sync(&batch, &spec);
}

static void host_elems(struct nft_host_elem *el)
{
	static const char *const v4[] = { "10.244.2.5", "10.244.2.6", "10.244.2.7" };

	for (size_t i = 0; i < 3; i++) {
		el[i] = (struct nft_host_elem){ .family = AF_INET, .comment = "uid-v4" };
		inet_pton(AF_INET, v4[i], el[i].addr);
	}
	el[3] = (struct nft_host_elem){ .family = AF_INET6, .comment = "uid-v6" };
	inet_pton(AF_INET6, "fd00:244:2::5", el[3].addr);
}

/* One element as the kernel reads it: a nest { KEY { DATA_VALUE },
 * USERDATA }. libnftnl numbers the element nests 1, 2, 3... where its own
 * parser expects NFTA_LIST_ELEM (1) for each, so it cannot read back a
 * message of several elements; the kernel ignores the nest type. Hence
 * libmnl here. */
static bool elem_matches(const struct nlattr *elem, const struct nft_host_elem *want,
			 size_t keylen)
{
	const struct nlattr *a, *k = NULL, *ud = NULL;

	mnl_attr_for_each_nested(a, elem) {
		if (mnl_attr_get_type(a) == NFTA_SET_ELEM_KEY)
			k = mnl_attr_get_payload(a);
		else if (mnl_attr_get_type(a) == NFTA_SET_ELEM_USERDATA)
			ud = a;
	}
	if (!k || mnl_attr_get_type(k) != NFTA_DATA_VALUE || mnl_attr_get_payload_len(k) != keylen ||
	    memcmp(mnl_attr_get_payload(k), want->addr, keylen) || !ud)
		return false;
	/* userdata: type 0 (comment), length, the string with its NUL */
	return mnl_attr_get_payload_len(ud) == 2 + strlen(want->comment) + 1 &&
	       ((const char *)mnl_attr_get_payload(ud))[0] == 0 &&
	       !strcmp((const char *)mnl_attr_get_payload(ud) + 2, want->comment);
}

/* The elements of a NEWSETELEM/DELSETELEM message of set: how many (*n),
 * and how many of them are in want. 0, or -1 when the message names
 * another set or is malformed. */
static int set_elems(const struct nlmsghdr *nlh, const char *set, const struct nft_host_elem *want,
		     size_t nwant, size_t keylen, size_t *n, size_t *matched)
{
	const struct nlattr *a, *e, *elems = NULL;
	const char *name = NULL;

	*n = *matched = 0;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) == NFTA_SET_ELEM_LIST_SET)
			name = mnl_attr_get_str(a);
		else if (mnl_attr_get_type(a) == NFTA_SET_ELEM_LIST_ELEMENTS)
			elems = a;
	}
	if (!name || strcmp(name, set))
		return -1;
	if (!elems)
		return 0;
	mnl_attr_for_each_nested(e, elems) {
		(*n)++;
		for (size_t i = 0; i < nwant; i++)
			if (elem_matches(e, &want[i], keylen))
				(*matched)++;
	}
	return 0;
}

static void t_host_sync_batch(void)
{
	static const uint16_t types[] = {
		NFT_MSG_NEWTABLE,   NFT_MSG_DELRULE, NFT_MSG_NEWCHAIN,
		NFT_MSG_NEWSET,     NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM, NFT_MSG_NEWRULE,
		NFT_MSG_NEWSET,     NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM, NFT_MSG_NEWRULE,
	};
	struct nft_host_elem el[4];
	struct nftnl_chain *c;
	struct nftnl_set *s;
	size_t n, matched;
	char d[160];

	host_elems(el);
	T_ASSERT_INT(build_host(el, 4, 4321), 0);
	T_ASSERT_INT(msg_count(), ARRAY_SIZE(types) + 2);
	T_ASSERT_INT(msg_at(0)->nlmsg_type, NFNL_MSG_BATCH_BEGIN);
	T_ASSERT_INT(msg_at(ARRAY_SIZE(types) + 1)->nlmsg_type, NFNL_MSG_BATCH_END);
	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		T_ASSERT(is_nft(msg_at(i + 1), types[i]));
		T_ASSERT(msg_at(i + 1)->nlmsg_flags & NLM_F_ACK);
		/* nothing may fail on what exists: no EXCL anywhere */
		T_ASSERT(!(msg_at(i + 1)->nlmsg_flags & NLM_F_EXCL));
	}
	c = nftnl_chain_alloc();
	T_ASSERT_INT(nftnl_chain_nlmsg_parse(msg_at(3), c), 0);
	T_ASSERT_STR(nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE), "warren-host");
	T_ASSERT_STR(nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE), "nat");
	T_ASSERT_INT(nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM), NF_INET_POST_ROUTING);
	T_ASSERT_INT(nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO), 99);
	nftnl_chain_free(c);
	for (int f = 0; f < 2; f++) {
		size_t at = 4 + 4 * (size_t)f;

		s = nftnl_set_alloc();
		T_ASSERT_INT(nftnl_set_nlmsg_parse(msg_at(at), s), 0);
		T_ASSERT_STR(nftnl_set_get_str(s, NFTNL_SET_NAME), f ? "probe-pods-v6" : "probe-pods-v4");
		T_ASSERT_INT(nftnl_set_get_u32(s, NFTNL_SET_KEY_LEN), f ? 16 : 4);
		T_ASSERT_INT(nftnl_set_get_u32(s, NFTNL_SET_KEY_TYPE), f ? 8 : 7); /* ip6/ipv4_addr */
		nftnl_set_free(s);
		/* the flush names the set and carries no element */
		T_ASSERT_INT(set_elems(msg_at(at + 1), f ? "probe-pods-v6" : "probe-pods-v4", NULL, 0,
				       0, &n, &matched), 0);
		T_ASSERT_INT(n, 0);
		T_ASSERT_INT(set_elems(msg_at(at + 2), f ? "probe-pods-v6" : "probe-pods-v4",
				       f ? el + 3 : el, f ? 1 : 3, f ? 16 : 4, &n, &matched), 0);
		T_ASSERT_INT(n, f ? 1 : 3);
		T_ASSERT_INT(matched, n);
	}
	nft_batch_describe(&batch, SEQ0 + 6, d, sizeof(d));
	T_ASSERT_STR(d, "add element inet warren-host probe-pods-v4");
	nft_batch_describe(&batch, SEQ0 + 5, d, sizeof(d));
	T_ASSERT_STR(d, "flush set inet warren-host probe-pods-v4");
	nft_batch_describe(&batch, SEQ0 + 8, d, sizeof(d));
	T_ASSERT_STR(d, "add set inet warren-host probe-pods-v6");
}

static void t_host_snat_rules(void)
{
	struct nftnl_rule *r[4];
	struct nft_host_elem el[4];
	unsigned char probe[16];
	size_t n;

	host_elems(el);
	T_ASSERT_INT(build_host(el, 4, 4321), 0);
	n = parse_rules(r, 4);
	T_ASSERT_INT(n, 2);
	for (size_t i = 0; i < n; i++) {
		bool v6 = i == 1, ok;
		struct expr_view v;
		char tag[128];
		uint32_t len = 0;
		const void *d;
		ssize_t at;

		nft_rule_tag(r[i], tag, sizeof(tag));
		inet_pton(v6 ? AF_INET6 : AF_INET, v6 ? PROBE_SNAT_IPV6 : PROBE_SNAT_IPV4, probe);
		view(r[i], &v);
		/* nfproto, l4proto tcp, skuid, daddr @set, counter, snat to the probe address */
		ok = !strcmp(tag, v6 ? "warren:host-probe-snat-v6" : "warren:host-probe-snat-v4") &&
		     v.n == 11 && !strcmp(v.name[0], "meta") &&
		     cmp_u32(v.e[1]) == (v6 ? NFPROTO_IPV6 : NFPROTO_IPV4) &&
		     nftnl_expr_get_u32(v.e[2], NFTNL_EXPR_META_KEY) == NFT_META_L4PROTO &&
		     cmp_u32(v.e[3]) == IPPROTO_TCP &&
		     nftnl_expr_get_u32(v.e[4], NFTNL_EXPR_META_KEY) == NFT_META_SKUID &&
		     cmp_u32(v.e[5]) == 4321 && !strcmp(v.name[6], "payload") &&
		     nftnl_expr_get_u32(v.e[6], NFTNL_EXPR_PAYLOAD_OFFSET) == (v6 ? 24u : 16u) &&
		     !strcmp(v.name[7], "lookup") &&
		     !strcmp(nftnl_expr_get_str(v.e[7], NFTNL_EXPR_LOOKUP_SET),
			     v6 ? "probe-pods-v6" : "probe-pods-v4") &&
		     !strcmp(v.name[8], "counter") && !strcmp(v.name[9], "immediate") &&
		     !strcmp(v.name[10], "nat") &&
		     nftnl_expr_get_u32(v.e[10], NFTNL_EXPR_NAT_TYPE) == NFT_NAT_SNAT &&
		     nftnl_expr_get_u32(v.e[10], NFTNL_EXPR_NAT_FAMILY) ==
			     (v6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
		at = find_expr(&v, "immediate", 0);
		d = at >= 0 ? nftnl_expr_get(v.e[at], NFTNL_EXPR_IMM_DATA, &len) : NULL;
		ok = ok && d && len == (v6 ? 16u : 4u) && !memcmp(d, probe, len);
		if (!ok) {
			printf("#   rule %zu (%s) wrong\n", i, tag);
			free_rules(r, n);
			T_ASSERT(ok);
		}
	}
	free_rules(r, n);
	/* no kubelet UID known: the sets are kept in step, no rule */
	T_ASSERT_INT(build_host(el, 4, -1), 0);
	T_ASSERT_INT(parse_rules(r, 4), 0);
	T_ASSERT_INT(msg_count(), 11);
}

/* With the kubelet's cgroup: an output chain whose rule labels the
 * kubelet's sockets (uid and cgroup v2), and a SNAT rule that also wants
 * the label. */
static void t_host_cgroup_rules(void)
{
	const struct nft_host_spec spec = { .kubelet_uid = 0, .kubelet_cgroup = 0x1234567890ULL,
					    .kubelet_cgroup_level = 2 };
	unsigned char label[16] = { 0 };
	struct nftnl_rule *r[4];
	struct nftnl_chain *c;
	uint64_t id = 0;
	size_t n, chains = 0;

	label[15] = 0x80; /* bit 127 of the kernel's little-endian bitmap */
	T_ASSERT(host_buf || (host_buf = malloc(nft_host_bufsz(0))));
	nft_batch_init(&batch, host_buf, nft_host_bufsz(0), SEQ0);
	T_ASSERT_INT(nft_build_host_sync(&batch, &spec), 0);
	for (size_t i = 0; i < msg_count(); i++) {
		if (!is_nft(msg_at(i), NFT_MSG_NEWCHAIN))
			continue;
		c = nftnl_chain_alloc();
		T_ASSERT_INT(nftnl_chain_nlmsg_parse(msg_at(i), c), 0);
		if (!strcmp(nftnl_chain_get_str(c, NFTNL_CHAIN_NAME), "output")) {
			T_ASSERT_STR(nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE), "filter");
			T_ASSERT_INT(nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM), NF_INET_LOCAL_OUT);
		}
		nftnl_chain_free(c);
		chains++;
	}
	T_ASSERT_INT(chains, 2);
	n = parse_rules(r, 4);
	T_ASSERT_INT(n, 4); /* per family: the label rule, then the SNAT rule */
	for (size_t i = 0; i < n; i++) {
		bool mark = i % 2 == 0, ok;
		struct expr_view v;
		char tag[128];
		uint32_t len = 0;
		const void *d;
		ssize_t at;

		nft_rule_tag(r[i], tag, sizeof(tag));
		view(r[i], &v);
		if (mark) {
			at = find_expr(&v, "socket", 0);
			ok = strstr(tag, "warren:host-probe-mark-v") && at == 6 &&
			     !strcmp(nftnl_rule_get_str(r[i], NFTNL_RULE_CHAIN), "output") &&
			     nftnl_expr_get_u32(v.e[at], NFTNL_EXPR_SOCKET_KEY) == NFT_SOCKET_CGROUPV2 &&
			     nftnl_expr_get_u32(v.e[at], NFTNL_EXPR_SOCKET_LEVEL) == 2;
			d = ok ? nftnl_expr_get(v.e[at + 1], NFTNL_EXPR_CMP_DATA, &len) : NULL;
			if (d && len == 8)
				memcpy(&id, d, 8);
			ok = ok && id == 0x1234567890ULL && !strcmp(v.name[v.n - 1], "ct") &&
			     nftnl_expr_get_u32(v.e[v.n - 1], NFTNL_EXPR_CT_KEY) == NFT_CT_LABELS;
			d = ok ? nftnl_expr_get(v.e[v.n - 2], NFTNL_EXPR_IMM_DATA, &len) : NULL;
			ok = ok && d && len == 16 && !memcmp(d, label, 16);
		} else {
			/* after skuid: ct load label, bitwise & bit 127, cmp neq 0 */
			ok = strstr(tag, "warren:host-probe-snat-v") && v.n == 14 &&
			     !strcmp(v.name[6], "ct") &&
			     nftnl_expr_get_u32(v.e[6], NFTNL_EXPR_CT_KEY) == NFT_CT_LABELS &&
			     !strcmp(v.name[7], "bitwise") &&
			     nftnl_expr_get_u32(v.e[8], NFTNL_EXPR_CMP_OP) == NFT_CMP_NEQ;
			d = ok ? nftnl_expr_get(v.e[7], NFTNL_EXPR_BITWISE_MASK, &len) : NULL;
			ok = ok && d && len == 16 && !memcmp(d, label, 16) && !strcmp(v.name[13], "nat");
		}
		if (!ok) {
			printf("#   rule %zu (%s) wrong\n", i, tag);
			free_rules(r, n);
			T_ASSERT(ok);
		}
	}
	free_rules(r, n);
}

static void t_host_limits(void)
{
	struct nft_host_elem *el = calloc(2 * NFT_HOST_MAX_ELEMS + 1, sizeof(*el));
	size_t adds = 0, total = 0, n, k, matched;

	T_ASSERT(el);
	for (size_t i = 0; i < 2 * NFT_HOST_MAX_ELEMS + 1; i++) {
		uint32_t a = htonl(0x0a000000u + (uint32_t)i);

		el[i].family = i < NFT_HOST_MAX_ELEMS ? AF_INET : AF_INET6;
		memcpy(el[i].addr, &a, 4);
		el[i].comment = "0b7c9a4e-5d1f-4a8e-9c3b-2f6e8d1a7b40"; /* a pod uid's length */
	}
	/* a full node: every element, in messages of at most 256 */
	if (build_host(el, 2 * NFT_HOST_MAX_ELEMS, 0) < 0) {
		free(el);
		T_ASSERT(0);
	}
	n = msg_count();
	for (size_t i = 0; i < n; i++) {
		if (!is_nft(msg_at(i), NFT_MSG_NEWSETELEM))
			continue;
		adds++;
		T_ASSERT_INT(set_elems(msg_at(i), adds <= 4 ? "probe-pods-v4" : "probe-pods-v6",
				       NULL, 0, 0, &k, &matched), 0);
		T_ASSERT(k <= 256);
		total += k;
	}
	/* under net.core.wmem_default (208 KiB): one sendmsg takes it */
	printf("#   %zu elements: %zu bytes, %zu element messages\n", 2 * (size_t)NFT_HOST_MAX_ELEMS,
	       batch.len, adds);
	T_ASSERT(batch.len < 208 * 1024);
	T_ASSERT_INT(adds, 2 * NFT_HOST_MAX_ELEMS / 256);
	T_ASSERT_INT(total, 2 * NFT_HOST_MAX_ELEMS);
	/* one more of a family is refused, as is an unknown family */
	T_ASSERT_INT(build_host(el + NFT_HOST_MAX_ELEMS - 1, NFT_HOST_MAX_ELEMS + 2, 0), -E2BIG);
	el[0].family = AF_UNIX;
	T_ASSERT_INT(build_host(el, 1, 0), -EINVAL);
	el[0].family = AF_INET;
	T_ASSERT_INT(build_host(el, 1, 1LL << 32), -EINVAL);
	free(el);
}

static void t_host_delete_batch(void)
{
	T_ASSERT(host_buf || (host_buf = malloc(nft_host_bufsz(0))));
	nft_batch_init(&batch, host_buf, nft_host_bufsz(0), SEQ0);
	T_ASSERT_INT(nft_build_host_delete(&batch), 0);
	T_ASSERT_INT(msg_count(), 4);
	T_ASSERT(is_nft(msg_at(1), NFT_MSG_NEWTABLE));
	T_ASSERT(is_nft(msg_at(2), NFT_MSG_DELTABLE));
	free(host_buf);
	host_buf = NULL;
}

/* ---- rtnetlink ---- */

struct tb {
	const struct nlattr *a[64];
};

static int tb_cb(const struct nlattr *attr, void *data)
{
	struct tb *t = data;

	if (mnl_attr_get_type(attr) < 64)
		t->a[mnl_attr_get_type(attr)] = attr;
	return MNL_CB_OK;
}

static void check_rule(uint16_t type, int family)
{
	char buf[ROUTE_MSG_BUFSZ];
	struct tb t = { 0 };
	const struct nlmsghdr *nlh = (const void *)buf;
	const struct fib_rule_hdr *frh;
	int len = route_build_rule(buf, sizeof(buf), type, family, 77);

	T_ASSERT(len > 0);
	T_ASSERT_INT(nlh->nlmsg_len, len);
	T_ASSERT_INT(nlh->nlmsg_type, type);
	T_ASSERT_INT(nlh->nlmsg_seq, 77);
	T_ASSERT(nlh->nlmsg_flags & NLM_F_ACK);
	if (type == RTM_NEWRULE)
		T_ASSERT((nlh->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL)) ==
			 (NLM_F_CREATE | NLM_F_EXCL));
	frh = mnl_nlmsg_get_payload(nlh);
	T_ASSERT_INT(frh->family, family);
	T_ASSERT_INT(frh->action, FR_ACT_TO_TBL);
	T_ASSERT_INT(frh->table, 100);
	T_ASSERT(mnl_attr_parse(nlh, sizeof(*frh), tb_cb, &t) >= 0);
	T_ASSERT(t.a[FRA_FWMARK] && t.a[FRA_FWMASK] && t.a[FRA_PRIORITY] && t.a[FRA_TABLE]);
	T_ASSERT_INT(mnl_attr_get_u32(t.a[FRA_FWMARK]), 0x111);
	T_ASSERT_INT(mnl_attr_get_u32(t.a[FRA_FWMASK]), 0xfff);
	T_ASSERT_INT(mnl_attr_get_u32(t.a[FRA_PRIORITY]), 32764);
	T_ASSERT_INT(mnl_attr_get_u32(t.a[FRA_TABLE]), 100);
	t_failed_current = 0;
}

static void t_rule_requests(void)
{
	check_rule(RTM_NEWRULE, AF_INET);
	if (t_failed_current)
		return;
	check_rule(RTM_NEWRULE, AF_INET6);
	if (t_failed_current)
		return;
	check_rule(RTM_DELRULE, AF_INET);
	if (t_failed_current)
		return;
	check_rule(RTM_DELRULE, AF_INET6);
}

static void check_route(uint16_t type, int family)
{
	char buf[ROUTE_MSG_BUFSZ];
	struct tb t = { 0 };
	const struct nlmsghdr *nlh = (const void *)buf;
	const struct rtmsg *rtm;
	int len = route_build_local(buf, sizeof(buf), type, family, 5);

	T_ASSERT(len > 0);
	T_ASSERT_INT(nlh->nlmsg_type, type);
	T_ASSERT(nlh->nlmsg_flags & NLM_F_ACK);
	if (type == RTM_NEWROUTE)
		T_ASSERT((nlh->nlmsg_flags & (NLM_F_CREATE | NLM_F_REPLACE)) ==
			 (NLM_F_CREATE | NLM_F_REPLACE));
	rtm = mnl_nlmsg_get_payload(nlh);
	T_ASSERT_INT(rtm->rtm_family, family);
	T_ASSERT_INT(rtm->rtm_type, RTN_LOCAL);
	T_ASSERT_INT(rtm->rtm_dst_len, 0);
	T_ASSERT_INT(rtm->rtm_table, 100);
	if (type == RTM_NEWROUTE)
		T_ASSERT_INT(rtm->rtm_scope, RT_SCOPE_HOST);
	T_ASSERT(mnl_attr_parse(nlh, sizeof(*rtm), tb_cb, &t) >= 0);
	T_ASSERT(!t.a[RTA_DST]); /* default route */
	T_ASSERT(t.a[RTA_TABLE] && t.a[RTA_OIF]);
	T_ASSERT_INT(mnl_attr_get_u32(t.a[RTA_TABLE]), 100);
	T_ASSERT_INT(mnl_attr_get_u32(t.a[RTA_OIF]), 1);
	t_failed_current = 0;
}

static void t_route_requests(void)
{
	check_route(RTM_NEWROUTE, AF_INET);
	if (t_failed_current)
		return;
	check_route(RTM_NEWROUTE, AF_INET6);
	if (t_failed_current)
		return;
	check_route(RTM_DELROUTE, AF_INET);
	if (t_failed_current)
		return;
	check_route(RTM_DELROUTE, AF_INET6);
}

static void t_route_bad_args(void)
{
	char buf[ROUTE_MSG_BUFSZ], small[16];

	T_ASSERT_INT(route_build_rule(buf, sizeof(buf), RTM_NEWRULE, AF_UNIX, 1), -EINVAL);
	T_ASSERT_INT(route_build_rule(buf, sizeof(buf), RTM_NEWROUTE, AF_INET, 1), -EINVAL);
	T_ASSERT_INT(route_build_local(buf, sizeof(buf), RTM_NEWRULE, AF_INET, 1), -EINVAL);
	T_ASSERT_INT(route_build_local(small, sizeof(small), RTM_NEWROUTE, AF_INET, 1), -ENOSPC);
}

T_MAIN(T_CASE(t_apply_batch_framing), T_CASE(t_apply_tables_and_flush), T_CASE(t_apply_chains),
       T_CASE(t_apply_rules_tags), T_CASE(t_outbound_only_rules), T_CASE(t_reroute_rules),
       T_CASE(t_reroute_parse), T_CASE(t_redirect_ports_and_marks), T_CASE(t_family_guards),
       T_CASE(t_connmark_rules), T_CASE(t_probe_addresses), T_CASE(t_delete_batch),
       T_CASE(t_batch_errors_and_describe), T_CASE(t_rule_requests), T_CASE(t_route_requests),
       T_CASE(t_route_bad_args), T_CASE(t_host_sync_batch), T_CASE(t_host_snat_rules), T_CASE(t_host_cgroup_rules),
       T_CASE(t_host_limits), T_CASE(t_host_delete_batch))
