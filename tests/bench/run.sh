#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# warren benchmark: one command, one run, one table of figures and ratios
# against baselines measured in the same run on the same topology
# (docs/performance.md). Never pass/fail: budgets are printed beside the
# figures for reading, the exit status only says whether the run completed.
#
#   node1 netns (10.0.0.1/30) <====== veth ======> node2 netns (10.0.0.2/30)
#     cni0 10.244.1.1/24                            cni0 10.244.2.1/24
#      |-- dcli (ns plain)     --- direct --->       |-- dsrv (ns plain): iperf3, sockperf, connrate
#      |     haproxy mTLS client -- TLS 1.3 ----->   |     haproxy mTLS server (peer baseline)
#      |     haproxy TCP client  -- plain ------->   |     haproxy TCP server (plaintext peer)
#      |-- ecli (ns bench, enrolled) -- tunnels -->  |-- esrv (ns bench, enrolled): same servers
#      |-- cycle pods (ADD/DEL latency), idle pods (memory)
#      |-- wp (ns bench): warren-waypoint            |-- wsrv (ns bench, enrolled): HTTP app
#      |-- hwp (ns plain): haproxy mode http         (waypoint section: its own diagram)
#     warren-tunnel (node1)                          warren-tunnel (node2)
#
# Sections (BENCH_SECTIONS, default "cni mem plain ebpf mtls waypoint"):
#   cni    CNI ADD latency of warren-cni (its own exec, from the chain
#          runner's timings) for an enrolled pod, p50/p99 over N ADD/DEL
#          cycles, beside a non-enrolled pod's, and the whole chain's ADD;
#   mem    tunnel RSS per enrolled idle pod (VmRSS delta / M pods);
#   plain  tunnels in plaintext mode. BENCH_ROUNDS interleaved rounds of
#          {iperf3 direct, tunnels, haproxy pair; sockperf direct,
#          tunnels, haproxy pair} (medians and spread), the haproxy pair
#          being the relay peer (plain TCP, kernel splicing, in dcli and
#          dsrv, not transparent: no capture, no source IP kept), CPU
#          seconds per GB of every
#          process (iperf3's own accounting for its ends, /proc/PID/stat
#          deltas for the tunnels); then 8-stream iperf3, connections/s
#          (tests/tools/connrate), memory per open idle relayed connection
#          and tunnel RSS/CPU at 1000 req/s of short 1 KiB connections;
#   ebpf   the two capture modes side by side, tunnels in plaintext: a
#          second pair of enrolled pods, bcli -> bsrv, captured by the
#          eBPF mode (redirect "ebpf", docs/ebpf.md) beside ecli -> esrv
#          (nftables). BENCH_ROUNDS interleaved rounds of {connections/s
#          nftables, eBPF, haproxy plain pair; iperf3 1 stream nftables,
#          eBPF; sockperf direct, nftables, eBPF; BENCH_EBPF_CYCLES (30)
#          ADD/DEL cycles of an enrolled pod per mode}; min/median/max and
#          the eBPF/nftables ratios, and the conntrack entries left in the
#          client pods (none expected in the eBPF mode); and per round the
#          bound (bound_round: tests/tools/minrelay in place of the tunnels,
#          in both modes and as an explicit pair without capture);
#   mtls   only when warren-tunnel accepts caDir: both tunnels restarted
#          with a mesh CA (hack/gen-ca.sh; enrolled pods survive the
#          restart), ecli -> esrv then flows over HBONE. Rounds of
#          {iperf3 HBONE, iperf3 haproxy, sockperf HBONE, sockperf
#          haproxy, iperf3 direct across the nodes and within a pod (the
#          floor any user-space TLS relay pair pays per GB: those two TCP
#          legs plus AES-GCM), the same through mintls (tests/tools/mintls:
#          the least a TLS relay pair does here, the bound)}, then the same
#          single-run figures as plain, then
#          1 KiB ping-pong (pingpong: p99, p99.9, max) quiet, while both
#          tunnels reload a large mesh model and while the admin API lists
#          the open connections (tests/bench/cp-load.py), and
#          connections/s through the large model. haproxy:
#          TLS 1.3, ECDSA P-256 leaves from the same CA (openssl), client
#          certificate verified, a client-side haproxy in dcli (plain in,
#          mTLS out) and a server-side one in dsrv (mTLS in, plain to the
#          app), same cipher suites as warren.
#   waypoint warren-waypoint beside haproxy as the same mTLS HTTP proxy
#          (tests/bench/waypoint.sh, its own diagram): wrk keep-alive
#          requests/s and p50/p99, added over the direct path (the tunnels
#          alone beside), 1000 req/s paced, the waypoint's RSS idle (beside its bounds,
#          tests/waypoint-floor), at 1000 req/s and per idle keep-alive
#          client connection; tunnels with a mesh CA (as mtls).
# Env: B / WARREN_BUILD, BENCH_CYCLES (100), BENCH_IDLE_PODS (100),
#      BENCH_SECONDS (5, per iperf3/sockperf/connrate run), BENCH_ROUNDS (3),
#      BENCH_IDLE_CONNS (1000), BENCH_SECTIONS, TUNNEL_LOG_LEVEL (warn),
#      BENCH_PERF_CALLGRAPH (perf's --call-graph for those: dwarf
#      finds the callers of libc's memcpy/memmove, which fp cannot),
#      BENCH_PERF=1 (perf record -g both tunnels during one iperf3 and one
#      connrate run per mode, in the mtls section also 8 streams, and
#      haproxy's mTLS pair during 1 and 8 streams; reports kept in $T,
#      implies KEEP_TMP),
#      BENCH_STRACE=1 (strace -c both tunnels during one connrate run per
#      capture mode in the ebpf section, and haproxy's plain pair during
#      one of its own: syscalls per connection; and in the mtls section
#      during one iperf3 run of 1 and one of 8 streams: syscalls per GB;
#      implies KEEP_TMP),
#      BENCH_BOUND=0 (the ebpf section skips its bound: minrelay, a relay
#      doing only the kernel's part per connection, run in the enrolled
#      pods in both modes and as an explicit pair beside haproxy's; with
#      BENCH_PERF, a whole-machine profile of its eBPF and explicit runs)
#      and the mtls section its: mintls, a minimal TLS relay pair placed as
#      haproxy's, in the same rounds for 1 and 8 streams and ping-pong),
#      BENCH_MINTLS_SMALL=1 (a second mintls pair with 16 KiB buffers),
#      BENCH_WORKERS (workerThreads of both tunnels; unset: the default),
#      BENCH_CP_PODS (5000, pods in the mesh model the control-plane rows
#      reload), BENCH_TUNNEL_CONF (YAML lines added to both tunnels'
#      configuration, e.g. "hostProbeSnat: false"),
#      BENCH_BEFORE (a build directory, e.g. one made from the commit before a
#      change: each mtls round also runs the HBONE 1-stream, 8-stream and
#      ping-pong figures with both tunnels restarted from its warren-tunnel,
#      interleaved with the current build's and haproxy's, first in odd
#      rounds and last in even ones; rows "before"; the ebpf section's
#      rounds also measure connections/s in both modes with both tunnels
#      restarted from it),
#      with BENCH_BEFORE the control-plane rows run for both builds, back to
#      back, BENCH_CP_ROUNDS (1) times (rows "before"), BENCH_CP_ONLY=1 (the
#      mtls section measures only those rows and connections/s),
#      BENCH_MTLS_ROUNDS_ONLY=1 (the mtls section stops after its rounds:
#      no connection rate, idle connections, control-plane or worker rows),
#      BENCH_WP_CONNS (32, wrk's connections), BENCH_WP_IDLE (1000, idle
#      keep-alive connections), BENCH_WP_BODY (128, the app's answer size):
#      the waypoint section.
set -uo pipefail
source "$(dirname "$0")/../netns/lib.sh"

CYCLES=${BENCH_CYCLES:-100}
IDLE=${BENCH_IDLE_PODS:-100}
SECS=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
NCONN=${BENCH_IDLE_CONNS:-1000}
SECTIONS=" ${BENCH_SECTIONS:-cni mem plain ebpf mtls waypoint} "
ECYCLES=${BENCH_EBPF_CYCLES:-30}
export TUNNEL_LOG_LEVEL=${TUNNEL_LOG_LEVEL:-warn}
[[ -n ${BENCH_PERF:-}${BENCH_STRACE:-} ]] && export KEEP_TMP=1
has() { [[ $SECTIONS == *" $1 "* ]]; }

lib_init
need iperf3 sockperf
need_built warren-cni warren-tunnel warrenctl tests/connrate tests/pingpong tests/minrelay tests/mintls
CONNRATE=$WARREN_BUILD/tests/connrate
MINRELAY=$WARREN_BUILD/tests/minrelay
MINTLS=$WARREN_BUILD/tests/mintls
log() { printf '[bench %3ds] %s\n' "$SECONDS" "$*" >&2; }
R=$T/results # "key value" lines; a key repeated once per round
res() { echo "$1 $2" >>"$R"; }
: >"$R"
# CPU pressure (PSI "some" total, us) over the run: how shared the machine was.
psi() { awk -F'total=' '/^some/ {print $2}' /proc/pressure/cpu 2>/dev/null || echo 0; }
PSI0=$(psi)
# 1000 idle connections need ~6 fds each in a tunnel (2 sockets, 2 pipes).
ulimit -n "$(ulimit -Hn)" 2>/dev/null

# Tunnel configuration: lib.sh's, plus what this hook prints (the mTLS keys
# once MTLS_CA is set).
MTLS_CA=
tunnel_conf_extra() { # NODE
	[[ -n ${BENCH_WORKERS:-} ]] && echo "workerThreads: $BENCH_WORKERS"
	[[ -n ${BENCH_TUNNEL_CONF:-} ]] && echo "$BENCH_TUNNEL_CONF"
	# The plaintext rows are plaintext by choice (mtls: disabled) until the
	# mTLS part restarts the tunnels with caDir.
	[[ -z $MTLS_CA ]] && echo "mtls: disabled"
	[[ -n $MTLS_CA ]] && cat <<EOF
caDir: $MTLS_CA
certLifetimeSeconds: 86400
poolMaxStreams: 100
poolIdleTimeoutMs: 300000
EOF
	return 0
}

# The eBPF mode's bpffs, mounted before the tunnels start: each runs
# under ip netns exec, which does not see mounts made afterwards.
if has ebpf; then
	mkdir -p "$T/bpffs" && mount -t bpf bpf "$T/bpffs" || die "bpffs at $T/bpffs"
fi
topo_up >/dev/null 2>&1 || die "topology"
mesh ns bench istio.io/dataplane-mode=ambient
mesh ns plain
tunnel_start node1 2>/dev/null || die "warren-tunnel node1"
tunnel_start node2 2>/dev/null || die "warren-tunnel node2"

# Percentiles (nearest rank) of the warren-cni / whole-chain ADD times.
stats() { # TIMINGS_FILE -> "wp50 wp99 cp50 cp99 n" in ms
	"$PYTHON" - "$1" <<'EOF'
import json, math, sys
w, chain, cur = [], [], 0.0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["command"] != "add":
        continue
    cur += r["seconds"]
    if r["type"] == "warren-cni":
        w.append(r["seconds"] * 1000)
        chain.append(cur * 1000)
        cur = 0.0
def pct(a, p):
    a = sorted(a)
    return a[max(0, math.ceil(p / 100 * len(a)) - 1)] if a else float("nan")
print("%.2f %.2f %.2f %.2f %d" % (pct(w, 50), pct(w, 99), pct(chain, 50), pct(chain, 99), len(w)))
EOF
}

cycles() { # NS NAME TIMINGS [N [CONFLIST]]: N ADD/DEL cycles of one pod through the full chain
	local ns=$1 name=$2 tf=$3 n=${4:-$CYCLES} i
	pod_define node1 "$ns" "$name" --no-mesh ${5:+--conflist "$5"} || return 1
	for ((i = 0; i < n; i++)); do
		chain node1 ADD "$name" --timings "$tf" >/dev/null 2>>"$T/cycles.err" || { log "ADD failed, see $T/cycles.err"; return 1; }
		chain node1 DEL "$name" >/dev/null 2>>"$T/cycles.err" || { log "DEL failed"; return 1; }
	done
	ip netns del "${POD_NETNS[$name]}"
}

