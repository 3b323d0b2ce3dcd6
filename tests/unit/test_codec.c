/*
 * test_codec.c — the sans-I/O codec (lib/codec/codec.h) checked against the FastCGI 1.0 wire
 * format, written from the header and the protocol, not from codec.c.
 *
 * Layers, as in the header:
 *  1. primitives: byte-exact golden vectors for headers, fixed-body records, name-value
 *     pairs (1- and 4-byte lengths, every split offset) and stream encoding;
 *  2. fk_reader: one stream fed whole, byte by byte and in odd-sized pieces gives the same
 *     events;
 *  3. fk_params_parse: limits, truncation, embedded NULs;
 *  4. fk_srv: the application side of one connection — requests, management records,
 *     refusals, aborts, responses, and the protocol errors that close the connection.
 *
 * Input streams are built here with a small independent wire writer (wb_*); output is read
 * back with an independent record parser (parse_out), so the codec never checks itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/codec.h"
#include "fcgikit.h"
#include "util/alloc.h"
#include "util/buf.h"

/* ------------------------------------------------------------------ wire writer */

#include "helpers/wirebuf.h"

static void wb_byte(wb *w, unsigned b)
{
	uint8_t c = (uint8_t)b;
	wb_put(w, &c, 1);
}


static void wb_hdr_v(wb *w, unsigned version, unsigned type, unsigned id, size_t clen,
                     unsigned pad)
{
	uint8_t h[8] = {(uint8_t)version,      (uint8_t)type,        (uint8_t)(id >> 8),
	                (uint8_t)id,           (uint8_t)(clen >> 8), (uint8_t)clen,
	                (uint8_t)pad,          0};
	wb_put(w, h, 8);
}

/* One record; padding bytes are 0xEE (their value carries no meaning and must be ignored). */
static void wb_rec(wb *w, unsigned type, unsigned id, const void *c, size_t clen, unsigned pad)
{
	assert_true(clen <= 65535 && pad <= 255);
	wb_hdr_v(w, 1, type, id, clen, pad);
	wb_put(w, c, clen);
	for (unsigned i = 0; i < pad; i++)
		wb_byte(w, 0xEE);
}

static void wb_begin(wb *w, unsigned id, unsigned role, unsigned flags)
{
	uint8_t body[8] = {(uint8_t)(role >> 8), (uint8_t)role, (uint8_t)flags, 0, 0, 0, 0, 0};
	wb_rec(w, FK_BEGIN_REQUEST, id, body, 8, 0);
}

/* A stream: records of at most chunk content bytes, each with pad padding, then the empty
 * record that ends the stream. */
static void wb_stream(wb *w, unsigned type, unsigned id, const void *c, size_t len, size_t chunk,
                      unsigned pad)
{
	const uint8_t *p = c;
	while (len > 0) {
		size_t k = len < chunk ? len : chunk;
		wb_rec(w, type, id, p, k, pad);
		p += k;
		len -= k;
	}
	wb_rec(w, type, id, NULL, 0, 0);
}

/* A name-value length: 1 byte below 128 (unless force4), else 4 bytes with the top bit. */
static void wb_len(wb *w, size_t l, int force4)
{
	if (l < 128 && !force4) {
		wb_byte(w, (unsigned)l);
	} else {
		wb_byte(w, (unsigned)((l >> 24) | 0x80));
		wb_byte(w, (unsigned)(l >> 16));
		wb_byte(w, (unsigned)(l >> 8));
		wb_byte(w, (unsigned)l);
	}
}

static void wb_pair(wb *w, const void *n, size_t nl, const void *v, size_t vl)
{
	wb_len(w, nl, 0);
	wb_len(w, vl, 0);
	wb_put(w, n, nl);
	wb_put(w, v, vl);
}

static void wb_pairz(wb *w, const char *n, const char *v) { wb_pair(w, n, strlen(n), v, strlen(v)); }

static uint8_t *filled(size_t n, uint8_t seed)
{
	uint8_t *p = malloc(n ? n : 1);
	assert_non_null(p);
	uint32_t x = 2463534242u ^ seed;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
	return p;
}

/* ------------------------------------------------------------------ record parser */

typedef struct orec {
	unsigned type, id, pad;
	size_t clen;
	const uint8_t *c;
} orec;

/* Splits p[0..n) into complete records; asserts that the bytes are exactly whole records. */
static size_t parse_out(const uint8_t *p, size_t n, orec *out, size_t max)
{
	size_t k = 0, off = 0;
	while (off < n) {
		assert_true(n - off >= 8);
		assert_int_equal(p[off], 1);
		assert_true(k < max);
		orec *r = &out[k++];
		r->type = p[off + 1];
		r->id = (unsigned)p[off + 2] << 8 | p[off + 3];
		r->clen = (size_t)p[off + 4] << 8 | p[off + 5];
		r->pad = p[off + 6];
		r->c = p + off + 8;
		off += 8;
		assert_true(n - off >= r->clen + r->pad);
		off += r->clen + r->pad;
	}
	return k;
}

/* Reads one pair from a GET_VALUES_RESULT body, independently of fk_pair_decode. */
static size_t read_len(const uint8_t *p, size_t n, size_t *off)
{
	assert_true(*off < n);
	if (p[*off] < 128)
		return p[(*off)++];
	assert_true(n - *off >= 4);
	size_t l = ((size_t)(p[*off] & 0x7f) << 24) | ((size_t)p[*off + 1] << 16) |
	           ((size_t)p[*off + 2] << 8) | p[*off + 3];
	*off += 4;
	return l;
}

/* ------------------------------------------------------------------ 1. primitives */

static void test_header_encode_golden(void **state)
{
	(void)state;
	uint8_t out[8];
	memset(out, 0xAA, sizeof out);
	fk_header_encode(out, FK_STDIN, 0x1234, 0xABCD, 7);
	static const uint8_t exp[8] = {0x01, 0x05, 0x12, 0x34, 0xAB, 0xCD, 0x07, 0x00};
	assert_memory_equal(out, exp, 8);

	memset(out, 0xAA, sizeof out);
	fk_header_encode(out, FK_GET_VALUES, 0, 0, 0);
	static const uint8_t exp0[8] = {0x01, 0x09, 0, 0, 0, 0, 0, 0};
	assert_memory_equal(out, exp0, 8);

	fk_header_encode(out, FK_STDOUT, 65535, 65535, 255);
	static const uint8_t expmax[8] = {0x01, 0x06, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00};
	assert_memory_equal(out, expmax, 8);

	/* Byte order: the high byte first, for id and length alike. */
	fk_header_encode(out, FK_PARAMS, 0x0100, 0x0001, 0);
	static const uint8_t expbe[8] = {0x01, 0x04, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00};
	assert_memory_equal(out, expbe, 8);
}

