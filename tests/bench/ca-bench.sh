#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# warren-ca benchmark: CSR to signed certificate through the real API
# server's TokenReview and pod list (hack/kube-up.sh, control plane only),
# one warren-ca replica. Prints figures (docs/performance.md records them);
# the budgets (p50 <= 10 ms, >= 200 signatures/s per replica) are printed
# beside them, never asserted.
#
#   netns wkc-ID: etcd, kube-apiserver 10.100.0.1:6443
#                 warren-ca 127.0.0.1:15012 (CA_THREADS workers)
#                 tests/bench/ca-bench.py: 1 client (latency), then CLIENTS (throughput)
#
# Env: SECONDS_EACH (default 10), CLIENTS (default 8), CA_THREADS (default 8).
set -uo pipefail
source "$(dirname "$0")/../netns/lib.sh"

lib_init
need openssl
need_built warren-ca
SECONDS_EACH=${SECONDS_EACH:-10} CLIENTS=${CLIENTS:-8} CA_THREADS=${CA_THREADS:-8}
CA_PID=
bench_cleanup() {
	local rc=$?
	[[ -n $CA_PID ]] && kill "$CA_PID" 2>/dev/null && wait "$CA_PID" 2>/dev/null
	kube_down
	(exit $rc)
	cleanup
}
trap bench_cleanup EXIT

kube_up 0
kube_ns warren-system >/dev/null && kube_ns bench >/dev/null || die "namespaces"
kubectl create serviceaccount warren -n warren-system >/dev/null && kubectl create serviceaccount app -n bench >/dev/null || die "sa"
kubectl apply -f "$WARREN_ROOT/deploy/ca/rbac.yaml" >/dev/null || die "rbac"
printf 'apiVersion: v1\nkind: Node\nmetadata: {name: node1}\n' | kubectl create -f - >/dev/null || die "node"
for p in "warren-system tunnel warren" "bench app app"; do
	read -r ns name sa <<<"$p"
	printf 'apiVersion: v1\nkind: Pod\nmetadata: {namespace: %s, name: %s}\nspec: {nodeName: node1, serviceAccountName: %s, automountServiceAccountToken: false, containers: [{name: c, image: x}]}\n' \
		"$ns" "$name" "$sa" | kubectl create -f - >/dev/null || die "pod $name"
done
kubectl create token warren -n warren-system --audience warren-ca --bound-object-kind Pod --bound-object-name tunnel \
	--duration 1h >"$T/token" || die "token"
bash "$WARREN_ROOT/hack/gen-ca.sh" "$T/ca" >/dev/null 2>&1 || die "gen-ca.sh"
kube_ca_kubeconfig || die "ca token"
ip netns exec "$KUBE_CP_NETNS" "$WARREN_BUILD/warren-ca" --ca-dir "$T/ca" --kubeconfig "$T/ca-kubeconfig" \
	--listen 127.0.0.1:15012 --dns 127.0.0.1 --threads "$CA_THREADS" --log-level warn >"$T/ca.log" 2>&1 &
CA_PID=$!
wait_for -t 10 ip netns exec "$KUBE_CP_NETNS" curl -sf --cacert "$T/ca/root-cert.pem" https://127.0.0.1:15012/healthz ||
	die "warren-ca not serving: $(tail -n 3 "$T/ca.log")"
run() { # THREADS
	ip netns exec "$KUBE_CP_NETNS" "$PYTHON" "$WARREN_ROOT/tests/bench/ca-bench.py" https://127.0.0.1:15012 \
		"$T/ca/root-cert.pem" "$T/token" spiffe://cluster.local/ns/bench/sa/app "$SECONDS_EACH" "$1"
}
cpu0=$(awk '{print $14 + $15}' "/proc/$CA_PID/stat")
one=$(run 1) || die "ca-bench.py"
many=$(run "$CLIENTS") || die "ca-bench.py"
cpu1=$(awk '{print $14 + $15}' "/proc/$CA_PID/stat")
echo "# warren-ca, $CA_THREADS workers, $(nproc) CPUs shared with kube-apiserver and etcd"
echo "one client:   $one"
echo "$CLIENTS clients:   $many"
echo "warren-ca CPU: $(( (cpu1 - cpu0) * 1000 / $(getconf CLK_TCK) )) ms over both runs"
echo "budgets: p50 <= 10 ms (one client), >= 200 signatures/s per replica"
# B=build-san / build-tsan: the sanitizer's reports under load
grep -q Sanitizer "$T/ca.log" && { echo "warren-ca sanitizer report:"; head -n 40 "$T/ca.log"; exit 1; }
exit 0
