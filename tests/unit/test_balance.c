/*
 * test_balance.c — the gateway's balancing and backend-health policy (lib/balance): exact
 * smooth-WRR sequences, weighted least-outstanding under acquire/release interleavings,
 * capacity, retry exclusion, consistent-hash stability and ~1/N remapping, the health state
 * machine driven with made-up times (window, doubling backoff and its cap, half-open single
 * trial, probes), the all-down fallback, OVERLOADED, the waiting-queue verdicts, and the
 * group's allocation unwinds under a failing allocator. Pure functions: no sockets, no clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "balance/balance.h"
#include "fcgikit.h"
#include "helpers/failalloc.h"

/* ---------------------------------------------------------------- helpers */

/* A group of n backends with the given weights (NULL = all 1) and configured capacities
 * (NULL = unlimited), ids "10.0.0.<i>:9000". */
static fk_bal_group *mk(const fk_bal_config *cfg, size_t n, const unsigned *w, const unsigned *cap)
{
	static char ids[FK_BAL_MAX_BACKENDS][48];
	static fk_bal_backend_conf conf[FK_BAL_MAX_BACKENDS];
	for (size_t i = 0; i < n; i++) {
		snprintf(ids[i], sizeof ids[i], "10.0.%zu.%zu:9000", i / 256, i % 256);
		conf[i] = (fk_bal_backend_conf){ids[i], strlen(ids[i]), w ? w[i] : 1,
		                                cap ? cap[i] : 0};
	}
	fk_bal_group *g = NULL;
	int rc = fk_bal_group_new(&g, cfg, conf, n);
	if (rc != FCGI_OK)
		fail_msg("fk_bal_group_new = %s", fcgi_err_name(rc));
	return g;
}

static fk_bal_config cfg_with(fk_bal_policy p)
{
	fk_bal_config c;
	fk_bal_config_default(&c);
	c.policy = p;
	return c;
}

/* Ejects idx at `now` with cfg.fails failures at the same instant. */
static void eject_now(fk_bal_group *g, int idx, int64_t now)
{
	for (unsigned i = 0; i < g->cfg.fails; i++)
		fk_bal_report_failure(g, idx, now, FK_BAL_FAIL_CONNECT);
	assert_int_equal(g->b[idx].state, FK_BAL_DOWN);
}

/* Small deterministic PRNG for the property tests (xorshift64*). */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint32_t rnd(uint32_t bound)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * UINT64_C(2685821657736338717)) >> 32) % bound;
}

static void key_of(char *buf, size_t size, int k) { snprintf(buf, size, "/user/%d/profile", k); }

static int pick_key(fk_bal_group *g, int k, int64_t now)
{
	char key[64];
	key_of(key, sizeof key, k);
	return fk_bal_pick_hash(g, now, key, strlen(key), NULL);
}

/* ---------------------------------------------------------------- group, names */

static void test_defaults_and_names(void **state)
{
	(void)state;
	fk_bal_config c;
	fk_bal_config_default(&c);
	assert_int_equal(c.policy, FK_BAL_WRR);
	assert_int_equal(c.fails, 3);
	assert_int_equal(c.fail_window_ms, 10000);
	assert_int_equal(c.backoff_base_ms, 1000);
	assert_int_equal(c.backoff_max_ms, 60000);
	assert_int_equal(c.overload_ms, 1000);
	assert_int_equal(c.hash_vnodes, 100);
	assert_int_equal(c.overload_lowers_capacity, 1);
	assert_int_equal(c.all_down_fallback, 0);
	assert_string_equal(fk_bal_state_name(FK_BAL_UP), "UP");
	assert_string_equal(fk_bal_state_name(FK_BAL_DOWN), "DOWN");
	assert_string_equal(fk_bal_state_name(FK_BAL_PROBING), "PROBING");
	assert_string_equal(fk_bal_state_name((fk_bal_state)42), "?");
	assert_string_equal(fk_bal_fail_kind_name(FK_BAL_FAIL_CONNECT), "connect");
	assert_string_equal(fk_bal_fail_kind_name(FK_BAL_FAIL_TIMEOUT), "timeout");
	assert_string_equal(fk_bal_fail_kind_name(FK_BAL_FAIL_RESET), "reset");
	assert_string_equal(fk_bal_fail_kind_name(FK_BAL_FAIL_PROTOCOL), "protocol");
	assert_string_equal(fk_bal_fail_kind_name(FK_BAL_FAIL_KINDS), "?");
}

static void test_group_new_validates(void **state)
{
	(void)state;
	fk_bal_backend_conf one[2] = {{"a", 1, 1, 0}, {"b", 1, 1, 0}};
	fk_bal_group *g = (fk_bal_group *)one;
	assert_int_equal(fk_bal_group_new(&g, NULL, one, 0), FCGI_EINVAL);
	assert_null(g);
	assert_int_equal(fk_bal_group_new(&g, NULL, NULL, 1), FCGI_EINVAL);
	assert_int_equal(fk_bal_group_new(&g, NULL, one, FK_BAL_MAX_BACKENDS + 1), FCGI_EINVAL);
	assert_int_equal(fk_bal_group_new(NULL, NULL, one, 1), FCGI_EINVAL);
	fk_bal_backend_conf heavy = {"a", 1, FK_BAL_WEIGHT_MAX + 1, 0};
	assert_int_equal(fk_bal_group_new(&g, NULL, &heavy, 1), FCGI_EINVAL);
	fk_bal_backend_conf noid = {NULL, 3, 1, 0};
	assert_int_equal(fk_bal_group_new(&g, NULL, &noid, 1), FCGI_EINVAL);

	fk_bal_config c;
	fk_bal_config_default(&c);
	c.fails = FK_BAL_MAX_FAILS + 1;
	assert_int_equal(fk_bal_group_new(&g, &c, one, 2), FCGI_EINVAL);
	fk_bal_config_default(&c);
	c.fail_window_ms = 0;
	assert_int_equal(fk_bal_group_new(&g, &c, one, 2), FCGI_EINVAL);
	fk_bal_config_default(&c);
	c.backoff_base_ms = 0;
	assert_int_equal(fk_bal_group_new(&g, &c, one, 2), FCGI_EINVAL);
	fk_bal_config_default(&c);
	c.backoff_max_ms = 999;
	assert_int_equal(fk_bal_group_new(&g, &c, one, 2), FCGI_EINVAL);
	fk_bal_config_default(&c);
	c.overload_ms = -1;
	assert_int_equal(fk_bal_group_new(&g, &c, one, 2), FCGI_EINVAL);
	fk_bal_config_default(&c);
	c.policy = (fk_bal_policy)7;
	assert_int_equal(fk_bal_group_new(&g, &c, one, 2), FCGI_EINVAL);
	assert_null(g);

	/* Weight 0 is taken as 1; everything starts UP, enabled and idle. */
	fk_bal_backend_conf zero[2] = {{NULL, 0, 0, 5}, {NULL, 0, 7, 0}};
	assert_int_equal(fk_bal_group_new(&g, NULL, zero, 2), FCGI_OK);
	assert_int_equal(g->n, 2);
	assert_int_equal(g->b[0].weight, 1);
	assert_int_equal(g->b[1].weight, 7);
	assert_int_equal(fk_bal_capacity(g, 0), 5);
	assert_int_equal(fk_bal_capacity(g, 1), 0);
	assert_true(g->b[0].id_hash != g->b[1].id_hash);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(g->b[i].state, FK_BAL_UP);
		assert_int_equal(g->b[i].enabled, 1);
		assert_int_equal(g->b[i].outstanding, 0);
	}
	assert_int_equal(g->nring, 800); /* 100 points per unit of weight */
	for (size_t i = 1; i < g->nring; i++)
		assert_true(g->ring[i - 1].hash <= g->ring[i].hash);
	fk_bal_group_free(g);
	fk_bal_group_free(NULL);
}

