#!/usr/bin/env python3
"""`fcgikit pm` with real programs behind real nginx: the process manager's integration suite.

Workers: fcgikit's echo and hello (libfcgikit: they report to the manager), php-cgi
(php8.2-cgi), a Perl FCGI script (libfcgi-perl) and a C program on Debian's libfcgi
(build/compat/tests/deb/echo) — the last three do not report, so the manager reads the
kernel for them. Everything listens on Unix sockets in a fresh directory or on 127.0.0.1;
every wait is bounded; only processes started here are signalled, by pid.

Prints TAP. A program whose package is missing is skipped, not failed.

  tests/pm/run.py [-v] [NAME...]     (names select tests by substring)
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "peers"))
import peers  # noqa: E402

BUILD = os.path.abspath(os.environ.get("FCGIKIT_BUILD", os.path.join(ROOT, "build")))
FCGIKIT = os.path.join(BUILD, "fcgikit")
ECHO = os.path.join(BUILD, "examples", "echo")
HELLO = os.path.join(BUILD, "examples", "hello")
LIBFCGI_ECHO = os.path.join(BUILD, "compat", "tests", "deb", "echo")
PHP_CGI = shutil.which("php-cgi8.2") or shutil.which("php-cgi") or "/usr/bin/php-cgi8.2"
WRK = shutil.which("wrk")
VERBOSE = "-v" in sys.argv
SELECT = [a for a in sys.argv[1:] if not a.startswith("-")]

results = []


tap = peers.tap_printer(results)


def wait_for(pred, seconds=10.0, step=0.05):
    return peers.wait_for(pred, seconds, step)


def run(args, timeout=30, env=None, input_bytes=None):
    if VERBOSE:
        print("# $ " + " ".join(args), flush=True)
    try:
        p = subprocess.run(args, input=input_bytes, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, env=env)
        return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        return -999, b"", "timed out after %ss" % timeout


def connectable(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.settimeout(0.5)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def call(address, uri="/", params=(), timeout=15):
    args = [FCGIKIT, "call", "-i", "--timeout", str(timeout * 1000)]
    for p in params:
        args += ["-p", p]
    return run(args + [address, uri], timeout=timeout + 5)


def proc_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return -1


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PM:
    """One `fcgikit pm` started by a test: its log, its status socket, its pid."""

    def __init__(self, tmp, name, args=None, config=None):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.sock = os.path.join(self.dir, "app.sock")
        self.status = os.path.join(self.dir, "status.sock")
        self.log = os.path.join(self.dir, "pm.log")
        self.config = None
        if config is not None:
            self.config = os.path.join(self.dir, "pm.conf")
            self.write_config(config)
            self.args = ["-c", self.config]
        else:
            self.args = args
        self.proc = None

    def write_config(self, text):
        with open(self.config, "w") as f:
            f.write(text.replace("@DIR@", self.dir).replace("@SOCK@", self.sock)
                    .replace("@STATUS@", self.status))

    def start(self, wait_sock=True, env=None, pass_fds=(), prefix=()):
        with open(self.log, "ab") as lf:
            self.proc = subprocess.Popen(list(prefix) + [FCGIKIT, "pm"] + self.args,
                                         stdout=lf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, pass_fds=pass_fds)
        if wait_sock:
            up = wait_for(lambda: self.proc.poll() is not None or connectable(self.sock), 10)
            if not up or self.proc.poll() is not None:
                raise RuntimeError("pm did not come up\n" + self.log_text()[-3000:])
        return self

    def wait_ready(self, n, seconds=10, pool=None):
        """Until n workers of the current generation are ready (idle or busy)."""
        def ready():
            st = self.status_json()
            if not st:
                return False
            for p in st["pools"]:
                if pool and p["name"] != pool:
                    continue
                if p["idle"] + p["busy"] >= n:
                    return True
            return False
        return wait_for(ready, seconds, 0.1)

    def status_json(self, full=True):
        rc, out, _ = run([FCGIKIT, "pm", "status", "--socket", "unix:" + self.status,
                          "--full" if full else "--json"], timeout=10)
        if rc != 0:
            return None
        try:
            return json.loads(out)
        except ValueError:
            return None

    def workers(self, pool=None):
        st = self.status_json()
        if not st:
            return []
        ws = []
        for p in st["pools"]:
            if pool is None or p["name"] == pool:
                ws += p.get("workers", [])
        return ws

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, seconds=15):
        peers.stop_process(self.proc, seconds)
        return self.proc.returncode if self.proc else None


def wrk(url, seconds, conns=8, threads=1):
    """Runs wrk; returns (requests, non2xx, socket_errors, text)."""
    rc, out, err = run([WRK, "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds,
                        "--timeout", "10s", url], timeout=seconds + 30)
    text = out.decode("utf-8", "replace") + err
    m = re.search(r"(\d+) requests in", text)
    reqs = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    non2xx = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errs = sum(int(x) for x in m.groups()) if m else 0
    return reqs, non2xx, errs, text


def http_get(url, timeout=15):
    return peers.http_get(url, timeout)


# ---------------------------------------------------------------------------------- tests

def t_oneliner_basic(tmp):
    pm = PM(tmp, "oneliner", ["--listen", "unix:%s/oneliner/app.sock" % tmp, "--workers", "2",
                              "--status", "unix:%s/oneliner/status.sock" % tmp, "--", ECHO])
    pm.start()
    try:
        ok = pm.wait_ready(2)
        tap(ok, "one-liner: 2 static workers come up and report ready", pm.log_text())
        rc, out, err = call("unix:" + pm.sock, "/hello?x=1", ["REQUEST_METHOD=GET"])
        tap(rc == 0 and b"X-Query: x=1" in out, "one-liner: a request is served",
            "rc=%s out=%r err=%s" % (rc, out[:300], err))
        for _ in range(6):
            call("unix:" + pm.sock, "/again")
        ws = pm.workers()
        served = sum(w["requests"] for w in ws)
        tap(len(ws) == 2 and all(w["reports"] for w in ws) and served >= 7,
            "status: two reporting workers, the requests counted",
            json.dumps(ws)[:1500] + "\n" + pm.log_text()[-2000:])
        rc, out, _ = run([FCGIKIT, "pm", "status", "--socket", "unix:" + pm.status,
                          "--openmetrics"])
        text = out.decode()
        tap(rc == 0 and text.endswith("# EOF\n") and
            re.search(r'fcgikit_pm_workers\{pool="default",state="idle"\} 2', text) is not None,
            "status: OpenMetrics with per-state worker gauges", text[:1500])
        rc, out, _ = run([FCGIKIT, "pm", "status", "--socket", "unix:" + pm.status, "--ping"])
        tap(rc == 0 and out.strip() == b"pong", "status: ping answers pong", out)
        rc, out, err = run([FCGIKIT, "pm", "status", "--socket", "unix:%s/nothere" % tmp])
        tap(rc == 1 and "nothere" in err, "pm status: a dead socket exits 1 with the reason", err)
    finally:
        code = pm.stop()
    tap(code == 0 and not os.path.exists(pm.sock),
        "SIGTERM: the manager exits 0 and removes its socket", "exit %s" % code)


CONFIG_ERRORS = [
    ("[www]\nlisten = unix:/tmp/x.sock\ncommand = /bin/true\npm = sometimes\n", 4, "pm"),
    ("[www]\nlisten = unix:/tmp/x.sock\ncommand = /bin/true\npm.max_chidlren = 3\n", 4,
     "max_chidlren"),
    ("[www]\nlisten = unix:/tmp/x.sock\ncommand = /bin/true\npm = static\npm.max_children = 0\n",
     5, "max_children"),
    ("[www]\nlisten = unix:/tmp/x.sock\n\n[www]\nlisten = unix:/tmp/y.sock\n", 4, "www"),
    ("[www\nlisten = unix:/tmp/x.sock\n", 1, ""),
    ("[www]\nlisten = unix:/tmp/x.sock\ncommand = /bin/true\nrequest_terminate_timeout = 5 parsecs\n",
     4, "request_terminate_timeout"),
]


def t_config_errors(tmp):
    d = os.path.join(tmp, "configs")
    os.makedirs(d, exist_ok=True)
    for i, (text, line, word) in enumerate(CONFIG_ERRORS):
        path = os.path.join(d, "bad%d.conf" % i)
        with open(path, "w") as f:
            f.write(text)
        rc, _, err = run([FCGIKIT, "pm", "--test", "-c", path])
        want = "%s:%d:" % (path, line)
        tap(rc == 2 and want in err and word in err,
            "config error %d: exit 2, names %s and %r" % (i, os.path.basename(want), word),
            "rc=%s stderr=%s" % (rc, err))
    path = os.path.join(d, "missing-command.conf")
    with open(path, "w") as f:
        f.write("[www]\nlisten = unix:%s/m.sock\ncommand = /nonexistent/app\n" % d)
    rc, _, err = run([FCGIKIT, "pm", "--test", "-c", path])
    tap(rc != 0 and "/nonexistent/app" in err and path in err,
        "a command that does not exist is named with file and line", err)
    rc, _, err = run([FCGIKIT, "pm", "--workers", "2", "--", ECHO])
    tap(rc == 2 and "usage" in err and "listen" in err, "one-liner without --listen: usage", err)


def t_kill9_under_load(tmp, fronts):
    if not WRK:
        tap(True, "kill -9 under load", skip="wrk not installed")
        return
    pm = PM(tmp, "kill9", config="""
