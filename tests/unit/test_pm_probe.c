/*
 * test_pm_probe.c — what the kernel shows about a pool (src/pm/probe.c), on real sockets and
 * processes: the accept-queue length of TCP listeners on 127.0.0.1 and ::1 (skipped cleanly
 * without IPv6) and of a Unix listener in a private directory, as clients connect and are
 * accepted; -1 for everything that is not a listening stream socket; the activity of child
 * processes blocked in accept, in poll, in read, spinning, exited and reaped; RSS and CPU
 * time, the latter for a process whose name is full of ") ".
 *
 * Every child is forked here, registered, and killed by pid (SIGKILL) and reaped in the
 * teardown, so a failing assertion leaves nothing running.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pm/probe.h"

/* ---------------------------------------------------------------- helpers */

#define MAX_CHILDREN 8
static pid_t children[MAX_CHILDREN];
static int nchildren;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Forks; the child runs fn(arg) and exits. The parent registers the pid for teardown. */
static pid_t spawn(void (*fn)(int), int arg)
{
	assert_true(nchildren < MAX_CHILDREN);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	children[nchildren++] = pid;
	return pid;
}

/* Forgets a child the test reaped itself. */
static void forget(pid_t pid)
{
	for (int i = 0; i < nchildren; i++)
		if (children[i] == pid)
			children[i] = children[--nchildren];
}

static int kill_children(void **state)
{
	(void)state;
	for (int i = 0; i < nchildren; i++) {
		kill(children[i], SIGKILL);
		while (waitpid(children[i], NULL, 0) < 0 && errno == EINTR)
			;
	}
	nchildren = 0;
	return 0;
}

/* Polls until the queue of fd reads want, for up to 2 s: on loopback the final ACK of a
 * handshake may be processed a moment after connect() returns. Returns the last reading. */
static int wait_queue(pm_probe *p, int fd, int want)
{
	int64_t end = now_ms() + 2000;
	int q;
	while ((q = pm_probe_queue(p, fd)) != want && now_ms() < end)
		sleep_ms(5);
	return q;
}

/* Polls until pid shows activity want, for up to 2 s (a child needs a moment to reach its
 * system call). Returns the last reading. */
static enum pm_proc_activity wait_activity(pid_t pid, enum pm_proc_activity want)
{
	int64_t end = now_ms() + 2000;
	enum pm_proc_activity a;
	while ((a = pm_proc_activity(pid)) != want && now_ms() < end)
		sleep_ms(5);
	return a;
}

/* The lowest free descriptor: equal before and after a call that must not leak one. */
static int lowest_free_fd(void)
{
	int fd = dup(0);
	assert_true(fd >= 0);
	close(fd);
	return fd;
}

/* Listens on a loopback TCP address with backlog 16; *sa gets the bound address. -1 if the
 * family is unavailable here (no IPv6). */
static int tcp_listener(int family, struct sockaddr_storage *sa, socklen_t *salen)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memset(sa, 0, sizeof *sa);
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)sa;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*salen = sizeof *in;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		*salen = sizeof *in6;
	}
	if (bind(fd, (struct sockaddr *)sa, *salen) < 0 ||
	    getsockname(fd, (struct sockaddr *)sa, salen) < 0 || listen(fd, 16) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int tcp_client(const struct sockaddr_storage *sa, socklen_t salen)
{
	int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (const struct sockaddr *)sa, salen), 0);
	return fd;
}

/* The same three-clients-then-accept-one sequence on any listener. */
static void check_queue_sequence(int lfd, int (*client)(const void *), const void *arg)
{
	pm_probe p;
	assert_int_equal(pm_probe_init(&p), 0);
	assert_int_equal(pm_listen_queue(lfd), 0);
	assert_int_equal(pm_probe_queue(&p, lfd), 0);
	int c[3];
	for (int i = 0; i < 3; i++)
		c[i] = client(arg);
	assert_int_equal(wait_queue(&p, lfd, 3), 3);
	assert_int_equal(pm_listen_queue(lfd), 3);
	int a = accept(lfd, NULL, NULL);
	assert_true(a >= 0);
	assert_int_equal(wait_queue(&p, lfd, 2), 2);
	assert_int_equal(pm_listen_queue(lfd), 2);
	/* The accepted connection is no listener. */
	assert_int_equal(pm_probe_queue(&p, a), -1);
	close(a);
	for (int i = 0; i < 3; i++)
		close(c[i]);
	pm_probe_close(&p);
	assert_int_equal(p.nl, -1);
	pm_probe_close(&p); /* twice is harmless */
	pm_probe_close(NULL);
}

typedef struct tcp_target {
	struct sockaddr_storage sa;
	socklen_t len;
} tcp_target;

static int tcp_client_cb(const void *arg)
{
	const tcp_target *t = arg;
	return tcp_client(&t->sa, t->len);
}

