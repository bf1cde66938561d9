#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# In-pod redirection (netlink/inpod.c) against the real kernel, via
# tests/tools/inpodctl. Needs root. Prints TAP lines "ok - x" / "not ok - x".
#
#   netns wpod$$ ("the pod")               netns wpeer$$ ("another pod")
#   lo up; warren rules applied            lo up
#   wva$$: 10.77.0.1/24 fd77::1/64  <--->  wvb$$: 10.77.0.2/24 fd77::2/64
#   vmtap: 10.78.0.1/30             <--->  netns wvm$$ ("a VM in the pod", KubeVirt-style)
#                                          eth0: 10.78.0.2/30, default via 10.78.0.1
#
# Listeners are a small python3 helper that answers each connection with
# "hello-<listening port> orig=<SO_ORIGINAL_DST or none>" and closes. The
# listening port tells whether a connection was redirected; SO_ORIGINAL_DST
# is the conntrack original destination (also set when nothing was NATed).
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${B:-build}
CTL=${WARREN_BUILD:-$PWD/$B}/tests/inpodctl

POD=wpod$$ PEER=wpeer$$ VM=wvm$$ VA=wva$$ VB=wvb$$
NSP=/var/run/netns/$POD
TMP=$(mktemp -d /tmp/test_inpod.XXXXXX)
PIDS=()
failed=0

ok() { echo "ok - $*"; }
nok() { echo "not ok - $*"; failed=1; }
check() { # name, command...
	local name=$1; shift
	if "$@"; then ok "$name"; else nok "$name"; fi
}
starts() { [[ $1 == "$2"* ]]; }
pod() { ip netns exec "$POD" "$@"; }
peer() { ip netns exec "$PEER" "$@"; }
vm() { ip netns exec "$VM" "$@"; }

