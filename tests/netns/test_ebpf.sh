#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The eBPF capture mode's life cycle (redirect "ebpf", docs/ebpf.md), as
# root, on the real kernel (TAP): the sk_lookup program attached after ADD
# (bpftool), the pins, the rules, the mode in warrenctl; CHECK naming a
# detached program; nothing pinned after DEL or a failed ADD; clear ADD
# errors for a missing bpffs and for unsupported pod options; the tunnel's
# listeners put into the pod's map, emptied when it stops (fail closed) and
# put back on restart (re-adoption); the pool of spare programs the
# tunnels' keepers pre-load (bpfDir/warren/_pool/<object hash>/<n>): an ADD
# takes one without loading a program (strace), it is topped up again, an
# ADD falls back with the pool empty or of another object, a failed ADD
# does not put its spare back, two keepers share it, the last one to stop
# removes it.
#
#   node1 netns <== veth ==> node2 netns (lib.sh topology)
#     |-- cli (mesh), pl (plain)                    |-- web (mesh, echo :8080), psrv (plain, echo :8080)
#     |-- srv (ns mesh, enrolled, redirect ebpf)
#     |-- byp (ns mesh, bypass-inbound-capture: refused)
#     |-- busy (ns mesh, 15006 taken before ADD: the handoff fails after attach)
#     |-- sp, em, wh, c1..c3 (ns mesh: ADDs with the pool full, empty, of
#         another object, and concurrent on both nodes)
#   bpffs: $T/bpffs (bpfDir), mounted by topo_up
#
# Plus traffic: HBONE cli -> web, plaintext pl -> web (inbound) and
# cli -> psrv (outbound), refused while a tunnel is down, working again
# after it re-adopts its pods.
#
# Env: B or WARREN_BUILD (build dir), KEEP_TMP=1 keeps the temp dir (logs).
set -uo pipefail
REDIRECT_MODE=ebpf
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need bpftool mountpoint strace
need_built warren-cni warren-tunnel warrenctl

tunnel_conf_extra() { echo "caDir: $T/ca"; } # NODE: mTLS, so mesh-to-mesh is HBONE
mtls_cluster_up # CA, topology with a bpffs at $T/bpffs, both tunnels

netns_ino() { stat -L -c %i "/run/netns/${POD_NETNS[$1]}"; }
attached() { ebpf_link_id "$1" >/dev/null; }
pinned() { [[ -e $(ebpf_pin_dir "$1")/link && -e $(ebpf_pin_dir "$1")/lis ]]; }
unpinned() { [[ ! -e $(ebpf_pin_dir "$1") ]]; }
rules_in() { ip -n "${POD_NETNS[$1]}" rule show | grep -c -E 'fwmark 0x539/0xfff lookup main|to 169.254.7.127 ipproto tcp lookup main|ipproto tcp lookup 100'; }
# listeners in the pod's map: the number of elements bpftool finds
# (an empty SOCKMAP slot is listed with an "error" value)
map_elems() { bpftool -j map dump pinned "$(ebpf_pin_dir "$1")/lis" 2>/dev/null |
	"$PYTHON" -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if "error" not in str(e.get("value"))))'; }
map_full() { [[ $(map_elems "$1") == 2 ]]; }
map_empty() { [[ $(map_elems "$1") == 0 ]]; }
cni_check() { chain node1 CHECK "$1" >"$T/$1.check.out" 2>&1; }
# POD's program finds POD's IPv4 address in its hash warren_pod (key struct
# capture_addr: family 2, then the address in network byte order), a map the
# program cannot write (BPF_F_RDONLY_PROG)
pod_map_holds() { # POD [IP (default: POD's)]
	local m
	m=$(ebpf_map_id "$1" warren_pod) || { echo "no map warren_pod on $1's program"; return 1; }
	"$PYTHON" -c '
import json, socket, subprocess, sys
def bt(*a):
    return json.loads(subprocess.run(["bpftool", "-j", *a], capture_output=True, text=True).stdout)
if not bt("map", "show", "id", sys.argv[1]).get("flags", 0) & 0x80:
    sys.exit("warren_pod is writable by the program")
want = (2).to_bytes(4, "little") + socket.inet_aton(sys.argv[2]) + bytes(12)
keys = [bytes(int(b, 16) for b in e["key"]) for e in bt("map", "dump", "id", sys.argv[1])]
sys.exit(0 if want in keys else "warren_pod: %s not among %s" % (sys.argv[2], [k.hex() for k in keys]))' "$m" "${2:-${POD_IP[$1]}}"
}

