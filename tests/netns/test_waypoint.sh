#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Waypoints, as root, on the real kernel (TAP).
#
#   node1 netns (10.0.0.1/30) <====== veth ======> node2 netns (10.0.0.2/30)
#     cni0 10.244.1.1/24                             cni0 10.244.2.1/24
#      |-- cli (ns mesh, sa cli-sa, enrolled)          |-- srv (ns mesh, sa srv-sa, app=srv,
#      |-- wp  (ns mesh, sa waypoint, label               enrolled, echo :8080)
#      |        gateway-name=waypoint: never captured) |-- srv2 (ns mesh, app=srv2, echo :8080)
#     warren-tunnel caDir=$T/ca                      warren-tunnel caDir=$T/ca
#
#   Gateway mesh/waypoint (istio-waypoint, HBONE 15008): wp is its pod
#   Service mesh/web 10.96.0.20:80 -> srv:8080, istio.io/use-waypoint=waypoint
#   Service mesh/ghost 10.96.0.21:80 -> srv2, bound to a Gateway that does not exist
#   Service mesh/cold 10.96.0.22:80 -> srv2, bound to waypoint cold-wp, which has no pod
#
# Shows the tunnel's side of waypoints: a waypoint pod is not captured; a
# Service bound to a missing or unready waypoint refuses connections (fail
# closed: a log line, the access log's reason and a metric name the
# waypoint); traffic to a bound Service goes to the waypoint pod's 15008
# with :authority VIP:port; a direct HBONE connection to a workload behind
# the waypoint, from another identity, is refused at the destination (no
# bypass), unless the pod opts out (annotation
# warren.io/waypoint-allow-direct) or an ALLOW policy names the source.
# Env: B or WARREN_BUILD, KEEP_TMP=1.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need openssl "$PYTHON"
need_built warren-cni warren-tunnel warrenctl

eval "$(declare -f tunnel_conf_write | sed '1s/^tunnel_conf_write/lib_tunnel_conf_write/')"
tunnel_conf_write() { # NODE
	lib_tunnel_conf_write "$1"
	printf 'caDir: %s\nmeshReloadMs: 200\n' "$T/ca" >>"$T/$1/tunnel.yaml"
}
set_sa() { mesh_py "[o['spec'].__setitem__('serviceAccountName', '$3') for o in objs if o['kind'] == 'Pod' and o['metadata']['namespace'] == '$1' and o['metadata']['name'] == '$2']"; }
metric() { # NODE NAME LABEL-SUBSTRING: value (sum) or 0
	nexec "$1" curl -s --max-time 2 http://127.0.0.1:15020/metrics |
		awk -v n="$2" -v l="$3" 'index($0, n) == 1 && index($0, l) { s += $NF } END { print s + 0 }'
}
at_least() { local v; v=$(metric "$1" "$2" "$3"); ((v >= $4)); } # NODE NAME LABELS MIN
gateway() { # NS NAME [waypoint-for]
	add_policy "{\"apiVersion\": \"gateway.networking.k8s.io/v1\", \"kind\": \"Gateway\",
	  \"metadata\": {\"name\": \"$2\", \"namespace\": \"$1\", \"labels\": {\"istio.io/waypoint-for\": \"${3:-service}\"}},
	  \"spec\": {\"gatewayClassName\": \"istio-waypoint\", \"listeners\": [{\"name\": \"mesh\", \"port\": 15008, \"protocol\": \"HBONE\"}]}}"
}
svc_label() { # NS NAME KEY VALUE
	mesh_py "[o['metadata'].setdefault('labels', {}).__setitem__('$3', '$4') for o in objs if o['kind'] == 'Service' and o['metadata']['namespace'] == '$1' and o['metadata']['name'] == '$2']"
}
pod_annotate() { # NS NAME KEY VALUE
	mesh_py "[o['metadata'].setdefault('annotations', {}).__setitem__('$3', '$4') for o in objs if o['kind'] == 'Pod' and o['metadata']['namespace'] == '$1' and o['metadata']['name'] == '$2']"
}
access_log_has() { grep -F '"scope":"access"' "$T/$1/tunnel.out" | grep -F "$2" | grep -qF "$3"; } # NODE TEXT1 TEXT2