static void test_bad_index_is_harmless(void **state)
{
	(void)state;
	fk_bal_group *g = mk(NULL, 2, NULL, NULL);
	fk_bal_acquire(g, -1);
	fk_bal_acquire(g, 2);
	fk_bal_release(g, 5);
	fk_bal_release(g, 0); /* never below 0 */
	assert_int_equal(g->b[0].outstanding, 0);
	fk_bal_report_failure(g, 2, 0, FK_BAL_FAIL_CONNECT);
	fk_bal_report_success(g, -3, 0);
	fk_bal_report_overloaded(g, 9, 0);
	fk_bal_probe_result(g, 9, 0, 0);
	fk_bal_set_capacity(g, 2, 4, FK_BAL_CAP_LEARNED);
	fk_bal_set_enabled(g, 2, 0);
	assert_int_equal(fk_bal_capacity(g, 2), 0);
	assert_int_equal(fk_bal_set_weight(g, 2, 3), FCGI_EINVAL);
	assert_int_equal(fk_bal_set_weight(g, 0, 0), FCGI_EINVAL);
	assert_int_equal(fk_bal_set_weight(g, 0, FK_BAL_WEIGHT_MAX + 1), FCGI_EINVAL);
	assert_int_equal(fk_bal_backend_state(g, 2, 0), FK_BAL_DOWN);
	assert_int_equal(fk_bal_pick_hash(g, 0, NULL, 3, NULL), -1);
	assert_int_equal(fk_bal_pick_wrr(NULL, 0, NULL), -1);
	assert_int_equal(fk_bal_pick_least(NULL, 0, NULL), -1);
	assert_int_equal(fk_bal_pick(NULL, 0, NULL, 0, NULL), -1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(g->b[i].state, FK_BAL_UP);
		assert_int_equal(g->b[i].fails_total, 0);
		assert_int_equal(g->b[i].outstanding, 0);
	}
	fk_bal_group_free(g);
}

static void test_tried_set(void **state)
{
	(void)state;
	fk_bal_tried t = {{0}};
	assert_false(fk_bal_tried_has(&t, 0));
	assert_false(fk_bal_tried_has(NULL, 0));
	fk_bal_tried_add(&t, 0);
	fk_bal_tried_add(&t, 63);
	fk_bal_tried_add(&t, 64);
	fk_bal_tried_add(&t, FK_BAL_MAX_BACKENDS - 1);
	fk_bal_tried_add(&t, FK_BAL_MAX_BACKENDS); /* ignored */
	fk_bal_tried_add(&t, -1);                  /* ignored */
	assert_true(fk_bal_tried_has(&t, 0));
	assert_true(fk_bal_tried_has(&t, 63));
	assert_true(fk_bal_tried_has(&t, 64));
	assert_true(fk_bal_tried_has(&t, FK_BAL_MAX_BACKENDS - 1));
	assert_false(fk_bal_tried_has(&t, 1));
	assert_false(fk_bal_tried_has(&t, 65));
	assert_false(fk_bal_tried_has(&t, FK_BAL_MAX_BACKENDS));
	assert_false(fk_bal_tried_has(&t, -1));
	fk_bal_tried_clear(&t);
	for (int i = 0; i < FK_BAL_MAX_BACKENDS; i++)
		assert_false(fk_bal_tried_has(&t, i));
}

/* ---------------------------------------------------------------- smooth WRR */

static void test_wrr_exact_5_1_1(void **state)
{
	(void)state;
	static const unsigned w[] = {5, 1, 1};
	fk_bal_group *g = mk(NULL, 3, w, NULL);
	static const char want[] = "aabacaa";
	for (int cycle = 0; cycle < 20; cycle++)
		for (int k = 0; k < 7; k++) {
			int got = fk_bal_pick_wrr(g, 0, NULL);
			if (got != want[k] - 'a')
				fail_msg("cycle %d pick %d: got %c, want %c", cycle, k, 'a' + got,
				         want[k]);
		}
	/* The accumulators return to zero at the end of every cycle. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(g->b[i].wrr_current, 0);
	fk_bal_group_free(g);
}

static void test_wrr_exact_sequences(void **state)
{
	(void)state;
	static const struct {
		unsigned n;
		unsigned w[4];
		const char *seq;
	} cases[] = {
	        {3, {1, 1, 1}, "abcabcabc"},
	        {2, {2, 1}, "abaaba"},
	        {2,
	         {3, 2},
	         "ababa"
	         "ababa"},
	        {3, {4, 2, 1}, "abacaba"},
	        {4, {1, 2, 3, 4}, "dcbdacdbcd"},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		fk_bal_group *g = mk(NULL, cases[c].n, cases[c].w, NULL);
		for (size_t k = 0; cases[c].seq[k]; k++) {
			int got = fk_bal_pick(g, 0, NULL, 0, NULL); /* WRR is the default policy */
			if (got != cases[c].seq[k] - 'a')
				fail_msg("case %zu pick %zu: got %c, want %c", c, k, 'a' + got,
				         cases[c].seq[k]);
		}
		fk_bal_group_free(g);
	}
}

static void test_wrr_distribution(void **state)
{
	(void)state;
	static const unsigned w[] = {1, 10, 100, 1000, 37};
	fk_bal_group *g = mk(NULL, 5, w, NULL);
	unsigned total = 1 + 10 + 100 + 1000 + 37;
	unsigned long count[5] = {0};
	for (unsigned i = 0; i < total * 7; i++)
		count[fk_bal_pick_wrr(g, 0, NULL)]++;
	for (int i = 0; i < 5; i++)
		assert_int_equal(count[i], w[i] * 7); /* exact, whole cycles */
	/* Smoothness: in any window of `total` consecutive picks each backend's count is within
	 * one of its weight, so no backend sees a burst. */
	int *seq = malloc(sizeof(int) * total * 2);
	assert_non_null(seq);
	for (unsigned i = 0; i < total * 2; i++)
		seq[i] = fk_bal_pick_wrr(g, 0, NULL);
	for (unsigned s = 0; s + total <= total * 2; s += 97) {
		unsigned long c[5] = {0};
		for (unsigned i = s; i < s + total; i++)
			c[seq[i]]++;
		for (int i = 0; i < 5; i++)
			assert_true(c[i] + 1 >= w[i] && c[i] <= w[i] + 1);
	}
	free(seq);
	fk_bal_group_free(g);
}

static void test_wrr_skips_and_rejoins(void **state)
{
	(void)state;
	static const unsigned w[] = {5, 1, 1};
	fk_bal_group *g = mk(NULL, 3, w, NULL);
	fk_bal_set_enabled(g, 0, 0);
	for (int k = 0; k < 10; k++) /* b and c alternate while a drains */
		assert_int_equal(fk_bal_pick_wrr(g, 0, NULL), 1 + k % 2);
	fk_bal_set_enabled(g, 0, 1);
	/* a rejoins with its old (zero) accumulator: its share comes back over the next cycle
	 * without a catch-up burst; whole cycles keep the exact 5:1:1 split. */
	unsigned long count[3] = {0};
	for (int k = 0; k < 70; k++)
		count[fk_bal_pick_wrr(g, 0, NULL)]++;
	assert_int_equal(count[0], 50);
	assert_int_equal(count[1], 10);
	assert_int_equal(count[2], 10);
	fk_bal_group_free(g);
}

static void test_set_weight(void **state)
{
	(void)state;
	static const unsigned w[] = {1, 1};
	fk_bal_group *g = mk(NULL, 2, w, NULL);
	assert_int_equal(fk_bal_pick_wrr(g, 0, NULL), 0);
	assert_int_equal(fk_bal_set_weight(g, 1, 3), FCGI_OK);
	assert_int_equal(g->b[1].weight, 3);
	assert_int_equal(g->nring, 400);
	/* Accumulators reset: the new proportions apply from the next pick. */
	static const char want[] = "babb"
	                           "babb";
	for (int k = 0; want[k]; k++)
		assert_int_equal(fk_bal_pick_wrr(g, 0, NULL), want[k] - 'a');
	fk_bal_group_free(g);
}

/* ---------------------------------------------------------------- least outstanding */

static void test_least_ties_alternate(void **state)
{
	(void)state;
	fk_bal_config c = cfg_with(FK_BAL_LEAST);
	fk_bal_group *g = mk(&c, 3, NULL, NULL);
	/* Idle backends, each request over before the next: strict rotation. */
	for (int k = 0; k < 12; k++) {
		int i = fk_bal_pick(g, 0, NULL, 0, NULL);
		assert_int_equal(i, k % 3);
		fk_bal_acquire(g, i);
		fk_bal_release(g, i);
	}
	/* Held requests spread evenly. */
	for (int k = 0; k < 30; k++)
		fk_bal_acquire(g, fk_bal_pick_least(g, 0, NULL));
	for (int i = 0; i < 3; i++)
		assert_int_equal(g->b[i].outstanding, 10);
	/* A backend whose requests finish takes the next ones. */
	fk_bal_release(g, 1);
	fk_bal_release(g, 1);
	assert_int_equal(fk_bal_pick_least(g, 0, NULL), 1);
	fk_bal_acquire(g, 1);
	assert_int_equal(fk_bal_pick_least(g, 0, NULL), 1);
	fk_bal_acquire(g, 1);
	fk_bal_group_free(g);
}

