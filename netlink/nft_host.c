/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node's host table for kubelet probes (contract in nft_host.h). The
 * rule's expressions are the ones `nft --debug=netlink` shows for
 * "meta l4proto tcp meta skuid UID ip daddr @set counter snat ip to ADDR",
 * with the network-header load guarded by `meta nfproto` as in nft.c;
 * the output chain's are those of "socket cgroupv2 level N PATH ... ct
 * label set 127", and the SNAT rule's label match those of "ct label 127".
 */
#include "netlink/nft_host.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>

#include "conf/errbuf.h"
#include "conf/warren.h"
#include "netlink/nft_build.h"

/* nft's datatype numbers for the set key (TYPE_IPADDR, TYPE_IP6ADDR). */
#define NFT_TYPE_IPADDR  7
#define NFT_TYPE_IP6ADDR 8
/* Elements per NEWSETELEM message. */
#define ELEMS_PER_MSG 256

static const struct nft_chain_spec nft_host_host_chain = {
	NFT_HOST_TABLE, NFT_HOST_CHAIN, "nat", NF_INET_POST_ROUTING, NFT_HOST_PRIO,
};
static const struct nft_chain_spec nft_host_out_chain = {
	NFT_HOST_TABLE, NFT_HOST_OUT_CHAIN, "filter", NF_INET_LOCAL_OUT, 0 /* NF_IP_PRI_FILTER */,
};

struct host_family {
	int family;
	uint8_t nfproto;
	const char *set;
	uint32_t set_id;
	uint32_t key_type;
	uint32_t key_len;
	uint32_t daddr_off;
	const char *probe;
	const char *tag;
	const char *mark_tag;
};

static const struct host_family nft_host_families[] = {
	{ AF_INET, NFPROTO_IPV4, NFT_HOST_SET_V4, 1, NFT_TYPE_IPADDR, 4, 16, PROBE_SNAT_IPV4,
	  NFT_HOST_TAG_V4, NFT_HOST_MARK_TAG_V4 },
	{ AF_INET6, NFPROTO_IPV6, NFT_HOST_SET_V6, 2, NFT_TYPE_IP6ADDR, 16, 24, PROBE_SNAT_IPV6,
	  NFT_HOST_TAG_V6, NFT_HOST_MARK_TAG_V6 },
};

size_t nft_host_bufsz(size_t n)
{
	/* the fixed part is under 2 KiB; an element under 100 bytes.
	 * nftb_open() uses half of the buffer. */
	return 2 * (8192 + n * 128);
}

static struct nftnl_set *nft_host_set_alloc(const struct host_family *hf)
{
	struct nftnl_set *s = nftnl_set_alloc();

	if (!s)
		return NULL;
	nftnl_set_set_str(s, NFTNL_SET_TABLE, NFT_HOST_TABLE);
	nftnl_set_set_str(s, NFTNL_SET_NAME, hf->set);
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_u32(s, NFTNL_SET_ID, hf->set_id);
	return s;
}

/* uint16_t type: NFT_MSG_NEWSET or NFT_MSG_DELSETELEM (no elements: flush). */
static int nft_host_put_set_msg(struct nftb *bl, const struct host_family *hf, uint16_t type)
{
	struct nftnl_set *s = nft_host_set_alloc(hf);
	struct nlmsghdr *nlh;

	if (!s)
		return -ENOMEM;
	if (type == NFT_MSG_NEWSET) {
		nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, hf->key_type);
		nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, hf->key_len);
		nlh = nftb_msg_start(bl, type, NLM_F_CREATE | NLM_F_ACK);
		nftnl_set_nlmsg_build_payload(nlh, s);
	} else {
		nlh = nftb_msg_start(bl, type, NLM_F_ACK);
		nftnl_set_elems_nlmsg_build_payload(nlh, s);
	}
	nftnl_set_free(s);
	return nftb_msg_end(bl, type == NFT_MSG_NEWSET ? MK_ADD_SET : MK_FLUSH_SET, NFT_HOST_TABLE,
			    hf->set);
}

