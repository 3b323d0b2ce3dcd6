/* http.c — HTTP/1.1 request-head parser and chunked decoder for the gateway. Contracts and
 * the strictness policy are in http.h; this file explains how the results are reached.
 *
 * The head parser is stateless, yet its answer must not depend on how the bytes were split
 * into reads. It gets there by deciding everything in byte order, one line at a time:
 *  - a line is looked at only up to max_line + 1 bytes and never past max_head bytes of
 *    the buffer, so a limit is reported at the first byte that passes it;
 *  - a complete line (its LF seen) is checked on its own: request-line grammar, target form,
 *    version, header-line grammar. Nothing a line alone decides waits for later lines;
 *  - what needs every header (Host, Content-Length vs Transfer-Encoding, header count, body
 *    limit) is decided once the blank line arrives.
 * So a prefix of any input answers EAGAIN or exactly what the whole input answers, and the
 * prev_len hint can resume at the start of the last incomplete line. When the head is
 * complete the whole head is walked again from byte 0 to fill the header slots: this costs
 * one pass per request and means a wrong hint can never yield slices that were not checked.
 */
#include "http/http.h"

#include <limits.h>
#include <string.h>

#include "fcgikit.h"

/* ------------------------------------------------------------------ character classes */

/* tchar (RFC 9110 §5.6.2): the characters of methods, field names and codings. */
static int is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return 1;
	/* clang-format off */
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
	case '-': case '.': case '^': case '_': case '`': case '|': case '~':
		return 1;
	default:
		return 0;
	}
	/* clang-format on */
}

/* field-vchar / obs-text plus SP and HTAB: what a field value may hold (no CTL but HTAB). */
static int is_value_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* reg-name characters (RFC 3986 unreserved / sub-delims / '%' of pct-encoded). */
static int is_host_char(unsigned char c)
{
	if (is_alpha(c) || is_digit(c))
		return 1;
	/* clang-format off */
	switch (c) {
	case '-': case '.': case '_': case '~': case '!': case '$': case '&': case '\'':
	case '(': case ')': case '*': case '+': case ',': case ';': case '=': case '%':
		return 1;
	default:
		return 0;
	}
	/* clang-format on */
}

