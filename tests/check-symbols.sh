#!/usr/bin/env bash
# tests/check-symbols.sh LIB.so — the shared library exports only the public API: every
# defined dynamic symbol starts with fcgi_ (the linker's own _init, _fini, _edata, _end and
# __bss_start aside). Prints TAP; exits 1 when something internal leaked into the table.
set -u
lib=${1:-build/libfcgikit.so}
echo "1..2"
if [ ! -e "$lib" ]; then
	echo "not ok 1 - $lib exists"
	echo "not ok 2 - $lib exports only fcgi_ symbols # nothing to check"
	exit 1
fi
if ! syms=$(nm -D --defined-only "$lib" 2>&1); then
	echo "not ok 1 - nm -D $lib"
	printf '%s\n' "$syms" | sed 's/^/# /'
	echo "not ok 2 - $lib exports only fcgi_ symbols # nm failed"
	exit 1
fi
names=$(printf '%s\n' "$syms" | awk 'NF >= 3 { print $3 } NF == 2 { print $2 }' | sed 's/@.*//')
public=$(printf '%s\n' "$names" | grep -c '^fcgi_')
if [ "$public" -gt 0 ]; then
	echo "ok 1 - $lib exports $public fcgi_ symbols"
else
	echo "not ok 1 - $lib exports no fcgi_ symbol at all"
fi
leaked=$(printf '%s\n' "$names" | grep -v -E '^(fcgi_|_init$|_fini$|_edata$|_end$|__bss_start$)' | grep -v '^$')
if [ -z "$leaked" ]; then
	echo "ok 2 - $lib exports only fcgi_ symbols"
else
	echo "not ok 2 - $lib exports $(printf '%s\n' "$leaked" | wc -l) symbols outside fcgi_"
	printf '%s\n' "$leaked" | sed 's/^/# leaked: /'
fi
[ "$public" -gt 0 ] && [ -z "$leaked" ]
