#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the real-cluster binaries (etcd, kube-apiserver, kubectl, kubelet,
# containerd, ctr, containerd-shim-runc-v2, runc) from the pinned Go wrapper
# modules in hack/kube/ into a cache outside the checkout, one directory per
# module and build key:
#   $WARREN_KUBE_CACHE/<module>-<version>-<key>/bin/<binary>
# The key hashes the module's go.mod/go.sum, the Go version and the build
# flags, so a new pin builds anew and an unchanged one is never rebuilt.
# GOMODCACHE and GOCACHE live in the cache too: a rebuild after a pin bump
# only compiles what changed.
#
#   hack/kube-build.sh [BINARY...]   build what is missing (default: all, in
#                                    the order etcd, kube-apiserver, kubectl,
#                                    containerd, ctr, containerd-shim-runc-v2,
#                                    runc, kubelet)
#   hack/kube-build.sh --paths       print "name path" of every binary; exit 1
#                                    if one is not built (builds nothing)
# Env: WARREN_KUBE_CACHE (default /var/cache/warren-kube), GO (the first Go
# >= $GO_MIN of: $GO, /usr/local/go/bin/go, go on PATH; if none, the official
# toolchain module golang.org/toolchain is fetched from the Go module proxy
# with whatever go there is, as GOTOOLCHAIN would), KUBE_BUILD_NICE (default 10).
# The body is one compound command, read whole before it runs, so editing
# this file during a long build cannot change what the running build does.
{
set -euo pipefail
cd "$(dirname "$0")/kube"
MODS=$PWD
CACHE=${WARREN_KUBE_CACHE:-/var/cache/warren-kube}
GO_MIN=1.26.8 # containerd v2.3.7's go.mod asks for it
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build GOTOOLCHAIN=local GOFLAGS="-mod=readonly -modcacherw"

go_ok() { # GO: is it at least $GO_MIN?
	local v
	v=$("$1" env GOVERSION 2>/dev/null) || return 1
	v=${v#go}
	[[ $(printf '%s\n%s\n' "$GO_MIN" "$v" | sort -V | head -n 1) == "$GO_MIN" ]]
}
find_go() {
	local g dir any=
	for g in ${GO:-} /usr/local/go/bin/go $(command -v go 2>/dev/null); do
		[[ -x $g ]] || continue
		go_ok "$g" && { echo "$g"; return 0; }
		any=$g
	done
	[[ -n $any ]] || { echo "kube-build: no go at all (hack/install-deps.sh installs Debian's)" >&2; return 1; }
	echo "kube-build: no Go >= $GO_MIN; fetching golang.org/toolchain go$GO_MIN from the module proxy" >&2
	dir=$(cd / && GOFLAGS=-modcacherw "$any" mod download -json "golang.org/toolchain@v0.0.1-go$GO_MIN.linux-amd64" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || return 1
	# module zips keep no mode bits: make the toolchain's programs executable
	chmod +x "$dir"/bin/* "$dir"/pkg/tool/*/*
	go_ok "$dir/bin/go" || { echo "kube-build: the fetched toolchain in $dir does not run" >&2; return 1; }
	echo "$dir/bin/go"
}

ALL=(etcd kube-apiserver kubectl containerd ctr containerd-shim-runc-v2 runc kubelet)
KV=v1.36.3 ETCDV=v3.6.17 CTDV=v2.3.7 RUNCV=v1.4.4
KLD="-X k8s.io/component-base/version.gitVersion=$KV -X k8s.io/component-base/version.gitMajor=1"
KLD+=" -X k8s.io/component-base/version.gitMinor=36 -X k8s.io/component-base/version.gitTreeState=clean"
KLD+=" -X k8s.io/client-go/pkg/version.gitVersion=$KV -X k8s.io/client-go/pkg/version.gitMajor=1"
KLD+=" -X k8s.io/client-go/pkg/version.gitMinor=36 -X k8s.io/client-go/pkg/version.gitTreeState=clean"
CLD="-X github.com/containerd/containerd/v2/version.Version=$CTDV"
CLD+=" -X github.com/containerd/containerd/v2/version.Package=github.com/containerd/containerd/v2"
CTAGS=no_btrfs,no_zfs,no_devmapper

# spec BINARY: "module version cgo tags ldflags package" (fields joined by |)
spec() {
	case $1 in
	etcd) echo "etcd|$ETCDV|0|||." ;;
	kube-apiserver | kubectl | kubelet) echo "kubernetes|$KV|0||-s -w $KLD|k8s.io/kubernetes/cmd/$1" ;;
	containerd | ctr) echo "containerd|$CTDV|1|$CTAGS|-s -w $CLD|github.com/containerd/containerd/v2/cmd/$1" ;;
	containerd-shim-runc-v2) echo "containerd|$CTDV|0|$CTAGS|-s -w $CLD|github.com/containerd/containerd/v2/cmd/$1" ;;
	runc) echo "runc|$RUNCV|1|seccomp|-s -w -X main.version=${RUNCV#v}|github.com/opencontainers/runc" ;;
	*) echo "kube-build: unknown binary $1 (one of: ${ALL[*]})" >&2; return 1 ;;
	esac
}

GO=$(find_go) || exit 1

bindir() { # MODULE VERSION: the cache directory of a module's binaries
	local key
	key=$({ cat "$MODS/$1/go.mod" "$MODS/$1/go.sum" "$MODS/$1"/*.go 2>/dev/null
		"$GO" version; declare -f spec; echo "$KLD $CLD $CTAGS"; } | sha256sum | cut -c1-10)
	echo "$CACHE/$1-$2-$key/bin"
}

path_of() { # BINARY
	local s m v
	s=$(spec "$1") || return 1
	IFS='|' read -r m v _ <<<"$s"
	echo "$(bindir "$m" "$v")/$1"
}

if [[ ${1:-} == --paths ]]; then
	rc=0
	for b in "${ALL[@]}"; do
		p=$(path_of "$b")
		echo "$b $p"
		[[ -x $p ]] || { echo "kube-build: $b not built (run hack/kube-build.sh)" >&2; rc=1; }
	done
	exit $rc
fi

mkdir -p "$CACHE/logs"
targets=("$@")
((${#targets[@]})) || targets=("${ALL[@]}")
for b in "${targets[@]}"; do
	IFS='|' read -r m v cgo tags ld pkg <<<"$(spec "$b")"
	out=$(bindir "$m" "$v")/$b
	if [[ -x $out ]]; then
		echo "kube-build: $b cached: $out"
		continue
	fi
	mkdir -p "$(dirname "$out")"
	echo "kube-build: building $b ($m $v) ..."
	start=$SECONDS
	(cd "$MODS/$m" && CGO_ENABLED=$cgo nice -n "${KUBE_BUILD_NICE:-10}" "$GO" build -trimpath \
		${tags:+-tags "$tags"} -ldflags "$ld" -o "$out.tmp" "$pkg") >"$CACHE/logs/build-$b.log" 2>&1 || {
		echo "kube-build: building $b failed; its log ($CACHE/logs/build-$b.log):" >&2
		tail -n 30 "$CACHE/logs/build-$b.log" >&2
		exit 1
	}
	mv "$out.tmp" "$out"
	echo "kube-build: built $b in $((SECONDS - start)) s: $out"
done
exit 0
}
