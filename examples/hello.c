/* hello — the smallest fcgikit application, blocking style.
 *
 *   hello [ADDRESS] [--threads N]
 *
 * ADDRESS: unix:/path, HOST:PORT, [::1]:PORT, :PORT; none = the socket a web server or
 * spawner handed over on fd 0, or systemd's. Each thread loops on fcgi_accept(); the library
 * multiplexes underneath, so threads are never tied to connections. */
#include <fcgikit.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *serve(void *arg)
{
	fcgi_app *app = arg;
	fcgi_req *req;
	while (fcgi_accept(app, &req) == FCGI_OK) {
		fcgi_puts(req, "Content-Type: text/plain\r\n\r\nHello, World!\n");
		fcgi_finish(req, 0);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *address = NULL;
	int threads = 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (argv[i][0] != '-' && !address)
			address = argv[i];
		else {
			fprintf(stderr, "usage: %s [ADDRESS] [--threads N]\n", argv[0]);
			return 2;
		}
	}
	if (threads < 1 || threads > 1024)
		threads = 1;

	fcgi_app *app;
	int rc = fcgi_app_new(&app);
	if (!rc)
		rc = address ? fcgi_app_listen(app, address) : fcgi_app_listen_inherited(app);
	if (rc < 0) {
		fprintf(stderr, "hello: %s: %s\n", address ? address : "fd 0", fcgi_strerror(rc));
		return 1;
	}
	fcgi_app_handle_signals(app);

	pthread_t *tids = calloc((size_t)threads, sizeof *tids);
	for (int i = 1; i < threads; i++)
		pthread_create(&tids[i], NULL, serve, app);
	serve(app);
	for (int i = 1; i < threads; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	fcgi_app_free(app);
	return 0;
}
