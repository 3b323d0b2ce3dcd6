/* pool.c — a pool's workers: spawning them, watching them every tick, reaping them.
 *
 * Each tick (PM_TICK_MS) the pool measures — the listen queue, each worker's report page or,
 * for programs that do not report, whether the process waits in accept/poll — and asks the
 * policy functions what to do: spawn, stop idle workers, log a slow request, kill an
 * overdue one, recycle, shed. The measuring costs a few small reads per worker per tick and
 * nothing on the request path: the manager is never between the web server and a worker. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pm/pm.h"

pm_pool *pm_pool_new(pm_manager *m, pm_pool_conf *conf, int listen_fd, int is_unix,
                     char *unix_path)
{
	pm_pool *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->kind = PM_OBJ_LISTENER;
	p->m = m;
	p->conf = conf;
	p->listen_fd = listen_fd;
	p->is_unix = is_unix;
	p->unix_path = unix_path;
	p->next_fd = -1;
	p->queue = -1;
	p->gen = 1;
	return p;
}

static void worker_free(pm_worker *w)
{
	if (w->out_fd >= 0) {
		pm_worker_output(w); /* what it wrote last is often why it died */
		fk_ev_del(&w->pool->m->ev, w->out_fd);
		close(w->out_fd);
	}
	if (w->linelen)
		pm_log_worker_line(w->pool->conf->name, w->pid, w->line, w->linelen);
	if (w->page)
		munmap(w->page, FK_REPORT_SIZE);
	if (w->zygote && w->ctl >= 0) {
		fk_ev_del(&w->pool->m->ev, w->ctl);
		close(w->ctl);
	}
	free(w);
}

void pm_pool_free(pm_pool *p)
{
	pm_shed_free_all(p);
	while (p->workers) {
		pm_worker *w = p->workers;
		p->workers = w->next;
		worker_free(w);
	}
	if (p->listen_fd >= 0)
		close(p->listen_fd);
	if (p->unix_path) {
		unlink(p->unix_path);
		free(p->unix_path);
	}
	if (p->next_fd >= 0)
		close(p->next_fd);
	free(p->next_unix_path);
	free(p);
}

int pm_pool_initial(const pm_pool_conf *c)
{
	switch (c->mode) {
	case PM_STATIC:
		return c->max_children;
	case PM_DYNAMIC:
		return c->start_servers;
	case PM_ONDEMAND:
		break;
	}
	return 0;
}

/* ---------------------------------------------------------------- spawning */

static pm_worker *find_zygote(pm_pool *p, int gen)
{
	for (pm_worker *w = p->workers; w; w = w->next)
		if (w->zygote && w->gen == gen && !w->stop_ms && w->ctl >= 0)
			return w;
	return NULL;
}

/* Its zygote may still answer (even while stopping): a pending worker waits for it. */
static int zygote_alive(pm_pool *p, int gen)
{
	for (pm_worker *w = p->workers; w; w = w->next)
		if (w->zygote && w->gen == gen && w->ctl >= 0)
			return 1;
	return 0;
}

static pm_worker *start_zygote(pm_pool *p, int gen, const pm_pool_conf *conf, int fd, int64_t now)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return NULL;
	pm_worker *z = calloc(1, sizeof *z);
	if (!z) {
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	z->pool = p;
	z->gen = gen;
	z->zygote = 1;
	z->kind = PM_OBJ_WORKER_OUT;
	z->ctl_kind = PM_OBJ_ZYGOTE;
	z->out_fd = -1;
	int pipefd[2] = {-1, -1};
	if (conf->catch_output && pipe2(pipefd, O_CLOEXEC) == 0)
		fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
	pid_t pid = pm_spawn(conf, fd, -1, pipefd[1], sv[1]);
	close(sv[1]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (pid < 0) {
		if (pipefd[0] >= 0)
			close(pipefd[0]);
		close(sv[0]);
		free(z);
		return NULL;
	}
	z->pid = pid;
	z->started_ms = now;
	z->ctl = sv[0];
	fcntl(z->ctl, F_SETFL, O_NONBLOCK);
	fk_ev_add(&p->m->ev, z->ctl, FK_EV_IN, &z->ctl_kind);
	z->out_fd = pipefd[0];
	if (z->out_fd >= 0 && fk_ev_add(&p->m->ev, z->out_fd, FK_EV_IN, &z->kind)) {
		close(z->out_fd);
		z->out_fd = -1;
	}
	z->next = p->workers;
	p->workers = z;
	pm_log("info", "pool %s: started zygote %d (preload, generation %d)", conf->name, (int)pid,
	       gen);
	return z;
}

/* Asks the zygote for one worker, handing over its report page. */
static int ask_zygote(pm_worker *z, pm_worker *w, int report_fd)
{
	uint32_t m[3] = {'F', w->serial, 0};
	char cbuf[CMSG_SPACE(sizeof(int))];
	memset(cbuf, 0, sizeof cbuf);
	struct iovec iov = {m, sizeof m};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
	                    .msg_controllen = sizeof cbuf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &report_fd, sizeof report_fd);
	return sendmsg(z->ctl, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)sizeof m ? 0 : -1;
}

