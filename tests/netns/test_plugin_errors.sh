#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# warren-cni run directly (env + stdin, no runtime) for its error and edge
# cases: VERSION, malformed input, versions, env, pass-through for every
# cniVersion, excluded namespaces, tunnel down (ADD 11, DEL ok, STATUS 50,
# GC 11), DEL edge cases. Then a scripted fake warren-tunnel (python3,
# SOCK_SEQPACKET + SCM_RIGHTS) drives the enrolled paths: fail-closed ADD
# (refused / connection dropped -> no warren table left), successful ADD,
# CHECK, DEL. Needs root. TAP lines "ok - x" / "not ok - x".
#
#   host netns: warren-cni, fake tunnel on $T/tunnel.sock
#   netns wpe-$$ ("the pod", lo up): where warren-cni programs nftables
#   /run/netns/wpe-gone-$$: created then deleted (vanished netns path)
set -uo pipefail
cd "$(dirname "$0")/../.."
P=${WARREN_BUILD:-$PWD/${B:-build}}/warren-cni
NS=wpe-$$
GONE=wpe-gone-$$
T=$(mktemp -d /tmp/test_plugin_errors.XXXXXX)
SOCK=$T/tunnel.sock
FAKE_PID=
failed=0

ok() { echo "ok - $*"; }
nok() { echo "not ok - $*"; failed=1; }
diag() { sed 's/^/# /' "$@"; }

