#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Table-driven L4 AuthorizationPolicy / PeerAuthentication suite, as root, on
# the real kernel, with real connections (TAP).
#
#   node1 netns                                     node2 netns
#     a  (ns prod,   sa a, enrolled)                  srv  (ns prod, sa srv, app=srv version=v1,
#     b  (ns dev,    sa b, enrolled)                        enrolled, echo :8080 and :9090)
#     p  (ns legacy, not enrolled: its traffic        srv2 (ns prod, sa srv2, app=other,
#         reaches srv's 15006 with no identity)             enrolled, echo :8080 and :9090)
#                                                     c    (ns dev, sa c, enrolled)
#   Service prod/srv-vip 10.96.0.20:80 -> srv:9090 ("srv-vip:80" in the table)
#   namespaces prod, dev, istio-system labelled ambient; legacy not
#     warren-tunnel caDir, trustDomain cluster.local, rootNamespace istio-system
#     (one per node), accessLog to a file per node
#
# One topology for the whole table (tests/netns/policy/cases.yaml): for each
# policy set the mesh file gets exactly that set's objects, both tunnels are
# awaited until they have loaded the new mesh generation and node2 lists
# exactly the set's objects (with the expected states), then each probe makes
# one real connection with a unique payload:
#   allow: the payload is echoed and the server app logged an accept from the
#          client's own IP, and node2's access log shows decision allow (or
#          none when the mesh has no policy object at all) naming the
#          expected policy;
#   deny:  no echo, the connection is closed or reset (not a timeout), the
#          server app saw nothing from the client, node2's access log shows
#          decision deny naming the deciding policy,
#          warren_policy_denials_total{policy=...} grew, and for an enrolled
#          client the source tunnel's access log shows the 401 answer.
# At the end both tunnels get SIGTERM, so a sanitizer build reports leaks.
# Takes about a minute.
# Expectations come from Istio ambient's semantics
# (model/authz.h), never from observed behaviour.
# Env: B or WARREN_BUILD, KEEP_TMP=1, POLICY_CASES=FILE (another table),
# POLICY_ONLY=REGEX (only sets whose name matches).
set -uo pipefail
source "$(dirname "$0")/lib.sh"

lib_init
CLEANUP_TAP=1
need jq flock
CASES=${POLICY_CASES:-$LIB_DIR/policy/cases.yaml}
[[ -r $CASES ]] || die "no case table $CASES"
"$PYTHON" -c 'import yaml' 2>/dev/null || die "python3-yaml missing (run: bash hack/install-deps.sh)"
need_built warren-cni warren-tunnel warrenctl
SUITE_START=$SECONDS

# --- tunnel configuration: lib.sh's, plus mTLS, policy and access-log keys ---
tunnel_conf_extra() { # NODE
	cat <<EOF
caDir: $T/ca
trustDomain: cluster.local
rootNamespace: istio-system
accessLog: $T/$1/access.log
meshReloadMs: 200
EOF
}

# Run python CODE on the mesh objects (list `objs`, from FILE.json) under
# mesh-edit's lock; the caller re-renders the YAML with a mesh-edit command.
mesh_objs() { # CODE [ARGS...] (sys.argv[2:] in CODE)
	"$PYTHON" - "$T/mesh.yaml" "$@" <<'PY'
import fcntl, json, os, sys
f, code = sys.argv[1], sys.argv[2]
lock = open(f + ".lock", "a"); fcntl.flock(lock, fcntl.LOCK_EX)
objs = json.load(open(f + ".json"))
exec(code)
tmp = f + ".json.tmp.%d" % os.getpid()
open(tmp, "w").write(json.dumps(objs, indent=1)); os.rename(tmp, f + ".json")
PY
}

metric() { # NODE NAME LABEL-SUBSTRING: value (sum) or 0
	nexec "$1" curl -s --max-time 2 http://127.0.0.1:15020/metrics |
		awk -v n="$2" -v l="$3" 'index($0, n) == 1 && index($0, l) { s += $NF } END { print s + 0 }'
}

