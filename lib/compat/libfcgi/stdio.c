/* stdio.c — the fcgi_stdio.h layer: FCGI_FILE wrappers over either a real FILE or a request
 * stream, FCGI_Accept with its fall back to plain CGI, and environ switching. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NO_FCGI_DEFINES
#include "compat_int.h"
#include "fcgi_stdio.h"

extern char **environ;

/* Zero until FCGI_Accept: each wrapper then falls back to the matching real stream. */
DLLAPI FCGI_FILE _fcgi_sF[3];

static int g_accept_called;
static int g_is_cgi;
static int g_std_closed[3]; /* FCGI_fclose'd: no fall back to the real stream any more */

/* The real FILE behind a wrapper, or NULL when it is a request stream (or nothing). */
static FILE *file_of(FCGI_FILE *fp)
{
	if (fp->stdio_stream)
		return fp->stdio_stream;
	if (fp->fcgx_stream)
		return NULL;
	if (fp >= &_fcgi_sF[0] && fp <= &_fcgi_sF[2] && g_std_closed[fp - _fcgi_sF])
		return NULL;
	if (fp == &_fcgi_sF[0])
		return stdin;
	if (fp == &_fcgi_sF[1])
		return stdout;
	if (fp == &_fcgi_sF[2])
		return stderr;
	return NULL;
}

static int is_std(const FCGI_FILE *fp) { return fp >= &_fcgi_sF[0] && fp <= &_fcgi_sF[2]; }

static void set_std(FILE *in, FCGX_Stream *fin, FILE *out, FCGX_Stream *fout, FILE *err,
                    FCGX_Stream *ferr)
{
	_fcgi_sF[0] = (FCGI_FILE){in, fin};
	_fcgi_sF[1] = (FCGI_FILE){out, fout};
	_fcgi_sF[2] = (FCGI_FILE){err, ferr};
	memset(g_std_closed, 0, sizeof g_std_closed);
}

DLLAPI void FCGI_Finish(void)
{
	if (!g_accept_called || g_is_cgi)
		return;
	FCGX_Finish();
	set_std(NULL, NULL, NULL, NULL, NULL, NULL);
	environ = NULL; /* it pointed into the request that just ended (libfcgi does the same) */
}

DLLAPI int FCGI_Accept(void)
{
	if (!g_accept_called) {
		g_is_cgi = FCGX_IsCGI();
		g_accept_called = 1;
		atexit(FCGI_Finish);
	} else if (g_is_cgi) {
		return EOF; /* a CGI program serves exactly one request */
	}
	if (g_is_cgi) {
		set_std(stdin, NULL, stdout, NULL, stderr, NULL);
		return 0;
	}
	FCGI_Finish();
	FCGX_Stream *in, *out, *err;
	FCGX_ParamArray envp;
	int rc = FCGX_Accept(&in, &out, &err, &envp);
	if (rc < 0)
		return rc;
	set_std(NULL, in, NULL, out, NULL, err);
	environ = envp;
	return 0;
}

DLLAPI int FCGI_StartFilterData(void)
{
	if (!FCGI_stdin->fcgx_stream)
		return -1;
	return FCGX_StartFilterData(FCGI_stdin->fcgx_stream);
}

DLLAPI void FCGI_SetExitStatus(int status)
{
	if (FCGI_stdin->fcgx_stream)
		FCGX_SetExitStatus(status, FCGI_stdin->fcgx_stream);
}

/* ---------------------------------------------------------------- opening and closing */

/* A wrapper for a FILE just opened (NULL stays NULL). The wrapper is allocated first, so a
 * failure closes nothing. */
static FCGI_FILE *wrapper(void) { return calloc(1, sizeof(FCGI_FILE)); }

static FCGI_FILE *wrapped(FCGI_FILE *fp, FILE *f)
{
	if (!f) {
		free(fp);
		return NULL;
	}
	fp->stdio_stream = f;
	return fp;
}

DLLAPI FCGI_FILE *FCGI_fopen(const char *path, const char *mode)
{
	FCGI_FILE *fp = wrapper();
	return fp ? wrapped(fp, fopen(path, mode)) : NULL;
}

DLLAPI FCGI_FILE *FCGI_fdopen(int fd, const char *mode)
{
	FCGI_FILE *fp = wrapper();
	return fp ? wrapped(fp, fdopen(fd, mode)) : NULL;
}

DLLAPI FCGI_FILE *FCGI_popen(const char *cmd, const char *type)
{
	FCGI_FILE *fp = wrapper();
	return fp ? wrapped(fp, popen(cmd, type)) : NULL;
}

DLLAPI FCGI_FILE *FCGI_tmpfile(void)
{
	FCGI_FILE *fp = wrapper();
	return fp ? wrapped(fp, tmpfile()) : NULL;
}

