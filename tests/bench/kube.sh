#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Kubernetes mode at scale: figures printed beside their budgets, never pass
# or fail (like `make bench`). A real etcd and kube-apiserver
# (hack/kube-up.sh, KUBE_NODES=0); objects are created directly through the
# API (tests/bench/kube-load.py), no kubelet runs. The tunnel runs in
# Kubernetes mode in the control plane's netns as node "node1".
#
#   1. label -> enrolled: PODS_ENROLL (100) pods of node1, each a netns of
#      ours holding its IP, announced to the tunnel as warren-cni's query
#      does; `kubectl label namespace` to the last one enrolled (rules
#      programmed, listeners open), p50 over ROUNDS rounds (label, unlabel).
#   2. `kubectl apply` of an AuthorizationPolicy to the policy active on
#      the node (compiled into the installed model), p50 over ROUNDS.
#   3. a model of MODEL_PODS (5000) pods and MODEL_SERVICES (1000) Services
#      from the API server: the tunnel's RSS per 1000 pods (against the
#      same tunnel with the small model), and the CPU of its full list and
#      rebuild (a tunnel start, against a start with the small model).
#   4. the cost per node of watching every pod: the API server's CPU and
#      RSS for WATCHERS more watches of all pods (curl, the tunnel's
#      request) during CHURN pod updates, and the tunnel's CPU per event.
#
# BASE=<build dir> (another build's warren-tunnel, e.g. of main) runs the
# rounds of 1 to 3 and the tunnel's part of 4 with it too, interleaved with
# this build's (base, new, base, new ...) on the same cluster, and prints
# both with their ratio: the machine is shared, only same-run figures
# compare.
#
# SAVE_LISTS=<dir> also saves the pages of the pod and Service lists of the
# big model there (compact JSON, as the tunnel gets them), to profile the
# list path offline (tests/tools/kubelistbench).
#
# Env: ROUNDS (3), PODS_ENROLL (100), MODEL_PODS (5000), MODEL_SERVICES
# (1000), WATCHERS (4), CHURN (2000), BASE (unset), SAVE_LISTS (unset).
set -uo pipefail
source "$(dirname "$0")/../netns/lib.sh"

ROUNDS=${ROUNDS:-3} PODS_ENROLL=${PODS_ENROLL:-100} MODEL_PODS=${MODEL_PODS:-5000}
MODEL_SERVICES=${MODEL_SERVICES:-1000} WATCHERS=${WATCHERS:-4} CHURN=${CHURN:-2000}
lib_init
need jq
need_built warren-tunnel warrenctl tests/handoffctl
kube_need_bins
bench_cleanup() {
	local rc=$?
	kube_down
	(exit $rc); cleanup
}
trap bench_cleanup EXIT
say() { echo "# $*"; }
p50() { sort -n | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]; else print "-"}'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$1/stat"; } # PID
rss_kib() { awk '$1 == "VmRSS:" {print $2}' "/proc/$1/status"; } # PID

kube_up 0
N=node1
NODE_NETNS[$N]=$KUBE_CP_NETNS
APISERVER_PID=$(ip netns pids "$KUBE_CP_NETNS" | while read -r p; do
	[[ $(cat "/proc/$p/comm" 2>/dev/null) == kube-apiserver ]] && echo "$p"; done | head -n 1)
[[ -n $APISERVER_PID ]] || die "no kube-apiserver process in $KUBE_CP_NETNS"
load() { nexec $N "$PYTHON" "$WARREN_ROOT/tests/bench/kube-load.py" "$KUBE_APISERVER" "$KUBE_CA" "$KUBE_TOKEN_FILE" "$@"; }
kubectl apply -f - >/dev/null <<EOF || die "CRD"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: authorizationpolicies.security.istio.io}
spec:
  group: security.istio.io
  scope: Namespaced
  names: {kind: AuthorizationPolicy, listKind: AuthorizationPolicyList, plural: authorizationpolicies, singular: authorizationpolicy}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
EOF
wait_for -t 20 kubectl get authorizationpolicies -A >/dev/null 2>&1 || die "CRD not served"

