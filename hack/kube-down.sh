#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Stops the cluster hack/kube-up.sh started and removes everything it made:
# pods (deleted through the API first, so the kubelet tears their network
# down with CNI DEL), kubelets, containerd and its shims and containers, the
# nodes' mount namespaces (and with them every mount they held), etcd and
# the API server, the network namespaces (bridges, veths and any iptables
# or nftables rules inside them), the cgroups, the kernel tunables the
# kubelet changed (when no other cluster is up), and KUBE_DIR itself when
# kube-up.sh made it. Then checks that nothing is left and says what is.
#
#   hack/kube-down.sh KUBE_DIR      (or KUBE_DIR in the environment)
# Env: KUBE_DOWN_POD_WAIT  seconds to wait for pods to go (default 60)
set -uo pipefail
K=${1:-${KUBE_DIR:-}}
[[ -n $K && -f $K/env ]] || { echo "kube-down: usage: kube-down.sh KUBE_DIR (no env file in '${K}')" >&2; exit 1; }
K=$(cd "$K" && pwd)
# shellcheck source=/dev/null
. "$K/env"
NODES=()
for ((i = 1; i <= KUBE_NODES; i++)); do NODES+=("node$i"); done
left=()

wait_for() { # S CMD...: poll CMD every 0.2 s, at most S seconds
	local secs=$1 end; shift
	end=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < end)) || return 1
		sleep 0.2
	done
}
gone() { [[ ! -e /proc/$1/stat ]] || [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]]; }
pid_of() { awk -v n="$1" '$1 == n {p = $2} END {print p}' "$K/pids" 2>/dev/null; }
stop() { # NAME: TERM, then KILL after 15 s
	local pid
	pid=$(pid_of "$1")
	[[ -n $pid ]] && ! gone "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null
	wait_for 15 gone "$pid" || { kill -KILL "$pid" 2>/dev/null; wait_for 5 gone "$pid"; }
	gone "$pid" || left+=("process $1 ($pid)")
}
cgroup_hierarchies() { awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts; }
cgroup_procs() { # CGROUP: pids in it and below, in the pids hierarchy
	local h
	for h in $(cgroup_hierarchies); do
		[[ -f $h/pids.max && -d $h$1 ]] && find "$h$1" -name cgroup.procs -exec cat {} + 2>/dev/null
	done
}
cgroup_empty() { [[ -z $(cgroup_procs "$1") ]]; }

# 1. pods, through the API, while kubelets and containerd still run
if ((KUBE_NODES)) && [[ -x $K/kubectl ]] && "$K/kubectl" get --raw /readyz >/dev/null 2>&1; then
	"$K/kubectl" delete pods --all --all-namespaces --grace-period=1 --wait=false >/dev/null 2>&1
	no_pods() { [[ -z $("$K/kubectl" get pods -A -o name 2>/dev/null) ]]; }
	wait_for "${KUBE_DOWN_POD_WAIT:-60}" no_pods || echo "kube-down: pods still there after ${KUBE_DOWN_POD_WAIT:-60} s; killing them" >&2
fi

# 2. nodes: kubelet, containerd, then whatever is left in the node's cgroup
#    (shims, containers, the mount-namespace holder)
for n in "${NODES[@]}"; do
	stop "kubelet-$n"
	stop "containerd-$n"
	cgv=KUBE_CGROUP_$n
	cg=${!cgv}
	for _ in 1 2 3 4 5; do
		pids=$(cgroup_procs "$cg")
		[[ -z $pids ]] && break
		kill -KILL $pids 2>/dev/null
		wait_for 5 cgroup_empty "$cg"
	done
	stop "anchor-$n"
	cgroup_empty "$cg" || left+=("processes in cgroup $cg: $(cgroup_procs "$cg" | tr '\n' ' ')")
	for h in $(cgroup_hierarchies); do
		[[ -d $h$cg ]] || continue
		# deepest first; a cgroup whose last task just died may be busy a moment
		wait_for 10 bash -c 'find "$1" -depth -type d -exec rmdir {} + 2>/dev/null; [[ ! -d $1 ]]' _ "$h$cg" ||
			left+=("cgroup $h$cg")
	done
done

# 3. control plane
stop kube-apiserver
stop etcd

# 4. network namespaces (anything still inside was ours)
for v in KUBE_CP_NETNS $(for n in "${NODES[@]}"; do echo "KUBE_NETNS_$n"; done); do
	ns=${!v:-}
	[[ -n $ns ]] && ip netns list | awk '{print $1}' | grep -qx "$ns" || continue
	pids=$(ip netns pids "$ns" 2>/dev/null)
	[[ -n $pids ]] && kill -KILL $pids 2>/dev/null
	ip netns del "$ns" 2>/dev/null || left+=("netns $ns")
done

# 5. kernel tunables: the last cluster down restores what the first one saved
if [[ -n ${KUBE_SYSCTL_SAVED:-} ]]; then
	(
		flock 9
		rm -f "/run/warren-kube-sysctl/users/$KUBE_ID"
		if [[ -z $(ls -A /run/warren-kube-sysctl/users 2>/dev/null) ]]; then
			while read -r s v; do sysctl -qw "$s=$v"; done </run/warren-kube-sysctl/orig
			rm -rf /run/warren-kube-sysctl
		fi
	) 9>/run/warren-kube-sysctl.lock
	[[ -d /run/warren-kube-sysctl ]] || rm -f /run/warren-kube-sysctl.lock
fi
[[ -n ${KUBE_MADE_VAR_LIB_CNI:-} ]] && rmdir /var/lib/cni 2>/dev/null

# 6. check: no process of ours, no mount under KUBE_DIR, no namespace
for name in $(awk '{print $1}' "$K/pids" 2>/dev/null); do
	pid=$(pid_of "$name")
	gone "$pid" || left+=("process $name ($pid)")
done
grep -q " $K/" /proc/self/mounts && left+=("mounts under $K")
if ((${#left[@]})); then
	printf 'kube-down: left behind: %s\n' "${left[@]}" >&2
	exit 1
fi
if [[ -f $K/.kube-up-made-this-dir ]]; then
	rm -rf "$K"
else # the caller's dir (a test's $T): remove what kube-up.sh put there
	rm -rf "$K"/{env,pids,kubectl,kubeconfig,pki,cp,images} "${NODES[@]/#/$K/}"
fi
exit 0