# --- 1. CNI ADD latency ----------------------------------------------------------
if has cni; then
	log "ADD/DEL cycles: $CYCLES enrolled, $CYCLES not enrolled"
	# The enrolled pod's object: an ADD waits for it (not part of the timing).
	mesh pod bench cyc-e --node node1 >/dev/null || die "mesh pod cyc-e"
	cycles bench cyc-e "$T/enrolled.timings" || die "enrolled cycles"
	cycles plain cyc-p "$T/plain.timings" || die "plain cycles"
	read -r e50 e99 ec50 ec99 en <<<"$(stats "$T/enrolled.timings")"
	read -r p50 p99 pc50 pc99 pn <<<"$(stats "$T/plain.timings")"
	res cni.e50 "$e50"; res cni.e99 "$e99"; res cni.ec50 "$ec50"; res cni.ec99 "$ec99"; res cni.en "$en"
	res cni.p50 "$p50"; res cni.p99 "$p99"; res cni.pc50 "$pc50"; res cni.pc99 "$pc99"; res cni.pn "$pn"
fi

# --- 2. memory per enrolled idle pod ------------------------------------------------
if has mem; then
	log "memory: enrolling $IDLE idle pods"
	# Their objects in one edit (an ADD waits for its pod's); the ADDs below
	# then leave the mesh file alone (--no-mesh).
	mesh_py "objs.extend({'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'idle%d' % i, 'namespace': 'bench'}} for i in range($IDLE))" >/dev/null ||
		die "idle pods' objects"
	rss0=$(tunnel_rss_kb node1)
	for ((i = 0; i < IDLE; i++)); do
		pod_add node1 bench "idle$i" --no-mesh >/dev/null 2>>"$T/idle.err" || die "ADD idle$i: $(tail -n 3 "$T/idle.err")"
	done
	rss1=$(tunnel_rss_kb node1)
	res mem.idle "$IDLE"; res mem.rss0 "$rss0"; res mem.rss1 "$rss1"
	res mem.listed "$(wctl node1 -o json pods | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)))')"
	res mem.fds "$(ls "/proc/${TUNNEL_PID[node1]}/fd" | wc -l)"
	# The idle pods stay enrolled (idle) until cleanup: deleting them one
	# by one would only cost time.
fi

has plain || has mtls || has ebpf || has waypoint || { SKIP_TRAFFIC=1; }

