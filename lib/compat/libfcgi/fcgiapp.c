/* fcgiapp.c — FCGX requests on libfcgikit: the listening-socket registry, accept and finish,
 * parameters, shutdown, signals and socket opening (see compat_int.h). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "compat_int.h"
#include "fastcgi.h"

/* ---------------------------------------------------------------- the registry
 *
 * One entry per (listening socket, process). Entries are never freed, so FCGX_ShutdownPending
 * may walk the list from a signal handler; they are published with an atomic store once
 * complete. A child after fork() sees its parent's entries but skips them (pid differs). */
typedef struct fkc_listener {
	struct fkc_listener *next;
	int sock;
	pid_t pid;
	fcgi_app *app;
	/* Turns at fcgi_accept: one thread at a time waits in it (and so leads the app's loop);
	 * the others wait on the stack, most recently idle on top. See accept_turn. */
	pthread_mutex_t turn_mu;
	struct turn_waiter *turn_waiters;
	int turn_taken;
} fkc_listener;

/* A thread waiting for its turn; the turn is handed to it directly (turn_taken stays set). */
struct turn_waiter {
	struct turn_waiter *next;
	sem_t *sem;
};

static _Atomic(fkc_listener *) g_listeners;
static pthread_mutex_t g_registry_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t g_shutdown;

static FCGX_Request g_request; /* FCGX_Accept / FCGX_Finish */
static pthread_once_t g_init_once = PTHREAD_ONCE_INIT;

/* getpid() is a system call; the streams ask on every buffer-full, so it is cached and
 * refreshed in the child by an atfork handler. */
static atomic_int g_pid;
static pthread_once_t g_pid_once = PTHREAD_ONCE_INIT;

static void pid_refresh(void) { atomic_store(&g_pid, (int)getpid()); }

static void pid_init(void)
{
	pid_refresh();
	pthread_atfork(NULL, NULL, pid_refresh);
}

pid_t fkc_pid(void)
{
	pthread_once(&g_pid_once, pid_init);
	return (pid_t)atomic_load_explicit(&g_pid, memory_order_relaxed);
}

static fkc_listener *find(int sock, pid_t pid)
{
	for (fkc_listener *l = atomic_load(&g_listeners); l; l = l->next)
		if (l->sock == sock && l->pid == pid)
			return l;
	return NULL;
}

/* Why sock cannot be listened on, as a negative errno (FCGX_Accept_r's error convention). */
static int not_listening_errno(int sock)
{
	int acc = 0;
	socklen_t sl = sizeof acc;
	if (getsockopt(sock, SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl))
		return -(errno ? errno : ENOTSOCK);
	return -EINVAL;
}

/* The entry serving sock in this process, created on first use. 0, or a negative errno. */
static int listener_for(int sock, fkc_listener **out)
{
	pid_t pid = fkc_pid();
	if ((*out = find(sock, pid)))
		return 0;
	pthread_mutex_lock(&g_registry_mu);
	int rc = 0;
	fkc_listener *l = find(sock, pid);
	if (!l && g_shutdown)
		rc = -1;
	if (!l && !rc) {
		fcgi_app *app = NULL;
		l = calloc(1, sizeof *l);
		int err = l ? fcgi_app_new(&app) : FCGI_ENOMEM;
		if (!err) {
			/* 0 is "the socket the program was started with": fd 0, or systemd's. */
			err = sock == FCGI_LISTENSOCK_FILENO ? fcgi_app_listen_inherited(app)
			                                     : fcgi_app_listen_fd(app, sock);
			if (err > 0)
				err = 0;
		}
		if (err) {
			rc = err == FCGI_ENOMEM ? -ENOMEM
			     : err == FCGI_ESYS ? -(errno ? errno : EIO)
			                        : not_listening_errno(sock);
			if (app)
				fcgi_app_free(app);
			free(l);
			l = NULL;
		} else {
			l->sock = sock;
			l->pid = pid;
			l->app = app;
			pthread_mutex_init(&l->turn_mu, NULL);
			l->next = atomic_load(&g_listeners);
			atomic_store(&g_listeners, l);
			/* A shutdown that raced with the creation must reach this app too. */
			if (g_shutdown)
				fcgi_app_stop(app);
		}
	}
	pthread_mutex_unlock(&g_registry_mu);
	*out = l;
	return rc;
}

