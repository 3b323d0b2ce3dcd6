#!/usr/bin/env python3
"""The client side against real FastCGI applications: `fcgikit call` and `fcgikit bench`
driven as a user would, against applications from Debian packages and fcgikit's own.

Peers (each started here on a Unix socket in a fresh directory, with bounded waits, and
stopped by pid):
  fcgikit-echo  build/examples/echo (multiplexes)
  php-fpm       php-fpm8.2 -F with a generated static pool, status and ping pages
  php-cgi       php-cgi with its listening socket on fd 0 (spawned by spawn-fcgi -n)
  perl-fcgi     a Perl FCGI (libfcgi-perl) echo script
  libfcgi       a C echo on Debian's libfcgi (bench/peers/libfcgi_echo.c)
plus fk_app (tests/clientpeers/fk_app.c, libfcgikit with multiplexing off or a request
limit) for CANT_MPX_CONN and OVERLOADED, fcgikit's authorizer and filter examples, nginx
answering HTTP (a peer that is not FastCGI), and a socket that accepts and never answers.

Prints TAP. A peer whose package is missing is skipped, not failed.

  tests/clientpeers/run.py [-v]
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("FCGIKIT_BUILD", os.path.join(ROOT, "build"))
FCGIKIT = os.path.join(BUILD, "fcgikit")
VERBOSE = "-v" in sys.argv

results = []  # (ok, name, diag, skip)


def tap(ok, name, diag="", skip=None):
    results.append((ok, name, diag, skip))
    n = len(results)
    if skip:
        print("ok %d - %s # SKIP %s" % (n, name, skip), flush=True)
    else:
        print("%s %d - %s" % ("ok" if ok else "not ok", n, name), flush=True)
        if not ok and diag:
            for line in str(diag).splitlines()[:20]:
                print("# " + line, flush=True)


def run(args, stdin=None, timeout=60, env=None, input_bytes=None):
    """Runs a command; returns (exit status, stdout bytes, stderr text)."""
    if VERBOSE:
        print("# $ " + " ".join(args), flush=True)
    try:
        p = subprocess.run(args, stdin=stdin, input=input_bytes, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, env=env)
        return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        return -999, b"", "timed out after %ss" % timeout


def call(*args, **kw):
    return run([FCGIKIT, "call"] + list(args), **kw)


def connectable(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.settimeout(0.5)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_for(pred, seconds=10.0):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


class Peer:
    def __init__(self, name, proc, sock, log):
        self.name, self.proc, self.sock, self.log = name, proc, sock, log
        self.address = "unix:" + sock

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_tail(self):
        try:
            with open(self.log, "rb") as f:
                return f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return ""


def start(name, args, sock, tmp, env=None, cwd=None):
    log = os.path.join(tmp, name + ".log")
    with open(log, "wb") as lf:
        proc = subprocess.Popen(args, stdout=lf, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
    peer = Peer(name, proc, sock, log)
    if not wait_for(lambda: proc.poll() is not None or connectable(sock), 15):
        peer.stop()
        raise RuntimeError("%s: not accepting after 15 s\n%s" % (name, peer.log_tail()))
    if proc.poll() is not None:
        raise RuntimeError("%s exited (%s)\n%s" % (name, proc.returncode, peer.log_tail()))
    return peer


PHP_SCRIPT = r"""<?php
$body = file_get_contents('php://input');
header('Content-Type: application/octet-stream');
header('X-Request-Method: ' . $_SERVER['REQUEST_METHOD']);
header('X-Query: ' . $_SERVER['QUERY_STRING']);
if (isset($_GET['stderr'])) { error_log("stderr-marker"); }
if (isset($_GET['status'])) { http_response_code((int)$_GET['status']); }
echo $body;
"""

PERL_SCRIPT = r"""#!/usr/bin/perl
use strict;
use warnings;
use FCGI;
use IO::Handle;
my $sock = FCGI::OpenSocket($ARGV[0], 64);
my %env;
my ($in, $out, $err) = (IO::Handle->new, IO::Handle->new, IO::Handle->new);
my $req = FCGI::Request($in, $out, $err, \%env, $sock);
while ($req->Accept() >= 0) {
    my $len = $env{CONTENT_LENGTH} || 0;
    my $body = '';
    while (length($body) < $len) {
        my $n = read($in, my $chunk, $len - length($body));
        last unless $n;
        $body .= $chunk;
    }
    my $q = $env{QUERY_STRING} // '';
    print $err "stderr-marker\n" if $q =~ /stderr/;
    my $status = $q =~ /status=(\d+)/ ? $1 : 200;
    print $out "Status: $status\r\nContent-Type: application/octet-stream\r\n"
             . "X-Request-Method: $env{REQUEST_METHOD}\r\nX-Query: $q\r\n\r\n";
    print $out $body;
    $req->Finish();
}
"""


def cc(out, src, *libs):
    rc, _, err = run(["cc", "-std=c17", "-O2", "-Wall", "-I" + os.path.join(ROOT, "include"),
                      src, "-o", out] + list(libs) + ["-pthread"], timeout=120)
    if rc:
        raise RuntimeError("cc %s: %s" % (src, err))


def start_peers(tmp, big):
    """Returns {name: Peer or skip reason}, and the extra servers."""
    peers = {}
    www = os.path.join(tmp, "www")
    os.makedirs(www)
    with open(os.path.join(www, "index.php"), "w") as f:
        f.write(PHP_SCRIPT)

    def add(name, fn):
        try:
            peers[name] = fn()
        except Exception as e:  # a peer that does not start is reported, not fatal
            peers[name] = "could not start: %s" % e

    add("fcgikit-echo", lambda: start(
        "fcgikit-echo", [os.path.join(BUILD, "examples", "echo"),
                         "unix:" + os.path.join(tmp, "echo.sock")],
        os.path.join(tmp, "echo.sock"), tmp))

    fpm = shutil.which("php-fpm8.2") or shutil.which("php-fpm")
    if fpm:
        def php_fpm():
            conf = os.path.join(tmp, "php-fpm.conf")
            sock = os.path.join(tmp, "fpm.sock")
            root = os.geteuid() == 0
            with open(conf, "w") as f:
                f.write("[global]\npid = %s/fpm.pid\nerror_log = %s/fpm-error.log\n"
                        "daemonize = no\n[www]\n%slisten = %s\npm = static\n"
                        "pm.max_children = 2\npm.status_path = /status\nping.path = /ping\n"
                        "ping.response = pong\nphp_admin_value[post_max_size] = 64M\n"
                        "php_admin_value[memory_limit] = 256M\n"
                        % (tmp, tmp, "user = root\ngroup = root\n" if root else "", sock))
            args = [fpm, "-F", "-n", "-y", conf, "-p", tmp] + (["-R"] if root else [])
            return start("php-fpm", args, sock, tmp)
        add("php-fpm", php_fpm)
    else:
        peers["php-fpm"] = "php-fpm8.2 not installed"

    php_cgi, spawn = shutil.which("php-cgi"), shutil.which("spawn-fcgi")
    if php_cgi and spawn:
        sock = os.path.join(tmp, "php-cgi.sock")
        # One process (no PHP_FCGI_CHILDREN), which php-cgi then reports as FCGI_MAX_CONNS=1;
        # no limit on the requests it serves before exiting (its default is 500).
        env = dict(os.environ, PHP_FCGI_MAX_REQUESTS="0")
        env.pop("PHP_FCGI_CHILDREN", None)
        add("php-cgi", lambda: start(
            "php-cgi", [spawn, "-n", "-s", sock, "--", php_cgi, "-d", "post_max_size=64M",
                        "-d", "memory_limit=256M"], sock, tmp, env=env))
    else:
        peers["php-cgi"] = "php-cgi or spawn-fcgi not installed"

    if run(["perl", "-MFCGI", "-e", "1"])[0] == 0:
        script = os.path.join(tmp, "echo.pl")
        with open(script, "w") as f:
            f.write(PERL_SCRIPT)
        sock = os.path.join(tmp, "perl.sock")
        add("perl-fcgi", lambda: start("perl-fcgi", ["perl", script, sock], sock, tmp))
    else:
        peers["perl-fcgi"] = "libfcgi-perl not installed"

    def libfcgi():
        src = os.path.join(ROOT, "bench", "peers", "libfcgi_echo.c")
        exe = os.path.join(tmp, "libfcgi_echo")
        cc(exe, src, "-lfcgi")
        sock = os.path.join(tmp, "libfcgi.sock")
        return start("libfcgi", [exe, sock, "2"], sock, tmp)
    if os.path.exists("/usr/include/fcgiapp.h"):
        add("libfcgi", libfcgi)
    else:
        peers["libfcgi"] = "libfcgi-dev not installed"
    return peers, www


def head_of(out):
    """The CGI head of a response printed with -i, as a dict of lower-case names."""
    text = out.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    h = {}
    for line in text.split("\r\n"):
        if ":" in line:
            k, v = line.split(":", 1)
            h[k.strip().lower()] = v.strip()
    return h


def test_peer(name, peer, www, big, big_path):
    addr = peer.address
    uri = "/index.php" if name.startswith("php") else "/"
    root = ["--root", www] if name.startswith("php") else []
    tag = name + ": "

    rc, out, err = call(*root, "-i", addr, uri + "?a=1&b=two")
    h = head_of(out)
    tap(rc == 0 and h.get("x-query") == "a=1&b=two" and h.get("x-request-method") == "GET",
        tag + "GET with a query (-i shows the head)", "rc=%s head=%s err=%s" % (rc, h, err))

    rc, out, err = call(*root, addr, uri, "-d", "@" + big_path, timeout=120)
    tap(rc == 0 and out == big, tag + "8 MiB body from a file, echoed byte-identical",
        "rc=%s len=%d err=%s" % (rc, len(out), err[-500:]))

    rc, out, err = call(*root, "-X", "PUT", addr, uri, "-d", "-", input_bytes=big, timeout=120)
    tap(rc == 0 and out == big, tag + "8 MiB body from stdin (a pipe), echoed byte-identical",
        "rc=%s len=%d err=%s" % (rc, len(out), err[-500:]))

    if name != "fcgikit-echo":
        rc, out, err = call(*root, addr, uri + "?stderr=1", "-d", "body")
        tap(rc == 0 and "stderr-marker" in err and b"stderr-marker" not in out and out == b"body",
            tag + "STDERR goes to stderr, apart from STDOUT", "rc=%s out=%r err=%r" % (rc, out, err))
        rc, out, err = call(*root, addr, uri + "?status=404")
        tap(rc == 4, tag + "status 404 exits 4", "rc=%s err=%s" % (rc, err))
        rc, out, err = call(*root, addr, uri + "?status=503")
        tap(rc == 5, tag + "status 503 exits 5", "rc=%s err=%s" % (rc, err))

    # --ping: GET_VALUES where the application answers it, else a request.
    rc, out, err = call("--ping", "--timeout", "3", addr)
    if rc != 0 and name in ("perl-fcgi", "libfcgi"):
        # libfcgi (and Perl's FCGI, built on it) never answer a GET_VALUES on a fresh
        # connection; the health check then needs a URI.
        ok_first = "no answer" in err and err.count("\n") == 1
        rc, out, err = call(*root, "--ping", addr, uri)
        tap(ok_first and rc == 0 and out.startswith(b"ok: "),
            tag + "--ping: no GET_VALUES answer (one-line reason), --ping with a URI exits 0",
            "rc=%s out=%r err=%r" % (rc, out, err))
    else:
        tap(rc == 0 and out.startswith(b"ok: ") and out.count(b"\n") == 1,
            tag + "--ping exits 0 with one line", "rc=%s out=%r err=%r" % (rc, out, err))

    # A role the application does not take: fcgikit answers UNKNOWN_ROLE; the others close.
    rc, out, err = call(*root, "--role", "9", addr, uri)
    if name == "fcgikit-echo":
        tap(rc == 10 and "UNKNOWN_ROLE" in err, tag + "--role 9: END_REQUEST UNKNOWN_ROLE, exit 10",
            "rc=%s err=%s" % (rc, err))
    else:
        tap(rc == 7 and err.count("\n") == 1,
            tag + "--role 9: the application closes without END_REQUEST (exit 7, one line)",
            "rc=%s err=%s" % (rc, err))

    # Multiplexing: echo does it; the others say FCGI_MPXS_CONNS=0 (or nothing) and the
    # bench falls back to one request per connection at a time, with no error. php-cgi (one
    # process) and the Perl script serve one kept connection at a time: a second kept
    # connection would wait in their accept queue until the first closes, so one here.
    conns = "1" if name in ("php-cgi", "perl-fcgi") else "2"
    rc, out, err = run([FCGIKIT, "bench", "-q", "--json", "-n", "400", "-c", conns, "-m", "8"] +
                       root + [addr, uri], timeout=120)
    try:
        j = json.loads(out)
    except ValueError:
        j = {}
    if name == "fcgikit-echo":
        tap(rc == 0 and j.get("mpx") == 8 and j.get("requests") == 400 and j.get("errors_total") == 0,
            tag + "bench -m 8: multiplexed, 400 requests, no error", "rc=%s out=%s err=%s" % (rc, out, err))
    else:
        tap(rc == 0 and j.get("mpx") == 1 and j.get("requests") == 400 and
            j.get("errors_total") == 0 and "falls back" in err,
            tag + "bench -m 8: falls back to one at a time, 400 requests, no error",
            "rc=%s out=%s err=%s" % (rc, out, err))


def test_library_mpx(name, peer, www, exe):
    """The library's own choice: GET_VALUES once, then multiplex or not."""
    # Applications that give each worker one kept connection serve no more connections
    # than they have workers (php-fpm: 2 children here, libfcgi: 2 threads, php-cgi and the
    # Perl script: 1): more would wait in their accept queue. php-cgi says so itself
    # (FCGI_MAX_CONNS=1), which the library follows: it is allowed 4 here and uses 1.
    conns = {"fcgikit-echo": "4", "php-fpm": "2", "libfcgi": "2", "php-cgi": "4",
             "perl-fcgi": "1"}[name]
    extra = ["SCRIPT_FILENAME=" + os.path.join(www, "index.php")] if name.startswith("php") else []
    if name == "fcgikit-echo":
        extra = ["ECHO_DELAY_MS=50"]
    rc, out, err = run([exe, peer.address, "40", conns] + extra, timeout=60)
    try:
        j = json.loads(out)
    except ValueError:
        j = {}
    if name == "fcgikit-echo":
        tap(j.get("mpxs") == 1 and j.get("ok") == 40 and j.get("multiplexed", 0) >= 30,
            name + ": library multiplexes 40 requests after FCGI_MPXS_CONNS=1",
            "rc=%s out=%s err=%s" % (rc, out, err))
    else:
        tap(j.get("mpxs") == 0 and j.get("ok") == 40 and j.get("multiplexed") == 0,
            name + ": library falls back to one request per connection (40 requests, none "
            "multiplexed)", "rc=%s out=%s err=%s" % (rc, out, err))


