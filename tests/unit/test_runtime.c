/*
 * test_runtime.c — the application runtime in-process: an app on a Unix socket (or loopback
 * TCP) in this process, served by threads or a handler, driven by raw FastCGI records
 * (tests/protocol/fcgi_raw.h). Every socket has timeouts; every wait is bounded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "fcgikit.h"
#include "protocol/fcgi_raw.h"

enum { IO_MS = 5000 };

static char g_dir[64];

static void sock_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", g_dir, name);
}

static int connect_unix(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
	struct timeval tv = {IO_MS / 1000, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&un, sizeof un)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int connect_tcp(const char *addr)
{
	const char *colon = strrchr(addr, ':');
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1)),
	                         .sin_addr.s_addr = htonl(0x7f000001)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {IO_MS / 1000, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&in, sizeof in)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One request with the given params ("NAME", "VALUE", ..., NULL) and body; waits for its
 * END_REQUEST. */
static raw_collect_result roundtrip(int fd, unsigned id, unsigned flags, raw_resp *resp,
                                    const void *body, size_t blen, ...)
{
	rbuf params = {0}, req = {0};
	va_list ap;
	va_start(ap, blen);
	for (const char *n; (n = va_arg(ap, const char *));)
		rb_pair(&params, n, va_arg(ap, const char *));
	va_end(ap);
	rb_request(&req, id, flags, &params, body, blen);
	raw_send_rb(fd, &req);
	rb_free(&params);
	rb_free(&req);
	raw_resp_init(resp, 1, id);
	return raw_collect(fd, resp, 1, IO_MS);
}

/* ---------------------------------------------------------------- a served app */

typedef void (*serve_fn)(fcgi_req *req);

struct served {
	fcgi_app *app;
	pthread_t tids[4];
	int n;
	serve_fn fn;
	char path[128];
};

/* Event handler that holds every request: they stay in flight until the app is freed. */
static void hold_handler(fcgi_req *req, void *ud)
{
	(void)req;
	(void)ud;
}

static void *run_app(void *arg);

static void *serve_loop(void *arg)
{
	struct served *s = arg;
	fcgi_req *req;
	while (fcgi_accept(s->app, &req) == FCGI_OK)
		s->fn(req);
	return NULL;
}

static void serve_start(struct served *s, const char *name, int threads, serve_fn fn)
{
	sock_path(s->path, sizeof s->path, name);
	char addr[160];
	snprintf(addr, sizeof addr, "unix:%s", s->path);
	if (!s->app)
		assert_int_equal(fcgi_app_new(&s->app), FCGI_OK);
	assert_int_equal(fcgi_app_listen(s->app, addr), FCGI_OK);
	s->fn = fn;
	s->n = threads;
	if (!fn) { /* nobody takes requests; one thread runs the loop */
		fcgi_app_set_handler(s->app, hold_handler, NULL);
		fcgi_app_set_opt(s->app, FCGI_OPT_DRAIN_TIMEOUT_MS, 100);
		s->n = 1;
		pthread_create(&s->tids[0], NULL, run_app, s->app);
		return;
	}
	for (int i = 0; i < threads; i++)
		pthread_create(&s->tids[i], NULL, serve_loop, s);
}

static void serve_stop(struct served *s)
{
	fcgi_app_stop(s->app);
	for (int i = 0; i < s->n; i++)
		pthread_join(s->tids[i], NULL);
	fcgi_app_free(s->app);
	s->app = NULL;
}

/* ---------------------------------------------------------------- blocking style */

static void serve_echo_small_reads(fcgi_req *req)
{
	char body[65536];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof body && (n = fcgi_read(req, body + len, 7)) > 0)
		len += (size_t)n;
	const char *m = fcgi_param(req, "REQUEST_METHOD");
	fcgi_printf(req, "Content-Type: text/plain\r\nX-Params: %zu\r\nX-Method: %s\r\n\r\n",
	            fcgi_param_count(req), m ? m : "-");
	fcgi_write(req, body, len);
	fcgi_write_err(req, "warn", 4);
	fcgi_finish(req, 3);
}

