/* bench.c — `fcgikit bench`: wrk for FastCGI. Options and output: doc/fcgikit-bench.1.
 *
 * Built to cost little per request, so that on a small machine the application is what is
 * measured:
 *  - every request is encoded once, before the run: one byte string per request id
 *    (BEGIN + PARAMS + STDIN), sent as is; ids 1..m on each connection;
 *  - one writev per connection per batch of freed ids, one read per readiness event;
 *  - non-blocking sockets on lib/ev's epoll, one loop per thread, nothing shared between
 *    threads but a ticket counter for -n;
 *  - responses go through the codec's fk_cli session (zero-copy); only the CGI head's first
 *    bytes are copied, to find the status;
 *  - no allocation per request; latencies go to a constant-size log-linear histogram.
 */
#include <errno.h>
#include <fcgikit.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cgi.h"
#include "codec/client.h"
#include "ev/ev.h"
#include "hist.h"
#include "tool.h"
#include "util/addr.h"

/* Error kinds, in report order. */
enum {
	E_CONNECT,     /* connect failed (refused, no such socket, ...) */
	E_CLOSED,      /* the application closed a connection with requests in flight */
	E_READ,        /* read or write failed */
	E_TIMEOUT,     /* no answer within --timeout (or connect took that long) */
	E_PROTOCOL,    /* malformed FastCGI */
	E_BAD_HEAD,    /* STDOUT without a valid CGI head */
	E_OVERLOADED,  /* END_REQUEST: OVERLOADED */
	E_CANT_MPX,    /* END_REQUEST: CANT_MPX_CONN */
	E_UNKNOWN_ROLE, /* END_REQUEST: UNKNOWN_ROLE */
	E_COUNT
};
static const char *const e_names[E_COUNT] = {
    "connect", "closed", "read_write", "timeout", "protocol", "bad_head",
    "overloaded", "cant_mpx_conn", "unknown_role"};

enum { HEAD_MAX = 1024, RBUF = 65536, MAX_M = 256 };

typedef struct cfg {
	fk_addr addr;
	const char *address, *uri;
	unsigned conns, threads, m;
	int keep;
	double duration_s;
	uint64_t total;            /* -n, 0: duration */
	int64_t timeout_ns;
	struct iovec tmpl[MAX_M];  /* pre-encoded request for id i+1 */
	atomic_uint_fast64_t tickets;
	atomic_int stop;
	int64_t t_start, deadline;  /* ns */
} cfg;

static cfg g;

typedef struct slot {
	int64_t t0; /* ns when sent; 0: free */
	int16_t status;
	uint8_t head_done;
	uint16_t head_len;
	char head[HEAD_MAX];
} slot;

enum { C_IDLE = 0, C_CONNECTING, C_READY };

typedef struct bconn {
	int fd;
	int state;
	unsigned events;
	int64_t t_connect, retry_at;
	unsigned inflight;
	fk_cli cli;
	fk_buf pend; /* bytes a short write left over */
	slot *slots;
	struct bthread *t;
} bconn;

typedef struct bthread {
	pthread_t tid;
	fk_ev ev;
	bconn *conns;
	unsigned nconns;
	uint8_t *rbuf;
	fk_hist hist;
	atomic_uint_fast64_t done; /* read by the progress line */
	atomic_uint_fast64_t errs;
	uint64_t errors[E_COUNT];
	uint64_t status[7];        /* [0] unknown, [1..5] 1xx..5xx, [6] 600+ */
	uint64_t bytes_in, bytes_out;
	int64_t last_sweep;
	int64_t t_end;
} bthread;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---------------------------------------------------------------- connections */

static void conn_start(bconn *k);

static void conn_reset(bconn *k, int kind)
{
	bthread *t = k->t;
	if (kind >= 0 && k->inflight) {
		t->errors[kind] += k->inflight;
		atomic_fetch_add_explicit(&t->errs, k->inflight, memory_order_relaxed);
	} else if (kind == E_CONNECT) {
		t->errors[kind]++;
	}
	if (k->fd >= 0) {
		fk_ev_del(&t->ev, k->fd);
		close(k->fd);
	}
	k->fd = -1;
	k->state = C_IDLE;
	k->inflight = 0;
	fk_cli_free(&k->cli);
	fk_cli_init(&k->cli);
	fk_buf_reset(&k->pend);
	for (unsigned i = 0; i < g.m; i++)
		k->slots[i].t0 = 0;
}

static void set_events(bconn *k, unsigned ev)
{
	if (k->events != ev && fk_ev_mod(&k->t->ev, k->fd, ev, k) == FCGI_OK)
		k->events = ev;
}

/* -n: one ticket per request; the duration mode has no limit. */
static int take_ticket(void)
{
	if (atomic_load_explicit(&g.stop, memory_order_relaxed))
		return 0;
	if (!g.total)
		return 1;
	return atomic_fetch_add_explicit(&g.tickets, 1, memory_order_relaxed) < g.total;
}

