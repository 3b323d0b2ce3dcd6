/* report.h — the page a worker shares with `fcgikit pm` to say what it is doing.
 *
 * The manager creates one memfd of FK_REPORT_SIZE bytes per worker, maps it, and hands it to
 * the worker on a descriptor named by the environment variable FCGIKIT_PM_REPORT_FD. A program
 * built with libfcgikit maps it at fcgi_app_new time (lib/app/report.c) and keeps it current;
 * any other program ignores it and the manager falls back to what the kernel shows.
 *
 * One writer (the worker, under its app lock), one reader (the manager). The writer bumps
 * `seq` to odd, writes, bumps it to even (a seqlock); the reader copies the page, retries
 * while seq is odd or changed, and then treats every field as untrusted (strings are
 * re-terminated, counts clamped): a worker is someone else's code. */
#ifndef FK_UTIL_REPORT_H
#define FK_UTIL_REPORT_H

#include <assert.h>
#include <stdint.h>

#define FK_REPORT_ENV "FCGIKIT_PM_REPORT_FD"
#define FK_REPORT_MAGIC 0x46434b52u /* "FCKR" */
#define FK_REPORT_VERSION 1
#define FK_REPORT_SIZE 4096

enum fk_report_state {
	FK_RS_STARTING = 0, /* mapped, not yet serving */
	FK_RS_READY = 1,    /* serving: accepting connections */
	FK_RS_DRAINING = 2, /* stop asked: no new connections, finishing what is in flight */
};

typedef struct fk_report {
	uint32_t magic;   /* FK_REPORT_MAGIC once the worker has attached */
	uint32_t version; /* FK_REPORT_VERSION */
	uint32_t seq;     /* seqlock counter, odd while the worker writes */
	uint32_t state;   /* enum fk_report_state */
	uint32_t pid;
	uint32_t active;    /* requests in flight now */
	uint32_t conns;     /* connections open now */
	uint32_t pad;
	uint64_t requests;  /* requests finished since start */
	uint64_t accepted;  /* connections accepted since start */
	/* The oldest request in flight (when active > 0): when it began and what it is. */
	int64_t cur_start_ms; /* CLOCK_MONOTONIC milliseconds (same clock in both processes) */
	uint64_t cur_id;      /* grows with every request the worker begins: tells two apart */
	char cur_method[16];
	char cur_uri[512];
	char cur_script[256];
	int64_t idle_since_ms; /* CLOCK_MONOTONIC ms when active last fell to 0 */
} fk_report;

static_assert(sizeof(fk_report) <= FK_REPORT_SIZE, "report page");

#endif