static void test_header_decode_golden(void **state)
{
	(void)state;
	static const uint8_t in[10] = {0x01, 0x05, 0x12, 0x34, 0xAB, 0xCD, 0x07, 0x00, 0x55, 0x66};
	fk_header h;
	for (size_t len = 0; len < 8; len++) {
		memset(&h, 0, sizeof h);
		assert_int_equal(fk_header_decode(in, len, &h), 0);
	}
	memset(&h, 0, sizeof h);
	assert_int_equal(fk_header_decode(in, 8, &h), FK_HEADER_LEN);
	assert_int_equal(h.version, 1);
	assert_int_equal(h.type, FK_STDIN);
	assert_int_equal(h.request_id, 0x1234);
	assert_int_equal(h.content_len, 0xABCD);
	assert_int_equal(h.padding_len, 7);
	/* Trailing bytes are not looked at. */
	assert_int_equal(fk_header_decode(in, sizeof in, &h), FK_HEADER_LEN);
	assert_int_equal(h.content_len, 0xABCD);

	static const uint8_t mx[8] = {0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
	assert_int_equal(fk_header_decode(mx, 8, &h), FK_HEADER_LEN);
	assert_int_equal(h.type, 0xFF);
	assert_int_equal(h.request_id, 0xFFFF);
	assert_int_equal(h.content_len, 0xFFFF);
	assert_int_equal(h.padding_len, 0xFF);

	/* Version must be 1. */
	uint8_t bad[8];
	memcpy(bad, in, 8);
	for (unsigned v = 0; v < 256; v++) {
		if (v == 1)
			continue;
		bad[0] = (uint8_t)v;
		assert_int_equal(fk_header_decode(bad, 8, &h), FCGI_EPROTO);
	}

	/* Round trip with the encoder. */
	uint8_t enc[8];
	fk_header_encode(enc, FK_BEGIN_REQUEST, 1, 8, 0);
	assert_int_equal(fk_header_decode(enc, 8, &h), 8);
	assert_int_equal(h.type, FK_BEGIN_REQUEST);
	assert_int_equal(h.request_id, 1);
	assert_int_equal(h.content_len, 8);
	assert_int_equal(h.padding_len, 0);
}

static void test_padding_for(void **state)
{
	(void)state;
	assert_int_equal(fk_padding_for(0), 0);
	assert_int_equal(fk_padding_for(1), 7);
	assert_int_equal(fk_padding_for(7), 1);
	assert_int_equal(fk_padding_for(8), 0);
	assert_int_equal(fk_padding_for(9), 7);
	assert_int_equal(fk_padding_for(65535), 1);
	assert_int_equal(fk_padding_for(FK_MAX_CHUNK), 0);
	for (size_t n = 0; n < 100; n++)
		assert_int_equal((n + fk_padding_for(n)) % 8, 0);
}

static void test_fixed_records_golden(void **state)
{
	(void)state;
	uint8_t out[16];

	memset(out, 0xAA, sizeof out);
	assert_int_equal(fk_encode_begin(out, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN), 16);
	static const uint8_t begin1[16] = {0x01, 0x01, 0x00, 0x01, 0x00, 0x08, 0x00, 0x00,
	                                   0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00};
	assert_memory_equal(out, begin1, 16);

	memset(out, 0xAA, sizeof out);
	assert_int_equal(fk_encode_begin(out, 0xBEEF, FCGI_ROLE_FILTER, 0), 16);
	static const uint8_t begin2[16] = {0x01, 0x01, 0xBE, 0xEF, 0x00, 0x08, 0x00, 0x00,
	                                   0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
	assert_memory_equal(out, begin2, 16);

	memset(out, 0xAA, sizeof out);
	assert_int_equal(fk_encode_end(out, 0x0102, 0xDEADBEEFu, FCGI_STATUS_OVERLOADED), 16);
	static const uint8_t end1[16] = {0x01, 0x03, 0x01, 0x02, 0x00, 0x08, 0x00, 0x00,
	                                 0xDE, 0xAD, 0xBE, 0xEF, 0x02, 0x00, 0x00, 0x00};
	assert_memory_equal(out, end1, 16);

	memset(out, 0xAA, sizeof out);
	assert_int_equal(fk_encode_end(out, 7, 0, FCGI_STATUS_COMPLETE), 16);
	static const uint8_t end0[16] = {0x01, 0x03, 0x00, 0x07, 0x00, 0x08, 0x00, 0x00,
	                                 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
	assert_memory_equal(out, end0, 16);

	memset(out, 0xAA, sizeof out);
	assert_int_equal(fk_encode_abort(out, 0xFFFF), 8);
	static const uint8_t abort1[8] = {0x01, 0x02, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00};
	assert_memory_equal(out, abort1, 8);
	assert_int_equal(out[8], 0xAA); /* an 8-byte record writes 8 bytes */

	memset(out, 0xAA, sizeof out);
	assert_int_equal(fk_encode_unknown_type(out, 42), 16);
	static const uint8_t unk[16] = {0x01, 0x0B, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00,
	                                0x2A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
	assert_memory_equal(out, unk, 16);
}

static void test_pair_size_and_encode_boundaries(void **state)
{
	(void)state;
	assert_int_equal(fk_pair_size(0, 0), 2);
	assert_int_equal(fk_pair_size(127, 127), 2 + 254);
	assert_int_equal(fk_pair_size(128, 0), 4 + 1 + 128);
	assert_int_equal(fk_pair_size(0, 128), 1 + 4 + 128);
	assert_int_equal(fk_pair_size(128, 128), 8 + 256);
	assert_int_equal(fk_pair_size(FK_PAIR_LEN_MAX, 0), (size_t)FK_PAIR_LEN_MAX + 5);
	assert_int_equal(fk_pair_size(FK_PAIR_LEN_MAX, FK_PAIR_LEN_MAX),
	                 2 * (size_t)FK_PAIR_LEN_MAX + 8);
	assert_int_equal(fk_pair_size((size_t)FK_PAIR_LEN_MAX + 1, 0), 0);
	assert_int_equal(fk_pair_size(0, (size_t)FK_PAIR_LEN_MAX + 1), 0);
	assert_int_equal(fk_pair_size(SIZE_MAX, 1), 0);
	assert_int_equal(fk_pair_size(1, SIZE_MAX), 0);

	uint8_t out[600];
	uint8_t name[300], value[300];
	memset(name, 'n', sizeof name);
	memset(value, 'v', sizeof value);

	/* 1-byte lengths. */
	memset(out, 0xAA, sizeof out);
	assert_int_equal(fk_pair_encode(out, "A", 1, "", 0), 3);
	static const uint8_t a[3] = {0x01, 0x00, 'A'};
	assert_memory_equal(out, a, 3);
	assert_int_equal(out[3], 0xAA);

	assert_int_equal(fk_pair_encode(out, "SCRIPT_NAME", 11, "/x", 2), 15);
	static const uint8_t sn[15] = {11, 2, 'S', 'C', 'R', 'I', 'P', 'T', '_', 'N', 'A', 'M', 'E',
	                               '/', 'x'};
	assert_memory_equal(out, sn, 15);

	/* 127: the largest 1-byte length. */
	assert_int_equal(fk_pair_encode(out, name, 127, value, 1), 2 + 127 + 1);
	assert_int_equal(out[0], 0x7F);
	assert_int_equal(out[1], 0x01);
	assert_memory_equal(out + 2, name, 127);
	assert_int_equal(out[129], 'v');

	/* 128: the smallest 4-byte length, top bit set. */
	assert_int_equal(fk_pair_encode(out, name, 128, value, 1), 4 + 1 + 128 + 1);
	static const uint8_t l128[5] = {0x80, 0x00, 0x00, 0x80, 0x01};
	assert_memory_equal(out, l128, 5);
	assert_memory_equal(out + 5, name, 128);

	assert_int_equal(fk_pair_encode(out, name, 1, value, 128), 1 + 4 + 1 + 128);
	static const uint8_t v128[5] = {0x01, 0x80, 0x00, 0x00, 0x80};
	assert_memory_equal(out, v128, 5);

	assert_int_equal(fk_pair_encode(out, name, 300, value, 255), 8 + 555);
	static const uint8_t both[8] = {0x80, 0x00, 0x01, 0x2C, 0x80, 0x00, 0x00, 0xFF};
	assert_memory_equal(out, both, 8);
	assert_memory_equal(out + 8, name, 300);
	assert_memory_equal(out + 308, value, 255);

	/* A length using three bytes of the four: 0x012345. */
	size_t big = 0x012345;
	uint8_t *bn = malloc(big + 16);
	assert_non_null(bn);
	memset(bn, 'x', big);
	uint8_t *bo = malloc(fk_pair_size(big, 2));
	assert_non_null(bo);
	assert_int_equal(fk_pair_encode(bo, bn, big, "ok", 2), fk_pair_size(big, 2));
	static const uint8_t lbig[5] = {0x80, 0x01, 0x23, 0x45, 0x02};
	assert_memory_equal(bo, lbig, 5);
	fk_pair p;
	size_t used = 0;
	assert_true(fk_pair_decode(bo, fk_pair_size(big, 2), &p, &used) > 0);
	assert_int_equal(used, fk_pair_size(big, 2));
	assert_int_equal(p.name_len, big);
	assert_int_equal(p.value_len, 2);
	assert_memory_equal(p.value, "ok", 2);
	free(bo);
	free(bn);
}

static void test_pair_decode_golden(void **state)
{
	(void)state;
	fk_pair p;
	size_t used;

	static const uint8_t one[] = {4, 3, 'N', 'A', 'M', 'E', 'v', 'a', 'l', 'X', 'Y', 'Z'};
	/* The return value is only "> 0": an int cannot count a pair of two 2^31-1 lengths, so
	 * *consumed is the authority (the header's "returns bytes consumed" is loose). */
	used = 99;
	assert_true(fk_pair_decode(one, sizeof one, &p, &used) > 0);
	assert_int_equal(used, 9);
	assert_ptr_equal(p.name, one + 2); /* zero-copy */
	assert_int_equal(p.name_len, 4);
	assert_ptr_equal(p.value, one + 6);
	assert_int_equal(p.value_len, 3);

	static const uint8_t empty[] = {0, 0};
	assert_true(fk_pair_decode(empty, 2, &p, &used) > 0);
	assert_int_equal(used, 2);
	assert_int_equal(p.name_len, 0);
	assert_int_equal(p.value_len, 0);

	assert_int_equal(fk_pair_decode(one, 0, &p, &used), 0);

	/* A 4-byte encoding of a small length is legal (the top bit selects the form). */
	static const uint8_t nc[] = {0x80, 0x00, 0x00, 0x02, 0x01, 'h', 'i', 'x'};
	assert_true(fk_pair_decode(nc, sizeof nc, &p, &used) > 0);
	assert_int_equal(used, 8);
	assert_int_equal(p.name_len, 2);
	assert_memory_equal(p.name, "hi", 2);
	assert_int_equal(p.value_len, 1);
	assert_int_equal(p.value[0], 'x');

	/* Embedded NUL bytes are content. */
	static const uint8_t nul[] = {2, 2, 'a', 0, 0, 'b'};
	assert_true(fk_pair_decode(nul, sizeof nul, &p, &used) > 0);
	assert_int_equal(used, 6);
	assert_memory_equal(p.name, "a\0", 2);
	assert_memory_equal(p.value, "\0b", 2);

	/* Maximal lengths with a short input: "need more", no overflow. */
	uint8_t mx[64];
	memset(mx, 0xFF, sizeof mx);
	assert_int_equal(fk_pair_decode(mx, sizeof mx, &p, &used), 0);
	static const uint8_t mx2[] = {0xFF, 0xFF, 0xFF, 0xFF, 0x00, 'a', 'b'};
	assert_int_equal(fk_pair_decode(mx2, sizeof mx2, &p, &used), 0);
	static const uint8_t mx3[] = {0x00, 0xFF, 0xFF, 0xFF, 0xFF, 'a', 'b'};
	assert_int_equal(fk_pair_decode(mx3, sizeof mx3, &p, &used), 0);
	static const uint8_t mx4[] = {0x7F, 0x7F, 'a', 'b'};
	assert_int_equal(fk_pair_decode(mx4, sizeof mx4, &p, &used), 0);
}

/* A pair cut at every offset — inside either length, the name or the value — is "need
 * more"; the whole pair decodes, with trailing bytes left alone. */
static void check_pair_splits(size_t nl, size_t vl)
{
	uint8_t *n = filled(nl, 1), *v = filled(vl, 2);
	wb w = {0};
	wb_pair(&w, n, nl, v, vl);
	size_t total = w.n;
	wb_pairz(&w, "NEXT", "pair");
	fk_pair p;
	for (size_t k = 0; k < total; k++) {
		size_t used = 12345;
		assert_int_equal(fk_pair_decode(w.d, k, &p, &used), 0);
	}
	for (size_t extra = 0; extra <= w.n - total; extra += w.n - total) {
		size_t used = 0;
		memset(&p, 0, sizeof p);
		assert_true(fk_pair_decode(w.d, total + extra, &p, &used) > 0);
		assert_int_equal(used, total);
		assert_int_equal(p.name_len, nl);
		assert_int_equal(p.value_len, vl);
		if (nl)
			assert_memory_equal(p.name, n, nl);
		if (vl)
			assert_memory_equal(p.value, v, vl);
	}
	/* The encoder agrees with our writer. */
	assert_int_equal(fk_pair_size(nl, vl), total);
	uint8_t *e = malloc(total);
	assert_non_null(e);
	assert_int_equal(fk_pair_encode(e, n, nl, v, vl), total);
	assert_memory_equal(e, w.d, total);
	free(e);
	wb_free(&w);
	free(n);
	free(v);
}

static void test_pair_split_every_offset(void **state)
{
	(void)state;
	check_pair_splits(1, 1);
	check_pair_splits(0, 0);
	check_pair_splits(127, 127);
	check_pair_splits(128, 3);
	check_pair_splits(3, 128);
	check_pair_splits(128, 128);
	check_pair_splits(200, 0);
	check_pair_splits(0, 300);
	check_pair_splits(1000, 70000);
}

static void test_encode_stream(void **state)
{
	(void)state;
	fk_buf b = {0};

	/* len 0: the end record only. */
	assert_int_equal(fk_encode_stream(&b, FK_STDOUT, 1, NULL, 0), FCGI_OK);
	static const uint8_t end[8] = {0x01, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00};
	assert_int_equal(fk_buf_size(&b), 8);
	assert_memory_equal(fk_buf_head(&b), end, 8);
	fk_buf_consume(&b, 8);
	assert_int_equal(fk_buf_size(&b), 0);

	/* 5 bytes: one record padded to 8. */
	assert_int_equal(fk_encode_stream(&b, FK_STDERR, 0x0203, "hello", 5), FCGI_OK);
	static const uint8_t h5[8] = {0x01, 0x07, 0x02, 0x03, 0x00, 0x05, 0x03, 0x00};
	assert_int_equal(fk_buf_size(&b), 16);
	assert_int_equal(fk_stream_size(5), 16);
	assert_memory_equal(fk_buf_head(&b), h5, 8);
	assert_memory_equal(fk_buf_head(&b) + 8, "hello", 5);
	fk_buf_reset(&b);

	/* Appends after what is there. */
	assert_int_equal(fk_buf_append(&b, "prefix", 6), FCGI_OK);
	assert_int_equal(fk_encode_stream(&b, FK_STDOUT, 9, "12345678", 8), FCGI_OK);
	assert_int_equal(fk_buf_size(&b), 6 + 16);
	assert_memory_equal(fk_buf_head(&b), "prefix", 6);
	static const uint8_t h8[8] = {0x01, 0x06, 0x00, 0x09, 0x00, 0x08, 0x00, 0x00};
	assert_memory_equal(fk_buf_head(&b) + 6, h8, 8);
	assert_memory_equal(fk_buf_head(&b) + 14, "12345678", 8);
	fk_buf_reset(&b);

	/* Chunking at FK_MAX_CHUNK, every record padded to 8, no end record for len > 0. */
	static const size_t lens[] = {1,     7,     8,     9,     100,   65527,  65528,
	                              65529, 65535, 65536, 131056, 131057, 200000};
	uint8_t *data = filled(200000, 7);
	orec recs[8];
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		size_t len = lens[i];
		fk_buf_reset(&b);
		assert_int_equal(fk_encode_stream(&b, FK_STDOUT, 0x4242, data, len), FCGI_OK);
		assert_int_equal(fk_buf_size(&b), fk_stream_size(len));
		size_t nr = parse_out(fk_buf_head(&b), fk_buf_size(&b), recs, 8);
		assert_int_equal(nr, (len + FK_MAX_CHUNK - 1) / FK_MAX_CHUNK);
		size_t off = 0;
		for (size_t r = 0; r < nr; r++) {
			assert_int_equal(recs[r].type, FK_STDOUT);
			assert_int_equal(recs[r].id, 0x4242);
			assert_true(recs[r].clen > 0 && recs[r].clen <= FK_MAX_CHUNK);
			assert_int_equal((recs[r].clen + recs[r].pad) % 8, 0);
			assert_true(recs[r].pad < 8);
			assert_memory_equal(recs[r].c, data + off, recs[r].clen);
			off += recs[r].clen;
		}
		assert_int_equal(off, len);
	}
	free(data);
	fk_buf_free(&b);
}

static void test_buf_basics(void **state)
{
	(void)state;
	fk_buf b = {0};
	assert_int_equal(fk_buf_size(&b), 0);
	assert_int_equal(fk_buf_append(&b, "abcdef", 6), FCGI_OK);
	fk_buf_consume(&b, 2);
	assert_int_equal(fk_buf_size(&b), 4);
	assert_memory_equal(fk_buf_head(&b), "cdef", 4);
	assert_int_equal(fk_buf_reserve(&b, 10000), FCGI_OK);
	assert_true(b.cap - b.len >= 10000);
	assert_memory_equal(fk_buf_head(&b), "cdef", 4); /* compaction keeps the content */
	fk_buf_consume(&b, 4);
	assert_int_equal(fk_buf_size(&b), 0);
	fk_buf_shrink(&b, 64);
	assert_int_equal(fk_buf_size(&b), 0);
	assert_int_equal(fk_buf_append(&b, "x", 1), FCGI_OK);
	assert_memory_equal(fk_buf_head(&b), "x", 1);
	fk_buf_free(&b);
}

static void test_errors_and_names(void **state)
{
	(void)state;
	for (int e = -30; e <= 5; e++) {
		assert_non_null(fcgi_strerror(e));
		assert_non_null(fcgi_err_name(e));
	}
	assert_string_equal(fcgi_err_name(FCGI_ENOMEM), "FCGI_ENOMEM");
	assert_string_equal(fcgi_err_name(FCGI_EPROTO), "FCGI_EPROTO");
	assert_string_equal(fcgi_strerror(FCGI_ENOMEM), "out of memory");
	for (unsigned t = 1; t <= FK_MAXTYPE; t++)
		assert_non_null(fk_type_name(t));
	assert_true(fk_type_is_management(0));
	assert_true(fk_type_is_management(FK_GET_VALUES));
	assert_true(fk_type_is_management(12));
	assert_false(fk_type_is_management(FK_STDIN));
}

/* ------------------------------------------------------------------ 2. fk_reader */

typedef struct rev {
	int kind;
	fk_header h;
	uint8_t *data; /* DATA: concatenated slices; fixed END: the body */
	size_t len;
} rev;

typedef struct revlist {
	rev *v;
	size_t n, cap;
} revlist;

static void revlist_free(revlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].data);
	free(l->v);
	memset(l, 0, sizeof *l);
}

static void revlist_add(revlist *l, const fk_record_event *ev)
{
	if (ev->kind == FK_REV_DATA && l->n > 0 && l->v[l->n - 1].kind == FK_REV_DATA) {
		rev *last = &l->v[l->n - 1];
		assert_int_equal(last->h.type, ev->h.type);
		assert_int_equal(last->h.request_id, ev->h.request_id);
		last->data = realloc(last->data, last->len + ev->len + 1);
		assert_non_null(last->data);
		memcpy(last->data + last->len, ev->data, ev->len);
		last->len += ev->len;
		return;
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = realloc(l->v, l->cap * sizeof *l->v);
		assert_non_null(l->v);
	}
	rev *r = &l->v[l->n++];
	memset(r, 0, sizeof *r);
	r->kind = ev->kind;
	r->h = ev->h;
	int fixed = ev->h.type == FK_BEGIN_REQUEST || ev->h.type == FK_END_REQUEST ||
	            ev->h.type == FK_UNKNOWN_TYPE;
	if (ev->kind == FK_REV_DATA || fixed) {
		r->data = malloc(ev->len + 1);
		assert_non_null(r->data);
		if (ev->len)
			memcpy(r->data, ev->data, ev->len);
		r->len = ev->len;
	}
}

/* Feeds in[0..len) as if it arrived step bytes at a time (0: all at once). Returns 0 or the
 * reader's error. */
static int reader_run(const uint8_t *in, size_t len, size_t step, revlist *out)
{
	fk_reader r;
	fk_reader_init(&r);
	assert_true(fk_reader_idle(&r));
	size_t off = 0, avail = step ? (len < step ? len : step) : len;
	int zero_used = 0;
	for (;;) {
		fk_record_event ev;
		memset(&ev, 0, sizeof ev);
		size_t used = (size_t)-1;
		int rc = fk_reader_feed(&r, in + off, avail - off, &used, &ev);
		assert_true(used <= avail - off);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			assert_int_equal(ev.h.version, 1);
			if (ev.kind == FK_REV_DATA) {
				/* Zero-copy: the slice lies in the bytes this call consumed. */
				assert_true(ev.len > 0);
				assert_true(ev.data >= in + off && ev.data + ev.len <= in + off + used);
			}
			revlist_add(out, &ev);
			off += used;
			zero_used = used ? 0 : zero_used + 1;
			assert_true(zero_used < 3); /* no endless stream of empty-handed events */
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(used, avail - off);
		off += used;
		if (avail == len)
			break;
		avail = step ? (len - avail < step ? len : avail + step) : len;
	}
	assert_true(fk_reader_idle(&r));
	return 0;
}

static int is_fixed(unsigned t)
{
	return t == FK_BEGIN_REQUEST || t == FK_END_REQUEST || t == FK_UNKNOWN_TYPE;
}

/* The event list a record should produce. */
static void expect_record(revlist *l, unsigned type, unsigned id, const uint8_t *c, size_t clen,
                          unsigned pad)
{
	fk_record_event ev;
	memset(&ev, 0, sizeof ev);
	ev.h.version = 1;
	ev.h.type = (uint8_t)type;
	ev.h.request_id = (uint16_t)id;
	ev.h.content_len = (uint16_t)clen;
	ev.h.padding_len = (uint8_t)pad;
	if (!is_fixed(type) && clen > 0) {
		ev.kind = FK_REV_DATA;
		ev.data = c;
		ev.len = clen;
		revlist_add(l, &ev);
	}
	ev.kind = FK_REV_END;
	ev.data = is_fixed(type) ? c : NULL;
	ev.len = is_fixed(type) ? clen : 0;
	revlist_add(l, &ev);
}

static void assert_revlists_equal(const revlist *a, const revlist *b)
{
	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++) {
		const rev *x = &a->v[i], *y = &b->v[i];
		assert_int_equal(x->kind, y->kind);
		assert_int_equal(x->h.version, y->h.version);
		assert_int_equal(x->h.type, y->h.type);
		assert_int_equal(x->h.request_id, y->h.request_id);
		assert_int_equal(x->h.content_len, y->h.content_len);
		assert_int_equal(x->h.padding_len, y->h.padding_len);
		if (x->kind == FK_REV_DATA || is_fixed(x->h.type)) {
			assert_int_equal(x->len, y->len);
			if (x->len)
				assert_memory_equal(x->data, y->data, x->len);
		}
	}
}

