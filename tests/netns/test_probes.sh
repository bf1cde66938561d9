#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Kubelet probes to enrolled pods, as root on the real kernel (TAP).
#
# The tunnel keeps the node's table inet warren-host: a set of its enrolled
# pods' IPs and a postrouting SNAT of the kubelet's TCP to them to
# 169.254.7.127, which the in-pod rules pass to the app uncaptured. So a
# probe works under STRICT mTLS, while any other plaintext from the node
# is still captured (and refused by STRICT).
#
#   node1 netns                  <====== veth ======>  node2 netns
#     cni0 10.244.1.1/24                                 cni0 10.244.2.1/24
#      |-- cli (ns mesh, enrolled)                        |-- srv  (ns mesh, enrolled, echo :8080)
#      |-- ext (ns plain, no warren-cni)                  |-- srv2 (ns mesh, enrolled, echo :8080)
#     warren-tunnel caDir=$T/ca,                          |-- side (ns plain, echo :8080)
#       kubeletUid: 4322 (configured)                    warren-tunnel caDir=$T/ca, kubelet found
#                                                          in /proc: a "kubelet" process of uid 4321
#                                                          in a cgroup v2 of its own (later: uid 0)
#     a probe = TCP from the node's netns as the kubelet's uid (setpriv), made
#     from inside the kubelet's cgroup; the same uid outside it is not a probe
#
# Shown by the kernel (the table's set and counters, the in-pod probe
# accept counter) and by traffic (the app sees 169.254.7.127), across a
# tunnel restart, a pod deleted while the tunnel was down, a table deleted
# by hand, a sync failing at start (retried with no pod change), a kubelet
# running as root (in a cgroup of its own, then in the root cgroup: the uid
# alone, with a warning) and hostProbeSnat: false.
# Env: B or WARREN_BUILD, KEEP_TMP=1.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need setpriv findmnt conntrack "$PYTHON" "$USER_PYTHON"
need_built warren-cni warren-tunnel warrenctl

KUBELET_UID=4321 # node2's "kubelet", found in /proc
NODE1_UID=4322   # node1's, from its config
HOST_PROBE_OFF=0
tunnel_conf_extra() { # NODE
	echo "caDir: $T/ca"
	[[ $1 == node1 ]] && echo "kubeletUid: $NODE1_UID"
	((HOST_PROBE_OFF)) && echo "hostProbeSnat: false"
	return 0
}
STRICT='{"apiVersion":"security.istio.io/v1","kind":"PeerAuthentication","metadata":{"namespace":"istio-system","name":"default","creationTimestamp":"2024-01-01T00:00:00Z"},"spec":{"mtls":{"mode":"STRICT"}}}'

# The kubelet's cgroup v2: the tunnel matches its sockets by uid and cgroup.
CGROOT=$(findmnt -n -t cgroup2 -o TARGET | head -n 1)
[[ -n $CGROOT ]] || die "cgroup v2 is not mounted"
KCG_REL=/warren-probes-$E2E_ID/kubelet
KCG=$CGROOT$KCG_REL
cgroup_cleanup() { # move what is left in our cgroups back to the root one, remove them
	local pid
	for pid in $(cat "$KCG/cgroup.procs" 2>/dev/null); do echo "$pid" >"$CGROOT/cgroup.procs"; done
	rmdir "$KCG" "$CGROOT/warren-probes-$E2E_ID" 2>/dev/null
}
trap 'rc=$?; cgroup_cleanup; (exit $rc); cleanup' EXIT
mkdir -p "$KCG" || die "cgroup $KCG"
in_kubelet_cgroup() { (echo "$BASHPID" >"$KCG/cgroup.procs" && "$@"); } # CMD...: run it in the kubelet's cgroup

