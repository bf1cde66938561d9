#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""deploy/ holds what docs/install.md promises (TAP).

  - deploy/warren.yaml is the rendering of deploy/kustomization.yaml;
  - the ClusterRole has exactly the rules docs/kubernetes-rbac.yaml lists
    (what Kubernetes mode needs), and nothing binds more;
  - the DaemonSet: no privileged container, the tunnel's capabilities are
    exactly NET_ADMIN, SYS_ADMIN, SYS_PTRACE (what it keeps at run time),
    every other capability dropped; readiness on 15021; no hostPort (it
    would keep a rollout's surge pod off the node); maxSurge 1,
    maxUnavailable 0; system-node-critical; the netns mount propagates
    HostToContainer; a grace period longer than drainSeconds;
  - no Secret on the DaemonSet's pods (the signing key stays with warren-ca):
    no secret volume, none projected; the tunnel's token is a projected
    service-account token of audience warren-ca; the tunnel uses caAddress
    and no caDir; warren-ca's ClusterRole is exactly tokenreviews create
    and pods list; warren-waypoint's is the tunnel's reads only;
  - no CRD in warren.yaml (Istio's must never be replaced by applying it);
    the CRDs file has structural schemas for both Istio kinds, v1 stored.
"""
import os
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from tap import Tap  # noqa: E402

os.chdir(os.path.join(os.path.dirname(__file__), "..", ".."))
tap = Tap()


def result(ok, what, diags=()):
    """diagnostics only on failure"""
    return tap.result(ok, what, () if ok else diags)


r = subprocess.run(["bash", "hack/render-deploy.sh", "--check"], capture_output=True, text=True)
result(r.returncode == 0, "deploy/warren.yaml is the rendering of deploy/kustomization.yaml", [r.stderr.strip()])

docs = [d for d in yaml.safe_load_all(open("deploy/warren.yaml")) if d]
kinds = {}
for d in docs:
    kinds.setdefault(d["kind"], []).append(d)


def rules_set(rules):
    out = set()
    for rl in rules:
        for g in rl.get("apiGroups", []):
            for res in rl.get("resources", []):
                for v in rl.get("verbs", []):
                    out.add((g, res, v, tuple(rl.get("resourceNames", []))))
    return out


want = rules_set(yaml.safe_load(open("docs/kubernetes-rbac.yaml"))["rules"])
croles = {d["metadata"]["name"]: d for d in kinds["ClusterRole"]}
have = rules_set(croles["warren-tunnel"]["rules"])
result(want == have and sorted(croles) == ["warren-ca", "warren-tunnel", "warren-waypoint"],
           "the ClusterRole grants exactly docs/kubernetes-rbac.yaml's verbs",
           [f"missing: {sorted(want - have)}", f"extra: {sorted(have - want)}"])
role = rules_set(kinds["Role"][0]["rules"])
result(role == {("apps", "daemonsets", "get", ("warren",))},
           "the installer's Role: get of its own DaemonSet only", [str(sorted(role))])

ds = kinds["DaemonSet"][0]
spec = ds["spec"]["template"]["spec"]
ctrs = {c["name"]: c for c in spec["containers"]}
priv = [c["name"] for c in spec["containers"] + spec.get("initContainers", [])
        if c.get("securityContext", {}).get("privileged")]
result(not priv, "no privileged container", priv)
caps = ctrs["tunnel"]["securityContext"]["capabilities"]
result(caps.get("drop") == ["ALL"] and sorted(caps.get("add", [])) == ["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"],
           "tunnel: drop ALL, add exactly NET_ADMIN, SYS_ADMIN, SYS_PTRACE", [str(caps)])
icaps = ctrs["install"]["securityContext"]["capabilities"]
result(icaps.get("drop") == ["ALL"] and not {"NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"} & set(icaps.get("add", [])),
           "installer: drop ALL, none of the tunnel's capabilities", [str(icaps)])
probe = ctrs["tunnel"].get("readinessProbe", {}).get("httpGet", {})
result(probe.get("port") == 15021 and probe.get("path") == "/healthz/ready", "tunnel readiness: GET /healthz/ready on 15021", [str(probe)])
hostports = [p for c in spec["containers"] for p in c.get("ports", []) if p.get("hostPort") or spec.get("hostNetwork")]
result(not hostports, "no (host) port declared: a surge pod can start beside the old one", [str(hostports)])
ru = ds["spec"]["updateStrategy"]
result(ru["type"] == "RollingUpdate" and ru["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0},
           "RollingUpdate maxSurge 1, maxUnavailable 0", [str(ru)])
result(spec.get("priorityClassName") == "system-node-critical", "priorityClassName system-node-critical")
mounts = {m["name"]: m for m in ctrs["tunnel"]["volumeMounts"]}
vols = {v["name"]: v for v in spec["volumes"]}
result(mounts["netns"].get("mountPropagation") == "HostToContainer" and vols["netns"]["hostPath"]["path"] == "/var/run/netns",
           "netns dir /var/run/netns mounted HostToContainer", [str(mounts["netns"])])
conf = yaml.safe_load(kinds["ConfigMap"][0]["data"]["tunnel.yaml"])
result(conf.get("meshSource") == "kubernetes" and spec.get("terminationGracePeriodSeconds", 30) > conf.get("drainSeconds", 25),
           "tunnel in Kubernetes mode; grace period longer than drainSeconds",
           [f"grace {spec.get('terminationGracePeriodSeconds')} drain {conf.get('drainSeconds')}"])
secret_vols = [v["name"] for v in spec["volumes"] if "secret" in v or
               any("secret" in src for src in v.get("projected", {}).get("sources", []))]
result(not secret_vols, "the DaemonSet mounts no Secret (no node holds the signing key)", secret_vols)
tok = [src["serviceAccountToken"] for v in spec["volumes"] for src in v.get("projected", {}).get("sources", [])
       if "serviceAccountToken" in src and v["name"] == "warren-ca-token"]
result(len(tok) == 1 and tok[0].get("audience") == "warren-ca" and tok[0].get("expirationSeconds", 3600) <= 3600
       and conf.get("caTokenFile", "").endswith("/" + tok[0].get("path", "-"))
       and any(m["name"] == "warren-ca-token" and conf["caTokenFile"].startswith(m["mountPath"] + "/")
               for m in ctrs["tunnel"]["volumeMounts"]),
       "tunnel: caTokenFile is a projected token of audience warren-ca, at most 1 h", [str(tok), str(conf)])
result(conf.get("caAddress", "").startswith("https://warren-ca.") and "caDir" not in conf and conf.get("trustBundle"),
       "tunnel: caAddress (warren-ca's Service) and trustBundle, no caDir", [str(conf)])
ca_rules = rules_set(croles.get("warren-ca", {}).get("rules", []))
result(ca_rules == {("authentication.k8s.io", "tokenreviews", "create", ()), ("", "pods", "list", ())},
       "warren-ca's ClusterRole: create tokenreviews, list pods, nothing else", [str(sorted(ca_rules))])
wp_rules = rules_set(croles.get("warren-waypoint", {}).get("rules", []))
result(wp_rules == {r for r in want if r[2] in ("get", "list", "watch")},
       "warren-waypoint's ClusterRole: the tunnel's get, list and watch, nothing it could write",
       [f"missing: {sorted(want - wp_rules)}", f"extra: {sorted(wp_rules - want)}"])
result("CustomResourceDefinition" not in kinds, "deploy/warren.yaml holds no CRD")

crds = [d for d in yaml.safe_load_all(open("deploy/crds/istio-security.yaml")) if d]
bad = []
for c in crds:
    vs = c["spec"]["versions"]
    if [v["name"] for v in vs if v["storage"]] != ["v1"]:
        bad.append(f"{c['metadata']['name']}: v1 must be the stored version")
    for v in vs:
        s = v["schema"]["openAPIV3Schema"]
        if s.get("type") != "object" or s["properties"]["spec"].get("type") != "object":
            bad.append(f"{c['metadata']['name']} {v['name']}: spec is not a typed object")
result(sorted(c["spec"]["names"]["kind"] for c in crds) == ["AuthorizationPolicy", "PeerAuthentication"] and not bad,
           "deploy/crds: AuthorizationPolicy and PeerAuthentication, structural, v1 stored", bad)
tap.done()
