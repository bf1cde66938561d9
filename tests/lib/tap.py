# SPDX-License-Identifier: Apache-2.0
"""TAP output for the Python checks (tests/lint/*.py): numbered lines,
diagnostics, the plan at the end, and the exit status."""
import sys


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = False

    def result(self, ok, what, diags=(), skip=None):
        """One "ok N - what" / "not ok N - what" line, then each diag as "#  diag"."""
        self.n += 1
        self.failed |= not ok
        print(f"{'ok' if ok else 'not ok'} {self.n} - {what}" + (f" # SKIP {skip}" if skip else ""))
        for d in diags:
            print("#  " + d)
        return ok

    def done(self):
        print(f"1..{self.n}")
        sys.exit(1 if self.failed else 0)
