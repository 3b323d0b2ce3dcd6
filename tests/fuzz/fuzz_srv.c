/*
 * fuzz_srv.c — libFuzzer target for the application side of a connection (fk_srv).
 *
 * Input: byte 0 picks the limits and the application's behaviour, byte 1 a split size (0:
 * all at once); the rest is what the peer sends. The target acts as the runtime does:
 * it answers every request with fk_srv_write/fk_srv_end (at the end of STDIN, or of DATA for
 * a Filter, or at once for an Authorizer or on ABORT), sometimes streams output while the
 * body arrives, and drains s->out after every call, checking that what the session sends is
 * well-formed and consistent with what it told the application.
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

/* Per-request state as the application sees it: flag bits, 0 = not in flight. */
enum { ST_FREE = 0, ST_BEGUN = 1, ST_PARAMS = 2, ST_STDIN_DONE = 4, ST_DATA_DONE = 8 };

typedef struct app {
	fk_srv s;
	fk_srv_limits lim;
	uint8_t answer_early; /* answer right after PARAMS */
	uint8_t state[65536];
	uint8_t role[65536];
	uint8_t refusal_seen[65536]; /* END_REQUEST(OVERLOADED) sent, FK_SEV_REFUSED due */
	uint32_t live;
} app;

/* Checks what the session wrote, record by record, then drops it. */
static void drain(app *a)
{
	size_t n = fk_buf_size(&a->s.out), off = 0;
	if (n == 0)
		return;
	const uint8_t *p = fk_buf_head(&a->s.out);
	while (off < n) {
		CHECK(n - off >= 8);
		CHECK(p[off] == 1);
		unsigned type = p[off + 1];
		unsigned id = (unsigned)p[off + 2] << 8 | p[off + 3];
		size_t clen = (size_t)p[off + 4] << 8 | p[off + 5];
		size_t pad = p[off + 6];
		CHECK(n - off - 8 >= clen + pad);
		const uint8_t *c = p + off + 8;
		switch (type) {
		case FK_STDOUT:
		case FK_STDERR:
			CHECK(id != 0);
			break;
		case FK_END_REQUEST:
			CHECK(id != 0 && clen == 8);
			CHECK(c[4] <= FCGI_STATUS_UNKNOWN_ROLE);
			/* A refusal is for a request the application never saw, or one the session
			 * drops by itself before its PARAMS are complete (a PARAMS limit; the
			 * FK_SEV_REFUSED event that follows tells the application). */
			if (c[4] != FCGI_STATUS_COMPLETE && a->state[id] != ST_FREE) {
				CHECK(a->state[id] == ST_BEGUN);
				CHECK(c[4] == FCGI_STATUS_OVERLOADED);
				CHECK(!a->refusal_seen[id]);
				a->refusal_seen[id] = 1;
			}
			break;
		case FK_GET_VALUES_RESULT:
			CHECK(id == 0);
			break;
		case FK_UNKNOWN_TYPE:
			CHECK(id == 0 && clen == 8);
			break;
		default:
			CHECK(!"unexpected record type in s->out");
		}
		off += 8 + clen + pad;
	}
	fk_buf_consume(&a->s.out, n);
}

static void respond(app *a, unsigned id, int end)
{
	static const char hdr[] = "Status: 200\r\nContent-Type: text/plain\r\n\r\nok\n";
	CHECK(a->state[id] != ST_FREE);
	CHECK(fk_srv_write(&a->s, id, FK_STDOUT, hdr, sizeof hdr - 1) == FCGI_OK);
	if (id & 1)
		CHECK(fk_srv_write(&a->s, id, FK_STDERR, "e", 1) == FCGI_OK);
	if (end) {
		CHECK(fk_srv_end(&a->s, id, id & 3) == FCGI_OK);
		a->state[id] = ST_FREE;
		a->live--;
		CHECK(fk_srv_end(&a->s, id, 0) < 0); /* forgotten */
	}
}

