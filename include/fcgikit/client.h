/*
 * fcgikit/client.h — the client side of libfcgikit: the web server's seat.
 *
 * Part of the umbrella header <fcgikit.h>; include that. Conventions are the same (negative
 * fcgi_err codes, opaque types with *_new / *_free, nothing exported but fcgi_*).
 *
 * An fcgi_client is one backend (an address), a small pool of connections to it and the
 * event loop that drives them. Requests (fcgi_client_req) are built, sent, answered through
 * callbacks or buffers, and freed by the caller:
 *
 *     fcgi_client *c;
 *     fcgi_client_new(&c, "unix:/run/php/php-fpm.sock");
 *     fcgi_client_req *r;
 *     fcgi_client_req_new(c, &r);
 *     fcgi_client_req_add_param(r, "SCRIPT_FILENAME", "/srv/www/index.php");
 *     fcgi_client_req_add_param(r, "REQUEST_METHOD", "GET");
 *     fcgi_client_req_send(r);
 *     fcgi_client_wait(c, r, 10000);              // blocking style
 *     size_t n; const void *out = fcgi_client_req_stdout(r, &n);
 *     fcgi_client_req_free(r);
 *     fcgi_client_free(c);
 *
 * Threads: a client and its requests are used by one thread at a time (the one running its
 * loop). Use one client per thread for parallel load; they share nothing.
 *
 * Event-loop use: fcgi_client_fd() is an epoll descriptor that polls readable when the client
 * has work; call fcgi_client_process(c, 0) then, and also after fcgi_client_next_timeout()
 * milliseconds. Completion and output callbacks run inside fcgi_client_process (or _wait,
 * _run), never inside other calls.
 */
#ifndef FCGIKIT_CLIENT_H
#define FCGIKIT_CLIENT_H

#include <fcgikit.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------
 * The CGI response head (RFC 3875 section 6): header lines, then an empty line, then the
 * body. A sans-I/O, zero-copy parser: results point into the caller's buffer.
 * ---------------------------------------------------------------------------------------- */

/* One header line: name and value are slices of the input (not NUL-terminated); the value
 * has its surrounding blanks removed. */
typedef struct fcgi_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
} fcgi_header;

typedef struct fcgi_cgi_head {
	int status;             /* from "Status: NNN reason"; else 302 when there is a Location
	                           header; else 200 */
	const char *reason;     /* the reason phrase of Status (may be empty), or NULL */
	size_t reason_len;
	const char *location;   /* the Location value, or NULL */
	size_t location_len;
	const char *content_type; /* the Content-Type value, or NULL */
	size_t content_type_len;
	size_t nheaders;        /* headers stored in the caller's array: every line but Status,
	                           in order */
	size_t head_len;        /* bytes of the head, the empty line included: the body starts
	                           at buf + head_len */
} fcgi_cgi_head;

/* Parses the head at the start of buf[0..len). Lines end with LF or CRLF. Header names are
 * HTTP tokens; values may not hold control characters other than tab; continuation lines
 * are refused. Returns head_len (> 0) when the head is complete, 0 when more bytes are
 * needed (call again with the longer buffer), FCGI_EPROTO when the bytes are not a CGI head,
 * or FCGI_ELIMIT when there are more than max_headers header lines or the head does not end
 * within max_bytes (0: 64 KiB). Nothing in buf is modified. */
FCGI_EXPORT ssize_t fcgi_cgi_head_parse(const char *buf, size_t len, fcgi_cgi_head *head,
                                        fcgi_header *headers, size_t max_headers,
                                        size_t max_bytes);

/* ------------------------------------------------------------------------------------------
 * The client: one backend and a pool of connections to it.
 * ---------------------------------------------------------------------------------------- */
typedef struct fcgi_client fcgi_client;
typedef struct fcgi_client_req fcgi_client_req;

/* Creates a client for an address: "unix:/path", "/path", "tcp:HOST:PORT", "HOST:PORT",
 * "[v6addr]:PORT" (host names are resolved now, first result). Connects lazily. FCGI_EADDR
 * for an address that does not parse. */
FCGI_EXPORT int fcgi_client_new(fcgi_client **out, const char *address);
/* Closes every connection and frees the client. Requests not yet freed by the caller are
 * finished without callbacks and freed too: their pointers become invalid. Not from inside
 * a callback. */
FCGI_EXPORT void fcgi_client_free(fcgi_client *c);

