/* log.c — the manager's log: one line per event, timestamped, to stderr or a file.
 *
 * Workers' stdout and stderr arrive here through pipes, line by line, tagged with their pool
 * and pid, so a crash message is never lost in a terminal nobody reads. Lines are written
 * with one write(2) each, so a log shared with other processes never interleaves. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "pm/pm.h"

static int log_fd = 2;
static char log_path[4096];

int pm_log_open(const char *file)
{
	if (!file || !*file || !strcmp(file, "-") || !strcmp(file, "stderr")) {
		log_fd = 2;
		log_path[0] = 0;
		return 0;
	}
	int fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	if (log_fd > 2)
		close(log_fd);
	log_fd = fd;
	snprintf(log_path, sizeof log_path, "%s", file);
	return 0;
}

/* SIGUSR1, after logrotate moved the file away. */
void pm_log_reopen(void)
{
	if (!log_path[0])
		return;
	char path[sizeof log_path];
	memcpy(path, log_path, sizeof path);
	if (pm_log_open(path))
		pm_log("error", "cannot reopen log %s: %s", path, strerror(errno));
	else
		pm_log("notice", "log reopened");
}

static size_t stamp(char *buf, size_t size)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	localtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
	n += (size_t)snprintf(buf + n, size - n, ".%03d", (int)(tv.tv_usec / 1000));
	return n;
}

static void emit(char *buf, size_t n)
{
	/* A log line is best effort: a full disk must not stop the manager. */
	ssize_t w;
	do
		w = write(log_fd, buf, n);
	while (w < 0 && errno == EINTR);
}

void pm_log(const char *level, const char *fmt, ...)
{
	char buf[4096];
	size_t n = stamp(buf, sizeof buf);
	n += (size_t)snprintf(buf + n, sizeof buf - n, " [%s] ", level);
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(buf + n, sizeof buf - n, fmt, ap);
	va_end(ap);
	n = k < 0 ? n : n + (size_t)k;
	if (n > sizeof buf - 2)
		n = sizeof buf - 2;
	buf[n++] = '\n';
	emit(buf, n);
}

void pm_log_worker_line(const char *pool, pid_t pid, const char *line, size_t len)
{
	char buf[4096];
	size_t n = stamp(buf, sizeof buf);
	n += (size_t)snprintf(buf + n, sizeof buf - n, " [worker] %s[%d]: ", pool, (int)pid);
	/* Control bytes from a worker are shown, not obeyed (no terminal escapes in the log). */
	for (size_t i = 0; i < len && n < sizeof buf - 5; i++) {
		unsigned char ch = (unsigned char)line[i];
		if (ch < 0x20 && ch != '\t')
			n += (size_t)snprintf(buf + n, sizeof buf - n, "\\x%02x", ch);
		else
			buf[n++] = (char)ch;
	}
	buf[n++] = '\n';
	emit(buf, n);
}
