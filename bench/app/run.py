#!/usr/bin/env python3
"""Side-by-side: `hello` on libfcgikit vs the same program on Debian's libfcgi, behind the
same fronts (nginx with upstream keepalive, HAProxy fcgi-app with keep-conn, HAProxy with
mpxs-conns), driven by wrk in one run. Prints, per front and thread count: requests/s, the
ratio, p50/p99, errors, connections left waiting in the application's accept queue, and
syscalls per request (strace -c, a separate short run, since strace slows what it counts).

The machine is shared and noisy: read the ratios and the per-request counts, not the rates.

  bench/app/run.py [--seconds 5] [--threads 2,8] [--fronts nginx,haproxy-keep,haproxy-mpxs]
                   [--nginx-keepalive 64] [--out FILE.md]

nginx keeps as many idle upstream connections as wrk opens client connections (64): with a
smaller pool it closes and reopens upstream connections all the time, and what is measured is
that churn (nginx's connect, the application's accept and close) more than the application.
libfcgi serves only as many connections as it has threads either way. `--nginx-keepalive 32`
shows the other case.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("FCGIKIT_BUILD", os.path.join(ROOT, "build"))
sys.path.insert(0, os.path.join(ROOT, "tests", "peers"))
import peers  # noqa: E402

def build_libfcgi_hello(outdir):
    exe = os.path.join(outdir, "libfcgi_hello")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(ROOT, "bench/peers/libfcgi_hello.c"),
                    "-lfcgi", "-pthread"], check=True)
    return exe


def start_app(kind, addr, threads, libfcgi_exe):
    """addr: a Unix socket path, or 127.0.0.1:PORT."""
    unix = addr.startswith("/")
    if kind == "fcgikit":
        cmd = [os.path.join(BUILD, "examples/hello"), ("unix:" if unix else "") + addr,
               "--threads", str(threads)]
    else:
        cmd = [libfcgi_exe, ("unix:" if unix else "") + addr, "--threads", str(threads)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    up = (lambda: os.path.exists(addr)) if unix else (lambda: peers.port_open(int(addr.rsplit(":", 1)[1])))
    if not peers.wait_for(up):
        peers.stop_process(p)
        raise RuntimeError("app did not start: " + " ".join(cmd))
    return p


def start_front(front, tmp, port, addr, keepalive=64):
    unix = addr.startswith("/")
    if front == "nginx":
        conf = os.path.join(tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/b; fastcgi_temp_path {tmp}/f; proxy_temp_path {tmp}/p;
    uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;
    upstream app {{ server {"unix:" if unix else ""}{addr}; keepalive {keepalive}; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ include /etc/nginx/fastcgi_params; fastcgi_keep_conn on;
                     fastcgi_pass app; }}
    }}
}}
""")
        cmd = ["nginx", "-p", tmp, "-c", conf, "-g", "daemon off;"]
    else:
        mpxs = front == "haproxy-mpxs"
        conf = os.path.join(tmp, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(f"""global
    maxconn 8192
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
fcgi-app app
    docroot {tmp}
    option keep-conn
{"    option mpxs-conns" if mpxs else ""}
{"    option max-reqs 64" if mpxs else ""}
{"    option get-values" if mpxs else ""}
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    use-fcgi-app app
    http-reuse always
    server s1 {"unix@" if unix else ""}{addr} proto fcgi
""")
        cmd = ["haproxy", "-db", "-f", conf]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, front + ".log"), "w"))
    if not peers.wait_for(lambda: peers.port_open(port)):
        peers.stop_process(p)
        raise RuntimeError("front did not start: " + front)
    return p


