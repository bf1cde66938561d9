# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# The one library of the netns tests, the demo and the benchmark.
#
# Most use the cluster-in-a-box: a netns.sh-style topology of two "nodes"
# (network namespaces) whose "pods" (more namespaces) are wired by the
# reference CNI plugins with warren-cni chained after them, one warren-tunnel
# per node, and one shared mesh file standing in for the API server.
#
#   node1 netns (10.0.0.1/30) <====== veth ======> node2 netns (10.0.0.2/30)
#     route 10.244.2.0/24 via 10.0.0.2               route 10.244.1.0/24 via 10.0.0.1
#     cni0 10.244.1.1/24 (bridge)                    cni0 10.244.2.1/24 (bridge)
#      |-- pod netns eth0 10.244.1.x                  |-- pod netns eth0 10.244.2.x
#     warren-tunnel (plugin/admin sockets in $T/node1) warren-tunnel ($T/node2)
#                     \______ one mesh file $T/mesh.yaml ______/
#
# Source it, then: topo_up; tunnel_start node1; pod_add node1 ns name ...
# Every name carries $$ (netns wn1-$$, wn2-$$, wp-$$-<pod>), everything
# lives under one temp dir $T, and `trap cleanup EXIT` (installed by
# lib_init) kills what we started, deletes what we created, and verifies
# that nothing of ours is left. Traffic only flows between namespaces
# created here.
#
# Functions (all return non-zero on failure, never exit, except die):
#   pp CMD...               print the command (to fd $PP_FD), run it
#   wait_for [-t S] CMD...  poll CMD every 50 ms until it succeeds, at most S s (10)
#   wait_listen NETNS PORT [S]   poll ss until a TCP listener on PORT exists
#   ok NAME / not_ok NAME [DIAG...] / check NAME CMD... / diag TEXT   TAP lines
#   fails CMD...            succeeds when CMD fails
#   topo_up                 create node namespaces, veth, routes, conflists, mesh
#   mtls_cluster_up         mesh CA, topo_up, namespaces mesh (ambient) and plain, both tunnels
#   need_built BIN...       die unless $WARREN_BUILD/BIN exists
#   tunnel_start NODE / tunnel_stop NODE / tunnel_kill9 NODE / tunnel_ready NODE
#   sanitizer_clean NODE... a TAP line per node: no sanitizer report in its tunnel.out
#   wctl NODE ARGS...       warrenctl against NODE's admin socket
#   tunnel_knows / tunnel_forgot NODE CONTAINER_ID   does warrenctl -o json pods list it
#   mesh ARGS...            tests/lib/mesh-edit.py on the shared mesh file
#   pod_add NODE NS NAME [--label k=v]... [--conflist F] [--no-mesh]
#                           netns + mesh Pod + CNI ADD + podIP in the mesh
#   pod_del NAME            CNI DEL through the chain, netns deleted, Pod removed from mesh
#   chain NODE CMD POD [extra cni-chain args]   run cni-chain.py for a pod
#   pexec POD CMD...        run CMD in the pod's netns;  nexec NODE CMD...  in the node's
#   app_server POD PORT     start the echo server in POD (log in $T/POD.app.log)
#   bg CMD...               start CMD in the background and remember its pid for cleanup
#   diag_files FILE...      the files' lines as TAP diagnostics
#   traffic NAME MODE POD ADDR / stop_traffic NAME PID   app.py loop or chat in the background
#   traffic_trail NAME NODE...   a failed traffic connection and what NODEs' tunnels logged about it
#
# Hooks a test, the demo or the benchmark defines to change what the
# library does, instead of redefining its functions:
#   tunnel_conf_extra NODE  print YAML lines to append to NODE's tunnel.yaml
#
# REDIRECT_MODE=ebpf (set before topo_up): the conflists say redirect "ebpf",
# with bpfDir $T/bpffs, a bpffs mounted by topo_up (ip netns exec, which
# runs the plugin and the tunnels, remounts /sys, so /sys/fs/bpf is not
# shared with them) and unmounted by cleanup.
#
# Single-node tests (test_tunnel.sh, test_observe.sh, test_runtime.sh,
# test_warren_netns.sh) keep their own topology, names and cleanup: one
# node netns $NODE running warren-tunnel from the test's config, pods handed
# over directly or through one CNI chain. They use, when called: $NODE, $TUN
# (warren-tunnel), $HCTL and $sock (handoffctl, the plugin socket),
# $INPODCTL (tests/inpodctl).
#   n NETNS CMD...          run CMD in the netns named NETNS
#   mkpod NETNS             a new netns with lo up
#   listeners NETNS         how many sockets listen on 15001/15006/15008 in
#                           NETNS: $LIS for an enrolled pod (one per port
#                           per worker thread, $WORKERS being the default)
#   node_ready_code / node_ready   $NODE's /healthz/ready status / is it 200
#   node_tunnel_start CONF OUT   warren-tunnel in $NODE with CONF, stdout
#                           and stderr appended to OUT; its pid in $tpid (ip
#                           netns exec execs it, so that is the tunnel itself)
#   node_tunnel_ready_or_die FILE...  wait for node_ready; if it never is, a
#                           "not ok - setup" line, the last lines of FILEs, exit 1
#   hctl ARGS...            handoffctl on $sock
#   enroll NETNS UID NAMESPACE NAME CID [IP]   what warren-cni does for an
#                           enrolled pod: in-pod rules, then the handoff

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WARREN_ROOT=$(cd "$LIB_DIR/../.." && pwd)
WARREN_BUILD=${WARREN_BUILD:-$WARREN_ROOT/${B:-build}}
CNI_CHAIN="$WARREN_ROOT/tests/lib/cni-chain.py"
MESH_EDIT="$WARREN_ROOT/tests/lib/mesh-edit.py"
APP="$WARREN_ROOT/tests/lib/app.py"
PYTHON=${PYTHON:-python3}
# For processes run as another user (setpriv): Debian's, not one under root's home.
USER_PYTHON=/usr/bin/python3
PP_FD=${PP_FD:-2}
E2E_ID=$$

