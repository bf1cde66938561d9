#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# warren on a real Kubernetes control plane and two real nodes (hack/kube-up.sh;
# binaries from hack/kube-build.sh): pods created with kubectl get their
# network from containerd's CRI running bridge + host-local + warren-cni with
# the kubelet's own K8S_POD_* arguments; an enrolled pod reaches another one
# on the other node through both tunnels over HBONE; deleting a pod runs DEL.
#
#   netns wkc-ID: etcd, kube-apiserver 10.100.0.1:6443 (bridge wkbr)
#      |-- netns wk1-ID node1 10.100.0.11           |-- netns wk2-ID node2 10.100.0.12
#          kubelet, containerd, warren-tunnel            kubelet, containerd, warren-tunnel
#          cni0 10.244.1.1/24                            cni0 10.244.2.1/24
#            pod mesh/cli  (ambient) ------ HBONE :15008 ---> pod mesh/srv (ambient, httpd :8080)
#            pod plain/pl  (not enrolled) --- plain TCP :8080 --^
#
# warren-tunnel runs in file mode with a mesh CA (mTLS, HBONE between the
# nodes); the mesh file is written from
# `kubectl get -o json` (tests/kube/kube-mesh.py) after each change. Each
# node's warren-cni is reached through a wrapper that records the runtime's
# command, container id and CNI_ARGS, then execs the real plugin.
# Pod netns are named on the host with `ip netns attach` (wp-ID-POD), so the
# shared helpers of tests/netns/lib.sh work on them.
set -uo pipefail
source "$(dirname "$0")/../netns/lib.sh"

lib_init
CLEANUP_TAP=1
need conntrack
need_built warren-cni warren-tunnel warrenctl
kube_need_bins

# The kernel tunables the kubelet changes; kube-down.sh restores them when
# the last cluster on the machine goes (so only checked if ours was alone).
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
sysctls() { sysctl -n "${SYSCTLS[@]}" | tr '\n' ' '; }
sysctl_before=$(sysctls)
[[ -e /run/warren-kube-sysctl ]] && sysctl_before= # another cluster is up

kube_cleanup() {
	local rc=$?
	if [[ -f $T/env ]]; then
		if kube_down; then
			ok "kube-down: no process, mount, cgroup or netns of the cluster left"
			if [[ -z $sysctl_before ]]; then
				diag "another cluster was up: the kubelet's kernel tunables stay until it goes"
			elif [[ $(sysctls) == "$sysctl_before" ]]; then
				ok "kube-down: the kernel tunables the kubelet set are back (${SYSCTLS[*]})"
			else
				not_ok "kube-down: the kubelet's kernel tunables restored" "before: $sysctl_before"$'\n'"after:  $(sysctls)"
				rc=1
			fi
		else
			not_ok "kube-down: everything removed" "$(cat "$T/kube-down.log")"
			rc=1
		fi
	fi
	(exit $rc)
	cleanup
}
trap kube_cleanup EXIT

# --- the cluster -------------------------------------------------------------
t0=$SECONDS
kube_up 2 KUBE_CNI_WARREN=1 WARREN_BUILD="$WARREN_BUILD"
ok "kube-up: etcd, kube-apiserver, two nodes (containerd + kubelet) Ready in $((SECONDS - t0)) s"

check "kubectl: both nodes registered, kubelet v1.36 on containerd 2.3" bash -c \
	"'$T/kubectl' get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion}{\"\\n\"}{end}' |
	 tee /dev/stderr | grep -c '^node[12] v1\.36\.[0-9]* containerd://v\?2\.3\.' | grep -qx 2"

# warren-cni through a recorder: one line per call, "CMD CONTAINERID CNI_ARGS"
for node in node1 node2; do
	rm -f "$T/$node/cni-bin/warren-cni"
	cat >"$T/$node/cni-bin/warren-cni" <<EOF
#!/bin/sh
echo "\$CNI_COMMAND \${CNI_CONTAINERID:--} \${CNI_ARGS:--}" >>$T/$node/cni-calls.log
exec $WARREN_BUILD/warren-cni "\$@"
EOF
	chmod 755 "$T/$node/cni-bin/warren-cni"
done