def main():
    if not os.access(FCGIKIT, os.X_OK):
        print("1..0 # SKIP %s not built" % FCGIKIT)
        return 0
    tmp = tempfile.mkdtemp(prefix="fcgikit-clientpeers-")
    started = []
    try:
        big = os.urandom(8 << 20)
        big_path = os.path.join(tmp, "big.bin")
        with open(big_path, "wb") as f:
            f.write(big)
        peers, www = start_peers(tmp, big)
        started += [p for p in peers.values() if isinstance(p, Peer)]
        mpx_check = os.path.join(tmp, "mpx_check")
        cc(mpx_check, os.path.join(ROOT, "tests", "clientpeers", "mpx_check.c"),
           os.path.join(BUILD, "libfcgikit.a"))
        for name in ("fcgikit-echo", "php-fpm", "php-cgi", "perl-fcgi", "libfcgi"):
            p = peers.get(name)
            if not isinstance(p, Peer):
                tap(True, name + ": all cases", skip=p)
                continue
            test_peer(name, p, www, big, big_path)
            test_library_mpx(name, p, www, mpx_check)
            if p.proc.poll() is not None:
                tap(False, name + ": still running after the tests", p.log_tail())

        fpm = peers.get("php-fpm")
        if isinstance(fpm, Peer):
            rc, out, err = call(fpm.address, "/status")
            tap(rc == 0 and b"pool:" in out and b"accepted conn:" in out,
                "php-fpm: the status page (pm.status_path)", "rc=%s out=%r err=%s" % (rc, out, err))
            rc, out, err = call(fpm.address, "/ping")
            rc2, out2, err2 = call("--ping", fpm.address, "/ping")
            tap(rc == 0 and out == b"pong" and rc2 == 0 and out2.startswith(b"ok: "),
                "php-fpm: ping.path answers pong; --ping ADDRESS /ping exits 0",
                "rc=%s out=%r rc2=%s out2=%r %s" % (rc, out, rc2, out2, err2))
            rc, out, err = call("--get-values", fpm.address)
            tap(rc == 0 and b"FCGI_MPXS_CONNS=0" in out, "php-fpm: --get-values says FCGI_MPXS_CONNS=0",
                "rc=%s out=%r err=%s" % (rc, out, err))
            rc, out, err = call("--root", www, fpm.address, "/missing.php")
            tap(rc == 4 and "Primary script unknown" in err,
                "php-fpm: a missing script is 404 (exit 4) with php-fpm's STDERR line",
                "rc=%s err=%s" % (rc, err))
            rc, out, err = call("-i", "--root", www, fpm.address, "/index.php/extra/path?x=1")
            tap(rc == 0 and head_of(out).get("x-query") == "x=1",
                "php-fpm: PATH_INFO split (/index.php/extra/path)", "rc=%s out=%r err=%s" % (rc, out, err))
        test_fcgikit_roles_and_statuses(tmp, peers)
        test_errors(tmp, peers)
        test_cgi_fcgi(tmp, peers)
    finally:
        for p in started:
            p.stop()
        for p in getattr(main, "extra", []):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % len(results))
    return 0 if all(ok for ok, _, _, _ in results) else 1


