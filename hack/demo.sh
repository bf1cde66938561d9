#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# warren demo: a two-node cluster-in-a-box on this machine, requests from a
# client pod on node1 to a server pod on node2 through both nodes' tunnels:
# first in plaintext, then operating/debugging it (warrenctl, metrics, the
# access log, warren-netns), then with mutual TLS (HBONE on 15008, SPIFFE
# identities, proof on the wire) and an L4 AuthorizationPolicy.
# Needs root (network namespaces). Installs what it needs and builds first.
# Cleans up after itself, also on Ctrl-C. Touches only namespaces it creates.
#
#   node1 netns (10.0.0.1/30) <====== veth ======> node2 netns (10.0.0.2/30)
#     cni0 10.244.1.1/24                            cni0 10.244.2.1/24
#      `-- pod demo/client  10.244.1.x               `-- pod demo/server 10.244.2.x :8080
#     warren-tunnel (node1)                          warren-tunnel (node2)
#                  \______ one mesh file (stands in for the API server) ______/
#
# Pods are network namespaces wired by the reference CNI plugins (bridge +
# host-local) with warren-cni chained after them, run exactly as a container
# runtime runs a conflist (tests/lib/cni-chain.py).
# Env: B (build dir, default build), DEMO_PAUSE=1 waits for Enter between steps,
# DEMO_NO_BUILD=1 skips install-deps and make (binaries already in $B),
# DEMO_NO_MTLS=1 stops after the plaintext parts.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

if ((EUID != 0)); then
	echo "demo: needs root (it creates network namespaces); try: sudo $0" >&2
	exit 1
fi
B=${B:-build}
if [[ -z ${DEMO_NO_BUILD:-} ]]; then
	echo "==> installing dependencies (Debian packages) and building"
	bash hack/install-deps.sh || { echo "demo: hack/install-deps.sh failed" >&2; exit 1; }
	make -j2 B="$B" "$B/warren-cni" "$B/warren-tunnel" "$B/warrenctl" >/dev/null ||
		{ echo "demo: build failed; run 'make B=$B' to see why" >&2; exit 1; }
fi
export WARREN_BUILD="$PWD/$B"
export PATH="$WARREN_BUILD:$PATH" # so printed commands read "warrenctl ...", as on a node

PP_FD=1
exec {DEMO_OUT}>&1 # where request() prints its command while its output is captured
exec {DEMO_NULL}>/dev/null
source tests/netns/lib.sh

bold=$'\e[1m' green=$'\e[32m' red=$'\e[31m' reset=$'\e[0m'
step_n=0
part() { printf '\n%s######## %s%s\n' "$bold" "$*" "$reset"; }
step() {
	step_n=$((step_n + 1))
	printf '\n%s%s== %d. %s%s\n' "$bold" "$green" "$step_n" "$*" "$reset"
	if [[ -n ${DEMO_PAUSE:-} && -t 0 ]]; then read -r -p "(Enter) " _; fi
}
say() { printf '   %s\n' "$*"; }
ind() { sed 's/^/   /'; }
# show CMD...: print the command, run it, indent its output (stderr too)
show() { pp "$@" 2>&1 | ind; return "${PIPESTATUS[0]}"; }
fail() { printf '\n%sdemo failed: %s%s\n' "$bold" "$*" "$reset" >&2; exit 1; }
demo_done() {
	local rc=$?
	# to the terminal's fd: Ctrl-C may land while stdout is redirected
	printf '\n%s== cleaning up%s (tunnels, pods, nodes, %s)\n' "$bold" "$reset" "${T:-temp dir}" >&"$DEMO_OUT"
	(exit $rc) # cleanup exits with the status it finds in $?
	cleanup    # from lib.sh: kills what we started, deletes namespaces, verifies
}

# lib.sh writes the tunnel configuration and appends what this hook prints:
# with DEMO_CA set, the tunnels also get caDir (mTLS).
tunnel_conf_extra() { # NODE
	# No kubelet runs here: the demo's "probes" are made as nobody (65534).
	echo "kubeletUid: $PROBE_UID"
	# Parts 1 and 2 are plaintext, and say so: without caDir the tunnel
	# refuses captured traffic unless mtls: disabled is set.
	if [[ -n ${DEMO_CA:-} ]]; then echo "caDir: $DEMO_CA"
	else echo "mtls: disabled"; fi
	return 0
}

