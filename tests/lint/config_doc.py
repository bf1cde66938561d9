#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""docs/configuration.md lists exactly the keys the code reads (TAP).

warren-tunnel: the keys[] table of conf/tunnel_conf.c against the table
under "## warren-tunnel". warren-cni: the keys conf/cni.c reads from the
configuration's root object (get_string/json_object_get(root, "key"))
against the table under "## warren-cni".
"""
import os
import re
import sys

os.chdir(os.path.join(os.path.dirname(__file__), "..", ".."))


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def tunnel_keys():
    src = read("conf/tunnel_conf.c")
    m = re.search(r"keys\[\]\s*=\s*\{(.*?)\n\};", src, re.S)
    if not m:
        return set()
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    return set(re.findall(r'^\s*(?:[SI]KEY\(|\{\s*)"([A-Za-z0-9]+)"', body, re.M))


def plugin_keys():
    src = read("conf/cni.c")
    return set(re.findall(r'(?:get_string|json_object_get)\(\s*root\s*,\s*"([A-Za-z0-9]+)"', src))


def doc_keys(heading):
    doc = read("docs/configuration.md")
    m = re.search(r"^## " + re.escape(heading) + r"\s*$(.*?)(?=^## |\Z)", doc, re.M | re.S)
    if not m:
        return None
    # rows of the section's first table: | `key` | type | default | meaning |
    return set(re.findall(r"^\|\s*`([A-Za-z0-9]+)`\s*\|", m.group(1), re.M))


n = 0
failed = False
for what, code, heading in (("warren-tunnel", tunnel_keys(), "warren-tunnel"),
                            ("warren-cni", plugin_keys(), "warren-cni")):
    doc = doc_keys(heading)
    n += 1
    ok = len(code) >= 5  # the parser above still finds the table
    failed |= not ok
    print(f"{'ok' if ok else 'not ok'} {n} - {what}: {len(code)} keys found in the code")
    n += 1
    ok = doc is not None
    failed |= not ok
    print(f"{'ok' if ok else 'not ok'} {n} - docs/configuration.md has a section \"## {heading}\"")
    doc = doc or set()
    missing, stale = sorted(code - doc), sorted(doc - code)
    n += 1
    ok = not missing
    failed |= not ok
    print(f"{'ok' if ok else 'not ok'} {n} - {what}: every key is documented")
    for k in missing:
        print(f"#  {k}: read by the code, missing from docs/configuration.md")
    n += 1
    ok = not stale
    failed |= not ok
    print(f"{'ok' if ok else 'not ok'} {n} - {what}: the doc names no key the code lacks")
    for k in stale:
        print(f"#  {k}: in docs/configuration.md, not read by the code")
print(f"1..{n}")
sys.exit(1 if failed else 0)
