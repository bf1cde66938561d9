#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# warren-tunnel in Kubernetes mode (meshSource: kubernetes) on a real control
# plane and two real nodes (hack/kube-up.sh): what kubectl does reaches the
# running pods through the tunnels' watches, with no mesh file anywhere.
#  - labelling the namespace enrolls its RUNNING pods (rules, listeners, the
#    status annotation) and their traffic moves to HBONE on 15008;
#  - an AuthorizationPolicy applied with kubectl is enforced, deleting it
#    lifts it; an invalid one fails closed and is reported;
#  - a tunnel restarted re-adopts its pod and resumes its watches; one
#    restarted with no state finds its running pod through /proc;
#  - removing the label releases the pods and their traffic is direct again.
# (API server restarts and the 410 after an etcd compaction: test_watch.sh.)
#
#   netns wkc-ID: etcd, kube-apiserver 10.100.0.1:6443 (bridge wkbr)
#      |-- netns wk1-ID node1 10.100.0.11           |-- netns wk2-ID node2 10.100.0.12
#          kubelet, containerd, warren-tunnel            kubelet, containerd, warren-tunnel
#          (meshSource: kubernetes)                      (meshSource: kubernetes)
#            pod shop/cli -------- plain :8080, then HBONE :15008 ---> pod shop/srv (httpd :8080)
set -uo pipefail
source "$(dirname "$0")/../netns/lib.sh"

lib_init
CLEANUP_TAP=1
need conntrack
need jq
need_built warren-cni warren-tunnel warrenctl
kube_need_bins

kube_cleanup() {
	local rc=$?
	kube_down || { not_ok "kube-down: everything removed" "$(cat "$T/kube-down.log")"; rc=1; }
	(exit $rc)
	cleanup
}
trap kube_cleanup EXIT

# --- the cluster, the tunnels in Kubernetes mode -------------------------------
t0=$SECONDS
kube_up 2 KUBE_CNI_WARREN=1 WARREN_BUILD="$WARREN_BUILD"
ok "kube-up: etcd, kube-apiserver, two nodes Ready in $((SECONDS - t0)) s"

crd() { # KIND PLURAL: a schemaless security.istio.io CRD served as v1
	kubectl apply -f - >/dev/null <<EOF
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: $2.security.istio.io}
spec:
  group: security.istio.io
  scope: Namespaced
  names: {kind: $1, listKind: ${1}List, plural: $2, singular: ${1,,}}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
EOF
}
crd AuthorizationPolicy authorizationpolicies || die "CRD AuthorizationPolicy"
crd PeerAuthentication peerauthentications || die "CRD PeerAuthentication"
wait_for -t 20 kubectl get authorizationpolicies -A >/dev/null 2>&1 || die "CRD not served"
kubectl apply -f "$WARREN_ROOT/docs/kubernetes-rbac.yaml" >/dev/null || die "RBAC from docs/kubernetes-rbac.yaml"
kube_ns shop || die "namespace shop"

# The file mode's meshPath replaced by the API server (same keys otherwise).
bash "$WARREN_ROOT/hack/gen-ca.sh" "$T/ca" >/dev/null 2>&1 || die "gen-ca.sh (mesh CA)"
tunnel_conf_write() { # NODE
	local d=$T/$1
	mkdir -p "$d"
	cat >"$d/tunnel.yaml" <<EOF
node: $1
pluginSocket: $d/plugin.sock
stateDir: $d/state
meshSource: kubernetes
kubeconfig: $KUBECONFIG
caDir: $T/ca
adminAddress: 127.0.0.1:15000
adminSocket: $d/admin.sock
metricsAddress: 127.0.0.1:15020
readinessAddress: 0.0.0.0:15021
logLevel: debug
logFile: $d/tunnel.log
drainSeconds: 0
EOF
}
for node in node1 node2; do
	tunnel_start $node 2>/dev/null || die "warren-tunnel on $node not ready (see $T/$node/tunnel.out)"
done
ok "warren-tunnel ready on both nodes in Kubernetes mode (no mesh file)"

# --- pods, created before any label: the tunnels see them at ADD -------------
pod_yaml() { # NAME NODE
	cat <<EOF
apiVersion: v1
kind: Pod
metadata: {namespace: shop, name: $1, labels: {app: $1}}
spec:
  nodeName: $2
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/warren-app:1
    imagePullPolicy: Never
    ports: [{containerPort: 8080, name: http}]
EOF
}
for p in "srv node2" "cli node1"; do
	read -r name node <<<"$p"
	pod_yaml "$name" "$node" | kubectl apply -f - >/dev/null || die "kubectl apply pod $name"
	POD_NODE[$name]=$node
