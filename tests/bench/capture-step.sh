#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The capture step of an ADD alone (docs/performance.md, "Where an eBPF
# ADD's time goes"): one fresh process per apply, as warren-cni runs it
# (tests/tools/inpodctl with INPODCTL_TIME=1 timing the apply call), on a
# test netns with one address. Interleaved, N runs of each:
#   nftables   inpod_apply (the nftables batch, the rule and route)
#   ebpf-pool  ebpf_capture_apply taking a spare from a pool (the pool is
#              topped up by inpodctl pool before each, not timed)
#   ebpf-load  ebpf_capture_apply on a bpffs with no pool (loads its own)
# Prints p25 / p50 / p75 in microseconds per kind, and CPU pressure.
#
# Env: B (build dir, default build), N (runs of each, 41). As root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IPC=$ROOT/${B:-build}/tests/inpodctl
N=${N:-41}
[[ -x $IPC ]] || { echo "no $IPC (make B=...)" >&2; exit 1; }
T=$(mktemp -d /tmp/warren-capstep.XXXXXX)
NS=wcap-$$
cleanup() {
	ip netns del "$NS" 2>/dev/null || true
	for m in "$T/pool" "$T/nopool"; do mountpoint -q "$m" && umount "$m"; done
	rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/pool" "$T/nopool"
mount -t bpf bpf "$T/pool"
mount -t bpf bpf "$T/nopool"
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add eth0 type veth peer name eth1
ip -n "$NS" addr add 10.9.0.2/24 dev eth0
ip -n "$NS" link set eth0 up
P=/run/netns/$NS
psi0=$(awk '/^some/ {print $0}' /proc/pressure/cpu)
for ((i = 0; i < N; i++)); do
	for kind in nftables ebpf-pool ebpf-load; do
		case $kind in
		nftables)
			INPODCTL_TIME=1 "$IPC" apply "$P" | awk -v k=$kind '{print k, $2}' >>"$T/times"
			"$IPC" remove "$P" ;;
		ebpf-pool)
			"$IPC" pool "$T/pool" >/dev/null
			INPODCTL_TIME=1 "$IPC" apply "$P" "ebpf=$T/pool,k$i,10.9.0.2/24" | awk -v k=$kind '{print k, $2}' >>"$T/times"
			[[ $(ls "$T/pool/warren/_pool/"*/ | grep -c '^[0-3]$') == 3 ]] ||
				{ echo "ebpf-pool run $i did not take a spare" >&2; exit 1; }
			"$IPC" remove "$P" "ebpf=$T/pool,k$i" ;;
		ebpf-load)
			INPODCTL_TIME=1 "$IPC" apply "$P" "ebpf=$T/nopool,k$i,10.9.0.2/24" | awk -v k=$kind '{print k, $2}' >>"$T/times"
			"$IPC" remove "$P" "ebpf=$T/nopool,k$i" ;;
		esac
	done
done
echo "# CPU pressure at start: $psi0"
echo "# CPU pressure at end:   $(awk '/^some/ {print $0}' /proc/pressure/cpu)"
python3 - "$T/times" <<'EOF'
import sys, statistics
runs = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    runs.setdefault(k, []).append(int(v))
for k in ("nftables", "ebpf-pool", "ebpf-load"):
    v = sorted(runs.get(k, []))
    q = statistics.quantiles(v, n=4)
    print("%-10s n=%d  p25 %4.0f  p50 %4.0f  p75 %4.0f us" % (k, len(v), q[0], q[1], q[2]))
n50 = statistics.median(runs["nftables"])
for k in ("ebpf-pool", "ebpf-load"):
    print("%s / nftables (p50): %.2fx" % (k, statistics.median(runs[k]) / n50))
EOF
