/* http.h — the HTTP/1.1 request side of `fcgikit gateway`: a sans-I/O request-head parser and
 * a chunked transfer-coding decoder (RFC 9112, RFC 9110). Internal to the library (fk_ names,
 * nothing exported).
 *
 * Both halves take bytes the caller owns and hand back slices into them; neither allocates,
 * reads a clock or touches a descriptor. "Need more bytes" is an explicit result.
 *
 * Strictness. The gateway sits in front of FastCGI applications that trust what it forwards,
 * so anything two HTTP implementations could read two ways (the request smuggling family) is
 * refused rather than repaired:
 *  - line endings are CRLF only. A bare LF is refused (400) although RFC 9112 §2.2 lets a
 *    recipient accept it: every client that matters sends CRLF, and a front that accepts LF
 *    while a peer does not is a classic desynchronisation;
 *  - a bare CR anywhere is refused (400); obs-fold is refused (400); whitespace between a
 *    field name and its colon is refused (400);
 *  - Content-Length is 1*DIGIT; a comma list, a second Content-Length line (even with the same
 *    value, which RFC 9110 §8.6 would let us accept), or a value past 2^64-1 are refused (400);
 *  - Transfer-Encoding together with Content-Length is refused (400), as is Transfer-Encoding
 *    in HTTP/1.0 (400). The only transfer coding implemented is "chunked" alone;
 *    other codings ("gzip, chunked", "gzip") answer 501; "chunked" not last or twice, and a
 *    coding with parameters, answer 400;
 *  - HTTP/1.1 without Host, or with several Host lines, or an invalid Host is refused (400);
 *  - the request line is exactly METHOD SP request-target SP HTTP/D.D. The target is VCHAR
 *    only (no CTL, space or byte >= 0x80) and holds no '#'; its form must fit the method:
 *    origin-form, absolute-form (http/https, no userinfo, non-empty host), asterisk-form for
 *    OPTIONS only. CONNECT is not implemented (501); a major version other than 1 is 505.
 * Any number of empty lines (CRLF) before the request line are skipped (RFC 9112 §2.2
 * SHOULD: some clients send a CRLF after a POST body); they count towards max_head and the
 * returned head length.
 */
#ifndef FK_HTTP_H
#define FK_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* clang-format off */
/* Defaults, used when fk_http_limits is NULL or one of its fields is 0. */
#define FK_HTTP_MAX_LINE_DEFAULT 8192u    /* bytes in one line, CRLF excluded */
#define FK_HTTP_MAX_HEAD_DEFAULT 65536u   /* bytes of the whole head, final CRLFCRLF included */
#define FK_HTTP_MAX_HEADERS_DEFAULT 100u  /* header field lines */
/* Fixed bounds of the chunked decoder. */
#define FK_HTTP_CHUNK_LINE_MAX 4096u      /* chunk-size line with extensions, CRLF excluded */
#define FK_HTTP_CHUNK_DIGITS_MAX 16u      /* hex digits of chunk-size, leading zeros included */
#define FK_HTTP_TRAILERS_MAX 16384u       /* trailer section, every byte after the last-chunk
                                             line up to and including the final CRLF */
/* clang-format on */

/* The status the gateway should answer a refused request with. Set with every error; 0 when
 * there is none. fk_http_status_text() gives the reason phrase. */
typedef enum fk_http_status {
	FK_HTTP_STATUS_NONE = 0,
	FK_HTTP_400_BAD_REQUEST = 400,
	FK_HTTP_413_CONTENT_TOO_LARGE = 413,
	FK_HTTP_414_URI_TOO_LONG = 414,
	FK_HTTP_431_FIELDS_TOO_LARGE = 431,
	FK_HTTP_501_NOT_IMPLEMENTED = 501,
	FK_HTTP_505_VERSION_NOT_SUPPORTED = 505,
} fk_http_status;

/* "Bad Request", "Content Too Large", ...; "" for a status not in the list. Static storage. */
const char *fk_http_status_text(int status);

/* A run of bytes inside the caller's buffer (exceptions are named where they occur). Not
 * NUL-terminated; valid as long as that buffer is. */
typedef struct fk_http_slice {
	const char *p;
	size_t n;
} fk_http_slice;

/* One header field line: name as sent (case preserved), value with leading and trailing
 * SP/HTAB removed (possibly empty). */
typedef struct fk_http_header {
	fk_http_slice name, value;
} fk_http_header;

