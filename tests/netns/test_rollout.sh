#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A tunnel rollout with no failed connection, as root on the real kernel
# (TAP): the successor starts beside the running tunnel, then the old one
# gets SIGTERM and drains (tunnel/drain.c).
#
#   node1 netns                  <====== veth ======>  node2 netns
#     cli (ns mesh)  -- loop: new HBONE connections -->  srv (ns mesh, echo :8080)
#         \--------- chat: one HBONE connection ----->/  ^        ^
#     ext (ns plain) -- loop: plaintext (15006) ------->/         |
#                                                        loc (ns mesh) -- loop: same-node HBONE
#     warren-tunnel (caDir)                             warren-tunnel A (drainSeconds: 20)
#                                                        warren-tunnel B, started beside A
#                                                          (drainSeconds: 3)
#
# Shown by traffic (every connection of three loops succeeds across the
# whole rollout, also while the successor waits for its model; the held
# connection keeps echoing on the old tunnel until it is closed), by the
# kernel (whose listeners are in the pod: ss shows the owning process), by
# the readiness port (B's answers alone once B started), and by the logs. Then the drain deadline: B alone gets
# SIGTERM, refuses new connections (fail closed) and cuts a held one after
# drainSeconds. Env: B or WARREN_BUILD, KEEP_TMP=1.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need "$PYTHON"
need_built warren-cni warren-tunnel warrenctl

# caDir, or (UNSIGNED=1) a warren-ca nobody answers: no certificate comes
tunnel_conf_extra() { # NODE
	if [[ -n ${UNSIGNED:-} ]]; then
		printf 'caAddress: https://127.0.0.1:9\ntrustBundle: %s\ncaTokenFile: %s\n' "$T/ca/root-cert.pem" "$T/token"
	else
		echo "caDir: $T/ca"
	fi
}
DRAIN_SECONDS=20

pool_states() { # the states of cli's pooled HBONE connections to srv (node1)
	wctl node1 -o json pool | "$PYTHON" -c '
import json, sys
print(" ".join(sorted(c["state"] for c in json.load(sys.stdin)
                      if c["pod"] == "cli" and c["destination"].startswith(sys.argv[1] + ":"))))' "$SRV"
}
# node1 got A's GOAWAY notice: the connection to A is closing (the held
# stream still on it) and a new one, to B, carries the new streams
pool_moved() { local s; s=$(pool_states); [[ $s == *closing* && $s == *open* ]]; }

# A failed connection's trail in both tunnels' logs, for the diagnostics
trails() { local n; for n in hbone plain local; do traffic_trail $n node1 node2; done; }

mtls_cluster_up
pod_add node2 mesh srv --label app=srv 2>"$T/err" || die "ADD srv: $(cat "$T/err")"
pod_add node2 mesh loc --label app=loc 2>"$T/err" || die "ADD loc: $(cat "$T/err")"
pod_add node1 mesh cli --label app=cli 2>"$T/err" || die "ADD cli: $(cat "$T/err")"
pod_add node1 plain ext --conflist "$T/node1.plain.conflist" 2>"$T/err" || die "ADD ext: $(cat "$T/err")"
app_server srv 8080 || die "echo server in srv"
SRV=${POD_IP[srv]}
A=${TUNNEL_PID[node2]}

traffic hbone loop cli "$SRV"; P_HBONE=${BG_PIDS[-1]}
traffic plain loop ext "$SRV"; P_PLAIN=${BG_PIDS[-1]}
traffic local loop loc "$SRV"; P_LOCAL=${BG_PIDS[-1]}
traffic held chat cli "$SRV"; P_HELD=${BG_PIDS[-1]}
for n in hbone plain local held; do
	wait_for -t 10 progressed "$n" 5 || die "traffic $n does not flow: $(cat "$T/$n.status" 2>&1)"
done
ok "traffic flows through tunnel A (pid $A): HBONE across nodes, plaintext, HBONE within node2, one held connection"

# --- a successor with no certificate for the pods ---------------------------------------------
# (warren-ca unreachable when it starts.) It adopts the pods but opens no
# listener in them: its own would refuse their HBONE while A's serve it.
echo token >"$T/token"
DRAIN_SECONDS=3 UNSIGNED=1 tunnel_conf_write node2
successor_start node2
B0=$SUCCESSOR_PID
b0_waits() { grep -q "warren-tunnel\[$B0\]: re-adopted pod mesh/srv .*its listeners wait for its certificate" "$T/node2/tunnel.log"; }
check "a successor (pid $B0) whose warren-ca does not answer adopts srv; its listeners wait for its certificate" \
	wait_for -t 10 b0_waits