[global]
status_listen = unix:@STATUS@
[echo]
listen = unix:@SOCK@
listen.mode = 0666
command = %s --threads 2
pm = static
pm.max_children = 2
""" % ECHO).start()
    front = peers.Nginx(tmp + "/kill9", backend="unix:" + pm.sock).start()
    try:
        pm.wait_ready(2)
        before = {w["pid"] for w in pm.workers()}
        res = {}
        th = threading.Thread(target=lambda: res.update(r=wrk(front.url + "/k", 4)))
        th.start()
        time.sleep(1.5)
        victim = sorted(before)[0]
        os.kill(victim, signal.SIGKILL)
        th.join(60)
        reqs, non2xx, errs, text = res.get("r", (0, 0, 0, "wrk did not finish"))
        came_back = wait_for(lambda: len({w["pid"] for w in pm.workers()} - before) == 1 and
                             len(pm.workers()) == 2, 10)
        tap(came_back, "kill -9: a new worker replaces the killed one", pm.log_text()[-2000:])
        # nginx had at most 8 requests in flight, spread over two workers
        tap(reqs > 100 and non2xx + errs <= 8,
            "kill -9 under load: only requests in flight on the killed worker fail "
            "(%d of %d failed)" % (non2xx + errs, reqs), text)
        tap(re.search(r"worker %d killed by signal 9" % victim, pm.log_text()) is not None,
            "kill -9: the log says which worker died and how", pm.log_text()[-1500:])
    finally:
        front.stop()
        pm.stop()


def t_reload_under_load(tmp, name, command, check_uri, conf_extra=""):
    if not WRK:
        tap(True, "SIGHUP under load (%s)" % name, skip="wrk not installed")
        return
    pm = PM(tmp, "reload-" + name, config="""
