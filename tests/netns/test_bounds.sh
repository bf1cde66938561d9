#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# One client must not take the tunnel down: floods of connections against
# a tunnel with few file descriptors, idle connections filling its HTTP
# servers. As root, on the real kernel (TAP).
#
#   node1 netns <============== veth ==============> node2 netns
#     |-- srv (mesh, enrolled, echo :8080)             |-- cli (mesh, enrolled)
#     |-- ext (plain, not enrolled): the floods         warren-tunnel (mTLS)
#     warren-tunnel (mTLS), its fd limit lowered with prlimit
#     readiness :15021, metrics :15020 on node1's loopback
#
# 1. ext holds hundreds of connections to srv:8080 (captured, 15006) while
#    the tunnel is out of fds: it must pause accepting (bounded CPU and
#    log lines over a measurement window, warren_accept_paused_total), then
#    serve again once the flood ends, the handoff socket included.
# 2. 80 idle connections on readiness and on metrics: /healthz/ready and
#    /metrics still answer at once.
# 3. ext opens 1500 connections to srv:15008 and never starts TLS: the
#    tunnel's RSS stays bounded, the handshakes beyond the per-source cap
#    are refused and counted, the rest time out within 5 s, and cli (mesh,
#    on node2) still reaches srv over HBONE meanwhile.
# 4. cli holds 3000 connections to srv:9090 (HBONE): one GET /connections
#    listing them leaves node1's tunnel no bigger than before (the answer's
#    memory goes back to the system).
# Env: B or WARREN_BUILD, KEEP_TMP=1.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need prlimit "$PYTHON"
need_built warren-cni warren-tunnel warrenctl
SAN=0
ldd "$WARREN_BUILD/warren-tunnel" | grep -q libasan && SAN=1

tunnel_conf_extra() { echo "caDir: $T/ca"; }

# Opens N connections to ADDR:PORT and holds them until STOP exists; how
# many connect() calls completed goes to OUT.
HOLD_PY='import os, socket, sys, time
addr, port, n, out, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
socks, done = [], 0
for _ in range(n):
    s = socket.socket(); s.setblocking(False)
    try: s.connect((addr, port))
    except BlockingIOError: pass
    except OSError: s.close(); continue
    socks.append(s)
    done += 1
open(out + ".tmp", "w").write(str(done)); os.rename(out + ".tmp", out)
while not os.path.exists(stop):
    time.sleep(0.05)'
hold() { # NAME NETNS ADDR PORT N: in the background; held connections in $T/NAME.held
	bg ip netns exec "$2" "$PYTHON" -c "$HOLD_PY" "$3" "$4" "$5" "$T/$1.held" "$T/$1.stop"
}
held() { [[ $(cat "$T/$1.held" 2>/dev/null) -ge $2 ]]; } # NAME COUNT

cpu_ticks() { awk '{print $14 + $15}' "/proc/${TUNNEL_PID[$1]}/stat"; } # NODE: utime + stime
fds_at_least() { (($(tunnel_fds "$1") >= $2)); } # NODE COUNT
metric() { # NODE NAME{LABELS}: its value, 0 when absent
	nexec "$1" curl -s --max-time 2 http://127.0.0.1:15020/metrics |
		awk -v k="$2" '$1 == k {v = $2} END {print v + 0}'
}
metric_above() { (($(metric "$1" "$2") > $3)); } # NODE NAME{LABELS} VALUE
echo_ok() { [[ $(app_client "$1" "$2" 8080 "$3" --timeout 3 2>/dev/null) == *"$3"* ]]; } # POD ADDR MSG
http_code() { nexec "$1" curl -s -o /dev/null -w '%{http_code}' --max-time "$3" "$2"; } # NODE URL SECONDS

# --- set-up -------------------------------------------------------------------
mtls_cluster_up
pod_add node1 mesh srv --label app=srv 2>"$T/err" || die "ADD srv: $(cat "$T/err")"
app_server srv 8080 || die "echo server in srv"
pod_add node1 plain ext --conflist "$T/node1.plain.conflist" 2>"$T/err" || die "ADD ext: $(cat "$T/err")"
check "before: ext -> srv:8080 (captured, plaintext 15006)" echo_ok ext "${POD_IP[srv]}" before

# --- 1. out of fds ----------------------------------------------------------------
fds0=$(tunnel_fds node1)
limit=$((fds0 + 40))
read -r soft hard < <(prlimit --pid "${TUNNEL_PID[node1]}" --nofile -o SOFT,HARD --noheadings)
# the soft limit only: raising a hard limit again needs CAP_SYS_RESOURCE
pp prlimit --pid "${TUNNEL_PID[node1]}" --nofile="$limit:$hard" || die "prlimit"
hold flood "${POD_NETNS[ext]}" "${POD_IP[srv]}" 8080 600
wait_for -t 20 held flood 600 || die "the flood's connections did not connect"
check "the flood uses up the tunnel's fds (limit $limit)" wait_for -t 10 fds_at_least node1 $((limit - 4))
# A measurement window, not a synchronisation: a spinning accept loop burns
# a core and logs each failure, a paused one neither.
cpu0=$(cpu_ticks node1) lines0=$(wc -l <"$T/node1/tunnel.log")
sleep 2
cpu=$(($(cpu_ticks node1) - cpu0)) lines=$(($(wc -l <"$T/node1/tunnel.log") - lines0))
if ((cpu < 40)); then ok "out of fds: the tunnel does not spin (${cpu} ticks of CPU in 2 s)"
else not_ok "out of fds: the tunnel does not spin (${cpu} ticks of CPU in 2 s)"; fi
if ((lines < 100)); then ok "out of fds: log lines bounded ($lines in 2 s)"
else not_ok "out of fds: log lines bounded ($lines in 2 s)" "$(tail -n 3 "$T/node1/tunnel.log")"; fi
touch "$T/flood.stop"
check "after the flood: ext -> srv:8080 works again" wait_for -t 15 echo_ok ext "${POD_IP[srv]}" after
check "after the flood: warren_accept_paused_total{listener=\"inbound\"} counted it" \
	metric_above node1 'warren_accept_paused_total{listener="inbound"}' 0
