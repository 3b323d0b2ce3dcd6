#!/usr/bin/env python3
"""Interop: the `echo` and `hello` backends behind real web servers (tests/peers/peers.py).

For each peer (nginx, lighttpd, apache, haproxy-keepconn, haproxy-mpxs, h2o, caddy), with
`echo` behind it:
  - GET /echo/path?a=1&b=two: 200, X-Query a=1&b=two, X-Request-Method GET;
  - POST of 1 MiB of random bytes: 200 and the same bytes back;
  - 200 requests in a row on one kept-alive client connection, all 200;
  - 50 concurrent clients, 4 requests each, all 200 with the right bodies;
  - haproxy-mpxs only: requests really multiplexed on one backend connection;
  - the backend kept every connection the peer asked it to keep (KEEP_CONN);
  - the backend is still running;
and with `hello` behind it: 50 GETs of /hello/anything?x=N on one client connection answer
exactly "Hello, World!\\n".

Between the peer and the backend sits a transparent relay (tests/peers/wiretap.py) that
decodes the records and reports what the peer sends (`# wire` lines): connections, request
ids, KEEP_CONN, GET_VALUES, requests in flight at once. --no-tap connects the peer directly.

Output is TAP: `ok N - peer: check`, `not ok N - peer: check: reason` (diagnostics and the
logs follow as `#` lines), `# SKIP` only when a peer is not installed. A failure made only
of the peer's own error pages or dropped connections, while the peer's log shows one of its
known bugs (peers.Peer.known_bug: HAProxy 2.6.12's multiplexing bugs), is reported as
`not ok ... # TODO <the bug>`: TAP counts it as a known failure, not a failure. Exit status
0 iff nothing else failed. Every check is bounded (60 s); the peers wait at most 10 s on the
backend.

  tests/interop/interop.py [--peer NAME]... [--unix] [--backend-dir DIR]
                           [--backend-threads N] [--no-tap] [--wire-trace DIR] [--keep] [-v]

--backend-dir defaults to $FCGIKIT_BUILD/examples (FCGIKIT_BUILD defaults to build). The
backend runs as `DIR/echo ADDRESS --threads N` (ADDRESS 127.0.0.1:PORT, or unix:/path with
--unix). With --backend-dir $FCGIKIT_BUILD/peers, the reference programs written on Debian's
libfcgi (bench/peers/) are built there first when needed.
"""
import argparse
import http.client
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "peers"))
import peers  # noqa: E402
import wiretap  # noqa: E402

CHECK_TIMEOUT = 60     # seconds for one check
CLIENT_TIMEOUT = 20    # socket timeout of the HTTP clients (the peers give up after 10 s)
HELLO = b"Hello, World!\n"


class Tap:
    """TAP output."""

    def __init__(self):
        self.n = 0
        self.failed = 0
        self.todo = 0

    def ok(self, cond, name, why="", diag="", todo=None):
        self.n += 1
        if cond:
            print(f"ok {self.n} - {name}", flush=True)
        elif todo:
            self.todo += 1
            why = " ".join(str(why).split()) or "failed"
            print(f"not ok {self.n} - {name}: {why} # TODO {todo}", flush=True)
            comment(diag)
        else:
            self.failed += 1
            why = " ".join(str(why).split()) or "failed"
            print(f"not ok {self.n} - {name}: {why}", flush=True)
            comment(diag)

    def skip(self, name, why):
        self.n += 1
        print(f"ok {self.n} - {name} # SKIP {why}", flush=True)


def comment(text):
    for line in str(text).splitlines():
        print(f"# {line}", flush=True)


# ------------------------------------------------------------------------------ backend

def build_libfcgi_peers(outdir):
    """Builds bench/peers/libfcgi_{echo,hello}.c into outdir/{echo,hello} when stale."""
    os.makedirs(outdir, exist_ok=True)
    header = os.path.join(ROOT, "bench", "peers", "libfcgi_peer.h")
    for prog in ("echo", "hello"):
        src = os.path.join(ROOT, "bench", "peers", f"libfcgi_{prog}.c")
        exe = os.path.join(outdir, prog)
        newest = max(os.path.getmtime(src), os.path.getmtime(header))
        if os.path.exists(exe) and os.path.getmtime(exe) >= newest:
            continue
        r = subprocess.run(["cc", "-std=c17", "-O2", "-g", "-Wall", "-Wextra", src, "-o", exe,
                            "-lfcgi", "-pthread"], capture_output=True, text=True, timeout=120)
        if r.returncode:
            raise RuntimeError(f"cc {src} failed:\n{r.stderr}")


