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
# Env: ROUNDS (3), PODS_ENROLL (100), MODEL_PODS (5000), MODEL_SERVICES
# (1000), WATCHERS (4), CHURN (2000).
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
# a start; START_CPU: its CPU from exec to ready (every first list, one build)
start() {
	tunnel_start $N 2>/dev/null || die "tunnel not ready: $(tail -n 5 "$T/$N/tunnel.out")"
	START_CPU=$(cpu_ms "${TUNNEL_PID[$N]}")
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
start
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
	t0=$(now_ms)
	kubectl label namespace bench istio.io/dataplane-mode=ambient >/dev/null
	wait_for -t 60 enrolled_ge "$PODS_ENROLL" || say "round $r: only $(n_enrolled) enrolled after 60 s"
	t1=$(now_ms)
	echo $((t1 - t0)) >>"$T/enroll.ms"
	kubectl label namespace bench istio.io/dataplane-mode- >/dev/null
	wait_for -t 60 enrolled_le 0 || say "round $r: $(n_enrolled) still enrolled after 60 s"
	echo $(($(now_ms) - t1)) >>"$T/release.ms"
done
say "label -> last of $PODS_ENROLL running pods enrolled: p50 $(p50 <"$T/enroll.ms") ms over $ROUNDS rounds ($(tr '\n' ' ' <"$T/enroll.ms")ms) (budget p50 <= 1000 ms); unlabel -> all released: p50 $(p50 <"$T/release.ms") ms"

# --- 2. kubectl apply of a policy -> active on the node ----------------------------
policy_active() { wctl $N -o json policies | jq -e ".. | objects | select(.name? == \"$1\" and .namespace? == \"bench\" and .state? == \"active\")" >/dev/null; }
for ((r = 0; r < ROUNDS; r++)); do
	t0=$(now_ms)
	kubectl apply -f - >/dev/null <<EOF
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bench-$r, namespace: bench}
spec: {action: DENY, rules: [{from: [{source: {namespaces: [nowhere]}}]}]}
EOF
	wait_for -t 30 policy_active "bench-$r" || say "round $r: policy not active after 30 s"
	echo $(($(now_ms) - t0)) >>"$T/policy.ms"
done
say "kubectl apply of an AuthorizationPolicy -> active on the node: p50 $(p50 <"$T/policy.ms") ms ($(tr '\n' ' ' <"$T/policy.ms")ms; kubectl's own start included) (budget <= 1000 ms)"
tunnel_stop $N
start
c_small=$START_CPU
rss_small_fresh=$(rss_kib "${TUNNEL_PID[$N]}")
tunnel_stop $N

# --- 3. a model of 5000 pods and 1000 Services ---------------------------------------
out=$(load create 50 "$MODEL_PODS" "$MODEL_SERVICES") || die "kube-load create: $out"
say "API: $out (namespaces, pods, their status, Services)"
list_bytes=$(nexec $N curl -s --cacert "$KUBE_CA" -H "Authorization: Bearer $(cat "$KUBE_TOKEN_FILE")" \
	"$KUBE_APISERVER/api/v1/pods?limit=500" -o /dev/null -w '%{size_download}')
start
c_big=$START_CPU
rss_big=$(rss_kib "${TUNNEL_PID[$N]}")
n_pods=$(wctl $N -o json config-dump | jq '.kubernetes.resources.pods.objects')
say "tunnel start (every first list + one build): $c_small ms CPU with the small model, $c_big ms with $n_pods pods and $MODEL_SERVICES more Services: the full relist costs $((c_big - c_small)) ms CPU (budget <= 200 ms)"
say "tunnel RSS after its start: $rss_small_fresh KiB small model, $rss_big KiB with $n_pods pods: $(((rss_big - rss_small_fresh) * 1000 / (MODEL_PODS > 0 ? MODEL_PODS : 1))) KiB per 1000 pods (objects, model, indexes)"
say "one page of the pod list (500 pods, JSON) is $list_bytes bytes: a node's full relist of $MODEL_PODS pods moves ~$((list_bytes * MODEL_PODS / 500 / 1024)) KiB"

# --- 4. the cost per node of watching every pod --------------------------------------
churn() { # -> "api_cpu_ms tunnel_cpu_ms seconds"
	local a0 t0 s0 out
	a0=$(cpu_ms "$APISERVER_PID") t0=$(cpu_ms "${TUNNEL_PID[$N]}") s0=$(now_ms)
	out=$(load churn "$MODEL_PODS" "$CHURN" 50) || { echo "churn failed: $out" >&2; return 1; }
	sleep 1 # the last events reach the watchers (figures only; nothing is synchronized on it)
	echo "$(($(cpu_ms "$APISERVER_PID") - a0)) $(($(cpu_ms "${TUNNEL_PID[$N]}") - t0)) $(($(now_ms) - s0))"
}
read -r api1 tun1 ms1 < <(churn)
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
read -r api2 tun2 ms2 < <(churn)
rss_api2=$(rss_kib "$APISERVER_PID")
say "tunnel: $tun1 ms CPU for $CHURN pod events in $ms1 ms ($((tun1 * 1000 / CHURN)) µs per event, rebuilds included)"
say "kube-apiserver: $list_cpu ms CPU per node's full list of $MODEL_PODS pods; during $CHURN pod updates $api1 ms CPU with 1 watching node, $api2 ms with $((WATCHERS + 1)): $(((api2 - api1) / (WATCHERS > 0 ? WATCHERS : 1))) ms per more node ($(((api2 - api1) * 1000 / (WATCHERS > 0 ? WATCHERS : 1) / CHURN)) µs per event per node); RSS $rss_api1 -> $rss_api2 KiB"