# --- CA, topology, tunnels, pods ---------------------------------------------
bash "$WARREN_ROOT/hack/gen-ca.sh" "$T/ca" >/dev/null 2>&1 || die "gen-ca.sh (mesh CA)"
topo_up >/dev/null 2>&1 || die "topology"
for ns in prod dev istio-system; do mesh ns "$ns" istio.io/dataplane-mode=ambient; done
mesh ns legacy
tunnel_start node1 2>/dev/null || die "warren-tunnel on node1 not ready (see $T/node1/tunnel.out)"
tunnel_start node2 2>/dev/null || die "warren-tunnel on node2 not ready (see $T/node2/tunnel.out)"

pod_define node2 prod srv --label app=srv --label version=v1 || die "define srv"
pod_define node2 prod srv2 --label app=other || die "define srv2"
pod_define node1 prod a --label app=a || die "define a"
pod_define node1 dev b --label app=b || die "define b"
pod_define node2 dev c --label app=c || die "define c"
pod_define node1 legacy p --conflist "$T/node1.plain.conflist" || die "define p"
mesh_objs '
sas = {("prod", "srv"): "srv", ("prod", "srv2"): "srv2", ("prod", "a"): "a", ("dev", "b"): "b", ("dev", "c"): "c"}
for o in objs:
    k = (o["metadata"].get("namespace"), o["metadata"]["name"])
    if o["kind"] == "Pod" and k in sas:
        o["spec"]["serviceAccountName"] = sas[k]' || die "service accounts"
mesh ns legacy policy-suite/set=none || die "re-render the mesh"
for pod in srv srv2 a b c p; do
	pod_cni_add "$pod" 2>"$T/err" || die "ADD $pod: $(cat "$T/err")"
done
for pod in srv srv2; do
	app_server "$pod" 8080 || die "echo server $pod:8080"
	app_server "$pod" 9090 || die "echo server $pod:9090"
done
# a Service in front of srv: 80 -> targetPort 9090 (only enrolled clients
# reach a VIP: their tunnel resolves it; nothing routes it)
SRV_VIP=10.96.0.20
declare -A VIP_TARGET=([80]=9090)
mesh service prod srv-vip --selector app=srv --port 80:9090 --cluster-ip "$SRV_VIP" >/dev/null || die "Service prod/srv-vip"
NODE1_NET=${POD_IP[a]%.*}.0/24
[[ ${POD_IP[b]%.*} == "${POD_IP[a]%.*}" && ${POD_IP[p]%.*} == "${POD_IP[a]%.*}" && ${POD_IP[c]%.*} != "${POD_IP[a]%.*}" ]] ||
	die "unexpected addressing: a ${POD_IP[a]} b ${POD_IP[b]} p ${POD_IP[p]} c ${POD_IP[c]}"
ok "topology: a ${POD_IP[a]} b ${POD_IP[b]} p ${POD_IP[p]} (node1), srv ${POD_IP[srv]} srv2 ${POD_IP[srv2]} c ${POD_IP[c]} (node2)"

# --- the plan ------------------------------------------------------------------
# One Python run renders everything the loop needs, so the loop itself starts
# no interpreter but the client app: for each set, the complete mesh file
# (the objects set up above + the set's policies + a per-set label on the
# legacy Namespace, so the file always changes and both tunnels load a new
# generation), the states node2 must then list (canonical JSON), and a TSV
# of probes.
"$PYTHON" - "$CASES" "$T" "$MESH_EDIT" "${POLICY_ONLY:-}" \
	"A_IP=${POD_IP[a]}" "B_IP=${POD_IP[b]}" "C_IP=${POD_IP[c]}" "P_IP=${POD_IP[p]}" \
	"SRV_IP=${POD_IP[srv]}" "SRV2_IP=${POD_IP[srv2]}" "NODE1_NET=$NODE1_NET" <<'PY' || die "case table $CASES"
