/* gateway.c — `fcgikit gateway`: HTTP/1.1 in front, FastCGI behind, one thread, one loop.
 *
 * The loop (lib/ev) watches the listening socket, every HTTP connection and one fcgi_client
 * per backend (its epoll descriptor). Each pass: handle ready descriptors, run every client's
 * fcgi_client_process (output and completion callbacks run there), then handle the
 * connections those callbacks marked dirty, then the timeouts. Callbacks only record what
 * happened and append bytes to a connection's output: every decision (retry, error page,
 * next pipelined request, close) is taken outside the client library's call stack.
 *
 * One HTTP connection moves through:
 *
 *   HEAD ──head parsed──> BODY ──body complete──> UPSTREAM (a backend answers)
 *    ^                                        └─> LOCAL    (static file, error page)
 *    └──── response flushed, keep-alive: parse the next (pipelined) request ────┘
 *   any refusal / close ──> LINGER (write side shut, input drained, then closed)
 *
 * Pipelined requests wait in `in`: the next head is parsed only once the previous response
 * has been flushed, so responses go out in order without any queueing.
 *
 * Request bodies go to a store (body.c): memory up to --body-buffer, then an unlinked
 * temporary file, kept whole until the request ends so a retry resends it from offset 0.
 * A chunked body, or a sized one that fits in memory, is complete before the request
 * leaves BODY (CONTENT_LENGTH exact). A larger sized body does not wait: the request goes
 * on once the head is parsed and the body streams from the store through a read callback
 * while it still arrives (body_left); if the answer comes first, the rest of the body is
 * skipped by its length (body_skip) before the next head.
 *
 * Flow control toward a slow client: a response keeps up to --response-buffer in `out`;
 * past it the FastCGI request is paused (fcgi_client_req_pause). Alone on its backend
 * connection, that stops the reads and the application waits on a full socket, as behind
 * nginx. On a multiplexed connection the library must read on for the other requests, so
 * what still comes for this one goes to an unlinked temporary file (--temp-dir), fed back
 * as the client reads, up to --max-temp-file; past that (or --max-buffer in memory when
 * there is no file) the request is aborted and the connection closed, logged. The send
 * timeout bounds a client that reads nothing at all.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcgikit.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "balance/balance.h"
#include "hist.h"
#include "ev/ev.h"
#include "gateway/body.h"
#include "gateway/config.h"
#include "gateway/gateway.h"
#include "http/http.h"
#include "tool.h"
#include "util/addr.h"
#include "util/buf.h"

enum { GW_T_LISTEN = 1, GW_T_CONN, GW_T_BACKEND };

enum {
	GW_READ_CHUNK = 65536,
	GW_PIPELINE_MAX = 65536, /* input read ahead while a response is in progress */
	GW_FILE_CHUNK = 65536,   /* static file bytes moved to the output at a time */
	GW_CGI_HEAD_MAX = 65536, /* CGI response head from the application */
	GW_CGI_HEADERS_MAX = 100,
	GW_LINGER_MS = 2000,
	GW_STOP_MS = 10000,     /* graceful stop: the longest it waits for connections */
	GW_STOP_IDLE_MS = 1000, /* graceful stop: a kept-alive connection idle this long closes */
};

typedef enum gw_state {
	GW_HEAD = 0, /* waiting for or reading a request head */
	GW_BODY,     /* reading the request body into `body` */
	GW_UPSTREAM, /* the request is at a backend; its response streams into `out` */
	GW_LOCAL,    /* a response made here (static file, error) is being written */
	GW_LINGER,   /* write side shut after the last response; draining input, then close */
} gw_state;

static const char *gw_state_name(gw_state s)
{
	static const char *names[] = {"HEAD", "BODY", "UPSTREAM", "LOCAL", "LINGER"};
	return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

typedef struct gw gw;

typedef struct gw_backend {
	int kind; /* GW_T_BACKEND: the first member of everything the loop points at */
	gw *g;
	const char *addr;
	fcgi_client *cli;
	/* what the status page shows */
	uint64_t ok, failed, retried_away, probes_ok, probes_failed;
	fk_hist *lat; /* upstream time of answered requests, microseconds */
	int64_t next_probe;
	int probing;
} gw_backend;

typedef struct gw_conn gw_conn;
struct gw_conn {
	int kind; /* GW_T_CONN */
	gw *g;
	int fd;
	unsigned ev_mask;
	gw_state state;
	gw_conn *prev, *next; /* every live connection */
	gw_conn *dirty_next;  /* on g->dirty: a callback changed something */
	gw_conn *dead_next;   /* on g->dead: closed, freed at the end of the pass */
	unsigned dirty : 1, dead : 1;

	fk_buf in;   /* bytes read, not yet parsed (the next pipelined request) */
	fk_buf out;  /* bytes to send */
	fk_buf head; /* a copy of the current request head: req's slices point here */
	gw_body body; /* the decoded request body (body.h): memory, then a temporary file */
	fk_http_header hs[FK_HTTP_MAX_HEADERS_DEFAULT];
	fk_http_req req;
	int have_req;    /* req describes the request being served */
	char *path;      /* req.path decoded and normalised */
	int is_head;     /* HEAD: no response body */
	int keep_alive;  /* the connection may carry another request after this one */
	int close_after; /* close once `out` is flushed (set by errors and framing) */
	fk_http_chunked ch;
	uint64_t body_left; /* Content-Length bytes still to read (also while at the backend: a
	                       sized body streams) */
	uint64_t body_skip; /* the rest of a body the response did not wait for: dropped
	                       before the next head is parsed */
	uint64_t body_sent; /* bytes of `body` the current backend request has taken */
	int body_drop;      /* the body is no longer wanted (a local redirect is a GET): the
	                       rest is read and dropped */
	int body_ioerr;     /* errno of a failed read from the store, else 0 */

	int64_t t_act;   /* last read or write progress */
	int64_t t_head;  /* first byte of the current head */
	int64_t t_start; /* head complete */

	/* response */
	int status;
	int resp_started;    /* the status line is in `out` */
	int resp_done;       /* everything of the response is in `out` (or the file is queued) */
	uint64_t resp_bytes; /* body bytes sent or queued, for the log */
	int chunked_out;     /* body framed with chunked transfer-coding */
	int no_body;         /* HEAD, 1xx, 204, 304 */
	int64_t cl_left;     /* Content-Length the application gave, bytes still to pass; -1 none */
	int file_fd;
	off_t file_off, file_left;
	/* Flow control toward a slow client: past --response-buffer in `out` the backend request
	 * is paused; what still comes (its connection is shared, so the library keeps reading)
	 * goes to spill_fd, an unlinked temporary file, and comes back into `out` as the client
	 * reads: bytes [spill_r, spill_w) of it are waiting, [0, spill_freed) are punched out. */
	int paused;
	int spill_fd; /* -1: none */
	uint64_t spill_w, spill_r, spill_freed;

	/* upstream */
	fcgi_client_req *up;
	int up_idx;
	fk_bal_tried tried;
	int up_done, up_err, overflow;
	int got_output; /* a STDOUT byte came: no retry on another backend any more */
	int overloaded; /* some backend said OVERLOADED for this request */
	int cgi_bad;    /* the CGI head was malformed */
	int cgi_parsed;
	/* The application asked for another resource instead of answering: a local redirect
	 * (RFC 3875 6.2.2, "Location: /path" without Status) or X-Accel-Redirect/X-Sendfile. The
	 * rest of its output is dropped and the request is served again once it has ended. */
	fcgi_client_req *auth;  /* the Authorizer request in flight, or NULL */
	fk_buf auth_out;        /* its STDOUT (bounded) */
	int auth_done, auth_err, authorized;
	char *redirect;
	int redirect_file; /* X-Accel-Redirect / X-Sendfile: a file under --sendfile-root */
	int redirects;     /* in this request, bounded */
	fk_buf cgihead; /* STDOUT until the CGI head is complete */
	fk_buf errline; /* STDERR up to the next newline */
	gw_params params;
	int64_t t_up;
	int64_t t_up_us; /* for the latency histogram: milliseconds are too coarse */
	int64_t up_ms; /* -1: no backend involved */
	const char *up_name;

	char raddr[INET6_ADDRSTRLEN + 8], rport[8], laddr[INET6_ADDRSTRLEN + 8], lport[8];
};

struct gw {
	fk_ev ev;
	int lfd;
	int lpaused;
	int listen_kind; /* GW_T_LISTEN, the loop's pointer for lfd */
	int auth_kind;   /* GW_T_BACKEND-like: the authorizer client's descriptor */
	gw_backend *be;
	size_t nbe;
	fk_bal_group *bal;
	gw_conn *conns;
	unsigned nconns;
	gw_conn *dirty, *dead;
	FILE *access;
	int stopping;
	int64_t stop_deadline;
	gw_balance balance;      /* --balance: for the hash policies, which key is hashed */
	const char *hash_header; /* hash:header:NAME */

	/* options */
	const char *root; /* realpath of --root, or NULL */
	size_t root_len;
	const char *doc_root; /* DOCUMENT_ROOT: root, or the current directory */
	const char *index, *script_ext;
	uint64_t max_body;
	size_t max_buffer;
	size_t body_mem;      /* --body-buffer: request body bytes in memory per connection */
	const char *temp_dir; /* --temp-dir (request bodies, response spill), else $TMPDIR,
	                         else /tmp (gw_temp_dir) */
	size_t resp_buf;     /* --response-buffer (at most max_buffer / 2) */
	uint64_t max_temp;   /* --max-temp-file: bytes waiting in one response's file; 0: none */
	unsigned max_conns;
	int64_t header_to, idle_to, send_to;
	unsigned upstream_to;
	char software[64];
	const char *status_path; /* --status-path: served here, to loopback clients only */
	char *sendfile_root;     /* --sendfile-root: realpath, or NULL (X-Sendfile ignored) */
	fcgi_client *auth;       /* --authorizer: asked first for paths under auth_prefix */
	const char *auth_addr, *auth_prefix;
	size_t sendfile_root_len;
	int64_t probe_ms;        /* --probe-interval: GET_VALUES to every backend; 0 = off */
	const char *probe_uri;   /* --probe-uri: probes are a GET of this path instead */
	unsigned queue;          /* --queue: requests that may wait per backend beyond what it
	                            can take at once (its connections x requests per connection) */
	long backend_conns;      /* --backend-conns: FCGI_CLIENT_MAX_CONNS, 0 = the default */
	long connect_to;         /* --connect-timeout ms */
	int64_t started;
	uint64_t requests, local_answers;
};

/* SIGTERM, SIGINT: graceful stop (a second one: stop now). SIGHUP: reload (the supervisor;
 * workers ignore it). */
static volatile sig_atomic_t gw_signalled, gw_hup;

static void gw_on_signal(int sig)
{
	if (sig == SIGHUP)
		gw_hup = 1;
	else
		gw_signalled++;
}

/* ------------------------------------------------------------------ small helpers */

static int64_t gw_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void gw_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void gw_log(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("fcgikit gateway: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static const char *gw_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 206:
		return "Partial Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 307:
		return "Temporary Redirect";
	case 308:
		return "Permanent Redirect";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 411:
		return "Length Required";
	case 422:
		return "Unprocessable Content";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	default: {
		const char *t = fk_http_status_text(status);
		return t && *t ? t : "Unknown";
	}
	}
}

/* RFC 9110 §5.6.7 IMF-fixdate. */
static void gw_http_date(time_t t, char *buf, size_t size)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, size, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static int gw_appendf(fk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int gw_appendf(fk_buf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		return FCGI_EINVAL;
	if ((size_t)n >= sizeof tmp) { /* long header values: format again into the buffer */
		if (fk_buf_reserve(b, (size_t)n + 1))
			return FCGI_ENOMEM;
		va_start(ap, fmt);
		vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
		b->len += (size_t)n;
		return FCGI_OK;
	}
	return fk_buf_append(b, tmp, (size_t)n);
}

static const char *gw_mime(const char *path)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
	        {".html", "text/html; charset=utf-8"},
	        {".htm", "text/html; charset=utf-8"},
	        {".css", "text/css"},
	        {".js", "text/javascript"},
	        {".mjs", "text/javascript"},
	        {".json", "application/json"},
	        {".txt", "text/plain; charset=utf-8"},
	        {".xml", "application/xml"},
	        {".svg", "image/svg+xml"},
	        {".png", "image/png"},
	        {".jpg", "image/jpeg"},
	        {".jpeg", "image/jpeg"},
	        {".gif", "image/gif"},
	        {".webp", "image/webp"},
	        {".ico", "image/x-icon"},
	        {".pdf", "application/pdf"},
	        {".wasm", "application/wasm"},
	        {".woff2", "font/woff2"},
	        {".woff", "font/woff"},
	        {".mp4", "video/mp4"},
	};
	const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
	if (dot && (!slash || dot > slash))
		for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
			if (!strcasecmp(dot, types[i].ext))
				return types[i].type;
	return "application/octet-stream";
}

static void gw_addr_strings(const struct sockaddr_storage *ss, char *addr, size_t asz, char *port,
                            size_t psz)
{
	addr[0] = port[0] = '\0';
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s->sin_addr, addr, (socklen_t)asz);
		snprintf(port, psz, "%u", ntohs(s->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s->sin6_addr, addr, (socklen_t)asz);
		snprintf(port, psz, "%u", ntohs(s->sin6_port));
		/* a v4 client on a dual-stack socket: show it as v4, like nginx */
		if (!strncmp(addr, "::ffff:", 7) && strchr(addr + 7, '.'))
			memmove(addr, addr + 7, strlen(addr + 7) + 1);
	} else {
		snprintf(addr, asz, "unix:");
	}
}

/* ------------------------------------------------------------------ connections */

static void gw_conn_close(gw_conn *c);
static void gw_conn_advance(gw_conn *c);
static void gw_conn_update_ev(gw_conn *c);
static void gw_up_start(gw_conn *c);
static int gw_send_file(gw_conn *c, const char *real);

static void gw_mark_dirty(gw_conn *c)
{
	if (c->dirty || c->dead)
		return;
	c->dirty = 1;
	c->dirty_next = c->g->dirty;
	c->g->dirty = c;
}

