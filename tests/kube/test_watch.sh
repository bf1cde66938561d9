#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# warren-tunnel in Kubernetes mode against a real etcd and kube-apiserver:
# it lists and watches the API server, and what kubectl creates, labels,
# breaks or deletes reaches its model; an API server restart and an etcd
# compaction past its watch are survived.
#
#   node1 netns (lo, with 10.0.0.1/32 too)
#     etcd            127.0.0.1:2379 (gRPC gateway used for compaction)
#     kube-apiserver  127.0.0.1:6443, RBAC, client certificates
#     warren-tunnel   meshSource: kubernetes, as user warren-tunnel bound to
#                     the ClusterRole of docs/kubernetes.md (nothing more)
#     kubectl         as system:masters
#   pod netns wp-<pid>-web, wp-<pid>-db: no kubelet runs; handoffctl sends the
#     query/add/del warren-cni would, and a status patch gives pods their IPs
#
# Binaries: ETCD, KUBE_APISERVER, KUBECTL, or hack/kube-build.sh --paths.
set -uo pipefail
source "$(dirname "$0")/../netns/lib.sh"

bin_of() { # NAME ENVVAR
	local v=${!2:-}
	if [[ -z $v && -x $WARREN_ROOT/hack/kube-build.sh ]]; then
		v=$("$WARREN_ROOT/hack/kube-build.sh" --paths 2>/dev/null | awk -v n="$1" '$1 == n {print $2}')
	fi
	[[ -n $v && -x $v ]] && echo "$v"
}
ETCD=$(bin_of etcd ETCD) KUBE_APISERVER=$(bin_of kube-apiserver KUBE_APISERVER) KUBECTL=$(bin_of kubectl KUBECTL)
if [[ -z $ETCD || -z $KUBE_APISERVER || -z $KUBECTL ]]; then
	echo "ok - test_watch # SKIP no etcd/kube-apiserver/kubectl (hack/kube-build.sh, or set ETCD, KUBE_APISERVER, KUBECTL)"
	exit 0
fi
lib_init
SA_MADE=
SA_PATH=/var/run/secrets/kubernetes.io/serviceaccount
sa_cleanup() { # the empty directories we made for the in-cluster check, then lib.sh's
	local rc=$? d=$SA_PATH
	if [[ -n $SA_MADE ]]; then
		while rmdir "$d" 2>/dev/null && [[ $d != "$SA_MADE" ]]; do d=$(dirname "$d"); done
	fi
	(exit "$rc"); cleanup
}
trap sa_cleanup EXIT
need openssl jq unshare
need_built warren-tunnel warrenctl tests/handoffctl
N=node1
P= # pki dir
APISERVER_PID='' ETCD_PID=''

# --- control plane ---------------------------------------------------------