cleanup() {
	set +e
	[[ -n $FAKE_PID ]] && { kill "$FAKE_PID" 2>/dev/null; wait "$FAKE_PID" 2>/dev/null; }
	ip netns del "$NS" 2>/dev/null
	ip netns del "$GONE" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

((EUID == 0)) || { echo "not ok - needs root"; exit 1; }
for c in jq ip nft python3; do
	command -v $c >/dev/null || { echo "not ok - missing tool $c"; exit 1; }
done
[[ -x $P ]] || { echo "not ok - no plugin binary at $P (run make)"; exit 1; }
ip netns add "$NS" || { echo "not ok - ip netns add"; exit 1; }
ip -n "$NS" link set lo up
NSPATH=/run/netns/$NS

# run CMD STDIN [K=V | -K]... : runs the plugin with a clean CNI env
# (CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH preset; K=V overrides,
# -K removes), stdout in $T/out, stderr in $T/err, status in $rc.
run() {
	local cmd=$1 stdin=$2 e i; shift 2
	local env=(CNI_COMMAND="$cmd" CNI_CONTAINERID="cid$$" CNI_NETNS="$NSPATH" CNI_IFNAME=eth0
		CNI_PATH=/usr/lib/cni)
	for e in "$@"; do
		for i in "${!env[@]}"; do
			[[ ${env[$i]%%=*} == "${e#-}" || ${env[$i]%%=*} == "${e%%=*}" ]] && unset "env[$i]"
		done
		[[ $e == -* ]] || env+=("$e")
	done
	printf '%s' "$stdin" | env -u CNI_COMMAND -u CNI_CONTAINERID -u CNI_NETNS -u CNI_IFNAME \
		-u CNI_ARGS -u CNI_PATH "${env[@]}" "$P" >"$T/out" 2>"$T/err"
	rc=$?
}

# stdout is exactly one line holding one JSON object
one_json() { [[ $(wc -l <"$T/out") == 1 ]] && jq -e 'type == "object"' "$T/out" >/dev/null 2>&1; }
# error: non-zero exit, one JSON object with numeric code CODE, string msg
# and details, and cniVersion; [WORD] must appear in msg or details.
is_error() { # CODE [WORD]
	((rc != 0)) && one_json &&
		jq -e --argjson c "$1" '.code == $c and (.msg|type) == "string" and (.msg|length) > 0
			and (.details|type) == "string" and (.cniVersion|type) == "string"' "$T/out" >/dev/null &&
		{ [[ -z ${2:-} ]] || jq -r '.msg + " " + .details' "$T/out" | grep -F -- "$2" >/dev/null; }
}
expect_error() { # NAME CODE [WORD]
	if is_error "$2" "${3:-}"; then ok "$1"; else
		nok "$1"; echo "# rc=$rc stdout:"; diag "$T/out"; echo "# stderr:"; diag "$T/err"
	fi
}
expect_ok_empty() { # NAME: success and nothing on stdout
	if ((rc == 0)) && [[ ! -s $T/out ]]; then ok "$1"; else
		nok "$1"; echo "# rc=$rc stdout:"; diag "$T/out"; echo "# stderr:"; diag "$T/err"
	fi
}
# success, and stdout equals the JSON in file EXPECTED (key order ignored)
expect_result() { # NAME EXPECTED
	if ((rc == 0)) && one_json && [[ $(jq -S . "$T/out") == "$(jq -S . "$2")" ]]; then ok "$1"; else
		nok "$1"; echo "# rc=$rc stdout:"; diag "$T/out"; echo "# expected:"; diag "$2"
		echo "# stderr:"; diag "$T/err"
	fi
}
no_warren_tables() { ! ip netns exec "$NS" nft list tables 2>/dev/null | grep warren >/dev/null; }

conf() { # VERSION [extra json keys, starting with a comma]
	printf '{"cniVersion":"%s","name":"k8s-pod-network","type":"warren-cni","tunnelSocket":"%s"%s}' \
		"$1" "$SOCK" "${2:-}"
}
# A bridge + host-local result in VERSION's format.
prev_result() { # VERSION
	local v=$1
	jq -cn --arg v "$v" '
	  {cniVersion: $v, dns: {},
	   interfaces: [{name: "cni0", mac: "2a:1b:3c:4d:5e:6f"},
	                {name: "veth1a2b3c4d", mac: "9e:8d:7c:6b:5a:49"},
	                {name: "eth0", mac: "02:42:0a:f4:00:05", sandbox: "/var/run/netns/cni-1"}],
	   ips: [{interface: 2, address: "10.244.0.5/24", gateway: "10.244.0.1"},
	         {interface: 2, address: "fd00:10:244::5/64", gateway: "fd00:10:244::1"}],
	   routes: [{dst: "0.0.0.0/0", gw: "10.244.0.1"}],
	   "x-extra": [1, "two"]}
	  | if ($v | startswith("0.")) then .ips |= map(. + {version: (if (.address | contains(":")) then "6" else "4" end)}) else . end
	  | if $v == "1.1.0" then .interfaces[2].mtu = 1450 else . end'
}
K8S="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1;K8S_POD_UID=uid-$$;K8S_POD_INFRA_CONTAINER_ID=cid$$"

# --- VERSION and generic errors --------------------------------------------

run VERSION '{"cniVersion":"1.0.0"}' -CNI_CONTAINERID -CNI_NETNS -CNI_IFNAME
if ((rc == 0)) && one_json && jq -e '.cniVersion == "1.0.0" and
	.supportedVersions == ["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]' "$T/out" >/dev/null; then
	ok "VERSION echoes cniVersion and lists the supported versions"
else nok "VERSION echoes cniVersion and lists the supported versions"; diag "$T/out"; fi
# libcni's probe: dummy env, empty CNI_ARGS and CNI_CONTAINERID
run VERSION '' CNI_NETNS=dummy CNI_IFNAME=dummy CNI_PATH=dummy CNI_CONTAINERID= CNI_ARGS=
if ((rc == 0)) && one_json && jq -e '.cniVersion == "1.1.0"' "$T/out" >/dev/null; then
	ok "VERSION with empty stdin answers 1.1.0"
else nok "VERSION with empty stdin answers 1.1.0"; diag "$T/out"; fi

run ADD '{"cniVersion":"1.0.0", "name":' CNI_ARGS="$K8S"
expect_error "malformed JSON -> code 6" 6
run ADD '[1,2]'
expect_error "non-object config -> code 6" 6
run ADD "$(conf 0.2.0)"
expect_error "unsupported cniVersion 0.2.0 -> code 1" 1 '"1.1.0"'
run ADD "$(conf 2.0.0)"
expect_error "unsupported cniVersion 2.0.0 -> code 1" 1 "incompatible CNI versions"
run ADD "$(conf 1.0.0)" -CNI_COMMAND
expect_error "missing CNI_COMMAND -> code 4 naming it" 4 CNI_COMMAND
run FROB "$(conf 1.0.0)"
expect_error "unknown CNI_COMMAND -> code 4 naming it" 4 FROB
run ADD "$(conf 1.0.0)" -CNI_NETNS
expect_error "ADD without CNI_NETNS -> code 4 naming it" 4 CNI_NETNS
run ADD "$(conf 1.0.0)" -CNI_IFNAME -CNI_CONTAINERID
expect_error "ADD without CNI_IFNAME and CNI_CONTAINERID -> code 4 naming both" 4 "CNI_CONTAINERID,CNI_IFNAME"
run ADD "$(conf 1.0.0)" CNI_IFNAME=this-name-is-too-long
expect_error "ADD with a 21-character CNI_IFNAME -> code 4" 4 CNI_IFNAME
run ADD "$(conf 1.0.0 ',"timeoutMs":"fast"')"
expect_error "timeoutMs of the wrong type -> code 7 naming it" 7 timeoutMs
run ADD "$(conf 1.0.0 ',"excludeNamespaces":"kube-system"')"
expect_error "excludeNamespaces of the wrong type -> code 7 naming it" 7 excludeNamespaces
run ADD "$(conf 1.0.0 ',"tunnelSocket":42')"
expect_error "tunnelSocket of the wrong type -> code 7 naming it" 7 tunnelSocket
run ADD "$(conf 1.0.0 ',"redirect":"bogus"')"
expect_error "redirect bogus -> code 7 naming the key" 7 redirect
run ADD "$(conf 1.0.0)" CNI_ARGS="K8S_POD_NAMESPACE=default;oops"
expect_error "malformed CNI_ARGS -> code 4 naming it" 4 CNI_ARGS
run ADD "$(conf 1.0.0)" CNI_NETNS=/run/netns/does-not-exist-$$ CNI_ARGS="$K8S"
expect_error "error JSON carries the config's cniVersion" 11
jq -e '.cniVersion == "1.0.0"' "$T/out" >/dev/null && ok "error cniVersion is 1.0.0" || nok "error cniVersion is 1.0.0"

# --- pass-through ---------------------------------------------------------

for v in 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0; do
	prev_result "$v" >"$T/expected"
	run ADD "$(conf "$v" ",\"capabilities\":{\"portMappings\":true},\"runtimeConfig\":{\"portMappings\":[]},\"args\":{},\"prevResult\":$(cat "$T/expected")")"
	expect_result "ADD without K8S args passes prevResult through unchanged ($v)" "$T/expected"
done
# prevResult without cniVersion and in the 1.0.0 format, config 0.4.0:
# re-encoded with cniVersion 0.4.0 and ips[].version synthesised
prev_result 1.0.0 | jq -c 'del(.cniVersion)' >"$T/prev"
prev_result 0.4.0 >"$T/expected"
run ADD "$(conf 0.4.0 ",\"prevResult\":$(cat "$T/prev")")"
expect_result "unversioned 1.0.0-format prevResult is re-encoded for 0.4.0" "$T/expected"
# 1.1.0 result down to 1.0.0: interface mtu dropped
prev_result 1.1.0 | jq -c '.cniVersion = "1.0.0" | del(.interfaces[2].mtu)' >"$T/expected"
run ADD "$(conf 1.0.0 ",\"prevResult\":$(prev_result 1.1.0)")"
expect_result "1.1.0 prevResult in a 1.0.0 config loses interfaces[].mtu" "$T/expected"
run ADD "$(conf 1.0.0)"
echo '{"cniVersion":"1.0.0"}' >"$T/expected"
expect_result "ADD without prevResult prints {cniVersion}" "$T/expected"