/* Options, set before the first request (timeouts in milliseconds, 0 = none). */
typedef enum fcgi_client_opt {
	FCGI_CLIENT_CONNECT_TIMEOUT_MS = 1, /* default 10000 */
	FCGI_CLIENT_READ_TIMEOUT_MS,   /* no byte from a backend that owes a response (60000) */
	FCGI_CLIENT_WRITE_TIMEOUT_MS,  /* no progress sending to the backend (60000) */
	FCGI_CLIENT_IDLE_TIMEOUT_MS,   /* a pooled idle connection is closed after (60000) */
	FCGI_CLIENT_KEEP_CONN,         /* 1 (default): ask FCGI_KEEP_CONN and pool connections;
	                                  0: one connection per request, closed after it */
	FCGI_CLIENT_MAX_CONNS,         /* connections open at once (default 8; lowered to the
	                                  backend's FCGI_MAX_CONNS when it says one); more
	                                  requests wait in the client's queue. Applications that
	                                  give each worker one kept connection (php-fpm, php-cgi,
	                                  libfcgi) leave connections beyond their worker count
	                                  in their accept queue: keep it at or below that, or
	                                  turn KEEP_CONN off */
	FCGI_CLIENT_MAX_IDLE,          /* idle connections kept in the pool (default 8) */
	FCGI_CLIENT_MPX,               /* multiplexing: 0 never; 1 (default) when the backend says
	                                  FCGI_MPXS_CONNS=1 in answer to a GET_VALUES the client
	                                  asks once, on its first connection; 2 always try it.
	                                  A request refused with CANT_MPX_CONN is sent again on a
	                                  connection of its own and multiplexing is turned off */
	FCGI_CLIENT_MAX_REQS_PER_CONN, /* requests in flight on one connection when multiplexing
	                                  (default 64, at most 1024; lowered to the backend's
	                                  FCGI_MAX_REQS) */
	FCGI_CLIENT_MAX_BUFFERED,      /* STDOUT plus STDERR bytes kept for a request that has no
	                                  output callback (default 256 MiB); past it the request
	                                  fails with FCGI_ETOOBIG */
} fcgi_client_opt;

FCGI_EXPORT int fcgi_client_set_opt(fcgi_client *c, fcgi_client_opt opt, long value);
FCGI_EXPORT long fcgi_client_get_opt(const fcgi_client *c, fcgi_client_opt opt);

/* What the client knows about the backend's multiplexing: 1 yes, 0 no, -1 not asked yet. */
FCGI_EXPORT int fcgi_client_mpxs(const fcgi_client *c);
/* A one-line description of the latest connection failure ("connect to unix:/x.sock:
 * connection refused (nothing is listening)"), or "" when there was none. Valid until the
 * next loop pass. */
FCGI_EXPORT const char *fcgi_client_last_error(const fcgi_client *c);

/* ------------------------------------------------------------------------------------------
 * Driving the client.
 * ---------------------------------------------------------------------------------------- */

/* Runs the loop until req has finished (its done callback, if any, has run). Returns
 * FCGI_OK once it has — the request's own outcome is fcgi_client_req_error() — or
 * FCGI_ETIMEDOUT when timeout_ms (-1: none) passed first; the request then goes on. */
FCGI_EXPORT int fcgi_client_wait(fcgi_client *c, fcgi_client_req *req, int timeout_ms);
/* Runs the loop until no request is queued or in flight, or timeout_ms passed
 * (FCGI_ETIMEDOUT). */
FCGI_EXPORT int fcgi_client_run(fcgi_client *c, int timeout_ms);
/* One pass of the loop: waits up to timeout_ms (-1: until something happens) for I/O, then
 * handles it, timeouts, and the callbacks due. FCGI_OK or FCGI_ESYS. */
FCGI_EXPORT int fcgi_client_process(fcgi_client *c, int timeout_ms);
/* An epoll descriptor that polls readable when the client has I/O to handle, or -1 (poll
 * fallback: drive it with fcgi_client_process and a short timeout then). */
FCGI_EXPORT int fcgi_client_fd(const fcgi_client *c);
/* Milliseconds until fcgi_client_process must run even without I/O: 0 when work is queued,
 * -1 when nothing is pending. */
FCGI_EXPORT int fcgi_client_next_timeout(const fcgi_client *c);

/* ------------------------------------------------------------------------------------------
 * GET_VALUES.
 * ---------------------------------------------------------------------------------------- */

/* A name-value pair, NUL-terminated strings. */
typedef struct fcgi_client_param {
	const char *name;
	const char *value;
} fcgi_client_param;

/* cb(c, err, values, n, ud): err FCGI_OK with the pairs the backend answered (n may be 0,
 * also when it answered UNKNOWN_TYPE: it does not know GET_VALUES), or the connection's
 * error. values are valid during the call. */
typedef void (*fcgi_client_values_cb)(fcgi_client *c, int err, const fcgi_client_param *values,
                                      size_t n, void *ud);
/* Asks the backend for the named values on a connection of its own (NULL names: the three
 * the spec defines: FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS). The answer also sets
 * what fcgi_client_mpxs() reports. cb runs from the loop. */
