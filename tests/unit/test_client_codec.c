/*
 * test_client_codec.c — the client side of the codec (lib/codec/client.h): request encoders
 * against golden bytes written out by hand from the FastCGI 1.0 layout, the response session
 * fk_cli fed whole, byte by byte and in odd pieces, its protocol errors, and the CGI
 * response head parser (fcgi_cgi_head_parse) case by case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/client.h"
#include "fcgikit.h"
#include "helpers/failalloc.h"
#include "util/buf.h"

/* ------------------------------------------------------------------ helpers */

/* An independent record writer (never the codec's). */
#include "helpers/wirebuf.h"

static void wb_rec(wb *w, unsigned version, unsigned type, unsigned id, const void *c,
                   size_t clen, unsigned pad)
{
	uint8_t h[8] = {(uint8_t)version, (uint8_t)type, (uint8_t)(id >> 8), (uint8_t)id,
	                (uint8_t)(clen >> 8), (uint8_t)clen, (uint8_t)pad, 0};
	wb_put(w, h, 8);
	wb_put(w, c, clen);
	static const uint8_t pads[255];
	wb_put(w, pads, pad);
}

static void wb_end(wb *w, unsigned id, uint32_t app, unsigned proto)
{
	uint8_t b[8] = {(uint8_t)(app >> 24), (uint8_t)(app >> 16), (uint8_t)(app >> 8),
	                (uint8_t)app, (uint8_t)proto, 0, 0, 0};
	wb_rec(w, 1, 3, id, b, 8, 0);
}


static void assert_bytes(const uint8_t *got, size_t got_len, const uint8_t *want,
                         size_t want_len)
{
	if (got_len != want_len || memcmp(got, want, want_len)) {
		fprintf(stderr, "# length got %zu want %zu\n", got_len, want_len);
		for (size_t i = 0; i < got_len || i < want_len; i++) {
			int g = i < got_len ? got[i] : -1, x = i < want_len ? want[i] : -1;
			if (g != x) {
				fprintf(stderr, "# first difference at %zu: got %d want %d\n", i, g, x);
				break;
			}
		}
		fail_msg("bytes differ");
	}
}

static fk_pair P(const char *n, const char *v)
{
	return (fk_pair){(const uint8_t *)n, strlen(n), (const uint8_t *)v, strlen(v)};
}

/* ------------------------------------------------------------------ request encoding */

static void test_begin_golden(void **st)
{
	(void)st;
	fk_buf b = {0};
	assert_int_equal(fk_req_begin(&b, 0x0102, FCGI_ROLE_RESPONDER, FK_KEEP_CONN), 0);
	const uint8_t want[16] = {1, 1, 1, 2, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0};
	assert_bytes(fk_buf_head(&b), fk_buf_size(&b), want, sizeof want);
	fk_buf_free(&b);
}

static void test_params_golden(void **st)
{
	(void)st;
	fk_buf b = {0};
	fk_pair ps[2] = {P("A", "bc"), P("REQUEST_METHOD", "GET")};
	assert_int_equal(fk_req_params(&b, 1, ps, 2), 0);
	/* content: 01 02 'A' 'b' 'c' | 0e 03 "REQUEST_METHOD" "GET" = 5 + 19 = 24 bytes, no pad */
	const uint8_t want[] = {1, 4, 0, 1, 0, 24, 0, 0,
	                        1, 2, 'A', 'b', 'c',
	                        14, 3, 'R', 'E', 'Q', 'U', 'E', 'S', 'T', '_', 'M', 'E', 'T', 'H',
	                        'O', 'D', 'G', 'E', 'T',
	                        1, 4, 0, 1, 0, 0, 0, 0};
	assert_bytes(fk_buf_head(&b), fk_buf_size(&b), want, sizeof want);
	fk_buf_free(&b);

	/* A 3-byte content gets 5 bytes of zero padding; no pairs at all: only the end record. */
	fk_pair one = P("X", "");
	assert_int_equal(fk_req_params(&b, 7, &one, 1), 0);
	const uint8_t want2[] = {1, 4, 0, 7, 0, 3, 5, 0, 1, 0, 'X', 0, 0, 0, 0, 0,
	                         1, 4, 0, 7, 0, 0, 0, 0};
	assert_bytes(fk_buf_head(&b), fk_buf_size(&b), want2, sizeof want2);
	fk_buf_reset(&b);
	assert_int_equal(fk_req_params(&b, 7, NULL, 0), 0);
	assert_bytes(fk_buf_head(&b), fk_buf_size(&b), want2 + 16, 8);
	fk_buf_free(&b);
}

