#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End-to-end: two nodes, pods wired by bridge + host-local + warren-cni through
# a libcni-faithful chain runner, one warren-tunnel per node, one mesh file.
# Every claim is shown by traffic and kernel state (nft counters, ss,
# conntrack, tcpdump), not only by our logs. Run as root; prints TAP.
#
#   node1 netns (10.0.0.1/30) <====== veth ======> node2 netns (10.0.0.2/30)
#     route 10.244.2.0/24 via 10.0.0.2               route 10.244.1.0/24 via 10.0.0.1
#     cni0 10.244.1.1/24 (bridge)                    cni0 10.244.2.1/24 (bridge)
#      |-- cli  (ns mesh, enrolled)                   |-- srv  (ns mesh, enrolled, echo :8080)
#      |-- pl   (ns plain)                            |-- psrv (ns plain, echo :8080)
#      |-- ks   (ns kube-system, excluded)
#      |-- optout (ns mesh, label none) / optin (ns plain, label ambient)
#      |-- chk, e1..e5, gc1, gc2, bad (short-lived)
#     warren-tunnel ($T/node1/*)                     warren-tunnel ($T/node2/*)
#                     \______ one mesh file $T/mesh.yaml ______/
#
# Env: B or WARREN_BUILD (build dir), KEEP_TMP=1 keeps the temp dir (logs).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
# Plaintext between enrolled pods is what this test covers: an explicit choice.
tunnel_conf_extra() { echo "mtls: disabled"; } # NODE

lib_init
CLEANUP_TAP=1
need tcpdump conntrack
need_built warren-cni warren-tunnel warrenctl

topo_up >/dev/null 2>&1 || die "topology"
# Namespaces before the tunnels start, so the first model already has them.
# kube-system is labelled ambient on purpose: only excludeNamespaces keeps it out.
mesh ns mesh istio.io/dataplane-mode=ambient
mesh ns plain
mesh ns kube-system istio.io/dataplane-mode=ambient
tunnel_start node1 2>/dev/null || die "warren-tunnel on node1 did not become ready (see $T/node1/tunnel.out)"
tunnel_start node2 2>/dev/null || die "warren-tunnel on node2 did not become ready"
ok "both tunnels ready (GET /healthz/ready = 200 inside each node netns)"

has_listeners() {
	local p
	for p in 15001 15006 15008; do listening "${POD_NETNS[$1]}" $p || { echo "no listener on $p"; return 1; }; done
}
enrolled_state() { # POD NODE: everything of ours is there
	capture_state "$1" || return 1
	has_listeners "$1" || return 1
	tunnel_knows "$2" "${POD_ID[$1]}" || { echo "tunnel on $2 does not list ${POD_ID[$1]}"; return 1; }
}
untouched_state() { # POD NODE: nothing of ours is there
	inpod_clean "$1" || { echo "warren state in the pod:"; pexec "$1" nft list tables; ip -n "${POD_NETNS[$1]}" rule; return 1; }
	no_listeners "$1" || { echo "listeners in the pod"; ss -N "${POD_NETNS[$1]}" -tln; return 1; }
	tunnel_forgot "$2" "${POD_ID[$1]}" || { echo "tunnel on $2 lists the pod"; return 1; }
}
accepts() { wc -l <"$T/$1.app.log"; }
chain_code() { # prints the plugin error code from cni-chain's stdout JSON (or rc)
	"$PYTHON" -c 'import json,sys
try: print(json.loads(sys.stdin.read().strip().splitlines()[-1]).get("code",""))
except Exception: print("")'
}

# --- 1. enrolled client (node1) -> enrolled server (node2) ------------------
pod_add node2 mesh srv 2>"$T/err" && ok "ADD enrolled server pod srv on node2 (${POD_IP[srv]})" ||
	die "ADD srv: $(cat "$T/err")"
pod_add node1 mesh cli 2>"$T/err" && ok "ADD enrolled client pod cli on node1 (${POD_IP[cli]})" ||
	die "ADD cli: $(cat "$T/err")"
check "cli: warren tables, ip rule, table 100 route, listeners 15001/15006/15008 present when ADD returns" enrolled_state cli node1
check "srv: same on node2" enrolled_state srv node2
app_server srv 8080 || die "echo server in srv"