/* A stream with every kind of record: fixed bodies, streams with padding, empty records
 * with padding, management, unknown types, and a maximal record. */
static void build_mixed(wb *w, revlist *exp)
{
	uint8_t begin[8] = {0, 1, FK_KEEP_CONN, 0, 0, 0, 0, 0};
	uint8_t endb[8] = {0, 0, 0, 9, FCGI_STATUS_COMPLETE, 0, 0, 0};
	uint8_t unk[8] = {12, 0, 0, 0, 0, 0, 0, 0};
	uint8_t *big = filled(65535, 3), *body = filled(100, 4);
	wb gv = {0};
	wb_pairz(&gv, FK_NAME_MAX_CONNS, "");
	wb_pairz(&gv, FK_NAME_MPXS_CONNS, "");
	static const uint8_t params[13] = {4, 7, 'P', 'A', 'T', 'H', '/', 'a', '/', 'b', '/', 'c',
	                                   'd'};
	struct {
		unsigned type, id;
		const uint8_t *c;
		size_t clen;
		unsigned pad;
	} recs[] = {
		{FK_BEGIN_REQUEST, 1, begin, 8, 0},
		{FK_PARAMS, 1, params, 13, 3},
		{FK_PARAMS, 1, NULL, 0, 5},
		{FK_STDIN, 1, body, 100, 4},
		{FK_STDIN, 1, NULL, 0, 0},
		{FK_GET_VALUES, 0, gv.d, gv.n, 0},
		{12, 0, (const uint8_t *)"abc", 3, 5},
		{FK_END_REQUEST, 0x1234, endb, 8, 0},
		{FK_UNKNOWN_TYPE, 0, unk, 8, 8},
		{FK_ABORT_REQUEST, 0xFFFF, NULL, 0, 0},
		{0, 0, NULL, 0, 255},
		{FK_STDOUT, 2, big, 65535, 255},
		{FK_DATA, 3, (const uint8_t *)"z", 1, 0},
		{FK_BEGIN_REQUEST, 0x0100, begin, 8, 7},
	};
	for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++) {
		wb_rec(w, recs[i].type, recs[i].id, recs[i].c, recs[i].clen, recs[i].pad);
		expect_record(exp, recs[i].type, recs[i].id, recs[i].c, recs[i].clen, recs[i].pad);
	}
	wb_free(&gv);
	free(big);
	free(body);
}

static void test_reader_split_equivalence(void **state)
{
	(void)state;
	wb w = {0};
	revlist exp = {0};
	build_mixed(&w, &exp);
	static const size_t steps[] = {0, 1, 2, 3, 5, 7, 8, 9, 13, 4096, 65536};
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		revlist got = {0};
		assert_int_equal(reader_run(w.d, w.n, steps[i], &got), 0);
		assert_revlists_equal(&got, &exp);
		revlist_free(&got);
	}
	revlist_free(&exp);
	wb_free(&w);
}

static void test_reader_idle_and_partial(void **state)
{
	(void)state;
	fk_reader r;
	fk_reader_init(&r);
	fk_record_event ev;
	size_t used;
	static const uint8_t rec[] = {1, FK_STDIN, 0, 1, 0, 2, 3, 0, 'h', 'i', 0xEE, 0xEE, 0xEE};
	assert_true(fk_reader_idle(&r));
	/* Part of a header: consumed, no event, not idle. */
	assert_int_equal(fk_reader_feed(&r, rec, 5, &used, &ev), 0);
	assert_int_equal(used, 5);
	assert_false(fk_reader_idle(&r));
	/* Rest of the header and one content byte. */
	assert_int_equal(fk_reader_feed(&r, rec + 5, 4, &used, &ev), 1);
	assert_int_equal(ev.kind, FK_REV_DATA);
	assert_int_equal(ev.len, 1);
	assert_int_equal(ev.data[0], 'h');
	assert_int_equal(ev.h.type, FK_STDIN);
	assert_int_equal(ev.h.request_id, 1);
	assert_int_equal(used, 4);
	assert_false(fk_reader_idle(&r));
	size_t off = 9;
	int ended = 0, got_i = 0, zero_used = 0;
	while (off < sizeof rec || !ended) {
		assert_true(zero_used < 3);
		int rc = fk_reader_feed(&r, rec + off, off < sizeof rec ? 1 : 0, &used, &ev);
		assert_true(rc == 0 || rc == 1);
		if (rc == 0)
			assert_int_equal(used, off < sizeof rec ? 1 : 0);
		if (rc == 1 && ev.kind == FK_REV_END) {
			assert_true(got_i);
			ended = 1;
		} else if (rc == 1) {
			assert_int_equal(ev.len, 1);
			assert_int_equal(ev.data[0], 'i');
			got_i = 1;
		}
		zero_used = used ? 0 : zero_used + 1;
		off += used;
		if (off < sizeof rec)
			assert_false(fk_reader_idle(&r)); /* inside content or padding */
	}
	assert_true(ended);
	assert_true(fk_reader_idle(&r));
	/* Nothing to read: no event. */
	assert_int_equal(fk_reader_feed(&r, rec, 0, &used, &ev), 0);
	assert_int_equal(used, 0);
}

static void test_reader_bad_version(void **state)
{
	(void)state;
	for (unsigned v = 0; v < 256; v += 1) {
		if (v == 1)
			continue;
		wb w = {0};
		wb_begin(&w, 1, 1, 0);
		wb_rec(&w, FK_PARAMS, 1, "ab", 2, 6);
		wb_hdr_v(&w, v, FK_STDIN, 1, 0, 0);
		wb_rec(&w, FK_STDIN, 1, NULL, 0, 0);
		for (size_t step = 0; step <= 1; step++) {
			revlist got = {0};
			assert_int_equal(reader_run(w.d, w.n, step, &got), FCGI_EPROTO);
			/* Everything before the bad header was reported. */
			assert_int_equal(got.n, 3);
			assert_int_equal(got.v[2].kind, FK_REV_END);
			assert_int_equal(got.v[2].h.type, FK_PARAMS);
			revlist_free(&got);
		}
		wb_free(&w);
		if (v == 2)
			v = 253; /* 0, 2, 254, 255 are enough */
	}
	/* A bad first header. */
	static const uint8_t bad[8] = {0, FK_BEGIN_REQUEST, 0, 1, 0, 8, 0, 0};
	revlist got = {0};
	assert_int_equal(reader_run(bad, 8, 0, &got), FCGI_EPROTO);
	assert_int_equal(got.n, 0);
	revlist_free(&got);
}

/* ------------------------------------------------------------------ 3. fk_params_parse */

typedef struct tpair {
	const char *n;
	size_t nl;
	const char *v;
	size_t vl;
} tpair;

static void check_params(const fk_params *p, const tpair *exp, size_t n)
{
	assert_non_null(p);
	assert_int_equal(p->count, n);
	for (size_t i = 0; i < n; i++) {
		const struct fk_param *it = &p->items[i];
		assert_int_equal(it->name_len, exp[i].nl);
		assert_int_equal(it->value_len, exp[i].vl);
		assert_memory_equal(it->name, exp[i].n, exp[i].nl);
		assert_memory_equal(it->value, exp[i].v, exp[i].vl);
		assert_int_equal(it->name[it->name_len], '\0');
		assert_int_equal(it->value[it->value_len], '\0');
	}
}

static void test_params_parse(void **state)
{
	(void)state;
	char longn[130], longv[300];
	memset(longn, 'N', sizeof longn);
	memset(longv, 'V', sizeof longv);
	const tpair exp[] = {
		{"SCRIPT_NAME", 11, "/index", 6},
		{"EMPTY", 5, "", 0},
		{"N\0UL", 4, "v\0a\0", 4},
		{longn, sizeof longn, longv, sizeof longv},
		{"Q", 1, "a=1&b=2", 7},
	};
	const size_t n = sizeof exp / sizeof exp[0];
	wb w = {0};
	size_t bounds[8];
	for (size_t i = 0; i < n; i++) {
		bounds[i] = w.n;
		wb_pair(&w, exp[i].n, exp[i].nl, exp[i].v, exp[i].vl);
	}
	bounds[n] = w.n;

	fk_params *p = NULL;
	assert_int_equal(fk_params_parse(w.d, w.n, 64, &p), FCGI_OK);
	check_params(p, exp, n);
	/* Copies, not slices of the input. */
	for (size_t i = 0; i < n; i++) {
		const char *nm = p->items[i].name;
		assert_false((const uint8_t *)nm >= w.d && (const uint8_t *)nm < w.d + w.n);
	}
	fk_params_free(p);

	/* Count limit: exactly max_count pairs pass, one more is FCGI_ELIMIT. */
	p = NULL;
	assert_int_equal(fk_params_parse(w.d, w.n, (uint32_t)n, &p), FCGI_OK);
	check_params(p, exp, n);
	fk_params_free(p);
	p = NULL;
	assert_int_equal(fk_params_parse(w.d, w.n, (uint32_t)n - 1, &p), FCGI_ELIMIT);
	p = NULL;
	assert_int_equal(fk_params_parse(w.d, w.n, 1, &p), FCGI_ELIMIT);

	/* Every truncation: a pair boundary is a shorter valid body, anything else EPROTO. */
	for (size_t k = 0; k <= w.n; k++) {
		size_t whole = (size_t)-1;
		for (size_t i = 0; i <= n; i++)
			if (bounds[i] == k)
				whole = i;
		p = NULL;
		int rc = fk_params_parse(w.d, k, 64, &p);
		if (whole != (size_t)-1) {
			assert_int_equal(rc, FCGI_OK);
			assert_non_null(p);
			assert_int_equal(p->count, whole);
			if (whole)
				check_params(p, exp, whole);
			fk_params_free(p);
		} else {
			assert_int_equal(rc, FCGI_EPROTO);
		}
	}
	wb_free(&w);

	/* Empty body. */
	p = NULL;
	assert_int_equal(fk_params_parse((const uint8_t *)"", 0, 8, &p), FCGI_OK);
	assert_non_null(p);
	assert_int_equal(p->count, 0);
	fk_params_free(p);

	/* Huge lengths in a short body. */
	static const uint8_t huge[] = {0xFF, 0xFF, 0xFF, 0xFF, 0x01, 'A', 'B', 'C'};
	assert_int_equal(fk_params_parse(huge, sizeof huge, 8, &p), FCGI_EPROTO);
	static const uint8_t huge2[] = {0x01, 0xFF, 0xFF, 0xFF, 0xFF, 'A', 'B', 'C'};
	assert_int_equal(fk_params_parse(huge2, sizeof huge2, 8, &p), FCGI_EPROTO);
	static const uint8_t cut[] = {0x01, 0x80, 0x00};
	assert_int_equal(fk_params_parse(cut, sizeof cut, 8, &p), FCGI_EPROTO);

	/* Many small pairs, up to the limit. */
	wb many = {0};
	for (int i = 0; i < 512; i++) {
		char nm[16], val[16];
		int nl = snprintf(nm, sizeof nm, "N%d", i);
		int vl = snprintf(val, sizeof val, "%d", i * 7);
		wb_pair(&many, nm, (size_t)nl, val, (size_t)vl);
	}
	p = NULL;
	assert_int_equal(fk_params_parse(many.d, many.n, 512, &p), FCGI_OK);
	assert_int_equal(p->count, 512);
	assert_string_equal(p->items[511].name, "N511");
	assert_string_equal(p->items[511].value, "3577");
	fk_params_free(p);
	assert_int_equal(fk_params_parse(many.d, many.n, 511, &p), FCGI_ELIMIT);
	wb_free(&many);
	fk_params_free(NULL);
}

