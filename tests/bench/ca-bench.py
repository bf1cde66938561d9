#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Load generator for warren-ca (tests/bench/ca-bench.sh runs it).

ca-bench.py URL CAFILE TOKENFILE SPIFFE_ID SECONDS THREADS
A CSR is made once per thread (warren-ca checks and signs every request
anew); each thread keeps one TLS connection and posts it in a loop. Prints
one JSON line: requests, errors, the status counts, p50/p90/p99 latency in
ms (client-side, the whole HTTP exchange) and signatures per second.
"""
import http.client
import json
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

url, cafile, tokfile, sid, secs, nthreads = sys.argv[1:7]
secs, nthreads = float(secs), int(nthreads)
u = urllib.parse.urlsplit(url)
token = open(tokfile).read().strip()
csr = subprocess.run(
    ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
     "-keyout", "/dev/null", "-subj", "/", "-addext", "subjectAltName=URI:" + sid],
    check=True, capture_output=True, text=True).stdout
body = json.dumps({"csr": csr}).encode()
ctx = ssl.create_default_context(cafile=cafile)
lat, status, lock = [], {}, threading.Lock()
end = time.monotonic() + secs


def worker():
    conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=10)
    mine, st = [], {}
    while time.monotonic() < end:
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/v1/sign", body, {"Authorization": "Bearer " + token,
                                                     "Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            code = r.status
        except Exception:  # noqa: BLE001 - counted, connection renewed
            code = "error"
            conn.close()
            conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=10)
        mine.append((time.perf_counter() - t0) * 1000)
        st[code] = st.get(code, 0) + 1
    with lock:
        lat.extend(mine)
        for k, v in st.items():
            status[k] = status.get(k, 0) + v


start = time.monotonic()
threads = [threading.Thread(target=worker) for _ in range(nthreads)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - start
lat.sort()
pct = lambda p: round(lat[min(len(lat) - 1, int(len(lat) * p))], 2) if lat else None
print(json.dumps({"threads": nthreads, "requests": len(lat), "status": {str(k): v for k, v in status.items()},
                  "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
                  "signed_per_s": round(status.get(200, 0) / elapsed, 1)}))