out0=$(capture_count cli out)
in0=$(capture_count srv in)
[[ -n $out0 && -n $in0 ]] && ok "$REDIRECT_MODE capture counters found (out=$out0 in=$in0)" ||
	not_ok "$REDIRECT_MODE capture counters found" "$(capture_state cli)"
n0=$(accepts srv)
check "cli -> srv:8080 round-trips through both tunnels" app_client cli "${POD_IP[srv]}" 8080 "hello-$E2E_ID"
out1=$(capture_count cli out)
in1=$(capture_count srv in)
((out1 > out0)) && ok "client pod's outbound redirect counter moved ($out0 -> $out1)" ||
	not_ok "client pod's outbound redirect counter moved" "$out0 -> $out1"
((in1 > in0)) && ok "server pod's inbound redirect counter moved ($in0 -> $in1)" ||
	not_ok "server pod's inbound redirect counter moved" "$in0 -> $in1"
(($(accepts srv) > n0)) && [[ $(last_peer srv) == "${POD_IP[cli]}" ]] &&
	ok "server saw the client pod's real IP ${POD_IP[cli]}" ||
	not_ok "server saw the client pod's real IP" "server log: $(tail -n 3 "$T/srv.app.log")"
if [[ $REDIRECT_MODE == ebpf ]]; then
	# the point of the mode: no conntrack entry (so no NAT) for a captured flow
	check "conntrack in cli: no entry for the captured connection to srv:8080 (no NAT)" \
		bash -c "[[ -z \$(ip netns exec ${POD_NETNS[cli]} conntrack -L -p tcp --orig-dst ${POD_IP[srv]} --orig-port-dst 8080 2>/dev/null) ]]"
	check "conntrack in srv: no entry for the captured connection to :8080 (no NAT)" \
		bash -c "[[ -z \$(ip netns exec ${POD_NETNS[srv]} conntrack -L -p tcp --orig-port-dst 8080 2>/dev/null) ]]"
else
	check "conntrack in cli: the connection to srv:8080 was redirected to :15001" \
		bash -c "ip netns exec ${POD_NETNS[cli]} conntrack -L -p tcp --orig-dst ${POD_IP[srv]} --orig-port-dst 8080 2>/dev/null | grep 'sport=15001' >/dev/null"
	check "conntrack in srv: the connection arrived redirected to :15006" \
		bash -c "ip netns exec ${POD_NETNS[srv]} conntrack -L -p tcp --orig-port-dst 8080 2>/dev/null | grep 'sport=15006' >/dev/null"
fi

# Held-open connection: the tunnel's upstream socket in the client pod netns.
rm -f "$T/held.ready" "$T/held.release"
app_client cli "${POD_IP[srv]}" 8080 held --timeout 15 --ready-file "$T/held.ready" \
	--hold-until "$T/held.release" >/dev/null 2>&1 &
held=$!
if wait_for -t 10 test -e "$T/held.ready"; then
	ssout=$(ss -N "${POD_NETNS[cli]}" -Htne state established 2>/dev/null)
	if grep -q "fwmark:0x539" <<<"$ssout" && grep "fwmark:0x539" <<<"$ssout" | grep "${POD_IP[srv]}:" >/dev/null; then
		ok "ss in cli: the tunnel's upstream socket to ${POD_IP[srv]} carries fwmark 0x539"
	else
		not_ok "ss in cli: the tunnel's upstream socket carries fwmark 0x539" "$ssout"
	fi
	if [[ $REDIRECT_MODE == ebpf ]]; then
		check "ss in cli: the tunnel holds the app's connection with the original destination as local address (${POD_IP[srv]}:8080)" \
			bash -c "grep -qE '(\[::ffff:)?${POD_IP[srv]}\]?:8080 +(\[::ffff:)?${POD_IP[cli]}\]?:' <<<\"\$0\"" "$ssout"
	else
		check "ss in cli: the tunnel holds the app's connection on the redirect port (local 127.0.0.1:15001)" \
			bash -c "grep -qE '127\.0\.0\.1\]?:15001 +(\[::ffff:)?${POD_IP[cli]}\]?:' <<<\"\$0\"" "$ssout"
	fi
	check "warrenctl connections lists the open outbound connection on node1" \
		bash -c "'$WARREN_BUILD/warrenctl' --socket '$T/node1/admin.sock' -o json connections | grep outbound >/dev/null"
else
	not_ok "held-open connection established"
fi
touch "$T/held.release"
wait "$held" 2>/dev/null