/* Limits of the head parser. A field left 0 takes its default. */
typedef struct fk_http_limits {
	/* Longest request line / header line, CRLF excluded (8192). Request line over it: 414;
	 * header line over it: 431. */
	size_t max_line;
	/* Whole head including the blank line (65536), clamped to INT_MAX; over it: 431. */
	size_t max_head;
	/* Header lines (100); more, or more than the caller's slots: 431. */
	unsigned max_headers;
	/* Largest Content-Length accepted, 413 above; 0 = no limit. */
	uint64_t max_body;
} fk_http_limits;

typedef enum fk_http_body {
	FK_HTTP_BODY_NONE = 0,    /* no Content-Length, no Transfer-Encoding: no body */
	FK_HTTP_BODY_LENGTH = 1,  /* content_length bytes follow the head (maybe 0) */
	FK_HTTP_BODY_CHUNKED = 2, /* chunked body follows: decode with fk_http_chunked */
} fk_http_body;

typedef enum fk_http_target_form {
	FK_HTTP_FORM_ORIGIN = 0,   /* "/path?query" */
	FK_HTTP_FORM_ABSOLUTE = 1, /* "http://host/path?query" (http or https scheme) */
	FK_HTTP_FORM_ASTERISK = 2, /* "*", OPTIONS only */
} fk_http_target_form;

typedef struct fk_http_req {
	/* Input: the caller's header slots and their count. Output: nheaders = lines found. */
	fk_http_header *headers;
	unsigned nheaders;

	/* Output, all slices into the buffer unless said otherwise. */
	fk_http_slice method; /* a token, case-sensitive ("GET") */
	fk_http_slice target; /* the request-target exactly as sent */
	/* target up to '?': starts with '/' (for absolute-form the part after the authority;
	 * when that is empty, the static string "/", the one slice not into the buffer), or "*"
	 * for asterisk-form. */
	fk_http_slice path;
	fk_http_slice query; /* after the first '?', excluding it; n = 0 when none or empty */
	fk_http_target_form form;
	/* 0 for HTTP/1.0, 1 for HTTP/1.1 (and 1.2..1.9, read as 1.1 per RFC 9110 §2.5). */
	int minor;
	/* 1.1: 1 unless Connection lists "close"; 1.0: 0 unless it lists "keep-alive" (and not
	 * "close"). */
	int keep_alive;
	/* 1.1 request with "Expect: 100-continue" and a body announced (RFC 9110 §10.1.1: the
	 * expectation is ignored in 1.0; other expectations are ignored). */
	int expect_continue;
	fk_http_body body;
	uint64_t content_length; /* FK_HTTP_BODY_LENGTH only, else 0 */
	/* The authority of an absolute-form target (RFC 9112 §3.2.2: it wins over Host), else
	 * the Host value (may be empty), else {NULL, 0} (HTTP/1.0 without Host). Validated:
	 * reg-name or IPv4 characters, or "[" IP-literal "]", then an optional ":port". */
	fk_http_slice host;
} fk_http_req;

/* Parses the request head at buf[0..len).
 *
 * Returns:
 *  > 0          complete: the head's length, CRLFCRLF included; the body (if any) or the next
 *               pipelined request starts there. *req is filled in.
 *  FCGI_EAGAIN  the head is not complete and nothing seen so far is wrong or past a limit.
 *  FCGI_EPROTO  refused (*status 400, 501 or 505).
 *  FCGI_ETOOBIG a limit was passed (*status 413, 414 or 431).
 * On every error *status is set and *why points to a short static reason for the log ("bare
 * LF line ending"); on success and EAGAIN *status = 0 and *why = NULL. status and why may be
 * NULL.
 *
 * Stateless (picohttpparser style): after EAGAIN, read more and call again with the grown
 * buffer. prev_len may be the len of the previous call on the same bytes that returned
 * FCGI_EAGAIN, or 0: it only saves rescanning the lines already checked (a correct hint never
 * changes the result; a wrong one can change the result but never reads outside buf[0..len)).
 *
 * The result is a function of the bytes only, decided in the order they arrive: for any
 * prefix of a buffer the answer is EAGAIN or the answer for the whole buffer. Errors a line
 * alone shows (syntax, line length) are found as soon as that line is complete; checks that
 * need every header (Host, Content-Length vs Transfer-Encoding, header count) when the head
 * is complete; head size as soon as the max_head-th byte is passed.
 *
 * After any error the framing of the connection is lost: answer *status, then close.
 *
 * Cost: without a hint each call walks the whole buffer; with it, a call walks only the last
 * incomplete line and the new bytes (at most max_line + what arrived), and the call that
 * completes the head walks the head once more.
 *
 * *req: headers and nheaders are read (slot array and capacity; headers may be NULL when
 * nheaders is 0). Only a successful call writes *req; any call may write the slots. Reset
 * nheaders to the capacity before parsing the next request. No allocation; lim may be NULL. */
