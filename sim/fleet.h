// `courier simulate`: a fleet of simulated devices against a running Courier,
// for load, benchmarks (bench/run.py) and trying a deployment out.
//
// Each device has an identity from the server's enrollment CA (read from the
// data dir, or given by flag), sends Authenticate and TokenUpdate, then acts
// like an iPhone: it checks in when the simulator's fake APNs receives a push
// for its token (or on a poll timer), executes the commands it is handed
// (Acknowledged with plausible replies, or a configurable share of NotNow and
// Error) and records what it saw. Scenarios:
//
//   run     enroll, then serve pushes/polls until --duration ends (0: SIGINT)
//   enroll  Authenticate + TokenUpdate for every device; rate (benchmark G)
//   idle    Idle check-ins back to back for --duration (benchmark A, TLS)
//   drain   queue --commands-per-device per device without push, then drain
//           them with Idle/Acknowledged cycles (benchmark B, E)
//   wake    enqueue → push → check-in → acknowledged latency, one device at a
//           time (--repeats), then every device at once (benchmark C)
//   fanout  one DeviceLock to every device in one request: time to commit,
//           and time until every push reached the fake APNs (benchmark D)
//
// A summary (throughput, latency percentiles) goes to stdout at the end, as
// JSON with --json; progress goes to stderr once a second.
#pragma once

namespace courier::sim {

// argv starts at the subcommand (`simulate --devices 10 …`). Exit 0 when the
// scenario completed without protocol errors, 1 otherwise, 2 on usage.
int run_simulate_cli(int argc, char** argv);

}  // namespace courier::sim