DLLAPI int FCGI_fclose(FCGI_FILE *fp)
{
	int rc = EOF;
	FILE *f = file_of(fp);
	if (f) {
		rc = fclose(f);
		fp->stdio_stream = NULL;
	} else if (fp->fcgx_stream) {
		rc = FCGX_FClose(fp->fcgx_stream);
		fp->fcgx_stream = NULL;
	}
	if (is_std(fp))
		g_std_closed[fp - _fcgi_sF] = 1;
	else
		free(fp);
	return rc;
}

DLLAPI int FCGI_pclose(FCGI_FILE *fp)
{
	int rc = -1;
	if (fp->stdio_stream)
		rc = pclose(fp->stdio_stream);
	fp->stdio_stream = NULL;
	if (!is_std(fp))
		free(fp);
	return rc;
}

DLLAPI int FCGI_fflush(FCGI_FILE *fp)
{
	if (!fp)
		return fflush(NULL);
	FILE *f = file_of(fp);
	if (f)
		return fflush(f);
	return fp->fcgx_stream ? FCGX_FFlush(fp->fcgx_stream) : EOF;
}

DLLAPI FCGI_FILE *FCGI_freopen(const char *path, const char *mode, FCGI_FILE *fp)
{
	FILE *f = file_of(fp);
	if (f) {
		f = freopen(path, mode, f);
		fp->stdio_stream = f;
		return f ? fp : NULL;
	}
	/* A request stream is replaced by the file: closing the stream is the request's job. */
	if (!(f = fopen(path, mode)))
		return NULL;
	fp->stdio_stream = f;
	fp->fcgx_stream = NULL;
	return fp;
}

/* ---------------------------------------------------------------- buffering and position */

DLLAPI int FCGI_setvbuf(FCGI_FILE *fp, char *buf, int bufmode, size_t size)
{
	FILE *f = file_of(fp);
	return f ? setvbuf(f, buf, bufmode, size) : -1;
}

DLLAPI void FCGI_setbuf(FCGI_FILE *fp, char *buf)
{
	FILE *f = file_of(fp);
	if (f)
		setbuf(f, buf);
}

DLLAPI int FCGI_fseek(FCGI_FILE *fp, long offset, int whence)
{
	FILE *f = file_of(fp);
	if (f)
		return fseek(f, offset, whence);
	errno = ESPIPE;
	return -1;
}

DLLAPI int FCGI_ftell(FCGI_FILE *fp)
{
	FILE *f = file_of(fp);
	if (f)
		return (int)ftell(f);
	errno = ESPIPE;
	return -1;
}

DLLAPI void FCGI_rewind(FCGI_FILE *fp)
{
	FILE *f = file_of(fp);
	if (f)
		rewind(f);
	else
		errno = ESPIPE;
}

DLLAPI int FCGI_fgetpos(FCGI_FILE *fp, fpos_t *pos)
{
	FILE *f = file_of(fp);
	if (f)
		return fgetpos(f, pos);
	errno = ESPIPE;
	return -1;
}

DLLAPI int FCGI_fsetpos(FCGI_FILE *fp, const fpos_t *pos)
{
	FILE *f = file_of(fp);
	if (f)
		return fsetpos(f, pos);
	errno = ESPIPE;
	return -1;
}

/* ---------------------------------------------------------------- input */

DLLAPI int FCGI_fgetc(FCGI_FILE *fp)
{
	FILE *f = file_of(fp);
	if (f)
		return fgetc(f);
	return fp->fcgx_stream ? FCGX_GetChar(fp->fcgx_stream) : EOF;
}

DLLAPI int FCGI_getchar(void) { return FCGI_fgetc(FCGI_stdin); }

DLLAPI int FCGI_ungetc(int c, FCGI_FILE *fp)
{
	FILE *f = file_of(fp);
	if (f)
		return ungetc(c, f);
	return fp->fcgx_stream ? FCGX_UnGetChar(c, fp->fcgx_stream) : EOF;
}

DLLAPI char *FCGI_fgets(char *str, int size, FCGI_FILE *fp)
{
	FILE *f = file_of(fp);
	if (f)
		return fgets(str, size, f);
	return fp->fcgx_stream ? FCGX_GetLine(str, size, fp->fcgx_stream) : NULL;
}

DLLAPI char *FCGI_gets(char *str)
{
	/* gets(): a line without its '\n'; NULL when the input ends before anything was read. */
	char *p = str;
	int c;
	while ((c = FCGI_getchar()) != EOF && c != '\n')
		*p++ = (char)c;
	if (c == EOF && p == str)
		return NULL;
	*p = '\0';
	return str;
}

