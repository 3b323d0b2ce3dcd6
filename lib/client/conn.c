/* conn.c — one client connection: connect, write, read, the response events (see
 * client_int.h for the model). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/client_int.h"
#include "util/alloc.h"

const char *fk_cc_state_name(unsigned s)
{
	switch (s) {
	case FK_CC_CONNECTING: return "CONNECTING";
	case FK_CC_READY: return "READY";
	case FK_CC_DEAD: return "DEAD";
	}
	return "?";
}

/* ---------------------------------------------------------------- messages */

/* A one-line reason for a failed connect, with the hint a user needs first. */
static void connect_message(const fcgi_client *c, int e, char *msg, size_t size)
{
	const char *a = c->address;
	int is_unix = c->addr.ss.ss_family == AF_UNIX;
	const char *path = is_unix ? ((const struct sockaddr_un *)&c->addr.ss)->sun_path : NULL;
	struct stat st;
	switch (e) {
	case ENOENT:
		snprintf(msg, size, "connect to %s: no such socket file", a);
		return;
	case EACCES:
	case EPERM:
		snprintf(msg, size, "connect to %s: permission denied (%s)", a,
		         is_unix ? "no write permission on the socket or no search permission on a "
		                   "directory of its path"
		                 : "refused by local policy");
		return;
	case ECONNREFUSED:
		if (is_unix && stat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
			snprintf(msg, size, "connect to %s: the file is not a socket", a);
		else
			snprintf(msg, size, "connect to %s: connection refused (nothing is listening)", a);
		return;
	case EAGAIN:
		snprintf(msg, size, "connect to %s: the application's accept queue is full", a);
		return;
	case ENOTDIR:
		snprintf(msg, size, "connect to %s: a directory in the path is a file", a);
		return;
	default:
		snprintf(msg, size, "connect to %s: %s", a, strerror(e));
	}
}

/* ---------------------------------------------------------------- lifecycle */

void fk_cc_mark_dirty(fk_cconn *k)
{
	if (k->state == FK_CC_DEAD || (k->flags & FK_CF_DIRTY))
		return;
	k->flags |= FK_CF_DIRTY;
	k->next_dirty = k->c->dirty;
	k->c->dirty = k;
}

int fk_cc_holds(const fk_cconn *k)
{
	return k->state == FK_CC_READY && k->npaused == 1 && k->nactive == 1 && !k->values &&
	       fk_cli_inflight(&k->cli) == 1 && !(k->flags & FK_CF_NOHOLD);
}

static void update_interest(fk_cconn *k)
{
	if (k->state == FK_CC_DEAD)
		return;
	/* On hold, not reading is the point: the socket fills, and TCP (or the Unix socket's
	 * buffer) makes the application's writes wait — what nginx relies on when it does not
	 * multiplex. */
	unsigned want = k->state == FK_CC_CONNECTING
	                    ? FK_EV_OUT
	                    : (fk_cc_holds(k) ? 0 : FK_EV_IN) | (fk_buf_size(&k->out) ? FK_EV_OUT : 0);
	if (want != k->events && fk_ev_mod(&k->c->ev, k->fd, want, k) == FCGI_OK) {
		if (k->state == FK_CC_READY && !(k->events & FK_EV_IN) && (want & FK_EV_IN)) {
			/* The hold is over: the time on hold was ours, not the application's silence. */
			int64_t now = fk_now_ms();
			k->last_io = now;
			if (k->stalled_since)
				k->stalled_since = now;
		}
		k->events = want;
	}
}

void fk_cc_pause_changed(fk_cconn *k)
{
	update_interest(k);
	if (fk_buf_size(&k->held) && !fk_cc_holds(k))
		k->c->kick = 1; /* the next pass feeds what was held */
}

fk_cconn *fk_cc_open(fcgi_client *c, int *err, int *sys_errno, char *msg, size_t msize)
{
	int family = c->addr.ss.ss_family;
	*err = FCGI_OK;
	*sys_errno = 0;
	fk_cconn *k = fk_calloc(1, sizeof *k);
	if (!k) {
		*err = FCGI_ENOMEM;
		snprintf(msg, msize, "out of memory");
		return NULL;
	}
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err = FCGI_ESYS;
		*sys_errno = errno;
		snprintf(msg, msize, "socket: %s", strerror(errno));
		fk_free(k);
		return NULL;
	}
	if (family != AF_UNIX) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	int state = FK_CC_READY;
	if (connect(fd, (const struct sockaddr *)&c->addr.ss, c->addr.len) < 0) {
		if (errno == EINPROGRESS) {
			state = FK_CC_CONNECTING;
		} else {
			*err = FCGI_ESYS;
			*sys_errno = errno;
			connect_message(c, errno, msg, msize);
			snprintf(c->last_error, sizeof c->last_error, "%s", msg);
			close(fd);
			fk_free(k);
			return NULL;
		}
	}
	k->kind = FK_CO_CONN;
	k->fd = fd;
	k->c = c;
	k->state = (uint8_t)state;
	k->events = state == FK_CC_CONNECTING ? FK_EV_OUT : FK_EV_IN;
	if (fk_ev_add(&c->ev, fd, k->events, k)) {
		*err = FCGI_ESYS;
		*sys_errno = errno;
		snprintf(msg, msize, "adding the connection to the poller: %s", strerror(errno));
		close(fd);
		fk_free(k);
		return NULL;
	}
	fk_cli_init(&k->cli);
	k->t_open = k->last_io = c->now;
	k->prev = c->conns_tail;
	if (c->conns_tail)
		c->conns_tail->next = k;
	else
		c->conns = k;
	c->conns_tail = k;
	c->nconns++;
	c->conns_opened++;
	if (!c->opt[FCGI_CLIENT_KEEP_CONN])
		k->flags |= FK_CF_CLOSING;
	return k;
}

