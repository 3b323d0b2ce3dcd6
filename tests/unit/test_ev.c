/*
 * test_ev.c — the event layer (lib/ev): the timer heap (a pure data structure: ordering,
 * ties in insertion order, pop_due boundaries, random workloads against a sorted model),
 * and readiness through fk_ev_add/mod/del/wait on pipes, run once with the epoll backend
 * and once with the poll(2) fallback (FCGIKIT_POLL=1 before fk_ev_init). Every wait has a
 * timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ev/ev.h"
#include "fcgikit.h"

/* ---------------------------------------------------------------- timer heap */

static int g_fired[64];
static int g_nfired;

static void record_cb(void *ud)
{
	if (g_nfired < 64)
		g_fired[g_nfired++] = (int)(intptr_t)ud;
}

static void other_cb(void *ud) { (void)ud; }

static void test_timers_empty(void **state)
{
	(void)state;
	fk_timers t = {0};
	fk_timer x;
	assert_int_equal(fk_timers_next(&t), -1);
	assert_int_equal(fk_timers_pop_due(&t, 0, &x), 0);
	assert_int_equal(fk_timers_pop_due(&t, INT64_MAX, &x), 0);
	fk_timers_free(&t); /* freeing an empty heap is fine */
	fk_timers_free(&t); /* and idempotent */
	assert_int_equal(fk_timers_next(&t), -1);
}

static void test_timers_order(void **state)
{
	(void)state;
	fk_timers t = {0};
	fk_timer x;
	const int64_t at[] = {500, 100, 300, 200, 400, 0, 250};
	for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
		assert_int_equal(fk_timers_push(&t, at[i], record_cb, (void *)(intptr_t)at[i]), FCGI_OK);
	assert_int_equal(fk_timers_next(&t), 0);
	const int64_t want[] = {0, 100, 200, 250, 300, 400, 500};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		assert_int_equal(fk_timers_next(&t), want[i]);
		assert_int_equal(fk_timers_pop_due(&t, 1000, &x), 1);
		assert_int_equal(x.at, want[i]);
		assert_ptr_equal(x.cb, record_cb);
		assert_int_equal((intptr_t)x.ud, want[i]);
	}
	assert_int_equal(fk_timers_next(&t), -1);
	fk_timers_free(&t);
}

static void test_timers_ties_in_insertion_order(void **state)
{
	(void)state;
	fk_timers t = {0};
	fk_timer x;
	/* ten at the same deadline, pushed around others; then more at it later */
	for (intptr_t i = 0; i < 10; i++) {
		assert_int_equal(fk_timers_push(&t, 50, record_cb, (void *)i), FCGI_OK);
		assert_int_equal(fk_timers_push(&t, 60 + i, other_cb, NULL), FCGI_OK);
	}
	assert_int_equal(fk_timers_push(&t, 10, record_cb, (void *)100), FCGI_OK);
	assert_int_equal(fk_timers_pop_due(&t, 10, &x), 1);
	assert_int_equal((intptr_t)x.ud, 100);
	for (intptr_t i = 10; i < 15; i++)
		assert_int_equal(fk_timers_push(&t, 50, record_cb, (void *)i), FCGI_OK);
	for (intptr_t i = 0; i < 15; i++) {
		assert_int_equal(fk_timers_pop_due(&t, 50, &x), 1);
		assert_int_equal(x.at, 50);
		assert_int_equal((intptr_t)x.ud, i);
	}
	/* the deadline-50 timers are gone: the rest are not due at 50 */
	assert_int_equal(fk_timers_pop_due(&t, 50, &x), 0);
	assert_int_equal(fk_timers_next(&t), 60);
	/* ties keep insertion order even when popped interleaved with pushes */
	fk_timers_free(&t);
	for (intptr_t i = 0; i < 8; i++)
		assert_int_equal(fk_timers_push(&t, 7, record_cb, (void *)i), FCGI_OK);
	for (intptr_t i = 0; i < 4; i++) {
		assert_int_equal(fk_timers_pop_due(&t, 7, &x), 1);
		assert_int_equal((intptr_t)x.ud, i);
		assert_int_equal(fk_timers_push(&t, 7, record_cb, (void *)(100 + i)), FCGI_OK);
	}
	const intptr_t rest[] = {4, 5, 6, 7, 100, 101, 102, 103};
	for (size_t i = 0; i < 8; i++) {
		assert_int_equal(fk_timers_pop_due(&t, 7, &x), 1);
		assert_int_equal((intptr_t)x.ud, rest[i]);
	}
	fk_timers_free(&t);
}