# excluded namespaces never reach the tunnel (there is none at $SOCK yet)
prev_result 1.0.0 >"$T/expected"
run ADD "$(conf 1.0.0 ",\"prevResult\":$(cat "$T/expected")")" \
	CNI_ARGS="K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-1"
expect_result "ADD in kube-system (default exclusion) passes through without a tunnel" "$T/expected"
run ADD "$(conf 1.0.0 ",\"excludeNamespaces\":[\"infra\"],\"prevResult\":$(cat "$T/expected")")" \
	CNI_ARGS="K8S_POD_NAMESPACE=infra;K8S_POD_NAME=x"
expect_result "ADD in a configured excluded namespace passes through without a tunnel" "$T/expected"
run ADD "$(conf 1.0.0 ",\"prevResult\":$(cat "$T/expected")")" CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=podman-ctr"
expect_result "ADD with only K8S_POD_NAME (podman) passes through" "$T/expected"

# --- tunnel down ---------------------------------------------------------

run ADD "$(conf 1.0.0 ",\"prevResult\":$(cat "$T/expected")")" CNI_ARGS="$K8S"
expect_error "ADD of a K8s pod with no tunnel -> code 11 naming the socket" 11 "$SOCK"
grep -qF "check that warren-tunnel runs" "$T/out" && ok "the message says to check that warren-tunnel runs" ||
	nok "the message says to check that warren-tunnel runs"
