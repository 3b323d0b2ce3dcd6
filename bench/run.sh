#!/usr/bin/env bash
# make bench: every side-by-side benchmark, one after the other. Each prints its table; the
# machine is shared and noisy, so read ratios and per-request counts, not absolute rates.
# BENCH_SECONDS sets the length of each measured run (default 5).
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
secs=${BENCH_SECONDS:-5}
echo "== libfcgikit vs libfcgi behind nginx and HAProxy (bench/app)"
python3 bench/app/run.py --seconds "$secs" || status=1
echo
echo "== fcgikit bench vs libfcgi, and the load tools' own cost (bench/client)"
bash bench/client/run.sh || status=1
echo
echo "== fcgikit pm vs spawn-fcgi, and reloads under load vs php-fpm (bench/pm)"
python3 bench/pm/run.py --seconds "$secs" || status=1
echo
echo "== fcgikit gateway vs nginx, lighttpd and HAProxy in front of the same backend (bench/gateway)"
python3 bench/gateway/run.py --seconds "$secs" || status=1
if [ -f bench/compat/run.sh ]; then
	echo
	echo "== the same libfcgi program on Debian's libfcgi and on fcgikit's drop-in (bench/compat)"
	bash bench/compat/run.sh || status=1
fi
exit $status
