#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# hack/warren-netns against a real warren-tunnel, as root, on the real kernel:
#
#   netns NODE (lo, veth 10.253.0.1/24)        netns POD (lo, veth 10.253.0.2/24)
#   +--------------------------------+  veth  +-------------------------------+
#   | warren-tunnel (temp config)    |========| inpodctl apply (nft + rules)  |
#   |  admin 127.0.0.1:15000 + socket|        | tunnel listeners 15001/6/8    |
#   |  echo server 10.253.0.1:PORT   |        | client held open -> NODE:PORT |
#   +--------------------------------+        +-------------------------------+
#                                              netns POD2 (lo only): a second
#                                              pod whose container id shares a
#                                              prefix with POD's (ambiguity)
#
# Pods are handed over with tests/tools/handoffctl (what warren-cni does).
# The container-runtime fallback of warren-netns (crictl/kubectl) is not
# exercised: it is disabled here (WARREN_NETNS_NO_FALLBACK=1) so that a
# kubeconfig on the test machine is never consulted. Prints TAP lines
# "ok - name" / "not ok - name"; every name includes $$.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
B=${WARREN_BUILD:-$PWD/${B:-build}}
TUN=$B/warren-tunnel HCTL=$B/tests/handoffctl INPODCTL=$B/tests/inpodctl
WN=$ROOT/hack/warren-netns
export WARREN_NETNS_NO_FALLBACK=1

id=$$
NODE=wnn-node-$id POD=wnn-pod-$id POD2=wnn-pod2-$id
VN=wnn-n$id VP=wnn-p$id
NODE_IP=10.253.0.1 POD_ADDR=10.253.0.2 PORT=9099 UPORT=9199
tmp=$(mktemp -d /tmp/warren-netns-test.XXXXXX)
sock=$tmp/plugin.sock adminsock=$tmp/admin.sock mesh=$tmp/mesh.yaml conf=$tmp/tunnel.yaml
log=$tmp/tunnel.log
# container ids: hex like the runtime's; both share the first 8 characters
cid=$(printf 'feed%06x' "$id")a1b2c3d4e5f60718293a4b5c6d7e8f90
cid2=${cid:0:8}99887766554433221100ffeeddccbbaa
uid=uid-app-$id uid2=uid-other-$id
tpid=''
. tests/netns/lib.sh

