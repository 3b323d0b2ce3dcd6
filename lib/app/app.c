/* app.c — the application runtime: the loop, connections, dispatch (see app_int.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app/app_int.h"
#include "app/wake.h"
#include "util/report.h"
#include "util/alloc.h"

/* Marks, in a pass's own copy of the ready list, a connection read without the lock. */
#define FK_EV_READ_NOW 0x100

enum {
	READ_CHUNK = 65536,   /* bytes asked of one recv() */
	IN_KEEP = 16384,      /* an idle connection keeps at most this much input buffer */
	LINGER_MS = 2000,     /* how long a finished connection drains the peer's last bytes */
	SWEEP_MS = 250,       /* how often timeouts are checked */
	ACCEPT_BATCH = 64,
};

void fk_app_lock(fcgi_app *app)
{
	pthread_t self = pthread_self();
	/* Only this thread can have stored its own id, so the relaxed load is enough. */
	if (pthread_equal(atomic_load_explicit(&app->mu_owner, memory_order_relaxed), self)) {
		app->mu_depth++;
		return;
	}
	pthread_mutex_lock(&app->mu);
	atomic_store_explicit(&app->mu_owner, self, memory_order_relaxed);
	app->mu_depth = 1;
}

void fk_app_unlock(fcgi_app *app)
{
	if (--app->mu_depth)
		return;
	atomic_store_explicit(&app->mu_owner, (pthread_t)0, memory_order_relaxed);
	pthread_mutex_unlock(&app->mu);
}

#define app_lock fk_app_lock
#define app_unlock fk_app_unlock

/* Releases the lock whatever its depth; returns the depth for relock(). */
static unsigned unlock_all(fcgi_app *app)
{
	unsigned depth = app->mu_depth;
	app->mu_depth = 0;
	atomic_store_explicit(&app->mu_owner, (pthread_t)0, memory_order_relaxed);
	pthread_mutex_unlock(&app->mu);
	return depth;
}

static void relock(fcgi_app *app, unsigned depth)
{
	pthread_mutex_lock(&app->mu);
	atomic_store_explicit(&app->mu_owner, pthread_self(), memory_order_relaxed);
	app->mu_depth = depth;
}

/* The blocking estimate the wake policy acts on now (wake.h). */
static unsigned blocking_now(const fcgi_app *app)
{
	return fk_wake_effective(app->blocking, app->cost_us);
}

/* Returns whether the wait timed out. */
static int cond_wait(fcgi_app *app, pthread_cond_t *cv, const struct timespec *until)
{
	unsigned depth = app->mu_depth;
	app->mu_depth = 0;
	atomic_store_explicit(&app->mu_owner, (pthread_t)0, memory_order_relaxed);
	int rc = until ? pthread_cond_timedwait(cv, &app->mu, until) : pthread_cond_wait(cv, &app->mu);
	atomic_store_explicit(&app->mu_owner, pthread_self(), memory_order_relaxed);
	app->mu_depth = depth;
	return rc == ETIMEDOUT;
}

/* ---------------------------------------------------------------- app object */

/* The first line of a small file, or 0. */
static int read_line(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	int ok = fgets(buf, (int)n, f) != NULL;
	fclose(f);
	return ok;
}

/* A container's CPU quota (docker --cpus) caps the cores the wake policy counts: the
 * process's cgroup from /proc/self/cgroup, v2 (cpu.max, up to the root: a parent's quota
 * holds too) or v1 (cpu.cfs_quota_us and cpu.cfs_period_us). Anything missing: no cap. */
static unsigned quota_cores(unsigned ncpu)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return ncpu;
	unsigned cores = ncpu;
	char line[512], path[640], text[64], period[32];
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
		if (!b)
			continue;
		*a = *b = 0;
		const char *ctrl = a + 1;
		char *cg = b + 1;
		if (!strcmp(line, "0") && !*ctrl) {
			for (;;) {
				snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", cg);
				if (read_line(path, text, sizeof text))
					cores = fk_wake_quota_cores(cores, text);
				char *slash = strrchr(cg, '/');
				if (!slash || slash == cg)
					break;
				*slash = 0;
			}
			continue;
		}
		/* v1: a hierarchy whose controllers include "cpu" */
		char list[128];
		snprintf(list, sizeof list, ",%s,", ctrl);
		if (!strstr(list, ",cpu,"))
			continue;
		static const char *const mounts[] = {"cpu", "cpu,cpuacct", "cpuacct,cpu"};
		for (size_t i = 0; i < sizeof mounts / sizeof *mounts; i++) {
			snprintf(path, sizeof path, "/sys/fs/cgroup/%s%s/cpu.cfs_period_us", mounts[i], cg);
			if (!read_line(path, period, sizeof period))
				continue;
			snprintf(path, sizeof path, "/sys/fs/cgroup/%s%s/cpu.cfs_quota_us", mounts[i], cg);
			char quota[32];
			if (!read_line(path, quota, sizeof quota))
				continue;
			quota[strcspn(quota, "\n")] = 0;
			snprintf(text, sizeof text, "%s %s", quota, period);
			cores = fk_wake_quota_cores(cores, text);
			break;
		}
	}
	fclose(f);
	return cores;
}

static const long opt_defaults[FCGI_OPT_UNIX_MODE + 1] = {
    [FCGI_OPT_MAX_CONNS] = 1024,
    [FCGI_OPT_MAX_REQS] = 1024,
    [FCGI_OPT_MAX_REQS_PER_CONN] = 256,
    [FCGI_OPT_MPXS_CONNS] = 1,
    [FCGI_OPT_MAX_PARAMS_BYTES] = 65536,
    [FCGI_OPT_MAX_PARAMS_COUNT] = 512,
    [FCGI_OPT_BODY_BUFFER] = 262144,
    [FCGI_OPT_OUT_BUFFER] = 262144,
    [FCGI_OPT_IDLE_TIMEOUT_MS] = 300000,
    [FCGI_OPT_READ_TIMEOUT_MS] = 60000,
    [FCGI_OPT_WRITE_TIMEOUT_MS] = 60000,
    [FCGI_OPT_DRAIN_TIMEOUT_MS] = 10000,
    [FCGI_OPT_BACKLOG] = 1024,
    [FCGI_OPT_UNIX_MODE] = 0666,
};

static void sync_limits(fcgi_app *app)
{
	app->lim.max_reqs_per_conn = (uint32_t)app->opt[FCGI_OPT_MAX_REQS_PER_CONN];
	app->lim.max_params_bytes = (uint32_t)app->opt[FCGI_OPT_MAX_PARAMS_BYTES];
	app->lim.max_params_count = (uint32_t)app->opt[FCGI_OPT_MAX_PARAMS_COUNT];
	app->lim.advertise_max_conns = (uint32_t)app->opt[FCGI_OPT_MAX_CONNS];
	app->lim.advertise_max_reqs = (uint32_t)app->opt[FCGI_OPT_MAX_REQS];
	app->lim.mpxs = app->opt[FCGI_OPT_MPXS_CONNS] ? 1 : 0;
	if (!app->lim.mpxs)
		app->lim.max_reqs_per_conn = 1;
}

