#!/usr/bin/env python3
"""Side-by-side: `fcgikit gateway` against nginx, lighttpd and HAProxy as HTTP fronts of the
same FastCGI backend, in one run, driven by wrk -t2 -c32.

Fronts: the gateway with --workers 1 (it is single-threaded: one event loop per process)
and --workers 2; nginx (1 worker process, upstream keepalive 32, fastcgi_keep_conn on);
lighttpd (mod_fastcgi: one backend connection per request, it never keeps them); HAProxy
(fcgi-app, option keep-conn, http-reuse always). nginx, lighttpd and HAProxy come from
tests/peers/peers.py with their generated configs; none logs requests, and the gateway's
access log goes to /dev/null (it has no switch to turn it off: it still formats and writes
one line per request).

1. Small responses: build/examples/hello --threads 2 ("Hello, World!", 14 bytes).
   requests/s, p50, p99, errors, ratio to nginx.
2. 1 MiB responses: bench/gateway/big.c (built here into a temporary directory; neither
   hello nor echo can answer a large body to a GET — echo answers the request body), 2
   threads, answering 1 MiB with Content-Length. requests/s, body MiB/s, p99, ratio.
3. A multiplexing backend over few connections: hello is on libfcgikit, which answers
   FCGI_MPXS_CONNS=1, so the gateway multiplexes on its own (the client asks GET_VALUES on
   its first connection); --backend-conns caps how many connections it opens (default 8).
   It is a cap, not a count: the client puts up to 64 requests on a connection before it
   opens another, so with 32 clients the default opens one as well.
   Rows: the gateway with --backend-conns 1, 2 and the default; HAProxy with mpxs-conns
   (max-reqs 32, get-values); nginx, which never multiplexes, for reference. The backend
   connections column is what `ss` saw open at the backend socket in the middle of the run
   (min-max of the samples), so it shows what each front really did; for that each front
   gets its own hello --threads 2 (the same program, one instance per front, only one of
   them under load at a time).

Every part runs each front --rounds times (default 2), alternating the order (first round
in the listed order, the next reversed...), because the 2-core machine is shared and noisy:
the ratio of each round is printed so the noise shows. Read ratios, not rates. The backend
runs on a Unix socket in a fresh directory; fronts listen on 127.0.0.1; every wait is
bounded; only processes started here are signalled, by pid. A front that is not installed
is skipped with the reason.

  bench/gateway/run.py [--seconds 5] [--rounds 2] [--connections 32] [--parts 1,2,3]
                       [--fronts gateway,gateway-w2,nginx,lighttpd,haproxy] [--out FILE.md]
"""
import argparse
import os
import shutil
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
LIBFCGIKIT = os.path.join(BUILD, "libfcgikit.a")
BIG_C = os.path.join(ROOT, "bench", "gateway", "big.c")
BIG_BYTES = 1 << 20
WRK = shutil.which("wrk")
CONNECTIONS = 32


wait_for = peers.wait_for
tail = peers.tail
http_get = peers.http_get


# ------------------------------------------------------------------------------ wrk