tunnel_conf_write() { # NODE
	local d=$T/$1
	mkdir -p "$d"
	cat >"$d/tunnel.yaml" <<EOF
node: $1
pluginSocket: $d/plugin.sock
stateDir: $d/state
meshSource: kubernetes
kubeconfig: $KUBECONFIG
adminAddress: 127.0.0.1:15000
adminSocket: $d/admin.sock
metricsAddress: 127.0.0.1:15020
readinessAddress: 0.0.0.0:15021
logLevel: info
logFile: $d/tunnel.log
drainSeconds: 0
hostProbeSnat: false
mtls: disabled
EOF
}
# The builds compared: "new" (this checkout's) and, with BASE, "base".
TAGS=(new)
declare -A BUILD=([new]=$WARREN_BUILD)
if [[ -n ${BASE:-} ]]; then
	[[ -x $BASE/warren-tunnel ]] || die "BASE=$BASE has no warren-tunnel"
	TAGS=(base new) BUILD[base]=$BASE
fi
RUNNING=""
# start TAG: that build's tunnel; START_CPU: its CPU from exec to ready
# (every first list, one build)
# As tunnel_start, with more time to be ready: at 5000 pods the API server
# of a loaded machine can take more than tunnel_start's 10 s to list them.
start() {
	local WARREN_BUILD=${BUILD[$1]}
	tunnel_conf_write $N
	ip netns exec "${NODE_NETNS[$N]}" "$WARREN_BUILD/warren-tunnel" --config "$T/$N/tunnel.yaml" >>"$T/$N/tunnel.out" 2>&1 &
	TUNNEL_PID[$N]=$!
	disown "$!"
	wait_for -t 60 tunnel_ready $N || die "tunnel ($1) not ready in 60 s: $(tail -n 15 "$T/$N/tunnel.log")"
	START_CPU=$(cpu_ms "${TUNNEL_PID[$N]}") RUNNING=$1
}
stop() { tunnel_stop $N; RUNNING=""; }
use() { [[ $RUNNING == "$1" ]] && return; [[ -n $RUNNING ]] && stop; start "$1"; } # TAG
# "p50 X (a b c)" of a file of figures
fig() { echo "p50 $(p50 <"$1") ($(tr '\n' ' ' <"$1" | sed 's/ $//'))"; }
# LABEL FILE_PREFIX: the figures of each build, then new/base of the p50s
report() {
	local tag line="" b n
	for tag in "${TAGS[@]}"; do line+="${line:+; }$tag $(fig "$2.$tag")"; done
	if [[ -n ${BASE:-} ]]; then
		b=$(p50 <"$2.base") n=$(p50 <"$2.new")
		((b > 0)) && line+="; new/base $(awk -v n="$n" -v b="$b" 'BEGIN {printf "%.2f", n / b}')"
	fi
	say "$1: $line"
}

# --- 1. label -> 100 running pods enrolled ------------------------------------
kube_ns bench || die "namespace bench"
{
	echo "apiVersion: v1"; echo "kind: List"; echo "items:"
	for ((i = 0; i < PODS_ENROLL; i++)); do
		echo "- {apiVersion: v1, kind: Pod, metadata: {name: b$i, namespace: bench}, spec: {nodeName: $N, automountServiceAccountToken: false, containers: [{name: app, image: localhost/warren-app:1}]}}"
	done
} | kubectl apply -f - >/dev/null || die "bench pods"
for ((i = 0; i < PODS_ENROLL; i++)); do
	kubectl -n bench patch pod "b$i" --subresource=status --type=merge \
		-p "{\"status\":{\"phase\":\"Running\",\"podIP\":\"10.129.$((i / 250)).$((i % 250 + 1))\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}" >/dev/null &
	((i % 10 == 9)) && wait
done
wait
# announced once: the tunnel remembers what warren-cni told it in its state
# dir, which the builds' tunnels share here (made first: a build that makes
# it only at its first enrollment would forget them at its restart)
mkdir -p "$T/$N/state"
use "${TAGS[0]}"
for ((i = 0; i < PODS_ENROLL; i++)); do
	ns=wp-$E2E_ID-b$i ip=10.129.$((i / 250)).$((i % 250 + 1))
	ip netns add "$ns" && ip -n "$ns" link set lo up && ip -n "$ns" link add eth0 type veth peer name veth1 && ip -n "$ns" link set veth1 up &&
		ip -n "$ns" addr add "$ip/32" dev eth0 && ip -n "$ns" link set eth0 up || die "netns $ns"
	uid=$(kubectl -n bench get pod "b$i" -o jsonpath='{.metadata.uid}')
	"$WARREN_BUILD/tests/handoffctl" "$T/$N/plugin.sock" query bench "b$i" "$uid" "cid-b$i" "/var/run/netns/$ns" "$ip/32" >/dev/null ||
		die "query for b$i"
