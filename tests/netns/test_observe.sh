#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# warren-tunnel observability, as root, on the real kernel: Prometheus
# metrics, the JSON access log, warrenctl workloads/services/pods, runtime
# log level, and readiness across a restart with many pods (and with
# NBIG pods, 503 "adopting N/M pods" while re-adopting).
#
#   netns NODE: warren-tunnel (admin on its Unix socket only, metrics :15020, ready :15021)
#   netns CLI (10.252.0.1, pod obs/client, app=sleep) <-veth-> netns SRV
#   (10.252.0.2, pod obs/server, app=echo); both enrolled (inpodctl rules +
#   handoffctl add), so CLI -> SRV traffic is relayed twice: outbound in
#   CLI's netns (reporter=source) and inbound in SRV's (reporter=destination).
#
# Prints TAP lines "ok - name" / "not ok - name". Every name includes $$.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${WARREN_BUILD:-$PWD/${B:-build}}
TUN=$B/warren-tunnel CTL=$B/warrenctl HCTL=$B/tests/handoffctl INPODCTL=$B/tests/inpodctl

id=$$
NODE=wo-node-$id CLI=wo-cli-$id SRV=wo-srv-$id
NMANY=${NMANY:-30}
NBIG=${NBIG:-200} # pods for the adoption-in-progress restart (>= NMANY + 2)
tmp=$(mktemp -d /tmp/warren-observe-test.XXXXXX)
chmod 755 "$tmp"
sock=$tmp/run/tunnel.sock state=$tmp/state mesh=$tmp/mesh.yaml conf=$tmp/tunnel.yaml
adminsock=$tmp/admin.sock log=$tmp/tunnel.log alog=$tmp/access.log
tpid=
. tests/netns/lib.sh

cleanup() {
	set +e
	[[ -n $tpid ]] && kill -9 "$tpid" 2>/dev/null && wait "$tpid" 2>/dev/null
	for ns in $NODE $CLI $SRV wo-late-$id $(ip netns list | awk -v s="-$id" '$1 ~ /^wo-r[0-9]+-/ && $1 ~ s"$" {print $1}'); do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

ctl() { "$CTL" --socket "$adminsock" "$@"; }
jqok() { jq -e "$@" >/dev/null; }
scrape() { n "$NODE" curl -sf --max-time 5 http://127.0.0.1:15020/metrics; }
# mval FILE NAME [LABEL="VALUE"]...: the sum of NAME's samples in an
# exposition whose labels include every given pair (0 when none).
mval() {
	local f=$1 name=$2; shift 2
	awk -v name="$name" -v want="$(printf '%s\n' "$@")" '
		BEGIN { nw = split(want, w, "\n") }
		$1 ~ "^" name "([{]|$)" {
			for (i = 1; i <= nw; i++) if (w[i] != "" && index($0, w[i]) == 0) next
			s += $NF
		}
		END { printf "%d\n", s }' "$f"
}
# A client in CLI's netns: send N bytes, half-close, count what comes back.
client() { # port nbytes
	n "$CLI" python3 -c '
import socket, sys
s = socket.create_connection(("10.252.0.2", int(sys.argv[1])), timeout=10)
s.sendall(b"q" * int(sys.argv[2])); s.shutdown(socket.SHUT_WR)
n = 0
while True:
    b = s.recv(65536)
    if not b: break
    n += len(b)
print(n)' "$@"
}

for bin in "$TUN" "$CTL" "$HCTL" "$INPODCTL"; do
	[[ -x $bin ]] || { echo "not ok - missing $bin (build first)"; exit 1; }
done
for tool in jq curl socat python3; do
	command -v $tool >/dev/null || { echo "not ok - missing tool $tool"; exit 1; }
done

mkpod "$NODE"; mkpod "$CLI"; mkpod "$SRV"
ip link add woc-$id netns "$CLI" type veth peer name wos-$id netns "$SRV"
n "$CLI" ip addr add 10.252.0.1/24 dev woc-$id && n "$CLI" ip link set woc-$id up
n "$SRV" ip addr add 10.252.0.2/24 dev wos-$id && n "$SRV" ip link set wos-$id up

cat >"$mesh" <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: obs, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: plain}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: obs, uid: uid-cli-$id, labels: {app: sleep, version: v1}}
spec: {serviceAccountName: sleep-sa, nodeName: node-$id}
status: {phase: Running, podIP: 10.252.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: obs, uid: uid-srv-$id, labels: {app: echo, version: v2}}
spec: {serviceAccountName: echo-sa, nodeName: node-$id}
status: {phase: Running, podIP: 10.252.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: server-pending, namespace: obs, uid: uid-pend-$id, labels: {app: echo}}
spec: {nodeName: node-$id}
status: {phase: Pending}
---
apiVersion: v1
kind: Pod
metadata: {name: echo-remote, namespace: obs, uid: uid-rem-$id, labels: {app: echo}}
spec: {serviceAccountName: echo-sa, nodeName: other-node-$id}
status: {phase: Running, podIP: 10.252.9.9}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: plain, uid: uid-web-$id, labels: {app: echo}}
spec: {nodeName: node-$id}
status: {phase: Running, podIP: 10.252.0.3}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: obs}
spec:
  clusterIP: 10.96.0.10
  selector: {app: echo}
  ports:
  - {name: tcp-echo, port: 80, targetPort: 8080}