[global]
status_listen = unix:@STATUS@
[app]
listen = unix:@SOCK@
listen.mode = 0666
command = %s
pm = static
pm.max_children = 3
%s
""" % (command, conf_extra)).start()
    front = PhpNginx(tmp + "/reload-" + name, backend="unix:" + pm.sock,
                     root=os.path.join(tmp, "www")).start()
    try:
        pm.wait_ready(3, 20)
        st, body = http_get(front.url + check_uri)
        if st != 200:
            tap(False, "SIGHUP under load (%s): serves before the reload" % name,
                "%s %r\n%s\n%s" % (st, body[:500], pm.log_text()[-2000:], front.log_tail()))
            return
        gen0 = pm.status_json()["pools"][0]["generation"]
        res = {}
        th = threading.Thread(target=lambda: res.update(r=wrk(front.url + check_uri, 6)))
        th.start()
        time.sleep(1.5)
        pm.signal(signal.SIGHUP)
        time.sleep(2.0)
        pm.signal(signal.SIGHUP)
        th.join(60)
        reqs, non2xx, errs, text = res.get("r", (0, 0, 0, "wrk did not finish"))
        st = pm.status_json()
        gen = st["pools"][0]["generation"] if st else -1
        tap(reqs > 100 and non2xx == 0 and errs == 0,
            "SIGHUP twice under load (%s): zero failed requests (%d served)" % (name, reqs),
            text + "\n" + pm.log_text()[-2500:] + "\n" + front.log_tail())
        tap(gen == gen0 + 2 and st["reloads"] == 2,
            "SIGHUP (%s): two new generations, the reloads counted" % name,
            json.dumps(st)[:1500] + "\n" + pm.log_text()[-3000:])
        tap(wait_for(lambda: len(pm.workers()) == 3, 15),
            "SIGHUP (%s): the old generations drained away" % name, json.dumps(pm.workers()))
    finally:
        front.stop()
        pm.stop()


def t_reload_failure(tmp):
    pm = PM(tmp, "reload-fail", config="""
[global]
status_listen = unix:@STATUS@
[app]
listen = unix:@SOCK@
command = %s
pm = static
pm.max_children = 1
""" % ECHO).start()
    try:
        pm.wait_ready(1)
        pid0 = pm.workers()[0]["pid"]
        pm.write_config("[app]\nlisten = unix:@SOCK@\ncommand = %s\npm = sometimes\n" % ECHO)
        pm.signal(signal.SIGHUP)
        wait_for(lambda: "reload failed" in pm.log_text(), 5)
        log = pm.log_text()
        tap(re.search(r"reload failed: .*pm.conf:4: .*the running configuration stays", log)
            is not None, "reload with a bad config: refused, file and line logged", log[-1500:])
        pm.write_config("""
[global]
status_listen = unix:@STATUS@
[app]
listen = unix:@SOCK@
command = /bin/false
pm = static
pm.max_children = 1
startup_timeout = 2s
""")
        pm.signal(signal.SIGHUP)
        wait_for(lambda: log.count("reload failed") < pm.log_text().count("reload failed"), 8)
        rc, out, _ = call("unix:" + pm.sock, "/still")
        ws = pm.workers()
        tap(rc == 0 and [w["pid"] for w in ws] == [pid0],
            "reload whose workers die at start: the old generation keeps serving",
            pm.log_text()[-2000:] + json.dumps(ws))
    finally:
        pm.stop()


def t_crash_loop(tmp):
    pm = PM(tmp, "crash", config="""
[global]
status_listen = unix:@STATUS@
[crash]
listen = unix:@SOCK@
command = /bin/false
pm = static
pm.max_children = 4
crash_limit = 6
circuit_reset = 60s
""").start()
    try:
        time.sleep(5)
        log = pm.log_text()
        exits = len(re.findall(r"exited with status 1", log))
        cpu = cpu_seconds(pm.proc.pid)
        st = pm.status_json()
        health = st["pools"][0]["health"] if st else "?"
        tap(3 <= exits <= 14, "crash loop: respawns back off (%d exits in 5 s, 4 workers)" % exits,
            log[-2000:])
        tap("not spawning" in log and health == "open",
            "crash loop: the circuit opens and says so (health %s)" % health, log[-1500:])
        tap(cpu < 0.5, "crash loop: the manager stays cool (%.2f s CPU in 5 s)" % cpu)
    finally:
        pm.stop()


def t_request_timeout(tmp):
    pm = PM(tmp, "timeout", config="""