/* ------------------------------------------------------------------ 4. fk_srv */

typedef struct sev {
	int kind;
	unsigned id, role, keep;
	void *user;
	uint8_t *data;
	size_t len;
	fk_params *params;
} sev;

typedef struct sevlist {
	sev *v;
	size_t n, cap;
} sevlist;

static void sevlist_free(sevlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].data);
		fk_params_free(l->v[i].params);
	}
	free(l->v);
	memset(l, 0, sizeof *l);
}

static void sevlist_add(sevlist *l, const fk_srv_event *ev)
{
	int slice = ev->kind == FK_SEV_STDIN || ev->kind == FK_SEV_DATA;
	if (slice && l->n > 0 && l->v[l->n - 1].kind == (int)ev->kind &&
	    l->v[l->n - 1].id == ev->request_id) {
		sev *last = &l->v[l->n - 1];
		last->data = realloc(last->data, last->len + ev->len + 1);
		assert_non_null(last->data);
		memcpy(last->data + last->len, ev->data, ev->len);
		last->len += ev->len;
		return;
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->v = realloc(l->v, l->cap * sizeof *l->v);
		assert_non_null(l->v);
	}
	sev *e = &l->v[l->n++];
	memset(e, 0, sizeof *e);
	e->kind = (int)ev->kind;
	e->id = ev->request_id;
	e->role = ev->role;
	e->keep = ev->keep_conn;
	e->user = ev->user;
	e->params = ev->params;
	if (ev->kind == FK_SEV_PARAMS)
		assert_non_null(ev->params);
	if (slice) {
		assert_true(ev->len > 0);
		e->data = malloc(ev->len + 1);
		assert_non_null(e->data);
		memcpy(e->data, ev->data, ev->len);
		e->len = ev->len;
	}
}

/* Feeds in[0..len) to s as if it arrived step bytes at a time (0: all at once); events are
 * collected (body slices joined). Returns 0 or the first negative code. */
static int srv_run(fk_srv *s, const uint8_t *in, size_t len, size_t step, sevlist *out)
{
	size_t off = 0, avail = step ? (len < step ? len : step) : len;
	int zero_used = 0;
	for (;;) {
		fk_srv_event ev;
		memset(&ev, 0, sizeof ev);
		size_t used = (size_t)-1;
		int rc = fk_srv_feed(s, in + off, avail - off, &used, &ev);
		assert_true(used <= avail - off);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			if (ev.kind == FK_SEV_STDIN || ev.kind == FK_SEV_DATA)
				assert_true(ev.data >= in + off && ev.data + ev.len <= in + off + used);
			sevlist_add(out, &ev);
			off += used;
			zero_used = used ? 0 : zero_used + 1;
			assert_true(zero_used < 3);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(used, avail - off);
		off += used;
		if (avail == len)
			return 0;
		avail = step ? (len - avail < step ? len : avail + step) : len;
	}
}

static fk_srv_limits lim_default(void)
{
	fk_srv_limits l;
	memset(&l, 0, sizeof l);
	l.max_reqs_per_conn = 8;
	l.max_params_bytes = 4096;
	l.max_params_count = 64;
	l.advertise_max_conns = 100;
	l.advertise_max_reqs = 200;
	l.mpxs = 1;
	return l;
}

static void out_expect(fk_srv *s, const uint8_t *exp, size_t n)
{
	assert_int_equal(fk_buf_size(&s->out), n);
	if (n)
		assert_memory_equal(fk_buf_head(&s->out), exp, n);
	fk_buf_consume(&s->out, n);
}

static void out_expect_end(fk_srv *s, unsigned id, uint32_t app, unsigned status)
{
	uint8_t e[16];
	assert_int_equal(fk_encode_end(e, id, app, status), 16);
	/* Written out by hand too, so a wrong fk_encode_end cannot hide here. */
	const uint8_t hand[16] = {1, 3, (uint8_t)(id >> 8), (uint8_t)id, 0, 8, 0, 0,
	                          (uint8_t)(app >> 24), (uint8_t)(app >> 16), (uint8_t)(app >> 8),
	                          (uint8_t)app, (uint8_t)status, 0, 0, 0};
	assert_memory_equal(e, hand, 16);
	out_expect(s, hand, 16);
}

static void out_empty(fk_srv *s) { assert_int_equal(fk_buf_size(&s->out), 0); }

static void sev_is(const sevlist *l, size_t i, int kind, unsigned id)
{
	assert_true(i < l->n);
	assert_int_equal(l->v[i].kind, kind);
	assert_int_equal(l->v[i].id, id);
}

/* The PARAMS of the Responder scenario: ordinary CGI variables, an empty value, a 4-byte
 * value length, a 4-byte name length. */
static void responder_params(wb *pb, char *longv, size_t lvl, char *longn, size_t lnl,
                             size_t *split_in_len)
{
	wb_pairz(pb, "SCRIPT_NAME", "/index");
	wb_pairz(pb, "REQUEST_METHOD", "POST");
	wb_pairz(pb, "QUERY_STRING", "a=1");
	wb_pairz(pb, "CONTENT_LENGTH", "11");
	wb_pairz(pb, "EMPTY", "");
	memset(longv, 'v', lvl);
	memset(longn, 'n', lnl);
	/* HTTP_X_LONG: 1-byte name length, then a 4-byte value length we split in two. */
	wb_len(pb, 11, 0);
	*split_in_len = pb->n + 2;
	wb_len(pb, lvl, 0);
	wb_put(pb, "HTTP_X_LONG", 11);
	wb_put(pb, longv, lvl);
	wb_pair(pb, longn, lnl, "v", 1);
}

static void build_responder(wb *w, unsigned id, unsigned flags, wb *pb)
{
	char longv[200], longn[130];
	size_t cut;
	responder_params(pb, longv, sizeof longv, longn, sizeof longn, &cut);
	wb_begin(w, id, FCGI_ROLE_RESPONDER, flags);
	/* PARAMS in three records: cut after one byte, then inside the 4-byte length. */
	wb_rec(w, FK_PARAMS, id, pb->d, 1, 7);
	wb_rec(w, FK_PARAMS, id, pb->d + 1, cut - 1, 0);
	wb_rec(w, FK_PARAMS, id, pb->d + cut, pb->n - cut, 3);
	wb_rec(w, FK_PARAMS, id, NULL, 0, 0);
	wb_rec(w, FK_STDIN, id, "hello ", 6, 2);
	wb_rec(w, FK_STDIN, id, "world", 5, 3);
	wb_rec(w, FK_STDIN, id, NULL, 0, 0);
}

static void check_responder_params(const fk_params *p)
{
	assert_non_null(p);
	assert_int_equal(p->count, 7);
	assert_string_equal(p->items[0].name, "SCRIPT_NAME");
	assert_string_equal(p->items[0].value, "/index");
	assert_string_equal(p->items[1].value, "POST");
	assert_string_equal(p->items[2].value, "a=1");
	assert_string_equal(p->items[3].value, "11");
	assert_string_equal(p->items[4].name, "EMPTY");
	assert_int_equal(p->items[4].value_len, 0);
	assert_string_equal(p->items[4].value, "");
	assert_string_equal(p->items[5].name, "HTTP_X_LONG");
	assert_int_equal(p->items[5].value_len, 200);
	assert_int_equal(p->items[6].name_len, 130);
	assert_int_equal(p->items[6].name[0], 'n');
	assert_string_equal(p->items[6].value, "v");
}

static void test_srv_responder(void **state)
{
	(void)state;
	wb w = {0}, pb = {0};
	build_responder(&w, 1, FK_KEEP_CONN, &pb);
	static const size_t steps[] = {0, 1, 2, 3, 7, 8, 64};
	for (size_t si = 0; si < sizeof steps / sizeof steps[0]; si++) {
		fk_srv_limits lim = lim_default();
		fk_srv s;
		fk_srv_init(&s, &lim);
		sevlist ev = {0};
		assert_int_equal(srv_run(&s, w.d, w.n, steps[si], &ev), 0);
		assert_int_equal(ev.n, 4);
		sev_is(&ev, 0, FK_SEV_BEGIN, 1);
		assert_int_equal(ev.v[0].role, FCGI_ROLE_RESPONDER);
		assert_int_equal(ev.v[0].keep, 1);
		assert_null(ev.v[0].user);
		sev_is(&ev, 1, FK_SEV_PARAMS, 1);
		check_responder_params(ev.v[1].params);
		sev_is(&ev, 2, FK_SEV_STDIN, 1);
		assert_int_equal(ev.v[2].len, 11);
		assert_memory_equal(ev.v[2].data, "hello world", 11);
		sev_is(&ev, 3, FK_SEV_STDIN_END, 1);
		out_empty(&s);
		assert_int_equal(fk_srv_inflight(&s), 1);
		assert_int_equal(s.failed, 0);

		/* The response: one STDOUT record, then STDOUT's end and END_REQUEST exactly. */
		static const char resp[] = "Status: 200\r\n\r\nok";
		assert_int_equal(fk_srv_write(&s, 1, FK_STDOUT, resp, 17), FCGI_OK);
		orec r[4];
		assert_int_equal(parse_out(fk_buf_head(&s.out), fk_buf_size(&s.out), r, 4), 1);
		assert_int_equal(r[0].type, FK_STDOUT);
		assert_int_equal(r[0].id, 1);
		assert_int_equal(r[0].clen, 17);
		assert_memory_equal(r[0].c, resp, 17);
		fk_buf_consume(&s.out, fk_buf_size(&s.out));
		assert_int_equal(fk_srv_end(&s, 1, 0), FCGI_OK);
		static const uint8_t tail[24] = {1, 6, 0, 1, 0, 0, 0, 0, /* STDOUT end */
		                                 1, 3, 0, 1, 0, 8, 0, 0, /* END_REQUEST */
		                                 0, 0, 0, 0, 0, 0, 0, 0};
		out_expect(&s, tail, 24);
		assert_int_equal(fk_srv_inflight(&s), 0);
		assert_int_equal(s.closing, 0); /* KEEP_CONN */
		sevlist_free(&ev);
		fk_srv_free(&s);
	}
	wb_free(&w);
	wb_free(&pb);
}

static void test_srv_no_keep_conn_closes(void **state)
{
	(void)state;
	wb w = {0};
	wb_begin(&w, 0x0203, FCGI_ROLE_RESPONDER, 0);
	wb_rec(&w, FK_PARAMS, 0x0203, NULL, 0, 0);
	wb_rec(&w, FK_STDIN, 0x0203, NULL, 0, 0);
	fk_srv_limits lim = lim_default();
	fk_srv s;
	fk_srv_init(&s, &lim);
	sevlist ev = {0};
	assert_int_equal(srv_run(&s, w.d, w.n, 0, &ev), 0);
	/* Empty PARAMS: a PARAMS event with no pairs; empty STDIN: only its end. */
	assert_int_equal(ev.n, 3);
	sev_is(&ev, 0, FK_SEV_BEGIN, 0x0203);
	assert_int_equal(ev.v[0].keep, 0);
	sev_is(&ev, 1, FK_SEV_PARAMS, 0x0203);
	assert_int_equal(ev.v[1].params->count, 0);
	sev_is(&ev, 2, FK_SEV_STDIN_END, 0x0203);
	assert_int_equal(s.closing, 0);
	/* No STDOUT written: the end still closes the stream; app status is big-endian. */
	assert_int_equal(fk_srv_end(&s, 0x0203, 0x01020304), FCGI_OK);
	static const uint8_t tail[24] = {1, 6, 2, 3, 0, 0, 0, 0, 1, 3, 2, 3, 0, 8, 0, 0,
	                                 1, 2, 3, 4, 0, 0, 0, 0};
	out_expect(&s, tail, 24);
	assert_int_equal(s.closing, 1);
	sevlist_free(&ev);
	fk_srv_free(&s);
	wb_free(&w);
}

