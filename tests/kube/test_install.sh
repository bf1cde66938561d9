#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# warren installed the way a user installs it, on a real cluster
# (hack/kube-up.sh: etcd, kube-apiserver, two kubelets with containerd),
# plus the kube-controller-manager and kube-scheduler a DaemonSet needs:
#
#   netns wkc-ID: etcd, kube-apiserver, controller-manager, scheduler
#        |
#   netns wk1-ID (node1)                       netns wk2-ID (node2)
#     containerd + kubelet                       containerd + kubelet
#     DaemonSet pod: warren-tunnel               DaemonSet pod: warren-tunnel
#                    warren-install                             warren-install
#     /etc/cni/net.d, /opt/cni/bin,              (the same paths, the node's
#     /var/lib/warren, /var/run/netns:            own directories)
#       the node's own directories, bound
#       in its mount namespace
#     pod shop/client (ambient) --- HBONE 15008 ---> pod shop/server (ambient)
#     warren-ca pod (Deployment, 2 replicas; the Secret with the signing key
#     mounted there only) <--- CSRs over TLS, 15012 --- both tunnels
#
# The image is `make image`'s archive imported with ctr; the manifest is
# deploy/warren.yaml as it is, applied with kubectl. No kube-proxy runs:
# each node's netns DNATs the kubernetes Service (10.96.0.1:443) to the API
# server, as kube-proxy would, so the pods' in-cluster configuration works;
# likewise it DNATs warren-ca's Service to its pods, and (no cluster DNS)
# each node's /etc/hosts, which the kubelet copies into host-network pods,
# names the Service's address warren-ca.warren-system.svc.
# Checks: the DaemonSet gets ready; warren-cni is last in each node's
# chain; an ambient namespace's pods are enrolled and talk; another agent
# rewriting the configuration gets warren back within a second; a rolling
# update to a new image tag while a client loops connections through HBONE
# fails none; warren-ca runs from the image and signs both tunnels'
# certificates, and no DaemonSet pod mounts a Secret; a waypoint rendered by
# hack/waypoint.sh runs from the image for namespace shop
# (istio.io/use-waypoint), takes its certificate from warren-ca and its
# model from the API server, and follows it live: an AuthorizationPolicy
# DENY applied with kubectl gets 403 and deleted 200, an HTTPRoute applied
# takes effect, an invalid one makes the Service fail closed (503) until
# deleted; kubectl delete leaves each node's configuration byte-identical,
# the binary gone, and a new pod gets its network.
# Env: KEEP_CLUSTER=1 leaves the cluster up (prints its KUBE_DIR); KEEP_LOGS=DIR
# copies the tunnels' logs of the rollout there.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. tests/netns/lib.sh
((EUID == 0)) || { echo "not ok - needs root"; exit 1; }
T=$(mktemp -d /tmp/warren-kinst.XXXXXX)
ID=wi$$
K=$T/kube
CP=wkc-$ID
MADE_VAR_LIB_WARREN=0
CTRL_PIDS=()

cleanup_all() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	if [[ -n ${KEEP_CLUSTER:-} ]]; then
		echo "# cluster kept: KUBE_DIR=$K (hack/kube-down.sh $K)"
		exit "$rc"
	fi
	for p in "${CTRL_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	[[ -f $K/env ]] && bash hack/kube-down.sh "$K" >"$T/kube-down.log" 2>&1
	# Not while another run of this test is up: removing the directory
	# would detach the bind mounts its nodes hold there (their state dirs).
	((MADE_VAR_LIB_WARREN)) && [[ -z $(ls -d /tmp/warren-kinst.* 2>/dev/null | grep -vxF "$T") ]] &&
		rmdir /var/lib/warren 2>/dev/null
	rm -rf "$T"
	((rc == 0 && TAP_FAILED > 0)) && rc=1
	exit "$rc"
}
trap cleanup_all EXIT
trap 'exit 130' INT TERM

# --- the controller-manager and the scheduler (hack/kube-ctrl-build.sh) ----------------
declare -A CTRL
while read -r name path; do CTRL[$name]=$path; done < <(bash hack/kube-ctrl-build.sh --paths 2>/dev/null)
[[ -x ${CTRL[kube-controller-manager]:-} && -x ${CTRL[kube-scheduler]:-} ]] ||
	die "kube-controller-manager and kube-scheduler not built (bash hack/kube-ctrl-build.sh)"
KCM=${CTRL[kube-controller-manager]} KSCHED=${CTRL[kube-scheduler]}

