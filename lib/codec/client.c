/* client.c — the client side of the sans-I/O codec (see client.h for the contracts). */
#include <limits.h>
#include <string.h>

#include "codec/client.h"
#include "fcgikit.h"
#include "fcgikit/client.h"
#include "util/alloc.h"

static const uint8_t zeros[8];

/* ---------------------------------------------------------------- stream writer */

void fk_sw_init(fk_swriter *w, fk_buf *b, unsigned type, unsigned request_id)
{
	memset(w, 0, sizeof *w);
	w->b = b;
	w->type = (uint8_t)type;
	w->id = (uint16_t)request_id;
}

static int sw_open(fk_swriter *w)
{
	fk_buf *b = w->b;
	if (fk_buf_reserve(b, FK_HEADER_LEN))
		return FCGI_ENOMEM;
	w->hdr = b->len - b->off;
	memset(b->data + b->len, 0, FK_HEADER_LEN); /* the header is written when closing */
	b->len += FK_HEADER_LEN;
	w->clen = 0;
	w->open = 1;
	return FCGI_OK;
}

int fk_sw_close(fk_swriter *w)
{
	if (!w->open)
		return FCGI_OK;
	fk_buf *b = w->b;
	w->open = 0;
	if (!w->clen) {
		/* Nothing was written: an empty record here would end the stream. */
		b->len -= FK_HEADER_LEN;
		return FCGI_OK;
	}
	unsigned pad = fk_padding_for(w->clen);
	if (fk_buf_append(b, zeros, pad)) {
		/* Keep the wire valid: give the record up rather than leave it half-made. */
		b->len = b->off + w->hdr;
		return FCGI_ENOMEM;
	}
	fk_header_encode(b->data + b->off + w->hdr, w->type, w->id, w->clen, pad);
	return FCGI_OK;
}

/* Opens a record when none is open or the open one is full. */
static int sw_room(fk_swriter *w)
{
	if (w->open && w->clen < FK_MAX_CHUNK)
		return FCGI_OK;
	int rc = fk_sw_close(w);
	return rc ? rc : sw_open(w);
}

int fk_sw_write(fk_swriter *w, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len) {
		int rc = sw_room(w);
		if (rc)
			return rc;
		size_t n = FK_MAX_CHUNK - w->clen;
		if (n > len)
			n = len;
		if (fk_buf_append(w->b, p, n))
			return FCGI_ENOMEM;
		w->clen += (uint32_t)n;
		p += n;
		len -= n;
	}
	return FCGI_OK;
}

uint8_t *fk_sw_reserve(fk_swriter *w, size_t max, size_t *room)
{
	if (sw_room(w))
		return NULL;
	size_t n = FK_MAX_CHUNK - w->clen;
	if (n > max)
		n = max;
	if (fk_buf_reserve(w->b, n + 7)) /* + room for the padding when closing */
		return NULL;
	*room = n;
	return w->b->data + w->b->len;
}

void fk_sw_commit(fk_swriter *w, size_t n)
{
	w->b->len += n;
	w->clen += (uint32_t)n;
}

int fk_sw_pair(fk_swriter *w, const void *name, size_t name_len, const void *value,
               size_t value_len)
{
	uint8_t lens[8];
	if (!fk_pair_size(name_len, value_len))
		return FCGI_ETOOBIG;
	size_t o = 0;
	if (name_len < 128) {
		lens[o++] = (uint8_t)name_len;
	} else {
		lens[o++] = (uint8_t)(0x80 | (name_len >> 24));
		lens[o++] = (uint8_t)(name_len >> 16);
		lens[o++] = (uint8_t)(name_len >> 8);
		lens[o++] = (uint8_t)name_len;
	}
	if (value_len < 128) {
		lens[o++] = (uint8_t)value_len;
	} else {
		lens[o++] = (uint8_t)(0x80 | (value_len >> 24));
		lens[o++] = (uint8_t)(value_len >> 16);
		lens[o++] = (uint8_t)(value_len >> 8);
		lens[o++] = (uint8_t)value_len;
	}
	int rc = fk_sw_write(w, lens, o);
	if (!rc)
		rc = fk_sw_write(w, name, name_len);
	if (!rc)
		rc = fk_sw_write(w, value, value_len);
	return rc;
}

int fk_sw_end(fk_swriter *w)
{
	int rc = fk_sw_close(w);
	if (rc)
		return rc;
	if (fk_buf_reserve(w->b, FK_HEADER_LEN))
		return FCGI_ENOMEM;
	fk_header_encode(w->b->data + w->b->len, w->type, w->id, 0, 0);
	w->b->len += FK_HEADER_LEN;
	return FCGI_OK;
}

