#!/usr/bin/env bash
# bench/compat/run.sh — the same classic libfcgi program on Debian's libfcgi.so.0 and on
# fcgikit's drop-in (LD_LIBRARY_PATH=$BUILD/compat), side by side behind nginx + wrk.
#
#   bench/compat/run.sh            (make bench-compat; part of make bench)
#
# Rows (each: the Debian-built binary from tests/compat/apps, unchanged, run twice):
#   echo      the single-threaded FCGX_Accept loop; nginx opens one connection per request
#   threaded  FCGX_Accept_r in 8 threads; nginx keeps connections (fastcgi_keep_conn + keepalive)
# wrk keeps its connections to nginx. The two libraries alternate for BENCH_ROUNDS rounds
# and each row shows the median rate, so a burst of load elsewhere on the machine hits both.
# Environment: BENCH_SECONDS (5), BENCH_ROUNDS (3), BENCH_THREADS (2), BENCH_CONNS (16),
# FCGIKIT_BUILD (build). Prints both rates and drop-in/Debian per row.
set -u
cd "$(dirname "$0")/../.." || exit 2

BUILD=${FCGIKIT_BUILD:-build}
SECS=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNS:-16}
DROPIN=$PWD/$BUILD/compat

for tool in nginx wrk spawn-fcgi; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "bench/compat: $tool is not installed (tests/deps.sh installs it)" >&2
		exit 1
	fi
done
for f in "$BUILD/compat/tests/deb/echo" "$BUILD/compat/tests/deb/threaded" "$DROPIN/libfcgi.so.0"; do
	if [ ! -e "$f" ]; then
		echo "bench/compat: $f is missing (run make tests)" >&2
		exit 1
	fi
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fcgikit-bench-compat.XXXXXX") || exit 2
chmod 755 "$TMP"
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		# bounded: 3 s, then KILL
		for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.2
		done
		kill -9 "$p" 2>/dev/null
	done
	PIDS=()
}
trap 'cleanup; [ -n "${BENCH_KEEP:-}" ] || rm -rf "$TMP"' EXIT

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# nginx_conf PORT SOCK KEEP — KEEP=1: fastcgi_keep_conn with an upstream keepalive pool.
nginx_conf() {
	local port=$1 sock=$2 keep=$3 d=$TMP/nginx-$1
	mkdir -p "$d"
	local upstream="server unix:$sock;" keepconn=""
	if [ "$keep" = 1 ]; then
		upstream="server unix:$sock; keepalive 32;"
		keepconn="fastcgi_keep_conn on;"
	fi
	cat >"$d/nginx.conf" <<EOF
daemon off;
worker_processes 1;
error_log $d/error.log error;
pid $d/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $d/body;
    fastcgi_temp_path $d/fastcgi;
    proxy_temp_path $d/proxy;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    upstream app { $upstream }
    server {
        listen 127.0.0.1:$port;
        keepalive_requests 100000;
        location / {
            include /etc/nginx/fastcgi_params;
            $keepconn
            fastcgi_pass app;
        }
    }
}
EOF
	echo "$d"
}

wait_port() {
	local i
	for i in $(seq 1 50); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# run_one NAME LIB PROGRAM ARGS KEEP — prints requests/second (0 on failure).
run_one() {
	local name=$1 lib=$2 prog=$3 args=$4 keep=$5
	local sock=$TMP/$name.sock port d rate
	port=$(free_port)
	if [ "$lib" = dropin ]; then
		LD_LIBRARY_PATH=$DROPIN spawn-fcgi -n -s "$sock" -M 0666 -- "$prog" $args \
			>"$TMP/$name.app.log" 2>&1 &
	else
		env -u LD_LIBRARY_PATH spawn-fcgi -n -s "$sock" -M 0666 -- "$prog" $args \
			>"$TMP/$name.app.log" 2>&1 &
	fi
	PIDS+=($!)
	for _ in $(seq 1 50); do
		[ -S "$sock" ] && break
		sleep 0.1
	done
	d=$(nginx_conf "$port" "$sock" "$keep")
	nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" >"$d/stderr.log" 2>&1 &
	PIDS+=($!)
	if ! wait_port "$port"; then
		echo 0
		cleanup
		return
	fi
	# Warm up, then measure.
	wrk -t "$THREADS" -c "$CONNS" -d 1 "http://127.0.0.1:$port/bench?x=1" >/dev/null 2>&1
	rate=$(wrk -t "$THREADS" -c "$CONNS" -d "$SECS" "http://127.0.0.1:$port/bench?x=1" 2>&1 |
		awk '/^Requests\/sec:/ { printf "%.0f", $2 } /Non-2xx|Socket errors/ { print > "/dev/stderr" }')
	cleanup
	echo "${rate:-0}"
}

median() {
	tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : 0 }'
}

echo "bench/compat: nginx + wrk -t$THREADS -c$CONNS, ${SECS}s per run, median of $ROUNDS" \
	"alternating rounds; Debian-built programs"
printf '%-44s %14s %15s %8s\n' "program" "Debian libfcgi" "fcgikit drop-in" "ratio"
status=0
row() {
	local tag=$1 label=$2 prog=$3 args=$4 keep=$5 debs="" mines="" deb mine ratio i
	for i in $(seq 1 "$ROUNDS"); do
		debs="$debs $(run_one "$tag-deb-$i" debian "$prog" "$args" "$keep")"
		mines="$mines $(run_one "$tag-dropin-$i" dropin "$prog" "$args" "$keep")"
	done
	deb=$(echo "$debs" | median)
	mine=$(echo "$mines" | median)
	ratio=$(awk -v a="$mine" -v b="$deb" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }')
	printf '%-44s %10s r/s %11s r/s %8s\n' "$label" "$deb" "$mine" "$ratio"
	echo "    rounds: Debian$debs; drop-in$mines"
	[ "${mine:-0}" -gt 0 ] || status=1
}
row echo "echo (FCGX_Accept loop, conn per request)" "$BUILD/compat/tests/deb/echo" "" 0
row threaded "threaded (8 x FCGX_Accept_r, keep-alive)" "$BUILD/compat/tests/deb/threaded" "- 8" 1
exit $status
