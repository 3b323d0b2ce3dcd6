#!/usr/bin/env python3
"""`fcgikit gateway` in front of real PHP, compared with nginx; large bodies; h2load.

1. $_SERVER field by field: php-fpm (static pool, Unix socket) behind both nginx — configured
   like a Debian PHP site: /etc/nginx/fastcgi_params, SCRIPT_FILENAME, and the
   fastcgi_split_path_info / PATH_INFO lines of /etc/nginx/snippets/fastcgi-php.conf — and
   the gateway (--root the same document root). The same requests go through both and every
   key of json_encode($_SERVER) must match, except the differences listed in DIFFERENCES,
   each with its reason.
2. 8 MiB both ways, byte-identical (sha256), through the gateway: php-fpm, php-cgi under
   `fcgikit pm`, a libfcgi C program (bench/peers/libfcgi_echo.c) and build/examples/echo;
   uploads with Content-Length and chunked.
3. h2load --h1 -n 2000 -c 16 against the gateway over echo and over php-fpm: every request
   succeeds with a 2xx.

A peer that is not installed skips its tests. Every process is started here and stopped by
pid; every wait is bounded. Prints TAP.

  tests/gateway/php.py [-v] [NAME...]        (names select tests by substring: server,
                                              end, big, h2load)
  FCGIKIT_BUILD=build-san tests/gateway/php.py   (against the sanitizer build)
"""
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "peers"))
import peers  # noqa: E402

BUILD = os.path.abspath(os.environ.get("FCGIKIT_BUILD", os.path.join(ROOT, "build")))
FCGIKIT = os.path.join(BUILD, "fcgikit")
ECHO = os.path.join(BUILD, "examples", "echo")
PHP_FPM = shutil.which("php-fpm8.2") or shutil.which("php-fpm")
PHP_CGI = shutil.which("php-cgi8.2") or shutil.which("php-cgi")
H2LOAD = shutil.which("h2load")
CURL = shutil.which("curl") or "/usr/bin/curl"
FASTCGI_PARAMS = "/etc/nginx/fastcgi_params"
LIBFCGI_SRC = os.path.join(ROOT, "bench", "peers", "libfcgi_echo.c")
VERBOSE = "-v" in sys.argv
SELECT = [a for a in sys.argv[1:] if not a.startswith("-")]
BIG = 8 << 20

results = []
procs = []     # every process started here, stopped at the end by pid
gateways = []  # their logs are searched for sanitizer reports


tap = peers.tap_printer(results, 40)


