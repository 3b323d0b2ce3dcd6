/*
 * test_pm_render.c — `fcgikit pm` status rendering (src/pm/render.c): the exact JSON and
 * OpenMetrics text for a fixed snapshot, every JSON output checked by a small validating
 * parser (RFC 8259 grammar, strings well-formed UTF-8 with no raw control characters),
 * hostile strings from workers (quotes, newlines, control bytes, terminal escapes, every
 * kind of invalid UTF-8) escaped in all three forms, and argument checks.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pm/render.h"

/* ---------------------------------------------------------------- fixed snapshot */

static const pm_worker_view www_workers[] = {
        {.pid = 101,
         .generation = 2,
         .state = "idle",
         .reports = 1,
         .requests = 10,
         .active = 0,
         .conns = 1,
         .started_ms_ago = 5000,
         .rss_kb = 2048,
         .cur_ms = -1},
        {.pid = 102,
         .generation = 2,
         .state = "busy",
         .reports = 0,
         .requests = 7,
         .active = 1,
         .conns = 1,
         .started_ms_ago = 4000,
         .rss_kb = -1,
         .cur_method = "GET",
         .cur_uri = "/x?a=1",
         .cur_ms = 1500},
        {.pid = 99,
         .generation = 1,
         .state = "draining",
         .reports = 1,
         .requests = 100,
         .active = 1,
         .conns = 2,
         .started_ms_ago = 90000,
         .rss_kb = 20480,
         .cur_method = "POST",
         .cur_uri = "/upload",
         .cur_ms = 125000},
};

static const pm_pool_view fixed_pools[] = {
        {.name = "www",
         .listen = "unix:/run/www.sock",
         .mode = "dynamic",
         .health = "ok",
         .generation = 2,
         .live = 3,
         .idle = 1,
         .busy = 1,
         .starting = 0,
         .max_children = 8,
         .queue = 3,
         .accepted = 117,
         .max_children_reached = 1,
         .slow_requests = 2,
         .killed_requests = 3,
         .respawns = 4,
         .shed = 5,
         .nworkers = 3,
         .workers = www_workers},
        {.name = "api",
         .listen = "127.0.0.1:9000",
         .mode = "static",
         .health = "backoff",
         .generation = 1,
         .max_children = 4,
         .queue = -1},
};

static const pm_status_view fixed = {.pid = 42,
                                     .version = "0.1.0",
                                     .uptime_ms = 3723456,
                                     .reloads = 1,
                                     .npools = 2,
                                     .pools = fixed_pools};

/* ---------------------------------------------------------------- JSON validator */

typedef struct jp {
	const unsigned char *s, *end;
	int depth;
} jp;

static int jp_value(jp *p);

static void jp_ws(jp *p)
{
	while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
		p->s++;
}

static int jp_lit(jp *p, const char *w)
{
	size_t n = strlen(w);
	if ((size_t)(p->end - p->s) < n || memcmp(p->s, w, n) != 0)
		return -1;
	p->s += n;
	return 0;
}

static int jp_hex(unsigned c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A string: escapes from the RFC's list, raw bytes >= 0x20 forming well-formed UTF-8. */
static int jp_string(jp *p)
{
	if (p->s >= p->end || *p->s != '"')
		return -1;
	p->s++;
	while (p->s < p->end) {
		unsigned c = *p->s;
		if (c == '"') {
			p->s++;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c == '\\') {
			if (p->end - p->s < 2)
				return -1;
			unsigned e = p->s[1];
			if (e == 'u') {
				if (p->end - p->s < 6)
					return -1;
				for (int i = 2; i < 6; i++)
					if (!jp_hex(p->s[i]))
						return -1;
				p->s += 6;
			} else if (strchr("\"\\/bfnrt", (int)e) && e) {
				p->s += 2;
			} else {
				return -1;
			}
			continue;
		}
		if (c < 0x80) {
			p->s++;
			continue;
		}
		/* Well-formed UTF-8, written independently of the renderer's table. */
		uint32_t cp;
		int more;
		if (c >= 0xC2 && c <= 0xDF) {
			cp = c & 0x1F;
			more = 1;
		} else if (c >= 0xE0 && c <= 0xEF) {
			cp = c & 0x0F;
			more = 2;
		} else if (c >= 0xF0 && c <= 0xF4) {
			cp = c & 0x07;
			more = 3;
		} else {
			return -1;
		}
		if (p->end - p->s <= more)
			return -1;
		for (int i = 1; i <= more; i++) {
			if ((p->s[i] & 0xC0) != 0x80)
				return -1;
			cp = cp << 6 | (p->s[i] & 0x3F);
		}
		if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) || cp > 0x10FFFF ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return -1;
		p->s += 1 + more;
	}
	return -1;
}

