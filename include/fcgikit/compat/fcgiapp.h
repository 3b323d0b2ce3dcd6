/*
 * fcgiapp.h — libfcgi's FCGX_* application API, implemented on libfcgikit (fcgikit compat).
 *
 * Programs written for libfcgi 2.4 build against this header unchanged (pkg-config
 * fcgikit-compat) and gain what libfcgikit does underneath: requests multiplexed on one
 * connection are handed to different threads, ABORT_REQUEST ends a request's streams, every
 * connection is read by one event loop so a slow peer cannot stall the others, limits on
 * PARAMS, GET_VALUES answered from the real settings. doc/compat.md lists what differs.
 *
 * The structures below keep libfcgi's layout byte for byte: the same library is also built as
 * a drop-in libfcgi.so.0 for programs linked against libfcgi itself.
 *
 * Return conventions (libfcgi's): stream functions return EOF (-1) on error or end of input;
 * FCGX_Accept* return 0, or a negative number (-errno, or -1) when no request will come.
 */
#ifndef _FCGIAPP_H
#define _FCGIAPP_H

#include <stdarg.h>

#ifndef DLLAPI
#if defined(FCGIKIT_COMPAT_BUILDING)
#define DLLAPI __attribute__((visibility("default")))
#else
#define DLLAPI
#endif
#endif