FCGI_EXPORT int fcgi_app_new(fcgi_app **out)
{
	*out = NULL;
	fcgi_app *app = fk_calloc(1, sizeof *app);
	if (!app)
		return FCGI_ENOMEM;
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&app->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&app->cv_accept, &ca);
	pthread_cond_init(&app->cv_io, &ca);
	app->have_cpus = !sched_getaffinity(0, sizeof app->cpus, &app->cpus);
	app->ncpu = quota_cores(app->have_cpus ? (unsigned)CPU_COUNT(&app->cpus) : 1);
	app->cores = app->ncpu;
	app->stat_fd = -1;
	/* as if long at first, so that the first handlers are sampled */
	app->cost_us = FK_WAKE_GRAIN_US;
	app->guard_ms = FK_WAKE_GUARD_MS;
	pthread_condattr_destroy(&ca);
	memcpy(app->opt, opt_defaults, sizeof app->opt);
	sync_limits(app);
	app->wake_kind = FK_OBJ_WAKE;
	fk_ev_init(&app->ev);
	app->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int rc = app->wake_fd < 0 ? FCGI_ESYS : fk_ev_add(&app->ev, app->wake_fd, FK_EV_IN, &app->wake_kind);
	if (!rc) {
		const char *allow = getenv("FCGI_WEB_SERVER_ADDRS");
		rc = fk_netlist_parse(allow, &app->allow, &app->nallow);
	}
	if (!rc)
		fk_report_attach(app);
	if (rc) {
		fcgi_app_free(app);
		return rc;
	}
	*out = app;
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_app_set_opt(fcgi_app *app, fcgi_opt opt, long value)
{
	if (opt < FCGI_OPT_MAX_CONNS || opt > FCGI_OPT_UNIX_MODE || value < 0)
		return FCGI_EINVAL;
	int positive = opt != FCGI_OPT_MPXS_CONNS && opt != FCGI_OPT_IDLE_TIMEOUT_MS &&
	               opt != FCGI_OPT_READ_TIMEOUT_MS && opt != FCGI_OPT_WRITE_TIMEOUT_MS &&
	               opt != FCGI_OPT_DRAIN_TIMEOUT_MS && opt != FCGI_OPT_UNIX_MODE;
	if (positive && value == 0)
		return FCGI_EINVAL;
	if ((opt == FCGI_OPT_MAX_REQS_PER_CONN && value > 65535) ||
	    (opt == FCGI_OPT_MAX_PARAMS_BYTES && value > 0x7fffffff) ||
	    (opt == FCGI_OPT_MAX_PARAMS_COUNT && value > 0x7fffffff) ||
	    (opt == FCGI_OPT_UNIX_MODE && value > 07777) ||
	    ((opt == FCGI_OPT_MAX_CONNS || opt == FCGI_OPT_MAX_REQS) && value > 0x7fffffff))
		return FCGI_EINVAL;
	app_lock(app);
	app->opt[opt] = value;
	sync_limits(app);
	app_unlock(app);
	return FCGI_OK;
}

FCGI_EXPORT long fcgi_app_get_opt(const fcgi_app *app, fcgi_opt opt)
{
	if (opt < FCGI_OPT_MAX_CONNS || opt > FCGI_OPT_UNIX_MODE)
		return FCGI_EINVAL;
	return app->opt[opt];
}