FCGI_EXPORT int fcgi_client_get_values(fcgi_client *c, const char *const *names, size_t n,
                                       fcgi_client_values_cb cb, void *ud);

/* ------------------------------------------------------------------------------------------
 * Requests.
 *
 * Lifetime: fcgi_client_req_new → set up → fcgi_client_req_send → (callbacks) → done →
 * fcgi_client_req_free. The caller owns the request from new to free and may free it at any
 * time: freeing one that has not finished aborts it, without callbacks. Requests must be
 * freed before their client, or are freed with it.
 * ---------------------------------------------------------------------------------------- */

FCGI_EXPORT int fcgi_client_req_new(fcgi_client *c, fcgi_client_req **out);
FCGI_EXPORT void fcgi_client_req_free(fcgi_client_req *req);

/* The role (default FCGI_ROLE_RESPONDER). Any 16-bit value is sent as given, so a test can
 * ask for a role the backend does not know. */
FCGI_EXPORT int fcgi_client_req_set_role(fcgi_client_req *req, unsigned role);

/* Parameters, copied. add appends (duplicates are sent as given); set replaces every
 * parameter of that name. The _n form takes binary names and values. */
FCGI_EXPORT int fcgi_client_req_add_param(fcgi_client_req *req, const char *name,
                                          const char *value);
FCGI_EXPORT int fcgi_client_req_add_param_n(fcgi_client_req *req, const void *name,
                                            size_t name_len, const void *value,
                                            size_t value_len);
FCGI_EXPORT int fcgi_client_req_set_param(fcgi_client_req *req, const char *name,
                                          const char *value);
/* A list of pairs. */
FCGI_EXPORT int fcgi_client_req_add_params(fcgi_client_req *req, const fcgi_client_param *list,
                                           size_t n);
/* A map in environment form: NULL-terminated "NAME=VALUE" strings (environ, a CGI's own
 * environment); entries without '=' are skipped. */
FCGI_EXPORT int fcgi_client_req_add_env(fcgi_client_req *req, const char *const *env);

/* The body (STDIN). One source per stream; none: an empty body.
 * - buffer: not copied; must stay valid and unchanged until the request is done;
 * - fd: read to its end as the connection can take it (a pipe or socket is polled, a
 *   regular file read directly); not closed;
 * - callback: cb(req, buf, size, ud) fills buf and returns the count, 0 at the end,
 *   FCGI_EAGAIN when nothing is ready now (call fcgi_client_req_resume() when it is), or
 *   another negative code to fail the request with it.
 * The fcgi_client_req_filter_data* forms give a Filter's DATA stream, sent after STDIN. */
typedef ssize_t (*fcgi_client_read_cb)(fcgi_client_req *req, void *buf, size_t size, void *ud);
FCGI_EXPORT int fcgi_client_req_body(fcgi_client_req *req, const void *data, size_t len);
FCGI_EXPORT int fcgi_client_req_body_fd(fcgi_client_req *req, int fd);
FCGI_EXPORT int fcgi_client_req_body_cb(fcgi_client_req *req, fcgi_client_read_cb cb, void *ud);
FCGI_EXPORT int fcgi_client_req_filter_data(fcgi_client_req *req, const void *data, size_t len);
FCGI_EXPORT int fcgi_client_req_filter_data_fd(fcgi_client_req *req, int fd);
FCGI_EXPORT int fcgi_client_req_filter_data_cb(fcgi_client_req *req, fcgi_client_read_cb cb,
                                               void *ud);
/* A callback source that returned FCGI_EAGAIN has more now. */
FCGI_EXPORT int fcgi_client_req_resume(fcgi_client_req *req);

/* Output streams, for the output callback. */
enum { FCGI_CLIENT_STDOUT = 1, FCGI_CLIENT_STDERR = 2 };

/* cb(req, stream, data, len, ud) for each piece of STDOUT or STDERR as it arrives (data
 * valid during the call only), and once with len 0 at each stream's end. Without an output
 * callback both streams are collected (fcgi_client_req_stdout/_stderr). */
typedef void (*fcgi_client_output_cb)(fcgi_client_req *req, int stream, const void *data,
                                      size_t len, void *ud);
FCGI_EXPORT int fcgi_client_req_on_output(fcgi_client_req *req, fcgi_client_output_cb cb,
                                          void *ud);
/* Flow control for the output callback's caller, when it cannot pass output on as fast as
 * it comes (a slow HTTP client). paused 1 stops, 0 resumes; callable any time, also from
 * inside the output callback, and before the request is sent.
 * - While a paused request is the only one in flight on its connection, the library stops
 *   reading that connection: the socket buffer fills and the application's writes wait. No
 *   output callback runs for it until it is resumed (bytes already read are kept, at most
 *   one read's worth, and delivered first on resume). No read or write timeout runs on the
 *   connection meanwhile: the caller bounds how long it stays paused (the request's own
 *   deadline, fcgi_client_req_set_timeout, still applies).
 * - While the connection is shared with other requests (multiplexing), it is read anyway,
 *   or they would stall: the paused request's output keeps coming and the caller must take
 *   it (the gateway spills it to a temporary file). New requests go to another connection
 *   when one can be used or opened (FCGI_CLIENT_MAX_CONNS), before joining such a one.
 * Freeing or aborting a paused request ends the pause. FCGI_OK, or FCGI_EINVAL for NULL. */
