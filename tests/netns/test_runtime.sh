#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# warren's CNI chain driven by real runtime code, as root, on the real kernel:
#
#  1. libcni (Debian's Go package, tests/runtime/libcni-harness.go, built
#     here offline): Validate (VERSION probe), ADD, CHECK, DEL of
#     bridge + host-local + warren-cni for cniVersion 1.0.0, 0.4.0, 0.3.1;
#     enrollment, pass-through, CHECK naming what is missing, tunnel down,
#     and traffic between two enrolled pods through warren-tunnel.
#  2. containerd 1.6 `ctr run --rootfs --cni` (containerd started here with a
#     private config; CRI plugin disabled): ADD and DEL (CNI_NETNS="").
#  3. podman 4 `--network-backend cni run --rootfs` (private containers.conf,
#     storage and CNI config dir): VERSION probe, ADD with K8S_POD_NAME only
#     (pass-through), DEL.
#
#   netns NODE: warren-tunnel, bridge wrbr$$ (10.254.0.1/24), and where the
#   runtimes (harness, ctr, podman) run the chain; pods are netns named
#   wr-<x>-$$ (libcni) or the runtimes' own.
#
# REDIRECT_MODE=ebpf: the conflists say redirect "ebpf" with bpfDir on a
# bpffs mounted at $T/bpffs (the harness and runtimes run in the node netns
# through ip netns exec or nsenter; ip netns exec remounts /sys), and the
# capture checks read the sk_lookup link, its pins and counters (bpftool).
#
# warren-cni is reached through a tiny wrapper ($T/bin/warren-cni) that
# records each call (command, CNI_NETNS, CNI_ARGS, stdin) and execs the
# real binary with the same environment and stdin.
# ctr only reads /etc/cni/net.d and looks for plugins in /opt/cni/bin and
# /usr/lib/cni; it is run in a private mount namespace where our temp dirs
# are bind-mounted over those (and over /var/lib/cni, its cache), so the
# host's files are never touched. TAP lines "ok - x" / "not ok - x".
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
SRC=$PWD
B=${WARREN_BUILD:-$PWD/${B:-build}}
TUN=$B/warren-tunnel CTL=$B/warrenctl PLUGIN=$B/warren-cni

id=$$
NODE=wr-node-$id
PA=wr-a-$id PB=wr-b-$id PC=wr-c-$id PD=wr-d-$id PE=wr-e-$id PP=wr-p-$id
NET=wrnet-$id BR=wrbr$id SUBNET=10.254.0
T=$(mktemp -d /tmp/warren-runtime-test.XXXXXX)
chmod 755 "$T"
sock=$T/run/tunnel.sock adminsock=$T/admin.sock state=$T/state mesh=$T/mesh.yaml
tlog=$T/tunnel.log plog=$T/plugin.log calls=$T/calls.log
HARN=$T/libcni-harness
tpid='' ctdpid=''
created_dirs=()
. tests/netns/lib.sh


ctd_sock=$T/ctd/ctd.sock
ctr_() { ctr --address "$ctd_sock" "$@"; }
PODMAN=(podman --root "$T/podman/root" --runroot "$T/podman/runroot" --tmpdir "$T/podman/tmp"
	--storage-driver vfs --network-backend cni --runtime runc)
podman_() { CONTAINERS_CONF=$T/containers.conf "${PODMAN[@]}" "$@"; }