# --- 3. traffic: helpers ------------------------------------------------------------
ticks() { # PID -> utime+stime in clock ticks
	awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
TCK=$(getconf CLK_TCK)
tun_ticks() { echo "$(ticks "${TUNNEL_PID[node1]}") $(ticks "${TUNNEL_PID[node2]}")"; }
# CPU ticks of each worker thread of both tunnels, "name ticks" per line
# (names like warren-w0, per tunnel node1/node2)
worker_ticks() {
	local n f comm
	for n in node1 node2; do
		for f in /proc/"${TUNNEL_PID[$n]}"/task/*; do
			read -r comm <"$f/comm" 2>/dev/null || continue
			[[ $comm == warren-w* ]] && echo "$n.${comm#warren-} $(awk '{print $14 + $15}' "$f/stat")"
		done
	done
}
iperf_workers() { # KEY CLIENT HOST PORT [args]: iperf_tun plus each worker
	# thread's CPU seconds (KEY.node1.w0_s ...)
	local key=$1 before after
	before=$(worker_ticks)
	iperf_tun "$@"
	after=$(worker_ticks)
	awk -v k="$key" -v t="$TCK" 'NR == FNR { b[$1] = $2; next } ($1 in b) { printf "%s.%s_s %.3f\n", k, $1, ($2 - b[$1]) / t }' \
		<(echo "$before") <(echo "$after") >>"$R"
}

iperf_run() { # KEY CLIENT HOST PORT [iperf3 args]: records KEY.gbps, KEY.cli_s, KEY.srv_s, KEY.gb
	local key=$1 cli=$2 host=$3 port=$4; shift 4
	local out
	out=$(pexec "$cli" iperf3 -c "$host" -p "$port" -t "$SECS" -J "$@" 2>/dev/null)
	"$PYTHON" -c '
import json, sys
k, secs = sys.argv[1], float(sys.argv[2])
try:
    j = json.loads(sys.stdin.read()); e = j["end"]
    bps = e["sum_received"]["bits_per_second"]; sec = e["sum_received"]["seconds"]
    gb = e["sum_received"]["bytes"] / 1e9
    cpu = e["cpu_utilization_percent"]
    print(k + ".gbps %.3f" % (bps / 1e9))
    print(k + ".gb %.4f" % gb)
    print(k + ".cli_s %.3f" % (cpu["host_total"] / 100 * sec))
    print(k + ".srv_s %.3f" % (cpu["remote_total"] / 100 * sec))
except Exception as ex:
    print(k + ".gbps nan")
' "$key" "$SECS" <<<"$out" >>"$R"
}

iperf_pair() { # KEY PID1 PID2 CLIENT HOST PORT [args]: iperf_run plus the CPU
	# seconds of the two relays on the path (KEY.t1_s, KEY.t2_s)
	local key=$1 p1=$2 p2=$3 a b c d
	shift 3
	a=$(ticks "$p1") b=$(ticks "$p2")
	iperf_run "$key" "$@"
	c=$(ticks "$p1") d=$(ticks "$p2")
	res "$key.t1_s" "$(awk -v x=$((c - a)) -v t="$TCK" 'BEGIN{printf "%.3f", x / t}')"
	res "$key.t2_s" "$(awk -v x=$((d - b)) -v t="$TCK" 'BEGIN{printf "%.3f", x / t}')"
}
iperf_tun() { # KEY CLIENT HOST PORT [args]: iperf_run plus tunnel CPU seconds
	local key=$1
	shift
	iperf_pair "$key" "${TUNNEL_PID[node1]}" "${TUNNEL_PID[node2]}" "$@"
}

sockperf_run() { # KEY CLIENT HOST PORT: records KEY.p50 KEY.p99 (usec, RTT/2)
	local key=$1 cli=$2 host=$3 port=$4
	pexec "$cli" sockperf ping-pong --tcp -i "$host" -p "$port" --mps 1000 -m 1024 -t "$SECS" 2>&1 |
		"$PYTHON" -c '
import re, sys
k, t = sys.argv[1], sys.stdin.read()
def p(x):
    m = re.search(r"percentile %s\s*=\s*([0-9.]+)" % re.escape(x), t)
    return m.group(1) if m else "nan"
print(k + ".p50", p("50.000")); print(k + ".p99", p("99.000"))' "$key" >>"$R"
}

# The same 1 KiB ping-pong at 1000/s from a client that sleeps between
# messages (tests/tools/pingpong) against the echo server on 7001: sockperf
# paces by spinning on one of the two cores, which leaves a single core to
# every other hop. With PIN, the client, the echo server and both tunnels
# run on CPU 0 only, so no hop waits for another CPU to wake up: the
# difference between the two is the cost of cross-CPU wake-ups.
pingpong_run() { # KEY CLIENT HOST [PIN]: records KEY.p50 .p99 .p999 .max (usec, RTT/2)
	local key=$1 cli=$2 host=$3 pin=${4:-} pids p
	local run=("$WARREN_BUILD/tests/pingpong" "$host" 7001 1000 "$SECS" 1024)
	if [[ -n $pin ]]; then
		pids="${TUNNEL_PID[node1]} ${TUNNEL_PID[node2]} $(pgrep -f "$PINGPONG_ECHO")"
		for p in $pids; do taskset -a -p -c 0 "$p" >/dev/null; done
		run=(taskset -c 0 "${run[@]}")
	fi
	pexec "$cli" "${run[@]}" 2>>"$T/pingpong.err" |
		awk -v k="$key" '{ print k ".p50 " $4; print k ".p99 " $6; print k ".p999 " $8; print k ".max " $10 }' >>"$R"
	if [[ -n $pin ]]; then
		for p in $pids; do taskset -a -p -c "0-$(($(nproc) - 1))" "$p" >/dev/null; done
	fi
}
PINGPONG_ECHO="$CONNRATE server 7001 0"

connrate_run() { # KEY CLIENT HOST PORT SECS CONC SIZE [RATE]: KEY.rate KEY.err KEY.lat50 KEY.lat99
	local key=$1 cli=$2; shift 2
	pexec "$cli" "$CONNRATE" rate "$@" 2>>"$T/connrate.err" | awk -v k="$key" '
		{ print k ".rate " $6; print k ".err " $8; print k ".lat50 " $10; print k ".lat99 " $12 }' >>"$R"
}

# Open NCONN idle connections CLIENT -> HOST:PORT through the tunnels;
# records KEY.kb_per_conn (both tunnels' VmRSS delta / NCONN) and fds.
idle_conns() { # KEY CLIENT HOST PORT
	local key=$1 cli=$2 host=$3 port=$4 r0 r1 q0 q1 pid
	r0=$(tunnel_rss_kb node1) q0=$(tunnel_rss_kb node2)
	: >"$T/$key.hold"
	# not pexec: $! must be connrate itself, so the TERM below reaches it
	ip netns exec "${POD_NETNS[$cli]}" "$CONNRATE" hold "$host" "$port" "$NCONN" >"$T/$key.hold" 2>>"$T/connrate.err" &
	pid=$!
	if wait_for -t 60 grep -q '^ready' "$T/$key.hold"; then
		r1=$(tunnel_rss_kb node1) q1=$(tunnel_rss_kb node2)
		res "$key.kb_per_conn" "$(awk -v a=$((r1 - r0 + q1 - q0)) -v n="$NCONN" 'BEGIN{printf "%.2f", a / n}')"
		res "$key.rss" "$r0+$q0 -> $r1+$q1"
		res "$key.fds" "$(ls "/proc/${TUNNEL_PID[node1]}/fd" | wc -l)+$(ls "/proc/${TUNNEL_PID[node2]}/fd" | wc -l)"
	else
		log "idle connections ($key) not ready: $(tail -n 2 "$T/connrate.err")"
		res "$key.kb_per_conn" nan
	fi
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	# the tunnels see the closes: wait until their connections are gone
	wait_for -t 20 few_fds
}
few_fds() { (($(ls "/proc/${TUNNEL_PID[node1]}/fd" | wc -l) < 400)); }

# Tunnel RSS and CPU while CLIENT makes 1000 short 1 KiB request/response
# connections per second to HOST:PORT (records KEY.rss1/rss2 in KiB,
# KEY.cpu1/cpu2 in vCPU, KEY.rate achieved).
pid_rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; } # PID: KiB
pid_peak() { # PID FILE: the process's largest VmRSS (KiB) while FILE.on exists,
	# sampled every 100 ms (a sampling period, not a synchronization), into FILE
	local max=0 v
	while [[ -e $2.on ]]; do
		v=$(pid_rss "$1")
		((v > max)) && max=$v
		sleep 0.1
	done
	v=$(pid_rss "$1")
	((v > max)) && max=$v
	echo "$max" >"$2"
}
rss_peak() { pid_peak "${TUNNEL_PID[$1]}" "$2"; } # NODE FILE: the tunnel's
pid_settled() { # PID: VmRSS unchanged for a second (the heap trim after a
	# burst has run), so what the step before left does not count
	local now t
	now=$(pid_rss "$1") t=${EPOCHREALTIME/./}
	if [[ $now != "${RSS_LAST[$1]:-}" ]]; then
		RSS_LAST[$1]=$now RSS_SINCE[$1]=$t
		return 1
	fi
	((t - RSS_SINCE[$1] >= 1000000))
}
rss_settled() { pid_settled "${TUNNEL_PID[$1]}"; } # NODE: the tunnel's
declare -A RSS_LAST RSS_SINCE
load_1000() { # KEY CLIENT HOST PORT
	local key=$1 a b c d s1 s2
	RSS_LAST=()
	wait_for -t 10 rss_settled node1 && wait_for -t 10 rss_settled node2
	read -r a b <<<"$(tun_ticks)"
	: >"$T/rss1.on"; : >"$T/rss2.on"
	rss_peak node1 "$T/rss1" & s1=$!
	rss_peak node2 "$T/rss2" & s2=$!
	connrate_run "$key" "$2" "$3" "$4" "$SECS" 64 1024 1000
	rm -f "$T/rss1.on" "$T/rss2.on"
	wait "$s1" "$s2"
	read -r c d <<<"$(tun_ticks)"
	res "$key.rss1" "$(cat "$T/rss1")"
	res "$key.rss2" "$(cat "$T/rss2")"
	res "$key.anon1" "$(awk '/^RssAnon:/ {print $2}' "/proc/${TUNNEL_PID[node1]}/status")"
	res "$key.file1" "$(awk '/^RssFile:/ {print $2}' "/proc/${TUNNEL_PID[node1]}/status")"
	res "$key.cpu1" "$(awk -v x=$((c - a)) -v t="$TCK" -v s="$SECS" 'BEGIN{printf "%.3f", x / t / s}')"
	res "$key.cpu2" "$(awk -v x=$((d - b)) -v t="$TCK" -v s="$SECS" 'BEGIN{printf "%.3f", x / t / s}')"
}

# Per thread of both tunnels: "node/comm on-CPU-ns runqueue-wait-ns
# voluntary-switches involuntary-switches" (schedstat, status).
thread_sched() {
	local n f comm
	for n in node1 node2; do
		for f in /proc/"${TUNNEL_PID[$n]}"/task/*; do
			read -r comm <"$f/comm" 2>/dev/null || continue
			echo "$n/$comm $(cut -d' ' -f1,2 "$f/schedstat") $(awk '/^voluntary_ctxt/ {v=$2} /^nonvoluntary_ctxt/ {n=$2} END {print v, n}' "$f/status")"
		done
	done
}
perf_tunnels() { # NAME CMD...: perf record -g both tunnels while CMD runs, and
	# each tunnel thread's time on CPU, waiting for a CPU (runqueue) and
	# asleep (the rest of the wall time: epoll_wait, a lock), with its
	# context switches, over the same run ($T/sched.NAME.txt)
	local name=$1
	shift
	perf_pair "$name" "${TUNNEL_PID[node1]}" "${TUNNEL_PID[node2]}" "$@"
}
perf_pair() { # NAME PID1 PID2 CMD...: perf_tunnels for any two relays (the
	# haproxy pair: PID1's report is NAME.node1, PID2's NAME.node2; the
	# per-thread rows stay the tunnels')
	command -v perf >/dev/null || return 0
	local name=$1 p1 p2 s0 w0 cg=(-g)
	[[ -n ${BENCH_PERF_CALLGRAPH:-} ]] && cg=(--call-graph "$BENCH_PERF_CALLGRAPH")
	perf record -q "${cg[@]}" -o "$T/perf.$name.node1.data" -p "$2" >/dev/null 2>&1 &
	p1=$!
	perf record -q "${cg[@]}" -o "$T/perf.$name.node2.data" -p "$3" >/dev/null 2>&1 &
	p2=$!
	shift 3
	s0=$(thread_sched) w0=${EPOCHREALTIME/./}
	"$@" >/dev/null 2>&1
	awk -v wall=$((${EPOCHREALTIME/./} - w0)) 'NR == FNR { on[$1] = $2; rq[$1] = $3; v[$1] = $4; nv[$1] = $5; next }
		($1 in on) { o = ($2 - on[$1]) / 1e9; q = ($3 - rq[$1]) / 1e9; w = wall / 1e6
			printf "%-16s on-CPU %6.2f s  runqueue %6.2f s  asleep %6.2f s  switches %d voluntary, %d involuntary\n", $1, o, q, w - o - q, $4 - v[$1], $5 - nv[$1] }' \
		<(echo "$s0") <(thread_sched) >"$T/sched.$name.txt"
	kill -INT "$p1" "$p2"
	wait "$p1" "$p2"
	for n in node1 node2; do
		perf report -i "$T/perf.$name.$n.data" --no-children --stdio 2>/dev/null |
			grep -v '^#' | grep '%' | head -n 40 >"$T/perf.$name.$n.txt"
		perf report -i "$T/perf.$name.$n.data" --no-children --sort dso --stdio 2>/dev/null |
			grep -v '^#' | grep '%' | head -n 12 >"$T/perf.$name.$n.dso.txt"
	done
	log "perf reports: $T/perf.$name.node1.txt $T/perf.$name.node2.txt (per library: .dso.txt); threads: $T/sched.$name.txt"
}

perf_path() { # NAME CMD...: perf record -a -g while CMD runs; the report keeps
	# the relays' and connrate's samples (each runs the softirq work its
	# sends cause): $T/perf.NAME.txt (symbols), $T/perf.NAME.comm.txt
	command -v perf >/dev/null || return 0
	local name=$1 p
	shift
	perf record -q -a -g -o "$T/perf.$name.data" >/dev/null 2>&1 &
	p=$!
	"$@" >"$T/perf.$name.out" 2>&1
	kill -INT "$p"
	wait "$p"
	perf report -i "$T/perf.$name.data" --comms connrate,minrelay --no-children --stdio -g none 2>/dev/null |
		grep -v '^#' | grep '%' | head -n 50 >"$T/perf.$name.txt"
	perf report -i "$T/perf.$name.data" --sort comm --no-children --stdio -g none 2>/dev/null |
		grep -v '^#' | grep '%' | head -n 12 >"$T/perf.$name.comm.txt"
	log "whole-machine perf: $T/perf.$name.txt (connrate and minrelay only), $T/perf.$name.comm.txt"
}
strace_pids() { # NAME "NODE=PID ..." CMD...: strace -c -f each PID while CMD runs
	# (syscalls per connection: $T/strace.NAME.NODE.txt, divided by the
	# connections CMD reports in $T/strace.NAME.out, in $T/strace.NAME.per-conn)
	command -v strace >/dev/null || return 0
	local name=$1 np pids=() nodes=() i
	shift
	for np in $1; do
		nodes+=("${np%%=*}")
		strace -c -f -o "$T/strace.$name.${np%%=*}.txt" -p "${np#*=}" 2>"$T/strace.$name.${np%%=*}.err" &
		pids+=($!)
	done
	shift
	for i in "${nodes[@]}"; do wait_for -t 10 grep -q attached "$T/strace.$name.$i.err" || break; done
	"$@" >"$T/strace.$name.out" 2>&1
	kill -INT "${pids[@]}"
	wait "${pids[@]}"
	for i in "${nodes[@]}"; do
		awk -v conns="$(awk '{for (i = 1; i < NF; i++) if ($i == "conns") print $(i + 1)}' "$T/strace.$name.out")" \
			-v who="$i" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" && conns > 0 {
				printf "%s %s %.2f\n", who, $NF, $4 / conns }' "$T/strace.$name.$i.txt"
	done >"$T/strace.$name.per-conn"
	log "syscall counts: $T/strace.$name.*.txt, per connection: $T/strace.$name.per-conn (connections: $T/strace.$name.out)"
}
strace_tunnels() { # NAME CMD...: strace_pids on both tunnels
	local name=$1
	shift
	strace_pids "$name" "node1=${TUNNEL_PID[node1]} node2=${TUNNEL_PID[node2]}" "$@"
}

# haproxy as the peer relay pair: a client-side haproxy in dcli (the app
# connects to 127.0.0.1) and a server-side one in dsrv (connects to the app
# on 127.0.0.1). MODE mtls: TLS 1.3 with ECDSA P-256 leaves from CA (the
# mesh CA), client certificate verified, listening on 25201/21111/27000 ->
# 26443-26445; MODE plain: plain TCP with kernel splicing, as the relay
# peer of the plaintext tunnels, on 35201/31111/37000 -> 36443-36445.
# Sets HAP_CLI_PID/HAP_SRV_PID (mtls) or HPP_CLI_PID/HPP_SRV_PID (plain).
haproxy_up() { # MODE [CA]
	local mode=$1 ca=${2:-} d=$T/haproxy-$1 n base peer cs ss opts
	need haproxy
	mkdir -p "$d"
	if [[ $mode == mtls ]]; then
		need openssl
		for n in server client; do
			openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$n" \
				-keyout "$d/$n.key" -out "$d/$n.csr" 2>/dev/null || return 1
			printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$DS" >"$d/$n.ext"
			openssl x509 -req -in "$d/$n.csr" -CA "$ca/root-cert.pem" -CAkey "$ca/root-key.pem" \
				-CAcreateserial -days 2 -sha256 -extfile "$d/$n.ext" -out "$d/$n.crt" 2>/dev/null || return 1
			cat "$d/$n.crt" "$d/$n.key" >"$d/$n.pem"
		done
		base=2 cs=" ssl crt $d/client.pem ca-file $ca/root-cert.pem verify required"
		ss=" ssl crt $d/server.pem ca-file $ca/root-cert.pem verify required"
		opts="	ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
	ssl-default-server-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
	ssl-default-bind-options ssl-min-ver TLSv1.3
	ssl-default-server-options ssl-min-ver TLSv1.3"
	else
		base=3 cs="" ss="" opts=""
	fi
	local glob="global
	maxconn 4000
$opts
defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s"
	[[ $mode == plain ]] && glob+="
	option splice-auto"
	cat >"$d/client.cfg" <<EOF
$glob
listen iperf
	bind 127.0.0.1:${base}5201
	server s $DS:${base}6443$cs
listen sockperf
	bind 127.0.0.1:${base}1111
	server s $DS:${base}6444$cs
listen conn
	bind 127.0.0.1:${base}7000
	server s $DS:${base}6445$cs
EOF
	cat >"$d/server.cfg" <<EOF
$glob
listen iperf
	bind $DS:${base}6443$ss
	server app 127.0.0.1:5201
listen sockperf
	bind $DS:${base}6444$ss
	server app 127.0.0.1:11111
listen conn
	bind $DS:${base}6445$ss
	server app 127.0.0.1:7002
EOF
	bg ip netns exec "${POD_NETNS[dsrv]}" haproxy -db -f "$d/server.cfg" >"$d/server.log" 2>&1
	peer=$! # ip netns exec execs haproxy, which -db keeps in the foreground
	bg ip netns exec "${POD_NETNS[dcli]}" haproxy -db -f "$d/client.cfg" >"$d/client.log" 2>&1
	if [[ $mode == mtls ]]; then HAP_SRV_PID=$peer HAP_CLI_PID=$!; else HPP_SRV_PID=$peer HPP_CLI_PID=$!; fi
	wait_listen "${POD_NETNS[dsrv]}" "${base}6443" && wait_listen "${POD_NETNS[dcli]}" "${base}5201" || return 1
	# one end-to-end exchange proves the path (for mtls: handshake + verify)
	pexec dcli "$CONNRATE" rate 127.0.0.1 "${base}7000" 0.5 1 1 >>"$d/check" 2>&1
	awk '$2 > 0 && $8 == 0 {ok=1} END {exit !ok}' "$d/check"
}

# The bound of the HBONE per-byte figures (tests/tools/mintls): the least a
# pair of user-space TLS relays does here, placed as haproxy's pair is
# (dcli: plain in on 127.0.0.1, TLS out; dsrv: TLS in, plain to the app),
# with haproxy's certificates (ECDSA P-256 from the mesh CA), as many
# worker threads as the tunnels: 55201/51111 -> 56443/56444 (256 KiB
# buffers, reads of the app's bytes in chunks like the tunnels'); with
# BENCH_MINTLS_SMALL=1 a second pair with 16 KiB buffers (haproxy's size),
# 45201/41111 -> 46443/46444. Sets MT_CLI_PID/MT_SRV_PID (SM_... the second).
mintls_up() { # NAME BUF PORT-BASE
	local d=$T/haproxy-mtls w=${BENCH_WORKERS:-2} b=$3 srv
	MINTLS_BUF=$2 bg ip netns exec "${POD_NETNS[dsrv]}" "$MINTLS" server "$d/server.pem" "$MTLS_CA/root-cert.pem" "$w" \
		"$DS:${b}6443=127.0.0.1:5201" "$DS:${b}6444=127.0.0.1:11111" 2>"$T/$1.server.err"
	srv=$!
	MINTLS_BUF=$2 bg ip netns exec "${POD_NETNS[dcli]}" "$MINTLS" client "$d/client.pem" "$MTLS_CA/root-cert.pem" "$w" \
		"127.0.0.1:${b}5201=$DS:${b}6443" "127.0.0.1:${b}1111=$DS:${b}6444" 2>"$T/$1.client.err"
	if [[ $1 == mintls ]]; then MT_SRV_PID=$srv MT_CLI_PID=$!; else SM_SRV_PID=$srv SM_CLI_PID=$!; fi
	wait_for -t 10 grep -q listening "$T/$1.server.err" && wait_for -t 10 grep -q listening "$T/$1.client.err" &&
		pexec dcli timeout 20 iperf3 -c 127.0.0.1 -p "${b}5201" -n 1M >/dev/null 2>&1
}

if [[ -z ${SKIP_TRAFFIC:-} ]]; then
	pod_add node2 plain dsrv 2>/dev/null || die "ADD dsrv"
	pod_add node1 plain dcli 2>/dev/null || die "ADD dcli"
	pod_add node2 bench esrv 2>/dev/null || die "ADD esrv"
	pod_add node1 bench ecli 2>/dev/null || die "ADD ecli"
	for s in dsrv esrv; do
		bg ip netns exec "${POD_NETNS[$s]}" iperf3 -s -p 5201 >/dev/null 2>&1
		bg ip netns exec "${POD_NETNS[$s]}" sockperf sr --tcp -i 0.0.0.0 -p 11111 >/dev/null 2>&1
		bg ip netns exec "${POD_NETNS[$s]}" "$CONNRATE" server 7000 1024
		bg ip netns exec "${POD_NETNS[$s]}" "$CONNRATE" server 7001 0
		bg ip netns exec "${POD_NETNS[$s]}" "$CONNRATE" server 7002 1
		for port in 5201 11111 7000 7001 7002; do
			wait_listen "${POD_NETNS[$s]}" $port || die "server :$port in $s"
		done
	done
	# Short connections at 10k/s recycle the client's ephemeral ports.
	for p in dcli ecli; do pexec "$p" sysctl -qw net.ipv4.tcp_tw_reuse=1; done
	DS=${POD_IP[dsrv]} ES=${POD_IP[esrv]}
fi

# --- 4. plaintext relay -------------------------------------------------------------
if has plain; then
	haproxy_up plain || { log "haproxy plain relay baseline failed (see $T/haproxy-plain)"; HPP_BAD=1; }
	out0=$(nft_counter ecli warren-nat warren:nat-out-redirect-v4)
	for ((r = 1; r <= ROUNDS; r++)); do
		log "plain round $r/$ROUNDS: iperf3, sockperf, pingpong, pingpong on CPU 0; direct, tunnels, haproxy"
		iperf_run p.direct dcli "$DS" 5201
		iperf_tun p.tun ecli "$ES" 5201
		[[ -z ${HPP_BAD:-} ]] && iperf_pair p.hap "$HPP_CLI_PID" "$HPP_SRV_PID" dcli 127.0.0.1 35201
		sockperf_run p.ldirect dcli "$DS" 11111
		sockperf_run p.ltun ecli "$ES" 11111
		[[ -z ${HPP_BAD:-} ]] && sockperf_run p.lhap dcli 127.0.0.1 31111
		pingpong_run p.sdirect dcli "$DS"
		pingpong_run p.stun ecli "$ES"
		pingpong_run p.pdirect dcli "$DS" pin
		pingpong_run p.ptun ecli "$ES" pin
	done
	out1=$(nft_counter ecli warren-nat warren:nat-out-redirect-v4)
	res p.redirected "$out0 -> $out1"
	log "plain: 8 streams direct, tunnels"
	iperf_run p.direct8 dcli "$DS" 5201 -P 8
	iperf_workers p.tun8 ecli "$ES" 5201 -P 8
	log "plain: connections/s direct, tunnels"
	connrate_run p.cdirect dcli "$DS" 7002 "$SECS" 64 1
	connrate_run p.ctun ecli "$ES" 7002 "$SECS" 64 1
	[[ -z ${HPP_BAD:-} ]] && connrate_run p.chap dcli 127.0.0.1 37000 "$SECS" 64 1
	log "plain: $NCONN idle connections; RSS at 1000 req/s"
	idle_conns p.idle ecli "$ES" 7001
	load_1000 p.load ecli "$ES" 7000
	if [[ -n ${BENCH_PERF:-} ]]; then
		perf_tunnels plain-iperf pexec ecli iperf3 -c "$ES" -p 5201 -t "$SECS"
		perf_tunnels plain-conn pexec ecli "$CONNRATE" rate "$ES" 7002 "$SECS" 64 1
	fi
fi

# --- 4b. the capture modes side by side -------------------------------------------
# connrate_run, plus KEY.cpu_us: the CPU time (user + system, as /proc
# accounts it) that the processes PIDS spent per connection
connrate_cpu() { # KEY "PIDS" CLIENT HOST PORT
	local key=$1 pids=$2 a=0 b=0 p n
	shift 2
	for p in $pids; do a=$((a + $(ticks "$p"))); done
	connrate_run "$key" "$@" "$SECS" 64 1
	for p in $pids; do b=$((b + $(ticks "$p"))); done
	n=$(awk -v k="$key.rate" '$1 == k {v = $2} END {print v + 0}' "$R")
	res "$key.cpu_us" "$(awk -v t=$((b - a)) -v hz="$TCK" -v n="$n" -v s="$SECS" 'BEGIN {printf "%.1f", n ? t / hz * 1e6 / (n * s) : "nan"}')"
}
tunnels_restart() { # BUILD: both tunnels restarted from BUILD/warren-tunnel
	# (same configuration; tunnel_start waits until the enrolled pods are
	# adopted again)
	local build=$WARREN_BUILD ok=1
	tunnel_stop node1; tunnel_stop node2
	WARREN_BUILD=$1
	tunnel_start node1 2>/dev/null && tunnel_start node2 2>/dev/null && ok=0
	WARREN_BUILD=$build
	((ok == 0)) || { log "tunnels of $1 did not start (see $T/node*/tunnel.out)"; return 1; }
}
# The bound (tests/tools/minrelay): both tunnels stopped, a minimal relay in
# each of the four enrolled pods takes their listeners (eBPF: their map
# slots), and connections/s and CPU per connection run through it in both
# capture modes, and through the same relay placed as haproxy's pair is
# (explicit, in dcli and dsrv, no capture); then the tunnels start again and
# re-adopt the pods.
declare -A MR_PID
bound_round() { # R
	local p ok=1
	tunnel_stop node1; tunnel_stop node2
	for p in ecli esrv bcli bsrv dcli dsrv; do
		if [[ $p == dcli ]]; then
			ip netns exec "${POD_NETNS[$p]}" "$MINRELAY" explicit 127.0.0.1 47000 "$DS" 46445 2>"$T/minrelay.$p.err" &
		elif [[ $p == dsrv ]]; then
			ip netns exec "${POD_NETNS[$p]}" "$MINRELAY" explicit "$DS" 46445 127.0.0.1 7002 2>"$T/minrelay.$p.err" &
		elif [[ $p == b* ]]; then
			ip netns exec "${POD_NETNS[$p]}" "$MINRELAY" ebpf "$T/bpffs" "${POD_ID[$p]}" 2>"$T/minrelay.$p.err" &
		else
			ip netns exec "${POD_NETNS[$p]}" "$MINRELAY" nftables 2>"$T/minrelay.$p.err" &
		fi
		MR_PID[$p]=$!
		BG_PIDS+=($!)
	done
	for p in ecli esrv bcli bsrv dcli dsrv; do
		wait_for -t 10 grep -q listening "$T/minrelay.$p.err" || { log "minrelay in $p: $(cat "$T/minrelay.$p.err")"; ok=0; }
	done
	if ((ok)); then
		connrate_run x.warm ecli "$ES" 7002 1 8 1
		connrate_run x.warm bcli "$BS" 7002 1 8 1
		connrate_cpu x.cnm "${MR_PID[ecli]} ${MR_PID[esrv]}" ecli "$ES" 7002
		connrate_cpu x.cem "${MR_PID[bcli]} ${MR_PID[bsrv]}" bcli "$BS" 7002
		connrate_run x.warm dcli 127.0.0.1 47000 1 8 1
		connrate_cpu x.chm "${MR_PID[dcli]} ${MR_PID[dsrv]}" dcli 127.0.0.1 47000
		if [[ -n ${BENCH_PERF:-} ]] && (($1 == 1)); then
			perf_path bound-ebpf pexec bcli "$CONNRATE" rate "$BS" 7002 "$SECS" 64 1
			perf_path bound-explicit pexec dcli "$CONNRATE" rate 127.0.0.1 47000 "$SECS" 64 1
		fi
	fi
	kill "${MR_PID[@]}" 2>/dev/null
	wait "${MR_PID[@]}" 2>/dev/null
	for p in ecli esrv bcli bsrv dcli dsrv; do echo "$p round $1: $(tail -n 1 "$T/minrelay.$p.err")"; done >>"$T/minrelay.log"
	tunnels_restart "$WARREN_BUILD" || die "tunnels of $WARREN_BUILD did not restart after the bound"
	connrate_run x.warm ecli "$ES" 7002 1 8 1
	connrate_run x.warm bcli "$BS" 7002 1 8 1
}
# conntrack entries in POD's netns for TCP to PORT (the eBPF mode has none)
ct_entries() { pexec "$1" conntrack -L -p tcp --orig-port-dst "$2" 2>/dev/null | wc -l; }
if has ebpf; then
	need bpftool conntrack
	for n in node1 node2; do
		conflist_write "$n" "$T/$n.ebpf.conflist" 1 ",\"redirect\":\"ebpf\",\"bpfDir\":\"$T/bpffs\""
	done
	pod_add node2 bench bsrv --conflist "$T/node2.ebpf.conflist" 2>"$T/err" || die "ADD bsrv: $(cat "$T/err")"
	pod_add node1 bench bcli --conflist "$T/node1.ebpf.conflist" 2>"$T/err" || die "ADD bcli: $(cat "$T/err")"
	bg ip netns exec "${POD_NETNS[bsrv]}" iperf3 -s -p 5201 >/dev/null 2>&1
	bg ip netns exec "${POD_NETNS[bsrv]}" sockperf sr --tcp -i 0.0.0.0 -p 11111 >/dev/null 2>&1
	bg ip netns exec "${POD_NETNS[bsrv]}" "$CONNRATE" server 7002 1
	for port in 5201 11111 7002; do wait_listen "${POD_NETNS[bsrv]}" $port || die "server :$port in bsrv"; done
	pexec bcli sysctl -qw net.ipv4.tcp_tw_reuse=1
	BS=${POD_IP[bsrv]}
	[[ -n ${HPP_CLI_PID:-} || -n ${HPP_BAD:-} ]] ||
		haproxy_up plain || { log "haproxy plain relay baseline failed (see $T/haproxy-plain)"; HPP_BAD=1; }
	mesh pod bench cyc-n --node node1 >/dev/null && mesh pod bench cyc-b --node node1 >/dev/null || die "mesh pods cyc-n, cyc-b"
	connrate_run x.warm bcli "$BS" 7002 1 8 1
	connrate_run x.warm ecli "$ES" 7002 1 8 1
	ctn0=$(ct_entries ecli 7002) cte0=$(ct_entries bcli 7002)
	for ((r = 1; r <= ROUNDS; r++)); do
		log "capture modes round $r/$ROUNDS: connections/s, iperf3, sockperf, $ECYCLES ADD/DEL cycles; nftables, eBPF (, haproxy, direct)"
		connrate_cpu x.cn "${TUNNEL_PID[node1]} ${TUNNEL_PID[node2]}" ecli "$ES" 7002
		connrate_cpu x.ce "${TUNNEL_PID[node1]} ${TUNNEL_PID[node2]}" bcli "$BS" 7002
		[[ -z ${HPP_BAD:-} ]] && connrate_cpu x.ch "$HPP_CLI_PID $HPP_SRV_PID" dcli 127.0.0.1 37000
		if [[ -n ${BENCH_BEFORE:-} ]]; then
			log "capture modes round $r/$ROUNDS: connections/s with the tunnels of $BENCH_BEFORE"
			if tunnels_restart "$BENCH_BEFORE"; then
				connrate_run x.warm ecli "$ES" 7002 1 8 1
				connrate_cpu x.cnb "${TUNNEL_PID[node1]} ${TUNNEL_PID[node2]}" ecli "$ES" 7002
				connrate_cpu x.ceb "${TUNNEL_PID[node1]} ${TUNNEL_PID[node2]}" bcli "$BS" 7002
			fi
			tunnels_restart "$WARREN_BUILD" || die "tunnels of $WARREN_BUILD did not restart"
			connrate_run x.warm ecli "$ES" 7002 1 8 1
		fi
		if [[ ${BENCH_BOUND:-1} != 0 ]]; then
			log "capture modes round $r/$ROUNDS: connections/s through minrelay (the bound), both modes"
			bound_round "$r"
		fi
		iperf_tun x.tn ecli "$ES" 5201
		iperf_tun x.te bcli "$BS" 5201
		sockperf_run x.ld dcli "$DS" 11111
		sockperf_run x.ln ecli "$ES" 11111
		sockperf_run x.le bcli "$BS" 11111
		: >"$T/cyc-n.timings"; : >"$T/cyc-b.timings"
		cycles bench cyc-n "$T/cyc-n.timings" "$ECYCLES" || die "nftables cycles"
		cycles bench cyc-b "$T/cyc-b.timings" "$ECYCLES" "$T/node1.ebpf.conflist" || die "eBPF cycles"
		read -r a _ c _ _ <<<"$(stats "$T/cyc-n.timings")"; res x.an "$a"; res x.acn "$c"
		read -r a _ c _ _ <<<"$(stats "$T/cyc-b.timings")"; res x.ab "$a"; res x.acb "$c"
	done
	res x.ctn "$(($(ct_entries ecli 7002) - ctn0))"
	res x.cte "$(($(ct_entries bcli 7002) - cte0))"
	res x.ctse "$(ct_entries bsrv 7002)"
	# the node still tracks the flows it routes (its nat chain for probes)
	res x.ctnode "$(nexec node1 conntrack -L -p tcp --orig-dst "$BS" --orig-port-dst 7002 2>/dev/null | wc -l)"
	res x.bcnt "$(ebpf_count bcli 0 2>/dev/null || echo n/a)"
	if [[ -n ${BENCH_PERF:-} ]]; then
		perf_tunnels nft-conn pexec ecli "$CONNRATE" rate "$ES" 7002 "$SECS" 64 1
		perf_tunnels ebpf-conn pexec bcli "$CONNRATE" rate "$BS" 7002 "$SECS" 64 1
	fi
	if [[ -n ${BENCH_STRACE:-} ]]; then
		strace_tunnels nft-conn pexec ecli "$CONNRATE" rate "$ES" 7002 "$SECS" 64 1
		strace_tunnels ebpf-conn pexec bcli "$CONNRATE" rate "$BS" 7002 "$SECS" 64 1
		[[ -z ${HPP_BAD:-} ]] && strace_pids haproxy-conn "client=$HPP_CLI_PID server=$HPP_SRV_PID" \
			pexec dcli "$CONNRATE" rate 127.0.0.1 37000 "$SECS" 64 1
	fi
