# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# make bench, section "waypoint" (sourced by tests/bench/run.sh after its
# traffic pods are up; uses its helpers and results file). warren-waypoint
# beside haproxy as the same mTLS HTTP proxy, in the same topology, run and
# rounds; docs/performance.md ("warren-waypoint").
#
#   node1                                             node2
#    ecli (bench, enrolled): GET http://10.96.0.30/      wsrv (bench, enrolled): httpload :8080
#      -> tunnel1 =HBONE=> wp (bench): warren-waypoint     ^
#                           =HBONE=> tunnel2 (wsrv:15008) -+
#    Gateway bench/waypoint; Service wapp 10.96.0.30:80 ("http") -> wsrv:8080,
#    istio.io/use-waypoint: waypoint
#    dcli (plain): GET http://127.0.0.1:28080/           dsrv (plain): httpload :8080
#      -> haproxy tcp =mTLS=> hwp (plain): haproxy http    ^
#                              =mTLS=> dsrv: haproxy tcp --+
#    dcli -> dsrv:8080 directly: the floor of "added latency"; ecli -> esrv:8080
#    (HBONE through both tunnels, no waypoint): the tunnels' share
#
# Both proxies log one line per request (the waypoint's JSON access log,
# haproxy's httplog on stdout), each to a file. The app is
# tests/tools/httpload (epoll, keep-alive, a BENCH_WP_BODY-byte answer);
# the paced client too. Per round (BENCH_ROUNDS, order alternating between
# the proxies): wrk keep-alive requests/s and p50/p99 (-c BENCH_WP_CONNS)
# on the four paths, then 1000 requests/s paced on 16 keep-alive
# connections (latency from when each request was due; the proxies' peak
# RSS and CPU meanwhile). Before the rounds: the waypoint's idle RSS
# (smaps_rollup) beside bounds started beside it, tests/waypoint-floor
# linked with exactly the waypoint's libraries: empty, and holding a TLS
# server and client context with a P-256 certificate and key; and the
# latter linked without libcurl (what libcurl's dependencies cost).
# After: BENCH_WP_IDLE idle keep-alive connections through each proxy
# (RSS delta / N), their first requests 16 at a time, then all at once.
WP_CONNS=${BENCH_WP_CONNS:-32}
WP_IDLE=${BENCH_WP_IDLE:-1000}
WP_BODY=${BENCH_WP_BODY:-128}
WP_VIP=10.96.0.30
HTTPLOAD=$WARREN_BUILD/tests/httpload
need wrk
need_built tests/httpload tests/waypoint-floor tests/waypoint-floor-nocurl

settle() { RSS_LAST=(); wait_for -t 10 pid_settled "$1"; } # PID (run.sh's helpers)
rollup() { # KEY PID: KEY.anon, KEY.file, KEY.pdirty from smaps_rollup (KiB)
	awk -v k="$1" '/^Rss:/ {r = $2} /^Anonymous:/ {a = $2} /^Private_Dirty:/ {d = $2}
		END {print k ".anon " a; print k ".file " r - a; print k ".pdirty " d}' "/proc/$2/smaps_rollup" >>"$R"
}

