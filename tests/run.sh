#!/usr/bin/env bash
# tests/run.sh — runs every test suite and sums up their TAP output.
#
# Suites (TEST_ONLY=unit|protocol|san|interop|compat|clientpeers|gateway|pm|fuzz|symbols selects some; a comma- or
# space-separated list works too; unset runs all):
#   unit      build/tests/test_* built from tests/unit/ (cmocka), and the symbol check
#   protocol  build/tests/test_* built from tests/protocol/
#   san       build-san/tests/test_* (both of the above under ASan + UBSan)
#   fuzz      tests/fuzz/smoke.sh, when present
#   interop   python3 tests/interop/interop.py, over TCP and over Unix sockets
#   compat    tests/compat/run.sh: classic libfcgi programs built against Debian's libfcgi,
#             against fcgikit's compat headers, and run on fcgikit's libfcgi.so.0 drop-in
#   gateway   python3 tests/gateway/run.py: fcgikit gateway with curl and raw sockets in front
#             of echo, hello and php-cgi; tests/gateway/failover.py: failover under load
#             (kill -9, and a link cut between network namespaces the test creates);
#             tests/gateway/php.py: $_SERVER against nginx's, 8 MiB both ways, h2load;
#             tests/gateway/reload.py: --config, weights, hashing, SIGHUP reload under load
#   pm        python3 tests/pm/run.py: fcgikit pm with real programs behind nginx
#   clientpeers  python3 tests/clientpeers/run.py: the client and tools against php-fpm,
#             php-cgi, Perl FCGI, libfcgi and fcgikit applications
#   symbols   tests/check-symbols.sh on build/libfcgikit.so
#
# Each program runs under `timeout`. Its TAP lines are counted: `ok N - name`,
# `not ok N - name`, and `# SKIP` on either (cmocka 1.1 prints skips as `not ok N # SKIP`);
# a plan `1..0 # SKIP reason` (the whole program skipped itself) counts as one skip.
# A program that times out, prints no TAP line, or exits non-zero without a failing TAP line
# counts as one failure named after it. The last line is exactly
#   N passed, N failed, N skipped
# and the exit status is 0 iff nothing failed.
#
# Environment: FCGIKIT_BUILD (default build) and FCGIKIT_SAN_BUILD (default build-san) name the
# build directories; TEST_TIMEOUT_<SUITE> (seconds) overrides a suite's per-program timeout;
# TEST_VERBOSE=1 prints every TAP line.
set -u

cd "$(dirname "$0")/.." || exit 2

BUILD=${FCGIKIT_BUILD:-build}
SAN_BUILD=${FCGIKIT_SAN_BUILD:-build-san}
ONLY=" $(printf '%s' "${TEST_ONLY:-}" | tr ',' ' ') "
VERBOSE=${TEST_VERBOSE:-0}

# Per-program timeouts, seconds.
T_UNIT=${TEST_TIMEOUT_UNIT:-120}
T_PROTOCOL=${TEST_TIMEOUT_PROTOCOL:-240}
T_SAN=${TEST_TIMEOUT_SAN:-480}
T_FUZZ=${TEST_TIMEOUT_FUZZ:-300}
T_INTEROP=${TEST_TIMEOUT_INTEROP:-720}
T_SYMBOLS=${TEST_TIMEOUT_SYMBOLS:-30}

passed=0
failed=0
skipped=0
programs_failed=()

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fcgikit-run.XXXXXX") || exit 2
trap 'rm -rf "$TMP"' EXIT

if [ -t 1 ]; then
	C_OK=$'\e[32m' C_BAD=$'\e[31m' C_SKIP=$'\e[33m' C_OFF=$'\e[0m'
else
	C_OK='' C_BAD='' C_SKIP='' C_OFF=''
fi

want() { # want SUITE: whether TEST_ONLY selects it
	[ "$ONLY" = "  " ] || [[ "$ONLY" == *" $1 "* ]]
}

# show_stderr FILE: the error lines of a failing program's stderr, then its tail.
show_stderr() {
	[ -s "$1" ] || return 0
	if grep -q -E 'ERROR|error:|Sanitizer|runtime error|Assertion' "$1"; then
		echo "      stderr, error lines (first 20):"
		grep -E 'ERROR|error:|Sanitizer|runtime error|Assertion' "$1" | head -n 20 | sed 's/^/      | /'
	fi
	echo "      stderr (last 15 lines):"
	tail -n 15 "$1" | sed 's/^/      | /'
}

