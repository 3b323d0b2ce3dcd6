/*
 * test_http.c — the gateway's HTTP/1.1 request-head parser and chunked decoder
 * (lib/http/http.c): the fields of accepted requests, every refusal with the status the
 * gateway must answer (smuggling shapes, limits, versions, target forms), that a request's
 * answer does not depend on how its bytes were split into reads (with and without the
 * prev_len hint), pipelining from one buffer, and the chunked decoder fed whole and one byte
 * at a time. Pure functions: no sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fcgikit.h"
#include "http/http.h"

/* ---------------------------------------------------------------- helpers */

/* The code's name, from the one list (local, so the file also links with http.c alone). */
static const char *err_name(int rc)
{
	switch (rc) {
#define NAME_(name, code, text)                                                                    \
	case code:                                                                                 \
		return "FCGI_" #name;
		FCGI_ERRNO_MAP(NAME_)
#undef NAME_
	default:
		return rc > 0 ? "(length)" : "?";
	}
}

#define NSLOTS 128

typedef struct parsed {
	fk_http_req req;
	fk_http_header slots[NSLOTS];
	int rc, status;
	const char *why;
} parsed;

/* Parses s[0..len) from a heap copy of exactly len bytes, so ASan sees any read past it. */
static int parse_n(parsed *p, const char *s, size_t len, size_t prev, const fk_http_limits *lim,
                   unsigned nslots)
{
	char *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	memcpy(copy, s, len);
	memset(&p->req, 0, sizeof p->req);
	p->req.headers = p->slots;
	p->req.nheaders = nslots;
	p->rc = fk_http_parse_request(copy, len, prev, lim, &p->req, &p->status, &p->why);
	/* Slices must point into the copy; rebase them onto s so callers may compare. */
	if (p->rc > 0) {
		ptrdiff_t d = s - copy;
		fk_http_slice *sl[] = {&p->req.method, &p->req.target, &p->req.path, &p->req.query,
		                       &p->req.host};
		for (size_t i = 0; i < sizeof sl / sizeof sl[0]; i++) {
			if (!sl[i]->p || (sl[i]->n == 1 && sl[i]->p[0] == '/' &&
			                  (sl[i]->p < copy || sl[i]->p >= copy + len)))
				continue; /* NULL host, or the static "/" of absolute-form */
			assert_true(sl[i]->p >= copy && sl[i]->p + sl[i]->n <= copy + p->rc);
			sl[i]->p += d;
		}
		for (unsigned i = 0; i < p->req.nheaders; i++) {
			fk_http_header *h = &p->slots[i];
			assert_true(h->name.p >= copy && h->name.p + h->name.n <= copy + p->rc);
			assert_true(h->value.p >= copy && h->value.p + h->value.n <= copy + p->rc);
			h->name.p += d;
			h->value.p += d;
		}
	}
	free(copy);
	return p->rc;
}

static int parse_s(parsed *p, const char *s) { return parse_n(p, s, strlen(s), 0, NULL, NSLOTS); }

static void assert_slice(fk_http_slice sl, const char *want)
{
	if (sl.n != strlen(want) || (sl.n && memcmp(sl.p, want, sl.n)))
		fail_msg("slice \"%.*s\", want \"%s\"", (int)sl.n, sl.p ? sl.p : "", want);
}

/* ---------------------------------------------------------------- accepted requests */

static void test_simple_get(void **state)
{
	(void)state;
	parsed p;
	const char *s = "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\n"
	                "User-Agent:  curl/8 \t\r\nX-Empty:\r\nAccept: */*\r\n\r\n";
	assert_int_equal(parse_s(&p, s), (int)strlen(s));
	assert_int_equal(p.status, 0);
	assert_null(p.why);
	assert_slice(p.req.method, "GET");
	assert_slice(p.req.target, "/a/b?x=1&y=2");
	assert_slice(p.req.path, "/a/b");
	assert_slice(p.req.query, "x=1&y=2");
	assert_int_equal(p.req.form, FK_HTTP_FORM_ORIGIN);
	assert_int_equal(p.req.minor, 1);
	assert_int_equal(p.req.keep_alive, 1);
	assert_int_equal(p.req.expect_continue, 0);
	assert_int_equal(p.req.body, FK_HTTP_BODY_NONE);
	assert_int_equal(p.req.content_length, 0);
	assert_slice(p.req.host, "example.com");
	assert_int_equal(p.req.nheaders, 4);
	assert_slice(p.slots[0].name, "Host");
	assert_slice(p.slots[1].name, "User-Agent");
	assert_slice(p.slots[1].value, "curl/8"); /* OWS trimmed on both sides */
	assert_slice(p.slots[2].name, "X-Empty");
	assert_slice(p.slots[2].value, "");
	assert_slice(p.slots[3].value, "*/*");
}

