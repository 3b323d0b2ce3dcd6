#!/bin/sh
# bench/client/run.sh — the client side's benchmarks (`make bench` runs this): fcgikit bench
# against hello on libfcgikit and on libfcgi side by side, the same behind nginx with wrk,
# and the load tools' own CPU cost per request. Options: see bench/client/run.py.
cd "$(dirname "$0")/../.." || exit 1
exec python3 bench/client/run.py "$@"
