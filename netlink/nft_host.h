/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node's host table: kubelet probes to enrolled pods leave the node
 * from the probe address (Istio's host rule), so
 * the in-pod rules let them reach the app directly instead of capturing
 * them as plaintext into 15006, where a STRICT PeerAuthentication would
 * refuse them.
 *
 *   table inet warren-host {
 *     set probe-pods-v4 { type ipv4_addr; }    one element per enrolled
 *     set probe-pods-v6 { type ipv6_addr; }    pod IP, comment = pod UID
 *     chain postrouting { type nat hook postrouting priority srcnat - 1; }
 *       meta nfproto ipv4 meta l4proto tcp meta skuid UID ip daddr @probe-pods-v4
 *           counter snat ip to 169.254.7.127    comment "warren:host-probe-snat-v4"
 *       (and the same for ipv6, to fd16:9254:7127:1337:ffff:ffff:ffff:ffff)
 *   }
 *
 * With the kubelet's cgroup v2 known (kubelet_cgroup != 0), the UID alone
 * no longer decides: the socket expression is only allowed before
 * routing, so an output chain labels the kubelet's own connections and
 * the SNAT rule also requires the label (after `meta skuid UID`):
 *
 *     chain output { type filter hook output priority filter; }
 *       meta nfproto ipv4 meta l4proto tcp meta skuid UID
 *           socket cgroupv2 level LEVEL "PATH" ip daddr @probe-pods-v4
 *           counter ct label set 127            comment "warren:host-probe-mark-v4"
 *     postrouting: ... meta skuid UID ct label 127 ip daddr @probe-pods-v4 ...
 *
 * A conntrack label, not a packet mark: marks are shared with kube-proxy
 * and the primary CNI, and a mark bit someone else set would pass as ours.
 *
 * One priority ahead of srcnat, so that no masquerade rule of the primary
 * CNI at the same priority decides first. The sync batch reconciles the
 * whole table at once (add table, flush its rules, re-add chain and sets,
 * flush and refill the sets, re-add the rules): the kernel applies all of
 * it or none, and re-running it repairs whatever changed by hand. It never
 * re-registers the hook (docs/performance.md has its cost). The
 * add batch puts a new pod's addresses in and touches nothing else.
 * Builders write into a caller buffer (unit-testable); the I/O functions
 * send through a NETLINK_NETFILTER nl_sock in the node's netns.
 */
#ifndef WARREN_NFT_HOST_H
#define WARREN_NFT_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netlink/nft.h"

#define NFT_HOST_TABLE    "warren-host"
#define NFT_HOST_CHAIN    "postrouting"
#define NFT_HOST_SET_V4   "probe-pods-v4"
#define NFT_HOST_SET_V6   "probe-pods-v6"
#define NFT_HOST_TAG_V4   "warren:host-probe-snat-v4"
#define NFT_HOST_TAG_V6   "warren:host-probe-snat-v6"
#define NFT_HOST_PRIO     99 /* NF_IP_PRI_NAT_SRC - 1 */
#define NFT_HOST_OUT_CHAIN "output"
#define NFT_HOST_MARK_TAG_V4 "warren:host-probe-mark-v4"
#define NFT_HOST_MARK_TAG_V6 "warren:host-probe-mark-v6"
#define NFT_HOST_CT_LABEL 127 /* the conntrack label bit of a kubelet probe */
/* Elements per family: a node's pods are far fewer, and the whole batch
 * then stays under the netlink socket's default send buffer. */
#define NFT_HOST_MAX_ELEMS 1024

/* One pod address: family AF_INET or AF_INET6, addr in network order. */
struct nft_host_elem {
	int family;
	unsigned char addr[16];
	const char *comment; /* the pod UID; borrowed */
};

/* uid < 0: no kubelet UID known, so the sets are kept but no rule matches.
 * kubelet_cgroup: the cgroup v2 id (its directory's inode number) of the
 * kubelet's cgroup, at depth kubelet_cgroup_level ("/a/b" is 2); 0 for
 * the UID alone. */
struct nft_host_spec {
	long long kubelet_uid;
	uint64_t kubelet_cgroup;
	uint32_t kubelet_cgroup_level;
	const struct nft_host_elem *elems; /* either family, any order */
	size_t n;
};

/* Buffer size for a sync batch of n elements. */
size_t nft_host_bufsz(size_t n);

/* The sync batch (see above). 0, -E2BIG when a family has more than
 * NFT_HOST_MAX_ELEMS elements, -EINVAL for an unknown family, -ENOSPC,
 * -ENOMEM. */
int nft_build_host_sync(struct nft_batch *b, const struct nft_host_spec *spec);
/* The add batch: spec's elements only (kubelet_uid unused). It fails with
 * -ENOENT when the table or a set is missing; an element already there is
 * not an error. */
int nft_build_host_add(struct nft_batch *b, const struct nft_host_spec *spec);
/* add table + delete table: removes it, and never fails when it is absent. */
int nft_build_host_delete(struct nft_batch *b);

/* I/O. err gets a reason with the kernel's ext-ack text. 0 or -errno. */
int nft_host_sync(struct nl_sock *s, const struct nft_host_spec *spec, char *err,
		  size_t errlen);
int nft_host_add(struct nl_sock *s, const struct nft_host_spec *spec, char *err, size_t errlen);
int nft_host_delete(struct nl_sock *s, char *err, size_t errlen);

#endif
