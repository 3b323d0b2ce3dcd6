/*
 * test_client.c — the client runtime (lib/client) against fcgikit's echo example started as a
 * child process, and against an application made with libfcgikit inside this process when a
 * test needs settings echo does not have (multiplexing off, one request at a time, an idle
 * timeout).
 *
 * What is shown: many requests multiplexed on one connection, answered in the reverse of
 * the order they were sent (ECHO_DELAY_MS) and matched by id; KEEP_CONN reuse; abort; 8 MiB
 * bodies both ways byte-identical from a buffer, a pipe and a callback; GET_VALUES; every
 * protocol status (CANT_MPX_CONN with its fallback, OVERLOADED, UNKNOWN_ROLE); connection
 * errors and timeouts with their messages; driving the client from a poll() loop; a kept
 * connection the application closed while idle; every allocation failing in turn; and
 * fcgi_client_req_pause: alone on its connection it stops the reads (a raw application in a
 * thread shows its writes waiting) without a timeout, shared it stalls no other request.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/client_int.h"
#include "fcgikit.h"
#include "helpers/failalloc.h"
#include "helpers/spawn.h"

static spawn_proc echo_proc;
static char echo_path[4096];

/* ------------------------------------------------------------------ helpers */

static int start_echo(void **state)
{
	(void)state;
	char dir[4000];
	if (spawn_self_dir(dir, sizeof dir) < 0)
		return -1;
	snprintf(echo_path, sizeof echo_path, "%s/../examples/echo", dir);
	const char *args[] = {"--threads", "2", NULL};
	return spawn_start(&echo_proc, echo_path, SPAWN_UNIX, args, NULL, 5000);
}

static int stop_echo(void **state)
{
	(void)state;
	spawn_stop(&echo_proc, 3000);
	return 0;
}

static fcgi_client *new_client(const char *address)
{
	fcgi_client *c;
	assert_int_equal(fcgi_client_new(&c, address), FCGI_OK);
	return c;
}

/* The body of a collected CGI response (after the head). */
static const char *body_of(fcgi_client_req *r, size_t *len)
{
	size_t n;
	const char *out = fcgi_client_req_stdout(r, &n);
	fcgi_header hs[16];
	fcgi_cgi_head h;
	ssize_t hl = fcgi_cgi_head_parse(out, n, &h, hs, 16, 0);
	assert_true(hl > 0);
	assert_int_equal(h.status, 200);
	*len = n - (size_t)hl;
	return out + hl;
}

static int header_is(fcgi_client_req *r, const char *name, const char *value)
{
	size_t n;
	const char *out = fcgi_client_req_stdout(r, &n);
	fcgi_header hs[16];
	fcgi_cgi_head h;
	if (fcgi_cgi_head_parse(out, n, &h, hs, 16, 0) <= 0)
		return 0;
	for (size_t i = 0; i < h.nheaders; i++)
		if (hs[i].name_len == strlen(name) && !strncasecmp(hs[i].name, name, hs[i].name_len))
			return hs[i].value_len == strlen(value) && !memcmp(hs[i].value, value, hs[i].value_len);
	return 0;
}

static fcgi_client_req *get(fcgi_client *c, const char *query, const char *delay)
{
	fcgi_client_req *r;
	assert_int_equal(fcgi_client_req_new(c, &r), FCGI_OK);
	assert_int_equal(fcgi_client_req_add_param(r, "REQUEST_METHOD", "GET"), FCGI_OK);
	assert_int_equal(fcgi_client_req_add_param(r, "QUERY_STRING", query ? query : ""), FCGI_OK);
	if (delay)
		assert_int_equal(fcgi_client_req_add_param(r, "ECHO_DELAY_MS", delay), FCGI_OK);
	return r;
}

static uint8_t *random_bytes(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n);
	assert_non_null(p);
	uint64_t x = 0x9e3779b97f4a7c15ull ^ seed;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
	return p;
}

/* ------------------------------------------------------------------ an in-process app */

typedef struct inproc {
	fcgi_app *app;
	pthread_t thread;
	char address[160];
	char dir[128];
} inproc;

typedef struct held {
	fcgi_req *req;
} held;

