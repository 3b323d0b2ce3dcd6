#!/usr/bin/env python3
"""`fcgikit gateway` operations: --config FILE, weights, consistent hashing, SIGHUP reload.

1. config: `--config FILE --test` prints `FILE: ok` (exit 0) or `FILE:LINE: reason` (exit 2);
   a gateway runs from a file, command-line options override it.
2. weights: `--backend ADDR,weight=3` and `--backend ADDR` (two build/examples/echo on Unix
   sockets) share 200 keep-alive requests about 3:1; `--balance hash:uri` sends each URI to
   one backend every time and spreads different URIs over both. Which backend answered comes
   from the access log's last field.
3. reload: a gateway from a config file over two echo backends, under `wrk -t2 -c32 -d6s`
   and a keep-alive client (http.client, pauses under the 1 s idle bound) at once; SIGHUP at
   1.5 s with the same file, and at 3.5 s with a third backend added. wrk must report no
   socket error and no non-2xx, the keep-alive client no failure, and the new backend must
   receive requests. Then a broken file on SIGHUP: "reload failed: FILE:LINE: reason" in the
   log, the same workers go on serving. SIGTERM: exit 0, no worker left.

Gateways listen on free 127.0.0.1 ports; every wait is bounded; only processes started here
are signalled, by pid. Prints TAP. wrk missing: the load checks are skipped.

  tests/gateway/reload.py [-v] [config|weights|reload]
  FCGIKIT_BUILD=build-san tests/gateway/reload.py
"""
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as gw  # noqa: E402  (the helpers of run.py: tap, Backend, start, stop, ...)

tap, Backend, read_file, wait_for, peers = gw.tap, gw.Backend, gw.read_file, gw.wait_for, gw.peers
WRK = shutil.which("wrk")
SELECT = gw.SELECT


class ConfGateway:
    """A gateway started with --config (plus extra options); its log and access log."""

    def __init__(self, tmp, name, conf_text, extra=()):
        self.port = peers.free_port()
        self.conf = os.path.join(tmp, name + ".conf")
        self.log = os.path.join(tmp, name + ".err")
        self.access = os.path.join(tmp, name + ".access")
        self.write(conf_text)
        # one worker per generation, so that generations can be told apart by pid
        args = [gw.FCGIKIT, "gateway", "--config", self.conf, "--workers", "1"] + list(extra)
        self.proc = gw.start(args, self.log)
        if not wait_for(lambda: self.proc.poll() is not None or peers.port_open(self.port), 10):
            raise RuntimeError("gateway did not come up: " + read_file(self.log))
        if self.proc.poll() is not None:
            raise RuntimeError("gateway exited: " + read_file(self.log))
        self.url = "http://127.0.0.1:%d" % self.port
        gw.gateways.append(self)

    def write(self, text):
        text = text.replace("@PORT@", str(self.port)).replace("@ACCESS@", self.access)
        tmpname = self.conf + ".new"
        with open(tmpname, "w") as f:
            f.write(text)
        os.rename(tmpname, self.conf)

    def kids(self):
        rc, out, _ = gw.run(["pgrep", "-P", str(self.proc.pid)])
        return sorted(int(x) for x in out.split())

    def stop(self):
        return gw.stop(self.proc)


def backends_served(access, since=0):
    """{backend address: requests} from the access log lines after `since` bytes."""
    counts = {}
    with open(access, errors="replace") as f:
        f.seek(since)
        for line in f:
            b = line.split()[-1] if line.strip() else "-"
            counts[b] = counts.get(b, 0) + 1
    return counts


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def keepalive_gets(port, paths, conn=None):
    """GETs over one kept-alive connection; (statuses, connection)."""
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    for p in paths:
        conn.request("GET", p)
        r = conn.getresponse()
        r.read()
        out.append(r.status)
        if r.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    return out, conn


# ------------------------------------------------------------------ 1. config file

