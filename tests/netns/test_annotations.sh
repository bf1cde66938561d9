#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Per-pod annotations, as root on the real kernel (TAP):
#   ambient.istio.io/bypass-inbound-capture: "true"  Istio's "ingress mode":
#     the pod's outbound traffic is captured, its inbound plaintext is not
#     (for ingress controllers that take traffic from outside the mesh);
#     HBONE to its port 15008 still works;
#   istio.io/reroute-virtual-interfaces: "vmtap"     TCP arriving on these
#     interfaces (a KubeVirt VM's tap) is the pod's outbound traffic;
#   sidecar.istio.io/status                          a sidecar-injected pod
#     is never enrolled.
#
#   node1 netns                  <====== veth ======>  node2 netns
#     cni0 10.244.1.1/24                                 cni0 10.244.2.1/24
#      |-- cli (ns mesh, enrolled)                        |-- gw   (ns mesh, bypass-inbound-capture,
#      |-- ext (ns plain, no warren-cni in its chain)     |         echo :8080)
#      |-- vmhost (ns mesh, reroute vmtap)                |-- srv  (ns mesh, enrolled, echo :8080)
#      |     vmtap 10.78.0.1/30 <-> netns "vm"            |-- side (ns mesh, sidecar.istio.io/status)
#      |                       eth0 10.78.0.2/30          |-- odd  (ns mesh, bypass value "yes")
#      |-- badif (ns mesh, reroute "vm/tap": ADD fails)
#     warren-tunnel caDir=$T/ca                          warren-tunnel caDir=$T/ca
#
# Each claim is shown by the kernel (nft rules and counters, conntrack) and
# by traffic, plus CHECK, warrenctl and a tunnel restart (the mode is kept
# in the pod's state record). Env: B or WARREN_BUILD, KEEP_TMP=1.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need conntrack "$PYTHON"
need_built warren-cni warren-tunnel warrenctl

tunnel_conf_extra() { echo "caDir: $T/ca"; } # NODE
BYPASS=ambient.istio.io/bypass-inbound-capture
REROUTE=istio.io/reroute-virtual-interfaces
prerouting_rules() { # POD: the rules of our nat prerouting chain, one per line
	pexec "$1" nft -j list chain inet warren-nat prerouting | "$PYTHON" -c '
import json, sys
for i in json.load(sys.stdin)["nftables"]:
    if "rule" in i: print(i["rule"].get("comment", "?"))'
}
# Did a connection to PORT inside POD get redirected to REDIR (conntrack's
# reply tuple comes from the redirect port)? Pass "src=IP" to pick a peer.
redirected() { # POD PORT REDIR SRC
	pexec "$1" conntrack -L -p tcp --orig-src "$4" --orig-port-dst "$2" 2>/dev/null | grep "sport=$3 " >/dev/null
}
conntrack_to() { # POD PORT SRC: some connection from SRC to PORT is known
	pexec "$1" conntrack -L -p tcp --orig-src "$3" --orig-port-dst "$2" 2>/dev/null | grep "dport=$2 " >/dev/null
}
pod_json() { # NODE POD: the tunnel's /pods entry
	wctl "$1" -o json pods | "$PYTHON" -c '
import json, sys
for p in json.load(sys.stdin):
    if p["name"] == sys.argv[1]: print(json.dumps(p))' "$2"
}
capture_of() { pod_json "$1" "$2" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["captureInbound"])'; }

mtls_cluster_up
pod_add node2 mesh srv --label app=srv 2>"$T/err" || die "ADD srv: $(cat "$T/err")"
pod_add node1 mesh cli --label app=cli 2>"$T/err" || die "ADD cli: $(cat "$T/err")"
pod_add node1 plain ext --conflist "$T/node1.plain.conflist" 2>"$T/err" || die "ADD ext: $(cat "$T/err")"
app_server srv 8080 || die "echo server in srv"

