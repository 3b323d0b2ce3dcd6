"""Real web servers as FastCGI fronts, started and stopped by the tests.

    front = Nginx(workdir, backend="127.0.0.1:9000")   # or backend="/path/app.sock"
    front.start()        # writes its config, listens on a free 127.0.0.1 port, waits <= 10 s
    urlopen(front.url + "/anything?x=1")               # every path goes to the backend
    front.stop()         # SIGTERM to the pid it started, SIGKILL after 5 s

Each peer gets its own directory under `workdir` for its config, pid file, temp files and
logs; `log_tail()` shows the logs (start() raises with them when the peer does not come up).
The backend is "HOST:PORT", "[::1]:PORT", "/path" or "unix:/path". Only loopback is used.
`ALL` lists the peer classes, `BY_NAME` maps their names to them.

Peer quirks that matter here are noted on each class. Standard library only.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import time

START_TIMEOUT = 10.0   # seconds a peer may take to listen
STOP_TIMEOUT = 5.0     # seconds between SIGTERM and SIGKILL
BACKEND_TIMEOUT = 10   # seconds the peers wait on the backend (read/send/io)
APACHE_MODULES = "/usr/lib/apache2/modules"


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=0.2).close()
        return True
    except OSError:
        return False


def unix_open(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(0.2)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def address_up(addr):
    """Whether something accepts connections at a backend address."""
    if addr.startswith("unix:"):
        addr = addr[5:]
    if addr.startswith("/"):
        return unix_open(addr)
    host, port = addr.rsplit(":", 1)
    return port_open(int(port), host.strip("[]") or "127.0.0.1")


def tap_printer(results, diag_lines=30):
    """A TAP line printer for a test script: tap(ok, name, diag="", skip=None) appends to
    `results` whether the check passed (a skip passes) and prints `ok N - name`, `not ok N -
    name` with the last diag_lines of diag as comments, or `ok N - name # SKIP why`."""
    def tap(ok, name, diag="", skip=None):
        results.append(ok or bool(skip))
        n = len(results)
        if skip:
            print("ok %d - %s # SKIP %s" % (n, name, skip), flush=True)
            return
        print("%s %d - %s" % ("ok" if ok else "not ok", n, name), flush=True)
        if not ok and diag:
            for line in str(diag).splitlines()[-diag_lines:]:
                print("# " + line, flush=True)
    return tap


def tail(path, n=15):
    """The last n lines of a log file, "" when it cannot be read."""
    try:
        with open(path, errors="replace") as f:
            return "\n".join(f.read().splitlines()[-n:])
    except OSError:
        return ""


def http_get(url, timeout=10):
    """(status, body) of a GET; an HTTP error status is returned too, -1 when none came."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return -1, str(e).encode()


_WRK_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk_ms(text):
    """A wrk duration ("812.00us", "1.20ms", "2.00s") in milliseconds; nan if unreadable."""
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _WRK_UNIT[m.group(2)] if m else float("nan")


def wrk_summary(out):
    """What the benchmarks read from wrk's report (run with --latency): rps, requests, p50
    and p99 in ms, non2xx, sockerr (their sum), sockdetail, errors (non2xx + sockerr), ok
    (a report was printed), raw."""
    r = {"raw": out}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1)) if m else 0
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    r["p50"] = wrk_ms(lat.get("50", "nan"))
    r["p99"] = wrk_ms(lat.get("99", "nan"))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["sockerr"] = sum(map(int, m.groups())) if m else 0
    r["sockdetail"] = m.group(0)[len("Socket errors: "):] if m else ""
    r["errors"] = r["non2xx"] + r["sockerr"]
    r["ok"] = bool(re.search(r"requests in", out))
    return r