pki() { # make the CA, serving and client certificates
	P=$T/pki; mkdir -p "$P"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$P/ca.key" -out "$P/ca.crt" -days 1 \
		-subj /CN=warren-test-ca 2>/dev/null || return 1
	cert apiserver /CN=kube-apiserver "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,IP:10.96.0.1,DNS:kubernetes.default.svc" || return 1
	cert admin "/O=system:masters/CN=admin" || return 1
	cert tunnel "/CN=warren-tunnel" || return 1
	openssl genrsa -out "$P/sa.key" 2048 2>/dev/null && openssl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null
}
cert() { # NAME SUBJ [EXT]
	openssl req -newkey rsa:2048 -nodes -keyout "$P/$1.key" -out "$P/$1.csr" -subj "$2" 2>/dev/null &&
		openssl x509 -req -in "$P/$1.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 1 \
			-out "$P/$1.crt" ${3:+-extfile <(echo "$3")} 2>/dev/null
}
kubeconfig() { # NAME: a kubeconfig for that client certificate
	cat >"$T/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
current-context: test
contexts: [{name: test, context: {cluster: test, user: $1}}]
clusters: [{name: test, cluster: {server: "https://127.0.0.1:6443", certificate-authority: pki/ca.crt}}]
users: [{name: $1, user: {client-certificate: pki/$1.crt, client-key: pki/$1.key}}]
EOF
}
# Daemons start with `ip netns exec ... &`, not through nexec: a backgrounded
# function is a subshell, and $! must be the daemon itself.
etcd_start() {
	ip netns exec "${NODE_NETNS[$N]}" "$ETCD" --name t --data-dir "$T/etcd" --listen-client-urls http://127.0.0.1:2379 \
		--advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
		--initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster t=http://127.0.0.1:2380 \
		>>"$T/etcd.log" 2>&1 &
	ETCD_PID=$!; BG_PIDS+=("$ETCD_PID")
	wait_for -t 30 etcd_rev
}
apiserver_up() { [[ $(k get --raw /readyz 2>/dev/null) == ok ]]; }
apiserver_start() {
	ip netns exec "${NODE_NETNS[$N]}" "$KUBE_APISERVER" --etcd-servers http://127.0.0.1:2379 --bind-address 127.0.0.1 \
		--secure-port 6443 --advertise-address 10.0.0.1 \
		--tls-cert-file "$P/apiserver.crt" --tls-private-key-file "$P/apiserver.key" \
		--client-ca-file "$P/ca.crt" --authorization-mode RBAC \
		--service-account-key-file "$P/sa.pub" --service-account-signing-key-file "$P/sa.key" \
		--service-account-issuer https://kubernetes.default.svc --service-cluster-ip-range 10.96.0.0/16 \
		--etcd-compaction-interval 0 >>"$T/apiserver.log" 2>&1 &
	APISERVER_PID=$!; BG_PIDS+=("$APISERVER_PID")
	wait_for -t 90 apiserver_up && ! exited "$APISERVER_PID"
}
# As a kubelet restarts it: SIGTERM, SIGKILL after a grace period. A draining
# apiserver sends GOAWAY but keeps serving open watches until it exits.
apiserver_stop() {
	kill "$APISERVER_PID" 2>/dev/null
	wait_for -t "${APISERVER_GRACE:-5}" exited "$APISERVER_PID" || kill -KILL "$APISERVER_PID" 2>/dev/null
	wait_for -t 10 exited "$APISERVER_PID" && wait "$APISERVER_PID" 2>/dev/null
	! exited "$APISERVER_PID" && return 1
	wait_for -t 5 fails listening "${NODE_NETNS[$N]}" 6443
}
k() { nexec $N "$KUBECTL" --kubeconfig "$T/admin.kubeconfig" "$@"; }
# etcd's gRPC gateway: the current revision; compaction to it
etcd_rev() { nexec $N curl -sf -X POST http://127.0.0.1:2379/v3/kv/range -d '{"key":"AA=="}' | jq -er '.header.revision'; }
etcd_put() { nexec $N curl -sf -X POST http://127.0.0.1:2379/v3/kv/put -d "{\"key\":\"$(echo -n "$1" | base64)\",\"value\":\"eA==\"}" >/dev/null; }
etcd_compact() { nexec $N curl -sf -X POST http://127.0.0.1:2379/v3/kv/compaction -d "{\"revision\":\"$1\",\"physical\":true}" >/dev/null; }

crd() { # KIND PLURAL VERSIONS...: a schemaless CRD of CRD_GROUP (security.istio.io; first version stored)
	local kind=$1 plural=$2 v first=1 group=${CRD_GROUP:-security.istio.io}; shift 2
	{
		cat <<EOF
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: $plural.$group
  # *.k8s.io groups need it (the Gateway API's own CRDs carry one); others must not have it
  annotations: {$([[ $group == *.k8s.io ]] && echo 'api-approved.kubernetes.io: "https://github.com/kubernetes-sigs/gateway-api/pull/1538"')}
spec:
  group: $group
  scope: Namespaced
  names: {kind: $kind, listKind: ${kind}List, plural: $plural, singular: ${plural%s}}
  versions:
EOF
		for v in "$@"; do
			echo "  - {name: $v, served: true, storage: $([[ $first == 1 ]] && echo true || echo false), schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}"
			first=0
		done
	} | k apply -f - >/dev/null
}

# --- the tunnel ------------------------------------------------------------

tunnel_kube_start() {
	local d=$T/$N
	mkdir -p "$d"
	cat >"$d/tunnel.yaml" <<EOF
node: $N
pluginSocket: $d/plugin.sock
stateDir: $d/state
meshSource: kubernetes
kubeconfig: ${TUNNEL_KUBECONFIG:-$T/tunnel.kubeconfig}
adminAddress: 127.0.0.1:15000
adminSocket: $d/admin.sock
metricsAddress: 127.0.0.1:15020
readinessAddress: 127.0.0.1:15021
logLevel: debug
logFile: $d/tunnel.log
drainSeconds: 0
hostProbeSnat: false
# No CA here (the model, not traffic, is under test): plaintext by choice.
mtls: disabled
EOF
	ip netns exec "${NODE_NETNS[$N]}" "$WARREN_BUILD/warren-tunnel" --config "$d/tunnel.yaml" >>"$d/tunnel.out" 2>&1 &
	TUNNEL_PID[$N]=$!
	disown "$!"
	wait_for -t 20 tunnel_ready $N
}
kdump() { wctl $N -o json config-dump | jq -cr "${1:-.}"; } # [JQ]
dump_is() { [[ $(kdump "$1") == "$2" ]]; } # JQ VALUE
res() { kdump ".kubernetes.resources.$1.$2"; } # RESOURCE FIELD
workload() { wctl $N -o json workloads | jq -ce ".[] | select(.namespace == \"$1\" and .name == \"$2\")$3"; }
enrolled() { [[ $(workload "$1" "$2" .enrolled) == true ]]; }
not_enrolled() { [[ $(workload "$1" "$2" .enrolled) == false ]]; }
has_workload() { workload "$1" "$2" "" >/dev/null; }
no_workload() { wctl $N -o json workloads >/dev/null && ! has_workload "$1" "$2"; }
policy_state() { wctl $N -o json policies | jq -r ".. | objects | select(.name? == \"$2\" and .namespace? == \"$1\") | .state" | head -n1; }
policy_is() { [[ $(policy_state "$1" "$2") == "$3" ]]; } # NS NAME STATE
metric() { nexec $N curl -sf http://127.0.0.1:15020/metrics | awk -v m="$1{resource=\"$2\"}" '$1 == m {print $2}'; }
metric_is() { [[ $(metric "$1" "$2") == "$3" ]]; } # NAME RESOURCE VALUE
metric_gt() { local v; v=$(metric "$1" "$2"); [[ -n $v ]] && awk -v a="$v" -v b="$3" 'BEGIN {exit !(a > b)}'; } # NAME RESOURCE VALUE
hctl() { "$WARREN_BUILD/tests/handoffctl" "$T/$N/plugin.sock" "$@"; }
annotation() { k -n "$1" get pod "$2" -o jsonpath='{.metadata.annotations.ambient\.istio\.io/redirection}'; }
annotated() { [[ $(annotation "$1" "$2") == enabled ]]; }
not_annotated() { local a; a=$(annotation "$1" "$2") && [[ -z $a ]]; }
ns_create() { # NS: with its default ServiceAccount (no controller-manager runs to make it)
	k create namespace "$1" >/dev/null && k -n "$1" create serviceaccount default >/dev/null
}
pod_yaml() { # NS NAME IP
	cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $2, namespace: $1, labels: {app: $2}}
spec: {nodeName: $N, automountServiceAccountToken: false, containers: [{name: app, image: app:local, imagePullPolicy: Never}]}
EOF
}
pod_create() { # NS NAME IP: a pod (no kubelet runs it) with its status.podIP set as a kubelet would
	pod_yaml "$1" "$2" | k apply -f - >/dev/null &&
		k -n "$1" patch pod "$2" --subresource=status --type=merge \
			-p "{\"status\":{\"phase\":\"Running\",\"podIP\":\"$3\",\"podIPs\":[{\"ip\":\"$3\"}]}}" >/dev/null
}

# --- setup -----------------------------------------------------------------

ip netns add "${NODE_NETNS[$N]}" || die "ip netns add"
nexec $N ip link set lo up
nexec $N ip addr add 10.0.0.1/32 dev lo # the apiserver's advertise address
pki || die "openssl: certificates"
kubeconfig admin; kubeconfig tunnel
etcd_start || die "etcd did not start (see $T/etcd.log)"
apiserver_start || die "kube-apiserver not ready in 90 s: $(tail -n 5 "$T/apiserver.log")"
k apply -f "$WARREN_ROOT/docs/kubernetes-rbac.yaml" >/dev/null || die "RBAC from docs/kubernetes-rbac.yaml"
k create clusterrolebinding warren-tunnel-test --clusterrole warren-tunnel --user warren-tunnel >/dev/null || die "binding"
# AuthorizationPolicy served as v1; PeerAuthentication comes later, as v1beta1 only
crd AuthorizationPolicy authorizationpolicies v1 v1beta1 || die "CRD"
wait_for -t 20 k get authorizationpolicies -A || die "CRD not served"
ns_create shop || die "namespace"
pod_create shop web 10.244.1.10 || die "pod"

# --- tests -----------------------------------------------------------------

start=$SECONDS
if tunnel_kube_start; then ok "tunnel in kubernetes mode ready after its first lists ($((SECONDS - start)) s)"
else not_ok "tunnel in kubernetes mode ready" "$(tail -n 20 "$T/$N/tunnel.out")"; exit 1; fi
check "the pod created before the start is in the model" has_workload shop web
check "model not enrolled: namespace shop has no label" not_enrolled shop web
check "PeerAuthentication CRD missing: reported as absent, not fatal" \
	dump_is .kubernetes.resources.peerauthentications.state absent
check "Gateway API CRDs missing: gateways reported as absent, not fatal" \
	dump_is .kubernetes.resources.gateways.state absent
check "... httproutes too" dump_is .kubernetes.resources.httproutes.state absent
for r in namespaces pods services endpointslices authorizationpolicies; do
	[[ $(res $r watching) == true ]] || { not_ok "$r watched" "$(kdump .kubernetes.resources.$r)"; continue; }
	ok "$r listed and watched"
done

pod_create shop api 10.244.1.11
check "a pod created with kubectl reaches the model" wait_for -t 5 has_workload shop api

t0=$(date +%s%N)
k label namespace shop istio.io/dataplane-mode=ambient >/dev/null
if wait_for -t 5 enrolled shop web; then
	ok "namespace label reaches the model within 5 s ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
else
	not_ok "namespace label reaches the model within 5 s" "$(workload shop web '')"
fi
k -n shop label pod api istio.io/dataplane-mode=none >/dev/null
check "pod label none reaches the model" wait_for -t 5 not_enrolled shop api

k apply -f - >/dev/null <<EOF
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-web, namespace: shop}
spec: {selector: {matchLabels: {app: web}}, action: ALLOW, rules: [{from: [{source: {namespaces: [shop]}}]}]}
EOF
check "an AuthorizationPolicy applied with kubectl is compiled" wait_for -t 5 policy_is shop allow-web active
k apply -f - >/dev/null <<EOF
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: broken, namespace: shop}
spec: {selector: {matchLabels: {app: api}}, action: ALLOW, rules: [{to: [{operation: {ports: ["not-a-port"]}}]}]}
EOF
check "an invalid AuthorizationPolicy fails closed (state invalid)" wait_for -t 5 policy_is shop broken invalid
check "... and the tunnel log names it" grep -q "broken" "$T/$N/tunnel.log"

# A Service without a selector: its endpoints are its EndpointSlices' addresses
svc_eps() { wctl $N -o json services | jq -r ".[] | select(.namespace == \"$1\" and .name == \"$2\") | [.endpoints[] | \"\(.name // \"-\")=\(.ips[0]):\(.ports[\"80\"] // 0)\"] | join(\",\")"; }
svc_eps_is() { [[ $(svc_eps "$1" "$2") == "$3" ]]; } # NS NAME ENDPOINTS
slice_apply() { # ENDPOINTS (a YAML flow list)
	k apply -f - >/dev/null <<EOF
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ext-1, namespace: shop, labels: {kubernetes.io/service-name: ext}}
addressType: IPv4
endpoints: $1
ports: [{name: http, port: 8080, protocol: TCP}]
EOF
}
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: shop}
spec: {ports: [{name: http, port: 80}]}
EOF
slice_apply '[{addresses: [10.244.1.10]}, {addresses: [192.0.2.7]}, {addresses: [192.0.2.8], conditions: {ready: false}}]'
check "a Service without a selector gets its EndpointSlice's ready addresses (pod web, and one outside the model)" \
	wait_for -t 5 svc_eps_is shop ext "web=10.244.1.10:8080,-=192.0.2.7:8080"
