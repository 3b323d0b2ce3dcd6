/*
 * test_gw_cgi.c — the gateway's pure parts (src/gateway/cgi_map.c): path normalisation
 * (escapes, dot segments, refusals), the SCRIPT_NAME / PATH_INFO split, and the FastCGI
 * parameters built from a parsed request (fastcgi_params names and values, HTTP_* mapping,
 * the headers that must not pass: Proxy, names with '_', Content-*, Transfer-Encoding;
 * duplicates joined). Requests are parsed by the real HTTP parser: no sockets.
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
#include "gateway/gateway.h"
#include "http/http.h"

static void check_norm(const char *in, const char *want)
{
	char out[256];
	int n = gw_path_normalize(in, strlen(in), out);
	if (!want) {
		if (n != -1)
			fail_msg("'%s' should be refused, got '%s'", in, out);
		return;
	}
	if (n < 0)
		fail_msg("'%s' refused, want '%s'", in, want);
	assert_string_equal(out, want);
	assert_int_equal((size_t)n, strlen(want));
}

static void test_normalize(void **state)
{
	(void)state;
	check_norm("/", "/");
	check_norm("/a/b", "/a/b");
	check_norm("/a/b/", "/a/b/");
	check_norm("//a///b", "/a/b");
	check_norm("/a/./b", "/a/b");
	check_norm("/a/.", "/a/");
	check_norm("/a/b/..", "/a/");
	check_norm("/a/b/../c", "/a/c");
	check_norm("/a/../../", NULL);
	check_norm("/..", NULL);
	check_norm("/../etc/passwd", NULL);
	check_norm("/%2e%2e/etc/passwd", NULL);
	check_norm("/a/%2E%2e/%2e%2e/x", NULL);
	check_norm("/a%2fb", "/a/b");
	check_norm("/a%20b", "/a b");
	check_norm("/a%00b", NULL);
	check_norm("/a%", NULL);
	check_norm("/a%4", NULL);
	check_norm("/a%zz", NULL);
	check_norm("a/b", NULL);
	check_norm("/.hidden/..x", "/.hidden/..x");
	check_norm("/...", "/...");
}

static void test_split(void **state)
{
	(void)state;
	const char *p = "/info.php/extra/path";
	assert_int_equal(gw_split_script(p, strlen(p), ".php"), 9);
	p = "/info.php";
	assert_int_equal(gw_split_script(p, strlen(p), ".php"), 9);
	p = "/a.php/b.php/c";
	assert_int_equal(gw_split_script(p, strlen(p), ".php"), 6);
	p = "/dir.phpx/y";
	assert_int_equal(gw_split_script(p, strlen(p), ".php"), strlen(p));
	p = "/x/.php/y"; /* a segment that is only the extension is not a script */
	assert_int_equal(gw_split_script(p, strlen(p), ".php"), strlen(p));
	assert_int_equal(gw_split_script("/a.php/b", 8, NULL), 8);
	assert_int_equal(gw_split_script("/a.php/b", 8, ""), 8);
}

typedef struct mapped {
	char buf[4096];
	fk_http_header hs[32];
	fk_http_req req;
	char path[1024];
	gw_params ps;
} mapped;

static mapped *map_request(const char *raw, const char *root, int has_body, uint64_t body_len)
{
	mapped *m = calloc(1, sizeof *m);
	assert_non_null(m);
	snprintf(m->buf, sizeof m->buf, "%s", raw);
	m->req.headers = m->hs;
	m->req.nheaders = 32;
	int st = 0;
	const char *why = NULL;
	int rc = fk_http_parse_request(m->buf, strlen(m->buf), 0, NULL, &m->req, &st, &why);
	if (rc <= 0)
		fail_msg("parse: %d %d %s", rc, st, why ? why : "");
	assert_true(gw_path_normalize(m->req.path.p, m->req.path.n, m->path) >= 0);
	gw_cgi_in in = {
	        .req = &m->req,
	        .path = m->path,
	        .root = root,
	        .script_ext = ".php",
	        .index = "index.php",
	        .has_body = has_body,
	        .body_len = body_len,
	        .remote_addr = "10.0.0.7",
	        .remote_port = "51000",
	        .server_addr = "127.0.0.1",
	        .server_port = "8080",
	        .software = "fcgikit/test",
	};
	assert_int_equal(gw_cgi_map(&in, &m->ps), FCGI_OK);
	return m;
}

