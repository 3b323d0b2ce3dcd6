/* os.c — libfcgi's OS_* layer, for the FastCGI client tools linked against libfcgi.so.0
 * (cgi-fcgi): sockets, a spawner, and the poll()-based asynchronous I/O table. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "compat_int.h"
#include "fastcgi.h"
#include "fcgios.h"

/* One pending read and one pending write per descriptor, indexed by descriptor. */
typedef struct aio {
	int used;
	void *buf;
	int len;
	OS_AsyncProc proc;
	ClientData cd;
} aio;

typedef struct aio_pair {
	aio rd, wr;
} aio_pair;

static aio_pair *g_aio;
static int g_aio_cap;

static aio_pair *aio_slot(int fd)
{
	if (fd < 0)
		return NULL;
	if (fd >= g_aio_cap) {
		int cap = g_aio_cap ? g_aio_cap : 16;
		while (cap <= fd)
			cap *= 2;
		aio_pair *t = realloc(g_aio, (size_t)cap * sizeof *t);
		if (!t)
			return NULL;
		memset(t + g_aio_cap, 0, (size_t)(cap - g_aio_cap) * sizeof *t);
		g_aio = t;
		g_aio_cap = cap;
	}
	return &g_aio[fd];
}

static int aio_add(int fd, int write, void *buf, int len, OS_AsyncProc proc, ClientData cd)
{
	aio_pair *p = aio_slot(fd);
	if (!p) {
		errno = fd < 0 ? EBADF : ENOMEM;
		return -1;
	}
	aio *a = write ? &p->wr : &p->rd;
	if (a->used) {
		errno = EBUSY;
		return -1;
	}
	*a = (aio){1, buf, len, proc, cd};
	return 0;
}

DLLAPI int OS_LibInit(int stdioFds[3])
{
	(void)stdioFds;
	FCGX_Init();
	return 0;
}

DLLAPI void OS_LibShutdown(void)
{
	free(g_aio);
	g_aio = NULL;
	g_aio_cap = 0;
}

DLLAPI int OS_CreateLocalIpcFd(const char *bindPath, int backlog)
{
	return fkc_open_socket(bindPath, backlog);
}

DLLAPI int OS_FcgiConnect(char *bindPath)
{
	if (!bindPath || !*bindPath) {
		errno = EINVAL;
		return -1;
	}
	const char *colon = strrchr(bindPath, ':');
	if (!colon || bindPath[0] == '/' || bindPath[0] == '.') {
		struct sockaddr_un un;
		memset(&un, 0, sizeof un);
		un.sun_family = AF_UNIX;
		if (strlen(bindPath) >= sizeof un.sun_path) {
			errno = ENAMETOOLONG;
			return -1;
		}
		strcpy(un.sun_path, bindPath);
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&un, sizeof un)) {
			close(fd);
			fd = -1;
		}
		return fd;
	}
	char host[256];
	size_t hl = (size_t)(colon - bindPath);
	if (hl >= sizeof host) {
		errno = EINVAL;
		return -1;
	}
	memcpy(host, bindPath, hl);
	host[hl] = '\0';
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(hl ? host : "127.0.0.1", colon + 1, &hints, &res) || !res) {
		errno = EHOSTUNREACH;
		return -1;
	}
	int fd = -1;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen)) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	return fd;
}

DLLAPI int OS_Read(int fd, char *buf, size_t len)
{
	ssize_t n;
	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return (int)n;
}

DLLAPI int OS_Write(int fd, char *buf, size_t len)
{
	ssize_t n;
	do
		n = write(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return (int)n;
}

DLLAPI int OS_SpawnChild(char *execPath, int listenFd)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0)
		return 0;
	/* The child: the listening socket becomes fd 0; stdout and stderr are not the app's. */
	if (listenFd != FCGI_LISTENSOCK_FILENO) {
		dup2(listenFd, FCGI_LISTENSOCK_FILENO);
		close(listenFd);
	}
	close(STDOUT_FILENO);
	close(STDERR_FILENO);
	execl(execPath, execPath, (char *)NULL);
	_exit(127);
}

DLLAPI int OS_AsyncReadStdin(void *buf, int len, OS_AsyncProc procPtr, ClientData clientData)
{
	return aio_add(STDIN_FILENO, 0, buf, len, procPtr, clientData);
}

DLLAPI int OS_AsyncRead(int fd, int offset, void *buf, int len, OS_AsyncProc procPtr,
                        ClientData clientData)
{
	(void)offset;
	return aio_add(fd, 0, buf, len, procPtr, clientData);
}

DLLAPI int OS_AsyncWrite(int fd, int offset, void *buf, int len, OS_AsyncProc procPtr,
                         ClientData clientData)
{
	(void)offset;
	return aio_add(fd, 1, buf, len, procPtr, clientData);
}