static void test_params_long_lengths(void **st)
{
	(void)st;
	/* 4-byte lengths: a 128-byte name and a 300-byte value. */
	char name[129], value[301];
	memset(name, 'N', 128);
	name[128] = 0;
	memset(value, 'v', 300);
	value[300] = 0;
	fk_buf b = {0};
	fk_pair p = P(name, value);
	assert_int_equal(fk_req_params(&b, 1, &p, 1), 0);
	const uint8_t *d = fk_buf_head(&b);
	size_t clen = 8 + 128 + 300;
	assert_int_equal(d[4] << 8 | d[5], clen);
	assert_int_equal(d[6], (8 - clen % 8) % 8);
	const uint8_t lens[8] = {0x80, 0, 0, 128, 0x80, 0, 1, 44};
	assert_memory_equal(d + 8, lens, 8);
	fk_buf_free(&b);
}

/* Decodes a stream of records of one type into its content (an independent reader). */
static size_t unframe(const uint8_t *p, size_t len, unsigned type, unsigned id, uint8_t *out,
                      int *ended, size_t *records)
{
	size_t off = 0, o = 0;
	*ended = 0;
	*records = 0;
	while (off + 8 <= len) {
		assert_int_equal(p[off], 1);
		assert_int_equal(p[off + 1], type);
		assert_int_equal(p[off + 2] << 8 | p[off + 3], id);
		size_t cl = (size_t)(p[off + 4] << 8 | p[off + 5]), pad = p[off + 6];
		assert_true(cl % 8 == 0 || (cl + pad) % 8 == 0);
		(*records)++;
		if (!cl) {
			*ended = 1;
			off += 8 + pad;
			break;
		}
		memcpy(out + o, p + off + 8, cl);
		o += cl;
		off += 8 + cl + pad;
	}
	assert_int_equal(off, len);
	return o;
}

static void test_params_split_across_records(void **st)
{
	(void)st;
	/* 70000-byte value: the pair spans two records (65528 + rest), split mid-value. */
	size_t vl = 70000;
	char *v = malloc(vl + 1);
	for (size_t i = 0; i < vl; i++)
		v[i] = (char)('a' + i % 26);
	v[vl] = 0;
	fk_pair ps[2] = {P("BIG", v), P("after", "x")};
	fk_buf b = {0};
	assert_int_equal(fk_req_params(&b, 3, ps, 2), 0);
	uint8_t *content = malloc(vl + 100);
	int ended;
	size_t recs;
	size_t n = unframe(fk_buf_head(&b), fk_buf_size(&b), 4, 3, content, &ended, &recs);
	assert_true(ended);
	assert_int_equal(recs, 3);
	fk_pair p;
	size_t c;
	assert_int_equal(fk_pair_decode(content, n, &p, &c), 1);
	assert_int_equal(p.name_len, 3);
	assert_int_equal(p.value_len, vl);
	assert_memory_equal(p.value, v, vl);
	assert_int_equal(fk_pair_decode(content + c, n - c, &p, &c), 1);
	assert_int_equal(p.value_len, 1);
	/* The first record carries exactly FK_MAX_CHUNK bytes. */
	const uint8_t *d = fk_buf_head(&b);
	assert_int_equal(d[4] << 8 | d[5], FK_MAX_CHUNK);
	free(content);
	free(v);
	fk_buf_free(&b);
}

static void test_request_golden(void **st)
{
	(void)st;
	fk_buf b = {0};
	fk_pair p = P("Q", "1");
	assert_int_equal(fk_req_encode(&b, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN, &p, 1, "hi", 2,
	                               NULL, 0),
	                 0);
	const uint8_t want[] = {
	    1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, /* BEGIN responder keep */
	    1, 4, 0, 1, 0, 4, 4, 0, 1, 1, 'Q', '1', 0, 0, 0, 0, /* PARAMS */
	    1, 4, 0, 1, 0, 0, 0, 0,                         /* PARAMS end */
	    1, 5, 0, 1, 0, 2, 6, 0, 'h', 'i', 0, 0, 0, 0, 0, 0, /* STDIN */
	    1, 5, 0, 1, 0, 0, 0, 0,                         /* STDIN end */
	};
	assert_bytes(fk_buf_head(&b), fk_buf_size(&b), want, sizeof want);
	fk_buf_reset(&b);

	/* Filter: DATA follows STDIN, also when empty; Authorizer: the empty STDIN only. */
	assert_int_equal(fk_req_encode(&b, 2, FCGI_ROLE_FILTER, 0, NULL, 0, NULL, 0, "D", 1), 0);
	const uint8_t want_f[] = {
	    1, 1, 0, 2, 0, 8, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0,
	    1, 4, 0, 2, 0, 0, 0, 0,
	    1, 5, 0, 2, 0, 0, 0, 0,
	    1, 8, 0, 2, 0, 1, 7, 0, 'D', 0, 0, 0, 0, 0, 0, 0,
	    1, 8, 0, 2, 0, 0, 0, 0,
	};
	assert_bytes(fk_buf_head(&b), fk_buf_size(&b), want_f, sizeof want_f);
	fk_buf_reset(&b);
	assert_int_equal(fk_req_encode(&b, 2, FCGI_ROLE_AUTHORIZER, 0, NULL, 0, NULL, 0, NULL, 0), 0);
	assert_int_equal(fk_buf_size(&b), 16 + 8 + 8);
	fk_buf_free(&b);
}