[global]
status_listen = unix:@STATUS@
[slow]
listen = unix:@SOCK@
command = %s
pm = static
pm.max_children = 1
request_slowlog_timeout = 300ms
request_terminate_timeout = 1500ms
kill_grace = 1s
""" % ECHO).start()
    try:
        pm.wait_ready(1)
        pid0 = pm.workers()[0]["pid"]
        t0 = time.monotonic()
        rc, out, err = call("unix:" + pm.sock, "/sleepy/page?n=1",
                            ["ECHO_DELAY_MS=20000", "REQUEST_METHOD=GET"], timeout=15)
        took = time.monotonic() - t0
        log = pm.log_text()
        tap(rc != 0 and took < 8, "request timeout: the overdue request ends (%.1f s)" % took,
            "rc=%s %s" % (rc, err))
        tap(re.search(r"slow request on worker %d: GET /sleepy/page\?n=1" % pid0, log) is not None,
            "slow log: the request is named (method, URI, worker)", log[-1500:])
        tap(re.search(r"request timed out on worker %d: GET /sleepy/page\?n=1 .*after 1\.[5-9]"
                      % pid0, log) is not None,
            "request timeout: the log line names request, worker and duration", log[-1500:])
        came = wait_for(lambda: [w["pid"] for w in pm.workers()] not in ([], [pid0]) and
                        pm.wait_ready(1, 1), 10)
        rc, out, _ = call("unix:" + pm.sock, "/after")
        tap(came and rc == 0, "request timeout: a new worker serves after", pm.log_text()[-1000:])
    finally:
        pm.stop()


def t_recycle(tmp):
    pm = PM(tmp, "recycle", config="""
[global]
status_listen = unix:@STATUS@
[r]
listen = unix:@SOCK@
command = %s
pm = static
pm.max_children = 1
pm.max_requests = 5
""" % ECHO).start()
    try:
        pm.wait_ready(1)
        pid0 = pm.workers()[0]["pid"]
        fails = 0
        for i in range(12):
            rc, _, _ = call("unix:" + pm.sock, "/r%d" % i)
            fails += rc != 0
            time.sleep(0.05)
        wait_for(lambda: pm.workers() and pm.workers()[0]["pid"] != pid0, 5)
        ws = pm.workers()
        tap(fails == 0 and ws and ws[0]["pid"] != pid0 and "recycled" in pm.log_text(),
            "pm.max_requests: the worker is recycled, no request fails",
            "fails=%d %s\n%s" % (fails, json.dumps(ws), pm.log_text()[-1500:]))
    finally:
        pm.stop()


def t_graceful_stop(tmp):
    pm = PM(tmp, "gstop", ["--listen", "unix:%s/gstop/app.sock" % tmp, "--workers", "1",
                           "--status", "unix:%s/gstop/status.sock" % tmp, "--", ECHO])
    pm.start()
    pm.wait_ready(1)
    res = {}
    th = threading.Thread(target=lambda: res.update(
        r=call("unix:" + pm.sock, "/inflight", ["ECHO_DELAY_MS=1500"])))
    th.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    pm.signal(signal.SIGTERM)
    th.join(20)
    try:
        pm.proc.wait(15)
    except subprocess.TimeoutExpired:
        pass
    took = time.monotonic() - t0
    rc, out, _ = res.get("r", (-1, b"", ""))
    tap(rc == 0 and b"200" in out.split(b"\n")[0] + b"200" and pm.proc.returncode == 0 and
        took < 6, "SIGTERM: the request in flight completes, then the manager exits (%.1f s)" % took,
        "rc=%s code=%s\n%s" % (rc, pm.proc.returncode, pm.log_text()[-1500:]))
    pm2 = PM(tmp, "qstop", ["--listen", "unix:%s/qstop/app.sock" % tmp, "--workers", "2", "--",
                            ECHO]).start()
    time.sleep(0.5)
    t0 = time.monotonic()
    pm2.signal(signal.SIGQUIT)
    try:
        pm2.proc.wait(5)
    except subprocess.TimeoutExpired:
        pass
    took = time.monotonic() - t0
    tap(pm2.proc.returncode is not None and took < 2,
        "SIGQUIT: immediate stop (%.2f s)" % took, pm2.log_text()[-800:])
    pm2.stop()


def t_ondemand(tmp):
    pm = PM(tmp, "ondemand", ["--listen", "unix:%s/ondemand/app.sock" % tmp, "--ondemand",
                              "--max-children", "3", "--idle-timeout", "1s",
                              "--status", "unix:%s/ondemand/status.sock" % tmp, "--", ECHO])
    pm.start(wait_sock=False)  # a probe connection would itself start a worker
    try:
        wait_for(lambda: pm.status_json() is not None, 5)
        none_at_start = pm.workers() == []
        rc, out, _ = call("unix:" + pm.sock, "/first")
        one = len(pm.workers()) == 1
        gone = wait_for(lambda: pm.workers() == [], 6)
        tap(none_at_start and rc == 0 and one and gone,
            "ondemand: no worker at start, one for the first request, none after idle",
            "start=%s rc=%s one=%s gone=%s\n%s" % (none_at_start, rc, one, gone,
                                                   pm.log_text()[-1500:]))
    finally:
        pm.stop()


PHP_HELLO = "<?php header('Content-Type: text/plain'); echo 'php-hello ', $_SERVER['QUERY_STRING'];\n"
PHP_SLEEP = "<?php usleep(800000); echo 'slept';\n"
PERL_APP = r"""#!/usr/bin/perl
use strict; use warnings; use FCGI;
my $req = FCGI::Request();
while ($req->Accept() >= 0) {
    print "Content-Type: text/plain\r\n\r\nperl-hello $ENV{QUERY_STRING}";
}
"""


def t_foreign_programs(tmp, fronts):
    d = os.path.join(tmp, "www")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    for name, text in (("hello.php", PHP_HELLO), ("sleep.php", PHP_SLEEP),
                       ("app.pl", PERL_APP)):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    os.chmod(os.path.join(d, "app.pl"), 0o755)
    progs = [
        ("php-cgi", os.path.exists(PHP_CGI), PHP_CGI, "/hello.php?x=1", b"php-hello x=1"),
        ("perl-fcgi", run(["perl", "-MFCGI", "-e", "1"])[0] == 0,
         "/usr/bin/perl " + os.path.join(d, "app.pl"), "/p?x=2", b"perl-hello x=2"),
        ("libfcgi", os.path.exists(LIBFCGI_ECHO), LIBFCGI_ECHO, "/l?x=3", None),
    ]
    for name, have, command, uri, want in progs:
        if not have:
            tap(True, "%s under pm behind nginx" % name, skip="%s not available" % name)
            continue
        pm = PM(tmp, "foreign-" + name, config="""
