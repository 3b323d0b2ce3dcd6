"""A transparent FastCGI relay that watches what a web server and an application say.

    tap = WireTap(listen="127.0.0.1:0" or "/path.sock", backend="127.0.0.1:9000" or "/b.sock")
    tap.start()          # tap.address is where the web server must connect
    ...
    print(tap.summary())
    tap.stop()

Each connection the front opens to the tap gets its own connection to the backend, and bytes
are copied unchanged both ways (half-closes too), so the application sees the front's
connections one to one. Meanwhile the record headers are decoded on both directions to
count what happened on the wire: connections and requests, request ids, BEGIN_REQUEST flags
(KEEP_CONN), the most requests in flight at once on one connection (multiplexing),
GET_VALUES and its answer, ABORT_REQUEST, END_REQUEST protocol statuses, padding, and which
side closed each connection first. A stream the decoder does not understand is still relayed;
the tap only stops decoding it. Standard library only.
"""
import os
import socket
import struct
import threading
import time

BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT = 1, 2, 3, 4, 5, 6
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
TYPE_NAMES = {1: "BEGIN_REQUEST", 2: "ABORT_REQUEST", 3: "END_REQUEST", 4: "PARAMS",
              5: "STDIN", 6: "STDOUT", 7: "STDERR", 8: "DATA", 9: "GET_VALUES",
              10: "GET_VALUES_RESULT", 11: "UNKNOWN_TYPE"}
KEEP_CONN = 1
CHUNK = 65536


def decode_pairs(buf):
    """Name-value pairs of a PARAMS / GET_VALUES body, as a list of (bytes, bytes)."""
    out, i, n = [], 0, len(buf)

    def length():
        nonlocal i
        if i >= n:
            raise ValueError("truncated")
        if buf[i] < 128:
            i += 1
            return buf[i - 1]
        if i + 4 > n:
            raise ValueError("truncated")
        v = struct.unpack_from(">I", buf, i)[0] & 0x7FFFFFFF
        i += 4
        return v
    while i < n:
        ln, lv = length(), length()
        if i + ln + lv > n:
            raise ValueError("truncated")
        out.append((bytes(buf[i:i + ln]), bytes(buf[i + ln:i + ln + lv])))
        i += ln + lv
    return out


def parse_addr(addr):
    """'unix:/p' or '/p' -> (AF_UNIX, '/p'); 'HOST:PORT' or '[v6]:PORT' -> (family, (h, p))."""
    if addr.startswith("unix:"):
        addr = addr[5:]
    if addr.startswith("/"):
        return socket.AF_UNIX, addr
    host, port = addr.rsplit(":", 1)
    if host.startswith("["):
        return socket.AF_INET6, (host[1:-1], int(port))
    return socket.AF_INET, (host or "127.0.0.1", int(port))


class Conn:
    """What was seen on one front connection."""

    def __init__(self, n):
        self.n = n
        self.lock = threading.Lock()
        self.in_flight = set()
        self.max_in_flight = 0
        self.requests = 0
        self.ids = []
        self.flags = []
        self.roles = []
        self.keep_conn_last = None  # the KEEP_CONN flag of the latest request
        self.closed_by = None       # "front" or "app": who sent EOF first
        self.idle_when_closed = None