slice_apply '[{addresses: [192.0.2.9]}]'
check "... and follows the slice's changes" wait_for -t 5 svc_eps_is shop ext "-=192.0.2.9:8080"
k -n shop delete endpointslice ext-1 >/dev/null
check "... and its deletion" wait_for -t 5 svc_eps_is shop ext ""

crd PeerAuthentication peerauthentications v1beta1
check "PeerAuthentication CRD installed later: found at v1beta1 within 15 s" \
	wait_for -t 15 dump_is .kubernetes.resources.peerauthentications.path /apis/security.istio.io/v1beta1
CRD_GROUP=gateway.networking.k8s.io crd Gateway gateways v1
CRD_GROUP=gateway.networking.k8s.io crd HTTPRoute httproutes v1
for r in gateways httproutes; do
	check "Gateway API CRD $r installed later: watched at v1 within 15 s" \
		wait_for -t 15 dump_is ".kubernetes.resources.$r | .state + \" \" + .path" "watching /apis/gateway.networking.k8s.io/v1"
done
k apply -f - >/dev/null <<EOF
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
EOF
check "... an HTTPRoute created with kubectl reaches the tunnel's store" \
	wait_for -t 5 dump_is .kubernetes.resources.httproutes.objects 1

# --- enrolled pods carry ambient.istio.io/redirection ------------------------
PODNS=wp-$E2E_ID-web
POD_NETNS[web]=$PODNS
ip netns add "$PODNS" && ip -n "$PODNS" link set lo up &&
	ip -n "$PODNS" link add eth0 type veth peer name eth0p && ip -n "$PODNS" addr add 10.244.1.10/24 dev eth0 &&
	ip -n "$PODNS" link set eth0 up && ip -n "$PODNS" link set eth0p up || die "pod netns"
