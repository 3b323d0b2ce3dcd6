"""Real web servers as FastCGI fronts, started and stopped by the tests.

Each peer writes its own config into a private directory, listens on a free port of
127.0.0.1 and forwards every path to one FastCGI backend, given as "127.0.0.1:PORT" or as
a Unix socket path. start() waits (bounded) until the port answers; stop() ends the process
it started, by pid, SIGTERM then SIGKILL. Logs stay in the directory; log_tail() shows them.

    with Nginx(tmpdir, "127.0.0.1:9000") as front:
        urlopen(front.url + "/x?y=1")
"""
import os
import shutil
import signal
import socket
import subprocess
import time

APACHE_MODULES = "/usr/lib/apache2/modules"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=0.2).close()
        return True
    except OSError:
        return False


def wait_for(pred, seconds=10.0, step=0.05):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def stop_process(proc, seconds=5.0):
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(seconds)


class Peer:
    name = "peer"
    binary = None  # what must be installed

    def __init__(self, workdir, backend):
        self.dir = os.path.join(workdir, self.name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)  # workers of some peers run as another user
        self.backend = backend
        self.unix = backend.startswith("/")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log = os.path.join(self.dir, "stderr.log")

    @classmethod
    def available(cls):
        return shutil.which(cls.binary) is not None or os.path.exists(cls.binary)

    def bhost(self):
        return self.backend.rsplit(":", 1)[0]

    def bport(self):
        return self.backend.rsplit(":", 1)[1]

    def command(self):
        raise NotImplementedError

    def env(self):
        return None

    def start(self):
        cmd = self.command()
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env(), cwd=self.dir)
        if not wait_for(lambda: port_open(self.port) or self.proc.poll() is not None, 15):
            self.stop()
            raise RuntimeError(f"{self.name} did not listen within 15 s\n{self.log_tail()}")
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited at start\n{self.log_tail()}")
        return self

    def stop(self):
        stop_process(self.proc)

    def log_tail(self, lines=20):
        out = []
        for f in sorted(os.listdir(self.dir)):
            if f.endswith(".log"):
                try:
                    with open(os.path.join(self.dir, f), errors="replace") as fh:
                        tail = fh.read().splitlines()[-lines:]
                    out.append(f"--- {self.name}/{f}\n" + "\n".join(tail))
                except OSError:
                    pass
        return "\n".join(out)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Nginx(Peer):
    """Upstream keepalive plus fastcgi_keep_conn: connections to the backend are reused."""
    name = "nginx"
    binary = "/usr/sbin/nginx"

    def command(self):
        d = self.dir
        server = ("unix:" + self.backend) if self.unix else self.backend
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; fastcgi_temp_path {d}/fcgi; proxy_temp_path {d}/proxy;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    client_max_body_size 16m;
    upstream backend {{ server {server}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            include /etc/nginx/fastcgi_params;
            fastcgi_keep_conn on;
            fastcgi_read_timeout 30s;
            fastcgi_pass backend;
        }}
    }}
}}
""")
        return [self.binary, "-p", d, "-c", conf, "-g", "daemon off;"]


class Lighttpd(Peer):
    name = "lighttpd"
    binary = "/usr/sbin/lighttpd"

    def command(self):
        d = self.dir
        target = (f'"socket" => "{self.backend}"' if self.unix
                  else f'"host" => "{self.bhost()}", "port" => {self.bport()}')
        conf = os.path.join(d, "lighttpd.conf")
        with open(conf, "w") as f:
            f.write(f"""server.document-root = "{d}"
server.bind = "127.0.0.1"
server.port = {self.port}
server.errorlog = "{d}/error.log"
server.modules = ("mod_fastcgi")
fastcgi.server = ( "/" => (( {target}, "check-local" => "disable" )) )
""")
        return [self.binary, "-D", "-f", conf]


class Apache(Peer):
    """mod_proxy_fcgi with enablereuse=on."""
    name = "apache"
    binary = "/usr/sbin/apache2"

    def command(self):
        d = self.dir
        target = (f"unix:{self.backend}|fcgi://localhost/" if self.unix
                  else f"fcgi://{self.backend}/")
        conf = os.path.join(d, "apache.conf")
        with open(conf, "w") as f:
            f.write(f"""ServerRoot "{d}"