static void test_get_values_golden(void **st)
{
	(void)st;
	fk_buf b = {0};
	const char *names[] = {"FCGI_MPXS_CONNS", "FCGI_MAX_REQS"};
	assert_int_equal(fk_encode_get_values(&b, names, 2), 0);
	/* 2+15 + 2+13 = 32 bytes of content, no padding */
	uint8_t want[8 + 32] = {1, 9, 0, 0, 0, 32, 0, 0, 15, 0};
	memcpy(want + 10, "FCGI_MPXS_CONNS", 15);
	want[25] = 13;
	want[26] = 0;
	memcpy(want + 27, "FCGI_MAX_REQS", 13);
	assert_bytes(fk_buf_head(&b), fk_buf_size(&b), want, sizeof want);
	fk_buf_free(&b);
}

static void test_swriter_packs_and_reserves(void **st)
{
	(void)st;
	fk_buf b = {0};
	fk_swriter w;
	fk_sw_init(&w, &b, FK_STDIN, 9);
	for (int i = 0; i < 10; i++)
		assert_int_equal(fk_sw_write(&w, "abc", 3), 0);
	size_t room;
	uint8_t *p = fk_sw_reserve(&w, 4, &room);
	assert_non_null(p);
	assert_int_equal(room, 4);
	memcpy(p, "WXYZ", 4);
	fk_sw_commit(&w, 4);
	/* Close with nothing new: no empty record in the middle. */
	assert_int_equal(fk_sw_close(&w), 0);
	assert_int_equal(fk_sw_close(&w), 0);
	assert_int_equal(fk_sw_end(&w), 0);
	uint8_t out[64];
	int ended;
	size_t recs;
	size_t n = unframe(fk_buf_head(&b), fk_buf_size(&b), 5, 9, out, &ended, &recs);
	assert_int_equal(n, 34);
	assert_int_equal(recs, 2); /* one record with all 34 bytes, then the end */
	assert_memory_equal(out + 30, "WXYZ", 4);
	assert_true(ended);

	/* Reserve at a record boundary opens the next record; the writer survives a consumer
	 * compacting nothing in between. */
	fk_buf_reset(&b);
	fk_sw_init(&w, &b, FK_STDIN, 1);
	uint8_t *big = calloc(1, FK_MAX_CHUNK);
	assert_int_equal(fk_sw_write(&w, big, FK_MAX_CHUNK), 0);
	p = fk_sw_reserve(&w, 100, &room);
	assert_non_null(p);
	assert_int_equal(room, 100);
	memset(p, 'z', 100);
	fk_sw_commit(&w, 100);
	assert_int_equal(fk_sw_end(&w), 0);
	uint8_t *all = malloc(FK_MAX_CHUNK + 200);
	n = unframe(fk_buf_head(&b), fk_buf_size(&b), 5, 1, all, &ended, &recs);
	assert_int_equal(n, FK_MAX_CHUNK + 100);
	assert_int_equal(recs, 3);
	assert_int_equal(all[FK_MAX_CHUNK + 99], 'z');
	free(all);
	free(big);
	fk_buf_free(&b);
}

static void test_params_too_big_and_failing_alloc(void **st)
{
	(void)st;
	fk_buf b = {0};
	fk_pair huge = {(const uint8_t *)"N", 1, (const uint8_t *)"", (size_t)FK_PAIR_LEN_MAX + 1};
	assert_int_equal(fk_buf_append(&b, "keep", 4), 0);
	assert_int_equal(fk_req_params(&b, 1, &huge, 1), FCGI_ETOOBIG);
	assert_int_equal(fk_buf_size(&b), 4);
	fk_buf_free(&b);

	/* Every allocation failing in turn: the buffer keeps its old content, never half a
	 * request. */
	fk_pair ps[3] = {P("A", "1"), P("B", "2"), P("C", "3")};
	char *v = malloc(100000);
	memset(v, 'q', 100000);
	ps[1].value = (const uint8_t *)v;
	ps[1].value_len = 100000;
	for (unsigned long k = 1; k < 50; k++) {
		fk_buf bb = {0};
		failalloc_install(0, 0);
		assert_int_equal(fk_buf_append(&bb, "prefix", 6), 0);
		failalloc_install(k, 1);
		int rc = fk_req_encode(&bb, 1, 1, 0, ps, 3, "body", 4, NULL, 0);
		unsigned long calls = failalloc_calls();
		failalloc_uninstall();
		if (rc == FCGI_OK) {
			fk_buf_free(&bb);
			assert_true(calls < k);
			break;
		}
		assert_int_equal(rc, FCGI_ENOMEM);
		assert_int_equal(fk_buf_size(&bb), 6);
		assert_memory_equal(fk_buf_head(&bb), "prefix", 6);
		fk_buf_free(&bb);
	}
	free(v);
}

