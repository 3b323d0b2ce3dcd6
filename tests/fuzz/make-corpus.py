#!/usr/bin/env python3
"""make-corpus.py - writes the seed corpora of the codec fuzz targets.

    tests/fuzz/make-corpus.py [OUTDIR]      (default: tests/fuzz/corpus)

Seeds are small, valid FastCGI traffic (requests of every role, GET_VALUES, multiplexed
requests, pairs split inside their 4-byte lengths, padding) plus some hostile inputs
(bad version, ids 0, duplicate BEGIN, huge pair lengths, truncations). Input layouts:

  fuzz_reader: byte 0 = split size, then the stream
  fuzz_srv:    byte 0 = config (limits, behaviour), byte 1 = split size, then the stream
  fuzz_pairs:  a name-value pair body

Deterministic: running it again writes the same files. Stdlib only.
"""
import os
import struct
import sys

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR, DATA = 1, 2, 3, 4, 5, 6, 7, 8
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
RESPONDER, AUTHORIZER, FILTER = 1, 2, 3
KEEP_CONN = 1


def rec(rtype, rid, content=b"", pad=None, version=1):
    if pad is None:
        pad = -len(content) & 7
    return struct.pack(">BBHHBB", version, rtype, rid, len(content), pad, 0) + content + b"\0" * pad


def begin(rid, role=RESPONDER, flags=KEEP_CONN):
    return rec(BEGIN, rid, struct.pack(">HB5x", role, flags))


def end(rid, app=0, status=0):
    return rec(END, rid, struct.pack(">IB3x", app, status))


def plen(n, force4=False):
    if n < 128 and not force4:
        return bytes([n])
    return struct.pack(">I", n | 0x80000000)


def pair(name, value, force4=False):
    if isinstance(name, str):
        name = name.encode()
    if isinstance(value, str):
        value = value.encode()
    return plen(len(name), force4) + plen(len(value), force4) + name + value


def stream(rtype, rid, data, chunk=65528, pad=None):
    out = b""
    for i in range(0, len(data), chunk):
        out += rec(rtype, rid, data[i:i + chunk], pad)
    return out + rec(rtype, rid)


def cgi_params(method="GET", query="a=1&b=2", body_len=0, extra=()):
    ps = [("GATEWAY_INTERFACE", "CGI/1.1"), ("REQUEST_METHOD", method),
          ("SCRIPT_NAME", "/app"), ("QUERY_STRING", query), ("SERVER_PROTOCOL", "HTTP/1.1"),
          ("CONTENT_LENGTH", str(body_len) if body_len else ""),
          ("HTTP_HOST", "localhost")]
    ps.extend(extra)
    return b"".join(pair(n, v) for n, v in ps)


def request(rid, role=RESPONDER, flags=KEEP_CONN, params=None, body=b"", data=None,
            params_chunk=65528, body_chunk=65528):
    if params is None:
        params = cgi_params("POST" if body else "GET", body_len=len(body))
    out = begin(rid, role, flags) + stream(PARAMS, rid, params, params_chunk)
    if role != AUTHORIZER:
        out += stream(STDIN, rid, body, body_chunk)
    if data is not None:
        out += stream(DATA, rid, data)
    return out


def get_values(*names, rid=0):
    return rec(GET_VALUES, rid, b"".join(pair(n, "") for n in names))


def split_inside_length():
    """A PARAMS stream cut inside a 4-byte value length and inside a name."""
    body = pair("HTTP_X_LONG", "v" * 300) + pair("N" * 200, "x") + pair("A", "")
    cut1 = 1 + 2  # name length byte, then 2 of the 4 value-length bytes
    cut2 = len(pair("HTTP_X_LONG", "v" * 300)) + 2
    out = begin(1)
    out += rec(PARAMS, 1, body[:cut1], 5) + rec(PARAMS, 1, body[cut1:cut2], 0)
    out += rec(PARAMS, 1, body[cut2:], 255) + rec(PARAMS, 1)
    return out + stream(STDIN, 1, b"")