static void finish_held(void *ud)
{
	held *h = ud;
	fcgi_puts(h->req, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nlate\n");
	fcgi_finish(h->req, 0);
	free(h);
}

static void inproc_body(fcgi_req *req, const void *data, size_t len, void *ud)
{
	(void)data;
	(void)ud;
	if (len)
		return;
	const char *hold = fcgi_param(req, "HOLD_MS");
	if (hold) {
		held *h = malloc(sizeof *h);
		h->req = req;
		fcgi_app_timer(fcgi_req_data(req), (unsigned)atoi(hold), finish_held, h);
		return;
	}
	fcgi_puts(req, "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nok\n");
	fcgi_finish(req, 0);
}

static void inproc_handler(fcgi_req *req, void *ud)
{
	fcgi_req_set_data(req, ud);
	fcgi_req_on_body(req, inproc_body, NULL);
}

static void *inproc_run(void *arg)
{
	fcgi_app_run(((inproc *)arg)->app);
	return NULL;
}

static void inproc_start(inproc *p, int mpxs, long max_reqs, long idle_ms)
{
	memset(p, 0, sizeof *p);
	snprintf(p->dir, sizeof p->dir, "/tmp/fcgikit-client-XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	snprintf(p->address, sizeof p->address, "unix:%s/app.sock", p->dir);
	assert_int_equal(fcgi_app_new(&p->app), FCGI_OK);
	assert_int_equal(fcgi_app_set_opt(p->app, FCGI_OPT_MPXS_CONNS, mpxs), FCGI_OK);
	if (max_reqs)
		assert_int_equal(fcgi_app_set_opt(p->app, FCGI_OPT_MAX_REQS, max_reqs), FCGI_OK);
	if (idle_ms)
		assert_int_equal(fcgi_app_set_opt(p->app, FCGI_OPT_IDLE_TIMEOUT_MS, idle_ms), FCGI_OK);
	assert_int_equal(fcgi_app_listen(p->app, p->address), FCGI_OK);
	assert_int_equal(fcgi_app_set_handler(p->app, inproc_handler, p->app), FCGI_OK);
	assert_int_equal(pthread_create(&p->thread, NULL, inproc_run, p), 0);
}

static void inproc_stop(inproc *p)
{
	fcgi_app_stop(p->app);
	pthread_join(p->thread, NULL);
	fcgi_app_free(p->app);
	char path[200];
	snprintf(path, sizeof path, "%s/app.sock", p->dir);
	unlink(path);
	rmdir(p->dir);
}

/* ------------------------------------------------------------------ tests */

static void test_call_oneshot(void **st)
{
	(void)st;
	fcgi_client_param ps[] = {{"REQUEST_METHOD", "PUT"}, {"QUERY_STRING", "a=1&b=2"}};
	fcgi_client_req *r;
	assert_int_equal(fcgi_client_call(echo_proc.address, ps, 2, "payload", 7, 5000, &r), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(r), FCGI_OK);
	assert_int_equal(fcgi_client_req_protocol_status(r), FCGI_STATUS_COMPLETE);
	assert_int_equal(fcgi_client_req_app_status(r), 0);
	assert_true(header_is(r, "X-Request-Method", "PUT"));
	assert_true(header_is(r, "X-Query", "a=1&b=2"));
	size_t n;
	const char *b = body_of(r, &n);
	assert_int_equal(n, 7);
	assert_memory_equal(b, "payload", 7);
	assert_string_equal(fcgi_client_req_strerror(r), "REQUEST_COMPLETE");
	fcgi_client_req_free(r); /* frees the client too */
}

typedef struct order {
	int seq[64];
	int n;
} order;

static void record_done(fcgi_client_req *r, int err, void *ud)
{
	order *o = ud;
	assert_int_equal(err, FCGI_OK);
	o->seq[o->n++] = (int)(intptr_t)fcgi_client_req_data(r);
}

static void test_mpx_interleaved_reverse(void **st)
{
	(void)st;
	enum { N = 16 };
	fcgi_client *c = new_client(echo_proc.address);
	assert_int_equal(fcgi_client_set_opt(c, FCGI_CLIENT_MAX_CONNS, 1), FCGI_OK);
	fcgi_client_req *rs[N];
	char bodies[N][32];
	order o = {0};
	for (int i = 0; i < N; i++) {
		char q[16], d[16];
		snprintf(q, sizeof q, "i=%d", i);
		snprintf(d, sizeof d, "%d", (N - i) * 25); /* the first sent is answered last */
		rs[i] = get(c, q, d);
		snprintf(bodies[i], sizeof bodies[i], "body of request %d", i);
		assert_int_equal(fcgi_client_req_body(rs[i], bodies[i], strlen(bodies[i])), FCGI_OK);
		fcgi_client_req_set_data(rs[i], (void *)(intptr_t)i);
		fcgi_client_req_on_done(rs[i], record_done, &o);
		assert_int_equal(fcgi_client_req_send(rs[i]), FCGI_OK);
	}
	assert_int_equal(fcgi_client_run(c, 10000), FCGI_OK);
	assert_int_equal(fcgi_client_mpxs(c), 1);
	/* One connection for everything: the GET_VALUES one, kept and reused. */
	assert_int_equal(c->conns_opened, 1);
	assert_int_equal(o.n, N);
	unsigned ids_seen = 0;
	for (int i = 0; i < N; i++) {
		assert_int_equal(o.seq[i], N - 1 - i);
		assert_int_equal(fcgi_client_req_error(rs[i]), FCGI_OK);
		unsigned id = fcgi_client_req_id(rs[i]);
		assert_true(id >= 1 && id <= N);
		assert_false(ids_seen & (1u << id));
		ids_seen |= 1u << id;
		if (i)
			assert_true(fcgi_client_req_multiplexed(rs[i]));
		char q[16];
		snprintf(q, sizeof q, "i=%d", i);
		assert_true(header_is(rs[i], "X-Query", q));
		size_t n;
		const char *b = body_of(rs[i], &n);
		assert_int_equal(n, strlen(bodies[i]));
		assert_memory_equal(b, bodies[i], n);
		fcgi_client_req_free(rs[i]);
	}
	fcgi_client_free(c);
}

static void test_keepalive_reuse(void **st)
{
	(void)st;
	fcgi_client *c = new_client(echo_proc.address);
	assert_int_equal(fcgi_client_set_opt(c, FCGI_CLIENT_MPX, 0), FCGI_OK);
	for (int i = 0; i < 50; i++) {
		fcgi_client_req *r = get(c, "k", NULL);
		assert_int_equal(fcgi_client_req_send(r), FCGI_OK);
		assert_int_equal(fcgi_client_wait(c, r, 5000), FCGI_OK);
		assert_int_equal(fcgi_client_req_error(r), FCGI_OK);
		assert_false(fcgi_client_req_multiplexed(r));
		assert_int_equal(fcgi_client_req_id(r), 1); /* one at a time: id 1, as nginx does */
		fcgi_client_req_free(r);
	}
	assert_int_equal(c->conns_opened, 1);
	/* 8 at once over at most 3 connections, no multiplexing: the pool grows to 3 and is
	 * then reused. */
	assert_int_equal(fcgi_client_set_opt(c, FCGI_CLIENT_MAX_CONNS, 3), FCGI_OK);
	for (int round = 0; round < 3; round++) {
		fcgi_client_req *rs[8];
		for (int i = 0; i < 8; i++) {
			rs[i] = get(c, "p", "20");
			assert_int_equal(fcgi_client_req_send(rs[i]), FCGI_OK);
		}
		assert_int_equal(fcgi_client_run(c, 10000), FCGI_OK);
		for (int i = 0; i < 8; i++) {
			assert_int_equal(fcgi_client_req_error(rs[i]), FCGI_OK);
			fcgi_client_req_free(rs[i]);
		}
	}
	assert_int_equal(c->conns_opened, 3);
	/* Without KEEP_CONN every request has a connection of its own. */
	fcgi_client *c2 = new_client(echo_proc.address);
	fcgi_client_set_opt(c2, FCGI_CLIENT_KEEP_CONN, 0);
	for (int i = 0; i < 5; i++) {
		fcgi_client_req *r = get(c2, "nk", NULL);
		fcgi_client_req_send(r);
		assert_int_equal(fcgi_client_wait(c2, r, 5000), FCGI_OK);
		assert_int_equal(fcgi_client_req_error(r), FCGI_OK);
		fcgi_client_req_free(r);
	}
	assert_int_equal(c2->conns_opened, 5);
	fcgi_client_free(c2);
	fcgi_client_free(c);
}

static void test_abort(void **st)
{
	(void)st;
	fcgi_client *c = new_client(echo_proc.address);
	fcgi_client_set_opt(c, FCGI_CLIENT_MAX_CONNS, 1);
	fcgi_client_req *slow = get(c, "slow", "5000");
	fcgi_client_req *fast = get(c, "fast", "10");
	assert_int_equal(fcgi_client_req_abort(slow), FCGI_ESTATE); /* not sent yet */
	fcgi_client_req_send(slow);
	fcgi_client_req_send(fast);
	assert_int_equal(fcgi_client_wait(c, fast, 5000), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(fast), FCGI_OK);
	assert_false(fcgi_client_req_is_done(slow));
	long long t0 = spawn_now_ms();
	assert_int_equal(fcgi_client_req_abort(slow), FCGI_OK);
	assert_int_equal(fcgi_client_wait(c, slow, 3000), FCGI_OK);
	assert_true(spawn_now_ms() - t0 < 2000); /* echo ends an aborted request at once */
	assert_int_equal(fcgi_client_req_error(slow), FCGI_EABORTED);
	assert_int_equal(fcgi_client_req_protocol_status(slow), FCGI_STATUS_COMPLETE);
	fcgi_client_req_free(slow);
	fcgi_client_req_free(fast);

	/* A queued request aborted before it had a connection. */
	fcgi_client_req *q = get(c, "q", NULL);
	fcgi_client_req_send(q);
	assert_int_equal(fcgi_client_req_abort(q), FCGI_OK);
	assert_int_equal(fcgi_client_wait(c, q, 1000), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(q), FCGI_EABORTED);
	fcgi_client_req_free(q);

	/* Freed while in flight: aborted without a callback, memory reclaimed at its END. */
	fcgi_client_req *f = get(c, "f", "3000");
	fcgi_client_req_send(f);
	assert_int_equal(fcgi_client_process(c, 50), FCGI_OK);
	fcgi_client_req_free(f);
	assert_int_equal(fcgi_client_run(c, 3000), FCGI_OK);

	/* The connection is still good. */
	fcgi_client_req *r = get(c, "after", NULL);
	fcgi_client_req_send(r);
	assert_int_equal(fcgi_client_wait(c, r, 3000), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(r), FCGI_OK);
	fcgi_client_req_free(r);
	assert_int_equal(c->conns_opened, 1);
	fcgi_client_free(c);
}

/* Output checked as it streams: compares with the expected bytes after the head. */
typedef struct stream_check {
	const uint8_t *want;
	size_t want_len, got, head_left;
	char head[512];
	size_t head_len;
	int mismatch, ended;
} stream_check;

static void check_output(fcgi_client_req *r, int stream, const void *data, size_t len, void *ud)
{
	(void)r;
	stream_check *s = ud;
	if (stream != FCGI_CLIENT_STDOUT)
		return;
	if (!len) {
		s->ended = 1;
		return;
	}
	const uint8_t *p = data;
	while (len && s->head_left) {
		/* the head is the first bytes up to the empty line */
		s->head[s->head_len++] = (char)*p;
		if (s->head_len >= 4 && !memcmp(s->head + s->head_len - 4, "\r\n\r\n", 4))
			s->head_left = 0;
		p++;
		len--;
		assert_true(s->head_len < sizeof s->head);
	}
	if (!len)
		return;
	if (s->got + len > s->want_len || memcmp(s->want + s->got, p, len))
		s->mismatch = 1;
	s->got += len;
}

typedef struct pipe_writer {
	int fd;
	const uint8_t *p;
	size_t len;
} pipe_writer;

static void *write_pipe(void *arg)
{
	pipe_writer *w = arg;
	size_t off = 0;
	while (off < w->len) {
		size_t n = w->len - off < 100000 ? w->len - off : 100000;
		ssize_t k = write(w->fd, w->p + off, n);
		if (k <= 0)
			break;
		off += (size_t)k;
	}
	close(w->fd);
	return NULL;
}

typedef struct cb_src {
	const uint8_t *p;
	size_t len, off;
	int eagain_every;
	int calls;
	fcgi_client_req *req;
} cb_src;

static ssize_t read_cb(fcgi_client_req *r, void *buf, size_t size, void *ud)
{
	cb_src *s = ud;
	(void)r;
	if (s->eagain_every && ++s->calls % s->eagain_every == 0)
		return FCGI_EAGAIN; /* resumed by the test loop */
	size_t n = s->len - s->off < size ? s->len - s->off : size;
	if (n > 12345)
		n = 12345; /* odd pieces */
	memcpy(buf, s->p + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

static void test_8mib_both_ways(void **st)
{
	(void)st;
	size_t n = 8u << 20;
	uint8_t *big = random_bytes(n, 42);
	fcgi_client *c = new_client(echo_proc.address);
	for (int mode = 0; mode < 3; mode++) {
		fcgi_client_req *r;
		assert_int_equal(fcgi_client_req_new(c, &r), FCGI_OK);
		fcgi_client_req_add_param(r, "REQUEST_METHOD", "POST");
		char cl[32];
		snprintf(cl, sizeof cl, "%zu", n);
		fcgi_client_req_add_param(r, "CONTENT_LENGTH", cl);
		stream_check s = {.want = big, .want_len = n, .head_left = 1};
		pthread_t th;
		int fds[2] = {-1, -1};
		pipe_writer pw;
		cb_src cs = {.p = big, .len = n, .eagain_every = 7, .req = r};
		if (mode == 0) {
			assert_int_equal(fcgi_client_req_body(r, big, n), FCGI_OK);
		} else if (mode == 1) {
			assert_int_equal(pipe(fds), 0);
			pw = (pipe_writer){fds[1], big, n};
			assert_int_equal(pthread_create(&th, NULL, write_pipe, &pw), 0);
			assert_int_equal(fcgi_client_req_body_fd(r, fds[0]), FCGI_OK);
		} else {
			assert_int_equal(fcgi_client_req_body_cb(r, read_cb, &cs), FCGI_OK);
		}
		if (mode != 0)
			fcgi_client_req_on_output(r, check_output, &s);
		assert_int_equal(fcgi_client_req_send(r), FCGI_OK);
		long long t0 = spawn_now_ms();
		while (!fcgi_client_req_is_done(r) && spawn_now_ms() - t0 < 20000) {
			assert_int_equal(fcgi_client_process(c, 100), FCGI_OK);
			if (mode == 2)
				fcgi_client_req_resume(r);
		}
		assert_true(fcgi_client_req_is_done(r));
		assert_int_equal(fcgi_client_req_error(r), FCGI_OK);
		if (mode == 0) {
			size_t bl;
			const char *b = body_of(r, &bl);
			assert_int_equal(bl, n);
			assert_memory_equal(b, big, n);
		} else {
			assert_false(s.mismatch);
			assert_int_equal(s.got, n);
			assert_true(s.ended);
		}
		if (mode == 1) {
			pthread_join(th, NULL);
			close(fds[0]);
		}
		fcgi_client_req_free(r);
	}
	fcgi_client_free(c);
	free(big);
}

typedef struct values_seen {
	int calls, err;
	char mpxs[8];
	size_t n;
} values_seen;

static void on_values(fcgi_client *c, int err, const fcgi_client_param *v, size_t n, void *ud)
{
	(void)c;
	values_seen *s = ud;
	s->calls++;
	s->err = err;
	s->n = n;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].name, "FCGI_MPXS_CONNS"))
			snprintf(s->mpxs, sizeof s->mpxs, "%s", v[i].value);
}

static void test_get_values(void **st)
{
	(void)st;
	fcgi_client *c = new_client(echo_proc.address);
	values_seen s = {0};
	assert_int_equal(fcgi_client_mpxs(c), -1);
	assert_int_equal(fcgi_client_get_values(c, NULL, 0, on_values, &s), FCGI_OK);
	assert_int_equal(fcgi_client_run(c, 5000), FCGI_OK);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.err, FCGI_OK);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.mpxs, "1");
	assert_int_equal(fcgi_client_mpxs(c), 1);
	/* A name the application does not know is left out of the answer. */
	const char *names[] = {"FCGI_MPXS_CONNS", "NO_SUCH_VALUE"};
	memset(&s, 0, sizeof s);
	assert_int_equal(fcgi_client_get_values(c, names, 2, on_values, &s), FCGI_OK);
	assert_int_equal(fcgi_client_run(c, 5000), FCGI_OK);
	assert_int_equal(s.n, 1);
	fcgi_client_free(c);
}

