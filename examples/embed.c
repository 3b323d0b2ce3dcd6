/* embed — libfcgikit inside an application's own event loop.
 *
 *   embed [ADDRESS]
 *
 * The program owns its loop (plain poll(2) here, standing in for libev, libuv, a game loop,
 * ...). It watches fcgi_app_fd() next to its own descriptors and calls fcgi_app_process(app, 0)
 * when that descriptor is readable; handlers then run inside that call. Here the program's
 * own work is a timerfd ticking every 100 ms, and the handler answers with the tick count. */
#include <fcgikit.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/timerfd.h>
#include <unistd.h>

static uint64_t g_ticks;

static void on_request(fcgi_req *req, void *ud)
{
	(void)ud;
	fcgi_printf(req, "Content-Type: text/plain\r\n\r\nticks: %llu\n", (unsigned long long)g_ticks);
	fcgi_finish(req, 0);
}

int main(int argc, char **argv)
{
	const char *address = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
	fcgi_app *app;
	int rc = fcgi_app_new(&app);
	if (!rc)
		rc = address ? fcgi_app_listen(app, address) : fcgi_app_listen_inherited(app);
	if (rc < 0) {
		fprintf(stderr, "embed: %s: %s\n", address ? address : "fd 0", fcgi_strerror(rc));
		return 1;
	}
	fcgi_app_handle_signals(app);
	fcgi_app_set_handler(app, on_request, NULL);

	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	struct itimerspec its = {{0, 100000000}, {0, 100000000}};
	timerfd_settime(tfd, 0, &its, NULL);

	struct pollfd pf[2] = {{.fd = fcgi_app_fd(app), .events = POLLIN}, {.fd = tfd, .events = POLLIN}};
	for (;;) {
		/* The library may have timers of its own (timeouts): wake at least every 250 ms. */
		if (poll(pf, 2, 250) < 0)
			continue;
		if (pf[1].revents & POLLIN) {
			uint64_t n;
			if (read(tfd, &n, sizeof n) == sizeof n)
				g_ticks += n;
		}
		if (fcgi_app_process(app, 0) == FCGI_ESHUTDOWN)
			break;
	}
	close(tfd);
	fcgi_app_free(app);
	return 0;
}
