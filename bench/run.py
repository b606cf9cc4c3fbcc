#!/usr/bin/env python3
"""Runs Courier's benchmarks A-G, W (B with a webhook) and the push sender benchmark, and writes
docs/BENCHMARKS.md from what they measured.

    bench/run.sh                  # installs bench packages, builds, runs all
    bench/run.py --only A,C       # some of them (build must exist)
    bench/run.py --runs 1 --quick # smaller sizes, one run each: a smoke test
    bench/run.py --store postgres --only B,C --out /tmp/pg.md   # B and C on PostgreSQL,
                                  # one node and two (bench/pgbench_mode.py)

Every figure is the median of --runs runs (default 3). Servers run on
127.0.0.1 with fresh data dirs under a temporary directory; the load
generators (wrk, `courier simulate`) share the machine's cores with the
server, and the figures say so.
"""
import argparse
import datetime
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from benchlib import (ROOT, Env, Server, beast_ceiling, free_port, log, median, nginx_ceiling,
                      simulate, wrk)


def bench_A_F(env, runs, quick):
    devices = 200 if quick else 1000
    secs = 3 if quick else 10
    res = {"A": [], "F": [], "F2": [], "A_tls": [], "A_fresh": []}
    for i in range(runs):
        s = Server(env, f"a{i}")
        try:
            script = os.path.join(env.tmp, f"idle{i}.lua")
            sim = simulate(env, s, "--scenario", "enroll", "--devices", devices, "--auth", "signature",
                           "--connections", 16, "--wrk-script", script)
            assert sim["ok"]
            for threads in (2,):
                r = wrk(env, s.url, script, 32, secs, threads)
                res["A"].append(r)
            t = simulate(env, s, "--scenario", "idle", "--devices", devices, "--connections", 32,
                         "--duration", secs, "--auth", "tls")
            res["A_tls"].append(t["idle"])
            # Every request signed anew (ECDSA: no two signatures alike), so
            # the verification cache keyed by signature never hits.
            t = simulate(env, s, "--scenario", "idle", "--devices", devices, "--connections", 32,
                         "--duration", secs, "--auth", "signature")
            res["A_fresh"].append(t["idle"])
            res["F"].append(nginx_ceiling(env, s.data, script, 32, secs, 2))
            res["F2"].append(beast_ceiling(env, s.data, script, 32, secs, 2))
        finally:
            s.stop()
    return res


def bench_B(env, runs, quick):
    out = []
    for i in range(runs):
        s = Server(env, f"b{i}")
        try:
            r = simulate(env, s, "--scenario", "drain", "--devices", 200 if quick else 1000,
                         "--commands-per-device", 10 if quick else 100, "--connections", 32,
                         "--auth", "tls")
            out.append(r["drain"])
        finally:
            s.stop()
    return out


