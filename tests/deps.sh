#!/usr/bin/env bash
# tests/deps.sh — makes sure the Debian packages the test suites need are installed.
#
# Missing packages are installed when running as root (apt-get, non-interactive, with a
# policy-rc.d that stops package scripts from starting services: the tests start their own
# servers). Otherwise the exact command to run is printed and the script exits 1.
# FCGIKIT_NO_INSTALL=1 only reports.
set -euo pipefail

# The one list. "a|b" means either package will do; the first is installed when none is.
PACKAGES=(
	libcmocka-dev        # unit and protocol tests
	libfcgi-dev          # the libfcgi comparison program (bench, interop)
	"nginx-light|nginx|nginx-full|nginx-extras"
	lighttpd
	apache2
	haproxy
	h2o
	caddy
	wrk                  # make bench
	nghttp2-client       # h2load --h1 (tests/gateway/php.py)
	php8.2-cgi
	php8.2-fpm
	libfcgi-perl
	spawn-fcgi
	fcgiwrap
	libfcgi-bin          # cgi-fcgi, run on the compat drop-in
	g++                  # fcgio.h users (compat)
	iproute2             # ss: accept-queue samples (bench)
	libclang-rt-14-dev   # libFuzzer for clang 14
	clang
	strace               # syscalls per request (bench)
	curl
	python3
)

installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing=()
for entry in "${PACKAGES[@]}"; do
	found=""
	IFS='|' read -r -a alts <<<"$entry"
	for p in "${alts[@]}"; do
		if installed "$p"; then
			found=$p
			break
		fi
	done
	[ -n "$found" ] || missing+=("${alts[0]}")
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#PACKAGES[@]} test packages are installed"
	exit 0
fi

echo "deps: missing packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ] || [ "${FCGIKIT_NO_INSTALL:-0}" = 1 ]; then
	echo "deps: install them with:"
	echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
	exit 1
fi

# Root: install. Package scripts must not start nginx, apache2, php-fpm... on the ports and
# sockets the tests use, so a policy-rc.d forbids it for the duration (unless one exists).
policy=/usr/sbin/policy-rc.d
wrote_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# written by fcgikit tests/deps.sh: do not start services\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	wrote_policy=1
	echo "deps: wrote $policy (exit 101) so that packages do not start services"
fi
cleanup() {
	if [ "$wrote_policy" = 1 ]; then
		rm -f "$policy"
		echo "deps: removed $policy"
	fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
echo "deps: running as root: apt-get update && apt-get install ${missing[*]}"
apt-get update -q </dev/null
apt-get install -y -q --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
	"${missing[@]}" </dev/null

still=()
for p in "${missing[@]}"; do
	installed "$p" || still+=("$p")
done
if [ ${#still[@]} -gt 0 ]; then
	echo "deps: still missing after apt-get install: ${still[*]}" >&2
	exit 1
fi
echo "deps: installed ${missing[*]}"
