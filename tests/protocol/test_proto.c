/*
 * test_proto.c — protocol tests written directly against the socket, for everything the web
 * servers never send: management records, unknown types and roles, KEEP_CONN both ways,
 * interleaved multiplexed requests, ABORT, pairs split inside their length bytes, padding,
 * and hostile input. After each test a normal request on a new connection must still
 * succeed: the process survived.
 *
 * The application under test is the echo example (the project's test contract):
 *   status 200, Content-Type: application/octet-stream, body = stdin bytes,
 *   X-Request-Method = REQUEST_METHOD, X-Query = QUERY_STRING,
 *   param ECHO_DELAY_MS: answer after that many ms without blocking other requests.
 * It is started as `echo ADDRESS --threads 4` from the examples directory beside this test
 * binary's directory (build/tests -> build/examples, build-san/tests -> build-san/examples),
 * else $FCGIKIT_BUILD/examples; $FCGIKIT_ECHO names the binary outright.
 *
 * Every socket operation has a timeout and every test runs under an alarm() watchdog.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers/spawn.h"

#define RAW_MALLOC test_malloc
#define RAW_REALLOC test_realloc
#define RAW_FREE test_free
#include "protocol/fcgi_raw.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_SANITIZED 1
#endif
#endif
#ifndef TEST_SANITIZED
#define TEST_SANITIZED 0
#endif

enum {
	WATCHDOG_S = 90,  /* per test */
	START_MS = 10000, /* the app must accept connections within this */
	IO_MS = 5000,     /* SO_RCVTIMEO / SO_SNDTIMEO on test sockets */
	REPLY_MS = 5000,  /* a plain answer must arrive within this */
	CLOSE_MS = 3000,  /* a connection the app should close must close within this */
	IDLE_CONNS = 2000,
	RSS_LIMIT_MB = 64,
};

static char g_echo[4096];
static spawn_proc g_app;
static char g_asan_env[1024];
static const char *g_env[2];
static const char *const g_args[] = {"--threads", "4", NULL};

/* ---------------------------------------------------------------- bookkeeping */

/* Sockets opened by the current test; teardown closes what a failed assertion left open. */
static int g_fds[IDLE_CONNS + 64];
static size_t g_nfds;

static int track(int fd)
{
	if (fd >= 0 && g_nfds < sizeof g_fds / sizeof g_fds[0])
		g_fds[g_nfds++] = fd;
	return fd;
}

static void untrack_close(int fd)
{
	for (size_t i = 0; i < g_nfds; i++)
		if (g_fds[i] == fd) {
			g_fds[i] = g_fds[--g_nfds];
			break;
		}
	close(fd);
}

static void watchdog(int sig)
{
	(void)sig;
	static const char msg[] = "# test_proto: watchdog fired, test hung; killing the app\n";
	ssize_t w = write(2, msg, sizeof msg - 1);
	(void)w;
	spawn_kill_now(&g_app);
	_exit(3);
}

static int start_app(spawn_proc *p, spawn_family fam)
{
	return spawn_start(p, g_echo, fam, g_args, g_env, START_MS);
}

static int setup(void **state)
{
	(void)state;
	g_nfds = 0;
	alarm(WATCHDOG_S);
	if (!spawn_alive(&g_app)) {
		fprintf(stderr, "# echo is not running (status 0x%x): restarting it\n",
		        g_app.status);
		spawn_stop(&g_app, 100);
		if (start_app(&g_app, SPAWN_UNIX) < 0)
			return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	while (g_nfds)
		untrack_close(g_fds[g_nfds - 1]);
	alarm(0);
	return 0;
}

static int connect_app(const spawn_proc *p)
{
	int fd = spawn_connect(p, 3000, IO_MS);
	if (fd < 0)
		fail_msg("connect to %s: %s", p->address, strerror(errno));
	return track(fd);
}

/* Sends a buffer from a helper thread, so a test can read responses while a large request
 * is still going out (a test never deadlocks against the app's flow control). */
typedef struct sender {
	pthread_t th;
	int fd;
	const uint8_t *p;
	size_t len, sent;
	int err;
	int running;
} sender;

static void *sender_main(void *arg)
{
	sender *s = arg;
	while (s->sent < s->len) {
		ssize_t w = send(s->fd, s->p + s->sent, s->len - s->sent, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			s->err = errno;
			break;
		}
		s->sent += (size_t)w;
	}
	return NULL;
}

static void sender_start(sender *s, int fd, const rbuf *b)
{
	memset(s, 0, sizeof *s);
	s->fd = fd;
	s->p = b->p;
	s->len = b->len;
	if (pthread_create(&s->th, NULL, sender_main, s))
		fail_msg("pthread_create failed");
	s->running = 1;
}

static void sender_join(sender *s)
{
	if (s->running)
		pthread_join(s->th, NULL);
	s->running = 0;
}

/* ---------------------------------------------------------------- checking responses */

static void echo_params(rbuf *pr, const char *method, const char *query, size_t blen,
                        const char *delay_ms)
{
	char cl[32];
	snprintf(cl, sizeof cl, "%zu", blen);
	rb_pair(pr, "GATEWAY_INTERFACE", "CGI/1.1");
	rb_pair(pr, "SERVER_PROTOCOL", "HTTP/1.1");
	rb_pair(pr, "REQUEST_METHOD", method);
	rb_pair(pr, "QUERY_STRING", query);
	rb_pair(pr, "SCRIPT_NAME", "/echo");
	rb_pair(pr, "REQUEST_URI", "/echo");
	rb_pair(pr, "CONTENT_LENGTH", cl);
	rb_pair(pr, "CONTENT_TYPE", "application/octet-stream");
	if (delay_ms)
		rb_pair(pr, "ECHO_DELAY_MS", delay_ms);
}

static void show_bytes(char *out, size_t size, const uint8_t *p, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 5 < size; i++) {
		if (p[i] >= 32 && p[i] < 127 && p[i] != '\\')
			out[o++] = (char)p[i];
		else
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", p[i]);
	}
	if (o >= size)
		o = size - 1;
	out[o] = 0;
}

static void fill_body(uint8_t *p, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
}