static int unix_client_cb(const void *arg)
{
	const struct sockaddr_un *sun = arg;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (const struct sockaddr *)sun, sizeof *sun), 0);
	return fd;
}

/* A private directory for Unix sockets, removed by the caller. */
static char tmpdir[64];
static char sockpath[128];

static int unix_listener(int type, int do_listen, struct sockaddr_un *sun)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/fk-pm-probe-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(sockpath, sizeof sockpath, "%s/s", tmpdir);
	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, sockpath, strlen(sockpath) + 1);
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)sun, sizeof *sun), 0);
	if (do_listen)
		assert_int_equal(listen(fd, 16), 0);
	return fd;
}

static void unix_cleanup(int fd)
{
	close(fd);
	unlink(sockpath);
	rmdir(tmpdir);
}

/* ---------------------------------------------------------------- listen queue */

static void test_tcp4_queue(void **state)
{
	(void)state;
	tcp_target t;
	int lfd = tcp_listener(AF_INET, &t.sa, &t.len);
	assert_true(lfd >= 0);
	check_queue_sequence(lfd, tcp_client_cb, &t);
	close(lfd);
}

static void test_tcp6_queue(void **state)
{
	(void)state;
	tcp_target t;
	int lfd = tcp_listener(AF_INET6, &t.sa, &t.len);
	if (lfd < 0) {
		skip(); /* no IPv6 (or no ::1) here */
		return;
	}
	check_queue_sequence(lfd, tcp_client_cb, &t);
	close(lfd);
}

static void test_unix_queue(void **state)
{
	(void)state;
	struct sockaddr_un sun;
	int lfd = unix_listener(SOCK_STREAM, 1, &sun);
	if (pm_listen_queue(lfd) < 0 && (errno == EPROTONOSUPPORT || errno == ENOENT)) {
		/* Kernel without unix_diag (or sock_diag): nothing to test. */
		unix_cleanup(lfd);
		skip();
		return;
	}
	check_queue_sequence(lfd, unix_client_cb, &sun);
	unix_cleanup(lfd);
}

/* A persistent probe keeps one netlink socket across many queries, matches replies by
 * sequence number, and the one-shot form leaks nothing. */
static void test_unix_probe_reuse(void **state)
{
	(void)state;
	struct sockaddr_un sun;
	int lfd = unix_listener(SOCK_STREAM, 1, &sun);
	int c = unix_client_cb(&sun);

	int before = lowest_free_fd();
	for (int i = 0; i < 50; i++)
		assert_int_equal(pm_listen_queue(lfd), 1);
	assert_int_equal(lowest_free_fd(), before);

	pm_probe p;
	pm_probe_init(&p);
	assert_int_equal(p.nl, -1);
	assert_int_equal(pm_probe_queue(&p, lfd), 1);
	int nl = p.nl;
	assert_true(nl >= 0);
	assert_true(fcntl(nl, F_GETFD) & FD_CLOEXEC); /* never inherited by a worker */
	for (int i = 0; i < 200; i++)
		assert_int_equal(pm_probe_queue(&p, lfd), 1);
	assert_int_equal(p.nl, nl);
	/* A failed query (not a listener) leaves the probe usable. */
	assert_int_equal(pm_probe_queue(&p, c), -1);
	assert_int_equal(pm_probe_queue(&p, lfd), 1);
	pm_probe_close(&p);
	assert_int_equal(lowest_free_fd(), before);

	/* TCP needs no netlink socket at all. */
	tcp_target t;
	int tfd = tcp_listener(AF_INET, &t.sa, &t.len);
	pm_probe_init(&p);
	assert_int_equal(pm_probe_queue(&p, tfd), 0);
	assert_int_equal(p.nl, -1);
	close(tfd);
	close(c);
	unix_cleanup(lfd);
}

static void test_not_a_listener(void **state)
{
	(void)state;
	errno = 0;
	assert_int_equal(pm_listen_queue(-1), -1);
	assert_int_equal(errno, EBADF);

	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	errno = 0;
	assert_int_equal(pm_listen_queue(pfd[0]), -1);
	assert_int_equal(errno, ENOTSOCK);
	close(pfd[0]);
	close(pfd[1]);

	int fd = socket(AF_INET, SOCK_STREAM, 0); /* not listening */
	assert_true(fd >= 0);
	assert_int_equal(pm_listen_queue(fd), -1);
	close(fd);

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(pm_listen_queue(fd), -1);
	close(fd);

	struct sockaddr_un sun;
	fd = unix_listener(SOCK_STREAM, 0, &sun); /* bound, not listening */
	assert_int_equal(pm_listen_queue(fd), -1);
	unix_cleanup(fd);
	fd = unix_listener(SOCK_DGRAM, 0, &sun);
	assert_int_equal(pm_listen_queue(fd), -1);
	unix_cleanup(fd);

	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(pm_listen_queue(sv[0]), -1);
	close(sv[0]);
	close(sv[1]);
}

