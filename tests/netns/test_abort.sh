#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# An abnormal end looks abnormal to the app: when a tunnel dies (kill -9)
# mid-stream, the apps' connections through it end with a reset, never a
# FIN that would make a truncated response read as complete. A normal end
# stays a FIN (EOF). As root on the real kernel (TAP).
#
#   node1 netns                  <====== veth ======>  node2 netns
#     cni0 10.244.1.1/24                                 cni0 10.244.2.1/24
#      |-- cli (ns mesh, enrolled)                        |-- srv  (ns mesh, enrolled, echo :8080)
#     warren-tunnel caDir=$T/ca                          |-- side (ns plain, echo :8080)
#                                                        warren-tunnel caDir=$T/ca
#
# cli -> srv is HBONE (node1's tunnel accepts on cli's 15001, node2's
# connects to srv's app); cli -> side is a plain TCP relay. The client
# (app.py until-end) reads until its connection ends and says how.
# Env: B or WARREN_BUILD, KEEP_TMP=1.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need_built warren-cni warren-tunnel warrenctl

tunnel_conf_extra() { echo "caDir: $T/ca"; }

mtls_cluster_up
pod_add node2 mesh srv --label app=srv 2>"$T/err" || die "ADD srv: $(cat "$T/err")"
pod_add node2 plain side --conflist "$T/node2.plain.conflist" 2>"$T/err" || die "ADD side: $(cat "$T/err")"
pod_add node1 mesh cli --label app=cli 2>"$T/err" || die "ADD cli: $(cat "$T/err")"
for p in srv side; do app_server "$p" 8080 || die "echo server in $p"; done

N=0
# Start a client in cli that holds a connection to POD:8080 open, and wait
# until it has its echo. Sets CLIENT_PID and CLIENT_OUT (N: the caller's
# counter, so that a run in a subshell still has files of its own).
client_start() { # POD [--half-close]
	CLIENT_OUT=$T/client.$N.out
	ip netns exec "${POD_NETNS[cli]}" timeout 60 "$PYTHON" "$APP" until-end "${POD_IP[$1]}" 8080 \
		"msg-$N-$E2E_ID" "$T/ready.$N" ${2:-} >"$CLIENT_OUT" 2>&1 &
	CLIENT_PID=$!
	wait_for -t 10 test -e "$T/ready.$N"
}
client_end() { # EXPECTED ("reset" or "eof"): how the client's connection ended, within 10 s
	wait_for -t 10 exited "$CLIENT_PID" || { echo "the client is still reading"; return 1; }
	wait "$CLIENT_PID" 2>/dev/null
	[[ $(cat "$CLIENT_OUT") == "$1" ]] || { echo "client: $(cat "$CLIENT_OUT")"; return 1; }
}
normal_end() { client_start "$1" --half-close && client_end eof; } # POD

# --- normal ends: a FIN -------------------------------------------------------
N=$((N + 1))
check "HBONE cli -> srv: the client half-closes, the server closes: the client reads EOF" normal_end srv
N=$((N + 1))
check "plain relay cli -> side: the same normal end is an EOF" normal_end side

# --- the source tunnel killed: a reset ------------------------------------------
N=$((N + 1))
client_start srv || not_ok "HBONE client connected" "$(cat "$CLIENT_OUT")"
tunnel_kill9 node1
check "HBONE cli -> srv, node1's tunnel killed (-9) mid-stream: the client sees a reset" client_end reset
tunnel_start node1 || die "node1's tunnel restart"
N=$((N + 1))
client_start side || not_ok "plain client connected" "$(cat "$CLIENT_OUT")"
tunnel_kill9 node1
check "plain relay cli -> side, node1's tunnel killed (-9): the client sees a reset" client_end reset
tunnel_start node1 || die "node1's tunnel restart"

# --- the destination tunnel killed: the source tunnel resets the client ---------
N=$((N + 1))
client_start srv || not_ok "HBONE client connected" "$(cat "$CLIENT_OUT")"
tunnel_kill9 node2
check "HBONE cli -> srv, node2's tunnel killed (-9): the client sees a reset" client_end reset
tunnel_start node2 || die "node2's tunnel restart"
check "after both restarts, cli -> srv works again" app_client cli "${POD_IP[srv]}" 8080 "again-$E2E_ID"

tunnel_stop node1
tunnel_stop node2
sanitizer_clean node1 node2
echo "# $TAP_COUNT checks, $TAP_FAILED failed"
