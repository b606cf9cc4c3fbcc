#!/usr/bin/env python3
"""Courier against NanoMDM, side by side (issue 16), and Courier's TLS Idle
with a fresh Mdm-Signature on every request.

    /work/shared/peer/build_nanomdm.sh MIRROR_ROOT      # NanoMDM in /tmp/peer/bin
    bench/peer.py --runs 3 --out /tmp/peer.md           # build/courier must exist
    bench/peer.py --runs 1 --seconds 3 --devices 200    # a smoke run
    bench/peer.py --profile                             # and perf summaries of Courier

Plain-HTTP loads, the same wrk scripts for both servers (bench/peer_lua.py),
the device certificate URL-escaped in X-Client-Cert as nginx's
$ssl_client_escaped_cert; one device CA given to both (Courier `--device-ca`,
NanoMDM `-ca`):

  idle     every device's Idle round-robin, wrk -t2 -c32
  enqueue  PUT /v1/enqueue/<udid>?nopush=1, a unique CommandUUID each, wrk -tC -cC,
           each connection its own devices (never two enqueues for one device at once:
           NanoMDM's kv queue is built outside its transaction and can lose one)
  drain    Idle, then Acknowledged for every command handed out, device after device,
           over what enqueue queued, wrk -tC -cC; round trips = acknowledgements
  rss      VmRSS after the three loads (and VmHWM)

Servers: Courier (`--http-listen --cert-header X-Client-Cert`, SQLite, WAL,
synchronous=FULL), NanoMDM `-storage filekv` (a file per key, no fsync) and
`-storage inmem` (keeps nothing). The three alternate within each run (the
order rotates). Server CPU per request is utime+stime from /proc/PID/stat over
the load, divided by its requests; it is far less distorted by other load on
the machine than throughput is.

TLS (Courier only, `--listen`): A as bench/run.py has it (wrk replaying 1,000
pre-signed Idles: signature verification cached, labelled so), A with a fresh
Mdm-Signature on every request (`courier simulate --scenario idle --auth
signature`: each request signed anew, ECDSA P-256, so no two share one), A
over per-device TLS client certificates (`--auth tls`) and B (`--scenario
drain --auth tls`).
"""
import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import http.client
import base64
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, Env, Server, free_port, log, median, simulate, wrk  # noqa: E402
import peer_lua  # noqa: E402

TOPIC = "com.apple.mgmt.External.peer-bench"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


# ------------------------------------------------------------------ identities