static unsigned char lower(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Whether p[0..n) equals the lowercase string s, ignoring ASCII case. */
static int eq_ci(const char *p, size_t n, const char *s)
{
	size_t i = 0;
	for (; i < n; i++)
		if (!s[i] || lower((unsigned char)p[i]) != (unsigned char)s[i])
			return 0;
	return s[i] == 0;
}

static int eq(const char *p, size_t n, const char *s) { return strlen(s) == n && !memcmp(p, s, n); }

/* ------------------------------------------------------------------ public helpers */

const char *fk_http_status_text(int status)
{
	switch (status) {
	case FK_HTTP_400_BAD_REQUEST:
		return "Bad Request";
	case FK_HTTP_413_CONTENT_TOO_LARGE:
		return "Content Too Large";
	case FK_HTTP_414_URI_TOO_LONG:
		return "URI Too Long";
	case FK_HTTP_431_FIELDS_TOO_LARGE:
		return "Request Header Fields Too Large";
	case FK_HTTP_501_NOT_IMPLEMENTED:
		return "Not Implemented";
	case FK_HTTP_505_VERSION_NOT_SUPPORTED:
		return "HTTP Version Not Supported";
	default:
		return "";
	}
}

int fk_http_header_is(const fk_http_header *h, const char *lowercase_name)
{
	return eq_ci(h->name.p, h->name.n, lowercase_name);
}

const fk_http_header *fk_http_find(const fk_http_req *r, const char *lowercase_name)
{
	for (unsigned i = 0; i < r->nheaders; i++)
		if (fk_http_header_is(&r->headers[i], lowercase_name))
			return &r->headers[i];
	return NULL;
}

/* ------------------------------------------------------------------ head parser */

/* Why a head was refused: the status to answer and a static reason. */
typedef struct perr {
	int status;
	const char *why;
} perr;

static int fail(perr *e, int rc, int status, const char *why)
{
	e->status = status;
	e->why = why;
	return rc;
}

#define BAD(e, why) fail((e), FCGI_EPROTO, FK_HTTP_400_BAD_REQUEST, (why))

/* Effective limits: defaults filled in, sizes clamped so lengths fit the int result. */
typedef struct lims {
	size_t line, head;
	unsigned headers;
	uint64_t body;
} lims;

static void effective_limits(const fk_http_limits *in, lims *out)
{
	out->line = in && in->max_line ? in->max_line : FK_HTTP_MAX_LINE_DEFAULT;
	out->head = in && in->max_head ? in->max_head : FK_HTTP_MAX_HEAD_DEFAULT;
	out->headers = in && in->max_headers ? in->max_headers : FK_HTTP_MAX_HEADERS_DEFAULT;
	out->body = in ? in->max_body : 0;
	if (out->head > (size_t)INT_MAX)
		out->head = (size_t)INT_MAX;
	if (out->line > (size_t)INT_MAX)
		out->line = (size_t)INT_MAX;
}

/* Finds the line starting at s (s <= len, s <= head). Returns 1 with *cr the position of its
 * CR (content is [s, *cr), the next line starts at *cr + 2), 0 when more bytes are needed,
 * or an error. Looks at no byte at or past max_head, and at no more than max_line + 1 bytes
 * of the line: the first byte past either limit is the error, whatever follows it. */
static int next_line(const char *buf, size_t len, size_t s, const lims *L, int reqline, size_t *cr,
                     perr *e)
{
	size_t lim = len < L->head ? len : L->head; /* bytes this head may use */
	size_t win = lim - s;
	if (win > L->line + 1)
		win = L->line + 1;
	for (size_t p = s; p < s + win; p++) {
		char c = buf[p];
		if (c == '\n')
			return BAD(e, "bare LF line ending");
		if (c != '\r')
			continue;
		if (p + 1 >= lim) {
			if (len > L->head) /* the LF would be the byte past max_head */
				return fail(e, FCGI_ETOOBIG, FK_HTTP_431_FIELDS_TOO_LARGE,
				            "header section too large");
			return 0;
		}
		if (buf[p + 1] != '\n')
			return BAD(e, "bare CR");
		*cr = p;
		return 1;
	}
	if (win == L->line + 1) /* byte max_line + 1 of the line is not its CR */
		return reqline ? fail(e, FCGI_ETOOBIG, FK_HTTP_414_URI_TOO_LONG,
		                      "request line too long")
		               : fail(e, FCGI_ETOOBIG, FK_HTTP_431_FIELDS_TOO_LARGE,
		                      "header line too long");
	if (len > L->head)
		return fail(e, FCGI_ETOOBIG, FK_HTTP_431_FIELDS_TOO_LARGE,
		            "header section too large");
	return 0;
}

/* What the request line says. */
typedef struct rline {
	fk_http_slice method, target, path, query, host;
	fk_http_target_form form;
	int minor;
} rline;

/* uri-host [ ":" port ] with a non-empty host: reg-name or IPv4 (same characters), or
 * "[" IP-literal "]". Used for Host values and absolute-form authorities. No '@'. */
static int valid_host(const char *p, size_t n)
{
	size_t i = 0;
	if (n == 0)
		return 0;
	if (p[0] == '[') {
		for (i = 1; i < n && p[i] != ']'; i++)
			if (!is_host_char((unsigned char)p[i]) && p[i] != ':')
				return 0;
		if (i == n || i == 1)
			return 0;
		i++;
	} else {
		while (i < n && is_host_char((unsigned char)p[i]))
			i++;
		if (i == 0)
			return 0;
	}
	if (i == n)
		return 1;
	if (p[i] != ':')
		return 0;
	for (i++; i < n; i++)
		if (!is_digit((unsigned char)p[i]))
			return 0;
	return 1;
}

/* Splits t[from..n) at the first '?' into path and query. */
static void split_query(const char *t, size_t n, size_t from, rline *r)
{
	const char *q = memchr(t + from, '?', n - from);
	size_t pe = q ? (size_t)(q - t) : n;
	r->path = (fk_http_slice){t + from, pe - from};
	r->query = q ? (fk_http_slice){q + 1, n - pe - 1} : (fk_http_slice){t + n, 0};
}

/* absolute-form: scheme "://" authority path-abempty [ "?" query ]. Only http and https are
 * meaningful to an origin gateway; userinfo is refused (RFC 9110 §4.2.4); the authority must
 * hold a host (RFC 9110 §4.2.1: an http URI with an empty host is invalid). */
static int parse_absolute(const char *t, size_t n, rline *r, perr *e)
{
	size_t i = 0;
	if (!is_alpha((unsigned char)t[0]))
		return BAD(e, "invalid request-target");
	while (i < n && (is_alpha((unsigned char)t[i]) || is_digit((unsigned char)t[i]) ||
	                 t[i] == '+' || t[i] == '-' || t[i] == '.'))
		i++;
	if (n - i < 3 || memcmp(t + i, "://", 3) != 0)
		return BAD(e, "invalid request-target");
	if (!eq_ci(t, i, "http") && !eq_ci(t, i, "https"))
		return BAD(e, "unsupported URI scheme in request-target");
	size_t a = i + 3, j = a;
	while (j < n && t[j] != '/' && t[j] != '?')
		j++;
	if (memchr(t + a, '@', j - a))
		return BAD(e, "userinfo in request-target");
	if (!valid_host(t + a, j - a))
		return BAD(e, "invalid authority in request-target");
	r->host = (fk_http_slice){t + a, j - a};
	r->form = FK_HTTP_FORM_ABSOLUTE;
	if (j < n && t[j] == '/') {
		split_query(t, n, j, r);
	} else {
		split_query(t, n, j, r); /* path is empty: "http://h" or "http://h?q" */
		r->path = (fk_http_slice){"/", 1};
	}
	return 0;
}

/* request-line = method SP request-target SP HTTP-version, single spaces, nothing else.
 * Checks in this order: grammar (400), major version (505), CONNECT (501), target form (400). */
static int parse_reqline(const char *l, size_t n, rline *r, perr *e)
{
	size_t i = 0;
	while (i < n && is_tchar((unsigned char)l[i]))
		i++;
	if (i == 0 || i == n || l[i] != ' ')
		return BAD(e, "invalid method");
	r->method = (fk_http_slice){l, i};
	size_t t = ++i;
	while (i < n && l[i] != ' ')
		i++;
	if (i == n || i == t)
		return BAD(e, "malformed request line");
	const char *tp = l + t;
	size_t tn = i - t;
	for (size_t k = 0; k < tn; k++) {
		unsigned char c = (unsigned char)tp[k];
		if (c <= 0x20 || c >= 0x7f)
			return BAD(e, "invalid character in request-target");
		if (c == '#')
			return BAD(e, "fragment in request-target");
	}
	r->target = (fk_http_slice){tp, tn};
	const char *v = l + i + 1;
	size_t vn = n - i - 1;
	if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || !is_digit((unsigned char)v[5]) ||
	    v[6] != '.' || !is_digit((unsigned char)v[7]))
		return BAD(e, "malformed HTTP version");
	if (v[5] != '1')
		return fail(e, FCGI_EPROTO, FK_HTTP_505_VERSION_NOT_SUPPORTED,
		            "unsupported HTTP major version");
	r->minor = v[7] == '0' ? 0 : 1;
	if (eq(r->method.p, r->method.n, "CONNECT"))
		return fail(e, FCGI_EPROTO, FK_HTTP_501_NOT_IMPLEMENTED, "CONNECT not supported");
	r->host = (fk_http_slice){NULL, 0};
	if (tp[0] == '/') {
		r->form = FK_HTTP_FORM_ORIGIN;
		split_query(tp, tn, 0, r);
		return 0;
	}
	if (tn == 1 && tp[0] == '*') {
		if (!eq(r->method.p, r->method.n, "OPTIONS"))
			return BAD(e, "asterisk-form only for OPTIONS");
		r->form = FK_HTTP_FORM_ASTERISK;
		r->path = (fk_http_slice){tp, 1};
		r->query = (fk_http_slice){tp + 1, 0};
		return 0;
	}
	return parse_absolute(tp, tn, r, e);
}

