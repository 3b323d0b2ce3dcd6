/* req.c — client requests: building them, body sources, results, and fcgi_client_call
 * (see client_int.h for the model). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "client/client_int.h"
#include "util/alloc.h"

const char *fk_cr_state_name(unsigned s)
{
	switch (s) {
	case FK_CR_NEW: return "NEW";
	case FK_CR_QUEUED: return "QUEUED";
	case FK_CR_ACTIVE: return "ACTIVE";
	case FK_CR_DONE: return "DONE";
	}
	return "?";
}

/* ---------------------------------------------------------------- life */

FCGI_EXPORT int fcgi_client_req_new(fcgi_client *c, fcgi_client_req **out)
{
	if (!c || !out)
		return FCGI_EINVAL;
	fcgi_client_req *r = fk_calloc(1, sizeof *r);
	*out = NULL;
	if (!r)
		return FCGI_ENOMEM;
	r->c = c;
	r->role = FCGI_ROLE_RESPONDER;
	r->protocol_status = -1;
	for (int i = 0; i < 2; i++) {
		r->src[i].kind = FK_CO_SRC;
		r->src[i].req = r;
		r->src[i].stream = i ? FK_DATA : FK_STDIN;
		r->src[i].fd = -1;
	}
	r->all_next = c->all;
	if (c->all)
		c->all->all_prev = r;
	c->all = r;
	*out = r;
	return FCGI_OK;
}

void fk_cr_destroy(fcgi_client_req *r)
{
	fcgi_client *c = r->c;
	fk_cs_unregister(&r->src[0]);
	fk_cs_unregister(&r->src[1]);
	if (r->all_prev)
		r->all_prev->all_next = r->all_next;
	else
		c->all = r->all_next;
	if (r->all_next)
		r->all_next->all_prev = r->all_prev;
	fk_buf_free(&r->params);
	fk_buf_free(&r->out);
	fk_buf_free(&r->err);
	int owns = (r->flags & FK_RF_OWNS_CLIENT) != 0;
	fk_free(r);
	if (owns)
		fcgi_client_free(c);
}

FCGI_EXPORT void fcgi_client_req_free(fcgi_client_req *r)
{
	if (!r)
		return;
	fcgi_client *c = r->c;
	if (r->flags & FK_RF_WAITED) {
		r->flags |= FK_RF_FREE_AFTER_WAIT; /* fcgi_client_wait frees it when it returns */
		return;
	}
	switch (r->state) {
	case FK_CR_QUEUED:
		fk_rl_remove(&c->queue, r);
		c->active--;
		break;
	case FK_CR_ACTIVE:
		/* Tell the application; the memory goes when its END_REQUEST (or the connection's
		 * end) comes, since the id stays taken until then. */
		r->flags |= FK_RF_ORPHAN;
		if (r->conn)
			fk_cc_send_abort(r->conn, r);
		c->kick = 1;
		return;
	case FK_CR_DONE:
		if (r->flags & FK_RF_CB_PENDING)
			fk_rl_remove(&c->done, r);
		break;
	default:
		break;
	}
	fk_cr_destroy(r);
}

/* ---------------------------------------------------------------- building */

static int is_new(const fcgi_client_req *r) { return r && r->state == FK_CR_NEW; }

