#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Each binary links only libraries it calls (TAP).

For the product binaries in $B (default build): every shared library
the binary needs (readelf -d NEEDED) defines at least one symbol the binary
imports (nm -D --undefined-only); only warren-cni and warren-tunnel link
libbpf (they attach the eBPF capture and fill its map), and libcurl only
warrenctl, warren-tunnel and warren-waypoint (Kubernetes mode's API client;
the waypoint also asks warren-ca for its certificate), warren-ca
(TokenReview) and warren-install (is its DaemonSet being deleted?).
Skipped when the binaries are not built.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from tap import Tap  # noqa: E402

os.chdir(os.path.join(os.path.dirname(__file__), "..", ".."))
B = os.environ.get("B", "build")
BINS = ["warren-cni", "warren-tunnel", "warrenctl", "warren-ca", "warren-install", "warren-waypoint"]
# The C runtime and the sanitizers' runtimes come with the compiler.
# who may call the API server (warren-install: is its DaemonSet being deleted?)
CURL_OK = {"warrenctl", "warren-tunnel", "warren-install", "warren-ca", "warren-waypoint"}
RUNTIME = re.compile(r"^(libc|libm|libpthread|libdl|librt|libasan|libubsan|libtsan|libgcc_s|libstdc\+\+)\.so")


def out(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


tap = Tap()
for name in BINS:
    path = os.path.join(B, name)
    if not os.path.exists(path):
        tap.result(True, name, skip=f"not built in {B}")
        continue
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out("readelf", "-d", path))
    where = dict(re.findall(r"^\s*(\S+) => (\S+)", out("ldd", path), re.M))
    imports = {l.split()[-1].split("@")[0] for l in out("nm", "-D", "--undefined-only", path).splitlines() if l.strip()}
    unused = []
    for lib in needed:
        if RUNTIME.match(lib):
            continue
        defined = {l.split()[-1].split("@")[0]
                   for l in out("nm", "-D", "--defined-only", where[lib]).splitlines() if l.strip()}
        if not imports & defined:
            unused.append(lib)
    banned = [l for l in needed if (l.startswith("libbpf") and name not in ("warren-cni", "warren-tunnel"))
              or (l.startswith("libcurl") and name not in CURL_OK)]
    tap.result(not unused and not banned,
               f"{name} links only what it calls: {' '.join(l.split('.so')[0] for l in needed)}",
               [f"{l}: no symbol of it is used" for l in unused] + [f"{l}: must not be linked" for l in banned])
tap.done()