probe() { in_kubelet_cgroup connect_as node2 "$KUBELET_UID" "${POD_IP[$1]}" 8080 "$2"; } # POD MSG: the kubelet's probe
uid_connect() { connect_as node2 "$KUBELET_UID" "${POD_IP[$1]}" 8080 "$2"; } # POD MSG: the kubelet's uid, another cgroup
root_connect() { connect_as node2 0 "${POD_IP[$1]}" 8080 "$2"; } # POD MSG: root's plaintext
host_set() { # NODE: "ADDR COMMENT" per element of set probe-pods-v4
	nexec "$1" nft -j list set inet warren-host probe-pods-v4 2>/dev/null | "$PYTHON" -c '
import json, sys
for i in json.load(sys.stdin)["nftables"]:
    for e in i.get("set", {}).get("elem", []):
        if isinstance(e, dict): print(e["elem"]["val"], e["elem"].get("comment", ""))
        else: print(e, "")'
}
in_host_set() { host_set "$1" | grep "^$2 " >/dev/null; } # NODE ADDR
host_table() { nexec "$1" nft list table inet warren-host >/dev/null 2>&1; } # NODE
# For a failed connection check: node2's table, its tunnel's host-probe
# state and log lines, and the conntrack entries (node2's, POD's) for POD.
host_diag() { # POD
	echo "table inet warren-host in node2:"
	nexec node2 nft list table inet warren-host 2>&1
	echo "config_dump hostProbe:"
	wctl node2 -o json config-dump | "$PYTHON" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["hostProbe"]))'
	echo "node2's tunnel log (host probe):"
	grep -F 'host probe' "$T/node2/tunnel.log" | tail -n 6 | cut -c1-300
	echo "conntrack in node2 for ${POD_IP[$1]}:"
	nexec node2 conntrack -L -d "${POD_IP[$1]}" 2>/dev/null
	echo "conntrack in $1:"
	pexec "$1" conntrack -L -p tcp --orig-port-dst 8080 2>/dev/null
	echo "$1's tunnel log (connections to :8080):"
	grep -F -- "-> ${POD_IP[$1]}:8080" "$T/node2/tunnel.log" | tail -n 4 | cut -c1-300
}
host_probe() { # NODE KEY: config_dump hostProbe.KEY
	wctl "$1" -o json config-dump | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["hostProbe"][sys.argv[1]])' "$2"
}
# The restarted tunnel's sync of the table (at the end of adoption) is what
# a probe depends on: its last sync succeeded, and the SNAT rule is uid
# UID's, with the probe label (LABEL 1: the kubelet's cgroup, whose output
# rule sets it) or without (0: the uid alone).
host_in_step() { # NODE UID LABEL
	local chains
	[[ $(host_probe "$1" syncs) -ge 1 && $(host_probe "$1" lastError) == None ]] || return 1
	chains=$(nexec "$1" nft list chain inet warren-host postrouting 2>/dev/null
		nexec "$1" nft list chain inet warren-host output 2>/dev/null)
	if (($3)); then
		grep -F "meta skuid $2 ct label 127 ip daddr @probe-pods-v4 " <<<"$chains" | grep -F "snat ip to 169.254.7.127" &&
			grep -F "meta skuid $2 socket cgroupv2 level " <<<"$chains" | grep -F "ct label set 127"
	else
		grep -F "meta skuid $2 ip daddr @probe-pods-v4 " <<<"$chains" | grep -F "snat ip to 169.254.7.127" &&
			! grep -F "ct label" <<<"$chains"
	fi >/dev/null
}
# check, with node2's host-probe state and conntrack (host_diag POD) in a
# failure's diagnostics
probe_check() { # NAME POD CMD...
	local name=$1 pod=$2 out; shift 2
	if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "command: $*"$'\n'"$out"$'\n'"$(host_diag "$pod")"; fi
}
# The app log's accepts: a peer check after a connection looks only at the
# lines it added (a refused connection adds none).
accepts() { wc -l <"$T/$1.app.log"; } # POD
new_peer() { tail -n +"$(($2 + 1))" "$T/$1.app.log" | tail -n 1 | awk '{print $2}'; } # POD ACCEPTS