static int jp_digits(jp *p)
{
	if (p->s >= p->end || *p->s < '0' || *p->s > '9')
		return -1;
	while (p->s < p->end && *p->s >= '0' && *p->s <= '9')
		p->s++;
	return 0;
}

static int jp_number(jp *p)
{
	if (p->s < p->end && *p->s == '-')
		p->s++;
	if (p->s < p->end && *p->s == '0')
		p->s++;
	else if (jp_digits(p) < 0)
		return -1;
	if (p->s < p->end && *p->s == '.') {
		p->s++;
		if (jp_digits(p) < 0)
			return -1;
	}
	if (p->s < p->end && (*p->s == 'e' || *p->s == 'E')) {
		p->s++;
		if (p->s < p->end && (*p->s == '+' || *p->s == '-'))
			p->s++;
		if (jp_digits(p) < 0)
			return -1;
	}
	return 0;
}

/* Object or array: open, comma-separated members, close; an object's keys are strings. */
static int jp_container(jp *p, int object)
{
	if (++p->depth > 32)
		return -1;
	p->s++;
	jp_ws(p);
	if (p->s < p->end && *p->s == (object ? '}' : ']')) {
		p->s++;
		p->depth--;
		return 0;
	}
	for (;;) {
		jp_ws(p);
		if (object) {
			if (jp_string(p) < 0)
				return -1;
			jp_ws(p);
			if (p->s >= p->end || *p->s != ':')
				return -1;
			p->s++;
		}
		if (jp_value(p) < 0)
			return -1;
		jp_ws(p);
		if (p->s >= p->end)
			return -1;
		if (*p->s == ',') {
			p->s++;
			continue;
		}
		if (*p->s != (object ? '}' : ']'))
			return -1;
		p->s++;
		p->depth--;
		return 0;
	}
}

static int jp_value(jp *p)
{
	jp_ws(p);
	if (p->s >= p->end)
		return -1;
	switch (*p->s) {
	case '{':
		return jp_container(p, 1);
	case '[':
		return jp_container(p, 0);
	case '"':
		return jp_string(p);
	case 't':
		return jp_lit(p, "true");
	case 'f':
		return jp_lit(p, "false");
	case 'n':
		return jp_lit(p, "null");
	default:
		return jp_number(p);
	}
}

/* Is s[0..n) exactly one JSON value (surrounding whitespace allowed)? */
static int json_valid(const char *s, size_t n)
{
	jp p = {(const unsigned char *)s, (const unsigned char *)s + n, 0};
	if (jp_value(&p) < 0)
		return 0;
	jp_ws(&p);
	return p.s == p.end;
}