/* ---------------------------------------------------------------- request encoding */

int fk_req_begin(fk_buf *b, unsigned request_id, unsigned role, unsigned flags)
{
	uint8_t rec[16];
	fk_encode_begin(rec, request_id, role, flags);
	return fk_buf_append(b, rec, sizeof rec);
}

/* On failure, cut b back to the size it had (nothing was consumed meanwhile, so the
 * content's size identifies the point even if the buffer was compacted). */
static int rollback(fk_buf *b, size_t size, int rc)
{
	b->len = b->off + size;
	return rc;
}

int fk_req_params(fk_buf *b, unsigned request_id, const fk_pair *pairs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!fk_pair_size(pairs[i].name_len, pairs[i].value_len))
			return FCGI_ETOOBIG;
	size_t size = fk_buf_size(b);
	fk_swriter w;
	fk_sw_init(&w, b, FK_PARAMS, request_id);
	for (size_t i = 0; i < n; i++) {
		int rc = fk_sw_pair(&w, pairs[i].name, pairs[i].name_len, pairs[i].value,
		                    pairs[i].value_len);
		if (rc)
			return rollback(b, size, rc);
	}
	int rc = fk_sw_end(&w);
	return rc ? rollback(b, size, rc) : FCGI_OK;
}

int fk_req_encode(fk_buf *b, unsigned request_id, unsigned role, unsigned flags,
                  const fk_pair *pairs, size_t n, const void *body, size_t body_len,
                  const void *data, size_t data_len)
{
	size_t size = fk_buf_size(b);
	int rc = fk_req_begin(b, request_id, role, flags);
	if (!rc)
		rc = fk_req_params(b, request_id, pairs, n);
	if (!rc && body_len)
		rc = fk_encode_stream(b, FK_STDIN, request_id, body, body_len);
	if (!rc)
		rc = fk_encode_stream(b, FK_STDIN, request_id, NULL, 0);
	if (!rc && role == FCGI_ROLE_FILTER) {
		if (data_len)
			rc = fk_encode_stream(b, FK_DATA, request_id, data, data_len);
		if (!rc)
			rc = fk_encode_stream(b, FK_DATA, request_id, NULL, 0);
	}
	return rc ? rollback(b, size, rc) : FCGI_OK;
}

int fk_encode_get_values(fk_buf *b, const char *const *names, size_t n)
{
	size_t clen = 0;
	for (size_t i = 0; i < n; i++) {
		size_t ps = fk_pair_size(strlen(names[i]), 0);
		if (!ps || ps > FK_MAX_CONTENT - clen)
			return FCGI_ETOOBIG;
		clen += ps;
	}
	unsigned pad = fk_padding_for(clen);
	if (fk_buf_reserve(b, FK_HEADER_LEN + clen + pad))
		return FCGI_ENOMEM;
	uint8_t *o = b->data + b->len;
	fk_header_encode(o, FK_GET_VALUES, FK_NULL_REQUEST_ID, (unsigned)clen, pad);
	o += FK_HEADER_LEN;
	for (size_t i = 0; i < n; i++)
		o += fk_pair_encode(o, names[i], strlen(names[i]), "", 0);
	memset(o, 0, pad);
	b->len += FK_HEADER_LEN + clen + pad;
	return FCGI_OK;
}

/* ---------------------------------------------------------------- response session */

const char *fk_cev_name(fk_cev_kind k)
{
	switch (k) {
	case FK_CEV_STDOUT: return "STDOUT";
	case FK_CEV_STDERR: return "STDERR";
	case FK_CEV_STDOUT_END: return "STDOUT_END";
	case FK_CEV_STDERR_END: return "STDERR_END";
	case FK_CEV_END: return "END";
	case FK_CEV_VALUES: return "VALUES";
	case FK_CEV_UNKNOWN_TYPE: return "UNKNOWN_TYPE";
	}
	return "?";
}

const char *fk_cli_error_name(unsigned perr)
{
	switch (perr) {
	case FK_CPE_NONE: return "no error";
	case FK_CPE_VERSION: return "a record header with a version other than 1 (not FastCGI)";
	case FK_CPE_FIXED_LEN: return "a fixed-size record whose content is not 8 bytes";
	case FK_CPE_UNKNOWN_ID: return "a record for a request id that is not in flight";
	case FK_CPE_AFTER_END: return "stream content after the stream's end";
	case FK_CPE_WRONG_WAY: return "a record type that only clients send";
	case FK_CPE_BAD_VALUES: return "a GET_VALUES_RESULT with a truncated name-value pair";
	case FK_CPE_NOMEM: return "out of memory";
	}
	return "unknown protocol error";
}