wrk_run() { # KEY POD URL: KEY.rps, KEY.p50, KEY.p99 (us), KEY.err
	local key=$1 pod=$2 url=$3
	pexec "$pod" wrk -t 2 -c "$WP_CONNS" -d "${SECS}s" --latency "$url" 2>&1 | awk -v k="$key" '
		function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6; return "nan" }
		/^Requests\/sec:/ { rps = $2 }
		$1 == "50%" { p50 = us($2) } $1 == "99%" { p99 = us($2) }
		/Non-2xx/ { err += $NF } /Socket errors/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
		END { print k ".rps " (rps ? rps : "nan"); print k ".p50 " (p50 ? p50 : "nan"); print k ".p99 " (p99 ? p99 : "nan"); print k ".err " err + 0 }' >>"$R"
}
paced_run() { # KEY POD HOST PORT "PIDS": 1000 req/s on 16 connections; KEY.rate .err
	# .p50 .p99; the PIDS' CPU per request (KEY.cpu_us) and the first PID's peak RSS (KEY.peak)
	local key=$1 pod=$2 host=$3 port=$4 pids=${5:-} a=0 b=0 p s
	for p in $pids; do a=$((a + $(ticks "$p"))); done
	if [[ -n $pids ]]; then
		: >"$T/$key.peak.on"
		pid_peak "${pids%% *}" "$T/$key.peak" & s=$!
	fi
	pexec "$pod" "$HTTPLOAD" rate "$host" "$port" 16 1000 "$SECS" 2>>"$T/httpload.err" |
		awk -v k="$key" '{ print k ".rate " $6 + 0; print k ".err " $8; print k ".p50 " $10; print k ".p99 " $12 }' >>"$R"
	[[ -n $pids ]] || return 0
	rm -f "$T/$key.peak.on"
	wait "$s"
	for p in $pids; do b=$((b + $(ticks "$p"))); done
	res "$key.peak" "$(cat "$T/$key.peak")"
	res "$key.cpu_us" "$(awk -v t=$((b - a)) -v hz="$TCK" -v s="$SECS" 'BEGIN {printf "%.1f", t / hz * 1e6 / (1000 * s)}')"
}
hold_conns() { # KEY POD HOST PORT PID [CONC]: WP_IDLE idle keep-alive connections, their
	# first requests at most CONC (16) at a time; PID's KEY.kib_per_conn
	local key=$1 pod=$2 host=$3 port=$4 pid=$5 conc=${6:-16} r0 r1 h
	settle "$pid"
	r0=$(pid_rss "$pid")
	: >"$T/$key.hold"
	# not pexec: $! must be httpload itself, so the TERM below reaches it
	ip netns exec "${POD_NETNS[$pod]}" "$HTTPLOAD" hold "$host" "$port" "$WP_IDLE" "$conc" >"$T/$key.hold" 2>>"$T/httpload.err" &
	h=$!
	if wait_for -t 60 grep -q '^ready' "$T/$key.hold"; then
		settle "$pid"
		r1=$(pid_rss "$pid")
		res "$key.kib_per_conn" "$(awk -v a=$((r1 - r0)) -v n="$WP_IDLE" 'BEGIN {printf "%.2f", a / n}')"
		res "$key.rss" "$r0 -> $r1"
	else
		log "idle HTTP connections ($key) not ready: $(tail -n 2 "$T/httpload.err")"
		res "$key.kib_per_conn" nan
	fi
	kill -TERM "$h" 2>/dev/null
	wait "$h" 2>/dev/null
}

# haproxy as the same mTLS HTTP proxy: tcp (plain in, mTLS out) in dcli,
# http in hwp (mTLS in, client certificate verified; mTLS out with a
# verified client certificate), tcp in dsrv (mTLS in, plain to the app).
# Certificates and cipher suites: haproxy_up mtls's (the mesh CA).
haproxy_http_up() {
	local d=$T/haproxy-mtls ca=$T/ca/root-cert.pem tls glob
	tls="ssl crt $d/client.pem ca-file $ca verify required"
	glob="global
	maxconn 8000
	ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
	ssl-default-server-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
	ssl-default-bind-options ssl-min-ver TLSv1.3
	ssl-default-server-options ssl-min-ver TLSv1.3
defaults
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	timeout http-keep-alive 60s"
	cat >"$d/wp-client.cfg" <<EOF
$glob
listen http
	mode tcp
	bind 127.0.0.1:28080
	server m $HWP:28443 $tls
EOF
	cat >"$d/wp-middle.cfg" <<EOF
$glob
frontend http
	mode http
	log stdout format raw local0
	option httplog
	bind $HWP:28443 ssl crt $d/server.pem ca-file $ca verify required
	default_backend app
backend app
	mode http
	server s $DS:28444 $tls
EOF
	cat >"$d/wp-server.cfg" <<EOF
$glob
listen http
	mode tcp
	bind $DS:28444 ssl crt $d/server.pem ca-file $ca verify required
	server app 127.0.0.1:8080
EOF
	bg ip netns exec "${POD_NETNS[dsrv]}" haproxy -db -f "$d/wp-server.cfg" >"$d/wp-server.log" 2>&1
	HWS_PID=$!
	bg ip netns exec "${POD_NETNS[hwp]}" haproxy -db -f "$d/wp-middle.cfg" >"$d/wp-middle.log" 2>&1
	HWM_PID=$!
	bg ip netns exec "${POD_NETNS[dcli]}" haproxy -db -f "$d/wp-client.cfg" >"$d/wp-client.log" 2>&1
	HWC_PID=$!
	wait_listen "${POD_NETNS[dsrv]}" 28444 && wait_listen "${POD_NETNS[hwp]}" 28443 &&
		wait_listen "${POD_NETNS[dcli]}" 28080 || return 1
	[[ $(pexec dcli curl -s --max-time 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:28080/) == 200 ]]
}