void pm_zygote_io(pm_worker *z, int64_t now)
{
	pm_pool *p = z->pool;
	for (int round = 0; round < 64 && z->ctl >= 0; round++) {
		uint32_t m[3];
		ssize_t n = recv(z->ctl, m, sizeof m, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			fk_ev_del(&p->m->ev, z->ctl);
			close(z->ctl);
			z->ctl = -1;
			return;
		}
		if (n != (ssize_t)sizeof m)
			continue;
		if (m[0] == 'P') {
			pm_worker *w = p->workers;
			while (w && (w->zygote || w->pid || w->serial != m[1]))
				w = w->next;
			pid_t pid = (pid_t)m[2];
			if (!w) {
				/* Forgotten meanwhile (the manager gave up waiting): not ours to keep. */
				if (pid > 0)
					kill(pid, SIGTERM);
			} else if (!(w->pid = pid)) {
				w->stop_ms = now; /* its fork failed: dropped at the tick */
			} else if (w->stop_ms) {
				kill(pid, SIGTERM); /* asked to stop before it was born */
			}
		} else if (m[0] == 'X') {
			pm_pool_reap(p->m, (pid_t)m[1], (int)m[2], now);
		}
	}
}

int pm_pool_spawn(pm_pool *p, int gen, const pm_pool_conf *conf, int fd, int64_t now)
{
	pm_worker *z = NULL;
	if (conf->preload && !(z = find_zygote(p, gen)) && !(z = start_zygote(p, gen, conf, fd, now)))
		return -1;
	pm_worker *w = calloc(1, sizeof *w);
	if (!w)
		return -1;
	w->pool = p;
	w->gen = gen;
	w->out_fd = -1;
	w->kind = PM_OBJ_WORKER_OUT;
	int report_fd = memfd_create("fcgikit-pm-report", MFD_CLOEXEC);
	if (report_fd >= 0 && ftruncate(report_fd, FK_REPORT_SIZE) == 0) {
		void *pg = mmap(NULL, FK_REPORT_SIZE, PROT_READ, MAP_SHARED, report_fd, 0);
		if (pg != MAP_FAILED)
			w->page = pg;
	}
	if (z) {
		/* Preforked: its output goes where the zygote's goes. */
		w->serial = ++p->next_serial;
		int rc = w->page ? ask_zygote(z, w, report_fd) : -1;
		close(report_fd);
		if (rc) {
			if (w->page)
				munmap(w->page, FK_REPORT_SIZE);
			free(w);
			return -1;
		}
		w->started_ms = now;
		w->next = p->workers;
		p->workers = w;
		p->spawned++;
		p->ever_spawned = 1;
		return 0;
	}
	int pipefd[2] = {-1, -1};
	if (conf->catch_output && pipe2(pipefd, O_CLOEXEC) == 0)
		fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
	pid_t pid = pm_spawn(conf, fd, w->page ? report_fd : -1, pipefd[1], -1);
	if (report_fd >= 0)
		close(report_fd);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (pid < 0) {
		if (pipefd[0] >= 0)
			close(pipefd[0]);
		if (w->page)
			munmap(w->page, FK_REPORT_SIZE);
		free(w);
		return -1;
	}
	w->pid = pid;
	w->started_ms = now;
	w->out_fd = pipefd[0];
	if (w->out_fd >= 0 && fk_ev_add(&p->m->ev, w->out_fd, FK_EV_IN, &w->kind)) {
		close(w->out_fd);
		w->out_fd = -1;
	}
	w->next = p->workers;
	p->workers = w;
	p->spawned++;
	p->ever_spawned = 1;
	return 0;
}