static void test_cant_mpx_fallback(void **st)
{
	(void)st;
	inproc app;
	inproc_start(&app, 0, 0, 0);
	/* MPX 2: multiplex without asking; the application answers the second request with
	 * CANT_MPX_CONN, the client sends it again alone and stops multiplexing. */
	fcgi_client *c = new_client(app.address);
	fcgi_client_set_opt(c, FCGI_CLIENT_MPX, 2);
	fcgi_client_set_opt(c, FCGI_CLIENT_MAX_CONNS, 2);
	fcgi_client_req *a = get(c, "", NULL), *b = get(c, "", NULL);
	fcgi_client_req_add_param(a, "HOLD_MS", "100");
	fcgi_client_req_send(a);
	fcgi_client_req_send(b);
	assert_int_equal(fcgi_client_run(c, 5000), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(a), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(b), FCGI_OK);
	assert_int_equal(fcgi_client_mpxs(c), 0);
	assert_false(fcgi_client_req_multiplexed(b)); /* its successful sending was alone */
	assert_int_equal(c->conns_opened, 2);
	fcgi_client_req_free(a);
	fcgi_client_req_free(b);
	fcgi_client_free(c);

	/* When the body cannot be sent again (a callback already read), the status is the
	 * outcome: FCGI_ECANTMPX. */
	c = new_client(app.address);
	fcgi_client_set_opt(c, FCGI_CLIENT_MPX, 2);
	a = get(c, "", NULL);
	b = get(c, "", NULL);
	fcgi_client_req_add_param(a, "HOLD_MS", "100");
	uint8_t data[100] = {0};
	cb_src cs = {.p = data, .len = sizeof data};
	fcgi_client_req_body_cb(b, read_cb, &cs);
	fcgi_client_req_send(a);
	fcgi_client_req_send(b);
	assert_int_equal(fcgi_client_run(c, 5000), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(a), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(b), FCGI_ECANTMPX);
	assert_int_equal(fcgi_client_req_protocol_status(b), FCGI_STATUS_CANT_MPX_CONN);
	assert_non_null(strstr(fcgi_client_req_strerror(b), "CANT_MPX_CONN"));
	fcgi_client_req_free(a);
	fcgi_client_req_free(b);

	/* MPX 1 asks first: the answer FCGI_MPXS_CONNS=0 keeps requests apart from the start. */
	fcgi_client_free(c);
	c = new_client(app.address);
	fcgi_client_set_opt(c, FCGI_CLIENT_MAX_CONNS, 4);
	fcgi_client_req *rs[4];
	for (int i = 0; i < 4; i++) {
		rs[i] = get(c, "", NULL);
		fcgi_client_req_add_param(rs[i], "HOLD_MS", "30");
		fcgi_client_req_send(rs[i]);
	}
	assert_int_equal(fcgi_client_run(c, 5000), FCGI_OK);
	assert_int_equal(fcgi_client_mpxs(c), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(fcgi_client_req_error(rs[i]), FCGI_OK);
		assert_false(fcgi_client_req_multiplexed(rs[i]));
		fcgi_client_req_free(rs[i]);
	}
	fcgi_client_free(c);
	inproc_stop(&app);
}