uid=$(k -n shop get pod web -o jsonpath='{.metadata.uid}')
if out=$(hctl add "$uid" shop web cid-web "/var/run/netns/$PODNS" 10.244.1.10/24 2>&1); then ok "pod web handed to the tunnel (enrolled)"
else not_ok "pod web handed to the tunnel" "$out"; fi
check "enrolled pod: status annotation set to enabled" wait_for -t 5 annotated shop web
pod_create shop stray 10.244.1.13
k -n shop annotate pod stray ambient.istio.io/redirection=enabled >/dev/null
check "a pod of this node annotated but not enrolled here loses the annotation" wait_for -t 5 not_annotated shop stray

# --- enrollment follows labels: a running pod joins and leaves ---------------
pod_netns() { # POD IP: a pod netns with eth0 holding IP
	local p=wp-$E2E_ID-$1
	POD_NETNS[$1]=$p
	ip netns add "$p" && ip -n "$p" link set lo up && ip -n "$p" link add eth0 type veth peer name eth0p &&
		ip -n "$p" addr add "$2/24" dev eth0 && ip -n "$p" link set eth0 up && ip -n "$p" link set eth0p up
}
has_inpod_rules() { ! inpod_clean "$1"; }
ns_create shop2
pod_create shop2 db 10.244.1.20 || die "pod db"
pod_netns db 10.244.1.20 || die "pod netns db"
uid_db=$(k -n shop2 get pod db -o jsonpath='{.metadata.uid}')
check "db set up outside the mesh: the plugin's query (with its netns) says no" \
	bash -c "'$WARREN_BUILD/tests/handoffctl' '$T/$N/plugin.sock' query shop2 db '$uid_db' cid-db /var/run/netns/${POD_NETNS[db]} 10.244.1.20/24 | jq -e '.enroll == false'"
