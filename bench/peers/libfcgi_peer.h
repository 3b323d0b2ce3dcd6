/* libfcgi_peer.h — the shared main() of the reference programs written against Debian's
 * libfcgi (fcgi2): bench/peers/libfcgi_echo.c and bench/peers/libfcgi_hello.c.
 *
 *   PROG [ADDRESS] [--threads N] [N]
 *
 * ADDRESS is fcgikit's form (`unix:/path`, `HOST:PORT`, `:PORT`); without it the listening
 * socket is fd 0, as a web server or spawner hands it. A bare number after ADDRESS is taken
 * as the thread count too (older callers pass it that way). Default: 1 thread.
 *
 * This is the classic libfcgi style on purpose, because it is what fcgikit is compared
 * with: N threads, each looping on FCGX_Accept_r() with its own FCGX_Request. A thread whose
 * front set FCGI_KEEP_CONN stays on that connection and waits there for the next request,
 * so at most N connections are ever served; libfcgi never multiplexes. No accept mutex:
 * Linux does not need one, and a thread holding it while it waits on a kept connection
 * would stop every other thread.
 *
 * libfcgi 2.4.2 quirks seen from here: it answers GET_VALUES (FCGI_MAX_REQS=1,
 * FCGI_MPXS_CONNS=0, FCGI_MAX_CONNS=1) only once more bytes follow it on the connection, so
 * a client that waits for the answer before its first BEGIN_REQUEST (HAProxy with `option
 * get-values`) waits until its own timeout; the padding of that answer is uninitialised
 * memory. FCGX_Init installs a SIGTERM handler that only sets a flag (see main).
 *
 * The including file defines `static void serve(FCGX_Request *r)`. */
#ifndef LIBFCGI_PEER_H
#define LIBFCGI_PEER_H

#define _POSIX_C_SOURCE 200809L
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void serve(FCGX_Request *r);

static int listen_fd;

static void on_term(int sig)
{
	(void)sig;
	_exit(0);
}

static void *worker(void *arg)
{
	FCGX_Request r;
	(void)arg;
	if (FCGX_InitRequest(&r, listen_fd, 0) != 0)
		return NULL;
	while (FCGX_Accept_r(&r) >= 0) {
		serve(&r);
		FCGX_Finish_r(&r);
	}
	return NULL;
}

/* fcgikit's address forms into what FCGX_OpenSocket() takes: a path, or HOST:PORT / :PORT. */
static const char *libfcgi_address(const char *a)
{
	if (!strncmp(a, "unix:", 5))
		return a + 5;
	if (!strncmp(a, "tcp:", 4))
		return a + 4;
	return a;
}

static int is_number(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	const char *address = NULL;
	int threads = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (address && is_number(argv[i]))
			threads = atoi(argv[i]);
		else if (!address && argv[i][0] != '-')
			address = argv[i];
		else {
			fprintf(stderr, "usage: %s [ADDRESS] [--threads N]\n", argv[0]);
			return 2;
		}
	}
	if (threads < 1 || threads > 4096)
		threads = 1;

	signal(SIGPIPE, SIG_IGN); /* a front that went away must not end the process */
	/* libfcgi's own SIGTERM handler (installed by FCGX_Init when the disposition is still
	 * the default) only sets a flag that is read between requests: a thread blocked in
	 * accept or on a kept connection never sees it, and the process lingers until SIGKILL.
	 * Install ours first so SIGTERM and SIGINT end the program at once. */
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	if (FCGX_Init() != 0) {
		fprintf(stderr, "FCGX_Init failed\n");
		return 1;
	}
	listen_fd = 0;
	if (address) {
		listen_fd = FCGX_OpenSocket(libfcgi_address(address), 1024);
		if (listen_fd < 0) {
			fprintf(stderr, "cannot listen on %s\n", address);
			return 1;
		}
	}

	pthread_t *tids = calloc((size_t)threads, sizeof *tids);
	if (!tids)
		return 1;
	for (int i = 1; i < threads; i++)
		if (pthread_create(&tids[i], NULL, worker, NULL) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	worker(NULL);
	for (int i = 1; i < threads; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	return 0;
}

#endif
