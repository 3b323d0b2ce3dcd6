/* req.c — the request API: parameters, body, response, finish, abort (see fcgikit.h). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app_int.h"
#include "app/wake.h"
#include "util/alloc.h"

enum {
	FLUSH_AT = 32768, /* buffered response bytes that trigger a send before finish */
	PRINTF_STACK = 1024,
};

static void req_lock(const fcgi_req *r) { fk_app_lock(r->app); }
static void req_unlock(const fcgi_req *r) { fk_app_unlock(r->app); }

FCGI_EXPORT fcgi_role fcgi_req_role(const fcgi_req *req) { return (fcgi_role)req->role; }
FCGI_EXPORT unsigned fcgi_req_id(const fcgi_req *req) { return req->id; }
FCGI_EXPORT int fcgi_req_keep_conn(const fcgi_req *req) { return req->keep_conn; }
FCGI_EXPORT void fcgi_req_set_data(fcgi_req *req, void *data) { req->user = data; }
FCGI_EXPORT void *fcgi_req_data(const fcgi_req *req) { return req->user; }

FCGI_EXPORT const char *fcgi_param(const fcgi_req *req, const char *name)
{
	if (!req->params || !name)
		return NULL;
	size_t n = strlen(name);
	for (size_t i = 0; i < req->params->count; i++) {
		const struct fk_param *p = &req->params->items[i];
		if (p->name_len == n && !memcmp(p->name, name, n))
			return p->value;
	}
	return NULL;
}

FCGI_EXPORT size_t fcgi_param_count(const fcgi_req *req)
{
	return req->params ? req->params->count : 0;
}