t0=$(date +%s%N)
k label namespace shop2 istio.io/dataplane-mode=ambient >/dev/null
if wait_for -t 5 tunnel_knows $N cid-db; then
	ok "label added: the running pod db is enrolled by the tunnel ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
else
	not_ok "label added: the running pod db is enrolled" "$(grep -E 'db' "$T/$N/tunnel.log" | tail -n 5)"
fi
check "... its in-pod rules are programmed" has_inpod_rules db
check "... its listeners are open" wait_listen "${POD_NETNS[db]}" 15001 5
check "... its status says ambient.istio.io/redirection: enabled" wait_for -t 5 annotated shop2 db
k -n shop2 label pod db istio.io/dataplane-mode=none >/dev/null
check "pod labelled none: released by the tunnel" wait_for -t 5 tunnel_forgot $N cid-db
check "... in-pod rules removed" inpod_clean db
check "... listeners closed" no_listeners db
check "... annotation removed" wait_for -t 5 not_annotated shop2 db
k -n shop2 label pod db istio.io/dataplane-mode- >/dev/null
check "pod label removed again (namespace ambient): enrolled again" wait_for -t 5 tunnel_knows $N cid-db
k label namespace shop2 istio.io/dataplane-mode- >/dev/null
check "namespace label removed: released again" wait_for -t 5 tunnel_forgot $N cid-db
check "... in-pod rules removed" inpod_clean db

