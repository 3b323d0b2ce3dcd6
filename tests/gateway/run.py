#!/usr/bin/env python3
"""`fcgikit gateway`: the HTTP/1.1 front, tested from the outside with curl and raw sockets.

Backends: build/examples/echo (the echo contract: 200, body = request body, X-Request-Method,
X-Query) and build/examples/hello on Unix sockets in a fresh directory, php-cgi8.2 (through
spawn-fcgi, or `fcgikit pm` when spawn-fcgi is missing) for the CGI parameters an application
really sees. Gateways listen on free 127.0.0.1 ports. Every wait is bounded; only processes
started here are signalled, by pid.

Prints TAP. php-cgi missing: its tests are skipped, not failed.

  tests/gateway/run.py [-v] [NAME...]     (names select tests by substring)
  FCGIKIT_BUILD=build-san tests/gateway/run.py     (against the sanitizer build)
"""
import json
import os
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
PHP_CGI = shutil.which("php-cgi8.2") or shutil.which("php-cgi")
SPAWN_FCGI = shutil.which("spawn-fcgi")
CURL = shutil.which("curl") or "/usr/bin/curl"
VERBOSE = "-v" in sys.argv
SELECT = [a for a in sys.argv[1:] if not a.startswith("-")]

results = []
gateways = []  # every gateway started: their logs are checked for sanitizer reports
procs = []  # every process started here, stopped at the end by pid


tap = peers.tap_printer(results)


def wait_for(pred, seconds=10.0, step=0.05):
    return peers.wait_for(pred, seconds, step)


