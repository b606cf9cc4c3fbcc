// `courier simulate`: flags, set-up, the chosen scenario and its summary.
#include <curl/curl.h>
#include <signal.h>

#include "sim/fleet.h"
#include "sim/fleet_internal.h"

namespace courier::sim {

namespace {

extern "C" void on_sigint(int) {
    fleet::g_interrupted = true;
}

}  // namespace

using namespace fleet;

int run_simulate_cli(int argc, char** argv) {
    Options o;
    CLI::App app{
        "courier simulate: a fleet of simulated devices against a running Courier.\n"
        "Scenarios: run (default), enroll, idle, drain, wake, fanout; see docs/simulator.md."};
    app.name("courier simulate");
    app.add_option("--scenario", o.scenario, "run, enroll, idle, drain, wake or fanout")
        ->check(CLI::IsMember({"run", "enroll", "idle", "drain", "wake", "fanout"}))
        ->capture_default_str();
    app.add_option("--url", o.url, "the server's device and API base URL")->capture_default_str();
    app.add_option("--data-dir", o.data_dir,
                   "the server's data dir: enrollment CA (device identities), tls/ca.crt, api-key")
        ->capture_default_str();
    app.add_option("--ca", o.ca_file,
                   "CA file for the server's TLS (default <data-dir>/tls/ca.crt)");
    app.add_option("--api-key", o.api_key, "API key (default read from <data-dir>/api-key)");
    app.add_option("--topic", o.topic, "push topic (default the server's push certificate's)");
    app.add_flag("--import-push-cert", o.import_push_cert,
                 "import a self-signed push certificate for --topic when none is active "
                 "(for a server that pushes to a fake APNs)");
    app.add_option("--devices,-n", o.devices, "number of devices")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str();
    app.add_option("--connections,-c", o.connections, "concurrent devices (threads)")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
    app.add_option("--auth", o.auth,
                   "tls: each device its own TLS client identity and connection; signature: "
                   "Mdm-Signature header, a connection per thread")
        ->check(CLI::IsMember({"tls", "signature"}))
        ->capture_default_str();
    app.add_option("--udid-prefix", o.udid_prefix, "UDID prefix (default SIM-<random>-)");
    app.add_option("--apns-listen", o.apns_listen,
                   "run a fake APNs on HOST:PORT; devices wake when it receives their push "
                   "(start the server with --apns-url https://HOST:PORT --apns-ca CERT)");
    app.add_option("--apns-cert", o.apns_cert, "the fake APNs' TLS certificate (PEM file)");
    app.add_option("--apns-key", o.apns_key, "the fake APNs' TLS key (PEM file)");
    app.add_option("--duration", o.duration_s, "seconds for run and idle (run: 0 = until Ctrl-C)")
        ->capture_default_str();
    app.add_option("--poll-ms", o.poll_ms,
                   "each device also checks in every N ms (0: only on push)")
        ->capture_default_str();
    app.add_option("--notnow-share", o.notnow_share, "share of commands answered NotNow (0..1)")
        ->check(CLI::Range(0.0, 0.9))
        ->capture_default_str();
    app.add_option("--error-share", o.error_share, "share of commands answered Error (0..1)")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    app.add_option("--notnow-retry-ms", o.notnow_retry_ms,
                   "a device that said NotNow checks in again after this long")
        ->capture_default_str();
    app.add_option("--commands-per-device", o.commands_per_device,
                   "drain: commands queued per device")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    app.add_option("--repeats", o.repeats, "wake: single-device wake-ups measured")
        ->capture_default_str();
    app.add_option("--wrk-script", o.wrk_script,
                   "after enrolling, write a wrk Lua script of the devices' signed Idle reports");
    app.add_option("--timeout-ms", o.timeout_ms, "per request")->capture_default_str();
    app.add_flag("--json", o.json, "print the summary as JSON");
    app.add_flag("--quiet,-q", o.quiet, "no progress lines");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    if (o.error_share + o.notnow_share > 1) {
        std::cerr << "courier simulate: --notnow-share + --error-share must not exceed 1\n";
        return 2;
    }
    fs::path dd = o.data_dir;
    if (o.ca_file.empty() && fs::exists(dd / "tls" / "ca.crt")) o.ca_file = dd / "tls" / "ca.crt";
    if (o.api_key.empty() && fs::exists(dd / "api-key"))
        o.api_key = trim(read_text(dd / "api-key"));
    if (o.connections > o.devices) o.connections = o.devices;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);