# fail_program NAME REASON [STDERR_FILE]: one failure for the program as a whole.
fail_program() {
	failed=$((failed + 1))
	programs_failed+=("$1")
	printf '%sFAIL%s  %s: %s\n' "$C_BAD" "$C_OFF" "$1" "$2"
	if [ -n "${3:-}" ]; then
		show_stderr "$3"
	fi
}

# run_prog NAME TIMEOUT CMD... — runs one program, counts its TAP lines, prints a summary.
run_prog() {
	local name=$1 limit=$2
	shift 2
	local out="$TMP/out" err="$TMP/err" rc start end
	start=$(date +%s.%N)
	timeout -k 10 "$limit" "$@" </dev/null >"$out" 2>"$err"
	rc=$?
	end=$(date +%s.%N)
	local secs
	secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')

	local p=0 f=0 s=0 line bad_lines=() skip_lines=() after_bad=0
	while IFS= read -r line; do
		line=${line%$'\r'}
		case "$line" in
		"ok "[0-9]* | "not ok "[0-9]* | "ok" | "not ok") after_bad=0 ;;
		"# ok"* | "# not ok"*) continue ;; # cmocka's group summary
		"1..0"*)
			# A plan of no tests: the whole program skipped itself ("1..0 # SKIP why").
			s=$((s + 1))
			skip_lines+=("$line")
			continue
			;;
		"#"*)
			# The diagnostics right after a failing line belong to it.
			[ "$after_bad" = 1 ] && bad_lines+=("  $line")
			continue
			;;
		*) continue ;;
		esac
		[ "$VERBOSE" = 1 ] && printf '      %s\n' "$line"
		shopt -s nocasematch
		if [[ "$line" =~ \#[[:space:]]*(SKIP|TODO) ]]; then
			s=$((s + 1))
			skip_lines+=("$line")
		elif [[ "$line" == "not ok"* ]]; then
			f=$((f + 1))
			bad_lines+=("$line")
			after_bad=1
		else
			p=$((p + 1))
		fi
		shopt -u nocasematch
	done <"$out"
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))

	local reason=""
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		reason="timed out after ${limit}s"
	elif [ $((p + f + s)) -eq 0 ]; then
		reason="printed no TAP line (exit status $rc)"
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		reason="exit status $rc although no TAP case failed"
	fi

	local counts="$p passed, $f failed, $s skipped, ${secs}s"
	if [ "$f" -eq 0 ] && [ -z "$reason" ]; then
		printf '%sok%s    %s (%s)\n' "$C_OK" "$C_OFF" "$name" "$counts"
	else
		printf '%sFAIL%s  %s (%s)\n' "$C_BAD" "$C_OFF" "$name" "$counts"
		[ "$f" -gt 0 ] && programs_failed+=("$name")
		for line in "${bad_lines[@]}"; do
			printf '      %s\n' "$line"
		done
		if [ -n "$reason" ]; then
			failed=$((failed + 1))
			[ "$f" -eq 0 ] && programs_failed+=("$name")
			printf '      %s\n' "$reason"
		fi
		show_stderr "$err"
	fi
	for line in "${skip_lines[@]}"; do
		printf '      %s%s%s\n' "$C_SKIP" "$line" "$C_OFF"
	done
}

# run_dir SUITE DIR TIMEOUT KIND — every test_* binary in DIR; KIND: unit, protocol or any.
run_dir() {
	local suite=$1 dir=$2 limit=$3 kind=$4 bin base n=0
	if [ ! -d "$dir" ]; then
		fail_program "$dir (suite $suite)" "not built (make tests / make test build it)"
		return
	fi
	for bin in "$dir"/test_*; do
		[ -x "$bin" ] && [ -f "$bin" ] || continue
		base=$(basename "$bin")
		case "$kind" in
		unit) [ -f "tests/protocol/$base.c" ] && continue ;;
		protocol) [ -f "tests/protocol/$base.c" ] || continue ;;
		esac
		# Stale binaries whose source is gone are not run.
		[ -f "tests/unit/$base.c" ] || [ -f "tests/protocol/$base.c" ] || continue
		n=$((n + 1))
		run_prog "$bin" "$limit" "$bin"
	done
	if [ "$n" -eq 0 ] && ls tests/"$kind"/test_*.c >/dev/null 2>&1; then
		fail_program "$dir (suite $suite)" "no $kind test binary built"
	fi
}

export CMOCKA_MESSAGE_OUTPUT=TAP

