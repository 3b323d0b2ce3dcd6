/* floor_hello.c — the least a FastCGI application can do per request, as a yardstick for
 * bench/client: a thread per connection, one blocking read() per request (the client sends
 * BEGIN_REQUEST, PARAMS and STDIN in one write) and one write() of a canned answer. It
 * does not parse params, check roles, or handle anything but the bench's requests; it is not
 * an application anybody should run. What it reaches is what the client, the kernel and two
 * context switches per request leave for any application on this machine.
 *
 *   floor_hello SOCKET-PATH   (a Unix socket; removed first if it exists)
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum { HEADER = 8, T_BEGIN = 1, T_END = 3, T_STDIN = 5, T_STDOUT = 6 };

static const char body[] = "Content-Type: text/plain\r\n\r\nHello, World!\n";

static size_t record(uint8_t *p, int type, unsigned id, const void *data, size_t len)
{
	p[0] = 1;
	p[1] = (uint8_t)type;
	p[2] = (uint8_t)(id >> 8);
	p[3] = (uint8_t)id;
	p[4] = (uint8_t)(len >> 8);
	p[5] = (uint8_t)len;
	p[6] = 0;
	p[7] = 0;
	memcpy(p + HEADER, data, len);
	return HEADER + len;
}

/* Answers every request whose empty STDIN record has arrived; returns bytes consumed. */
static size_t serve(int fd, const uint8_t *in, size_t n)
{
	size_t off = 0;
	while (n - off >= HEADER) {
		const uint8_t *h = in + off;
		size_t clen = (size_t)h[4] << 8 | h[5], rec = HEADER + clen + h[6];
		if (n - off < rec)
			break;
		off += rec;
		if (h[1] != T_STDIN || clen)
			continue;
		unsigned id = (unsigned)h[2] << 8 | h[3];
		uint8_t out[256], end[8] = {0};
		size_t k = record(out, T_STDOUT, id, body, sizeof body - 1);
		k += record(out + k, T_STDOUT, id, "", 0);
		k += record(out + k, T_END, id, end, sizeof end);
		if (write(fd, out, k) != (ssize_t)k)
			return (size_t)-1;
	}
	return off;
}

static void *conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint8_t buf[65536];
	size_t have = 0;
	for (;;) {
		ssize_t r = read(fd, buf + have, sizeof buf - have);
		if (r <= 0)
			break;
		have += (size_t)r;
		size_t used = serve(fd, buf, have);
		if (used == (size_t)-1)
			break;
		memmove(buf, buf + used, have - used);
		have -= used;
		if (have == sizeof buf)
			break; /* not a bench request */
	}
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: floor_hello SOCKET-PATH\n");
		return 2;
	}
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(argv[1]) >= sizeof a.sun_path) {
		fprintf(stderr, "floor_hello: path too long\n");
		return 2;
	}
	strcpy(a.sun_path, argv[1]);
	signal(SIGPIPE, SIG_IGN); /* a client that leaves mid-answer ends its connection only */
	unlink(argv[1]);
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 128)) {
		perror("floor_hello");
		return 1;
	}
	for (;;) {
		int fd = accept(l, NULL, NULL);
		if (fd < 0)
			continue;
		pthread_t t;
		if (pthread_create(&t, NULL, conn, (void *)(intptr_t)fd))
			close(fd);
		else
			pthread_detach(t);
	}
}