/* ------------------------------------------------------------------ response session */

/* Everything the session said, flattened into text for comparison. */
typedef struct trace {
	char s[8192];
	size_t n;
	uint8_t out[1][70000]; /* STDOUT bytes per id 1 */
	size_t out_len;
	int err;
} trace;

static int trace_quiet; /* large outputs: record bytes, not text */

static void tr_add(trace *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(t->s + t->n, sizeof t->s - t->n, fmt, ap);
	va_end(ap);
	assert_true(k > 0 && (size_t)k < sizeof t->s - t->n);
	t->n += (size_t)k;
}

/* Feeds in pieces of `step` bytes (0: all at once); data slices of one stream are merged
 * so that different splits give the same trace. */
static void run_cli(fk_cli *s, const uint8_t *in, size_t len, size_t step, trace *t)
{
	memset(t, 0, sizeof *t);
	int last_kind = 0, last_id = -1;
	size_t off = 0;
	while (off < len) {
		size_t n = step && step < len - off ? step : len - off;
		size_t pos = 0;
		while (pos < n) {
			fk_cli_event ev;
			size_t c;
			int rc = fk_cli_feed(s, in + off + pos, n - pos, &c, &ev);
			pos += c;
			if (rc < 0) {
				t->err = rc;
				tr_add(t, "ERR(%d,%s)", s->perr, fcgi_err_name(rc));
				return;
			}
			if (rc == 0) {
				assert_int_equal(pos, n);
				break;
			}
			if (ev.kind == FK_CEV_STDOUT || ev.kind == FK_CEV_STDERR) {
				assert_true(ev.len > 0);
				if (!((int)ev.kind == last_kind && ev.request_id == last_id))
					tr_add(t, "%s#%u:", fk_cev_name(ev.kind), ev.request_id);
				if (!trace_quiet)
					tr_add(t, "%.*s", (int)(ev.len < 40 ? ev.len : 40), (const char *)ev.data);
				if (ev.kind == FK_CEV_STDOUT && ev.request_id == 1) {
					memcpy(t->out[0] + t->out_len, ev.data, ev.len);
					t->out_len += ev.len;
				}
				last_kind = ev.kind;
				last_id = ev.request_id;
				continue;
			}
			last_kind = 0;
			tr_add(t, "|%s#%u", fk_cev_name(ev.kind), ev.request_id);
			if (ev.kind == FK_CEV_END)
				tr_add(t, "(%u,%u)", ev.app_status, ev.protocol_status);
			if (ev.kind == FK_CEV_UNKNOWN_TYPE)
				tr_add(t, "(%u)", ev.unknown_type);
			if (ev.kind == FK_CEV_VALUES)
				tr_add(t, "(%zu bytes)", ev.len);
			tr_add(t, "|");
		}
		off += n;
	}
}

static void check_all_splits(const wb *w, const unsigned *ids, size_t nids, const char *want)
{
	static const size_t steps[] = {0, 1, 2, 3, 7, 8, 9, 100};
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		fk_cli s;
		fk_cli_init(&s);
		for (size_t k = 0; k < nids; k++)
			assert_int_equal(fk_cli_begin(&s, ids[k]), 0);
		static trace t;
		run_cli(&s, w->d, w->n, steps[i], &t);
		t.s[t.n] = 0;
		if (strcmp(t.s, want)) {
			fprintf(stderr, "# step %zu\n#  got  %s\n#  want %s\n", steps[i], t.s, want);
			fail();
		}
		fk_cli_free(&s);
	}
}

