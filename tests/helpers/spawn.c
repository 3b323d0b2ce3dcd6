/* spawn.c — child processes for tests (see spawn.h). */
#include "helpers/spawn.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

long long spawn_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int spawn_self_dir(char *buf, size_t size)
{
	char path[4096];
	ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
	if (n <= 0)
		return -1;
	path[n] = 0;
	char *d = dirname(path);
	if (strlen(d) + 1 > size)
		return -1;
	memcpy(buf, d, strlen(d) + 1);
	return 0;
}

int spawn_have_ipv6(void)
{
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

/* A loopback port that was free a moment ago (the child binds it next; races are retried). */
static int free_port(int family)
{
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof ss);
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		len = sizeof *a;
	}
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
	                         : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int set_io_timeouts(int fd, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
		return -1;
	return 0;
}

/* One connection attempt, bounded by timeout_ms. Returns the fd, or -1 with errno. */
static int connect_once(const spawn_proc *p, int timeout_ms)
{
	int fd = socket(p->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)&p->sa, p->salen) < 0) {
		if (errno != EINPROGRESS) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		int r;
		while ((r = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR)
			;
		int err = 0;
		socklen_t el = sizeof err;
		if (r <= 0) {
			close(fd);
			errno = ETIMEDOUT;
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
			close(fd);
			errno = err ? err : EIO;
			return -1;
		}
	}
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}

int spawn_connect(const spawn_proc *p, int timeout_ms, int io_timeout_ms)
{
	long long deadline = spawn_now_ms() + timeout_ms;
	for (;;) {
		long long left = deadline - spawn_now_ms();
		int fd = connect_once(p, left > 0 ? (int)left : 0);
		if (fd >= 0) {
			set_io_timeouts(fd, io_timeout_ms);
			return fd;
		}
		/* A full accept queue: Unix sockets say EAGAIN, TCP may time out. Retry. */
		if (errno != EAGAIN && errno != ECONNREFUSED && errno != ENOENT &&
		    errno != ETIMEDOUT && errno != EINTR)
			return -1;
		if (spawn_now_ms() >= deadline)
			return -1;
		sleep_ms(5);
	}
}

int spawn_alive(spawn_proc *p)
{
	if (p->pid <= 0 || p->reaped)
		return 0;
	int st;
	pid_t r = waitpid(p->pid, &st, WNOHANG);
	if (r == p->pid) {
		p->status = st;
		p->reaped = 1;
		return 0;
	}
	return r == 0;
}

static void remove_dir(spawn_proc *p)
{
	if (!p->dir[0])
		return;
	DIR *d = opendir(p->dir);
	if (d) {
		struct dirent *e;
		char path[sizeof p->dir + 300];
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			snprintf(path, sizeof path, "%s/%s", p->dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(p->dir);
	p->dir[0] = 0;
}

void spawn_kill_now(const spawn_proc *p)
{
	if (p->pid > 0 && !p->reaped)
		kill(p->pid, SIGKILL);
}

int spawn_stop(spawn_proc *p, int timeout_ms)
{
	int ret = -1;
	if (p->pid > 0) {
		if (!p->reaped) {
			kill(p->pid, SIGTERM);
			long long deadline = spawn_now_ms() + timeout_ms;
			while (spawn_alive(p) && spawn_now_ms() < deadline)
				sleep_ms(5);
			if (!p->reaped) {
				kill(p->pid, SIGKILL);
				int st;
				while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
					;
				p->status = st;
				p->reaped = 1;
			} else {
				ret = p->status;
			}
		} else {
			ret = p->status;
		}
		p->pid = 0;
	}
	remove_dir(p);
	return ret;
}

static int fill_address(spawn_proc *p)
{
	memset(&p->sa, 0, sizeof p->sa);
	if (p->family == SPAWN_UNIX) {
		if (!p->dir[0]) {
			const char *tmp = getenv("TMPDIR");
			snprintf(p->dir, sizeof p->dir, "%s/fcgikit-test-XXXXXX",
			         tmp && *tmp ? tmp : "/tmp");
			if (!mkdtemp(p->dir)) {
				perror("spawn: mkdtemp");
				p->dir[0] = 0;
				return -1;
			}
		}
		struct sockaddr_un *a = (struct sockaddr_un *)&p->sa;
		a->sun_family = AF_UNIX;
		if ((size_t)snprintf(a->sun_path, sizeof a->sun_path, "%s/app.sock", p->dir) >=
		    sizeof a->sun_path) {
			fprintf(stderr, "spawn: socket path too long\n");
			return -1;
		}
		p->salen = sizeof *a;
		snprintf(p->address, sizeof p->address, "unix:%s", a->sun_path);
		return 0;
	}
	int v6 = p->family == SPAWN_TCP6;
	int port = free_port(v6 ? AF_INET6 : AF_INET);
	if (port <= 0) {
		perror("spawn: no free port");
		return -1;
	}
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&p->sa;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		a->sin6_port = htons((uint16_t)port);
		p->salen = sizeof *a;
		snprintf(p->address, sizeof p->address, "[::1]:%d", port);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&p->sa;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a->sin_port = htons((uint16_t)port);
		p->salen = sizeof *a;
		snprintf(p->address, sizeof p->address, "127.0.0.1:%d", port);
	}
	return 0;
}

static pid_t fork_exec(const spawn_proc *p, const char *prog, const char *const *args,
                       const char *const *env)
{
	char *argv[64];
	size_t n = 0;
	argv[n++] = (char *)prog;
	argv[n++] = (char *)p->address;
	for (size_t i = 0; args && args[i] && n < 63; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	/* Child: die with the test, keep stdout (TAP) clean, get the extra environment. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(126);
	dup2(2, 1);
	signal(SIGPIPE, SIG_DFL);
	for (size_t i = 0; env && env[i]; i++)
		putenv((char *)env[i]);
	execv(prog, argv);
	fprintf(stderr, "spawn: exec %s: %s\n", prog, strerror(errno));
	_exit(127);
}

int spawn_start(spawn_proc *p, const char *prog, spawn_family family, const char *const *args,
                const char *const *env, int timeout_ms)
{
	memset(p, 0, sizeof *p);
	p->family = family;
	if (access(prog, X_OK) < 0) {
		fprintf(stderr, "spawn: %s: %s\n", prog, strerror(errno));
		return -1;
	}
	for (int attempt = 0; attempt < 5; attempt++) {
		if (fill_address(p) < 0)
			goto fail;
		p->reaped = 0;
		p->pid = fork_exec(p, prog, args, env);
		if (p->pid < 0) {
			perror("spawn: fork");
			p->pid = 0;
			goto fail;
		}
		long long deadline = spawn_now_ms() + timeout_ms;
		while (spawn_now_ms() < deadline) {
			if (!spawn_alive(p))
				break;
			int fd = connect_once(p, 100);
			if (fd >= 0) {
				close(fd);
				return 0;
			}
			sleep_ms(10);
		}
		if (spawn_alive(p)) {
			fprintf(stderr, "spawn: %s %s: not accepting after %d ms\n", prog,
			        p->address, timeout_ms);
			goto fail;
		}
		fprintf(stderr, "spawn: %s %s exited early (status 0x%x)%s\n", prog, p->address,
		        p->status, family != SPAWN_UNIX ? ", retrying on another port" : "");
		p->pid = 0;
		if (family == SPAWN_UNIX)
			goto fail;
	}
fail:
	spawn_stop(p, 1000);
	return -1;
}