def webhook_sink(env, name):
    """nginx answering every POST `return 200` at once on plain HTTP (one
    worker: the destination shares the cores with the server and the load).
    Returns (process, url)."""
    port = free_port()
    prefix = os.path.join(env.tmp, "nginx-" + name)
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {prefix}/body;
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200; }}
  }}
}}
""")
    p = subprocess.Popen(["nginx", "-p", prefix, "-c", conf], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return p, f"http://127.0.0.1:{port}/hook"
        except OSError:
            time.sleep(0.05)
    p.terminate()
    raise RuntimeError("nginx (webhook sink) did not listen within 10 s")


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


METRIC = re.compile(r'^(courier_webhook_deliveries_total|courier_webhook_backlog)\{([^}]*)\} ([\d.e+]+)$', re.M)


def webhook_metrics(server):
    """(delivered, backlog) of the destination "default" from /metrics."""
    ctx = ssl.create_default_context(cafile=os.path.join(server.data, "tls", "ca.crt"))
    body = urllib.request.urlopen(server.url + "/metrics", context=ctx, timeout=5).read().decode()
    delivered = backlog = 0.0
    for name, labels, value in METRIC.findall(body):
        if 'webhook="default"' not in labels:
            continue
        if name == "courier_webhook_backlog":
            backlog = float(value)
        elif 'result="delivered"' in labels:
            delivered = float(value)
    return delivered, backlog


def drain_with_cpu(env, s, devices, commands, sampler=None):
    before = cpu_seconds(s.proc.pid)
    r = simulate(env, s, "--scenario", "drain", "--devices", devices, "--commands-per-device",
                 commands, "--connections", 32, "--auth", "tls")["drain"]
    r["server_cpu_s"] = cpu_seconds(s.proc.pid) - before
    r["round_trips"] = devices * commands
    r["cpu_us_per_round_trip"] = r["server_cpu_s"] / r["round_trips"] * 1e6
    return r


def bench_W(env, runs, quick):
    """B without and with one webhook destination answering 200 at once, in
    the same run; the destination's event throughput."""
    devices, commands = (200, 10) if quick else (1000, 100)
    out = []
    for i in range(runs):
        row = {}
        s = Server(env, f"w{i}-off", extra=("--metrics-public", "true"))
        try:
            row["off"] = drain_with_cpu(env, s, devices, commands)
        finally:
            s.stop()
        sink, url = webhook_sink(env, f"w{i}")
        try:
            s = Server(env, f"w{i}-on", extra=("--metrics-public", "true", "--webhook-url", url))
            try:
                samples = []
                stop = threading.Event()

                def sample():
                    while not stop.is_set():
                        try:
                            d, b = webhook_metrics(s)
                            samples.append((time.time(), d, b))
                        except Exception:
                            pass
                        stop.wait(0.25)
                t = threading.Thread(target=sample, daemon=True)
                t.start()
                row["on"] = drain_with_cpu(env, s, devices, commands)
                load_end = time.time()
                deadline = time.time() + 600
                while time.time() < deadline:
                    if samples and samples[-1][0] > load_end and samples[-1][2] == 0:
                        break
                    time.sleep(0.1)
                stop.set()
                t.join()
                # Events/s delivered while a backlog existed (the destination
                # fully busy), and the backlog left when the load ended.
                busy = [x for x in samples if x[2] > 0]
                end = next((x for x in samples if x[0] > load_end and x[2] == 0), samples[-1])
                w = {"delivered": end[1], "max_backlog": max((x[2] for x in samples), default=0),
                     "backlog_cleared_s_after_load": end[0] - load_end}
                if busy and end[0] > busy[0][0]:
                    w["events_per_second_backlogged"] = (end[1] - busy[0][1]) / (end[0] - busy[0][0])
                first = samples[0]
                w["events_per_second_overall"] = (end[1] - first[1]) / max(end[0] - first[0], 1e-9)
                row["webhook"] = w
            finally:
                s.stop()
        finally:
            sink.terminate()
            sink.wait()
        row["ratio"] = row["on"]["round_trips_per_second"] / row["off"]["round_trips_per_second"]
        row["cpu_ratio"] = row["on"]["cpu_us_per_round_trip"] / row["off"]["cpu_us_per_round_trip"]
        log(f"W run {i + 1}: {row['off']['round_trips_per_second']:.0f} → "
            f"{row['on']['round_trips_per_second']:.0f} round trips/s ({row['ratio'] * 100:.1f} %), "
            f"CPU/round trip {row['off']['cpu_us_per_round_trip']:.0f} → "
            f"{row['on']['cpu_us_per_round_trip']:.0f} µs, webhook {row['webhook']}")
        out.append(row)
    return out


def bench_C(env, runs, quick):
    out = []
    for i in range(runs):
        s = Server(env, f"c{i}")
        try:
            r = simulate(env, s, "--scenario", "wake", "--devices", 100 if quick else 1000,
                         "--repeats", 10 if quick else 50, "--connections", 32, "--auth", "tls",
                         apns=True)
            out.append(r["wake"])
        finally:
            s.stop()
    return out


def bench_D_G(env, runs, quick):
    out = []
    for i in range(runs):
        s = Server(env, f"d{i}")
        try:
            r = simulate(env, s, "--scenario", "fanout", "--devices", 1000 if quick else 10000,
                         "--connections", 32, "--auth", "signature", apns=True)
            out.append({"fanout": r["fanout"], "enroll": r["enroll"]})
        finally:
            s.stop()
    return out