done
for name in srv cli; do
	kubectl wait -n shop --for=condition=Ready "pod/$name" --timeout=120s >/dev/null 2>&1 ||
		die "pod $name not Ready within 120 s: $(kubectl get pod -n shop "$name" -o wide 2>&1 | tail -n 1)"
	node=${POD_NODE[$name]}
	POD_UID[$name]=$(kubectl get pod -n shop "$name" -o 'jsonpath={.metadata.uid}')
	POD_IP[$name]=$(kubectl get pod -n shop "$name" -o 'jsonpath={.status.podIP}')
	cgv=KUBE_CGROUP_$node
	pid=$(find /sys/fs/cgroup/pids"${!cgv}"/kubepods -path "*pod${POD_UID[$name]}*" -name cgroup.procs -exec cat {} + 2>/dev/null | head -n 1)
	POD_NETNS[$name]=wp-$E2E_ID-$name
	[[ -n $pid ]] && ip netns attach "${POD_NETNS[$name]}" "$pid" || die "netns of pod $name (pid '$pid')"
done
ok "pods srv (node2) and cli (node1) Ready in namespace shop (no label)"

annotation() { kubectl -n shop get pod "$1" -o jsonpath='{.metadata.annotations.ambient\.istio\.io/redirection}'; }
enrolled() { # POD: rules, listeners, the tunnel's record, the status annotation
	local node=${POD_NODE[$1]} p
	pexec "$1" nft list tables | grep 'inet warren-nat' >/dev/null || { echo "no warren-nat table"; return 1; }
	for p in 15001 15006 15008; do listening "${POD_NETNS[$1]}" $p || { echo "no listener on $p"; return 1; }; done
	wctl "$node" -o json pods | grep -q "\"${POD_UID[$1]}\"" || { echo "$node's tunnel has no record of $1"; return 1; }
	[[ $(annotation "$1") == enabled ]] || { echo "no ambient.istio.io/redirection annotation"; return 1; }
}
released() { # POD
	inpod_clean "$1" || { echo "warren state in the pod"; return 1; }
	no_listeners "$1" || { echo "listeners in the pod"; return 1; }
	! wctl "${POD_NODE[$1]}" -o json pods | grep -q "\"${POD_UID[$1]}\"" || { echo "still recorded"; return 1; }
	local a; a=$(annotation "$1") && [[ -z $a ]] || { echo "annotation '$a'"; return 1; }
}
get() { pexec cli curl -s --max-time 5 "http://${POD_IP[srv]}:8080/cgi-bin/peer"; }
answered() { [[ $(get) == "${POD_IP[cli]} srv" ]]; }
refused() { local r; r=$(get); [[ -z $r ]]; }
# conntrack in srv after a fresh request: a flow from cli's IP to PORT
flow_to() { # PORT
	local ct
	ip netns exec "${POD_NETNS[srv]}" conntrack -F >/dev/null 2>&1
	answered || { echo "cli -> srv not answered"; return 1; }
	ct=$(ip netns exec "${POD_NETNS[srv]}" conntrack -L -p tcp 2>/dev/null)
	grep -E "src=${POD_IP[cli]} dst=${POD_IP[srv]} sport=[0-9]+ dport=$1 " <<<"$ct" >/dev/null || { echo "$ct"; return 1; }
}
# Direct: a connection cli holds open to srv:8080 is seen in srv's netns with
# the same 4-tuple (ss), no tunnel in between. (An unenrolled pod's netns has
# no netfilter hook, so no conntrack either.)
direct() {
	local f=$T/hold.out hp port out
	: >"$f"
	pexec cli "$PYTHON" -c 'import socket, sys, time
s = socket.create_connection((sys.argv[1], 8080), timeout=5)
print(s.getsockname()[1], flush=True)
time.sleep(5)' "${POD_IP[srv]}" >"$f" 2>&1 &
	hp=$!
	wait_for -t 5 test -s "$f"
	port=$(head -n 1 "$f")
	out=$(ss -N "${POD_NETNS[srv]}" -Htn state established '( sport = :8080 )' 2>&1)
	kill "$hp" 2>/dev/null; wait "$hp" 2>/dev/null
	[[ $port =~ ^[0-9]+$ ]] || { echo "cli could not connect: $(cat "$f")"; return 1; }
	# httpd listens on [::]: the peer shows as [::ffff:IP]:PORT
	grep -qE "(^|[[:space:]]|:)${POD_IP[cli]//./\\.}]?:$port([[:space:]]|$)" <<<"$out" || { echo "srv's connections on 8080: $out (want the peer ${POD_IP[cli]}:$port)"; return 1; }
}

