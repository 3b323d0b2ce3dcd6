/* report.c — a libfcgikit worker tells `fcgikit pm` what it is doing (lib/util/report.h).
 *
 * Attached once per process, by the first fcgi_app_new that finds FCGIKIT_PM_REPORT_FD: the
 * variable is removed and the descriptor made close-on-exec at once, so neither a second app
 * in the process nor a program the worker runs (a CGI script) scribbles on the manager's page.
 * Every update runs under the app lock, which makes the worker the page's single writer; the
 * page is plain shared memory, so reporting costs a few stores per request and no syscall. */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/app_int.h"
#include "util/report.h"

static atomic_int attached; /* one app per process reports */

void fk_report_attach(fcgi_app *app)
{
	const char *env = getenv(FK_REPORT_ENV);
	if (!env || atomic_load(&attached))
		return;
	char *end;
	long fd = strtol(env, &end, 10);
	int bad = *end || end == env || fd < 0 || fd > 65535;
	unsetenv(FK_REPORT_ENV);
	if (!bad)
		fk_report_attach_fd(app, (int)fd);
}

/* A preforked worker gets its page from the manager through the zygote (prefork.c): the
 * zygote had none, so this is the process's first and only attachment. */
void fk_report_attach_fd(fcgi_app *app, int fd)
{
	struct stat st;
	if (fstat(fd, &st) || st.st_size < FK_REPORT_SIZE || atomic_exchange(&attached, 1)) {
		close(fd);
		return;
	}
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	void *p = mmap(NULL, FK_REPORT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, (int)fd, 0);
	close((int)fd); /* the mapping stays */
	if (p == MAP_FAILED)
		return;
	fk_report *rp = p;
	memset(rp, 0, sizeof *rp);
	rp->version = FK_REPORT_VERSION;
	rp->pid = (uint32_t)getpid();
	rp->state = FK_RS_STARTING;
	rp->idle_since_ms = fk_now_ms();
	atomic_thread_fence(memory_order_release);
	rp->magic = FK_REPORT_MAGIC;
	app->report = rp;
}

void fk_report_detach(fcgi_app *app)
{
	if (app->report)
		munmap(app->report, FK_REPORT_SIZE);
	app->report = NULL;
}

/* The seqlock's two halves: the manager retries a copy taken while seq was odd. */
static void begin_write(fk_report *rp)
{
	atomic_store_explicit((_Atomic uint32_t *)&rp->seq, rp->seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

static void end_write(fk_report *rp)
{
	atomic_store_explicit((_Atomic uint32_t *)&rp->seq, rp->seq + 1, memory_order_release);
}

static void copy_str(char *dst, size_t size, const char *src, size_t n)
{
	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

static void set_current(fk_report *rp, const fcgi_req *r)
{
	rp->cur_start_ms = r->start_ms;
	rp->cur_id = r->report_id;
	const char *v = fcgi_param(r, "REQUEST_METHOD");
	copy_str(rp->cur_method, sizeof rp->cur_method, v ? v : "", v ? strlen(v) : 0);
	v = fcgi_param(r, "REQUEST_URI");
	copy_str(rp->cur_uri, sizeof rp->cur_uri, v ? v : "", v ? strlen(v) : 0);
	v = fcgi_param(r, "SCRIPT_FILENAME");
	copy_str(rp->cur_script, sizeof rp->cur_script, v ? v : "", v ? strlen(v) : 0);
}

void fk_report_state(fcgi_app *app, int s)
{
	fk_report *rp = app->report;
	if (!rp || rp->state == (uint32_t)s)
		return;
	begin_write(rp);
	rp->state = s;
	end_write(rp);
}

void fk_report_begin(fcgi_app *app, fcgi_req *r)
{
	fk_report *rp = app->report;
	if (!rp)
		return;
	r->start_ms = fk_now_ms();
	r->report_id = ++app->report_seq;
	r->flags |= FK_R_REPORTED;
	begin_write(rp);
	if (rp->active++ == 0)
		set_current(rp, r);
	end_write(rp);
}

void fk_report_end(fcgi_app *app, fcgi_req *r)
{
	fk_report *rp = app->report;
	if (!rp || !(r->flags & FK_R_REPORTED))
		return;
	r->flags &= ~(uint32_t)FK_R_REPORTED;
	begin_write(rp);
	rp->requests++;
	if (rp->active)
		rp->active--;
	if (!rp->active) {
		rp->idle_since_ms = fk_now_ms();
		rp->cur_start_ms = 0;
		rp->cur_uri[0] = rp->cur_method[0] = rp->cur_script[0] = 0;
	} else if (rp->cur_id == r->report_id) {
		/* The oldest left: app->all holds the newest first, so its last reported one. */
		const fcgi_req *oldest = NULL;
		for (const fcgi_req *q = app->all; q; q = q->next_all)
			if (q != r && (q->flags & FK_R_REPORTED))
				oldest = q;
		if (oldest)
			set_current(rp, oldest);
	}
	end_write(rp);
}

void fk_report_conns(fcgi_app *app, int accepted)
{
	fk_report *rp = app->report;
	if (!rp)
		return;
	begin_write(rp);
	rp->conns = (uint32_t)app->nconns;
	if (accepted)
		rp->accepted++;
	end_write(rp);
}