static void give_back_ticket(void)
{
	if (g.total)
		atomic_fetch_sub_explicit(&g.tickets, 1, memory_order_relaxed);
}

/* Sends requests on every free id of k, in one writev. */
static void issue(bconn *k)
{
	if (k->state != C_READY || k->inflight == g.m)
		return;
	struct iovec iov[MAX_M];
	int n = 0;
	size_t bytes = 0;
	int64_t t0 = now_ns();
	for (unsigned i = 0; i < g.m; i++) {
		slot *s = &k->slots[i];
		if (s->t0)
			continue;
		if (!take_ticket())
			break;
		if (fk_cli_begin(&k->cli, i + 1)) {
			give_back_ticket();
			break;
		}
		s->t0 = t0;
		s->head_done = 0;
		s->head_len = 0;
		s->status = 0;
		iov[n++] = g.tmpl[i];
		bytes += g.tmpl[i].iov_len;
		k->inflight++;
	}
	if (!n)
		return;
	k->t->bytes_out += bytes;
	if (fk_buf_size(&k->pend)) { /* still waiting for room: queue behind */
		for (int i = 0; i < n; i++)
			if (fk_buf_append(&k->pend, iov[i].iov_base, iov[i].iov_len)) {
				conn_reset(k, E_READ);
				return;
			}
		return;
	}
	ssize_t w = writev(k->fd, iov, n);
	if (w < 0 && errno != EAGAIN && errno != EINTR) {
		conn_reset(k, E_READ);
		return;
	}
	size_t done = w > 0 ? (size_t)w : 0;
	if (done == bytes)
		return;
	/* A short write: keep the rest for EPOLLOUT. */
	for (int i = 0; i < n; i++) {
		size_t l = iov[i].iov_len;
		if (done >= l) {
			done -= l;
			continue;
		}
		if (fk_buf_append(&k->pend, (const char *)iov[i].iov_base + done, l - done)) {
			conn_reset(k, E_READ);
			return;
		}
		done = 0;
	}
	set_events(k, FK_EV_IN | FK_EV_OUT);
}