check "not labelled: srv not enrolled" released srv
check "not labelled: cli -> srv:8080 direct (ss in srv: the connection from cli's own address and port)" direct

# --- label the namespace: the running pods join ---------------------------------
t0=$(date +%s%N)
kubectl label namespace shop istio.io/dataplane-mode=ambient >/dev/null
if wait_for -t 15 enrolled srv && wait_for -t 15 enrolled cli; then
	ok "kubectl label namespace: running srv and cli enrolled, status annotation set ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
else
	not_ok "kubectl label namespace: running pods enrolled" "$(enrolled srv; enrolled cli; tail -n 15 "$T/node2/tunnel.log")"
fi
restarts() { kubectl -n shop get pod "$1" -o jsonpath='{.status.containerStatuses[0].restartCount}'; }
check "the pods were not restarted" test "$(restarts srv)$(restarts cli)" = 00
check "cli -> srv: HBONE (conntrack in srv: cli's IP to 15008)" wait_for -t 10 flow_to 15008

# --- AuthorizationPolicy: applied, enforced, deleted, lifted ----------------------
policy_state() { wctl "$1" -o json policies | jq -r ".. | objects | select(.name? == \"$2\" and .namespace? == \"shop\") | .state" | head -n1; }
policy_is() { [[ $(policy_state node2 "$1") == "$2" ]]; }
kubectl apply -f - >/dev/null <<EOF
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-cli, namespace: shop}
spec: {selector: {matchLabels: {app: srv}}, action: DENY, rules: [{from: [{source: {namespaces: [shop]}}]}]}
EOF
check "DENY policy applied with kubectl: cli -> srv refused" wait_for -t 10 refused
kubectl -n shop delete authorizationpolicies.security.istio.io deny-cli >/dev/null
check "policy deleted: cli -> srv answered again" wait_for -t 10 answered

kubectl apply -f - >/dev/null <<EOF
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: broken, namespace: shop}
spec: {selector: {matchLabels: {app: srv}}, action: ALLOW, rules: [{to: [{operation: {ports: ["not-a-port"]}}]}]}
EOF
check "invalid policy: reported (state invalid on node2)" wait_for -t 10 policy_is broken invalid
check "... and fails closed: cli -> srv refused" wait_for -t 10 refused
kubectl -n shop delete authorizationpolicies.security.istio.io broken >/dev/null
check "invalid policy deleted: cli -> srv answered" wait_for -t 10 answered

# --- the tunnel restarted: its pod re-adopted, its watches resumed ----------------
tunnel_stop node2 KILL
tunnel_start node2 2>/dev/null || not_ok "node2's tunnel restarted" "$(tail -n 10 "$T/node2/tunnel.out")"
check "node2's tunnel restarted: srv re-adopted" wait_for -t 15 enrolled srv
watching() { [[ $(wctl node2 -o json config-dump | jq -r ".kubernetes.resources.$1.watching") == true ]]; }
check "... its watches resumed" wait_for -t 10 watching pods
check "... and cli -> srv goes over HBONE" wait_for -t 10 flow_to 15008
kubectl -n shop label pod srv istio.io/dataplane-mode=none >/dev/null
check "... and a later label change reaches it: srv labelled none is released" wait_for -t 15 released srv
kubectl -n shop label pod srv istio.io/dataplane-mode- >/dev/null
check "... and enrolled again when the label goes" wait_for -t 15 enrolled srv

# --- a pod that predates the tunnel: no ADD, no state; found through /proc ------
tunnel_stop node1 KILL
rm -rf "$T/node1/state"
tunnel_start node1 2>/dev/null || not_ok "node1's tunnel restarted with no state" "$(tail -n 10 "$T/node1/tunnel.out")"
check "node1's tunnel with an empty stateDir: cli (never seen at ADD) enrolled" wait_for -t 20 enrolled cli
check "... its netns found by the /proc scan (a process in its cgroup holding its IP)" \
	grep -q "pod shop/cli predates warren: its netns is /proc/" "$T/node1/tunnel.log"
check "... and cli -> srv goes over HBONE" wait_for -t 10 flow_to 15008

# --- remove the label: the pods leave ------------------------------------------------
kubectl label namespace shop istio.io/dataplane-mode- >/dev/null
check "label removed: srv released (rules, listeners, record, annotation)" wait_for -t 15 released srv
check "label removed: cli released" wait_for -t 15 released cli
check "cli -> srv:8080 direct again (ss in srv: cli's own address and port)" wait_for -t 10 direct
sanitizer_clean node1 node2
