/* codec.c — sans-I/O FastCGI codec (see codec.h for the contracts). */
#include <stdio.h>
#include <string.h>

#include "codec/codec.h"
#include "fcgikit.h"
#include "util/alloc.h"

const char *fk_type_name(unsigned type)
{
	static const char *const names[] = {
	    "type-0",    "BEGIN_REQUEST", "ABORT_REQUEST", "END_REQUEST",       "PARAMS",
	    "STDIN",     "STDOUT",        "STDERR",        "DATA",              "GET_VALUES",
	    "GET_VALUES_RESULT", "UNKNOWN_TYPE"};
	return type < sizeof names / sizeof names[0] ? names[type] : "unknown-type";
}

/* ---------------------------------------------------------------- primitives */

void fk_header_encode(uint8_t out[FK_HEADER_LEN], unsigned type, unsigned request_id,
                      unsigned content_len, unsigned padding_len)
{
	out[0] = FK_VERSION_1;
	out[1] = (uint8_t)type;
	out[2] = (uint8_t)(request_id >> 8);
	out[3] = (uint8_t)request_id;
	out[4] = (uint8_t)(content_len >> 8);
	out[5] = (uint8_t)content_len;
	out[6] = (uint8_t)padding_len;
	out[7] = 0;
}

int fk_header_decode(const uint8_t *in, size_t len, fk_header *h)
{
	if (len < FK_HEADER_LEN)
		return 0;
	h->version = in[0];
	h->type = in[1];
	h->request_id = (uint16_t)(in[2] << 8 | in[3]);
	h->content_len = (uint16_t)(in[4] << 8 | in[5]);
	h->padding_len = in[6];
	return h->version == FK_VERSION_1 ? FK_HEADER_LEN : FCGI_EPROTO;
}

/* Reads one length field; returns its size (1 or 4), or 0 when incomplete. */
static size_t pair_len_decode(const uint8_t *in, size_t len, size_t *out)
{
	if (len < 1)
		return 0;
	if (!(in[0] & 0x80)) {
		*out = in[0];
		return 1;
	}
	if (len < 4)
		return 0;
	*out = ((size_t)(in[0] & 0x7f) << 24) | ((size_t)in[1] << 16) | ((size_t)in[2] << 8) | in[3];
	return 4;
}

int fk_pair_decode(const uint8_t *in, size_t len, fk_pair *p, size_t *consumed)
{
	size_t nlen, vlen, a, b;
	*consumed = 0;
	if (!(a = pair_len_decode(in, len, &nlen)))
		return 0;
	if (!(b = pair_len_decode(in + a, len - a, &vlen)))
		return 0;
	size_t have = len - a - b;
	/* Compare piecewise: nlen + vlen cannot overflow a 64-bit size_t, but may on 32 bits. */
	if (nlen > have || vlen > have - nlen)
		return 0;
	p->name = in + a + b;
	p->name_len = nlen;
	p->value = p->name + nlen;
	p->value_len = vlen;
	*consumed = a + b + nlen + vlen;
	return 1;
}

size_t fk_pair_size(size_t name_len, size_t value_len)
{
	if (name_len > FK_PAIR_LEN_MAX || value_len > FK_PAIR_LEN_MAX)
		return 0;
	return (name_len < 128 ? 1 : 4) + (value_len < 128 ? 1 : 4) + name_len + value_len;
}

static uint8_t *pair_len_encode(uint8_t *out, size_t n)
{
	if (n < 128) {
		*out++ = (uint8_t)n;
	} else {
		*out++ = (uint8_t)(0x80 | (n >> 24));
		*out++ = (uint8_t)(n >> 16);
		*out++ = (uint8_t)(n >> 8);
		*out++ = (uint8_t)n;
	}
	return out;
}

size_t fk_pair_encode(uint8_t *out, const void *name, size_t name_len, const void *value,
                      size_t value_len)
{
	uint8_t *p = pair_len_encode(out, name_len);
	p = pair_len_encode(p, value_len);
	if (name_len)
		memcpy(p, name, name_len);
	p += name_len;
	if (value_len)
		memcpy(p, value, value_len);
	p += value_len;
	return (size_t)(p - out);
}