/* Checks one echo response against the contract; NULL when right, else why not. */
static const char *check_echo(const raw_resp *r, const char *method, const char *query,
                              const void *body, size_t blen)
{
	static char why[1200];
	char v[1024], shown[400];
	if (r->problem[0]) {
		snprintf(why, sizeof why, "id %u: protocol violation by the app: %s", r->id,
		         r->problem);
		return why;
	}
	if (!r->ended) {
		snprintf(why, sizeof why, "id %u: no END_REQUEST (got %zu STDOUT bytes)", r->id,
		         r->out.len);
		return why;
	}
	if (r->proto_status != 0) {
		snprintf(why, sizeof why,
		         "id %u: END_REQUEST protocolStatus %u, expected 0 (COMPLETE)", r->id,
		         r->proto_status);
		return why;
	}
	if (!r->out_ended) {
		snprintf(why, sizeof why, "id %u: STDOUT stream not ended by an empty record",
		         r->id);
		return why;
	}
	cgi_resp c = cgi_parse(r->out.p, r->out.len);
	if (c.status != 200) {
		show_bytes(shown, sizeof shown, r->out.p, r->out.len < 200 ? r->out.len : 200);
		snprintf(why, sizeof why, "id %u: status %d, expected 200; STDOUT starts \"%s\"",
		         r->id, c.status, shown);
		return why;
	}
	if (!cgi_header(&c, "Content-Type", v, sizeof v) || strcmp(v, "application/octet-stream")) {
		snprintf(why, sizeof why,
		         "id %u: Content-Type \"%s\", expected application/octet-stream", r->id,
		         cgi_header(&c, "Content-Type", v, sizeof v) ? v : "(none)");
		return why;
	}
	if (method && (!cgi_header(&c, "X-Request-Method", v, sizeof v) || strcmp(v, method))) {
		snprintf(why, sizeof why, "id %u: X-Request-Method \"%s\", expected \"%s\"", r->id,
		         cgi_header(&c, "X-Request-Method", v, sizeof v) ? v : "(none)", method);
		return why;
	}
	if (query && (!cgi_header(&c, "X-Query", v, sizeof v) || strcmp(v, query))) {
		snprintf(why, sizeof why, "id %u: X-Query \"%.300s\", expected \"%.300s\"", r->id,
		         cgi_header(&c, "X-Query", v, sizeof v) ? v : "(none)", query);
		return why;
	}
	if (c.body_len != blen || (blen && memcmp(c.body, body, blen))) {
		size_t i = 0;
		while (i < blen && i < c.body_len && c.body[i] == ((const uint8_t *)body)[i])
			i++;
		snprintf(why, sizeof why,
		         "id %u: body of %zu bytes, expected %zu; first difference at %zu", r->id,
		         c.body_len, blen, i);
		return why;
	}
	return NULL;
}

#define assert_echo(r, method, query, body, blen)                                                  \
	do {                                                                                       \
		const char *why_ = check_echo((r), (method), (query), (body), (blen));             \
		if (why_)                                                                          \
			fail_msg("%s", why_);                                                      \
	} while (0)

/* One complete request on fd (already connected); returns the collected response. */
static raw_collect_result do_request(int fd, unsigned id, unsigned flags, const char *method,
                                     const char *query, const void *body, size_t blen, raw_resp *r)
{
	rbuf pr = {0}, req = {0};
	echo_params(&pr, method, query, blen, NULL);
	rb_request(&req, id, flags, &pr, body, blen);
	raw_resp_init(r, 1, id);
	sender s;
	sender_start(&s, fd, &req);
	raw_collect_result res = raw_collect(fd, r, 1, REPLY_MS);
	sender_join(&s);
	rb_free(&pr);
	rb_free(&req);
	return res;
}

/* The proof that the process survived: a normal request on a new connection succeeds. */
static void survived_on(spawn_proc *p)
{
	if (!spawn_alive(p))
		fail_msg("the app process is gone (wait status 0x%x)", p->status);
	int fd = connect_app(p);
	static const char body[] = "still alive\n";
	raw_resp r;
	raw_collect_result res = do_request(fd, 1, 0, "POST", "probe=1", body, sizeof body - 1, &r);
	const char *why = check_echo(&r, "POST", "probe=1", body, sizeof body - 1);
	if (why)
		fail_msg("follow-up normal request failed: %s%s", why,
		         res.timeout ? " (timed out)"
		         : res.eof   ? " (connection closed)"
		                     : "");
	raw_resp_free(&r, 1);
	untrack_close(fd);
}

static void survived(void) { survived_on(&g_app); }

/* ---------------------------------------------------------------- management */

/* Decodes one pair of a GET_VALUES_RESULT body; returns bytes used or 0 when malformed. */
static size_t parse_pair(const uint8_t *p, size_t n, const uint8_t **name, size_t *nl,
                         const uint8_t **val, size_t *vl)
{
	size_t off = 0, len[2];
	for (int k = 0; k < 2; k++) {
		if (off >= n)
			return 0;
		if (p[off] & 0x80) {
			if (off + 4 > n)
				return 0;
			len[k] = ((size_t)(p[off] & 0x7f) << 24) | ((size_t)p[off + 1] << 16) |
			         ((size_t)p[off + 2] << 8) | p[off + 3];
			off += 4;
		} else {
			len[k] = p[off++];
		}
	}
	if (len[0] > n - off || len[1] > n - off - len[0])
		return 0;
	*name = p + off;
	*nl = len[0];
	*val = p + off + len[0];
	*vl = len[1];
	return off + len[0] + len[1];
}

static void test_get_values(void **state)
{
	(void)state;
	int fd = connect_app(&g_app);
	rbuf q = {0}, rec = {0};
	rb_pair(&q, "FCGI_MAX_CONNS", "");
	rb_pair(&q, "FCGI_MAX_REQS", "");
	rb_pair(&q, "FCGI_MPXS_CONNS", "");
	rb_pair(&q, "FCGI_NO_SUCH_VALUE", "");
	rb_record(&rec, RAW_GET_VALUES, 0, q.p, q.len, (unsigned)(-q.len & 7u));
	assert_int_equal(raw_send_rb(fd, &rec), 0);

	raw_rec *r = test_malloc(sizeof *r);
	assert_non_null(r);
	int k = raw_read_record(fd, r, raw_now_ms() + REPLY_MS);
	if (k != 1)
		fail_msg("no answer to GET_VALUES (%s)", k == 0 ? "connection closed" : "timeout");
	if (r->type != RAW_GET_VALUES_RESULT || r->id != 0)
		fail_msg("answer to GET_VALUES: type %u id %u, expected type 10 "
		         "(GET_VALUES_RESULT) id 0",
		         r->type, r->id);
	int seen[3] = {0};
	static const char *const names[3] = {"FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"};
	size_t off = 0;
	while (off < r->len) {
		const uint8_t *n = NULL, *v = NULL;
		size_t nl = 0, vl = 0;
		size_t used = parse_pair(r->content + off, r->len - off, &n, &nl, &v, &vl);
		if (!used)
			fail_msg("malformed pair in GET_VALUES_RESULT at offset %zu", off);
		off += used;
		char name[64] = "", val[64] = "";
		memcpy(name, n, nl < 63 ? nl : 63);
		memcpy(val, v, vl < 63 ? vl : 63);
		int idx = -1;
		for (int i = 0; i < 3; i++)
			if (!strcmp(name, names[i]))
				idx = i;
		if (idx < 0)
			fail_msg("GET_VALUES_RESULT carries \"%s\"=\"%s\": unknown names must be "
			         "omitted",
			         name, val);
		if (seen[idx]++)
			fail_msg("GET_VALUES_RESULT carries %s twice", name);
		char *end;
		errno = 0;
		long x = strtol(val, &end, 10);
		if (!vl || *end || errno || x < 0)
			fail_msg("%s=\"%s\" is not a decimal number", name, val);
		if (idx == 2 && x != 1)
			fail_msg("FCGI_MPXS_CONNS=%ld, expected 1 (echo multiplexes)", x);
		if (idx != 2 && x < 1)
			fail_msg("%s=%ld, expected a positive limit", name, x);
		fprintf(stderr, "# GET_VALUES_RESULT %s=%s\n", name, val);
	}
	for (int i = 0; i < 3; i++)
		if (!seen[i])
			fail_msg("GET_VALUES_RESULT lacks %s", names[i]);
	test_free(r);
	rb_free(&q);
	rb_free(&rec);
	untrack_close(fd);
	survived();
}