static void flush_pend(bconn *k)
{
	while (fk_buf_size(&k->pend)) {
		ssize_t w = send(k->fd, fk_buf_head(&k->pend), fk_buf_size(&k->pend), MSG_NOSIGNAL);
		if (w > 0) {
			fk_buf_consume(&k->pend, (size_t)w);
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		conn_reset(k, E_READ);
		return;
	}
	set_events(k, FK_EV_IN);
}

static void conn_start(bconn *k)
{
	bthread *t = k->t;
	k->fd = socket(g.addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (k->fd < 0) {
		t->errors[E_CONNECT]++;
		k->retry_at = now_ns() + 100000000;
		return;
	}
	if (g.addr.ss.ss_family != AF_UNIX) {
		int one = 1;
		setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	k->t_connect = now_ns();
	int rc = connect(k->fd, (const struct sockaddr *)&g.addr.ss, g.addr.len);
	if (rc < 0 && errno != EINPROGRESS) {
		close(k->fd);
		k->fd = -1;
		t->errors[E_CONNECT]++;
		atomic_fetch_add_explicit(&t->errs, 1, memory_order_relaxed);
		k->retry_at = now_ns() + 50000000; /* do not spin on a backend that is down */
		return;
	}
	k->state = rc == 0 ? C_READY : C_CONNECTING;
	k->events = rc == 0 ? FK_EV_IN : FK_EV_OUT;
	if (fk_ev_add(&t->ev, k->fd, k->events, k)) {
		close(k->fd);
		k->fd = -1;
		k->state = C_IDLE;
		t->errors[E_CONNECT]++;
		k->retry_at = now_ns() + 100000000;
		return;
	}
	if (k->state == C_READY)
		issue(k);
}

/* ---------------------------------------------------------------- responses */

static int scan_status(const char *p, size_t n)
{
	/* The head did not fit HEAD_MAX: find a Status line in what we kept. */
	for (size_t i = 0; i + 11 <= n; i++)
		if ((i == 0 || p[i - 1] == '\n') && !strncasecmp(p + i, "Status:", 7)) {
			size_t j = i + 7;
			while (j < n && p[j] == ' ')
				j++;
			if (j + 3 <= n)
				return atoi(p + j);
		}
	return 200;
}

static void on_stdout(slot *s, const uint8_t *data, size_t len)
{
	if (s->head_done)
		return;
	size_t room = HEAD_MAX - s->head_len, n = len < room ? len : room;
	memcpy(s->head + s->head_len, data, n);
	s->head_len = (uint16_t)(s->head_len + n);
	fcgi_header hs[64];
	fcgi_cgi_head h;
	ssize_t rc = fcgi_cgi_head_parse(s->head, s->head_len, &h, hs, 64, 0);
	if (rc > 0) {
		s->status = (int16_t)h.status;
		s->head_done = 1;
	} else if (rc < 0 && rc != FCGI_ELIMIT) {
		s->status = -1;
		s->head_done = 1;
	} else if (s->head_len == HEAD_MAX || rc == FCGI_ELIMIT) {
		s->status = (int16_t)scan_status(s->head, s->head_len);
		s->head_done = 1;
	}
}

static void on_end(bconn *k, const fk_cli_event *ev, int64_t now)
{
	bthread *t = k->t;
	slot *s = &k->slots[ev->request_id - 1];
	if (!s->t0)
		return;
	fk_hist_add(&t->hist, (uint64_t)(now - s->t0));
	s->t0 = 0;
	k->inflight--;
	int kind = -1;
	switch (ev->protocol_status) {
	case FCGI_STATUS_COMPLETE: break;
	case FCGI_STATUS_OVERLOADED: kind = E_OVERLOADED; break;
	case FCGI_STATUS_CANT_MPX_CONN: kind = E_CANT_MPX; break;
	default: kind = E_UNKNOWN_ROLE; break;
	}
	if (kind < 0 && (!s->head_done || s->status < 0)) {
		/* A head without the empty line at the end of the output, or none at all. */
		fcgi_header hs[64];
		fcgi_cgi_head h;
		if (s->head_len && s->head_len < HEAD_MAX) {
			s->head[s->head_len] = '\n';
			if (fcgi_cgi_head_parse(s->head, s->head_len + 1u, &h, hs, 64, 0) > 0)
				s->status = (int16_t)h.status;
			else
				kind = E_BAD_HEAD;
		} else if (!s->head_done) {
			kind = E_BAD_HEAD;
		}
	}
	if (kind >= 0) {
		t->errors[kind]++;
		atomic_fetch_add_explicit(&t->errs, 1, memory_order_relaxed);
	} else {
		int cls = s->status / 100;
		t->status[cls >= 1 && cls <= 5 ? cls : cls > 5 ? 6 : 0]++;
	}
	atomic_fetch_add_explicit(&t->done, 1, memory_order_relaxed);
}

static void on_readable(bconn *k)
{
	bthread *t = k->t;
	ssize_t n = read(k->fd, t->rbuf, RBUF);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n == 0 && !k->inflight && g.keep) {
			conn_reset(k, -1); /* an idle connection closed: just reconnect */
			conn_start(k);
			return;
		}
		conn_reset(k, n == 0 ? E_CLOSED : E_READ);
		conn_start(k);
		return;
	}
	t->bytes_in += (size_t)n;
	size_t off = 0;
	int ended = 0;
	while (off < (size_t)n) {
		fk_cli_event ev;
		size_t used;
		int rc = fk_cli_feed(&k->cli, t->rbuf + off, (size_t)n - off, &used, &ev);
		off += used;
		if (rc == 0)
			break;
		if (rc < 0) {
			conn_reset(k, E_PROTOCOL);
			conn_start(k);
			return;
		}
		switch (ev.kind) {
		case FK_CEV_STDOUT: on_stdout(&k->slots[ev.request_id - 1], ev.data, ev.len); break;
		case FK_CEV_END:
			on_end(k, &ev, now_ns());
			ended = 1;
			break;
		default: break;
		}
	}
	if (!g.keep && ended) {
		/* Without KEEP_CONN the application closes after each request: so do we. */
		conn_reset(k, -1);
		conn_start(k);
		return;
	}
	issue(k);
}

static void on_event(bconn *k, unsigned events)
{
	if (k->state == C_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof err;
		getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			conn_reset(k, E_CONNECT);
			k->retry_at = now_ns() + 50000000;
			return;
		}
		k->state = C_READY;
		set_events(k, FK_EV_IN);
		issue(k);
		return;
	}
	if (events & (FK_EV_IN | FK_EV_ERR))
		on_readable(k);
	if (k->state == C_READY && (events & FK_EV_OUT))
		flush_pend(k);
}

/* Timeouts and reconnects, ten times a second. */
static void sweep(bthread *t, int64_t now)
{
	for (unsigned i = 0; i < t->nconns; i++) {
		bconn *k = &t->conns[i];
		if (k->state == C_IDLE) {
			if (now >= k->retry_at)
				conn_start(k);
			continue;
		}
		if (k->state == C_CONNECTING) {
			if (now - k->t_connect > g.timeout_ns) {
				conn_reset(k, -1);
				t->errors[E_TIMEOUT]++;
				conn_start(k);
			}
			continue;
		}
		int64_t oldest = 0;
		for (unsigned j = 0; j < g.m; j++)
			if (k->slots[j].t0 && (!oldest || k->slots[j].t0 < oldest))
				oldest = k->slots[j].t0;
		if (oldest && now - oldest > g.timeout_ns) {
			conn_reset(k, E_TIMEOUT);
			conn_start(k);
		} else if (!k->inflight) {
			issue(k); /* -n: tickets may have been given back */
		}
	}
}

