# SPDX-License-Identifier: Apache-2.0
"""Control-plane load for the benchmark (tests/bench/run.sh): what a busy
node's tunnel does besides relaying, so the bench can show what it costs
the data path.

  cp-load.py mesh FILE PODS SECS PERIOD
      Puts PODS pods (PODS/4 Services, 50 ambient namespaces, none on
      the bench's nodes) in the mesh file FILE, before its own objects
      (a lookup that scanned the model would pass all of them first),
      then rewrites FILE every PERIOD seconds (a changed comment: each
      write is a full reload) for SECS seconds. FILE stays that large;
      the caller restores it.
  cp-load.py http HOST PORT PATH RATE SECS
      GET http://HOST:PORT/PATH RATE times a second on one keep-alive
      connection for SECS seconds.

Prints one line on stdout: "requests N mean_us X worst_us Y" (http) or
"writes N" (mesh). Exit status 0, 1 on an error.
"""
import http.client
import os
import sys
import time


def grow_mesh(path, pods):
    docs = []
    for i in range(50):
        docs.append("---\napiVersion: v1\nkind: Namespace\nmetadata:\n"
                    f"  name: cpload{i}\n  labels:\n    istio.io/dataplane-mode: ambient\n")
    for i in range(pods):
        docs.append("---\napiVersion: v1\nkind: Pod\nmetadata:\n"
                    f"  name: p{i}\n  namespace: cpload{i % 50}\n"
                    f"  uid: 00000000-0000-4000-8000-{i:012d}\n"
                    f"  labels:\n    app: a{i % 200}\n    version: v1\n"
                    f"spec:\n  serviceAccountName: sa{i % 100}\n  nodeName: elsewhere\n"
                    f"status:\n  podIP: 10.{100 + i // 65536}.{(i // 256) % 256}.{i % 256}\n")
    for i in range(pods // 4):
        docs.append("---\napiVersion: v1\nkind: Service\nmetadata:\n"
                    f"  name: s{i}\n  namespace: cpload{i % 50}\n"
                    f"spec:\n  clusterIP: 10.200.{i // 256}.{i % 256}\n"
                    f"  selector:\n    app: a{i % 200}\n"
                    "  ports:\n  - port: 80\n    targetPort: 8080\n    protocol: TCP\n")
    with open(path) as f:
        base = f.read()
    return "".join(docs) + "---\n" + base.rstrip("\n") + "\n"


def write_atomic(path, text):
    tmp = path + ".cp-load.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def mesh(path, pods, secs, period):
    text = grow_mesh(path, int(pods))
    end = time.monotonic() + float(secs)
    n = 0
    while time.monotonic() < end:
        write_atomic(path, text + f"# cp-load write {n}\n")
        n += 1
        time.sleep(float(period))
    print(f"writes {n}")


def get(host, port, path, rate, secs):
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    end = time.monotonic() + float(secs)
    n, total, worst = 0, 0.0, 0.0
    while time.monotonic() < end:
        t0 = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            print(f"cp-load: GET {path}: HTTP {resp.status}", file=sys.stderr)
            sys.exit(1)
        dt = time.perf_counter() - t0
        n, total, worst = n + 1, total + dt, max(worst, dt)
        time.sleep(max(0.0, 1.0 / float(rate) - dt))
    print(f"requests {n} mean_us {total / max(n, 1) * 1e6:.0f} worst_us {worst * 1e6:.0f}")


def main(argv):
    try:
        if len(argv) == 6 and argv[1] == "mesh":
            mesh(*argv[2:])
        elif len(argv) == 7 and argv[1] == "http":
            get(*argv[2:])
        else:
            print(__doc__, file=sys.stderr)
            return 1
    except (OSError, http.client.HTTPException) as e:
        print(f"cp-load: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