def run(args, timeout=30, input_bytes=None):
    if VERBOSE:
        print("# $ " + " ".join(args), flush=True)
    try:
        p = subprocess.run(args, input=input_bytes, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        return -999, b"", "timed out after %ss" % timeout


def start(args, log, **kw):
    lf = open(log, "ab")
    p = subprocess.Popen(args, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
    lf.close()
    procs.append(p)
    return p


def stop(p, seconds=10):
    peers.stop_process(p, seconds)
    return p.returncode


def read_file(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class Backend:
    def __init__(self, tmp, name, binary=ECHO):
        self.sock = os.path.join(tmp, name + ".sock")
        self.log = os.path.join(tmp, name + ".log")
        self.addr = "unix:" + self.sock
        self.proc = start([binary, self.addr], self.log)
        if not wait_for(lambda: self.proc.poll() is not None or peers.unix_open(self.sock), 10):
            raise RuntimeError("backend %s did not come up: %s" % (name, read_file(self.log)))

    def stop(self):
        stop(self.proc)


class Gateway:
    def __init__(self, tmp, name, backends, extra=()):
        self.port = peers.free_port()
        self.log = os.path.join(tmp, name + ".err")
        self.access = os.path.join(tmp, name + ".access")
        # one worker unless a test asks for more: memory and status are read from it
        args = [FCGIKIT, "gateway", "--listen", "127.0.0.1:%d" % self.port, "--workers", "1",
                "--access-log", self.access] + list(extra)
        for b in backends:
            args += ["--backend", b]
        self.proc = start(args, self.log)
        if not wait_for(lambda: self.proc.poll() is not None or peers.port_open(self.port), 10):
            raise RuntimeError("gateway did not come up: " + read_file(self.log))
        if self.proc.poll() is not None:
            raise RuntimeError("gateway exited: " + read_file(self.log))
        self.url = "http://127.0.0.1:%d" % self.port
        gateways.append(self)

    def stop(self):
        return stop(self.proc)

    def alive(self):
        return self.proc.poll() is None


def curl(args, timeout=30, input_bytes=None):
    return run([CURL, "-sS", "--max-time", str(timeout)] + args, timeout=timeout + 5,
               input_bytes=input_bytes)


def split_head(raw):
    """(status, {lower-name: value}, rest) from the bytes of one HTTP/1.x response head."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, rest


def parse_responses(data, methods):
    """Splits a byte stream into responses (status, headers, body), using the framing each
    response announces; `methods` says which requests were HEAD (no body)."""
    out = []
    for m in methods:
        if b"\r\n\r\n" not in data:
            break
        status, hdrs, data = split_head(data)
        while status == 100:
            status, hdrs, data = split_head(data)
        if m == "HEAD" or status in (204, 304):
            body = b""
        elif "content-length" in hdrs:
            n = int(hdrs["content-length"])
            body, data = data[:n], data[n:]
        elif hdrs.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                line, _, data = data.partition(b"\r\n")
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    _, _, data = data.partition(b"\r\n")
                    break
                body += data[:size]
                data = data[size + 2:]
        else:
            body, data = data, b""
        out.append((status, hdrs, body))
    return out, data


def raw(port, payload, timeout=10):
    """Sends payload on a fresh connection, returns every byte until the server closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(payload)
        buf = b""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not d:
                break
            buf += d
        return buf
    finally:
        s.close()


def status_of(raw_bytes):
    try:
        return int(raw_bytes.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def randfile(tmp, name, size):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    return path


# ------------------------------------------------------------------------------------ tests

def t_get_query(g):
    rc, out, err = curl(["-i", g.url + "/x/y?a=1&b=two"])
    ok = rc == 0 and out.startswith(b"HTTP/1.1 200")
    status, hdrs, body = split_head(out) if ok else (0, {}, b"")
    ok = ok and hdrs.get("x-query") == "a=1&b=two" and hdrs.get("x-request-method") == "GET"
    tap(ok, "GET with a query reaches the backend (X-Query, X-Request-Method)", out[:500] + err.encode())


def t_post_1mib(g, tmp):
    f = randfile(tmp, "1m.bin", 1 << 20)
    rc, out, err = curl(["-H", "Expect:", "--data-binary", "@" + f, g.url + "/post"])
    want = open(f, "rb").read()
    tap(rc == 0 and out == want, "POST 1 MiB random bytes echoed byte-identical",
        "rc=%d len=%d %s" % (rc, len(out), err))


def t_post_8mib(g, tmp):
    f = randfile(tmp, "8m.bin", 8 << 20)
    rc, out, err = curl(["-H", "Expect:", "--data-binary", "@" + f, g.url + "/post8"])
    want = open(f, "rb").read()
    tap(rc == 0 and out == want, "POST 8 MiB echoed: a large response streams back intact",
        "rc=%d len=%d %s" % (rc, len(out), err))


def t_chunked_upload(g, tmp):
    f = randfile(tmp, "c.bin", 300000)
    rc, out, err = curl(["-H", "Transfer-Encoding: chunked", "-H", "Expect:",
                         "--data-binary", "@" + f, g.url + "/chunked"])
    want = open(f, "rb").read()
    tap(rc == 0 and out == want, "chunked upload decoded and echoed byte-identical",
        "rc=%d len=%d %s" % (rc, len(out), err))
    # raw chunked with extensions and a trailer
    req = (b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
           b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    rs, _ = parse_responses(raw(g.port, req), ["POST"])
    tap(len(rs) == 1 and rs[0][0] == 200 and rs[0][2] == b"hello world",
        "raw chunked body with extension and trailer", repr(rs))


class BodyBackend:
    """A FastCGI responder in a thread of this process that reports what it was sent: the
    answer is `CL=<CONTENT_LENGTH> got=<STDIN bytes> sha=<sha256 of STDIN>`. `begun` counts
    BEGIN_REQUESTs, `aborted` ABORT_REQUESTs and connections closed mid-body, so a test can
    see that a sized body reaches it before it is complete and that a vanished client's
    request is abandoned."""

    def __init__(self, tmp, name):
        self.sock = os.path.join(tmp, name + ".sock")
        self.addr = "unix:" + self.sock
        self.begun = self.aborted = self.answered = 0
        # GET /healthz: answered with this status when set (t_probe_uri), counted in probes
        self.health_status, self.probes = None, 0
        self.ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ls.bind(self.sock)
        self.ls.listen(16)
        self.ls.settimeout(0.2)
        self.stopping = False
        self.th = threading.Thread(target=self._accept, daemon=True)
        self.th.start()

    def _accept(self):
        while not self.stopping:
            try:
                s, _ = self.ls.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    @staticmethod
    def _recv(s, n):
        b = b""
        while len(b) < n:
            d = s.recv(n - len(b))
            if not d:
                raise EOFError
            b += d
        return b

    @staticmethod
    def _rec(t, rid, content):
        return bytes([1, t, rid >> 8, rid & 255, len(content) >> 8, len(content) & 255, 0, 0]) + content

    @staticmethod
    def _pairs(b):
        out, i = {}, 0
        while i < len(b):
            ln = []
            for _ in range(2):
                if b[i] & 0x80:
                    ln.append(int.from_bytes(b[i:i + 4], "big") & 0x7fffffff)
                    i += 4
                else:
                    ln.append(b[i])
                    i += 1
            out[b[i:i + ln[0]].decode("latin-1")] = b[i + ln[0]:i + ln[0] + ln[1]].decode("latin-1")
            i += ln[0] + ln[1]
        return out

    def _serve(self, s):
        import hashlib
        s.settimeout(60)
        params, keep, rid, got, h, live = b"", False, 0, 0, None, False
        try:
            while not self.stopping:
                hd = self._recv(s, 8)
                t, rid_in, clen, pad = hd[1], hd[2] << 8 | hd[3], hd[4] << 8 | hd[5], hd[6]
                c = self._recv(s, clen + pad)[:clen]
                if t == 9:
                    s.sendall(self._rec(10, 0, b"\x0f\x01FCGI_MPXS_CONNS0"))
                elif t == 1:
                    rid, keep, params, got, h, live = rid_in, bool(c[2] & 1), b"", 0, hashlib.sha256(), True
                    self.begun += 1
                elif t == 2:
                    self.aborted += 1
                    live = False
                    s.sendall(self._rec(3, rid, b"\0\0\0\1\0\0\0\0"))
                    if not keep:
                        break
                elif t == 4:
                    params += c
                elif t == 5 and clen:
                    got += clen
                    h.update(c)
                elif t == 5 and live:
                    live = False
                    p = self._pairs(params)
                    msg = "CL=%s got=%d sha=%s" % (p.get("CONTENT_LENGTH", "-"), got, h.hexdigest())
                    head = b"Content-Type: text/plain\r\n\r\n"
                    if self.health_status and p.get("DOCUMENT_URI") == "/healthz":
                        self.probes += 1
                        head = b"Status: %d\r\n" % self.health_status + head
                    else:
                        self.answered += 1
                    s.sendall(self._rec(6, rid, head + msg.encode()) +
                              self._rec(6, rid, b"") + self._rec(3, rid, b"\0" * 8))
                    if not keep:
                        break
        except (EOFError, OSError):
            if live:
                self.aborted += 1
        finally:
            s.close()

    def stop(self):
        self.stopping = True
        self.ls.close()
        self.th.join(2)


def gw_worker_pid(g):
    """The worker process of a one-worker gateway (the supervisor's child)."""
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = read_file("/proc/%s/stat" % d)
            parts = st.rpartition(")")[2].split()
            if len(parts) > 2 and parts[1] == str(g.proc.pid):
                return int(d)
    return None


def rss_kib(pid):
    for line in read_file("/proc/%d/status" % pid).splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def t_request_bodies(tmp):
    """Request bodies through the store: chunked ones complete (exact CONTENT_LENGTH) and
    spilled to --temp-dir, sized ones streamed while they arrive, memory bounded, no file
    left, a client vanishing mid-body costing nothing."""
    import hashlib
    tdir = os.path.join(tmp, "bodies-tmp")
    os.makedirs(tdir)
    be = BodyBackend(tmp, "bodies")
    echo = Backend(tmp, "bodies-echo")
    g = Gateway(tmp, "gw-bodies", [be.addr], ["--temp-dir", tdir, "--max-body", "64M"])
    www = os.path.join(tmp, "bodies-www")
    os.makedirs(www)
    with open(os.path.join(www, "s.txt"), "w") as fh:
        fh.write("static\n")
    ge = Gateway(tmp, "gw-bodies-echo", [echo.addr], ["--temp-dir", tdir, "--max-body", "64M",
                                                     "--root", www])
    try:
        # 8 MiB chunked: byte-identical through echo, and the application saw the exact length
        f = randfile(tmp, "c8.bin", 8 << 20)
        want = open(f, "rb").read()
        rc, out, err = curl(["-H", "Transfer-Encoding: chunked", "-H", "Expect:",
                             "--data-binary", "@" + f, ge.url + "/c8"], timeout=60)
        same = rc == 0 and out == want
        rc, out2, err2 = curl(["-H", "Transfer-Encoding: chunked", "-H", "Expect:",
                               "--data-binary", "@" + f, g.url + "/c8"], timeout=60)
        exp = ("CL=%d got=%d sha=%s" % (len(want), len(want), hashlib.sha256(want).hexdigest())).encode()
        tap(same and out2 == exp and not os.listdir(tdir),
            "8 MiB chunked upload: echoed byte-identical, CONTENT_LENGTH exact (8388608), "
            "no file left in --temp-dir",
            "echo rc=%d len=%d %s | app: %r %s | dir %r" % (rc, len(out), err, out2[:200], err2,
                                                          os.listdir(tdir)))

        # 20 MiB sized: streamed (the backend has the request before the body is complete),
        # the worker's memory stays far below the body's size
        wpid = gw_worker_pid(g)
        size = 20 << 20
        blob = os.urandom(1 << 20)
        s = socket.create_connection(("127.0.0.1", g.port), timeout=30)
        s.sendall(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        s.sendall(blob)
        early = wait_for(lambda: be.begun >= 2, 10)
        time.sleep(0.2)
        rss0 = rss_kib(wpid) if wpid else -1
        peak, h = rss0, hashlib.sha256(blob)
        for _ in range(19):
            s.sendall(blob)
            h.update(blob)
            peak = max(peak, rss_kib(wpid) if wpid else -1)
        st, _, body = read_http_response(s, 60)
        peak = max(peak, rss_kib(wpid) if wpid else -1)
        s.close()
        exp = ("CL=%d got=%d sha=%s" % (size, size, h.hexdigest())).encode()
        grow = peak - rss0
        tap(st == 200 and body == exp and early and rss0 > 0 and grow < 12 * 1024,
            "20 MiB sized upload streamed: at the backend before its end, body exact, the "
            "worker grew %d KiB (< 12 MiB)" % grow,
            "st=%s body=%r early=%s rss0=%d peak=%d" % (st, body[:200], early, rss0, peak))
        time.sleep(0.2)
        tap(not os.listdir(tdir) and not fds_in(wpid or 0, tdir),
            "after the uploads: nothing in --temp-dir, no temporary file still open",
            "%r %r" % (os.listdir(tdir), fds_in(wpid or 0, tdir)))

        # half a sized body, then the client goes: the backend request is abandoned, others
        # are served
        ab0 = be.aborted
        s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        s.sendall(b"POST /half HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n" + os.urandom(2000000))
        started = wait_for(lambda: be.begun >= 3, 10)
        time.sleep(0.2)
        s.close()
        gone = wait_for(lambda: be.aborted > ab0, 10)
        rc, out, _ = curl(["--data-binary", "after", g.url + "/after"])
        tap(started and gone and out.startswith(b"CL=5 got=5") and g.alive(),
            "a client that sends half a sized body and disconnects: the backend request is "
            "aborted, the next client is served",
            "started=%s aborted=%s out=%r" % (started, gone, out[:200]))

        # a response made before its body was read (a static file; the body is over
        # --body-buffer, so the request is served at once): the rest of the body is skipped
        # by its length, the pipelined request after it is answered, and so is one after a
        # body streamed through echo
        s = socket.create_connection(("127.0.0.1", ge.port), timeout=10)
        s.sendall(b"GET /s.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n" +
                  b"GET /fake HTTP/1.1\r\n" * 5000)
        first = read_http_response(s, 10)
        s.sendall(b"x" * 200000 + b"PUT /p HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n" +
                  b"a" * 100000)
        time.sleep(0.3)
        s.sendall(b"b" * 200000 + b"GET /next?n=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        s.settimeout(10)
        while True:
            try:
                d = s.recv(1 << 16)
            except OSError:
                break
            if not d:
                break
            data += d
        s.close()
        rs, rest = parse_responses(data, ["PUT", "GET"])
        ok = first[0] == 200 and first[2] == b"static\n" and len(rs) == 2 and rs[0][0] == 200 and \
            rs[0][2] == b"a" * 100000 + b"b" * 200000 and \
            rs[1][0] == 200 and rs[1][1].get("x-query") == "n=2" and rest == b""
        tap(ok, "answered before its body was read: the body is skipped by its length; a body "
            "streamed through echo; the pipelined requests after them answered in order",
            repr(first[:2]) + repr([(r[0], len(r[2])) for r in rs]) + repr(data[:300]))
    finally:
        g.stop()
        ge.stop()
        echo.stop()
        be.stop()


def t_body_stall(tmp):
    """A client that stops in the middle of a streamed body: 408 and the connection closed,
    the backend request abandoned without counting against the backend."""
    be = BodyBackend(tmp, "stall")
    g = Gateway(tmp, "gw-stall", [be.addr], ["--upstream-timeout", "1500", "--status-path", "/st"])
    try:
        s = socket.create_connection(("127.0.0.1", g.port), timeout=15)
        t0 = time.monotonic()
        s.sendall(b"POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" +
                  b"z" * 200000)
        st, hdrs, body = read_http_response(s, 12)
        dt = time.monotonic() - t0
        closed = False
        try:
            closed = s.recv(100) == b""
        except OSError:
            closed = True
        s.close()
        rc, out, _ = curl(["--data-binary", "next", g.url + "/next"])
        rc, stj, _ = curl([g.url + "/st"])
        try:
            failed = json.loads(stj)["backends"][0]["failed"]
        except (ValueError, KeyError, IndexError):
            failed = None
        log = read_file(g.log)
        tap(st == 408 and hdrs.get("connection", "").lower() == "close" and closed and
            1 < dt < 8 and out.startswith(b"CL=4 got=4") and "request body stalled" in log and
            failed == 0,
            "a sized body that stops coming: 408 and close after the timeout (%.1fs), not "
            "counted as a backend failure" % dt,
            "st=%s %r closed=%s out=%r failed=%r\n%s" % (st, hdrs, closed, out, failed, log[-800:]))
    finally:
        g.stop()
        be.stop()


def t_body_tempfail(tmp):
    """A temporary file that cannot be made: 500 with a log line, small bodies unaffected."""
    e = Backend(tmp, "tfail-echo")
    g = Gateway(tmp, "gw-tfail", [e.addr], ["--temp-dir", os.path.join(tmp, "no-such-dir")])
    try:
        rc, out, _ = curl(["-i", "-H", "Expect:", "--data-binary", "@" + randfile(tmp, "tf.bin", 200000),
                           g.url + "/big"])
        rc2, out2, _ = curl(["--data-binary", "small", g.url + "/small"])
        log = read_file(g.log)
        tap(out.startswith(b"HTTP/1.1 500") and "storing the request body" in log and
            out2 == b"small",
            "--temp-dir unusable: a body over --body-buffer gets 500 and a log line, a small one "
            "is served", "%r %r\n%s" % (out[:200], out2[:100], log[-600:]))
    finally:
        g.stop()
        e.stop()


def start_authorizer(tmp, name, what):
    """build/examples/authorizer on a Unix socket: (process, socket path), or None after a
    skip line for `what` when it was not built."""
    authz = os.path.join(BUILD, "examples", "authorizer")
    if not os.access(authz, os.X_OK):
        tap(True, what, skip="build/examples/authorizer missing")
        return None
    asock = os.path.join(tmp, name + ".sock")
    return start([authz, "unix:" + asock], os.path.join(tmp, name + ".log")), asock


def t_body_auth(tmp):
    """The authorizer gets no body; the responder after it gets all of it, streamed."""
    started = start_authorizer(tmp, "bauthz", "authorizer route with a request body")
    if not started:
        return
    import base64
    ap, asock = started
    e = Backend(tmp, "bauth-echo")
    try:
        wait_for(lambda: peers.unix_open(asock), 10)
        g = Gateway(tmp, "gw-bauth", [e.addr], ["--authorizer", "unix:" + asock])
        try:
            f = randfile(tmp, "bauth.bin", 3 << 20)
            good = base64.b64encode(b"demo:secret").decode()
            rc, out, err = curl(["-H", "Authorization: Basic " + good, "-H", "Expect:",
                                 "--data-binary", "@" + f, g.url + "/up"], timeout=60)
            rc2, out2, _ = curl(["-i", "-H", "Expect:", "--data-binary", "@" + f, g.url + "/up"],
                                timeout=60)
            tap(rc == 0 and out == open(f, "rb").read() and out2.startswith(b"HTTP/1.1 401"),
                "authorizer route, 3 MiB body: accepted reaches the responder byte-identical, "
                "refused gets the 401", "rc=%d len=%d %s %r" % (rc, len(out), err, out2[:200]))
        finally:
            g.stop()
    finally:
        e.stop()
        stop(ap)


def t_expect(g, tmp):
    f = randfile(tmp, "e.bin", 200000)
    t0 = time.monotonic()
    rc, out, err = curl(["-v", "-H", "Expect: 100-continue", "--expect100-timeout", "5",
                         "--data-binary", "@" + f, g.url + "/expect"])
    dt = time.monotonic() - t0
    want = open(f, "rb").read()
    ok = rc == 0 and out == want and "100 Continue" in err and dt < 3
    tap(ok, "Expect: 100-continue answered before the body is read (%.2fs)" % dt, err[-1500:])


def t_http10(g):
    rc, out, err = curl(["-0", "-i", "--data-binary", "ten", g.url + "/ten"])
    ok = rc == 0 and out.startswith(b"HTTP/1.1 200")
    status, hdrs, body = split_head(out) if ok else (0, {}, b"")
    ok = ok and body == b"ten" and "transfer-encoding" not in hdrs and \
        hdrs.get("connection", "").lower() == "close"
    tap(ok, "HTTP/1.0: body echoed, close-delimited (no chunked)", out[:600] + err.encode())
    # HTTP/1.0 keep-alive with a static Content-Length response would stay open; a backend
    # response without Content-Length must close.
    data = raw(g.port, b"GET /ten10 HTTP/1.0\r\n\r\n")
    tap(status_of(data) == 200 and b"X-Request-Method: GET" in data,
        "HTTP/1.0 request without Host", data[:400])


def t_head(g):
    data = raw(g.port, b"HEAD /h?q=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                       b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    rs, rest = parse_responses(data, ["HEAD", "GET"])
    ok = (len(rs) == 2 and rs[0][0] == 200 and rs[0][2] == b"" and
          rs[0][1].get("x-request-method") == "HEAD" and rs[1][0] == 200 and
          rs[1][1].get("x-request-method") == "GET" and rest == b"")
    tap(ok, "HEAD: head only, no body bytes (the next response follows directly)", repr(data[:800]))


def t_keepalive(g):
    rc, out, err = curl(["-v", g.url + "/k1", g.url + "/k2", g.url + "/k3"])
    n = err.lower().count("re-using existing connection")
    tap(rc == 0 and n >= 2, "keep-alive: curl reuses one connection for three URLs (%d)" % n,
        err[-2000:])


def t_pipeline(g):
    req = (b"GET /p?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
           b"POST /p?n=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
           b"GET /p?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    rs, rest = parse_responses(raw(g.port, req), ["GET", "POST", "GET"])
    qs = [r[1].get("x-query") for r in rs]
    ok = qs == ["n=1", "n=2", "n=3"] and rs[1][2] == b"body" and all(r[0] == 200 for r in rs)
    tap(ok, "pipelining: three requests in one send, three responses in order", repr(rs)[:800])


def t_static(g, root):
    data = open(os.path.join(root, "blob.bin"), "rb").read()
    rc, out, err = curl(["-D", "-", "-o", os.path.join(root, "..", "blob.out"), g.url + "/blob.bin"])
    got = open(os.path.join(root, "..", "blob.out"), "rb").read() if rc == 0 else b""
    hdr = out.decode("latin-1").lower()
    ok = got == data and "content-type: application/octet-stream" in hdr and \
        "content-length: %d" % len(data) in hdr and "last-modified:" in hdr
    tap(ok, "static file from --root: bytes, Content-Type, Content-Length, Last-Modified",
        hdr + err)
    rc, out, err = curl(["-i", g.url + "/css/site.css"])
    ok = rc == 0 and b"content-type: text/css" in out.lower() and out.endswith(b"body{}\n")
    tap(ok, "static .css gets text/css", out[:400])
    rc, out, err = curl(["-I", g.url + "/blob.bin"])
    ok = rc == 0 and b"200" in out.split(b"\r\n")[0] and \
        ("content-length: %d" % len(data)).encode() in out.lower()
    tap(ok, "static HEAD: length announced, no body", out[:400])
    # a .php file under root goes to the backend, never served as source
    rc, out, err = curl(["-i", g.url + "/secret.php"])
    tap(rc == 0 and b"<?php" not in out and b"X-Request-Method: GET" in out,
        "a --script-ext file is forwarded, not served as source", out[:400])
    # a missing file goes to the backend too
    rc, out, err = curl(["-i", g.url + "/missing.txt"])
    tap(rc == 0 and b"X-Request-Method: GET" in out, "a missing file goes to the backend", out[:300])


def t_static_conditional(g, root):
    data = open(os.path.join(root, "blob.bin"), "rb").read()

    def get(*hdrs):
        args = ["-i"]
        for h in hdrs:
            args += ["-H", h]
        rc, out, _ = curl(args + [g.url + "/blob.bin"])
        head, _, body = out.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        fields = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
        return int(lines[0].split()[1]) if lines[0].startswith("HTTP") else 0, fields, body
    st, h, body = get()
    etag, lm = h.get("etag", ""), h.get("last-modified", "")
    tap(st == 200 and etag and h.get("accept-ranges") == "bytes", "static: ETag and Accept-Ranges",
        repr(h))
    st1, _, b1 = get("If-None-Match: " + etag)
    st2, _, b2 = get("If-Modified-Since: " + lm)
    st3, _, _ = get('If-None-Match: "other"')
    tap(st1 == 304 and not b1 and st2 == 304 and not b2 and st3 == 200,
        "static: If-None-Match / If-Modified-Since answer 304 without a body",
        "%s %s %s" % (st1, st2, st3))
    st, h, b = get("Range: bytes=100-199")
    ok1 = st == 206 and b == data[100:200] and h.get("content-range") == "bytes 100-199/%d" % len(data)
    st, h, b = get("Range: bytes=-50")
    ok2 = st == 206 and b == data[-50:]
    st, h, b = get("Range: bytes=%d-" % (len(data) - 10))
    ok3 = st == 206 and b == data[-10:]
    st4, h4, _ = get("Range: bytes=%d-" % (len(data) + 10))
    st5, _, b5 = get("Range: bytes=0-9", 'If-Range: "stale"')
    st6, _, b6 = get("Range: bytes=0-9,20-29")
    tap(ok1 and ok2 and ok3 and st4 == 416 and h4.get("content-range") == "bytes */%d" % len(data)
        and st5 == 200 and b5 == data and st6 == 200 and b6 == data,
        "static: single byte ranges (206), past the end (416), stale If-Range and several "
        "ranges (whole file)", "%s %s %s %s %s %s" % (ok1, ok2, ok3, st4, st5, st6))


def t_traversal(g):
    bad = []
    for target in (b"/../etc/passwd", b"/%2e%2e/%2e%2e/etc/passwd", b"/a/../../etc/passwd",
                   b"/%2E%2E%2F%2E%2E%2Fetc/passwd", b"/..%2f..%2fetc%2fpasswd",
                   b"/link-out", b"/a%00.txt"):
        data = raw(g.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        st = status_of(data)
        if b"root:" in data or st not in (400, 403, 404):
            bad.append((target, st, data[:200]))
    tap(not bad, "path traversal (.., %2e%2e, %2f, symlink out of root, NUL) refused",
        repr(bad))


def t_smuggling(g):
    # a kept-alive client before the bad ones: it must keep working after them
    keep = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    keep.sendall(b"GET /before HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.1)
    keep.recv(65536)
    cases = [
        ("CL+TE", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("two CL", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd"),
        ("bare LF", b"GET / HTTP/1.1\nHost: x\n\n"),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
    ]
    for name, req in cases:
        data = raw(g.port, req + b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
        st = status_of(data)
        ok = st == 400 and b"/smuggled" not in data and data.count(b"HTTP/1.1 ") == 1 and \
            b"connection: close" in data.lower()
        tap(ok, "smuggling %s: 400, Connection: close, nothing after it served" % name, data[:300])
    keep.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    buf = b""
    keep.settimeout(5)
    while True:
        try:
            d = keep.recv(65536)
        except OSError:
            break
        if not d:
            break
        buf += d
    keep.close()
    rc, out, _ = curl([g.url + "/fresh?z=1", "-i"])
    tap(status_of(buf) == 200 and rc == 0 and b"X-Query: z=1" in out,
        "other clients unaffected by the refused requests", buf[:300])


def t_limits(g):
    data = raw(g.port, b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n")
    tap(status_of(data) == 413, "Content-Length over --max-body: 413", data[:200])
    data = raw(g.port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    tap(status_of(data) == 414, "request line over the limit: 414", data[:200])
    data = raw(g.port, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
    tap(status_of(data) == 505, "HTTP/2.0 request line: 505", data[:200])


def t_header_timeout(g):
    s = socket.create_connection(("127.0.0.1", g.port), timeout=20)
    s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    buf = b""
    while True:
        try:
            d = s.recv(4096)
        except OSError:
            break
        if not d:
            break
        buf += d
    dt = time.monotonic() - t0
    s.close()
    tap(status_of(buf) == 408 and 8 < dt < 15, "incomplete head: 408 after ~10 s (%.1fs)" % dt,
        buf[:200])


def t_access_log(g):
    text = read_file(g.access)
    ok = '"GET /x/y?a=1&b=two HTTP/1.1" 200' in text and "unix:" in text
    tap(ok, "access log: one line per request with status and backend", text[-800:])


def t_balance(tmp):
    e = Backend(tmp, "bal-echo")
    h = Backend(tmp, "bal-hello", HELLO)
    g = Gateway(tmp, "gw-bal", [e.addr, h.addr])
    try:
        seq = []
        for i in range(6):
            rc, out, err = curl(["-i", g.url + "/b?i=%d" % i])
            seq.append("hello" if b"Hello, World!" in out else
                       "echo" if b"X-Request-Method" in out else "?%d" % rc)
        ok = seq in (["echo", "hello"] * 3, ["hello", "echo"] * 3)
        tap(ok, "round-robin alternates between the two backends", repr(seq))
        h.stop()  # its socket file stays: connect() is refused from now on
        bad = []
        for i in range(8):
            rc, out, err = curl(["-i", g.url + "/f?i=%d" % i])
            if rc != 0 or not out.startswith(b"HTTP/1.1 200") or b"X-Query: i=%d" % i not in out:
                bad.append((i, rc, out[:100], err))
        tap(not bad, "failover: one backend killed, every following request succeeds", repr(bad))
        e.stop()
        rc, out, err = curl(["-i", g.url + "/dead"])
        tap(out.startswith(b"HTTP/1.1 502"), "all backends down: 502", out[:200])
        tap(g.alive(), "gateway still running after backend failures", read_file(g.log)[-500:])
        log = read_file(g.log)
        tap("refused" in log.lower() or "connect" in log.lower(),
            "backend failures are logged on stderr", log[-800:])
    finally:
        g.stop()


def t_least(tmp):
    e = Backend(tmp, "least-echo")
    h = Backend(tmp, "least-hello", HELLO)
    g = Gateway(tmp, "gw-least", [e.addr, h.addr], ["--balance", "least"])
    try:
        seen = set()
        for i in range(6):
            rc, out, err = curl(["-i", g.url + "/l"])
            seen.add("hello" if b"Hello, World!" in out else "echo" if b"X-Request-Method" in out else "?")
        tap(seen == {"hello", "echo"}, "--balance least uses both idle backends", repr(seen))
    finally:
        g.stop()
        e.stop()
        h.stop()


def t_nobackend(tmp):
    g = Gateway(tmp, "gw-none", ["unix:" + os.path.join(tmp, "nothing.sock")])
    try:
        rc, out, err = curl(["-i", g.url + "/"])
        tap(out.startswith(b"HTTP/1.1 502"), "backend never up: 502 Bad Gateway", out[:300] + err.encode())
    finally:
        g.stop()


PHP_INFO = "<?php header('Content-Type: application/json'); echo json_encode($_SERVER);\n"
PHP_REDIRECT = "<?php header('Location: /elsewhere'); echo 'moved';\n"
PHP_SLEEP = "<?php sleep(1); echo 'late';\n"
PHP_STATUS = "<?php http_response_code(418); error_log('gw-test-stderr-line'); echo 'teapot';\n"


def t_php(tmp):
    if not PHP_CGI:
        tap(True, "php-cgi: CGI parameters as the application sees them", skip="php-cgi not installed")
        return
    root = os.path.join(tmp, "phproot")
    os.makedirs(root, exist_ok=True)
    for name, text in (("info.php", PHP_INFO), ("redir.php", PHP_REDIRECT),
                       ("status.php", PHP_STATUS), ("sleep.php", PHP_SLEEP)):
        with open(os.path.join(root, name), "w") as f:
            f.write(text)
    sock = os.path.join(tmp, "php.sock")
    log = os.path.join(tmp, "php.log")
    if SPAWN_FCGI:
        p = start([SPAWN_FCGI, "-n", "-s", sock, "--", PHP_CGI], log)
    else:
        p = start([FCGIKIT, "pm", "--listen", "unix:" + sock, "--workers", "1", "--", PHP_CGI], log)
    try:
        if not wait_for(lambda: peers.unix_open(sock), 10):
            tap(False, "php-cgi came up", read_file(log))
            return
        g = Gateway(tmp, "gw-php", ["unix:" + sock], ["--root", root])
        try:
            rc, out, err = curl(["-H", "X-Custom: hello", "-H", "Proxy: http://evil:3128",
                                 "-H", "Cookie: a=1", "-H", "Cookie: b=2",
                                 g.url + "/info.php/extra/path?a=1"])
            try:
                s = json.loads(out)
            except ValueError:
                s = {}
            want = {
                "SCRIPT_NAME": "/info.php", "PATH_INFO": "/extra/path", "QUERY_STRING": "a=1",
                "HTTP_X_CUSTOM": "hello", "REQUEST_METHOD": "GET",
                "SCRIPT_FILENAME": os.path.realpath(root) + "/info.php",
                "DOCUMENT_ROOT": os.path.realpath(root),
                "REQUEST_URI": "/info.php/extra/path?a=1", "SERVER_PROTOCOL": "HTTP/1.1",
                "GATEWAY_INTERFACE": "CGI/1.1", "REMOTE_ADDR": "127.0.0.1",
                "SERVER_PORT": str(g.port), "SERVER_NAME": "127.0.0.1",
                "HTTP_COOKIE": "a=1; b=2", "REQUEST_SCHEME": "http",
            }
            diff = {k: (v, s.get(k)) for k, v in want.items() if s.get(k) != v}
            tap(s and not diff, "php-cgi sees nginx-style params (SCRIPT_NAME, PATH_INFO, ...)",
                repr(diff) + " " + out[:300].decode("latin-1") + err)
            tap(s and "HTTP_PROXY" not in s, "httpoxy: no HTTP_PROXY reaches the application",
                repr(s.get("HTTP_PROXY")))
            rc, out, err = curl(["-i", g.url + "/redir.php"])
            tap(out.startswith(b"HTTP/1.1 302") and b"Location: /elsewhere" in out,
                "Location without Status: 302", out[:300])
            rc, out, err = curl(["-i", g.url + "/status.php"])
            tap(out.startswith(b"HTTP/1.1 418") and b"Status:" not in out and out.endswith(b"teapot"),
                "Status header becomes the status line and is not forwarded", out[:300])
            tap(wait_for(lambda: any("gw-test-stderr-line" in ln and "/status.php" in ln
                                     for ln in read_file(g.log).splitlines()), 3),
                "application STDERR logged with the request URI", read_file(g.log)[-500:])
            rc, out, err = curl(["-i", "--data-binary", "x=1&y=2", g.url + "/info.php"])
            try:
                s = json.loads(split_head(out)[2])
            except (ValueError, IndexError):
                s = {}
            tap(s.get("CONTENT_LENGTH") == "7" and s.get("REQUEST_METHOD") == "POST" and
                s.get("CONTENT_TYPE") == "application/x-www-form-urlencoded" and
                "HTTP_CONTENT_LENGTH" not in s,
                "POST: CONTENT_LENGTH / CONTENT_TYPE, no HTTP_CONTENT_*", out[:400])
            # the client gives up while the backend works: the request is aborted, logged
            # as 499, and the gateway goes on serving
            rc, out, err = curl(["--max-time", "0.3", g.url + "/sleep.php"], timeout=1)
            logged = wait_for(lambda: '"GET /sleep.php HTTP/1.1" 499' in read_file(g.access), 3)
            rc2, out2, _ = curl(["-i", g.url + "/status.php"])
            tap(rc != 0 and logged and out2.startswith(b"HTTP/1.1 418") and g.alive(),
                "client disconnect mid-request: aborted, logged 499, next request served",
                read_file(g.access)[-400:] + read_file(g.log)[-400:])
        finally:
            g.stop()
    finally:
        stop(p)


def t_graceful(tmp):
    e = Backend(tmp, "grace-echo")
    g = Gateway(tmp, "gw-grace", [e.addr])
    try:
        idle = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        idle.sendall(b"GET /i HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        idle.recv(65536)
        t0 = time.monotonic()
        g.proc.send_signal(signal.SIGTERM)
        try:
            rc = g.proc.wait(12)
        except subprocess.TimeoutExpired:
            rc = None
        dt = time.monotonic() - t0
        idle.close()
        tap(rc == 0 and dt < 5, "SIGTERM: stops promptly with an idle keep-alive client (%.2fs, rc=%s)"
            % (dt, rc), read_file(g.log)[-500:])
    finally:
        g.stop()
        e.stop()


def t_workers(tmp):
    e = Backend(tmp, "workers-echo")
    g = Gateway(tmp, "gw-workers", [e.addr], ["--workers", "2"])
    try:
        kids = lambda: [int(x) for x in run(["pgrep", "-P", str(g.proc.pid)])[1].split()]
        two = wait_for(lambda: len(kids()) == 2, 5)
        ok = 0
        for i in range(20):
            rc, out, _ = curl(["-o", "/dev/null", "-w", "%{http_code}", g.url + "/w%d?q=%d" % (i, i)])
            ok += out == b"200"
        first = kids()
        os.kill(first[0], signal.SIGKILL)
        back = wait_for(lambda: len(kids()) == 2 and first[0] not in kids(), 5)
        rc, out, _ = curl(["-o", "/dev/null", "-w", "%{http_code}", g.url + "/after"])
        tap(two and ok == 20 and back and out == b"200",
            "--workers 2: two processes serve the one socket; a killed one is restarted",
            "two=%s ok=%d back=%s %r\n%s" % (two, ok, back, out, read_file(g.log)[-800:]))
        g.proc.send_signal(signal.SIGTERM)
        try:
            rc = g.proc.wait(12)
        except subprocess.TimeoutExpired:
            rc = None
        tap(rc == 0 and not kids(), "--workers 2: SIGTERM stops every worker, exit 0",
            "rc=%s kids=%s" % (rc, kids()))
    finally:
        g.stop()
        e.stop()


def t_probes_status(tmp):
    import json
    a = Backend(tmp, "probe-a")
    b = Backend(tmp, "probe-b", HELLO)
    g = Gateway(tmp, "gw-probe", [a.addr, b.addr],
                ["--status-path", "/gw-status", "--probe-interval", "200"])
    try:
        def status():
            rc, out, _ = curl([g.url + "/gw-status"])
            try:
                return {x["address"]: x for x in json.loads(out)["backends"]}
            except ValueError:
                return {}
        for i in range(6):
            curl(["-o", "/dev/null", g.url + "/p%d" % i])
        st = status()
        tap(st and all(x["state"] == "UP" for x in st.values()) and
            sum(x["answered"] for x in st.values()) == 6 and
            st[a.addr]["latency_ms"]["p99"] > 0,
            "status page: both backends UP, answers counted, latency measured", repr(st))
        rc, out, _ = curl([g.url + "/gw-status/metrics"])
        tap(out.endswith(b"# EOF\n") and b'fcgikit_gateway_backend_up{backend="%s"} 1'
            % b.addr.encode() in out, "status page: OpenMetrics per backend", out[-400:])
        b.stop()
        down = wait_for(lambda: status().get(b.addr, {}).get("state") == "DOWN", 5)
        tap(down, "active probes: a backend that stops answering is ejected without traffic",
            repr(status()) + read_file(g.log)[-600:])
        b2 = Backend(tmp, "probe-b", HELLO)
        up = wait_for(lambda: status().get(b.addr, {}).get("state") == "UP", 8)
        tap(up, "active probes: the backend back is re-admitted",
            repr(status()) + read_file(g.log)[-600:])
        b2.stop()
    finally:
        g.stop()
        a.stop()
        b.stop()


def t_probe_uri(tmp):
    """--probe-uri: a backend that still takes connections but answers its health URI with
    503 is ejected (a GET_VALUES probe would keep it), and re-admitted on 200."""
    a, b = BodyBackend(tmp, "pu-a"), BodyBackend(tmp, "pu-b")
    a.health_status = b.health_status = 200
    g = Gateway(tmp, "gw-probe-uri", [a.addr, b.addr],
                ["--status-path", "/gw-status", "--probe-interval", "150", "--probe-uri", "/healthz"])
    try:
        def state(be):
            rc, out, _ = curl([g.url + "/gw-status"])
            try:
                return {x["address"]: x["state"] for x in json.loads(out)["backends"]}.get(be.addr)
            except ValueError:
                return None
        tap(wait_for(lambda: a.probes > 0 and b.probes > 0, 5) and state(b) == "UP",
            "--probe-uri: every backend gets GET /healthz, UP on 200",
            "probes %d/%d %s" % (a.probes, b.probes, read_file(g.log)[-400:]))
        b.health_status = 503
        down = wait_for(lambda: state(b) == "DOWN", 6)
        tap(down and "probe status 503" in read_file(g.log),
            "--probe-uri: 503 from the health URI ejects a backend that still answers",
            "%s %s" % (state(b), read_file(g.log)[-600:]))
        before = (a.answered, b.answered)
        codes = [curl(["-o", "/dev/null", "-w", "%{http_code}", g.url + "/x%d" % i])[1]
                 for i in range(8)]
        tap(all(c == b"200" for c in codes) and b.answered == before[1] and
            a.answered == before[0] + 8,
            "--probe-uri: while it is out, requests go to the healthy backend",
            "%r a %d->%d b %d->%d" % (codes, before[0], a.answered, before[1], b.answered))
        b.health_status = 200
        tap(wait_for(lambda: state(b) == "UP", 8),
            "--probe-uri: back to 200, the backend is re-admitted", read_file(g.log)[-600:])
    finally:
        g.stop()
        a.stop()
        b.stop()


PERL_REDIR = r"""#!/usr/bin/perl
use strict; use warnings; use FCGI;
my $req = FCGI::Request();
while ($req->Accept() >= 0) {
    my $u = $ENV{DOCUMENT_URI} || $ENV{SCRIPT_NAME} || '';
    if ($u eq '/redir') { print "Location: /static.txt\r\n\r\n"; }
    elsif ($u eq '/redir-app') { print "Location: /other?x=1\r\n\r\n"; }
    elsif ($u eq '/xaccel') { print "X-Accel-Redirect: /files/a.bin\r\nContent-Type: text/plain\r\n\r\nhidden"; }
    elsif ($u eq '/xaccel-escape') { print "X-Accel-Redirect: /../../etc/passwd\r\n\r\n"; }
    elsif ($u eq '/loop') { print "Location: /loop\r\n\r\n"; }
    elsif ($u eq '/away') { print "Status: 302 Found\r\nLocation: /static.txt\r\n\r\n"; }
    else { print "Content-Type: text/plain\r\n\r\nother $ENV{REQUEST_METHOD} $ENV{QUERY_STRING}"; }
}
"""


def t_redirects(tmp):
    if run(["perl", "-MFCGI", "-e", "1"])[0] != 0:
        tap(True, "local redirects and X-Accel-Redirect", skip="libfcgi-perl not installed")
        return
    d = os.path.join(tmp, "redir")
    os.makedirs(os.path.join(d, "www"))
    os.makedirs(os.path.join(d, "private", "files"))
    with open(os.path.join(d, "www", "static.txt"), "w") as f:
        f.write("static body\n")
    blob = os.urandom(5000)
    with open(os.path.join(d, "private", "files", "a.bin"), "wb") as f:
        f.write(blob)
    script = os.path.join(d, "app.pl")
    with open(script, "w") as f:
        f.write(PERL_REDIR)
    sock = os.path.join(d, "app.sock")
    pm = start([FCGIKIT, "pm", "--listen", "unix:" + sock, "--workers", "1", "--",
                "/usr/bin/perl", script], os.path.join(d, "pm.log"))
    try:
        wait_for(lambda: peers.unix_open(sock), 10)
        g = Gateway(tmp, "gw-redir", ["unix:" + sock],
                    ["--root", os.path.join(d, "www"), "--sendfile-root", os.path.join(d, "private")])
        try:
            def get(path):
                rc, out, _ = curl(["-i", g.url + path])
                head, _, body = out.partition(b"\r\n\r\n")
                st = int(head.split()[1]) if head.startswith(b"HTTP") else 0
                return st, head, body
            st1, _, b1 = get("/redir")
            st2, _, b2 = get("/redir-app")
            tap(st1 == 200 and b1 == b"static body\n" and st2 == 200 and b2 == b"other GET x=1",
                "local redirect (RFC 3875): Location without Status is served again, static or "
                "by the application", "%s %r %s %r" % (st1, b1, st2, b2))
            st3, h3, b3 = get("/xaccel")
            st4, _, b4 = get("/xaccel-escape")
            tap(st3 == 200 and b3 == blob and st4 == 404 and b"root:" not in b4,
                "X-Accel-Redirect: a file under --sendfile-root, never outside it",
                "%s %d bytes %s %r" % (st3, len(b3), st4, b4[:100]))
            st5, _, _ = get("/loop")
            st6, h6, _ = get("/away")
            tap(st5 == 500 and st6 == 302 and b"Location: /static.txt" in h6,
                "a redirect loop ends in 500; Status + Location goes to the client",
                "%s %s %r" % (st5, st6, h6[:300]))
        finally:
            g.stop()
    finally:
        stop(pm)


def t_authorizer(tmp):
    started = start_authorizer(tmp, "authz", "authorizer routes")
    if not started:
        return
    import base64
    ap, asock = started
    e = Backend(tmp, "auth-echo")
    try:
        wait_for(lambda: peers.unix_open(asock), 10)
        g = Gateway(tmp, "gw-auth", [e.addr], ["--authorizer", "unix:" + asock,
                                              "--auth-prefix", "/private"])
        try:
            rc, out, _ = curl(["-i", g.url + "/public?x=1"])
            pub = b"X-Query: x=1" in out
            rc, out, _ = curl(["-i", g.url + "/private/a"])
            refused = out.startswith(b"HTTP/1.1 401") and b"WWW-Authenticate" in out and \
                b"X-Request-Method" not in out
            good = base64.b64encode(b"demo:secret").decode()
            rc, out, _ = curl(["-i", "-H", "Authorization: Basic " + good, g.url + "/private/b?y=2"])
            ok = out.startswith(b"HTTP/1.1 200") and b"X-Query: y=2" in out
            tap(pub and refused and ok,
                "authorizer route: refused with the authorizer's 401, accepted goes on to the "
                "responder, other paths untouched", "%s %s %s\n%r" % (pub, refused, ok, out[:400]))
        finally:
            g.stop()
        if run(["perl", "-MFCGI", "-e", "1"])[0] != 0:
            tap(True, "authorizer Variable-* reach the responder", skip="libfcgi-perl missing")
            return
        script = os.path.join(tmp, "authvars.pl")
        with open(script, "w") as f:
            f.write("use FCGI; my $r = FCGI::Request(); while ($r->Accept() >= 0) { "
                    "print \"Content-Type: text/plain\\r\\n\\r\\nuser=$ENV{AUTH_USER}\"; }\n")
        psock = os.path.join(tmp, "authvars.sock")
        pm = start([FCGIKIT, "pm", "--listen", "unix:" + psock, "--workers", "1", "--",
                    "/usr/bin/perl", script], os.path.join(tmp, "authvars-pm.log"))
        try:
            wait_for(lambda: peers.unix_open(psock), 10)
            g2 = Gateway(tmp, "gw-auth2", ["unix:" + psock], ["--authorizer", "unix:" + asock])
            try:
                rc, out, _ = curl(["-H", "Authorization: Basic " + good, g2.url + "/x"])
                tap(out == b"user=demo", "authorizer: its Variable-AUTH_USER reaches the responder",
                    repr(out))
            finally:
                g2.stop()
        finally:
            stop(pm)
    finally:
        e.stop()
        stop(ap)


def t_queue_full(tmp):
    if not os.path.exists(PHP_CGI):
        tap(True, "bounded backend queue", skip="php-cgi not installed")
        return
    d = os.path.join(tmp, "qfull")
    os.makedirs(d)
    with open(os.path.join(d, "slow.php"), "w") as f:
        f.write("<?php usleep(600000); echo 'done';\n")
    sock = os.path.join(d, "php.sock")
    p = start([FCGIKIT, "pm", "--listen", "unix:" + sock, "--workers", "1", "--", PHP_CGI],
              os.path.join(d, "pm.log"))
    try:
        wait_for(lambda: peers.unix_open(sock), 10)
        g = Gateway(tmp, "gw-queue", ["unix:" + sock],
                    ["--root", d, "--backend-conns", "1", "--queue", "2"])
        try:
            res = []
            lock = threading.Lock()

            def one():
                rc, out, _ = curl(["-s", "-o", "/dev/null", "-w", "%{http_code}",
                                   g.url + "/slow.php"], timeout=30)
                with lock:
                    res.append(out.decode())
            ths = [threading.Thread(target=one) for _ in range(8)]
            t0 = time.monotonic()
            for t in ths:
                t.start()
                time.sleep(0.02)
            for t in ths:
                t.join(40)
            took = time.monotonic() - t0
            n200, n503 = res.count("200"), res.count("503")
            tap(n200 == 3 and n503 == 5 and took < 6,
                "--queue: one php-cgi worker, 1 in flight + 2 waiting served, the rest 503 at once "
                "(%d served, %d refused, %.1f s)" % (n200, n503, took), repr(res))
            rc, out, _ = curl(["-i", g.url + "/slow.php"])
            tap(out.startswith(b"HTTP/1.1 200"), "--queue: served again once the queue drained",
                out[:200])
        finally:
            g.stop()
    finally:
        stop(p)


# ------------------------------------------------------------------ slow clients, flow control

class PatternBackend:
    """A FastCGI responder in a thread of this process that does not multiplex (it answers
    GET_VALUES with FCGI_MPXS_CONNS=0): `?mib=N` is answered with N MiB, block i being
    `i` (8 bytes) then a fixed random MiB, written with blocking sends so `written` shows how
    far a client that does not read lets it get."""
    BLOCK = os.urandom(1 << 20)

    def __init__(self, tmp, name):
        self.sock = os.path.join(tmp, name + ".sock")
        self.addr = "unix:" + self.sock
        self.written = 0
        self.ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ls.bind(self.sock)
        self.ls.listen(16)
        self.ls.settimeout(0.2)
        self.stopping = False
        self.th = threading.Thread(target=self._accept, daemon=True)
        self.th.start()

    @staticmethod
    def block(i):
        return i.to_bytes(8, "big") + PatternBackend.BLOCK[8:]

    # the same socket plumbing as BodyBackend's
    _accept = BodyBackend._accept
    _recv = staticmethod(BodyBackend._recv)
    _rec = staticmethod(BodyBackend._rec)

    def _serve(self, s):
        s.settimeout(60)
        params, keep, rid = b"", False, 0
        try:
            while not self.stopping:
                h = self._recv(s, 8)
                t, rid_in, clen, pad = h[1], h[2] << 8 | h[3], h[4] << 8 | h[5], h[6]
                c = self._recv(s, clen + pad)[:clen]
                if t == 9:  # GET_VALUES: one connection at a time, one request on it
                    v = b"\x0f\x01FCGI_MPXS_CONNS0"
                    s.sendall(self._rec(10, 0, v))
                elif t == 1:
                    rid, keep, params = rid_in, bool(c[2] & 1), b""
                elif t == 4:
                    params += c
                elif t == 5 and clen == 0:
                    self._answer(s, rid, params)
                    if not keep:
                        break
        except (EOFError, OSError):
            pass
        finally:
            s.close()

    @staticmethod
    def _pairs(b):
        out, i = {}, 0

        def length():
            nonlocal i
            if b[i] < 128:
                i += 1
                return b[i - 1]
            i += 4
            return int.from_bytes(b[i - 4:i], "big") & 0x7fffffff
        while i < len(b):
            nl = length()
            vl = length()
            out[b[i:i + nl]] = b[i + nl:i + nl + vl]
            i += nl + vl
        return out

    def _answer(self, s, rid, params):
        q = self._pairs(params).get(b"QUERY_STRING", b"")
        mib = int(q[4:]) if q.startswith(b"mib=") and q[4:].isdigit() else 1
        n = mib << 20
        s.sendall(self._rec(6, rid, b"Status: 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                    b"Content-Length: %d\r\n\r\n" % n))
        for k in range(mib):
            blk = self.block(k)
            for off in range(0, len(blk), 32768):
                s.sendall(self._rec(6, rid, blk[off:off + 32768]))
                self.written += 32768
        s.sendall(self._rec(6, rid, b"") + self._rec(3, rid, b"\0" * 8))

    stop = BodyBackend.stop


def worker_pid(g):
    """The gateway's worker process (even one worker runs under a supervisor), or the
    gateway itself."""
    kids = []
    def children():
        kids[:] = read_file("/proc/%d/task/%d/children" % (g.proc.pid, g.proc.pid)).split()
        return kids
    wait_for(children, 5)
    return int(kids[0]) if kids else g.proc.pid


def vmrss_kib(pid):
    for line in read_file("/proc/%d/status" % pid).splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def fds_in(pid, d):
    """The gateway's descriptors open on files in directory d (unlinked ones included)."""
    out = []
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if t.startswith(d + "/"):
                out.append(t)
    except OSError:
        pass
    return out


def read_http_response(s, timeout):
    """Reads one response with Content-Length or chunked framing from socket s: (status,
    headers, body), or (None, {}, what came) when it did not complete in time."""
    s.settimeout(timeout)
    end = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < end:
        if b"\r\n\r\n" in buf:
            status, hdrs, rest = split_head(buf)
            if "content-length" in hdrs and len(rest) >= int(hdrs["content-length"]):
                return status, hdrs, rest[:int(hdrs["content-length"])]
            if hdrs.get("transfer-encoding") == "chunked" and rest.endswith(b"0\r\n\r\n"):
                got, _ = parse_responses(buf, ["GET"])
                if got:
                    return got[0]
        try:
            d = s.recv(1 << 20)
        except (socket.timeout, OSError):
            break
        if not d:
            break
        buf += d
    return None, {}, buf


def t_slow_client_pause(tmp):
    """A non-multiplexing backend and a client that reads nothing: the gateway pauses the
    request (its connection is not read, the backend's writes wait), stays small, spills
    nothing, then passes every byte once the client reads."""
    tdir = os.path.join(tmp, "spill-a")
    os.makedirs(tdir)
    be = PatternBackend(tmp, "pattern")
    g = Gateway(tmp, "gw-slow", [be.addr], ["--temp-dir", tdir])
    try:
        s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        s.sendall(b"GET /big?mib=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        st, _, body = read_http_response(s, 20)
        warm = st == 200 and body == PatternBackend.block(0)
        time.sleep(0.3)
        wpid = worker_pid(g)
        rss0 = vmrss_kib(wpid)
        s.sendall(b"GET /big?mib=64 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(2.0)
        rss1 = vmrss_kib(wpid)
        written, spilled = be.written, fds_in(wpid, tdir)
        grow = rss1 - rss0
        tap(warm and rss0 > 0 and grow < 16 * 1024 and written < (32 << 20) and not spilled,
            "slow client, non-multiplexing backend: 2 s without reading a 64 MiB response, the "
            "gateway grows %d KiB (< 16 MiB), the backend waits at %d MiB, no temporary file"
            % (grow, written >> 20),
            "warm=%s rss0=%d rss1=%d written=%d spilled=%r" % (warm, rss0, rss1, written, spilled))
        t0 = time.monotonic()
        st, hdrs, body = read_http_response(s, 90)
        took = time.monotonic() - t0
        s.close()
        want_ok = st == 200 and len(body) == 64 << 20 and all(
            body[i << 20:(i + 1) << 20] == PatternBackend.block(i) for i in range(64))
        tap(want_ok, "the slow client then reads all 64 MiB byte-identical (%.1f s)" % took,
            "status=%r len=%d %s" % (st, len(body), read_file(g.log)[-800:]))
    finally:
        g.stop()
        be.stop()


def t_slow_client_mpx(tmp):
    """A multiplexing backend on one connection (--backend-conns 1): a client stalled on a
    large response does not stall the others on that connection; the stalled response waits
    in an unlinked temporary file and completes intact; nothing is left in --temp-dir."""
    tdir = os.path.join(tmp, "spill-b")
    os.makedirs(tdir)
    e = Backend(tmp, "echo-mpx")
    g = Gateway(tmp, "gw-mpx", [e.addr], ["--backend-conns", "1", "--temp-dir", tdir,
                                         "--max-body", "64M"])
    try:
        n = 24 << 20
        big = os.urandom(n)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # little room in the kernel
        s.settimeout(30)
        s.connect(("127.0.0.1", g.port))
        s.sendall(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % n + big)
        time.sleep(1.0)  # its response is being produced and not read
        times, fast_ok = [], True
        for i in range(5):
            t0 = time.monotonic()
            rc, out, err = curl(["-i", g.url + "/fast?i=%d" % i], timeout=10)
            times.append(time.monotonic() - t0)
            fast_ok = fast_ok and rc == 0 and out.startswith(b"HTTP/1.1 200") and \
                ("X-Query: i=%d" % i).encode() in out
        wpid = worker_pid(g)
        spilled = fds_in(wpid, tdir)
        tap(fast_ok and max(times) < 5 and spilled,
            "multiplexed backend, one connection: a stalled 24 MiB response does not stall 5 "
            "other requests (slowest %.2f s); its excess waits in a temporary file" % max(times),
            "ok=%s times=%r spilled=%r %s" % (fast_ok, times, spilled, read_file(g.log)[-800:]))
        st, hdrs, body = read_http_response(s, 90)
        s.close()
        tap(st == 200 and body == big,
            "the stalled client then reads its 24 MiB byte-identical",
            "status=%r len=%d %s" % (st, len(body), read_file(g.log)[-800:]))
        gone = wait_for(lambda: not fds_in(wpid, tdir), 5)
        tap(gone and not os.listdir(tdir), "temporary file closed, --temp-dir empty afterwards",
            repr((fds_in(wpid, tdir), os.listdir(tdir))))
    finally:
        g.stop()
        e.stop()


def t_slow_client_cap(tmp):
    """Past --max-temp-file the response is given up: the backend request is aborted, the
    client's connection closed, one log line; the gateway and the shared connection go on."""
    tdir = os.path.join(tmp, "spill-c")
    os.makedirs(tdir)
    e = Backend(tmp, "echo-cap")
    g = Gateway(tmp, "gw-cap", [e.addr], ["--backend-conns", "1", "--temp-dir", tdir,
                                         "--max-temp-file", "2M", "--max-body", "64M"])
    try:
        n = 24 << 20
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.settimeout(30)
        s.connect(("127.0.0.1", g.port))
        s.sendall(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % n +
                  os.urandom(n))
        time.sleep(1.0)
        rc, out, _ = curl(["-i", g.url + "/fast?i=cap"], timeout=10)
        logged = wait_for(lambda: "temporary file over" in read_file(g.log), 10)
        st, _, body = read_http_response(s, 30)
        s.close()
        rc2, out2, _ = curl(["-i", g.url + "/after"], timeout=10)
        tap(rc == 0 and out.startswith(b"HTTP/1.1 200") and logged and st is None and
            len(body) < n and out2.startswith(b"HTTP/1.1 200") and not os.listdir(tdir),
            "--max-temp-file 2M: the stalled response is cut (logged, connection closed), "
            "the other requests are served",
            "rc=%d out=%r logged=%s st=%r got=%d out2=%r %s" % (
                rc, out[:80], logged, st, len(body), out2[:80], read_file(g.log)[-800:]))
    finally:
        g.stop()
        e.stop()


def main():
    if not os.access(FCGIKIT, os.X_OK) or not os.access(ECHO, os.X_OK):
        print("1..0 # SKIP build first (make): %s" % FCGIKIT)
        return 0
    tmp = tempfile.mkdtemp(prefix="fk-gw-")
    os.chmod(tmp, 0o755)
    root = os.path.join(tmp, "www")
    os.makedirs(os.path.join(root, "css"))
    with open(os.path.join(root, "blob.bin"), "wb") as f:
        f.write(os.urandom(300000))
    with open(os.path.join(root, "css", "site.css"), "w") as f:
        f.write("body{}\n")
    with open(os.path.join(root, "secret.php"), "w") as f:
        f.write("<?php echo 'source';\n")
    os.symlink("/etc/passwd", os.path.join(root, "link-out"))
    try:
        echo = Backend(tmp, "echo")
        g = Gateway(tmp, "gw", [echo.addr], ["--root", root, "--max-body", "16M"])
        tests = [
            ("get", lambda: t_get_query(g)),
            ("post", lambda: t_post_1mib(g, tmp)),
            ("post8", lambda: t_post_8mib(g, tmp)),
            ("chunked", lambda: t_chunked_upload(g, tmp)),
            ("bodies", lambda: t_request_bodies(tmp)),
            ("bodyauth", lambda: t_body_auth(tmp)),
            ("bodystall", lambda: t_body_stall(tmp)),
            ("bodytempfail", lambda: t_body_tempfail(tmp)),
            ("expect", lambda: t_expect(g, tmp)),
            ("http10", lambda: t_http10(g)),
            ("head", lambda: t_head(g)),
            ("keepalive", lambda: t_keepalive(g)),
            ("pipeline", lambda: t_pipeline(g)),
            ("static", lambda: t_static(g, root)),
            ("conditional", lambda: t_static_conditional(g, root)),
            ("traversal", lambda: t_traversal(g)),
            ("smuggling", lambda: t_smuggling(g)),
            ("limits", lambda: t_limits(g)),
            ("timeout", lambda: t_header_timeout(g)),
            ("accesslog", lambda: t_access_log(g)),
            ("balance", lambda: t_balance(tmp)),
            ("least", lambda: t_least(tmp)),
            ("nobackend", lambda: t_nobackend(tmp)),
            ("php", lambda: t_php(tmp)),
            ("graceful", lambda: t_graceful(tmp)),
            ("workers", lambda: t_workers(tmp)),
            ("probes", lambda: t_probes_status(tmp)),
            ("probeuri", lambda: t_probe_uri(tmp)),
            ("redirects", lambda: t_redirects(tmp)),
            ("authorizer", lambda: t_authorizer(tmp)),
            ("queue", lambda: t_queue_full(tmp)),
            ("slowpause", lambda: t_slow_client_pause(tmp)),
            ("slowmpx", lambda: t_slow_client_mpx(tmp)),
            ("slowcap", lambda: t_slow_client_cap(tmp)),
        ]
        for name, fn in tests:
            if SELECT and not any(s in name for s in SELECT):
                continue
            try:
                fn()
            except Exception as e:  # a crashed test is a failure, the suite goes on
                import traceback
                tap(False, "%s: raised %s" % (name, e), traceback.format_exc())
        tap(g.alive(), "main gateway survived the whole suite", read_file(g.log)[-1500:])
        rc = g.stop()
        log = read_file(g.log)
        tap(rc == 0, "main gateway exits 0 on SIGTERM", log[-1500:])
        for p in procs:
            stop(p, 5)
        reports = [(x.log, read_file(x.log)[-1500:]) for x in gateways
                   if "Sanitizer" in read_file(x.log) or "runtime error" in read_file(x.log)]
        tap(not reports, "no sanitizer report from any gateway (%d started)" % len(gateways),
            repr(reports))
    finally:
        for p in procs:
            stop(p, 5)
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % len(results))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