static void test_timers_pop_due_boundaries(void **state)
{
	(void)state;
	fk_timers t = {0};
	fk_timer x;
	assert_int_equal(fk_timers_push(&t, 1000, record_cb, (void *)1), FCGI_OK);
	/* not due a millisecond before, due exactly at, and after */
	assert_int_equal(fk_timers_pop_due(&t, 999, &x), 0);
	assert_int_equal(fk_timers_next(&t), 1000);
	assert_int_equal(fk_timers_pop_due(&t, 1000, &x), 1);
	assert_int_equal(fk_timers_pop_due(&t, 1000, &x), 0);
	assert_int_equal(fk_timers_push(&t, 1000, record_cb, (void *)2), FCGI_OK);
	assert_int_equal(fk_timers_pop_due(&t, 5000, &x), 1);
	/* deadlines in the past (a timer of 0 ms pushed late) are due at once */
	assert_int_equal(fk_timers_push(&t, -5, record_cb, (void *)3), FCGI_OK);
	assert_int_equal(fk_timers_pop_due(&t, 0, &x), 1);
	assert_int_equal((intptr_t)x.ud, 3);
	/* large deadlines do not wrap */
	assert_int_equal(fk_timers_push(&t, INT64_MAX, record_cb, (void *)4), FCGI_OK);
	assert_int_equal(fk_timers_push(&t, INT64_MAX - 1, record_cb, (void *)5), FCGI_OK);
	assert_int_equal(fk_timers_pop_due(&t, INT64_MAX - 2, &x), 0);
	assert_int_equal(fk_timers_pop_due(&t, INT64_MAX, &x), 1);
	assert_int_equal((intptr_t)x.ud, 5);
	assert_int_equal(fk_timers_pop_due(&t, INT64_MAX, &x), 1);
	assert_int_equal((intptr_t)x.ud, 4);
	/* only what is due comes out, in a batch as the loop runs them */
	for (intptr_t i = 0; i < 6; i++)
		assert_int_equal(fk_timers_push(&t, 10 * i, record_cb, (void *)i), FCGI_OK);
	g_nfired = 0;
	while (fk_timers_pop_due(&t, 25, &x))
		x.cb(x.ud);
	assert_int_equal(g_nfired, 3);
	assert_int_equal(g_fired[0], 0);
	assert_int_equal(g_fired[1], 1);
	assert_int_equal(g_fired[2], 2);
	assert_int_equal(fk_timers_next(&t), 30);
	fk_timers_free(&t);
}

/* A tiny linear congruential generator: the same sequence everywhere. */
static uint32_t g_rng = 12345;
static uint32_t rnd(void)
{
	g_rng = g_rng * 1103515245u + 12345u;
	return g_rng >> 8;
}

