#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The tunnel's requests to warren-ca run beside its main loop, as root on
# the real kernel (TAP): a warren-ca that completes the TLS handshake and
# then never answers holds each request for its whole timeout, and
# meanwhile node1's tunnel answers its admin API, its readiness port and
# the plugin's ADD; the pod whose identity has no certificate fails closed.
#
#   node1 netns                          <== veth ==>  node2 netns
#     warren-tunnel (caAddress:                          warren-tunnel (caDir)
#       https://127.0.0.1:15012)                         pod mesh/srv (echo :8080)
#     silent "warren-ca" 127.0.0.1:15012
#       (TLS with a certificate from the mesh root, then nothing)
#     pod mesh/cli  -- HBONE? refused: no certificate --> srv
#     pod other/cli2 (added while requests hang)
#
# A request in flight is seen through the admin API (requestInFlight, the
# same failure count before and after): an answer the tunnel gave while
# that very request was hanging. Env: B or WARREN_BUILD, KEEP_TMP=1.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need jq openssl
need_built warren-cni warren-tunnel warrenctl

tunnel_conf_extra() { # NODE
	if [[ $1 == node1 ]]; then
		printf 'caAddress: https://127.0.0.1:15012\ntrustBundle: %s\ncaTokenFile: %s\n' \
			"$T/ca/root-cert.pem" "$T/token"
	else
		echo "caDir: $T/ca"
	fi
	echo "accessLog: $T/$1/access.log"
}
echo token >"$T/token"

mtls_cluster_up
mesh ns other istio.io/dataplane-mode=ambient

# --- a warren-ca that never answers ------------------------------------------------------------
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
	-keyout "$T/silent-key.pem" -out "$T/silent.csr" 2>/dev/null &&
	openssl x509 -req -in "$T/silent.csr" -CA "$T/ca/root-cert.pem" -CAkey "$T/ca/root-key.pem" \
		-CAcreateserial -days 1 -extfile <(echo "subjectAltName=IP:127.0.0.1") \
		-out "$T/silent-cert.pem" 2>/dev/null || die "the silent server's certificate"
bg nexec node1 "$PYTHON" -c '
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 15012))
s.listen(16)
held = []
while True:
    c, _ = s.accept()
    c.settimeout(5)
    try:
        held.append(ctx.wrap_socket(c, server_side=True))
    except (OSError, ssl.SSLError):
        c.close()
        continue
    with open(sys.argv[3], "a") as f:
        f.write("held\n")
' "$T/silent-cert.pem" "$T/silent-key.pem" "$T/silent.log"
wait_listen "${NODE_NETNS[node1]}" 15012 || die "the silent warren-ca"

pod_add node2 mesh srv 2>"$T/err" || die "ADD srv: $(cat "$T/err")"
app_server srv 8080 || die "echo server in srv"
pod_add node1 mesh cli 2>"$T/err" || die "ADD cli: $(cat "$T/err")"

# "IN_FLIGHT FAILURES" of node1's identity ID, from its admin API
cert_state() { # ID
	wctl node1 -o json certs 2>/dev/null |
		jq -r --arg id "$1" '.[] | select(.identity == $id) | "\(.requestInFlight) \(.failures)"'
}
CLI_ID=spiffe://cluster.local/ns/mesh/sa/default
# CMD runs and succeeds while one same request for CLI_ID hangs: in flight
# before and after, with no failure counted in between.
during_request() { # CMD...
	local before after
	before=$(cert_state "$CLI_ID")
	[[ $before == "true "* ]] || return 1
	"$@" || return 1
	after=$(cert_state "$CLI_ID")
	[[ $after == "$before" ]]
}
held_once() { [[ -s $T/silent.log ]]; }
check "node1's tunnel reached the silent warren-ca (TLS done, no answer)" wait_for -t 10 held_once
no_cert() { [[ $(wctl node1 -o json certs | jq -r --arg id "$CLI_ID" '.[] | select(.identity == $id) | .notAfterUnix') == 0 ]]; }
check "the admin API answers while the request hangs: cli's identity requestInFlight, no certificate" \
	wait_for -t 20 during_request no_cert
ready_code() { nexec node1 curl -s -o /dev/null -w '%{http_code}' --max-time 1 http://127.0.0.1:15021/healthz/ready; }
check "the readiness port answers while the request hangs" \
	wait_for -t 20 during_request eval '[[ $(ready_code) == [0-9][0-9][0-9] ]]'
query_cli() { "$WARREN_BUILD/tests/handoffctl" "$T/node1/plugin.sock" query mesh cli "${POD_UID[cli]}" >/dev/null; }
check "the plugin socket answers a query while the request hangs" wait_for -t 20 during_request query_cli
pod_define node1 other cli2 || die "pod cli2"
pod_cni_add cli2 2>"$T/err" && ok "meanwhile the plugin's ADD of a pod of another identity completes" ||
	not_ok "the plugin's ADD of cli2 while warren-ca hangs" "$(cat "$T/err")"
check "... and cli2's identity is queued behind it (in flight, no certificate)" \
	eval '[[ $(cert_state spiffe://cluster.local/ns/other/sa/default) == "true 0" ]]'

# --- fail closed meanwhile ---------------------------------------------------------------------
echoes() { app_client "$1" "$2" 8080 "ca-$RANDOM" --timeout 3 >/dev/null 2>&1; }
check "cli (no certificate yet) -> srv over HBONE is refused" fails echoes cli "${POD_IP[srv]}"
check "... with the reason in node1's access log" \
	grep -q "identity $CLI_ID has no certificate yet" "$T/node1/access.log"
timed_out() { [[ $(cert_state "$CLI_ID") == *" "[1-9]* ]] &&
	wctl node1 -o json certs | jq -e --arg id "$CLI_ID" '.[] | select(.identity == $id) | .error | test("unreachable")' >/dev/null; }
check "a request that timed out is counted, its reason kept, and retried" wait_for -t 20 timed_out
check "node1's log says the identity has no certificate yet and why" \
	grep -q "identity $CLI_ID: no certificate yet (warren-ca https://127.0.0.1:15012 unreachable" "$T/node1/tunnel.log"
metric() { nexec node1 curl -s --max-time 1 http://127.0.0.1:15020/metrics | grep -q 'warren_ca_csr_total{result="unavailable"} [1-9]'; }
check "metrics: unavailable CSRs counted" metric

# --- the tunnel stops promptly with a request hanging ------------------------------------------
wait_for -t 20 during_request true || not_ok "a request in flight before SIGTERM"
t0=$(date +%s%N)
tunnel_stop node1 TERM
ms=$((($(date +%s%N) - t0) / 1000000))
((ms < 5000)) && ok "SIGTERM with a request hanging: the tunnel exited in $ms ms" ||
	not_ok "the tunnel exits with a request hanging" "$ms ms"
tunnel_stop node2
sanitizer_clean node1 node2
echo "# $TAP_COUNT checks, $TAP_FAILED failed"
