/* client.c — the client: options, the loop pass, dispatch onto connections, the pool,
 * timeouts and GET_VALUES (see client_int.h for the model). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_int.h"
#include "util/alloc.h"

/* The client's own GET_VALUES waits this long at most for an answer: some applications
 * ignore management records, and the first request should not wait a full read timeout. */
enum { FK_PROBE_TIMEOUT_MS = 2000 };

/* ---------------------------------------------------------------- request lists */

void fk_rl_push(fk_rlist *l, fcgi_client_req *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
}

void fk_rl_push_front(fk_rlist *l, fcgi_client_req *r)
{
	r->prev = NULL;
	r->next = l->head;
	if (l->head)
		l->head->prev = r;
	else
		l->tail = r;
	l->head = r;
}

void fk_rl_remove(fk_rlist *l, fcgi_client_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->prev = r->next = NULL;
}

/* ---------------------------------------------------------------- the client */

static const long opt_default[FK_CL_NOPTS] = {
    [FCGI_CLIENT_CONNECT_TIMEOUT_MS] = 10000,
    [FCGI_CLIENT_READ_TIMEOUT_MS] = 60000,
    [FCGI_CLIENT_WRITE_TIMEOUT_MS] = 60000,
    [FCGI_CLIENT_IDLE_TIMEOUT_MS] = 60000,
    [FCGI_CLIENT_KEEP_CONN] = 1,
    [FCGI_CLIENT_MAX_CONNS] = 8,
    [FCGI_CLIENT_MAX_IDLE] = 8,
    [FCGI_CLIENT_MPX] = 1,
    [FCGI_CLIENT_MAX_REQS_PER_CONN] = 64,
    [FCGI_CLIENT_MAX_BUFFERED] = 256L * 1024 * 1024,
};

FCGI_EXPORT int fcgi_client_new(fcgi_client **out, const char *address)
{
	if (!out || !address)
		return FCGI_EINVAL;
	*out = NULL;
	fcgi_client *c = fk_calloc(1, sizeof *c);
	if (!c)
		return FCGI_ENOMEM;
	int rc = fk_addr_parse(address, &c->addr);
	if (rc) {
		fk_free(c);
		return rc;
	}
	c->address = fk_strdup(address);
	c->rbuf = fk_malloc(FK_CL_RBUF);
	if (!c->address || !c->rbuf || fk_ev_init(&c->ev)) {
		fk_free(c->address);
		fk_free(c->rbuf);
		fk_free(c);
		return FCGI_ENOMEM;
	}
	memcpy(c->opt, opt_default, sizeof c->opt);
	c->mpxs = -1;
	c->now = fk_now_ms();
	*out = c;
	return FCGI_OK;
}

static void free_values(fk_values *v)
{
	fk_buf_free(&v->rec);
	fk_params_free(v->result);
	fk_free(v);
}

FCGI_EXPORT void fcgi_client_free(fcgi_client *c)
{
	if (!c)
		return;
	while (c->conns) {
		fk_cconn *k = c->conns;
		/* Requests are freed below; nobody is told. */
		for (uint32_t i = 0; i < k->nslots; i++)
			if (k->slots[i])
				k->slots[i]->conn = NULL;
		k->nactive = 0;
		k->values = NULL;
		fk_cc_close_quiet(k);
	}
	while (c->dead) {
		fk_cconn *k = c->dead;
		c->dead = k->next_dead;
		fk_cc_free(k);
	}
	while (c->all) {
		fcgi_client_req *r = c->all;
		r->flags &= ~(uint32_t)FK_RF_OWNS_CLIENT;
		fk_cr_destroy(r);
	}
	while (c->values) {
		fk_values *v = c->values;
		c->values = v->next;
		free_values(v);
	}
	fk_ev_close(&c->ev);
	fk_free(c->rbuf);
	fk_free(c->address);
	fk_free(c);
}