FCGI_EXPORT int fcgi_app_allow(fcgi_app *app, const char *addrs)
{
	fk_net *nets;
	size_t n;
	int rc = fk_netlist_parse(addrs, &nets, &n);
	if (rc)
		return rc;
	app_lock(app);
	fk_free(app->allow);
	app->allow = nets;
	app->nallow = n;
	app_unlock(app);
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_app_set_handler(fcgi_app *app, fcgi_handler handler, void *ud)
{
	app_lock(app);
	app->handler = handler;
	app->handler_ud = ud;
	app_unlock(app);
	return FCGI_OK;
}

void fk_app_wake(fcgi_app *app)
{
	uint64_t one = 1;
	ssize_t n = write(app->wake_fd, &one, sizeof one);
	(void)n; /* EAGAIN means a wake-up is already pending */
}

/* The app whose loop pass this thread is running, if any. */
static _Thread_local const fcgi_app *tls_loop_app;

int fk_app_on_loop_thread(const fcgi_app *app) { return tls_loop_app == app; }

/* The blocking API's bookkeeping for the wake policy (wake.h): the app this thread counts as
 * busy in (from fcgi_accept's return to its next call), and the handler being sampled. */
static _Thread_local fcgi_app *tls_busy_app;
static _Thread_local const fcgi_req *tls_sample_req, *tls_start_req;
static _Thread_local long tls_sample_nvcsw, tls_sample_base;
static _Thread_local int64_t tls_start_us;

int fk_app_sample_end(const fcgi_req *req, int64_t now_us, long long *us)
{
	*us = -1;
	if (!req)
		return -1;
	if (tls_start_req == req) {
		*us = now_us - tls_start_us;
		tls_start_req = NULL;
	}
	if (tls_sample_req != req)
		return -1;
	tls_sample_req = NULL;
	struct rusage ru;
	if (getrusage(RUSAGE_THREAD, &ru))
		return -1;
	return ru.ru_nvcsw - tls_sample_nvcsw > tls_sample_base;
}

FCGI_EXPORT void fcgi_app_stop(fcgi_app *app)
{
	app->stop_requested = 1;
	fk_app_wake(app);
}

FCGI_EXPORT int fcgi_app_timer(fcgi_app *app, unsigned delay_ms, void (*cb)(void *), void *ud)
{
	if (!cb)
		return FCGI_EINVAL;
	app_lock(app);
	int rc = fk_timers_push(&app->timers, fk_now_ms() + delay_ms, cb, ud);
	if (!rc && app->leader && !fk_app_on_loop_thread(app))
		fk_app_wake(app);
	app_unlock(app);
	return rc;
}

/* ---------------------------------------------------------------- requests */

void fk_req_free(fcgi_req *r)
{
	fcgi_app *app = r->app;
	if (r->prev_all)
		r->prev_all->next_all = r->next_all;
	else
		app->all = r->next_all;
	if (r->next_all)
		r->next_all->prev_all = r->prev_all;
	fk_params_free(r->params);
	fk_buf_free(&r->body);
	fk_buf_free(&r->data);
	fk_buf_free(&r->pending);
	fk_free(r);
}

static void ready_remove(fcgi_app *app, fcgi_req *r)
{
	fcgi_req **pp = &app->ready_head, *prev = NULL;
	while (*pp && *pp != r) {
		prev = *pp;
		pp = &(*pp)->next_ready;
	}
	if (!*pp)
		return;
	*pp = r->next_ready;
	if (app->ready_tail == r)
		app->ready_tail = prev;
	r->next_ready = NULL;
	r->flags &= ~(uint32_t)FK_R_QUEUED;
	app->nready--;
}

static void call_abort_cb(fcgi_req *r)
{
	if (r->on_abort && !(r->flags & FK_R_ABORT_CB_DONE)) {
		r->flags |= FK_R_ABORT_CB_DONE;
		r->on_abort(r, r->on_abort_ud);
	}
}

void fk_app_finished_request(fcgi_app *app, fcgi_req *r)
{
	fk_report_end(app, r);
	app->inflight--;
	if (app->stopping)
		app->changed = 1;
}

/* ---------------------------------------------------------------- connections */

int fk_conn_paused(const fk_conn *c)
{
	return c->full_reqs > 0 || c->eof ||
	       fk_buf_size(&c->srv.out) >= (size_t)c->app->opt[FCGI_OPT_OUT_BUFFER];
}

void fk_conn_update_interest(fk_conn *c)
{
	if (fk_conn_gone(c))
		return;
	unsigned want = (fk_conn_paused(c) ? 0 : FK_EV_IN) | (fk_buf_size(&c->srv.out) ? FK_EV_OUT : 0);
	if (want == c->events)
		return;
	c->events = want;
	fk_ev_mod(&c->app->ev, c->fd, want, c);
	if (c->app->ev.epfd < 0 && c->app->leader && !fk_app_on_loop_thread(c->app))
		fk_app_wake(c->app);
}

static void conns_unlink(fcgi_app *app, fk_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		app->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		app->conns_tail = c->prev;
	c->prev = c->next = NULL;
}

static void conns_append(fcgi_app *app, fk_conn *c)
{
	c->prev = app->conns_tail;
	c->next = NULL;
	if (app->conns_tail)
		app->conns_tail->next = c;
	else
		app->conns = c;
	app->conns_tail = c;
}

/* Most recently active last, so the head is the first to evict. */
static void conns_touch(fcgi_app *app, fk_conn *c)
{
	if (app->conns_tail == c)
		return;
	conns_unlink(app, c);
	conns_append(app, c);
}

static void conn_close_now(fk_conn *c)
{
	fcgi_app *app = c->app;
	c->dead = 1;
	fk_ev_del(&app->ev, c->fd);
	close(c->fd);
	conns_unlink(app, c);
	app->nconns--;
	fk_report_conns(app, 0);
	for (uint32_t i = 0; i < c->srv.nreqs; i++) {
		fcgi_req *r = fk_srv_user_at(&c->srv, i);
		if (!r)
			continue;
		r->conn = NULL;
		r->flags |= FK_R_ABORTED | FK_R_CLOSED;
		atomic_store_explicit(&r->aborted, 1, memory_order_relaxed);
		if (r->flags & FK_R_FULL) {
			r->flags &= ~(uint32_t)FK_R_FULL;
			c->full_reqs--;
		}
		if (r->flags & FK_R_OWNED) {
			if (fk_app_on_loop_thread(app)) {
				call_abort_cb(r);
			} else if (r->on_abort) {
				r->next_ready = app->aborts;
				app->aborts = r;
				if (app->leader)
					fk_app_wake(app);
			}
			continue; /* the application still holds it: freed by fcgi_finish */
		}
		if (r->flags & FK_R_QUEUED)
			ready_remove(app, r);
		fk_app_finished_request(app, r);
		fk_req_free(r);
	}
	fk_srv_free(&c->srv);
	fk_buf_free(&c->in);
	/* Off the pending lists: the graveyard may be freed before they are walked. */
	if (c->dirty)
		for (fk_conn **pp = &app->dirty; *pp; pp = &(*pp)->next_dirty)
			if (*pp == c) {
				*pp = c->next_dirty;
				break;
			}
	if (c->resume)
		for (fk_conn **pp = &app->resume; *pp; pp = &(*pp)->next_resume)
			if (*pp == c) {
				*pp = c->next_resume;
				break;
			}
	c->dirty = c->resume = 0;
	c->next = app->graveyard;
	app->graveyard = c;
	app->changed = 1;
}

void fk_conn_close(fk_conn *c)
{
	if (c->dead)
		return;
	if (!c->sending && fk_app_on_loop_thread(c->app)) {
		conn_close_now(c);
		return;
	}
	c->close_req = 1;
	fk_conn_schedule_resume(c);
}

/* The connection's last answer is out. A peer may still be sending records we no longer need
 * (Caddy sends the end of STDIN after reading a short answer): closing now would reset the
 * connection under its write and turn its request into a 502. So shut our side, drop what
 * comes, and close at the peer's EOF or after LINGER_MS. */
static void conn_end(fk_conn *c)
{
	if (c->eof || c->lingering) {
		fk_conn_close(c);
		return;
	}
	c->lingering = 1;
	c->linger_until = fk_now_ms() + LINGER_MS;
	shutdown(c->fd, SHUT_WR);
	fk_buf_reset(&c->in);
	fk_conn_update_interest(c);
}

/* Sends bytes until done or the socket is full; returns 0, 1 when blocked, -1 on error. */
static int send_buf(int fd, fk_buf *b)
{
	while (fk_buf_size(b)) {
		ssize_t n = send(fd, fk_buf_head(b), fk_buf_size(b), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			fk_buf_consume(b, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 1;
		return -1;
	}
	return 0;
}

/* Sends pending output. Returns FCGI_OK (maybe with output left, then write interest is on)
 * or FCGI_ECLOSED when the connection died. An application thread sends with the lock
 * released: it takes the bytes out of srv.out, and bytes appended meanwhile are put behind
 * what it could not send. */
static int conn_flush(fk_conn *c, int unlocked);

int fk_conn_flush(fk_conn *c)
{
	return conn_flush(c, !fk_app_on_loop_thread(c->app));
}

/* unlocked: send with the lock released, so that threads finishing requests are not held
 * up behind a system call. The loop thread may do so only where no caller up its stack
 * holds pointers the others could change: at the top of a pass (flush_dirty). */
static int conn_flush(fk_conn *c, int unlocked)
{
	if (fk_conn_gone(c))
		return FCGI_ECLOSED;
	fcgi_app *app = c->app;
	if (c->sending) {
		c->flush_again = 1;
		return FCGI_OK;
	}
	size_t before = fk_buf_size(&c->srv.out);
	int st = 0;
	c->sending = 1;
	do {
		c->flush_again = 0;
		if (!fk_buf_size(&c->srv.out))
			break;
		fk_buf out = c->srv.out;
		size_t had = fk_buf_size(&out);
		c->srv.out = (fk_buf){0};
		if (unlocked) {
			unsigned depth = unlock_all(app);
			st = send_buf(c->fd, &out);
			relock(app, depth);
		} else {
			st = send_buf(c->fd, &out);
		}
		if (fk_buf_size(&out) < had)
			c->last_out = fk_now_ms();
		if (fk_buf_size(&c->srv.out) && fk_buf_size(&out)) {
			if (fk_buf_append(&out, fk_buf_head(&c->srv.out), fk_buf_size(&c->srv.out)))
				st = -1;
			fk_buf_free(&c->srv.out);
			c->srv.out = out;
		} else if (fk_buf_size(&c->srv.out)) {
			fk_buf_free(&out);
		} else {
			fk_buf_free(&c->srv.out);
			c->srv.out = out;
		}
	} while (st == 0 && c->flush_again && !c->close_req);
	c->sending = 0;
	if (st < 0 || c->close_req) {
		c->close_req = 0;
		fk_conn_close(c); /* done now on the loop thread, else requested again */
		return FCGI_ECLOSED;
	}
	size_t after = fk_buf_size(&c->srv.out);
	if (!after) {
		fk_buf_shrink(&c->srv.out, (size_t)app->opt[FCGI_OPT_OUT_BUFFER]);
		/* Without KEEP_CONN, after the peer's half-close, or while stopping, the connection
		 * ends with its last answer. */
		if (c->srv.nreqs == 0 && (c->srv.closing || c->eof || app->stopping)) {
			conn_end(c);
			return FCGI_OK;
		}
	}
	size_t limit = (size_t)app->opt[FCGI_OPT_OUT_BUFFER];
	if (before >= limit / 2 && after < limit / 2) {
		app->changed = 1; /* blocked writers may go on */
		fk_conn_schedule_resume(c);
	}
	fk_conn_update_interest(c);
	return FCGI_OK;
}

void fk_conn_mark_dirty(fk_conn *c)
{
	if (fk_conn_gone(c) || c->dirty)
		return;
	c->dirty = 1;
	c->next_dirty = c->app->dirty;
	c->app->dirty = c;
}

static void flush_dirty(fcgi_app *app)
{
	while (app->dirty) {
		fk_conn *c = app->dirty;
		app->dirty = c->next_dirty;
		c->dirty = 0;
		conn_flush(c, 1);
	}
}

void fk_conn_schedule_resume(fk_conn *c)
{
	if (c->dead || c->resume)
		return;
	fcgi_app *app = c->app;
	c->resume = 1;
	c->next_resume = app->resume;
	app->resume = c;
	if (app->leader && !fk_app_on_loop_thread(app))
		fk_app_wake(app);
}

static void dispatch(fk_conn *c, fcgi_req *r)
{
	fcgi_app *app = c->app;
	if (app->handler) {
		r->flags |= FK_R_OWNED;
		app->owned++;
		app->handler(r, app->handler_ud);
		return;
	}
	r->flags |= FK_R_QUEUED;
	if (app->ready_tail)
		app->ready_tail->next_ready = r;
	else
		app->ready_head = r;
	app->ready_tail = r;
	app->nready++;
	app->queued_new++;
}

/* Delivers buffered body bytes to an event-style consumer, STDIN first, then DATA. */
static void deliver_body(fcgi_req *r)
{
	if ((r->flags & FK_R_FULL) && r->conn) {
		/* Nothing stays buffered for a consumer with a callback. */
		r->flags &= ~(uint32_t)FK_R_FULL;
		r->conn->full_reqs--;
	}
	while (r->on_body && !(r->flags & FK_R_CLOSED)) {
		if (fk_buf_size(&r->body)) {
			size_t n = fk_buf_size(&r->body);
			/* Consume before the call: the callback may finish (free) the request. */
			fk_buf tmp = r->body;
			r->body = (fk_buf){0};
			r->on_body(r, fk_buf_head(&tmp), n, r->on_body_ud);
			fk_buf_free(&tmp);
			return; /* the request may be gone; more arrives with later events */
		}
		if ((r->flags & FK_R_STDIN_END) && !(r->flags & FK_R_BODY_EOF_SENT)) {
			r->flags |= FK_R_BODY_EOF_SENT;
			r->on_body(r, NULL, 0, r->on_body_ud);
			return;
		}
		if (!(r->flags & FK_R_BODY_EOF_SENT) || r->role != FCGI_ROLE_FILTER)
			return;
		if (fk_buf_size(&r->data)) {
			size_t n = fk_buf_size(&r->data);
			fk_buf tmp = r->data;
			r->data = (fk_buf){0};
			r->on_body(r, fk_buf_head(&tmp), n, r->on_body_ud);
			fk_buf_free(&tmp);
			return;
		}
		if ((r->flags & FK_R_DATA_END) && !(r->flags & FK_R_DATA_EOF_SENT)) {
			r->flags |= FK_R_DATA_EOF_SENT;
			r->on_body(r, NULL, 0, r->on_body_ud);
		}
		return;
	}
}

static void note_full(fk_conn *c, fcgi_req *r)
{
	if (!(r->flags & FK_R_FULL) &&
	    fk_buf_size(&r->body) + fk_buf_size(&r->data) >= (size_t)c->app->opt[FCGI_OPT_BODY_BUFFER]) {
		r->flags |= FK_R_FULL;
		c->full_reqs++;
	}
}

static void handle_event(fk_conn *c, fk_srv_event *ev)
{
	fcgi_app *app = c->app;
	fcgi_req *r = ev->user;
	switch (ev->kind) {
	case FK_SEV_BEGIN:
		/* While draining, a request that was already on its way over a kept connection is
		 * served, and the connection ends with its answer: nginx does not retry an
		 * OVERLOADED answer, and it was our connection to keep. A second request in flight
		 * on one connection (a multiplexing front, which can go elsewhere) is refused. */
		if ((app->stopping && fk_srv_inflight(&c->srv) > 1) ||
		    app->inflight >= (size_t)app->opt[FCGI_OPT_MAX_REQS]) {
			fk_srv_refuse(&c->srv, ev->request_id, FCGI_STATUS_OVERLOADED);
			return;
		}
		r = fk_calloc(1, sizeof *r);
		if (!r) {
			fk_srv_refuse(&c->srv, ev->request_id, FCGI_STATUS_OVERLOADED);
			return;
		}
		c->begun = 1;
		r->app = app;
		r->next_all = app->all;
		if (app->all)
			app->all->prev_all = r;
		app->all = r;
		r->conn = c;
		r->id = ev->request_id;
		r->role = ev->role;
		r->keep_conn = ev->keep_conn;
		fk_srv_set_user(&c->srv, ev->request_id, r);
		app->inflight++;
		return;
	case FK_SEV_PARAMS:
		r->params = ev->params;
		fk_report_begin(app, r);
		dispatch(c, r);
		return;
	case FK_SEV_STDIN:
	case FK_SEV_DATA: {
		if (r->flags & FK_R_ABORTED)
			return;
		int is_stdin = ev->kind == FK_SEV_STDIN;
		if (is_stdin && r->on_body && !fk_buf_size(&r->body)) {
			r->on_body(r, ev->data, ev->len, r->on_body_ud);
			return;
		}
		if (fk_buf_append(is_stdin ? &r->body : &r->data, ev->data, ev->len)) {
			fk_conn_close(c); /* cannot hold the body: give up on the connection */
			return;
		}
		note_full(c, r);
		app->changed = 1;
		if (r->on_body)
			deliver_body(r);
		return;
	}
	case FK_SEV_STDIN_END:
	case FK_SEV_DATA_END:
		r->flags |= ev->kind == FK_SEV_STDIN_END ? FK_R_STDIN_END : FK_R_DATA_END;
		app->changed = 1;
		if (r->on_body)
			deliver_body(r);
		return;
	case FK_SEV_REFUSED:
		if (r) {
			fk_app_finished_request(app, r);
			fk_req_free(r);
		}
		fk_conn_mark_dirty(c);
		return;
	case FK_SEV_ABORT:
		r->flags |= FK_R_ABORTED;
		atomic_store_explicit(&r->aborted, 1, memory_order_relaxed);
		app->changed = 1;
		if (r->flags & FK_R_OWNED) {
			call_abort_cb(r);
			return;
		}
		/* Not yet handed out: answer for the application and forget it. */
		if (r->flags & FK_R_QUEUED)
			ready_remove(app, r);
		if (r->flags & FK_R_FULL)
			c->full_reqs--;
		fk_srv_end(&c->srv, r->id, 0);
		fk_app_finished_request(app, r);
		fk_req_free(r);
		fk_conn_mark_dirty(c);
		return;
	}
}

/* Feeds buffered input to the session while the connection is not paused. */
static void process_input(fk_conn *c)
{
	fk_srv_event ev;
	size_t used;
	while (!fk_conn_gone(c) && fk_buf_size(&c->in) && !fk_conn_paused(c)) {
		int rc = fk_srv_feed(&c->srv, fk_buf_head(&c->in), fk_buf_size(&c->in), &used, &ev);
		/* Event slices point into c->in; consuming only moves offsets, so they stay valid
		 * until the next append. */
		fk_buf_consume(&c->in, used);
		if (rc < 0) {
			fk_conn_close(c);
			return;
		}
		if (rc == 0)
			break;
		handle_event(c, &ev);
	}
	if (fk_conn_gone(c))
		return;
	fk_buf_shrink(&c->in, IN_KEEP);
	if (fk_buf_size(&c->srv.out))
		fk_conn_mark_dirty(c);
	fk_conn_update_interest(c);
}

/* The peer sent its last byte but may still read: requests whose input is complete are
 * answered; the others can never complete and are aborted. */
static void conn_half_closed(fk_conn *c)
{
	fcgi_app *app = c->app;
	c->eof = 1;
	for (uint32_t i = 0; i < c->srv.nreqs && !fk_conn_gone(c); i++) {
		fcgi_req *r = fk_srv_user_at(&c->srv, i);
		if (!r || (r->flags & (FK_R_STDIN_END | FK_R_ABORTED)))
			continue;
		if (r->role == FCGI_ROLE_AUTHORIZER && (r->flags & (FK_R_QUEUED | FK_R_OWNED)))
			continue; /* an Authorizer's input ends with its PARAMS */
		fk_srv_event ev = {.kind = FK_SEV_ABORT, .request_id = r->id, .user = r};
		uint32_t before = c->srv.nreqs;
		handle_event(c, &ev);
		if (c->srv.nreqs != before)
			i = (uint32_t)-1; /* a request ended: start over */
	}
	app->changed = 1;
	if (fk_conn_gone(c))
		return;
	if (!c->srv.nreqs && !fk_buf_size(&c->srv.out))
		fk_conn_close(c);
	else
		fk_conn_update_interest(c);
}

/* What one recv() gave, handled with the lock held. */
static void conn_read_result(fk_conn *c, ssize_t n, int err)
{
	if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK))
		return;
	if (c->lingering) {
		if (n <= 0)
			fk_conn_close(c);
		return; /* dropped: c->in is reset before each read */
	}
	if (n == 0 && c->srv.nreqs) {
		conn_half_closed(c);
		return;
	}
	if (n <= 0) {
		/* The peer closed (or reset): requests still in flight are aborted. */
		fk_conn_close(c);
		return;
	}
	c->in.len += (size_t)n;
	c->last_in = fk_now_ms();
	conns_touch(c->app, c);
	process_input(c);
}

/* recv() into the connection's input buffer; only the loop thread touches c->in and only it
 * closes c->fd, so this runs without the lock. */
static ssize_t conn_recv(fk_conn *c, int *err)
{
	ssize_t n;
	do
		n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
	while (n < 0 && errno == EINTR);
	*err = n < 0 ? errno : 0;
	c->in_bulk = n > 0 && (size_t)n == c->in.cap - c->in.len;
	return n;
}

static int conn_idle(const fk_conn *c)
{
	return c->srv.nreqs == 0 && fk_reader_idle(&c->srv.rd) && !fk_buf_size(&c->in) &&
	       !fk_buf_size(&c->srv.out);
}

/* Closes the least recently active idle connection; returns whether one was closed. */
static int evict_idle(fcgi_app *app)
{
	for (fk_conn *c = app->conns; c; c = c->next)
		if (conn_idle(c)) {
			fk_conn_close(c);
			return 1;
		}
	return 0;
}

static void accept_batch(fcgi_app *app, fk_listener *l)
{
	/* Blocking style: take only as many new connections as there are threads free to serve
	 * them, and leave the rest in the kernel's queue for the other processes on the same
	 * socket (prefork pools such as fcgiwrap -c N, spawn-fcgi -F N). The listener stays
	 * readable, so the next pass takes more. */
	int batch = app->handler ? ACCEPT_BATCH : (int)app->accept_waiters + 1;
	if (batch > ACCEPT_BATCH)
		batch = ACCEPT_BATCH;
	for (int i = 0; i < batch && !app->stopping; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if ((errno == EMFILE || errno == ENFILE) && evict_idle(app))
				continue;
			return;
		}
		if (!l->is_unix && !fk_netlist_match(app->allow, app->nallow, (struct sockaddr *)&ss)) {
			close(fd);
			continue;
		}
		if (app->nconns >= (size_t)app->opt[FCGI_OPT_MAX_CONNS] && !evict_idle(app)) {
			close(fd);
			continue;
		}
		if (!l->is_unix && !l->nodelay) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		}
		fk_conn *c = fk_calloc(1, sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		c->kind = FK_OBJ_CONN;
		c->fd = fd;
		c->app = app;
		c->is_unix = (uint8_t)l->is_unix;
		c->last_in = c->last_out = fk_now_ms();
		fk_srv_init(&c->srv, &app->lim);
		c->events = FK_EV_IN;
		if (fk_ev_add(&app->ev, fd, FK_EV_IN, c)) {
			close(fd);
			fk_free(c);
			continue;
		}
		conns_append(app, c);
		app->nconns++;
		fk_report_conns(app, 1);
	}
}