static void test_cli_simple_response(void **st)
{
	(void)st;
	wb w = {0};
	wb_rec(&w, 1, 6, 1, "Status: 200\r\n\r\nhel", 18, 6);
	wb_rec(&w, 1, 7, 1, "warn", 4, 0);
	wb_rec(&w, 1, 6, 1, "lo", 2, 255);
	wb_rec(&w, 1, 6, 1, NULL, 0, 0);
	wb_rec(&w, 1, 7, 1, NULL, 0, 3);
	wb_end(&w, 1, 7, 0);
	unsigned ids[] = {1};
	check_all_splits(&w, ids, 1,
	                 "STDOUT#1:Status: 200\r\n\r\nhelSTDERR#1:warnSTDOUT#1:lo|STDOUT_END#1|"
	                 "|STDERR_END#1||END#1(7,0)|");
	wb_free(&w);
}

static void test_cli_multiplexed_and_management(void **st)
{
	(void)st;
	wb w = {0};
	wb_rec(&w, 1, 6, 2, "b1", 2, 0);
	wb_rec(&w, 1, 6, 1, "a1", 2, 0);
	/* a management answer between two requests' records */
	uint8_t vals[] = {15, 1, 'F', 'C', 'G', 'I', '_', 'M', 'P', 'X', 'S', '_', 'C', 'O', 'N',
	                  'N', 'S', '1'};
	wb_rec(&w, 1, 10, 0, vals, sizeof vals, 6);
	uint8_t ut[8] = {200};
	wb_rec(&w, 1, 11, 0, ut, 8, 0);
	/* a type from the future is skipped */
	wb_rec(&w, 1, 42, 1, "zzz", 3, 0);
	wb_rec(&w, 1, 6, 2, NULL, 0, 0);
	wb_end(&w, 2, 0, 1); /* CANT_MPX_CONN */
	wb_rec(&w, 1, 6, 1, "a2", 2, 0);
	wb_rec(&w, 1, 6, 1, NULL, 0, 0);
	wb_end(&w, 1, 0x01020304, 0);
	unsigned ids[] = {1, 2};
	check_all_splits(&w, ids, 2,
	                 "STDOUT#2:b1STDOUT#1:a1|VALUES#0(18 bytes)||UNKNOWN_TYPE#0(200)|"
	                 "|STDOUT_END#2||END#2(0,1)|STDOUT#1:a2|STDOUT_END#1||END#1(16909060,0)|");
	wb_free(&w);
}

static void test_cli_end_without_stdout(void **st)
{
	(void)st;
	/* Refusals carry only END_REQUEST: OVERLOADED and UNKNOWN_ROLE. */
	wb w = {0};
	wb_end(&w, 1, 0, 2);
	wb_end(&w, 3, 0, 3);
	unsigned ids[] = {1, 3};
	check_all_splits(&w, ids, 2, "|END#1(0,2)||END#3(0,3)|");
	wb_free(&w);
}

static void test_cli_large_stdout(void **st)
{
	(void)st;
	/* 65535-byte record with padding 1, fed in odd pieces; bytes arrive intact. */
	wb w = {0};
	uint8_t *big = malloc(65535);
	for (size_t i = 0; i < 65535; i++)
		big[i] = (uint8_t)(i * 7);
	wb_rec(&w, 1, 6, 1, big, 65535, 1);
	wb_rec(&w, 1, 6, 1, NULL, 0, 0);
	wb_end(&w, 1, 0, 0);
	static const size_t steps[] = {0, 1, 13, 4096};
	for (size_t i = 0; i < 4; i++) {
		fk_cli s;
		fk_cli_init(&s);
		assert_int_equal(fk_cli_begin(&s, 1), 0);
		static trace t;
		trace_quiet = 1;
		run_cli(&s, w.d, w.n, steps[i], &t);
		trace_quiet = 0;
		assert_int_equal(t.err, 0);
		assert_int_equal(t.out_len, 65535);
		assert_memory_equal(t.out[0], big, 65535);
		assert_false(fk_cli_in_flight(&s, 1));
		assert_true(fk_cli_idle(&s));
		fk_cli_free(&s);
	}
	free(big);
	wb_free(&w);
}

static void expect_perr(const wb *w, unsigned id, unsigned perr_kind, const char *prefix)
{
	fk_cli s;
	fk_cli_init(&s);
	if (id)
		assert_int_equal(fk_cli_begin(&s, id), 0);
	static trace t;
	run_cli(&s, w->d, w->n, 0, &t);
	t.s[t.n] = 0;
	assert_int_equal(t.err, FCGI_EPROTO);
	assert_int_equal(s.perr, perr_kind);
	if (strncmp(t.s, prefix, strlen(prefix))) {
		fprintf(stderr, "# got %s\n# want prefix %s\n", t.s, prefix);
		fail();
	}
	/* A failed session stays failed. */
	fk_cli_event ev;
	size_t c;
	assert_int_equal(fk_cli_feed(&s, (const uint8_t *)"x", 1, &c, &ev), FCGI_EPROTO);
	assert_int_equal(c, 0);
	fk_cli_free(&s);
}