DLLAPI size_t FCGI_fread(void *ptr, size_t size, size_t nmemb, FCGI_FILE *fp)
{
	FILE *f = file_of(fp);
	if (f)
		return fread(ptr, size, nmemb, f);
	if (!fp->fcgx_stream || !size || !nmemb || nmemb > SIZE_MAX / size)
		return 0;
	size_t total = size * nmemb, got = 0;
	while (got < total) {
		size_t chunk = total - got < INT_MAX ? total - got : INT_MAX;
		int n = FCGX_GetStr((char *)ptr + got, (int)chunk, fp->fcgx_stream);
		got += (size_t)(n > 0 ? n : 0);
		if ((size_t)n < chunk)
			break;
	}
	return got / size;
}

/* ---------------------------------------------------------------- output */

DLLAPI int FCGI_fputc(int c, FCGI_FILE *fp)
{
	FILE *f = file_of(fp);
	if (f)
		return fputc(c, f);
	return fp->fcgx_stream ? FCGX_PutChar(c, fp->fcgx_stream) : EOF;
}

DLLAPI int FCGI_putchar(int c) { return FCGI_fputc(c, FCGI_stdout); }

DLLAPI int FCGI_fputs(const char *str, FCGI_FILE *fp)
{
	FILE *f = file_of(fp);
	if (f)
		return fputs(str, f);
	return fp->fcgx_stream ? FCGX_PutS(str, fp->fcgx_stream) : EOF;
}

DLLAPI int FCGI_puts(const char *str)
{
	FILE *f = file_of(FCGI_stdout);
	if (f)
		return puts(str);
	FCGX_Stream *s = FCGI_stdout->fcgx_stream;
	if (!s)
		return EOF;
	int n = FCGX_PutS(str, s);
	if (n < 0 || FCGX_PutChar('\n', s) == EOF)
		return EOF;
	return n + 1;
}

DLLAPI int FCGI_vfprintf(FCGI_FILE *fp, const char *format, va_list ap)
{
	FILE *f = file_of(fp);
	if (f)
		return vfprintf(f, format, ap);
	return fp->fcgx_stream ? FCGX_VFPrintF(fp->fcgx_stream, format, ap) : EOF;
}

DLLAPI int FCGI_vprintf(const char *format, va_list ap)
{
	return FCGI_vfprintf(FCGI_stdout, format, ap);
}

DLLAPI int FCGI_fprintf(FCGI_FILE *fp, const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	int rc = FCGI_vfprintf(fp, format, ap);
	va_end(ap);
	return rc;
}

DLLAPI int FCGI_printf(const char *format, ...)
{
	va_list ap;
	va_start(ap, format);
	int rc = FCGI_vfprintf(FCGI_stdout, format, ap);
	va_end(ap);
	return rc;
}

DLLAPI size_t FCGI_fwrite(void *ptr, size_t size, size_t nmemb, FCGI_FILE *fp)
{
	FILE *f = file_of(fp);
	if (f)
		return fwrite(ptr, size, nmemb, f);
	if (!fp->fcgx_stream || !size || !nmemb || nmemb > SIZE_MAX / size)
		return 0;
	size_t total = size * nmemb, put = 0;
	while (put < total) {
		size_t chunk = total - put < INT_MAX ? total - put : INT_MAX;
		if (FCGX_PutStr((const char *)ptr + put, (int)chunk, fp->fcgx_stream) < 0)
			break;
		put += chunk;
	}
	return put / size;
}

DLLAPI void FCGI_perror(const char *str)
{
	const char *msg = strerror(errno);
	FILE *f = file_of(FCGI_stderr);
	if (f) {
		perror(str);
		return;
	}
	FCGX_Stream *s = FCGI_stderr->fcgx_stream;
	if (!s)
		return;
	/* On a request stream libfcgi writes "str: message" with no newline; the same bytes go
	 * to the web server's log here. */
	if (str && *str) {
		FCGX_PutS(str, s);
		FCGX_PutS(": ", s);
	}
	FCGX_PutS(msg, s);
}

/* ---------------------------------------------------------------- state */

DLLAPI int FCGI_feof(FCGI_FILE *fp)
{
	FILE *f = file_of(fp);
	if (f)
		return feof(f);
	return fp->fcgx_stream ? FCGX_HasSeenEOF(fp->fcgx_stream) : 0;
}

DLLAPI int FCGI_ferror(FCGI_FILE *fp)
{
	FILE *f = file_of(fp);
	if (f)
		return ferror(f);
	return fp->fcgx_stream ? FCGX_GetError(fp->fcgx_stream) : 0;
}

DLLAPI void FCGI_clearerr(FCGI_FILE *fp)
{
	FILE *f = file_of(fp);
	if (f)
		clearerr(f);
	else if (fp->fcgx_stream)
		FCGX_ClearError(fp->fcgx_stream);
}

DLLAPI int FCGI_fileno(FCGI_FILE *fp)
{
	FILE *f = file_of(fp);
	return f ? fileno(f) : -1;
}