/* The backend is done with this request, whatever happened: outcome first, then release. */
static void gw_up_drop(gw_conn *c)
{
	if (!c->up)
		return;
	/* Freeing an unfinished request sends ABORT_REQUEST (and stops reading the body from
	 * our buffer), without callbacks: exactly fcgi_client_req_abort plus the free. */
	fcgi_client_req_free(c->up);
	c->up = NULL;
	fk_bal_release(c->g->bal, c->up_idx);
}

static void gw_access_log(gw_conn *c)
{
	if (!c->have_req)
		return;
	gw *g = c->g;
	char t[64];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(t, sizeof t, "%d/%b/%Y:%H:%M:%S %z", &tm);
	char ms[24] = "-";
	if (c->up_ms >= 0)
		snprintf(ms, sizeof ms, "%lld", (long long)c->up_ms);
	/* the request line is tokens and VCHAR only (the parser checked): safe to print */
	fprintf(g->access, "%s - - [%s] \"%.*s %.*s HTTP/1.%d\" %d %llu %s %s\n", c->raddr, t,
	        (int)c->req.method.n, c->req.method.p, (int)c->req.target.n, c->req.target.p,
	        c->req.minor, c->status ? c->status : 499, (unsigned long long)c->resp_bytes, ms,
	        c->up_name ? c->up_name : "-");
	c->have_req = 0;
}

static uint64_t gw_spill_pending(const gw_conn *c) { return c->spill_w - c->spill_r; }

static void gw_spill_close(gw_conn *c)
{
	if (c->spill_fd >= 0)
		close(c->spill_fd); /* unlinked: its blocks go with it */
	c->spill_fd = -1;
	c->spill_w = c->spill_r = c->spill_freed = 0;
}

/* Forgets the request that was just answered (not the connection's buffers). */
static void gw_req_reset(gw_conn *c)
{
	gw_up_drop(c);
	if (c->file_fd >= 0)
		close(c->file_fd);
	c->file_fd = -1;
	gw_spill_close(c);
	c->paused = 0;
	c->file_left = c->file_off = 0;
	free(c->path);
	c->path = NULL;
	gw_params_free(&c->params);
	fk_buf_reset(&c->head);
	gw_body_reset(&c->body);
	c->body_sent = 0;
	c->body_drop = c->body_ioerr = 0;
	fk_buf_reset(&c->cgihead);
	fk_buf_reset(&c->errline);
	c->have_req = 0;
	c->status = c->resp_started = c->resp_done = 0;
	c->resp_bytes = 0;
	c->chunked_out = c->no_body = 0;
	c->cl_left = -1;
	c->up_done = c->up_err = c->overflow = c->got_output = c->overloaded = 0;
	c->cgi_bad = c->cgi_parsed = 0;
	free(c->redirect);
	c->redirect = NULL;
	c->redirect_file = c->redirects = 0;
	if (c->auth)
		fcgi_client_req_free(c->auth);
	c->auth = NULL;
	fk_buf_reset(&c->auth_out);
	c->auth_done = c->auth_err = c->authorized = 0;
	c->up_ms = -1;
	c->up_name = NULL;
	fk_bal_tried_clear(&c->tried);
	/* Answered before its body was all read (a static file, an error, an application that
	 * did not read its input): the rest is dropped by its length, so the next request's
	 * bytes are never taken for body. */
	c->body_skip += c->body_left;
	c->body_left = 0;
	c->is_head = 0;
}

static void gw_conn_free(gw_conn *c)
{
	fk_buf_free(&c->in);
	fk_buf_free(&c->out);
	fk_buf_free(&c->head);
	gw_body_reset(&c->body);
	fk_buf_free(&c->cgihead);
	fk_buf_free(&c->errline);
	fk_buf_free(&c->auth_out);
	free(c->redirect);
	free(c);
}

static void gw_conn_close(gw_conn *c)
{
	if (c->dead)
		return;
	gw *g = c->g;
	gw_access_log(c); /* a request cut short is logged too (status 499 if none was sent) */
	gw_req_reset(c);
	fk_ev_del(&g->ev, c->fd);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		g->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	g->nconns--;
	c->dead = 1;
	/* The pass's event array may still point at c: free it when the pass is over. */
	c->dead_next = g->dead;
	g->dead = c;
	if (g->lpaused && g->lfd >= 0 && g->nconns < g->max_conns) {
		fk_ev_mod(&g->ev, g->lfd, FK_EV_IN, &g->listen_kind);
		g->lpaused = 0;
	}
}

/* Stop writing, keep reading until the client closes (or a short deadline): closing a
 * socket with unread input sends RST, which can destroy the response we just sent. */
static void gw_conn_linger(gw_conn *c)
{
	gw_req_reset(c);
	shutdown(c->fd, SHUT_WR);
	fk_buf_reset(&c->in);
	c->state = GW_LINGER;
	c->t_act = fk_now_ms();
	gw_conn_update_ev(c);
}

static void gw_conn_update_ev(gw_conn *c)
{
	if (c->dead)
		return;
	unsigned want = 0;
	if (c->state == GW_HEAD || c->state == GW_BODY || c->state == GW_LINGER ||
	    fk_buf_size(&c->in) < GW_PIPELINE_MAX)
		want |= FK_EV_IN;
	if (c->state != GW_LINGER && (fk_buf_size(&c->out) || c->file_left || gw_spill_pending(c)))
		want |= FK_EV_OUT;
	if (want != c->ev_mask) {
		fk_ev_mod(&c->g->ev, c->fd, want, c);
		c->ev_mask = want;
	}
}

/* The response is completely flushed: log, then the next request or the end. */
static void gw_req_end(gw_conn *c)
{
	gw_access_log(c);
	/* Not `stopping` here: a response that went out without Connection: close (the stop
	 * began after its head) promised the client another request; the next one is answered
	 * with Connection: close (gw_head_done clears keep_alive), or gw_stop_sweep closes the
	 * connection once idle. */
	int keep = c->keep_alive && !c->close_after;
	gw_req_reset(c);
	if (!keep) {
		gw_conn_linger(c);
		return;
	}
	c->state = GW_HEAD;
	c->t_head = c->t_act = fk_now_ms();
	fk_buf_shrink(&c->in, GW_READ_CHUNK);
	fk_buf_shrink(&c->out, GW_READ_CHUNK);
	/* A pipelined request may be waiting in `in`: the loop's dirty pass parses it, so a
	 * long pipeline is handled by iteration, never by recursion through here. */
	gw_mark_dirty(c);
}

/* Moves the oldest spilled bytes back into `out`. -1 when the file failed (c closed). */
static int gw_spill_refill(gw_conn *c)
{
	size_t want = gw_spill_pending(c) < GW_FILE_CHUNK ? (size_t)gw_spill_pending(c)
	                                                   : (size_t)GW_FILE_CHUNK;
	ssize_t n = -1;
	if (!fk_buf_reserve(&c->out, want))
		n = pread(c->spill_fd, c->out.data + c->out.len, want, (off_t)c->spill_r);
	if (n <= 0) {
		gw_log("%.*s: reading the temporary file: %s", (int)c->req.target.n, c->req.target.p,
		       n ? strerror(errno) : "it shrank");
		gw_conn_close(c);
		return -1;
	}
	c->out.len += (size_t)n;
	c->spill_r += (uint64_t)n;
	if (c->spill_r == c->spill_w) {
		/* Caught up: start over at offset 0, so a long response with short stalls does not
		 * leave a long file behind. */
		if (ftruncate(c->spill_fd, 0) == 0)
			c->spill_w = c->spill_r = c->spill_freed = 0;
	} else if (c->spill_r - c->spill_freed >= (4u << 20)) {
		/* Sent bytes of a file still being appended to: give their blocks back, so the disk
		 * holds what waits, not all that passed (best effort: not every file system can). */
		if (fallocate(c->spill_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		              (off_t)c->spill_freed, (off_t)(c->spill_r - c->spill_freed)) == 0)
			c->spill_freed = c->spill_r;
	}
	return 0;
}

/* The client has caught up with a paused response: let its backend output flow again
 * (the client library delivers what it held during its next pass). */
static void gw_up_resume(gw_conn *c)
{
	if (c->paused && c->up && !gw_spill_pending(c) && fk_buf_size(&c->out) < c->g->resp_buf / 2) {
		c->paused = 0;
		fcgi_client_req_pause(c->up, 0);
	}
}

/* Writes what it can; refills from the static file or the response's temporary file.
 * Returns -1 when c was closed. */
static int gw_conn_flush(gw_conn *c)
{
	for (;;) {
		if (gw_spill_pending(c) && fk_buf_size(&c->out) < GW_FILE_CHUNK &&
		    gw_spill_refill(c) < 0)
			return -1;
		if (c->file_left && fk_buf_size(&c->out) < GW_FILE_CHUNK) {
			if (fk_buf_reserve(&c->out, GW_FILE_CHUNK)) {
				gw_conn_close(c);
				return -1;
			}
			size_t want = (off_t)GW_FILE_CHUNK < c->file_left ? GW_FILE_CHUNK
			                                                  : (size_t)c->file_left;
			ssize_t n = pread(c->file_fd, c->out.data + c->out.len, want, c->file_off);
			if (n <=
			    0) { /* the file shrank or failed under us: the length is a lie now */
				gw_log("%s: read failed: %s", c->path,
				       n ? strerror(errno) : "file shrank");
				gw_conn_close(c);
				return -1;
			}
			c->out.len += (size_t)n;
			c->file_off += n;
			c->file_left -= n;
		}
		size_t n = fk_buf_size(&c->out);
		if (!n)
			break;
		ssize_t w = send(c->fd, fk_buf_head(&c->out), n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				gw_up_resume(c);
				return 0;
			}
			gw_conn_close(c);
			return -1;
		}
		fk_buf_consume(&c->out, (size_t)w);
		c->t_act = fk_now_ms();
	}
	gw_up_resume(c);
	if (c->resp_done && !c->file_left && !c->up && !gw_spill_pending(c) &&
	    (c->state == GW_UPSTREAM || c->state == GW_LOCAL)) {
		gw_req_end(c);
		return c->dead ? -1 : 0;
	}
	return 0;
}

/* A response made here. `close` also ends the connection after it. */
static void gw_local_response(gw_conn *c, int status, const char *extra, int close_conn)
{
	if (close_conn)
		c->close_after = 1;
	if (c->g->stopping || !c->keep_alive)
		c->close_after = 1;
	char date[64], body[128];
	gw_http_date(time(NULL), date, sizeof date);
	int bl = snprintf(body, sizeof body, "%d %s\n", status, gw_reason(status));
	gw_appendf(&c->out,
	           "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: %s\r\nContent-Type: text/plain\r\n"
	           "Content-Length: %d\r\n%s%s\r\n",
	           status, gw_reason(status), date, c->g->software, bl, extra ? extra : "",
	           c->close_after ? "Connection: close\r\n" : "");
	if (!c->is_head)
		fk_buf_append(&c->out, body, (size_t)bl);
	c->status = status;
	c->resp_started = c->resp_done = 1;
	c->resp_bytes = c->is_head ? 0 : (uint64_t)bl;
	c->state = GW_LOCAL;
}


/* ------------------------------------------------------------------ status and probes */

/* A response made here with a body of any size. */
static void gw_local_body(gw_conn *c, int status, const char *type, const char *body, size_t len)
{
	if (c->g->stopping || !c->keep_alive)
		c->close_after = 1;
	char date[64];
	gw_http_date(time(NULL), date, sizeof date);
	gw_appendf(&c->out,
	           "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: %s\r\nContent-Type: %s\r\n"
	           "Cache-Control: no-store\r\nContent-Length: %zu\r\n%s\r\n",
	           status, gw_reason(status), date, c->g->software, type, len,
	           c->close_after ? "Connection: close\r\n" : "");
	if (!c->is_head)
		fk_buf_append(&c->out, body, len);
	c->status = status;
	c->resp_started = c->resp_done = 1;
	c->resp_bytes = c->is_head ? 0 : len;
	c->state = GW_LOCAL;
}

static int gw_loopback(const char *addr)
{
	return !strncmp(addr, "127.", 4) || !strcmp(addr, "::1") || !strncmp(addr, "::ffff:127.", 11) ||
	       !*addr; /* a Unix socket peer */
}

/* Label values are backend addresses from the command line: only \ and " need escaping
 * (addresses hold no newline). */
static void gw_label(fk_buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fk_buf_append(b, "\\", 1);
		fk_buf_append(b, v, 1);
	}
}

/* --status-path: JSON (default) or OpenMetrics (?openmetrics, or PATH/metrics), per backend:
 * state, requests in flight, answered, failed, probes, latency percentiles. */