/* Takes the connection out of service: closed at once, memory freed at the end of the
 * pass. Requests and GET_VALUES on it are the caller's business. */
static void kill_conn(fk_cconn *k)
{
	fcgi_client *c = k->c;
	if (k->state == FK_CC_DEAD)
		return;
	k->state = FK_CC_DEAD;
	if (fk_buf_size(&k->held))
		c->nheld--;
	fk_buf_free(&k->held);
	fk_ev_del(&c->ev, k->fd);
	close(k->fd);
	k->fd = -1;
	if (k->prev)
		k->prev->next = k->next;
	else
		c->conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	else
		c->conns_tail = k->prev;
	k->prev = k->next = NULL;
	c->nconns--;
	k->next_dead = c->dead;
	c->dead = k;
}

void fk_cc_free(fk_cconn *k)
{
	fk_cli_free(&k->cli);
	fk_buf_free(&k->out);
	fk_buf_free(&k->held);
	fk_free(k->slots);
	fk_free(k);
}

int fk_cc_idle(const fk_cconn *k)
{
	return k->state == FK_CC_READY && !fk_cli_inflight(&k->cli) && !k->senders && !k->values &&
	       !k->nactive && !(k->flags & FK_CF_CLOSING);
}

void fk_cc_close_quiet(fk_cconn *k)
{
	if (k->state == FK_CC_DEAD)
		return;
	if (k->nactive || k->values) {
		fk_cc_fail(k, FCGI_ECLOSED, 0, "connection closed");
		return;
	}
	kill_conn(k);
}

void fk_cc_fail(fk_cconn *k, int err, int sys_errno, const char *msg)
{
	if (k->state == FK_CC_DEAD)
		return;
	int peer_closed = err == FCGI_ECLOSED;
	int reused = (k->flags & FK_CF_REUSED) != 0;
	snprintf(k->c->last_error, sizeof k->c->last_error, "%s", msg ? msg : fcgi_strerror(err));
	kill_conn(k);
	if (k->values)
		fk_cl_values_answer(k, err, NULL, 0, msg);
	for (uint32_t i = 0; i < k->nslots; i++) {
		fcgi_client_req *r = k->slots[i];
		if (!r)
			continue;
		fk_cc_release_slot(k, r);
		/* A kept-alive connection that the peer closed while idle looks exactly like this;
		 * the request never reached the application, so send it once more. */
		if (peer_closed && reused && !(r->flags & (FK_RF_GOT_BYTES | FK_RF_ABORTED)) &&
		    fk_cl_retryable(r)) {
			fk_cl_requeue(r);
			continue;
		}
		if (r->flags & FK_RF_ABORTED)
			fk_cl_complete(r, r->abort_error ? r->abort_error : FCGI_EABORTED, 0, NULL);
		else
			fk_cl_complete(r, err, sys_errno, msg);
	}
}