static void test_unknown_management_type(void **state)
{
	(void)state;
	int fd = connect_app(&g_app);
	rbuf rec = {0};
	rb_record(&rec, 12, 0, "whatever", 8, 0);
	assert_int_equal(raw_send_rb(fd, &rec), 0);
	raw_rec *r = test_malloc(sizeof *r);
	assert_non_null(r);
	int k = raw_read_record(fd, r, raw_now_ms() + REPLY_MS);
	if (k != 1)
		fail_msg("no answer to a management record of type 12 (%s)",
		         k == 0 ? "connection closed" : "timeout");
	if (r->type != RAW_UNKNOWN_TYPE || r->id != 0 || r->len != 8 || r->content[0] != 12)
		fail_msg("got type %u id %u len %zu body[0]=%u, expected UNKNOWN_TYPE(11) id 0 len "
		         "8 "
		         "body[0]=12",
		         r->type, r->id, r->len, r->len ? r->content[0] : 0u);
	/* The connection stays usable: a request on it works. */
	raw_resp resp;
	do_request(fd, 1, 0, "GET", "after=unknown", NULL, 0, &resp);
	assert_echo(&resp, "GET", "after=unknown", NULL, 0);
	raw_resp_free(&resp, 1);
	test_free(r);
	rb_free(&rec);
	untrack_close(fd);
	survived();
}

static void test_unknown_role(void **state)
{
	(void)state;
	int fd = connect_app(&g_app);
	rbuf req = {0}, pr = {0};
	echo_params(&pr, "GET", "role=9", 0, NULL);
	rb_begin(&req, 1, 9, RAW_KEEP_CONN);
	rb_stream(&req, RAW_PARAMS, 1, pr.p, pr.len);
	rb_stream_end(&req, RAW_PARAMS, 1);
	rb_stream_end(&req, RAW_STDIN, 1);
	assert_int_equal(raw_send_rb(fd, &req), 0);
	raw_resp r;
	raw_resp_init(&r, 1, 1);
	raw_collect_result res = raw_collect(fd, &r, 1, REPLY_MS);
	if (!r.ended)
		fail_msg("no END_REQUEST for role 9 (%s)",
		         res.eof ? "connection closed" : "timeout");
	if (r.proto_status != 3)
		fail_msg("END_REQUEST protocolStatus %u for role 9, expected 3 (UNKNOWN_ROLE)",
		         r.proto_status);
	if (r.out.len)
		fail_msg("%zu STDOUT bytes sent for a request with an unknown role", r.out.len);
	raw_resp_free(&r, 1);
	/* KEEP_CONN was set: the same connection serves the next request (id reused). */
	do_request(fd, 1, 0, "GET", "after=role", NULL, 0, &r);
	assert_echo(&r, "GET", "after=role", NULL, 0);
	raw_resp_free(&r, 1);
	rb_free(&req);
	rb_free(&pr);
	untrack_close(fd);
	survived();
}

/* ---------------------------------------------------------------- plain requests */

static void test_responder_closes_without_keep_conn(void **state)
{
	(void)state;
	int fd = connect_app(&g_app);
	raw_resp r;
	raw_collect_result res = do_request(fd, 1, 0, "GET", "a=1&b=two", NULL, 0, &r);
	assert_echo(&r, "GET", "a=1&b=two", NULL, 0);
	if (res.mgmt || res.stray)
		fail_msg("unexpected records: %s", res.problem);
	if (!raw_wait_close(fd, CLOSE_MS))
		fail_msg("connection still open %d ms after END_REQUEST without KEEP_CONN",
		         CLOSE_MS);
	raw_resp_free(&r, 1);
	untrack_close(fd);
	survived();
}

static void test_responder_keep_conn(void **state)
{
	(void)state;
	int fd = connect_app(&g_app);
	raw_resp r;
	do_request(fd, 1, RAW_KEEP_CONN, "POST", "n=1", "first", 5, &r);
	assert_echo(&r, "POST", "n=1", "first", 5);
	raw_resp_free(&r, 1);
	do_request(fd, 1, RAW_KEEP_CONN, "PUT", "n=2", "second", 6, &r);
	assert_echo(&r, "PUT", "n=2", "second", 6);
	raw_resp_free(&r, 1);
	int st = raw_peek_state(fd, 300);
	if (st)
		fail_msg("kept connection %s after a KEEP_CONN request",
		         st == 1 ? "was closed" : "received unexpected bytes");
	/* A third request without KEEP_CONN on it: answered, then the app closes. */
	do_request(fd, 65535, 0, "GET", "n=3", NULL, 0, &r);
	assert_echo(&r, "GET", "n=3", NULL, 0);
	raw_resp_free(&r, 1);
	if (!raw_wait_close(fd, CLOSE_MS))
		fail_msg("connection still open after the request without KEEP_CONN");
	untrack_close(fd);
	survived();
}

static void test_large_body_both_ways(void **state)
{
	(void)state;
	enum { BODY = 3 << 20 };
	int fd = connect_app(&g_app);
	uint8_t *body = test_malloc(BODY);
	assert_non_null(body);
	fill_body(body, BODY, 7);
	raw_resp r;
	raw_collect_result res = do_request(fd, 9, 0, "POST", "big=1", body, BODY, &r);
	if (!r.ended)
		fail_msg("3 MiB echo: no END_REQUEST (%s, %zu STDOUT bytes so far)",
		         res.eof ? "connection closed" : "timeout", r.out.len);
	assert_echo(&r, "POST", "big=1", body, BODY);
	raw_resp_free(&r, 1);
	test_free(body);
	untrack_close(fd);
	survived();
}

static void test_half_close_after_request(void **state)
{
	(void)state;
	/* The client sends a whole request and shuts its write side: the answer still comes. */
	int fd = connect_app(&g_app);
	rbuf pr = {0}, req = {0};
	echo_params(&pr, "POST", "half=1", 5, "100");
	rb_request(&req, 1, 0, &pr, "hello", 5);
	assert_int_equal(raw_send_rb(fd, &req), 0);
	shutdown(fd, SHUT_WR);
	raw_resp r;
	raw_resp_init(&r, 1, 1);
	raw_collect_result res = raw_collect(fd, &r, 1, REPLY_MS);
	if (!r.ended)
		fail_msg("no answer after the client shut its write side (%s)",
		         res.eof ? "connection closed" : "timeout");
	assert_echo(&r, "POST", "half=1", "hello", 5);
	raw_resp_free(&r, 1);
	rb_free(&pr);
	rb_free(&req);
	untrack_close(fd);
	survived();
}