static void test_overloaded_and_unknown_role(void **st)
{
	(void)st;
	inproc app;
	inproc_start(&app, 1, 1, 0);
	fcgi_client *c = new_client(app.address);
	/* The app says FCGI_MAX_REQS=1, so the client does not multiplex; the second of two
	 * requests on two connections finds the app full. Which one is second is up to the
	 * app's loop. */
	fcgi_client_req *a = get(c, "", NULL), *b = get(c, "", NULL);
	fcgi_client_req_add_param(a, "HOLD_MS", "300");
	fcgi_client_req_add_param(b, "HOLD_MS", "300");
	fcgi_client_req_send(a);
	fcgi_client_req_send(b);
	assert_int_equal(fcgi_client_run(c, 5000), FCGI_OK);
	int ea = fcgi_client_req_error(a), eb = fcgi_client_req_error(b);
	assert_true((ea == FCGI_OK && eb == FCGI_EOVERLOADED) ||
	            (eb == FCGI_OK && ea == FCGI_EOVERLOADED));
	fcgi_client_req *refused = ea ? a : b;
	assert_int_equal(fcgi_client_req_protocol_status(refused), FCGI_STATUS_OVERLOADED);
	assert_non_null(strstr(fcgi_client_req_strerror(refused), "OVERLOADED"));
	assert_int_equal(c->max_per_conn, 1);
	fcgi_client_req_free(a);
	fcgi_client_req_free(b);

	fcgi_client_req *r = get(c, "", NULL);
	assert_int_equal(fcgi_client_req_set_role(r, 9), FCGI_OK);
	fcgi_client_req_send(r);
	assert_int_equal(fcgi_client_wait(c, r, 5000), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(r), FCGI_EUNKNOWNROLE);
	assert_int_equal(fcgi_client_req_protocol_status(r), FCGI_STATUS_UNKNOWN_ROLE);
	assert_non_null(strstr(fcgi_client_req_strerror(r), "role 9"));
	fcgi_client_req_free(r);
	fcgi_client_free(c);
	inproc_stop(&app);
}