def backend_conns(sock):
    """Established connections at a Unix listening socket (its accepted ends carry its path)."""
    try:
        out = subprocess.run(["ss", "-xH", "state", "established"], capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return sum(1 for line in out.splitlines() if (" " + sock + " ") in line)


def run_wrk(url, seconds, sock=None):
    """One wrk run; with sock, samples the backend's open connections in the second half."""
    cmd = [WRK, "-t2", "-c%d" % CONNECTIONS, "-d%ds" % seconds, "--latency", "--timeout", "5s",
           url]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples = []
    if sock and shutil.which("ss"):
        t0 = time.monotonic()
        while p.poll() is None and time.monotonic() < t0 + seconds + 30:
            if time.monotonic() > t0 + seconds / 2 and time.monotonic() < t0 + seconds - 0.3:
                n = backend_conns(sock)
                if n is not None:
                    samples.append(n)
            time.sleep(0.25)
    try:
        out = p.communicate(timeout=seconds + 30)[0]
    except subprocess.TimeoutExpired:
        p.kill()
        out = (p.communicate(timeout=5)[0] or "") + "\nwrk timed out"
    r = peers.wrk_summary(out)
    r["conns"] = (min(samples), max(samples)) if samples else None
    return r


# ------------------------------------------------------------------------------ processes

class Backend:
    """A FastCGI program on a Unix socket in its own directory."""

    def __init__(self, tmp, name, argv):
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.sock = os.path.join(self.dir, "app.sock")
        self.log = os.path.join(self.dir, "app.log")
        self.argv = argv
        self.proc = None

    def start(self):
        with open(self.log, "ab") as lf:
            self.proc = subprocess.Popen([self.argv[0], "unix:" + self.sock] + self.argv[1:],
                                         stdout=lf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        up = wait_for(lambda: self.proc.poll() is not None or peers.unix_open(self.sock))
        if not up or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("%s did not come up on %s\n%s" % (self.argv[0], self.sock,
                                                                  tail(self.log)))
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        peers.stop_process(self.proc, 10)


class Gateway(peers.Peer):
    """fcgikit gateway as a peer: same start/stop/log handling as the real web servers."""
    name = "gateway"
    binary = FCGIKIT

    def __init__(self, workdir, backend, workers=1, extra=(), name=None):
        if name:
            self.name = name
        super().__init__(workdir, backend)
        self.workers, self.extra = workers, list(extra)

    def command(self):
        return [self.binary, "gateway", "--listen", "127.0.0.1:%d" % self.port,
                "--backend", "unix:" + self.backend, "--workers", str(self.workers),
                "--access-log", "/dev/null"] + self.extra

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Nginx1(peers.Nginx):
    """peers.Nginx (worker_processes 1, keepalive 32, fastcgi_keep_conn on) in its own dir."""

    def __init__(self, workdir, backend, name="nginx"):
        self.name = name
        super().__init__(workdir, backend)


class Lighttpd(peers.Lighttpd):
    def __init__(self, workdir, backend, name="lighttpd"):
        self.name = name
        super().__init__(workdir, backend)


class HAProxyKeep(peers.HAProxy):
    def __init__(self, workdir, backend, name="haproxy"):
        self.name = name
        super().__init__(workdir, backend)


class HAProxyMpxs(peers.HAProxyMpxs):
    def __init__(self, workdir, backend, name="haproxy-mpxs"):
        self.name = name
        super().__init__(workdir, backend)


# key -> (label, binary, maker(workdir, backend))
FRONTS = {
    "gateway": ("fcgikit gateway --workers 1", FCGIKIT,
                lambda w, b: Gateway(w, b, 1, name="gateway")),
    "gateway-w2": ("fcgikit gateway --workers 2", FCGIKIT,
                   lambda w, b: Gateway(w, b, 2, name="gateway-w2")),
    "nginx": ("nginx (1 worker, keepalive 32, keep_conn)", peers.Nginx.binary,
              lambda w, b: Nginx1(w, b)),
    "lighttpd": ("lighttpd (mod_fastcgi)", peers.Lighttpd.binary, lambda w, b: Lighttpd(w, b)),
    "haproxy": ("HAProxy (fcgi-app, keep-conn)", peers.HAProxy.binary,
                lambda w, b: HAProxyKeep(w, b)),
}

MPX_FRONTS = {
    "gateway-c1": ("fcgikit gateway --backend-conns 1", FCGIKIT,
                   lambda w, b: Gateway(w, b, 1, ["--backend-conns", "1"], name="gateway-c1")),
    "gateway-c2": ("fcgikit gateway --backend-conns 2", FCGIKIT,
                   lambda w, b: Gateway(w, b, 1, ["--backend-conns", "2"], name="gateway-c2")),
    "gateway": ("fcgikit gateway (default: 8 conns)", FCGIKIT,
                lambda w, b: Gateway(w, b, 1, name="gateway")),
    "haproxy-mpxs": ("HAProxy (mpxs-conns, max-reqs 32)", peers.HAProxyMpxs.binary,
                     lambda w, b: HAProxyMpxs(w, b)),
    "nginx": ("nginx (no multiplexing; reference)", peers.Nginx.binary,
              lambda w, b: Nginx1(w, b)),
}


def installed(table, keys):
    out = []
    for k in keys:
        if k not in table:
            continue
        label, binary, _ = table[k]
        if os.access(binary, os.X_OK):
            out.append(k)
        else:
            print("  skipping %s: %s is not installed" % (label, binary), flush=True)
    return out


def build_big(tmp):
    exe = os.path.join(tmp, "big-app")
    cc = shutil.which("cc")
    if not cc:
        return None, "no cc"
    p = subprocess.run([cc, "-O2", "-I" + os.path.join(ROOT, "include"), "-o", exe, BIG_C,
                        LIBFCGIKIT, "-pthread"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120)
    return (exe if p.returncode == 0 else None), p.stdout


# ------------------------------------------------------------------------------ one part

def measure(tmp, tag, backends, table, keys, rounds, seconds, check, count_conns=False):
    """Starts every front in keys before its backend (backends: one Backend for all, or a
    dict key -> Backend), checks one request through each, warms each up, then runs wrk on
    each, `rounds` times, alternating the order. Returns {key: [result per round]} and the
    fronts' notes (deaths, known bugs)."""
    fronts, res, notes = {}, {k: [] for k in keys}, []
    if not isinstance(backends, dict):
        backends = {k: backends for k in keys}
    try:
        for k in keys:
            backend = backends[k]
            f = fronts[k] = table[k][2](os.path.join(tmp, tag), "unix:" + backend.sock)
            f.start()
            st, body = http_get(f.url + "/")
            if not check(st, body):
                raise RuntimeError("%s does not answer: %s %r\n%s\n%s" %
                                   (table[k][0], st, body[:200], f.log_tail(), tail(backend.log)))
        for k in keys:
            run_wrk(fronts[k].url + "/", 1)  # warm up: connections, caches
        for rnd in range(rounds):
            order = list(keys) if rnd % 2 == 0 else list(reversed(keys))
            for k in order:
                f, backend = fronts[k], backends[k]
                if f.proc.poll() is not None:
                    res[k].append(None)
                    continue
                r = run_wrk(f.url + "/", seconds, backend.sock if count_conns else None)
                res[k].append(r)
                print("  %-42s round %d: %8.0f req/s  p50 %7.2f ms  p99 %7.2f ms  errors %d%s%s"
                      % (table[k][0], rnd + 1, r["rps"], r["p50"], r["p99"], r["errors"],
                         " (%s)" % r["sockdetail"] if r["sockerr"] else "",
                         "  backend conns %d-%d" % r["conns"] if r["conns"] else ""), flush=True)
                if not r["ok"]:
                    print("  wrk: %s" % r["raw"].strip()[-300:])
                if f.proc.poll() is not None:
                    note = "%s exited (status %s) during its run:\n%s" % (
                        table[k][0], f.proc.returncode, f.log_tail(15))
                    print("  warning: " + note, flush=True)
                    notes.append(note)
                if not backend.alive():
                    raise RuntimeError("the backend exited during the %s run\n%s" %
                                       (table[k][0], tail(backend.log)))
        for k, f in fronts.items():
            bug = f.known_bug()
            if bug:
                notes.append("%s: %s" % (table[k][0], bug))
            if any(r and r["errors"] for r in res[k]):
                notes.append("%s had errors; its log:\n%s" % (table[k][0], f.log_tail(10)))
    finally:
        for f in fronts.values():
            f.stop()
    return res, notes


def summary(runs):
    runs = [r for r in runs if r]
    if not runs:
        return None
    n = len(runs)
    return {"rps": sum(r["rps"] for r in runs) / n,
            "p50": sum(r["p50"] for r in runs) / n,
            "p99": max(r["p99"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "conns": (min(r["conns"][0] for r in runs if r["conns"]),
                      max(r["conns"][1] for r in runs if r["conns"]))
            if any(r["conns"] for r in runs) else None}


def ratios(res, k, base):
    if base not in res:
        return "n/a", ""
    per = [("%.2f" % (a["rps"] / b["rps"])) if a and b and b["rps"] else "n/a"
           for a, b in zip(res[k], res[base])]
    sa, sb = summary(res[k]), summary(res[base])
    mean = "%.2f" % (sa["rps"] / sb["rps"]) if sa and sb and sb["rps"] else "n/a"
    return mean, ", ".join(per)


def table_small(res, table, keys):
    lines = ["| front | requests/s | p50 ms | p99 ms (worst run) | errors | ratio to nginx |"
             " ratio per round |",
             "|---|---|---|---|---|---|---|"]
    for k in keys:
        s = summary(res[k])
        if not s:
            lines.append("| %s | died | | | | | |" % table[k][0])
            continue
        mean, per = ratios(res, k, "nginx")
        lines.append("| %s | %.0f | %.2f | %.2f | %d | %s | %s |" %
                     (table[k][0], s["rps"], s["p50"], s["p99"], s["errors"], mean, per))
    return lines


def table_big(res, table, keys):
    lines = ["| front | requests/s | body MiB/s | p50 ms | p99 ms (worst run) | errors |"
             " ratio to nginx | ratio per round |",
             "|---|---|---|---|---|---|---|---|"]
    for k in keys:
        s = summary(res[k])
        if not s:
            lines.append("| %s | died | | | | | | |" % table[k][0])
            continue
        mean, per = ratios(res, k, "nginx")
        lines.append("| %s | %.0f | %.0f | %.2f | %.2f | %d | %s | %s |" %
                     (table[k][0], s["rps"], s["rps"] * BIG_BYTES / (1 << 20), s["p50"], s["p99"],
                      s["errors"], mean, per))
    return lines


def table_mpx(res, table, keys):
    lines = ["| front | backend connections (min-max) | requests/s | p50 ms | p99 ms (worst run) |"
             " errors | ratio to nginx | ratio per round |",
             "|---|---|---|---|---|---|---|---|"]
    for k in keys:
        s = summary(res[k])
        if not s:
            lines.append("| %s | | died | | | | | |" % table[k][0])
            continue
        mean, per = ratios(res, k, "nginx")
        conns = "%d-%d" % s["conns"] if s["conns"] else "?"
        lines.append("| %s | %s | %.0f | %.2f | %.2f | %d | %s | %s |" %
                     (table[k][0], conns, s["rps"], s["p50"], s["p99"], s["errors"], mean, per))
    return lines


# ------------------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", 5)))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32, help="wrk -c")
    ap.add_argument("--parts", default="1,2,3")
    ap.add_argument("--fronts", default=",".join(FRONTS), help="parts 1 and 2")
    ap.add_argument("--out")
    a = ap.parse_args()
    global CONNECTIONS
    CONNECTIONS = a.connections
    for what, path in (("wrk", WRK), (FCGIKIT, FCGIKIT), (HELLO, HELLO)):
        if not path or not os.access(path, os.X_OK):
            print("bench/gateway: skipped: %s missing (%s)" %
                  (what, "make deps" if what == "wrk" else "make"))
            return 1
    parts = set(a.parts.split(","))
    keys = [k for k in a.fronts.split(",") if k]
    tmp = tempfile.mkdtemp(prefix="fcgikit-bench-gateway-")
    os.chmod(tmp, 0o755)  # workers of some fronts run as another user
    out, notes, status = [], [], 0

    def part(title, run):
        nonlocal status
        print(title, flush=True)
        try:
            res = run()
        except Exception as e:  # noqa: BLE001 — report, go on with the next part
            res, status = "failed: %s" % e, 1
        out.extend([title, ""] + (res if isinstance(res, list) else [res]) + [""])

    try:
        if "1" in parts:
            def small():
                ks = installed(FRONTS, keys)
                b = Backend(tmp, "hello", [HELLO, "--threads", "2"]).start()
                try:
                    res, n = measure(tmp, "small", b, FRONTS, ks, a.rounds, a.seconds,
                                     lambda st, body: st == 200 and b"Hello" in body)
                finally:
                    b.stop()
                notes.extend(n)
                return table_small(res, FRONTS, ks)
            part("### Small responses (hello --threads 2, 14 bytes), wrk -t2 -c%d, %d x %d s "
                 "each, alternating" % (a.connections, a.rounds, a.seconds), small)
        if "2" in parts:
            def big():
                exe, err = build_big(tmp)
                if not exe:
                    return "skipped: bench/gateway/big.c does not build: %s" % err.strip()[-300:]
                ks = installed(FRONTS, keys)
                b = Backend(tmp, "big", [exe, "--threads", "2", "--bytes", str(BIG_BYTES)]).start()
                try:
                    res, n = measure(tmp, "big", b, FRONTS, ks, a.rounds, a.seconds,
                                     lambda st, body: st == 200 and len(body) == BIG_BYTES)
                finally:
                    b.stop()
                notes.extend(n)
                return table_big(res, FRONTS, ks)
            part("### 1 MiB responses (bench/gateway/big.c --threads 2), wrk -t2 -c%d, %d x %d s "
                 "each, alternating" % (a.connections, a.rounds, a.seconds), big)
        if "3" in parts:
            def mpx():
                ks = installed(MPX_FRONTS, list(MPX_FRONTS))
                # one hello per front, so the connections counted at its socket are that
                # front's alone (the others keep theirs open while idle)
                bs = {}
                try:
                    for k in ks:
                        bs[k] = Backend(tmp, "hello-mpx-" + k, [HELLO, "--threads", "2"]).start()
                    res, n = measure(tmp, "mpx", bs, MPX_FRONTS, ks, a.rounds, a.seconds,
                                     lambda st, body: st == 200 and b"Hello" in body,
                                     count_conns=True)
                finally:
                    for b in bs.values():
                        b.stop()
                notes.extend(n)
                return table_mpx(res, MPX_FRONTS, ks)
            part("### A multiplexing backend (hello on libfcgikit, FCGI_MPXS_CONNS=1) over few "
                 "connections, wrk -t2 -c%d, %d x %d s each, alternating" %
                 (a.connections, a.rounds, a.seconds), mpx)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if notes:
        out += ["Notes:", ""] + ["- " + n.replace("\n", "\n    ") for n in notes] + [""]
    text = "\n".join(out)
    print()
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