FCGI_EXPORT int fcgi_client_req_pause(fcgi_client_req *req, int paused);

/* cb(req, err, ud) exactly once when the request is done: err FCGI_OK when END_REQUEST
 * said REQUEST_COMPLETE, FCGI_EOVERLOADED / FCGI_ECANTMPX / FCGI_EUNKNOWNROLE for the other
 * protocol statuses, or what went wrong (FCGI_ESYS connecting, FCGI_ECLOSED, FCGI_EPROTO,
 * FCGI_ETIMEDOUT, FCGI_EABORTED, ...). The request may be freed inside the callback. */
typedef void (*fcgi_client_done_cb)(fcgi_client_req *req, int err, void *ud);
FCGI_EXPORT int fcgi_client_req_on_done(fcgi_client_req *req, fcgi_client_done_cb cb, void *ud);

/* A deadline for the whole request, from fcgi_client_req_send (0: none). When it passes the
 * request is aborted and finishes with FCGI_ETIMEDOUT. */
FCGI_EXPORT int fcgi_client_req_set_timeout(fcgi_client_req *req, unsigned timeout_ms);

/* Queues the request; it is written during the next loop pass. FCGI_ESTATE when already
 * sent. */
FCGI_EXPORT int fcgi_client_req_send(fcgi_client_req *req);
/* Gives up: a request still queued finishes with FCGI_EABORTED; one in flight gets an
 * ABORT_REQUEST, further output is dropped, and it finishes with FCGI_EABORTED when the
 * backend's END_REQUEST arrives (or its connection closes after the read timeout). */
FCGI_EXPORT int fcgi_client_req_abort(fcgi_client_req *req);

/* Results. */
FCGI_EXPORT int fcgi_client_req_is_done(const fcgi_client_req *req);
/* FCGI_OK, the error the request finished with, or FCGI_EAGAIN while not done. */
FCGI_EXPORT int fcgi_client_req_error(const fcgi_client_req *req);
/* A one-line description of the outcome ("connect unix:/x.sock: No such file or
 * directory", "END_REQUEST: OVERLOADED"), valid as long as the request. */
FCGI_EXPORT const char *fcgi_client_req_strerror(const fcgi_client_req *req);
/* errno behind an FCGI_ESYS outcome, else 0. */
FCGI_EXPORT int fcgi_client_req_sys_errno(const fcgi_client_req *req);
/* END_REQUEST's appStatus, and its protocolStatus (an fcgi_status; -1 when no END_REQUEST
 * arrived). */
FCGI_EXPORT uint32_t fcgi_client_req_app_status(const fcgi_client_req *req);
FCGI_EXPORT int fcgi_client_req_protocol_status(const fcgi_client_req *req);
/* Collected output (no output callback): valid until the request is freed. */
FCGI_EXPORT const void *fcgi_client_req_stdout(const fcgi_client_req *req, size_t *len);
FCGI_EXPORT const void *fcgi_client_req_stderr(const fcgi_client_req *req, size_t *len);
/* The request id used on the wire (0 before it was sent). */
FCGI_EXPORT unsigned fcgi_client_req_id(const fcgi_client_req *req);
/* Whether it shared its connection with other requests in flight when sent. */
FCGI_EXPORT int fcgi_client_req_multiplexed(const fcgi_client_req *req);

/* A pointer the caller may attach to a request. */
FCGI_EXPORT void fcgi_client_req_set_data(fcgi_client_req *req, void *data);
FCGI_EXPORT void *fcgi_client_req_data(const fcgi_client_req *req);

/* ------------------------------------------------------------------------------------------
 * One call, blocking: connects, sends, waits, and returns the finished request in *out
 * (free it with fcgi_client_req_free, which also closes the connection). Returns FCGI_OK
 * when the request finished, whatever its outcome (see fcgi_client_req_error: FCGI_ETIMEDOUT
 * when timeout_ms, -1 for none, passed first), or an argument/allocation error (*out NULL).
 * ---------------------------------------------------------------------------------------- */
FCGI_EXPORT int fcgi_client_call(const char *address, const fcgi_client_param *params,
                                 size_t nparams, const void *body, size_t body_len,
                                 int timeout_ms, fcgi_client_req **out);

#ifdef __cplusplus
}
#endif
#endif /* FCGIKIT_CLIENT_H */
