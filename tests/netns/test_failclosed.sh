#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fail closed when something breaks, as root, on the real kernel (TAP): no
# captured connection is relayed past policy or in plaintext because the
# tunnel has no model, no policies, no CA, or a model that lost its pods.
#
#   node1 netns (10.0.0.1/30) <====== veth ======> node2 netns (10.0.0.2/30)
#     cni0 10.244.1.1/24                             cni0 10.244.2.1/24
#      |-- cli (ns mesh, enrolled, echo :8080)         |-- srv (ns mesh, enrolled, echo :8080)
#      |-- out (ns plain, not enrolled)                |-- cli2 (ns mesh, enrolled)
#      |-- late (ns mesh, added before its object)
#     warren-tunnel caDir=$T/ca                      warren-tunnel caDir=$T/ca (restarted
#                                                      broken, without a CA, ...)
#
# Shows: node2 restarted with a broken mesh file adopts srv but opens no
# listener in it, so every captured connection (inbound plaintext, inbound
# HBONE, outbound) is refused, and says why in the log and /healthz/ready,
# until the file is fixed; without caDir and without `mtls: disabled` it is
# not ready and refuses likewise, and `mtls: disabled` lets plaintext
# through by choice. A truncated mesh file is not loaded; one cut short
# keeps the pods node2 holds (log, metric); pods held by one tunnel talk
# HBONE whatever the model says; a Succeeded pod with a live pod's IP does not shadow it, and
# two live pods with one IP make connections to it fail closed. An ADD of a
# pod the model does not know waits for its object (bounded), else fails
# with CNI error 11. A pod whose state record was cut short is re-adopted
# from its netns when that is found and verified, and left refused (and
# listed) when the netns is ambiguous.
# Env: B or WARREN_BUILD, KEEP_TMP=1.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need jq
need_built warren-cni warren-tunnel warrenctl

# Per node: NO_CA[node]=1 leaves caDir out, MTLS_OFF[node]=1 adds mtls: disabled.
declare -A NO_CA=() MTLS_OFF=()
tunnel_conf_extra() { # NODE
	[[ -n ${NO_CA[$1]:-} ]] || echo "caDir: $T/ca"
	[[ -z ${MTLS_OFF[$1]:-} ]] || echo "mtls: disabled"
	echo "meshReloadMs: 200"
	echo "accessLog: $T/$1/access.log"
}