no_warren_tables && ok "no warren nft table in the netns after the failed ADD" ||
	nok "no warren nft table in the netns after the failed ADD"
run STATUS "$(conf 1.1.0)" -CNI_CONTAINERID -CNI_NETNS -CNI_IFNAME
expect_error "STATUS with no tunnel -> code 50" 50 "$SOCK"
run GC "$(conf 1.1.0 ',"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]')" \
	-CNI_CONTAINERID -CNI_NETNS -CNI_IFNAME
expect_error "GC with no tunnel -> code 11" 11
run GC "$(conf 1.1.0)" -CNI_CONTAINERID -CNI_NETNS -CNI_IFNAME
expect_error "GC without valid attachments -> code 7" 7 "cni.dev/valid-attachments"
run CHECK "$(conf 1.0.0)" CNI_ARGS="$K8S"
expect_error "CHECK without prevResult -> code 7" 7 prevResult
run CHECK "$(conf 0.3.1 ",\"prevResult\":$(prev_result 0.3.1)")" CNI_ARGS="$K8S"
expect_error "CHECK with cniVersion 0.3.1 -> code 1" 1 "CHECK"
run CHECK "$(conf 1.0.0 ",\"prevResult\":$(prev_result 1.0.0)")"
expect_ok_empty "CHECK of a non-K8s container succeeds"
run CHECK "$(conf 1.0.0 ",\"prevResult\":$(prev_result 1.0.0)")" CNI_ARGS="$K8S"
expect_error "CHECK of a K8s pod with no tunnel -> code 11" 11

# --- DEL edge cases (tunnel down throughout) ------------------------------

run DEL "$(conf 1.0.0 ",\"prevResult\":$(prev_result 1.0.0)")" CNI_ARGS="$K8S"
expect_ok_empty "DEL of a pod never added, tunnel down"
run DEL "$(conf 1.0.0 ",\"prevResult\":$(prev_result 1.0.0)")" CNI_ARGS="$K8S"
expect_ok_empty "DEL again (twice)"
run DEL "$(conf 1.0.0)" CNI_ARGS="$K8S"
expect_ok_empty "DEL without prevResult"
run DEL "$(conf 0.3.0)" CNI_ARGS="$K8S" CNI_NETNS=
expect_ok_empty "DEL with empty CNI_NETNS"
run DEL "$(conf 1.0.0)" CNI_ARGS="$K8S" -CNI_NETNS
expect_ok_empty "DEL without CNI_NETNS"
ip netns add "$GONE" && ip netns del "$GONE"
run DEL "$(conf 1.0.0)" CNI_ARGS="$K8S" CNI_NETNS=/run/netns/$GONE
expect_ok_empty "DEL with a vanished netns path"
run DEL "$(conf 1.0.0)" CNI_ARGS="$K8S" CNI_NETNS=$T
expect_ok_empty "DEL with a CNI_NETNS that is not a netns"
run DEL "$(conf 1.0.0)" CNI_ARGS="garbage"
expect_ok_empty "DEL with malformed CNI_ARGS"
run DEL "$(conf 1.0.0)" CNI_ARGS="$K8S" CNI_NETNS=/proc/self/ns/net
expect_ok_empty "DEL with the host netns as CNI_NETNS (left untouched)"
run DEL "$(conf 1.0.0 ',"timeoutMs":"x"')" CNI_ARGS="$K8S"
expect_error "DEL with an invalid config still reports code 7" 7 timeoutMs
ip netns exec "$NS" nft add table inet warren-nat
run DEL "$(conf 1.0.0)" CNI_ARGS="$K8S"
((rc == 0)) && no_warren_tables && ok "DEL removes a leftover inet warren-nat table" ||
	{ nok "DEL removes a leftover inet warren-nat table"; diag "$T/err"; }

