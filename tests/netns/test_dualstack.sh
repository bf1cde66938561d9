#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Dual-stack pods: HBONE, Service VIPs and plaintext capture over IPv6, as
# root on the real kernel (TAP).
#
#   node1 netns                  <====== veth ======>  node2 netns
#     10.0.0.1/30, fd00:10::1/64                         10.0.0.2/30, fd00:10::2/64
#     cni0 10.244.1.1/24, fd00:244:1::1/64               cni0 10.244.2.1/24, fd00:244:2::1/64
#      |-- cli (ns mesh, enrolled)                        |-- srv (ns mesh, app=srv, enrolled,
#      |-- ext (ns plain, not enrolled)                   |        echo :8080 on 0.0.0.0 and ::)
#     warren-tunnel caDir=$T/ca                          warren-tunnel caDir=$T/ca
#     Service mesh/echo 10.96.0.10 + fd00:96::10, port 80 -> 8080
#
# The bridge and host-local plugins give every pod one address per family
# (DUALSTACK=1 in tests/netns/lib.sh); the mesh publishes both in
# status.podIPs. Shows: cli -> srv's IPv6 address and the Service's IPv6
# VIP over HBONE (TLS to [srv]:15008 on the wire, the payload never in
# clear, the server sees cli's IPv6 address), IPv4 beside it, plaintext
# capture over IPv6 from a pod outside the mesh, an L4 policy with an IPv6
# ipBlock, identities in the metrics, and a kubelet probe over IPv6 leaving
# node2 from the IPv6 probe address. Env: B or WARREN_BUILD, KEEP_TMP=1.
set -uo pipefail
DUALSTACK=1
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need tcpdump setpriv "$PYTHON" "$USER_PYTHON"
need_built warren-cni warren-tunnel warrenctl

KUBELET_UID=4321
tunnel_conf_extra() { printf 'caDir: %s\nmeshReloadMs: 200\nkubeletUid: %s\n' "$T/ca" "$KUBELET_UID"; } # NODE
policy() { # YAML of one object, or "" to remove mesh/only-v6: re-render + wait
	"$PYTHON" - "$T/mesh.yaml" "$1" <<'PY' || return 1
import fcntl, json, sys
f, obj = sys.argv[1], sys.argv[2]
lock = open(f + ".lock", "a"); fcntl.flock(lock, fcntl.LOCK_EX)
objs = [o for o in json.load(open(f + ".json")) if o["kind"] != "AuthorizationPolicy"]
if obj:
    objs.append(json.loads(obj))
open(f + ".json.tmp", "w").write(json.dumps(objs, indent=1))
import os; os.rename(f + ".json.tmp", f + ".json")
PY
	mesh ns mesh istio.io/dataplane-mode=ambient # re-render + wait for both tunnels
}

mtls_cluster_up
pod_add node2 mesh srv --label app=srv 2>"$T/err" || die "ADD srv: $(cat "$T/err")"
pod_add node1 mesh cli --label app=cli 2>"$T/err" || die "ADD cli: $(cat "$T/err")"
pod_add node1 plain ext --conflist "$T/node1.plain.conflist" 2>"$T/err" || die "ADD ext: $(cat "$T/err")"
app_server srv 8080 || die "echo server in srv"
mesh service mesh echo --selector app=srv --port 80:8080 --cluster-ip 10.96.0.10 --cluster-ip fd00:96::10 >/dev/null
SRV6=${POD_IP6[srv]:-} CLI6=${POD_IP6[cli]:-}
[[ $SRV6 == fd00:244:2:* && $CLI6 == fd00:244:1:* ]] &&
	ok "pods have both families: cli ${POD_IP[cli]} $CLI6, srv ${POD_IP[srv]} $SRV6" ||
	die "the chain gave no IPv6 address (cli '$CLI6', srv '$SRV6'; see $T/cli.result)"
check "IPv6 between the nodes works without the mesh (ext -> node2's gateway)" \
	wait_for -t 10 pexec ext ping -6 -c 1 -W 1 fd00:244:2::1

# --- HBONE over IPv6, on the wire ---------------------------------------------
MARK="marker6-$E2E_ID-$RANDOM$RANDOM"
nexec node1 tcpdump -i "wv$E2E_ID" -U -s 0 -w "$T/wire.pcap" ip6 and tcp >/dev/null 2>"$T/tcpdump.err" &
TCPDUMP=$!
BG_PIDS+=($TCPDUMP)
wait_for -t 10 grep -q listening "$T/tcpdump.err" || not_ok "tcpdump started" "$(cat "$T/tcpdump.err")"
check "cli -> [$SRV6]:8080 round-trips" app_client cli "$SRV6" 8080 "$MARK-direct"
[[ $(last_peer srv) == "$CLI6" ]] && ok "the server sees cli's IPv6 address $CLI6" ||
	not_ok "the server sees cli's IPv6 address" "$(tail -n 3 "$T/srv.app.log")"
check "cli -> Service VIP [fd00:96::10]:80 round-trips (resolved to srv's IPv6 address)" \
	app_client cli fd00:96::10 80 "$MARK-vip"
[[ $(tail -n 1 "$T/srv.app.log" | awk '{print $2, $4, $5}') == "$CLI6 $SRV6 8080" ]] &&
	ok "... the server sees $CLI6 -> [$SRV6]:8080" ||
	not_ok "via the IPv6 VIP the server sees cli on its IPv6 address" "$(tail -n 3 "$T/srv.app.log")"
