# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# Helpers of the single-node tests (test_tunnel.sh, test_observe.sh,
# test_runtime.sh, test_warren_netns.sh): one node netns $NODE running
# warren-tunnel from the test's temp config, pods handed over directly or
# through one CNI chain. (The two-node cluster with its own helpers is
# lib.sh.) Each test keeps its topology, config, names and cleanup; this
# file only defines functions and $failures, and runs nothing.
#
# Uses, when called: $NODE (node netns), $TUN (warren-tunnel), $HCTL and
# $sock (handoffctl and the plugin socket), $INPODCTL (tests/inpodctl).
#
#   ok NAME / nok NAME      TAP lines; nok counts $failures
#   check NAME CMD...       ok when CMD succeeds, else not ok
#   poll CMD...             CMD every 50 ms until it succeeds, at most
#                           ${POLL_S:-10} s of pauses (the pause is the poll
#                           interval, never a synchronisation)
#   n NETNS CMD...          run CMD in NETNS
#   mkpod NETNS             a new netns with lo up
#   listeners NETNS         how many sockets listen on 15001/15006/15008 in
#                           NETNS: $LIS for an enrolled pod (one per port
#                           per worker thread, $WORKERS being the default)
#   ready_code / is_ready   the tunnel's /healthz/ready status in $NODE / is it 200
#   tunnel_start CONF OUT   warren-tunnel in $NODE with CONF, stdout and stderr
#                           appended to OUT; its pid in $tpid (ip netns exec
#                           execs it, so that is the tunnel itself)
#   tunnel_ready_or_die FILE...  poll is_ready; if it never is, a "not ok -
#                           setup" line, the last lines of FILEs, exit 1
#   hctl ARGS...            handoffctl on $sock
#   enroll NETNS UID NAMESPACE NAME CID [IP]   what warren-cni does for an
#                           enrolled pod: in-pod rules, then the handoff

failures=0
# warren-tunnel's default workerThreads; the tests' configs leave it unset
WORKERS=2
LIS=$((3 * WORKERS))

ok() { echo "ok - $*"; }
nok() { echo "not ok - $*"; failures=$((failures + 1)); }
check() { # name, command...
	local name=$1; shift
	if "$@"; then ok "$name"; else nok "$name"; fi
}
poll() {
	local i
	for ((i = 0; i < ${POLL_S:-10} * 20; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}
n() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
mkpod() { ip netns add "$1" && n "$1" ip link set lo up; }
listeners() { n "$1" ss -ltnH | grep -cE ':(15001|15006|15008)\b'; }

ready_code() { n "$NODE" curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:15021/healthz/ready; }
is_ready() { [[ $(ready_code) == 200 ]]; }
tunnel_start() { # CONF OUT
	ip netns exec "$NODE" "$TUN" --config "$1" >>"$2" 2>&1 &
	# shellcheck disable=SC2034 # tpid is the test's
	tpid=$!
}
tunnel_ready_or_die() { # FILE...
	poll is_ready && return 0
	echo "not ok - setup: warren-tunnel in $NODE not ready within ${POLL_S:-10} s"
	tail -n 20 "$@" 2>&1 | sed 's/^/# /'
	exit 1
}

# shellcheck disable=SC2154 # sock is the test's
hctl() { "$HCTL" "$sock" "$@"; }
enroll() { # NETNS UID NAMESPACE NAME CID [IP]
	"$INPODCTL" apply "/var/run/netns/$1" &&
		hctl add "$2" "$3" "$4" "$5" "/var/run/netns/$1" ${6:+"$6"} >/dev/null
}
