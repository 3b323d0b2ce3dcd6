/*
 * test_app.c — the application runtime (lib/app) driven in-process.
 *
 * Each test builds an fcgi_app in this process, listening on a Unix socket in a fresh
 * temporary directory (or on 127.0.0.1 / ::1 for the allow-list and port tests), served
 * either by N threads looping on fcgi_accept() or by an event handler, and talks to it
 * with raw FastCGI records built by tests/protocol/fcgi_raw.h (written from the spec,
 * independent of lib/codec).
 *
 * Rules that keep it safe to run anywhere:
 *  - every socket has SO_RCVTIMEO/SO_SNDTIMEO, every wait a deadline, every join a bound,
 *    and an alarm() watchdog guards each test;
 *  - server threads never call cmocka assertions (those longjmp in the main thread): they
 *    report through response headers and atomics that the main thread checks;
 *  - a test that fails leaves its app to the teardown, which stops and frees it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fcgikit.h"
#include "helpers/spawn.h"
#include "protocol/fcgi_raw.h"
#include "util/addr.h"

enum {
	IO_MS = 5000,     /* SO_RCVTIMEO / SO_SNDTIMEO of test sockets */
	REPLY_MS = 15000, /* an answer must come within this (sanitizer builds are slow) */
	JOIN_MS = 10000,  /* threads must end within this once the app stops */
	WATCHDOG_S = 90,  /* per test */
	MAX_THREADS = 8,
};

static char g_dir[64];

/* ---------------------------------------------------------------- small tools */

static long long now_ms(void) { return raw_now_ms(); }

static void sleep_ms(int ms) { usleep((useconds_t)ms * 1000); }

/* Polls cond until it holds or ms pass; returns whether it held. */
#define WAIT_FOR(cond, ms)                                                                         \
	({                                                                                         \
		long long wf_end_ = now_ms() + (ms);                                                \
		while (!(cond) && now_ms() < wf_end_)                                              \
			sleep_ms(2);                                                               \
		(cond) ? 1 : 0;                                                                    \
	})

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}
#define FNV_INIT 0xcbf29ce484222325ull

static uint32_t g_rng = 2463534242u;
static void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		g_rng ^= g_rng << 13;
		g_rng ^= g_rng >> 17;
		g_rng ^= g_rng << 5;
		p[i] = (uint8_t)g_rng;
	}
}

