#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The tunnel as a client of Istio's certificate service (caProtocol: istio),
# as root on the real kernel (TAP), against an independent server:
# tests/tools/istioca, istio.io/api's generated Go code on google.golang.org/grpc
# (gRPC over TLS and HTTP/2), signing with the test CA.
#
#   node1 netns                          <== veth ==>  node2 netns
#     istioca 10.0.0.1:15012 (gRPC, TLS)  <------ CreateCertificate ---  warren-tunnel
#     warren-tunnel (caProtocol: istio) ---/                              pod mesh/srv (echo :8080)
#     pod mesh/cli  ---------------- HBONE, certificates from istioca --> srv
#     pod other/cli2: an identity istioca refuses (PermissionDenied)
#     pod third/cli3: asked with a token istioca does not accept (Unauthenticated)
#
# Env: B or WARREN_BUILD, KEEP_TMP=1. Needs go (the module proxy the first
# time; the server is built once into $WARREN_BUILD/tests/istioca).
set -uo pipefail
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need jq openssl go
need_built warren-cni warren-tunnel warrenctl

SRC=$WARREN_ROOT/tests/tools/istioca
ISTIOCA=$WARREN_BUILD/tests/istioca
if [[ ! -x $ISTIOCA || $SRC/main.go -nt $ISTIOCA || $SRC/go.sum -nt $ISTIOCA ]]; then
	(cd "$SRC" && go build -o "$ISTIOCA" .) >"$T/gobuild.log" 2>&1 ||
		die "tests/tools/istioca builds: $(tail -n 5 "$T/gobuild.log")"
fi

tunnel_conf_extra() { # NODE
	printf 'caAddress: https://10.0.0.1:15012\ncaProtocol: istio\ntrustBundle: %s\ncaTokenFile: %s\n' \
		"$T/ca/root-cert.pem" "$T/token"
	echo "certLifetimeSeconds: 3600"
	echo "accessLog: $T/$1/access.log"
}
echo node-agent-token >"$T/token"
echo node-agent-token >"$T/accepted-token"

mtls_cluster_up
mesh ns other istio.io/dataplane-mode=ambient
mesh ns third istio.io/dataplane-mode=ambient

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=istioca \
	-keyout "$T/istioca-key.pem" -out "$T/istioca.csr" 2>/dev/null &&
	openssl x509 -req -in "$T/istioca.csr" -CA "$T/ca/root-cert.pem" -CAkey "$T/ca/root-key.pem" \
		-CAcreateserial -days 1 -extfile <(echo "subjectAltName=IP:10.0.0.1") \
		-out "$T/istioca-cert.pem" 2>/dev/null || die "istioca's server certificate"
bg nexec node1 "$ISTIOCA" -listen 10.0.0.1:15012 -cert "$T/istioca-cert.pem" -key "$T/istioca-key.pem" \
	-ca-cert "$T/ca/root-cert.pem" -ca-key "$T/ca/root-key.pem" -token "$T/accepted-token" \
	-allow spiffe://cluster.local/ns/mesh/sa/default,spiffe://cluster.local/ns/third/sa/default \
	>"$T/istioca.log" 2>&1
wait_listen "${NODE_NETNS[node1]}" 15012 || die "istioca: $(cat "$T/istioca.log")"

# notAfterUnix of NODE's certificate for ID (0 while it has none)
not_after() { # NODE ID
	wctl "$1" -o json certs 2>/dev/null | jq -r --arg id "$2" '.[] | select(.identity == $id) | .notAfterUnix'
}
has_cert() { local n; n=$(not_after "$1" "$2"); [[ -n $n && $n != 0 ]]; }
MESH_ID=spiffe://cluster.local/ns/mesh/sa/default

pod_add node2 mesh srv 2>"$T/err" || die "ADD srv: $(cat "$T/err")"
app_server srv 8080 || die "echo server in srv"
pod_add node1 mesh cli 2>"$T/err" || die "ADD cli: $(cat "$T/err")"
check "node1's tunnel got $MESH_ID from istioca" wait_for -t 10 has_cert node1 "$MESH_ID"
check "node2's tunnel got $MESH_ID from istioca" wait_for -t 10 has_cert node2 "$MESH_ID"
check "istioca signed both, for the validity the tunnels asked (certLifetimeSeconds 3600)" \
	eval '(($(grep -c "^signed $MESH_ID for 1h0m0s" "$T/istioca.log") >= 2))'
left=$(($(not_after node1 "$MESH_ID") - $(date +%s)))
((left > 3400 && left <= 3600)) && ok "the certificate lives what was asked ($left s left)" ||
	not_ok "the certificate lives 3600 s" "$left s left"

echoes() { app_client "$1" "$2" 8080 "istio-$RANDOM" --timeout 3 >/dev/null 2>&1; }
check "cli -> srv over HBONE with istioca's certificates" echoes cli "${POD_IP[srv]}"
inbound_id() { # the source identity node2 logged for cli -> srv:8080
	jq -r --arg d "${POD_IP[srv]}:8080" 'select(.direction == "inbound" and .["dst.addr"] == $d) | .["src.identity"]' \
		"$T/node2/access.log" 2>/dev/null | tail -n 1
}
check "node2 saw cli's identity $MESH_ID over mTLS" wait_for -t 5 eval '[[ $(inbound_id) == "$MESH_ID" ]]'

# --- refusals: the reason in the tunnel's log, the pods fail closed --------------------------
pod_add node1 other cli2 2>"$T/err" || die "ADD cli2: $(cat "$T/err")"
denied() { grep -q "identity spiffe://cluster.local/ns/other/sa/default: no certificate yet (Istio's CA refused spiffe://cluster.local/ns/other/sa/default: HTTP 200, gRPC status 7 node is not authorized" "$T/node1/tunnel.log"; }
check "an identity istioca will not issue: PermissionDenied, logged with its message" wait_for -t 10 denied
check "... cli2 -> srv fails closed" fails echoes cli2 "${POD_IP[srv]}"
echo another-token >"$T/token"
pod_add node1 third cli3 2>"$T/err" || die "ADD cli3: $(cat "$T/err")"
unauth() { grep -q "identity spiffe://cluster.local/ns/third/sa/default: no certificate yet (Istio's CA refused .*gRPC status 16 authenticate: no valid bearer token" "$T/node1/tunnel.log"; }
check "a token istioca does not accept: Unauthenticated, logged" wait_for -t 10 unauth
echo node-agent-token >"$T/token"
check "with the token back, cli3's identity is issued at the next retry" \
	wait_for -t 15 has_cert node1 spiffe://cluster.local/ns/third/sa/default
check "metrics: refused and ok CSRs counted" bash -c \
	"m=\$(ip netns exec ${NODE_NETNS[node1]} curl -s http://127.0.0.1:15020/metrics) &&
	 grep -q 'warren_ca_csr_total{result=\"refused\"} [1-9]' <<<\"\$m\" && grep -q 'warren_ca_csr_total{result=\"ok\"} [1-9]' <<<\"\$m\""

tunnel_stop node1
tunnel_stop node2
sanitizer_clean node1 node2
echo "# $TAP_COUNT checks, $TAP_FAILED failed"