class Direction:
    """Incremental record-header decoder for one direction of one connection."""

    def __init__(self, tap, conn, from_front):
        self.tap, self.conn, self.from_front = tap, conn, from_front
        self.buf = bytearray()
        self.skip = 0          # content+padding bytes still to pass over
        self.collect = None    # (type, id, content length, padding) being gathered whole
        self.broken = False
        self.params = {}       # request id -> PARAMS bytes so far (only when tracing)

    def feed(self, data):
        if self.broken:
            return
        try:
            self._feed(memoryview(data))
        except (ValueError, struct.error) as e:
            self.broken = True
            self.tap.note(f"decoder stopped on conn {self.conn.n} "
                          f"({'front' if self.from_front else 'app'} side): {e}")

    def _feed(self, data):
        i, n = 0, len(data)
        while i < n:
            if self.skip:
                k = min(self.skip, n - i)
                self.skip -= k
                i += k
                continue
            if self.collect:
                typ, rid, clen, plen = self.collect
                want = clen + plen - len(self.buf)
                k = min(want, n - i)
                self.buf += data[i:i + k]
                i += k
                if len(self.buf) == clen + plen:
                    self.collect = None
                    content = bytes(self.buf[:clen])
                    self.buf.clear()
                    self.record(typ, rid, clen, plen, content)
                continue
            k = min(8 - len(self.buf), n - i)
            self.buf += data[i:i + k]
            i += k
            if len(self.buf) < 8:
                continue
            ver, typ, rid, clen, plen = struct.unpack(">BBHHB", self.buf[:7])
            self.buf.clear()
            if ver != 1:
                raise ValueError(f"record version {ver}")
            if self.wants_content(typ):
                if clen + plen == 0:
                    self.record(typ, rid, clen, plen, b"")
                else:
                    self.collect = (typ, rid, clen, plen)
            else:
                self.record(typ, rid, clen, plen, None)
                self.skip = clen + plen

    def wants_content(self, typ):
        if typ in (BEGIN_REQUEST, END_REQUEST, GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE):
            return True
        return typ == PARAMS and (self.tap.first_params is None or self.tap.trace is not None)

    def record(self, typ, rid, clen, plen, content):
        tap, c = self.tap, self.conn
        if tap.trace:
            tap.trace_line(f"{time.monotonic():.6f} conn {c.n} "
                           f"{'>' if self.from_front else '<'} "
                           f"{TYPE_NAMES.get(typ, typ)} id {rid} len {clen} pad {plen}")
        with tap.lock:
            key = ("front " if self.from_front else "app ") + TYPE_NAMES.get(typ, f"type {typ}")
            tap.record_counts[key] = tap.record_counts.get(key, 0) + 1
            if plen:
                tap.padded.add("front" if self.from_front else "app")
            if self.from_front and typ == STDIN:
                tap.max_stdin_record = max(tap.max_stdin_record, clen)
        if self.from_front:
            if typ == BEGIN_REQUEST:
                role, flags = struct.unpack(">HB", content[:3])
                with c.lock:
                    c.requests += 1
                    c.ids.append(rid)
                    c.flags.append(flags)
                    c.roles.append(role)
                    c.keep_conn_last = bool(flags & KEEP_CONN)
                    c.in_flight.add(rid)
                    c.max_in_flight = max(c.max_in_flight, len(c.in_flight))
            elif typ == PARAMS and content is not None:
                if tap.trace:
                    self.params.setdefault(rid, bytearray()).extend(content)
                    if clen == 0:
                        q = dict(decode_pairs(bytes(self.params.pop(rid))))
                        tap.trace_line(f"    conn {c.n} id {rid}: {q.get(b'REQUEST_METHOD')} "
                                       f"QUERY_STRING={q.get(b'QUERY_STRING')}")
                with tap.lock:
                    if tap.first_params is None:
                        tap.params_buf += content
                        if clen == 0:
                            tap.first_params = decode_pairs(bytes(tap.params_buf))
            elif typ == GET_VALUES:
                with tap.lock:
                    tap.get_values.append([k.decode(errors="replace") for k, _ in
                                           decode_pairs(content)])
            elif typ == ABORT_REQUEST:
                with tap.lock:
                    tap.aborts += 1
        else:
            if typ == END_REQUEST:
                app_status, proto_status = struct.unpack(">IB", content[:5])
                with c.lock:
                    c.in_flight.discard(rid)
                with tap.lock:
                    tap.end_statuses[proto_status] = tap.end_statuses.get(proto_status, 0) + 1
            elif typ == GET_VALUES_RESULT:
                with tap.lock:
                    tap.get_values_results.append({k.decode(errors="replace"):
                                                   v.decode(errors="replace")
                                                   for k, v in decode_pairs(content)})