static int gw_status_page(gw_conn *c)
{
	gw *g = c->g;
	size_t sl = g->status_path ? strlen(g->status_path) : 0;
	if (!sl || strncmp(c->path, g->status_path, sl) ||
	    (c->path[sl] && strcmp(c->path + sl, "/metrics")))
		return 0;
	g->local_answers++;
	if (!gw_loopback(c->raddr)) {
		gw_local_response(c, 403, NULL, 0);
		return 1;
	}
	int om = !strcmp(c->path + sl, "/metrics") ||
	         (c->req.query.n >= 11 && memmem(c->req.query.p, c->req.query.n, "openmetrics", 11));
	int64_t now = fk_now_ms();
	fk_buf b = {0};
	if (om) {
		gw_appendf(&b, "# TYPE fcgikit_gateway_requests counter\n"
		               "# HELP fcgikit_gateway_requests HTTP requests received.\n"
		               "fcgikit_gateway_requests_total %llu\n"
		               "# TYPE fcgikit_gateway_connections gauge\n"
		               "# HELP fcgikit_gateway_connections HTTP connections open.\n"
		               "fcgikit_gateway_connections %u\n",
		           (unsigned long long)g->requests, g->nconns);
		static const char *fam[][3] = {
		    {"backend_up", "gauge", "1 when the backend takes requests (UP), else 0."},
		    {"backend_in_flight", "gauge", "Requests in flight to the backend."},
		    {"backend_answered", "counter", "Requests the backend answered."},
		    {"backend_failed", "counter", "Requests that failed on the backend."},
		    {"backend_probes_failed", "counter", "Active probes that failed."},
		    {"backend_latency_p99_seconds", "gauge", "99th percentile upstream time."},
		};
		for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
			gw_appendf(&b, "# TYPE fcgikit_gateway_%s %s\n# HELP fcgikit_gateway_%s %s\n",
			           fam[f][0], fam[f][1], fam[f][0], fam[f][2]);
			for (size_t i = 0; i < g->nbe; i++) {
				gw_backend *be = &g->be[i];
				gw_appendf(&b, "fcgikit_gateway_%s%s{backend=\"", fam[f][0],
				           !strcmp(fam[f][1], "counter") ? "_total" : "");
				gw_label(&b, be->addr);
				fk_bal_state st = fk_bal_backend_state(g->bal, (int)i, now);
				switch (f) {
				case 0:
					gw_appendf(&b, "\"} %d\n", st == FK_BAL_UP);
					break;
				case 1:
					gw_appendf(&b, "\"} %u\n", g->bal->b[i].outstanding);
					break;
				case 2:
					gw_appendf(&b, "\"} %llu\n", (unsigned long long)be->ok);
					break;
				case 3:
					gw_appendf(&b, "\"} %llu\n", (unsigned long long)be->failed);
					break;
				case 4:
					gw_appendf(&b, "\"} %llu\n", (unsigned long long)be->probes_failed);
					break;
				default:
					gw_appendf(&b, "\"} %.6f\n",
					           be->lat ? (double)fk_hist_percentile(be->lat, 99) / 1e6 : 0.0);
				}
			}
		}
		fk_buf_append(&b, "# EOF\n", 6);
	} else {
		gw_appendf(&b, "{\"pid\":%d,\"uptime_ms\":%lld,\"requests\":%llu,\"connections\":%u,"
		               "\"backends\":[",
		           (int)getpid(), (long long)(now - g->started), (unsigned long long)g->requests,
		           g->nconns);
		for (size_t i = 0; i < g->nbe; i++) {
			gw_backend *be = &g->be[i];
			fk_bal_state st = fk_bal_backend_state(g->bal, (int)i, now);
			gw_appendf(&b, "%s{\"address\":\"", i ? "," : "");
			gw_label(&b, be->addr);
			gw_appendf(&b,
			           "\",\"state\":\"%s\",\"in_flight\":%u,\"answered\":%llu,\"failed\":%llu,"
			           "\"probes_ok\":%llu,\"probes_failed\":%llu,\"latency_ms\":{\"p50\":%.3f,"
			           "\"p99\":%.3f,\"max\":%.3f}}",
			           fk_bal_state_name(st), g->bal->b[i].outstanding,
			           (unsigned long long)be->ok, (unsigned long long)be->failed,
			           (unsigned long long)be->probes_ok, (unsigned long long)be->probes_failed,
			           be->lat ? (double)fk_hist_percentile(be->lat, 50) / 1000 : 0.0,
			           be->lat ? (double)fk_hist_percentile(be->lat, 99) / 1000 : 0.0,
			           be->lat && be->lat->count ? (double)be->lat->max / 1000 : 0.0);
		}
		gw_appendf(&b, "]}\n");
	}
	gw_local_body(c, 200,
	              om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
	                 : "application/json",
	              (const char *)fk_buf_head(&b), fk_buf_size(&b));
	fk_buf_free(&b);
	return 1;
}

static void gw_probe_result(gw_backend *be, int err, const char *why);

static void gw_probe_done(fcgi_client *cli, int err, const fcgi_client_param *values, size_t n,
                          void *ud)
{
	(void)cli;
	(void)values;
	(void)n;
	gw_probe_result(ud, err, err == FCGI_OK ? "answered" : fcgi_strerror(err));
}

/* A --probe-uri probe ended: healthy when the application completed it with a 2xx head. */
static void gw_probe_req_done(fcgi_client_req *r, int err, void *ud)
{
	char why[96];
	if (err == FCGI_OK) {
		size_t len;
		const char *out = fcgi_client_req_stdout(r, &len);
		fcgi_cgi_head h;
		fcgi_header hs[64];
		ssize_t hl = fcgi_cgi_head_parse(out ? out : "", out ? len : 0, &h, hs, 64, 0);
		if (hl <= 0) {
			err = FCGI_EPROTO;
			snprintf(why, sizeof why, "no CGI head in the answer");
		} else if (h.status < 200 || h.status > 299) {
			err = FCGI_EPROTO;
			snprintf(why, sizeof why, "status %d", h.status);
		} else {
			snprintf(why, sizeof why, "status %d", h.status);
		}
	} else {
		snprintf(why, sizeof why, "%s", fcgi_client_req_strerror(r));
	}
	fcgi_client_req_free(r);
	gw_probe_result(ud, err, why);
}

static void gw_probe_result(gw_backend *be, int err, const char *why)
{
	gw *g = be->g;
	int64_t now = fk_now_ms();
	be->probing = 0;
	be->next_probe = now + g->probe_ms;
	int idx = (int)(be - g->be);
	fk_bal_state before = fk_bal_backend_state(g->bal, idx, now);
	fk_bal_probe_result(g->bal, idx, err == FCGI_OK, now);
	fk_bal_state after = fk_bal_backend_state(g->bal, idx, now);
	if (err == FCGI_OK)
		be->probes_ok++;
	else
		be->probes_failed++;
	if (before != after)
		gw_log("%s: probe %s: %s -> %s", be->addr, why, fk_bal_state_name(before),
		       fk_bal_state_name(after));
}

/* The --probe-uri request: the parameters nginx would send for a GET of that path from the
 * gateway itself, so that a PHP health script runs as it would for a client. */
static int gw_probe_send(gw *g, gw_backend *be)
{
	fcgi_client_req *r;
	if (fcgi_client_req_new(be->cli, &r))
		return -1;
	const char *uri = g->probe_uri, *q = strchr(uri, '?');
	size_t pl = q ? (size_t)(q - uri) : strlen(uri);
	char path[1024], file[PATH_MAX + 1024];
	snprintf(path, sizeof path, "%.*s", (int)(pl < sizeof path ? pl : sizeof path - 1), uri);
	snprintf(file, sizeof file, "%s%s", g->doc_root, path);
	const fcgi_client_param ps[] = {
	        {"REQUEST_METHOD", "GET"},       {"QUERY_STRING", q ? q + 1 : ""},
	        {"SCRIPT_NAME", path},           {"SCRIPT_FILENAME", file},
	        {"REQUEST_URI", uri},            {"DOCUMENT_URI", path},
	        {"DOCUMENT_ROOT", g->doc_root},  {"SERVER_PROTOCOL", "HTTP/1.1"},
	        {"REQUEST_SCHEME", "http"},      {"GATEWAY_INTERFACE", "CGI/1.1"},
	        {"SERVER_SOFTWARE", g->software}, {"REMOTE_ADDR", "127.0.0.1"},
	        {"SERVER_NAME", "localhost"},    {"REDIRECT_STATUS", "200"},
	        {"HTTP_USER_AGENT", "fcgikit-gateway-probe"},
	};
	/* a probe not answered before the next is due has failed */
	int64_t tmo = g->probe_ms < (int64_t)g->upstream_to ? g->probe_ms : (int64_t)g->upstream_to;
	if (fcgi_client_req_add_params(r, ps, sizeof ps / sizeof ps[0]) ||
	    fcgi_client_req_on_done(r, gw_probe_req_done, be) ||
	    fcgi_client_req_set_timeout(r, (unsigned)(tmo > 1000 ? tmo : 1000)) ||
	    fcgi_client_req_send(r)) {
		fcgi_client_req_free(r);
		return -1;
	}
	return 0;
}

/* GET_VALUES to each backend every probe_ms, on a connection of its own: a backend that
 * stopped answering is ejected without waiting for a request to fail on it, and one that
 * came back is re-admitted. */
static void gw_probe(gw *g, int64_t now)
{
	if (!g->probe_ms || g->stopping)
		return;
	for (size_t i = 0; i < g->nbe; i++) {
		gw_backend *be = &g->be[i];
		if (be->probing || now < be->next_probe)
			continue;
		be->probing = 1;
		if (g->probe_uri ? gw_probe_send(g, be)
		                 : fcgi_client_get_values(be->cli, NULL, 0, gw_probe_done, be)) {
			be->probing = 0;
			be->next_probe = now + g->probe_ms;
		}
	}
}

/* ------------------------------------------------------------------ static files */

/* 1 when the request was answered from --root, 0 when it goes to a backend. */
static int gw_try_static(gw_conn *c)
{
	gw *g = c->g;
	size_t pl = strlen(c->path), el = strlen(g->script_ext);
	if (!g->root || pl == 0 || c->path[pl - 1] == '/')
		return 0;
	if (el && pl >= el && !strcmp(c->path + pl - el, g->script_ext))
		return 0;
	if (!(c->req.method.n == 3 && !memcmp(c->req.method.p, "GET", 3)) && !c->is_head)
		return 0;
	char full[PATH_MAX], real[PATH_MAX];
	if (g->root_len + pl >= sizeof full)
		return 0;
	memcpy(full, g->root, g->root_len);
	memcpy(full + g->root_len, c->path, pl + 1);
	struct stat st;
	if (stat(full, &st) || !S_ISREG(st.st_mode))
		return 0;
	/* The path was normalised already (no ".." left), but a symlink under root may point
	 * anywhere: resolve and require the result to stay under root. */
	if (!realpath(full, real) || strncmp(real, g->root, g->root_len) ||
	    real[g->root_len] != '/') {
		gw_local_response(c, 404, NULL, 0);
		return 1;
	}
	return gw_send_file(c, real);
}

/* Answers with the file at `real` (already confined by the caller): validators, 304,
 * a single byte range. 1 when answered (maybe with 403/404), 0 never. */
static int gw_send_file(gw_conn *c, const char *real)
{
	gw *g = c->g;
	struct stat st;
	int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		gw_local_response(c, errno == EACCES ? 403 : 404, NULL, 0);
		return 1;
	}
	char date[64], lm[64], etag[64];
	gw_http_date(time(NULL), date, sizeof date);
	gw_http_date(st.st_mtime, lm, sizeof lm);
	/* A weak validator from what changes when the file does: size, mtime, inode. */
	snprintf(etag, sizeof etag, "\"%llx-%llx-%llx\"", (unsigned long long)st.st_size,
	         (unsigned long long)st.st_mtime, (unsigned long long)st.st_ino);
	if (g->stopping || !c->keep_alive)
		c->close_after = 1;
	const char *conn_hdr = c->close_after      ? "Connection: close\r\n"
	                       : c->req.minor == 0 ? "Connection: keep-alive\r\n"
	                                           : "";
	/* Conditional GET (RFC 9110 13): If-None-Match wins over If-Modified-Since. */
	const fk_http_header *inm = fk_http_find(&c->req, "if-none-match");
	const fk_http_header *ims = fk_http_find(&c->req, "if-modified-since");
	int not_modified = 0;
	if (inm)
		not_modified = (inm->value.n == 1 && inm->value.p[0] == '*') ||
		               memmem(inm->value.p, inm->value.n, etag, strlen(etag)) != NULL;
	else if (ims)
		not_modified = ims->value.n == strlen(lm) && !memcmp(ims->value.p, lm, ims->value.n);
	if (not_modified) {
		close(fd);
		gw_appendf(&c->out,
		           "HTTP/1.1 304 Not Modified\r\nDate: %s\r\nServer: %s\r\nETag: %s\r\n"
		           "Last-Modified: %s\r\n%s\r\n",
		           date, g->software, etag, lm, conn_hdr);
		c->status = 304;
		c->resp_started = c->resp_done = 1;
		c->state = GW_LOCAL;
		return 1;
	}
	/* One byte range (bytes=A-B, A-, -N), when If-Range (if any) still matches; several
	 * ranges or a malformed one: the whole file, which RFC 9110 14.2 allows. */
	off_t from = 0, len = st.st_size;
	int partial = 0;
	const fk_http_header *rh = fk_http_find(&c->req, "range");
	const fk_http_header *ir = fk_http_find(&c->req, "if-range");
	if (rh && st.st_size > 0 &&
	    (!ir || (ir->value.n == strlen(etag) && !memcmp(ir->value.p, etag, ir->value.n)) ||
	     (ir->value.n == strlen(lm) && !memcmp(ir->value.p, lm, ir->value.n)))) {
		char spec[64];
		if (rh->value.n < sizeof spec && rh->value.n > 6 && !memcmp(rh->value.p, "bytes=", 6)) {
			memcpy(spec, rh->value.p + 6, rh->value.n - 6);
			spec[rh->value.n - 6] = 0;
			char *dash = strchr(spec, '-'), *e1, *e2;
			if (dash && !strchr(spec, ',')) {
				*dash = 0;
				unsigned long long a = strtoull(spec, &e1, 10), b = strtoull(dash + 1, &e2, 10);
				int has_a = *spec && !*e1 && spec[0] != '-' && spec[0] != '+';
				int has_b = dash[1] && !*e2 && dash[1] != '-' && dash[1] != '+';
				unsigned long long size = (unsigned long long)st.st_size;
				if (has_a && (!has_b || b >= a)) {
					if (a >= size) {
						close(fd);
						char extra[64];
						snprintf(extra, sizeof extra, "Content-Range: bytes */%llu\r\n", size);
						gw_local_response(c, 416, extra, 0);
						return 1;
					}
					if (!has_b || b >= size)
						b = size - 1;
					from = (off_t)a;
					len = (off_t)(b - a + 1);
					partial = 1;
				} else if (!has_a && has_b && b > 0) {
					if (b > size)
						b = size;
					from = (off_t)(size - b);
					len = (off_t)b;
					partial = 1;
				}
			}
		}
	}
	char crange[96] = "";
	if (partial)
		snprintf(crange, sizeof crange, "Content-Range: bytes %lld-%lld/%lld\r\n",
		         (long long)from, (long long)(from + len - 1), (long long)st.st_size);
	gw_appendf(&c->out,
	           "HTTP/1.1 %s\r\nDate: %s\r\nServer: %s\r\nContent-Type: %s\r\n"
	           "Content-Length: %lld\r\nLast-Modified: %s\r\nETag: %s\r\n"
	           "Accept-Ranges: bytes\r\n%s%s\r\n",
	           partial ? "206 Partial Content" : "200 OK", date, g->software, gw_mime(real),
	           (long long)len, lm, etag, crange, conn_hdr);
	c->status = partial ? 206 : 200;
	c->resp_started = c->resp_done = 1;
	c->state = GW_LOCAL;
	if (c->is_head || len == 0) {
		close(fd);
		return 1;
	}
	c->file_fd = fd;
	c->file_off = from;
	c->file_left = len;
	c->resp_bytes = (uint64_t)len;
	return 1;
}

