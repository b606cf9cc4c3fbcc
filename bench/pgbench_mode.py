"""PostgreSQL mode of bench/run.py (`--store postgres`): a throw-away
PostgreSQL started as tools/pg-test-server.sh does (PG_BENCH=1: fsync on,
512 MB shared_buffers; unprivileged user, temp data dir, 127.0.0.1), a
database per run, and B and C against one node and against two nodes on one
database (and E: bench_E's seeded store moved to PostgreSQL with `courier
migrate`, then Idle and a drain on one node and on two), with the
database's own cost per round trip: commits
(pg_stat_database.xact_commit), rows written (tup_inserted + tup_updated +
tup_deleted) and WAL bytes (pg_current_wal_lsn delta), plus server and
PostgreSQL CPU (utime + stime from /proc: the node, and the postmaster with
its live and reaped children).
"""
import os
import subprocess
import threading
import time

from benchlib import ROOT, Server, log, simulate


class Postgres:
    def __init__(self, env):
        self.state = os.path.join(env.tmp, "pg")
        subprocess.run([os.path.join(ROOT, "tools", "pg-test-server.sh"), "start", self.state],
                       check=True, env={**os.environ, "PG_BENCH": "1"}, capture_output=True)
        with open(os.path.join(self.state, "uri")) as f:
            self.base = f.read().strip()
        with open(os.path.join(self.state, "datadir")) as f:
            self.datadir = os.path.join(f.read().strip(), "data")
        self.n = 0

    def stop(self):
        subprocess.run([os.path.join(ROOT, "tools", "pg-test-server.sh"), "stop", self.state],
                       capture_output=True)

    def psql(self, db, sql):
        uri = self.base.rsplit("/", 1)[0] + "/" + db
        return subprocess.run(["psql", "-X", "-qAt", uri, "-c", sql], capture_output=True,
                              text=True, check=True).stdout.strip()

    def new_db(self):
        self.n += 1
        name = f"bench{self.n}"
        self.psql("postgres", f"CREATE DATABASE {name}")
        return name, self.base.rsplit("/", 1)[0] + "/" + name

    def cpu_seconds(self):
        """The postmaster, its reaped children (cutime, cstime) and live children."""
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            pm = f.readline().strip()
        tck = os.sysconf("SC_CLK_TCK")

        def stat(pid):
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()
        x = stat(pm)
        t = sum(int(v) for v in x[11:15])
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    y = stat(p)
                    if y[1] == pm:
                        t += int(y[11]) + int(y[12])
                except OSError:
                    pass
        return t / tck

    def counters(self, db):
        row = self.psql("postgres",
                        "SELECT d.xact_commit, d.tup_inserted + d.tup_updated + d.tup_deleted, "
                        f"pg_current_wal_lsn() - '0/0' FROM pg_stat_database d WHERE datname = '{db}'")
        c, r, w = row.split("|")
        return {"commits": int(c), "rows": int(r), "wal": float(w), "pg_cpu": self.cpu_seconds()}


def node_cpu(server):
    with open(f"/proc/{server.proc.pid}/stat") as f:
        x = f.read().rsplit(")", 1)[1].split()
    return (int(x[11]) + int(x[12])) / os.sysconf("SC_CLK_TCK")


def run_split(env, nodes, per_node_args, apns=False):
    """One `courier simulate` per node, at the same time; their JSON outputs."""
    out = [None] * len(nodes)
    errs = []

    def one(i):
        try:
            out[i] = simulate(env, nodes[i], *per_node_args, apns=apns and i == 0)
        except Exception as e:  # noqa: BLE001 (reported below)
            errs.append(e)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(len(nodes))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errs:
        raise errs[0]
    return out


