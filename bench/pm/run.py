#!/usr/bin/env python3
"""Side-by-side: `fcgikit pm` against the spawners and managers it replaces, in one run.

1. The manager costs nothing: the same program (build/examples/hello on libfcgikit, and
   bench/peers/libfcgi_hello.c on Debian's libfcgi), 2 workers of 1 thread each, started by
   `fcgikit pm --listen unix:SOCK --workers 2 -- PROGRAM` and by `spawn-fcgi -F 2`, behind
   the same nginx (upstream keepalive, fastcgi_keep_conn on), driven by wrk -t2 -c32. Runs
   alternate between the two (pm first, then spawn-fcgi first...), so drift on the shared
   machine falls on both; the ratio of each round is printed so the noise shows.
   A libfcgi worker serves one connection at a time and nginx keeps its connections, so
   with 32 clients and 2 such workers most of nginx's connections wait in the accept queue
   until nginx retires a kept one (upstream keepalive_requests, 1000): p99 in seconds,
   the same under either spawner (--connections 2 shows the program without that queue).
2. Failed requests during a reload under load: php-cgi under `fcgikit pm` (static pool of
   4) reloaded with SIGHUP, against php-fpm (static pool of 4) reloaded with SIGUSR2, twice
   during one wrk run (at 2 s and 4 s); php-fpm both with its default config and with
   process_control_timeout set (the twin of the manager's stop_timeout); and the same runs
   without a reload for reference. nginx retries a request whose kept backend connection
   fails before the answer starts, as it would in production: wrk counts what clients see.

Everything listens on Unix sockets in a fresh directory and on 127.0.0.1; every wait is
bounded; only processes started here are signalled, by pid. A part whose programs are
missing is skipped with the reason. The machine is shared and noisy: read the ratios and
the failure counts, not the rates.

  bench/pm/run.py [--seconds 5] [--rounds 2] [--connections 32] [--reload-seconds 7]
                  [--parts 1,2] [--no-reference] [--out FILE.md]
"""
import argparse
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "peers"))
import peers  # noqa: E402

BUILD = os.environ.get("FCGIKIT_BUILD", os.path.join(ROOT, "build"))
FCGIKIT = os.path.join(BUILD, "fcgikit")
HELLO = os.path.join(BUILD, "examples", "hello")


def which(*names):
    for n in names:
        p = shutil.which(n) or next((os.path.join(d, n) for d in ("/usr/sbin", "/usr/bin")
                                     if os.access(os.path.join(d, n), os.X_OK)), None)
        if p:
            return p
    return None


WRK = which("wrk")
NGINX = peers.Nginx.binary if os.access(peers.Nginx.binary, os.X_OK) else None
SPAWN_FCGI = which("spawn-fcgi")
PHP_CGI = which("php-cgi8.2")
PHP_FPM = which("php-fpm8.2")

PHP_HELLO = "<?php header('Content-Type: text/plain'); echo 'php-hello ', $_SERVER['QUERY_STRING'];\n"

SUBREAPER = False


def become_subreaper():
    """spawn-fcgi's parent exits after forking: as a subreaper its children become ours, so
    they can be checked (their parent is us) and reaped. Linux only; harmless elsewhere."""
    global SUBREAPER
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        SUBREAPER = libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        SUBREAPER = False


wait_for = peers.wait_for
tail = peers.tail
http_status = peers.http_get


def ppid_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[1]) if fields[0] != "Z" else -1
    except (OSError, IndexError, ValueError):
        return -1