static void test_blocking_roundtrip(void **state)
{
	(void)state;
	struct served s = {0};
	serve_start(&s, "rt.sock", 2, serve_echo_small_reads);
	int fd = connect_unix(s.path);
	assert_true(fd >= 0);
	raw_resp r;
	const char body[] = "the body, read seven bytes at a time";
	raw_collect_result c = roundtrip(fd, 1, RAW_KEEP_CONN, &r, body, sizeof body - 1,
	                                 "REQUEST_METHOD", "PUT", "EMPTY", "", NULL);
	assert_int_equal(c.ended, 1);
	assert_int_equal(r.app_status, 3);
	assert_int_equal(r.proto_status, 0);
	cgi_resp cr = cgi_parse(r.out.p, r.out.len);
	assert_int_equal(cr.body_len, sizeof body - 1);
	assert_memory_equal(cr.body, body, sizeof body - 1);
	char v[32];
	assert_string_equal(cgi_header(&cr, "X-Params", v, sizeof v), "2");
	assert_string_equal(cgi_header(&cr, "X-Method", v, sizeof v), "PUT");
	assert_int_equal(r.err.len, 4);
	assert_memory_equal(r.err.p, "warn", 4);
	raw_resp_free(&r, 1);
	/* KEEP_CONN: the same connection serves a second request */
	c = roundtrip(fd, 2, RAW_KEEP_CONN, &r, "x", 1, NULL);
	assert_int_equal(c.ended, 1);
	raw_resp_free(&r, 1);
	/* without it the application closes after answering */
	c = roundtrip(fd, 3, 0, &r, "y", 1, NULL);
	assert_int_equal(c.ended, 1);
	assert_int_equal(raw_wait_close(fd, IO_MS), 1);
	raw_resp_free(&r, 1);
	close(fd);
	serve_stop(&s);
}

static void test_params_by_index(void **state)
{
	(void)state;
	fcgi_app *app;
	assert_int_equal(fcgi_app_new(&app), FCGI_OK);
	char path[128], addr[160];
	sock_path(path, sizeof path, "idx.sock");
	snprintf(addr, sizeof addr, "unix:%s", path);
	assert_int_equal(fcgi_app_listen(app, addr), FCGI_OK);
	int fd = connect_unix(path);
	rbuf params = {0}, req = {0};
	rb_pair(&params, "A", "1");
	rb_pair_n(&params, "NUL", 3, "x\0y", 3, 0);
	rb_request(&req, 1, RAW_KEEP_CONN, &params, NULL, 0);
	raw_send_rb(fd, &req);
	fcgi_req *r;
	assert_int_equal(fcgi_accept(app, &r), FCGI_OK);
	assert_int_equal(fcgi_param_count(r), 2);
	const char *n, *v;
	size_t nl, vl;
	assert_int_equal(fcgi_param_at(r, 1, &n, &nl, &v, &vl), FCGI_OK);
	assert_string_equal(n, "NUL");
	assert_int_equal(vl, 3);
	assert_memory_equal(v, "x\0y", 3);
	assert_int_equal(fcgi_param_at(r, 2, &n, &nl, &v, &vl), FCGI_EINVAL);
	assert_null(fcgi_param(r, "MISSING"));
	assert_int_equal(fcgi_req_role(r), FCGI_ROLE_RESPONDER);
	assert_int_equal(fcgi_req_id(r), 1);
	assert_int_equal(fcgi_req_keep_conn(r), 1);
	fcgi_finish(r, 0);
	rb_free(&params);
	rb_free(&req);
	close(fd);
	fcgi_app_free(app);
}

/* ---------------------------------------------------------------- limits */

static int get_value(const raw_collect_result *c, const char *name, char *out, size_t size)
{
	size_t off = 0;
	while (off < c->last_mgmt_len) {
		size_t nl = c->last_mgmt[off], vl = c->last_mgmt[off + 1];
		const char *p = (const char *)c->last_mgmt + off + 2;
		if (nl == strlen(name) && !memcmp(p, name, nl)) {
			snprintf(out, size, "%.*s", (int)vl, p + nl);
			return 1;
		}
		off += 2 + nl + vl;
	}
	return 0;
}

