#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# mTLS HBONE between two nodes, as root, on the real kernel (TAP).
#
#   node1 netns (10.0.0.1/30) <====== veth ======> node2 netns (10.0.0.2/30)
#     cni0 10.244.1.1/24                             cni0 10.244.2.1/24
#      |-- cli (ns mesh, sa cli-sa, enrolled)          |-- srv (ns mesh, sa srv-sa, app=srv,
#      |-- ext (ns plain, not enrolled: the            |        enrolled, echo :8080)
#      |        openssl s_client / plaintext peer)     |-- psrv (ns plain, not enrolled, echo :9090)
#                                                      Service mesh/echo 10.96.0.10:80 -> 8080
#                                                      Service mesh/named 10.96.0.12:80 -> http
#     warren-tunnel caDir=$T/ca                      warren-tunnel caDir=$T/ca
#
# Pods are wired by the real plugin chain (tests/netns/lib.sh, sourced
# read-only; tunnel_conf_write is wrapped here to add the mTLS keys). The
# mesh CA comes from hack/gen-ca.sh. Shows: direct and Service-VIP traffic
# (numeric and named targetPorts) over HBONE (tcpdump: TCP to 15008, a TLS 1.3 handshake, the payload never
# in clear), source IP preserved, the destination refusing foreign-CA /
# missing / foreign-trust-domain client certificates, the source refusing a
# destination with the wrong identity, DENY policy (401) and removal, late
# rejection on a policy change, STRICT PeerAuthentication refusing
# plaintext 15006, 100 streams over one pooled HTTP/2 connection with an
# idle-memory budget, and certificate rotation under a live connection.
# Takes about a minute (the rotation waits for a 60 s certificate's
# half-life). Env: B or WARREN_BUILD, KEEP_TMP=1.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need tcpdump openssl "$PYTHON"
need_built warren-cni warren-tunnel warrenctl

# --- tunnel configuration: lib.sh's, plus the mTLS keys -----------------------
eval "$(declare -f tunnel_conf_write | sed '1s/^tunnel_conf_write/lib_tunnel_conf_write/')"
declare -A MESH_FOR=() LIFETIME_FOR=()
tunnel_conf_write() { # NODE
	lib_tunnel_conf_write "$1"
	local f=$T/$1/tunnel.yaml
	if [[ -n ${MESH_FOR[$1]:-} ]]; then
		sed -i "s|^meshPath: .*|meshPath: ${MESH_FOR[$1]}|" "$f"
	fi
	cat >>"$f" <<EOF
caDir: $T/ca
certLifetimeSeconds: ${LIFETIME_FOR[$1]:-86400}
poolMaxStreams: 100
poolIdleTimeoutMs: 300000
hbonePingIntervalMs: 10000
meshReloadMs: 200
EOF
}

set_sa() { mesh_py "[o['spec'].__setitem__('serviceAccountName', '$3') for o in objs if o['kind'] == 'Pod' and o['metadata']['namespace'] == '$1' and o['metadata']['name'] == '$2']"; }
metric() { # NODE NAME LABEL-SUBSTRING: value (sum) or 0
	nexec "$1" curl -s --max-time 2 http://127.0.0.1:15020/metrics |
		awk -v n="$2" -v l="$3" 'index($0, n) == 1 && index($0, l) { s += $NF } END { print s + 0 }'
}
serial_of() { # NODE IDENTITY
	wctl "$1" -o json certs | "$PYTHON" -c 'import json,sys
for c in json.load(sys.stdin):
    if c["identity"] == sys.argv[1]: print(c["serial"])' "$2"
}
at_least() { local v; v=$(metric "$1" "$2" "$3"); ((v >= $4)); } # NODE NAME LABELS MIN
serial_changed() { local s; s=$(serial_of "$1" "$2"); [[ -n $s && $s != "$3" ]]; }

# A client that holds its connection and keeps transferring: every 100 ms it
# sends a line and reads its echo, counting round trips in COUNT_FILE; it
# creates READY after the first echo; it exits 0 once RELEASE exists, 4 when
# the connection is closed or reset under it.
HOLD_PY='import os, socket, sys, time
host, port, ready, release, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
c = socket.create_connection((host, port), timeout=5)
n = 0
try:
    while not os.path.exists(release):
        msg = b"hold-%d\n" % n
        c.sendall(msg)
        got = b""
        while len(got) < len(msg):
            d = c.recv(4096)
            if not d:
                sys.exit(4)
            got += d
        if got != msg:
            sys.exit(1)
        n += 1
        open(count + ".tmp", "w").write(str(n)); os.rename(count + ".tmp", count)
        if n == 1:
            open(ready, "w").close()
        time.sleep(0.1)