static void test_timers_random_against_model(void **state)
{
	(void)state;
	enum { N = 20000 };
	fk_timers t = {0};
	fk_timer x;
	/* the model: (at, seq) of every timer pushed; popped ones are marked */
	int64_t *at = malloc(N * sizeof *at);
	char *gone = calloc(N, 1);
	assert_non_null(at);
	assert_non_null(gone);
	size_t pushed = 0, popped = 0;
	int64_t now = 0;
	while (popped < N) {
		/* push a few, with many duplicate deadlines, some already due */
		for (int k = (int)(rnd() % 4); k > 0 && pushed < N; k--) {
			at[pushed] = now - 50 + (int64_t)(rnd() % 400);
			assert_int_equal(fk_timers_push(&t, at[pushed], record_cb, (void *)(intptr_t)pushed),
			                 FCGI_OK);
			pushed++;
		}
		now += (int64_t)(rnd() % 30);
		if (pushed == N)
			now += 1000;
		/* pop everything due: each must be the model's earliest, ties by push order */
		while (fk_timers_pop_due(&t, now, &x)) {
			size_t id = (size_t)(intptr_t)x.ud;
			assert_true(id < pushed);
			assert_false(gone[id]);
			assert_int_equal(x.at, at[id]);
			assert_true(x.at <= now);
			for (size_t j = 0; j < pushed; j += 1 + (j > 64 ? rnd() % 16 : 0))
				if (!gone[j] && j != id)
					assert_true(at[j] > at[id] || (at[j] == at[id] && j > id));
			gone[id] = 1;
			popped++;
		}
		/* what stays is not due */
		int64_t next = fk_timers_next(&t);
		assert_true(next == -1 || next > now);
	}
	assert_int_equal(fk_timers_next(&t), -1);
	free(at);
	free(gone);
	fk_timers_free(&t);
}

static void test_timers_many_sorted(void **state)
{
	(void)state;
	enum { N = 100000 };
	fk_timers t = {0};
	fk_timer x;
	for (int i = 0; i < N; i++)
		assert_int_equal(fk_timers_push(&t, (int64_t)(rnd() % 1000), record_cb,
		                                (void *)(intptr_t)i),
		                 FCGI_OK);
	int64_t last_at = -1;
	intptr_t last_id = -1;
	int n = 0;
	while (fk_timers_pop_due(&t, 1000, &x)) {
		assert_true(x.at >= last_at);
		if (x.at == last_at)
			assert_true((intptr_t)x.ud > last_id); /* ties in insertion order */
		last_at = x.at;
		last_id = (intptr_t)x.ud;
		n++;
	}
	assert_int_equal(n, N);
	fk_timers_free(&t);
	/* usable again after free */
	assert_int_equal(fk_timers_push(&t, 1, record_cb, NULL), FCGI_OK);
	assert_int_equal(fk_timers_next(&t), 1);
	fk_timers_free(&t);
}

/* ---------------------------------------------------------------- readiness */

enum { WAIT_MS = 1000 };

static void ev_open(fk_ev *e, int use_poll)
{
	if (use_poll)
		setenv("FCGIKIT_POLL", "1", 1);
	else
		unsetenv("FCGIKIT_POLL");
	assert_int_equal(fk_ev_init(e), FCGI_OK);
	unsetenv("FCGIKIT_POLL");
	if (use_poll)
		assert_true(fk_ev_fd(e) < 0);
	else
		assert_true(fk_ev_fd(e) >= 0);
}

static void make_pipe(int p[2])
{
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
}

/* One wait; returns the items in out (sorted by nothing: callers search). */
static int ev_wait(fk_ev *e, fk_ev_item *out, int max, int timeout_ms)
{
	assert_int_equal(fk_ev_prepare(e), FCGI_OK);
	int n = fk_ev_wait(e, out, max, timeout_ms);
	assert_true(n >= 0);
	assert_true(n <= max);
	return n;
}

/* The events reported for ptr in items, or -1 when it is not there (and never twice). */
static int events_for(const fk_ev_item *items, int n, const void *ptr)
{
	int ev = -1;
	for (int i = 0; i < n; i++)
		if (items[i].ptr == ptr) {
			assert_int_equal(ev, -1);
			ev = (int)items[i].events;
		}
	return ev;
}

static void drain(int fd)
{
	char buf[256];
	while (read(fd, buf, sizeof buf) > 0)
		;
}