b0_reason() { wctl node2 -o json config-dump 2>/dev/null | "$PYTHON" -c 'import json,sys; d=json.load(sys.stdin); print(d["pid"], d["readyReason"])'; }
check "... not ready: a pod's identity has no certificate yet" \
	wait_for -t 5 eval '[[ $(b0_reason) == "$B0 a pod'"'"'s identity has no certificate yet (see the log)" ]]'
[[ $(listener_pids srv 15008) == "$A " && $(listener_pids srv 15006) == "$A " && $(listener_pids loc 15001) == "$A " ]] &&
	ok "... no listener of its in the pods: only A's" ||
	not_ok "the successor without certificates opened no listener" "$(ss -N "${POD_NETNS[srv]}" -tlnp)"
for n in hbone plain local; do eval "mark_$n=\$(status_ok $n) fail_$n=\$(status_fail $n)"; done
wait_for -t 10 progressed hbone $((mark_hbone + 40)) && wait_for -t 10 progressed plain $((mark_plain + 40)) &&
	wait_for -t 10 progressed local $((mark_local + 40)) &&
	[[ $(status_fail hbone) == "$fail_hbone" && $(status_fail plain) == "$fail_plain" && $(status_fail local) == "$fail_local" ]] &&
	ok "meanwhile A serves every new connection (40 more of each loop, none failed)" ||
	not_ok "no connection failed beside the successor without certificates" "$(head -n 3 "$T"/{hbone,plain,local}.status)" "$(trails)"
kill -KILL "$B0" # a successor that crashed: the next one takes over
wait_for -t 5 exited "$B0"

# --- the successor starts beside A, its model not there yet -----------------------------------
# (Kubernetes mode: the model comes after the lists.) B adopts the pods but
# opens no listener in them until it can serve: one opened before would
# take a share of srv's new connections (SO_REUSEPORT) only to reset them.
# The mesh file is moved aside while B starts (A keeps the model it has).
DRAIN_SECONDS=3 tunnel_conf_write node2 # B's configuration; A has read its own
mv "$T/mesh.yaml" "$T/mesh.yaml.held"
successor_start node2
B=$SUCCESSOR_PID
dump_reason() { wctl node2 -o json config-dump 2>/dev/null | "$PYTHON" -c 'import json,sys; d=json.load(sys.stdin); print(d["pid"], d["readyReason"])'; }
b_waits() { [[ $(dump_reason) == "$B mesh model not loaded"* ]] && grep -q "warren-tunnel\[$B\]: adoption done" "$T/node2/tunnel.log"; }
wait_for -t 10 b_waits &&
	ok "tunnel B (pid $B) started beside A with no model yet: it adopted the pods, not ready (no mesh model)" ||
	die "tunnel B waiting for its model (readiness: $(dump_reason))"
check "B logged that srv's listeners wait for a model" \
	grep -q "warren-tunnel\[$B\]: re-adopted pod mesh/srv .*its listeners wait until we can serve" "$T/node2/tunnel.log"
[[ $(listener_pids srv 15008) == "$A " && $(listener_pids srv 15006) == "$A " && $(listener_pids loc 15001) == "$A " ]] &&
	ok "... and opened no listener in the pods: only A's (pid $A) are there" ||
	not_ok "B opened no listener before its model" "$(ss -N "${POD_NETNS[srv]}" -tlnp)"
# The readiness port is shared too (SO_REUSEPORT), so a kubelet probing
# B's pod could be answered by A ("ready"): A leaves it to B once B took
# the admin socket over. 20 probes on fresh connections: all B's 503.
probes() { # the readiness port's answers to 20 new connections, sorted and counted
	local i
	for ((i = 0; i < 20; i++)); do
		nexec node2 curl -s -o /dev/null -w '%{http_code}\n' --max-time 1 http://127.0.0.1:15021/healthz/ready
	done | sort | uniq -c | awk '{print $2 "x" $1}' | tr '\n' ' '
}
a_left() { grep -q "warren-tunnel\[$A\]: a successor took adminSocket .* over: readiness is left to it" "$T/node2/tunnel.log"; }
check "A leaves the readiness port to B once B took the admin socket over (logged)" wait_for -t 5 a_left
check "... 20 probes on the node's readiness port: all 503 (B not ready), none answered by A" \
	test "$(probes)" = "503x20 "