# no kubelet runs to confirm the deletion: forced, as a kubelet would end it
k -n shop delete pod api --force --grace-period=0 >/dev/null 2>&1
check "a pod deleted with kubectl leaves the model" wait_for -t 5 no_workload shop api

# --- the connection drops, the API server stays: resume, no relist ----------
lists_before=$(metric warren_kube_lists_total pods)
errors_before=$(metric warren_kube_errors_total pods)
if nexec $N ss -K dst 127.0.0.1 dport = 6443 >/dev/null 2>&1; then
	check "connection to the API server killed: the pods watch notices" wait_for -t 10 metric_gt warren_kube_errors_total pods "$errors_before"
	check "... and resumes" wait_for -t 15 metric_is warren_kube_watching pods 1
	pod_create shop early 10.244.1.14
	check "... events flow again" wait_for -t 10 has_workload shop early
	n=$(metric warren_kube_lists_total pods)
	if [[ $n == "$lists_before" ]]; then ok "... from its resourceVersion: no relist"
	else not_ok "... from its resourceVersion: no relist" "lists $lists_before -> $n"; fi
else
	not_ok "ss -K (socket destroy) works in this kernel" "CONFIG_INET_DIAG_DESTROY?"
fi

# --- API server outage and restart -------------------------------------------
lists_before=$(metric warren_kube_lists_total pods)
if apiserver_stop; then ok "API server stopped (process gone, 6443 closed)"; else not_ok "API server stopped"; fi
gen=$(kdump .meshGeneration)
check "API server down: the watches notice" wait_for -t 15 metric_is warren_kube_watching pods 0
check "API server down: still ready, model generation $gen kept" dump_is '[.ready, .meshGeneration]' "[true,$gen]"
check "API server down: the age of the last sync shows" wait_for -t 5 metric_gt warren_kube_last_sync_age_seconds pods 0
check "API server down: the pod is still known and enrolled" enrolled shop web
check "API server down: the handed-over pod is kept" tunnel_knows $N cid-web
if apiserver_start; then ok "API server restarted"; else not_ok "API server restarted"; fi
check "watches resume after the restart" wait_for -t 40 metric_is warren_kube_watching pods 1
pod_create shop late 10.244.1.12
check "a pod created after the restart reaches the model" wait_for -t 10 has_workload shop late
# A restarted apiserver's watch cache starts at its own list: it answers an
# older resourceVersion with 410 (in the stream), so one relist is expected.
lists_after=$(metric warren_kube_lists_total pods)
if ((lists_after <= lists_before + 1)); then ok "the restart cost at most one list of pods ($lists_before -> $lists_after)"
else not_ok "the restart cost at most one list of pods" "lists before $lists_before, after $lists_after"; fi
check "... and the handed-over pod is still enrolled" tunnel_knows $N cid-web