static void test_cli_protocol_errors(void **st)
{
	(void)st;
	wb w = {0};
	/* An HTTP server's answer: the version byte is 'H'. */
	const char *http = "HTTP/1.1 400 Bad Request\r\n\r\n";
	wb_put(&w, http, strlen(http));
	expect_perr(&w, 1, FK_CPE_VERSION, "ERR");
	assert_string_equal(fk_sniff_protocol(w.d, w.n), "HTTP");
	wb_free(&w);

	wb_rec(&w, 1, 6, 9, "x", 1, 0); /* id 9 was never begun */
	expect_perr(&w, 1, FK_CPE_UNKNOWN_ID, "ERR");
	wb_free(&w);

	wb_rec(&w, 1, 6, 1, NULL, 0, 0);
	wb_rec(&w, 1, 6, 1, "late", 4, 0); /* STDOUT after its end */
	expect_perr(&w, 1, FK_CPE_AFTER_END, "|STDOUT_END#1|ERR");
	wb_free(&w);

	wb_rec(&w, 1, 6, 1, NULL, 0, 0);
	wb_rec(&w, 1, 6, 1, NULL, 0, 0); /* a second end */
	expect_perr(&w, 1, FK_CPE_AFTER_END, "|STDOUT_END#1|ERR");
	wb_free(&w);

	wb_end(&w, 1, 0, 0);
	wb_rec(&w, 1, 6, 1, "x", 1, 0); /* after END_REQUEST the id is free */
	expect_perr(&w, 1, FK_CPE_UNKNOWN_ID, "|END#1(0,0)|ERR");
	wb_free(&w);

	wb_rec(&w, 1, 4, 1, "\0\0", 2, 0); /* PARAMS from an application */
	expect_perr(&w, 1, FK_CPE_WRONG_WAY, "ERR");
	wb_free(&w);

	wb_rec(&w, 1, 3, 1, "12345", 5, 0); /* END_REQUEST of 5 bytes */
	expect_perr(&w, 1, FK_CPE_FIXED_LEN, "ERR");
	wb_free(&w);

	uint8_t bad[] = {5, 0, 'A', 'B'}; /* name length 5, only 2 bytes */
	wb_rec(&w, 1, 10, 0, bad, sizeof bad, 4);
	expect_perr(&w, 0, FK_CPE_BAD_VALUES, "ERR");
	wb_free(&w);

	wb_rec(&w, 2, 6, 1, "x", 1, 0); /* version 2 */
	expect_perr(&w, 1, FK_CPE_VERSION, "ERR");
	wb_free(&w);

	for (unsigned k = FK_CPE_NONE; k <= FK_CPE_NOMEM; k++)
		assert_non_null(fk_cli_error_name(k));
}

static void test_cli_begin_rules(void **st)
{
	(void)st;
	fk_cli s;
	fk_cli_init(&s);
	assert_int_equal(fk_cli_begin(&s, 0), FCGI_EINVAL);
	assert_int_equal(fk_cli_begin(&s, 70000), FCGI_EINVAL);
	for (unsigned i = 1; i <= 100; i++)
		assert_int_equal(fk_cli_begin(&s, i), 0);
	assert_int_equal(fk_cli_begin(&s, 50), FCGI_EINVAL);
	assert_int_equal(fk_cli_inflight(&s), 100);
	fk_cli_free(&s);
}

static void test_sniff(void **st)
{
	(void)st;
	const uint8_t tls[] = {0x16, 0x03, 0x01, 0x00};
	assert_string_equal(fk_sniff_protocol(tls, 4), "TLS");
	assert_string_equal(fk_sniff_protocol((const uint8_t *)"SSH-2.0-OpenSSH", 15), "SSH");
	assert_string_equal(fk_sniff_protocol((const uint8_t *)"hello there\n", 12), "plain text");
	const uint8_t fcgi[] = {1, 6, 0, 1, 0, 0, 0, 0};
	assert_null(fk_sniff_protocol(fcgi, 8));
	assert_null(fk_sniff_protocol(NULL, 0));
}

/* ------------------------------------------------------------------ CGI head */

typedef struct head_case {
	const char *name;
	const char *in;
	ssize_t rc;        /* expected: > 0 means "the head length is strlen(in) - body_len" */
	size_t body_len;   /* bytes after the head in `in` */
	int status;
	size_t nheaders;
	const char *reason;
	const char *ctype;
	const char *location;
} head_case;

