/*
 * test_failalloc.c — the codec's unwind paths under a failing allocator.
 *
 * A whole fk_srv session (GET_VALUES, an unknown management type, a refused role, a
 * Responder request with many params and a body, several requests in flight, an abort, a
 * request refused for PARAMS past the limit, responses written and ended) is run again and again with the n-th allocation failing,
 * n = 1, 2, 3, ... until a run makes fewer than n allocations. Every run must stop with
 * FCGI_ENOMEM (or succeed with correct output, if the library recovered by itself), never
 * crash, and free every block (checked by the helper's live count here, and by
 * LeakSanitizer in the sanitizer build). The same is done with a "sticky" failure (every
 * call from n on fails), for fk_params_parse alone, and for fk_encode_stream, whose
 * contract says the buffer is unchanged on FCGI_ENOMEM.
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
#include "helpers/failalloc.h"
#include "util/buf.h"

/* ------------------------------------------------------------------ wire writer (libc) */

#include "helpers/wirebuf.h"


static void wb_rec(wb *w, unsigned type, unsigned id, const void *c, size_t clen, unsigned pad)
{
	uint8_t h[8] = {1, (uint8_t)type, (uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(clen >> 8),
	                (uint8_t)clen, (uint8_t)pad, 0};
	static const uint8_t zeros[255];
	wb_put(w, h, 8);
	wb_put(w, c, clen);
	wb_put(w, zeros, pad);
}

static void wb_stream(wb *w, unsigned type, unsigned id, const uint8_t *c, size_t len, size_t chunk)
{
	while (len > 0) {
		size_t k = len < chunk ? len : chunk;
		wb_rec(w, type, id, c, k, (unsigned)(-k & 7));
		c += k;
		len -= k;
	}
	wb_rec(w, type, id, NULL, 0, 0);
}

static void wb_begin(wb *w, unsigned id, unsigned role, unsigned flags)
{
	uint8_t body[8] = {(uint8_t)(role >> 8), (uint8_t)role, (uint8_t)flags, 0, 0, 0, 0, 0};
	wb_rec(w, FK_BEGIN_REQUEST, id, body, 8, 0);
}

static void wb_len(wb *w, size_t l)
{
	uint8_t b[4] = {(uint8_t)((l >> 24) | 0x80), (uint8_t)(l >> 16), (uint8_t)(l >> 8),
	                (uint8_t)l};
	if (l < 128)
		wb_put(w, b + 3, 1);
	else
		wb_put(w, b, 4);
}

static void wb_pair(wb *w, const void *n, size_t nl, const void *v, size_t vl)
{
	wb_len(w, nl);
	wb_len(w, vl);
	wb_put(w, n, nl);
	wb_put(w, v, vl);
}

/* ------------------------------------------------------------------ the scenario */

enum { NPARAMS = 40, BODY_LEN = 10000, RESP_LEN = 70000 };

typedef struct fixture {
	wb input;      /* what the web server sends */
	wb params;     /* request 1's PARAMS body */
	uint8_t *body; /* request 1's STDIN */
	uint8_t *resp; /* request 1's STDOUT */
} fixture;

static fixture fx;

static void param_name(char *buf, size_t size, int i) { snprintf(buf, size, "HTTP_X_PARAM_%d", i); }

static int setup(void **state)
{
	(void)state;
	memset(&fx, 0, sizeof fx);
	fx.body = malloc(BODY_LEN);
	fx.resp = malloc(RESP_LEN);
	assert_non_null(fx.body);
	assert_non_null(fx.resp);
	for (size_t i = 0; i < BODY_LEN; i++)
		fx.body[i] = (uint8_t)(i * 31 + 7);
	for (size_t i = 0; i < RESP_LEN; i++)
		fx.resp[i] = (uint8_t)(i * 17 + 3);

	for (int i = 0; i < NPARAMS; i++) {
		char name[32], value[300];
		param_name(name, sizeof name, i);
		size_t vl = (size_t)(i % 5 == 0 ? 200 + i : i); /* some 4-byte lengths */
		memset(value, 'a' + i % 26, vl);
		wb_pair(&fx.params, name, strlen(name), value, vl);
	}

	wb *w = &fx.input;
	wb gv = {0};
	wb_pair(&gv, FK_NAME_MAX_CONNS, strlen(FK_NAME_MAX_CONNS), "", 0);
	wb_pair(&gv, FK_NAME_MAX_REQS, strlen(FK_NAME_MAX_REQS), "", 0);
	wb_pair(&gv, FK_NAME_MPXS_CONNS, strlen(FK_NAME_MPXS_CONNS), "", 0);
	wb_pair(&gv, "UNKNOWN", 7, "", 0);
	wb_rec(w, FK_GET_VALUES, 0, gv.d, gv.n, 0);
	wb_free(&gv);
	wb_rec(w, 12, 0, "x", 1, 7);
	wb_begin(w, 2, 9, FK_KEEP_CONN); /* unknown role */
	wb_begin(w, 1, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	for (unsigned id = 3; id <= 6; id++)
		wb_begin(w, id, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb_stream(w, FK_PARAMS, 1, fx.params.d, fx.params.n, 100);
	for (unsigned id = 3; id <= 6; id++)
		wb_stream(w, FK_PARAMS, id, (const uint8_t *)"\x01\x01" "AB", 4, 100);
	wb_rec(w, FK_ABORT_REQUEST, 4, NULL, 0, 0);
	/* Request 7's PARAMS pass max_params_bytes: refused by the session. */
	wb_begin(w, 7, FCGI_ROLE_RESPONDER, FK_KEEP_CONN);
	wb big = {0};
	char bigv[250];
	memset(bigv, 'b', sizeof bigv);
	for (int i = 0; i < 40; i++) {
		char name[16];
		snprintf(name, sizeof name, "BIG%d", i);
		wb_pair(&big, name, strlen(name), bigv, sizeof bigv);
	}
	wb_stream(w, FK_PARAMS, 7, big.d, big.n, 4000);
	wb_free(&big);
	wb_stream(w, FK_STDIN, 7, fx.body, 100, 4000);
	wb_stream(w, FK_STDIN, 1, fx.body, BODY_LEN, 3000);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	wb_free(&fx.input);
	wb_free(&fx.params);
	free(fx.body);
	free(fx.resp);
	return 0;
}

typedef struct outcome {
	int begins, params_ok, aborts, stdin_end, refused;
	size_t stdin_len;
	int stdin_ok;
} outcome;

/* Checks request 1's params against the fixture. */
static int params_match(const fk_params *p)
{
	if (p == NULL || p->count != NPARAMS)
		return 0;
	size_t off = 0;
	for (int i = 0; i < NPARAMS; i++) {
		char name[32];
		param_name(name, sizeof name, i);
		if (strcmp(p->items[i].name, name) != 0)
			return 0;
		size_t vl = (size_t)(i % 5 == 0 ? 200 + i : i);
		if (p->items[i].value_len != vl || p->items[i].value[vl] != '\0')
			return 0;
		for (size_t k = 0; k < vl; k++)
			if (p->items[i].value[k] != 'a' + i % 26)
				return 0;
		off++;
	}
	return off == NPARAMS;
}

/* Runs the session; returns FCGI_OK or the first error. With the allocator failing, every
 * path out of here must leave nothing allocated. */
static int run_scenario(size_t step, outcome *oc, int *out_checked)
{
	fk_srv_limits lim;
	memset(&lim, 0, sizeof lim);
	lim.max_reqs_per_conn = 16;
	lim.max_params_bytes = 8192;
	lim.max_params_count = 512;
	lim.advertise_max_conns = 10;
	lim.advertise_max_reqs = 20;
	lim.mpxs = 1;
	memset(oc, 0, sizeof *oc);
	oc->stdin_ok = 1;
	*out_checked = 0;

	fk_srv s;
	fk_srv_init(&s, &lim);
	fk_buf enc = {0};
	fk_params *direct = NULL;
	int rc = 0;
	const uint8_t *in = fx.input.d;
	size_t len = fx.input.n;
	size_t off = 0, avail = step ? (len < step ? len : step) : len;
	size_t outbytes = 0;

	for (;;) {
		fk_srv_event ev;
		size_t used = 0;
		memset(&ev, 0, sizeof ev);
		rc = fk_srv_feed(&s, in + off, avail - off, &used, &ev);
		if (rc < 0)
			goto out;
		off += used;
		if (rc == 1) {
			switch (ev.kind) {
			case FK_SEV_BEGIN:
				oc->begins++;
				break;
			case FK_SEV_PARAMS:
				if (ev.request_id == 1 && params_match(ev.params))
					oc->params_ok++;
				fk_params_free(ev.params);
				break;
			case FK_SEV_STDIN:
				if (ev.request_id != 1 || oc->stdin_len + ev.len > BODY_LEN ||
				    memcmp(ev.data, fx.body + oc->stdin_len, ev.len) != 0)
					oc->stdin_ok = 0;
				else
					oc->stdin_len += ev.len;
				break;
			case FK_SEV_STDIN_END:
				if (ev.request_id == 1)
					oc->stdin_end++;
				break;
			case FK_SEV_REFUSED:
				if (ev.request_id == 7)
					oc->refused++;
				break;
			case FK_SEV_ABORT:
				oc->aborts++;
				rc = fk_srv_end(&s, ev.request_id, 1);
				if (rc < 0)
					goto out;
				break;
			default:
				break;
			}
			continue;
		}
		/* The runtime drains s->out as the socket allows. */
		outbytes += fk_buf_size(&s.out);
		fk_buf_consume(&s.out, fk_buf_size(&s.out));
		if (avail == len)
			break;
		avail = step ? (len - avail < step ? len : avail + step) : len;
	}

	/* Responses: request 1 gets a big STDOUT and a line of STDERR, the others an empty
	 * response. */
	rc = fk_srv_write(&s, 1, FK_STDOUT, fx.resp, RESP_LEN);
	if (rc < 0)
		goto out;
	rc = fk_srv_write(&s, 1, FK_STDERR, "log line\n", 9);
	if (rc < 0)
		goto out;
	rc = fk_srv_end(&s, 1, 0);
	if (rc < 0)
		goto out;
	for (unsigned id = 3; id <= 6; id++) {
		if (id == 4)
			continue;
		rc = fk_srv_end(&s, id, 0);
		if (rc < 0)
			goto out;
	}
	outbytes += fk_buf_size(&s.out);

	/* The primitives that allocate. */
	rc = fk_params_parse(fx.params.d, fx.params.n, 512, &direct);
	if (rc < 0)
		goto out;
	if (!params_match(direct))
		oc->params_ok = -100;
	for (int i = 0; i < 3; i++) {
		size_t before = fk_buf_size(&enc);
		rc = fk_encode_stream(&enc, FK_STDOUT, 1, fx.resp, RESP_LEN / (size_t)(3 - i));
		if (rc < 0) {
			assert_int_equal(fk_buf_size(&enc), before); /* "b unchanged" */
			goto out;
		}
	}
	/* Only a complete run gets here: every byte the session produced was accounted for.
	 * GET_VALUES_RESULT, UNKNOWN_TYPE, END_REQUEST(UNKNOWN_ROLE) and request 4's end were
	 * drained during the loop; request 1's response and the three empty ones are left. */
	assert_true(outbytes > (size_t)RESP_LEN);
	*out_checked = 1;
	rc = FCGI_OK;
out:
	fk_params_free(direct);
	fk_buf_free(&enc);
	fk_srv_free(&s);
	return rc;
}

static void check_complete(const outcome *oc, int checked)
{
	assert_true(checked);
	assert_int_equal(oc->begins, 6); /* 1, 3, 4, 5, 6, 7; not 2 (unknown role) */
	assert_int_equal(oc->refused, 1);
	assert_int_equal(oc->params_ok, 1);
	assert_int_equal(oc->aborts, 1);
	assert_true(oc->stdin_ok);
	assert_int_equal(oc->stdin_len, BODY_LEN);
	assert_int_equal(oc->stdin_end, 1);
}

static void sweep(size_t step, int sticky)
{
	/* Reference run with the counting allocator and no failure. */
	outcome oc;
	int checked;
	failalloc_install(0, 0);
	int rc = run_scenario(step, &oc, &checked);
	failalloc_uninstall();
	assert_int_equal(rc, FCGI_OK);
	check_complete(&oc, checked);
	assert_int_equal(failalloc_live(), 0);
	unsigned long total = failalloc_calls();
	assert_true(total > 0);
	printf("# step %zu: %lu allocation calls per run\n", step, total);

	unsigned long n;
	unsigned long enomem = 0, recovered = 0;
	for (n = 1; n < 100000; n++) {
		failalloc_install(n, sticky);
		rc = run_scenario(step, &oc, &checked);
		failalloc_uninstall();
		unsigned long failures = failalloc_failures();
		if (failalloc_live() != 0)
			fail_msg("fail at %lu (sticky %d, step %zu): %ld blocks leaked", n, sticky, step,
			         failalloc_live());
		if (failures == 0) {
			assert_int_equal(rc, FCGI_OK);
			check_complete(&oc, checked);
			break;
		}
		if (rc == FCGI_ENOMEM) {
			enomem++;
		} else if (rc == FCGI_OK) {
			/* The library absorbed the failure: the results must still be right. */
			check_complete(&oc, checked);
			recovered++;
		} else {
			fail_msg("fail at %lu (sticky %d, step %zu): got %d (%s), want FCGI_ENOMEM", n,
			         sticky, step, rc, fcgi_err_name(rc));
		}
	}
	assert_true(n < 100000);
	assert_true(n > total); /* every call site was failed once */
	printf("# step %zu sticky %d: %lu runs, %lu FCGI_ENOMEM, %lu recovered\n", step, sticky,
	       n - 1, enomem, recovered);
}

static void test_scenario_fail_once_whole(void **state)
{
	(void)state;
	sweep(0, 0);
}

static void test_scenario_fail_once_split(void **state)
{
	(void)state;
	sweep(7, 0);
}

static void test_scenario_fail_sticky(void **state)
{
	(void)state;
	sweep(0, 1);
	sweep(1, 1);
}

static void test_params_parse_failures(void **state)
{
	(void)state;
	for (unsigned long n = 1;; n++) {
		fk_params *p = NULL;
		failalloc_install(n, 0);
		int rc = fk_params_parse(fx.params.d, fx.params.n, 512, &p);
		unsigned long failures = failalloc_failures();
		if (rc == FCGI_OK) {
			assert_true(params_match(p));
			fk_params_free(p);
		} else {
			assert_int_equal(rc, FCGI_ENOMEM);
		}
		failalloc_uninstall();
		assert_int_equal(failalloc_live(), 0);
		if (failures == 0)
			break;
		assert_true(n < 1000);
	}
}

static void test_encode_stream_unchanged(void **state)
{
	(void)state;
	for (unsigned long n = 1;; n++) {
		fk_buf b = {0};
		failalloc_install(0, 0);
		assert_int_equal(fk_buf_append(&b, "keep me", 7), FCGI_OK);
		failalloc_install(n, 0);
		int rc = fk_encode_stream(&b, FK_STDOUT, 3, fx.resp, RESP_LEN);
		unsigned long failures = failalloc_failures();
		if (rc == FCGI_OK) {
			assert_int_equal(fk_buf_size(&b), 7 + fk_stream_size(RESP_LEN));
		} else {
			assert_int_equal(rc, FCGI_ENOMEM);
			assert_int_equal(fk_buf_size(&b), 7);
		}
		assert_memory_equal(fk_buf_head(&b), "keep me", 7);
		fk_buf_free(&b);
		failalloc_uninstall();
		if (failures == 0)
			break;
		assert_true(n < 1000);
	}
}

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scenario_fail_once_whole),
		cmocka_unit_test(test_scenario_fail_once_split),
		cmocka_unit_test(test_scenario_fail_sticky),
		cmocka_unit_test(test_params_parse_failures),
		cmocka_unit_test(test_encode_stream_unchanged),
	};
	return cmocka_run_group_tests_name("failalloc", tests, setup, teardown);
}
