/*
 * app_int.h — the application runtime's internal types, shared by app.c (loop, connections),
 * listen.c (sockets) and req.c (the request API).
 *
 * Threading model. One recursive mutex (app->mu) guards all state. Threads that need to wait
 * (fcgi_accept, a blocking fcgi_read or fcgi_write) call fk_app_wait(): if no thread is
 * running the loop, the waiter runs one loop pass itself (the "leader"); otherwise it sleeps
 * on app->cv until a pass changes something. So any number of threads share one epoll set,
 * no thread is tied to a connection, and with one thread there is no hand-off at all.
 * The leader drops the mutex only inside epoll_wait.
 *
 * The leader also drops the mutex around recv(), and an application thread around its
 * send(): syscalls never run under the lock, so threads rarely wait for one another.
 *
 * Lifetimes. Only the loop thread closes a connection, and never while another thread is
 * sending on it (that thread could otherwise write into a reused descriptor); elsewhere a
 * close is requested (close_req) and done by the next pass. Memory is freed only by the
 * leader before its next epoll_wait, so an event already returned for a connection can
 * never point at freed memory. A request lives from BEGIN_REQUEST until
 * fcgi_finish (or until its connection dies while the library still owns it).
 */
#ifndef FK_APP_INT_H
#define FK_APP_INT_H

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>

#include "codec/codec.h"
#include "ev/ev.h"
#include "fcgikit.h"
#include "util/addr.h"
#include "util/buf.h"

typedef struct fk_conn fk_conn;

/* What an epoll item points at: the first member of each kind of object. */
enum { FK_OBJ_LISTENER = 1, FK_OBJ_CONN, FK_OBJ_WAKE };

typedef struct fk_listener {
	int kind; /* FK_OBJ_LISTENER */
	int fd;
	int is_unix;
	int nodelay;       /* set on the listener: accepted sockets inherit it */
	char *unlink_path; /* Unix socket we created: removed at close */
} fk_listener;

/* Request flags */
enum {
	FK_R_QUEUED = 1 << 0,     /* waiting in app->ready for fcgi_accept */
	FK_R_OWNED = 1 << 1,      /* handed to the application (accept or handler) */
	FK_R_STDIN_END = 1 << 2,  /* all of STDIN received */
	FK_R_DATA_END = 1 << 3,   /* all of DATA received */
	FK_R_ABORTED = 1 << 4,    /* ABORT_REQUEST received, or the connection died */
	FK_R_CLOSED = 1 << 5,     /* the connection is gone: nothing more can be sent */
	FK_R_FULL = 1 << 6,       /* body buffer at its limit: counted in conn->full_reqs */
	FK_R_ABORT_CB_DONE = 1 << 7,
	FK_R_BODY_EOF_SENT = 1 << 8,  /* event style: STDIN end delivered to on_body */
	FK_R_DATA_EOF_SENT = 1 << 9,
	FK_R_REPORTED = 1 << 10, /* counted in the manager's report page (report.c) */
};

struct fcgi_req {
	fcgi_app *app;
	fk_conn *conn; /* NULL once the connection is gone */
	uint16_t id;
	uint16_t role;
	uint8_t keep_conn;
	uint32_t flags;
	_Atomic int aborted; /* FK_R_ABORTED, readable without the lock (unlocked write path) */
	fk_params *params;
	fk_buf body; /* STDIN received, not yet read */
	fk_buf data; /* DATA (Filter) received, not yet read */
	fk_buf pending; /* STDOUT bytes written by an application thread, not yet framed: only
	                   that thread touches it, so small writes take no lock */
	fcgi_req *next_ready;
	fcgi_req *prev_all, *next_all; /* app->all: every request, so fcgi_app_free misses none */
	fcgi_body_cb on_body;
	void *on_body_ud;
	void (*on_abort)(fcgi_req *, void *);
	void *on_abort_ud;
	void (*on_writable)(fcgi_req *, void *);
	void *on_writable_ud;
	void *user;
	int64_t start_ms;   /* report.c: when the request began, for the manager */
	uint64_t report_id;
};

struct fk_conn {
	int kind; /* FK_OBJ_CONN */
	int fd;
	fcgi_app *app;
	fk_srv srv;
	fk_buf in;              /* received, not yet fed to srv */
	fk_conn *prev, *next;   /* app->conns */
	fk_conn *next_dirty;    /* app->dirty: output to flush at the end of this pass */
	fk_conn *next_resume;   /* app->resume: input to process again */
	unsigned events;        /* registered FK_EV_* interest */
	uint32_t full_reqs;     /* requests whose body buffer is at its limit */
	uint32_t owned;         /* requests of this connection held by the application */
	int64_t last_in;        /* ms: last byte received */
	int64_t last_out;       /* ms: last progress writing, or when output became pending */
	uint8_t dead;           /* closed; memory freed by the next leader pass */
	uint8_t dirty, resume;
	uint8_t pending_body;
	uint8_t eof;            /* the peer shut its write side: answer what is complete, then
	                           close */
	uint8_t sending;        /* a thread is sending srv.out's bytes with the lock released */
	uint8_t flush_again;    /* more output arrived meanwhile: the sender goes on */
	uint8_t close_req;      /* close wanted; the loop thread does it once nobody sends */
	uint8_t lingering;      /* answered and shut for writing; input is read and dropped until
	                           the peer closes or linger_until, so the peer's last records
	                           are not met with a reset */
	int64_t linger_until;   /* an event-style consumer has buffered body to be given */
	uint8_t is_unix;
	uint8_t begun;          /* a request has begun on it: the peer knows it is in use */
	uint8_t in_bulk;        /* the last recv() filled its room: ask for READ_CHUNK next */
};

