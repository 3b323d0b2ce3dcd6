/*
 * test_report.c — the page a libfcgikit worker keeps for `fcgikit pm` (lib/app/report.c,
 * layout in lib/util/report.h), read here the way the manager reads it: through a shared
 * memfd mapping, while real requests go through the client library.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fcgikit.h"
#include "util/report.h"

static fcgi_app *g_app;
static _Atomic(fcgi_req *) g_held;
static char g_dir[64], g_addr[128];

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define WAIT_FOR(cond, ms)                                                                         \
	({                                                                                         \
		long long wf_end_ = now_ms() + (ms);                                                \
		while (!(cond) && now_ms() < wf_end_)                                              \
			usleep(2000);                                                              \
		(cond) ? 1 : 0;                                                                    \
	})

static void handler(fcgi_req *req, void *ud)
{
	(void)ud;
	const char *q = fcgi_param(req, "QUERY_STRING");
	if (q && !strcmp(q, "hold")) {
		atomic_store(&g_held, req); /* finished later by the test thread */
		return;
	}
	fcgi_printf(req, "Content-Type: text/plain\r\n\r\nok\n");
	fcgi_finish(req, 0);
}

static void *run_app(void *arg)
{
	(void)arg;
	fcgi_app_run(g_app);
	return NULL;
}

typedef struct call {
	const char *method, *uri, *query;
	int rc;
} call;

static void *do_call(void *arg)
{
	call *c = arg;
	fcgi_client_param params[] = {
	    {"REQUEST_METHOD", c->method},
	    {"REQUEST_URI", c->uri},
	    {"QUERY_STRING", c->query},
	    {"SCRIPT_FILENAME", "/srv/app.fcgi"},
	};
	fcgi_client_req *r = NULL;
	c->rc = fcgi_client_call(g_addr, params, 4, NULL, 0, 10000, &r);
	if (!c->rc && fcgi_client_req_error(r))
		c->rc = fcgi_client_req_error(r);
	fcgi_client_req_free(r);
	return NULL;
}

static uint32_t seq_of(const fk_report *p)
{
	return atomic_load((_Atomic uint32_t *)&p->seq);
}

static void test_page_follows_requests(void **state)
{
	(void)state;
	int fd = memfd_create("report", 0);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, FK_REPORT_SIZE), 0);
	fk_report *page = mmap(NULL, FK_REPORT_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(page != MAP_FAILED);
	char v[16];
	snprintf(v, sizeof v, "%d", fd);
	setenv(FK_REPORT_ENV, v, 1);

	assert_int_equal(fcgi_app_new(&g_app), FCGI_OK);
	/* Attached, and the variable gone so that nothing the worker runs attaches too. */
	assert_null(getenv(FK_REPORT_ENV));
	assert_int_equal(page->magic, FK_REPORT_MAGIC);
	assert_int_equal(page->version, FK_REPORT_VERSION);
	assert_int_equal(page->pid, (uint32_t)getpid());
	assert_int_equal(page->state, FK_RS_STARTING);
	assert_true(fcntl(fd, F_GETFD) < 0); /* the library closed its descriptor */

	strcpy(g_dir, "/tmp/fk-report-XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	snprintf(g_addr, sizeof g_addr, "unix:%s/s", g_dir);
	assert_int_equal(fcgi_app_listen(g_app, g_addr), FCGI_OK);
	assert_int_equal(fcgi_app_set_handler(g_app, handler, NULL), FCGI_OK);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, run_app, NULL), 0);
	assert_true(WAIT_FOR(page->state == FK_RS_READY, 5000));

	call a = {"GET", "/a?x=1", "x=1", -1};
	do_call(&a);
	assert_int_equal(a.rc, 0);
	assert_true(WAIT_FOR(page->requests == 1, 5000));
	assert_int_equal(page->active, 0);
	assert_int_equal(page->accepted, 1);
	assert_int_equal(seq_of(page) % 2, 0);

	/* A request in hand: the page names it and says since when. */
	long long before = now_ms();
	call b = {"POST", "/slow/path?hold", "hold", -1};
	pthread_t cth;
	assert_int_equal(pthread_create(&cth, NULL, do_call, &b), 0);
	assert_true(WAIT_FOR(atomic_load(&g_held) != NULL, 5000));
	assert_int_equal(page->active, 1);
	assert_string_equal(page->cur_method, "POST");
	assert_string_equal(page->cur_uri, "/slow/path?hold");
	assert_string_equal(page->cur_script, "/srv/app.fcgi");
	assert_true(page->cur_start_ms >= before - 5 && page->cur_start_ms <= now_ms() + 5);
	uint64_t id = page->cur_id;
	assert_true(id >= 2);

	/* A second request while the first is held: the current one stays the oldest. */
	call c = {"GET", "/quick", "", -1};
	do_call(&c);
	assert_int_equal(c.rc, 0);
	assert_int_equal(page->cur_id, id);
	assert_string_equal(page->cur_uri, "/slow/path?hold");

	fcgi_req *held = atomic_exchange(&g_held, NULL);
	fcgi_printf(held, "Content-Type: text/plain\r\n\r\nlate\n");
	fcgi_finish(held, 0);
	pthread_join(cth, NULL);
	assert_int_equal(b.rc, 0);
	assert_true(WAIT_FOR(page->requests == 3 && page->active == 0, 5000));
	assert_string_equal(page->cur_uri, "");
	assert_true(page->idle_since_ms >= before);

	fcgi_app_stop(g_app);
	pthread_join(th, NULL);
	assert_int_equal(page->state, FK_RS_DRAINING);
	fcgi_app_free(g_app);
	munmap(page, FK_REPORT_SIZE);
	char path[128];
	snprintf(path, sizeof path, "%s/s", g_dir);
	unlink(path);
	rmdir(g_dir);
}

static void test_no_manager_no_page(void **state)
{
	(void)state;
	unsetenv(FK_REPORT_ENV);
	fcgi_app *app;
	assert_int_equal(fcgi_app_new(&app), FCGI_OK);
	fcgi_app_free(app);
	/* A bogus value is ignored, not trusted. */
	setenv(FK_REPORT_ENV, "12x", 1);
	assert_int_equal(fcgi_app_new(&app), FCGI_OK);
	fcgi_app_free(app);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_manager_no_page), /* first: a bogus value must not use up */
	    cmocka_unit_test(test_page_follows_requests), /* the process's one attachment */
	};
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