/* ------------------------------------------------------------------ upstream */

enum { GW_OVF_MEM = 1, GW_OVF_TEMP, GW_OVF_IO }; /* gw_conn.overflow: why it was cut */

/* Response bytes, in order: into `out`, or — while earlier bytes wait in the temporary file,
 * or once `out` holds --response-buffer and the paused backend still sends (a multiplexed
 * connection is read for the others' sake) — appended to that file. Past --max-temp-file
 * waiting in the file, or --max-buffer in memory, the response is cut (c->overflow; the
 * loop aborts the request and closes the connection). */
static void gw_out(gw_conn *c, const void *data, size_t len)
{
	gw *g = c->g;
	if (!len || c->overflow)
		return;
	int to_file = gw_spill_pending(c) > 0 ||
	              (c->paused && g->max_temp && fk_buf_size(&c->out) >= g->resp_buf);
	if (!to_file) {
		if (fk_buf_append(&c->out, data, len) || fk_buf_size(&c->out) > g->max_buffer)
			c->overflow = GW_OVF_MEM;
		return;
	}
	if (gw_spill_pending(c) + len > g->max_temp) {
		c->overflow = GW_OVF_TEMP;
		return;
	}
	const char *dir = g->temp_dir;
	if (c->spill_fd < 0) {
		int fd = gw_tmpfile(dir);
		if (fd < 0) {
			gw_log("%.*s: temporary file in %s: %s", (int)c->req.target.n,
			       c->req.target.p, dir, strerror(-fd));
			c->overflow = GW_OVF_IO;
			return;
		}
		c->spill_fd = fd;
	}
	const uint8_t *p = data;
	while (len) {
		ssize_t w = pwrite(c->spill_fd, p, len, (off_t)c->spill_w);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			gw_log("%.*s: writing the temporary file in %s: %s", (int)c->req.target.n,
			       c->req.target.p, dir, w ? strerror(errno) : "no progress");
			c->overflow = GW_OVF_IO;
			return;
		}
		p += w;
		len -= (size_t)w;
		c->spill_w += (uint64_t)w;
	}
}

static void gw_emit_body(gw_conn *c, const void *data, size_t len)
{
	if (c->no_body || !len)
		return;
	if (c->cl_left >= 0) {
		if ((uint64_t)c->cl_left < len)
			len = (size_t)c
			              ->cl_left; /* more than it announced: the excess is dropped */
		c->cl_left -= (int64_t)len;
		if (!len)
			return;
	}
	char size[24];
	if (c->chunked_out)
		gw_out(c, size, (size_t)snprintf(size, sizeof size, "%zx\r\n", len));
	gw_out(c, data, len);
	if (c->chunked_out)
		gw_out(c, "\r\n", 2);
	c->resp_bytes += len;
}

static int gw_hdr_is(const fcgi_header *h, const char *name)
{
	return h->name_len == strlen(name) && !strncasecmp(h->name, name, h->name_len);
}

static void gw_emit_head(gw_conn *c, const fcgi_cgi_head *h, const fcgi_header *hs)
{
	gw *g = c->g;
	int st = h->status;
	c->status = st;
	c->no_body = c->is_head || st < 200 || st == 204 || st == 304;
	if (st < 200) /* an interim status cannot be the final answer of a CGI program */
		c->status = st = 502;
	char date[64];
	gw_http_date(time(NULL), date, sizeof date);
	if (h->reason && h->reason_len)
		gw_appendf(&c->out, "HTTP/1.1 %d %.*s\r\n", st, (int)h->reason_len, h->reason);
	else
		gw_appendf(&c->out, "HTTP/1.1 %d %s\r\n", st, gw_reason(st));
	gw_appendf(&c->out, "Date: %s\r\nServer: %s\r\n", date, g->software);
	for (size_t i = 0; i < h->nheaders; i++) {
		const fcgi_header *x = &hs[i];
		/* hop-by-hop fields are the gateway's to set */
		if (gw_hdr_is(x, "connection") || gw_hdr_is(x, "transfer-encoding") ||
		    gw_hdr_is(x, "keep-alive") || gw_hdr_is(x, "date") || gw_hdr_is(x, "server"))
			continue;
		if (gw_hdr_is(x, "content-length")) {
			uint64_t v = 0;
			size_t k = 0;
			for (;
			     k < x->value_len && x->value[k] >= '0' && x->value[k] <= '9' && k < 18;
			     k++)
				v = v * 10 + (uint64_t)(x->value[k] - '0');
			if (k == 0 || k != x->value_len || c->cl_left >= 0)
				continue; /* unusable or repeated: frame it ourselves instead */
			c->cl_left = (int64_t)v;
		}
		gw_appendf(&c->out, "%.*s: %.*s\r\n", (int)x->name_len, x->name, (int)x->value_len,
		           x->value);
	}
	if (c->cl_left < 0 && !c->no_body) {
		if (c->req.minor >= 1) {
			c->chunked_out = 1;
			fk_buf_append(&c->out, "Transfer-Encoding: chunked\r\n", 28);
		} else {
			c->close_after = 1; /* HTTP/1.0: the end of the connection ends the body */
		}
	}
	if (!c->keep_alive || g->stopping)
		c->close_after = 1;
	if (c->close_after)
		fk_buf_append(&c->out, "Connection: close\r\n", 19);
	else if (c->req.minor == 0)
		fk_buf_append(&c->out, "Connection: keep-alive\r\n", 24);
	fk_buf_append(&c->out, "\r\n", 2);
	c->resp_started = 1;
}

static void gw_on_stderr(gw_conn *c, const char *data, size_t len)
{
	/* One log line per line the application wrote, prefixed so it can be traced back. */
	if (len == 0 && fk_buf_size(&c->errline))
		data = "\n", len = 1;
	for (size_t i = 0; i < len; i++) {
		if (data[i] != '\n' && fk_buf_size(&c->errline) < 4096) {
			fk_buf_append(&c->errline, &data[i], 1);
			continue;
		}
		if (data[i] != '\n')
			continue; /* over-long line: the rest is dropped */
		gw_log("%s: %.*s: stderr: %.*s", c->up_name ? c->up_name : "?",
		       (int)c->req.target.n, c->req.target.p, (int)fk_buf_size(&c->errline),
		       (const char *)fk_buf_head(&c->errline));
		fk_buf_reset(&c->errline);
	}
}

/* Whether the CGI head asks for another resource; records it in c->redirect. */
static int gw_wants_redirect(gw_conn *c, const fcgi_cgi_head *h, const fcgi_header *hs)
{
	gw *g = c->g;
	for (size_t i = 0; g->sendfile_root && i < h->nheaders; i++)
		if ((gw_hdr_is(&hs[i], "x-accel-redirect") || gw_hdr_is(&hs[i], "x-sendfile")) &&
		    hs[i].value_len && hs[i].value[0] == '/') {
			c->redirect = strndup(hs[i].value, hs[i].value_len);
			c->redirect_file = 1;
			return c->redirect != NULL;
		}
	if (!h->reason && h->location && h->location_len && h->location[0] == '/' &&
	    (h->location_len < 2 || h->location[1] != '/')) {
		c->redirect = strndup(h->location, h->location_len);
		return c->redirect != NULL;
	}
	return 0;
}

static void gw_on_output(fcgi_client_req *r, int stream, const void *data, size_t len, void *ud)
{
	gw_conn *c = ud;
	if (stream == FCGI_CLIENT_STDERR) {
		gw_on_stderr(c, data, len);
		return;
	}
	if (len)
		c->got_output = 1;
	if (c->cgi_bad || c->redirect)
		return; /* a redirect's own body is not shown */
	if (!c->cgi_parsed) {
		if (!len)
			return; /* STDOUT ended before a head: judged when the request is done */
		if (fk_buf_append(&c->cgihead, data, len)) {
			c->cgi_bad = 1;
			return;
		}
		fcgi_cgi_head h;
		fcgi_header hs[GW_CGI_HEADERS_MAX];
		ssize_t n = fcgi_cgi_head_parse((const char *)fk_buf_head(&c->cgihead),
		                                fk_buf_size(&c->cgihead), &h, hs,
		                                GW_CGI_HEADERS_MAX, GW_CGI_HEAD_MAX);
		if (n == 0)
			return;
		if (n < 0) {
			c->cgi_bad = 1;
			gw_mark_dirty(c);
			return;
		}
		c->cgi_parsed = 1;
		if (gw_wants_redirect(c, &h, hs)) {
			fk_buf_free(&c->cgihead);
			gw_mark_dirty(c);
			return;
		}
		gw_emit_head(c, &h, hs);
		gw_emit_body(c, fk_buf_head(&c->cgihead) + n, fk_buf_size(&c->cgihead) - (size_t)n);
		fk_buf_free(&c->cgihead);
	} else if (len) {
		gw_emit_body(c, data, len);
	} else if (c->chunked_out) {
		gw_out(c, "0\r\n\r\n", 5);
		c->chunked_out = 0; /* terminated */
	}
	/* The client is behind: hold the backend (alone on its connection, it then waits on a
	 * full socket, like nginx's unbuffered proxying); gw_up_resume lets it go on. */
	if (!c->paused && fk_buf_size(&c->out) >= c->g->resp_buf) {
		c->paused = 1;
		fcgi_client_req_pause(r, 1);
	}
	gw_mark_dirty(c);
}

static void gw_on_done(fcgi_client_req *r, int err, void *ud)
{
	(void)r;
	gw_conn *c = ud;
	c->up_done = 1;
	c->up_err = err;
	c->paused = 0; /* nothing more comes: the next upstream request starts unpaused */
	gw_mark_dirty(c);
}

/* An upstream failure, seen from the HTTP side: an error page if nothing was sent yet, else
 * the connection is cut (a truncated body must not look complete). */
static void gw_up_fail(gw_conn *c, int status)
{
	if (!c->resp_started) {
		gw_local_response(c, status, NULL, 0);
	} else {
		c->close_after = 1;
		c->resp_done = 1;
		c->state = GW_LOCAL;
	}
}

/* The request body cannot be completed (the store failed, the client stopped sending):
 * whatever a backend or the authorizer holds is abandoned, without blaming them, and the
 * connection closes after the answer: where the next request would start is unknown. */
static void gw_body_abort(gw_conn *c, int status)
{
	gw_up_drop(c);
	if (c->auth)
		fcgi_client_req_free(c->auth);
	c->auth = NULL;
	c->auth_done = 0;
	c->keep_alive = 0;
	c->close_after = 1;
	fk_buf_reset(&c->in);
	gw_up_fail(c, status);
}

static void gw_dispatch(gw_conn *c);

/* Serves what the application pointed at. A local redirect is a new GET for that URI, with
 * the original request's header fields, served by the same rules (static or a backend); an
 * X-Accel-Redirect / X-Sendfile path is a file under --sendfile-root, never outside it. */
static void gw_follow_redirect(gw_conn *c)
{
	gw *g = c->g;
	char *target = c->redirect;
	int file = c->redirect_file;
	c->redirect = NULL;
	c->redirect_file = 0;
	if (++c->redirects > 5) {
		gw_log("%.*s: more than 5 local redirects", (int)c->req.target.n, c->req.target.p);
		free(target);
		gw_local_response(c, 500, NULL, 0);
		return;
	}
	if (file) {
		char norm[PATH_MAX], full[PATH_MAX], real[PATH_MAX];
		size_t tl = strlen(target);
		int ok = tl < sizeof norm && gw_path_normalize(target, tl, norm) >= 0 &&
		         g->sendfile_root_len + strlen(norm) < sizeof full;
		if (ok) {
			snprintf(full, sizeof full, "%s%s", g->sendfile_root, norm);
			ok = realpath(full, real) && !strncmp(real, g->sendfile_root, g->sendfile_root_len) &&
			     real[g->sendfile_root_len] == '/';
		}
		free(target);
		if (!ok || !gw_send_file(c, real))
			gw_local_response(c, 404, NULL, 0);
		return;
	}
	/* A new head: GET TARGET, then the original fields but those about the old body. */
	fk_buf nh = {0};
	gw_appendf(&nh, "GET %s HTTP/1.%d\r\n", target, c->req.minor);
	free(target);
	for (unsigned i = 0; i < c->req.nheaders; i++) {
		const fk_http_header *x = &c->req.headers[i];
		if (fk_http_header_is(x, "content-length") || fk_http_header_is(x, "transfer-encoding") ||
		    fk_http_header_is(x, "content-type") || fk_http_header_is(x, "expect"))
			continue;
		gw_appendf(&nh, "%.*s: %.*s\r\n", (int)x->name.n, x->name.p, (int)x->value.n,
		           x->value.p);
	}
	fk_buf_append(&nh, "\r\n", 2);
	fk_buf_reset(&c->head);
	fk_buf_append(&c->head, fk_buf_head(&nh), fk_buf_size(&nh));
	fk_buf_free(&nh);
	c->req.headers = c->hs;
	c->req.nheaders = FK_HTTP_MAX_HEADERS_DEFAULT;
	fk_http_limits lim = {.max_body = g->max_body};
	size_t n = fk_buf_size(&c->head);
	char *path = NULL;
	if (fk_http_parse_request((const char *)fk_buf_head(&c->head), n, 0, &lim, &c->req, NULL,
	                          NULL) != (int)n ||
	    !(path = malloc(c->req.path.n + 1)) ||
	    gw_path_normalize(c->req.path.p, c->req.path.n, path) < 0) {
		free(path);
		gw_local_response(c, 500, NULL, 0);
		return;
	}
	free(c->path);
	c->path = path;
	/* A GET: the body is not sent again; what the client still sends of it is dropped. */
	gw_body_reset(&c->body);
	c->body_drop = 1;
	gw_params_free(&c->params);
	fk_buf_reset(&c->cgihead);
	c->cgi_parsed = c->cgi_bad = c->got_output = c->overloaded = 0;
	c->cl_left = -1;
	fk_bal_tried_clear(&c->tried);
	gw_dispatch(c);
}