FCGI_EXPORT int fcgi_param_at(const fcgi_req *req, size_t i, const char **name, size_t *name_len,
                              const char **value, size_t *value_len)
{
	if (!req->params || i >= req->params->count)
		return FCGI_EINVAL;
	const struct fk_param *p = &req->params->items[i];
	if (name)
		*name = p->name;
	if (name_len)
		*name_len = p->name_len;
	if (value)
		*value = p->value;
	if (value_len)
		*value_len = p->value_len;
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_req_aborted(const fcgi_req *req)
{
	return atomic_load_explicit(&req->aborted, memory_order_relaxed);
}

/* ---------------------------------------------------------------- body */

struct read_wait {
	fcgi_req *r;
	int data; /* 1: the DATA stream */
};

static int pred_body(fcgi_app *app, void *arg)
{
	(void)app;
	struct read_wait *w = arg;
	const fcgi_req *r = w->r;
	const fk_buf *b = w->data ? &r->data : &r->body;
	unsigned end = w->data ? FK_R_DATA_END : FK_R_STDIN_END;
	return fk_buf_size(b) || (r->flags & (end | FK_R_ABORTED | FK_R_CLOSED));
}

static ssize_t read_stream(fcgi_req *r, void *buf, size_t size, int data)
{
	fcgi_app *app = r->app;
	if (!size)
		return 0;
	req_lock(r);
	struct read_wait w = {r, data};
	if (!pred_body(app, &w)) {
		if (fk_app_on_loop_thread(app)) {
			req_unlock(r);
			return FCGI_EAGAIN;
		}
		long tmo = app->opt[FCGI_OPT_READ_TIMEOUT_MS];
		if (fk_app_wait(app, pred_body, &w, tmo ? fk_now_ms() + tmo : -1)) {
			req_unlock(r);
			return FCGI_ETIMEDOUT;
		}
	}
	fk_buf *b = data ? &r->data : &r->body;
	ssize_t rc;
	if (fk_buf_size(b)) {
		size_t n = fk_buf_size(b) < size ? fk_buf_size(b) : size;
		memcpy(buf, fk_buf_head(b), n);
		fk_buf_consume(b, n);
		rc = (ssize_t)n;
		fk_conn *c = r->conn;
		if ((r->flags & FK_R_FULL) && c &&
		    fk_buf_size(&r->body) + fk_buf_size(&r->data) < (size_t)app->opt[FCGI_OPT_BODY_BUFFER] / 2) {
			r->flags &= ~(uint32_t)FK_R_FULL;
			c->full_reqs--;
			if (!fk_conn_paused(c))
				fk_conn_schedule_resume(c);
		}
		if (!fk_buf_size(b))
			fk_buf_free(b);
	} else if (r->flags & FK_R_ABORTED) {
		rc = (r->flags & FK_R_CLOSED) ? FCGI_ECLOSED : FCGI_EABORTED;
	} else {
		rc = 0;
	}
	req_unlock(r);
	return rc;
}

FCGI_EXPORT ssize_t fcgi_read(fcgi_req *req, void *buf, size_t size)
{
	return read_stream(req, buf, size, 0);
}

FCGI_EXPORT ssize_t fcgi_read_data(fcgi_req *req, void *buf, size_t size)
{
	return read_stream(req, buf, size, 1);
}

FCGI_EXPORT int fcgi_req_on_body(fcgi_req *req, fcgi_body_cb cb, void *ud)
{
	req_lock(req);
	req->on_body = cb;
	req->on_body_ud = ud;
	fk_conn *c = req->conn;
	/* Buffered bytes are delivered by the loop, so the callback always runs there. */
	if (c && (fk_buf_size(&req->body) || fk_buf_size(&req->data) ||
	          (req->flags & (FK_R_STDIN_END | FK_R_DATA_END)))) {
		if (req->flags & FK_R_FULL) {
			req->flags &= ~(uint32_t)FK_R_FULL;
			c->full_reqs--;
		}
		c->pending_body = 1;
		fk_conn_schedule_resume(c);
	}
	req_unlock(req);
	return FCGI_OK;
}

/* ---------------------------------------------------------------- response */

static int pred_room(fcgi_app *app, void *arg)
{
	const fcgi_req *r = arg;
	return !r->conn || fk_conn_gone(r->conn) || (r->flags & (FK_R_ABORTED | FK_R_CLOSED)) ||
	       fk_buf_size(&r->conn->srv.out) < (size_t)app->opt[FCGI_OPT_OUT_BUFFER] / 2;
}

/* Moves the unlocked STDOUT buffer into the connection's output. Lock held. */
static int move_pending(fcgi_req *r)
{
	if (!fk_buf_size(&r->pending))
		return FCGI_OK;
	int rc = r->conn ? fk_srv_write(&r->conn->srv, r->id, FK_STDOUT, fk_buf_head(&r->pending),
	                                fk_buf_size(&r->pending))
	                 : FCGI_ECLOSED;
	fk_buf_reset(&r->pending);
	return rc;
}

static int write_stream(fcgi_req *r, unsigned type, const void *buf, size_t len)
{
	fcgi_app *app = r->app;
	const uint8_t *p = buf;
	int rc = FCGI_OK;
	/* An application thread's small writes collect without the lock. */
	if (type == FK_STDOUT && !fk_app_on_loop_thread(app) &&
	    fk_buf_size(&r->pending) + len <= FLUSH_AT) {
		if (atomic_load_explicit(&r->aborted, memory_order_relaxed))
			return FCGI_EABORTED;
		return fk_buf_append(&r->pending, buf, len);
	}
	req_lock(r);
	if ((rc = move_pending(r))) {
		req_unlock(r);
		return rc;
	}
	size_t limit = (size_t)app->opt[FCGI_OPT_OUT_BUFFER];
	while (len) {
		if (r->flags & FK_R_CLOSED || !r->conn || fk_conn_gone(r->conn)) {
			rc = FCGI_ECLOSED;
			break;
		}
		if (r->flags & FK_R_ABORTED) {
			rc = FCGI_EABORTED;
			break;
		}
		fk_conn *c = r->conn;
		size_t have = fk_buf_size(&c->srv.out);
		if (fk_app_on_loop_thread(app)) {
			/* The loop never blocks: all of it, or nothing while the buffer is full. */
			if (have && have + len > limit) {
				fk_conn_flush(c);
				if (fk_conn_gone(c) || fk_buf_size(&c->srv.out) + len > limit) {
					rc = fk_conn_gone(c) ? FCGI_ECLOSED : FCGI_EAGAIN;
					break;
				}
			}
			rc = fk_srv_write(&c->srv, r->id, type, p, len);
			if (!rc)
				fk_conn_mark_dirty(c);
			break;
		}
		if (have >= limit) {
			fk_conn_flush(c);
			if (!pred_room(app, r)) {
				long tmo = app->opt[FCGI_OPT_WRITE_TIMEOUT_MS];
				if (fk_app_wait(app, pred_room, r, tmo ? fk_now_ms() + tmo : -1)) {
					if (r->conn)
						fk_conn_close(r->conn);
					rc = FCGI_ETIMEDOUT;
					break;
				}
			}
			continue;
		}
		size_t n = limit - have < len ? limit - have : len;
		if ((rc = fk_srv_write(&c->srv, r->id, type, p, n)))
			break;
		p += n;
		len -= n;
		if (fk_buf_size(&c->srv.out) >= FLUSH_AT)
			fk_conn_flush(c);
	}
	req_unlock(r);
	return rc;
}

FCGI_EXPORT int fcgi_write(fcgi_req *req, const void *buf, size_t len)
{
	return write_stream(req, FK_STDOUT, buf, len);
}

FCGI_EXPORT int fcgi_write_err(fcgi_req *req, const void *buf, size_t len)
{
	return write_stream(req, FK_STDERR, buf, len);
}

FCGI_EXPORT int fcgi_puts(fcgi_req *req, const char *s) { return fcgi_write(req, s, strlen(s)); }

FCGI_EXPORT int fcgi_vprintf(fcgi_req *req, const char *fmt, va_list ap)
{
	char stack[PRINTF_STACK];
	va_list aq;
	va_copy(aq, ap);
	int n = vsnprintf(stack, sizeof stack, fmt, aq);
	va_end(aq);
	if (n < 0)
		return FCGI_EINVAL;
	if ((size_t)n < sizeof stack)
		return fcgi_write(req, stack, (size_t)n);
	char *heap = fk_malloc((size_t)n + 1);
	if (!heap)
		return FCGI_ENOMEM;
	vsnprintf(heap, (size_t)n + 1, fmt, ap);
	int rc = fcgi_write(req, heap, (size_t)n);
	fk_free(heap);
	return rc;
}

FCGI_EXPORT int fcgi_printf(fcgi_req *req, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = fcgi_vprintf(req, fmt, ap);
	va_end(ap);
	return rc;
}

FCGI_EXPORT int fcgi_flush(fcgi_req *req)
{
	req_lock(req);
	int rc = move_pending(req);
	if (!rc)
		rc = req->conn ? fk_conn_flush(req->conn) : FCGI_ECLOSED;
	req_unlock(req);
	return rc;
}

FCGI_EXPORT int fcgi_req_on_writable(fcgi_req *req, void (*cb)(fcgi_req *, void *), void *ud)
{
	req_lock(req);
	req->on_writable = cb;
	req->on_writable_ud = ud;
	if (req->conn)
		fk_conn_schedule_resume(req->conn);
	req_unlock(req);
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_req_on_abort(fcgi_req *req, void (*cb)(fcgi_req *, void *), void *ud)
{
	req_lock(req);
	req->on_abort = cb;
	req->on_abort_ud = ud;
	if ((req->flags & FK_R_ABORTED) && !(req->flags & FK_R_ABORT_CB_DONE)) {
		req->flags |= FK_R_ABORT_CB_DONE;
		cb(req, ud);
	}
	req_unlock(req);
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_finish(fcgi_req *req, int app_status)
{
	fcgi_app *app = req->app;
	int rc = FCGI_OK, send_now = 0;
	long long took;
	int64_t now_us = fk_now_us();
	int blocked = fk_app_sample_end(req, now_us, &took);
	req_lock(req);
	if (!(req->flags & FK_R_OWNED)) {
		req_unlock(req);
		return FCGI_ESTATE;
	}
	if (blocked >= 0)
		app->blocking = fk_wake_blocking_update(app->blocking, blocked);
	if (took >= 0)
		app->cost_us = fk_wake_cost_update(app->cost_us, took);
	app->progress_ms = now_us / 1000;
	fk_conn *c = req->conn;
	if (c) {
		if (req->flags & FK_R_FULL) {
			c->full_reqs--;
			fk_conn_schedule_resume(c);
		}
		rc = move_pending(req);
		if (!rc)
			rc = fk_srv_end(&c->srv, req->id, (uint32_t)app_status);
		if (rc)
			fk_conn_close(c);
		else if (fk_app_on_loop_thread(app) || app->nready)
			fk_conn_mark_dirty(c); /* more requests are waiting: one send for all */
		else
			send_now = 1;
	} else {
		rc = FCGI_ECLOSED;
	}
	/* Still waiting for its abort callback: it no longer needs one. */
	for (fcgi_req **pp = &app->aborts; *pp; pp = &(*pp)->next_ready)
		if (*pp == req) {
			*pp = req->next_ready;
			break;
		}
	/* Count the request out before its END_REQUEST can reach the peer: the send below
	 * releases the lock, and a peer that answers with its next request at once must not
	 * find it still counted (OVERLOADED at FCGI_OPT_MAX_REQS). */
	app->owned--;
	fk_app_finished_request(app, req);
	fk_req_free(req);
	if (send_now)
		rc = fk_conn_flush(c);
	if (app->stopping && !app->owned)
		fk_app_wake(app);
	fk_app_unlock(app);
	return rc;
}
