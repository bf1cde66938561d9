#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes warren-tunnel's mesh file from the API server's objects, so a tunnel
in file mode sees what the cluster holds.

  kubectl get namespaces,pods,services -A -o json | kube-mesh.py FILE

Keeps the fields the mesh model reads (metadata name/namespace/uid/labels/
annotations, the pod's nodeName/hostNetwork/serviceAccountName/containers'
names and ports, status phase/podIP(s)/conditions, a Service's selector,
ports and cluster IPs) and writes FILE.json and FILE (multi-document YAML)
through tests/lib/mesh-edit.py's renderer, each by rename(2), under the
same lock as mesh-edit.py."""
import fcntl, importlib.util, json, os, sys

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("mesh_edit", os.path.join(here, "..", "lib", "mesh-edit.py"))
mesh_edit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mesh_edit)

def pick(d, keys):
    return {k: d[k] for k in keys if k in d and d[k] not in (None, {}, [])}

def trim(o):
    md = pick(o["metadata"], ("name", "namespace", "uid", "labels", "annotations", "creationTimestamp"))
    out = {"apiVersion": o["apiVersion"], "kind": o["kind"], "metadata": md}
    spec, status = o.get("spec", {}), o.get("status", {})
    if o["kind"] == "Pod":
        s = pick(spec, ("nodeName", "hostNetwork", "serviceAccountName"))
        s["containers"] = [pick(c, ("name", "ports")) for c in spec.get("containers", [])]
        out["spec"] = s
        out["status"] = pick(status, ("phase", "podIP", "podIPs", "conditions"))
    elif o["kind"] == "Service":
        out["spec"] = pick(spec, ("selector", "ports", "clusterIP", "clusterIPs", "type"))
    return out

objs = [trim(o) for o in json.load(sys.stdin)["items"]]
path = sys.argv[1]
with open(path + ".lock", "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    for p, text in ((path + ".json", json.dumps(objs, indent=1)), (path, mesh_edit.to_yaml(objs))):
        tmp = "%s.tmp.%d" % (p, os.getpid())
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, p)