/* ---------------------------------------------------------------- multiplexing */

static void test_multiplex_interleaved(void **state)
{
	(void)state;
	enum { N = 20 };
	int fd = connect_app(&g_app);
	rbuf pr[N + 1] = {{0}}, req = {0};
	uint8_t *body[N + 1];
	size_t blen[N + 1];
	char query[N + 1][32];
	for (unsigned id = 1; id <= N; id++) {
		char delay[16];
		/* Reverse order: id 1 waits longest, id 20 least. */
		snprintf(delay, sizeof delay, "%u", (N + 1 - id) * 40);
		snprintf(query[id], sizeof query[id], "id=%u", id);
		blen[id] = id * 997;
		body[id] = test_malloc(blen[id]);
		assert_non_null(body[id]);
		fill_body(body[id], blen[id], id);
		echo_params(&pr[id], id % 2 ? "POST" : "PUT", query[id], blen[id], delay);
	}
	/* BEGIN for all, then PARAMS in three interleaved slices each, then STDIN likewise. */
	for (unsigned id = 1; id <= N; id++)
		rb_begin(&req, id, RAW_RESPONDER, RAW_KEEP_CONN);
	for (int part = 0; part < 3; part++)
		for (unsigned id = 1; id <= N; id++) {
			size_t a = pr[id].len * (size_t)part / 3,
			       b = pr[id].len * (size_t)(part + 1) / 3;
			if (b > a)
				rb_record(&req, RAW_PARAMS, id, pr[id].p + a, b - a,
				          (unsigned)(id % 8));
		}
	for (unsigned id = N; id >= 1; id--)
		rb_stream_end(&req, RAW_PARAMS, id);
	/* A management record in the middle of it all. */
	rbuf gv = {0};
	rb_pair(&gv, "FCGI_MPXS_CONNS", "");
	rb_record(&req, RAW_GET_VALUES, 0, gv.p, gv.len, (unsigned)(-gv.len & 7u));
	rb_free(&gv);
	for (int part = 0; part < 2; part++)
		for (unsigned id = 1; id <= N; id++) {
			size_t a = blen[id] * (size_t)part / 2,
			       b = blen[id] * (size_t)(part + 1) / 2;
			rb_record(&req, RAW_STDIN, id, body[id] + a, b - a, 0);
		}
	for (unsigned id = 1; id <= N; id++)
		rb_stream_end(&req, RAW_STDIN, id);

	raw_resp r[N];
	raw_resp_init(r, N, 1);
	long long t0 = raw_now_ms();
	sender s;
	sender_start(&s, fd, &req);
	raw_collect_result res = raw_collect(fd, r, N, 15000);
	sender_join(&s);
	long long took = raw_now_ms() - t0;
	char orders[200];
	size_t o = 0;
	int out_of_order = 0;
	for (unsigned i = 0; i < N; i++) {
		o += (size_t)snprintf(orders + o, sizeof orders - o, "%d ",
		                      r[i].ended ? r[i].order : -1);
		if (r[i].ended && r[i].order != (int)i)
			out_of_order = 1;
	}
	fprintf(stderr, "# multiplex: %d of %d ended in %lld ms; END rank by id: %s\n", res.ended,
	        N, took, orders);
	if (res.ended < N)
		fail_msg("only %d of %d multiplexed requests ended (%s)", res.ended, N,
		         res.eof ? "connection closed" : "timeout");
	for (unsigned id = 1; id <= N; id++)
		assert_echo(&r[id - 1], id % 2 ? "POST" : "PUT", query[id], body[id], blen[id]);
	if (res.mgmt != 1 || res.last_mgmt_type != RAW_GET_VALUES_RESULT)
		fail_msg("GET_VALUES sent amid the requests: %d management records back (last type "
		         "%u), "
		         "expected one GET_VALUES_RESULT",
		         res.mgmt, res.last_mgmt_type);
	if (!out_of_order)
		fail_msg("responses came strictly in id order although delays were reversed: "
		         "requests on one connection were not handled concurrently");
	if (took > 4000)
		fail_msg("20 requests with delays of at most 800 ms took %lld ms: delays are not "
		         "concurrent",
		         took);
	for (unsigned id = 1; id <= N; id++) {
		rb_free(&pr[id]);
		test_free(body[id]);
	}
	raw_resp_free(r, N);
	rb_free(&req);
	untrack_close(fd);
	survived();
}

static void test_overloaded_past_per_conn_limit(void **state)
{
	(void)state;
	/* 300 requests in flight on one connection, past the default of 256 per connection:
	 * every one ends, the extra ones with OVERLOADED, the others served. */
	enum { N = 300 };
	int fd = connect_app(&g_app);
	rbuf pr = {0}, req = {0};
	echo_params(&pr, "GET", "many", 0, "300");
	for (unsigned id = 1; id <= N; id++) {
		rb_begin(&req, id, RAW_RESPONDER, RAW_KEEP_CONN);
		rb_stream(&req, RAW_PARAMS, id, pr.p, pr.len);
		rb_stream_end(&req, RAW_PARAMS, id);
		rb_stream_end(&req, RAW_STDIN, id);
	}
	raw_resp *r = test_calloc(N, sizeof *r);
	assert_non_null(r);
	raw_resp_init(r, N, 1);
	sender s;
	sender_start(&s, fd, &req);
	raw_collect_result res = raw_collect(fd, r, N, 10000);
	sender_join(&s);
	int served = 0, overloaded = 0, other = 0;
	for (unsigned i = 0; i < N; i++) {
		if (!r[i].ended)
			continue;
		if (r[i].proto_status == 2 && !r[i].out.len)
			overloaded++;
		else if (!check_echo(&r[i], "GET", "many", NULL, 0))
			served++;
		else
			other++;
	}
	fprintf(stderr,
	        "# %d requests on one connection: %d served, %d OVERLOADED, %d other, %d "
	        "without END\n",
	        N, served, overloaded, other, N - res.ended);
	if (res.ended < N)
		fail_msg("only %d of %d requests ended (%s)", res.ended, N,
		         res.eof ? "connection closed" : "timeout");
	if (other)
		fail_msg("%d responses were neither right nor OVERLOADED", other);
	if (served < 200)
		fail_msg("only %d of %d requests served", served, N);
	raw_resp_free(r, N);
	test_free(r);
	rb_free(&pr);
	rb_free(&req);
	untrack_close(fd);
	survived();
}