import copy, importlib.util, json, re, sys, yaml
path, tdir, editor, only = sys.argv[1:5]
spec = importlib.util.spec_from_file_location("mesh_edit", editor)
mesh_edit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mesh_edit)
to_yaml = mesh_edit.to_yaml
base = [o for o in json.load(open(tdir + "/mesh.yaml.json"))
        if o["kind"] not in ("AuthorizationPolicy", "PeerAuthentication")]
text = open(path).read()
for kv in sys.argv[5:]:
    k, v = kv.split("=", 1)
    text = text.replace("{{%s}}" % k, v)
left = re.findall(r"\{\{\w+\}\}", text)
if left:
    sys.exit("unknown placeholder(s) %s" % sorted(set(left)))
sets = yaml.safe_load(text)
clients, servers = {"a", "b", "c", "p"}, {"srv", "srv2", "srv-vip"}
tsv = []
for i, s in enumerate(sets):
    name = s["set"]
    if only and not re.search(only, name):
        continue
    objs = s.get("objects") or []
    for o in objs:
        if o.get("kind") not in ("AuthorizationPolicy", "PeerAuthentication"):
            sys.exit("set %r: object of kind %r" % (name, o.get("kind")))
    keys = ["%s/%s" % (o["metadata"]["namespace"], o["metadata"]["name"]) for o in objs]
    states = {k: "active" for k in keys}
    explicit = s.get("states") or {}
    for k in explicit:
        if k not in states:
            sys.exit("set %r: states names %s, which is not one of its objects" % (name, k))
    states.update(explicit)
    mesh = copy.deepcopy(base)
    for o in mesh:
        if o["kind"] == "Namespace" and o["metadata"]["name"] == "legacy":
            o["metadata"]["labels"] = {"policy-suite/set": "s%d" % i}
    mesh += objs
    open("%s/set-%d.yaml" % (tdir, i), "w").write(to_yaml(mesh))
    open("%s/set-%d.json" % (tdir, i), "w").write(json.dumps(mesh, indent=1))
    open("%s/set-%d.states" % (tdir, i), "w").write(json.dumps(states, sort_keys=True, separators=(",", ":")) + "\n")
    open("%s/set-%d.explicit" % (tdir, i), "w").write(", ".join("%s %s" % kv for kv in sorted(explicit.items())))
    for p in s["probes"]:
        srv, _, port = p["to"].partition(":")
        if p["from"] not in clients or srv not in servers or not port.isdigit() or p["expect"] not in ("allow", "deny"):
            sys.exit("set %r: bad probe %r" % (name, p))
        if srv == "srv-vip" and (port != "80" or p["from"] == "p"):
            sys.exit("set %r: srv-vip has port 80 only, for enrolled clients: %r" % (name, p))
        if p["expect"] == "deny" and not p.get("policy"):
            sys.exit("set %r: a deny probe must name the deciding policy: %r" % (name, p))
        tsv.append("\t".join([str(i), name, p["from"], srv, port, p["expect"], p.get("policy") or "-", str(len(objs))]))
open(tdir + "/probes.tsv", "w").write("".join(l + "\n" for l in tsv))
PY
NPROBES=$(wc -l <"$T/probes.tsv")
((NPROBES >= 1)) || die "no probe selected"
diag "$NPROBES probes from $CASES"

# lib.sh's, with jq instead of a Python start per poll (same output).
mesh_generation() { # NODE
	wctl "$1" -o json config-dump 2>/dev/null | jq -r '.meshGeneration // empty' 2>/dev/null
}

