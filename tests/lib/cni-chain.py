#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Run a CNI conflist the way libcni does (the CNI spec: executing a network configuration list).

Contract:
  ADD    each plugin in list order; stdin is the plugin object with `name`,
         `cniVersion` and (from the 2nd plugin on) the previous plugin's
         result as `prevResult` injected, keys sorted (libcni re-marshals
         through Go maps). The final result is cached in
         <cache-dir>/results/<network>-<id>-<ifname> (kind cniCacheV1) and
         printed on stdout.
  DEL    reverse order, every plugin gets the cached final result as
         prevResult (none when nothing is cached, or cniVersion < 0.4.0);
         the cache file is removed after success.
  CHECK  list order with the cached result (refused when disableCheck or
         cniVersion < 0.4.0, like libcni).
  STATUS list order, stops at the first error (no-op below 1.1.0, like libcni).
  GC     first DEL for every cached attachment of this network that is not
         in --valid (skip with --no-cache-gc), then, when cniVersion >= 1.1.0
         (or --force-gc), GC to every plugin with `cni.dev/valid-attachments`
         and `cni.dev/attachments`; errors are collected, not fatal.
  VERSION  to every plugin, prints their answers.
Env given to plugins: the caller's environment plus CNI_COMMAND,
CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH (empty strings
where not applicable, as libcni's Args.AsEnv does); --unset-env drops some,
to test a plugin's handling of missing variables.

On a plugin error: the libcni message is printed on stderr
(`plugin type="X" failed (add): msg; details`), the error JSON (with
"plugin" and "command" added) on stdout, and the exit status is the
plugin's code (1..254; 999 and others out of range -> 254). Errors of the
runner itself (plugin binary not found, bad conflist) exit 1 with an
error JSON that has no "plugin" key; bad usage exits 2 (argparse).

Test hooks (not libcni behaviour): --raw-stdin TYPE=FILE replaces the
stdin sent to that plugin with the bytes of FILE; --unset-env VAR;
--timings FILE records each plugin's wall time (fork+exec+run).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

VALID_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")


class ChainError(Exception):
    def __init__(self, msg, code=0, details="", plugin=None, command=None, raw=None):
        super().__init__(msg)
        self.msg, self.code, self.details = msg, code, details
        self.plugin, self.command, self.raw = plugin, command, raw

    def text(self):
        s = self.msg + ("; " + self.details if self.details else "")
        if self.plugin is not None:
            return 'plugin type="%s" failed (%s): %s' % (self.plugin, self.command, s)
        return s

    def as_json(self):
        d = {"code": self.code, "msg": self.msg}
        if self.details:
            d["details"] = self.details
        if self.plugin is not None:
            d["plugin"] = self.plugin
            d["command"] = self.command
        return d


def vtuple(v):
    try:
        return tuple(int(x) for x in str(v).split("."))
    except ValueError:
        return (0,)


def find_plugin(ptype, path):
    for d in path.split(":"):
        if not d:
            continue
        p = os.path.join(d, ptype)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise ChainError('failed to find plugin "%s" in path [%s]' % (ptype, path))


def exec_plugin(ptype, stdin_bytes, env, args, verb):
    """Runs one plugin; returns parsed stdout JSON on success (None when
    stdout is empty), raises ChainError like libcni's pluginErr."""
    binary = find_plugin(ptype, args.path)
    if args.debug:
        sys.stderr.write("cni-chain: %s %s stdin=%s\n" % (env.get("CNI_COMMAND"), ptype,
                                                         stdin_bytes.decode(errors="replace")))
    t0 = time.monotonic()
    try:
        p = subprocess.run([binary], input=stdin_bytes, env=env, capture_output=True,
                           timeout=args.timeout)
    except subprocess.TimeoutExpired:
        raise ChainError("plugin timed out after %ss" % args.timeout, 0, plugin=ptype, command=verb)
    if args.timings:
        with open(args.timings, "a") as f:
            f.write(json.dumps({"command": verb, "type": ptype, "rc": p.returncode,
                                "seconds": time.monotonic() - t0}) + "\n")
    # libcni copies a plugin's stderr to its own stderr
    if p.stderr:
        sys.stderr.write(p.stderr.decode(errors="replace"))
    out = p.stdout
    if p.returncode != 0:
        if out.strip():
            try:
                e = json.loads(out)
                if not isinstance(e, dict):
                    raise ValueError("not an object")
            except ValueError as ex:
                raise ChainError('netplugin failed but error parsing its diagnostic message "%s": %s'
                                 % (out.decode(errors="replace"), ex), 0, plugin=ptype,
                                 command=verb, raw=out)
            code = e.get("code", 0)
            if not isinstance(code, int):
                code = 0
            raise ChainError(str(e.get("msg", "")), code, str(e.get("details", "") or ""),
                             plugin=ptype, command=verb, raw=out)
        if p.stderr:
            raise ChainError('netplugin failed: "%s"' % p.stderr.decode(errors="replace"), 0,
                             plugin=ptype, command=verb)
        raise ChainError("netplugin failed with no error message", 0, plugin=ptype, command=verb)
    if not out.strip():
        return None
    try:
        return json.loads(out)
    except ValueError as ex:
        raise ChainError("failed to unmarshal raw result: %s" % ex, 0, plugin=ptype, command=verb)


def plugin_env(args, command, with_attachment=True):
    env = dict(os.environ)
    env.update({
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": args.id if with_attachment else "",
        "CNI_NETNS": args.netns if with_attachment else "",
        "CNI_ARGS": args.args if with_attachment else "",
        "CNI_IFNAME": args.ifname if with_attachment else "",
        "CNI_PATH": args.path,
    })
    for v in args.unset_env:
        env.pop(v, None)
    return env


def build_config(plugin, conf, prev_result, capability_args):
    c = dict(plugin)
    c["name"] = conf["name"]
    c["cniVersion"] = conf["cniVersion"]
    if prev_result is not None:
        c["prevResult"] = prev_result
    caps = plugin.get("capabilities") or {}
    rc = {k: v for k, v in (capability_args or {}).items() if caps.get(k)}
    if rc:
        c["runtimeConfig"] = rc
    return c


def stdin_for(ptype, cfg, args):
    raw = args.raw_stdin_map.get(ptype)
    if raw is not None:
        with open(raw, "rb") as f:
            return f.read()
    return json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()


def cache_path(args, conf, cid=None, ifname=None):
    return os.path.join(args.cache_dir, "results", "%s-%s-%s" % (
        conf["name"], cid if cid is not None else args.id, ifname if ifname is not None else args.ifname))


def read_cache(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def validate_attachment(args, need_netns):
    if not args.id:
        raise ChainError("missing containerID", 3)
    if not VALID_NAME.match(args.id):
        raise ChainError("invalid characters in containerID", 3, args.id)
    n = args.ifname
    if not n:
        raise ChainError("missing interface name", 4)
    if len(n) > 15 or n in (".", "..") or re.search(r"[/:\s]", n):
        raise ChainError("invalid interface name", 4, n)


def cmd_add(conf, args):
    validate_attachment(args, True)
    result = None
    for plugin in conf["plugins"]:
        cfg = build_config(plugin, conf, result, args.capability_args)
        r = exec_plugin(plugin["type"], stdin_for(plugin["type"], cfg, args),
                        plugin_env(args, "ADD"), args, "add")
        if r is None:
            raise ChainError("failed to unmarshal raw result: unexpected end of JSON input", 0,
                             plugin=plugin["type"], command="add")
        if "cniVersion" not in r:
            r["cniVersion"] = conf["cniVersion"]  # libcni fixupResultVersion
        result = r
    path = cache_path(args, conf)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    entry = {"kind": "cniCacheV1", "containerId": args.id, "config": conf["_raw"],
             "ifName": args.ifname, "networkName": conf["name"], "netns": args.netns,
             "cniArgs": [kv.split("=", 1) for kv in args.args.split(";") if kv],
             "capabilityArgs": args.capability_args or {}, "result": result}
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(entry, f)
    os.rename(tmp, path)
    return result


def cached_result(conf, args, cid=None, ifname=None):
    entry = read_cache(cache_path(args, conf, cid, ifname))
    if not entry or entry.get("result") is None:
        return None
    r = dict(entry["result"])
    r["cniVersion"] = conf["cniVersion"]  # GetAsVersion: types unchanged 1.0<->1.1
    return r


def cmd_del(conf, args):
    validate_attachment(args, False)
    prev = None
    if vtuple(conf["cniVersion"]) >= (0, 4, 0):
        prev = cached_result(conf, args)
    for plugin in reversed(conf["plugins"]):
        cfg = build_config(plugin, conf, prev, args.capability_args)
        exec_plugin(plugin["type"], stdin_for(plugin["type"], cfg, args),
                    plugin_env(args, "DEL"), args, "delete")
    try:
        os.unlink(cache_path(args, conf))
    except FileNotFoundError:
        pass
    return None


def cmd_check(conf, args):
    validate_attachment(args, True)
    if vtuple(conf["cniVersion"]) < (0, 4, 0):
        raise ChainError('configuration version "%s" does not support the CHECK command' % conf["cniVersion"])
    if conf.get("disableCheck"):
        raise ChainError("network %s has disableCheck set" % conf["name"])
    prev = cached_result(conf, args)
    for plugin in conf["plugins"]:
        cfg = build_config(plugin, conf, prev, args.capability_args)
        exec_plugin(plugin["type"], stdin_for(plugin["type"], cfg, args),
                    plugin_env(args, "CHECK"), args, "check")
    return None


def cmd_status(conf, args):
    if vtuple(conf["cniVersion"]) < (1, 1, 0) and not args.force_gc:
        sys.stderr.write("cni-chain: cniVersion %s < 1.1.0: STATUS is a no-op (as in libcni)\n"
                         % conf["cniVersion"])
        return None
    for plugin in conf["plugins"]:
        cfg = build_config(plugin, conf, None, None)
        exec_plugin(plugin["type"], stdin_for(plugin["type"], cfg, args),
                    plugin_env(args, "STATUS", with_attachment=False), args, "status")
    return None


def cmd_gc(conf, args):
    valid = []
    for v in args.valid:
        cid, _, ifn = v.partition(":")
        valid.append({"containerID": cid, "ifname": ifn or "eth0"})
    validset = {(v["containerID"], v["ifname"]) for v in valid}
    errors = []
    if not args.no_cache_gc:
        rdir = os.path.join(args.cache_dir, "results")
        for fn in sorted(os.listdir(rdir)) if os.path.isdir(rdir) else []:
            entry = read_cache(os.path.join(rdir, fn))
            if not entry or entry.get("networkName") != conf["name"]:
                continue
            key = (entry.get("containerId"), entry.get("ifName"))
            if key in validset:
                continue
            sub = argparse.Namespace(**vars(args))
            sub.id, sub.ifname = key
            sub.netns = entry.get("netns", "")
            sub.args = ";".join("=".join(kv) for kv in entry.get("cniArgs", []))
            try:
                cmd_del(conf, sub)
            except ChainError as e:
                errors.append(e)
    if vtuple(conf["cniVersion"]) >= (1, 1, 0) or args.force_gc:
        for plugin in conf["plugins"]:
            cfg = build_config(plugin, conf, None, None)
            cfg["cni.dev/valid-attachments"] = valid
            cfg["cni.dev/attachments"] = valid  # libcni >= 1.2.3 sends both (#1101)
            try:
                exec_plugin(plugin["type"], stdin_for(plugin["type"], cfg, args),
                            plugin_env(args, "GC", with_attachment=False), args, "gc")
            except ChainError as e:
                errors.append(e)
    if errors:
        e = errors[0]
        if len(errors) > 1:
            e.details = (e.details + "; " if e.details else "") + "and %d more: %s" % (
                len(errors) - 1, " | ".join(x.text() for x in errors[1:]))
        raise e
    return None


def cmd_version(conf, args):
    out = {}
    for plugin in conf["plugins"]:
        env = plugin_env(args, "VERSION", with_attachment=False)
        stdin = json.dumps({"cniVersion": conf["cniVersion"]}).encode()
        out[plugin["type"]] = exec_plugin(plugin["type"], stdin, env, args, "version")
    return out


def load_conflist(path):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        conf = json.loads(raw)
    except ValueError as e:
        raise ChainError("error parsing configuration list: %s" % e)
    if not isinstance(conf, dict):
        raise ChainError("error parsing configuration list: not an object")
    if not conf.get("name"):
        raise ChainError("error parsing configuration list: no name")
    if not isinstance(conf.get("cniVersion", ""), str):
        raise ChainError("error parsing configuration list: invalid cniVersion type")
    conf.setdefault("cniVersion", "")
    if not conf.get("plugins"):
        raise ChainError("error parsing configuration list: no plugins in list")
    for p in conf["plugins"]:
        if not isinstance(p, dict) or not isinstance(p.get("type"), str) or "/" in p["type"]:
            raise ChainError("error parsing configuration list: bad plugin %r" % (p,))
    conf["_raw"] = raw.decode(errors="replace")
    return conf


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"])
    ap.add_argument("--conflist", required=True)
    ap.add_argument("--netns", default="")
    ap.add_argument("--id", default="")
    ap.add_argument("--ifname", default="eth0")
    ap.add_argument("--args", default="", help="CNI_ARGS, K=V;K=V")
    ap.add_argument("--cache-dir", default="/var/lib/cni")
    ap.add_argument("--path", default=os.environ.get("CNI_PATH", "/usr/lib/cni:/opt/cni/bin"))
    ap.add_argument("--valid", nargs="*", default=[], help="GC: id:ifname still valid")
    ap.add_argument("--no-cache-gc", action="store_true", help="GC: skip the cached DELs")
    ap.add_argument("--force-gc", action="store_true",
                    help="GC/STATUS: send to plugins even when cniVersion < 1.1.0")
    ap.add_argument("--capability-args", type=json.loads, default=None, help="JSON object")
    ap.add_argument("--unset-env", action="append", default=[])
    ap.add_argument("--raw-stdin", action="append", default=[], metavar="TYPE=FILE")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--timings", metavar="FILE",
                    help="append one JSON line per plugin exec: command, type, rc, seconds")
    ap.add_argument("--debug", action="store_true")
    args = ap.parse_args()
    args.raw_stdin_map = dict(x.split("=", 1) for x in args.raw_stdin)
    try:
        conf = load_conflist(args.conflist)
        fn = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "STATUS": cmd_status,
              "GC": cmd_gc, "VERSION": cmd_version}[args.command]
        res = fn(conf, args)
    except ChainError as e:
        sys.stderr.write(e.text() + "\n")
        sys.stdout.write(json.dumps(e.as_json()) + "\n")
        if e.plugin is None:
            sys.exit(1)
        sys.exit(e.code if 1 <= e.code <= 254 else 254)
    if res is not None:
        sys.stdout.write(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