/* ---------------------------------------------------------------- stopping and timeouts */

static void begin_stop(fcgi_app *app)
{
	app->stopping = 1;
	fk_report_state(app, FK_RS_DRAINING);
	app->stop_deadline = fk_now_ms() + app->opt[FCGI_OPT_DRAIN_TIMEOUT_MS];
	for (size_t i = 0; i < app->nlisteners; i++)
		fk_listener_close(app, app->listeners[i]);
	app->nlisteners = 0;
	/* Idle kept connections close now: a front retries a request it loses on a connection
	 * it had cached. One accepted and not yet used stays until its first answer (or the
	 * drain's end): its peer connected to us and has nowhere else to retry. */
	for (fk_conn *c = app->conns, *next; c; c = next) {
		next = c->next;
		if (conn_idle(c) && c->begun)
			fk_conn_close(c);
	}
	app->changed = 1;
}

static void check_stopped(fcgi_app *app, int64_t now)
{
	if (!app->stopping || app->stopped)
		return;
	int late = now >= app->stop_deadline;
	if (late)
		for (fk_conn *c = app->conns, *next; c; c = next) {
			next = c->next;
			fk_conn_close(c);
		}
	if (!app->nconns && (late || !app->owned)) {
		app->stopped = 1;
		app->changed = 1;
	}
}

