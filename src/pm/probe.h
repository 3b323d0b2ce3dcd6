/* probe.h — what the kernel shows about a pool's listening socket and its workers, for
 * `fcgikit pm` (Linux only). Nothing here attaches to, signals or stops a process: everything is
 * read from getsockopt, a sock_diag netlink query and /proc, so it works for any FastCGI
 * program (php-cgi, libfcgi programs, Perl FCGI) whether or not it reports its own state.
 *
 * Every call is bounded: a fixed-size buffer per read, one netlink request per query with a
 * receive timeout, no allocation. All descriptors are opened O_CLOEXEC / SOCK_CLOEXEC, so
 * none leaks into a worker the manager forks. Not async-signal-safe; thread-safe except that
 * one pm_probe must not be used by two threads at once. */
#ifndef FK_PM_PROBE_H
#define FK_PM_PROBE_H

#include <stdint.h>
#include <sys/types.h>

/* ---------------------------------------------------------------- listen queue */

/* A probe context: holds the NETLINK_SOCK_DIAG socket used for Unix listeners, so a manager
 * sampling every pool every second does not open and close a socket each time. */
typedef struct pm_probe {
	int nl;       /* netlink socket, -1 while not open (opened on first Unix query) */
	uint32_t seq; /* sequence number of the last request, to skip stale replies */
} pm_probe;

/* Makes p empty; opens nothing (the netlink socket is opened on first use, so a manager with
 * only TCP pools never has one). Always returns 0. */
int pm_probe_init(pm_probe *p);

/* Closes the netlink socket, if any; p may be initialised again. p may be NULL. */
void pm_probe_close(pm_probe *p);

/* The number of connections waiting in the accept queue of the listening socket fd: fully
 * established connections that no worker has accepted yet. -1 if unknown: fd is not a
 * listening TCP (IPv4/IPv6) or Unix stream socket, or the kernel would not say (errno tells).
 *
 * TCP: getsockopt(TCP_INFO). For a socket in LISTEN state the kernel reports the current
 * accept-queue length (sk_ack_backlog) in tcpi_unacked and the backlog limit in tcpi_sacked,
 * instead of their usual meanings (the same numbers ss(8) shows as Recv-Q / Send-Q).
 * Connections still in the handshake (SYN_RECV) are not counted. A full queue holds
 * backlog + 1 (the kernel refuses only when the count exceeds the backlog).
 *
 * Unix stream: one NETLINK_SOCK_DIAG / UNIX_DIAG exact lookup by the socket's inode
 * (fstat st_ino) with UDIAG_SHOW_RQLEN; for a listener udiag_rqueue is the number of
 * connections queued (each connect() queues one at once; there is no handshake). Needs
 * unix_diag, built in or auto-loaded on mainstream kernels; without it this returns -1.
 *
 * The socket is looked up in the network namespace of the netlink socket, i.e. the
 * caller's; a listener inherited from another namespace is not found (-1). Waits at most
 * about a second for the kernel's reply (it answers at once in practice).
 *
 * p may be NULL: a netlink socket is then opened and closed for this call alone (two extra
 * system calls and a small allocation in the kernel: fine for a `status` command, wasteful
 * for a sampler that runs every second — keep a pm_probe for that). */
int pm_probe_queue(pm_probe *p, int fd);

/* pm_probe_queue(NULL, fd). */
int pm_listen_queue(int fd);

/* ---------------------------------------------------------------- processes */

/* What a process is doing, as read from /proc/PID/syscall. */
enum pm_proc_activity {
	PM_PROC_GONE,    /* no such process, or it has exited (a zombie waiting to be reaped) */
	PM_PROC_UNKNOWN, /* the kernel would not say (permission, no /proc, odd format) */
	PM_PROC_WAITING, /* blocked in accept/accept4/poll/ppoll/select/pselect6/epoll_wait/
	                    epoll_pwait/epoll_pwait2: waiting for work */
	PM_PROC_RUNNING, /* anything else: on a CPU, runnable, or blocked in another system call */
};

/* Samples what pid is doing now. This is how the manager tells idle workers from busy ones
 * for programs that do not report — an instant's sample, so a caller smooths over several.
 *
 * Caveats, all inherent in what the kernel shows:
 *  - /proc/PID/syscall is the thread-group leader's (the main thread's). A multithreaded
 *    worker whose main thread waits in accept while other threads serve looks WAITING; read
 *    /proc/PID/task/TID/syscall per thread for those (not done here).
 *  - poll/select/epoll also serve waits inside a request (php-cgi polls the web server's
 *    connection for the request body; a program may poll its database), so a worker briefly
 *    looks idle while busy. accept/accept4 is unambiguous.
 *  - Syscall numbers are the native ABI's (x86_64 or aarch64); a 32-bit (compat) worker under
 *    a 64-bit kernel shows i386/arm numbers and is misread. Other architectures: numbers come
 *    from <sys/syscall.h> wherever they are defined.
 *  - Reading it needs ptrace-read access (PTRACE_MODE_ATTACH): same user, or CAP_SYS_PTRACE;
 *    under Yama ptrace_scope=1 the manager may read its own children (the workers). Denied ->
 *    PM_PROC_UNKNOWN.
 *  - A process stopped by a signal (SIGSTOP, a debugger) keeps showing the call it was
 *    interrupted in, so one stopped in accept still reads WAITING; "-1" (not in a system
 *    call: preempted in user space, page fault) reads RUNNING.
 *  - pid <= 0 -> PM_PROC_UNKNOWN.
 * Costs one open/read/close of /proc/PID/syscall, plus /proc/PID/stat when the answer is not
 * WAITING (to tell a zombie, which is GONE, from a running process). */
enum pm_proc_activity pm_proc_activity(pid_t pid);

/* Classifies the text of a /proc/PID/syscall file: "running", "-1 SP PC", or
 * "NR ARG1 .. ARG6 SP PC" (NR decimal). Returns WAITING, RUNNING or UNKNOWN (unparsable);
 * never GONE. Exposed for tests; pm_proc_activity adds the zombie check. */
enum pm_proc_activity pm_proc_activity_parse(const char *text);

/* Resident set size of pid in KiB (/proc/PID/statm: resident pages × page size / 1024).
 * 0, or -1 with errno (ENOENT: no such process; EINVAL: pid <= 0). */
int pm_proc_rss_kb(pid_t pid, long *rss_kb);

/* CPU time pid has used, user + system, in milliseconds (/proc/PID/stat utime + stime, in
 * clock ticks, so the resolution is 1000 / sysconf(_SC_CLK_TCK) ms, normally 10). The fields
 * are read after the last ')' because the command name may contain spaces and parentheses.
 * Children's times are not included. 0, or -1 with errno (ENOENT: no such process; EPROTO:
 * unexpected format; EINVAL: pid <= 0). */
int pm_proc_cpu_ms(pid_t pid, int64_t *cpu_ms);

#endif