/* Called outside the client library once the request's done callback has run. */
static void gw_up_finished(gw_conn *c)
{
	gw *g = c->g;
	int err = c->up_err, idx = c->up_idx;
	int64_t now = fk_now_ms();
	c->up_ms = now - c->t_up;
	char why[256];
	snprintf(why, sizeof why, "%s", fcgi_client_req_strerror(c->up));
	fcgi_client_req_free(c->up);
	c->up = NULL;
	c->up_done = 0;
	if (fk_buf_size(&c->errline))
		gw_on_stderr(c, "", 0);

	/* Failures of our side of the body: not the backend's doing, so not reported to the
	 * balancer, and not retried elsewhere. A timeout while the backend had taken every byte
	 * the client had sent so far is the client's silence (the backend waited for input). */
	if (err != FCGI_OK && c->body_ioerr) {
		gw_log("%.*s: reading the request body back: %s", (int)c->req.target.n,
		       c->req.target.p, strerror(c->body_ioerr));
		fk_bal_release(g->bal, idx);
		if (c->body_left)
			c->close_after = 1;
		gw_up_fail(c, 500);
		return;
	}
	if (err == FCGI_ETIMEDOUT && c->body_left && c->body_sent >= gw_body_len(&c->body)) {
		gw_log("%s:%s: %.*s: request body stalled with %llu byte(s) to come: 408", c->raddr,
		       c->rport, (int)c->req.target.n, c->req.target.p,
		       (unsigned long long)c->body_left);
		fk_bal_release(g->bal, idx);
		gw_body_abort(c, 408);
		return;
	}

	if (err == FCGI_OK) {
		g->be[idx].ok++;
		int64_t us = gw_now_us() - c->t_up_us;
		if (g->be[idx].lat)
			fk_hist_add(g->be[idx].lat, (uint64_t)(us > 0 ? us : 0));
		fk_bal_report_success(g->bal, idx, now);
		fk_bal_release(g->bal, idx);
		if (!c->cgi_parsed) {
			gw_log("%s: %.*s: %s", g->be[idx].addr, (int)c->req.target.n,
			       c->req.target.p,
			       c->cgi_bad ? "malformed CGI response head" : "no CGI response head");
			gw_up_fail(c, 502);
			return;
		}
		if (c->redirect) {
			gw_follow_redirect(c);
			return;
		}
		if (c->cl_left > 0 || c->chunked_out)
			c->close_after = 1; /* shorter than announced, or STDOUT never ended */
		c->resp_done = 1;
		c->state = GW_LOCAL;
		return;
	}
	if (err == FCGI_EOVERLOADED) {
		fk_bal_release(g->bal, idx);
		fk_bal_report_overloaded(g->bal, idx, now);
		c->overloaded = 1;
		if (!c->got_output) {
			gw_up_start(c);
			return;
		}
		gw_up_fail(c, 503);
		return;
	}
	g->be[idx].failed++;
	fk_bal_fail_kind kind = FK_BAL_FAIL_RESET;
	int status = 502;
	if (err == FCGI_ETIMEDOUT) {
		kind = FK_BAL_FAIL_TIMEOUT;
		status = 504;
	} else if (err == FCGI_EPROTO) {
		kind = FK_BAL_FAIL_PROTOCOL;
	} else if (err == FCGI_ESYS && !c->got_output) {
		kind = FK_BAL_FAIL_CONNECT;
	}
	gw_log("%s: %.*s: %s", g->be[idx].addr, (int)c->req.target.n, c->req.target.p, why);
	if (err == FCGI_ECANTMPX || err == FCGI_EUNKNOWNROLE) {
		fk_bal_report_success(g->bal, idx, now); /* it answered: it works, differently */
		fk_bal_release(g->bal, idx);
	} else {
		fk_bal_report_failure(g->bal, idx, now, kind);
		fk_bal_release(g->bal, idx);
		/* Refused or reset before any response byte: nothing reached the client, so another
		 * backend may answer. A timeout is retried only for GET and HEAD (as nginx's
		 * default fastcgi_next_upstream does): the application may still be working on it,
		 * and only those may run twice. */
		int idempotent = (c->req.method.n == 3 && !memcmp(c->req.method.p, "GET", 3)) ||
		                 (c->req.method.n == 4 && !memcmp(c->req.method.p, "HEAD", 4));
		if (!c->got_output && (err != FCGI_ETIMEDOUT || idempotent)) {
			gw_up_start(c);
			return;
		}
	}
	gw_up_fail(c, status);
}

/* Picks a backend not tried yet for this request and sends the request there. */
/* fk_bal_pick with the key --balance hashes: the request-target (path and query, as sent),
 * the client address, or a header's value (first one; requests without it go round-robin,
 * so they do not all land on the one backend the empty key maps to). */
static int gw_pick(gw_conn *c, int64_t now)
{
	gw *g = c->g;
	switch (g->balance) {
	case GW_BAL_HASH_URI:
		return fk_bal_pick_hash(g->bal, now, c->req.target.p, c->req.target.n, &c->tried);
	case GW_BAL_HASH_CLIENT:
		return fk_bal_pick_hash(g->bal, now, c->raddr, strlen(c->raddr), &c->tried);
	case GW_BAL_HASH_HEADER:
		for (unsigned i = 0; i < c->req.nheaders; i++) {
			const fk_http_header *h = &c->req.headers[i];
			if (h->name.n == strlen(g->hash_header) &&
			    !strncasecmp(h->name.p, g->hash_header, h->name.n))
				return fk_bal_pick_hash(g->bal, now, h->value.p, h->value.n, &c->tried);
		}
		return fk_bal_pick_wrr(g->bal, now, &c->tried);
	default:
		return fk_bal_pick(g->bal, now, NULL, 0, &c->tried);
	}
}

/* The body source of a backend request: the store from where this request got to.
 * FCGI_EAGAIN while a sized body is still arriving (gw_conn_advance resumes the request as
 * bytes come), 0 at its end. */
static ssize_t gw_body_cb(fcgi_client_req *r, void *buf, size_t size, void *ud)
{
	(void)r;
	gw_conn *c = ud;
	ssize_t n = gw_body_read(&c->body, c->body_sent, buf, size);
	if (n < 0) {
		c->body_ioerr = (int)-n;
		return FCGI_ESYS;
	}
	if (n == 0)
		return c->body_left ? FCGI_EAGAIN : 0;
	c->body_sent += (uint64_t)n;
	return n;
}

static void gw_up_start(gw_conn *c)
{
	gw *g = c->g;
	int64_t now = fk_now_ms();
	/* What a backend may hold: what it takes at once (the client's connections, times the
	 * requests each carries when it multiplexes) plus --queue waiting in the client. A
	 * backend past it is skipped; when all are, the answer is 503 at once rather than a
	 * queue that only grows. */
	int any_up = 0;
	for (size_t i = 0; i < g->nbe; i++) {
		long conns = fcgi_client_get_opt(g->be[i].cli, FCGI_CLIENT_MAX_CONNS);
		long per = fcgi_client_mpxs(g->be[i].cli)
		               ? fcgi_client_get_opt(g->be[i].cli, FCGI_CLIENT_MAX_REQS_PER_CONN)
		               : 1;
		long cap = conns * (per > 0 ? per : 1) + (long)g->queue;
		fk_bal_set_capacity(g->bal, (int)i, cap > 0 && cap < 1000000 ? (unsigned)cap : 0,
		                    FK_BAL_CAP_LEARNED);
		any_up |= fk_bal_backend_state(g->bal, (int)i, now) == FK_BAL_UP;
	}
	int idx = gw_pick(c, now);
	if (idx < 0) {
		if (any_up && !c->overloaded && !c->got_output) {
			int all_full = 1;
			for (size_t i = 0; i < g->nbe; i++)
				all_full &= fk_bal_backend_state(g->bal, (int)i, now) != FK_BAL_UP ||
				            (fk_bal_capacity(g->bal, (int)i) &&
				             g->bal->b[i].outstanding >= fk_bal_capacity(g->bal, (int)i));
			if (all_full) {
				gw_log("%.*s: every backend full (queue %u each): 503", (int)c->req.target.n,
				       c->req.target.p, g->queue);
				gw_local_response(c, 503, "Retry-After: 1\r\n", 0);
				return;
			}
		}
		gw_up_fail(c, c->overloaded ? 503 : 502);
		return;
	}
	fk_bal_tried_add(&c->tried, idx);
	fk_bal_acquire(g->bal, idx);
	c->up_idx = idx;
	c->up_name = g->be[idx].addr;
	c->t_up = now;
	c->t_up_us = gw_now_us();
	c->state = GW_UPSTREAM;
	fcgi_client_req *r;
	int rc = fcgi_client_req_new(g->be[idx].cli, &r);
	if (rc) {
		fk_bal_release(g->bal, idx);
		gw_up_fail(c, 500);
		return;
	}
	for (size_t i = 0; i < c->params.n && !rc; i++)
		rc = fcgi_client_req_add_param(r, c->params.v[i].name, c->params.v[i].value);
	c->body_sent = 0; /* a retry sends the body again from its start: the store kept it */
	if (!rc && c->req.body != FK_HTTP_BODY_NONE) {
		if (!c->body_left && !gw_body_spilled(&c->body))
			/* complete and in memory: a plain buffer, which the library can also rewind
			 * by itself (a kept-alive connection found closed) */
			rc = gw_body_len(&c->body) ? fcgi_client_req_body(r, c->body.mem,
			                                                  (size_t)gw_body_len(&c->body))
			                           : FCGI_OK;
		else
			rc = fcgi_client_req_body_cb(r, gw_body_cb, c);
	}
	if (!rc)
		rc = fcgi_client_req_on_output(r, gw_on_output, c);
	if (!rc)
		rc = fcgi_client_req_on_done(r, gw_on_done, c);
	if (!rc)
		rc = fcgi_client_req_send(r);
	if (rc) {
		gw_log("%s: cannot queue the request: %s", c->up_name, fcgi_strerror(rc));
		fcgi_client_req_free(r);
		fk_bal_release(g->bal, idx);
		gw_up_fail(c, 500);
		return;
	}
	c->up = r;
}


/* ------------------------------------------------------------------ authorizer */

#define GW_AUTH_OUT_MAX (64 * 1024)

static void gw_auth_output(fcgi_client_req *r, int stream, const void *data, size_t len, void *ud)
{
	(void)r;
	gw_conn *c = ud;
	if (stream == FCGI_CLIENT_STDERR) {
		gw_on_stderr(c, data, len);
		return;
	}
	if (len && fk_buf_size(&c->auth_out) + len <= GW_AUTH_OUT_MAX)
		fk_buf_append(&c->auth_out, data, len);
	else if (len)
		c->auth_err = FCGI_ETOOBIG;
}

static void gw_auth_done_cb(fcgi_client_req *r, int err, void *ud)
{
	(void)r;
	gw_conn *c = ud;
	c->auth_done = 1;
	if (!c->auth_err)
		c->auth_err = err;
	gw_mark_dirty(c);
}

/* The FastCGI Authorizer role (spec 6.3): the same parameters, no body. Its 200 lets the
 * request go on, carrying every "Variable-NAME: value" as the parameter NAME; any other
 * answer goes to the client as it is. */
static void gw_auth_start(gw_conn *c)
{
	gw *g = c->g;
	gw_cgi_in in = {
	        .req = &c->req,
	        .path = c->path,
	        .root = g->doc_root,
	        .script_ext = g->script_ext,
	        .index = g->index,
	        .remote_addr = c->raddr,
	        .remote_port = c->rport,
	        .server_addr = c->laddr,
	        .server_port = c->lport,
	        .software = g->software,
	};
	gw_params ps = {0};
	fcgi_client_req *r = NULL;
	int rc = gw_cgi_map(&in, &ps) ? FCGI_ENOMEM : fcgi_client_req_new(g->auth, &r);
	if (!rc)
		rc = fcgi_client_req_set_role(r, FCGI_ROLE_AUTHORIZER);
	for (size_t i = 0; i < ps.n && !rc; i++)
		rc = fcgi_client_req_add_param(r, ps.v[i].name, ps.v[i].value);
	gw_params_free(&ps);
	if (!rc)
		rc = fcgi_client_req_on_output(r, gw_auth_output, c);
	if (!rc)
		rc = fcgi_client_req_on_done(r, gw_auth_done_cb, c);
	if (!rc)
		rc = fcgi_client_req_send(r);
	if (rc) {
		gw_log("%s: cannot ask the authorizer: %s", g->auth_addr, fcgi_strerror(rc));
		if (r)
			fcgi_client_req_free(r);
		gw_local_response(c, 500, NULL, 0);
		return;
	}
	c->auth = r;
	c->state = GW_UPSTREAM;
	c->t_up = fk_now_ms();
}