# --- eBPF mode: both options are refused, clearly, leaving nothing ------------
# (docs/ebpf.md: the program tells directions apart by the arriving interface,
# which neither option fits); a sidecar and a non-boolean value as above.
if [[ $REDIRECT_MODE == ebpf ]]; then
	refused() { # NODE POD ANNOTATION: ADD fails with 102 naming it, nothing left
		local out rc
		pod_define "$1" mesh "$2" --annotation "$3" >/dev/null || { not_ok "define $2"; return; }
		out=$(chain "$1" ADD "$2" 2>&1); rc=$?
		((rc == 102)) && grep -q "annotation ${3%%=*}.*not supported with redirect \"ebpf\"" <<<"$out" &&
			ok "ebpf: ADD of $2 ($3) refused with code 102, naming the annotation and the mode" ||
			not_ok "ebpf: ADD of $2 ($3) refused, naming the annotation" "rc=$rc: $out"
		check "ebpf: ... nothing of ours in $2's netns (no rule, route, pin or link)" inpod_clean "$2"
		check "ebpf: ... nor in the tunnel" tunnel_forgot "$1" "${POD_ID[$2]}"
		chain "$1" DEL "$2" >/dev/null 2>&1
	}
	refused node2 gw "$BYPASS=true"
	refused node1 vmhost "$REROUTE=vmtap"
	pod_add node2 mesh odd --annotation "$BYPASS=yes" 2>"$T/err" || not_ok "ADD odd" "$(cat "$T/err")"
	capture_state odd >/dev/null && [[ $(capture_of node2 odd) == True ]] &&
		ok "ebpf: odd ($BYPASS: \"yes\"): ignored, as Istio does: enrolled with inbound captured" ||
		not_ok "ebpf: a non-boolean value is ignored" "$(capture_state odd)"
	pod_add node2 mesh off --annotation "$BYPASS=false" 2>"$T/err" && capture_state off >/dev/null &&
		ok "ebpf: $BYPASS: \"false\" is enrolled in the eBPF mode" || not_ok "ebpf: ADD off" "$(cat "$T/err")"
	pod_add node2 mesh side --annotation 'sidecar.istio.io/status={"containers":["istio-proxy"]}' 2>"$T/err" &&
		inpod_clean side && no_listeners side && tunnel_forgot node2 "${POD_ID[side]}" &&
		ok "ebpf: side (sidecar.istio.io/status): ADD succeeds, not enrolled" || not_ok "ebpf: side not enrolled" "$(cat "$T/err")"
	check "ebpf: cli -> srv:8080 round-trips beside the refused pods" app_client cli "${POD_IP[srv]}" 8080 "cli-srv-$E2E_ID"
	sanitizer_clean node1 node2
	exit
fi

# --- ingress mode: what is programmed ------------------------------------------
pod_add node2 mesh gw --annotation "$BYPASS=true" 2>"$T/err" &&
	ok "ADD gw ($BYPASS: \"true\") in the ambient namespace" || die "ADD gw: $(cat "$T/err")"
app_server gw 8080 || die "echo server in gw"
rules=$(prerouting_rules gw)
[[ -z $rules ]] && ok "gw: nat prerouting has no rule (no 15006 redirect, no probe accept)" ||
	not_ok "gw: nat prerouting has no rule" "$rules"
[[ $(prerouting_rules srv | tr '\n' ' ') == *warren:nat-pre-redirect-v4* ]] &&
	ok "srv (no annotation): nat prerouting redirects to 15006" ||
	not_ok "srv: nat prerouting redirects to 15006" "$(prerouting_rules srv)"
check "gw: the outbound redirect to 15001 is there" nft_counter gw warren-nat warren:nat-out-redirect-v4
for tag in mangle-pre-connmark-set mangle-out-mark-restore; do
	pexec gw nft list table inet warren-mangle | grep "warren:$tag" >/dev/null && ok "gw: mangle rule warren:$tag kept (the return path HBONE needs)" ||
		not_ok "gw: mangle rule warren:$tag kept" "$(pexec gw nft list table inet warren-mangle)"
done
ip -n "${POD_NETNS[gw]}" rule show | grep 'fwmark 0x111/0xfff lookup 100' >/dev/null &&
	ip -n "${POD_NETNS[gw]}" route show table 100 | grep 'local default dev lo' >/dev/null &&
	ok "gw: ip rule fwmark 0x111/0xfff lookup 100 and its local route are there" ||
	not_ok "gw: policy routing for the return path" "$(ip -n "${POD_NETNS[gw]}" rule show)"
[[ $(capture_of node2 gw) == False && $(capture_of node2 srv) == True ]] &&
	ok "warrenctl -o json pods: gw captureInbound false, srv true" ||
	not_ok "warrenctl pods shows the capture mode" "$(wctl node2 -o json pods)"
wctl node2 pods | awk '$2 == "gw" && $NF == "no" {f=1} END {exit !f}' &&
	ok "warrenctl pods: INBOUND column says no for gw" || not_ok "warrenctl pods: INBOUND column" "$(wctl node2 pods)"
check "CHECK passes for gw" chain node2 CHECK gw

# --- ingress mode: traffic -----------------------------------------------------
check "ext (outside the mesh) -> gw:8080 in plaintext round-trips" app_client ext "${POD_IP[gw]}" 8080 "ext-gw-$E2E_ID"
[[ $(last_peer gw) == "${POD_IP[ext]}" ]] && ok "... gw's app sees ext's address" ||
	not_ok "gw's app sees ext's address" "$(tail -n 2 "$T/gw.app.log")"
if conntrack_to gw 8080 "${POD_IP[ext]}" && ! redirected gw 8080 15006 "${POD_IP[ext]}"; then
	ok "conntrack in gw: ext's connection went straight to :8080, not to the tunnel's :15006"