except OSError:
    sys.exit(4)
sys.exit(0)'
hold_start() { # NAME HOST PORT: background holder in cli; pid in HOLD_PID[NAME]
	rm -f "$T/$1".{ready,release,count}
	pexec cli timeout 120 "$PYTHON" -c "$HOLD_PY" "$2" "$3" "$T/$1.ready" "$T/$1.release" "$T/$1.count" \
		>/dev/null 2>&1 &
	HOLD_PID[$1]=$!
	BG_PIDS+=($!)
	wait_for -t 10 test -e "$T/$1.ready"
}
hold_count() { cat "$T/$1.count" 2>/dev/null || echo 0; }
hold_grows() { local c; c=$(hold_count "$1"); (( c > $2 )); }
declare -A HOLD_PID=()

# --- CA material -------------------------------------------------------------
bash "$WARREN_ROOT/hack/gen-ca.sh" "$T/ca" 2>/dev/null || die "gen-ca.sh (mesh CA)"
bash "$WARREN_ROOT/hack/gen-ca.sh" "$T/ca-other" 2>/dev/null || die "gen-ca.sh (foreign CA)"
leaf() { # NAME CA-DIR SPIFFE-URI: $T/NAME.{key,crt}
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/$1.key" 2>/dev/null &&
	printf 'subjectAltName=critical,URI:%s\nextendedKeyUsage=clientAuth,serverAuth\nkeyUsage=digitalSignature\nbasicConstraints=CA:FALSE\n' "$3" >"$T/$1.ext" &&
	openssl req -new -key "$T/$1.key" -subj "/" -out "$T/$1.csr" 2>/dev/null &&
	openssl x509 -req -in "$T/$1.csr" -CA "$2/root-cert.pem" -CAkey "$2/root-key.pem" -days 1 \
		-set_serial "0x$(openssl rand -hex 8)" -extfile "$T/$1.ext" -out "$T/$1.crt" 2>/dev/null
}
leaf good "$T/ca" spiffe://cluster.local/ns/plain/sa/ext || die "test leaf (good)"
leaf foreign "$T/ca-other" spiffe://cluster.local/ns/plain/sa/ext || die "test leaf (foreign CA)"
leaf othertd "$T/ca" spiffe://evil.example/ns/plain/sa/ext || die "test leaf (other trust domain)"

# --- topology, tunnels, pods -------------------------------------------------
topo_up >/dev/null 2>&1 || die "topology"
mesh ns mesh istio.io/dataplane-mode=ambient
mesh ns plain
tunnel_start node1 2>/dev/null || die "warren-tunnel on node1 not ready (see $T/node1/tunnel.out)"
tunnel_start node2 2>/dev/null || die "warren-tunnel on node2 not ready"
check "both tunnels start in mTLS mode (caDir loaded)" \
	bash -c "grep -q 'mTLS mode: mesh CA from $T/ca' '$T/node1/tunnel.log' && grep -q 'mTLS mode' '$T/node2/tunnel.log'"

pod_define node2 mesh srv --label app=srv || die "define srv"
set_sa mesh srv srv-sa || die "srv service account"
pod_cni_add srv 2>"$T/err" || die "ADD srv: $(cat "$T/err")"
pod_define node1 mesh cli --label app=cli || die "define cli"
set_sa mesh cli cli-sa || die "cli service account"
pod_cni_add cli 2>"$T/err" || die "ADD cli: $(cat "$T/err")"
pod_add node1 plain ext --conflist "$T/node1.plain.conflist" 2>"$T/err" || die "ADD ext: $(cat "$T/err")"
pod_add node2 plain psrv --conflist "$T/node2.plain.conflist" 2>"$T/err" || die "ADD psrv: $(cat "$T/err")"
app_server srv 8080 || die "echo server in srv"
VIP=10.96.0.10
mesh service mesh echo --selector app=srv --port 80:8080 --cluster-ip $VIP >/dev/null
CLI_ID=spiffe://cluster.local/ns/mesh/sa/cli-sa SRV_ID=spiffe://cluster.local/ns/mesh/sa/srv-sa
SRV=${POD_IP[srv]} CLI=${POD_IP[cli]}
ok "pods: cli $CLI (node1), srv $SRV (node2), ext ${POD_IP[ext]} (node1, not enrolled)"