/* ---------------------------------------------------------------- requests on a connection */

static void senders_push(fk_cconn *k, fcgi_client_req *r)
{
	r->next = NULL;
	r->prev = k->senders_tail;
	if (k->senders_tail)
		k->senders_tail->next = r;
	else
		k->senders = r;
	k->senders_tail = r;
	r->flags |= FK_RF_IN_SENDERS;
}

static void senders_remove(fk_cconn *k, fcgi_client_req *r)
{
	if (!(r->flags & FK_RF_IN_SENDERS))
		return;
	if (r->prev)
		r->prev->next = r->next;
	else
		k->senders = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		k->senders_tail = r->prev;
	r->prev = r->next = NULL;
	r->flags &= ~(uint32_t)FK_RF_IN_SENDERS;
}

/* Whether r counts in k->npaused. */
static int pause_counted(const fk_cconn *k, const fcgi_client_req *r)
{
	return (r->flags & FK_RF_PAUSED) && !(r->flags & FK_RF_ABORTED) && r->id &&
	       r->id <= k->nslots && k->slots[r->id - 1] == r;
}

void fk_cc_release_slot(fk_cconn *k, fcgi_client_req *r)
{
	senders_remove(k, r);
	if (r->id && r->id <= k->nslots && k->slots[r->id - 1] == r) {
		if (pause_counted(k, r))
			k->npaused--;
		k->slots[r->id - 1] = NULL;
		k->nactive--;
	}
	r->conn = NULL;
}

int fk_cc_assign(fk_cconn *k, fcgi_client_req *r)
{
	fcgi_client *c = k->c;
	uint32_t want = fk_cl_slots_wanted(c), i;
	for (i = 0; i < want; i++)
		if ((i >= k->nslots || !k->slots[i]) && !fk_cli_in_flight(&k->cli, i + 1))
			break;
	if (i == want)
		return FCGI_EAGAIN;
	if (i >= k->nslots) {
		uint32_t n = want > k->nslots ? want : i + 1;
		fcgi_client_req **s = fk_realloc(k->slots, n * sizeof *s);
		if (!s)
			return FCGI_ENOMEM;
		memset(s + k->nslots, 0, (n - k->nslots) * sizeof *s);
		k->slots = s;
		k->nslots = n;
	}
	unsigned id = i + 1;
	size_t before = fk_buf_size(&k->out);
	int rc = fk_cli_begin(&k->cli, id);
	if (!rc)
		rc = fk_req_begin(&k->out, id, r->role,
		                  (k->flags & FK_CF_CLOSING) ? 0 : FK_KEEP_CONN);
	if (!rc && fk_buf_size(&r->params))
		rc = fk_encode_stream(&k->out, FK_PARAMS, id, fk_buf_head(&r->params),
		                      fk_buf_size(&r->params));
	if (!rc)
		rc = fk_encode_stream(&k->out, FK_PARAMS, id, NULL, 0);
	if (rc) {
		k->out.len = k->out.off + before;
		fk_cli_cancel(&k->cli, id);
		return rc;
	}
	int was_busy = fk_cli_inflight(&k->cli) > 1;
	k->slots[i] = r;
	k->nactive++;
	r->conn = k;
	r->id = (uint16_t)id;
	if (pause_counted(k, r))
		k->npaused++;
	r->state = FK_CR_ACTIVE;
	r->phase = FK_SP_STDIN;
	if (was_busy)
		r->flags |= FK_RF_MPX;
	else
		k->last_io = c->now; /* the wait for an answer starts now, not when it went idle */
	k->idle_since = 0;
	senders_push(k, r);
	fk_cc_pump(k);
	fk_cc_mark_dirty(k);
	return FCGI_OK;
}