FCGI_EXPORT int fcgi_client_set_opt(fcgi_client *c, fcgi_client_opt opt, long value)
{
	if (!c || opt < FCGI_CLIENT_CONNECT_TIMEOUT_MS || opt > FCGI_CLIENT_MAX_BUFFERED)
		return FCGI_EINVAL;
	long lo = 0, hi = INT_MAX;
	switch (opt) {
	case FCGI_CLIENT_KEEP_CONN: hi = 1; break;
	case FCGI_CLIENT_MPX: hi = 2; break;
	case FCGI_CLIENT_MAX_CONNS: lo = 1; hi = 65536; break;
	case FCGI_CLIENT_MAX_IDLE: hi = 65536; break;
	case FCGI_CLIENT_MAX_REQS_PER_CONN: lo = 1; hi = 1024; break;
	case FCGI_CLIENT_MAX_BUFFERED: hi = LONG_MAX; break;
	default: break;
	}
	if (value < lo || value > hi)
		return FCGI_EINVAL;
	c->opt[opt] = value;
	return FCGI_OK;
}

FCGI_EXPORT long fcgi_client_get_opt(const fcgi_client *c, fcgi_client_opt opt)
{
	if (!c || opt < FCGI_CLIENT_CONNECT_TIMEOUT_MS || opt > FCGI_CLIENT_MAX_BUFFERED)
		return FCGI_EINVAL;
	return c->opt[opt];
}

FCGI_EXPORT int fcgi_client_mpxs(const fcgi_client *c) { return c ? c->mpxs : -1; }

FCGI_EXPORT const char *fcgi_client_last_error(const fcgi_client *c)
{
	return c ? c->last_error : "";
}

FCGI_EXPORT int fcgi_client_fd(const fcgi_client *c) { return c ? fk_ev_fd(&c->ev) : -1; }

/* Whether requests may share connections now. */
static int mpx_on(const fcgi_client *c)
{
	switch (c->opt[FCGI_CLIENT_MPX]) {
	case 1: return c->mpxs == 1 && c->opt[FCGI_CLIENT_KEEP_CONN];
	case 2: return c->mpxs != 0 && c->opt[FCGI_CLIENT_KEEP_CONN];
	default: return 0;
	}
}

uint32_t fk_cl_slots_wanted(const fcgi_client *c)
{
	if (!mpx_on(c))
		return 1;
	uint32_t n = (uint32_t)c->opt[FCGI_CLIENT_MAX_REQS_PER_CONN];
	if (c->max_per_conn && c->max_per_conn < n)
		n = c->max_per_conn;
	return n ? n : 1;
}

/* ---------------------------------------------------------------- request outcomes */

void fk_cl_complete(fcgi_client_req *r, int err, int sys_errno, const char *msg)
{
	fcgi_client *c = r->c;
	if (r->state == FK_CR_DONE)
		return;
	if (r->state == FK_CR_QUEUED)
		fk_rl_remove(&c->queue, r);
	if (r->conn)
		fk_cc_release_slot(r->conn, r);
	fk_cs_unregister(&r->src[0]);
	fk_cs_unregister(&r->src[1]);
	r->state = FK_CR_DONE;
	r->error = err;
	if (sys_errno)
		r->sys_errno = sys_errno;
	if (msg)
		snprintf(r->msg, sizeof r->msg, "%s", msg);
	else if (!r->msg[0])
		snprintf(r->msg, sizeof r->msg, "%s", fcgi_strerror(err));
	c->active--;
	r->flags |= FK_RF_CB_PENDING;
	fk_rl_push(&c->done, r);
}

int fk_cl_retryable(const fcgi_client_req *r)
{
	return !(r->flags & FK_RF_RETRIED) && fk_cs_rewindable(&r->src[0]) &&
	       fk_cs_rewindable(&r->src[1]);
}

