"""The parts of Courier's benchmark runner (bench/run.py) that start and
measure things: the environment (build, fake APNs certificate, temporary
directory), a `courier serve` on a fresh data dir, `courier simulate`, wrk,
and the nginx and Beast ceilings. bench/run.py runs the benchmarks and writes
the report.
"""
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Env:
    def __init__(self, args):
        self.args = args
        self.build = os.path.join(ROOT, args.build_dir)
        self.courier = os.path.join(self.build, "courier")
        # Added to every `courier serve` (run.py --serve-args), e.g. "--db-pool 4".
        self.serve_args = shlex.split(getattr(args, "serve_args", None) or "")
        self.tmp = tempfile.mkdtemp(prefix="courier-bench-")
        self.apns_port = free_port()
        self.apns_cert = os.path.join(self.tmp, "apns.crt")
        self.apns_key = os.path.join(self.tmp, "apns.key")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "30", "-subj", "/CN=127.0.0.1", "-addext",
             "subjectAltName=IP:127.0.0.1", "-keyout", self.apns_key, "-out", self.apns_cert],
            check=True, capture_output=True)

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


class Server:
    """`courier serve` on a fresh (or given) data dir, pushing to the
    simulator's fake APNs."""

    def __init__(self, env, name, data_dir=None, extra=()):
        self.env = env
        self.port = free_port()
        self.data = data_dir or os.path.join(env.tmp, name)
        self.url = f"https://127.0.0.1:{self.port}"
        cmd = [env.courier, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data,
               "--public-url", self.url, "--apns-url", f"https://127.0.0.1:{env.apns_port}",
               "--apns-ca", env.apns_cert, "--log-level", "warn", *extra, *env.serve_args]
        self.log = open(os.path.join(env.tmp, name + ".log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        ctx = None
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"courier serve exited: see {self.log.name}")
            try:
                if ctx is None and os.path.exists(os.path.join(self.data, "tls", "ca.crt")):
                    ctx = ssl.create_default_context(cafile=os.path.join(self.data, "tls", "ca.crt"))
                if ctx:
                    urllib.request.urlopen(self.url + "/healthz", context=ctx, timeout=2).read()
                    return
            except Exception:
                pass
            time.sleep(0.1)
        raise RuntimeError("courier serve did not answer /healthz within 60 s")

    def peak_rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def simulate(env, server, *args, apns=False):
    cmd = [env.courier, "simulate", "--json", "--url", server.url, "--data-dir", server.data,
           "--import-push-cert", *map(str, args)]
    if apns:
        cmd += ["--apns-listen", f"127.0.0.1:{env.apns_port}", "--apns-cert", env.apns_cert,
                "--apns-key", env.apns_key]
    log(" ".join(cmd[1:]))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError(f"simulate failed ({p.returncode}): {p.stderr[-2000:]}\n{p.stdout[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


WRK_LAT = re.compile(r"^\s+(50|90|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def wrk(env, url, script, connections, seconds, threads):
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script, url]
    log(" ".join(cmd))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for pct, val, unit in WRK_LAT.findall(out):
        lat[pct] = float(val) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors: .*", out)
    return {"rps": rps, "p50": lat.get("50"), "p90": lat.get("90"), "p99": lat.get("99"),
            "non2xx": int(bad.group(1)) if bad else 0, "socket_errors": errs.group(0) if errs else "",
            "raw": out}


def nginx_ceiling(env, data_dir, script, connections, seconds, threads):
    """nginx `return 200` with Courier's TLS certificate and protocol
    settings (TLS 1.2+, client certificate requested, not required)."""
    port = free_port()
    prefix = os.path.join(env.tmp, "nginx")
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    tls = os.path.join(data_dir, "tls")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes {os.cpu_count()};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {prefix}/body;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {tls}/server.crt;
    ssl_certificate_key {tls}/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_verify_client optional_no_ca;
    location / {{ return 200; }}
  }}
}}
""")
    p = subprocess.Popen(["nginx", "-p", prefix, "-c", conf], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.05)
        return wrk(env, f"https://127.0.0.1:{port}", script, connections, seconds, threads)
    finally:
        p.terminate()
        p.wait()


def beast_ceiling(env, data_dir, script, connections, seconds, threads):
    """Courier's own listener answering 200 on its I/O thread (bench/ceiling_server)."""
    tls = os.path.join(data_dir, "tls")
    port = free_port()
    p = subprocess.Popen([os.path.join(env.build, "bench", "ceiling_server"), "--listen",
                          f"127.0.0.1:{port}", "--cert", os.path.join(tls, "server.crt"), "--key",
                          os.path.join(tls, "server.key")], stdout=subprocess.PIPE, text=True)
    try:
        p.stdout.readline()  # "listening on port N"
        return wrk(env, f"https://127.0.0.1:{port}", script, connections, seconds, threads)
    finally:
        p.terminate()
        p.wait()


# ------------------------------------------------------------------ benchmarks