static void test_connect_errors(void **st)
{
	(void)st;
	fcgi_client_req *r;
	assert_int_equal(fcgi_client_call("unix:/nonexistent/dir/x.sock", NULL, 0, NULL, 0, 2000, &r),
	                 FCGI_OK);
	assert_int_equal(fcgi_client_req_error(r), FCGI_ESYS);
	assert_int_equal(fcgi_client_req_sys_errno(r), ENOENT);
	assert_non_null(strstr(fcgi_client_req_strerror(r), "no such socket file"));
	fcgi_client_req_free(r);

	/* A TCP port nobody listens on (bound, not listening, so nobody else takes it). */
	spawn_proc dummy;
	(void)dummy;
	assert_int_equal(fcgi_client_call("127.0.0.1:1", NULL, 0, NULL, 0, 2000, &r), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(r), FCGI_ESYS);
	assert_int_equal(fcgi_client_req_sys_errno(r), ECONNREFUSED);
	assert_non_null(strstr(fcgi_client_req_strerror(r), "connection refused"));
	fcgi_client_req_free(r);

	assert_int_equal(fcgi_client_call("no address", NULL, 0, NULL, 0, 2000, &r), FCGI_EADDR);
	assert_null(r);

	/* Queued requests behind a failing GET_VALUES probe all fail with its reason. */
	fcgi_client *c = new_client("unix:/nonexistent/x.sock");
	fcgi_client_req *rs[3];
	for (int i = 0; i < 3; i++) {
		rs[i] = get(c, "", NULL);
		fcgi_client_req_send(rs[i]);
	}
	assert_int_equal(fcgi_client_run(c, 2000), FCGI_OK);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fcgi_client_req_error(rs[i]), FCGI_ESYS);
		fcgi_client_req_free(rs[i]);
	}
	assert_non_null(strstr(fcgi_client_last_error(c), "no such socket file"));
	fcgi_client_free(c);
}

static void test_timeouts(void **st)
{
	(void)st;
	fcgi_client *c = new_client(echo_proc.address);
	fcgi_client_set_opt(c, FCGI_CLIENT_MPX, 0);
	fcgi_client_req *r = get(c, "", "3000");
	fcgi_client_req_set_timeout(r, 200);
	long long t0 = spawn_now_ms();
	fcgi_client_req_send(r);
	assert_int_equal(fcgi_client_wait(c, r, 5000), FCGI_OK);
	long long took = spawn_now_ms() - t0;
	assert_int_equal(fcgi_client_req_error(r), FCGI_ETIMEDOUT);
	assert_true(took >= 190 && took < 1500);
	fcgi_client_req_free(r);

	/* The read timeout of the connection. */
	fcgi_client_set_opt(c, FCGI_CLIENT_READ_TIMEOUT_MS, 150);
	r = get(c, "", "3000");
	fcgi_client_req_send(r);
	assert_int_equal(fcgi_client_wait(c, r, 5000), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(r), FCGI_ETIMEDOUT);
	assert_non_null(strstr(fcgi_client_req_strerror(r), "no answer"));
	fcgi_client_req_free(r);

	/* fcgi_client_wait's own bound leaves the request going. */
	fcgi_client_set_opt(c, FCGI_CLIENT_READ_TIMEOUT_MS, 60000);
	r = get(c, "", "300");
	fcgi_client_req_send(r);
	assert_int_equal(fcgi_client_wait(c, r, 50), FCGI_ETIMEDOUT);
	assert_false(fcgi_client_req_is_done(r));
	assert_int_equal(fcgi_client_wait(c, r, 5000), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(r), FCGI_OK);
	fcgi_client_req_free(r);

	/* A multiplexed request timing out alone: the others on its connection go on. */
	fcgi_client_set_opt(c, FCGI_CLIENT_MPX, 2);
	fcgi_client_set_opt(c, FCGI_CLIENT_MAX_CONNS, 1);
	fcgi_client_req *slow = get(c, "", "2000"), *ok = get(c, "", "300");
	fcgi_client_req_set_timeout(slow, 100);
	fcgi_client_req_send(slow);
	fcgi_client_req_send(ok);
	assert_int_equal(fcgi_client_run(c, 5000), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(slow), FCGI_ETIMEDOUT);
	assert_int_equal(fcgi_client_req_error(ok), FCGI_OK);
	assert_true(fcgi_client_req_multiplexed(ok));
	fcgi_client_req_free(slow);
	fcgi_client_req_free(ok);
	fcgi_client_free(c);
}