void fk_cl_requeue(fcgi_client_req *r)
{
	fcgi_client *c = r->c;
	if (r->conn)
		fk_cc_release_slot(r->conn, r);
	fk_cs_unregister(&r->src[0]);
	fk_cs_unregister(&r->src[1]);
	fk_cs_rewind(&r->src[0]);
	fk_cs_rewind(&r->src[1]);
	r->flags |= FK_RF_RETRIED;
	r->flags &= ~(uint32_t)(FK_RF_GOT_BYTES | FK_RF_MPX | FK_RF_STDOUT_END | FK_RF_STDERR_END);
	r->state = FK_CR_QUEUED;
	r->phase = FK_SP_HEAD;
	r->id = 0;
	r->protocol_status = -1;
	r->msg[0] = 0;
	fk_buf_reset(&r->out);
	fk_buf_reset(&r->err);
	fk_rl_push_front(&c->queue, r);
	c->kick = 1;
}

/* A connection's requests are all done: keep it in the pool, or close it. */
void fk_cl_idle_check(fk_cconn *k)
{
	fcgi_client *c = k->c;
	if (k->state != FK_CC_READY || fk_cli_inflight(&k->cli) || k->senders || k->values ||
	    k->nactive)
		return;
	if (k->flags & FK_CF_CLOSING) {
		fk_cc_close_quiet(k);
		return;
	}
	k->idle_since = c->now;
	k->flags |= FK_CF_REUSED;
	long idle = 0;
	for (fk_cconn *o = c->conns; o; o = o->next)
		idle += fk_cc_idle(o);
	if (idle > c->opt[FCGI_CLIENT_MAX_IDLE])
		fk_cc_close_quiet(k);
}

/* ---------------------------------------------------------------- GET_VALUES */

static const char *const std_names[] = {"FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"};

static fk_values *start_values(fcgi_client *c, const char *const *names, size_t n, int probe)
{
	fk_values *v = fk_calloc(1, sizeof *v);
	if (!v)
		return NULL;
	v->probe = (uint8_t)probe;
	if (!names) {
		names = std_names;
		n = 3;
	}
	int rc = fk_encode_get_values(&v->rec, names, n);
	if (rc) {
		fk_buf_free(&v->rec);
		fk_free(v);
		return NULL;
	}
	v->next = c->values;
	c->values = v;
	int err, se;
	fk_cconn *k = fk_cc_open(c, &err, &se, v->msg, sizeof v->msg);
	if (!k) {
		v->done = 1;
		v->err = err;
		return v;
	}
	/* Not a pooled connection until the answer is in: no request goes on it before. */
	k->flags &= ~(uint8_t)FK_CF_CLOSING;
	k->values = v;
	v->conn = k;
	v->connected = k->state == FK_CC_READY;
	if (fk_buf_append(&k->out, fk_buf_head(&v->rec), fk_buf_size(&v->rec))) {
		fk_cc_fail(k, FCGI_ENOMEM, 0, "out of memory");
		return v;
	}
	fk_cc_mark_dirty(k);
	return v;
}

/* What a finished probe means for the requests waiting on it. */
static void probe_finished(fcgi_client *c, fk_values *v)
{
	c->probing = 0;
	if (!v->err || v->connected) {
		if (c->mpxs < 0)
			c->mpxs = 0;
		return;
	}
	/* The backend cannot be reached: the queued requests would fail the same way. */
	while (c->queue.head)
		fk_cl_complete(c->queue.head, v->err, 0, v->msg);
}

