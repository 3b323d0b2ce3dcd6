/*
 * fcgikit.h — the one public header of libfcgikit.
 *
 * libfcgikit serves FastCGI (Responder, Authorizer, Filter) behind any web server. It reads
 * every request on one small event loop, multiplexes requests over a connection when the
 * peer does, and hands complete requests either to threads that block in fcgi_accept()
 * (the familiar libfcgi style) or to a handler called on the loop (event-driven style).
 *
 * Conventions
 * - Every function that can fail returns an int: FCGI_OK (0) or a negative fcgi_err code.
 *   Functions that return a count return it as a non-negative ssize_t, or a negative code.
 * - Types are opaque; create with *_new, destroy with *_free.
 * - Strings passed in are copied unless the comment says otherwise.
 * - Names starting with fcgi_ / FCGI_ are the public API; nothing else is exported.
 */
#ifndef FCGIKIT_H
#define FCGIKIT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FCGIKIT_VERSION_MAJOR 0
#define FCGIKIT_VERSION_MINOR 1
#define FCGIKIT_VERSION_PATCH 0
#define FCGIKIT_VERSION_STRING "0.1.0"

#if defined(FCGIKIT_BUILDING)
#define FCGI_EXPORT __attribute__((visibility("default")))
#else
#define FCGI_EXPORT
#endif

#if defined(__GNUC__)
#define FCGI_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FCGI_PRINTF(a, b)
#endif

/* ------------------------------------------------------------------------------------------
 * Errors: one list, negative codes. fcgi_strerror() and fcgi_err_name() never return NULL.
 * ---------------------------------------------------------------------------------------- */
#define FCGI_ERRNO_MAP(X)                                                                      \
	X(EINVAL, -1, "invalid argument")                                                          \
	X(ENOMEM, -2, "out of memory")                                                             \
	X(EPROTO, -3, "malformed FastCGI data from the peer")                                      \
	X(ELIMIT, -4, "a configured limit was reached")                                            \
	X(EAGAIN, -5, "operation would block; try again later")                                    \
	X(ECLOSED, -6, "connection closed")                                                        \
	X(EABORTED, -7, "request aborted by the client")                                           \
	X(ETIMEDOUT, -8, "timed out")                                                              \
	X(ESYS, -9, "system call failed (see errno)")                                              \
	X(EADDR, -10, "bad or unusable address")                                                   \
	X(ESTATE, -11, "call not valid in this state")                                             \
	X(ESHUTDOWN, -12, "application is shutting down")                                          \
	X(EOVERLOADED, -13, "peer or application is overloaded")                                   \
	X(ECANTMPX, -14, "peer cannot multiplex connections")                                      \
	X(EUNKNOWNROLE, -15, "unknown role")                                                       \
	X(EDENIED, -16, "peer address is not allowed")                                             \
	X(ENOTFCGI, -17, "not started as a FastCGI application (no listening socket on fd 0)")    \
	X(ETOOBIG, -18, "value too large")

typedef enum fcgi_err {
	FCGI_OK = 0,
#define FCGI_ERR_ENUM_(name, code, text) FCGI_##name = code,
	FCGI_ERRNO_MAP(FCGI_ERR_ENUM_)
#undef FCGI_ERR_ENUM_
} fcgi_err;

/* A short human-readable description ("out of memory"). Static storage. */
FCGI_EXPORT const char *fcgi_strerror(int err);
/* The code's name ("FCGI_ENOMEM"). Static storage. */
FCGI_EXPORT const char *fcgi_err_name(int err);
/* The library version as a string, e.g. "0.1.0". */
FCGI_EXPORT const char *fcgi_version(void);

/* ------------------------------------------------------------------------------------------
 * Protocol values that the API exposes.
 * ---------------------------------------------------------------------------------------- */
typedef enum fcgi_role {
	FCGI_ROLE_RESPONDER = 1,
	FCGI_ROLE_AUTHORIZER = 2,
	FCGI_ROLE_FILTER = 3,
} fcgi_role;

/* protocolStatus of END_REQUEST. */
typedef enum fcgi_status {
	FCGI_STATUS_COMPLETE = 0,
	FCGI_STATUS_CANT_MPX_CONN = 1,
	FCGI_STATUS_OVERLOADED = 2,
	FCGI_STATUS_UNKNOWN_ROLE = 3,
} fcgi_status;

/* ------------------------------------------------------------------------------------------
 * Allocation. The library never aborts on allocation failure: it reports FCGI_ENOMEM.
 * fcgi_set_allocator() is process-wide and must be called before any other fcgi_ call, or
 * not at all. realloc(ud, NULL, n) allocates; realloc(ud, p, 0) is never called; free may be
 * given NULL. Passing NULL restores the C library's allocator.
 * ---------------------------------------------------------------------------------------- */
