/* SPDX-License-Identifier: Apache-2.0 */
/*
 * In-pod redirection (contract in inpod.h): nftables through nft.c and
 * policy routing through route.c, both over netlink sockets opened inside
 * the pod netns (the calling thread never stays in it).
 */
#include "netlink/inpod.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/netfilter.h>
#include <linux/netlink.h>

#include "conf/errbuf.h"
#include "conf/log.h"
#include "conf/warren.h"
#include "netlink/nft.h"
#include "netlink/nl.h"
#include "netlink/route.h"

static const char *inpod_fam_name(int family)
{
	return family == AF_INET6 ? "IPv6" : "IPv4";
}

static const char *inpod_hook_name(uint32_t hook)
{
	switch (hook) {
	case NF_INET_PRE_ROUTING:
		return "prerouting";
	case NF_INET_LOCAL_IN:
		return "input";
	case NF_INET_FORWARD:
		return "forward";
	case NF_INET_LOCAL_OUT:
		return "output";
	case NF_INET_POST_ROUTING:
		return "postrouting";
	}
	return "?";
}

static int inpod_open_socks(int netns_fd, struct nl_sock *nf, struct nl_sock *rt, char *err,
		      size_t errlen)
{
	int ret;

	ret = nl_open(nf, NETLINK_NETFILTER, netns_fd);
	if (ret < 0) {
		errbuf_set(err, errlen,
			   "cannot open a netfilter netlink socket in the pod netns: %s",
			   strerror(-ret));
		return ret;
	}
	if (!rt)
		return 0;
	ret = nl_open(rt, NETLINK_ROUTE, netns_fd);
	if (ret < 0)
		errbuf_set(err, errlen, "cannot open a route netlink socket in the pod netns: %s",
			   strerror(-ret));
	return ret;
}

static int inpod_any_table(struct nl_sock *nf)
{
	const char *const *tables;
	size_t n = nft_inpod_tables(&tables);
	int ret = 0;

	for (size_t i = 0; i < n && ret == 0; i++)
		ret = nft_table_exists(nf, tables[i]);
	return ret;
}

static int inpod_families(int netns_fd, int fams[2], char *err, size_t errlen)
{
	int v6 = route_ipv6_enabled(netns_fd);

	if (v6 < 0) {
		errbuf_set(err, errlen, "cannot enter the pod netns to read its IPv6 settings: %s",
			   strerror(-v6));
		return v6;
	}
	fams[0] = AF_INET;
	fams[1] = AF_INET6;
	return v6 ? 2 : 1;
}

int inpod_apply(int netns_fd, const struct inpod_mode *mode, char *err, size_t errlen)
{
	struct nl_sock nf = { 0 }, rt = { 0 };
	bool rule_added[2] = { false, false }, route_added[2] = { false, false };
	bool had_nft = true, nft_done = false;
	int fams[2], nfam, ret;
	char ignore[256];

	errbuf_set(err, errlen, "%s", "");
	ret = inpod_open_socks(netns_fd, &nf, &rt, err, errlen);
	if (ret < 0)
		goto out;
	ret = nfam = inpod_families(netns_fd, fams, err, errlen);
	if (ret < 0)
		goto out;
	ret = inpod_any_table(&nf);
	if (ret < 0) {
		errbuf_set(err, errlen, "cannot list nftables tables in the pod netns: %s",
			   strerror(-ret));
		goto out;
	}
	had_nft = ret == 1;
	/* One atomic batch: on failure nothing changed. */
	ret = nft_apply(&nf, mode, err, errlen);
	if (ret < 0)
		goto out;
	nft_done = true;
	for (int i = 0; i < nfam; i++) {
		int existed = route_local_check(&rt, fams[i]);

		if (existed < 0) {
			ret = existed;
			errbuf_set(err, errlen, "cannot list %s routes in the pod netns: %s",
				   inpod_fam_name(fams[i]), strerror(-ret));
			goto out;
		}
		ret = route_rule_add(&rt, fams[i], &rule_added[i], err, errlen);
		if (ret < 0)
			goto out;
		ret = route_local_add(&rt, fams[i], err, errlen);
		if (ret < 0)
			goto out;
		route_added[i] = !existed;
	}
	ret = 0;
out:
	if (ret < 0 && nft_done) {
		/* All-or-nothing: undo only what this call created, so a failed
		 * re-apply does not tear down a previously working pod. */
		for (int i = 0; i < 2; i++) {
			if (route_added[i] && route_local_del(&rt, fams[i], ignore, sizeof(ignore)))
				log_warn("rollback: %s", ignore);
			if (rule_added[i] && route_rule_del(&rt, fams[i], ignore, sizeof(ignore)))
				log_warn("rollback: %s", ignore);
		}
		if (!had_nft && nft_delete(&nf, ignore, sizeof(ignore)))
			log_warn("rollback: %s", ignore);
	}
	nl_close(&rt);
	nl_close(&nf);
	return ret;
}