def wait_for(pred, seconds=START_TIMEOUT, step=0.05):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def stop_process(proc, seconds=STOP_TIMEOUT):
    """SIGTERM, then SIGKILL after `seconds`; only ever the process we started."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            proc.wait(seconds)
        except subprocess.TimeoutExpired:
            pass


class Peer:
    name = "peer"
    binary = None          # absolute path of what must be installed
    delay_param = False    # whether ?echo_delay_ms=N reaches the app as ECHO_DELAY_MS

    def __init__(self, workdir, backend):
        self.dir = os.path.join(workdir, self.name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)  # workers of some peers run as another user
        if backend.startswith("unix:"):
            backend = backend[5:]
        self.backend = backend
        self.unix = backend.startswith("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log = os.path.join(self.dir, "stderr.log")

    @classmethod
    def available(cls):
        return os.access(cls.binary, os.X_OK)

    def bhost(self):
        return self.backend.rsplit(":", 1)[0].strip("[]")

    def bport(self):
        return int(self.backend.rsplit(":", 1)[1])

    def command(self):
        """Writes the config; returns the argv to run in the foreground."""
        raise NotImplementedError

    def env(self):
        return None

    def write(self, filename, text):
        path = os.path.join(self.dir, filename)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self):
        cmd = self.command()
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env(), cwd=self.dir)
        up = wait_for(lambda: self.proc.poll() is not None or port_open(self.port))
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited at start (status {self.proc.returncode})"
                               f"\n{self.log_tail()}")
        if not up:
            self.stop()
            raise RuntimeError(f"{self.name} did not listen on {self.port} within "
                               f"{START_TIMEOUT:.0f} s\n{self.log_tail()}")
        return self

    def stop(self):
        stop_process(self.proc)

    def log_tail(self, lines=8):
        out = []
        for f in sorted(os.listdir(self.dir)):
            if f.endswith(".log"):
                try:
                    with open(os.path.join(self.dir, f), errors="replace") as fh:
                        tail = [x for x in fh.read().splitlines() if x.strip()][-lines:]
                except OSError:
                    continue
                if tail:
                    out.append(f"--- {self.name}/{f}\n" + "\n".join(tail))
        return "\n".join(out) or f"--- {self.name}: no log lines"

    def known_bug(self):
        """A short text when the peer's own logs show one of its known bugs, else None:
        failures that only look like it are then the peer's, not the backend's."""
        return None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Nginx(Peer):
    """Upstream `keepalive 32` plus `fastcgi_keep_conn on`: backend connections are reused
    (KEEP_CONN set). nginx never multiplexes; it always uses request id 1, and reads the whole
    request body before it talks to the backend (fastcgi_request_buffering, left at its
    default). Params: the same list as Debian's /etc/nginx/fastcgi_params; on a GET it sends
    CONTENT_LENGTH and CONTENT_TYPE empty. It pads records to 8 bytes; STDIN records carry at
    most 32768 bytes."""
    name = "nginx"
    binary = "/usr/sbin/nginx"
    delay_param = True

    PARAMS = [
        ("QUERY_STRING", "$query_string"), ("REQUEST_METHOD", "$request_method"),
        ("CONTENT_TYPE", "$content_type"), ("CONTENT_LENGTH", "$content_length"),
        ("SCRIPT_NAME", "$fastcgi_script_name"), ("REQUEST_URI", "$request_uri"),
        ("DOCUMENT_URI", "$document_uri"), ("DOCUMENT_ROOT", "$document_root"),
        ("SERVER_PROTOCOL", "$server_protocol"), ("REQUEST_SCHEME", "$scheme"),
        ("HTTPS", "$https if_not_empty"), ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "nginx/$nginx_version"), ("REMOTE_ADDR", "$remote_addr"),
        ("REMOTE_PORT", "$remote_port"), ("SERVER_ADDR", "$server_addr"),
        ("SERVER_PORT", "$server_port"), ("SERVER_NAME", "$server_name"),
        ("REDIRECT_STATUS", "200"),
        ("ECHO_DELAY_MS", "$arg_echo_delay_ms if_not_empty"),
    ]

    def command(self):
        d = self.dir
        server = ("unix:" + self.backend) if self.unix else f"{self.bhost()}:{self.bport()}"
        params = "\n".join(f"            fastcgi_param {k} {v};" for k, v in self.PARAMS)
        t = BACKEND_TIMEOUT
        conf = self.write("nginx.conf", f"""user root;
worker_processes 1;
pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    fastcgi_temp_path {d}/fastcgi;
    proxy_temp_path {d}/proxy;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 16m;
    keepalive_requests 10000;
    upstream fcgikit_backend {{
        server {server};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            fastcgi_pass fcgikit_backend;
            fastcgi_keep_conn on;
            fastcgi_connect_timeout 5s;
            fastcgi_send_timeout {t}s;
            fastcgi_read_timeout {t}s;
{params}
        }}
    }}
}}
""")
        return [self.binary, "-p", d + "/", "-c", conf,
                "-g", f"daemon off; master_process on; error_log {d}/error.log warn;"]


class Lighttpd(Peer):
    """mod_fastcgi, "check-local" => "disable" so every path goes to the backend. lighttpd
    sends one request per connection (no KEEP_CONN), request id 1, and buffers the body.
    Mounted on "/", it splits the path after its first segment (SCRIPT_NAME /echo, PATH_INFO
    /path). STDIN records of up to 65535 bytes, no padding."""
    name = "lighttpd"
    binary = "/usr/sbin/lighttpd"

    def command(self):
        d = self.dir
        target = (f'"socket" => "{self.backend}"' if self.unix
                  else f'"host" => "{self.bhost()}", "port" => {self.bport()}')
        conf = self.write("lighttpd.conf", f"""server.document-root = "{d}"