def t_config(tmp):
    e = Backend(tmp, "cfg-echo")
    good = os.path.join(tmp, "good.conf")
    with open(good, "w") as f:
        f.write("[gateway]\nlisten = 127.0.0.1:1\nbackend = %s weight=2\n" % e.addr)
    rc, out, err = gw.run([gw.FCGIKIT, "gateway", "--config", good, "--test"])
    tap(rc == 0 and out.decode() == "%s: ok\n" % good, "--config FILE --test: 'FILE: ok', exit 0",
        "rc=%s out=%r err=%s" % (rc, out, err))
    bad = os.path.join(tmp, "bad.conf")
    with open(bad, "w") as f:
        f.write("[gateway]\nlisten = 127.0.0.1:1\n\nmax_body = 10Q\nbackend = %s\n" % e.addr)
    rc, out, err = gw.run([gw.FCGIKIT, "gateway", "--config", bad, "--test"])
    tap(rc == 2 and "%s:4: max_body: 10Q: not a size" % bad in err and not out,
        "--test of a bad file: 'FILE:LINE: reason', exit 2", "rc=%s out=%r err=%s" % (rc, out, err))
    rc, out, err = gw.run([gw.FCGIKIT, "gateway", "--config", bad])
    tap(rc == 2 and "%s:4:" % bad in err, "a bad file does not start: exit 2, FILE:LINE",
        "rc=%s err=%s" % (rc, err))
    # A gateway from the file; --access-log on the command line overrides the file's.
    cli_access = os.path.join(tmp, "cli.access")
    file_access = os.path.join(tmp, "file.access")
    g = ConfGateway(tmp, "gw-cfg", "[gateway]\nlisten = 127.0.0.1:@PORT@\nbackend = %s\n"
                    "access_log = %s\n" % (e.addr, file_access), ["--access-log", cli_access])
    try:
        rc, out, err = gw.curl(["-i", g.url + "/c?x=1"])
        logged = wait_for(lambda: "/c?x=1" in read_file(cli_access), 5)
        tap(out.startswith(b"HTTP/1.1 200") and b"X-Query: x=1" in out and logged
            and not os.path.exists(file_access),
            "--config FILE serves; --access-log given too overrides the file's",
            out[:200] + err.encode() + read_file(g.log).encode()[-500:])
    finally:
        g.stop()
        e.stop()


# ------------------------------------------------------------------ 2. weights and hashing

def t_weights(tmp):
    a = Backend(tmp, "w-a")
    b = Backend(tmp, "w-b")
    g = gw.Gateway(tmp, "gw-weights", [a.addr + ",weight=3", b.addr])
    try:
        n = 200
        since = log_size(g.access)
        statuses, conn = keepalive_gets(g.port, ["/w?i=%d" % i for i in range(n)])
        conn.close()
        wait_for(lambda: sum(backends_served(g.access, since).values()) >= n, 5)
        c = backends_served(g.access, since)
        ca, cb = c.get(a.addr, 0), c.get(b.addr, 0)
        ratio = ca / cb if cb else 0
        tap(statuses == [200] * n and ca + cb == n and 2.5 <= ratio <= 3.5,
            "--backend ADDR,weight=3 vs weight 1: traffic about 3:1 (%d:%d)" % (ca, cb), repr(c))
    finally:
        g.stop()
    g = gw.Gateway(tmp, "gw-hash", [a.addr, b.addr], ["--balance", "hash:uri"])
    try:
        uris = ["/h/%d?k=%d" % (i, i * 7) for i in range(24)]
        since = log_size(g.access)
        order = uris * 4
        statuses, conn = keepalive_gets(g.port, order)
        conn.close()
        wait_for(lambda: sum(backends_served(g.access, since).values()) >= len(order), 5)
        seen = {}
        with open(g.access, errors="replace") as f:
            f.seek(since)
            for line in f:
                m = re.search(r'"GET (\S+) HTTP', line)
                if m:
                    seen.setdefault(m.group(1), set()).add(line.split()[-1])
        same = all(len(v) == 1 for v in seen.values()) and len(seen) == len(uris)
        used = set().union(*seen.values()) if seen else set()
        tap(statuses == [200] * len(order) and same,
            "--balance hash:uri: every URI goes to the same backend every time", repr(seen))
        tap(used == {a.addr, b.addr}, "--balance hash:uri: different URIs spread over both backends",
            repr(used))
    finally:
        g.stop()
        a.stop()
        b.stop()


# ------------------------------------------------------------------ 3. reload under load

class KeepAliveClient(threading.Thread):
    """Sequential GETs over a kept-alive connection with pauses below the 1 s idle bound;
    a response with Connection: close is followed by a new connection (that is allowed).
    Anything else (an error, a reset, a non-200) is a failure."""

    def __init__(self, port, seconds):
        super().__init__(daemon=True)
        self.port, self.seconds = port, seconds
        self.ok, self.failures, self.reconnects = 0, [], 0

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        end = time.monotonic() + self.seconds
        i = 0
        while time.monotonic() < end:
            i += 1
            try:
                conn.request("GET", "/ka?i=%d" % i)
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    self.failures.append((i, r.status))
                else:
                    self.ok += 1
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    self.reconnects += 1
            except Exception as ex:  # noqa: BLE001 — any failure counts
                self.failures.append((i, repr(ex)))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            time.sleep((i % 5) * 0.1)  # 0..0.4 s idle between requests
        conn.close()


CONF = """; reload test
[gateway]
listen = 127.0.0.1:@PORT@
access_log = @ACCESS@
backend_conns = 8
%s
"""


