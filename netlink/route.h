/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The in-pod policy routing, over rtnetlink:
 *   ip rule fwmark 0x111/0xfff pref 32764 lookup 100
 *   ip route replace local default dev lo table 100   (RTN_LOCAL, scope host)
 * per address family (AF_INET / AF_INET6). Builders only fill a caller
 * buffer (unit-testable without root); the I/O functions take an nl_sock
 * opened on NETLINK_ROUTE inside the pod netns. Values come from
 * conf/warren.h. All return 0 or -errno unless stated.
 */
#ifndef WARREN_ROUTE_H
#define WARREN_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netlink/nl.h"

/* Enough for any request built here. */
#define ROUTE_MSG_BUFSZ 512

/* The loopback device has this ifindex in every netns (the kernel
 * registers it first, LOOPBACK_IFINDEX). */
#define ROUTE_LO_IFINDEX 1u

/* Build the rule request: type RTM_NEWRULE (create, exclusive: a
 * duplicate gives EEXIST) or RTM_DELRULE. family AF_INET or AF_INET6.
 * Returns the message length or -errno (-EINVAL, -ENOSPC). */
int route_build_rule(void *buf, size_t buflen, uint16_t type, int family, uint32_t seq);

/* Build the route request: RTM_NEWROUTE (create|replace) or RTM_DELROUTE.
 * Returns the message length or -errno. */
int route_build_local(void *buf, size_t buflen, uint16_t type, int family, uint32_t seq);

/* Add the rule. EEXIST is success; *added (may be NULL) tells whether
 * this call created it. */
int route_rule_add(struct nl_sock *s, int family, bool *added, char *err, size_t errlen);
/* Delete the rule (every duplicate of it). Absent is success. */
int route_rule_del(struct nl_sock *s, int family, char *err, size_t errlen);
/* 1 present, 0 absent, -errno. */
int route_rule_check(struct nl_sock *s, int family);

/* Add (replace) the local default route in table 100. */
int route_local_add(struct nl_sock *s, int family, char *err, size_t errlen);
/* Delete it. Absent (ESRCH/ENOENT) is success. */
int route_local_del(struct nl_sock *s, int family, char *err, size_t errlen);
/* 1 present, 0 absent, -errno. */
int route_local_check(struct nl_sock *s, int family);

/* Does an interface of the socket's netns hold addr (4 or 16 bytes of
 * family, network order)? 1 yes, 0 no, -errno. */
int route_addr_check(struct nl_sock *s, int family, const void *addr);

/* Is IPv6 usable on lo inside netns_fd (< 0: current)? Reads
 * /proc/sys/net/ipv6/conf/lo/disable_ipv6 while inside that netns (sysctl
 * files reflect the opener's netns). 1 yes, 0 no (disabled, or no IPv6 at
 * all), -errno when the netns cannot be entered. */
int route_ipv6_enabled(int netns_fd);

/* The eBPF capture mode's rules (docs/ebpf.md), described as data:
 *   pref 32762: fwmark 0x539/0xfff lookup main (the tunnel's own sockets)
 *   pref 32763: to PROBE/32 (/128) ipproto tcp lookup main
 *     (the app's replies to kubelet probes leave normally)
 *   pref 32764: ipproto tcp lookup 100
 *     (every other TCP packet the app sends, first SYN included, is
 *     delivered locally, where the sk_lookup program picks the tunnel's
 *     listener or the tunnel's transparent socket gets the reply)
 * and "local default dev lo table 100 src POD-IP" (so the app's outbound
 * connections keep the pod's address as their source). A "not fwmark"
 * rule would not do: "not" inverts the whole selector, protocol included,
 * and would take ARP and ICMP local too. */
#define ROUTE_EBPF_RULES 3
struct route_rule {
	uint32_t priority;
	uint32_t table;
	uint32_t fwmark, fwmask; /* mask 0: no fwmark selector */
	bool invert;             /* "not" */
	uint8_t ip_proto;        /* 0: any */
	uint8_t dst_len;         /* 0: any destination */
	unsigned char dst[16];
	const char *text;        /* for messages, "to ... lookup main" */
};

/* The rules above for family; returns ROUTE_EBPF_RULES. */
size_t route_ebpf_rules(int family, struct route_rule out[ROUTE_EBPF_RULES]);

/* Build an RTM_NEWRULE (exclusive) / RTM_DELRULE request for r. */
int route_build_rule_spec(void *buf, size_t buflen, uint16_t type, int family,
			  const struct route_rule *r, uint32_t seq);
/* Add r: EEXIST is success; *added tells whether this call created it. */
int route_spec_add(struct nl_sock *s, int family, const struct route_rule *r, bool *added,
		   char *err, size_t errlen);
/* Delete r (and duplicates). Absent is success. */
int route_spec_del(struct nl_sock *s, int family, const struct route_rule *r, char *err,
		   size_t errlen);
/* 1 present, 0 absent, -errno. */
int route_spec_check(struct nl_sock *s, int family, const struct route_rule *r);

/* "local default dev lo table 100", with prefsrc src (4 or 16 bytes,
 * NULL for none): replace. */
int route_build_local_src(void *buf, size_t buflen, int family, const void *src, uint32_t seq);
int route_local_add_src(struct nl_sock *s, int family, const void *src, char *err, size_t errlen);

/* net.ipv4.conf.all.accept_local inside netns_fd (the eBPF mode's rule
 * sends the reverse-path check of an inbound TCP SYN to table 100, whose
 * answer is "local"; the kernel drops such a SYN as a martian unless
 * accept_local is on); netns_fd < 0: the current netns. 0 or -errno. */
int route_accept_local(int netns_fd, bool on);

#endif