check "cli -> Service VIP 10.96.0.10:80 (IPv4) still lands on srv's IPv4 address" \
	app_client cli 10.96.0.10 80 "v4-$E2E_ID"
[[ $(last_peer srv) == "${POD_IP[cli]}" ]] && ok "... from cli's IPv4 address" ||
	not_ok "IPv4 VIP: the server sees cli's IPv4 address" "$(tail -n 3 "$T/srv.app.log")"
kill -INT "$TCPDUMP" 2>/dev/null
wait_for -t 10 exited "$TCPDUMP"
check "tcpdump (IPv6): TCP to [$SRV6]:15008 on the node link" \
	bash -c "tcpdump -r '$T/wire.pcap' -nn 'ip6 and tcp dst port 15008' 2>/dev/null | grep -qF '$SRV6.15008'"
check "tcpdump (IPv6): no TCP to the app port 8080 on the wire" \
	bash -c "! tcpdump -r '$T/wire.pcap' -nn 'tcp port 8080' 2>/dev/null | grep -q ."
check "tcpdump (IPv6): the payload never appears in clear" bash -c "! grep -a -q '$MARK' '$T/wire.pcap'"
check "node2 logged the IPv6 connection as inbound HBONE" \
	grep -qF "inbound HBONE connection [$CLI6]:" "$T/node2/tunnel.log"
out=$(nexec node2 curl -s http://127.0.0.1:15020/metrics)
check "istio_tcp metrics (node2): mutual_tls with cli's principal" bash -c \
	"grep -F 'istio_tcp_connections_opened_total{' <<<\"\$0\" | grep -F 'connection_security_policy=\"mutual_tls\"' | grep -qF 'source_principal=\"spiffe://cluster.local/ns/mesh/sa/default\"'" "$out"

# --- plaintext capture over IPv6 ---------------------------------------------
check "ext (not enrolled) -> [$SRV6]:8080 is delivered through srv's capture" \
	app_client ext "$SRV6" 8080 "plain6-$E2E_ID"
[[ $(last_peer srv) == "${POD_IP6[ext]}" ]] && ok "... the server sees ext's IPv6 address ${POD_IP6[ext]}" ||
	not_ok "plaintext over IPv6: the server sees ext's address" "$(tail -n 3 "$T/srv.app.log")"
check "... node2 took it on 15006 (inbound plaintext)" \
	grep -qF "inbound connection [${POD_IP6[ext]}]:" "$T/node2/tunnel.log"

# --- a kubelet probe over IPv6 -------------------------------------------------
nexec node2 nft list set inet warren-host probe-pods-v6 | grep -F " $SRV6 " >/dev/null &&
	ok "node2's probe-pods-v6 set holds srv's IPv6 address" ||
	not_ok "node2's probe-pods-v6 set" "$(nexec node2 nft list table inet warren-host)"
check "a probe (kubelet uid $KUBELET_UID) from node2 -> [$SRV6]:8080 works" \
	connect_as node2 "$KUBELET_UID" "$SRV6" 8080 "probe6-$E2E_ID"
[[ $(last_peer srv) == fd16:9254:7127:1337:ffff:ffff:ffff:ffff ]] &&
	ok "... the app sees it from the IPv6 probe address" ||
	not_ok "the IPv6 probe arrives from fd16:9254:7127:1337:ffff:ffff:ffff:ffff" "$(tail -n 3 "$T/srv.app.log")"

# --- L4 policy with IPv6 addresses -------------------------------------------
policy '{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
 "metadata": {"name": "deny-node1-v6", "namespace": "mesh"},
 "spec": {"selector": {"matchLabels": {"app": "srv"}}, "action": "DENY",
  "rules": [{"from": [{"source": {"ipBlocks": ["fd00:244:1::/64"]}}]}]}}' || not_ok "policy applied"
check "DENY ipBlocks fd00:244:1::/64: cli -> [$SRV6]:8080 is closed" fails app_client cli "$SRV6" 8080 "denied6-$E2E_ID"
check "... node2 answered 401" wait_for -t 5 grep -q 'refused with 401: denied by policy mesh/deny-node1-v6' "$T/node2/tunnel.log"
check "... while cli over IPv4 is outside the block and allowed" app_client cli "${POD_IP[srv]}" 8080 "allowed4-$E2E_ID"
policy '{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
 "metadata": {"name": "only-v6-port", "namespace": "mesh"},
 "spec": {"selector": {"matchLabels": {"app": "srv"}}, "action": "ALLOW",
  "rules": [{"when": [{"key": "destination.ip", "values": ["'"$SRV6"'"]}]}]}}' || not_ok "policy applied"
check "ALLOW when destination.ip $SRV6: cli over IPv6 is allowed" app_client cli "$SRV6" 8080 "allowed6-$E2E_ID"
check "... and over IPv4 it is not" fails app_client cli "${POD_IP[srv]}" 8080 "denied4-$E2E_ID"
policy "" || not_ok "policy removed"

check "no tunnel crashed" eval 'tunnel_alive node1 && tunnel_alive node2'
sanitizer_clean node1 node2
echo "# $TAP_COUNT checks, $TAP_FAILED failed"