/* ---------------------------------------------------------------- watching */

void pm_worker_read_page(pm_worker *w)
{
	const fk_report *pg = w->page;
	if (!pg || atomic_load_explicit((_Atomic uint32_t *)&pg->magic, memory_order_acquire) !=
	               FK_REPORT_MAGIC)
		return;
	/* The seqlock's reading half; a worker stuck mid-write (killed there) leaves seq odd
	 * for ever, so the tries are bounded and the last good copy stays. */
	for (int tries = 0; tries < 8; tries++) {
		uint32_t s1 = atomic_load_explicit((_Atomic uint32_t *)&pg->seq, memory_order_acquire);
		if (s1 & 1)
			continue;
		fk_report copy;
		memcpy(&copy, (const void *)pg, sizeof copy);
		atomic_thread_fence(memory_order_acquire);
		uint32_t s2 = atomic_load_explicit((_Atomic uint32_t *)&pg->seq, memory_order_relaxed);
		if (s1 != s2)
			continue;
		/* The worker is someone else's code: its strings and numbers are only hints. */
		copy.cur_method[sizeof copy.cur_method - 1] = 0;
		copy.cur_uri[sizeof copy.cur_uri - 1] = 0;
		copy.cur_script[sizeof copy.cur_script - 1] = 0;
		if (copy.state > FK_RS_DRAINING)
			copy.state = FK_RS_READY;
		w->seen = copy;
		w->reports = 1;
		return;
	}
}

int pm_worker_busy(const pm_worker *w)
{
	return w->reports ? w->seen.active > 0 : !w->waiting;
}

void pm_pool_counts(const pm_pool *p, int gen, int *live, int *starting, int *idle, int *busy)
{
	*live = *starting = *idle = *busy = 0;
	for (const pm_worker *w = p->workers; w; w = w->next) {
		if (w->gen != gen || w->stop_ms || w->zygote)
			continue;
		(*live)++;
		if (!w->ready_ms)
			(*starting)++;
		else if (pm_worker_busy(w))
			(*busy)++;
		else
			(*idle)++;
	}
}

void pm_worker_stop(pm_worker *w, enum pm_stop_why why, int64_t now)
{
	if (w->stop_ms)
		return;
	w->stop_ms = now;
	w->why = why;
	/* SIGTERM is the graceful stop for libfcgikit (drain), php-cgi and Perl FCGI (finish
	 * the request in hand); SIGKILL follows past the grace. A preforked worker whose pid is
	 * not known yet is never signalled: kill(0, ...) would hit the manager's own group. */
	if (w->pid > 0)
		kill(w->pid, SIGTERM);
}

void pm_worker_kill(pm_worker *w)
{
	if (w->pid > 0 && !w->killed)
		kill(w->pid, SIGKILL);
	w->killed = 1;
}

static const char *why_name(enum pm_stop_why why)
{
	switch (why) {
	case PM_RUN:
		return "running";
	case PM_STOP_SCALE:
		return "idle";
	case PM_STOP_RECYCLE:
		return "recycled";
	case PM_STOP_RELOAD:
		return "old generation";
	case PM_STOP_TIMEOUT:
		return "request timeout";
	case PM_STOP_SHUTDOWN:
		return "shutdown";
	case PM_STOP_FAILED:
		return "failed reload";
	}
	return "?";
}