static void test_get_values_and_cant_mpx(void **state)
{
	(void)state;
	fcgi_app *app;
	assert_int_equal(fcgi_app_new(&app), FCGI_OK);
	assert_int_equal(fcgi_app_set_opt(app, FCGI_OPT_MAX_CONNS, 7), FCGI_OK);
	assert_int_equal(fcgi_app_set_opt(app, FCGI_OPT_MAX_REQS, 9), FCGI_OK);
	assert_int_equal(fcgi_app_set_opt(app, FCGI_OPT_MPXS_CONNS, 0), FCGI_OK);
	assert_int_equal(fcgi_app_set_opt(app, FCGI_OPT_MAX_CONNS, 0), FCGI_EINVAL);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_MAX_REQS), 9);
	struct served s = {.app = app};
	serve_start(&s, "gv.sock", 0, NULL); /* requests stay in flight */
	int fd = connect_unix(s.path);
	rbuf b = {0}, p = {0};
	rb_pair(&p, "FCGI_MAX_CONNS", "");
	rb_pair(&p, "FCGI_MAX_REQS", "");
	rb_pair(&p, "FCGI_MPXS_CONNS", "");
	rb_record(&b, RAW_GET_VALUES, 0, p.p, p.len, 0);
	rb_begin(&b, 1, RAW_RESPONDER, RAW_KEEP_CONN);
	rb_stream_end(&b, RAW_PARAMS, 1);
	rb_begin(&b, 2, RAW_RESPONDER, RAW_KEEP_CONN);
	raw_send_rb(fd, &b);
	raw_resp r;
	raw_resp_init(&r, 1, 2);
	raw_collect_result c = raw_collect(fd, &r, 1, IO_MS);
	assert_int_equal(c.ended, 1);
	assert_int_equal(r.proto_status, FCGI_STATUS_CANT_MPX_CONN);
	char v[16];
	assert_true(get_value(&c, "FCGI_MAX_CONNS", v, sizeof v));
	assert_string_equal(v, "7");
	assert_true(get_value(&c, "FCGI_MAX_REQS", v, sizeof v));
	assert_string_equal(v, "9");
	assert_true(get_value(&c, "FCGI_MPXS_CONNS", v, sizeof v));
	assert_string_equal(v, "0");
	raw_resp_free(&r, 1);
	rb_free(&b);
	rb_free(&p);
	close(fd);
	serve_stop(&s);
}

static void test_max_reqs_overloaded(void **state)
{
	(void)state;
	fcgi_app *app;
	assert_int_equal(fcgi_app_new(&app), FCGI_OK);
	assert_int_equal(fcgi_app_set_opt(app, FCGI_OPT_MAX_REQS, 1), FCGI_OK);
	struct served s = {.app = app};
	serve_start(&s, "ol.sock", 0, NULL);
	int a = connect_unix(s.path), b = connect_unix(s.path);
	rbuf x = {0};
	rb_begin(&x, 1, RAW_RESPONDER, RAW_KEEP_CONN);
	raw_send_rb(a, &x);
	usleep(100000); /* let the first be admitted */
	raw_send_rb(b, &x);
	raw_resp r;
	raw_resp_init(&r, 1, 1);
	raw_collect_result c = raw_collect(b, &r, 1, IO_MS);
	assert_int_equal(c.ended, 1);
	assert_int_equal(r.proto_status, FCGI_STATUS_OVERLOADED);
	raw_resp_free(&r, 1);
	rb_free(&x);
	close(a);
	close(b);
	serve_stop(&s);
}

/* ---------------------------------------------------------------- abort */

static atomic_int g_abort_cb;
static atomic_int g_abort_read;
static atomic_int g_abort_write;

static void on_abort_cb(fcgi_req *req, void *ud)
{
	(void)ud;
	(void)req;
	atomic_fetch_add(&g_abort_cb, 1);
}

static void serve_until_abort(fcgi_req *req)
{
	char buf[64];
	fcgi_req_on_abort(req, on_abort_cb, NULL);
	ssize_t n;
	while ((n = fcgi_read(req, buf, sizeof buf)) > 0)
		;
	atomic_store(&g_abort_read, (int)n);
	/* no cmocka asserts off the main thread: results go through atomics */
	atomic_store(&g_abort_write, fcgi_req_aborted(req) ? fcgi_write(req, "x", 1) : 1);
	fcgi_finish(req, 0);
}

