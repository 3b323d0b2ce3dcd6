/*
 * fuzz_cgi_head.c — libFuzzer target for the CGI response head parser
 * (fcgi_cgi_head_parse). Checks, for any input:
 *  - the result is one of: head length in 1..len, 0 (need more), FCGI_EPROTO, FCGI_ELIMIT;
 *  - every slice (names, values, reason, Location, Content-Type) lies inside the head;
 *  - names are non-empty and hold no ':' or blank; values hold no CR, LF or NUL;
 *  - a complete head ends with LF, and parsing exactly head_len bytes gives the same head;
 *  - "need more" stays "need more" (or becomes a result) as bytes are added, never turns a
 *    complete prefix into an error: parsing every prefix of a complete head gives 0;
 *  - with fewer header slots the answer is the same head or FCGI_ELIMIT.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgikit.h"

#define CHECK(c)                                                                           \
	do {                                                                                   \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);          \
			abort();                                                                       \
		}                                                                                  \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { SLOTS = 32, MAX_BYTES = 4096 };

static void inside(const char *base, size_t len, const char *p, size_t n)
{
	if (!p) {
		CHECK(n == 0);
		return;
	}
	CHECK(p >= base && n <= len && (size_t)(p - base) <= len - n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A private copy, so reads past the end are caught by ASan. */
	char *buf = malloc(size ? size : 1);
	CHECK(buf != NULL);
	memcpy(buf, data, size);
	fcgi_header hs[SLOTS];
	fcgi_cgi_head h;
	ssize_t rc = fcgi_cgi_head_parse(buf, size, &h, hs, SLOTS, MAX_BYTES);
	CHECK(rc == 0 || rc == FCGI_EPROTO || rc == FCGI_ELIMIT || (rc > 0 && (size_t)rc <= size));
	if (rc > 0) {
		size_t hl = (size_t)rc;
		CHECK(h.head_len == hl && hl <= MAX_BYTES);
		CHECK(buf[hl - 1] == '\n');
		CHECK(h.status >= 100 && h.status <= 999);
		CHECK(h.nheaders <= SLOTS);
		inside(buf, hl, h.reason, h.reason_len);
		inside(buf, hl, h.location, h.location_len);
		inside(buf, hl, h.content_type, h.content_type_len);
		for (size_t i = 0; i < h.nheaders; i++) {
			inside(buf, hl, hs[i].name, hs[i].name_len);
			inside(buf, hl, hs[i].value, hs[i].value_len);
			CHECK(hs[i].name_len > 0);
			CHECK(!memchr(hs[i].name, ':', hs[i].name_len));
			CHECK(!memchr(hs[i].name, ' ', hs[i].name_len));
			for (size_t k = 0; k < hs[i].value_len; k++) {
				char ch = hs[i].value[k];
				CHECK(ch != '\r' && ch != '\n' && ch != '\0');
			}
			if (hs[i].value_len) {
				CHECK(hs[i].value[0] != ' ' && hs[i].value[0] != '\t');
				CHECK(hs[i].value[hs[i].value_len - 1] != ' ');
			}
		}
		/* The head alone parses to the same thing. */
		fcgi_header hs2[SLOTS];
		fcgi_cgi_head h2;
		CHECK(fcgi_cgi_head_parse(buf, hl, &h2, hs2, SLOTS, MAX_BYTES) == rc);
		CHECK(h2.status == h.status && h2.nheaders == h.nheaders);
		/* Every proper prefix needs more. */
		for (size_t k = 0; k < hl; k += 1 + k / 16)
			CHECK(fcgi_cgi_head_parse(buf, k, &h2, hs2, SLOTS, MAX_BYTES) == 0);
		/* Fewer slots: the same head, or too many headers. */
		if (h.nheaders) {
			ssize_t r3 = fcgi_cgi_head_parse(buf, size, &h2, hs2, h.nheaders - 1, MAX_BYTES);
			CHECK(r3 == FCGI_ELIMIT);
		}
	} else if (rc == 0) {
		CHECK(size < MAX_BYTES);
	}
	free(buf);
	return 0;
}
