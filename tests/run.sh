#!/usr/bin/env bash
# Runs every test and ends with "N passed, N failed".
#  - unit tests: build/tests/test_* (TAP lines "ok N - x" / "not ok N - x"), no root needed
#  - source checks: tests/lint/*.py (include layers, docs/configuration.md)
#  - netns integration tests: tests/netns/test_*.sh, as root (TAP lines too)
#  - real-cluster tests: tests/kube/test_*.sh, as root, on hack/kube-up.sh's
#    cluster (hack/kube-build.sh builds its binaries; hack/test.sh runs it)
# A test program that exits non-zero without reporting a failure, or prints
# no result at all, counts as one failure. Nothing is ever counted as passed
# unless it printed "ok"; an "ok ... # SKIP" is counted as skipped, not passed.
# The netns suites that exercise capture run twice: as netns/x (nftables,
# the default) and as netns-ebpf/x (REDIRECT_MODE=ebpf).
# Env: B (build dir, default build), UNIT_ONLY=1, ONLY=<glob> to pick tests,
# NO_EBPF=1 (no netns-ebpf/ pass), EBPF_SUITES="test_x.sh ..." (its suites),
# TSAN_B (a `make SANITIZE=thread` build dir): then the unit tests that start
# threads and the suites that drive the tunnel's worker threads hardest run
# once more on that build, and every ThreadSanitizer report is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
export B WARREN_BUILD="$PWD/$B"
pass=0 fail=0 skip=0
# shellcheck disable=SC2206 # a list of names, split on blanks
EBPF_SUITES=(${EBPF_SUITES:-test_inpod.sh test_e2e.sh test_mtls.sh test_policy.sh test_annotations.sh
	test_probes.sh test_rollout.sh test_churn.sh test_failclosed.sh test_runtime.sh})
logdir=$(mktemp -d /tmp/warren-tests.XXXXXX)