# --- images: two tags of the same build (the rollout's old and new) ------------------
for tag in t1 t2; do
	IMAGE=localhost/warren:$tag bash hack/image.sh "$T/warren-$tag.tar" >"$T/image-$tag.log" 2>&1 ||
		die "make image: $(tail -5 "$T/image-$tag.log")"
done

# --- the cluster -------------------------------------------------------------------
KUBE_DIR=$K KUBE_ID=$ID KUBE_NODES=2 KUBE_CNI_WARREN=0 KUBE_NETNS_UNDER_STATE=false \
	bash hack/kube-up.sh >"$T/kube-up.log" 2>&1 || die "hack/kube-up.sh: $(tail -5 "$T/kube-up.log")"
# shellcheck source=/dev/null
. "$K/env"
P=$K/pki
start_ctrl() { # NAME CMD...: in the control plane's netns; kube-down.sh stops it with the netns
	local name=$1; shift
	setsid ip netns exec "$CP" "$@" </dev/null >"$T/$name.log" 2>&1 &
	CTRL_PIDS+=($!)
	echo "$name $!" >>"$K/pids"
}
start_ctrl kube-controller-manager "$KCM" --kubeconfig "$K/kubeconfig" --leader-elect=false \
	--service-account-private-key-file "$P/sa.key" --root-ca-file "$P/ca.crt" \
	--use-service-account-credentials=false --controllers '*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle' \
	--cluster-signing-cert-file "$P/ca.crt" --cluster-signing-key-file "$P/ca.key" --v 1
start_ctrl kube-scheduler "$KSCHED" --kubeconfig "$K/kubeconfig" --leader-elect=false --v 1

anchor() { awk -v n="anchor-$1" '$1 == n {print $2}' "$K/pids"; } # NODE
in_node() { local n=$1; shift; nsenter -t "$(anchor "$n")" -m -n "$@"; } # NODE CMD...: the node's mount+net ns
ctr_node() { local n=$1; shift; in_node "$n" "$KUBE_BIN_ctr" --address "$K/$n/containerd.sock" -n k8s.io "$@"; }
if [[ ! -d /var/lib/warren ]]; then mkdir /var/lib/warren && MADE_VAR_LIB_WARREN=1; fi
for n in node1 node2; do
	D=$K/$n
	mkdir -p "$D/warren-lib"
	# the manifest's host paths are the node's own directories (its mount
	# namespace; nothing reaches the machine's)
	in_node "$n" sh -c "mount -t tmpfs tmpfs /opt && mkdir -p /opt/cni/bin && mount --bind '$D/cni-bin' /opt/cni/bin &&
		mount --bind '$D/cni-conf' /etc/cni/net.d && mount --bind '$D/warren-lib' /var/lib/warren" ||
		die "$n: binding the node's directories"
	# kube-proxy's part for the kubernetes Service
	ip netns exec "wk${n#node}-$ID" nft -f - <<EOF || die "$n: DNAT for the kubernetes Service"
table ip wi-kube-proxy {
	chain out { type nat hook output priority -100; ip daddr 10.96.0.1 tcp dport 443 dnat to 10.100.0.1:6443; }
	chain pre { type nat hook prerouting priority -100; ip daddr 10.96.0.1 tcp dport 443 dnat to 10.100.0.1:6443; }
}
EOF
	for tag in t1 t2; do
		ctr_node "$n" images import "$T/warren-$tag.tar" >>"$T/import.log" 2>&1 || die "$n: ctr import: $(tail -3 "$T/import.log")"
	done
	cp /etc/hosts "$D/hosts"
	in_node "$n" mount --bind "$D/hosts" /etc/hosts || die "$n: binding the node's /etc/hosts"
	cp "$D/cni-conf/10-warren-kube.conflist" "$T/$n.orig.conflist"
	stat -c %a "$D/cni-conf/10-warren-kube.conflist" >"$T/$n.orig.mode"
done
ok "setup: two nodes, controller-manager, scheduler, image localhost/warren:t1 and :t2 imported with ctr"

# --- install -------------------------------------------------------------------
kubectl create -f deploy/crds/istio-security.yaml >"$T/crds.log" 2>&1 || die "CRDs: $(cat "$T/crds.log")"
# The image tag is the one difference from deploy/warren.yaml (the test's
# archives carry t1 and t2): everything else is applied as shipped.
sed -e 's|image: localhost/warren:dev|image: localhost/warren:t1|' deploy/warren.yaml >"$T/warren.yaml"
check "the applied manifest differs from deploy/warren.yaml in the image tag only" \
	test "$(diff deploy/warren.yaml "$T/warren.yaml" | grep '^[<>]' | grep -vc 'image: localhost/warren:')" = 0