if want unit || want symbols; then
	if [ -e "$BUILD/libfcgikit.so" ]; then
		run_prog "check-symbols $BUILD/libfcgikit.so" "$T_SYMBOLS" \
			tests/check-symbols.sh "$BUILD/libfcgikit.so"
	else
		fail_program "check-symbols" "$BUILD/libfcgikit.so not built"
	fi
fi

if want unit; then
	FCGIKIT_BUILD=$BUILD run_dir unit "$BUILD/tests" "$T_UNIT" unit
fi

if want protocol; then
	FCGIKIT_BUILD=$BUILD run_dir protocol "$BUILD/tests" "$T_PROTOCOL" protocol
fi

if want san; then
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1 \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1 \
	FCGIKIT_BUILD=$SAN_BUILD run_dir san "$SAN_BUILD/tests" "$T_SAN" any
fi

if want unit && [ -x "$BUILD/tests/test_app" ]; then
	# the runtime again on the poll(2) backend
	FCGIKIT_POLL=1 run_prog "$BUILD/tests/test_app (poll backend)" "$T_UNIT" "$BUILD/tests/test_app"
fi

if want fuzz && [ -f tests/fuzz/smoke.sh ]; then
	FCGIKIT_BUILD=$BUILD run_prog tests/fuzz/smoke.sh "$T_FUZZ" bash tests/fuzz/smoke.sh
fi

if want interop && [ -f tests/interop/interop.py ]; then
	FCGIKIT_BUILD=$BUILD run_prog "tests/interop/interop.py (TCP)" "$T_INTEROP" \
		python3 tests/interop/interop.py
	FCGIKIT_BUILD=$BUILD run_prog "tests/interop/interop.py --unix" "$T_INTEROP" \
		python3 tests/interop/interop.py --unix
fi

if want compat && [ -f tests/compat/run.sh ]; then
	FCGIKIT_BUILD=$BUILD run_prog tests/compat/run.sh "$T_INTEROP" bash tests/compat/run.sh
fi

if want clientpeers && [ -f tests/clientpeers/run.py ]; then
	FCGIKIT_BUILD=$BUILD run_prog tests/clientpeers/run.py "$T_INTEROP" \
		python3 tests/clientpeers/run.py
fi

if want gateway && [ -f tests/gateway/run.py ]; then
	FCGIKIT_BUILD=$BUILD run_prog tests/gateway/run.py "$T_INTEROP" python3 tests/gateway/run.py
	# kill -9 of a backend under load, and a backend's link cut in a network namespace
	FCGIKIT_BUILD=$BUILD run_prog tests/gateway/failover.py "$T_INTEROP" \
		python3 tests/gateway/failover.py
	# real PHP: $_SERVER against nginx's, 8 MiB both ways, h2load --h1
	FCGIKIT_BUILD=$BUILD run_prog tests/gateway/php.py "$T_INTEROP" python3 tests/gateway/php.py
	# --config, weights, consistent hashing, SIGHUP reload under wrk load
	FCGIKIT_BUILD=$BUILD run_prog tests/gateway/reload.py "$T_INTEROP" \
		python3 tests/gateway/reload.py
	if [ -x "$SAN_BUILD/fcgikit" ] && [ -x "$SAN_BUILD/examples/echo" ]; then
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1 \
		UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1 \
		FCGIKIT_BUILD=$SAN_BUILD run_prog "tests/gateway/run.py (ASan+UBSan build)" \
			"$T_INTEROP" python3 tests/gateway/run.py
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1 \
		UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1 \
		FCGIKIT_BUILD=$SAN_BUILD run_prog "tests/gateway/php.py (ASan+UBSan build)" \
			"$T_INTEROP" python3 tests/gateway/php.py
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1 \
		UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1 \
		FCGIKIT_BUILD=$SAN_BUILD run_prog "tests/gateway/reload.py (ASan+UBSan build)" \
			"$T_INTEROP" python3 tests/gateway/reload.py
	fi
fi

if want pm && [ -f tests/pm/run.py ]; then
	FCGIKIT_BUILD=$BUILD run_prog tests/pm/run.py "$T_INTEROP" python3 tests/pm/run.py
	# the manager and the examples again, built with ASan and UBSan
	if [ -x "$SAN_BUILD/fcgikit" ] && [ -x "$SAN_BUILD/examples/echo" ]; then
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1 \
		UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1 \
		FCGIKIT_BUILD=$SAN_BUILD run_prog "tests/pm/run.py (ASan+UBSan build)" "$T_INTEROP" \
			python3 tests/pm/run.py
	fi
fi

if [ ${#programs_failed[@]} -gt 0 ]; then
	echo "failing: ${programs_failed[*]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
