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
#   Service mesh/web 10.96.0.20:80 (http) -> srv:8081 (HTTP app), :7 -> srv:8080 (echo),
#     istio.io/use-waypoint=waypoint; warren-waypoint runs in wp
#   cli2 (ns mesh, sa other-sa) on node1: another principal
#   Service mesh/ghost 10.96.0.21:80 -> srv2, bound to a Gateway that does not exist
#   Service mesh/cold 10.96.0.22:80 -> srv2, bound to waypoint cold-wp, which has no pod
#   Service mesh/flaky 10.96.0.25:80 (http) -> srv, srv2 :8082 (only srv listens)
#   Service mesh/shop 10.96.0.23:80 (http), bound to waypoint, HTTPRoute mesh/shop to
#     Services web (srv:8081) and web-v2 10.96.0.24 (srv2:8081, the same HTTP app)
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
need openssl go "$PYTHON"
need_built warren-cni warren-tunnel warrenctl

eval "$(declare -f tunnel_conf_write | sed '1s/^tunnel_conf_write/lib_tunnel_conf_write/')"
tunnel_conf_write() { # NODE
	lib_tunnel_conf_write "$1"
	printf 'caDir: %s\nmeshReloadMs: 200\n' "$T/ca" >>"$T/$1/tunnel.yaml"
}
metric() { # NODE NAME LABEL-SUBSTRING: value (sum) or 0
	nexec "$1" curl -s --max-time 2 http://127.0.0.1:15020/metrics |
		awk -v n="$2" -v l="$3" 'index($0, n) == 1 && index($0, l) { s += $NF } END { print s + 0 }'
}
at_least() { local v; v=$(metric "$1" "$2" "$3"); ((v >= $4)); } # NODE NAME LABELS MIN
pod_annotate() { # NS NAME KEY VALUE
	mesh_py "[o['metadata'].setdefault('annotations', {}).__setitem__('$3', '$4') for o in objs if o['kind'] == 'Pod' and o['metadata']['namespace'] == '$1' and o['metadata']['name'] == '$2']"
}
access_log_has() { grep -F '"scope":"access"' "$T/$1/tunnel.out" | grep -F "$2" | grep -qF "$3"; } # NODE TEXT1 TEXT2

bash "$WARREN_ROOT/hack/gen-ca.sh" "$T/ca" 2>/dev/null || die "gen-ca.sh (mesh CA)"
topo_up >/dev/null 2>&1 || die "topology"
mesh ns mesh istio.io/dataplane-mode=ambient
tunnel_start node1 2>/dev/null || die "warren-tunnel on node1 not ready (see $T/node1/tunnel.out)"
tunnel_start node2 2>/dev/null || die "warren-tunnel on node2 not ready"

gateway mesh waypoint all
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

# --- 3. the waypoint -----------------------------------------------------------
# srv2 also serves HTTP on 8081 (a tiny app that logs "METHOD PATH BODYLEN
# SRC" per request); Service web's port 80 (named http) goes to it. Its
# answers carry x-conn (the connection's source port: which upstream
# connection served it); /drop closes without an answer, /code/N answers
# N, and an Upgrade: websocket request gets 101 and an echo of each frame.
HTTP_APP='import sys, time, http.server, base64, hashlib
log = sys.argv[2]
name = sys.argv[3] if len(sys.argv) > 3 else "srv"
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def ws(self):
        acc = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101); self.send_header("Upgrade", "websocket"); self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", acc); self.end_headers(); self.wfile.flush()
        open(log, "a").write("WS %s\n" % self.path)
        while True:
            h = self.rfile.read(2)
            if len(h) < 2: return
            n = h[1] & 127
            if n == 126: n = int.from_bytes(self.rfile.read(2), "big")
            mask = self.rfile.read(4); data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(n)))
            if h[0] & 15 == 8: self.wfile.write(bytes([0x88, 0])); return
            self.wfile.write(bytes([h[0], len(data)]) + data.upper()); self.wfile.flush()
    def any(self):
        if self.headers.get("Upgrade", "").lower() == "websocket": return self.ws()
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if not size:
                    while self.rfile.readline() not in (b"\r\n", b""): pass
                    break
                body += self.rfile.read(size); self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/slow"): time.sleep(3)
        open(log, "a").write("%s %s %d %s\n" % (self.command, self.path, len(body), self.client_address[0]))
        if self.path.startswith("/drop"): self.close_connection = True; return
        code = int(self.path[6:9]) if self.path.startswith("/code/") else 200
        extra = ""
        if self.path.startswith("/hdr"):
            extra = " env=%s added=%s drop=%s" % tuple(self.headers.get(h) for h in ("x-env", "x-added", "x-drop"))
        out = ("hello %s %d from %s%s\n" % (self.path, len(body), name, extra)).encode()
        self.send_response(code); self.send_header("Content-Length", str(len(out))); self.send_header("X-Secret", "s")
        self.send_header("X-Conn", str(self.client_address[1]))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = any
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()'
: >"$T/app.http.log"
bg ip netns exec "${POD_NETNS[srv]}" "$PYTHON" -c "$HTTP_APP" 8081 "$T/app.http.log"
wait_listen "${POD_NETNS[srv]}" 8081 10 || not_ok "HTTP app in srv"
pod_define node1 mesh cli2 --label app=cli2 || die "define cli2"
set_sa mesh cli2 other-sa
pod_cni_add cli2 2>"$T/err" || die "ADD cli2: $(cat "$T/err")"
# web's ports: 80 named http; 7 (echo), 81 (HTTP app) without a name:
# sniffed; 82 (HTTP app) named web-ui (no protocol) with appProtocol http;
# 83 (echo) named http-echo but with appProtocol tcp (appProtocol wins)
mesh service mesh web --selector app=srv --port 80:8081 --port 7:8080 --port 81:8081 --port 82:8081 --port 83:8080 \
	--cluster-ip 10.96.0.20 >/dev/null
mesh_py "
for o in objs:
    if o['kind'] == 'Service' and o['metadata']['name'] == 'web':
        ps = o['spec']['ports']
        ps[0]['name'] = 'http'; ps[3].update(name='web-ui', appProtocol='http'); ps[4].update(name='http-echo', appProtocol='tcp')
        for p in ps[1:3]: p.pop('name', None)"
svc_label mesh web istio.io/use-waypoint waypoint
# The waypoint's policies: a DENY on the Gateway (paths /admin*, hosts
# evil.*), an ALLOW on Service web (cli's principal for GET/POST, or anyone
# with the header x-token: letmein).
add_policy '{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
  "metadata": {"name": "deny-admin", "namespace": "mesh"},
  "spec": {"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "waypoint"}],
           "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]},
                                       {"to": [{"operation": {"hosts": ["evil.*"]}}]}]}}'
add_policy '{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
  "metadata": {"name": "allow-web", "namespace": "mesh"},
  "spec": {"targetRefs": [{"kind": "Service", "group": "", "name": "web"}],
           "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/mesh/sa/cli-sa"]}}],
                      "to": [{"operation": {"methods": ["GET", "POST", "HEAD"]}}]},
                     {"when": [{"key": "request.headers[x-token]", "values": ["letmein"]}]}]}}'
# srv2's own traffic (pod-addressed) is bound too: a workload waypoint
# (mesh/waypoint serves both, istio.io/waypoint-for: all)
mesh_py "[o['metadata']['labels'].__setitem__('istio.io/use-waypoint', 'waypoint') for o in objs if o['kind'] == 'Pod' and o['metadata']['name'] == 'srv2']"
# HTTPRoute: Service shop (10.96.0.23:80, bound to the waypoint) is routed
# to Service web (srv's app, "from srv") and Service web-v2 (the same app
# in srv2, "from srv2"): 90/10 under /split, v2 by header, path prefix,
# regex, query and method, v1 for the exact path /exact, /slow with a 1 s
# timeout, /hdr with header modifiers; nothing else.
: >"$T/app2.http.log"
bg ip netns exec "${POD_NETNS[srv2]}" "$PYTHON" -c "$HTTP_APP" 8081 "$T/app2.http.log" srv2
wait_listen "${POD_NETNS[srv2]}" 8081 10 || not_ok "HTTP app in srv2"
mesh service mesh web-v2 --selector app=srv2 --port 80:8081 --cluster-ip 10.96.0.24 >/dev/null
mesh service mesh shop --selector app=srv --port 80:8081 --cluster-ip 10.96.0.23 >/dev/null
mesh_py "[o['spec']['ports'][0].__setitem__('name', 'http') for o in objs if o['kind'] == 'Service' and o['metadata']['name'] in ('shop', 'web-v2')]"
svc_label mesh shop istio.io/use-waypoint waypoint
add_policy '{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
  "metadata": {"name": "shop", "namespace": "mesh"},
  "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "shop", "port": 80}],
           "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/split"}}],
                      "backendRefs": [{"name": "web", "port": 80, "weight": 90}, {"name": "web-v2", "port": 80, "weight": 10}]},
                     {"matches": [{"path": {"type": "PathPrefix", "value": "/split"}, "headers": [{"name": "x-version", "value": "v2"}]},
                                  {"path": {"type": "PathPrefix", "value": "/v2"}},
                                  {"path": {"type": "RegularExpression", "value": "/re/[0-9]+"}},
                                  {"path": {"type": "Exact", "value": "/q"}, "queryParams": [{"name": "tier", "value": "gold"}]},
                                  {"path": {"type": "PathPrefix", "value": "/m"}, "method": "POST"}],
                      "backendRefs": [{"name": "web-v2", "port": 80}]},
                     {"matches": [{"path": {"type": "Exact", "value": "/exact"}}],
                      "backendRefs": [{"name": "web", "port": 80}]},
                     {"matches": [{"path": {"type": "PathPrefix", "value": "/slow"}}], "timeouts": {"request": "1s"},
                      "backendRefs": [{"name": "web", "port": 80}]},
                     {"matches": [{"path": {"type": "PathPrefix", "value": "/hdr"}}], "backendRefs": [{"name": "web", "port": 80}],
                      "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-env", "value": "prod"}],
                                     "add": [{"name": "x-added", "value": "1"}], "remove": ["x-drop"]}},
                                  {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [{"name": "x-served-by", "value": "waypoint"}],
                                     "remove": ["x-secret"]}}]},
                     {"matches": [{"path": {"type": "Exact", "value": "/missing"}}], "backendRefs": [{"name": "nope", "port": 80}]}]}}'
