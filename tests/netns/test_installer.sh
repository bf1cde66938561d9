#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# warren-install on real directories, with a real CNI chain run against its
# result, as root:
#
#   $T/bin  (the node's CNI bin dir)    $T/net.d (the node's CNI conf dir)   $T/state
#     warren-cni <- copied atomically     10-net.conflist  <- "the network's agent"
#                                         warren-install appends warren-cni,
#   netns wi-$$-node                      watches (inotify), re-inserts, and on
#     cni0 bridge --- netns wi-$$-pod     uninstall restores the bytes
#
# The agent is this script: it writes the network's configuration (atomic
# rename, or truncate-and-write), drops warren from it, breaks it. Each
# check polls with a bound; "within a second" is measured, not slept.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/netns/lib.sh
lib_init
need_built warren-install warren-cni
need cmp stat unshare mount
INST=$WARREN_BUILD/warren-install
NODE=wi-$E2E_ID-node POD=wi-$E2E_ID-pod
BIN=$T/bin CONFD=$T/net.d STATE=$T/state
mkdir -p "$BIN" "$CONFD"

cleanup_ns() { ip netns del "$NODE" 2>/dev/null; ip netns del "$POD" 2>/dev/null; }
trap 'cleanup_ns; cleanup' EXIT

agent_conflist() { # the network's configuration, in its agent's own formatting
	cat <<EOF
{
    "cniVersion": "1.0.0",
    "name": "podnet",
    "plugins": [
        {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.249.0.0/24"}]], "dataDir": "$T/ipam"}},
        {"type": "portmap", "capabilities": {"portMappings": true}}
    ]
}
EOF
}
agent_write() { # FILE: write atomically, as agents do (mode 0640)
	agent_conflist >"$CONFD/.agent.tmp"
	[[ -n ${2:-} ]] && echo "$2" >>"$CONFD/.agent.tmp"
	chmod 0640 "$CONFD/.agent.tmp"
	mv "$CONFD/.agent.tmp" "$CONFD/$1"
}
warren_count() { # FILE: how many warren-cni entries (-1: unparsable or missing)
	"$PYTHON" -c 'import json,sys
try: print(sum(p.get("type") == "warren-cni" for p in json.load(open(sys.argv[1]))["plugins"]))
except Exception: print(-1)' "$1"
}
chained() { [[ $(warren_count "$1") == 1 ]]; }
unchained() { [[ $(warren_count "$1") == 0 ]]; }
logged() { grep -q -- "$2" "$1"; } # LOG TEXT
inst_start() { # NAME [ARGS...]: warren-install on $BIN/$CONFD/$STATE, pid in $ipid
	local name=$1; shift
	"$INST" --cni-bin-dir "$BIN" --cni-conf-dir "$CONFD" --state-dir "$STATE" \
		--plugin "$WARREN_BUILD/warren-cni" --tunnel-socket "$T/tunnel.sock" \
		--exclude-namespaces kube-system,istio-system "$@" >"$T/$name.log" 2>&1 &
	ipid=$!
	BG_PIDS+=("$ipid")
}
inst_stop() { # SIGTERM $ipid; its exit status in $irc (not in a subshell: it waits)
	kill -TERM "$ipid"
	irc=timeout
	wait_for -t 10 exited "$ipid" || return 1
	wait "$ipid"
	irc=$?
}
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# --- no configuration yet: the binary goes in, the installer waits ------------
inst_start a --on-exit keep
check "no configuration: it waits and says so" wait_for logged "$T/a.log" "waiting for the network's configuration"
check "warren-cni copied into the CNI bin dir, same bytes, mode 0755" \
	bash -c "cmp '$WARREN_BUILD/warren-cni' '$BIN/warren-cni' && [[ \$(stat -c %a '$BIN/warren-cni') == 755 ]]"

# --- the network arrives ------------------------------------------------------
agent_write 10-podnet.conflist
cp "$CONFD/10-podnet.conflist" "$T/orig.conflist"
t0=$(date +%s%N)
if wait_for -t 5 chained "$CONFD/10-podnet.conflist"; then
	ok "the network's conflist appeared: warren-cni appended ($(ms_since "$t0") ms)"
else
	not_ok "warren-cni not appended within 5 s" "$(cat "$T/a.log")"
fi
check "warren-cni is the last plugin, after portmap, with the settings given" "$PYTHON" -c '
import json,sys; p=json.load(open(sys.argv[1]))["plugins"]
assert [x["type"] for x in p] == ["bridge","portmap","warren-cni"], p
assert p[2]["tunnelSocket"] == sys.argv[2] and p[2]["excludeNamespaces"] == ["kube-system","istio-system"], p[2]' \
	"$CONFD/10-podnet.conflist" "$T/tunnel.sock"
check "the file keeps its mode (0640)" test "$(stat -c %a "$CONFD/10-podnet.conflist")" = 640
# events in the directory make it look again: still exactly one entry
touch "$CONFD/other.txt" "$CONFD/10-podnet.conflist"
check "touching the directory never adds a second entry" wait_for -t 2 chained "$CONFD/10-podnet.conflist"
check "no temporary file left in the conf dir" test -z "$(find "$CONFD" -name '.*warren-*')"

# --- a real chain: while the tunnel is absent, a pod's ADD fails closed -------
ip netns add "$NODE" && ip netns add "$POD" || die "netns"
ip -n "$NODE" link set lo up
runchain() { # CMD
	ip netns exec "$NODE" "$PYTHON" "$CNI_CHAIN" "$1" --conflist "$CONFD/10-podnet.conflist" \
		--netns "/run/netns/$POD" --id "wi$E2E_ID" --ifname eth0 \
		--args "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=app;K8S_POD_UID=u$E2E_ID" \
		--cache-dir "$T/cni-cache" --path "$BIN:/usr/lib/cni"
}
out=$(runchain ADD 2>&1); rc=$?
if ((rc == 11)); then ok "installed chain, no tunnel: ADD fails with 11 (try again), pod not started uncaptured"
else not_ok "ADD through the installed chain: exit $rc, expected 11" "$out"; fi
runchain DEL >/dev/null 2>&1

# --- another agent drops warren ------------------------------------------------
agent_write 10-podnet.conflist '' # its own rewrite, atomically, without warren
cp "$CONFD/10-podnet.conflist" "$T/orig.conflist"
t0=$(date +%s%N)
wait_for -t 5 chained "$CONFD/10-podnet.conflist"
dt=$(ms_since "$t0")
if chained "$CONFD/10-podnet.conflist" && ((dt < 1000)); then ok "agent's atomic rewrite without warren: back in the chain in $dt ms (< 1 s)"
else not_ok "agent's atomic rewrite: warren back after $dt ms" "$(tail -5 "$T/a.log")"; fi
# a rewrite in place (truncate, then write)
agent_conflist >"$CONFD/10-podnet.conflist"
cp "$CONFD/10-podnet.conflist" "$T/orig-inplace.conflist"
t0=$(date +%s%N)
wait_for -t 5 chained "$CONFD/10-podnet.conflist"
dt=$(ms_since "$t0")
if chained "$CONFD/10-podnet.conflist" && ((dt < 1000)); then ok "agent's in-place rewrite: back in the chain in $dt ms"
else not_ok "agent's in-place rewrite: warren back after $dt ms" "$(tail -5 "$T/a.log")"; fi
rm -f "$BIN/warren-cni"
check "binary deleted by someone: copied back" wait_for -t 2 cmp -s "$WARREN_BUILD/warren-cni" "$BIN/warren-cni"

# --- an unparsable configuration is left alone ---------------------------------
printf '{"cniVersion": "1.0.0", "name": "podnet", "plugins": [ {"type": "bridge"\n' >"$CONFD/10-podnet.conflist"
cp "$CONFD/10-podnet.conflist" "$T/broken"
check "unparsable conflist: an error naming the file and the JSON problem" \
	wait_for logged "$T/a.log" "10-podnet.conflist: not valid JSON: line"
check "unparsable conflist: left untouched" cmp "$T/broken" "$CONFD/10-podnet.conflist"
agent_write 10-podnet.conflist
cp "$CONFD/10-podnet.conflist" "$T/orig.conflist"
check "fixed by its agent: warren-cni appended" wait_for -t 2 chained "$CONFD/10-podnet.conflist"

# --- a restart or an upgrade keeps the chain -------------------------------------
cp "$CONFD/10-podnet.conflist" "$T/installed"
inst_stop
check "SIGTERM with --on-exit keep: exit 0" test "$irc" = 0
check "... the chain stays as it was, the binary stays" \
	bash -c "cmp '$T/installed' '$CONFD/10-podnet.conflist' && test -x '$BIN/warren-cni'"
# two installers (a rollout's surge pod): the second waits for the first
inst_start b --on-exit keep
pid_b=$ipid
wait_for logged "$T/b.log" "chaining warren-cni" || not_ok "installer b did not start" "$(cat "$T/b.log")"
inst_start c --on-exit uninstall
pid_c=$ipid
check "a second installer waits for the lock" wait_for logged "$T/c.log" "another warren-install holds"
ipid=$pid_b
inst_stop
check "the first stops (keep)" test "$irc" = 0
ipid=$pid_c
check "the second takes over: same file, unchanged bytes" \
	wait_for logged "$T/c.log" "chaining warren-cni"
check "... its reconcile left the file as it was (no rewrite of an equal chain)" cmp "$T/installed" "$CONFD/10-podnet.conflist"

# --- uninstall restores the bytes --------------------------------------------------
inst_stop
check "SIGTERM with --on-exit uninstall: exit 0" test "$irc" = 0
check "uninstall: the conflist is byte-identical to the agent's last version" cmp "$T/orig.conflist" "$CONFD/10-podnet.conflist"
check "uninstall: the mode is the agent's (0640)" test "$(stat -c %a "$CONFD/10-podnet.conflist")" = 640
check "uninstall: warren-cni removed from the bin dir" test ! -e "$BIN/warren-cni"
check "uninstall: the state record is gone" test ! -e "$STATE/record"
out=$(runchain ADD 2>&1); rc=$?
if ((rc == 0)) && ip -n "$POD" -4 addr show eth0 | grep -q 'inet 10.249.0.'; then
	ok "after uninstall a new pod's ADD succeeds and it gets its address"
else
	not_ok "after uninstall: ADD exit $rc" "$out"
fi
runchain DEL >/dev/null 2>&1

# --- a single .conf is wrapped, and comes back as it was -------------------------
rm -f "$CONFD"/*
printf '{ "cniVersion": "0.4.0", "name": "kindnet", "type": "ptp",\n  "ipam": {"type": "host-local", "subnet": "10.250.0.0/24"} }\n' >"$CONFD/10-kindnet.conf"
chmod 0600 "$CONFD/10-kindnet.conf"
cp "$CONFD/10-kindnet.conf" "$T/orig.conf"
inst_start d --on-exit uninstall
check ".conf: wrapped into 10-kindnet.conflist with warren-cni" wait_for -t 5 chained "$CONFD/10-kindnet.conflist"
check ".conf: the .conf is gone (runtimes would read it first)" test ! -e "$CONFD/10-kindnet.conf"
check ".conf: the .conflist keeps the .conf's mode (0600)" test "$(stat -c %a "$CONFD/10-kindnet.conflist")" = 600
inst_stop
check ".conf: uninstall exits 0" test "$irc" = 0
check ".conf: uninstall restores 10-kindnet.conf byte for byte and removes the .conflist" \
	bash -c "cmp '$T/orig.conf' '$CONFD/10-kindnet.conf' && test ! -e '$CONFD/10-kindnet.conflist'"

# --- an agent changed the file after install, keeping warren: entry removed ------
rm -f "$CONFD"/*
agent_write 10-podnet.conflist
inst_start e --on-exit uninstall
wait_for -t 5 chained "$CONFD/10-podnet.conflist"
"$PYTHON" - "$CONFD/10-podnet.conflist" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1])); c["plugins"].insert(1, {"type": "tuning"})
open(sys.argv[1] + ".t", "w").write(json.dumps(c)); import os; os.rename(sys.argv[1] + ".t", sys.argv[1])
EOF
check "changed after install: still exactly one warren-cni" wait_for -t 2 chained "$CONFD/10-podnet.conflist"
inst_stop
check "changed after install: uninstall removes only warren-cni, keeps the agent's tuning" "$PYTHON" -c '
import json,sys; p=json.load(open(sys.argv[1]))["plugins"]
assert [x["type"] for x in p] == ["bridge","tuning","portmap"], p' "$CONFD/10-podnet.conflist"

# --- auto without an API server: cannot tell, so it keeps the chain ----------------
rm -f "$CONFD"/*
agent_write 10-podnet.conflist
inst_start f
wait_for -t 5 chained "$CONFD/10-podnet.conflist"
check "--on-exit auto, no API server: warns at start" logged "$T/f.log" "cannot read DaemonSet warren"
inst_stop
check "--on-exit auto, no API server: the chain stays (an outage must not unmesh the node)" \
	chained "$CONFD/10-podnet.conflist"
"$INST" --uninstall --cni-bin-dir "$BIN" --cni-conf-dir "$CONFD" --state-dir "$STATE" >"$T/u.log" 2>&1
check "warren-install --uninstall by hand restores the bytes" cmp "$T/orig.conflist" "$CONFD/10-podnet.conflist"

# --- a read-only directory: a clear error, nothing changed ------------------------
rm -f "$CONFD"/*
agent_write 10-podnet.conflist
cp "$CONFD/10-podnet.conflist" "$T/ro.orig"
out=$(unshare -m --propagation private bash -c "mount --bind -o ro '$CONFD' '$CONFD' && mount -o remount,bind,ro '$CONFD' &&
	timeout 10 '$INST' --cni-bin-dir '$BIN' --cni-conf-dir '$CONFD' --state-dir '$STATE' \
		--plugin '$WARREN_BUILD/warren-cni' --on-exit keep" 2>&1); rc=$?
if ((rc == 1)) && grep -q "Read-only file system" <<<"$out" && grep -q "$CONFD" <<<"$out"; then
	ok "read-only conf dir: exit 1 naming the directory and EROFS"
else
	not_ok "read-only conf dir: exit $rc" "$out"
fi
check "read-only conf dir: the file is untouched" cmp "$T/ro.orig" "$CONFD/10-podnet.conflist"

"$INST" --bogus >/dev/null 2>"$T/bad.err"; rc=$?
if ((rc == 1)) && grep -q usage "$T/bad.err"; then ok "an unknown option: exit 1 with the usage"
else not_ok "an unknown option: exit $rc" "$(cat "$T/bad.err")"; fi

((TAP_FAILED == 0))