cleanup() {
	[[ -n ${KEEP_LOGS:-} ]] && cat "$TMP"/*.log
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	for ns in "$POD" "$PEER" "$VM"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

if [[ ! -x $CTL ]]; then
	nok "inpodctl built at $CTL"
	exit 1
fi

cat >"$TMP/h.py" <<'PY'
import os, selectors, socket, struct, sys

def orig(c):
    try:
        if c.family == socket.AF_INET:
            d = c.getsockopt(socket.SOL_IP, 80, 16)          # SO_ORIGINAL_DST
            return "%s:%d" % (socket.inet_ntop(socket.AF_INET, d[4:8]),
                              struct.unpack("!H", d[2:4])[0])
        d = c.getsockopt(socket.IPPROTO_IPV6, 80, 28)       # IP6T_SO_ORIGINAL_DST
        return "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, d[8:24]),
                            struct.unpack("!H", d[2:4])[0])
    except OSError:
        return "none"

if sys.argv[1] == "serve":
    sel = selectors.DefaultSelector()
    for p in map(int, sys.argv[2:]):
        for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if os.environ.get("H_MARK"):  # as the tunnel's in-pod sockets
                s.setsockopt(socket.SOL_SOCKET, 36, int(os.environ["H_MARK"], 0))
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, p))
            s.listen(16)
            sel.register(s, selectors.EVENT_READ, p)
    while True:
        for key, _ in sel.select():
            c, _ = key.fileobj.accept()
            c.sendall(("hello-%d orig=%s\n" % (key.data, orig(c))).encode())
            print("accept %d %s" % (key.data, c.getpeername()[0]), flush=True)
            c.close()
else:  # connect HOST PORT [MARK]
    host, port = sys.argv[2], int(sys.argv[3])
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    if len(sys.argv) > 4:
        s.setsockopt(socket.SOL_SOCKET, 36, int(sys.argv[4], 0))  # SO_MARK
    s.settimeout(5)
    try:
        s.connect((host, port))
        data = b""
        while True:
            b = s.recv(256)
            if not b:
                break
            data += b
        print(data.decode().strip())
    except OSError as e:
        print("error %s" % e)
        sys.exit(1)
PY

# wait_listen NS PORT...: bounded poll until every port listens (v4 and v6).
wait_listen() {
	local ns=$1; shift
	local p i
	for p in "$@"; do
		for ((i = 0; i < 100; i++)); do
			(($(ip netns exec "$ns" ss -Hltn "sport = :$p" | wc -l) >= 2)) && break
			sleep 0.05
		done
		((i < 100)) || return 1
	done
}

# tags_in TABLE: sorted "chain tag" lines of the rules of inet TABLE.
tags_in() {
	pod nft -j list table inet "$1" 2>/dev/null |
		jq -r '.nftables[] | select(.rule) | .rule | "\(.chain) \(.comment // "-")"' | sort
}
nrules() { pod nft -j list ruleset | jq '[.nftables[] | select(.rule)] | length'; }
# counter TAG: packets counted by the rule with that comment.
counter() {
	pod nft -j list ruleset |
		jq -r --arg t "$1" '.nftables[] | select(.rule) | .rule | select(.comment == $t)
			| .expr[] | select(.counter) | .counter.packets'
}
rule_lines() { ip -n "$POD" "$@" rule show | grep -c 'fwmark 0x111/0xfff lookup 100'; }
route_lines() { ip -n "$POD" "$@" route show table 100 | grep -c '^local default dev lo'; }

ip netns add "$POD" && ip netns add "$PEER" || { nok "create netns"; exit 1; }
ip link add "$VA" netns "$POD" type veth peer name "$VB" netns "$PEER"
pod ip link set lo up && pod ip link set "$VA" up
peer ip link set lo up && peer ip link set "$VB" up
pod ip addr add 10.77.0.1/24 dev "$VA" && pod ip addr add fd77::1/64 dev "$VA" nodad
peer ip addr add 10.77.0.2/24 dev "$VB" && peer ip addr add fd77::2/64 dev "$VB" nodad
ip netns add "$VM" || { nok "create netns"; exit 1; }
ip link add vmtap netns "$POD" type veth peer name eth0 netns "$VM"
pod ip link set vmtap up && pod ip addr add 10.78.0.1/30 dev vmtap
vm ip link set lo up && vm ip link set eth0 up && vm ip addr add 10.78.0.2/30 dev eth0
vm ip route add default via 10.78.0.1

# --- the eBPF mode (REDIRECT_MODE=ebpf): the same claims, the kernel's view --------
# What netlink/inpod_ebpf.c programs (docs/ebpf.md): the sk_lookup program
# warren_capture attached to the pod's netns by a pinned link, its listener
# map pinned beside it, three ip rules per family, table 100's local route.
# inpodctl serve stands in for the tunnel (listeners in the map; answers
# with the accepted socket's local address, the original destination).
if [[ ${REDIRECT_MODE:-nftables} == ebpf ]]; then
	BPFFS=$TMP/bpffs KEY=ctr$$
	mkdir -p "$BPFFS" && mount -t bpf bpf "$BPFFS" || { nok "mount a bpffs"; exit 1; }
	trap 'umount "$BPFFS" 2>/dev/null; cleanup' EXIT
	EB="ebpf=$BPFFS,$KEY,10.77.0.1/24,fd77::1/64"
	PIN=$BPFFS/warren/$KEY
	ino=$(stat -L -c %i "$NSP")
	link_id() { # the sk_lookup link on the pod's netns running warren_capture
		bpftool -j link show 2>/dev/null | python3 -c '
import json, subprocess, sys
for l in json.load(sys.stdin):
    if l.get("type") == "netns" and l.get("netns_ino") == int(sys.argv[1]) and l.get("attach_type") == "sk_lookup":
        p = json.loads(subprocess.run(["bpftool", "-j", "prog", "show", "id", str(l["prog_id"])],
                                      capture_output=True, text=True).stdout)
        if p.get("name") == "warren_capture":
            print(l["id"]); sys.exit(0)
sys.exit(1)' "$ino"
	}
	# counter N: SYNs the program counted in slot N (0 outbound, 1 inbound, 2 dropped)
	counter() {
		python3 -c '
import json, subprocess, sys
def bt(*a):
    return json.loads(subprocess.run(["bpftool", "-j", *a], capture_output=True, text=True).stdout)
prog = bt("link", "show", "id", sys.argv[1])["prog_id"]
for m in bt("prog", "show", "id", str(prog)).get("map_ids", []):
    if bt("map", "show", "id", str(m)).get("name") == "warren_cnt":
        for e in bt("map", "dump", "id", str(m)):
            f = e.get("formatted", e)
            if f["key"] == int(sys.argv[2]):
                print(sum(v["value"] for v in f["values"])); sys.exit(0)
sys.exit(1)' "$(link_id)" "$1"
	}
	ebpf_rules() { ip -n "$POD" "$@" rule show | grep -cE '^3276[2-4]:.*(fwmark 0x539/0xfff lookup main|to (169.254.7.127|fd16:9254:7127:1337:ffff:ffff:ffff:ffff) ipproto tcp lookup main|ipproto tcp lookup 100)'; }
	no_conntrack() { [[ -z $(pod conntrack -L -p tcp --orig-port-dst "$1" 2>/dev/null) ]]; }

	check "ebpf: present says no before apply" bash -c "! '$CTL' present '$NSP' $EB >/dev/null"
	check "ebpf: apply" "$CTL" apply "$NSP" "$EB"
	id=$(link_id)
	check "ebpf: bpftool: one sk_lookup link on the pod's netns runs warren_capture (link $id)" test -n "$id"
	check "ebpf: link and listener map pinned under bpfDir/warren/KEY" test -e "$PIN/link" -a -e "$PIN/lis"
	check "ebpf: the pinned map is a 2-slot SOCKMAP" bash -c "bpftool -j map show pinned '$PIN/lis' | jq -e '.type == \"sockmap\" and .max_entries == 2' >/dev/null"
	check "ebpf: three ip rules per family (32762 mark, 32763 probe, 32764 tcp -> 100)" [ "$(ebpf_rules)/$(ebpf_rules -6)" = "3/3" ]
	check "ebpf: route local default dev lo src the pod's address in table 100 (v4, v6)" \
		[ "$(ip -n "$POD" route show table 100 | grep -c '^local default dev lo .*src 10.77.0.1')/$(ip -n "$POD" -6 route show table 100 | grep -c '^local default dev lo')" = "1/1" ]
	check "ebpf: accept_local is on in the pod" [ "$(pod sysctl -n net.ipv4.conf.all.accept_local)" = 1 ]
	check "ebpf: no nftables table in the pod" [ -z "$(pod nft list tables)" ]
	check "ebpf: present says yes" bash -c "'$CTL' present '$NSP' $EB >/dev/null"
	check "ebpf: check passes" "$CTL" check "$NSP" "$EB"
	check "ebpf: apply twice" "$CTL" apply "$NSP" "$EB"
	check "ebpf: apply twice keeps the same link and one rule each" [ "$(link_id)/$(ebpf_rules)/$(ebpf_rules -6)" = "$id/3/3" ]

	ip -n "$POD" rule del pref 32764
	out=$("$CTL" check "$NSP" "$EB" 2>&1); rc=$?
	check "ebpf: check names a deleted ip rule ($out)" bash -c "[ $rc = 1 ] && grep -q 'IPv4 ip rule.*pref 32764.*missing' <<<'$out'"
	check "ebpf: re-apply reconciles" bash -c "'$CTL' apply '$NSP' $EB && '$CTL' check '$NSP' $EB"
	ip -n "$POD" -6 route del local default dev lo table 100
	out=$("$CTL" check "$NSP" "$EB" 2>&1); rc=$?
	check "ebpf: check names a missing IPv6 route ($out)" bash -c "[ $rc = 1 ] && grep -q 'IPv6 route' <<<'$out'"
	"$CTL" apply "$NSP" "$EB" >/dev/null 2>&1
	bpftool link detach id "$(link_id)"
	out=$("$CTL" check "$NSP" "$EB" 2>&1); rc=$?
	check "ebpf: check names a detached program ($out)" bash -c "[ $rc = 1 ] && grep -q 'warren_capture (sk_lookup) is detached' <<<'$out'"
	check "ebpf: present says no with the link detached" bash -c "! '$CTL' present '$NSP' $EB >/dev/null"
	check "ebpf: re-apply attaches a new link" bash -c "'$CTL' apply '$NSP' $EB && '$CTL' check '$NSP' $EB"
	id=$(link_id)

	check "ebpf: remove" "$CTL" remove "$NSP" "$EB"
	check "ebpf: remove left no link on the netns" bash -c "! $(declare -f link_id); ino=$ino; ! link_id"
	check "ebpf: remove left nothing pinned" [ ! -e "$PIN" ]
	check "ebpf: remove left no ip rule and no route in table 100" \
		[ "$(ebpf_rules)+$(ebpf_rules -6)+$(ip -n "$POD" route show table 100; ip -n "$POD" -6 route show table 100)" = "0+0+" ]
	check "ebpf: remove twice succeeds" "$CTL" remove "$NSP" "$EB"
	out=$("$CTL" check "$NSP" "$EB" 2>&1); rc=$?
	check "ebpf: check fails when nothing is there ($out)" bash -c "[ $rc = 1 ] && grep -q 'is not pinned' <<<'$out'"
	out=$("$CTL" apply /var/run/netns/wnone$$ "$EB" 2>&1); rc=$?
	check "ebpf: apply on a missing netns fails cleanly ($out)" bash -c "[ $rc = 1 ] && grep -q 'No such file' <<<'$out'"
	mkdir -p "$TMP/notbpffs"
	out=$("$CTL" apply "$NSP" "ebpf=$TMP/notbpffs,$KEY,10.77.0.1/24" 2>&1); rc=$?
	[[ $rc == 1 && $out == *"no bpffs mounted at $TMP/notbpffs"* ]] && ok "ebpf: apply without a bpffs fails, naming it ($out)" ||
		nok "ebpf: apply without a bpffs fails, naming it ($out)"
	check "  ... and changed nothing in the pod" [ "$(ebpf_rules)/$(ls "$TMP/notbpffs")" = "0/" ]

	# --- real traffic ---
	check "ebpf: apply for traffic tests" "$CTL" apply "$NSP" "$EB"
	"$CTL" serve "$NSP" "$EB" >"$TMP/serve.log" 2>&1 &
	SERVE=$!
	PIDS+=($SERVE)
	# 15008 is the tunnel's too, so marked: an unmarked in-pod socket's
	# replies would be taken local by rule 32764 (docs/ebpf.md)
	pod env H_MARK=0x539 python3 "$TMP/h.py" serve 15008 >"$TMP/pod.log" 2>&1 &
	PIDS+=($!)
	peer python3 "$TMP/h.py" serve 80 8080 9999 >"$TMP/peer.log" 2>&1 &
	PIDS+=($!)
	check "ebpf: listeners up, the stand-in tunnel's in the map" bash -c "$(declare -f wait_listen); wait_listen $POD 15008 && wait_listen $PEER 80 9999 && for i in \$(seq 100); do grep -q serving '$TMP/serve.log' && exit 0; sleep 0.05; done; exit 1"

	c0=$(counter 0)
	out=$(pod python3 "$TMP/h.py" connect 10.77.0.2 80)
	check "ebpf: outbound v4 to 10.77.0.2:80 lands on :15001 with orig dst ($out)" [ "$out" = "hello-15001 orig=10.77.0.2:80" ]
	c1=$(counter 0)
	check "ebpf: the program's outbound counter moved ($c0 -> $c1)" [ "$c1" -gt "$c0" ]
	check "ebpf: no conntrack entry in the pod for the captured connection (no NAT)" no_conntrack 80
	out=$(pod python3 "$TMP/h.py" connect fd77::2 80)
	check "ebpf: outbound v6 to [fd77::2]:80 lands on :15001 with orig dst ($out)" [ "$out" = "hello-15001 orig=[fd77::2]:80" ]
	c1=$(counter 0)
	out=$(pod python3 "$TMP/h.py" connect 10.77.0.2 9999 0x539)
	check "ebpf: outbound with SO_MARK 0x539 is not captured ($out)" starts "$out" "hello-9999 "
	check "  ... and the outbound counter did not move" [ "$(counter 0)" = "$c1" ]
	out=$(pod python3 "$TMP/h.py" connect fd77::2 9999 0x1539)
	check "ebpf: outbound v6 with mark 0x1539 (0x539 under mask 0xfff) is not captured ($out)" starts "$out" "hello-9999 "
	out=$(pod python3 "$TMP/h.py" connect 10.77.0.2 9999)
	check "ebpf: same connection without the mark is captured ($out)" [ "$out" = "hello-15001 orig=10.77.0.2:9999" ]
	out=$(pod python3 "$TMP/h.py" connect 127.0.0.1 15008)
	check "ebpf: outbound to 127.0.0.1 is not captured ($out)" starts "$out" "hello-15008 "
	out=$(pod python3 "$TMP/h.py" connect 10.77.0.1 15008)
	check "ebpf: outbound to the pod's own IP (via lo) is not captured ($out)" starts "$out" "hello-15008 "

	c0=$(counter 1)
	out=$(peer python3 "$TMP/h.py" connect 10.77.0.1 8080)
	check "ebpf: inbound v4 to :8080 lands on :15006 with orig dst ($out)" [ "$out" = "hello-15006 orig=10.77.0.1:8080" ]
	check "ebpf: the program's inbound counter moved" [ "$(counter 1)" -gt "$c0" ]
	check "ebpf: no conntrack entry in the pod for it" no_conntrack 8080
	out=$(peer python3 "$TMP/h.py" connect fd77::1 8080)
	check "ebpf: inbound v6 to :8080 lands on :15006 with orig dst ($out)" [ "$out" = "hello-15006 orig=[fd77::1]:8080" ]
	out=$(peer python3 "$TMP/h.py" connect 10.77.0.1 15008)
	check "ebpf: inbound to :15008 is not captured ($out)" starts "$out" "hello-15008 "
	out=$(peer python3 "$TMP/h.py" connect fd77::1 15008)
	check "ebpf: inbound v6 to :15008 is not captured ($out)" starts "$out" "hello-15008 "
	out=$(vm python3 "$TMP/h.py" connect 10.77.0.2 80)
	check "ebpf: a VM's TCP arriving on vmtap (no reroute in this mode) does not pass uncaptured ($out)" starts "$out" "error"
	check "  ... the peer logged no connection from the VM" bash -c "! grep -q 'accept 80 10.78.0.2' '$TMP/peer.log'"

	# fail closed: the stand-in tunnel gone, the map empties, captured SYNs are dropped
	kill "$SERVE"; wait "$SERVE" 2>/dev/null
	d0=$(counter 2) a0=$(grep -c 'accept 80 10.77.0.1' "$TMP/peer.log")
	out=$(peer python3 "$TMP/h.py" connect 10.77.0.1 8080)
	check "ebpf: no tunnel: inbound :8080 fails, never reaches an app ($out)" starts "$out" "error"
	out=$(pod timeout 8 python3 "$TMP/h.py" connect 10.77.0.2 80)
	check "ebpf: no tunnel: outbound to 10.77.0.2:80 fails (times out), never reaches the peer ($out)" starts "$out" "error"
	check "  ... the peer logged no connection on :80 from the pod" [ "$(grep -c 'accept 80 10.77.0.1' "$TMP/peer.log")" = "$a0" ]
	check "  ... counted as dropped by the program ($d0 -> $(counter 2))" [ "$(counter 2)" -gt "$d0" ]

	check "ebpf: remove after traffic" "$CTL" remove "$NSP" "$EB"
	out=$(pod python3 "$TMP/h.py" connect 10.77.0.2 80)
	check "ebpf: after remove, outbound reaches the real peer ($out)" starts "$out" "hello-80 "
	out=$(peer python3 "$TMP/h.py" connect 10.77.0.1 15008)
	check "ebpf: after remove, inbound reaches the pod's own listener ($out)" starts "$out" "hello-15008 "
	exit $failed
fi

# --- apply / check / remove -------------------------------------------------

expected_nat=$(printf '%s\n' \
	"prerouting warren:nat-pre-probe-accept-v4" "prerouting warren:nat-pre-probe-accept-v6" \
	"prerouting warren:nat-pre-redirect-v4" "prerouting warren:nat-pre-redirect-v6" \
	"output warren:nat-out-probe-accept-v4" "output warren:nat-out-probe-accept-v6" \
	"output warren:nat-out-mark-accept" "output warren:nat-out-lo-accept-v4" \
	"output warren:nat-out-lo-accept-v6" "output warren:nat-out-redirect-v4" \
	"output warren:nat-out-redirect-v6" | sort)
expected_mangle=$(printf '%s\n' "output warren:mangle-out-mark-restore" \
	"prerouting warren:mangle-pre-connmark-set" | sort)

check "present says no before apply" bash -c "! '$CTL' present '$NSP' >/dev/null"
check "apply" "$CTL" apply "$NSP"
check "nat table has exactly the expected tagged rules" [ "$(tags_in warren-nat)" = "$expected_nat" ]
check "mangle table has exactly the expected tagged rules" [ "$(tags_in warren-mangle)" = "$expected_mangle" ]
check "only our two tables exist" [ "$(pod nft -j list tables | jq -r '.nftables[] | select(.table) | "\(.table.family) \(.table.name)"' | sort | tr '\n' ' ')" = "inet warren-mangle inet warren-nat " ]
check "nat chains: type nat, prio -100, hooks prerouting/output" \
	[ "$(pod nft -j list table inet warren-nat | jq -r '.nftables[] | select(.chain) | .chain | "\(.name) \(.type) \(.hook) \(.prio)"' | sort | tr '\n' ' ')" = "output nat output -100 prerouting nat prerouting -100 " ]
check "mangle chains: filter/route, prio -150" \
	[ "$(pod nft -j list table inet warren-mangle | jq -r '.nftables[] | select(.chain) | .chain | "\(.name) \(.type) \(.hook) \(.prio)"' | sort | tr '\n' ' ')" = "output route output -150 prerouting filter prerouting -150 " ]
check "nft text shows the redirects and marks" bash -c "ip netns exec $POD nft list table inet warren-nat | grep -q 'redirect to :15001' && ip netns exec $POD nft list table inet warren-nat | grep -q 'redirect to :15006' && ip netns exec $POD nft list table inet warren-nat | grep -q 'tcp dport != 15008' && ip netns exec $POD nft list table inet warren-mangle | grep -q 'meta mark set ct mark'"
check "ip rule fwmark 0x111/0xfff pref 32764 lookup 100 (v4, once)" [ "$(ip -n "$POD" rule show | grep -c '^32764:.*fwmark 0x111/0xfff lookup 100')" = 1 ]
check "ip -6 rule (once)" [ "$(ip -n "$POD" -6 rule show | grep -c '^32764:.*fwmark 0x111/0xfff lookup 100')" = 1 ]
check "route local default dev lo table 100 (v4)" [ "$(ip -n "$POD" route show table 100 | grep -c '^local default dev lo scope host')" = 1 ]
check "route local default dev lo table 100 (v6)" [ "$(route_lines -6)" = 1 ]
check "table 100 holds nothing else" [ "$(ip -n "$POD" route show table 100 | wc -l)+$(ip -n "$POD" -6 route show table 100 | wc -l)" = "1+1" ]
check "present says yes" bash -c "'$CTL' present '$NSP' >/dev/null"
check "check passes" "$CTL" check "$NSP"

n1=$(nrules)
check "apply twice" "$CTL" apply "$NSP"
check "apply twice is idempotent (same rule count $n1, one ip rule each)" \
	[ "$(nrules)/$(rule_lines)/$(rule_lines -6)/$(route_lines)/$(route_lines -6)" = "$n1/1/1/1/1" ]
check "check passes after re-apply" "$CTL" check "$NSP"

h=$(pod nft -j list chain inet warren-nat output |
	jq -r '.nftables[] | select(.rule) | .rule | select(.comment == "warren:nat-out-redirect-v4") | .handle')
pod nft delete rule inet warren-nat output handle "$h"
out=$("$CTL" check "$NSP" 2>&1); rc=$?
check "check fails after deleting a rule" [ $rc = 1 ]
check "check names the missing rule ($out)" grep -q 'warren:nat-out-redirect-v4 missing from inet warren-nat chain output' <<<"$out"
check "re-apply reconciles" bash -c "'$CTL' apply '$NSP' && '$CTL' check '$NSP'"
check "re-apply restored the same rule count" [ "$(nrules)" = "$n1" ]

ip -n "$POD" -6 route del local default dev lo table 100
out=$("$CTL" check "$NSP" 2>&1); rc=$?
check "check names a missing IPv6 route ($out)" bash -c "[ $rc = 1 ] && grep -q 'IPv6 route' <<<'$out'"
"$CTL" apply "$NSP" >/dev/null 2>&1

# outbound only (bypass-inbound-capture): a re-apply switches the rule set
expected_nat_out=$(grep -v '^prerouting ' <<<"$expected_nat")
check "apply outbound-only over the full set" "$CTL" apply "$NSP" outbound
check "  ... nat has the full set minus prerouting's four rules" [ "$(tags_in warren-nat)" = "$expected_nat_out" ]
check "  ... mangle is unchanged" [ "$(tags_in warren-mangle)" = "$expected_mangle" ]
check "  ... one ip rule and route per family still" [ "$(rule_lines)/$(rule_lines -6)/$(route_lines)/$(route_lines -6)" = "1/1/1/1" ]
check "check outbound passes" "$CTL" check "$NSP" outbound
out=$("$CTL" check "$NSP" 2>&1); rc=$?
check "full check fails on the outbound-only set ($out)" bash -c "[ $rc = 1 ] && grep -q 'warren:nat-pre-probe-accept-v4 missing' <<<'$out'"
"$CTL" apply "$NSP" >/dev/null 2>&1
out=$("$CTL" check "$NSP" outbound 2>&1); rc=$?
check "outbound check fails on the full set, naming an inbound rule ($out)" \
	bash -c "[ $rc = 1 ] && grep -q 'warren:nat-pre-probe-accept-v4 is in inet warren-nat chain prerouting, but the pod was enrolled with inbound capture bypassed' <<<'$out'"
check "full re-apply restored the full set" [ "$(tags_in warren-nat)" = "$expected_nat" ]

# virtual interfaces (reroute-virtual-interfaces): a rule each, first
check "apply with reroute=vmtap,vnet7" "$CTL" apply "$NSP" reroute=vmtap,vnet7
check "  ... the two reroutes come first in nat prerouting" \
	[ "$(pod nft -j list chain inet warren-nat prerouting | jq -r '[.nftables[] | select(.rule) | .rule.comment][0:3] | join(" ")')" = \
		"warren:nat-pre-reroute-vmtap warren:nat-pre-reroute-vnet7 warren:nat-pre-probe-accept-v4" ]
check "  ... and match the interface, then redirect to :15001" \
	bash -c "ip netns exec $POD nft list chain inet warren-nat prerouting | grep -q 'iifname \"vmtap\" meta l4proto tcp counter packets 0 bytes 0 redirect to :15001'"
check "check with the same list passes" "$CTL" check "$NSP" reroute=vnet7,vmtap
out=$("$CTL" check "$NSP" reroute=vmtap 2>&1); rc=$?
check "check without vnet7 names the extra reroute ($out)" \
	bash -c "[ $rc = 1 ] && grep -q 'warren:nat-pre-reroute-vnet7 is in inet warren-nat chain prerouting, but the pod was enrolled without rerouting' <<<'$out'"
out=$("$CTL" check "$NSP" reroute=vmtap,vnet7,eth1 2>&1); rc=$?
check "check with eth1 names the missing reroute ($out)" \
	bash -c "[ $rc = 1 ] && grep -q 'warren:nat-pre-reroute-eth1 missing from inet warren-nat chain prerouting' <<<'$out'"
out=$("$CTL" apply "$NSP" 'reroute=vm/tap' 2>&1); rc=$?
check "a bad interface name is refused before anything is sent ($out)" bash -c "[ $rc = 1 ] && grep -q 'not a network interface name' <<<'$out'"
check "  ... and the rules stay as they were" "$CTL" check "$NSP" reroute=vmtap,vnet7
check "full re-apply drops the reroutes" bash -c "'$CTL' apply '$NSP' && [ \"\$(tags_in warren-nat)\" = \"\$expected_nat\" ]"

check "remove" "$CTL" remove "$NSP"
check "remove left no table" [ "$(pod nft -j list ruleset | jq '[.nftables[] | select(.table)] | length')" = 0 ]
check "remove left no ip rule" [ "$(rule_lines)+$(rule_lines -6)" = "0+0" ]
check "remove left no route in table 100" [ -z "$(ip -n "$POD" route show table 100; ip -n "$POD" -6 route show table 100)" ]
check "remove twice succeeds" "$CTL" remove "$NSP"
check "present says no after remove" bash -c "! '$CTL' present '$NSP' >/dev/null"
out=$("$CTL" check "$NSP" 2>&1); rc=$?
check "check fails when nothing is there ($out)" bash -c "[ $rc = 1 ] && grep -q 'table inet warren-nat missing' <<<'$out'"
out=$("$CTL" apply /var/run/netns/wnone$$ 2>&1); rc=$?
check "apply on a missing netns fails cleanly ($out)" bash -c "[ $rc = 1 ] && grep -q 'No such file' <<<'$out'"
out=$("$CTL" apply "$TMP/h.py" 2>&1); rc=$?
check "apply on a non-netns path fails cleanly ($out)" bash -c "[ $rc = 1 ] && grep -q 'Invalid argument' <<<'$out'"

# all-or-nothing: a conflicting chain makes the batch fail; nothing is left
pod nft add table inet warren-nat
pod nft add chain inet warren-nat prerouting '{ type filter hook input priority 0; }'
out=$("$CTL" apply "$NSP" 2>&1); rc=$?
check "apply fails on a conflicting chain and names it ($out)" bash -c "[ $rc = 1 ] && grep -q 'add chain inet warren-nat prerouting' <<<'$out'"
check "  ... and added nothing (no mangle table, no rule, no route)" \
	[ "$(pod nft -j list tables | jq '[.nftables[] | select(.table.name == "warren-mangle")] | length')/$(rule_lines)/$(route_lines)" = "0/0/0" ]
pod nft delete table inet warren-nat

# --- real traffic ---------------------------------------------------------------

check "apply for traffic tests" "$CTL" apply "$NSP"
pod python3 "$TMP/h.py" serve 15001 15006 15008 >"$TMP/pod.log" 2>&1 &
PIDS+=($!)
peer python3 "$TMP/h.py" serve 80 9999 >"$TMP/peer.log" 2>&1 &
PIDS+=($!)
check "listeners up" bash -c "$(declare -f wait_listen); wait_listen $POD 15001 15006 15008 && wait_listen $PEER 80 9999"

c0=$(counter warren:nat-out-redirect-v4)
out=$(pod python3 "$TMP/h.py" connect 10.77.0.2 80)
check "outbound v4 to 10.77.0.2:80 lands on :15001 with orig dst ($out)" [ "$out" = "hello-15001 orig=10.77.0.2:80" ]
c1=$(counter warren:nat-out-redirect-v4)
check "nat-out-redirect-v4 counter moved ($c0 -> $c1)" [ "$c1" -gt "$c0" ]
out=$(pod python3 "$TMP/h.py" connect fd77::2 80)
check "outbound v6 to [fd77::2]:80 lands on :15001 with orig dst ($out)" [ "$out" = "hello-15001 orig=[fd77::2]:80" ]
check "nat-out-redirect-v6 counter moved" [ "$(counter warren:nat-out-redirect-v6)" -gt 0 ]

out=$(pod python3 "$TMP/h.py" connect 10.77.0.2 9999 0x539)
check "outbound with SO_MARK 0x539 is not redirected ($out)" starts "$out" "hello-9999 "
check "  ... and the redirect counter did not move" [ "$(counter warren:nat-out-redirect-v4)" = "$c1" ]
out=$(pod python3 "$TMP/h.py" connect fd77::2 9999 0x1539)
check "outbound v6 with mark 0x1539 (0x539 under mask 0xfff) is not redirected ($out)" starts "$out" "hello-9999 "
out=$(pod python3 "$TMP/h.py" connect 10.77.0.2 9999)
check "same connection without the mark is redirected ($out)" [ "$out" = "hello-15001 orig=10.77.0.2:9999" ]
out=$(pod python3 "$TMP/h.py" connect 127.0.0.1 15008)
check "outbound to 127.0.0.1 is not redirected ($out)" starts "$out" "hello-15008 "
out=$(pod python3 "$TMP/h.py" connect 10.77.0.1 15008)
check "outbound to the pod's own IP (via lo) is not redirected ($out)" starts "$out" "hello-15008 "

out=$(peer python3 "$TMP/h.py" connect 10.77.0.1 8080)
check "inbound v4 to :8080 lands on :15006 with orig dst ($out)" [ "$out" = "hello-15006 orig=10.77.0.1:8080" ]
check "nat-pre-redirect-v4 counter moved" [ "$(counter warren:nat-pre-redirect-v4)" -gt 0 ]
out=$(peer python3 "$TMP/h.py" connect fd77::1 8080)
check "inbound v6 to :8080 lands on :15006 with orig dst ($out)" [ "$out" = "hello-15006 orig=[fd77::1]:8080" ]
out=$(peer python3 "$TMP/h.py" connect 10.77.0.1 15008)
check "inbound to :15008 is not redirected ($out)" starts "$out" "hello-15008 "
out=$(peer python3 "$TMP/h.py" connect fd77::1 15008)
check "inbound v6 to :15008 is not redirected ($out)" starts "$out" "hello-15008 "

out=$(vm python3 "$TMP/h.py" connect 10.77.0.2 80)
check "without reroute, the VM's TCP (arriving on vmtap) is taken as inbound: :15006 ($out)" starts "$out" "hello-15006 "
check "apply with reroute=vmtap for traffic" "$CTL" apply "$NSP" reroute=vmtap
c0=$(counter warren:nat-pre-reroute-vmtap)
out=$(vm python3 "$TMP/h.py" connect 10.77.0.2 80)
check "with reroute, the VM's TCP to 10.77.0.2:80 lands on :15001 with orig dst ($out)" [ "$out" = "hello-15001 orig=10.77.0.2:80" ]
check "  ... counted by warren:nat-pre-reroute-vmtap ($c0 -> $(counter warren:nat-pre-reroute-vmtap))" [ "$(counter warren:nat-pre-reroute-vmtap)" -gt "$c0" ]
out=$(peer python3 "$TMP/h.py" connect 10.77.0.1 8080)
check "  ... while inbound on the pod's own interface still lands on :15006 ($out)" [ "$out" = "hello-15006 orig=10.77.0.1:8080" ]

check "remove after traffic" "$CTL" remove "$NSP"
out=$(peer python3 "$TMP/h.py" connect 10.77.0.1 8080)
check "after remove, inbound :8080 is no longer redirected ($out)" [ "$out" != "hello-15006 orig=10.77.0.1:8080" ]
out=$(pod python3 "$TMP/h.py" connect 10.77.0.2 80)
check "after remove, outbound reaches the real peer ($out)" starts "$out" "hello-80 "

exit $failed
