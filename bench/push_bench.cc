// push_bench: MDM pushes per second through a pusher (nghttp2 or libcurl) to FakeApns
// over one HTTP/2 connection, with at most --window pushes in flight.
//   push_bench --pushes 100000 --window 500 [--sender nghttp2|curl] [--client-cert] [--url
//   https://127.0.0.1:2197]
#include <CLI/CLI.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>

#include "apns/fake/fake_apns.h"
#include "apns/pusher.h"
#include "certs/authority.h"

using namespace courier;
using namespace courier::apns;

namespace {

constexpr const char* kTopic = "com.apple.mgmt.External.9f1c1d2e-bench";

struct Window {
    std::mutex mu;
    std::condition_variable cv;
    int in_flight = 0;
    long done = 0, ok = 0;
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"MDM push throughput through one HTTP/2 connection"};
    long pushes = 100000;
    int window = 500;
    bool client_cert = false;
    std::string url;
    std::string sender = "nghttp2";
    app.add_option("--pushes", pushes, "pushes to send")->capture_default_str();
    app.add_option("--window", window, "pushes in flight at most")->capture_default_str();
    app.add_flag("--client-cert", client_cert, "authenticate with a generated push certificate");
    app.add_option("--url", url, "an already running fake APNs (default: one in-process)");
    app.add_option("--sender", sender,
                   "nghttp2 (the server's default) or curl (used with --apns-proxy)")
        ->check(CLI::IsMember({"nghttp2", "curl"}))
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    auto ca = certs::CertificateAuthority::create("push_bench CA", 30);
    if (!ca) return std::fprintf(stderr, "%s\n", ca.status().message().c_str()), 1;
    std::unique_ptr<FakeApns> fake;
    if (url.empty()) {
        certs::IssueOptions server;
        server.common_name = "localhost";
        server.days = 30;
        server.ip_addresses = {"127.0.0.1"};
        server.server_auth = true;
        auto id = ca->issue(server);
        if (!id) return std::fprintf(stderr, "%s\n", id.status().message().c_str()), 1;
        FakeApnsOptions fo;
        fo.cert_pem = certs::cert_to_pem(id->cert.get());
        fo.key_pem = certs::key_to_pem(id->key.get());
        fo.client_cert = FakeApnsOptions::ClientCert::kOptional;
        auto started = FakeApns::start(fo);
        if (!started) return std::fprintf(stderr, "%s\n", started.status().message().c_str()), 1;
        fake = std::move(*started);
        url = fake->base_url();
    }
    std::shared_ptr<const Credentials> creds;
    if (client_cert) {
        certs::IssueOptions push;
        // No UID: the fake checks apns-topic only against a certificate's UID.
        push.common_name = "push_bench client";
        auto id = ca->issue(push);
        if (!id) return std::fprintf(stderr, "%s\n", id.status().message().c_str()), 1;
        creds = std::make_shared<Credentials>(Credentials{
            kTopic, certs::cert_to_pem(id->cert.get()), certs::key_to_pem(id->key.get()), ""});
    }

    HttpPusherOptions po;
    po.base_url = url;
    po.verify_peer = false;  // the bench measures pushes, not chain building
    auto pusher = sender == "curl" ? make_http_pusher(po) : make_h2_pusher(po);
    Window w;
    auto send = [&](long i) {
        PushRequest r;
        char token[65];
        std::snprintf(token, sizeof token, "%064lx", i);
        r.token_hex = token;
        r.push_magic = "5F2A7B3C-0D1E-4F5A-8B9C-0D1E2F3A4B5C";
        r.topic = kTopic;
        r.expiration = from_unix(to_unix(SystemClock::instance().now()) + 7 * 86400);
        r.credentials = creds;
        pusher->push(std::move(r), [&w](PushResult res) {
            std::lock_guard lock(w.mu);
            --w.in_flight;
            ++w.done;
            if (res.http_status == 200) ++w.ok;
            w.cv.notify_all();
        });
    };
    auto wait_done = [&](long n) {
        std::unique_lock lock(w.mu);
        return w.cv.wait_for(lock, std::chrono::minutes(5), [&] { return w.done >= n; });
    };

    {
        std::lock_guard lock(w.mu);
        ++w.in_flight;
    }
    send(0);  // the connection is opened outside the measurement
    if (!wait_done(1)) return std::fprintf(stderr, "warm-up push timed out\n"), 1;

    auto start = std::chrono::steady_clock::now();
    for (long i = 1; i <= pushes; ++i) {
        {
            std::unique_lock lock(w.mu);
            if (!w.cv.wait_for(lock, std::chrono::minutes(1),
                               [&] { return w.in_flight < window; })) {
                return std::fprintf(stderr, "pushes stalled\n"), 1;
            }
            ++w.in_flight;
        }
        send(i);
    }
    bool finished = wait_done(pushes + 1);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    pusher->shutdown();
    std::printf(
        "sender=%s pushes=%ld window=%d client_cert=%s ok=%ld seconds=%.3f pushes_per_second=%.0f",
        sender.c_str(), pushes, window, client_cert ? "yes" : "no", w.ok - 1, secs, pushes / secs);
    if (fake) std::printf(" connections=%llu", (unsigned long long)fake->connections_accepted());
    std::printf("\n");
    return finished && w.ok == pushes + 1 ? 0 : 1;
}