def test_fcgikit_roles_and_statuses(tmp, peers):
    main.extra = getattr(main, "extra", [])
    ex = os.path.join(BUILD, "examples")
    # Authorizer and Filter examples.
    try:
        sock = os.path.join(tmp, "auth.sock")
        a = start("authorizer", [os.path.join(ex, "authorizer"), "unix:" + sock], sock, tmp)
        main.extra.append(a)
        rc, out, err = call("--role", "authorizer", "-i", "-H", "Authorization: Basic ZGVtbzpzZWNyZXQ=",
                            a.address, "/private")
        rc2, out2, _ = call("--role", "authorizer", a.address, "/private")
        tap(rc == 0 and head_of(out).get("variable-auth_user") == "demo" and rc2 == 4,
            "authorizer example: 200 with Variable-AUTH_USER (exit 0), 401 without credentials (exit 4)",
            "rc=%s out=%r rc2=%s" % (rc, out, rc2))
    except RuntimeError as e:
        tap(False, "authorizer example starts", e)
    try:
        sock = os.path.join(tmp, "filter.sock")
        fl = start("filter", [os.path.join(ex, "filter"), "unix:" + sock], sock, tmp)
        main.extra.append(fl)
        data = os.path.join(tmp, "data.txt")
        with open(data, "wb") as f:
            f.write(b"hello, filter\n" * 1000)
        rc, out, err = call("--data-file", data, fl.address, "/data.txt")
        tap(rc == 0 and out == b"HELLO, FILTER\n" * 1000,
            "filter example: --data-file sent as DATA with FCGI_DATA_LENGTH, filtered back",
            "rc=%s out=%r err=%s" % (rc, out[:100], err))
    except RuntimeError as e:
        tap(False, "filter example starts", e)

    # Every protocol status from fk_app (libfcgikit with the settings echo has no flag for).
    try:
        exe = os.path.join(tmp, "fk_app")
        cc(exe, os.path.join(ROOT, "tests", "clientpeers", "fk_app.c"),
           os.path.join(BUILD, "libfcgikit.a"))
        sock = os.path.join(tmp, "nompx.sock")
        nompx = start("fk_app-nompx", [exe, "unix:" + sock, "--no-mpx"], sock, tmp)
        main.extra.append(nompx)
        rc, out, err = run([FCGIKIT, "bench", "-q", "--json", "--force-mpx", "-m", "4", "-c", "1",
                            "-n", "200", "-p", "HOLD_MS=2", nompx.address], timeout=60)
        j = json.loads(out) if out.startswith(b"{") else {}
        tap(j.get("errors", {}).get("cant_mpx_conn", 0) > 0 and j.get("requests", 0) > 0,
            "CANT_MPX_CONN: a multiplexing client refused by an application with mpx off",
            "rc=%s out=%s err=%s" % (rc, out, err))
        rc, out, err = run([FCGIKIT, "bench", "-q", "--json", "-m", "4", "-c", "1", "-n", "200",
                            "-p", "HOLD_MS=2", nompx.address], timeout=60)
        j = json.loads(out) if out.startswith(b"{") else {}
        tap(j.get("mpx") == 1 and j.get("errors_total") == 0 and j.get("requests") == 200,
            "CANT_MPX_CONN avoided: bench asks GET_VALUES first and falls back",
            "rc=%s out=%s err=%s" % (rc, out, err))

        sock = os.path.join(tmp, "one.sock")
        one = start("fk_app-max1", [exe, "unix:" + sock, "--max-reqs", "1"], sock, tmp)
        main.extra.append(one)
        holder = subprocess.Popen([FCGIKIT, "call", "-p", "HOLD_MS=1500", one.address],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.4)
        rc, out, err = call(one.address)
        holder.wait(10)
        tap(rc == 8 and "OVERLOADED" in err and holder.returncode == 0,
            "OVERLOADED: exit 8 while the only request slot is taken",
            "rc=%s err=%s holder=%s" % (rc, err, holder.returncode))
        rc, out, err = call("--role", "7", one.address)
        tap(rc == 10 and "UNKNOWN_ROLE" in err, "UNKNOWN_ROLE: exit 10", "rc=%s err=%s" % (rc, err))
        rc, out, err = call(one.address)
        tap(rc == 0 and out == b"ok\n", "REQUEST_COMPLETE: exit 0", "rc=%s out=%r err=%s" % (rc, out, err))
    except (RuntimeError, ValueError) as e:
        tap(False, "fk_app: protocol statuses", e)