static int thread_busy(const bthread *t)
{
	for (unsigned i = 0; i < t->nconns; i++)
		if (t->conns[i].inflight)
			return 1;
	return 0;
}

static void *thread_main(void *arg)
{
	bthread *t = arg;
	for (unsigned i = 0; i < t->nconns; i++)
		conn_start(&t->conns[i]);
	fk_ev_item items[64];
	for (;;) {
		int64_t now = now_ns();
		if (atomic_load_explicit(&g.stop, memory_order_relaxed))
			break;
		if (!g.total && now >= g.deadline)
			break;
		if (g.total && atomic_load_explicit(&g.tickets, memory_order_relaxed) >= g.total &&
		    !thread_busy(t))
			break;
		int wait = 100;
		if (!g.total && (g.deadline - now) / 1000000 < wait)
			wait = (int)((g.deadline - now) / 1000000) + 1;
		int n = fk_ev_wait(&t->ev, items, 64, wait);
		for (int i = 0; i < n; i++)
			on_event(items[i].ptr, items[i].events);
		now = now_ns();
		if (now - t->last_sweep > 100000000) {
			t->last_sweep = now;
			sweep(t, now);
		}
	}
	t->t_end = now_ns();
	/* In flight at the end of a timed run: neither counted nor waited for (as wrk). */
	for (unsigned i = 0; i < t->nconns; i++)
		if (t->conns[i].fd >= 0) {
			close(t->conns[i].fd);
			t->conns[i].fd = -1;
		}
	return NULL;
}

/* ---------------------------------------------------------------- set-up and report */

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: fcgikit bench [OPTIONS] ADDRESS [URI]\n"
	        "\n"
	        "Loads the FastCGI application at ADDRESS with the same request over and over\n"
	        "and reports the rate and the latency.\n"
	        "\n"
	        "  -c, --connections N   connections (default 10)\n"
	        "  -d, --duration SECS   how long (default 10)\n"
	        "  -n, --requests N      this many requests instead of a duration\n"
	        "  -m, --mpx N           requests in flight per connection (default 1); more than\n"
	        "                        1 needs FCGI_MPXS_CONNS=1 from the application\n"
	        "      --force-mpx       multiplex without asking GET_VALUES\n"
	        "  -t, --threads N       threads (default 1)\n"
	        "  -X, --method METHOD   (default GET, POST with -b)\n"
	        "  -b, --body BYTES      a request body of this size\n"
	        "  -H, --header 'N: v'   a request header (HTTP_N)\n"
	        "  -p, --param NAME=VALUE  a parameter (NAME alone: remove a default)\n"
	        "      --root DIR        DOCUMENT_ROOT / SCRIPT_FILENAME base (default: cwd)\n"
	        "      --role ROLE       responder (default), authorizer, or a number\n"
	        "      --no-keepalive    one connection per request (no FCGI_KEEP_CONN)\n"
	        "      --timeout SECS    a request not answered by then is an error (default 10)\n"
	        "      --json            the report as JSON\n"
	        "  -q, --quiet           no progress line\n"
	        "  -h, --help\n");
}

static double secs_arg(const char *s, const char *opt)
{
	char *end;
	double v = strtod(s, &end);
	if (!strcmp(end, "s"))
		end++;
	else if (!strcmp(end, "ms")) {
		v /= 1000;
		end += 2;
	} else if (!strcmp(end, "m")) {
		v *= 60;
		end++;
	}
	if (*end || !(v > 0) || v > 86400 * 7) {
		fprintf(stderr, "fcgikit bench: %s wants a duration in seconds, not '%s'\n", opt, s);
		exit(2);
	}
	return v;
}

static unsigned long long num_arg(const char *s, const char *opt, unsigned long long max)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*end == 'k' || *end == 'K') {
		v *= 1000;
		end++;
	} else if (*end == 'M') {
		v *= 1000000;
		end++;
	}
	if (errno || *end || !*s || s[0] == '-' || v > max) {
		fprintf(stderr, "fcgikit bench: %s wants a number up to %llu, not '%s'\n", opt, max, s);
		exit(2);
	}
	return v;
}

static void human_bytes(double b, char *out, size_t size)
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int i = 0;
	while (b >= 1024 && i < 4) {
		b /= 1024;
		i++;
	}
	snprintf(out, size, i ? "%.2f %s" : "%.0f %s", b, u[i]);
}