def traffic():
    """Named byte streams, valid and hostile."""
    t = {}
    t["responder_get"] = request(1)
    t["responder_post"] = request(1, params_chunk=17, body=b"hello=world&x=" + b"y" * 200,
                                  body_chunk=64)
    t["responder_no_keep"] = request(1, flags=0)
    t["authorizer"] = request(2, AUTHORIZER, params=cgi_params(extra=[("REMOTE_USER", "bob")]))
    t["filter"] = request(3, FILTER, params=cgi_params(
        extra=[("FCGI_DATA_LAST_MOD", "1700000000"), ("FCGI_DATA_LENGTH", "11")]),
        body=b"in", data=b"hello world")
    t["get_values"] = get_values("FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS", "X")
    t["get_values_then_request"] = get_values("FCGI_MPXS_CONNS") + request(1)
    t["unknown_mgmt"] = rec(12, 0, b"abc") + rec(0, 0) + rec(255, 0, b"z" * 9, 255)
    # Multiplexed: three requests with interleaved records (as HAProxy mpxs-conns does).
    a, b, c = begin(1), begin(3), begin(5, FILTER)
    t["multiplexed"] = (a + b + rec(PARAMS, 3, pair("A", "3")) + c + rec(PARAMS, 1, pair("A", "1"))
                        + rec(PARAMS, 1) + rec(PARAMS, 5) + rec(PARAMS, 3)
                        + rec(STDIN, 3, b"!three") + rec(STDIN, 1, b"one") + rec(ABORT, 5)
                        + rec(STDIN, 1) + rec(STDIN, 3) + rec(STDIN, 5) + rec(DATA, 5, b"d")
                        + rec(DATA, 5))
    t["split_inside_length"] = split_inside_length()
    t["four_byte_lengths"] = request(1, params=pair("A", "b", True) + pair("K" * 130, "V" * 129))
    t["padding_max"] = (begin(1) + rec(PARAMS, 1, pair("P", "1"), 255) + rec(PARAMS, 1, b"", 255)
                        + rec(STDIN, 1, b"x", 255) + rec(STDIN, 1, b"", 255))
    t["abort_early"] = begin(7) + rec(ABORT, 7) + rec(PARAMS, 7) + rec(ABORT, 9)
    t["keepalive_three"] = request(1) + request(1) + request(2, body=b"!stream")
    t["unknown_role"] = begin(4, 9) + rec(PARAMS, 4) + rec(STDIN, 4) + request(4)
    t["records_before_begin"] = rec(STDIN, 8, b"x") + rec(PARAMS, 8) + rec(DATA, 9) + request(8)
    # Hostile.
    t["bad_version"] = begin(1) + rec(PARAMS, 1, version=2)
    t["id_zero_begin"] = begin(0)
    t["id_zero_stdin"] = rec(STDIN, 0, b"x")
    t["duplicate_begin"] = begin(1) + rec(PARAMS, 1) + begin(1)
    t["huge_pair"] = begin(1) + rec(PARAMS, 1, b"\xff\xff\xff\xff\x7f\xff\xff\xff" + b"A" * 32)
    t["huge_pair_end"] = begin(1) + rec(PARAMS, 1, b"\x01\xff\xff\xff\xff" + b"A" * 8) + rec(PARAMS, 1)
    t["truncated_params"] = begin(1) + rec(PARAMS, 1, pair("NAME", "value")[:-2]) + rec(PARAMS, 1)
    t["begin_short_body"] = rec(BEGIN, 1, b"\0\1\1\0")
    t["begin_long_body"] = rec(BEGIN, 1, b"\0\1\1\0\0\0\0\0\0\0\0\0")
    t["end_request_inbound"] = end(1) + rec(STDOUT, 1, b"x") + rec(GET_VALUES_RESULT, 0)
    t["truncated_header"] = begin(1)[:5]
    t["get_values_many"] = rec(GET_VALUES, 0, pair("FCGI_MAX_REQS", "") * 200)
    t["get_values_bad_pairs"] = rec(GET_VALUES, 0, b"\x0e\x80\x00" + b"FCGI_MAX_CONNS")
    t["empty_everything"] = (rec(GET_VALUES, 0) + begin(1, FILTER) + rec(PARAMS, 1) + rec(STDIN, 1)
                             + rec(DATA, 1) + begin(2, AUTHORIZER) + rec(PARAMS, 2))
    t["many_begins"] = b"".join(begin(i) for i in range(1, 40))
    return t


def pair_bodies():
    p = {}
    p["simple"] = pair("SCRIPT_NAME", "/x") + pair("EMPTY", "")
    p["cgi"] = cgi_params("POST", body_len=12)
    p["len127_128"] = pair("n" * 127, "v" * 128) + pair("n" * 128, "v" * 127)
    p["force4"] = pair("A", "B", True) + pair("", "", True)
    p["nul_bytes"] = pair(b"N\0UL", b"v\0a\0")
    p["long_value"] = pair("HTTP_COOKIE", "c" * 3000)
    p["many"] = b"".join(pair("N%d" % i, str(i)) for i in range(100))
    p["truncated_len"] = pair("NAME", "v" * 200)[:3]
    p["truncated_value"] = pair("NAME", "value")[:-1]
    p["max_len"] = b"\x7f\xff\xff\xff" * 2 + b"\xff\xff\xff\xff\xff\xff\xff\xff"
    p["top_bit_only"] = b"\x80\x00\x00\x00\x80\x00\x00\x01x"
    p["empty"] = b""
    return p


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus")
    t = traffic()
    corpora = {"fuzz_reader": {}, "fuzz_srv": {}, "fuzz_pairs": pair_bodies()}
    splits = [0, 1, 3, 8, 13, 200]
    configs = [0x07, 0x1c, 0x7f, 0x84, 0xe7, 0x44]
    for i, (name, data) in enumerate(sorted(t.items())):
        corpora["fuzz_reader"][name] = bytes([splits[i % len(splits)]]) + data
        corpora["fuzz_srv"][name] = bytes([configs[i % len(configs)], splits[(i + 2) % len(splits)]]) + data
    # The params bodies of the traffic are pair seeds too.
    corpora["fuzz_pairs"]["split_inside_length_body"] = pair("HTTP_X_LONG", "v" * 300) + pair("N" * 200, "x")
    for target, seeds in corpora.items():
        d = os.path.join(outdir, target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print("%s: %d seeds" % (target, len(seeds)))


if __name__ == "__main__":
    main()
