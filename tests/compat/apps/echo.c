/* echo — a classic single-threaded FCGX_Accept loop, written the way libfcgi programs are.
 *
 * The echo contract: 200, application/octet-stream, the body is STDIN, headers
 * X-Request-Method and X-Query. The param COMPAT_TEST picks a variant that exercises other
 * stream calls, so that both builds (Debian's libfcgi, fcgikit's compat) can be compared
 * byte for byte:
 *   getline   STDIN echoed line by line (FCGX_GetLine), each line prefixed with "> "
 *   getchar   STDIN echoed byte by byte (FCGX_GetChar), every byte pushed back and read again
 *   env       the params as "NAME=value" lines, sorted (FCGX_ParamArray)
 *   stderr    also writes to the error stream; exit status 7 (FCGX_SetExitStatus)
 *   flush     body written in pieces with FCGX_FFlush between them
 *   eof       reports FCGX_HasSeenEOF before and after reading STDIN
 */
#include <fcgiapp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void dump_env(FCGX_Stream *out, char **envp)
{
	int n = 0;
	while (envp[n])
		n++;
	char **sorted = malloc((size_t)(n + 1) * sizeof *sorted);
	if (!sorted)
		return;
	memcpy(sorted, envp, (size_t)(n + 1) * sizeof *sorted);
	qsort(sorted, (size_t)n, sizeof *sorted, cmp);
	for (int i = 0; i < n; i++)
		FCGX_FPrintF(out, "%s\n", sorted[i]);
	free(sorted);
}

int main(void)
{
	FCGX_Stream *in, *out, *err;
	FCGX_ParamArray envp;
	char buf[8192];

	while (FCGX_Accept(&in, &out, &err, &envp) >= 0) {
		char *method = FCGX_GetParam("REQUEST_METHOD", envp);
		char *query = FCGX_GetParam("QUERY_STRING", envp);
		char *test = FCGX_GetParam("COMPAT_TEST", envp);
		int n;

		FCGX_FPrintF(out,
		             "Status: 200 OK\r\n"
		             "Content-Type: application/octet-stream\r\n"
		             "X-Request-Method: %s\r\n"
		             "X-Query: %s\r\n"
		             "\r\n",
		             method ? method : "", query ? query : "");

		if (!test) {
			while ((n = FCGX_GetStr(buf, sizeof buf, in)) > 0)
				FCGX_PutStr(buf, n, out);
		} else if (!strcmp(test, "getline")) {
			while (FCGX_GetLine(buf, sizeof buf, in)) {
				FCGX_PutS("> ", out);
				FCGX_PutS(buf, out);
			}
		} else if (!strcmp(test, "getchar")) {
			int c;
			while ((c = FCGX_GetChar(in)) != EOF) {
				if (FCGX_UnGetChar(c, in) != c || FCGX_GetChar(in) != c)
					FCGX_PutS("[unget failed]", out);
				FCGX_PutChar(c, out);
			}
		} else if (!strcmp(test, "env")) {
			dump_env(out, envp);
		} else if (!strcmp(test, "stderr")) {
			FCGX_PutS("to the error log\n", err);
			FCGX_FPrintF(err, "method %s\n", method ? method : "");
			FCGX_PutS("body\n", out);
			FCGX_SetExitStatus(7, out);
		} else if (!strcmp(test, "flush")) {
			for (int i = 0; i < 5; i++) {
				FCGX_FPrintF(out, "piece %d\n", i);
				FCGX_FFlush(out);
			}
		} else if (!strcmp(test, "eof")) {
			FCGX_FPrintF(out, "before %d\n", FCGX_HasSeenEOF(in));
			while (FCGX_GetStr(buf, sizeof buf, in) > 0)
				;
			FCGX_FPrintF(out, "after %d\n", FCGX_HasSeenEOF(in));
		}
	}
	return 0;
}
