#!/usr/bin/env python3
"""The client side's benchmarks, in one run (`make bench` calls bench/client/run.sh):

 1. `fcgikit bench` straight at `hello` built on libfcgikit (build/examples/hello) and at the
    same program on Debian's libfcgi (bench/app/libfcgi_hello.c), same application threads,
    side by side: one kept-alive connection, as many connections as threads, 64 kept-alive
    connections, and multiplexing (-m 16 over 4 connections, libfcgikit only: libfcgi says
    FCGI_MPXS_CONNS=0). Requests/s, the ratio, p50/p99, errors; and the floor: what a program
    doing nothing but one read and one write per request reaches (bench/peers/floor_hello.c),
    the most any application can get from this client on this machine.
 2. The same two applications behind nginx (upstream keepalive, fastcgi_keep_conn on) with
    wrk, for comparison.
 3. The load tools' own cost: CPU time per request of `fcgikit bench` against hello, and of
    wrk against nginx answering a fixed string (`return 200`), each from getrusage of the
    finished child; the application's (or nginx's) CPU per request from /proc/PID/stat.

The machine is small (2 cores), shared and noisy: runs are short; read the ratios.

  bench/client/run.py [--seconds 5] [--app-threads 2] [--out FILE.md]
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("FCGIKIT_BUILD", os.path.join(ROOT, "build"))
FCGIKIT = os.path.join(BUILD, "fcgikit")
sys.path.insert(0, os.path.join(ROOT, "tests", "peers"))
import peers  # noqa: E402
TICK = os.sysconf("SC_CLK_TCK")


def wait_for(pred, seconds=10.0):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def unix_up(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.settimeout(0.3)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def tcp_up(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.3).close()
        return True
    except OSError:
        return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid):
    """utime + stime of a process and its threads, in seconds (children not included)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        return 0.0