fi

# --- 5. mTLS / HBONE ------------------------------------------------------------------
mtls_supported() { "$WARREN_BUILD/warren-tunnel" --help 2>&1 | grep caDir >/dev/null; }
mtls_active() { # NODE: config dump shows the CA
	wctl "$1" -o json config-dump 2>/dev/null | "$PYTHON" -c '
import json, sys
def find(o):
    if isinstance(o, dict):
        if o.get("caDir"): return True
        return any(find(v) for v in o.values())
    return False
sys.exit(0 if find(json.load(sys.stdin)) else 1)'
}
hbone_pool_up() { [[ -n $(ss -N "${POD_NETNS[esrv]}" -Htn state established '( sport = :15008 )' 2>/dev/null) ]]; }
tunnels_from() { # BUILD: both tunnels restarted from BUILD/warren-tunnel (same
	# configuration, enrolled pods kept), the HBONE pool warmed
	local build=$WARREN_BUILD ok=1
	tunnel_stop node1; tunnel_stop node2
	WARREN_BUILD=$1
	tunnel_start node1 2>/dev/null && tunnel_start node2 2>/dev/null &&
		wait_listen "${POD_NETNS[esrv]}" 15008 && wait_listen "${POD_NETNS[ecli]}" 15001 && ok=0
	WARREN_BUILD=$build
	((ok == 0)) || { log "tunnels of $1 did not start (see $T/node*/tunnel.out)"; return 1; }
	connrate_run h.warm ecli "$ES" 7002 1 8 1
}