out=$(kubectl apply -f "$T/warren.yaml" 2>&1)
check "kubectl apply -f deploy/warren.yaml" test $? -eq 0
# cluster DNS for the tunnels (host network): warren-ca's Service name, in
# each node's /etc/hosts before the pods start (they wait for the bundle)
CA_VIP=$(kubectl -n warren-system get service warren-ca -o 'jsonpath={.spec.clusterIP}')
[[ -n $CA_VIP ]] || die "warren-ca's Service has no clusterIP"
for n in node1 node2; do echo "$CA_VIP warren-ca.warren-system.svc" >>"$K/$n/hosts"; done
bash hack/ca-bootstrap.sh --kubectl "$K/kubectl" >"$T/ca-bootstrap.log" 2>&1
check "hack/ca-bootstrap.sh: the warren-ca Secret and the trust bundle created" test $? -eq 0
check "hack/ca-bootstrap.sh again: the Secret is left as it is" \
	bash -c "bash hack/ca-bootstrap.sh --kubectl '$K/kubectl' | grep -q 'exists: left as it is'"
# The node lifecycle controller, which lifts the kubelet's registration taint
# from a Ready node, is not run here (no cloud, no node monitoring): its part
# for the Deployment's pods, which the scheduler places.
for n in node1 node2; do kubectl taint nodes "$n" node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1; done
ca_ready() { [[ $(kubectl -n warren-system get deploy warren-ca -o 'jsonpath={.status.availableReplicas}' 2>/dev/null) == 2 ]]; }
if wait_for -t 180 ca_ready; then
	ok "warren-ca: 2 replicas available"
else
	not_ok "warren-ca not available within 180 s" "$(kubectl -n warren-system get deploy,pods -o wide 2>&1; kubectl get nodes -o 'jsonpath={range .items[*]}{.metadata.name} {.spec.taints}{"\n"}{end}'; kubectl -n warren-system describe pods -l app.kubernetes.io/name=warren-ca 2>&1 | tail -15; kubectl -n warren-system logs -l app.kubernetes.io/name=warren-ca --tail 20 2>&1)"
	exit 1
fi
ca_pods=$(kubectl -n warren-system get pods -l app.kubernetes.io/name=warren-ca -o \
	'jsonpath={range .items[*]}{.spec.containers[0].image} {.spec.containers[0].command[0]}{"\n"}{end}')