LoadModule mpm_event_module {APACHE_MODULES}/mod_mpm_event.so
LoadModule authz_core_module {APACHE_MODULES}/mod_authz_core.so
LoadModule proxy_module {APACHE_MODULES}/mod_proxy.so
LoadModule proxy_fcgi_module {APACHE_MODULES}/mod_proxy_fcgi.so
ServerName localhost
Listen 127.0.0.1:{self.port}
PidFile {d}/apache.pid
DefaultRuntimeDir {d}
ErrorLog {d}/error.log
LogLevel warn
User www-data
Group www-data
Mutex file:{d} default
KeepAlive On
MaxKeepAliveRequests 1000
ProxyPass "/" "{target}" enablereuse=on
ProxyTimeout 30
""")
        return [self.binary, "-f", conf, "-DFOREGROUND"]


class HAProxy(Peer):
    """fcgi-app with keep-conn; the mpxs variant adds mpxs-conns and get-values, so requests
    of different clients share backend connections and are really multiplexed."""
    name = "haproxy-keepconn"
    binary = "/usr/sbin/haproxy"
    mpxs = False

    def command(self):
        d = self.dir
        server = ("unix@" + self.backend) if self.unix else self.backend
        extra = "    option mpxs-conns\n    option max-reqs 64\n    option get-values\n" if self.mpxs else ""
        conf = os.path.join(d, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(f"""global
    maxconn 1024
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
fcgi-app app
    docroot {d}
    option keep-conn
{extra}frontend fe
    bind 127.0.0.1:{self.port}
    default_backend be
backend be
    use-fcgi-app app
    http-reuse always
    server s1 {server} proto fcgi
""")
        return [self.binary, "-db", "-f", conf]


class HAProxyMpxs(HAProxy):
    name = "haproxy-mpxs"
    mpxs = True


class H2O(Peer):
    name = "h2o"
    binary = "/usr/bin/h2o"

    def command(self):
        d = self.dir
        if self.unix:
            connect = f"          port: {self.backend}\n          type: unix\n"
        else:
            connect = f"          host: {self.bhost()}\n          port: {self.bport()}\n          type: tcp\n"
        conf = os.path.join(d, "h2o.conf")
        user = "user: nobody\n" if os.getuid() == 0 else ""
        with open(conf, "w") as f:
            f.write(f"""{user}error-log: {d}/error.log
listen:
  host: 127.0.0.1
  port: {self.port}
hosts:
  default:
    paths:
      /:
        fastcgi.connect:
{connect}        fastcgi.timeout.io: 30000
        fastcgi.timeout.keepalive: 5000
""")
        return [self.binary, "-c", conf]


class Caddy(Peer):
    name = "caddy"
    binary = "/usr/bin/caddy"

    def env(self):
        e = dict(os.environ)
        e.update(HOME=self.dir, XDG_DATA_HOME=self.dir, XDG_CONFIG_HOME=self.dir)
        return e

    def command(self):
        d = self.dir
        upstream = ("unix/" + self.backend) if self.unix else self.backend
        conf = os.path.join(d, "Caddyfile")
        with open(conf, "w") as f:
            f.write(f"""{{
    admin off
    auto_https off
    storage file_system {d}/data
}}
http://127.0.0.1:{self.port} {{
    reverse_proxy {upstream} {{
        transport fastcgi
    }}
}}
""")
        return [self.binary, "run", "--config", conf, "--adapter", "caddyfile"]


ALL = [Nginx, Lighttpd, Apache, HAProxy, HAProxyMpxs, H2O, Caddy]
BY_NAME = {p.name: p for p in ALL}