# logs: never on stdout, into logFile when configured
run ADD "$(conf 1.0.0 ",\"logFile\":\"$T/cni.log\",\"logLevel\":\"debug\"")" CNI_ARGS="$K8S"
if one_json && [[ -s $T/cni.log ]] && grep -q "warren-tunnel" "$T/cni.log"; then
	ok "logs go to logFile and stderr, stdout holds only the error JSON"
else nok "logs go to logFile and stderr, stdout holds only the error JSON"; diag "$T/out"; fi

# --- scripted fake tunnel --------------------------------------------------

cat >"$T/fake_tunnel.py" <<'EOF'
# Answers each request with the reply scripted for its op in SCRIPT (a JSON
# object op -> reply, or op -> "drop" to close without answering) and
# appends {req, nfds, fd_ino} to LOG before answering.
import json, os, socket, sys
path, script, log = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(path)
s.listen(16)
while True:
    c, _ = s.accept()
    with c:
        msg, fds, _, _ = socket.recv_fds(c, 65536, 4)
        ino = None
        for fd in fds:
            ino = os.fstat(fd).st_ino
            os.close(fd)
        req = json.loads(msg)
        with open(script) as f:
            reply = json.load(f).get(req.get("op"), {"ok": False, "error": "nothing scripted"})
        with open(log, "a") as f:
            f.write(json.dumps({"req": req, "nfds": len(fds), "fd_ino": ino}) + "\n")
        if reply == "drop":
            continue
        reply["v"] = 1
        c.send(json.dumps(reply).encode())
EOF
script() { echo "$1" >"$T/script.json"; : >"$T/reqs.log"; }
script '{}'
python3 "$T/fake_tunnel.py" "$SOCK" "$T/script.json" "$T/reqs.log" 2>"$T/fake.err" &
FAKE_PID=$!
for _ in $(seq 100); do [[ -S $SOCK ]] && break; sleep 0.05; done # poll, bounded (5 s)
[[ -S $SOCK ]] || { nok "fake tunnel listening"; diag "$T/fake.err"; exit 1; }
last_req() { tail -n 1 "$T/reqs.log"; }
NSINO=$(stat -L -c %i "$NSPATH")
prev_result 1.0.0 >"$T/expected"
ADDCONF=$(conf 1.0.0 ",\"prevResult\":$(cat "$T/expected")")

script '{"query":{"ok":true,"enroll":false,"reason":"namespace not labelled"}}'
run ADD "$ADDCONF" CNI_ARGS="$K8S"
expect_result "not enrolled: ADD passes through" "$T/expected"
if [[ $(wc -l <"$T/reqs.log") == 1 ]] && last_req | jq -e '.req.op == "query" and .req.namespace == "default"
	and .req.name == "web-1" and .req.uid == "uid-'$$'" and .nfds == 0' >/dev/null; then
	ok "query carries namespace, name and uid, no fd, and nothing else is sent"
else nok "query carries namespace, name and uid, no fd, and nothing else is sent"; diag "$T/reqs.log"; fi
no_warren_tables && ok "not enrolled: no warren table" || nok "not enrolled: no warren table"

script '{"query":{"ok":false,"error":"pod default/web-1 not found"}}'
run ADD "$ADDCONF" CNI_ARGS="$K8S"
expect_error "query refused -> code 100 with the tunnel's reason" 100 "pod default/web-1 not found"

script '{"query":{"ok":true,"enroll":true},"add":{"ok":false,"error":"cannot listen on 15001: boom"}}'
run ADD "$ADDCONF" CNI_ARGS="$K8S"
expect_error "add refused -> code 100 with the tunnel's error in details" 100 "cannot listen on 15001: boom"
if last_req | jq -e --argjson ino "$NSINO" --arg ns "$NSPATH" '.req.op == "add" and .nfds == 1 and .fd_ino == $ino
	and .req.netns == $ns and .req.containerId == "cid'$$'" and .req.ifname == "eth0" and .req.uid == "uid-'$$'"
	and .req.ips == ["10.244.0.5/24", "fd00:10:244::5/64"]' >/dev/null; then
	ok "add carries the netns fd (same inode as CNI_NETNS) and the pod's fields and IPs"
else nok "add carries the netns fd (same inode as CNI_NETNS) and the pod's fields and IPs"; diag "$T/reqs.log"; fi
no_warren_tables && ok "fail closed: no warren table after a refused add" ||
	nok "fail closed: no warren table after a refused add"

