/* libfcgi_echo — fcgikit's echo contract written on Debian's libfcgi (fcgiapp.h), for the
 * client's tests against a real libfcgi application:
 *   libfcgi_echo SOCKETPATH|:PORT [THREADS]
 * 200 (or ?status=NNN), Content-Type application/octet-stream, X-Request-Method, X-Query,
 * the body echoed; ?stderr=1 writes a line to the STDERR stream. */
#include <fcgiapp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_sock;

static void *serve(void *arg)
{
	FCGX_Request req;
	char buf[65536];
	(void)arg;
	FCGX_InitRequest(&req, g_sock, 0);
	while (FCGX_Accept_r(&req) >= 0) {
		const char *m = FCGX_GetParam("REQUEST_METHOD", req.envp);
		const char *q = FCGX_GetParam("QUERY_STRING", req.envp);
		q = q ? q : "";
		const char *st = strstr(q, "status=");
		if (strstr(q, "stderr"))
			FCGX_PutS("stderr-marker\n", req.err);
		FCGX_FPrintF(req.out,
		             "Status: %d\r\nContent-Type: application/octet-stream\r\n"
		             "X-Request-Method: %s\r\nX-Query: %s\r\n\r\n",
		             st ? atoi(st + 7) : 200, m ? m : "", q);
		int n;
		while ((n = FCGX_GetStr(buf, sizeof buf, req.in)) > 0)
			FCGX_PutStr(buf, n, req.out);
		FCGX_Finish_r(&req);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s SOCKETPATH|:PORT [THREADS]\n", argv[0]);
		return 2;
	}
	FCGX_Init();
	g_sock = FCGX_OpenSocket(argv[1], 128);
	if (g_sock < 0) {
		perror("FCGX_OpenSocket");
		return 1;
	}
	int n = argc > 2 ? atoi(argv[2]) : 1;
	if (n < 1 || n > 64)
		n = 1;
	pthread_t tids[64];
	for (int i = 1; i < n; i++)
		pthread_create(&tids[i], NULL, serve, NULL);
	serve(NULL);
	return 0;
}