void fk_cl_values_answer(fk_cconn *k, int err, const uint8_t *pairs, size_t len,
                         const char *msg)
{
	fcgi_client *c = k->c;
	fk_values *v = k->values;
	if (!v)
		return;
	k->values = NULL;
	v->conn = NULL;
	v->done = 1;
	v->err = err;
	if (msg)
		snprintf(v->msg, sizeof v->msg, "%s", msg);
	if (!err && pairs && len) {
		int rc = fk_params_parse(pairs, len, 1024, &v->result);
		if (rc)
			v->err = rc;
	}
	if (v->result) {
		for (size_t i = 0; i < v->result->count; i++) {
			const struct fk_param *p = &v->result->items[i];
			if (!strcmp(p->name, "FCGI_MPXS_CONNS"))
				c->mpxs = !strcmp(p->value, "1");
			else if (!strcmp(p->name, "FCGI_MAX_REQS") && atol(p->value) > 0)
				c->max_per_conn = (uint32_t)(atol(p->value) > 1024 ? 1024 : atol(p->value));
			else if (!strcmp(p->name, "FCGI_MAX_CONNS") && atol(p->value) > 0)
				c->max_conns = (uint32_t)(atol(p->value) > 65536 ? 65536 : atol(p->value));
		}
	}
	if (!v->err && v->probe && c->mpxs < 0)
		c->mpxs = 0; /* answered without FCGI_MPXS_CONNS, or UNKNOWN_TYPE */
	if (v->probe)
		probe_finished(c, v);
}

FCGI_EXPORT int fcgi_client_get_values(fcgi_client *c, const char *const *names, size_t n,
                                       fcgi_client_values_cb cb, void *ud)
{
	if (!c || (names && !n))
		return FCGI_EINVAL;
	fk_values *v = start_values(c, names, n, 0);
	if (!v)
		return FCGI_ENOMEM;
	v->cb = cb;
	v->ud = ud;
	c->kick = 1;
	return FCGI_OK;
}

static void report_values(fcgi_client *c)
{
	fk_values **pv = &c->values;
	while (*pv) {
		fk_values *v = *pv;
		if (!v->done) {
			pv = &v->next;
			continue;
		}
		*pv = v->next;
		if (!v->probe && v->cb) {
			size_t n = v->err || !v->result ? 0 : v->result->count;
			fcgi_client_param *arr = n ? fk_calloc(n, sizeof *arr) : NULL;
			if (n && !arr) {
				v->cb(c, FCGI_ENOMEM, NULL, 0, v->ud);
			} else {
				for (size_t i = 0; i < n; i++)
					arr[i] = (fcgi_client_param){v->result->items[i].name,
					                             v->result->items[i].value};
				v->cb(c, v->err, arr, n, v->ud);
			}
			fk_free(arr);
		}
		free_values(v);
	}
}

/* ---------------------------------------------------------------- dispatch */

/* skip_paused: leave out connections carrying a paused request (joining one ends its hold,
 * and its caller must then take output it asked not to get). */
static fk_cconn *pick_conn(fcgi_client *c, int skip_paused)
{
	uint32_t per = fk_cl_slots_wanted(c);
	fk_cconn *best = NULL;
	for (fk_cconn *k = c->conns; k; k = k->next) {
		if (k->values || (k->flags & FK_CF_CLOSING) || k->state == FK_CC_DEAD ||
		    (skip_paused && k->npaused))
			continue;
		uint32_t busy = fk_cli_inflight(&k->cli);
		if (busy >= per)
			continue;
		/* Fill the busiest connection that has room (multiplexing), or take the most
		 * recently idle one (warm), so that extra connections close when idle. */
		if (!best || busy > fk_cli_inflight(&best->cli) ||
		    (busy == fk_cli_inflight(&best->cli) && k->idle_since >= best->idle_since))
			best = k;
	}
	return best;
}