static void test_abort(void **state)
{
	(void)state;
	struct served s = {0};
	serve_start(&s, "ab.sock", 1, serve_until_abort);
	int fd = connect_unix(s.path);
	rbuf b = {0};
	rb_begin(&b, 5, RAW_RESPONDER, RAW_KEEP_CONN);
	rb_stream_end(&b, RAW_PARAMS, 5);
	rb_stream(&b, RAW_STDIN, 5, "partial", 7);
	raw_send_rb(fd, &b);
	usleep(100000);
	rbuf ab = {0};
	rb_abort(&ab, 5);
	raw_send_rb(fd, &ab);
	raw_resp r;
	raw_resp_init(&r, 1, 5);
	raw_collect_result c = raw_collect(fd, &r, 1, IO_MS);
	assert_int_equal(c.ended, 1);
	assert_int_equal(atomic_load(&g_abort_cb), 1);
	assert_int_equal(atomic_load(&g_abort_read), FCGI_EABORTED);
	assert_int_equal(atomic_load(&g_abort_write), FCGI_EABORTED);
	raw_resp_free(&r, 1);
	rb_free(&b);
	rb_free(&ab);
	close(fd);
	serve_stop(&s);
}

/* ---------------------------------------------------------------- event style */

struct ev_state {
	fcgi_app *app;
	size_t got;
	int pieces, ends;
	ssize_t first_read;
};

static void on_body(fcgi_req *req, const void *data, size_t len, void *ud)
{
	struct ev_state *st = ud;
	(void)data;
	if (len) {
		st->got += len;
		st->pieces++;
		return;
	}
	st->ends++;
	fcgi_printf(req, "Content-Type: text/plain\r\n\r\n%zu", st->got);
	fcgi_finish(req, 0);
}

static void ev_handler(fcgi_req *req, void *ud)
{
	/* The loop never blocks: reading would say EAGAIN here. */
	struct ev_state *st = ud;
	char c;
	st->first_read = fcgi_read(req, &c, 1);
	fcgi_req_on_body(req, on_body, ud);
}

static void *run_app(void *arg)
{
	fcgi_app_run(arg);
	return NULL;
}

static void test_event_on_body(void **state)
{
	(void)state;
	struct ev_state st = {0};
	char path[128], addr[160];
	sock_path(path, sizeof path, "ev.sock");
	snprintf(addr, sizeof addr, "unix:%s", path);
	assert_int_equal(fcgi_app_new(&st.app), FCGI_OK);
	assert_int_equal(fcgi_app_listen(st.app, addr), FCGI_OK);
	fcgi_app_set_handler(st.app, ev_handler, &st);
	fcgi_req *none;
	assert_int_equal(fcgi_accept(st.app, &none), FCGI_ESTATE);
	pthread_t t;
	pthread_create(&t, NULL, run_app, st.app);
	int fd = connect_unix(path);
	size_t len = 300000;
	char *body = malloc(len);
	memset(body, 'b', len);
	raw_resp r;
	raw_collect_result c = roundtrip(fd, 1, RAW_KEEP_CONN, &r, body, len, NULL);
	assert_int_equal(c.ended, 1);
	cgi_resp cr = cgi_parse(r.out.p, r.out.len);
	char want[32];
	snprintf(want, sizeof want, "%zu", len);
	assert_int_equal(cr.body_len, strlen(want));
	assert_memory_equal(cr.body, want, strlen(want));
	assert_true(st.pieces >= 1);
	assert_int_equal(st.ends, 1);
	assert_int_equal(st.first_read, FCGI_EAGAIN); /* the loop never blocks */
	raw_resp_free(&r, 1);
	free(body);
	close(fd);
	fcgi_app_stop(st.app);
	pthread_join(t, NULL);
	fcgi_app_free(st.app);
}

/* Finishing later: from a timer on the loop, and from another thread. */
static void finish_timer(void *ud)
{
	fcgi_req *req = ud;
	fcgi_puts(req, "Content-Type: text/plain\r\n\r\ntimer");
	fcgi_finish(req, 0);
}

static void *finish_thread(void *ud)
{
	fcgi_req *req = ud;
	usleep(30000);
	fcgi_puts(req, "Content-Type: text/plain\r\n\r\nthread");
	fcgi_finish(req, 0);
	return NULL;
}

static pthread_t g_finisher;