done
n_enrolled() { wctl $N -o json pods | jq 'length'; }
enrolled_ge() { (($(n_enrolled) >= $1)); }
enrolled_le() { (($(n_enrolled) <= $1)); }
for ((r = 0; r < ROUNDS; r++)); do
	for tag in "${TAGS[@]}"; do
		use "$tag"
		t0=$(now_ms)
		kubectl label namespace bench istio.io/dataplane-mode=ambient >/dev/null
		wait_for -t 60 enrolled_ge "$PODS_ENROLL" || say "round $r ($tag): only $(n_enrolled) enrolled after 60 s"
		t1=$(now_ms)
		echo $((t1 - t0)) >>"$T/enroll.ms.$tag"
		kubectl label namespace bench istio.io/dataplane-mode- >/dev/null
		wait_for -t 60 enrolled_le 0 || say "round $r ($tag): $(n_enrolled) still enrolled after 60 s"
		echo $(($(now_ms) - t1)) >>"$T/release.ms.$tag"
	done
done
report "label -> last of $PODS_ENROLL running pods enrolled, ms (budget p50 <= 1000)" "$T/enroll.ms"
report "unlabel -> all $PODS_ENROLL released, ms" "$T/release.ms"

# --- 2. kubectl apply of a policy -> active on the node ----------------------------
policy_active() { wctl $N -o json policies | jq -e ".. | objects | select(.name? == \"$1\" and .namespace? == \"bench\" and .state? == \"active\")" >/dev/null; }
for ((r = 0; r < ROUNDS; r++)); do
	for tag in "${TAGS[@]}"; do
		use "$tag"
		t0=$(now_ms)
		kubectl apply -f - >/dev/null <<EOF
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bench-$tag-$r, namespace: bench}
spec: {action: DENY, rules: [{from: [{source: {namespaces: [nowhere]}}]}]}
EOF
		wait_for -t 30 policy_active "bench-$tag-$r" || say "round $r ($tag): policy not active after 30 s"
		echo $(($(now_ms) - t0)) >>"$T/policy.ms.$tag"
	done
done
report "kubectl apply of an AuthorizationPolicy -> active on the node, ms, kubectl's own start included (budget <= 1000)" "$T/policy.ms"
# each build's start with the small model: the base of the next figures
for ((r = 0; r < ROUNDS; r++)); do
	for tag in "${TAGS[@]}"; do
		stop
		start "$tag"
		echo "$START_CPU" >>"$T/small.cpu.$tag"
		rss_kib "${TUNNEL_PID[$N]}" >>"$T/small.rss.$tag"
	done
done
stop

# --- 3. a model of 5000 pods and 1000 Services ---------------------------------------
out=$(load create 50 "$MODEL_PODS" "$MODEL_SERVICES") || die "kube-load create: $out"
say "API: $out (namespaces, pods, their status, Services)"
list_bytes=$(nexec $N curl -s --cacert "$KUBE_CA" -H "Authorization: Bearer $(cat "$KUBE_TOKEN_FILE")" \
	"$KUBE_APISERVER/api/v1/pods?limit=500" -o /dev/null -w '%{size_download}')
save_lists() { # DIR: every page of the pod and Service lists
	local res page cont q
	mkdir -p "$1" || die "SAVE_LISTS=$1"
	for res in pods services; do
		page=0 cont=""
		while :; do
			q="limit=500${cont:+&continue=$cont}"
			nexec $N curl -sf -A warren-bench --cacert "$KUBE_CA" -H "Authorization: Bearer $(cat "$KUBE_TOKEN_FILE")" \
				"$KUBE_APISERVER/api/v1/$res?$q" -o "$1/$res.$page.json" || die "save $res page $page"
			cont=$(jq -r '.metadata.continue // ""' "$1/$res.$page.json")
			[[ -n $cont ]] || break
			page=$((page + 1))
		done
	done
	say "saved the pod and Service lists in $1"
}
[[ -n ${SAVE_LISTS:-} ]] && save_lists "$SAVE_LISTS"
for ((r = 0; r < ROUNDS; r++)); do
	for tag in "${TAGS[@]}"; do
		stop
		start "$tag"
		echo "$START_CPU" >>"$T/big.cpu.$tag"
		# the full relist: this start less the median start with the small model
		echo $((START_CPU - $(p50 <"$T/small.cpu.$tag"))) >>"$T/relist.cpu.$tag"
		echo $((($(rss_kib "${TUNNEL_PID[$N]}") - $(p50 <"$T/small.rss.$tag")) * 1000 / (MODEL_PODS > 0 ? MODEL_PODS : 1))) >>"$T/rss1000.$tag"
	done