# --- 2. not enrolled: plain namespace, kube-system, opt-out label -----------
pod_add node2 plain psrv 2>/dev/null || die "ADD psrv"
app_server psrv 8080 || die "echo server in psrv"
pod_add node1 plain pl 2>"$T/err" && ok "ADD pod pl in a namespace without the label" || not_ok "ADD pl" "$(cat "$T/err")"
pod_add node1 kube-system ks 2>"$T/err" && ok "ADD pod ks in kube-system (labelled ambient, excluded by config)" ||
	not_ok "ADD ks" "$(cat "$T/err")"
pod_add node1 mesh optout --label istio.io/dataplane-mode=none 2>"$T/err" &&
	ok "ADD pod optout (label none) in the ambient namespace" || not_ok "ADD optout" "$(cat "$T/err")"
fds_before_optin=$(tunnel_fds node1)
pod_add node1 plain optin --label istio.io/dataplane-mode=ambient 2>"$T/err" &&
	ok "ADD pod optin (label ambient) in a plain namespace" || not_ok "ADD optin" "$(cat "$T/err")"
for p in pl ks optout; do
	check "$p: no warren table, ip rule, route or listener; tunnel does not list it" untouched_state $p node1
	n0=$(accepts psrv)
	if app_client $p "${POD_IP[psrv]}" 8080 "direct-$p" >/dev/null 2>&1 && [[ $(last_peer psrv) == "${POD_IP[$p]}" ]] &&
		(($(accepts psrv) > n0)); then
		ok "$p -> psrv:8080 works directly (peer ${POD_IP[$p]})"
	else
		not_ok "$p -> psrv:8080 works directly" "$(tail -n 2 "$T/psrv.app.log")"
	fi
done
check "optin: enrolled (tables, rule, route, listeners, listed by the tunnel)" enrolled_state optin node1
n0=$(accepts srv); c0=$(capture_count optin out)
if app_client optin "${POD_IP[srv]}" 8080 "optin" >/dev/null 2>&1 && (($(capture_count optin out) > c0)) &&
	[[ $(last_peer srv) == "${POD_IP[optin]}" ]]; then
	ok "optin -> srv goes through its outbound redirect and srv sees its IP"
else
	not_ok "optin -> srv goes through its outbound redirect" "$(tail -n 2 "$T/srv.app.log")"
fi

# --- 3. DEL -------------------------------------------------------------------
chain node1 DEL optin >/dev/null 2>"$T/err" && ok "DEL optin through the chain" || not_ok "DEL optin" "$(cat "$T/err")"
check "after DEL: no nft table, ip rule or table-100 route of ours in optin's netns" inpod_clean optin
check "after DEL: no listener in optin's netns" no_listeners optin
tunnel_forgot node1 "${POD_ID[optin]}" && ok "after DEL: warrenctl -o json pods no longer lists optin" ||
	not_ok "after DEL: tunnel forgot optin" "$(wctl node1 -o json pods)"
# Its listeners, netns fd and spare upstream sockets (which would pin the
# netns) are all closed: the tunnel is back to the fds it had before ADD.
fds_back() { (($(tunnel_fds node1) <= fds_before_optin)); }
if wait_for -t 5 fds_back; then
	ok "after DEL: the tunnel holds no fd of optin ($(tunnel_fds node1) fds, $fds_before_optin before ADD)"
else
	not_ok "after DEL: the tunnel holds no fd of optin" "$(tunnel_fds node1) fds, $fds_before_optin before ADD: $(ls -l "/proc/${TUNNEL_PID[node1]}/fd" | tail -n 20)"
fi
ip netns del "${POD_NETNS[optin]}"; mesh rm-pod plain optin