static void sample(pm_pool *p, pm_worker *w, int64_t now)
{
	pm_worker_read_page(w);
	if (w->reports) {
		if (!w->ready_ms && w->seen.state == FK_RS_READY) {
			w->ready_ms = now;
			if (w->gen == p->gen)
				pm_health_ready(&p->health);
		}
		w->requests = w->seen.requests;
		if (w->seen.active)
			w->idle_since = 0;
		else if (!w->idle_since)
			w->idle_since = now;
		return;
	}
	enum pm_proc_activity a = pm_proc_activity(w->pid);
	w->waiting = a == PM_PROC_WAITING;
	if (a == PM_PROC_UNKNOWN && now - w->started_ms >= 500)
		w->waiting = 1; /* /proc unreadable: assume it serves once it has had time to start */
	/* Ready once seen waiting for work — or once it has lived a second: a worker that
	 * took a kept-alive connection at once sits in read() on it, never in accept(). */
	if (!w->ready_ms && (w->waiting || now - w->started_ms >= 1000)) {
		w->ready_ms = now;
		if (w->gen == p->gen)
			pm_health_ready(&p->health);
	}
	if (!w->waiting)
		w->idle_since = 0;
	else if (!w->idle_since)
		w->idle_since = now;
}

static void check_requests(pm_pool *p, pm_worker *w, int64_t now)
{
	const pm_pool_conf *c = p->conf;
	if (!w->reports || !w->seen.active || w->stop_ms || !w->seen.cur_start_ms)
		return;
	int64_t elapsed = now - w->seen.cur_start_ms;
	switch (pm_request_check(elapsed, c->slow_request_ms, c->request_timeout_ms,
	                         w->slow_id == w->seen.cur_id)) {
	case PM_REQ_OK:
		break;
	case PM_REQ_SLOW:
		w->slow_id = w->seen.cur_id;
		p->slow++;
		pm_log("warning", "pool %s: slow request on worker %d: %s %s (%s) running for %.1f s",
		       c->name, (int)w->pid, w->seen.cur_method, w->seen.cur_uri, w->seen.cur_script,
		       (double)elapsed / 1000);
		break;
	case PM_REQ_KILL:
		p->killed++;
		pm_log("error",
		       "pool %s: request timed out on worker %d: %s %s (%s) after %.1f s; stopping "
		       "the worker",
		       c->name, (int)w->pid, w->seen.cur_method, w->seen.cur_uri, w->seen.cur_script,
		       (double)elapsed / 1000);
		pm_worker_stop(w, PM_STOP_TIMEOUT, now);
		break;
	}
}

static void escalate(pm_pool *p, pm_worker *w, int64_t now)
{
	if (!w->stop_ms || w->killed)
		return;
	int64_t grace = w->why == PM_STOP_TIMEOUT || w->why == PM_STOP_FAILED
	                    ? p->conf->kill_grace_ms
	                    : p->m->cfg->stop_timeout_ms;
	if (pm_stop_escalate(w->stop_ms, now, grace) == SIGKILL) {
		if (w->pid > 0)
			pm_log("warning",
			       "pool %s: worker %d still running %.1f s after SIGTERM (%s): SIGKILL",
			       p->conf->name, (int)w->pid, (double)(now - w->stop_ms) / 1000,
			       why_name(w->why));
		pm_worker_kill(w);
	}
}

static pm_health_conf health_conf(const pm_pool_conf *c)
{
	pm_health_conf h = {
	    .crash_limit = c->crash_limit,
	    .circuit_reset_ms = c->circuit_reset_ms,
	    .min_uptime_ms = 1000,
	    .backoff_base_ms = 100,
	    .backoff_max_ms = 30000,
	};
	return h;
}

/* The idle worker of the current generation idle longest, or NULL. */
static pm_worker *longest_idle(pm_pool *p, int64_t now, int64_t *idle_ms)
{
	pm_worker *best = NULL;
	*idle_ms = 0;
	for (pm_worker *w = p->workers; w; w = w->next) {
		if (w->gen != p->gen || w->stop_ms || !w->ready_ms || pm_worker_busy(w) ||
		    !w->idle_since || w->zygote)
			continue;
		if (!best || w->idle_since < best->idle_since)
			best = w;
	}
	if (best)
		*idle_ms = now - best->idle_since;
	return best;
}

