/*
 * client_int.h — the client runtime's internal types, shared by client.c (the client, its
 * loop, dispatch, pool, timeouts, GET_VALUES), conn.c (one connection: connect, read,
 * write, the response events) and req.c (the request API, body sources, fcgi_client_call).
 *
 * Model. One thread drives a client. Everything happens inside a loop pass
 * (fk_cl_process): queued requests are dispatched onto connections, bytes are written and
 * read, the fk_cli session of each connection turns bytes into events, timeouts are swept.
 * Output callbacks run as STDOUT/STDERR arrive; completion callbacks are collected on a
 * list and run at one safe point at the end of the pass, so no callback can close a
 * connection or free a request under the code that is walking it.
 *
 * Request states:
 *
 *   NEW --send--> QUEUED --dispatch--> ACTIVE --END_REQUEST / failure--> DONE
 *                    ^                    |
 *                    +---- retry ---------+  (CANT_MPX_CONN; or a reused connection that
 *                                             died before any answer byte, once)
 *
 * An ACTIVE request owns slot id-1 of its connection. A request may finish before its
 * END_REQUEST (a deadline, an abort on a multiplexed connection): its slot is emptied but
 * the id stays in flight in the session until the END_REQUEST comes, so it is not reused.
 *
 * Connection states: CONNECTING -> READY -> DEAD. A DEAD connection's fd is closed at once;
 * its memory is freed at the end of the pass (an event already returned by the poller may
 * still point at it).
 */
#ifndef FK_CLIENT_INT_H
#define FK_CLIENT_INT_H

#include <stdint.h>

#include "codec/client.h"
#include "ev/ev.h"
#include "fcgikit.h"
#include "util/addr.h"
#include "util/buf.h"

typedef struct fk_cconn fk_cconn;
typedef struct fk_values fk_values;

/* What a poller item points at: the first member of each object. */
enum { FK_CO_CONN = 1, FK_CO_SRC = 2 };

enum { FK_CR_NEW = 0, FK_CR_QUEUED, FK_CR_ACTIVE, FK_CR_DONE };
const char *fk_cr_state_name(unsigned s);

/* Sending progress of an active request. */
enum { FK_SP_HEAD = 0, FK_SP_STDIN, FK_SP_DATA, FK_SP_SENT };

/* Request flags */
enum {
	FK_RF_ABORTED = 1 << 0,     /* ABORT_REQUEST sent (or the request failed on its own);
	                               output is dropped */
	FK_RF_ORPHAN = 1 << 1,      /* the caller freed it: free when done, no callback */
	FK_RF_GOT_BYTES = 1 << 2,   /* some response record arrived for it */
	FK_RF_RETRIED = 1 << 3,     /* sent a second time already */
	FK_RF_MPX = 1 << 4,         /* shared its connection when sent */
	FK_RF_OWNS_CLIENT = 1 << 5, /* made by fcgi_client_call: freeing it frees the client */
	FK_RF_IN_SENDERS = 1 << 6,  /* on its connection's senders list */
	FK_RF_CB_PENDING = 1 << 7,  /* on the client's done list, callback not yet run */
	FK_RF_WAITED = 1 << 8,      /* fcgi_client_wait is waiting for it */
	FK_RF_FREE_AFTER_WAIT = 1 << 9, /* freed inside a callback while waited for */
	FK_RF_STDOUT_END = 1 << 10,
	FK_RF_STDERR_END = 1 << 11,
	FK_RF_PAUSED = 1 << 12,     /* fcgi_client_req_pause: counted in conn->npaused while it
	                               holds a slot and is not aborted */
};

/* A body source (STDIN or DATA). */
enum { FK_SRC_NONE = 0, FK_SRC_BUF, FK_SRC_FD, FK_SRC_CB };

typedef struct fk_src {
	int kind;               /* FK_CO_SRC */
	fcgi_client_req *req;
	uint8_t type;           /* FK_SRC_* */
	uint8_t stream;         /* FK_STDIN or FK_DATA */
	uint8_t registered;     /* fd is in the poller, waiting to become readable */
	uint8_t pollable;       /* 1 pollable fd, 0 regular file (read directly), -1 unknown */
	uint8_t ready;          /* data may be read now (fd readable, callback resumed) */
	uint8_t eof;            /* all content taken; the end record is still to be written */
	const uint8_t *p;       /* FK_SRC_BUF */
	size_t len, off;
	int fd;                 /* FK_SRC_FD */
	fcgi_client_read_cb cb; /* FK_SRC_CB */
	void *ud;
	uint64_t taken;         /* bytes taken from the source (a retry needs 0 unless BUF) */
} fk_src;

