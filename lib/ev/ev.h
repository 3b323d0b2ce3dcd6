/* ev.h — the one small event layer: readiness polling over epoll, with a poll(2) fallback
 * (chosen when epoll is unavailable or FCGIKIT_POLL=1 is set), a monotonic clock and a
 * timer heap. Level-triggered: a descriptor keeps reporting while it is ready. */
#ifndef FK_EV_H
#define FK_EV_H

#include <stdint.h>

enum { FK_EV_IN = 1, FK_EV_OUT = 2, FK_EV_ERR = 4 };

typedef struct fk_ev_item {
	void *ptr;
	unsigned events; /* FK_EV_* */
} fk_ev_item;


typedef struct fk_ev {
	int epfd; /* -1 with the poll backend */
	/* poll backend: fds and their pointers, compacted on removal */
	struct pollfd *pfds;
	void **ptrs;
	unsigned n, cap;
	/* what the waiting thread polls: a copy taken by fk_ev_prepare under the caller's lock,
	 * so other threads may add and remove descriptors while it waits */
	struct pollfd *snap;
	void **snap_ptrs;
	unsigned snap_n, snap_cap;
} fk_ev;

int fk_ev_init(fk_ev *e);
void fk_ev_close(fk_ev *e);
int fk_ev_add(fk_ev *e, int fd, unsigned events, void *ptr);
int fk_ev_mod(fk_ev *e, int fd, unsigned events, void *ptr);
int fk_ev_del(fk_ev *e, int fd);
/* Takes the poll backend's snapshot (no-op for epoll); call before fk_ev_wait while holding
 * the lock that guards add/mod/del. */
int fk_ev_prepare(fk_ev *e);
/* Waits up to timeout_ms (-1 forever); returns the number of items (>= 0) or FCGI_ESYS.
 * EINTR is reported as 0 items. */
int fk_ev_wait(fk_ev *e, fk_ev_item *items, int max, int timeout_ms);
/* The descriptor that polls readable when something is ready (epoll), or -1. */
static inline int fk_ev_fd(const fk_ev *e) { return e->epfd; }

int64_t fk_now_ms(void);
int64_t fk_now_us(void);

/* Timer heap: earliest deadline first. Pure data structure, no clock reads. */
typedef struct fk_timer {
	int64_t at;
	uint64_t seq; /* ties fire in insertion order */
	void (*cb)(void *ud);
	void *ud;
} fk_timer;

typedef struct fk_timers {
	fk_timer *h;
	unsigned n, cap;
	uint64_t seq;
} fk_timers;

int fk_timers_push(fk_timers *t, int64_t at, void (*cb)(void *), void *ud);
/* The earliest deadline, or -1 when empty. */
int64_t fk_timers_next(const fk_timers *t);
/* Pops the earliest timer if it is due at now; returns 1 with *out, else 0. */
int fk_timers_pop_due(fk_timers *t, int64_t now, fk_timer *out);
void fk_timers_free(fk_timers *t);

#endif