static void gw_auth_finished(gw_conn *c)
{
	gw *g = c->g;
	int err = c->auth_err;
	fcgi_client_req_free(c->auth);
	c->auth = NULL;
	c->auth_done = 0;
	fcgi_cgi_head h;
	fcgi_header hs[GW_CGI_HEADERS_MAX];
	ssize_t n = err ? -1
	                : fcgi_cgi_head_parse((const char *)fk_buf_head(&c->auth_out),
	                                      fk_buf_size(&c->auth_out), &h, hs, GW_CGI_HEADERS_MAX,
	                                      GW_CGI_HEAD_MAX);
	if (n <= 0) {
		gw_log("%s: %.*s: authorizer failed: %s", g->auth_addr, (int)c->req.target.n,
		       c->req.target.p, err ? fcgi_strerror(err) : "no CGI response head");
		gw_local_response(c, err == FCGI_ETIMEDOUT ? 504 : 502, NULL, 0);
		return;
	}
	if (h.status == 200) {
		gw_params_free(&c->params);
		for (size_t i = 0; i < h.nheaders; i++) {
			const fcgi_header *x = &hs[i];
			if (x->name_len <= 9 || strncasecmp(x->name, "variable-", 9))
				continue;
			char name[256];
			size_t nl = x->name_len - 9 < sizeof name - 1 ? x->name_len - 9 : sizeof name - 1;
			memcpy(name, x->name + 9, nl);
			name[nl] = 0;
			if (gw_params_set(&c->params, name, x->value, x->value_len)) {
				gw_local_response(c, 500, NULL, 0);
				return;
			}
		}
		c->authorized = 1;
		fk_buf_reset(&c->auth_out);
		gw_dispatch(c);
		return;
	}
	/* Refused: the authorizer's own response, minus its Variable-* lines. */
	fcgi_header keep[GW_CGI_HEADERS_MAX];
	fcgi_cgi_head kh = h;
	kh.nheaders = 0;
	for (size_t i = 0; i < h.nheaders; i++)
		if (hs[i].name_len < 9 || strncasecmp(hs[i].name, "variable-", 9))
			keep[kh.nheaders++] = hs[i];
	gw_emit_head(c, &kh, keep);
	gw_emit_body(c, fk_buf_head(&c->auth_out) + n, fk_buf_size(&c->auth_out) - (size_t)n);
	if (c->chunked_out) {
		fk_buf_append(&c->out, "0\r\n\r\n", 5);
		c->chunked_out = 0;
	}
	c->resp_done = 1;
	c->state = GW_LOCAL;
}

/* ------------------------------------------------------------------ request intake */

static void gw_dispatch(gw_conn *c)
{
	gw *g = c->g;
	g->requests++;
	if (gw_status_page(c))
		return;
	if (g->auth && !c->authorized && !strncmp(c->path, g->auth_prefix, strlen(g->auth_prefix))) {
		gw_auth_start(c);
		return;
	}
	if (gw_try_static(c))
		return;
	gw_cgi_in in = {
	        .req = &c->req,
	        .path = c->path,
	        .root = g->doc_root,
	        .script_ext = g->script_ext,
	        .index = g->index,
	        .has_body = c->req.body != FK_HTTP_BODY_NONE,
	        /* a sized body may still be on its way: its length is the announced one */
	        .body_len = c->req.body == FK_HTTP_BODY_LENGTH ? c->req.content_length
	                                                       : gw_body_len(&c->body),
	        .remote_addr = c->raddr,
	        .remote_port = c->rport,
	        .server_addr = c->laddr,
	        .server_port = c->lport,
	        .software = g->software,
	};
	gw_params vars = c->params; /* the Authorizer's Variable-* results, if any */
	c->params = (gw_params){0};
	if (gw_cgi_map(&in, &c->params)) {
		gw_params_free(&vars);
		gw_local_response(c, 500, NULL, 1);
		return;
	}
	for (size_t i = 0; i < vars.n; i++)
		if (gw_params_set(&c->params, vars.v[i].name, vars.v[i].value, strlen(vars.v[i].value))) {
			gw_params_free(&vars);
			gw_local_response(c, 500, NULL, 1);
			return;
		}
	gw_params_free(&vars);
	gw_up_start(c);
}

/* The head is complete at in[0..n): keep a copy (the `in` buffer moves as it grows) and
 * set the request up. */
