#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Everything at once: traffic of every kind while pods come and go, policies
# flip, the admin API is read and one tunnel restarts; then nothing may be
# left behind. As root, on the real kernel (TAP). Run on the ASan build (as
# hack/test.sh does), a sanitizer report or a leak at the tunnels' exit is a
# failure.
#
#   node1 netns <============== veth ==============> node2 netns
#     |-- cli (mesh, enrolled)                          |-- srv1, srv2 (mesh, app=srv, role=fixed,
#     |-- ext (plain, not enrolled)                     |     echo :8080, srv1 also iperf3 -s)
#     warren-tunnel (mTLS)                              |-- ch1 .. chN (app=srv, echo :8080):
#                                                       |     added, served, deleted one by one
#                                                       warren-tunnel (mTLS), restarted mid-run
#   Service mesh/echo 10.96.0.10:80 -> app=srv:8080
#
# Loops, until the churn has added and deleted CHURN pods (default 8) and
# reached each of them from cli:
#   cli -> VIP (HBONE, short connections)     ext -> srv2 (plaintext 15006)
#   cli -> srv1 iperf3 -P 4 (bulk HBONE)       a DENY policy on srv1 and srv2
#                                              (role=fixed), on and off
#   warrenctl pods/workloads/services/connections/pool/certs/policies and
#   /metrics on both nodes
# Env: B or WARREN_BUILD, CHURN, KEEP_TMP=1.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need iperf3 nsenter "$PYTHON"
need_built warren-cni warren-tunnel warrenctl
CHURN=${CHURN:-8}

tunnel_conf_extra() { # NODE: short certificate and pool lifetimes, so they turn over too
	cat <<EOF
caDir: $T/ca
meshReloadMs: 200
poolIdleTimeoutMs: 1000
hbonePingIntervalMs: 500
accessLog: $T/$1/access.log
EOF
}
policy_set() { # on|off: the DENY policy, re-rendered and loaded by both tunnels
	"$PYTHON" - "$T/mesh.yaml" "$1" <<'PY' || return 1
import fcntl, json, os, sys
f, on = sys.argv[1], sys.argv[2] == "on"
lock = open(f + ".lock", "a"); fcntl.flock(lock, fcntl.LOCK_EX)
objs = [o for o in json.load(open(f + ".json")) if o["kind"] != "AuthorizationPolicy"]
if on:
    objs.append({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                 "metadata": {"name": "deny-mesh", "namespace": "mesh"},
                 "spec": {"selector": {"matchLabels": {"role": "fixed"}}, "action": "DENY",
                          "rules": [{"from": [{"source": {"namespaces": ["mesh"]}}]}]}})
open(f + ".json.tmp", "w").write(json.dumps(objs, indent=1)); os.rename(f + ".json.tmp", f + ".json")
PY
	mesh ns mesh istio.io/dataplane-mode=ambient 2>/dev/null # re-render + wait for the tunnels
}
running() { [[ ! -e $T/stop ]]; }
count() { echo $(($(cat "$T/$1" 2>/dev/null || echo 0) + 1)) >"$T/$1.tmp" && mv "$T/$1.tmp" "$T/$1"; }
value() { cat "$T/$1" 2>/dev/null || echo 0; }
at_least_file() { (($(value "$1") >= $2)); }

# The netns inodes of every socket and namespace fd a process holds
# (pidfd_getfd + SIOCGSKNS for sockets), one per line.
HELD_NETNS_PY='import ctypes, fcntl, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid = int(sys.argv[1]); pidfd = os.pidfd_open(pid)
SYS_pidfd_getfd, SIOCGSKNS = 438, 0x894C
for fd in os.listdir("/proc/%d/fd" % pid):
    try:
        link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
    except OSError:
        continue
    if link.startswith("net:["):
        print(link[5:-1]); continue
    if link.startswith("/run/netns/"):
        try: print(os.stat("/proc/%d/fd/%s" % (pid, fd)).st_ino)
        except OSError: print("gone:" + link)
        continue
    if not link.startswith("socket:"):
        continue
    mine = libc.syscall(SYS_pidfd_getfd, pidfd, int(fd), 0)
    if mine < 0:
        sys.exit("pidfd_getfd: errno %d" % ctypes.get_errno())
    try:
        ns = fcntl.ioctl(mine, SIOCGSKNS)
        print(os.fstat(ns).st_ino); os.close(ns)
    except OSError:
        pass  # not an inet/unix socket of a netns (netlink sockets answer too)
    os.close(mine)'
