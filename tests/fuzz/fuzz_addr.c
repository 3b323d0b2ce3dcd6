/*
 * fuzz_addr.c — libFuzzer target for the address strings and allow-lists that come from
 * outside (command lines, FCGI_WEB_SERVER_ADDRS): fk_addr_parse, fk_addr_format round-trips,
 * fk_netlist_parse and fk_netlist_match. Host names are not resolved here: inputs holding
 * letters outside hex digits are only fed to the list parser, which never resolves.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgikit.h"
#include "util/addr.h"
#include "util/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int resolvable_name(const char *s)
{
	for (; *s; s++)
		if ((*s >= 'g' && *s <= 'z' && *s != 'x') || (*s >= 'G' && *s <= 'Z'))
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 512)
		return 0;
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = 0;

	fk_net *nets;
	size_t n;
	if (fk_netlist_parse(s, &nets, &n) == FCGI_OK) {
		struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
		struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
		int m4 = fk_netlist_match(nets, n, (struct sockaddr *)&a4);
		int m6 = fk_netlist_match(nets, n, (struct sockaddr *)&a6);
		if (n == 0 && (!m4 || !m6))
			abort(); /* an empty list allows everyone */
		fk_free(nets);
	}

	if (!resolvable_name(s) && strncmp(s, "unix:", 5) && s[0] != '/') {
		fk_addr a, b;
		if (fk_addr_parse(s, &a) == FCGI_OK) {
			char text[300];
			if (fk_addr_format((struct sockaddr *)&a.ss, a.len, text, sizeof text) == FCGI_OK) {
				/* What we print, we must read back to the same address. */
				if (fk_addr_parse(text, &b) != FCGI_OK || a.len != b.len ||
				    memcmp(&a.ss, &b.ss, a.len))
					abort();
			}
		}
	} else if (!resolvable_name(s) || !strncmp(s, "unix:", 5) || s[0] == '/') {
		fk_addr a;
		if ((s[0] == '/' || !strncmp(s, "unix:", 5)) && fk_addr_parse(s, &a) == FCGI_OK) {
			char text[300];
			fk_addr_format((struct sockaddr *)&a.ss, a.len, text, sizeof text);
		}
	}
	free(s);
	return 0;
}