static void count_done(fcgi_client_req *r, int err, void *ud)
{
	(void)r;
	assert_int_equal(err, FCGI_OK);
	(*(int *)ud)++;
}

static void test_event_loop_embedding(void **st)
{
	(void)st;
	fcgi_client *c = new_client(echo_proc.address);
	int fd = fcgi_client_fd(c);
	assert_true(fd >= 0);
	int done = 0;
	fcgi_client_req *rs[10];
	for (int i = 0; i < 10; i++) {
		rs[i] = get(c, "", "5");
		fcgi_client_req_on_done(rs[i], count_done, &done);
		fcgi_client_req_send(rs[i]);
	}
	assert_int_equal(fcgi_client_next_timeout(c), 0);
	long long t0 = spawn_now_ms();
	while (done < 10 && spawn_now_ms() - t0 < 5000) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		poll(&p, 1, fcgi_client_next_timeout(c));
		assert_int_equal(fcgi_client_process(c, 0), FCGI_OK);
	}
	assert_int_equal(done, 10);
	for (int i = 0; i < 10; i++)
		fcgi_client_req_free(rs[i]);
	fcgi_client_free(c);
}

static void test_reused_conn_closed_by_app(void **st)
{
	(void)st;
	inproc app;
	inproc_start(&app, 1, 0, 100); /* the app closes idle connections after 100 ms */
	fcgi_client *c = new_client(app.address);
	fcgi_client_set_opt(c, FCGI_CLIENT_MPX, 0);
	fcgi_client_req *r = get(c, "", NULL);
	fcgi_client_req_send(r);
	assert_int_equal(fcgi_client_wait(c, r, 3000), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(r), FCGI_OK);
	fcgi_client_req_free(r);
	usleep(400 * 1000); /* the kept connection is closed by the app; the client did not look */
	r = get(c, "", NULL);
	fcgi_client_req_send(r);
	assert_int_equal(fcgi_client_wait(c, r, 3000), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(r), FCGI_OK);
	assert_int_equal(c->conns_opened, 2);
	fcgi_client_req_free(r);
	fcgi_client_free(c);
	inproc_stop(&app);
}

static void test_params_forms(void **st)
{
	(void)st;
	fcgi_client *c = new_client(echo_proc.address);
	fcgi_client_req *r;
	fcgi_client_req_new(c, &r);
	const char *env[] = {"REQUEST_METHOD=DELETE", "noequals", "QUERY_STRING=x", NULL};
	assert_int_equal(fcgi_client_req_add_env(r, env), FCGI_OK);
	assert_int_equal(fcgi_client_req_set_param(r, "QUERY_STRING", "replaced"), FCGI_OK);
	fcgi_client_param list[] = {{"A", "1"}, {"B", "2"}};
	assert_int_equal(fcgi_client_req_add_params(r, list, 2), FCGI_OK);
	fcgi_client_req_send(r);
	assert_int_equal(fcgi_client_req_add_param(r, "late", "x"), FCGI_ESTATE);
	assert_int_equal(fcgi_client_wait(c, r, 3000), FCGI_OK);
	assert_true(header_is(r, "X-Request-Method", "DELETE"));
	assert_true(header_is(r, "X-Query", "replaced"));
	fcgi_client_req_free(r);
	fcgi_client_free(c);
}

static void test_max_buffered(void **st)
{
	(void)st;
	/* Collected output past FCGI_CLIENT_MAX_BUFFERED: the request is aborted and fails with
	 * FCGI_ETOOBIG; the connection stays usable. */
	fcgi_client *c = new_client(echo_proc.address);
	fcgi_client_set_opt(c, FCGI_CLIENT_MAX_BUFFERED, 4096);
	fcgi_client_set_opt(c, FCGI_CLIENT_MAX_CONNS, 1);
	uint8_t *body = random_bytes(100000, 7);
	fcgi_client_req *r = get(c, "", NULL);
	fcgi_client_req_body(r, body, 100000);
	fcgi_client_req_send(r);
	assert_int_equal(fcgi_client_wait(c, r, 5000), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(r), FCGI_ETOOBIG);
	assert_non_null(strstr(fcgi_client_req_strerror(r), "MAX_BUFFERED"));
	fcgi_client_req_free(r);
	r = get(c, "small", NULL);
	fcgi_client_req_send(r);
	assert_int_equal(fcgi_client_wait(c, r, 5000), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(r), FCGI_OK);
	fcgi_client_req_free(r);
	free(body);
	fcgi_client_free(c);
}

static void test_failing_allocator(void **st)
{
	(void)st;
	/* Every allocation of a whole client run failing in turn: an error or a success, never
	 * a crash, and nothing left allocated. */
	int successes = 0;
	for (unsigned long k = 1; k < 400; k++) {
		failalloc_install(k, 0);
		fcgi_client *c = NULL;
		int rc = fcgi_client_new(&c, echo_proc.address);
		if (rc == FCGI_OK) {
			fcgi_client_req *r = NULL;
			rc = fcgi_client_req_new(c, &r);
			if (!rc)
				rc = fcgi_client_req_add_param(r, "QUERY_STRING", "fa");
			if (!rc)
				rc = fcgi_client_req_body(r, "xyz", 3);
			if (!rc)
				rc = fcgi_client_req_send(r);
			if (!rc)
				rc = fcgi_client_wait(c, r, 3000);
			if (!rc && fcgi_client_req_error(r) == FCGI_OK)
				successes++;
			fcgi_client_free(c); /* frees r too */
		}
		unsigned long failures = failalloc_failures();
		long live = failalloc_live();
		failalloc_uninstall();
		assert_int_equal(live, 0);
		if (!failures)
			break; /* got through without reaching the k-th allocation */
	}
	assert_true(successes > 0);
}

/* ------------------------------------------------------------------ pausing output */