static size_t encode_fixed(uint8_t out[16], unsigned type, unsigned id, const uint8_t body[8])
{
	fk_header_encode(out, type, id, 8, 0);
	memcpy(out + FK_HEADER_LEN, body, 8);
	return 16;
}

size_t fk_encode_begin(uint8_t out[16], unsigned request_id, unsigned role, unsigned flags)
{
	const uint8_t body[8] = {(uint8_t)(role >> 8), (uint8_t)role, (uint8_t)flags};
	return encode_fixed(out, FK_BEGIN_REQUEST, request_id, body);
}

size_t fk_encode_end(uint8_t out[16], unsigned request_id, uint32_t app_status,
                     unsigned protocol_status)
{
	const uint8_t body[8] = {(uint8_t)(app_status >> 24), (uint8_t)(app_status >> 16),
	                         (uint8_t)(app_status >> 8), (uint8_t)app_status,
	                         (uint8_t)protocol_status};
	return encode_fixed(out, FK_END_REQUEST, request_id, body);
}

size_t fk_encode_abort(uint8_t out[8], unsigned request_id)
{
	fk_header_encode(out, FK_ABORT_REQUEST, request_id, 0, 0);
	return FK_HEADER_LEN;
}

size_t fk_encode_unknown_type(uint8_t out[16], unsigned type)
{
	const uint8_t body[8] = {(uint8_t)type};
	return encode_fixed(out, FK_UNKNOWN_TYPE, FK_NULL_REQUEST_ID, body);
}

size_t fk_stream_size(size_t len)
{
	size_t full = len / FK_MAX_CHUNK, rest = len % FK_MAX_CHUNK;
	return full * (FK_HEADER_LEN + FK_MAX_CHUNK) +
	       (rest ? FK_HEADER_LEN + rest + fk_padding_for(rest) : 0);
}

int fk_encode_stream(fk_buf *b, unsigned type, unsigned request_id, const void *data, size_t len)
{
	static const uint8_t zeros[8];
	size_t need = len ? fk_stream_size(len) : FK_HEADER_LEN;
	if (need < len || fk_buf_reserve(b, need))
		return FCGI_ENOMEM;
	uint8_t *o = b->data + b->len;
	if (!len) {
		fk_header_encode(o, type, request_id, 0, 0);
		b->len += FK_HEADER_LEN;
		return FCGI_OK;
	}
	const uint8_t *p = data;
	while (len) {
		size_t n = len < FK_MAX_CHUNK ? len : FK_MAX_CHUNK;
		unsigned pad = fk_padding_for(n);
		fk_header_encode(o, type, request_id, (unsigned)n, pad);
		memcpy(o + FK_HEADER_LEN, p, n);
		memcpy(o + FK_HEADER_LEN + n, zeros, pad);
		o += FK_HEADER_LEN + n + pad;
		p += n;
		len -= n;
	}
	b->len = (size_t)(o - b->data);
	return FCGI_OK;
}

/* ---------------------------------------------------------------- record layer */

enum { FK_RS_HEADER = 0, FK_RS_CONTENT, FK_RS_PADDING };

static int type_has_fixed_body(unsigned t)
{
	return t == FK_BEGIN_REQUEST || t == FK_END_REQUEST || t == FK_UNKNOWN_TYPE;
}

void fk_reader_init(fk_reader *r) { memset(r, 0, sizeof *r); }

int fk_reader_idle(const fk_reader *r) { return r->state == FK_RS_HEADER && r->hdr_have == 0; }

