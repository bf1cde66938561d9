/* SPDX-License-Identifier: Apache-2.0 */
/*
 * In-pod redirection: everything warren programs inside an enrolled pod's
 * network namespace, through libnftnl/libmnl and rtnetlink (never the nft
 * or ip binaries).
 *
 *  - nftables: tables "inet warren-nat" and "inet warren-mangle" (names in
 *    conf/warren.h), installed as ONE atomic batch (add+flush+re-add, so a
 *    re-apply reconciles). Shape of Istio's in-pod nftables rules,
 *    IPv4 and IPv6, every rule with a counter
 *    and a userdata tag "warren:<rule-name>" so CHECK can find it:
 *      nat prerouting (type nat, prio -100):
 *        tcp from 169.254.7.127 / fd16:9254:7127:1337:ffff:ffff:ffff:ffff: accept
 *        tcp daddr != 127.0.0.1/::1, dport != 15008, mark&0xfff != 0x539: redirect :15006
 *        (both left out when the pod bypasses inbound capture: Istio's
 *        "ingress mode", annotation ambient.istio.io/bypass-inbound-capture;
 *        reroutes of virtual interfaces come first, see conf/inpod_mode.h)
 *      nat output (type nat, prio -100):
 *        tcp to probe address: accept
 *        tcp mark&0xfff == 0x111: accept
 *        oifname lo, daddr != 127.0.0.1/::1: accept
 *        tcp daddr != 127.0.0.1/::1, mark&0xfff != 0x539: redirect :15001
 *      mangle prerouting (type filter, prio -150):
 *        mark&0xfff == 0x539: ct mark set ct mark & 0xfffff000 | 0x111
 *      mangle output (type route, prio -150):
 *        ct mark&0xfff == 0x111: meta mark set ct mark
 *  - rtnetlink: "ip rule fwmark 0x111/0xfff pref 32764 lookup 100" and
 *    "local default dev lo table 100", for AF_INET and (when IPv6 is not
 *    disabled on lo in that netns) AF_INET6.
 *
 * All functions take a netns fd and do their own scoped netns switch (or
 * open netlink sockets inside it). err receives a human-readable reason,
 * including the kernel's extended-ack message when there is one.
 * Return 0 or -errno.
 */
#ifndef WARREN_INPOD_H
#define WARREN_INPOD_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/inpod_mode.h"

/* Program everything, shaped by mode. All-or-nothing: on any failure,
 * whatever this call added is removed again before returning the error.
 * Idempotent, and a re-apply with another mode switches the rule set. */
int inpod_apply(int netns_fd, const struct inpod_mode *mode, char *err, size_t errlen);

/* Remove everything. Idempotent: success when nothing is there. */
int inpod_remove(int netns_fd, char *err, size_t errlen);

/* Verify everything is in place, in the shape of mode. 0 when complete;
 * -ENOENT with err naming the first missing piece (table, chain, rule tag,
 * ip rule or route), or -EEXIST naming a rule the mode excludes (an
 * inbound capture rule while !capture_inbound, a reroute of an interface
 * not in the list). */
int inpod_check(int netns_fd, const struct inpod_mode *mode, char *err, size_t errlen);

/* Are our nft tables present at all? 1 yes, 0 no, -errno on error. Used by
 * the tunnel on restart to decide whether a recorded pod is still ours. */
int inpod_present(int netns_fd);

#endif