# --- 4. DEL edge cases ----------------------------------------------------------
for p in e1 e2 e3 e4 e5; do pod_add node1 mesh $p 2>/dev/null || not_ok "ADD $p for the DEL edge cases"; done
check "DEL e1 through the chain" chain node1 DEL e1
check "DEL e1 again (no cache, so no prevResult) succeeds" chain node1 DEL e1
check "DEL e1 directly without prevResult succeeds" plugin_direct node1 DEL e1 "$(plugin_conf node1)"
check "DEL e2 with empty CNI_NETNS succeeds" chain node1 DEL e2 --netns ""
tunnel_forgot node1 "${POD_ID[e2]}" && ok "DEL with empty CNI_NETNS: the tunnel forgot e2" || not_ok "tunnel forgot e2"
check "DEL e2 directly with CNI_NETNS unset succeeds" plugin_direct node1 DEL e2 "$(plugin_conf node1)" -CNI_NETNS
ip netns del "${POD_NETNS[e3]}"
check "DEL e3 after its netns vanished succeeds" chain node1 DEL e3
check "DEL e3 directly after its netns vanished succeeds" plugin_direct node1 DEL e3 "$(plugin_conf node1)"
tunnel_forgot node1 "${POD_ID[e3]}" && ok "DEL of a vanished netns: the tunnel forgot e3" || not_ok "tunnel forgot e3"
pod_define node1 mesh never 2>/dev/null
check "DEL of a pod never added succeeds (chain)" chain node1 DEL never
check "DEL of a pod never added succeeds (direct)" plugin_direct node1 DEL never "$(plugin_conf node1)"
tunnel_stop node1
check "DEL e4 with the tunnel down succeeds" chain node1 DEL e4
check "DEL e4 directly with the tunnel down succeeds" plugin_direct node1 DEL e4 "$(plugin_conf node1)"
check "DEL e4 with the tunnel down still removed the in-pod rules" inpod_clean e4
tunnel_start node1 2>/dev/null || die "restart node1 tunnel"
tunnel_forgot node1 "${POD_ID[e4]}" && ok "tunnel restarted after e4's DEL does not resurrect it" ||
	not_ok "tunnel forgot e4 after restart" "$(wctl node1 -o json pods)"
check "e5 still enrolled after the tunnel restart" enrolled_state e5 node1
chain node1 DEL e5 >/dev/null 2>&1
for p in e1 e2 e4 e5 never; do ip netns del "${POD_NETNS[$p]}" 2>/dev/null; mesh rm-pod mesh $p; done

# --- 5. CHECK -----------------------------------------------------------------
pod_add node1 mesh chk 2>/dev/null || not_ok "ADD chk"
check "CHECK passes right after ADD" chain node1 CHECK chk
pat=$(capture_break chk)
if [[ -n $pat ]]; then
	out=$(chain node1 CHECK chk 2>&1); rc=$?
	if ((rc != 0)) && grep -q "$pat" <<<"$out"; then
		ok "CHECK fails after removing the $REDIRECT_MODE outbound capture, naming it (rc $rc)"
	else
		not_ok "CHECK fails after removing the $REDIRECT_MODE outbound capture, naming it" "rc=$rc: $out"
	fi
	diag "CHECK said: $(grep -m1 'plugin type' <<<"$out")"
else
	not_ok "remove the $REDIRECT_MODE outbound capture of chk"
fi
chain node1 DEL chk >/dev/null 2>&1

# --- 6. GC ---------------------------------------------------------------------
pod_add node1 mesh gc1 2>/dev/null || not_ok "ADD gc1"
pod_add node1 mesh gc2 2>/dev/null || not_ok "ADD gc2"
# GC is sent to plugins only for cniVersion >= 1.1.0 (libcni); Debian's bridge
# stops at 1.0.0, so GC goes through a 1.1.0 list holding warren-cni alone.
"$PYTHON" -c 'import json,sys; c=json.load(open(sys.argv[1])); c["cniVersion"]="1.1.0"; c["plugins"]=c["plugins"][-1:]; print(json.dumps(c))' \
	"$T/node1.conflist" >"$T/node1.gc.conflist"
valid=()
for p in cli pl ks optout gc1; do valid+=("${POD_ID[$p]}:eth0"); done
check "GC (1.1.0, valid list without gc2) succeeds" \
	env CNI_PATH="/usr/lib/cni:$WARREN_BUILD" ip netns exec "${NODE_NETNS[node1]}" "$PYTHON" "$CNI_CHAIN" GC \
	--conflist "$T/node1.gc.conflist" --cache-dir "$T/node1/cni-cache" --path "/usr/lib/cni:$WARREN_BUILD" \
	--no-cache-gc --valid "${valid[@]}"