else
	not_ok "conntrack in gw: not redirected" "$(pexec gw conntrack -L -p tcp 2>/dev/null)"
fi
check "ext -> srv:8080 (no annotation) round-trips" app_client ext "${POD_IP[srv]}" 8080 "ext-srv-$E2E_ID"
check "conntrack in srv: the same traffic to a pod without the annotation is redirected to :15006" \
	redirected srv 8080 15006 "${POD_IP[ext]}"

c0=$(nft_counter gw warren-nat warren:nat-out-redirect-v4)
check "gw -> srv:8080 round-trips" app_client gw "${POD_IP[srv]}" 8080 "gw-srv-$E2E_ID"
c1=$(nft_counter gw warren-nat warren:nat-out-redirect-v4)
((c1 > c0)) && redirected gw 8080 15001 "${POD_IP[gw]}" &&
	ok "gw's outbound is captured: its redirect counter moved ($c0 -> $c1), conntrack shows :15001" ||
	not_ok "gw's outbound is captured" "counter $c0 -> $c1; $(pexec gw conntrack -L -p tcp 2>/dev/null)"
[[ $(last_peer srv) == "${POD_IP[gw]}" ]] && ok "... srv sees gw's address" ||
	not_ok "srv sees gw's address" "$(tail -n 2 "$T/srv.app.log")"

check "cli (mesh) -> gw:8080 round-trips over HBONE" app_client cli "${POD_IP[gw]}" 8080 "cli-gw-$E2E_ID"
conntrack_to gw 15008 "${POD_IP[cli]}" && ok "conntrack in gw: cli's connection arrived on 15008 (HBONE)" ||
	not_ok "conntrack in gw: HBONE on 15008" "$(pexec gw conntrack -L -p tcp 2>/dev/null)"
[[ $(last_peer gw) == "${POD_IP[cli]}" ]] && ok "... gw's app sees cli's address (the kept return path works)" ||
	not_ok "gw's app sees cli's address" "$(tail -n 2 "$T/gw.app.log")"

# --- CHECK knows the shape -----------------------------------------------------
pexec gw nft add rule inet warren-nat prerouting meta nfproto ipv4 tcp dport != 15008 counter redirect to :15006 \
	comment '"warren:nat-pre-redirect-v4"'
out=$(chain node2 CHECK gw 2>&1); rc=$?
((rc != 0)) && grep -q "inbound capture bypassed" <<<"$out" &&
	ok "CHECK fails when an inbound redirect appears in gw, naming the bypass (rc $rc)" ||
	not_ok "CHECK fails on an inbound redirect in an ingress-mode pod" "rc=$rc: $out"
h=$(pexec gw nft -a list chain inet warren-nat prerouting | awk '/nat-pre-redirect-v4/ {print $NF}')
pexec gw nft delete rule inet warren-nat prerouting handle "$h"
check "CHECK passes again once it is gone" chain node2 CHECK gw

# --- the mode survives a tunnel restart ----------------------------------------
tunnel_stop node2
tunnel_start node2 2>/dev/null || die "warren-tunnel on node2 did not come back"
[[ $(capture_of node2 gw) == False ]] && ok "after a tunnel restart gw is re-adopted with captureInbound false" ||
	not_ok "re-adopted gw keeps its mode" "$(pod_json node2 gw)"
check "CHECK still passes for gw after the restart" chain node2 CHECK gw
check "ext -> gw:8080 still works after the restart" app_client ext "${POD_IP[gw]}" 8080 "ext-gw2-$E2E_ID"
check "cli -> gw:8080 over HBONE after the restart" app_client cli "${POD_IP[gw]}" 8080 "cli-gw2-$E2E_ID"

# --- a value that is no boolean, and a sidecar ---------------------------------
pod_add node2 mesh odd --annotation "$BYPASS=yes" 2>"$T/err" || not_ok "ADD odd" "$(cat "$T/err")"
[[ $(prerouting_rules odd | tr '\n' ' ') == *warren:nat-pre-redirect-v4* && $(capture_of node2 odd) == True ]] &&
	ok "odd ($BYPASS: \"yes\"): ignored, as Istio does: inbound is captured" ||
	not_ok "a non-boolean value is ignored" "$(prerouting_rules odd)"
grep -q "annotation $BYPASS=\"yes\" is not true or false" "$T/node2/tunnel.log" &&
	ok "... and the tunnel's log says why" || not_ok "the tunnel logs the bad value" "$(tail -n 5 "$T/node2/tunnel.log")"
pod_add node2 mesh side --annotation 'sidecar.istio.io/status={"containers":["istio-proxy"]}' 2>"$T/err" &&
	ok "ADD side (sidecar.istio.io/status) succeeds" || not_ok "ADD side" "$(cat "$T/err")"