static void test_least_weighted(void **state)
{
	(void)state;
	static const unsigned w[] = {3, 1};
	fk_bal_config c = cfg_with(FK_BAL_LEAST);
	fk_bal_group *g = mk(&c, 2, w, NULL);
	for (int k = 0; k < 400; k++) {
		fk_bal_acquire(g, fk_bal_pick_least(g, 0, NULL));
		/* outstanding/weight never differ by more than one request's worth */
		long a = (long)g->b[0].outstanding, b = (long)g->b[1].outstanding;
		assert_true(labs(a - 3 * b) <= 3);
	}
	assert_int_equal(g->b[0].outstanding, 300);
	assert_int_equal(g->b[1].outstanding, 100);
	fk_bal_group_free(g);
}

/* Random acquire/release interleavings: every pick has the minimal outstanding/weight among
 * the backends that may take a request, and capacity is never exceeded. */
static void test_least_interleavings(void **state)
{
	(void)state;
	static const unsigned w[] = {1, 2, 3, 5, 8};
	static const unsigned cap[] = {3, 0, 6, 9, 4};
	fk_bal_config c = cfg_with(FK_BAL_LEAST);
	fk_bal_group *g = mk(&c, 5, w, cap);
	unsigned picks[5] = {0};
	for (int step = 0; step < 20000; step++) {
		if (rnd(100) < 55) {
			int i = fk_bal_pick_least(g, 0, NULL);
			/* brute-force check */
			int any = 0;
			for (int j = 0; j < 5; j++) {
				unsigned cp = fk_bal_capacity(g, j);
				if (cp && g->b[j].outstanding >= cp)
					continue;
				any = 1;
				if (i >= 0)
					assert_true((uint64_t)g->b[i].outstanding * w[j] <=
					            (uint64_t)g->b[j].outstanding * w[i]);
			}
			assert_int_equal(i >= 0, any);
			if (i >= 0) {
				fk_bal_acquire(g, i);
				picks[i]++;
			}
		} else {
			int j = (int)rnd(5);
			fk_bal_release(g, j);
		}
		for (int j = 0; j < 5; j++)
			if (cap[j])
				assert_true(g->b[j].outstanding <= cap[j]);
	}
	for (int j = 0; j < 5; j++)
		assert_true(picks[j] > 0);
	fk_bal_group_free(g);
}

/* ---------------------------------------------------------------- capacity, exclusion */

static void test_capacity_every_policy(void **state)
{
	(void)state;
	static const unsigned cap[] = {2, 1, 3};
	for (int p = FK_BAL_WRR; p <= FK_BAL_HASH; p++) {
		fk_bal_config c = cfg_with((fk_bal_policy)p);
		fk_bal_group *g = mk(&c, 3, NULL, cap);
		for (int k = 0; k < 6; k++) {
			int i = fk_bal_pick(g, 0, "key", 3, NULL);
			assert_true(i >= 0);
			fk_bal_acquire(g, i);
			assert_true(g->b[i].outstanding <= cap[i]);
		}
		assert_int_equal(fk_bal_pick(g, 0, "key", 3, NULL),
		                 -1); /* all full: queue or 503 */
		assert_int_equal(fk_bal_pick(g, 0, "other", 5, NULL), -1);
		fk_bal_release(g, 1);
		assert_int_equal(fk_bal_pick(g, 0, "key", 3, NULL), 1);
		fk_bal_acquire(g, 1);
		assert_int_equal(fk_bal_pick(g, 0, "key", 3, NULL), -1);
		fk_bal_group_free(g);
	}
}

static void test_capacity_sources(void **state)
{
	(void)state;
	static const unsigned cap[] = {10};
	fk_bal_group *g = mk(NULL, 1, NULL, cap);
	assert_int_equal(fk_bal_capacity(g, 0), 10);
	fk_bal_set_capacity(g, 0, 4, FK_BAL_CAP_LEARNED); /* FCGI_MAX_REQS=4 */
	assert_int_equal(fk_bal_capacity(g, 0), 4);
	fk_bal_set_capacity(g, 0, 50, FK_BAL_CAP_LEARNED);
	assert_int_equal(fk_bal_capacity(g, 0), 10);
	fk_bal_set_capacity(g, 0, 0, FK_BAL_CAP_CONFIGURED);
	assert_int_equal(fk_bal_capacity(g, 0), 50);
	fk_bal_set_capacity(g, 0, 0, FK_BAL_CAP_LEARNED);
	assert_int_equal(fk_bal_capacity(g, 0), 0);
	/* Unlimited: many in flight. */
	for (int k = 0; k < 1000; k++) {
		assert_int_equal(fk_bal_pick_wrr(g, 0, NULL), 0);
		fk_bal_acquire(g, 0);
	}
	/* Lowered below what is in flight: nothing new until below it again. */
	fk_bal_set_capacity(g, 0, 998, FK_BAL_CAP_LEARNED);
	assert_int_equal(fk_bal_pick_wrr(g, 0, NULL), -1);
	fk_bal_release(g, 0);
	fk_bal_release(g, 0);
	assert_int_equal(fk_bal_pick_wrr(g, 0, NULL), -1);
	fk_bal_release(g, 0);
	assert_int_equal(fk_bal_pick_wrr(g, 0, NULL), 0);
	fk_bal_group_free(g);
}

static void test_exclusion_on_retry(void **state)
{
	(void)state;
	static const unsigned w[] = {5, 1, 1, 2};
	for (int p = FK_BAL_WRR; p <= FK_BAL_HASH; p++) {
		fk_bal_config c = cfg_with((fk_bal_policy)p);
		fk_bal_group *g = mk(&c, 4, w, NULL);
		for (int req = 0; req < 50; req++) {
			char key[32];
			key_of(key, sizeof key, req);
			fk_bal_tried t;
			fk_bal_tried_clear(&t);
			for (int attempt = 0; attempt < 4; attempt++) {
				int i = fk_bal_pick(g, 0, key, strlen(key), &t);
				assert_true(i >= 0 && i < 4);
				assert_false(fk_bal_tried_has(&t, i));
				fk_bal_tried_add(&t, i);
			}
			/* Every backend tried: nothing left for this request, even with fallback. */
			assert_int_equal(fk_bal_pick(g, 0, key, strlen(key), &t), -1);
		}
		fk_bal_group_free(g);
	}
}

/* ---------------------------------------------------------------- consistent hashing */

static void test_hash_stable(void **state)
{
	(void)state;
	fk_bal_config c = cfg_with(FK_BAL_HASH);
	fk_bal_group *g1 = mk(&c, 8, NULL, NULL);
	fk_bal_group *g2 = mk(&c, 8, NULL, NULL);
	for (int k = 0; k < 2000; k++) {
		int a = pick_key(g1, k, 0);
		assert_true(a >= 0 && a < 8);
		assert_int_equal(pick_key(g1, k, 0), a); /* same key, same backend, every time */
		assert_int_equal(pick_key(g2, k, 0), a); /* and in an identically built group */
	}
	/* Known values of the key hash (FNV-1a 64 then murmur3's fmix64). */
	assert_true(fk_bal_hash("", 0) == fk_bal_hash(NULL, 0));
	assert_true(fk_bal_hash("a", 1) != fk_bal_hash("b", 1));
	assert_true(fk_bal_hash("ab", 2) != fk_bal_hash("ba", 2));
	/* An empty key is a key like any other. */
	int e = fk_bal_pick_hash(g1, 0, NULL, 0, NULL);
	assert_true(e >= 0);
	assert_int_equal(fk_bal_pick_hash(g1, 0, "", 0, NULL), e);
	fk_bal_group_free(g1);
	fk_bal_group_free(g2);
}