def accept_queue(addr):
    """Connections waiting in the listening socket's accept queue (ss: Recv-Q)."""
    unix = addr.startswith("/")
    out = subprocess.run(["ss", "-xlnH" if unix else "-tlnH"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        local = parts[4] if unix and len(parts) > 4 else parts[3] if len(parts) > 3 else ""
        if local == addr:
            try:
                return int(parts[2] if unix else parts[1])
            except (IndexError, ValueError):
                return 0
    return 0


def run_wrk(port, seconds, sock=None):
    cmd = ["wrk", "-t1", "-c64", f"-d{seconds}s", "--latency", "--timeout", "5s",
           f"http://127.0.0.1:{port}/"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    samples = []
    start = time.time()
    end = start + seconds + 10
    while p.poll() is None and time.time() < end:
        if sock and time.time() > start + seconds / 2:
            samples.append(accept_queue(sock))
        time.sleep(0.25)
    out = p.communicate(timeout=15)[0]
    r = peers.wrk_summary(out)
    # min: connections that stay unserved the whole second half; max: the worst moment
    r["queue"] = (min(samples), max(samples)) if samples else (0, 0)
    r["ok_rps"] = r["rps"] * (r["requests"] - r["non2xx"]) / r["requests"] if r["requests"] else 0.0
    return r


def syscalls_per_request(pid, port, tmp, seconds=3):
    out = os.path.join(tmp, "strace.txt")
    st = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid), "-o", out],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    r = run_wrk(port, seconds)
    st.send_signal(signal.SIGINT)
    try:
        st.wait(10)
    except subprocess.TimeoutExpired:
        st.kill()
    total = 0
    detail = {}
    try:
        for line in open(out):
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                calls = int(parts[3])
                detail[parts[-1]] = calls
                total += calls
    except OSError:
        pass
    ok = r["requests"] - r["non2xx"]
    return (total / ok if ok > 0 else float("nan")), detail, ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--threads", default="2,8")
    ap.add_argument("--fronts", default="nginx,haproxy-keep,haproxy-mpxs")
    ap.add_argument("--no-strace", action="store_true")
    ap.add_argument("--nginx-keepalive", type=int, default=64,
                    help="nginx's upstream keepalive pool (wrk opens 64 connections)")
    ap.add_argument("--unix", action="store_true", help="Unix sockets instead of 127.0.0.1 TCP")
    ap.add_argument("--out")
    a = ap.parse_args()
    for tool in ("wrk", "nginx", "haproxy", "cc"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing (make deps installs the bench packages as root)")
    tmp = tempfile.mkdtemp(prefix="fcgikit-bench-")
    os.chmod(tmp, 0o755)  # nginx workers run as another user
    libfcgi_exe = build_libfcgi_hello(tmp)
    rows = []
    try:
        for front in a.fronts.split(","):
            for threads in map(int, a.threads.split(",")):
                res = {}
                for kind in ("fcgikit", "libfcgi"):
                    sock = os.path.join(tmp, f"{kind}.sock") if a.unix else f"127.0.0.1:{peers.free_port()}"
                    port = peers.free_port()
                    app = start_app(kind, sock, threads, libfcgi_exe)
                    fr = start_front(front, tmp, port, sock, a.nginx_keepalive)
                    try:
                        run_wrk(port, 1)  # warm up: connections, caches
                        r = run_wrk(port, a.seconds, sock)
                        if not a.no_strace:
                            r["sys"], r["sysdetail"], r["sysok"] = syscalls_per_request(app.pid, port, tmp)
                        else:
                            r["sys"] = float("nan")
                    finally:
                        peers.stop_process(fr)
                        peers.stop_process(app)
                        if a.unix and os.path.exists(sock):
                            os.unlink(sock)
                    res[kind] = r
                    print(f"  {front:13} {threads}t {kind:8} {r['ok_rps']:9.0f} ok req/s  p99 {r['p99']:8.2f} ms"
                          f"  errors {r['non2xx'] + r['sockerr']}  queue {r['queue'][0]}-{r['queue'][1]}"
                          f"  syscalls/req {r['sys']:.2f}", flush=True)
                    if r.get("sysok"):
                        # where the calls beyond one read and one write per request go
                        rest = sorted(((v / r["sysok"], k) for k, v in r["sysdetail"].items()
                                       if v / r["sysok"] >= 0.001), reverse=True)
                        print("      per request: " + ", ".join(f"{k} {v:.3f}" for v, k in rest),
                              flush=True)
                rows.append((front, threads, res))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    lines = ["| front | threads | impl | ok req/s | ratio | p50 ms | p99 ms | errors | accept queue min-max | syscalls/req |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for front, threads, res in rows:
        base = res["libfcgi"]["ok_rps"]
        for kind in ("fcgikit", "libfcgi"):
            r = res[kind]
            ratio = ("%.2f" % (r["ok_rps"] / base) if base else "inf") if kind == "fcgikit" else "1.00"
            lines.append(f"| {front} | {threads} | {kind} | {r['ok_rps']:.0f} | {ratio} | {r['p50']:.2f} | "
                         f"{r['p99']:.2f} | {r['non2xx'] + r['sockerr']} | {r['queue'][0]}-{r['queue'][1]} | {r['sys']:.2f} |")
    table = "\n".join(lines)
    print()
    print(table)
    if a.out:
        with open(a.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
