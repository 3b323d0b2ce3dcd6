/*
 * fcgi_raw.h — a tiny raw FastCGI client for protocol tests: builds records byte by byte
 * (so a test can write what no web server would), reads records with timeouts, collects
 * responses by request id and splits the CGI header block from the body.
 *
 * Deliberately independent of lib/codec: the encoders here are written out by hand from the
 * spec, so a bug shared by the library's encoder and decoder cannot hide.
 *
 * Everything is static inline so each test file takes what it needs. Allocation failure
 * aborts (these are tests). A cmocka test defines RAW_MALLOC/RAW_REALLOC/RAW_FREE as
 * test_malloc/test_realloc/test_free before including this, so that what a failed
 * assertion leaves behind is freed by cmocka and what a passing test leaks is reported.
 */
#ifndef TESTS_FCGI_RAW_H
#define TESTS_FCGI_RAW_H

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef RAW_MALLOC
#define RAW_MALLOC malloc
#define RAW_REALLOC realloc
#define RAW_FREE free
#endif

enum {
	RAW_BEGIN = 1,
	RAW_ABORT = 2,
	RAW_END = 3,
	RAW_PARAMS = 4,
	RAW_STDIN = 5,
	RAW_STDOUT = 6,
	RAW_STDERR = 7,
	RAW_DATA = 8,
	RAW_GET_VALUES = 9,
	RAW_GET_VALUES_RESULT = 10,
	RAW_UNKNOWN_TYPE = 11,
	RAW_RESPONDER = 1,
	RAW_KEEP_CONN = 1,
};

static inline long long raw_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- building bytes */

typedef struct rbuf {
	uint8_t *p;
	size_t len, cap;
} rbuf;

static inline void rb_reserve(rbuf *b, size_t n)
{
	if (b->len + n <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + n)
		cap *= 2;
	uint8_t *p = RAW_REALLOC(b->p, cap);
	if (!p)
		abort();
	b->p = p;
	b->cap = cap;
}

static inline void rb_put(rbuf *b, const void *d, size_t n)
{
	rb_reserve(b, n);
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
}

static inline void rb_byte(rbuf *b, unsigned v)
{
	uint8_t c = (uint8_t)v;
	rb_put(b, &c, 1);
}