static void test_query_forms(void **state)
{
	(void)state;
	parsed p;
	assert_true(parse_s(&p, "GET / HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
	assert_slice(p.req.path, "/");
	assert_slice(p.req.query, "");
	assert_true(parse_s(&p, "GET /x? HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
	assert_slice(p.req.path, "/x");
	assert_slice(p.req.query, "");
	assert_true(parse_s(&p, "GET /x?a?b=/c HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
	assert_slice(p.req.path, "/x");
	assert_slice(p.req.query, "a?b=/c");
	/* Characters outside RFC 3986 but printable are passed on (curl sends them raw). */
	assert_true(parse_s(&p, "GET /{a}|b\\c%zz HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
	assert_slice(p.req.path, "/{a}|b\\c%zz");
}

static void test_absolute_form(void **state)
{
	(void)state;
	parsed p;
	assert_true(
	        parse_s(&p, "GET http://Example.com:8080/p/q?z HTTP/1.1\r\nHost: other\r\n\r\n") >
	        0);
	assert_int_equal(p.req.form, FK_HTTP_FORM_ABSOLUTE);
	assert_slice(p.req.host, "Example.com:8080"); /* the target wins over Host */
	assert_slice(p.req.path, "/p/q");
	assert_slice(p.req.query, "z");
	assert_true(parse_s(&p, "GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
	assert_slice(p.req.host, "h");
	assert_slice(p.req.path, "/"); /* empty path: the static "/" */
	assert_slice(p.req.query, "");
	assert_true(parse_s(&p, "GET http://[::1]:81?q=1 HTTP/1.1\r\nHost: x\r\n\r\n") > 0);
	assert_slice(p.req.host, "[::1]:81");
	assert_slice(p.req.path, "/");
	assert_slice(p.req.query, "q=1");
	/* HTTP/1.0 needs no Host; the target gives one */
	assert_true(parse_s(&p, "GET http://h/ HTTP/1.0\r\n\r\n") > 0);
	assert_slice(p.req.host, "h");
}

static void test_asterisk_form(void **state)
{
	(void)state;
	parsed p;
	assert_true(parse_s(&p, "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
	assert_int_equal(p.req.form, FK_HTTP_FORM_ASTERISK);
	assert_slice(p.req.path, "*");
	assert_slice(p.req.query, "");
	assert_slice(p.req.target, "*");
}

static void test_versions_and_keep_alive(void **state)
{
	(void)state;
	parsed p;
	assert_true(parse_s(&p, "GET / HTTP/1.0\r\n\r\n") > 0);
	assert_int_equal(p.req.minor, 0);
	assert_int_equal(p.req.keep_alive, 0);
	assert_null(p.req.host.p);
	assert_int_equal(p.req.host.n, 0);
	assert_true(parse_s(&p, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") > 0);
	assert_int_equal(p.req.keep_alive, 1);
	assert_true(parse_s(&p, "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n") > 0);
	assert_int_equal(p.req.keep_alive, 0);
	assert_true(parse_s(&p, "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n") >
	            0);
	assert_int_equal(p.req.keep_alive, 0);
	assert_true(parse_s(&p, "GET / HTTP/1.1\r\nHost: h\r\nConnection: te\r\n"
	                        "Connection: ,, close ,\r\n\r\n") > 0);
	assert_int_equal(p.req.keep_alive, 0);
	assert_true(parse_s(&p, "GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n") > 0);
	assert_int_equal(p.req.keep_alive, 1);
	/* 1.x with x > 1 is read as 1.1 (RFC 9110 §2.5) */
	assert_true(parse_s(&p, "GET / HTTP/1.7\r\nHost: h\r\n\r\n") > 0);
	assert_int_equal(p.req.minor, 1);
	assert_int_equal(p.req.keep_alive, 1);
}

static void test_bodies(void **state)
{
	(void)state;
	parsed p;
	assert_true(parse_s(&p, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0042\r\n\r\n") > 0);
	assert_int_equal(p.req.body, FK_HTTP_BODY_LENGTH);
	assert_int_equal(p.req.content_length, 42);
	assert_true(parse_s(&p, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n") > 0);
	assert_int_equal(p.req.body, FK_HTTP_BODY_LENGTH);
	assert_int_equal(p.req.content_length, 0);
	assert_true(parse_s(&p, "POST / HTTP/1.1\r\nHost: h\r\n"
	                        "Content-Length: 18446744073709551615\r\n\r\n") > 0);
	assert_true(p.req.content_length == UINT64_MAX);
	assert_true(
	        parse_s(&p, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n") >
	        0);
	assert_int_equal(p.req.body, FK_HTTP_BODY_CHUNKED);
	assert_int_equal(p.req.content_length, 0);
	assert_true(
	        parse_s(&p, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ChunKed \r\n\r\n") >
	        0);
	assert_int_equal(p.req.body, FK_HTTP_BODY_CHUNKED);
	/* empty list elements are ignored (RFC 9110 §5.6.1) */
	assert_true(
	        parse_s(&p, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked,\r\n\r\n") >
	        0);
	assert_int_equal(p.req.body, FK_HTTP_BODY_CHUNKED);
	/* a name that only looks like Transfer-Encoding is just another header */
	assert_true(
	        parse_s(&p, "POST / HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\n\r\n") >
	        0);
	assert_int_equal(p.req.body, FK_HTTP_BODY_NONE);
}

static void test_expect(void **state)
{
	(void)state;
	parsed p;
	assert_true(parse_s(&p, "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n"
	                        "Content-Length: 3\r\n\r\n") > 0);
	assert_int_equal(p.req.expect_continue, 1);
	assert_true(parse_s(&p, "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
	                        "Transfer-Encoding: chunked\r\n\r\n") > 0);
	assert_int_equal(p.req.expect_continue, 1);
	/* no body announced, or HTTP/1.0: nothing to wait for (RFC 9110 §10.1.1) */
	assert_true(parse_s(&p, "GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n") > 0);
	assert_int_equal(p.req.expect_continue, 0);
	assert_true(parse_s(&p, "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
	                        "Content-Length: 0\r\n\r\n") > 0);
	assert_int_equal(p.req.expect_continue, 0);
	assert_true(parse_s(&p, "PUT / HTTP/1.0\r\nExpect: 100-continue\r\n"
	                        "Content-Length: 3\r\n\r\n") > 0);
	assert_int_equal(p.req.expect_continue, 0);
	assert_true(parse_s(&p, "PUT / HTTP/1.1\r\nHost: h\r\nExpect: something-else\r\n"
	                        "Content-Length: 3\r\n\r\n") > 0);
	assert_int_equal(p.req.expect_continue, 0);
}

static void test_host_values(void **state)
{
	(void)state;
	parsed p;
	static const char *const good[] = {
	        "h", "a.b.c", "a-b_c~1:80", "10.0.0.1:0", "[::1]", "[fe80::1%25eth0]:8080", "x:"};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		char buf[200];
		snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", good[i]);
		if (parse_s(&p, buf) <= 0)
			fail_msg("Host: %s refused: %s", good[i], p.why);
		assert_slice(p.req.host, good[i]);
	}
	/* empty Host is valid (a target without authority) */
	assert_true(parse_s(&p, "GET / HTTP/1.1\r\nHost:\r\n\r\n") > 0);
	assert_int_equal(p.req.host.n, 0);
	assert_non_null(p.req.host.p);
}

static void test_leading_empty_lines(void **state)
{
	(void)state;
	parsed p;
	const char *s = "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
	assert_int_equal(parse_s(&p, s), (int)strlen(s));
	assert_slice(p.req.method, "GET");
	assert_int_equal(parse_s(&p, "\r\n"), FCGI_EAGAIN);
	assert_int_equal(parse_s(&p, "\r\n\r\n"), FCGI_EAGAIN);
	assert_int_equal(parse_n(&p, "", 0, 0, NULL, NSLOTS), FCGI_EAGAIN);
	assert_int_equal(p.status, 0);
	assert_null(p.why);
}

static void test_find(void **state)
{
	(void)state;
	parsed p;
	assert_true(parse_s(&p, "GET / HTTP/1.1\r\nHOST: h\r\nx-a: 1\r\nX-A: 2\r\n\r\n") > 0);
	const fk_http_header *h = fk_http_find(&p.req, "x-a");
	assert_non_null(h);
	assert_slice(h->value, "1");
	assert_true(fk_http_header_is(&p.slots[0], "host"));
	assert_false(fk_http_header_is(&p.slots[0], "hos"));
	assert_false(fk_http_header_is(&p.slots[0], "hostx"));
	assert_null(fk_http_find(&p.req, "x-b"));
	assert_null(fk_http_find(&p.req, "x"));
}

static void test_status_text(void **state)
{
	(void)state;
	assert_string_equal(fk_http_status_text(400), "Bad Request");
	assert_string_equal(fk_http_status_text(413), "Content Too Large");
	assert_string_equal(fk_http_status_text(414), "URI Too Long");
	assert_string_equal(fk_http_status_text(431), "Request Header Fields Too Large");
	assert_string_equal(fk_http_status_text(501), "Not Implemented");
	assert_string_equal(fk_http_status_text(505), "HTTP Version Not Supported");
	assert_string_equal(fk_http_status_text(200), "");
}

/* ---------------------------------------------------------------- refusals */

#define H11 "Host: h\r\n"

typedef struct reject {
	const char *req;
	size_t len; /* 0: strlen */
	int rc, status;
} reject;

#define R400(s)                                                                                    \
	{                                                                                          \
		s, 0, FCGI_EPROTO, 400                                                             \
	}
#define R501(s)                                                                                    \
	{                                                                                          \
		s, 0, FCGI_EPROTO, 501                                                             \
	}
#define R505(s)                                                                                    \
	{                                                                                          \
		s, 0, FCGI_EPROTO, 505                                                             \
	}
#define RN400(s)                                                                                   \
	{                                                                                          \
		s, sizeof(s) - 1, FCGI_EPROTO, 400                                                 \
	} /* with a NUL inside */

static const reject rejects[] = {
        /* request line */
        R400("GET  / HTTP/1.1\r\n" H11 "\r\n"),
        R400("GET / HTTP/1.1 \r\n" H11 "\r\n"),
        R400("GET /  HTTP/1.1\r\n" H11 "\r\n"),
        R400(" GET / HTTP/1.1\r\n" H11 "\r\n"),
        R400("GET\t/ HTTP/1.1\r\n" H11 "\r\n"),
        R400("G@T / HTTP/1.1\r\n" H11 "\r\n"),
        R400("GET /\r\n\r\n"),
        R400("GET / \r\n\r\n"),
        R400("GET / http/1.1\r\n" H11 "\r\n"),
        R400("GET / HTTP/1.10\r\n" H11 "\r\n"),
        R400("GET / HTTP/1.\r\n" H11 "\r\n"),
        R400("GET / HTTP/11\r\n" H11 "\r\n"),
        R400("GET / HTTP/1,1\r\n" H11 "\r\n"),
        R505("GET / HTTP/2.0\r\n" H11 "\r\n"),
        R505("GET / HTTP/0.9\r\n" H11 "\r\n"),
        R505("GET / HTTP/3.1\r\n" H11 "\r\n"),
        R505("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        R501("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
        R501("CONNECT /x HTTP/1.1\r\n" H11 "\r\n"),
        R400("GET * HTTP/1.1\r\n" H11 "\r\n"),
        R400("OPTIONS ** HTTP/1.1\r\n" H11 "\r\n"),
        R400("GET example.com HTTP/1.1\r\n" H11 "\r\n"),
        R400("GET example.com:80 HTTP/1.1\r\n" H11 "\r\n"),
        R400("GET ftp://h/x HTTP/1.1\r\n" H11 "\r\n"),
        R400("GET http:/h/x HTTP/1.1\r\n" H11 "\r\n"),
        R400("GET http://u:p@h/x HTTP/1.1\r\n" H11 "\r\n"),
        R400("GET http:///x HTTP/1.1\r\n" H11 "\r\n"),
        R400("GET http://h:8x/ HTTP/1.1\r\n" H11 "\r\n"),
        R400("GET http://h\"/ HTTP/1.1\r\n" H11 "\r\n"),
        R400("GET /a#frag HTTP/1.1\r\n" H11 "\r\n"),
        R400("GET /a\tb HTTP/1.1\r\n" H11 "\r\n"),
        R400("GET /a\x7f HTTP/1.1\r\n" H11 "\r\n"),
        R400("GET /\xc3\xa9 HTTP/1.1\r\n" H11 "\r\n"),
        RN400("GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n"),
        /* line endings */
        R400("GET / HTTP/1.1\nHost: h\n\n"),
        R400("GET / HTTP/1.1\r\nHost: h\n\r\n"),
        R400("GET / HTTP/1.1\r\nHost: h\r\n\n"),
        R400("\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"),
        R400("GET / HTTP/1.1\rHost: h\r\n\r\n"),
        R400("GET / HTTP/1.1\r\nX: a\rb\r\n" H11 "\r\n"),
        R400("GET / HTTP/1.1\r\n" H11 "\r\r\n"),
        R400("\r\rGET / HTTP/1.1\r\n" H11 "\r\n"),
        /* header lines */
        R400("GET / HTTP/1.1\r\n" H11 "X: a\r\n b\r\n\r\n"),
        R400("GET / HTTP/1.1\r\n" H11 "X: a\r\n\tb\r\n\r\n"),
        R400("GET / HTTP/1.1\r\n Host: h\r\n\r\n"),
        R400("GET / HTTP/1.1\r\nHost : h\r\n\r\n"),
        R400("GET / HTTP/1.1\r\n" H11 "Content-Length\t: 5\r\n\r\n"),
        R400("GET / HTTP/1.1\r\n" H11 ": empty name\r\n\r\n"),
        R400("GET / HTTP/1.1\r\n" H11 "X a: b\r\n\r\n"),
        R400("GET / HTTP/1.1\r\n" H11 "X(: b\r\n\r\n"),
        R400("GET / HTTP/1.1\r\n" H11 "NoColon\r\n\r\n"),
        R400("GET / HTTP/1.1\r\n" H11 "X: a\x01z\r\n\r\n"),
        R400("GET / HTTP/1.1\r\n" H11 "X: a\x7fz\r\n\r\n"),
        R400("GET / HTTP/1.1\r\n" H11 "X: \x0b\r\n\r\n"),
        RN400("GET / HTTP/1.1\r\nHost: h\r\nX: a\0z\r\n\r\n"),
        /* Content-Length */
        R400("POST / HTTP/1.1\r\n" H11 "Content-Length: -1\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Content-Length: +1\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Content-Length: 0x10\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Content-Length: 1 2\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Content-Length: 1.0\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Content-Length: 5,5\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Content-Length: 5, 6\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Content-Length:\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Content-Length: 18446744073709551616\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Content-Length: 99999999999999999999999\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\ncontent-length: 6\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Content-Length: \xd9\xa1\r\n\r\n"),
        /* Transfer-Encoding: smuggling shapes */
        R400("POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"),
        R400("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked, gzip\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked, chunked\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n"
             "Transfer-Encoding: chunked\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11
             "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked;q=1\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: \"chunked\"\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding:\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: ,\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked chunked\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding : chunked\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: \x0b"
             "chunked\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding:\r\n chunked\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 " Transfer-Encoding: chunked\r\n\r\n"),
        R400("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\nContent-Length: 5\r\n\r\n"),
        R501("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip\r\n\r\n"),
        R501("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n"),
        R501("POST / HTTP/1.1\r\n" H11
             "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
        R501("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: xchunked\r\n\r\n"),
        R501("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: identity\r\n\r\n"),
        /* Host */
        R400("GET / HTTP/1.1\r\n\r\n"),
        R400("GET http://h/ HTTP/1.1\r\n\r\n"),
        R400("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
        R400("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"),
        R400("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
        R400("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"),
        R400("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
        R400("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"),
        R400("GET / HTTP/1.1\r\nHost: []\r\n\r\n"),
        R400("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"),
        R400("GET / HTTP/1.1\r\nHost: :80\r\n\r\n"),
};

static void test_rejects(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof rejects / sizeof rejects[0]; i++) {
		const reject *r = &rejects[i];
		size_t len = r->len ? r->len : strlen(r->req);
		parsed p;
		parse_n(&p, r->req, len, 0, NULL, NSLOTS);
		if (p.rc != r->rc || p.status != r->status)
			fail_msg("case %zu \"%.*s\": rc %s status %d (%s), want %s %d", i, (int)len,
			         r->req, err_name(p.rc), p.status, p.why ? p.why : "-",
			         err_name(r->rc), r->status);
		assert_non_null(p.why);
		assert_true(strlen(p.why) > 0);
	}
}

/* "a,b" is a reg-name with a sub-delim: valid URI syntax, so a valid Host. A gateway that
 * wants one host name per Host compares it against its configuration. */
static void test_host_comma_is_reg_name(void **state)
{
	(void)state;
	parsed p;
	assert_true(parse_s(&p, "GET / HTTP/1.1\r\nHost: a,b\r\n\r\n") > 0);
}

/* ---------------------------------------------------------------- limits */

/* A request line of exactly n bytes: "GET /aaa... HTTP/1.1". */
static char *reqline_of(size_t n)
{
	char *s = malloc(n + 64);
	assert_non_null(s);
	assert_true(n >= 15);
	memcpy(s, "GET /", 5);
	memset(s + 5, 'a', n - 14);
	memcpy(s + n - 9, " HTTP/1.1", 9);
	strcpy(s + n, "\r\nHost: h\r\n\r\n");
	return s;
}

static void test_request_line_limit(void **state)
{
	(void)state;
	fk_http_limits lim = {.max_line = 40};
	parsed p;
	char *ok = reqline_of(40), *big = reqline_of(41);
	assert_int_equal(parse_n(&p, ok, strlen(ok), 0, &lim, NSLOTS), (int)strlen(ok));
	assert_int_equal(parse_n(&p, big, strlen(big), 0, &lim, NSLOTS), FCGI_ETOOBIG);
	assert_int_equal(p.status, 414);
	/* known before the line ends: 41 bytes without a CR are enough */
	assert_int_equal(parse_n(&p, big, 41, 0, &lim, NSLOTS), FCGI_ETOOBIG);
	assert_int_equal(p.status, 414);
	assert_int_equal(parse_n(&p, big, 40, 0, &lim, NSLOTS), FCGI_EAGAIN);
	free(ok);
	free(big);
	/* default 8192: a long URI trickling in is refused without waiting for its end */
	size_t n = 9000;
	char *s = malloc(n);
	memcpy(s, "GET /", 5);
	memset(s + 5, 'x', n - 5);
	assert_int_equal(parse_n(&p, s, n, 0, NULL, NSLOTS), FCGI_ETOOBIG);
	assert_int_equal(p.status, 414);
	assert_int_equal(parse_n(&p, s, 8192, 0, NULL, NSLOTS), FCGI_EAGAIN);
	assert_int_equal(parse_n(&p, s, 8193, 0, NULL, NSLOTS), FCGI_ETOOBIG);
	free(s);
}

static void test_header_line_limit(void **state)
{
	(void)state;
	fk_http_limits lim = {.max_line = 20};
	parsed p;
	/* "X: " + 17 = 20 bytes: fits; 21 does not */
	const char *ok = "GET / HTTP/1.1\r\nHost: h\r\nX: 12345678901234567\r\n\r\n";
	const char *big = "GET / HTTP/1.1\r\nHost: h\r\nX: 123456789012345678\r\n\r\n";
	assert_int_equal(parse_n(&p, ok, strlen(ok), 0, &lim, NSLOTS), (int)strlen(ok));
	assert_int_equal(parse_n(&p, big, strlen(big), 0, &lim, NSLOTS), FCGI_ETOOBIG);
	assert_int_equal(p.status, 431);
}

static void test_head_limit(void **state)
{
	(void)state;
	const char *s = "GET / HTTP/1.1\r\nHost: h\r\nX: 1\r\n\r\n";
	size_t n = strlen(s);
	parsed p;
	fk_http_limits lim = {.max_head = n};
	assert_int_equal(parse_n(&p, s, n, 0, &lim, NSLOTS), (int)n);
	lim.max_head = n - 1;
	assert_int_equal(parse_n(&p, s, n, 0, &lim, NSLOTS), FCGI_ETOOBIG);
	assert_int_equal(p.status, 431);
	assert_int_equal(parse_n(&p, s, n - 1, 0, &lim, NSLOTS), FCGI_EAGAIN);
	/* a pipelined byte after the head does not count against it */
	char two[128];
	snprintf(two, sizeof two, "%sG", s);
	lim.max_head = n;
	assert_int_equal(parse_n(&p, two, n + 1, 0, &lim, NSLOTS), (int)n);
	/* default 64 KiB: endless short header lines are refused once past it */
	size_t big = 70000;
	char *b = malloc(big);
	memcpy(b, "GET / HTTP/1.1\r\n", 16);
	for (size_t i = 16; i + 6 <= big; i += 6)
		memcpy(b + i, "X: 1\r\n", 6);
	assert_int_equal(parse_n(&p, b, 65536, 0, NULL, NSLOTS), FCGI_EAGAIN);
	assert_int_equal(parse_n(&p, b, 65537, 0, NULL, NSLOTS), FCGI_ETOOBIG);
	assert_int_equal(p.status, 431);
	free(b);
}

static void test_header_count_limit(void **state)
{
	(void)state;
	const char *s = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
	parsed p;
	fk_http_limits lim = {.max_headers = 3};
	assert_int_equal(parse_n(&p, s, strlen(s), 0, &lim, NSLOTS), (int)strlen(s));
	assert_int_equal(p.req.nheaders, 3);
	lim.max_headers = 2;
	assert_int_equal(parse_n(&p, s, strlen(s), 0, &lim, NSLOTS), FCGI_ETOOBIG);
	assert_int_equal(p.status, 431);
	/* the caller's slots are a limit too */
	assert_int_equal(parse_n(&p, s, strlen(s), 0, NULL, 3), (int)strlen(s));
	assert_int_equal(parse_n(&p, s, strlen(s), 0, NULL, 2), FCGI_ETOOBIG);
	assert_int_equal(p.status, 431);
	assert_int_equal(parse_n(&p, s, strlen(s), 0, NULL, 0), FCGI_ETOOBIG);
	/* no slots at all is fine for a head without headers (HTTP/1.0) */
	assert_int_equal(parse_n(&p, "GET / HTTP/1.0\r\n\r\n", 18, 0, NULL, 0), 18);
	/* default 100 */
	char *b = malloc(16 + 101 * 6 + 2);
	memcpy(b, "GET / HTTP/1.0\r\n", 16);
	for (int i = 0; i < 101; i++)
		memcpy(b + 16 + i * 6, "X: 1\r\n", 6);
	memcpy(b + 16 + 101 * 6, "\r\n", 2);
	assert_int_equal(parse_n(&p, b, 16 + 101 * 6 + 2, 0, NULL, NSLOTS), FCGI_ETOOBIG);
	assert_int_equal(p.status, 431);
	memcpy(b + 16 + 100 * 6, "\r\n", 2);
	assert_int_equal(parse_n(&p, b, 16 + 100 * 6 + 2, 0, NULL, NSLOTS), 16 + 100 * 6 + 2);
	free(b);
}

static void test_body_limit(void **state)
{
	(void)state;
	parsed p;
	fk_http_limits lim = {.max_body = 10};
	const char *ok = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n";
	const char *big = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n";
	assert_int_equal(parse_n(&p, ok, strlen(ok), 0, &lim, NSLOTS), (int)strlen(ok));
	assert_int_equal(parse_n(&p, big, strlen(big), 0, &lim, NSLOTS), FCGI_ETOOBIG);
	assert_int_equal(p.status, 413);
}

/* ---------------------------------------------------------------- splits and pipelining */

static const char *const split_cases[] = {
        "GET /a?b HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n",
        "\r\nPOST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: "
        "100-continue\r\n\r\n",
        "GET http://h:1/x HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.1\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\nX: 1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        "CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nX: 1\r\nY: 2\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
};

static void assert_same_slice(fk_http_slice a, fk_http_slice b)
{
	assert_ptr_equal(a.p, b.p);
	assert_int_equal(a.n, b.n);
}

/* Same fields, same slices (each parse has its own slot array). */
static void assert_same_req(const parsed *x, const parsed *y)
{
	const fk_http_req *a = &x->req, *b = &y->req;
	assert_same_slice(a->method, b->method);
	assert_same_slice(a->target, b->target);
	assert_same_slice(a->path, b->path);
	assert_same_slice(a->query, b->query);
	assert_same_slice(a->host, b->host);
	assert_int_equal(a->form, b->form);
	assert_int_equal(a->minor, b->minor);
	assert_int_equal(a->keep_alive, b->keep_alive);
	assert_int_equal(a->expect_continue, b->expect_continue);
	assert_int_equal(a->body, b->body);
	assert_true(a->content_length == b->content_length);
	assert_int_equal(a->nheaders, b->nheaders);
	for (unsigned i = 0; i < a->nheaders; i++) {
		assert_same_slice(x->slots[i].name, y->slots[i].name);
		assert_same_slice(x->slots[i].value, y->slots[i].value);
	}
}

/* Every prefix answers EAGAIN or the whole input's answer; feeding one more byte at a time
 * with the prev_len hint gives EAGAIN up to the head's end, then that same answer. */
static void check_splits(const char *s, size_t n, const fk_http_limits *lim)
{
	parsed whole, p;
	parse_n(&whole, s, n, 0, lim, NSLOTS);
	assert_int_not_equal(whole.rc, FCGI_EAGAIN);
	for (size_t k = 0; k < n; k++) {
		parse_n(&p, s, k, 0, lim, NSLOTS);
		if (p.rc == FCGI_EAGAIN)
			continue;
		if (p.rc != whole.rc || p.status != whole.status)
			fail_msg("\"%s\" prefix %zu: %s %d, whole: %s %d", s, k, err_name(p.rc),
			         p.status, err_name(whole.rc), whole.status);
		if (whole.rc > 0)
			assert_true((size_t)whole.rc <= k);
	}
	size_t prev = 0;
	for (size_t k = 1; k <= n; k++) {
		parse_n(&p, s, k, prev, lim, NSLOTS);
		if (p.rc == FCGI_EAGAIN) {
			if (whole.rc > 0)
				assert_true(k < (size_t)whole.rc);
			prev = k;
			continue;
		}
		if (p.rc != whole.rc || p.status != whole.status)
			fail_msg("\"%s\" hinted at %zu (prev %zu): %s %d, whole: %s %d", s, k, prev,
			         err_name(p.rc), p.status, err_name(whole.rc), whole.status);
		if (whole.rc > 0) {
			assert_int_equal(k, whole.rc); /* found as soon as the last byte came */
			assert_same_req(&p, &whole);
		}
		return;
	}
	fail_msg("\"%s\": never completed", s);
}

static void test_every_split(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof split_cases / sizeof split_cases[0]; i++)
		check_splits(split_cases[i], strlen(split_cases[i]), NULL);
	for (size_t i = 0; i < sizeof rejects / sizeof rejects[0]; i++)
		check_splits(rejects[i].req,
		             rejects[i].len ? rejects[i].len : strlen(rejects[i].req), NULL);
	/* and with tight limits, where the limit bytes fall inside lines */
	fk_http_limits lim = {.max_line = 18, .max_head = 50, .max_headers = 2};
	for (size_t i = 0; i < sizeof split_cases / sizeof split_cases[0]; i++)
		check_splits(split_cases[i], strlen(split_cases[i]), &lim);
}

static void test_pipelined(void **state)
{
	(void)state;
	const char *s = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
	                "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
	                "\r\n" /* a stray CRLF after a body, tolerated */
	                "GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	                "GET /4 HTTP/1.1\r\nHo";
	size_t n = strlen(s), off = 0;
	const char *paths[] = {"/1", "/2", "/3"};
	parsed p;
	for (int i = 0; i < 3; i++) {
		int rc = parse_n(&p, s + off, n - off, 0, NULL, NSLOTS);
		assert_true(rc > 0);
		assert_slice(p.req.path, paths[i]);
		off += (size_t)rc;
		if (p.req.body == FK_HTTP_BODY_LENGTH) {
			assert_int_equal(p.req.content_length, 5);
			assert_memory_equal(s + off, "hello", 5);
			off += (size_t)p.req.content_length;
		}
	}
	assert_int_equal(p.req.keep_alive, 0);
	assert_int_equal(parse_n(&p, s + off, n - off, 0, NULL, NSLOTS), FCGI_EAGAIN);
}

static void test_req_untouched_unless_complete(void **state)
{
	(void)state;
	fk_http_header slots[4];
	fk_http_req r = {.headers = slots, .nheaders = 4};
	int st = -1;
	const char *why = "x";
	const char *s = "GET / HTTP/1.1\r\nHost: h\r\n";
	assert_int_equal(fk_http_parse_request(s, strlen(s), 0, NULL, &r, &st, &why), FCGI_EAGAIN);
	assert_int_equal(r.nheaders, 4);
	assert_ptr_equal(r.headers, slots);
	assert_null(r.method.p);
	assert_int_equal(st, 0);
	assert_null(why);
	s = "GET / HTTP/1.1\r\n\r\n";
	assert_int_equal(fk_http_parse_request(s, strlen(s), 0, NULL, &r, &st, &why), FCGI_EPROTO);
	assert_int_equal(r.nheaders, 4);
	assert_int_equal(st, 400);
	assert_string_equal(why, "missing Host");
	/* status and why may be NULL */
	assert_int_equal(fk_http_parse_request(s, strlen(s), 0, NULL, &r, NULL, NULL), FCGI_EPROTO);
}

/* ---------------------------------------------------------------- chunked decoder */

typedef struct dec {
	int rc; /* last error, or total consumed */
	int done;
	char out[1024];
	size_t outn;
	int status;
	const char *why;
} dec;

/* Decodes in[0..n) feeding at most step bytes per call (0: all that is left). */
static void decode(dec *d, const char *in, size_t n, size_t step, uint64_t max_body)
{
	fk_http_chunked c;
	fk_http_chunked_init(&c);
	c.max_body = max_body;
	memset(d, 0, sizeof *d);
	size_t off = 0;
	while (!d->done) {
		size_t give = n - off;
		if (step && give > step)
			give = step;
		const char *data;
		size_t dl;
		int rc = fk_http_chunked_feed(&c, in + off, give, &data, &dl, &d->done);
		if (rc < 0) {
			d->rc = rc;
			d->status = c.status;
			d->why = c.why;
			assert_int_equal(c.state, FK_CS_ERROR);
			assert_string_equal(fk_http_chunked_state_name(c.state), "ERROR");
			/* sticky */
			assert_int_equal(fk_http_chunked_feed(&c, in, n, &data, &dl, &d->done), rc);
			return;
		}
		if (dl) {
			assert_ptr_equal(data + dl, in + off + (size_t)rc);
			assert_true(d->outn + dl <= sizeof d->out);
			memcpy(d->out + d->outn, data, dl);
			d->outn += dl;
		} else {
			assert_null(data);
		}
		off += (size_t)rc;
		if (off == n && !d->done) {
			d->rc = FCGI_EAGAIN; /* ran out of input */
			return;
		}
		assert_true(rc > 0 || d->done);
	}
	d->rc = (int)off;
}

typedef struct chunk_case {
	const char *in;
	int rc;          /* consumed, FCGI_EAGAIN (incomplete) or an error */
	const char *out; /* payload, for rc >= 0 */
	int status;
} chunk_case;

static const chunk_case chunk_cases[] = {
        {"5\r\nhello\r\n0\r\n\r\n", 15, "hello", 0},
        {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 26, "hello world", 0},
        {"A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", 35, "0123456789abcdefghij", 0},
        {"000000000000000a\r\n0123456789\r\n0\r\n\r\n", 35, "0123456789", 0},
        {"0\r\n\r\n", 5, "", 0},
        {"0000\r\n\r\nGET / HTTP/1.1\r\n", 8, "", 0}, /* stops at the next request */
        {"5;name\r\nhello\r\n0;last\r\n\r\n", 25, "hello", 0},
        {"5 ; a = b ; c\r\nhello\r\n0\r\n\r\n", 27, "hello", 0},
        {"5;a=\"q \\\" ;\\\\\"\r\nhello\r\n0\r\n\r\n", 28, "hello", 0},
        {"5;a=\"x\" ;b\r\nhello\r\n0\r\n\r\n", 24, "hello", 0},
        {"5\r\nhello\r\n0\r\nX-Sum: 1\r\nY:\r\nZ: a b\t\r\n\r\n", 38, "hello", 0},
        {"5\r\nhel", FCGI_EAGAIN, "hel", 0},
        {"5\r\nhello\r\n0\r\nX: 1\r\n", FCGI_EAGAIN, "hello", 0},
        /* sizes */
        {"\r\n", FCGI_EPROTO, NULL, 400},
        {"-1\r\n", FCGI_EPROTO, NULL, 400},
        {"+5\r\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"0x5\r\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"g\r\n", FCGI_EPROTO, NULL, 400},
        {" 5\r\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5 \r\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5\t\r\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"00000000000000005\r\nhello\r\n0\r\n\r\n", FCGI_ETOOBIG, NULL, 400},
        {"10000000000000000\r\n", FCGI_ETOOBIG, NULL, 400},
        /* line endings */
        {"5\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5\rhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5\r\nhello\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5\r\nhello\r0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5\r\nhelloX\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"3\r\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5\r\nhello\r\n0\r\n\n", FCGI_EPROTO, NULL, 400},
        {"5\r\nhello\r\n0\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5\r\nhello\r\n0\r\n\rX", FCGI_EPROTO, NULL, 400},
        /* extensions */
        {"5;\r\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5;=x\r\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5;a=\r\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5;a \r\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5;a=b \r\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5;a=\"x\r\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5;a=\"x\"y\r\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5;a=b\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5;a=b=c\r\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5;a\x01\r\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"5;a=\"\x7f\"\r\nhello\r\n0\r\n\r\n", FCGI_EPROTO, NULL, 400},
        /* trailers */
        {"0\r\n X: 1\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"0\r\nX: 1\r\n\tY\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"0\r\nX : 1\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"0\r\nX\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"0\r\n: 1\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"0\r\nX: 1\n\r\n", FCGI_EPROTO, NULL, 400},
        {"0\r\nX: 1\rY\r\n\r\n", FCGI_EPROTO, NULL, 400},
        {"0\r\nX: \x01\r\n\r\n", FCGI_EPROTO, NULL, 400},
};

static void test_chunked_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof chunk_cases / sizeof chunk_cases[0]; i++) {
		const chunk_case *k = &chunk_cases[i];
		size_t n = strlen(k->in);
		static const size_t steps[] = {0, 1, 2, 3, 7};
		for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
			dec d;
			decode(&d, k->in, n, steps[s], 0);
			if (d.rc != k->rc || d.status != k->status)
				fail_msg(
				        "chunk case %zu step %zu: rc %d status %d (%s), want %d %d",
				        i, steps[s], d.rc, d.status, d.why ? d.why : "-", k->rc,
				        k->status);
			if (k->out) {
				assert_int_equal(d.outn, strlen(k->out));
				assert_memory_equal(d.out, k->out, d.outn);
			}
			assert_int_equal(d.done, k->rc >= 0);
		}
	}
}

static void test_chunked_limits(void **state)
{
	(void)state;
	dec d;
	/* body limit, checked at the size line before any data */
	decode(&d, "5\r\nhello\r\n5\r\n", 13, 0, 10);
	assert_int_equal(d.rc, FCGI_EAGAIN);
	decode(&d, "5\r\nhello\r\n6\r\n", 13, 0, 10);
	assert_int_equal(d.rc, FCGI_ETOOBIG);
	assert_int_equal(d.status, 413);
	decode(&d, "ffffffffffffffff\r\n", 18, 0, 0);
	assert_int_equal(d.rc, FCGI_EAGAIN); /* no limit: a huge chunk is only a promise */

	/* chunk-size line: 4096 bytes with extensions, CRLF excluded */
	size_t n = FK_HTTP_CHUNK_LINE_MAX + 32;
	char *b = malloc(n);
	memset(b, 'x', n);
	memcpy(b, "1;", 2);
	memcpy(b + FK_HTTP_CHUNK_LINE_MAX, "\r\nA\r\n0\r\n\r\n", 10);
	decode(&d, b, FK_HTTP_CHUNK_LINE_MAX + 10, 0, 0);
	assert_int_equal(d.rc, FK_HTTP_CHUNK_LINE_MAX + 10);
	assert_int_equal(d.outn, 1);
	memcpy(b + FK_HTTP_CHUNK_LINE_MAX, "x\r\nA\r\n0\r\n\r\n", 11);
	decode(&d, b, FK_HTTP_CHUNK_LINE_MAX + 11, 1, 0);
	assert_int_equal(d.rc, FCGI_ETOOBIG);
	assert_int_equal(d.status, 400);
	free(b);

	/* trailer section: 16 KiB in all, the final CRLF included */
	n = FK_HTTP_TRAILERS_MAX + 64;
	b = malloc(n);
	memcpy(b, "0\r\n", 3);
	size_t t = FK_HTTP_TRAILERS_MAX - 2; /* trailer lines, then the final CRLF */
	memcpy(b + 3, "X: ", 3);
	memset(b + 6, 'v', t - 2 - 3);
	memcpy(b + 3 + t - 2, "\r\n\r\n", 4);
	decode(&d, b, 3 + t + 2, 0, 0);
	assert_int_equal(d.rc, (int)(3 + t + 2));
	memcpy(b + 3 + t - 2, "v\r\n\r\n", 5);
	decode(&d, b, 3 + t + 3, 0, 0);
	assert_int_equal(d.rc, FCGI_ETOOBIG);
	assert_int_equal(d.status, 431);
	free(b);
}

static void test_chunked_byte_at_a_time_equals_whole(void **state)
{
	(void)state;
	/* a body of many chunks with every kind of line, decoded both ways */
	char in[4096], want[2048];
	size_t n = 0, w = 0;
	for (int i = 1; i <= 40; i++) {
		n += (size_t)snprintf(in + n, sizeof in - n, "%x%s\r\n", i,
		                      i % 3 == 0   ? ";ext=\"v\""
		                      : i % 5 == 0 ? " ;e"
		                                   : "");
		for (int k = 0; k < i; k++) {
			in[n++] = (char)('a' + (i + k) % 26);
			want[w++] = (char)('a' + (i + k) % 26);
		}
		in[n++] = '\r';
		in[n++] = '\n';
	}
	n += (size_t)snprintf(in + n, sizeof in - n, "0\r\nTrailer-A: x\r\nB: y\r\n\r\nNEXT");
	dec whole, one;
	decode(&whole, in, n, 0, 0);
	decode(&one, in, n, 1, 0);
	assert_int_equal(whole.rc, (int)n - 4);
	assert_int_equal(one.rc, whole.rc);
	assert_int_equal(whole.outn, w);
	assert_int_equal(one.outn, w);
	assert_memory_equal(whole.out, want, w);
	assert_memory_equal(one.out, want, w);
}

static void test_chunked_api(void **state)
{
	(void)state;
	fk_http_chunked c;
	fk_http_chunked_init(&c);
	const char *data = "x";
	size_t dl = 9;
	int done = 9;
	assert_int_equal(fk_http_chunked_feed(&c, "", 0, &data, &dl, &done), 0);
	assert_null(data);
	assert_int_equal(dl, 0);
	assert_int_equal(done, 0);
	assert_string_equal(fk_http_chunked_state_name(c.state), "SIZE");
	/* one slice per call: the call stops right after it */
	const char *in = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
	int rc = fk_http_chunked_feed(&c, in, strlen(in), &data, &dl, &done);
	assert_int_equal(rc, 6);
	assert_ptr_equal(data, in + 3);
	assert_int_equal(dl, 3);
	assert_int_equal(done, 0);
	assert_string_equal(fk_http_chunked_state_name(c.state), "DATA_CR");
	rc = fk_http_chunked_feed(&c, in + 6, strlen(in) - 6, &data, &dl, &done);
	assert_int_equal(rc, 7);
	assert_int_equal(dl, 2);
	rc = fk_http_chunked_feed(&c, in + 13, strlen(in) - 13, &data, &dl, &done);
	assert_int_equal(rc, 7);
	assert_int_equal(dl, 0);
	assert_int_equal(done, 1);
	assert_int_equal(c.total, 5);
	/* once done, nothing more is consumed */
	assert_int_equal(fk_http_chunked_feed(&c, "5\r\n", 3, &data, &dl, &done), 0);
	assert_int_equal(done, 1);
	assert_string_equal(fk_http_chunked_state_name(c.state), "DONE");
	assert_string_equal(fk_http_chunked_state_name(-1), "?");
	assert_string_equal(fk_http_chunked_state_name(1000), "?");
}

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_simple_get),
	        cmocka_unit_test(test_query_forms),
	        cmocka_unit_test(test_absolute_form),
	        cmocka_unit_test(test_asterisk_form),
	        cmocka_unit_test(test_versions_and_keep_alive),
	        cmocka_unit_test(test_bodies),
	        cmocka_unit_test(test_expect),
	        cmocka_unit_test(test_host_values),
	        cmocka_unit_test(test_leading_empty_lines),
	        cmocka_unit_test(test_find),
	        cmocka_unit_test(test_status_text),
	        cmocka_unit_test(test_rejects),
	        cmocka_unit_test(test_host_comma_is_reg_name),
	        cmocka_unit_test(test_request_line_limit),
	        cmocka_unit_test(test_header_line_limit),
	        cmocka_unit_test(test_head_limit),
	        cmocka_unit_test(test_header_count_limit),
	        cmocka_unit_test(test_body_limit),
	        cmocka_unit_test(test_every_split),
	        cmocka_unit_test(test_pipelined),
	        cmocka_unit_test(test_req_untouched_unless_complete),
	        cmocka_unit_test(test_chunked_cases),
	        cmocka_unit_test(test_chunked_limits),
	        cmocka_unit_test(test_chunked_byte_at_a_time_equals_whole),
	        cmocka_unit_test(test_chunked_api),
	};
	return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