static void readiness_basic(int use_poll)
{
	fk_ev e;
	ev_open(&e, use_poll);
	int p1[2], p2[2];
	make_pipe(p1);
	make_pipe(p2);
	int tag1 = 1, tag2 = 2, tag3 = 3;
	fk_ev_item items[8];
	assert_int_equal(fk_ev_add(&e, p1[0], FK_EV_IN, &tag1), FCGI_OK);
	assert_int_equal(fk_ev_add(&e, p2[1], FK_EV_OUT, &tag2), FCGI_OK);
	/* only the pipe's write end is ready */
	int n = ev_wait(&e, items, 8, WAIT_MS);
	assert_int_equal(n, 1);
	assert_ptr_equal(items[0].ptr, &tag2);
	assert_int_equal(items[0].events, FK_EV_OUT);
	/* interest off: nothing; a byte in p1: readable */
	assert_int_equal(fk_ev_mod(&e, p2[1], 0, &tag2), FCGI_OK);
	assert_int_equal(write(p1[1], "x", 1), 1);
	n = ev_wait(&e, items, 8, WAIT_MS);
	assert_int_equal(n, 1);
	assert_ptr_equal(items[0].ptr, &tag1);
	assert_int_equal(items[0].events, FK_EV_IN);
	/* level-triggered: still readable while the byte is there */
	n = ev_wait(&e, items, 8, 0);
	assert_int_equal(events_for(items, n, &tag1), FK_EV_IN);
	drain(p1[0]);
	assert_int_equal(ev_wait(&e, items, 8, 0), 0);
	/* mod changes the pointer reported and the interest */
	assert_int_equal(fk_ev_mod(&e, p2[1], FK_EV_OUT | FK_EV_IN, &tag3), FCGI_OK);
	n = ev_wait(&e, items, 8, WAIT_MS);
	assert_int_equal(n, 1);
	assert_ptr_equal(items[0].ptr, &tag3);
	assert_int_equal(items[0].events, FK_EV_OUT);
	/* two ready at once */
	assert_int_equal(write(p1[1], "y", 1), 1);
	n = ev_wait(&e, items, 8, WAIT_MS);
	assert_int_equal(n, 2);
	assert_int_equal(events_for(items, n, &tag1), FK_EV_IN);
	assert_int_equal(events_for(items, n, &tag3), FK_EV_OUT);
	/* max bounds what one wait returns */
	n = ev_wait(&e, items, 1, WAIT_MS);
	assert_int_equal(n, 1);
	/* del: no longer reported, though still readable */
	assert_int_equal(fk_ev_del(&e, p1[0]), FCGI_OK);
	assert_int_equal(fk_ev_del(&e, p2[1]), FCGI_OK);
	int64_t t0 = fk_now_ms();
	assert_int_equal(ev_wait(&e, items, 8, 60), 0); /* nothing: times out */
	int64_t took = fk_now_ms() - t0;
	assert_true(took >= 50);
	assert_true(took < 1000);
	/* removing or changing what is not there fails */
	assert_true(fk_ev_del(&e, p1[0]) < 0);
	assert_true(fk_ev_mod(&e, p1[0], FK_EV_IN, &tag1) < 0);
	/* and it can be added again */
	assert_int_equal(fk_ev_add(&e, p1[0], FK_EV_IN, &tag2), FCGI_OK);
	n = ev_wait(&e, items, 8, WAIT_MS);
	assert_int_equal(n, 1);
	assert_ptr_equal(items[0].ptr, &tag2);
	fk_ev_close(&e);
	close(p1[0]);
	close(p1[1]);
	close(p2[0]);
	close(p2[1]);
}

static void test_epoll_basic(void **state)
{
	(void)state;
	readiness_basic(0);
}

static void test_poll_basic(void **state)
{
	(void)state;
	readiness_basic(1);
}

