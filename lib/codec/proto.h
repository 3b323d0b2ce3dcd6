/*
 * proto.h — FastCGI 1.0 wire constants and layouts, in one place.
 *
 * Record on the wire (all multi-byte fields big-endian):
 *
 *   0        1       2      3      4      5      6         7
 *   +--------+-------+------+------+------+------+---------+--------+
 *   |version | type  | requestId   | contentLength| padding |reserved|
 *   +--------+-------+------+------+------+------+---------+--------+
 *   | contentLength bytes of content ... | paddingLength bytes ...   |
 *
 * Names use the fk_ prefix: fastcgi.h (libfcgi) owns FCGI_BEGIN_REQUEST and friends, and
 * our compat layer must be able to include both.
 */
#ifndef FK_PROTO_H
#define FK_PROTO_H

#include <assert.h>
#include <stdint.h>

enum {
	FK_VERSION_1 = 1,
	FK_HEADER_LEN = 8,
	FK_MAX_CONTENT = 65535,
	FK_MAX_PADDING = 255,
	FK_NULL_REQUEST_ID = 0,
	FK_LISTENSOCK_FILENO = 0,
	/* Largest content we put in one record: a multiple of 8, so no padding is needed. */
	FK_MAX_CHUNK = 65528,
	/* Name-value lengths: 1 byte below 128, else 4 bytes with the top bit set. */
	FK_PAIR_LEN_MAX = 0x7fffffff,
};

typedef enum fk_type {
	FK_BEGIN_REQUEST = 1,
	FK_ABORT_REQUEST = 2,
	FK_END_REQUEST = 3,
	FK_PARAMS = 4,
	FK_STDIN = 5,
	FK_STDOUT = 6,
	FK_STDERR = 7,
	FK_DATA = 8,
	FK_GET_VALUES = 9,
	FK_GET_VALUES_RESULT = 10,
	FK_UNKNOWN_TYPE = 11,
	FK_MAXTYPE = FK_UNKNOWN_TYPE,
} fk_type;

/* BEGIN_REQUEST flags */
enum { FK_KEEP_CONN = 1 };

/* Layouts, for documentation and static checks; the codec reads bytes, not these structs. */
typedef struct fk_wire_header {
	uint8_t version, type, id_hi, id_lo, clen_hi, clen_lo, padding, reserved;
} fk_wire_header;
typedef struct fk_wire_begin_body {
	uint8_t role_hi, role_lo, flags, reserved[5];
} fk_wire_begin_body;
typedef struct fk_wire_end_body {
	uint8_t app_status[4], protocol_status, reserved[3];
} fk_wire_end_body;
typedef struct fk_wire_unknown_type_body {
	uint8_t type, reserved[7];
} fk_wire_unknown_type_body;

static_assert(sizeof(fk_wire_header) == FK_HEADER_LEN, "FastCGI header is 8 bytes");
static_assert(sizeof(fk_wire_begin_body) == 8, "BEGIN_REQUEST body is 8 bytes");
static_assert(sizeof(fk_wire_end_body) == 8, "END_REQUEST body is 8 bytes");
static_assert(sizeof(fk_wire_unknown_type_body) == 8, "UNKNOWN_TYPE body is 8 bytes");
static_assert(FK_MAX_CHUNK % 8 == 0 && FK_MAX_CHUNK <= FK_MAX_CONTENT, "chunk fits a record");

/* Names known to GET_VALUES. */
#define FK_NAME_MAX_CONNS "FCGI_MAX_CONNS"
#define FK_NAME_MAX_REQS "FCGI_MAX_REQS"
#define FK_NAME_MPXS_CONNS "FCGI_MPXS_CONNS"

/* Management records carry request id 0; these types are management types. */
static inline int fk_type_is_management(unsigned t)
{
	return t == FK_GET_VALUES || t == FK_GET_VALUES_RESULT || t == FK_UNKNOWN_TYPE || t == 0 ||
	       t > FK_MAXTYPE;
}

const char *fk_type_name(unsigned type);

#endif