static void test_srv_write_stderr_and_big(void **state)
{
	(void)state;
	wb w = {0};
	wb_begin(&w, 5, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_rec(&w, FK_PARAMS, 5, NULL, 0, 0);
	fk_srv_limits lim = lim_default();
	fk_srv s;
	fk_srv_init(&s, &lim);
	sevlist ev = {0};
	assert_int_equal(srv_run(&s, w.d, w.n, 0, &ev), 0);
	assert_int_equal(ev.n, 2);

	/* The application may answer before STDIN is complete. A big write is chunked. */
	size_t big = 150000;
	uint8_t *data = filled(big, 9);
	assert_int_equal(fk_srv_write(&s, 5, FK_STDOUT, data, big), FCGI_OK);
	assert_int_equal(fk_srv_write(&s, 5, FK_STDERR, "warn\n", 5), FCGI_OK);
	/* A zero-length write sends nothing: an empty record would end the stream. */
	size_t before = fk_buf_size(&s.out);
	assert_int_equal(fk_srv_write(&s, 5, FK_STDOUT, "", 0), FCGI_OK);
	assert_int_equal(fk_buf_size(&s.out), before);
	assert_int_equal(fk_srv_end(&s, 5, 0), FCGI_OK);
	assert_int_equal(fk_srv_inflight(&s), 0);

	orec r[16];
	size_t nr = parse_out(fk_buf_head(&s.out), fk_buf_size(&s.out), r, 16);
	size_t off = 0;
	int so_end = 0, se_end = 0, se_bytes = 0;
	for (size_t i = 0; i < nr; i++) {
		assert_int_equal(r[i].id, 5);
		if (i + 1 == nr) {
			assert_int_equal(r[i].type, FK_END_REQUEST);
			assert_int_equal(r[i].clen, 8);
			static const uint8_t body[8] = {0};
			assert_memory_equal(r[i].c, body, 8);
			continue;
		}
		assert_true(r[i].clen <= FK_MAX_CONTENT);
		if (r[i].type == FK_STDOUT) {
			assert_false(so_end);
			if (r[i].clen == 0) {
				so_end = 1;
			} else {
				assert_memory_equal(r[i].c, data + off, r[i].clen);
				off += r[i].clen;
			}
		} else {
			assert_int_equal(r[i].type, FK_STDERR);
			assert_false(se_end);
			if (r[i].clen == 0) {
				se_end = 1;
			} else {
				assert_memory_equal(r[i].c, "warn\n", 5);
				se_bytes += (int)r[i].clen;
			}
		}
	}
	assert_int_equal(off, big);
	assert_true(so_end);
	assert_true(se_end); /* STDERR was used: it is closed too */
	assert_int_equal(se_bytes, 5);
	fk_buf_consume(&s.out, fk_buf_size(&s.out));

	/* STDIN arriving after the end belongs to no request: skipped without error. */
	wb late = {0};
	wb_rec(&late, FK_STDIN, 5, "late", 4, 4);
	wb_rec(&late, FK_STDIN, 5, NULL, 0, 0);
	sevlist ev2 = {0};
	assert_int_equal(srv_run(&s, late.d, late.n, 0, &ev2), 0);
	assert_int_equal(ev2.n, 0);
	out_empty(&s);
	assert_int_equal(s.failed, 0);

	free(data);
	wb_free(&late);
	sevlist_free(&ev);
	sevlist_free(&ev2);
	fk_srv_free(&s);
	wb_free(&w);
}

static void test_srv_write_errors(void **state)
{
	(void)state;
	fk_srv_limits lim = lim_default();
	fk_srv s;
	fk_srv_init(&s, &lim);
	assert_true(fk_srv_write(&s, 1, FK_STDOUT, "x", 1) < 0);
	assert_true(fk_srv_end(&s, 1, 0) < 0);
	assert_true(fk_srv_refuse(&s, 1, FCGI_STATUS_OVERLOADED) < 0);
	out_empty(&s);
	wb w = {0};
	wb_begin(&w, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	sevlist ev = {0};
	assert_int_equal(srv_run(&s, w.d, w.n, 0, &ev), 0);
	assert_int_equal(ev.n, 1);
	sevlist_free(&ev);
	wb_free(&w);
	/* Only STDOUT and STDERR are the application's to write; results are collected first
	 * so that a failure does not leak (the sanitizer build runs LeakSanitizer). */
	static const unsigned bad_types[] = {FK_STDIN, FK_END_REQUEST, FK_DATA, 0, 99};
	int bad_rc[5];
	size_t bad_out[5];
	for (size_t i = 0; i < 5; i++) {
		bad_rc[i] = fk_srv_write(&s, 1, bad_types[i], "x", 1);
		bad_out[i] = fk_buf_size(&s.out);
		fk_buf_consume(&s.out, fk_buf_size(&s.out));
	}
	int other_write = fk_srv_write(&s, 2, FK_STDOUT, "x", 1);
	int other_end = fk_srv_end(&s, 2, 0);
	size_t other_out = fk_buf_size(&s.out);
	int end1 = fk_srv_end(&s, 1, 0);
	int end1_again = fk_srv_end(&s, 1, 0); /* forgotten */
	fk_srv_free(&s);
	for (size_t i = 0; i < 5; i++) {
		if (bad_rc[i] >= 0 || bad_out[i] != 0)
			fail_msg("fk_srv_write(type %u): rc %d, %zu bytes appended; want < 0 and none",
			         bad_types[i], bad_rc[i], bad_out[i]);
	}
	assert_true(other_write < 0);
	assert_true(other_end < 0);
	assert_int_equal(other_out, 0);
	assert_int_equal(end1, FCGI_OK);
	assert_true(end1_again < 0);
}

/* Sends GET_VALUES with the given pairs as one record and returns the result's pairs. */
static void get_values(fk_srv *s, size_t step, const char *const *names, size_t n, wb *result)
{
	wb body = {0}, w = {0};
	for (size_t i = 0; i < n; i++)
		wb_pairz(&body, names[i], "");
	wb_rec(&w, FK_GET_VALUES, 0, body.d, body.n, fk_padding_for(body.n));
	sevlist ev = {0};
	assert_int_equal(srv_run(s, w.d, w.n, step, &ev), 0);
	assert_int_equal(ev.n, 0);
	orec r[2];
	assert_int_equal(parse_out(fk_buf_head(&s->out), fk_buf_size(&s->out), r, 2), 1);
	assert_int_equal(r[0].type, FK_GET_VALUES_RESULT);
	assert_int_equal(r[0].id, 0);
	wb_put(result, r[0].c, r[0].clen);
	fk_buf_consume(&s->out, fk_buf_size(&s->out));
	sevlist_free(&ev);
	wb_free(&body);
	wb_free(&w);
}

/* Checks that body holds exactly the expected name=value pairs (any order). */
static void check_result(const wb *body, const char *const *exp, size_t n)
{
	int seen[8] = {0};
	size_t off = 0, count = 0;
	while (off < body->n) {
		size_t nl = read_len(body->d, body->n, &off);
		size_t vl = read_len(body->d, body->n, &off);
		assert_true(body->n - off >= nl + vl);
		int found = 0;
		for (size_t i = 0; i < n; i++) {
			const char *eq = strchr(exp[i], '=');
			size_t enl = (size_t)(eq - exp[i]);
			if (enl == nl && memcmp(exp[i], body->d + off, nl) == 0) {
				assert_false(seen[i]);
				seen[i] = 1;
				found = 1;
				assert_int_equal(vl, strlen(eq + 1));
				assert_memory_equal(body->d + off + nl, eq + 1, vl);
			}
		}
		if (!found)
			fail_msg("unexpected name in GET_VALUES_RESULT: %.*s", (int)nl, body->d + off);
		off += nl + vl;
		count++;
	}
	assert_int_equal(count, n);
}

static void test_srv_get_values(void **state)
{
	(void)state;
	for (size_t step = 0; step <= 3; step += 3) {
		fk_srv_limits lim = lim_default();
		fk_srv s;
		fk_srv_init(&s, &lim);
		wb res = {0};
		const char *all[] = {FK_NAME_MAX_CONNS, FK_NAME_MAX_REQS, FK_NAME_MPXS_CONNS,
		                     "FCGI_UNKNOWN_NAME"};
		get_values(&s, step, all, 4, &res);
		const char *exp[] = {"FCGI_MAX_CONNS=100", "FCGI_MAX_REQS=200", "FCGI_MPXS_CONNS=1"};
		check_result(&res, exp, 3);
		wb_free(&res);

		const char *one[] = {FK_NAME_MPXS_CONNS};
		get_values(&s, step, one, 1, &res);
		const char *exp1[] = {"FCGI_MPXS_CONNS=1"};
		check_result(&res, exp1, 1);
		wb_free(&res);

		const char *unk[] = {"X", "FCGI_MAX_CONNSX"};
		get_values(&s, step, unk, 2, &res);
		check_result(&res, NULL, 0);
		wb_free(&res);

		get_values(&s, step, NULL, 0, &res);
		check_result(&res, NULL, 0);
		wb_free(&res);
		assert_int_equal(fk_srv_inflight(&s), 0);
		assert_int_equal(s.closing, 0);
		fk_srv_free(&s);
	}

	/* The answer reflects the limits it was given. */
	fk_srv_limits lim = lim_default();
	lim.mpxs = 0;
	lim.advertise_max_conns = 1;
	lim.advertise_max_reqs = 4294967295u;
	fk_srv s;
	fk_srv_init(&s, &lim);
	wb res = {0};
	const char *all[] = {FK_NAME_MPXS_CONNS, FK_NAME_MAX_REQS, FK_NAME_MAX_CONNS};
	get_values(&s, 0, all, 3, &res);
	const char *exp[] = {"FCGI_MAX_CONNS=1", "FCGI_MAX_REQS=4294967295", "FCGI_MPXS_CONNS=0"};
	check_result(&res, exp, 3);
	wb_free(&res);
	fk_srv_free(&s);
}

static void test_srv_unknown_management_type(void **state)
{
	(void)state;
	static const unsigned types[] = {0, 12, 200, 255};
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		for (size_t step = 0; step <= 1; step++) {
			fk_srv_limits lim = lim_default();
			fk_srv s;
			fk_srv_init(&s, &lim);
			wb w = {0};
			wb_rec(&w, types[i], 0, "abc", 3, 5);
			sevlist ev = {0};
			assert_int_equal(srv_run(&s, w.d, w.n, step, &ev), 0);
			assert_int_equal(ev.n, 0);
			const uint8_t exp[16] = {1, 11, 0, 0, 0, 8, 0, 0, (uint8_t)types[i], 0, 0, 0, 0, 0,
			                         0, 0};
			out_expect(&s, exp, 16);
			/* The connection goes on: a request still works. */
			wb w2 = {0};
			wb_begin(&w2, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
			wb_rec(&w2, FK_PARAMS, 1, NULL, 0, 0);
			assert_int_equal(srv_run(&s, w2.d, w2.n, step, &ev), 0);
			assert_int_equal(ev.n, 2);
			sev_is(&ev, 1, FK_SEV_PARAMS, 1);
			sevlist_free(&ev);
			fk_srv_free(&s);
			wb_free(&w);
			wb_free(&w2);
		}
	}
}

static void test_srv_unknown_role(void **state)
{
	(void)state;
	static const unsigned roles[] = {0, 4, 7, 0x0101, 0xFFFF};
	for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
		fk_srv_limits lim = lim_default();
		fk_srv s;
		fk_srv_init(&s, &lim);
		wb w = {0};
		wb_begin(&w, 3, roles[i], FK_KEEP_CONN);
		wb_rec(&w, FK_PARAMS, 3, "\x01\x01" "ab", 4, 4);
		wb_rec(&w, FK_PARAMS, 3, NULL, 0, 0);
		wb_rec(&w, FK_STDIN, 3, "body", 4, 0);
		wb_rec(&w, FK_STDIN, 3, NULL, 0, 0);
		sevlist ev = {0};
		assert_int_equal(srv_run(&s, w.d, w.n, i % 2, &ev), 0);
		assert_int_equal(ev.n, 0); /* no BEGIN, and the rest is skipped */
		out_expect_end(&s, 3, 0, FCGI_STATUS_UNKNOWN_ROLE);
		assert_int_equal(fk_srv_inflight(&s), 0);
		assert_int_equal(s.failed, 0);
		/* The id is free again. */
		wb w2 = {0};
		wb_begin(&w2, 3, FCGI_ROLE_AUTHORIZER, 0);
		assert_int_equal(srv_run(&s, w2.d, w2.n, 0, &ev), 0);
		assert_int_equal(ev.n, 1);
		sev_is(&ev, 0, FK_SEV_BEGIN, 3);
		assert_int_equal(ev.v[0].role, FCGI_ROLE_AUTHORIZER);
		sevlist_free(&ev);
		fk_srv_free(&s);
		wb_free(&w);
		wb_free(&w2);
	}
}

static void test_srv_cant_mpx(void **state)
{
	(void)state;
	fk_srv_limits lim = lim_default();
	lim.mpxs = 0;
	fk_srv s;
	fk_srv_init(&s, &lim);
	wb w = {0};
	wb_begin(&w, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_begin(&w, 2, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_rec(&w, FK_PARAMS, 2, NULL, 0, 0);
	wb_rec(&w, FK_PARAMS, 1, NULL, 0, 0);
	wb_rec(&w, FK_STDIN, 2, "two", 3, 0);
	wb_rec(&w, FK_STDIN, 1, "one", 3, 0);
	sevlist ev = {0};
	assert_int_equal(srv_run(&s, w.d, w.n, 0, &ev), 0);
	assert_int_equal(ev.n, 3);
	sev_is(&ev, 0, FK_SEV_BEGIN, 1);
	sev_is(&ev, 1, FK_SEV_PARAMS, 1);
	sev_is(&ev, 2, FK_SEV_STDIN, 1);
	assert_memory_equal(ev.v[2].data, "one", 3);
	out_expect_end(&s, 2, 0, FCGI_STATUS_CANT_MPX_CONN);
	assert_int_equal(fk_srv_inflight(&s), 1);
	assert_int_equal(fk_srv_end(&s, 1, 0), FCGI_OK);
	fk_buf_consume(&s.out, fk_buf_size(&s.out));
	sevlist_free(&ev);

	/* Once idle, the next request is admitted. */
	wb w2 = {0};
	wb_begin(&w2, 3, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	assert_int_equal(srv_run(&s, w2.d, w2.n, 0, &ev), 0);
	assert_int_equal(ev.n, 1);
	sev_is(&ev, 0, FK_SEV_BEGIN, 3);
	out_empty(&s);
	sevlist_free(&ev);
	fk_srv_free(&s);
	wb_free(&w);
	wb_free(&w2);
}

static void test_srv_overloaded(void **state)
{
	(void)state;
	fk_srv_limits lim = lim_default();
	lim.max_reqs_per_conn = 2;
	fk_srv s;
	fk_srv_init(&s, &lim);
	wb w = {0};
	wb_begin(&w, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_begin(&w, 2, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_begin(&w, 3, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_rec(&w, FK_PARAMS, 3, NULL, 0, 0);
	sevlist ev = {0};
	assert_int_equal(srv_run(&s, w.d, w.n, 0, &ev), 0);
	assert_int_equal(ev.n, 2);
	sev_is(&ev, 0, FK_SEV_BEGIN, 1);
	sev_is(&ev, 1, FK_SEV_BEGIN, 2);
	out_expect_end(&s, 3, 0, FCGI_STATUS_OVERLOADED);
	assert_int_equal(fk_srv_inflight(&s), 2);
	sevlist_free(&ev);

	assert_int_equal(fk_srv_end(&s, 1, 0), FCGI_OK);
	fk_buf_consume(&s.out, fk_buf_size(&s.out));
	wb w2 = {0};
	wb_begin(&w2, 4, FCGI_ROLE_FILTER, FK_KEEP_CONN);
	assert_int_equal(srv_run(&s, w2.d, w2.n, 0, &ev), 0);
	assert_int_equal(ev.n, 1);
	sev_is(&ev, 0, FK_SEV_BEGIN, 4);
	assert_int_equal(ev.v[0].role, FCGI_ROLE_FILTER);
	out_empty(&s);
	sevlist_free(&ev);
	fk_srv_free(&s);
	wb_free(&w);
	wb_free(&w2);
}

static void test_srv_abort(void **state)
{
	(void)state;
	fk_srv_limits lim = lim_default();
	fk_srv s;
	fk_srv_init(&s, &lim);
	int tag = 42;
	wb w = {0};
	wb_begin(&w, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	sevlist ev = {0};
	assert_int_equal(srv_run(&s, w.d, w.n, 0, &ev), 0);
	assert_int_equal(ev.n, 1);
	fk_srv_set_user(&s, 1, &tag);
	wb_free(&w);

	/* ABORT for an id not in flight: ignored. ABORT before PARAMS end: reported. */
	wb_rec(&w, FK_ABORT_REQUEST, 9, NULL, 0, 0);
	wb_rec(&w, FK_PARAMS, 1, "\x01\x00" "A", 3, 5);
	wb_rec(&w, FK_ABORT_REQUEST, 1, NULL, 0, 0);
	assert_int_equal(srv_run(&s, w.d, w.n, 1, &ev), 0);
	assert_int_equal(ev.n, 2);
	sev_is(&ev, 1, FK_SEV_ABORT, 1);
	assert_ptr_equal(ev.v[1].user, &tag);
	out_empty(&s);
	assert_int_equal(fk_srv_inflight(&s), 1); /* the application still ends it */
	assert_int_equal(fk_srv_end(&s, 1, 0), FCGI_OK);
	static const uint8_t tail[24] = {1, 6, 0, 1, 0, 0, 0, 0, 1, 3, 0, 1, 0, 8, 0, 0,
	                                 0, 0, 0, 0, 0, 0, 0, 0};
	out_expect(&s, tail, 24);
	assert_int_equal(fk_srv_inflight(&s), 0);
	/* Late records of the aborted request are skipped. */
	wb_free(&w);
	wb_rec(&w, FK_PARAMS, 1, NULL, 0, 0);
	wb_rec(&w, FK_ABORT_REQUEST, 1, NULL, 0, 0);
	assert_int_equal(srv_run(&s, w.d, w.n, 0, &ev), 0);
	assert_int_equal(ev.n, 2);
	out_empty(&s);
	assert_int_equal(s.failed, 0);
	sevlist_free(&ev);
	fk_srv_free(&s);
	wb_free(&w);
}

static void test_srv_records_for_unknown_ids(void **state)
{
	(void)state;
	fk_srv_limits lim = lim_default();
	fk_srv s;
	fk_srv_init(&s, &lim);
	wb w = {0};
	wb_rec(&w, FK_STDIN, 5, "x", 1, 7);
	wb_rec(&w, FK_PARAMS, 6, "\x01\x01" "ab", 4, 0);
	wb_rec(&w, FK_STDIN, 5, NULL, 0, 0);
	wb_rec(&w, FK_DATA, 7, "d", 1, 0);
	wb_rec(&w, FK_PARAMS, 6, NULL, 0, 0);
	wb_rec(&w, FK_ABORT_REQUEST, 8, NULL, 0, 0);
	for (size_t step = 0; step <= 1; step++) {
		sevlist ev = {0};
		assert_int_equal(srv_run(&s, w.d, w.n, step, &ev), 0);
		assert_int_equal(ev.n, 0);
		out_empty(&s);
		assert_int_equal(s.failed, 0);
		sevlist_free(&ev);
	}
	fk_srv_free(&s);
	wb_free(&w);
}

static void test_srv_multiplexed_and_filter(void **state)
{
	(void)state;
	wb w = {0};
	wb_begin(&w, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_begin(&w, 2, FCGI_ROLE_FILTER, FK_KEEP_CONN);
	wb_rec(&w, FK_PARAMS, 2, "\x01\x01" "BX", 4, 4);
	wb_rec(&w, FK_PARAMS, 1, "\x01\x01" "AY", 4, 0);
	wb_rec(&w, FK_PARAMS, 1, NULL, 0, 0);
	wb_rec(&w, FK_PARAMS, 2, NULL, 0, 0);
	wb_rec(&w, FK_STDIN, 2, "bb", 2, 6);
	wb_rec(&w, FK_STDIN, 1, "aa", 2, 0);
	wb_rec(&w, FK_STDIN, 1, NULL, 0, 0);
	wb_rec(&w, FK_STDIN, 2, NULL, 0, 0);
	wb_rec(&w, FK_DATA, 2, "file", 4, 4);
	wb_rec(&w, FK_DATA, 2, "!", 1, 0);
	wb_rec(&w, FK_DATA, 2, NULL, 0, 0);
	/* An unknown management type with zero content and maximal padding. */
	wb_rec(&w, FK_STDOUT + 100, 0, NULL, 0, 255);
	static const size_t steps[] = {0, 1, 5};
	for (size_t si = 0; si < 3; si++) {
		fk_srv_limits lim = lim_default();
		fk_srv s;
		fk_srv_init(&s, &lim);
		sevlist ev = {0};
		assert_int_equal(srv_run(&s, w.d, w.n, steps[si], &ev), 0);
		assert_int_equal(ev.n, 10);
		sev_is(&ev, 0, FK_SEV_BEGIN, 1);
		assert_int_equal(ev.v[0].role, FCGI_ROLE_RESPONDER);
		sev_is(&ev, 1, FK_SEV_BEGIN, 2);
		assert_int_equal(ev.v[1].role, FCGI_ROLE_FILTER);
		sev_is(&ev, 2, FK_SEV_PARAMS, 1);
		assert_int_equal(ev.v[2].params->count, 1);
		assert_string_equal(ev.v[2].params->items[0].name, "A");
		assert_string_equal(ev.v[2].params->items[0].value, "Y");
		sev_is(&ev, 3, FK_SEV_PARAMS, 2);
		assert_int_equal(ev.v[3].params->count, 1);
		assert_string_equal(ev.v[3].params->items[0].name, "B");
		assert_string_equal(ev.v[3].params->items[0].value, "X");
		sev_is(&ev, 4, FK_SEV_STDIN, 2);
		assert_int_equal(ev.v[4].len, 2);
		assert_memory_equal(ev.v[4].data, "bb", 2);
		sev_is(&ev, 5, FK_SEV_STDIN, 1);
		assert_int_equal(ev.v[5].len, 2);
		assert_memory_equal(ev.v[5].data, "aa", 2);
		sev_is(&ev, 6, FK_SEV_STDIN_END, 1);
		sev_is(&ev, 7, FK_SEV_STDIN_END, 2);
		sev_is(&ev, 8, FK_SEV_DATA, 2);
		assert_int_equal(ev.v[8].len, 5);
		assert_memory_equal(ev.v[8].data, "file!", 5);
		sev_is(&ev, 9, FK_SEV_DATA_END, 2);
		static const uint8_t unk[16] = {1, 11, 0, 0, 0, 8, 0, 0, FK_STDOUT + 100, 0, 0, 0,
		                                0, 0, 0, 0};
		out_expect(&s, unk, 16);
		assert_int_equal(fk_srv_inflight(&s), 2);
		sevlist_free(&ev);
		fk_srv_free(&s); /* frees the two requests still in flight */
	}
	wb_free(&w);
}

static void test_srv_refuse(void **state)
{
	(void)state;
	fk_srv_limits lim = lim_default();
	fk_srv s;
	fk_srv_init(&s, &lim);
	wb w = {0};
	wb_begin(&w, 7, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_rec(&w, FK_PARAMS, 7, "\x01\x01" "ab", 4, 4);
	wb_rec(&w, FK_PARAMS, 7, NULL, 0, 0);
	sevlist ev = {0};
	assert_int_equal(srv_run(&s, w.d, w.n, 0, &ev), 0);
	assert_int_equal(ev.n, 2);
	assert_int_equal(fk_srv_refuse(&s, 7, FCGI_STATUS_OVERLOADED), FCGI_OK);
	out_expect_end(&s, 7, 0, FCGI_STATUS_OVERLOADED);
	assert_int_equal(fk_srv_inflight(&s), 0);
	wb_free(&w);
	wb_rec(&w, FK_STDIN, 7, "zz", 2, 6);
	wb_rec(&w, FK_STDIN, 7, NULL, 0, 0);
	sevlist_free(&ev);
	assert_int_equal(srv_run(&s, w.d, w.n, 0, &ev), 0);
	assert_int_equal(ev.n, 0);
	out_empty(&s);
	sevlist_free(&ev);
	fk_srv_free(&s);
	wb_free(&w);
}

/* PARAMS past max_params_bytes or max_params_count: the session answers
 * END_REQUEST(OVERLOADED) by itself, forgets the request, and tells the application with
 * FK_SEV_REFUSED (carrying the user pointer) — never a PARAMS event, and the connection
 * goes on. */
static void check_params_limit(fk_srv_limits lim, const wb *stream, const char *what)
{
	int tag = 1;
	for (size_t step = 0; step <= 1; step++) {
		fk_srv s;
		fk_srv_init(&s, &lim);
		sevlist ev = {0};
		size_t used = 0;
		fk_srv_event e;
		/* BEGIN first, so that a user pointer can be attached. */
		assert_int_equal(fk_srv_feed(&s, stream->d, stream->n, &used, &e), 1);
		assert_int_equal(e.kind, FK_SEV_BEGIN);
		fk_srv_set_user(&s, 1, &tag);
		int rc = srv_run(&s, stream->d + used, stream->n - used, step, &ev);
		if (rc != 0)
			fail_msg("%s (step %zu): got %d (%s), want a refusal", what, step, rc,
			         fcgi_err_name(rc));
		assert_int_equal(ev.n, 1);
		sev_is(&ev, 0, FK_SEV_REFUSED, 1);
		assert_ptr_equal(ev.v[0].user, &tag);
		out_expect_end(&s, 1, 0, FCGI_STATUS_OVERLOADED);
		assert_int_equal(fk_srv_inflight(&s), 0);
		assert_int_equal(s.failed, 0);
		assert_int_equal(s.closing, 0); /* KEEP_CONN */
		sevlist_free(&ev);
		fk_srv_free(&s);
	}
}

static void test_srv_params_limits(void **state)
{
	(void)state;
	fk_srv_limits lim = lim_default();
	lim.max_params_bytes = 64;
	lim.max_params_count = 4;

	/* Exactly 64 bytes and 4 pairs: accepted. */
	wb body = {0};
	char v[64];
	memset(v, 'v', sizeof v);
	wb_pairz(&body, "A", "1");
	wb_pairz(&body, "B", "2");
	wb_pairz(&body, "C", "3");
	wb_pair(&body, "D", 1, v, 64 - body.n - 3);
	assert_int_equal(body.n, 64);
	wb w = {0};
	wb_begin(&w, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_stream(&w, FK_PARAMS, 1, body.d, body.n, 30, 2);
	fk_srv s;
	fk_srv_init(&s, &lim);
	sevlist ev = {0};
	assert_int_equal(srv_run(&s, w.d, w.n, 0, &ev), 0);
	assert_int_equal(ev.n, 2);
	sev_is(&ev, 1, FK_SEV_PARAMS, 1);
	assert_int_equal(ev.v[1].params->count, 4);
	sevlist_free(&ev);
	fk_srv_free(&s);

	/* 65 bytes, in records each under the limit: the stream total counts. */
	wb_free(&body);
	wb_free(&w);
	wb_pairz(&body, "A", "1");
	wb_pair(&body, "D", 1, v, 65 - body.n - 3);
	assert_int_equal(body.n, 65);
	wb_begin(&w, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_stream(&w, FK_PARAMS, 1, body.d, body.n, 30, 2);
	check_params_limit(lim, &w, "max_params_bytes");

	/* 5 pairs when 4 are allowed. */
	wb_free(&body);
	wb_free(&w);
	for (int i = 0; i < 5; i++)
		wb_pairz(&body, "K", "v");
	wb_begin(&w, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_stream(&w, FK_PARAMS, 1, body.d, body.n, 4, 0);
	check_params_limit(lim, &w, "max_params_count");

	/* A single pair claiming 2^31-1 bytes of value. */
	wb_free(&w);
	wb_begin(&w, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	static const uint8_t huge[] = {0x01, 0xFF, 0xFF, 0xFF, 0xFF, 'A', 'x', 'x'};
	wb_rec(&w, FK_PARAMS, 1, huge, sizeof huge, 0);
	for (int i = 0; i < 10; i++)
		wb_rec(&w, FK_PARAMS, 1, v, 8, 0);
	wb_rec(&w, FK_PARAMS, 1, NULL, 0, 0);
	check_params_limit(lim, &w, "huge pair");

	wb_free(&body);
	wb_free(&w);
}

/* Protocol errors: the connection must be closed (FCGI_EPROTO, s->failed set). Every case
 * is tried and all the misses are reported together. */
static int check_proto_error(const wb *w, const char *what)
{
	int ok = 1;
	for (size_t step = 0; step <= 1; step++) {
		fk_srv_limits lim = lim_default();
		fk_srv s;
		fk_srv_init(&s, &lim);
		sevlist ev = {0};
		int rc = srv_run(&s, w->d, w->n, step, &ev);
		if (rc != FCGI_EPROTO || !s.failed) {
			printf("# %s (step %zu): expected FCGI_EPROTO, got %d (%s), failed=%d, %zu "
			       "events, %zu bytes out\n",
			       what, step, rc, fcgi_err_name(rc), s.failed, ev.n, fk_buf_size(&s.out));
			ok = 0;
		}
		sevlist_free(&ev);
		fk_srv_free(&s);
	}
	return ok;
}

static void test_srv_protocol_errors(void **state)
{
	(void)state;
	wb w = {0};
	int ok = 1;

	wb_begin(&w, 4, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_rec(&w, FK_PARAMS, 4, NULL, 0, 0);
	wb_begin(&w, 4, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	ok &= check_proto_error(&w, "duplicate BEGIN_REQUEST");
	wb_free(&w);

	wb_begin(&w, 4, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_hdr_v(&w, 2, FK_PARAMS, 4, 0, 0);
	ok &= check_proto_error(&w, "version 2");
	wb_free(&w);

	/* Fixed-body records whose content is not 8 bytes. */
	wb_rec(&w, FK_BEGIN_REQUEST, 1, "\x00\x01\x01\x00", 4, 4);
	ok &= check_proto_error(&w, "BEGIN_REQUEST with a 4-byte body");
	wb_free(&w);
	wb_rec(&w, FK_BEGIN_REQUEST, 1, NULL, 0, 0);
	ok &= check_proto_error(&w, "BEGIN_REQUEST with an empty body");
	wb_free(&w);
	wb_rec(&w, FK_BEGIN_REQUEST, 1, "\x00\x01\x01\x00\x00\x00\x00\x00\x00", 9, 7);
	ok &= check_proto_error(&w, "BEGIN_REQUEST with a 9-byte body");
	wb_free(&w);
	wb_begin(&w, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_rec(&w, FK_END_REQUEST, 1, "\0\0\0", 3, 5);
	ok &= check_proto_error(&w, "END_REQUEST with a 3-byte body");
	wb_free(&w);

	/* Stream order. */
	wb_begin(&w, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_rec(&w, FK_STDIN, 1, "ab", 2, 6);
	ok &= check_proto_error(&w, "STDIN before PARAMS ended");
	wb_free(&w);
	wb_begin(&w, 1, FCGI_ROLE_FILTER, FK_KEEP_CONN);
	wb_rec(&w, FK_PARAMS, 1, "\x01\x00" "A", 3, 5);
	wb_rec(&w, FK_DATA, 1, "ab", 2, 6);
	ok &= check_proto_error(&w, "DATA before PARAMS ended");
	wb_free(&w);
	wb_begin(&w, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_rec(&w, FK_PARAMS, 1, NULL, 0, 0);
	wb_rec(&w, FK_PARAMS, 1, "\x01\x00" "A", 3, 5);
	ok &= check_proto_error(&w, "PARAMS after their end");
	wb_free(&w);
	wb_begin(&w, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_rec(&w, FK_PARAMS, 1, NULL, 0, 0);
	wb_rec(&w, FK_STDIN, 1, NULL, 0, 0);
	wb_rec(&w, FK_STDIN, 1, "late", 4, 4);
	ok &= check_proto_error(&w, "STDIN after its end");
	wb_free(&w);
	wb_begin(&w, 1, FCGI_ROLE_FILTER, FK_KEEP_CONN);
	wb_rec(&w, FK_PARAMS, 1, NULL, 0, 0);
	wb_rec(&w, FK_STDIN, 1, NULL, 0, 0);
	wb_rec(&w, FK_DATA, 1, NULL, 0, 0);
	wb_rec(&w, FK_DATA, 1, "late", 4, 4);
	ok &= check_proto_error(&w, "DATA after its end");
	wb_free(&w);

	/* A PARAMS stream that ends inside a pair, inside a 4-byte length or the value. */
	wb_begin(&w, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_rec(&w, FK_PARAMS, 1, "\x04\x80\x00", 3, 5);
	wb_rec(&w, FK_PARAMS, 1, NULL, 0, 0);
	ok &= check_proto_error(&w, "PARAMS ending inside a length");
	wb_free(&w);
	wb_begin(&w, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_rec(&w, FK_PARAMS, 1, "\x01\x05" "Aabc", 6, 2);
	wb_rec(&w, FK_PARAMS, 1, NULL, 0, 0);
	ok &= check_proto_error(&w, "PARAMS ending inside a value");
	wb_free(&w);
	if (!ok)
		fail_msg("some protocol errors were not reported as FCGI_EPROTO");
}

/* "Any other record with request id 0, whatever its type: UNKNOWN_TYPE (spec 4.2)" — the
 * application types included. The connection goes on. */
static void test_srv_app_types_with_id_zero(void **state)
{
	(void)state;
	static const unsigned types[] = {FK_BEGIN_REQUEST, FK_ABORT_REQUEST, FK_END_REQUEST,
	                                 FK_PARAMS,        FK_STDIN,         FK_STDOUT,
	                                 FK_STDERR,        FK_DATA,          FK_GET_VALUES_RESULT,
	                                 FK_UNKNOWN_TYPE};
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		fk_srv_limits lim = lim_default();
		fk_srv s;
		fk_srv_init(&s, &lim);
		wb w = {0};
		if (types[i] == FK_BEGIN_REQUEST)
			wb_begin(&w, 0, FCGI_ROLE_RESPONDER, 0);
		else if (types[i] == FK_END_REQUEST || types[i] == FK_UNKNOWN_TYPE)
			wb_rec(&w, types[i], 0, "\0\0\0\0\0\0\0\0", 8, 0);
		else
			wb_rec(&w, types[i], 0, "x", 1, 7);
		sevlist ev = {0};
		int rc = srv_run(&s, w.d, w.n, i % 2, &ev);
		if (rc != 0)
			fail_msg("type %u with id 0: got %d (%s)", types[i], rc, fcgi_err_name(rc));
		assert_int_equal(ev.n, 0);
		const uint8_t exp[16] = {1, 11, 0, 0, 0, 8, 0, 0, (uint8_t)types[i], 0, 0, 0, 0, 0, 0, 0};
		out_expect(&s, exp, 16);
		assert_int_equal(s.failed, 0);
		assert_int_equal(fk_srv_inflight(&s), 0);
		sevlist_free(&ev);
		fk_srv_free(&s);
		wb_free(&w);
	}
}

/* fk_srv_user_at: every request in flight, each once, whatever the order. */
static void test_srv_user_at(void **state)
{
	(void)state;
	fk_srv_limits lim = lim_default();
	fk_srv s;
	fk_srv_init(&s, &lim);
	wb w = {0};
	for (unsigned id = 1; id <= 5; id++)
		wb_begin(&w, id, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	sevlist ev = {0};
	assert_int_equal(srv_run(&s, w.d, w.n, 0, &ev), 0);
	assert_int_equal(fk_srv_inflight(&s), 5);
	int tags[6];
	for (unsigned id = 1; id <= 5; id++)
		fk_srv_set_user(&s, id, &tags[id]);
	fk_srv_set_user(&s, 77, &tags[0]); /* not in flight: no effect */
	assert_int_equal(fk_srv_end(&s, 2, 0), FCGI_OK);
	assert_int_equal(fk_srv_end(&s, 4, 0), FCGI_OK);
	int seen[6] = {0};
	for (uint32_t i = 0; i < fk_srv_inflight(&s); i++) {
		int *u = fk_srv_user_at(&s, i);
		assert_true(u == &tags[1] || u == &tags[3] || u == &tags[5]);
		assert_false(seen[u - tags]);
		seen[u - tags] = 1;
	}
	assert_int_equal(fk_srv_inflight(&s), 3);
	assert_true(seen[1] && seen[3] && seen[5]);
	sevlist_free(&ev);
	fk_srv_free(&s);
	wb_free(&w);
}

/* The same session fed whole and byte by byte gives the same events and the same replies. */
static void test_srv_split_equivalence(void **state)
{
	(void)state;
	wb w = {0}, pb = {0};
	const char *names[] = {FK_NAME_MAX_REQS, "NOPE", FK_NAME_MPXS_CONNS};
	wb gv = {0};
	for (int i = 0; i < 3; i++)
		wb_pairz(&gv, names[i], "");
	wb_rec(&w, FK_GET_VALUES, 0, gv.d, gv.n, 3);
	build_responder(&w, 9, FK_KEEP_CONN, &pb);
	wb_rec(&w, 12, 0, NULL, 0, 0);
	wb_begin(&w, 10, 9, 0);
	wb_begin(&w, 11, FCGI_ROLE_AUTHORIZER, 0);
	wb_rec(&w, FK_PARAMS, 11, NULL, 0, 0);
	wb_rec(&w, FK_ABORT_REQUEST, 11, NULL, 0, 0);
	uint8_t *body = filled(70000, 5);
	wb_begin(&w, 12, FCGI_ROLE_RESPONDER, 0);
	wb_rec(&w, FK_PARAMS, 12, NULL, 0, 0);
	wb_stream(&w, FK_STDIN, 12, body, 70000, 65535, 1);

	sevlist ref = {0};
	uint8_t *ref_out = NULL;
	size_t ref_out_n = 0;
	static const size_t steps[] = {0, 1, 3, 8, 1000};
	for (size_t si = 0; si < sizeof steps / sizeof steps[0]; si++) {
		fk_srv_limits lim = lim_default();
		fk_srv s;
		fk_srv_init(&s, &lim);
		sevlist ev = {0};
		assert_int_equal(srv_run(&s, w.d, w.n, steps[si], &ev), 0);
		if (si == 0) {
			ref = ev;
			ref_out_n = fk_buf_size(&s.out);
			ref_out = malloc(ref_out_n);
			assert_non_null(ref_out);
			memcpy(ref_out, fk_buf_head(&s.out), ref_out_n);
			/* GET_VALUES_RESULT, UNKNOWN_TYPE, END_REQUEST(UNKNOWN_ROLE) for 10. */
			orec r[4];
			assert_int_equal(parse_out(ref_out, ref_out_n, r, 4), 3);
			assert_int_equal(r[0].type, FK_GET_VALUES_RESULT);
			assert_int_equal(r[1].type, FK_UNKNOWN_TYPE);
			assert_int_equal(r[2].type, FK_END_REQUEST);
			assert_int_equal(r[2].id, 10);
			assert_int_equal(r[2].c[4], FCGI_STATUS_UNKNOWN_ROLE);
			/* Events: 9: BEGIN PARAMS STDIN STDIN_END; 11: BEGIN PARAMS ABORT;
			 * 12: BEGIN PARAMS STDIN STDIN_END. */
			assert_int_equal(ev.n, 11);
			sev_is(&ev, 6, FK_SEV_ABORT, 11);
			sev_is(&ev, 9, FK_SEV_STDIN, 12);
			assert_int_equal(ev.v[9].len, 70000);
			assert_memory_equal(ev.v[9].data, body, 70000);
		} else {
			assert_int_equal(ev.n, ref.n);
			for (size_t i = 0; i < ev.n; i++) {
				sev_is(&ev, i, ref.v[i].kind, ref.v[i].id);
				assert_int_equal(ev.v[i].len, ref.v[i].len);
				if (ev.v[i].len)
					assert_memory_equal(ev.v[i].data, ref.v[i].data, ev.v[i].len);
				if (ev.v[i].kind == FK_SEV_BEGIN) {
					assert_int_equal(ev.v[i].role, ref.v[i].role);
					assert_int_equal(ev.v[i].keep, ref.v[i].keep);
				}
				if (ev.v[i].kind == FK_SEV_PARAMS)
					assert_int_equal(ev.v[i].params->count, ref.v[i].params->count);
			}
			assert_int_equal(fk_buf_size(&s.out), ref_out_n);
			assert_memory_equal(fk_buf_head(&s.out), ref_out, ref_out_n);
			sevlist_free(&ev);
		}
		fk_srv_free(&s);
	}
	sevlist_free(&ref);
	free(ref_out);
	free(body);
	wb_free(&gv);
	wb_free(&w);
	wb_free(&pb);
}


/* GET_VALUES asking for the same name thousands of times: an answer of that size does not
 * fit one record. Whatever the session does, its output must be well-formed records with
 * known names and right values only. */
static void test_srv_get_values_huge(void **state)
{
	(void)state;
	fk_srv_limits lim = lim_default();
	lim.advertise_max_reqs = 4294967295u;
	fk_srv s;
	fk_srv_init(&s, &lim);
	wb body = {0}, w = {0};
	while (body.n + 15 <= 65535)
		wb_pairz(&body, FK_NAME_MAX_REQS, "");
	wb_rec(&w, FK_GET_VALUES, 0, body.d, body.n, 0);
	sevlist ev = {0};
	int rc = srv_run(&s, w.d, w.n, 0, &ev);
	assert_true(rc == 0 || rc < 0);
	assert_int_equal(ev.n, 0);
	if (fk_buf_size(&s.out) > 0) {
		orec r[8];
		size_t nr = parse_out(fk_buf_head(&s.out), fk_buf_size(&s.out), r, 8);
		for (size_t i = 0; i < nr; i++) {
			assert_int_equal(r[i].type, FK_GET_VALUES_RESULT);
			size_t off = 0;
			while (off < r[i].clen) {
				size_t nl = read_len(r[i].c, r[i].clen, &off);
				size_t vl = read_len(r[i].c, r[i].clen, &off);
				assert_true(r[i].clen - off >= nl + vl);
				assert_int_equal(nl, strlen(FK_NAME_MAX_REQS));
				assert_memory_equal(r[i].c + off, FK_NAME_MAX_REQS, nl);
				assert_int_equal(vl, 10);
				assert_memory_equal(r[i].c + off + nl, "4294967295", 10);
				off += nl + vl;
			}
		}
		printf("# %zu GET_VALUES names: %zu result record(s), %zu bytes, rc %d\n",
		       body.n / 15, nr, fk_buf_size(&s.out), rc);
	}
	sevlist_free(&ev);
	fk_srv_free(&s);
	wb_free(&body);
	wb_free(&w);
}

/* Ending or refusing requests while a record of another request is half read: the rest of
 * that record still belongs to its own request (no stale pointer into the request table),
 * and ending the request being read drops the rest of its record. */
static void test_srv_end_mid_record(void **state)
{
	(void)state;
	fk_srv_limits lim = lim_default();
	fk_srv s;
	fk_srv_init(&s, &lim);
	wb w = {0};
	for (unsigned id = 1; id <= 4; id++) {
		wb_begin(&w, id, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
		wb_rec(&w, FK_PARAMS, id, NULL, 0, 0);
	}
	sevlist ev = {0};
	assert_int_equal(srv_run(&s, w.d, w.n, 0, &ev), 0);
	assert_int_equal(ev.n, 8);
	sevlist_free(&ev);
	wb_free(&w);
	int tag3 = 3;
	fk_srv_set_user(&s, 3, &tag3);

	/* STDIN for 3, then STDIN for 4, fed byte by byte. */
	wb_rec(&w, FK_STDIN, 3, "0123456789", 10, 6);
	wb_rec(&w, FK_STDIN, 4, "abcdefghij", 10, 6);
	wb_rec(&w, FK_STDIN, 2, "ZZ", 2, 0);
	size_t off = 0;
	uint8_t got3[16], got4[16];
	size_t n3 = 0, n4 = 0;
	int ended1 = 0, ended4 = 0;
	while (off < w.n) {
		fk_srv_event e;
		size_t used = 0;
		memset(&e, 0, sizeof e);
		int rc = fk_srv_feed(&s, w.d + off, 1, &used, &e);
		assert_true(rc == 0 || rc == 1);
		off += used;
		if (rc != 1)
			continue;
		assert_int_equal(e.kind, FK_SEV_STDIN);
		if (e.request_id == 3) {
			assert_ptr_equal(e.user, &tag3);
			assert_true(n3 + e.len <= 10);
			memcpy(got3 + n3, e.data, e.len);
			n3 += e.len;
			if (!ended1) {
				/* End another request while 3's record is half read. */
				assert_int_equal(fk_srv_end(&s, 1, 0), FCGI_OK);
				assert_int_equal(fk_srv_refuse(&s, 2, FCGI_STATUS_OVERLOADED), FCGI_OK);
				ended1 = 1;
			}
		} else {
			assert_int_equal(e.request_id, 4); /* 2 was refused: its STDIN is skipped */
			assert_false(ended4);
			assert_true(n4 + e.len <= 10);
			memcpy(got4 + n4, e.data, e.len);
			n4 += e.len;
			if (n4 == 3) {
				/* End the request being read: the rest of its record is dropped. */
				assert_int_equal(fk_srv_end(&s, 4, 0), FCGI_OK);
				ended4 = 1;
			}
		}
	}
	assert_int_equal(n3, 10);
	assert_memory_equal(got3, "0123456789", 10);
	assert_int_equal(n4, 3);
	assert_memory_equal(got4, "abc", 3);
	assert_int_equal(fk_srv_inflight(&s), 1);
	assert_int_equal(s.failed, 0);
	fk_srv_free(&s);
	wb_free(&w);
}

/* Many requests in flight: the request table grows, every request keeps its own state. */
static void test_srv_many_in_flight(void **state)
{
	(void)state;
	fk_srv_limits lim = lim_default();
	lim.max_reqs_per_conn = 256;
	fk_srv s;
	fk_srv_init(&s, &lim);
	wb w = {0};
	for (unsigned id = 1; id <= 300; id++)
		wb_begin(&w, id * 211 % 65536, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	for (unsigned id = 300; id >= 1; id--) {
		char v[8];
		int vl = snprintf(v, sizeof v, "%u", id);
		uint8_t pair[16] = {1, (uint8_t)vl, 'I'};
		memcpy(pair + 3, v, (size_t)vl);
		wb_rec(&w, FK_PARAMS, id * 211 % 65536, pair, 3 + (size_t)vl, 0);
		wb_rec(&w, FK_PARAMS, id * 211 % 65536, NULL, 0, 0);
	}
	sevlist ev = {0};
	assert_int_equal(srv_run(&s, w.d, w.n, 0, &ev), 0);
	assert_int_equal(fk_srv_inflight(&s), 256);
	/* 44 refusals, for ids 257..300 in BEGIN order. */
	orec r[64];
	assert_int_equal(parse_out(fk_buf_head(&s.out), fk_buf_size(&s.out), r, 64), 44);
	for (size_t i = 0; i < 44; i++) {
		assert_int_equal(r[i].type, FK_END_REQUEST);
		assert_int_equal(r[i].id, (257 + i) * 211 % 65536);
		assert_int_equal(r[i].c[4], FCGI_STATUS_OVERLOADED);
	}
	assert_int_equal(ev.n, 256 + 256);
	for (size_t i = 0; i < 256; i++)
		sev_is(&ev, i, FK_SEV_BEGIN, (unsigned)((i + 1) * 211 % 65536));
	for (size_t i = 256; i < ev.n; i++) {
		assert_int_equal(ev.v[i].kind, FK_SEV_PARAMS);
		unsigned id = (unsigned)(256 - (i - 256));
		assert_int_equal(ev.v[i].id, id * 211 % 65536);
		char v[8];
		snprintf(v, sizeof v, "%u", id);
		assert_string_equal(ev.v[i].params->items[0].value, v);
	}
	sevlist_free(&ev);
	fk_srv_free(&s);
	wb_free(&w);
}

/* Refusing right after BEGIN, before any PARAMS. */
static void test_srv_refuse_after_begin(void **state)
{
	(void)state;
	fk_srv_limits lim = lim_default();
	fk_srv s;
	fk_srv_init(&s, &lim);
	wb w = {0};
	wb_begin(&w, 0x8001, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_rec(&w, FK_PARAMS, 0x8001, "\x01\x01" "ab", 4, 4);
	wb_rec(&w, FK_PARAMS, 0x8001, NULL, 0, 0);
	wb_rec(&w, FK_STDIN, 0x8001, NULL, 0, 0);
	size_t used;
	fk_srv_event e;
	assert_int_equal(fk_srv_feed(&s, w.d, w.n, &used, &e), 1);
	assert_int_equal(e.kind, FK_SEV_BEGIN);
	assert_int_equal(e.request_id, 0x8001);
	assert_int_equal(fk_srv_refuse(&s, 0x8001, FCGI_STATUS_OVERLOADED), FCGI_OK);
	out_expect_end(&s, 0x8001, 0, FCGI_STATUS_OVERLOADED);
	sevlist ev = {0};
	assert_int_equal(srv_run(&s, w.d + used, w.n - used, 0, &ev), 0);
	assert_int_equal(ev.n, 0);
	out_empty(&s);
	sevlist_free(&ev);
	fk_srv_free(&s);
	wb_free(&w);
}

/* DATA is the Filter's second stream ("FK_SEV_DATA: Filter DATA bytes"): a Responder or an
 * Authorizer never sees it. The session may skip such records or call them a protocol
 * error; it must not hand them to the application. */
static void test_srv_data_only_for_filter(void **state)
{
	(void)state;
	static const unsigned roles[] = {FCGI_ROLE_RESPONDER, FCGI_ROLE_AUTHORIZER};
	int bad[2] = {0, 0};
	for (size_t i = 0; i < 2; i++) {
		fk_srv_limits lim = lim_default();
		fk_srv s;
		fk_srv_init(&s, &lim);
		wb w = {0};
		wb_begin(&w, 1, roles[i], FK_KEEP_CONN);
		wb_rec(&w, FK_PARAMS, 1, NULL, 0, 0);
		wb_rec(&w, FK_STDIN, 1, NULL, 0, 0);
		wb_rec(&w, FK_DATA, 1, "xy", 2, 6);
		wb_rec(&w, FK_DATA, 1, NULL, 0, 0);
		sevlist ev = {0};
		int rc = srv_run(&s, w.d, w.n, 0, &ev);
		if (rc != 0 && rc != FCGI_EPROTO)
			bad[i] = -1;
		for (size_t k = 0; k < ev.n; k++)
			if (ev.v[k].kind == FK_SEV_DATA || ev.v[k].kind == FK_SEV_DATA_END)
				bad[i] = ev.v[k].kind;
		sevlist_free(&ev);
		fk_srv_free(&s);
		wb_free(&w);
	}
	for (size_t i = 0; i < 2; i++)
		if (bad[i])
			fail_msg("role %u: DATA records reached the application (event %d)", roles[i],
			         bad[i]);
}

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_encode_golden),
		cmocka_unit_test(test_header_decode_golden),
		cmocka_unit_test(test_padding_for),
		cmocka_unit_test(test_fixed_records_golden),
		cmocka_unit_test(test_pair_size_and_encode_boundaries),
		cmocka_unit_test(test_pair_decode_golden),
		cmocka_unit_test(test_pair_split_every_offset),
		cmocka_unit_test(test_encode_stream),
		cmocka_unit_test(test_buf_basics),
		cmocka_unit_test(test_errors_and_names),
		cmocka_unit_test(test_reader_split_equivalence),
		cmocka_unit_test(test_reader_idle_and_partial),
		cmocka_unit_test(test_reader_bad_version),
		cmocka_unit_test(test_params_parse),
		cmocka_unit_test(test_srv_responder),
		cmocka_unit_test(test_srv_no_keep_conn_closes),
		cmocka_unit_test(test_srv_write_stderr_and_big),
		cmocka_unit_test(test_srv_write_errors),
		cmocka_unit_test(test_srv_get_values),
		cmocka_unit_test(test_srv_unknown_management_type),
		cmocka_unit_test(test_srv_unknown_role),
		cmocka_unit_test(test_srv_cant_mpx),
		cmocka_unit_test(test_srv_overloaded),
		cmocka_unit_test(test_srv_abort),
		cmocka_unit_test(test_srv_records_for_unknown_ids),
		cmocka_unit_test(test_srv_multiplexed_and_filter),
		cmocka_unit_test(test_srv_refuse),
		cmocka_unit_test(test_srv_params_limits),
		cmocka_unit_test(test_srv_protocol_errors),
		cmocka_unit_test(test_srv_app_types_with_id_zero),
		cmocka_unit_test(test_srv_user_at),
		cmocka_unit_test(test_srv_split_equivalence),
		cmocka_unit_test(test_srv_get_values_huge),
		cmocka_unit_test(test_srv_end_mid_record),
		cmocka_unit_test(test_srv_many_in_flight),
		cmocka_unit_test(test_srv_refuse_after_begin),
		cmocka_unit_test(test_srv_data_only_for_filter),
	};
	return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