metric() { # NODE NAME LABEL-SUBSTRING: value (sum) or 0
	nexec "$1" curl -s --max-time 2 http://127.0.0.1:15020/metrics |
		awk -v n="$2" -v l="$3" 'index($0, n) == 1 && index($0, l) { s += $NF } END { print s + 0 }'
}
accepts() { wc -l <"$T/$1.app.log"; }

# The pool of spare programs (netlink/ebpf_pool.h)
POOL=$T/bpffs/warren/_pool
spare_dirs() { ls -d "$POOL"/*/[0-9]* 2>/dev/null; }
prog_id_of() { bpftool -j prog show pinned "$1" 2>/dev/null | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
spare_ids() { local d; for d in $(spare_dirs); do prog_id_of "$d/prog"; done | sort -n | tr '\n' ' '; }
# exactly EBPF_POOL_SIZE (4) whole spares of this build's object, nothing else
pool_full() {
	local d n=0
	[[ $(ls "$POOL" 2>/dev/null) == "$HASH" ]] || return 1
	[[ $(ls "$POOL/$HASH" | grep -cv '^[0-3]$') == 0 ]] || return 1
	for d in $(spare_dirs); do
		[[ $(ls "$d" | tr '\n' ' ') == "lis pod prog " ]] && ((n++))
	done
	((n == 4)) && [[ $(spare_ids | wc -w) == 4 ]]
}
pod_prog_id() { bpftool -j link show id "$(ebpf_link_id "$1")" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["prog_id"])'; }
linked_prog_ids() { bpftool -j link show | "$PYTHON" -c 'import json,sys; print(" ".join(str(l["prog_id"]) for l in json.load(sys.stdin)))'; }
no_spare_attached() { local i; for i in $(spare_ids); do [[ " $(linked_prog_ids) " != *" $i "* ]] || return 1; done; }
prog_gone() { ! bpftool prog show id "$1" >/dev/null 2>&1; }
# chain ADD under strace -f -e trace=bpf (every process of the chain), to $T/POD.strace
straced_add() { # POD
	: >"$T/$1.strace" # appended to: pod_cni_add runs $PYTHON more than once
	printf '#!/bin/sh\nexec strace -f -qq -A -e trace=bpf -o "%s" %s "$@"\n' "$T/$1.strace" "$PYTHON" >"$T/strace-py"
	chmod +x "$T/strace-py"
	# LeakSanitizer refuses to run under ptrace (a sanitizer build's exit check)
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 PYTHON=$T/strace-py pod_cni_add "$1"
}
in_list() { [[ " $2 " == *" $1 "* ]]; } # ID LIST
attach_only() { ! grep -qE 'BPF_PROG_LOAD|BPF_BTF_LOAD' "$1" && [[ $(grep -c 'bpf(BPF_LINK_CREATE' "$1") == 1 ]]; } # STRACE
refilled_without() { wait_for -t 10 pool_full && ! in_list "$1" "$(spare_ids)"; } # PROG_ID
all_gone() { local i; for i in "$@"; do wait_for -t 5 prog_gone "$i" || return 1; done; } # PROG_ID...
spare_freed() { [[ $(wc -w <<<"$1") == 1 ]] && wait_for -t 5 prog_gone "$1"; } # PROG_ID
unique_ids() { # N ID...: N ids, all different
	local n=$1 ids; shift
	ids=$(printf '%s\n' "$@" | tr ' ' '\n' | sed '/^$/d')
	[[ -z $(sort <<<"$ids" | uniq -d) && $(wc -l <<<"$ids") == "$n" ]]
}
# the tunnel's pool keeper: its only child (tunnel/keeper.h)
keeper_pid() { awk '{print $1}' "/proc/${TUNNEL_PID[$1]}/task/${TUNNEL_PID[$1]}/children"; }
keeper_hardened() { # NODE: CAP_BPF and CAP_NET_ADMIN only, no_new_privs, a seccomp filter
	local p st
	p=$(keeper_pid "$1") && [[ -n $p ]] || { echo "no keeper process"; return 1; }
	st=/proc/$p/status
	[[ $(awk '$1 == "Name:" {print $2}' "$st") == warren-keeper &&
		$(awk '$1 == "CapEff:" || $1 == "CapPrm:" || $1 == "CapBnd:" {print $2}' "$st" | sort -u) == 0000008000001000 &&
		$(awk '$1 == "CapInh:" || $1 == "CapAmb:" {print $2}' "$st" | sort -u) == 0000000000000000 &&
		$(awk '$1 == "NoNewPrivs:" {print $2}' "$st") == 1 && $(awk '$1 == "Seccomp:" {print $2}' "$st") == 2 ]] ||
		{ grep -E '^(Name|Cap|NoNewPrivs|Seccomp)' "$st" | tr '\n' ' '; return 1; }
}
took_spare() { grep -q "eBPF capture of ${POD_ID[$1]}: attached a spare program from the pool" "$T/${POD_NODE[$1]}/cni.log"; }
loaded_own() { grep -q "eBPF capture of ${POD_ID[$1]}: no spare program of object $HASH in the pool; loading one" "$T/${POD_NODE[$1]}/cni.log"; }

# --- 0. traffic through the mode ------------------------------------------------
pod_add node2 mesh web 2>"$T/err" || die "ADD web: $(cat "$T/err")"
pod_add node1 mesh cli 2>"$T/err" || die "ADD cli: $(cat "$T/err")"
pod_add node1 plain pl 2>"$T/err" || die "ADD pl: $(cat "$T/err")"
pod_add node2 plain psrv 2>"$T/err" || die "ADD psrv: $(cat "$T/err")"
app_server web 8080 || die "echo server in web"
HASH=$(sed -n 's/.*ebpf pool: keeper process .* object \([0-9a-f]*\)).*/\1/p' "$T/node1/tunnel.log" | head -n 1)
[[ $HASH =~ ^[0-9a-f]{16}$ ]] || die "the tunnel's log names no pool object hash"
check "the first ADD (web's: no tunnel knew the bpfDir, no pool yet) loaded its own program" loaded_own web
check "the keepers filled the pool: 4 whole spares (prog, pod, lis) under bpfDir/warren/_pool/$HASH" wait_for -t 10 pool_full
check "no spare is attached to anything (a spare captures nothing)" no_spare_attached
check "node1's pool keeper: warren-keeper with cap_bpf and cap_net_admin only, no_new_privs, a seccomp filter" keeper_hardened node1
app_server psrv 8080 || die "echo server in psrv"
m0=$(metric node2 istio_tcp_connections_opened_total 'connection_security_policy="mutual_tls"')
check "HBONE: cli -> web:8080 round-trips (both pods captured by eBPF)" app_client cli "${POD_IP[web]}" 8080 "hbone-$E2E_ID"
m1=$(metric node2 istio_tcp_connections_opened_total 'connection_security_policy="mutual_tls"')
((m1 > m0)) && ok "HBONE: web's tunnel counted a mutual_tls connection ($m0 -> $m1)" ||
	not_ok "HBONE: web's tunnel counted a mutual_tls connection" "$m0 -> $m1"
check "HBONE: web's app saw cli's address (source preserved)" test "$(last_peer web)" = "${POD_IP[cli]}"
check "plaintext inbound: pl (not enrolled) -> web:8080 round-trips through web's 15006" app_client pl "${POD_IP[web]}" 8080 "plain-in-$E2E_ID"
check "plaintext inbound: web's app saw pl's address" test "$(last_peer web)" = "${POD_IP[pl]}"
check "plaintext inbound: web's tunnel logged it, original destination from the socket" \
	grep -q "inbound connection ${POD_IP[pl]}:[0-9]* -> ${POD_IP[web]}:8080 of pod mesh/web accepted" "$T/node2/tunnel.log"
# The captured connection's local address is web:8080 (the original
# destination). The tunnel's upstream to the app, from pl's address with
# a port the kernel picks in web's netns, must not get pl's own port: the
# app's side would be that same four-tuple and its SYN would reach the
# tunnel's socket, not the app (the connect hung for 10 s). web's netns
# offers only ports P-1 and P, and bind() tries P first (its first pass
# takes ports at an odd offset from the range's start): pl's port.
P=40001
range0=$(pexec web sysctl -n net.ipv4.ip_local_port_range | tr -s '\t ' ' ')
pexec web sysctl -qw net.ipv4.ip_local_port_range="$((P - 1)) $P"
check "plaintext inbound from pl's port $P, web's netns offering the tunnel's upstream ports $((P - 1)) and $P: round-trips" \
	app_client pl "${POD_IP[web]}" 8080 "twin-$E2E_ID" --source-port "$P" --timeout 3
check "... the app saw pl's address from port $((P - 1)), not $P" \
	grep -q "^accept ${POD_IP[pl]} $((P - 1)) " "$T/web.app.log"
pexec web sysctl -qw net.ipv4.ip_local_port_range="$range0"
check "plaintext outbound: cli -> psrv:8080 (not enrolled) round-trips through cli's 15001" app_client cli "${POD_IP[psrv]}" 8080 "plain-out-$E2E_ID"
check "plaintext outbound: cli's tunnel logged it with the original destination" \
	grep -q "outbound connection ${POD_IP[cli]}:[0-9]* -> ${POD_IP[psrv]}:8080 of pod mesh/cli accepted" "$T/node1/tunnel.log"

# fail closed: a stopped tunnel leaves its pods' captured connections refused
tunnel_stop node2
n0=$(accepts web)
check "tunnel on node2 stopped: pl -> web:8080 fails" fails app_client pl "${POD_IP[web]}" 8080 "nope-$E2E_ID" --timeout 3
check "tunnel on node2 stopped: web's app accepted nothing (no plaintext bypass)" test "$(accepts web)" -eq "$n0"
tunnel_stop node1
n0=$(accepts psrv)
check "tunnel on node1 stopped: cli -> psrv:8080 fails" fails app_client cli "${POD_IP[psrv]}" 8080 "nope-$E2E_ID" --timeout 3
check "tunnel on node1 stopped: psrv's app accepted nothing (cli's traffic did not leave uncaptured)" test "$(accepts psrv)" -eq "$n0"
tunnel_start node1 2>/dev/null || die "warren-tunnel restart on node1"
tunnel_start node2 2>/dev/null || die "warren-tunnel restart on node2"
check "tunnels restarted (pods re-adopted): HBONE cli -> web:8080 works again" \
	wait_for -t 10 app_client cli "${POD_IP[web]}" 8080 "again-$E2E_ID" --timeout 2
check "tunnels restarted: plaintext pl -> web:8080 works again" app_client pl "${POD_IP[web]}" 8080 "again2-$E2E_ID"

# --- 1. ADD attaches ----------------------------------------------------------
pod_add node1 mesh srv 2>"$T/err" && ok "ADD enrolled pod srv with redirect ebpf (${POD_IP[srv]})" ||
	die "ADD srv: $(cat "$T/err")"
check "bpftool: an sk_lookup link of program warren_capture is attached to srv's netns" attached srv
check "link and listener map pinned under bpfDir/warren/<container ID>" pinned srv
check "the program's read-only map warren_pod holds srv's address" pod_map_holds srv
check "... and not another pod's (cli's)" fails pod_map_holds srv "${POD_IP[cli]}"
check "the three ip rules of the eBPF mode are in the pod" test "$(rules_in srv)" -ge 3
check "no nftables table of ours in the pod (the eBPF mode replaces them)" \
	fails sh -c "ip netns exec ${POD_NETNS[srv]} nft list tables | grep -q warren"
check "the tunnel put its 15001 and 15006 into the pod's map" wait_for -t 5 map_full srv
check "warrenctl pods shows the pod's redirect mode: ebpf" \
	sh -c "'$WARREN_BUILD/warrenctl' --socket '$T/node1/admin.sock' pods | grep '${POD_ID[srv]}' | grep -qw ebpf"
check "CHECK passes with everything in place" cni_check srv

# --- 2. CHECK names a detached program ------------------------------------------
id=$(ebpf_link_id srv)
if [[ -n $id ]] && bpftool link detach id "$id" 2>"$T/err"; then
	if cni_check srv; then
		not_ok "CHECK fails once the program is detached" "$(cat "$T/srv.check.out")"
	else
		check "CHECK fails naming program warren_capture once it is detached" grep -q 'warren_capture' "$T/srv.check.out"
	fi
else
	not_ok "bpftool link detach" "$(cat "$T/err")"
fi
# a re-ADD of warren-cni alone (the runtime's retry) repairs it
readd_conf=$("$PYTHON" -c 'import json,sys; c=json.loads(sys.argv[1]); c["prevResult"]=json.load(open(sys.argv[2])); print(json.dumps(c))' \
	"$(plugin_conf node1)" "$T/srv.result")
plugin_direct node1 ADD srv "$readd_conf" >/dev/null 2>"$T/err" && attached srv && ok "re-ADD re-attaches a detached program" ||
	not_ok "re-ADD re-attaches a detached program" "$(cat "$T/err")"
check "after the re-ADD the tunnel's listeners are in the new map" wait_for -t 5 map_full srv

# --- 3. fail closed: no tunnel, no listener in the map; restart puts them back --
tunnel_stop node1
check "tunnel stopped: the pod's map is empty (captured SYNs are dropped, never passed)" wait_for -t 5 map_empty srv
check "tunnel stopped: the program stays attached" attached srv
tunnel_start node1 2>/dev/null || die "warren-tunnel restart"
check "tunnel restarted: pod re-adopted, its listeners back in the map" wait_for -t 10 map_full srv
check "tunnel restarted: the pod is listed with redirect ebpf" tunnel_knows node1 "${POD_ID[srv]}"

# --- 4. DEL detaches and unpins ------------------------------------------------
ino=$(netns_ino srv)
pm=$(ebpf_map_id srv warren_pod) || not_ok "srv's program has a map warren_pod"
chain node1 DEL srv >/dev/null 2>"$T/err" || not_ok "DEL srv" "$(cat "$T/err")"
check "DEL: nothing pinned for the pod" unpinned srv
# the unpinned address map goes with the program (freed after a grace period)
check "DEL: the program's address map (id $pm) is freed" wait_for -t 5 fails bpftool map show id "${pm:-0}"
check "DEL: no sk_lookup link left on the pod's netns" fails attached srv
check "DEL: the eBPF mode's rules are gone" test "$(rules_in srv)" -eq 0
pod_kill_procs srv; ip netns del "${POD_NETNS[srv]}"; mesh rm-pod mesh srv

# --- 5. failed ADDs leave nothing -------------------------------------------------
pod_define node1 mesh byp --annotation ambient.istio.io/bypass-inbound-capture=true >/dev/null || die "define byp"
if chain node1 ADD byp >"$T/byp.out" 2>&1; then
	not_ok "ADD of a pod bypassing inbound capture is refused in the eBPF mode"
else
	check "ADD of a pod bypassing inbound capture is refused, naming the annotation" \
		grep -q 'bypass-inbound-capture.*not supported with redirect' "$T/byp.out"
fi
check "refused ADD: nothing pinned" unpinned byp

pod_define node1 mesh busy >/dev/null || die "define busy"
bg ip netns exec "${POD_NETNS[busy]}" "$PYTHON" -c 'import socket,time
s=socket.socket(socket.AF_INET6); s.bind(("::",15006)); s.listen(); time.sleep(120)'
wait_listen "${POD_NETNS[busy]}" 15006 || die "squatter on 15006"
wait_for -t 10 pool_full || not_ok "the pool is full before busy's ADD" "$(ls -R "$POOL")"
ids0=$(spare_ids)
if chain node1 ADD busy >"$T/busy.out" 2>&1; then
	not_ok "ADD fails when the tunnel cannot listen in the pod (after the program was attached)"
else
	ok "ADD fails when the tunnel cannot listen in the pod (after the program was attached)"
fi
check "failed ADD: nothing pinned" unpinned busy
check "failed ADD: no link on the pod's netns" fails attached busy
check "failed ADD took a spare (the plugin's log)" took_spare busy
check "failed ADD: the pool is topped up with a new spare" wait_for -t 10 pool_full
taken=$(comm -23 <(tr ' ' '\n' <<<"$ids0" | sed '/^$/d') <(spare_ids | tr ' ' '\n' | sed '/^$/d'))
check "failed ADD: its spare (program $taken) is not back in the pool, and is freed" spare_freed "$taken"

# a bpfDir that is not a bpffs: a clear error, nothing done
mkdir -p "$T/notbpf"
sed "s|\"bpfDir\":\"$T/bpffs\"|\"bpfDir\":\"$T/notbpf\"|" "$T/node1.conflist" >"$T/notbpf.conflist"
pod_define node1 mesh nob --conflist "$T/notbpf.conflist" >/dev/null || die "define nob"
if chain node1 ADD nob >"$T/nob.out" 2>&1; then
	not_ok "ADD with no bpffs at bpfDir fails"
else
	check "ADD with no bpffs at bpfDir fails, naming what is missing" grep -q "no bpffs mounted at $T/notbpf" "$T/nob.out"
fi
check "no bpffs: nothing attached" fails attached nob

# --- 6. the pool of spare programs ------------------------------------------------
wait_for -t 10 pool_full || not_ok "the pool is full before sp's ADD" "$(ls -R "$POOL")"
ids0=$(spare_ids)
pod_define node1 mesh sp >/dev/null || die "define sp"
straced_add sp 2>"$T/err" && ok "ADD sp with the pool full" || not_ok "ADD sp with the pool full" "$(cat "$T/err")"
spid=$(pod_prog_id sp)
check "sp's program ($spid) is one the keepers pre-loaded ($ids0)" in_list "$spid" "$ids0"
check "sp's ADD made no BPF_PROG_LOAD and no BPF_BTF_LOAD, one BPF_LINK_CREATE (strace -f of the chain)" \
	attach_only "$T/sp.strace"
check "sp's pins are the pod's layout: link and lis only" test "$(ls "$(ebpf_pin_dir sp)" | tr '\n' ' ')" = "link lis "
check "sp's program holds sp's address in warren_pod" pod_map_holds sp
check "the pool is topped up after the ADD (4 spares, sp's program not among them)" refilled_without "$spid"
check "the tunnel put its listeners into sp's map" wait_for -t 5 map_full sp
check "CHECK passes on a pod whose program came from the pool" cni_check sp
check "sp -> psrv:8080 (outbound) goes through sp's 15001 on the pool's program" app_client sp "${POD_IP[psrv]}" 8080 "spare-$E2E_ID"
check "... counted by sp's program (warren_cnt slot 0)" test "$(ebpf_count sp 0)" -ge 1
chain node1 DEL sp >/dev/null 2>"$T/err" || not_ok "DEL sp" "$(cat "$T/err")"
check "DEL of a pod on a spare: nothing pinned for it" unpinned sp
check "DEL of a pod on a spare: its program ($spid) is freed" wait_for -t 5 prog_gone "$spid"

# empty pool: a burst took every spare (here: moved aside as a keeper
# moves a spare it drops)
wait_for -t 10 pool_full || not_ok "the pool is full before em's ADD" "$(ls -R "$POOL")"
for d in $(spare_dirs); do mv "$d" "$POOL/$HASH/drop-test-${d##*/}"; done
pod_define node1 mesh em >/dev/null || die "define em"
pod_cni_add em 2>"$T/err" && ok "ADD em with the pool empty works" || not_ok "ADD em with the pool empty works" "$(cat "$T/err")"
check "... it loaded its own program (the plugin's debug log names the path taken)" loaded_own em
check "... and em is captured: program attached and pinned" attached em
check "... pinned" pinned em
check "the keeper refills the pool and removes what was moved aside" wait_for -t 10 pool_full

# another object's spares only: the pool renamed to another hash, as a
# plugin of another build finds this build's pool
wait_for -t 10 pool_full || not_ok "the pool is full before wh's ADD" "$(ls -R "$POOL")"
old_ids=$(spare_ids)
mv "$POOL/$HASH" "$POOL/00000000deadbeef"
pod_define node1 mesh wh >/dev/null || die "define wh"
pod_cni_add wh 2>"$T/err" && ok "ADD wh with only another object's spares works" || not_ok "ADD wh with only another object's spares works" "$(cat "$T/err")"
check "... it loaded its own program" loaded_own wh
check "... not another object's spare" fails in_list "$(pod_prog_id wh)" "$old_ids"
check "the keeper removed the other object's spares and refilled this object's" wait_for -t 10 pool_full
check "... the other object's programs are freed" all_gone $old_ids

# two keepers (node1's and node2's tunnels share this bpffs) topping up at
# once while ADDs on both nodes claim spares
for i in 1 2 3; do pod_define "node$((i % 2 + 1))" mesh "c$i" >/dev/null || die "define c$i"; done
cpids=()
for i in 1 2 3; do chain "node$((i % 2 + 1))" ADD "c$i" >"$T/c$i.result" 2>"$T/c$i.err" & cpids+=($!); done
for p in "${cpids[@]}"; do wait "$p"; done
for i in 1 2 3; do
	check "concurrent ADD c$i (node$((i % 2 + 1))) works: program attached" attached "c$i"
done
check "after concurrent ADDs on both nodes: the pool is whole again (4 spares, nothing else)" wait_for -t 10 pool_full
check "... no two spares or pods share a program" unique_ids 7 $(spare_ids) "$(pod_prog_id c1)" "$(pod_prog_id c2)" "$(pod_prog_id c3)"
check "no spare is attached to anything" no_spare_attached

# restarts: the pool stays while a keeper holds it; the last one removes it
ids0=$(spare_ids)
tunnel_stop node1
check "node1's tunnel stopped, node2's keeper still holds the pool: the same spares stay" test "$(spare_ids)" = "$ids0"
tunnel_start node1 2>/dev/null || die "warren-tunnel restart on node1"
check "node1's tunnel restarted: the pool is whole" wait_for -t 10 pool_full
tunnel_stop node1
tunnel_stop node2
check "both tunnels stopped: the last keeper removed the pool (no bpfDir/warren/_pool)" wait_for -t 5 fails test -e "$POOL"
check "... and freed the spares' programs" all_gone $ids0
check "... the pods keep their capture (cli's program attached)" attached cli
tunnel_start node1 2>/dev/null || die "warren-tunnel restart on node1"
tunnel_start node2 2>/dev/null || die "warren-tunnel restart on node2"
check "tunnels restarted: their keepers refill the pool (re-adopted eBPF pods name its bpfDir)" wait_for -t 10 pool_full
check "no spare is attached to anything" no_spare_attached

tunnel_stop node1
tunnel_stop node2
check "tunnels stopped at the end: the pool is removed" \
	wait_for -t 5 fails test -e "$POOL"
sanitizer_clean node1 node2
echo "1..$((TAP_COUNT + 1))"