/* Record states a client may receive; anything a client sends is refused. Kept as a table so
 * a reader sees the whole policy at once. */
enum { FK_RX_REFUSE = 0, FK_RX_STREAM, FK_RX_END, FK_RX_MGMT, FK_RX_SKIP };

static int rx_class(unsigned type)
{
	switch (type) {
	case FK_STDOUT:
	case FK_STDERR: return FK_RX_STREAM;
	case FK_END_REQUEST: return FK_RX_END;
	case FK_GET_VALUES_RESULT:
	case FK_UNKNOWN_TYPE: return FK_RX_MGMT;
	case FK_BEGIN_REQUEST:
	case FK_ABORT_REQUEST:
	case FK_PARAMS:
	case FK_STDIN:
	case FK_DATA:
	case FK_GET_VALUES: return FK_RX_REFUSE;
	default: return FK_RX_SKIP; /* 0 and types above 11: not ours to judge */
	}
}

void fk_cli_init(fk_cli *s)
{
	memset(s, 0, sizeof *s);
	fk_reader_init(&s->rd);
	s->cur = -1;
}

void fk_cli_free(fk_cli *s)
{
	fk_free(s->reqs);
	fk_buf_free(&s->mgmt);
	s->reqs = NULL;
	s->nreqs = s->capreqs = 0;
}

static int32_t find_creq(const fk_cli *s, unsigned id)
{
	for (uint32_t i = 0; i < s->nreqs; i++)
		if (s->reqs[i].id == id)
			return (int32_t)i;
	return -1;
}

int fk_cli_in_flight(const fk_cli *s, unsigned request_id) { return find_creq(s, request_id) >= 0; }

int fk_cli_begin(fk_cli *s, unsigned request_id)
{
	if (!request_id || request_id > 0xffff || find_creq(s, request_id) >= 0)
		return FCGI_EINVAL;
	if (s->nreqs == s->capreqs) {
		uint32_t cap = s->capreqs ? s->capreqs * 2 : 4;
		fk_creq *r = fk_realloc(s->reqs, cap * sizeof *r);
		if (!r)
			return FCGI_ENOMEM;
		s->reqs = r;
		s->capreqs = cap;
	}
	s->reqs[s->nreqs++] = (fk_creq){.id = (uint16_t)request_id};
	return FCGI_OK;
}

void fk_cli_cancel(fk_cli *s, unsigned request_id)
{
	int32_t i = find_creq(s, request_id);
	if (i < 0)
		return;
	s->reqs[i] = s->reqs[--s->nreqs];
	if (s->cur == i)
		s->cur = -1;
	else if (s->cur == (int32_t)s->nreqs)
		s->cur = i; /* the moved entry is still the current record's request */
}

static int perr(fk_cli *s, unsigned kind, const fk_header *h)
{
	s->perr = (uint8_t)kind;
	s->perr_type = h->type;
	s->perr_id = h->request_id;
	return kind == FK_CPE_NOMEM ? FCGI_ENOMEM : FCGI_EPROTO;
}

/* The first slice (or the end) of a record: check it is one we accept. */
static int check_record(fk_cli *s, const fk_header *h)
{
	switch (rx_class(h->type)) {
	case FK_RX_REFUSE: return perr(s, FK_CPE_WRONG_WAY, h);
	case FK_RX_STREAM: {
		int32_t i = find_creq(s, h->request_id);
		if (i < 0)
			return perr(s, FK_CPE_UNKNOWN_ID, h);
		unsigned done = h->type == FK_STDOUT ? FK_CQ_STDOUT_DONE : FK_CQ_STDERR_DONE;
		if (s->reqs[i].flags & done)
			return perr(s, FK_CPE_AFTER_END, h);
		s->cur = i;
		return 0;
	}
	case FK_RX_END:
		if ((s->cur = find_creq(s, h->request_id)) < 0)
			return perr(s, FK_CPE_UNKNOWN_ID, h);
		return 0;
	case FK_RX_MGMT:
		fk_buf_reset(&s->mgmt);
		return 0;
	}
	return 0;
}

