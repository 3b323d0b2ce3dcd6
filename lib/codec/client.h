/*
 * client.h — the client (web server) side of the sans-I/O codec: request encoders, the
 * response session fk_cli, and the CGI response head parser. Like codec.h: no sockets,
 * clocks, threads or global state. The client runtime (lib/client), `fcgikit bench`, the
 * gateway, the tests and the fuzzers all drive this same code.
 *
 * What a client sends for one request (FastCGI 1.0, section 5):
 *
 *   BEGIN_REQUEST(id, role, flags)         16 bytes
 *   PARAMS(id) ... PARAMS(id, empty)       name-value pairs, split anywhere
 *   STDIN(id) ... STDIN(id, empty)         the body (Responder, Filter); Authorizer: empty
 *   DATA(id) ... DATA(id, empty)           Filter only: the file to filter
 *
 * and what it receives back: STDOUT(id)... STDOUT(id, empty), optionally STDERR(id)...
 * STDERR(id, empty), then END_REQUEST(id, appStatus, protocolStatus). Management records
 * (request id 0) may arrive between any two records.
 */
#ifndef FK_CODEC_CLIENT_H
#define FK_CODEC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "codec/codec.h"
#include "util/buf.h"

/* ---------------------------------------------------------------- request encoding */

/* Appends BEGIN_REQUEST. FCGI_OK or FCGI_ENOMEM. */
int fk_req_begin(fk_buf *b, unsigned request_id, unsigned role, unsigned flags);

/* Appends a complete PARAMS stream: the pairs, packed into as few records as fit
 * (FK_MAX_CHUNK content each, pairs split across records where they fall), then the empty
 * PARAMS record. FCGI_OK, FCGI_ENOMEM, or FCGI_ETOOBIG when a name or value is longer than
 * a pair length can say (2^31-1). b is unchanged on error. */
int fk_req_params(fk_buf *b, unsigned request_id, const fk_pair *pairs, size_t n);

/* A whole request in one buffer: BEGIN, PARAMS, STDIN (body, then its end record) and, for
 * a Filter, DATA (data, then its end record; pass data NULL/0 for other roles). The bytes
 * `fcgikit bench` pre-encodes once and sends for every request. */
int fk_req_encode(fk_buf *b, unsigned request_id, unsigned role, unsigned flags,
                  const fk_pair *pairs, size_t n, const void *body, size_t body_len,
                  const void *data, size_t data_len);

/* GET_VALUES (request id 0) asking for the given names, as one record. FCGI_ETOOBIG when
 * the names do not fit one record's 65535 bytes. */
int fk_encode_get_values(fk_buf *b, const char *const *names, size_t n);

/*
 * Stream writer: appends a stream's content as records while keeping the last record open,
 * so many small writes (pairs, callback pieces) share records instead of paying 8 header
 * bytes each. Records carry at most FK_MAX_CHUNK content and are padded to 8 when closed.
 *
 * Contract: between fk_sw_open and fk_sw_close/fk_sw_end nobody consumes from the front of
 * the buffer (fk_buf_consume); growing it is fine. An open record is not yet valid wire data.
 */
typedef struct fk_swriter {
	fk_buf *b;
	size_t hdr;        /* offset of the open record's header from b->off */
	uint32_t clen;     /* content bytes in the open record */
	uint16_t id;
	uint8_t type;
	uint8_t open;      /* a record is open */
} fk_swriter;

void fk_sw_init(fk_swriter *w, fk_buf *b, unsigned type, unsigned request_id);
/* Appends content bytes. FCGI_OK or FCGI_ENOMEM (the bytes written so far stay). */
int fk_sw_write(fk_swriter *w, const void *data, size_t len);
/* Appends one name-value pair (lengths encoded as the spec says). */
int fk_sw_pair(fk_swriter *w, const void *name, size_t name_len, const void *value,
               size_t value_len);
/* Space for up to max content bytes written in place: returns a pointer to at most *room
 * (<= max) free bytes inside the open record (opening one if needed); after writing n of
 * them, call fk_sw_commit(w, n). NULL on ENOMEM. Used to read a file or call a body
 * callback straight into the output buffer. */
uint8_t *fk_sw_reserve(fk_swriter *w, size_t max, size_t *room);
void fk_sw_commit(fk_swriter *w, size_t n);
/* Closes the open record (fixes its header, adds padding). */
int fk_sw_close(fk_swriter *w);
/* Closes the open record and appends the stream's empty end record. */
int fk_sw_end(fk_swriter *w);

/* ---------------------------------------------------------------- response session */

typedef enum fk_cev_kind {
	FK_CEV_STDOUT = 1,   /* data/len: STDOUT bytes of request_id, a slice of the input */
	FK_CEV_STDERR,       /* data/len: STDERR bytes */
	FK_CEV_STDOUT_END,   /* the empty STDOUT record */
	FK_CEV_STDERR_END,   /* the empty STDERR record */
	FK_CEV_END,          /* END_REQUEST: app_status, protocol_status; request_id is free */
	FK_CEV_VALUES,       /* GET_VALUES_RESULT: data/len are its pairs (checked complete), valid
	                        until the next fk_cli_feed */
	FK_CEV_UNKNOWN_TYPE, /* UNKNOWN_TYPE: unknown_type is the type the peer did not know */
} fk_cev_kind;