def run(args, timeout=60, input_bytes=None):
    if VERBOSE:
        print("# $ " + " ".join(args), flush=True)
    try:
        p = subprocess.run(args, input=input_bytes, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        return -999, b"", "timed out after %ss" % timeout


def read_file(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def start(args, log, env=None):
    with open(log, "ab") as lf:
        p = subprocess.Popen(args, stdout=lf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env)
    procs.append(p)
    return p


def start_unix(name, args, sock, tmp, env=None):
    """Starts a backend listening on the Unix socket sock; waits up to 15 s for it."""
    log = os.path.join(tmp, name + ".log")
    p = start(args, log, env)
    if not peers.wait_for(lambda: p.poll() is not None or peers.unix_open(sock), 15):
        peers.stop_process(p)
        raise RuntimeError("%s: not accepting after 15 s\n%s" % (name, read_file(log)[-1500:]))
    if p.poll() is not None:
        raise RuntimeError("%s exited (%s)\n%s" % (name, p.returncode, read_file(log)[-1500:]))
    return p


class Gateway:
    def __init__(self, tmp, name, backend, extra=()):
        self.port = peers.free_port()
        self.log = os.path.join(tmp, name + ".err")
        args = [FCGIKIT, "gateway", "--listen", "127.0.0.1:%d" % self.port, "--workers", "1",
                "--backend", backend, "--access-log", os.path.join(tmp, name + ".access")]
        self.proc = start(args + list(extra), self.log)
        if not peers.wait_for(lambda: self.proc.poll() is not None
                              or peers.port_open(self.port), 10) or self.proc.poll() is not None:
            peers.stop_process(self.proc)
            raise RuntimeError("gateway %s did not come up: %s" % (name, read_file(self.log)))
        self.url = "http://127.0.0.1:%d" % self.port
        gateways.append(self)

    def stop(self):
        peers.stop_process(self.proc, 10)
        return self.proc.returncode


# --- PHP scripts --------------------------------------------------------------------------

PHP_INFO = "<?php header('Content-Type: application/json'); echo json_encode($_SERVER);\n"
PHP_ECHO = ("<?php header('Content-Type: application/octet-stream');\n"
            "$in = fopen('php://input', 'rb'); $out = fopen('php://output', 'wb');\n"
            "stream_copy_to_stream($in, $out);\n")
# 8 MiB of deterministic, non-repeating bytes: md5(0) md5(1) ... (16 bytes each).
PHP_BIG = ("<?php header('Content-Type: application/octet-stream');\n"
           "for ($i = 0; $i < %d; $i++) echo md5((string)$i, true);\n" % (BIG // 16))
PHP_HELLO = "<?php echo 'hello ', $_GET['x'] ?? '', \"\\n\";\n"


def big_expected():
    h = hashlib.sha256()
    for i in range(BIG // 16):
        h.update(hashlib.md5(str(i).encode()).digest())
    return h.hexdigest()


def make_root(tmp):
    www = os.path.join(tmp, "www")
    for d in (www, os.path.join(www, "a b")):
        os.makedirs(d, exist_ok=True)
    files = {"info.php": PHP_INFO, "a b/info.php": PHP_INFO, "echo.php": PHP_ECHO,
             "big.php": PHP_BIG, "index.php": PHP_INFO, "hello.php": PHP_HELLO}
    for name, text in files.items():
        with open(os.path.join(www, name), "w") as f:
            f.write(text)
    return www


def start_fpm(tmp, children=4):
    sock = os.path.join(tmp, "fpm.sock")
    conf = os.path.join(tmp, "php-fpm.conf")
    root = os.geteuid() == 0
    with open(conf, "w") as f:
        f.write("[global]\npid = %s/fpm.pid\nerror_log = %s/fpm-error.log\ndaemonize = no\n"
                "[www]\n%slisten = %s\npm = static\npm.max_children = %d\n"
                "php_admin_value[post_max_size] = 64M\n"
                "php_admin_value[memory_limit] = 256M\n"
                % (tmp, tmp, "user = root\ngroup = root\n" if root else "", sock, children))
    args = [PHP_FPM, "-F", "-n", "-y", conf, "-p", tmp] + (["-R"] if root else [])
    start_unix("php-fpm", args, sock, tmp)
    return sock


class PhpSite(peers.Nginx):
    """nginx set up like a typical Debian PHP site: the location and the lines of
    /etc/nginx/snippets/fastcgi-php.conf (with its `include fastcgi.conf` spelled out as
    fastcgi_params plus SCRIPT_FILENAME), the root being the gateway's --root."""
    name = "nginx-php"

    def __init__(self, workdir, backend, www):
        super().__init__(workdir, backend)
        self.www = www

    def command(self):
        d = self.dir
        conf = self.write("nginx.conf", f"""user root;
worker_processes 1;
pid {d}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    fastcgi_temp_path {d}/fastcgi;
    proxy_temp_path {d}/proxy;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 16m;
    server {{
        listen 127.0.0.1:{self.port};
        server_name localhost;
        root {self.www};
        index index.php;
        location ~ [^/]\\.php(/|$) {{
            fastcgi_split_path_info ^(.+?\\.php)(/.*)$;
            try_files $fastcgi_script_name =404;
            set $path_info $fastcgi_path_info;
            fastcgi_param PATH_INFO $path_info;
            fastcgi_index index.php;
            include {FASTCGI_PARAMS};
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_pass unix:{self.backend};
        }}
    }}
}}
""")
        return [self.binary, "-p", d + "/", "-c", conf,
                "-g", f"daemon off; master_process on; error_log {d}/error.log warn;"]


# --- 1. $_SERVER vs nginx ------------------------------------------------------------------

# Keys that legitimately differ between nginx and the gateway, with the reason. Each entry:
# key -> (reason, check) where check(nginx_value, gateway_value, case) says whether the two
# values are the expected pair (None: the key is absent on that side).
def _strip_port(h):
    return re.sub(r":\d+$", "", h or "").lower()


DIFFERENCES = {
    "REMOTE_PORT": ("a different client connection",
                    lambda n, g, c: n is not None and g is not None),
    "SERVER_PORT": ("each front listens on its own port",
                    lambda n, g, c: n == str(c["nginx_port"]) and g == str(c["gw_port"])),
    "SERVER_SOFTWARE": ("the front's own name",
                        lambda n, g, c: n.startswith("nginx/") and g.startswith("fcgikit/")),
    "REQUEST_TIME": ("PHP's clock", lambda n, g, c: True),
    "REQUEST_TIME_FLOAT": ("PHP's clock", lambda n, g, c: True),
    "HTTP_HOST": ("Debian's fastcgi_params sends nginx's $host (no port, lower case) instead "
                  "of the header; the gateway passes the Host header as the client sent it",
                  lambda n, g, c: g == c["host"] and n == _strip_port(c["host"])),
    "SERVER_NAME": ("nginx sends its configured server_name; the gateway has no virtual "
                    "hosts and sends the Host header without its port",
                    lambda n, g, c: n == "localhost" and g == re.sub(r":\d+$", "", c["host"])),
    "REMOTE_USER": ("fastcgi_params sends nginx's $remote_user: the user name of an "
                    "Authorization: Basic header, unverified when no auth_basic is set up, "
                    "else empty; the gateway does no HTTP authentication and, as RFC 3875 "
                    "4.1.11 says, leaves it out (PHP still sees HTTP_AUTHORIZATION)",
                    lambda n, g, c: g is None and
                    n == ("user" if "HTTP_AUTHORIZATION" in c["gw"] else "")),
    "HTTP_CONTENT_TYPE": ("nginx passes every header on, Content-Type also as HTTP_*; the "
                          "gateway sends it once, as CONTENT_TYPE (RFC 3875 4.1.18: headers "
                          "already carried by other meta-variables are not duplicated; "
                          "Apache's mod_proxy_fcgi does the same)",
                          lambda n, g, c: g is None and n == c["gw"].get("CONTENT_TYPE")),
    "HTTP_CONTENT_LENGTH": ("likewise: only CONTENT_LENGTH from the gateway",
                            lambda n, g, c: g is None and n == c["gw"].get("CONTENT_LENGTH")),
    "DOCUMENT_URI": ("Debian's snippet runs try_files $fastcgi_script_name, which rewrites "
                     "nginx's $uri (hence $document_uri) to the script (nginx ticket 321); "
                     "the gateway sends the normalised path, as nginx does without try_files",
                     lambda n, g, c: n == c["gw"]["SCRIPT_NAME"] and
                     g == c["gw"]["SCRIPT_NAME"] + c["gw"].get("PATH_INFO", "")),
    "HTTP_TRANSFER_ENCODING": ("nginx passes Transfer-Encoding: chunked on although the "
                               "application reads a plain body; the gateway removes it",
                               lambda n, g, c: n == "chunked" and g is None),
}

# Repeated header lines: nginx before 1.23.0 sends one param per line and PHP keeps the last;
# the gateway (like nginx >= 1.23) joins them with ", " (Cookie: "; ").
NGINX_JOINS = None


def nginx_joins_repeats():
    rc, out, err = run([peers.Nginx.binary, "-v"], timeout=10)
    m = re.search(r"nginx/(\d+)\.(\d+)", err + out.decode("latin-1"))
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (1, 23)


def repeated_check(joined, last):
    def check(n, g, c):
        return g == joined and n == (joined if NGINX_JOINS else last)
    return check


def http_raw(port, payload, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(payload)
        buf = b""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                d = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not d:
                break
            buf += d
        return buf
    finally:
        s.close()


def server_of(resp):
    """$_SERVER from a raw HTTP response (Content-Length or chunked framing)."""
    head, _, body = resp.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        out = b""
        while body:
            line, _, body = body.partition(b"\r\n")
            size = int(line.split(b";")[0] or b"0", 16)
            if not size:
                break
            out += body[:size]
            body = body[size + 2:]
        body = out
    return json.loads(body)


# (name, request bytes with {host}, extra differences {key: (reason, check)})
SERVER_CASES = [
    ("GET with a query", b"GET /info.php?a=1&b=%20x HTTP/1.1\r\nHost: {host}\r\n"
     b"User-Agent: t/1\r\nAccept: */*\r\nConnection: close\r\n\r\n", {}),
    ("POST with a form body", b"POST /info.php?q=2 HTTP/1.1\r\nHost: {host}\r\n"
     b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n"
     b"Connection: close\r\n\r\nx=1&y=2", {}),
    ("PATH_INFO", b"GET /info.php/a/b?x=1 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
     {}),
    ("percent-encoded path", b"GET /a%20b/info.php/c%2Fd/%7Ee?x=%41 HTTP/1.1\r\nHost: {host}\r\n"
     b"Connection: close\r\n\r\n", {}),
    ("dot segments and //", b"GET /x/..//a%20b/./info.php HTTP/1.1\r\nHost: {host}\r\n"
     b"Connection: close\r\n\r\n", {}),
    ("repeated headers and Cookie", b"GET /info.php HTTP/1.1\r\nHost: {host}\r\n"
     b"X-Multi: one\r\nAccept: text/html\r\nX-Multi: two\r\nCookie: a=1\r\nCookie: b=2\r\n"
     b"Accept-Language: en\r\nConnection: close\r\n\r\n",
     {"HTTP_X_MULTI": ("repeated header lines: nginx < 1.23 sends one param each and PHP "
                       "keeps the last; the gateway joins them (RFC 9110 5.3)",
                       repeated_check("one, two", "two")),
      "HTTP_COOKIE": ("repeated Cookie lines: nginx < 1.23 sends one param each and PHP "
                      "keeps the last; the gateway joins them with \"; \" (RFC 9113 8.2.3)",
                      repeated_check("a=1; b=2", "b=2"))}),
    ("HTTP/1.0", b"GET /info.php?v=10 HTTP/1.0\r\nHost: {host}\r\n\r\n", {}),
    ("chunked POST", b"POST /info.php HTTP/1.1\r\nHost: {host}\r\n"
     b"Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
     b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", {}),
    ("empty query, empty header value, '_' in a name, Proxy", b"DELETE /info.php? HTTP/1.1\r\n"
     b"Host: {host}\r\nX-Empty:\r\nX_Under: 1\r\nProxy: http://evil:3128\r\n"
     b"Connection: close\r\n\r\n", {}),
    ("Authorization: Basic", b"GET /info.php HTTP/1.1\r\nHost: {host}\r\n"
     b"Authorization: Basic dXNlcjpwdw==\r\nConnection: close\r\n\r\n", {}),
    ("directory index", b"GET /?i=1 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
     {"DOCUMENT_URI": ("nginx's `index` directive redirects internally to /index.php; the "
                       "gateway appends the index to SCRIPT_NAME only and keeps the path",
                       lambda n, g, c: n == "/index.php" and g == "/")}),
    ("HTTP/1.0 without Host", b"GET /info.php HTTP/1.0\r\n\r\n",
     {"HTTP_HOST": ("no Host header: nginx's $host falls back to its server_name; the "
                    "gateway sends no HTTP_HOST for a header that was not sent",
                    lambda n, g, c: n == "localhost" and g is None),
      "SERVER_NAME": ("no Host header: nginx sends its server_name, the gateway the local "
                      "address the client connected to",
                      lambda n, g, c: n == "localhost" and g == "127.0.0.1")}),
    # The target's authority wins over Host (RFC 9112 3.2.2), REQUEST_URI is a path.
    ("absolute-form target", b"GET http://Example.com/info.php?z=1 HTTP/1.1\r\n"
     b"Host: {host}\r\nConnection: close\r\n\r\n", {}),
    ("upper-case Host and a second .php segment", b"GET /info.php/x.php/y HTTP/1.1\r\n"
     b"Host: {host}\r\nConnection: close\r\n\r\n", {}),
]


def compare_server(nginx_s, gw_s, ctx, extra):
    """The lines of a diff: keys missing, extra or different beyond the listed ones."""
    bad = []
    for k in sorted(set(nginx_s) | set(gw_s)):
        n, g = nginx_s.get(k), gw_s.get(k)
        if k in extra or k in DIFFERENCES:
            reason, check = extra.get(k) or DIFFERENCES[k]
            try:
                ok = (n is None and g is None) or check(n, g, ctx)
            except Exception:  # a value of an unexpected type
                ok = False
            if not ok:
                bad.append("%s: listed difference (%s) but nginx=%r gateway=%r"
                           % (k, reason, n, g))
        elif k not in gw_s:
            bad.append("%s: missing from the gateway (nginx=%r)" % (k, n))
        elif k not in nginx_s:
            bad.append("%s: only from the gateway (%r)" % (k, g))
        elif n != g:
            bad.append("%s: nginx=%r gateway=%r" % (k, n, g))
    return bad


def t_server(tmp, www, fpm_sock):
    global NGINX_JOINS
    name = "$_SERVER vs nginx"
    if not peers.Nginx.available() or not os.path.exists(FASTCGI_PARAMS):
        tap(True, name, skip="nginx (with /etc/nginx/fastcgi_params) not installed")
        return
    NGINX_JOINS = nginx_joins_repeats()
    nginx = PhpSite(tmp, fpm_sock, www).start()
    procs.append(nginx.proc)
    g = Gateway(tmp, "gw-server", "unix:" + fpm_sock, ["--root", www])
    try:
        for cname, req, extra in SERVER_CASES:
            sides, hosts = {}, {}
            for side, port in (("nginx", nginx.port), ("gateway", g.port)):
                host = ("LocalHost:%d" if "upper-case Host" in cname else "127.0.0.1:%d") % port
                hosts[side] = host
                raw = http_raw(port, req.replace(b"{host}", host.encode()))
                try:
                    sides[side] = server_of(raw)
                except (ValueError, IndexError):
                    sides[side] = None
                    sides[side + "_raw"] = raw[:600]
            if sides["nginx"] is None or sides["gateway"] is None:
                tap(False, "%s: %s" % (name, cname),
                    "no JSON: nginx=%r gateway=%r\n%s" % (sides.get("nginx_raw"),
                                                         sides.get("gateway_raw"),
                                                         nginx.log_tail()))
                continue
            # the Host header sent to the gateway (nginx got the same with its own port)
            ctx = {"nginx_port": nginx.port, "gw_port": g.port,
                   "host": "Example.com" if "absolute" in cname else hosts["gateway"],
                   "gw": sides["gateway"]}
            bad = compare_server(sides["nginx"], sides["gateway"], ctx, extra)
            tap(not bad, "%s: %s (%d keys)" % (name, cname, len(sides["gateway"])),
                "\n".join(bad))
    finally:
        g.stop()
        nginx.stop()
    # The list is the test's contract: print it so that a reader of the log sees it.
    for k, (reason, _) in sorted(DIFFERENCES.items()):
        print("# documented difference %s: %s" % (k, reason))
    print("# documented difference, SCRIPT_NAME/PATH_INFO: both split after the first "
          "'.php' segment (Debian's snippet is non-greedy, ^(.+?\\.php)(/.*)$; nginx's "
          "documentation example, greedy, would take the last)")


# --- 2. 8 MiB both ways --------------------------------------------------------------------

def curl_to_file(args, out, timeout=60):
    rc, code, err = run([CURL, "-sS", "--max-time", str(timeout), "-o", out,
                         "-w", "%{http_code}"] + args, timeout=timeout + 5)
    return rc, code.decode("latin-1"), err


def sha256_file(path):
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def big_round_trip(g, tmp, label, path, upload, up_sha, download_sha=None, download_path=None):
    out = os.path.join(tmp, "out.bin")
    for mode, hdrs in (("Content-Length", ["--data-binary", "@" + upload]),
                       ("chunked", ["-H", "Transfer-Encoding: chunked", "-T", upload,
                                    "-X", "POST"])):
        if os.path.exists(out):
            os.unlink(out)
        rc, code, err = curl_to_file(["-H", "Content-Type: application/octet-stream"] + hdrs
                                     + [g.url + path], out)
        got = sha256_file(out)
        tap(rc == 0 and code == "200" and got == up_sha,
            "8 MiB upload echoed byte-identical, %s: %s" % (mode, label),
            "rc=%s status=%s size=%s sha=%s want=%s %s\n%s"
            % (rc, code, os.path.getsize(out) if os.path.exists(out) else None, got, up_sha,
               err, read_file(g.log)[-800:]))
    if download_path:
        if os.path.exists(out):
            os.unlink(out)
        rc, code, err = curl_to_file([g.url + download_path], out)
        got = sha256_file(out)
        tap(rc == 0 and code == "200" and got == download_sha,
            "8 MiB download byte-identical: %s" % label,
            "rc=%s status=%s size=%s sha=%s want=%s %s\n%s"
            % (rc, code, os.path.getsize(out) if os.path.exists(out) else None, got,
               download_sha, err, read_file(g.log)[-800:]))


def t_big(tmp, www, fpm_sock):
    upload = os.path.join(tmp, "upload.bin")
    data = hashlib.sha256(b"seed").digest()
    with open(upload, "wb") as f:
        # deterministic, non-repeating: blocks of sha256 chained over a counter
        blk = bytearray()
        i = 0
        while len(blk) < BIG:
            blk += hashlib.sha256(data + i.to_bytes(4, "big")).digest()
            i += 1
        f.write(bytes(blk[:BIG]))
    up_sha = sha256_file(upload)
    down_sha = big_expected()
    gw_opts = ["--root", www, "--max-body", "16M"]

    # php-fpm
    if fpm_sock:
        g = Gateway(tmp, "gw-big-fpm", "unix:" + fpm_sock, gw_opts + ["--backend-conns", "4"])
        try:
            big_round_trip(g, tmp, "php-fpm", "/echo.php", upload, up_sha, down_sha, "/big.php")
        finally:
            g.stop()
    else:
        tap(True, "8 MiB both ways: php-fpm", skip="php-fpm8.2 not installed")

    # php-cgi under fcgikit pm
    if PHP_CGI:
        sock = os.path.join(tmp, "pm-php.sock")
        p = start_unix("pm-php-cgi", [FCGIKIT, "pm", "--listen", "unix:" + sock, "--workers", "2",
                                      "--", PHP_CGI, "-d", "post_max_size=64M",
                                      "-d", "memory_limit=256M"], sock, tmp)
        g = Gateway(tmp, "gw-big-pm", "unix:" + sock, gw_opts + ["--backend-conns", "2"])
        try:
            big_round_trip(g, tmp, "php-cgi under fcgikit pm", "/echo.php", upload, up_sha,
                           down_sha, "/big.php")
        finally:
            g.stop()
            peers.stop_process(p, 10)
    else:
        tap(True, "8 MiB both ways: php-cgi under fcgikit pm", skip="php-cgi8.2 not installed")

    # libfcgi (Debian's libfcgi-dev): the echo contract in C
    if os.path.exists("/usr/include/fcgiapp.h") and os.path.exists(LIBFCGI_SRC):
        exe = os.path.join(tmp, "libfcgi_echo")
        rc, _, err = run(["cc", "-std=c17", "-O2", "-Wall", LIBFCGI_SRC, "-o", exe, "-lfcgi",
                          "-pthread"], timeout=120)
        if rc:
            tap(False, "libfcgi echo builds", err)
        else:
            sock = os.path.join(tmp, "libfcgi.sock")
            p = start_unix("libfcgi", [exe, sock, "2"], sock, tmp)
            g = Gateway(tmp, "gw-big-libfcgi", "unix:" + sock, gw_opts + ["--backend-conns", "2"])
            try:
                big_round_trip(g, tmp, "libfcgi", "/any", upload, up_sha)
            finally:
                g.stop()
                peers.stop_process(p, 10)
    else:
        tap(True, "8 MiB both ways: libfcgi", skip="libfcgi-dev not installed")

    # fcgikit's own echo example
    sock = os.path.join(tmp, "echo.sock")
    p = start_unix("echo", [ECHO, "unix:" + sock], sock, tmp)
    g = Gateway(tmp, "gw-big-echo", "unix:" + sock, gw_opts)
    try:
        big_round_trip(g, tmp, "examples/echo", "/any", upload, up_sha)
    finally:
        g.stop()
        peers.stop_process(p, 10)
    os.unlink(upload)


def t_end(tmp, www, fpm_sock):
    """PHP sends END_REQUEST without the empty STDOUT record that should end the stream
    first: the request is still complete, so the chunked response must end with its last
    chunk and the connection stay open for the next request (what h2load and curl need)."""
    name = "php-fpm response without Content-Length: last chunk sent, connection kept"
    if not fpm_sock:
        tap(True, name, skip="php-fpm8.2 not installed")
        return
    g = Gateway(tmp, "gw-end", "unix:" + fpm_sock, ["--root", www])
    try:
        s = socket.create_connection(("127.0.0.1", g.port), timeout=5)
        got, ok = b"", True
        try:
            for i in (1, 2):
                s.sendall(b"GET /hello.php?x=%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
                want = b"hello %d\n" % i
                end = time.monotonic() + 5
                part = b""
                while time.monotonic() < end and not part.endswith(b"\r\n0\r\n\r\n"):
                    try:
                        d = s.recv(65536)
                    except socket.timeout:
                        break
                    if not d:
                        break
                    part += d
                got += part
                ok = ok and part.endswith(b"\r\n0\r\n\r\n") and want in part
        finally:
            s.close()
        tap(ok, name, "two requests on one connection got: %r" % got[-600:])
    finally:
        g.stop()


# --- 3. h2load --h1 ------------------------------------------------------------------------

def h2load(url, label, n=2000, c=16):
    rc, out, err = run([H2LOAD, "--h1", "-n", str(n), "-c", str(c), url], timeout=90)
    text = out.decode("utf-8", "replace")
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    s = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    ok = (rc == 0 and m and s and int(m.group(1)) == n and int(m.group(4)) == n
          and int(m.group(5)) == 0 and int(m.group(6)) == 0 and int(m.group(7)) == 0
          and int(s.group(1)) == n)
    tap(bool(ok), "h2load --h1 -n %d -c %d: all succeed with 2xx: %s" % (n, c, label),
        "rc=%s\n%s\n%s" % (rc, text[-1200:], err[-400:]))


def t_h2load(tmp, www, fpm_sock):
    if not H2LOAD:
        tap(True, "h2load --h1: gateway over echo", skip="h2load (nghttp2-client) not installed")
        tap(True, "h2load --h1: gateway over php-fpm", skip="h2load (nghttp2-client) not installed")
        return
    sock = os.path.join(tmp, "echo-h2load.sock")
    p = start_unix("echo-h2load", [ECHO, "unix:" + sock], sock, tmp)
    g = Gateway(tmp, "gw-h2load-echo", "unix:" + sock)
    try:
        h2load(g.url + "/load?x=1", "echo")
    finally:
        g.stop()
        peers.stop_process(p, 10)
    if not fpm_sock:
        tap(True, "h2load --h1: gateway over php-fpm", skip="php-fpm8.2 not installed")
        return
    g = Gateway(tmp, "gw-h2load-fpm", "unix:" + fpm_sock, ["--root", www, "--backend-conns", "4"])
    try:
        h2load(g.url + "/hello.php?x=1", "php-fpm")
    finally:
        g.stop()


def main():
    if not os.access(FCGIKIT, os.X_OK) or not os.access(ECHO, os.X_OK):
        print("1..0 # SKIP %s or %s not built" % (FCGIKIT, ECHO))
        return 0
    tmp = os.path.realpath(tempfile.mkdtemp(prefix="fcgikit-gw-php."))
    os.chmod(tmp, 0o755)
    try:
        www = make_root(tmp)
        fpm_sock = None
        fpm_err = "php-fpm8.2 not installed"
        if PHP_FPM:
            try:
                fpm_sock = start_fpm(tmp)
            except RuntimeError as e:
                fpm_err = str(e)
                tap(False, "php-fpm starts", fpm_err)
        tests = [("server", lambda: t_server(tmp, www, fpm_sock) if fpm_sock else
                  tap(True, "$_SERVER vs nginx", skip=fpm_err)),
                 ("end", lambda: t_end(tmp, www, fpm_sock)),
                 ("big", lambda: t_big(tmp, www, fpm_sock)),
                 ("h2load", lambda: t_h2load(tmp, www, fpm_sock))]
        for name, fn in tests:
            if SELECT and not any(s in name for s in SELECT):
                continue
            try:
                fn()
            except Exception as e:  # a crashed test is a failure; the others still run
                import traceback
                tap(False, "%s: raised %s" % (name, e), traceback.format_exc())
        reports = [(g.log, read_file(g.log)[-1500:]) for g in gateways
                   if "Sanitizer" in read_file(g.log) or "runtime error" in read_file(g.log)]
        exits = [(g.log, g.proc.returncode) for g in gateways if g.proc.returncode != 0]
        tap(not reports and not exits,
            "every gateway exited 0 on SIGTERM with no sanitizer report (%d started)"
            % len(gateways), repr(reports) + repr(exits))
    finally:
        for p in procs:
            peers.stop_process(p, 5)
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % len(results))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