[global]
status_listen = unix:@STATUS@
[app]
listen = unix:@SOCK@
listen.mode = 0666
command = %s
pm = static
pm.max_children = 2
env[SCRIPT_FILENAME_ROOT] = %s
""" % (command, d)).start()
        front = PhpNginx(tmp + "/foreign-" + name, backend="unix:" + pm.sock, root=d).start()
        try:
            ok = pm.wait_ready(2, 10)
            st, body = http_get(front.url + uri)
            if want is None:  # the echo contract: its headers tell, the body is empty
                rc, body, _ = call("unix:" + pm.sock, uri)
                want = b"X-Query: x=3"
            ws = pm.workers()
            tap(ok and st == 200 and want in body and all(not w["reports"] for w in ws),
                "%s under pm behind nginx: served; its workers seen through the kernel" % name,
                "ready=%s %s %r\n%s\n%s" % (ok, st, body[:300], json.dumps(ws)[:600],
                                            pm.log_text()[-1500:]))
        finally:
            front.stop()
            pm.stop()


class PhpNginx(peers.Nginx):
    """nginx that also sends SCRIPT_FILENAME under a document root (php-cgi needs it)."""

    def __init__(self, workdir, backend, root):
        self.root = root
        super().__init__(workdir, backend)
        self.PARAMS = peers.Nginx.PARAMS + [("SCRIPT_FILENAME", root + "$fastcgi_script_name")]

    def command(self):
        return super().command()


def t_shed(tmp):
    if not os.path.exists(PHP_CGI):
        tap(True, "load shedding", skip="php-cgi not installed")
        return
    d = os.path.join(tmp, "www")
    pm = PM(tmp, "shed", config="""
[global]
status_listen = unix:@STATUS@
[php]
listen = unix:@SOCK@
listen.mode = 0666
command = %s
pm = static
pm.max_children = 1
shed_queue = 1
""" % PHP_CGI).start()
    front = PhpNginx(tmp + "/shed", backend="unix:" + pm.sock, root=d).start()
    try:
        pm.wait_ready(1, 10)
        codes = []
        lock = threading.Lock()

        def one():
            st, _ = http_get(front.url + "/sleep.php", 30)
            with lock:
                codes.append(st)
        ths = [threading.Thread(target=one) for _ in range(8)]
        for t in ths:
            t.start()
            time.sleep(0.05)
        for t in ths:
            t.join(40)
        n503, n200 = codes.count(503), codes.count(200)
        st = pm.status_json()
        shed = st["pools"][0].get("shed", 0) if st else 0
        tap(n200 >= 1 and n503 >= 1 and n200 + n503 == 8 and shed == n503,
            "load shedding: past the queue bound the manager answers 503 at once "
            "(%d served, %d shed)" % (n200, n503),
            "codes=%s shed=%s\n%s" % (codes, shed, pm.log_text()[-1500:]))
    finally:
        front.stop()
        pm.stop()


def t_user_chroot(tmp):
    if os.geteuid() != 0:
        tap(True, "user and chroot", skip="needs root")
        return
    user = "fcgikit-pmtest"
    if run(["id", user])[0] != 0:
        run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user])
    if run(["id", user])[0] != 0:
        tap(True, "user and chroot", skip="cannot create user %s" % user)
        return
    uid = int(run(["id", "-u", user])[1])
    jail = os.path.join(tmp, "jail")
    os.makedirs(jail + "/bin", exist_ok=True)
    os.chmod(tmp, 0o755)
    rc, _, err = run(["cc", "-static", "-O2", "-I" + ROOT + "/include",
                      os.path.join(ROOT, "examples", "hello.c"), os.path.join(BUILD, "libfcgikit.a"),
                      "-pthread", "-o", jail + "/bin/hello"], timeout=120)
    if rc != 0:
        tap(True, "user and chroot", skip="no static libc to build a jailed program: " + err[-200:])
        return
    pm = PM(tmp, "jail", config="""