static void test_abort_in_flight(void **state)
{
	(void)state;
	int fd = connect_app(&g_app);
	rbuf pr = {0}, req = {0};
	echo_params(&pr, "POST", "abort=me", 4, "2000");
	rb_request(&req, 1, RAW_KEEP_CONN, &pr, "slow", 4);
	long long t0 = raw_now_ms();
	assert_int_equal(raw_send_rb(fd, &req), 0);
	usleep(150 * 1000);
	rbuf ab = {0};
	rb_abort(&ab, 1);
	assert_int_equal(raw_send_rb(fd, &ab), 0);
	raw_resp r;
	raw_resp_init(&r, 1, 1);
	raw_collect_result res = raw_collect(fd, &r, 1, 4000);
	long long took = r.ended ? r.end_ms - t0 : -1;
	fprintf(stderr, "# abort: END_REQUEST after %lld ms (status %u/%u), %zu STDOUT bytes\n",
	        took, r.app_status, r.proto_status, r.out.len);
	if (!r.ended)
		fail_msg("no END_REQUEST after ABORT_REQUEST (%s)",
		         res.eof ? "connection closed" : "timeout");
	if (took >= 1500)
		fail_msg("END_REQUEST for the aborted request came after %lld ms; the request's "
		         "2000 ms "
		         "delay was not cut short (expected < 1500 ms)",
		         took);
	if (r.problem[0])
		fail_msg("protocol violation: %s", r.problem);
	raw_resp_free(&r, 1);
	/* ABORT for an id not in flight: ignored, nothing comes back. */
	ab.len = 0;
	rb_abort(&ab, 77);
	assert_int_equal(raw_send_rb(fd, &ab), 0);
	int st = raw_peek_state(fd, 300);
	if (st)
		fail_msg("ABORT_REQUEST for an id not in flight: the app %s",
		         st == 1 ? "closed the connection" : "sent something back");
	/* ABORT before the PARAMS stream is complete: the request ends at once. */
	ab.len = 0;
	rb_begin(&ab, 3, RAW_RESPONDER, RAW_KEEP_CONN);
	rb_record(&ab, RAW_PARAMS, 3, pr.p, pr.len / 2, 0);
	rb_abort(&ab, 3);
	t0 = raw_now_ms();
	assert_int_equal(raw_send_rb(fd, &ab), 0);
	raw_resp_init(&r, 1, 3);
	res = raw_collect(fd, &r, 1, 2000);
	fprintf(stderr, "# abort during PARAMS: %s after %lld ms\n",
	        r.ended   ? "END_REQUEST"
	        : res.eof ? "connection closed"
	                  : "nothing",
	        raw_now_ms() - t0);
	if (!r.ended)
		fail_msg("ABORT_REQUEST during PARAMS: no END_REQUEST within 2000 ms (%s)",
		         res.eof ? "connection closed" : "timeout");
	if (r.out.len)
		fail_msg("ABORT_REQUEST during PARAMS: %zu STDOUT bytes", r.out.len);
	raw_resp_free(&r, 1);
	/* The connection goes on (KEEP_CONN). */
	do_request(fd, 2, 0, "GET", "after=abort", NULL, 0, &r);
	assert_echo(&r, "GET", "after=abort", NULL, 0);
	raw_resp_free(&r, 1);
	rb_free(&pr);
	rb_free(&req);
	rb_free(&ab);
	untrack_close(fd);
	survived();
}

/* ---------------------------------------------------------------- framing */

static void test_split_pairs_padding_empty_records(void **state)
{
	(void)state;
	int fd = connect_app(&g_app);
	char query[301], longname[201], longval[131];
	for (int i = 0; i < 300; i++)
		query[i] = (char)('a' + i % 26);
	query[300] = 0;
	memcpy(longname, "HTTP_X_", 7);
	for (int i = 7; i < 200; i++)
		longname[i] = (char)('A' + i % 26);
	longname[200] = 0;
	memset(longval, 'v', 130);
	longval[130] = 0;
	static const uint8_t body_seed = 3;
	uint8_t body[5000];
	fill_body(body, sizeof body, body_seed);

	rbuf pr = {0}, req = {0};
	/* 4-byte lengths: a short name and value written in the long form (legal, if unusual),
	 * a 300-byte value, a 200-byte name. */
	rb_pair_n(&pr, "REQUEST_METHOD", 14, "PATCH", 5, 1);
	rb_pair_n(&pr, "QUERY_STRING", 12, query, 300, 0);
	rb_pair_n(&pr, longname, 200, longval, 130, 0);
	rb_pair(&pr, "CONTENT_LENGTH", "5000");
	rb_pair_n(&pr, "HTTP_X_EMPTY", 12, "", 0, 1);
	rb_pair(&pr, "SERVER_PROTOCOL", "HTTP/1.1");

	static const size_t sizes[] = {1, 2, 3, 5, 7, 11, 1, 4};
	static const unsigned pads[] = {7, 255, 0, 1, 255, 7};
	rb_begin(&req, 1, RAW_RESPONDER, 0);
	/* Empty records of requests not in flight, which the app must skip. */
	rb_record(&req, RAW_STDIN, 99, NULL, 0, 0);
	size_t off = 0;
	for (unsigned i = 0; off < pr.len; i++) {
		size_t n = sizes[i % 8];
		if (n > pr.len - off)
			n = pr.len - off;
		rb_record(&req, RAW_PARAMS, 1, pr.p + off, n, pads[i % 6]);
		off += n;
		if (i % 5 == 0)
			rb_record(&req, RAW_PARAMS, 98, NULL, 0, 7);
		if (i % 7 == 0)
			rb_record(&req, RAW_STDIN, 97, NULL, 0, 255);
	}
	rb_record(&req, RAW_PARAMS, 1, NULL, 0, 255);
	for (size_t b = 0; b < sizeof body; b += 1000) {
		rb_record(&req, RAW_STDIN, 1, body + b, 1000, b % 2000 ? 255 : 7);
		rb_record(&req, RAW_STDIN, 96, NULL, 0, 7);
	}
	rb_record(&req, RAW_STDIN, 1, NULL, 0, 7);

	raw_resp r;
	raw_resp_init(&r, 1, 1);
	sender s;
	sender_start(&s, fd, &req);
	raw_collect_result res = raw_collect(fd, &r, 1, REPLY_MS);
	sender_join(&s);
	if (!r.ended)
		fail_msg("no answer to a request with split pairs and padding (%s, %zu STDOUT "
		         "bytes)",
		         res.eof ? "connection closed" : "timeout", r.out.len);
	assert_echo(&r, "PATCH", query, body, sizeof body);
	if (res.stray)
		fail_msg("answers for ids that were never begun: %s", res.problem);
	raw_resp_free(&r, 1);
	rb_free(&pr);
	rb_free(&req);
	untrack_close(fd);
	survived();
}

/* ---------------------------------------------------------------- hostile input */

/* After something hostile: the app must close within CLOSE_MS, or refuse the request with
 * END_REQUEST(refusal); it must never answer with a 200 response. */
static void expect_refused_or_closed(int fd, unsigned id, const char *what)
{
	raw_resp r;
	raw_resp_init(&r, 1, id);
	raw_collect_result res = raw_collect(fd, &r, 1, CLOSE_MS);
	if (r.ended && r.proto_status == 0 && r.out.len) {
		cgi_resp c = cgi_parse(r.out.p, r.out.len);
		fail_msg("%s: the app served the request (status %d, %zu STDOUT bytes) instead of "
		         "refusing it or closing",
		         what, c.status, r.out.len);
	}
	if (!r.ended && !res.eof)
		fail_msg("%s: neither closed nor refused within %d ms", what, CLOSE_MS);
	fprintf(stderr, "# %s: %s\n", what,
	        r.ended ? (r.proto_status == 2 ? "END_REQUEST(OVERLOADED)" : "END_REQUEST")
	                : "connection closed");
	raw_resp_free(&r, 1);
}

