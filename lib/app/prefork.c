/* prefork.c — preload, then fork (fcgi_app_prefork).
 *
 * An application loads what every worker needs (a dictionary, a model, templates) once and
 * then forks; the workers share those pages copy-on-write, so N workers cost one copy of the
 * data. Each worker gets a fresh event set and wake-up descriptor over the same listening
 * sockets — an epoll instance shared across processes would deliver one process's events to
 * another.
 *
 * Two supervisors:
 *  - standalone: this process stays the parent, keeps N workers running, passes SIGTERM and
 *    SIGINT on as a graceful stop and returns once they have all gone;
 *  - under `fcgikit pm` with `preload = yes` (FCGIKIT_PM_ZYGOTE_FD set): this process becomes
 *    the manager's zygote. The manager asks for each worker over a SOCK_SEQPACKET pair,
 *    passing that worker's report page; the zygote forks, answers with the pid, and later
 *    tells how each exited. The manager then supervises the workers as its own (signals,
 *    timeouts, recycling, status); as a child subreaper it also inherits them should the
 *    zygote die.
 *
 * Messages (host order, one per packet): {op, a, b} as three 32-bit words.
 *   manager -> zygote  'F' slot 0   + SCM_RIGHTS: the report page   fork a worker
 *   zygote -> manager  'P' slot pid                                 forked it
 *   zygote -> manager  'X' pid status                               it exited (waitpid status)
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app/app_int.h"
#include "util/alloc.h"
#include "util/report.h"

#define FK_ZYGOTE_ENV "FCGIKIT_PM_ZYGOTE_FD"
#define PREFORK_MAX 1024

/* In the new worker: its own event set over the inherited listeners. */
static int after_fork(fcgi_app *app)
{
	fk_ev_close(&app->ev);
	if (app->wake_fd >= 0)
		close(app->wake_fd);
	if (fk_ev_init(&app->ev))
		return FCGI_ESYS;
	app->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (app->wake_fd < 0 || fk_ev_add(&app->ev, app->wake_fd, FK_EV_IN, &app->wake_kind))
		return FCGI_ESYS;
	for (size_t i = 0; i < app->nlisteners; i++)
		if (fk_ev_add(&app->ev, app->listeners[i]->fd, FK_EV_IN, app->listeners[i]))
			return FCGI_ESYS;
	return FCGI_OK;
}


/* ---------------------------------------------------------------- under fcgikit pm */

static int send_msg(int ctl, uint32_t op, uint32_t a, uint32_t b)
{
	uint32_t m[3] = {op, a, b};
	ssize_t n;
	do
		n = send(ctl, m, sizeof m, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof m ? 0 : -1;
}

/* Receives one message and the descriptor riding on it (or -1). 0 at EOF, 1, or -1. */
static int recv_msg(int ctl, uint32_t m[3], int *fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {m, 3 * sizeof m[0]};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
	                    .msg_controllen = sizeof cbuf};
	*fd = -1;
	ssize_t n;
	do
		n = recvmsg(ctl, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n == 0 ? 0 : -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(fd, CMSG_DATA(c), sizeof *fd);
	return n == (ssize_t)(3 * sizeof m[0]) ? 1 : -1;
}

/* Both supervisors take SIGCHLD, SIGTERM and SIGINT synchronously (signalfd or
 * sigtimedwait); each worker gets the caller's mask back right after the fork. */
static void block_supervisor_signals(sigset_t *set, sigset_t *old)
{
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigprocmask(SIG_BLOCK, set, old);
}

static int zygote(fcgi_app *app, int ctl)
{
	sigset_t set, old;
	block_supervisor_signals(&set, &old);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return FCGI_ESYS;
	}
	for (;;) {
		struct pollfd p[2] = {{ctl, POLLIN, 0}, {sfd, POLLIN, 0}};
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents) {
			struct signalfd_siginfo si;
			int stop = 0;
			while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
				stop |= si.ssi_signo != SIGCHLD;
			int st;
			pid_t pid;
			while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
				send_msg(ctl, 'X', (uint32_t)pid, (uint32_t)st);
			if (stop)
				break; /* the workers are the manager's to stop */
		}
		if (!p[0].revents)
			continue;
		uint32_t m[3];
		int fd;
		int r = recv_msg(ctl, m, &fd);
		if (r <= 0)
			break; /* the manager is gone or done with this generation */
		if (m[0] != 'F') {
			if (fd >= 0)
				close(fd);
			continue;
		}
		pid_t pid = fork();
		if (pid == 0) {
			close(ctl);
			close(sfd);
			sigprocmask(SIG_SETMASK, &old, NULL);
			int rc = after_fork(app);
			if (!rc && fd >= 0)
				fk_report_attach_fd(app, fd);
			return rc;
		}
		if (fd >= 0)
			close(fd);
		send_msg(ctl, 'P', m[1], pid > 0 ? (uint32_t)pid : 0);
	}
	close(sfd);
	close(ctl);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return FCGI_ESHUTDOWN;
}

