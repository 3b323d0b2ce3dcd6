/*
 * fuzz_http.c — libFuzzer target for the gateway's HTTP/1.1 request-head parser and chunked
 * decoder (lib/http/http.c). The input is raw bytes from a client connection; a hash of it
 * picks the limits, the number of header slots and the split points, so the seeds stay plain
 * HTTP. Checks, for any input:
 *  - the head parser answers a head length in 1..min(len, max_head), FCGI_EAGAIN,
 *    FCGI_EPROTO (400/501/505) or FCGI_ETOOBIG (413/414/431), with a reason iff an error;
 *  - every slice of a parsed head lies inside the head (the static "/" path of absolute-form
 *    and the NULL host of HTTP/1.0 aside); names are tokens, values hold no CTL but HTAB and
 *    no leading/trailing OWS; the head ends with CRLFCRLF; derived fields agree with the rules
 *    (chunked only in 1.1, Host present in 1.1, Content-Length within max_body);
 *  - parsing exactly the head gives the same head; every tried prefix answers EAGAIN or the
 *    whole input's answer; feeding growing prefixes with the prev_len hint ends in the same
 *    answer and fields as one call. Prefixes are exact-size heap copies so ASan sees any read
 *    past len;
 *  - pipelined heads parse one after the other; a Content-Length body is skipped, a chunked
 *    one is decoded;
 *  - the chunked decoder (on the body after a head, and on the raw input) gives the same
 *    consumed count, error, status, payload and end, fed whole or in random pieces; payload
 *    slices lie inside the piece and end at the consumed point; each call makes progress;
 *    the payload count equals c.total.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgikit.h"
#include "http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);      \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define MAX_INPUT 8192
#define MAX_SLOTS 64

/* xorshift64*: split points and configuration from the input's hash. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static uint64_t hash(const uint8_t *d, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ d[i]) * 0x100000001b3ULL;
	return h | 1;
}

static int is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

typedef struct result {
	int rc, status;
	const char *why;
	fk_http_req req;
	fk_http_header slots[MAX_SLOTS];
} result;

/* Parses an exact-size heap copy of buf[0..len); slices are rebased onto buf after checking
 * they lie inside the copy's head. */
static void parse(result *r, const char *buf, size_t len, size_t prev, const fk_http_limits *lim,
                  unsigned nslots)
{
	char *copy = malloc(len ? len : 1);
	CHECK(copy);
	memcpy(copy, buf, len);
	memset(&r->req, 0, sizeof r->req);
	r->req.headers = r->slots;
	r->req.nheaders = nslots;
	r->rc = fk_http_parse_request(copy, len, prev, lim, &r->req, &r->status, &r->why);
	if (r->rc > 0) {
		size_t h = (size_t)r->rc;
		ptrdiff_t d = buf - copy;
		fk_http_slice *sl[] = {&r->req.method, &r->req.target, &r->req.path, &r->req.query,
		                       &r->req.host};
		for (size_t i = 0; i < sizeof sl / sizeof sl[0]; i++) {
			if (sl[i] == &r->req.host && !sl[i]->p) {
				CHECK(sl[i]->n == 0);
				continue;
			}
			if (sl[i] == &r->req.path && r->req.form == FK_HTTP_FORM_ABSOLUTE &&
			    (sl[i]->p < copy || sl[i]->p >= copy + h)) {
				CHECK(sl[i]->n == 1 && sl[i]->p[0] == '/');
				continue;
			}
			CHECK(sl[i]->p >= copy && sl[i]->p <= copy + h && sl[i]->n <= h &&
			      sl[i]->p + sl[i]->n <= copy + h);
			sl[i]->p += d;
		}
		CHECK(r->req.nheaders <= nslots);
		for (unsigned i = 0; i < r->req.nheaders; i++) {
			fk_http_slice *s2[] = {&r->slots[i].name, &r->slots[i].value};
			for (int k = 0; k < 2; k++) {
				CHECK(s2[k]->p >= copy && s2[k]->p + s2[k]->n <= copy + h);
				s2[k]->p += d;
			}
		}
	}
	free(copy);
}

