/*
 * codec.h — the sans-I/O FastCGI codec: bytes in, events out; encoders write into caller
 * buffers. No sockets, clocks, threads or global state here, so the application runtime,
 * the client, the tests and the fuzzers all drive the same core.
 *
 * Two layers:
 *  1. Pure primitives: record header and name-value pair encode/decode, fixed-body records.
 *  2. State machines: fk_reader (the record layer: splits a byte stream into records,
 *     content handed out as zero-copy slices) and fk_srv (the application side of one
 *     connection: request states, PARAMS collection, limits, management answers).
 *
 * Return convention for decoders: > 0 bytes consumed / an event produced, 0 "need more
 * bytes", < 0 an fcgi_err code (the connection must be closed).
 */
#ifndef FK_CODEC_H
#define FK_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "codec/proto.h"
#include "util/buf.h"

/* ---------------------------------------------------------------- primitives */

typedef struct fk_header {
	uint8_t version;
	uint8_t type;
	uint16_t request_id;
	uint16_t content_len;
	uint8_t padding_len;
} fk_header;

/* Writes an 8-byte header. */
void fk_header_encode(uint8_t out[FK_HEADER_LEN], unsigned type, unsigned request_id,
                      unsigned content_len, unsigned padding_len);
/* Decodes a header: FK_HEADER_LEN, 0 when len < 8, FCGI_EPROTO when version != 1. */
int fk_header_decode(const uint8_t *in, size_t len, fk_header *h);

/* Padding that brings content_len to a multiple of 8. */
static inline unsigned fk_padding_for(size_t content_len) { return (unsigned)(-content_len & 7u); }

/* One name-value pair; name and value point into the decoded input (not NUL-terminated). */
typedef struct fk_pair {
	const uint8_t *name;
	size_t name_len;
	const uint8_t *value;
	size_t value_len;
} fk_pair;

/* Decodes one pair from in[0..len): returns 1 with *consumed set, 0 if the pair is not
 * complete in the input. Lengths are at most 2^31-1 by construction; the sum is checked
 * against len without overflow. */
int fk_pair_decode(const uint8_t *in, size_t len, fk_pair *p, size_t *consumed);
/* Encoded size of a pair; 0 when a length exceeds FK_PAIR_LEN_MAX. */
size_t fk_pair_size(size_t name_len, size_t value_len);
/* Encodes a pair into out (fk_pair_size bytes); returns the bytes written. */
size_t fk_pair_encode(uint8_t *out, const void *name, size_t name_len, const void *value,
                      size_t value_len);

/* Fixed records, header included (16 bytes; abort: 8 bytes). Return the length written. */
size_t fk_encode_begin(uint8_t out[16], unsigned request_id, unsigned role, unsigned flags);
size_t fk_encode_end(uint8_t out[16], unsigned request_id, uint32_t app_status,
                     unsigned protocol_status);
size_t fk_encode_abort(uint8_t out[8], unsigned request_id);
size_t fk_encode_unknown_type(uint8_t out[16], unsigned type);

/* Appends a stream's bytes to b as records of at most FK_MAX_CHUNK content each, padded to
 * 8. len 0 appends the stream's end record. FCGI_OK or FCGI_ENOMEM (b unchanged). */
int fk_encode_stream(fk_buf *b, unsigned type, unsigned request_id, const void *data, size_t len);
/* Bytes fk_encode_stream would append for len bytes of content (len > 0). */
size_t fk_stream_size(size_t len);

/* ---------------------------------------------------------------- record layer */

typedef enum fk_rev_kind {
	/* A slice of a record's content (zero-copy into the input). Not emitted for the
	 * fixed-body types BEGIN_REQUEST, END_REQUEST and UNKNOWN_TYPE. */
	FK_REV_DATA = 1,
	/* A record is complete. For the fixed-body types, data/len are its 8 body bytes. An
	 * END with header.content_len == 0 on a stream type is that stream's end. */
	FK_REV_END = 2,
} fk_rev_kind;

typedef struct fk_record_event {
	fk_rev_kind kind;
	fk_header h;
	const uint8_t *data;
	size_t len;
} fk_record_event;

typedef struct fk_reader {
	uint8_t hdr[FK_HEADER_LEN];
	uint8_t body[8];
	uint8_t hdr_have;
	uint8_t body_have;
	uint8_t state; /* FK_RS_* in codec.c */
	fk_header h;
	uint32_t content_left;
	uint32_t padding_left;
} fk_reader;

void fk_reader_init(fk_reader *r);
/* Consumes input up to and including the next event. Returns 1 with *ev filled, 0 when all
 * input was consumed without an event, or FCGI_EPROTO. *consumed is always set. */
int fk_reader_feed(fk_reader *r, const uint8_t *in, size_t len, size_t *consumed,
                   fk_record_event *ev);
/* True between records (a clean place for the peer to close). */
int fk_reader_idle(const fk_reader *r);

/* ---------------------------------------------------------------- application side */

typedef struct fk_srv_limits {
	uint32_t max_reqs_per_conn;  /* in flight on this connection */
	uint32_t max_params_bytes;   /* PARAMS stream bytes per request */
	uint32_t max_params_count;   /* pairs per request */
	uint32_t advertise_max_conns; /* GET_VALUES answers */
	uint32_t advertise_max_reqs;
	uint8_t mpxs; /* 0: CANT_MPX_CONN for a second request in flight */
} fk_srv_limits;

/* Parsed PARAMS of a request: one allocation holding NUL-terminated copies of every name
 * and value plus the index. Owned by whoever took it from the event; free with
 * fk_params_free. */