static void test_hash_distribution_weights(void **state)
{
	(void)state;
	static const unsigned w[] = {1, 1, 1, 1, 2, 4};
	fk_bal_config c = cfg_with(FK_BAL_HASH);
	fk_bal_group *g = mk(&c, 6, w, NULL);
	unsigned long count[6] = {0};
	enum { KEYS = 20000 };
	for (int k = 0; k < KEYS; k++)
		count[pick_key(g, k, 0)]++;
	/* Expected share weight/10; with 100 points per weight unit the ring's own spread is
	 * about 10 %, so allow 30 % either way. */
	for (int i = 0; i < 6; i++) {
		double want = KEYS * w[i] / 10.0;
		if (count[i] < want * 0.7 || count[i] > want * 1.3)
			fail_msg("backend %d: %lu keys, want about %.0f", i, count[i], want);
	}
	fk_bal_group_free(g);
}

/* Marking one of N backends down moves exactly its keys, about 1/N of them; the others
 * stay. The moved keys spread over the other backends. */
static void test_hash_remap_on_down(void **state)
{
	(void)state;
	enum { N = 10, KEYS = 10000 };
	fk_bal_config c = cfg_with(FK_BAL_HASH);
	fk_bal_group *g = mk(&c, N, NULL, NULL);
	static int before[KEYS];
	for (int k = 0; k < KEYS; k++)
		before[k] = pick_key(g, k, 0);
	eject_now(g, 3, 0);
	int moved = 0;
	unsigned long dest[N] = {0};
	for (int k = 0; k < KEYS; k++) {
		int now_at = pick_key(g, k, 1);
		assert_int_not_equal(now_at, 3);
		if (before[k] == 3) {
			moved++;
			dest[now_at]++;
		} else {
			assert_int_equal(now_at, before[k]);
		}
	}
	if (moved < KEYS / N / 2 || moved > KEYS / N * 3 / 2)
		fail_msg("%d of %d keys moved, want about %d", moved, KEYS, KEYS / N);
	int spread = 0;
	for (int i = 0; i < N; i++)
		spread += dest[i] > 0;
	assert_true(spread >= N / 2); /* virtual nodes: not all to one neighbour */

	/* A full backend walks to the next distinct one the same way. */
	fk_bal_report_success(g, 3, 2); /* back UP */
	for (int k = 0; k < KEYS; k++)
		assert_int_equal(pick_key(g, k, 2), before[k]);
	fk_bal_set_capacity(g, 5, 1, FK_BAL_CAP_CONFIGURED);
	fk_bal_acquire(g, 5);
	moved = 0;
	for (int k = 0; k < KEYS; k++) {
		int now_at = pick_key(g, k, 2);
		if (before[k] == 5)
			moved++;
		else
			assert_int_equal(now_at, before[k]);
	}
	assert_true(moved > KEYS / N / 2 && moved < KEYS / N * 3 / 2);
	fk_bal_group_free(g);
}

/* Removing a backend from the configuration (a new group without it, indices shifted)
 * maps the surviving backends' keys exactly as before — by identity, not index — and the
 * result equals disabling it in the old group. Adding one moves about 1/(N+1). */
static void test_hash_remap_on_removal_and_add(void **state)
{
	(void)state;
	enum { N = 12, KEYS = 10000, GONE = 4 };
	fk_bal_config c = cfg_with(FK_BAL_HASH);
	static char ids[N + 1][48];
	fk_bal_backend_conf all[N + 1], rest[N - 1];
	int rest_orig[N - 1];
	for (int i = 0, j = 0; i <= N; i++) {
		snprintf(ids[i], sizeof ids[i], "backend-%d.example:9000", i);
		all[i] = (fk_bal_backend_conf){ids[i], strlen(ids[i]), 1, 0};
		if (i != GONE && i < N) {
			rest_orig[j] = i;
			rest[j++] = all[i];
		}
	}
	fk_bal_group *full, *less, *more;
	assert_int_equal(fk_bal_group_new(&full, &c, all, N), FCGI_OK);
	assert_int_equal(fk_bal_group_new(&less, &c, rest, N - 1), FCGI_OK);
	assert_int_equal(fk_bal_group_new(&more, &c, all, N + 1), FCGI_OK);
	static int before[KEYS];
	int moved = 0, moved_add = 0;
	for (int k = 0; k < KEYS; k++) {
		before[k] = pick_key(full, k, 0);
		int after = rest_orig[pick_key(less, k, 0)];
		if (before[k] == GONE)
			moved++;
		else
			assert_int_equal(after, before[k]);
		int added = pick_key(more, k, 0);
		if (added != before[k]) {
			assert_int_equal(added, N); /* only to the new backend */
			moved_add++;
		}
	}
	assert_true(moved > KEYS / N / 2 && moved < KEYS / N * 3 / 2);
	assert_true(moved_add > KEYS / (N + 1) / 2 && moved_add < KEYS / (N + 1) * 3 / 2);
	/* Disabling in place is the same mapping as the rebuilt group. */
	fk_bal_set_enabled(full, GONE, 0);
	for (int k = 0; k < KEYS; k++)
		assert_int_equal(pick_key(full, k, 0), rest_orig[pick_key(less, k, 0)]);
	fk_bal_group_free(full);
	fk_bal_group_free(less);
	fk_bal_group_free(more);
}

static void test_hash_ring_limits(void **state)
{
	(void)state;
	/* No ring: hashing is off. */
	fk_bal_config c = cfg_with(FK_BAL_HASH);
	c.hash_vnodes = 0;
	fk_bal_group *g = mk(&c, 3, NULL, NULL);
	assert_null(g->ring);
	assert_int_equal(g->nring, 0);
	assert_int_equal(fk_bal_pick(g, 0, "k", 1, NULL), -1);
	assert_int_equal(fk_bal_pick_wrr(g, 0, NULL), 0); /* the other policies still work */
	fk_bal_group_free(g);

	/* The largest group: scaled down to the cap, still proportional, each backend >= 1. */
	static unsigned w[FK_BAL_MAX_BACKENDS];
	for (int i = 0; i < FK_BAL_MAX_BACKENDS; i++)
		w[i] = i == 0 ? 1 : FK_BAL_WEIGHT_MAX;
	c = cfg_with(FK_BAL_HASH);
	g = mk(&c, FK_BAL_MAX_BACKENDS, w, NULL);
	assert_true(g->nring <= FK_BAL_RING_MAX + FK_BAL_MAX_BACKENDS);
	assert_true(g->nring >= FK_BAL_RING_MAX - FK_BAL_MAX_BACKENDS);
	static unsigned pts[FK_BAL_MAX_BACKENDS];
	memset(pts, 0, sizeof pts);
	for (size_t i = 0; i < g->nring; i++)
		pts[g->ring[i].idx]++;
	assert_int_equal(pts[0], 1);
	for (int i = 1; i < FK_BAL_MAX_BACKENDS; i++)
		assert_int_equal(pts[i], pts[1]);
	/* Every backend down but one: the walk finds it from any key. */
	for (int i = 0; i < FK_BAL_MAX_BACKENDS; i++)
		if (i != 777)
			eject_now(g, i, 0);
	for (int k = 0; k < 50; k++)
		assert_int_equal(pick_key(g, k, 1), 777);
	eject_now(g, 777, 0);
	assert_int_equal(pick_key(g, 0, 1), -1);
	fk_bal_group_free(g);
}

/* ---------------------------------------------------------------- health: passive */

static void test_failures_within_window(void **state)
{
	(void)state;
	fk_bal_group *g = mk(NULL, 2, NULL, NULL);
	fk_bal_report_failure(g, 0, 1000, FK_BAL_FAIL_CONNECT);
	fk_bal_report_failure(g, 0, 5000, FK_BAL_FAIL_TIMEOUT);
	assert_int_equal(g->b[0].state, FK_BAL_UP);
	assert_int_equal(fk_bal_pick_wrr(g, 5000, NULL), 0);   /* still picked */
	fk_bal_report_failure(g, 0, 10999, FK_BAL_FAIL_RESET); /* 9999 ms after the first */
	assert_int_equal(g->b[0].state, FK_BAL_DOWN);
	assert_int_equal(g->b[0].down_until, 10999 + 1000);
	assert_int_equal(g->b[0].fails_total, 3);
	assert_int_equal(g->b[0].fails_by_kind[FK_BAL_FAIL_CONNECT], 1);
	assert_int_equal(g->b[0].fails_by_kind[FK_BAL_FAIL_TIMEOUT], 1);
	assert_int_equal(g->b[0].fails_by_kind[FK_BAL_FAIL_RESET], 1);
	assert_int_equal(g->b[0].ejections_total, 1);
	for (int k = 0; k < 5; k++)
		assert_int_equal(fk_bal_pick_wrr(g, 11000, NULL), 1);
	fk_bal_group_free(g);
}