cleanup() {
	set +e
	exec 2>/dev/null
	[[ -n $tpid ]] && kill -9 "$tpid" && wait "$tpid"
	for p in "${BG_PIDS[@]}"; do kill -9 "$p"; done
	for ns in $NODE $POD $POD2; do
		for p in $(ip netns pids "$ns"); do kill -9 "$p"; done
	done
	for p in "${BG_PIDS[@]}"; do wait "$p"; done
	for ns in $NODE $POD $POD2; do ip netns del "$ns"; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wn ARGS...: run warren-netns; output in OUT, status in RC
OUT='' RC=0
wn() { RC=0; OUT=$("$WN" "$@" 2>&1) || RC=$?; }
# expect RC_WANTED REGEX...: RC matches and OUT matches every (extended)
# regex; else prints RC and OUT (check shows them as diagnostics)
expect() {
	local want=$1 re; shift
	[[ $RC == "$want" ]] || { echo "exit $RC, wanted $want; output:"$'\n'"$OUT"; return 1; }
	for re in "$@"; do
		grep -qE -- "$re" <<<"$OUT" || { echo "no match for $re in:"$'\n'"$OUT"; return 1; }
	done
}

have_tools() { [[ -x $TUN && -x $HCTL && -x $INPODCTL ]]; }

((EUID == 0)) || { echo "not ok - needs root (network namespaces)"; exit 1; }
for c in ip nft ss curl jq nsenter conntrack tcpdump python3 timeout; do
	command -v "$c" >/dev/null || { echo "not ok - missing tool $c (run: bash hack/install-deps.sh)"; exit 1; }
done
# the tunnel and the test tools may still be building: wait a bounded time
wait_for -t 60 have_tools || { echo "not ok - missing $TUN, $HCTL or $INPODCTL (build first: make B=... all)"; exit 1; }

# --- topology ---------------------------------------------------------------
set -e
for ns in $NODE $POD $POD2; do mkpod "$ns"; done
ip -n "$NODE" link add "$VN" type veth peer name "$VP" netns "$POD"
ip -n "$NODE" addr add "$NODE_IP/24" dev "$VN"
ip -n "$POD" addr add "$POD_ADDR/24" dev "$VP"
ip -n "$NODE" link set "$VN" up
ip -n "$POD" link set "$VP" up
ip -n "$POD2" addr add 10.253.9.9/32 dev lo

cat >"$mesh" <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: demo
  labels:
    istio.io/dataplane-mode: ambient
---
apiVersion: v1
kind: Pod
metadata:
  name: app
  namespace: demo
  uid: $uid
spec:
  serviceAccountName: app-sa
  nodeName: node-$id
status:
  phase: Running
  podIP: $POD_ADDR
---
apiVersion: v1
kind: Pod
metadata:
  name: other
  namespace: demo
  uid: $uid2
spec:
  serviceAccountName: other-sa
  nodeName: node-$id
status:
  phase: Running
  podIP: 10.253.9.9
EOF
cat >"$conf" <<EOF
node: node-$id
pluginSocket: $sock
stateDir: $tmp/state
meshPath: $mesh
adminAddress: 127.0.0.1:15000
adminSocket: $adminsock
metricsAddress: 127.0.0.1:15020
readinessAddress: 127.0.0.1:15021
logLevel: debug
logFile: $log
mtls: disabled
EOF
set +e

node_tunnel_start "$conf" "$tmp/tunnel.out"
node_tunnel_ready_or_die "$tmp/tunnel.out" "$log"
ok "setup: warren-tunnel ready in node netns"

listening_all() { [[ $(listeners "$1") == "$LIS" ]]; }
if enroll "$POD" "$uid" demo app "$cid" "$POD_ADDR/24" && enroll "$POD2" "$uid2" demo other "$cid2" 10.253.9.9/32 &&
	wait_for listening_all "$POD" && wait_for listening_all "$POD2"; then
	ok "setup: two pods enrolled (inpodctl apply + handoffctl add), listeners up"
else
	echo "not ok - setup: enrolling the pods failed"
	diag "$(tail -n 20 "$log" 2>&1)"
	exit 1
fi

# --- finding the pod ------------------------------------------------------------
want=/var/run/netns/$POD
wn --socket "$adminsock" demo/app path
check "path by namespace/name (--socket)" expect 0 "^$want\$"
wn --node-netns "$NODE" "$cid" path
check "path by full container id (--node-netns, default admin URL)" expect 0 "^$want\$"
wn --node-netns "$NODE" --admin http://127.0.0.1:15000 "${cid:0:12}" path
check "path by container id prefix (12 chars, --admin URL)" expect 0 "^$want\$"
wn --socket "$adminsock" "$POD_ADDR" path
check "path by pod IP (tunnel lists it as a CIDR)" expect 0 "^$want\$"
wn --socket "$adminsock" "$uid" path
check "path by pod uid" expect 0 "^$want\$"
wn --socket "$adminsock" demo/other path
check "the other pod resolves to its own netns" expect 0 "^/var/run/netns/$POD2\$"

wn --socket "$adminsock" "${cid:0:8}" path
check "ambiguous prefix: exit 2, both container ids listed" expect 2 "ambiguous" "$cid" "$cid2"
wn --socket "$adminsock" "${cid:0:5}" path
check "prefix shorter than 6 chars is not matched: exit 2" expect 2 "no pod"
wn --socket "$adminsock" demo/nope path
check "unknown pod: exit 2, names what and where" expect 2 "no pod with namespace/name 'demo/nope'" "$adminsock"
wn --socket "$adminsock" 10.253.7.7 path
check "unknown IP: exit 2, names the IP" expect 2 "pod IP '10.253.7.7'"
wn --socket "$adminsock" demo/app frobnicate
check "unknown subcommand: usage error (64)" expect 64 "unknown subcommand"

# --- subcommands ----------------------------------------------------------------
wn --socket "$adminsock" demo/app rules
check "rules: both tables, ip rule and table 100 route" expect 0 \
	"^table inet warren-nat" "^table inet warren-mangle" "redirect to :15001" \
	"fwmark 0x111/0xfff lookup 100" "^local default dev lo"

wn --socket "$adminsock" demo/app sockets
check "sockets: 15001/15006/15008 listeners marked L with fwmark 0x539" expect 0 \
	"^L +LISTEN .*:15001 .*fwmark:0x539" "^L +LISTEN .*:15006 " "^L +LISTEN .*:15008 " "missing: none"

wn --socket "$adminsock" demo/app exec ip -o addr
check "exec ip -o addr shows the pod's address" expect 0 "inet $POD_ADDR/24"
wn --socket "$adminsock" demo/app exec sh -c 'exit 7'
check "exec passes the command's exit status through" expect 7

# A relayed connection: pod client -> NODE_IP:PORT is captured on 15001 and
# relayed by the tunnel with a socket marked 0x539. The client holds it open.
bg n "$NODE" socat "TCP-LISTEN:$PORT,bind=$NODE_IP,reuseaddr,fork" SYSTEM:cat
n_listening() { [[ -n $(n "$NODE" ss -Htln "sport = :$PORT") ]]; }
wait_for n_listening
bg n "$POD" python3 -c '
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"hello-relay\n")
print(s.recv(64).decode().strip(), flush=True)
time.sleep(300)  # hold the connection open; killed by cleanup
' "$NODE_IP" "$PORT" >"$tmp/client.out" 2>&1
echoed() { grep -q hello-relay "$tmp/client.out"; }
check "setup: pod client got its echo through the tunnel" wait_for echoed
relayed() { wn --socket "$adminsock" demo/app sockets && expect 0 "^R .*$NODE_IP:$PORT .*fwmark:0x539"; }
check "sockets: the relayed connection is marked R (fwmark 0x539)" wait_for relayed
diag "$OUT"