# --- applying one set ----------------------------------------------------------
set_loaded() { # INDEX: node2 lists exactly the set's objects, in the expected states
	local got
	got=$(wctl node2 -o json policies 2>/dev/null | jq -S -c 'map({(.key): .state}) | add // {}') || return 1
	[[ $got == "$(<"$T/set-$1.states")" ]] && return 0
	echo "node2 lists $got, expected $(<"$T/set-$1.states")"
	return 1
}
apply_set() { # INDEX: install the rendered mesh file, wait for both tunnels
	local g1 g2
	g1=$(mesh_generation node1) g2=$(mesh_generation node2)
	[[ -n $g1 && -n $g2 ]] || { echo "no mesh generation from the tunnels ($g1/$g2)"; return 1; }
	# as mesh-edit does: under its lock, state first, then the file by rename
	flock "$T/mesh.yaml.lock" bash -c 'cp "$1.json" "$2.json.tmp" && mv "$2.json.tmp" "$2.json" &&
		cp "$1.yaml" "$2.tmp" && mv "$2.tmp" "$2"' _ "$T/set-$1" "$T/mesh.yaml" || return 1
	if ! wait_for -t 5 mesh_newer node1 "$g1" || ! wait_for -t 5 mesh_newer node2 "$g2"; then
		echo "mesh generation not advanced within 5 s (node1 $g1 -> $(mesh_generation node1), node2 $g2 -> $(mesh_generation node2)); node2 log:"
		tail -n 5 "$T/node2/tunnel.log"
		return 1
	fi
	wait_for -t 3 set_loaded "$1" || { set_loaded "$1"; return 1; }
}