static void human_ns(double ns, char *out, size_t size)
{
	if (ns < 1000)
		snprintf(out, size, "%.0fns", ns);
	else if (ns < 1e6)
		snprintf(out, size, "%.1fus", ns / 1e3);
	else if (ns < 1e9)
		snprintf(out, size, "%.2fms", ns / 1e6);
	else
		snprintf(out, size, "%.2fs", ns / 1e9);
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* One request with the client library first: fails fast on a wrong address, and says
 * what the application answers. Returns 0, or an exit status. */
static int preflight(const fk_plist *ps, unsigned role, const void *body, size_t blen,
                     int *status)
{
	fcgi_client *c;
	if (fcgi_client_new(&c, g.address)) {
		fprintf(stderr, "fcgikit bench: bad address '%s'\n", g.address);
		return 2;
	}
	fcgi_client_set_opt(c, FCGI_CLIENT_MPX, 0);
	fcgi_client_req *r;
	int rc = fcgi_client_req_new(c, &r);
	for (size_t i = 0; !rc && i < ps->n; i++)
		if (ps->v[i].value)
			rc = fcgi_client_req_add_param(r, ps->v[i].name, ps->v[i].value);
	if (!rc)
		rc = fcgi_client_req_set_role(r, role);
	if (!rc && blen)
		rc = fcgi_client_req_body(r, body, blen);
	if (!rc)
		rc = fcgi_client_req_set_timeout(r, (unsigned)(g.timeout_ns / 1000000));
	if (!rc)
		rc = fcgi_client_req_send(r);
	if (!rc)
		rc = fcgi_client_wait(c, r, -1);
	int x = 0;
	if (rc || fcgi_client_req_error(r)) {
		fprintf(stderr, "fcgikit bench: %s\n",
		        rc ? fcgi_strerror(rc) : fcgi_client_req_strerror(r));
		x = fcgi_client_req_error(r) == FCGI_ESYS ? 3 : 1;
	} else {
		size_t n;
		const char *out = fcgi_client_req_stdout(r, &n);
		fcgi_header hs[64];
		fcgi_cgi_head h;
		*status = fcgi_cgi_head_parse(out, n, &h, hs, 64, 0) > 0 ? h.status : 0;
	}
	fcgi_client_free(c);
	return x;
}

typedef struct values_res {
	int done, mpxs;
	long max_reqs;
} values_res;

static void on_values(fcgi_client *c, int err, const fcgi_client_param *v, size_t n, void *ud)
{
	(void)c;
	values_res *res = ud;
	res->done = 1;
	for (size_t i = 0; !err && i < n; i++) {
		if (!strcmp(v[i].name, "FCGI_MPXS_CONNS"))
			res->mpxs = !strcmp(v[i].value, "1");
		if (!strcmp(v[i].name, "FCGI_MAX_REQS"))
			res->max_reqs = atol(v[i].value);
	}
}

/* Whether the application multiplexes: 1, 0 (or no answer within 3 s). */
static int ask_mpxs(long *max_reqs)
{
	fcgi_client *c;
	if (fcgi_client_new(&c, g.address))
		return -1;
	fcgi_client_set_opt(c, FCGI_CLIENT_MPX, 0);
	values_res res = {0, 0, 0};
	int rc = fcgi_client_get_values(c, NULL, 0, on_values, &res);
	int64_t until = now_ns() + 3000000000LL;
	while (!rc && !res.done && now_ns() < until)
		fcgi_client_process(c, 100);
	fcgi_client_free(c);
	*max_reqs = res.max_reqs;
	return res.done ? res.mpxs : 0;
}

int fk_tool_bench(int argc, char **argv)
{
	enum { O_ROOT = 256, O_ROLE, O_NOKEEP, O_TIMEOUT, O_JSON, O_FORCE_MPX };
	static const struct option opts[] = {
	    {"connections", required_argument, NULL, 'c'},
	    {"duration", required_argument, NULL, 'd'},
	    {"requests", required_argument, NULL, 'n'},
	    {"mpx", required_argument, NULL, 'm'},
	    {"threads", required_argument, NULL, 't'},
	    {"method", required_argument, NULL, 'X'},
	    {"body", required_argument, NULL, 'b'},
	    {"header", required_argument, NULL, 'H'},
	    {"param", required_argument, NULL, 'p'},
	    {"root", required_argument, NULL, O_ROOT},
	    {"role", required_argument, NULL, O_ROLE},
	    {"no-keepalive", no_argument, NULL, O_NOKEEP},
	    {"timeout", required_argument, NULL, O_TIMEOUT},
	    {"json", no_argument, NULL, O_JSON},
	    {"force-mpx", no_argument, NULL, O_FORCE_MPX},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	fk_cgi_spec spec = {0};
	char **headers = calloc((size_t)argc, sizeof *headers);
	char **params = calloc((size_t)argc, sizeof *params);
	if (!headers || !params)
		return 1;
	spec.headers = headers;
	spec.params = params;
	g.conns = 10;
	g.threads = 1;
	g.m = 1;
	g.keep = 1;
	g.duration_s = 10;
	g.timeout_ns = 10000000000LL;
	size_t body_len = 0;
	unsigned role = FCGI_ROLE_RESPONDER;
	int json = 0, quiet = 0, force_mpx = 0;
	optind = 1;
	int ch;
	while ((ch = getopt_long(argc, argv, "c:d:n:m:t:X:b:H:p:qh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': g.conns = (unsigned)num_arg(optarg, "-c", 100000); break;
		case 'd': g.duration_s = secs_arg(optarg, "-d"); break;
		case 'n': g.total = num_arg(optarg, "-n", UINT64_MAX / 2); break;
		case 'm': g.m = (unsigned)num_arg(optarg, "-m", MAX_M); break;
		case 't': g.threads = (unsigned)num_arg(optarg, "-t", 1024); break;
		case 'X': spec.method = optarg; break;
		case 'b': body_len = (size_t)num_arg(optarg, "-b", 1ull << 30); break;
		case 'H': headers[spec.nheaders++] = optarg; break;
		case 'p': params[spec.nparams++] = optarg; break;
		case O_ROOT: spec.root = optarg; break;
		case O_ROLE:
			role = !strcmp(optarg, "responder")    ? 1
			       : !strcmp(optarg, "authorizer") ? 2
			                                       : (unsigned)num_arg(optarg, "--role", 65535);
			break;
		case O_NOKEEP: g.keep = 0; break;
		case O_TIMEOUT: g.timeout_ns = (int64_t)(secs_arg(optarg, "--timeout") * 1e9); break;
		case O_JSON: json = 1; break;
		case O_FORCE_MPX: force_mpx = 1; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc || argc - optind > 2 || !g.conns || !g.threads || !g.m) {
		usage(stderr);
		return 2;
	}
	g.address = argv[optind];
	g.uri = optind + 1 < argc ? argv[optind + 1] : "/";
	spec.uri = g.uri;
	if (fk_addr_parse(g.address, &g.addr)) {
		fprintf(stderr, "fcgikit bench: bad address '%s' (unix:/path, /path, HOST:PORT, "
		                "[v6]:PORT)\n", g.address);
		return 2;
	}
	if (g.threads > g.conns)
		g.threads = g.conns;
	if (!g.keep && g.m > 1) {
		fprintf(stderr, "fcgikit bench: -m needs kept connections; using -m 1\n");
		g.m = 1;
	}
	signal(SIGPIPE, SIG_IGN);

	char *body = NULL;
	if (body_len) {
		body = malloc(body_len);
		if (!body)
			return 1;
		for (size_t i = 0; i < body_len; i++)
			body[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[i % 36];
		spec.has_body = 1;
		spec.body_len = body_len;
		spec.content_type = "application/octet-stream";
	}
	fk_plist ps = {0};
	char perr[256];
	if (fk_cgi_params(&spec, &ps, perr, sizeof perr) < 0) {
		fprintf(stderr, "fcgikit bench: %s\n", perr);
		return 2;
	}

	int status = 0;
	int x = preflight(&ps, role, body, body_len, &status);
	if (x) {
		fk_plist_free(&ps);
		free(body);
		return x;
	}
	if (status && status >= 400 && !json)
		fprintf(stderr, "fcgikit bench: note: %s%s answers with status %d\n", g.address,
		        g.uri, status);

	if (g.m > 1 && !force_mpx) {
		long max_reqs = 0;
		int mpxs = ask_mpxs(&max_reqs);
		if (mpxs != 1) {
			fprintf(stderr, "fcgikit bench: %s does not multiplex (FCGI_MPXS_CONNS is not 1): "
			                "-m %u falls back to -m 1 (--force-mpx to try anyway)\n",
			        g.address, g.m);
			g.m = 1;
		} else if (max_reqs && (long)g.m > max_reqs) {
			fprintf(stderr, "fcgikit bench: %s allows %ld requests in flight "
			                "(FCGI_MAX_REQS); -m %u may see OVERLOADED\n",
			        g.address, max_reqs, g.m);
		}
	}

	/* Pre-encode one request per id. */
	fk_pair *pairs = calloc(ps.n ? ps.n : 1, sizeof *pairs);
	size_t np = 0;
	for (size_t i = 0; i < ps.n; i++)
		if (ps.v[i].value)
			pairs[np++] = (fk_pair){(const uint8_t *)ps.v[i].name, strlen(ps.v[i].name),
			                        (const uint8_t *)ps.v[i].value, strlen(ps.v[i].value)};
	fk_buf tb[MAX_M];
	for (unsigned i = 0; i < g.m; i++) {
		tb[i] = (fk_buf){0};
		if (fk_req_encode(&tb[i], i + 1, role, g.keep ? FK_KEEP_CONN : 0, pairs, np, body,
		                  body_len, NULL, 0)) {
			fprintf(stderr, "fcgikit bench: out of memory\n");
			return 1;
		}
		g.tmpl[i] = (struct iovec){fk_buf_head(&tb[i]), fk_buf_size(&tb[i])};
	}
	free(pairs);

	bthread *ts = calloc(g.threads, sizeof *ts);
	bconn *cs = calloc(g.conns, sizeof *cs);
	if (!ts || !cs)
		return 1;
	for (unsigned i = 0; i < g.conns; i++) {
		cs[i].fd = -1;
		cs[i].slots = calloc(g.m, sizeof *cs[i].slots);
		if (!cs[i].slots)
			return 1;
		fk_cli_init(&cs[i].cli);
	}
	unsigned at = 0;
	for (unsigned i = 0; i < g.threads; i++) {
		bthread *t = &ts[i];
		t->nconns = g.conns / g.threads + (i < g.conns % g.threads);
		t->conns = cs + at;
		at += t->nconns;
		for (unsigned j = 0; j < t->nconns; j++)
			t->conns[j].t = t;
		t->rbuf = malloc(RBUF);
		fk_hist_init(&t->hist);
		if (!t->rbuf || fk_ev_init(&t->ev) || fk_ev_fd(&t->ev) < 0) {
			fprintf(stderr, "fcgikit bench: cannot set up epoll\n");
			return 1;
		}
	}

	double cpu0 = cpu_seconds();
	g.t_start = now_ns();
	g.deadline = g.t_start + (int64_t)(g.duration_s * 1e9);
	for (unsigned i = 0; i < g.threads; i++)
		if (pthread_create(&ts[i].tid, NULL, thread_main, &ts[i])) {
			fprintf(stderr, "fcgikit bench: cannot start threads\n");
			return 1;
		}

	int progress = !quiet && isatty(2);
	int64_t last_print = g.t_start;
	uint64_t last_done = 0;
	for (;;) {
		struct timespec ts100 = {0, 100000000};
		nanosleep(&ts100, NULL);
		int64_t now = now_ns();
		uint64_t done = 0, errs = 0;
		for (unsigned i = 0; i < g.threads; i++) {
			done += atomic_load_explicit(&ts[i].done, memory_order_relaxed);
			errs += atomic_load_explicit(&ts[i].errs, memory_order_relaxed);
		}
		int finished = g.total ? atomic_load(&g.tickets) >= g.total && done + errs >= g.total
		                       : now >= g.deadline;
		if (progress && now - last_print >= 500000000) {
			double dt = (double)(now - last_print) / 1e9;
			fprintf(stderr, "\r  %5.1fs  %10llu requests  %10.0f req/s  %llu errors   ",
			        (double)(now - g.t_start) / 1e9, (unsigned long long)done,
			        (double)(done - last_done) / dt, (unsigned long long)errs);
			last_print = now;
			last_done = done;
		}
		if (finished)
			break;
	}
	atomic_store(&g.stop, 1);
	for (unsigned i = 0; i < g.threads; i++)
		pthread_join(ts[i].tid, NULL);
	if (progress)
		fprintf(stderr, "\r%70s\r", "");
	double cpu = cpu_seconds() - cpu0;

	fk_hist h;
	fk_hist_init(&h);
	uint64_t errors[E_COUNT] = {0}, st[7] = {0}, bin = 0, bout = 0, errs = 0;
	int64_t t_end = g.t_start;
	for (unsigned i = 0; i < g.threads; i++) {
		bthread *t = &ts[i];
		fk_hist_merge(&h, &t->hist);
		for (int e = 0; e < E_COUNT; e++) {
			errors[e] += t->errors[e];
			errs += t->errors[e];
		}
		for (int s = 0; s < 7; s++)
			st[s] += t->status[s];
		bin += t->bytes_in;
		bout += t->bytes_out;
		if (t->t_end > t_end)
			t_end = t->t_end;
	}
	uint64_t ok = 0, non2xx = 0;
	for (int s = 0; s < 7; s++) {
		ok += st[s];
		if (s != 2)
			non2xx += st[s];
	}
	double secs = (double)(t_end - g.t_start) / 1e9;
	double rps = secs > 0 ? (double)ok / secs : 0;
	double cpu_us = ok ? cpu * 1e6 / (double)ok : 0;
	static const double pct[] = {50, 90, 99, 99.9};
	uint64_t pv[4];
	for (int i = 0; i < 4; i++)
		pv[i] = fk_hist_percentile(&h, pct[i]);

	if (json) {
		printf("{\"address\":\"%s\",\"uri\":\"%s\",\"threads\":%u,\"connections\":%u,"
		       "\"mpx\":%u,\"keepalive\":%s,\"body_bytes\":%zu,\"seconds\":%.3f,"
		       "\"requests\":%llu,\"requests_per_sec\":%.1f,\"bytes_in\":%llu,\"bytes_out\":%llu,"
		       "\"latency_us\":{\"mean\":%.1f,\"stdev\":%.1f,\"min\":%.1f,\"p50\":%.1f,\"p90\":%.1f,"
		       "\"p99\":%.1f,\"p99_9\":%.1f,\"max\":%.1f},\"status\":{\"1xx\":%llu,\"2xx\":%llu,"
		       "\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu,\"other\":%llu},\"non_2xx\":%llu,"
		       "\"errors\":{",
		       g.address, g.uri, g.threads, g.conns, g.m, g.keep ? "true" : "false", body_len,
		       secs, (unsigned long long)ok, rps, (unsigned long long)bin,
		       (unsigned long long)bout, fk_hist_mean(&h) / 1e3, fk_hist_stdev(&h) / 1e3,
		       h.count ? (double)h.min / 1e3 : 0, pv[0] / 1e3, pv[1] / 1e3, pv[2] / 1e3,
		       pv[3] / 1e3, (double)h.max / 1e3, (unsigned long long)st[1],
		       (unsigned long long)st[2], (unsigned long long)st[3], (unsigned long long)st[4],
		       (unsigned long long)st[5], (unsigned long long)(st[0] + st[6]),
		       (unsigned long long)non2xx);
		for (int e = 0; e < E_COUNT; e++)
			printf("%s\"%s\":%llu", e ? "," : "", e_names[e], (unsigned long long)errors[e]);
		printf("},\"errors_total\":%llu,\"cpu_seconds\":%.3f,\"cpu_us_per_request\":%.2f}\n",
		       (unsigned long long)errs, cpu, cpu_us);
	} else {
		char a[32], b[32], c[32], d[32], e[32], f[32], mean[32], sd[32], in[32], out[32];
		human_ns((double)pv[0], a, sizeof a);
		human_ns((double)pv[1], b, sizeof b);
		human_ns((double)pv[2], c, sizeof c);
		human_ns((double)pv[3], d, sizeof d);
		human_ns((double)h.max, e, sizeof e);
		human_ns(h.count ? (double)h.min : 0, f, sizeof f);
		human_ns(fk_hist_mean(&h), mean, sizeof mean);
		human_ns(fk_hist_stdev(&h), sd, sizeof sd);
		human_bytes((double)bin, in, sizeof in);
		human_bytes((double)bout, out, sizeof out);
		printf("fcgikit bench %s %s: %.2fs, %u thread%s, %u connection%s, %u in flight each%s\n",
		       g.address, g.uri, secs, g.threads, g.threads == 1 ? "" : "s", g.conns,
		       g.conns == 1 ? "" : "s", g.m, g.keep ? "" : ", no keep-alive");
		printf("  requests   %llu  (%.1f/s)\n", (unsigned long long)ok, rps);
		char rin[32], rout[32];
		human_bytes(secs > 0 ? (double)bin / secs : 0, rin, sizeof rin);
		human_bytes(secs > 0 ? (double)bout / secs : 0, rout, sizeof rout);
		printf("  transfer   received %s (%s/s), sent %s (%s/s)\n", in, rin, out, rout);
		printf("  latency    p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", a, b, c, d, e);
		printf("             min %s  mean %s  stdev %s\n", f, mean, sd);
		printf("  status     2xx %llu", (unsigned long long)st[2]);
		static const char *const cls[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx+"};
		for (int s = 0; s < 7; s++)
			if (s != 2 && st[s])
				printf(", %s %llu", cls[s], (unsigned long long)st[s]);
		printf("  (non-2xx: %llu)\n", (unsigned long long)non2xx);
		printf("  errors     %llu", (unsigned long long)errs);
		for (int k = 0; k < E_COUNT; k++)
			if (errors[k])
				printf("%s %s %llu", k ? "," : ":", e_names[k], (unsigned long long)errors[k]);
		printf("\n");
		printf("  cpu        %.2fs for this tool, %.2f us per request\n", cpu, cpu_us);
	}

	for (unsigned i = 0; i < g.conns; i++) {
		fk_cli_free(&cs[i].cli);
		fk_buf_free(&cs[i].pend);
		free(cs[i].slots);
	}
	for (unsigned i = 0; i < g.threads; i++) {
		fk_ev_close(&ts[i].ev);
		free(ts[i].rbuf);
	}
	for (unsigned i = 0; i < g.m; i++)
		fk_buf_free(&tb[i]);
	free(cs);
	free(ts);
	free(body);
	free(headers);
	free(params);
	fk_plist_free(&ps);
	return errs && !ok ? 1 : 0;
}
