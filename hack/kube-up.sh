#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Starts a real Kubernetes control plane and up to two nodes on this machine,
# as root, from the binaries hack/kube-build.sh built (run that first):
#
#   netns wkc-ID (control plane)           netns wk1-ID (node1)             netns wk2-ID (node2)
#     etcd 127.0.0.1:2379                     containerd + kubelet             containerd + kubelet
#     kube-apiserver 10.100.0.1:6443          eth0 10.100.0.11/24              eth0 10.100.0.12/24
#     bridge wkbr 10.100.0.1/24 --- veth ---> cni0 10.244.1.1/24 (pods)      cni0 10.244.2.1/24 (pods)
#          \_____________________________________ veth __________________________/
#   routes: 10.244.N.0/24 via 10.100.0.1N on the control plane and the other node
#
# Nothing runs in the host's network namespace. Each node's containerd and
# kubelet share one private mount namespace (made rshared, with its own
# sysfs, /run and /var/log), so their mounts (overlayfs rootfs, pod netns,
# shim sockets) never reach the host and die with it. Pods get their network
# from containerd's CRI with the chain bridge + host-local (+ warren-cni when
# it is built), all under KUBE_DIR. Images are local (no registry): a static
# pause binary (the pinned sandbox image) and busybox, imported with ctr.
#
# Env:
#   KUBE_DIR    state dir (default: a new /tmp/warren-kube.XXXXXX); the
#               layout is KUBE_DIR/{env,kubectl,kubeconfig,pki,cp,node1,node2}
#               and node dirs follow tests/netns/lib.sh: NODE/plugin.sock is
#               warren-cni's tunnel socket, NODE/cni.log its log
#   KUBE_NODES  0, 1 or 2 (default 2)
#   KUBE_ID     suffix of the namespace names (default: this shell's pid)
#   KUBE_CNI_WARREN  1: chain warren-cni after bridge + host-local (default
#               when $WARREN_BUILD/warren-cni exists), 0: bridge + host-local
#   WARREN_BUILD     build dir with warren-cni (default: build/)
# Writes KUBE_DIR/env (source it: KUBECONFIG, KUBE_APISERVER, KUBE_CA,
# KUBE_TOKEN_FILE (a system:masters bearer token), KUBE_* names, binary paths) and
# KUBE_DIR/kubectl (kubectl run in the control plane's netns). Stop with
# hack/kube-down.sh KUBE_DIR, which removes everything this started.
# Pods must set spec.nodeName (no scheduler), imagePullPolicy: Never and, as
# no controller-manager runs, their namespace needs a ServiceAccount
# "default" (kube_ns in KUBE_DIR/env creates both).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
((EUID == 0)) || { echo "kube-up: needs root" >&2; exit 1; }
KUBE_NODES=${KUBE_NODES:-2}
[[ $KUBE_NODES =~ ^[012]$ ]] || { echo "kube-up: KUBE_NODES must be 0, 1 or 2" >&2; exit 1; }
KUBE_ID=${KUBE_ID:-$$}
WARREN_BUILD=${WARREN_BUILD:-$ROOT/build}
if [[ -z ${KUBE_CNI_WARREN:-} ]]; then
	if [[ -x $WARREN_BUILD/warren-cni ]]; then KUBE_CNI_WARREN=1; else KUBE_CNI_WARREN=0; fi
fi
if [[ -z ${KUBE_DIR:-} ]]; then
	KUBE_DIR=$(mktemp -d /tmp/warren-kube.XXXXXX)
	touch "$KUBE_DIR/.kube-up-made-this-dir"
fi
mkdir -p "$KUBE_DIR"
KUBE_DIR=$(cd "$KUBE_DIR" && pwd)
chmod 755 "$KUBE_DIR"
K=$KUBE_DIR
CP=wkc-$KUBE_ID
APISERVER_IP=10.100.0.1
declare -A BIN
while read -r name path; do BIN[$name]=$path; done < <("$ROOT/hack/kube-build.sh" --paths 2>/dev/null || true)
need=(etcd kube-apiserver kubectl)
((KUBE_NODES)) && need+=(containerd ctr containerd-shim-runc-v2 runc kubelet)
for b in "${need[@]}"; do
	[[ -x ${BIN[$b]:-} ]] || { echo "kube-up: $b not built; run hack/kube-build.sh first" >&2; exit 1; }
