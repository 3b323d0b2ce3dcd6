/* spawn.c — one worker's birth: fork, then in the child everything a pool's settings ask
 * for, in an order that works: look names up while /etc is still reachable, set limits,
 * enter the chroot, drop privileges last (after which none of it could be done), exec.
 *
 * The child gets the pool's listening socket on fd 0 (FCGI_LISTENSOCK_FILENO: what libfcgi,
 * php-cgi, Perl FCGI and libfcgikit all look at), its output pipe on 1 and 2, the report page
 * on 3 (named by FCGIKIT_PM_REPORT_FD), and nothing else. A failure in the child is written
 * to its stderr — the pipe, so it reaches the log tagged with pool and pid — and it exits
 * 127, which the pool counts as a quick crash (backoff, then the circuit). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fcgikit.h"
#include "pm/pm.h"
#include "util/addr.h"

extern char **environ;

/* ---------------------------------------------------------------- listening sockets */

/* systemd socket activation: descriptors 3.. handed over, matched to pools by address. */
static int inherited[64];
static int ninherited = -1;

static void load_inherited(void)
{
	ninherited = 0;
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	if (!pid || !fds || atol(pid) != (long)getpid())
		return;
	long n = atol(fds);
	for (long i = 0; i < n && i < 64; i++) {
		int fd = 3 + (int)i;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		inherited[ninherited++] = fd;
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

static int take_inherited(const fk_addr *a)
{
	if (ninherited < 0)
		load_inherited();
	for (int i = 0; i < ninherited; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		if (inherited[i] < 0 || getsockname(inherited[i], (struct sockaddr *)&ss, &sl))
			continue;
		if (sl == a->len && !memcmp(&ss, &a->ss, sl)) {
			int fd = inherited[i];
			inherited[i] = -1;
			return fd;
		}
	}
	return -1;
}

static int lookup_ids(const char *user, const char *group, uid_t *uid, gid_t *gid)
{
	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	char *end;
	if (user) {
		struct passwd *pw = getpwnam(user);
		unsigned long n = strtoul(user, &end, 10);
		if (pw) {
			*uid = pw->pw_uid;
			*gid = pw->pw_gid;
		} else if (*user && !*end) {
			*uid = (uid_t)n;
		} else {
			errno = ENOENT;
			return -1;
		}
	}
	if (group) {
		struct group *gr = getgrnam(group);
		unsigned long n = strtoul(group, &end, 10);
		if (gr)
			*gid = gr->gr_gid;
		else if (*group && !*end)
			*gid = (gid_t)n;
		else {
			errno = ENOENT;
			return -2;
		}
	}
	return 0;
}

int pm_listen(const pm_pool_conf *conf, int *is_unix, char **unix_path)
{
	fk_addr a;
	*unix_path = NULL;
	int rc = fk_addr_parse(conf->listen, &a);
	if (rc) {
		pm_log("error", "pool %s: listen = %s: %s", conf->name, conf->listen, fcgi_strerror(rc));
		return -1;
	}
	*is_unix = a.ss.ss_family == AF_UNIX;
	int fd = take_inherited(&a);
	if (fd >= 0) {
		pm_log("notice", "pool %s: using the socket systemd passed for %s", conf->name,
		       conf->listen);
		return fd;
	}
	fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	const char *path = NULL;
	if (*is_unix) {
		path = ((struct sockaddr_un *)&a.ss)->sun_path;
		/* A socket file left by a manager that died is stale; a live one belongs to
		 * someone else and is not ours to take. */
		rc = fk_unix_clear_stale((struct sockaddr_un *)&a.ss, a.len);
		if (rc) {
			if (rc == FCGI_ESYS && errno == EADDRINUSE)
				pm_log("error", "pool %s: %s is in use by another process", conf->name, path);
			else
				pm_log("error", "pool %s: cannot listen on %s: %s", conf->name, path,
				       rc == FCGI_EADDR ? "a file that is not a socket is in the way"
				                        : strerror(errno));
			close(fd);
			return -1;
		}
	} else {
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (a.ss.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	}
	mode_t old = 0;
	if (*is_unix)
		old = umask(0177); /* never reachable before its mode is set */
	rc = bind(fd, (struct sockaddr *)&a.ss, a.len);
	if (*is_unix)
		umask(old);
	if (rc)
		goto fail;
	if (*is_unix && path[0]) {
		*unix_path = strdup(path);
		uid_t uid;
		gid_t gid;
		int lr = lookup_ids(conf->listen_owner, conf->listen_group, &uid, &gid);
		if (lr) {
			pm_log("error", "pool %s: listen.%s: no such %s '%s'", conf->name,
			       lr == -1 ? "owner" : "group", lr == -1 ? "user" : "group",
			       lr == -1 ? conf->listen_owner : conf->listen_group);
			goto fail_quiet;
		}
		if (!conf->listen_group)
			gid = (gid_t)-1;
		if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(path, uid, gid))
			goto fail;
		if (chmod(path, (mode_t)conf->listen_mode))
			goto fail;
	}
	if (listen(fd, conf->backlog))
		goto fail;
	return fd;
fail:
	pm_log("error", "pool %s: cannot listen on %s: %s", conf->name, conf->listen,
	       strerror(errno));
fail_quiet:
	if (fd >= 0)
		close(fd);
	if (*unix_path) {
		unlink(*unix_path);
		free(*unix_path);
		*unix_path = NULL;
	}
	return -1;
}

/* ---------------------------------------------------------------- the child */

static void die(const char *what, const char *arg)
{
	char buf[512];
	int n = snprintf(buf, sizeof buf, "fcgikit pm: cannot start worker: %s%s%s: %s\n", what,
	                 arg ? " " : "", arg ? arg : "", strerror(errno));
	if (n > 0 && write(2, buf, (size_t)n) < 0)
		_exit(127);
	_exit(127);
}

static void set_limit(int resource, int64_t v, const char *name)
{
	if (v < 0)
		return;
	struct rlimit rl;
	rl.rlim_cur = rl.rlim_max = v == INT64_MAX ? RLIM_INFINITY : (rlim_t)v;
	if (setrlimit(resource, &rl))
		die("setrlimit", name);
}

static char **build_env(const pm_pool_conf *c, char *report_var)
{
	static char allow_var[8192];
	size_t n = 0, base = 0;
	if (!c->clear_env)
		while (environ[base])
			base++;
	char **env = calloc(base + (size_t)c->nenv + 4, sizeof *env);
	if (!env)
		die("calloc", NULL);
	for (size_t i = 0; i < base; i++)
		if (strncmp(environ[i], "FCGI_WEB_SERVER_ADDRS=", 22) &&
		    strncmp(environ[i], "NOTIFY_SOCKET=", 14))
			env[n++] = environ[i];
	for (int i = 0; i < c->nenv; i++)
		env[n++] = c->env[i];
	if (c->allowed_clients) {
		snprintf(allow_var, sizeof allow_var, "FCGI_WEB_SERVER_ADDRS=%s", c->allowed_clients);
		env[n++] = allow_var;
	}
	if (report_var)
		env[n++] = report_var;
	env[n] = NULL;
	return env;
}

static void child(const pm_pool_conf *c, int listen_fd, int report_fd, int out_fd, int zygote_fd)
{
	/* The manager blocks its signals for signalfd; a worker starts with defaults. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	/* Its own process group: a terminal's ^C reaches the manager, which stops the workers
	 * in order, rather than every process at once. */
	setpgid(0, 0);

	if (out_fd >= 0) {
		if (dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
			_exit(127);
	} else {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 1);
	}
	if (dup2(listen_fd, 0) < 0)
		die("dup2", "listen socket");
	char report_var[64], *rv = NULL;
	if (report_fd >= 0 || zygote_fd >= 0) {
		if (dup2(report_fd >= 0 ? report_fd : zygote_fd, 3) < 0)
			die("dup2", "report page");
		snprintf(report_var, sizeof report_var, "%s=3",
		         report_fd >= 0 ? FK_REPORT_ENV : "FCGIKIT_PM_ZYGOTE_FD");
		rv = report_var;
	}
	close_range(rv ? 4 : 3, ~0U, 0);

	uid_t uid;
	gid_t gid;
	int lr = lookup_ids(c->user, c->group, &uid, &gid);
	if (lr)
		die(lr == -1 ? "no such user" : "no such group", lr == -1 ? c->user : c->group);
	struct passwd *pw = c->user ? getpwnam(c->user) : NULL;

	set_limit(RLIMIT_NOFILE, c->rlimit_files, "files");
	set_limit(RLIMIT_CORE, c->rlimit_core, "core");
	set_limit(RLIMIT_AS, c->rlimit_memory, "memory");

	if (c->chroot) {
		if (chdir(c->chroot) || chroot(c->chroot))
			die("chroot", c->chroot);
	}
	if (chdir(c->chdir ? c->chdir : "/"))
		die("chdir", c->chdir ? c->chdir : "/");

	if (uid != (uid_t)-1 || gid != (gid_t)-1) {
		if (gid != (gid_t)-1) {
			if (pw ? initgroups(pw->pw_name, gid) : setgroups(1, &gid))
				die("setgroups", NULL);
			if (setgid(gid))
				die("setgid", NULL);
		}
		if (uid != (uid_t)-1 && setuid(uid))
			die("setuid", c->user);
	}
	char **env = build_env(c, rv);
	execve(c->argv[0], c->argv, env);
	die("exec", c->argv[0]);
}

pid_t pm_spawn(const pm_pool_conf *conf, int listen_fd, int report_fd, int out_fd, int zygote_fd)
{
	pid_t pid = fork();
	if (pid < 0) {
		pm_log("error", "pool %s: fork: %s", conf->name, strerror(errno));
		return -1;
	}
	if (pid == 0)
		child(conf, listen_fd, report_fd, out_fd, zygote_fd);
	return pid;
}
