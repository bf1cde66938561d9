# SPDX-License-Identifier: Apache-2.0
"""API load for tests/bench/kube.sh: objects created directly through the
API server (no kubelet), over HTTPS with a bearer token, on a few
keep-alive connections in parallel.

  kube-load.py SERVER CA TOKEN create NS_COUNT PODS SERVICES
      NS_COUNT namespaces "load<i>" (ambient), PODS pods spread over them
      (nodeName "load-node", status.podIP 10.128.x.y set by a status
      patch as a kubelet would), SERVICES Services selecting groups of them.
  kube-load.py SERVER CA TOKEN churn PODS COUNT [NS_COUNT [SALT]]
      COUNT label patches of pods load<i%NS>/p<i> (one event each: the
      value carries SALT, so that a second churn with another SALT changes
      the pods again; a patch that changes nothing makes no event).

Prints one line: "created N in S s" / "patched N in S s". Exit 0, 1 on error.
"""
import http.client
import json
import ssl
import sys
import threading
import time
import urllib.parse

THREADS = 8
NS = 50


def conn(server, ctx):
    u = urllib.parse.urlsplit(server)
    return http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx, timeout=60)


def req(c, token, method, path, body, ctype="application/json"):
    c.request(method, path, body=json.dumps(body),
              headers={"Authorization": "Bearer " + token, "Content-Type": ctype})
    r = c.getresponse()
    data = r.read()
    if r.status >= 300 and r.status != 409:
        raise RuntimeError(f"{method} {path}: {r.status} {data[:200]!r}")


def parallel(server, ctx, token, jobs):
    errors = []

    def run(part):
        c = conn(server, ctx)
        try:
            for method, path, body, ctype in part:
                req(c, token, method, path, body, ctype)
        except Exception as e:  # reported by the caller
            errors.append(str(e))

    ts = [threading.Thread(target=run, args=(jobs[i::THREADS],)) for i in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise RuntimeError(errors[0])


def main():
    server, ca, token_file, op = sys.argv[1:5]
    token = open(token_file).read().strip()
    ctx = ssl.create_default_context(cafile=ca)
    J = "application/json"
    M = "application/merge-patch+json"
    t0 = time.monotonic()
    if op == "create":
        nns, pods, svcs = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
        parallel(server, ctx, token, [
            ("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": f"load{i}", "labels": {"istio.io/dataplane-mode": "ambient"}}}, J)
            for i in range(nns)])
        # no controller-manager runs: each namespace's default ServiceAccount
        parallel(server, ctx, token, [
            ("POST", f"/api/v1/namespaces/load{i}/serviceaccounts", {
                "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}, J)
            for i in range(nns)])
        jobs = []
        for i in range(pods):
            ns = f"load{i % nns}"
            jobs.append(("POST", f"/api/v1/namespaces/{ns}/pods", {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"p{i}", "labels": {"app": f"a{i % max(svcs, 1)}", "version": "v1"}},
                "spec": {"nodeName": "load-node", "automountServiceAccountToken": False,
                         "containers": [{"name": "app", "image": "localhost/warren-app:1",
                                         "ports": [{"name": "http", "containerPort": 8080}]}]}}, J))
        parallel(server, ctx, token, jobs)
        parallel(server, ctx, token, [
            ("PATCH", f"/api/v1/namespaces/load{i % nns}/pods/p{i}/status", {"status": {
                "phase": "Running", "podIP": f"10.128.{i // 250}.{i % 250 + 1}",
                "podIPs": [{"ip": f"10.128.{i // 250}.{i % 250 + 1}"}],
                "conditions": [{"type": "Ready", "status": "True"}]}}, M)
            for i in range(pods)])
        parallel(server, ctx, token, [
            ("POST", f"/api/v1/namespaces/load{i % nns}/services", {
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}"},
                "spec": {"selector": {"app": f"a{i}"},
                         "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}, J)
            for i in range(svcs)])
        print(f"created {nns + 2 * pods + svcs} in {time.monotonic() - t0:.1f} s")
    elif op == "churn":
        pods, count = int(sys.argv[5]), int(sys.argv[6])
        nns = int(sys.argv[7]) if len(sys.argv) > 7 else NS
        salt = sys.argv[8] if len(sys.argv) > 8 else "0"
        parallel(server, ctx, token, [
            ("PATCH", f"/api/v1/namespaces/load{(k % pods) % nns}/pods/p{k % pods}",
             {"metadata": {"labels": {"churn": f"{salt}-{k}"}}}, M)
            for k in range(count)])
        print(f"patched {count} in {time.monotonic() - t0:.1f} s")
    else:
        sys.exit("unknown op " + op)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        print(f"kube-load: {e}", file=sys.stderr)
        sys.exit(1)