const char *fk_cev_name(fk_cev_kind k);

typedef struct fk_cli_event {
	fk_cev_kind kind;
	uint16_t request_id;
	uint8_t protocol_status; /* FK_CEV_END: 0 complete, 1 CANT_MPX_CONN, 2 OVERLOADED,
	                            3 UNKNOWN_ROLE (other values are passed through) */
	uint8_t unknown_type;    /* FK_CEV_UNKNOWN_TYPE */
	uint32_t app_status;     /* FK_CEV_END */
	const uint8_t *data;
	size_t len;
} fk_cli_event;

/* Per request in flight: which of its output streams have ended. */
enum {
	FK_CQ_STDOUT_DONE = 1 << 0,
	FK_CQ_STDERR_DONE = 1 << 1,
};

typedef struct fk_creq {
	uint16_t id;
	uint8_t flags; /* FK_CQ_* */
} fk_creq;

/* Protocol errors fk_cli_feed detects; fk_cli_error_name() describes each for a message. */
typedef enum fk_cli_perr {
	FK_CPE_NONE = 0,
	FK_CPE_VERSION,       /* first byte of a header is not 1: not FastCGI (HTTP, TLS, ...) */
	FK_CPE_FIXED_LEN,     /* END_REQUEST / UNKNOWN_TYPE / BEGIN content is not 8 bytes */
	FK_CPE_UNKNOWN_ID,    /* a STDOUT/STDERR/END_REQUEST for a request id not in flight */
	FK_CPE_AFTER_END,     /* STDOUT or STDERR content after that stream's end */
	FK_CPE_WRONG_WAY,     /* a type only clients send (BEGIN, ABORT, PARAMS, STDIN, DATA,
	                         GET_VALUES) */
	FK_CPE_BAD_VALUES,    /* GET_VALUES_RESULT with a truncated pair */
	FK_CPE_NOMEM,
} fk_cli_perr;

typedef struct fk_cli {
	fk_reader rd;
	fk_creq *reqs;            /* requests in flight (small array, linear search) */
	uint32_t nreqs, capreqs;
	int32_t cur;              /* index in reqs of the current record's request; -1 none */
	fk_buf mgmt;              /* GET_VALUES_RESULT content being collected */
	uint64_t records;         /* complete records seen */
	uint8_t rec_started;      /* the current record was checked (its first slice was seen) */
	uint8_t perr;             /* fk_cli_perr of the error that stopped the session */
	uint8_t perr_type;        /* record type involved, for messages */
	uint16_t perr_id;         /* request id involved */
} fk_cli;

void fk_cli_init(fk_cli *s);
void fk_cli_free(fk_cli *s);

/* Registers a request id the client is about to send (1..65535). FCGI_EINVAL for 0 or an
 * id already in flight, FCGI_ENOMEM. */
int fk_cli_begin(fk_cli *s, unsigned request_id);
/* Forgets an id begun with fk_cli_begin whose request could not be sent after all (no
 * record of it may have reached the peer). */
void fk_cli_cancel(fk_cli *s, unsigned request_id);
/* Whether an id is in flight (begun, END_REQUEST not yet received). */
int fk_cli_in_flight(const fk_cli *s, unsigned request_id);
static inline uint32_t fk_cli_inflight(const fk_cli *s) { return s->nreqs; }
/* True between records. */
static inline int fk_cli_idle(const fk_cli *s) { return fk_reader_idle(&s->rd); }

/*
 * Feeds received bytes. Returns 1 with *ev, 0 when all input was consumed without an event,
 * or FCGI_EPROTO / FCGI_ENOMEM (s->perr says what; the connection must be closed). *consumed
 * is always set; feed the rest again. Data slices point into in.
 *
 * Accepted from an application: STDOUT, STDERR (their end records once each), END_REQUEST,
 * GET_VALUES_RESULT and UNKNOWN_TYPE (whatever their request id), and record types above 11
 * (skipped: a future version's types). END_REQUEST without a preceding STDOUT end is
 * accepted (refusals carry no STDOUT). Everything else is a protocol error (fk_cli_perr).
 */
int fk_cli_feed(fk_cli *s, const uint8_t *in, size_t len, size_t *consumed, fk_cli_event *ev);

/* A one-line description of s->perr ("the peer does not speak FastCGI ..."). Static. */
const char *fk_cli_error_name(unsigned perr);

/* What the first bytes from a peer look like when they are not FastCGI: "HTTP", "TLS",
 * "SSH", "SMTP/FTP greeting", or NULL when nothing is recognised. For messages only. */
const char *fk_sniff_protocol(const uint8_t *in, size_t len);

#endif