# The data path while the control plane works: 1 KiB ping-pong over HBONE
# (pingpong, its p99.9 and worst case), quiet; while both tunnels reload a
# mesh model of CP_PODS pods every 0.5 s; while the admin API lists NCONN
# open connections 5 times a second (tests/bench/cp-load.py). Between the
# two, connections/s with that large model in use (the bench's own pods
# last in it, so a lookup that scanned would pass all CP_PODS first).
CP_PODS=${BENCH_CP_PODS:-5000}
workload_count() { # NODE: pods in the mesh model the tunnel runs
	wctl "$1" -o json workloads 2>/dev/null | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null
}
mesh_settled() { # N: both tunnels run a model of N pods
	[[ $(workload_count node1) == "$1" && $(workload_count node2) == "$1" ]]
}
control_plane_load() { # KEY: the rows' keys (h: this build; hb: BENCH_BEFORE's)
	local k=$1
	local saved=$T/mesh.yaml.before-cp hold loader base
	pingpong_run "$k.cpq" ecli "$ES"
	base=$(workload_count node1)
	cp "$T/mesh.yaml" "$saved"
	"$PYTHON" "$WARREN_ROOT/tests/bench/cp-load.py" mesh "$T/mesh.yaml" "$CP_PODS" "$((SECS + 1))" 0.5 \
		>"$T/cp-mesh.out" 2>>"$T/cp-load.err" &
	loader=$!
	pingpong_run "$k.cpm" ecli "$ES"
	wait "$loader" || log "mesh load failed: $(tail -n 1 "$T/cp-load.err")"
	res "$k.cpm.writes" "$(awk '{print $2}' "$T/cp-mesh.out")"
	res "$k.cpm.pods" "$CP_PODS"
	# the large model stays (no more writes): connections/s through it
	if wait_for -t 20 mesh_settled "$((base + CP_PODS))"; then
		connrate_run "$k.cbig" ecli "$ES" 7002 "$SECS" 64 1
	else
		log "the tunnels did not load the $CP_PODS-pod model: $(workload_count node1) / $(workload_count node2) pods"
	fi
	cp "$saved" "$T/mesh.yaml"
	: >"$T/cp.hold"
	ip netns exec "${POD_NETNS[ecli]}" "$CONNRATE" hold "$ES" 7001 "$NCONN" >"$T/cp.hold" 2>>"$T/connrate.err" &
	hold=$!
	if wait_for -t 60 grep -q '^ready' "$T/cp.hold"; then
		nexec node1 "$PYTHON" "$WARREN_ROOT/tests/bench/cp-load.py" http 127.0.0.1 15000 /connections 5 \
			"$((SECS + 1))" >"$T/cp-http.out" 2>>"$T/cp-load.err" &
		loader=$!
		pingpong_run "$k.cpc" ecli "$ES"
		wait "$loader" || log "admin API load failed: $(tail -n 1 "$T/cp-load.err")"
		res "$k.cpc.req" "$(cat "$T/cp-http.out")"
	else
		log "idle connections for the admin API load not ready: $(tail -n 2 "$T/connrate.err")"
	fi
	kill -TERM "$hold" 2>/dev/null
	wait "$hold" 2>/dev/null
	wait_for -t 20 few_fds
}

mtls_before_round() { # R: BENCH_BEFORE's HBONE figures of round R
	log "mtls round $1/$ROUNDS: the tunnels of $BENCH_BEFORE: iperf3 1 and 8 streams, sockperf"
	tunnels_from "$BENCH_BEFORE" || return 0
	iperf_tun h.old ecli "$ES" 5201
	iperf_workers h.old8 ecli "$ES" 5201 -P 8
	sockperf_run h.lold ecli "$ES" 11111
}