static void later_handler(fcgi_req *req, void *ud)
{
	fcgi_app *app = ud;
	if (fcgi_req_id(req) == 1)
		fcgi_app_timer(app, 50, finish_timer, req);
	else
		pthread_create(&g_finisher, NULL, finish_thread, req);
}

static void test_finish_later(void **state)
{
	(void)state;
	fcgi_app *app;
	char path[128], addr[160];
	sock_path(path, sizeof path, "later.sock");
	snprintf(addr, sizeof addr, "unix:%s", path);
	assert_int_equal(fcgi_app_new(&app), FCGI_OK);
	assert_int_equal(fcgi_app_listen(app, addr), FCGI_OK);
	fcgi_app_set_handler(app, later_handler, app);
	pthread_t t;
	pthread_create(&t, NULL, run_app, app);
	int fd = connect_unix(path);
	rbuf b = {0};
	rb_request(&b, 1, RAW_KEEP_CONN, NULL, NULL, 0);
	rb_request(&b, 2, RAW_KEEP_CONN, NULL, NULL, 0);
	raw_send_rb(fd, &b);
	raw_resp r[2];
	raw_resp_init(r, 2, 1);
	raw_collect_result c = raw_collect(fd, r, 2, IO_MS);
	assert_int_equal(c.ended, 2);
	assert_non_null(memmem(r[0].out.p, r[0].out.len, "timer", 5));
	assert_non_null(memmem(r[1].out.p, r[1].out.len, "thread", 6));
	pthread_join(g_finisher, NULL);
	raw_resp_free(r, 2);
	rb_free(&b);
	close(fd);
	fcgi_app_stop(app);
	pthread_join(t, NULL);
	fcgi_app_free(app);
}

/* Embedding: the test's own poll loop drives the app. */
struct embed_client {
	char path[128];
	raw_collect_result c;
	raw_resp r;
};

static void *embed_client_main(void *arg)
{
	struct embed_client *e = arg;
	int fd = connect_unix(e->path);
	e->c = roundtrip(fd, 9, RAW_KEEP_CONN, &e->r, "abc", 3, NULL);
	close(fd);
	return NULL;
}

static void hello_handler(fcgi_req *req, void *ud)
{
	(void)ud;
	fcgi_puts(req, "Content-Type: text/plain\r\n\r\nembedded");
	fcgi_finish(req, 0);
}

static void test_embed_process(void **state)
{
	(void)state;
	fcgi_app *app;
	struct embed_client e = {0};
	sock_path(e.path, sizeof e.path, "embed.sock");
	char addr[160];
	snprintf(addr, sizeof addr, "unix:%s", e.path);
	assert_int_equal(fcgi_app_new(&app), FCGI_OK);
	assert_int_equal(fcgi_app_listen(app, addr), FCGI_OK);
	fcgi_app_set_handler(app, hello_handler, NULL);
	int afd = fcgi_app_fd(app);
	if (afd < 0) { /* the poll(2) backend has no descriptor to embed */
		fcgi_app_free(app);
		skip();
	}
	pthread_t t;
	pthread_create(&t, NULL, embed_client_main, &e);
	long long end = raw_now_ms() + IO_MS;
	while (raw_now_ms() < end && !e.c.ended) {
		struct pollfd pf = {.fd = afd, .events = POLLIN};
		poll(&pf, 1, 50);
		assert_int_equal(fcgi_app_process(app, 0), FCGI_OK);
	}
	pthread_join(t, NULL);
	assert_int_equal(e.c.ended, 1);
	assert_non_null(memmem(e.r.out.p, e.r.out.len, "embedded", 8));
	raw_resp_free(&e.r, 1);
	fcgi_app_free(app);
}

/* ---------------------------------------------------------------- sockets */

static void serve_hello(fcgi_req *req)
{
	fcgi_puts(req, "Content-Type: text/plain\r\n\r\nhi");
	fcgi_finish(req, 0);
}