#if defined(c_plusplus) || defined(__cplusplus)
extern "C" {
#endif

/* Stream error codes (FCGX_GetError); negative so they never collide with errno values. */
#define FCGX_UNSUPPORTED_VERSION -2
#define FCGX_PROTOCOL_ERROR -3
#define FCGX_PARAMS_ERROR -4
#define FCGX_CALL_SEQ_ERROR -5

/*
 * A request's input (STDIN, then DATA for a Filter), output (STDOUT) or error (STDERR)
 * stream. Use it only through the functions below. The buffer pointers keep libfcgi's
 * meaning, for code that peeks at them:
 *   reader: bytes [rdNext, stop) are buffered, unread; stopUnget is where pushback ends;
 *           wrNext == stop.
 *   writer: bytes go to wrNext; the buffer is full when wrNext == stop; rdNext == stop.
 * isClosed: end of input seen, an error happened, or FCGX_FClose was called.
 */
typedef struct FCGX_Stream {
	unsigned char *rdNext;
	unsigned char *wrNext;
	unsigned char *stop;
	unsigned char *stopUnget;
	int isReader;
	int isClosed;
	int wasFCloseCalled;
	int FCGI_errno; /* 0, an errno value (> 0), or an FCGX_* code above (< 0) */
	void (*fillBuffProc)(struct FCGX_Stream *stream);
	void (*emptyBuffProc)(struct FCGX_Stream *stream, int doClose);
	void *data; /* the library's state for this stream */
} FCGX_Stream;

/* The request's parameters as an environment: "NAME=value" strings, NULL-terminated. */
typedef char **FCGX_ParamArray;

/* FCGX_InitRequest flag: accepted for compatibility (see doc/compat.md: a signal never makes
 * FCGX_Accept_r return, except the shutdown signal SIGUSR1). */
#define FCGI_FAIL_ACCEPT_ON_INTR 1

/*
 * One request slot: FCGX_InitRequest it, then loop on FCGX_Accept_r. The first six members
 * are for the application; the rest is the library's (kept for layout compatibility: here
 * paramsPtr holds the current request's state, ipcFd is -1, the others carry what their
 * names say).
 */
typedef struct FCGX_Request {
	int requestId; /* FastCGI request id of the current request */
	int role;      /* FCGI_RESPONDER, FCGI_AUTHORIZER or FCGI_FILTER (fastcgi.h) */
	FCGX_Stream *in;
	FCGX_Stream *out;
	FCGX_Stream *err;
	char **envp;

	struct Params *paramsPtr;
	int ipcFd;
	int isBeginProcessed;
	int keepConnection;
	int appStatus;
	int nWriters;
	int flags;
	int listen_sock;
	int detached;
} FCGX_Request;

/* ------------------------------------------------------------------------------------------
 * Control
 * ---------------------------------------------------------------------------------------- */

/* 1 when the program was started as a plain CGI program (no listening socket on fd 0 and no
 * systemd socket handed over), 0 when it runs as a FastCGI application. */
DLLAPI int FCGX_IsCGI(void);

/* Initializes the library: call once before FCGX_Accept_r in threaded programs (calling it
 * again is harmless). Installs a SIGPIPE handler that ignores the signal and a SIGUSR1 handler
 * that calls FCGX_ShutdownPending, each only where the program left the default action.
 * Returns 0. */
DLLAPI int FCGX_Init(void);

/* Opens a listening socket: path is a Unix socket path, ":PORT" (all interfaces) or
 * "HOST:PORT"; backlog is listen()'s. Returns the descriptor, or -1 with errno set. */
DLLAPI int FCGX_OpenSocket(const char *path, int backlog);

/* Prepares request for FCGX_Accept_r on the listening socket sock (0: the socket the program
 * was started with, FCGI_LISTENSOCK_FILENO, or systemd's). flags: 0 or
 * FCGI_FAIL_ACCEPT_ON_INTR. Returns 0. */
DLLAPI int FCGX_InitRequest(FCGX_Request *request, int sock, int flags);

/* Finishes the request held in request (as FCGX_Finish_r), then waits for the next one and
 * fills in requestId, role, in, out, err and envp. Thread-safe: any number of threads may
 * call it at once, each with its own FCGX_Request, with no lock of their own. Returns 0, or
 * a negative number once the library is shutting down (FCGX_ShutdownPending) or when sock
 * cannot be used (-ENOTSOCK when the program runs as CGI). */
DLLAPI int FCGX_Accept_r(FCGX_Request *request);

/* Ends the current request: sends what is buffered, closes the streams, sends END_REQUEST
 * with the exit status (FCGX_SetExitStatus) and frees the streams and envp. No-op without a
 * request. Thread-safe. */
DLLAPI void FCGX_Finish_r(FCGX_Request *request);

/* Frees the current request's streams and envp. In the process that accepted the request,
 * it is ended without sending what is still buffered; in a forked child only the child's
 * memory is released. close is accepted for compatibility. */
DLLAPI void FCGX_Free(FCGX_Request *request, int close);

/* The single-threaded forms: one request slot owned by the library, for listening socket 0.
 * FCGX_Accept finishes the previous request and stores the new streams and environment. */
DLLAPI int FCGX_Accept(FCGX_Stream **in, FCGX_Stream **out, FCGX_Stream **err,
                       FCGX_ParamArray *envp);
DLLAPI void FCGX_Finish(void);

/* For a Filter request: stream is the input stream, read to the end of STDIN; moves it to
 * the start of the DATA stream (the file to filter). Returns 0, or -1 with the stream error
 * FCGX_CALL_SEQ_ERROR when the request is no Filter or STDIN was not read to its end. */
DLLAPI int FCGX_StartFilterData(FCGX_Stream *stream);

/* Sets the exit status reported in END_REQUEST (what a CGI program would have exited with);
 * the last call before the request ends wins. stream is any stream of the request. */
DLLAPI void FCGX_SetExitStatus(int status, FCGX_Stream *stream);

/* ------------------------------------------------------------------------------------------
 * Parameters
 * ---------------------------------------------------------------------------------------- */

/* The value of name in envp, or NULL. The string lives until the request is finished. */
DLLAPI char *FCGX_GetParam(const char *name, FCGX_ParamArray envp);

/* ------------------------------------------------------------------------------------------
 * Reading (the in stream)
 * ---------------------------------------------------------------------------------------- */

/* The next byte (0..255), or EOF at the end of input or on error. */
DLLAPI int FCGX_GetChar(FCGX_Stream *stream);
/* Pushes c back so the next read returns it. At least one byte can be pushed back after a
 * successful read; never EOF. Returns c, or EOF when it cannot. */
DLLAPI int FCGX_UnGetChar(int c, FCGX_Stream *stream);
/* Reads n bytes into str, fewer only at the end of input (or on error). Returns the count. */
DLLAPI int FCGX_GetStr(char *str, int n, FCGX_Stream *stream);
/* Reads a line: at most n-1 bytes, up to and including '\n', then a NUL. Returns str, or
 * NULL when the input was already at its end. */
DLLAPI char *FCGX_GetLine(char *str, int n, FCGX_Stream *stream);
/* EOF once a read met the end of input, else 0 (like feof: it does not look ahead). */
DLLAPI int FCGX_HasSeenEOF(FCGX_Stream *stream);

/* ------------------------------------------------------------------------------------------
 * Writing (the out and err streams)
 * ---------------------------------------------------------------------------------------- */

/* Writes one byte. Returns the byte, or EOF on error. */
DLLAPI int FCGX_PutChar(int c, FCGX_Stream *stream);
/* Writes n bytes. Returns n, or EOF on error. */
DLLAPI int FCGX_PutStr(const char *str, int n, FCGX_Stream *stream);
/* Writes a NUL-terminated string. Returns its length, or EOF on error. */
DLLAPI int FCGX_PutS(const char *str, FCGX_Stream *stream);
/* printf to the stream. Returns the number of bytes written, or EOF on error. */
DLLAPI int FCGX_FPrintF(FCGX_Stream *stream, const char *format, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 2, 3)))
#endif
        ;