declare -A NODE_NETNS=([node1]="wn1-$E2E_ID" [node2]="wn2-$E2E_ID")
declare -A NODE_ADDR=([node1]=10.0.0.1 [node2]=10.0.0.2)
declare -A NODE_SUBNET=([node1]=10.244.1.0/24 [node2]=10.244.2.0/24)
# DUALSTACK=1 (set before topo_up): pods get an IPv6 address too (POD_IP6),
# nodes route these subnets over fd00:10::1/64 <-> fd00:10::2/64
DUALSTACK=${DUALSTACK:-0}
REDIRECT_MODE=${REDIRECT_MODE:-nftables}
declare -A NODE_ADDR6=([node1]=fd00:10::1 [node2]=fd00:10::2)
declare -A NODE_SUBNET6=([node1]=fd00:244:1::/64 [node2]=fd00:244:2::/64)
declare -A TUNNEL_PID=()
declare -A POD_NETNS=() POD_NODE=() POD_NS=() POD_ID=() POD_IP=() POD_IP6=() POD_UID=() POD_CONFLIST=() POD_NOMESH=()
BG_PIDS=()
TAP_FAILED=0
TAP_COUNT=0
T=${T:-}
# warren-tunnel's default workerThreads (tunnel_conf_write leaves it unset):
# every pod has one listener per port per worker
WORKERS=2
LIS=$((3 * WORKERS))