static void aio_forget(int fd)
{
	if (fd >= 0 && fd < g_aio_cap)
		memset(&g_aio[fd], 0, sizeof g_aio[fd]);
}

DLLAPI int OS_Close(int fd, int shutdown_ok)
{
	if (fd < 0)
		return 0;
	aio_forget(fd);
	if (shutdown_ok && shutdown(fd, SHUT_WR) == 0) {
		/* Drain what the peer still sends, briefly, so the close is not a reset. */
		char buf[1024];
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		for (int i = 0; i < 16 && poll(&pfd, 1, 200) > 0; i++)
			if (read(fd, buf, sizeof buf) <= 0)
				break;
	}
	return close(fd);
}

DLLAPI int OS_CloseRead(int fd)
{
	if (fd >= 0 && fd < g_aio_cap)
		g_aio[fd].rd.used = 0;
	return shutdown(fd, SHUT_RD);
}

DLLAPI int OS_DoIo(struct timeval *tmo)
{
	int n = 0;
	for (int fd = 0; fd < g_aio_cap; fd++)
		n += (g_aio[fd].rd.used || g_aio[fd].wr.used);
	struct pollfd *pfds = n ? calloc((size_t)n, sizeof *pfds) : NULL;
	if (n && !pfds)
		return -1;
	int k = 0;
	for (int fd = 0; fd < g_aio_cap && k < n; fd++) {
		short ev = (short)((g_aio[fd].rd.used ? POLLIN : 0) |
		                   (g_aio[fd].wr.used ? POLLOUT : 0));
		if (ev)
			pfds[k++] = (struct pollfd){.fd = fd, .events = ev};
	}
	int ms = tmo ? (int)(tmo->tv_sec * 1000 + tmo->tv_usec / 1000) : -1;
	int ready = poll(pfds, (nfds_t)n, ms);
	if (ready < 0) {
		free(pfds);
		return errno == EINTR ? 0 : -1;
	}
	/* The ready set was taken before any callback runs: a callback may add or drop
	 * operations, which then wait for the next call. */
	for (int i = 0; i < n && ready > 0; i++) {
		short re = pfds[i].revents;
		if (!re)
			continue;
		int fd = pfds[i].fd;
		int can_rd = (re & (POLLIN | POLLHUP | POLLERR)) != 0;
		int can_wr = (re & (POLLOUT | POLLHUP | POLLERR)) != 0;
		if (can_rd && (pfds[i].events & POLLIN) && fd < g_aio_cap && g_aio[fd].rd.used) {
			aio a = g_aio[fd].rd;
			g_aio[fd].rd.used = 0;
			ssize_t got = read(fd, a.buf, (size_t)a.len);
			a.proc(a.cd, (int)got);
		}
		if (can_wr && (pfds[i].events & POLLOUT) && fd < g_aio_cap && g_aio[fd].wr.used) {
			aio a = g_aio[fd].wr;
			g_aio[fd].wr.used = 0;
			ssize_t put = write(fd, a.buf, (size_t)a.len);
			a.proc(a.cd, (int)put);
		}
	}
	free(pfds);
	return 0;
}

/* Whether the IPv4 peer is in the comma-separated list (an empty list allows everyone). */
static int peer_allowed(const struct sockaddr_storage *ss, const char *list)
{
	if (!list || !*list)
		return 1;
	if (ss->ss_family != AF_INET)
		return 1; /* Unix sockets (and IPv6, which libfcgi's list cannot name) */
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	char one[64];
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		if (n < sizeof one) {
			memcpy(one, p, n);
			one[n] = '\0';
			struct in_addr a;
			if (inet_pton(AF_INET, one, &a) == 1 && a.s_addr == sin->sin_addr.s_addr)
				return 1;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

static volatile sig_atomic_t g_os_shutdown;

DLLAPI int OS_Accept(int listen_sock, int fail_on_intr, const char *webServerAddrs)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept(listen_sock, (struct sockaddr *)&ss, &sl);
		if (fd < 0) {
			if (errno == EINTR && !fail_on_intr && !g_os_shutdown)
				continue;
			if (errno == ECONNABORTED || errno == EPROTO)
				continue;
			return -1;
		}
		if (peer_allowed(&ss, webServerAddrs))
			return fd;
		close(fd);
	}
}

DLLAPI int OS_IpcClose(int ipcFd, int shutdown) { return OS_Close(ipcFd, shutdown); }

DLLAPI int OS_IsFcgi(int sock) { return fkc_is_listener(sock); }

DLLAPI void OS_SetFlags(int fd, int flags)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | flags);
}

DLLAPI void OS_ShutdownPending(void)
{
	g_os_shutdown = 1;
	fkc_shutdown();
}
