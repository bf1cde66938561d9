#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a one-layer OCI image archive (an OCI image layout in a tar) that
`ctr images import` loads, with no registry and no image builder.

  oci-image.py OUT.tar NAME [--entrypoint JSON] [--cmd JSON] [--env K=V]...
               (--file SRC:DEST[:MODE] | --link TARGET:DEST | --dir DEST)...

NAME is the full reference (localhost/warren-pause:1). Files are stored with
uid/gid 0 and a fixed mtime, so the same inputs give the same digests."""
import argparse, gzip, hashlib, io, json, os, sys, tarfile

p = argparse.ArgumentParser()
p.add_argument("out"); p.add_argument("name")
p.add_argument("--entrypoint"); p.add_argument("--cmd")
p.add_argument("--env", action="append", default=[])
p.add_argument("--file", action="append", default=[])
p.add_argument("--link", action="append", default=[])
p.add_argument("--dir", action="append", default=[])
a = p.parse_args()

def info(name, kind, mode):
    ti = tarfile.TarInfo(name.lstrip("/")); ti.type = kind; ti.mode = mode
    ti.uid = ti.gid = 0; ti.uname = ti.gname = "root"; ti.mtime = 0
    return ti

layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
    dirs = set()
    def parents(dest):
        parts = dest.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d); t.addfile(info(d, tarfile.DIRTYPE, 0o755))
    for d in a.dir:
        parents(d + "/x")
    for spec in a.file:
        src, dest, *mode = spec.split(":")
        parents(dest)
        data = open(src, "rb").read()
        ti = info(dest, tarfile.REGTYPE, int(mode[0], 8) if mode else 0o755); ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    for spec in a.link:
        target, dest = spec.split(":")
        parents(dest)
        ti = info(dest, tarfile.SYMTYPE, 0o777); ti.linkname = target
        t.addfile(ti)
raw = layer.getvalue()
gz = gzip.compress(raw, mtime=0)

blobs = {}
def blob(data):
    d = hashlib.sha256(data).hexdigest(); blobs[d] = data
    return "sha256:" + d

config = {"architecture": "amd64", "os": "linux",
          "config": {"Env": ["PATH=/bin"] + a.env},
          "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}
if a.entrypoint: config["config"]["Entrypoint"] = json.loads(a.entrypoint)
if a.cmd: config["config"]["Cmd"] = json.loads(a.cmd)
cfg = json.dumps(config).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(cfg), "size": len(cfg)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(gz), "size": len(gz)}]}).encode()
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(manifest),
                   "size": len(manifest), "platform": {"architecture": "amd64", "os": "linux"},
                   "annotations": {"io.containerd.image.name": a.name,
                                   "org.opencontainers.image.ref.name": a.name.rsplit(":", 1)[-1]}}]}

with tarfile.open(a.out + ".tmp", "w") as t:
    def put(name, data):
        ti = info(name, tarfile.REGTYPE, 0o644); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    put("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    put("index.json", json.dumps(index).encode())
    for d, data in blobs.items():
        put("blobs/sha256/" + d, data)
os.rename(a.out + ".tmp", a.out)