static void test_failures_outside_window(void **state)
{
	(void)state;
	fk_bal_group *g = mk(NULL, 1, NULL, NULL);
	/* Exactly fail_window_ms old no longer counts. */
	fk_bal_report_failure(g, 0, 0, FK_BAL_FAIL_CONNECT);
	fk_bal_report_failure(g, 0, 1, FK_BAL_FAIL_CONNECT);
	fk_bal_report_failure(g, 0, 10000, FK_BAL_FAIL_CONNECT);
	assert_int_equal(g->b[0].state, FK_BAL_UP);
	/* Spread out: never 3 within 10 s. */
	for (int64_t t = 20000; t < 200000; t += 5000)
		fk_bal_report_failure(g, 0, t, FK_BAL_FAIL_TIMEOUT);
	assert_int_equal(g->b[0].state, FK_BAL_UP);
	/* Sliding, not fixed: the one at 195000 still counts 9 s later, with two new ones. */
	fk_bal_report_failure(g, 0, 204000, FK_BAL_FAIL_TIMEOUT);
	assert_int_equal(g->b[0].state, FK_BAL_UP);
	fk_bal_report_failure(g, 0, 204001, FK_BAL_FAIL_TIMEOUT);
	assert_int_equal(g->b[0].state, FK_BAL_DOWN); /* 195000, 204000, 204001 */
	fk_bal_group_free(g);

	/* A success in between forgets earlier failures. */
	g = mk(NULL, 1, NULL, NULL);
	fk_bal_report_failure(g, 0, 0, FK_BAL_FAIL_CONNECT);
	fk_bal_report_failure(g, 0, 1, FK_BAL_FAIL_CONNECT);
	fk_bal_report_success(g, 0, 2);
	fk_bal_report_failure(g, 0, 3, FK_BAL_FAIL_CONNECT);
	fk_bal_report_failure(g, 0, 4, FK_BAL_FAIL_CONNECT);
	assert_int_equal(g->b[0].state, FK_BAL_UP);
	fk_bal_report_failure(g, 0, 5, FK_BAL_FAIL_CONNECT);
	assert_int_equal(g->b[0].state, FK_BAL_DOWN);
	fk_bal_group_free(g);
}

static void test_fails_config(void **state)
{
	(void)state;
	fk_bal_config c = cfg_with(FK_BAL_WRR);
	c.fails = 0; /* never eject */
	fk_bal_group *g = mk(&c, 1, NULL, NULL);
	for (int k = 0; k < 100; k++) {
		fk_bal_report_failure(g, 0, k, FK_BAL_FAIL_CONNECT);
		fk_bal_probe_result(g, 0, 0, k);
	}
	assert_int_equal(g->b[0].state, FK_BAL_UP);
	assert_int_equal(g->b[0].fails_total, 100);
	fk_bal_group_free(g);

	c.fails = 1;
	g = mk(&c, 1, NULL, NULL);
	fk_bal_report_failure(g, 0, 0, FK_BAL_FAIL_CONNECT);
	assert_int_equal(g->b[0].state, FK_BAL_DOWN);
	fk_bal_group_free(g);

	c.fails = FK_BAL_MAX_FAILS;
	g = mk(&c, 1, NULL, NULL);
	for (int k = 0; k < FK_BAL_MAX_FAILS - 1; k++)
		fk_bal_report_failure(g, 0, k, FK_BAL_FAIL_CONNECT);
	assert_int_equal(g->b[0].state, FK_BAL_UP);
	fk_bal_report_failure(g, 0, 100, FK_BAL_FAIL_CONNECT);
	assert_int_equal(g->b[0].state, FK_BAL_DOWN);
	fk_bal_group_free(g);
}

/* Ejection, probing, failed trial: 1, 2, 4, ... 32, 60, 60 s; a success resets it. */
static void test_backoff_doubles_and_caps(void **state)
{
	(void)state;
	fk_bal_group *g = mk(NULL, 2, NULL, NULL);
	static const int64_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};
	int64_t now = 5000;
	eject_now(g, 0, now);
	for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
		assert_int_equal(g->b[0].state, FK_BAL_DOWN);
		assert_int_equal(g->b[0].ejections, k + 1);
		assert_int_equal(g->b[0].down_until - now, want[k]);
		assert_int_equal(fk_bal_next_event(g, now), g->b[0].down_until);
		/* Just before: still DOWN, not picked. */
		assert_int_equal(fk_bal_backend_state(g, 0, g->b[0].down_until - 1), FK_BAL_DOWN);
		assert_int_equal(fk_bal_pick_wrr(g, g->b[0].down_until - 1, NULL), 1);
		now = g->b[0].down_until;
		assert_int_equal(fk_bal_backend_state(g, 0, now), FK_BAL_PROBING);
		assert_int_equal(fk_bal_next_event(g, now), FK_BAL_NEVER);
		fk_bal_report_failure(g, 0, now, FK_BAL_FAIL_CONNECT); /* the trial fails */
	}
	/* A success resets the backoff: the next ejection is 1 s again. */
	now = g->b[0].down_until;
	fk_bal_report_success(g, 0, now);
	assert_int_equal(g->b[0].state, FK_BAL_UP);
	assert_int_equal(g->b[0].ejections, 0);
	eject_now(g, 0, now);
	assert_int_equal(g->b[0].down_until - now, 1000);
	assert_int_equal(g->b[0].ejections_total, 11);
	fk_bal_group_free(g);

	/* A large base and cap, and times near the end of int64: no overflow. */
	fk_bal_config c = cfg_with(FK_BAL_WRR);
	c.backoff_base_ms = INT64_MAX / 4;
	c.backoff_max_ms = INT64_MAX;
	g = mk(&c, 1, NULL, NULL);
	now = INT64_MAX - 10;
	for (int k = 0; k < 5; k++) {
		eject_now(g, 0, now);
		assert_int_equal(g->b[0].down_until, INT64_MAX);
		fk_bal_report_success(g, 0, now);
	}
	g->b[0].ejections = 70; /* as if it had failed for ages */
	eject_now(g, 0, 0);
	assert_int_equal(g->b[0].down_until, INT64_MAX);
	fk_bal_group_free(g);
}

static void test_half_open_single_trial(void **state)
{
	(void)state;
	for (int p = FK_BAL_WRR; p <= FK_BAL_HASH; p++) {
		fk_bal_config c = cfg_with((fk_bal_policy)p);
		fk_bal_group *g = mk(&c, 1, NULL, NULL);
		eject_now(g, 0, 0);
		assert_int_equal(fk_bal_pick(g, 999, "k", 1, NULL), -1);
		assert_int_equal(fk_bal_pick(g, 1000, "k", 1, NULL), 0); /* the trial */
		assert_int_equal(g->b[0].state, FK_BAL_PROBING);
		fk_bal_acquire(g, 0);
		for (int k = 0; k < 10; k++)
			assert_int_equal(fk_bal_pick(g, 1000 + k, "k", 1, NULL),
			                 -1); /* one at a time */
		/* The trial ended without a verdict (client went away): another may go. */
		fk_bal_release(g, 0);
		assert_int_equal(fk_bal_pick(g, 1100, "k", 1, NULL), 0);
		fk_bal_acquire(g, 0);
		fk_bal_report_success(g, 0, 1200);
		fk_bal_release(g, 0);
		assert_int_equal(g->b[0].state, FK_BAL_UP);
		/* UP again: many at once. */
		for (int k = 0; k < 5; k++) {
			assert_int_equal(fk_bal_pick(g, 1300, "k", 1, NULL), 0);
			fk_bal_acquire(g, 0);
		}
		fk_bal_group_free(g);
	}
}