DLLAPI int FCGX_VFPrintF(FCGX_Stream *stream, const char *format, va_list arg);
/* Sends what is buffered to the web server now (server push). Finishing a request does this
 * anyway. Returns 0, or EOF on error. */
DLLAPI int FCGX_FFlush(FCGX_Stream *stream);

/* ------------------------------------------------------------------------------------------
 * Both
 * ---------------------------------------------------------------------------------------- */

/* Closes the stream; a writer's buffered bytes are sent first. Finishing a request closes
 * its streams anyway. Returns 0, or EOF on error. */
DLLAPI int FCGX_FClose(FCGX_Stream *stream);
/* The stream's error: 0, an errno value (> 0, e.g. EPIPE once the web server has gone), or
 * an FCGX_* code (< 0). */
DLLAPI int FCGX_GetError(FCGX_Stream *stream);
/* Resets the stream's error to 0 (the end-of-input mark stays, as in libfcgi). */
DLLAPI void FCGX_ClearError(FCGX_Stream *stream);

/* A stand-alone writer that frames its bytes as records of streamType for requestId and
 * writes them to the connected socket (what a FastCGI client such as cgi-fcgi needs); bufflen
 * is its buffer size. FCGX_FClose also sends the empty record that ends the stream. Free it
 * with FCGX_FreeStream. Returns NULL when out of memory. */
DLLAPI FCGX_Stream *FCGX_CreateWriter(int socket, int requestId, int bufflen, int streamType);
/* Frees a stream from FCGX_CreateWriter and sets *stream to NULL. A request's own streams
 * are freed with the request: for them only *stream is cleared. */
DLLAPI void FCGX_FreeStream(FCGX_Stream **stream);

/* Stops accepting: requests already received are still handed out and served, then
 * FCGX_Accept_r returns -1 in every thread. Async-signal-safe. */
DLLAPI void FCGX_ShutdownPending(void);

/* libfcgi marks a request as detached from (attached to) its connection for programs that
 * fork; here they only record the mark. Detach returns -1 without a current request. */
DLLAPI int FCGX_Attach(FCGX_Request *r);
DLLAPI int FCGX_Detach(FCGX_Request *r);

#if defined(c_plusplus) || defined(__cplusplus)
}
#endif

#endif /* _FCGIAPP_H */