static void unmap(mapped *m)
{
	gw_params_free(&m->ps);
	free(m);
}

#define P(name) gw_params_get(&m->ps, name)

static void test_fastcgi_params(void **state)
{
	(void)state;
	mapped *m = map_request("GET /info.php/extra/path?a=1&b=%20 HTTP/1.1\r\n"
	                        "Host: example.org:8080\r\nX-Custom: yes\r\n\r\n",
	                        "/srv/www", 0, 0);
	assert_string_equal(P("QUERY_STRING"), "a=1&b=%20");
	assert_string_equal(P("REQUEST_METHOD"), "GET");
	assert_string_equal(P("CONTENT_TYPE"), "");
	assert_string_equal(P("CONTENT_LENGTH"), "");
	assert_string_equal(P("SCRIPT_NAME"), "/info.php");
	assert_string_equal(P("SCRIPT_FILENAME"), "/srv/www/info.php");
	assert_string_equal(P("PATH_INFO"), "/extra/path");
	assert_string_equal(P("REQUEST_URI"), "/info.php/extra/path?a=1&b=%20");
	assert_string_equal(P("DOCUMENT_URI"), "/info.php/extra/path");
	assert_string_equal(P("DOCUMENT_ROOT"), "/srv/www");
	assert_string_equal(P("SERVER_PROTOCOL"), "HTTP/1.1");
	assert_string_equal(P("REQUEST_SCHEME"), "http");
	assert_string_equal(P("GATEWAY_INTERFACE"), "CGI/1.1");
	assert_string_equal(P("SERVER_SOFTWARE"), "fcgikit/test");
	assert_string_equal(P("REMOTE_ADDR"), "10.0.0.7");
	assert_string_equal(P("REMOTE_PORT"), "51000");
	assert_string_equal(P("SERVER_ADDR"), "127.0.0.1");
	assert_string_equal(P("SERVER_PORT"), "8080");
	assert_string_equal(P("SERVER_NAME"), "example.org");
	assert_string_equal(P("REDIRECT_STATUS"), "200");
	assert_string_equal(P("HTTP_HOST"), "example.org:8080");
	assert_string_equal(P("HTTP_X_CUSTOM"), "yes");
	unmap(m);
}

static void test_body_and_index(void **state)
{
	(void)state;
	mapped *m = map_request("POST /app/ HTTP/1.1\r\nHost: [::1]:81\r\n"
	                        "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\n",
	                        "/r", 1, 5);
	assert_string_equal(P("CONTENT_TYPE"), "text/plain");
	assert_string_equal(P("CONTENT_LENGTH"), "5");
	assert_string_equal(P("SCRIPT_NAME"), "/app/index.php");
	assert_string_equal(P("SCRIPT_FILENAME"), "/r/app/index.php");
	assert_string_equal(P("PATH_INFO"), "");
	assert_string_equal(P("DOCUMENT_URI"), "/app/");
	assert_string_equal(P("SERVER_NAME"), "[::1]");
	assert_null(P("HTTP_CONTENT_TYPE"));
	assert_null(P("HTTP_CONTENT_LENGTH"));
	unmap(m);

	/* chunked: the gateway decoded it, the application sees an exact length */
	m = map_request("PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", "/r", 1,
	                12345);
	assert_string_equal(P("CONTENT_LENGTH"), "12345");
	assert_null(P("HTTP_TRANSFER_ENCODING"));
	assert_string_equal(P("SCRIPT_NAME"), "/u");
	unmap(m);
}

