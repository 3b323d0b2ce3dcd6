/*
 * balance.c — backend selection policies and the backend health state machine. Pure: no
 * system calls, clocks or threads; see balance.h for every contract. The only allocations
 * are the group, its backend array and the consistent-hash ring.
 */
#include "balance/balance.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "fcgikit.h"
#include "util/alloc.h"

/* ------------------------------------------------------------------ small helpers */

/* a + b without overflow (times near INT64_MAX saturate instead of wrapping). */
static int64_t sat_add(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

/* now - since, saturating: the caller's clock values are arbitrary int64. */
static int64_t elapsed(int64_t now, int64_t since)
{
	int64_t r;
	if (__builtin_sub_overflow(now, since, &r))
		return since < 0 ? INT64_MAX : INT64_MIN;
	return r;
}

static int valid_idx(const fk_bal_group *g, int idx) { return g && idx >= 0 && (size_t)idx < g->n; }

/* ------------------------------------------------------------------ tried set */

void fk_bal_tried_clear(fk_bal_tried *t) { memset(t, 0, sizeof *t); }

void fk_bal_tried_add(fk_bal_tried *t, int idx)
{
	if (idx >= 0 && idx < FK_BAL_MAX_BACKENDS)
		t->bits[idx / 64] |= UINT64_C(1) << (idx % 64);
}

int fk_bal_tried_has(const fk_bal_tried *t, int idx)
{
	if (!t || idx < 0 || idx >= FK_BAL_MAX_BACKENDS)
		return 0;
	return (t->bits[idx / 64] >> (idx % 64)) & 1;
}

/* ------------------------------------------------------------------ hashing */

/* murmur3's 64-bit finaliser: a bijection that spreads every input bit over the output, so
 * FNV-1a's weak high bits (short keys differ only in their last bytes) do not cluster on
 * the ring. */
static uint64_t fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= UINT64_C(0xff51afd7ed558ccd);
	k ^= k >> 33;
	k *= UINT64_C(0xc4ceb9fe1a85ec53);
	k ^= k >> 33;
	return k;
}

uint64_t fk_bal_hash(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a 64 offset basis */
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= UINT64_C(0x100000001b3); /* FNV-1a 64 prime */
	}
	return fmix64(h);
}

/* Ring point r (0-based) of a backend. Points are a prefix sequence per identity: giving a
 * backend fewer points drops its last ones and moves nothing else. */
static uint64_t point_hash(uint64_t id_hash, uint32_t r)
{
	return fmix64(id_hash ^ (UINT64_C(0x9e3779b97f4a7c15) * ((uint64_t)r + 1)));
}

