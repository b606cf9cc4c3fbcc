// The APNs sender contract. The server talks to APNs only through Pusher, so
// tests and benchmarks can run it against `courier fake-apns` or a fake.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"

namespace courier::apns {

// The push certificate a topic is pushed with (PEM, unencrypted key).
struct Credentials {
    std::string topic;
    std::string cert_pem;
    std::string key_pem;
    std::string thumbprint_sha1;  // identifies the credential version
};

struct PushRequest {
    std::string token_hex;   // lowercase hex of the device's Token
    std::string push_magic;  // body {"mdm":"<PushMagic>"}
    std::string topic;
    SysTime
        expiration{};  // apns-expiration; the epoch means now + 7 days (0 would mean "try once")
    // The client identity. Null sends no client certificate (only useful
    // against `courier fake-apns --client-cert optional`).
    std::shared_ptr<const Credentials> credentials;
};

struct PushResult {
    int http_status = 0;  // 0: no HTTP answer (connect/TLS error, timeout)
    std::string apns_id;  // on 200
    std::string reason;   // APNs "reason", or a transport error message
    std::chrono::milliseconds retry_after{0};
};

class Pusher {
  public:
    using Callback = std::function<void(PushResult)>;
    virtual ~Pusher() = default;
    // Sends one push asynchronously; `done` runs exactly once, on a thread of
    // the pusher's own (never the caller's), and must not block for long.
    // Thread-safe. Retries are the caller's decision, not the pusher's.
    // After shutdown() has begun, `done` runs at once on the caller's thread
    // with http_status 0 and "shutting down" (the pusher's thread is gone).
    virtual void push(PushRequest req, Callback done) = 0;
    // Stops accepting pushes, fails queued ones (http_status 0, "shutting
    // down") and joins its threads. Idempotent.
    virtual void shutdown() = 0;
};

struct HttpPusherOptions {
    std::string base_url = "https://api.push.apple.com";
    std::string ca_file;  // empty: system trust store
    std::string proxy;    // http://host:port (CONNECT) or socks5://host:port
    // Whole push, connect included, from push(). A push that moves off a
    // connection found dead (below) gets one fresh timeout from the move.
    std::chrono::milliseconds timeout{10000};
    bool verify_peer = true;
    // Streams curl opens on one connection before it opens another (the
    // server's SETTINGS_MAX_CONCURRENT_STREAMS is honoured below this).
    long max_streams_per_connection = 1000;
    // Liveness (docs/apns.md "Connections", nghttp2 sender only): while pushes
    // wait on a connection that has sent nothing for ping_interval, it gets
    // an HTTP/2 PING (at once when a push goes onto a connection already
    // that silent); if nothing at all arrives within ping_timeout after it,
    // the connection is dead: it is closed and the pushes waiting on it move
    // to a new one. ping_interval + ping_timeout must stay well under
    // timeout, or the pushes time out before they can move: the defaults
    // give up a dead connection within 4 s (3 s for a push onto an idle one),
    // inside the 10 s push timeout and the 15 s docs/apns.md allows.
    std::chrono::milliseconds ping_interval{1000};
    std::chrono::milliseconds ping_timeout{3000};
};

// libcurl multi interface, HTTP/2, one long-lived multiplexed connection per
// credential (topic + certificate), reconnecting after GOAWAY or errors.
// Speaks through HTTP CONNECT and SOCKS5 proxies.
std::unique_ptr<Pusher> make_http_pusher(const HttpPusherOptions& opts);

// nghttp2 over non-blocking OpenSSL on one poll(2) thread: the same contract,
// several times libcurl's pushes per second on one connection; no proxies.
std::unique_ptr<Pusher> make_h2_pusher(const HttpPusherOptions& opts);

// The sender for these options: nghttp2's, or libcurl's when a proxy is set.
std::unique_ptr<Pusher> make_pusher(const HttpPusherOptions& opts);

}  // namespace courier::apns