static void sweep(fcgi_app *app, int64_t now)
{
	long idle = app->opt[FCGI_OPT_IDLE_TIMEOUT_MS], rd = app->opt[FCGI_OPT_READ_TIMEOUT_MS],
	     wr = app->opt[FCGI_OPT_WRITE_TIMEOUT_MS];
	for (fk_conn *c = app->conns, *next; c; c = next) {
		next = c->next;
		if (c->lingering) {
			if (now >= c->linger_until)
				fk_conn_close(c);
			continue;
		}
		if (fk_buf_size(&c->srv.out)) {
			if (wr && now - c->last_out > wr)
				fk_conn_close(c);
			continue;
		}
		if (conn_idle(c)) {
			/* Draining: a connection nobody has used within a second will not be. */
			if ((idle && now - c->last_in > idle) || (app->stopping && now - c->last_in > 1000))
				fk_conn_close(c);
			continue;
		}
		/* A partial record, or a request whose PARAMS are not complete: the peer owes us. */
		int owes = !fk_reader_idle(&c->srv.rd) || fk_buf_size(&c->in);
		for (uint32_t i = 0; !owes && i < c->srv.nreqs; i++) {
			fcgi_req *r = fk_srv_user_at(&c->srv, i);
			owes = r && !(r->flags & (FK_R_QUEUED | FK_R_OWNED));
		}
		if (owes && !fk_conn_paused(c) && rd && now - c->last_in > rd)
			fk_conn_close(c);
	}
}

