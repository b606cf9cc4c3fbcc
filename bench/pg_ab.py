#!/usr/bin/env python3
"""Two builds of Courier, alternating, on one throw-away PostgreSQL: B's
drain then an Idle run per build and round, each on a fresh database, with
PostgreSQL's commits and CPU and the node's CPU per round trip / request.

    bench/pg_ab.py --old /tmp/old/build --new build/bench --rounds 3

Builds the same way as bench/run.py (Release, `courier` in the build dir).
Rounds alternate the order (old first, then new first) so that a machine
whose speed drifts does not favour one side. Prints one line per run.
"""
import argparse
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Env, Server, simulate  # noqa: E402
import pgbench_mode as pm  # noqa: E402


def one(env, pg, name, commands):
    db, uri = pg.new_db()
    s = Server(env, name, extra=("--db", uri))
    try:
        b0, c0 = pg.counters(db), pm.node_cpu(s)
        d = simulate(env, s, "--scenario", "drain", "--devices", 1000, "--commands-per-device",
                     commands, "--connections", 32, "--auth", "tls")["drain"]
        b1, c1 = pg.counters(db), pm.node_cpu(s)
        idle = simulate(env, s, "--scenario", "idle", "--devices", 1000, "--connections", 32,
                        "--duration", 10, "--auth", "tls")["idle"]
        i1, ic1 = pg.counters(db), pm.node_cpu(s)
    finally:
        s.stop()
    rt, reqs = 1000 * commands, max(idle["requests"], 1)
    return (f"B {d['round_trips_per_second']:.0f} rt/s p99 {d['latency_ms']['p99']:.1f} ms, "
            f"PostgreSQL {(b1['pg_cpu'] - b0['pg_cpu']) / rt * 1e6:.0f} µs/rt, "
            f"node {(c1 - c0) / rt * 1e6:.0f} µs/rt, {(b1['commits'] - b0['commits']) / rt:.2f} "
            f"commits/rt | Idle {idle['per_second']:.0f}/s p50 {idle['latency_ms']['p50']:.2f} "
            f"p99 {idle['latency_ms']['p99']:.2f} ms, PostgreSQL "
            f"{(i1['pg_cpu'] - b1['pg_cpu']) / reqs * 1e6:.0f} µs/req, node "
            f"{(ic1 - c1) / reqs * 1e6:.0f} µs/req, {(i1['commits'] - b1['commits']) / reqs:.2f} "
            f"commits/req")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="build dir of the baseline")
    ap.add_argument("--new", required=True, help="build dir of the change")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--commands", type=int, default=30, help="commands per device in B's drain")
    ap.add_argument("--serve-args", default="", help="added to every `courier serve`")
    a = ap.parse_args()
    envs = {k: Env(types.SimpleNamespace(build_dir=os.path.abspath(v), serve_args=a.serve_args))
            for k, v in (("old", a.old), ("new", a.new))}
    pg = pm.Postgres(envs["new"])
    try:
        for r in range(a.rounds):
            for name in (("old", "new") if r % 2 == 0 else ("new", "old")):
                print(f"{name} round {r + 1}: {one(envs[name], pg, f'{name}-{r}', a.commands)}",
                      flush=True)
    finally:
        pg.stop()
        for e in envs.values():
            e.cleanup()


if __name__ == "__main__":
    main()
