/* SPDX-License-Identifier: Apache-2.0 */
/*
 * warren's eBPF capture: one sk_lookup program per enrolled pod, attached
 * to the pod's netns (docs/ebpf.md). It runs when a TCP SYN finds no
 * established socket and picks the listener instead of the normal lookup:
 *
 *  - arriving on an interface other than lo, to any port but 15008, not
 *    from the kubelet's probe address: inbound, the tunnel's [::]:15006;
 *  - arriving on lo to an address that is not the pod's own (the app's
 *    outbound connection, routed to lo by the "not fwmark 0x539 ipproto
 *    tcp lookup 100" rule): outbound, the tunnel's [::]:15001;
 *  - everything else (loopback addresses, the pod's own addresses over lo:
 *    the tunnel's connections to the app and the app's to itself): the
 *    normal lookup.
 *
 * The accepted socket keeps the original destination as its local address,
 * so no conntrack or NAT is involved. An empty map slot (no tunnel) drops
 * the SYN, and TCP answers it with a reset: captured connections fail,
 * never pass uncaptured.
 */
/* The kernel's own types (vmlinux.h, from its BTF at build time), without
 * CO-RE relocations: the program reads only its context, struct
 * bpf_sk_lookup, whose layout is UAPI (the verifier rewrites each access).
 * With no relocation libbpf need not load and parse the running kernel's
 * BTF (megabytes) at every ADD (docs/ebpf.md). */
#define BPF_NO_PRESERVE_ACCESS_INDEX
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "bpf/capture.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define LO_IFINDEX 1
#define PORT_INBOUND_HBONE 15008
#define PROBE_IPV4 0xa9fe077fu /* 169.254.7.127 */

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, CAPTURE_N_KEYS);
	__type(key, __u32);
	__type(value, __u64);
} warren_lis SEC(".maps");

/* What the program decided, per CPU (CAPTURE_CNT_*): the eBPF mode's
 * counterpart of the nftables rules' counters, for warren-netns and tests
 * (bpftool map dump). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CAPTURE_N_CNT);
	__type(key, __u32);
	__type(value, __u64);
} warren_cnt SEC(".maps");

static __always_inline void count(__u32 what)
{
	__u64 *c = bpf_map_lookup_elem(&warren_cnt, &what);

	if (c)
		*c += 1;
}

/* The pod's own addresses (struct capture_addr keys, bpf/capture.h), put
 * in by the loader before attaching. A hash lookup rather than a loop over
 * an address table: the program stays small and the verifier's pass over
 * it, run at every ADD, short. The program only reads the map
 * (BPF_F_RDONLY_PROG). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_RDONLY_PROG);
	__uint(max_entries, 2 * CAPTURE_MAX_ADDRS);
	__type(key, struct capture_addr);
	__type(value, __u32);
} warren_pod SEC(".maps");

static __always_inline bool local_is_loopback(const struct bpf_sk_lookup *ctx)
{
	if (ctx->family == AF_INET)
		return (bpf_ntohl(ctx->local_ip4) >> 24) == 127;
	return ctx->local_ip6[0] == 0 && ctx->local_ip6[1] == 0 && ctx->local_ip6[2] == 0 &&
	       ctx->local_ip6[3] == bpf_htonl(1);
}

static __always_inline bool local_is_pod(const struct bpf_sk_lookup *ctx)
{
	struct capture_addr k = { .family = ctx->family };

	if (ctx->family == AF_INET) {
		k.addr[0] = ctx->local_ip4;
	} else {
		k.addr[0] = ctx->local_ip6[0];
		k.addr[1] = ctx->local_ip6[1];
		k.addr[2] = ctx->local_ip6[2];
		k.addr[3] = ctx->local_ip6[3];
	}
	return bpf_map_lookup_elem(&warren_pod, &k) != NULL;
}

static __always_inline bool remote_is_probe(const struct bpf_sk_lookup *ctx)
{
	if (ctx->family == AF_INET)
		return ctx->remote_ip4 == bpf_htonl(PROBE_IPV4);
	/* fd16:9254:7127:1337:ffff:ffff:ffff:ffff */
	return ctx->remote_ip6[0] == bpf_htonl(0xfd169254) && ctx->remote_ip6[1] == bpf_htonl(0x71271337) &&
	       ctx->remote_ip6[2] == 0xffffffff && ctx->remote_ip6[3] == 0xffffffff;
}

SEC("sk_lookup")
int warren_capture(struct bpf_sk_lookup *ctx)
{
	struct bpf_sock *sk;
	__u32 key;
	long err;

	if (ctx->protocol != IPPROTO_TCP || local_is_loopback(ctx))
		return SK_PASS;
	if (ctx->ingress_ifindex == LO_IFINDEX) {
		if (local_is_pod(ctx))
			return SK_PASS;
		key = CAPTURE_KEY_OUTBOUND;
	} else {
		if (ctx->local_port == PORT_INBOUND_HBONE || remote_is_probe(ctx))
			return SK_PASS;
		key = CAPTURE_KEY_INBOUND;
	}
	sk = bpf_map_lookup_elem(&warren_lis, &key);
	if (!sk) {
		count(CAPTURE_CNT_DROPPED);
		return SK_DROP; /* no tunnel: refuse, never bypass */
	}
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	count(err ? CAPTURE_CNT_DROPPED : key);
	return err ? SK_DROP : SK_PASS;
}

/* Only non-GPL helpers (sk_assign, sk_release, map lookup) are used. */
char LICENSE[] SEC("license") = "Apache-2.0";