void fkc_shutdown(void)
{
	g_shutdown = 1;
	pid_t pid = getpid();
	for (fkc_listener *l = atomic_load(&g_listeners); l; l = l->next)
		if (l->pid == pid)
			fcgi_app_stop(l->app);
}

DLLAPI void FCGX_ShutdownPending(void) { fkc_shutdown(); }

/* ---------------------------------------------------------------- signals and init */

static void on_sigpipe(int sig) { (void)sig; }

static void on_sigusr1(int sig)
{
	(void)sig;
	int e = errno;
	fkc_shutdown();
	errno = e;
}

/* libfcgi's convention: a handler is installed only where the program kept the default. */
static void install_if_default(int sig, void (*handler)(int))
{
	struct sigaction old, sa;
	if (sigaction(sig, NULL, &old) || old.sa_handler != SIG_DFL)
		return;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

void fkc_install_signals(void)
{
	install_if_default(SIGPIPE, on_sigpipe);
	install_if_default(SIGUSR1, on_sigusr1);
}

static void init_once(void)
{
	fkc_install_signals();
	FCGX_InitRequest(&g_request, FCGI_LISTENSOCK_FILENO, 0);
}

DLLAPI int FCGX_Init(void)
{
	pthread_once(&g_init_once, init_once);
	return 0;
}

int fkc_is_listener(int sock)
{
	if (sock == FCGI_LISTENSOCK_FILENO) {
		/* systemd socket activation counts as being started by a spawner. */
		const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
		if (pid && fds && strtol(pid, NULL, 10) == (long)getpid() &&
		    strtol(fds, NULL, 10) > 0)
			return 1;
	}
	/* A listening socket has no peer: getpeername fails with ENOTCONN. */
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	return getpeername(sock, (struct sockaddr *)&ss, &sl) != 0 && errno == ENOTCONN;
}

DLLAPI int FCGX_IsCGI(void)
{
	static atomic_int is_fcgi = -1;
	FCGX_Init();
	int v = atomic_load(&is_fcgi);
	if (v < 0) {
		int e = errno;
		v = fkc_is_listener(FCGI_LISTENSOCK_FILENO);
		errno = e;
		atomic_store(&is_fcgi, v);
	}
	return !v;
}

/* ---------------------------------------------------------------- requests */

DLLAPI int FCGX_InitRequest(FCGX_Request *request, int sock, int flags)
{
	memset(request, 0, sizeof *request);
	request->listen_sock = sock;
	request->flags = flags;
	request->ipcFd = -1;
	return 0;
}

static const char *role_var(int role)
{
	switch (role) {
	case FCGI_AUTHORIZER:
		return "FCGI_ROLE=AUTHORIZER";
	case FCGI_FILTER:
		return "FCGI_ROLE=FILTER";
	default:
		return "FCGI_ROLE=RESPONDER";
	}
}

/* The request state and its envp in one allocation. envp is what libfcgi builds: first
 * FCGI_ROLE=<role>, then every param as "NAME=value" in the order the peer sent them. */
static fkc_req *req_new(fcgi_app *app, fcgi_req *req)
{
	int role = (int)fcgi_req_role(req);
	const char *rv = role_var(role);
	size_t n = fcgi_param_count(req), rl = strlen(rv) + 1, bytes = rl;
	for (size_t i = 0; i < n; i++) {
		size_t nl, vl;
		fcgi_param_at(req, i, NULL, &nl, NULL, &vl);
		bytes += nl + vl + 2;
	}
	size_t head = sizeof(fkc_req) + (n + 2) * sizeof(char *);
	fkc_req *r = malloc(head + bytes);
	if (!r)
		return NULL;
	memset(r, 0, sizeof *r);
	r->req = req;
	r->app = app;
	r->pid = fkc_pid();
	r->role = role;
	r->envp = (char **)(r + 1);
	char *p = (char *)r + head;
	memcpy(p, rv, rl);
	r->envp[0] = p;
	p += rl;
	for (size_t i = 0; i < n; i++) {
		const char *name, *value;
		size_t nl, vl;
		fcgi_param_at(req, i, &name, &nl, &value, &vl);
		r->envp[i + 1] = p;
		memcpy(p, name, nl);
		p[nl] = '=';
		memcpy(p + nl + 1, value, vl);
		p[nl + 1 + vl] = '\0';
		p += nl + vl + 2;
	}
	r->envp[n + 1] = NULL;
	fkc_stream_init(&r->in, FKC_IN, r);
	fkc_stream_init(&r->out, FKC_OUT, r);
	fkc_stream_init(&r->err, FKC_ERR, r);
	return r;
}

static void req_free(fkc_req *r)
{
	fkc_stream_release(&r->in);
	fkc_stream_release(&r->out);
	fkc_stream_release(&r->err);
	free(r);
}

/* Takes the current request out of its slot. */
static fkc_req *detach_slot(FCGX_Request *request)
{
	fkc_req *r = (fkc_req *)request->paramsPtr;
	request->paramsPtr = NULL;
	request->in = request->out = request->err = NULL;
	request->envp = NULL;
	request->isBeginProcessed = 0;
	request->nWriters = 0;
	return r;
}

/*
 * Threads take turns at fcgi_accept: the one inside it runs the app's loop whenever nothing is
 * queued, and the moment it has a request it passes the turn on, so the next thread leads the
 * loop while this one serves (leader/followers). libfcgikit's own hand-off misses that case
 * (its leader keeps the loop to itself while it serves the request it read, and threads
 * waiting in fcgi_accept are not woken to lead: requests arriving meanwhile, on other
 * connections or multiplexed on the same one, would wait for that thread; see doc/compat.md).
 * With one thread this is two uncontended lock pairs per request.
 */
static _Thread_local sem_t t_turn_sem; /* never destroyed: a post may follow the wake-up */
static _Thread_local int t_turn_sem_ready;

static int accept_turn(fkc_listener *l, fcgi_req **req)
{
	pthread_mutex_lock(&l->turn_mu);
	if (!l->turn_taken) {
		l->turn_taken = 1;
		pthread_mutex_unlock(&l->turn_mu);
	} else {
		/* A semaphore per thread, woken by name: a condition variable shared by every waiter
		 * made each hand-off cost several context switches. */
		if (!t_turn_sem_ready) {
			sem_init(&t_turn_sem, 0, 0);
			t_turn_sem_ready = 1;
		}
		struct turn_waiter w = {l->turn_waiters, &t_turn_sem};
		l->turn_waiters = &w;
		pthread_mutex_unlock(&l->turn_mu);
		while (sem_wait(&t_turn_sem) && errno == EINTR)
			;
	}
	int rc = fcgi_accept(l->app, req);
	pthread_mutex_lock(&l->turn_mu);
	struct turn_waiter *next = l->turn_waiters;
	if (next)
		l->turn_waiters = next->next; /* the turn passes to it: turn_taken stays set */
	else
		l->turn_taken = 0;
	sem_t *sem = next ? next->sem : NULL; /* next lives on a stack that ends once woken */
	pthread_mutex_unlock(&l->turn_mu);
	if (sem)
		sem_post(sem);
	return rc;
}

DLLAPI int FCGX_Accept_r(FCGX_Request *request)
{
	if (!request)
		return -EINVAL;
	FCGX_Finish_r(request);
	fkc_listener *l;
	int rc = listener_for(request->listen_sock, &l);
	if (rc)
		return rc;
	fcgi_app *app = l->app;
	for (;;) {
		fcgi_req *req;
		if (accept_turn(l, &req))
			return -1; /* stopped: FCGX_ShutdownPending */
		fkc_req *r = req_new(app, req);
		if (!r) {
			/* Out of memory for this one: fail it, not the program's accept loop. */
			fcgi_finish(req, 1);
			continue;
		}
		r->owner = request;
		request->requestId = (int)fcgi_req_id(req);
		request->role = r->role;
		request->in = &r->in.s;
		request->out = &r->out.s;
		request->err = &r->err.s;
		request->envp = r->envp;
		request->paramsPtr = (struct Params *)r;
		request->ipcFd = -1; /* the connection belongs to the library's event loop */
		request->isBeginProcessed = 1;
		request->keepConnection = fcgi_req_keep_conn(req);
		request->appStatus = 0;
		request->nWriters = 2;
		request->detached = 0;
		return 0;
	}
}

DLLAPI void FCGX_Finish_r(FCGX_Request *request)
{
	if (!request || !request->paramsPtr)
		return;
	fkc_req *r = detach_slot(request);
	if (r->pid == fkc_pid()) {
		fkc_stream_drain(&r->out);
		fkc_stream_drain(&r->err);
		fcgi_finish(r->req, r->status);
	}
	req_free(r);
}

DLLAPI void FCGX_Free(FCGX_Request *request, int close)
{
	(void)close;
	if (!request || !request->paramsPtr)
		return;
	fkc_req *r = detach_slot(request);
	/* libfcgi drops the buffered output; the request must still end for the web server. In a
	 * forked child the parent owns the request: only the memory goes. */
	if (r->pid == fkc_pid())
		fcgi_finish(r->req, r->status);
	req_free(r);
}

DLLAPI int FCGX_Accept(FCGX_Stream **in, FCGX_Stream **out, FCGX_Stream **err,
                       FCGX_ParamArray *envp)
{
	FCGX_Init();
	int rc = FCGX_Accept_r(&g_request);
	*in = g_request.in;
	*out = g_request.out;
	*err = g_request.err;
	*envp = g_request.envp;
	return rc;
}

DLLAPI void FCGX_Finish(void) { FCGX_Finish_r(&g_request); }

DLLAPI int FCGX_Attach(FCGX_Request *r)
{
	r->detached = 0;
	return 0;
}

DLLAPI int FCGX_Detach(FCGX_Request *r)
{
	if (!r->paramsPtr)
		return -1;
	r->detached = 1;
	return 0;
}

DLLAPI char *FCGX_GetParam(const char *name, FCGX_ParamArray envp)
{
	if (!name || !envp)
		return NULL;
	size_t n = strlen(name);
	for (char **p = envp; *p; p++)
		if (!strncmp(*p, name, n) && (*p)[n] == '=')
			return *p + n + 1;
	return NULL;
}

/* ---------------------------------------------------------------- opening sockets */

/* A Unix socket file nobody listens on any more is removed; a live one is left alone. */
static void clear_stale(const struct sockaddr_un *un)
{
	struct stat st;
	if (lstat(un->sun_path, &st) || !S_ISSOCK(st.st_mode))
		return;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	int live = connect(fd, (const struct sockaddr *)un, sizeof *un) == 0;
	close(fd);
	if (!live)
		unlink(un->sun_path);
}

static int listen_unix(const char *path, int backlog)
{
	struct sockaddr_un un;
	memset(&un, 0, sizeof un);
	un.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof un.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(un.sun_path, path);
	clear_stale(&un);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&un, sizeof un) || listen(fd, backlog)) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int listen_tcp(const char *host, const char *port, int backlog)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	/* ":PORT" and "*:PORT": every IPv4 address, as libfcgi. */
	if (!*host || !strcmp(host, "*")) {
		host = NULL;
		hints.ai_family = AF_INET;
	}
	if (getaddrinfo(host, port, &hints, &res) || !res) {
		errno = EADDRNOTAVAIL;
		return -1;
	}
	int fd = -1, e = EADDRNOTAVAIL;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, backlog)) {
			e = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		errno = e;
	return fd;
}

int fkc_open_socket(const char *path, int backlog)
{
	if (!path || !*path) {
		errno = EINVAL;
		return -1;
	}
	const char *colon = strrchr(path, ':');
	/* libfcgi reads any colon as "HOST:PORT"; a path that starts like one stays a path. */
	if (!colon || path[0] == '/' || path[0] == '.')
		return listen_unix(path, backlog);
	char host[256];
	size_t hl = (size_t)(colon - path);
	if (hl >= sizeof host || !colon[1]) {
		errno = EINVAL;
		return -1;
	}
	memcpy(host, path, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	return listen_tcp(host, colon + 1, backlog);
}

DLLAPI int FCGX_OpenSocket(const char *path, int backlog)
{
	FCGX_Init();
	return fkc_open_socket(path, backlog);
}