/* field-line = field-name ":" OWS field-value OWS. n >= 1. */
static int parse_header(const char *l, size_t n, fk_http_header *h, perr *e)
{
	if (is_ows((unsigned char)l[0]))
		return BAD(e, "obs-fold line folding");
	size_t i = 0;
	while (i < n && is_tchar((unsigned char)l[i]))
		i++;
	if (i == n)
		return BAD(e, "header line without colon");
	if (l[i] != ':')
		return is_ows((unsigned char)l[i]) ? BAD(e, "whitespace before colon")
		                                   : BAD(e, "invalid header name");
	if (i == 0)
		return BAD(e, "empty header name");
	for (size_t k = i + 1; k < n; k++)
		if (!is_value_char((unsigned char)l[k]))
			return BAD(e, "invalid character in header value");
	size_t vs = i + 1, ve = n;
	while (vs < ve && is_ows((unsigned char)l[vs]))
		vs++;
	while (ve > vs && is_ows((unsigned char)l[ve - 1]))
		ve--;
	h->name = (fk_http_slice){l, i};
	h->value = (fk_http_slice){l + vs, ve - vs};
	return 0;
}

/* What the walk collects when asked to. */
typedef struct collect {
	fk_http_header *slots;
	unsigned cap, count; /* count may pass cap: slots past cap are not stored */
	rline rl;
} collect;