/* Up to ELEMS_PER_MSG elements of family hf, from *next on. */
static int nft_host_put_elems(struct nftb *bl, const struct host_family *hf,
		     const struct nft_host_spec *spec, size_t *next)
{
	struct nftnl_set *s = nft_host_set_alloc(hf);
	struct nlmsghdr *nlh;
	size_t n = 0;
	int ret = 0;

	if (!s)
		return -ENOMEM;
	for (; *next < spec->n && n < ELEMS_PER_MSG; (*next)++) {
		const struct nft_host_elem *el = &spec->elems[*next];
		struct nftnl_udata_buf *ud;
		struct nftnl_set_elem *e;

		if (el->family != hf->family)
			continue;
		e = nftnl_set_elem_alloc();
		ud = nftnl_udata_buf_alloc(128);
		if (!e || !ud) {
			nftnl_set_elem_free(e);
			nftnl_udata_buf_free(ud);
			ret = -ENOMEM;
			goto out;
		}
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, el->addr, hf->key_len);
		if (el->comment && *el->comment &&
		    nftnl_udata_put_strz(ud, NFTNL_UDATA_SET_ELEM_COMMENT, el->comment))
			nftnl_set_elem_set(e, NFTNL_SET_ELEM_USERDATA, nftnl_udata_buf_data(ud),
					   nftnl_udata_buf_len(ud));
		nftnl_udata_buf_free(ud);
		nftnl_set_elem_add(s, e);
		n++;
	}
	if (n) {
		nlh = nftb_msg_start(bl, NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_ACK);
		nftnl_set_elems_nlmsg_build_payload(nlh, s);
		ret = nftb_msg_end(bl, MK_ADD_ELEMS, NFT_HOST_TABLE, hf->set);
	}
out:
	nftnl_set_free(s);
	return ret;
}

/* Register 1 gets the probe label's bit (the kernel's label bitmap). */
static void nft_host_label_bits(unsigned char bits[16])
{
	unsigned long words[16 / sizeof(unsigned long)] = { 0 };

	words[NFT_HOST_CT_LABEL / (8 * sizeof(unsigned long))] =
		1UL << (NFT_HOST_CT_LABEL % (8 * sizeof(unsigned long)));
	memcpy(bits, words, 16);
}

/* meta nfproto, tcp, skuid UID, then (after `extra`) daddr @set. */
static int nft_host_match_head(struct nftnl_rule *r, const struct host_family *hf, uint32_t uid)
{
	int ret;

	TRY(nx_nfproto(r, hf->nfproto));
	TRY(nx_tcp(r));
	TRY(nx_meta_load(r, NFT_META_SKUID));
	return nx_cmp(r, NFT_CMP_EQ, &uid, sizeof(uid));
}

static int nft_host_match_daddr(struct nftnl_rule *r, const struct host_family *hf)
{
	struct nftnl_expr *e;
	int ret;

	TRY(nx_payload(r, NFT_PAYLOAD_NETWORK_HEADER, hf->daddr_off, hf->key_len));
	e = nftnl_expr_alloc("lookup");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
		nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, hf->set);
		nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, hf->set_id);
	}
	return nx_add(r, e);
}

/* ct label 127: ct load label, bitwise with the bit, cmp neq 0. */
static int nft_host_match_label(struct nftnl_rule *r)
{
	static const unsigned char zero[16];
	unsigned char bits[16];
	struct nftnl_expr *e;
	int ret;

	nft_host_label_bits(bits);
	TRY(nx_ct_load(r, NFT_CT_LABELS));
	e = nftnl_expr_alloc("bitwise");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(bits));
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, bits, sizeof(bits));
		nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero, sizeof(zero));
	}
	TRY(nx_add(r, e));
	return nx_cmp(r, NFT_CMP_NEQ, zero, sizeof(zero));
}