int fk_cc_send_abort(fk_cconn *k, fcgi_client_req *r)
{
	if (r->flags & FK_RF_ABORTED)
		return FCGI_OK;
	if (pause_counted(k, r))
		k->npaused--; /* its END_REQUEST must be read: no hold for an aborted request */
	r->flags |= FK_RF_ABORTED;
	if (!r->abort_error)
		r->abort_error = FCGI_EABORTED;
	senders_remove(k, r);
	uint8_t rec[8];
	fk_encode_abort(rec, r->id);
	int rc = fk_buf_append(&k->out, rec, sizeof rec);
	fk_cc_mark_dirty(k);
	return rc;
}

/* A body source failed (or ran out of memory): the request is given up with that error. */
static void source_failed(fk_cconn *k, fcgi_client_req *r, int err, int sys_errno)
{
	if (!r->abort_error) {
		r->abort_error = err;
		r->sys_errno = sys_errno;
		if (!r->msg[0])
			snprintf(r->msg, sizeof r->msg, "reading the request body: %s",
			         err == FCGI_ESYS && sys_errno ? strerror(sys_errno) : fcgi_strerror(err));
	}
	fk_cc_send_abort(k, r);
}

/* One step of sending r's input: 2 all sent, 1 progress, 0 blocked, < 0 error. */
static int pump_one(fk_cconn *k, fcgi_client_req *r, int *sys_errno)
{
	if (r->phase != FK_SP_STDIN && r->phase != FK_SP_DATA)
		return 2;
	fk_src *s = &r->src[r->phase == FK_SP_DATA];
	if (s->type != FK_SRC_NONE && !s->eof)
		return fk_cs_take(s, &k->out, r->id, sys_errno);
	if (fk_encode_stream(&k->out, s->stream, r->id, NULL, 0))
		return FCGI_ENOMEM;
	fk_cs_unregister(s);
	if (r->phase == FK_SP_STDIN &&
	    (r->role == FCGI_ROLE_FILTER || r->src[1].type != FK_SRC_NONE))
		r->phase = FK_SP_DATA;
	else
		r->phase = FK_SP_SENT;
	return r->phase == FK_SP_SENT ? 2 : 1;
}

void fk_cc_pump(fk_cconn *k)
{
	if (k->state == FK_CC_DEAD)
		return;
	unsigned blocked = 0, n = 0;
	for (fcgi_client_req *r = k->senders; r; r = r->next)
		n++;
	while (k->senders && fk_buf_size(&k->out) < FK_CL_HIGH_WATER && blocked < n) {
		fcgi_client_req *r = k->senders;
		int se = 0, rc = pump_one(k, r, &se);
		if (rc == 2) {
			senders_remove(k, r);
			n--;
			blocked = 0;
			continue;
		}
		if (rc < 0) {
			source_failed(k, r, rc, se);
			n--;
			blocked = 0;
			continue;
		}
		blocked = rc == 0 ? blocked + 1 : 0;
		/* Several requests sending: take turns, one piece each. */
		if (k->senders != k->senders_tail) {
			senders_remove(k, r);
			senders_push(k, r);
		}
	}
	if (fk_buf_size(&k->out))
		fk_cc_mark_dirty(k);
}

/* ---------------------------------------------------------------- reading */

static fcgi_client_req *slot(const fk_cconn *k, unsigned id)
{
	return id && id <= k->nslots ? k->slots[id - 1] : NULL;
}