typedef struct fcgi_allocator {
	void *(*realloc)(void *ud, void *ptr, size_t size);
	void (*free)(void *ud, void *ptr);
	void *ud;
} fcgi_allocator;

FCGI_EXPORT void fcgi_set_allocator(const fcgi_allocator *a);

/* ------------------------------------------------------------------------------------------
 * The application.
 *
 * An fcgi_app owns its listening sockets, its connections and one event loop. Requests are
 * read on the loop; a request is handed on once its PARAMS stream is complete.
 *
 * Threads: all fcgi_app_* functions except fcgi_app_free may be called from any thread.
 * fcgi_accept() may be called by many threads at once: the threads take turns running the
 * loop, so no thread is ever tied to a connection and idle kept-alive connections cost no
 * thread. fcgi_app_stop() is also async-signal-safe.
 * ---------------------------------------------------------------------------------------- */
typedef struct fcgi_app fcgi_app;
typedef struct fcgi_req fcgi_req;

/* Creates an application with default limits. The allowed-peer list starts from the
 * environment variable FCGI_WEB_SERVER_ADDRS when it is set. */
FCGI_EXPORT int fcgi_app_new(fcgi_app **out);
/* Closes every socket and frees everything. No other thread may be inside the app. Requests
 * not yet finished are freed too: their fcgi_req pointers become invalid. */
FCGI_EXPORT void fcgi_app_free(fcgi_app *app);

/* Options. Set them before the first listen/accept/run; the limits are also what
 * GET_VALUES reports (FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS). Timeouts are in
 * milliseconds, 0 = none. Sizes in bytes. */
typedef enum fcgi_opt {
	FCGI_OPT_MAX_CONNS = 1,       /* connections open at once (default 1024); at the limit the
	                                 least recently active idle one is closed to make room,
	                                 else the new one is. Listening raises RLIMIT_NOFILE's
	                                 soft limit to fit, as far as the hard limit allows */
	FCGI_OPT_MAX_REQS,            /* requests in flight in the app (default 1024); more:
	                                 END_REQUEST(OVERLOADED) */
	FCGI_OPT_MAX_REQS_PER_CONN,   /* requests in flight on one connection (default 256) */
	FCGI_OPT_MPXS_CONNS,          /* 1: multiplex (default); 0: CANT_MPX_CONN for a second
	                                 request on a busy connection */
	FCGI_OPT_MAX_PARAMS_BYTES,    /* PARAMS stream size per request (default 64 KiB) */
	FCGI_OPT_MAX_PARAMS_COUNT,    /* name-value pairs per request (default 512) */
	FCGI_OPT_BODY_BUFFER,         /* STDIN/DATA bytes buffered per request before the
	                                 connection's reads pause (default 256 KiB) */
	FCGI_OPT_OUT_BUFFER,          /* response bytes buffered per connection before writers
	                                 wait (default 256 KiB) */
	FCGI_OPT_IDLE_TIMEOUT_MS,     /* a connection with no request in flight (default 300000) */
	FCGI_OPT_READ_TIMEOUT_MS,     /* no byte from a peer whose request is incomplete
	                                 (default 60000) */
	FCGI_OPT_WRITE_TIMEOUT_MS,    /* no progress writing to a peer (default 60000) */
	FCGI_OPT_DRAIN_TIMEOUT_MS,    /* graceful stop bound (default 10000) */
	FCGI_OPT_BACKLOG,             /* listen() backlog for sockets the app opens (default 1024) */
	FCGI_OPT_UNIX_MODE,           /* permissions of Unix sockets the app creates (default 0666,
	                                 octal) */
} fcgi_opt;

FCGI_EXPORT int fcgi_app_set_opt(fcgi_app *app, fcgi_opt opt, long value);
FCGI_EXPORT long fcgi_app_get_opt(const fcgi_app *app, fcgi_opt opt);

/* Listens on an address:
 *   "unix:/path/to.sock" (a stale socket file is replaced), "tcp:HOST:PORT", "HOST:PORT",
 *   "[v6addr]:PORT", ":PORT" (all interfaces, v6 and v4), "/path" (Unix).
 * May be called several times. */
FCGI_EXPORT int fcgi_app_listen(fcgi_app *app, const char *address);
/* Adopts a listening socket; the app owns it afterwards and closes it. */
FCGI_EXPORT int fcgi_app_listen_fd(fcgi_app *app, int fd);
/* Adopts the sockets a spawner handed over: systemd's LISTEN_FDS (when LISTEN_PID is this
 * process), else a listening socket on fd 0 (FCGI_LISTENSOCK_FILENO). Returns how many
 * were adopted (>= 1) or FCGI_ENOTFCGI. */