/* A raw FastCGI application on a Unix socket, in a thread: one request, answered with a
 * short head and `total` bytes of a pattern, written without blocking so the test can see
 * how far the writes got (`sent`) while the client does not read. */
typedef struct rawsrv {
	int lfd;
	char dir[32], path[64], address[80];
	size_t total;
	size_t sent; /* bytes written so far (__atomic) */
	int ok;
	pthread_t th;
} rawsrv;

enum { RAW_TYPE_BEGIN = 1, RAW_TYPE_END = 3, RAW_TYPE_STDIN = 5, RAW_TYPE_STDOUT = 6 };

static const char raw_head[] = "Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n";

static uint8_t raw_pattern(size_t i) { return (uint8_t)(i % 251 + (i >> 16)); }

static int raw_read_full(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n) {
		struct pollfd pl = {fd, POLLIN, 0};
		if (poll(&pl, 1, 5000) != 1)
			return -1;
		ssize_t k = read(fd, b, n);
		if (k <= 0)
			return -1;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

static size_t raw_record(uint8_t *rec, unsigned type, unsigned id, const void *d, size_t n)
{
	uint8_t h[8] = {1, (uint8_t)type, (uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(n >> 8),
	                (uint8_t)n, 0, 0};
	memcpy(rec, h, 8);
	if (n)
		memcpy(rec + 8, d, n);
	return 8 + n;
}

static void *rawsrv_run(void *arg)
{
	rawsrv *s = arg;
	struct pollfd pl = {s->lfd, POLLIN, 0};
	if (poll(&pl, 1, 5000) != 1)
		return NULL;
	int fd = accept(s->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	static uint8_t in[65536 + 256], rec[8 + 32768], chunk[32768];
	unsigned id = 0;
	for (;;) { /* BEGIN_REQUEST, PARAMS..., STDIN... up to the empty STDIN */
		uint8_t h[8];
		if (raw_read_full(fd, h, 8))
			goto out;
		size_t clen = (size_t)h[4] << 8 | h[5], pad = h[6];
		if (raw_read_full(fd, in, clen + pad))
			goto out;
		if (h[1] == RAW_TYPE_BEGIN)
			id = (unsigned)h[2] << 8 | h[3];
		if (h[1] == RAW_TYPE_STDIN && clen == 0)
			break;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	size_t produced = 0, rlen = 0, roff = 0;
	int step = 0; /* 0 head, 1 body, 2 STDOUT end, 3 END_REQUEST, 4 done */
	long long end = spawn_now_ms() + 20000;
	while (spawn_now_ms() < end) {
		if (roff == rlen) {
			roff = 0;
			if (step == 0) {
				rlen = raw_record(rec, RAW_TYPE_STDOUT, id, raw_head, sizeof raw_head - 1);
				step = 1;
			} else if (step == 1) {
				size_t n = s->total - produced < sizeof chunk ? s->total - produced
				                                              : sizeof chunk;
				for (size_t i = 0; i < n; i++)
					chunk[i] = raw_pattern(produced + i);
				rlen = raw_record(rec, RAW_TYPE_STDOUT, id, chunk, n);
				produced += n;
				if (produced == s->total)
					step = 2;
			} else if (step == 2) {
				rlen = raw_record(rec, RAW_TYPE_STDOUT, id, NULL, 0);
				step = 3;
			} else if (step == 3) {
				static const uint8_t body[8] = {0};
				rlen = raw_record(rec, RAW_TYPE_END, id, body, 8);
				step = 4;
			} else {
				s->ok = 1;
				break;
			}
		}
		ssize_t w = send(fd, rec + roff, rlen - roff, MSG_NOSIGNAL);
		if (w > 0) {
			roff += (size_t)w;
			__atomic_add_fetch(&s->sent, (size_t)w, __ATOMIC_SEQ_CST);
			continue;
		}
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd po = {fd, POLLOUT, 0};
			poll(&po, 1, 50);
			continue;
		}
		break;
	}
	/* Until the client closes its kept connection. */
	char sink[64];
	struct pollfd pr = {fd, POLLIN, 0};
	while (poll(&pr, 1, 5000) == 1 && read(fd, sink, sizeof sink) > 0)
		;
out:
	close(fd);
	return NULL;
}

static void rawsrv_start(rawsrv *s, size_t total)
{
	memset(s, 0, sizeof *s);
	s->total = total;
	snprintf(s->dir, sizeof s->dir, "/tmp/fcgikit-pause-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	snprintf(s->path, sizeof s->path, "%s/app.sock", s->dir);
	snprintf(s->address, sizeof s->address, "unix:%s", s->path);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->path);
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(s->lfd, 4), 0);
	assert_int_equal(pthread_create(&s->th, NULL, rawsrv_run, s), 0);
}

static void rawsrv_stop(rawsrv *s)
{
	pthread_join(s->th, NULL);
	close(s->lfd);
	unlink(s->path);
	rmdir(s->dir);
}

typedef struct pause_seen {
	size_t got, pause_at;
	unsigned bad;
	int paused, ended;
} pause_seen;

/* Checks the stream against raw_head + pattern, and pauses once pause_at bytes came. */
static void pause_output(fcgi_client_req *r, int stream, const void *data, size_t len, void *ud)
{
	pause_seen *p = ud;
	if (stream != FCGI_CLIENT_STDOUT)
		return;
	if (!len) {
		p->ended = 1;
		return;
	}
	const uint8_t *d = data;
	size_t hl = sizeof raw_head - 1;
	for (size_t i = 0; i < len; i++) {
		size_t o = p->got + i;
		if (d[i] != (o < hl ? (uint8_t)raw_head[o] : raw_pattern(o - hl)))
			p->bad++;
	}
	p->got += len;
	if (!p->paused && p->got >= p->pause_at) {
		p->paused = 1;
		assert_int_equal(fcgi_client_req_pause(r, 1), FCGI_OK);
	}
}

/* The only request on its connection, paused: the client stops reading, the application's
 * writes stop (its socket is full), no output is delivered, and the read and write
 * timeouts (150 ms) do not fire in 600 ms of pause; resumed, all 8 MiB arrive intact. */
static void test_pause_single(void **st)
{
	(void)st;
	rawsrv s;
	size_t total = 8u << 20;
	rawsrv_start(&s, total);
	fcgi_client *c = new_client(s.address);
	fcgi_client_set_opt(c, FCGI_CLIENT_MPX, 0);
	fcgi_client_set_opt(c, FCGI_CLIENT_READ_TIMEOUT_MS, 150);
	fcgi_client_set_opt(c, FCGI_CLIENT_WRITE_TIMEOUT_MS, 150);
	pause_seen ps = {.pause_at = 256 * 1024};
	fcgi_client_req *r = get(c, "", NULL);
	fcgi_client_req_on_output(r, pause_output, &ps);
	fcgi_client_req_send(r);
	long long t0 = spawn_now_ms();
	while (!ps.paused && !fcgi_client_req_is_done(r) && spawn_now_ms() - t0 < 5000)
		assert_int_equal(fcgi_client_process(c, 50), FCGI_OK);
	assert_true(ps.paused);
	size_t got = ps.got, sent_mid = 0;
	t0 = spawn_now_ms();
	while (spawn_now_ms() - t0 < 600) {
		assert_int_equal(fcgi_client_process(c, 50), FCGI_OK);
		if (!sent_mid && spawn_now_ms() - t0 >= 300)
			sent_mid = __atomic_load_n(&s.sent, __ATOMIC_SEQ_CST);
	}
	size_t sent_end = __atomic_load_n(&s.sent, __ATOMIC_SEQ_CST);
	assert_false(fcgi_client_req_is_done(r)); /* no timeout while paused */
	assert_int_equal(ps.got, got);            /* nothing delivered while paused */
	assert_int_equal(sent_mid, sent_end);     /* the application's writes wait */
	assert_true(sent_end < total / 2);
	assert_int_equal(fcgi_client_req_pause(r, 0), FCGI_OK);
	assert_int_equal(fcgi_client_wait(c, r, 10000), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(r), FCGI_OK);
	assert_int_equal(ps.got, sizeof raw_head - 1 + total);
	assert_int_equal(ps.bad, 0);
	assert_true(ps.ended);
	fcgi_client_req_free(r);
	fcgi_client_free(c);
	rawsrv_stop(&s);
	assert_true(s.ok);
}

typedef struct pause_check {
	stream_check sc;
	int paused;
} pause_check;

static void pause_at_first(fcgi_client_req *r, int stream, const void *data, size_t len,
                           void *ud)
{
	pause_check *p = ud;
	check_output(r, stream, data, len, &p->sc);
	if (!p->paused && stream == FCGI_CLIENT_STDOUT && len) {
		p->paused = 1;
		fcgi_client_req_pause(r, 1);
	}
}

/* Multiplexed on one connection: a paused 4 MiB response does not stall a second request
 * (the connection is read anyway; the paused one's output keeps coming), and it completes
 * intact once resumed. */
static void test_pause_mpx_no_stall(void **st)
{
	(void)st;
	size_t n = 4u << 20;
	uint8_t *big = random_bytes(n, 7);
	fcgi_client *c = new_client(echo_proc.address);
	fcgi_client_set_opt(c, FCGI_CLIENT_MPX, 2);
	fcgi_client_set_opt(c, FCGI_CLIENT_MAX_CONNS, 1);
	fcgi_client_req *a;
	assert_int_equal(fcgi_client_req_new(c, &a), FCGI_OK);
	fcgi_client_req_add_param(a, "REQUEST_METHOD", "POST");
	char cl[32];
	snprintf(cl, sizeof cl, "%zu", n);
	fcgi_client_req_add_param(a, "CONTENT_LENGTH", cl);
	fcgi_client_req_body(a, big, n);
	pause_check pc = {.sc = {.want = big, .want_len = n, .head_left = 1}};
	fcgi_client_req_on_output(a, pause_at_first, &pc);
	fcgi_client_req_send(a);
	long long t0 = spawn_now_ms();
	while (!pc.paused && spawn_now_ms() - t0 < 10000)
		assert_int_equal(fcgi_client_process(c, 50), FCGI_OK);
	assert_true(pc.paused);
	fcgi_client_req *b = get(c, "x=1", NULL);
	fcgi_client_req_send(b);
	t0 = spawn_now_ms();
	assert_int_equal(fcgi_client_wait(c, b, 5000), FCGI_OK);
	assert_true(spawn_now_ms() - t0 < 3000);
	assert_int_equal(fcgi_client_req_error(b), FCGI_OK);
	assert_true(fcgi_client_req_multiplexed(b));
	assert_true(header_is(b, "X-Query", "x=1"));
	assert_int_equal(c->conns_opened, 1);
	assert_int_equal(fcgi_client_req_pause(a, 0), FCGI_OK);
	assert_int_equal(fcgi_client_wait(c, a, 10000), FCGI_OK);
	assert_int_equal(fcgi_client_req_error(a), FCGI_OK);
	assert_false(pc.sc.mismatch);
	assert_int_equal(pc.sc.got, n);
	assert_true(pc.sc.ended);
	fcgi_client_req_free(a);
	fcgi_client_req_free(b);
	fcgi_client_free(c);
	free(big);
}

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_call_oneshot),
	    cmocka_unit_test(test_mpx_interleaved_reverse),
	    cmocka_unit_test(test_keepalive_reuse),
	    cmocka_unit_test(test_abort),
	    cmocka_unit_test(test_8mib_both_ways),
	    cmocka_unit_test(test_get_values),
	    cmocka_unit_test(test_cant_mpx_fallback),
	    cmocka_unit_test(test_overloaded_and_unknown_role),
	    cmocka_unit_test(test_connect_errors),
	    cmocka_unit_test(test_timeouts),
	    cmocka_unit_test(test_event_loop_embedding),
	    cmocka_unit_test(test_reused_conn_closed_by_app),
	    cmocka_unit_test(test_params_forms),
	    cmocka_unit_test(test_max_buffered),
	    cmocka_unit_test(test_failing_allocator),
	    cmocka_unit_test(test_pause_single),
	    cmocka_unit_test(test_pause_mpx_no_stall),
	};
	return cmocka_run_group_tests(tests, start_echo, stop_echo);
}