static void set_timeouts(int fd)
{
	struct timeval tv = {IO_MS / 1000, (IO_MS % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static void path_in_dir(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", g_dir, name);
}

static int connect_unix(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
	set_timeouts(fd);
	if (connect(fd, (struct sockaddr *)&un, sizeof un)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Connects to an address string ("127.0.0.1:9000", "[::1]:9000", "unix:/p"). */
static int connect_addr(const char *addr)
{
	fk_addr a;
	if (fk_addr_parse(addr, &a))
		return -1;
	int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	set_timeouts(fd);
	if (connect(fd, (struct sockaddr *)&a.ss, a.len)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A listening Unix socket made by the test itself. */
static int unix_listener(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&un, sizeof un) || listen(fd, 16)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Whether a connection attempt to a Unix path fails. */
static int refused(const char *path)
{
	int fd = connect_unix(path);
	if (fd >= 0)
		close(fd);
	return fd < 0;
}

/* Puts descriptor from on number to (from is consumed; nothing happens when equal). */
static void move_fd(int from, int to)
{
	if (from < 0 || from == to)
		return;
	dup2(from, to);
	close(from);
}

/* ---------------------------------------------------------------- raw requests */

/* params: "NAME", "VALUE", ..., NULL */
static void rb_params_va(rbuf *p, va_list ap)
{
	for (const char *n; (n = va_arg(ap, const char *));)
		rb_pair(p, n, va_arg(ap, const char *));
}

/* Sends a complete Responder request. Returns 0 or -1. */
static int send_request(int fd, unsigned id, unsigned flags, const void *body, size_t blen, ...)
{
	rbuf params = {0}, req = {0};
	va_list ap;
	va_start(ap, blen);
	rb_params_va(&params, ap);
	va_end(ap);
	rb_request(&req, id, flags, &params, body, blen);
	int rc = raw_send_rb(fd, &req);
	rb_free(&params);
	rb_free(&req);
	return rc;
}

/* BEGIN_REQUEST and the PARAMS stream only: the body follows later. */
static int send_head(int fd, unsigned id, unsigned flags, ...)
{
	rbuf params = {0}, req = {0};
	va_list ap;
	va_start(ap, flags);
	rb_params_va(&params, ap);
	va_end(ap);
	rb_begin(&req, id, RAW_RESPONDER, flags);
	if (params.len)
		rb_stream(&req, RAW_PARAMS, id, params.p, params.len);
	rb_stream_end(&req, RAW_PARAMS, id);
	int rc = raw_send_rb(fd, &req);
	rb_free(&params);
	rb_free(&req);
	return rc;
}

static int send_stdin(int fd, unsigned id, const void *data, size_t len)
{
	rbuf b = {0};
	if (len)
		rb_stream(&b, RAW_STDIN, id, data, len);
	else
		rb_stream_end(&b, RAW_STDIN, id);
	int rc = raw_send_rb(fd, &b);
	rb_free(&b);
	return rc;
}

static int send_abort(int fd, unsigned id)
{
	rbuf b = {0};
	rb_abort(&b, id);
	int rc = raw_send_rb(fd, &b);
	rb_free(&b);
	return rc;
}

/* Reads the response to one request (its END_REQUEST) and checks that the application
 * kept the protocol's rules on the way. */
static raw_collect_result collect1(int fd, unsigned id, raw_resp *r)
{
	raw_resp_init(r, 1, id);
	raw_collect_result c = raw_collect(fd, r, 1, REPLY_MS);
	if (c.problem[0])
		fail_msg("connection: %s", c.problem);
	if (r->problem[0])
		fail_msg("request %u: %s", id, r->problem);
	return c;
}

static void assert_complete(const raw_collect_result *c, const raw_resp *r)
{
	if (c->ended != 1)
		fail_msg("request %u: no END_REQUEST (eof %d, timeout %d)", r->id, c->eof, c->timeout);
	assert_int_equal(r->proto_status, FCGI_STATUS_COMPLETE);
}

/* A header of a response, or "" when absent. */
static const char *hdr(const raw_resp *r, const char *name)
{
	static char buf[8][256];
	static int k;
	char *b = buf[k++ % 8];
	cgi_resp cr = cgi_parse(r->out.p, r->out.len);
	if (cr.status < 0 || !cgi_header(&cr, name, b, 256))
		b[0] = 0;
	return b;
}

static cgi_resp body_of(const raw_resp *r)
{
	cgi_resp cr = cgi_parse(r->out.p, r->out.len);
	if (cr.status < 0)
		fail_msg("response %u has no CGI header block (%zu bytes)", r->id, r->out.len);
	return cr;
}

/* Reads management records until a GET_VALUES_RESULT; copies its pairs into names/values
 * (1-byte lengths: the values are short). Returns the number of pairs, or -1. */
static int read_get_values(int fd, char names[][32], char values[][32], int max)
{
	raw_rec *rec = malloc(sizeof *rec);
	assert_non_null(rec);
	long long deadline = now_ms() + REPLY_MS;
	int n = -1;
	while (raw_read_record(fd, rec, deadline) == 1) {
		if (rec->id != 0 || rec->type != RAW_GET_VALUES_RESULT)
			continue;
		n = 0;
		for (size_t off = 0; off + 2 <= rec->len && n < max;) {
			size_t nl = rec->content[off], vl = rec->content[off + 1];
			if (nl >= 128 || vl >= 128 || off + 2 + nl + vl > rec->len || nl >= 32 || vl >= 32)
				break;
			memcpy(names[n], rec->content + off + 2, nl);
			names[n][nl] = 0;
			memcpy(values[n], rec->content + off + 2 + nl, vl);
			values[n][vl] = 0;
			n++;
			off += 2 + nl + vl;
		}
		break;
	}
	free(rec);
	return n;
}

static const char *lookup(char names[][32], char values[][32], int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(names[i], name))
			return values[i];
	return NULL;
}

/* ---------------------------------------------------------------- a gate for held requests */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int open;
} g_gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void gate_close(void)
{
	pthread_mutex_lock(&g_gate.mu);
	g_gate.open = 0;
	pthread_mutex_unlock(&g_gate.mu);
}

static void gate_open(void)
{
	pthread_mutex_lock(&g_gate.mu);
	g_gate.open = 1;
	pthread_cond_broadcast(&g_gate.cv);
	pthread_mutex_unlock(&g_gate.mu);
}

/* Waits for the gate, at most JOIN_MS: a server thread never hangs for ever. */
static int gate_wait(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += JOIN_MS / 1000;
	pthread_mutex_lock(&g_gate.mu);
	int rc = 0;
	while (!g_gate.open && rc == 0)
		rc = pthread_cond_timedwait(&g_gate.cv, &g_gate.mu, &ts);
	int open = g_gate.open;
	pthread_mutex_unlock(&g_gate.mu);
	return open;
}

/* ---------------------------------------------------------------- a served app */

typedef struct srv srv;
typedef void (*serve_fn)(srv *s, fcgi_req *r);

struct worker {
	srv *s;
	int i;
};

struct srv {
	fcgi_app *app;
	serve_fn fn;
	int nthreads;
	int run_thread; /* a thread in fcgi_app_run (event style) */
	pthread_t th[MAX_THREADS];
	struct worker w[MAX_THREADS];
	int accept_rc[MAX_THREADS];
	int run_rc;
	atomic_int accepted; /* requests handed to fn */
	atomic_int in_fn;    /* threads inside fn now */
	atomic_int max_in_fn;
	atomic_int exited;   /* threads that returned */
	char path[128];
};

static srv *g_live[4]; /* what the teardown cleans up after a failure */

static void live_add(srv *s)
{
	for (int i = 0; i < 4; i++)
		if (!g_live[i]) {
			g_live[i] = s;
			return;
		}
}

static void live_del(srv *s)
{
	for (int i = 0; i < 4; i++)
		if (g_live[i] == s)
			g_live[i] = NULL;
}

/* Servers live in static storage, not on a test's stack: after a failed assertion the
 * teardown (and threads still running) must find them intact. */
static srv g_pool[4];

static srv *srv_new(void)
{
	srv *s = NULL;
	for (int i = 0; i < 4 && !s; i++)
		if (!g_pool[i].app)
			s = &g_pool[i];
	if (!s)
		fail_msg("no free server slot");
	memset(s, 0, sizeof *s);
	for (int i = 0; i < MAX_THREADS; i++)
		s->accept_rc[i] = 1;
	s->run_rc = 1;
	assert_int_equal(fcgi_app_new(&s->app), FCGI_OK);
	live_add(s);
	return s;
}

static void srv_listen_unix(srv *s, const char *name)
{
	char addr[192];
	path_in_dir(s->path, sizeof s->path, name);
	snprintf(addr, sizeof addr, "unix:%s", s->path);
	assert_int_equal(fcgi_app_listen(s->app, addr), FCGI_OK);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	srv *s = w->s;
	fcgi_req *r;
	int rc;
	while ((rc = fcgi_accept(s->app, &r)) == FCGI_OK) {
		atomic_fetch_add(&s->accepted, 1);
		int in = atomic_fetch_add(&s->in_fn, 1) + 1;
		int m = atomic_load(&s->max_in_fn);
		while (in > m && !atomic_compare_exchange_weak(&s->max_in_fn, &m, in))
			;
		s->fn(s, r);
		atomic_fetch_sub(&s->in_fn, 1);
	}
	s->accept_rc[w->i] = rc;
	atomic_fetch_add(&s->exited, 1);
	return NULL;
}

static void srv_start(srv *s, int nthreads, serve_fn fn)
{
	s->fn = fn;
	s->nthreads = nthreads;
	for (int i = 0; i < nthreads; i++) {
		s->w[i] = (struct worker){s, i};
		assert_int_equal(pthread_create(&s->th[i], NULL, worker_main, &s->w[i]), 0);
	}
}

static void *run_main(void *arg)
{
	srv *s = arg;
	s->run_rc = fcgi_app_run(s->app);
	atomic_fetch_add(&s->exited, 1);
	return NULL;
}

static void srv_start_run(srv *s)
{
	s->run_thread = 1;
	assert_int_equal(pthread_create(&s->th[0], NULL, run_main, s), 0);
}

static int join_bounded(pthread_t t, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return pthread_timedjoin_np(t, NULL, &ts) == 0;
}

/* Joins the threads (they must end by themselves: the app was stopped). Returns how many
 * did not end in time. */
static int srv_join(srv *s)
{
	int stuck = 0;
	int n = s->run_thread ? 1 : s->nthreads;
	for (int i = 0; i < n; i++)
		if (!join_bounded(s->th[i], JOIN_MS))
			stuck++;
	s->nthreads = 0;
	s->run_thread = 0;
	return stuck;
}

/* Stops, joins and frees. A thread that does not end keeps the app alive (leaked) rather
 * than freeing it under the thread's feet. */
static void srv_stop(srv *s)
{
	if (!s->app)
		return;
	gate_open();
	fcgi_app_stop(s->app);
	int stuck = srv_join(s);
	live_del(s);
	if (!stuck)
		fcgi_app_free(s->app);
	s->app = NULL;
	if (stuck)
		fail_msg("%d thread(s) did not end within %d ms of fcgi_app_stop", stuck, JOIN_MS);
}

/* ---------------------------------------------------------------- serve functions */

/* Reads the whole body; fn options come from params:
 *   HOLD=before|after  wait for the gate before/after reading the body
 *   SLOW=1             read in 1000-byte pieces, pausing now and then
 *   NOECHO=1           answer with the length and hash only */
static void serve_echo(srv *s, fcgi_req *r)
{
	(void)s;
	const char *hold = fcgi_param(r, "HOLD");
	int slow = fcgi_param(r, "SLOW") != NULL, echo = fcgi_param(r, "NOECHO") == NULL;
	if (hold && !strcmp(hold, "before"))
		gate_wait();
	size_t cap = 65536, len = 0, total = 0;
	uint8_t *body = malloc(cap);
	uint64_t h = FNV_INIT;
	ssize_t n = FCGI_ENOMEM;
	int reads = 0;
	while (body) {
		if (!echo)
			len = 0; /* hash only: one buffer's worth at a time */
		if (len + 4096 > cap) {
			uint8_t *nb = realloc(body, cap * 2);
			if (!nb)
				break;
			body = nb;
			cap *= 2;
		}
		n = fcgi_read(r, body + len, slow ? 1000 : 4096);
		if (n <= 0)
			break;
		h = fnv(h, body + len, (size_t)n);
		len += (size_t)n;
		total += (size_t)n;
		if (slow && ++reads % 32 == 0)
			usleep(500);
	}
	if (hold && !strcmp(hold, "after"))
		gate_wait();
	fcgi_printf(r,
	            "Content-Type: application/octet-stream\r\nX-Read-Rc: %zd\r\nX-Len: %zu\r\n"
	            "X-Hash: %016llx\r\nX-Id: %u\r\n\r\n",
	            n, total, (unsigned long long)h, fcgi_req_id(r));
	if (echo && body)
		fcgi_write(r, body, len);
	free(body);
	fcgi_finish(r, 0);
}

static void serve_hello(srv *s, fcgi_req *r)
{
	(void)s;
	fcgi_puts(r, "Content-Type: text/plain\r\n\r\nhello");
	fcgi_finish(r, 0);
}

/* ---------------------------------------------------------------- 1. a full request */

static void serve_full(srv *s, fcgi_req *r)
{
	(void)s;
	/* the body, three bytes at a time */
	size_t cap = 1 << 17, len = 0;
	uint8_t *body = malloc(cap);
	ssize_t n = 0, most = 0;
	int reads = 0;
	while (body && len + 3 <= cap && (n = fcgi_read(r, body + len, 3)) > 0) {
		len += (size_t)n;
		reads++;
		if (n > most)
			most = n;
	}
	/* the parameters by name and by index */
	char order[512] = "";
	size_t count = fcgi_param_count(r);
	const char *bin_ok = "no", *four_ok = "no";
	for (size_t i = 0; i < count; i++) {
		const char *nm, *v;
		size_t nl, vl;
		if (fcgi_param_at(r, i, &nm, &nl, &v, &vl) != FCGI_OK)
			break;
		if (strlen(order) + nl + 2 < sizeof order) {
			if (i)
				strcat(order, ",");
			strncat(order, nm, nl);
		}
		if (nl == 3 && !memcmp(nm, "BIN", 3) && vl == 5 && !memcmp(v, "x\0y\0z", 5) && !v[5])
			bin_ok = "yes";
		if (nl == 4 && !memcmp(nm, "FOUR", 4) && vl == 1 && v[0] == '4')
			four_ok = "yes";
	}
	const char *nm, *v;
	size_t nl, vl;
	int past_end = fcgi_param_at(r, count, &nm, &nl, &v, &vl);
	const char *method = fcgi_param(r, "REQUEST_METHOD"), *query = fcgi_param(r, "QUERY_STRING");
	const char *empty = fcgi_param(r, "EMPTY"), *lng = fcgi_param(r, "LONG");
	fcgi_printf(r,
	            "Status: 201 Created\r\nContent-Type: application/octet-stream\r\n"
	            "X-Read-Rc: %zd\r\nX-Reads: %d\r\nX-Most: %zd\r\nX-Count: %zu\r\nX-Params: %zu\r\n"
	            "X-Method: %s\r\nX-Query: %s\r\nX-Empty: %s\r\nX-Long-Len: %zu\r\n"
	            "X-Bin: %s\r\nX-Four: %s\r\nX-Order: %s\r\nX-Missing: %s\r\nX-Past-End: %s\r\n"
	            "X-Role: %d\r\nX-Id: %u\r\nX-Keep: %d\r\n\r\n",
	            n, reads, most, len, count, method ? method : "(null)", query ? query : "(null)",
	            empty ? (*empty ? "non-empty" : "empty") : "(null)", lng ? strlen(lng) : 0,
	            bin_ok, four_ok, order, fcgi_param(r, "NOPE") ? "set" : "null",
	            fcgi_err_name(past_end), (int)fcgi_req_role(r), fcgi_req_id(r),
	            fcgi_req_keep_conn(r));
	/* the body back in two writes, the second past the unlocked small-write buffer */
	size_t half = len / 3;
	fcgi_write(r, body, half);
	fcgi_write(r, body + half, len - half);
	fcgi_write_err(r, "first line\n", 11);
	fcgi_write_err(r, "second\n", 7);
	free(body);
	fcgi_finish(r, 7);
}

static void test_full_request(void **state)
{
	(void)state;
	srv *s = srv_new();
	srv_listen_unix(s, "full.sock");
	srv_start(s, 4, serve_full);
	int fd = connect_unix(s->path);
	assert_true(fd >= 0);

	size_t blen = 70001; /* more than one STDIN record */
	uint8_t *body = malloc(blen);
	fill_random(body, blen);
	char lng[300];
	memset(lng, 'v', sizeof lng - 1);
	lng[sizeof lng - 1] = 0;
	rbuf params = {0}, req = {0};
	rb_pair(&params, "REQUEST_METHOD", "POST");
	rb_pair(&params, "QUERY_STRING", "a=1&b=%20");
	rb_pair(&params, "EMPTY", "");
	rb_pair(&params, "LONG", lng); /* a 4-byte value length */
	rb_pair_n(&params, "BIN", 3, "x\0y\0z", 5, 0);
	rb_pair_n(&params, "FOUR", 4, "4", 1, 1); /* both lengths in the 4-byte form */
	rb_request(&req, 1, RAW_KEEP_CONN, &params, body, blen);
	assert_int_equal(raw_send_rb(fd, &req), 0);
	rb_free(&params);
	rb_free(&req);

	raw_resp r;
	raw_collect_result c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	assert_int_equal(r.app_status, 7);
	cgi_resp cr = body_of(&r);
	assert_int_equal(cr.status, 201);
	assert_string_equal(hdr(&r, "X-Read-Rc"), "0");
	char want[32];
	snprintf(want, sizeof want, "%zu", blen);
	assert_string_equal(hdr(&r, "X-Count"), want);
	assert_string_equal(hdr(&r, "X-Most"), "3"); /* never more than asked for */
	assert_true((size_t)atoi(hdr(&r, "X-Reads")) >= (blen + 2) / 3);
	assert_string_equal(hdr(&r, "X-Params"), "6");
	assert_string_equal(hdr(&r, "X-Method"), "POST");
	assert_string_equal(hdr(&r, "X-Query"), "a=1&b=%20");
	assert_string_equal(hdr(&r, "X-Empty"), "empty");
	assert_string_equal(hdr(&r, "X-Long-Len"), "299");
	assert_string_equal(hdr(&r, "X-Bin"), "yes");
	assert_string_equal(hdr(&r, "X-Four"), "yes");
	assert_string_equal(hdr(&r, "X-Order"), "REQUEST_METHOD,QUERY_STRING,EMPTY,LONG,BIN,FOUR");
	assert_string_equal(hdr(&r, "X-Missing"), "null");
	assert_string_equal(hdr(&r, "X-Past-End"), "FCGI_EINVAL");
	assert_string_equal(hdr(&r, "X-Role"), "1");
	assert_string_equal(hdr(&r, "X-Id"), "1");
	assert_string_equal(hdr(&r, "X-Keep"), "1");
	assert_int_equal(cr.body_len, blen);
	assert_memory_equal(cr.body, body, blen);
	/* STDERR is its own stream, ended before END_REQUEST (collect1 checks the order) */
	assert_true(r.err_ended);
	assert_int_equal(r.err.len, 18);
	assert_memory_equal(r.err.p, "first line\nsecond\n", 18);
	assert_true(r.out_ended);
	raw_resp_free(&r, 1);
	free(body);
	close(fd);
	srv_stop(s);
	for (int i = 0; i < 4; i++)
		assert_int_equal(s->accept_rc[i], FCGI_ESHUTDOWN);
}

/* ---------------------------------------------------------------- 2. KEEP_CONN */

static void test_keep_conn(void **state)
{
	(void)state;
	srv *s = srv_new();
	srv_listen_unix(s, "keep.sock");
	srv_start(s, 2, serve_echo);
	int fd = connect_unix(s->path);
	assert_true(fd >= 0);
	raw_resp r;
	raw_collect_result c;
	/* with KEEP_CONN the connection serves request after request, the same id again too */
	for (int i = 0; i < 5; i++) {
		char b[16];
		int n = snprintf(b, sizeof b, "body %d", i);
		assert_int_equal(send_request(fd, i < 3 ? 1 : 7, RAW_KEEP_CONN, b, (size_t)n, NULL), 0);
		c = collect1(fd, i < 3 ? 1 : 7, &r);
		assert_complete(&c, &r);
		cgi_resp cr = body_of(&r);
		assert_int_equal(cr.body_len, (size_t)n);
		assert_memory_equal(cr.body, b, (size_t)n);
		raw_resp_free(&r, 1);
		/* and stays open */
		assert_int_equal(raw_peek_state(fd, 50), 0);
	}
	/* without it, the application closes the connection after END_REQUEST */
	assert_int_equal(send_request(fd, 2, 0, "last", 4, NULL), 0);
	c = collect1(fd, 2, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	long long t0 = now_ms();
	assert_int_equal(raw_wait_close(fd, 3000), 1);
	assert_true(now_ms() - t0 < 2000);
	close(fd);
	/* a first request without KEEP_CONN on a new connection: answered, then closed */
	fd = connect_unix(s->path);
	assert_int_equal(send_request(fd, 1, 0, NULL, 0, NULL), 0);
	c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	assert_int_equal(raw_wait_close(fd, 3000), 1);
	close(fd);
	srv_stop(s);
}

/* ---------------------------------------------------------------- 3. GET_VALUES, CANT_MPX */

static void test_get_values_defaults(void **state)
{
	(void)state;
	srv *s = srv_new();
	srv_listen_unix(s, "gv0.sock");
	srv_start(s, 1, serve_echo);
	int fd = connect_unix(s->path);
	rbuf q = {0}, b = {0};
	rb_pair(&q, "FCGI_MAX_CONNS", "");
	rb_pair(&q, "FCGI_MAX_REQS", "");
	rb_pair(&q, "FCGI_MPXS_CONNS", "");
	rb_pair(&q, "FCGI_NO_SUCH_NAME", "");
	rb_record(&b, RAW_GET_VALUES, 0, q.p, q.len, 0);
	assert_int_equal(raw_send_rb(fd, &b), 0);
	char names[8][32], values[8][32];
	int n = read_get_values(fd, names, values, 8);
	assert_int_equal(n, 3); /* the unknown name is left out */
	assert_string_equal(lookup(names, values, n, "FCGI_MAX_CONNS"), "1024");
	assert_string_equal(lookup(names, values, n, "FCGI_MAX_REQS"), "1024");
	assert_string_equal(lookup(names, values, n, "FCGI_MPXS_CONNS"), "1");
	rb_free(&q);
	rb_free(&b);
	close(fd);
	srv_stop(s);
}

static void test_get_values_and_cant_mpx(void **state)
{
	(void)state;
	srv *s = srv_new();
	assert_int_equal(fcgi_app_set_opt(s->app, FCGI_OPT_MAX_CONNS, 7), FCGI_OK);
	assert_int_equal(fcgi_app_set_opt(s->app, FCGI_OPT_MAX_REQS, 9), FCGI_OK);
	assert_int_equal(fcgi_app_set_opt(s->app, FCGI_OPT_MPXS_CONNS, 0), FCGI_OK);
	srv_listen_unix(s, "gv.sock");
	gate_close();
	srv_start(s, 3, serve_echo);
	int fd = connect_unix(s->path);
	assert_true(fd >= 0);
	rbuf q = {0}, b = {0};
	rb_pair(&q, "FCGI_MAX_CONNS", "");
	rb_pair(&q, "FCGI_MAX_REQS", "");
	rb_pair(&q, "FCGI_MPXS_CONNS", "");
	rb_record(&b, RAW_GET_VALUES, 0, q.p, q.len, 0);
	assert_int_equal(raw_send_rb(fd, &b), 0);
	char names[8][32], values[8][32];
	int n = read_get_values(fd, names, values, 8);
	assert_int_equal(n, 3);
	assert_string_equal(lookup(names, values, n, "FCGI_MAX_CONNS"), "7");
	assert_string_equal(lookup(names, values, n, "FCGI_MAX_REQS"), "9");
	assert_string_equal(lookup(names, values, n, "FCGI_MPXS_CONNS"), "0");

	/* one request in flight (held by the application), then a second on the same
	 * connection: CANT_MPX_CONN for the second, the first unharmed */
	assert_int_equal(send_request(fd, 1, RAW_KEEP_CONN, "one", 3, "HOLD", "after", NULL), 0);
	assert_true(WAIT_FOR(atomic_load(&s->accepted) == 1, REPLY_MS));
	assert_int_equal(send_request(fd, 2, RAW_KEEP_CONN, "two", 3, NULL), 0);
	raw_resp r;
	raw_collect_result c = collect1(fd, 2, &r);
	assert_int_equal(c.ended, 1);
	assert_int_equal(r.proto_status, FCGI_STATUS_CANT_MPX_CONN);
	assert_int_equal(r.out.len, 0);
	raw_resp_free(&r, 1);
	/* another connection is not affected by the first one's request */
	int fd2 = connect_unix(s->path);
	assert_int_equal(send_request(fd2, 1, RAW_KEEP_CONN, "other", 5, NULL), 0);
	c = collect1(fd2, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	gate_open();
	c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	cgi_resp cr = body_of(&r);
	assert_int_equal(cr.body_len, 3);
	assert_memory_equal(cr.body, "one", 3);
	raw_resp_free(&r, 1);
	/* the connection goes on: one at a time is fine */
	assert_int_equal(send_request(fd, 2, RAW_KEEP_CONN, "three", 5, NULL), 0);
	c = collect1(fd, 2, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	rb_free(&q);
	rb_free(&b);
	close(fd);
	close(fd2);
	srv_stop(s);
}

/* ---------------------------------------------------------------- 4. OVERLOADED */

static void test_max_reqs_overloaded(void **state)
{
	(void)state;
	srv *s = srv_new();
	assert_int_equal(fcgi_app_set_opt(s->app, FCGI_OPT_MAX_REQS, 1), FCGI_OK);
	srv_listen_unix(s, "ol.sock");
	gate_close();
	srv_start(s, 2, serve_echo);
	int a = connect_unix(s->path), b = connect_unix(s->path);
	assert_true(a >= 0 && b >= 0);
	assert_int_equal(send_request(a, 1, RAW_KEEP_CONN, "held", 4, "HOLD", "after", NULL), 0);
	assert_true(WAIT_FOR(atomic_load(&s->accepted) == 1, REPLY_MS));
	/* a second request in flight, on another connection or on the same one */
	raw_resp r;
	assert_int_equal(send_request(b, 1, RAW_KEEP_CONN, "x", 1, NULL), 0);
	raw_collect_result c = collect1(b, 1, &r);
	assert_int_equal(c.ended, 1);
	assert_int_equal(r.proto_status, FCGI_STATUS_OVERLOADED);
	raw_resp_free(&r, 1);
	assert_int_equal(send_request(a, 2, RAW_KEEP_CONN, "y", 1, NULL), 0);
	c = collect1(a, 2, &r);
	assert_int_equal(c.ended, 1);
	assert_int_equal(r.proto_status, FCGI_STATUS_OVERLOADED);
	raw_resp_free(&r, 1);
	assert_int_equal(atomic_load(&s->accepted), 1);
	/* the limit counts requests in flight: once the first ends, there is room again */
	gate_open();
	c = collect1(a, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	assert_int_equal(send_request(b, 2, RAW_KEEP_CONN, "z", 1, NULL), 0);
	c = collect1(b, 2, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	close(a);
	close(b);
	srv_stop(s);
}

/* A client that keeps within FCGI_MAX_REQS=1 (it sends the next request only after the
 * END_REQUEST of the previous one, as a gateway honouring GET_VALUES does) is never told
 * OVERLOADED: the request stops counting before its END_REQUEST can reach the peer. */
static void test_max_reqs_sequential_never_overloaded(void **state)
{
	(void)state;
	enum { ROUNDS = 300 };
	srv *s = srv_new();
	assert_int_equal(fcgi_app_set_opt(s->app, FCGI_OPT_MAX_REQS, 1), FCGI_OK);
	srv_listen_unix(s, "ol2.sock");
	srv_start(s, 3, serve_echo);
	int fds[2] = {connect_unix(s->path), connect_unix(s->path)};
	assert_true(fds[0] >= 0 && fds[1] >= 0);
	int overloaded = 0, first = -1;
	for (int i = 0; i < ROUNDS; i++) {
		int fd = fds[i & 1];
		unsigned id = 1 + (unsigned)(i / 2 % 100);
		assert_int_equal(send_request(fd, id, RAW_KEEP_CONN, "z", 1, NULL), 0);
		raw_resp r;
		raw_collect_result c = collect1(fd, id, &r);
		assert_int_equal(c.ended, 1);
		if (r.proto_status == FCGI_STATUS_OVERLOADED && overloaded++ == 0)
			first = i;
		raw_resp_free(&r, 1);
	}
	close(fds[0]);
	close(fds[1]);
	srv_stop(s);
	if (overloaded)
		fail_msg("%d of %d strictly sequential requests (MAX_REQS=1) were refused with "
		         "OVERLOADED, the first at round %d",
		         overloaded, ROUNDS, first);
}

/* ---------------------------------------------------------------- 5. abort */

static atomic_int g_abort_cb, g_abort_cb_flag, g_read_rc, g_aborted, g_aborted_early, g_write_rc,
        g_bigwrite_rc, g_finish_rc, g_served;

static void count_abort(fcgi_req *req, void *ud)
{
	(void)ud;
	atomic_fetch_add(&g_abort_cb, 1);
	atomic_store(&g_abort_cb_flag, fcgi_req_aborted(req));
}

static void reset_abort_probes(void)
{
	atomic_store(&g_abort_cb, 0);
	atomic_store(&g_abort_cb_flag, -1);
	atomic_store(&g_read_rc, 1);
	atomic_store(&g_aborted, -1);
	atomic_store(&g_aborted_early, -1);
	atomic_store(&g_write_rc, 1);
	atomic_store(&g_bigwrite_rc, 1);
	atomic_store(&g_finish_rc, 1);
	atomic_store(&g_served, 0);
}

/* LATE=1: register the callback only after the gate opens (the abort came before). */
static void serve_until_abort(srv *s, fcgi_req *r)
{
	(void)s;
	const char *late = fcgi_param(r, "LATE");
	if (late)
		gate_wait();
	atomic_store(&g_aborted_early, fcgi_req_aborted(r));
	fcgi_req_on_abort(r, count_abort, NULL);
	char buf[64];
	ssize_t n;
	while ((n = fcgi_read(r, buf, sizeof buf)) > 0)
		;
	atomic_store(&g_read_rc, (int)n);
	atomic_store(&g_aborted, fcgi_req_aborted(r));
	atomic_store(&g_write_rc, fcgi_write(r, "x", 1));
	static char big[40000];
	atomic_store(&g_bigwrite_rc, fcgi_write(r, big, sizeof big));
	atomic_store(&g_finish_rc, fcgi_finish(r, 0));
	atomic_fetch_add(&g_served, 1);
}

static void test_abort(void **state)
{
	(void)state;
	reset_abort_probes();
	srv *s = srv_new();
	srv_listen_unix(s, "ab.sock");
	srv_start(s, 2, serve_until_abort);
	int fd = connect_unix(s->path);
	/* a request whose body never ends; the application blocks reading it */
	assert_int_equal(send_head(fd, 5, RAW_KEEP_CONN, NULL), 0);
	assert_int_equal(send_stdin(fd, 5, "partial", 7), 0);
	assert_true(WAIT_FOR(atomic_load(&s->accepted) == 1, REPLY_MS));
	sleep_ms(50);
	assert_int_equal(atomic_load(&g_abort_cb), 0);
	assert_int_equal(send_abort(fd, 5), 0);
	raw_resp r;
	raw_collect_result c = collect1(fd, 5, &r);
	assert_int_equal(c.ended, 1); /* the request still ends with END_REQUEST */
	raw_resp_free(&r, 1);
	assert_true(WAIT_FOR(atomic_load(&g_served) == 1, REPLY_MS));
	assert_int_equal(atomic_load(&g_abort_cb), 1);
	assert_int_equal(atomic_load(&g_abort_cb_flag), 1);
	assert_int_equal(atomic_load(&g_aborted), 1);
	assert_int_equal(atomic_load(&g_read_rc), FCGI_EABORTED);
	assert_int_equal(atomic_load(&g_write_rc), FCGI_EABORTED);
	assert_int_equal(atomic_load(&g_bigwrite_rc), FCGI_EABORTED);
	assert_int_equal(atomic_load(&g_finish_rc), FCGI_OK);

	/* registered after the abort: the callback runs at once, still exactly once */
	reset_abort_probes();
	gate_close();
	assert_int_equal(send_head(fd, 6, RAW_KEEP_CONN, "LATE", "1", NULL), 0);
	assert_true(WAIT_FOR(atomic_load(&s->accepted) == 2, REPLY_MS));
	assert_int_equal(send_abort(fd, 6), 0);
	sleep_ms(100); /* the loop (the other thread) takes the abort in */
	gate_open();
	c = collect1(fd, 6, &r);
	assert_int_equal(c.ended, 1);
	raw_resp_free(&r, 1);
	assert_true(WAIT_FOR(atomic_load(&g_served) == 1, REPLY_MS));
	assert_int_equal(atomic_load(&g_aborted_early), 1);
	assert_int_equal(atomic_load(&g_abort_cb), 1);
	assert_int_equal(atomic_load(&g_read_rc), FCGI_EABORTED);

	/* the connection serves on */
	s->fn = serve_echo;
	assert_int_equal(send_request(fd, 7, RAW_KEEP_CONN, "after", 5, NULL), 0);
	c = collect1(fd, 7, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	close(fd);
	srv_stop(s);
}

/* The web server closes the connection while the application holds the request. */
static void test_abort_by_close(void **state)
{
	(void)state;
	reset_abort_probes();
	srv *s = srv_new();
	srv_listen_unix(s, "abc.sock");
	srv_start(s, 2, serve_until_abort);
	int fd = connect_unix(s->path);
	assert_int_equal(send_head(fd, 1, RAW_KEEP_CONN, NULL), 0);
	assert_int_equal(send_stdin(fd, 1, "some", 4), 0);
	assert_true(WAIT_FOR(atomic_load(&s->accepted) == 1, REPLY_MS));
	close(fd);
	assert_true(WAIT_FOR(atomic_load(&g_served) == 1, REPLY_MS));
	assert_int_equal(atomic_load(&g_abort_cb), 1);
	assert_int_equal(atomic_load(&g_aborted), 1);
	int rc = atomic_load(&g_read_rc);
	if (rc != FCGI_EABORTED && rc != FCGI_ECLOSED)
		fail_msg("fcgi_read after the peer closed: %s", fcgi_err_name(rc));
	rc = atomic_load(&g_write_rc);
	if (rc != FCGI_EABORTED && rc != FCGI_ECLOSED)
		fail_msg("fcgi_write after the peer closed: %s", fcgi_err_name(rc));
	/* the process goes on serving */
	s->fn = serve_echo;
	fd = connect_unix(s->path);
	raw_resp r;
	assert_int_equal(send_request(fd, 1, RAW_KEEP_CONN, "ok", 2, NULL), 0);
	raw_collect_result c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	close(fd);
	srv_stop(s);
}

/* ---------------------------------------------------------------- 6. event style */

struct ev_req {
	fcgi_app *app;
	atomic_int handled;
	int first_read;  /* fcgi_read on the loop thread before any body: FCGI_EAGAIN */
	int data_ok;     /* fcgi_req_data gives back what was set */
	uint64_t hash;
	size_t len;
	int pieces, ends, after_end;
	atomic_int finish_rc; /* 1 until fcgi_finish returned */
	int timer_rc;
	pthread_t finisher;
	atomic_int has_finisher;
};

static struct ev_req g_ev[4];

static void ev_respond(fcgi_req *r, const char *by)
{
	struct ev_req *e = fcgi_req_data(r);
	fcgi_printf(r,
	            "Content-Type: text/plain\r\nX-Len: %zu\r\nX-Hash: %016llx\r\nX-Pieces: %d\r\n"
	            "X-By: %s\r\n\r\ndone",
	            e->len, (unsigned long long)e->hash, e->pieces, by);
	atomic_store(&e->finish_rc, fcgi_finish(r, 0));
}

static void ev_finish_timer(void *ud) { ev_respond(ud, "timer"); }

static void *ev_finish_thread(void *ud)
{
	sleep_ms(30);
	ev_respond(ud, "thread");
	return NULL;
}

static void ev_on_body(fcgi_req *r, const void *data, size_t len, void *ud)
{
	struct ev_req *e = ud;
	if (e->ends) {
		e->after_end++;
		return;
	}
	if (len) {
		e->hash = fnv(e->hash, data, len);
		e->len += len;
		e->pieces++;
		return;
	}
	e->ends++;
	/* finish later: request 1 from a timer on the loop, request 2 from another thread */
	if (fcgi_req_id(r) == 1) {
		e->timer_rc = fcgi_app_timer(e->app, 30, ev_finish_timer, r);
	} else if (pthread_create(&e->finisher, NULL, ev_finish_thread, r) == 0) {
		atomic_store(&e->has_finisher, 1);
	}
}

static void ev_handler(fcgi_req *r, void *ud)
{
	unsigned id = fcgi_req_id(r);
	struct ev_req *e = &g_ev[id < 4 ? id : 0];
	e->app = ud;
	e->hash = FNV_INIT;
	char c;
	if (fcgi_param(r, "PROBE")) /* only when no body can be there yet: it would take a byte */
		e->first_read = (int)fcgi_read(r, &c, 1);
	fcgi_req_set_data(r, e);
	e->data_ok = fcgi_req_data(r) == e;
	fcgi_req_on_body(r, ev_on_body, e);
	atomic_store(&e->handled, 1);
}

static void test_event_style(void **state)
{
	(void)state;
	memset(g_ev, 0, sizeof g_ev);
	for (int k = 0; k < 4; k++)
		atomic_store(&g_ev[k].finish_rc, 1);
	srv *s = srv_new();
	srv_listen_unix(s, "ev.sock");
	assert_int_equal(fcgi_app_set_handler(s->app, ev_handler, s->app), FCGI_OK);
	/* with a handler, fcgi_accept is the wrong call */
	fcgi_req *none = (fcgi_req *)&none;
	assert_int_equal(fcgi_accept(s->app, &none), FCGI_ESTATE);
	assert_null(none);
	srv_start_run(s);
	int fd = connect_unix(s->path);
	assert_true(fd >= 0);
	/* two requests multiplexed on one connection; the handler runs before any body */
	assert_int_equal(send_head(fd, 1, RAW_KEEP_CONN, "PROBE", "1", NULL), 0);
	assert_int_equal(send_head(fd, 2, RAW_KEEP_CONN, "PROBE", "1", NULL), 0);
	assert_true(WAIT_FOR(atomic_load(&g_ev[1].handled) && atomic_load(&g_ev[2].handled), REPLY_MS));
	assert_int_equal(g_ev[1].first_read, FCGI_EAGAIN);
	assert_int_equal(g_ev[2].first_read, FCGI_EAGAIN);
	assert_true(g_ev[1].data_ok && g_ev[2].data_ok);
	/* the bodies in pieces, interleaved, with pauses so they arrive apart */
	enum { CHUNK = 50000, CHUNKS = 5 };
	uint8_t *body = malloc(2 * CHUNK * CHUNKS);
	fill_random(body, 2 * CHUNK * CHUNKS);
	for (int i = 0; i < CHUNKS; i++) {
		assert_int_equal(send_stdin(fd, 1, body + i * CHUNK, CHUNK), 0);
		assert_int_equal(send_stdin(fd, 2, body + (CHUNKS + i) * CHUNK, CHUNK), 0);
		sleep_ms(20);
	}
	assert_int_equal(send_stdin(fd, 1, NULL, 0), 0);
	assert_int_equal(send_stdin(fd, 2, NULL, 0), 0);
	raw_resp r[2];
	raw_resp_init(r, 2, 1);
	raw_collect_result c = raw_collect(fd, r, 2, REPLY_MS);
	assert_int_equal(c.ended, 2);
	assert_string_equal(c.problem, "");
	char want[32];
	for (int k = 0; k < 2; k++) {
		assert_string_equal(r[k].problem, "");
		assert_int_equal(r[k].proto_status, FCGI_STATUS_COMPLETE);
		snprintf(want, sizeof want, "%d", CHUNK * CHUNKS);
		assert_string_equal(hdr(&r[k], "X-Len"), want);
		snprintf(want, sizeof want, "%016llx",
		         (unsigned long long)fnv(FNV_INIT, body + k * CHUNK * CHUNKS, CHUNK * CHUNKS));
		assert_string_equal(hdr(&r[k], "X-Hash"), want);
		assert_true(atoi(hdr(&r[k], "X-Pieces")) >= 2); /* delivered in pieces */
	}
	assert_string_equal(hdr(&r[0], "X-By"), "timer");
	assert_string_equal(hdr(&r[1], "X-By"), "thread");
	if (atomic_load(&g_ev[2].has_finisher))
		assert_true(join_bounded(g_ev[2].finisher, JOIN_MS));
	assert_true(WAIT_FOR(atomic_load(&g_ev[1].finish_rc) != 1, REPLY_MS));
	assert_int_equal(atomic_load(&g_ev[1].finish_rc), FCGI_OK);
	assert_int_equal(atomic_load(&g_ev[2].finish_rc), FCGI_OK);
	raw_resp_free(r, 2);
	/* a whole request at once: the body is buffered before the handler asks for it, and
	 * still comes through the callback (request 3 is answered by the finisher thread) */
	rbuf b = {0};
	rb_request(&b, 3, RAW_KEEP_CONN, NULL, "tiny", 4);
	assert_int_equal(raw_send_rb(fd, &b), 0);
	rb_free(&b);
	raw_resp r3;
	c = collect1(fd, 3, &r3);
	assert_complete(&c, &r3);
	assert_string_equal(hdr(&r3, "X-Len"), "4");
	raw_resp_free(&r3, 1);
	if (atomic_load(&g_ev[3].has_finisher))
		assert_true(join_bounded(g_ev[3].finisher, JOIN_MS));
	free(body);
	close(fd);
	srv_stop(s);
	assert_int_equal(s->run_rc, FCGI_OK);
	/* the loop thread is gone: its bookkeeping can be read */
	for (int k = 1; k <= 3; k++) {
		assert_int_equal(g_ev[k].ends, 1); /* one end call, last */
		assert_int_equal(g_ev[k].after_end, 0);
	}
	assert_int_equal(g_ev[1].timer_rc, FCGI_OK);
}

/* Timers through the public API: order, from another thread, dropped at free. */
static atomic_int g_tfired[8], g_tseq, g_tdropped;
static void tcb(void *ud)
{
	int i = (int)(intptr_t)ud;
	if (i == 7) {
		atomic_store(&g_tdropped, 1);
		return;
	}
	atomic_store(&g_tfired[i], atomic_fetch_add(&g_tseq, 1) + 1);
}

static void test_timers(void **state)
{
	(void)state;
	atomic_store(&g_tseq, 0);
	atomic_store(&g_tdropped, 0);
	for (int i = 0; i < 8; i++)
		atomic_store(&g_tfired[i], 0);
	srv *s = srv_new();
	assert_int_equal(fcgi_app_timer(s->app, 10, NULL, NULL), FCGI_EINVAL);
	srv_start_run(s);
	sleep_ms(20); /* the loop is waiting: timers added now must wake it */
	long long t0 = now_ms();
	assert_int_equal(fcgi_app_timer(s->app, 120, tcb, (void *)3), FCGI_OK);
	assert_int_equal(fcgi_app_timer(s->app, 40, tcb, (void *)1), FCGI_OK);
	assert_int_equal(fcgi_app_timer(s->app, 80, tcb, (void *)2), FCGI_OK);
	assert_int_equal(fcgi_app_timer(s->app, 0, tcb, (void *)0), FCGI_OK);
	assert_int_equal(fcgi_app_timer(s->app, 60000, tcb, (void *)7), FCGI_OK);
	assert_true(WAIT_FOR(atomic_load(&g_tfired[3]) != 0, REPLY_MS));
	long long took = now_ms() - t0;
	assert_int_equal(atomic_load(&g_tfired[0]), 1);
	assert_int_equal(atomic_load(&g_tfired[1]), 2);
	assert_int_equal(atomic_load(&g_tfired[2]), 3);
	assert_int_equal(atomic_load(&g_tfired[3]), 4);
	assert_true(took >= 110);
	/* stopping with a timer pending: the app stops (no connections to drain) and the
	 * timer is dropped without a call when the app is freed */
	srv_stop(s);
	assert_int_equal(atomic_load(&g_tdropped), 0);
}

/* ---------------------------------------------------------------- 7. embedding */

static void embed_handler(fcgi_req *r, void *ud)
{
	(void)ud;
	fcgi_puts(r, "Content-Type: text/plain\r\n\r\nembedded");
	fcgi_finish(r, 0);
}

static void test_embed_process(void **state)
{
	(void)state;
	srv *s = srv_new();
	srv_listen_unix(s, "embed.sock");
	assert_int_equal(fcgi_app_set_handler(s->app, embed_handler, NULL), FCGI_OK);
	int afd = fcgi_app_fd(s->app);
	if (afd < 0 && getenv("FCGIKIT_POLL")) {
		srv_stop(s);
		skip(); /* the poll(2) backend has no descriptor to embed */
	}
	assert_true(afd >= 0);
	/* nothing to do yet */
	struct pollfd pf = {.fd = afd, .events = POLLIN};
	assert_int_equal(poll(&pf, 1, 0), 0);
	/* everything in this one thread: the connection and the request wait in the kernel
	 * until the application's own loop sees the descriptor readable */
	int fd = connect_unix(s->path);
	assert_true(fd >= 0);
	assert_int_equal(send_request(fd, 3, RAW_KEEP_CONN, "abc", 3, NULL), 0);
	assert_int_equal(poll(&pf, 1, REPLY_MS), 1);
	assert_true(pf.revents & POLLIN);
	long long end = now_ms() + REPLY_MS;
	int passes = 0;
	while (now_ms() < end && raw_peek_state(fd, 0) != 2) {
		pf.revents = 0;
		poll(&pf, 1, 20);
		assert_int_equal(fcgi_app_process(s->app, 0), FCGI_OK);
		passes++;
	}
	raw_resp r;
	raw_collect_result c = collect1(fd, 3, &r);
	assert_complete(&c, &r);
	assert_non_null(memmem(r.out.p, r.out.len, "embedded", 8));
	raw_resp_free(&r, 1);
	/* stop: passes drain, then report FCGI_ESHUTDOWN */
	fcgi_app_stop(s->app);
	int rc = FCGI_OK;
	end = now_ms() + REPLY_MS;
	while (now_ms() < end && (rc = fcgi_app_process(s->app, 20)) == FCGI_OK)
		;
	assert_int_equal(rc, FCGI_ESHUTDOWN);
	assert_int_equal(raw_wait_close(fd, 3000), 1);
	close(fd);
	live_del(s);
	fcgi_app_free(s->app);
}

/* ---------------------------------------------------------------- 8. allow-list */

static void test_allow_list(void **state)
{
	(void)state;
	srv *s = srv_new();
	assert_int_equal(fcgi_app_allow(s->app, "10.0.0.1"), FCGI_OK);
	assert_int_equal(fcgi_app_listen(s->app, "127.0.0.1:0"), FCGI_OK);
	srv_listen_unix(s, "allow.sock"); /* Unix peers are always allowed */
	char local[64];
	assert_int_equal(fcgi_app_local_address(s->app, local, sizeof local), FCGI_OK);
	srv_start(s, 1, serve_hello);
	/* refused: accepted by the kernel, then closed at once without a byte */
	int fd = connect_addr(local);
	assert_true(fd >= 0);
	send_request(fd, 1, RAW_KEEP_CONN, NULL, 0, NULL);
	long long t0 = now_ms();
	assert_int_equal(raw_wait_close(fd, 3000), 1);
	assert_true(now_ms() - t0 < 2000);
	close(fd);
	/* the Unix socket of the same app lets its peer in */
	fd = connect_unix(s->path);
	raw_resp r;
	assert_int_equal(send_request(fd, 1, RAW_KEEP_CONN, NULL, 0, NULL), 0);
	raw_collect_result c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	close(fd);
	/* a network that holds 127.0.0.1 */
	assert_int_equal(fcgi_app_allow(s->app, "10.0.0.1, 127.0.0.0/8"), FCGI_OK);
	fd = connect_addr(local);
	assert_int_equal(send_request(fd, 1, RAW_KEEP_CONN, NULL, 0, NULL), 0);
	c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	assert_non_null(memmem(r.out.p, r.out.len, "hello", 5));
	raw_resp_free(&r, 1);
	close(fd);
	/* the list is checked at accept: an empty one lets everyone in again */
	assert_int_equal(fcgi_app_allow(s->app, "127.0.0.2"), FCGI_OK);
	fd = connect_addr(local);
	assert_int_equal(raw_wait_close(fd, 3000), 1);
	close(fd);
	assert_int_equal(fcgi_app_allow(s->app, ""), FCGI_OK);
	fd = connect_addr(local);
	assert_int_equal(send_request(fd, 1, RAW_KEEP_CONN, NULL, 0, NULL), 0);
	c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	close(fd);
	srv_stop(s);
}

static void test_allow_list_v6(void **state)
{
	(void)state;
	if (!spawn_have_ipv6())
		skip();
	srv *s = srv_new();
	assert_int_equal(fcgi_app_allow(s->app, "127.0.0.1"), FCGI_OK);
	assert_int_equal(fcgi_app_listen(s->app, "[::1]:0"), FCGI_OK);
	char local[64];
	assert_int_equal(fcgi_app_local_address(s->app, local, sizeof local), FCGI_OK);
	assert_true(!strncmp(local, "[::1]:", 6));
	srv_start(s, 1, serve_hello);
	int fd = connect_addr(local);
	assert_true(fd >= 0);
	assert_int_equal(raw_wait_close(fd, 3000), 1);
	close(fd);
	assert_int_equal(fcgi_app_allow(s->app, "::1"), FCGI_OK);
	fd = connect_addr(local);
	raw_resp r;
	assert_int_equal(send_request(fd, 1, RAW_KEEP_CONN, NULL, 0, NULL), 0);
	raw_collect_result c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	close(fd);
	srv_stop(s);

	/* a v6 socket that also takes IPv4 (bound to the v4-mapped loopback only) sees its
	 * peers as ::ffff:127.0.0.1: an IPv4 entry must match them */
	int ls = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(ls >= 0);
	int zero = 0;
	setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &a6.sin6_addr);
	if (bind(ls, (struct sockaddr *)&a6, sizeof a6) || listen(ls, 8)) {
		close(ls);
		skip(); /* no dual-stack sockets here */
	}
	socklen_t sl = sizeof a6;
	getsockname(ls, (struct sockaddr *)&a6, &sl);
	char v4[64];
	snprintf(v4, sizeof v4, "127.0.0.1:%u", ntohs(a6.sin6_port));
	s = srv_new();
	assert_int_equal(fcgi_app_allow(s->app, "10.0.0.0/8 ::1"), FCGI_OK);
	assert_int_equal(fcgi_app_listen_fd(s->app, ls), FCGI_OK);
	srv_start(s, 1, serve_hello);
	fd = connect_addr(v4);
	assert_true(fd >= 0);
	assert_int_equal(raw_wait_close(fd, 3000), 1);
	close(fd);
	assert_int_equal(fcgi_app_allow(s->app, "127.0.0.1"), FCGI_OK);
	fd = connect_addr(v4);
	assert_int_equal(send_request(fd, 1, RAW_KEEP_CONN, NULL, 0, NULL), 0);
	c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	close(fd);
	srv_stop(s);
}

/* ---------------------------------------------------------------- 9. graceful stop */

static void test_stop_drains(void **state)
{
	(void)state;
	srv *s = srv_new();
	srv_listen_unix(s, "drain.sock");
	gate_close();
	srv_start(s, 3, serve_echo);
	int busy = connect_unix(s->path), idle = connect_unix(s->path), kept = connect_unix(s->path);
	assert_true(busy >= 0 && idle >= 0 && kept >= 0);
	raw_resp r;
	raw_collect_result c;
	/* a kept-alive connection that has finished its request */
	assert_int_equal(send_request(kept, 1, RAW_KEEP_CONN, "k", 1, NULL), 0);
	c = collect1(kept, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	/* a request in flight, held by the application */
	assert_int_equal(send_request(busy, 1, RAW_KEEP_CONN, "in flight", 9, "HOLD", "after", NULL),
	                 0);
	assert_true(WAIT_FOR(atomic_load(&s->accepted) == 2, REPLY_MS));
	sleep_ms(50); /* the idle connection is accepted by now */

	fcgi_app_stop(s->app);
	/* connections without work close; new ones are refused */
	assert_int_equal(raw_wait_close(idle, 3000), 1);
	assert_int_equal(raw_wait_close(kept, 3000), 1);
	assert_true(WAIT_FOR(refused(s->path), 3000));
	struct stat st;
	assert_int_equal(stat(s->path, &st), -1); /* the socket file is gone */
	/* new requests on the busy connection are turned away while it drains */
	assert_int_equal(send_request(busy, 2, RAW_KEEP_CONN, "late", 4, NULL), 0);
	c = collect1(busy, 2, &r);
	assert_int_equal(c.ended, 1);
	assert_int_equal(r.proto_status, FCGI_STATUS_OVERLOADED);
	raw_resp_free(&r, 1);
	/* nobody has returned from fcgi_accept while a request is in flight */
	sleep_ms(100);
	assert_int_equal(atomic_load(&s->exited), 0);
	/* the request in flight still completes, then its connection closes */
	gate_open();
	c = collect1(busy, 1, &r);
	assert_complete(&c, &r);
	cgi_resp cr = body_of(&r);
	assert_int_equal(cr.body_len, 9);
	assert_memory_equal(cr.body, "in flight", 9);
	raw_resp_free(&r, 1);
	assert_int_equal(raw_wait_close(busy, 3000), 1);
	/* and then every thread's fcgi_accept returns FCGI_ESHUTDOWN */
	assert_true(WAIT_FOR(atomic_load(&s->exited) == 3, JOIN_MS));
	for (int i = 0; i < 3; i++)
		assert_int_equal(s->accept_rc[i], FCGI_ESHUTDOWN);
	close(busy);
	close(idle);
	close(kept);
	srv_stop(s);
	/* after the stop, accept keeps saying so */
}

static void test_stop_drain_timeout(void **state)
{
	(void)state;
	srv *s = srv_new();
	assert_int_equal(fcgi_app_set_opt(s->app, FCGI_OPT_DRAIN_TIMEOUT_MS, 300), FCGI_OK);
	srv_listen_unix(s, "drain2.sock");
	gate_close();
	reset_abort_probes();
	srv_start(s, 3, serve_echo);
	int fd = connect_unix(s->path);
	assert_int_equal(send_request(fd, 1, RAW_KEEP_CONN, "stuck", 5, "HOLD", "after", NULL), 0);
	assert_true(WAIT_FOR(atomic_load(&s->accepted) == 1, REPLY_MS));
	long long t0 = now_ms();
	fcgi_app_stop(s->app);
	/* the request never finishes in time: its connection is closed at the bound, and the
	 * threads that wait in fcgi_accept return */
	assert_int_equal(raw_wait_close(fd, 5000), 1);
	long long took = now_ms() - t0;
	if (took < 250 || took > 2500)
		fail_msg("connection closed %lld ms after the stop; the bound is 300 ms", took);
	assert_true(WAIT_FOR(atomic_load(&s->exited) == 2, 3000));
	took = now_ms() - t0;
	if (took > 3000)
		fail_msg("fcgi_accept returned %lld ms after the stop; the bound is 300 ms", took);
	/* the late application finishes into the void; then it too sees the shutdown */
	gate_open();
	assert_true(WAIT_FOR(atomic_load(&s->exited) == 3, JOIN_MS));
	for (int i = 0; i < 3; i++)
		assert_int_equal(s->accept_rc[i], FCGI_ESHUTDOWN);
	close(fd);
	srv_stop(s);
}

/* ---------------------------------------------------------------- 10. listening */

static void test_listen_port0_and_local_address(void **state)
{
	(void)state;
	srv *s = srv_new();
	char local[128];
	assert_int_equal(fcgi_app_local_address(s->app, local, sizeof local), FCGI_ESTATE);
	assert_int_equal(fcgi_app_listen(s->app, "127.0.0.1:0"), FCGI_OK);
	assert_int_equal(fcgi_app_local_address(s->app, local, sizeof local), FCGI_OK);
	assert_true(!strncmp(local, "127.0.0.1:", 10));
	int port = atoi(local + 10);
	assert_true(port > 0 && port < 65536);
	assert_int_equal(fcgi_app_local_address(s->app, local, 8), FCGI_ETOOBIG);
	/* a second listener does not change the first address */
	srv_listen_unix(s, "p0.sock");
	char again[128];
	assert_int_equal(fcgi_app_local_address(s->app, again, sizeof again), FCGI_OK);
	assert_int_equal(atoi(again + 10), port);
	srv_start(s, 2, serve_hello);
	int fd = connect_addr(again);
	assert_true(fd >= 0);
	raw_resp r;
	assert_int_equal(send_request(fd, 1, RAW_KEEP_CONN, NULL, 0, NULL), 0);
	raw_collect_result c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	close(fd);
	srv_stop(s);
	/* a Unix listener reports its path */
	s = srv_new();
	srv_listen_unix(s, "only.sock");
	assert_int_equal(fcgi_app_local_address(s->app, local, sizeof local), FCGI_OK);
	char want[192];
	snprintf(want, sizeof want, "unix:%s", s->path);
	assert_string_equal(local, want);
	live_del(s);
	fcgi_app_free(s->app);
	/* the socket file is removed with the app */
	struct stat st;
	assert_int_equal(stat(want + 5, &st), -1);
}

static void test_listen_unix_files(void **state)
{
	(void)state;
	fcgi_app *a, *b;
	char path[128], addr[160];
	path_in_dir(path, sizeof path, "mode.sock");
	snprintf(addr, sizeof addr, "unix:%s", path);
	assert_int_equal(fcgi_app_new(&a), FCGI_OK);
	assert_int_equal(fcgi_app_set_opt(a, FCGI_OPT_UNIX_MODE, 0600), FCGI_OK);
	assert_int_equal(fcgi_app_listen(a, addr), FCGI_OK);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	/* a live socket is not taken over */
	assert_int_equal(fcgi_app_new(&b), FCGI_OK);
	assert_int_equal(fcgi_app_listen(b, addr), FCGI_ESYS);
	fcgi_app_free(a);
	assert_int_equal(stat(path, &st), -1);
	/* a stale one (its process gone) is replaced */
	int ls = unix_listener(path);
	assert_true(ls >= 0);
	close(ls); /* the file stays, nobody listens */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(fcgi_app_listen(b, path), FCGI_OK); /* the "/path" form */
	int fd = connect_unix(path);
	assert_true(fd >= 0);
	close(fd);
	/* a path that is not a socket is left alone */
	char file[128];
	path_in_dir(file, sizeof file, "plain-file");
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(addr, sizeof addr, "unix:%s", file);
	assert_int_equal(fcgi_app_listen(b, addr), FCGI_EADDR);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(fcgi_app_listen(b, "no-port-here"), FCGI_EADDR);
	fcgi_app_free(b);
}

static void test_listen_fd(void **state)
{
	(void)state;
	char path[128];
	path_in_dir(path, sizeof path, "own.sock");
	int ls = unix_listener(path);
	assert_true(ls >= 0);
	srv *s = srv_new();
	/* what is not a listening socket is refused */
	int plain = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fcgi_app_listen_fd(s->app, plain), FCGI_EINVAL);
	assert_int_equal(fcgi_app_listen_fd(s->app, p[0]), FCGI_EINVAL);
	assert_int_equal(fcgi_app_listen_fd(s->app, -1), FCGI_EINVAL);
	close(plain);
	close(p[0]);
	close(p[1]);
	assert_int_equal(fcgi_app_listen_fd(s->app, ls), FCGI_OK);
	assert_true(fcntl(ls, F_GETFL) & O_NONBLOCK); /* the app owns it now */
	srv_start(s, 2, serve_echo);
	int fd = connect_unix(path);
	assert_true(fd >= 0);
	raw_resp r;
	assert_int_equal(send_request(fd, 1, RAW_KEEP_CONN, "fd", 2, NULL), 0);
	raw_collect_result c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	close(fd);
	srv_stop(s);
	/* the app closed the socket it adopted (nothing else opened a descriptor since) */
	errno = 0;
	assert_int_equal(fcntl(ls, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
}

/* Serves one request through whatever the app listens on at path; returns 1 on success.
 * No assertions: callers restore descriptors first. */
static int serve_one_at(srv *s, const char *path)
{
	srv_start(s, 1, serve_hello);
	int fd = connect_unix(path);
	int ok = 0;
	if (fd >= 0 && send_request(fd, 1, RAW_KEEP_CONN, NULL, 0, NULL) == 0) {
		raw_resp r;
		raw_resp_init(&r, 1, 1);
		raw_collect_result c = raw_collect(fd, &r, 1, REPLY_MS);
		ok = c.ended == 1 && r.proto_status == 0 && memmem(r.out.p, r.out.len, "hello", 5);
		raw_resp_free(&r, 1);
	}
	if (fd >= 0)
		close(fd);
	fcgi_app_stop(s->app);
	if (srv_join(s))
		ok = 0;
	return ok;
}

static void test_listen_inherited_systemd(void **state)
{
	(void)state;
	char path[128];
	path_in_dir(path, sizeof path, "sd.sock");
	/* keep whatever this process has on fd 3, and put it back afterwards */
	int saved3 = fcntl(3, F_DUPFD_CLOEXEC, 20);
	int ls = unix_listener(path);
	assert_true(ls >= 0);
	move_fd(ls, 3);
	char pid[32];
	snprintf(pid, sizeof pid, "%ld", (long)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "1", 1);
	setenv("LISTEN_FDNAMES", "fcgi", 1);
	/* the app is made after fd 3 is in place, so its own descriptors do not land there */
	srv *s = srv_new();
	int adopted = fcgi_app_listen_inherited(s->app);
	int env_cleared = !getenv("LISTEN_PID") && !getenv("LISTEN_FDS") && !getenv("LISTEN_FDNAMES");
	int served = adopted == 1 && serve_one_at(s, path);
	live_del(s);
	fcgi_app_free(s->app);
	int closed3 = fcntl(3, F_GETFD) == -1;
	/* LISTEN_PID naming another process: not ours, nothing adopted from fd 3 */
	ls = unix_listener(path);
	move_fd(ls, 3);
	int saved0 = fcntl(0, F_DUPFD_CLOEXEC, 20);
	move_fd(open("/dev/null", O_RDONLY | O_CLOEXEC), 0);
	snprintf(pid, sizeof pid, "%ld", (long)getpid() + 100000);
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "1", 1);
	fcgi_app *other;
	int other_rc = fcgi_app_new(&other);
	int foreign = other_rc ? other_rc : fcgi_app_listen_inherited(other);
	if (!other_rc)
		fcgi_app_free(other);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	/* restore fds 0 and 3 before asserting anything */
	move_fd(saved0, 0);
	if (saved3 >= 0)
		move_fd(saved3, 3);
	else
		close(3);
	assert_int_equal(adopted, 1);
	assert_true(env_cleared);
	assert_true(served);
	assert_true(closed3);
	assert_int_equal(foreign, FCGI_ENOTFCGI);
}

static void test_listen_inherited_fd0(void **state)
{
	(void)state;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	char path[128];
	path_in_dir(path, sizeof path, "fd0.sock");
	int saved0 = fcntl(0, F_DUPFD_CLOEXEC, 20);
	/* nothing on fd 0 (/dev/null): plain CGI, not FastCGI */
	move_fd(open("/dev/null", O_RDONLY | O_CLOEXEC), 0);
	fcgi_app *app;
	int rc_new = fcgi_app_new(&app);
	int rc_null = rc_new ? rc_new : fcgi_app_listen_inherited(app);
	if (!rc_new)
		fcgi_app_free(app);
	/* a connected socket on fd 0 has a peer: not a listening socket either */
	int sp[2] = {-1, -1};
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp);
	dup2(sp[0], 0);
	rc_new = fcgi_app_new(&app);
	int rc_pair = rc_new ? rc_new : fcgi_app_listen_inherited(app);
	if (!rc_new)
		fcgi_app_free(app);
	close(sp[0]);
	close(sp[1]);
	/* a listening socket on fd 0, as web servers and spawners hand it */
	move_fd(unix_listener(path), 0);
	srv *s = &g_pool[3];
	memset(s, 0, sizeof *s);
	rc_new = fcgi_app_new(&s->app);
	int rc_listen = rc_new ? rc_new : fcgi_app_listen_inherited(s->app);
	int served = rc_listen == 1 && serve_one_at(s, path);
	if (!rc_new)
		fcgi_app_free(s->app);
	s->app = NULL;
	if (saved0 >= 0)
		move_fd(saved0, 0);
	else
		close(0);
	assert_int_equal(rc_null, FCGI_ENOTFCGI);
	assert_int_equal(rc_pair, FCGI_ENOTFCGI);
	assert_int_equal(rc_listen, 1);
	assert_true(served);
}

/* ---------------------------------------------------------------- 11. errors and options */

static void test_error_texts(void **state)
{
	(void)state;
	struct {
		int code;
		const char *name, *text;
	} all[] = {
#define X(name, code, text) {code, "FCGI_" #name, text},
	    FCGI_ERRNO_MAP(X)
#undef X
	};
	size_t n = sizeof all / sizeof all[0];
	assert_int_equal(n, 18);
	for (size_t i = 0; i < n; i++) {
		assert_true(all[i].code < 0);
		assert_string_equal(fcgi_strerror(all[i].code), all[i].text);
		assert_string_equal(fcgi_err_name(all[i].code), all[i].name);
		for (size_t j = 0; j < i; j++) {
			assert_int_not_equal(all[i].code, all[j].code);
			assert_string_not_equal(fcgi_err_name(all[i].code), fcgi_err_name(all[j].code));
		}
	}
	assert_string_equal(fcgi_err_name(FCGI_OK), "FCGI_OK");
	assert_string_equal(fcgi_strerror(FCGI_OK), "success");
	/* never NULL, whatever the value */
	const int odd[] = {-19, -1000, 1, 42, -2147483647 - 1, 2147483647};
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
		assert_non_null(fcgi_strerror(odd[i]));
		assert_non_null(fcgi_err_name(odd[i]));
		assert_true(strlen(fcgi_strerror(odd[i])) > 0);
	}
	assert_string_equal(fcgi_version(), FCGIKIT_VERSION_STRING);
}

static void test_options(void **state)
{
	(void)state;
	fcgi_app *app;
	assert_int_equal(fcgi_app_new(&app), FCGI_OK);
	/* the defaults fcgikit.h documents */
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_MAX_CONNS), 1024);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_MAX_REQS), 1024);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_MAX_REQS_PER_CONN), 256);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_MPXS_CONNS), 1);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_MAX_PARAMS_BYTES), 65536);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_MAX_PARAMS_COUNT), 512);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_BODY_BUFFER), 262144);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_OUT_BUFFER), 262144);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_IDLE_TIMEOUT_MS), 300000);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_READ_TIMEOUT_MS), 60000);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_WRITE_TIMEOUT_MS), 60000);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_DRAIN_TIMEOUT_MS), 10000);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_BACKLOG), 1024);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_UNIX_MODE), 0666);
	/* bad values and unknown options */
	assert_int_equal(fcgi_app_set_opt(app, FCGI_OPT_MAX_REQS, -1), FCGI_EINVAL);
	assert_int_equal(fcgi_app_set_opt(app, FCGI_OPT_MAX_REQS, 0), FCGI_EINVAL);
	assert_int_equal(fcgi_app_set_opt(app, FCGI_OPT_BODY_BUFFER, 0), FCGI_EINVAL);
	assert_int_equal(fcgi_app_set_opt(app, (fcgi_opt)0, 1), FCGI_EINVAL);
	assert_int_equal(fcgi_app_set_opt(app, (fcgi_opt)99, 1), FCGI_EINVAL);
	assert_int_equal(fcgi_app_get_opt(app, (fcgi_opt)99), FCGI_EINVAL);
	assert_int_equal(fcgi_app_set_opt(app, FCGI_OPT_UNIX_MODE, 010000), FCGI_EINVAL);
	assert_int_equal(fcgi_app_set_opt(app, FCGI_OPT_MAX_REQS_PER_CONN, 65536), FCGI_EINVAL);
	/* 0 means "none" for the timeouts, "off" for multiplexing */
	assert_int_equal(fcgi_app_set_opt(app, FCGI_OPT_IDLE_TIMEOUT_MS, 0), FCGI_OK);
	assert_int_equal(fcgi_app_set_opt(app, FCGI_OPT_MPXS_CONNS, 0), FCGI_OK);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_MPXS_CONNS), 0);
	assert_int_equal(fcgi_app_set_opt(app, FCGI_OPT_MAX_REQS, 5), FCGI_OK);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_MAX_REQS), 5);
	assert_int_equal(fcgi_app_get_opt(app, FCGI_OPT_MAX_REQS_PER_CONN), 256);
	fcgi_app_free(app);
	fcgi_app_free(NULL);
}

