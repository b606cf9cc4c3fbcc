// Benchmark F′: Courier's own HTTPS listener (Beast, the same TLS settings,
// threads and connection handling as `courier serve`) answering every
// request 200 on its I/O thread, without authentication, parsing or storage. Courier's Idle figure
// divided by this one is the share the handler's work leaves of what Courier's transport allows;
// nginx (F) is the same measure for a foreign server.
//
//   ceiling_server --listen 127.0.0.1:PORT --cert server.crt --key server.key
#include <signal.h>

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "server/http/listener.h"

using namespace courier::server;

int main(int argc, char** argv) {
    std::string listen = "127.0.0.1:0", cert, key;
    CLI::App app{"A 200-only HTTPS server on Courier's listener (benchmark ceiling)."};
    app.add_option("--listen", listen)->capture_default_str();
    app.add_option("--cert", cert, "PEM chain")->required();
    app.add_option("--key", key, "PEM key")->required();
    CLI11_PARSE(app, argc, argv);
    spdlog::set_level(spdlog::level::warn);  // no request log: its cost is not the transport's

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

    ListenerOptions o;
    o.listen = listen;
    o.tls_cert_file = cert;
    o.tls_key_file = key;
    // Answered on the I/O thread, as Courier answers an Idle with nothing queued.
    o.inline_handler = [](Request&) -> std::optional<Response> { return Response::empty(200); };
    HttpServer server(o, [](Request&) { return Response::empty(200); });
    if (auto s = server.start(); !s.is_ok()) {
        std::fprintf(stderr, "ceiling_server: %s\n", s.message().c_str());
        return 1;
    }
    std::printf("listening on port %u\n", server.https_port());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    server.stop();
    return 0;
}