def stop(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def timed_child(args, timeout):
    """Runs a load tool; returns (stdout, stderr, its CPU seconds from getrusage)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return p.stdout.decode(), p.stderr.decode(), cpu


def fk_bench(address, seconds, conns, mpx=1, threads=1, uri="/", extra=()):
    args = [FCGIKIT, "bench", "-q", "--json", "-d", str(seconds), "-c", str(conns), "-m",
            str(mpx), "-t", str(threads), "--timeout", "2"] + list(extra) + [address, uri]
    out, err, cpu = timed_child(args, seconds + 60)
    try:
        j = json.loads(out)
    except ValueError:
        return {"error": (err or out).strip()[:200]}
    return {"rps": j["requests_per_sec"], "p50": j["latency_us"]["p50"],
            "p99": j["latency_us"]["p99"], "errors": j["errors_total"], "requests": j["requests"],
            "tool_cpu": cpu, "mpx": j["mpx"], "note": err.strip().splitlines()[-1] if err.strip() else ""}


def wrk(url, seconds, conns, threads=1):
    args = ["wrk", "--latency", "-t", str(threads), "-c", str(conns), "-d", "%ds" % seconds,
            "--timeout", "2s", url]
    out, err, cpu = timed_child(args, seconds + 60)
    w = peers.wrk_summary(out)
    errs = w["errors"]
    # latencies in microseconds here, 0 when wrk printed none
    r = {"tool_cpu": cpu, "rps": w["rps"], "requests": w["requests"], "errors": errs,
         "p50": w["p50"] * 1000 if w["p50"] == w["p50"] else 0.0,
         "p99": w["p99"] * 1000 if w["p99"] == w["p99"] else 0.0}
    if errs and os.environ.get("BENCH_DEBUG"):
        sys.stderr.write(out + err)
    return r


class App:
    def __init__(self, name, args, sock, log):
        self.name, self.sock = name, sock
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if not wait_for(lambda: self.proc.poll() is not None or unix_up(sock), 15) or \
                self.proc.poll() is not None:
            stop(self.proc)
            raise RuntimeError("%s did not start (see %s)" % (name, log))
        self.address = "unix:" + sock

    def cpu(self):
        return proc_cpu(self.proc.pid)

    def stop(self):
        stop(self.proc)
        self.log.close()


def measure(app, fn):
    """Runs fn() and adds the application's CPU per request."""
    c0 = app.cpu() if app else 0
    r = fn()
    if app and r.get("requests"):
        r["app_cpu_us"] = (app.cpu() - c0) * 1e6 / r["requests"]
    if r.get("requests"):
        r["tool_cpu_us"] = r["tool_cpu"] * 1e6 / r["requests"]
    return r


def fmt_row(cols):
    return "| " + " | ".join(str(c) for c in cols) + " |"


def us(v):
    return "%.0f us" % v if v < 10000 else "%.1f ms" % (v / 1000)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--app-threads", type=int, default=2)
    ap.add_argument("--out")
    a = ap.parse_args()
    secs, T = a.seconds, a.app_threads
    for need in (FCGIKIT, os.path.join(BUILD, "examples", "hello")):
        if not os.access(need, os.X_OK):
            sys.exit("bench/client: %s is not built (make)" % need)
    tmp = tempfile.mkdtemp(prefix="fcgikit-bench-client-")
    apps, nginx = [], None
    lines = []

    def out(s=""):
        print(s, flush=True)
        lines.append(s)

    try:
        fk = App("hello-libfcgikit", [os.path.join(BUILD, "examples", "hello"),
                                      "unix:" + os.path.join(tmp, "fk.sock"), "--threads", str(T)],
                 os.path.join(tmp, "fk.sock"), os.path.join(tmp, "fk.log"))
        apps.append(fk)
        lf = None
        lf_src = os.path.join(ROOT, "bench", "app", "libfcgi_hello.c")
        if not os.path.exists(lf_src):
            lf_src = os.path.join(ROOT, "bench", "peers", "libfcgi_hello.c")
        lf_exe = os.path.join(tmp, "libfcgi_hello")
        if os.path.exists(lf_src) and subprocess.run(
                ["cc", "-O2", lf_src, "-lfcgi", "-pthread", "-o", lf_exe]).returncode == 0:
            lf = App("hello-libfcgi", [lf_exe, os.path.join(tmp, "lf.sock"), str(T)],
                     os.path.join(tmp, "lf.sock"), os.path.join(tmp, "lf.log"))
            apps.append(lf)

        # The floor: one read and one write per request, a thread per connection, nothing
        # parsed (bench/peers/floor_hello.c). What it reaches bounds any application here.
        fl = None
        fl_exe = os.path.join(tmp, "floor_hello")
        if subprocess.run(["cc", "-O2", os.path.join(ROOT, "bench", "peers", "floor_hello.c"),
                           "-pthread", "-o", fl_exe]).returncode == 0:
            fl = App("floor", [fl_exe, os.path.join(tmp, "fl.sock")], os.path.join(tmp, "fl.sock"),
                     os.path.join(tmp, "fl.log"))
            apps.append(fl)

        out("## fcgikit bench: hello on libfcgikit vs hello on libfcgi (%d application threads, "
            "%d s per run, 1 load thread)" % (T, secs))
        out()
        out(fmt_row(["load", "libfcgikit req/s", "libfcgi req/s", "ratio", "libfcgikit p50 / p99",
                     "libfcgi p50 / p99", "errors (fk / lf)", "floor req/s (x libfcgi)"]))
        out(fmt_row(["---"] * 8))
        cases = [("1 kept-alive connection", dict(conns=1)),
                 ("%d kept-alive connections" % T, dict(conns=T)),
                 ("64 kept-alive connections", dict(conns=64)),
                 ("-m 16 over 4 connections", dict(conns=4, mpx=16))]
        results = {}
        for label, kw in cases:
            r1 = measure(fk, lambda: fk_bench(fk.address, secs, **kw))
            r2 = measure(lf, lambda: fk_bench(lf.address, secs, **kw)) if lf else {}
            r3 = fk_bench(fl.address, secs, **kw) if fl and kw.get("mpx", 1) == 1 else {}
            results[label] = (r1, r2, r3)
            ratio = "%.2fx" % (r1["rps"] / r2["rps"]) if r2.get("rps") else "-"
            lf_cell = "%.0f" % r2["rps"] if "rps" in r2 else r2.get("error", "-")
            if r2.get("mpx") == 1 and kw.get("mpx", 1) > 1:
                lf_cell += " (no mpx: -m 1)"
            out(fmt_row([label, "%.0f" % r1.get("rps", 0), lf_cell, ratio,
                         "%s / %s" % (us(r1.get("p50", 0)), us(r1.get("p99", 0))),
                         "%s / %s" % (us(r2.get("p50", 0)), us(r2.get("p99", 0))) if r2 else "-",
                         "%s / %s" % (r1.get("errors", "-"), r2.get("errors", "-")),
                         "%.0f (%.2fx)" % (r3["rps"], r3["rps"] / r2["rps"])
                         if r3.get("rps") and r2.get("rps") else "-"]))
        m16 = results["-m 16 over 4 connections"][0].get("rps", 0)
        c64 = results["64 kept-alive connections"][0].get("rps", 0)
        one = results["1 kept-alive connection"]
        out()
        out("libfcgikit on one kept-alive connection: %.2fx libfcgi's rate (aim: 2x; the floor, "
            "one read and one write per request, reaches %.2fx). "
            "Multiplexed, -m 16 over 4 connections: %.2fx the rate of 64 plain connections "
            "(aim: at least 1x)." % (one[0]["rps"] / one[1]["rps"] if one[1].get("rps") else 0,
                                     one[2]["rps"] / one[1]["rps"]
                                     if one[2].get("rps") and one[1].get("rps") else 0,
                                     m16 / c64 if c64 else 0))
        out()

        # nginx + wrk, and the fixed-string location for the tools' own cost.
        ngx = shutil.which("nginx")
        if ngx and shutil.which("wrk"):
            # nginx's workers may run as another user (nobody, when started as root): let
            # them reach the sockets.
            os.chmod(tmp, 0o755)
            for p in apps:
                os.chmod(p.sock, 0o666)
            nd = os.path.join(tmp, "nginx")
            os.makedirs(os.path.join(nd, "logs"))
            port = free_port()
            params = "include /etc/nginx/fastcgi_params;" if os.path.exists(
                "/etc/nginx/fastcgi_params") else ""
            ups = "upstream fk { server unix:%s; keepalive 32; }\n" % fk.sock
            locs = "location /fk { fastcgi_pass fk; fastcgi_keep_conn on; %s }\n" % params
            if lf:
                ups += "upstream lf { server unix:%s; keepalive 32; }\n" % lf.sock
                locs += "location /lf { fastcgi_pass lf; fastcgi_keep_conn on; %s }\n" % params
            conf = os.path.join(nd, "nginx.conf")
            with open(conf, "w") as f:
                f.write("daemon off;\nworker_processes 1;\npid %s/nginx.pid;\n"
                        "error_log %s/error.log;\nevents { worker_connections 4096; }\n"
                        "http { access_log off;\n client_body_temp_path %s; fastcgi_temp_path %s;\n"
                        " proxy_temp_path %s; uwsgi_temp_path %s; scgi_temp_path %s;\n %s"
                        " server { listen 127.0.0.1:%d; %s"
                        " location /fixed { return 200 \"Hello, World!\\n\"; } } }\n"
                        % ((nd,) * 7 + (ups, port, locs)))
            nginx = subprocess.Popen([ngx, "-c", conf, "-p", nd], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
            if not wait_for(lambda: tcp_up(port), 10):
                raise RuntimeError("nginx did not start")
            base = "http://127.0.0.1:%d" % port
            out("## The same behind nginx (upstream keepalive, fastcgi_keep_conn on), wrk -t 1, "
                "64 connections")
            out()
            out(fmt_row(["application", "req/s", "p50 / p99", "errors (socket + non-2xx)"]))
            out(fmt_row(["---"] * 4))
            wf = wrk(base + "/fk", secs, 64)
            out(fmt_row(["hello on libfcgikit", "%.0f" % wf["rps"],
                         "%s / %s" % (us(wf["p50"]), us(wf["p99"])), wf["errors"]]))
            if lf:
                wl = wrk(base + "/lf", secs, 64)
                out(fmt_row(["hello on libfcgi", "%.0f" % wl["rps"],
                             "%s / %s" % (us(wl["p50"]), us(wl["p99"])), wl["errors"]]))
                if wl["rps"]:
                    out()
                    out("ratio through nginx: %.2fx" % (wf["rps"] / wl["rps"]))
            out()

            out("## The load tools' own cost (1 load thread, 16 connections)")
            out()
            out(fmt_row(["tool -> server", "req/s", "tool CPU per request",
                         "server CPU per request", "p50 / p99"]))
            out(fmt_row(["---"] * 5))
            ngx_proc = NginxCpu(nginx.pid)
            c0 = ngx_proc.cpu()
            w = wrk(base + "/fixed", secs, 16)
            w["app_cpu_us"] = (ngx_proc.cpu() - c0) * 1e6 / max(1, w["requests"])
            w["tool_cpu_us"] = w["tool_cpu"] * 1e6 / max(1, w["requests"])
            f = measure(fk, lambda: fk_bench(fk.address, secs, 16))
            out(fmt_row(["wrk -> nginx `return 200` (HTTP)", "%.0f" % w["rps"],
                         "%.2f us" % w["tool_cpu_us"], "%.2f us" % w["app_cpu_us"],
                         "%s / %s" % (us(w["p50"]), us(w["p99"]))]))
            out(fmt_row(["fcgikit bench -> hello on libfcgikit (FastCGI)", "%.0f" % f["rps"],
                         "%.2f us" % f.get("tool_cpu_us", 0), "%.2f us" % f.get("app_cpu_us", 0),
                         "%s / %s" % (us(f["p50"]), us(f["p99"]))]))
            fm = measure(fk, lambda: fk_bench(fk.address, secs, 4, mpx=16))
            out(fmt_row(["fcgikit bench -m 16 (4 connections) -> hello on libfcgikit",
                         "%.0f" % fm["rps"], "%.2f us" % fm.get("tool_cpu_us", 0),
                         "%.2f us" % fm.get("app_cpu_us", 0),
                         "%s / %s" % (us(fm["p50"]), us(fm["p99"]))]))
            out()
            if w.get("tool_cpu_us") and f.get("tool_cpu_us"):
                out("fcgikit bench costs %.2fx wrk's CPU per request (%.1f vs %.1f us); with -m 16, "
                    "%.2fx." % (f["tool_cpu_us"] / w["tool_cpu_us"], f["tool_cpu_us"],
                                w["tool_cpu_us"], fm.get("tool_cpu_us", 0) / w["tool_cpu_us"]))
        else:
            out("(nginx or wrk not installed: the nginx rows are left out)")
    finally:
        stop(nginx)
        for p in apps:
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if a.out:
        with open(a.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


class NginxCpu:
    """nginx's master and workers together (the workers are the master's children)."""

    def __init__(self, master):
        self.master = master

    def cpu(self):
        total = proc_cpu(self.master)
        try:
            with open("/proc/%d/task/%d/children" % (self.master, self.master)) as f:
                for pid in f.read().split():
                    total += proc_cpu(int(pid))
        except OSError:
            pass
        return total


if __name__ == "__main__":
    sys.exit(main())