EOF

cat >"$conf" <<EOF
node: node-$id
pluginSocket: $sock
stateDir: $state
meshPath: $mesh
adminSocket: $adminsock
metricsAddress: 127.0.0.1:15020
accessLog: $alog
logLevel: info
mtls: disabled
EOF

node_tunnel_start "$conf" "$log"
check "tunnel becomes ready" wait_for node_ready

# --- enrollment as warren-cni does it: in-pod rules, then the handoff
"$INPODCTL" apply "/var/run/netns/$CLI" && "$INPODCTL" apply "/var/run/netns/$SRV" ||
	{ echo "not ok - inpodctl apply failed"; exit 1; }
o1=$(hctl add uid-cli-$id obs client cid-cli-$id /var/run/netns/$CLI 10.252.0.1/24)
o2=$(hctl add uid-srv-$id obs server cid-srv-$id /var/run/netns/$SRV 10.252.0.2/24)
check "both pods enrolled" bash -c "jq -e .ok <<<'$o1' >/dev/null && jq -e .ok <<<'$o2' >/dev/null && test $(listeners "$CLI") = $LIS && test $(listeners "$SRV") = $LIS"

# --- the exposition itself
scrape >"$tmp/m0" || not_ok "scrape /metrics"
for m in istio_tcp_connections_opened_total istio_tcp_connections_closed_total \
	istio_tcp_sent_bytes_total istio_tcp_received_bytes_total warren_enrolled_pods \
	warren_mesh_generation warren_mesh_reload_errors_total warren_plugin_requests_total \
	warren_connections_active warren_pool_connections warren_pool_streams \
	warren_handshakes_total warren_policy_denials_total warren_certificate_expiry_seconds; do
	grep -q "^# TYPE $m \(counter\|gauge\)$" "$tmp/m0" && grep -q "^# HELP $m ." "$tmp/m0" || missing+="$m "
done
check "every required metric family has # HELP and # TYPE ${missing:-}" test -z "${missing:-}"
re='^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[a-z_]+="([^"\\]|\\.)*"(,[a-z_]+="([^"\\]|\\.)*")*\})? -?[0-9]+)$'
check "exposition lines are well-formed (text format 0.0.4)" bash -c '! grep -vE "$1" "$2"' _ "$re" "$tmp/m0"
check "placeholders (pool, handshakes, denials, certificates) have no samples yet" \
	bash -c "! grep -qE '^warren_(pool_connections|pool_streams|handshakes_total|policy_denials_total|certificate_expiry_seconds)[ {]' '$tmp/m0'"
check "warren_enrolled_pods 2, warren_mesh_generation 1" \
	bash -c "grep -qx 'warren_enrolled_pods 2' '$tmp/m0' && grep -qx 'warren_mesh_generation 1' '$tmp/m0'"
check "warren_plugin_requests_total counted the two adds" \
	test "$(mval "$tmp/m0" warren_plugin_requests_total 'op="add"' 'result="ok"')" = 2