static inline void rb_free(rbuf *b)
{
	RAW_FREE(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* A record header with any version (tests send version 2 on purpose). */
static inline void rb_header_v(rbuf *b, unsigned version, unsigned type, unsigned id, unsigned clen,
                               unsigned pad)
{
	uint8_t h[8] = {(uint8_t)version,     (uint8_t)type, (uint8_t)(id >> 8), (uint8_t)id,
	                (uint8_t)(clen >> 8), (uint8_t)clen, (uint8_t)pad,       0};
	rb_put(b, h, 8);
}

/* One record: header, content, then pad bytes of padding. The padding is filled with
 * non-zero junk: the receiver must ignore it, whatever it holds. */
static inline void rb_record(rbuf *b, unsigned type, unsigned id, const void *data, size_t len,
                             unsigned pad)
{
	rb_header_v(b, 1, type, id, (unsigned)len, pad);
	rb_put(b, data, len);
	for (unsigned i = 0; i < pad; i++)
		rb_byte(b, 0xA5);
}

static inline void rb_begin(rbuf *b, unsigned id, unsigned role, unsigned flags)
{
	uint8_t body[8] = {(uint8_t)(role >> 8), (uint8_t)role, (uint8_t)flags, 0, 0, 0, 0, 0};
	rb_record(b, RAW_BEGIN, id, body, 8, 0);
}

static inline void rb_abort(rbuf *b, unsigned id) { rb_record(b, RAW_ABORT, id, NULL, 0, 0); }

/* A name-value length field: 1 byte below 128 unless force4, else 4 bytes, top bit set. */
static inline void rb_len(rbuf *b, size_t n, int force4)
{
	if (n < 128 && !force4) {
		rb_byte(b, (unsigned)n);
	} else {
		rb_byte(b, 0x80 | (unsigned)(n >> 24));
		rb_byte(b, (unsigned)(n >> 16) & 0xff);
		rb_byte(b, (unsigned)(n >> 8) & 0xff);
		rb_byte(b, (unsigned)n & 0xff);
	}
}

static inline void rb_pair_n(rbuf *b, const void *name, size_t nlen, const void *value, size_t vlen,
                             int force4)
{
	rb_len(b, nlen, force4);
	rb_len(b, vlen, force4);
	rb_put(b, name, nlen);
	rb_put(b, value, vlen);
}

static inline void rb_pair(rbuf *b, const char *name, const char *value)
{
	rb_pair_n(b, name, strlen(name), value, strlen(value), 0);
}

/* A stream's content as records of at most 65535 bytes (an odd size on purpose), padded to
 * 8, without the end record. */
static inline void rb_stream(rbuf *b, unsigned type, unsigned id, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len) {
		size_t n = len < 65535 ? len : 65535;
		rb_record(b, type, id, p, n, (unsigned)(-n & 7u));
		p += n;
		len -= n;
	}
}

static inline void rb_stream_end(rbuf *b, unsigned type, unsigned id)
{
	rb_record(b, type, id, NULL, 0, 0);
}

/* A complete Responder request: BEGIN, the params given (pairs already encoded in params),
 * the end of PARAMS, the body and the end of STDIN. */
static inline void rb_request(rbuf *b, unsigned id, unsigned flags, const rbuf *params,
                              const void *body, size_t blen)
{
	rb_begin(b, id, RAW_RESPONDER, flags);
	if (params)
		rb_stream(b, RAW_PARAMS, id, params->p, params->len);
	rb_stream_end(b, RAW_PARAMS, id);
	rb_stream(b, RAW_STDIN, id, body, blen);
	rb_stream_end(b, RAW_STDIN, id);
}

/* ---------------------------------------------------------------- socket I/O */

/* Sends everything; the socket's SO_SNDTIMEO bounds each wait. 0, or -1 with errno. */
static inline int raw_send(int fd, const void *d, size_t n)
{
	const uint8_t *p = d;
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static inline int raw_send_rb(int fd, const rbuf *b) { return raw_send(fd, b->p, b->len); }

/* Reads exactly n bytes before the deadline. Returns 1, 0 on EOF before the first byte,
 * -2 on EOF after some bytes, -1 on timeout or error (errno). */
static inline int raw_read_full(int fd, void *buf, size_t n, long long deadline)
{
	uint8_t *p = buf;
	size_t got = 0;
	while (got < n) {
		long long left = deadline - raw_now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			continue;
		ssize_t k = recv(fd, p + got, n - got, MSG_DONTWAIT);
		if (k < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			if (errno == ECONNRESET)
				return got ? -2 : 0;
			return -1;
		}
		if (k == 0)
			return got ? -2 : 0;
		got += (size_t)k;
	}
	return 1;
}

typedef struct raw_rec {
	unsigned version, type, id, pad;
	size_t len;
	uint8_t content[65536];
} raw_rec;

/* Reads one record (padding skipped). 1, 0 on a clean EOF, -2 truncated, -1 timeout/error. */
static inline int raw_read_record(int fd, raw_rec *r, long long deadline)
{
	uint8_t h[8];
	int k = raw_read_full(fd, h, 8, deadline);
	if (k != 1)
		return k;
	r->version = h[0];
	r->type = h[1];
	r->id = (unsigned)h[2] << 8 | h[3];
	r->len = (size_t)h[4] << 8 | h[5];
	r->pad = h[6];
	if (r->len && (k = raw_read_full(fd, r->content, r->len, deadline)) != 1)
		return k == 0 ? -2 : k;
	uint8_t junk[256];
	if (r->pad && (k = raw_read_full(fd, junk, r->pad, deadline)) != 1)
		return k == 0 ? -2 : k;
	return 1;
}

/* Waits until the peer closes (EOF or reset), discarding anything it sends first.
 * Returns 1 on close, 0 on timeout. */
static inline int raw_wait_close(int fd, int timeout_ms)
{
	long long deadline = raw_now_ms() + timeout_ms;
	uint8_t buf[4096];
	for (;;) {
		long long left = deadline - raw_now_ms();
		if (left <= 0)
			return 0;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, (int)left);
		if (r <= 0)
			continue;
		ssize_t k = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
			return 1;
	}
}

/* Whether the peer closed the connection, or data is pending, within timeout_ms:
 * 1 closed, 2 data pending, 0 nothing happened. Consumes nothing. */
static inline int raw_peek_state(int fd, int timeout_ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return 0;
	uint8_t c;
	ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (k == 0 || (k < 0 && errno != EAGAIN))
		return 1;
	return k > 0 ? 2 : 0;
}

/* ---------------------------------------------------------------- responses */

typedef struct raw_resp {
	unsigned id;
	rbuf out, err;
	int out_ended, err_ended, ended;
	uint32_t app_status;
	unsigned proto_status;
	int order;         /* 0-based rank among the END_REQUESTs collected */
	long long end_ms;  /* when its END_REQUEST arrived */
	char problem[200]; /* first protocol violation seen by the app for this id, if any */
} raw_resp;

typedef struct raw_collect_result {
	int ended;     /* responses that got END_REQUEST */
	int eof;       /* the peer closed */
	int timeout;   /* the deadline passed first */
	int truncated; /* EOF inside a record */
	int mgmt;      /* records with id 0 seen */
	int stray;     /* records for ids not asked for */
	unsigned last_mgmt_type;
	uint8_t last_mgmt[64];
	size_t last_mgmt_len;
	char problem[200]; /* first violation not tied to a response */
} raw_collect_result;

static inline void raw_resp_init(raw_resp *r, size_t n, unsigned first_id)
{
	memset(r, 0, n * sizeof *r);
	for (size_t i = 0; i < n; i++)
		r[i].id = first_id + (unsigned)i;
}

static inline void raw_resp_free(raw_resp *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		rb_free(&r[i].out);
		rb_free(&r[i].err);
	}
}