# --- 410: etcd compacted past the watch's resourceVersion -------------------
apiserver_stop || not_ok "API server stopped before the compaction"
for i in 1 2 3; do etcd_put "/warren-test/bump$i"; done
rev=$(etcd_rev)
if etcd_compact "$rev"; then ok "etcd compacted to revision $rev"; else not_ok "etcd compaction"; fi
apiserver_start || not_ok "API server restarted after compaction"
check "after compaction: pods listed again (410 Gone)" wait_for -t 40 metric_gt warren_kube_lists_total pods "$lists_after"
check "after compaction: watching again" wait_for -t 20 metric_is warren_kube_watching pods 1
n=$(metric warren_kube_lists_total pods)
if ((n == lists_after + 1)); then ok "exactly one relist of pods"
else not_ok "exactly one relist of pods" "lists $lists_after -> $n"; fi
check "after the relist the model still has the pods" enrolled shop web
check "... and the one created last" enrolled shop late
diag "$(grep -E 'kubernetes' "$T/$N/tunnel.log" | grep -E 'listed|410|expired' | tail -n 8)"
check "the handed-over pod survived outage and relist" tunnel_knows $N cid-web

if out=$(hctl del cid-web eth0 2>&1); then ok "pod web released (DEL)"; else not_ok "pod web released (DEL)" "$out"; fi
check "released pod: status annotation removed" wait_for -t 5 not_annotated shop web

# --- one watch failing does not stall the others ------------------------------
errs=$(metric warren_kube_errors_total endpointslices)
k patch clusterrole warren-tunnel --type=json -p '[{"op":"remove","path":"/rules/1"}]' >/dev/null
nexec $N ss -K dst 127.0.0.1 dport = 6443 >/dev/null 2>&1 # open watches are not re-authorized
check "role without endpointslices: that watch fails and retries" wait_for -t 10 metric_gt warren_kube_errors_total endpointslices "$errs"
check "... the log names the missing permission" wait_for -t 5 grep -q "403 Forbidden: the tunnel's account needs get, list and watch on endpointslices" "$T/$N/tunnel.log"
check "... the other watches resume" wait_for -t 10 metric_is warren_kube_watching pods 1
pod_create shop iso 10.244.1.15
check "... and their events reach the model" wait_for -t 10 has_workload shop iso
k apply -f "$WARREN_ROOT/docs/kubernetes-rbac.yaml" >/dev/null
check "role restored: endpointslices watched again (after its backoff)" wait_for -t 45 metric_is warren_kube_watching endpointslices 1