    Fleet f(o);
    Api api(client::Endpoint{o.url, o.api_key, o.ca_file}, 120000);
    for (int i = 0; i < o.connections; ++i) f.workers.push_back(std::make_unique<Worker>(f));

    auto fail = [](const std::string& m) {
        std::cerr << "courier simulate: " << m << "\n";
        return 1;
    };
    if (auto s = resolve_topic(f, api); !s) return fail(s.message());
    if (auto s = make_devices(f); !s) return fail(s.message());
    if (auto s = start_fake_apns(f); !s) return fail("fake APNs: " + s.message());

    json::object out{{"scenario", o.scenario},
                     {"devices", o.devices},
                     {"connections", o.connections},
                     {"auth", o.auth},
                     {"url", o.url}};
    bool ok = true;
    {
        Progress progress(f, !o.quiet && !o.json);
        auto enrolled = enroll(f);
        if (!enrolled) return fail(enrolled.status().message());
        auto lat = percentiles(merged_latencies(f));
        out["enroll"] = json::object{{"devices", o.devices},
                                     {"seconds", *enrolled},
                                     {"per_second", o.devices / *enrolled},
                                     {"request_latency_ms", to_json(lat)}};
        if (!o.wrk_script.empty()) write_wrk_script(f);
        auto start = Steady::now();
        if (o.scenario == "idle") scenario_idle(f, out);
        if (o.scenario == "drain") ok = scenario_drain(f, api, out);
        if (o.scenario == "wake") ok = scenario_wake(f, api, start, out);
        if (o.scenario == "fanout") ok = scenario_fanout(f, api, out);
        if (o.scenario == "run") {
            scenario_run(f, start);
            double secs = ms_between(start, Steady::now()) / 1000;
            out["run"] = json::object{{"seconds", secs},
                                      {"latency_ms", to_json(percentiles(merged_latencies(f)))}};
        }
    }
    out["totals"] = json::object{{"requests", f.count.requests.load()},
                                 {"commands", f.count.commands.load()},
                                 {"acknowledged", f.count.acknowledged.load()},
                                 {"notnow", f.count.notnow.load()},
                                 {"error", f.count.errors.load()},
                                 {"pushes_received", f.count.pushes.load()},
                                 {"http_errors", f.count.http_errors.load()},
                                 {"transport_errors", f.count.transport_errors.load()}};
    if (f.count.http_errors || f.count.transport_errors) ok = false;
    out["ok"] = ok;
    if (o.json) {
        std::cout << json::serialize(out) << "\n";
    } else {
        std::cout << "courier simulate — " << o.scenario << ", " << o.devices << " devices, "
                  << o.connections << " connections, auth " << o.auth << "\n";
        std::function<void(const json::object&, const std::string&)> show =
            [&](const json::object& obj, const std::string& indent) {
                for (const auto& [k, v] : obj) {
                    if (v.is_object()) {
                        std::cout << indent << std::string(k) << ":\n";
                        show(v.as_object(), indent + "  ");
                    } else if (v.is_double()) {
                        std::printf("%s%s: %.3f\n", indent.c_str(), std::string(k).c_str(),
                                    v.as_double());
                        std::fflush(stdout);
                    } else {
                        std::cout << indent << std::string(k) << ": " << json::serialize(v) << "\n";
                    }
                }
            };
        show(out, "  ");
    }
    if (f.apns) f.apns.reset();
    return ok ? 0 : 1;
}

}  // namespace courier::sim
