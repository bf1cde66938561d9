#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Every file-static function and variable carries its module's prefix (TAP).

Every global name is unique: a static in tunnel/admin.c is admin_xxx, or
carries the short prefix the file established for its statics (kw_ in
tunnel/kube_watch.c). PREFIXES lists, for each file checked, the prefixes
its file-scope statics may start with; a file not listed is not checked yet.
Statics inside functions are not global names and are not checked.
`static_prefix.py --all` lists the offenders of every product file, listed
or not (a report, always exit 0).
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from tap import Tap  # noqa: E402

FOLDERS = ("conf", "model", "netlink", "plugin", "tunnel", "ctl", "install", "ca", "waypoint")

# file -> the prefixes its statics may start with (each ends with "_").
PREFIXES = {
    "tunnel/accesslog.c": ["accesslog_"],
    "tunnel/admin.c": ["admin_"],
    "tunnel/ca.c": ["ca_"],
    "tunnel/ca_client.c": ["cc_"],
    "tunnel/csr.c": ["csr_"],
    "tunnel/drain.c": ["drain_"],
    "tunnel/handoff_server.c": ["handoff_server_"],
    "tunnel/harden.c": ["harden_"],
    "tunnel/hbone_conn.c": ["conn_"],
    "tunnel/hbone_pool.c": ["pool_"],
    "tunnel/hbone_server.c": ["server_"],
    "tunnel/hbone_stream.c": ["stream_"],
    "tunnel/hbone_trim.c": ["trim_"],
    "tunnel/hbone_wire.c": ["wire_"],
    "tunnel/host_probe.c": ["host_"],
    "tunnel/http.c": ["http_"],
    "tunnel/identity.c": ["identity_"],
    "tunnel/inpod_listen.c": ["lis_"],
    "tunnel/istio_pb.c": ["pb_"],
    "tunnel/kube_annotate.c": ["ka_"],
    "tunnel/kube_enroll.c": ["kube_enroll_"],
    "tunnel/kube_tunnel.c": ["kt_"],
    "tunnel/kube_watch.c": ["kw_", "kres_"],
    "tunnel/loop.c": ["loop_"],
    "tunnel/main.c": ["tunnel_"],
    "tunnel/mesh_watch.c": ["mesh_"],
    "tunnel/metrics.c": ["metrics_", "tcp_series_get"],
    "tunnel/mtls.c": ["mtls_"],
    "tunnel/pods.c": ["pod_"],
    "tunnel/proxy.c": ["proxy_"],
    "tunnel/relay.c": ["relay_"],
    "tunnel/route.c": ["route_"],
    "tunnel/snap.c": ["snap_"],
    "tunnel/state.c": ["state_", "adoption_"],
    "tunnel/state_readopt.c": ["readopt_"],
    "tunnel/state_record.c": ["srec_"],
    "tunnel/tls.c": ["tls_"],
    "tunnel/workers.c": ["worker_"],
    "tunnel/keeper.c": ["keeper_"],
    "conf/cni.c": ["cni_"],
    "conf/handoff.c": ["handoff_"],
    "conf/inpod_mode.c": ["inpod_mode_"],
    "conf/kobj.c": ["kobj_"],
    "conf/kube.c": ["kc_"],
    "conf/kube_prune.c": ["kp_"],
    "conf/log.c": ["log_"],
    "conf/tunnel_conf.c": ["tunnel_conf_"],
    "model/authz_compile.c": ["authz_compile_"],
    "model/authz_eval.c": ["authz_eval_"],
    "model/httproute.c": ["hr_"],
    "model/mesh.c": ["mesh_"],
    "model/mesh_index.c": ["mesh_index_"],
    "model/waypoint.c": ["waypoint_"],
    "netlink/inpod.c": ["inpod_"],
    "netlink/inpod_ebpf.c": ["ebpf_"],
    "netlink/ebpf_pool.c": ["ebpf_pool_"],
    "netlink/nft.c": ["nft_"],
    "netlink/nft_host.c": ["nft_host_"],
    "netlink/nl.c": ["nl_"],
    "netlink/pod_netns.c": ["pn_"],
    "netlink/route.c": ["route_"],
    "plugin/cmd_add.c": ["cmd_add_"],
    "plugin/cmd_check.c": ["cmd_check_"],
    "plugin/cmd_del.c": ["cmd_del_"],
    "plugin/common.c": ["common_"],
    "plugin/main.c": ["plugin_"],
    "ctl/warrenctl.c": ["ctl_"],
    "install/chain.c": ["chain_"],
    "install/cnifs.c": ["cnifs_"],
    "install/main.c": ["inst_"],
    "ca/authz.c": ["caz_"],
    "ca/main.c": ["cas_"],
    "ca/sign.c": ["casign_"],
    "waypoint/admin.c": ["wpa_"],
    "waypoint/cert.c": ["wpc_"],
    "waypoint/http1.c": ["h1_"],
    "waypoint/main.c": ["wpm_"],
    "waypoint/proxy.c": ["wp_"],
    "waypoint/source.c": ["wps_"],
    "waypoint/stats.c": ["wps_"],
    "waypoint/upstream.c": ["wpu_"],
    "waypoint/wmodel.c": ["wmodel_"],
}