def children(pid):
    """Live (not zombie) children of pid, from /proc."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and ppid_of(int(d)) == pid:
            out.append(int(d))
    return sorted(out)


CONNECTIONS = 32


def run_wrk(url, seconds, conns=None, threads=2):
    cmd = [WRK, "-t%d" % threads, "-c%d" % (conns or CONNECTIONS), "-d%ds" % seconds,
           "--latency", "--timeout", "5s", url]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=seconds + 30)
        out = p.stdout
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace") if isinstance(e.stdout, bytes) \
            else (e.stdout or "") + "\nwrk timed out"
    return peers.wrk_summary(out)


# ------------------------------------------------------------------------------ backends

class Backend:
    """A manager or spawner of FastCGI workers on a Unix socket in its own directory."""
    label = "?"

    def __init__(self, tmp, name):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.sock = os.path.join(self.dir, "app.sock")
        self.log = os.path.join(self.dir, "manager.log")
        self.proc = None

    def wait_socket(self, seconds=10):
        up = wait_for(lambda: (self.proc is not None and self.proc.poll() is not None) or
                      peers.unix_open(self.sock), seconds)
        if not up or (self.proc is not None and self.proc.poll() is not None):
            raise RuntimeError("%s did not come up on %s\n%s" % (self.label, self.sock,
                                                                  tail(self.log)))

    def workers(self):
        return children(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def stop(self):
        peers.stop_process(self.proc, 10)


class PMOneLiner(Backend):
    label = "fcgikit pm"

    def __init__(self, tmp, name, argv, n):
        super().__init__(tmp, name)
        self.argv, self.n = argv, n

    def start(self):
        with open(self.log, "ab") as lf:
            self.proc = subprocess.Popen([FCGIKIT, "pm", "--listen", "unix:" + self.sock,
                                          "--workers", str(self.n), "--"] + self.argv,
                                         stdout=lf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.wait_socket()
        wait_for(lambda: len(self.workers()) >= self.n, 10)
        return self


class SpawnFcgi(Backend):
    """spawn-fcgi -F N: the parent forks N children on the socket, writes their pids to the
    pid file and exits. Stopped by those pids (only while they are still our children, or
    still run our program when we could not become their reaper)."""
    label = "spawn-fcgi"

    def __init__(self, tmp, name, argv, n):
        super().__init__(tmp, name)
        self.argv, self.n = argv, n
        self.pidfile = os.path.join(self.dir, "spawn.pid")
        self.pids = []

    def start(self):
        with open(self.log, "ab") as lf:  # never a pipe: the children inherit it
            p = subprocess.Popen([SPAWN_FCGI, "-s", self.sock, "-M", "0666", "-F", str(self.n),
                                  "-P", self.pidfile, "--"] + self.argv,
                                 stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        try:
            with open(self.pidfile) as f:
                self.pids = [int(x) for x in f.read().split() if x.isdigit()]
        except OSError:
            self.pids = []
        self.pids = [pid for pid in self.pids if self.ours(pid)]
        if p.returncode != 0 or len(self.pids) != self.n:
            self.stop()
            raise RuntimeError("spawn-fcgi exited %s with pids %s\n%s" %
                               (p.returncode, self.pids, tail(self.log)))
        self.wait_socket()
        return self

    def ours(self, pid):
        if SUBREAPER:
            return ppid_of(pid) == os.getpid()
        try:
            return os.readlink("/proc/%d/exe" % pid) == os.path.realpath(self.argv[0])
        except OSError:
            return False

    def workers(self):
        return [pid for pid in self.pids if self.ours(pid)]

    def gone(self, pid):
        if SUBREAPER:
            try:
                return os.waitpid(pid, os.WNOHANG)[0] == pid
            except ChildProcessError:
                return True
        return not os.path.exists("/proc/%d" % pid) or ppid_of(pid) == -1

    def stop(self):
        live = self.workers()
        for sig, seconds in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            for pid in live:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            wait_for(lambda: all(self.gone(pid) for pid in live), seconds)
            live = [pid for pid in live if not self.gone(pid)]
            if not live:
                break
        self.pids = []


class PMPhp(Backend):
    label = "fcgikit pm"
    reload_signal = signal.SIGHUP

    def __init__(self, tmp, name, n):
        super().__init__(tmp, name)
        self.n = n
        self.status = os.path.join(self.dir, "status.sock")
        self.conf = os.path.join(self.dir, "pm.conf")
        with open(self.conf, "w") as f:
            f.write("""[global]
status_listen = unix:%s
[php]
listen = unix:%s
listen.mode = 0666
command = %s
pm = static
pm.max_children = %d
env[PHP_FCGI_MAX_REQUESTS] = 100000
""" % (self.status, self.sock, PHP_CGI, n))

    def start(self):
        with open(self.log, "ab") as lf:
            self.proc = subprocess.Popen([FCGIKIT, "pm", "-c", self.conf], stdout=lf,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.wait_socket()
        wait_for(lambda: len(self.workers()) >= self.n, 10)
        return self


class PhpFpm(Backend):
    label = "php-fpm"
    reload_signal = signal.SIGUSR2

    def __init__(self, tmp, name, n, control_timeout=None):
        super().__init__(tmp, name)
        self.n = n
        self.conf = os.path.join(self.dir, "php-fpm.conf")
        self.log = os.path.join(self.dir, "php-fpm.log")
        # process_control_timeout: how long old children may finish their request on SIGUSR2;
        # the default, 0, does not wait. The manager's stop_timeout (default 30s) is its twin.
        pct = "process_control_timeout = %s\n" % control_timeout if control_timeout else ""
        with open(self.conf, "w") as f:
            f.write("""[global]