static void test_hostile_version(void **state)
{
	(void)state;
	int fd = connect_app(&g_app);
	rbuf req = {0};
	rb_begin(&req, 1, RAW_RESPONDER, RAW_KEEP_CONN);
	rb_header_v(&req, 2, RAW_PARAMS, 1, 8, 0);
	rb_put(&req, "\x04\x02TESTab", 8);
	assert_int_equal(raw_send_rb(fd, &req), 0);
	raw_resp r;
	raw_resp_init(&r, 1, 1);
	raw_collect_result res = raw_collect(fd, &r, 1, CLOSE_MS);
	if (!res.eof)
		fail_msg("connection not closed within %d ms after a record with version 2%s",
		         CLOSE_MS, r.ended ? " (an END_REQUEST came instead)" : "");
	if (r.out.len)
		fail_msg("%zu STDOUT bytes sent after a record with version 2", r.out.len);
	raw_resp_free(&r, 1);
	rb_free(&req);
	untrack_close(fd);
	survived();
}

static void test_hostile_huge_pair_lengths(void **state)
{
	(void)state;
	/* value length 0x7fffffff; both lengths 0x7fffffff (the sum overflows 32 bits, the libfcgi
	 * CVE-2025-23016 pattern); name length 0x7fffffff. Each on its own connection, with the
	 * PARAMS stream then ended, so the pair can never complete. */
	static const struct {
		size_t nl, vl;
		const char *what;
	} cases[] = {
	        {4, 0x7fffffff, "value length 0x7fffffff"},
	        {0x7fffffff, 0x7fffffff, "name and value lengths 0x7fffffff"},
	        {0x7fffffff, 1, "name length 0x7fffffff"},
	        {0x7ffffff0, 0x20, "lengths summing past 2^31"},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		int fd = connect_app(&g_app);
		rbuf pr = {0}, req = {0};
		rb_pair(&pr, "REQUEST_METHOD", "GET");
		rb_len(&pr, cases[c].nl, 0);
		rb_len(&pr, cases[c].vl, 0);
		rb_put(&pr, "ABCDxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 50);
		rb_begin(&req, 1, RAW_RESPONDER, RAW_KEEP_CONN);
		rb_record(&req, RAW_PARAMS, 1, pr.p, pr.len, 0);
		rb_stream_end(&req, RAW_PARAMS, 1);
		rb_stream_end(&req, RAW_STDIN, 1);
		raw_send_rb(fd, &req); /* the app may close early: errors are fine */
		expect_refused_or_closed(fd, 1, cases[c].what);
		rb_free(&pr);
		rb_free(&req);
		untrack_close(fd);
	}
	survived();
}

static void test_hostile_truncated_record(void **state)
{
	(void)state;
	/* a) half a header, then close. */
	int fd = connect_app(&g_app);
	rbuf req = {0};
	rb_begin(&req, 1, RAW_RESPONDER, RAW_KEEP_CONN);
	rb_put(&req, "\x01\x04\x00\x01", 4);
	assert_int_equal(raw_send_rb(fd, &req), 0);
	untrack_close(fd);
	/* b) a header announcing 100 bytes, 50 sent, then our write side shut: the app must close
	 *    its side too (it can never get the rest). */
	fd = connect_app(&g_app);
	req.len = 0;
	rb_begin(&req, 1, RAW_RESPONDER, RAW_KEEP_CONN);
	rb_header_v(&req, 1, RAW_PARAMS, 1, 100, 0);
	for (int i = 0; i < 50; i++)
		rb_byte(&req, 'x');
	assert_int_equal(raw_send_rb(fd, &req), 0);
	shutdown(fd, SHUT_WR);
	if (!raw_wait_close(fd, CLOSE_MS))
		fail_msg("connection still open %d ms after the peer shut down inside a record",
		         CLOSE_MS);
	untrack_close(fd);
	/* c) a whole request without its STDIN end, then shut: closed, no crash. */
	fd = connect_app(&g_app);
	req.len = 0;
	rb_begin(&req, 1, RAW_RESPONDER, RAW_KEEP_CONN);
	rb_stream_end(&req, RAW_PARAMS, 1);
	rb_record(&req, RAW_STDIN, 1, "part", 4, 4);
	assert_int_equal(raw_send_rb(fd, &req), 0);
	shutdown(fd, SHUT_WR);
	if (!raw_wait_close(fd, CLOSE_MS))
		fail_msg("connection still open %d ms after the peer shut down mid-body", CLOSE_MS);
	untrack_close(fd);
	rb_free(&req);
	survived();
}

static void test_hostile_stdin_before_begin(void **state)
{
	(void)state;
	/* Records for an id not in flight are ignored (spec 3.3); the request begun afterwards
	 * with that id sees only its own body. */
	int fd = connect_app(&g_app);
	rbuf req = {0}, pr = {0};
	rb_record(&req, RAW_STDIN, 5, "stray-body", 10, 6);
	rb_record(&req, RAW_DATA, 5, "stray-data", 10, 0);
	rb_stream_end(&req, RAW_STDIN, 5);
	rb_pair(&pr, "QUERY_STRING", "stray");
	rb_record(&req, RAW_PARAMS, 5, pr.p, pr.len, 0);
	rb_stream_end(&req, RAW_PARAMS, 5);
	rb_abort(&req, 5);
	assert_int_equal(raw_send_rb(fd, &req), 0);
	int st = raw_peek_state(fd, 300);
	if (st == 1) {
		fprintf(stderr, "# records before BEGIN_REQUEST: the app closed the connection\n");
	} else {
		if (st == 2)
			fail_msg("the app answered records sent before BEGIN_REQUEST");
		raw_resp r;
		do_request(fd, 5, 0, "POST", "real", "body", 4, &r);
		assert_echo(&r, "POST", "real", "body", 4);
		raw_resp_free(&r, 1);
	}
	rb_free(&req);
	rb_free(&pr);
	untrack_close(fd);
	survived();
}

static void test_hostile_duplicate_begin(void **state)
{
	(void)state;
	int fd = connect_app(&g_app);
	rbuf req = {0}, pr = {0};
	echo_params(&pr, "GET", "dup", 0, "300");
	rb_begin(&req, 1, RAW_RESPONDER, RAW_KEEP_CONN);
	rb_stream(&req, RAW_PARAMS, 1, pr.p, pr.len);
	rb_stream_end(&req, RAW_PARAMS, 1);
	rb_begin(&req, 1, RAW_RESPONDER, RAW_KEEP_CONN);
	rb_stream_end(&req, RAW_PARAMS, 1);
	rb_stream_end(&req, RAW_STDIN, 1);
	raw_send_rb(fd, &req);
	raw_resp r;
	raw_resp_init(&r, 1, 1);
	raw_collect_result res = raw_collect(fd, &r, 1, CLOSE_MS);
	fprintf(stderr, "# duplicate BEGIN_REQUEST: %s%s\n", r.ended ? "END_REQUEST, " : "",
	        res.eof       ? "connection closed"
	        : res.timeout ? "nothing (timeout)"
	                      : "open");
	if (!res.eof && !r.ended)
		fail_msg("duplicate BEGIN_REQUEST for an id in flight: neither closed nor answered "
		         "within %d ms",
		         CLOSE_MS);
	if (r.problem[0])
		fail_msg("protocol violation: %s", r.problem);
	if (!res.eof && !raw_wait_close(fd, CLOSE_MS))
		fprintf(stderr, "# the connection stayed open after the duplicate BEGIN\n");
	raw_resp_free(&r, 1);
	rb_free(&req);
	rb_free(&pr);
	untrack_close(fd);
	survived();
}

static void test_hostile_begin_id_zero(void **state)
{
	(void)state;
	int fd = connect_app(&g_app);
	rbuf req = {0}, pr = {0};
	echo_params(&pr, "GET", "zero", 0, NULL);
	rb_begin(&req, 0, RAW_RESPONDER, RAW_KEEP_CONN);
	rb_stream(&req, RAW_PARAMS, 0, pr.p, pr.len);
	rb_stream_end(&req, RAW_PARAMS, 0);
	rb_stream_end(&req, RAW_STDIN, 0);
	raw_send_rb(fd, &req);
	raw_rec *r = test_malloc(sizeof *r);
	assert_non_null(r);
	long long deadline = raw_now_ms() + 1000;
	int unknown = 0, closed = 0;
	for (;;) {
		int k = raw_read_record(fd, r, deadline);
		if (k == 0 || k == -2) {
			closed = 1;
			break;
		}
		if (k < 0)
			break;
		if (r->id != 0 || r->type != RAW_UNKNOWN_TYPE)
			fail_msg("BEGIN_REQUEST with id 0: got a record of type %u id %u; only "
			         "UNKNOWN_TYPE (or closing) is right",
			         r->type, r->id);
		if (r->len < 1 || r->content[0] != RAW_BEGIN) {
			if (!unknown)
				fail_msg("first UNKNOWN_TYPE names type %u, expected 1 "
				         "(BEGIN_REQUEST)",
				         r->len ? r->content[0] : 0u);
		}
		unknown++;
	}
	fprintf(stderr, "# BEGIN_REQUEST with id 0: %d UNKNOWN_TYPE records, %s\n", unknown,
	        closed ? "connection closed" : "connection open");
	if (!unknown && !closed)
		fail_msg("BEGIN_REQUEST with id 0: no UNKNOWN_TYPE and the connection stays open");
	if (!closed) {
		raw_resp resp;
		do_request(fd, 1, 0, "GET", "after=zero", NULL, 0, &resp);
		assert_echo(&resp, "GET", "after=zero", NULL, 0);
		raw_resp_free(&resp, 1);
	}
	test_free(r);
	rb_free(&req);
	rb_free(&pr);
	untrack_close(fd);
	survived();
}

static void test_hostile_params_too_large(void **state)
{
	(void)state;
	/* a) 1 MiB of PARAMS in 16 pairs of 64 KiB values: past the bytes limit. */
	int fd = connect_app(&g_app);
	rbuf pr = {0}, req = {0};
	char *big = test_malloc(65536);
	assert_non_null(big);
	memset(big, 'p', 65536);
	rb_pair(&pr, "REQUEST_METHOD", "GET");
	for (int i = 0; i < 16; i++) {
		char name[32];
		snprintf(name, sizeof name, "HTTP_X_BIG_%d", i);
		rb_pair_n(&pr, name, strlen(name), big, 65536, 0);
	}
	rb_request(&req, 1, RAW_KEEP_CONN, &pr, NULL, 0);
	sender s;
	sender_start(&s, fd, &req);
	expect_refused_or_closed(fd, 1, "1 MiB of PARAMS");
	shutdown(fd, SHUT_RDWR);
	sender_join(&s);
	untrack_close(fd);
	/* b) 20000 tiny pairs (about 200 KiB): past the count limit too. */
	fd = connect_app(&g_app);
	pr.len = req.len = 0;
	for (int i = 0; i < 20000; i++) {
		char name[16];
		snprintf(name, sizeof name, "H%d", i);
		rb_pair(&pr, name, "v");
	}
	rb_request(&req, 1, RAW_KEEP_CONN, &pr, NULL, 0);
	sender_start(&s, fd, &req);
	expect_refused_or_closed(fd, 1, "20000 PARAMS pairs");
	shutdown(fd, SHUT_RDWR);
	sender_join(&s);
	untrack_close(fd);
	test_free(big);
	rb_free(&pr);
	rb_free(&req);
	survived();
}

static void test_hostile_many_idle_connections(void **state)
{
	(void)state;
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < IDLE_CONNS + 100) {
		print_message("# SKIP: RLIMIT_NOFILE %lu is too low for %d connections\n",
		              (unsigned long)rl.rlim_cur, IDLE_CONNS);
		skip();
	}
	long long t0 = raw_now_ms();
	int opened = 0;
	for (int i = 0; i < IDLE_CONNS; i++) {
		int fd = spawn_connect(&g_app, 5000, IO_MS);
		if (fd < 0)
			fail_msg("connection %d of %d could not be opened: %s", i + 1, IDLE_CONNS,
			         strerror(errno));
		track(fd);
		opened++;
	}
	usleep(500 * 1000);
	int closed = 0;
	for (size_t i = 0; i < g_nfds; i++)
		if (raw_peek_state(g_fds[i], 0) == 1)
			closed++;
	fprintf(stderr, "# %d idle connections opened in %lld ms; %d closed by the app\n", opened,
	        raw_now_ms() - t0, closed);
	/* With all of them open, a normal request is still served. */
	survived();
	while (g_nfds)
		untrack_close(g_fds[g_nfds - 1]);
	survived();
}