FCGI_EXPORT int fcgi_app_listen_inherited(fcgi_app *app);
/* Where the first listening socket is bound, written as an address string fcgi_app_listen
 * accepts ("127.0.0.1:9000", "[::1]:9000", "unix:/p"). Useful after listening on port 0. */
FCGI_EXPORT int fcgi_app_local_address(fcgi_app *app, char *buf, size_t size);

/* Replaces the list of peers allowed to connect over TCP: comma-separated IPv4/IPv6
 * addresses, each optionally with "/prefix". NULL or "" allows everyone. Unix socket peers
 * are always allowed. */
FCGI_EXPORT int fcgi_app_allow(fcgi_app *app, const char *addrs);

/* Installs SIGTERM and SIGINT handlers that start a graceful stop; a second signal exits the
 * process at once. Ignores SIGPIPE. One app per process may do this. */
FCGI_EXPORT int fcgi_app_handle_signals(fcgi_app *app);
/* Preload, then fork. Call once the app has loaded what its workers share and has its
 * listening sockets, before any thread starts and before it serves: the process forks
 * workers that inherit the loaded data copy-on-write. In each worker the call returns
 * FCGI_OK and the worker serves (fcgi_accept loop or fcgi_app_run) with an event loop of its
 * own over the same sockets. The calling process never serves: it keeps `workers` workers
 * running (replacing those that exit, with a growing delay for ones that die at once),
 * turns SIGTERM and SIGINT into a graceful stop of all of them, and returns FCGI_ESHUTDOWN
 * once they have gone — then it should exit.
 * Under `fcgikit pm` with `preload = yes` the manager decides how many workers run and
 * supervises each (timeouts, recycling, status): `workers` is then ignored and the calling
 * process only forks on the manager's request.
 * Errors: FCGI_EINVAL (workers outside 1..1024, or the app already serves), FCGI_ENOMEM,
 * FCGI_ESYS. */
FCGI_EXPORT int fcgi_app_prefork(fcgi_app *app, int workers);

/* Starts a graceful stop: the listening sockets close, idle connections close, requests in
 * flight finish (bounded by FCGI_OPT_DRAIN_TIMEOUT_MS), then fcgi_accept() returns
 * FCGI_ESHUTDOWN and fcgi_app_run() returns. Async-signal-safe. */
FCGI_EXPORT void fcgi_app_stop(fcgi_app *app);

/* ------------------------------------------------------------------------------------------
 * Blocking style: threads loop on fcgi_accept(), read, write, finish.
 * ---------------------------------------------------------------------------------------- */

/* Waits for the next request whose PARAMS are complete. Returns FCGI_OK and *out, or
 * FCGI_ESHUTDOWN once the app has stopped and drained. The request belongs to the caller
 * until fcgi_finish(). */
FCGI_EXPORT int fcgi_accept(fcgi_app *app, fcgi_req **out);

/* ------------------------------------------------------------------------------------------
 * Event-driven style.
 * ---------------------------------------------------------------------------------------- */

/* Called on the loop thread when a request's PARAMS are complete. The handler owns the
 * request until fcgi_finish(), which it may call later and from any thread. It must not
 * block: read the body with fcgi_req_on_body(), not fcgi_read(). */
typedef void (*fcgi_handler)(fcgi_req *req, void *ud);
/* With a handler set, requests go to it instead of to fcgi_accept(). */
FCGI_EXPORT int fcgi_app_set_handler(fcgi_app *app, fcgi_handler handler, void *ud);

/* Runs the loop in this thread until the app has stopped and drained. Several threads may
 * call it (they take turns). Returns FCGI_OK or an error. */
FCGI_EXPORT int fcgi_app_run(fcgi_app *app);

/* Embedding into another event loop: fcgi_app_fd() is a descriptor that becomes readable
 * whenever the app has work; then call fcgi_app_process(app, 0). fcgi_app_process() runs
 * one pass of the loop, waiting at most timeout_ms (-1: until something happens). Returns
 * FCGI_OK, or FCGI_ESHUTDOWN once stopped and drained. */
FCGI_EXPORT int fcgi_app_fd(fcgi_app *app);
FCGI_EXPORT int fcgi_app_process(fcgi_app *app, int timeout_ms);

/* Runs cb(ud) on the loop thread after delay_ms. Returns FCGI_OK or FCGI_ENOMEM. Timers
 * that have not fired when the app is freed are dropped without a call. */
FCGI_EXPORT int fcgi_app_timer(fcgi_app *app, unsigned delay_ms, void (*cb)(void *ud), void *ud);

/* ------------------------------------------------------------------------------------------
 * Requests.
 * A request is valid from fcgi_accept()/the handler until fcgi_finish(). Every string it
 * returns stays valid as long as the request.
 * ---------------------------------------------------------------------------------------- */

