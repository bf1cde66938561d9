#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# warren demo: a two-node cluster-in-a-box on this machine, one request from a
# client pod on node1 to a server pod on node2 through both nodes' tunnels.
# Needs root (network namespaces). Installs what it needs and builds first.
# Cleans up after itself, also on Ctrl-C. Touches only namespaces it creates.
#
#   node1 netns (10.0.0.1/30) <====== veth ======> node2 netns (10.0.0.2/30)
#     cni0 10.244.1.1/24                            cni0 10.244.2.1/24
#      `-- pod demo/client  10.244.1.x               `-- pod demo/server 10.244.2.x :8080
#     warren-tunnel (node1)                          warren-tunnel (node2)
#                  \______ one mesh file (stands in for the API server) ______/
#
# Pods are network namespaces wired by the reference CNI plugins (bridge +
# host-local) with warren-cni chained after them, run exactly as a container
# runtime runs a conflist (tests/lib/cni-chain.py).
# Env: B (build dir, default build), DEMO_PAUSE=1 waits for Enter between steps,
# DEMO_NO_BUILD=1 skips install-deps and make (binaries already in $B).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

if ((EUID != 0)); then
	echo "demo: needs root (it creates network namespaces); try: sudo $0" >&2
	exit 1
fi
B=${B:-build}
if [[ -z ${DEMO_NO_BUILD:-} ]]; then
	echo "==> installing dependencies (Debian packages) and building"
	bash hack/install-deps.sh || { echo "demo: hack/install-deps.sh failed" >&2; exit 1; }
	make -j2 B="$B" "$B/warren-cni" "$B/warren-tunnel" "$B/warrenctl" >/dev/null ||
		{ echo "demo: build failed; run 'make B=$B' to see why" >&2; exit 1; }
fi
export WARREN_BUILD="$PWD/$B"

PP_FD=1
source tests/netns/lib.sh

bold=$'\e[1m' green=$'\e[32m' reset=$'\e[0m'
step_n=0
step() {
	step_n=$((step_n + 1))
	printf '\n%s%s== %d. %s%s\n' "$bold" "$green" "$step_n" "$*" "$reset"
	if [[ -n ${DEMO_PAUSE:-} && -t 0 ]]; then read -r -p "(Enter) " _; fi
}
say() { printf '   %s\n' "$*"; }
fail() { printf '\n%sdemo failed: %s%s\n' "$bold" "$*" "$reset" >&2; exit 1; }
demo_done() {
	local rc=$?
	printf '\n%s== cleaning up%s (tunnels, pods, nodes, %s)\n' "$bold" "$reset" "${T:-temp dir}"
	(exit $rc) # cleanup exits with the status it finds in $?
	cleanup    # from lib.sh: kills what we started, deletes namespaces, verifies
}

lib_init
trap demo_done EXIT

step "Two nodes: network namespaces joined by a veth, each routing the other's pod subnet"
sed -n '8,12p' "$0"
topo_up || fail "could not build the topology"

step "The mesh (what the API server would hold): namespace 'demo' labelled for ambient"
mesh ns demo istio.io/dataplane-mode=ambient >/dev/null
say "# $T/mesh.yaml"
sed 's/^/   /' "$T/mesh.yaml"

step "One warren-tunnel per node, inside the node's netns"
tunnel_start node1 || fail "warren-tunnel did not start on node1 (log: $T/node1/tunnel.out)"
tunnel_start node2 || fail "warren-tunnel did not start on node2 (log: $T/node2/tunnel.out)"
for n in node1 node2; do
	say "$n: ip netns exec ${NODE_NETNS[$n]} curl http://127.0.0.1:15021/healthz/ready -> $(nexec $n curl -s -w ' (HTTP %{http_code})' http://127.0.0.1:15021/healthz/ready | tr -d '\n')"
done

step "The CNI chain each node runs for a pod (bridge + host-local, then warren-cni)"
"$PYTHON" -m json.tool "$T/node1.conflist" | sed 's/^/   /'

step "Create the server pod on node2 and the client pod on node1 (CNI ADD through the chain)"
say "+ ip netns exec ${NODE_NETNS[node2]} python3 tests/lib/cni-chain.py ADD --conflist $T/node2.conflist --netns /run/netns/wp-$E2E_ID-server --id c${E2E_ID}server --args 'K8S_POD_NAMESPACE=demo;K8S_POD_NAME=server;...'"
pod_add node2 demo server --label app=server >/dev/null || fail "ADD of the server pod failed (see above)"
say "+ ip netns exec ${NODE_NETNS[node1]} python3 tests/lib/cni-chain.py ADD ... (client)"
pod_add node1 demo client --label app=client >/dev/null || fail "ADD of the client pod failed (see above)"
say "server pod: ${POD_IP[server]} (netns ${POD_NETNS[server]}, node2)"
say "client pod: ${POD_IP[client]} (netns ${POD_NETNS[client]}, node1)"
say "the runtime's result for the client (cached by the chain runner):"
"$PYTHON" -m json.tool "$T/client.result" | sed 's/^/   /'