struct fcgi_client_req {
	fcgi_client *c;
	fk_cconn *conn;               /* while ACTIVE */
	fcgi_client_req *prev, *next; /* on c->queue, conn->senders or c->done (one at a time) */
	fcgi_client_req *all_prev, *all_next; /* c->all: every request not yet freed */
	uint8_t state;                /* FK_CR_* */
	uint8_t phase;                /* FK_SP_* */
	uint16_t id;
	uint16_t role;
	uint32_t flags;               /* FK_RF_* */
	fk_buf params;                /* the pairs, encoded, not yet framed */
	fk_src src[2];                /* [0] STDIN, [1] DATA */
	fcgi_client_output_cb on_output;
	void *output_ud;
	fcgi_client_done_cb on_done;
	void *done_ud;
	fk_buf out, err;              /* collected STDOUT / STDERR without an output callback */
	int error;                    /* FCGI_OK or the outcome once DONE */
	int abort_error;              /* the outcome to report after our ABORT_REQUEST */
	int sys_errno;
	uint32_t app_status;
	int protocol_status;          /* -1 until END_REQUEST */
	unsigned timeout_ms;
	int64_t deadline;             /* 0: none */
	void *user;
	char msg[200];
};

/* Connection flags */
enum {
	FK_CF_REUSED = 1 << 0,    /* it has been idle before: a failure may be the peer closing
	                             an idle keep-alive connection, and is worth one retry */
	FK_CF_CLOSING = 1 << 1,   /* takes no new request (no KEEP_CONN, or it failed) */
	FK_CF_DIRTY = 1 << 2,     /* on c->dirty: output to flush at the end of the pass */
	FK_CF_ANY_BYTE = 1 << 3,  /* the peer has sent at least one byte */
	FK_CF_NOHOLD = 1 << 4,    /* the peer hung up: read what is left whatever the pauses
	                             (epoll reports a hang-up even without read interest) */
};

enum { FK_CC_CONNECTING = 0, FK_CC_READY, FK_CC_DEAD };
const char *fk_cc_state_name(unsigned s);

struct fk_cconn {
	int kind; /* FK_CO_CONN */
	int fd;
	fcgi_client *c;
	fk_cconn *prev, *next;  /* c->conns */
	fk_cconn *next_dirty, *next_dead;
	uint8_t state;          /* FK_CC_* */
	uint8_t flags;          /* FK_CF_* */
	unsigned events;        /* registered FK_EV_* interest */
	fk_cli cli;             /* the response session */
	fk_buf out;             /* bytes to send */
	fcgi_client_req **slots; /* slots[id - 1]: the request using that id, or NULL */
	uint32_t nslots;
	uint32_t nactive;       /* non-NULL slots */
	uint32_t npaused;       /* slots whose request is paused (FK_RF_PAUSED) */
	fk_buf held;            /* bytes read but not fed: the connection went on hold (its only
	                           request paused) in the middle of a read */
	fcgi_client_req *senders, *senders_tail; /* requests with input left to send */
	fk_values *values;      /* a GET_VALUES waiting for its answer on this connection */
	int64_t t_open;         /* connect started */
	int64_t last_io;        /* last byte received or sent */
	int64_t stalled_since;  /* output pending and the socket full, or 0 */
	int64_t idle_since;     /* no request in flight since, or 0 */
	uint8_t first[40];      /* the first bytes the peer sent, for error messages */
	uint8_t nfirst;
};

/* A GET_VALUES in progress (fcgi_client_get_values, or the client's own probe). */
struct fk_values {
	fk_values *next;
	fk_cconn *conn;
	fk_buf rec;                  /* the GET_VALUES record */
	fcgi_client_values_cb cb;
	void *ud;
	uint8_t probe;               /* the client's own question about multiplexing */
	uint8_t done;
	uint8_t connected;           /* its connection got as far as connected */
	int err;
	fk_params *result;
	char msg[200];
};

typedef struct fk_rlist {
	fcgi_client_req *head, *tail;
} fk_rlist;