[global]
status_listen = unix:@STATUS@
[jailed]
listen = unix:@SOCK@
listen.owner = %s
listen.mode = 0600
command = /bin/hello
user = %s
chroot = %s
pm = static
pm.max_children = 2
""" % (user, user, jail)).start()
    try:
        ok = pm.wait_ready(2, 10)
        ws = pm.workers()
        pids = [w["pid"] for w in ws]
        uids = [proc_uid(p) for p in pids]
        roots = [os.readlink("/proc/%d/root" % p) for p in pids]
        rc, out, _ = call("unix:" + pm.sock, "/j")
        tap(ok and uids == [uid, uid], "user: workers run as %s (uid %d)" % (user, uid),
            "uids=%s\n%s" % (uids, pm.log_text()[-1000:]))
        tap(roots == [jail, jail] and rc == 0 and b"Hello, World!" in out,
            "chroot: workers live in the jail and serve", "roots=%s rc=%s" % (roots, rc))
        tap(os.stat(pm.sock).st_uid == uid and (os.stat(pm.sock).st_mode & 0o777) == 0o600,
            "listen.owner and listen.mode set on the socket")
    finally:
        pm.stop()


def t_systemd(tmp):
    d = os.path.join(tmp, "systemd")
    os.makedirs(d, exist_ok=True)
    nsock = os.path.join(d, "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(nsock)
    ns.settimeout(10)
    # socket activation: the listening socket is made here and handed over as fd 3
    lpath = os.path.join(d, "app.sock")
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(lpath)
    ls.listen(16)
    env = dict(os.environ, NOTIFY_SOCKET=nsock, LISTEN_FDS="1")
    pm = PM(tmp, "systemd", ["--listen", "unix:" + lpath, "--workers", "1", "--", ECHO])
    pm.sock = lpath
    try:
        # the shell puts the socket on fd 3 and becomes the manager, as systemd would
        pm.start(wait_sock=False, env=env, pass_fds=(ls.fileno(),),
                 prefix=["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$@" 3<&%d' % ls.fileno(), "sh"])
        msgs = []
        try:
            while not any(b"READY=1" in m for m in msgs):
                msgs.append(ns.recv(512))
        except socket.timeout:
            pass
        tap(any(b"READY=1" in m for m in msgs), "systemd: READY=1 once the workers are up",
            "%s\n%s" % (msgs, pm.log_text()[-1000:]))
        rc, out, _ = call("unix:" + lpath, "/sd")
        tap(rc == 0 and "using the socket systemd passed" in pm.log_text(),
            "systemd: the passed socket is taken over and served", pm.log_text()[-1000:])
    finally:
        pm.stop()
        ns.close()
        ls.close()


PRELOAD = os.path.join(BUILD, "examples", "preload")


def ppid(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def t_preload(tmp):
    pm = PM(tmp, "preload", config="""
[global]
status_listen = unix:@STATUS@
[pre]
listen = unix:@SOCK@
command = %s --mib 16
pm = static
pm.max_children = 3
preload = yes
""" % PRELOAD).start()
    try:
        ok = pm.wait_ready(3, 10)
        ws = pm.workers()
        pids = sorted(w["pid"] for w in ws)
        parents = {ppid(p) for p in pids}
        zygote = parents.pop() if len(parents) == 1 else None
        bodies = set()
        for _ in range(9):
            rc, out, _ = call("unix:" + pm.sock, "/")
            bodies.add(out.strip())
        sums = {b.split(b"checksum ")[-1] for b in bodies}
        tap(ok and len(pids) == 3 and zygote and zygote != pm.proc.pid and
            ppid(zygote) == pm.proc.pid and len(sums) == 1 and all(w["reports"] for w in ws),
            "preload: one process loads, three forked workers share it and report",
            "pids=%s parents=%s bodies=%s\n%s" % (pids, parents, bodies, pm.log_text()[-1500:]))
        os.kill(pids[0], signal.SIGKILL)
        snap = {}

        def replaced():  # one status snapshot per look
            snap["ws"] = [w["pid"] for w in pm.workers()]
            return len(snap["ws"]) == 3 and pids[0] not in snap["ws"] and 0 not in snap["ws"]
        back = wait_for(replaced, 10)
        new = [p for p in snap.get("ws", []) if p not in pids]
        tap(back and new and new[0] > 0 and ppid(new[0]) == zygote,
            "preload: a killed worker is forked again from the loaded process",
            "back=%s new=%s zygote=%s %s\n%s" % (back, new, zygote, json.dumps(pm.workers()),
                                                  pm.log_text()[-1500:]))
        pm.signal(signal.SIGHUP)
        swapped = wait_for(lambda: pm.status_json() and
                           pm.status_json()["pools"][0]["generation"] == 2 and
                           len(pm.workers()) == 3 and
                           all(ppid(w["pid"]) != zygote for w in pm.workers()), 10)
        rc, _, _ = call("unix:" + pm.sock, "/after-reload")
        tap(swapped and rc == 0, "preload: SIGHUP starts a new loaded process and its workers",
            pm.log_text()[-1500:])
    finally:
        code = pm.stop()
    left = run(["pgrep", "-a", "-f", PRELOAD + " --mib 16"])[1]
    tap(code == 0 and not left, "preload: stop leaves no process behind",
        "exit %s, left: %r\n%s" % (code, left, pm.log_text()[-6000:]))


def t_preload_standalone(tmp):
    sock = os.path.join(tmp, "standalone.sock")
    proc = subprocess.Popen([PRELOAD, "unix:" + sock, "--workers", "3", "--mib", "8"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: connectable(sock), 10)
        kids = lambda: [int(x) for x in run(["pgrep", "-P", str(proc.pid)])[1].split()]
        ok = wait_for(lambda: len(kids()) == 3, 5)
        rc, out, _ = call("unix:" + sock, "/")
        victim = kids()[0]
        os.kill(victim, signal.SIGKILL)
        again = wait_for(lambda: len(kids()) == 3 and victim not in kids(), 5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        tap(ok and rc == 0 and b"checksum" in out and again and proc.returncode == 0,
            "fcgi_app_prefork standalone: 3 workers, a killed one replaced, SIGTERM stops all",
            "ok=%s rc=%s again=%s code=%s" % (ok, rc, again, proc.returncode))
    finally:
        peers.stop_process(proc)


def t_dynamic(tmp):
    pm = PM(tmp, "dynamic", ["--listen", "unix:%s/dynamic/app.sock" % tmp, "--dynamic", "1:2",
                             "--max-children", "4", "--status",
                             "unix:%s/dynamic/status.sock" % tmp, "--", ECHO])
    pm.start()
    try:
        pm.wait_ready(1)
        first = len(pm.workers())
        # a held request makes the only worker busy: the pool spawns a spare
        res = {}
        th = threading.Thread(target=lambda: res.update(
            r=call("unix:" + pm.sock, "/hold", ["ECHO_DELAY_MS=3000"])))
        th.start()
        grew = wait_for(lambda: len(pm.workers()) >= 2 and
                        pm.status_json()["pools"][0]["idle"] >= 1, 5)
        th.join(20)
        tap(first == 1 and grew and res.get("r", (1,))[0] == 0,
            "dynamic: a busy worker makes the pool start a spare (min_spare)",
            "first=%d %s\n%s" % (first, json.dumps(pm.workers()), pm.log_text()[-1000:]))
    finally:
        pm.stop()


def t_dynamic_kernel(tmp):
    """A program that does not report (php-cgi) still scales: on the sampled idle count and
    the listen queue."""
    if not os.path.exists(PHP_CGI):
        tap(True, "dynamic scaling of php-cgi", skip="php-cgi not installed")
        return
    d = os.path.join(tmp, "www")
    pm = PM(tmp, "dynphp", ["--listen", "unix:%s/dynphp/app.sock" % tmp, "--dynamic", "1:1",
                            "--max-children", "4", "--status", "unix:%s/dynphp/status.sock" % tmp,
                            "--", PHP_CGI])
    pm.start()
    try:
        pm.wait_ready(1, 10)
        first = len(pm.workers())
        ths = [threading.Thread(target=call, args=("unix:" + pm.sock, "/sleep.php",
                                                   ["SCRIPT_FILENAME=%s/sleep.php" % d]))
               for _ in range(4)]
        for t in ths:
            t.start()
        grew = wait_for(lambda: len(pm.workers()) >= 3, 5)
        for t in ths:
            t.join(30)
        most = len(pm.workers())
        tap(first == 1 and grew and most <= 4,
            "dynamic: php-cgi (not reporting) grows under load, within max_children",
            "first=%d most=%d\n%s" % (first, most, pm.log_text()[-1200:]))
        shrank = wait_for(lambda: len(pm.workers()) <= 2, 8)
        tap(shrank, "dynamic: idle php-cgi workers past max_spare are stopped, one a second",
            pm.log_text()[-800:])
    finally:
        pm.stop()


def t_worker_env(tmp):
    """Environment cleared but for what is listed; rlimits; output captured; allowed clients."""
    port = peers.free_port()
    pm = PM(tmp, "env", config="""
