/* threaded — a multi-threaded FCGX_Accept_r server, the way libfcgi's threaded example goes:
 * each thread owns an FCGX_Request and loops on FCGX_Accept_r (no mutex of its own).
 *
 *   threaded [SOCKET] [THREADS]    SOCKET for FCGX_OpenSocket (default, "" or "-": fd 0);
 *                                  4 threads
 *
 * The echo contract (see echo.c); the param SLEEP_MS delays the answer (before reading the
 * body), so tests can see which request finishes first; an aborted request shows up as an
 * error or end of input on the streams, which ends it like any other. */
#include <fcgiapp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int g_sock;

static void *serve(void *arg)
{
	FCGX_Request request;
	char buf[16384];
	(void)arg;

	FCGX_InitRequest(&request, g_sock, 0);
	while (FCGX_Accept_r(&request) >= 0) {
		char *method = FCGX_GetParam("REQUEST_METHOD", request.envp);
		char *query = FCGX_GetParam("QUERY_STRING", request.envp);
		char *sleep_ms = FCGX_GetParam("SLEEP_MS", request.envp);
		int n;

		if (sleep_ms) {
			long ms = atol(sleep_ms);
			struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
			nanosleep(&ts, NULL);
		}
		FCGX_FPrintF(request.out,
		             "Status: 200 OK\r\n"
		             "Content-Type: application/octet-stream\r\n"
		             "X-Request-Method: %s\r\n"
		             "X-Query: %s\r\n"
		             "\r\n",
		             method ? method : "", query ? query : "");
		while ((n = FCGX_GetStr(buf, sizeof buf, request.in)) > 0)
			FCGX_PutStr(buf, n, request.out);
		FCGX_Finish_r(&request);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = argc > 2 ? atoi(argv[2]) : 4;
	pthread_t tid[64];

	FCGX_Init();
	if (argc > 1 && argv[1][0] && strcmp(argv[1], "-")) {
		g_sock = FCGX_OpenSocket(argv[1], 128);
		if (g_sock < 0) {
			perror("FCGX_OpenSocket");
			return 1;
		}
	}
	if (threads < 1 || threads > 64)
		threads = 4;
	for (int i = 1; i < threads; i++)
		pthread_create(&tid[i], NULL, serve, NULL);
	serve(NULL);
	for (int i = 1; i < threads; i++)
		pthread_join(tid[i], NULL);
	return 0;
}