static int handle(app *a, const fk_srv_event *ev, const uint8_t *in, size_t used)
{
	unsigned id = ev->request_id;
	CHECK(id != 0);
	switch (ev->kind) {
	case FK_SEV_BEGIN:
		CHECK(a->state[id] == ST_FREE);
		CHECK(ev->role >= FCGI_ROLE_RESPONDER && ev->role <= FCGI_ROLE_FILTER);
		a->state[id] = ST_BEGUN;
		a->role[id] = (uint8_t)ev->role;
		a->live++;
		fk_srv_set_user(&a->s, id, &a->state[id]);
		break;
	case FK_SEV_PARAMS:
		CHECK(a->state[id] == ST_BEGUN);
		CHECK(ev->user == &a->state[id]);
		CHECK(ev->params != NULL);
		CHECK(ev->params->count <= a->lim.max_params_count);
		for (size_t i = 0; i < ev->params->count; i++) {
			const struct fk_param *it = &ev->params->items[i];
			CHECK(it->name[it->name_len] == '\0' && it->value[it->value_len] == '\0');
		}
		fk_params_free(ev->params);
		a->state[id] |= ST_PARAMS;
		if (a->answer_early || a->role[id] == FCGI_ROLE_AUTHORIZER)
			respond(a, id, 1);
		break;
	case FK_SEV_STDIN:
		/* Body bytes only between the end of PARAMS and the end of STDIN. */
		CHECK(a->state[id] & ST_PARAMS);
		CHECK(!(a->state[id] & ST_STDIN_DONE));
		goto slice;
	case FK_SEV_DATA:
		/* DATA: after PARAMS, before its own end (it may interleave with STDIN records).
		 * Whether a non-Filter request may see DATA at all is left to the unit tests. */
		CHECK(a->state[id] & ST_PARAMS);
		CHECK(!(a->state[id] & ST_DATA_DONE));
	slice:
		CHECK(ev->user == &a->state[id]);
		CHECK(ev->len > 0 && ev->data >= in && ev->data + ev->len <= in + used);
		if (ev->data[0] == '!')
			respond(a, id, 0); /* stream while reading */
		break;
	case FK_SEV_STDIN_END:
		CHECK(a->state[id] & ST_PARAMS);
		CHECK(!(a->state[id] & ST_STDIN_DONE));
		a->state[id] |= ST_STDIN_DONE;
		if (a->role[id] != FCGI_ROLE_FILTER || (a->state[id] & ST_DATA_DONE))
			respond(a, id, 1);
		break;
	case FK_SEV_DATA_END:
		CHECK(a->state[id] & ST_PARAMS);
		CHECK(!(a->state[id] & ST_DATA_DONE));
		a->state[id] |= ST_DATA_DONE;
		if (a->role[id] == FCGI_ROLE_FILTER && (a->state[id] & ST_STDIN_DONE))
			respond(a, id, 1);
		break;
	case FK_SEV_REFUSED:
		CHECK(a->state[id] == ST_BEGUN);
		CHECK(a->refusal_seen[id]);
		CHECK(ev->user == &a->state[id]);
		a->refusal_seen[id] = 0;
		a->state[id] = ST_FREE;
		a->live--;
		break;
	case FK_SEV_ABORT:
		CHECK(a->state[id] != ST_FREE);
		CHECK(ev->user == &a->state[id]);
		respond(a, id, 1);
		break;
	default:
		CHECK(!"unknown event kind");
	}
	CHECK(fk_srv_inflight(&a->s) == a->live);
	CHECK(a->live <= a->lim.max_reqs_per_conn);
	if (!a->lim.mpxs)
		CHECK(a->live <= 1);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	static const uint32_t reqs[4] = {1, 2, 4, 256};
	static const uint32_t pbytes[4] = {16, 256, 4096, 65536};
	static const uint32_t pcount[4] = {1, 4, 64, 1024};
	app *a = calloc(1, sizeof *a);
	CHECK(a != NULL);
	uint8_t cfg = data[0];
	size_t split = data[1];
	a->lim.max_reqs_per_conn = reqs[cfg & 3];
	a->lim.mpxs = (cfg >> 2) & 1;
	a->lim.max_params_bytes = pbytes[(cfg >> 3) & 3];
	a->lim.max_params_count = pcount[(cfg >> 5) & 3];
	a->lim.advertise_max_conns = 10;
	a->lim.advertise_max_reqs = 4294967295u;
	a->answer_early = cfg >> 7;
	fk_srv_init(&a->s, &a->lim);

	const uint8_t *in = data + 2;
	size_t len = size - 2, start = 0;
	int stop = 0;
	while (!stop && start < len) {
		size_t plen = split && len - start > split ? split : len - start;
		const uint8_t *piece = in + start;
		size_t off = 0;
		int empty_events = 0;
		for (;;) {
			fk_srv_event ev;
			size_t used = (size_t)-1;
			memset(&ev, 0, sizeof ev);
			int rc = fk_srv_feed(&a->s, piece + off, plen - off, &used, &ev);
			CHECK(used <= plen - off);
			if (rc < 0) {
				CHECK(rc == FCGI_EPROTO || rc == FCGI_ELIMIT || rc == FCGI_ENOMEM);
				stop = 1;
				break;
			}
			if (rc == 0) {
				CHECK(used == plen - off);
				drain(a);
				CHECK(fk_srv_inflight(&a->s) == a->live);
				break;
			}
			CHECK(rc == 1);
			drain(a);
			handle(a, &ev, piece + off, used);
			drain(a);
			empty_events = used ? 0 : empty_events + 1;
			CHECK(empty_events < 3);
			off += used;
		}
		start += plen;
	}
	/* Whatever is still in flight is answered, as a runtime closing down would. */
	if (!stop) {
		for (unsigned id = 1; id < 65536 && a->live > 0; id++)
			if (a->state[id] != ST_FREE)
				respond(a, id, 1);
		drain(a);
		CHECK(fk_srv_inflight(&a->s) == 0);
	}
	fk_srv_free(&a->s);
	free(a);
	return 0;
}