static void check_result(const result *r, const char *buf, size_t len, const fk_http_limits *lim,
                         unsigned nslots)
{
	size_t max_head = lim->max_head ? lim->max_head : FK_HTTP_MAX_HEAD_DEFAULT;
	unsigned max_headers = lim->max_headers ? lim->max_headers : FK_HTTP_MAX_HEADERS_DEFAULT;
	if (r->rc == FCGI_EAGAIN) {
		CHECK(r->status == 0 && r->why == NULL);
		CHECK(len <= max_head);
		return;
	}
	if (r->rc == FCGI_EPROTO) {
		CHECK(r->status == 400 || r->status == 501 || r->status == 505);
		CHECK(r->why && r->why[0]);
		return;
	}
	if (r->rc == FCGI_ETOOBIG) {
		CHECK(r->status == 413 || r->status == 414 || r->status == 431);
		CHECK(r->why && r->why[0]);
		return;
	}
	CHECK(r->rc > 0);
	size_t h = (size_t)r->rc;
	CHECK(h <= len && h <= max_head && h >= 4);
	CHECK(r->status == 0 && r->why == NULL);
	CHECK(!memcmp(buf + h - 4, "\r\n\r\n", 4));
	CHECK(memchr(buf, '\n', h) != NULL);
	const fk_http_req *q = &r->req;
	CHECK(q->method.n > 0);
	for (size_t i = 0; i < q->method.n; i++)
		CHECK(is_tchar((unsigned char)q->method.p[i]));
	CHECK(q->target.n > 0);
	for (size_t i = 0; i < q->target.n; i++)
		CHECK((unsigned char)q->target.p[i] > 0x20 && (unsigned char)q->target.p[i] < 0x7f);
	CHECK(q->path.n > 0);
	if (q->form == FK_HTTP_FORM_ASTERISK)
		CHECK(q->path.n == 1 && q->path.p[0] == '*' && q->method.n == 7 &&
		      !memcmp(q->method.p, "OPTIONS", 7));
	else
		CHECK(q->path.p[0] == '/');
	CHECK(!memchr(q->path.p, '?', q->path.n));
	CHECK(q->minor == 0 || q->minor == 1);
	CHECK(q->keep_alive == 0 || q->keep_alive == 1);
	CHECK(!(q->method.n == 7 && !memcmp(q->method.p, "CONNECT", 7)));
	CHECK(q->nheaders <= nslots && q->nheaders <= max_headers);
	for (unsigned i = 0; i < q->nheaders; i++) {
		const fk_http_header *f = &r->slots[i];
		CHECK(f->name.n > 0);
		for (size_t k = 0; k < f->name.n; k++)
			CHECK(is_tchar((unsigned char)f->name.p[k]));
		for (size_t k = 0; k < f->value.n; k++) {
			unsigned char c = (unsigned char)f->value.p[k];
			CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
		}
		if (f->value.n) {
			CHECK(f->value.p[0] != ' ' && f->value.p[0] != '\t');
			CHECK(f->value.p[f->value.n - 1] != ' ' &&
			      f->value.p[f->value.n - 1] != '\t');
		}
	}
	int ncl = 0, nte = 0, nhost = 0;
	for (unsigned i = 0; i < q->nheaders; i++) {
		ncl += fk_http_header_is(&r->slots[i], "content-length");
		nte += fk_http_header_is(&r->slots[i], "transfer-encoding");
		nhost += fk_http_header_is(&r->slots[i], "host");
	}
	CHECK(ncl <= 1 && nhost <= 1 && !(ncl && nte));
	if (q->minor == 1)
		CHECK(nhost == 1 && q->host.p);
	switch (q->body) {
	case FK_HTTP_BODY_NONE:
		CHECK(!ncl && !nte && q->content_length == 0 && !q->expect_continue);
		break;
	case FK_HTTP_BODY_LENGTH:
		CHECK(ncl == 1 && (!lim->max_body || q->content_length <= lim->max_body));
		break;
	case FK_HTTP_BODY_CHUNKED:
		CHECK(nte >= 1 && q->minor == 1 && q->content_length == 0);
		break;
	default:
		CHECK(0);
	}
	if (q->expect_continue)
		CHECK(q->minor == 1);
	if (q->nheaders) {
		const fk_http_header *f = fk_http_find(q, "host");
		CHECK((f != NULL) == (nhost == 1));
	}
}