bash "$WARREN_ROOT/hack/gen-ca.sh" "$T/ca" 2>/dev/null || die "gen-ca.sh (mesh CA)"
topo_up >/dev/null 2>&1 || die "topology"
mesh ns mesh istio.io/dataplane-mode=ambient
tunnel_start node1 2>/dev/null || die "warren-tunnel on node1 not ready (see $T/node1/tunnel.out)"
tunnel_start node2 2>/dev/null || die "warren-tunnel on node2 not ready"

gateway mesh waypoint
gateway mesh cold-wp all
for p in srv srv2; do
	pod_define node2 mesh $p --label app=$p || die "define $p"
	set_sa mesh $p $p-sa
	pod_cni_add $p 2>"$T/err" || die "ADD $p: $(cat "$T/err")"
	app_server $p 8080 || die "echo server in $p"
done
pod_define node1 mesh cli --label app=cli || die "define cli"
set_sa mesh cli cli-sa
pod_cni_add cli 2>"$T/err" || die "ADD cli: $(cat "$T/err")"
pod_define node1 mesh wp --label gateway.networking.k8s.io/gateway-name=waypoint || die "define wp"
set_sa mesh wp waypoint
pod_cni_add wp 2>"$T/err" || die "ADD wp: $(cat "$T/err")"
CLI=${POD_IP[cli]} SRV=${POD_IP[srv]} WP=${POD_IP[wp]}
ok "pods: cli $CLI, wp $WP (node1), srv $SRV, srv2 ${POD_IP[srv2]} (node2)"

# --- 1. the waypoint pod is not captured --------------------------------------
check "the waypoint pod wp (namespace ambient) has no tunnel listeners" no_listeners wp
check "... and the tunnel says why (to the plugin)" wait_for -t 5 grep -rq 'pod is a waypoint' "$T/node1/"

# --- 2. fail closed: missing and unready waypoints ----------------------------
mesh service mesh ghost --selector app=srv2 --port 80:8080 --cluster-ip 10.96.0.21 >/dev/null
check "without a waypoint label, cli -> Service ghost 10.96.0.21:80 works" app_client cli 10.96.0.21 80 "pre-$E2E_ID"
svc_label mesh ghost istio.io/use-waypoint nowhere
check "Service ghost bound to the missing waypoint nowhere: the connection is refused" \
	fails app_client cli 10.96.0.21 80 "ghost-$E2E_ID"
check "... the log names the waypoint" wait_for -t 5 grep -q \
	'Service mesh/ghost is bound to waypoint mesh/nowhere, which does not exist' "$T/node1/tunnel.log"
check "... the access log's reason too" wait_for -t 5 access_log_has node1 '"reason"' 'waypoint mesh/nowhere'
check "... warren_waypoint_refused_total{waypoint=mesh/nowhere,reason=missing}" \
	at_least node1 warren_waypoint_refused_total 'waypoint="mesh/nowhere",reason="missing"' 1
[[ $(wc -l <"$T/srv2.app.log") -eq 1 ]] && ok "... srv2's app saw only the connection made before the label" ||
	not_ok "srv2's app saw only the unbound connection" "$(cat "$T/srv2.app.log")"

# srv2 is behind ghost's (missing) waypoint: nobody may reach it directly
# (fail closed at the destination too); drop ghost before going on.
check "... and a direct connection to srv2 is refused at node2 (no waypoint identity can exist)" \
	fails app_client cli "${POD_IP[srv2]}" 8080 "ghost-direct-$E2E_ID"
mesh_py "objs[:] = [o for o in objs if not (o['kind'] == 'Service' and o['metadata']['name'] == 'ghost')]"

