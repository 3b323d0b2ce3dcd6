/*
 * fastcgi.h — FastCGI 1.0 wire constants and record layouts (fcgikit compat).
 *
 * Same names and layouts as libfcgi's fastcgi.h, so programs that build or parse records by
 * hand compile unchanged. Multi-byte fields are big-endian byte pairs/quads (B1 high byte).
 */
#ifndef _FASTCGI_H
#define _FASTCGI_H

/* A spawner hands the listening socket over as this descriptor. */
#define FCGI_LISTENSOCK_FILENO 0

/* The 8-byte record header. */
typedef struct {
	unsigned char version;
	unsigned char type;
	unsigned char requestIdB1;
	unsigned char requestIdB0;
	unsigned char contentLengthB1;
	unsigned char contentLengthB0;
	unsigned char paddingLength;
	unsigned char reserved;
} FCGI_Header;

#define FCGI_MAX_LENGTH 0xffff /* largest contentLength */
#define FCGI_HEADER_LEN 8      /* bytes in FCGI_Header; never shrinks */
#define FCGI_VERSION_1 1

/* Record types. */
#define FCGI_BEGIN_REQUEST 1
#define FCGI_ABORT_REQUEST 2
#define FCGI_END_REQUEST 3
#define FCGI_PARAMS 4
#define FCGI_STDIN 5
#define FCGI_STDOUT 6
#define FCGI_STDERR 7
#define FCGI_DATA 8
#define FCGI_GET_VALUES 9
#define FCGI_GET_VALUES_RESULT 10
#define FCGI_UNKNOWN_TYPE 11
#define FCGI_MAXTYPE (FCGI_UNKNOWN_TYPE)

/* Management records carry this request id. */
#define FCGI_NULL_REQUEST_ID 0

typedef struct {
	unsigned char roleB1;
	unsigned char roleB0;
	unsigned char flags;
	unsigned char reserved[5];
} FCGI_BeginRequestBody;

typedef struct {
	FCGI_Header header;
	FCGI_BeginRequestBody body;
} FCGI_BeginRequestRecord;

/* FCGI_BeginRequestBody.flags: keep the connection open after FCGI_END_REQUEST. */
#define FCGI_KEEP_CONN 1

/* FCGI_BeginRequestBody role. */
#define FCGI_RESPONDER 1
#define FCGI_AUTHORIZER 2
#define FCGI_FILTER 3

typedef struct {
	unsigned char appStatusB3;
	unsigned char appStatusB2;
	unsigned char appStatusB1;
	unsigned char appStatusB0;
	unsigned char protocolStatus;
	unsigned char reserved[3];
} FCGI_EndRequestBody;

typedef struct {
	FCGI_Header header;
	FCGI_EndRequestBody body;
} FCGI_EndRequestRecord;

/* FCGI_EndRequestBody.protocolStatus. */
#define FCGI_REQUEST_COMPLETE 0
#define FCGI_CANT_MPX_CONN 1
#define FCGI_OVERLOADED 2
#define FCGI_UNKNOWN_ROLE 3

/* Names understood in FCGI_GET_VALUES. */
#define FCGI_MAX_CONNS "FCGI_MAX_CONNS"
#define FCGI_MAX_REQS "FCGI_MAX_REQS"
#define FCGI_MPXS_CONNS "FCGI_MPXS_CONNS"

typedef struct {
	unsigned char type;
	unsigned char reserved[7];
} FCGI_UnknownTypeBody;

typedef struct {
	FCGI_Header header;
	FCGI_UnknownTypeBody body;
} FCGI_UnknownTypeRecord;

#endif /* _FASTCGI_H */