[global]
status_listen = unix:@STATUS@
log = @DIR@/pm.log
[env]
listen = 127.0.0.1:%d
listen.allowed_clients = 127.0.0.2
command = /usr/bin/perl -e "print STDERR qq(hello from the worker), chr(10); exec @ARGV" %s
env[GREETING] = hi there
rlimit_files = 345
pm = static
pm.max_children = 1
""" % (port, ECHO))
    pm.sock = None
    os.environ["PM_TEST_SECRET"] = "must-not-leak"
    pm.start(wait_sock=False)
    try:
        ok = wait_for(lambda: pm.status_json() is not None and len(pm.workers()) == 1 and
                      pm.workers()[0]["state"] != "starting", 10)
        pid = pm.workers()[0]["pid"] if ok else 0
        env = {}
        limits = ""
        if pid:
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = dict(x.split(b"=", 1) for x in f.read().split(b"\0") if b"=" in x)
            with open("/proc/%d/limits" % pid) as f:
                limits = f.read()
        tap(env.get(b"GREETING") == b"hi there" and b"PM_TEST_SECRET" not in env and
            env.get(b"FCGI_WEB_SERVER_ADDRS") == b"127.0.0.2",
            "environment: cleared, plus env[] and the allowed clients", repr(env))
        tap(re.search(r"Max open files\s+345\s+345", limits) is not None,
            "rlimit_files reaches the worker", limits)
        tap(re.search(r"\[worker\] env\[\d+\]: hello from the worker", pm.log_text())
            is not None, "worker output lands in the log with pool and pid", pm.log_text()[-800:])
        rc, out, err = call("127.0.0.1:%d" % port, "/refused", timeout=5)
        tap(rc != 0, "listen.allowed_clients: a client not listed is refused",
            "rc=%s %r" % (rc, out[:200]))
        os.rename(pm.log, pm.log + ".1")
        pm.signal(signal.SIGUSR1)
        tap(wait_for(lambda: "log reopened" in pm.log_text(), 5),
            "SIGUSR1 reopens the log file after rotation")
    finally:
        os.environ.pop("PM_TEST_SECRET", None)
        pm.stop()


def t_status_nginx(tmp):
    pm = PM(tmp, "stnginx", ["--listen", "unix:%s/stnginx/app.sock" % tmp, "--workers", "1",
                             "--status", "unix:%s/stnginx/status.sock" % tmp, "--", ECHO]).start()
    front = peers.Nginx(tmp + "/stnginx", backend="unix:" + pm.status).start()
    try:
        pm.wait_ready(1)
        st1, body1 = http_get(front.url + "/pm-status?json")
        st2, body2 = http_get(front.url + "/metrics")
        st3, body3 = http_get(front.url + "/ping")
        ok = st1 == 200 and json.loads(body1)["pools"][0]["name"] == "default"
        tap(ok and st2 == 200 and body2.endswith(b"# EOF\n") and body3 == b"pong\n",
            "status socket behind nginx: JSON, OpenMetrics and ping",
            "%s %r\n%s %r\n%s %r" % (st1, body1[:200], st2, body2[-100:], st3, body3))
    finally:
        front.stop()
        pm.stop()


def t_make_run(tmp):
    """The README's first command: the demo stack (gateway -> pm -> examples) answers."""
    port = peers.free_port()
    env = dict(os.environ, DEMO_SECONDS="6", PORT=str(port), FCGIKIT_BUILD=BUILD)
    proc = subprocess.Popen(["bash", os.path.join(ROOT, "examples", "run-demo.sh")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        up = wait_for(lambda: peers.port_open(port), 15)
        st1, b1 = http_get("http://127.0.0.1:%d/" % port)
        st2, b2 = http_get("http://127.0.0.1:%d/index.html" % port)
        st3, b3 = http_get("http://127.0.0.1:%d/gw-status" % port)
        states = [b["state"] for b in json.loads(b3)["backends"]] if st3 == 200 else []
        tap(up and st1 == 200 and b1 == b"Hello, World!\n" and st2 == 200 and
            b"fcgikit demo" in b2 and states == ["UP"],
            "make run: gateway -> fcgikit pm -> hello answers, the static page and the "
            "gateway's status too", "up=%s %s %r %s %s %r" % (up, st1, b1[:100], st2, st3, b3[:300]))
        out, _ = proc.communicate(timeout=30)
        text = out.decode(errors="replace")
        m = re.search(r"pm status --socket (unix:\S+)", text)
        tap(proc.returncode == 0 and m is not None, "make run: stops cleanly after DEMO_SECONDS, "
            "and says how to reach the manager", text[-800:])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)


def main():
    if not os.path.exists(FCGIKIT) or not os.path.exists(ECHO):
        print("1..0 # SKIP build/fcgikit or build/examples/echo missing (make)")
        return 0
    have_nginx = os.path.exists(peers.Nginx.binary)
    tmp = tempfile.mkdtemp(prefix="fcgikit-pm-")
    os.chmod(tmp, 0o755)
    tests = [
        ("oneliner", lambda: t_oneliner_basic(tmp)),
        ("config", lambda: t_config_errors(tmp)),
        ("kill9", lambda: t_kill9_under_load(tmp, None) if have_nginx else
         tap(True, "kill -9 under load", skip="nginx not installed")),
        ("reload-echo", lambda: t_reload_under_load(tmp, "echo", ECHO, "/r?x=1") if have_nginx
         else tap(True, "SIGHUP under load", skip="nginx not installed")),
        ("reload-php", lambda: t_reload_under_load(
            tmp, "php-cgi", PHP_CGI, "/hello.php?x=1",
            "env[PHP_FCGI_MAX_REQUESTS] = 100000") if have_nginx and os.path.exists(PHP_CGI)
         else tap(True, "SIGHUP under load (php-cgi)", skip="nginx or php-cgi not installed")),
        ("reload-fail", lambda: t_reload_failure(tmp)),
        ("crash", lambda: t_crash_loop(tmp)),
        ("timeout", lambda: t_request_timeout(tmp)),
        ("recycle", lambda: t_recycle(tmp)),
        ("stop", lambda: t_graceful_stop(tmp)),
        ("ondemand", lambda: t_ondemand(tmp)),
        ("foreign", lambda: t_foreign_programs(tmp, None) if have_nginx else
         tap(True, "foreign programs", skip="nginx not installed")),
        ("shed", lambda: t_shed(tmp) if have_nginx else
         tap(True, "load shedding", skip="nginx not installed")),
        ("jail", lambda: t_user_chroot(tmp)),
        ("systemd", lambda: t_systemd(tmp)),
        ("preload", lambda: t_preload(tmp)),
        ("prefork-standalone", lambda: t_preload_standalone(tmp)),
        ("dynamic", lambda: t_dynamic(tmp)),
        ("env", lambda: t_worker_env(tmp)),
        ("dynamic-kernel", lambda: t_dynamic_kernel(tmp)),
        ("status-nginx", lambda: t_status_nginx(tmp) if have_nginx else
         tap(True, "status behind nginx", skip="nginx not installed")),
        ("make-run", lambda: t_make_run(tmp)),
    ]
    # the php reload test needs the www dir written by the foreign test's setup
    d = os.path.join(tmp, "www")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    for name, text in (("hello.php", PHP_HELLO), ("sleep.php", PHP_SLEEP)):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    try:
        for name, fn in tests:
            if SELECT and not any(s in name for s in SELECT):
                continue
            try:
                fn()
            except Exception as e:  # a crashed test is a failure, the suite goes on
                import traceback
                tap(False, "%s: raised %s" % (name, e), traceback.format_exc())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % len(results))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
