/* stream.c — FCGX_Stream: buffered readers and writers over a request's streams, and the
 * stand-alone record writer of FCGX_CreateWriter (see compat_int.h). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat_int.h"
#include "fastcgi.h"

enum { PRINTF_STACK = 1024 };

static fkc_stream *st_of(FCGX_Stream *s) { return s->data; }

int fkc_stream_errno(int err)
{
	switch (err) {
	case FCGI_ECLOSED:
		return EPIPE;
	case FCGI_EABORTED:
		return ECONNABORTED;
	case FCGI_ETIMEDOUT:
		return ETIMEDOUT;
	case FCGI_ENOMEM:
		return ENOMEM;
	case FCGI_EPROTO:
		return FCGX_PROTOCOL_ERROR;
	case FCGI_ESTATE:
		return FCGX_CALL_SEQ_ERROR;
	default:
		return EIO;
	}
}

/* libfcgi's rule: the first error sticks; the stream is closed from then on. Buffered output is
 * dropped, and the pointers are set so every fast path falls through to a failing slow one. */
static void set_error(FCGX_Stream *s, int err)
{
	if (!s->FCGI_errno)
		s->FCGI_errno = err;
	s->isClosed = 1;
	if (s->isReader)
		s->rdNext = s->stop;
	else
		s->wrNext = s->rdNext = s->stop;
}

/* A request's streams work only in the process that accepted it. */
static int foreign(const fkc_stream *st) { return st->r && st->r->pid != fkc_pid(); }

/* ---------------------------------------------------------------- buffer cache
 *
 * Every request needs a 16 kB output buffer (and often an input one); malloc/free of that
 * size costs more than the rest of a small request, so each thread keeps one of each kind
 * between requests, freed when the thread exits. */
static _Thread_local unsigned char *t_cache[3]; /* FKC_IN, FKC_OUT, FKC_ERR */
static pthread_key_t g_cache_key;
static pthread_once_t g_cache_once = PTHREAD_ONCE_INIT;

static void cache_drop(void *unused)
{
	(void)unused;
	for (int i = 0; i < 3; i++) {
		free(t_cache[i]);
		t_cache[i] = NULL;
	}
}

static void cache_init(void) { pthread_key_create(&g_cache_key, cache_drop); }

static size_t std_cap(int kind)
{
	return kind == FKC_IN ? FKC_IN_BUF : kind == FKC_ERR ? FKC_ERR_BUF : FKC_OUT_BUF;
}

static unsigned char *buf_get(int kind, size_t cap)
{
	if (kind != FKC_RAW && t_cache[kind - 1]) {
		unsigned char *b = t_cache[kind - 1];
		t_cache[kind - 1] = NULL;
		return b;
	}
	return malloc(cap);
}

static void buf_put(int kind, unsigned char *b)
{
	if (b && kind != FKC_RAW && !t_cache[kind - 1]) {
		pthread_once(&g_cache_once, cache_init);
		/* Any non-NULL value makes the destructor run at thread exit. */
		if (pthread_getspecific(g_cache_key) ||
		    !pthread_setspecific(g_cache_key, &t_cache)) {
			t_cache[kind - 1] = b;
			return;
		}
	}
	free(b);
}

static int ensure_buf(fkc_stream *st)
{
	if (st->buf)
		return 0;
	size_t cap = st->kind == FKC_RAW ? st->cap : std_cap(st->kind);
	st->buf = buf_get(st->kind, cap);
	if (!st->buf) {
		set_error(&st->s, ENOMEM);
		return -1;
	}
	st->cap = cap;
	FCGX_Stream *s = &st->s;
	if (st->kind == FKC_IN) {
		s->rdNext = s->stop = s->wrNext = s->stopUnget = st->buf;
	} else {
		s->wrNext = st->buf;
		s->stop = s->rdNext = st->buf + cap;
	}
	return 0;
}

/* ---------------------------------------------------------------- raw record writer */

static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return -1;
			continue;
		}
		return -1;
	}
	return 0;
}

/* One record: header, content (at most FKC_RAW_MAX bytes), padding to a multiple of 8. */
static int raw_record(fkc_stream *st, const unsigned char *p, size_t n)
{
	static const unsigned char zeros[8];
	FCGI_Header h = {
	        .version = FCGI_VERSION_1,
	        .type = (unsigned char)st->type,
	        .requestIdB1 = (unsigned char)(st->request_id >> 8),
	        .requestIdB0 = (unsigned char)st->request_id,
	        .contentLengthB1 = (unsigned char)(n >> 8),
	        .contentLengthB0 = (unsigned char)n,
	        .paddingLength = (unsigned char)((8 - n % 8) % 8),
	};
	if (write_all(st->fd, (const unsigned char *)&h, sizeof h) ||
	    (n && write_all(st->fd, p, n)) || write_all(st->fd, zeros, h.paddingLength))
		return -1;
	return 0;
}