static int nft_host_rule_exprs(struct nftnl_rule *r, const struct host_family *hf,
		      const struct nft_host_spec *spec)
{
	unsigned char probe[16];
	struct nftnl_expr *e;
	int ret;

	if (inet_pton(hf->family, hf->probe, probe) != 1)
		return -EINVAL;
	TRY(nft_host_match_head(r, hf, (uint32_t)spec->kubelet_uid));
	if (spec->kubelet_cgroup)
		TRY(nft_host_match_label(r));
	TRY(nft_host_match_daddr(r, hf));
	TRY(nx_counter(r));
	e = nftnl_expr_alloc("immediate");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
		nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, probe, hf->key_len);
	}
	TRY(nx_add(r, e));
	e = nftnl_expr_alloc("nat");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_SNAT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, hf->nfproto);
		nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
	}
	return nx_add(r, e);
}

/* The output chain's rule: the kubelet's sockets (UID and cgroup) to a
 * pod in the set get the probe label. */
static int nft_host_mark_exprs(struct nftnl_rule *r, const struct host_family *hf,
		      const struct nft_host_spec *spec)
{
	uint64_t id = spec->kubelet_cgroup;
	unsigned char bits[16];
	struct nftnl_expr *e;
	int ret;

	TRY(nft_host_match_head(r, hf, (uint32_t)spec->kubelet_uid));
	e = nftnl_expr_alloc("socket");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_KEY, NFT_SOCKET_CGROUPV2);
		nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_SOCKET_LEVEL, spec->kubelet_cgroup_level);
	}
	TRY(nx_add(r, e));
	TRY(nx_cmp(r, NFT_CMP_EQ, &id, sizeof(id)));
	TRY(nft_host_match_daddr(r, hf));
	TRY(nx_counter(r));
	nft_host_label_bits(bits);
	e = nftnl_expr_alloc("immediate");
	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
		nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, bits, sizeof(bits));
	}
	TRY(nx_add(r, e));
	return nx_ct_set(r, NFT_CT_LABELS);
}

static int nft_host_put_rule(struct nftb *bl, const struct host_family *hf,
		    const struct nft_host_spec *spec, bool mark)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	const char *tag = mark ? hf->mark_tag : hf->tag;
	struct nlmsghdr *nlh;
	int ret;

	if (!r)
		return -ENOMEM;
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, NFT_HOST_TABLE);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, mark ? NFT_HOST_OUT_CHAIN : NFT_HOST_CHAIN);
	ret = nx_comment(r, tag);
	if (ret >= 0)
		ret = mark ? nft_host_mark_exprs(r, hf, spec) : nft_host_rule_exprs(r, hf, spec);
	if (ret >= 0) {
		nlh = nftb_msg_start(bl, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK);
		nftnl_rule_nlmsg_build_payload(nlh, r);
		ret = nftb_msg_end(bl, MK_ADD_RULE, NFT_HOST_TABLE, tag);
	}
	nftnl_rule_free(r);
	return ret;
}

static int nft_host_check_spec(const struct nft_host_spec *spec)
{
	size_t count[2] = { 0, 0 };

	for (size_t i = 0; i < spec->n; i++) {
		if (spec->elems[i].family != AF_INET && spec->elems[i].family != AF_INET6)
			return -EINVAL;
		if (++count[spec->elems[i].family == AF_INET6] > NFT_HOST_MAX_ELEMS)
			return -E2BIG;
	}
	if (spec->kubelet_cgroup && spec->kubelet_cgroup_level > 255) /* the kernel's bound */
		return -EINVAL;
	return spec->kubelet_uid > (long long)UINT32_MAX - 1 ? -EINVAL : 0;
}

/* nft_host_check_spec() and nftb_begin(): 0, or -errno with nothing to close. */
static int nft_host_host_begin(struct nftb *bl, struct nft_batch *b, const struct nft_host_spec *spec)
{
	int ret = nft_host_check_spec(spec);

	return ret < 0 ? ret : nftb_begin(bl, b);
}

int nft_build_host_add(struct nft_batch *b, const struct nft_host_spec *spec)
{
	struct nftb bl;
	int ret;

	ret = nft_host_host_begin(&bl, b, spec);
	if (ret < 0)
		return ret;
	for (size_t f = 0; ret >= 0 && f < ARRAY_SIZE(nft_host_families); f++) {
		size_t next = 0;

		while (ret >= 0 && next < spec->n)
			ret = nft_host_put_elems(&bl, &nft_host_families[f], spec, &next);
	}
	return nftb_close(&bl, ret);
}