/* ---------------------------------------------------------------- the loop */

static void free_graveyard(fcgi_app *app)
{
	while (app->graveyard) {
		fk_conn *c = app->graveyard;
		app->graveyard = c->next;
		fk_free(c);
	}
}

static void process_resumes(fcgi_app *app)
{
	while (app->aborts) {
		fcgi_req *r = app->aborts;
		app->aborts = r->next_ready;
		r->next_ready = NULL;
		call_abort_cb(r);
	}
	while (app->resume) {
		fk_conn *c = app->resume;
		app->resume = c->next_resume;
		c->resume = 0;
		if (c->dead)
			continue;
		if (c->close_req) {
			if (!c->sending) {
				c->close_req = 0;
				conn_close_now(c);
			}
			continue;
		}
		if (c->pending_body) {
			c->pending_body = 0;
			for (uint32_t i = 0; i < c->srv.nreqs && !fk_conn_gone(c); i++) {
				fcgi_req *r = fk_srv_user_at(&c->srv, i);
				uint32_t before = c->srv.nreqs;
				if (r && r->on_body)
					deliver_body(r);
				if (c->srv.nreqs != before)
					i = (uint32_t)-1; /* a request ended: start over */
			}
		}
		if (fk_conn_gone(c))
			continue;
		process_input(c);
		if (fk_conn_gone(c))
			continue;
		/* Event-style writers waiting for room. */
		if (fk_buf_size(&c->srv.out) < (size_t)app->opt[FCGI_OPT_OUT_BUFFER])
			for (uint32_t i = 0; i < c->srv.nreqs && !fk_conn_gone(c); i++) {
				fcgi_req *r = fk_srv_user_at(&c->srv, i);
				if (r && r->on_writable) {
					void (*cb)(fcgi_req *, void *) = r->on_writable;
					r->on_writable = NULL;
					cb(r, r->on_writable_ud);
					i = (uint32_t)-1; /* the set may have changed: start over */
				}
			}
	}
}

static void run_timers(fcgi_app *app, int64_t now)
{
	fk_timer t;
	while (fk_timers_pop_due(&app->timers, now, &t))
		t.cb(t.ud);
}

/* One pass: wait for readiness (mutex released meanwhile), then handle it all. Called with
 * app->mu held once, by a thread that is not already the leader. */
/* The free cores for the wake policy (wake.h), from the busy time of this process's cores in
 * /proc/stat and its own CPU time since the last estimate. Without /proc (a chroot) the
 * policy counts every core as free. */
static void estimate_cores(fcgi_app *app)
{
	if (app->stat_fd == -1) {
		app->stat_fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
		if (app->stat_fd < 0)
			app->stat_fd = -2;
	}
	if (app->stat_fd < 0)
		return;
	/* the per-core lines come first; a machine with more cores than fit here is measured
	 * on those that do */
	char buf[8192];
	ssize_t n = pread(app->stat_fd, buf, sizeof buf - 1, 0);
	struct rusage ru;
	if (n <= 0 || getrusage(RUSAGE_SELF, &ru))
		return;
	buf[n] = 0;
	unsigned long long busy = 0, total = 0;
	for (char *line = buf, *eol; line && *line;
	     line = (eol = strchr(line, '\n')) ? eol + 1 : NULL) {
		unsigned cpu;
		unsigned long long v[8] = {0};
		if (sscanf(line, "cpu%u %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0], &v[1],
		           &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 5)
			continue;
		if (app->have_cpus && (cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &app->cpus)))
			continue;
		/* user nice system idle iowait irq softirq steal */
		unsigned long long b = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
		busy += b;
		total += b + v[3] + v[4];
	}
	long hz = sysconf(_SC_CLK_TCK);
	if (hz <= 0)
		hz = 100;
	busy = busy * 1000000ull / (unsigned long long)hz;
	total = total * 1000000ull / (unsigned long long)hz;
	unsigned long long self = (unsigned long long)ru.ru_utime.tv_sec * 1000000ull +
	                          (unsigned long long)ru.ru_utime.tv_usec +
	                          (unsigned long long)ru.ru_stime.tv_sec * 1000000ull +
	                          (unsigned long long)ru.ru_stime.tv_usec;
	if (app->stat_total && total > app->stat_total && busy >= app->stat_busy &&
	    self >= app->self_us)
		app->cores = fk_wake_cores(app->ncpu, busy - app->stat_busy, total - app->stat_total,
		                           self - app->self_us);
	app->stat_busy = busy;
	app->stat_total = total;
	app->self_us = self;
}