step "warren-cni programmed the redirection inside the client pod's netns"
pp ip netns exec "${POD_NETNS[client]}" nft list table inet warren-nat | sed 's/^/   /'
pp ip netns exec "${POD_NETNS[client]}" nft list table inet warren-mangle | sed 's/^/   /'
pp ip -n "${POD_NETNS[client]}" rule show | sed 's/^/   /'
pp ip -n "${POD_NETNS[client]}" route show table 100 | sed 's/^/   /'

step "...and handed the pod to its node's tunnel, which now listens inside each pod"
for p in client server; do
	say "pod $p:"
	pp ss -N "${POD_NETNS[$p]}" -ltn | sed 's/^/   /'
done

step "What each tunnel knows (warrenctl pods)"
for n in node1 node2; do
	say "$n:"
	pp "$WARREN_BUILD/warrenctl" --socket "$T/$n/admin.sock" pods | sed 's/^/   /'
done

step "Start the server app (echo on :8080, logs the client address it sees)"
app_server server 8080 || fail "the server app did not start"
pp ss -N "${POD_NETNS[server]}" -ltn 'sport = :8080' | sed 's/^/   /'

step "The client pod sends a request to the server pod's IP"
c_out0=$(nft_counter client warren-nat warren:nat-out-redirect-v4)
s_in0=$(nft_counter server warren-nat warren:nat-pre-redirect-v4)
say "+ ip netns exec ${POD_NETNS[client]} python3 tests/lib/app.py client ${POD_IP[server]} 8080 'hello from client'"
reply=$(ip netns exec "${POD_NETNS[client]}" "$PYTHON" tests/lib/app.py client "${POD_IP[server]}" 8080 "hello from client") ||
	fail "the request failed"
say "reply: $reply"
c_out1=$(nft_counter client warren-nat warren:nat-out-redirect-v4)
s_in1=$(nft_counter server warren-nat warren:nat-pre-redirect-v4)
read -r _ peer port _ <<<"$(tail -n 1 "$T/server.app.log")"
say "${bold}server saw the connection from $peer:$port${reset} (the client pod is ${POD_IP[client]})"
say "client pod, outbound redirect to :15001 (tunnel on node1): $c_out0 -> $c_out1 packets"
say "server pod, inbound redirect to :15006 (tunnel on node2):  $s_in0 -> $s_in1 packets"
say "conntrack in the client pod: the app's connection (reply from 127.0.0.1:15001, the tunnel)"
say "and the tunnel's own upstream connection (SO_MARK 0x539, not redirected):"
pp ip netns exec "${POD_NETNS[client]}" conntrack -L -p tcp --orig-port-dst 8080 2>/dev/null | sed 's/^/   /'
say "conntrack in the server pod: the connection redirected to :15006 (the tunnel), and the"
say "tunnel's connection to the app with the client's address as source (connmark 0x111 = 273):"
pp ip netns exec "${POD_NETNS[server]}" conntrack -L -p tcp --orig-port-dst 8080 2>/dev/null | sed 's/^/   /'
say "tunnel logs about it:"
grep -h -E "${POD_IP[server]}:8080" "$T/node1/tunnel.log" "$T/node2/tunnel.log" 2>/dev/null | tail -n 4 | sed 's/^/   /'

step "Delete the pods (CNI DEL through the chain, reverse order): nothing of ours is left in them"
for p in client server; do
	say "+ ip netns exec ${NODE_NETNS[${POD_NODE[$p]}]} python3 tests/lib/cni-chain.py DEL --conflist $T/${POD_NODE[$p]}.conflist --netns /run/netns/${POD_NETNS[$p]} --id ${POD_ID[$p]} ..."
	chain "${POD_NODE[$p]}" DEL "$p" >/dev/null 2>"$T/$p.del.err" || { cat "$T/$p.del.err"; fail "DEL of $p failed"; }
	if inpod_clean "$p" && no_listeners "$p"; then say "pod $p: no warren table, ip rule, table-100 route or listener"; else say "pod $p: state left behind!"; fi
done
for n in node1 node2; do
	say "$n tunnel pods: $("$WARREN_BUILD/warrenctl" --socket "$T/$n/admin.sock" -o json pods | tr -d ' \n')"
done
printf '\n%sdemo complete.%s Tests: sudo bash hack/test.sh   Benchmark: sudo make bench\n' "$bold" "$reset"
