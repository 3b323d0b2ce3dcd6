/* shed.c — the manager answers for an overloaded pool.
 *
 * When every worker is busy, the pool cannot grow and the listen queue passes shed_queue,
 * waiting helps nobody: the web server would time out later anyway. The manager then adds
 * the pool's listening socket to its own loop and answers what it accepts at once — a
 * `503 Service Unavailable` with Retry-After (what a browser and nginx's access log
 * understand), or FastCGI's END_REQUEST with OVERLOADED (for fronts that retry elsewhere,
 * such as fcgikit gateway). As soon as a worker is free again the socket leaves the loop.
 *
 * Each shed connection is bounded in count, bytes and time; its request records are read
 * only as far as BEGIN_REQUEST, and the rest is drained until the peer closes, so it sees
 * the answer rather than a reset. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fcgikit.h"
#include "pm/pm.h"

#define SHED_MAX_CONNS 256
#define SHED_DEADLINE_MS 2000
#define SHED_ACCEPT_BATCH 16

struct pm_shed_conn {
	int kind; /* PM_OBJ_SHED */
	int fd;
	pm_pool *pool;
	fk_srv srv;
	size_t sent;
	int64_t deadline;
	int answered_all;
	pm_shed_conn *next;
};

static const char body503[] = "Status: 503 Service Unavailable\r\n"
                              "Retry-After: 1\r\n"
                              "Content-Type: text/plain\r\n\r\n"
                              "Service overloaded, try again shortly.\n";

static void conn_free(pm_shed_conn *c)
{
	pm_pool *p = c->pool;
	for (pm_shed_conn **pp = &p->shed_conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	p->nshed_conns--;
	fk_ev_del(&p->m->ev, c->fd);
	close(c->fd);
	fk_srv_free(&c->srv);
	free(c);
}

void pm_listen_watch(pm_pool *p)
{
	int want = (p->shedding || p->wake_on_conn) && p->listen_fd >= 0;
	if (want == p->watching)
		return;
	if (want ? fk_ev_add(&p->m->ev, p->listen_fd, FK_EV_IN, &p->kind)
	         : fk_ev_del(&p->m->ev, p->listen_fd))
		return;
	p->watching = want;
}

void pm_shed_update(pm_pool *p, int want)
{
	if (want == p->shedding || p->listen_fd < 0)
		return;
	p->shedding = want;
	pm_listen_watch(p);
	if (want) {
		pm_log("warning", "pool %s: every worker busy and %d connections queued: answering "
		                  "new requests with %s",
		       p->conf->name, p->queue,
		       p->conf->shed_response == PM_SHED_503 ? "503" : "OVERLOADED");
	} else {
		pm_log("notice", "pool %s: load shedding ends (%llu answered)", p->conf->name,
		       (unsigned long long)p->shed);
	}
}

static int flush(pm_shed_conn *c)
{
	while (c->sent < fk_buf_size(&c->srv.out)) {
		ssize_t n = send(c->fd, fk_buf_head(&c->srv.out) + c->sent,
		                 fk_buf_size(&c->srv.out) - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		c->sent += (size_t)n;
	}
	fk_buf_consume(&c->srv.out, c->sent);
	c->sent = 0;
	return 0;
}

void pm_shed_io(pm_shed_conn *c, unsigned events)
{
	(void)events;
	uint8_t buf[8192];
	for (int round = 0; round < 8; round++) {
		ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n == 0) {
			conn_free(c);
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			conn_free(c);
			return;
		}
		if (c->answered_all)
			continue; /* draining what the peer still sends */
		size_t off = 0;
		while (off < (size_t)n) {
			size_t used;
			fk_srv_event ev;
			int rc = fk_srv_feed(&c->srv, buf + off, (size_t)n - off, &used, &ev);
			off += used;
			if (rc < 0) {
				conn_free(c);
				return;
			}
			if (rc == 0)
				break;
			if (ev.kind == FK_SEV_BEGIN) {
				c->pool->shed++;
				if (c->pool->conf->shed_response == PM_SHED_OVERLOADED) {
					fk_srv_refuse(&c->srv, ev.request_id, FCGI_STATUS_OVERLOADED);
				} else {
					fk_srv_write(&c->srv, ev.request_id, FK_STDOUT, body503,
					             sizeof body503 - 1);
					fk_srv_end(&c->srv, ev.request_id, 0);
				}
				/* One answer per connection: later requests on it are the next front's
				 * to retry on a fresh connection. */
				c->answered_all = 1;
			} else if (ev.kind == FK_SEV_PARAMS) {
				fk_params_free(ev.params);
			}
		}
	}
	if (flush(c)) {
		conn_free(c);
		return;
	}
	if (c->answered_all && !fk_buf_size(&c->srv.out))
		shutdown(c->fd, SHUT_WR);
}

/* The listening socket is shared with the workers and must stay blocking for them (a
 * libfcgi program exits when its accept() fails with EAGAIN), so the manager cannot make it
 * non-blocking. Between the readiness it saw and its accept(), a worker may take the last
 * connection; a one-shot timer then interrupts the manager's accept (a signal without
 * SA_RESTART) instead of letting it block the loop. */
#define SHED_ACCEPT_SIGNAL (SIGRTMIN + 1)
#define SHED_ACCEPT_WAIT_NS (20 * 1000 * 1000)

static void on_accept_timer(int sig) { (void)sig; }

static int bounded_accept(int lfd)
{
	static timer_t timer;
	static int have_timer = -1;
	if (have_timer < 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_accept_timer; /* no SA_RESTART: accept() returns EINTR */
		sigemptyset(&sa.sa_mask);
		struct sigevent sev;
		memset(&sev, 0, sizeof sev);
		sev.sigev_notify = SIGEV_SIGNAL;
		sev.sigev_signo = SHED_ACCEPT_SIGNAL;
		have_timer = !sigaction(SHED_ACCEPT_SIGNAL, &sa, NULL) &&
		             !timer_create(CLOCK_MONOTONIC, &sev, &timer);
	}
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};
	if (poll(&pfd, 1, 0) != 1 || !have_timer)
		return -1; /* without the timer, never risk a blocking accept */
	struct itimerspec arm = {.it_value = {.tv_nsec = SHED_ACCEPT_WAIT_NS}}, off = {0};
	timer_settime(timer, 0, &arm, NULL);
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	timer_settime(timer, 0, &off, NULL);
	return fd;
}