static void check_same(const result *a, const result *b)
{
	CHECK(a->rc == b->rc && a->status == b->status);
	if (a->rc <= 0)
		return;
	const fk_http_req *x = &a->req, *y = &b->req;
	CHECK(x->method.p == y->method.p && x->method.n == y->method.n);
	CHECK(x->target.p == y->target.p && x->target.n == y->target.n);
	CHECK(x->path.p == y->path.p && x->path.n == y->path.n);
	CHECK(x->query.p == y->query.p && x->query.n == y->query.n);
	CHECK(x->host.p == y->host.p && x->host.n == y->host.n);
	CHECK(x->minor == y->minor && x->keep_alive == y->keep_alive && x->form == y->form);
	CHECK(x->body == y->body && x->content_length == y->content_length);
	CHECK(x->expect_continue == y->expect_continue && x->nheaders == y->nheaders);
	for (unsigned i = 0; i < x->nheaders; i++)
		CHECK(a->slots[i].name.p == b->slots[i].name.p &&
		      a->slots[i].name.n == b->slots[i].name.n &&
		      a->slots[i].value.p == b->slots[i].value.p &&
		      a->slots[i].value.n == b->slots[i].value.n);
}

/* The head at buf[0..len): whole, exact, prefixes, growing prefixes with the hint. */
static int check_head(const char *buf, size_t len, const fk_http_limits *lim, unsigned nslots,
                      uint64_t *rng, result *whole)
{
	static result r; /* large: keep it off the stack */
	parse(whole, buf, len, 0, lim, nslots);
	check_result(whole, buf, len, lim, nslots);
	if (whole->rc > 0 && (size_t)whole->rc < len) {
		parse(&r, buf, (size_t)whole->rc, 0, lim, nslots);
		check_same(&r, whole);
	}
	/* a few prefixes: EAGAIN or the whole answer (for a head, only past its end) */
	for (int i = 0; i < 6 && len; i++) {
		size_t k = (size_t)(rng_next(rng) % len);
		parse(&r, buf, k, 0, lim, nslots);
		check_result(&r, buf, k, lim, nslots);
		if (r.rc == FCGI_EAGAIN) {
			CHECK(whole->rc == FCGI_EAGAIN || whole->rc < 0 || k < (size_t)whole->rc);
			continue;
		}
		check_same(&r, whole);
	}
	/* growing prefixes in random steps, with the hint */
	size_t prev = 0, k = 0;
	while (k < len) {
		size_t step = 1 + (size_t)(rng_next(rng) % ((rng_next(rng) & 3) ? 8 : 512));
		k = k + step > len ? len : k + step;
		parse(&r, buf, k, prev, lim, nslots);
		if (r.rc != FCGI_EAGAIN)
			break;
		prev = k;
	}
	if (len)
		check_same(&r, whole);
	return whole->rc;
}

typedef struct chunk_result {
	int rc; /* consumed, or the error */
	int done, status;
	size_t outn;
	uint64_t total;
} chunk_result;