def bench_B_pg(env, pg, runs, quick, node_count):
    devices, commands = (200, 10) if quick else (1000, 100)
    out = []
    for i in range(runs):
        db, uri = pg.new_db()
        nodes = [Server(env, f"pgb{node_count}-{i}-{n}", extra=("--db", uri))
                 for n in range(node_count)]
        try:
            before = pg.counters(db)
            cpu0 = [node_cpu(s) for s in nodes]
            t0 = time.time()
            res = run_split(env, nodes, ("--scenario", "drain", "--devices", devices // node_count,
                                         "--commands-per-device", commands, "--connections",
                                         32 // node_count, "--auth", "tls"))
            wall = time.time() - t0
            after = pg.counters(db)
            cpu1 = [node_cpu(s) for s in nodes]
            drains = [r["drain"] for r in res]
            rt = devices // node_count * node_count * commands
            row = {
                "nodes": node_count,
                "round_trips_per_second": sum(d["round_trips_per_second"] for d in drains),
                "per_node": [d["round_trips_per_second"] for d in drains],
                "p99_ms": max(d["latency_ms"]["p99"] for d in drains),
                "wall_s": wall,
                "round_trips": rt,
                # Over the whole simulate (enrollment and enqueue included), per round trip.
                "commits_per_rt": (after["commits"] - before["commits"]) / rt,
                "rows_per_rt": (after["rows"] - before["rows"]) / rt,
                "wal_bytes_per_rt": (after["wal"] - before["wal"]) / rt,
                "pg_cpu_us_per_rt": (after["pg_cpu"] - before["pg_cpu"]) / rt * 1e6,
                "node_cpu_us_per_rt": sum(b - a for a, b in zip(cpu0, cpu1)) / rt * 1e6,
            }
            log(f"B on PostgreSQL, {node_count} node(s), run {i + 1}: {row}")
            out.append(row)
        finally:
            for s in nodes:
                s.stop()
    return out


def bench_C_pg(env, pg, runs, quick, node_count):
    out = []
    for i in range(runs):
        db, uri = pg.new_db()
        nodes = [Server(env, f"pgc{node_count}-{i}-{n}", extra=("--db", uri))
                 for n in range(node_count)]
        try:
            # The devices talk to node 1; node 2 (if any) shares the database,
            # the re-push sweep and the pending-push marks.
            try:
                r = simulate(env, nodes[0], "--scenario", "wake", "--devices",
                             100 if quick else 1000, "--repeats", 10 if quick else 50,
                             "--connections", 32, "--auth", "tls", apns=True)
                out.append({"nodes": node_count, **r["wake"]})
            except RuntimeError as e:  # a device not woken: reported, the rest still runs
                msg = str(e).splitlines()[0]
                log(f"C on PostgreSQL, {node_count} node(s), run {i + 1}: {msg}")
                out.append({"nodes": node_count, "error": msg})
        finally:
            for s in nodes:
                s.stop()
    return out


def bench_E_pg(env, pg, runs, quick):
    """bench_E's store (enrollments + queued commands) seeded into SQLite, moved
    to PostgreSQL by `courier migrate`, then Idle and a drain of 1,000 fresh
    devices against one node and against two nodes on that database."""
    enrollments = 10000 if quick else 100000
    commands = 100000 if quick else 1000000
    data = os.path.join(env.tmp, "pge-seed")
    Server(env, "pge-seed", data_dir=data).stop()
    log(f"seeding {enrollments} enrollments and {commands} commands")
    subprocess.run([os.path.join(env.build, "bench", "seed_store"), "--data-dir", data,
                    "--enrollments", str(enrollments), "--commands", str(commands)],
                   capture_output=True, text=True, check=True)
    db, uri = pg.new_db()
    t0 = time.time()
    subprocess.run([env.courier, "migrate", "--from", "sqlite://" + os.path.join(data, "courier.db"),
                    "--to", uri], capture_output=True, text=True, check=True, timeout=3600)
    migrate_s = time.time() - t0
    log(f"courier migrate: {migrate_s:.0f} s")
    db_mib = int(pg.psql("postgres", f"SELECT pg_database_size('{db}')")) / 2**20
    out = {"enrollments": enrollments, "commands": commands, "migrate_seconds": migrate_s,
           "db_mib": db_mib}
    for n in (1, 2):
        rows = []
        for i in range(runs):
            nodes = [Server(env, f"pge{n}-{i}-{k}", extra=("--db", uri)) for k in range(n)]
            try:
                idle = run_split(env, nodes, ("--scenario", "idle", "--devices", 1000 // n,
                                              "--connections", 32 // n, "--duration",
                                              3 if quick else 10, "--auth", "tls"))
                drain = run_split(env, nodes, ("--scenario", "drain", "--devices", 1000 // n,
                                               "--commands-per-device", 10, "--connections",
                                               32 // n, "--auth", "tls"))
                row = {
                    "nodes": n,
                    "idle_rps": sum(r["idle"]["per_second"] for r in idle),
                    "idle_p99_ms": max(r["idle"]["latency_ms"]["p99"] for r in idle),
                    "drain_rps": sum(r["drain"]["round_trips_per_second"] for r in drain),
                    "drain_p99_ms": max(r["drain"]["latency_ms"]["p99"] for r in drain),
                    "rss_mib": [s.peak_rss_mib() for s in nodes],
                }
                log(f"E on PostgreSQL, {n} node(s), run {i + 1}: {row}")
                rows.append(row)
            finally:
                for s in nodes:
                    s.stop()
        out[f"E{n}"] = rows
    return out


def run_pg(env, args, only):
    pg = Postgres(env)
    res = {}
    try:
        for n in (1, 2):
            if "B" in only:
                res[f"B{n}"] = bench_B_pg(env, pg, args.runs, args.quick, n)
            if "C" in only:
                res[f"C{n}"] = bench_C_pg(env, pg, args.runs, args.quick, n)
        if "E" in only:
            res["E"] = bench_E_pg(env, pg, args.runs, args.quick)
    finally:
        pg.stop()
    return res


def report_pg(res, w, fmt, median):
    w("## PostgreSQL (`--store postgres`)\n")
    w("One PostgreSQL 15 started by `PG_BENCH=1 tools/pg-test-server.sh start` (fsync on, "
      "`synchronous_commit` on, 512 MB shared_buffers) on the same machine, a database per "
      "run. Two nodes: two `courier serve --db` on one database; for B each runs its own "
      "`courier simulate` with half the devices and 16 connections (their round trips/s "
      "added); for C the devices talk to node 1 while node 2 shares the database. Database "
      "cost per round trip over the whole `simulate` (enrollment and enqueue included): "
      "commits from `pg_stat_database.xact_commit` (each autocommit read counts one), rows "
      "written (`tup_inserted + tup_updated + tup_deleted`), WAL bytes "
      "(`pg_current_wal_lsn()` delta); CPU is utime + stime from /proc of the node(s) and of "
      "the postmaster with its children.\n")
    w("| nodes | run | round trips/s | per node | p99 ms | commits/rt | rows/rt | WAL B/rt | "
      "PostgreSQL CPU µs/rt | node CPU µs/rt |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for n in (1, 2):
        for i, r in enumerate(res.get(f"B{n}", [])):
            w(f"| {n} | {i + 1} | {fmt(r['round_trips_per_second'])} | "
              f"{' + '.join(fmt(x) for x in r['per_node'])} | {fmt(r['p99_ms'], 1)} | "
              f"{fmt(r['commits_per_rt'], 2)} | {fmt(r['rows_per_rt'], 2)} | "
              f"{fmt(r['wal_bytes_per_rt'])} | {fmt(r['pg_cpu_us_per_rt'])} | "
              f"{fmt(r['node_cpu_us_per_rt'])} |")
    w("")
    w("| nodes | run | C one device p50 ms | p99 ms | 1,000 devices all acknowledged ms |")
    w("|---|---|---|---|---|")
    for n in (1, 2):
        for i, r in enumerate(res.get(f"C{n}", [])):
            if "error" in r:
                w(f"| {n} | {i + 1} | **failed**: {r['error']} | | |")
                continue
            w(f"| {n} | {i + 1} | {fmt(r['one_device_ms']['p50'], 1)} | "
              f"{fmt(r['one_device_ms']['p99'], 1)} | "
              f"{fmt(r.get('fleet', {}).get('all_acknowledged_ms'))} |")
    w("")
    e = res.get("E")
    if e:
        w(f"E on PostgreSQL: `bench/seed_store --enrollments {e['enrollments']} --commands "
          f"{e['commands']}` into SQLite, moved by `courier migrate` in "
          f"{fmt(e['migrate_seconds'])} s (database {fmt(e['db_mib'])} MiB); then 1,000 fresh "
          "devices, Idle for 10 s and a drain of 10 commands each, split over the nodes.\n")
        w("| nodes | run | Idle req/s | Idle p99 ms | drain round trips/s | drain p99 ms | "
          "RSS per node MiB |")
        w("|---|---|---|---|---|---|---|")
        for n in (1, 2):
            for i, r in enumerate(e.get(f"E{n}", [])):
                w(f"| {n} | {i + 1} | {fmt(r['idle_rps'])} | {fmt(r['idle_p99_ms'], 2)} | "
                  f"{fmt(r['drain_rps'])} | {fmt(r['drain_p99_ms'], 1)} | "
                  f"{' / '.join(fmt(x) for x in r['rss_mib'])} |")
        w("")
