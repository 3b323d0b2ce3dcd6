/* stdio — the fcgi_stdio.h way: a CGI program whose main loop is FCGI_Accept, printf to
 * answer, getenv for the params, fread/fwrite on stdin/stdout. Started as plain CGI (fd 0 is
 * no listening socket) it answers one request from the real environment and exits.
 *
 * The echo contract (see echo.c). With COMPAT_TEST=lines it reads stdin with fgets and
 * answers each line with puts (and a "lines: N" trailer on stderr); with COMPAT_TEST=status
 * it sets exit status 3 and reports ENOENT with perror. */
#include <errno.h>
#include <fcgi_stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
	int count = 0;

	while (FCGI_Accept() >= 0) {
		char *method = getenv("REQUEST_METHOD");
		char *query = getenv("QUERY_STRING");
		char *test = getenv("COMPAT_TEST");
		char buf[4096];
		size_t n;

		count++;
		printf("Status: 200 OK\r\n"
		       "Content-Type: application/octet-stream\r\n"
		       "X-Request-Method: %s\r\n"
		       "X-Query: %s\r\n"
		       "\r\n",
		       method ? method : "", query ? query : "");
		if (test && !strcmp(test, "lines")) {
			int lines = 0;
			while (fgets(buf, sizeof buf, stdin)) {
				buf[strcspn(buf, "\n")] = '\0';
				puts(buf);
				lines++;
			}
			fprintf(stderr, "lines: %d\n", lines);
		} else if (test && !strcmp(test, "status")) {
			errno = ENOENT;
			perror("perror test");
			FCGI_SetExitStatus(3);
		} else {
			while ((n = fread(buf, 1, sizeof buf, stdin)) > 0)
				fwrite(buf, 1, n, stdout);
		}
	}
	return 0;
}