def t_reload(tmp):
    e1, e2, e3 = Backend(tmp, "r-1"), Backend(tmp, "r-2"), Backend(tmp, "r-3")
    two = "backend = %s\nbackend = %s\n" % (e1.addr, e2.addr)
    three = two + "backend = %s weight=2\n" % e3.addr
    g = ConfGateway(tmp, "gw-reload", CONF % two)
    try:
        first_kids = g.kids()
        tap(len(first_kids) == 1, "a supervisor and one worker (%s)" % first_kids)
        wrk = None
        wrk_out = os.path.join(tmp, "wrk.out")
        if WRK:
            wrk = gw.start([WRK, "-t2", "-c32", "-d6s", "--timeout", "10s", g.url + "/load"],
                           wrk_out)
        ka = KeepAliveClient(g.port, 6.5)
        ka.start()
        time.sleep(1.5)
        g.proc.send_signal(signal.SIGHUP)
        time.sleep(2.0)
        g.write(CONF % three)
        since = log_size(g.access)
        g.proc.send_signal(signal.SIGHUP)
        reloaded = wait_for(lambda: read_file(g.log).count("reloaded:") >= 2, 10)
        ka.join(15)
        if wrk:
            try:
                wrk.wait(30)
            except subprocess.TimeoutExpired:
                pass
            out = read_file(wrk_out)
            m = re.search(r"(\d+) requests in", out)
            total = int(m.group(1)) if m else 0
            clean = "Socket errors" not in out and "Non-2xx" not in out
            tap(wrk.returncode == 0 and total > 0 and clean,
                "wrk -c32 through two SIGHUP reloads: %d requests, no socket error, no non-2xx"
                % total, out + read_file(g.log)[-1500:])
        else:
            tap(True, "wrk load through two reloads", skip="wrk not installed")
        tap(reloaded, "two SIGHUPs: two reloads logged", read_file(g.log)[-1500:])
        tap(not ka.failures and ka.ok > 5,
            "keep-alive client through the reloads: %d ok, %d reconnects (Connection: close), "
            "no failure" % (ka.ok, ka.reconnects), repr(ka.failures[:10]))
        # The new backend takes requests (weight 2 of 4: about half).
        statuses, conn = keepalive_gets(g.port, ["/after?i=%d" % i for i in range(20)])
        conn.close()
        wait_for(lambda: backends_served(g.access, since).get(e3.addr, 0) > 0, 5)
        served = backends_served(g.access, since)
        tap(statuses == [200] * 20 and served.get(e3.addr, 0) > 0,
            "after the reload the added backend receives requests", repr(served))
        # The old generations finish and go: one worker again.
        one = wait_for(lambda: len(g.kids()) == 1, 15)
        kids = g.kids()
        tap(one and kids[0] not in first_kids,
            "old workers stop once the new ones serve (%s -> %s)" % (first_kids, kids))

        # A broken file: the old configuration goes on.
        g.write(CONF % (three + "\nmax_conns = lots\n"))
        before = g.kids()
        g.proc.send_signal(signal.SIGHUP)
        want = "reload failed: %s:10: max_conns: lots: not a number" % g.conf
        failed = wait_for(lambda: want in read_file(g.log), 10)
        rc, out, err = gw.curl(["-i", g.url + "/still?x=1"])
        tap(failed and out.startswith(b"HTTP/1.1 200") and g.kids() == before and g.proc.poll() is None,
            "a broken file on SIGHUP: 'reload failed: FILE:LINE: reason', the old config serves",
            "want %r\n%s" % (want, read_file(g.log)[-1000:]))
        g.proc.send_signal(signal.SIGTERM)
        try:
            rc = g.proc.wait(15)
        except subprocess.TimeoutExpired:
            rc = None
        tap(rc == 0 and not g.kids(), "SIGTERM after reloads: exit 0, no worker left", "rc=%s" % rc)
    finally:
        g.stop()
        for e in (e1, e2, e3):
            e.stop()


def main():
    if not os.access(gw.FCGIKIT, os.X_OK) or not os.access(gw.ECHO, os.X_OK):
        print("1..0 # SKIP build first (make): %s" % gw.FCGIKIT)
        return 0
    tmp = tempfile.mkdtemp(prefix="fk-gwr-")
    os.chmod(tmp, 0o755)
    try:
        for name, fn in (("config", t_config), ("weights", t_weights), ("reload", t_reload)):
            if SELECT and not any(s in name for s in SELECT):
                continue
            try:
                fn(tmp)
            except Exception as ex:  # a crashed test is a failure, the suite goes on
                import traceback
                tap(False, "%s: raised %s" % (name, ex), traceback.format_exc())
        for p in gw.procs:
            gw.stop(p, 5)
        reports = [(x.log, read_file(x.log)[-1500:]) for x in gw.gateways
                   if "Sanitizer" in read_file(x.log) or "runtime error" in read_file(x.log)]
        tap(not reports, "no sanitizer report from any gateway (%d started)" % len(gw.gateways),
            repr(reports))
    finally:
        for p in gw.procs:
            gw.stop(p, 5)
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % len(gw.results))
    return 0 if all(gw.results) else 1


if __name__ == "__main__":
    sys.exit(main())