check "warren-ca runs from warren's image" test "$(sort -u <<<"$ca_pods")" = "localhost/warren:t1 /usr/local/bin/warren-ca"
# kube-proxy's part for warren-ca's Service: its address to the ready pods, in turn
read -r -a CA_IPS < <(kubectl -n warren-system get pods -l app.kubernetes.io/name=warren-ca -o 'jsonpath={.items[*].status.podIP}')
# (node2's map in the other order: each node's first connection, its tunnel's
# kept-alive one, goes to another replica, so that both sign)
for n in node1 node2; do
	map=
	for i in "${!CA_IPS[@]}"; do
		j=$i
		[[ $n == node2 ]] && j=$(((i + 1) % ${#CA_IPS[@]}))
		map+="${map:+, }$i : ${CA_IPS[$j]}"
	done
	ip netns exec "wk${n#node}-$ID" nft -f - <<EOF || die "$n: DNAT for warren-ca's Service"
table ip wi-kube-proxy-ca {
	chain out { type nat hook output priority -100; ip daddr $CA_VIP tcp dport 15012 dnat to numgen inc mod ${#CA_IPS[@]} map { $map }; }
}
EOF
done

ds_field() { kubectl -n warren-system get ds warren -o "jsonpath={.status.$1}" 2>/dev/null; }
ds_ready() { # every node has an updated, ready and available pod, and no other
	local want
	want=$(ds_field desiredNumberScheduled)
	[[ -n $want && $want -gt 0 && $(ds_field numberReady) == "$want" && $(ds_field updatedNumberScheduled) == "$want" &&
		$(ds_field numberAvailable) == "$want" &&
		$(kubectl -n warren-system get pods -l app.kubernetes.io/name=warren --no-headers 2>/dev/null | wc -l) == "$want" ]]
}
if wait_for -t 180 ds_ready; then
	ok "DaemonSet warren ready on both nodes"
else
	not_ok "DaemonSet not ready within 180 s" "$(kubectl -n warren-system get ds,pods -o wide 2>&1; kubectl -n warren-system describe pods 2>&1 | tail -30; kubectl -n warren-system logs -l app.kubernetes.io/name=warren --all-containers --tail 20 2>&1)"
	exit 1
fi
last_plugin() { "$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["plugins"][-1]["type"])' "$1"; }
for n in node1 node2; do
	check "$n: warren-cni is the last plugin of the node's chain" test "$(last_plugin "$K/$n/cni-conf/10-warren-kube.conflist")" = warren-cni
	check "$n: warren-cni is in the node's CNI bin dir and runs" \
		bash -c "CNI_COMMAND=VERSION '$K/$n/cni-bin/warren-cni' </dev/null | grep -q supportedVersions"
done

# --- an ambient namespace ------------------------------------------------------------
ns_up() { # NAME [LABEL=VALUE]: the controller-manager makes its ServiceAccount
	kubectl create namespace "$1" >/dev/null || return 1
	(($# > 1)) && { kubectl label namespace "$1" "$2" >/dev/null || return 1; }
	wait_for -t 30 kubectl -n "$1" get serviceaccount default
}
ns_up shop istio.io/dataplane-mode=ambient || die "namespace shop"
pod_yaml() { # NAME NODE
	cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: shop, labels: {app: $1}}
spec:
  nodeName: $2
  containers:
  - name: app
    image: localhost/warren-app:1
    imagePullPolicy: Never
EOF
}
{ pod_yaml server node2; echo ---; pod_yaml client node1; } | kubectl apply -f - >/dev/null || die "pods"
running() { [[ $(kubectl -n shop get pod "$1" -o 'jsonpath={.status.phase}') == Running ]]; }
annotated() { [[ $(kubectl -n shop get pod "$1" -o 'jsonpath={.metadata.annotations.ambient\.istio\.io/redirection}') == enabled ]]; }
for p in server client; do
	check "shop/$p: Running" wait_for -t 120 running "$p"
	check "shop/$p: enrolled (ambient.istio.io/redirection: enabled)" wait_for -t 30 annotated "$p"
done
SERVER_IP=$(kubectl -n shop get pod server -o 'jsonpath={.status.podIP}')
CLIENT_IP=$(kubectl -n shop get pod client -o 'jsonpath={.status.podIP}')
pod_netns() { # NODE IP: the pod's netns path on the node (its runtime's /var/run/netns)
	in_node "$1" sh -c 'for f in /var/run/netns/*; do nsenter --net="$f" ip -4 -o addr show | grep -q " $0/" && { echo "$f"; exit 0; }; done; exit 1' "$2"
}
CLIENT_NS=$(pod_netns node1 "$CLIENT_IP") || die "the client pod's netns on node1"
# the client's requests: curl run in its netns (the app image's busybox has no resolver-free wget)
fetch() { in_node node1 nsenter --net="$CLIENT_NS" curl -s --max-time 5 "http://$SERVER_IP:8080/cgi-bin/peer"; }
seen_by_server() { local out; out=$(fetch) && grep -q "^$CLIENT_IP " <<<"$out"; }
check "client -> server across nodes through the tunnels, the server sees the client's address" wait_for -t 30 seen_by_server
# HBONE, not plaintext: node2's tunnel counted the connection as mutual TLS (Istio's label)
mtls_in() { local m; m=$(ip netns exec "wk2-$ID" curl -s --max-time 3 http://127.0.0.1:15020/metrics) &&
	awk '/^istio_tcp_connections_opened_total\{/ && /reporter="destination"/ && /connection_security_policy="mutual_tls"/ {n++} END {exit !n}' <<<"$m"; }
check "node2's tunnel took it in over mTLS HBONE (istio_tcp_connections_opened_total, mutual_tls)" wait_for -t 10 mtls_in
tunnel_pod() { kubectl -n warren-system get pods -l app.kubernetes.io/name=warren --field-selector "spec.nodeName=$1" -o 'jsonpath={.items[0].metadata.name}'; }
wctl_on() { local n=$1; shift; kubectl -n warren-system exec "$(tunnel_pod "$n")" -c tunnel -- warrenctl --socket /var/run/warren/admin.sock "$@"; }
holds() { local out; out=$(wctl_on "$1" pods) && grep -q "$2" <<<"$out"; } # NODE POD
check "node1's tunnel holds shop/client (warrenctl in the DaemonSet pod)" holds node1 client

# --- certificates from warren-ca; no Secret on any node --------------------------------
csr_ok() { # NODE: the tunnel's warren_ca_csr_total{result="ok"} > 0
	ip netns exec "wk${1#node}-$ID" curl -s --max-time 3 http://127.0.0.1:15020/metrics |
		awk '/^warren_ca_csr_total\{/ && /result="ok"/ && $NF > 0 {n++} END {exit !n}'
}
has_cert() { local out; out=$(wctl_on "$1" certs) && grep -q "spiffe://cluster.local/ns/shop/sa/default" <<<"$out"; } # NODE
for n in node1 node2; do
	check "$n: the tunnel's certificates came from warren-ca (warren_ca_csr_total{result=\"ok\"})" wait_for -t 10 csr_ok "$n"
	check "$n: warrenctl certs lists shop's identity" has_cert "$n"
	pod=$(tunnel_pod "$n")
	vols=$(kubectl -n warren-system get pod "$pod" -o json | "$PYTHON" -c '
import json, sys
spec = json.load(sys.stdin)["spec"]
print(" ".join(v["name"] for v in spec["volumes"] if "secret" in v or
      any("secret" in s for s in v.get("projected", {}).get("sources", []))))')
	check "$n: the DaemonSet pod's spec has no Secret volume" test -z "$vols"
	# the mounts containerd gave each of the pod's containers, by their source on the node
	mounts=
	for cid in $(kubectl -n warren-system get pod "$pod" -o 'jsonpath={.status.containerStatuses[*].containerID}'); do
		mounts+=$(ctr_node "$n" containers info "${cid#containerd://}" |
			"$PYTHON" -c 'import json, sys; [print(m["source"], m["destination"]) for m in json.load(sys.stdin)["Spec"]["mounts"]]')$'\n'
	done
	diag "$n: the DaemonSet pod's mounts: $(grep -c . <<<"$mounts")"
	check "$n: no container of the DaemonSet pod mounts a Secret (the token is projected)" \
		bash -c 'grep -q "kubernetes.io~projected/warren-ca-token /var/run/secrets/warren-ca$" <<<"$1" &&
			! grep -q "kubernetes.io~secret" <<<"$1"' sh "$mounts"
	files=$(kubectl -n warren-system exec "$pod" -c tunnel -- bash -c 'shopt -s globstar; printf "%s\n" /etc/warren/** /var/run/secrets/**' 2>&1)
	check "$n: the tunnel container has its token and bundle, and no key file" \
		bash -c 'grep -qx /var/run/secrets/warren-ca/token <<<"$1" && grep -qx /etc/warren/bundle/roots.pem <<<"$1" &&
			! grep -q key <<<"$1"' sh "$files"
done

signed_by() { kubectl -n warren-system logs "$1" 2>/dev/null | grep -q "sign spiffe://.*: 200"; } # POD
for p in $(kubectl -n warren-system get pods -l app.kubernetes.io/name=warren-ca -o 'jsonpath={.items[*].metadata.name}'); do
	check "warren-ca pod $p signed certificates (either replica serves)" wait_for -t 10 signed_by "$p"
done

# --- another agent rewrites the configuration -----------------------------------------
D1=$K/node1/cni-conf
cp "$T/node1.orig.conflist" "$D1/.agent" && mv "$D1/.agent" "$D1/10-warren-kube.conflist"
t0=$(date +%s%N)
wait_for -t 5 bash -c "[[ \$('$PYTHON' -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"plugins\"][-1][\"type\"])' '$D1/10-warren-kube.conflist') == warren-cni ]]"
dt=$((($(date +%s%N) - t0) / 1000000))
if [[ $(last_plugin "$D1/10-warren-kube.conflist") == warren-cni ]] && ((dt < 1000)); then
	ok "node1: the network's agent rewrote the conflist without warren: back in $dt ms"
else
	not_ok "node1: warren not back within 1 s ($dt ms)"
fi

# --- rolling update while a client loops connections through HBONE --------------------
# Each failed connection is recorded (time, curl's exit code, HTTP code) in
# loop.fail, and every tunnel's log (old pods streamed before they go) is
# dumped into the test log when one fails.
rm -f "$T/loop.stop" "$T/loop.fail"
in_node node1 nsenter --net="$CLIENT_NS" sh -c 'n=0; f=0; while [ ! -e "$1/loop.stop" ]; do
	code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 5 "http://$2:8080/cgi-bin/peer"); rc=$?
	if [ "$rc" = 0 ] && [ "$code" = 200 ]; then n=$((n+1)); else f=$((f+1)); echo "$(date -u +%H:%M:%S.%N) curl=$rc http=$code" >>"$1/loop.fail"; fi
	echo "$n $f" >"$1/loop.count.tmp"; mv "$1/loop.count.tmp" "$1/loop.count"; done' sh "$T" "$SERVER_IP" >/dev/null 2>&1 &
LOOP=$!
BG_PIDS+=("$LOOP")
loop_count() { cat "$T/loop.count" 2>/dev/null; }
loop_ok() { local c; c=$(loop_count) && ((${c%% *} > $1)); }
wait_for -t 30 loop_ok 5 || not_ok "the client loop does not run" "$(loop_count)"
old_pods=$(kubectl -n warren-system get pods -l app.kubernetes.io/name=warren -o 'jsonpath={.items[*].metadata.name}')
for p in $old_pods; do # their logs, kept past their deletion
	kubectl -n warren-system logs -f --timestamps -c tunnel "$p" >"$T/tunnel-$p.log" 2>&1 &
	BG_PIDS+=($!)
done
diag "rollout starts at $(date -u +%H:%M:%S.%N)"
kubectl -n warren-system set image ds/warren tunnel=localhost/warren:t2 install=localhost/warren:t2 >/dev/null
rolled() {
	local p
	ds_ready || return 1
	for p in $old_pods; do kubectl -n warren-system get pod "$p" >/dev/null 2>&1 && return 1; done
	[[ $(kubectl -n warren-system get pods -l app.kubernetes.io/name=warren -o 'jsonpath={.items[*].spec.containers[0].image}') == "localhost/warren:t2 localhost/warren:t2" ]]
}
if wait_for -t 300 rolled; then ok "rolling update to localhost/warren:t2 done on both nodes (old pods gone)"
else not_ok "rolling update not done within 300 s" "$(kubectl -n warren-system get pods -o wide 2>&1)"; fi
before=$(loop_count)
wait_for -t 30 loop_ok $((${before%% *} + 5))
touch "$T/loop.stop"
wait_for -t 10 exited "$LOOP"
c=$(loop_count)
for p in $(kubectl -n warren-system get pods -l app.kubernetes.io/name=warren -o 'jsonpath={.items[*].metadata.name}'); do
	kubectl -n warren-system logs --timestamps -c tunnel "$p" >"$T/tunnel-$p.log" 2>&1
done
[[ -n ${KEEP_LOGS:-} ]] && mkdir -p "$KEEP_LOGS" && cp "$T"/tunnel-*.log "$T/loop.fail" "$KEEP_LOGS/" 2>/dev/null
if [[ -n $c ]] && (( ${c#* } == 0 && ${c%% *} > 20 )); then
	ok "a client looping connections through HBONE during the rollout: ${c%% *} succeeded, none failed"
else
	dump=$(cat "$T/loop.fail" 2>&1)
	for f in "$T"/tunnel-*.log; do
		# the tunnel's own lines, and the access log's lines of failed connections
		dump+=$'\n'"--- ${f##*/tunnel-}:"$'\n'$(grep -v '"reason":"closed"}' "$f" | tail -n 150)
	done
	not_ok "connections during the rollout: ${c:-none} (succeeded failed)" "$dump"
fi
for n in node1 node2; do
	check "$n: after the rollout warren-cni is still the chain's last plugin" test "$(last_plugin "$K/$n/cni-conf/10-warren-kube.conflist")" = warren-cni
done

# --- a waypoint for namespace shop (hack/waypoint.sh), its model live ------------------
t_wp=$SECONDS
# the Gateway API's CRDs, schemaless (the tunnels and the waypoint only read them)
for kp in Gateway:gateway HTTPRoute:httproute; do
	kubectl apply -f - >/dev/null <<EOF || die "CRD ${kp#*:}s"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ${kp#*:}s.gateway.networking.k8s.io
  annotations: {api-approved.kubernetes.io: "https://github.com/kubernetes-sigs/gateway-api/pull/1538"}
spec:
  group: gateway.networking.k8s.io
  scope: Namespaced
  names: {kind: ${kp%:*}, listKind: ${kp%:*}List, plural: ${kp#*:}s, singular: ${kp#*:}}
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]
EOF
done
wait_for -t 30 kubectl get gateways -A || die "the Gateway CRD is not served"
bash hack/waypoint.sh shop --image localhost/warren:t2 --kubectl "$K/kubectl" >"$T/waypoint.yaml" 2>"$T/waypoint.err" ||
	die "hack/waypoint.sh: $(cat "$T/waypoint.err")"
check "hack/waypoint.sh shop: Gateway, ServiceAccount, binding, bundle, Deployment, Service pass the API server's validation" \
	kubectl apply --dry-run=server -f "$T/waypoint.yaml"
kubectl apply -f "$T/waypoint.yaml" >/dev/null || die "kubectl apply the waypoint"
# No cluster DNS and no kube-proxy here: the waypoint pod gets warren-ca's
# name in its /etc/hosts (hostAliases, the one change to the rendered
# manifest) and each node DNATs warren-ca's Service for forwarded pod traffic.
kubectl -n shop patch deployment waypoint --type=json -p "[{\"op\": \"add\", \"path\": \"/spec/template/spec/hostAliases\",
	\"value\": [{\"ip\": \"$CA_VIP\", \"hostnames\": [\"warren-ca.warren-system.svc\"]}]}]" >/dev/null || die "hostAliases"
for n in node1 node2; do
	ip netns exec "wk${n#node}-$ID" nft -f - <<EOF || die "$n: DNAT for warren-ca's Service (pods)"
table ip wi-kube-proxy-ca-pods {
	chain pre { type nat hook prerouting priority -100; ip daddr $CA_VIP tcp dport 15012 dnat to numgen inc mod ${#CA_IPS[@]} map { $map }; }
}
EOF
done
wp_ready() { [[ $(kubectl -n shop get deploy waypoint -o 'jsonpath={.status.readyReplicas}' 2>/dev/null) == 1 &&
	$(kubectl -n shop get pods -l gateway.networking.k8s.io/gateway-name=waypoint --no-headers 2>/dev/null | wc -l) == 1 ]]; }
if wait_for -t 120 wp_ready; then
	ok "the waypoint Deployment is ready: a certificate from warren-ca and a model from the API server"
else
	not_ok "the waypoint is not ready within 120 s" "$(kubectl -n shop get pods -o wide 2>&1; kubectl -n shop describe pods -l gateway.networking.k8s.io/gateway-name=waypoint 2>&1 | tail -20; kubectl -n shop logs -l gateway.networking.k8s.io/gateway-name=waypoint --tail 30 2>&1)"
fi
WP_POD=$(kubectl -n shop get pods -l gateway.networking.k8s.io/gateway-name=waypoint -o 'jsonpath={.items[0].metadata.name}')
check "... from warren's image, as spiffe://cluster.local/ns/shop/sa/waypoint" bash -c \
	"'$K/kubectl' -n shop logs '$WP_POD' | grep -q 'waypoint shop/waypoint as spiffe://cluster.local/ns/shop/sa/waypoint'"
check "... its pod is not captured (no ambient.istio.io/redirection)" fails annotated "$WP_POD"
kubectl apply -f - >/dev/null <<EOF || die "Service shop/server"
apiVersion: v1
kind: Service
metadata: {name: server, namespace: shop}
spec:
  selector: {app: server}
  ports: [{name: http, port: 80, targetPort: 8080}]
EOF
SVC_VIP=$(kubectl -n shop get service server -o 'jsonpath={.spec.clusterIP}')
kubectl label namespace shop istio.io/use-waypoint=waypoint >/dev/null || die "label shop"
svc_get() { # PATH: the HTTP code of client -> Service server through the waypoint (body, head in $T)
	in_node node1 nsenter --net="$CLIENT_NS" curl -s -o "$T/svc.body" -D "$T/svc.head" -w '%{http_code}' --max-time 5 \
		"http://$SVC_VIP$1"
}
svc_is() { [[ $(svc_get "$2") == "$1" ]]; } # CODE PATH
check "client -> Service server $SVC_VIP:80 (namespace labelled istio.io/use-waypoint): 200 through the waypoint" \
	wait_for -t 60 svc_is 200 /cgi-bin/peer
check "... the waypoint logged the request (access log, reporter waypoint)" bash -c \
	"'$K/kubectl' -n shop logs '$WP_POD' | grep '\"reporter\":\"waypoint\"' | grep -q '\"path\":\"/cgi-bin/peer\"'"
kubectl apply -f - >/dev/null <<EOF || die "policy deny-peer"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-peer, namespace: shop}
spec:
  targetRefs: [{kind: Service, group: "", name: server}]
  action: DENY
  rules: [{to: [{operation: {paths: ["/cgi-bin/peer"]}}]}]
EOF
check "kubectl apply an AuthorizationPolicy DENY of /cgi-bin/peer: 403 from the waypoint, no restart" \
	wait_for -t 30 svc_is 403 /cgi-bin/peer
check "... with Istio's body, RBAC: access denied" grep -q 'RBAC: access denied' "$T/svc.body"
check "... another path still reaches the app (busybox httpd's 404)" svc_is 404 /nothing-here
kubectl -n shop delete authorizationpolicy deny-peer >/dev/null
check "the policy deleted: 200 again" wait_for -t 30 svc_is 200 /cgi-bin/peer
kubectl apply -f - >/dev/null <<EOF || die "HTTPRoute live"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: live, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: server, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /cgi-bin}}]
    backendRefs: [{name: server, port: 80}]
    filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-route, value: live}]}}]
EOF
routed_live() { [[ $(svc_get /cgi-bin/peer) == 200 ]] && grep -qi '^x-route: live' "$T/svc.head"; }
check "kubectl apply an HTTPRoute: its header modifier is on the next responses" wait_for -t 30 routed_live
unmatched() { svc_is 404 /elsewhere && grep -qx 'no route matched' "$T/svc.body"; }
check "... and a path no rule matches gets 404 from the waypoint (GAMMA)" unmatched
kubectl apply -f - >/dev/null <<EOF || die "HTTPRoute bad"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: server}]
  rules: [{filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /x}}}], backendRefs: [{name: server, port: 80}]}]
