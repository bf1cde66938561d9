#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds kube-controller-manager and kube-scheduler from the pinned module
# hack/kube/kubernetes (the one hack/kube-build.sh builds the API server and
# kubelet from), cached the same way: a DaemonSet needs both (its controller
# creates the pods, the scheduler binds them, the garbage collector removes
# them), which the clusters of hack/kube-up.sh do not run.
#   hack/kube-ctrl-build.sh           build what is missing; print "name path" of each
#   hack/kube-ctrl-build.sh --paths   print them; exit 1 if one is not built
# Env: WARREN_KUBE_CACHE (default /var/cache/warren-kube), GO.
set -euo pipefail
cd "$(dirname "$0")/kube/kubernetes"
CACHE=${WARREN_KUBE_CACHE:-/var/cache/warren-kube}
KV=v1.36.3
GO=${GO:-/usr/local/go/bin/go}
[[ -x $GO ]] || GO=$(command -v go) || { echo "kube-ctrl-build: no go" >&2; exit 1; }
key=$(cat go.mod go.sum <("$GO" version) | sha256sum | cut -c1-10)
dir=$CACHE/kube-ctrl-$KV-$key/bin
rc=0
for b in kube-controller-manager kube-scheduler; do
	if [[ ! -x $dir/$b ]]; then
		if [[ ${1:-} == --paths ]]; then
			echo "kube-ctrl-build: $b not built (run hack/kube-ctrl-build.sh)" >&2
			rc=1
			continue
		fi
		mkdir -p "$dir" "$CACHE/logs"
		GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build GOTOOLCHAIN=local GOFLAGS="-mod=readonly -modcacherw" \
			CGO_ENABLED=0 nice -n "${KUBE_BUILD_NICE:-10}" "$GO" build -trimpath \
			-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KV" -o "$dir/$b.tmp" \
			"k8s.io/kubernetes/cmd/$b" >"$CACHE/logs/build-$b.log" 2>&1 || {
			echo "kube-ctrl-build: building $b failed:" >&2
			tail -n 20 "$CACHE/logs/build-$b.log" >&2
			exit 1
		}
		mv "$dir/$b.tmp" "$dir/$b"
	fi
	echo "$b $dir/$b"
done
exit $rc