int fk_reader_feed(fk_reader *r, const uint8_t *in, size_t len, size_t *consumed,
                   fk_record_event *ev)
{
	size_t off = 0;
	for (;;) {
		switch (r->state) {
		case FK_RS_HEADER: {
			if (off == len) {
				*consumed = off;
				return 0;
			}
			size_t n = FK_HEADER_LEN - r->hdr_have;
			if (n > len - off)
				n = len - off;
			memcpy(r->hdr + r->hdr_have, in + off, n);
			r->hdr_have = (uint8_t)(r->hdr_have + n);
			off += n;
			if (r->hdr_have < FK_HEADER_LEN)
				break;
			r->hdr_have = 0;
			if (fk_header_decode(r->hdr, FK_HEADER_LEN, &r->h) < 0) {
				*consumed = off;
				return FCGI_EPROTO;
			}
			if (type_has_fixed_body(r->h.type) && r->h.content_len != 8) {
				*consumed = off;
				return FCGI_EPROTO;
			}
			r->content_left = r->h.content_len;
			r->padding_left = r->h.padding_len;
			r->body_have = 0;
			r->state = FK_RS_CONTENT;
			break;
		}
		case FK_RS_CONTENT: {
			if (!r->content_left) {
				r->state = FK_RS_PADDING;
				break;
			}
			if (off == len) {
				*consumed = off;
				return 0;
			}
			size_t n = len - off < r->content_left ? len - off : r->content_left;
			r->content_left -= (uint32_t)n;
			if (type_has_fixed_body(r->h.type)) {
				memcpy(r->body + r->body_have, in + off, n);
				r->body_have = (uint8_t)(r->body_have + n);
				off += n;
				break;
			}
			ev->kind = FK_REV_DATA;
			ev->h = r->h;
			ev->data = in + off;
			ev->len = n;
			*consumed = off + n;
			return 1;
		}
		case FK_RS_PADDING: {
			if (r->padding_left) {
				if (off == len) {
					*consumed = off;
					return 0;
				}
				size_t n = len - off < r->padding_left ? len - off : r->padding_left;
				r->padding_left -= (uint32_t)n;
				off += n;
				break;
			}
			r->state = FK_RS_HEADER;
			ev->kind = FK_REV_END;
			ev->h = r->h;
			if (type_has_fixed_body(r->h.type)) {
				ev->data = r->body;
				ev->len = 8;
			} else {
				ev->data = NULL;
				ev->len = 0;
			}
			*consumed = off;
			return 1;
		}
		}
	}
}

/* ---------------------------------------------------------------- params */

int fk_params_parse(const uint8_t *in, size_t len, uint32_t max_count, fk_params **out)
{
	size_t count = 0, bytes = 0, off = 0, c;
	fk_pair p;
	*out = NULL;
	while (off < len) {
		if (!fk_pair_decode(in + off, len - off, &p, &c))
			return FCGI_EPROTO;
		if (++count > max_count)
			return FCGI_ELIMIT;
		bytes += p.name_len + p.value_len + 2;
		off += c;
	}
	size_t head = sizeof(fk_params) + count * sizeof(struct fk_param);
	fk_params *ps = fk_malloc(head + bytes);
	if (!ps)
		return FCGI_ENOMEM;
	ps->count = count;
	ps->items = (struct fk_param *)(ps + 1);
	char *s = (char *)ps + head;
	off = 0;
	for (size_t i = 0; i < count; i++) {
		fk_pair_decode(in + off, len - off, &p, &c);
		off += c;
		struct fk_param *it = &ps->items[i];
		memcpy(s, p.name, p.name_len);
		s[p.name_len] = 0;
		it->name = s;
		it->name_len = (uint32_t)p.name_len;
		s += p.name_len + 1;
		memcpy(s, p.value, p.value_len);
		s[p.value_len] = 0;
		it->value = s;
		it->value_len = (uint32_t)p.value_len;
		s += p.value_len + 1;
	}
	*out = ps;
	return FCGI_OK;
}

void fk_params_free(fk_params *p) { fk_free(p); }

/* ---------------------------------------------------------------- application side */

/* Input streams of a request, as flag bits. */
enum {
	FK_Q_PARAMS_DONE = 1 << 0, /* empty PARAMS seen */
	FK_Q_STDIN_DONE = 1 << 1,  /* empty STDIN seen */
	FK_Q_DATA_DONE = 1 << 2,   /* empty DATA seen */
	FK_Q_STDERR_USED = 1 << 3, /* we sent STDERR bytes: close that stream too */
	FK_Q_ABORTED = 1 << 4,
};