ctype=$(n "$NODE" curl -s -o /dev/null -w '%{content_type}' http://127.0.0.1:15020/stats/prometheus)
check "/stats/prometheus serves the same format ($ctype)" grep -q '^text/plain; version=0.0.4' <<<"$ctype"

# --- traffic: K connections CLI -> SRV:8080, request 100*i bytes, reply 3000
n "$SRV" socat TCP-LISTEN:8080,reuseaddr,fork SYSTEM:'cat >/dev/null; head -c 3000 /dev/zero' &
apps=($!)
n "$SRV" socat TCP-LISTEN:8081,reuseaddr,fork EXEC:cat &
apps+=($!)
wait_for bash -c "ip netns exec $SRV ss -ltnH | grep -q ':8081\b'"
wait_for bash -c "ip netns exec $SRV ss -ltnH | grep -q ':8080\b'"
K=3 want_req=0
got=""
for ((i = 1; i <= K; i++)); do
	got+="$(client 8080 $((100 * i))) "
	want_req=$((want_req + 100 * i))
done
want_resp=$((3000 * K))
check "client got 3000 bytes back per connection ($got)" test "$got" = "3000 3000 3000 "
OUT=('reporter="source"' 'source_workload="sleep"' 'source_workload_namespace="obs"'
	'destination_workload="echo"' 'destination_workload_namespace="obs"')
IN=('reporter="destination"' 'source_workload="sleep"' 'source_workload_namespace="obs"'
	'destination_workload="echo"' 'destination_workload_namespace="obs"')
closed_delta() { scrape >"$tmp/m1" && (($(mval "$tmp/m1" istio_tcp_connections_closed_total "$@") - $(mval "$tmp/m0" istio_tcp_connections_closed_total "$@") == K)); }
check "closed counters reach +$K for both reporters" wait_for bash -c "$(declare -f scrape mval n closed_delta); K=$K NODE=$NODE tmp=$tmp; closed_delta '${OUT[0]}' && closed_delta '${IN[0]}'"
scrape >"$tmp/m1"
for side in OUT IN; do
	declare -n L=$side
	for spec in "istio_tcp_connections_opened_total:$K" "istio_tcp_connections_closed_total:$K" \
		"istio_tcp_received_bytes_total:$want_req" "istio_tcp_sent_bytes_total:$want_resp"; do
		m=${spec%%:*} want=${spec#*:}
		d=$(($(mval "$tmp/m1" "$m" "${L[@]}") - $(mval "$tmp/m0" "$m" "${L[@]}")))
		check "${L[0]}: $m moved by exactly $want (got $d)" test "$d" = "$want"
	done
	unset -n L
done
series=$(grep '^istio_tcp_connections_opened_total{reporter="source"' "$tmp/m1" | grep 'destination_workload="echo"')
check "outbound series carries Istio's labels" bash -c '
	s=$1
	for l in source_workload=\"sleep\" source_workload_namespace=\"obs\" source_app=\"sleep\" \
		source_version=\"v1\" source_principal=\"unknown\" source_cluster=\"Kubernetes\" \
		destination_workload=\"echo\" destination_app=\"echo\" destination_version=\"v2\" \
		destination_service=\"echo.obs.svc.cluster.local\" destination_service_name=\"echo\" \
		destination_service_namespace=\"obs\" destination_principal=\"unknown\" \
		destination_cluster=\"Kubernetes\" request_protocol=\"tcp\" response_flags=\"-\" \
		connection_security_policy=\"none\"; do
		grep -qF "$l" <<<"$s" || { echo "# missing $l in: $s"; exit 1; }
	done
	[[ $(wc -l <<<"$s") == 1 ]]' _ "$series"
check "exactly one series per label set (no duplicates)" \
	bash -c "test \$(grep -c '^istio_tcp' '$tmp/m1') = \$(grep '^istio_tcp' '$tmp/m1' | sed 's/ [0-9]*\$//' | sort -u | wc -l)"

# --- the access log: one line per relayed connection, both directions
acc() { jq -c --arg d "$1" --arg dst "$2" 'select(.direction == $d and .["dst.addr"] == $dst)' "$alog"; }
check "access log: $K outbound + $K inbound lines for :8080" \
	wait_for bash -c "$(declare -f acc); alog=$alog; test \$(acc outbound 10.252.0.2:8080 | wc -l) = $K && test \$(acc inbound 10.252.0.2:8080 | wc -l) = $K"
check "access log: every line is one JSON object" bash -c "jq -e . '$alog' >/dev/null && test \$(jq -c . '$alog' | wc -l) = \$(wc -l <'$alog')"
check "access log: every line has ztunnel's keys in its order" jqok -s '
	all(.[]; keys_unsorted == ["time", "scope", "message", "start_time", "duration_ms",
		"direction", "src.addr", "src.workload", "src.namespace", "src.identity", "dst.addr",
		"dst.workload", "dst.namespace", "dst.identity", "dst.service", "bytes_sent",
		"bytes_received", "policy", "reason"] and (.policy | keys_unsorted) == ["decision", "policy"]
		and .scope == "access" and .message == "connection closed")' <"$alog"
for d in outbound inbound; do
	lines=$(acc $d 10.252.0.2:8080)
	check "access log $d: fields, peers and byte counts" jqok -s --argjson k "$K" '
		length == $k and
		([.[].bytes_sent] | sort) == [100, 200, 300] and
		all(.[]; .bytes_received == 3000 and
			(.start_time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$")) and
			(.duration_ms | type == "number" and . >= 0) and
			(.["src.addr"] | startswith("10.252.0.1:")) and
			.["src.workload"] == "sleep" and .["src.namespace"] == "obs" and .["src.identity"] == null and
			.["dst.workload"] == "echo" and .["dst.namespace"] == "obs" and .["dst.identity"] == null and
			.["dst.service"] == "echo.obs.svc.cluster.local" and
			.policy == {"decision": "none", "policy": null} and .reason == "closed")' <<<"$lines"
done

# --- a long connection shows progress at scrape time
scrape >"$tmp/m2"
live=$(CTL=$CTL NODE=$NODE ip netns exec "$CLI" bash -c '
	exec 3<>/dev/tcp/10.252.0.2/8081 || exit 1
	head -c 500 /dev/zero >&3
	head -c 500 <&3 | wc -c
	ip netns exec "$NODE" curl -sf http://127.0.0.1:15020/metrics
	exec 3>&-')
echo "$live" | tail -n +2 >"$tmp/m3"
check "long connection: echo came back" test "$(head -1 <<<"$live")" = 500
L8081=('reporter="source"' 'destination_workload="echo"')
check "long connection: received bytes show +500 before it closes" \
	test $(($(mval "$tmp/m3" istio_tcp_received_bytes_total "${L8081[@]}") - $(mval "$tmp/m2" istio_tcp_received_bytes_total "${L8081[@]}"))) = 500
check "long connection: sent bytes show +500 before it closes" \
	test $(($(mval "$tmp/m3" istio_tcp_sent_bytes_total "${L8081[@]}") - $(mval "$tmp/m2" istio_tcp_sent_bytes_total "${L8081[@]}"))) = 500
check "warren_connections_active shows it (outbound 1, inbound 1)" \
	bash -c "grep -qx 'warren_connections_active{direction=\"outbound\"} 1' '$tmp/m3' && grep -qx 'warren_connections_active{direction=\"inbound\"} 1' '$tmp/m3'"
check "after close: bytes are not counted twice" wait_for bash -c "
	$(declare -f scrape mval n); NODE=$NODE
	scrape >$tmp/m4 && grep -qx 'warren_connections_active{direction=\"outbound\"} 0' $tmp/m4 &&
	test \$((\$(mval $tmp/m4 istio_tcp_received_bytes_total ${L8081[*]@Q}) - \$(mval $tmp/m2 istio_tcp_received_bytes_total ${L8081[*]@Q}))) = 500"

# --- failures are logged and counted: nothing listens on SRV:9999
out=$(client 9999 10 2>&1)
check "access log: refused upstream is logged inbound with its reason" wait_for bash -c "
	$(declare -f acc); alog=$alog
	acc inbound 10.252.0.2:9999 | jq -e 'select(.reason == \"upstream connect failed: Connection refused\" and .bytes_sent == 0 and .bytes_received == 0)' >/dev/null"
# (the server side's worker thread may reset it before the client side's
# sees its connect complete: then the connect itself failed with the reset)
check "access log: the client side sees the reset" wait_for bash -c "
	$(declare -f acc); alog=$alog
	acc outbound 10.252.0.2:9999 | jq -e 'select(.reason == \"reset by destination\" or .reason == \"upstream connect failed: Connection reset by peer\")' >/dev/null"
scrape >"$tmp/m5"
check "failed connection: closed with response_flags=\"CONNECT\"" \
	test "$(mval "$tmp/m5" istio_tcp_connections_closed_total 'reporter="destination"' 'response_flags="CONNECT"')" = 1

# --- warrenctl: pods, workloads, services
out=$(ctl -o json pods)
check "warrenctl -o json pods: the two enrolled pods" jqok --arg id "$id" '
	(map(.uid) | sort) == ["uid-cli-\($id)", "uid-srv-\($id)"] and
	all(.[]; .namespace == "obs" and .state == "ready") and
	(map(select(.name == "client"))[0] | .serviceAccount == "sleep-sa" and .ips == ["10.252.0.1/24"])' <<<"$out"
out=$(ctl -o json workloads)
check "warrenctl -o json workloads matches the mesh model" jqok --arg id "$id" '
	def w($n): map(select(.name == $n))[0];
	length == 5 and
	(w("client") | .namespace == "obs" and .ips == ["10.252.0.1"] and .node == "node-\($id)" and
		.serviceAccount == "sleep-sa" and .enrolled and .local and .captured and .workload == "sleep") and
	(w("server") | .ips == ["10.252.0.2"] and .serviceAccount == "echo-sa" and .enrolled and .local and .captured) and
	(w("echo-remote") | .enrolled and (.local | not) and (.captured | not) and .node == "other-node-\($id)") and
	(w("web") | .namespace == "plain" and (.enrolled | not) and .local and (.captured | not)) and
	(w("server-pending") | .ips == [] and (.ready | not) and .serviceAccount == "default")' <<<"$out"
out=$(ctl -o json services)
check "warrenctl -o json services: VIPs, ports, ready endpoints by selector" jqok '
	length == 1 and .[0].namespace == "obs" and .[0].name == "echo" and
	.[0].hostname == "echo.obs.svc.cluster.local" and .[0].vips == ["10.96.0.10"] and
	.[0].ports == [{"name": "tcp-echo", "protocol": "TCP", "port": 80, "targetPort": 8080}] and
	.[0].selector == {"app": "echo"} and
	(.[0].endpoints | map(.name) | sort) == ["echo-remote", "server"]' <<<"$out"
out=$(ctl services)
check "warrenctl services table" bash -c "grep -qE '^NAMESPACE +NAME +VIPS +PORTS +ENDPOINTS' <<<'$out' && grep -qE '^obs +echo +10.96.0.10 +80->8080/TCP +.*server\\(10.252.0.2\\)' <<<'$out'"
out=$(ctl workloads)
check "warrenctl workloads table" bash -c "grep -qE '^NAMESPACE +NAME +IPS +NODE +SERVICE-ACCOUNT +ENROLLED +LOCAL +CAPTURED' <<<'$out' && grep -qE '^obs +client +10.252.0.1 +node-$id +sleep-sa +yes +yes +yes' <<<'$out'"
check "warrenctl --help documents workloads and services" bash -c "'$CTL' --help | grep -q '^  workloads ' && '$CTL' --help | grep -q '^  services '"

# --- no adminAddress configured: no TCP admin API, the Unix socket only
out=$(n "$NODE" curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:15000/pods)
check "no TCP admin API unless adminAddress is set (got $out)" test "$out" = 000

# --- the admin HTTP server itself: keep-alive, HEAD, refused oversized heads
out=$(curl -s --unix-socket "$adminsock" -o /dev/null -o /dev/null -w '%{http_code} %{num_connects}\n' \
	http://l/pods http://l/config_dump | tr '\n' ' ')
check "admin HTTP: two requests over one kept-alive connection ($out)" test "$out" = "200 1 200 0 "
out=$(n "$NODE" curl -s -I http://127.0.0.1:15021/healthz/ready | tr -d '\r')
check "admin HTTP: HEAD /healthz/ready answers the GET's headers" \
	bash -c 'grep -qx "HTTP/1.1 200 OK" <<<"$1" && grep -qx "Content-Length: 6" <<<"$1"' _ "$out"
out=$(curl -s --unix-socket "$adminsock" -w ' %{http_code}' -H "X-Big: $(printf '%9000s' | tr ' ' a)" http://l/pods | tr '\n' ' ')
check "admin HTTP: a head over 8 KiB gets 431 saying so ($out)" grep -q 'request head too large.* 431$' <<<"$out"

# --- runtime log level
out=$(ctl log-level debug)
check "warrenctl log-level debug answers debug" test "$out" = debug
out=$(curl -s --unix-socket "$adminsock" http://l/logging)
check "GET /logging shows the new level" jqok '.level == "debug"' <<<"$out"
client 8080 1 >/dev/null
check "debug lines appear at debug level" wait_for grep -q 'outbound connection 10.252.0.1:[0-9]* -> 10.252.0.2:8080 of pod obs/client accepted' "$log"
"$CTL" --socket "$adminsock" log-level loud >/dev/null 2>&1; rc=$?
check "warrenctl log-level rejects an unknown level (exit 2)" test "$rc" = 2
ctl log-level info >/dev/null
check "warrenctl log-level reads it back" test "$(ctl log-level)" = info

# --- readiness after a restart with many pods: 503/refused until every
# listener is back, then 200 and never 503 again
# Their Pod objects first (and the late pod's below): an add waits for its pod's.
gen=$(ctl -o json config-dump | jq .meshGeneration)
cp "$mesh" "$mesh.tmp"
for p in late $(seq -f 'r%g' 0 $((NBIG - 3))); do
	printf -- '---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: obs, uid: uid-%s-%s}\n' \
		"$p" "$p" "$id" >>"$mesh.tmp"
done
mv -f "$mesh.tmp" "$mesh"
wait_for bash -c "(( \$('$CTL' --socket '$adminsock' -o json config-dump | jq .meshGeneration) > $gen ))" ||
	not_ok "the mesh with the many pods is loaded"
for ((i = 0; i < NMANY; i++)); do
	mkpod "wo-r$i-$id" && enroll "wo-r$i-$id" "uid-r$i-$id" obs "r$i" "cid-r$i-$id" ||
		not_ok "setup of many-pods pod $i"
done
total=$((NMANY + 2))
check "$total pods enrolled" test "$(ctl -o json pods | jq length)" = "$total"
kill -9 "$tpid"; wait "$tpid" 2>/dev/null; tpid=
check "listeners die with the tunnel" test "$(listeners wo-r0-$id)" = 0
# The poller starts first and records every answer (000: nothing listening
# yet) from before the tunnel starts; on its first 200 it counts the
# listeners of all pods. Requests that arrive while the tunnel is adopting
# wait in the listen backlog and are answered when adoption is over.
PODS="$CLI $SRV $(for ((i = 0; i < NMANY; i++)); do printf 'wo-r%d-%d ' $i $id; done)"
PODS="$PODS" PROGRESS="$tmp/ready.progress" ip netns exec "$NODE" bash -c '
	seq=() ok=0 end=$((SECONDS + 20))
	while ((SECONDS < end && ok < 5)); do
		c=$(curl -s -o /dev/null -w "%{http_code}" --max-time 5 http://127.0.0.1:15021/healthz/ready)
		seq+=("$c")
		echo "$c" >>"$PROGRESS"
		if [[ $c == 200 ]]; then
			if ((ok == 0)); then
				l=0
				for p in $PODS; do l=$((l + $(ss -N "$p" -ltnH | grep -cE ":(15001|15006|15008)\b"))); done
				echo "listeners_at_first_200=$l"
			fi
			ok=$((ok + 1))
		fi
	done
	echo "seq=${seq[*]}"' >"$tmp/ready.seq" 2>&1 &
poller=$!
check "readiness poller runs before the tunnel starts (000)" wait_for grep -qsx 000 "$tmp/ready.progress"
node_tunnel_start "$conf" "$log"
wait "$poller"
seq=$(sed -n 's/^seq=//p' "$tmp/ready.seq")
echo "# readiness sequence after restart: $(tr ' ' '\n' <<<"$seq" | uniq -c | awk '{printf "%sx%s ", $1, $2}')"
check "readiness: 200 reached after the restart" grep -qw 200 <<<"$seq"
check "readiness: nothing but 000 (not listening) or 503 before the first 200" \
	bash -c "s='$seq'; pre=\${s%%200*}; ! grep -qvE '^(000|503)?\$' <<<\"\$(tr ' ' '\n' <<<\"\$pre\")\""
check "readiness: never 503 again after the first 200" bash -c "s='$seq'; post=\${s#*200}; ! grep -qw 503 <<<\"\$post\""
check "readiness: all $total pods had their $LIS listeners at the first 200" \
	grep -qx "listeners_at_first_200=$((total * LIS))" "$tmp/ready.seq"
scrape >"$tmp/m6"
check "after restart: warren_enrolled_pods $total" grep -qx "warren_enrolled_pods $total" "$tmp/m6"
check "relaying works after the restart (and is counted)" bash -c "
	$(declare -f client n); CLI=$CLI
	test \"\$(client 8080 7)\" = 3000"

# --- adoption runs on the loop: with NBIG pods a restart answers 503
# "adopting N/M pods" before the first 200 (readiness is served while the
# recorded pods are re-adopted), and at the first 200 every pod listens.
for ((i = NMANY; i < NBIG - 2; i++)); do
	mkpod "wo-r$i-$id" && enroll "wo-r$i-$id" "uid-r$i-$id" obs "r$i" "cid-r$i-$id" ||
		not_ok "setup of big pod $i"
done
check "$NBIG pods enrolled" test "$(ctl -o json pods | jq length)" = "$NBIG"
kill -9 "$tpid"; wait "$tpid" 2>/dev/null; tpid=
# One record per loop iteration: the same code path as the default batch,
# with an adoption window long enough to observe on any machine.
echo "adoptBatch: 1" >>"$conf"
PODS="$CLI $SRV $(for ((i = 0; i < NBIG - 2; i++)); do printf 'wo-r%d-%d ' $i $id; done)"
rm -f "$tmp/ready.progress" "$tmp/first503"
# Handoff clients that knock from before the start, as a runtime would
# retry: a re-add of a recorded pod (same uid and netns: it must not be
# handed over twice) and the add of a new pod must be held until adoption
# is complete, then answered ok; status is answered at once, not ready.
mkpod "wo-late-$id" && "$INPODCTL" apply "/var/run/netns/wo-late-$id" || not_ok "setup of the late pod"
knock() { # out-file, handoffctl args: retry while the socket does not answer
	local out=$1 k; shift
	for ((k = 0; k < 3000; k++)); do
		hctl "$@" >"$out" 2>/dev/null
		[[ -s $out ]] && return
	done
}
knock "$tmp/readd.out" add "uid-r5-$id" obs r5 "cid-r5-$id" "/var/run/netns/wo-r5-$id" & k1=$!
knock "$tmp/late.out" add "uid-late-$id" obs late "cid-late-$id" "/var/run/netns/wo-late-$id" & k2=$!
knock "$tmp/status.out" status & k3=$!
# A tight wait_for with bash's /dev/tcp (no process per request, well under a
# millisecond each): every answer is recorded, run-length encoded as
# CODExCOUNT (000: connection refused, nothing listening yet). At the first
# 200 the listeners of every pod are counted before polling on.
PODS="$PODS" PROGRESS="$tmp/ready.progress" FIRST503="$tmp/first503" ip netns exec "$NODE" bash -c '
	seq=() prev= cnt=0 ok=0 end=$((SECONDS + 30))
	printf -v hdr_end "\r\n\r\n"
	while ((SECONDS < end && ok < 5)); do
		c=000 resp=
		if exec 3<>/dev/tcp/127.0.0.1/15021; then
			printf "GET /healthz/ready HTTP/1.0\r\nHost: x\r\n\r\n" >&3
			IFS= read -r -d "" -t 5 resp <&3
			exec 3<&-
			c=${resp#HTTP/1.? } c=${c:0:3}
			[[ $c =~ ^[0-9]{3}$ ]] || c=bad
		fi 2>/dev/null
		if [[ $c == "$prev" ]]; then
			cnt=$((cnt + 1))
		else
			[[ -n $prev ]] && seq+=("${prev}x$cnt")
			prev=$c cnt=1
			echo "$c" >>"$PROGRESS"
		fi
		[[ $c == 503 && ! -e $FIRST503 ]] && printf "%s" "${resp#*"$hdr_end"}" >"$FIRST503"
		if [[ $c == 200 ]]; then
			if ((ok == 0)); then
				l=0
				for p in $PODS; do l=$((l + $(ss -N "$p" -ltnH | grep -cE ":(15001|15006|15008)\b"))); done
				echo "listeners_at_first_200=$l"
			fi
			ok=$((ok + 1))
		fi
	done
	seq+=("${prev}x$cnt")
	echo "seq=${seq[*]}"' >"$tmp/ready.seq" 2>&1 &
poller=$!
check "big restart: readiness poller runs before the tunnel starts (000)" wait_for grep -qsx 000 "$tmp/ready.progress"
node_tunnel_start "$conf" "$log"
wait "$poller"
seq=$(sed -n 's/^seq=//p' "$tmp/ready.seq")
echo "# readiness sequence after a restart with $NBIG pods: $seq"
echo "# first 503 answer: $(cat "$tmp/first503" 2>/dev/null)"
echo "# adoption: $(grep -E "adopting $NBIG pod record|adoption done: $NBIG " "$log" | cut -d' ' -f1 | tr '\n' ' ')"
codes=$(sed 's/x[0-9]*//g' <<<"$seq") # one entry per run: "000 503 200"
check "big restart: 200 reached" grep -qw 200 <<<"$codes"
check "big restart: at least one 503 before the first 200" bash -c "s='$codes'; pre=\${s%%200*}; grep -qw 503 <<<\"\$pre\""
check "big restart: nothing but 000 or 503 before the first 200" \
	bash -c "s='$codes'; pre=\${s%%200*}; ! grep -qvE '^(000|503)?\$' <<<\"\$(tr ' ' '\n' <<<\"\$pre\")\""
check "big restart: never 503 after the first 200" bash -c "s='$codes'; post=\${s#*200}; ! grep -qw 503 <<<\"\$post\""
check "big restart: the 503 says \"adopting N/$NBIG pods\"" grep -sqE "^not ready: adopting [0-9]+/$NBIG pods\$" "$tmp/first503"
check "big restart: all $NBIG pods had their $LIS listeners at the first 200" \
	grep -qx "listeners_at_first_200=$((NBIG * LIS))" "$tmp/ready.seq"
check "big restart: the log shows adoption done with $NBIG pods" \
	grep -q "adoption done: $NBIG pod(s) re-adopted, 0 record(s) dropped" "$log"
wait "$k1" "$k2" "$k3"
done_line=$(grep -n "adoption done: $NBIG pod" "$log" | tail -1 | cut -d: -f1)
held=$(awk -v d="${done_line:-0}" 'NR < d && /handoff add held until adoption/' "$log" | grep -c .)
check "big restart: handoff status during adoption: not ready, adopting N/$NBIG" \
	jqok --arg r "adopting [0-9]+/$NBIG pods" '.ok and (.ready | not) and (.reason | test($r))' "$tmp/status.out"
check "big restart: both adds sent during adoption were held ($held) until it was done" test "$held" = 2
check "big restart: the held re-add of a recorded pod answered ok" jqok .ok "$tmp/readd.out"
check "big restart: the held add of a new pod answered ok" jqok .ok "$tmp/late.out"
check "big restart: no record dropped, $((NBIG + 1)) pods enrolled" \
	bash -c "! grep -q 'dropping state record' '$log' && test \"\$($CTL --socket $adminsock -o json pods | jq length)\" = $((NBIG + 1))"
check "big restart: the re-added pod's record is kept" test -s "$state/pods/uid-r5-$id.json"
check "big restart: the new pod has its $LIS listeners" test "$(listeners wo-late-$id)" = $LIS

kill "${apps[@]}" 2>/dev/null; wait "${apps[@]}" 2>/dev/null
kill -TERM "$tpid"; wait "$tpid"; rc=$?; tpid=
check "SIGTERM: clean exit (status 0, no sanitizer report)" bash -c "[[ $rc == 0 ]] && ! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' $log"

if ((TAP_FAILED)); then
	echo "# tunnel log:"; sed 's/^/# /' "$log" | tail -40
	echo "# access log:"; sed 's/^/# /' "$alog" | tail -10
fi
exit 0