static void test_allow_list_and_port0(void **state)
{
	(void)state;
	struct served s = {0};
	assert_int_equal(fcgi_app_new(&s.app), FCGI_OK);
	assert_int_equal(fcgi_app_allow(s.app, "10.0.0.1"), FCGI_OK);
	assert_int_equal(fcgi_app_allow(s.app, "not-an-address"), FCGI_EADDR);
	assert_int_equal(fcgi_app_listen(s.app, "127.0.0.1:0"), FCGI_OK);
	char local[64];
	assert_int_equal(fcgi_app_local_address(s.app, local, sizeof local), FCGI_OK);
	assert_true(!strncmp(local, "127.0.0.1:", 10) && atoi(local + 10) > 0);
	s.fn = serve_hello;
	s.n = 1;
	pthread_create(&s.tids[0], NULL, serve_loop, &s);
	/* refused peer: the connection is closed at once */
	int fd = connect_tcp(local);
	assert_true(fd >= 0);
	assert_int_equal(raw_wait_close(fd, IO_MS), 1);
	close(fd);
	/* allowed network */
	assert_int_equal(fcgi_app_allow(s.app, "10.0.0.1, 127.0.0.0/8"), FCGI_OK);
	fd = connect_tcp(local);
	raw_resp r;
	raw_collect_result c = roundtrip(fd, 1, RAW_KEEP_CONN, &r, NULL, 0, NULL);
	assert_int_equal(c.ended, 1);
	raw_resp_free(&r, 1);
	close(fd);
	serve_stop(&s);
}

static void test_listen_inherited(void **state)
{
	(void)state;
	fcgi_app *app;
	assert_int_equal(fcgi_app_new(&app), FCGI_OK);
	/* fd 0 is not a listening socket here */
	unsetenv("LISTEN_PID");
	assert_int_equal(fcgi_app_listen_inherited(app), FCGI_ENOTFCGI);
	fcgi_app_free(app);
	/* systemd: sockets from fd 3 on (set up before the app takes descriptors of its own) */
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	snprintf(un.sun_path, sizeof un.sun_path, "%s/sd.sock", g_dir);
	assert_int_equal(bind(ls, (struct sockaddr *)&un, sizeof un), 0);
	assert_int_equal(listen(ls, 8), 0);
	int saved3 = dup(3); /* whatever fd 3 is in this process, keep it */
	assert_int_equal(dup2(ls, 3), 3);
	char pid[32];
	snprintf(pid, sizeof pid, "%ld", (long)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "1", 1);
	assert_int_equal(fcgi_app_new(&app), FCGI_OK);
	assert_int_equal(fcgi_app_listen_inherited(app), 1);
	assert_null(getenv("LISTEN_FDS"));
	fcgi_app_free(app); /* closes fd 3 */
	if (saved3 >= 0) {
		dup2(saved3, 3);
		close(saved3);
	}
	close(ls);
	/* fcgi_app_listen_fd refuses a socket that is not listening */
	assert_int_equal(fcgi_app_new(&app), FCGI_OK);
	int plain = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(fcgi_app_listen_fd(app, plain), FCGI_EINVAL);
	close(plain);
	fcgi_app_free(app);
}

/* ---------------------------------------------------------------- stop, timeouts */

static void slow_handler(fcgi_req *req, void *ud)
{
	fcgi_app *app = ud;
	fcgi_app_timer(app, 200, finish_timer, req);
}

static void test_stop_drains(void **state)
{
	(void)state;
	fcgi_app *app;
	char path[128], addr[160];
	sock_path(path, sizeof path, "drain.sock");
	snprintf(addr, sizeof addr, "unix:%s", path);
	assert_int_equal(fcgi_app_new(&app), FCGI_OK);
	assert_int_equal(fcgi_app_listen(app, addr), FCGI_OK);
	fcgi_app_set_handler(app, slow_handler, app);
	pthread_t t;
	pthread_create(&t, NULL, run_app, app);
	int fd = connect_unix(path);
	rbuf b = {0};
	rb_request(&b, 1, RAW_KEEP_CONN, NULL, NULL, 0);
	raw_send_rb(fd, &b);
	usleep(50000);
	fcgi_app_stop(app);
	usleep(50000);
	/* new connections are refused, the request in flight still completes */
	assert_int_equal(connect_unix(path), -1);
	raw_resp r;
	raw_resp_init(&r, 1, 1);
	raw_collect_result c = raw_collect(fd, &r, 1, IO_MS);
	assert_int_equal(c.ended, 1);
	assert_non_null(memmem(r.out.p, r.out.len, "timer", 5));
	pthread_join(t, NULL); /* fcgi_app_run returns once drained */
	raw_resp_free(&r, 1);
	rb_free(&b);
	close(fd);
	fcgi_app_free(app);
}