server.bind = "127.0.0.1"
server.port = {self.port}
server.errorlog = "{d}/error.log"
server.upload-dirs = ( "{d}" )
server.max-request-size = 16384
server.max-keep-alive-requests = 10000
server.max-read-idle = {BACKEND_TIMEOUT * 2}
server.modules = ( "mod_fastcgi" )
fastcgi.server = ( "/" => ( "fcgikit" => ( {target}, "check-local" => "disable" ) ) )
""")
        return [self.binary, "-D", "-f", conf]


class Apache(Peer):
    """mod_proxy_fcgi with enablereuse=on, on mpm_event. Runs its children as www-data (it
    refuses root), so a Unix backend socket must be connectable by others. Each child has
    its own backend connection pool. MaxKeepAliveRequests 0 (unlimited): its default of 100
    would close the client connection in the middle of the keep-alive check. Its params carry
    its own environment (PATH...) and SCRIPT_FILENAME "proxy:fcgi://HOST:PORT/path"; STDIN
    records of at most 8192 bytes, no padding. SetEnvIf cannot see the query string,
    SetEnvIfExpr can."""
    name = "apache"
    binary = "/usr/sbin/apache2"
    delay_param = True

    def command(self):
        d = self.dir
        target = (f"unix:{self.backend}|fcgi://localhost/" if self.unix
                  else f"fcgi://{self.bhost()}:{self.bport()}/")
        # mod_unixd (User/Group) is compiled into Debian's apache2, not a module to load.
        mods = ["mpm_event", "authz_core", "proxy", "proxy_fcgi", "setenvif"]
        loads = "\n".join(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so" for m in mods)
        conf = self.write("apache2.conf", f"""ServerRoot "/etc/apache2"
{loads}
ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
PidFile {d}/apache2.pid
DefaultRuntimeDir {d}
Mutex file:{d} default
ErrorLog {d}/error.log
LogLevel warn
User www-data
Group www-data
StartServers 1
ServerLimit 2
ThreadsPerChild 64
MaxRequestWorkers 128
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 20
Timeout {BACKEND_TIMEOUT}
ProxyTimeout {BACKEND_TIMEOUT}
SetEnvIfExpr "%{{QUERY_STRING}} =~ /(?:^|&)echo_delay_ms=([0-9]+)/" ECHO_DELAY_MS=$1
ProxyPass "/" "{target}" enablereuse=on
""")
        return [self.binary, "-f", conf, "-DFOREGROUND"]

    def env(self):
        e = dict(os.environ)
        e.setdefault("APACHE_RUN_DIR", self.dir)
        e.setdefault("APACHE_LOCK_DIR", self.dir)
        e.setdefault("APACHE_LOG_DIR", self.dir)
        return e


class HAProxy(Peer):
    """fcgi-app with `option keep-conn`. HAProxy sends GET_VALUES only with `option
    get-values`; it numbers requests with odd ids (1, 3, 5...) increasing per connection. It
    forwards the body as it arrives (no buffering), in STDIN records of at most 16320 bytes,
    no padding. Its `docroot` is mandatory. SERVER_NAME is the Host header, port included;
    CONTENT_LENGTH is 0 on a GET. set-param names reach the app upper-cased."""
    name = "haproxy-keepconn"
    binary = "/usr/sbin/haproxy"
    delay_param = True
    app_options = "    option keep-conn\n"

    def command(self):
        d = self.dir
        server = ("unix@" + self.backend) if self.unix else f"{self.bhost()}:{self.bport()}"
        t = BACKEND_TIMEOUT
        delay_if = "if { urlp(echo_delay_ms) -m found }"
        conf = self.write("haproxy.cfg", f"""global
    maxconn 1024
    pidfile {d}/haproxy.pid
    log stderr format raw local0 info
defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    timeout connect 5s
    timeout client {t * 2}s
    timeout server {t}s
    timeout http-keep-alive {t * 2}s
frontend fe
    bind 127.0.0.1:{self.port}
    default_backend be
backend be
    use-fcgi-app fcgikit
    http-reuse always
    server app {server} proto fcgi