def bench_E(env, runs, quick):
    enrollments = 10000 if quick else 100000
    commands = 100000 if quick else 1000000
    data = os.path.join(env.tmp, "e")
    seed = os.path.join(env.build, "bench", "seed_store")
    # The server makes its data dir (CA, TLS, schema) first; then it is seeded.
    s = Server(env, "e", data_dir=data)
    s.stop()
    log(f"seeding {enrollments} enrollments and {commands} commands")
    t0 = time.time()
    p = subprocess.run([seed, "--data-dir", data, "--enrollments", str(enrollments), "--commands",
                        str(commands)], capture_output=True, text=True, check=True)
    seeded = p.stdout.strip()
    seed_secs = time.time() - t0
    db_mib = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data)
                 if f.startswith("courier.db")) / 2**20
    out = []
    for i in range(runs):
        s = Server(env, "e", data_dir=data)
        try:
            idle = simulate(env, s, "--scenario", "idle", "--devices", 1000, "--connections", 32,
                            "--duration", 3 if quick else 10, "--auth", "tls")
            drain = simulate(env, s, "--scenario", "drain", "--devices", 1000,
                             "--commands-per-device", 10, "--connections", 32, "--auth", "tls")
            out.append({"idle": idle["idle"], "drain": drain["drain"], "rss_mib": s.peak_rss_mib()})
        finally:
            s.stop()
    return {"runs": out, "seeded": seeded, "seed_seconds": seed_secs, "db_mib": db_mib,
            "enrollments": enrollments, "commands": commands}


def bench_push(env, runs, quick, sender="nghttp2"):
    exe = os.path.join(env.build, "bench", "push_bench")
    out = []
    for i in range(runs):
        cmd = [exe, "--sender", sender, "--pushes", "20000" if quick else "100000", "--window", "500"]
        log(" ".join(cmd))
        p = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)
        m = re.search(r"pushes_per_second=([\d.]+)", p.stdout)
        out.append(float(m.group(1)) if m else None)
    return out


def bench_h2load(env, runs, quick):
    """The same request replayed by h2load on one connection: the fake's ceiling."""
    out = []
    for i in range(runs):
        cmd = [os.path.join(ROOT, "bench", "push_h2load.sh"), env.courier,
               "20000" if quick else "100000", "500"]
        log(" ".join(cmd[1:]))
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "PORT": str(free_port())})
        m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", p.stdout)
        out.append(float(m.group(1)) if m else None)
    return out


# ------------------------------------------------------------------ report


def fmt(x, digits=0):
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def verdict(ok):
    return "met" if ok else "**missed**"