static int raw_send(fkc_stream *st, const unsigned char *p, size_t n)
{
	while (n) {
		size_t k = n < FKC_RAW_MAX ? n : FKC_RAW_MAX;
		if (raw_record(st, p, k))
			return -1;
		p += k;
		n -= k;
	}
	return 0;
}

/* ---------------------------------------------------------------- moving bytes */

/* Sends n bytes of a writer to where they go. 0, or -1 with the error set. */
static int put_out(fkc_stream *st, const unsigned char *p, size_t n)
{
	if (!n)
		return 0;
	int rc;
	if (st->kind == FKC_RAW) {
		if (raw_send(st, p, n) == 0)
			return 0;
		set_error(&st->s, errno ? errno : EIO);
		return -1;
	}
	if (foreign(st)) {
		set_error(&st->s, EPIPE);
		return -1;
	}
	rc = st->kind == FKC_ERR ? fcgi_write_err(st->r->req, p, n) : fcgi_write(st->r->req, p, n);
	if (rc) {
		set_error(&st->s, fkc_stream_errno(rc));
		return -1;
	}
	return 0;
}

int fkc_stream_drain(fkc_stream *st)
{
	FCGX_Stream *s = &st->s;
	/* A closed writer has nothing buffered: FCGX_FClose drained it, an error dropped it. */
	if (s->isReader || !st->buf || s->isClosed)
		return s->FCGI_errno ? -1 : 0;
	size_t n = (size_t)(s->wrNext - st->buf);
	s->wrNext = st->buf;
	return put_out(st, st->buf, n);
}

/* Reads into p (at most n) from the request's current input stream. > 0, 0 at its end, or -1
 * with the error set. */
static ssize_t get_in(fkc_stream *st, unsigned char *p, size_t n)
{
	if (foreign(st)) {
		set_error(&st->s, EPIPE);
		return -1;
	}
	ssize_t got =
	        st->data_phase ? fcgi_read_data(st->r->req, p, n) : fcgi_read(st->r->req, p, n);
	if (got < 0) {
		set_error(&st->s, fkc_stream_errno((int)got));
		return -1;
	}
	if (got == 0) {
		st->eof = 1;
		st->s.isClosed = 1;
	}
	return got;
}

/* fillBuffProc: refills an empty reader buffer (or marks the end / an error). */
static void fill(FCGX_Stream *s)
{
	fkc_stream *st = st_of(s);
	if (s->isClosed || !s->isReader || ensure_buf(st))
		return;
	ssize_t n = get_in(st, st->buf, st->cap);
	s->stopUnget = s->rdNext = st->buf;
	s->stop = s->wrNext = st->buf + (n > 0 ? n : 0);
}

/* emptyBuffProc: sends a writer's buffered bytes; with doClose, also what FCGX_FClose
 * sends (the stream's end record for a raw writer, a flush for a request stream). */
static void empty(FCGX_Stream *s, int doClose)
{
	fkc_stream *st = st_of(s);
	if (s->isReader)
		return;
	if (fkc_stream_drain(st))
		return;
	if (!doClose)
		return;
	if (st->kind == FKC_RAW) {
		if (raw_record(st, NULL, 0))
			set_error(s, errno ? errno : EIO);
	} else if (!foreign(st)) {
		int rc = fcgi_flush(st->r->req);
		if (rc)
			set_error(s, fkc_stream_errno(rc));
	}
}

void fkc_stream_init(fkc_stream *st, int kind, fkc_req *r)
{
	memset(st, 0, sizeof *st);
	st->kind = kind;
	st->r = r;
	st->fd = -1;
	st->s.isReader = kind == FKC_IN;
	st->s.fillBuffProc = fill;
	st->s.emptyBuffProc = empty;
	st->s.data = st;
	/* No buffer until the first use: all pointers NULL, so every fast path falls through. */
}

void fkc_stream_release(fkc_stream *st)
{
	buf_put(st->kind, st->buf);
	st->buf = NULL;
	st->cap = 0;
	FCGX_Stream *s = &st->s;
	s->rdNext = s->wrNext = s->stop = s->stopUnget = NULL;
	s->isClosed = 1;
}

/* ---------------------------------------------------------------- readers */

DLLAPI int FCGX_GetChar(FCGX_Stream *s)
{
	if (!s)
		return EOF;
	if (s->rdNext != s->stop && s->isReader)
		return *s->rdNext++;
	if (s->isClosed || !s->isReader)
		return EOF;
	s->fillBuffProc(s);
	if (s->rdNext != s->stop)
		return *s->rdNext++;
	return EOF;
}

