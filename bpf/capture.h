/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared between the eBPF capture program (bpf/capture.bpf.c) and its
 * userspace (netlink/inpod_ebpf.c, the tunnel): the listener map's keys,
 * the pod address map's key and its bound. Plain C, no kernel or libc
 * headers, so both sides can include it.
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

/* A key of the hash "warren_pod": one of the pod's own addresses
 * (prevResult). family: AF_INET (2) or AF_INET6 (10); addr in network byte
 * order, IPv4 in word 0 and the rest zero. Fixed-width fields, no padding:
 * the same bytes for clang -target bpf and the host compiler. */
struct capture_addr {
	unsigned int family;
	unsigned int addr[4];
};

/* The program's name as the kernel shows it (BPF_OBJ_NAME_LEN 16). */
#define CAPTURE_PROG_NAME "warren_capture"

#endif
