#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# With the destination's tunnel down, the source tunnel backs off dialing
# its 15008 (per destination, exponential with a cap, reset by a dial that
# works), and the access log says why a connection was refused. As root
# on the real kernel (TAP).
#
#   node1 netns                  <====== veth ======>  node2 netns
#     cni0 10.244.1.1/24                                 cni0 10.244.2.1/24
#      |-- cli (ns mesh, enrolled)                        |-- srv (ns mesh, enrolled, echo :8080)
#     warren-tunnel caDir=$T/ca, accessLog               warren-tunnel caDir=$T/ca (stopped
#                                                          and started again by the test)
#
# The dials are counted by the kernel: a counter of the SYNs to 15008 in
# srv's netns. Env: B or WARREN_BUILD, KEEP_TMP=1.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need_built warren-cni warren-tunnel warrenctl

tunnel_conf_extra() {
	echo "caDir: $T/ca"
	[[ $1 == node1 ]] && echo "accessLog: $T/node1/access.log"
	return 0
}

mtls_cluster_up
pod_add node2 mesh srv --label app=srv 2>"$T/err" || die "ADD srv: $(cat "$T/err")"
pod_add node1 mesh cli --label app=cli 2>"$T/err" || die "ADD cli: $(cat "$T/err")"
app_server srv 8080 || die "echo server in srv"
pexec srv nft -f - <<EOF || die "SYN counter in srv"
table inet wtest {
	chain in { type filter hook input priority -300; tcp dport 15008 tcp flags syn counter comment "dials"; }
}
EOF
syns() { pexec srv nft -j list chain inet wtest in | "$PYTHON" -c '
import json, sys
for i in json.load(sys.stdin)["nftables"]:
    r = i.get("rule")
    if r:
        for e in r["expr"]:
            if "counter" in e: print(e["counter"]["packets"])'; }
try_n() { # N: connections from cli to srv, one after another; prints how many worked
	local i ok=0
	for ((i = 0; i < $1; i++)); do
		app_client cli "${POD_IP[srv]}" 8080 "n-$i-$E2E_ID" >/dev/null 2>&1 && ok=$((ok + 1))
	done
	echo "$ok"
}
all_work() { [[ $(try_n 6) == 6 ]]; } # both workers' pools connect
failed() { awk 'NR == 1 {print $4}' "$1" 2>/dev/null; } # STATUS: app.py loop's fail count
# app.py loop (a connection every 5 ms) from cli to srv until N have failed.
loop_fails() { # N TAG
	local status=$T/loop.$2 stop=$T/stop.$2
	ip netns exec "${POD_NETNS[cli]}" "$PYTHON" "$APP" loop "${POD_IP[srv]}" 8080 "$status" "$stop" &
	local pid=$!
	wait_for -t 30 bash -c "(( \$(awk 'NR == 1 {print \$4}' '$status' 2>/dev/null || echo 0) >= $1 ))"
	local rc=$?
	touch "$stop"
	wait "$pid"
	return $rc
}

check "cli -> srv works over HBONE (node2's tunnel up)" app_client cli "${POD_IP[srv]}" 8080 "up-$E2E_ID"

# --- the destination's tunnel down ------------------------------------------------
tunnel_stop node2
s0=$(syns)
start=$SECONDS
loop_fails 200 down || not_ok "200 connections refused within 30 s" "$(cat "$T/loop.down")"
s1=$(syns)
dials=$((s1 - s0))
read -r _ worked _ nfail <"$T/loop.down"
diag "$((worked + nfail)) connections in $((SECONDS - start)) s with node2's tunnel down: $worked worked, $dials dials to 15008"
[[ $worked == 0 ]] && ok "node2's tunnel down: every connection is refused" ||
	not_ok "node2's tunnel down: every connection is refused" "$worked worked"
# Without backoff each connection dials. With it, each worker's pool dials
# again after 0.1, 0.2, 0.4, ... s (5 s at most): a handful each.
((dials >= 1 && dials * 5 <= nfail)) && ok "... with $dials dials to srv:15008 for $nfail connections (backoff)" ||
	not_ok "the source tunnel backs off its dials to srv:15008" "$dials dials for $nfail connections"
grep -F '"reason":"upstream connect refused, backing off (retry in ' "$T/node1/access.log" >/dev/null &&
	ok "the access log says why: upstream connect refused, backing off" ||
	not_ok "the access log's reason for a refused connection" "$(tail -n 3 "$T/node1/access.log")"
grep -F 'failed dial' "$T/node1/access.log" | grep -F "to ${POD_IP[srv]}:15008; the last: " >/dev/null &&
	ok "... with the destination and the last dial's failure" ||
	not_ok "the backoff reason names the destination" "$(grep -m1 backing "$T/node1/access.log")"

# --- back up: the next dial after the backoff works, and resets it --------------------
tunnel_start node2 || die "node2's tunnel restart"
check "node2's tunnel back: cli -> srv works again on every worker within the cap (5 s)" wait_for -t 15 all_work
# Reset on success: after node2's tunnel goes again, a pool's first refusal
# follows 1 failed dial, not the count from before.
tunnel_stop node2
lines=$(wc -l <"$T/node1/access.log")
loop_fails 20 again || not_ok "20 connections refused within 30 s" "$(cat "$T/loop.again")"
first=$(tail -n +"$((lines + 1))" "$T/node1/access.log" | grep -m1 -o 'backing off (retry in [0-9]* ms after [0-9]* failed dials\?')
[[ $first == *"after 1 failed dial" ]] && ok "a dial that worked reset the backoff: the next refusal follows 1 failed dial" ||
	not_ok "the backoff is reset by a dial that worked" "first refusal: $first"

tunnel_stop node1
sanitizer_clean node1 node2
echo "# $TAP_COUNT checks, $TAP_FAILED failed"