int nft_build_host_sync(struct nft_batch *b, const struct nft_host_spec *spec)
{
	struct nftb bl;
	int ret;

	ret = nft_host_host_begin(&bl, b, spec);
	if (ret < 0)
		return ret;
	ret = nftb_table(&bl, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_ACK, MK_ADD_TABLE,
			 NFT_HOST_TABLE);
	if (ret >= 0)
		ret = nftb_flush_table(&bl, NFT_HOST_TABLE);
	if (ret >= 0)
		ret = nftb_chain(&bl, &nft_host_host_chain);
	/* only with a cgroup to match: a UID-only table hooks nothing else */
	if (ret >= 0 && spec->kubelet_cgroup && spec->kubelet_uid >= 0)
		ret = nftb_chain(&bl, &nft_host_out_chain);
	for (size_t f = 0; ret >= 0 && f < ARRAY_SIZE(nft_host_families); f++) {
		size_t next = 0;

		ret = nft_host_put_set_msg(&bl, &nft_host_families[f], NFT_MSG_NEWSET);
		if (ret >= 0)
			ret = nft_host_put_set_msg(&bl, &nft_host_families[f], NFT_MSG_DELSETELEM);
		while (ret >= 0 && next < spec->n)
			ret = nft_host_put_elems(&bl, &nft_host_families[f], spec, &next);
		if (ret >= 0 && spec->kubelet_uid >= 0 && spec->kubelet_cgroup)
			ret = nft_host_put_rule(&bl, &nft_host_families[f], spec, true);
		if (ret >= 0 && spec->kubelet_uid >= 0)
			ret = nft_host_put_rule(&bl, &nft_host_families[f], spec, false);
	}
	return nftb_close(&bl, ret);
}

int nft_build_host_delete(struct nft_batch *b)
{
	struct nftb bl;
	int ret;

	ret = nftb_begin(&bl, b);
	if (ret < 0)
		return ret;
	return nftb_close(&bl, nftb_remove_table(&bl, NFT_HOST_TABLE));
}

static int nft_host_build_sync(struct nft_batch *b, const void *spec)
{
	return nft_build_host_sync(b, spec);
}

static int nft_host_build_add(struct nft_batch *b, const void *spec)
{
	return nft_build_host_add(b, spec);
}

static int nft_host_delete_cb(struct nft_batch *b, const void *unused)
{
	(void)unused;
	return nft_build_host_delete(b);
}

/* -E2BIG from the builder: say it in the table's terms. */
static int nft_host_too_many(int ret, char *err, size_t errlen)
{
	if (ret == -E2BIG)
		errbuf_set(err, errlen, "building the nftables batch: more pod addresses of one family than table inet " NFT_HOST_TABLE " holds (%d)",
			   NFT_HOST_MAX_ELEMS);
	return ret;
}

int nft_host_sync(struct nl_sock *s, const struct nft_host_spec *spec, char *err, size_t errlen)
{
	int ret = nftb_run(s, nft_host_bufsz(spec->n), nft_host_build_sync, spec,
			   "sync of table inet " NFT_HOST_TABLE,
			   "; nothing was changed. Check that the kernel has nf_tables with nat and "
			   "that no other program owns the table",
			   err, errlen);

	return nft_host_too_many(ret, err, errlen);
}

int nft_host_add(struct nl_sock *s, const struct nft_host_spec *spec, char *err, size_t errlen)
{
	int ret = nftb_run(s, nft_host_bufsz(spec->n), nft_host_build_add, spec,
			   "add to table inet " NFT_HOST_TABLE, "; nothing was changed", err, errlen);

	return nft_host_too_many(ret, err, errlen);
}

int nft_host_delete(struct nl_sock *s, char *err, size_t errlen)
{
	return nftb_run(s, nft_host_bufsz(0), nft_host_delete_cb, NULL, "delete of table inet " NFT_HOST_TABLE,
			"; nothing was changed", err, errlen);
}