/* ---------------------------------------------------------------- process activity */

static void test_activity_parse(void **state)
{
	(void)state;
	char buf[128];
	assert_int_equal(pm_proc_activity_parse("running\n"), PM_PROC_RUNNING);
	assert_int_equal(pm_proc_activity_parse("-1 0x7ffc8a5a1e48 0x7f2b9c8e5a9d\n"),
	                 PM_PROC_RUNNING);
	static const long waits[] = {
	        SYS_accept4,    SYS_ppoll, SYS_pselect6, SYS_epoll_pwait,
#ifdef SYS_accept
	        SYS_accept,
#endif
#ifdef SYS_poll
	        SYS_poll,
#endif
#ifdef SYS_select
	        SYS_select,
#endif
#ifdef SYS_epoll_wait
	        SYS_epoll_wait,
#endif
	};
	for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
		snprintf(buf, sizeof buf, "%ld 0x3 0x0 0x0 0x80800 0x0 0x0 0x7ffe 0x7f12\n",
		         waits[i]);
		assert_int_equal(pm_proc_activity_parse(buf), PM_PROC_WAITING);
	}
	static const long busy[] = {SYS_read, SYS_write, SYS_futex, SYS_nanosleep, SYS_wait4};
	for (size_t i = 0; i < sizeof busy / sizeof busy[0]; i++) {
		snprintf(buf, sizeof buf, "%ld 0x3 0x0 0x0 0x0 0x0 0x0 0x7ffe 0x7f12\n", busy[i]);
		assert_int_equal(pm_proc_activity_parse(buf), PM_PROC_RUNNING);
	}
	assert_int_equal(pm_proc_activity_parse(""), PM_PROC_UNKNOWN);
	assert_int_equal(pm_proc_activity_parse("abc"), PM_PROC_UNKNOWN);
	assert_int_equal(pm_proc_activity_parse("-"), PM_PROC_UNKNOWN);
	assert_int_equal(pm_proc_activity_parse("-2 0x0 0x0"), PM_PROC_UNKNOWN);
	assert_int_equal(pm_proc_activity_parse("43x 0x0"), PM_PROC_UNKNOWN);
	assert_int_equal(pm_proc_activity_parse("99999999999999999999999999 0x0"), PM_PROC_UNKNOWN);
}

static int child_lfd = -1;

static void child_accept(int lfd) { accept(lfd, NULL, NULL); }

static void child_poll(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	poll(&pfd, 1, -1);
}

static void child_read(int fd)
{
	char c;
	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
}

/* Tells the parent it is running, then spins in user space forever. */
static void child_spin(int wfd)
{
	if (write(wfd, "x", 1) != 1)
		_exit(1);
	for (volatile unsigned long n = 0;; n++)
		;
}

static void test_activity_waiting_in_accept(void **state)
{
	(void)state;
	tcp_target t;
	child_lfd = tcp_listener(AF_INET, &t.sa, &t.len);
	assert_true(child_lfd >= 0);
	pid_t pid = spawn(child_accept, child_lfd);
	assert_int_equal(wait_activity(pid, PM_PROC_WAITING), PM_PROC_WAITING);
	/* A connection wakes it: it returns from accept and exits -> gone. */
	int c = tcp_client(&t.sa, t.len);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	forget(pid);
	assert_int_equal(pm_proc_activity(pid), PM_PROC_GONE);
	close(c);
	close(child_lfd);
}

static void test_activity_poll_and_read(void **state)
{
	(void)state;
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t poller = spawn(child_poll, pfd[0]);
	pid_t reader = spawn(child_read, pfd[0]);
	assert_int_equal(wait_activity(poller, PM_PROC_WAITING), PM_PROC_WAITING);
	/* Blocked, but in read(): that is work in progress, not waiting for a connection. Give
	 * it time to reach read(), then it must keep reading RUNNING. */
	sleep_ms(100);
	for (int i = 0; i < 10; i++)
		assert_int_equal(pm_proc_activity(reader), PM_PROC_RUNNING);
	close(pfd[0]);
	close(pfd[1]);
}

static void test_activity_spinning(void **state)
{
	(void)state;
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = spawn(child_spin, pfd[1]);
	char c;
	assert_int_equal(read(pfd[0], &c, 1), 1);
	/* On a CPU it reads "running"; preempted, "-1": RUNNING both ways. */
	for (int i = 0; i < 20; i++) {
		assert_int_equal(pm_proc_activity(pid), PM_PROC_RUNNING);
		sleep_ms(2);
	}
	close(pfd[0]);
	close(pfd[1]);
}