typedef struct fk_params {
	size_t count;
	struct fk_param {
		const char *name;
		const char *value;
		uint32_t name_len;
		uint32_t value_len;
	} *items;
} fk_params;

/* Parses a complete PARAMS (or GET_VALUES) body into a fresh fk_params; FCGI_EPROTO on a
 * truncated pair, FCGI_ELIMIT past max_count (0 allows only an empty body), FCGI_ENOMEM. */
int fk_params_parse(const uint8_t *in, size_t len, uint32_t max_count, fk_params **out);
void fk_params_free(fk_params *p);

typedef enum fk_sev_kind {
	FK_SEV_BEGIN = 1,  /* a request was admitted (id, role, keep_conn); PARAMS follow */
	FK_SEV_PARAMS,     /* PARAMS complete: params (ownership passes to the caller) */
	FK_SEV_STDIN,      /* body bytes: data/len, a slice of the input */
	FK_SEV_STDIN_END,  /* end of the body */
	FK_SEV_DATA,       /* Filter DATA bytes */
	FK_SEV_DATA_END,
	FK_SEV_ABORT,      /* ABORT_REQUEST for a request in flight */
	FK_SEV_REFUSED,    /* the session refused an admitted request (PARAMS past a limit) and
	                      answered it with OVERLOADED: forget it (user says which) */
} fk_sev_kind;

typedef struct fk_srv_event {
	fk_sev_kind kind;
	uint16_t request_id;
	uint16_t role;
	uint8_t keep_conn;
	void *user; /* what the caller attached with fk_srv_set_user (NULL before) */
	const uint8_t *data;
	size_t len;
	fk_params *params;
} fk_srv_event;

typedef struct fk_sreq fk_sreq; /* per-request state, codec.c */

typedef struct fk_srv {
	fk_reader rd;
	fk_srv_limits lim;
	fk_buf out;            /* bytes to send, in order; the caller drains it */
	fk_sreq *reqs;         /* requests in flight (small array, linear search) */
	uint32_t nreqs, capreqs;
	fk_sreq *cur;          /* request of the record being read, or NULL to skip it */
	fk_buf mgmt;           /* GET_VALUES content being collected */
	uint8_t closing;       /* a request without KEEP_CONN was answered: close the connection
	                          once out is flushed and no request is in flight */
	uint8_t failed;        /* a protocol error was seen */
} fk_srv;

void fk_srv_init(fk_srv *s, const fk_srv_limits *lim);
void fk_srv_free(fk_srv *s); /* frees request states and buffers; not users' data */

/* Feeds received bytes. Returns 1 with *ev, 0 when all input was consumed, or < 0 (EPROTO,
 * ENOMEM): close the connection. *consumed is always set; bytes past it have not been
 * looked at, so feed them again (a caller that pauses a connection keeps them). Replies
 * the session makes by itself are appended to s->out:
 *  - GET_VALUES (id 0): GET_VALUES_RESULT with the known names asked for;
 *  - any other record with request id 0, whatever its type: UNKNOWN_TYPE (spec 4.2);
 *  - BEGIN_REQUEST with an unknown role: END_REQUEST(UNKNOWN_ROLE); a second request in
 *    flight with mpxs off: CANT_MPX_CONN; past max_reqs_per_conn, or PARAMS past
 *    max_params_bytes / max_params_count: OVERLOADED. The refused request is forgotten and
 *    its later records skipped;
 *  - records for request ids not in flight: skipped (spec 3.3); so are GET_VALUES with a
 *    non-zero id and DATA for a role other than Filter. A GET_VALUES whose last pair is
 *    truncated is answered for the complete pairs before it; a name asked twice is answered
 *    once. A Filter's DATA may interleave with its STDIN.
 * Protocol errors that close: a version other than 1, a fixed-body record (BEGIN, END,
 * UNKNOWN_TYPE) whose content is not 8 bytes, whatever its request id, a second BEGIN_REQUEST for an id in flight,
 * STDIN/DATA before PARAMS ended or after their own end, PARAMS after their end, a
 * truncated name-value pair. */
int fk_srv_feed(fk_srv *s, const uint8_t *in, size_t len, size_t *consumed, fk_srv_event *ev);

/* Attaches the caller's object to a request in flight. */
void fk_srv_set_user(fk_srv *s, unsigned request_id, void *user);
/* Refuses an admitted request (after FK_SEV_BEGIN or FK_SEV_PARAMS) with END_REQUEST of
 * the given protocol status, e.g. FCGI_STATUS_OVERLOADED; its remaining records are
 * skipped. */
int fk_srv_refuse(fk_srv *s, unsigned request_id, unsigned protocol_status);
/* Appends response bytes for a request in flight (type FK_STDOUT or FK_STDERR, else
 * FCGI_EINVAL; len 0 appends nothing). */
int fk_srv_write(fk_srv *s, unsigned request_id, unsigned type, const void *data, size_t len);
/* Ends a request: closes STDOUT (and STDERR when it was used), appends END_REQUEST and
 * forgets the request. Sets s->closing when the request had no KEEP_CONN. */
int fk_srv_end(fk_srv *s, unsigned request_id, uint32_t app_status);
/* The user pointer of the i-th request in flight (0 <= i < fk_srv_inflight); the order
 * changes when a request ends. */
void *fk_srv_user_at(const fk_srv *s, uint32_t i);
/* Requests in flight on this connection. */
static inline uint32_t fk_srv_inflight(const fk_srv *s) { return s->nreqs; }

#endif
