#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The "application" inside test pods: a TCP echo server that logs the peer
address it sees, and a client.

  app.py server PORT LOGFILE [--v6]
      Listens on 0.0.0.0:PORT (and [::]:PORT with --v6); for each connection appends
      "accept <peer-ip> <peer-port> <local-ip> <local-port>" to LOGFILE
      (flushed at once) and echoes everything back until EOF.
  app.py client HOST PORT MESSAGE [--timeout S] [--ready-file F --hold-until G]
                [--source-port P]
      Connects, sends MESSAGE, reads the echo and prints it. With
      --hold-until: after the echo, creates F and keeps the connection open
      until G exists (at most --timeout seconds), then closes. With
      --source-port: from that local port.
      Exit: 0 echo matched, 1 mismatch/short, 2 refused, 3 timeout,
      4 reset, 5 other error.
  app.py loop HOST PORT STATUS STOP
      New connections one after another (connect, echo a message, close,
      5 ms apart) until the file STOP exists. STATUS is rewritten after
      each one: "ok N fail M" plus the first errors, each as "K: error
      (phase PHASE at TIME, from ADDR:PORT)", PHASE being connect, send
      or recv, TIME in UTC as in the tunnels' logs, ADDR:PORT the client's
      side as the tunnels log it ("?" if connect failed): a failure can be
      matched to their lines.
  app.py chat HOST PORT STATUS STOP
      One connection, a message echoed every 50 ms on it until STOP exists;
      STATUS as for loop (a failure ends it: the connection is gone).
  app.py until-end HOST PORT MESSAGE READY [--half-close]
      Connects, sends MESSAGE, reads its echo, creates READY, then reads
      until the connection ends (with --half-close it shuts down its
      write side after the echo, so the server ends it normally). Prints
      how it ended: "eof" (exit 0), "reset" (ECONNRESET, exit 4) or the
      error (exit 5).
"""
import errno
import os
import socket
import sys
import threading
import time


def server(port, logfile, v6=False):
    log = open(logfile, "a", buffering=1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(128)
    if v6:
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s6.bind(("::", port))
        s6.listen(128)

    def serve(c, peer):
        try:
            local = c.getsockname()
            log.write("accept %s %d %s %d\n" % (peer[0], peer[1], local[0], local[1]))
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()

    def accept_loop(ls):
        while True:
            c, peer = ls.accept()
            threading.Thread(target=serve, args=(c, peer), daemon=True).start()

    if v6:
        threading.Thread(target=accept_loop, args=(s6,), daemon=True).start()
    accept_loop(s)


def client(host, port, msg, timeout, ready_file, hold_until, source_port=0):
    data = msg.encode()
    try:
        c = socket.create_connection((host, port), timeout=timeout,
                                     source_address=("", source_port) if source_port else None)
        c.sendall(data)
        got = b""
        while len(got) < len(data):
            d = c.recv(65536)
            if not d:
                break
            got += d
        print(got.decode(errors="replace"))
        if got != data:
            return 1
        if hold_until:
            if ready_file:
                open(ready_file, "w").close()
            end = time.monotonic() + timeout
            while not os.path.exists(hold_until) and time.monotonic() < end:
                time.sleep(0.05)
        c.close()
        return 0
    except ConnectionRefusedError:
        print("refused", file=sys.stderr)
        return 2
    except socket.timeout:
        print("timeout", file=sys.stderr)
        return 3
    except ConnectionResetError:
        print("reset", file=sys.stderr)
        return 4
    except OSError as e:
        print("error: %s" % e, file=sys.stderr)
        return 4 if e.errno == errno.ECONNRESET else 5


class Phase:
    """Where a connection of loop or chat failed, for its error line."""

    def __init__(self):
        self.name, self.local = "connect", "?"

    def describe(self, n, e):
        t = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)
        return "%d: %s (phase %s at %s, from %s)" % (n, e, self.name, stamp, self.local)


def one_echo(c, data, phase=None):
    if phase:
        phase.name = "send"
    c.sendall(data)
    got = b""
    if phase:
        phase.name = "recv"
    while len(got) < len(data):
        d = c.recv(65536)
        if not d:
            raise OSError("closed by the peer after %d of %d bytes" % (len(got), len(data)))
        got += d
    if got != data:
        raise OSError("echo mismatch")


def connect_traced(host, port, phase):
    """create_connection, noting the local address in phase once connected.
    No bind() first: the kernel would then pick an odd port where connect()
    picks an even one, and the tests' traffic should look like an app's."""
    phase.name, phase.local = "connect", "?"
    c = socket.create_connection((host, port), timeout=5)
    a = c.getsockname()
    phase.local = ("[%s]:%d" if ":" in a[0] else "%s:%d") % (a[0], a[1])
    return c


def write_status(path, ok, fail, errors):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("ok %d fail %d\n" % (ok, fail))
        for e in errors[:5]:
            f.write(e + "\n")
    os.rename(tmp, path)


def loop(host, port, status, stop):
    ok = fail = 0
    errors = []
    phase = Phase()
    while not os.path.exists(stop):
        try:
            c = connect_traced(host, port, phase)
            try:
                one_echo(c, b"loop-%d" % (ok + fail), phase)
            finally:
                c.close()
            ok += 1
        except OSError as e:
            fail += 1
            errors.append(phase.describe(ok + fail, e))
        write_status(status, ok, fail, errors)
        time.sleep(0.005)


def chat(host, port, status, stop):
    ok = fail = 0
    errors = []
    phase = Phase()
    try:
        c = connect_traced(host, port, phase)
        while not os.path.exists(stop):
            one_echo(c, b"chat-%d\n" % ok, phase)
            ok += 1
            write_status(status, ok, fail, errors)
            time.sleep(0.05)
        c.close()
    except OSError as e:
        fail += 1
        errors.append(phase.describe(ok + fail, e))
    write_status(status, ok, fail, errors)


def until_end(host, port, msg, ready, half_close):
    try:
        c = socket.create_connection((host, port), timeout=5)
        one_echo(c, msg.encode())
        if half_close:
            c.shutdown(socket.SHUT_WR)
        open(ready, "w").close()
        c.settimeout(60)
        while c.recv(65536):
            pass
        print("eof")
        return 0
    except ConnectionResetError:
        print("reset")
        return 4
    except OSError as e:
        print("error: %s" % e)
        return 5


def main():
    a = sys.argv[1:]
    if a and a[0] == "server" and (len(a) == 3 or (len(a) == 4 and a[3] == "--v6")):
        server(int(a[1]), a[2], len(a) == 4)
    elif a and a[0] == "client" and len(a) >= 4:
        opts = {"--timeout": "5", "--ready-file": None, "--hold-until": None, "--source-port": "0"}
        rest = a[4:]
        while rest:
            if rest[0] not in opts or len(rest) < 2:
                sys.exit(__doc__)
            opts[rest[0]] = rest[1]
            rest = rest[2:]
        sys.exit(client(a[1], int(a[2]), a[3], float(opts["--timeout"]),
                        opts["--ready-file"], opts["--hold-until"], int(opts["--source-port"])))
    elif a and a[0] == "until-end" and len(a) in (5, 6) and a[5:] in ([], ["--half-close"]):
        sys.exit(until_end(a[1], int(a[2]), a[3], a[4], len(a) == 6))
    elif a and a[0] in ("loop", "chat") and len(a) == 5:
        (loop if a[0] == "loop" else chat)(a[1], int(a[2]), a[3], a[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