struct fk_sreq {
	uint16_t id;
	uint16_t role;
	uint8_t keep_conn;
	uint8_t flags;
	fk_buf params;
	void *user;
};

void fk_srv_init(fk_srv *s, const fk_srv_limits *lim)
{
	memset(s, 0, sizeof *s);
	fk_reader_init(&s->rd);
	s->lim = *lim;
	if (!s->lim.max_reqs_per_conn)
		s->lim.max_reqs_per_conn = 1;
}

void fk_srv_free(fk_srv *s)
{
	for (uint32_t i = 0; i < s->nreqs; i++)
		fk_buf_free(&s->reqs[i].params);
	fk_free(s->reqs);
	fk_buf_free(&s->out);
	fk_buf_free(&s->mgmt);
	s->reqs = NULL;
	s->nreqs = s->capreqs = 0;
}

static fk_sreq *find_req(fk_srv *s, unsigned id)
{
	for (uint32_t i = 0; i < s->nreqs; i++)
		if (s->reqs[i].id == id)
			return &s->reqs[i];
	return NULL;
}

static void drop_req(fk_srv *s, fk_sreq *q)
{
	fk_buf_free(&q->params);
	*q = s->reqs[--s->nreqs];
}

static int append_end(fk_srv *s, unsigned id, uint32_t app_status, unsigned status)
{
	uint8_t rec[16];
	fk_encode_end(rec, id, app_status, status);
	return fk_buf_append(&s->out, rec, sizeof rec);
}

/* Refuses a request with END_REQUEST(status). Without KEEP_CONN the peer expects the
 * connection to close after our answer, as after any request. */
static int refuse(fk_srv *s, unsigned id, int keep_conn, unsigned status)
{
	if (!keep_conn)
		s->closing = 1;
	return append_end(s, id, 0, status) ? FCGI_ENOMEM : 0;
}

/* Refuses a request already announced with FK_SEV_BEGIN, and tells the caller. */
static int refuse_admitted(fk_srv *s, fk_sreq *q, fk_srv_event *ev)
{
	unsigned id = q->id, keep = q->keep_conn;
	ev->kind = FK_SEV_REFUSED;
	ev->user = q->user;
	drop_req(s, q);
	if (refuse(s, id, (int)keep, FCGI_STATUS_OVERLOADED))
		return FCGI_ENOMEM;
	return 1;
}

/* GET_VALUES: answer the names we know, with our limits, in the order asked, once each. */
static int answer_get_values(fk_srv *s)
{
	static const char *const names[] = {FK_NAME_MAX_CONNS, FK_NAME_MAX_REQS, FK_NAME_MPXS_CONNS};
	uint32_t vals[3] = {s->lim.advertise_max_conns, s->lim.advertise_max_reqs, s->lim.mpxs ? 1 : 0};
	uint8_t body[128];
	size_t blen = 0, off = 0, c;
	unsigned seen = 0;
	fk_pair p;
	const uint8_t *in = fk_buf_head(&s->mgmt);
	size_t len = fk_buf_size(&s->mgmt);
	while (off < len && fk_pair_decode(in + off, len - off, &p, &c)) {
		off += c;
		for (unsigned i = 0; i < 3; i++) {
			if (seen & (1u << i) || p.name_len != strlen(names[i]) ||
			    memcmp(p.name, names[i], p.name_len))
				continue;
			char v[16];
			int vl = snprintf(v, sizeof v, "%u", (unsigned)vals[i]);
			blen += fk_pair_encode(body + blen, names[i], p.name_len, v, (size_t)vl);
			seen |= 1u << i;
		}
	}
	fk_buf_reset(&s->mgmt);
	unsigned pad = fk_padding_for(blen);
	uint8_t hdr[FK_HEADER_LEN];
	static const uint8_t zeros[8];
	fk_header_encode(hdr, FK_GET_VALUES_RESULT, FK_NULL_REQUEST_ID, (unsigned)blen, pad);
	if (fk_buf_reserve(&s->out, FK_HEADER_LEN + blen + pad))
		return FCGI_ENOMEM;
	fk_buf_append(&s->out, hdr, sizeof hdr);
	fk_buf_append(&s->out, body, blen);
	fk_buf_append(&s->out, zeros, pad);
	return FCGI_OK;
}