MTLS_STATE=skip
has mtls && MTLS_STATE="n/a (mTLS not built)"
if has mtls && mtls_supported; then
	MTLS_STATE="n/a (mTLS did not start, see $T/node*/tunnel.out)"
	log "mtls: mesh CA, restarting both tunnels with caDir"
	if bash "$WARREN_ROOT/hack/gen-ca.sh" "$T/ca" >/dev/null 2>&1; then
		MTLS_CA=$T/ca
		tunnel_stop node1; tunnel_stop node2
		if tunnel_start node1 2>/dev/null && tunnel_start node2 2>/dev/null &&
			mtls_active node1 && mtls_active node2 &&
			wait_listen "${POD_NETNS[esrv]}" 15008 && wait_listen "${POD_NETNS[ecli]}" 15001; then
			MTLS_STATE=ok
		fi
	fi
	if [[ $MTLS_STATE == ok ]]; then
		haproxy_up mtls "$T/ca" || { log "haproxy mTLS baseline failed (see $T/haproxy-mtls)"; HAPROXY_BAD=1; }
		if [[ -z ${HAPROXY_BAD:-} && ${BENCH_BOUND:-1} != 0 ]]; then
			mintls_up mintls 262144 5 || { log "mintls, the TLS relay bound, failed (see $T/mintls.*.err)"; MINTLS_BAD=1; }
			if [[ -n ${BENCH_MINTLS_SMALL:-} ]]; then
				mintls_up mintls16 16384 4 || { log "mintls with 16 KiB buffers failed (see $T/mintls16.*.err)"; SM_CLI_PID=; }
			fi
		else
			MINTLS_BAD=1
		fi
		# warm the pool; HBONE carries ecli -> esrv from here on
		connrate_run h.warm ecli "$ES" 7002 1 8 1
		hbone_pool_up || log "no HBONE connection to esrv:15008 after warm-up: is ecli -> esrv really HBONE?"
		for ((r = 1; r <= ROUNDS && ! ${BENCH_CP_ONLY:-0}; r++)); do
			# BENCH_BEFORE's tunnels run first in odd rounds and last
			# in even ones: the load of a shared machine drifts within
			# a round, and a fixed order would count that drift as a
			# difference between the builds
			if [[ -n ${BENCH_BEFORE:-} ]] && ((r % 2 == 1)); then
				mtls_before_round "$r"
				tunnels_from "$WARREN_BUILD" || die "tunnels of $WARREN_BUILD did not restart"
			fi
			log "mtls round $r/$ROUNDS: iperf3 HBONE, haproxy, mintls; 8 streams HBONE, haproxy, mintls; sockperf HBONE, haproxy, mintls"
			iperf_tun h.tun ecli "$ES" 5201
			[[ -z ${HAPROXY_BAD:-} ]] && iperf_pair h.hap "$HAP_CLI_PID" "$HAP_SRV_PID" dcli 127.0.0.1 25201
			[[ -z ${MINTLS_BAD:-} ]] && iperf_pair h.min "$MT_CLI_PID" "$MT_SRV_PID" dcli 127.0.0.1 55201
			[[ -n ${SM_CLI_PID:-} ]] && iperf_pair h.sml "$SM_CLI_PID" "$SM_SRV_PID" dcli 127.0.0.1 45201
			iperf_workers h.tun8 ecli "$ES" 5201 -P 8
			[[ -z ${HAPROXY_BAD:-} ]] && iperf_pair h.hap8 "$HAP_CLI_PID" "$HAP_SRV_PID" dcli 127.0.0.1 25201 -P 8
			[[ -z ${MINTLS_BAD:-} ]] && iperf_pair h.min8 "$MT_CLI_PID" "$MT_SRV_PID" dcli 127.0.0.1 55201 -P 8
			[[ -n ${SM_CLI_PID:-} ]] && iperf_pair h.sml8 "$SM_CLI_PID" "$SM_SRV_PID" dcli 127.0.0.1 45201 -P 8
			sockperf_run h.ltun ecli "$ES" 11111
			[[ -z ${HAPROXY_BAD:-} ]] && sockperf_run h.lhap dcli 127.0.0.1 21111
			[[ -z ${MINTLS_BAD:-} ]] && sockperf_run h.lmin dcli 127.0.0.1 51111
			[[ -n ${SM_CLI_PID:-} ]] && sockperf_run h.lsml dcli 127.0.0.1 41111
			# the floor's parts: one TCP leg across the nodes, one within a pod
			iperf_run h.direct dcli "$DS" 5201
			iperf_run h.loop dsrv 127.0.0.1 5201
			if [[ -n ${BENCH_BEFORE:-} ]] && ((r % 2 == 0)); then
				mtls_before_round "$r"
				tunnels_from "$WARREN_BUILD" || die "tunnels of $WARREN_BUILD did not restart"
			fi
		done
		if [[ -n ${BENCH_PERF:-} ]]; then
			perf_tunnels mtls-iperf pexec ecli iperf3 -c "$ES" -p 5201 -t "$SECS"
			perf_tunnels mtls-iperf8 pexec ecli iperf3 -c "$ES" -p 5201 -t "$SECS" -P 8
			if [[ -z ${HAPROXY_BAD:-} ]]; then
				perf_pair mtls-hap "$HAP_CLI_PID" "$HAP_SRV_PID" pexec dcli iperf3 -c 127.0.0.1 -p 25201 -t "$SECS"
				perf_pair mtls-hap8 "$HAP_CLI_PID" "$HAP_SRV_PID" pexec dcli iperf3 -c 127.0.0.1 -p 25201 -t "$SECS" -P 8
			fi
			if [[ -z ${MINTLS_BAD:-} ]]; then
				perf_pair mtls-min "$MT_CLI_PID" "$MT_SRV_PID" pexec dcli iperf3 -c 127.0.0.1 -p 55201 -t "$SECS"
				perf_pair mtls-min8 "$MT_CLI_PID" "$MT_SRV_PID" pexec dcli iperf3 -c 127.0.0.1 -p 55201 -t "$SECS" -P 8
			fi
			if [[ -n ${SM_CLI_PID:-} ]]; then
				perf_pair mtls-sml "$SM_CLI_PID" "$SM_SRV_PID" pexec dcli iperf3 -c 127.0.0.1 -p 45201 -t "$SECS"
				perf_pair mtls-sml8 "$SM_CLI_PID" "$SM_SRV_PID" pexec dcli iperf3 -c 127.0.0.1 -p 45201 -t "$SECS" -P 8
			fi
			perf_tunnels mtls-conn pexec ecli "$CONNRATE" rate "$ES" 7002 "$SECS" 64 1
		fi
		if [[ -n ${BENCH_STRACE:-} ]]; then
			# syscalls per GB of 1 and 8 streams (divide by the bytes
			# in iperf3's own output, $T/strace.NAME.out)
			strace_tunnels mtls-iperf1 pexec ecli iperf3 -c "$ES" -p 5201 -t "$SECS"
			strace_tunnels mtls-iperf8 pexec ecli iperf3 -c "$ES" -p 5201 -t "$SECS" -P 8
			# syscalls per 1 KiB exchange (divide by sockperf's count of
			# messages in $T/strace.NAME.out): tunnels, haproxy, mintls
			strace_tunnels mtls-pp pexec ecli sockperf ping-pong --tcp -i "$ES" -p 11111 --mps 1000 -m 1024 -t "$SECS"
			[[ -z ${HAPROXY_BAD:-} ]] && strace_pids mtls-pp-hap "node1=$HAP_CLI_PID node2=$HAP_SRV_PID" \
				pexec dcli sockperf ping-pong --tcp -i 127.0.0.1 -p 21111 --mps 1000 -m 1024 -t "$SECS"
			[[ -z ${MINTLS_BAD:-} ]] && strace_pids mtls-pp-min "node1=$MT_CLI_PID node2=$MT_SRV_PID" \
				pexec dcli sockperf ping-pong --tcp -i 127.0.0.1 -p 51111 --mps 1000 -m 1024 -t "$SECS"
		fi
	fi
	# the cipher's bound: AES-128-GCM on one core in 16 KiB records, each
	# byte is sealed by one tunnel and opened by the other
	[[ $MTLS_STATE == ok ]] && res h.aes128 "$(openssl speed -seconds 1 -bytes 16384 -evp aes-128-gcm 2>/dev/null |
		awk '/^AES-128-GCM/ {printf "%.3f", $NF / 1e6}')"
	if [[ $MTLS_STATE == ok && -z ${BENCH_MTLS_ROUNDS_ONLY:-} ]]; then
		res h.pool "$(ss -N "${POD_NETNS[esrv]}" -Htn state established '( sport = :15008 )' 2>/dev/null | wc -l)"
		log "mtls: connections/s HBONE, haproxy"
		connrate_run h.ctun ecli "$ES" 7002 "$SECS" 64 1
		if [[ -z ${BENCH_CP_ONLY:-} ]]; then
			[[ -z ${HAPROXY_BAD:-} ]] && connrate_run h.chap dcli 127.0.0.1 27000 "$SECS" 64 1
			log "mtls: $NCONN idle connections; RSS at 1000 req/s"
			idle_conns h.idle ecli "$ES" 7001
			load_1000 h.load ecli "$ES" 7000
		fi
		log "mtls: ping-pong while the control plane works (mesh reloads, admin API)"
		# with BENCH_BEFORE, that build's tunnels and this one's back to
		# back, BENCH_CP_ROUNDS (1) times
		for ((r = 1; r <= ${BENCH_CP_ROUNDS:-1}; r++)); do
			if [[ -n ${BENCH_BEFORE:-} ]]; then
				log "mtls: control-plane round $r: the tunnels of $BENCH_BEFORE"
				tunnels_from "$BENCH_BEFORE" && control_plane_load hb
				tunnels_from "$WARREN_BUILD" || die "tunnels of $WARREN_BUILD did not restart"
			fi
			control_plane_load h
		done
		# last, as it leaves the tunnels with one worker: what the
		# default's second worker thread buys, in the same run
		if [[ -z ${BENCH_WORKERS:-} && -z ${BENCH_CP_ONLY:-} ]]; then
			log "mtls: 8 streams and connections/s again with workerThreads: 1"
			BENCH_WORKERS=1
			tunnel_stop node1; tunnel_stop node2
			if tunnel_start node1 2>/dev/null && tunnel_start node2 2>/dev/null &&
				wait_listen "${POD_NETNS[esrv]}" 15008 && wait_listen "${POD_NETNS[ecli]}" 15001; then
				connrate_run h.warm1 ecli "$ES" 7002 1 8 1
				iperf_workers h.w1tun8 ecli "$ES" 5201 -P 8
				connrate_run h.w1ctun ecli "$ES" 7002 "$SECS" 64 1
			else
				log "tunnels with workerThreads: 1 did not start (see $T/node*/tunnel.out)"
			fi
		fi
	fi
fi

# --- 6. waypoint ------------------------------------------------------------------
has waypoint && source "$(dirname "$0")/waypoint.sh"

# --- table ------------------------------------------------------------------------
"$PYTHON" - "$R" "$ROUNDS" "$MTLS_STATE" "$TCK" "$SECS" "$NCONN" <<'EOF'
import math, os, statistics, sys
path, rounds, mtls_state = sys.argv[1], int(sys.argv[2]), sys.argv[3]
SECS, NCONN = float(sys.argv[5]), sys.argv[6]
V = {}
for line in open(path):
    k, _, v = line.rstrip("\n").partition(" ")
    V.setdefault(k, []).append(v)
def num(x):
    try: return float(x)
    except (TypeError, ValueError): return float("nan")
def med(k):
    a = [num(x) for x in V.get(k, [])]
    a = [x for x in a if x == x]
    return statistics.median(a) if a else float("nan")
def spread(k, unit, fmt="%.2f"):
    a = sorted(x for x in (num(x) for x in V.get(k, [])) if x == x)
    if not a: return "n/a"
    s = (fmt % statistics.median(a)) + " " + unit
    if len(a) > 1: s += (" [" + fmt + "-" + fmt + "]") % (a[0], a[-1])
    return s
def raw(k): return V.get(k, ["n/a"])[-1]
def ok(x): return x == x
def r(a, b): return "%.2fx" % (a / b) if ok(a) and ok(b) and b else "n/a"
rows = []
def row(*c): rows.append(c)
def sect(t): rows.append((t, "", "", ""))

if "cni.e50" in V:
    sect("-- CNI ADD (warren-cni exec, %s enrolled / %s not enrolled ADDs)" % (raw("cni.en"), raw("cni.pn")))
    e50, e99, p50, p99 = med("cni.e50"), med("cni.e99"), med("cni.p50"), med("cni.p99")
    row("enrolled p50", "%.2f ms" % e50, "<= 5 ms", r(e50, 5) + " of budget")
    row("enrolled p99", "%.2f ms" % e99, "<= 20 ms", r(e99, 20) + " of budget")
    row("not enrolled p50 / p99", "%.2f / %.2f ms" % (p50, p99), "", "enrolled/not %s p50, %s p99" % (r(e50, p50), r(e99, p99)))
    row("whole chain enrolled p50 / p99", "%s / %s ms" % (raw("cni.ec50"), raw("cni.ec99")), "", "not enrolled %s / %s ms" % (raw("cni.pc50"), raw("cni.pc99")))
if "mem.idle" in V:
    n, a, b = num(raw("mem.idle")), num(raw("mem.rss0")), num(raw("mem.rss1"))
    pp = (b - a) / n
    sect("-- tunnel memory")
    row("RSS per enrolled idle pod (%d pods)" % n, "%.1f KiB" % pp, "<= 32 KiB", "%s of budget; RSS %d -> %d KiB, %s fds, %s listed" % (r(pp, 32), a, b, raw("mem.fds"), raw("mem.listed")))

def cpu_per_gb(k):
    gb = med(k + ".gb")
    parts = []
    last = k.split(".")[-1]
    relay = ("haproxy client", "haproxy server") if last.startswith("hap") else \
        ("mintls client", "mintls server") if last.startswith(("min", "sml")) else ("tunnel1", "tunnel2")
    for lab, kk in (("iperf3 client", ".cli_s"), ("iperf3 server", ".srv_s"), (relay[0], ".t1_s"), (relay[1], ".t2_s")):
        if k + kk in V:
            parts.append("%s %.2f" % (lab, med(k + kk) / gb if gb else float("nan")))
    if k + ".t1_s" in V and gb:
        parts.append("relays together %.2f" % ((med(k + ".t1_s") + med(k + ".t2_s")) / gb))
    return "CPU s/GB: " + ", ".join(parts)
def relays_per_gb(k):
    gb = med(k + ".gb")
    return (med(k + ".t1_s") + med(k + ".t2_s")) / gb if gb else float("nan")
def lo(k):
    a = [x for x in (num(x) for x in V.get(k, [])) if x == x]
    return min(a) if a else float("nan")
def tun_cpu(k):
    s = "tunnel CPU %.2f + %.2f cores" % (med(k + ".t1_s") / SECS, med(k + ".t2_s") / SECS)
    for n, lab in (("node1", "tunnel1"), ("node2", "tunnel2")):
        ws = sorted(x[len(k) + len(n) + 2:-2] for x in V if x.startswith(k + "." + n + ".w") and x.endswith("_s"))
        if ws:
            s += "; %s threads %s" % (lab, " + ".join("%.2f" % (med("%s.%s.%s_s" % (k, n, w)) / SECS) for w in ws))
    return s


def mv(k): # the median of a figure measured in several rounds
    return raw(k) if len(V.get(k, [])) < 2 else "%.0f" % med(k)