DLLAPI int FCGX_UnGetChar(int c, FCGX_Stream *s)
{
	if (!s || c == EOF || !s->isReader || s->isClosed || !s->rdNext ||
	    s->rdNext == s->stopUnget)
		return EOF;
	*--s->rdNext = (unsigned char)c;
	return c;
}

DLLAPI int FCGX_GetStr(char *str, int n, FCGX_Stream *s)
{
	if (!s || n <= 0 || !s->isReader)
		return 0;
	size_t want = (size_t)n, got = (size_t)(s->stop - s->rdNext);
	if (got >= want) {
		memcpy(str, s->rdNext, want);
		s->rdNext += want;
		return n;
	}
	if (got)
		memcpy(str, s->rdNext, got);
	s->rdNext = s->stop;
	fkc_stream *st = st_of(s);
	while (got < want && !s->isClosed) {
		if (ensure_buf(st))
			break;
		size_t left = want - got;
		if (left >= st->cap) {
			/* Large reads skip the buffer; its first byte keeps the last one read, so one
			 * FCGX_UnGetChar still works afterwards. */
			ssize_t k = get_in(st, (unsigned char *)str + got, left);
			if (k <= 0)
				break;
			got += (size_t)k;
			st->buf[0] = (unsigned char)str[got - 1];
			s->stopUnget = st->buf;
			s->rdNext = s->stop = s->wrNext = st->buf + 1;
			continue;
		}
		fill(s);
		size_t have = (size_t)(s->stop - s->rdNext);
		size_t k = have < left ? have : left;
		memcpy(str + got, s->rdNext, k);
		s->rdNext += k;
		got += k;
	}
	return (int)got;
}

DLLAPI char *FCGX_GetLine(char *str, int n, FCGX_Stream *s)
{
	if (!s || n <= 0)
		return NULL;
	size_t room = (size_t)n - 1, got = 0;
	int nl = 0;
	while (got < room && !nl) {
		if (s->rdNext == s->stop || !s->isReader) {
			if (s->isClosed || !s->isReader)
				break;
			fill(s);
			if (s->rdNext == s->stop)
				break;
		}
		size_t have = (size_t)(s->stop - s->rdNext),
		       k = room - got < have ? room - got : have;
		unsigned char *e = memchr(s->rdNext, '\n', k);
		if (e) {
			k = (size_t)(e - s->rdNext) + 1;
			nl = 1;
		}
		memcpy(str + got, s->rdNext, k);
		s->rdNext += k;
		got += k;
	}
	if (!got && room)
		return NULL;
	str[got] = '\0';
	return str;
}

DLLAPI int FCGX_HasSeenEOF(FCGX_Stream *s) { return !s || s->isClosed ? EOF : 0; }

DLLAPI int FCGX_StartFilterData(FCGX_Stream *s)
{
	if (!s)
		return -1;
	fkc_stream *st = st_of(s);
	if (s->isReader && st->kind == FKC_IN && !st->data_phase && st->r &&
	    st->r->role == FCGI_FILTER && s->rdNext == s->stop && !s->isClosed) {
		/* libfcgi insists that the program has already met the end of STDIN; here a body that
		 * has been read exactly to its length is enough: one more read finds the end. */
		fill(s);
	}
	if (!s->isReader || st->kind != FKC_IN || st->data_phase || !st->r ||
	    st->r->role != FCGI_FILTER || !st->eof || s->rdNext != s->stop) {
		set_error(s, FCGX_CALL_SEQ_ERROR);
		return -1;
	}
	st->data_phase = 1;
	st->eof = 0;
	s->isClosed = 0;
	if (st->buf)
		s->rdNext = s->stop = s->wrNext = s->stopUnget = st->buf;
	return 0;
}

/* ---------------------------------------------------------------- writers */

static int put_slow(FCGX_Stream *s, const char *str, size_t n)
{
	fkc_stream *st = st_of(s);
	if (s->isReader || s->isClosed || ensure_buf(st))
		return -1;
	size_t room = (size_t)(s->stop - s->wrNext);
	if (n <= room) {
		memcpy(s->wrNext, str, n);
		s->wrNext += n;
		return 0;
	}
	if (fkc_stream_drain(st))
		return -1;
	if (n >= st->cap)
		return put_out(st, (const unsigned char *)str, n);
	memcpy(s->wrNext, str, n);
	s->wrNext += n;
	return 0;
}

DLLAPI int FCGX_PutChar(int c, FCGX_Stream *s)
{
	if (!s)
		return EOF;
	if (s->wrNext != s->stop) {
		*s->wrNext++ = (unsigned char)c;
		return (unsigned char)c;
	}
	unsigned char b = (unsigned char)c;
	return put_slow(s, (const char *)&b, 1) ? EOF : b;
}