die() { echo "not ok - setup: $*"; exit 1; }
diag() { local l; while IFS= read -r l; do echo "# $l"; done <<<"$*"; }
diag_files() { sed 's/^/# /' "$@"; }
ok() { echo "ok - $1"; TAP_COUNT=$((TAP_COUNT + 1)); }
not_ok() {
	local name=$1; shift
	echo "not ok - $name"; TAP_COUNT=$((TAP_COUNT + 1)); TAP_FAILED=$((TAP_FAILED + 1))
	(($#)) && diag "$*"
	return 0
}
# check NAME CMD...: ok when CMD succeeds; on failure its output becomes diagnostics.
check() {
	local name=$1 out; shift
	if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "command: $*"$'\n'"$out"; fi
}

fails() { ! "$@"; } # CMD...: succeeds when CMD fails (check "..." fails CMD)

pp() {
	printf '\e[2m+ %s\e[0m\n' "$*" >&"$PP_FD"
	"$@"
}

# Poll a condition with a bound (the 50 ms pause is the poll interval,
# never a synchronisation).
wait_for() { # [-t S] CMD...
	local secs=10
	if [[ $1 == -t ]]; then secs=$2; shift 2; fi
	local end=$((SECONDS + secs)) tries=0
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		((SECONDS >= end && tries > 0)) && return 1
		tries=$((tries + 1))
		sleep 0.05
	done
}

listening() { # NETNS PORT
	[[ -n $(ss -N "$1" -Htln "sport = :$2" 2>/dev/null) ]]
}
wait_listen() { wait_for -t "${3:-10}" listening "$1" "$2"; }

nexec() { local n=$1; shift; ip netns exec "${NODE_NETNS[$n]}" "$@"; }
pexec() { local p=$1; shift; ip netns exec "${POD_NETNS[$p]}" "$@"; }

# Edit the shared mesh file, then wait until every running tunnel has loaded
# a newer generation of it (GET /config_dump meshGeneration), so that an ADD
# right after sees the edit. MESH_SYNC=0 skips the wait.
mesh() {
	local node gens=() out rc
	if [[ ${MESH_SYNC:-1} == 1 ]]; then
		for node in "${!TUNNEL_PID[@]}"; do gens+=("$node=$(mesh_generation "$node")"); done
	fi
	out=$("$PYTHON" "$MESH_EDIT" "$T/mesh.yaml" "$@"); rc=$?
	[[ -n $out ]] && echo "$out"
	local g
	for g in "${gens[@]}"; do
		node=${g%%=*}
		[[ -n ${g#*=} ]] || continue
		wait_for -t 5 mesh_newer "$node" "${g#*=}" ||
			echo "# mesh edit ($*) not loaded by $node's tunnel within 5 s" >&2
	done
	return $rc
}
# Apply python code to the mesh objects (list `objs`) under the editor's
# lock, then let mesh-edit re-render the YAML (and wait for the tunnels).
mesh_py() {
	"$PYTHON" - "$T/mesh.yaml" "$1" <<'PY' || return 1
import fcntl, json, os, sys
f, code = sys.argv[1], sys.argv[2]
lock = open(f + ".lock", "a"); fcntl.flock(lock, fcntl.LOCK_EX)
objs = json.load(open(f + ".json"))
exec(code)
tmp = f + ".json.tmp"
open(tmp, "w").write(json.dumps(objs, indent=1)); os.rename(tmp, f + ".json")
PY
	mesh ns mesh istio.io/dataplane-mode=ambient # re-render (mtls_cluster_up's namespace) + wait for both tunnels
}
# Istio policy objects (AuthorizationPolicy, PeerAuthentication) in the mesh.
add_policy() { # JSON of one object
	mesh_py "objs.append(json.loads('''$1'''))"
}
del_policy() { # KIND NS NAME
	mesh_py "objs[:] = [o for o in objs if not (o['kind'] == '$1' and o['metadata']['namespace'] == '$2' and o['metadata']['name'] == '$3')]"
}
mesh_generation() { # NODE
	wctl "$1" -o json config-dump 2>/dev/null |
		"$PYTHON" -c 'import json,sys; print(json.load(sys.stdin).get("meshGeneration",""))' 2>/dev/null
}
mesh_newer() { local g; g=$(mesh_generation "$1"); [[ -n $g ]] && ((g > $2)); }

bg() {
	"$@" &
	BG_PIDS+=($!)
}

need() {
	local c
	for c in "$@"; do command -v "$c" >/dev/null 2>&1 || die "missing tool $c (run: bash hack/install-deps.sh)"; done
}

need_built() { # BINARY...: under $WARREN_BUILD, or die
	local b
	for b in "$@"; do
		[[ -x $WARREN_BUILD/$b ]] || die "$WARREN_BUILD/$b not built (make B=$(basename "$WARREN_BUILD") all)"
	done
}

lib_init() {
	((EUID == 0)) || { echo "not ok - needs root (network namespaces)"; exit 1; }
	need ip nft ss "$PYTHON" curl
	T=$(mktemp -d "/tmp/warren-e2e-$E2E_ID.XXXXXX") || die "mktemp"
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

# --- topology --------------------------------------------------------------

conflist_write() { # NODE FILE WITH_WARREN(0/1) [extra warren-cni json keys]
	local node=$1 file=$2 warren=$3 extra=${4:-}
	local ranges="[{\"subnet\":\"${NODE_SUBNET[$node]}\"}]" routes="{\"dst\":\"0.0.0.0/0\"}"
	if ((DUALSTACK)); then
		ranges+=",[{\"subnet\":\"${NODE_SUBNET6[$node]}\"}]" routes+=",{\"dst\":\"::/0\"}"
	fi
	local ipam="{\"type\":\"host-local\",\"ranges\":[$ranges],\"routes\":[$routes],\"dataDir\":\"$T/$node/ipam\"}"
	local plugins="{\"type\":\"bridge\",\"bridge\":\"cni0\",\"isGateway\":true,\"ipMasq\":false,\"ipam\":$ipam}"
	[[ $REDIRECT_MODE == ebpf ]] && extra+=",\"redirect\":\"ebpf\",\"bpfDir\":\"$T/bpffs\""
	if ((warren)); then
		plugins+=",{\"type\":\"warren-cni\",\"tunnelSocket\":\"$T/$node/plugin.sock\",\"excludeNamespaces\":[\"kube-system\"],\"logFile\":\"$T/$node/cni.log\",\"logLevel\":\"debug\",\"timeoutMs\":5000$extra}"
	fi
	printf '{"cniVersion":"1.0.0","name":"warren-e2e","plugins":[%s]}\n' "$plugins" >"$file"
}

topo_up() {
	local n1=${NODE_NETNS[node1]} n2=${NODE_NETNS[node2]} node
	if [[ $REDIRECT_MODE == ebpf ]]; then
		mkdir -p "$T/bpffs" && pp mount -t bpf bpf "$T/bpffs" || return 1
	fi
	pp ip netns add "$n1" || return 1
	pp ip netns add "$n2" || return 1
	pp ip -n "$n1" link add "wv$E2E_ID" type veth peer name "wv$E2E_ID" netns "$n2" || return 1
	pp ip -n "$n1" addr add 10.0.0.1/30 dev "wv$E2E_ID"
	pp ip -n "$n2" addr add 10.0.0.2/30 dev "wv$E2E_ID"
	for node in node1 node2; do
		pp ip -n "${NODE_NETNS[$node]}" link set lo up
		pp ip -n "${NODE_NETNS[$node]}" link set "wv$E2E_ID" up
		pp ip netns exec "${NODE_NETNS[$node]}" sysctl -qw net.ipv4.ip_forward=1
		mkdir -p "$T/$node/state"
		conflist_write "$node" "$T/$node.conflist" 1
		conflist_write "$node" "$T/$node.plain.conflist" 0
	done
	pp ip -n "$n1" route add 10.244.2.0/24 via 10.0.0.2
	pp ip -n "$n2" route add 10.244.1.0/24 via 10.0.0.1
	if ((DUALSTACK)); then
		for node in node1 node2; do
			pp ip netns exec "${NODE_NETNS[$node]}" sysctl -qw net.ipv6.conf.all.forwarding=1
			pp ip -n "${NODE_NETNS[$node]}" addr add "${NODE_ADDR6[$node]}/64" dev "wv$E2E_ID" nodad
		done
		pp ip -n "$n1" route add "${NODE_SUBNET6[node2]}" via "${NODE_ADDR6[node2]}"
		pp ip -n "$n2" route add "${NODE_SUBNET6[node1]}" via "${NODE_ADDR6[node1]}"
	fi
	mesh init
}

# The mTLS cluster-in-a-box: a mesh CA in $T/ca, the nodes, namespaces mesh
# (ambient) and plain, both tunnels ready. The caller's tunnel_conf_write
# adds caDir: $T/ca.
mtls_cluster_up() {
	bash "$WARREN_ROOT/hack/gen-ca.sh" "$T/ca" 2>/dev/null || die "gen-ca.sh (mesh CA)"
	topo_up >/dev/null 2>&1 || die "topology"
	mesh ns mesh istio.io/dataplane-mode=ambient
	mesh ns plain
	tunnel_start node1 2>/dev/null || die "warren-tunnel on node1 not ready (see $T/node1/tunnel.out)"
	tunnel_start node2 2>/dev/null || die "warren-tunnel on node2 not ready (see $T/node2/tunnel.out)"
}

# --- tunnels ---------------------------------------------------------------

tunnel_conf_write() { # NODE
	local node=$1 d=$T/$1
	cat >"$d/tunnel.yaml" <<EOF
node: $node
pluginSocket: $d/plugin.sock
stateDir: $d/state
meshPath: $T/mesh.yaml
adminAddress: 127.0.0.1:15000
adminSocket: $d/admin.sock
metricsAddress: 127.0.0.1:15020
readinessAddress: 0.0.0.0:15021
logLevel: ${TUNNEL_LOG_LEVEL:-debug}
logFile: $d/tunnel.log
drainSeconds: ${DRAIN_SECONDS:-0}
EOF
	# drainSeconds 0: SIGTERM stops at once, as the tests that restart a tunnel
	# mid-traffic expect (test_rollout.sh drains). A test adds its own keys
	# by defining tunnel_conf_extra NODE (prints YAML).
	if declare -F tunnel_conf_extra >/dev/null; then tunnel_conf_extra "$node" >>"$d/tunnel.yaml"; fi
}

tunnel_ready() { # NODE: readiness endpoint answers 200
	[[ $(nexec "$1" curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
		http://127.0.0.1:15021/healthz/ready 2>/dev/null) == 200 ]]
}

tunnel_start() { # NODE
	local node=$1
	[[ -x $WARREN_BUILD/warren-tunnel ]] || { echo "no $WARREN_BUILD/warren-tunnel (make B=...)" >&2; return 1; }
	tunnel_conf_write "$node"
	# Not through pp: a backgrounded function is a subshell, and $! must be
	# the tunnel itself (ip netns exec execs it) so kill -9 hits the tunnel.
	printf '\e[2m+ %s\e[0m\n' "ip netns exec ${NODE_NETNS[$node]} $WARREN_BUILD/warren-tunnel --config $T/$node/tunnel.yaml &" >&"$PP_FD"
	ip netns exec "${NODE_NETNS[$node]}" "$WARREN_BUILD/warren-tunnel" \
		--config "$T/$node/tunnel.yaml" >>"$T/$node/tunnel.out" 2>&1 &
	TUNNEL_PID[$node]=$!
	disown "$!" # no "Killed" job notice on kill -9; bash still reaps it
	if ! wait_for -t 10 tunnel_ready "$node"; then
		echo "warren-tunnel on $node not ready within 10 s; last log lines:" >&2
		tail -n 20 "$T/$node/tunnel.out" "$T/$node/tunnel.log" >&2 2>/dev/null
		return 1
	fi
}

tunnel_alive() { [[ -n ${TUNNEL_PID[$1]:-} ]] && kill -0 "${TUNNEL_PID[$1]}" 2>/dev/null; }

exited() { # PID: gone or a zombie
	[[ ! -e /proc/$1/stat ]] || [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]]
}

tunnel_stop() { # NODE [SIGNAL]: signal the tunnel, KILL it after 10 s, reap it
	local node=$1 sig=${2:-TERM} pid=${TUNNEL_PID[$1]:-}
	[[ -n $pid ]] || return 0
	kill -"$sig" "$pid" 2>/dev/null
	if ! wait_for -t 10 exited "$pid"; then
		echo "warren-tunnel on $node ignored SIG$sig for 10 s; killing it" >&2
		kill -KILL "$pid" 2>/dev/null
		# gone before the caller starts the next one: until then it holds
		# its SO_REUSEPORT ports (readiness, the pods' listeners)
		wait_for -t 5 exited "$pid" || echo "warren-tunnel on $node (pid $pid) survived SIGKILL for 5 s" >&2
	fi
	unset "TUNNEL_PID[$node]"
	return 0
}
tunnel_kill9() { tunnel_stop "$1" KILL; }

# One TAP line per node: no AddressSanitizer, LeakSanitizer or UBSan report
# in its tunnels' output (tunnel.out, every start of it appended).
sanitizer_clean() { # NODE...
	local node
	for node in "$@"; do
		if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$T/$node/tunnel.out" 2>/dev/null; then
			not_ok "$node tunnel: no sanitizer report" \
				"$(grep -m5 -A8 -E 'Sanitizer|runtime error' "$T/$node/tunnel.out")"
		else
			ok "$node tunnel: no sanitizer report"
		fi
	done
}

tunnel_fds() { ls "/proc/${TUNNEL_PID[$1]}/fd" | wc -l; } # NODE

tunnel_rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/${TUNNEL_PID[$1]}/status"; }

wctl() { # NODE ARGS...
	local node=$1; shift
	"$WARREN_BUILD/warrenctl" --socket "$T/$node/admin.sock" "$@"
}

# Does NODE's tunnel list the pod (by container id)? Output of `-o json pods`
# is searched for the id string, so the exact JSON shape does not matter.
tunnel_knows() { # NODE CONTAINER_ID
	local out
	out=$(wctl "$1" -o json pods 2>/dev/null) && grep -q -- "\"$2\"" <<<"$out"
}
# The tunnel answers and does not list the pod (a dead tunnel proves nothing).
tunnel_forgot() { # NODE CONTAINER_ID
	local out
	out=$(wctl "$1" -o json pods 2>/dev/null) && ! grep -q -- "\"$2\"" <<<"$out"
}

# --- pods ------------------------------------------------------------------

chain() { # NODE CMD POD [extra args]
	local node=$1 cmd=$2 pod=$3; shift 3
	CNI_PATH="/usr/lib/cni:$WARREN_BUILD" ip netns exec "${NODE_NETNS[$node]}" \
		"$PYTHON" "$CNI_CHAIN" "$cmd" --conflist "${POD_CONFLIST[$pod]:-$T/$node.conflist}" \
		--netns "/run/netns/${POD_NETNS[$pod]}" --id "${POD_ID[$pod]}" --ifname eth0 \
		--args "IgnoreUnknown=1;K8S_POD_NAMESPACE=${POD_NS[$pod]};K8S_POD_NAME=$pod;K8S_POD_UID=${POD_UID[$pod]};K8S_POD_INFRA_CONTAINER_ID=${POD_ID[$pod]}" \
		--cache-dir "$T/$node/cni-cache" --path "/usr/lib/cni:$WARREN_BUILD" "$@"
}

# Register a pod (netns, mesh object) without running ADD.
pod_define() { # NODE NS NAME [--label k=v]... [--annotation k=v]... [--conflist F] [--no-mesh]
	local node=$1 ns=$2 name=$3; shift 3
	local labels=() conflist= inmesh=1
	while (($#)); do
		case $1 in
		--label | --annotation) labels+=("$1" "$2"); shift 2 ;;
		--conflist) conflist=$2; shift 2 ;;
		--no-mesh) inmesh=0; shift ;;
		*) echo "pod_define: unknown $1" >&2; return 1 ;;
		esac
	done
	POD_NODE[$name]=$node POD_NS[$name]=$ns POD_NETNS[$name]="wp-$E2E_ID-$name"
	POD_ID[$name]="c$E2E_ID$name" POD_CONFLIST[$name]=${conflist:-$T/$node.conflist}
	if ((inmesh)); then
		POD_UID[$name]=$(mesh pod "$ns" "$name" --node "$node" "${labels[@]}") || return 1
	else # judged by its namespace alone, as a pod the API server has not shown yet
		POD_UID[$name]=$(</proc/sys/kernel/random/uuid) POD_NOMESH[$name]=1
	fi
	ip netns add "${POD_NETNS[$name]}" || return 1
	ip -n "${POD_NETNS[$name]}" link set lo up
}

# ADD through the chain, then publish the IP in the mesh as kubelet would.
# The result JSON is kept in $T/NAME.result.
pod_add() { # NODE NS NAME [--label k=v]... [--annotation k=v]... [--conflist F]
	local name=$3
	pod_define "$@" || return 1
	pod_cni_add "$name"
}

pod_cni_add() { # NAME
	local name=$1 node=${POD_NODE[$1]} ip
	if ! chain "$node" ADD "$name" >"$T/$name.result" 2>"$T/$name.add.err"; then
		cat "$T/$name.add.err" >&2
		return 1
	fi
	ip=$("$PYTHON" -c 'import json,sys; print(" ".join(i["address"].split("/")[0] for i in json.load(open(sys.argv[1]))["ips"]))' \
		"$T/$name.result") || return 1
	read -r -a ip <<<"$ip"
	POD_IP[$name]=${ip[0]}
	[[ ${ip[1]:-} != *:* ]] || POD_IP6[$name]=${ip[1]}
	[[ -n ${POD_NOMESH[$name]:-} ]] || mesh ip "${POD_NS[$name]}" "$name" "${ip[@]}"
}

pod_del() { # NAME
	local name=$1 rc=0
	chain "${POD_NODE[$name]}" DEL "$name" >/dev/null || rc=1
	pod_kill_procs "$name"
	ip netns del "${POD_NETNS[$name]}" 2>/dev/null
	[[ -n ${POD_NOMESH[$name]:-} ]] || mesh rm-pod "${POD_NS[$name]}" "$name"
	unset "POD_NETNS[$name]" "POD_IP[$name]"
	return $rc
}

pod_kill_procs() { # NAME: kill whatever runs in the pod netns (all ours)
	local pids
	pids=$(ip netns pids "${POD_NETNS[$1]}" 2>/dev/null)
	[[ -n $pids ]] && kill -KILL $pids 2>/dev/null
	return 0
}

app_server() { # POD PORT: echo server, log in $T/POD.app.log (IPv6 too with DUALSTACK=1)
	local pod=$1 port=$2 v6=()
	: >"$T/$pod.app.log"
	((DUALSTACK)) && v6=(--v6)
	bg ip netns exec "${POD_NETNS[$pod]}" "$PYTHON" "$APP" server "$port" "$T/$pod.app.log" "${v6[@]}"
	wait_listen "${POD_NETNS[$pod]}" "$port" 10
}

last_peer() { tail -n 1 "$T/$1.app.log" | awk '{print $2}'; } # POD: peer IP of the app's last accept

# Traffic that runs in the background until its stop file exists: app.py
# loop (new connections) or chat (one connection) from POD to ADDR:8080,
# status in $T/NAME.status.
traffic() { # NAME MODE POD ADDR
	bg ip netns exec "${POD_NETNS[$3]}" "$PYTHON" "$APP" "$2" "$4" 8080 "$T/$1.status" "$T/$1.stop"
}
stop_traffic() { touch "$T/$1.stop"; wait_for -t 10 exited "$2"; } # NAME PID
status_ok() { awk 'NR == 1 {print $2}' "$T/$1.status" 2>/dev/null; } # NAME: successes so far
status_fail() { awk 'NR == 1 {print $4}' "$T/$1.status" 2>/dev/null; } # NAME: failures so far
progressed() { local n; n=$(status_ok "$1"); [[ -n $n ]] && ((n > $2)); } # NAME COUNT
# What the tunnels logged about traffic NAME's failed connections, for a
# not_ok's diagnostics (the suite's temp dir, logs included, is gone after
# it): per error in $T/NAME.status (app.py's "... (phase P at TIME, from
# ADDR:PORT)"; the first two), each NODE's log lines naming ADDR:PORT, then
# its lines above debug from 6 s before TIME to 1 s after: at most 8 and 12
# lines of 300 characters.
traffic_trail() { # NAME NODE...
	local name=$1 line at from node log; shift
	tail -n +2 "$T/$name.status" 2>/dev/null | head -n 2 | while IFS= read -r line; do
		at=$(sed -n 's/.* at \([0-9T:.-]*Z\), from .*/\1/p' <<<"$line")
		from=$(sed -n 's/.*, from \([^)]*\))$/\1/p' <<<"$line")
		echo "$name failed: $line"
		for node in "$@"; do
			log=$T/$node/tunnel.log
			[[ -f $log ]] || continue
			[[ -n $from && $from != "?" ]] && grep -F -- "$from " "$log" | head -n 8 | cut -c1-300 | sed "s/^/$node: /"
			[[ -n $at ]] && "$PYTHON" - "$at" "$log" <<-'EOF' | tail -n 12 | cut -c1-300 | sed "s/^/$node: /"
				import datetime, sys
				iso = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
				at = iso(sys.argv[1])
				lo, hi = at - datetime.timedelta(seconds=6), at + datetime.timedelta(seconds=1)
				for l in open(sys.argv[2], errors="replace"):
				    f = l.split(" ", 2)
				    try:
				        t = iso(f[0])
				    except (ValueError, IndexError):
				        continue
				    if lo <= t <= hi and f[1] != "debug":
				        sys.stdout.write(l)
			EOF
		done
	done
}
# pids owning a TCP listener on PORT in POD's netns, sorted, space-separated
listener_pids() { # POD PORT
	ss -N "${POD_NETNS[$1]}" -Htlnp "sport = :$2" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u | tr '\n' ' '
}
dump_pid() { # NODE: the pid of the tunnel answering its admin socket, if it is ready
	wctl "$1" -o json config-dump 2>/dev/null |
		"$PYTHON" -c 'import json,sys; d=json.load(sys.stdin); print(d["pid"] if d["ready"] else "")'
}
answered_by() { [[ $(dump_pid "$1") == "$2" ]]; } # NODE PID
# A second warren-tunnel on NODE beside the running one (a rollout's
# successor), with the same configuration file; its pid in SUCCESSOR_PID,
# its output appended to the node's tunnel.out. Ready: answered_by.
successor_start() { # NODE
	ip netns exec "${NODE_NETNS[$1]}" "$WARREN_BUILD/warren-tunnel" --config "$T/$1/tunnel.yaml" \
		>>"$T/$1/tunnel.out" 2>&1 &
	SUCCESSOR_PID=$!
	BG_PIDS+=("$SUCCESSOR_PID")
}

# app.py client from NODE's netns as UID (setpriv; the script comes on stdin,
# as $T is root's only): a kubelet-style probe when UID is the kubelet's.
connect_as() { # NODE UID ADDR PORT MSG
	nexec "$1" setpriv --reuid="$2" --regid="$2" --clear-groups \
		timeout 20 "$USER_PYTHON" - client "$3" "$4" "$5" <"$APP"
}

app_client() { # POD HOST PORT MSG [app.py client options]
	local pod=$1; shift
	ip netns exec "${POD_NETNS[$pod]}" timeout 20 "$PYTHON" "$APP" client "$@"
}

# Counter (packets) of the nft rule whose comment (userdata) is TAG, in
# table inet TABLE of the netns; empty when the rule is missing.
nft_counter_in() { # NETNS TABLE TAG
	ip netns exec "$1" nft -j list table inet "$2" 2>/dev/null | "$PYTHON" -c '
import json, sys
tag = sys.argv[1]
for item in json.load(sys.stdin).get("nftables", []):
    r = item.get("rule")
    if not r or r.get("comment") != tag:
        continue
    for e in r.get("expr", []):
        if isinstance(e, dict) and "counter" in e:
            print(e["counter"]["packets"]); sys.exit(0)
sys.exit(1)' "$3"
}
nft_counter() { nft_counter_in "${POD_NETNS[$1]}" "$2" "$3"; } # POD TABLE TAG

# --- capture state in either mode (REDIRECT_MODE) -----------------------------
# For the suites that run in both modes; the eBPF counterparts of the
# nftables checks read the kernel through bpftool:
#   capture_state POD      everything of the mode is in POD: nftables: the two
#                          tables, the fwmark rule, table 100's route; ebpf: the
#                          sk_lookup link attached to POD's netns running
#                          warren_capture, its pins, the mode's three ip rules
#                          and table 100's route. Prints what is missing.
#   capture_count POD out|in   connections captured in that direction so far:
#                          the nft redirect rule's counter, or the program's
#                          per-CPU counter (map warren_cnt); empty if unknown
#   capture_break POD      remove the piece CHECK must then name (the outbound
#                          redirect rule, or the program's link); prints a
#                          pattern of CHECK's message
#   ebpf_link_id POD       the id of the sk_lookup link on POD's netns
#                          running warren_capture (ebpf mode)
#   ebpf_pin_dir POD       the pod's bpffs directory
#   ebpf_map_id POD NAME   the id of the map NAME of POD's program
ebpf_pin_dir() { echo "$T/bpffs/warren/${POD_ID[$1]}"; }
ebpf_link_id() { # POD
	local ino
	ino=$(stat -L -c %i "/run/netns/${POD_NETNS[$1]}") || return 1
	bpftool -j link show 2>/dev/null | "$PYTHON" -c '
import json, subprocess, sys
ino = int(sys.argv[1])
for l in json.load(sys.stdin):
    if l.get("type") == "netns" and l.get("netns_ino") == ino and l.get("attach_type") == "sk_lookup":
        p = json.loads(subprocess.run(["bpftool", "-j", "prog", "show", "id", str(l["prog_id"])],
                                      capture_output=True, text=True).stdout)
        if p.get("name") == "warren_capture":
            print(l["id"]); sys.exit(0)
sys.exit(1)' "$ino"
}
# the id of the map NAME of POD's program (ebpf mode)
ebpf_map_id() { # POD NAME
	local id
	id=$(ebpf_link_id "$1") || return 1
	"$PYTHON" -c '
import json, subprocess, sys
def bt(*a):
    return json.loads(subprocess.run(["bpftool", "-j", *a], capture_output=True, text=True).stdout)
prog = bt("link", "show", "id", sys.argv[1])["prog_id"]
for m in bt("prog", "show", "id", str(prog)).get("map_ids", []):
    if bt("map", "show", "id", str(m)).get("name") == sys.argv[2]:
        print(m); sys.exit(0)
sys.exit(1)' "$id" "$2"
}
# SYNs counted by POD's program in slot N of its map warren_cnt (summed over CPUs)
ebpf_count() { # POD N
	local m
	m=$(ebpf_map_id "$1" warren_cnt) || return 1
	"$PYTHON" -c '
import json, subprocess, sys
for e in json.loads(subprocess.run(["bpftool", "-j", "map", "dump", "id", sys.argv[1]], capture_output=True, text=True).stdout):
    f = e.get("formatted", e)
    k = f["key"] if isinstance(f["key"], int) else int(f["key"][0], 16)
    if k == int(sys.argv[2]):
        print(sum(int(v["value"]) if isinstance(v["value"], int) else
                  int.from_bytes(bytes(int(b, 16) for b in v["value"]), "little")
                  for v in f["values"]))
        sys.exit(0)
sys.exit(1)' "$m" "$2"
}
capture_state() { # POD
	local p=${POD_NETNS[$1]} f
	if [[ $REDIRECT_MODE == ebpf ]]; then
		ebpf_link_id "$1" >/dev/null || { echo "no sk_lookup link running warren_capture on the pod's netns"; return 1; }
		[[ -e $(ebpf_pin_dir "$1")/link && -e $(ebpf_pin_dir "$1")/lis ]] || { echo "link or map not pinned in $(ebpf_pin_dir "$1")"; return 1; }
		for f in 'fwmark 0x539/0xfff lookup main' 'to 169.254.7.127 ipproto tcp lookup main' 'ipproto tcp lookup 100'; do
			ip -n "$p" rule show | grep "$f" >/dev/null || { echo "no ip rule $f"; return 1; }
		done
	else
		ip netns exec "$p" nft list tables | grep 'inet warren-nat' >/dev/null &&
			ip netns exec "$p" nft list tables | grep 'inet warren-mangle' >/dev/null || { echo "no warren tables"; return 1; }
		ip -n "$p" rule show | grep 'fwmark 0x111/0xfff lookup 100' >/dev/null || { echo "no ip rule fwmark 0x111/0xfff lookup 100"; return 1; }
	fi
	ip -n "$p" route show table 100 | grep 'local default dev lo' >/dev/null || { echo "no local default route in table 100"; return 1; }
}
capture_count() { # POD out|in
	if [[ $REDIRECT_MODE == ebpf ]]; then
		ebpf_count "$1" "$([[ $2 == out ]] && echo 0 || echo 1)"
	elif [[ $2 == out ]]; then
		nft_counter "$1" warren-nat warren:nat-out-redirect-v4
	else
		nft_counter "$1" warren-nat warren:nat-pre-redirect-v4
	fi
}
capture_break() { # POD
	local h id
	if [[ $REDIRECT_MODE == ebpf ]]; then
		id=$(ebpf_link_id "$1") && bpftool link detach id "$id" && echo 'warren_capture.*detached'
		return
	fi
	h=$(ip netns exec "${POD_NETNS[$1]}" nft -j -a list chain inet warren-nat output | "$PYTHON" -c '
import json, sys
for i in json.load(sys.stdin)["nftables"]:
    r = i.get("rule")
    if r and r.get("comment") == "warren:nat-out-redirect-v4":
        print(r["handle"]); sys.exit(0)
sys.exit(1)') && ip netns exec "${POD_NETNS[$1]}" nft delete rule inet warren-nat output handle "$h" && echo 'nat-out-redirect'
}

# Nothing of ours inside a pod netns: no warren tables, no rule for table 100,
# no route in table 100; in ebpf mode also nothing pinned and no link.
inpod_clean() { # POD
	local p=${POD_NETNS[$1]}
	! ip netns exec "$p" nft list tables 2>/dev/null | grep warren >/dev/null || return 1
	! ip -n "$p" rule show 2>/dev/null | grep -E 'lookup 100|0x539/0xfff lookup main|169.254.7.127 ipproto tcp' >/dev/null || return 1
	[[ -z $(ip -n "$p" route show table 100 2>/dev/null) ]] || return 1
	if [[ $REDIRECT_MODE == ebpf ]]; then
		[[ ! -e $(ebpf_pin_dir "$1") ]] || return 1
		! ebpf_link_id "$1" >/dev/null 2>&1
	fi
}

no_listeners() { # POD: none of 15001/15006/15008
	[[ -z $(ss -N "${POD_NETNS[$1]}" -Htln '( sport = :15001 or sport = :15006 or sport = :15008 )' 2>/dev/null) ]]
}

# Run warren-cni directly (no chain) with STDIN as its config. ENV entries
# (K=V) override, "-K" removes a variable. Prints stdout, returns its status.
plugin_direct() { # NODE CMD POD STDIN [K=V | -K]...
	local node=$1 cmd=$2 pod=$3 stdin=$4; shift 4
	local env=(CNI_COMMAND="$cmd" CNI_CONTAINERID="${POD_ID[$pod]}"
		CNI_NETNS="/run/netns/${POD_NETNS[$pod]}" CNI_IFNAME=eth0
		CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=${POD_NS[$pod]};K8S_POD_NAME=$pod;K8S_POD_UID=${POD_UID[$pod]};K8S_POD_INFRA_CONTAINER_ID=${POD_ID[$pod]}"
		CNI_PATH="/usr/lib/cni:$WARREN_BUILD")
	local e i
	for e in "$@"; do
		for i in "${!env[@]}"; do
			[[ ${env[$i]%%=*} == "${e#-}" || ${env[$i]%%=*} == "${e%%=*}" ]] && unset "env[$i]"
		done
		[[ $e == -* ]] || env+=("$e")
	done
	printf '%s' "$stdin" | ip netns exec "${NODE_NETNS[$node]}" env -u CNI_COMMAND -u CNI_NETNS "${env[@]}" \
		"$WARREN_BUILD/warren-cni"
}

# The warren-cni object of NODE's conflist as a standalone config (no prevResult).
plugin_conf() { # NODE [cniVersion]
	"$PYTHON" -c 'import json,sys; c=json.load(open(sys.argv[1])); p=c["plugins"][-1]; p["name"]=c["name"]; p["cniVersion"]=sys.argv[2]; print(json.dumps(p))' \
		"$T/$1.conflist" "${2:-1.0.0}"
}

# --- single-node tests ------------------------------------------------------

n() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
mkpod() { ip netns add "$1" && n "$1" ip link set lo up; }
listeners() { n "$1" ss -ltnH | grep -cE ':(15001|15006|15008)\b'; }

node_ready_code() { n "$NODE" curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:15021/healthz/ready; }
node_ready() { [[ $(node_ready_code) == 200 ]]; }
node_tunnel_start() { # CONF OUT
	ip netns exec "$NODE" "$TUN" --config "$1" >>"$2" 2>&1 &
	# shellcheck disable=SC2034 # tpid is the test's
	tpid=$!
}
node_tunnel_ready_or_die() { # FILE...
	wait_for node_ready && return 0
	echo "not ok - setup: warren-tunnel in $NODE not ready within 10 s"
	tail -n 20 "$@" 2>&1 | sed 's/^/# /'
	exit 1
}

# shellcheck disable=SC2154 # sock is the test's
hctl() { "$HCTL" "$sock" "$@"; }
enroll() { # NETNS UID NAMESPACE NAME CID [IP]
	"$INPODCTL" apply "/var/run/netns/$1" &&
		hctl add "$2" "$3" "$4" "$5" "/var/run/netns/$1" ${6:+"$6"} >/dev/null
}

# --- real cluster (hack/kube-up.sh; tests/kube/, tests/bench/) ----------------

kube_need_bins() { # the binaries hack/kube-build.sh caches, or die
	"$WARREN_ROOT/hack/kube-build.sh" --paths >"$T/kube-bins" 2>&1 ||
		die "cluster binaries not built: run hack/kube-build.sh ($(tail -n 1 "$T/kube-bins"))"
}

kube_up() { # NODES [VAR=VALUE...]: a cluster in $T, its env sourced, NODE_NETNS its nodes'; or die
	local nodes=$1 i
	shift
	KUBE_DIR=$T KUBE_ID=$E2E_ID KUBE_NODES=$nodes env "$@" "$WARREN_ROOT/hack/kube-up.sh" >"$T/kube-up.log" 2>&1 ||
		die "hack/kube-up.sh: $(tail -n 15 "$T/kube-up.log")"
	# shellcheck source=/dev/null
	source "$T/env"
	for ((i = 1; i <= nodes; i++)); do
		local v=KUBE_NETNS_node$i
		NODE_NETNS[node$i]=${!v}
	done
}

cpexec() { ip netns exec "$KUBE_CP_NETNS" "$@"; } # CMD...: in the control plane's netns

kube_ca_kubeconfig() { # warren-ca's token in $T/ca-token, its kubeconfig in $T/ca-kubeconfig
	kubectl create token warren-ca -n warren-system --duration 2h >"$T/ca-token" || return 1
	cat >"$T/ca-kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "$KUBE_APISERVER", certificate-authority: "$KUBE_CA"}}]
users: [{name: warren-ca, user: {tokenFile: "$T/ca-token"}}]
contexts: [{name: c, context: {cluster: c, user: warren-ca}}]
current-context: c
YAML
}

kube_down() { # stop the tunnels, remove the cluster (log in $T/kube-down.log); fails if any is left
	local node
	[[ -f $T/env ]] || return 0
	for node in "${!TUNNEL_PID[@]}"; do tunnel_stop "$node"; done
	"$WARREN_ROOT/hack/kube-down.sh" "$T" >"$T/kube-down.log" 2>&1
}

# --- waypoints -------------------------------------------------------------

set_sa() { mesh_py "[o['spec'].__setitem__('serviceAccountName', '$3') for o in objs if o['kind'] == 'Pod' and o['metadata']['namespace'] == '$1' and o['metadata']['name'] == '$2']"; }
gateway() { # NS NAME [waypoint-for]
	add_policy "{\"apiVersion\": \"gateway.networking.k8s.io/v1\", \"kind\": \"Gateway\",
	  \"metadata\": {\"name\": \"$2\", \"namespace\": \"$1\", \"labels\": {\"istio.io/waypoint-for\": \"${3:-service}\"}},
	  \"spec\": {\"gatewayClassName\": \"istio-waypoint\", \"listeners\": [{\"name\": \"mesh\", \"port\": 15008, \"protocol\": \"HBONE\"}]}}"
}
svc_label() { # NS NAME KEY VALUE
	mesh_py "[o['metadata'].setdefault('labels', {}).__setitem__('$3', '$4') for o in objs if o['kind'] == 'Service' and o['metadata']['namespace'] == '$1' and o['metadata']['name'] == '$2']"
}
# warren-waypoint for Gateway NS/GATEWAY in POD's netns (a pod labelled
# gateway.networking.k8s.io/gateway-name=GATEWAY), model from the mesh file,
# identity from the mesh CA in $T/ca; access log in $T/POD.access, log in
# $T/POD.log; WP_PID is the waypoint itself (ip netns exec execs it).
waypoint_run() { # POD NS GATEWAY [warren-waypoint args...]
	local pod=$1 ns=$2 gw=$3
	shift 3
	printf '\e[2m+ %s\e[0m\n' "warren-waypoint in $pod" >&"$PP_FD"
	bg ip netns exec "${POD_NETNS[$pod]}" "$WARREN_BUILD/warren-waypoint" --mesh "$T/mesh.yaml" --ca-dir "$T/ca" \
		--namespace "$ns" --name "$gw" "$@" >"$T/$pod.access" 2>"$T/$pod.log"
	WP_PID=$!
}
waypoint_ready() { # POD: its readiness on 15021 answers 200
	[[ $(pexec "$1" curl -s -o /dev/null -w '%{http_code}' --max-time 1 http://127.0.0.1:15021/healthz/ready) == 200 ]]
}

# --- cleanup ---------------------------------------------------------------

cleanup() {
	local rc=$? node pod ns pid left=""
	set +e
	trap - EXIT INT TERM
	exec 3>&2 2>/dev/null # no "Killed" job notices
	for node in "${!TUNNEL_PID[@]}"; do kill -KILL "${TUNNEL_PID[$node]}" 2>/dev/null; done
	for pid in "${BG_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
	# anything still running inside one of our namespaces was started by us
	local nspids=()
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E -- "^w[np][0-9]*-$E2E_ID(-|$)"); do
		pid=$(ip netns pids "$ns" 2>/dev/null)
		[[ -n $pid ]] && kill -KILL $pid 2>/dev/null && nspids+=($pid)
	done
	for node in "${!TUNNEL_PID[@]}"; do wait_for -t 5 exited "${TUNNEL_PID[$node]}"; done
	# (a tunnel's pool keeper among them holds the bpffs until it is gone)
	for pid in "${nspids[@]}"; do wait_for -t 5 exited "$pid"; done
	for pid in "${BG_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E -- "^w[np][0-9]*-$E2E_ID(-|$)"); do
		ip netns del "$ns" 2>/dev/null
	done
	# verify: no namespace, no process, no temp dir of ours
	left=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -E -- "^w[np][0-9]*-$E2E_ID(-|$)" | tr '\n' ' ')
	for pid in "${TUNNEL_PID[@]}" "${BG_PIDS[@]}"; do
		exited "$pid" || left+="pid:$pid "
	done
	# our bpffs: unmounting it drops every pin (and link) left in it
	[[ -n $T ]] && mountpoint -q "$T/bpffs" 2>/dev/null && umount "$T/bpffs"
	if [[ -n $T && -d $T && -z ${KEEP_TMP:-} ]]; then rm -rf "$T"; fi
	[[ -n ${KEEP_TMP:-} ]] && echo "# kept $T" >&3
	[[ -n $T && -d $T && -z ${KEEP_TMP:-} ]] && left+="$T "
	if [[ -n ${CLEANUP_TAP:-} ]]; then
		if [[ -z $left ]]; then ok "cleanup: no namespace, process or temp dir of ours left"
		else not_ok "cleanup: left behind: $left"; rc=1; fi
	elif [[ -n $left ]]; then
		echo "cleanup: left behind: $left" >&3
	fi
	((rc == 0 && TAP_FAILED > 0)) && rc=1
	exit "$rc"
}
