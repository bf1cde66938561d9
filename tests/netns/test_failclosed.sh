#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fail closed when something breaks, as root, on the real kernel (TAP): no
# captured connection is relayed past policy or in plaintext because the
# tunnel has no model, no policies, no CA, or a model that lost its pods.
#
#   node1 netns (10.0.0.1/30) <====== veth ======> node2 netns (10.0.0.2/30)
#     cni0 10.244.1.1/24                             cni0 10.244.2.1/24
#      |-- cli (ns mesh, enrolled, echo :8080)         |-- srv (ns mesh, enrolled, echo :8080)
#      |-- out (ns plain, not enrolled)                |
#     warren-tunnel caDir=$T/ca                      warren-tunnel caDir=$T/ca (restarted
#                                                      broken, without a CA, ...)
#
# Shows: node2 restarted with a broken mesh file adopts srv but refuses
# every captured connection (inbound plaintext, inbound HBONE, outbound)
# and says why in the log and /healthz/ready, until the file is fixed;
# without caDir and without `mtls: disabled` it is not ready and refuses
# likewise, and `mtls: disabled` lets plaintext through by choice.
# Env: B or WARREN_BUILD, KEEP_TMP=1.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need jq
need_built warren-cni warren-tunnel warrenctl

# Per node: NO_CA[node]=1 leaves caDir out, MTLS_OFF[node]=1 adds mtls: disabled.
declare -A NO_CA=() MTLS_OFF=()
tunnel_conf_extra() { # NODE
	[[ -n ${NO_CA[$1]:-} ]] || echo "caDir: $T/ca"
	[[ -z ${MTLS_OFF[$1]:-} ]] || echo "mtls: disabled"
	echo "meshReloadMs: 200"
}

# Start NODE's tunnel without waiting for readiness (it is not meant to be ready).
tunnel_start_unready() { # NODE
	local node=$1
	tunnel_conf_write "$node"
	ip netns exec "${NODE_NETNS[$node]}" "$WARREN_BUILD/warren-tunnel" \
		--config "$T/$node/tunnel.yaml" >>"$T/$node/tunnel.out" 2>&1 &
	TUNNEL_PID[$node]=$!
	disown "$!"
}
ready_body() { nexec "$1" curl -s --max-time 1 http://127.0.0.1:15021/healthz/ready; } # NODE
ready_says() { [[ $(ready_body "$1") == *"$2"* ]]; } # NODE TEXT
# Every pod listener of POD's shards is up (the tunnel adopted it).
pod_listening() { [[ $(ss -N "${POD_NETNS[$1]}" -Htln 'sport = :15006' | wc -l) -ge $WORKERS ]]; }
# CLIENT POD -> ADDR:8080 is echoed (0) or refused/reset/timed out (non-zero).
echoes() { app_client "$1" "$2" 8080 "fc-$RANDOM" --timeout 3 >/dev/null 2>&1; }
refused() { # CLIENT ADDR SERVER: no echo, and the server's app saw no connection from CLIENT
	local before after
	before=$(grep -c " ${POD_IP[$1]} " "$T/$3.app.log")
	echoes "$1" "$2" && return 1
	after=$(grep -c " ${POD_IP[$1]} " "$T/$3.app.log")
	((after == before))
}
# Write the mesh file in place through a temp file (what an atomic writer does).
mesh_write_raw() { printf '%s' "$1" >"$T/mesh.yaml.tmp" && mv "$T/mesh.yaml.tmp" "$T/mesh.yaml"; }
mesh_restore() { MESH_SYNC=0 mesh ns mesh istio.io/dataplane-mode=ambient >/dev/null; }

# --- cluster ---------------------------------------------------------------------
mtls_cluster_up
pod_add node1 mesh cli >/dev/null || die "pod cli"
pod_add node1 plain out >/dev/null || die "pod out"
pod_add node2 mesh srv >/dev/null || die "pod srv"
app_server cli 8080 || die "echo server in cli"
app_server srv 8080 || die "echo server in srv"
check "baseline: cli -> srv over HBONE echoes" echoes cli "${POD_IP[srv]}"
check "baseline: out (not enrolled) -> srv echoes" echoes out "${POD_IP[srv]}"
check "baseline: srv -> cli echoes" echoes srv "${POD_IP[cli]}"

# --- item: restart with a mesh file that does not load ------------------------------
tunnel_kill9 node2
mesh_write_raw $'apiVersion: v1\nkind: Namespace\nmetadata: [broken\n'
tunnel_start_unready node2
check "node2 restarted with a broken mesh file re-adopts srv (its listeners are up)" \
	wait_for -t 10 pod_listening srv
check "... /healthz/ready answers 503 saying the model is not loaded" \
	wait_for -t 5 ready_says node2 "mesh model not loaded"
check "... out (plaintext) -> srv is refused, the app sees nothing" refused out "${POD_IP[srv]}" srv
check "... cli -> srv (HBONE to 15008) is refused, the app sees nothing" refused cli "${POD_IP[srv]}" srv
check "... srv -> cli (outbound) is refused, cli's app sees nothing" refused srv "${POD_IP[cli]}" cli
check "... the log says why captured connections are refused" \
	grep -q "refusing captured connections.*mesh model not loaded" "$T/node2/tunnel.out"
mesh_restore
check "fixed mesh file: node2 becomes ready" wait_for -t 10 tunnel_ready node2
check "... srv -> cli echoes again" wait_for -t 5 echoes srv "${POD_IP[cli]}"
check "... out -> srv echoes again" echoes out "${POD_IP[srv]}"

# --- item: no caDir and no explicit mtls: disabled ---------------------------------------
tunnel_stop node2
NO_CA[node2]=1
tunnel_start_unready node2
check "node2 without caDir (mtls not disabled) re-adopts srv" wait_for -t 10 pod_listening srv
check "... /healthz/ready answers 503 saying there is no mesh CA" \
	wait_for -t 5 ready_says node2 "no mesh CA"
check "... out (plaintext) -> srv is refused" refused out "${POD_IP[srv]}" srv
check "... srv -> cli is refused (never plaintext between enrolled pods)" refused srv "${POD_IP[cli]}" cli
tunnel_stop node2
MTLS_OFF[node2]=1
tunnel_start node2 2>/dev/null
check "node2 with mtls: disabled is ready" tunnel_ready node2
check "... and logs the plaintext choice loudly" grep -q "PLAINTEXT MODE (mtls: disabled)" "$T/node2/tunnel.out"
check "... out -> srv echoes (plaintext by choice)" wait_for -t 5 echoes out "${POD_IP[srv]}"
tunnel_stop node2
NO_CA[node2]= MTLS_OFF[node2]=
tunnel_start node2 2>/dev/null
check "node2 back with caDir: cli -> srv over HBONE echoes" wait_for -t 5 echoes cli "${POD_IP[srv]}"

tunnel_stop node1
tunnel_stop node2
sanitizer_clean node1 node2
echo "# $TAP_COUNT checks, $TAP_FAILED failed"