mesh service mesh cold --selector app=srv2 --port 80:8080 --cluster-ip 10.96.0.22 >/dev/null
svc_label mesh cold istio.io/use-waypoint cold-wp
check "Service cold bound to waypoint cold-wp, which has no pod: refused" \
	fails app_client cli 10.96.0.22 80 "cold-$E2E_ID"
check "... not_ready counted" at_least node1 warren_waypoint_refused_total 'waypoint="mesh/cold-wp",reason="not_ready"' 1
svc_label mesh cold istio.io/use-waypoint none
check "istio.io/use-waypoint=none on the Service: cli -> cold works again" app_client cli 10.96.0.22 80 "none-$E2E_ID"

# --- 3. a bound Service goes to the waypoint's 15008 ---------------------------
# A stand-in listener on wp:15008 records who connects (the real
# waypoint terminates HBONE there): the tunnel must come to it, not to srv.
bg ip netns exec "${POD_NETNS[wp]}" "$PYTHON" -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 15008)); s.listen(16)
while True:
    c, a = s.accept()
    open(sys.argv[1], "a").write("%s %d\n" % a); c.close()' "$T/wp.15008.log"
wait_listen "${POD_NETNS[wp]}" 15008 10 || not_ok "stand-in listener on wp:15008"
mesh service mesh web --selector app=srv --port 80:8080 --cluster-ip 10.96.0.20 >/dev/null
svc_label mesh web istio.io/use-waypoint waypoint
n0=$(wc -l <"$T/srv.app.log")
app_client cli 10.96.0.20 80 "web-$E2E_ID" >/dev/null 2>&1
check "cli -> Service web 10.96.0.20:80 (bound to mesh/waypoint) connects to wp:15008" \
	wait_for -t 5 test -s "$T/wp.15008.log"
check "... from node1 (the source tunnel, in cli's netns: cli's address)" grep -q "^$CLI " "$T/wp.15008.log"
check "... with :authority 10.96.0.20:80, expecting the waypoint's identity (log)" wait_for -t 5 grep -q \
	"HBONE to $WP:15008 (:authority 10.96.0.20:80, expecting spiffe://cluster.local/ns/mesh/sa/waypoint)" "$T/node1/tunnel.log"
[[ $(wc -l <"$T/srv.app.log") -eq $n0 ]] && ok "... and srv's app never saw it" || not_ok "srv's app never saw it"

# --- 4. no bypass at the destination ------------------------------------------
check "cli -> srv $SRV:8080 directly (srv is behind mesh/waypoint) is refused" \
	fails app_client cli "$SRV" 8080 "direct-$E2E_ID"
check "... node2 answered 401 naming the waypoint" wait_for -t 5 grep -q \
	"refused with 401: pod is bound to waypoint mesh/waypoint and spiffe://cluster.local/ns/mesh/sa/cli-sa is not its identity" \
	"$T/node2/tunnel.log"
check "... counted as bypass on node2" at_least node2 warren_waypoint_refused_total 'waypoint="mesh/waypoint",reason="bypass"' 1
check "cli -> srv2 directly (no waypoint) works" app_client cli "${POD_IP[srv2]}" 8080 "srv2-$E2E_ID"
add_policy '{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
  "metadata": {"name": "allow-cli", "namespace": "mesh"},
  "spec": {"selector": {"matchLabels": {"app": "srv"}}, "action": "ALLOW",
           "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/mesh/sa/cli-sa"]}}]}]}}'
check "an ALLOW policy naming cli's principal admits cli -> srv directly" app_client cli "$SRV" 8080 "allowed-$E2E_ID"
del_policy AuthorizationPolicy mesh allow-cli
check "without it, refused again" fails app_client cli "$SRV" 8080 "again-$E2E_ID"
pod_annotate mesh srv warren.io/waypoint-allow-direct true
check "annotation warren.io/waypoint-allow-direct=true on srv: cli -> srv directly works" \
	app_client cli "$SRV" 8080 "optout-$E2E_ID"

sanitizer_clean node1 node2