/* A management record (request id 0) is complete. */
static int on_management(fk_srv *s, const fk_header *h)
{
	if (h->type == FK_GET_VALUES)
		return answer_get_values(s);
	uint8_t rec[16];
	fk_encode_unknown_type(rec, h->type);
	return fk_buf_append(&s->out, rec, sizeof rec);
}

static int on_begin(fk_srv *s, const fk_header *h, const uint8_t body[8], fk_srv_event *ev)
{
	unsigned id = h->request_id, role = (unsigned)body[0] << 8 | body[1];
	if (find_req(s, id))
		return FCGI_EPROTO; /* a second BEGIN for an id in flight */
	int keep = body[2] & FK_KEEP_CONN;
	if (role < FCGI_ROLE_RESPONDER || role > FCGI_ROLE_FILTER)
		return refuse(s, id, keep, FCGI_STATUS_UNKNOWN_ROLE);
	if (s->nreqs && !s->lim.mpxs)
		return refuse(s, id, keep, FCGI_STATUS_CANT_MPX_CONN);
	if (s->nreqs >= s->lim.max_reqs_per_conn)
		return refuse(s, id, keep, FCGI_STATUS_OVERLOADED);
	if (s->nreqs == s->capreqs) {
		uint32_t cap = s->capreqs ? s->capreqs * 2 : 2;
		if (cap > s->lim.max_reqs_per_conn)
			cap = s->lim.max_reqs_per_conn;
		fk_sreq *n = fk_realloc(s->reqs, cap * sizeof *n);
		if (!n)
			return FCGI_ENOMEM;
		s->reqs = n;
		s->capreqs = cap;
	}
	fk_sreq *q = &s->reqs[s->nreqs++];
	*q = (fk_sreq){.id = (uint16_t)id, .role = (uint16_t)role, .keep_conn = (uint8_t)keep};
	ev->kind = FK_SEV_BEGIN;
	ev->request_id = (uint16_t)id;
	ev->role = (uint16_t)role;
	ev->keep_conn = q->keep_conn;
	ev->user = NULL;
	return 1;
}

/* Handles one record-layer event; returns 1 when *ev was filled, 0 to go on, < 0 error. */
static int srv_step(fk_srv *s, const fk_record_event *re, fk_srv_event *ev)
{
	const fk_header *h = &re->h;
	if (h->request_id == FK_NULL_REQUEST_ID) {
		if (re->kind == FK_REV_DATA) {
			if (h->type != FK_GET_VALUES)
				return 0;
			return fk_buf_append(&s->mgmt, re->data, re->len) ? FCGI_ENOMEM : 0;
		}
		return on_management(s, h);
	}
	if (re->kind == FK_REV_END && h->type == FK_BEGIN_REQUEST)
		return on_begin(s, h, re->data, ev);

	fk_sreq *q = find_req(s, h->request_id);
	if (!q)
		return 0; /* records for requests not in flight are ignored (spec 3.3) */
	ev->request_id = q->id;
	ev->role = q->role;
	ev->keep_conn = q->keep_conn;
	ev->user = q->user;
	ev->params = NULL;

	switch (h->type) {
	case FK_ABORT_REQUEST:
		if (re->kind != FK_REV_END || (q->flags & FK_Q_ABORTED))
			return 0;
		q->flags |= FK_Q_ABORTED;
		ev->kind = FK_SEV_ABORT;
		return 1;
	case FK_PARAMS:
		if (q->flags & FK_Q_PARAMS_DONE)
			return FCGI_EPROTO;
		if (re->kind == FK_REV_DATA) {
			if (fk_buf_size(&q->params) + re->len > s->lim.max_params_bytes)
				return refuse_admitted(s, q, ev);
			return fk_buf_append(&q->params, re->data, re->len) ? FCGI_ENOMEM : 0;
		}
		if (h->content_len)
			return 0;
		q->flags |= FK_Q_PARAMS_DONE;
		{
			int rc = fk_params_parse(fk_buf_head(&q->params), fk_buf_size(&q->params),
			                         s->lim.max_params_count, &ev->params);
			fk_buf_free(&q->params);
			if (rc == FCGI_ELIMIT)
				return refuse_admitted(s, q, ev);
			if (rc)
				return rc;
		}
		ev->kind = FK_SEV_PARAMS;
		return 1;
	case FK_STDIN:
	case FK_DATA: {
		int is_stdin = h->type == FK_STDIN;
		unsigned done = is_stdin ? FK_Q_STDIN_DONE : FK_Q_DATA_DONE;
		if (!is_stdin && q->role != FCGI_ROLE_FILTER)
			return 0; /* only a Filter has a DATA stream: skipped */
		if (!(q->flags & FK_Q_PARAMS_DONE) || (q->flags & done))
			return FCGI_EPROTO;
		if (re->kind == FK_REV_DATA) {
			ev->kind = is_stdin ? FK_SEV_STDIN : FK_SEV_DATA;
			ev->data = re->data;
			ev->len = re->len;
			return 1;
		}
		if (h->content_len)
			return 0;
		q->flags |= done;
		ev->kind = is_stdin ? FK_SEV_STDIN_END : FK_SEV_DATA_END;
		ev->data = NULL;
		ev->len = 0;
		return 1;
	}
	default:
		return 0; /* types an application never receives: skipped */
	}
}