done
n_pods=$(wctl $N -o json config-dump | jq '.kubernetes.resources.pods.objects')
report "tunnel start with the small model, ms CPU" "$T/small.cpu"
report "tunnel start with $n_pods pods and $MODEL_SERVICES more Services, ms CPU" "$T/big.cpu"
report "the full relist of that model (that start less the small start's p50), ms CPU (budget <= 200)" "$T/relist.cpu"
report "tunnel RSS after its start, KiB per 1000 pods (objects, model, indexes)" "$T/rss1000"
say "one page of the pod list (500 pods, JSON) is $list_bytes bytes: a node's full relist of $MODEL_PODS pods moves ~$((list_bytes * MODEL_PODS / 500 / 1024)) KiB"

# --- 4. the cost per node of watching every pod --------------------------------------
churn() { # SALT -> "api_cpu_ms tunnel_cpu_ms seconds"; each SALT changes the pods anew
	local a0 t0 s0 out
	a0=$(cpu_ms "$APISERVER_PID") t0=$(cpu_ms "${TUNNEL_PID[$N]}") s0=$(now_ms)
	out=$(load churn "$MODEL_PODS" "$CHURN" 50 "$1") || { echo "churn failed: $out" >&2; return 1; }
	sleep 1 # the last events reach the watchers (figures only; nothing is synchronized on it)
	echo "$(($(cpu_ms "$APISERVER_PID") - a0)) $(($(cpu_ms "${TUNNEL_PID[$N]}") - t0)) $(($(now_ms) - s0))"
}
if [[ -n ${BASE:-} ]]; then
	use base
	read -r _ tunb msb < <(churn base)
	say "tunnel (base): $tunb ms CPU for $CHURN pod events in $msb ms ($((tunb * 1000 / CHURN)) µs per event)"
fi
use new
read -r api1 tun1 ms1 < <(churn one)
rss_api1=$(rss_kib "$APISERVER_PID")
a0=$(cpu_ms "$APISERVER_PID")
for ((w = 0; w < WATCHERS; w++)); do
	nexec $N curl -sN --cacert "$KUBE_CA" -H "Authorization: Bearer $(cat "$KUBE_TOKEN_FILE")" \
		"$KUBE_APISERVER/api/v1/pods?watch=1&allowWatchBookmarks=true" -o /dev/null &
	BG_PIDS+=("$!")
	nexec $N curl -s --cacert "$KUBE_CA" -H "Authorization: Bearer $(cat "$KUBE_TOKEN_FILE")" \
		"$KUBE_APISERVER/api/v1/pods" -o /dev/null # each node lists first
done
list_cpu=$((($(cpu_ms "$APISERVER_PID") - a0) / (WATCHERS > 0 ? WATCHERS : 1)))
read -r api2 tun2 ms2 < <(churn more)
rss_api2=$(rss_kib "$APISERVER_PID")
say "tunnel: $tun1 ms CPU for $CHURN pod events in $ms1 ms ($((tun1 * 1000 / CHURN)) µs per event, rebuilds included)"
say "kube-apiserver: $list_cpu ms CPU per node's full list of $MODEL_PODS pods; during $CHURN pod updates $api1 ms CPU with 1 watching node, $api2 ms with $((WATCHERS + 1)): $(((api2 - api1) / (WATCHERS > 0 ? WATCHERS : 1))) ms per more node ($(((api2 - api1) * 1000 / (WATCHERS > 0 ? WATCHERS : 1) / CHURN)) µs per event per node); RSS $rss_api1 -> $rss_api2 KiB"
