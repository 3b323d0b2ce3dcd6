/* probe.c — accept-queue length of a pool's listening socket (TCP_INFO, sock_diag) and what a
 * worker is doing, how big it is and how much CPU it has used (/proc). Contracts in probe.h. */
#include "pm/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

/* How long to wait for the kernel's sock_diag reply; it answers synchronously, so this only
 * bounds a misbehaving or overloaded kernel. */
#define PM_NL_TIMEOUT_MS 1000
/* At most this many datagrams are read per query: the one reply plus stale replies to
 * earlier queries that timed out on a persistent socket. */
#define PM_NL_MAX_RECV 8
/* The reply is a unix_diag_msg and one RQLEN attribute (< 64 bytes); this is ample. */
#define PM_NL_BUF 4096
/* /proc/PID/stat is at most ~52 numbers and a 16-byte comm, well under 1 KiB. */
#define PM_PROC_BUF 2048

/* ---------------------------------------------------------------- listen queue: TCP */

static int pm_tcp_queue(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	memset(&ti, 0, sizeof ti);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -1;
	if (len < offsetof(struct tcp_info, tcpi_unacked) + sizeof ti.tcpi_unacked) {
		errno = EPROTO;
		return -1;
	}
	if (ti.tcpi_state != TCP_LISTEN) {
		errno = EINVAL;
		return -1;
	}
	/* For a listener tcpi_unacked is sk_ack_backlog: established, not yet accepted. */
	if (ti.tcpi_unacked > INT_MAX)
		return INT_MAX;
	return (int)ti.tcpi_unacked;
}

/* ---------------------------------------------------------------- listen queue: Unix */

static int pm_nl_open(void)
{
	int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return -1;
	struct timeval tv = {.tv_sec = PM_NL_TIMEOUT_MS / 1000,
	                     .tv_usec = (PM_NL_TIMEOUT_MS % 1000) * 1000};
	if (setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
		int e = errno;
		close(nl);
		errno = e;
		return -1;
	}
	return nl;
}

/* Reads the RQLEN attribute from one SOCK_DIAG_BY_FAMILY reply about inode ino. */
static int pm_unix_reply(const struct nlmsghdr *h, uint32_t ino)
{
	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg))) {
		errno = EPROTO;
		return -1;
	}
	const struct unix_diag_msg *m = NLMSG_DATA(h);
	if (m->udiag_ino != ino) {
		errno = EPROTO;
		return -1;
	}
	if (m->udiag_state != TCP_LISTEN) { /* connected or unconnected: no accept queue */
		errno = EINVAL;
		return -1;
	}
	/* The attributes follow the message, each aligned; RTA_OK checks every length. */
	int alen = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
	const struct rtattr *a =
	        (const struct rtattr *)(const void *)((const char *)m + NLMSG_ALIGN(sizeof *m));
	for (; RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
		if (a->rta_type != UNIX_DIAG_RQLEN ||
		    RTA_PAYLOAD(a) < sizeof(struct unix_diag_rqlen))
			continue;
		struct unix_diag_rqlen rq;
		memcpy(&rq, RTA_DATA(a), sizeof rq);
		return rq.udiag_rqueue > INT_MAX ? INT_MAX : (int)rq.udiag_rqueue;
	}
	errno = EPROTO;
	return -1;
}

/* One exact UNIX_DIAG lookup of inode ino on netlink socket nl; seq tags the request so
 * replies to earlier, timed-out requests are skipped. */