done
for c in openssl ip nsenter unshare curl gcc python3; do
	command -v $c >/dev/null || { echo "kube-up: missing $c (hack/install-deps.sh)" >&2; exit 1; }
done
if ((KUBE_NODES)); then
	for f in /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback /usr/bin/busybox; do
		[[ -x $f ]] || { echo "kube-up: missing $f (hack/install-deps.sh)" >&2; exit 1; }
	done
fi

log() { echo "kube-up: $*" >&2; }
fail() {
	log "$*"
	log "left running for inspection; stop with: hack/kube-down.sh $K"
	exit 1
}
# poll CMD (every 0.2 s) until it succeeds, at most S seconds
wait_for() {
	local secs=$1 end; shift
	end=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < end)) || return 1
		sleep 0.2
	done
}
# start CMD in the background, detached from our session, output to LOG;
# record NAME and its pid in $K/pids (kube-down.sh reads it)
start() { # NAME LOG CMD...
	local name=$1 log=$2; shift 2
	setsid "$@" </dev/null >>"$log" 2>&1 &
	echo "$name $!" >>"$K/pids"
	eval "PID_${name//[^a-zA-Z0-9]/_}=$!"
}
alive() { kill -0 "$1" 2>/dev/null; }

# --- env file first, so kube-down.sh can undo a half-finished start --------
NODES=()
for ((i = 1; i <= KUBE_NODES; i++)); do NODES+=("node$i"); done
{
	echo "# written by hack/kube-up.sh; source it"
	echo "KUBE_DIR=$K"
	echo "KUBE_ID=$KUBE_ID"
	echo "KUBE_NODES=$KUBE_NODES"
	echo "KUBE_CP_NETNS=$CP"
	echo "KUBE_APISERVER=https://$APISERVER_IP:6443"
	echo "KUBECONFIG=$K/kubeconfig"
	echo "KUBE_CNI_WARREN=$KUBE_CNI_WARREN"
	for b in "${!BIN[@]}"; do echo "KUBE_BIN_${b//-/_}=${BIN[$b]}"; done
	for n in "${NODES[@]}"; do
		i=${n#node}
		echo "KUBE_NETNS_$n=wk$i-$KUBE_ID"
		echo "KUBE_NODE_IP_$n=10.100.0.1$i"
		echo "KUBE_POD_SUBNET_$n=10.244.$i.0/24"
		echo "KUBE_CGROUP_$n=/warren-kube-$KUBE_ID-$n"
	done
	cat <<'EOF'
# kubectl against this cluster (runs in the control plane's netns)
kubectl() { "$KUBE_DIR/kubectl" "$@"; }
# a namespace with its default ServiceAccount (no controller-manager makes it)
kube_ns() { # NAME [LABEL=VALUE]...
	local ns=$1; shift
	kubectl create namespace "$ns" >/dev/null || return 1
	kubectl create serviceaccount default -n "$ns" >/dev/null || return 1
	(($#)) && kubectl label namespace "$ns" "$@" >/dev/null
	return 0
}
EOF
} >"$K/env"
: >>"$K/pids"

# --- PKI: one CA; serving cert, the apiserver's kubelet client cert, the ---
# --- service-account signing key, one system:masters bearer token       ---
P=$K/pki
mkdir -p "$P"
ossl() { openssl "$@" 2>>"$P/openssl.log"; }
cert() { # NAME SUBJ [SAN]: EC key + cert signed by the CA, one day
	ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$P/$1.key"
	ossl req -new -key "$P/$1.key" -subj "$2" -out "$P/$1.csr"
	local ext=$P/$1.ext
	printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n' >"$ext"
	if [[ -n ${3:-} ]]; then
		printf 'extendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$3" >>"$ext"
	else
		printf 'extendedKeyUsage=clientAuth\n' >>"$ext"
	fi
	ossl x509 -req -in "$P/$1.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 2 \
		-extfile "$ext" -out "$P/$1.crt"
}
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/ca.key" -out "$P/ca.crt" \
	-days 2 -subj "/CN=warren-kube-ca" -addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign,cRLSign
cert apiserver "/CN=kube-apiserver" \
	"IP:$APISERVER_IP,IP:127.0.0.1,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$P/sa.key"
ossl pkey -in "$P/sa.key" -pubout -out "$P/sa.pub"
TOKEN=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
echo "$TOKEN,warren-admin,warren-admin,system:masters" >"$P/tokens.csv"
printf '%s' "$TOKEN" >"$P/token"
chmod 600 "$P"/*.key "$P/tokens.csv" "$P/token"
{
	echo "KUBE_CA=$P/ca.crt"
	echo "KUBE_TOKEN_FILE=$P/token"
} >>"$K/env"
cat >"$K/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: warren
  cluster:
    server: https://$APISERVER_IP:6443
    certificate-authority: $P/ca.crt
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: warren
  context: {cluster: warren, user: admin}
current-context: warren
EOF
chmod 600 "$K/kubeconfig"
cat >"$K/kubectl" <<EOF
#!/bin/sh
# kubectl for the cluster in $K (the API server is reachable in its netns only)
exec nsenter --net=/run/netns/$CP ${BIN[kubectl]} --kubeconfig $K/kubeconfig "\$@"
EOF
chmod 755 "$K/kubectl"

# --- network ---------------------------------------------------------------
ip netns add "$CP"
ip -n "$CP" link set lo up
ip -n "$CP" link add wkbr type bridge
ip -n "$CP" addr add "$APISERVER_IP/24" dev wkbr
ip -n "$CP" link set wkbr up
for n in "${NODES[@]}"; do
	i=${n#node}
	ns=wk$i-$KUBE_ID
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip -n "$CP" link add "v$n" type veth peer name eth0 netns "$ns"
	ip -n "$CP" link set "v$n" master wkbr up
	ip -n "$ns" addr add "10.100.0.1$i/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" route add default via "$APISERVER_IP"
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
	ip -n "$CP" route add "10.244.$i.0/24" via "10.100.0.1$i"
done
if ((KUBE_NODES == 2)); then
	ip -n wk1-"$KUBE_ID" route add 10.244.2.0/24 via 10.100.0.12
	ip -n wk2-"$KUBE_ID" route add 10.244.1.0/24 via 10.100.0.11
fi

# --- etcd and kube-apiserver -----------------------------------------------
mkdir -p "$K/cp"
t0=$SECONDS
start etcd "$K/cp/etcd.log" ip netns exec "$CP" "${BIN[etcd]}" --name default --data-dir "$K/cp/etcd" \
	--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
	--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
	--initial-cluster default=http://127.0.0.1:2380 --unsafe-no-fsync --log-level warn
wait_for 30 ip netns exec "$CP" curl -sf http://127.0.0.1:2379/health || fail "etcd not healthy within 30 s (see $K/cp/etcd.log)"
start kube-apiserver "$K/cp/kube-apiserver.log" ip netns exec "$CP" "${BIN[kube-apiserver]}" \
	--etcd-servers http://127.0.0.1:2379 --bind-address 0.0.0.0 --advertise-address "$APISERVER_IP" \
	--secure-port 6443 --tls-cert-file "$P/apiserver.crt" --tls-private-key-file "$P/apiserver.key" \
	--client-ca-file "$P/ca.crt" --token-auth-file "$P/tokens.csv" --authorization-mode RBAC \
	--service-cluster-ip-range 10.96.0.0/16 --allow-privileged \
	--service-account-issuer https://kubernetes.default.svc.cluster.local \
	--service-account-key-file "$P/sa.pub" --service-account-signing-key-file "$P/sa.key" \
	--kubelet-client-certificate "$P/kubelet-client.crt" --kubelet-client-key "$P/kubelet-client.key" \
	--kubelet-preferred-address-types InternalIP --profiling=false --v 1
apiserver_ready() {
	[[ $(ip netns exec "$CP" curl -s --cacert "$P/ca.crt" -H "Authorization: Bearer $TOKEN" \
		"https://$APISERVER_IP:6443/readyz") == ok ]]
}
wait_for 120 apiserver_ready || fail "kube-apiserver not ready within 120 s (see $K/cp/kube-apiserver.log)"
log "control plane ready in $((SECONDS - t0)) s (etcd, kube-apiserver)"
((KUBE_NODES)) || { echo "$K"; exit 0; }

# --- images (no registry): the pause binary and busybox as OCI archives ---
mkdir -p "$K/images"
gcc -static -Os -o "$K/images/pause" "$ROOT/hack/kube/images/pause.c"
python3 "$ROOT/hack/kube/images/oci-image.py" "$K/images/pause.tar" localhost/warren-pause:1 \
	--entrypoint '["/pause"]' --file "$K/images/pause:/pause"
bblinks=()
for a in sh cat echo env hostname httpd ip ls nc ping sleep wget; do bblinks+=(--link "/bin/busybox:/bin/$a"); done
python3 "$ROOT/hack/kube/images/oci-image.py" "$K/images/app.tar" localhost/warren-app:1 \
	--cmd '["/bin/httpd","-f","-p","8080","-h","/www"]' --file /usr/bin/busybox:/bin/busybox \
	--file "$ROOT/hack/kube/images/peer.cgi:/www/cgi-bin/peer" --dir /tmp "${bblinks[@]}"

# --- nodes ------------------------------------------------------------------
# The kubelet's kernel tunables (not namespaced): saved by the first cluster
# up, restored by the last one down (hack/kube-down.sh).
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
SAVE=/run/warren-kube-sysctl
(
	flock 9
	mkdir -p "$SAVE/users"
	if [[ ! -f $SAVE/orig ]]; then
		for s in "${SYSCTLS[@]}"; do echo "$s $(sysctl -n "$s")"; done >"$SAVE/orig.tmp"
		mv "$SAVE/orig.tmp" "$SAVE/orig"
	fi
	touch "$SAVE/users/$KUBE_ID"
) 9>/run/warren-kube-sysctl.lock
echo "KUBE_SYSCTL_SAVED=1" >>"$K/env"
# libcni caches results in /var/lib/cni (not configurable in containerd's
# CRI): make the mount point if the host has none, a tmpfs covers it per node
if [[ ! -d /var/lib/cni ]]; then
	mkdir /var/lib/cni
	echo "KUBE_MADE_VAR_LIB_CNI=1" >>"$K/env"
fi

cgroup_hierarchies() { # every mounted cgroup hierarchy (v1 controllers and the unified one)
	awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts
}

# The node's own processes (holder, containerd, kubelet, and the shims
# containerd starts) go to CGROUP/node in the pids hierarchy, pods to
# CGROUP/kubepods: kube-down.sh finds everything of the node there.
node_cgroup() { # CGROUP PID
	local h
	for h in $(cgroup_hierarchies); do
		[[ -f $h/pids.max ]] || continue
		mkdir -p "$h$1/node"
		echo "$2" >"$h$1/node/cgroup.procs"
	done
}

node_up() { # NODE
	local n=$1 i=${1#node} D=$K/$1 ns=wk${1#node}-$KUBE_ID cg=/warren-kube-$KUBE_ID-$1 h anchor
	mkdir -p "$D"/{cni-bin,cni-conf,ipam,kubelet,pod-logs,containerd,cg-stash}
	for h in $(cgroup_hierarchies); do
		mkdir -p "$h$cg"
		if [[ -f $h$cg/cpuset.cpus ]]; then
			cat "$h/cpuset.cpus" >"$h$cg/cpuset.cpus"
			cat "$h/cpuset.mems" >"$h$cg/cpuset.mems"
		fi
	done
	# chain: bridge + host-local (+ warren-cni)
	ln -sf /usr/lib/cni/* "$D/cni-bin/"
	local plugins="{\"type\":\"bridge\",\"bridge\":\"cni0\",\"isGateway\":true,\"ipMasq\":false,\"hairpinMode\":true,"
	plugins+="\"ipam\":{\"type\":\"host-local\",\"ranges\":[[{\"subnet\":\"10.244.$i.0/24\"}]],\"routes\":[{\"dst\":\"0.0.0.0/0\"}],\"dataDir\":\"$D/ipam\"}}"
	if ((KUBE_CNI_WARREN)); then
		ln -sf "$WARREN_BUILD/warren-cni" "$D/cni-bin/warren-cni"
		plugins+=",{\"type\":\"warren-cni\",\"tunnelSocket\":\"$D/plugin.sock\",\"excludeNamespaces\":[\"kube-system\"],"
		plugins+="\"logFile\":\"$D/cni.log\",\"logLevel\":\"debug\",\"timeoutMs\":5000}"
	fi
	printf '{"cniVersion":"1.0.0","name":"warren-kube","plugins":[%s]}\n' "$plugins" >"$D/cni-conf/10-warren-kube.conflist"

	cat >"$D/containerd.toml" <<EOF
version = 3
root = "$D/containerd/root"
state = "$D/containerd/state"
disabled_plugins = ["io.containerd.nri.v1.nri"]
[grpc]
  address = "$D/containerd.sock"
[debug]
  level = "info"
[metrics]
  address = ""
[plugins.'io.containerd.internal.v1.opt']
  path = "$D/containerd/opt"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "localhost/warren-pause:1"
[plugins.'io.containerd.cri.v1.runtime']
  enable_cdi = false
  netns_mounts_under_state_dir = true
  tolerate_missing_hugetlb_controller = true
  # lowering an oom_score_adj needs CAP_SYS_RESOURCE, which sandboxes (CI
  # runners, this project's machines) may not grant: keep every container's
  # at or above containerd's own instead of failing the sandbox
  restrict_oom_score_adj = true
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  BinaryName = "${BIN[runc]}"
  SystemdCgroup = false
[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ["$D/cni-bin"]
  conf_dir = "$D/cni-conf"
  max_conf_num = 1
EOF
	cat >"$D/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: $cg
containerRuntimeEndpoint: unix://$D/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $P/ca.crt}
authorization: {mode: AlwaysAllow}
address: 10.100.0.1$i
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
podLogsDir: $D/pod-logs
volumePluginDir: $D/kubelet/volume-plugins
makeIPTablesUtilChains: false
oomScoreAdj: 0
hairpinMode: none
resolvConf: ""
failSwapOn: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
EOF
	# The node's mount namespace: a holder process in the node's netns whose
	# mount namespace containerd and the kubelet join. Its sysfs is the
	# node netns's; the host's cgroup mounts are moved over; /run, /var/log
	# and /var/lib/cni are private tmpfs; then / is made rshared, as the
	# kubelet needs.
	cat >"$D/anchor.sh" <<'EOF'
set -e
D=$1
mount --rbind /sys/fs/cgroup "$D/cg-stash"
umount -l /sys
mount -t sysfs sysfs /sys
mount --move "$D/cg-stash" /sys/fs/cgroup
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=755 tmpfs /var/log
mount -t tmpfs -o mode=755 tmpfs /var/lib/cni
mount --make-rshared /
echo ready >"$D/anchor.ready"
exec sleep infinity
EOF
	start "anchor-$n" "$D/anchor.log" nsenter --net="/run/netns/$ns" unshare -m --propagation private sh "$D/anchor.sh" "$D"
	eval "anchor=\$PID_anchor_$n"
	node_cgroup "$cg" "$anchor"
	wait_for 10 test -f "$D/anchor.ready" || fail "$n: mount namespace not set up (see $D/anchor.log)"
	start "containerd-$n" "$D/containerd.log" nsenter -t "$anchor" -m -n \
		env PATH="$(dirname "${BIN[containerd]}"):$PATH" "${BIN[containerd]}" --config "$D/containerd.toml"
	eval "node_cgroup $cg \$PID_containerd_$n"
	wait_for 30 "${BIN[ctr]}" --address "$D/containerd.sock" version ||
		fail "$n: containerd not answering within 30 s (see $D/containerd.log)"
	local img
	for img in pause app; do
		nsenter -t "$anchor" -m -n "${BIN[ctr]}" --address "$D/containerd.sock" -n k8s.io images import \
			--no-unpack=false "$K/images/$img.tar" >>"$D/images.log" 2>&1 ||
			fail "$n: importing $img.tar failed (see $D/images.log)"
	done
	cat >"$D/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: warren
  cluster: {server: "https://$APISERVER_IP:6443", certificate-authority: $P/ca.crt}
users:
- name: $n
  user: {token: $TOKEN}
contexts:
- name: warren
  context: {cluster: warren, user: $n}
current-context: warren
EOF
	chmod 600 "$D/kubeconfig"
	start "kubelet-$n" "$D/kubelet.log" nsenter -t "$anchor" -m -n "${BIN[kubelet]}" --config "$D/kubelet.yaml" \
		--kubeconfig "$D/kubeconfig" --hostname-override "$n" --node-ip "10.100.0.1$i" \
		--root-dir "$D/kubelet" --v 2
	eval "node_cgroup $cg \$PID_kubelet_$n"
}

node_ready() { # NODE
	[[ $("$K/kubectl" get node "$1" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

t0=$SECONDS
for n in "${NODES[@]}"; do node_up "$n"; done
for n in "${NODES[@]}"; do
	wait_for 120 node_ready "$n" || fail "$n not Ready within 120 s (see $K/$n/kubelet.log)"
done
log "${#NODES[@]} node(s) Ready in $((SECONDS - t0)) s"
echo "$K"