/* ---------------------------------------------------------------- standalone */

typedef struct slot {
	pid_t pid;
	int64_t started, respawn_at;
	int quick; /* exits within a second of starting, in a row */
} slot;

static pid_t spawn(fcgi_app *app, const sigset_t *old, int *child_rc)
{
	pid_t pid = fork();
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, old, NULL);
		*child_rc = after_fork(app);
	}
	return pid;
}

static int standalone(fcgi_app *app, int workers)
{
	sigset_t set, old;
	block_supervisor_signals(&set, &old);
	slot *s = fk_calloc((size_t)workers, sizeof *s);
	if (!s) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return FCGI_ENOMEM;
	}
	int stopping = 0, alive = 0;
	int64_t deadline = 0;
	for (;;) {
		int64_t now = fk_now_ms();
		for (int i = 0; i < workers && !stopping; i++) {
			if (s[i].pid > 0 || now < s[i].respawn_at)
				continue;
			int rc = 0;
			pid_t pid = spawn(app, &old, &rc);
			if (pid == 0) {
				fk_free(s);
				return rc;
			}
			if (pid > 0) {
				s[i].pid = pid;
				s[i].started = now;
				alive++;
			} else {
				s[i].respawn_at = now + 1000;
			}
		}
		if (stopping && !alive)
			break;
		if (stopping && now >= deadline) {
			for (int i = 0; i < workers; i++)
				if (s[i].pid > 0)
					kill(s[i].pid, SIGKILL);
			deadline = now + 60000;
		}
		struct timespec ts = {0, 200 * 1000 * 1000};
		siginfo_t si;
		int sig = sigtimedwait(&set, &si, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			if (!stopping) {
				stopping = 1;
				deadline = fk_now_ms() + app->opt[FCGI_OPT_DRAIN_TIMEOUT_MS] + 1000;
				for (int i = 0; i < workers; i++)
					if (s[i].pid > 0)
						kill(s[i].pid, SIGTERM);
			}
			continue;
		}
		int st;
		pid_t pid;
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			for (int i = 0; i < workers; i++) {
				if (s[i].pid != pid)
					continue;
				s[i].pid = 0;
				alive--;
				now = fk_now_ms();
				/* A worker that dies at once again and again waits longer each time
				 * (0.1 s doubling to 10 s) instead of burning the CPU. */
				s[i].quick = now - s[i].started < 1000 ? s[i].quick + 1 : 0;
				int64_t delay = s[i].quick ? 100LL << (s[i].quick > 7 ? 7 : s[i].quick - 1) : 0;
				s[i].respawn_at = now + delay;
			}
		}
	}
	fk_free(s);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return FCGI_ESHUTDOWN;
}

FCGI_EXPORT int fcgi_app_prefork(fcgi_app *app, int workers)
{
	if (!app || app->nconns || app->leader)
		return FCGI_EINVAL;
	const char *z = getenv(FK_ZYGOTE_ENV);
	if (z) {
		char *end;
		long fd = strtol(z, &end, 10);
		unsetenv(FK_ZYGOTE_ENV);
		if (*end || end == z || fd < 0 || fd > 65535)
			return FCGI_EINVAL;
		return zygote(app, (int)fd);
	}
	if (workers < 1 || workers > PREFORK_MAX)
		return FCGI_EINVAL;
	return standalone(app, workers);
}