check "warrenctl certs (node1): one certificate for $CLI_ID, refs 1, renewal scheduled" bash -c "
	'$WARREN_BUILD/warrenctl' --socket '$T/node1/admin.sock' -o json certs | \"$PYTHON\" -c '
import json,sys; c=json.load(sys.stdin)
assert len(c) == 1 and c[0][\"identity\"] == \"$CLI_ID\" and c[0][\"refs\"] == 1, c
assert 0 < c[0][\"renewInSeconds\"] <= 43200 and len(c[0][\"serial\"]) >= 16, c'"
check "warrenctl certs table (node2) lists $SRV_ID" bash -c \
	"'$WARREN_BUILD/warrenctl' --socket '$T/node2/admin.sock' certs | grep -E '^IDENTITY +SERIAL' >/dev/null &&
	 '$WARREN_BUILD/warrenctl' --socket '$T/node2/admin.sock' certs | grep -F '$SRV_ID' >/dev/null"
check "certificate expiry gauge per identity (node1), in the future" \
	at_least node1 warren_certificate_expiry_seconds "identity=\"$CLI_ID\"" "$(date +%s)"

# --- 1. data over HBONE, on the wire ------------------------------------------
MARK="marker-$E2E_ID-$RANDOM$RANDOM"
nexec node1 tcpdump -i "wv$E2E_ID" -U -s 0 -w "$T/wire.pcap" tcp >/dev/null 2>"$T/tcpdump.err" &
TCPDUMP=$!
BG_PIDS+=($TCPDUMP)
wait_for -t 10 grep -q listening "$T/tcpdump.err" || not_ok "tcpdump started" "$(cat "$T/tcpdump.err")"
n0=$(wc -l <"$T/srv.app.log")
check "cli -> srv $SRV:8080 (pod IP) round-trips over HBONE" app_client cli "$SRV" 8080 "$MARK-direct"
[[ $(tail -n 1 "$T/srv.app.log" | awk '{print $2}') == "$CLI" ]] &&
	ok "the server app sees the client pod's IP $CLI" ||
	not_ok "the server app sees the client pod's IP" "$(tail -n 3 "$T/srv.app.log")"
check "the VIP $VIP is routed nowhere (node1 has no route for it)" \
	bash -c "! ip netns exec ${NODE_NETNS[node1]} ip route get $VIP >/dev/null 2>&1"
check "cli -> Service VIP $VIP:80 round-trips (resolved by the tunnel to srv:8080)" \
	app_client cli "$VIP" 80 "$MARK-vip"
[[ $(tail -n 1 "$T/srv.app.log" | awk '{print $2, $5}') == "$CLI 8080" ]] &&
	ok "via the VIP the server also sees $CLI, on its targetPort 8080" ||
	not_ok "via the VIP the server sees the client IP on 8080" "$(tail -n 3 "$T/srv.app.log")"
app_server psrv 9090 || not_ok "echo server in psrv"
CLEAR="clear-$E2E_ID-$RANDOM"
check "cli -> psrv (node2, not enrolled) is relayed as plain TCP and works" app_client cli "${POD_IP[psrv]}" 9090 "$CLEAR"
mesh service mesh empty --selector app=nobody --port 81:8080 --cluster-ip 10.96.0.11 >/dev/null
check "a Service with no ready endpoint: the app's connection is closed" fails app_client cli 10.96.0.11 81 "none-$E2E_ID"
check "... and the reason is logged" wait_for -t 5 grep -q 'Service mesh/empty has no ready endpoint' "$T/node1/tunnel.log"
# A named targetPort resolves per endpoint through its container ports.
mesh_py "[o['spec']['containers'][0].__setitem__('ports', [{'name': 'http', 'containerPort': 8080}]) for o in objs if o['kind'] == 'Pod' and o['metadata']['name'] == 'srv']"
mesh service mesh named --selector app=srv --port 80:http --port 81:grpc --cluster-ip 10.96.0.12 >/dev/null
check "named targetPort: cli -> 10.96.0.12:80 (targetPort http) round-trips" app_client cli 10.96.0.12 80 "named-$E2E_ID"
[[ $(tail -n 1 "$T/srv.app.log" | awk '{print $2, $5}') == "$CLI 8080" ]] &&
	ok "... the server sees it on srv's container port named http, 8080" ||
	not_ok "via the named targetPort the server sees the client on 8080" "$(tail -n 3 "$T/srv.app.log")"
check "a named targetPort that no endpoint declares (grpc): the connection is closed" \
	fails app_client cli 10.96.0.12 81 "noname-$E2E_ID"
check "... and the reason names the port" wait_for -t 5 grep -q \
	'Service mesh/named has no ready endpoint for port 81 .*container port named "grpc"' "$T/node1/tunnel.log"
check "warrenctl services -o json: srv serves port 80 on 8080, and not port 81" bash -c "
	'$WARREN_BUILD/warrenctl' --socket '$T/node1/admin.sock' -o json services | \"$PYTHON\" -c '
import json,sys
s = [x for x in json.load(sys.stdin) if x[\"name\"] == \"named\"][0]
assert [p[\"targetPort\"] for p in s[\"ports\"]] == [\"http\", \"grpc\"], s
assert [e[\"ports\"] for e in s[\"endpoints\"]] == [{\"80\": 8080}], s'"
check "warrenctl services table: the named Service's endpoint with its resolved port" bash -c \
	"'$WARREN_BUILD/warrenctl' --socket '$T/node1/admin.sock' services | grep -E '^mesh +named ' | grep -qF 'srv($SRV 80->8080)'"
out=$(nexec node1 curl -s http://127.0.0.1:15020/metrics)
check "istio_tcp metrics: connection_security_policy mutual_tls with both principals" bash -c \
	"grep -F 'istio_tcp_connections_opened_total{' <<<\"\$0\" | grep -F 'connection_security_policy=\"mutual_tls\"' | grep -F 'source_principal=\"$CLI_ID\"' | grep -F 'destination_principal=\"$SRV_ID\"' >/dev/null" "$out"
check "warren_handshakes_total{result=ok} counted on both nodes" \
	eval 'at_least node1 warren_handshakes_total "result=\"ok\"" 1 && at_least node2 warren_handshakes_total "result=\"ok\"" 1'
kill -INT "$TCPDUMP" 2>/dev/null
wait_for -t 10 exited "$TCPDUMP"
tcpdump -r "$T/wire.pcap" -nn 'tcp dst port 15008' 2>/dev/null | grep . >/dev/null &&
	ok "tcpdump on the node link: TCP to port 15008" ||
	not_ok "tcpdump: TCP to port 15008" "$(tcpdump -r "$T/wire.pcap" -nn 2>&1 | head)"
check "tcpdump: no TCP to the app port 8080 on the wire" \
	bash -c "! tcpdump -r '$T/wire.pcap' -nn 'tcp port 8080' 2>/dev/null | grep -q ."
check "tcpdump: the marker payload never appears in clear (grep -a on the pcap)" \
	bash -c "! grep -a -q '$MARK' '$T/wire.pcap'"
check "control: the same capture shows the plain (not enrolled) destination's payload in clear" \
	bash -c "grep -a -q '$CLEAR' '$T/wire.pcap'"
check "pcap: a TLS ClientHello to 15008 offering h2, a ServerHello selecting TLS 1.3 with AES-128-GCM, then only encrypted records" \
	"$PYTHON" - "$T/wire.pcap" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
magic = struct.unpack("<I", data[:4])[0]
end = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
off, streams = 24, {}
while off + 16 <= len(data):
    _, _, incl, _ = struct.unpack(end + "IIII", data[off:off + 16]); off += 16
    pkt = data[off:off + incl]; off += incl
    if len(pkt) < 14 or pkt[12:14] != b"\x08\x00": continue
    ip = pkt[14:]; ihl = (ip[0] & 15) * 4
    if ip[9] != 6: continue
    tcp = ip[ihl:]; sp, dp = struct.unpack(">HH", tcp[:4]); doff = (tcp[12] >> 4) * 4
    seq = struct.unpack(">I", tcp[4:8])[0]; pl = tcp[doff:struct.unpack(">H", ip[2:4])[0] - ihl]
    if pl and 15008 in (sp, dp):
        streams.setdefault((dp == 15008, sp if dp == 15008 else dp), {})[seq] = pl
def stream(d): return b"".join(d[k] for k in sorted(d))
ch = sh = False; types = set()
for (to_srv, _), segs in streams.items():
    s = stream(segs); i = 0
    while i + 5 <= len(s):
        ct, ver, ln = s[i], s[i+1:i+3], struct.unpack(">H", s[i+3:i+5])[0]
        body = s[i+5:i+5+ln]; types.add(ct)
        if ct == 22 and body[:1] == b"\x01" and to_srv and b"\x00\x10" in body and b"h2" in body: ch = True
        if ct == 22 and body[:1] == b"\x02" and not to_srv and b"\x00\x2b\x00\x02\x03\x04" in body:
            sid = body[38]
            suite = body[39 + sid:41 + sid]
            sh = suite == b"\x13\x01" # the tunnels agree on TLS_AES_128_GCM_SHA256
        i += 5 + ln
print("ClientHello(h2)=%s ServerHello(TLS1.3, AES-128-GCM)=%s record types=%s" % (ch, sh, sorted(types)))
sys.exit(0 if ch and sh and 23 in types and types <= {20, 21, 22, 23} else 1)
PY

# --- 2. the destination refuses bad clients -----------------------------------
sclient() { # CERT-NAME|none [s_client options]: handshake from ext (not enrolled) to srv:15008
	local c=()
	[[ $1 != none ]] && c=(-cert "$T/$1.crt" -key "$T/$1.key")
	shift
	pexec ext timeout 10 openssl s_client -connect "$SRV:15008" -tls1_3 -alpn h2 -noservername \
		-CAfile "$T/ca/root-cert.pem" "${c[@]}" "$@" -ign_eof </dev/null 2>&1 | tr -d '\0'
}
f0=$(metric node2 warren_handshakes_total 'result="error"')
out=$(sclient good)
check "control: a mesh-CA client cert in the trust domain completes the handshake (TLS 1.3, ALPN h2)" \
	bash -c "grep -q 'TLSv1.3' <<<\"\$0\" && grep -q 'ALPN protocol: h2' <<<\"\$0\" && grep -q 'Verify return code: 0' <<<\"\$0\"" "$out"
out=$(sclient foreign)
check "a client cert from another CA is refused (alert, unknown_ca)" \
	bash -c "grep -qiE 'alert (unknown ca|bad certificate|decrypt error)' <<<\"\$0\"" "$out"
check "... counted as handshake error untrusted_ca on node2" \
	wait_for -t 5 at_least node2 warren_handshakes_total 'reason="untrusted_ca"' 1
out=$(sclient none)
check "no client certificate is refused (alert certificate required)" \
	bash -c "grep -qiE 'alert (certificate required|handshake failure)' <<<\"\$0\"" "$out"
out=$(sclient othertd)
check "a client from another trust domain (same CA) is refused" \
	bash -c "grep -qiE 'alert' <<<\"\$0\"" "$out"
check "... node2 logged the trust-domain refusal and counted it" bash -c \
	"grep -q 'not in trust domain cluster.local' '$T/node2/tunnel.log' && ip netns exec ${NODE_NETNS[node2]} curl -s http://127.0.0.1:15020/metrics | grep -F 'reason=\"trust_domain\"' >/dev/null"
f1=$(metric node2 warren_handshakes_total 'result="error"')
((f1 >= f0 + 3)) && ok "node2 counted 3 failed handshakes ($f0 -> $f1)" || not_ok "node2 counted 3 failed handshakes" "$f0 -> $f1"

# --- 2b. interoperability and cipher suites ---------------------------------------
# An HBONE client on an independent stack (Go's crypto/tls and HTTP/2):
# CONNECT to srv:8080 through node2's 15008, a message echoed back. Then
# the suites: node2 prefers AES-128-GCM whatever order the client offers,
# and still accepts a client that offers only AES-256-GCM or only
# ChaCha20-Poly1305.
if command -v go >/dev/null; then
	if (cd "$T" && GO111MODULE=off GOPATH=$T/go GOPROXY=off GOFLAGS='' \
		go build -o "$T/h2connect" "$WARREN_ROOT/tests/tools/h2connect.go") >"$T/gobuild.log" 2>&1; then
		out=$(pexec ext timeout 20 "$T/h2connect" -addr "$SRV:15008" -authority "$SRV:8080" \
			-cert "$T/good.crt" -key "$T/good.key" -ca "$T/ca/root-cert.pem" -expect "$SRV_ID" \
			-msg "interop-$E2E_ID" 2>&1)
		check "interop: Go's TLS + HTTP/2 client CONNECTs to srv:8080 through node2 and gets its echo (AES-128-GCM)" \
			bash -c 'grep -q "^ok status=200 cipher=TLS_AES_128_GCM_SHA256 " <<<"$0"' "$out"
	else
		not_ok "interop: tests/tools/h2connect.go builds" "$(tail -n 5 "$T/gobuild.log")"
	fi
else
	not_ok "interop: go (golang-go, hack/install-deps.sh) is needed for the independent HBONE client"
fi
suite() { sclient good -ciphersuites "$1" | awk '/^New, TLSv1.3, Cipher is/ {print $NF; exit}'; }
check "a client preferring AES-256-GCM gets AES-128-GCM (node2's preference)" \
	test "$(suite TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256)" = TLS_AES_128_GCM_SHA256
check "a client offering only AES-256-GCM is accepted" \
	test "$(suite TLS_AES_256_GCM_SHA384)" = TLS_AES_256_GCM_SHA384
check "a client offering only ChaCha20-Poly1305 is accepted" \
	test "$(suite TLS_CHACHA20_POLY1305_SHA256)" = TLS_CHACHA20_POLY1305_SHA256

# --- 3. L4 AuthorizationPolicy --------------------------------------------------
DENY='{"apiVersion":"security.istio.io/v1","kind":"AuthorizationPolicy","metadata":{"namespace":"mesh","name":"deny-cli"},"spec":{"selector":{"matchLabels":{"app":"srv"}},"action":"DENY","rules":[{"from":[{"source":{"principals":["cluster.local/ns/mesh/sa/cli-sa"]}}]}]}}'
add_policy "$DENY" || not_ok "add DENY policy"
check "warrenctl policies (node2): mesh/deny-cli active DENY selecting mesh/srv" bash -c "
	'$WARREN_BUILD/warrenctl' --socket '$T/node2/admin.sock' -o json policies | \"$PYTHON\" -c '
import json,sys; p=[x for x in json.load(sys.stdin) if x[\"key\"] == \"mesh/deny-cli\"]
assert p and p[0][\"state\"] == \"active\" and p[0][\"action\"] == \"DENY\" and p[0][\"scope\"] == \"workload\" and p[0][\"selects\"] == [\"mesh/srv\"], p'"
d0=$(metric node2 warren_policy_denials_total 'policy="mesh/deny-cli"')
check "DENY for cli's principal: cli -> srv is closed" fails app_client cli "$SRV" 8080 "denied-$E2E_ID"
check "... node2 answered 401 (log)" wait_for -t 5 grep -q 'refused with 401: denied by policy mesh/deny-cli' "$T/node2/tunnel.log"
check "... and counted the denial (warren_policy_denials_total{policy=mesh/deny-cli})" \
	wait_for -t 5 at_least node2 warren_policy_denials_total 'policy="mesh/deny-cli"' $((d0 + 1))
check "... and the access log has the deny decision with the policy" \
	bash -c "grep -F '\"decision\":\"deny\"' '$T/node2/tunnel.out' | grep -F 'mesh/deny-cli' >/dev/null"
check "... a JSON line naming both identities" "$PYTHON" -c '
import json, sys
ok = False
for l in open(sys.argv[1]):
    if not l.startswith("{"): continue
    e = json.loads(l)
    ok = ok or (e["policy"] == {"decision": "deny", "policy": "mesh/deny-cli"} and e["direction"] == "inbound"
                and e["src.identity"].startswith("spiffe://") and e["src.identity"].endswith("/ns/mesh/sa/cli-sa")
                and e["dst.identity"].startswith("spiffe://") and "/ns/mesh/sa/" in e["dst.identity"])
sys.exit(0 if ok else 1)' "$T/node2/tunnel.out"
check "... node1's log shows the 401 answer" bash -c "grep -q 'destination answered 401' '$T/node1/tunnel.log'"
del_policy AuthorizationPolicy mesh deny-cli || not_ok "remove DENY policy"
check "policy removed: cli -> srv works again" app_client cli "$SRV" 8080 "allowed-$E2E_ID"

hold_start late "$SRV" 8080 && ok "a long-lived HBONE connection is open" || not_ok "long-lived connection opened"
c0=$(hold_count late)
wait_for -t 5 hold_grows late "$c0"
add_policy "$DENY" || not_ok "add DENY policy again"
wait_for -t 10 exited "${HOLD_PID[late]}"
wait "${HOLD_PID[late]}"; rc=$?
((rc == 4)) && ok "a policy added while it is open closes the connection (client saw EOF/reset)" ||
	not_ok "policy added while open closes the connection" "holder exit $rc"
check "... node2 logged 'closed by policy change: mesh/deny-cli'" \
	bash -c "grep -q 'closed by policy change: mesh/deny-cli' '$T/node2/tunnel.log'"
del_policy AuthorizationPolicy mesh deny-cli

# --- 4. PeerAuthentication STRICT: plaintext 15006 refused, HBONE works -------
check "before STRICT: plaintext ext -> srv:8080 (15006) works" app_client ext "$SRV" 8080 "plain-$E2E_ID"
add_policy '{"apiVersion":"security.istio.io/v1","kind":"PeerAuthentication","metadata":{"namespace":"istio-system","name":"default","creationTimestamp":"2024-01-01T00:00:00Z"},"spec":{"mtls":{"mode":"STRICT"}}}' ||
	not_ok "add STRICT PeerAuthentication"
check "STRICT: plaintext ext -> srv:8080 is refused" fails app_client ext "$SRV" 8080 "strict-$E2E_ID"
check "STRICT: HBONE cli -> srv:8080 still works" app_client cli "$SRV" 8080 "strict-hbone-$E2E_ID"
del_policy PeerAuthentication istio-system default

# --- 5. pooling: 100 concurrent connections share one HTTP/2 connection -------
POOL_PY='import os, socket, sys, time
host, port, n, ready, release = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
cs = [socket.create_connection((host, port), timeout=10) for _ in range(n)]
for i, c in enumerate(cs):
    c.sendall(b"p%03d" % i)
for i, c in enumerate(cs):
    got = b""
    while len(got) < 4:
        d = c.recv(16)
        if not d: sys.exit(4)
        got += d
    if got != b"p%03d" % i: sys.exit(1)
open(ready, "w").close()
end = time.monotonic() + 60
while not os.path.exists(release) and time.monotonic() < end: time.sleep(0.05)
sys.exit(0)'
rss0=$(( $(tunnel_rss_kb node1) + $(tunnel_rss_kb node2) ))
rm -f "$T/pool.ready" "$T/pool.release"
pexec cli timeout 90 "$PYTHON" -c "$POOL_PY" "$SRV" 8080 100 "$T/pool.ready" "$T/pool.release" &
POOLPID=$!
BG_PIDS+=($POOLPID)
if wait_for -t 20 test -e "$T/pool.ready"; then
	ok "100 concurrent connections cli -> srv echoed"
	pool=$(wctl node1 -o json pool)
	# each worker thread has its own pool, and the kernel spread the 100
	# connections over the workers' listeners (all on one: p = 2^-99)
	check "warrenctl pool -o json: the 100 streams to $SRV:15008 ride one connection per worker thread ($WORKERS, each pool at most poolMaxStreams = 100)" \
		"$PYTHON" -c '
import json,sys; p=[c for c in json.loads(sys.argv[1]) if c["destination"] == sys.argv[2] + ":15008" and c["streams"] > 0]
print(p); w=sorted(c["worker"] for c in p)
assert w == list(range(int(sys.argv[5]))) and sum(c["streams"] for c in p) == 100
assert all(c["sourceIdentity"] == sys.argv[3] and c["peerIdentity"] == sys.argv[4] for c in p)' \
		"$pool" "$SRV" "$CLI_ID" "$SRV_ID" "$WORKERS"
	check "warrenctl pool table" bash -c "'$WARREN_BUILD/warrenctl' --socket '$T/node1/admin.sock' pool | grep -E '^POD +SOURCE-IDENTITY +DESTINATION' >/dev/null"
	check "warren_pool_connections / warren_pool_streams gauges (node1)" bash -c \
		"m=\$(ip netns exec ${NODE_NETNS[node1]} curl -s http://127.0.0.1:15020/metrics); grep -qE '^warren_pool_streams 10[0-9]\$' <<<\"\$m\" && grep -qE '^warren_pool_connections [1-9]' <<<\"\$m\""
	conns=$(wctl node1 -o json connections)
	check "warrenctl connections: outbound HBONE with identities (security mutual_tls)" "$PYTHON" -c '
import json,sys; c=[x for x in json.loads(sys.argv[1]) if x["security"] == "mutual_tls" and x["direction"] == "outbound"]
assert len(c) >= 100 and all(x["srcIdentity"] == sys.argv[2] and x["dstIdentity"] == sys.argv[3] for x in c)' "$conns" "$CLI_ID" "$SRV_ID"
	check "warrenctl connections: the kernel spread the 100 over node1's $WORKERS worker threads" "$PYTHON" -c '
import json,sys; c=[x for x in json.loads(sys.argv[1]) if x["direction"] == "outbound"]
assert sorted(set(x["worker"] for x in c)) == list(range(int(sys.argv[2])))' "$conns" "$WORKERS"
	# node1's pooled connections (one per worker) are few: node2 hands one
	# to its idle worker when the kernel's hash put both on the same one
	check "node2 serves the inbound streams on all its $WORKERS worker threads (pooled connections balanced)" "$PYTHON" -c '
import json,sys; c=[x for x in json.loads(sys.argv[1]) if x["direction"] == "inbound" and x["security"] == "mutual_tls"]
assert len(c) >= 100 and sorted(set(x["worker"] for x in c)) == list(range(int(sys.argv[2])))' "$(wctl node2 -o json connections)" "$WORKERS"
	rss1=$(( $(tunnel_rss_kb node1) + $(tunnel_rss_kb node2) ))
	per=$(( (rss1 - rss0) * 1024 / 100 ))
	if ldd "$WARREN_BUILD/warren-tunnel" 2>/dev/null | grep -E 'lib[at]san' >/dev/null; then
		ok "idle relayed HBONE connection memory # SKIP sanitizer build (ASan quarantine or TSan shadow memory inflates RSS: $per bytes each)"
	else
	((per <= 65536)) && ok "idle relayed HBONE connection costs $per bytes of tunnel RSS (both tunnels, budget 64 KiB)" ||
		not_ok "idle relayed HBONE connection within 64 KiB (both tunnels)" "RSS $rss0 -> $rss1 KiB: $per bytes each"
	fi
else
	not_ok "100 concurrent connections cli -> srv echoed"
fi
touch "$T/pool.release"
wait "$POOLPID" 2>/dev/null

# --- 6. the source refuses a destination with the wrong identity --------------
sed 's/serviceAccountName: "\?srv-sa"\?/serviceAccountName: wrong-sa/' "$T/mesh.yaml" >"$T/mesh-wrong.yaml"
grep -q 'serviceAccountName: wrong-sa' "$T/mesh-wrong.yaml" || not_ok "wrong-identity mesh file prepared"
tunnel_stop node1
MESH_FOR[node1]=$T/mesh-wrong.yaml
tunnel_start node1 2>/dev/null || die "node1 restart with the wrong-identity mesh"
wait_for -t 10 tunnel_knows node1 "${POD_ID[cli]}"
check "with srv's identity expected as wrong-sa, cli -> srv is closed" fails app_client cli "$SRV" 8080 "wrongid-$E2E_ID"
check "... node1 logged the identity mismatch" bash -c \
	"grep -q 'expected spiffe://cluster.local/ns/mesh/sa/wrong-sa but peer presented $SRV_ID' '$T/node1/tunnel.log'"
check "... and counted it (warren_handshakes_total reason identity_mismatch)" \
	at_least node1 warren_handshakes_total 'reason="identity_mismatch"' 1

# --- 7. certificate rotation under a live connection --------------------------
tunnel_stop node1
tunnel_stop node2
unset "MESH_FOR[node1]"
LIFETIME_FOR[node1]=60 LIFETIME_FOR[node2]=60
tunnel_start node1 2>/dev/null || die "node1 restart (60 s certificates)"
tunnel_start node2 2>/dev/null || die "node2 restart (60 s certificates)"
wait_for -t 10 tunnel_knows node1 "${POD_ID[cli]}"
wait_for -t 10 tunnel_knows node2 "${POD_ID[srv]}"
s1=$(serial_of node1 "$CLI_ID") s2=$(serial_of node2 "$SRV_ID")
[[ -n $s1 && -n $s2 ]] && ok "60 s certificates issued (cli $s1, srv $s2)" || not_ok "60 s certificates issued"
hold_start rot "$SRV" 8080 && ok "a long-running connection is transferring" || not_ok "long-running connection"
check "cli's certificate rotates (serial changes in warrenctl certs within 60 s)" \
	wait_for -t 60 serial_changed node1 "$CLI_ID" "$s1"
check "srv's certificate rotates too" wait_for -t 30 serial_changed node2 "$SRV_ID" "$s2"
c0=$(hold_count rot)
check "the connection opened before the rotation keeps transferring" wait_for -t 5 hold_grows rot $((c0 + 3))
check "new connections work after the rotation" app_client cli "$SRV" 8080 "rotated-$E2E_ID"
check "... over a new pooled connection (the old one is draining with the old certificate)" "$PYTHON" -c '
import json,sys; p=[c for c in json.loads(sys.argv[1]) if c["destination"] == sys.argv[2] + ":15008"]
print(p); assert len(p) >= 2' "$(wctl node1 -o json pool)" "$SRV"
check "node1 logged the renewal" bash -c "grep -q 'certificate for $CLI_ID renewed' '$T/node1/tunnel.log'"
touch "$T/rot.release"
wait "${HOLD_PID[rot]}"; rc=$?
((rc == 0)) && ok "the long-running connection ended cleanly" || not_ok "long-running connection ended cleanly" "exit $rc"

check "no tunnel crashed" eval 'tunnel_alive node1 && tunnel_alive node2'
sanitizer_clean node1 node2
echo "# $TAP_COUNT checks, $TAP_FAILED failed"
