#!/bin/sh
# tests/fuzz/smoke.sh — quick fuzz check used by `make test`: every target runs each of its
# seed inputs once (no mutation), so a regression on a known input shows up in seconds.
# TAP output: "ok N - fuzz smoke: TARGET". Skips cleanly when build-fuzz/ has not been built
# (`make fuzz-build` needs clang with libFuzzer).
cd "$(dirname "$0")/../.." || exit 1
targets=$(for f in tests/fuzz/fuzz_*.c; do [ -f "$f" ] && basename "$f" .c; done)
if [ ! -d build-fuzz ] || [ -z "$targets" ]; then
	echo "1..0 # SKIP build-fuzz/ absent (make fuzz-build)"
	exit 0
fi
# The fuzz build's UBSan recovers by default: make undefined behaviour a failure here.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
set -- $targets
echo "1..$#"
i=0
fail=0
for t in $targets; do
	i=$((i + 1))
	bin=build-fuzz/$t
	seeds=tests/fuzz/corpus/$t
	if [ ! -x "$bin" ]; then
		echo "ok $i - fuzz smoke: $t # SKIP $bin not built (make fuzz-build)"
		continue
	fi
	if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
		echo "ok $i - fuzz smoke: $t # SKIP no seeds in $seeds"
		continue
	fi
	for src in "tests/fuzz/$t.c" lib/*/*.c lib/*/*.h; do
		if [ "$src" -nt "$bin" ]; then
			echo "# $bin is older than $src: run make fuzz-build"
			break
		fi
	done
	log=$(mktemp)
	# Given files (not a directory), libFuzzer runs each of them once and stops.
	if "$bin" "$seeds"/* >"$log" 2>&1; then
		echo "ok $i - fuzz smoke: $t ($(ls "$seeds" | wc -l) seeds)"
	else
		echo "not ok $i - fuzz smoke: $t"
		grep -E 'Running:|ERROR|check failed|SUMMARY|runtime error|#[0-9] .* in [a-z]' "$log" | tail -n 16 | sed 's/^/# /'
		fail=1
	fi
	rm -f "$log"
done
exit $fail