tunnel_forgot node1 "${POD_ID[gc2]}" && ok "GC: the tunnel dropped gc2" || not_ok "GC: the tunnel dropped gc2" "$(wctl node1 -o json pods)"
check "GC: the tunnel kept gc1 and cli" bash -c "'$WARREN_BUILD/warrenctl' --socket '$T/node1/admin.sock' -o json pods | grep '${POD_ID[gc1]}' >/dev/null && '$WARREN_BUILD/warrenctl' --socket '$T/node1/admin.sock' -o json pods | grep '${POD_ID[cli]}' >/dev/null"
wait_for -t 5 no_listeners gc2 && ok "GC: gc2's listeners are closed" || not_ok "GC: gc2's listeners are closed"
# libcni's own half of GC: DEL of every cached attachment not in the valid set
valid=()
for p in cli pl ks optout; do valid+=("${POD_ID[$p]}:eth0"); done
check "GC through the 1.0.0 chain DELs the stale cached attachment gc1" \
	env CNI_PATH="/usr/lib/cni:$WARREN_BUILD" ip netns exec "${NODE_NETNS[node1]}" "$PYTHON" "$CNI_CHAIN" GC \
	--conflist "$T/node1.conflist" --cache-dir "$T/node1/cni-cache" --path "/usr/lib/cni:$WARREN_BUILD" \
	--valid "${valid[@]}"
tunnel_forgot node1 "${POD_ID[gc1]}" && inpod_clean gc1 && ok "GC: gc1 forgotten and its rules removed" ||
	not_ok "GC: gc1 forgotten and its rules removed"
check "GC: cli still enrolled" enrolled_state cli node1

# --- 7. bad input ----------------------------------------------------------------
pod_define node1 mesh bad 2>/dev/null
only="$T/node1.only.conflist"
"$PYTHON" -c 'import json,sys; c=json.load(open(sys.argv[1])); c["plugins"]=c["plugins"][-1:]; print(json.dumps(c))' "$T/node1.conflist" >"$only"
bad_case() { # NAME WANT_CODE [chain args...]
	local name=$1 want=$2 out rc code; shift 2
	POD_CONFLIST[bad]=${CONFLIST:-$only}
	out=$(chain node1 ADD bad "$@" 2>"$T/bad.err"); rc=$?
	code=$(chain_code <<<"$out")
	if ((rc == want)) && [[ $code == "$want" ]] && inpod_clean bad && no_listeners bad &&
		{ ! tunnel_alive node1 || tunnel_forgot node1 "${POD_ID[bad]}"; }; then
		ok "bad input: $name -> code $want, nothing left behind"
	else
		not_ok "bad input: $name -> code $want, nothing left behind" "rc=$rc code=$code; $(cat "$T/bad.err")"
	fi
}
printf '{"cniVersion":"1.0.0","name":"warren-e2e","type":"warren-cni",' >"$T/malformed.json"
bad_case "malformed JSON" 6 --raw-stdin "warren-cni=$T/malformed.json"
"$PYTHON" -c 'import json,sys; c=json.load(open(sys.argv[1])); c["cniVersion"]="9.9.9"; print(json.dumps(c))' "$only" >"$T/v.conflist"
CONFLIST=$T/v.conflist bad_case "unsupported cniVersion 9.9.9" 1
bad_case "missing CNI_COMMAND" 4 --unset-env CNI_COMMAND
bad_case "missing CNI_NETNS" 4 --unset-env CNI_NETNS
bad_case "netns that does not exist" 4 --netns "/run/netns/wp-$E2E_ID-nonexistent"
"$PYTHON" -c 'import json,sys; c=json.load(open(sys.argv[1])); c["plugins"][0]["timeoutMs"]="5000"; print(json.dumps(c))' "$only" >"$T/t.conflist"
CONFLIST=$T/t.conflist bad_case "timeoutMs of the wrong type (string)" 7
status() { env CNI_PATH="/usr/lib/cni:$WARREN_BUILD" ip netns exec "${NODE_NETNS[node1]}" "$PYTHON" "$CNI_CHAIN" STATUS \
	--conflist "$T/node1.gc.conflist" --path "/usr/lib/cni:$WARREN_BUILD"; }
check "STATUS (1.1.0) succeeds while the tunnel is ready" status
tunnel_stop node1
out=$(status 2>/dev/null); rc=$?
((rc == 50)) && ok "STATUS with the tunnel down -> code 50 (plugin not available)" || not_ok "STATUS with the tunnel down -> 50" "rc=$rc $out"
CONFLIST=$T/node1.conflist bad_case "tunnel down for an enrolled pod (full chain)" 11
grep -q 'plugin type="warren-cni" failed (add)' "$T/bad.err" && ok "libcni-style error names the plugin: $(head -c 160 "$T/bad.err" | head -n 1)" ||
	not_ok "libcni-style error names the plugin" "$(cat "$T/bad.err")"