# --- one probe -------------------------------------------------------------------
# The last entry of NODE's access log, after line FROM, for this connection
# (DIRECTION, dst one of DSTS (comma-separated IP:PORT), src CLIENT_IP:*), as
# "decision<TAB>policy<TAB>reason"; fails when there is none yet.
evidence() { # NODE DIRECTION FROM CLIENT_IP DSTS
	local e
	e=$(tail -n +"$(($3 + 1))" "$T/$1/access.log" 2>/dev/null | jq -R -r --arg dir "$2" --arg c "$4:" --arg d "$5" '
		fromjson? | select(.direction == $dir and (."dst.addr" as $x | $d | split(",") | any(. == $x))
			and ((."src.addr" // "") | startswith($c)))
		| [.policy.decision, (.policy.policy // "None"), .reason] | @tsv' 2>/dev/null | tail -n 1)
	[[ -n $e ]] && echo "$e"
}
has_evidence() { evidence "$@" >/dev/null; }
accepts_from() { # SERVER CLIENT_IP: lines of the server app's log from that client
	grep -c "^accept $2 " "$T/$1.app.log" 2>/dev/null
}

PROBE_N=0
probe() { # SET-NAME CLIENT SERVER PORT EXPECT POLICY NOBJS
	local set=$1 cli=$2 srv=$3 port=$4 expect=$5 pol=$6 nobjs=$7
	local cip=${POD_IP[$cli]} dip=${POD_IP[$srv]:-} name out rc why=() obs
	local app=$srv host=${POD_IP[$srv]:-} hport=$port # what the client connects to
	local al0 app0 app1 d0=0 d1 label ev dec epol reason want_dec
	PROBE_N=$((PROBE_N + 1))
	name="$set: $cli -> $srv:$port $expect"
	[[ $pol != - ]] && name+=" ($pol)"
	if [[ $srv == srv-vip ]]; then # through the Service: srv on the target port
		app=srv dip=${POD_IP[srv]} host=$SRV_VIP port=${VIP_TARGET[$port]}
	fi
	local payload="policy-$E2E_ID-$PROBE_N-$RANDOM$RANDOM"
	local cnode=${POD_NODE[$cli]} sl0
	al0=$(wc -l <"$T/node2/access.log" 2>/dev/null || echo 0)
	sl0=$(wc -l <"$T/$cnode/access.log" 2>/dev/null || echo 0)
	app0=$(accepts_from "$app" "$cip")
	label=$pol
	[[ $pol == "("* ]] && label=default-deny
	[[ $expect == deny ]] && d0=$(metric node2 warren_policy_denials_total "policy=\"$label\"")

	out=$(app_client "$cli" "$host" "$hport" "$payload" --timeout 3 2>&1); rc=$?
	app1=$(accepts_from "$app" "$cip")
	case $rc in
	0) obs="echoed" ;;
	1) obs="closed without echo" ;;
	2) obs="refused" ;;
	3) obs="timed out (neither echo nor close within 3 s)" ;;
	4) obs="reset" ;;
	*) obs="client exit $rc: ${out//$'\n'/ }" ;;
	esac
	if [[ $expect == allow ]]; then
		[[ $rc == 0 && $out == "$payload" ]] || why+=("expected the echo")
		((app1 > app0)) || why+=("the server app logged no accept from $cip")
		want_dec=allow
		((nobjs == 0)) && want_dec=none
	else
		[[ $rc == 1 || $rc == 2 || $rc == 4 ]] && [[ $out != *"$payload"* ]] ||
			why+=("expected a closed/reset connection without echo")
		((app1 == app0)) || why+=("the server app accepted a connection from $cip")
		want_dec=deny
	fi
	if wait_for -t 3 has_evidence node2 inbound "$al0" "$cip" "$dip:$port"; then
		ev=$(evidence node2 inbound "$al0" "$cip" "$dip:$port")
		IFS=$'\t' read -r dec epol reason <<<"$ev"
		obs+="; access log: decision $dec, policy $epol, reason \"$reason\""
		[[ $dec == "$want_dec" ]] || why+=("expected access-log decision $want_dec")
		if [[ $pol == "("* ]]; then
			[[ $epol == None && $reason == *"$pol"* ]] || why+=("expected the access log to say $pol")
		elif [[ $pol != - ]]; then
			[[ $epol == "$pol" ]] || why+=("expected the access log to name $pol")
		fi
	else
		obs+="; no inbound access-log entry on node2 for $cip -> $dip:$port"
		why+=("expected an access-log entry")
	fi
	if [[ $expect == deny ]]; then
		d1=$(metric node2 warren_policy_denials_total "policy=\"$label\"")
		obs+="; warren_policy_denials_total{policy=\"$label\"} $d0 -> $d1"
		((d1 > d0)) || why+=("expected the denial counted")
		if [[ $cli != p ]]; then # HBONE: the source tunnel got the 401 and closed the app's connection
			if wait_for -t 3 has_evidence "$cnode" outbound "$sl0" "$cip" "$host:$hport,$dip:$port"; then
				IFS=$'\t' read -r dec epol reason <<<"$(evidence "$cnode" outbound "$sl0" "$cip" "$host:$hport,$dip:$port")"
				obs+="; $cnode (source) access log: \"$reason\""
				[[ $reason == *"answered 401"* ]] || why+=("expected the source tunnel to report a 401 answer")
			else
				why+=("expected an outbound access-log entry on $cnode")
			fi
		fi
	fi
	if ((${#why[@]} == 0)); then
		ok "$name"
		diag "observed: $obs"
	else
		not_ok "$name" "observed: $obs"$'\n'"wrong: $(printf '%s; ' "${why[@]}")"
	fi
}

# --- the table -----------------------------------------------------------------
cur=
while IFS=$'\t' read -r -u 7 idx set cli srv port expect pol nobjs; do
	if [[ $idx != "$cur" ]]; then
		cur=$idx
		skip=0
		if ! out=$(apply_set "$idx" 2>&1); then
			not_ok "set \"$set\" loaded by both tunnels" "$out"
			skip=1
		else
			expl=$(<"$T/set-$idx.explicit")
			[[ -n $expl ]] && ok "set \"$set\": node2 lists $expl"
		fi
	fi
	if ((skip)); then
		not_ok "$set: $cli -> $srv:$port $expect" "skipped: the set was not loaded"
		continue
	fi
	probe "$set" "$cli" "$srv" "$port" "$expect" "$pol" "$nobjs"
done 7<"$T/probes.tsv"

# --- the end ---------------------------------------------------------------------
check "no tunnel crashed" eval 'tunnel_alive node1 && tunnel_alive node2'
tunnel_stop node1
tunnel_stop node2
sanitizer_clean node1 node2
echo "# $PROBE_N probes, $TAP_COUNT checks, $TAP_FAILED failed, $((SECONDS - SUITE_START)) s"