pid = %s/php-fpm.pid
error_log = %s
daemonize = no
""" % (self.dir, self.log) + pct + """[www]
listen = %s
listen.mode = 0666
pm = static
pm.max_children = %d
pm.max_requests = 0
""" % (self.sock, n))

    def start(self):
        args = [PHP_FPM, "-F", "-y", self.conf, "-p", self.dir]
        if os.geteuid() == 0:
            args.append("-R")
        with open(os.path.join(self.dir, "stderr.log"), "ab") as lf:
            self.proc = subprocess.Popen(args, stdout=lf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.wait_socket()
        wait_for(lambda: len(self.workers()) >= self.n, 10)
        return self


class PhpNginx(peers.Nginx):
    """nginx that also sends SCRIPT_FILENAME under a document root (php needs it)."""

    def __init__(self, workdir, backend, root):
        super().__init__(workdir, backend)
        self.PARAMS = peers.Nginx.PARAMS + [("SCRIPT_FILENAME", root + "$fastcgi_script_name")]


# ------------------------------------------------------------------------------ part 1

def build_libfcgi_hello(tmp):
    exe = os.path.join(tmp, "libfcgi_hello")
    p = subprocess.run(["cc", "-O2", "-o", exe, os.path.join(ROOT, "bench/peers/libfcgi_hello.c"),
                        "-lfcgi", "-pthread"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=120)
    return exe if p.returncode == 0 else None, p.stdout


def part_overhead(tmp, a):
    """Returns markdown lines, or a skip reason."""
    missing = [n for n, p in (("wrk", WRK), ("nginx", NGINX), ("spawn-fcgi", SPAWN_FCGI))
               if not p]
    if missing:
        return "skipped: %s not installed" % ", ".join(missing)
    programs = []
    if os.access(HELLO, os.X_OK):
        programs.append(("hello (libfcgikit)", [HELLO, "--threads", "1"]))
    else:
        print("  skipping hello (libfcgikit): %s missing (make)" % HELLO)
    exe, err = build_libfcgi_hello(tmp) if which("cc") else (None, "no cc")
    if exe:
        programs.append(("libfcgi_hello (libfcgi)", [exe, "--threads", "1"]))
    else:
        print("  skipping libfcgi_hello: does not build (libfcgi-dev?): %s" % err.strip()[-300:])
    if not programs:
        return "skipped: no program to run"
    n = a.workers
    lines = ["| program | spawner | requests/s | p99 ms (worst run) | errors | ratio pm/spawn-fcgi |"
             " ratio per round |",
             "|---|---|---|---|---|---|---|"]
    for pname, argv in programs:
        tag = re.sub(r"\W+", "-", pname.split()[0])
        backs = {"pm": PMOneLiner(tmp, tag + "-pm", argv, n),
                 "spawn-fcgi": SpawnFcgi(tmp, tag + "-spawn", argv, n)}
        fronts = {}
        res = {k: [] for k in backs}
        try:
            for k, b in backs.items():
                b.start()
                fronts[k] = peers.Nginx(os.path.join(tmp, tag + "-" + k), backend="unix:" + b.sock)
                fronts[k].start()
            for k in backs:
                w = run_wrk(fronts[k].url + "/", 1)  # warm up: connections, caches
                if not w["requests"]:
                    raise RuntimeError("%s behind nginx serves nothing:\n%s\n%s" %
                                       (k, w["raw"][-800:], tail(backs[k].log)))
            for rnd in range(a.rounds):
                order = ("pm", "spawn-fcgi") if rnd % 2 == 0 else ("spawn-fcgi", "pm")
                for k in order:
                    r = run_wrk(fronts[k].url + "/", a.seconds)
                    res[k].append(r)
                    print("  %-24s %-10s round %d: %8.0f req/s  p99 %7.2f ms  errors %d%s" %
                          (pname, k, rnd + 1, r["rps"], r["p99"], r["non2xx"] + r["sockerr"],
                           "" if r["ok"] else "  (wrk: %s)" % r["raw"].strip()[-200:]),
                          flush=True)
                    if len(backs[k].workers()) != n:
                        print("  warning: %s has %d workers, not %d" %
                              (k, len(backs[k].workers()), n))
        finally:
            for f in fronts.values():
                f.stop()
            for b in backs.values():
                b.stop()
        rounds = [(p["rps"] / s["rps"]) if s["rps"] else float("nan")
                  for p, s in zip(res["pm"], res["spawn-fcgi"])]
        mean = {k: sum(r["rps"] for r in v) / len(v) for k, v in res.items()}
        for k in ("pm", "spawn-fcgi"):
            v = res[k]
            p99 = max(r["p99"] for r in v)
            errs = sum(r["non2xx"] + r["sockerr"] for r in v)
            if k == "pm":
                ratio = "%.3f" % (mean["pm"] / mean["spawn-fcgi"]) if mean["spawn-fcgi"] else "n/a"
                per = ", ".join("%.3f" % x for x in rounds)
            else:
                ratio, per = "1.000", ""
            label = "fcgikit pm --workers %d" % n if k == "pm" else "spawn-fcgi -F %d" % n
            lines.append("| %s | %s | %.0f | %.2f | %d | %s | %s |" %
                         (pname, label, mean[k], p99, errs, ratio, per))
    return lines


# ------------------------------------------------------------------------------ part 2

def reload_run(backend, url, seconds, at, reload_):
    """One wrk run; the backend's reload signal at each time in `at` (from the run's start)."""
    before = set(backend.workers())
    res = {}
    th = threading.Thread(target=lambda: res.update(r=run_wrk(url, seconds)))
    t0 = time.monotonic()
    th.start()
    sent = 0
    if reload_:
        for t in at:
            time.sleep(max(0.0, t0 + t - time.monotonic()))
            if backend.proc.poll() is None:
                backend.proc.send_signal(backend.reload_signal)
                sent += 1
    th.join(seconds + 40)
    r = res.get("r") or {"requests": 0, "non2xx": 0, "sockerr": 0, "sockdetail": "",
                         "rps": 0.0, "p99": float("nan"), "raw": "wrk did not finish", "ok": False}
    # let the last generation settle before counting who serves now
    wait_for(lambda: len(backend.workers()) == backend.n, 10, 0.2)
    after = set(backend.workers())
    r["signals"] = sent
    r["replaced"] = "%d/%d" % (len(after - before), len(after))
    r["alive"] = backend.proc.poll() is None
    return r


def part_reload(tmp, a):
    missing = [n for n, p in (("wrk", WRK), ("nginx", NGINX)) if not p]
    if missing:
        return "skipped: %s not installed" % ", ".join(missing)
    www = os.path.join(tmp, "www")
    os.makedirs(www, exist_ok=True)
    os.chmod(www, 0o755)
    with open(os.path.join(www, "hello.php"), "w") as f:
        f.write(PHP_HELLO)
    kinds = []
    if PHP_CGI and os.access(FCGIKIT, os.X_OK):
        kinds.append(("fcgikit pm + php-cgi8.2", lambda: PMPhp(tmp, "php-pm", 4)))
    else:
        print("  skipping fcgikit pm + php-cgi: %s" %
              ("php-cgi8.2 not installed" if not PHP_CGI else FCGIKIT + " missing (make)"))
    if PHP_FPM:
        kinds.append(("php-fpm8.2", lambda: PhpFpm(tmp, "php-fpm", 4)))
        kinds.append(("php-fpm8.2, process_control_timeout = 30s",
                      lambda: PhpFpm(tmp, "php-fpm-pct", 4, "30s")))
    else:
        print("  skipping php-fpm: php-fpm8.2 not installed")
    if not kinds:
        return "skipped: neither php-cgi8.2 nor php-fpm8.2 is installed"
    backs, fronts, rows = {}, {}, []
    try:
        for name, make in kinds:
            b = backs[name] = make().start()
            f = fronts[name] = PhpNginx(b.dir, backend="unix:" + b.sock, root=www).start()
            st, body = http_status(f.url + "/hello.php?x=1")
            if st != 200 or b"php-hello x=1" not in body:
                raise RuntimeError("%s does not serve hello.php: %s %r\n%s\n%s" %
                                   (name, st, body[:300], tail(b.log), f.log_tail()))
            run_wrk(f.url + "/hello.php", 1)  # warm up
        at = (2.0, 4.0)
        plan = [(True, a.reload_seconds)]
        if not a.no_reference:
            plan.append((False, a.seconds))
        for rnd, (reload_, secs) in enumerate(plan):
            names = [n for n, _ in kinds]
            if rnd % 2:
                names.reverse()
            for name in names:
                r = reload_run(backs[name], fronts[name].url + "/hello.php", secs, at, reload_)
                rows.append((name, reload_, r))
                print("  %-42s %-9s %7d served  non-2xx %d  socket errors %d (%s)  workers "
                      "replaced %s" % (name, "reload" if reload_ else "no reload", r["requests"],
                                       r["non2xx"], r["sockerr"], r["sockdetail"], r["replaced"]),
                      flush=True)
                if not r["alive"]:
                    print("  warning: %s exited during the run\n%s" % (name, tail(backs[name].log)))
    finally:
        for f in fronts.values():
            f.stop()
        for b in backs.values():
            b.stop()
    lines = ["| manager | run | requests served | req/s | non-2xx | socket errors | failed total |"
             " workers replaced |",
             "|---|---|---|---|---|---|---|---|"]
    for name, reload_, r in rows:
        run = ("%s x%d (at %s s of %d s)" % (backs[name].reload_signal.name, r["signals"],
                                               " and ".join("%g" % t for t in at),
                                               a.reload_seconds)
               if reload_ else "no reload, %ds" % a.seconds)
        lines.append("| %s | %s | %d | %.0f | %d | %d%s | %d | %s |" %
                     (name, run, r["requests"], r["rps"], r["non2xx"], r["sockerr"],
                      " (%s)" % r["sockdetail"] if r["sockerr"] else "",
                      r["non2xx"] + r["sockerr"], r["replaced"]))
    return lines


# ------------------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", 5)))
    ap.add_argument("--rounds", type=int, default=2, help="runs of each spawner (part 1)")
    ap.add_argument("--workers", type=int, default=2, help="workers per program (part 1)")
    ap.add_argument("--reload-seconds", type=int, default=7)
    ap.add_argument("--no-reference", action="store_true", help="part 2: no run without reload")
    ap.add_argument("--connections", type=int, default=32, help="wrk -c")
    ap.add_argument("--parts", default="1,2")
    ap.add_argument("--out")
    a = ap.parse_args()
    global CONNECTIONS
    CONNECTIONS = a.connections
    a.reload_seconds = max(6, a.reload_seconds)  # the second reload at 4 s must settle
    if not os.access(FCGIKIT, os.X_OK):
        sys.exit("bench: %s missing (make)" % FCGIKIT)
    become_subreaper()
    parts = set(a.parts.split(","))
    tmp = tempfile.mkdtemp(prefix="fcgikit-bench-pm-")
    os.chmod(tmp, 0o755)  # nginx workers may run as another user
    out = []
    status = 0
    try:
        if "1" in parts:
            title = ("### The manager's cost: %d workers of 1 thread, pm vs spawn-fcgi, "
                     "behind nginx, wrk -t2 -c%d, %d x %d s each, alternating" %
                     (a.workers, a.connections, a.rounds, a.seconds))
            print(title, flush=True)
            try:
                res = part_overhead(tmp, a)
            except Exception as e:  # noqa: BLE001 — report, go on with part 2
                res, status = "failed: %s" % e, 1
            out += [title, ""] + (res if isinstance(res, list) else [res]) + [""]
        if "2" in parts:
            title = ("### Failed requests during a reload under load: php-cgi under pm vs php-fpm, "
                     "static pool of 4, behind nginx, wrk -t2 -c%d" % a.connections)
            print(title, flush=True)
            try:
                res = part_reload(tmp, a)
            except Exception as e:  # noqa: BLE001
                res, status = "failed: %s" % e, 1
            out += [title, ""] + (res if isinstance(res, list) else [res]) + [""]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = "\n".join(out)
    print()
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