def write_report(env, res, path, args, started):
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()
    L = []
    w = L.append
    w("# Benchmarks\n")
    w("Generated by `bench/run.sh` (which runs `bench/run.py`); do not edit by hand — re-run it.\n")
    w(f"- Date: {started:%Y-%m-%d %H:%M} UTC; commit `{commit}`{' with local changes' if dirty else ''}; "
      f"Release build.")
    w(f"- Machine: `nproc` = {os.cpu_count()}, CPU `{cpu}`; load average at the end "
      f"{load[0]:.2f}.")
    if getattr(args, "serve_args", ""):
        w(f"- Every `courier serve` ran with `{args.serve_args}` added.")
    w(f"- Every figure is the median of {args.runs} runs{' (quick sizes: a smoke run, not the targets)' if args.quick else ''}.")
    w("- **The load generators (wrk, `courier simulate`) run on the same cores as the server**: "
      "every figure is what Courier does while sharing the machine with its own load, a floor "
      "rather than a ceiling. Everything runs on 127.0.0.1 with real TLS, a real SQLite file "
      "(WAL, `synchronous=FULL`) and real HTTP/2 to the simulator's fake APNs.\n")

    w("## Summary\n")
    w("| | benchmark | target | measured | |")
    w("|---|---|---|---|---|")
    rows = []
    if "A" in res:
        a = res["A"]
        a_rps = median([r["rps"] for r in a["A"]])
        a_p99 = median([r["p99"] for r in a["A"]])
        f_rps = median([r["rps"] for r in a["F"]])
        frac = a_rps / f_rps if a_rps and f_rps else None
        fresh = a.get("A_fresh") or []
        if fresh:
            fr = median([t["per_second"] for t in fresh])
            fp = median([t["latency_ms"]["p99"] for t in fresh])
            rows.append(("A", "Idle check-ins/s, 1,000 devices, TLS, a fresh `Mdm-Signature` on every "
                         "request (`courier simulate --scenario idle --auth signature`)",
                         "≥ 10,000/s, p99 ≤ 10 ms", f"{fmt(fr)}/s, p99 {fmt(fp, 2)} ms",
                         verdict(fr and fr >= 10000 and fp is not None and fp <= 10)))
        t_rps = median([t["per_second"] for t in a["A_tls"]])
        t_p99 = median([t["latency_ms"]["p99"] for t in a["A_tls"]])
        rows.append(("A", "Idle check-ins/s, 1,000 devices, per-device TLS client certificates "
                     "(`--auth tls`)", "≥ 10,000/s, p99 ≤ 10 ms", f"{fmt(t_rps)}/s, p99 {fmt(t_p99, 2)} ms",
                     verdict(t_rps and t_rps >= 10000 and t_p99 is not None and t_p99 <= 10)))
        rows.append(("A (cached)", "Idle check-ins/s, 1,000 devices, 32 TLS keep-alive connections, wrk "
                     "replaying 1,000 pre-signed bodies (**signature verification cached**: flatters A)",
                     "–", f"{fmt(a_rps)}/s, p99 {fmt(a_p99, 2)} ms", ""))
        rows.append(("A/F", "A (cached) as a share of the reference ceiling F (nginx `return 200`, same wrk script)", "≥ 60 %",
                     f"{fmt(frac * 100 if frac else None, 1)} % of {fmt(f_rps)}/s",
                     verdict(frac and frac >= 0.6)))
        f2 = median([r["rps"] for r in a["F2"]])
        if f2:
            rows.append(("A/F′", "A as a share of Courier's own listener answering 200 (F′)", "–",
                         f"{fmt(a_rps / f2 * 100, 1)} % of {fmt(f2)}/s", ""))
    if "B" in res:
        b = median([r["round_trips_per_second"] for r in res["B"]])
        rows.append(("B", "command round trips/s (queued, drained by Idle/Acknowledged)",
                     "≥ 5,000/s", f"{fmt(b)}/s", verdict(b and b >= 5000)))
    if "W" in res:
        ratio = median([r["ratio"] for r in res["W"]])
        ev = median([r["webhook"].get("events_per_second_backlogged") for r in res["W"]])
        rows.append(("W", "B with one webhook destination answering 200 at once, as a share of B "
                     "without (same run)", "≥ 85 %", f"{fmt(ratio * 100 if ratio else None, 1)} %",
                     verdict(ratio and ratio >= 0.85)))
        rows.append(("W", "events/s delivered to one destination", "–",
                     f"{fmt(ev)}/s" if ev else "kept up (no backlog)", ""))
    if "C" in res:
        c1 = median([r["one_device_ms"]["p99"] for r in res["C"]])
        c50 = median([r["one_device_ms"]["p50"] for r in res["C"]])
        cf = median([r.get("fleet", {}).get("all_acknowledged_ms") for r in res["C"]])
        rows.append(("C", "wake-up: enqueue → push → check-in → acknowledged, one device",
                     "p99 ≤ 50 ms", f"p50 {fmt(c50, 1)} ms, p99 {fmt(c1, 1)} ms",
                     verdict(c1 is not None and c1 <= 50)))
        rows.append(("C", "wake-up of 1,000 devices at once, until all acknowledged", "≤ 2 s",
                     f"{fmt(cf / 1000 if cf else None, 2)} s", verdict(cf is not None and cf <= 2000)))
    if "D" in res:
        d = median([r["fanout"]["commit_ms"] for r in res["D"]])
        dp = median([r["fanout"].get("all_pushed_ms") for r in res["D"]])
        g = median([r["enroll"]["per_second"] for r in res["D"]])
        rows.append(("D", "one DeviceLock to 10,000 targets: commit", "≤ 1 s",
                     f"{fmt(d / 1000 if d else None, 3)} s (all pushed in "
                     f"{fmt(dp / 1000 if dp else None, 2)} s)", verdict(d is not None and d <= 1000)))
        rows.append(("G", "enrollments (Authenticate + TokenUpdate) per second, 10,000 devices",
                     "≥ 1,000/s", f"{fmt(g)}/s", verdict(g and g >= 1000)))
    if "E" in res:
        e = res["E"]
        p99 = median([r["idle"]["latency_ms"]["p99"] for r in e["runs"]])
        rss = max([r["rss_mib"] or 0 for r in e["runs"]])
        rows.append(("E", f"{e['enrollments']:,} enrollments, {e['commands']:,} queued commands: "
                     "check-in p99, peak RSS", "p99 ≤ 5 ms, RSS ≤ 200 MiB",
                     f"p99 {fmt(p99, 2)} ms, {fmt(rss, 0)} MiB", verdict(p99 is not None and p99 <= 5
                                                                     and rss <= 200)))
    for r in rows:
        w("| " + " | ".join(str(x) for x in r) + " |")
    w("")

    if "A" in res:
        a = res["A"]
        w("## A. Idle check-ins, and F, the reference ceiling\n")
        w("1,000 devices enrolled by `courier simulate --scenario enroll --auth signature "
          "--wrk-script idle.lua`, which writes each device's Idle report with its `Mdm-Signature`; "
          "wrk replays them round-robin over 32 keep-alive TLS connections (wrk cannot present a "
          "client certificate, so the identity travels in the header; the server verifies every "
          "signature's chain, binding and enrollment as for a real device). F is nginx `return 200` "
          "with the same certificate and TLS settings, driven by the same script.\n")
        w("```sh\nwrk -t2 -c32 -d10s --latency -s idle.lua https://127.0.0.1:PORT\n```\n")
        w("F′ is `bench/ceiling_server`: Courier's own listener (Beast, same TLS settings, "
          "threads and connection handling) answering 200 on its I/O thread without reading "
          "what it was sent — the transport's share of Courier's cost.\n")
        w("| run | Courier req/s | p50 ms | p90 ms | p99 ms | non-2xx | nginx (F) req/s | nginx p99 ms | F′ req/s | F′ p99 ms |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for i, (x, y, z) in enumerate(zip(a["A"], a["F"], a["F2"])):
            w(f"| {i + 1} | {fmt(x['rps'])} | {fmt(x['p50'], 2)} | {fmt(x['p90'], 2)} | "
              f"{fmt(x['p99'], 2)} | {x['non2xx']} | {fmt(y['rps'])} | {fmt(y['p99'], 2)} | "
              f"{fmt(z['rps'])} | {fmt(z['p99'], 2)} |")
        w("")
        w("The same Idle loop from `courier simulate --scenario idle --auth tls` (each device its "
          "own TLS client identity and connection, 32 at a time; the simulator's own curl and "
          "plist work shares the cores):\n")
        w("| run | req/s | p50 ms | p99 ms |")
        w("|---|---|---|---|")
        for i, t in enumerate(a["A_tls"]):
            w(f"| {i + 1} | {fmt(t['per_second'])} | {fmt(t['latency_ms']['p50'], 2)} | "
              f"{fmt(t['latency_ms']['p99'], 2)} |")
        w("")
        if a.get("A_fresh"):
            w("A with a fresh signature on every request: `courier simulate --scenario idle --auth "
              "signature` signs each Idle anew (the simulator's device keys are ECDSA P-256, so no "
              "two signatures are alike and the server's cache by signature never hits; the "
              "signer's path validation stays cached by fingerprint). The simulator's signing "
              "shares the cores with the server:\n")
            w("| run | req/s | p50 ms | p99 ms |")
            w("|---|---|---|---|")
            for i, t in enumerate(a["A_fresh"]):
                w(f"| {i + 1} | {fmt(t['per_second'])} | {fmt(t['latency_ms']['p50'], 2)} | "
                  f"{fmt(t['latency_ms']['p99'], 2)} |")
            w("")
    if "B" in res:
        w("## B. Command round trips\n")
        w("```sh\ncourier simulate --scenario drain --devices 1000 --commands-per-device 100 "
          "--connections 32 --auth tls\n```\n")
        w("100 `POST /v1/commands` (1,000 targets each, `push: false`) queue 100,000 commands; "
          "then 32 simulated devices at a time drain them: Idle → command → Acknowledged "
          "(with a plausible reply for DeviceInformation, ProfileList, SecurityInfo and "
          "InstalledApplicationList) → next command. A round trip is one command handed out and "
          "its result stored, each in its own durable transaction.\n")
        w("| run | enqueue s | round trips/s | requests/s | p50 ms | p99 ms |")
        w("|---|---|---|---|---|---|")
        for i, r in enumerate(res["B"]):
            w(f"| {i + 1} | {fmt(r['enqueue_seconds'], 2)} | {fmt(r['round_trips_per_second'])} | "
              f"{fmt(r['requests_per_second'])} | {fmt(r['latency_ms']['p50'], 2)} | "
              f"{fmt(r['latency_ms']['p99'], 2)} |")
        w("")
    if "W" in res:
        w("## W. Command round trips with a webhook destination\n")
        w("```sh\ncourier serve … --webhook-url http://127.0.0.1:PORT/hook   # nginx `return 200`, 1 worker\n"
          "courier simulate --scenario drain --devices 1000 --commands-per-device 100 "
          "--connections 32 --auth tls\n```\n")
        w("B twice in each run on fresh data dirs: without a webhook, then with one destination "
          "(default topics `mdm.`: every check-in and command report is a durable event, "
          "written in its cause's transaction, except Idles that hand out nothing) that nginx "
          "answers with 200 at once. Server CPU is the `courier serve` process's utime + stime "
          "(`/proc/PID/stat`) over the whole `simulate` (enrollment and enqueue included), per "
          "round trip. Events/s: `courier_webhook_deliveries_total{result=\"delivered\"}` "
          "sampled every 0.25 s from `/metrics`, over the time a backlog existed (the "
          "destination busy); \"kept up\" when it never had one. What a durable event costs on "
          "SQLite: its row and one delivery row, written in the cause's transaction (partial "
          "indexes over the undelivered deliveries only, time-ordered event ids: few pages per "
          "commit); the delivery handed to a delivery thread from memory right after the commit "
          "(no read of the outbox); its outcome recorded in the next group commit. The writer "
          "keeps savepoint journals in memory (`temp_store = MEMORY`), which lowers B without "
          "webhooks too.\n")
        w("| run | round trips/s without | with | with / without | CPU µs/round trip without | with | "
          "events delivered | max backlog | backlog cleared s after load | events/s (backlogged) | "
          "events/s (overall) |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        for i, r in enumerate(res["W"]):
            wh = r["webhook"]
            w(f"| {i + 1} | {fmt(r['off']['round_trips_per_second'])} | "
              f"{fmt(r['on']['round_trips_per_second'])} | {fmt(r['ratio'] * 100, 1)} % | "
              f"{fmt(r['off']['cpu_us_per_round_trip'])} | {fmt(r['on']['cpu_us_per_round_trip'])} | "
              f"{fmt(wh['delivered'])} | {fmt(wh['max_backlog'])} | "
              f"{fmt(wh['backlog_cleared_s_after_load'], 1)} | "
              f"{fmt(wh.get('events_per_second_backlogged'))} | {fmt(wh['events_per_second_overall'])} |")
        w("")
    if "C" in res:
        w("## C. Wake-up latency\n")
        w("```sh\ncourier simulate --scenario wake --devices 1000 --repeats 50 --apns-listen "
          "127.0.0.1:APNS_PORT --apns-cert apns.crt --apns-key apns.key\n```\n")
        w("The simulator runs the fake APNs the server pushes to (HTTP/2, TLS). One device: "
          "`POST /v1/commands` (DeviceInformation, push) → the server commits and pushes → the "
          "fake receives the push → that device checks in → gets the command → its Acknowledged "
          "is answered; timed from before the POST to the answer to Acknowledged, 50 times on "
          "random devices. Fleet: one command to all 1,000 devices, timed until the last "
          "acknowledgement.\n")
        w("| run | one device p50 ms | p99 ms | fleet: API answer ms | fleet: all acknowledged ms |")
        w("|---|---|---|---|---|")
        for i, r in enumerate(res["C"]):
            fl = r.get("fleet", {})
            w(f"| {i + 1} | {fmt(r['one_device_ms']['p50'], 1)} | {fmt(r['one_device_ms']['p99'], 1)} | "
              f"{fmt(fl.get('api_answer_ms'), 0)} | {fmt(fl.get('all_acknowledged_ms'), 0)} |")
        w("")
    if "D" in res:
        w("## D. Fan-out, and G. Enrollment rate\n")
        w("```sh\ncourier simulate --scenario fanout --devices 10000 --auth signature "
          "--connections 32 --apns-listen …\n```\n")
        w("G: the 10,000 devices' Authenticate + TokenUpdate, 32 at a time, identities issued "
          "beforehand (not timed; `/enroll` excluded), each message signed (`Mdm-Signature`) and "
          "verified. D: one `POST /v1/commands` DeviceLock to all 10,000 with `push: false` "
          "(time until its 201: the commit), then one with `push: true` (time until the fake "
          "APNs has received all 10,000 pushes). Devices stay asleep during D.\n")
        w("| run | G enrollments/s | D commit ms | D push: API answer ms | D all pushed ms |")
        w("|---|---|---|---|---|")
        for i, r in enumerate(res["D"]):
            fo = r["fanout"]
            w(f"| {i + 1} | {fmt(r['enroll']['per_second'])} | {fmt(fo['commit_ms'])} | "
              f"{fmt(fo.get('push_api_answer_ms'))} | {fmt(fo.get('all_pushed_ms'))} |")
        w("")
    if "E" in res:
        e = res["E"]
        w("## E. Scale\n")
        w(f"`bench/seed_store --enrollments {e['enrollments']} --commands {e['commands']}` fills "
          "the database through the storage interface (each enrollment with Authenticate + "
          "TokenUpdate, each command single-target and queued): "
          f"{e['seeded']}; the database is {e['db_mib']:.0f} MiB. The server then starts on it and "
          "1,000 more simulated devices enroll and run Idle check-ins for 10 s "
          "(`--scenario idle`), then drain 10 commands each (`--scenario drain`). RSS is the "
          "server's peak (`VmHWM`).\n")
        w("| run | idle req/s | idle p50 ms | idle p99 ms | drain round trips/s | drain p99 ms | peak RSS MiB |")
        w("|---|---|---|---|---|---|---|")
        for i, r in enumerate(e["runs"]):
            w(f"| {i + 1} | {fmt(r['idle']['per_second'])} | {fmt(r['idle']['latency_ms']['p50'], 2)} | "
              f"{fmt(r['idle']['latency_ms']['p99'], 2)} | {fmt(r['drain']['round_trips_per_second'])} | "
              f"{fmt(r['drain']['latency_ms']['p99'], 2)} | {fmt(r['rss_mib'])} |")
        w("")
    if "P" in res:
        w("## Push sender\n")
        w("```sh\nbuild/bench/bench/push_bench --sender nghttp2 --pushes 100000 --window 500\n"
          "build/bench/bench/push_bench --sender curl --pushes 100000 --window 500\n```\n")
        w("The server's sender (nghttp2 over non-blocking OpenSSL, one connection, 500 pushes in "
          "flight) to the fake APNs (nghttp2) on 127.0.0.1: "
          + ", ".join(f"{fmt(x)}" for x in res["P"]) + f" pushes/s (median {fmt(median(res['P']))}). "
          + (f"The libcurl sender (used only with `--apns-proxy`): "
             + ", ".join(fmt(x) for x in res["PC"]) + f" pushes/s (median {fmt(median(res['PC']))}). "
             if res.get("PC") else "")
          + (f"h2load replaying the same request on one connection with 500 streams "
             f"(`bench/push_h2load.sh build/bench/courier 100000 500`, the fake's ceiling): "
             + ", ".join(fmt(x) for x in res.get("H", [])) + f" requests/s (median "
             f"{fmt(median(res.get('H', [])))}); the sender reaches "
             f"{fmt(100 * median(res['P']) / median(res['H']) if median(res.get('H', [])) else None, 0)} % "
             "of it. " if res.get("H") else "")
          + "APNs itself caps a connection at its `SETTINGS_MAX_CONCURRENT_STREAMS`; "
          "`ApnsTest.ThousandsOfSequentialStreamsStayOnOneConnection` guards the connection "
          "reuse this depends on.\n")
    if "PG" in res:
        import pgbench_mode
        pgbench_mode.report_pg(res["PG"], w, fmt, median)
    if args.notes and os.path.exists(args.notes):
        with open(args.notes) as f:
            w(f.read())
    peer = os.path.join(ROOT, "bench", "PEER.md")  # written by bench/peer.py
    if os.path.exists(peer):
        with open(peer) as f:
            w(f.read())
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="A,B,W,C,D,E,P", help="comma-separated: A (with F and A_tls), B, C, D (with G), E, P (push sender and h2load), W (B with a webhook destination)")
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--build-dir", default="build/bench")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    ap.add_argument("--json-out", default=None, help="also write the raw results here")
    ap.add_argument("--merge", default=None,
                    help="a --json-out file of an earlier run: its results for the benchmarks "
                         "not in --only go into the report too")
    ap.add_argument("--notes", default=os.path.join(ROOT, "bench", "NOTES.md"),
                    help="appended to the report (analysis, before/after)")
    ap.add_argument("--serve-args", default="",
                    help='added to every `courier serve` the benchmarks start, e.g. "--db-pool 4"')
    ap.add_argument("--store", default="sqlite", choices=("sqlite", "postgres"),
                    help="postgres: B, C and E (of --only) on a throw-away PostgreSQL, one node and "
                         "two nodes on one database (bench/pgbench_mode.py)")
    args = ap.parse_args()
    started = datetime.datetime.utcnow()
    env = Env(args)
    only = set(args.only.split(","))
    res = {}
    if args.merge:
        with open(args.merge) as f:
            res = {k: v for k, v in json.load(f).items()
                   if k not in only and not (k in ("H", "PC") and "P" in only)}
    finished = False
    try:
        if args.store == "postgres":
            import pgbench_mode
            res["PG"] = pgbench_mode.run_pg(env, args, only)
            only = set()
        if "A" in only:
            res["A"] = bench_A_F(env, args.runs, args.quick)
        if "B" in only:
            res["B"] = bench_B(env, args.runs, args.quick)
        if "W" in only:
            res["W"] = bench_W(env, args.runs, args.quick)
        if "C" in only:
            res["C"] = bench_C(env, args.runs, args.quick)
        if "D" in only:
            res["D"] = bench_D_G(env, args.runs, args.quick)
        if "E" in only:
            res["E"] = bench_E(env, args.runs, args.quick)
        if "P" in only:
            res["P"] = bench_push(env, args.runs, args.quick)
            res["PC"] = bench_push(env, args.runs, args.quick, sender="curl")
            res["H"] = bench_h2load(env, args.runs, args.quick)
        finished = True
    finally:
        if args.json_out:
            def strip(o):
                if isinstance(o, dict):
                    return {k: strip(v) for k, v in o.items() if k != "raw"}
                if isinstance(o, list):
                    return [strip(v) for v in o]
                return o
            with open(args.json_out, "w") as f:
                json.dump(strip(res), f, indent=1)
        if finished:
            env.cleanup()
        else:
            log("kept", env.tmp, "for the server logs")
    write_report(env, res, args.out, args, started)
    log("wrote", args.out)


if __name__ == "__main__":
    main()