fcgi-app fcgikit
    docroot {d}
{self.app_options}    set-param ECHO_DELAY_MS %[urlp(echo_delay_ms)] {delay_if}
""")
        return [self.binary, "-db", "-f", conf]

    def known_bug(self):
        try:
            with open(self.log, errors="replace") as f:
                log = f.read()
        except OSError:
            return None
        internal = len(re.findall(r" 500 \d+ - - I\S\S\S ", log))
        found = []
        if internal:
            found.append(f"{internal} internal errors (500, termination state I...) in its log")
        if 'bug condition "c_empty(ic)"' in log:
            found.append('it died on BUG_ON "c_empty(ic)" (HAProxy issue #2150, fixed in 2.6.14)')
        return "; ".join(found) or None


class HAProxyMpxs(HAProxy):
    """The multiplexing variant: `option mpxs-conns`, `option max-reqs 32`, `option
    get-values`. HAProxy (mux_fcgi) puts at most max-reqs requests on one connection (its
    default is 1, so mpxs-conns alone never multiplexes); with get-values it first sends
    GET_VALUES (FCGI_MAX_REQS, FCGI_MPXS_CONNS; never FCGI_MAX_CONNS) and waits for the answer
    before the first BEGIN_REQUEST, and the app's values override both options (an app that
    says FCGI_MPXS_CONNS=0 gets one request per connection). `http-reuse always` lets requests
    of different client connections share a backend connection; with `safe` an HTTP/1 client
    never shares one, so nothing is multiplexed.

    Known bugs of Debian 12's HAProxy 2.6.12 here, seen with any multiplexing application
    (a 60-line asyncio one as well as fcgikit), never without multiplexing: (1) it computes
    its default params (DOCUMENT_ROOT, REQUEST_URI, SERVER_*, REMOTE_*...) after the
    headers and sometimes fails to encode them, apparently when the mux buffer that the
    other requests share has no room left: the request fails with "error encoding default
    params" in its fcgi trace, and the client gets a 500 with termination state IH--;
    (2) under the same load it may die on BUG_ON "c_empty(ic)" at stconn.c:1479 (HAProxy
    issue #2150, fixed in 2.6.14). known_bug() reports both from its log."""
    name = "haproxy-mpxs"
    app_options = ("    option keep-conn\n    option mpxs-conns\n    option max-reqs 32\n"
                   "    option get-values\n")


class H2O(Peer):
    """fastcgi.connect with fastcgi.timeout.keepalive set, so it keeps backend connections
    (KEEP_CONN) — one request at a time on each, request id 1. As root it must be told a
    user to switch to. On a GET it sends no CONTENT_LENGTH; no GATEWAY_INTERFACE either;
    SCRIPT_NAME is empty and PATH_INFO the path; SERVER_NAME is the host's name in the config
    ("default"). STDIN records of up to 65535 bytes, no padding."""
    name = "h2o"
    binary = "/usr/bin/h2o"

    def command(self):
        d = self.dir
        if self.unix:
            connect = f"          port: {self.backend}\n          type: unix\n"
        else:
            connect = (f"          host: {self.bhost()}\n          port: {self.bport()}\n"
                       f"          type: tcp\n")
        user = "user: root\n" if os.getuid() == 0 else ""
        conf = self.write("h2o.conf", f"""{user}pid-file: {d}/h2o.pid
error-log: {d}/error.log
num-threads: 2
limit-request-body: 16777216
listen:
  host: 127.0.0.1
  port: {self.port}
hosts:
  default:
    paths:
      /:
        fastcgi.connect:
{connect}        fastcgi.timeout.io: {BACKEND_TIMEOUT * 1000}
        fastcgi.timeout.keepalive: 20000
""")
        return [self.binary, "-c", conf]


class Caddy(Peer):
    """reverse_proxy with `transport fastcgi` from a Caddyfile; admin endpoint off, no
    automatic HTTPS, its storage and HOME/XDG dirs in the peer's directory. Caddy 2.6 never
    sets KEEP_CONN: one connection per request, request id 1. SCRIPT_NAME is empty and
    PATH_INFO the path; many CGI params are sent empty. Pads records; STDIN records of up to
    65500 bytes. Its site address alone would listen on every interface: `bind 127.0.0.1`."""
    name = "caddy"
    binary = "/usr/bin/caddy"

    def env(self):
        e = dict(os.environ)
        e.update(HOME=self.dir, XDG_DATA_HOME=os.path.join(self.dir, "data"),
                 XDG_CONFIG_HOME=os.path.join(self.dir, "config"))
        return e

    def command(self):
        d = self.dir
        upstream = ("unix/" + self.backend) if self.unix else f"{self.bhost()}:{self.bport()}"
        t = BACKEND_TIMEOUT
        conf = self.write("Caddyfile", f"""{{
    admin off
    auto_https off
    storage file_system {d}/data
}}
http://127.0.0.1:{self.port} {{
    bind 127.0.0.1
    reverse_proxy {upstream} {{
        transport fastcgi {{
            dial_timeout 5s
            read_timeout {t}s
            write_timeout {t}s
        }}
    }}
}}
""")
        return [self.binary, "run", "--config", conf, "--adapter", "caddyfile"]


ALL = [Nginx, Lighttpd, Apache, HAProxy, HAProxyMpxs, H2O, Caddy]
BY_NAME = {p.name: p for p in ALL}