static long vm_rss_kb(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long kb = -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "VmRSS:", 6))
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

static void test_hostile_client_never_reads(void **state)
{
	(void)state;
	enum { N = 20, BODY = 1 << 20 };
	long base = vm_rss_kb(g_app.pid);
	int fd = connect_app(&g_app);
	/* Sends block for at most 2 s: once the app stops reading (flow control), we stop. */
	struct timeval tv = {2, 0};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	uint8_t *body = test_malloc(BODY);
	assert_non_null(body);
	fill_body(body, BODY, 42);
	rbuf pr = {0}, req = {0};
	echo_params(&pr, "POST", "greedy", BODY, NULL);
	for (unsigned id = 1; id <= N; id++)
		rb_request(&req, id, RAW_KEEP_CONN, &pr, body, BODY);
	sender s;
	sender_start(&s, fd, &req);
	/* While that client hogs the app, others are served. */
	usleep(500 * 1000);
	long long t0 = raw_now_ms();
	survived();
	long long served_ms = raw_now_ms() - t0;
	sender_join(&s);
	long peak = vm_rss_kb(g_app.pid);
	usleep(300 * 1000);
	long rss = vm_rss_kb(g_app.pid);
	if (peak > rss)
		rss = peak;
	long limit_kb = TEST_SANITIZED ? base + 96 * 1024 : RSS_LIMIT_MB * 1024;
	fprintf(stderr,
	        "# never-reading client: sent %zu of %zu bytes (%s); other client served in %lld "
	        "ms; "
	        "echo VmRSS %ld kB (before %ld kB, limit %ld kB)\n",
	        s.sent, req.len, s.err ? strerror(s.err) : "all", served_ms, rss, base, limit_kb);
	if (rss < 0)
		fail_msg("cannot read VmRSS of pid %d", (int)g_app.pid);
	if (rss > limit_kb)
		fail_msg("echo VmRSS %ld kB exceeds %ld kB while a client does not read its "
		         "responses",
		         rss, limit_kb);
	survived();
	untrack_close(fd);
	test_free(body);
	rb_free(&pr);
	rb_free(&req);
	survived();
}