void pm_shed_accept(pm_pool *p)
{
	for (int i = 0; i < SHED_ACCEPT_BATCH && p->nshed_conns < SHED_MAX_CONNS; i++) {
		int fd = bounded_accept(p->listen_fd);
		if (fd < 0)
			return;
		pm_shed_conn *c = calloc(1, sizeof *c);
		if (!c) {
			close(fd);
			return;
		}
		c->kind = PM_OBJ_SHED;
		c->fd = fd;
		c->pool = p;
		fk_srv_limits lim = {
		    .max_reqs_per_conn = 1,
		    .max_params_bytes = 65536,
		    .max_params_count = 1024,
		    .advertise_max_conns = 1,
		    .advertise_max_reqs = 1,
		    .mpxs = 0,
		};
		fk_srv_init(&c->srv, &lim);
		c->deadline = fk_now_ms() + SHED_DEADLINE_MS;
		if (fk_ev_add(&p->m->ev, fd, FK_EV_IN, &c->kind)) {
			fk_srv_free(&c->srv);
			free(c);
			close(fd);
			return;
		}
		c->next = p->shed_conns;
		p->shed_conns = c;
		p->nshed_conns++;
	}
}

void pm_shed_sweep(pm_pool *p, int64_t now)
{
	for (pm_shed_conn *c = p->shed_conns, *next; c; c = next) {
		next = c->next;
		if (now >= c->deadline)
			conn_free(c);
	}
}

void pm_shed_free_all(pm_pool *p)
{
	while (p->shed_conns)
		conn_free(p->shed_conns);
	p->shedding = p->wake_on_conn = 0;
	pm_listen_watch(p);
}
