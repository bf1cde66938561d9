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

#endif