/* ---------------------------------------------------------------- transports, lifecycle */

static void serve_over(spawn_family fam)
{
	spawn_proc p;
	if (start_app(&p, fam) < 0)
		fail_msg("could not start %s over %s", g_echo,
		         fam == SPAWN_TCP6 ? "[::1]" : "127.0.0.1");
	int fd = spawn_connect(&p, 3000, IO_MS);
	if (fd < 0) {
		spawn_stop(&p, 1000);
		fail_msg("connect %s: %s", p.address, strerror(errno));
	}
	raw_resp r;
	static const char body[] = "over tcp";
	do_request(fd, 1, RAW_KEEP_CONN, "POST", "tcp=1", body, 8, &r);
	const char *why = check_echo(&r, "POST", "tcp=1", body, 8);
	raw_resp_free(&r, 1);
	close(fd);
	if (!why) {
		int sfd = spawn_connect(&p, 3000, IO_MS);
		raw_collect_result res = do_request(sfd, 1, 0, "GET", "", NULL, 0, &r);
		(void)res;
		why = check_echo(&r, "GET", "", NULL, 0);
		raw_resp_free(&r, 1);
		close(sfd);
	}
	spawn_stop(&p, 3000);
	if (why)
		fail_msg("over %s: %s", p.address, why);
	survived();
}

static void test_tcp_ipv4(void **state)
{
	(void)state;
	serve_over(SPAWN_TCP4);
}

static void test_tcp_ipv6(void **state)
{
	(void)state;
	if (!spawn_have_ipv6()) {
		print_message("# SKIP: no IPv6 loopback\n");
		skip();
	}
	serve_over(SPAWN_TCP6);
}

static void test_sigterm_exits_cleanly(void **state)
{
	(void)state;
	/* An idle kept connection must not hold up a graceful stop for long. */
	int fd = connect_app(&g_app);
	raw_resp r;
	do_request(fd, 1, RAW_KEEP_CONN, "GET", "x", NULL, 0, &r);
	assert_echo(&r, "GET", "x", NULL, 0);
	raw_resp_free(&r, 1);
	long long t0 = raw_now_ms();
	kill(g_app.pid, SIGTERM);
	while (spawn_alive(&g_app) && raw_now_ms() - t0 < 5000)
		usleep(10 * 1000);
	long long took = raw_now_ms() - t0;
	if (spawn_alive(&g_app))
		fail_msg("echo still running 5 s after SIGTERM with one idle connection");
	int st = g_app.status;
	fprintf(stderr, "# SIGTERM: exited after %lld ms, wait status 0x%x\n", took, st);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("echo did not exit with status 0 after SIGTERM: %s %d",
		         WIFEXITED(st) ? "exit" : "signal",
		         WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	untrack_close(fd);
	spawn_stop(&g_app, 100);
	/* The next test (if any) restarts it in setup. */
}

/* ---------------------------------------------------------------- main */

static int find_echo(void)
{
	const char *env = getenv("FCGIKIT_ECHO");
	if (env && *env) {
		snprintf(g_echo, sizeof g_echo, "%s", env);
		return access(g_echo, X_OK);
	}
	char dir[3000];
	if (!spawn_self_dir(dir, sizeof dir)) {
		snprintf(g_echo, sizeof g_echo, "%s/../examples/echo", dir);
		if (!access(g_echo, X_OK))
			return 0;
	}
	const char *b = getenv("FCGIKIT_BUILD");
	snprintf(g_echo, sizeof g_echo, "%s/examples/echo", b && *b ? b : "build");
	return access(g_echo, X_OK);
}

static int group_setup(void **state)
{
	(void)state;
	return start_app(&g_app, SPAWN_UNIX) < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	spawn_stop(&g_app, 5000);
	return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, watchdog);

	/* Room for the idle-connections test, here and in the app (it inherits the limit). */
	struct rlimit rl;
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < 8192) {
		rl.rlim_cur = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
		if (setrlimit(RLIMIT_NOFILE, &rl) && geteuid() == 0) {
			rl.rlim_cur = rl.rlim_max = 8192;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (TEST_SANITIZED) {
		/* ASan's quarantine would hold freed bodies and blur the RSS check. */
		const char *o = getenv("ASAN_OPTIONS");
		snprintf(g_asan_env, sizeof g_asan_env, "ASAN_OPTIONS=%s%squarantine_size_mb=16",
		         o && *o ? o : "", o && *o ? ":" : "");
		g_env[0] = g_asan_env;
	}

	const struct CMUnitTest tests[] = {
	        T(test_get_values),
	        T(test_unknown_management_type),
	        T(test_unknown_role),
	        T(test_responder_closes_without_keep_conn),
	        T(test_responder_keep_conn),
	        T(test_large_body_both_ways),
	        T(test_half_close_after_request),
	        T(test_multiplex_interleaved),
	        T(test_overloaded_past_per_conn_limit),
	        T(test_abort_in_flight),
	        T(test_split_pairs_padding_empty_records),
	        T(test_hostile_version),
	        T(test_hostile_huge_pair_lengths),
	        T(test_hostile_truncated_record),
	        T(test_hostile_stdin_before_begin),
	        T(test_hostile_duplicate_begin),
	        T(test_hostile_begin_id_zero),
	        T(test_hostile_params_too_large),
	        T(test_hostile_many_idle_connections),
	        T(test_hostile_client_never_reads),
	        T(test_tcp_ipv4),
	        T(test_tcp_ipv6),
	        T(test_sigterm_exits_cleanly),
	};

	if (find_echo()) {
		/* Not built yet (or the build failed): every test is reported, as failing. */
		fprintf(stderr, "test_proto: %s not found or not executable\n", g_echo);
		printf("1..1\nnot ok 1 - echo example present (%s missing)\n", g_echo);
		return 1;
	}
	return cmocka_run_group_tests_name("protocol", tests, group_setup, group_teardown);
}
