/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared between the eBPF capture program (bpf/capture.bpf.c) and its
 * userspace (netlink/inpod_ebpf.c, the tunnel): the listener map's keys
 * and the size of the pod address table. Plain constants, no kernel or
 * libc headers, so both sides can include it.
 */
#ifndef WARREN_BPF_CAPTURE_H
#define WARREN_BPF_CAPTURE_H

/* Keys of the pod's SOCKMAP "warren_lis": the tunnel's listeners. */
#define CAPTURE_KEY_OUTBOUND 0 /* [::]:15001 */
#define CAPTURE_KEY_INBOUND 1  /* [::]:15006 */
#define CAPTURE_N_KEYS 2

/* Slots of the per-CPU counter map "warren_cnt": SYNs assigned to the
 * outbound and inbound listeners (same numbers as the keys above), and
 * SYNs dropped for want of a listener. */
#define CAPTURE_CNT_OUTBOUND CAPTURE_KEY_OUTBOUND
#define CAPTURE_CNT_INBOUND CAPTURE_KEY_INBOUND
#define CAPTURE_CNT_DROPPED 2
#define CAPTURE_N_CNT 3

/* At most this many addresses per family (prevResult's ips). */
#define CAPTURE_MAX_ADDRS 4

/* Slot 0 of the array "warren_pod": the pod's own addresses (prevResult),
 * network byte order, IPv4 in word 0. Fixed-width fields only, the same
 * layout for clang -target bpf and the host compiler. */
struct capture_pod {
	unsigned int n_ip4;
	unsigned int n_ip6;
	unsigned int ip4[CAPTURE_MAX_ADDRS];
	unsigned int ip6[CAPTURE_MAX_ADDRS][4];
};

/* The program's name as the kernel shows it (BPF_OBJ_NAME_LEN 16). */
#define CAPTURE_PROG_NAME "warren_capture"

#endif
