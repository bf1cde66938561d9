#!/usr/bin/env bash
# The README's test command: installs what it needs (and builds the real
# cluster's binaries, hack/kube-build.sh, once per machine), builds with strict
# warnings, builds everything again with ASan+UBSan (tests and fuzz targets
# too) and runs the whole suite on the sanitizer build, as root; then the
# unit tests that start threads and the suites that drive the tunnel's
# threads hardest once more on a TSan build.
# Ends with "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/install-deps.sh
# the real-cluster tests' binaries (cached by version outside the checkout;
# a fresh machine builds them once). If that fails, the rest still runs and
# tests/kube/ reports the missing binaries as failures.
bash hack/kube-build.sh || echo "hack/test.sh: hack/kube-build.sh failed; the tests in tests/kube/ will fail" >&2
bash hack/kube-ctrl-build.sh >/dev/null || echo "hack/test.sh: hack/kube-ctrl-build.sh failed; tests/kube/test_install.sh will fail" >&2
make -j2 all >/dev/null
make -j2 SANITIZE=1 all fuzz >/dev/null
make -j2 SANITIZE=thread all >/dev/null
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
B=build-san TSAN_B=build-tsan exec bash tests/run.sh