def test_errors(tmp, peers):
    # No such socket file.
    rc, out, err = call("unix:" + os.path.join(tmp, "nothing.sock"))
    tap(rc == 3 and "no such socket file" in err and err.count("\n") == 1,
        "no such socket file: exit 3, one line", "rc=%s err=%s" % (rc, err))
    # Connection refused: a TCP port with no listener (bound, never listening).
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    rc, out, err = call("127.0.0.1:%d" % port)
    s.close()
    tap(rc == 3 and "connection refused" in err and err.count("\n") == 1,
        "connection refused: exit 3, one line", "rc=%s err=%s" % (rc, err))
    # A Unix socket file nobody listens on any more.
    stale = os.path.join(tmp, "stale.sock")
    u = socket.socket(socket.AF_UNIX)
    u.bind(stale)
    u.close()
    rc, out, err = call("unix:" + stale)
    tap(rc == 3 and "connection refused" in err, "stale socket file: connection refused, exit 3",
        "rc=%s err=%s" % (rc, err))
    # Permission denied: a socket in a directory this user may not enter.
    echo = peers.get("fcgikit-echo")
    if isinstance(echo, Peer):
        priv = os.path.join(tmp, "priv")
        os.mkdir(priv, 0o700)
        psock = os.path.join(priv, "s.sock")
        try:
            p = start("echo-priv", [os.path.join(BUILD, "examples", "echo"), "unix:" + psock],
                      psock, tmp)
            main.extra.append(p)
            cmd = [FCGIKIT, "call", "unix:" + psock]
            setpriv = shutil.which("setpriv")
            if os.geteuid() == 0 and setpriv:
                cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"] + cmd
                os.chmod(tmp, 0o755)
            elif os.geteuid() == 0:
                cmd = None
            else:
                os.chmod(priv, 0)
            if cmd:
                rc, out, err = run(cmd)
                tap(rc == 3 and "permission denied" in err and err.count("\n") == 1,
                    "permission denied: exit 3, one line", "rc=%s err=%s" % (rc, err))
            else:
                tap(True, "permission denied", skip="root without setpriv")
        finally:
            os.chmod(priv, 0o700)
    # A peer that speaks HTTP.
    nginx = shutil.which("nginx")
    if nginx:
        nd = os.path.join(tmp, "nginx")
        os.makedirs(os.path.join(nd, "logs"))
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        conf = os.path.join(nd, "nginx.conf")
        with open(conf, "w") as f:
            f.write("daemon off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log;\n"
                    "events { worker_connections 64; }\nhttp { access_log off;\n"
                    "client_body_temp_path %s; fastcgi_temp_path %s; proxy_temp_path %s;\n"
                    "uwsgi_temp_path %s; scgi_temp_path %s;\n"
                    "server { listen 127.0.0.1:%d; location / { return 200 \"hi\\n\"; } } }\n"
                    % ((nd,) * 7 + (port,)))
        proc = subprocess.Popen([nginx, "-c", conf, "-p", nd], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        ng = Peer("nginx", proc, "", os.path.join(nd, "error.log"))
        main.extra.append(ng)

        def up():
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return True
            except OSError:
                return False
        if wait_for(up, 10):
            rc, out, err = call("127.0.0.1:%d" % port, "/")
            tap(rc == 7 and "does not speak FastCGI" in err and "HTTP" in err and err.count("\n") == 1,
                "an HTTP server (nginx): 'does not speak FastCGI', exit 7, one line",
                "rc=%s err=%s" % (rc, err))
            rc, out, err = call("--ping", "127.0.0.1:%d" % port)
            tap(rc == 1 and err.startswith("fail: ") and err.count("\n") == 1,
                "--ping against HTTP: exit 1 with a one-line reason", "rc=%s err=%s" % (rc, err))
        else:
            tap(False, "nginx starts", ng.log_tail())
    else:
        tap(True, "HTTP peer", skip="nginx not installed")
    # A peer that accepts and never answers: the timeout.
    mute = socket.socket(socket.AF_UNIX)
    msock = os.path.join(tmp, "mute.sock")
    mute.bind(msock)
    mute.listen(8)
    t0 = time.time()
    rc, out, err = call("--timeout", "0.5", "unix:" + msock)
    took = time.time() - t0
    mute.close()
    tap(rc == 6 and took < 3 and "timed out" in err, "--timeout 0.5 against a mute peer: exit 6",
        "rc=%s took=%.2f err=%s" % (rc, took, err))


def test_cgi_fcgi(tmp, peers):
    echo = peers.get("fcgikit-echo")
    if not isinstance(echo, Peer):
        tap(True, "cgi-fcgi -bind -connect", skip="echo not running")
        return
    env = {"PATH": os.environ.get("PATH", ""), "REQUEST_METHOD": "POST", "CONTENT_LENGTH": "5",
           "QUERY_STRING": "via=cgi-fcgi", "GATEWAY_INTERFACE": "CGI/1.1"}
    rc, out, err = run([FCGIKIT, "call", "-bind", "-connect", echo.sock], env=env,
                       input_bytes=b"hello and more than CONTENT_LENGTH")
    tap(rc == 0 and b"X-Query: via=cgi-fcgi" in out and out.endswith(b"\r\n\r\nhello"),
        "fcgikit call -bind -connect PATH: environment as params, CONTENT_LENGTH bytes of stdin, "
        "raw response", "rc=%s out=%r err=%s" % (rc, out, err))
    link = os.path.join(tmp, "cgi-fcgi")
    os.symlink(os.path.abspath(FCGIKIT), link)
    rc, out, err = run([link, "-bind", "-connect", echo.address], env=env, input_bytes=b"12345")
    tap(rc == 0 and out.endswith(b"12345") and b"X-Request-Method: POST" in out,
        "run as cgi-fcgi (a symlink): the same", "rc=%s out=%r err=%s" % (rc, out, err))


if __name__ == "__main__":
    sys.exit(main())