# --- the "kubelet" --------------------------------------------------------------
# The tunnel looks for the kubelet in the whole /proc: another kubelet on this
# machine (a real cluster's) would be found too. Then the checks are skipped.
KUBELET_PID=
other_kubelets() { # pids of live kubelet-like processes that are not ours
	local d
	for d in /proc/[0-9]*; do
		[[ ${d#/proc/} == "$KUBELET_PID" ]] && continue
		[[ $(cat "$d/comm" 2>/dev/null) =~ ^(kubelet|kubelite|k3s)$ &&
			-n $(tr -d '\0' <"$d/cmdline" 2>/dev/null) ]] && echo "${d#/proc/}"
	done
}
others=$(other_kubelets | tr '\n' ' ')
if [[ -n $others ]]; then
	echo "ok - kubelet probes # SKIP another kubelet runs on this machine (pid $others)"
	exit 0
fi
# A process named kubelet with kubelet on its command line, as Istio looks
# for it. It only sleeps; the probes are made by connect_as.
bg setpriv --reuid=$KUBELET_UID --regid=$KUBELET_UID --clear-groups "$USER_PYTHON" -c \
	'import time; open("/proc/self/comm", "w").write("kubelet"); time.sleep(3600)' kubelet --fake
KUBELET_PID=${BG_PIDS[-1]}
wait_for -t 5 bash -c "[[ \$(cat /proc/$KUBELET_PID/comm) == kubelet ]]" || die "fake kubelet process"
echo "$KUBELET_PID" >"$KCG/cgroup.procs" || die "fake kubelet into $KCG"

mtls_cluster_up
pod_add node2 mesh srv --label app=srv 2>"$T/err" || die "ADD srv: $(cat "$T/err")"
pod_add node2 mesh srv2 --label app=srv2 2>"$T/err" || die "ADD srv2: $(cat "$T/err")"
pod_add node2 plain side --conflist "$T/node2.plain.conflist" 2>"$T/err" || die "ADD side: $(cat "$T/err")"
pod_add node1 mesh cli --label app=cli 2>"$T/err" || die "ADD cli: $(cat "$T/err")"
pod_add node1 plain ext --conflist "$T/node1.plain.conflist" 2>"$T/err" || die "ADD ext: $(cat "$T/err")"
for p in srv srv2 side; do app_server "$p" 8080 || die "echo server in $p"; done

# --- the table ------------------------------------------------------------------
[[ $(host_probe node2 kubeletUid) == "$KUBELET_UID" &&
	$(host_probe node2 kubeletUidFrom) == "kubelet process (pid $KUBELET_PID)" ]] &&
	ok "node2 found the kubelet's uid $KUBELET_UID in /proc (pid $KUBELET_PID)" ||
	not_ok "node2 found the kubelet's uid" "$(wctl node2 -o json config-dump | grep -A12 hostProbe)"
[[ $(host_probe node2 kubeletCgroup) == "$KCG_REL" ]] &&
	ok "node2 matches the kubelet's sockets by its cgroup $KCG_REL too" ||
	not_ok "node2 found the kubelet's cgroup" "$(wctl node2 -o json config-dump | grep -A14 hostProbe)"
[[ $(host_probe node1 kubeletUid) == "$NODE1_UID" && $(host_probe node1 kubeletUidFrom) == "config (kubeletUid)" ]] &&
	ok "node1 uses the configured kubeletUid $NODE1_UID" ||
	not_ok "node1 uses kubeletUid" "$(wctl node1 -o json config-dump | grep -A12 hostProbe)"
[[ $(host_probe node1 kubeletCgroup) == None ]] && grep -F "matched by uid $NODE1_UID alone (no kubelet process of uid $NODE1_UID found)" "$T/node1/tunnel.log" >/dev/null &&
	ok "node1 (no such kubelet process): the uid alone, and a warning says so" ||
	not_ok "node1: uid alone, with a warning" "$(grep -i 'host probe' "$T/node1/tunnel.log")"
host_set node2 | grep -Fx "${POD_IP[srv]} ${POD_UID[srv]}" >/dev/null &&
	ok "node2's set holds srv's address, with its pod uid as the comment" ||
	not_ok "node2's set holds srv's address" "$(nexec node2 nft list table inet warren-host)"
[[ $(host_set node2 | wc -l) == 2 ]] && in_host_set node2 "${POD_IP[srv2]}" &&
	ok "... and srv2's; not side's (not enrolled): 2 elements" ||
	not_ok "node2's set: srv and srv2 only" "$(host_set node2)"
rules=$(nexec node2 nft list chain inet warren-host postrouting)
grep -F "meta skuid $KUBELET_UID ct label 127 ip daddr @probe-pods-v4 counter" <<<"$rules" | grep -F "snat ip to 169.254.7.127" >/dev/null &&
	grep -F "type nat hook postrouting priority srcnat - 1" <<<"$rules" >/dev/null &&
	ok "node2: postrouting (srcnat - 1) SNATs uid $KUBELET_UID's TCP with the probe label to the set to 169.254.7.127" ||
	not_ok "node2: the SNAT rule" "$rules"
rules=$(nexec node2 nft list chain inet warren-host output)
grep -F "meta skuid $KUBELET_UID socket cgroupv2 level 2 " <<<"$rules" | grep -F "ip daddr @probe-pods-v4 counter" | grep -F "ct label set 127" >/dev/null &&
	ok "node2: output labels the TCP of uid $KUBELET_UID in the kubelet's cgroup (level 2)" ||
	not_ok "node2: the output rule" "$rules"
host_set node1 | grep -Fx "${POD_IP[cli]} ${POD_UID[cli]}" >/dev/null &&
	ok "node1's set holds cli's address (each node lists its own pods)" ||
	not_ok "node1's set holds cli's address" "$(host_set node1)"

# --- probes, before and under STRICT -----------------------------------------------
c0=$(nft_counter_in "${NODE_NETNS[node2]}" warren-host warren:host-probe-snat-v4)
# in-pod: nftables counts the probe-accept rule; the eBPF program passes a
# probe without counting it as captured (its inbound count stays)
pa() { if [[ $REDIRECT_MODE == ebpf ]]; then capture_count srv in; else nft_counter srv warren-nat warren:nat-pre-probe-accept-v4; fi; }
a0=$(pa)
n=$(accepts srv)
check "probe (uid $KUBELET_UID) from node2 -> srv:8080 works" probe srv "probe-$E2E_ID"
[[ $(new_peer srv "$n") == 169.254.7.127 ]] && ok "... srv's app sees it from 169.254.7.127" ||
	not_ok "srv's app sees the probe from 169.254.7.127" "$(tail -n 3 "$T/srv.app.log")"
c1=$(nft_counter_in "${NODE_NETNS[node2]}" warren-host warren:host-probe-snat-v4)
a1=$(pa)
if [[ $REDIRECT_MODE == ebpf ]]; then
	((c1 > c0)) && [[ -n $a1 && $a1 == "$a0" ]] &&
		ok "... the host SNAT rule counted it ($c0 -> $c1), srv's eBPF program did not capture it (inbound count $a0 -> $a1)" ||
		not_ok "host SNAT counter moved, eBPF inbound count did not" "host $c0 -> $c1, pod $a0 -> $a1"
else
	((c1 > c0 && a1 > a0)) && ok "... the host SNAT rule and srv's in-pod probe accept both counted it ($c0 -> $c1, $a0 -> $a1)" ||
		not_ok "host SNAT and in-pod probe-accept counters" "host $c0 -> $c1, pod $a0 -> $a1"
fi
n=$(accepts srv)
check "root from node2 -> srv:8080 works too (captured as plaintext through 15006)" root_connect srv "root-$E2E_ID"
[[ $(new_peer srv "$n") == 10.244.2.1 ]] && ok "... and srv's app sees the node's address, not the probe address" ||
	not_ok "root's connection is not rewritten" "$(tail -n 3 "$T/srv.app.log")"
n=$(accepts srv)
check "uid $KUBELET_UID outside the kubelet's cgroup -> srv:8080 works (captured as plaintext)" uid_connect srv "uid-$E2E_ID"
[[ $(new_peer srv "$n") == 10.244.2.1 ]] && ok "... and is not rewritten: the kubelet's uid alone is not a probe" ||
	not_ok "uid $KUBELET_UID outside the cgroup is not rewritten" "$(tail -n 3 "$T/srv.app.log")"
n=$(accepts side)
check "probe from node2 -> side (not enrolled) works, not rewritten" probe side "side-$E2E_ID"
[[ $(new_peer side "$n") == 10.244.2.1 ]] && ok "... side's app sees the node's address" ||
	not_ok "side's app sees the node's address" "$(tail -n 3 "$T/side.app.log")"

add_policy "$STRICT" || not_ok "add STRICT PeerAuthentication"
check "STRICT: plaintext ext -> srv:8080 is refused" fails app_client ext "${POD_IP[srv]}" 8080 "strict-$E2E_ID"
check "STRICT: root from node2 -> srv:8080 is refused (only the kubelet's TCP is a probe)" \
	fails root_connect srv "strict-root-$E2E_ID"
check "STRICT: uid $KUBELET_UID outside the kubelet's cgroup -> srv:8080 is refused" \
	fails uid_connect srv "strict-uid-$E2E_ID"
check "STRICT: probe from node2 -> srv:8080 still works" probe srv "strict-probe-$E2E_ID"
check "STRICT: HBONE cli -> srv:8080 still works" app_client cli "${POD_IP[srv]}" 8080 "strict-hbone-$E2E_ID"

# --- the tunnel down, then back ------------------------------------------------------
tunnel_stop node2
host_table node2 && in_host_set node2 "${POD_IP[srv]}" &&
	ok "node2's tunnel stopped: its table stays, srv's address in it" ||
	not_ok "the table outlives the tunnel" "$(nexec node2 nft list ruleset)"
check "tunnel down: probe -> srv:8080 still reaches the app (the kubelet keeps the pod)" probe srv "down-probe-$E2E_ID"
check "tunnel down: root from node2 -> srv:8080 fails closed" fails root_connect srv "down-root-$E2E_ID"
srv2_ip=${POD_IP[srv2]}
pod_del srv2 || not_ok "DEL srv2 while node2's tunnel is down"
tunnel_start node2 || die "node2's tunnel restart"
wait_for host_in_step node2 "$KUBELET_UID" 1 && ok "restarted: node2's table in step (a good sync, uid $KUBELET_UID's rules)" ||
	not_ok "restarted: node2's table in step" "$(host_diag srv)"
in_host_set node2 "${POD_IP[srv]}" && ! in_host_set node2 "$srv2_ip" &&
	ok "restarted: srv's address kept, srv2's (deleted while down) gone" ||
	not_ok "restart syncs the set" "$(host_set node2)"
probe_check "restarted: probe -> srv:8080 works" srv probe srv "restart-probe-$E2E_ID"

# --- changes while up ---------------------------------------------------------------
pod_add node2 mesh srv3 --label app=srv3 2>"$T/err" || not_ok "ADD srv3" "$(cat "$T/err")"
in_host_set node2 "${POD_IP[srv3]}" && ok "ADD srv3: its address is in the set when the ADD returns" ||
	not_ok "ADD srv3: in the set" "$(host_set node2)"
srv3_ip=${POD_IP[srv3]}
pod_del srv3 || not_ok "DEL srv3"
! in_host_set node2 "$srv3_ip" && in_host_set node2 "${POD_IP[srv]}" &&
	ok "DEL srv3: its address left the set when the DEL returned; srv's stays" ||
	not_ok "DEL srv3: out of the set" "$(host_set node2)"
nexec node2 nft delete table inet warren-host || not_ok "delete the table by hand"
pod_add node2 mesh srv4 --label app=srv4 2>"$T/err" || not_ok "ADD srv4" "$(cat "$T/err")"
in_host_set node2 "${POD_IP[srv]}" && in_host_set node2 "${POD_IP[srv4]}" &&
	[[ -n $(nft_counter_in "${NODE_NETNS[node2]}" warren-host warren:host-probe-snat-v4) ]] &&
	ok "a table deleted by hand comes back whole at the next change (srv, srv4, the rule)" ||
	not_ok "the table is repaired" "$(nexec node2 nft list table inet warren-host 2>&1)"
[[ $(host_probe node2 lastError) == None && $(host_probe node2 addresses) == 2 ]] &&
	ok "config_dump hostProbe: 2 addresses, no error" ||
	not_ok "config_dump hostProbe" "$(wctl node2 -o json config-dump | grep -A12 hostProbe)"

# --- a sync that fails at start ----------------------------------------------------------
# A table in the way (its postrouting a regular chain) fails the sync at the
# end of adoption: logged, shown as lastError, and retried on a timer with
# no pod coming or going (a stale table, maybe matching more, must not stay).
tunnel_stop node2
{ nexec node2 nft delete table inet warren-host && nexec node2 nft add table inet warren-host &&
	nexec node2 nft add chain inet warren-host postrouting; } || not_ok "a table in the way"
tunnel_start node2 || die "node2's tunnel with a table in the way"
[[ $(host_probe node2 lastError) == *'failed at "add chain inet warren-host postrouting"'* &&
	$(host_probe node2 failures) -ge 1 ]] &&
	grep -F "host probe SNAT: nftables sync of table inet warren-host failed" "$T/node2/tunnel.log" >/dev/null &&
	ok "a sync that fails at start (a table in the way) is logged and shown (config_dump lastError)" ||
	not_ok "a failed sync at start is logged and shown" "$(host_diag srv)"
nexec node2 nft delete table inet warren-host || not_ok "remove the table in the way"
wait_for -t 20 host_in_step node2 "$KUBELET_UID" 1 &&
	grep -F "host probe SNAT: table inet warren-host is in step again" "$T/node2/tunnel.log" >/dev/null &&
	ok "... and retried with no pod coming or going: the table is in step again" ||
	not_ok "a failed sync is retried" "$(host_diag srv)"
probe_check "... and a probe -> srv:8080 works" srv probe srv "retry-probe-$E2E_ID"

# --- a kubelet running as root ----------------------------------------------------------
# The usual case. In a cgroup of its own, only its sockets are probes; in
# the root cgroup (shared with everything) the uid alone must do, and the
# tunnel says so loudly.
# (The tunnel takes the first kubelet it finds in /proc: on a machine where
# another root kubelet runs, these checks are skipped, not passed.)
tunnel_stop node2
kill "$KUBELET_PID" && wait_for -t 5 exited "$KUBELET_PID" || die "stop the uid $KUBELET_UID kubelet"
KUBELET_UID=0
bg "$USER_PYTHON" -c 'import time; open("/proc/self/comm", "w").write("kubelet"); time.sleep(3600)' kubelet --fake
KUBELET_PID=${BG_PIDS[-1]}
wait_for -t 5 bash -c "[[ \$(cat /proc/$KUBELET_PID/comm) == kubelet ]]" || die "root's fake kubelet"
echo "$KUBELET_PID" >"$KCG/cgroup.procs" || die "root's fake kubelet into $KCG"
tunnel_start node2 || die "node2's tunnel with a root kubelet"
others=$(other_kubelets | tr '\n' ' ')
if [[ -n $others ]]; then
	echo "ok - root kubelet checks # SKIP another kubelet runs on this machine (pid $others)"
else
	[[ $(host_probe node2 kubeletUid) == 0 && $(host_probe node2 kubeletCgroup) == "$KCG_REL" ]] &&
		ok "root kubelet in its own cgroup: node2 matches uid 0 and $KCG_REL" ||
		not_ok "root kubelet: uid 0 and its cgroup" "$(wctl node2 -o json config-dump | grep -A14 hostProbe)"
	wait_for host_in_step node2 0 1 && ok "... node2's table in step (a good sync, uid 0's rules with the label)" ||
		not_ok "root kubelet in its cgroup: node2's table in step" "$(host_diag srv)"
	n=$(accepts srv)
	probe_check "STRICT: the root kubelet's probe -> srv:8080 works" srv probe srv "root-probe-$E2E_ID"
	[[ $(new_peer srv "$n") == 169.254.7.127 ]] && ok "... srv's app sees it from 169.254.7.127" ||
		not_ok "the root kubelet's probe comes from 169.254.7.127" "$(tail -n 3 "$T/srv.app.log")"
	probe_check "STRICT: another root process on the node -> srv:8080 is refused (not a probe)" srv \
		fails root_connect srv "root-other-$E2E_ID"
	tunnel_stop node2
	echo "$KUBELET_PID" >"$CGROOT/cgroup.procs" || die "root's fake kubelet back to the root cgroup"
	tunnel_start node2 || die "node2's tunnel with a root kubelet in the root cgroup"
	[[ $(host_probe node2 kubeletCgroup) == None ]] &&
		grep -F "WARNING: the kubelet is matched by uid 0 alone (the kubelet (pid $KUBELET_PID) is in the root cgroup" "$T/node2/tunnel.log" >/dev/null &&
		ok "root kubelet in the root cgroup: the uid alone, with a warning at start" ||
		not_ok "root cgroup: uid alone and a warning" "$(grep -i 'host probe' "$T/node2/tunnel.log")"
	wait_for host_in_step node2 0 0 && ok "... node2's table in step (a good sync, uid 0's rule without the label)" ||
		not_ok "root kubelet in the root cgroup: node2's table in step" "$(host_diag srv)"
	n=$(accepts srv)
	probe_check "... and then any root process passes as a probe (the documented limit)" srv root_connect srv "root-limit-$E2E_ID"
	[[ $(new_peer srv "$n") == 169.254.7.127 ]] && ok "... from 169.254.7.127" ||
		not_ok "root-cgroup fallback SNATs root" "$(tail -n 3 "$T/srv.app.log")"
fi

# --- hostProbeSnat: false -------------------------------------------------------------
tunnel_stop node2
HOST_PROBE_OFF=1
tunnel_start node2 || die "node2's tunnel with hostProbeSnat: false"
! host_table node2 && ok "hostProbeSnat: false removes the table" ||
	not_ok "hostProbeSnat: false removes the table" "$(nexec node2 nft list table inet warren-host)"
[[ $(host_probe node2 enabled) == False ]] && ok "... config_dump says hostProbe disabled" ||
	not_ok "config_dump hostProbe.enabled" "$(wctl node2 -o json config-dump | grep -A12 hostProbe)"
check "... and a probe is captured as plaintext like any other, so STRICT refuses it" \
	fails probe srv "off-probe-$E2E_ID"
pod_add node2 mesh srv5 --label app=srv5 2>"$T/err" && ! host_table node2 &&
	ok "... an ADD does not bring the table back" || not_ok "ADD with hostProbeSnat: false" "$(cat "$T/err")"

tunnel_stop node1
tunnel_stop node2
sanitizer_clean node1 node2
echo "# $TAP_COUNT checks, $TAP_FAILED failed"