int fk_srv_feed(fk_srv *s, const uint8_t *in, size_t len, size_t *consumed, fk_srv_event *ev)
{
	size_t off = 0, c;
	fk_record_event re;
	if (s->failed) {
		*consumed = 0;
		return FCGI_EPROTO;
	}
	for (;;) {
		int rc = fk_reader_feed(&s->rd, in + off, len - off, &c, &re);
		off += c;
		if (rc <= 0) {
			*consumed = off;
			if (rc < 0)
				s->failed = 1;
			return rc;
		}
		rc = srv_step(s, &re, ev);
		if (rc) {
			*consumed = off;
			if (rc < 0)
				s->failed = 1;
			return rc;
		}
	}
}

void fk_srv_set_user(fk_srv *s, unsigned request_id, void *user)
{
	fk_sreq *q = find_req(s, request_id);
	if (q)
		q->user = user;
}

void *fk_srv_user_at(const fk_srv *s, uint32_t i) { return i < s->nreqs ? s->reqs[i].user : NULL; }

int fk_srv_refuse(fk_srv *s, unsigned request_id, unsigned protocol_status)
{
	fk_sreq *q = find_req(s, request_id);
	if (!q)
		return FCGI_ESTATE;
	int keep = q->keep_conn;
	drop_req(s, q);
	return refuse(s, request_id, keep, protocol_status);
}

int fk_srv_write(fk_srv *s, unsigned request_id, unsigned type, const void *data, size_t len)
{
	if (type != FK_STDOUT && type != FK_STDERR)
		return FCGI_EINVAL;
	fk_sreq *q = find_req(s, request_id);
	if (!q)
		return FCGI_ESTATE;
	if (!len)
		return FCGI_OK;
	if (type == FK_STDERR)
		q->flags |= FK_Q_STDERR_USED;
	return fk_encode_stream(&s->out, type, request_id, data, len);
}

int fk_srv_end(fk_srv *s, unsigned request_id, uint32_t app_status)
{
	fk_sreq *q = find_req(s, request_id);
	if (!q)
		return FCGI_ESTATE;
	uint8_t rec[3 * FK_HEADER_LEN + 8];
	size_t n = 0;
	fk_header_encode(rec, FK_STDOUT, request_id, 0, 0);
	n += FK_HEADER_LEN;
	if (q->flags & FK_Q_STDERR_USED) {
		fk_header_encode(rec + n, FK_STDERR, request_id, 0, 0);
		n += FK_HEADER_LEN;
	}
	fk_encode_end(rec + n, request_id, app_status, FCGI_STATUS_COMPLETE);
	n += 16;
	if (fk_buf_append(&s->out, rec, n))
		return FCGI_ENOMEM;
	if (!q->keep_conn)
		s->closing = 1;
	drop_req(s, q);
	return FCGI_OK;
}