for n in hbone plain local; do eval "mark_$n=\$(status_ok $n) fail_$n=\$(status_fail $n)"; done
wait_for -t 10 progressed hbone $((mark_hbone + 40)) && wait_for -t 10 progressed plain $((mark_plain + 40)) &&
	wait_for -t 10 progressed local $((mark_local + 40)) &&
	[[ $(status_fail hbone) == "$fail_hbone" && $(status_fail plain) == "$fail_plain" && $(status_fail local) == "$fail_local" ]] &&
	ok "meanwhile A serves every new connection (40 more of each loop, none failed)" ||
	not_ok "no connection failed while B waited for its model" "$(head -n 3 "$T"/{hbone,plain,local}.status)" "$(trails)"
mv "$T/mesh.yaml.held" "$T/mesh.yaml"
wait_for -t 10 answered_by node2 "$B" &&
	ok "with its model B opened the pods' listeners and is ready" ||
	die "tunnel B not ready (config-dump: $(wctl node2 -o json config-dump 2>&1 | head -c 300))"
check "... and the readiness port answers 200 to 20 probes" test "$(probes)" = "200x20 "
both=$(printf '%s\n' "$A" "$B" | sort | tr '\n' ' ') shared=1
for port in 15001 15006 15008; do [[ $(listener_pids srv $port) == "$both" ]] || shared=0; done
((shared)) && ok "srv's listeners on 15001, 15006 and 15008: A's and B's (one SO_REUSEPORT group per port)" ||
	not_ok "srv's listeners belong to A and B" "$(ss -N "${POD_NETNS[srv]}" -tlnp)"
before=$(status_ok held)

# --- A drains -----------------------------------------------------------------------------------
kill -TERM "$A"
wait_for -t 5 bash -c "[[ \$(ss -N '${POD_NETNS[srv]}' -Htlnp 'sport = :15001' | grep -c 'pid=$A,') == 0 ]]" &&
	[[ $(listener_pids srv 15008) == "$B " && $(listener_pids loc 15001) == "$B " ]] &&
	ok "SIGTERM: A closed its listeners in the pods; only B's are left" ||
	not_ok "A closed its listeners" "$(ss -N "${POD_NETNS[srv]}" -tlnp)"
check "A logged that it drains" wait_for -t 5 grep -q 'draining. Listeners closed in 2 pod(s)' "$T/node2/tunnel.log"
[[ $(pexec srv sysctl -n net.ipv4.tcp_migrate_req) == 1 && $(pexec loc sysctl -n net.ipv4.tcp_migrate_req) == 1 &&
	$(nexec node2 sysctl -n net.ipv4.tcp_migrate_req) == 0 ]] &&
	ok "... having set net.ipv4.tcp_migrate_req in each pod first (queued connections move to B), not on the node" ||
	not_ok "tcp_migrate_req set in the pods only" "srv $(pexec srv sysctl -n net.ipv4.tcp_migrate_req), loc $(pexec loc sysctl -n net.ipv4.tcp_migrate_req), node2 $(nexec node2 sysctl -n net.ipv4.tcp_migrate_req)"
for n in hbone plain local; do eval "mark_$n=\$(status_ok $n)"; done
wait_for -t 10 progressed hbone $((mark_hbone + 40)) && wait_for -t 10 progressed plain $((mark_plain + 40)) &&
	wait_for -t 10 progressed local $((mark_local + 40)) &&
	ok "new connections keep succeeding after A's SIGTERM (40 more of each loop, through B)" ||
	not_ok "the loops made progress after SIGTERM" "$(head -n 3 "$T"/{hbone,plain,local}.status)" "$(trails)"
wait_for -t 5 progressed held $((before + 20)) && ! exited "$A" &&
	ok "the held connection keeps echoing on A, which is still draining" ||
	not_ok "the held connection on the draining A" "$(cat "$T/held.status"); A alive: $(exited "$A" && echo no || echo yes)"
