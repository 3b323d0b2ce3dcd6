#!/usr/bin/env bash
# make run: the demo stack on loopback — fcgikit gateway on 127.0.0.1:$PORT (default 8080), in
# front of the hello example run as a pool by fcgikit pm (beside it an echo pool), plus a
# static demo page. Nothing but fcgikit: no web server to install. Runs in the foreground
# until Ctrl-C (or for DEMO_SECONDS seconds when that is set), then stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${FCGIKIT_BUILD:-build}
PORT=${PORT:-8080}

dir=$(mktemp -d /tmp/fcgikit-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

ex=$(cd "$BUILD/examples" && pwd)
cat >"$dir/pm.conf" <<CONF
[global]
status_listen = unix:$dir/pm-status.sock
[hello]
listen = unix:$dir/hello.sock
command = $ex/hello --threads 2
pm = static
pm.max_children = 2
[echo]
listen = unix:$dir/echo.sock
command = $ex/echo --threads 2
pm = dynamic
pm.max_children = 4
pm.min_spare_servers = 1
pm.max_spare_servers = 2
request_slowlog_timeout = 2s
CONF
mkdir -p "$dir/logs" "$dir/www"
"$BUILD/fcgikit" pm -c "$dir/pm.conf" 2>"$dir/logs/pm.log" & pids+=($!)
cat >"$dir/www/index.html" <<HTML
<!doctype html>
<title>fcgikit demo</title>
<h1>fcgikit demo</h1>
<p>This page is a static file served by <code>fcgikit gateway</code>.
Everything else under <a href="/">/</a> goes to the <code>hello</code> example, run as a pool of
workers by <code>fcgikit pm</code>. The gateway's own status: <a href="/gw-status">/gw-status</a>.
HTML
"$BUILD/fcgikit" gateway --listen "127.0.0.1:$PORT" --root "$dir/www" \
	--backend "unix:$dir/hello.sock" --status-path /gw-status \
	--access-log "$dir/logs/access.log" 2>"$dir/logs/gateway.log" & pids+=($!)

for _ in $(seq 50); do
	[ -S "$dir/hello.sock" ] && [ -S "$dir/echo.sock" ] &&
		curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
	sleep 0.1
done
cat <<MSG
fcgikit demo: fcgikit gateway on 127.0.0.1:$PORT -> fcgikit pm -> libfcgikit examples ($dir)
  curl http://127.0.0.1:$PORT/                       hello, from a pool of 2 workers
  curl http://127.0.0.1:$PORT/index.html             a static page
  curl http://127.0.0.1:$PORT/gw-status              the gateway (JSON; /gw-status/metrics)
  $BUILD/fcgikit pm status --socket unix:$dir/pm-status.sock
  $BUILD/fcgikit call -i -d 'any body' unix:$dir/echo.sock '/echo?x=1'
Ctrl-C stops it. Logs in $dir/logs.
MSG
if [ -n "${DEMO_SECONDS:-}" ]; then
	sleep "$DEMO_SECONDS"
else
	wait "${pids[0]}"
fi