PROBE_UID=65534
# SIGTERM drains (tunnel/drain.c): the rollout step shows it. The restart in
# part 3 happens with no connection open, so it is immediate all the same.
DRAIN_SECONDS=25
ctl() { local n=$1; shift; show warrenctl --socket "$T/$n/admin.sock" "$@"; }
# TCP from node2's netns to the server app as UID (0: root; PROBE_UID: the
# "kubelet"); prints the echo. app.py comes on stdin: nobody cannot read $T.
node2_connect() { # UID MESSAGE
	nexec node2 setpriv --reuid="$1" --regid="$1" --clear-groups \
		timeout 10 "$USER_PYTHON" - client "${POD_IP[server]}" 8080 "$2" <"$APP"
}

# The request every step makes: app.py client in the client pod (prints the
# echo; exit 0 matched, 1 short/empty, 2 refused, 3 timeout, 4 reset).
request() { # MESSAGE [app.py options]
	local msg=$1; shift
	printf '   \e[2m+ %s\e[0m\n' "ip netns exec ${POD_NETNS[client]} python3 tests/lib/app.py client ${POD_IP[server]} 8080 '$msg'" >&"$DEMO_OUT"
	app_client client "${POD_IP[server]}" 8080 "$msg" --timeout 10 "$@"
}

# Access-log lines (JSON, one per closed connection) of NODE's tunnel for
# connections to the server app, most recent last. The tunnel's accessLog
# is stdout, which lib.sh sends to $T/NODE/tunnel.out.
alog() { # NODE [jq filter on the line]
	grep -h '^{' "$T/$1/tunnel.out" 2>/dev/null |
		jq -c --arg d "${POD_IP[server]}:8080" "select(.scope == \"access\" and .\"dst.addr\" == \$d)${2:+ | select($2)}" 2>/dev/null
}
alog_count() { alog "$@" | wc -l; }
alog_more() { (($(alog_count "$1" "${3:-}") > $2)); } # NODE N [filter]: more than N lines now

# Istio TCP series for client -> server, from NODE's metrics endpoint.
scrape() { # NODE FILE
	nexec "$1" curl -s --max-time 5 http://127.0.0.1:15020/metrics |
		grep '^istio_tcp_' | grep 'source_workload="client"' | grep 'destination_workload="server"' >"$2"
}
# Before -> after values of the series in AFTER, a few labels shown.
metrics_diff() { # BEFORE AFTER
	"$PYTHON" - "$1" "$2" <<'PY'
import re, sys
L = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
def load(p):
    out = {}
    for line in open(p):
        m = re.match(r'^(\w+)\{(.*)\} (\S+)$', line.strip())
        if m:
            out[(m.group(1), m.group(2))] = m.group(3)
    return out
before, after = load(sys.argv[1]), load(sys.argv[2])
fmt = "%-36s %-12s %-11s %-41s %6s -> %s"
print(fmt % ("METRIC", "REPORTER", "SECURITY", "SOURCE_PRINCIPAL", "BEFORE", "AFTER"))
for (name, labels), v in sorted(after.items()):
    d = dict(L.findall(labels))
    print(fmt % (name, d.get("reporter"), d.get("connection_security_policy"), d.get("source_principal"),
                 before.get((name, labels), "-"), v))
PY
}

# A bounded capture on node1's end of the node-to-node link. Immediate mode
# and -U: each packet reaches the file as it is seen, so stopping right
# after the request loses nothing the request sent.
CAP_PID='' CAP_FILE=''
cap_start() { # FILE
	CAP_FILE=$1
	: >"$1.err"
	printf '   \e[2m+ %s\e[0m\n' "ip netns exec ${NODE_NETNS[node1]} timeout 30 tcpdump --immediate-mode -U -n -i wv$E2E_ID -c 500 -w $1 tcp &"
	bg ip netns exec "${NODE_NETNS[node1]}" timeout 30 tcpdump --immediate-mode -U -n -i "wv$E2E_ID" -c 500 -w "$1" tcp 2>"$1.err"
	CAP_PID=$!
	wait_for -t 5 grep -q 'listening on' "$1.err" || { ind <"$1.err"; return 1; }
}
cap_packets() { tcpdump -qnr "$CAP_FILE" 2>/dev/null | wc -l; }
cap_settled() { # the file holds packets and no new one arrived since the last poll
	local n; n=$(cap_packets)
	((n > 0 && n == ${CAP_LAST:--1})) && return 0
	CAP_LAST=$n; return 1
}
cap_stop() { # when the link is quiet (bounded); timeout passes SIGTERM on to tcpdump
	CAP_LAST=-1
	wait_for -t 3 cap_settled
	kill -TERM "$CAP_PID" 2>/dev/null
	wait "$CAP_PID" 2>/dev/null
	return 0
}