static void test_validator_self_check(void **state)
{
	(void)state;
	static const char *good[] = {"{}", "[]", "{\"a\":[1,-2.5e3,true,false,null]}",
	                             "\"\\u00e9\\n\"", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""};
	static const char *bad[] = {
	        "{",
	        "{\"a\"}",
	        "[1,]",
	        "01",
	        "\"\x01\"",
	        "\"\\x\"",
	        "\"\xff\"",
	        "\"\xc0\xaf\"",
	        "\"\xed\xa0\x80\"",
	        "\"\xf4\x90\x80\x80\"",
	        "\"\xe2\x82\"",
	        "{} {}",
	        "\"abc",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		if (!json_valid(good[i], strlen(good[i])))
			fail_msg("validator refused %s", good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (json_valid(bad[i], strlen(bad[i])))
			fail_msg("validator accepted case %zu", i);
}

/* ---------------------------------------------------------------- JSON */

static const char fixed_json_full[] =
        "{\"pid\":42,\"version\":\"0.1.0\",\"uptime_ms\":3723456,\"reloads\":1,\"pools\":["
        "{\"name\":\"www\",\"listen\":\"unix:/run/www.sock\",\"mode\":\"dynamic\","
        "\"health\":\"ok\",\"generation\":2,\"live\":3,\"idle\":1,\"busy\":1,\"starting\":0,"
        "\"max_children\":8,\"queue\":3,\"requests\":117,\"max_children_reached\":1,"
        "\"slow_requests\":2,\"killed_requests\":3,\"respawns\":4,\"shed\":5,\"workers\":["
        "{\"pid\":101,\"generation\":2,\"state\":\"idle\",\"reports\":true,\"requests\":10,"
        "\"active\":0,\"conns\":1,\"started_ms_ago\":5000,\"rss_kb\":2048,\"current\":null},"
        "{\"pid\":102,\"generation\":2,\"state\":\"busy\",\"reports\":false,\"requests\":7,"
        "\"active\":1,\"conns\":1,\"started_ms_ago\":4000,\"rss_kb\":null,"
        "\"current\":{\"method\":\"GET\",\"uri\":\"/x?a=1\",\"ms\":1500}},"
        "{\"pid\":99,\"generation\":1,\"state\":\"draining\",\"reports\":true,\"requests\":100,"
        "\"active\":1,\"conns\":2,\"started_ms_ago\":90000,\"rss_kb\":20480,"
        "\"current\":{\"method\":\"POST\",\"uri\":\"/upload\",\"ms\":125000}}]},"
        "{\"name\":\"api\",\"listen\":\"127.0.0.1:9000\",\"mode\":\"static\","
        "\"health\":\"backoff\",\"generation\":1,\"live\":0,\"idle\":0,\"busy\":0,\"starting\":0,"
        "\"max_children\":4,\"queue\":null,\"requests\":0,\"max_children_reached\":0,"
        "\"slow_requests\":0,\"killed_requests\":0,\"respawns\":0,\"shed\":0,\"workers\":[]}]}\n";

static const char fixed_json_brief[] =
        "{\"pid\":42,\"version\":\"0.1.0\",\"uptime_ms\":3723456,\"reloads\":1,\"pools\":["
        "{\"name\":\"www\",\"listen\":\"unix:/run/www.sock\",\"mode\":\"dynamic\","
        "\"health\":\"ok\",\"generation\":2,\"live\":3,\"idle\":1,\"busy\":1,\"starting\":0,"
        "\"max_children\":8,\"queue\":3,\"requests\":117,\"max_children_reached\":1,"
        "\"slow_requests\":2,\"killed_requests\":3,\"respawns\":4,\"shed\":5},"
        "{\"name\":\"api\",\"listen\":\"127.0.0.1:9000\",\"mode\":\"static\","
        "\"health\":\"backoff\",\"generation\":1,\"live\":0,\"idle\":0,\"busy\":0,\"starting\":0,"
        "\"max_children\":4,\"queue\":null,\"requests\":0,\"max_children_reached\":0,"
        "\"slow_requests\":0,\"killed_requests\":0,\"respawns\":0,\"shed\":0}]}\n";

static void test_json_fixed(void **state)
{
	(void)state;
	char *out = NULL;
	size_t len = 0;
	assert_int_equal(pm_render_json(&fixed, 1, &out, &len), 0);
	assert_int_equal(len, strlen(out));
	assert_string_equal(out, fixed_json_full);
	assert_true(json_valid(out, len));
	free(out);

	assert_int_equal(pm_render_json(&fixed, 0, &out, &len), 0);
	assert_string_equal(out, fixed_json_brief);
	assert_true(json_valid(out, len));
	free(out);
}

static void test_json_empty_and_nulls(void **state)
{
	(void)state;
	/* No pools, NULL strings, extreme numbers. */
	pm_status_view v = {.pid = -1, .uptime_ms = INT64_MIN, .reloads = 0};
	char *out;
	size_t len;
	assert_int_equal(pm_render_json(&v, 1, &out, &len), 0);
	assert_string_equal(out, "{\"pid\":-1,\"version\":null,\"uptime_ms\":-9223372036854775808,"
	                         "\"reloads\":0,\"pools\":[]}\n");
	assert_true(json_valid(out, len));
	free(out);

	pm_worker_view w = {.pid = 7, .requests = UINT64_MAX, .rss_kb = 0, .cur_ms = 0};
	pm_pool_view pl = {.queue = 0, .accepted = UINT64_MAX, .nworkers = 1, .workers = &w};
	v.npools = 1;
	v.pools = &pl;
	assert_int_equal(pm_render_json(&v, 1, &out, &len), 0);
	assert_true(json_valid(out, len));
	assert_non_null(strstr(out, "\"name\":null,\"listen\":null,\"mode\":null,\"health\":null"));
	assert_non_null(strstr(out, "\"queue\":0,\"requests\":18446744073709551615"));
	assert_non_null(strstr(out, "\"state\":null"));
	assert_non_null(
	        strstr(out, "\"rss_kb\":0,\"current\":{\"method\":null,\"uri\":null,\"ms\":0}"));
	free(out);
}

/* Every kind of trouble a worker can put in a URI, and what JSON must make of it. */
static const char hostile[] = "/a\"b\\c\nd\x01"
                              "e\x7f"
                              "\xff"                                 /* never valid */
                              "\xc0\xaf"                             /* overlong '/' */
                              "\xed\xa0\x80"                         /* surrogate U+D800 */
                              "\xf4\x90\x80\x80"                     /* U+110000 */
                              "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" /* é € 😀: kept */
                              "\xe2\x80\xa8"                         /* U+2028 */
                              "\xc2\x85"                             /* C1 NEL */
                              "\x1b[2J"                              /* terminal escape */
                              "\xe2\x82";                            /* cut short */

static const char hostile_json[] = "\"/a\\\"b\\\\c\\u000ad\\u0001e\\u007f"
                                   "\\ufffd"
                                   "\\ufffd\\ufffd"
                                   "\\ufffd\\ufffd\\ufffd"
                                   "\\ufffd\\ufffd\\ufffd\\ufffd"
                                   "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                                   "\\u2028"
                                   "\\u0085"
                                   "\\u001b[2J"
                                   "\\ufffd\\ufffd\"";

static void test_json_hostile(void **state)
{
	(void)state;
	pm_worker_view w = {.pid = 1,
	                    .state = "busy\"",
	                    .rss_kb = 1,
	                    .cur_method = "G\x01T",
	                    .cur_uri = hostile,
	                    .cur_ms = 5};
	pm_pool_view pl = {.name = "p\\",
	                   .listen = "\n",
	                   .mode = "\xff",
	                   .health = "ok",
	                   .queue = -1,
	                   .nworkers = 1,
	                   .workers = &w};
	pm_status_view v = {.pid = 1, .version = "1\"2", .npools = 1, .pools = &pl};
	char *out;
	size_t len;
	assert_int_equal(pm_render_json(&v, 1, &out, &len), 0);
	if (!json_valid(out, len))
		fail_msg("invalid JSON: %s", out);
	assert_non_null(strstr(out, "\"uri\":"));
	if (!strstr(out, hostile_json))
		fail_msg("URI escaped wrongly: %s", out);
	assert_non_null(strstr(out, "\"version\":\"1\\\"2\""));
	assert_non_null(
	        strstr(out, "\"name\":\"p\\\\\",\"listen\":\"\\u000a\",\"mode\":\"\\ufffd\""));
	assert_non_null(strstr(out, "\"state\":\"busy\\\"\""));
	assert_non_null(strstr(out, "\"method\":\"G\\u0001T\""));
	/* Only the final newline is a raw control byte. */
	for (size_t i = 0; i + 1 < len; i++)
		assert_true((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
	free(out);
}

static void test_json_long_string(void **state)
{
	(void)state;
	/* Past the stack buffer and the first allocation, so growth is exercised. */
	size_t n = 100000;
	char *uri = malloc(n + 1);
	assert_non_null(uri);
	for (size_t i = 0; i < n; i++)
		uri[i] = (char)(i % 3 == 0 ? '"' : i % 3 == 1 ? 'x' : '\x02');
	uri[n] = '\0';
	pm_worker_view w = {.pid = 1, .cur_uri = uri, .cur_ms = 1};
	pm_pool_view pl = {.name = "p", .nworkers = 1, .workers = &w};
	pm_status_view v = {.npools = 1, .pools = &pl};
	char *out;
	size_t len;
	assert_int_equal(pm_render_json(&v, 1, &out, &len), 0);
	assert_true(json_valid(out, len));
	assert_int_equal(len, strlen(out));
	assert_true(len > n / 3 * (2 + 1 + 6));
	free(out);
	free(uri);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	char *out = (char *)"untouched";
	size_t len = 77;
	errno = 0;
	assert_int_equal(pm_render_json(NULL, 1, &out, &len), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(pm_render_openmetrics(&fixed, NULL, &len), -1);
	assert_int_equal(pm_render_text(&fixed, &out, NULL), -1);
	pm_status_view v = {.npools = -1};
	assert_int_equal(pm_render_json(&v, 0, &out, &len), -1);
	pm_pool_view pl = {.nworkers = 2, .workers = NULL};
	v.npools = 1;
	v.pools = &pl;
	assert_int_equal(pm_render_openmetrics(&v, &out, &len), -1);
	assert_int_equal(pm_render_text(&v, &out, &len), -1);
	assert_string_equal(out, "untouched");
	assert_int_equal(len, 77);
}

/* ---------------------------------------------------------------- OpenMetrics */

static const char fixed_om[] =
        "# TYPE fcgikit_pm_uptime_seconds gauge\n"
        "# UNIT fcgikit_pm_uptime_seconds seconds\n"
        "# HELP fcgikit_pm_uptime_seconds Time since the process manager started.\n"
        "fcgikit_pm_uptime_seconds 3723.456\n"
        "# TYPE fcgikit_pm_reloads counter\n"
        "# HELP fcgikit_pm_reloads Configuration reloads since the process manager started.\n"
        "fcgikit_pm_reloads_total 1\n"
        "# TYPE fcgikit_pm_workers gauge\n"
        "# HELP fcgikit_pm_workers Worker processes by state.\n"
        "fcgikit_pm_workers{pool=\"www\",state=\"starting\"} 0\n"
        "fcgikit_pm_workers{pool=\"www\",state=\"idle\"} 1\n"
        "fcgikit_pm_workers{pool=\"www\",state=\"busy\"} 1\n"
        "fcgikit_pm_workers{pool=\"www\",state=\"draining\"} 1\n"
        "fcgikit_pm_workers{pool=\"www\",state=\"stopping\"} 0\n"
        "fcgikit_pm_workers{pool=\"api\",state=\"starting\"} 0\n"
        "fcgikit_pm_workers{pool=\"api\",state=\"idle\"} 0\n"
        "fcgikit_pm_workers{pool=\"api\",state=\"busy\"} 0\n"
        "fcgikit_pm_workers{pool=\"api\",state=\"draining\"} 0\n"
        "fcgikit_pm_workers{pool=\"api\",state=\"stopping\"} 0\n"
        "# TYPE fcgikit_pm_listen_queue gauge\n"
        "# HELP fcgikit_pm_listen_queue Connections waiting in the listening socket's accept "
        "queue.\n"
        "fcgikit_pm_listen_queue{pool=\"www\"} 3\n"
        "# TYPE fcgikit_pm_max_children gauge\n"
        "# HELP fcgikit_pm_max_children Most worker processes the pool may run.\n"
        "fcgikit_pm_max_children{pool=\"www\"} 8\n"
        "fcgikit_pm_max_children{pool=\"api\"} 4\n"
        "# TYPE fcgikit_pm_requests counter\n"
        "# HELP fcgikit_pm_requests Requests served.\n"
        "fcgikit_pm_requests_total{pool=\"www\"} 117\n"
        "fcgikit_pm_requests_total{pool=\"api\"} 0\n"
        "# TYPE fcgikit_pm_max_children_reached counter\n"
        "# HELP fcgikit_pm_max_children_reached Times the pool wanted another worker but had "
        "max_children.\n"
        "fcgikit_pm_max_children_reached_total{pool=\"www\"} 1\n"
        "fcgikit_pm_max_children_reached_total{pool=\"api\"} 0\n"
        "# TYPE fcgikit_pm_slow_requests counter\n"
        "# HELP fcgikit_pm_slow_requests Requests that ran longer than the slow-request "
        "threshold.\n"
        "fcgikit_pm_slow_requests_total{pool=\"www\"} 2\n"
        "fcgikit_pm_slow_requests_total{pool=\"api\"} 0\n"
        "# TYPE fcgikit_pm_killed_requests counter\n"
        "# HELP fcgikit_pm_killed_requests Workers killed for running a request past its time "
        "limit.\n"
        "fcgikit_pm_killed_requests_total{pool=\"www\"} 3\n"
        "fcgikit_pm_killed_requests_total{pool=\"api\"} 0\n"
        "# TYPE fcgikit_pm_respawns counter\n"
        "# HELP fcgikit_pm_respawns Workers started again after one exited.\n"
        "fcgikit_pm_respawns_total{pool=\"www\"} 4\n"
        "fcgikit_pm_respawns_total{pool=\"api\"} 0\n"
        "# TYPE fcgikit_pm_shed counter\n"
        "# HELP fcgikit_pm_shed Connections refused because the pool was overloaded.\n"
        "fcgikit_pm_shed_total{pool=\"www\"} 5\n"
        "fcgikit_pm_shed_total{pool=\"api\"} 0\n"
        "# TYPE fcgikit_pm_worker_requests counter\n"
        "# HELP fcgikit_pm_worker_requests Requests served by a worker process.\n"
        "fcgikit_pm_worker_requests_total{pool=\"www\",pid=\"101\"} 10\n"
        "fcgikit_pm_worker_requests_total{pool=\"www\",pid=\"102\"} 7\n"
        "fcgikit_pm_worker_requests_total{pool=\"www\",pid=\"99\"} 100\n"
        "# TYPE fcgikit_pm_worker_rss_bytes gauge\n"
        "# UNIT fcgikit_pm_worker_rss_bytes bytes\n"
        "# HELP fcgikit_pm_worker_rss_bytes Resident memory of a worker process.\n"
        "fcgikit_pm_worker_rss_bytes{pool=\"www\",pid=\"101\"} 2097152\n"
        "fcgikit_pm_worker_rss_bytes{pool=\"www\",pid=\"99\"} 20971520\n"
        "# EOF\n";

static void test_openmetrics_fixed(void **state)
{
	(void)state;
	char *out;
	size_t len;
	assert_int_equal(pm_render_openmetrics(&fixed, &out, &len), 0);
	assert_int_equal(len, strlen(out));
	assert_string_equal(out, fixed_om);
	free(out);
}

/* Structure rules checked line by line on any exposition: metadata before samples, each
 * family's samples together and named after it (counters: _total), "# EOF" last. */
static void check_openmetrics_shape(const char *text)
{
	size_t n = strlen(text);
	assert_true(n >= 6);
	assert_string_equal(text + n - 6, "# EOF\n");
	char family[128] = "", type[16] = "";
	int samples_seen = 0;
	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		assert_non_null(nl);
		size_t ll = (size_t)(nl - line);
		if (strncmp(line, "# EOF", 5) == 0) {
			assert_int_equal(ll, 5);
			assert_string_equal(nl + 1, ""); /* nothing after */
		} else if (strncmp(line, "# TYPE ", 7) == 0) {
			assert_true(sscanf(line, "# TYPE %127s %15s", family, type) == 2);
			assert_true(strcmp(type, "gauge") == 0 || strcmp(type, "counter") == 0);
			assert_null(strstr(family, "_total"));
			samples_seen = 0;
		} else if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# UNIT ", 7) == 0) {
			assert_int_equal(samples_seen, 0);
			assert_int_equal(strncmp(line + 7, family, strlen(family)), 0);
			assert_int_equal(line[7 + strlen(family)], ' ');
		} else {
			assert_true(line[0] != '#');
			char want[160];
			snprintf(want, sizeof want, "%s%s", family,
			         strcmp(type, "counter") == 0 ? "_total" : "");
			size_t wl = strlen(want);
			assert_int_equal(strncmp(line, want, wl), 0);
			assert_true(line[wl] == '{' || line[wl] == ' ');
			samples_seen = 1;
		}
		line = nl + 1;
	}
}

static void test_openmetrics_shape(void **state)
{
	(void)state;
	char *out;
	size_t len;
	assert_int_equal(pm_render_openmetrics(&fixed, &out, &len), 0);
	check_openmetrics_shape(out);
	free(out);

	pm_status_view empty = {.uptime_ms = -1500};
	assert_int_equal(pm_render_openmetrics(&empty, &out, &len), 0);
	check_openmetrics_shape(out);
	assert_non_null(strstr(out, "\nfcgikit_pm_uptime_seconds -1.500\n"));
	assert_null(strstr(out, "{pool="));
	free(out);
}

static void test_openmetrics_label_escaping(void **state)
{
	(void)state;
	pm_worker_view w = {.pid = -3, .requests = 1, .rss_kb = -1};
	pm_pool_view pl = {
	        .name = "a\"b\\c\nd\xff\xc3\xa9", .queue = 2, .nworkers = 1, .workers = &w};
	pm_status_view v = {.npools = 1, .pools = &pl};
	char *out;
	size_t len;
	assert_int_equal(pm_render_openmetrics(&v, &out, &len), 0);
	check_openmetrics_shape(out);
	const char *want =
	        "fcgikit_pm_listen_queue{pool=\"a\\\"b\\\\c\\nd\xef\xbf\xbd\xc3\xa9\"} 2\n";
	if (!strstr(out, want))
		fail_msg("label not escaped: %s", out);
	assert_non_null(strstr(out, "pid=\"-3\"} 1\n"));
	assert_null(strstr(out, "fcgikit_pm_worker_rss_bytes{")); /* unknown: no sample */
	free(out);

	pl.name = NULL;
	assert_int_equal(pm_render_openmetrics(&v, &out, &len), 0);
	assert_non_null(strstr(out, "fcgikit_pm_listen_queue{pool=\"\"} 2\n"));
	free(out);
}

/* ---------------------------------------------------------------- text */

static const char fixed_text[] =
        "fcgikit pm 0.1.0  pid 42  up 1h02m  reloads 1\n"
        "\n"
        "pool www  unix:/run/www.sock  dynamic  ok  live 3/8 (idle 1, busy 1, starting 0)  "
        "queue 3  requests 117\n"
        "  max_children reached 1, slow 2, killed 3, respawns 4, shed 5\n"
        "      PID  GEN  STATE        REQUESTS     RSS  REQUEST\n"
        "      101    2  idle               10   2048K  -\n"
        "      102    2  busy*               7       -  GET /x?a=1  1.5s\n"
        "       99    1  draining          100   20.0M  POST /upload  2m05s\n"
        "\n"
        "pool api  127.0.0.1:9000  static  backoff  live 0/4 (idle 0, busy 0, starting 0)  "
        "queue ?  requests 0\n"
        "\n"
        "* state sampled from the kernel: the worker does not report it\n";

static void test_text_fixed(void **state)
{
	(void)state;
	char *out;
	size_t len;
	assert_int_equal(pm_render_text(&fixed, &out, &len), 0);
	assert_int_equal(len, strlen(out));
	assert_string_equal(out, fixed_text);
	free(out);
}

static void test_text_hostile(void **state)
{
	(void)state;
	char longuri[200];
	memset(longuri, 'u', sizeof longuri - 1);
	longuri[sizeof longuri - 1] = '\0';
	pm_worker_view w[] = {
	        {.pid = 1,
	         .state = "busy\x1b[31m",
	         .reports = 1,
	         .rss_kb = 20000000,
	         .cur_method = "\r\n",
	         .cur_uri = hostile,
	         .cur_ms = 90061000},
	        {.pid = 2,
	         .state = NULL,
	         .reports = 1,
	         .rss_kb = 10240,
	         .cur_uri = longuri,
	         .cur_ms = 999},
	};
	pm_pool_view pl = {.name = "p", .queue = -1, .nworkers = 2, .workers = w};
	pm_status_view v = {.version = "\x07", .npools = 1, .pools = &pl};
	char *out;
	size_t len;
	assert_int_equal(pm_render_text(&v, &out, &len), 0);
	/* No byte a terminal acts on, other than the line ends. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)out[i];
		if ((c < 0x20 && c != '\n') || c == 0x7f)
			fail_msg("control byte 0x%02x at %zu in:\n%s", c, i, out);
	}
	assert_non_null(strstr(out, "fcgikit pm \\x07  pid 0"));
	assert_non_null(strstr(out, "busy\\x1b[31m"));
	assert_non_null(strstr(out, "\\x0d\\x0a /a\"b\\\\c\\x0ad\\x01e\\x7f\\xff\\xc0\\xaf"
	                            "\\xed\\xa0\\x80\\xf4\\x90\\x80\\x80"
	                            "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
	                            "\xe2\x80\xa8\\xc2\\x85\\x1b[2J\\xe2\\x82  1d01h"));
	assert_non_null(strstr(out, "   19.0G  "));
	assert_non_null(strstr(out, "  10.0M  "));
	/* 60 characters of a long URI, then an ellipsis. */
	char want[80];
	snprintf(want, sizeof want, "- %.60s...  999ms\n", longuri);
	assert_non_null(strstr(out, want));
	assert_null(strstr(out, "* state sampled"));
	free(out);
}

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_validator_self_check),
	        cmocka_unit_test(test_json_fixed),
	        cmocka_unit_test(test_json_empty_and_nulls),
	        cmocka_unit_test(test_json_hostile),
	        cmocka_unit_test(test_json_long_string),
	        cmocka_unit_test(test_bad_arguments),
	        cmocka_unit_test(test_openmetrics_fixed),
	        cmocka_unit_test(test_openmetrics_shape),
	        cmocka_unit_test(test_openmetrics_label_escaping),
	        cmocka_unit_test(test_text_fixed),
	        cmocka_unit_test(test_text_hostile),
	};
	return cmocka_run_group_tests_name("pm_render", tests, NULL, NULL);
}