void pm_pool_tick(pm_pool *p, int64_t now)
{
	const pm_pool_conf *c = p->conf;
	p->queue = pm_probe_queue(&p->m->probe, p->listen_fd);
	for (pm_worker **pw = &p->workers; *pw;) {
		pm_worker *w = *pw;
		/* A preforked worker the zygote never named (its fork failed, the zygote died, or
		 * it was stopped first) has no process to wait for. */
		if (!w->zygote && !w->pid &&
		    (now - w->started_ms > c->startup_timeout_ms || !zygote_alive(p, w->gen))) {
			*pw = w->next;
			worker_free(w);
			continue;
		}
		pw = &w->next;
	}
	for (pm_worker *w = p->workers; w; w = w->next) {
		if (w->zygote || !w->pid) {
			escalate(p, w, now);
			continue;
		}
		sample(p, w, now);
		check_requests(p, w, now);
		if (!w->stop_ms && w->gen == p->gen && w->reports &&
		    pm_should_recycle(w->seen.requests, c->max_requests))
			pm_worker_stop(w, PM_STOP_RECYCLE, now);
		escalate(p, w, now);
	}
	if (p->removed || p->m->stopping) {
		pm_shed_update(p, 0);
		p->wake_on_conn = 0;
		pm_listen_watch(p);
		pm_shed_sweep(p, now);
		return;
	}
	pm_pool_scale(p, now);
	pm_shed_sweep(p, now);
}

void pm_pool_scale(pm_pool *p, int64_t now)
{
	const pm_pool_conf *c = p->conf;
	pm_scale_in in = {
	    .mode = c->mode,
	    .max_children = c->max_children,
	    .start_servers = c->start_servers,
	    .min_spare = c->min_spare,
	    .max_spare = c->max_spare,
	    .spawn_rate = c->spawn_rate,
	    .idle_timeout_ms = c->idle_timeout_ms,
	    .queue = p->queue,
	    .now_ms = now,
	};
	pm_pool_counts(p, p->gen, &in.live, &in.starting, &in.idle, &in.busy);
	pm_worker *oldest = longest_idle(p, now, &in.longest_idle_ms);
	pm_health_conf hc = health_conf(c);
	in.held = pm_health_held(&p->health, &hc, now);
	in.trial = pm_health_trial(&p->health);
	pm_scale_out out;
	pm_scale(&in, &p->scale, &out);
	for (int i = 0; i < out.spawn; i++) {
		if (pm_pool_spawn(p, p->gen, c, p->listen_fd, now))
			break;
		if (p->workers->pid)
			pm_log("info", "pool %s: started worker %d (%d live, %d idle, queue %d)", c->name,
			       (int)p->workers->pid, in.live + i + 1, in.idle, p->queue);
		else
			pm_log("info", "pool %s: asked the zygote for worker #%u (%d live, %d idle, queue %d)",
			       c->name, p->workers->serial, in.live + i + 1, in.idle, p->queue);
	}
	for (int i = 0; i < out.stop_idle && oldest; i++) {
		pm_worker_stop(oldest, PM_STOP_SCALE, now);
		int64_t ignored;
		oldest = longest_idle(p, now, &ignored);
	}

	if (c->shed_queue > 0) {
		int want = pm_should_shed(in.idle, in.starting, in.live, c->max_children, p->queue,
		                          c->shed_queue);
		pm_shed_update(p, want);
	}
	/* ondemand: with nobody idle, the next connection should not wait for a tick. */
	p->wake_on_conn = c->mode == PM_ONDEMAND && in.idle == 0 && in.starting == 0 &&
	                  in.live + out.spawn < c->max_children && !out.spawn;
	pm_listen_watch(p);
}

/* ---------------------------------------------------------------- output and exits */