script '{"query":{"ok":true,"enroll":true},"add":"drop"}'
run ADD "$ADDCONF" CNI_ARGS="$K8S"
expect_error "tunnel drops the add without answering -> code 11" 11
no_warren_tables && ok "fail closed: no warren table after a dropped add" ||
	nok "fail closed: no warren table after a dropped add"

script '{"query":{"ok":true,"enroll":"yes"}}'
run ADD "$ADDCONF" CNI_ARGS="$K8S"
expect_error "malformed query answer -> code 101" 101

script '{"query":{"ok":true,"enroll":true},"add":{"ok":true}}'
run ADD "$ADDCONF" CNI_ARGS="$K8S" CNI_NETNS=/run/netns/$GONE
expect_error "enrolled ADD with a CNI_NETNS that does not exist -> code 4 naming it" 4 CNI_NETNS
[[ $(jq -r .req.op "$T/reqs.log" | tr '\n' ' ') == "query " ]] && ok "no add is sent without a netns" ||
	{ nok "no add is sent without a netns"; diag "$T/reqs.log"; }
run ADD "$ADDCONF" CNI_ARGS="$K8S" CNI_NETNS=/proc/self/ns/net
expect_error "enrolled ADD with the host netns as CNI_NETNS -> code 4" 4 "own network namespace"

script '{"query":{"ok":true,"enroll":true},"add":{"ok":true},"check":{"ok":true,"known":true},"del":{"ok":true,"known":true}}'
run ADD "$ADDCONF" CNI_ARGS="$K8S"
expect_result "enrolled ADD succeeds and passes prevResult through" "$T/expected"
ip netns exec "$NS" nft list table inet warren-nat >/dev/null 2>&1 &&
	ok "enrolled ADD leaves inet warren-nat in the pod netns" ||
	{ nok "enrolled ADD leaves inet warren-nat in the pod netns"; diag "$T/err"; }
run CHECK "$ADDCONF" CNI_ARGS="$K8S"
expect_ok_empty "CHECK of the enrolled pod succeeds"
script '{"query":{"ok":true,"enroll":true},"check":{"ok":true,"known":false}}'
run CHECK "$ADDCONF" CNI_ARGS="$K8S"
expect_error "CHECK when the tunnel does not know the pod -> code 104 naming it" 104 "default/web-1"
ip netns exec "$NS" nft delete table inet warren-nat
script '{"query":{"ok":true,"enroll":true},"check":{"ok":true,"known":true}}'
run CHECK "$ADDCONF" CNI_ARGS="$K8S"
expect_error "CHECK with the nat table deleted -> code 103" 103
script '{"del":{"ok":true,"known":true}}'
run DEL "$ADDCONF" CNI_ARGS="$K8S"
expect_ok_empty "DEL of the enrolled pod"
last_req | jq -e '.req.op == "del" and .req.containerId == "cid'$$'" and .req.ifname == "eth0" and .nfds == 0' \
	>/dev/null && ok "DEL tells the tunnel (containerId, ifname)" || { nok "DEL tells the tunnel"; diag "$T/reqs.log"; }
no_warren_tables && ok "DEL leaves no warren table" || nok "DEL leaves no warren table"
script '{"status":{"ok":true,"ready":false}}'
run STATUS "$(conf 1.1.0)" -CNI_CONTAINERID -CNI_NETNS -CNI_IFNAME
expect_error "STATUS with a tunnel that is not ready -> code 50" 50 "not ready"
script '{"status":{"ok":true,"ready":true}}'
run STATUS "$(conf 1.1.0)" -CNI_CONTAINERID -CNI_NETNS -CNI_IFNAME
expect_ok_empty "STATUS with a ready tunnel"
script '{"gc":{"ok":true,"removed":0}}'
run GC "$(conf 1.1.0 ',"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]')" \
	-CNI_CONTAINERID -CNI_NETNS -CNI_IFNAME
expect_ok_empty "GC succeeds"
last_req | jq -e '.req.op == "gc" and .req.valid == [{"containerId":"a","ifname":"eth0"}]' >/dev/null &&
	ok "GC sends the valid attachments as {containerId, ifname}" || { nok "GC sends the valid attachments"; diag "$T/reqs.log"; }

exit $failed