static const head_case head_cases[] = {
    {"crlf", "Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\nbody", 1, 4, 404, 1,
     "Not Found", "text/html", NULL},
    {"lf only", "Content-Type: text/plain\nX-A: 1\n\nB", 1, 1, 200, 2, NULL, "text/plain",
     NULL},
    {"mixed endings", "A: 1\r\nB: 2\n\r\n", 1, 0, 200, 2, NULL, NULL, NULL},
    {"empty head", "\r\nbody", 1, 4, 200, 0, NULL, NULL, NULL},
    {"empty head lf", "\nbody", 1, 4, 200, 0, NULL, NULL, NULL},
    {"location implies 302", "Location: http://x/\r\n\r\n", 1, 0, 302, 1, NULL, NULL,
     "http://x/"},
    {"local location also 302", "Location: /other\r\n\r\n", 1, 0, 302, 1, NULL, NULL,
     "/other"},
    {"status wins over location", "Status: 301\r\nLocation: /x\r\n\r\n", 1, 0, 301, 1, "",
     NULL, "/x"},
    {"status no reason", "Status: 503\r\n\r\n", 1, 0, 503, 0, "", NULL, NULL},
    {"case-insensitive names", "status: 201 Created\r\ncontent-type: a/b\r\n\r\n", 1, 0, 201,
     1, "Created", "a/b", NULL},
    {"value blanks trimmed", "X-Y:   v w \t\r\n\r\n", 1, 0, 200, 1, NULL, NULL, NULL},
    {"empty value", "X-Empty:\r\n\r\n", 1, 0, 200, 1, NULL, NULL, NULL},
    {"obs-text value", "X: caf\xc3\xa9\r\n\r\n", 1, 0, 200, 1, NULL, NULL, NULL},
    {"need more: nothing", "", 0, 0, 0, 0, NULL, NULL, NULL},
    {"need more: partial line", "Content-Ty", 0, 0, 0, 0, NULL, NULL, NULL},
    {"need more: no blank line", "A: 1\r\nB: 2\r\n", 0, 0, 0, 0, NULL, NULL, NULL},
    {"need more: cr of blank line", "A: 1\r\n\r", 0, 0, 0, 0, NULL, NULL, NULL},
    {"no colon", "hello world\n\n", FCGI_EPROTO, 0, 0, 0, NULL, NULL, NULL},
    {"binary at once", "\x01\x06\x00\x01", FCGI_EPROTO, 0, 0, 0, NULL, NULL, NULL},
    {"html at once", "<html>", FCGI_EPROTO, 0, 0, 0, NULL, NULL, NULL},
    {"space before colon", "Name : v\r\n\r\n", FCGI_EPROTO, 0, 0, 0, NULL, NULL, NULL},
    {"folded line", "A: 1\r\n  more\r\n\r\n", FCGI_EPROTO, 0, 0, 0, NULL, NULL, NULL},
    {"empty name", ": v\r\n\r\n", FCGI_EPROTO, 0, 0, 0, NULL, NULL, NULL},
    {"bare CR in value", "A: x\ry\r\n\r\n", FCGI_EPROTO, 0, 0, 0, NULL, NULL, NULL},
    {"NUL in value", "A: x\0y\r\n\r\n", FCGI_EPROTO, 0, 0, 0, NULL, NULL, NULL},
    {"bad status", "Status: abc\r\n\r\n", FCGI_EPROTO, 0, 0, 0, NULL, NULL, NULL},
    {"short status", "Status: 20\r\n\r\n", FCGI_EPROTO, 0, 0, 0, NULL, NULL, NULL},
    {"status 099", "Status: 099\r\n\r\n", FCGI_EPROTO, 0, 0, 0, NULL, NULL, NULL},
    {"status glued", "Status: 200OK\r\n\r\n", FCGI_EPROTO, 0, 0, 0, NULL, NULL, NULL},
    {"two statuses", "Status: 200\r\nStatus: 500\r\n\r\n", FCGI_EPROTO, 0, 0, 0, NULL, NULL,
     NULL},
    {"NPH status line", "HTTP/1.1 200 OK\r\n\r\n", FCGI_EPROTO, 0, 0, 0, NULL, NULL, NULL},
};

