/* unit — libfcgi calls that need no web server, each printing one line of results: the
 * stand-alone record writer (FCGX_CreateWriter), FCGX_GetParam, FCGX_IsCGI, FCGX_OpenSocket,
 * the OS_* layer and the FCGI_FILE wrappers on real files. Built against Debian's libfcgi and
 * against fcgikit's compat layer, the outputs must be identical (tests/compat/compat.py).
 * Run with stdin not a socket (it checks FCGX_IsCGI). */
#define NO_FCGI_DEFINES
#include <errno.h>
#include <fastcgi.h>
#include <fcgi_config.h> /* HAVE_FPOS: libfcgi declares FCGI_fgetpos/fsetpos only then */
#include <fcgi_stdio.h>
#include <fcgiapp.h>
#include <fcgios.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Reads every record from fd until an empty record of type; appends the content to out. */
static int read_stream(int fd, int type, unsigned char *out, size_t cap, size_t *len, int *ids)
{
	*len = 0;
	for (;;) {
		FCGI_Header h;
		size_t got = 0;
		while (got < sizeof h) {
			ssize_t n = read(fd, (char *)&h + got, sizeof h - got);
			if (n <= 0)
				return -1;
			got += (size_t)n;
		}
		size_t clen = (size_t)h.contentLengthB1 << 8 | h.contentLengthB0;
		size_t total = clen + h.paddingLength;
		unsigned char buf[65535 + 255];
		got = 0;
		while (got < total) {
			ssize_t n = read(fd, buf + got, total - got);
			if (n <= 0)
				return -1;
			got += (size_t)n;
		}
		if (h.type != type || h.version != FCGI_VERSION_1)
			return -2;
		*ids |= 1 << ((h.requestIdB1 << 8 | h.requestIdB0) & 15);
		if (clen == 0)
			return 0;
		if (*len + clen > cap)
			return -3;
		memcpy(out + *len, buf, clen);
		*len += clen;
	}
}

static void test_writer(void)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
		printf("writer: socketpair failed\n");
		return;
	}
	/* The reader drains in a child so that big writes never block. */
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		static unsigned char got[300000];
		size_t len;
		int ids = 0;
		int rc = read_stream(sv[1], FCGI_STDOUT, got, sizeof got, &len, &ids);
		unsigned long sum = 0;
		for (size_t i = 0; i < len; i++)
			sum = sum * 31 + got[i];
		printf("writer: stream rc %d, %zu bytes, checksum %lu, request ids mask %d\n", rc,
		       len, sum, ids);
		fflush(stdout);
		_exit(0);
	}
	close(sv[1]);
	FCGX_Stream *s = FCGX_CreateWriter(sv[0], 5, 100, FCGI_STDOUT);
	static char big[70000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)('a' + i % 26);
	int r1 = FCGX_PutS("hello, ", s);
	int r2 = FCGX_PutChar('W', s);
	int r3 = FCGX_PutStr(big, (int)sizeof big, s);
	int r4 = FCGX_FPrintF(s, "[%d %s %05.1f]", 42, "fmt", 3.14159);
	int r5 = FCGX_FFlush(s);
	int r6 = FCGX_PutStr("tail", 4, s);
	int r7 = FCGX_FClose(s);
	int r8 = FCGX_GetError(s);
	int r9 = FCGX_PutS("after close", s);
	FCGX_FreeStream(&s);
	close(sv[0]);
	int st;
	waitpid(pid, &st, 0); /* the reader's line first, so the output order is fixed */
	printf("writer: puts %d putchar %d putstr %d printf %d flush %d putstr %d fclose %d "
	       "error %d put-after-close %d\n",
	       r1, r2, r3, r4, r5, r6, r7, r8, r9);
	printf("writer: freed, stream now %s\n", s ? "set" : "NULL");
}

static void test_writer_error(void)
{
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	close(sv[1]);
	FCGX_Stream *s = FCGX_CreateWriter(sv[0], 1, 4096, FCGI_STDERR);
	static char big[20000];
	memset(big, 'x', sizeof big);
	int rc = FCGX_PutStr(big, (int)sizeof big, s);
	int fl = FCGX_FFlush(s);
	int err = FCGX_GetError(s);
	printf("writer to a closed peer: putstr %s, flush %d, error %s\n", rc < 0 ? "EOF" : "ok",
	       fl,
	       err == EPIPE ? "EPIPE"
	       : err        ? "other"
	                    : "none");
	FCGX_ClearError(s);
	printf("after FCGX_ClearError: error %d\n", FCGX_GetError(s));
	FCGX_FreeStream(&s);
	close(sv[0]);
}

static void test_params(void)
{
	char *envp[] = {"FOOBAR=1", "FOO=2", "EMPTY=", "X=a=b", NULL};
	const char *a = FCGX_GetParam("FOO", envp), *b = FCGX_GetParam("FOOBAR", envp);
	const char *c = FCGX_GetParam("EMPTY", envp), *d = FCGX_GetParam("X", envp);
	const char *e = FCGX_GetParam("MISSING", envp), *f = FCGX_GetParam("FO", envp);
	printf("params: FOO=%s FOOBAR=%s EMPTY=[%s] X=%s MISSING=%s FO=%s\n", a, b, c, d,
	       e ? e : "(null)", f ? f : "(null)");
}