static int on_end(fk_cli *s, const fk_record_event *rev, fk_cli_event *ev)
{
	const fk_header *h = &rev->h;
	ev->request_id = h->request_id;
	switch (h->type) {
	case FK_STDOUT:
	case FK_STDERR:
		if (h->content_len)
			return 0; /* an ordinary record ended; its content went out as slices */
		s->reqs[s->cur].flags |= h->type == FK_STDOUT ? FK_CQ_STDOUT_DONE : FK_CQ_STDERR_DONE;
		ev->kind = h->type == FK_STDOUT ? FK_CEV_STDOUT_END : FK_CEV_STDERR_END;
		return 1;
	case FK_END_REQUEST: {
		const uint8_t *b = rev->data;
		ev->kind = FK_CEV_END;
		ev->app_status = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
		ev->protocol_status = b[4];
		s->reqs[s->cur] = s->reqs[--s->nreqs];
		s->cur = -1;
		return 1;
	}
	case FK_UNKNOWN_TYPE:
		ev->kind = FK_CEV_UNKNOWN_TYPE;
		ev->unknown_type = rev->data[0];
		return 1;
	case FK_GET_VALUES_RESULT: {
		const uint8_t *p = fk_buf_head(&s->mgmt);
		size_t len = fk_buf_size(&s->mgmt), off = 0, c;
		fk_pair pair;
		while (off < len) {
			if (!fk_pair_decode(p + off, len - off, &pair, &c))
				return perr(s, FK_CPE_BAD_VALUES, h);
			off += c;
		}
		ev->kind = FK_CEV_VALUES;
		ev->data = p;
		ev->len = len;
		return 1;
	}
	}
	return 0;
}

int fk_cli_feed(fk_cli *s, const uint8_t *in, size_t len, size_t *consumed, fk_cli_event *ev)
{
	size_t off = 0;
	*consumed = 0;
	if (s->perr)
		return s->perr == FK_CPE_NOMEM ? FCGI_ENOMEM : FCGI_EPROTO;
	for (;;) {
		fk_record_event rev;
		size_t c;
		int rc = fk_reader_feed(&s->rd, in + off, len - off, &c, &rev);
		off += c;
		*consumed = off;
		if (rc == 0)
			return 0;
		if (rc < 0)
			return perr(s, s->rd.h.version != FK_VERSION_1 ? FK_CPE_VERSION : FK_CPE_FIXED_LEN,
			            &s->rd.h);
		memset(ev, 0, sizeof *ev);
		if (rev.kind == FK_REV_DATA) {
			if (!s->rec_started) {
				s->rec_started = 1;
				if ((rc = check_record(s, &rev.h)))
					return rc;
			}
			switch (rx_class(rev.h.type)) {
			case FK_RX_STREAM:
				ev->kind = rev.h.type == FK_STDOUT ? FK_CEV_STDOUT : FK_CEV_STDERR;
				ev->request_id = rev.h.request_id;
				ev->data = rev.data;
				ev->len = rev.len;
				return 1;
			case FK_RX_MGMT:
				if (rev.h.type == FK_GET_VALUES_RESULT &&
				    fk_buf_append(&s->mgmt, rev.data, rev.len))
					return perr(s, FK_CPE_NOMEM, &rev.h);
				break;
			}
			continue;
		}
		/* FK_REV_END */
		int started = s->rec_started;
		s->rec_started = 0;
		s->records++;
		if (!started && (rc = check_record(s, &rev.h)))
			return rc;
		if (rx_class(rev.h.type) == FK_RX_SKIP)
			continue;
		if ((rc = on_end(s, &rev, ev)))
			return rc;
	}
}

const char *fk_sniff_protocol(const uint8_t *in, size_t len)
{
	if (!len)
		return NULL;
	if (len >= 5 && !memcmp(in, "HTTP/", 5))
		return "HTTP";
	if (len >= 2 && in[0] == 0x16 && in[1] == 0x03)
		return "TLS";
	if (len >= 2 && in[0] == 0x15 && in[1] == 0x03)
		return "TLS (an alert)";
	if (len >= 4 && !memcmp(in, "SSH-", 4))
		return "SSH";
	if (len >= 4 && (!memcmp(in, "220 ", 4) || !memcmp(in, "220-", 4)))
		return "an SMTP or FTP greeting";
	if (len >= 4 && (!memcmp(in, "-ERR", 4) || !memcmp(in, "+OK", 3)))
		return "Redis or POP3";
	if (len >= 2 && in[0] == 0 && in[1] == 0 && len >= 5 && in[4] == 0x0a)
		return "MySQL";
	size_t text = 0, n = len < 64 ? len : 64;
	for (size_t i = 0; i < n; i++)
		text += (in[i] >= 0x20 && in[i] < 0x7f) || in[i] == '\r' || in[i] == '\n' || in[i] == '\t';
	return text == n ? "plain text" : NULL;
}

/* ---------------------------------------------------------------- CGI response head */

