/* The hello program written the classic way on Debian's libfcgi, for side-by-side runs:
 * N threads, each looping on FCGX_Accept_r (how libfcgi's own threaded example works).
 *   libfcgi_hello SOCKETPATH|:PORT [THREADS] */
#include <fcgiapp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static int g_sock;

static void *serve(void *arg)
{
	FCGX_Request req;
	(void)arg;
	FCGX_InitRequest(&req, g_sock, 0);
	while (FCGX_Accept_r(&req) >= 0) {
		FCGX_PutS("Content-Type: text/plain\r\n\r\nHello, World!\n", req.out);
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
	g_sock = FCGX_OpenSocket(argv[1], 1024);
	if (g_sock < 0) {
		perror("FCGX_OpenSocket");
		return 1;
	}
	int n = argc > 2 ? atoi(argv[2]) : 1;
	if (n < 1 || n > 256)
		n = 1;
	pthread_t tids[256];
	for (int i = 1; i < n; i++)
		pthread_create(&tids[i], NULL, serve, NULL);
	serve(NULL);
	return 0;
}