# Service flaky 10.96.0.25:80 -> :8082 of pods labelled flaky=yes (srv and
# srv2), where only srv listens: every other endpoint refuses (retries)
: >"$T/app3.http.log"
bg ip netns exec "${POD_NETNS[srv]}" "$PYTHON" -c "$HTTP_APP" 8082 "$T/app3.http.log" srv
wait_listen "${POD_NETNS[srv]}" 8082 10 || not_ok "HTTP app on 8082 in srv"
mesh_py "[o['metadata']['labels'].__setitem__('flaky', 'yes') for o in objs if o['kind'] == 'Pod' and o['metadata']['name'] in ('srv', 'srv2')]"
mesh service mesh flaky --selector flaky=yes --port 80:8082 --cluster-ip 10.96.0.25 >/dev/null
mesh_py "[o['spec']['ports'][0].__setitem__('name', 'http') for o in objs if o['kind'] == 'Service' and o['metadata']['name'] == 'flaky']"
svc_label mesh flaky istio.io/use-waypoint waypoint
waypoint_run wp mesh waypoint --reload-ms 200 --admin "$T/wp.admin.sock" --log-level debug
check "warren-waypoint serves readiness on 15021 in wp" wait_for -t 10 waypoint_ready wp
rss_kib() { sed -n 's/^VmRSS:[^0-9]*\([0-9]*\) kB$/\1/p' "/proc/$1/status"; } # PID
# a sanitizer build's RSS (shadow memory, quarantine) says nothing of ours
ldd "$WARREN_BUILD/warren-waypoint" | grep -qE 'lib[at]san' && WP_SAN=1 || WP_SAN=
v=$(rss_kib "$WP_PID")
if [[ -n $WP_SAN ]]; then
	ok "warren-waypoint's RSS when ready ($v KiB) # SKIP sanitizer build"
else
	# The budget is 8 MiB; OpenSSL set up for mTLS and libcurl's libraries
	# (Kubernetes mode, warren-ca) take more by themselves (make bench
	# measures that bound), so this guards against growth beyond today's
	# figure (about 10.5 MiB), not the budget.
	((v > 0 && v <= 11776)) && ok "warren-waypoint's RSS when ready: $v KiB (<= 11.5 MiB)" || not_ok "waypoint idle RSS <= 11.5 MiB" "$v KiB"
fi
check "... as spiffe://cluster.local/ns/mesh/sa/waypoint, with both policies active" bash -c \
	"grep -q 'as spiffe://cluster.local/ns/mesh/sa/waypoint: HBONE on 0.0.0.0:15008' '$T/wp.log' && grep -q '2 policies (0 invalid)' '$T/wp.log'"