def cp_rows(q, p, label):
    """The control-plane rows of keys q (p: the section's keys, for ratios);
    with label, another build's (BENCH_BEFORE)."""
    if q + ".cpq.max" not in V:
        return
    q999, qmax = med(q + ".cpq.p999"), med(q + ".cpq.max")
    def cp_row(what, k, note):
        before = "hb" + k[len(q):]
        if not label and before + ".max" in V:
            note += "; this build/before: p99.9 %s, max %s" % (r(med(k + ".p999"), med(before + ".p999")), r(med(k + ".max"), med(before + ".max")))
        row("1 KiB ping-pong @1000/s, HBONE, %s%s: p99 / p99.9 / max" % (what, label),
            "%s / %s / %s us" % (mv(k + ".p99"), mv(k + ".p999"), mv(k + ".max")), "",
            note if k == q + ".cpq" else "p99.9 %s, max %s of quiet; %s" % (r(med(k + ".p999"), q999), r(med(k + ".max"), qmax), note))
    cp_row("quiet", q + ".cpq", "pingpong (sleeping client), baseline for the rows below")
    if q + ".cpm.max" in V:
        cp_row("mesh reloads", q + ".cpm", "both tunnels reload a %s-pod mesh model every 0.5 s (%s writes)" % (raw(q + ".cpm.pods"), raw(q + ".cpm.writes")))
    if q + ".cbig.rate" in V:
        row("new connections/s, HBONE, %s-pod mesh model%s" % (raw(q + ".cpm.pods"), label), "%.0f /s" % med(q + ".cbig.rate"), "",
            "%s of the small model's (above); the bench's pods come last in the model; p50/p99 %s/%s us, %s errors" % (
                r(med(q + ".cbig.rate"), med(p + ".ctun.rate")), raw(q + ".cbig.lat50"), raw(q + ".cbig.lat99"), raw(q + ".cbig.err")))
    if q + ".cpc.max" in V:
        cp_row("admin API", q + ".cpc", "GET /connections of %s open connections 5x/s: %s" % (NCONN, raw(q + ".cpc.req")))

def traffic(p, title, base_tput, base_lat, base_conn, peer):
    sect(title)
    t, d = med(p + ".tun.gbps"), med(base_tput + ".gbps")
    if p == "p":
        row("1 stream, direct", spread("p.direct.gbps", "Gb/s"), "", "baseline; " + cpu_per_gb("p.direct"))
        row("1 stream, through both tunnels", spread("p.tun.gbps", "Gb/s"), ">= 0.60x direct", "%s of direct; %s" % (r(t, d), cpu_per_gb("p.tun")))
        if "p.hap.gbps" in V:
            row("1 stream, haproxy plain TCP relay pair", spread("p.hap.gbps", "Gb/s"), "",
                "peer baseline: %s of direct, the tunnels %s of it; %s" % (r(med("p.hap.gbps"), d), r(t, med("p.hap.gbps")), cpu_per_gb("p.hap")))
    else:
        hp = med("h.hap.gbps")
        row("1 stream, haproxy mTLS tunnel", spread("h.hap.gbps", "Gb/s"), "", "peer baseline; " + cpu_per_gb("h.hap"))
        row("1 stream, HBONE through both tunnels", spread("h.tun.gbps", "Gb/s"), ">= 1.25x haproxy; min >= 0.85x median",
            "%s of haproxy, %s of plaintext direct; min round %s of median; %s" % (r(t, hp), r(t, med("p.direct.gbps")), r(lo("h.tun.gbps"), t), cpu_per_gb("h.tun")))
        row("CPU s/GB, both relays together, HBONE / haproxy", "%.2f / %.2f s" % (relays_per_gb("h.tun"), relays_per_gb("h.hap")), "<= 0.75x haproxy",
            r(relays_per_gb("h.tun"), relays_per_gb("h.hap")) + " of haproxy")
        for mk, what in (("h.min", "mintls (minimal TLS relay pair, the bound)"), ("h.sml", "mintls, 16 KiB buffers")):
            # the bound measured: a minimal TLS relay pair (tests/tools/mintls)
            if mk + ".gbps" not in V:
                continue
            m = med(mk + ".gbps")
            row("1 stream, " + what, spread(mk + ".gbps", "Gb/s"), "",
                "%s of haproxy; HBONE %s of it; relays' CPU s/GB %.2f (%s of haproxy's; HBONE %s of it); %s" % (
                    r(m, hp), r(t, m), relays_per_gb(mk), r(relays_per_gb(mk), relays_per_gb("h.hap")),
                    r(relays_per_gb("h.tun"), relays_per_gb(mk)), cpu_per_gb(mk)))
        if "h.aes128" in V:
            a = med("h.aes128")
            row("AES-128-GCM, one core, 16 KiB records (openssl speed)", "%.2f GB/s" % a, "",
                "sealing + opening each byte costs %.2f CPU s/GB of the relays' %.2f" % (2 / a, relays_per_gb("h.tun")))
        if "h.aes128" in V and "h.direct.gb" in V and "h.loop.gb" in V:
            # Each relay ends one TCP leg and starts the next: what both
            # relays' kernel work per byte cannot go below is one leg
            # across the nodes and one within a pod, both ends each (a
            # user-space relay copies every byte in and out; iperf3's ends
            # do the same and little else), plus sealing and opening.
            def ends(k): return (med(k + ".cli_s") + med(k + ".srv_s")) / med(k + ".gb")
            fl = ends("h.direct") + ends("h.loop") + 2 / med("h.aes128")
            hr, hc = relays_per_gb("h.hap"), ends("h.hap")
            row("floor CPU s/GB of any user-space TLS relay pair here", "%.2f s" % fl, "",
                "%s of haproxy's relays (budget 0.75x: %s); TCP legs %.2f across nodes + %.2f in a pod (iperf3 ends, %s / %s Gb/s), AES %.2f; "
                "with the CPUs saturated, at most %s of haproxy's throughput for 1 stream, %s for 8" % (
                    r(fl, hr), "beyond this machine" if ok(fl) and ok(hr) and fl > 0.75 * hr else "reachable",
                    ends("h.direct"), ends("h.loop"), spread("h.direct.gbps", ""), spread("h.loop.gbps", ""), 2 / med("h.aes128"),
                    r(hr + hc, fl + ends("h.tun")), r(relays_per_gb("h.hap8") + ends("h.hap8"), fl + ends("h.tun8"))))
        if "h.old.gbps" in V:
            o = med("h.old.gbps")
            row("1 stream, HBONE, before (BENCH_BEFORE)", spread("h.old.gbps", "Gb/s"), "",
                "%s of haproxy; now %s of before; min round %s of median; CPU s/GB relays together %.2f (now %s of it)" % (
                    r(o, hp), r(t, o), r(lo("h.old.gbps"), o), relays_per_gb("h.old"), r(relays_per_gb("h.tun"), relays_per_gb("h.old"))))
    t8 = med(p + ".tun8.gbps")
    if p == "p":
        row("8 streams, direct", spread("p.direct8.gbps", "Gb/s"), "", "baseline")
    if p == "h" and "h.hap8.gbps" in V:
        row("8 streams, haproxy mTLS tunnel", spread("h.hap8.gbps", "Gb/s"), "", "peer baseline; " + cpu_per_gb("h.hap8"))
    row("8 streams, through both tunnels", spread(p + ".tun8.gbps", "Gb/s"), ">= 1.2x haproxy" if p == "h" else "",
        ("%s of haproxy; " % r(t8, med("h.hap8.gbps")) if p == "h" else "") +
        "%s; %s of 8-stream direct" % (tun_cpu(p + ".tun8"), r(t8, med("p.direct8.gbps"))))
    for mk, what in (("h.min8", "mintls (minimal TLS relay pair, the bound)"), ("h.sml8", "mintls, 16 KiB buffers")):
        if p != "h" or mk + ".gbps" not in V:
            continue
        m8, hp8 = med(mk + ".gbps"), med("h.hap8.gbps")
        row("8 streams, " + what, spread(mk + ".gbps", "Gb/s"), "",
            "%s of haproxy (budget 1.2x: %s); HBONE %s of it; relays' CPU s/GB %.2f, HBONE's %.2f, haproxy's %.2f" % (
                r(m8, hp8), "beyond this machine" if ok(m8) and ok(hp8) and m8 < 1.2 * hp8 else "reachable",
                r(t8, m8), relays_per_gb(mk), relays_per_gb("h.tun8"), relays_per_gb("h.hap8")))
    if p == "h" and "h.old8.gbps" in V:
        row("8 streams, HBONE, before (BENCH_BEFORE)", spread("h.old8.gbps", "Gb/s"), "",
            "%s of haproxy; now %s of before" % (r(med("h.old8.gbps"), med("h.hap8.gbps")), r(t8, med("h.old8.gbps"))))
    l50, l99 = med(p + ".ltun.p50"), med(p + ".ltun.p99")
    d50, d99 = med("p.ldirect.p50"), med("p.ldirect.p99")
    if p == "p":
        row("1 KiB ping-pong @1000/s, direct p50 / p99", "%s / %s" % (spread("p.ldirect.p50", "us", "%.1f"), spread("p.ldirect.p99", "us", "%.1f")), "", "sockperf, RTT/2")
        row("1 KiB ping-pong @1000/s, tunnels p50 / p99", "%s / %s" % (spread("p.ltun.p50", "us", "%.1f"), spread("p.ltun.p99", "us", "%.1f")), "<= +30 us p50",
            "added p50 %+.1f us, p99 %+.1f us" % (l50 - d50, l99 - d99))
        if "p.lhap.p50" in V:
            row("1 KiB ping-pong @1000/s, haproxy plain relay pair p50 / p99", "%s / %s" % (spread("p.lhap.p50", "us", "%.1f"), spread("p.lhap.p99", "us", "%.1f")), "",
                "peer baseline: added p50 %+.1f us, p99 %+.1f us" % (med("p.lhap.p50") - d50, med("p.lhap.p99") - d99))
        for k, what, note in (("s", "sleeping client", "tests/tools/pingpong, RTT/2"),
                              ("p", "all on CPU 0", "client, echo server, both tunnels pinned: no cross-CPU wake-ups")):
            row("1 KiB ping-pong @1000/s, %s, direct p50 / p99" % what,
                "%s / %s" % (spread("p.%sdirect.p50" % k, "us", "%.1f"), spread("p.%sdirect.p99" % k, "us", "%.1f")), "", note)
            row("1 KiB ping-pong @1000/s, %s, tunnels p50 / p99" % what,
                "%s / %s" % (spread("p.%stun.p50" % k, "us", "%.1f"), spread("p.%stun.p99" % k, "us", "%.1f")), "",
                "added p50 %+.1f us, p99 %+.1f us" % (med("p.%stun.p50" % k) - med("p.%sdirect.p50" % k),
                                                      med("p.%stun.p99" % k) - med("p.%sdirect.p99" % k)))
    else:
        t50, t99 = med("p.ltun.p50"), med("p.ltun.p99")
        row("1 KiB ping-pong @1000/s, haproxy p50 / p99", "%s / %s" % (spread("h.lhap.p50", "us", "%.1f"), spread("h.lhap.p99", "us", "%.1f")), "", "peer baseline")
        row("1 KiB ping-pong @1000/s, HBONE p50 / p99", "%s / %s" % (spread("h.ltun.p50", "us", "%.1f"), spread("h.ltun.p99", "us", "%.1f")),
            "p50 <= 2x, p99 <= 2.5x plaintext", "vs direct %s p50, %s p99; vs plaintext relay %s p50, %s p99; vs haproxy %s p50, %s p99" % (
                r(l50, d50), r(l99, d99), r(l50, t50), r(l99, t99), r(l50, med("h.lhap.p50")), r(l99, med("h.lhap.p99"))))
        for mk, what in (("h.lmin", "mintls (the bound)"), ("h.lsml", "mintls, 16 KiB buffers")):
            if mk + ".p50" not in V:
                continue
            m50, m99 = med(mk + ".p50"), med(mk + ".p99")
            row("1 KiB ping-pong @1000/s, %s p50 / p99" % what, "%s / %s" % (spread(mk + ".p50", "us", "%.1f"), spread(mk + ".p99", "us", "%.1f")), "",
                "vs haproxy %s p50, %s p99; HBONE %s p50, %s p99 of it" % (
                    r(m50, med("h.lhap.p50")), r(m99, med("h.lhap.p99")), r(l50, m50), r(l99, m99)))
        if "h.lold.p50" in V:
            row("1 KiB ping-pong @1000/s, HBONE before (BENCH_BEFORE) p50 / p99", "%s / %s" % (spread("h.lold.p50", "us", "%.1f"), spread("h.lold.p99", "us", "%.1f")), "",
                "vs haproxy %s p50, %s p99" % (r(med("h.lold.p50"), med("h.lhap.p50")), r(med("h.lold.p99"), med("h.lhap.p99"))))
    c = med(p + ".ctun.rate")
    if p == "p":
        row("new connections/s, direct (64 in flight)", "%.0f /s" % med("p.cdirect.rate"), "", "p50/p99 %s/%s us, %s errors" % (raw("p.cdirect.lat50"), raw("p.cdirect.lat99"), raw("p.cdirect.err")))
        row("new connections/s, tunnels", "%.0f /s" % c, "", "%s of direct; p50/p99 %s/%s us, %s errors" % (r(c, med("p.cdirect.rate")), raw("p.ctun.lat50"), raw("p.ctun.lat99"), raw("p.ctun.err")))
        if "p.chap.rate" in V:
            row("new connections/s, haproxy plain relay pair", "%.0f /s" % med("p.chap.rate"), "", "peer baseline: %s of direct; p50/p99 %s/%s us, %s errors" % (r(med("p.chap.rate"), med("p.cdirect.rate")), raw("p.chap.lat50"), raw("p.chap.lat99"), raw("p.chap.err")))
    else:
        row("new connections/s, haproxy (new TLS each)", "%.0f /s" % med("h.chap.rate"), "", "p50/p99 %s/%s us, %s errors" % (raw("h.chap.lat50"), raw("h.chap.lat99"), raw("h.chap.err")))
        row("new connections/s, HBONE (warm pool)", "%.0f /s" % c, ">= 10000 /s", "%s of budget, %s of plaintext relay; p50/p99 %s/%s us, %s errors; %s pooled conn(s)" % (
            r(c, 10000), r(c, med("p.ctun.rate")), raw("h.ctun.lat50"), raw("h.ctun.lat99"), raw("h.ctun.err"), raw("h.pool")))
        if "h.w1ctun.rate" in V:
            row("8 streams, HBONE, workerThreads: 1", spread("h.w1tun8.gbps", "Gb/s"), "",
                "the default (2 workers) moved %s of this; %s" % (r(t8, med("h.w1tun8.gbps")), tun_cpu("h.w1tun8")))
            row("new connections/s, HBONE, workerThreads: 1", "%.0f /s" % med("h.w1ctun.rate"), "",
                "the default (2 workers) made %s of this" % r(c, med("h.w1ctun.rate")))
    k = med(p + ".idle.kb_per_conn")
    row("RSS per open idle relayed connection (%s, both tunnels)" % NCONN, "%.2f KiB" % k, "<= 64 KiB" if p == "h" else "",
        "%s of budget; RSS KiB %s; fds %s" % (r(k, 64), raw(p + ".idle.rss"), raw(p + ".idle.fds")))
    a1, a2 = med(p + ".load.rss1"), med(p + ".load.rss2")
    row("tunnel RSS at 1000 req/s (short conns, 1 KiB req/resp)", "%.1f / %.1f MiB" % (a1 / 1024, a2 / 1024), "<= 10 MiB" if p == "h" else "",
        "%s of budget (larger); peak over the run; tunnel1 at the end %s KiB anon + %s KiB file; achieved %s req/s, tunnel CPU %s / %s vCPU" % (r(max(a1, a2) / 1024, 10), raw(p + ".load.anon1"), raw(p + ".load.file1"), raw(p + ".load.rate"), raw(p + ".load.cpu1"), raw(p + ".load.cpu2")))
    cp_rows(p, p, "")
    if p == "h":
        cp_rows("hb", p, ", before (BENCH_BEFORE)")