cleanup() {
	set +e
	[[ -n $tpid ]] && kill -9 "$tpid" 2>/dev/null && wait "$tpid" 2>/dev/null
	if [[ -n $ctdpid ]]; then
		ctr_ tasks kill -s SIGKILL "wr-ctr-$id" >/dev/null 2>&1
		ctr_ tasks delete -f "wr-ctr-$id" >/dev/null 2>&1
		ctr_ containers delete "wr-ctr-$id" >/dev/null 2>&1
		kill "$ctdpid" 2>/dev/null && wait "$ctdpid" 2>/dev/null
	fi
	if [[ -d $T/podman ]] && command -v podman >/dev/null; then
		podman_ rm -f "wr-pm-$id" >/dev/null 2>&1
	fi
	for ns in $PA $PB $PC $PD $PE $PP $NODE; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	rm -f /var/lib/cni/results/"$NET"-* 2>/dev/null
	# mounts left under $T (a container's rootfs, podman's storage)
	awk -v t="$T" '$2 ~ "^"t {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
	if [[ -n ${WARREN_KEEP_TMP:-} ]]; then echo "# kept $T"; else rm -rf "$T"; fi
	for ((i = ${#created_dirs[@]} - 1; i >= 0; i--)); do rmdir "${created_dirs[$i]}" 2>/dev/null; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

((EUID == 0)) || { echo "not ok - needs root"; exit 1; }
for bin in "$TUN" "$CTL" "$PLUGIN" /usr/lib/cni/bridge /usr/lib/cni/host-local; do
	[[ -x $bin ]] || { echo "not ok - missing $bin (build first; hack/install-deps.sh)"; exit 1; }
done
for c in jq ip nft socat curl ss nsenter unshare; do
	command -v $c >/dev/null || { echo "not ok - missing tool $c (hack/install-deps.sh)"; exit 1; }
done

# --- the node, its tunnel, the mesh model --------------------------------
mkpod "$NODE"
mkdir -p "$T/run" "$T/bin" "$T/calls" "$T/cache" "$T/ipam"
EXTRA=
if [[ $REDIRECT_MODE == ebpf ]]; then
	command -v bpftool >/dev/null || { echo "not ok - missing tool bpftool (hack/install-deps.sh)"; exit 1; }
	mkdir -p "$T/bpffs" && mount -t bpf bpf "$T/bpffs" || { echo "not ok - mount a bpffs at $T/bpffs"; exit 1; }
	EXTRA=", \"redirect\": \"ebpf\", \"bpfDir\": \"$T/bpffs\""
fi
chmod 700 "$T/run"
cat >"$T/tunnel.yaml" <<EOF
node: node-$id
pluginSocket: $sock
stateDir: $state
meshPath: $mesh
adminSocket: $adminsock
logLevel: debug
logFile: $tlog
meshReloadMs: 200
mtls: disabled
EOF
cat >"$mesh" <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: demo
  labels:
    istio.io/dataplane-mode: ambient
---
apiVersion: v1
kind: Namespace
metadata:
  name: plain
EOF
# The enrolled pods' objects: an ADD waits for its pod's.
for p in a b d e; do
	printf -- '---\napiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: demo, uid: uid-%s-%s}\n' \
		"$p" "$p" "$id" >>"$mesh"
done
node_tunnel_start "$T/tunnel.yaml" /dev/null
node_tunnel_ready_or_die "$tlog"

cat >"$T/bin/warren-cni" <<EOF
#!/bin/sh
# test wrapper: record the call, then run the real warren-cni unchanged
f=$T/calls/\${CNI_COMMAND}-\${CNI_CONTAINERID:-none}.json
cat >"\$f"
echo "\$CNI_COMMAND cid=\${CNI_CONTAINERID-} netns=\${CNI_NETNS-} args=\${CNI_ARGS-}" >>$calls
exec $PLUGIN <"\$f"
EOF
chmod 755 "$T/bin/warren-cni"

conflist() { # VERSION -> path of a conflist for that version
	local f=$T/conf-$1.conflist
	cat >"$f" <<EOF
{ "cniVersion": "$1", "name": "$NET",
  "plugins": [
    { "type": "bridge", "bridge": "$BR", "isGateway": true,
      "ipam": { "type": "host-local", "dataDir": "$T/ipam",
                "ranges": [[{ "subnet": "$SUBNET.0/24" }]], "routes": [{ "dst": "0.0.0.0/0" }] } },
    { "type": "warren-cni", "tunnelSocket": "$sock", "logFile": "$plog", "logLevel": "debug"$EXTRA }
  ] }
EOF
	echo "$f"
}
k8s() { echo "IgnoreUnknown=1;K8S_POD_NAMESPACE=$1;K8S_POD_NAME=$2;K8S_POD_UID=uid-$2-$id;K8S_POD_INFRA_CONTAINER_ID=cid-$2-$id"; }
# H VERSION POD ARGS CMD: the harness in the node netns; $T/h.out, $T/h.err, $rc
H() {
	n "$NODE" "$HARN" -conflist "$T/conf-$1.conflist" -cache "$T/cache" -path "/usr/lib/cni:$T/bin" \
		-cid "cid-${2#wr-}" -netns "/run/netns/$2" -ifname eth0 -args "$3" "$4" >"$T/h.out" 2>"$T/h.err"
	rc=$?
}
hdiag() { echo "# rc=$rc stdout:"; diag_files "$T/h.out"; echo "# stderr:"; diag_files "$T/h.err"; }
hcheck() { # name, condition...
	local name=$1; shift
	if "$@"; then ok "$name"; else not_ok "$name"; hdiag; fi
}
# tables NETNS: how many of the mode's two capture objects are in the pod:
# nftables: inet warren-nat and inet warren-mangle; ebpf: the sk_lookup link
# running warren_capture on its netns, and the pinned directory of it
tables() {
	if [[ $REDIRECT_MODE != ebpf ]]; then
		n "$1" nft list tables 2>/dev/null | grep -c 'table inet warren-'
		return
	fi
	local ino c=0 l
	ino=$(stat -L -c %i "/run/netns/$1" 2>/dev/null) || { echo 0; return; }
	l=$(ebpf_netns_link "$ino") && ((c++))
	[[ -n $l ]] && for d in "$T"/bpffs/warren/*/; do
		[[ $(bpftool -j link show pinned "$d/link" 2>/dev/null | jq -r .id) == "$l" ]] && ((c++)) && break
	done
	echo $c
}
ebpf_netns_link() { # NETNS_INO: id of the sk_lookup link running warren_capture there
	bpftool -j link show 2>/dev/null | jq -r --argjson ino "$1" '.[] | select(.type == "netns" and .netns_ino == $ino and .attach_type == "sk_lookup") | "\(.id) \(.prog_id)"' |
		while read -r l p; do
			[[ $(bpftool -j prog show id "$p" | jq -r .name) == warren_capture ]] && echo "$l" && exit 0
		done | grep .
}
pods_json() { "$CTL" --socket "$adminsock" -o json pods; }
listed() { pods_json | jq -e --arg u "uid-$1-$id" 'any(.[]; .uid == $u)' >/dev/null; }
export CTL adminsock id
export -f pods_json listed
eth0_ip() { n "$1" ip -4 -o addr show dev eth0 2>/dev/null | awk '{print $4}'; }
# the chain's result as libcni returns it is exactly what bridge produced
# (warren-cni's prevResult, recorded by the wrapper): same IPs, interfaces, routes
same_as_bridge() { # POD
	local prev=$T/calls/ADD-cid-${1#wr-}.json
	[[ -s $prev && -s $T/h.out ]] &&
		[[ $(jq -cS '.prevResult' "$prev") == "$(jq -cS . "$T/h.out")" ]] &&
		jq -e '.prevResult.ips | length > 0' "$prev" >/dev/null
}

# --- 1. libcni ------------------------------------------------------------
have_go=1
command -v go >/dev/null || have_go=0
[[ -d /usr/share/gocode/src/github.com/containernetworking/cni/libcni ]] || have_go=0
if ((have_go)); then
	mkdir -p "$T/go"
	if ! (cd "$T" && GO111MODULE=off GOPATH=$T/go:/usr/share/gocode GOCACHE=$T/gocache GOPROXY=off GOFLAGS='' \
		go build -o "$HARN" "$SRC/tests/runtime/libcni-harness.go") >"$T/gobuild.log" 2>&1; then
		not_ok "libcni harness builds (go build, GOPATH=/usr/share/gocode)"; diag_files "$T/gobuild.log"; have_go=0
	else
		ok "libcni harness builds against Debian's libcni $(dpkg-query -W -f='${Version}' golang-github-appc-cni-dev 2>/dev/null)"
	fi
else
	not_ok "libcni harness: golang-go or golang-github-appc-cni-dev missing (hack/install-deps.sh)"
fi

if ((have_go)); then
	for v in 1.0.0 0.4.0 0.3.1; do conflist $v >/dev/null; done

	# Validate: libcni runs VERSION on every plugin of the list
	: >"$calls"
	H 1.0.0 "$PA" "" validate
	hcheck "libcni ValidateNetworkList passes (1.0.0)" test $rc = 0
	hcheck "libcni's VERSION probe: warren-cni answers 0.3.0..1.1.0" \
		grep -qx 'VERSION warren-cni 0.3.0,0.3.1,0.4.0,1.0.0,1.1.0' "$T/h.out"
	check "the probe reached warren-cni (CNI_COMMAND=VERSION)" grep -q '^VERSION ' "$calls"

	# ADD of an enrolled pod (namespace demo is ambient)
	mkpod "$PA"
	H 1.0.0 "$PA" "$(k8s demo a)" add
	hcheck "libcni AddNetworkList enrolls demo/a (1.0.0)" test $rc = 0
	cp "$T/h.out" "$T/result-a.json"
	hcheck "result is 1.0.0 with the pod's IP on eth0" \
		jq -e --arg ip "$(eth0_ip "$PA")" '.cniVersion == "1.0.0" and .ips[0].address == $ip and
			(.interfaces[.ips[0].interface].name == "eth0")' "$T/h.out" >/dev/null
	hcheck "result printed by libcni = what bridge produced (ips, interfaces, routes, dns)" same_as_bridge "$PA"
	check "our $REDIRECT_MODE capture exists in the pod (nft tables inet warren-nat and warren-mangle, or the sk_lookup link and its pins)" test "$(tables "$PA")" = 2
	check "tunnel listeners 15001/15006/15008 in the pod" test "$(listeners "$PA")" = $LIS
	check "warrenctl -o json pods lists demo/a with the result's IP" \
		bash -c "'$CTL' --socket '$adminsock' -o json pods | jq -e --arg ip '$(jq -r '.ips[0].address' "$T/result-a.json")' \
			'any(.[]; .uid == \"uid-a-$id\" and .namespace == \"demo\" and .name == \"a\" and .ips == [\$ip])' >/dev/null"
	check "libcni cached the result" test -s "$T/cache/results/$NET-cid-a-$id-eth0"

	H 1.0.0 "$PA" "$(k8s demo a)" check
	hcheck "libcni CheckNetworkList passes after ADD" test $rc = 0
	check "CHECK reached warren-cni with the cached prevResult" \
		jq -e '.prevResult.ips | length > 0' "$T/calls/CHECK-cid-a-$id.json" >/dev/null

	# traffic between two enrolled pods on the same bridge, through the tunnel
	mkpod "$PB"
	H 1.0.0 "$PB" "$(k8s demo b)" add
	hcheck "libcni ADD enrolls demo/b on the same bridge" test $rc = 0
	ipa=$(eth0_ip "$PA"); ipa=${ipa%/*}
	ipb=$(eth0_ip "$PB"); ipb=${ipb%/*}
	n "$PB" socat TCP-LISTEN:8080,reuseaddr,fork SYSTEM:'echo peer=$SOCAT_PEERADDR' >/dev/null 2>&1 &
	wait_for bash -c "ip netns exec $PB ss -ltnH | grep -q ':8080\b'"
	counter() { # POD PORT: packets of the redirect-to-PORT rule, or the program's count
		if [[ $REDIRECT_MODE == ebpf ]]; then
			local l m
			l=$(ebpf_netns_link "$(stat -L -c %i "/run/netns/$1")") || return 1
			m=$(bpftool -j prog show id "$(bpftool -j link show id "$l" | jq .prog_id)" | jq '.map_ids[]' |
				while read -r m; do [[ $(bpftool -j map show id "$m" | jq -r .name) == warren_cnt ]] && echo "$m"; done)
			bpftool -j map dump id "$m" | jq --argjson k "$([[ $2 == 15001 ]] && echo 0 || echo 1)" \
				'[.[] | (.formatted // .) | select(.key == $k) | .values[].value] | add'
			return
		fi
		n "$1" nft list table inet warren-nat | awk -v p="redirect to :$2" 'index($0, p) {
			for (i = 1; i < NF; i++) if ($i == "packets") s += $(i + 1) } END {print s + 0}'
	}
	oa=$(counter "$PA" 15001) ib=$(counter "$PB" 15006)
	out=$(n "$PA" socat -T 5 - "TCP:$ipb:8080" </dev/null 2>&1)
	check "a -> b:8080 works and the server sees a's IP ($ipa)" test "$out" = "peer=$ipa"
	check "a's outbound redirect (:15001) counted the connection" test "$(counter "$PA" 15001)" -gt "$oa"
	check "b's inbound redirect (:15006) counted the connection" test "$(counter "$PB" 15006)" -gt "$ib"
	check "the tunnel relayed it (outbound from demo/a, inbound to demo/b)" \
		wait_for bash -c "grep -q 'outbound connection $ipa:[0-9]* -> $ipb:8080 of pod demo/a' '$tlog' &&
			grep -q 'inbound connection $ipa:[0-9]* -> $ipb:8080 of pod demo/b' '$tlog'"
	for p in $(ip netns pids "$PB"); do kill "$p" 2>/dev/null; done

	# CHECK names what is missing
	if [[ $REDIRECT_MODE == ebpf ]]; then
		bpftool link detach id "$(ebpf_netns_link "$(stat -L -c %i "/run/netns/$PA")")"
		H 1.0.0 "$PA" "$(k8s demo a)" check
		hcheck "CHECK fails once the sk_lookup link is detached, naming the program" \
			bash -c "[[ $rc != 0 ]] && grep -q 'traffic redirection in the pod is incomplete.*warren_capture (sk_lookup) is detached' '$T/h.err'"
	else
		n "$PA" nft delete table inet warren-mangle
		H 1.0.0 "$PA" "$(k8s demo a)" check
		hcheck "CHECK fails once inet warren-mangle is deleted, naming it" \
			bash -c "[[ $rc != 0 ]] && grep -q 'traffic redirection in the pod is incomplete.*table inet warren-mangle missing' '$T/h.err'"
	fi

	# DEL
	H 1.0.0 "$PA" "$(k8s demo a)" del
	hcheck "libcni DelNetworkList succeeds" test $rc = 0
	check "DEL removed our tables from the pod" test "$(tables "$PA")" = 0
	check "DEL: the tunnel closed the pod's listeners" test "$(listeners "$PA")" = 0
	check "DEL: warrenctl pods no longer lists demo/a" bash -c "! listed a"
	check "DEL: bridge removed eth0 and libcni its cache" \
		bash -c "[[ -z \$(ip netns exec $PA ip -o link show eth0 2>/dev/null) ]] && test ! -e '$T/cache/results/$NET-cid-a-$id-eth0'"
	H 1.0.0 "$PA" "$(k8s demo a)" del
	hcheck "a second DEL succeeds" test $rc = 0
	check "the second DEL had no prevResult (libcni dropped its cache)" \
		jq -e 'has("prevResult") | not' "$T/calls/DEL-cid-a-$id.json" >/dev/null
	H 1.0.0 "$PB" "$(k8s demo b)" del
	hcheck "DEL demo/b" bash -c "[[ $rc == 0 && $(tables "$PB") == 0 ]] && ! listed b"

	# a pod in a namespace without the ambient label
	mkpod "$PC"
	H 1.0.0 "$PC" "$(k8s plain c)" add
	hcheck "ADD in an unlabelled namespace succeeds (pass-through)" \
		bash -c "[[ $rc == 0 ]] && jq -e '.ips | length == 1' '$T/h.out' >/dev/null"
	check "... and is not enrolled (no tables, no listeners, not listed)" \
		bash -c "[[ $(tables "$PC") == 0 && $(listeners "$PC") == 0 ]] && ! listed c && grep -q 'pod plain/c: not enrolled' '$plog'"
	H 1.0.0 "$PC" "$(k8s plain c)" check
	hcheck "CHECK of the pass-through pod passes" test $rc = 0
	H 1.0.0 "$PC" "$(k8s plain c)" del
	hcheck "DEL of the pass-through pod" test $rc = 0

	# older spec versions
	for v in 0.4.0 0.3.1; do
		mkpod "$PE"
		H $v "$PE" "" validate
		hcheck "[$v] Validate passes" test $rc = 0
		H $v "$PE" "$(k8s demo e)" add
		hcheck "[$v] ADD enrolls demo/e; result in $v format (ips[].version)" \
			bash -c "[[ $rc == 0 ]] && jq -e '.cniVersion == \"$v\" and .ips[0].version == \"4\"' '$T/h.out' >/dev/null"
		hcheck "[$v] result = what bridge produced" same_as_bridge "$PE"
		check "[$v] tables, listeners, listed by warrenctl" \
			bash -c "[[ $(tables "$PE") == 2 && $(listeners "$PE") == $LIS ]] && listed e"
		H $v "$PE" "$(k8s demo e)" check
		if [[ $v == 0.4.0 ]]; then
			hcheck "[$v] CHECK passes" test $rc = 0
		else
			hcheck "[$v] CHECK refused by libcni (no CHECK before 0.4.0)" \
				bash -c "[[ $rc != 0 ]] && grep -q 'does not support the CHECK command' '$T/h.err'"
		fi
		H $v "$PE" "$(k8s demo e)" del
		hcheck "[$v] DEL removes everything" \
			bash -c "[[ $rc == 0 && $(tables "$PE") == 0 && $(listeners "$PE") == 0 ]] && ! listed e"
		ip netns del "$PE"
	done

	# a pass-through peer on the bridge, for the runtimes below
	mkpod "$PP"
	H 1.0.0 "$PP" "" add
	hcheck "ADD without K8S args (a peer for the runtimes) passes through" test $rc = 0
	ipp=$(eth0_ip "$PP"); ipp=${ipp%/*}
	n "$PP" socat TCP-LISTEN:8080,reuseaddr,fork SYSTEM:'echo peer=$SOCAT_PEERADDR' >/dev/null 2>&1 &
	wait_for bash -c "ip netns exec $PP ss -ltnH | grep -q ':8080\b'"
fi

# a busybox rootfs for the containers
mkrootfs() {
	mkdir -p "$T/rootfs"/{bin,proc,sys,dev,etc,tmp} &&
		cp /bin/busybox "$T/rootfs/bin/busybox" && ln -s busybox "$T/rootfs/bin/sh"
}
# what the containers run: show eth0, then ask the peer who we are
CMD='/bin/busybox ip -o -4 addr show dev eth0; /bin/busybox nc -w 5 '"${ipp:-127.0.0.1}"' 8080 </dev/null'
container_ip() { awk '$2 == "eth0" && $3 == "inet" {print $4}' "$1"; }

# --- 2. ctr run --cni -------------------------------------------------------
if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null || ! command -v runc >/dev/null ||
	[[ ! -x /bin/busybox ]]; then
	not_ok "ctr: containerd, runc or busybox-static missing (hack/install-deps.sh)"
elif [[ -z ${ipp:-} ]]; then
	not_ok "ctr: needs the libcni part (peer pod) to run"
else
	mkrootfs
	mkdir -p "$T/ctd" "$T/netd" "$T/ctrbin" "$T/ctrcache"
	cat >"$T/ctd/config.toml" <<EOF
version = 2
root = "$T/ctd/root"
state = "$T/ctd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$ctd_sock"
[ttrpc]
  address = "$T/ctd/ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
EOF
	containerd --config "$T/ctd/config.toml" >"$T/ctd/log" 2>&1 &
	ctdpid=$!
	if ! wait_for bash -c "ctr --address '$ctd_sock' version >/dev/null 2>&1"; then
		not_ok "containerd started with a private config"; diag_files "$T/ctd/log"
	else
		ok "containerd $(ctr_ version 2>/dev/null | awk '/Version/ {print $2; exit}') started by hand (private socket/root/state, CRI disabled)"
		# ctr's conf dir and plugin dirs are fixed: shadow them in a private mount ns
		cp "$T/conf-1.0.0.conflist" "$T/netd/00-$NET.conflist"
		cp /usr/lib/cni/bridge /usr/lib/cni/host-local "$T/bin/warren-cni" "$T/ctrbin/"
		# mount points must exist; directories made for that are removed at exit
		for d in /etc/cni /etc/cni/net.d /var/lib/cni; do
			[[ -d $d ]] || { mkdir "$d" && created_dirs+=("$d"); }
		done
		: >"$calls"
		nsenter --net="/run/netns/$NODE" unshare --mount --propagation private bash -c '
			mount --bind "$1" /etc/cni/net.d && mount --bind "$2" /usr/lib/cni &&
			mount --bind "$3" /var/lib/cni || exit 99
			if [[ -d /opt/cni/bin ]]; then mount --bind "$2" /opt/cni/bin || exit 99; fi
			shift 3; exec "$@"' _ "$T/netd" "$T/ctrbin" "$T/ctrcache" \
			timeout 60 ctr --address "$ctd_sock" run --rm --cni --rootfs "$T/rootfs" "wr-ctr-$id" \
			/bin/busybox sh -c "$CMD" >"$T/ctr.out" 2>"$T/ctr.err"
		rc=$?
		cip=$(container_ip "$T/ctr.out")
		if [[ $rc == 0 ]]; then ok "ctr run --rm --cni --rootfs exits 0 (ADD and DEL succeeded)"; else
			not_ok "ctr run --rm --cni --rootfs exits 0 (rc=$rc)"; diag_files "$T/ctr.out" "$T/ctr.err"; fi
		check "ctr: the container has eth0 with a bridge IP ($cip)" bash -c "[[ '$cip' == $SUBNET.*/24 ]]"
		check "ctr: the container reaches the peer on the bridge, which sees its IP" \
			grep -qx "peer=${cip%/*}" "$T/ctr.out"
		check "ctr: warren-cni ran ADD (logFile), CNI_ARGS empty -> pass-through" \
			bash -c "grep -q 'ADD container=default-wr-ctr-$id netns=/proc/[0-9]*/ns/net ifname=eth0 pod=-/-' '$plog' &&
				grep -q 'container default-wr-ctr-$id: not a Kubernetes pod' '$plog' &&
				grep -qx 'ADD cid=default-wr-ctr-$id netns=/proc/[0-9]*/ns/net args=' '$calls'"
		check "ctr: warren-cni ran DEL with CNI_NETNS=\"\" and the cached prevResult" \
			bash -c "grep -q 'DEL container=default-wr-ctr-$id netns=- ' '$plog' &&
				grep -qx 'DEL cid=default-wr-ctr-$id netns= args=' '$calls' &&
				jq -e '.prevResult.ips | length > 0' '$T/calls/DEL-default-wr-ctr-$id.json' >/dev/null"
		check "ctr: DEL ran through bridge/host-local too (lease released, cache removed)" \
			bash -c "lease_gone() { [[ -n \$1 && ! -e '$T/ipam/$NET/'\${1%/*} ]]; }; lease_gone '$cip' &&
				! ls '$T/ctrcache/results/' 2>/dev/null | grep -q ."
		check "ctr: no VERSION probe, no CHECK (as documented for ctr 1.6)" bash -c "! grep -qE '^(VERSION|CHECK) ' '$calls'"
		check "ctr: the tunnel was not involved (no pods)" bash -c "[[ \$('$CTL' --socket '$adminsock' -o json pods | jq length) == 0 ]]"
	fi
fi

# --- 3. podman --network-backend cni ---------------------------------------
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || [[ ! -x /bin/busybox ]]; then
	not_ok "podman: podman, runc or busybox-static missing (hack/install-deps.sh)"
elif [[ -z ${ipp:-} ]]; then
	not_ok "podman: needs the libcni part (peer pod) to run"
else
	[[ -d $T/rootfs ]] || mkrootfs
	mkdir -p "$T/podman"/{root,runroot,tmp,netd}
	cp "$T/conf-1.0.0.conflist" "$T/podman/netd/$NET.conflist"
	cat >"$T/containers.conf" <<EOF
[network]
network_backend = "cni"
cni_plugin_dirs = ["/usr/lib/cni", "$T/bin"]
network_config_dir = "$T/podman/netd"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$T/podman/events.log"
EOF
	: >"$calls"
	# crun refuses hybrid cgroup v1/v2 hosts ("cgroups in hybrid mode not
	# supported"), so runc; explicit ulimits because the default nproc and
	# nofile can exceed a sandbox's hard limits (setrlimit: EPERM)
	CONTAINERS_CONF=$T/containers.conf timeout 60 nsenter --net="/run/netns/$NODE" "${PODMAN[@]}" run --rm \
		--name "wr-pm-$id" --network "$NET" --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
		--rootfs "$T/rootfs" /bin/busybox sh -c "$CMD" >"$T/podman.out" 2>"$T/podman.err"
	rc=$?
	pip=$(container_ip "$T/podman.out")
	if [[ $rc == 0 ]]; then ok "podman --network-backend cni run --rm --rootfs exits 0"; else
		not_ok "podman --network-backend cni run --rm --rootfs exits 0 (rc=$rc)"; diag_files "$T/podman.out" "$T/podman.err"; fi
	check "podman: the container has eth0 with a bridge IP ($pip) and reaches the peer" \
		bash -c "[[ '$pip' == $SUBNET.*/24 ]] && grep -qx 'peer=${pip%/*}' '$T/podman.out'"
	check "podman: VERSION probe before ADD" bash -c "head -1 '$calls' | grep -q '^VERSION ' && grep -q '^ADD ' '$calls'"
	pcid=$(awk '/^ADD / {sub("cid=", "", $2); print $2; exit}' "$calls")
	check "podman: ADD with K8S_POD_NAME only, in /run/netns -> not enrolled, passed through" \
		bash -c "grep -q '^ADD cid=$pcid netns=/run/netns/netns-[^ ]* args=IgnoreUnknown=1;K8S_POD_NAME=wr-pm-$id\$' '$calls' &&
			grep -q 'container $pcid: not a Kubernetes pod' '$plog' && [[ -n '$pcid' ]]"
	check "podman: DEL with prevResult, lease released" \
		bash -c "grep -q '^DEL cid=$pcid ' '$calls' && jq -e '.prevResult.ips | length > 0' '$T/calls/DEL-$pcid.json' >/dev/null &&
			[[ -n '$pip' && ! -e '$T/ipam/$NET/${pip%/*}' ]]"
	pns=$(grep -o 'netns=/run/netns/[^ ]*' "$calls" | head -1 | cut -d= -f2)
	check "podman: nothing left (container, its netns $pns, CNI cache entry)" \
		bash -c "[[ -n '$pns' && ! -e '$pns' && -z \$(CONTAINERS_CONF=$T/containers.conf ${PODMAN[*]} ps -aq 2>/dev/null) ]] &&
			! ls /var/lib/cni/results 2>/dev/null | grep -q '^$NET-'"
	check "podman: the tunnel was not involved (no pods)" bash -c "[[ \$('$CTL' --socket '$adminsock' -o json pods | jq length) == 0 ]]"
fi

# --- tunnel down: ADD of an enrolled pod fails closed ---------------------
if ((have_go)); then
	[[ -n ${ipp:-} ]] && H 1.0.0 "$PP" "" del
	kill -TERM "$tpid"; wait "$tpid"; tpid=''
	mkpod "$PD"
	H 1.0.0 "$PD" "$(k8s demo d)" add
	hcheck "tunnel down: libcni surfaces warren-cni's error" \
		bash -c "[[ $rc != 0 ]] && grep -q 'plugin type=\"warren-cni\" failed (add): warren-tunnel is not reachable at $sock' '$T/h.err'"
	check "tunnel down: no warren table left in the pod" test "$(tables "$PD")" = 0
	H 1.0.0 "$PD" "$(k8s demo d)" del
	hcheck "tunnel down: the runtime's DEL after the failed ADD succeeds" \
		bash -c "[[ $rc == 0 && -z \$(ip netns exec $PD ip -o link show eth0 2>/dev/null) ]]"
fi
if [[ $REDIRECT_MODE == ebpf ]]; then
	check "ebpf: after every DEL and the failed ADD, nothing is pinned under bpfDir/warren" \
		bash -c "[[ -z \$(ls -A '$T/bpffs/warren' 2>/dev/null) ]]"
fi

if ((TAP_FAILED)); then
	echo "# tunnel log (tail):"; tail -30 "$tlog" 2>/dev/null | diag_files
	echo "# plugin log (tail):"; tail -30 "$plog" 2>/dev/null | diag_files
fi
exit 0