FCGI_EXPORT fcgi_role fcgi_req_role(const fcgi_req *req);
/* The FastCGI request id (1..65535), unique among requests in flight on its connection. */
FCGI_EXPORT unsigned fcgi_req_id(const fcgi_req *req);
/* Whether the peer asked to keep the connection (FCGI_KEEP_CONN). */
FCGI_EXPORT int fcgi_req_keep_conn(const fcgi_req *req);

/* A parameter's value (NUL-terminated), or NULL. */
FCGI_EXPORT const char *fcgi_param(const fcgi_req *req, const char *name);
/* Parameters by index, in the order the peer sent them; FCGI_EINVAL past the end. Names and
 * values are NUL-terminated; the lengths allow embedded NULs. */
FCGI_EXPORT size_t fcgi_param_count(const fcgi_req *req);
FCGI_EXPORT int fcgi_param_at(const fcgi_req *req, size_t i, const char **name, size_t *name_len,
                              const char **value, size_t *value_len);

/* Reads the request body (STDIN). Blocks until at least one byte is there. Returns the
 * count, 0 at the end of the body, or FCGI_EABORTED / FCGI_ECLOSED / FCGI_ETIMEDOUT. With
 * a handler (event style) called on the loop thread it returns FCGI_EAGAIN instead of
 * blocking. */
FCGI_EXPORT ssize_t fcgi_read(fcgi_req *req, void *buf, size_t size);
/* The same for a Filter's DATA stream (the file to filter); read STDIN to its end first. */
FCGI_EXPORT ssize_t fcgi_read_data(fcgi_req *req, void *buf, size_t size);

/* Event style: cb(req, data, len, ud) for each piece of the body as it arrives and once with
 * len 0 at its end. Bytes already buffered are delivered first. For a Filter the DATA stream
 * follows STDIN's end call in the same callback, with its own end call. The callback runs
 * on the loop thread; data is valid only during the call. */
typedef void (*fcgi_body_cb)(fcgi_req *req, const void *data, size_t len, void *ud);
FCGI_EXPORT int fcgi_req_on_body(fcgi_req *req, fcgi_body_cb cb, void *ud);

/* Writes response bytes (STDOUT): a CGI response, header lines, blank line, body. Writes all
 * of it or fails. From a thread that is not running the loop it blocks while the
 * connection's output buffer is full (bounded by FCGI_OPT_WRITE_TIMEOUT_MS); on the loop
 * thread it returns FCGI_EAGAIN instead when the buffer is full (see fcgi_req_on_writable).
 * Returns FCGI_EABORTED once the client has gone; the request must still be finished. */
FCGI_EXPORT int fcgi_write(fcgi_req *req, const void *buf, size_t len);
FCGI_EXPORT int fcgi_puts(fcgi_req *req, const char *s);
FCGI_EXPORT int fcgi_printf(fcgi_req *req, const char *fmt, ...) FCGI_PRINTF(2, 3);
FCGI_EXPORT int fcgi_vprintf(fcgi_req *req, const char *fmt, va_list ap);
/* Writes to the STDERR stream (the web server's error log). */
FCGI_EXPORT int fcgi_write_err(fcgi_req *req, const void *buf, size_t len);
/* Sends what has been written so far without waiting for more. */
FCGI_EXPORT int fcgi_flush(fcgi_req *req);
/* Event style: cb(req, ud) once on the loop thread when the output buffer has room again. */
FCGI_EXPORT int fcgi_req_on_writable(fcgi_req *req, void (*cb)(fcgi_req *req, void *ud), void *ud);

/* Ends the request: closes its streams and sends END_REQUEST with app_status (the exit
 * status a CGI program would have had). The request is freed; the pointer is invalid on
 * return. Callable from any thread. Returns FCGI_OK, or the reason the response could not be
 * delivered (the request is freed all the same). */
FCGI_EXPORT int fcgi_finish(fcgi_req *req, int app_status);

/* ABORT_REQUEST: the client went away. fcgi_req_aborted() is a flag to poll; the callback
 * runs once on the loop thread (or at once when the request is already aborted). After an
 * abort, reads and writes fail with FCGI_EABORTED; the request must still be finished. */
FCGI_EXPORT int fcgi_req_aborted(const fcgi_req *req);
FCGI_EXPORT int fcgi_req_on_abort(fcgi_req *req, void (*cb)(fcgi_req *req, void *ud), void *ud);

/* A pointer the application may attach to a request. */
FCGI_EXPORT void fcgi_req_set_data(fcgi_req *req, void *data);
FCGI_EXPORT void *fcgi_req_data(const fcgi_req *req);

#include <fcgikit/client.h>
#ifdef __cplusplus
}
#endif
#endif /* FCGIKIT_H */