void pm_worker_output(pm_worker *w)
{
	char buf[8192];
	/* Bounded per call: a worker that floods its output cannot starve the loop. */
	for (int round = 0; round < 16 && w->out_fd >= 0; round++) {
		ssize_t n = read(w->out_fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0 || errno != EAGAIN) {
				fk_ev_del(&w->pool->m->ev, w->out_fd);
				close(w->out_fd);
				w->out_fd = -1;
			}
			return;
		}
		for (ssize_t i = 0; i < n; i++) {
			char ch = buf[i];
			if (ch == '\n' || w->linelen == sizeof w->line) {
				pm_log_worker_line(w->pool->conf->name, w->pid, w->line, w->linelen);
				w->linelen = 0;
				if (ch == '\n')
					continue;
			}
			w->line[w->linelen++] = ch;
		}
	}
}

int pm_pool_reap(pm_manager *m, pid_t pid, int status, int64_t now)
{
	for (pm_pool *p = m->pools; p; p = p->next) {
		for (pm_worker **pw = &p->workers; *pw; pw = &(*pw)->next) {
			pm_worker *w = *pw;
			if (w->pid != pid)
				continue;
			*pw = w->next;
			pm_worker_read_page(w);
			p->requests_done += w->reports ? w->seen.requests : 0;
			char how[64];
			if (WIFSIGNALED(status))
				snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(status));
			else
				snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
			int64_t up = now - w->started_ms;
			if (w->zygote) {
				if (w->why != PM_RUN)
					pm_log("info", "pool %s: zygote %d (%s) %s", p->conf->name, (int)pid,
					       why_name(w->why), how);
				else
					pm_log("warning", "pool %s: zygote %d %s after %.1f s; its workers go on",
					       p->conf->name, (int)pid, how, (double)up / 1000);
				if (w->why == PM_RUN && w->gen == p->gen) {
					pm_health_conf hc = health_conf(p->conf);
					pm_health_exit(&p->health, &hc, up, 0, now);
				}
				if (p->next_conf && w->gen == p->gen + 1 && w->why == PM_RUN &&
				    !m->reload_error[0])
					snprintf(m->reload_error, sizeof m->reload_error,
					         "pool %s: new zygote %d %s", p->conf->name, (int)pid, how);
				/* It may have reaped workers and said so ('X') just before it went:
				 * read that first, or the manager waits for them forever. */
				for (int i = 0; i < 32 && w->ctl >= 0; i++)
					pm_zygote_io(w, now);
				worker_free(w);
				return 1;
			}
			if (w->why == PM_RUN) {
				p->respawns++;
				pm_log("warning", "pool %s: worker %d %s after %.1f s%s", p->conf->name,
				       (int)pid, how, (double)up / 1000,
				       w->reports && w->seen.active ? ", with requests in flight" : "");
			} else {
				pm_log("info", "pool %s: worker %d (%s) %s", p->conf->name, (int)pid,
				       why_name(w->why), how);
			}
			if (w->gen == p->gen) {
				pm_health_conf hc = health_conf(p->conf);
				/* Exit status 0 after a moment is a worker ending itself on purpose
				 * (php-cgi after PHP_FCGI_MAX_REQUESTS), not a crash. */
				int clean = (w->why != PM_RUN && w->why != PM_STOP_TIMEOUT) ||
				            (WIFEXITED(status) && WEXITSTATUS(status) == 0 && up >= 100);
				int was_open = p->health.open;
				pm_health_exit(&p->health, &hc, up, clean, now);
				if (p->health.open && !was_open)
					pm_log("error",
					       "pool %s: %d workers in a row died within a second of starting: "
					       "not spawning for %.0f s (check the command and the log above)",
					       p->conf->name, p->health.quick_exits,
					       (double)p->conf->circuit_reset_ms / 1000);
			}
			int clean_exit = WIFEXITED(status) && WEXITSTATUS(status) == 0 && up >= 100;
			if (p->next_conf && w->gen == p->gen + 1 && (clean_exit || w->ready_ms))
				p->reload_proven = 1; /* it ran and ended on its own terms */
			if (p->next_conf && w->gen == p->gen + 1 && !w->ready_ms && w->why == PM_RUN &&
			    !clean_exit && !m->reload_error[0])
				snprintf(m->reload_error, sizeof m->reload_error,
				         "pool %s: new worker %d %s before it was ready", p->conf->name,
				         (int)pid, how);
			worker_free(w);
			return 1;
		}
	}
	return 0;
}