/* ---------------------------------------------------------------- 12. flow control */

static void test_body_flow_control(void **state)
{
	(void)state;
	srv *s = srv_new();
	assert_int_equal(fcgi_app_set_opt(s->app, FCGI_OPT_BODY_BUFFER, 65536), FCGI_OK);
	srv_listen_unix(s, "flow.sock");
	gate_close();
	srv_start(s, 3, serve_echo);
	int fd = connect_unix(s->path);
	assert_true(fd >= 0);
	const size_t blen = 4u << 20;
	uint8_t *body = malloc(blen);
	assert_non_null(body);
	fill_random(body, blen);
	rbuf params = {0}, req = {0};
	rb_pair(&params, "HOLD", "before");
	rb_pair(&params, "SLOW", "1");
	rb_pair(&params, "NOECHO", "1");
	rb_request(&req, 1, RAW_KEEP_CONN, &params, body, blen);
	/* the application does not read yet: what the connection takes in stays bounded (the
	 * kernel's socket buffers plus the 64 KiB body buffer and one read), far below 4 MiB */
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	size_t sent = 0;
	long long stalled_since = 0;
	long long end = now_ms() + REPLY_MS;
	while (sent < req.len && now_ms() < end) {
		ssize_t w = send(fd, req.p + sent, req.len - sent, MSG_NOSIGNAL);
		if (w > 0) {
			sent += (size_t)w;
			stalled_since = 0;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			break;
		if (!stalled_since)
			stalled_since = now_ms();
		else if (now_ms() - stalled_since >= 300)
			break;
		sleep_ms(5);
	}
	fcntl(fd, F_SETFL, fl);
	if (sent >= (size_t)(3u << 19))
		fail_msg("%zu bytes of a 4 MiB body taken in while the application read nothing "
		         "(body buffer 64 KiB): input did not pause",
		         sent);
	/* the loop is not blocked by the paused connection: others are served meanwhile */
	int other = connect_unix(s->path);
	raw_resp r;
	assert_int_equal(send_request(other, 1, RAW_KEEP_CONN, "meanwhile", 9, NULL), 0);
	raw_collect_result c = collect1(other, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	close(other);
	/* now the application reads, slowly; the rest goes in as it makes room */
	gate_open();
	assert_int_equal(raw_send(fd, req.p + sent, req.len - sent), 0);
	c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	char want[32];
	snprintf(want, sizeof want, "%016llx", (unsigned long long)fnv(FNV_INIT, body, blen));
	assert_string_equal(hdr(&r, "X-Read-Rc"), "0");
	assert_string_equal(hdr(&r, "X-Hash"), want);
	raw_resp_free(&r, 1);
	rb_free(&params);
	rb_free(&req);
	free(body);
	close(fd);
	srv_stop(s);
}

/* The response side: a web server that does not read its answer holds the application's
 * writer back (bounded output buffer), and gets every byte once it reads. */
static atomic_long g_out_progress;
static atomic_int g_out_rc;

static uint8_t pattern_byte(size_t i) { return (uint8_t)((i * 2654435761u) >> 13); }

static void serve_big_out(srv *s, fcgi_req *r)
{
	(void)s;
	const char *len_s = fcgi_param(r, "OUT");
	size_t total = len_s ? (size_t)strtoul(len_s, NULL, 10) : 0, off = 0;
	uint8_t chunk[16384];
	int rc = fcgi_puts(r, "Content-Type: application/octet-stream\r\n\r\n");
	while (!rc && off < total) {
		size_t n = total - off < sizeof chunk ? total - off : sizeof chunk;
		for (size_t i = 0; i < n; i++)
			chunk[i] = pattern_byte(off + i);
		rc = fcgi_write(r, chunk, n);
		if (!rc) {
			off += n;
			atomic_store(&g_out_progress, (long)off);
		}
	}
	atomic_store(&g_out_rc, rc);
	fcgi_finish(r, 0);
}

static void test_response_flow_control(void **state)
{
	(void)state;
	atomic_store(&g_out_progress, 0);
	atomic_store(&g_out_rc, 1);
	srv *s = srv_new();
	assert_int_equal(fcgi_app_set_opt(s->app, FCGI_OPT_OUT_BUFFER, 65536), FCGI_OK);
	srv_listen_unix(s, "out.sock");
	srv_start(s, 2, serve_big_out);
	int fd = connect_unix(s->path);
	const size_t total = 8u << 20;
	char len_s[32];
	snprintf(len_s, sizeof len_s, "%zu", total);
	assert_int_equal(send_request(fd, 1, RAW_KEEP_CONN, NULL, 0, "OUT", len_s, NULL), 0);
	/* not reading: the writer gets only as far as the buffers let it */
	assert_true(WAIT_FOR(atomic_load(&g_out_progress) > 0, REPLY_MS));
	long last = -1, now_p;
	long long end = now_ms() + REPLY_MS;
	while ((now_p = atomic_load(&g_out_progress)) != last && now_ms() < end) {
		last = now_p;
		sleep_ms(200);
	}
	if (now_p >= (long)(3u << 19))
		fail_msg("the application wrote %ld bytes of 8 MiB to a peer that reads nothing "
		         "(output buffer 64 KiB): writers are not held back",
		         now_p);
	assert_int_equal(atomic_load(&g_out_rc), 1); /* still writing, not failed */
	/* reading now: everything arrives, intact and in order */
	raw_resp r;
	raw_collect_result c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	cgi_resp cr = body_of(&r);
	assert_int_equal(cr.body_len, total);
	size_t bad = 0;
	for (size_t i = 0; i < total; i++)
		bad += cr.body[i] != pattern_byte(i);
	assert_int_equal(bad, 0);
	assert_int_equal(atomic_load(&g_out_rc), FCGI_OK);
	raw_resp_free(&r, 1);
	close(fd);
	srv_stop(s);
}

/* A peer that never reads its answer: the writer gives up after FCGI_OPT_WRITE_TIMEOUT_MS
 * and the connection is closed; the process goes on. */
static void test_write_timeout(void **state)
{
	(void)state;
	atomic_store(&g_out_progress, 0);
	atomic_store(&g_out_rc, 1);
	srv *s = srv_new();
	assert_int_equal(fcgi_app_set_opt(s->app, FCGI_OPT_OUT_BUFFER, 65536), FCGI_OK);
	assert_int_equal(fcgi_app_set_opt(s->app, FCGI_OPT_WRITE_TIMEOUT_MS, 300), FCGI_OK);
	srv_listen_unix(s, "wto.sock");
	srv_start(s, 2, serve_big_out);
	int fd = connect_unix(s->path);
	assert_int_equal(send_request(fd, 1, RAW_KEEP_CONN, NULL, 0, "OUT", "8388608", NULL), 0);
	long long t0 = now_ms();
	if (!WAIT_FOR(atomic_load(&g_out_rc) != 1, 5000))
		fail_msg("fcgi_write still blocked %lld ms after the peer stopped reading; the write "
		         "timeout is 300 ms",
		         now_ms() - t0);
	int rc = atomic_load(&g_out_rc);
	if (rc != FCGI_ETIMEDOUT && rc != FCGI_ECLOSED)
		fail_msg("fcgi_write to a peer that never reads: %s", fcgi_err_name(rc));
	assert_int_equal(raw_wait_close(fd, 5000), 1);
	close(fd);
	/* others are served */
	fd = connect_unix(s->path);
	raw_resp r;
	assert_int_equal(send_request(fd, 1, RAW_KEEP_CONN, NULL, 0, "OUT", "10", NULL), 0);
	raw_collect_result c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	close(fd);
	srv_stop(s);
}

/* ---------------------------------------------------------------- 13. timeouts */

static void test_idle_timeout(void **state)
{
	(void)state;
	srv *s = srv_new();
	assert_int_equal(fcgi_app_set_opt(s->app, FCGI_OPT_IDLE_TIMEOUT_MS, 300), FCGI_OK);
	srv_listen_unix(s, "idle.sock");
	srv_start(s, 1, serve_echo);
	/* a connection that never sends anything */
	int fd = connect_unix(s->path);
	long long t0 = now_ms();
	assert_int_equal(raw_wait_close(fd, 3000), 1);
	long long took = now_ms() - t0;
	if (took < 250 || took > 1000)
		fail_msg("idle connection closed after %lld ms; the timeout is 300 ms", took);
	close(fd);
	/* a kept-alive connection after its request */
	fd = connect_unix(s->path);
	raw_resp r;
	assert_int_equal(send_request(fd, 1, RAW_KEEP_CONN, "x", 1, NULL), 0);
	raw_collect_result c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	t0 = now_ms();
	assert_int_equal(raw_wait_close(fd, 3000), 1);
	took = now_ms() - t0;
	if (took < 250 || took > 1000)
		fail_msg("kept-alive connection closed %lld ms after its answer; timeout 300 ms", took);
	close(fd);
	/* a connection in the middle of a request is not idle: the read timeout governs it */
	fd = connect_unix(s->path);
	assert_int_equal(send_head(fd, 1, RAW_KEEP_CONN, NULL), 0);
	assert_int_equal(send_stdin(fd, 1, "part", 4), 0);
	assert_int_equal(raw_peek_state(fd, 900), 0);
	assert_int_equal(send_stdin(fd, 1, NULL, 0), 0);
	c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	close(fd);
	srv_stop(s);
}

static void test_read_timeout(void **state)
{
	(void)state;
	srv *s = srv_new();
	assert_int_equal(fcgi_app_set_opt(s->app, FCGI_OPT_READ_TIMEOUT_MS, 300), FCGI_OK);
	srv_listen_unix(s, "rto.sock");
	srv_start(s, 1, serve_echo);
	/* a peer that stops inside a record */
	int fd = connect_unix(s->path);
	rbuf b = {0};
	rb_begin(&b, 1, RAW_RESPONDER, RAW_KEEP_CONN);
	assert_int_equal(raw_send(fd, b.p, 5), 0);
	rb_free(&b);
	long long t0 = now_ms();
	assert_int_equal(raw_wait_close(fd, 3000), 1);
	long long took = now_ms() - t0;
	if (took < 250 || took > 1500)
		fail_msg("stalled peer closed after %lld ms; the read timeout is 300 ms", took);
	close(fd);
	srv_stop(s);
}

/* ---------------------------------------------------------------- 14. threads and conns */

/* Holds each request until four are inside at once (or a bound passes). */
static void serve_meet(srv *s, fcgi_req *r)
{
	WAIT_FOR(atomic_load(&s->in_fn) >= 4, 3000);
	serve_echo(s, r);
}

static void test_multiplexed_requests_served_in_parallel(void **state)
{
	(void)state;
	srv *s = srv_new();
	srv_listen_unix(s, "mpx.sock");
	srv_start(s, 4, serve_meet);
	int fd = connect_unix(s->path);
	rbuf b = {0};
	for (unsigned id = 1; id <= 4; id++) {
		char body[16];
		int n = snprintf(body, sizeof body, "req %u", id);
		rb_request(&b, id, RAW_KEEP_CONN, NULL, body, (size_t)n);
	}
	assert_int_equal(raw_send_rb(fd, &b), 0);
	rb_free(&b);
	raw_resp r[4];
	raw_resp_init(r, 4, 1);
	raw_collect_result c = raw_collect(fd, r, 4, REPLY_MS);
	assert_int_equal(c.ended, 4);
	assert_string_equal(c.problem, "");
	for (unsigned k = 0; k < 4; k++) {
		assert_string_equal(r[k].problem, "");
		cgi_resp cr = body_of(&r[k]);
		char want[16];
		int n = snprintf(want, sizeof want, "req %u", k + 1);
		assert_int_equal(cr.body_len, (size_t)n);
		assert_memory_equal(cr.body, want, (size_t)n);
	}
	/* four threads had requests of one connection at the same time */
	assert_int_equal(atomic_load(&s->max_in_fn), 4);
	raw_resp_free(r, 4);
	close(fd);
	srv_stop(s);
}

/* A thread busy with one request (here: waiting on something outside the library, as a
 * database call would) must not keep the other threads from taking new requests: one of the
 * idle threads runs the loop meanwhile. */
/* Holds a handler on connection a (the handler becomes the server's accepted-th), then times
 * a request on connection b; returns the milliseconds b took and sets *ended when it was
 * answered. Releases the held handler, checks its answer, closes both connections. */
static long long time_beside_held(srv *s, int a, int b, int accepted, int pause_ms, int *ended)
{
	assert_int_equal(send_request(a, 1, RAW_KEEP_CONN, "slow", 4, "HOLD", "after", NULL), 0);
	assert_true(WAIT_FOR(atomic_load(&s->accepted) == accepted, REPLY_MS));
	sleep_ms(pause_ms);
	long long t0 = now_ms();
	assert_int_equal(send_request(b, 1, RAW_KEEP_CONN, "quick", 5, NULL), 0);
	raw_resp r;
	raw_resp_init(&r, 1, 1);
	raw_collect_result c = raw_collect(b, &r, 1, 3000);
	long long took = now_ms() - t0;
	*ended = c.ended;
	raw_resp_free(&r, 1);
	gate_open();
	c = collect1(a, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	close(a);
	close(b);
	return took;
}

static void test_busy_thread_does_not_stall_others(void **state)
{
	(void)state;
	srv *s = srv_new();
	srv_listen_unix(s, "busy.sock");
	srv_start(s, 3, serve_echo);
	int a = connect_unix(s->path), b = connect_unix(s->path);
	assert_true(a >= 0 && b >= 0);
	/* two idle threads are there to serve b */
	int ended;
	long long took = time_beside_held(s, a, b, 1, 20, &ended);
	if (!ended)
		fail_msg("a request on another connection got no answer in %lld ms while one thread "
		         "was busy and two were idle in fcgi_accept",
		         took);
	srv_stop(s);
}

/* Short handlers make the wake policy its most frugal (no thread woken for them, the guard
 * on its longest watch); a handler that then blocks after all must still not hold up the
 * requests behind it for long: the guard notices the stall (lib/app/wake.h). */
static void test_stall_after_short_handlers(void **state)
{
	(void)state;
	enum { WARM = 300 };
	srv *s = srv_new();
	srv_listen_unix(s, "stall.sock");
	srv_start(s, 4, serve_echo);
	int a = connect_unix(s->path), b = connect_unix(s->path);
	assert_true(a >= 0 && b >= 0);
	raw_resp r;
	raw_collect_result c;
	for (int i = 0; i < WARM; i++) {
		int fd = i % 2 ? a : b;
		assert_int_equal(send_request(fd, 1, RAW_KEEP_CONN, "w", 1, NULL), 0);
		c = collect1(fd, 1, &r);
		assert_complete(&c, &r);
		raw_resp_free(&r, 1);
	}
	int ended;
	long long took = time_beside_held(s, a, b, WARM + 1, 50, &ended);
	/* the guard's longest watch is FK_WAKE_GUARD_MAX_MS; a second leaves room for a loaded
	 * machine, and none of it if nobody watched (the answer would wait for the gate) */
	if (!ended || took > 1000)
		fail_msg("with one handler stuck after %d short ones, a request on another "
		         "connection took %lld ms (answered: %d)", WARM, took, ended);
	srv_stop(s);
}

/* Handlers that block (a database call, a sleep) get every thread at once: the wake policy
 * (lib/app/wake.h) holds threads back only while handlers compute, and must notice. */
static atomic_int g_entry_conc[256];
static atomic_int g_entries;

static void serve_blocking(srv *s, fcgi_req *r)
{
	int k = atomic_fetch_add(&g_entries, 1);
	if (k < 256)
		atomic_store(&g_entry_conc[k], atomic_load(&s->in_fn));
	sleep_ms(10);
	serve_echo(s, r);
}

static void test_blocking_handlers_get_every_thread(void **state)
{
	(void)state;
	enum { CONNS = 16, ROUNDS = 8 };
	srv *s = srv_new();
	atomic_store(&g_entries, 0);
	srv_listen_unix(s, "blocking.sock");
	srv_start(s, 8, serve_blocking);
	int fds[CONNS];
	for (int i = 0; i < CONNS; i++) {
		fds[i] = connect_unix(s->path);
		assert_true(fds[i] >= 0);
	}
	for (int round = 0; round < ROUNDS; round++) {
		for (int i = 0; i < CONNS; i++)
			assert_int_equal(send_request(fds[i], 1, RAW_KEEP_CONN, "x", 1, NULL), 0);
		for (int i = 0; i < CONNS; i++) {
			raw_resp r;
			raw_collect_result c = collect1(fds[i], 1, &r);
			assert_complete(&c, &r);
			raw_resp_free(&r, 1);
		}
	}
	/* after the first rounds (the policy learns from them), a request's handler starts
	 * beside most of the other seven threads' */
	int n = atomic_load(&g_entries), sum = 0, cnt = 0;
	assert_int_equal(n, CONNS * ROUNDS);
	for (int k = 4 * CONNS; k < n; k++, cnt++)
		sum += atomic_load(&g_entry_conc[k]);
	if (sum < 4 * cnt)
		fail_msg("blocking handlers ran %.1f at a time on average with 8 threads and %d "
		         "requests waiting",
		         (double)sum / cnt, CONNS);
	for (int i = 0; i < CONNS; i++)
		close(fds[i]);
	srv_stop(s);
}

/* One thread, many kept-alive connections: none of them holds the thread. */
static void test_idle_conns_hold_no_thread(void **state)
{
	(void)state;
	enum { CONNS = 20 };
	srv *s = srv_new();
	srv_listen_unix(s, "kept.sock");
	srv_start(s, 1, serve_echo);
	int fds[CONNS];
	raw_resp r;
	raw_collect_result c;
	for (int i = 0; i < CONNS; i++) {
		fds[i] = connect_unix(s->path);
		assert_true(fds[i] >= 0);
		assert_int_equal(send_request(fds[i], 1, RAW_KEEP_CONN, "a", 1, NULL), 0);
		c = collect1(fds[i], 1, &r);
		assert_complete(&c, &r);
		raw_resp_free(&r, 1);
	}
	/* a new connection is served promptly although twenty are kept open */
	int fd = connect_unix(s->path);
	long long t0 = now_ms();
	assert_int_equal(send_request(fd, 1, RAW_KEEP_CONN, "new", 3, NULL), 0);
	c = collect1(fd, 1, &r);
	assert_complete(&c, &r);
	raw_resp_free(&r, 1);
	assert_true(now_ms() - t0 < 2000);
	close(fd);
	/* and every kept connection still works, in reverse order */
	for (int i = CONNS - 1; i >= 0; i--) {
		assert_int_equal(send_request(fds[i], 2, RAW_KEEP_CONN, "b", 1, NULL), 0);
		c = collect1(fds[i], 2, &r);
		assert_complete(&c, &r);
		raw_resp_free(&r, 1);
		close(fds[i]);
	}
	srv_stop(s);
}

/* ---------------------------------------------------------------- fixtures */

static int group_setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof g_dir, "/tmp/fcgikit-test-app.XXXXXX");
	return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int test_setup(void **state)
{
	(void)state;
	alarm(WATCHDOG_S);
	gate_close();
	return 0;
}

/* After a failure: release held requests, stop and free what the test left running. */
static int test_teardown(void **state)
{
	(void)state;
	gate_open();
	for (int i = 0; i < 4; i++) {
		srv *s = g_live[i];
		if (!s)
			continue;
		g_live[i] = NULL;
		if (!s->app)
			continue;
		fcgi_app_stop(s->app);
		if (srv_join(s) == 0)
			fcgi_app_free(s->app);
		s->app = NULL;
	}
	alarm(0);
	return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	if (getenv("TEST_FILTER")) /* e.g. TEST_FILTER='test_abort*' */
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	unsetenv("FCGI_WEB_SERVER_ADDRS");
	const struct CMUnitTest tests[] = {
	    T(test_full_request),
	    T(test_keep_conn),
	    T(test_get_values_defaults),
	    T(test_get_values_and_cant_mpx),
	    T(test_max_reqs_overloaded),
	    T(test_max_reqs_sequential_never_overloaded),
	    T(test_abort),
	    T(test_abort_by_close),
	    T(test_event_style),
	    T(test_timers),
	    T(test_embed_process),
	    T(test_allow_list),
	    T(test_allow_list_v6),
	    T(test_stop_drains),
	    T(test_stop_drain_timeout),
	    T(test_listen_port0_and_local_address),
	    T(test_listen_unix_files),
	    T(test_listen_fd),
	    T(test_listen_inherited_systemd),
	    T(test_listen_inherited_fd0),
	    T(test_error_texts),
	    T(test_options),
	    T(test_body_flow_control),
	    T(test_response_flow_control),
	    T(test_write_timeout),
	    T(test_idle_timeout),
	    T(test_read_timeout),
	    T(test_multiplexed_requests_served_in_parallel),
	    T(test_busy_thread_does_not_stall_others),
	    T(test_blocking_handlers_get_every_thread),
	    T(test_stall_after_short_handlers),
	    T(test_idle_conns_hold_no_thread),
	};
	return cmocka_run_group_tests_name("app", tests, group_setup, group_teardown);
}