chain node1 DEL bad >/dev/null 2>&1 # as the runtime would after a failed ADD
tunnel_start node1 2>/dev/null || die "restart node1 tunnel"
tunnel_forgot node1 "${POD_ID[bad]}" && ok "after restart the tunnel has no record of the failed pod" || not_ok "no record of bad"

# --- 8. fail closed and restart ---------------------------------------------------
capture_start() { # POD FILE: tcpdump in POD's netns, returns once it listens
	ip netns exec "${POD_NETNS[$1]}" tcpdump -i eth0 --immediate-mode -U -n -w "$2" "tcp port 8080" 2>"$2.err" &
	CAP_PID=$!
	wait_for -t 10 grep -q "listening on" "$2.err"
}
capture_stop() { # FILE: prints the packet count
	kill -INT "$CAP_PID" 2>/dev/null; wait "$CAP_PID" 2>/dev/null
	tcpdump -n -r "$1" 2>/dev/null | wc -l
}
tunnel_kill9 node1
n0=$(accepts srv)
capture_start srv "$T/down.pcap" || not_ok "tcpdump started in srv"
app_client cli "${POD_IP[srv]}" 8080 "while-down" --timeout 3 >/dev/null 2>&1; rc=$?
pk=$(capture_stop "$T/down.pcap")
# eBPF: the program drops the SYN; the kernel cannot answer a reset from
# the foreign (original) destination, so the client times out instead.
want=2; [[ $REDIRECT_MODE == ebpf ]] && want=3
((rc == want)) && ok "tunnel killed (-9): cli's new outbound connection fails (client exit $rc: 2 refused, 3 timeout)" ||
	not_ok "tunnel down: cli's connection fails with exit $want" "client exit $rc (0 ok, 2 refused, 3 timeout)"
((pk == 0)) && (($(accepts srv) == n0)) && ok "fail closed: tcpdump on srv saw 0 packets to :8080 and the server logged no connection" ||
	not_ok "fail closed: nothing reached srv" "packets=$pk accepts $n0 -> $(accepts srv)"
capture_state cli >/dev/null && ok "the in-pod rules stay while the tunnel is down" || not_ok "rules stay while the tunnel is down"
tunnel_start node1 2>/dev/null && ok "node1 tunnel restarted, /healthz/ready = 200" || die "restart node1 tunnel"
capture_start srv "$T/up.pcap" || not_ok "tcpdump started in srv"
check "after restart, with no new ADD: cli -> srv round-trips" app_client cli "${POD_IP[srv]}" 8080 "after-restart"
pk=$(capture_stop "$T/up.pcap")
((pk > 0)) && ok "tcpdump on srv saw the new connection ($pk packets; the capture method works)" || not_ok "tcpdump saw the new connection"
check "after restart: listeners back in cli" has_listeners cli
tunnel_kill9 node2
tunnel_start node2 2>/dev/null || die "restart node2 tunnel"
n0=$(accepts srv)
check "server-side tunnel killed -9 and restarted: cli -> srv round-trips with no new ADD" app_client cli "${POD_IP[srv]}" 8080 "after-restart-2"
(($(accepts srv) > n0)) && [[ $(last_peer srv) == "${POD_IP[cli]}" ]] &&
	ok "and the server still sees the client's real IP" || not_ok "server sees client IP after restart" "$(tail -n 3 "$T/srv.app.log")"

# --- 9. final teardown through the chain ---------------------------------------------
for p in cli pl ks optout; do
	chain node1 DEL $p >/dev/null 2>&1
	inpod_clean $p || not_ok "final DEL of $p left state"
done
chain node2 DEL srv >/dev/null 2>&1
chain node2 DEL psrv >/dev/null 2>&1
check "tunnels list no pod after every DEL" bash -c "
	[[ \$('$WARREN_BUILD/warrenctl' --socket '$T/node1/admin.sock' -o json pods | tr -d ' \n') == '[]' ]] &&
	[[ \$('$WARREN_BUILD/warrenctl' --socket '$T/node2/admin.sock' -o json pods | tr -d ' \n') == '[]' ]]"
sanitizer_clean node1 node2
echo "# $TAP_COUNT checks, $TAP_FAILED failed"