static void deliver_output(fk_cconn *k, fcgi_client_req *r, int stream, const uint8_t *data,
                           size_t len)
{
	if (r->on_output) {
		r->on_output(r, stream, data, len, r->output_ud);
		return;
	}
	fk_buf *b = stream == FCGI_CLIENT_STDOUT ? &r->out : &r->err;
	long max = k->c->opt[FCGI_CLIENT_MAX_BUFFERED];
	if ((long)(fk_buf_size(&r->out) + fk_buf_size(&r->err) + len) > max ||
	    fk_buf_append(b, data, len)) {
		int big = (long)(fk_buf_size(&r->out) + fk_buf_size(&r->err) + len) > max;
		r->abort_error = big ? FCGI_ETOOBIG : FCGI_ENOMEM;
		snprintf(r->msg, sizeof r->msg, "%s",
		         big ? "the response is larger than FCGI_CLIENT_MAX_BUFFERED"
		             : "out of memory collecting the response");
		fk_cc_send_abort(k, r);
	}
}

static void on_end_request(fk_cconn *k, fcgi_client_req *r, const fk_cli_event *ev)
{
	fcgi_client *c = k->c;
	fk_cc_release_slot(k, r);
	r->app_status = ev->app_status;
	r->protocol_status = ev->protocol_status;
	if (r->flags & FK_RF_ABORTED) {
		fk_cl_complete(r, r->abort_error ? r->abort_error : FCGI_EABORTED, r->sys_errno, NULL);
		return;
	}
	char msg[160];
	switch (ev->protocol_status) {
	case FCGI_STATUS_COMPLETE:
		/* php-fpm and php-cgi end the request without the empty STDOUT record; the
		 * output callback is promised one end-of-stream call all the same. */
		if (!(r->flags & FK_RF_STDOUT_END) && r->on_output) {
			r->flags |= FK_RF_STDOUT_END;
			r->on_output(r, FCGI_CLIENT_STDOUT, NULL, 0, r->output_ud);
		}
		fk_cl_complete(r, FCGI_OK, 0, "REQUEST_COMPLETE");
		return;
	case FCGI_STATUS_CANT_MPX_CONN:
		/* The application takes one request per connection: stop multiplexing, and send
		 * this one again on a connection of its own. */
		c->mpxs = 0;
		if (!(r->flags & FK_RF_RETRIED) && fk_cl_retryable(r)) {
			fk_cl_requeue(r);
			return;
		}
		fk_cl_complete(r, FCGI_ECANTMPX, 0,
		               "END_REQUEST: CANT_MPX_CONN (the application takes one request per "
		               "connection)");
		return;
	case FCGI_STATUS_OVERLOADED:
		fk_cl_complete(r, FCGI_EOVERLOADED, 0,
		               "END_REQUEST: OVERLOADED (the application refused the request)");
		return;
	case FCGI_STATUS_UNKNOWN_ROLE:
		snprintf(msg, sizeof msg, "END_REQUEST: UNKNOWN_ROLE (the application does not take "
		                          "role %u)", r->role);
		fk_cl_complete(r, FCGI_EUNKNOWNROLE, 0, msg);
		return;
	default:
		snprintf(msg, sizeof msg, "END_REQUEST with an unknown protocolStatus %u",
		         ev->protocol_status);
		fk_cl_complete(r, FCGI_EPROTO, 0, msg);
	}
}

static void handle_event(fk_cconn *k, const fk_cli_event *ev)
{
	fcgi_client_req *r = slot(k, ev->request_id);
	switch (ev->kind) {
	case FK_CEV_STDOUT:
	case FK_CEV_STDERR:
		if (!r)
			return;
		r->flags |= FK_RF_GOT_BYTES;
		if (!(r->flags & FK_RF_ABORTED))
			deliver_output(k, r,
			               ev->kind == FK_CEV_STDOUT ? FCGI_CLIENT_STDOUT : FCGI_CLIENT_STDERR,
			               ev->data, ev->len);
		return;
	case FK_CEV_STDOUT_END:
	case FK_CEV_STDERR_END:
		if (!r)
			return;
		r->flags |= FK_RF_GOT_BYTES |
		            (ev->kind == FK_CEV_STDOUT_END ? FK_RF_STDOUT_END : FK_RF_STDERR_END);
		if (!(r->flags & FK_RF_ABORTED) && r->on_output)
			r->on_output(r, ev->kind == FK_CEV_STDOUT_END ? FCGI_CLIENT_STDOUT : FCGI_CLIENT_STDERR,
			             NULL, 0, r->output_ud);
		return;
	case FK_CEV_END:
		if (r) {
			r->flags |= FK_RF_GOT_BYTES;
			on_end_request(k, r, ev);
		}
		fk_cl_idle_check(k);
		return;
	case FK_CEV_VALUES:
		if (k->values) {
			fk_cl_values_answer(k, FCGI_OK, ev->data, ev->len, NULL);
			fk_cl_idle_check(k);
		}
		return;
	case FK_CEV_UNKNOWN_TYPE:
		if (k->values) {
			fk_cl_values_answer(k, FCGI_OK, NULL, 0, NULL);
			fk_cl_idle_check(k);
		}
		return;
	}
}

