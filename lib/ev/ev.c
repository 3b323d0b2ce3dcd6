/* ev.c — epoll/poll readiness and the timer heap (see ev.h). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "ev/ev.h"
#include "fcgikit.h"
#include "util/alloc.h"

int fk_ev_init(fk_ev *e)
{
	memset(e, 0, sizeof *e);
	const char *force_poll = getenv("FCGIKIT_POLL");
	e->epfd = (force_poll && *force_poll == '1') ? -1 : epoll_create1(EPOLL_CLOEXEC);
	return FCGI_OK;
}

void fk_ev_close(fk_ev *e)
{
	if (e->epfd >= 0)
		close(e->epfd);
	fk_free(e->pfds);
	fk_free(e->ptrs);
	fk_free(e->snap);
	fk_free(e->snap_ptrs);
	memset(e, 0, sizeof *e);
	e->epfd = -1;
}

static uint32_t to_epoll(unsigned ev)
{
	return (ev & FK_EV_IN ? EPOLLIN : 0) | (ev & FK_EV_OUT ? EPOLLOUT : 0);
}

static short to_poll(unsigned ev)
{
	return (short)((ev & FK_EV_IN ? POLLIN : 0) | (ev & FK_EV_OUT ? POLLOUT : 0));
}

int fk_ev_add(fk_ev *e, int fd, unsigned events, void *ptr)
{
	if (e->epfd >= 0) {
		struct epoll_event ee = {.events = to_epoll(events), .data.ptr = ptr};
		return epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ee) ? FCGI_ESYS : FCGI_OK;
	}
	for (unsigned i = 0; i < e->n; i++)
		if (e->pfds[i].fd == fd) {
			errno = EEXIST; /* as epoll_ctl(EPOLL_CTL_ADD) says */
			return FCGI_ESYS;
		}
	if (e->n == e->cap) {
		unsigned cap = e->cap ? e->cap * 2 : 16;
		struct pollfd *p = fk_realloc(e->pfds, cap * sizeof *p);
		if (!p)
			return FCGI_ENOMEM;
		e->pfds = p;
		void **q = fk_realloc(e->ptrs, cap * sizeof *q);
		if (!q)
			return FCGI_ENOMEM;
		e->ptrs = q;
		e->cap = cap;
	}
	e->pfds[e->n] = (struct pollfd){.fd = fd, .events = to_poll(events)};
	e->ptrs[e->n++] = ptr;
	return FCGI_OK;
}

int fk_ev_mod(fk_ev *e, int fd, unsigned events, void *ptr)
{
	if (e->epfd >= 0) {
		struct epoll_event ee = {.events = to_epoll(events), .data.ptr = ptr};
		return epoll_ctl(e->epfd, EPOLL_CTL_MOD, fd, &ee) ? FCGI_ESYS : FCGI_OK;
	}
	for (unsigned i = 0; i < e->n; i++)
		if (e->pfds[i].fd == fd) {
			e->pfds[i].events = to_poll(events);
			e->ptrs[i] = ptr;
			return FCGI_OK;
		}
	return FCGI_EINVAL;
}

int fk_ev_del(fk_ev *e, int fd)
{
	if (e->epfd >= 0)
		return epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL) ? FCGI_ESYS : FCGI_OK;
	for (unsigned i = 0; i < e->n; i++)
		if (e->pfds[i].fd == fd) {
			e->pfds[i] = e->pfds[e->n - 1];
			e->ptrs[i] = e->ptrs[e->n - 1];
			e->n--;
			return FCGI_OK;
		}
	return FCGI_EINVAL;
}

int fk_ev_prepare(fk_ev *e)
{
	if (e->epfd >= 0)
		return FCGI_OK;
	if (e->snap_cap < e->n) {
		struct pollfd *p = fk_realloc(e->snap, e->cap * sizeof *p);
		if (!p)
			return FCGI_ENOMEM;
		e->snap = p;
		void **q = fk_realloc(e->snap_ptrs, e->cap * sizeof *q);
		if (!q)
			return FCGI_ENOMEM;
		e->snap_ptrs = q;
		e->snap_cap = e->cap;
	}
	if (e->n) {
		memcpy(e->snap, e->pfds, e->n * sizeof *e->snap);
		memcpy(e->snap_ptrs, e->ptrs, e->n * sizeof *e->snap_ptrs);
	}
	e->snap_n = e->n;
	return FCGI_OK;
}

int fk_ev_wait(fk_ev *e, fk_ev_item *items, int max, int timeout_ms)
{
	if (e->epfd >= 0) {
		struct epoll_event evs[64];
		if (max > 64)
			max = 64;
		int n = epoll_wait(e->epfd, evs, max, timeout_ms);
		if (n < 0)
			return errno == EINTR ? 0 : FCGI_ESYS;
		for (int i = 0; i < n; i++) {
			uint32_t x = evs[i].events;
			items[i].ptr = evs[i].data.ptr;
			items[i].events = (x & EPOLLIN ? FK_EV_IN : 0) | (x & EPOLLOUT ? FK_EV_OUT : 0) |
			                  (x & (EPOLLERR | EPOLLHUP) ? FK_EV_ERR : 0);
		}
		return n;
	}
	int n = poll(e->snap, e->snap_n, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : FCGI_ESYS;
	int k = 0;
	for (unsigned i = 0; i < e->snap_n && k < max; i++) {
		short r = e->snap[i].revents;
		if (!r)
			continue;
		items[k].ptr = e->snap_ptrs[i];
		items[k].events = (r & POLLIN ? FK_EV_IN : 0) | (r & POLLOUT ? FK_EV_OUT : 0) |
		                  (r & (POLLERR | POLLHUP | POLLNVAL) ? FK_EV_ERR : 0);
		k++;
	}
	return k;
}

int64_t fk_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t fk_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------- timer heap */

static int tless(const fk_timer *a, const fk_timer *b)
{
	return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

int fk_timers_push(fk_timers *t, int64_t at, void (*cb)(void *), void *ud)
{
	if (t->n == t->cap) {
		unsigned cap = t->cap ? t->cap * 2 : 16;
		fk_timer *h = fk_realloc(t->h, cap * sizeof *h);
		if (!h)
			return FCGI_ENOMEM;
		t->h = h;
		t->cap = cap;
	}
	unsigned i = t->n++;
	fk_timer x = {at, t->seq++, cb, ud};
	while (i && tless(&x, &t->h[(i - 1) / 2])) {
		t->h[i] = t->h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	t->h[i] = x;
	return FCGI_OK;
}

int64_t fk_timers_next(const fk_timers *t) { return t->n ? t->h[0].at : -1; }

int fk_timers_pop_due(fk_timers *t, int64_t now, fk_timer *out)
{
	if (!t->n || t->h[0].at > now)
		return 0;
	*out = t->h[0];
	fk_timer x = t->h[--t->n];
	unsigned i = 0;
	for (;;) {
		unsigned l = 2 * i + 1, r = l + 1, m = i;
		const fk_timer *best = &x;
		if (l < t->n && tless(&t->h[l], best))
			m = l, best = &t->h[l];
		if (r < t->n && tless(&t->h[r], best))
			m = r;
		if (m == i)
			break;
		t->h[i] = t->h[m];
		i = m;
	}
	if (t->n)
		t->h[i] = x;
	return 1;
}

void fk_timers_free(fk_timers *t)
{
	fk_free(t->h);
	memset(t, 0, sizeof *t);
}