static void exit_at_once(int code) { _exit(code); }

static void test_activity_gone(void **state)
{
	(void)state;
	pid_t pid = spawn(exit_at_once, 0);
	/* Exited but not reaped: a zombie is gone too. */
	siginfo_t si;
	memset(&si, 0, sizeof si);
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(pm_proc_activity(pid), PM_PROC_GONE);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	forget(pid);
	assert_int_equal(pm_proc_activity(pid), PM_PROC_GONE);
	/* Beyond any pid_max (at most 2^22). */
	assert_int_equal(pm_proc_activity(0x7ffffff0), PM_PROC_GONE);
	assert_int_equal(pm_proc_activity(0), PM_PROC_UNKNOWN);
	assert_int_equal(pm_proc_activity(-5), PM_PROC_UNKNOWN);
}

/* ---------------------------------------------------------------- RSS and CPU */

static void test_rss(void **state)
{
	(void)state;
	long before = -1, after = -1;
	assert_int_equal(pm_proc_rss_kb(getpid(), &before), 0);
	assert_true(before > 0);
	size_t n = 64u << 20;
	char *big = malloc(n);
	assert_non_null(big);
	memset(big, 1, n); /* touch every page */
	assert_int_equal(pm_proc_rss_kb(getpid(), &after), 0);
	/* 64 MiB touched; allow for pages the allocator already had resident. */
	if (after - before < 32 * 1024)
		fail_msg("rss %ld kB -> %ld kB after touching 64 MiB", before, after);
	free(big);

	errno = 0;
	assert_int_equal(pm_proc_rss_kb(0x7ffffff0, &after), -1);
	assert_int_equal(errno, ENOENT);
}

static int64_t cputime_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Renames itself so that /proc/PID/stat reads "(x) R 1 (y) 2)" — a naive parser that stops
 * at the first ')' reads the wrong fields — burns 300 ms of CPU, reports, and sleeps. */
static void child_cpu(int wfd)
{
	prctl(PR_SET_NAME, "x) R 1 (y) 2", 0, 0, 0);
	int64_t end = cputime_ms() + 300;
	while (cputime_ms() < end)
		;
	if (write(wfd, "x", 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

static void test_cpu(void **state)
{
	(void)state;
	int64_t a = -1, b = -1;
	assert_int_equal(pm_proc_cpu_ms(getpid(), &a), 0);
	assert_true(a >= 0);
	int64_t end = cputime_ms() + 250;
	while (cputime_ms() < end)
		;
	assert_int_equal(pm_proc_cpu_ms(getpid(), &b), 0);
	if (b - a < 150 || b - a > 5000)
		fail_msg("cpu %lld ms -> %lld ms after spinning 250 ms", (long long)a,
		         (long long)b);

	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = spawn(child_cpu, pfd[1]);
	char c;
	assert_int_equal(read(pfd[0], &c, 1), 1);
	char path[64], comm[64] = "";
	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(comm, sizeof comm, f));
	fclose(f);
	assert_string_equal(comm, "x) R 1 (y) 2\n");
	int64_t ms = -1;
	assert_int_equal(pm_proc_cpu_ms(pid, &ms), 0);
	if (ms < 200 || ms > 5000)
		fail_msg("child used %lld ms, want about 300", (long long)ms);
	/* The child is in pause(): blocked, not waiting for work. */
	assert_int_equal(wait_activity(pid, PM_PROC_RUNNING), PM_PROC_RUNNING);
	close(pfd[0]);
	close(pfd[1]);

	errno = 0;
	assert_int_equal(pm_proc_cpu_ms(0x7ffffff0, &ms), -1);
	assert_int_equal(errno, ENOENT);
}

int main(void)
{
	cmocka_set_message_output(CM_OUTPUT_TAP);
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_tcp4_queue, kill_children),
	        cmocka_unit_test_teardown(test_tcp6_queue, kill_children),
	        cmocka_unit_test_teardown(test_unix_queue, kill_children),
	        cmocka_unit_test_teardown(test_unix_probe_reuse, kill_children),
	        cmocka_unit_test_teardown(test_not_a_listener, kill_children),
	        cmocka_unit_test_teardown(test_activity_parse, kill_children),
	        cmocka_unit_test_teardown(test_activity_waiting_in_accept, kill_children),
	        cmocka_unit_test_teardown(test_activity_poll_and_read, kill_children),
	        cmocka_unit_test_teardown(test_activity_spinning, kill_children),
	        cmocka_unit_test_teardown(test_activity_gone, kill_children),
	        cmocka_unit_test_teardown(test_rss, kill_children),
	        cmocka_unit_test_teardown(test_cpu, kill_children),
	};
	return cmocka_run_group_tests_name("pm_probe", tests, NULL, NULL);
}