/* Reads records until every response in r[0..n) has its END_REQUEST, the peer closes, or
 * timeout_ms pass. Checks the application's side of the protocol as it goes (version 1,
 * streams ended before END_REQUEST, nothing after it). */
static inline raw_collect_result raw_collect(int fd, raw_resp *r, size_t n, int timeout_ms)
{
	raw_collect_result res;
	memset(&res, 0, sizeof res);
	long long deadline = raw_now_ms() + timeout_ms;
	raw_rec *rec = RAW_MALLOC(sizeof *rec);
	if (!rec)
		abort();
	while ((size_t)res.ended < n) {
		int k = raw_read_record(fd, rec, deadline);
		if (k == 0 || k == -2) {
			res.eof = 1;
			res.truncated = k == -2;
			break;
		}
		if (k < 0) {
			res.timeout = 1;
			break;
		}
		if (rec->version != 1 && !res.problem[0])
			snprintf(res.problem, sizeof res.problem, "record with version %u",
			         rec->version);
		if (rec->id == 0) {
			res.mgmt++;
			res.last_mgmt_type = rec->type;
			res.last_mgmt_len =
			        rec->len < sizeof res.last_mgmt ? rec->len : sizeof res.last_mgmt;
			memcpy(res.last_mgmt, rec->content, res.last_mgmt_len);
			continue;
		}
		raw_resp *q = NULL;
		for (size_t i = 0; i < n; i++)
			if (r[i].id == rec->id)
				q = &r[i];
		if (!q) {
			res.stray++;
			if (!res.problem[0])
				snprintf(res.problem, sizeof res.problem,
				         "record type %u for id %u not asked for", rec->type,
				         rec->id);
			continue;
		}
		if (q->ended && !q->problem[0])
			snprintf(q->problem, sizeof q->problem, "record type %u after END_REQUEST",
			         rec->type);
		switch (rec->type) {
		case RAW_STDOUT:
		case RAW_STDERR: {
			int *ended = rec->type == RAW_STDOUT ? &q->out_ended : &q->err_ended;
			if (*ended && !q->problem[0])
				snprintf(q->problem, sizeof q->problem, "%s record after its end",
				         rec->type == RAW_STDOUT ? "STDOUT" : "STDERR");
			if (!rec->len)
				*ended = 1;
			rb_put(rec->type == RAW_STDOUT ? &q->out : &q->err, rec->content, rec->len);
			break;
		}
		case RAW_END:
			if (rec->len != 8 && !q->problem[0])
				snprintf(q->problem, sizeof q->problem,
				         "END_REQUEST with %zu content bytes", rec->len);
			if (rec->len >= 5) {
				q->app_status = (uint32_t)rec->content[0] << 24 |
				                (uint32_t)rec->content[1] << 16 |
				                (uint32_t)rec->content[2] << 8 | rec->content[3];
				q->proto_status = rec->content[4];
			}
			if (!q->ended) {
				q->ended = 1;
				q->order = res.ended++;
				q->end_ms = raw_now_ms();
			}
			if (q->proto_status == 0 && q->out.len && !q->out_ended && !q->problem[0])
				snprintf(q->problem, sizeof q->problem,
				         "END_REQUEST before the end of STDOUT");
			if (q->err.len && !q->err_ended && !q->problem[0])
				snprintf(q->problem, sizeof q->problem,
				         "END_REQUEST before the end of STDERR");
			break;
		default:
			if (!q->problem[0])
				snprintf(q->problem, sizeof q->problem, "unexpected record type %u",
				         rec->type);
		}
	}
	RAW_FREE(rec);
	return res;
}

