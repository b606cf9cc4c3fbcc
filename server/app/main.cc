// courier: the server (`serve`), its fake APNs (`fake-apns`), the device fleet
// simulator (`simulate`), and the administrators' command line (devices, lock,
// pushcert, …).
#include <malloc.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "apns/fake/fake_apns.h"
#include "common/log.h"
#include "db/migrate.h"
#include "db/open.h"
#include "server/app/app.h"
#include "server/app/serve_flags.h"
#include "server/client/cli_client.h"
#include "sim/fleet.h"

namespace {

int run_serve(const courier::server::Config& cfg) {
    if (auto s = courier::init_logging(cfg.log_level, cfg.log_format); !s.is_ok()) {
        std::cerr << "courier serve: " << s.message() << "\n";
        return 2;
    }
    umask(077);  // every file Courier creates is private unless it says otherwise
#ifdef __GLIBC__
    // Request bodies (up to --body-limit each, --max-buffered-mb together)
    // come in bursts. A fixed threshold keeps every block of 256 KiB or more
    // in a mapping of its own, unmapped when freed. glibc's default raises
    // the threshold with each large free; such blocks then stay in per-thread
    // arenas whose free tops malloc_trim does not give back (measured after a
    // burst against a 32 MiB cap: 33 MiB kept, 1 MiB with this;
    // tests/http/resource_limits_test.cc).
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
    // Signals are taken synchronously by this thread; every thread the server
    // starts inherits the blocked mask.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    signal(SIGPIPE, SIG_IGN);

    courier::server::App app(cfg);
    if (auto s = app.start(); !s.is_ok()) {
        spdlog::critical("cannot start: {}", s.message());
        return 1;
    }
    int sig = 0;
    sigwait(&sigs, &sig);
    spdlog::info("{} received: finishing in-flight requests",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
    app.stop();
    return 0;
}

}  // namespace

int run_migrate(const std::string& from, const std::string& to, std::string data_dir) {
    std::string path = from;
    if (path.rfind("sqlite://", 0) == 0) path = path.substr(9);
    if (path.empty() || path.find("://") != std::string::npos) {
        std::fprintf(stderr, "courier migrate: --from takes sqlite://PATH\n");
        return 2;
    }
    if (!courier::db::is_postgres_url(to)) {
        std::fprintf(stderr, "courier migrate: --to takes postgres://…\n");
        return 2;
    }
    if (data_dir.empty()) data_dir = std::filesystem::path(path).parent_path().string();
    if (data_dir.empty()) data_dir = ".";
    auto r = courier::db::migrate_sqlite_to_postgres(path, data_dir, to);
    if (!r.is_ok()) {
        std::fprintf(stderr, "courier migrate: %s\n", r.status().message().c_str());
        return 1;
    }
    for (const auto& [table, rows] : r->rows)
        std::printf("%-18s %lld rows copied and verified\n", table.c_str(),
                    static_cast<long long>(rows));
    for (const auto& [file, copied] : r->files)
        std::printf("%-18s %s\n", file.c_str(), copied ? "copied" : "absent (not copied)");
    std::printf("done: start the nodes with --db %s\n", "<the target URI>");
    return 0;
}

int main(int argc, char** argv) {
    if (argc >= 2 && std::string_view(argv[1]) == "fake-apns")
        return courier::apns::run_fake_apns_cli(argc - 1, argv + 1);
    if (argc >= 2 && std::string_view(argv[1]) == "simulate")
        return courier::sim::run_simulate_cli(argc - 1, argv + 1);

    CLI::App app{
        "Courier: Apple MDM command-wakeup server.\n"
        "Run `courier serve` to start it; every other command talks to a running server."};
    app.require_subcommand(1);
    app.set_version_flag("--version", "courier " COURIER_VERSION);

    courier::server::Config cfg;
    int exit_code = 0;
    auto* serve = app.add_subcommand(
        "serve", "run the server (every flag also as COURIER_<FLAG>; defaults need no flags)");
    courier::server::add_serve_options(*serve, &cfg);
    serve->callback([&] { exit_code = run_serve(cfg); });

    app.add_subcommand("fake-apns",
                       "run a fake APNs (HTTP/2) for tests and benchmarks; `courier fake-apns "
                       "--help` for its flags")
        ->allow_extras();

    app.add_subcommand("simulate",
                       "simulate a fleet of devices against a running server (load, benchmarks); "
                       "`courier simulate --help` for its flags")
        ->allow_extras();

    std::string migrate_from, migrate_to, migrate_dir;
    auto* migrate = app.add_subcommand(
        "migrate",
        "copy a single-node installation (SQLite) into an empty PostgreSQL database, then verify "
        "the counts");
    migrate->add_option("--from", migrate_from, "sqlite://PATH of the source database")->required();
    migrate->add_option("--to", migrate_to, "postgres://… of the empty target database")
        ->required();
    migrate->add_option("--data-dir", migrate_dir,
                        "data dir whose generated keys (api-key, tls/ca.*, enrollment-ca.*) are "
                        "copied; default: the source database's directory");
    migrate->callback([&] { exit_code = run_migrate(migrate_from, migrate_to, migrate_dir); });

    courier::client::register_client_commands(app, &exit_code);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    return exit_code;
}