/* Decodes in[0..len) in pieces of random size (max_piece 0: whole), payload into out. */
static void decode(const char *in, size_t len, size_t max_piece, uint64_t *rng, uint64_t max_body,
                   char *out, chunk_result *res)
{
	fk_http_chunked c;
	fk_http_chunked_init(&c);
	c.max_body = max_body;
	memset(res, 0, sizeof *res);
	size_t off = 0;
	for (;;) {
		size_t give = len - off;
		if (max_piece && give) {
			size_t p = 1 + (size_t)(rng_next(rng) % max_piece);
			if (p < give)
				give = p;
		}
		/* an exact-size copy of the piece, so ASan sees reads past it */
		char *piece = malloc(give ? give : 1);
		CHECK(piece);
		memcpy(piece, in + off, give);
		const char *data = (const char *)1;
		size_t dl = 12345;
		int done = 7;
		int rc = fk_http_chunked_feed(&c, piece, give, &data, &dl, &done);
		if (rc < 0) {
			free(piece);
			CHECK(rc == FCGI_EPROTO || rc == FCGI_ETOOBIG);
			CHECK(c.state == FK_CS_ERROR && c.err == rc && c.why && c.why[0]);
			CHECK(c.status == 400 || c.status == 413 || c.status == 431);
			CHECK(rc == FCGI_ETOOBIG || c.status == 400);
			CHECK(fk_http_chunked_feed(&c, in, len, &data, &dl, &done) == rc);
			res->rc = rc;
			res->status = c.status;
			return;
		}
		CHECK((size_t)rc <= give && (done == 0 || done == 1));
		if (dl) {
			CHECK(data >= piece && data + dl == piece + rc);
			memcpy(out + res->outn, data, dl);
			res->outn += dl;
		} else {
			CHECK(data == NULL);
		}
		free(piece);
		CHECK(rc > 0 || done || give == 0);
		off += (size_t)rc;
		CHECK(!max_body || res->outn <= max_body);
		if (done) {
			CHECK(c.state == FK_CS_DONE && c.remaining == 0);
			res->done = 1;
			break;
		}
		if (off == len)
			break;
	}
	CHECK(c.total >= res->outn);
	if (res->done)
		CHECK(c.total == res->outn);
	res->rc = (int)off;
	res->total = c.total;
}

static void check_chunked(const char *in, size_t len, uint64_t *rng, uint64_t max_body)
{
	static char out1[MAX_INPUT], out2[MAX_INPUT];
	chunk_result a, b;
	decode(in, len, 0, rng, max_body, out1, &a);
	decode(in, len, 1 + (size_t)(rng_next(rng) % 16), rng, max_body, out2, &b);
	CHECK(a.rc == b.rc && a.status == b.status && a.done == b.done && a.outn == b.outn);
	CHECK(a.total == b.total);
	CHECK(!memcmp(out1, out2, a.outn));
	if (a.done)
		CHECK(a.rc >= 5 && !memcmp(in + a.rc - 2, "\r\n", 2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > MAX_INPUT)
		return 0;
	const char *buf = (const char *)data;
	uint64_t rng = hash(data, size);
	uint64_t cfg = rng_next(&rng);
	fk_http_limits lim = {0};
	if (cfg & 1) { /* tight limits, so they are hit inside lines */
		lim.max_line = 8 + (size_t)((cfg >> 8) % 64);
		lim.max_head = 16 + (size_t)((cfg >> 16) % 512);
		lim.max_headers = 1 + (unsigned)((cfg >> 24) % 8);
	}
	if (cfg & 2)
		lim.max_body = (cfg >> 32) % 64;
	unsigned nslots = (cfg & 4) ? (unsigned)((cfg >> 40) % 4) : MAX_SLOTS;

	static result whole;
	size_t off = 0;
	for (int n = 0; n < 8 && off < size; n++) {
		int rc = check_head(buf + off, size - off, &lim, nslots, &rng, &whole);
		if (rc <= 0)
			break;
		off += (size_t)rc;
		if (whole.req.body == FK_HTTP_BODY_LENGTH) {
			if (whole.req.content_length > size - off)
				break;
			off += (size_t)whole.req.content_length;
		} else if (whole.req.body == FK_HTTP_BODY_CHUNKED) {
			check_chunked(buf + off, size - off, &rng, lim.max_body);
			chunk_result cr;
			static char out[MAX_INPUT];
			decode(buf + off, size - off, 0, &rng, lim.max_body, out, &cr);
			if (!cr.done)
				break;
			off += (size_t)cr.rc;
		}
	}
	/* the decoder on the raw input too: inputs that start with a chunk-size line */
	check_chunked(buf, size, &rng, lim.max_body);
	return 0;
}
