# SPDX-License-Identifier: Apache-2.0
"""The bench's results file, for its report blocks: "key value" lines, a key
once per round (tests/bench/run.sh, res)."""
import statistics


class Results(dict):
    """key -> list of values as written, in order."""

    def __init__(self, path):
        super().__init__()
        for line in open(path):
            k, _, v = line.rstrip("\n").partition(" ")
            self.setdefault(k, []).append(v)

    def nums(self, k):
        """KEY's values that are numbers, sorted."""
        out = []
        for x in self.get(k, []):
            try:
                out.append(float(x))
            except ValueError:
                pass
        return sorted(x for x in out if x == x)

    def med(self, k):
        a = self.nums(k)
        return statistics.median(a) if a else float("nan")