static void dispatch(fcgi_client *c)
{
	while (c->queue.head) {
		fcgi_client_req *r = c->queue.head;
		if (r->deadline && r->deadline <= c->now) {
			char msg[96];
			snprintf(msg, sizeof msg, "timed out after %u ms waiting for a connection",
			         r->timeout_ms);
			fk_cl_complete(r, FCGI_ETIMEDOUT, 0, msg);
			continue;
		}
		if (c->opt[FCGI_CLIENT_MPX] == 1 && c->mpxs < 0 && c->opt[FCGI_CLIENT_KEEP_CONN]) {
			/* Ask once whether the backend multiplexes before choosing how to send. */
			if (!c->probing) {
				c->probing = 1;
				fk_values *v = start_values(c, NULL, 0, 1);
				if (!v) {
					c->probing = 0;
					c->mpxs = 0;
				} else if (v->done) {
					probe_finished(c, v); /* could not even connect */
				}
			}
			if (c->probing)
				return;
			continue; /* answered: mpxs is known, or the queue failed */
		}
		fk_cconn *k = pick_conn(c, 1);
		if (!k) {
			long max = c->opt[FCGI_CLIENT_MAX_CONNS];
			if (c->max_conns && c->max_conns < max)
				max = c->max_conns; /* what the application said it accepts */
			if ((long)c->nconns >= max) {
				k = pick_conn(c, 0); /* no room elsewhere: share after all */
				if (!k)
					return;
			} else {
				int err, se;
				char msg[200];
				k = fk_cc_open(c, &err, &se, msg, sizeof msg);
				if (!k) {
					fk_cl_complete(r, err, se, msg);
					continue;
				}
			}
		}
		fk_rl_remove(&c->queue, r);
		r->state = FK_CR_ACTIVE; /* off the queue, not on a connection */
		int rc = fk_cc_assign(k, r);
		if (rc)
			fk_cl_complete(r, rc, 0, NULL);
	}
}

static void flush_dirty(fcgi_client *c)
{
	while (c->dirty) {
		fk_cconn *k = c->dirty;
		c->dirty = k->next_dirty;
		k->next_dirty = NULL;
		k->flags &= ~(uint8_t)FK_CF_DIRTY;
		fk_cc_flush(k);
	}
}

/* ---------------------------------------------------------------- timeouts */