FCGI_EXPORT int fcgi_client_req_set_role(fcgi_client_req *r, unsigned role)
{
	if (!is_new(r) || role > 0xffff)
		return r ? FCGI_ESTATE : FCGI_EINVAL;
	r->role = (uint16_t)role;
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_client_req_add_param_n(fcgi_client_req *r, const void *name,
                                            size_t name_len, const void *value,
                                            size_t value_len)
{
	if (!r || (!name && name_len) || (!value && value_len))
		return FCGI_EINVAL;
	if (!is_new(r))
		return FCGI_ESTATE;
	size_t n = fk_pair_size(name_len, value_len);
	if (!n)
		return FCGI_ETOOBIG;
	if (fk_buf_reserve(&r->params, n))
		return FCGI_ENOMEM;
	r->params.len += fk_pair_encode(r->params.data + r->params.len, name, name_len, value,
	                                value_len);
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_client_req_add_param(fcgi_client_req *r, const char *name,
                                          const char *value)
{
	if (!name || !value)
		return FCGI_EINVAL;
	return fcgi_client_req_add_param_n(r, name, strlen(name), value, strlen(value));
}

FCGI_EXPORT int fcgi_client_req_set_param(fcgi_client_req *r, const char *name,
                                          const char *value)
{
	if (!r || !name || !value)
		return FCGI_EINVAL;
	if (!is_new(r))
		return FCGI_ESTATE;
	/* Drop every pair of that name from the encoded list, then append. */
	size_t nl = strlen(name), off = 0, c;
	fk_pair p;
	uint8_t *d = fk_buf_head(&r->params);
	size_t len = fk_buf_size(&r->params);
	while (off < len && fk_pair_decode(d + off, len - off, &p, &c)) {
		if (p.name_len == nl && !memcmp(p.name, name, nl)) {
			memmove(d + off, d + off + c, len - off - c);
			len -= c;
			r->params.len -= c;
			continue;
		}
		off += c;
	}
	return fcgi_client_req_add_param(r, name, value);
}

FCGI_EXPORT int fcgi_client_req_add_params(fcgi_client_req *r, const fcgi_client_param *list,
                                           size_t n)
{
	if (!r || (!list && n))
		return FCGI_EINVAL;
	for (size_t i = 0; i < n; i++) {
		int rc = fcgi_client_req_add_param(r, list[i].name, list[i].value);
		if (rc)
			return rc;
	}
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_client_req_add_env(fcgi_client_req *r, const char *const *env)
{
	if (!r || !env)
		return FCGI_EINVAL;
	for (size_t i = 0; env[i]; i++) {
		const char *eq = strchr(env[i], '=');
		if (!eq || eq == env[i])
			continue;
		int rc = fcgi_client_req_add_param_n(r, env[i], (size_t)(eq - env[i]), eq + 1,
		                                     strlen(eq + 1));
		if (rc)
			return rc;
	}
	return FCGI_OK;
}

static int set_buf(fcgi_client_req *r, int which, const void *data, size_t len)
{
	if (!r || (!data && len))
		return FCGI_EINVAL;
	if (!is_new(r))
		return FCGI_ESTATE;
	fk_src *s = &r->src[which];
	s->type = FK_SRC_BUF;
	s->p = data;
	s->len = len;
	s->off = 0;
	return FCGI_OK;
}

static int set_fd(fcgi_client_req *r, int which, int fd)
{
	if (!r || fd < 0)
		return FCGI_EINVAL;
	if (!is_new(r))
		return FCGI_ESTATE;
	fk_src *s = &r->src[which];
	s->type = FK_SRC_FD;
	s->fd = fd;
	s->pollable = 0xff; /* not known yet */
	return FCGI_OK;
}

static int set_cb(fcgi_client_req *r, int which, fcgi_client_read_cb cb, void *ud)
{
	if (!r || !cb)
		return FCGI_EINVAL;
	if (!is_new(r))
		return FCGI_ESTATE;
	fk_src *s = &r->src[which];
	s->type = FK_SRC_CB;
	s->cb = cb;
	s->ud = ud;
	s->ready = 1;
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_client_req_body(fcgi_client_req *r, const void *data, size_t len)
{
	return set_buf(r, 0, data, len);
}

FCGI_EXPORT int fcgi_client_req_body_fd(fcgi_client_req *r, int fd) { return set_fd(r, 0, fd); }

FCGI_EXPORT int fcgi_client_req_body_cb(fcgi_client_req *r, fcgi_client_read_cb cb, void *ud)
{
	return set_cb(r, 0, cb, ud);
}

FCGI_EXPORT int fcgi_client_req_filter_data(fcgi_client_req *r, const void *data, size_t len)
{
	return set_buf(r, 1, data, len);
}

FCGI_EXPORT int fcgi_client_req_filter_data_fd(fcgi_client_req *r, int fd)
{
	return set_fd(r, 1, fd);
}

FCGI_EXPORT int fcgi_client_req_filter_data_cb(fcgi_client_req *r, fcgi_client_read_cb cb,
                                               void *ud)
{
	return set_cb(r, 1, cb, ud);
}

FCGI_EXPORT int fcgi_client_req_resume(fcgi_client_req *r)
{
	if (!r)
		return FCGI_EINVAL;
	for (int i = 0; i < 2; i++)
		if (r->src[i].type == FK_SRC_CB)
			r->src[i].ready = 1;
	if (r->state == FK_CR_ACTIVE && r->conn) {
		fk_cc_mark_dirty(r->conn); /* the next pass pumps and sends */
		r->c->kick = 1;
	}
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_client_req_pause(fcgi_client_req *r, int paused)
{
	if (!r)
		return FCGI_EINVAL;
	uint32_t want = paused ? FK_RF_PAUSED : 0;
	if ((r->flags & FK_RF_PAUSED) == want)
		return FCGI_OK;
	fk_cconn *k = r->state == FK_CR_ACTIVE ? r->conn : NULL;
	int counted = k && !(r->flags & FK_RF_ABORTED);
	r->flags = (r->flags & ~(uint32_t)FK_RF_PAUSED) | want;
	if (counted) {
		if (want)
			k->npaused++;
		else
			k->npaused--;
		fk_cc_pause_changed(k);
	}
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_client_req_on_output(fcgi_client_req *r, fcgi_client_output_cb cb, void *ud)
{
	if (!r)
		return FCGI_EINVAL;
	r->on_output = cb;
	r->output_ud = ud;
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_client_req_on_done(fcgi_client_req *r, fcgi_client_done_cb cb, void *ud)
{
	if (!r)
		return FCGI_EINVAL;
	r->on_done = cb;
	r->done_ud = ud;
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_client_req_set_timeout(fcgi_client_req *r, unsigned timeout_ms)
{
	if (!r)
		return FCGI_EINVAL;
	if (!is_new(r))
		return FCGI_ESTATE;
	r->timeout_ms = timeout_ms;
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_client_req_send(fcgi_client_req *r)
{
	if (!r)
		return FCGI_EINVAL;
	if (!is_new(r))
		return FCGI_ESTATE;
	fcgi_client *c = r->c;
	r->state = FK_CR_QUEUED;
	r->deadline = r->timeout_ms ? fk_now_ms() + r->timeout_ms : 0;
	fk_rl_push(&c->queue, r);
	c->active++;
	c->kick = 1;
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_client_req_abort(fcgi_client_req *r)
{
	if (!r)
		return FCGI_EINVAL;
	switch (r->state) {
	case FK_CR_NEW: return FCGI_ESTATE;
	case FK_CR_QUEUED: fk_cl_complete(r, FCGI_EABORTED, 0, NULL); break;
	case FK_CR_ACTIVE:
		if (r->conn)
			fk_cc_send_abort(r->conn, r);
		break;
	default: break;
	}
	r->c->kick = 1;
	return FCGI_OK;
}

/* ---------------------------------------------------------------- results */

FCGI_EXPORT int fcgi_client_req_is_done(const fcgi_client_req *r)
{
	return r && r->state == FK_CR_DONE;
}

FCGI_EXPORT int fcgi_client_req_error(const fcgi_client_req *r)
{
	if (!r)
		return FCGI_EINVAL;
	return r->state == FK_CR_DONE ? r->error : FCGI_EAGAIN;
}

FCGI_EXPORT const char *fcgi_client_req_strerror(const fcgi_client_req *r)
{
	if (!r)
		return fcgi_strerror(FCGI_EINVAL);
	if (r->state != FK_CR_DONE)
		return "not finished";
	return r->msg[0] ? r->msg : fcgi_strerror(r->error);
}

FCGI_EXPORT int fcgi_client_req_sys_errno(const fcgi_client_req *r)
{
	return r && r->state == FK_CR_DONE && r->error == FCGI_ESYS ? r->sys_errno : 0;
}

FCGI_EXPORT uint32_t fcgi_client_req_app_status(const fcgi_client_req *r)
{
	return r ? r->app_status : 0;
}

FCGI_EXPORT int fcgi_client_req_protocol_status(const fcgi_client_req *r)
{
	return r ? r->protocol_status : -1;
}

FCGI_EXPORT const void *fcgi_client_req_stdout(const fcgi_client_req *r, size_t *len)
{
	if (len)
		*len = r ? fk_buf_size(&r->out) : 0;
	return r && fk_buf_size(&r->out) ? (const void *)fk_buf_head(&r->out) : (const void *)"";
}

FCGI_EXPORT const void *fcgi_client_req_stderr(const fcgi_client_req *r, size_t *len)
{
	if (len)
		*len = r ? fk_buf_size(&r->err) : 0;
	return r && fk_buf_size(&r->err) ? (const void *)fk_buf_head(&r->err) : (const void *)"";
}

FCGI_EXPORT unsigned fcgi_client_req_id(const fcgi_client_req *r) { return r ? r->id : 0; }

FCGI_EXPORT int fcgi_client_req_multiplexed(const fcgi_client_req *r)
{
	return r && (r->flags & FK_RF_MPX);
}

FCGI_EXPORT void fcgi_client_req_set_data(fcgi_client_req *r, void *data)
{
	if (r)
		r->user = data;
}

FCGI_EXPORT void *fcgi_client_req_data(const fcgi_client_req *r) { return r ? r->user : NULL; }

/* ---------------------------------------------------------------- body sources */

void fk_cs_unregister(fk_src *s)
{
	if (!s->registered)
		return;
	fk_ev_del(&s->req->c->ev, s->fd);
	s->registered = 0;
}

void fk_cs_on_event(fk_src *s, unsigned events)
{
	(void)events;
	if (!s->registered)
		return; /* unregistered earlier in this pass */
	/* Readable (or hung up: the read will say). Stop polling until the next read wants
	 * more, so a full output buffer does not turn level-triggered readiness into a spin. */
	fk_cs_unregister(s);
	s->ready = 1;
	fcgi_client_req *r = s->req;
	if (r->state == FK_CR_ACTIVE && r->conn) {
		fk_cc_pump(r->conn);
		fk_cc_mark_dirty(r->conn);
	}
}

int fk_cs_rewindable(const fk_src *s)
{
	return s->type == FK_SRC_NONE || s->type == FK_SRC_BUF || s->taken == 0;
}

void fk_cs_rewind(fk_src *s)
{
	s->off = 0;
	s->eof = 0;
	s->taken = 0;
	if (s->type == FK_SRC_CB)
		s->ready = 1;
}

/* Waits for a pollable fd: 0 (blocked), or 1 when it turned out to be a regular file. */
static int fd_wait(fk_src *s)
{
	fcgi_client *c = s->req->c;
	if (s->registered)
		return 0;
	if (fk_ev_add(&c->ev, s->fd, FK_EV_IN, s) == FCGI_OK) {
		s->pollable = 1;
		s->registered = 1;
		s->ready = 0;
		return 0;
	}
	/* epoll refuses regular files (EPERM): they are always readable. */
	s->pollable = 0;
	s->ready = 1;
	return 1;
}

int fk_cs_take(fk_src *s, fk_buf *out, unsigned id, int *sys_errno)
{
	if (s->type == FK_SRC_BUF) {
		size_t n = s->len - s->off;
		if (n > 4 * (size_t)FK_MAX_CHUNK)
			n = 4 * (size_t)FK_MAX_CHUNK;
		if (n && fk_encode_stream(out, s->stream, id, s->p + s->off, n))
			return FCGI_ENOMEM;
		s->off += n;
		s->taken += n;
		if (s->off == s->len)
			s->eof = 1;
		return 1;
	}
	if (s->type == FK_SRC_FD && s->pollable != 0 && !s->ready) {
		if (!fd_wait(s))
			return 0;
	}
	if (s->type == FK_SRC_CB && !s->ready)
		return 0;
	fk_swriter w;
	fk_sw_init(&w, out, s->stream, id);
	size_t room;
	uint8_t *p = fk_sw_reserve(&w, FK_MAX_CHUNK, &room);
	if (!p)
		return FCGI_ENOMEM;
	ssize_t n;
	if (s->type == FK_SRC_FD) {
		do
			n = read(s->fd, p, room);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			fk_sw_close(&w);
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				s->ready = 0;
				return 0;
			}
			*sys_errno = errno;
			return FCGI_ESYS;
		}
		if (s->pollable == 1)
			s->ready = 0; /* a blocking pipe read again could block: poll first */
	} else {
		n = s->cb(s->req, p, room, s->ud);
		if (n == FCGI_EAGAIN) {
			fk_sw_close(&w);
			s->ready = 0;
			return 0;
		}
		if (n < 0 || (size_t)n > room) {
			fk_sw_close(&w);
			return n < 0 ? (int)n : FCGI_EINVAL;
		}
	}
	if (n == 0)
		s->eof = 1;
	fk_sw_commit(&w, (size_t)n);
	s->taken += (size_t)n;
	return fk_sw_close(&w) ? FCGI_ENOMEM : 1;
}

/* ---------------------------------------------------------------- one call */

FCGI_EXPORT int fcgi_client_call(const char *address, const fcgi_client_param *params,
                                 size_t nparams, const void *body, size_t body_len,
                                 int timeout_ms, fcgi_client_req **out)
{
	if (!out)
		return FCGI_EINVAL;
	*out = NULL;
	fcgi_client *c;
	int rc = fcgi_client_new(&c, address);
	if (rc)
		return rc;
	fcgi_client_set_opt(c, FCGI_CLIENT_MPX, 0);
	fcgi_client_set_opt(c, FCGI_CLIENT_KEEP_CONN, 0);
	fcgi_client_set_opt(c, FCGI_CLIENT_MAX_CONNS, 1);
	fcgi_client_req *r;
	rc = fcgi_client_req_new(c, &r);
	if (!rc)
		rc = fcgi_client_req_add_params(r, params, nparams);
	if (!rc && body_len)
		rc = fcgi_client_req_body(r, body, body_len);
	if (!rc && timeout_ms > 0)
		rc = fcgi_client_req_set_timeout(r, (unsigned)timeout_ms);
	if (!rc)
		rc = fcgi_client_req_send(r);
	if (!rc)
		rc = fcgi_client_wait(c, r, -1);
	if (rc) {
		fcgi_client_free(c);
		return rc;
	}
	r->flags |= FK_RF_OWNS_CLIENT;
	*out = r;
	return FCGI_OK;
}
