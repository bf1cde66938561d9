#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Tunnels that take their certificates from warren-ca (caAddress), on a real
# control plane and two real nodes; warren-ca's node authorization through
# the API server's TokenReview. No node holds the signing key.
#
#   netns wkc-ID: etcd, kube-apiserver 10.100.0.1:6443, warren-ca 10.100.0.1:15012
#      |-- netns wk1-ID node1 10.100.0.11          |-- netns wk2-ID node2 10.100.0.12
#          warren-tunnel (token of pod                  warren-tunnel (token of pod
#            warren-system/tunnel-node1)                  warren-system/tunnel-node2)
#          pod mesh/cli  ------------- HBONE :15008 ----> pod mesh/srv
#          pod late/late (created while warren-ca is down: a new identity)
#
# The tunnel takes a pod's identity from its object, so the mesh file gets
# the new pods' objects right after kubectl apply, as a watch would (an ADD
# before that waits, then fails with CNI error 11 and the kubelet retries).
# Each tunnel runs as a host process with the projected token of a pod of
# service account warren-system/warren bound to its node (what the
# DaemonSet's projected volume holds), caAddress, trustBundle (a copy of
# the root, as the ConfigMap holds it) and no caDir. Then warren-ca is
# stopped and started again, and the root is rotated under traffic.
set -uo pipefail
source "$(dirname "$0")/../netns/lib.sh"

lib_init
CLEANUP_TAP=1
need conntrack
need_built warren-cni warren-tunnel warrenctl warren-ca
kube_need_bins

CA_PID=
ca_stop() { [[ -n $CA_PID ]] && kill "$CA_PID" 2>/dev/null && wait "$CA_PID" 2>/dev/null; CA_PID=; }
kube_cleanup() {
	local rc=$?
	ca_stop
	kube_down || { not_ok "kube-down: everything removed" "$(cat "$T/kube-down.log")"; rc=1; }
	(exit $rc)
	cleanup
}
trap kube_cleanup EXIT

t0=$SECONDS
kube_up 2 KUBE_CNI_WARREN=1 WARREN_BUILD="$WARREN_BUILD"
ok "kube-up: control plane and two nodes Ready in $((SECONDS - t0)) s"