/* Walks lines from s, which is a line start; st 0 = the request line is still to come (empty
 * lines are skipped), 1 = header lines. Returns 1 with *end = head length when the blank line
 * has arrived, 0 for more bytes, or an error. With sc, stores what it finds. */
static int walk(const char *buf, size_t len, size_t s, int st, const lims *L, collect *sc,
                size_t *end, perr *e)
{
	rline scratch;
	for (;;) {
		size_t cr;
		int rc = next_line(buf, len, s, L, st == 0, &cr, e);
		if (rc <= 0)
			return rc;
		const char *l = buf + s;
		size_t n = cr - s;
		if (st == 0) {
			if (n) {
				rc = parse_reqline(l, n, sc ? &sc->rl : &scratch, e);
				if (rc)
					return rc;
				st = 1;
			}
		} else if (n == 0) {
			*end = cr + 2;
			return 1;
		} else {
			fk_http_header h, *hp = &h;
			if (sc && sc->count < sc->cap)
				hp = &sc->slots[sc->count];
			rc = parse_header(l, n, hp, e);
			if (rc)
				return rc;
			if (sc)
				sc->count++;
		}
		s = cr + 2;
	}
}

/* The next element of a comma-separated list in v[*i..n), OWS trimmed; empty elements are
 * returned too (callers skip them: RFC 9110 §5.6.1). 0 when the list is exhausted. */
static int next_elem(const fk_http_slice *v, size_t *i, fk_http_slice *el)
{
	if (*i > v->n)
		return 0;
	const char *p = v->p + *i;
	const char *c = memchr(p, ',', v->n - *i);
	size_t n = c ? (size_t)(c - p) : v->n - *i;
	*i += n + 1; /* past the comma, or past the end (v->n + 1) */
	while (n && is_ows((unsigned char)p[0]))
		p++, n--;
	while (n && is_ows((unsigned char)p[n - 1]))
		n--;
	*el = (fk_http_slice){p, n};
	return 1;
}

static int all_tchar(const fk_http_slice *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (!is_tchar((unsigned char)s->p[i]))
			return 0;
	return s->n > 0;
}