wn --socket "$adminsock" demo/app conntrack -p tcp --dport "$PORT"
check "conntrack: runs in the pod netns and shows the connection" expect 0 "dport=$PORT"
wn --socket "$adminsock" demo/app conntrack
check "conntrack: runs without filters" expect 0

wn --socket "$adminsock" demo/app status
diag "$OUT"
check "status: pod JSON with uid, listeners, redirect counters" expect 0 \
	"\"uid\": \"$uid\"" "\"containerId\": \"$cid\"" "listener :15001  ok" "\\*warren:nat-out-redirect-v4"
redirect_pkts=$(awk '$3 == "*warren:nat-out-redirect-v4" {print $4}' <<<"$OUT")
check "status: the outbound redirect counter counted our connection" test "${redirect_pkts:-0}" -ge 1

# capture: start tcpdump (bounded), wait until it listens, then send UDP from
# the pod until it has captured one packet and exited.
: >"$tmp/cap.err"
"$WN" --socket "$adminsock" demo/app capture -c 1 udp port "$UPORT" >"$tmp/cap.out" 2>"$tmp/cap.err" &
cap=$!
BG_PIDS+=("$cap")
cap_listening() { grep -q 'listening on' "$tmp/cap.err"; }
cap_done() {
	kill -0 "$cap" 2>/dev/null || return 0
	n "$POD" bash -c "echo probe >/dev/udp/$NODE_IP/$UPORT" 2>/dev/null
	return 1
}
if wait_for cap_listening && wait_for cap_done; then
	wait "$cap"; crc=$?
	OUT=$(cat "$tmp/cap.out" "$tmp/cap.err")
	RC=$crc
	diag "$OUT"
	check "capture -c 1: captured one UDP packet from the pod, then exited" \
		expect 0 "$POD_ADDR\\.[0-9]+ > $NODE_IP\\.$UPORT: UDP" "1 packet captured"
else
	kill "$cap" 2>/dev/null
	not_ok "capture -c 1: tcpdump did not start or capture within 10 s"
	diag "$(cat "$tmp/cap.err")"
fi

wn --help
check "--help exits 0 and documents every subcommand and the fallback" expect 0 \
	"^  path" "^  exec" "^  rules" "^  sockets" "^  conntrack" "^  capture" "^  status" "crictl" "Examples:"
if command -v shellcheck >/dev/null; then
	OUT=$(shellcheck "$WN" 2>&1)
	check "hack/warren-netns is shellcheck-clean" test -z "$OUT"
else
	echo "ok - shellcheck not installed, skipped # SKIP"
fi

# --- tunnel gone ------------------------------------------------------------------
kill -TERM "$tpid"
gone() { ! kill -0 "$tpid" 2>/dev/null; }
wait_for gone
wait "$tpid" 2>/dev/null
tpid=''
wn --socket "$adminsock" demo/app path
check "tunnel stopped: exit 3 over --socket, says it cannot reach it" expect 3 "cannot reach warren-tunnel's admin API"
wn --node-netns "$NODE" demo/app path
check "tunnel stopped: exit 3 over --node-netns" expect 3 "cannot reach" "127.0.0.1:15000"
wn --node-netns "wnn-none-$id" demo/app path
check "missing node netns: exit 3 naming it" expect 3 "wnn-none-$id"

((TAP_FAILED == 0))