static int pm_unix_query(int nl, uint32_t seq, uint32_t ino)
{
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req req;
	} msg;
	memset(&msg, 0, sizeof msg);
	msg.nlh.nlmsg_len = NLMSG_LENGTH(sizeof msg.req);
	msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	/* No NLM_F_DUMP: the kernel then looks the one inode up (unix_diag_get_exact) instead of
	 * walking every Unix socket; the states mask is only honoured by dumps but is set to say
	 * what we want. */
	msg.nlh.nlmsg_flags = NLM_F_REQUEST;
	msg.nlh.nlmsg_seq = seq;
	msg.req.sdiag_family = AF_UNIX;
	msg.req.udiag_states = 1u << TCP_LISTEN;
	msg.req.udiag_ino = ino;
	msg.req.udiag_show = UDIAG_SHOW_RQLEN;
	/* No cookie known: the kernel skips the cookie check only for all-ones. */
	msg.req.udiag_cookie[0] = ~0u;
	msg.req.udiag_cookie[1] = ~0u;

	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	ssize_t n;
	do
		n = sendto(nl, &msg, msg.nlh.nlmsg_len, 0, (struct sockaddr *)&kernel,
		           sizeof kernel);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;

	/* Aligned for struct nlmsghdr, which the reply is walked as. */
	union {
		struct nlmsghdr h;
		char b[PM_NL_BUF];
	} buf;
	for (int tries = 0; tries < PM_NL_MAX_RECV; tries++) {
		struct sockaddr_nl from;
		socklen_t fromlen = sizeof from;
		memset(&from, 0, sizeof from);
		n = recvfrom(nl, buf.b, sizeof buf.b, MSG_TRUNC, (struct sockaddr *)&from,
		             &fromlen);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				errno = ETIMEDOUT;
			return -1;
		}
		if ((size_t)n > sizeof buf.b) { /* truncated: cannot be our small reply */
			errno = EMSGSIZE;
			return -1;
		}
		if (from.nl_family != AF_NETLINK || from.nl_pid != 0)
			continue; /* not from the kernel: another process may write to our port */
		/* Walk the datagram's messages by hand (NLMSG_OK mixes signed and unsigned);
		 * every length is checked against what was received before it is used. */
		size_t total = (size_t)n, off = 0;
		while (total - off >= sizeof(struct nlmsghdr)) {
			const struct nlmsghdr *h =
			        (const struct nlmsghdr *)(const void *)(buf.b + off);
			if (h->nlmsg_len < sizeof *h || h->nlmsg_len > total - off)
				break;
			off += NLMSG_ALIGN(h->nlmsg_len);
			if (off > total)
				off = total;
			/* (nlmsg_pid of a reply is our own port id, not the sender's.) */
			if (h->nlmsg_seq != seq)
				continue; /* a stale reply to an earlier, timed-out query */
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(h);
				if (h->nlmsg_len < NLMSG_LENGTH(sizeof *e) || e->error == 0)
					errno = EPROTO;
				else
					errno = -e->error; /* ENOENT: no such socket */
				return -1;
			}
			if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY)
				return pm_unix_reply(h, ino);
			if (h->nlmsg_type == NLMSG_DONE) {
				errno = ENOENT;
				return -1;
			}
		}
	}
	errno = ETIMEDOUT;
	return -1;
}

static int pm_unix_queue(pm_probe *p, int fd)
{
	int listening = 0;
	socklen_t len = sizeof listening;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
		return -1;
	if (!listening) { /* saves a netlink round trip for the common mistake */
		errno = EINVAL;
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	if (st.st_ino > UINT32_MAX) { /* socket inodes are 32-bit; cannot be asked for */
		errno = EOVERFLOW;
		return -1;
	}
	uint32_t ino = (uint32_t)st.st_ino;

	if (!p) {
		int nl = pm_nl_open();
		if (nl < 0)
			return -1;
		int r = pm_unix_query(nl, 1, ino);
		int e = errno;
		close(nl);
		errno = e;
		return r;
	}
	if (p->nl < 0) {
		p->nl = pm_nl_open();
		if (p->nl < 0)
			return -1;
	}
	if (++p->seq == 0) /* 0 is what a zeroed header carries; never use it */
		p->seq = 1;
	return pm_unix_query(p->nl, p->seq, ino);
}

/* ---------------------------------------------------------------- listen queue: API */

int pm_probe_init(pm_probe *p)
{
	p->nl = -1;
	p->seq = 0;
	return 0;
}

void pm_probe_close(pm_probe *p)
{
	if (!p)
		return;
	if (p->nl >= 0)
		close(p->nl);
	p->nl = -1;
}

int pm_probe_queue(pm_probe *p, int fd)
{
	int domain, type, proto;
	socklen_t len = sizeof domain;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return -1;
	len = sizeof type;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -1;
	if (type != SOCK_STREAM) {
		errno = EINVAL;
		return -1;
	}
	switch (domain) {
	case AF_INET:
	case AF_INET6:
		/* SCTP and MPTCP are SOCK_STREAM too; only TCP's TCP_INFO means this. */
		len = sizeof proto;
		if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0)
			return -1;
		if (proto != IPPROTO_TCP) {
			errno = EPROTONOSUPPORT;
			return -1;
		}
		return pm_tcp_queue(fd);
	case AF_UNIX:
		return pm_unix_queue(p, fd);
	default:
		errno = EAFNOSUPPORT;
		return -1;
	}
}