static int64_t min_deadline(int64_t a, int64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

static long read_timeout(const fcgi_client *c, const fk_cconn *k)
{
	long rt = c->opt[FCGI_CLIENT_READ_TIMEOUT_MS];
	if (k->values && k->values->probe && (!rt || rt > FK_PROBE_TIMEOUT_MS))
		rt = FK_PROBE_TIMEOUT_MS;
	return rt;
}

/* The next moment something about k must be checked, or 0. */
static int64_t conn_deadline(const fcgi_client *c, const fk_cconn *k)
{
	long ct = c->opt[FCGI_CLIENT_CONNECT_TIMEOUT_MS], wt = c->opt[FCGI_CLIENT_WRITE_TIMEOUT_MS],
	     it = c->opt[FCGI_CLIENT_IDLE_TIMEOUT_MS], rt = read_timeout(c, k);
	if (k->state == FK_CC_CONNECTING)
		return ct ? k->t_open + ct : 0;
	int64_t d = 0;
	if (fk_cc_holds(k))
		return 0; /* its caller paused it: silence either way is ours, not the peer's */
	if (k->stalled_since && wt && fk_buf_size(&k->out))
		d = k->stalled_since + wt;
	if ((fk_cli_inflight(&k->cli) || k->values) && rt)
		d = min_deadline(d, k->last_io + rt);
	if (k->idle_since && it && fk_cc_idle(k))
		d = min_deadline(d, k->idle_since + it);
	return d;
}

static void timeout_active(fcgi_client_req *r)
{
	fk_cconn *k = r->conn;
	char msg[96];
	snprintf(msg, sizeof msg, "timed out after %u ms", r->timeout_ms);
	if (fk_cli_inflight(&k->cli) <= 1 && !k->values) {
		fk_cc_fail(k, FCGI_ETIMEDOUT, 0, msg);
		return;
	}
	/* Others share the connection: abort this one alone; its id stays taken until the
	 * application's END_REQUEST. */
	r->abort_error = FCGI_ETIMEDOUT;
	fk_cc_send_abort(k, r);
	fk_cl_complete(r, FCGI_ETIMEDOUT, 0, msg);
}

static void sweep(fcgi_client *c)
{
	int64_t now = c->now;
	fk_cconn *next;
	for (fk_cconn *k = c->conns; k; k = next) {
		next = k->next;
		for (uint32_t i = 0; i < k->nslots && k->state != FK_CC_DEAD; i++) {
			fcgi_client_req *r = k->slots[i];
			if (r && r->deadline && r->deadline <= now)
				timeout_active(r);
		}
		if (k->state == FK_CC_DEAD) {
			continue;
		}
		int64_t d = conn_deadline(c, k);
		if (!d || d > now)
			continue;
		char msg[200];
		if (k->state == FK_CC_CONNECTING) {
			snprintf(msg, sizeof msg, "connect to %s: timed out after %ld ms", c->address,
			         c->opt[FCGI_CLIENT_CONNECT_TIMEOUT_MS]);
			fk_cc_fail(k, FCGI_ETIMEDOUT, 0, msg);
		} else if (k->stalled_since && fk_buf_size(&k->out) &&
		           now - k->stalled_since >= c->opt[FCGI_CLIENT_WRITE_TIMEOUT_MS] &&
		           c->opt[FCGI_CLIENT_WRITE_TIMEOUT_MS]) {
			snprintf(msg, sizeof msg, "sending to %s: no progress for %ld ms", c->address,
			         c->opt[FCGI_CLIENT_WRITE_TIMEOUT_MS]);
			fk_cc_fail(k, FCGI_ETIMEDOUT, 0, msg);
		} else if (fk_cc_idle(k)) {
			fk_cc_close_quiet(k);
		} else {
			snprintf(msg, sizeof msg, "no answer from %s within %ld ms", c->address,
			         read_timeout(c, k));
			fk_cc_fail(k, FCGI_ETIMEDOUT, 0, msg);
		}
	}
	/* Requests still queued: dispatch() times them out. */
}

static int64_t next_deadline(const fcgi_client *c)
{
	int64_t d = 0;
	for (const fk_cconn *k = c->conns; k; k = k->next) {
		d = min_deadline(d, conn_deadline(c, k));
		for (uint32_t i = 0; i < k->nslots; i++)
			if (k->slots[i])
				d = min_deadline(d, k->slots[i]->deadline);
	}
	for (const fcgi_client_req *r = c->queue.head; r; r = r->next)
		d = min_deadline(d, r->deadline);
	return d;
}

static int work_due(const fcgi_client *c)
{
	if (c->kick || c->done.head)
		return 1;
	for (const fk_cconn *k = c->nheld ? c->conns : NULL; k; k = k->next)
		if (fk_buf_size(&k->held) && !fk_cc_holds(k))
			return 1;
	for (const fk_values *v = c->values; v; v = v->next)
		if (v->done)
			return 1;
	return 0;
}

FCGI_EXPORT int fcgi_client_next_timeout(const fcgi_client *c)
{
	if (!c)
		return -1;
	if (work_due(c))
		return 0;
	int64_t d = next_deadline(c);
	if (!d)
		return -1;
	int64_t left = d - fk_now_ms();
	return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

/* ---------------------------------------------------------------- the loop */

static void deliver(fcgi_client *c)
{
	report_values(c);
	while (c->done.head) {
		fcgi_client_req *r = c->done.head;
		fk_rl_remove(&c->done, r);
		r->flags &= ~(uint32_t)FK_RF_CB_PENDING;
		if (r->flags & FK_RF_ORPHAN) {
			fk_cr_destroy(r);
			continue;
		}
		if (r->on_done)
			r->on_done(r, r->error, r->done_ud); /* may free r */
	}
}

int fk_cl_process(fcgi_client *c, int timeout_ms)
{
	if (c->in_pass)
		return FCGI_ESTATE;
	c->in_pass = 1;
	c->now = fk_now_ms();
	c->kick = 0;
	dispatch(c);
	flush_dirty(c);
	int t = timeout_ms, rc = FCGI_OK;
	if (work_due(c)) {
		t = 0;
	} else {
		int64_t d = next_deadline(c);
		if (d) {
			int64_t left = d - c->now;
			if (left < 0)
				left = 0;
			if (t < 0 || left < t)
				t = left > INT_MAX ? INT_MAX : (int)left;
		}
	}
	fk_ev_item items[64];
	int n = 0;
	if (fk_ev_prepare(&c->ev) == FCGI_OK)
		n = fk_ev_wait(&c->ev, items, 64, t);
	if (n < 0) {
		rc = n;
		n = 0;
	}
	c->now = fk_now_ms();
	for (int i = 0; i < n; i++) {
		int kind = *(int *)items[i].ptr;
		if (kind == FK_CO_CONN) {
			fk_cconn *k = items[i].ptr;
			if (k->state != FK_CC_DEAD)
				fk_cc_on_event(k, items[i].events);
		} else if (kind == FK_CO_SRC) {
			fk_cs_on_event(items[i].ptr, items[i].events);
		}
	}
	sweep(c);
	dispatch(c);
	/* Connections whose hold ended (a resume, a request joining): feed what was held. */
	for (fk_cconn *k = c->nheld ? c->conns : NULL, *next; k; k = next) {
		next = k->next;
		fk_cc_drain(k);
	}
	flush_dirty(c);
	deliver(c);
	while (c->dead) {
		fk_cconn *k = c->dead;
		c->dead = k->next_dead;
		fk_cc_free(k);
	}
	c->in_pass = 0;
	return rc;
}

FCGI_EXPORT int fcgi_client_process(fcgi_client *c, int timeout_ms)
{
	return c ? fk_cl_process(c, timeout_ms) : FCGI_EINVAL;
}

static int left_ms(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t left = deadline - fk_now_ms();
	return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

FCGI_EXPORT int fcgi_client_wait(fcgi_client *c, fcgi_client_req *req, int timeout_ms)
{
	if (!c || !req || req->c != c)
		return FCGI_EINVAL;
	if (c->in_pass)
		return FCGI_ESTATE;
	if (req->state == FK_CR_NEW)
		return FCGI_ESTATE;
	int64_t deadline = timeout_ms < 0 ? -1 : fk_now_ms() + timeout_ms;
	req->flags |= FK_RF_WAITED;
	int rc = FCGI_OK;
	while ((req->state != FK_CR_DONE || (req->flags & FK_RF_CB_PENDING)) &&
	       !(req->flags & FK_RF_FREE_AFTER_WAIT)) {
		int left = left_ms(deadline);
		if (left == 0) {
			rc = FCGI_ETIMEDOUT;
			break;
		}
		int prc = fk_cl_process(c, left);
		if (prc < 0 && prc != FCGI_ESTATE) {
			rc = prc;
			break;
		}
	}
	req->flags &= ~(uint32_t)FK_RF_WAITED;
	if (req->flags & FK_RF_FREE_AFTER_WAIT) {
		req->flags &= ~(uint32_t)FK_RF_FREE_AFTER_WAIT;
		fcgi_client_req_free(req);
	}
	return rc;
}

FCGI_EXPORT int fcgi_client_run(fcgi_client *c, int timeout_ms)
{
	if (!c)
		return FCGI_EINVAL;
	if (c->in_pass)
		return FCGI_ESTATE;
	int64_t deadline = timeout_ms < 0 ? -1 : fk_now_ms() + timeout_ms;
	while (c->active || c->done.head || c->values || c->kick) {
		int left = left_ms(deadline);
		if (left == 0)
			return FCGI_ETIMEDOUT;
		int rc = fk_cl_process(c, left);
		if (rc < 0)
			return rc;
	}
	return FCGI_OK;
}