req() { # POD [curl args...]: "CODE BODY"
	local pod=$1; shift
	pexec "$pod" curl -s --max-time 5 -w ' %{http_code}' "$@" 2>/dev/null | tr -d '\n'
}
expect_req() { # WANT-CODE POD [curl args...]: the status is WANT-CODE
	local want=$1 got; shift
	got=$(req "$@")
	[[ ${got##* } == "$want" ]] || { echo "got: $got"; return 1; }
}
app_saw() { grep -qF "$1" "$T/app.http.log"; } # TEXT
n0=$(wc -l <"$T/app.http.log")
check "cli GET http://10.96.0.20/hello through the waypoint: 200 from srv's app" \
	expect_req 200 cli http://10.96.0.20/hello
check "... the app saw GET /hello" app_saw "GET /hello 0"
check "... the tunnel sent it to $WP:15008 with :authority 10.96.0.20:80, expecting the waypoint" \
	wait_for -t 5 grep -q "HBONE to $WP:15008 (:authority 10.96.0.20:80, expecting spiffe://cluster.local/ns/mesh/sa/waypoint)" "$T/node1/tunnel.log"
check "... and the waypoint sent it on to $SRV:8081 as itself, expecting srv's identity" \
	grep -q "upstream $SRV:8081 (expecting spiffe://cluster.local/ns/mesh/sa/srv-sa)" "$T/wp.log"
check "... the waypoint's access log: cli's principal, GET /hello, 200, by allow-web" bash -c \
	"grep -F '\"path\":\"/hello\"' '$T/wp.access' | grep -F '\"src.identity\":\"spiffe://cluster.local/ns/mesh/sa/cli-sa\"' | grep -F '\"response_code\":200' | grep -qF 'mesh/allow-web'"

# a path DENY on one keep-alive connection, between two allowed requests
out=$(pexec cli curl -s --max-time 5 -w '%{http_code} %{num_connects}\n' -o /dev/null \
	http://10.96.0.20/before -o /dev/null http://10.96.0.20/admin/secret -o /dev/null http://10.96.0.20/after)
[[ $(tr '\n' ' ' <<<"$out") == "200 1 403 0 200 0 " ]] &&
	ok "one connection: /before 200, /admin/secret 403, /after 200 (num_connects 1 0 0)" ||
	not_ok "one connection: 200, 403, 200 on the same connection" "$out"
check "... the 403's body is RBAC: access denied" bash -c \
	"[[ \$(ip netns exec ${POD_NETNS[cli]} curl -s --max-time 5 http://10.96.0.20/admin) == 'RBAC: access denied' ]]"
check "... the app never saw /admin" fails grep -q ' /admin' "$T/app.http.log"
check "... but saw /before and /after" bash -c "grep -q 'GET /before' '$T/app.http.log' && grep -q 'GET /after' '$T/app.http.log'"

# The table: method, host, header (when) and principal rules over real requests
table=(
	"200|cli|GET /t1|"
	"200|cli|POST /t2|-d x=1"
	"403|cli|DELETE /t3|-X DELETE"
	"200|cli|DELETE /t4|-X DELETE -H x-token:letmein"
	"403|cli|GET /t5 (Host evil.example)|-H Host:evil.example"
	"403|cli2|GET /t6 (principal other-sa)|"
	"200|cli2|GET /t7 (other-sa with the token)|-H x-token:letmein"
	"403|cli2|GET /t8 (wrong token)|-H x-token:nope"
	"403|cli|GET /admin (header does not lift a DENY)|-H x-token:letmein"
)
for row in "${table[@]}"; do
	IFS='|' read -r want pod what args <<<"$row"
	path=${what#* }; path=${path%% *}
	# shellcheck disable=SC2086
	check "table: $pod $what -> $want" expect_req "$want" "$pod" $args "http://10.96.0.20$path"
	if [[ $want == 403 ]]; then
		check "table: ... the app never saw $path" fails app_saw " $path "
	else
		check "table: ... the app saw $path" app_saw " $path "
	fi
done

# HTTPRoute over real requests (Service shop)
routed() { # WANT-CODE WANT-BACKEND|- [curl args...] URL-PATH
	local want=$1 be=$2 got; shift 2
	got=$(req cli "${@:1:$#-1}" "http://10.96.0.23${*: -1}")
	[[ ${got##* } == "$want" && ($be == - || $got == *"from $be "*) ]] || { echo "got: $got"; return 1; }
}
routes=(
	"200|srv2|header x-version: v2 under /split|-H x-version:v2|/split/h"
	"200|srv2|path prefix /v2|/v2/thing"
	"200|srv2|regex /re/[0-9]+ (whole path)|/re/123"
	"404|-|regex does not match /re/12a|/re/12a"
	"404|-|regex is anchored: /re/123/x|/re/123/x"
	"200|srv2|query tier=gold|/q?tier=gold"
	"404|-|query tier=silver|/q?tier=silver"
	"200|srv2|method POST /m|-d x=1|/m/1"
	"404|-|method GET /m|/m/1"
	"200|srv|exact /exact|/exact"
	"404|-|exact does not match /exact/more|/exact/more"
	"404|-|no rule matches /nothing (GAMMA: 404)|/nothing"
	"500|-|the rule's backend Service nope does not exist|/missing"
)
for row in "${routes[@]}"; do
	IFS='|' read -r want be what a1 a2 <<<"$row"
	# shellcheck disable=SC2086
	if [[ -n $a2 ]]; then args=($a1); p=$a2; else args=(); p=$a1; fi
	check "route: $what -> $want ${be/#-/}" routed "$want" "$be" "${args[@]}" "$p"
done
check "... the 404s and the 500 never reached an app" bash -c "! grep -qE ' /(nothing|re/12a|exact/more|missing)' '$T/app.http.log' '$T/app2.http.log'"
check "... the access log says why /missing got 500" bash -c \
	"grep -F '\"path\":\"/missing\"' '$T/wp.access' | grep -qF 'HTTPRoute mesh/shop: backend Service nope does not exist'"
check "... the access log names the route of a routed request" bash -c \
	"grep -F '\"path\":\"/v2/thing\"' '$T/wp.access' | grep -qF '\"route\":\"mesh/shop\"'"
check "... and says why a request got 404" bash -c \
	"grep -F '\"path\":\"/nothing\"' '$T/wp.access' | grep -qF 'no HTTPRoute rule of Service mesh/shop port 80 matches'"
# timeouts.request 1s on /slow, whose app answers after 3 s: 504 at ~1 s
out=$(pexec cli curl -s -o /dev/null --max-time 10 -w '%{http_code} %{time_total}' http://10.96.0.23/slow/1)
code=${out%% *} secs=${out#* }
[[ $code == 504 ]] && awk -v t="$secs" 'BEGIN { exit !(t >= 0.9 && t < 2.5) }' &&
	ok "route timeout 1s: a slow backend (3 s) gets 504 after ${secs}s" ||
	not_ok "route timeout: 504 after about 1 s" "$out"
check "... the access log says why (upstream request timeout)" bash -c \
	"grep -F '\"path\":\"/slow/1\"' '$T/wp.access' | grep -F '\"response_code\":504' | grep -qF 'upstream request timeout (1000 ms'"
check "... a request under the timeout passes (/exact, same route)" routed 200 srv /exact
# header modifiers on /hdr: the app sees x-env set, x-added added, x-drop
# removed; the client sees x-served-by set and the app's x-secret removed
out=$(pexec cli curl -s -D - --max-time 5 -H 'x-env: dev' -H 'x-drop: 1' http://10.96.0.23/hdr/1 | tr -d '\r')
[[ $out == *"env=prod added=1 drop=None"* ]] &&
	ok "RequestHeaderModifier: the app saw x-env: prod (set), x-added: 1, no x-drop" || not_ok "request header modifier" "$out"
grep -qi '^x-served-by: waypoint$' <<<"$out" && ! grep -qi '^x-secret:' <<<"$out" &&
	ok "ResponseHeaderModifier: x-served-by set, the app's x-secret removed" || not_ok "response header modifier" "$out"
out=$(pexec cli curl -s -D - -o /dev/null --max-time 5 http://10.96.0.23/exact | tr -d '\r')
grep -qi '^x-secret: s$' <<<"$out" && ok "... only on that rule: /exact keeps x-secret" || not_ok "x-secret on /exact" "$out"
# retries: flaky's srv2 endpoint refuses; a GET (idempotent, no body) that
# lands there goes again to the next endpoint, a POST does not
codes=""
for i in 1 2 3 4 5 6; do codes+="$(req cli http://10.96.0.25/get$i | awk '{print $NF}') "; done
[[ $codes == "200 200 200 200 200 200 " ]] && ok "GETs to Service flaky (one endpoint refuses): all 200 ($codes)" ||
	not_ok "GETs to flaky all 200 through retries" "$codes"
check "... the waypoint retried (log)" grep -q 'retry 1 of GET /get[0-9] to 10.96.0.25:80' "$T/wp.log"
# a refused CONNECT (srv2's tunnel cannot reach :8082) means the app never
# saw the request: retried whatever the method, as Istio's connect-failure
codes=""
for i in 1 2 3 4; do codes+="$(req cli -d x=1 http://10.96.0.25/post$i | awk '{print $NF}') "; done
[[ $codes == "200 200 200 200 " ]] && ok "POSTs to flaky: all 200, a refused CONNECT is retried whatever the method ($codes)" ||
	not_ok "POSTs to flaky all 200 through connect-failure retries" "$codes"
check "... the log says the CONNECT failed" grep -q 'retry 1 of POST /post[0-9] to 10.96.0.25:80: its CONNECT failed' "$T/wp.log"
# an app that takes the request and closes without an answer (/drop): a GET
# goes again (idempotent), twice, then 503; a POST is not retried (the app
# may have acted on it); a 503 answer is never retried (Istio >= 1.24)
expect_req 503 cli http://10.96.0.20/drop/get >/dev/null
check "GET /drop (the app closes without answering): 503 after 2 retries, the app saw it 3 times" \
	bash -c "(( \$(grep -c '^GET /drop/get ' '$T/app.http.log') == 3 ))"
expect_req 503 cli -d x=1 http://10.96.0.20/drop/post >/dev/null
check "POST /drop: 503, not retried (the app saw it once)" bash -c "(( \$(grep -c '^POST /drop/post ' '$T/app.http.log') == 1 ))"
check "a 503 answer from the app reaches the client" expect_req 503 cli http://10.96.0.20/code/503
check "... and is not retried (the app saw it once)" bash -c "(( \$(grep -c '^GET /code/503 ' '$T/app.http.log') == 1 ))"
# 90/10 over N requests on one keep-alive connection. srv2's count is
# Binomial(N, 0.1): mean N/10, sd sqrt(N * 0.09) = 9.5 for N = 1000; the
# check accepts mean +- 4 sd ([62, 138]), a false failure once in ~16000 runs.
SPLIT_PY='import http.client, sys
n = int(sys.argv[1]); c = http.client.HTTPConnection("10.96.0.23", 80, timeout=10); got = {}
for i in range(n):
    c.request("GET", "/split/%d" % i); r = c.getresponse(); b = r.read().decode()
    k = b.split()[-1] if r.status == 200 else "status-%d" % r.status
    got[k] = got.get(k, 0) + 1
print(" ".join("%s=%d" % kv for kv in sorted(got.items())))'
N=1000
out=$(pexec cli timeout 120 "$PYTHON" -c "$SPLIT_PY" $N)
v1=$(sed -n 's/.*srv=\([0-9]*\).*/\1/p' <<<"$out") v2=$(sed -n 's/.*srv2=\([0-9]*\).*/\1/p' <<<"$out")
if [[ -n $v1 && -n $v2 ]] && ((v1 + v2 == N && v2 >= 62 && v2 <= 138)); then
	ok "90/10 split over $N requests: srv $v1, srv2 $v2 (srv2 within 100 +- 38, 4 sd)"
else
	not_ok "90/10 split over $N requests: srv2 within [62, 138], all 200" "$out"
fi

wp_metric() { # LABEL-SUBSTRING...: sum of istio_requests_total series having them all
	pexec wp curl -s --max-time 2 http://127.0.0.1:15020/metrics | grep '^istio_requests_total{' |
		awk -v a="${1:-}" -v b="${2:-}" -v c="${3:-}" 'index($0, a) && index($0, b) && index($0, c) { s += $NF } END { print s + 0 }'
}
v=$(wp_metric 'reporter="waypoint"' 'source_principal="spiffe://cluster.local/ns/mesh/sa/cli-sa"' 'response_code="403"')
((v >= 4)) && ok "istio_requests_total{reporter=waypoint, cli's principal, response_code=403} counts the denials ($v)" ||
	not_ok "istio_requests_total counts cli's 403s" "$v; $(pexec wp curl -s http://127.0.0.1:15020/metrics | head -5)"
v=$(wp_metric 'destination_service="web.mesh.svc.cluster.local"' 'source_workload="cli2"' 'response_code="200"')
((v >= 1)) && ok "... and cli2's 200s, with the destination Service and the source workload ($v)" ||
	not_ok "istio_requests_total labels for cli2's 200s" "$v"
check "... a duration histogram per series" bash -c \
	"ip netns exec ${POD_NETNS[wp]} curl -s http://127.0.0.1:15020/metrics | grep -q '^istio_request_duration_milliseconds_bucket{reporter=\"waypoint\".*le=\"+Inf\"}'"

# HTTP/1.1 on the wire: pipelining, chunked, smuggling shapes
RAW_PY='import socket, sys
s = socket.create_connection(("10.96.0.20", 80), timeout=5)
s.sendall(sys.argv[1].encode().decode("unicode_escape").encode("latin-1"))
got = b""
try:
    while True:
        d = s.recv(65536)
        if not d: break
        got += d
        if got.count(b"HTTP/1.1 ") >= int(sys.argv[2]) and got.endswith(b"\n") and sys.argv[3] == "keep": break
except socket.timeout:
    pass
sys.stdout.write(got.decode("latin-1"))'
raw() { pexec cli timeout 10 "$PYTHON" -c "$RAW_PY" "$@"; } # REQUEST-ESCAPED NRESP keep|close
out=$(raw 'GET /p1 HTTP/1.1\r\nHost: web\r\n\r\nGET /p2 HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n' 2 close)
[[ $(grep -c '^HTTP/1.1 200' <<<"$out") == 2 && $out == *"hello /p1"*"hello /p2"* ]] &&
	ok "two pipelined requests in one write: two 200s, in order" || not_ok "pipelined requests" "$out"
out=$(raw 'POST /chunked HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n' 1 close)
[[ $out == *"hello /chunked 11"* ]] && ok "a chunked body reaches the app whole (11 bytes)" || not_ok "chunked body" "$out"
smuggle=(
	'CL.TE|POST /sm1 HTTP/1.1\r\nHost: web\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG'
	'TE.CL|POST /sm2 HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n'
	'CL.CL|POST /sm3 HTTP/1.1\r\nHost: web\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'
	'obs-fold TE|POST /sm4 HTTP/1.1\r\nHost: web\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n'
	'space before colon|POST /sm5 HTTP/1.1\r\nHost: web\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n'
	'bare LF|GET /sm6 HTTP/1.1\nHost: web\n\n'
	'NUL in a header|GET /sm7 HTTP/1.1\r\nHost: web\r\nX: a\x00b\r\n\r\n'
	'TE xchunked|POST /sm8 HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n'
)
for row in "${smuggle[@]}"; do
	name=${row%%|*}
	out=$(raw "${row#*|}" 1 close)
	[[ $out == "HTTP/1.1 400 "* && $out == *"connection: close"* ]] &&
		ok "smuggling shape $name: 400 and the connection closed" || not_ok "smuggling shape $name refused" "$out"
done
check "... the app saw none of them" fails grep -q ' /sm[0-9]' "$T/app.http.log"
out=$(raw 'POST /pp1 HTTP/1.1\r\nHost: web\r\nContent-Length: 3\r\n\r\nabcGET /admin/pp HTTP/1.1\r\nHost: web\r\n\r\nGET /pp2 HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n' 3 close)
[[ $(grep -o 'HTTP/1.1 [0-9]*' <<<"$out" | tr '\n' ' ') == "HTTP/1.1 200 HTTP/1.1 403 HTTP/1.1 200 " && $out == *"hello /pp1 3"*"RBAC: access denied"*"hello /pp2 0"* ]] &&
	ok "pipelined POST with a body, a denied GET and a GET in one write: 200, 403, 200 in order" ||
	not_ok "pipelined POST, denied GET, GET" "$out"

# Expect: 100-continue: the app's 100 reaches the client before it sends
# the body; a denied request gets its 403 at once (no 100) and is closed
CONT_PY='import socket, sys
s = socket.create_connection(("10.96.0.20", 80), timeout=3)
s.sendall(("POST %s HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n" % sys.argv[1]).encode())
got = b""
while b"\r\n\r\n" not in got:
    d = s.recv(4096)
    if not d: break
    got += d
print("first: " + got.split(b"\r\n")[0].decode())
if got.startswith(b"HTTP/1.1 100"):
    got = got[got.index(b"\r\n\r\n") + 4:]
    s.sendall(b"hello")
while True:
    d = s.recv(4096)
    if not d: break
    got += d
sys.stdout.write(got.decode("latin-1"))'
out=$(pexec cli timeout 10 "$PYTHON" -c "$CONT_PY" /cont)
[[ $out == "first: HTTP/1.1 100 Continue"* && $out == *"HTTP/1.1 200 "*"hello /cont 5"* ]] &&
	ok "Expect: 100-continue: the app's 100 Continue reaches the client, then the body, then 200" || not_ok "100-continue" "$out"
out=$(pexec cli timeout 10 "$PYTHON" -c "$CONT_PY" /admin/cont)
[[ $out == "first: HTTP/1.1 403 Forbidden"* && $out != *"100 Continue"* ]] &&
	ok "... a denied one gets 403 at once, no 100, and the body is never asked for" || not_ok "denied 100-continue" "$out"

# WebSocket: the 101 turns the stream into a byte relay (frames pass as they are)
WS_PY='import socket, os, base64, sys
s = socket.create_connection(("10.96.0.20", 80), timeout=5)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET /ws HTTP/1.1\r\nHost: web\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
got = b""
while b"\r\n\r\n" not in got: got += s.recv(4096)
head, rest = got.split(b"\r\n\r\n", 1)
print(head.split(b"\r\n")[0].decode())
for msg in (b"hello ws", b"second frame"):
    mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(msg)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(msg)))
    while len(rest) < 2 + len(msg): rest += s.recv(4096)
    print("echo: " + rest[2:2 + len(msg)].decode()); rest = rest[2 + len(msg):]
s.sendall(bytes([0x88, 0x80]) + os.urandom(4))
while len(rest) < 2:
    d = s.recv(4096)
    if not d: break
    rest += d
print("close: %s" % rest[:2].hex())'
out=$(pexec cli timeout 10 "$PYTHON" -c "$WS_PY")
[[ $out == "HTTP/1.1 101 "*"echo: HELLO WS"*"echo: SECOND FRAME"*"close: 8800"* ]] &&
	ok "WebSocket through the waypoint: 101, two frames echoed by the app, close handshake" || not_ok "WebSocket" "$out"
check "... the waypoint logged the 101" bash -c "grep -F '\"path\":\"/ws\"' '$T/wp.access' | grep -q '\"response_code\":101'"

# Upstream keep-alive: requests on one client connection, and the next
# client connection, reuse the parked HBONE stream to srv (one app
# connection: the same x-conn)
KA_PY='import http.client
seen = []
for conn in range(2):
    c = http.client.HTTPConnection("10.96.0.20", 80, timeout=5)
    for i in range(3):
        c.request("GET", "/ka%d/%d" % (conn, i)); r = c.getresponse(); r.read()
        seen.append("%d:%s" % (r.status, r.getheader("x-conn")))
    c.close()
print(" ".join(seen))'
up_metric() { pexec wp curl -s --max-time 2 http://127.0.0.1:15020/metrics | sed -n "s/^warren_waypoint_upstream_streams_total{reused=\"$1\"} //p"; }
r0=$(up_metric true) n0=$(up_metric false)
out=$(pexec cli timeout 20 "$PYTHON" -c "$KA_PY")
r1=$(up_metric true) n1=$(up_metric false)
read -ra ka <<<"$out"
if ((${#ka[@]} == 6)) && [[ ${ka[0]} == 200:* ]] && [[ $(printf '%s\n' "${ka[@]}" | sort -u | wc -l) == 1 ]]; then
	ok "upstream keep-alive: 6 requests over 2 client connections, one app connection ($out)"
else
	not_ok "upstream keep-alive: one app connection" "$out"
fi
((r1 - r0 >= 5 && n1 - n0 <= 1)) && ok "... warren_waypoint_upstream_streams_total: +$((r1 - r0)) reused, +$((n1 - n0)) new" ||
	not_ok "upstream stream counters" "reused $r0 -> $r1, new $n0 -> $n1"

# Memory: idle keep-alive client connections hold no buffer (each
# connection's four 16 KiB buffers live only while it has a request)
MEM_PY='import socket, sys
pid, n = sys.argv[1], int(sys.argv[2])
def rss():
    for l in open("/proc/%s/status" % pid):
        if l.startswith("VmRSS:"): return int(l.split()[1])
before, socks = rss(), []
for i in range(n):
    s = socket.create_connection(("10.96.0.20", 80), timeout=5)
    s.sendall(b"GET /idle/%d HTTP/1.1\r\nHost: web\r\n\r\n" % i)
    got = b""
    while not got.endswith(b" from srv\n"):
        d = s.recv(4096)
        if not d: sys.exit("closed after %d" % i)
        got += d
    socks.append(s)
after = rss()
print(before, after, (after - before) * 1024 // n)'
N=150
read -r b a per < <(pexec cli timeout 60 "$PYTHON" -c "$MEM_PY" "$WP_PID" $N)
if [[ -n $WP_SAN ]]; then
	ok "$N idle keep-alive client connections: $per bytes each # SKIP sanitizer build"
else
	[[ -n $per ]] && ((per <= 16384)) && ok "$N idle keep-alive client connections: waypoint RSS $b -> $a KiB, $per bytes each (<= 16 KiB)" ||
		not_ok "idle client connection memory <= 16 KiB" "$b -> $a KiB, per connection: $per"
fi

# istio_request_bytes / istio_response_bytes: a request answered 202 (its
# own series), head and body as on the wire
BREQ='POST /code/202 HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello'
breq=$(printf '%b' "$BREQ" | wc -c)
bresp=$(raw "$BREQ" 1 close | wc -c)
bytes_metric() { # NAME: its _sum for the 202 series
	pexec wp curl -s --max-time 2 http://127.0.0.1:15020/metrics | grep "^$1_sum{" | grep -F 'response_code="202"' | awk '{ s += $NF } END { print s + 0 }'
}
check "the access log has request_bytes $breq and response_bytes $bresp for POST /code/202" bash -c \
	"grep -F '\"path\":\"/code/202\"' '$T/wp.access' | grep -F '\"request_bytes\":$breq,' | grep -qF '\"response_bytes\":$bresp'"
v=$(bytes_metric istio_request_bytes) v2=$(bytes_metric istio_response_bytes)
[[ $v == "$breq" && $v2 == "$bresp" ]] && ok "istio_request_bytes_sum $v and istio_response_bytes_sum $v2 (reporter=waypoint, response_code=202)" ||
	not_ok "istio_request_bytes / istio_response_bytes sums" "request $v (want $breq), response $v2 (want $bresp)"
check "... with their buckets (le=\"1000\")" bash -c \
	"ip netns exec ${POD_NETNS[wp]} curl -s http://127.0.0.1:15020/metrics | grep -q '^istio_response_bytes_bucket{reporter=\"waypoint\".*response_code=\"202\".*le=\"1000\"} 1$'"

# A port not named http*: one L4 decision, then bytes. allow-web's rules
# all need HTTP attributes (methods, a header), which a TCP connection
# cannot match, so it is refused, as Envoy's network RBAC does.
check "Service web port 7 (p7, TCP) through the waypoint: refused (allow-web needs HTTP attributes)" \
	fails app_client cli 10.96.0.20 7 "tcp-$E2E_ID"
check "... a tcp access-log line at the waypoint says why" bash -c \
	"grep -F '\"protocol\":\"tcp\"' '$T/wp.access' | grep -F '\"authority\":\"10.96.0.20:7\"' | grep -qF 'ALLOW policies apply but none matched'"
# pod-addressed traffic to a workload bound to the waypoint
check "cli -> srv2 ${POD_IP[srv2]}:8080 (pod label use-waypoint=waypoint) round-trips through the waypoint" \
	app_client cli "${POD_IP[srv2]}" 8080 "wl-$E2E_ID"
check "... the tunnel sent it to the waypoint with :authority ${POD_IP[srv2]}:8080" wait_for -t 5 grep -q \
	"HBONE to $WP:15008 (:authority ${POD_IP[srv2]}:8080, expecting spiffe://cluster.local/ns/mesh/sa/waypoint)" "$T/node1/tunnel.log"
check "... the waypoint relayed it (tcp access-log line for ${POD_IP[srv2]}:8080)" bash -c \
	"grep -F '\"authority\":\"${POD_IP[srv2]}:8080\"' '$T/wp.access' | grep -qF '\"response_code\":0'"
tcp_metric() { # NAME LABEL-SUBSTRING: the sum of NAME's series having it
	pexec wp curl -s --max-time 2 http://127.0.0.1:15020/metrics | grep "^$1{" | grep -F "$2" | awk '{ s += $NF } END { print s + 0 }'
}
msg="wl-$E2E_ID"
wait_for -t 5 bash -c "(( \$(ip netns exec ${POD_NETNS[wp]} curl -s http://127.0.0.1:15020/metrics | grep -c '^istio_tcp_connections_closed_total{.*destination_workload=\"srv2\"') > 0 ))"
o=$(tcp_metric istio_tcp_connections_opened_total 'destination_workload="srv2"')
cl=$(tcp_metric istio_tcp_connections_closed_total 'destination_workload="srv2"')
rx=$(tcp_metric istio_tcp_received_bytes_total 'destination_workload="srv2"')
tx=$(tcp_metric istio_tcp_sent_bytes_total 'destination_workload="srv2"')
((o >= 1 && cl >= 1 && rx >= ${#msg} && tx >= ${#msg})) &&
	ok "TCP metrics for it: opened $o, closed $cl, received $rx and sent $tx bytes (>= ${#msg})" ||
	not_ok "istio_tcp_* for the pod-addressed relay" "opened $o closed $cl received $rx sent $tx"
check "... with request_protocol=\"tcp\" and no response_code" bash -c \
	"ip netns exec ${POD_NETNS[wp]} curl -s http://127.0.0.1:15020/metrics | grep '^istio_tcp_sent_bytes_total{' | grep -F 'request_protocol=\"tcp\"' | grep -vq response_code"
check "... and no istio_requests_total series for tcp" fails bash -c \
	"ip netns exec ${POD_NETNS[wp]} curl -s http://127.0.0.1:15020/metrics | grep '^istio_requests_total{' | grep -qF 'request_protocol=\"tcp\"'"

# Protocol detection: Service port appProtocol, then the name's prefix, else sniffing
check "web port 81 (no name): an HTTP request is sniffed as HTTP, 200 through the L7 path" \
	expect_req 200 cli http://10.96.0.20:81/sniffed
check "... the access log has it as http, GET /sniffed" bash -c \
	"grep -F '\"authority\":\"10.96.0.20:81\"' '$T/wp.access' | grep -F '\"protocol\":\"http\"' | grep -qF '\"path\":\"/sniffed\"'"
check "... and a denied path on it gets 403 (L7 policy applies to sniffed HTTP)" expect_req 403 cli http://10.96.0.20:81/admin/x
check "web port 82 (name web-ui, appProtocol http): HTTP, 200" expect_req 200 cli http://10.96.0.20:82/app-proto
check "web port 83 (name http-echo, appProtocol tcp): relayed as TCP, so refused by allow-web" \
	fails app_client cli 10.96.0.20 83 "ap-$E2E_ID"
check "... a tcp access-log line for 10.96.0.20:83 (not an HTTP 400)" bash -c \
	"grep -F '\"authority\":\"10.96.0.20:83\"' '$T/wp.access' | grep -qF '\"protocol\":\"tcp\"'"
# a client that sends nothing (a server-first protocol) on a sniffed port:
# decided as TCP after the bounded wait (1 s), then refused by L4 policy
SILENT_PY='import socket, time
t = time.monotonic(); s = socket.create_connection(("10.96.0.20", 7), timeout=8)
try: d = s.recv(100)
except socket.timeout: d = b"timeout"
print("%.1f %r" % (time.monotonic() - t, d))'
out=$(pexec cli timeout 10 "$PYTHON" -c "$SILENT_PY")
t=${out%% *}
[[ ${out#* } == "b''" ]] && awk -v t="$t" 'BEGIN { exit !(t >= 0.9 && t < 5) }' &&
	ok "a silent client on sniffed port 7: decided as TCP after the 1 s wait and closed by L4 policy ($out)" ||
	not_ok "silent client on a sniffed port" "$out"
# --- 3c. HTTP/2 (prior knowledge) and gRPC ------------------------------------
# grpcecho (tests/tools/grpcecho, grpc-go) in srv and srv2: gRPC on 9090 and
# plain HTTP/2 (h2c) on 8090. Service h2web 10.96.0.26 -> srv: port 80
# named http2 (-> 8090), 9090 named grpc, 81 without a name (-> 8090:
# sniffed); h2web-v2 10.96.0.27 the same in srv2. HTTPRoute h2 on h2web:80:
# /v2 to h2web-v2, /split 50/50, /hdr with header modifiers, /slow with a
# 1 s timeout, the rest to h2web. DENY on h2web for gRPC metadata x-md: deny.
GRPCECHO=$WARREN_BUILD/tests/grpcecho
GSRC=$WARREN_ROOT/tests/tools/grpcecho
if [[ ! -x $GRPCECHO || $GSRC/main.go -nt $GRPCECHO || $GSRC/go.sum -nt $GRPCECHO ]]; then
	(cd "$GSRC" && go build -o "$GRPCECHO" .) >"$T/gobuild.log" 2>&1 ||
		die "tests/tools/grpcecho builds: $(tail -n 5 "$T/gobuild.log")"
fi
: >"$T/g1.log"
: >"$T/g2.log"
bg ip netns exec "${POD_NETNS[srv]}" "$GRPCECHO" server -listen :9090 -http :8090 -name srv -log "$T/g1.log"
bg ip netns exec "${POD_NETNS[srv2]}" "$GRPCECHO" server -listen :9090 -http :8090 -name srv2 -log "$T/g2.log"
wait_listen "${POD_NETNS[srv]}" 8090 10 && wait_listen "${POD_NETNS[srv2]}" 9090 10 || not_ok "grpcecho in srv and srv2"
mesh service mesh h2web --selector app=srv --port 80:8090 --port 9090:9090 --port 81:8090 --cluster-ip 10.96.0.26 >/dev/null
mesh service mesh h2web-v2 --selector app=srv2 --port 80:8090 --port 9090:9090 --cluster-ip 10.96.0.27 >/dev/null
mesh_py "
for o in objs:
    if o['kind'] == 'Service' and o['metadata']['name'] in ('h2web', 'h2web-v2'):
        ps = o['spec']['ports']; ps[0]['name'] = 'http2'; ps[1]['name'] = 'grpc'
        if len(ps) > 2: ps[2].pop('name', None)"
svc_label mesh h2web istio.io/use-waypoint waypoint
add_policy '{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
  "metadata": {"name": "deny-md", "namespace": "mesh"},
  "spec": {"targetRefs": [{"kind": "Service", "group": "", "name": "h2web"}],
           "action": "DENY", "rules": [{"when": [{"key": "request.headers[x-md]", "values": ["deny"]}]}]}}'
add_policy '{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
  "metadata": {"name": "h2", "namespace": "mesh"},
  "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "h2web", "port": 80}],
           "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}], "backendRefs": [{"name": "h2web-v2", "port": 80}]},
                     {"matches": [{"path": {"type": "PathPrefix", "value": "/split"}}],
                      "backendRefs": [{"name": "h2web", "port": 80, "weight": 50}, {"name": "h2web-v2", "port": 80, "weight": 50}]},
                     {"matches": [{"path": {"type": "PathPrefix", "value": "/slow"}}], "timeouts": {"request": "1s"},
                      "backendRefs": [{"name": "h2web", "port": 80}]},
                     {"matches": [{"path": {"type": "PathPrefix", "value": "/hdr"}}], "backendRefs": [{"name": "h2web", "port": 80}],
                      "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-env", "value": "prod"}],
                                     "add": [{"name": "X-Added", "value": "1"}], "remove": ["x-drop"]}},
                                  {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [{"name": "x-served-by", "value": "waypoint"}],
                                     "remove": ["x-secret"]}}]},
                     {"backendRefs": [{"name": "h2web", "port": 80}]}]}}'
h2() { pexec cli curl -s --http2-prior-knowledge --max-time 8 "$@"; }
check "the model with Service h2web and HTTPRoute mesh/h2 is in use" wait_for -t 10 bash -c \
	"'$WARREN_BUILD/warrenctl' --socket '$T/wp.admin.sock' waypoint routes | grep -q 'mesh/h2 .*mesh/h2web:80'"
out=$(h2 -w ' %{http_code} %{http_version}' http://10.96.0.26/hello)
[[ $out == "hello /hello 0 from srv"*" 200 2" ]] && ok "h2c GET through the waypoint: 200 over HTTP/2 from srv's app ($out)" ||
	not_ok "h2c GET through the waypoint" "$out"
check "... the app saw GET /hello over HTTP/2" grep -q '^GET /hello 0 HTTP/2.0$' "$T/g1.log"
check "... the waypoint sent it on over HTTP/2 to $SRV:8090 as itself" \
	grep -q "HTTP/2 request of spiffe://cluster.local/ns/mesh/sa/cli-sa to 10.96.0.26:80: upstream $SRV:8090 (expecting spiffe://cluster.local/ns/mesh/sa/srv-sa)" "$T/wp.log"
head -c 300000 /dev/urandom >"$T/body.bin"
out=$(pexec cli curl -s --http2-prior-knowledge --max-time 10 --data-binary @"$T/body.bin" -w ' %{http_code}' http://10.96.0.26/post)
[[ $out == "hello /post 300000 from srv"*" 200" ]] && ok "h2c POST of a 300000-byte body (flow control both ways): the app got all of it" ||
	not_ok "h2c POST with a large body" "$out"
out=$(h2 -o /dev/null -w '%{http_code} %{size_download}' http://10.96.0.26/big/2000000)
[[ $out == "200 2000000" ]] && ok "h2c GET of a 2000000-byte response: all of it arrives" || not_ok "h2c large response" "$out"
# (curl 7.88 sends nothing for a second URL on a prior-knowledge connection:
# grpcecho h2get, Go's HTTP/2 client, for several streams on one connection)
h2get() { pexec cli timeout 20 "$GRPCECHO" h2get "$@"; }
out=$(h2get http://10.96.0.26/a1 http://10.96.0.26/admin/x http://10.96.0.26/a2 | tr '\n' '|')
[[ $out == "200 hello /a1 0 from srv|403 RBAC: access denied|200 hello /a2 0 from srv|CONNS 1|" ]] &&
	ok "one HTTP/2 connection: /a1 200, /admin/x 403 RBAC: access denied (DENY), /a2 200 on later streams" ||
	not_ok "h2: 200, 403, 200 on one connection" "$out"
check "... the 403's body is RBAC: access denied" bash -c "[[ \$(ip netns exec ${POD_NETNS[cli]} curl -s --http2-prior-knowledge --max-time 5 http://10.96.0.26/admin/y) == 'RBAC: access denied' ]]"
check "... the app never saw /admin" fails grep -q ' /admin' "$T/g1.log"
# parallel streams on one connection (curl multiplexes): all answered
# shellcheck disable=SC2046
out=$(h2get -parallel $(printf 'http://10.96.0.26/par/%d ' {1..40}) | sed 's/ hello .* from / /' | sort | uniq -c | tr -s ' ' | tr '\n' '|')
[[ $out == " 40 200 srv| 1 CONNS 1|" ]] && ok "40 requests as concurrent streams on one connection: 40 x 200" ||
	not_ok "40 parallel h2 streams" "$out"
# the waypoint multiplexes: concurrent client streams, from two client
# connections, share one upstream HTTP/2 session (one app connection)
r0=$(pexec wp curl -s --max-time 2 http://127.0.0.1:15020/metrics | sed -n 's/^warren_waypoint_upstream_streams_total{reused="true"} //p')
# shellcheck disable=SC2046
out=$( { h2get -parallel $(printf 'http://10.96.0.26/conn/a%d ' {1..20}) & h2get -parallel $(printf 'http://10.96.0.26/conn/b%d ' {1..20}); wait; } |
	grep -v '^CONNS' | sort | uniq -c | tr -s ' ' | tr '\n' '|')
r1=$(pexec wp curl -s --max-time 2 http://127.0.0.1:15020/metrics | sed -n 's/^warren_waypoint_upstream_streams_total{reused="true"} //p')
[[ $out =~ ^\ 40\ 200\ conn\ [0-9.]+:[0-9]+\|$ ]] && ((r1 - r0 >= 39)) &&
	ok "40 concurrent streams from 2 client connections: one upstream session (app connection), +$((r1 - r0)) reused" ||
	not_ok "upstream HTTP/2 multiplexing" "$out (reused $r0 -> $r1)"
# routes
check "h2 route /v2 -> h2web-v2 (srv2)" bash -c "ip netns exec ${POD_NETNS[cli]} curl -s --http2-prior-knowledge --max-time 5 http://10.96.0.26/v2/x | grep -q 'from srv2'"
# shellcheck disable=SC2046
out=$(h2get $(printf 'http://10.96.0.26/split/%d ' {1..100}) | grep '^200 ' | awk '{ print $NF }' | sort | uniq -c | tr -s ' ' | tr '\n' ' ')
n1=$(awk '{ for (i = 1; i < NF; i++) if ($(i + 1) == "srv") print $i }' <<<"$out")
n2=$(awk '{ for (i = 1; i < NF; i++) if ($(i + 1) == "srv2") print $i }' <<<"$out")
# Binomial(100, 0.5): sd 5; [25, 75] is +-5 sd
[[ -n $n1 && -n $n2 ]] && ((n1 + n2 == 100 && n2 >= 25 && n2 <= 75)) &&
	ok "h2 50/50 split over 100 requests on one connection: srv $n1, srv2 $n2 (within [25, 75])" ||
	not_ok "h2 weighted split" "$out"
out=$(h2 -D - -H 'x-env: dev' -H 'x-drop: 1' http://10.96.0.26/hdr/1 | tr -d '\r')
[[ $out == *"env=prod added=1 drop=None"* ]] && grep -qi '^x-served-by: waypoint$' <<<"$out" && ! grep -qi '^x-secret:' <<<"$out" &&
	ok "h2 header modifiers: the app saw x-env: prod, x-added: 1, no x-drop; x-served-by set, x-secret removed" ||
	not_ok "h2 header modifiers" "$out"
out=$(h2 -o /dev/null --max-time 10 -w '%{http_code} %{time_total}' http://10.96.0.26/slow/1)
code=${out%% *} secs=${out#* }
[[ $code == 504 ]] && awk -v t="$secs" 'BEGIN { exit !(t >= 0.9 && t < 2.5) }' &&
	ok "h2 route timeout 1s: 504 after ${secs}s" || not_ok "h2 route timeout" "$out"
out=$(h2get http://10.96.0.26/trailer/1 | tr '\n' '|')
[[ $out == "200 hello /trailer/1 0 from srv|TRAILER x-app-trailer=yes|CONNS 1|" ]] && ok "h2 response trailers pass through (x-app-trailer: yes)" ||
	not_ok "h2 response trailers" "$out"
out=$(h2get -post 1000 -T x-req-trailer:yes http://10.96.0.26/rtrailer | tr '\n' '|')
[[ $out == "200 hello /rtrailer 1000 from srv trailer=yes|CONNS 1|" ]] && ok "h2 request trailers pass through (the app saw x-req-trailer: yes)" ||
	not_ok "h2 request trailers" "$out"
# RST_STREAM both ways: the app resets before its answer (a GET goes again,
# twice, then 503), or after it began (the client's stream is reset with
# the app's code); the client resets (the app's stream is cancelled)
out=$(h2get http://10.96.0.26/reset/get | head -1)
[[ $out == "503 "* ]] && ok "the app resets a GET's stream before answering: 503 after 2 retries" || not_ok "h2 upstream reset before a response" "$out"
check "... the app saw it 3 times" bash -c "(( \$(grep -c '^GET /reset/get ' '$T/g1.log') == 3 ))"
out=$(h2get -post 10 http://10.96.0.26/reset/post | head -1)
[[ $out == "503 "* ]] && (( $(grep -c '^POST /reset/post ' "$T/g1.log") == 1 )) &&
	ok "... a POST is not retried after the app saw it: 503, the app saw it once" || not_ok "h2 POST reset not retried" "$out"
out=$(h2get http://10.96.0.26/reset-mid/1 | head -1)
[[ $out == "200 partial ERR "*"INTERNAL_ERROR"* ]] && ok "the app resets after its answer began: the client's stream is reset with its code ($out)" ||
	not_ok "h2 upstream reset mid-response" "$out"
check "... the access log says the app reset it mid-response" bash -c \
	"grep -F '\"path\":\"/reset-mid/1\"' '$T/wp.access' | grep -qF 'upstream reset the stream mid-response (INTERNAL_ERROR'"
out=$(h2get -timeout 500ms http://10.96.0.26:81/slow/c1 http://10.96.0.26:81/after-c1 | head -1)
[[ $out == "ERR "* ]] && ok "the client resets its stream (a 0.5 s timeout): ${out:0:60}" || not_ok "h2 client reset" "$out"
check "... the app's stream was cancelled too" wait_for -t 5 grep -q '^CANCELLED /slow/c1$' "$T/g1.log"
check "... the access log says the client reset it (CANCEL)" wait_for -t 5 bash -c \
	"grep -F '\"path\":\"/slow/c1\"' '$T/wp.access' | grep -qF 'stream reset (CANCEL)'"
# Upgrade: h2c from HTTP/1.1 would turn the stream into bytes past the
# policy of every later request: the app is not offered it
out=$(pexec cli curl -s --http2 --max-time 5 -w ' %{http_version}' http://10.96.0.26/upgrade/1)
[[ $out == *'HTTP/1.1 upgrade=""'*" 1.1" ]] && ok "curl --http2 (Upgrade: h2c over HTTP/1.1): the app sees no Upgrade, the answer stays HTTP/1.1" ||
	not_ok "h2c upgrade stripped" "$out"
check "a port without a name (h2web:81) is sniffed as HTTP/2 (preface) and served" bash -c \
	"ip netns exec ${POD_NETNS[cli]} curl -s --http2-prior-knowledge --max-time 5 http://10.96.0.26:81/sniffed | grep -q 'hello /sniffed 0 from srv'"
# gRPC
gc() { pexec cli timeout 15 "$GRPCECHO" client "$@"; }
out=$(gc -addr 10.96.0.26:9090 -call unary hi)
[[ $out == "OK hi from srv" ]] && ok "gRPC unary call through the waypoint: $out" || not_ok "gRPC unary" "$out"
out=$(gc -addr 10.96.0.26:9090 -call stream 4:s1 | tr '\n' '|')
[[ $out == "OK s1 #1 from srv|OK s1 #2 from srv|OK s1 #3 from srv|OK s1 #4 from srv|TRAILER x-trailer=done-s1|" ]] &&
	ok "gRPC server-streaming call: 4 messages and the trailer x-trailer intact" || not_ok "gRPC server streaming" "$out"
out=$(gc -addr 10.96.0.26:9090 -call unary notfound-1)
[[ $out == "ERR NotFound no such thing: notfound-1" ]] && ok "gRPC error status intact: $out" || not_ok "gRPC NOT_FOUND" "$out"
out=$(gc -addr 10.96.0.26:9090 -call unary -md deny denied-1)
[[ $out == "ERR PermissionDenied RBAC: access denied" ]] && ok "gRPC call denied by policy (x-md: deny): $out" || not_ok "gRPC denied" "$out"
check "... the app never saw it" fails grep -q 'denied-1' "$T/g1.log"
out=$(gc -addr 10.96.0.26:9090 -call unary -md hello mdcheck)
[[ $out == "OK mdcheck from srv"*"HEADER x-echo-md=hello" ]] && ok "gRPC metadata to the app and response headers back" || not_ok "gRPC metadata" "$out"
out=$(gc -addr 10.96.0.26:9090 -call unary flaky-1)
[[ $out == "OK flaky-1 from srv" ]] && ok "gRPC UNAVAILABLE from the app is retried (Istio's default retryOn unavailable): $out" ||
	not_ok "gRPC retry on unavailable" "$out"
check "... the app saw it twice, the waypoint logged the retry" bash -c \
	"(( \$(grep -c '^Unary flaky-1$' '$T/g1.log') == 2 )) && grep -q 'retry 1 of POST /warren.test.Echo/Unary to 10.96.0.26:9090: grpc-status 14' '$T/wp.log'"
# access log and metrics
check "access log: the h2 403 (protocol http2, /admin/x, response_code 403)" bash -c \
	"grep -F '\"path\":\"/admin/x\"' '$T/wp.access' | grep -F '\"protocol\":\"http2\"' | grep -qF '\"response_code\":403'"
check "access log: the gRPC NOT_FOUND call (POST /warren.test.Echo/Unary, 200, grpc_status 5)" bash -c \
	"grep -F '\"path\":\"/warren.test.Echo/Unary\"' '$T/wp.access' | grep -F '\"response_code\":200' | grep -qF '\"grpc_status\":\"5\"'"
check "access log: one line per stream (40 for the parallel requests)" bash -c "(( \$(grep -c '\"path\":\"/par/' '$T/wp.access') == 40 ))"
check "istio_requests_total: gRPC with request_protocol=grpc, grpc_response_status=5, destination h2web" bash -c \
	"ip netns exec ${POD_NETNS[wp]} curl -s http://127.0.0.1:15020/metrics | grep '^istio_requests_total{' | grep -F 'destination_service_name=\"h2web\"' | grep -F 'request_protocol=\"grpc\"' | grep -F 'response_code=\"200\"' | grep -qF 'grpc_response_status=\"5\"'"
check "... the denied gRPC call: response_code 403, grpc_response_status 7" bash -c \
	"ip netns exec ${POD_NETNS[wp]} curl -s http://127.0.0.1:15020/metrics | grep '^istio_requests_total{' | grep -F 'request_protocol=\"grpc\"' | grep -F 'response_code=\"403\"' | grep -qF 'grpc_response_status=\"7\"'"
check "... h2 requests: request_protocol=http, response_code 403 for /admin/x, no grpc label" bash -c \
	"ip netns exec ${POD_NETNS[wp]} curl -s http://127.0.0.1:15020/metrics | grep '^istio_requests_total{' | grep -F 'destination_service_name=\"h2web\"' | grep -F 'request_protocol=\"http\"' | grep -F 'response_code=\"403\"' | grep -vq grpc_response_status"
# the waypoint's HTTP/2 server: its SETTINGS (100 streams), and a bad frame
# (DATA on stream 0) gets GOAWAY PROTOCOL_ERROR and the connection closes
H2RAW_PY='import socket, struct, sys
s = socket.create_connection(("10.96.0.26", 80), timeout=5)
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(9)[:3] + bytes([4, 0]) + bytes(4))
buf, frames = b"", []
def more():
    global buf
    d = s.recv(65536)
    if not d: return False
    buf += d; return True
settings = None
while settings is None and more():
    while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
        n, t = int.from_bytes(buf[:3], "big"), buf[3]
        if t == 4 and not buf[4] & 1: settings = {struct.unpack(">H", buf[9+i:11+i])[0]: struct.unpack(">I", buf[11+i:15+i])[0] for i in range(0, n, 6)}
        buf = buf[9 + n:]
s.sendall(bytes([0, 0, 2, 0, 0, 0, 0, 0, 0]) + b"xx")
goaway = None
while more():
    pass
while len(buf) >= 9:
    n, t = int.from_bytes(buf[:3], "big"), buf[3]
    if t == 7: goaway = struct.unpack(">I", buf[13:17])[0]
    buf = buf[9 + n:]
print("max_streams=%s header_list=%s goaway=%s closed" % (settings.get(3), settings.get(6), goaway))'
out=$(pexec cli timeout 10 "$PYTHON" -c "$H2RAW_PY" 2>&1)
[[ $out == "max_streams=100 header_list=16384 goaway=1 closed" ]] &&
	ok "the waypoint's HTTP/2 SETTINGS: 100 streams, 16384-byte header lists; DATA on stream 0 gets GOAWAY PROTOCOL_ERROR and the close" ||
	not_ok "HTTP/2 settings and GOAWAY on a bad frame" "$out"
big=$(printf 'x%.0s' {1..17000})
out=$(h2 -o /dev/null -w '%{http_code}' -H "x-big: $big" http://10.96.0.26/bighdr)
[[ $out == 431 ]] && ok "a request header list over 16384 bytes: 431" || not_ok "h2 header list limit" "$out"
check "... and the app never saw it" fails grep -q '/bighdr' "$T/g1.log"

# --- 3b. the model follows the mesh file, without a restart -------------------
wp_metric() { pexec wp curl -s --max-time 2 http://127.0.0.1:15020/metrics | awk -v n="$1" '$1 == n { print $2 }'; }
gen0=$(wp_metric warren_waypoint_model_generation)
check "GET /live/1 to Service web: 200 before any policy names it" expect_req 200 cli http://10.96.0.20/live/1
add_policy '{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
  "metadata": {"name": "deny-live", "namespace": "mesh"},
  "spec": {"targetRefs": [{"kind": "Service", "group": "", "name": "web"}],
           "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/live/*"]}}]}]}}'
check "a DENY on /live/* added to the mesh file: 403 without a restart" \
	wait_for -t 10 expect_req 403 cli http://10.96.0.20/live/2
check "... the same waypoint process (pid $WP_PID), a newer model generation" \
	bash -c "kill -0 $WP_PID && (( \$(ip netns exec ${POD_NETNS[wp]} curl -s http://127.0.0.1:15020/metrics | awk '\$1 == \"warren_waypoint_model_generation\" { print \$2 }') > $gen0 ))"
check "... other paths still pass" expect_req 200 cli http://10.96.0.20/hello
del_policy AuthorizationPolicy mesh deny-live
check "the DENY deleted: /live/3 allowed again" wait_for -t 10 expect_req 200 cli http://10.96.0.20/live/3
# A kept-alive connection takes a new model at its next request: one
# request, then the policy, then a second request on the same socket.
rm -f "$T/ka.go" "$T/ka.out"
KA_PY='import http.client, os, sys, time
c = http.client.HTTPConnection("10.96.0.20", 80, timeout=5)
c.request("GET", "/live/ka1"); r = c.getresponse(); r.read(); s1 = r.status; sock = c.sock
open(sys.argv[1] + ".first", "w").write(str(s1))
end = time.time() + 20
while not os.path.exists(sys.argv[2]) and time.time() < end: time.sleep(0.05)
c.request("GET", "/live/ka2"); r = c.getresponse(); r.read()
open(sys.argv[1], "w").write("%d %d %s" % (s1, r.status, "same" if c.sock is sock and sock is not None else "new"))'
bg ip netns exec "${POD_NETNS[cli]}" "$PYTHON" -c "$KA_PY" "$T/ka.out" "$T/ka.go"
KA_PID=$!
wait_for -t 10 test -s "$T/ka.out.first" || not_ok "the kept-alive client's first request" "$(cat "$T/ka.out.first" 2>&1)"
add_policy '{"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
  "metadata": {"name": "deny-live", "namespace": "mesh"},
  "spec": {"targetRefs": [{"kind": "Service", "group": "", "name": "web"}],
           "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/live/*"]}}]}]}}'
wait_for -t 10 expect_req 403 cli http://10.96.0.20/live/4 || not_ok "the DENY added again"
touch "$T/ka.go"
wait_for -t 10 exited "$KA_PID"
[[ $(cat "$T/ka.out" 2>/dev/null) == "200 403 same" ]] &&
	ok "a kept-alive connection: 200 before the policy, 403 after it on the same socket" ||
	not_ok "the next request on a kept-alive connection takes the new policy" "$(cat "$T/ka.out" 2>&1)"
del_policy AuthorizationPolicy mesh deny-live
wait_for -t 10 expect_req 200 cli http://10.96.0.20/live/5 || not_ok "the DENY deleted again"
# a broken file (an HTTPRoute with a filter warren does not implement) leaves
# the last good model in use, counted; fixed, it loads
errs0=$(wp_metric warren_waypoint_model_reload_errors_total)
add_policy '{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
  "metadata": {"name": "bad", "namespace": "mesh"},
  "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "web"}],
           "rules": [{"filters": [{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/x"}}}],
                      "backendRefs": [{"name": "web", "port": 80}]}]}}'
check "a mesh file with a refused HTTPRoute: not loaded, counted" \
	wait_for -t 10 bash -c "(( \$(ip netns exec ${POD_NETNS[wp]} curl -s http://127.0.0.1:15020/metrics | awk '\$1 == \"warren_waypoint_model_reload_errors_total\" { print \$2 }') > $errs0 ))"
check "... logged with the route's name" grep -q 'model from .* not loaded: .*mesh/bad' "$T/wp.log"
check "... the last good model serves: GET /hello 200" expect_req 200 cli http://10.96.0.20/hello
check "warrenctl waypoint (admin socket): the source, its generation and last error" bash -c \
	"'$WARREN_BUILD/warrenctl' --socket '$T/wp.admin.sock' -o json waypoint | '$PYTHON' -c 'import json,sys; d=json.load(sys.stdin); s=d[\"source\"]; assert s[\"source\"] == \"file\" and s[\"generation\"] >= 3 and \"mesh/bad\" in s[\"lastError\"], d'"
check "warrenctl waypoint routes: HTTPRoute mesh/shop on Service mesh/shop" bash -c \
	"'$WARREN_BUILD/warrenctl' --socket '$T/wp.admin.sock' waypoint routes | grep -q 'mesh/shop.*mesh/shop:80'"
check "warrenctl waypoint policies: mesh/deny-admin (DENY) and mesh/allow-web" bash -c \
	"'$WARREN_BUILD/warrenctl' --socket '$T/wp.admin.sock' waypoint policies | grep -q 'deny-admin.*DENY' && '$WARREN_BUILD/warrenctl' --socket '$T/wp.admin.sock' waypoint policies | grep -q allow-web"
del_policy HTTPRoute mesh bad
check "the route removed: the file loads again (generation up)" wait_for -t 10 bash -c \
	"'$WARREN_BUILD/warrenctl' --socket '$T/wp.admin.sock' -o json waypoint | '$PYTHON' -c 'import json,sys; s=json.load(sys.stdin)[\"source\"]; assert s[\"generation\"] >= 4'"

# --- 4. no bypass at the destination ------------------------------------------
check "cli -> srv $SRV:8080 directly (srv is behind mesh/waypoint) is refused" \
	fails app_client cli "$SRV" 8080 "direct-$E2E_ID"
check "... node2 answered 401 naming the waypoint" wait_for -t 5 grep -q \
	"refused with 401: pod is bound to waypoint mesh/waypoint and spiffe://cluster.local/ns/mesh/sa/cli-sa is not its identity" \
	"$T/node2/tunnel.log"
check "... counted as bypass on node2" at_least node2 warren_waypoint_refused_total 'waypoint="mesh/waypoint",reason="bypass"' 1
check "cli -> srv2 (through its workload waypoint) still works" app_client cli "${POD_IP[srv2]}" 8080 "srv2-$E2E_ID"
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
kill -TERM "$WP_PID" 2>/dev/null
check "warren-waypoint stops on SIGTERM" wait_for -t 10 exited "$WP_PID"
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$T/wp.log"; then
	not_ok "waypoint: no sanitizer report" "$(grep -m5 -A8 -E 'Sanitizer|runtime error' "$T/wp.log")"
else
	ok "waypoint: no sanitizer report"
fi
