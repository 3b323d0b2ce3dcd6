#!/usr/bin/env bash
# make run: the demo stack on loopback — nginx on 127.0.0.1:$PORT (default 8080) in front of
# the hello and echo examples on Unix sockets, run as pools by `fcgikit pm` (status at
# /pm-status). Runs in the foreground until Ctrl-C (or for
# DEMO_SECONDS seconds when that is set), then stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${FCGIKIT_BUILD:-build}
PORT=${PORT:-8080}

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "run: installing nginx-light (the demo's front)"
		[ -e /usr/sbin/policy-rc.d ] || printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
	else
		echo "run: nginx is needed; install it with: sudo apt-get install nginx-light" >&2
		exit 1
	fi
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

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
mkdir -p "$dir/logs"
"$BUILD/fcgikit" pm -c "$dir/pm.conf" 2>"$dir/logs/pm.log" & pids+=($!)
cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $dir/body;
	fastcgi_temp_path $dir/fcgi;
	proxy_temp_path $dir/proxy;
	uwsgi_temp_path $dir/uwsgi;
	scgi_temp_path $dir/scgi;
	upstream hello { server unix:$dir/hello.sock; keepalive 8; }
	upstream echo { server unix:$dir/echo.sock; keepalive 8; }
	upstream pm_status { server unix:$dir/pm-status.sock; }
	server {
		listen 127.0.0.1:$PORT;
		client_max_body_size 16m;
		location /echo {
			include /etc/nginx/fastcgi_params;
			fastcgi_keep_conn on;
			fastcgi_pass echo;
		}
		location /pm-status {
			include /etc/nginx/fastcgi_params;
			fastcgi_pass pm_status;
		}
		location / {
			include /etc/nginx/fastcgi_params;
			fastcgi_keep_conn on;
			fastcgi_pass hello;
		}
	}
}
CONF
"$NGINX" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off; master_process off;' & pids+=($!)

for _ in $(seq 50); do
	[ -S "$dir/hello.sock" ] && [ -S "$dir/echo.sock" ] &&
		curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
	sleep 0.1
done
cat <<MSG
fcgikit demo: nginx on 127.0.0.1:$PORT -> fcgikit pm -> libfcgikit examples, sockets in $dir
  curl http://127.0.0.1:$PORT/
  curl -d 'any body' 'http://127.0.0.1:$PORT/echo?x=1' -i
  curl 'http://127.0.0.1:$PORT/pm-status'          (?json, ?json&full, /pm-status/metrics)
  $BUILD/fcgikit pm status --socket unix:$dir/pm-status.sock
Ctrl-C stops it.
MSG
if [ -n "${DEMO_SECONDS:-}" ]; then
	sleep "$DEMO_SECONDS"
else
	wait "${pids[0]}"
fi