def make_identities(tmp, n, udid_style="legacy"):
    """A device CA (RSA 2048) and n device certificates (EKU clientAuth) on
    one RSA 2048 key: the header path never proves possession, so one key
    serves; every certificate is distinct. Returns (ca_file, [(udid, hdr)])."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "peer-bench device CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
          .sign(ca_key, hashes.SHA256()))
    ca_file = os.path.join(tmp, "device-ca.pem")
    with open(ca_file, "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    out = []
    for i in range(n):
        # modern: iPhone XS and later, Apple silicon (0000XXXX-16 hex); legacy:
        # 40 hex digits. NanoMDM's filekv stores a key under directories named
        # by its first four characters (Split2X2Transform), so with modern
        # UDIDs every device's queue items share one directory.
        udid = (f"0000{('8020', '8030', '8101', '8110', '8120')[i % 5]}-{os.urandom(8).hex().upper()}" if udid_style == "modern"
                else os.urandom(20).hex().upper())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, udid)]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=300))
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
                .add_extension(aki, False)
                .sign(ca_key, hashes.SHA256()))
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        out.append((udid, urllib.parse.quote(pem, safe="")))
    return ca_file, out


def plist(inner):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" '
            '"http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n<plist version="1.0"><dict>'
            + inner + "</dict></plist>\n").encode()


def enroll(port, devices, workers=8):
    """Authenticate + TokenUpdate for every device, over plain HTTP with its
    certificate in X-Client-Cert."""
    def one_slice(k):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for udid, hdr in devices[k::workers]:
            h = {"X-Client-Cert": hdr, "Content-Type": "application/x-apple-aspen-mdm-checkin"}
            auth = plist(f"<key>MessageType</key><string>Authenticate</string><key>UDID</key>"
                         f"<string>{udid}</string><key>Topic</key><string>{TOPIC}</string>"
                         f"<key>SerialNumber</key><string>S{udid[-10:]}</string>"
                         f"<key>ProductName</key><string>iPhone15,2</string>"
                         f"<key>OSVersion</key><string>17.1</string>"
                         f"<key>BuildVersion</key><string>21B74</string>")
            tok = base64.b64encode(udid.encode().ljust(32, b"\0")[:32]).decode()
            upd = plist(f"<key>MessageType</key><string>TokenUpdate</string><key>UDID</key>"
                        f"<string>{udid}</string><key>Topic</key><string>{TOPIC}</string>"
                        f"<key>Token</key><data>{tok}</data>"
                        f"<key>PushMagic</key><string>magic-{udid}</string>")
            for body in (auth, upd):
                c.request("PUT", "/mdm", body, h)
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    raise RuntimeError(f"enrolling {udid}: HTTP {r.status}")
        c.close()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(one_slice, range(workers)))


# ------------------------------------------------------------------ servers


class Courier:
    label = "Courier (SQLite, synchronous=FULL)"

    def __init__(self, env, name, ca_file):
        self.http_port = free_port()
        self.s = Server(env, name, extra=("--http-listen", f"127.0.0.1:{self.http_port}",
                                          "--cert-header", "X-Client-Cert", "--device-ca", ca_file))
        self.pid = self.s.proc.pid
        with open(os.path.join(self.s.data, "api-key")) as f:
            key = f.read().strip()
        self.auth = "Basic " + base64.b64encode(f"nanomdm:{key}".encode()).decode()

    def stop(self):
        self.s.stop()


class NanoMDM:
    def __init__(self, env, name, ca_file, storage, exe):
        self.label = f"NanoMDM {storage}"
        self.http_port = free_port()
        key = os.urandom(16).hex()
        self.auth = "Basic " + base64.b64encode(f"nanomdm:{key}".encode()).decode()
        cmd = [exe, "-listen", f"127.0.0.1:{self.http_port}", "-ca", ca_file, "-cert-header",
               "X-Client-Cert", "-api", key, "-storage", storage]
        # one -storage-dsn per -storage (inmem ignores its empty one)
        cmd += ["-storage-dsn", os.path.join(env.tmp, name + "-db") if storage == "filekv" else ""]
        self.log = open(os.path.join(env.tmp, name + ".log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nanomdm exited: see {self.log.name}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/version", timeout=2).read()
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError("nanomdm did not answer /version within 30 s")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ------------------------------------------------------------------ loads


def wrk_load(srv, script, threads, conns, secs):
    c0 = cpu_seconds(srv.pid)
    r = wrk(None, f"http://127.0.0.1:{srv.http_port}", script, conns, secs, threads)
    r["cpu_s"] = cpu_seconds(srv.pid) - c0
    m = re.search(r"(\d+) requests in", r["raw"])
    r["requests"] = int(m.group(1)) if m else None
    line = re.search(r"^PEER .*$", r["raw"], re.M)
    for k, v in re.findall(r"(\w+)=(\d+)", line.group(0) if line else ""):
        r[k] = int(v)
    r["cpu_us"] = r["cpu_s"] / r["requests"] * 1e6 if r["requests"] else None
    del r["raw"]
    return r


class Profiler:
    """perf record -g on the server for the duration of one load."""

    def __init__(self, pid, out):
        self.out = out
        self.p = subprocess.Popen(["perf", "record", "-g", "-F", "499", "-o", out, "-p", str(pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        self.p.wait(60)
        return summarize_profile(self.out)


CATS = [
    ("store", re.compile(r"libsqlite|sqlite3|courier::db|\[kernel\.kallsyms\] .*(ext4|jbd2|fsync|blk|bio_|"
                         r"iowrite|folio|filemap|pagecache|generic_perform_write|nvme|virtblk)", re.I)),
    ("crypto", re.compile(r"libcrypto|CMS_|X509|EVP_", re.I)),
    ("parse", re.compile(r"pugixml|plist|xml|json|parse|base64|url_?decode|unescape|pem|basic_parser|boost_url",
                         re.I)),
    ("scheduling", re.compile(r"\[kernel\.kallsyms\] .*(finish_task_switch|schedule|futex|"
                              r"_raw_spin_unlock_irqrestore|try_to_wake_up|wake_up|switch_to|"
                              r"pick_next|enqueue_task|dequeue_task|update_curr)|pthread_mutex|pthread_cond|"
                              r"pthread_rwlock", re.I)),
    ("transport", re.compile(r"kernel|libssl|SSL_|asio|beast|epoll", re.I)),
]
OTHER = "other (malloc, memcpy, Courier's own code)"


def summarize_profile(path):
    """Self time grouped into store, crypto, parse, scheduling, transport,
    other (by shared object and symbol name: a heuristic, printed with the
    top shared objects and symbols so it can be checked)."""
    p = subprocess.run(["perf", "report", "-i", path, "--no-children", "--sort", "dso,sym", "--stdio",
                        "-g", "none", "--percent-limit", "0"], capture_output=True, text=True)
    cats = {c: 0.0 for c, _ in CATS}
    cats[OTHER] = 0.0
    dsos = {}
    top = []
    samples = re.search(r"# Samples: (\S+)", p.stdout)
    for line in p.stdout.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(.*)$", line)
        if not m:
            continue
        pct, dso, sym = float(m.group(1)), m.group(2), m.group(4).strip()
        key = dso + " " + sym
        dsos[dso] = dsos.get(dso, 0.0) + pct
        for c, rx in CATS:
            if rx.search(key):
                cats[c] += pct
                break
        else:
            cats[OTHER] += pct
        if len(top) < 10:
            top.append(f"{pct:.1f}% {dso} {sym[:60]}")
    dso_top = [f"{d} {v:.0f}%" for d, v in sorted(dsos.items(), key=lambda x: -x[1])[:6]]
    return {"categories": cats, "top": top, "dsos": dso_top,
            "samples": samples.group(1) if samples else "?"}


def drain_seconds(args):
    """The round trips drain what the enqueue load queued: half its time, so
    that a server draining up to twice as fast as it enqueues never runs out
    (a connection that does is reported: its figure is then a floor)."""
    return max(1, args.seconds // 2)


def run_peer_server(env, srv, devices, args, i, prof_dir=None):
    """idle, enqueue, drain, rss on one started server."""
    out = {}
    tmp = env.tmp
    devfile = os.path.join(tmp, "devices.lua")
    t0 = time.time()
    enroll(srv.http_port, devices)
    out["enroll_s"] = time.time() - t0
    idle = os.path.join(tmp, "idle.lua")
    peer_lua.write_script(idle, peer_lua.IDLE, devfile, 2)
    enq = os.path.join(tmp, f"enqueue{i}.lua")
    peer_lua.write_script(enq, peer_lua.ENQUEUE, devfile, args.connections, auth=srv.auth,
                          seed=int.from_bytes(os.urandom(3), "big"))
    drain = os.path.join(tmp, "drain.lua")
    peer_lua.write_script(drain, peer_lua.DRAIN, devfile, args.connections)
    for name, script, th in (("idle", idle, 2), ("enqueue", enq, args.connections),
                             ("drain", drain, args.connections)):
        prof = Profiler(srv.pid, os.path.join(prof_dir, f"{name}.data")) if prof_dir else None
        secs = drain_seconds(args) if name == "drain" else args.seconds
        r = wrk_load(srv, script, th, args.connections if name != "idle" else 32, secs)
        if prof:
            out[name + "_profile"] = prof.stop()
        if name == "drain":
            r["round_trips_per_second"] = r.get("acks", 0) / secs
            r["cpu_us_per_round_trip"] = r["cpu_s"] / r["acks"] * 1e6 if r.get("acks") else None
        out[name] = r
    out["rss_mib"] = status_kib(srv.pid, "VmRSS") / 1024
    out["hwm_mib"] = status_kib(srv.pid, "VmHWM") / 1024
    return out


def bench_peer(env, args):
    ca_file, devices = make_identities(env.tmp, args.devices, args.udids)
    peer_lua.write_devices(os.path.join(env.tmp, "devices.lua"), devices)
    kinds = args.servers.split(",")
    runs = []
    for i in range(args.runs):
        order = kinds[i % len(kinds):] + kinds[:i % len(kinds)]
        row = {}
        for k in order:
            name = f"peer{i}-{k}"
            srv = (Courier(env, name, ca_file) if k == "courier"
                   else NanoMDM(env, name, ca_file, k, args.nanomdm))
            try:
                row[k] = run_peer_server(env, srv, devices, args, i)
            finally:
                srv.stop()
            r = row[k]
            log(f"run {i + 1} {k}: idle {r['idle']['rps']:.0f}/s {r['idle']['cpu_us']:.0f} µs, "
                f"enqueue {r['enqueue']['rps']:.0f}/s {r['enqueue']['cpu_us']:.0f} µs, "
                f"drain {r['drain']['round_trips_per_second']:.0f}/s, rss {r['rss_mib']:.0f} MiB")
        runs.append(row)
    return runs


class CpuSampler:
    """utime+stime of a process every 50 ms, to take the CPU of the last
    `seconds` of a simulator run (its measured phase; enrollment comes first)."""

    def __init__(self, pid):
        self.pid, self.samples, self.stop_ev = pid, [], threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop_ev.is_set():
            self.samples.append((time.time(), cpu_seconds(self.pid)))
            self.stop_ev.wait(0.05)

    def last(self, seconds):
        self.stop_ev.set()
        self.t.join()
        end_t, end_c = self.samples[-1]
        start = min(self.samples, key=lambda s: abs(s[0] - (end_t - seconds)))
        return end_c - start[1]


def bench_tls(env, args, prof_dir=None):
    runs = []
    for i in range(args.runs):
        row = {}
        s = Server(env, f"tls{i}")
        try:
            script = os.path.join(env.tmp, f"signed{i}.lua")
            simulate(env, s, "--scenario", "enroll", "--devices", args.devices, "--auth", "signature",
                     "--connections", 16, "--wrk-script", script)
            c0 = cpu_seconds(s.proc.pid)
            r = wrk(env, s.url, script, 32, args.seconds, 2)
            m = re.search(r"(\d+) requests in", r["raw"])
            n = int(m.group(1)) if m else r["rps"] * args.seconds
            r["cpu_us"] = (cpu_seconds(s.proc.pid) - c0) / n * 1e6
            del r["raw"]
            row["cached"] = r
            for key, auth in (("fresh_signature", "signature"), ("tls_identity", "tls")):
                prof = None
                sampler = CpuSampler(s.proc.pid)
                if prof_dir and key == "fresh_signature":
                    # perf starts with the simulator; enrollment is a small share
                    prof = Profiler(s.proc.pid, os.path.join(prof_dir, "tls_fresh.data"))
                t = simulate(env, s, "--scenario", "idle", "--devices", args.devices, "--connections",
                             32, "--duration", args.seconds, "--auth", auth)["idle"]
                cpu = sampler.last(t["seconds"])
                if prof:
                    row["fresh_profile"] = prof.stop()
                row[key] = {"rps": t["per_second"], "p99": t["latency_ms"]["p99"],
                            "p50": t["latency_ms"]["p50"], "requests": t["requests"],
                            "cpu_us": cpu / t["requests"] * 1e6}
            row["rss_mib"] = status_kib(s.proc.pid, "VmRSS") / 1024
        finally:
            s.stop()
        s = Server(env, f"tlsb{i}")
        try:
            sampler = CpuSampler(s.proc.pid)
            d = simulate(env, s, "--scenario", "drain", "--devices", args.devices,
                         "--commands-per-device", args.commands_per_device, "--connections", 32,
                         "--auth", "tls")["drain"]
            cpu = sampler.last(d["seconds"])
            row["B"] = {"rps": d["round_trips_per_second"], "p99": d["latency_ms"]["p99"],
                        "requests": d["requests"], "cpu_us": cpu / d["requests"] * 1e6}
        finally:
            s.stop()
        log(f"TLS run {i + 1}: cached {row['cached']['rps']:.0f}/s, fresh signature "
            f"{row['fresh_signature']['rps']:.0f}/s, TLS identity {row['tls_identity']['rps']:.0f}/s, "
            f"B {row['B']['rps']:.0f}/s")
        runs.append(row)
    return runs


# ------------------------------------------------------------------ report


def f0(x, d=0):
    return "–" if x is None else f"{x:,.{d}f}"


def med(runs, *path):
    vals = []
    for r in runs:
        for p in path:
            r = r.get(p) if isinstance(r, dict) else None
        vals.append(r)
    return median(vals)


def met(ok):
    return "met" if ok else "**missed**"


def git_commit():
    return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()


def write_report(env, args, peer, tls, profiles, started, path):
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), "?")
    commit = getattr(args, "commit", None) or git_commit()
    nver = subprocess.run([args.nanomdm, "-version"], capture_output=True, text=True).stdout.strip()
    L = []
    w = L.append
    w("## Against NanoMDM\n")
    w(f"Generated by `bench/peer.py --runs {args.runs}` on {started:%Y-%m-%d %H:%M} UTC, Courier "
      f"`{commit}`, NanoMDM `{nver}` (built by `../shared/peer/build_nanomdm.sh`, Go "
      f"{subprocess.run(['go', 'version'], capture_output=True, text=True).stdout.split()[2] if shutil.which('go') else '?'}). "
      f"`nproc` = {os.cpu_count()}, `{cpu}`, load average at the end {getattr(args, 'load_avg', None) or os.getloadavg()[0]:.2f}. "
      f"{args.devices:,} devices, {args.seconds} s per load, medians of {args.runs} runs; "
      "wrk and the simulator share the cores with the server. **Server CPU per request** "
      "(utime+stime from `/proc/PID/stat` over the load ÷ its requests) is the figure to trust "
      "when the machine is shared; throughput moves with whatever else runs.\n")
    if args.note:
        w(args.note + "\n")
    if peer or tls:
        w("| load | Courier | NanoMDM filekv | NanoMDM in-memory |")
        w("|---|---|---|---|")
        if tls:
            w(f"| Idle, {args.devices:,} devices, TLS + `Mdm-Signature`, **cached** (wrk replays pre-signed "
              f"bodies) | {f0(med(tls, 'cached', 'rps'))}/s, {f0(med(tls, 'cached', 'cpu_us'))} µs | — | — |")
            w(f"| Idle, TLS + a **fresh** `Mdm-Signature` on every request | "
              f"{f0(med(tls, 'fresh_signature', 'rps'))}/s, {f0(med(tls, 'fresh_signature', 'cpu_us'))} µs "
              f"(p99 {f0(med(tls, 'fresh_signature', 'p99'), 2)} ms) | — | — |")
            w(f"| Idle, per-device TLS client certificates | {f0(med(tls, 'tls_identity', 'rps'))}/s, "
              f"{f0(med(tls, 'tls_identity', 'cpu_us'))} µs (p99 {f0(med(tls, 'tls_identity', 'p99'), 2)} ms)"
              " | — | — |")
        cells = {}
        for k in ("courier", "filekv", "inmem") if peer else ():
            cells[k] = [
                f"{f0(med(peer, k, 'idle', 'rps'))}/s, {f0(med(peer, k, 'idle', 'cpu_us'))} µs",
                f"{f0(med(peer, k, 'drain', 'round_trips_per_second'))}/s, "
                f"{f0(med(peer, k, 'drain', 'cpu_us_per_round_trip'))} µs",
                f"{f0(med(peer, k, 'enqueue', 'rps'))}/s, {f0(med(peer, k, 'enqueue', 'cpu_us'))} µs",
                f"{f0(med(peer, k, 'rss_mib'))} MiB (peak {f0(med(peer, k, 'hwm_mib'))})"]
        names = ["Idle, plain HTTP + `--cert-header`", "command round trips (Idle + Acknowledged), plain HTTP",
                 "single-target raw enqueue", f"RSS after the load ({args.devices:,} devices)"]
        for j, n in enumerate(names if peer else ()):
            w(f"| {n} | {cells['courier'][j]} | {cells['filekv'][j]} | {cells['inmem'][j]} |")
        if tls:
            w(f"| command round trips over TLS (B, per-device identities, {args.devices:,} × "
              f"{args.commands_per_device}) | {f0(med(tls, 'B', 'rps'))}/s, {f0(med(tls, 'B', 'cpu_us'))} µs "
              "per request | — | — |")
        w("\nµs = server CPU per request (per acknowledged command for round trips).\n")

    w("### Targets\n")
    w("| target | this run | |")
    w("|---|---|---|")
    if peer:
        def ratio_runs(load, key, other):
            xs = []
            for r in peer:
                a = r.get("courier", {}).get(load, {}).get(key)
                b = r.get(other, {}).get(load, {}).get(key)
                xs.append(a / b if a and b else None)
            return xs
        for text, load, key, other, need in (
                ("Idle (cert-header) ≥ NanoMDM in-memory", "idle", "rps", "inmem", 1.0),
                ("Idle (cert-header) ≥ 3× NanoMDM filekv", "idle", "rps", "filekv", 3.0),
                ("round trips ≥ NanoMDM in-memory", "drain", "round_trips_per_second", "inmem", 1.0),
                ("raw enqueue ≥ NanoMDM in-memory", "enqueue", "rps", "inmem", 1.0)):
            xs = ratio_runs(load, key, other)
            m = median(xs)
            w(f"| {text} | {f0(m, 2)}× (runs: {', '.join(f0(x, 2) + '×' for x in xs)}) | "
              f"{met(m is not None and m >= need)} |")
        rss = med(peer, "courier", "rss_mib")
        w(f"| RSS at {args.devices:,} active devices ≤ 64 MiB (cert-header loads) | {f0(rss)} MiB | "
          f"{met(rss is not None and rss <= 64)} |")
    if tls:
        for key, text in (("fresh_signature", "TLS Idle, fresh `Mdm-Signature` each: ≥ 10,000/s, p99 ≤ 10 ms"),
                          ("tls_identity", "TLS Idle, per-device client certificates: ≥ 10,000/s, p99 ≤ 10 ms")):
            rps, p99 = med(tls, key, "rps"), med(tls, key, "p99")
            w(f"| {text} | {f0(rps)}/s, p99 {f0(p99, 2)} ms | "
              f"{met(rps and rps >= 10000 and p99 is not None and p99 <= 10)} |")
        b = med(tls, "B", "rps")
        w(f"| round trips over TLS (B) ≥ 8,000/s | {f0(b)}/s | {met(b and b >= 8000)} |")
        rss = med(tls, "rss_mib")
        w(f"| RSS at {args.devices:,} active devices ≤ 64 MiB (after the per-device TLS load: "
          f"{args.devices:,} open TLS connections, {3 * args.devices:,} enrollments) | {f0(rss)} MiB | "
          f"{met(rss is not None and rss <= 64)} |")
    w("")

    w("### Every run\n")
    if peer:
        w("| run | server | Idle /s (p99 ms, µs CPU) | enqueue /s (p99 ms, µs CPU) | round trips /s "
          "(µs CPU, requests) | RSS MiB | enrol s | errors |")
        w("|---|---|---|---|---|---|---|---|")
        for i, r in enumerate(peer):
            for k in ("courier", "filekv", "inmem"):
                if k not in r:
                    continue
                x = r[k]
                errs = (x["idle"]["non2xx"] + x["enqueue"].get("bad", 0) + x["drain"].get("bad", 0))
                dry = " (ran out of commands)" if x["drain"].get("dry_threads") else ""
                w(f"| {i + 1} | {k} | {f0(x['idle']['rps'])} ({f0(x['idle']['p99'], 2)}, "
                  f"{f0(x['idle']['cpu_us'])}) | {f0(x['enqueue']['rps'])} ({f0(x['enqueue']['p99'], 2)}, "
                  f"{f0(x['enqueue']['cpu_us'])}) | {f0(x['drain']['round_trips_per_second'])}{dry} "
                  f"({f0(x['drain']['cpu_us_per_round_trip'])}, {x['drain']['requests']:,}) | "
                  f"{f0(x['rss_mib'])} | {f0(x['enroll_s'], 1)} | {errs} |")
        w("")
    if tls:
        w("| run | TLS Idle cached /s (µs) | fresh signature /s (p99 ms, µs) | per-device TLS /s "
          "(p99 ms, µs) | B /s (µs per request) | RSS MiB |")
        w("|---|---|---|---|---|---|")
        for i, r in enumerate(tls):
            w(f"| {i + 1} | {f0(r['cached']['rps'])} ({f0(r['cached']['cpu_us'])}) | "
              f"{f0(r['fresh_signature']['rps'])} ({f0(r['fresh_signature']['p99'], 2)}, "
              f"{f0(r['fresh_signature']['cpu_us'])}) | {f0(r['tls_identity']['rps'])} "
              f"({f0(r['tls_identity']['p99'], 2)}, {f0(r['tls_identity']['cpu_us'])}) | "
              f"{f0(r['B']['rps'])} ({f0(r['B']['cpu_us'])}) | {f0(r['rss_mib'])} |")
        w("")
    if profiles:
        w("### Where Courier's CPU goes (`perf record -g`, self time)\n")
        w("Grouped by shared object and symbol name (a heuristic; the top symbols are listed so it "
          "can be checked): store = SQLite; crypto = libcrypto (TLS records, CMS, X.509); parse = "
          "plist/XML/JSON/PEM/HTTP parsing; scheduling = context switches and wake-ups (kernel), "
          "mutexes; transport = the rest of the kernel (TCP on loopback), libssl, Asio/Beast.\n")
        w("| load | " + " | ".join(next(iter(profiles.values()))["categories"].keys()) + " |")
        w("|---|" + "---|" * len(next(iter(profiles.values()))["categories"]))
        for name, p in profiles.items():
            w(f"| {name} | " + " | ".join(f"{v:.0f} %" for v in p["categories"].values()) + " |")
        w("")
        for name, p in profiles.items():
            w(f"- {name} ({p['samples']} samples): by object " + ", ".join(p["dsos"]) +
              "; top symbols " + "; ".join(p["top"][:8]))
        w("")
    w("### How it was run\n")
    w("```")
    w("apt-get install -y golang-go                    # Go 1.19 (Debian 12)")
    w("../shared/peer/build_nanomdm.sh MIRROR_ROOT     # -> /tmp/peer/bin/nanomdm")
    w(f"bench/peer.py --runs {args.runs}{' --profile' if args.profile else ''}"
      + (f" --devices {args.devices}" if args.devices != 1000 else "")
      + (f" --seconds {args.seconds}" if args.seconds != 10 else "")
      + "   # writes bench/PEER.md and this section of docs/BENCHMARKS.md")
    w("bench/peer.py --only peer --servers filekv --udids modern --runs 1 --docs '' --out /tmp/modern.md")
    w("```\n")
    w("Per server and run: a fresh data dir; enrol every device (Authenticate + TokenUpdate, 8 "
      "clients); `wrk -t2 -c32` Idle; `wrk -t{c} -c{c}` enqueue (each connection its own devices, "
      "so no two enqueues for one device overlap: NanoMDM's `storage/kv/queue.go` builds the "
      "queue outside its transaction and two concurrent enqueues can lose a command); `wrk -t{c} "
      "-c{c}` round trips for half the enqueue load's time, draining what it queued (Idle, then "
      "Acknowledged for each command handed out, device after device; a connection that runs out "
      "is flagged in Every run); RSS. Target ratios are taken within each run, then their median. NanoMDM runs as its docs describe behind a "
      "TLS-terminating proxy (`-cert-header X-Client-Cert -ca <device CA>`), Courier with "
      "`--http-listen --cert-header X-Client-Cert --device-ca <device CA>`; no proxy runs, wrk "
      "sends the header as nginx's `$ssl_client_escaped_cert` would. The TLS rows are Courier "
      "alone (NanoMDM has no TLS listener): `courier simulate --scenario idle --auth signature` "
      "signs every request anew (ECDSA P-256 device keys: no two signatures alike), `--auth tls` "
      "gives each device its own client certificate and connection; their CPU is taken over the "
      "simulator's measured phase only.".replace("{c}", str(args.connections)))
    w("")
    notes = os.path.join(ROOT, "bench", "PEER_NOTES.md")
    if args.notes and os.path.exists(notes):
        with open(notes) as f:
            w(f.read())
    text = "\n".join(L).rstrip() + "\n"
    with open(path, "w") as f:
        f.write(text)
    log(f"wrote {path}")
    if args.docs:
        splice_section(args.docs, text)
        log(f"replaced the section \"Against NanoMDM\" of {args.docs}")


def splice_section(doc, text):
    """Replace `## Against NanoMDM` (up to the next `## ` heading) in doc, or
    append it."""
    old = open(doc).read() if os.path.exists(doc) else ""
    m = re.search(r"^## Against NanoMDM\n.*?(?=^## |\Z)", old, re.M | re.S)
    new = (old[:m.start()] + text + ("\n" if old[m.end():] else "") + old[m.end():] if m
           else old.rstrip() + "\n\n" + text)
    with open(doc, "w") as f:
        f.write(new)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=10, help="per load")
    ap.add_argument("--connections", type=int, default=32, help="enqueue and round-trip connections")
    ap.add_argument("--commands-per-device", type=int, default=100, help="B over TLS")
    ap.add_argument("--only", default="peer,tls", help="peer, tls or both")
    ap.add_argument("--udids", default="legacy", choices=("legacy", "modern"),
                    help="legacy: 40 random hex digits (NanoMDM filekv spreads its files); modern: "
                    "0000XXXX-… as since iPhone XS (filekv puts every queue item in one directory)")
    ap.add_argument("--servers", default="courier,filekv,inmem", help="peer: which servers")
    ap.add_argument("--profile", action="store_true",
                    help="afterwards, one more pass of Courier's loads under perf record -g")
    ap.add_argument("--nanomdm", default=os.path.join(os.environ.get("PEER_DIR", "/tmp/peer"), "bin",
                                                      "nanomdm"))
    ap.add_argument("--build-dir", default="build/bench",
                    help="a Release build of courier (bench/run.sh builds build/bench)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "PEER.md"),
                    help="the section, as markdown (bench/run.py appends bench/PEER.md to the report)")
    ap.add_argument("--docs", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"),
                    help="replace (or add) the section \"Against NanoMDM\" here; '' to leave it")
    ap.add_argument("--no-notes", dest="notes", action="store_false",
                    help="leave out bench/PEER_NOTES.md (the analysis written by hand)")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--from-json", default=None,
                    help="write the report from a --json-out file of an earlier run (same options)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    ap.add_argument("--note", default="", help="a paragraph to put under the heading")
    args = ap.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            d = json.load(f)
        started = datetime.datetime.fromisoformat(d["started"])
        args.load_avg = d.get("load_average")
        args.commit = d.get("commit")
        write_report(None, args, d["peer"], d["tls"], d["profiles"], started, args.out)
        return
    only = set(args.only.split(","))
    if "peer" in only and not os.access(args.nanomdm, os.X_OK):
        sys.exit(f"no NanoMDM at {args.nanomdm}: run ../shared/peer/build_nanomdm.sh first")
    env = Env(args)
    started = datetime.datetime.now(datetime.timezone.utc)
    peer = tls = None
    profiles = {}
    try:
        if "peer" in only:
            peer = bench_peer(env, args)
        if "tls" in only:
            tls = bench_tls(env, args)
        if args.profile:
            pdir = os.path.join(env.tmp, "perf")
            os.makedirs(pdir, exist_ok=True)
            if "peer" in only:
                ca_file, devices = make_identities(env.tmp, args.devices)
                peer_lua.write_devices(os.path.join(env.tmp, "devices.lua"), devices)
                srv = Courier(env, "prof", ca_file)
                try:
                    r = run_peer_server(env, srv, devices, args, 99, prof_dir=pdir)
                finally:
                    srv.stop()
                for k in ("idle", "enqueue", "drain"):
                    profiles[f"cert-header {k}"] = r[k + "_profile"]
            if "tls" in only:
                a = argparse.Namespace(**{**vars(args), "runs": 1})
                r = bench_tls(env, a, prof_dir=pdir)[0]
                profiles["TLS Idle, fresh signature"] = r["fresh_profile"]
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump({"peer": peer, "tls": tls, "profiles": profiles, "started": started.isoformat(), "commit": git_commit(),
                           "load_average": os.getloadavg()[0]}, f, indent=1)
        write_report(env, args, peer, tls, profiles, started, args.out)
    finally:
        if not args.keep:
            env.cleanup()


if __name__ == "__main__":
    main()
