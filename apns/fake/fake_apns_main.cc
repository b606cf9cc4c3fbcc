// `courier fake-apns`: FakeApns as a process, for the push benchmark, the
// device simulator and manual tests against a running server.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <csignal>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apns/fake/fake_apns.h"
#include "certs/authority.h"
#include "common/encoding.h"
#include "common/file_io.h"

namespace courier::apns {
namespace {

// TOKEN=STATUS:REASON, e.g. 0a1b=410:Unregistered.
Result<std::pair<std::string, FakeApnsResponse>> parse_fail(const std::string& spec) {
    auto eq = spec.find('=');
    auto colon = spec.find(':', eq == std::string::npos ? 0 : eq);
    if (eq == std::string::npos || eq == 0 || colon == std::string::npos) {
        return invalid("--fail wants TOKEN=STATUS:REASON, got " + spec);
    }
    FakeApnsResponse r;
    try {
        r.status = std::stoi(spec.substr(eq + 1, colon - eq - 1));
    } catch (const std::exception&) {
        return invalid("--fail: bad status in " + spec);
    }
    if (r.status < 200 || r.status > 599) return invalid("--fail: bad status in " + spec);
    r.reason = spec.substr(colon + 1);
    return std::pair{spec.substr(0, eq), r};
}

// A throwaway CA and a server leaf for 127.0.0.1 / localhost.
Status generate_server_identity(FakeApnsOptions& opts) {
    auto ca = certs::CertificateAuthority::create("Courier fake APNs CA", 365);
    if (!ca) return ca.status();
    certs::IssueOptions io;
    io.common_name = "localhost";
    io.days = 365;
    io.dns_names = {"localhost"};
    io.ip_addresses = {"127.0.0.1", "::1"};
    io.server_auth = true;
    auto id = ca->issue(io);
    if (!id) return id.status();
    opts.cert_pem = certs::cert_to_pem(id->cert.get()) + certs::cert_to_pem(ca->cert());
    opts.key_pem = certs::key_to_pem(id->key.get());
    return Status::ok();
}

}  // namespace

int run_fake_apns_cli(int argc, char** argv) {
    CLI::App app{"Fake APNs provider endpoint (HTTP/2 over TLS) for tests and benchmarks",
                 "courier fake-apns"};
    FakeApnsOptions opts;
    opts.listen = "127.0.0.1:2197";  // APNs' alternative port
    std::string cert_file, key_file, client_ca_file, client_cert = "required";
    std::vector<std::string> fails;
    int delay_ms = 0;
    bool log_pushes = false;
    app.add_option("--listen", opts.listen, "HOST:PORT to listen on")->capture_default_str();
    app.add_option("--cert", cert_file, "server certificate chain PEM (default: generated)");
    app.add_option("--key", key_file, "server key PEM");
    app.add_option("--client-ca", client_ca_file,
                   "CA PEM for client certificates (default: accept any)");
    app.add_option("--client-cert", client_cert, "required|optional")
        ->check(CLI::IsMember({"required", "optional"}))
        ->capture_default_str();
    app.add_option("--fail", fails, "TOKEN=STATUS:REASON, answered to every push to TOKEN");
    app.add_option("--delay-ms", delay_ms, "delay before every answer")
        ->check(CLI::NonNegativeNumber);
    app.add_flag("--log-pushes", log_pushes, "log every push (token redacted)");
    if (argc > 1 && std::string_view(argv[1]) == "fake-apns") {  // main's whole argv
        --argc;
        ++argv;
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }

    if (cert_file.empty() != key_file.empty()) {
        std::cerr << "fake-apns: --cert and --key go together\n";
        return 2;
    }
    Status st;
    if (cert_file.empty()) {
        st = generate_server_identity(opts);
    } else {
        auto cert = read_file(cert_file);
        auto key = read_file(key_file);
        st = !cert ? cert.status() : !key ? key.status() : Status::ok();
        if (st) {
            opts.cert_pem = *cert;
            opts.key_pem = *key;
        }
    }
    if (st && !client_ca_file.empty()) {
        auto ca = read_file(client_ca_file);
        if (ca)
            opts.client_ca_pem = *ca;
        else
            st = ca.status();
    }
    std::vector<std::pair<std::string, FakeApnsResponse>> responses;
    for (const auto& f : fails) {
        if (!st) break;
        auto parsed = parse_fail(f);
        if (parsed)
            responses.push_back(*parsed);
        else
            st = parsed.status();
    }
    if (!st) {
        std::cerr << "fake-apns: " << st.message() << "\n";
        return 2;
    }
    opts.client_cert = client_cert == "optional" ? FakeApnsOptions::ClientCert::kOptional
                                                 : FakeApnsOptions::ClientCert::kRequired;
    opts.delay = std::chrono::milliseconds(delay_ms);

    // Block the signals before any thread starts, so only sigwait sees them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    auto fake = FakeApns::start(opts);
    if (!fake) {
        std::cerr << "fake-apns: " << fake.status().message() << "\n";
        return 1;
    }
    for (auto& [token, r] : responses) (*fake)->set_response(token, r);
    if (log_pushes) {
        (*fake)->on_push([](const FakeApnsRequest& r) {
            spdlog::info("push token={} topic={} connection={} client={}", redact(r.token),
                         r.headers.count("apns-topic") ? r.headers.at("apns-topic") : "",
                         r.connection_id, r.client_thumbprint_sha1);
        });
    }
    std::cout << "fake-apns listening on " << (*fake)->base_url() << std::endl;
    int sig = 0;
    sigwait(&signals, &sig);
    std::cout << "fake-apns: " << (*fake)->request_count() << " requests, "
              << (*fake)->connections_accepted() << " connections" << std::endl;
    return 0;
}

}  // namespace courier::apns
