/*
 * compat_int.h — internals of the libfcgi compatibility layer (lib/compat/libfcgi/).
 *
 * Mapping. Each listening socket a program names (FCGX_Request.listen_sock) becomes one
 * fcgi_app, created on the first FCGX_Accept_r for it and shared by every thread and request
 * slot that uses that socket: so many threads calling FCGX_Accept_r take turns on one event
 * loop, and requests multiplexed on one connection go to whichever thread asks next.
 * An accepted request becomes an fkc_req, stored in FCGX_Request.paramsPtr (a pointer the
 * program never reads): the fcgi_req, the three FCGX_Streams and the envp array.
 *
 * Streams. An FCGX_Stream's data points at its fkc_stream. Readers and writers keep a buffer
 * of their own, so FCGX_GetChar/FCGX_PutChar are a pointer compare and a byte copy; the slow
 * paths call fcgi_read/fcgi_read_data (in) or fcgi_write/fcgi_write_err (out, err). A
 * stand-alone writer from FCGX_CreateWriter (kind FKC_RAW) frames records itself and writes
 * them to its socket.
 *
 * Fork. An fcgi_app's event loop must never run in a forked child (the epoll set is shared
 * with the parent). Apps and requests remember their process id: in another process a
 * request's streams fail with EPIPE and the registry creates a fresh app.
 */
#ifndef FKC_COMPAT_INT_H
#define FKC_COMPAT_INT_H

#include <fcgikit.h>
#include <stddef.h>
#include <sys/types.h>

#include "fcgiapp.h"

enum fkc_kind {
	FKC_IN = 1, /* STDIN, then DATA after FCGX_StartFilterData */
	FKC_OUT,    /* STDOUT */
	FKC_ERR,    /* STDERR */
	FKC_RAW,    /* FCGX_CreateWriter: records straight to a socket */
};

enum {
	FKC_IN_BUF = 16384,  /* reader buffer; reads at least this big bypass it */
	FKC_OUT_BUF = 16384, /* STDOUT buffer; writes at least this big bypass it */
	FKC_ERR_BUF = 2048,  /* STDERR buffer */
	FKC_RAW_MAX = 65528, /* largest record content a raw writer sends (multiple of 8) */
};

typedef struct fkc_req fkc_req;

typedef struct fkc_stream {
	FCGX_Stream s;  /* what the program sees; s.data points back here */
	int kind;       /* enum fkc_kind */
	int data_phase; /* FKC_IN: reading the DATA stream */
	int eof;        /* FKC_IN: the current stream ended (isClosed without an error) */
	fkc_req *r;     /* the request; NULL for FKC_RAW */
	unsigned char *buf;
	size_t cap;
	/* FKC_RAW only */
	int fd;
	int request_id;
	int type;
} fkc_stream;

struct fkc_req {
	fcgi_req *req;
	fcgi_app *app;
	pid_t pid;  /* process that accepted it */
	int status; /* FCGX_SetExitStatus */
	int role;
	FCGX_Request *owner;
	fkc_stream in, out, err;
	char **envp; /* in the same allocation */
};

/* fcgiapp.c: this process's id, cached (and refreshed in a fork child). */
pid_t fkc_pid(void);

/* stream.c */
void fkc_stream_init(fkc_stream *st, int kind, fkc_req *r);
/* Writes a writer's buffered bytes on (fcgi_write/_err or records). 0, or -1 with the
 * stream's error set. */
int fkc_stream_drain(fkc_stream *st);
/* Frees a stream's buffer; the stream is closed and every call on it fails. */
void fkc_stream_release(fkc_stream *st);
/* The stream error for an fcgi_err code: an errno value or an FCGX_* code. */
int fkc_stream_errno(int err);

/* fcgiapp.c */
/* Opens a listening socket for FCGX_OpenSocket and OS_CreateLocalIpcFd. */
int fkc_open_socket(const char *path, int backlog);
/* FCGX_ShutdownPending's work; async-signal-safe. */
void fkc_shutdown(void);
/* Installs libfcgi's SIGPIPE and SIGUSR1 handlers where the program left the default. */
void fkc_install_signals(void);
/* 1 when the socket named by sock (0: the inherited one) is a listening socket. */
int fkc_is_listener(int sock);

#endif
