#!/usr/bin/env python3
"""Interop: fcgikit's examples behind real web servers (tests/peers/peers.py).

For each peer: echo behind it must answer a GET with a query (X-Query, X-Request-Method),
echo a 1 MiB random POST byte for byte, serve 200 requests in a row on one kept-alive client
connection and 50 concurrent clients; hello behind it must say "Hello, World!". Output is
TAP; exit status 0 when nothing failed. Peers that are not installed are skipped.

  tests/interop/interop.py [--peer NAME]... [--unix] [--backend-dir DIR] [--backend-threads N]
"""
import argparse
import http.client
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "peers"))
import peers  # noqa: E402

TIMEOUT = 30


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, why=""):
        self.n += 1
        if cond:
            print(f"ok {self.n} - {name}", flush=True)
        else:
            self.failed += 1
            print(f"not ok {self.n} - {name}: {why}", flush=True)

    def skip(self, name, why):
        self.n += 1
        print(f"ok {self.n} - {name} # SKIP {why}", flush=True)


def start_backend(exe, addr, threads):
    arg = ("unix:" + addr) if addr.startswith("/") else addr
    proc = subprocess.Popen([exe, arg, "--threads", str(threads)], stdin=subprocess.DEVNULL)
    if addr.startswith("/"):
        up = lambda: os.path.exists(addr)  # noqa: E731
    else:
        up = lambda: peers.port_open(int(addr.rsplit(":", 1)[1]))  # noqa: E731
    if not peers.wait_for(up, 10):
        peers.stop_process(proc)
        raise RuntimeError(f"backend {exe} did not listen on {addr}")
    return proc


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()


def check_get(front):
    c = http.client.HTTPConnection("127.0.0.1", front.port, timeout=TIMEOUT)
    try:
        st, h, body = request(c, "GET", "/echo/path?a=1&b=two")
    finally:
        c.close()
    problems = []
    if st != 200:
        problems.append(f"status {st}")
    if h.get("x-query") != "a=1&b=two":
        problems.append(f"X-Query {h.get('x-query')!r}")
    if h.get("x-request-method") != "GET":
        problems.append(f"X-Request-Method {h.get('x-request-method')!r}")
    if body != b"":
        problems.append(f"body {body[:40]!r}")
    return not problems, ", ".join(problems)


def check_post(front, size=1 << 20):
    data = random.Random(size).randbytes(size)
    c = http.client.HTTPConnection("127.0.0.1", front.port, timeout=TIMEOUT)
    try:
        st, h, body = request(c, "POST", "/upload?big=1", data,
                              {"Content-Type": "application/octet-stream"})
    finally:
        c.close()
    if st != 200:
        return False, f"status {st}"
    if body != data:
        return False, f"echoed {len(body)} bytes, differing from the {len(data)} sent"
    if h.get("x-request-method") != "POST":
        return False, f"X-Request-Method {h.get('x-request-method')!r}"
    return True, ""


def check_keepalive(front, count=200):
    c = http.client.HTTPConnection("127.0.0.1", front.port, timeout=TIMEOUT)
    try:
        for i in range(count):
            payload = f"request {i}".encode()
            st, h, body = request(c, "POST", f"/k?i={i}", payload)
            if st != 200 or body != payload or h.get("x-query") != f"i={i}":
                return False, f"request {i}: status {st}, body {body[:40]!r}"
            if h.get("connection", "").lower() == "close":
                return False, f"request {i}: the front closed the client connection"
    finally:
        c.close()
    return True, ""


def check_concurrent(front, clients=50, each=4):
    errors = []
    lock = threading.Lock()

    def client(n):
        try:
            c = http.client.HTTPConnection("127.0.0.1", front.port, timeout=TIMEOUT)
            for i in range(each):
                payload = random.Random(n * 100 + i).randbytes(1000 + n * 37 + i)
                st, h, body = request(c, "POST", f"/c?n={n}&i={i}", payload)
                if st != 200 or body != payload or h.get("x-query") != f"n={n}&i={i}":
                    with lock:
                        errors.append(f"client {n} request {i}: status {st}, {len(body)} bytes")
                    break
            c.close()
        except Exception as e:  # noqa: BLE001 - any failure is the check's result
            with lock:
                errors.append(f"client {n}: {e!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    if any(t.is_alive() for t in threads):
        errors.append("clients still running after the time limit")
    return not errors, "; ".join(errors[:3]) + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else "")


def check_hello(front):
    c = http.client.HTTPConnection("127.0.0.1", front.port, timeout=TIMEOUT)
    try:
        st, h, body = request(c, "GET", "/")
    finally:
        c.close()
    ok = st == 200 and body == b"Hello, World!\n" and h.get("content-type", "").startswith("text/plain")
    return ok, f"status {st}, content-type {h.get('content-type')!r}, body {body[:40]!r}"


def run_peer(tap, cls, args, work):
    name = cls.name
    checks = ["GET with a query", "POST 1 MiB echoed byte-identical",
              "200 keep-alive requests in a row", "50 concurrent clients", "hello"]
    if not cls.available():
        for c in checks:
            tap.skip(f"{name}: {c}", f"{cls.binary} is not installed")
        return
    addr_of = (lambda tag: os.path.join(work, f"{name}-{tag}.sock")) if args.unix else \
        (lambda tag: f"127.0.0.1:{peers.free_port()}")
    for tag, exe, todo in (("echo", "echo", checks[:4]), ("hello", "hello", checks[4:])):
        addr = addr_of(tag)
        backend = front = None
        try:
            backend = start_backend(os.path.join(args.backend_dir, exe), addr, args.backend_threads)
            front = cls(os.path.join(work, tag), addr).start()
        except Exception as e:  # noqa: BLE001
            for c in todo:
                tap.ok(False, f"{name}: {c}", f"start failed: {e}")
            if front:
                front.stop()
            peers.stop_process(backend)
            continue
        try:
            fns = {checks[0]: check_get, checks[1]: check_post, checks[2]: check_keepalive,
                   checks[3]: check_concurrent, checks[4]: check_hello}
            for c in todo:
                t0 = time.time()
                try:
                    ok, why = fns[c](front)
                except Exception as e:  # noqa: BLE001
                    ok, why = False, f"{e!r}\n# " + traceback.format_exc().replace("\n", "\n# ")
                if not ok:
                    why += "\n# " + front.log_tail().replace("\n", "\n# ")
                tap.ok(ok, f"{name}: {c} ({time.time() - t0:.2f} s)", why)
            alive = backend.poll() is None
            tap.ok(alive, f"{name}: {exe} still running after the checks", "backend exited")
        finally:
            front.stop()
            peers.stop_process(backend)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", action="append", help="one of: " + ", ".join(peers.BY_NAME))
    ap.add_argument("--unix", action="store_true", help="backend on a Unix socket, not TCP")
    build = os.environ.get("FCGIKIT_BUILD", "build")
    ap.add_argument("--backend-dir", default=os.path.join(build, "examples"))
    ap.add_argument("--backend-threads", type=int, default=4)
    args = ap.parse_args()
    args.backend_dir = os.path.abspath(args.backend_dir)
    chosen = [peers.BY_NAME[n] for n in args.peer] if args.peer else peers.ALL
    tap = Tap()
    work = tempfile.mkdtemp(prefix="fcgikit-interop-")
    os.chmod(work, 0o755)
    try:
        for cls in chosen:
            run_peer(tap, cls, args, work)
    finally:
        subprocess.run(["rm", "-rf", work])
    print(f"1..{tap.n}")
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