# --- a service-account token: rotated in its file, revoked ----------------------
tunnel_stop $N
# meanwhile, the namespace of the remembered pod db is labelled
k label namespace shop2 istio.io/dataplane-mode=ambient >/dev/null
ns_create warren-system
k -n warren-system create serviceaccount warren-tunnel >/dev/null
k create clusterrolebinding warren-tunnel-sa --clusterrole warren-tunnel --serviceaccount warren-system:warren-tunnel >/dev/null
token_new() { # SECRET: a token bound to a new Secret (deleting it revokes the token), into $T/token
	k -n warren-system create secret generic "$1" >/dev/null &&
		k -n warren-system create token warren-tunnel --bound-object-kind Secret --bound-object-name "$1" >"$T/token.new" &&
		mv "$T/token.new" "$T/token"
}
token_new tok1 || die "token"
cat >"$T/sa.kubeconfig" <<EOF
apiVersion: v1
kind: Config
current-context: sa
contexts: [{name: sa, context: {cluster: test, user: sa}}]
clusters: [{name: test, cluster: {server: "https://127.0.0.1:6443", certificate-authority: pki/ca.crt}}]
users: [{name: sa, user: {tokenFile: token}}]
EOF
if TUNNEL_KUBECONFIG=$T/sa.kubeconfig tunnel_kube_start; then ok "tunnel with a service-account token (tokenFile) ready"
else not_ok "tunnel with a service-account token ready" "$(tail -n 5 "$T/$N/tunnel.log")"; fi
check "labelled while the tunnel was down: db enrolled once it is back" wait_for -t 10 tunnel_knows $N cid-db
check "... with its in-pod rules" has_inpod_rules db
token_new tok2 && k -n warren-system delete secret tok1 >/dev/null
nexec $N ss -K dst 127.0.0.1 dport = 6443 >/dev/null 2>&1
check "token rotated in its file, the old one revoked: watching again" wait_for -t 15 metric_is warren_kube_watching pods 1
check "... with the token re-read" grep -q "re-read the token" "$T/$N/tunnel.log"
pod_create shop tok 10.244.1.16
check "... and events flow" wait_for -t 10 has_workload shop tok
k -n warren-system delete secret tok2 >/dev/null
# The apiserver accepts a token it has seen for a while after its revocation
# and never re-checks an open watch: drop the connection until one is refused.
refused_401() { nexec $N ss -K dst 127.0.0.1 dport = 6443 >/dev/null 2>&1; grep -q "401 Unauthorized" "$T/$N/tunnel.log"; }
check "token revoked, file unchanged: 401s, logged" wait_for -t 40 refused_401
check "... still ready with the last model" tunnel_ready $N
token_new tok3
check "a new token written: watching again" wait_for -t 45 metric_is warren_kube_watching pods 1
check "no token in the log" fails grep -qF "$(cut -c1-40 "$T/token")" "$T/$N/tunnel.log"
# The object goes before the DEL (a forced delete): the tunnel still holds
# db, so the model keeps what it knew of it until the DEL.
kept() { [[ $(nexec $N curl -sf http://127.0.0.1:15020/metrics | awk '$1 == "warren_mesh_pods_kept" {print $2}') == "$1" ]]; }
k -n shop2 delete pod db --force --grace-period=0 >/dev/null 2>&1
pod_create shop gone 10.244.1.17
check "db's object deleted while the tunnel holds it: the next model keeps it" wait_for -t 10 has_workload shop gone
db_kept() { enrolled shop2 db && kept 1; }
check "... still enrolled, and counted in warren_mesh_pods_kept" db_kept
check "... and logged" grep -q "pod shop2/db is enrolled on this node but missing from the API server" "$T/$N/tunnel.log"
if out=$(hctl del cid-db eth0 2>&1); then ok "pod db deleted (DEL)"; else not_ok "pod db deleted (DEL)" "$out"; fi
check "... and forgotten" fails grep -q cid-db "$T/$N/state/kube-seen.json"
pod_create shop gone2 10.244.1.18
check "... and the next model drops it" wait_for -t 10 no_workload shop2 db
check "... none kept" kept 0

# --- in-cluster configuration: the service-account files and KUBERNETES_SERVICE_* -
# A pod's view, made in a private mount namespace: the token and CA bind-mounted
# on the standard path, which is made (empty) on the host only if missing.
tunnel_stop $N
mkdir -p "$T/sa" && cp "$T/token" "$T/sa/token" && cp "$P/ca.crt" "$T/sa/ca.crt" && echo warren-system >"$T/sa/namespace"
if [[ ! -d $SA_PATH ]]; then
	made=/var/run/secrets
	[[ -d $made ]] && made=/var/run/secrets/kubernetes.io
	mkdir -p "$SA_PATH" && SA_MADE=$made
fi
sed -i '/^kubeconfig:/d' "$T/$N/tunnel.yaml"
ip netns exec "${NODE_NETNS[$N]}" unshare -m sh -c \
	"mount --bind '$T/sa' '$SA_PATH' && exec env KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=6443 '$WARREN_BUILD/warren-tunnel' --config '$T/$N/tunnel.yaml'" \
	>>"$T/$N/tunnel.out" 2>&1 &
TUNNEL_PID[$N]=$!
disown "$!"
check "in-cluster configuration (no kubeconfig): ready" wait_for -t 20 tunnel_ready $N
check "... credentials from the service-account files" dump_is .kubernetes.credentials in-cluster
check "... every resource watched" dump_is '[.kubernetes.resources[] | .watching] | all' true
pod_create shop incluster 10.244.1.17
check "... and events flow" wait_for -t 10 has_workload shop incluster

tunnel_stop $N
sanitizer_clean $N
apiserver_stop
grep -c 'Version: v' "$T/apiserver.log" | { read -r n; diag "kube-apiserver started $n times"; }
echo "1..$TAP_COUNT"