/* Requests from before the ejection keep the trial waiting, and decide by themselves. */
static void test_probing_waits_for_old_requests(void **state)
{
	(void)state;
	fk_bal_group *g = mk(NULL, 2, NULL, NULL);
	fk_bal_acquire(g, 0);
	fk_bal_acquire(g, 0);
	eject_now(g, 0, 0);
	assert_int_equal(fk_bal_backend_state(g, 0, 1000), FK_BAL_PROBING);
	assert_int_equal(fk_bal_pick_wrr(g, 1000, NULL), 1);
	assert_int_equal(fk_bal_pick_wrr(g, 1000, NULL), 1);
	fk_bal_release(g, 0);
	assert_int_equal(fk_bal_pick_wrr(g, 1000, NULL), 1);
	/* The last old one fails: back DOWN, doubled. */
	fk_bal_report_failure(g, 0, 1500, FK_BAL_FAIL_RESET);
	fk_bal_release(g, 0);
	assert_int_equal(g->b[0].state, FK_BAL_DOWN);
	assert_int_equal(g->b[0].down_until, 3500);
	fk_bal_group_free(g);
}

static void test_down_reports(void **state)
{
	(void)state;
	fk_bal_group *g = mk(NULL, 2, NULL, NULL);
	eject_now(g, 0, 0);
	/* A failure while DOWN (an old request) does not extend the ejection. */
	fk_bal_report_failure(g, 0, 500, FK_BAL_FAIL_TIMEOUT);
	assert_int_equal(g->b[0].state, FK_BAL_DOWN);
	assert_int_equal(g->b[0].down_until, 1000);
	assert_int_equal(g->b[0].ejections, 1);
	assert_int_equal(g->b[0].fails_total, 4);
	/* A success while DOWN is proof of life. */
	fk_bal_report_success(g, 0, 600);
	assert_int_equal(g->b[0].state, FK_BAL_UP);
	assert_int_equal(g->b[0].ejections, 0);
	assert_int_equal(fk_bal_pick_wrr(g, 600, NULL), 0);
	fk_bal_group_free(g);
}

static void test_tick_and_next_event(void **state)
{
	(void)state;
	fk_bal_group *g = mk(NULL, 3, NULL, NULL);
	assert_int_equal(fk_bal_next_event(g, 0), FK_BAL_NEVER);
	assert_int_equal(fk_bal_tick(g, 0), 0);
	eject_now(g, 0, 100);               /* until 1100 */
	eject_now(g, 1, 0);                 /* until 1000 */
	fk_bal_report_overloaded(g, 2, 50); /* until 1050 */
	assert_int_equal(fk_bal_next_event(g, 60), 1000);
	assert_int_equal(fk_bal_tick(g, 999), 0);
	assert_int_equal(fk_bal_tick(g, 1000), 1);
	assert_int_equal(g->b[1].state, FK_BAL_PROBING);
	assert_int_equal(fk_bal_next_event(g, 1000), 1050);
	assert_int_equal(fk_bal_next_event(g, 1050), 1100);
	/* Due but not yet ticked: reported as `now`. */
	assert_int_equal(fk_bal_next_event(g, 5000), 5000);
	assert_int_equal(fk_bal_tick(g, 5000), 1);
	assert_int_equal(fk_bal_tick(g, 5000), 0);
	assert_int_equal(fk_bal_next_event(g, 5000), FK_BAL_NEVER);
	assert_int_equal(fk_bal_next_event(NULL, 5000), FK_BAL_NEVER);
	assert_int_equal(fk_bal_tick(NULL, 5000), 0);
	fk_bal_group_free(g);
}

/* ---------------------------------------------------------------- health: active probes */

static void test_probe_transitions(void **state)
{
	(void)state;
	fk_bal_group *g = mk(NULL, 2, NULL, NULL);
	/* UP: `fails` consecutive failed probes eject; a success in between resets. */
	fk_bal_probe_result(g, 0, 0, 0);
	fk_bal_probe_result(g, 0, 0, 1);
	fk_bal_probe_result(g, 0, 1, 2);
	fk_bal_probe_result(g, 0, 0, 3);
	fk_bal_probe_result(g, 0, 0, 4);
	assert_int_equal(g->b[0].state, FK_BAL_UP);
	/* Request successes do not reset the probe count. */
	fk_bal_report_success(g, 0, 5);
	fk_bal_probe_result(g, 0, 0, 100000); /* consecutive, however far apart */
	assert_int_equal(g->b[0].state, FK_BAL_DOWN);
	assert_int_equal(g->b[0].down_until, 101000);
	/* DOWN: a failed probe changes nothing; a good one brings it UP before its time. */
	fk_bal_probe_result(g, 0, 0, 100500);
	assert_int_equal(g->b[0].state, FK_BAL_DOWN);
	assert_int_equal(g->b[0].down_until, 101000);
	fk_bal_probe_result(g, 0, 1, 100600);
	assert_int_equal(g->b[0].state, FK_BAL_UP);
	assert_int_equal(g->b[0].ejections, 0);
	assert_int_equal(g->b[0].probe_fails, 0);
	/* PROBING: a failed probe is the failed trial — DOWN, doubled. */
	eject_now(g, 0, 200000);
	assert_int_equal(fk_bal_backend_state(g, 0, 201000), FK_BAL_PROBING);
	fk_bal_probe_result(g, 0, 0, 201000);
	assert_int_equal(g->b[0].state, FK_BAL_DOWN);
	assert_int_equal(g->b[0].down_until, 203000);
	/* PROBING: a good probe brings it UP. */
	assert_int_equal(fk_bal_backend_state(g, 0, 203000), FK_BAL_PROBING);
	fk_bal_probe_result(g, 0, 1, 203001);
	assert_int_equal(g->b[0].state, FK_BAL_UP);
	/* Passive failures and probe failures are counted apart. */
	fk_bal_report_failure(g, 0, 300000, FK_BAL_FAIL_CONNECT);
	fk_bal_probe_result(g, 0, 0, 300001);
	fk_bal_report_failure(g, 0, 300002, FK_BAL_FAIL_CONNECT);
	fk_bal_probe_result(g, 0, 0, 300003);
	assert_int_equal(g->b[0].state, FK_BAL_UP);
	fk_bal_group_free(g);
}

/* ---------------------------------------------------------------- all down */

static void test_all_down_no_fallback(void **state)
{
	(void)state;
	for (int p = FK_BAL_WRR; p <= FK_BAL_HASH; p++) {
		fk_bal_config c = cfg_with((fk_bal_policy)p);
		fk_bal_group *g = mk(&c, 3, NULL, NULL);
		for (int i = 0; i < 3; i++)
			eject_now(g, i, 0);
		assert_int_equal(fk_bal_pick(g, 10, "k", 1, NULL), -1);
		fk_bal_group_free(g);
	}
}

static void test_all_down_fallback(void **state)
{
	(void)state;
	for (int p = FK_BAL_WRR; p <= FK_BAL_HASH; p++) {
		fk_bal_config c = cfg_with((fk_bal_policy)p);
		c.all_down_fallback = 1;
		fk_bal_group *g = mk(&c, 4, NULL, NULL);
		eject_now(g, 0, 300); /* until 1300 */
		eject_now(g, 1, 100); /* until 1100 */
		eject_now(g, 2, 200); /* until 1200 */
		/* One still UP: normal picks, no fallback. */
		assert_int_equal(fk_bal_pick(g, 400, "k", 1, NULL), 3);
		/* UP but full: the caller queues, no fallback either. */
		fk_bal_set_capacity(g, 3, 1, FK_BAL_CAP_CONFIGURED);
		fk_bal_acquire(g, 3);
		assert_int_equal(fk_bal_pick(g, 400, "k", 1, NULL), -1);
		eject_now(g, 3, 400); /* until 1400 */
		/* All down: the soonest to come back, without changing its state. */
		assert_int_equal(fk_bal_pick(g, 500, "k", 1, NULL), 1);
		assert_int_equal(g->b[1].state, FK_BAL_DOWN);
		fk_bal_tried t = {{0}};
		fk_bal_tried_add(&t, 1);
		assert_int_equal(fk_bal_pick(g, 500, "k", 1, &t), 2); /* retry: the next soonest */
		fk_bal_set_enabled(g, 2, 0);
		assert_int_equal(fk_bal_pick(g, 500, "k", 1, &t), 0);
		fk_bal_set_enabled(g, 2, 1);
		/* Full ones are skipped (3 holds its one request). */
		fk_bal_tried_add(&t, 2);
		fk_bal_tried_add(&t, 0);
		assert_int_equal(fk_bal_pick(g, 500, "k", 1, &t), -1);
		/* A PROBING one whose trial is busy counts as already recovered. */
		assert_int_equal(fk_bal_pick(g, 1100, "k", 1, NULL), 1); /* normal: the trial */
		fk_bal_acquire(g, 1);
		assert_int_equal(fk_bal_pick(g, 1100, "k", 1, NULL), 1); /* fallback */
		fk_bal_release(g, 1);
		/* The fallback's request succeeds: UP. */
		fk_bal_report_success(g, 2, 1150);
		assert_int_equal(g->b[2].state, FK_BAL_UP);
		int j = fk_bal_pick(g, 1150, "k", 1, NULL); /* 1 PROBING and idle, 2 UP */
		assert_true(j == 1 || j == 2);
		fk_bal_group_free(g);
	}
}

