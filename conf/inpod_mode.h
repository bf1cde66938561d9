/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A pod's capture mode: plain data shared by the plugin (which reads it
 * from the pod's annotations), the handoff protocol, netlink/inpod.c (which
 * programs it) and the tunnel (which records it). No I/O; any thread.
 */
#ifndef WARREN_INPOD_MODE_H
#define WARREN_INPOD_MODE_H

#include <stdbool.h>
#include <stddef.h>

/* How a pod is captured, from its annotations (Istio's per-pod options):
 *  - capture_inbound false: ambient.istio.io/bypass-inbound-capture, the
 *    two inbound rules of nat prerouting are left out ("ingress mode");
 *  - reroute: istio.io/reroute-virtual-interfaces, TCP arriving on these
 *    interfaces (a KubeVirt VM's tap, a nested container's veth) is the
 *    pod's outbound traffic: first in nat prerouting, one rule each,
 *    "iifname IF meta l4proto tcp redirect :15001", tag
 *    "warren:nat-pre-reroute-IF".
 * Plain data, no pointers: copy it freely. */
#define INPOD_MAX_REROUTE 8
#define INPOD_IFNAMSIZ 16
#define INPOD_BPF_DIR_MAX 96
/* Which mechanism captures the pod (the plugin's "redirect" key): the
 * nftables rules of netlink/inpod.h, or the sk_lookup program of
 * netlink/inpod_ebpf.h. */
enum inpod_redirect { INPOD_REDIRECT_NFTABLES = 0, INPOD_REDIRECT_EBPF };
struct inpod_mode {
	enum inpod_redirect redirect;
	/* INPOD_REDIRECT_EBPF: the bpffs mount holding the pod's pins
	 * (the plugin's "bpfDir"); "" otherwise. */
	char bpf_dir[INPOD_BPF_DIR_MAX];
	bool capture_inbound;
	size_t n_reroute;
	char reroute[INPOD_MAX_REROUTE][INPOD_IFNAMSIZ];
};

/* "nftables" / "ebpf". */
const char *inpod_redirect_name(enum inpod_redirect r);
/* Can redirect r program mode's per-pod options? 0, or -EOPNOTSUPP with
 * err naming the annotation the eBPF mode does not support. */
int inpod_mode_supported(const struct inpod_mode *mode, char *err, size_t errlen);
/* Everything captured by nftables, nothing rerouted. */
void inpod_mode_init(struct inpod_mode *m);
/* Same capture and the same interfaces in the same order? */
bool inpod_mode_equal(const struct inpod_mode *a, const struct inpod_mode *b);
/* Add one interface to reroute: 0, or -EINVAL with err saying why (not a
 * Linux interface name, lo, a duplicate, more than INPOD_MAX_REROUTE). */
int inpod_mode_add_reroute(struct inpod_mode *m, const char *ifname, char *err, size_t errlen);
/* The annotation's value "ifA,ifB" (spaces around names and empty items
 * ignored) into m's reroute list: 0 or -EINVAL with err; m's list is
 * unchanged on error. */
int inpod_mode_parse_reroute(struct inpod_mode *m, const char *csv, char *err, size_t errlen);

#endif