# TLS record layer of the 15008 streams in a pcap (no tshark needed):
# record content types per direction, and the versions the hellos carry.
tls_decode() { # PCAP
	"$PYTHON" - "$1" <<'PY'
import struct, sys
from collections import OrderedDict
f = open(sys.argv[1], "rb")
gh = f.read(24)
e = "<" if gh[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
link = struct.unpack(e + "I", gh[20:24])[0]
streams, seen = OrderedDict(), set()
while True:
    h = f.read(16)
    if len(h) < 16:
        break
    p = f.read(struct.unpack(e + "IIII", h)[2])
    p = p[14:] if link == 1 else p[16:] if link == 113 else p
    if len(p) < 20 or p[0] >> 4 != 4 or p[9] != 6:
        continue
    ihl = (p[0] & 15) * 4
    tot = struct.unpack("!H", p[2:4])[0]
    t = p[ihl:tot]
    sp, dp, seq = struct.unpack("!HHI", t[:8])
    data = t[(t[12] >> 4) * 4:]
    key = ("%d.%d.%d.%d:%d" % (*p[12:16], sp), "%d.%d.%d.%d:%d" % (*p[16:20], dp))
    if not data or (key, seq) in seen or 15008 not in (sp, dp):
        continue
    seen.add((key, seq))
    streams.setdefault(key, bytearray()).extend(data)
CT = {20: "change_cipher_spec", 21: "alert", 22: "handshake", 23: "application_data"}
VER = {0x0301: "TLS 1.0", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}
SUITE = {0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384", 0x1303: "TLS_CHACHA20_POLY1305_SHA256"}
def exts(b, i):
    n = struct.unpack("!H", b[i:i + 2])[0]; i += 2; end = i + n
    while i + 4 <= end:
        t, l = struct.unpack("!HH", b[i:i + 4]); yield t, b[i + 4:i + 4 + l]; i += 4 + l
def hello(b):
    kind, i = b[0], 4 + 2 + 32
    i += 1 + b[i]
    if kind == 1:  # ClientHello: offered versions
        i += 2 + struct.unpack("!H", b[i:i + 2])[0]; i += 1 + b[i]
        for t, v in exts(b, i):
            if t == 43:
                vs = [struct.unpack("!H", v[j:j + 2])[0] for j in range(1, 1 + v[0], 2)]
                return "ClientHello, supported_versions offers %s" % ", ".join(VER.get(x, hex(x)) for x in vs)
        return "ClientHello (no supported_versions)"
    if kind == 2:  # ServerHello: the chosen version
        suite = struct.unpack("!H", b[i:i + 2])[0]; i += 3
        for t, v in exts(b, i):
            if t == 43:
                x = struct.unpack("!H", v[:2])[0]
                return "ServerHello, supported_versions selects %s (0x%04x), cipher %s" % (VER.get(x, "?"), x, SUITE.get(suite, hex(suite)))
        return "ServerHello without supported_versions (TLS 1.2 or older)"
    return "handshake type %d" % kind
if not streams:
    print("no TCP payload to or from port 15008 in the capture")
for (src, dst), s in streams.items():
    i, counts, notes = 0, OrderedDict(), []
    while i + 5 <= len(s):
        ct, ver, ln = s[i], struct.unpack("!H", s[i + 1:i + 3])[0], struct.unpack("!H", s[i + 3:i + 5])[0]
        name = "0x%02x %s" % (ct, CT.get(ct, "NOT TLS"))
        counts[name] = counts.get(name, 0) + 1
        if ct == 22 and not notes and ln >= 40:
            notes.append(hello(bytes(s[i + 5:i + 5 + ln])))
        if ct not in CT:
            break
        i += 5 + ln
    print("%s -> %s: %d bytes in TLS records: %s" % (src, dst, len(s), ", ".join("%s x%d" % kv for kv in counts.items())))
    for n in notes:
        print("    first handshake record: " + n)
PY
}

# Write the mesh file as the base plus FILE (a policy), as the API server
# would, then wait until both tunnels loaded it (as lib.sh's mesh does).
MESH_BASE=
mesh_with() { # FILE|none
	local g1 g2
	[[ -n $MESH_BASE ]] || { MESH_BASE=$T/mesh.base.yaml; cp "$T/mesh.yaml" "$MESH_BASE"; }
	g1=$(mesh_generation node1) g2=$(mesh_generation node2)
	if [[ $1 == none ]]; then cp "$MESH_BASE" "$T/mesh.yaml.tmp"
	else { cat "$MESH_BASE"; echo "---"; cat "$1"; } >"$T/mesh.yaml.tmp"; fi
	mv -f "$T/mesh.yaml.tmp" "$T/mesh.yaml" # rename(2): a tunnel never sees half a file
	wait_for -t 5 mesh_newer node1 "$g1" && wait_for -t 5 mesh_newer node2 "$g2"
}

mtls_ready() { # the tunnel knows caDir and warrenctl knows certs/policies
	warren-tunnel --help 2>&1 | grep caDir >/dev/null && warrenctl --help 2>&1 | grep '^ *certs' >/dev/null
}

lib_init
trap demo_done EXIT
# Our own temp dir name (lib.sh's is /tmp/warren-e2e-*, shared with the test
# runs, which other tools sweep); cleanup removes whatever $T is.
rmdir "$T" && T=$(mktemp -d "/tmp/warren-demo-$E2E_ID.XXXXXX") || fail "cannot create a temp dir in /tmp"

part "Part 1: the cluster-in-a-box, and a request in plaintext"

step "Two nodes: network namespaces joined by a veth, each routing the other's pod subnet"
sed -n '11,15p' "$0"
topo_up >/dev/null || fail "could not build the topology"
say "node1: ${NODE_NETNS[node1]}  node2: ${NODE_NETNS[node2]}  link: wv$E2E_ID"

step "The mesh (what the API server would hold): namespace 'demo' labelled for ambient, a Service"
mesh ns demo istio.io/dataplane-mode=ambient >/dev/null
mesh service demo server --selector app=server --port 80:8080 --cluster-ip 10.96.0.10 >/dev/null
say "# $T/mesh.yaml (pods are added as they are created)"
ind <"$T/mesh.yaml"

step "One warren-tunnel per node, inside the node's netns"
for n in node1 node2; do
	say "+ ip netns exec ${NODE_NETNS[$n]} warren-tunnel --config $T/$n/tunnel.yaml &"
	PP_FD=$DEMO_NULL tunnel_start $n || fail "warren-tunnel did not start on $n (log: $T/$n/tunnel.out)"
done
say "+ cat $T/node1/tunnel.yaml"
ind <"$T/node1/tunnel.yaml"
for n in node1 node2; do
	say "$n: ip netns exec ${NODE_NETNS[$n]} curl http://127.0.0.1:15021/healthz/ready -> $(nexec $n curl -s -w ' (HTTP %{http_code})' http://127.0.0.1:15021/healthz/ready | tr -d '\n')"
done

step "The CNI chain each node runs for a pod (bridge + host-local, then warren-cni)"
say "+ jq -c '.plugins[]' $T/node1.conflist"
jq -c '.plugins[]' "$T/node1.conflist" | ind

step "Create the server pod on node2 and the client pod on node1 (CNI ADD through the chain)"
# Each pod gets its own service account: it becomes the SPIFFE identity in mTLS mode.
add_pod() { # NODE NAME
	pod_define "$1" demo "$2" --label "app=$2" >/dev/null || return 1
	mesh pod demo "$2" --node "$1" --uid "${POD_UID[$2]}" --sa "$2" --label "app=$2" >/dev/null || return 1
	pod_cni_add "$2" >/dev/null
}
say "+ ip netns exec ${NODE_NETNS[node2]} python3 tests/lib/cni-chain.py ADD --conflist $T/node2.conflist --netns /run/netns/wp-$E2E_ID-server --id c${E2E_ID}server --args 'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=server;...'"
add_pod node2 server || fail "ADD of the server pod failed (see above)"
say "+ ip netns exec ${NODE_NETNS[node1]} python3 tests/lib/cni-chain.py ADD ... (client)"
add_pod node1 client || fail "ADD of the client pod failed (see above)"
say "server pod: ${POD_IP[server]} (netns ${POD_NETNS[server]}, node2, service account server)"
say "client pod: ${POD_IP[client]} (netns ${POD_NETNS[client]}, node1, service account client)"
say "the chain's result for the client (the runtime caches it), its IPs and interfaces:"
jq -c '.ips[], .interfaces[]' "$T/client.result" | ind

step "warren-cni programmed the redirection inside the client pod's netns"
show ip netns exec "${POD_NETNS[client]}" nft list table inet warren-nat
show ip -n "${POD_NETNS[client]}" rule show
show ip -n "${POD_NETNS[client]}" route show table 100

step "...and handed the pod to its node's tunnel, which now listens inside each pod"
for p in client server; do
	say "pod $p:"
	show ss -N "${POD_NETNS[$p]}" -ltn
done

step "Start the server app (echo on :8080, logs the client address it sees)"
app_server server 8080 || fail "the server app did not start"
show ss -N "${POD_NETNS[server]}" -ltn 'sport = :8080'

step "The client pod sends a request to the server pod's IP (plaintext: the link is captured)"
scrape node1 "$T/m1.before"; scrape node2 "$T/m2.before"
n_al1=$(alog_count node1)
c_out0=$(nft_counter client warren-nat warren:nat-out-redirect-v4)
s_in0=$(nft_counter server warren-nat warren:nat-pre-redirect-v4)
MARK1="plaintext-marker-$RANDOM$RANDOM"
cap_start "$T/plain.pcap" || fail "tcpdump did not start"
reply=$(request "$MARK1") || fail "the request failed"
say "reply: $reply"
wait_for -t 5 alog_more node1 "$n_al1" # the connection is logged when it closes
cap_stop
c_out1=$(nft_counter client warren-nat warren:nat-out-redirect-v4)
s_in1=$(nft_counter server warren-nat warren:nat-pre-redirect-v4)
read -r _ peer port _ <<<"$(tail -n 1 "$T/server.app.log")"
say "${bold}server saw the connection from $peer:$port${reset} (the client pod is ${POD_IP[client]})"
say "client pod, outbound redirect to :15001 (tunnel on node1): $c_out0 -> $c_out1 packets"
say "server pod, inbound redirect to :15006 (tunnel on node2):  $s_in0 -> $s_in1 packets"
say "on the node-to-node link: pod to pod on port 8080, the payload readable:"
show tcpdump -qnr "$T/plain.pcap" -c 4
say "+ tcpdump -nr $T/plain.pcap -A | grep $MARK1"
tcpdump -nr "$T/plain.pcap" -A 2>/dev/null | grep -a -m 2 "$MARK1" | tr -c '[:print:]\n' . | ind

part "Part 2: operating and debugging it"

step "Metrics: the Istio TCP series for client -> server moved (before -> after the request)"
scrape node1 "$T/m1.after"; scrape node2 "$T/m2.after"
say "(BEFORE '-': the series did not exist yet; labels shown: 3 of Istio's 23)"
for n in node1 node2; do
	say "+ ip netns exec ${NODE_NETNS[$n]} curl -s 127.0.0.1:15020/metrics | grep '^istio_tcp_' | grep 'source_workload=\"client\"' | grep 'destination_workload=\"server\"'"
	metrics_diff "$T/m${n#node}.before" "$T/m${n#node}.after" | ind
done
say "one series in full (node1):"
head -n 1 "$T/m1.after" | fold -w 110 | ind

step "The access log: one JSON line per closed connection (node1's line for that request)"
say "+ grep '\"scope\":\"access\"' $T/node1/tunnel.out | tail -n 1 | jq ."
alog node1 | tail -n 1 | jq . | ind

step "Hold a connection open from the client pod (app.py --hold-until)"
say "+ ip netns exec ${POD_NETNS[client]} python3 tests/lib/app.py client ${POD_IP[server]} 8080 'held open' --ready-file $T/held.ready --hold-until $T/held.release &"
bg ip netns exec "${POD_NETNS[client]}" "$PYTHON" "$APP" client "${POD_IP[server]}" 8080 "held open" \
	--timeout 30 --ready-file "$T/held.ready" --hold-until "$T/held.release" >/dev/null
HELD_PID=$!
wait_for -t 10 test -e "$T/held.ready" || fail "the held connection did not get its echo ($(ls -ld "$T" 2>&1))"
say "echo received; the connection stays open until $T/held.release exists"

step "What node1's tunnel knows: enrolled pods, the mesh's workloads and services, live connections"
ctl node1 pods
ctl node1 workloads
ctl node1 services
ctl node1 connections
say "node2 (the inbound side):"
ctl node2 connections

step "warren-netns: the client pod's rules, found through node1's tunnel (counters have moved)"
show hack/warren-netns --node-netns "${NODE_NETNS[node1]}" demo/client rules

step "warren-netns: the client pod's sockets while the connection is open"
show hack/warren-netns --node-netns "${NODE_NETNS[node1]}" demo/client sockets
touch "$T/held.release"
wait "$HELD_PID" 2>/dev/null
say "(connection released)"

if [[ -n ${DEMO_NO_MTLS:-} ]]; then
	part "Part 3 (mTLS) skipped: DEMO_NO_MTLS is set"
elif ! mtls_ready; then
	part "Part 3 (mTLS) skipped: this build's warren-tunnel has no caDir (mTLS) support yet"
	say "(warren-tunnel --help does not mention caDir, or warrenctl has no 'certs' command)"
else
	part "Part 3: mutual TLS between the tunnels, and an L4 AuthorizationPolicy"

	step "A mesh CA (root key + certificate) for the tunnels to issue workload certificates from"
	show bash hack/gen-ca.sh "$T/ca" || fail "hack/gen-ca.sh failed"
	show ls -l "$T/ca"

	step "Restart both tunnels with caDir: they re-adopt their pods (no pod is re-created)"
	DEMO_CA=$T/ca
	for n in node1 node2; do
		say "+ kill -TERM ${TUNNEL_PID[$n]} (warren-tunnel on $n)"
		tunnel_stop "$n"
		say "+ ip netns exec ${NODE_NETNS[$n]} warren-tunnel --config $T/$n/tunnel.yaml &"
		PP_FD=$DEMO_NULL tunnel_start "$n" || fail "warren-tunnel did not start with caDir on $n (log: $T/$n/tunnel.out)"
	done
	show tail -n 2 "$T/node1/tunnel.yaml"
	ctl node1 pods
	ctl node2 pods

	step "The identities each tunnel holds certificates for (SPIFFE IDs from the service accounts)"
	ctl node1 certs
	ctl node2 certs

	step "A request with a unique marker, the node-to-node link captured"
	MARK2="mtls-marker-$RANDOM$RANDOM"
	n_al1=$(alog_count node1)
	scrape node1 "$T/m1.before"; scrape node2 "$T/m2.before"
	cap_start "$T/mtls.pcap" || fail "tcpdump did not start"
	reply=$(request "$MARK2") || fail "the request failed in mTLS mode"
	say "reply: $reply"
	wait_for -t 5 alog_more node1 "$n_al1"
	cap_stop
	say "access log (node1), the peers' identities:"
	alog node1 | tail -n 1 | jq -c '{direction, "src.identity", "dst.identity", policy}' | ind
	say "metrics (restarted tunnels count from zero), now with connection_security_policy=mutual_tls:"
	scrape node1 "$T/m1.after"; scrape node2 "$T/m2.after"
	for n in node1 node2; do
		say "+ ip netns exec ${NODE_NETNS[$n]} curl -s 127.0.0.1:15020/metrics | grep '^istio_tcp_connections_opened' | grep 'source_workload=\"client\"' | grep 'destination_workload=\"server\"'"
		metrics_diff "$T/m${n#node}.before" "$T/m${n#node}.after" | grep -E '^METRIC|opened' | ind
	done

	step "Proof on the wire: pod to pod on port 15008 (HBONE) only, TLS 1.3, the marker nowhere"
	show tcpdump -qnr "$T/mtls.pcap" -c 4
	say "TCP ports of the packets on the link (a pod's ephemeral port and 15008, nothing else):"
	tcpdump -qnr "$T/mtls.pcap" 2>/dev/null | awk '{
		n = split($3, a, "."); sp = a[n]; n = split($5, b, "."); dp = b[n]; sub(":", "", dp)
		print (dp == 15008 ? "packets to port 15008" : sp == 15008 ? "packets from port 15008" : "OTHER " sp " > " dp) }' |
		sort | uniq -c | ind
	say "+ tls record layer (python3 decoder: content type 0x16 handshake, 0x17 application data):"
	tls_decode "$T/mtls.pcap" | ind
	say "+ grep -a -c $MARK2 $T/mtls.pcap"
	if n=$(grep -a -c "$MARK2" "$T/mtls.pcap"); then
		say "${red}found $n time(s): the payload went in the clear!${reset}"
	else
		say "${bold}0: the payload is nowhere on the wire${reset} (the plaintext capture above had it)"
	fi

	step "An L4 AuthorizationPolicy: DENY the client's identity at the server workload"
	show cat hack/demo-deny.yaml
	say "+ (append it to $T/mesh.yaml; both tunnels reload it)"
	mesh_with hack/demo-deny.yaml || fail "the tunnels did not load the policy"
	ctl node2 policies

	step "The client's request is now refused by the server's tunnel (HBONE CONNECT answered 401)"
	n_al1=$(alog_count node1) n_al2=$(alog_count node2)
	n_srv=$(wc -l <"$T/server.app.log")
	reply=$(request "denied-$RANDOM" 2>&1); rc=$?
	((rc != 0)) || fail "the request went through despite the DENY policy (reply: $reply)"
	say "app.py exit status $rc (1 = no echo, 4 = reset): ${reply:-(nothing)}"
	wait_for -t 5 alog_more node2 "$n_al2"
	wait_for -t 5 alog_more node1 "$n_al1"
	say "server app connections: $n_srv before, $(wc -l <"$T/server.app.log") after (the app never saw it)"
	say "node2's access-log line (inbound, the deciding policy):"
	alog node2 | tail -n 1 | jq . | ind
	say "node1's line (outbound):"
	alog node1 | tail -n 1 | jq -c '{direction, "dst.identity", policy, reason}' | ind
	say "node2's tunnel log about it:"
	grep -h -E '401|denied' "$T/node2/tunnel.log" | tail -n 2 | ind

	step "Replace the DENY with an ALLOW for the client's identity: the request works again"
	show cat hack/demo-allow.yaml
	mesh_with hack/demo-allow.yaml || fail "the tunnels did not load the policy"
	ctl node2 policies
	n_al2=$(alog_count node2)
	reply=$(request "allowed-$RANDOM") || fail "the request failed with the ALLOW policy"
	say "reply: $reply"
	wait_for -t 5 alog_more node2 "$n_al2"
	alog node2 | tail -n 1 | jq -c '{direction, "src.identity", policy}' | ind

	step "STRICT mTLS for the whole mesh; the kubelet's probes still reach the apps"
	show cat hack/demo-strict.yaml
	mesh_with hack/demo-strict.yaml || fail "the tunnels did not load the PeerAuthentication"
	say "plaintext from node2 (root) to the server pod: captured into :15006, refused by STRICT"
	say "+ ip netns exec ${NODE_NETNS[node2]} python3 tests/lib/app.py client ${POD_IP[server]} 8080 ..."
	reply=$(node2_connect 0 "root-$RANDOM" 2>&1); rc=$?
	((rc != 0)) || fail "plaintext from the node went through under STRICT (reply: $reply)"
	say "refused (app.py exit status $rc: 1 = no echo, 2 = refused, 4 = reset)"
	say "the same as the kubelet (the demo's kubeletUid is $PROBE_UID, as no kubelet runs here):"
	say "+ ip netns exec ${NODE_NETNS[node2]} setpriv --reuid=$PROBE_UID ... app.py client ${POD_IP[server]} 8080 ..."
	reply=$(node2_connect "$PROBE_UID" "probe-$RANDOM") || fail "the probe was refused under STRICT"
	say "reply: $reply"
	read -r _ peer _ <<<"$(tail -n 1 "$T/server.app.log")"
	say "${bold}the server app saw it from $peer${reset}: the pod's rules let it through, no tunnel involved"
	say "each node's tunnel keeps a table of its enrolled pods; the kubelet's TCP to them leaves"
	say "from 169.254.7.127 (the IPv4 rule counted the probe):"
	show ip netns exec "${NODE_NETNS[node2]}" nft list table inet warren-host
	mesh_with none || fail "the tunnels did not load the mesh without the policy"

	part "Part 4: upgrading node2's tunnel without failing a connection"

	step "Traffic through node2's tunnel: new connections in a loop, and one held connection"
	OLD=${TUNNEL_PID[node2]}
	say "+ ip netns exec ${POD_NETNS[client]} python3 tests/lib/app.py loop ${POD_IP[server]} 8080 ... &"
	traffic rloop loop client "${POD_IP[server]}"; P_LOOP=${BG_PIDS[-1]}
	say "+ ip netns exec ${POD_NETNS[client]} python3 tests/lib/app.py chat ${POD_IP[server]} 8080 ... &"
	traffic rheld chat client "${POD_IP[server]}"; P_HELD=${BG_PIDS[-1]}
	wait_for -t 10 progressed rloop 20 && wait_for -t 10 progressed rheld 5 || fail "the traffic does not flow"
	say "loop: $(head -n 1 "$T/rloop.status"); held connection: $(head -n 1 "$T/rheld.status") echoes"

	step "The successor starts beside it (as a DaemonSet with maxSurge: 1 would start it)"
	say "+ ip netns exec ${NODE_NETNS[node2]} warren-tunnel --config $T/node2/tunnel.yaml &"
	successor_start node2
	NEW=$SUCCESSOR_PID
	wait_for -t 10 answered_by node2 "$NEW" || fail "the successor did not become ready"
	say "it took the admin socket over and adopted the pods (config-dump pid $NEW, ready);"
	say "in the server pod, each port's listeners belong to both processes (one SO_REUSEPORT group):"
	show ss -N "${POD_NETNS[server]}" -tlnp

	step "SIGTERM to the old tunnel: it closes its listeners and drains (drainSeconds: 25)"
	say "+ kill -TERM $OLD"
	kill -TERM "$OLD"
	wait_for -t 5 bash -c "[[ -z \$(ss -N '${POD_NETNS[server]}' -Htlnp 'sport = :15008' | grep 'pid=$OLD,') ]]" ||
		fail "the old tunnel did not close its listeners"
	show ss -N "${POD_NETNS[server]}" -tlnp
	grep -h 'draining' "$T/node2/tunnel.log" | tail -n 1 | ind
	say "node1's pool got the old tunnel's GOAWAY notice: that connection is closing (the held"
	say "stream still on it), new streams go on a new connection, to the successor:"
	wait_for -t 5 bash -c "warrenctl --socket '$T/node1/admin.sock' pool | grep -q closing"
	ctl node1 pool
	n=$(status_ok rheld)
	wait_for -t 5 progressed rheld $((n + 10)) || fail "the held connection stopped echoing on the draining tunnel"
	say "the held connection still echoes on the old tunnel: $(head -n 1 "$T/rheld.status")"

	step "The held connection ends; the old tunnel, drained, stops"
	stop_traffic rheld "$P_HELD"
	wait_for -t 10 exited "$OLD" || fail "the old tunnel did not stop after its last connection"
	TUNNEL_PID[node2]=$NEW
	grep -h -E 'drained|warren-tunnel stopped' "$T/node2/tunnel.log" | tail -n 2 | ind
	stop_traffic rloop "$P_LOOP"
	say "held connection: $(head -n 1 "$T/rheld.status")"
	say "${bold}loop: $(head -n 1 "$T/rloop.status")${reset}: no connection failed during the upgrade"
	[[ $(status_fail rloop) == 0 && $(status_fail rheld) == 0 ]] || fail "a connection failed during the rollout"
fi

part "The end: pods deleted"

step "Delete the pods (CNI DEL through the chain, reverse order): nothing of ours is left in them"
for p in client server; do
	say "+ ip netns exec ${NODE_NETNS[${POD_NODE[$p]}]} python3 tests/lib/cni-chain.py DEL --conflist $T/${POD_NODE[$p]}.conflist --netns /run/netns/${POD_NETNS[$p]} --id ${POD_ID[$p]} ..."
	chain "${POD_NODE[$p]}" DEL "$p" >/dev/null 2>"$T/$p.del.err" || { cat "$T/$p.del.err"; fail "DEL of $p failed"; }
	if inpod_clean "$p" && no_listeners "$p"; then say "pod $p: no warren table, ip rule, table-100 route or listener"; else say "pod $p: state left behind!"; fi
done
for n in node1 node2; do
	say "$n tunnel pods: $(warrenctl --socket "$T/$n/admin.sock" -o json pods | tr -d ' \n')"
done
printf '\n%sdemo complete.%s Tests: sudo bash hack/test.sh   Benchmark: sudo make bench\n' "$bold" "$reset"