if "p.tun.gbps" in V:
    traffic("p", "-- plaintext relay (%d interleaved rounds: median [min-max])" % rounds, "p.direct", "p.ldirect", "p.cdirect", None)
if "h.tun.gbps" in V:
    traffic("h", "-- HBONE mTLS (%d interleaved rounds with haproxy)" % rounds, "h.hap", "h.lhap", "h.chap", "h.hap")
elif "h.cpq.max" in V:
    sect("-- HBONE mTLS: the data path while the control plane works (BENCH_CP_ONLY)")
    cp_rows("h", "h", "")
    cp_rows("hb", "h", ", before (BENCH_BEFORE)")
elif mtls_state != "skip":
    sect("-- HBONE mTLS: " + mtls_state)

hdr = ("figure", "value", "budget", "ratio / note")
w = [max(len(x[i]) for x in rows + [hdr] if x[1] or i == 0) for i in range(3)]
print()
print("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr[:3])) + "  " + hdr[3])
print("  ".join("-" * w[i] for i in range(3)) + "  " + "-" * 12)
for x in rows:
    if not x[1]:
        print(x[0]); continue
    print("  ".join(c.ljust(w[i]) for i, c in enumerate(x[:3])) + "  " + x[3])
EOF
if grep -q '^x.cn.rate' "$R" 2>/dev/null; then
	PYTHONPATH=$WARREN_ROOT/tests/bench "$PYTHON" - "$R" "$ROUNDS" "$ECYCLES" <<'EOF'
import statistics, sys
from results import Results
V = Results(sys.argv[1])
nums, med = V.nums, V.med
def mmm(k, fmt):
    a = nums(k)
    return (fmt % a[0], fmt % statistics.median(a), fmt % a[-1]) if a else ("n/a",) * 3
def ratio(a, b): return "%.2fx" % (a / b) if a == a and b == b and b else "n/a"
# added latency: each round's tunnel p50 minus the same round's direct p50
for k in ("x.ln", "x.le"):
    V[k + ".add"] = ["%.3f" % (float(a) - float(b)) for a, b in zip(V.get(k + ".p50", []), V.get("x.ld.p50", []))
                     if a != "nan" and b != "nan"]
print()
print("-- capture modes, tunnels in plaintext (%s interleaved rounds; min / median / max; %s ADD/DEL cycles per mode per round)" % (sys.argv[2], sys.argv[3]))
rows = [("figure", "nftables", "ebpf", "ebpf/nftables", "budget / note")]
def row(name, kn, ke, fmt, note):
    rows.append((name, " / ".join(mmm(kn, fmt)), " / ".join(mmm(ke, fmt)), ratio(med(ke), med(kn)), note))
cn, ce, ch = med("x.cn.rate"), med("x.ce.rate"), med("x.ch.rate")
row("new connections/s (64 concurrent)", "x.cn.rate", "x.ce.rate", "%.0f",
    ">= 1.3x nftables, >= haproxy: ebpf/haproxy %s, nftables/haproxy %s (haproxy plain pair %s)" % (ratio(ce, ch), ratio(cn, ch), " / ".join(mmm("x.ch.rate", "%.0f"))))
if "x.cnb.rate" in V:
    cnb, ceb = med("x.cnb.rate"), med("x.ceb.rate")
    row("  the same, tunnels of BENCH_BEFORE", "x.cnb.rate", "x.ceb.rate", "%.0f",
        "now/before: nftables %s, ebpf %s; before: ebpf/haproxy %s, nftables/haproxy %s" % (ratio(cn, cnb), ratio(ce, ceb), ratio(ceb, ch), ratio(cnb, ch)))
row("  connect+exchange p50, us", "x.cn.lat50", "x.ce.lat50", "%.0f", "lower is better")
if "x.cn.cpu_us" in V:
    row("  CPU per connection, both tunnels, us", "x.cn.cpu_us", "x.ce.cpu_us", "%.1f",
        "haproxy's pair %s%s" % (" / ".join(mmm("x.ch.cpu_us", "%.1f")),
        "; BENCH_BEFORE's tunnels: nftables %s, ebpf %s" % (" / ".join(mmm("x.cnb.cpu_us", "%.1f")), " / ".join(mmm("x.ceb.cpu_us", "%.1f"))) if "x.cnb.cpu_us" in V else ""))
def rounds(a, b): # per-round ratios a/b (each pair measured in the same round)
    return " ".join("%.2f" % (float(x) / float(y)) for x, y in zip(V.get(a, []), V.get(b, []))
                    if x not in ("nan", "0") and y not in ("nan", "0")) or "n/a"
if "x.cnm.rate" in V:
    cnm, cem = med("x.cnm.rate"), med("x.cem.rate")
    row("  the bound: minrelay in the pods (tunnels stopped)", "x.cnm.rate", "x.cem.rate", "%.0f",
        "tunnels/bound: nftables %s, ebpf %s; bound/haproxy: nftables %s, ebpf %s" % (ratio(cn, cnm), ratio(ce, cem), ratio(cnm, ch), ratio(cem, ch)))
    chm = med("x.chm.rate")
    rows.append(("  the same relay without capture (explicit, as haproxy)", " / ".join(mmm("x.chm.rate", "%.0f")), "", "",
                 "explicit/haproxy %s; ebpf bound/explicit %s, nftables bound/explicit %s; CPU per connection %s us" % (
                 ratio(chm, ch), ratio(cem, chm), ratio(cnm, chm), " / ".join(mmm("x.chm.cpu_us", "%.1f")))))
    print_rounds = [("per round, ebpf tunnels/haproxy", "x.ce.rate", "x.ch.rate"), ("per round, ebpf bound/haproxy", "x.cem.rate", "x.ch.rate"),
                    ("per round, ebpf tunnels/bound", "x.ce.rate", "x.cem.rate"), ("per round, nftables tunnels/bound", "x.cn.rate", "x.cnm.rate"),
                    ("per round, explicit minrelay pair/haproxy", "x.chm.rate", "x.ch.rate"), ("per round, ebpf bound/explicit minrelay pair", "x.cem.rate", "x.chm.rate")]
    if "x.cnm.cpu_us" in V:
        row("  CPU per connection, both minrelays, us", "x.cnm.cpu_us", "x.cem.cpu_us", "%.1f",
            "tunnels/bound: nftables %s, ebpf %s" % (ratio(med("x.cn.cpu_us"), med("x.cnm.cpu_us")), ratio(med("x.ce.cpu_us"), med("x.cem.cpu_us"))))
row("throughput, 1 stream, Gb/s", "x.tn.gbps", "x.te.gbps", "%.2f", "no worse than nftables")
row("1 KiB ping-pong p50, us (RTT/2)", "x.ln.p50", "x.le.p50", "%.1f", "direct %s" % " / ".join(mmm("x.ld.p50", "%.1f")))
row("  added p50 over direct (same round), us", "x.ln.add", "x.le.add", "%.1f", "no worse than nftables (lower is better)")
row("CNI ADD p50, enrolled pod (warren-cni exec), ms", "x.an", "x.ab", "%.2f", "no worse than nftables (lower is better)")
row("  whole chain ADD p50, ms", "x.acn", "x.acb", "%.2f", "bridge + host-local + warren-cni")
w = [max(len(r[i]) for r in rows) for i in range(4)]
for r in rows:
    print("  ".join(c.ljust(w[i]) for i, c in enumerate(r[:4])) + "  " + r[4])
for name, a, b in (print_rounds if "x.cnm.rate" in V else ()):
    print("%s: %s" % (name, rounds(a, b)))
print("conntrack entries added in the client pod by the rounds' connections: nftables %s, ebpf %s (ebpf server pod: %s); eBPF program's outbound count in bcli: %s" % (
    V.get("x.ctn", ["n/a"])[-1], V.get("x.cte", ["n/a"])[-1], V.get("x.ctse", ["n/a"])[-1], V.get("x.bcnt", ["n/a"])[-1]))
print("conntrack entries in node1 for the eBPF pods' flows at the end (the node's own nat chain for probes tracks what it routes): %s" % V.get("x.ctnode", ["n/a"])[-1])
EOF
fi
declare -F wpb_report >/dev/null && wpb_report
echo
[[ -f $R ]] && grep -q p.redirected "$R" && echo "outbound redirect counter in ecli (plain rounds): $(awk '$1=="p.redirected"{$1=""; print}' "$R")"
echo "CPU pressure during the run (PSI some, share of wall time a task waited for a CPU): $(awk -v a="$PSI0" -v b="$(psi)" -v s="$SECONDS" 'BEGIN{printf "%.0f %%", s ? (b - a) / 1e4 / s : 0}')"
echo "kernel $(uname -r), $(nproc) cores, load average at end $(cut -d' ' -f1-3 /proc/loadavg); tunnel log level $TUNNEL_LOG_LEVEL; build $WARREN_BUILD; ${SECS}s per run; $SECONDS s"