static void test_accept_returns_shutdown(void **state)
{
	(void)state;
	struct served s = {0};
	serve_start(&s, "sd2.sock", 3, serve_hello);
	usleep(50000);
	serve_stop(&s); /* joins all three: each fcgi_accept returned FCGI_ESHUTDOWN */
}

static void test_idle_timeout(void **state)
{
	(void)state;
	struct served s = {0};
	assert_int_equal(fcgi_app_new(&s.app), FCGI_OK);
	assert_int_equal(fcgi_app_set_opt(s.app, FCGI_OPT_IDLE_TIMEOUT_MS, 300), FCGI_OK);
	serve_start(&s, "idle.sock", 1, serve_hello);
	int fd = connect_unix(s.path);
	long long t0 = raw_now_ms();
	assert_int_equal(raw_wait_close(fd, 3000), 1);
	long long took = raw_now_ms() - t0;
	assert_true(took >= 250 && took < 2000);
	close(fd);
	serve_stop(&s);
}

/* ---------------------------------------------------------------- flow control */

static void serve_count_slowly(fcgi_req *req)
{
	char buf[4096];
	size_t total = 0;
	ssize_t n;
	int i = 0;
	while ((n = fcgi_read(req, buf, sizeof buf)) > 0) {
		total += (size_t)n;
		if (++i % 64 == 0)
			usleep(1000);
	}
	fcgi_printf(req, "Content-Type: text/plain\r\n\r\n%zu", total);
	fcgi_finish(req, 0);
}

static void test_body_flow_control(void **state)
{
	(void)state;
	struct served s = {0};
	assert_int_equal(fcgi_app_new(&s.app), FCGI_OK);
	assert_int_equal(fcgi_app_set_opt(s.app, FCGI_OPT_BODY_BUFFER, 65536), FCGI_OK);
	serve_start(&s, "flow.sock", 2, serve_count_slowly);
	int fd = connect_unix(s.path);
	size_t len = 4u << 20;
	char *body = malloc(len);
	memset(body, 'z', len);
	raw_resp r;
	raw_collect_result c = roundtrip(fd, 1, RAW_KEEP_CONN, &r, body, len, NULL);
	assert_int_equal(c.ended, 1);
	assert_non_null(memmem(r.out.p, r.out.len, "4194304", 7));
	raw_resp_free(&r, 1);
	free(body);
	close(fd);
	serve_stop(&s);
}

/* ---------------------------------------------------------------- errors */

static void test_error_texts(void **state)
{
	(void)state;
	int codes[] = {
#define X(name, code, text) code,
	    FCGI_ERRNO_MAP(X)
#undef X
	};
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		assert_string_not_equal(fcgi_strerror(codes[i]), "unknown error");
		assert_true(!strncmp(fcgi_err_name(codes[i]), "FCGI_E", 6));
	}
	assert_string_equal(fcgi_strerror(FCGI_OK), "success");
	assert_string_equal(fcgi_err_name(FCGI_ENOMEM), "FCGI_ENOMEM");
	assert_string_equal(fcgi_strerror(-999), "unknown error");
	assert_string_equal(fcgi_version(), FCGIKIT_VERSION_STRING);
}

static int setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof g_dir, "/tmp/fcgikit-test-app.XXXXXX");
	return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	alarm(120);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_blocking_roundtrip),
	    cmocka_unit_test(test_params_by_index),
	    cmocka_unit_test(test_get_values_and_cant_mpx),
	    cmocka_unit_test(test_max_reqs_overloaded),
	    cmocka_unit_test(test_abort),
	    cmocka_unit_test(test_event_on_body),
	    cmocka_unit_test(test_finish_later),
	    cmocka_unit_test(test_embed_process),
	    cmocka_unit_test(test_allow_list_and_port0),
	    cmocka_unit_test(test_listen_inherited),
	    cmocka_unit_test(test_stop_drains),
	    cmocka_unit_test(test_accept_returns_shutdown),
	    cmocka_unit_test(test_idle_timeout),
	    cmocka_unit_test(test_body_flow_control),
	    cmocka_unit_test(test_error_texts),
	};
	return cmocka_run_group_tests_name("runtime", tests, setup, teardown);
}