int inpod_remove(int netns_fd, char *err, size_t errlen)
{
	static const int fams[] = { AF_INET, AF_INET6 };
	struct nl_sock nf = { 0 }, rt = { 0 };
	char e[256];
	int ret, first = 0;

	errbuf_set(err, errlen, "%s", "");
	ret = inpod_open_socks(netns_fd, &nf, &rt, err, errlen);
	if (ret < 0)
		goto out;
	/* Keep going after an error so as much as possible is removed; report
	 * the first one. */
	ret = nft_delete(&nf, e, sizeof(e));
	errbuf_keep_first(&first, ret, err, errlen, e);
	for (size_t i = 0; i < ARRAY_SIZE(fams); i++) {
		ret = route_local_del(&rt, fams[i], e, sizeof(e));
		errbuf_keep_first(&first, ret, err, errlen, e);
		ret = route_rule_del(&rt, fams[i], e, sizeof(e));
		errbuf_keep_first(&first, ret, err, errlen, e);
	}
	ret = first;
out:
	nl_close(&rt);
	nl_close(&nf);
	return ret;
}

static bool inpod_reroute_expected(const struct inpod_mode *mode, const char *tag)
{
	for (size_t i = 0; i < mode->n_reroute; i++)
		if (!strcmp(tag + strlen(NFT_REROUTE_TAG_PREFIX), mode->reroute[i]))
			return true;
	return false;
}

static int inpod_check_nft(struct nl_sock *nf, const struct inpod_mode *mode, char *err, size_t errlen)
{
	const char *const *tables;
	const struct nft_chain_spec *chains;
	const struct nft_rule_spec *rules;
	size_t ntables = nft_inpod_tables(&tables);
	size_t nchains = nft_inpod_chains(&chains);
	size_t nrules = nft_inpod_rules(&rules);
	struct nft_tags tags = { 0 };
	char e[256];
	int ret = 0;

	for (size_t t = 0; t < ntables; t++) {
		ret = nft_table_exists(nf, tables[t]);
		if (ret < 0) {
			errbuf_set(err, errlen, "cannot query nftables table inet %s: %s",
				   tables[t], strerror(-ret));
			goto out;
		}
		if (ret == 0) {
			ret = -ENOENT;
			errbuf_set(err, errlen, "nftables table inet %s missing", tables[t]);
			goto out;
		}
		for (size_t c = 0; c < nchains; c++) {
			struct nft_chain_info ci;

			if (strcmp(chains[c].table, tables[t]))
				continue;
			ret = nft_chain_get(nf, tables[t], chains[c].name, &ci);
			if (ret == -ENOENT) {
				errbuf_set(err, errlen, "nftables chain %s missing from inet %s",
					   chains[c].name, tables[t]);
				goto out;
			}
			if (ret < 0) {
				errbuf_set(err, errlen,
					   "cannot query nftables chain inet %s %s: %s",
					   tables[t], chains[c].name, strerror(-ret));
				goto out;
			}
			if (!nft_chain_matches(&ci, &chains[c])) {
				ret = -ENOENT;
				errbuf_set(err, errlen,
					   "nftables chain inet %s %s is not \"type %s hook %s priority %d\"",
					   tables[t], chains[c].name, chains[c].type,
					   inpod_hook_name(chains[c].hook), chains[c].prio);
				goto out;
			}
		}
		nft_tags_free(&tags);
		ret = nft_dump_tags(nf, tables[t], &tags, e, sizeof(e));
		if (ret < 0) {
			errbuf_set(err, errlen, "cannot list the rules of inet %s: %s", tables[t],
				   e);
			goto out;
		}
		for (size_t r = 0; r < nrules; r++) {
			bool found;

			if (strcmp(rules[r].table, tables[t]))
				continue;
			found = nft_tags_find(&tags, rules[r].chain, rules[r].tag);
			if (found && rules[r].inbound && !mode->capture_inbound) {
				ret = -EEXIST;
				errbuf_set(err, errlen,
					   "nftables rule %s is in inet %s chain %s, but the pod was enrolled with inbound capture bypassed (" ANNOTATION_BYPASS_INBOUND_CAPTURE ")",
					   rules[r].tag, tables[t], rules[r].chain);
				goto out;
			}
			if (!found && (mode->capture_inbound || !rules[r].inbound)) {
				ret = -ENOENT;
				errbuf_set(err, errlen,
					   "nftables rule %s missing from inet %s chain %s",
					   rules[r].tag, tables[t], rules[r].chain);
				goto out;
			}
		}
		if (strcmp(tables[t], NFT_TABLE_NAT))
			continue;
		for (size_t i = 0; i < mode->n_reroute; i++) {
			char tag[sizeof(NFT_REROUTE_TAG_PREFIX) + INPOD_IFNAMSIZ];

			snprintf(tag, sizeof(tag), "%s%s", NFT_REROUTE_TAG_PREFIX, mode->reroute[i]);
			if (!nft_tags_find(&tags, "prerouting", tag)) {
				ret = -ENOENT;
				errbuf_set(err, errlen, "nftables rule %s missing from inet %s chain prerouting",
					   tag, tables[t]);
				goto out;
			}
		}
		for (size_t i = 0; i < tags.n; i++) {
			if (!strncmp(tags.v[i].tag, NFT_REROUTE_TAG_PREFIX, strlen(NFT_REROUTE_TAG_PREFIX)) &&
			    !inpod_reroute_expected(mode, tags.v[i].tag)) {
				ret = -EEXIST;
				errbuf_set(err, errlen,
					   "nftables rule %s is in inet %s chain %s, but the pod was enrolled without rerouting that interface (" ANNOTATION_REROUTE_VIRTUAL_INTERFACES ")",
					   tags.v[i].tag, tables[t], tags.v[i].chain);
				goto out;
			}
		}
	}
	ret = 0;
out:
	nft_tags_free(&tags);
	return ret;
}