static void gw_head_done(gw_conn *c, size_t n)
{
	gw *g = c->g;
	fk_buf_reset(&c->head);
	if (fk_buf_append(&c->head, fk_buf_head(&c->in), n)) {
		gw_conn_close(c);
		return;
	}
	fk_buf_consume(&c->in, n);
	c->req.headers = c->hs;
	c->req.nheaders = FK_HTTP_MAX_HEADERS_DEFAULT;
	fk_http_limits lim = {.max_body = g->max_body};
	int st = 0;
	/* Parsing the same bytes again gives the same answer (the parser is a function of the
	 * bytes), now with slices into the copy. */
	if (fk_http_parse_request((const char *)fk_buf_head(&c->head), n, 0, &lim, &c->req, &st,
	                          NULL) != (int)n) {
		gw_conn_close(c);
		return;
	}
	c->have_req = 1;
	c->t_start = fk_now_ms();
	c->is_head = c->req.method.n == 4 && !memcmp(c->req.method.p, "HEAD", 4);
	c->keep_alive = c->req.keep_alive && !g->stopping;
	c->path = malloc(c->req.path.n + 1);
	if (!c->path) {
		gw_local_response(c, 500, NULL, 1);
		return;
	}
	if (c->req.form == FK_HTTP_FORM_ASTERISK ||
	    gw_path_normalize(c->req.path.p, c->req.path.n, c->path) < 0) {
		/* the body (if any) will not be read: the framing is lost, so close */
		gw_local_response(c, 400, NULL, 1);
		return;
	}
	c->state = GW_BODY;
	if (c->req.body == FK_HTTP_BODY_LENGTH) {
		/* not reserved up front: an announced length costs memory only as it arrives */
		c->body_left = c->req.content_length;
	} else if (c->req.body == FK_HTTP_BODY_CHUNKED) {
		fk_http_chunked_init(&c->ch);
		c->ch.max_body = g->max_body;
	}
	/* RFC 9110 §10.1.1: the client waits for this before sending the body. Skipped when
	 * the body is already here (the client did not wait). */
	if (c->req.expect_continue && !fk_buf_size(&c->in))
		fk_buf_append(&c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

/* Appends decoded body bytes to the store; a failure (the temporary file: ENOSPC, EIO, ...)
 * ends the request with 500. 0 or -1. */
static int gw_body_put(gw_conn *c, const void *p, size_t n)
{
	int rc = c->body_drop ? 0 : gw_body_append(&c->body, p, n);
	if (!rc)
		return 0;
	gw_log("%s:%s: %.*s: storing the request body (temp dir %s): %s: 500", c->raddr, c->rport,
	       (int)c->req.target.n, c->req.target.p, c->g->temp_dir,
	       strerror(-rc));
	gw_body_abort(c, 500);
	return -1;
}

/* Moves body bytes from `in` to the store: a sized body by its length (in GW_BODY, and on
 * while the request is at a backend), a chunked one decoded (in GW_BODY only: it is
 * complete before it is sent). Returns 1 when the body is complete, 0 for more, -1 when the
 * connection got an error response. */
static int gw_body_take(gw_conn *c)
{
	if (c->state != GW_BODY || c->req.body != FK_HTTP_BODY_CHUNKED) {
		size_t n = fk_buf_size(&c->in);
		if (n > c->body_left)
			n = (size_t)c->body_left;
		if (n) {
			if (gw_body_put(c, fk_buf_head(&c->in), n))
				return -1;
			fk_buf_consume(&c->in, n);
			c->body_left -= n;
		}
		return c->body_left == 0;
	}
	for (;;) {
		const char *d;
		size_t dl;
		int done = 0;
		int rc = fk_http_chunked_feed(&c->ch, (const char *)fk_buf_head(&c->in),
		                              fk_buf_size(&c->in), &d, &dl, &done);
		if (rc < 0) {
			gw_local_response(c, c->ch.status ? c->ch.status : 400, NULL, 1);
			return -1;
		}
		if (dl && gw_body_put(c, d, dl))
			return -1;
		fk_buf_consume(&c->in, (size_t)rc);
		if (done)
			return 1;
		if (rc == 0 || !fk_buf_size(&c->in))
			return 0;
	}
}

/* Makes every step the buffered input allows. */
static void gw_conn_advance(gw_conn *c)
{
	gw *g = c->g;
	while (!c->dead) {
		if (c->state == GW_HEAD) {
			size_t n = fk_buf_size(&c->in);
			if (n && c->body_skip) {
				size_t k = n < c->body_skip ? n : (size_t)c->body_skip;
				fk_buf_consume(&c->in, k);
				c->body_skip -= k;
				n -= k;
			}
			if (!n)
				return; /* idle between requests; when stopping, gw_stop_sweep */
			c->req.headers = c->hs;
			c->req.nheaders = FK_HTTP_MAX_HEADERS_DEFAULT;
			int st = 0;
			const char *why = NULL;
			fk_http_limits lim = {.max_body = g->max_body};
			c->is_head = 0;
			int rc = fk_http_parse_request((const char *)fk_buf_head(&c->in), n, 0,
			                               &lim, &c->req, &st, &why);
			if (rc == FCGI_EAGAIN)
				return;
			if (rc < 0) {
				gw_log("%s:%s: request refused: %d %s", c->raddr, c->rport, st,
				       why ? why : "");
				c->keep_alive = 0;
				gw_local_response(c, st ? st : 400, NULL, 1);
				fk_buf_reset(&c->in);
				break;
			}
			gw_head_done(c, (size_t)rc);
			continue;
		}
		if (c->state == GW_BODY) {
			int rc = gw_body_take(c);
			/* A chunked body is complete before it is sent (CONTENT_LENGTH must be exact),
			 * and so is a sized one that fits in memory (a slow client then holds no
			 * backend slot while it types). A larger sized body goes now, streamed from
			 * the store as it comes. */
			if (rc == 0 && (!c->body_left || c->req.content_length <= g->body_mem))
				return;
			if (rc >= 0)
				gw_dispatch(c);
			break;
		}
		if (c->body_left && c->state != GW_LINGER) {
			/* Streaming. Once answered (LOCAL: nothing will read it any more), the rest is
			 * only read to find the next request. */
			if (c->state == GW_LOCAL)
				c->body_drop = 1;
			uint64_t before = c->body_left;
			if (gw_body_take(c) >= 0 && c->body_left != before && c->up)
				fcgi_client_req_resume(c->up);
		}
		break;
	}
	if (!c->dead && c->state == GW_LOCAL)
		gw_conn_flush(c);
}

static void gw_conn_read(gw_conn *c)
{
	if (c->state == GW_LINGER) {
		char sink[4096];
		ssize_t n = recv(c->fd, sink, sizeof sink, 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			gw_conn_close(c);
		return;
	}
	for (int i = 0; i < 4; i++) {
		if (c->state != GW_HEAD && c->state != GW_BODY &&
		    fk_buf_size(&c->in) >= GW_PIPELINE_MAX)
			return;
		if (fk_buf_reserve(&c->in, GW_READ_CHUNK)) {
			gw_conn_close(c);
			return;
		}
		ssize_t n = recv(c->fd, c->in.data + c->in.len, GW_READ_CHUNK, 0);
		if (n > 0) {
			if (c->state == GW_HEAD && fk_buf_size(&c->in) == 0)
				c->t_head = fk_now_ms();
			c->in.len += (size_t)n;
			c->t_act = fk_now_ms();
			if ((size_t)n < GW_READ_CHUNK)
				return;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		/* EOF or error. A client that went away mid-request: the backend's work is
		 * abandoned (gw_conn_close aborts the FastCGI request). */
		gw_conn_close(c);
		return;
	}
}

/* ------------------------------------------------------------------ loop */

static void gw_accept(gw *g)
{
	for (int i = 0; i < 64 && g->nconns < g->max_conns; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(g->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				gw_log("accept: %s", strerror(errno));
			return;
		}
		gw_conn *c = calloc(1, sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		c->kind = GW_T_CONN;
		c->g = g;
		c->fd = fd;
		c->file_fd = -1;
		c->spill_fd = -1;
		gw_body_init(&c->body, g->body_mem, g->temp_dir);
		c->cl_left = -1;
		c->up_ms = -1;
		c->t_act = c->t_head = fk_now_ms();
		gw_addr_strings(&ss, c->raddr, sizeof c->raddr, c->rport, sizeof c->rport);
		struct sockaddr_storage ls;
		socklen_t ll = sizeof ls;
		if (!getsockname(fd, (struct sockaddr *)&ls, &ll))
			gw_addr_strings(&ls, c->laddr, sizeof c->laddr, c->lport, sizeof c->lport);
		if (ss.ss_family != AF_UNIX) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		}
		if (fk_ev_add(&g->ev, fd, FK_EV_IN, c)) {
			close(fd);
			free(c);
			continue;
		}
		c->ev_mask = FK_EV_IN;
		c->next = g->conns;
		if (g->conns)
			g->conns->prev = c;
		g->conns = c;
		g->nconns++;
	}
	if (g->nconns >= g->max_conns && !g->lpaused) {
		fk_ev_mod(&g->ev, g->lfd, 0, &g->listen_kind); /* resumed when one closes */
		g->lpaused = 1;
	}
}

static void gw_sweep(gw *g, int64_t now)
{
	for (gw_conn *c = g->conns, *next; c; c = next) {
		next = c->next;
		int64_t limit = 0;
		if (c->state == GW_LINGER)
			limit = c->t_act + GW_LINGER_MS;
		else if (fk_buf_size(&c->out) || c->file_left)
			limit = c->t_act + g->send_to;
		else if (c->state == GW_HEAD && fk_buf_size(&c->in))
			limit = c->t_head + g->header_to;
		else if (c->state == GW_HEAD)
			limit = c->t_act + g->idle_to;
		else if (c->state == GW_BODY || (c->body_left && c->state != GW_HEAD))
			limit = c->t_act + g->idle_to; /* also a sized body streaming to a backend */
		if (!limit || now < limit)
			continue;
		if ((c->state == GW_BODY || (c->body_left && c->state != GW_HEAD)) &&
		    !c->resp_started) {
			/* The client stopped sending its body: 408, the backend request abandoned. */
			gw_log("%s:%s: %.*s: no request body byte for %lld ms: 408", c->raddr, c->rport,
			       (int)c->req.target.n, c->req.target.p, (long long)g->idle_to);
			gw_body_abort(c, 408);
			gw_conn_flush(c);
			if (!c->dead)
				gw_conn_update_ev(c);
			continue;
		}
		if (c->state == GW_HEAD && fk_buf_size(&c->in) && !fk_buf_size(&c->out)) {
			c->keep_alive = 0;
			fk_buf_reset(&c->in);
			gw_local_response(c, 408, NULL, 1); /* flushed below; linger closes it */
			gw_conn_flush(c);
			if (!c->dead)
				gw_conn_update_ev(c);
			continue;
		}
		if (c->state != GW_HEAD && c->state != GW_LINGER)
			gw_log("%s:%s: timeout in %s", c->raddr, c->rport, gw_state_name(c->state));
		gw_conn_close(c);
	}
}

/* While stopping: closes the connections that have been idle between requests for
 * GW_STOP_IDLE_MS. Not at once: a kept-alive client may have sent its next request a moment
 * ago, and closing under it would lose that request (a reload must not cost a client
 * anything); that request is answered, with Connection: close. */
static void gw_stop_sweep(gw *g, int64_t now)
{
	for (gw_conn *c = g->conns, *next; c; c = next) {
		next = c->next;
		if (c->state == GW_HEAD && !fk_buf_size(&c->in) && !fk_buf_size(&c->out) &&
		    now - c->t_act >= GW_STOP_IDLE_MS)
			gw_conn_close(c);
	}
}

/* Graceful stop (SIGTERM; also the old workers after a reload): no more accepts (the other
 * workers still hold the listening socket), requests in flight finish, then the connections
 * close as gw_stop_sweep says, all within GW_STOP_MS. */
static void gw_begin_stop(gw *g)
{
	g->stopping = 1;
	g->stop_deadline = fk_now_ms() + GW_STOP_MS;
	if (g->lfd >= 0) {
		fk_ev_del(&g->ev, g->lfd);
		close(g->lfd);
		g->lfd = -1;
	}
	gw_stop_sweep(g, fk_now_ms());
	gw_log("stopping: %u connection(s) finishing", g->nconns);
}

static int gw_loop(gw *g)
{
	fk_ev_item items[128];
	int64_t next_sweep = fk_now_ms() + 1000;
	for (;;) {
		if (gw_signalled && !g->stopping)
			gw_begin_stop(g);
		if (gw_signalled > 1 ||
		    (g->stopping && (!g->nconns || fk_now_ms() >= g->stop_deadline)))
			break;
		int timeout = g->stopping ? 100 : 1000; /* gw_stop_sweep below */
		for (size_t i = 0; i < g->nbe; i++) {
			int t = fcgi_client_next_timeout(g->be[i].cli);
			if (fcgi_client_fd(g->be[i].cli) < 0 && (t < 0 || t > 10))
				t = 10; /* poll fallback: no descriptor to wait on */
			if (t >= 0 && t < timeout)
				timeout = t;
			if (i == 0 && g->auth) {
				int ta = fcgi_client_next_timeout(g->auth);
				if (ta >= 0 && ta < timeout)
					timeout = ta;
			}
			if (g->probe_ms && !g->be[i].probing) {
				int64_t due = g->be[i].next_probe - fk_now_ms();
				if (due < timeout)
					timeout = due > 0 ? (int)due : 0;
			}
		}
		fk_ev_prepare(&g->ev);
		int n = fk_ev_wait(&g->ev, items, 128, timeout);
		if (n < 0)
			n = 0;
		for (int i = 0; i < n; i++) {
			int kind = *(int *)items[i].ptr;
			if (kind == GW_T_LISTEN) {
				if (g->lfd >= 0)
					gw_accept(g);
			} else if (kind == GW_T_CONN) {
				gw_conn *c = items[i].ptr;
				if (c->dead)
					continue;
				if (items[i].events & (FK_EV_IN | FK_EV_ERR))
					gw_conn_read(c);
				if (!c->dead && (items[i].events & FK_EV_OUT))
					gw_conn_flush(c);
				if (!c->dead) {
					gw_conn_advance(c);
					gw_conn_update_ev(c);
				}
			}
		}
		for (size_t i = 0; i < g->nbe; i++)
			fcgi_client_process(g->be[i].cli, 0);
		if (g->auth)
			fcgi_client_process(g->auth, 0);
		while (g->dirty) {
			gw_conn *c = g->dirty;
			g->dirty = c->dirty_next;
			c->dirty = 0;
			if (c->dead)
				continue;
			if (c->overflow && c->up) {
				if (c->overflow == GW_OVF_TEMP)
					gw_log("%.*s: temporary file over %llu bytes (slow client): "
					       "aborted",
					       (int)c->req.target.n, c->req.target.p,
					       (unsigned long long)g->max_temp);
				else if (c->overflow == GW_OVF_MEM)
					gw_log("%.*s: response buffer over %zu bytes (slow client): "
					       "aborted",
					       (int)c->req.target.n, c->req.target.p, g->max_buffer);
				fk_bal_release(g->bal,
				               c->up_idx); /* the backend did nothing wrong */
				fcgi_client_req_free(c->up);
				c->up = NULL;
				gw_conn_close(c);
				continue;
			}
			if (c->up_done && c->up)
				gw_up_finished(c);
			if (!c->dead && c->auth_done && c->auth)
				gw_auth_finished(c);
			if (!c->dead && (c->state == GW_HEAD || c->state == GW_BODY))
				gw_conn_advance(c);
			if (!c->dead)
				gw_conn_flush(c);
			if (!c->dead)
				gw_conn_update_ev(c);
		}
		int64_t now = fk_now_ms();
		if (now >= next_sweep) {
			gw_sweep(g, now);
			next_sweep = now + 1000;
		}
		if (g->stopping)
			gw_stop_sweep(g, now);
		gw_probe(g, now);
		while (g->dead) {
			gw_conn *c = g->dead;
			g->dead = c->dead_next;
			gw_conn_free(c);
		}
	}
	while (g->conns)
		gw_conn_close(g->conns);
	while (g->dead) {
		gw_conn *c = g->dead;
		g->dead = c->dead_next;
		gw_conn_free(c);
	}
	return 0;
}

/* ------------------------------------------------------------------ setup */

/* Opens the listening socket for spec; its descriptor, or -1 (logged). */
static int gw_listen(const char *spec)
{
	fk_addr a;
	if (fk_addr_parse(spec, &a)) {
		gw_log("listen %s: not an address", spec);
		return -1;
	}
	int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		gw_log("socket: %s", strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (a.ss.ss_family == AF_UNIX && fk_unix_clear_stale((struct sockaddr_un *)&a.ss, a.len)) {
		gw_log("listen %s: %s", spec, errno == EADDRINUSE ? "in use by another process"
		                                                  : "a file that is not a socket is in the way");
		close(fd);
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&a.ss, a.len) || listen(fd, 511)) {
		gw_log("listen %s: %s", spec, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void gw_usage(FILE *f)
{
	fprintf(f,
	        "usage: fcgikit gateway --listen ADDR --backend ADDR[,weight=N] [--backend ...] "
	        "[options]\n"
	        "       fcgikit gateway --config FILE [options] [--test]\n"
	        "\n"
	        "An HTTP/1.1 front for FastCGI applications (see fcgikit-gateway(1)).\n"
	        "\n"
	        "  -c, --config FILE        read the options from FILE (fcgikit-gateway.conf(5));\n"
	        "                           options given too override it; SIGHUP re-reads it\n"
	        "  -t, --test               only check the configuration: FILE: ok, exit 0 or 2\n"
	        "  -l, --listen ADDR        HTTP address: 127.0.0.1:8080, [::1]:8080, :8080\n"
	        "  -b, --backend ADDR[,weight=N]  FastCGI backend (unix:/path, HOST:PORT) and its\n"
	        "                           share of the traffic (1..1000, default 1); repeatable\n"
	        "  -r, --root DIR           serve existing files under DIR statically (GET/HEAD);\n"
	        "                           also DOCUMENT_ROOT (default: the current directory)\n"
	        "      --balance POLICY     rr (smooth weighted round-robin, default), least\n"
	        "                           (least outstanding requests), or consistent hashing:\n"
	        "                           hash:uri, hash:client, hash:header:NAME\n"
	        "      --index NAME         appended to a script path ending in '/' (index.php)\n"
	        "      --script-ext EXT     never served statically; PATH_INFO splits after it "
	        "(.php)\n"
	        "      --max-body BYTES     request body limit (64M), 413 above\n"
	        "      --body-buffer BYTES  request body bytes kept in memory (64K); the rest goes\n"
	        "                           to a temporary file; larger Content-Length bodies stream\n"
	        "      --temp-dir DIR       temporary files: request bodies, responses waiting for\n"
	        "                           slow clients (default $TMPDIR, else /tmp)\n"
	        "      --max-buffer BYTES   response bytes buffered for a slow client (32M)\n"
	        "      --response-buffer BYTES  response bytes kept in memory before the backend\n"
	        "                           is paused, or on a shared connection the rest goes to\n"
	        "                           a temporary file (256K; at most half of --max-buffer)\n"
	        "      --max-temp-file BYTES  bytes of one response waiting in its temporary\n"
	        "                           file (1G); past it: aborted; 0: no file\n"
	        "      --max-conns N        HTTP connections at once (1024)\n"
	        "      --upstream-timeout MS  no byte from a backend that owes one (60000): 504\n"
	        "                           (GET and HEAD are tried on another backend first)\n"
	        "      --connect-timeout MS connecting to a backend (3000); a timeout counts as a\n"
	        "                           failure of that backend\n"
	        "      --access-log FILE    access log (default: stdout)\n"
	        "      --status-path PATH   JSON status (PATH, or OpenMetrics at PATH/metrics or\n"
	        "                           ?openmetrics) for loopback clients\n"
	        "      --probe-interval MS  GET_VALUES to every backend this often (0: off)\n"
	        "      --probe-uri PATH     probe with a GET of PATH instead: healthy on 2xx\n"
	        "      --sendfile-root DIR  X-Accel-Redirect / X-Sendfile serve files under DIR\n"
	        "      --backend-conns N    connections to each backend (8; for php-cgi or libfcgi\n"
	        "                           pools: their worker count)\n"
	        "      --queue N            requests waiting per backend beyond what it takes at\n"
	        "                           once (256); past it on every backend: 503\n"
	        "      --authorizer ADDR    a FastCGI Authorizer asked first (its Variable-*\n"
	        "                           results reach the responder)\n"
	        "      --auth-prefix PATH   only paths under PATH need the authorizer (/)\n"
	        "      --workers N|auto     processes sharing the listening socket, each with\n"
	        "                           its own loop (default auto: one per core)\n"
	        "  -h, --help\n"
	        "\n"
	        "Durations are milliseconds (or 5s); sizes take K, M, G. SIGTERM/SIGINT: graceful\n"
	        "stop. SIGHUP: reload the configuration without dropping a connection.\n");
}

/* One worker process: builds its loop, clients and balancer from conf (nothing that holds an
 * epoll set is forked) and serves lfd until stopped. Writes one byte to ready_fd once it
 * serves, so the supervisor knows a new generation is up before it stops the old one.
 * Returns the exit status. */
static int gw_worker(const gw_config *conf, int lfd, int ready_fd)
{
	gw g0 = {0}, *g = &g0;
	g->lfd = lfd;
	g->listen_kind = GW_T_LISTEN;
	g->auth_kind = GW_T_BACKEND;
	g->index = conf->index ? conf->index : "index.php";
	g->script_ext = conf->script_ext ? conf->script_ext : ".php";
	g->max_body = conf->max_body;
	g->max_buffer = (size_t)conf->max_buffer;
	/* Half of max_buffer at most: a response paused at resp_buf may still get one read's
	 * worth more before the library stops, and must not be cut for it. */
	g->resp_buf = conf->response_buffer < conf->max_buffer / 2 ? (size_t)conf->response_buffer
	                                                           : (size_t)(conf->max_buffer / 2);
	g->max_temp = conf->max_temp_file;
	g->body_mem = (size_t)conf->body_buffer;
	g->temp_dir = gw_temp_dir(conf->temp_dir); /* resolved once: $TMPDIR or /tmp */
	g->max_conns = conf->max_conns;
	g->header_to = 10000;
	g->idle_to = 60000;
	g->send_to = 60000;
	g->upstream_to = conf->upstream_timeout_ms;
	g->queue = conf->queue;
	g->connect_to = conf->connect_timeout_ms;
	g->status_path = conf->status_path;
	g->auth_addr = conf->authorizer;
	g->auth_prefix = conf->auth_prefix;
	g->backend_conns = conf->backend_conns;
	g->probe_ms = conf->probe_interval_ms;
	g->probe_uri = conf->probe_uri;
	g->balance = conf->balance;
	g->hash_header = conf->hash_header;
	size_t nb = conf->nbackends;
	int rc = 1, ev_ok = 0;
	fk_bal_backend_conf *bconf = NULL;
	snprintf(g->software, sizeof g->software, "fcgikit/%s", fcgi_version());
	char rootbuf[PATH_MAX], cwd[PATH_MAX];
	static char sfroot[PATH_MAX];
	if (conf->root) {
		if (!realpath(conf->root, rootbuf)) {
			gw_log("root %s: %s", conf->root, strerror(errno));
			goto out;
		}
		/* "/" as root: the prefix check then wants "/" + '/', so keep it as "" */
		if (!strcmp(rootbuf, "/"))
			rootbuf[0] = '\0';
		g->root = g->doc_root = rootbuf;
		g->root_len = strlen(rootbuf);
	} else {
		g->doc_root = getcwd(cwd, sizeof cwd) ? cwd : "";
	}
	if (conf->sendfile_root) {
		if (!realpath(conf->sendfile_root, sfroot)) {
			gw_log("sendfile_root %s: %s", conf->sendfile_root, strerror(errno));
			goto out;
		}
		g->sendfile_root = sfroot;
		g->sendfile_root_len = strlen(sfroot);
	}
	/* Opened by each worker, so a reload also reopens a rotated log. */
	g->access = stdout;
	if (conf->access_log && !(g->access = fopen(conf->access_log, "ae"))) {
		gw_log("access_log %s: %s", conf->access_log, strerror(errno));
		goto out;
	}
	setvbuf(g->access, NULL, _IOLBF, 0);

	bconf = calloc(nb, sizeof *bconf);
	g->be = calloc(nb, sizeof *g->be);
	if (!bconf || !g->be || fk_ev_init(&g->ev))
		goto out;
	ev_ok = 1;
	g->nbe = nb;
	for (size_t i = 0; i < nb; i++) {
		gw_backend *b = &g->be[i];
		b->kind = GW_T_BACKEND;
		b->g = g;
		b->addr = conf->backends[i].addr;
		b->lat = malloc(sizeof *b->lat);
		if (b->lat)
			fk_hist_init(b->lat);
		if (fcgi_client_new(&b->cli, b->addr)) {
			gw_log("backend %s: not an address", b->addr);
			goto out;
		}
		fcgi_client_set_opt(b->cli, FCGI_CLIENT_READ_TIMEOUT_MS, g->upstream_to);
		if (g->backend_conns)
			fcgi_client_set_opt(b->cli, FCGI_CLIENT_MAX_CONNS, g->backend_conns);
		fcgi_client_set_opt(b->cli, FCGI_CLIENT_CONNECT_TIMEOUT_MS, g->connect_to);
		fcgi_client_set_opt(b->cli, FCGI_CLIENT_WRITE_TIMEOUT_MS, g->upstream_to);
		if (fcgi_client_fd(b->cli) >= 0)
			fk_ev_add(&g->ev, fcgi_client_fd(b->cli), FK_EV_IN, b);
		/* The address is the ring identity: a reload that adds or removes a backend
		 * moves only that backend's share of the keys. */
		bconf[i].id = b->addr;
		bconf[i].id_len = strlen(b->addr);
		bconf[i].weight = conf->backends[i].weight;
	}
	if (g->auth_addr) {
		if (!g->auth_prefix)
			g->auth_prefix = "/";
		if (fcgi_client_new(&g->auth, g->auth_addr)) {
			gw_log("authorizer %s: not an address", g->auth_addr);
			goto out;
		}
		fcgi_client_set_opt(g->auth, FCGI_CLIENT_READ_TIMEOUT_MS, g->upstream_to);
		fcgi_client_set_opt(g->auth, FCGI_CLIENT_WRITE_TIMEOUT_MS, g->upstream_to);
		if (fcgi_client_fd(g->auth) >= 0)
			fk_ev_add(&g->ev, fcgi_client_fd(g->auth), FK_EV_IN, &g->auth_kind);
	}
	fk_bal_config bc;
	fk_bal_config_default(&bc);
	bc.policy = g->balance == GW_BAL_LEAST                                      ? FK_BAL_LEAST
	            : g->balance == GW_BAL_RR                                       ? FK_BAL_WRR
	                                                                            : FK_BAL_HASH;
	/* Every backend ejected: try them anyway (nginx does) rather than refuse outright. */
	bc.all_down_fallback = 1;
	if (fk_bal_group_new(&g->bal, &bc, bconf, nb))
		goto out;
	fk_ev_add(&g->ev, g->lfd, FK_EV_IN, &g->listen_kind);
	gw_log("worker %d: listening on %s, %zu backend(s), balance %s%s%s", (int)getpid(),
	       conf->listen, nb, gw_balance_name(g->balance), g->root ? ", root " : "",
	       g->root ? g->root : "");
	g->started = fk_now_ms();
	if (ready_fd >= 0) {
		ssize_t w = write(ready_fd, "r", 1);
		(void)w; /* the supervisor also notices a worker that died instead */
		close(ready_fd);
		ready_fd = -1;
	}
	rc = gw_loop(g);
	gw_log("worker %d: stopped", (int)getpid());
out:
	if (ready_fd >= 0)
		close(ready_fd);
	if (g->lfd >= 0)
		close(g->lfd);
	for (size_t i = 0; i < g->nbe; i++)
		if (g->be[i].cli)
			fcgi_client_free(g->be[i].cli);
	for (size_t i = 0; g->be && i < g->nbe; i++)
		free(g->be[i].lat);
	if (g->auth)
		fcgi_client_free(g->auth);
	fk_bal_group_free(g->bal);
	if (ev_ok)
		fk_ev_close(&g->ev);
	if (g->access && g->access != stdout)
		fclose(g->access);
	free(g->be);
	free(bconf);
	return rc;
}

/* ------------------------------------------------------------------ supervisor */

enum {
	GW_READY_MS = 10000,                    /* a new generation must serve within this */
	GW_OLD_MAX = GW_MAX_WORKERS * 16,       /* old workers still finishing */
};

/* The supervisor: the parent of every worker. It holds the parsed configuration of the
 * running generation, restarts a worker that dies, and on SIGHUP starts a new generation
 * from the re-read configuration, then stops the old one gracefully once the new one serves.
 * A configuration that does not parse, or a generation that does not come up, leaves the
 * running one as it is. */
typedef struct gw_super {
	int argc;
	char **argv;
	gw_config conf[2]; /* conf[cur]: running; the other: being started by a reload */
	int cur;
	int lfd, lfd_next; /* lfd_next: a reload's new listening socket, or -1 */
	int ready_rd;      /* the read end of the starting generation's ready pipe, or -1 */
	int n;             /* workers of the running generation */
	pid_t pids[GW_MAX_WORKERS];
	int64_t respawn_at[GW_MAX_WORKERS];
	pid_t old[GW_OLD_MAX]; /* stopping: reaped, never restarted */
	int nold;
} gw_super;

static int gw_nworkers(const gw_config *c)
{
	if (c->workers)
		return (int)c->workers;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)(n > GW_MAX_WORKERS ? GW_MAX_WORKERS : n) : 1;
}

/* Forks one worker of configuration conf[which] on lfd. In the child, never returns. */
static pid_t gw_fork(gw_super *s, int which, int lfd, int ready_wr)
{
	pid_t parent = getpid();
	fflush(NULL); /* nothing buffered is written twice */
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	/* The worker: the supervisor forwards SIGTERM/SIGINT and owns SIGHUP. */
	struct sigaction sa = {0};
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	gw_signalled = gw_hup = 0;
	/* A supervisor killed outright (SIGKILL) must not leave workers serving on. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		exit(1);
	int other = lfd == s->lfd ? s->lfd_next : s->lfd;
	if (other >= 0)
		close(other);
	if (s->ready_rd >= 0)
		close(s->ready_rd);
	int rc = gw_worker(&s->conf[which], lfd, ready_wr);
	gw_config_free(&s->conf[0]);
	gw_config_free(&s->conf[1]);
	exit(rc);
}

static void gw_old_add(gw_super *s, pid_t pid)
{
	if (pid > 0 && s->nold < GW_OLD_MAX)
		s->old[s->nold++] = pid;
}

/* Forgets a reaped child. 1 if it was a running worker (which is then restarted). */
static int gw_reaped(gw_super *s, pid_t pid)
{
	for (int i = 0; i < s->nold; i++)
		if (s->old[i] == pid) {
			s->old[i] = s->old[--s->nold];
			return 0;
		}
	for (int i = 0; i < s->n; i++)
		if (s->pids[i] == pid) {
			s->pids[i] = 0;
			return 1;
		}
	return 0;
}

/* Starts n workers of conf[which] on lfd into pids[] and waits until every one serves.
 * 0; or -1 (the ones started are stopped and left to gw_old_add) when one fails, time runs
 * out or a stop is asked for meanwhile. */
static int gw_start_gen(gw_super *s, int which, int lfd, pid_t *pids, int n)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC)) {
		gw_log("pipe: %s", strerror(errno));
		return -1;
	}
	s->ready_rd = p[0];
	int started = 0, ready = 0, failed = 0;
	for (int i = 0; i < n; i++) {
		pids[i] = gw_fork(s, which, lfd, p[1]);
		if (pids[i] < 0) {
			gw_log("fork: %s", strerror(errno));
			pids[i] = 0;
			failed = 1;
			break;
		}
		started++;
	}
	close(p[1]);
	int64_t deadline = fk_now_ms() + GW_READY_MS;
	while (!failed && ready < started && !gw_signalled) {
		int64_t left = deadline - fk_now_ms();
		if (left <= 0) {
			gw_log("new workers did not start within %d ms", GW_READY_MS);
			failed = 1;
			break;
		}
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		int r = poll(&pfd, 1, left > 100 ? 100 : (int)left);
		if (r > 0) {
			char buf[GW_MAX_WORKERS];
			ssize_t got = read(p[0], buf, sizeof buf);
			if (got > 0)
				ready += (int)got;
		}
		/* One that exited before it served (a bad root, an access log it cannot open):
		 * its reason is in the log already. */
		for (int i = 0; i < started && !failed; i++) {
			int st;
			if (pids[i] > 0 && waitpid(pids[i], &st, WNOHANG) == pids[i]) {
				pids[i] = 0;
				failed = 1;
			}
		}
	}
	close(p[0]);
	s->ready_rd = -1;
	if (failed || ready < started) {
		for (int i = 0; i < started; i++)
			if (pids[i] > 0) {
				kill(pids[i], SIGTERM);
				gw_old_add(s, pids[i]);
				pids[i] = 0;
			}
		return -1;
	}
	return 0;
}

/* SIGHUP: re-reads the configuration (the same command line, so --config FILE is read
 * again and the options still override it), starts its generation, then stops the old one. */
static void gw_reload(gw_super *s)
{
	int nx = !s->cur;
	gw_config *nc = &s->conf[nx], *oc = &s->conf[s->cur];
	gw_cmdline cl;
	char err[1024];
	if (gw_config_from_args(nc, s->argc, s->argv, &cl, err, sizeof err)) {
		gw_log("reload failed: %s", err);
		return;
	}
	int lfd = s->lfd;
	if (strcmp(nc->listen, oc->listen)) {
		lfd = s->lfd_next = gw_listen(nc->listen);
		if (lfd < 0) {
			gw_log("reload failed: listen %s (see above); still serving %s", nc->listen,
			       oc->listen);
			gw_config_free(nc);
			return;
		}
	}
	pid_t pids[GW_MAX_WORKERS] = {0};
	int n = gw_nworkers(nc);
	if (gw_start_gen(s, nx, lfd, pids, n)) {
		gw_log("reload failed: the new workers did not start; the old ones go on");
		if (s->lfd_next >= 0)
			close(s->lfd_next);
		s->lfd_next = -1;
		gw_config_free(nc);
		return;
	}
	/* The new generation serves: the old one finishes what it holds and goes. */
	for (int i = 0; i < s->n; i++)
		if (s->pids[i] > 0) {
			kill(s->pids[i], SIGTERM);
			gw_old_add(s, s->pids[i]);
		}
	memcpy(s->pids, pids, sizeof pids);
	memset(s->respawn_at, 0, sizeof s->respawn_at);
	s->n = n;
	if (lfd != s->lfd) {
		close(s->lfd);
		s->lfd = lfd;
		s->lfd_next = -1;
	}
	gw_config_free(oc);
	s->cur = nx;
	gw_log("reloaded: listening on %s, %zu backend(s), %d worker(s)", nc->listen, nc->nbackends,
	       n);
}

/* Runs until every worker has gone after a stop; the exit status. */
static int gw_supervise(gw_super *s)
{
	s->n = gw_nworkers(&s->conf[s->cur]);
	if (gw_start_gen(s, s->cur, s->lfd, s->pids, s->n)) {
		gw_signalled = 1; /* the first generation: give up */
		for (int i = 0; i < s->nold; i++)
			waitpid(s->old[i], NULL, 0);
		return 1;
	}
	int stops = 0; /* stop signals passed on */
	for (;;) {
		int64_t now = fk_now_ms();
		if (gw_signalled > stops) {
			/* The first: graceful stop of everything; another one: stop now. */
			stops = gw_signalled;
			for (int i = 0; i < s->n; i++)
				if (s->pids[i] > 0)
					kill(s->pids[i], SIGTERM);
			for (int i = 0; i < s->nold; i++)
				kill(s->old[i], SIGTERM);
			if (s->lfd >= 0)
				close(s->lfd);
			s->lfd = -1;
		}
		if (gw_hup) {
			gw_hup = 0;
			if (!stops)
				gw_reload(s);
			continue;
		}
		int alive = s->nold;
		for (int i = 0; i < s->n; i++) {
			if (s->pids[i] <= 0 && !stops && now >= s->respawn_at[i]) {
				pid_t pid = gw_fork(s, s->cur, s->lfd, -1);
				s->respawn_at[i] = now + 1000; /* a crash loop stays cheap */
				if (pid > 0)
					s->pids[i] = pid;
			}
			alive += s->pids[i] > 0;
		}
		if (stops && !alive)
			return 0;
		int st;
		pid_t pid;
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
			if (gw_reaped(s, pid) && !stops)
				gw_log("worker %d ended (%s %d): restarting", (int)pid,
				       WIFSIGNALED(st) ? "signal" : "status",
				       WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		/* A signal cuts the nap short (no SA_RESTART). */
		struct timespec ts = {0, 100 * 1000 * 1000};
		if (!gw_signalled || gw_signalled == stops)
			nanosleep(&ts, NULL);
	}
}

int fk_tool_gateway(int argc, char **argv)
{
	gw_super s0 = {.argc = argc, .argv = argv, .lfd = -1, .lfd_next = -1, .ready_rd = -1};
	gw_super *s = &s0;
	gw_config_init(&s->conf[1]);
	gw_cmdline cl;
	char err[1024];
	if (gw_config_from_args(&s->conf[0], argc, argv, &cl, err, sizeof err)) {
		gw_log("%s", err);
		if (!strncmp(err, "usage: ", 7) && !cl.test)
			gw_usage(stderr);
		return 2;
	}
	if (cl.help) {
		gw_usage(stdout);
		gw_config_free(&s->conf[0]);
		return 0;
	}
	if (cl.test) {
		printf("%s: ok\n", cl.config ? cl.config : "command line");
		gw_config_free(&s->conf[0]);
		return 0;
	}
	struct sigaction sa = {0};
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = gw_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	/* The listening socket first, shared by every worker of every generation. */
	int rc = 1;
	s->lfd = gw_listen(s->conf[0].listen);
	if (s->lfd >= 0) {
		gw_log("listening on %s, %zu backend(s)%s%s", s->conf[0].listen,
		       s->conf[0].nbackends, cl.config ? ", config " : "",
		       cl.config ? cl.config : "");
		rc = gw_supervise(s);
		gw_log("stopped");
	}
	if (s->lfd >= 0)
		close(s->lfd);
	gw_config_free(&s->conf[0]);
	gw_config_free(&s->conf[1]);
	return rc;
}