/* ---------------------------------------------------------------- OVERLOADED */

static void test_overloaded_skips(void **state)
{
	(void)state;
	fk_bal_config c = cfg_with(FK_BAL_LEAST);
	fk_bal_group *g = mk(&c, 2, NULL, NULL);
	fk_bal_report_overloaded(g, 0, 1000);
	assert_int_equal(g->b[0].state, FK_BAL_UP); /* not a failure */
	assert_int_equal(g->b[0].nfail, 0);
	assert_int_equal(g->b[0].fails_total, 0);
	assert_int_equal(g->b[0].overloads_total, 1);
	for (int64_t t = 1000; t < 2000; t += 100)
		assert_int_equal(fk_bal_pick_least(g, t, NULL), 1);
	assert_int_equal(fk_bal_next_event(g, 1500), 2000);
	assert_int_equal(fk_bal_pick_least(g, 2000, NULL), 0);
	/* Both overloaded: nothing, and no fallback (they are UP) even when enabled. */
	g->cfg.all_down_fallback = 1;
	fk_bal_report_overloaded(g, 0, 3000);
	fk_bal_report_overloaded(g, 1, 3500);
	assert_int_equal(fk_bal_pick_least(g, 3600, NULL), -1);
	assert_int_equal(fk_bal_pick_least(g, 4000, NULL), 0);
	/* An earlier report does not shorten a later skip. */
	fk_bal_report_overloaded(g, 1, 3400);
	assert_int_equal(g->b[1].overload_until, 4500);
	fk_bal_group_free(g);
}

static void test_overloaded_lowers_capacity(void **state)
{
	(void)state;
	fk_bal_group *g = mk(NULL, 2, NULL, NULL);
	/* Learned 10; refused the 7th request: after its release 6 are held -> capacity 6. */
	fk_bal_set_capacity(g, 0, 10, FK_BAL_CAP_LEARNED);
	for (int k = 0; k < 7; k++)
		fk_bal_acquire(g, 0);
	fk_bal_release(g, 0);
	fk_bal_report_overloaded(g, 0, 0);
	assert_int_equal(g->b[0].cap_learned, 6);
	assert_int_equal(fk_bal_capacity(g, 0), 6);
	/* Only ever lowered here. */
	for (int k = 0; k < 3; k++)
		fk_bal_release(g, 0);
	fk_bal_acquire(g, 0); /* 4 held */
	fk_bal_report_overloaded(g, 0, 0);
	assert_int_equal(fk_bal_capacity(g, 0), 4);
	fk_bal_acquire(g, 0);
	fk_bal_acquire(g, 0); /* 6 held, over the lowered capacity */
	fk_bal_report_overloaded(g, 0, 0);
	assert_int_equal(fk_bal_capacity(g, 0), 4);
	/* Capacity is respected after the skip. */
	assert_int_equal(fk_bal_pick_wrr(g, 5000, NULL), 1);
	while (g->b[0].outstanding > 3)
		fk_bal_release(g, 0);
	assert_int_equal(fk_bal_pick_wrr(g, 5000, NULL), 0);
	/* Re-learned from GET_VALUES: replaced. */
	fk_bal_set_capacity(g, 0, 10, FK_BAL_CAP_LEARNED);
	assert_int_equal(fk_bal_capacity(g, 0), 10);

	/* No capacity known: refusing tells us there is one. Never below 1. */
	fk_bal_report_overloaded(g, 1, 0);
	assert_int_equal(fk_bal_capacity(g, 1), 1);
	fk_bal_group_free(g);

	/* A configured capacity is not rewritten; the effective one is the smaller. */
	static const unsigned cap[] = {8};
	g = mk(NULL, 1, NULL, cap);
	for (int k = 0; k < 5; k++)
		fk_bal_acquire(g, 0);
	fk_bal_report_overloaded(g, 0, 0);
	assert_int_equal(g->b[0].cap_conf, 8);
	assert_int_equal(fk_bal_capacity(g, 0), 5);
	fk_bal_group_free(g);

	/* Turned off: only the skip. */
	fk_bal_config c = cfg_with(FK_BAL_WRR);
	c.overload_lowers_capacity = 0;
	c.overload_ms = 0;
	g = mk(&c, 1, NULL, NULL);
	fk_bal_acquire(g, 0);
	fk_bal_report_overloaded(g, 0, 0);
	assert_int_equal(fk_bal_capacity(g, 0), 0);
	assert_int_equal(fk_bal_pick_wrr(g, 0, NULL), 0); /* overload_ms 0: no skip */
	fk_bal_group_free(g);
}

/* ---------------------------------------------------------------- property run */

/* Random requests, outcomes, probes, overloads and time under every policy: capacity is
 * never exceeded, a PROBING backend never gets a second request, DOWN backends are never
 * picked (no fallback), disabled and tried ones never. */
static void test_random_invariants(void **state)
{
	(void)state;
	enum { N = 7 };
	static const unsigned w[N] = {1, 3, 5, 1, 2, 8, 1};
	static const unsigned cap[N] = {2, 5, 0, 1, 3, 10, 4};
	for (int p = FK_BAL_WRR; p <= FK_BAL_HASH; p++) {
		fk_bal_config c = cfg_with((fk_bal_policy)p);
		fk_bal_group *g = mk(&c, N, w, cap);
		int64_t now = 0;
		unsigned long picked = 0;
		for (int step = 0; step < 30000; step++) {
			now += rnd(50);
			unsigned op = rnd(100);
			int i = (int)rnd(N);
			if (op < 40) {
				fk_bal_tried t = {{0}};
				if (rnd(4) == 0)
					fk_bal_tried_add(&t, (int)rnd(N));
				char key[16];
				snprintf(key, sizeof key, "k%u", rnd(500));
				/* Snapshot the states the pick will see. */
				fk_bal_tick(g, now);
				int j = fk_bal_pick(g, now, key, strlen(key), &t);
				if (j >= 0) {
					fk_bal_backend *b = &g->b[j];
					assert_true(b->enabled);
					assert_false(fk_bal_tried_has(&t, j));
					assert_int_not_equal(b->state, FK_BAL_DOWN);
					assert_true(now >= b->overload_until);
					if (b->state == FK_BAL_PROBING)
						assert_int_equal(b->outstanding, 0);
					unsigned cp = fk_bal_capacity(g, j);
					assert_true(cp == 0 || b->outstanding < cp);
					fk_bal_acquire(g, j);
					picked++;
				}
			} else if (op < 70) {
				if (g->b[i].outstanding) {
					unsigned r = rnd(10);
					if (r < 6)
						fk_bal_report_success(g, i, now);
					else if (r < 9)
						fk_bal_report_failure(
						        g, i, now,
						        (fk_bal_fail_kind)rnd(FK_BAL_FAIL_KINDS));
					else {
						fk_bal_release(g, i);
						fk_bal_report_overloaded(g, i, now);
						continue;
					}
					fk_bal_release(g, i);
				}
			} else if (op < 80) {
				fk_bal_report_failure(g, i, now, FK_BAL_FAIL_CONNECT);
			} else if (op < 85) {
				fk_bal_probe_result(g, i, rnd(2), now);
			} else if (op < 87) {
				fk_bal_set_enabled(g, i, rnd(3) != 0);
			} else if (op < 88) {
				fk_bal_set_capacity(g, i, cap[i], FK_BAL_CAP_LEARNED);
			} else {
				int64_t next = fk_bal_next_event(g, now);
				assert_true(next >= now);
			}
		}
		assert_true(picked > 1000);
		fk_bal_group_free(g);
	}
}

/* ---------------------------------------------------------------- waiting queue */