int inpod_check(int netns_fd, const struct inpod_mode *mode, char *err, size_t errlen)
{
	struct nl_sock nf = { 0 }, rt = { 0 };
	int fams[2], nfam, ret;

	errbuf_set(err, errlen, "%s", "");
	ret = inpod_open_socks(netns_fd, &nf, &rt, err, errlen);
	if (ret < 0)
		goto out;
	ret = inpod_check_nft(&nf, mode, err, errlen);
	if (ret < 0)
		goto out;
	ret = nfam = inpod_families(netns_fd, fams, err, errlen);
	if (ret < 0)
		goto out;
	for (int i = 0; i < nfam; i++) {
		ret = route_rule_check(&rt, fams[i]);
		if (ret == 0) {
			ret = -ENOENT;
			errbuf_set(err, errlen, "%s ip rule \"fwmark 0x%x/0x%x pref %u lookup %u\" missing",
				   inpod_fam_name(fams[i]), MARK_CONN, MARK_MASK, RULE_PRIORITY_INPOD,
				   ROUTE_TABLE_INPOD);
			goto out;
		}
		if (ret < 0) {
			errbuf_set(err, errlen, "cannot list %s ip rules: %s", inpod_fam_name(fams[i]),
				   strerror(-ret));
			goto out;
		}
		ret = route_local_check(&rt, fams[i]);
		if (ret == 0) {
			ret = -ENOENT;
			errbuf_set(err, errlen,
				   "%s route \"local default dev lo table %u\" missing",
				   inpod_fam_name(fams[i]), ROUTE_TABLE_INPOD);
			goto out;
		}
		if (ret < 0) {
			errbuf_set(err, errlen, "cannot list %s routes: %s", inpod_fam_name(fams[i]),
				   strerror(-ret));
			goto out;
		}
	}
	ret = 0;
out:
	nl_close(&rt);
	nl_close(&nf);
	return ret;
}

int inpod_present(int netns_fd)
{
	struct nl_sock nf = { 0 };
	int ret;

	ret = inpod_open_socks(netns_fd, &nf, NULL, NULL, 0);
	if (ret >= 0)
		ret = inpod_any_table(&nf);
	nl_close(&nf);
	return ret;
}
