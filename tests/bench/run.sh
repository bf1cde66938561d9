#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# warren benchmark: one command, one run, one table of figures and ratios
# against baselines measured in the same run on the same topology
# (docs: performance.md). Never pass/fail: budgets are printed beside the
# figures for reading, the exit status only says whether the run completed.
#
#   node1 netns (10.0.0.1/30) <====== veth ======> node2 netns (10.0.0.2/30)
#     cni0 10.244.1.1/24                            cni0 10.244.2.1/24
#      |-- dcli (ns plain)     --- direct --->       |-- dsrv (ns plain): iperf3 -s, sockperf sr
#      |-- ecli (ns bench, enrolled) -- tunnels -->  |-- esrv (ns bench, enrolled): same
#      |-- cycle pods (ADD/DEL latency), idle pods (memory)
#     warren-tunnel (node1)                          warren-tunnel (node2)
#
# Figures:
#   - CNI ADD latency of warren-cni (its own exec, from the chain runner's
#     timings) for an enrolled pod, p50/p99 over N ADD/DEL cycles through the
#     full chain, beside the same for a non-enrolled pod (ratio), and the
#     whole chain's ADD for context;
#   - tunnel RSS per enrolled idle pod: VmRSS of node1's tunnel before and
#     after enrolling M pods, divided by M;
#   - one-stream iperf3 throughput, direct vs through both tunnels, ratio;
#   - 1 KiB TCP ping-pong with sockperf at 1000 msg/s, p50/p99 direct vs
#     through both tunnels, added microseconds (sockperf reports RTT/2).
# Env: B / WARREN_BUILD, BENCH_CYCLES (200), BENCH_IDLE_PODS (100),
#      BENCH_SECONDS (5, per iperf3/sockperf run), TUNNEL_LOG_LEVEL (warn).
set -uo pipefail
source "$(dirname "$0")/../netns/lib.sh"

CYCLES=${BENCH_CYCLES:-200}
IDLE=${BENCH_IDLE_PODS:-100}
SECS=${BENCH_SECONDS:-5}
export TUNNEL_LOG_LEVEL=${TUNNEL_LOG_LEVEL:-warn}

lib_init
need iperf3 sockperf
for b in warren-cni warren-tunnel warrenctl; do
	[[ -x $WARREN_BUILD/$b ]] || die "$WARREN_BUILD/$b not built (make B=$(basename "$WARREN_BUILD") all)"
done
log() { printf '[bench %3ds] %s\n' "$SECONDS" "$*" >&2; }

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

cycles() { # NS NAME TIMINGS: N ADD/DEL cycles of one pod through the full chain
	local ns=$1 name=$2 tf=$3 i
	pod_define node1 "$ns" "$name" --no-mesh || return 1
	for ((i = 0; i < CYCLES; i++)); do
		chain node1 ADD "$name" --timings "$tf" >/dev/null 2>>"$T/cycles.err" || { log "ADD failed, see $T/cycles.err"; return 1; }
		chain node1 DEL "$name" >/dev/null 2>>"$T/cycles.err" || { log "DEL failed"; return 1; }
	done
	ip netns del "${POD_NETNS[$name]}"
}

# --- 1. CNI ADD latency ----------------------------------------------------------
log "ADD/DEL cycles: $CYCLES enrolled, $CYCLES not enrolled"
cycles bench cyc-e "$T/enrolled.timings" || die "enrolled cycles"
cycles plain cyc-p "$T/plain.timings" || die "plain cycles"
read -r e50 e99 ec50 ec99 en <<<"$(stats "$T/enrolled.timings")"
read -r p50 p99 pc50 pc99 pn <<<"$(stats "$T/plain.timings")"

# --- 2. memory per enrolled idle pod ------------------------------------------------
log "memory: enrolling $IDLE idle pods"
rss0=$(tunnel_rss_kb node1)
for ((i = 0; i < IDLE; i++)); do
	pod_add node1 bench "idle$i" --no-mesh >/dev/null 2>>"$T/idle.err" || die "ADD idle$i: $(tail -n 3 "$T/idle.err")"
done
enrolled_n=$(wctl node1 -o json pods | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)))')
rss1=$(tunnel_rss_kb node1)
per_pod=$("$PYTHON" -c "print('%.1f' % (($rss1 - $rss0) / $IDLE))")
fds=$(ls "/proc/${TUNNEL_PID[node1]}/fd" | wc -l)
# The idle pods stay enrolled (idle) until cleanup: deleting them one by one
# would only cost time.