/* RFC 9110 token characters. */
static int is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field value bytes: tab, visible ASCII and space, obs-text. */
static int is_vchar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static int name_is(const char *n, size_t len, const char *want)
{
	size_t wl = strlen(want);
	if (len != wl)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char a = n[i], b = want[i];
		if (a >= 'A' && a <= 'Z')
			a = (char)(a - 'A' + 'a');
		if (b >= 'A' && b <= 'Z')
			b = (char)(b - 'A' + 'a');
		if (a != b)
			return 0;
	}
	return 1;
}

/* Checks the start of a line that has not ended yet, so bytes that can never be a head are
 * refused at once instead of after max_bytes. */
static int partial_line_ok(const char *p, size_t len)
{
	size_t i = 0;
	if (len && (p[0] == ' ' || p[0] == '\t'))
		return 0;
	while (i < len && p[i] != ':') {
		if (!is_tchar((unsigned char)p[i]))
			return p[i] == '\r' && i + 1 == len && i == 0; /* a lone CR of an empty line */
		i++;
	}
	for (i = i + 1; i < len; i++)
		if (!is_vchar((unsigned char)p[i]) && !(p[i] == '\r' && i + 1 == len))
			return 0;
	return 1;
}

static int parse_status(fcgi_cgi_head *head, const char *v, size_t vl)
{
	if (vl < 3)
		return FCGI_EPROTO;
	for (int i = 0; i < 3; i++)
		if (v[i] < '0' || v[i] > '9')
			return FCGI_EPROTO;
	int st = (v[0] - '0') * 100 + (v[1] - '0') * 10 + (v[2] - '0');
	if (st < 100)
		return FCGI_EPROTO;
	if (vl > 3 && v[3] != ' ' && v[3] != '\t')
		return FCGI_EPROTO;
	size_t r = 3;
	while (r < vl && (v[r] == ' ' || v[r] == '\t'))
		r++;
	head->status = st;
	head->reason = v + r;
	head->reason_len = vl - r;
	return FCGI_OK;
}

FCGI_EXPORT ssize_t fcgi_cgi_head_parse(const char *buf, size_t len, fcgi_cgi_head *head,
                                        fcgi_header *headers, size_t max_headers,
                                        size_t max_bytes)
{
	if (!head || (!buf && len))
		return FCGI_EINVAL;
	if (!max_bytes)
		max_bytes = 65536;
	if (max_bytes > (size_t)SSIZE_MAX)
		max_bytes = (size_t)SSIZE_MAX;
	memset(head, 0, sizeof *head);
	int have_status = 0;
	size_t lim = len < max_bytes ? len : max_bytes, off = 0;
	for (;;) {
		const char *line = buf + off;
		const char *nl = off < lim ? memchr(line, '\n', lim - off) : NULL;
		if (!nl) {
			if (!partial_line_ok(line, lim - off))
				return FCGI_EPROTO;
			return len >= max_bytes ? FCGI_ELIMIT : 0;
		}
		size_t eol = (size_t)(nl - buf), end = eol;
		if (end > off && buf[end - 1] == '\r')
			end--;
		if (end == off) {
			head->head_len = eol + 1;
			break;
		}
		if (line[0] == ' ' || line[0] == '\t')
			return FCGI_EPROTO; /* obsolete line folding */
		size_t n = 0, ll = end - off;
		while (n < ll && is_tchar((unsigned char)line[n]))
			n++;
		if (!n || n == ll || line[n] != ':')
			return FCGI_EPROTO;
		size_t vs = n + 1, ve = ll;
		while (vs < ve && (line[vs] == ' ' || line[vs] == '\t'))
			vs++;
		while (ve > vs && (line[ve - 1] == ' ' || line[ve - 1] == '\t'))
			ve--;
		for (size_t i = vs; i < ve; i++)
			if (!is_vchar((unsigned char)line[i]))
				return FCGI_EPROTO;
		const char *v = line + vs;
		size_t vl = ve - vs;
		if (name_is(line, n, "Status")) {
			if (have_status || parse_status(head, v, vl))
				return FCGI_EPROTO;
			have_status = 1;
		} else {
			if (head->nheaders >= max_headers)
				return FCGI_ELIMIT;
			headers[head->nheaders++] = (fcgi_header){line, n, v, vl};
			if (!head->location && name_is(line, n, "Location")) {
				head->location = v;
				head->location_len = vl;
			} else if (!head->content_type && name_is(line, n, "Content-Type")) {
				head->content_type = v;
				head->content_type_len = vl;
			}
		}
		off = eol + 1;
	}
	if (!have_status)
		head->status = head->location ? 302 : 200;
	return (ssize_t)head->head_len;
}