/* The peer closing: a read end reports input (EOF to read) and/or an error/hang-up. */
static void readiness_hangup(int use_poll)
{
	fk_ev e;
	ev_open(&e, use_poll);
	int p[2], q[2];
	make_pipe(p);
	make_pipe(q);
	int rd = 1, wr = 2;
	fk_ev_item items[4];
	assert_int_equal(fk_ev_add(&e, p[0], FK_EV_IN, &rd), FCGI_OK);
	close(p[1]);
	int n = ev_wait(&e, items, 4, WAIT_MS);
	assert_int_equal(n, 1);
	assert_ptr_equal(items[0].ptr, &rd);
	assert_true(items[0].events & (FK_EV_IN | FK_EV_ERR));
	/* a hang-up is reported even with no interest at all, so a paused connection still
	 * learns that its peer is gone */
	assert_int_equal(fk_ev_mod(&e, p[0], 0, &rd), FCGI_OK);
	n = ev_wait(&e, items, 4, WAIT_MS);
	assert_int_equal(n, 1);
	assert_true(items[0].events & FK_EV_ERR);
	/* a write end whose reader is gone: an error */
	assert_int_equal(fk_ev_add(&e, q[1], FK_EV_OUT, &wr), FCGI_OK);
	close(q[0]);
	n = ev_wait(&e, items, 4, WAIT_MS);
	assert_true(events_for(items, n, &wr) & FK_EV_ERR);
	fk_ev_close(&e);
	close(p[0]);
	close(q[1]);
}

static void test_epoll_hangup(void **state)
{
	(void)state;
	readiness_hangup(0);
}

static void test_poll_hangup(void **state)
{
	(void)state;
	readiness_hangup(1);
}

/* Many descriptors (past the poll backend's first allocation), removals from the middle. */
static void readiness_many(int use_poll)
{
	enum { N = 40 };
	fk_ev e;
	ev_open(&e, use_poll);
	int p[N][2], tags[N];
	fk_ev_item items[64];
	for (int i = 0; i < N; i++) {
		make_pipe(p[i]);
		tags[i] = i;
		assert_int_equal(fk_ev_add(&e, p[i][0], FK_EV_IN, &tags[i]), FCGI_OK);
	}
	for (int i = 0; i < N; i += 3)
		assert_int_equal(write(p[i][1], "z", 1), 1);
	int n = ev_wait(&e, items, 64, WAIT_MS);
	assert_int_equal(n, (N + 2) / 3);
	for (int i = 0; i < N; i++)
		assert_int_equal(events_for(items, n, &tags[i]), i % 3 == 0 ? FK_EV_IN : -1);
	/* remove every even one: the odd ones keep their own pointers */
	for (int i = 0; i < N; i += 2)
		assert_int_equal(fk_ev_del(&e, p[i][0]), FCGI_OK);
	for (int i = 0; i < N; i++)
		if (i % 3)
			assert_int_equal(write(p[i][1], "z", 1), 1);
	n = ev_wait(&e, items, 64, WAIT_MS);
	for (int i = 0; i < N; i++)
		assert_int_equal(events_for(items, n, &tags[i]), i % 2 ? FK_EV_IN : -1);
	assert_int_equal(n, N / 2);
	/* a small max: only that many, but each of them real */
	n = ev_wait(&e, items, 5, WAIT_MS);
	assert_int_equal(n, 5);
	for (int i = 0; i < n; i++) {
		int idx = *(int *)items[i].ptr;
		assert_true(idx % 2 == 1);
		assert_int_equal(items[i].events, FK_EV_IN);
	}
	fk_ev_close(&e);
	for (int i = 0; i < N; i++) {
		close(p[i][0]);
		close(p[i][1]);
	}
}

static void test_epoll_many(void **state)
{
	(void)state;
	readiness_many(0);
}

static void test_poll_many(void **state)
{
	(void)state;
	readiness_many(1);
}

/* Adding a descriptor that is already there fails on both backends alike (epoll says
 * EEXIST); otherwise a later del leaves a stale entry that keeps reporting. */