# Sockets or netns handles of a tunnel in a namespace that is not one of
# the live node or pod namespaces: what a deleted pod left behind.
stray_netns() { # NODE
	local live=() n held
	for n in "${NODE_NETNS[@]}" "${POD_NETNS[@]}"; do
		[[ -e /run/netns/$n ]] && live+=("$(stat -L -c %i "/run/netns/$n")")
	done
	held=$("$PYTHON" -c "$HELD_NETNS_PY" "${TUNNEL_PID[$1]}") || { echo "held-netns probe failed"; return 0; }
	sort -u <<<"$held" | grep -vxF -f <(printf '%s\n' "${live[@]}") || true
}
pods_of() { wctl "$1" -o json pods | "$PYTHON" -c 'import json,sys; print(" ".join(sorted(p["name"] for p in json.load(sys.stdin))))'; }
conns_of() { wctl "$1" -o json connections | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
no_conns() { [[ $(conns_of "$1") == 0 ]]; }

# --- set-up -------------------------------------------------------------------
mtls_cluster_up
for p in srv1 srv2; do
	pod_add node2 mesh $p --label app=srv --label role=fixed 2>"$T/err" || die "ADD $p: $(cat "$T/err")"
	app_server $p 8080 || die "echo server in $p"
done
pexec srv1 iperf3 -s -D -p 5201 --pidfile "$T/iperf3.pid" >/dev/null 2>&1 || die "iperf3 server"
pod_add node1 mesh cli --label app=cli 2>"$T/err" || die "ADD cli: $(cat "$T/err")"
pod_add node1 plain ext --conflist "$T/node1.plain.conflist" 2>"$T/err" || die "ADD ext: $(cat "$T/err")"
mesh service mesh echo --selector app=srv --port 80:8080 --cluster-ip 10.96.0.10 >/dev/null
check "before the churn: cli -> VIP and ext -> srv2 work" \
	eval 'app_client cli 10.96.0.10 80 warm >/dev/null && app_client ext "${POD_IP[srv2]}" 8080 warm >/dev/null'

# --- the loops ----------------------------------------------------------------
vip_loop() { while running; do
	if app_client cli 10.96.0.10 80 "v$RANDOM" --timeout 3 >/dev/null 2>&1; then count vip.ok; else count vip.bad; fi
done; }
plain_loop() { while running; do
	if app_client ext "${POD_IP[srv2]}" 8080 "p$RANDOM" --timeout 3 >/dev/null 2>&1; then count plain.ok; else count plain.bad; fi
done; }
bulk_loop() { while running; do
	pexec cli timeout 10 iperf3 -c "${POD_IP[srv1]}" -t 1 -P 4 >/dev/null 2>&1 && count bulk.ok
done; }
policy_loop() { while running; do
	policy_set on && count policy.flips
	policy_set off && count policy.flips
done; }
admin_loop() { local n c; while running; do
	for n in node1 node2; do
		for c in pods workloads services connections pool certs policies config-dump; do
			wctl $n -o json $c >/dev/null 2>&1
		done
		nexec $n curl -s --max-time 2 -o /dev/null http://127.0.0.1:15020/metrics
	done
	count admin.rounds
done; }
churn_loop() { local i; for ((i = 1; i <= CHURN; i++)); do
	pod_add node2 mesh "ch$i" --label app=srv >/dev/null 2>&1 && app_server "ch$i" 8080 && count churn.added
	app_client cli "${POD_IP[ch$i]:-0.0.0.0}" 8080 "ch$i" >/dev/null 2>&1 && count churn.served
	pod_del "ch$i" >/dev/null 2>&1 && count churn.deleted
done; }
rm -f "$T/stop"
vip_loop & LOOPS=($!)
plain_loop & LOOPS+=($!)
bulk_loop & LOOPS+=($!)
policy_loop & LOOPS+=($!)
admin_loop & LOOPS+=($!)
churn_loop & CHURN_PID=$!
BG_PIDS+=("${LOOPS[@]}" "$CHURN_PID")

wait_for -t 120 at_least_file churn.deleted $((CHURN / 2)) || not_ok "half of the churn done within 120 s"
tunnel_stop node2
tunnel_start node2 2>/dev/null && ok "node2's tunnel restarted in the middle of it all (SIGTERM, adoption)" ||
	not_ok "node2's tunnel restarted mid-run" "$(tail -n 5 "$T/node2/tunnel.out")"
wait "$CHURN_PID"
touch "$T/stop"
wait "${LOOPS[@]}"
diag "vip ok $(value vip.ok) bad $(value vip.bad); plain ok $(value plain.ok) bad $(value plain.bad);" \
	"bulk runs $(value bulk.ok); policy flips $(value policy.flips); admin rounds $(value admin.rounds)"

# --- what must hold afterwards ------------------------------------------------
check "the churn added, served and deleted all $CHURN pods" \
	eval '(($(value churn.added) == CHURN && $(value churn.served) == CHURN && $(value churn.deleted) == CHURN))'
check "every loop made progress (VIP, plaintext, bulk, policy, admin)" \
	eval '(($(value vip.ok) > 0 && $(value plain.ok) > 0 && $(value bulk.ok) > 0 && $(value policy.flips) >= 2 && $(value admin.rounds) > 0))'
check "the DENY policy refused some VIP connections (401 logged by node2)" \
	grep -q 'refused with 401: denied by policy mesh/deny-mesh' "$T/node2/tunnel.log"
total=$(($(value plain.ok) + $(value plain.bad)))
check "plaintext ext -> srv2: at least 80 % of $total connections succeeded (the rest: node2's restart)" \
	eval '(($(value plain.ok) * 5 >= total * 4))'
check "both tunnels are alive" eval 'tunnel_alive node1 && tunnel_alive node2'
check "node1 knows only cli" eval '[[ $(pods_of node1) == cli ]]'
check "node2 knows only srv1 and srv2 (every churn pod forgotten)" eval '[[ $(pods_of node2) == "srv1 srv2" ]]'
check "connections drain to 0 on both nodes" eval 'wait_for -t 15 no_conns node1 && wait_for -t 15 no_conns node2'
for node in node1 node2; do
	stray=$(stray_netns $node)
	[[ -z $stray ]] && ok "$node holds no socket or netns of a deleted pod" ||
		not_ok "$node holds no socket or netns of a deleted pod" "netns inodes: $stray"
done
check "after the churn: cli -> VIP works" app_client cli 10.96.0.10 80 after-$E2E_ID
check "after the churn: ext -> srv2 works" app_client ext "${POD_IP[srv2]}" 8080 after-$E2E_ID
tunnel_stop node1
tunnel_stop node2
sanitizer_clean node1 node2 # after their exit: LeakSanitizer has reported by then
echo "# $TAP_COUNT checks, $TAP_FAILED failed"