kube_ns mesh istio.io/dataplane-mode=ambient || die "namespace mesh"
kube_ns late istio.io/dataplane-mode=ambient || die "namespace late"
kube_ns warren-system || die "namespace warren-system"
kubectl create serviceaccount warren -n warren-system >/dev/null || die "sa warren"
kubectl apply -f "$WARREN_ROOT/deploy/ca/rbac.yaml" >/dev/null || die "deploy/ca/rbac.yaml"
mesh_sync() { # the mesh file from the API server; wait for every tunnel to load it
	local node gens=() g
	for node in "${!TUNNEL_PID[@]}"; do gens+=("$node=$(mesh_generation "$node")"); done
	kubectl get namespaces,pods,services -A -o json | "$PYTHON" "$WARREN_ROOT/tests/kube/kube-mesh.py" "$T/mesh.yaml" ||
		return 1
	for g in "${gens[@]}"; do
		[[ -n ${g#*=} ]] || continue
		wait_for -t 10 mesh_newer "${g%%=*}" "${g#*=}" || { echo "${g%%=*} did not load the mesh file" >&2; return 1; }
	done
}
pod_yaml() { # NS NAME NODE SA
	cat <<YAML
apiVersion: v1
kind: Pod
metadata: {namespace: $1, name: $2, labels: {app: $2}}
spec:
  nodeName: $3
  serviceAccountName: $4
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/warren-app:1
    imagePullPolicy: Never
    ports: [{containerPort: 8080, name: http}]
YAML
}
pod_ready() { # NS NAME
	kubectl wait -n "$1" --for=condition=Ready "pod/$2" --timeout=120s >/dev/null 2>&1
}
pod_netns() { # NAME: POD_IP, POD_NETNS from the pod's process
	local node=${POD_NODE[$1]} cgv pid uid
	uid=$(kubectl get pod -n "${POD_NS[$1]}" "$1" -o 'jsonpath={.metadata.uid}')
	POD_IP[$1]=$(kubectl get pod -n "${POD_NS[$1]}" "$1" -o 'jsonpath={.status.podIP}')
	cgv=KUBE_CGROUP_$node
	pid=$(find /sys/fs/cgroup/pids"${!cgv}"/kubepods -path "*pod$uid*" -name cgroup.procs -exec cat {} + 2>/dev/null | head -n 1)
	POD_NETNS[$1]=wp-$E2E_ID-$1
	[[ -n $pid ]] && ip netns attach "${POD_NETNS[$1]}" "$pid"
}

# --- warren-ca in the control plane's netns, its own token; the bundle ----------
bash "$WARREN_ROOT/hack/gen-ca.sh" "$T/ca" >/dev/null 2>&1 || die "gen-ca.sh"
cp "$T/ca/root-cert.pem" "$T/bundle.pem"
kube_ca_kubeconfig || die "warren-ca token"
# Certificates of 120 s: renewed every 30 s, so that renewal during the outage
# and the root rotation happen within the test.
ca_start() { # [CA_DIR]; ip netns exec execs warren-ca: $! is warren-ca itself
	ip netns exec "$KUBE_CP_NETNS" "$WARREN_BUILD/warren-ca" --ca-dir "${1:-$T/ca}" --kubeconfig "$T/ca-kubeconfig" \
		--listen 10.100.0.1:15012 --dns 10.100.0.1 --namespace warren-system --cert-lifetime 120 >>"$T/ca.log" 2>&1 &
	CA_PID=$!
}
ca_healthy() { [[ $(cpexec curl -s --cacert "$T/bundle.pem" https://10.100.0.1:15012/healthz) == *ok* ]]; }
ca_start
wait_for -t 10 ca_healthy || die "warren-ca not serving: $(tail -n 5 "$T/ca.log")"
ok "warren-ca serving on 10.100.0.1:15012"

mesh_sync || die "mesh file"
tunnel_conf_extra() { # NODE
	printf 'caAddress: https://10.100.0.1:15012\ntrustBundle: %s\ncaTokenFile: %s\n' "$T/bundle.pem" "$T/token-$1"
}
tunnel_start node1 2>/dev/null || die "warren-tunnel on node1 not ready (see $T/node1/tunnel.out)"
tunnel_start node2 2>/dev/null || die "warren-tunnel on node2 not ready (see $T/node2/tunnel.out)"
check "no tunnel has a signing key: caAddress and trustBundle, no caDir" bash -c \
	"! grep -q caDir '$T/node1/tunnel.yaml' '$T/node2/tunnel.yaml' && grep -q 'mTLS mode: certificates from warren-ca https://10.100.0.1:15012' '$T/node1/tunnel.out'"

# --- the tunnels' own pods (service account warren), their tokens (warren-cni
# --- needs the tunnels up before any pod; the tunnels read the token at each CSR)
for node in node1 node2; do
	pod_yaml warren-system "tunnel-$node" "$node" warren | kubectl apply -f - >/dev/null || die "pod tunnel-$node"
done
for node in node1 node2; do
	pod_ready warren-system "tunnel-$node" || die "pod tunnel-$node not Ready"
	kubectl create token warren -n warren-system --audience warren-ca --bound-object-kind Pod \
		--bound-object-name "tunnel-$node" --duration 1h >"$T/token-$node" || die "token for tunnel-$node"
done


# --- pods with certificates from warren-ca --------------------------------------------
for p in "srv node2 default" "cli node1 default"; do
	read -r name node sa <<<"$p"
	pod_yaml mesh "$name" "$node" "$sa" | kubectl apply -f - >/dev/null || die "pod $name"
	POD_NS[$name]=mesh POD_NODE[$name]=$node
done
mesh_sync || not_ok "mesh file with the pods' objects"
for name in srv cli; do
	pod_ready mesh "$name" || die "pod $name not Ready"
	pod_netns "$name" || die "netns of $name"
done
mesh_sync || not_ok "mesh file with the pods"
issued() { grep -q "identity spiffe://cluster.local/ns/mesh/sa/default: issued certificate" "$T/$1/tunnel.out"; }
check "node1's tunnel got spiffe://cluster.local/ns/mesh/sa/default from warren-ca" wait_for -t 10 issued node1
check "node2's tunnel got spiffe://cluster.local/ns/mesh/sa/default from warren-ca" wait_for -t 10 issued node2
check "warren-ca logged both signatures with each caller's node" bash -c \
	"grep -q 'sign spiffe://cluster.local/ns/mesh/sa/default for node node1 pod tunnel-node1 .*: 200' '$T/ca.log' &&
	 grep -q 'sign spiffe://cluster.local/ns/mesh/sa/default for node node2 pod tunnel-node2 .*: 200' '$T/ca.log'"
get() { pexec "$1" curl -s --max-time 5 "http://$2:8080/cgi-bin/peer"; }
reply=$(get cli "${POD_IP[srv]}")
[[ $reply == "${POD_IP[cli]} srv" ]] && ok "cli -> srv over HBONE with warren-ca's certificates" ||
	not_ok "cli -> srv over HBONE" "reply: '$reply'; $(tail -n 5 "$T/node1/tunnel.out")"
check "metrics: ok CSRs counted and the certificate's expiry on node1" bash -c \
	"m=\$(ip netns exec ${NODE_NETNS[node1]} curl -s http://127.0.0.1:15020/metrics)
	 grep -q 'warren_ca_csr_total{result=\"ok\"} [1-9]' <<<\"\$m\" &&
	 grep -q 'warren_ca_csr_duration_microseconds_total{result=\"ok\"} [1-9]' <<<\"\$m\" &&
	 grep -q 'warren_certificate_expiry_seconds{identity=\"spiffe://cluster.local/ns/mesh/sa/default\"}' <<<\"\$m\""

# A connection held open across the outage: an echo server in srv's netns
# (a process of the test beside the pod's httpd, whose connections do not
# stay open) and one connection from cli that echoes a line at a time.
bg pexec srv "$PYTHON" "$APP" server 9090 "$T/srv9090.log"
wait_listen "${POD_NETNS[srv]}" 9090 || die "echo server in srv's netns"
bg pexec cli "$PYTHON" "$APP" chat "${POD_IP[srv]}" 9090 "$T/held.status" "$T/held.stop"
HELD_PID=${BG_PIDS[-1]}
wait_for -t 10 progressed held 5 || not_ok "a held connection cli -> srv:9090 echoes" "$(cat "$T/held.status" 2>&1)"

# --- warren-ca down ----------------------------------------------------------------------
ca_stop
check "warren-ca stopped" fails ca_healthy
reply=$(get cli "${POD_IP[srv]}")
[[ $reply == "${POD_IP[cli]} srv" ]] && ok "warren-ca down: a new connection cli -> srv works (certificates held)" ||
	not_ok "warren-ca down: cli -> srv still works" "reply: '$reply'"$'\n'"$(tail -n 5 "$T/node1/tunnel.out")"

pod_yaml late late node1 default | kubectl apply -f - >/dev/null || die "pod late"
POD_NS[late]=late POD_NODE[late]=node1
mesh_sync || not_ok "mesh file with late's object"
pod_ready late late || die "pod late not Ready"
pod_netns late || die "netns of late"
mesh_sync || not_ok "mesh file with late"
pending() { grep -q "identity spiffe://cluster.local/ns/late/sa/default: no certificate yet (warren-ca https://10.100.0.1:15012 unreachable" "$T/node1/tunnel.out"; }
check "node1's tunnel logs late's identity as pending: warren-ca unreachable" wait_for -t 10 pending
reply=$(get late "${POD_IP[srv]}")
if [[ -z $reply ]]; then
	ok "late (no certificate yet) -> srv fails closed"
else
	not_ok "late -> srv fails closed" "reply: '$reply'"
fi
check "the refusal and its reason are in the access log" \
	grep -q "identity spiffe://cluster.local/ns/late/sa/default has no certificate yet" "$T/node1/tunnel.out"
check "metrics: a CSR counted unavailable" bash -c \
	"ip netns exec ${NODE_NETNS[node1]} curl -s http://127.0.0.1:15020/metrics | grep -q 'warren_ca_csr_total{result=\"unavailable\"} [1-9]'"
mark=$(status_ok held)
if wait_for -t 10 progressed held $((mark + 5)) && [[ $(status_fail held) == 0 ]]; then
	ok "warren-ca down: the connection opened before it stopped keeps echoing ($(status_ok held) lines, none failed)"
else
	not_ok "warren-ca down: the held connection keeps echoing" "$(cat "$T/held.status" 2>&1)"
fi
stop_traffic held "$HELD_PID"

# --- warren-ca back: late works without being re-created --------------------------------
ca_start
wait_for -t 10 ca_healthy || not_ok "warren-ca back" "$(tail -n 5 "$T/ca.log")"
late_works() { [[ $(get late "${POD_IP[srv]}") == "${POD_IP[late]} srv" ]]; }
t0=$SECONDS
if wait_for -t 60 late_works; then
	ok "warren-ca back: late -> srv works after $((SECONDS - t0)) s, the pod not re-created"
else
	not_ok "warren-ca back: late -> srv works" "$(grep late "$T/node1/tunnel.out" | tail -n 5)"
fi
check "node1's tunnel logs the certificate issued after the failed attempts" \
	grep -q "identity spiffe://cluster.local/ns/late/sa/default: issued certificate serial .* after [0-9]* failed attempts" "$T/node1/tunnel.out"

# --- root rotation: a second root in the bundle, certificates from it, the first
# --- root removed; connections flow all along ------------------------------------------
bash "$WARREN_ROOT/hack/gen-ca.sh" "$T/ca2" >/dev/null 2>&1 || die "gen-ca.sh (second root)"
bundle() { cat "$@" >"$T/bundle.new" && mv "$T/bundle.new" "$T/bundle.pem"; } # atomic, as a ConfigMap update
signed() { grep -c ": 200 in" "$T/ca.log"; }
# every identity (node1: mesh, late; node2: mesh) signed again after log line MARK
all_renewed() { # MARK
	local new
	new=$(tail -n +"$(($1 + 1))" "$T/ca.log")
	grep -q "sign spiffe://cluster.local/ns/mesh/sa/default for node node1 .*: 200" <<<"$new" &&
		grep -q "sign spiffe://cluster.local/ns/late/sa/default for node node1 .*: 200" <<<"$new" &&
		grep -q "sign spiffe://cluster.local/ns/mesh/sa/default for node node2 .*: 200" <<<"$new"
}
: >"$T/rot.ok"; : >"$T/rot.fail"
rot_traffic() { # paced requests cli -> srv and late -> srv until $T/rot.stop
	while [[ ! -e $T/rot.stop ]]; do
		for c in cli late; do
			if [[ $(get "$c" "${POD_IP[srv]}") == "${POD_IP[$c]} srv" ]]; then echo >>"$T/rot.ok"
			else date +%T.%N >>"$T/rot.fail"; fi
		done
		sleep 0.2
	done
}
rot_traffic &
rot_pid=$!
bundle "$T/ca/root-cert.pem" "$T/ca2/root-cert.pem"
mark=$(wc -l <"$T/ca.log")
check "rotation 1/3: both roots in the bundle, every identity renewed (contexts trust both)" wait_for -t 60 all_renewed "$mark"
ca_stop
mark=$(wc -l <"$T/ca.log")
ca_start "$T/ca2"
check "rotation 2/3: warren-ca signs with the second root, every identity renewed from it" wait_for -t 60 all_renewed "$mark"
bundle "$T/ca2/root-cert.pem"
mark=$(wc -l <"$T/ca.log")
check "rotation 3/3: the first root removed, every identity renewed (contexts trust the second only)" wait_for -t 60 all_renewed "$mark"
reply=$(get cli "${POD_IP[srv]}")
[[ $reply == "${POD_IP[cli]} srv" ]] && ok "after the rotation cli -> srv works with the second root alone" ||
	not_ok "after the rotation cli -> srv works" "reply: '$reply'"
touch "$T/rot.stop"
wait "$rot_pid"
nok=$(wc -l <"$T/rot.ok") nfail=$(wc -l <"$T/rot.fail")
((nfail == 0 && nok > 100)) && ok "no failed connection during the rotation ($nok requests)" ||
	not_ok "no failed connection during the rotation" "$nok ok, $nfail failed at: $(head -c 300 "$T/rot.fail")"
# --- a tunnel asking for an identity with no pod on its node -------------------------------
# node1's model says a pod there runs as mesh/ghost (a node lying, or a stale
# model); the API server has no such pod: warren-ca refuses, and the tunnel
# logs its reason and keeps the pod failing closed.
HCTL=$WARREN_BUILD/tests/handoffctl INPODCTL=$WARREN_BUILD/tests/inpodctl sock=$T/node1/plugin.sock
uid=$(mesh pod mesh liar --node node1 --sa ghost) || die "liar's object in the mesh file"
mkpod "wp-$E2E_ID-liar" || die "netns of liar"
enroll "wp-$E2E_ID-liar" "$uid" mesh liar "c${E2E_ID}liar" 2>"$T/err" || not_ok "ADD liar" "$(cat "$T/err")"
ghost_refused() {
	grep -q "identity spiffe://cluster.local/ns/mesh/sa/ghost: no certificate yet (warren-ca refused spiffe://cluster.local/ns/mesh/sa/ghost: 403 no running pod with service account mesh/ghost on node node1" "$T/node1/tunnel.out"
}
check "node1's tunnel asking for mesh/ghost (no such pod on node1) is refused and logs warren-ca's reason" \
	wait_for -t 10 ghost_refused
check "... and warren-ca logged the refusal" \
	grep -q "sign spiffe://cluster.local/ns/mesh/sa/ghost for node node1 pod tunnel-node1 .*: 403 no running pod" "$T/ca.log"
check "metrics: the refusal counted" bash -c \
	"ip netns exec ${NODE_NETNS[node1]} curl -s http://127.0.0.1:15020/metrics | grep -q 'warren_ca_csr_total{result=\"refused\"} [1-9]'"

sanitizer_clean node1 node2
[[ $TAP_FAILED == 0 ]]