static void loop_pass(fcgi_app *app, int timeout_ms)
{
	fk_ev_item items[64];
	app->leader = 1;
	tls_loop_app = app;
	free_graveyard(app);
	if (app->stop_requested && !app->stopping)
		begin_stop(app);
	if (app->report && app->nlisteners && !app->stopping)
		fk_report_state(app, FK_RS_READY);
	process_resumes(app);
	flush_dirty(app);

	int64_t now = fk_now_ms();
	int64_t next = fk_timers_next(&app->timers);
	if (app->nconns) {
		if (!app->next_sweep)
			app->next_sweep = now + SWEEP_MS;
		if (next < 0 || app->next_sweep < next)
			next = app->next_sweep;
	}
	if (app->stopping && (next < 0 || app->stop_deadline < next))
		next = app->stop_deadline;
	if (app->resume || app->dirty || app->stopped || (app->stopping && !app->nconns))
		next = now;
	if (next >= 0) {
		int64_t wait = next > now ? next - now : 0;
		if (timeout_ms < 0 || wait < timeout_ms)
			timeout_ms = (int)(wait > 3600000 ? 3600000 : wait);
	}

	fk_ev_prepare(&app->ev);
	unsigned depth = unlock_all(app);
	int n = fk_ev_wait(&app->ev, items, 64, timeout_ms);
	relock(app, depth);

	/* Which connections to read: decided under the lock, read without it. */
	ssize_t got[64];
	int errs[64];
	int toread = 0;
	for (int i = 0; i < n; i++) {
		got[i] = -1;
		errs[i] = EAGAIN;
		if (*(int *)items[i].ptr != FK_OBJ_CONN || !(items[i].events & (FK_EV_IN | FK_EV_ERR)))
			continue;
		fk_conn *c = items[i].ptr;
		if (fk_conn_gone(c))
			continue;
		if (fk_conn_paused(c)) {
			if (items[i].events & FK_EV_ERR)
				fk_conn_close(c);
			continue;
		}
		if (c->lingering)
			fk_buf_reset(&c->in);
		/* Small requests fit in the IN_KEEP bytes an idle connection keeps anyway, so most
		 * reads allocate nothing; a body arriving in bulk gets READ_CHUNK per recv(). */
		if (fk_buf_reserve(&c->in, c->in_bulk ? READ_CHUNK : IN_KEEP)) {
			fk_conn_close(c);
			continue;
		}
		items[i].events |= FK_EV_READ_NOW;
		toread++;
	}
	if (toread) {
		depth = unlock_all(app);
		for (int i = 0; i < n; i++)
			if (items[i].events & FK_EV_READ_NOW)
				got[i] = conn_recv(items[i].ptr, &errs[i]);
		relock(app, depth);
	}

	for (int i = 0; i < n; i++) {
		int kind = *(int *)items[i].ptr;
		if (kind == FK_OBJ_WAKE) {
			uint64_t v;
			ssize_t r = read(app->wake_fd, &v, sizeof v);
			(void)r;
		} else if (kind == FK_OBJ_LISTENER) {
			accept_batch(app, items[i].ptr);
		} else {
			fk_conn *c = items[i].ptr;
			if (!fk_conn_gone(c) && (items[i].events & FK_EV_READ_NOW))
				conn_read_result(c, got[i], errs[i]);
			if (!fk_conn_gone(c) && (items[i].events & FK_EV_OUT))
				fk_conn_flush(c);
		}
	}
	now = fk_now_ms();
	if (app->leader_acceptor && now >= app->cores_next) { /* only the blocking API wakes */
		app->cores_next = now + FK_WAKE_CORES_MS;
		estimate_cores(app);
	}
	run_timers(app, now);
	if (app->stop_requested && !app->stopping)
		begin_stop(app);
	if (app->next_sweep && now >= app->next_sweep) {
		sweep(app, now);
		app->next_sweep = app->nconns ? now + SWEEP_MS : 0;
	}
	process_resumes(app);
	flush_dirty(app);
	check_stopped(app, now);
	app->progress_ms = now;
	app->leader = 0;
	tls_loop_app = NULL;
	/* Wake exactly the threads that have something to do: one acceptor per new request
	 * (less the one the leader takes itself), every io waiter when their state changed. */
	size_t queued = app->queued_new;
	app->queued_new = 0;
	if (queued && app->leader_acceptor)
		queued--;
	if (app->stopped) {
		pthread_cond_broadcast(&app->cv_accept);
	} else {
		unsigned wake = fk_wake_acceptors(queued > UINT_MAX ? UINT_MAX : (unsigned)queued,
		                                  app->accept_waiters, app->busy, app->cores,
		                                  blocking_now(app));
		for (unsigned i = 0; i < wake; i++)
			pthread_cond_signal(&app->cv_accept);
		/* Requests left for busy threads to take need a guard watching (wake.h). */
		if (wake < queued && !app->guard && app->accept_waiters > wake) {
			app->want_guard = 1;
			pthread_cond_signal(&app->cv_accept);
		}
	}
	if (app->changed) {
		app->changed = 0;
		if (app->io_waiters)
			pthread_cond_broadcast(&app->cv_io);
	}
}

static int pred_ready(fcgi_app *app, void *arg);