if inpod_clean side && no_listeners side && tunnel_forgot node2 "${POD_ID[side]}"; then
	ok "side: not enrolled (no rules, no listeners, not listed): a sidecar pod is never captured twice"
else
	not_ok "side is not enrolled" "$(pexec side nft list tables)"
fi
grep -q 'pod mesh/side: not enrolled (pod has a sidecar (annotation sidecar.istio.io/status))' "$T/node2/cni.log" &&
	ok "... the plugin's log gives the reason" || not_ok "the plugin logs why side is not enrolled" "$(tail -n 3 "$T/node2/cni.log")"

# --- virtual interfaces: a VM inside a pod --------------------------------------
pod_add node1 mesh vmhost --annotation "$REROUTE=vmtap" 2>"$T/err" &&
	ok "ADD vmhost ($REROUTE: vmtap)" || die "ADD vmhost: $(cat "$T/err")"
VMNS=wp-$E2E_ID-vm
vm() { ip netns exec "$VMNS" "$@"; }
ip netns add "$VMNS" && ip link add vmtap netns "${POD_NETNS[vmhost]}" type veth peer name eth0 netns "$VMNS" &&
	ip -n "${POD_NETNS[vmhost]}" addr add 10.78.0.1/30 dev vmtap && ip -n "${POD_NETNS[vmhost]}" link set vmtap up &&
	ip -n "$VMNS" link set lo up && ip -n "$VMNS" addr add 10.78.0.2/30 dev eth0 && ip -n "$VMNS" link set eth0 up &&
	ip -n "$VMNS" route add default via 10.78.0.1 || die "the VM's netns and tap"
[[ $(prerouting_rules vmhost | head -n 1) == warren:nat-pre-reroute-vmtap ]] &&
	ok "vmhost: the reroute of vmtap is the first rule of nat prerouting" ||
	not_ok "vmhost: reroute rule first" "$(prerouting_rules vmhost)"
wctl node1 -o json pods | "$PYTHON" -c '
import json, sys
p = [p for p in json.load(sys.stdin) if p["name"] == "vmhost"]
sys.exit(not (p and p[0]["rerouteInterfaces"] == ["vmtap"] and p[0]["captureInbound"]))' &&
	ok "warrenctl -o json pods: vmhost rerouteInterfaces [\"vmtap\"]" || not_ok "warrenctl shows the reroute" "$(pod_json node1 vmhost)"
check "CHECK passes for vmhost" chain node1 CHECK vmhost
c0=$(nft_counter vmhost warren-nat warren:nat-pre-reroute-vmtap)
check "the VM -> srv:8080 round-trips" vm timeout 20 "$PYTHON" "$APP" client "${POD_IP[srv]}" 8080 "vm-srv-$E2E_ID"
c1=$(nft_counter vmhost warren-nat warren:nat-pre-reroute-vmtap)
((c1 > c0)) && redirected vmhost 8080 15001 10.78.0.2 &&
	ok "vmhost: the VM's connection was taken to the tunnel's :15001 (counter $c0 -> $c1, conntrack)" ||
	not_ok "the VM's connection was rerouted" "counter $c0 -> $c1; $(pexec vmhost conntrack -L -p tcp 2>/dev/null)"
[[ $(last_peer srv) == "${POD_IP[vmhost]}" ]] && ok "... srv sees it come from vmhost's address" ||
	not_ok "srv sees vmhost's address" "$(tail -n 2 "$T/srv.app.log")"
check "... over HBONE: conntrack in srv has vmhost's connection to 15008" conntrack_to srv 15008 "${POD_IP[vmhost]}"

pod_define node1 mesh badif --annotation "$REROUTE=eth1,vm/tap" || die "define badif"
out=$(chain node1 ADD badif 2>&1); rc=$?
((rc != 0)) && grep -qF "annotation $REROUTE=\"eth1,vm/tap\": \"vm/tap\" is not a network interface name" <<<"$out" &&
	ok "ADD of badif ($REROUTE: eth1,vm/tap) fails, naming the annotation and the bad name (rc $rc)" ||
	not_ok "ADD with a bad interface name fails clearly" "rc=$rc: $out"
check "... and leaves nothing of ours in badif" inpod_clean badif
check "... nor in the tunnel" tunnel_forgot node1 "${POD_ID[badif]}"

# --- DEL -----------------------------------------------------------------------
chain node2 DEL gw >/dev/null 2>"$T/err" && ok "DEL gw" || not_ok "DEL gw" "$(cat "$T/err")"
check "after DEL: nothing of ours in gw's netns" inpod_clean gw
check "after DEL: the tunnel forgot gw" tunnel_forgot node2 "${POD_ID[gw]}"
sanitizer_clean node1 node2
