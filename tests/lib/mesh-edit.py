#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Edit the shared mesh file of the cluster-in-a-box, as the API server would.

The source of truth is FILE.json (a list of Kubernetes objects) next to
FILE; every edit rewrites FILE as multi-document YAML through a temp file
and rename(2), so a tunnel watching FILE never sees a half-written file.
Edits are serialised with flock on FILE.lock.

  mesh-edit.py FILE init
  mesh-edit.py FILE ns NAME [key=value ...]          create/replace a Namespace
  mesh-edit.py FILE pod NS NAME --node N [--uid U] [--sa SA] [--label k=v ...]
                                                      [--annotation k=v ...]
  mesh-edit.py FILE ip NS NAME IP [IP6]               set status.podIP(s), Running/Ready
  mesh-edit.py FILE rm-pod NS NAME
  mesh-edit.py FILE service NS NAME --selector k=v --port PORT[:TARGET] [--cluster-ip IP]...
                                                      (TARGET a number or a port name)
  mesh-edit.py FILE show                              print FILE
"""
import argparse
import fcntl
import json
import os
import re
import sys
import uuid

PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")


def scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if v is None:
        return "null"
    return json.dumps(v)  # a JSON string is a valid double-quoted YAML scalar


def key(k):
    return k if PLAIN.match(k) and k not in ("true", "false", "null", "y", "n", "yes", "no", "on", "off") else json.dumps(k)


def emit(v, indent, out):
    pad = "  " * indent
    if isinstance(v, dict):
        if not v:
            out[-1] += " {}"
            return
        for k, x in v.items():
            if isinstance(x, (dict, list)) and x:
                out.append("%s%s:" % (pad, key(k)))
                emit(x, indent + 1, out)
            else:
                out.append("%s%s: %s" % (pad, key(k), "{}" if x == {} else "[]" if x == [] else scalar(x)))
    elif isinstance(v, list):
        for x in v:
            if isinstance(x, dict) and x:
                sub = []
                emit(x, indent + 1, sub)
                first = sub[0].lstrip()
                out.append("%s- %s" % (pad, first))
                out.extend(sub[1:])
            elif isinstance(x, list) and x:
                out.append("%s-" % pad)
                emit(x, indent + 1, out)
            else:
                out.append("%s- %s" % (pad, scalar(x)))


def to_yaml(objs):
    docs = []
    for o in objs:
        lines = []
        emit(o, 0, lines)
        docs.append("\n".join(lines))
    return "---\n" + "\n---\n".join(docs) + "\n" if docs else ""


def find(objs, kind, ns, name):
    for i, o in enumerate(objs):
        md = o.get("metadata", {})
        if o.get("kind") == kind and md.get("name") == name and (ns is None or md.get("namespace") == ns):
            return i
    return -1


def labels(pairs):
    d = {}
    for p in pairs or []:
        k, sep, v = p.partition("=")
        if not sep:
            sys.exit("mesh-edit: label %r is not key=value" % p)
        d[k] = v
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    sub = ap.add_subparsers(dest="op", required=True)
    sub.add_parser("init")
    sub.add_parser("show")
    p = sub.add_parser("ns")
    p.add_argument("name")
    p.add_argument("labels", nargs="*")
    p = sub.add_parser("pod")
    p.add_argument("ns")
    p.add_argument("name")
    p.add_argument("--node", required=True)
    p.add_argument("--uid", default="")
    p.add_argument("--sa", default="default")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--annotation", action="append", default=[])
    p = sub.add_parser("ip")
    p.add_argument("ns")
    p.add_argument("name")
    p.add_argument("ip", nargs="+")
    p = sub.add_parser("rm-pod")
    p.add_argument("ns")
    p.add_argument("name")
    p = sub.add_parser("service")
    p.add_argument("ns")
    p.add_argument("name")
    p.add_argument("--selector", action="append", default=[])
    p.add_argument("--port", action="append", default=[])
    p.add_argument("--cluster-ip", action="append", default=[])
    a = ap.parse_args()

    if a.op == "show":
        sys.stdout.write(open(a.file).read())
        return
    lock = open(a.file + ".lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    state = a.file + ".json"
    objs = []
    if a.op != "init" and os.path.exists(state):
        objs = json.load(open(state))

    if a.op == "ns":
        o = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": a.name}}
        if a.labels:
            o["metadata"]["labels"] = labels(a.labels)
        i = find(objs, "Namespace", None, a.name)
        if i >= 0:
            objs[i] = o
        else:
            objs.append(o)
    elif a.op == "pod":
        md = {"name": a.name, "namespace": a.ns, "uid": a.uid or str(uuid.uuid4())}
        if a.label:
            md["labels"] = labels(a.label)
        if a.annotation:
            md["annotations"] = labels(a.annotation)
        o = {"apiVersion": "v1", "kind": "Pod", "metadata": md,
             "spec": {"serviceAccountName": a.sa, "nodeName": a.node,
                      "containers": [{"name": "app", "image": "none"}]},
             "status": {"phase": "Pending"}}
        i = find(objs, "Pod", a.ns, a.name)
        if i >= 0:
            objs[i] = o
        else:
            objs.append(o)
    elif a.op == "ip":
        i = find(objs, "Pod", a.ns, a.name)
        if i < 0:
            sys.exit("mesh-edit: no pod %s/%s" % (a.ns, a.name))
        objs[i]["status"] = {"phase": "Running", "podIP": a.ip[0], "podIPs": [{"ip": x} for x in a.ip],
                             "conditions": [{"type": "Ready", "status": "True"}]}
    elif a.op == "rm-pod":
        i = find(objs, "Pod", a.ns, a.name)
        if i >= 0:
            del objs[i]
    elif a.op == "service":
        ports = []
        for p in a.port:
            port, _, target = p.partition(":")
            target = target or port
            ports.append({"name": "p%s" % port, "protocol": "TCP", "port": int(port),
                          "targetPort": int(target) if target.isdigit() else target})
        spec = {"selector": labels(a.selector), "ports": ports}
        if a.cluster_ip:
            spec["clusterIP"] = a.cluster_ip[0]
            spec["clusterIPs"] = a.cluster_ip
        o = {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": a.name, "namespace": a.ns}, "spec": spec}
        i = find(objs, "Service", a.ns, a.name)
        if i >= 0:
            objs[i] = o
        else:
            objs.append(o)

    for path, text in ((state, json.dumps(objs, indent=1)), (a.file, to_yaml(objs))):
        tmp = "%s.tmp.%d" % (path, os.getpid())
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    if a.op == "pod":
        print(md["uid"])


if __name__ == "__main__":
    main()
