// A fake APNs provider endpoint for tests, the device simulator and
// benchmarks: HTTP/2 over TLS (ALPN h2) that answers `POST /3/device/<token>`
// the way api.push.apple.com does for MDM pushes, records every request, and
// can be told to fail, stall, send GOAWAY, drop or freeze its connections.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace courier::apns {

struct FakeApnsOptions {
    std::string listen = "127.0.0.1:0";  // HOST:PORT, port 0 picks a free one
    std::string cert_pem;                // server certificate (+ chain)
    std::string key_pem;
    // CA(s) client certificates must chain to; empty accepts any client
    // certificate (its thumbprint and UID are still recorded).
    std::string client_ca_pem;
    enum class ClientCert { kRequired, kOptional } client_cert = ClientCert::kRequired;
    std::chrono::milliseconds delay{0};  // before every answer
    uint32_t max_concurrent_streams = 1000;
};

// A canned answer: status and APNs reason ("Unregistered", ...).
struct FakeApnsResponse {
    int status = 200;
    std::string reason;
    std::string retry_after;  // Retry-After header value, if any
};

struct FakeApnsRequest {
    std::string method;
    std::string path;
    std::string token;                           // from /3/device/<token>
    std::map<std::string, std::string> headers;  // lower-case names, pseudo-headers excluded
    std::string body;
    std::string client_thumbprint_sha1;  // empty without a client certificate
    std::string client_uid;              // the certificate's subject UID (its topic)
    uint64_t connection_id = 0;          // 1, 2, ... in accept order
    std::chrono::system_clock::time_point received;
    int status = 0;  // what the fake answered
    std::string reason;
    std::string apns_id;  // on 200
};

// What wait_for's predicate sees, under the fake's lock.
struct FakeApnsState {
    const std::vector<FakeApnsRequest>& requests;
    uint64_t connections_accepted;  // TLS handshakes completed
    uint64_t connections_open;
};

class FakeApns {
  public:
    // Binds and starts the io thread. kInvalid for bad options or PEM,
    // kUnavailable when the address cannot be bound.
    static Result<std::unique_ptr<FakeApns>> start(FakeApnsOptions opts);
    ~FakeApns();  // stops and joins
    FakeApns(const FakeApns&) = delete;
    FakeApns& operator=(const FakeApns&) = delete;

    uint16_t port() const;
    std::string base_url() const;  // "https://<bound address>:<port>"

    // Answers pushes to `token` with `r`: the next `times` pushes, or every
    // one when times < 0. Later calls for the same token replace earlier ones.
    void set_response(const std::string& token, FakeApnsResponse r, int times = -1);
    void clear_responses();
    void set_delay(std::chrono::milliseconds d);

    // GOAWAY (NO_ERROR) on every open connection, which then closes once it
    // is written; streams not yet answered are lost, as with APNs' Shutdown.
    void send_goaway();
    // Closes every connection's socket abruptly (no GOAWAY, no TLS close).
    void drop_connections();
    // Turns every connection open now into a black hole, as a peer behind a
    // dead link or a hung server: it stays open but reads nothing, answers
    // nothing (no PING ACK) and sends nothing, until the fake stops. New
    // connections are served normally.
    void freeze_connections();

    // Runs on the io thread for every push answered 200; must not block.
    void on_push(std::function<void(const FakeApnsRequest&)> cb);

    std::vector<FakeApnsRequest> requests() const;
    size_t request_count() const;
    uint64_t connections_accepted() const;
    uint64_t connections_open() const;
    // Waits until pred(state) holds (checked on every change); false on timeout.
    bool wait_for(const std::function<bool(const FakeApnsState&)>& pred,
                  std::chrono::milliseconds timeout) const;

    class Impl;

  private:
    explicit FakeApns(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// `courier fake-apns`: --listen, --cert/--key (self-signed when absent),
// --client-ca, --client-cert required|optional, --fail TOKEN=STATUS:REASON
// (repeatable), --delay-ms, --log-pushes. Serves until SIGINT/SIGTERM.
// argv is main's (`courier fake-apns ...`) or starts at the subcommand.
// Prints "fake-apns listening on https://HOST:PORT" once it accepts.
int run_fake_apns_cli(int argc, char** argv);

}  // namespace courier::apns