int fk_http_parse_request(const char *buf, size_t len, size_t prev_len, const fk_http_limits *lim,
                          fk_http_req *req, int *status, const char **why);

/* Whether h's name is lowercase_name, ignoring ASCII case. lowercase_name must be lowercase. */
int fk_http_header_is(const fk_http_header *h, const char *lowercase_name);
/* The first header named lowercase_name (ASCII case ignored), or NULL. */
const fk_http_header *fk_http_find(const fk_http_req *r, const char *lowercase_name);

/* Chunked transfer-coding decoder (RFC 9112 §7.1): bytes in, payload slices out.
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext    = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
 *
 * Extensions are checked against that grammar and discarded; trailer fields are checked like
 * header lines (token name, colon, no CTL but HTAB in the value, no obs-fold) and discarded:
 * the gateway does not forward trailers. CRLF is strict everywhere. */
typedef enum fk_http_chunked_state {
	FK_CS_SIZE = 0,      /* hex digits of chunk-size */
	FK_CS_EXT_WS,        /* BWS after the size: ';' must follow */
	FK_CS_EXT_NAME_WS,   /* after ';' */
	FK_CS_EXT_NAME,      /* in an extension name */
	FK_CS_EXT_NAME_END,  /* BWS after a name: '=' or ';' must follow */
	FK_CS_EXT_VAL_WS,    /* after '=' */
	FK_CS_EXT_VAL,       /* in a token value */
	FK_CS_EXT_QVAL,      /* in a quoted-string value */
	FK_CS_EXT_QVAL_ESC,  /* after a backslash in a quoted-string */
	FK_CS_EXT_QVAL_END,  /* after the closing quote */
	FK_CS_EXT_VAL_END,   /* BWS after a value: ';' must follow */
	FK_CS_SIZE_LF,       /* CR of the size line seen */
	FK_CS_DATA,          /* remaining payload bytes of this chunk */
	FK_CS_DATA_CR,       /* CR expected after chunk-data */
	FK_CS_DATA_LF,       /* LF expected after chunk-data */
	FK_CS_TRAILER,       /* at the start of a trailer line (or the final CRLF) */
	FK_CS_TRAILER_NAME,  /* in a trailer field name */
	FK_CS_TRAILER_VALUE, /* in a trailer field value */
	FK_CS_TRAILER_LF,    /* CR of a trailer line seen */
	FK_CS_END_LF,        /* CR of the final CRLF seen */
	FK_CS_DONE,          /* complete; bytes after it belong to the next request */
	FK_CS_ERROR,         /* refused; sticky */
} fk_http_chunked_state;

/* "SIZE", "DATA", ... for traces. */
const char *fk_http_chunked_state_name(int state);

typedef struct fk_http_chunked {
	/* Input, set after init if wanted: payload limit, 413 past it; 0 = no limit. */
	uint64_t max_body;
	/* Payload bytes still to come in the current chunk (the chunk-size being read while
	 * in the size line). */
	uint64_t remaining;
	uint64_t total;       /* payload bytes decoded so far */
	size_t line_bytes;    /* bytes of the current chunk-size line */
	size_t trailer_bytes; /* bytes of the trailer section so far */
	unsigned digits;      /* hex digits of the current chunk-size */
	fk_http_chunked_state state;
	int err;         /* FK_CS_ERROR: the code every later call returns */
	int status;      /* FK_CS_ERROR: the status to answer (400, 413, 431) */
	const char *why; /* FK_CS_ERROR: static reason */
} fk_http_chunked;

/* Starts a body: state SIZE, counters 0, max_body 0. */
void fk_http_chunked_init(fk_http_chunked *c);

/* Consumes bytes from in[0..len). Returns the count consumed (>= 0), or FCGI_EPROTO
 * (malformed: status 400) / FCGI_ETOOBIG (chunk-size digits or line: 400; trailers: 431;
 * payload past max_body: 413) with c->status and c->why set; after an error every call
 * returns it again.
 *
 * *data, *data_len: payload found in this call, a slice of `in` ending exactly at in + the
 * returned count, or NULL/0. At most one slice per call: the call stops right after it, so
 * call again with the rest. *done = 1 once the last chunk and the trailer section have been
 * consumed; the decoder then consumes nothing more (the rest of the input is the next
 * pipelined request). Returns 0 only when len is 0 or the body is complete: otherwise every
 * call makes progress. At most INT_MAX bytes are consumed per call. */
int fk_http_chunked_feed(fk_http_chunked *c, const char *in, size_t len, const char **data,
                         size_t *data_len, int *done);

#endif