enum { FK_CL_NOPTS = FCGI_CLIENT_MAX_BUFFERED + 1 };

struct fcgi_client {
	fk_ev ev;
	fk_addr addr;
	char *address;
	long opt[FK_CL_NOPTS];
	fk_cconn *conns, *conns_tail;
	size_t nconns;
	fk_cconn *dirty;
	fk_cconn *dead;
	fk_rlist queue;              /* sent, waiting for a connection */
	fk_rlist done;               /* finished, callback not yet run */
	fcgi_client_req *all;        /* every request not yet freed */
	fk_values *values;           /* GET_VALUES in progress or answered, not yet reported */
	size_t active;               /* requests QUEUED or ACTIVE */
	int mpxs;                    /* the backend multiplexes: 1, 0, -1 unknown */
	uint32_t max_per_conn;       /* learned from FCGI_MAX_REQS (0: not said) */
	uint32_t max_conns;          /* learned from FCGI_MAX_CONNS (0: not said) */
	uint8_t probing;             /* the probe is out */
	uint8_t in_pass;
	uint8_t kick;                /* work was queued outside a pass: run one soon */
	size_t nheld;                /* connections with bytes in `held` */
	uint8_t *rbuf;               /* one read buffer for every connection */
	int64_t now;                 /* clock at the start of the current step */
	char last_error[200];        /* the latest connection failure, for messages */
	uint64_t conns_opened;       /* connections opened so far (tests, statistics) */
};

enum { FK_CL_RBUF = 65536, FK_CL_HIGH_WATER = 256 * 1024 };

/* client.c */
void fk_rl_push(fk_rlist *l, fcgi_client_req *r);
void fk_rl_push_front(fk_rlist *l, fcgi_client_req *r);
void fk_rl_remove(fk_rlist *l, fcgi_client_req *r);
void fk_cl_complete(fcgi_client_req *r, int err, int sys_errno, const char *msg);
void fk_cl_requeue(fcgi_client_req *r);
int fk_cl_retryable(const fcgi_client_req *r);
void fk_cl_idle_check(fk_cconn *k);
void fk_cl_values_answer(fk_cconn *k, int err, const uint8_t *pairs, size_t len,
                         const char *msg);
uint32_t fk_cl_slots_wanted(const fcgi_client *c);
int fk_cl_process(fcgi_client *c, int timeout_ms);

/* conn.c (names fk_cc_: lib/app owns fk_conn_) */
fk_cconn *fk_cc_open(fcgi_client *c, int *err, int *sys_errno, char *msg, size_t msize);
void fk_cc_fail(fk_cconn *k, int err, int sys_errno, const char *msg);
void fk_cc_close_quiet(fk_cconn *k);
void fk_cc_on_event(fk_cconn *k, unsigned events);
void fk_cc_mark_dirty(fk_cconn *k);
void fk_cc_flush(fk_cconn *k);
int fk_cc_assign(fk_cconn *k, fcgi_client_req *r);
void fk_cc_pump(fk_cconn *k);
void fk_cc_release_slot(fk_cconn *k, fcgi_client_req *r);
int fk_cc_send_abort(fk_cconn *k, fcgi_client_req *r);
void fk_cc_free(fk_cconn *k);
int fk_cc_idle(const fk_cconn *k);
/* Flow control. A connection is on hold while its only request in flight is paused: no read
 * interest, no read or write timeout, and what a read brought after the pause waits in
 * `held`. fk_cc_pause_changed re-evaluates after a pause or resume; fk_cc_drain feeds held
 * bytes once the hold is over (inside a pass: it runs callbacks). */
int fk_cc_holds(const fk_cconn *k);
void fk_cc_pause_changed(fk_cconn *k);
void fk_cc_drain(fk_cconn *k);

/* req.c */
void fk_cs_on_event(fk_src *s, unsigned events);
void fk_cs_unregister(fk_src *s);
/* Moves up to one chunk from the source into out as records of its stream: 1 progress,
 * 0 nothing ready now, < 0 an error (*sys_errno for FCGI_ESYS). */
int fk_cs_take(fk_src *s, fk_buf *out, unsigned id, int *sys_errno);
int fk_cs_rewindable(const fk_src *s);
void fk_cs_rewind(fk_src *s);
void fk_cr_destroy(fcgi_client_req *r);

#endif
