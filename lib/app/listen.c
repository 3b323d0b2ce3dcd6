/* listen.c — listening sockets: addresses, inherited sockets (fd 0, systemd), allow-lists. */
#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "app/app_int.h"
#include "util/alloc.h"

/* A server promising FCGI_MAX_CONNS needs that many descriptors: raise the soft limit as
 * far as the hard limit allows. */
static void raise_nofile(long want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	rlim_t need = (rlim_t)want;
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

int fk_listener_add(fcgi_app *app, int fd, int is_unix, const char *unlink_path)
{
	fk_listener *l = fk_calloc(1, sizeof *l);
	if (!l)
		return FCGI_ENOMEM;
	l->kind = FK_OBJ_LISTENER;
	l->fd = fd;
	l->is_unix = is_unix;
	/* Linux gives accepted sockets the listener's TCP_NODELAY: set once here, not on every
	 * connection (a listener that refuses it gets it per connection instead). */
	int one = 1;
	l->nodelay = !is_unix && !setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (unlink_path && !(l->unlink_path = fk_strdup(unlink_path))) {
		fk_free(l);
		return FCGI_ENOMEM;
	}
	fk_app_lock(app);
	fk_listener **ls = fk_realloc(app->listeners, (app->nlisteners + 1) * sizeof *ls);
	int rc = ls ? fk_ev_add(&app->ev, fd, FK_EV_IN, l) : FCGI_ENOMEM;
	if (ls)
		app->listeners = ls;
	if (!rc) {
		app->listeners[app->nlisteners++] = l;
		raise_nofile(app->opt[FCGI_OPT_MAX_CONNS] + 64);
		if (app->leader && !fk_app_on_loop_thread(app))
			fk_app_wake(app);
	}
	fk_app_unlock(app);
	if (rc) {
		fk_free(l->unlink_path);
		fk_free(l);
	}
	return rc;
}

void fk_listener_close(fcgi_app *app, fk_listener *l)
{
	fk_ev_del(&app->ev, l->fd);
	close(l->fd);
	if (l->unlink_path)
		unlink(l->unlink_path);
	fk_free(l->unlink_path);
	fk_free(l);
}

static int set_flags(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return FCGI_ESYS;
	int fdfl = fcntl(fd, F_GETFD);
	if (fdfl >= 0)
		fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC);
	return FCGI_OK;
}

FCGI_EXPORT int fcgi_app_listen(fcgi_app *app, const char *address)
{
	fk_addr a;
	int rc = fk_addr_parse(address, &a);
	if (rc)
		return rc;
	int family = a.ss.ss_family, is_unix = family == AF_UNIX;
	if (is_unix && (rc = fk_unix_clear_stale((struct sockaddr_un *)&a.ss, a.len)))
		return rc;
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return FCGI_ESYS;
	int one = 1, zero = 0;
	if (!is_unix)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (family == AF_INET6) {
		/* ":PORT" means every address, v4 included; an explicit v6 address only itself. */
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&a.ss;
		int any = !memcmp(&a6->sin6_addr, &in6addr_any, sizeof in6addr_any);
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, any ? &zero : &one, sizeof one);
	}
	if (bind(fd, (struct sockaddr *)&a.ss, a.len) ||
	    (is_unix && chmod(((struct sockaddr_un *)&a.ss)->sun_path,
	                      (mode_t)app->opt[FCGI_OPT_UNIX_MODE])) ||
	    listen(fd, (int)app->opt[FCGI_OPT_BACKLOG])) {
		int e = errno;
		close(fd);
		errno = e;
		return FCGI_ESYS;
	}
	rc = fk_listener_add(app, fd, is_unix, is_unix ? ((struct sockaddr_un *)&a.ss)->sun_path : NULL);
	if (rc)
		close(fd);
	return rc;
}

static int fd_is_unix(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	return !getsockname(fd, (struct sockaddr *)&ss, &sl) && ss.ss_family == AF_UNIX;
}

FCGI_EXPORT int fcgi_app_listen_fd(fcgi_app *app, int fd)
{
	int acc = 0;
	socklen_t sl = sizeof acc;
	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl) || !acc)
		return FCGI_EINVAL;
	if (set_flags(fd))
		return FCGI_ESYS;
	return fk_listener_add(app, fd, fd_is_unix(fd), NULL);
}

FCGI_EXPORT int fcgi_app_listen_inherited(fcgi_app *app)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	if (pid && fds && strtol(pid, NULL, 10) == (long)getpid()) {
		long n = strtol(fds, NULL, 10);
		int adopted = 0;
		for (long i = 0; i < n && i < 1024; i++) {
			int rc = fcgi_app_listen_fd(app, 3 + (int)i);
			if (rc == FCGI_OK)
				adopted++;
			else if (rc != FCGI_EINVAL)
				return rc;
		}
		/* Children must not think these were meant for them. */
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_FDNAMES");
		if (adopted)
			return adopted;
	}
	/* FCGI_LISTENSOCK_FILENO: a listening socket has no peer. */
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getpeername(FK_LISTENSOCK_FILENO, (struct sockaddr *)&ss, &sl) == 0 || errno != ENOTCONN)
		return FCGI_ENOTFCGI;
	int rc = fcgi_app_listen_fd(app, FK_LISTENSOCK_FILENO);
	return rc ? (rc == FCGI_EINVAL ? FCGI_ENOTFCGI : rc) : 1;
}

FCGI_EXPORT int fcgi_app_local_address(fcgi_app *app, char *buf, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	fk_app_lock(app);
	int fd = app->nlisteners ? app->listeners[0]->fd : -1;
	int rc = fd < 0 ? FCGI_ESTATE
	                : getsockname(fd, (struct sockaddr *)&ss, &sl) ? FCGI_ESYS
	                : fk_addr_format((struct sockaddr *)&ss, sl, buf, size);
	fk_app_unlock(app);
	return rc;
}

/* ---------------------------------------------------------------- signals */

/* The handler only touches lock-free atomics and write(2). */
static_assert(ATOMIC_INT_LOCK_FREE == 2, "stop_requested must be lock-free");
static fcgi_app *volatile g_signal_app;

static void on_stop_signal(int sig)
{
	fcgi_app *app = g_signal_app;
	(void)sig;
	if (!app)
		return;
	if (app->stop_requested)
		_exit(1); /* second signal: the operator wants out now */
	fcgi_app_stop(app);
}

FCGI_EXPORT int fcgi_app_handle_signals(fcgi_app *app)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	g_signal_app = app;
	if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL))
		return FCGI_ESYS;
	signal(SIGPIPE, SIG_IGN);
	return FCGI_OK;
}