static void test_header_filter_and_join(void **state)
{
	(void)state;
	mapped *m = map_request("GET /x.php/../y.php HTTP/1.1\r\nHost: h\r\n"
	                        "Proxy: http://evil:3128\r\n"
	                        "X-Forwarded-For: 1.1.1.1\r\nX_Forwarded_For: 6.6.6.6\r\n"
	                        "Accept: a\r\naccept: b\r\nACCEPT: c\r\n"
	                        "Cookie: k=1\r\nCookie: j=2\r\n"
	                        "X-Empty:\r\n\r\n",
	                        "/r", 0, 0);
	assert_string_equal(P("SCRIPT_NAME"), "/y.php");
	assert_null(P("HTTP_PROXY"));
	assert_string_equal(P("HTTP_X_FORWARDED_FOR"), "1.1.1.1");
	assert_string_equal(P("HTTP_ACCEPT"), "a, b, c");
	assert_string_equal(P("HTTP_COOKIE"), "k=1; j=2");
	assert_string_equal(P("HTTP_X_EMPTY"), "");
	/* each name once */
	int n = 0;
	for (size_t i = 0; i < m->ps.n; i++)
		n += !strcmp(m->ps.v[i].name, "HTTP_ACCEPT") ||
		     !strcmp(m->ps.v[i].name, "HTTP_X_FORWARDED_FOR");
	assert_int_equal(n, 2);
	unmap(m);
}

static void test_http10_and_absolute(void **state)
{
	(void)state;
	mapped *m = map_request("GET /p HTTP/1.0\r\n\r\n", "", 0, 0);
	assert_string_equal(P("SERVER_PROTOCOL"), "HTTP/1.0");
	assert_string_equal(P("SERVER_NAME"), "127.0.0.1");
	assert_string_equal(P("QUERY_STRING"), "");
	assert_string_equal(P("SCRIPT_FILENAME"), "/p");
	unmap(m);
	m = map_request("GET http://abs.example:9/q/r.php?z HTTP/1.1\r\nHost: other\r\n\r\n", "/r",
	                0, 0);
	assert_string_equal(P("SERVER_NAME"), "abs.example");
	/* origin form, as nginx's $request_uri; the target's authority wins over Host */
	assert_string_equal(P("REQUEST_URI"), "/q/r.php?z");
	assert_string_equal(P("HTTP_HOST"), "abs.example:9");
	assert_string_equal(P("SCRIPT_NAME"), "/q/r.php");
	assert_string_equal(P("QUERY_STRING"), "z");
	int hosts = 0;
	for (size_t i = 0; i < m->ps.n; i++)
		hosts += !strcmp(m->ps.v[i].name, "HTTP_HOST");
	assert_int_equal(hosts, 1);
	unmap(m);
	/* no path after the authority: "/" stands for it */
	m = map_request("GET http://abs.example?x=1 HTTP/1.1\r\nHost: other\r\n\r\n", "/r", 0, 0);
	assert_string_equal(P("REQUEST_URI"), "/?x=1");
	assert_string_equal(P("QUERY_STRING"), "x=1");
	assert_string_equal(P("HTTP_HOST"), "abs.example");
	unmap(m);
	m = map_request("GET HTTP://abs.example HTTP/1.1\r\nHost: other\r\n\r\n", "/r", 0, 0);
	assert_string_equal(P("REQUEST_URI"), "/");
	assert_string_equal(P("DOCUMENT_URI"), "/");
	unmap(m);
}

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_normalize),
	        cmocka_unit_test(test_split),
	        cmocka_unit_test(test_fastcgi_params),
	        cmocka_unit_test(test_body_and_index),
	        cmocka_unit_test(test_header_filter_and_join),
	        cmocka_unit_test(test_http10_and_absolute),
	};
	return cmocka_run_group_tests_name("gw_cgi", tests, NULL, NULL);
}