# --- setup ---------------------------------------------------------------------
log "waypoint: mesh CA, waypoint pod, Service wapp, haproxy trio"
if [[ $MTLS_CA != "$T/ca" ]]; then # the mtls section did not run: HBONE from here
	bash "$WARREN_ROOT/hack/gen-ca.sh" "$T/ca" >/dev/null 2>&1 || die "gen-ca.sh"
	MTLS_CA=$T/ca
	tunnel_stop node1; tunnel_stop node2
	tunnel_start node1 2>/dev/null && tunnel_start node2 2>/dev/null || die "tunnels with caDir"
fi
gateway bench waypoint
pod_define node1 bench wp --label gateway.networking.k8s.io/gateway-name=waypoint || die "define wp"
set_sa bench wp waypoint
pod_cni_add wp 2>"$T/err" || die "ADD wp: $(cat "$T/err")"
pod_add node2 bench wsrv --label app=wsrv 2>"$T/err" || die "ADD wsrv: $(cat "$T/err")"
pod_add node1 plain hwp 2>"$T/err" || die "ADD hwp: $(cat "$T/err")"
HWP=${POD_IP[hwp]}
for s in dsrv wsrv esrv; do
	bg ip netns exec "${POD_NETNS[$s]}" "$HTTPLOAD" serve 8080 "$WP_BODY"
	wait_listen "${POD_NETNS[$s]}" 8080 || die "httpload in $s"
done
mesh service bench wapp --selector app=wsrv --port 80:8080 --cluster-ip "$WP_VIP" >/dev/null
mesh_py "[o['spec']['ports'][0].__setitem__('name', 'http') for o in objs if o['kind'] == 'Service' and o['metadata']['name'] == 'wapp']"
svc_label bench wapp istio.io/use-waypoint waypoint
waypoint_run wp bench waypoint --log-level warn
wait_for -t 10 waypoint_ready wp || die "warren-waypoint not ready (see $T/wp.log)"
# --- idle RSS and its bounds -------------------------------------------------------
# Ready, no request yet; the bounds start beside it. haproxy's middle is
# measured after the one request that checks its path.
bg "$WARREN_BUILD/tests/waypoint-floor" >"$T/floor0.out"
F0=$!
# a P-256 certificate and key, as the waypoint holds (the mesh root's)
bg "$WARREN_BUILD/tests/waypoint-floor" "$T/ca/root-cert.pem" "$T/ca/root-key.pem" "$T/ca/root-cert.pem" >"$T/floor1.out"
F1=$!
bg "$WARREN_BUILD/tests/waypoint-floor-nocurl" "$T/ca/root-cert.pem" "$T/ca/root-key.pem" "$T/ca/root-cert.pem" >"$T/floor2.out"
F2=$!
for f in 0 1 2; do wait_for -t 5 grep -q ready "$T/floor$f.out" || die "waypoint-floor ($f)"; done
settle "$WP_PID"; settle "$F0"; settle "$F1"; settle "$F2"
res w.idle "$(pid_rss "$WP_PID")"
rollup w.idle "$WP_PID"
res w.floor0 "$(pid_rss "$F0")"
rollup w.floor0 "$F0"
res w.floor1 "$(pid_rss "$F1")"
rollup w.floor1 "$F1"
res w.floor2 "$(pid_rss "$F2")"
rollup w.floor2 "$F2"
kill -TERM "$F0" "$F1" "$F2"