static void test_head_cases(void **st)
{
	(void)st;
	for (size_t i = 0; i < sizeof head_cases / sizeof head_cases[0]; i++) {
		const head_case *c = &head_cases[i];
		/* "NUL in value" holds a NUL: its length is the literal's, known per case. */
		size_t len = strlen(c->in);
		if (!strcmp(c->name, "NUL in value"))
			len = 12;
		fcgi_header hs[8];
		fcgi_cgi_head h;
		ssize_t rc = fcgi_cgi_head_parse(c->in, len, &h, hs, 8, 0);
		ssize_t want = c->rc > 0 ? (ssize_t)(len - c->body_len) : c->rc;
		if (rc != want) {
			fprintf(stderr, "# case '%s': rc %zd want %zd\n", c->name, rc, want);
			fail();
		}
		if (rc <= 0)
			continue;
		assert_int_equal(h.head_len, (size_t)rc);
		assert_int_equal(h.status, c->status);
		assert_int_equal(h.nheaders, c->nheaders);
		if (c->reason) {
			assert_non_null(h.reason);
			assert_int_equal(h.reason_len, strlen(c->reason));
			assert_memory_equal(h.reason, c->reason, h.reason_len);
		} else {
			assert_null(h.reason);
		}
		if (c->ctype) {
			assert_int_equal(h.content_type_len, strlen(c->ctype));
			assert_memory_equal(h.content_type, c->ctype, h.content_type_len);
		} else {
			assert_null(h.content_type);
		}
		if (c->location) {
			assert_int_equal(h.location_len, strlen(c->location));
			assert_memory_equal(h.location, c->location, h.location_len);
		} else {
			assert_null(h.location);
		}
		/* Every prefix of a complete head is "need more", never an error. */
		for (size_t k = 0; k < (size_t)rc; k++) {
			fcgi_cgi_head h2;
			ssize_t r2 = fcgi_cgi_head_parse(c->in, k, &h2, hs, 8, 0);
			if (r2 != 0) {
				fprintf(stderr, "# case '%s': prefix %zu gives %zd\n", c->name, k, r2);
				fail();
			}
		}
	}
}

static void test_head_slices(void **st)
{
	(void)st;
	const char *in = "Status: 200 OK\r\nX-Request-Method: POST\r\nX-Query: a=1&b=2\r\nSet-Cookie: "
	                 "a=b\r\nSet-Cookie: c=d\r\n\r\n";
	fcgi_header hs[4];
	fcgi_cgi_head h;
	assert_int_equal(fcgi_cgi_head_parse(in, strlen(in), &h, hs, 4, 0), (ssize_t)strlen(in));
	assert_int_equal(h.nheaders, 4);
	assert_true(hs[0].name == in + 16); /* zero-copy: slices of the input */
	assert_int_equal(hs[0].name_len, 16);
	assert_memory_equal(hs[1].value, "a=1&b=2", 7);
	assert_int_equal(hs[1].value_len, 7);
	assert_memory_equal(hs[3].value, "c=d", 3);
	/* One slot less: too many headers. */
	assert_int_equal(fcgi_cgi_head_parse(in, strlen(in), &h, hs, 3, 0), FCGI_ELIMIT);
	assert_int_equal(fcgi_cgi_head_parse(NULL, 3, &h, hs, 3, 0), FCGI_EINVAL);
}

static void test_head_size_limit(void **st)
{
	(void)st;
	char buf[300];
	memset(buf, 'a', sizeof buf);
	memcpy(buf, "X: ", 3);
	fcgi_header hs[2];
	fcgi_cgi_head h;
	/* No end within max_bytes: need more until max_bytes are there, then ELIMIT. */
	assert_int_equal(fcgi_cgi_head_parse(buf, 99, &h, hs, 2, 100), 0);
	assert_int_equal(fcgi_cgi_head_parse(buf, 100, &h, hs, 2, 100), FCGI_ELIMIT);
	assert_int_equal(fcgi_cgi_head_parse(buf, 300, &h, hs, 2, 100), FCGI_ELIMIT);
	/* A head that ends exactly at max_bytes is fine. */
	memcpy(buf + 96, "\r\n\r\n", 4);
	assert_int_equal(fcgi_cgi_head_parse(buf, 300, &h, hs, 2, 100), 100);
	assert_int_equal(fcgi_cgi_head_parse(buf, 300, &h, hs, 2, 99), FCGI_ELIMIT);
}

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_begin_golden),
	    cmocka_unit_test(test_params_golden),
	    cmocka_unit_test(test_params_long_lengths),
	    cmocka_unit_test(test_params_split_across_records),
	    cmocka_unit_test(test_request_golden),
	    cmocka_unit_test(test_get_values_golden),
	    cmocka_unit_test(test_swriter_packs_and_reserves),
	    cmocka_unit_test(test_params_too_big_and_failing_alloc),
	    cmocka_unit_test(test_cli_simple_response),
	    cmocka_unit_test(test_cli_multiplexed_and_management),
	    cmocka_unit_test(test_cli_end_without_stdout),
	    cmocka_unit_test(test_cli_large_stdout),
	    cmocka_unit_test(test_cli_protocol_errors),
	    cmocka_unit_test(test_cli_begin_rules),
	    cmocka_unit_test(test_sniff),
	    cmocka_unit_test(test_head_cases),
	    cmocka_unit_test(test_head_slices),
	    cmocka_unit_test(test_head_size_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