int fk_app_wait(fcgi_app *app, int (*pred)(fcgi_app *, void *), void *arg, int64_t deadline)
{
	int led = 0, rc = FCGI_OK, acceptor = pred == pred_ready, guarding = 0,
	    guarded = 0, rewatch = 0, mine = 0;
	pthread_cond_t *cv = acceptor ? &app->cv_accept : &app->cv_io;
	unsigned *waiters = acceptor ? &app->accept_waiters : &app->io_waiters;
	while (rewatch || !pred(app, arg)) {
		/* back to watching: no leader is normal while the busy threads are in handlers */
		int watching = rewatch;
		rewatch = 0;
		int64_t now = deadline >= 0 ? fk_now_ms() : 0;
		if (deadline >= 0 && now >= deadline) {
			rc = FCGI_ETIMEDOUT;
			break;
		}
		flush_dirty(app);
		if (!app->leader && !watching) {
			app->leader_acceptor = acceptor;
			loop_pass(app, deadline >= 0 ? (int)(deadline - now) : -1);
			led = 1;
			continue;
		}
		(*waiters)++;
		/* Someone must notice work that busy threads were trusted to take (wake.h).
		 * While nothing is in flight a leader watches the sockets: sleep untimed then. */
		int active = app->busy || app->nready;
		if (acceptor && deadline < 0 && blocking_now(app) < FK_WAKE_BLOCKING_EAGER &&
		    (active || (app->nconns && (mine || !app->guard)))) {
			/* one guard on a short watch (longer while nothing runs, for a leader
			 * that may leave); every other sleeper looks up now and then, whatever
			 * it may have missed */
			int guard = mine || !app->guard;
			mine = 0;
			int64_t ms = !guard ? FK_WAKE_CHECK_MS
			                    : active ? app->guard_ms : FK_WAKE_GUARD_IDLE_MS;
			app->guard |= guard;
			now = fk_now_ms();
			deadline = now + ms;
			guarding = 1 + guard;
		}
		if (mine) /* not watching after all */
			app->guard = mine = 0;
		int timed_out = 0;
		if (deadline >= 0) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t ns = ts.tv_nsec + (deadline - now) % 1000 * 1000000;
			ts.tv_sec += (deadline - now) / 1000 + ns / 1000000000;
			ts.tv_nsec = ns % 1000000000;
			timed_out = cond_wait(app, cv, &ts);
		} else {
			cond_wait(app, cv, NULL);
		}
		(*waiters)--;
		/* A sleeper's look-up while a guard watches: the guard decides whether anything is
		 * stuck; joining the busy threads now would only contend with them. */
		if (guarding == 1 && timed_out && app->guard && !app->stopped)
			rewatch = 1;
		guarded = guarding == 2;
		if (guarding) {
			guarding = 0;
			deadline = -1;
		}
		/* Woken to watch while busy threads take the queue: watch, do not join them. */
		if (acceptor && app->want_guard && !app->guard && !guarded) {
			app->want_guard = 0;
			rewatch = !app->stopped;
			if (rewatch)
				app->guard = mine = 1;
		}
		if (guarded && !timed_out) {
			/* woken on purpose (a helper wanted, the stop): no longer the guard */
			app->guard = 0;
		} else if (guarded) {
			/* The others finished a request or a pass just now: nothing is stuck, they take
			 * the queue on their own; watch again, for longer, still the guard (so that
			 * nobody wakes another to stand guard meanwhile). */
			int moved = !fk_wake_stalled(fk_now_ms(), app->progress_ms);
			app->guard_ms = fk_wake_guard_ms(app->guard_ms, moved);
			rewatch = moved && !app->stopped &&
			          blocking_now(app) < FK_WAKE_BLOCKING_EAGER;
			if (rewatch)
				guarded = 0, mine = 1;
			else
				app->guard = 0;
		}
	}
	if (mine)
		app->guard = 0;
	/* A guard that found work leaves: the next sleeper takes the watch over. And whoever
	 * takes one of several queued requests with no guard watching wakes the next sleeper,
	 * which takes another or becomes the guard (wake.h). */
	if (acceptor && !app->guard && app->accept_waiters &&
	    ((guarded && app->busy) || app->nready > 1)) {
		app->want_guard = 1;
		pthread_cond_signal(&app->cv_accept);
	}
	/* We stop leading: let a waiting thread take the loop over, so that input is read while
	 * we work. */
	if (led && !app->leader) {
		/* The acceptors already woken take the queued requests (less the one we take
		 * ourselves); one more is needed to run the loop while we all work. */
		size_t taken = app->nready - (acceptor && app->nready ? 1 : 0);
		if (app->accept_waiters > taken &&
		    (app->io_waiters ||
		     fk_wake_successor(app->accept_waiters - (unsigned)taken, app->busy, app->cores,
		                       blocking_now(app), app->guard)))
			pthread_cond_signal(&app->cv_accept);
		else if (app->io_waiters)
			pthread_cond_signal(&app->cv_io);
	}
	return rc;
}

static int pred_ready(fcgi_app *app, void *arg)
{
	(void)arg;
	return app->nready > 0 || app->stopped;
}

FCGI_EXPORT int fcgi_accept(fcgi_app *app, fcgi_req **out)
{
	*out = NULL;
	app_lock(app);
	if (app->handler || fk_app_on_loop_thread(app)) {
		app_unlock(app);
		return FCGI_ESTATE;
	}
	if (tls_busy_app == app) {
		app->busy--;
		tls_busy_app = NULL;
	}
	fk_app_wait(app, pred_ready, NULL, -1);
	if (!app->nready) {
		app_unlock(app);
		return FCGI_ESHUTDOWN;
	}
	fcgi_req *r = app->ready_head;
	ready_remove(app, r);
	r->flags |= FK_R_OWNED;
	app->owned++;
	/* Responses deferred while more requests were queued go out now unless this thread is
	 * about to answer another request of the same connection. */
	if (app->dirty && (!r->conn || !r->conn->dirty || app->nready == 0))
		flush_dirty(app);
	app->busy++;
	tls_busy_app = app;
	/* only handlers long enough for their kind to matter (wake.h) */
	app->sample_ctr++;
	int sample = app->cost_us >= FK_WAKE_GRAIN_US &&
	             app->sample_ctr % FK_WAKE_SAMPLE_EVERY == 0;
	app_unlock(app);
	tls_start_req = r;
	tls_start_us = fk_now_us();
	struct rusage ru0, ru;
	/* Two readings back to back: what reading alone adds (a tracer's stops count as
	 * switches), so that strace -c sees the policy it would see without strace. */
	if (sample && !getrusage(RUSAGE_THREAD, &ru0) && !getrusage(RUSAGE_THREAD, &ru)) {
		tls_sample_req = r;
		tls_sample_nvcsw = ru.ru_nvcsw;
		tls_sample_base = ru.ru_nvcsw - ru0.ru_nvcsw;
	}
	*out = r;
	return FCGI_OK;
}

static int pred_stopped(fcgi_app *app, void *arg)
{
	(void)arg;
	return app->stopped;
}

FCGI_EXPORT int fcgi_app_run(fcgi_app *app)
{
	app_lock(app);
	if (fk_app_on_loop_thread(app)) {
		app_unlock(app);
		return FCGI_ESTATE;
	}
	fk_app_wait(app, pred_stopped, NULL, -1);
	app_unlock(app);
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_app_fd(fcgi_app *app)
{
	return app->ev.epfd >= 0 ? app->ev.epfd : FCGI_ESTATE;
}

FCGI_EXPORT int fcgi_app_process(fcgi_app *app, int timeout_ms)
{
	app_lock(app);
	if (fk_app_on_loop_thread(app)) {
		app_unlock(app);
		return FCGI_ESTATE;
	}
	if (!app->leader && !app->stopped)
		loop_pass(app, timeout_ms);
	int rc = app->stopped ? FCGI_ESHUTDOWN : FCGI_OK;
	app_unlock(app);
	return rc;
}

FCGI_EXPORT void fcgi_app_free(fcgi_app *app)
{
	if (!app)
		return;
	while (app->conns)
		conn_close_now(app->conns);
	free_graveyard(app);
	while (app->all)
		fk_req_free(app->all); /* held by the application and never finished */
	for (size_t i = 0; i < app->nlisteners; i++)
		fk_listener_close(app, app->listeners[i]);
	fk_free(app->listeners);
	fk_timers_free(&app->timers);
	fk_free(app->allow);
	fk_report_detach(app);
	if (app->wake_fd >= 0)
		close(app->wake_fd);
	if (app->stat_fd >= 0)
		close(app->stat_fd);
	fk_ev_close(&app->ev);
	pthread_cond_destroy(&app->cv_accept);
	pthread_cond_destroy(&app->cv_io);
	pthread_mutex_destroy(&app->mu);
	fk_free(app);
}