/* Checks that need the whole head, and fills *out. */
static int finish(const lims *L, collect *sc, size_t head_len, fk_http_req *out, perr *e)
{
	unsigned max = L->headers < sc->cap ? L->headers : sc->cap;
	if (sc->count > max)
		return fail(e, FCGI_ETOOBIG, FK_HTTP_431_FIELDS_TOO_LARGE, "too many header lines");
	const rline *r = &sc->rl;
	unsigned ncl = 0, nhost = 0, ncodings = 0;
	int te = 0, last_chunked = 0, chunked_not_last = 0, unknown = 0, bad_coding = 0;
	int conn_close = 0, conn_ka = 0, expect = 0;
	uint64_t cl = 0;
	fk_http_slice host = {NULL, 0}, el;
	for (unsigned h = 0; h < sc->count; h++) {
		const fk_http_header *f = &sc->slots[h];
		size_t i = 0;
		if (fk_http_header_is(f, "content-length")) {
			if (ncl++)
				return BAD(e, "several Content-Length");
			if (f->value.n == 0)
				return BAD(e, "invalid Content-Length");
			for (size_t k = 0; k < f->value.n; k++) {
				unsigned char c = (unsigned char)f->value.p[k];
				if (!is_digit(c))
					return BAD(e, "invalid Content-Length");
				if (cl > (UINT64_MAX - (uint64_t)(c - '0')) / 10)
					return BAD(e, "Content-Length overflow");
				cl = cl * 10 + (uint64_t)(c - '0');
			}
		} else if (fk_http_header_is(f, "transfer-encoding")) {
			/* Several lines form one list (RFC 9110 §5.3), in order. */
			te = 1;
			while (next_elem(&f->value, &i, &el)) {
				if (!el.n)
					continue;
				if (!all_tchar(&el))
					bad_coding =
					        1; /* parameters or junk: no coding we know has them */
				if (last_chunked)
					chunked_not_last = 1;
				last_chunked = eq_ci(el.p, el.n, "chunked");
				if (!last_chunked)
					unknown = 1;
				ncodings++;
			}
		} else if (fk_http_header_is(f, "host")) {
			nhost++;
			host = f->value;
		} else if (fk_http_header_is(f, "connection")) {
			while (next_elem(&f->value, &i, &el)) {
				if (eq_ci(el.p, el.n, "close"))
					conn_close = 1;
				else if (eq_ci(el.p, el.n, "keep-alive"))
					conn_ka = 1;
			}
		} else if (fk_http_header_is(f, "expect")) {
			while (next_elem(&f->value, &i, &el))
				if (eq_ci(el.p, el.n, "100-continue"))
					expect = 1;
		}
	}
	if (te) {
		/* RFC 9112 §6.1: a 1.0 recipient might not understand chunked; §6.3: TE with CL
		 * is how requests are smuggled; both get the connection closed after a 400. */
		if (r->minor == 0)
			return BAD(e, "Transfer-Encoding in HTTP/1.0");
		if (ncl)
			return BAD(e, "both Transfer-Encoding and Content-Length");
		if (bad_coding || ncodings == 0)
			return BAD(e, "invalid Transfer-Encoding");
		if (chunked_not_last)
			return BAD(e, "chunked not the final transfer coding");
		if (unknown)
			return fail(e, FCGI_EPROTO, FK_HTTP_501_NOT_IMPLEMENTED,
			            "unsupported transfer coding");
	}
	if (nhost > 1)
		return BAD(e, "several Host");
	if (nhost == 0 && r->minor == 1)
		return BAD(e, "missing Host");
	if (nhost && host.n && !valid_host(host.p, host.n))
		return BAD(e, "invalid Host");
	if (ncl && L->body && cl > L->body)
		return fail(e, FCGI_ETOOBIG, FK_HTTP_413_CONTENT_TOO_LARGE,
		            "Content-Length over the limit");

	out->method = r->method;
	out->target = r->target;
	out->path = r->path;
	out->query = r->query;
	out->form = r->form;
	out->minor = r->minor;
	out->nheaders = sc->count;
	out->body = te ? FK_HTTP_BODY_CHUNKED : ncl ? FK_HTTP_BODY_LENGTH : FK_HTTP_BODY_NONE;
	out->content_length = ncl ? cl : 0;
	out->keep_alive = r->minor ? !conn_close : conn_ka && !conn_close;
	out->expect_continue = r->minor == 1 && expect && (te || (ncl && cl > 0));
	if (r->form == FK_HTTP_FORM_ABSOLUTE)
		out->host = r->host;
	else if (nhost)
		out->host = host;
	else
		out->host = (fk_http_slice){NULL, 0};
	return (int)head_len;
}

