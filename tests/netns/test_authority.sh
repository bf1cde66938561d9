#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What a tunnel answers to an HBONE CONNECT whose :authority is not one of
# its pod's app ports: 400 for another pod's IP, 127.0.0.1, a tunnel port
# and a hostname; 200 for the pod's own IP and app port. As root on the
# real kernel (TAP).
#
#   node2 netns
#     cni0 10.244.2.1/24
#      |-- srv  (ns mesh, enrolled, echo :8080)
#      |-- srv2 (ns mesh, enrolled, echo :8080)
#     warren-tunnel caDir=$T/ca
#   hboneconnect (tests/tools), run in node2's netns: a mesh certificate
#   (ns mesh, sa cli) from the same CA, real TLS 1.3 to srv:15008
#
# Env: B or WARREN_BUILD, KEEP_TMP=1.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need_built warren-cni warren-tunnel warrenctl tests/hboneconnect

tunnel_conf_extra() { echo "caDir: $T/ca"; }

mtls_cluster_up
pod_add node2 mesh srv --label app=srv 2>"$T/err" || die "ADD srv: $(cat "$T/err")"
pod_add node2 mesh srv2 --label app=srv2 2>"$T/err" || die "ADD srv2: $(cat "$T/err")"
for p in srv srv2; do app_server "$p" 8080 || die "echo server in $p"; done
SRV_ID=spiffe://cluster.local/ns/mesh/sa/default

connect_status() { # AUTHORITY: the status srv's tunnel answers
	nexec node2 "$WARREN_BUILD/tests/hboneconnect" "$T/ca" mesh cli "${POD_IP[srv]}" 15008 "$1" "$SRV_ID" |
		awk '{print $1}'
}
answers() { # AUTHORITY STATUS
	local got
	got=$(connect_status "$1")
	[[ $got == "$2" ]] || { echo "CONNECT $1: $got, expected $2"; return 1; }
}

check "CONNECT ${POD_IP[srv]}:8080 (srv's own address and app port): 200" answers "${POD_IP[srv]}:8080" 200
check "CONNECT ${POD_IP[srv2]}:8080 (another pod's IP) on srv's 15008: 400" answers "${POD_IP[srv2]}:8080" 400
check "CONNECT 127.0.0.1:8080: 400" answers 127.0.0.1:8080 400
check "CONNECT ${POD_IP[srv]}:15008 (a tunnel port): 400" answers "${POD_IP[srv]}:15008" 400
check "CONNECT ${POD_IP[srv]}:15001 (a tunnel port): 400" answers "${POD_IP[srv]}:15001" 400
check "CONNECT ${POD_IP[srv]}:15006 (a tunnel port): 400" answers "${POD_IP[srv]}:15006" 400
check "CONNECT srv.mesh.svc.cluster.local:8080 (a hostname): 400" answers srv.mesh.svc.cluster.local:8080 400
grep -F ":authority ${POD_IP[srv2]}:8080 is not this pod's address" "$T/node2/tunnel.log" >/dev/null &&
	grep -F "is a hostname; only <pod IP>:<port> is served here" "$T/node2/tunnel.log" >/dev/null &&
	ok "the tunnel's log says why each was refused" ||
	not_ok "the 400s are logged with their reason" "$(grep -F ' refused with 400' "$T/node2/tunnel.log" | tail -n 5)"

tunnel_stop node1
tunnel_stop node2
sanitizer_clean node1 node2
echo "# $TAP_COUNT checks, $TAP_FAILED failed"