wait_for -t 5 pool_moved &&
	ok "node1's pool got A's GOAWAY notice: its connection to A is closing, a new one (to B) is open" ||
	not_ok "node1's pool moved to B" "states: $(pool_states)"
stop_traffic held "$P_HELD"
[[ $(status_fail held) == 0 ]] && ok "... it ended without an error when its client closed it ($(status_ok held) echoes)" ||
	not_ok "the held connection had no error" "$(cat "$T/held.status")" "$(traffic_trail held node1 node2)"
check "A stopped once its last connection ended, well before drainSeconds (20 s)" wait_for -t 10 exited "$A"
check "A said so" grep -q 'drained: no connection left after' "$T/node2/tunnel.log"
TUNNEL_PID[node2]=$B
for n in hbone plain local; do eval "mark_$n=\$(status_ok $n)"; done
wait_for -t 10 progressed hbone $((mark_hbone + 20)) && wait_for -t 10 progressed plain $((mark_plain + 20)) &&
	wait_for -t 10 progressed local $((mark_local + 20)) &&
	ok "traffic keeps flowing after A exited (20 more of each loop)" ||
	not_ok "traffic after A exited" "$(head -n 3 "$T"/{hbone,plain,local}.status)" "$(trails)"
stop_traffic hbone "$P_HBONE"
stop_traffic plain "$P_PLAIN"
stop_traffic local "$P_LOCAL"
for n in hbone plain local; do
	[[ $(status_fail $n) == 0 && $(status_ok $n) -gt 100 ]] &&
		ok "loop $n: $(status_ok $n) connections across the rollout, none failed" ||
		not_ok "loop $n: no failed connection" "$(cat "$T/$n.status")" "$(traffic_trail $n node1 node2)"
done

# --- B serves alone -------------------------------------------------------------------------------
answered_by node2 "$B" && [[ -S $T/node2/admin.sock ]] &&
	ok "A left B's admin socket in place (it removes only its own)" ||
	not_ok "B's admin socket survived A" "$(ls -l "$T/node2/")"
pod_add node2 mesh srv2 --label app=srv2 2>"$T/err" && app_server srv2 8080 &&
	check "B serves the plugin socket: a new pod, and cli -> it over HBONE" app_client cli "${POD_IP[srv2]}" 8080 "new-$E2E_ID" ||
	not_ok "ADD srv2 through B" "$(cat "$T/err")"

# --- the drain deadline, with no successor -------------------------------------------------------
traffic held2 chat cli "$SRV"; P_HELD2=${BG_PIDS[-1]}
wait_for -t 10 progressed held2 3 || not_ok "a second held connection" "$(cat "$T/held2.status")"
t0=$SECONDS
kill -TERM "$B"
wait_for -t 5 bash -c "[[ -z \$(ss -N '${POD_NETNS[srv]}' -Htln 'sport = :15008') ]]" ||
	not_ok "B closed its listeners" "$(ss -N "${POD_NETNS[srv]}" -tlnp)"
# A CONNECT that reached B before its GOAWAY notice reached node1 is still
# served; once node1 knows, new connections find no listener.
check "B alone, draining: new connections cli -> srv fail (no listener: closed, not bypassed)" \
	wait_for -t 3 fails app_client cli "$SRV" 8080 "closed-$E2E_ID"
check "B stops when drainSeconds (3) are over" wait_for -t 10 exited "$B"
elapsed=$((SECONDS - t0))
((elapsed >= 2 && elapsed <= 8)) && ok "... after about 3 s (${elapsed} s by the shell's clock)" ||
	not_ok "B's drain took about drainSeconds" "${elapsed} s"
check "B logged the deadline and the connection it closed" \
	grep -q 'drain period (drainSeconds: 3) over: closing the 1 connection(s) left' "$T/node2/tunnel.log"
wait_for -t 10 exited "$P_HELD2"
[[ $(status_fail held2) == 1 ]] && ok "the connection held past the deadline was cut: $(sed -n 2p "$T/held2.status")" ||
	not_ok "the held connection was cut at the deadline" "$(cat "$T/held2.status")"
unset "TUNNEL_PID[node2]"

tunnel_stop node1
sanitizer_clean node1 node2
echo "# $TAP_COUNT checks, $TAP_FAILED failed"