int fk_http_parse_request(const char *buf, size_t len, size_t prev_len, const fk_http_limits *lim,
                          fk_http_req *req, int *status, const char **why)
{
	lims L;
	perr e = {0, NULL};
	size_t end = 0;
	collect sc;
	int rc;
	effective_limits(lim, &L);
	if (!buf)
		len = 0;

	/* With a hint, first check only the lines from the last one the previous call had not
	 * finished: cheap EAGAIN while a head trickles in. That line starts after the last LF
	 * before prev_len; the line before it ended with CRLF, and it was empty only if every
	 * line before was (an empty line after the request line would have ended the head). */
	if (prev_len && prev_len <= len && prev_len <= L.head) {
		const char *nl = memrchr(buf, '\n', prev_len);
		if (nl) {
			size_t s = (size_t)(nl - buf) + 1;
			int st = !(s >= 2 && buf[s - 2] == '\r' && (s == 2 || buf[s - 3] == '\n'));
			rc = walk(buf, len, s, st, &L, NULL, &end, &e);
			if (rc <= 0)
				goto out;
		}
	}

	memset(&sc, 0, sizeof sc);
	sc.slots = req->headers;
	sc.cap = req->headers ? req->nheaders : 0;
	rc = walk(buf, len, 0, 0, &L, &sc, &end, &e);
	if (rc > 0)
		rc = finish(&L, &sc, end, req, &e);
out:
	if (rc == 0) {
		rc = FCGI_EAGAIN;
		e.status = 0;
		e.why = NULL;
	}
	if (status)
		*status = e.status;
	if (why)
		*why = e.why;
	return rc;
}

/* ------------------------------------------------------------------ chunked decoder */

const char *fk_http_chunked_state_name(int state)
{
	static const char *const names[] = {
	        [FK_CS_SIZE] = "SIZE",
	        [FK_CS_EXT_WS] = "EXT_WS",
	        [FK_CS_EXT_NAME_WS] = "EXT_NAME_WS",
	        [FK_CS_EXT_NAME] = "EXT_NAME",
	        [FK_CS_EXT_NAME_END] = "EXT_NAME_END",
	        [FK_CS_EXT_VAL_WS] = "EXT_VAL_WS",
	        [FK_CS_EXT_VAL] = "EXT_VAL",
	        [FK_CS_EXT_QVAL] = "EXT_QVAL",
	        [FK_CS_EXT_QVAL_ESC] = "EXT_QVAL_ESC",
	        [FK_CS_EXT_QVAL_END] = "EXT_QVAL_END",
	        [FK_CS_EXT_VAL_END] = "EXT_VAL_END",
	        [FK_CS_SIZE_LF] = "SIZE_LF",
	        [FK_CS_DATA] = "DATA",
	        [FK_CS_DATA_CR] = "DATA_CR",
	        [FK_CS_DATA_LF] = "DATA_LF",
	        [FK_CS_TRAILER] = "TRAILER",
	        [FK_CS_TRAILER_NAME] = "TRAILER_NAME",
	        [FK_CS_TRAILER_VALUE] = "TRAILER_VALUE",
	        [FK_CS_TRAILER_LF] = "TRAILER_LF",
	        [FK_CS_END_LF] = "END_LF",
	        [FK_CS_DONE] = "DONE",
	        [FK_CS_ERROR] = "ERROR",
	};
	if (state < 0 || (size_t)state >= sizeof names / sizeof names[0] || !names[state])
		return "?";
	return names[state];
}

void fk_http_chunked_init(fk_http_chunked *c)
{
	memset(c, 0, sizeof *c);
	c->state = FK_CS_SIZE;
}

static int cfail(fk_http_chunked *c, int rc, int status, const char *why)
{
	c->state = FK_CS_ERROR;
	c->err = rc;
	c->status = status;
	c->why = why;
	return rc;
}

#define CBAD(c, why) cfail((c), FCGI_EPROTO, FK_HTTP_400_BAD_REQUEST, (why))

/* The size line is complete: start the chunk's data, or the trailer section after the
 * last chunk. The body limit is checked here, before any of the chunk's data arrives. */
static int chunk_start(fk_http_chunked *c)
{
	if (c->remaining == 0) {
		c->state = FK_CS_TRAILER;
		c->trailer_bytes = 0;
		return 0;
	}
	if (c->remaining > UINT64_MAX - c->total ||
	    (c->max_body && c->total + c->remaining > c->max_body))
		return cfail(c, FCGI_ETOOBIG, FK_HTTP_413_CONTENT_TOO_LARGE,
		             "chunked body over the limit");
	c->total += c->remaining;
	c->state = FK_CS_DATA;
	return 0;
}