static int point_cmp(const void *a, const void *b)
{
	const fk_bal_point *x = a, *y = b;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Builds a sorted ring for the current weights. *out NULL (and FCGI_OK) when the config
 * asks for no ring. Each backend gets hash_vnodes * weight points; above FK_BAL_RING_MAX
 * in total they are scaled to weight * FK_BAL_RING_MAX / sum(weights), at least 1, so the
 * ring stays proportional and bounded (at most FK_BAL_RING_MAX + n points). */
static int ring_build(const fk_bal_group *g, fk_bal_point **out, size_t *nout)
{
	*out = NULL;
	*nout = 0;
	uint64_t vn = g->cfg.hash_vnodes;
	if (vn == 0)
		return FCGI_OK;
	uint64_t sumw = 0;
	for (size_t i = 0; i < g->n; i++)
		sumw += g->b[i].weight;
	int scaled = vn * sumw > FK_BAL_RING_MAX; /* <= 2^32 * 1000 * 1024: no overflow */
	size_t total = 0;
	for (size_t i = 0; i < g->n; i++) {
		uint64_t k = scaled ? g->b[i].weight * (uint64_t)FK_BAL_RING_MAX / sumw
		                    : vn * g->b[i].weight;
		total += (size_t)(k ? k : 1);
	}
	fk_bal_point *ring = fk_calloc(total, sizeof *ring);
	if (!ring)
		return FCGI_ENOMEM;
	size_t j = 0;
	for (size_t i = 0; i < g->n; i++) {
		uint64_t k = scaled ? g->b[i].weight * (uint64_t)FK_BAL_RING_MAX / sumw
		                    : vn * g->b[i].weight;
		if (k == 0)
			k = 1;
		for (uint64_t r = 0; r < k; r++) {
			ring[j].hash = point_hash(g->b[i].id_hash, (uint32_t)r);
			ring[j].idx = (uint32_t)i;
			j++;
		}
	}
	qsort(ring, total, sizeof *ring, point_cmp);
	*out = ring;
	*nout = total;
	return FCGI_OK;
}

/* ------------------------------------------------------------------ group */

void fk_bal_config_default(fk_bal_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->policy = FK_BAL_WRR;
	cfg->fails = 3;
	cfg->fail_window_ms = 10000;
	cfg->backoff_base_ms = 1000;
	cfg->backoff_max_ms = 60000;
	cfg->overload_ms = 1000;
	cfg->hash_vnodes = 100;
	cfg->overload_lowers_capacity = 1;
	cfg->all_down_fallback = 0;
}

static int config_valid(const fk_bal_config *c)
{
	return c->fails <= FK_BAL_MAX_FAILS && c->fail_window_ms > 0 && c->backoff_base_ms > 0 &&
	       c->backoff_max_ms >= c->backoff_base_ms && c->overload_ms >= 0 &&
	       (c->policy == FK_BAL_WRR || c->policy == FK_BAL_LEAST || c->policy == FK_BAL_HASH);
}

int fk_bal_group_new(fk_bal_group **out, const fk_bal_config *cfg, const fk_bal_backend_conf *conf,
                     size_t n)
{
	if (!out)
		return FCGI_EINVAL;
	*out = NULL;
	fk_bal_config c;
	if (cfg)
		c = *cfg;
	else
		fk_bal_config_default(&c);
	if (!conf || n == 0 || n > FK_BAL_MAX_BACKENDS || !config_valid(&c))
		return FCGI_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (conf[i].weight > FK_BAL_WEIGHT_MAX || (!conf[i].id && conf[i].id_len))
			return FCGI_EINVAL;

	fk_bal_group *g = fk_calloc(1, sizeof *g);
	if (!g)
		return FCGI_ENOMEM;
	g->b = fk_calloc(n, sizeof *g->b);
	if (!g->b) {
		fk_free(g);
		return FCGI_ENOMEM;
	}
	g->cfg = c;
	g->n = n;
	for (size_t i = 0; i < n; i++) {
		fk_bal_backend *b = &g->b[i];
		if (conf[i].id) {
			b->id_hash = fk_bal_hash(conf[i].id, conf[i].id_len);
		} else {
			/* A fixed byte form of the index, the same on every platform. */
			unsigned char ib[6] = {'#',
			                       'i',
			                       (unsigned char)(i >> 16),
			                       (unsigned char)(i >> 8),
			                       (unsigned char)i,
			                       0};
			b->id_hash = fk_bal_hash(ib, sizeof ib);
		}
		b->weight = conf[i].weight ? conf[i].weight : 1;
		b->cap_conf = conf[i].capacity;
		b->enabled = 1;
		b->state = FK_BAL_UP;
	}
	int rc = ring_build(g, &g->ring, &g->nring);
	if (rc != FCGI_OK) {
		fk_free(g->b);
		fk_free(g);
		return rc;
	}
	*out = g;
	return FCGI_OK;
}

void fk_bal_group_free(fk_bal_group *g)
{
	if (!g)
		return;
	fk_free(g->ring);
	fk_free(g->b);
	fk_free(g);
}

int fk_bal_set_weight(fk_bal_group *g, int idx, unsigned weight)
{
	if (!valid_idx(g, idx) || weight < 1 || weight > FK_BAL_WEIGHT_MAX)
		return FCGI_EINVAL;
	unsigned old = g->b[idx].weight;
	g->b[idx].weight = weight;
	fk_bal_point *ring;
	size_t nring;
	int rc = ring_build(g, &ring, &nring);
	if (rc != FCGI_OK) {
		g->b[idx].weight = old;
		return rc;
	}
	fk_free(g->ring);
	g->ring = ring;
	g->nring = nring;
	for (size_t i = 0; i < g->n; i++)
		g->b[i].wrr_current = 0;
	return FCGI_OK;
}

void fk_bal_set_capacity(fk_bal_group *g, int idx, unsigned capacity, fk_bal_cap_source src)
{
	if (!valid_idx(g, idx))
		return;
	if (src == FK_BAL_CAP_CONFIGURED)
		g->b[idx].cap_conf = capacity;
	else if (src == FK_BAL_CAP_LEARNED)
		g->b[idx].cap_learned = capacity;
}

static unsigned eff_capacity(const fk_bal_backend *b)
{
	if (b->cap_conf == 0)
		return b->cap_learned;
	if (b->cap_learned == 0)
		return b->cap_conf;
	return b->cap_conf < b->cap_learned ? b->cap_conf : b->cap_learned;
}

unsigned fk_bal_capacity(const fk_bal_group *g, int idx)
{
	return valid_idx(g, idx) ? eff_capacity(&g->b[idx]) : 0;
}

void fk_bal_set_enabled(fk_bal_group *g, int idx, int enabled)
{
	if (valid_idx(g, idx))
		g->b[idx].enabled = enabled != 0;
}

/* ------------------------------------------------------------------ health core */

/* The time-driven transition, applied lazily. Returns 1 if the state changed. */
static int refresh(fk_bal_backend *b, int64_t now)
{
	if (b->state == FK_BAL_DOWN && now >= b->down_until) {
		b->state = FK_BAL_PROBING;
		return 1;
	}
	return 0;
}

/* backoff_base_ms << (k - 1), capped at backoff_max_ms; k >= 1. */
static int64_t backoff_ms(const fk_bal_config *c, unsigned k)
{
	int64_t d = c->backoff_base_ms;
	for (unsigned i = 1; i < k && d < c->backoff_max_ms; i++)
		d = d > c->backoff_max_ms / 2 ? c->backoff_max_ms : d * 2;
	return d < c->backoff_max_ms ? d : c->backoff_max_ms;
}

static void eject(const fk_bal_config *c, fk_bal_backend *b, int64_t now)
{
	if (b->ejections < UINT_MAX)
		b->ejections++;
	b->ejections_total++;
	b->state = FK_BAL_DOWN;
	b->down_until = sat_add(now, backoff_ms(c, b->ejections));
	b->nfail = 0;
	b->probe_fails = 0;
	/* Leaves the smooth-WRR rotation: start afresh when it comes back, rather than with
	 * whatever credit it had, which could give it a burst on return. */
	b->wrr_current = 0;
}

static void mark_up(fk_bal_backend *b)
{
	b->state = FK_BAL_UP;
	b->ejections = 0;
	b->nfail = 0;
}

void fk_bal_report_success(fk_bal_group *g, int idx, int64_t now)
{
	if (!valid_idx(g, idx))
		return;
	fk_bal_backend *b = &g->b[idx];
	refresh(b, now);
	mark_up(b);
}

/* Drops remembered failures that fell out of the window at `now`. */
static void prune_failures(const fk_bal_config *c, fk_bal_backend *b, int64_t now)
{
	unsigned keep = 0;
	for (unsigned i = 0; i < b->nfail; i++)
		if (elapsed(now, b->fail_at[i]) < c->fail_window_ms)
			b->fail_at[keep++] = b->fail_at[i];
	b->nfail = keep;
}

void fk_bal_report_failure(fk_bal_group *g, int idx, int64_t now, fk_bal_fail_kind kind)
{
	if (!valid_idx(g, idx))
		return;
	fk_bal_backend *b = &g->b[idx];
	const fk_bal_config *c = &g->cfg;
	refresh(b, now);
	b->fails_total++;
	if ((unsigned)kind < FK_BAL_FAIL_KINDS)
		b->fails_by_kind[kind]++;
	switch (b->state) {
	case FK_BAL_UP:
		if (c->fails == 0)
			return;
		prune_failures(c, b, now);
		if (b->nfail == FK_BAL_MAX_FAILS) { /* only the last `fails` matter */
			memmove(b->fail_at, b->fail_at + 1,
			        (FK_BAL_MAX_FAILS - 1) * sizeof b->fail_at[0]);
			b->nfail--;
		}
		b->fail_at[b->nfail++] = now;
		if (b->nfail >= c->fails)
			eject(c, b, now);
		return;
	case FK_BAL_PROBING: /* the half-open trial failed */
		eject(c, b, now);
		return;
	case FK_BAL_DOWN: /* already ejected: the ejection is not extended */
		return;
	}
}

void fk_bal_report_overloaded(fk_bal_group *g, int idx, int64_t now)
{
	if (!valid_idx(g, idx))
		return;
	fk_bal_backend *b = &g->b[idx];
	refresh(b, now);
	b->overloads_total++;
	int64_t until = sat_add(now, g->cfg.overload_ms);
	if (until > b->overload_until)
		b->overload_until = until;
	if (g->cfg.overload_lowers_capacity) {
		unsigned held = b->outstanding ? b->outstanding : 1;
		if (b->cap_learned == 0 || held < b->cap_learned)
			b->cap_learned = held;
	}
}

void fk_bal_probe_result(fk_bal_group *g, int idx, int ok, int64_t now)
{
	if (!valid_idx(g, idx))
		return;
	fk_bal_backend *b = &g->b[idx];
	refresh(b, now);
	if (ok) {
		mark_up(b);
		b->probe_fails = 0;
		return;
	}
	if (b->probe_fails < UINT_MAX)
		b->probe_fails++;
	switch (b->state) {
	case FK_BAL_UP:
		if (g->cfg.fails != 0 && b->probe_fails >= g->cfg.fails)
			eject(&g->cfg, b, now);
		return;
	case FK_BAL_PROBING:
		eject(&g->cfg, b, now);
		return;
	case FK_BAL_DOWN:
		return;
	}
}

int fk_bal_tick(fk_bal_group *g, int64_t now)
{
	int changed = 0;
	for (size_t i = 0; g && i < g->n; i++)
		changed += refresh(&g->b[i], now);
	return changed;
}

fk_bal_state fk_bal_backend_state(fk_bal_group *g, int idx, int64_t now)
{
	if (!valid_idx(g, idx))
		return FK_BAL_DOWN;
	refresh(&g->b[idx], now);
	return g->b[idx].state;
}

int64_t fk_bal_next_event(const fk_bal_group *g, int64_t now)
{
	int64_t next = FK_BAL_NEVER;
	for (size_t i = 0; g && i < g->n; i++) {
		const fk_bal_backend *b = &g->b[i];
		if (b->state == FK_BAL_DOWN) {
			int64_t t = b->down_until > now ? b->down_until : now;
			if (t < next)
				next = t;
		}
		if (b->overload_until > now && b->overload_until < next)
			next = b->overload_until;
	}
	return next;
}

const char *fk_bal_state_name(fk_bal_state s)
{
	switch (s) {
	case FK_BAL_UP:
		return "UP";
	case FK_BAL_DOWN:
		return "DOWN";
	case FK_BAL_PROBING:
		return "PROBING";
	}
	return "?";
}

const char *fk_bal_fail_kind_name(fk_bal_fail_kind k)
{
	switch (k) {
	case FK_BAL_FAIL_CONNECT:
		return "connect";
	case FK_BAL_FAIL_TIMEOUT:
		return "timeout";
	case FK_BAL_FAIL_RESET:
		return "reset";
	case FK_BAL_FAIL_PROTOCOL:
		return "protocol";
	case FK_BAL_FAIL_KINDS:
		break;
	}
	return "?";
}

/* ------------------------------------------------------------------ selection */

static int under_capacity(const fk_bal_backend *b)
{
	unsigned cap = eff_capacity(b);
	return cap == 0 || b->outstanding < cap;
}

/* The eligibility rule of balance.h, after the lazy transition. */
static int eligible(fk_bal_backend *b, int idx, int64_t now, const fk_bal_tried *tried)
{
	refresh(b, now);
	if (!b->enabled || fk_bal_tried_has(tried, idx) || now < b->overload_until ||
	    !under_capacity(b))
		return 0;
	return b->state == FK_BAL_UP || (b->state == FK_BAL_PROBING && b->outstanding == 0);
}

/* The all-down fallback (balance.h): -1 unless enabled and no enabled, untried backend is
 * UP; else the soonest-to-recover usable one. */
static int fallback(fk_bal_group *g, int64_t now, const fk_bal_tried *tried)
{
	if (!g->cfg.all_down_fallback)
		return -1;
	int best = -1;
	int64_t best_t = 0;
	for (size_t i = 0; i < g->n; i++) {
		fk_bal_backend *b = &g->b[i];
		refresh(b, now);
		if (!b->enabled || fk_bal_tried_has(tried, (int)i))
			continue;
		if (b->state == FK_BAL_UP)
			return -1; /* full or overloaded, not down: the caller queues */
		if (now < b->overload_until || !under_capacity(b))
			continue;
		int64_t t = b->state == FK_BAL_PROBING ? INT64_MIN : b->down_until;
		if (best < 0 || t < best_t) {
			best = (int)i;
			best_t = t;
		}
	}
	return best;
}

int fk_bal_pick_wrr(fk_bal_group *g, int64_t now, const fk_bal_tried *tried)
{
	if (!g)
		return -1;
	int best = -1;
	int64_t total = 0;
	for (size_t i = 0; i < g->n; i++) {
		fk_bal_backend *b = &g->b[i];
		if (!eligible(b, (int)i, now, tried))
			continue;
		/* |current| stays below the sum of weights (<= 1000 * 1024): no overflow. */
		b->wrr_current += b->weight;
		total += b->weight;
		if (best < 0 || b->wrr_current > g->b[best].wrr_current)
			best = (int)i;
	}
	if (best < 0)
		return fallback(g, now, tried);
	g->b[best].wrr_current -= total;
	return best;
}

int fk_bal_pick_least(fk_bal_group *g, int64_t now, const fk_bal_tried *tried)
{
	if (!g)
		return -1;
	int best = -1;
	size_t start = g->least_next % g->n;
	for (size_t k = 0; k < g->n; k++) {
		size_t i = (start + k) % g->n;
		fk_bal_backend *b = &g->b[i];
		if (!eligible(b, (int)i, now, tried))
			continue;
		/* o_i / w_i < o_best / w_best, cross-multiplied: exact, < 2^32 * 1000. Strict, so
		 * the first of equals in scan order (i.e. after the last pick) wins. */
		if (best < 0 || (uint64_t)b->outstanding * g->b[best].weight <
		                        (uint64_t)g->b[best].outstanding * b->weight)
			best = (int)i;
	}
	if (best < 0)
		return fallback(g, now, tried);
	g->least_next = (size_t)best + 1;
	return best;
}

int fk_bal_pick_hash(fk_bal_group *g, int64_t now, const void *key, size_t len,
                     const fk_bal_tried *tried)
{
	if (!g || !g->ring || (!key && len))
		return -1;
	uint64_t h = fk_bal_hash(key, len);
	/* Lower bound: the first point with hash >= h; past the end wraps to 0. */
	size_t lo = 0, hi = g->nring;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (g->ring[mid].hash < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Walk clockwise, looking at each distinct backend once, in ring order. */
	fk_bal_tried seen = {{0}};
	size_t nseen = 0;
	for (size_t k = 0; k < g->nring && nseen < g->n; k++) {
		size_t pos = lo + k;
		if (pos >= g->nring)
			pos -= g->nring;
		int idx = (int)g->ring[pos].idx;
		if (fk_bal_tried_has(&seen, idx))
			continue;
		fk_bal_tried_add(&seen, idx);
		nseen++;
		if (eligible(&g->b[idx], idx, now, tried))
			return idx;
	}
	return fallback(g, now, tried);
}

int fk_bal_pick(fk_bal_group *g, int64_t now, const void *key, size_t len,
                const fk_bal_tried *tried)
{
	if (!g)
		return -1;
	switch (g->cfg.policy) {
	case FK_BAL_WRR:
		return fk_bal_pick_wrr(g, now, tried);
	case FK_BAL_LEAST:
		return fk_bal_pick_least(g, now, tried);
	case FK_BAL_HASH:
		return fk_bal_pick_hash(g, now, key, len, tried);
	}
	return -1;
}

void fk_bal_acquire(fk_bal_group *g, int idx)
{
	if (valid_idx(g, idx) && g->b[idx].outstanding < UINT_MAX)
		g->b[idx].outstanding++;
}

void fk_bal_release(fk_bal_group *g, int idx)
{
	if (valid_idx(g, idx) && g->b[idx].outstanding > 0)
		g->b[idx].outstanding--;
}

/* ------------------------------------------------------------------ waiting queue */

/* ceil(ms / 1000) as seconds, at least 1, at most UINT_MAX. */
static unsigned ceil_secs(int64_t ms)
{
	if (ms <= 0)
		return 1;
	int64_t s = ms / 1000 + (ms % 1000 != 0);
	return s > UINT_MAX ? UINT_MAX : (unsigned)s;
}

fk_bal_queue_verdict fk_bal_queue_admit(const fk_bal_queue_conf *c, const fk_bal_queue_state *s,
                                        int64_t now)
{
	fk_bal_queue_verdict v = {0, 1, 0};
	unsigned upper = ceil_secs(c->max_wait_ms);
	int stuck = s->len > 0 && elapsed(now, s->oldest_since) >= c->max_wait_ms;
	if (c->capacity > 0 && s->len < c->capacity && !stuck) {
		v.admit = 1;
		v.deadline = sat_add(now, c->max_wait_ms > 0 ? c->max_wait_ms : 0);
		return v;
	}
	unsigned ra = upper;
	if (s->drain_per_sec > 0) {
		uint64_t ahead = (uint64_t)s->len + 1;
		uint64_t secs = (ahead + s->drain_per_sec - 1) / s->drain_per_sec;
		ra = secs < upper ? (unsigned)secs : upper;
	}
	v.retry_after = ra ? ra : 1;
	return v;
}

int fk_bal_queue_expired(const fk_bal_queue_conf *c, int64_t since, int64_t now)
{
	return elapsed(now, since) >= c->max_wait_ms;
}
