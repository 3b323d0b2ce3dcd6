#!/usr/bin/env bash
# tests/compat/run.sh — the libfcgi compatibility suite (doc/compat.md), TAP on stdout.
#
# Runs tests/compat/compat.py: the classic programs of tests/compat/apps/ built against Debian's
# libfcgi and against fcgikit's compat layer, and Debian's binaries on the drop-in
# libfcgi.so.0, directly (a raw FastCGI client) and behind nginx, HAProxy and lighttpd; then
# fcgiwrap, Perl FCGI and cgi-fcgi on the drop-in, and requests Debian's libfcgi mishandles.
# Exit status 0 iff every test passed.
#
# Environment: FCGIKIT_BUILD (default build) names the build directory; COMPAT_ONLY=a,b runs
# some sections (symbols, direct, unit, cgi, opensocket, threads, shutdown, robustness, dropin,
# peers); COMPAT_TIMEOUT (seconds, default 600) bounds the whole run.
set -u
cd "$(dirname "$0")/../.." || exit 2
exec timeout -k 10 "${COMPAT_TIMEOUT:-600}" python3 tests/compat/compat.py "$@"