struct fcgi_app {
	/* Re-entrant on top of an adaptive (spin-then-sleep) mutex: callbacks run under the lock
	 * and may call the API again. glibc cannot make a mutex both recursive and adaptive. */
	pthread_mutex_t mu;
	_Atomic(pthread_t) mu_owner;
	unsigned mu_depth;
	pthread_cond_t cv_accept; /* threads in fcgi_accept */
	pthread_cond_t cv_io;     /* threads waiting for body bytes, output room, the stop */
	unsigned accept_waiters, io_waiters;
	size_t queued_new;        /* requests queued during the current pass */
	int leader_acceptor;      /* the leader will take a queued request itself */
	/* wake policy (wake.h): acceptor threads inside a handler, cores, how often sampled
	 * handlers blocked, the sampling counter, whether a guard waiter is asleep */
	unsigned busy, ncpu, blocking, sample_ctr;
	int guard;
	int want_guard;           /* a sleeper was woken to become the guard */
	unsigned cost_us;         /* average handler time */
	unsigned guard_ms;        /* the guard's next sleep */
	int64_t progress_ms;      /* ms: the last handler or loop pass that ended */
	unsigned cores;           /* free cores, estimated every FK_WAKE_CORES_MS */
	cpu_set_t cpus;           /* the cores this process may run on, at start */
	int have_cpus;
	int64_t cores_next;       /* ms: when to estimate again */
	int stat_fd;              /* /proc/stat, or -1 (-2: unavailable, cores = ncpu) */
	unsigned long long stat_busy, stat_total, self_us; /* the last readings */
	fk_ev ev;
	int wake_fd;        /* eventfd: cross-thread and signal wake-ups */
	int wake_kind;      /* FK_OBJ_WAKE: the epoll item for wake_fd points here */
	fk_listener **listeners;
	size_t nlisteners;
	fk_conn *conns;     /* live connections, most recently active last */
	fk_conn *conns_tail;
	size_t nconns;
	fk_conn *graveyard; /* dead connections to free */
	fk_conn *dirty;
	fk_conn *resume;
	fcgi_req *aborts;   /* owned requests whose connection died off the loop thread: their
	                       abort callbacks run in the next pass (linked by next_ready) */
	fcgi_req *ready_head, *ready_tail; /* for fcgi_accept */
	fcgi_req *all;
	size_t nready;
	size_t inflight;    /* requests admitted and not yet ended, app-wide */
	size_t owned;       /* requests held by the application */
	fcgi_handler handler;
	void *handler_ud;
	fk_timers timers;
	fk_net *allow;
	size_t nallow;
	/* loop leadership */
	int leader;
	int changed;        /* something io waiters may care about happened in this pass */
	int64_t next_sweep;
	/* stopping */
	_Atomic int stop_requested; /* lock-free: set from signal handlers */
	int stopping;
	int stopped;
	int64_t stop_deadline;
	/* options */
	long opt[FCGI_OPT_UNIX_MODE + 1];
	fk_srv_limits lim;
	struct fk_report *report; /* the page `fcgikit pm` reads, or NULL (report.c) */
	uint64_t report_seq;
};

/* app.c */
void fk_app_lock(fcgi_app *app);
void fk_app_unlock(fcgi_app *app);
int fk_app_wait(fcgi_app *app, int (*pred)(fcgi_app *, void *), void *arg, int64_t deadline);
int fk_app_on_loop_thread(const fcgi_app *app);
/* fcgi_finish, before it locks, at now_us (fk_now_us): whether the calling thread's sampled
 * handler of req blocked (1/0), or -1 when req was not sampled; in *us how long the handler
 * ran since fcgi_accept returned it, or -1 when another thread accepted it (wake.h). */
int fk_app_sample_end(const fcgi_req *req, int64_t now_us, long long *us);
void fk_app_wake(fcgi_app *app);
void fk_conn_mark_dirty(fk_conn *c);
int fk_conn_flush(fk_conn *c);
void fk_conn_close(fk_conn *c);
/* Closed, or about to be: nothing more is read or sent. */
static inline int fk_conn_gone(const fk_conn *c) { return c->dead || c->close_req; }
void fk_conn_update_interest(fk_conn *c);
void fk_conn_schedule_resume(fk_conn *c);
int fk_conn_paused(const fk_conn *c);
void fk_req_free(fcgi_req *r);
void fk_app_finished_request(fcgi_app *app, fcgi_req *r);

/* report.c: what `fcgikit pm` sees of this worker; each is a no-op outside a manager. */
struct fk_report;
void fk_report_attach(fcgi_app *app);
void fk_report_attach_fd(fcgi_app *app, int fd); /* takes fd */
void fk_report_detach(fcgi_app *app);
void fk_report_state(fcgi_app *app, int state); /* enum fk_report_state */
void fk_report_begin(fcgi_app *app, fcgi_req *r);
void fk_report_end(fcgi_app *app, fcgi_req *r);
void fk_report_conns(fcgi_app *app, int accepted);

/* listen.c */
int fk_listener_add(fcgi_app *app, int fd, int is_unix, const char *unlink_path);
void fk_listener_close(fcgi_app *app, fk_listener *l);

#endif