static void test_queue_admit(void **state)
{
	(void)state;
	fk_bal_queue_conf q = {3, 5000};
	fk_bal_queue_state s = {0, 0, 0};
	fk_bal_queue_verdict v = fk_bal_queue_admit(&q, &s, 100);
	assert_int_equal(v.admit, 1);
	assert_int_equal(v.deadline, 5100);
	s = (fk_bal_queue_state){2, 50, 10};
	v = fk_bal_queue_admit(&q, &s, 100);
	assert_int_equal(v.admit, 1);
	assert_int_equal(v.deadline, 5100);
	/* Full: 503; 4 ahead at 10/s -> 1 s. */
	s.len = 3;
	v = fk_bal_queue_admit(&q, &s, 100);
	assert_int_equal(v.admit, 0);
	assert_int_equal(v.retry_after, 1);
	/* Slow drain: 4 ahead at 1/s -> 4 s, clamped to max wait (5 s). */
	s.drain_per_sec = 1;
	assert_int_equal(fk_bal_queue_admit(&q, &s, 100).retry_after, 4);
	q.capacity = 30;
	s.len = 30;
	assert_int_equal(fk_bal_queue_admit(&q, &s, 100).retry_after, 5);
	/* Drain unknown: the max wait. */
	s.drain_per_sec = 0;
	assert_int_equal(fk_bal_queue_admit(&q, &s, 100).retry_after, 5);
	q.max_wait_ms = 5001;
	assert_int_equal(fk_bal_queue_admit(&q, &s, 100).retry_after, 6);
	q.max_wait_ms = 10;
	assert_int_equal(fk_bal_queue_admit(&q, &s, 0).retry_after, 1);
	/* Nothing moving: the oldest has waited max_wait_ms -> reject though not full. */
	q = (fk_bal_queue_conf){10, 2000};
	s = (fk_bal_queue_state){1, 1000, 0};
	assert_int_equal(fk_bal_queue_admit(&q, &s, 2999).admit, 1);
	v = fk_bal_queue_admit(&q, &s, 3000);
	assert_int_equal(v.admit, 0);
	assert_int_equal(v.retry_after, 2);
	/* No queue configured. */
	q.capacity = 0;
	s.len = 0;
	v = fk_bal_queue_admit(&q, &s, 0);
	assert_int_equal(v.admit, 0);
	assert_true(v.retry_after >= 1);
	/* Huge values: no overflow. */
	q = (fk_bal_queue_conf){UINT32_MAX, INT64_MAX};
	s = (fk_bal_queue_state){UINT32_MAX - 1, INT64_MIN, 1};
	v = fk_bal_queue_admit(&q, &s, INT64_MAX);
	assert_int_equal(v.admit, 0); /* the oldest has waited "forever" */
	assert_int_equal(v.retry_after, UINT32_MAX);
	s.len = 0;
	v = fk_bal_queue_admit(&q, &s, INT64_MAX);
	assert_int_equal(v.admit, 1);
	assert_int_equal(v.deadline, INT64_MAX);
}

static void test_queue_expired(void **state)
{
	(void)state;
	fk_bal_queue_conf q = {10, 2000};
	assert_false(fk_bal_queue_expired(&q, 1000, 2999));
	assert_true(fk_bal_queue_expired(&q, 1000, 3000));
	assert_false(fk_bal_queue_expired(&q, INT64_MAX, INT64_MIN));
	assert_true(fk_bal_queue_expired(&q, INT64_MIN, INT64_MAX));
}

/* ---------------------------------------------------------------- failing allocator */

static void test_failalloc_group(void **state)
{
	(void)state;
	static const unsigned w[] = {3, 1, 2};
	fk_bal_backend_conf conf[3] = {{"a", 1, w[0], 0}, {"b", 1, w[1], 0}, {"c", 1, w[2], 0}};
	fk_bal_config c = cfg_with(FK_BAL_HASH);
	int ok = 0;
	for (unsigned long n = 1; n < 100 && !ok; n++) {
		for (int sticky = 0; sticky <= 1; sticky++) {
			failalloc_install(n, sticky);
			fk_bal_group *g = (fk_bal_group *)&g;
			int rc = fk_bal_group_new(&g, &c, conf, 3);
			unsigned long calls = failalloc_calls();
			if (rc == FCGI_OK) {
				assert_non_null(g);
				fk_bal_group_free(g);
				assert_true(calls < n);
				ok = 1;
			} else {
				assert_int_equal(rc, FCGI_ENOMEM);
				assert_null(g);
			}
			failalloc_uninstall();
			assert_int_equal(failalloc_live(), 0);
		}
	}
	assert_true(ok);

	/* set_weight: the ring rebuild fails -> unchanged (weight, ring, picks). */
	fk_bal_group *g = NULL;
	assert_int_equal(fk_bal_group_new(&g, &c, conf, 3), FCGI_OK);
	fk_bal_point *ring = g->ring;
	size_t nring = g->nring;
	int before[200];
	for (int k = 0; k < 200; k++)
		before[k] = pick_key(g, k, 0);
	failalloc_install(1, 1);
	assert_int_equal(fk_bal_set_weight(g, 1, 9), FCGI_ENOMEM);
	failalloc_uninstall();
	assert_int_equal(g->b[1].weight, 1);
	assert_ptr_equal(g->ring, ring);
	assert_int_equal(g->nring, nring);
	for (int k = 0; k < 200; k++)
		assert_int_equal(pick_key(g, k, 0), before[k]);
	/* And succeeds once memory is back. */
	assert_int_equal(fk_bal_set_weight(g, 1, 9), FCGI_OK);
	assert_int_equal(g->nring, 1400);
	/* The picks with no allocation at all. */
	failalloc_install(1, 1);
	for (int k = 0; k < 200; k++) {
		assert_true(pick_key(g, k, 0) >= 0);
		assert_true(fk_bal_pick_wrr(g, 0, NULL) >= 0);
		assert_true(fk_bal_pick_least(g, 0, NULL) >= 0);
	}
	assert_int_equal(failalloc_calls(), 0);
	failalloc_uninstall();
	fk_bal_group_free(g);
}

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_defaults_and_names),
	        cmocka_unit_test(test_group_new_validates),
	        cmocka_unit_test(test_bad_index_is_harmless),
	        cmocka_unit_test(test_tried_set),
	        cmocka_unit_test(test_wrr_exact_5_1_1),
	        cmocka_unit_test(test_wrr_exact_sequences),
	        cmocka_unit_test(test_wrr_distribution),
	        cmocka_unit_test(test_wrr_skips_and_rejoins),
	        cmocka_unit_test(test_set_weight),
	        cmocka_unit_test(test_least_ties_alternate),
	        cmocka_unit_test(test_least_weighted),
	        cmocka_unit_test(test_least_interleavings),
	        cmocka_unit_test(test_capacity_every_policy),
	        cmocka_unit_test(test_capacity_sources),
	        cmocka_unit_test(test_exclusion_on_retry),
	        cmocka_unit_test(test_hash_stable),
	        cmocka_unit_test(test_hash_distribution_weights),
	        cmocka_unit_test(test_hash_remap_on_down),
	        cmocka_unit_test(test_hash_remap_on_removal_and_add),
	        cmocka_unit_test(test_hash_ring_limits),
	        cmocka_unit_test(test_failures_within_window),
	        cmocka_unit_test(test_failures_outside_window),
	        cmocka_unit_test(test_fails_config),
	        cmocka_unit_test(test_backoff_doubles_and_caps),
	        cmocka_unit_test(test_half_open_single_trial),
	        cmocka_unit_test(test_probing_waits_for_old_requests),
	        cmocka_unit_test(test_down_reports),
	        cmocka_unit_test(test_tick_and_next_event),
	        cmocka_unit_test(test_probe_transitions),
	        cmocka_unit_test(test_all_down_no_fallback),
	        cmocka_unit_test(test_all_down_fallback),
	        cmocka_unit_test(test_overloaded_skips),
	        cmocka_unit_test(test_overloaded_lowers_capacity),
	        cmocka_unit_test(test_random_invariants),
	        cmocka_unit_test(test_queue_admit),
	        cmocka_unit_test(test_queue_expired),
	        cmocka_unit_test(test_failalloc_group),
	};
	return cmocka_run_group_tests_name("balance", tests, NULL, NULL);
}