class WireTap:
    def __init__(self, listen, backend, trace=None):
        """trace: a file to write every record header to (one line each), or None."""
        self.listen_spec = listen
        self.backend = backend
        self.trace = open(trace, "w") if trace else None
        self.lock = threading.Lock()
        self.conns = []
        self.threads = []
        self.socks = []
        self.record_counts = {}
        self.padded = set()
        self.max_stdin_record = 0
        self.get_values = []
        self.get_values_results = []
        self.end_statuses = {}
        self.aborts = 0
        self.first_params = None
        self.params_buf = bytearray()
        self.notes = []
        self.stopping = False
        self.listener = None
        self.address = None

    def trace_line(self, text):
        with self.lock:
            self.trace.write(text + "\n")

    def note(self, text):
        with self.lock:
            if len(self.notes) < 20:
                self.notes.append(text)

    def start(self):
        fam, where = parse_addr(self.listen_spec)
        s = socket.socket(fam, socket.SOCK_STREAM)
        if fam == socket.AF_UNIX:
            if os.path.exists(where):
                os.unlink(where)
            s.bind(where)
            os.chmod(where, 0o666)  # web server workers may run as another user
            self.address = where
        else:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(where)
            self.address = f"{where[0]}:{s.getsockname()[1]}"
        s.listen(1024)
        s.settimeout(0.2)
        self.listener = s
        t = threading.Thread(target=self._accept_loop, name="wiretap-accept", daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def _accept_loop(self):
        while not self.stopping:
            try:
                front, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            front.settimeout(None)
            fam, where = parse_addr(self.backend)
            app = socket.socket(fam, socket.SOCK_STREAM)
            try:
                app.settimeout(10)
                app.connect(where)
                app.settimeout(None)
            except OSError as e:
                self.note(f"cannot connect to the backend {self.backend}: {e}")
                front.close()
                app.close()
                continue
            for s in (front, app):
                if s.family != socket.AF_UNIX:
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                c = Conn(len(self.conns) + 1)
                self.conns.append(c)
                self.socks += [front, app]
            state = {"open": 2}
            for src, dst, from_front in ((front, app, True), (app, front, False)):
                t = threading.Thread(target=self._pump, daemon=True,
                                     args=(src, dst, Direction(self, c, from_front), c, state))
                t.start()

    def _pump(self, src, dst, decoder, c, state):
        side = "front" if decoder.from_front else "app"
        other = "app" if decoder.from_front else "front"
        while True:
            try:
                data = src.recv(CHUNK)
            except OSError:
                data = b""
            if not data:
                break
            decoder.feed(data)
            try:
                dst.sendall(data)
            except OSError:
                side = other  # the other end went away first
                break
        with c.lock:
            if c.closed_by is None:
                c.closed_by = side
                c.idle_when_closed = not c.in_flight
            state["open"] -= 1
            last = state["open"] == 0
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if last:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def stop(self):
        self.stopping = True
        if self.listener:
            try:
                self.listener.close()
            except OSError:
                pass
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:
            t.join(2)
        if self.address and self.address.startswith("/") and os.path.exists(self.address):
            os.unlink(self.address)
        if self.trace:
            with self.lock:
                self.trace.close()

    # ---------------------------------------------------------------- what was seen

    def stats(self):
        with self.lock:
            conns = list(self.conns)
        ids, flags, per_conn, in_flight = set(), set(), [], 0
        app_closed_kept = 0
        closed_by = {"front": 0, "app": 0, "open": 0}
        for c in conns:
            with c.lock:
                ids.update(c.ids)
                flags.update(c.flags)
                per_conn.append(c.requests)
                in_flight = max(in_flight, c.max_in_flight)
                closed_by[c.closed_by or "open"] += 1
                if c.closed_by == "app" and c.keep_conn_last and c.idle_when_closed:
                    app_closed_kept += 1
        ids_sorted = sorted(ids)
        return {
            "connections": len(conns),
            "requests": sum(per_conn),
            "max_requests_per_conn": max(per_conn, default=0),
            "max_in_flight": in_flight,
            "request_ids": ids_sorted,
            "begin_flags": sorted(flags),
            "closed_by": closed_by,
            "app_closed_kept_conns": app_closed_kept,
            "get_values": list(self.get_values),
            "get_values_results": list(self.get_values_results),
            "end_statuses": dict(self.end_statuses),
            "aborts": self.aborts,
            "padding_from": sorted(self.padded),
            "max_stdin_record": self.max_stdin_record,
            "first_params": self.first_params or [],
            "notes": list(self.notes),
        }

    def summary(self, st=None):
        st = st or self.stats()
        ids = st["request_ids"]
        if len(ids) > 6:
            ids_txt = f"{len(ids)} distinct ids {ids[0]}..{ids[-1]}"
        else:
            ids_txt = "ids " + ",".join(map(str, ids))
        if ids and all(i % 2 for i in ids) and len(ids) > 1:
            ids_txt += " (all odd)"
        gv = "GET_VALUES " + ("; ".join(",".join(x) for x in st["get_values"][:1]) + " -> " +
                              "; ".join(",".join(f"{k}={v}" for k, v in r.items())
                                        for r in st["get_values_results"][:1])
                              if st["get_values"] else "never sent")
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(st["end_statuses"].items()))
        return (f"{st['connections']} backend conns, {st['requests']} requests, "
                f"max {st['max_requests_per_conn']} requests/conn, "
                f"max {st['max_in_flight']} in flight on one conn, {ids_txt}, "
                f"BEGIN_REQUEST flags {st['begin_flags']}, {gv}, "
                f"END_REQUEST protocolStatus {{{statuses}}}, ABORTs {st['aborts']}, "
                f"closed first by front {st['closed_by']['front']} / app "
                f"{st['closed_by']['app']} / still open {st['closed_by']['open']}, "
                f"padding from {','.join(st['padding_from']) or 'nobody'}, "
                f"largest STDIN record {st['max_stdin_record']}")