EOF
check "an HTTPRoute the model refuses (URLRewrite): the Service fails closed with 503" \
	wait_for -t 30 svc_is 503 /cgi-bin/peer
check "... the body says so, the waypoint's log names the route and field" bash -c \
	"grep -q 'route configuration refused' '$T/svc.body' &&
	 '$K/kubectl' -n shop logs '$WP_POD' | grep -q 'HTTPRoute shop/bad rejected: .*URLRewrite'"
check "... warrenctl waypoint in the waypoint pod lists it as refused" bash -c \
	"'$K/kubectl' -n shop exec '$WP_POD' -- warrenctl --socket /var/run/warren-waypoint/admin.sock waypoint | grep -q 'refused .*HTTPRoute shop/bad'"
kubectl -n shop delete httproute bad >/dev/null
check "the invalid route deleted: the live route serves again" wait_for -t 30 routed_live
kubectl label namespace shop istio.io/use-waypoint- >/dev/null
kubectl -n shop delete httproute live >/dev/null
kubectl -n shop delete service server >/dev/null
kubectl delete -f "$T/waypoint.yaml" --wait=false >/dev/null 2>&1
diag "the waypoint section took $((SECONDS - t_wp)) s"

# --- uninstall -------------------------------------------------------------------------
kubectl delete -f deploy/warren.yaml --wait=false >/dev/null 2>&1
gone_all() { [[ -z $(kubectl -n warren-system get pods -o name 2>/dev/null) ]] && ! kubectl get ns warren-system >/dev/null 2>&1; }
check "kubectl delete -f deploy/warren.yaml: pods and namespace gone" wait_for -t 180 gone_all
for n in node1 node2; do
	check "$n: the conflist is byte-identical to before install" cmp "$T/$n.orig.conflist" "$K/$n/cni-conf/10-warren-kube.conflist"
	check "$n: ... with its mode" test "$(stat -c %a "$K/$n/cni-conf/10-warren-kube.conflist")" = "$(cat "$T/$n.orig.mode")"
	check "$n: warren-cni removed from the CNI bin dir" test ! -e "$K/$n/cni-bin/warren-cni"
done
ns_up after || die "namespace after"
kubectl apply -f - >/dev/null <<EOF || die "pod after/fresh"
apiVersion: v1
kind: Pod
metadata: {name: fresh, namespace: after}
spec:
  nodeName: node1
  containers: [{name: app, image: localhost/warren-app:1, imagePullPolicy: Never}]
EOF
fresh_ip() { [[ -n $(kubectl -n after get pod fresh -o 'jsonpath={.status.podIP}') ]] && [[ $(kubectl -n after get pod fresh -o 'jsonpath={.status.phase}') == Running ]]; }
check "after uninstall a new pod starts and gets its network" wait_for -t 120 fresh_ip
((TAP_FAILED == 0))
