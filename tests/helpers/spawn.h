/*
 * spawn.h — start a program (an example such as echo) as a child process listening on a
 * fresh address, wait until it accepts connections, connect to it, and stop it by pid.
 * Every wait is bounded; nothing here blocks without a timeout.
 *
 * The program is run as `PROG ADDRESS ARGS...`, where ADDRESS is what fcgi_app_listen()
 * accepts: "unix:DIR/sock" (DIR a fresh temporary directory), "127.0.0.1:PORT" or
 * "[::1]:PORT" (PORT a port that was free a moment before). Its stdout is sent to stderr,
 * so a test's own stdout (TAP) stays clean.
 */
#ifndef TESTS_SPAWN_H
#define TESTS_SPAWN_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef enum spawn_family {
	SPAWN_UNIX = 1,
	SPAWN_TCP4 = 2,
	SPAWN_TCP6 = 3,
} spawn_family;

typedef struct spawn_proc {
	pid_t pid;  /* 0 when not running */
	int status; /* wait status once reaped (valid when reaped != 0) */
	int reaped;
	spawn_family family;
	char address[160]; /* the ADDRESS argument the program got */
	char dir[128];     /* temporary directory (Unix sockets), removed by spawn_stop */
	struct sockaddr_storage sa;
	socklen_t salen;
} spawn_proc;

/* Starts prog with the address first, then args (NULL-terminated list, may be NULL).
 * env: NULL-terminated "NAME=VALUE" strings set in the child only (may be NULL). Waits up
 * to timeout_ms for the address to accept a connection. Returns 0, or -1 with a reason
 * printed to stderr (the child, if started, is stopped again). */
int spawn_start(spawn_proc *p, const char *prog, spawn_family family, const char *const *args,
                const char *const *env, int timeout_ms);

/* Connects a new socket to the child's address within timeout_ms, with SO_RCVTIMEO and
 * SO_SNDTIMEO set to io_timeout_ms. Returns the fd or -1. */
int spawn_connect(const spawn_proc *p, int timeout_ms, int io_timeout_ms);

/* Whether the child is still running (reaps it when it has exited). */
int spawn_alive(spawn_proc *p);

/* Stops the child: SIGTERM, waits up to timeout_ms, then SIGKILL. Removes the temporary
 * directory. Returns the child's wait status, or -1 if it had to be killed. Safe to call
 * on a spawn_proc that was never started or is already stopped. */
int spawn_stop(spawn_proc *p, int timeout_ms);

/* Kills the child at once (for signal handlers and watchdogs: async-signal-safe). */
void spawn_kill_now(const spawn_proc *p);

/* Whether IPv6 loopback can be bound on this machine. */
int spawn_have_ipv6(void);

/* Milliseconds on a monotonic clock. */
long long spawn_now_ms(void);

/* The directory of the running executable (from /proc/self/exe), into buf. 0 or -1. */
int spawn_self_dir(char *buf, size_t size);

#endif