static void readiness_double_add(int use_poll)
{
	fk_ev e;
	ev_open(&e, use_poll);
	int p[2];
	make_pipe(p);
	int a = 1, b = 2;
	fk_ev_item items[4];
	assert_int_equal(fk_ev_add(&e, p[0], FK_EV_IN, &a), FCGI_OK);
	int again = fk_ev_add(&e, p[0], FK_EV_IN, &b);
	int del = fk_ev_del(&e, p[0]);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(fk_ev_prepare(&e), FCGI_OK);
	int n = fk_ev_wait(&e, items, 4, 0);
	fk_ev_close(&e); /* before asserting: a failure leaks nothing */
	close(p[0]);
	close(p[1]);
	assert_true(again < 0);
	assert_int_equal(del, FCGI_OK);
	assert_int_equal(n, 0);
}

static void test_epoll_double_add(void **state)
{
	(void)state;
	readiness_double_add(0);
}

static void test_poll_double_add(void **state)
{
	(void)state;
	readiness_double_add(1);
}

/* A signal during the wait: 0 items, early, not an error. */
static void on_alarm(int sig) { (void)sig; }

static void readiness_eintr(int use_poll)
{
	fk_ev e;
	ev_open(&e, use_poll);
	int p[2];
	make_pipe(p);
	int a = 1;
	assert_int_equal(fk_ev_add(&e, p[0], FK_EV_IN, &a), FCGI_OK);
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm; /* no SA_RESTART */
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	/* ITIMER_REAL is also alarm()'s timer: the watchdog's remaining time is put back */
	struct itimerval it = {.it_value = {0, 30000}}, saved;
	assert_int_equal(setitimer(ITIMER_REAL, &it, &saved), 0);
	fk_ev_item items[4];
	int64_t t0 = fk_now_ms();
	assert_int_equal(fk_ev_prepare(&e), FCGI_OK);
	int n = fk_ev_wait(&e, items, 4, 3000);
	int64_t took = fk_now_ms() - t0;
	struct itimerval none = {{0, 0}, {0, 0}};
	setitimer(ITIMER_REAL, &none, NULL);
	sigaction(SIGALRM, &old, NULL);
	if (saved.it_value.tv_sec || saved.it_value.tv_usec)
		setitimer(ITIMER_REAL, &saved, NULL);
	assert_int_equal(n, 0);
	assert_true(took < 2000);
	fk_ev_close(&e);
	close(p[0]);
	close(p[1]);
}

static void test_epoll_eintr(void **state)
{
	(void)state;
	readiness_eintr(0);
}

static void test_poll_eintr(void **state)
{
	(void)state;
	readiness_eintr(1);
}