check "after the flood: the handoff socket serves an ADD" eval \
	'pod_add node1 mesh srv2 --label app=srv 2>"$T/err" && tunnel_knows node1 "${POD_ID[srv2]}"'
check "after the flood: the tunnel is ready" tunnel_ready node1
pp prlimit --pid "${TUNNEL_PID[node1]}" --nofile="$soft:$hard" || die "prlimit (restore)"

# --- 2. idle HTTP clients --------------------------------------------------------
hold ready-idle "${NODE_NETNS[node1]}" 127.0.0.1 15021 80
hold metrics-idle "${NODE_NETNS[node1]}" 127.0.0.1 15020 80
wait_for -t 10 held ready-idle 80 && wait_for -t 10 held metrics-idle 80 || die "idle HTTP clients"
check "80 idle connections on :15021: /healthz/ready answers 200" \
	eval '[[ $(http_code node1 http://127.0.0.1:15021/healthz/ready 2) == 200 ]]'
check "80 idle connections on :15020: /metrics answers 200" \
	eval '[[ $(http_code node1 http://127.0.0.1:15020/metrics 2) == 200 ]]'
touch "$T/ready-idle.stop" "$T/metrics-idle.stop"

# --- 3. unauthenticated connections to 15008 ---------------------------------------
pod_add node2 mesh cli --label app=cli 2>"$T/err" || die "ADD cli: $(cat "$T/err")"
check "before: cli -> srv:8080 (HBONE)" echo_ok cli "${POD_IP[srv]}" hbone-before
rss0=$(tunnel_rss_kb node1)
hold hs-idle "${POD_NETNS[ext]}" "${POD_IP[srv]}" 15008 1500
wait_for -t 20 held hs-idle 1500 || die "the idle 15008 connections did not connect"
t0=$SECONDS
check "1500 idle connections to 15008: refusals counted (per source address)" wait_for -t 10 \
	metric_above node1 'warren_hbone_refused_total{reason="source_limit"}' 1000
rss=$(($(tunnel_rss_kb node1) - rss0))
if ((rss < 8192)); then ok "1500 idle connections to 15008: the tunnel's RSS grew $rss KiB (< 8 MiB)"
else not_ok "1500 idle connections to 15008: the tunnel's RSS grew $rss KiB (< 8 MiB)"; fi
check "1500 idle connections to 15008: cli -> srv:8080 (HBONE) still works" echo_ok cli "${POD_IP[srv]}" hbone-during
# the tunnel's side of ext's connections still open (not yet timed out)
pending_from() { ss -N "${POD_NETNS[$1]}" -Htn state established "( sport = :15008 and dst ${POD_IP[$2]} )" | wc -l; } # POD FROM
none_pending() { (($(pending_from srv ext) == 0)); }
wait_for -t 8 none_pending; t=$((SECONDS - t0))
if ((t <= 8)) && none_pending; then ok "1500 idle connections to 15008: the pending handshakes time out (after $t s)"
else not_ok "1500 idle connections to 15008: the pending handshakes time out ($(pending_from srv ext) open after $t s)"; fi
touch "$T/hs-idle.stop"

# --- 4. a big admin answer ---------------------------------------------------------
SINK_PY='import selectors, socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9090)); s.listen(4096); s.setblocking(False)
sel = selectors.DefaultSelector(); sel.register(s, selectors.EVENT_READ)
held = []
while True:
    sel.select()
    try:
        while True:
            held.append(s.accept()[0])
    except BlockingIOError:
        pass'
bg ip netns exec "${POD_NETNS[srv]}" "$PYTHON" -c "$SINK_PY"
wait_listen "${POD_NETNS[srv]}" 9090 || die "sink in srv"
hold many "${POD_NETNS[cli]}" "${POD_IP[srv]}" 9090 3000
wait_for -t 60 held many 3000 || die "cli's 3000 connections"
inbound_at_least() { (($(metric node1 'warren_connections_active{direction="inbound"}') >= $1)); }
wait_for -t 60 inbound_at_least 2500 || die "node1 relays only $(metric node1 'warren_connections_active{direction="inbound"}') connections"
rss0=$(tunnel_rss_kb node1)
n_conns=$(wctl node1 -o json connections | "$PYTHON" -c 'import json, sys; print(len(json.load(sys.stdin)))')
rss=$(($(tunnel_rss_kb node1) - rss0))
if ((SAN)); then ok "GET /connections: RSS after the answer # SKIP sanitizer build (its allocator keeps freed memory)"
elif ((rss < 2048)); then ok "GET /connections listing $n_conns connections: RSS grew $rss KiB (< 2 MiB)"
else not_ok "GET /connections listing $n_conns connections: RSS grew $rss KiB (< 2 MiB)"; fi
touch "$T/many.stop"

sanitizer_clean node1 node2