/* ---------------------------------------------------------------- CGI responses */

typedef struct cgi_resp {
	int status;       /* from "Status:", 200 when absent; -1 when the header block is bad */
	const char *head; /* the header block (not NUL-terminated) */
	size_t head_len;
	const uint8_t *body;
	size_t body_len;
} cgi_resp;

/* Splits a CGI response at its blank line (CRLF or LF line ends). */
static inline cgi_resp cgi_parse(const uint8_t *p, size_t n)
{
	cgi_resp c = {.status = -1};
	for (size_t i = 0; i < n; i++) {
		size_t end = 0;
		if (i + 3 < n && !memcmp(p + i, "\r\n\r\n", 4))
			end = 4;
		else if (i + 1 < n && !memcmp(p + i, "\n\n", 2))
			end = 2;
		else if (i == 0 && n >= 2 && !memcmp(p, "\r\n", 2))
			end = 2;
		if (end) {
			c.head = (const char *)p;
			c.head_len = i;
			c.body = p + i + end;
			c.body_len = n - i - end;
			c.status = 200;
			break;
		}
	}
	if (!c.head)
		return c;
	/* Status: NNN reason */
	const char *h = c.head, *e = c.head + c.head_len;
	while (h < e) {
		const char *nl = memchr(h, '\n', (size_t)(e - h));
		const char *le = nl ? nl : e;
		if (le - h > 7 && !strncasecmp(h, "Status:", 7))
			c.status = atoi(h + 7);
		h = nl ? nl + 1 : e;
	}
	return c;
}

/* Copies the first header named name (case-insensitive) into buf, trimmed. Returns buf, or
 * NULL when absent. */
static inline const char *cgi_header(const cgi_resp *c, const char *name, char *buf, size_t size)
{
	size_t nl_ = strlen(name);
	const char *h = c->head, *e = c->head + c->head_len;
	while (h && h < e) {
		const char *nl = memchr(h, '\n', (size_t)(e - h));
		const char *le = nl ? nl : e;
		if ((size_t)(le - h) > nl_ && !strncasecmp(h, name, nl_) && h[nl_] == ':') {
			const char *v = h + nl_ + 1;
			while (v < le && (*v == ' ' || *v == '\t'))
				v++;
			const char *ve = le;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			size_t n = (size_t)(ve - v) < size - 1 ? (size_t)(ve - v) : size - 1;
			memcpy(buf, v, n);
			buf[n] = 0;
			return buf;
		}
		h = nl ? nl + 1 : e;
	}
	return NULL;
}

#endif