/* epoll's descriptor polls readable when an item is ready (what fcgi_app_fd embeds). */
static void test_epoll_fd_readable(void **state)
{
	(void)state;
	fk_ev e;
	ev_open(&e, 0);
	int p[2];
	make_pipe(p);
	int a = 1;
	assert_int_equal(fk_ev_add(&e, p[0], FK_EV_IN, &a), FCGI_OK);
	fk_ev outer;
	ev_open(&outer, 1);
	int tag = 9;
	fk_ev_item items[2];
	assert_int_equal(fk_ev_add(&outer, fk_ev_fd(&e), FK_EV_IN, &tag), FCGI_OK);
	assert_int_equal(ev_wait(&outer, items, 2, 0), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(ev_wait(&outer, items, 2, WAIT_MS), 1);
	assert_ptr_equal(items[0].ptr, &tag);
	fk_ev_close(&outer);
	fk_ev_close(&e);
	close(p[0]);
	close(p[1]);
}

/* The poll backend waits on a snapshot taken by fk_ev_prepare, so another thread may change
 * the set meanwhile: changes count from the next prepare. */
static void test_poll_snapshot(void **state)
{
	(void)state;
	fk_ev e;
	ev_open(&e, 1);
	int p[2], q[2];
	make_pipe(p);
	make_pipe(q);
	int a = 1, b = 2;
	fk_ev_item items[4];
	assert_int_equal(fk_ev_add(&e, p[0], FK_EV_IN, &a), FCGI_OK);
	assert_int_equal(fk_ev_prepare(&e), FCGI_OK);
	/* added after the snapshot: not seen by this wait */
	assert_int_equal(fk_ev_add(&e, q[0], FK_EV_IN, &b), FCGI_OK);
	assert_int_equal(write(q[1], "x", 1), 1);
	assert_int_equal(fk_ev_wait(&e, items, 4, 0), 0);
	/* the next prepare sees it */
	assert_int_equal(ev_wait(&e, items, 4, WAIT_MS), 1);
	assert_ptr_equal(items[0].ptr, &b);
	/* grow past the capacity the snapshot had */
	int r[40][2], tags[40];
	for (int i = 0; i < 40; i++) {
		make_pipe(r[i]);
		tags[i] = 100 + i;
		assert_int_equal(fk_ev_add(&e, r[i][0], FK_EV_IN, &tags[i]), FCGI_OK);
	}
	assert_int_equal(write(r[39][1], "x", 1), 1);
	int n = ev_wait(&e, items, 4, WAIT_MS);
	assert_int_equal(n, 2);
	assert_true(events_for(items, n, &tags[39]) == FK_EV_IN);
	assert_true(events_for(items, n, &b) == FK_EV_IN);
	fk_ev_close(&e);
	for (int i = 0; i < 40; i++) {
		close(r[i][0]);
		close(r[i][1]);
	}
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

static void test_backend_choice(void **state)
{
	(void)state;
	fk_ev e;
	/* anything but "1" keeps epoll */
	setenv("FCGIKIT_POLL", "0", 1);
	assert_int_equal(fk_ev_init(&e), FCGI_OK);
	assert_true(fk_ev_fd(&e) >= 0);
	fk_ev_close(&e);
	assert_true(fk_ev_fd(&e) < 0); /* closed */
	setenv("FCGIKIT_POLL", "", 1);
	assert_int_equal(fk_ev_init(&e), FCGI_OK);
	assert_true(fk_ev_fd(&e) >= 0);
	fk_ev_close(&e);
	setenv("FCGIKIT_POLL", "1", 1);
	assert_int_equal(fk_ev_init(&e), FCGI_OK);
	assert_true(fk_ev_fd(&e) < 0);
	fk_ev_close(&e);
	fk_ev_close(&e); /* twice is harmless */
	unsetenv("FCGIKIT_POLL");
}

static void test_now_ms(void **state)
{
	(void)state;
	int64_t a = fk_now_ms();
	assert_true(a >= 0);
	usleep(20000);
	int64_t b = fk_now_ms();
	assert_true(b - a >= 19);
	assert_true(b - a < 5000);
	for (int i = 0; i < 1000; i++) {
		int64_t c = fk_now_ms();
		assert_true(c >= b);
		b = c;
	}
}

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	alarm(120); /* a watchdog for the whole suite (the EINTR tests use setitimer) */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timers_empty),
	    cmocka_unit_test(test_timers_order),
	    cmocka_unit_test(test_timers_ties_in_insertion_order),
	    cmocka_unit_test(test_timers_pop_due_boundaries),
	    cmocka_unit_test(test_timers_random_against_model),
	    cmocka_unit_test(test_timers_many_sorted),
	    cmocka_unit_test(test_epoll_basic),
	    cmocka_unit_test(test_poll_basic),
	    cmocka_unit_test(test_epoll_hangup),
	    cmocka_unit_test(test_poll_hangup),
	    cmocka_unit_test(test_epoll_many),
	    cmocka_unit_test(test_poll_many),
	    cmocka_unit_test(test_epoll_double_add),
	    cmocka_unit_test(test_poll_double_add),
	    cmocka_unit_test(test_epoll_eintr),
	    cmocka_unit_test(test_poll_eintr),
	    cmocka_unit_test(test_epoll_fd_readable),
	    cmocka_unit_test(test_poll_snapshot),
	    cmocka_unit_test(test_backend_choice),
	    cmocka_unit_test(test_now_ms),
	};
	return cmocka_run_group_tests_name("ev", tests, NULL, NULL);
}