# Start NODE's tunnel without waiting for readiness (it is not meant to be ready).
tunnel_start_unready() { # NODE
	local node=$1
	tunnel_conf_write "$node"
	ip netns exec "${NODE_NETNS[$node]}" "$WARREN_BUILD/warren-tunnel" \
		--config "$T/$node/tunnel.yaml" >>"$T/$node/tunnel.out" 2>&1 &
	TUNNEL_PID[$node]=$!
	disown "$!"
}
ready_body() { nexec "$1" curl -s --max-time 1 http://127.0.0.1:15021/healthz/ready; } # NODE
ready_says() { [[ $(ready_body "$1") == *"$2"* ]]; } # NODE TEXT
# Every pod listener of POD's shards is up (the tunnel adopted it).
pod_listening() { [[ $(ss -N "${POD_NETNS[$1]}" -Htln 'sport = :15006' | wc -l) -ge $WORKERS ]]; }
# CLIENT POD -> ADDR:8080 is echoed (0) or refused/reset/timed out (non-zero).
echoes() { app_client "$1" "$2" 8080 "fc-$RANDOM" --timeout 3 >/dev/null 2>&1; }
refused() { # CLIENT ADDR SERVER: no echo, and the server's app saw no connection from CLIENT
	local before after
	before=$(grep -c " ${POD_IP[$1]} " "$T/$3.app.log")
	echoes "$1" "$2" && return 1
	after=$(grep -c " ${POD_IP[$1]} " "$T/$3.app.log")
	((after == before))
}
# src.identity of NODE's inbound access-log lines from CLIENT to SERVER:8080,
# one a line ("null" for plaintext).
in_identities() { # NODE CLIENT SERVER
	jq -r --arg s "${POD_IP[$2]}:" --arg d "${POD_IP[$3]}:8080" \
		'select(.direction == "inbound" and .["dst.addr"] == $d and (.["src.addr"] | startswith($s))) | .["src.identity"]' \
		"$T/$1/access.log" 2>/dev/null
}
more_lines() { (($(in_identities "$1" "$2" "$3" | wc -l) > $4)); } # NODE CLIENT SERVER COUNT
# CLIENT -> SERVER:8080 echoes, and NODE (SERVER's) logged that connection
# (a new line, written when it closed) inbound with CLIENT's identity.
echoes_mtls() { # NODE CLIENT SERVER
	local n
	n=$(in_identities "$1" "$2" "$3" | wc -l)
	echoes "$2" "${POD_IP[$3]}" || return 1
	wait_for -t 3 more_lines "$1" "$2" "$3" "$n" || return 1
	[[ $(in_identities "$1" "$2" "$3" | tail -n 1) == spiffe://cluster.local/ns/mesh/sa/default ]]
}
metric() { # NODE NAME: value or empty
	nexec "$1" curl -s --max-time 2 http://127.0.0.1:15020/metrics | awk -v n="$2" '$1 == n { print $2 }'
}
gen_is() { [[ $(mesh_generation "$1") == "$2" ]]; } # NODE GENERATION
# Write the mesh file in place through a temp file (what an atomic writer does).
mesh_write_raw() { printf '%s' "$1" >"$T/mesh.yaml.tmp" && mv "$T/mesh.yaml.tmp" "$T/mesh.yaml"; }
mesh_restore() { MESH_SYNC=0 mesh ns mesh istio.io/dataplane-mode=ambient >/dev/null; }

# --- cluster ---------------------------------------------------------------------
mtls_cluster_up
pod_add node1 mesh cli >/dev/null || die "pod cli"
pod_add node1 plain out >/dev/null || die "pod out"
pod_add node2 mesh srv >/dev/null || die "pod srv"
app_server cli 8080 || die "echo server in cli"
app_server srv 8080 || die "echo server in srv"
check "baseline: cli -> srv over HBONE echoes" echoes cli "${POD_IP[srv]}"
check "baseline: out (not enrolled) -> srv echoes" echoes out "${POD_IP[srv]}"
check "baseline: srv -> cli echoes" echoes srv "${POD_IP[cli]}"

# --- item: restart with a mesh file that does not load ------------------------------
tunnel_kill9 node2
mesh_write_raw $'apiVersion: v1\nkind: Namespace\nmetadata: [broken\n'
tunnel_start_unready node2
check "node2 restarted with a broken mesh file re-adopts srv; its listeners wait for a model (logged)" \
	wait_for -t 10 grep -q "re-adopted pod mesh/srv .*its listeners wait until we can serve (mesh model not loaded" "$T/node2/tunnel.out"
check "... /healthz/ready answers 503 saying the model is not loaded" \
	wait_for -t 5 ready_says node2 "mesh model not loaded"
check "... no listener of its in srv: a captured connection finds nobody" fails pod_listening srv
check "... out (plaintext) -> srv is refused, the app sees nothing" refused out "${POD_IP[srv]}" srv
check "... cli -> srv (HBONE to 15008) is refused, the app sees nothing" refused cli "${POD_IP[srv]}" srv
check "... srv -> cli (outbound) is refused, cli's app sees nothing" refused srv "${POD_IP[cli]}" cli
mesh_restore
check "fixed mesh file: node2 becomes ready" wait_for -t 10 tunnel_ready node2
check "... having opened srv's listeners once serving (logged)" \
	grep -q "serving now: opening the listeners of 1 adopted pod(s)" "$T/node2/tunnel.out"
check "... srv -> cli echoes again" wait_for -t 5 echoes srv "${POD_IP[cli]}"
check "... out -> srv echoes again" echoes out "${POD_IP[srv]}"

# --- item: no caDir and no explicit mtls: disabled ---------------------------------------
tunnel_stop node2
NO_CA[node2]=1
tunnel_start_unready node2
check "node2 without caDir (mtls not disabled) re-adopts srv; its listeners wait (no mesh CA)" \
	wait_for -t 10 grep -q "re-adopted pod mesh/srv .*its listeners wait until we can serve (no mesh CA" "$T/node2/tunnel.out"
check "... /healthz/ready answers 503 saying there is no mesh CA" \
	wait_for -t 5 ready_says node2 "no mesh CA"
check "... no listener of its in srv" fails pod_listening srv
check "... out (plaintext) -> srv is refused" refused out "${POD_IP[srv]}" srv
check "... srv -> cli is refused (never plaintext between enrolled pods)" refused srv "${POD_IP[cli]}" cli
tunnel_stop node2
MTLS_OFF[node2]=1
tunnel_start node2 2>/dev/null
check "node2 with mtls: disabled is ready" tunnel_ready node2
check "... and logs the plaintext choice loudly" grep -q "PLAINTEXT MODE (mtls: disabled)" "$T/node2/tunnel.out"
check "... out -> srv echoes (plaintext by choice)" wait_for -t 5 echoes out "${POD_IP[srv]}"
tunnel_stop node2
NO_CA[node2]= MTLS_OFF[node2]=
tunnel_start node2 2>/dev/null
check "node2 back with caDir: cli -> srv over HBONE echoes" wait_for -t 5 echoes cli "${POD_IP[srv]}"

# --- item: an empty or half-written mesh file never becomes the model -----------------
pod_add node2 mesh cli2 >/dev/null || die "pod cli2"
check "baseline: cli2 -> srv (same node) over HBONE" echoes_mtls node2 cli2 srv
g=$(mesh_generation node2)
: >"$T/mesh.yaml" # truncated in place: IN_CLOSE_WRITE of a 0-byte file
check "a truncated (0-byte) mesh file is reported as empty" \
	wait_for -t 5 grep -q "mesh.yaml: the file is empty" "$T/node2/tunnel.out"
check "... and not loaded: node2 keeps generation $g" gen_is node2 "$g"
check "... cli2 -> srv still over HBONE" echoes_mtls node2 cli2 srv
mesh_restore
check "restored file: node2 loads a newer generation" wait_for -t 5 mesh_newer node2 "$g"
g=$(mesh_generation node2)
# Cut short, but parses: only the plain namespace is left.
mesh_write_raw $'apiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n'
check "a mesh file cut short is loaded" wait_for -t 5 mesh_newer node2 "$g"
check "... but keeps the two pods node2 holds (log)" \
	grep -q "pod mesh/srv is enrolled on this node but missing from" "$T/node2/tunnel.out"
check "... warren_mesh_pods_kept is 2" eval '[[ $(metric node2 warren_mesh_pods_kept) == 2 ]]'
check "... cli2 -> srv still over HBONE" echoes_mtls node2 cli2 srv
g=$(mesh_generation node2)
mesh_restore
check "restored file: nothing kept any more" \
	eval 'wait_for -t 5 mesh_newer node2 '"$g"' && [[ $(metric node2 warren_mesh_pods_kept) == 0 ]]'
# The model says the namespace left the mesh; both pods are still enrolled here.
MESH_SYNC=1 mesh ns mesh >/dev/null
check "model says mesh is no longer ambient: cli2 -> srv (both held by node2) still over HBONE" \
	echoes_mtls node2 cli2 srv
MESH_SYNC=1 mesh ns mesh istio.io/dataplane-mode=ambient >/dev/null

# --- item: a finished pod does not shadow a live one; a true conflict fails closed ------
pyobj() { # NAME NS PHASE IP: a Pod object as a python literal
	echo "{'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': '$1', 'namespace': '$2'}, 'status': {'phase': '$3', 'podIP': '$4'}}"
}
mesh_py "objs.insert(0, $(pyobj ghost plain Succeeded "${POD_IP[srv]}"))" >/dev/null
check "a Succeeded pod (non-ambient namespace, first in the model) with srv's IP: cli -> srv still over HBONE" \
	echoes_mtls node2 cli srv
mesh_py "objs.insert(0, $(pyobj twin mesh Running "${POD_IP[srv]}"))" >/dev/null
check "a second running, enrolled pod with srv's IP: cli -> srv is refused" refused cli "${POD_IP[srv]}" srv
check "... and node1 logs the conflict" grep -q "claimed by several live pods" "$T/node1/tunnel.out"
mesh_py "objs[:] = [o for o in objs if o['metadata']['name'] not in ('ghost', 'twin')]" >/dev/null
check "conflict gone: cli -> srv over HBONE again" echoes_mtls node2 cli srv

# --- item: ADD waits (bounded) for the pod's object, else CNI error 11 ---------------------
waits_logged() { (($(grep -c "handoff query for pod mesh/late waits" "$T/node1/tunnel.out") >= $1)); }
pod_define node1 mesh late --no-mesh || die "pod late"
start=$SECONDS
chain node1 ADD late >"$T/late.out" 2>"$T/late.err"
rc=$?
check "ADD of a pod the model does not know fails with CNI error 11 (try again later)" test "$rc" = 11
check "... saying the pod is not in the mesh model yet" grep -q "not in the mesh model yet" "$T/late.out"
check "... after a bounded wait (under 6 s)" eval '((SECONDS - start < 6))'
check "... and leaves nothing of ours in the pod" inpod_clean late
chain node1 DEL late >/dev/null 2>&1 # as a runtime does after a failed ADD
chain node1 ADD late >"$T/late2.out" 2>&1 &
addpid=$!
wait_for -t 5 waits_logged 2
MESH_SYNC=0 mesh pod mesh late --node node1 --uid "${POD_UID[late]}" --sa late-sa >/dev/null
wait "$addpid"
rc=$?
check "an ADD waiting for the object succeeds once it arrives" test "$rc" = 0
check "... and the pod has its own service account, not default" \
	eval "wctl node1 -o json pods | jq -e '.[] | select(.name == \"late\") | .serviceAccount == \"late-sa\"' >/dev/null"
chain node1 DEL late >/dev/null 2>&1

# --- item: a state record that cannot be read: its pod re-adopted from its netns -----------
# node2 stopped; srv's and cli2's records cut short; a decoy netns joined to
# node2 by a veth holds cli2's IP too. Restarted, node2 finds srv's netns
# (its IP, its veth to node2, our capture), adopts it and writes a good
# record; cli2's netns cannot be told from the decoy: left captured, refused.
tunnel_stop node2
for p in srv cli2; do
	rec=$T/node2/state/pods/${POD_UID[$p]}.json
	head -c 60 "$rec" >"$rec.cut" && mv "$rec.cut" "$rec" || die "truncating $p's record"
done
DECOY=wp-$E2E_ID-decoy
ip netns add "$DECOY" && ip -n "${NODE_NETNS[node2]}" link add "wd$E2E_ID" type veth peer name eth0 netns "$DECOY" &&
	ip -n "$DECOY" addr add "${POD_IP[cli2]}/32" dev eth0 || die "decoy netns"
tunnel_start node2 2>/dev/null || die "node2 not ready after the restart (see $T/node2/tunnel.out)"
check "node2 restarted: both cut records moved aside and counted" \
	eval '[[ $(metric node2 warren_state_records_bad_total) == 2 ]] && compgen -G "$T/node2/state/pods/${POD_UID[srv]}.json.bad-*" >/dev/null'
if [[ $REDIRECT_MODE == ebpf ]]; then
	# An eBPF capture is named only by its record (its pins): srv stays
	# captured, nobody serves it, and it is listed with the reason.
	check "... eBPF mode: srv's record listed as not re-adopted (its capture is named only by its record)" \
		wait_for -t 5 eval 'wctl node2 pods 2>&1 | grep -qE "uid ${POD_UID[srv]}: .*not re-adopted: .*eBPF capture"'
	check "... srv not re-adopted: no listener" fails pod_listening srv
	check "... cli -> srv refused (captured, nobody serving it), srv's app sees nothing" refused cli "${POD_IP[srv]}" srv
else
	check "... srv re-adopted from its netns (its listeners are up)" wait_for -t 5 pod_listening srv
	check "... and logged" grep -q "pod of uid ${POD_UID[srv]} re-adopted from netns /var/run/netns/${POD_NETNS[srv]}" "$T/node2/tunnel.out"
	check "... with a good record written anew" \
		eval "jq -e '.name == \"srv\" and .namespace == \"mesh\"' '$T/node2/state/pods/${POD_UID[srv]}.json' >/dev/null"
	check "... cli -> srv over mTLS HBONE again (node2 logs cli's identity)" wait_for -t 5 echoes_mtls node2 cli srv
fi
check "cli2 (its IP also in a decoy netns joined to node2) not re-adopted: no listener" fails pod_listening cli2
check "... cli2 -> srv refused (captured, nobody serving it), srv's app sees nothing" refused cli2 "${POD_IP[srv]}" srv
out=$(wctl node2 pods 2>&1)
check "... warrenctl pods lists cli2's record: not re-adopted, ambiguous" \
	grep -qE "uid ${POD_UID[cli2]}: .*\.json\.bad-[0-9]+ \(.*\): not re-adopted: ambiguous: 2 netns" <<<"$out"
if [[ $REDIRECT_MODE == ebpf ]]; then
	# (a series never counted is absent: none adopted)
	check "warren_state_records_readopt_total: none adopted, 2 refused" \
		eval '[[ $(metric node2 "warren_state_records_readopt_total{result=\"adopted\"}") == "" &&
			$(metric node2 "warren_state_records_readopt_total{result=\"refused\"}") == 2 ]]'
else
	check "... and srv's as re-adopted" grep -qE "uid ${POD_UID[srv]}: .*: re-adopted from netns" <<<"$out"
	check "warren_state_records_readopt_total: 1 adopted, 1 refused" \
		eval '[[ $(metric node2 "warren_state_records_readopt_total{result=\"adopted\"}") == 1 &&
			$(metric node2 "warren_state_records_readopt_total{result=\"refused\"}") == 1 ]]'
fi
ip netns del "$DECOY"

tunnel_stop node1
tunnel_stop node2
sanitizer_clean node1 node2
echo "# $TAP_COUNT checks, $TAP_FAILED failed"