# --- namespaces, the mesh file, the tunnels -----------------------------------
kube_ns mesh istio.io/dataplane-mode=ambient || die "namespace mesh"
kube_ns plain || die "namespace plain"
mesh_sync() { # write the mesh file from the API server, wait for every tunnel to load it
	local node gens=() g
	for node in "${!TUNNEL_PID[@]}"; do gens+=("$node=$(mesh_generation "$node")"); done
	kubectl get namespaces,pods,services -A -o json | "$PYTHON" "$WARREN_ROOT/tests/kube/kube-mesh.py" "$T/mesh.yaml" ||
		return 1
	for g in "${gens[@]}"; do
		[[ -n ${g#*=} ]] || continue
		wait_for -t 10 mesh_newer "${g%%=*}" "${g#*=}" || { echo "${g%%=*} did not load the mesh file" >&2; return 1; }
	done
}
mesh_sync || die "mesh file from kubectl"
bash "$WARREN_ROOT/hack/gen-ca.sh" "$T/ca" >/dev/null 2>&1 || die "gen-ca.sh (mesh CA)"
tunnel_conf_extra() { echo "caDir: $T/ca"; } # mTLS: pod-to-pod traffic over HBONE
tunnel_start node1 2>/dev/null || die "warren-tunnel on node1 not ready (see $T/node1/tunnel.out)"
tunnel_start node2 2>/dev/null || die "warren-tunnel on node2 not ready (see $T/node2/tunnel.out)"
ok "warren-tunnel ready on both nodes, mesh file written from kubectl get -o json"

# --- pods ----------------------------------------------------------------------
pod_yaml() { # NS NAME NODE
	cat <<EOF
apiVersion: v1
kind: Pod
metadata: {namespace: $1, name: $2, labels: {app: $2}}
spec:
  nodeName: $3
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: localhost/warren-app:1
    imagePullPolicy: Never
    ports: [{containerPort: 8080, name: http}]
EOF
}
t0=$SECONDS
for p in "mesh srv node2" "mesh cli node1" "plain pl node1"; do
	read -r ns name node <<<"$p"
	pod_yaml "$ns" "$name" "$node" | kubectl apply -f - >/dev/null || die "kubectl apply pod $ns/$name"
	POD_NS[$name]=$ns POD_NODE[$name]=$node
done
# The tunnels take a pod's identity from its object, so an ADD waits (3 s,
# then CNI error 11 and the kubelet retries) until the model has the pod:
# the mesh file gets the new objects, as a watch would.
mesh_sync || die "mesh file with the new pods' objects"
for name in srv cli pl; do
	kubectl wait -n "${POD_NS[$name]}" --for=condition=Ready "pod/$name" --timeout=120s >/dev/null 2>&1 ||
		die "pod $name not Ready within 120 s: $(kubectl get pod -n "${POD_NS[$name]}" "$name" -o wide 2>&1 | tail -n 1); $(tail -n 5 "$T/${POD_NODE[$name]}/cni.log" 2>/dev/null)"
done
ok "kubectl apply: pods srv (node2), cli and pl (node1) Ready in $((SECONDS - t0)) s"

# Each pod's uid, IP, sandbox id (the CNI container id of its ADD) and netns.
for name in srv cli pl; do
	node=${POD_NODE[$name]} ns=${POD_NS[$name]}
	POD_UID[$name]=$(kubectl get pod -n "$ns" "$name" -o 'jsonpath={.metadata.uid}')
	POD_IP[$name]=$(kubectl get pod -n "$ns" "$name" -o 'jsonpath={.status.podIP}')
	POD_ID[$name]=$(awk -v ns="K8S_POD_NAMESPACE=$ns" -v n="K8S_POD_NAME=$name" \
		'$1 == "ADD" && index(";" $3 ";", ";" ns ";") && index(";" $3 ";", ";" n ";") {id = $2} END {print id}' "$T/$node/cni-calls.log")
	# a process of the pod (in its cgroup under the node's kubepods) names its netns
	cgv=KUBE_CGROUP_$node
	pid=$(find /sys/fs/cgroup/pids"${!cgv}"/kubepods -path "*pod${POD_UID[$name]}*" -name cgroup.procs -exec cat {} + 2>/dev/null | head -n 1)
	POD_NETNS[$name]=wp-$E2E_ID-$name
	[[ -n $pid ]] && ip netns attach "${POD_NETNS[$name]}" "$pid" || die "netns of pod $name (pid '$pid')"
done

for name in srv cli pl; do
	check "$name: podIP ${POD_IP[$name]} from host-local on ${POD_NODE[$name]}, eth0 in the pod's netns holds it" bash -c \
		"[[ '${POD_IP[$name]}' == 10.244.${POD_NODE[$name]#node}.* ]] && ip -n ${POD_NETNS[$name]} -4 addr show eth0 | grep -F 'inet ${POD_IP[$name]}/24' >/dev/null"
done
# The ADD call of CONTAINER_ID carried every KEY=VALUE (in any order).
add_args_have() { # NODE CONTAINER_ID KEY=VALUE...
	local line kv
	line=$(grep -E "^ADD $2 " "$T/$1/cni-calls.log") || { echo "no ADD for '$2' in:"; cat "$T/$1/cni-calls.log"; return 1; }
	shift 2
	for kv in "$@"; do
		[[ ";${line#* * };" == *";$kv;"* ]] || { echo "$kv missing: $line"; return 1; }
	done
}
for name in srv cli pl; do
	check "$name: containerd ran warren-cni ADD with the kubelet's K8S_POD_NAMESPACE/NAME/UID/INFRA_CONTAINER_ID" \
		add_args_have "${POD_NODE[$name]}" "${POD_ID[$name]}" "K8S_POD_NAMESPACE=${POD_NS[$name]}" "K8S_POD_NAME=$name" \
		"K8S_POD_UID=${POD_UID[$name]}" "K8S_POD_INFRA_CONTAINER_ID=${POD_ID[$name]}"
done
check "srv: warren-cni's log names the pod and its sandbox" \
	grep -qE "ADD container=${POD_ID[srv]} .*pod=mesh/srv" "$T/node2/cni.log"

TAG_OUT=warren:nat-out-redirect-v4 TAG_IN=warren:nat-pre-redirect-v4
enrolled() { # POD NODE
	pexec "$1" nft list tables | grep 'inet warren-nat' >/dev/null || { echo "no warren-nat table"; return 1; }
	local p
	for p in 15001 15006 15008; do listening "${POD_NETNS[$1]}" $p || { echo "no listener on $p"; return 1; }; done
	tunnel_knows "$2" "${POD_ID[$1]}" || { echo "$2's tunnel does not list ${POD_ID[$1]}"; return 1; }
	# the handoff carried the kubelet's pod UID
	wctl "$2" -o json pods | "$PYTHON" -c 'import json, sys
p = [x for x in json.load(sys.stdin) if x["containerId"] == sys.argv[1]]
sys.exit(0 if p and p[0].get("uid") == sys.argv[2] else "tunnel record: %s" % p)' "${POD_ID[$1]}" "${POD_UID[$1]}"
}
check "srv (ambient namespace): enrolled by warren-cni, listed by node2's tunnel with the pod's UID" enrolled srv node2
check "cli (ambient namespace): enrolled, listed by node1's tunnel with the pod's UID" enrolled cli node1
not_enrolled() { # POD NODE
	inpod_clean "$1" || { echo "warren state in the pod"; return 1; }
	no_listeners "$1" || { echo "listeners in the pod"; return 1; }
	tunnel_forgot "$2" "${POD_ID[$1]}" || { echo "$2's tunnel lists ${POD_ID[$1]}"; return 1; }
}
check "pl (plain namespace): no warren table, no listener, not listed by the tunnel" not_enrolled pl node1

# --- traffic: cli (node1) -> srv (node2) through both tunnels -----------------
mesh_sync || not_ok "mesh file updated with the pods' IPs"
out0=$(nft_counter cli warren-nat "$TAG_OUT") in0=$(nft_counter srv warren-nat "$TAG_IN")
get() { pexec "$1" curl -s --max-time 10 "http://$2:8080/cgi-bin/peer"; }
reply=$(get cli "${POD_IP[srv]}")
[[ $reply == "${POD_IP[cli]} srv" ]] && ok "cli -> srv:8080 answered by srv, which saw cli's own IP (${POD_IP[cli]})" ||
	not_ok "cli -> srv:8080 answered by srv with cli's IP" "reply: '$reply'"
out1=$(nft_counter cli warren-nat "$TAG_OUT") in1=$(nft_counter srv warren-nat "$TAG_IN")
[[ -n $out0 && -n $out1 && -n $in0 && -n $in1 ]] && ((out1 > out0 && in1 == in0)) &&
	ok "cli's outbound redirect counter moved ($out0 -> $out1), srv's plaintext inbound one did not ($in0): HBONE" ||
	not_ok "cli's outbound redirect counter moved, srv's plaintext inbound one did not" "cli out '$out0' -> '$out1', srv in '$in0' -> '$in1'"
hbone_in() { # POD FROM_IP: conntrack in POD shows a connection from FROM_IP to its :15008
	local ct
	ct=$(ip netns exec "${POD_NETNS[$1]}" conntrack -L -p tcp 2>/dev/null)
	grep -E "src=$2 dst=${POD_IP[$1]} sport=[0-9]+ dport=15008 " <<<"$ct" >/dev/null || { echo "$ct"; return 1; }
}
check "conntrack in srv: HBONE from cli's IP to srv:15008" hbone_in srv "${POD_IP[cli]}"
reply=$(get pl "${POD_IP[srv]}")
in2=$(nft_counter srv warren-nat "$TAG_IN")
[[ $reply == "${POD_IP[pl]} srv" && -n $in2 ]] && ((in2 > in1)) &&
	ok "pl (not enrolled) -> srv:8080 in plaintext, captured by srv's inbound redirect ($in1 -> $in2); srv saw pl's IP" ||
	not_ok "pl -> srv:8080 in plaintext through srv's inbound redirect" "reply: '$reply'; counter '$in1' -> '$in2'"

# --- delete: the kubelet tears the sandbox down, warren-cni DEL runs ----------
kubectl delete pod -n mesh srv --wait=true --timeout=60s >/dev/null 2>&1 || not_ok "kubectl delete pod srv" ""
check "srv deleted: containerd ran warren-cni DEL for its sandbox ${POD_ID[srv]}" \
	wait_for -t 30 grep -E "^DEL ${POD_ID[srv]} .*K8S_POD_NAME=srv(;|$)" "$T/node2/cni-calls.log"
check "srv deleted: node2's tunnel released the pod" wait_for -t 10 tunnel_forgot node2 "${POD_ID[srv]}"
sanitizer_clean node1 node2