run_one() { # name, command...
	local name=$1; shift
	local log="$logdir/$(basename "$name").log" rc ok nok
	[[ $name == netns-ebpf/* ]] && log="$logdir/ebpf-$(basename "$name").log"
	[[ $name == tsan-unit/* ]] && log="$logdir/tsan-$(basename "$name").log"
	echo "=== $name"
	"$@" >"$log" 2>&1
	rc=$?
	ok=$(grep -E '^ok ' "$log" | grep -vc '# SKIP')
	nok=$(grep -cE '^not ok ' "$log")
	skip=$((skip + $(grep -E '^ok ' "$log" | grep -c '# SKIP')))
	grep -E '^(ok|not ok) |^# ' "$log" | sed 's/^/    /'
	if ((nok > 0 || rc != 0)); then
		echo "--- $name: exit $rc; last lines of its log:"
		tail -n 40 "$log" | sed 's/^/    /'
	fi
	if ((rc != 0 && nok == 0)); then nok=1; fi
	if ((ok == 0 && nok == 0)) && ! grep -qE '^ok .*# SKIP' "$log"; then nok=1; echo "    not ok - $name printed no result"; fi
	pass=$((pass + ok)); fail=$((fail + nok))
}

# run_one on the TSan build, then one failure per ThreadSanitizer report.
tsan_one() { # name, command...
	local name=$1 dir="$logdir/tsan-${1##*/}" reports r; shift
	mkdir -p "$dir"
	run_one "$name" env B="$TSAN_B" WARREN_BUILD="$PWD/$TSAN_B" \
		TSAN_OPTIONS="log_path=$dir/report${TSAN_EXTRA:+:$TSAN_EXTRA}" "$@"
	reports=("$dir"/report*)
	if [[ -e ${reports[0]} ]]; then
		for r in "${reports[@]}"; do
			echo "    not ok - $name: ThreadSanitizer report $r: $(grep -m1 'WARNING: ThreadSanitizer' "$r")"
			fail=$((fail + 1))
		done
	else
		echo "    ok - $name: no ThreadSanitizer report"
		pass=$((pass + 1))
	fi
}

for t in "$B"/tests/test_*; do
	[[ -x $t ]] || continue
	[[ -n ${ONLY:-} && $(basename "$t") != $ONLY ]] && continue
	run_one "unit/$(basename "$t")" "$t"
done
# The unit tests that start threads (a loop on its own thread, snapshot
# readers, the handoff server), on the TSan build: a few seconds. Reports
# are counted above, not as the test's exit code (exitcode=0).
if [[ -n ${TSAN_B:-} ]]; then
	for n in test_hbone test_snap test_handoff test_harden; do
		[[ -n ${ONLY:-} && $n != $ONLY ]] && continue
		TSAN_EXTRA=exitcode=0 tsan_one "tsan-unit/$n" "$TSAN_B/tests/$n"
	done
fi

# Source checks (the include layers, the configuration reference): no build needed.
for t in tests/lint/*.py; do
	[[ -f $t ]] || continue
	[[ -n ${ONLY:-} && $(basename "$t") != $ONLY ]] && continue
	run_one "lint/$(basename "$t")" python3 "$t"
done

# Fuzz targets (built by `make fuzz`), a bounded run each from the seed corpus.
for f in "$B"/fuzz/fuzz_*; do
	[[ -x $f && ! -d $f ]] || continue
	[[ -n ${ONLY:-} && $(basename "$f") != $ONLY ]] && continue
	n=$(basename "$f")
	corpus="$logdir/corpus-$n"; mkdir -p "$corpus"
	cp tests/fuzz/corpus/"$n"/* "$corpus"/ 2>/dev/null || true
	run_one "fuzz/$n" bash -c "'$f' -max_total_time=${FUZZ_SECONDS:-15} -print_final_stats=1 '$corpus' && echo 'ok - $n ran ${FUZZ_SECONDS:-15}s without a crash'"
done

if [[ -z ${UNIT_ONLY:-} ]]; then
	if ((EUID != 0)); then
		echo "not ok - integration tests need root"; fail=$((fail + 1))
	else
		for t in tests/netns/test_*.sh; do
			[[ -f $t ]] || continue
			[[ -n ${ONLY:-} && $(basename "$t") != $ONLY ]] && continue
			run_one "netns/$(basename "$t")" timeout 600 bash "$t"
		done
		# The suites that exercise capture, once more with redirect "ebpf"
		# (tests/netns/lib.sh's REDIRECT_MODE; docs/ebpf.md). NO_EBPF=1 skips.
		if [[ -z ${NO_EBPF:-} ]]; then
			for t in "${EBPF_SUITES[@]}"; do
				t=tests/netns/$t
				[[ -f $t ]] || continue
				[[ -n ${ONLY:-} && $(basename "$t") != $ONLY ]] && continue
				run_one "netns-ebpf/$(basename "$t")" env REDIRECT_MODE=ebpf timeout 600 bash "$t"
			done
		fi
		# real-cluster tests (hack/kube-up.sh; binaries from hack/kube-build.sh)
		for t in tests/kube/test_*.sh; do
			[[ -f $t ]] || continue
			[[ -n ${ONLY:-} && $(basename "$t") != $ONLY ]] && continue
			run_one "kube/$(basename "$t")" timeout 900 bash "$t"
		done
		if [[ -n ${TSAN_B:-} ]]; then
			for t in tests/netns/test_mtls.sh tests/netns/test_e2e.sh tests/netns/test_policy.sh \
				tests/netns/test_observe.sh tests/netns/test_churn.sh tests/netns/test_rollout.sh; do
				[[ -n ${ONLY:-} && $(basename "$t") != $ONLY ]] && continue
				tsan_one "tsan/$(basename "$t" .sh)" timeout 900 bash "$t"
			done
		fi
	fi
fi

echo "logs: $logdir"
((skip)) && echo "$skip skipped (not counted as passed)"
echo "$pass passed, $fail failed"
((fail == 0))