/* One byte of everything but chunk-data. Returns 0 or an error. */
static int chunked_byte(fk_http_chunked *c, unsigned char ch)
{
	if (c->state <= FK_CS_EXT_VAL_END && ch != '\r' && ++c->line_bytes > FK_HTTP_CHUNK_LINE_MAX)
		return cfail(c, FCGI_ETOOBIG, FK_HTTP_400_BAD_REQUEST, "chunk-size line too long");
	if (c->state >= FK_CS_TRAILER && c->state <= FK_CS_END_LF &&
	    ++c->trailer_bytes > FK_HTTP_TRAILERS_MAX)
		return cfail(c, FCGI_ETOOBIG, FK_HTTP_431_FIELDS_TOO_LARGE,
		             "trailer section too large");
	if (ch == '\n' && c->state != FK_CS_SIZE_LF && c->state != FK_CS_DATA_LF &&
	    c->state != FK_CS_TRAILER_LF && c->state != FK_CS_END_LF)
		return CBAD(c, "bare LF in chunked body");
	int hv;
	switch (c->state) {
	case FK_CS_SIZE:
		if ((hv = hex_value(ch)) >= 0) {
			if (c->digits == FK_HTTP_CHUNK_DIGITS_MAX)
				return cfail(c, FCGI_ETOOBIG, FK_HTTP_400_BAD_REQUEST,
				             "chunk-size too long");
			c->remaining = c->remaining << 4 | (uint64_t)hv;
			c->digits++;
		} else if (c->digits == 0) {
			return CBAD(c, "invalid chunk-size");
		} else if (ch == ';') {
			c->state = FK_CS_EXT_NAME_WS;
		} else if (is_ows(ch)) {
			c->state = FK_CS_EXT_WS;
		} else if (ch == '\r') {
			c->state = FK_CS_SIZE_LF;
		} else {
			return CBAD(c, "invalid chunk-size");
		}
		return 0;
	case FK_CS_EXT_WS: /* BWS is allowed only before ';' */
		if (ch == ';')
			c->state = FK_CS_EXT_NAME_WS;
		else if (!is_ows(ch))
			return CBAD(c, "invalid chunk extension");
		return 0;
	case FK_CS_EXT_NAME_WS:
		if (is_tchar(ch))
			c->state = FK_CS_EXT_NAME;
		else if (!is_ows(ch))
			return CBAD(c, "invalid chunk extension");
		return 0;
	case FK_CS_EXT_NAME:
	case FK_CS_EXT_VAL:
		if (is_tchar(ch))
			return 0;
		if (ch == '=' && c->state == FK_CS_EXT_NAME)
			c->state = FK_CS_EXT_VAL_WS;
		else if (ch == ';')
			c->state = FK_CS_EXT_NAME_WS;
		else if (ch == '\r')
			c->state = FK_CS_SIZE_LF;
		else if (is_ows(ch))
			c->state =
			        c->state == FK_CS_EXT_NAME ? FK_CS_EXT_NAME_END : FK_CS_EXT_VAL_END;
		else
			return CBAD(c, "invalid chunk extension");
		return 0;
	case FK_CS_EXT_NAME_END: /* BWS after a name: '=' or ';' must follow */
		if (ch == '=')
			c->state = FK_CS_EXT_VAL_WS;
		else if (ch == ';')
			c->state = FK_CS_EXT_NAME_WS;
		else if (!is_ows(ch))
			return CBAD(c, "invalid chunk extension");
		return 0;
	case FK_CS_EXT_VAL_WS:
		if (is_tchar(ch))
			c->state = FK_CS_EXT_VAL;
		else if (ch == '"')
			c->state = FK_CS_EXT_QVAL;
		else if (!is_ows(ch))
			return CBAD(c, "invalid chunk extension");
		return 0;
	case FK_CS_EXT_QVAL: /* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
		if (ch == '"')
			c->state = FK_CS_EXT_QVAL_END;
		else if (ch == '\\')
			c->state = FK_CS_EXT_QVAL_ESC;
		else if (!is_value_char(ch))
			return CBAD(c, "invalid chunk extension");
		return 0;
	case FK_CS_EXT_QVAL_ESC: /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
		if (!is_value_char(ch))
			return CBAD(c, "invalid chunk extension");
		c->state = FK_CS_EXT_QVAL;
		return 0;
	case FK_CS_EXT_QVAL_END:
		if (ch == ';')
			c->state = FK_CS_EXT_NAME_WS;
		else if (ch == '\r')
			c->state = FK_CS_SIZE_LF;
		else if (is_ows(ch))
			c->state = FK_CS_EXT_VAL_END;
		else
			return CBAD(c, "invalid chunk extension");
		return 0;
	case FK_CS_EXT_VAL_END: /* BWS after a value: ';' must follow */
		if (ch == ';')
			c->state = FK_CS_EXT_NAME_WS;
		else if (!is_ows(ch))
			return CBAD(c, "invalid chunk extension");
		return 0;
	case FK_CS_SIZE_LF:
		if (ch != '\n')
			return CBAD(c, "bare CR in chunked body");
		return chunk_start(c);
	case FK_CS_DATA_CR:
		if (ch != '\r')
			return CBAD(c, "chunk data not followed by CRLF");
		c->state = FK_CS_DATA_LF;
		return 0;
	case FK_CS_DATA_LF:
		if (ch != '\n')
			return CBAD(c, "chunk data not followed by CRLF");
		c->state = FK_CS_SIZE;
		c->remaining = 0;
		c->digits = 0;
		c->line_bytes = 0;
		return 0;
	case FK_CS_TRAILER:
		if (ch == '\r')
			c->state = FK_CS_END_LF;
		else if (is_tchar(ch))
			c->state = FK_CS_TRAILER_NAME;
		else if (is_ows(ch))
			return CBAD(c, "obs-fold in trailer");
		else
			return CBAD(c, "invalid trailer field name");
		return 0;
	case FK_CS_TRAILER_NAME:
		if (ch == ':')
			c->state = FK_CS_TRAILER_VALUE;
		else if (is_ows(ch))
			return CBAD(c, "whitespace before colon in trailer");
		else if (!is_tchar(ch))
			return CBAD(c, "invalid trailer field name");
		return 0;
	case FK_CS_TRAILER_VALUE:
		if (ch == '\r')
			c->state = FK_CS_TRAILER_LF;
		else if (!is_value_char(ch))
			return CBAD(c, "invalid character in trailer value");
		return 0;
	case FK_CS_TRAILER_LF:
		if (ch != '\n')
			return CBAD(c, "bare CR in trailer");
		c->state = FK_CS_TRAILER;
		return 0;
	case FK_CS_END_LF:
		if (ch != '\n')
			return CBAD(c, "bare CR in chunked body");
		c->state = FK_CS_DONE;
		return 0;
	case FK_CS_DATA:
	case FK_CS_DONE:
	case FK_CS_ERROR:
	default:
		break;
	}
	return CBAD(c, "decoder state corrupt"); /* unreachable: feed handles these states */
}

int fk_http_chunked_feed(fk_http_chunked *c, const char *in, size_t len, const char **data,
                         size_t *data_len, int *done)
{
	*data = NULL;
	*data_len = 0;
	*done = 0;
	if (c->state == FK_CS_ERROR)
		return c->err;
	if (!in)
		len = 0;
	if (len > (size_t)INT_MAX)
		len = (size_t)INT_MAX;
	size_t i = 0;
	while (i < len && c->state != FK_CS_DONE) {
		if (c->state == FK_CS_DATA) {
			size_t n = len - i;
			if (n > c->remaining)
				n = (size_t)c->remaining;
			*data = in + i;
			*data_len = n;
			c->remaining -= n;
			i += n;
			if (c->remaining == 0)
				c->state = FK_CS_DATA_CR;
			return (int)i;
		}
		int rc = chunked_byte(c, (unsigned char)in[i]);
		if (rc)
			return rc;
		i++;
	}
	*done = c->state == FK_CS_DONE;
	return (int)i;
}