TOKEN = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
IDENT = re.compile(r"[A-Za-z_]\w*")
ATTR = re.compile(r"__attribute__\s*\(\(.*?\)\)", re.S)


def blank(text):
    """Comments, strings and preprocessor lines replaced by spaces (newlines kept)."""
    text = TOKEN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    return re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.M)


def statics(text):
    """(line, name) of each file-scope static declaration or definition."""
    src = blank(text)
    out = []
    depth = 0
    i = 0
    n = len(src)
    while i < n:
        c = src[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif depth == 0 and src.startswith("static", i) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")) \
                and not (src[i + 6:i + 7].isalnum() or src[i + 6:i + 7] == "_"):
            # The declarator's name: the last identifier before the first
            # '(' (a function), '[', '=', ';' or ',' at this level.
            j = i
            decl = []
            while j < n and src[j] not in "{;=":
                decl.append(src[j])
                j += 1
            head = ATTR.sub(" ", "".join(decl))
            if j < n and src[j] == "{" and "(" not in head:
                # static struct { ... } name: the name follows the body.
                d = 0
                while j < n:
                    d += src[j] == "{"
                    d -= src[j] == "}"
                    j += 1
                    if d == 0:
                        break
                while j < n and src[j] not in ";=":
                    decl.append(src[j])
                    j += 1
                head = ATTR.sub(" ", "".join(decl))
            m = re.match(r"[^(\[,]*", head)
            pre = m.group(0)
            if head[len(pre):len(pre) + 2].replace(" ", "").startswith("(*"):
                fp = re.match(r"\(\s*\*\s*(?:const\s+)?([A-Za-z_]\w*)", head[len(pre):])
                name = fp.group(1) if fp else None
            else:
                ids = [x for x in IDENT.findall(pre)]
                name = ids[-1] if ids else None
            if name:
                out.append((src.count("\n", 0, i) + 1, name))
            i = j
            continue
        i += 1
    return out


def product_files(root):
    for folder in FOLDERS:
        d = os.path.join(root, folder)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            if name.endswith((".c", ".h")) and not name.endswith(".bpf.c"):
                yield f"{folder}/{name}"


def offenders(root, path, prefixes):
    with open(os.path.join(root, path), encoding="utf-8") as f:
        text = f.read()
    # An entry without a trailing "_" is one exact name (read by a test or a
    # doc); the module's own state may be named the prefix itself (cas).
    exact = {p for p in prefixes if not p.endswith("_")} | {p[:-1] for p in prefixes if p.endswith("_")}
    # A constant in capitals carries the prefix in capitals (METRICS_SRC).
    return [(line, name) for line, name in statics(text)
            if name not in exact and not (name.lower() if name.isupper() else name).startswith(
                tuple(p for p in prefixes if p.endswith("_")))]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    root = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "..")
    if "--all" in sys.argv:
        for path in product_files(root):
            pre = PREFIXES.get(path, [os.path.basename(path)[:-2] + "_"])
            for line, name in offenders(root, path, pre):
                print(f"{path}:{line}: {name} (accepted: {' '.join(pre)})")
        return
    tap = Tap()
    missing = [p for p in PREFIXES if not os.path.exists(os.path.join(root, p))]
    tap.result(not missing, "every file in the prefix table exists", missing)
    bad = []
    for path in sorted(PREFIXES):
        if path in missing:
            continue
        for line, name in offenders(root, path, PREFIXES[path]):
            bad.append(f"{path}:{line}: static {name} does not start with {' or '.join(PREFIXES[path])}")
    tap.result(not bad, f"the statics of the {len(PREFIXES)} files in the table carry their module's prefix", bad)
    where = {}
    for path in sorted(PREFIXES):
        if path not in missing:
            with open(os.path.join(root, path), encoding="utf-8") as f:
                for _, name in statics(f.read()):
                    where.setdefault(name, set()).add(path)
    dup = [f"{name}: {' '.join(sorted(paths))}" for name, paths in sorted(where.items()) if len(paths) > 1]
    tap.result(not dup, "no two of those files define a static of the same name", dup)
    tap.done()


if __name__ == "__main__":
    main()
