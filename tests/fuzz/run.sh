#!/bin/sh
# tests/fuzz/run.sh [SECONDS] — long fuzzing runs (`make fuzz`).
#
# Runs every built target build-fuzz/fuzz_* for SECONDS (default 60, or $FUZZ_SECONDS) on a
# working copy of its seed corpus (build-fuzz/corpus/<target>, which keeps growing from run
# to run; the committed seeds in tests/fuzz/corpus/ are never written). Builds nothing: run
# `make fuzz-build` first. Crashes land in build-fuzz/artifacts/<target>/ and logs in
# build-fuzz/logs/; the exit status is non-zero when any target failed.
set -u
secs=${1:-${FUZZ_SECONDS:-60}}
cd "$(dirname "$0")/../.." || exit 1
if [ ! -d build-fuzz ]; then
	echo "run.sh: build-fuzz/ is missing; run 'make fuzz-build' first" >&2
	exit 1
fi
# The fuzz build's UBSan recovers by default: make undefined behaviour a failure here.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
status=0
found=0
mkdir -p build-fuzz/logs
for bin in build-fuzz/fuzz_*; do
	[ -f "$bin" ] && [ -x "$bin" ] || continue
	found=1
	t=$(basename "$bin")
	work=build-fuzz/corpus/$t
	art=build-fuzz/artifacts/$t/
	log=build-fuzz/logs/$t.log
	mkdir -p "$work" "$art"
	if [ -d "tests/fuzz/corpus/$t" ]; then
		cp -n "tests/fuzz/corpus/$t"/* "$work"/ 2>/dev/null || true
	fi
	echo "== $t: ${secs}s, corpus $work"
	if "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$art" \
		"$work" >"$log" 2>&1; then
		grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" |
			sed 's/^/   /'
	else
		status=1
		echo "FAIL $t (log: $log)"
		grep -E 'ERROR|check failed|runtime error|SUMMARY|Test unit written' "$log" | head -n 10 | sed 's/^/   /'
		for f in "$art"*; do
			[ -f "$f" ] || continue
			echo "   input $f:"
			od -An -tx1 -v "$f" | head -n 16 | sed 's/^/     /'
		done
	fi
done
if [ "$found" = 0 ]; then
	echo "run.sh: no fuzz targets in build-fuzz/; run 'make fuzz-build'" >&2
	exit 1
fi
exit $status