int pm_listen_queue(int fd) { return pm_probe_queue(NULL, fd); }

/* ---------------------------------------------------------------- /proc */

/* Reads /proc/PID/NAME into buf (NUL-terminated, truncated to size - 1). Returns the length,
 * or -1 with errno; ENOENT and ESRCH both mean the process is gone. */
static ssize_t pm_read_proc(pid_t pid, const char *name, char *buf, size_t size)
{
	if (pid <= 0) {
		errno = EINVAL;
		return -1;
	}
	char path[64];
	snprintf(path, sizeof path, "/proc/%ld/%s", (long)pid, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t got = 0;
	while (got < size - 1) {
		ssize_t n = read(fd, buf + got, size - 1 - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

/* Is nr a system call a FastCGI worker blocks in while it waits for the next connection?
 * Numbers from <sys/syscall.h> for the architecture compiled for; an architecture lacking
 * one (aarch64 has no poll, select or epoll_wait: only the p- variants) leaves it out. */
static int pm_syscall_waits(long nr)
{
	static const long waits[] = {
#ifdef SYS_accept
	        SYS_accept,
#endif
#ifdef SYS_accept4
	        SYS_accept4,
#endif
#ifdef SYS_poll
	        SYS_poll,
#endif
#ifdef SYS_ppoll
	        SYS_ppoll,
#endif
#ifdef SYS_select
	        SYS_select,
#endif
#ifdef SYS__newselect
	        SYS__newselect,
#endif
#ifdef SYS_pselect6
	        SYS_pselect6,
#endif
#ifdef SYS_epoll_wait
	        SYS_epoll_wait,
#endif
#ifdef SYS_epoll_pwait
	        SYS_epoll_pwait,
#endif
#ifdef SYS_epoll_pwait2
	        SYS_epoll_pwait2,
#endif
	        -1, /* keeps the array non-empty whatever is defined; never matches nr >= 0 */
	};
	for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++)
		if (waits[i] == nr)
			return 1;
	return 0;
}

/* The numbers this was written against, so a header surprise fails the build, not the
 * sampling. */
#if defined(__x86_64__) && !defined(__ILP32__)
_Static_assert(SYS_accept == 43 && SYS_accept4 == 288 && SYS_poll == 7 && SYS_ppoll == 271 &&
                       SYS_select == 23 && SYS_pselect6 == 270 && SYS_epoll_wait == 232 &&
                       SYS_epoll_pwait == 281,
               "x86_64 system call numbers");
#elif defined(__aarch64__)
_Static_assert(SYS_accept == 202 && SYS_accept4 == 242 && SYS_ppoll == 73 && SYS_pselect6 == 72 &&
                       SYS_epoll_pwait == 22,
               "aarch64 system call numbers");
#endif

enum pm_proc_activity pm_proc_activity_parse(const char *text)
{
	/* The kernel prints "running" when the task is on a CPU at the moment of the read (its
	 * registers cannot be sampled); otherwise the number of the system call it is in, or -1
	 * when it is not in one (runnable in user space, page fault, stopped). */
	if (strncmp(text, "running", 7) == 0)
		return PM_PROC_RUNNING;
	const char *s = text;
	int neg = 0;
	if (*s == '-') {
		neg = 1;
		s++;
	}
	if (*s < '0' || *s > '9')
		return PM_PROC_UNKNOWN;
	long nr = 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (nr > (LONG_MAX - 9) / 10)
			return PM_PROC_UNKNOWN;
		nr = nr * 10 + (*s - '0');
	}
	if (*s != ' ' && *s != '\n' && *s != '\0')
		return PM_PROC_UNKNOWN;
	if (neg)
		return nr == 1 ? PM_PROC_RUNNING : PM_PROC_UNKNOWN;
	return pm_syscall_waits(nr) ? PM_PROC_WAITING : PM_PROC_RUNNING;
}

/* Points at the fields after the command name in a /proc/PID/stat line: the comm is
 * "(...)" and may itself hold ") " sequences, so the last ')' ends it. */
static const char *pm_stat_fields(const char *buf)
{
	const char *rp = strrchr(buf, ')');
	if (!rp)
		return NULL;
	rp++;
	while (*rp == ' ')
		rp++;
	return rp;
}

enum pm_proc_activity pm_proc_activity(pid_t pid)
{
	char buf[PM_PROC_BUF];
	if (pm_read_proc(pid, "syscall", buf, sizeof buf) < 0)
		return errno == ENOENT || errno == ESRCH ? PM_PROC_GONE : PM_PROC_UNKNOWN;
	enum pm_proc_activity a = pm_proc_activity_parse(buf);
	if (a == PM_PROC_WAITING)
		return a; /* a zombie is in no system call */
	/* An exited, unreaped process still has /proc entries and shows "-1" or "running"; its
	 * state letter tells. */
	if (pm_read_proc(pid, "stat", buf, sizeof buf) < 0)
		return errno == ENOENT || errno == ESRCH ? PM_PROC_GONE : a;
	const char *f = pm_stat_fields(buf);
	if (f && (*f == 'Z' || *f == 'X' || *f == 'x'))
		return PM_PROC_GONE;
	return a;
}

/* Parses an unsigned decimal at *s, skipping leading spaces; advances *s past it. */
static int pm_parse_u64(const char **s, uint64_t *v)
{
	const char *p = *s;
	while (*p == ' ')
		p++;
	if (*p < '0' || *p > '9')
		return -1;
	uint64_t x = 0;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*s = p;
	*v = x;
	return 0;
}

int pm_proc_rss_kb(pid_t pid, long *rss_kb)
{
	char buf[256];
	if (pm_read_proc(pid, "statm", buf, sizeof buf) < 0)
		return -1;
	/* "size resident shared text lib data dt", in pages. */
	const char *s = buf;
	uint64_t size, resident;
	if (pm_parse_u64(&s, &size) < 0 || pm_parse_u64(&s, &resident) < 0) {
		errno = EPROTO;
		return -1;
	}
	long page = sysconf(_SC_PAGESIZE);
	if (page < 1024)
		page = 4096;
	uint64_t kb_per_page = (uint64_t)page / 1024;
	if (resident > (uint64_t)LONG_MAX / kb_per_page) {
		errno = EOVERFLOW;
		return -1;
	}
	*rss_kb = (long)(resident * kb_per_page);
	return 0;
}

int pm_proc_cpu_ms(pid_t pid, int64_t *cpu_ms)
{
	char buf[PM_PROC_BUF];
	if (pm_read_proc(pid, "stat", buf, sizeof buf) < 0)
		return -1;
	const char *s = pm_stat_fields(buf);
	if (!s || !*s) {
		errno = EPROTO;
		return -1;
	}
	/* s is at field 3 (state, one letter); utime and stime are fields 14 and 15. */
	s++;
	uint64_t v = 0, ticks = 0;
	for (int field = 4; field <= 15; field++) {
		/* ppid, pgrp, session, tty_nr and tpgid are signed (tpgid is -1 without a
		 * terminal); only their sign needs skipping, the values are not used. */
		while (*s == ' ')
			s++;
		if (field <= 8 && *s == '-')
			s++;
		if (pm_parse_u64(&s, &v) < 0) {
			errno = EPROTO;
			return -1;
		}
		if (field >= 14) {
			if (v > UINT64_MAX - ticks) {
				errno = EOVERFLOW;
				return -1;
			}
			ticks += v;
		}
	}
	long hz = sysconf(_SC_CLK_TCK);
	if (hz <= 0)
		hz = 100;
	/* Whole seconds and the remainder apart, so ticks * 1000 cannot overflow. */
	uint64_t sec = ticks / (uint64_t)hz, rem = ticks % (uint64_t)hz;
	if (sec > (uint64_t)INT64_MAX / 1000 - 1) {
		errno = EOVERFLOW;
		return -1;
	}
	*cpu_ms = (int64_t)(sec * 1000 + rem * 1000 / (uint64_t)hz);
	return 0;
}