# --- 3. throughput and latency pods ---------------------------------------------
pod_add node2 plain dsrv 2>/dev/null || die "ADD dsrv"
pod_add node1 plain dcli 2>/dev/null || die "ADD dcli"
pod_add node2 bench esrv 2>/dev/null || die "ADD esrv"
pod_add node1 bench ecli 2>/dev/null || die "ADD ecli"
for s in dsrv esrv; do
	bg ip netns exec "${POD_NETNS[$s]}" iperf3 -s -p 5201 >/dev/null 2>&1
	bg ip netns exec "${POD_NETNS[$s]}" sockperf sr --tcp -i 0.0.0.0 -p 11111 >/dev/null 2>&1
	wait_listen "${POD_NETNS[$s]}" 5201 || die "iperf3 server in $s"
	wait_listen "${POD_NETNS[$s]}" 11111 || die "sockperf server in $s"
done

iperf() { # CLIENT SERVER -> Gbit/s
	pexec "$1" iperf3 -c "${POD_IP[$2]}" -p 5201 -t "$SECS" -J 2>/dev/null |
		"$PYTHON" -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))'
}
sockperf_pp() { # CLIENT SERVER -> "p50 p99" usec
	pexec "$1" sockperf ping-pong --tcp -i "${POD_IP[$2]}" -p 11111 --mps 1000 -m 1024 -t "$SECS" 2>&1 |
		"$PYTHON" -c '
import re, sys
t = sys.stdin.read()
def p(x):
    m = re.search(r"percentile %s\s*=\s*([0-9.]+)" % re.escape(x), t)
    return m.group(1) if m else "nan"
print(p("50.000"), p("99.000"))'
}
log "iperf3 direct"
tput_d=$(iperf dcli dsrv)
log "iperf3 through both tunnels"
out0=$(nft_counter ecli warren-nat warren:nat-out-redirect-v4)
tput_e=$(iperf ecli esrv)
out1=$(nft_counter ecli warren-nat warren:nat-out-redirect-v4)
log "sockperf direct"
read -r lat_d50 lat_d99 <<<"$(sockperf_pp dcli dsrv)"
log "sockperf through both tunnels"
read -r lat_e50 lat_e99 <<<"$(sockperf_pp ecli esrv)"
out2=$(nft_counter ecli warren-nat warren:nat-out-redirect-v4)

# --- table ------------------------------------------------------------------------
"$PYTHON" - <<EOF
def f(x):
    try: return float(x)
    except ValueError: return float("nan")
def ratio(a, b):
    a, b = f(a), f(b)
    return "%.2fx" % (a / b) if b == b and b != 0 and a == a else "n/a"
rows = [
    ("CNI ADD warren-cni, enrolled, p50", "$e50 ms", "<= 5 ms", "%s of budget" % ratio("$e50", 5)),
    ("CNI ADD warren-cni, enrolled, p99", "$e99 ms", "<= 20 ms", "%s of budget" % ratio("$e99", 20)),
    ("CNI ADD warren-cni, not enrolled, p50 / p99", "$p50 / $p99 ms", "", "enrolled/not: %s p50, %s p99" % (ratio("$e50", "$p50"), ratio("$e99", "$p99"))),
    ("CNI ADD whole chain (bridge+host-local+warren), enrolled p50 / p99", "$ec50 / $ec99 ms", "", "not enrolled: $pc50 / $pc99 ms"),
    ("tunnel RSS (user space) per enrolled idle pod ($IDLE pods, $enrolled_n listed)", "$per_pod KiB", "<= 32 KiB", "%s of budget; RSS $rss0 -> $rss1 KiB, $fds fds" % ratio("$per_pod", 32)),
    ("throughput, 1 stream, direct", "$tput_d Gbit/s", "", "baseline"),
    ("throughput, 1 stream, through both tunnels", "$tput_e Gbit/s", ">= 60 % of direct", "%s of direct" % ratio("$tput_e", "$tput_d")),
    ("1 KiB ping-pong @1000 msg/s, direct p50 / p99", "$lat_d50 / $lat_d99 us", "", "sockperf (RTT/2)"),
    ("1 KiB ping-pong @1000 msg/s, tunnels p50 / p99", "$lat_e50 / $lat_e99 us", "<= 30 us added p50", "added p50 %+.1f us, p99 %+.1f us" % (f("$lat_e50") - f("$lat_d50"), f("$lat_e99") - f("$lat_d99"))),
]
w = [max(len(r[i]) for r in rows + [("figure", "value", "budget", "ratio / note")]) for i in range(4)]
hdr = ("figure", "value", "budget", "ratio / note")
print()
print("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
print("  ".join("-" * w[i] for i in range(4)))
for r in rows:
    print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))
EOF
echo
echo "cycles: $en enrolled / $pn not enrolled ADDs timed; outbound redirect counter in ecli: $out0 -> $out1 (iperf3) -> $out2 (sockperf)"
echo "kernel $(uname -r), $(nproc) cores; tunnel log level $TUNNEL_LOG_LEVEL; build $WARREN_BUILD; $SECONDS s"
