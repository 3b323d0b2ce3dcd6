/*
 * fuzz_reader.c — libFuzzer target for the record layer (fk_reader).
 *
 * Input: byte 0 is a split size (0: feed everything at once), the rest is a byte stream from
 * a peer. The stream is read twice — whole, and in pieces of the split size — and both runs
 * must give the same events (DATA slices joined per record) and the same verdict. Along the
 * way: slices lie inside the bytes consumed, a record's DATA adds up to its content length,
 * the only error is FCGI_EPROTO.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "fcgikit.h"

#define CHECK(c)                                                                           \
	do {                                                                                   \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);          \
			abort();                                                                       \
		}                                                                                  \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct nev {
	uint8_t kind, type, pad;
	uint16_t id, clen;
	uint32_t len;  /* DATA: bytes joined; fixed END: body length */
	uint32_t hash; /* FNV-1a over those bytes */
} nev;

typedef struct run {
	nev *v;
	size_t n, cap;
	int rc;
	uint32_t data_in_record;
} run;

static uint32_t fnv(uint32_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static int is_fixed(unsigned t)
{
	return t == FK_BEGIN_REQUEST || t == FK_END_REQUEST || t == FK_UNKNOWN_TYPE;
}

static void add(run *r, const fk_record_event *ev)
{
	CHECK(ev->h.version == 1);
	if (ev->kind == FK_REV_DATA) {
		CHECK(!is_fixed(ev->h.type));
		CHECK(ev->len > 0);
		r->data_in_record += (uint32_t)ev->len;
		CHECK(r->data_in_record <= ev->h.content_len);
		if (r->n > 0 && r->v[r->n - 1].kind == FK_REV_DATA) {
			nev *last = &r->v[r->n - 1];
			CHECK(last->type == ev->h.type && last->id == ev->h.request_id);
			last->len += (uint32_t)ev->len;
			last->hash = fnv(last->hash, ev->data, ev->len);
			return;
		}
	} else {
		CHECK(ev->kind == FK_REV_END);
		if (is_fixed(ev->h.type)) {
			CHECK(ev->len <= 8);
			CHECK(ev->len == 0 || ev->data != NULL);
		} else {
			CHECK(r->data_in_record == ev->h.content_len);
		}
		r->data_in_record = 0;
	}
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 64;
		r->v = realloc(r->v, r->cap * sizeof *r->v);
		CHECK(r->v != NULL);
	}
	nev *e = &r->v[r->n++];
	memset(e, 0, sizeof *e);
	e->kind = (uint8_t)ev->kind;
	e->type = ev->h.type;
	e->pad = ev->h.padding_len;
	e->id = ev->h.request_id;
	e->clen = ev->h.content_len;
	e->hash = 2166136261u;
	if (ev->kind == FK_REV_DATA || is_fixed(ev->h.type)) {
		e->len = (uint32_t)ev->len;
		e->hash = fnv(e->hash, ev->data, ev->len);
	}
}

static void feed(const uint8_t *in, size_t len, size_t split, run *r)
{
	fk_reader rd;
	fk_reader_init(&rd);
	CHECK(fk_reader_idle(&rd));
	r->rc = 0;
	size_t start = 0;
	do {
		size_t plen = split && len - start > split ? split : len - start;
		const uint8_t *piece = in + start;
		size_t off = 0;
		int empty_events = 0;
		for (;;) {
			fk_record_event ev;
			size_t used = (size_t)-1;
			memset(&ev, 0, sizeof ev);
			int rc = fk_reader_feed(&rd, piece + off, plen - off, &used, &ev);
			CHECK(used <= plen - off);
			if (rc < 0) {
				CHECK(rc == FCGI_EPROTO);
				r->rc = rc;
				return;
			}
			if (rc == 0) {
				CHECK(used == plen - off);
				break;
			}
			CHECK(rc == 1);
			if (ev.kind == FK_REV_DATA)
				CHECK(ev.data >= piece + off && ev.data + ev.len <= piece + off + used);
			add(r, &ev);
			empty_events = used ? 0 : empty_events + 1;
			CHECK(empty_events < 3);
			off += used;
		}
		start += plen;
	} while (start < len);
}

static void free_run(run *r) { free(r->v); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t split = data[0];
	const uint8_t *in = data + 1;
	size_t len = size - 1;

	run whole = {0}, pieces = {0}, bytes = {0};
	feed(in, len, 0, &whole);
	feed(in, len, split, &pieces);
	feed(in, len, 1, &bytes);
	const run *others[2] = {&pieces, &bytes};
	for (int k = 0; k < 2; k++) {
		const run *o = others[k];
		CHECK(o->rc == whole.rc);
		CHECK(o->n == whole.n);
		for (size_t i = 0; i < whole.n; i++)
			CHECK(memcmp(&o->v[i], &whole.v[i], sizeof whole.v[i]) == 0);
	}
	free_run(&whole);
	free_run(&pieces);
	free_run(&bytes);
	return 0;
}