DLLAPI int FCGX_PutStr(const char *str, int n, FCGX_Stream *s)
{
	if (!s || n < 0)
		return EOF;
	if (s->stop - s->wrNext >= n) {
		if (n) {
			memcpy(s->wrNext, str, (size_t)n);
			s->wrNext += n;
		}
		return n;
	}
	return put_slow(s, str, (size_t)n) ? EOF : n;
}

DLLAPI int FCGX_PutS(const char *str, FCGX_Stream *s)
{
	size_t n = strlen(str);
	if (n > 0x7fffffff)
		return EOF;
	return FCGX_PutStr(str, (int)n, s);
}

DLLAPI int FCGX_VFPrintF(FCGX_Stream *s, const char *format, va_list arg)
{
	if (!s || s->isReader || s->isClosed || ensure_buf(st_of(s)))
		return EOF;
	/* Format straight into the buffer when it fits (the usual case). */
	size_t room = (size_t)(s->stop - s->wrNext);
	va_list aq;
	va_copy(aq, arg);
	int n = vsnprintf((char *)s->wrNext, room, format, aq);
	va_end(aq);
	if (n < 0)
		return EOF;
	if ((size_t)n < room) {
		s->wrNext += n;
		return n;
	}
	char stack[PRINTF_STACK], *p = stack;
	if ((size_t)n >= sizeof stack && !(p = malloc((size_t)n + 1))) {
		set_error(s, ENOMEM);
		return EOF;
	}
	vsnprintf(p, (size_t)n + 1, format, arg);
	int rc = FCGX_PutStr(p, n, s);
	if (p != stack)
		free(p);
	return rc;
}

DLLAPI int FCGX_FPrintF(FCGX_Stream *s, const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	int rc = FCGX_VFPrintF(s, format, ap);
	va_end(ap);
	return rc;
}

DLLAPI int FCGX_FFlush(FCGX_Stream *s)
{
	/* libfcgi: flushing a closed stream (FCGX_FClose'd, or failed: see FCGX_GetError) is a
	 * successful no-op. */
	if (!s || s->isReader || s->isClosed)
		return 0;
	s->emptyBuffProc(s, 0);
	fkc_stream *st = st_of(s);
	if (!s->FCGI_errno && st->kind != FKC_RAW && !foreign(st)) {
		int rc = fcgi_flush(st->r->req);
		if (rc)
			set_error(s, fkc_stream_errno(rc));
	}
	return s->FCGI_errno ? EOF : 0;
}

/* ---------------------------------------------------------------- both */

DLLAPI int FCGX_FClose(FCGX_Stream *s)
{
	if (!s)
		return 0;
	if (!s->wasFCloseCalled) {
		if (!s->isReader && !s->isClosed)
			s->emptyBuffProc(s, 1);
		s->wasFCloseCalled = 1;
		s->isClosed = 1;
		if (s->isReader)
			s->rdNext = s->stop;
		else
			s->wrNext = s->rdNext = s->stop;
	}
	return s->FCGI_errno ? EOF : 0;
}

DLLAPI int FCGX_GetError(FCGX_Stream *s) { return s ? s->FCGI_errno : 0; }

DLLAPI void FCGX_ClearError(FCGX_Stream *s)
{
	if (s)
		s->FCGI_errno = 0;
}

DLLAPI void FCGX_SetExitStatus(int status, FCGX_Stream *s)
{
	fkc_stream *st = s ? st_of(s) : NULL;
	if (!st || !st->r)
		return;
	st->r->status = status;
	if (st->r->owner)
		st->r->owner->appStatus = status;
}

DLLAPI FCGX_Stream *FCGX_CreateWriter(int socket, int requestId, int bufflen, int streamType)
{
	fkc_stream *st = malloc(sizeof *st);
	if (!st)
		return NULL;
	fkc_stream_init(st, FKC_RAW, NULL);
	st->fd = socket;
	st->request_id = requestId;
	st->type = streamType;
	/* Whole records of at most FKC_RAW_MAX bytes, at least 64 so tiny sizes still work. */
	size_t cap = bufflen > 0 ? (size_t)bufflen : FKC_OUT_BUF;
	st->cap = cap < 64 ? 64 : cap > FKC_RAW_MAX ? FKC_RAW_MAX : cap;
	if (ensure_buf(st)) {
		free(st);
		return NULL;
	}
	return &st->s;
}

DLLAPI void FCGX_FreeStream(FCGX_Stream **stream)
{
	if (!stream || !*stream)
		return;
	fkc_stream *st = st_of(*stream);
	*stream = NULL;
	if (st->kind != FKC_RAW)
		return; /* a request's stream: freed with the request */
	free(st->buf);
	free(st);
}
