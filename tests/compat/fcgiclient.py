"""fcgiclient.py — a small FastCGI client for the compat tests: whole requests, keep-alive,
multiplexing, ABORT_REQUEST, GET_VALUES and hand-made (malformed) records. Every wait is
bounded by a deadline; a timeout raises socket.timeout."""
import socket
import struct
import time

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR, DATA, GET_VALUES, GET_VALUES_RESULT, \
    UNKNOWN_TYPE = range(1, 12)
RESPONDER, AUTHORIZER, FILTER = 1, 2, 3
PROTO_STATUS = {0: "REQUEST_COMPLETE", 1: "CANT_MPX_CONN", 2: "OVERLOADED", 3: "UNKNOWN_ROLE"}


def enc_len(n):
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def enc_pairs(pairs):
    out = b""
    for k, v in pairs:
        k = k.encode() if isinstance(k, str) else k
        v = v.encode() if isinstance(v, str) else v
        out += enc_len(len(k)) + enc_len(len(v)) + k + v
    return out


def dec_pairs(b):
    out, i = {}, 0

    def ln():
        nonlocal i
        if b[i] < 128:
            i += 1
            return b[i - 1]
        i += 4
        return struct.unpack(">I", b[i - 4:i])[0] & 0x7FFFFFFF

    while i < len(b):
        kl = ln()
        vl = ln()
        out[b[i:i + kl].decode()] = b[i + kl:i + kl + vl].decode()
        i += kl + vl
    return out


def record(rtype, rid, content=b"", pad=True):
    padding = (8 - len(content) % 8) % 8 if pad else 0
    return struct.pack(">BBHHBB", 1, rtype, rid, len(content), padding, 0) + content + \
        b"\0" * padding


def stream(rtype, rid, data, chunk=32768, end=True):
    out = b""
    for i in range(0, len(data), chunk):
        out += record(rtype, rid, data[i:i + chunk])
    if end:
        out += record(rtype, rid)
    return out


def begin_body(role=RESPONDER, keep=False):
    return struct.pack(">HB5x", role, 1 if keep else 0)


class Response:
    def __init__(self):
        self.stdout = b""
        self.stderr = b""
        self.app_status = None
        self.proto_status = None
        self.ended = False

    def split(self):
        """(status code, {lower-case header: value}, body) of the CGI response."""
        raw = self.stdout
        sep = raw.find(b"\r\n\r\n")
        n = 4
        if sep < 0:
            sep, n = raw.find(b"\n\n"), 2
        if sep < 0:
            return None, {}, raw
        headers = {}
        for line in raw[:sep].decode("latin-1").splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        status = int(headers.get("status", "200").split()[0])
        return status, headers, raw[sep + n:]

    def summary(self):
        return "ended=%s app_status=%s proto=%s stdout=%dB stderr=%dB" % (
            self.ended, self.app_status, PROTO_STATUS.get(self.proto_status, self.proto_status),
            len(self.stdout), len(self.stderr))


class Conn:
    def __init__(self, addr, timeout=5.0):
        if isinstance(addr, str):
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(addr)
        self.buf = b""
        self.eof = False
        self.order = []  # request ids in the order their END_REQUEST arrived
        self.send_failed = False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def send(self, b):
        # An application may answer and close before it has read everything (a response needs
        # no request body): the rest of the request is then dropped, the answer still read.
        try:
            self.s.sendall(b)
        except (BrokenPipeError, ConnectionResetError):
            self.send_failed = True

    def begin(self, rid, role=RESPONDER, keep=False):
        self.send(record(BEGIN, rid, begin_body(role, keep)))

    def params(self, rid, pairs):
        self.send(stream(PARAMS, rid, enc_pairs(pairs)))

    def stdin(self, rid, data, end=True):
        self.send(stream(STDIN, rid, data, end=end))

    def data(self, rid, data, end=True):
        self.send(stream(DATA, rid, data, end=end))

    def abort(self, rid):
        self.send(record(ABORT, rid))

    def read_record(self, deadline):
        """(type, id, content), or None at end of stream."""
        while True:
            if len(self.buf) >= 8:
                _, t, rid, clen, plen, _ = struct.unpack(">BBHHBB", self.buf[:8])
                if len(self.buf) >= 8 + clen + plen:
                    content = self.buf[8:8 + clen]
                    self.buf = self.buf[8 + clen + plen:]
                    return t, rid, content
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no record before the deadline")
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(262144)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
            self.buf += chunk

    def collect(self, ids, timeout=5.0):
        """Responses for ids until each has END_REQUEST, the connection ends, or the deadline
        passes (then the unfinished ones have ended=False). Also returns what else came."""
        deadline = time.monotonic() + timeout
        resp = {i: Response() for i in ids}
        other = []
        pending = set(ids)
        while pending:
            try:
                rec = self.read_record(deadline)
            except socket.timeout:
                break
            if rec is None:
                break
            t, rid, content = rec
            r = resp.get(rid)
            if r is None:
                other.append(rec)
                continue
            if t == STDOUT:
                r.stdout += content
            elif t == STDERR:
                r.stderr += content
            elif t == END:
                r.app_status, r.proto_status = struct.unpack(">IB3x", content)
                r.app_status = struct.unpack(">i", struct.pack(">I", r.app_status))[0]
                r.ended = True
                pending.discard(rid)
                self.order.append(rid)
            else:
                other.append(rec)
        return resp, other

    def request(self, rid=1, params=(), stdin=b"", role=RESPONDER, keep=False, data=None,
                timeout=5.0):
        self.begin(rid, role, keep)
        self.params(rid, params)
        if role != AUTHORIZER:
            self.stdin(rid, stdin)
        if data is not None:
            self.data(rid, data)
        return self.collect([rid], timeout)[0][rid]

    def get_values(self, names=("FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"),
                   timeout=5.0):
        self.send(record(GET_VALUES, 0, enc_pairs((n, "") for n in names)))
        deadline = time.monotonic() + timeout
        while True:
            rec = self.read_record(deadline)
            if rec is None:
                return None
            if rec[0] == GET_VALUES_RESULT:
                return dec_pairs(rec[2])


def cgi_params(method="GET", query="", body=b"", extra=()):
    p = [("GATEWAY_INTERFACE", "CGI/1.1"), ("SERVER_PROTOCOL", "HTTP/1.1"),
         ("REQUEST_METHOD", method), ("QUERY_STRING", query),
         ("REQUEST_URI", "/compat" + ("?" + query if query else "")),
         ("SCRIPT_NAME", "/compat"), ("SERVER_NAME", "localhost"), ("SERVER_PORT", "80"),
         ("REMOTE_ADDR", "127.0.0.1"), ("CONTENT_LENGTH", str(len(body)) if body else "")]
    if body:
        p.append(("CONTENT_TYPE", "application/octet-stream"))
    return p + list(extra)


def request(addr, timeout=5.0, **kw):
    c = Conn(addr, timeout)
    try:
        return c.request(timeout=timeout, **kw)
    finally:
        c.close()