[[ $(pexec ecli curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://$WP_VIP/") == 200 ]] ||
	die "ecli -> $WP_VIP through the waypoint (see $T/wp.log)"
[[ -n ${HAP_CLI_PID:-} ]] || haproxy_up mtls "$T/ca" || die "haproxy mTLS certificates (see $T/haproxy-mtls)"
haproxy_http_up || die "haproxy as the mTLS HTTP proxy (see $T/haproxy-mtls/wp-*.log)"
settle "$HWM_PID"
res w.hidle "$(pid_rss "$HWM_PID")"
res w.hthreads "$(awk '/^Threads:/ {print $2}' "/proc/$HWM_PID/status")"


# --- rounds ----------------------------------------------------------------------------
wrk_run w.warm ecli "http://$WP_VIP/" >/dev/null
wrk_run w.warm dcli http://127.0.0.1:28080/ >/dev/null
for ((r = 1; r <= ROUNDS; r++)); do
	log "waypoint round $r/$ROUNDS: wrk and 1000 req/s paced; direct, waypoint, haproxy (alternating)"
	wrk_run w.d dcli "http://$DS:8080/"
	paced_run w.pd dcli "$DS" 8080
	# the tunnels alone (HBONE, pod-addressed, no waypoint): their share
	wrk_run w.t ecli "http://$ES:8080/"
	paced_run w.pt ecli "$ES" 8080 "${TUNNEL_PID[node1]} ${TUNNEL_PID[node2]}"
	order="wp hap"
	((r % 2 == 0)) && order="hap wp"
	for who in $order; do
		if [[ $who == wp ]]; then
			wrk_run w.w ecli "http://$WP_VIP/"
			paced_run w.pw ecli "$WP_VIP" 80 "$WP_PID ${TUNNEL_PID[node1]} ${TUNNEL_PID[node2]}"
		else
			wrk_run w.h dcli http://127.0.0.1:28080/
			paced_run w.ph dcli 127.0.0.1 28080 "$HWM_PID $HWC_PID $HWS_PID"
		fi
	done
done

# upstream HBONE streams the waypoint opened vs took parked (reused)
pexec wp curl -s --max-time 2 http://127.0.0.1:15020/metrics |
	awk '/^warren_waypoint_upstream_streams_total/ { print ($0 ~ /reused="true"/ ? "w.up.reused " : "w.up.new ") $NF }' >>"$R"
res w.requests "$(pexec wp curl -s --max-time 2 http://127.0.0.1:15021/stats | awk '$1 == "requests" {print $2}')"

# --- idle keep-alive connections -----------------------------------------------------
log "waypoint: $WP_IDLE idle keep-alive connections through each proxy"
hold_conns w.cw ecli "$WP_VIP" 80 "$WP_PID"
hold_conns w.ch dcli 127.0.0.1 28080 "$HWM_PID"
# the same with every first request at once: what a burst leaves behind
hold_conns w.bw ecli "$WP_VIP" 80 "$WP_PID" "$WP_IDLE"
hold_conns w.bh dcli 127.0.0.1 28080 "$HWM_PID" "$WP_IDLE"
res w.after "$(pid_rss "$WP_PID")"

wpb_report() {
	PYTHONPATH=$WARREN_ROOT/tests/bench "$PYTHON" - "$R" "$ROUNDS" "$WP_CONNS" "$WP_IDLE" "$WP_BODY" <<'EOF'
import statistics, sys
from results import Results
V = Results(sys.argv[1])
nums, med = V.nums, V.med
rounds, conns, idle, body = sys.argv[2:6]
def mmm(k, fmt):
    a = nums(k)
    return "%s [%s-%s]" % (fmt % statistics.median(a), fmt % a[0], fmt % a[-1]) if a else "n/a"
def r(a, b): return "%.2fx" % (a / b) if a == a and b == b and b else "n/a"
def ra(a, b): # added latency over haproxy's: a ratio only when haproxy added some
    return r(a, b) if b == b and b > 0 else "n/a (haproxy's %+.0f us)" % b
def mib(k): return med(k) / 1024
def raw(k): return V.get(k, ["n/a"])[-1]
rows = []
def row(*x): rows.append(x)
d50, d99 = med("w.d.p50"), med("w.d.p99")
w50, w99, h50, h99 = med("w.w.p50") - d50, med("w.w.p99") - d99, med("w.h.p50") - d50, med("w.h.p99") - d99
print()
print("-- waypoint: warren-waypoint vs haproxy 2.6 as the same mTLS HTTP proxy (%s interleaved rounds: median [min-max]; "
      "wrk -c %s keep-alive, %s-byte answers)" % (rounds, conns, body))
row("requests/s, direct (no proxy)", mmm("w.d.rps", "%.0f"), "", "floor of added latency; errors %s" % raw("w.d.err"))
row("requests/s, haproxy", mmm("w.h.rps", "%.0f"), "", "peer baseline: %s of direct; errors %s" % (r(med("w.h.rps"), med("w.d.rps")), raw("w.h.err")))
row("requests/s, waypoint", mmm("w.w.rps", "%.0f"), ">= 1.0x haproxy",
    "%s of haproxy, %s of direct; errors %s" % (r(med("w.w.rps"), med("w.h.rps")), r(med("w.w.rps"), med("w.d.rps")), raw("w.w.err")))
row("requests/s, tunnels only (HBONE, no waypoint)", mmm("w.t.rps", "%.0f"), "", "where the path's time goes: %s of direct; errors %s" % (
    r(med("w.t.rps"), med("w.d.rps")), raw("w.t.err")))
row("wrk p50 / p99, direct", "%s / %s us" % (mmm("w.d.p50", "%.0f"), mmm("w.d.p99", "%.0f")), "", "closed loop: queueing at saturation")
row("wrk p50 / p99, haproxy", "%s / %s us" % (mmm("w.h.p50", "%.0f"), mmm("w.h.p99", "%.0f")), "", "added %+.0f / %+.0f us" % (h50, h99))
row("wrk p50 / p99, waypoint", "%s / %s us" % (mmm("w.w.p50", "%.0f"), mmm("w.w.p99", "%.0f")), "added <= haproxy's",
    "added %+.0f / %+.0f us: p50 %s, p99 %s of haproxy's added" % (w50, w99, ra(w50, h50), ra(w99, h99)))
p50, p99 = med("w.pd.p50"), med("w.pd.p99")
pw50, pw99, ph50, ph99 = med("w.pw.p50") - p50, med("w.pw.p99") - p99, med("w.ph.p50") - p50, med("w.ph.p99") - p99
row("1000 req/s paced (16 conns) p50 / p99, direct", "%s / %s us" % (mmm("w.pd.p50", "%.0f"), mmm("w.pd.p99", "%.0f")), "",
    "from when each request was due; achieved %s /s" % raw("w.pd.rate"))
row("1000 req/s paced p50 / p99, tunnels only", "%s / %s us" % (mmm("w.pt.p50", "%.0f"), mmm("w.pt.p99", "%.0f")), "",
    "added %+.0f / %+.0f us; CPU per request, both tunnels %.1f us" % (med("w.pt.p50") - p50, med("w.pt.p99") - p99, med("w.pt.cpu_us")))
row("1000 req/s paced p50 / p99, haproxy", "%s / %s us" % (mmm("w.ph.p50", "%.0f"), mmm("w.ph.p99", "%.0f")), "",
    "added %+.0f / %+.0f us; errors %s" % (ph50, ph99, raw("w.ph.err")))
row("1000 req/s paced p50 / p99, waypoint", "%s / %s us" % (mmm("w.pw.p50", "%.0f"), mmm("w.pw.p99", "%.0f")), "added <= haproxy's",
    "added %+.0f / %+.0f us: p50 %s, p99 %s of haproxy's added; errors %s" % (pw50, pw99, ra(pw50, ph50), ra(pw99, ph99), raw("w.pw.err")))
row("CPU per request at 1000 req/s, whole path", "%.1f / %.1f us" % (med("w.pw.cpu_us"), med("w.ph.cpu_us")), "",
    "warren (waypoint + both tunnels) / haproxy (its three): %s; the waypoint answered %s requests, upstream HBONE streams %s new, %s reused" % (
        r(med("w.pw.cpu_us"), med("w.ph.cpu_us")), raw("w.requests"), raw("w.up.new"), raw("w.up.reused")))
row("waypoint RSS idle (ready, no traffic)", "%.1f MiB" % mib("w.idle"), "<= 8 MiB",
    "%s of budget; %s KiB anonymous, %s KiB file-backed, %s KiB private dirty" % (r(mib("w.idle"), 8), raw("w.idle.anon"), raw("w.idle.file"), raw("w.idle.pdirty")))
row("  bound: empty program, the waypoint's libraries", "%.1f MiB" % mib("w.floor0"), "",
    "tests/waypoint-floor, same run: %s KiB anonymous, %s KiB file-backed" % (raw("w.floor0.anon"), raw("w.floor0.file")))
row("  bound: the same holding TLS server + client contexts", "%.1f MiB" % mib("w.floor1"), "",
    "%s KiB anonymous, %s KiB file-backed; the waypoint's own share: %+.1f MiB" % (
        raw("w.floor1.anon"), raw("w.floor1.file"), mib("w.idle") - mib("w.floor1")))
row("  bound: the same without libcurl", "%.1f MiB" % mib("w.floor2"), "",
    "%s KiB anonymous, %s KiB file-backed: libcurl and its dependencies cost %.1f MiB" % (
        raw("w.floor2.anon"), raw("w.floor2.file"), mib("w.floor1") - mib("w.floor2")))
row("  haproxy (middle) idle", "%.1f MiB" % mib("w.hidle"), "", "%s threads" % raw("w.hthreads"))
row("waypoint RSS at 1000 req/s (peak)", "%.1f MiB" % (max(nums("w.pw.peak") or [float("nan")]) / 1024), "<= 16 MiB",
    "largest over the rounds' paced runs; haproxy middle %.1f MiB" % (max(nums("w.ph.peak") or [float("nan")]) / 1024))
row("RSS per idle client keep-alive connection", "%.2f KiB" % med("w.cw.kib_per_conn"), "<= 16 KiB",
    "%s idle connections, one request each, 16 at a time: waypoint %s KiB; haproxy middle %.2f KiB/conn (%s KiB)" % (
        idle, raw("w.cw.rss"), med("w.ch.kib_per_conn"), raw("w.ch.rss")))
row("  the same, every first request at once", "%.2f KiB" % med("w.bw.kib_per_conn"), "",
    "what the burst leaves resident, settled: waypoint %s KiB; haproxy middle %.2f KiB/conn (%s KiB)" % (
        raw("w.bw.rss"), med("w.bh.kib_per_conn"), raw("w.bh.rss")))
hdr = ("figure", "value", "budget", "ratio / note")
w = [max(len(x[i]) for x in rows + [hdr]) for i in range(3)]
print("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr[:3])) + "  " + hdr[3])
for x in rows:
    print("  ".join(c.ljust(w[i]) for i, c in enumerate(x[:3])) + "  " + x[3])
EOF
}