class Backend:
    def __init__(self, exe, addr, threads, logdir):
        self.exe, self.addr, self.threads = exe, addr, threads
        self.log = os.path.join(logdir, f"backend-{os.path.basename(exe)}.log")
        self.proc = None

    def start(self):
        arg = ("unix:" + self.addr) if self.addr.startswith("/") else self.addr
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([self.exe, arg, "--threads", str(self.threads)],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        up = peers.wait_for(lambda: self.proc.poll() is not None or peers.address_up(self.addr))
        if self.proc.poll() is not None or not up:
            self.stop()
            raise RuntimeError(f"backend {self.exe} did not listen on {arg}\n{self.log_tail()}")
        if self.addr.startswith("/"):
            os.chmod(self.addr, 0o666)  # some peers' workers are not root
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        peers.stop_process(self.proc)

    def log_tail(self, lines=8):
        try:
            with open(self.log, errors="replace") as f:
                tail = [x for x in f.read().splitlines() if x.strip()][-lines:]
        except OSError:
            tail = []
        return f"--- backend {os.path.basename(self.exe)}\n" + ("\n".join(tail) or "(no output)")


# ------------------------------------------------------------------------------- checks

def connect(front):
    return http.client.HTTPConnection("127.0.0.1", front.port, timeout=CLIENT_TIMEOUT)


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()


def check_get(ctx):
    c = connect(ctx.front)
    try:
        st, h, body = request(c, "GET", "/echo/path?a=1&b=two")
    finally:
        c.close()
    problems = []
    if st != 200:
        ctx.failure(st, body)
        problems.append(f"status {st}")
    if h.get("x-query") != "a=1&b=two":
        problems.append(f"X-Query {h.get('x-query')!r}")
    if h.get("x-request-method") != "GET":
        problems.append(f"X-Request-Method {h.get('x-request-method')!r}")
    if not h.get("content-type", "").startswith("application/octet-stream"):
        problems.append(f"Content-Type {h.get('content-type')!r}")
    if body:
        problems.append(f"body {body[:40]!r}")
    if problems and st == 200:
        ctx.failure(st, body)
    return not problems, ", ".join(problems)


def check_post(ctx, size=1 << 20):
    data = random.Random(size).randbytes(size)
    c = connect(ctx.front)
    try:
        st, h, body = request(c, "POST", "/upload?big=1", data,
                              {"Content-Type": "application/octet-stream"})
    finally:
        c.close()
    if st != 200 or h.get("x-request-method") != "POST" or body != data:
        ctx.failure(st, body)
    if st != 200:
        return False, f"status {st}, {len(body)} bytes: {body[:80]!r}"
    if h.get("x-request-method") != "POST":
        return False, f"X-Request-Method {h.get('x-request-method')!r}"
    if body != data:
        same = next((i for i, (a, b) in enumerate(zip(body, data)) if a != b), min(len(body),
                                                                                   len(data)))
        return False, (f"echoed {len(body)} bytes for the {len(data)} sent, "
                       f"first difference at byte {same}")
    return True, ""


def check_keepalive(ctx, count=200):
    c = connect(ctx.front)
    port = None
    try:
        for i in range(count):
            if i % 2:
                payload = f"request {i}".encode()
                st, h, body = request(c, "POST", f"/k?i={i}", payload,
                                      {"Content-Type": "text/plain"})
            else:
                payload = b""
                st, h, body = request(c, "GET", f"/k?i={i}")
            if st != 200 or body != payload or h.get("x-query") != f"i={i}":
                ctx.failure(st, body)
                return False, (f"request {i}: status {st}, X-Query {h.get('x-query')!r}, "
                               f"body {body[:40]!r}")
            local = c.sock.getsockname()[1] if c.sock else None
            if port is None:
                port = local
            if local != port or h.get("connection", "").lower() == "close":
                ctx.failure(st, body)
                return False, f"request {i}: the peer closed the client connection"
    finally:
        c.close()
    return True, ""


def check_concurrent(ctx, clients=50, each=4):
    errors = []
    lock = threading.Lock()
    start = threading.Barrier(clients, timeout=10)

    def client(n):
        c = connect(ctx.front)
        try:
            try:
                start.wait()
            except threading.BrokenBarrierError:
                pass
            for i in range(each):
                payload = random.Random(n * 1000 + i).randbytes(100 + (n * 997 + i * 331) % 20000)
                st, h, body = request(c, "POST", f"/c?n={n}&i={i}", payload,
                                      {"Content-Type": "application/octet-stream"})
                if st != 200 or body != payload or h.get("x-query") != f"n={n}&i={i}":
                    ctx.failure(st, body)
                    with lock:
                        errors.append(f"client {n} request {i}: status {st}, "
                                      f"{len(body)}/{len(payload)} bytes"
                                      f"{'' if body == payload else ' (differing)'}, "
                                      f"X-Query {h.get('x-query')!r}")
                    return
        except Exception as e:  # noqa: BLE001 - any failure is the check's result
            ctx.failure(exc=e)
            with lock:
                errors.append(f"client {n}: {type(e).__name__}: {e}")
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + CHECK_TIMEOUT - 5
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    stuck = sum(t.is_alive() for t in threads)
    if stuck:
        ctx.failure(exc=TimeoutError())
        errors.append(f"{stuck} clients still waiting at the time limit")
    if errors:
        return False, f"{len(errors)} of {clients} clients failed: " + "; ".join(errors[:3])
    return True, ""


def check_multiplexed(ctx, clients=16, delay_ms=300):
    """Concurrent slow requests; the wire tap must see several in flight on one connection.
    Each client first sends a quick request: with `http-reuse safe` HAProxy never puts the
    first request of a client connection on a shared backend connection, only later ones."""
    results = []
    lock = threading.Lock()
    start = threading.Barrier(clients, timeout=15)

    def client(n):
        c = connect(ctx.front)
        try:
            request(c, "GET", f"/mpx?n={n}&first=1")
            try:
                start.wait()
            except threading.BrokenBarrierError:
                pass
            st, h, body = request(c, "GET", f"/mpx?n={n}&echo_delay_ms={delay_ms}")
            if st != 200:
                ctx.failure(st, body)
            with lock:
                results.append(st)
        except Exception as e:  # noqa: BLE001
            ctx.failure(exc=e)
            with lock:
                results.append(f"{type(e).__name__}")
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + CHECK_TIMEOUT - 5
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    st = ctx.tap.stats()
    bad = [r for r in results if r != 200]
    why = []
    if bad or len(results) < clients:
        why.append(f"{len(bad) + clients - len(results)} of {clients} slow requests failed "
                   f"({', '.join(map(str, bad[:3]))})")
    if st["max_in_flight"] < 2:
        if not why:  # every request answered, yet none shared a connection
            ctx.failure()
        gv = st["get_values_results"][:1]
        why.append(f"never more than {st['max_in_flight']} request in flight on one backend "
                   f"connection (GET_VALUES_RESULT {gv[0] if gv else 'none'})")
    return not why, "; ".join(why)


def check_kept(ctx):
    """The backend did not close an idle connection on which the peer set KEEP_CONN."""
    st = ctx.tap.stats()
    n = st["app_closed_kept_conns"]
    if n:
        ctx.failure()
    return n == 0, f"the backend closed {n} idle connection(s) whose last request had KEEP_CONN"


def check_hello(ctx, count=50):
    """GETs in a row. Repeated because a backend that answers before it has read the whole
    request and then closes the connection fails only now and then (a peer still writing
    the request's end gets EPIPE on a Unix socket)."""
    c = connect(ctx.front)
    bad, first = 0, ""
    try:
        for i in range(count):
            st, h, body = request(c, "GET", f"/hello/anything?x={i}")
            ok = (st == 200 and body == HELLO and
                  h.get("content-type", "").startswith("text/plain"))
            if not ok:
                ctx.failure(st, body)
                bad += 1
                first = first or (f"request {i}: status {st}, Content-Type "
                                  f"{h.get('content-type')!r}, body {body[:40]!r}")
    finally:
        c.close()
    return not bad, f"{bad} of {count} requests failed, the first: {first}"


def run_bounded(fn, ctx, seconds=CHECK_TIMEOUT):
    """Runs a check in a thread; a check still running after `seconds` fails."""
    out = {}

    def body():
        try:
            out["r"] = fn(ctx)
        except Exception as e:  # noqa: BLE001
            ctx.failure(exc=e)
            out["r"] = (False, f"{type(e).__name__}: {e}")
            out["tb"] = traceback.format_exc()
    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        ctx.failure(exc=TimeoutError())
        return False, f"no result within {seconds} s", ""
    ok, why = out["r"]
    return ok, why, out.get("tb", "")


# --------------------------------------------------------------------------------- main

class Ctx:
    """What a check works on, and what kind of failures it met."""

    def __init__(self):
        self.front = self.tap = self.backend = None
        self.lock = threading.Lock()
        self.kinds = set()

    def failure(self, status=None, body=b"", exc=None):
        """Classifies one failed request: "conn" (no HTTP answer), "proxy" (an error page
        the peer made itself: a 5xx in HTML) or "app" (a wrong answer that came through)."""
        if exc is not None:
            kind = "conn" if isinstance(exc, (OSError, http.client.HTTPException)) else "app"
        elif status and status >= 500 and body[:6].lower() in (b"<html>", b"<!doct"):
            kind = "proxy"
        else:
            kind = "app"
        with self.lock:
            self.kinds.add(kind)


def run_phase(tap, cls, args, work, prog, checks):
    """Starts prog behind the peer (through the wire tap for echo) and runs the checks."""
    name = cls.name
    d = os.path.join(work, f"{name}-{prog}")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    if args.unix:
        addr = os.path.join(d, "app.sock")
    else:
        addr = f"127.0.0.1:{peers.free_port()}"
    use_tap = args.tap and prog == "echo"
    if not use_tap:  # these two read what the wire tap saw
        checks = [(label, fn) for label, fn in checks
                  if fn not in (check_multiplexed, check_kept)]
    ctx = Ctx()
    peer_bug = None
    try:
        ctx.backend = Backend(os.path.join(args.backend_dir, prog), addr, args.backend_threads,
                              d).start()
        target = addr
        if use_tap:
            trace = (os.path.join(args.wire_trace, f"{name}.trace") if args.wire_trace
                     else None)
            ctx.tap = wiretap.WireTap(os.path.join(d, "tap.sock") if args.unix
                                      else "127.0.0.1:0", addr, trace=trace).start()
            target = ctx.tap.address
        ctx.front = cls(d, target).start()
    except Exception as e:  # noqa: BLE001
        for label, _ in checks:
            tap.ok(False, f"{name}: {label}", "start failed", str(e))
        stop_all(ctx)
        return
    try:
        for label, fn in checks:
            t0 = time.monotonic()
            ctx.kinds = set()
            ok, why, tb = run_bounded(fn, ctx)
            diag, todo = "", None
            if not ok:
                diag = "\n".join(x for x in (tb, ctx.front.log_tail(), ctx.backend.log_tail(),
                                             ctx.tap.summary() if ctx.tap else "") if x)
                # Failures that are only the peer's error pages or dropped connections,
                # while the peer's own log shows one of its known bugs, are the peer's.
                peer_bug = ctx.front.known_bug() or peer_bug
                if peer_bug and "app" not in ctx.kinds:
                    todo = f"{name} bug: {peer_bug}"
            tap.ok(ok, f"{name}: {label}", why, diag, todo)
            if args.verbose:
                comment(f"{name}: {label}: {time.monotonic() - t0:.2f} s")
        if ctx.tap:
            st = ctx.tap.stats()
            comment(f"wire {name}: {ctx.tap.summary(st)}")
            for note in st["notes"]:
                comment(f"wire {name}: {note}")
            if args.verbose and st["first_params"]:
                comment(f"wire {name}: first request's params: " + ", ".join(
                    f"{k.decode(errors='replace')}={v.decode(errors='replace')!r}"
                    for k, v in st["first_params"]))
        tap.ok(ctx.backend.alive(), f"{name}: {prog} still running after the checks",
               f"{prog} exited with status {ctx.backend.proc.returncode}",
               ctx.backend.log_tail())
    finally:
        stop_all(ctx)


def stop_all(ctx):
    """Stops all three even when one stop is interrupted (SIGTERM arrives as SystemExit)."""
    try:
        if ctx.front:
            ctx.front.stop()
    finally:
        try:
            if ctx.tap:
                ctx.tap.stop()
        finally:
            if ctx.backend:
                ctx.backend.stop()


def on_sigterm(*_):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: let the unwinding finish
    sys.exit(143)


ECHO_CHECKS = [("GET with a query", check_get),
               ("POST 1 MiB echoed byte-identical", check_post),
               ("200 keep-alive requests on one connection", check_keepalive),
               ("50 concurrent clients", check_concurrent),
               ("requests multiplexed on one backend connection", check_multiplexed),
               ("backend kept the connections asked to be kept", check_kept)]
HELLO_CHECKS = [("hello answers Hello, World! (50 GETs)", check_hello)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer", action="append", choices=list(peers.BY_NAME), metavar="NAME",
                    help="one of: " + ", ".join(peers.BY_NAME) + " (repeatable; default all)")
    ap.add_argument("--unix", action="store_true", help="backend on a Unix socket, not TCP")
    build = os.environ.get("FCGIKIT_BUILD", "build")
    ap.add_argument("--backend-dir", default=os.path.join(build, "examples"),
                    help="where the echo and hello programs are")
    ap.add_argument("--backend-threads", type=int, default=4)
    ap.add_argument("--no-tap", dest="tap", action="store_false",
                    help="connect the peers straight to the backend")
    ap.add_argument("--wire-trace", metavar="DIR",
                    help="write every record header the wire tap sees to DIR/PEER.trace")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (configs, logs) and print its path")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print each check's time and the params of the first request")
    args = ap.parse_args()
    # Stopped from outside (a timeout): unwind, so every peer and backend gets stopped.
    signal.signal(signal.SIGTERM, on_sigterm)
    args.backend_dir = os.path.abspath(args.backend_dir)
    if args.wire_trace:
        os.makedirs(args.wire_trace, exist_ok=True)
    t_start = time.monotonic()

    if args.backend_dir == os.path.abspath(os.path.join(build, "peers")):
        try:
            build_libfcgi_peers(args.backend_dir)
        except Exception as e:  # noqa: BLE001
            print(f"Bail out! cannot build the libfcgi programs: {e}")
            return 1
    for prog in ("echo", "hello"):
        if not os.access(os.path.join(args.backend_dir, prog), os.X_OK):
            print(f"Bail out! {os.path.join(args.backend_dir, prog)} is not built")
            return 1

    chosen = [peers.BY_NAME[n] for n in args.peer] if args.peer else peers.ALL
    comment(f"backend {args.backend_dir}/{{echo,hello}} --threads {args.backend_threads}, "
            f"{'Unix socket' if args.unix else 'TCP'}"
            f"{', through the wire tap' if args.tap else ''}")
    tap = Tap()
    work = tempfile.mkdtemp(prefix="fcgikit-interop-")
    os.chmod(work, 0o755)
    try:
        for cls in chosen:
            t0 = time.monotonic()
            echo_checks = [(label, fn) for label, fn in ECHO_CHECKS
                           if fn is not check_multiplexed or cls is peers.HAProxyMpxs]
            if not cls.available():
                for label, _ in echo_checks + HELLO_CHECKS:
                    tap.skip(f"{cls.name}: {label}", f"{cls.binary} is not installed")
                continue
            run_phase(tap, cls, args, work, "echo", echo_checks)
            run_phase(tap, cls, args, work, "hello", HELLO_CHECKS)
            comment(f"{cls.name}: {time.monotonic() - t0:.1f} s")
    finally:
        if args.keep:
            comment(f"work directory kept: {work}")
        else:
            subprocess.run(["rm", "-rf", "--", work], check=False)
    print(f"1..{tap.n}")
    comment(f"{tap.n - tap.failed - tap.todo} passed, {tap.failed} failed, {tap.todo} failed "
            f"by known peer bugs (TODO), {time.monotonic() - t_start:.1f} s in all")
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