static void protocol_failure(fk_cconn *k)
{
	char msg[200];
	const char *what = fk_sniff_protocol(k->first, k->nfirst);
	if (k->cli.perr == FK_CPE_VERSION && what) {
		char shown[40];
		size_t n = 0;
		for (size_t i = 0; i < k->nfirst && n + 1 < sizeof shown; i++) {
			unsigned char ch = k->first[i];
			if (ch == '\r' || ch == '\n')
				break;
			shown[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '.';
		}
		shown[n] = 0;
		snprintf(msg, sizeof msg, "%s does not speak FastCGI: it answered like %s (\"%s\")",
		         k->c->address, what, shown);
	} else if (k->cli.perr == FK_CPE_VERSION) {
		snprintf(msg, sizeof msg, "%s does not speak FastCGI: %s", k->c->address,
		         fk_cli_error_name(k->cli.perr));
	} else {
		snprintf(msg, sizeof msg, "protocol error from %s: %s (type %s, request id %u)",
		         k->c->address, fk_cli_error_name(k->cli.perr), fk_type_name(k->cli.perr_type),
		         k->cli.perr_id);
	}
	fk_cc_fail(k, k->cli.perr == FK_CPE_NOMEM ? FCGI_ENOMEM : FCGI_EPROTO, 0, msg);
}

static void feed(fk_cconn *k, const uint8_t *in, size_t len)
{
	size_t off = 0;
	while (off < len && k->state != FK_CC_DEAD) {
		fk_cli_event ev;
		size_t used;
		int rc = fk_cli_feed(&k->cli, in + off, len - off, &used, &ev);
		off += used;
		if (rc == 0)
			return;
		if (rc < 0) {
			protocol_failure(k);
			return;
		}
		handle_event(k, &ev);
		if (off < len && k->state != FK_CC_DEAD && fk_cc_holds(k)) {
			/* Paused by that event's callback (or left alone with a paused request): the
			 * rest waits, so no more output reaches a request that asked for none. */
			if (!fk_buf_size(&k->held))
				k->c->nheld++;
			if (fk_buf_append(&k->held, in + off, len - off)) {
				if (!fk_buf_size(&k->held))
					k->c->nheld--;
				fk_cc_fail(k, FCGI_ENOMEM, 0, "out of memory holding a paused response");
			}
			return;
		}
	}
}

void fk_cc_drain(fk_cconn *k)
{
	if (k->state != FK_CC_READY || !fk_buf_size(&k->held) || fk_cc_holds(k))
		return;
	/* Fed from a buffer of its own: feeding may go on hold again and keep a new rest. */
	fk_buf in = k->held;
	k->held = (fk_buf){0};
	k->c->nheld--;
	feed(k, fk_buf_head(&in), fk_buf_size(&in));
	fk_buf_free(&in);
	update_interest(k);
}

static void on_eof(fk_cconn *k)
{
	char msg[200];
	if (!k->nactive && !k->values && fk_cli_idle(&k->cli)) {
		/* An idle kept-alive connection the peer closed, or one whose requests were all
		 * given up: nothing is lost. */
		kill_conn(k);
		return;
	}
	if (!(k->flags & FK_CF_ANY_BYTE))
		snprintf(msg, sizeof msg,
		         "%s closed the connection without answering (not a FastCGI application, "
		         "or it refused the request)", k->c->address);
	else
		snprintf(msg, sizeof msg, "%s closed the connection before END_REQUEST",
		         k->c->address);
	fk_cc_fail(k, FCGI_ECLOSED, 0, msg);
}

static void read_some(fk_cconn *k)
{
	fcgi_client *c = k->c;
	for (int round = 0; round < 8 && k->state == FK_CC_READY && !fk_cc_holds(k); round++) {
		ssize_t n = read(k->fd, c->rbuf, FK_CL_RBUF);
		if (n > 0) {
			k->last_io = c->now;
			k->flags |= FK_CF_ANY_BYTE;
			if (k->nfirst < sizeof k->first) {
				size_t m = sizeof k->first - k->nfirst;
				if (m > (size_t)n)
					m = (size_t)n;
				memcpy(k->first + k->nfirst, c->rbuf, m);
				k->nfirst = (uint8_t)(k->nfirst + m);
			}
			feed(k, c->rbuf, (size_t)n);
			if ((size_t)n < FK_CL_RBUF)
				return;
			continue;
		}
		if (n == 0) {
			on_eof(k);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		int e = errno;
		char msg[200];
		snprintf(msg, sizeof msg, "reading from %s: %s", c->address, strerror(e));
		fk_cc_fail(k, e == ECONNRESET ? FCGI_ECLOSED : FCGI_ESYS, e, msg);
		return;
	}
}

static void do_read(fk_cconn *k)
{
	fk_cc_drain(k); /* held bytes come before anything read now */
	if (!fk_buf_size(&k->held))
		read_some(k);
	update_interest(k);
}

/* ---------------------------------------------------------------- writing */

void fk_cc_flush(fk_cconn *k)
{
	fcgi_client *c = k->c;
	if (k->state != FK_CC_READY)
		return;
	for (;;) {
		if (fk_buf_size(&k->out) < FK_CL_HIGH_WATER / 2 && k->senders)
			fk_cc_pump(k);
		size_t n = fk_buf_size(&k->out);
		if (!n)
			break;
		ssize_t w = send(k->fd, fk_buf_head(&k->out), n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			fk_buf_consume(&k->out, (size_t)w);
			k->last_io = c->now;
			k->stalled_since = 0;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!k->stalled_since)
				k->stalled_since = c->now;
			break;
		}
		/* The peer closed or reset: what it sent before (maybe the whole answer, maybe a
		 * refusal) is still to be read. */
		int e = w < 0 ? errno : EPIPE;
		do_read(k);
		if (k->state != FK_CC_DEAD) {
			char msg[200];
			snprintf(msg, sizeof msg, "sending to %s: %s", c->address, strerror(e));
			fk_cc_fail(k, FCGI_ECLOSED, e, msg);
		}
		return;
	}
	if (!fk_buf_size(&k->out))
		fk_buf_shrink(&k->out, 2 * FK_CL_HIGH_WATER);
	update_interest(k);
}

static void on_connected(fk_cconn *k)
{
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		char msg[200];
		connect_message(k->c, err, msg, sizeof msg);
		fk_cc_fail(k, FCGI_ESYS, err, msg);
		return;
	}
	k->state = FK_CC_READY;
	k->last_io = k->c->now;
	if (k->values)
		k->values->connected = 1;
	fk_cc_flush(k);
	update_interest(k);
}

void fk_cc_on_event(fk_cconn *k, unsigned events)
{
	if (k->state == FK_CC_CONNECTING) {
		if (events & (FK_EV_OUT | FK_EV_ERR))
			on_connected(k);
		return;
	}
	if ((events & FK_EV_ERR) && fk_cc_holds(k))
		k->flags |= FK_CF_NOHOLD; /* hung up: level-triggered, it would wake us forever */
	if (events & (FK_EV_IN | FK_EV_ERR))
		do_read(k);
	if (k->state == FK_CC_READY && (events & FK_EV_OUT))
		fk_cc_flush(k);
}
