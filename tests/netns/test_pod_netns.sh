#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The /proc scan for the netns of a pod that predates warren
# (netlink/pod_netns.c, through tests/tools/podnetnsctl): a process whose
# cgroup path names the pod UID, accepted only if its netns holds the pod's
# IP. The "pods" are sleeps in network namespaces of ours, moved into cgroup
# directories named as the kubelet names them (cgroupfs: pod<uid>; systemd:
# pod<uid with _>), in the v1 pids hierarchy and in cgroup v2.
#
#   netns wp-ID-a  10.66.0.5/32 on lo        sleep in .../kubepods/pod<UID_A>        (v1 pids)
#   netns wp-ID-b  10.66.0.6/32, fd66::6      sleep in .../kubepods-pod<UID_B as _>  (v2)
#   netns wp-ID-x  no address                 sleep in .../podX<UID_X>
#   netns wp-ID-y  10.66.0.99/32              sleep in .../pod<UID_X>-sibling
#                  (UID_X's IP 10.66.0.7 is in neither: no match)
set -uo pipefail
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need_built tests/podnetnsctl
CTL=$WARREN_BUILD/tests/podnetnsctl
V1=/sys/fs/cgroup/pids V2=/sys/fs/cgroup/unified
[[ -d $V1 ]] || V1=/sys/fs/cgroup # a cgroup v2-only host: both in the one hierarchy
[[ -f $V2/cgroup.procs ]] || V2=/sys/fs/cgroup
CG=warren-test-$E2E_ID
cg_cleanup() { # our cgroup trees: their processes are our sleeps
	local rc=$? d p
	for d in "$V1/$CG" "$V2/$CG"; do
		[[ -d $d ]] || continue
		for p in $(find "$d" -name cgroup.procs -exec cat {} +); do kill -KILL "$p" 2>/dev/null; done
	done
	for d in "$V1/$CG" "$V2/$CG"; do
		[[ -d $d ]] && wait_for -t 5 find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	(exit "$rc"); cleanup
}
trap cg_cleanup EXIT
UID_A=4f1c2a3e-0b5d-4e6f-8a9b-0c1d2e3f4a5b
UID_B=9e8d7c6b-5a49-4838-a726-150493827160
UID_X=11111111-2222-4333-8444-555555555555

# pod NAME CGROUP_DIR ADDR...: a netns with ADDR on lo, a sleep in it moved to CGROUP_DIR
pod() {
	local name=$1 dir=$2 a; shift 2
	POD_NETNS[$name]=wp-$E2E_ID-$name
	ip netns add "${POD_NETNS[$name]}" || return 1
	ip -n "${POD_NETNS[$name]}" link set lo up
	for a in "$@"; do ip -n "${POD_NETNS[$name]}" addr add "$a" dev lo || return 1; done
	mkdir -p "$dir" || return 1
	ip netns exec "${POD_NETNS[$name]}" sleep 600 &
	POD_PID[$name]=$!
	BG_PIDS+=("$!")
	echo "${POD_PID[$name]}" >"$dir/cgroup.procs"
}
declare -A POD_PID
mkdir -p "$V1/$CG" "$V2/$CG" || die "cgroup dirs under $V1 and $V2"
pod a "$V1/$CG/kubepods/besteffort/pod$UID_A" 10.66.0.5/32 || die "pod a"
pod b "$V2/$CG/kubepods.slice/kubepods-pod${UID_B//-/_}.slice" 10.66.0.6/32 fd66::6/128 || die "pod b"
pod x "$V1/$CG/kubepods/podX$UID_X" || die "pod x"
# the decoy's UID also on a process of pod a's cgroup sibling: only the IP tells them apart
pod y "$V1/$CG/kubepods/pod$UID_X-sibling" 10.66.0.99/32 || die "pod y"

found() { # UID IP... -> prints the path; compare with the pod's
	"$CTL" /proc "$@"
}
check "cgroup v1 (cgroupfs spelling): pod a's netns found" \
	test "$(found $UID_A 10.66.0.5)" = "/proc/${POD_PID[a]}/ns/net"
check "... the same netns as the pod's" \
	test "$(stat -Lc %i "$(found $UID_A 10.66.0.5)")" = "$(stat -Lc %i "/var/run/netns/${POD_NETNS[a]}")"
check "cgroup v2 (systemd spelling, '-' as '_'): pod b found by its IPv6 address" \
	test "$(found $UID_B fd66::6)" = "/proc/${POD_PID[b]}/ns/net"
check "pod b found by either of its IPs" test "$(found $UID_B 10.66.0.200 10.66.0.6)" = "/proc/${POD_PID[b]}/ns/net"
check "the UID's processes hold none of the IPs: nothing (ENOENT)" fails found $UID_X 10.66.0.7
check "the UID's process is found but in the wrong netns: refused" fails found $UID_A 10.66.0.6
check "an unknown UID: nothing" fails found 00000000-0000-4000-8000-000000000000 10.66.0.5
check "a UID that is no UID (a path): refused" fails found "../$UID_A" 10.66.0.5
