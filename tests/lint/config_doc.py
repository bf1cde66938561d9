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

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from tap import Tap  # noqa: E402

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


tap = Tap()
for what, code, heading in (("warren-tunnel", tunnel_keys(), "warren-tunnel"),
                            ("warren-cni", plugin_keys(), "warren-cni")):
    doc = doc_keys(heading)
    # at least a few: the parser above still finds the table
    tap.result(len(code) >= 5, f"{what}: {len(code)} keys found in the code")
    tap.result(doc is not None, f"docs/configuration.md has a section \"## {heading}\"")
    doc = doc or set()
    tap.result(not code - doc, f"{what}: every key is documented",
               [f"{k}: read by the code, missing from docs/configuration.md" for k in sorted(code - doc)])
    tap.result(not doc - code, f"{what}: the doc names no key the code lacks",
               [f"{k}: in docs/configuration.md, not read by the code" for k in sorted(doc - code)])
tap.done()