static void test_sockets(void)
{
	printf("FCGX_IsCGI with stdin not a socket: %d\n", FCGX_IsCGI());
	char path[] = "/tmp/fcgikit-unit-XXXXXX";
	int tmpfd = mkstemp(path);
	close(tmpfd);
	unlink(path);
	int ls = OS_CreateLocalIpcFd(path, 5);
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	printf("OS_IsFcgi: listening %d, connected %d\n", OS_IsFcgi(ls), OS_IsFcgi(sv[0]));
	int c = OS_FcgiConnect(path);
	/* libfcgi's OS_Accept drops a Unix connection that has nothing to read yet: write first. */
	int w = OS_Write(c, "ping", 4);
	int a = OS_Accept(ls, 0, NULL);
	char buf[16] = {0};
	int r = OS_Read(a, buf, sizeof buf - 1);
	printf("OS_CreateLocalIpcFd/OS_FcgiConnect/OS_Accept: %s, write %d read %d [%s]\n",
	       ls >= 0 && c >= 0 && a >= 0 ? "ok" : "failed", w, r, buf);
	OS_SetFlags(a, O_NONBLOCK);
	printf("OS_SetFlags O_NONBLOCK: %s\n", fcntl(a, F_GETFL) & O_NONBLOCK ? "set" : "not set");
	printf("OS_Close: %d %d %d\n", OS_Close(c, 1), OS_Close(a, 0), OS_Close(-1, 0));
	close(ls);
	unlink(path);
	int t = FCGX_OpenSocket("127.0.0.1:0", 5);
	int acc = 0;
	socklen_t sl = sizeof acc;
	getsockopt(t, SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl);
	printf("FCGX_OpenSocket(127.0.0.1:0): %s\n", t >= 0 && acc ? "listening" : "failed");
	close(t);
	/* Not compared: with a path it cannot bind, libfcgi prints an error and exits the process;
	 * fcgikit's returns -1 as the header says. */
	close(sv[0]);
	close(sv[1]);
}

static int g_done, g_rlen, g_wlen;
static char g_rbuf[32];

static void on_read(ClientData cd, int len)
{
	(void)cd;
	g_rlen = len;
	g_done++;
}

static void on_write(ClientData cd, int len)
{
	(void)cd;
	g_wlen = len;
	g_done++;
}

static void test_async(void)
{
	int p[2];
	if (pipe(p))
		return;
	int fds[3] = {0, 1, 2};
	OS_LibInit(fds);
	OS_AsyncWrite(p[1], 0, "async!", 6, on_write, NULL);
	OS_AsyncRead(p[0], 0, g_rbuf, sizeof g_rbuf - 1, on_read, NULL);
	for (int i = 0; i < 10 && g_done < 2; i++) {
		struct timeval tv = {1, 0};
		OS_DoIo(&tv);
	}
	printf("OS_AsyncWrite/OS_AsyncRead/OS_DoIo: done %d, wrote %d, read %d [%s]\n", g_done,
	       g_wlen, g_rlen, g_rbuf);
	close(p[0]);
	close(p[1]);
	OS_LibShutdown();
}

static void test_files(void)
{
	FCGI_FILE *f = FCGI_tmpfile();
	int a = FCGI_fputs("line one\n", f);
	int b = FCGI_fprintf(f, "%s %d\n", "line", 2);
	char w[] = "third\nfourth";
	size_t c = FCGI_fwrite(w, 1, strlen(w), f);
	int d = FCGI_fputc('!', f);
	printf("files: fputs %s fprintf %d fwrite %zu fputc %c ftell %d fileno %s\n",
	       a >= 0 ? "ok" : "EOF", b, c, d, FCGI_ftell(f), FCGI_fileno(f) >= 0 ? "ok" : "-1");
	FCGI_rewind(f);
	char line[64];
	char *l1 = FCGI_fgets(line, sizeof line, f);
	printf("files: fgets [%s]", l1 ? strtok(line, "\n") : "(null)");
	int g = FCGI_fgetc(f);
	int u = FCGI_ungetc(g, f);
	int g2 = FCGI_fgetc(f);
	printf(" fgetc %c ungetc %c fgetc %c\n", g, u, g2);
	fpos_t pos;
	FCGI_fgetpos(f, &pos);
	char rest[64] = {0};
	size_t n = FCGI_fread(rest, 1, sizeof rest - 1, f);
	printf("files: fread %zu feof %d ferror %d", n, FCGI_feof(f) != 0, FCGI_ferror(f));
	FCGI_clearerr(f);
	printf(" after clearerr feof %d", FCGI_feof(f) != 0);
	FCGI_fsetpos(f, &pos);
	printf(" fsetpos then fgetc %c", FCGI_fgetc(f));
	FCGI_fseek(f, -2, SEEK_END);
	printf(" fseek(-2, END) then fgetc %c\n", FCGI_fgetc(f));
	printf("files: fclose %d\n", FCGI_fclose(f));

	FCGI_FILE *p = FCGI_popen("echo from a pipe", "r");
	char pl[64] = {0};
	FCGI_fgets(pl, sizeof pl, p);
	printf("files: popen [%s] pclose %d\n", strtok(pl, "\n"), FCGI_pclose(p));

	int fd = dup(1);
	FCGI_FILE *o = FCGI_fdopen(fd, "w");
	FCGI_setvbuf(o, NULL, _IOLBF, 0);
	FCGI_fputs("files: fdopen'ed stdout, line-buffered\n", o);
	FCGI_fflush(o);
	FCGI_fclose(o);

	FCGI_FILE *n1 = FCGI_fopen("/nonexistent-dir/x", "r");
	printf("files: fopen of a missing file %s errno ENOENT %d\n", n1 ? "opened" : "NULL",
	       errno == ENOENT);
	FCGI_FILE *r = FCGI_fopen("/dev/null", "r");
	r = FCGI_freopen("/dev/zero", "r", r);
	int z = FCGI_fgetc(r);
	printf("files: freopen /dev/zero then fgetc %d\n", z);
	FCGI_setbuf(r, NULL);
	FCGI_fclose(r);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_params();
	test_writer();
	test_writer_error();
	test_sockets();
	test_async();
	test_files();
	return 0;
}
