// The HTTP(S) front door: Beast over Asio. Only this component and the fake
// APNs see Asio types; handlers get server::Request (server/http.h).
//
// Threads: `io_threads` run the sockets (TLS, parsing, writing) and never
// block; each complete request is handed to a pool of `worker_threads` that
// runs the handler (which may block on SQLite or crypto), and the response is
// written back on the connection's strand.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "server/http.h"

namespace courier::server {

// Called once per request on a worker thread. `log` gets the request line.
using RequestHandler = std::function<Response(Request&)>;
// Tried first, on the I/O thread: an answer is written at once, without the
// two thread hand-offs of a worker; nullopt sends the request on to the
// RequestHandler. It must never block (no store writes, no network).
using InlineHandler = std::function<std::optional<Response>(Request&)>;

struct ListenerOptions {
    std::string listen = "0.0.0.0:8443";  // HTTPS; empty: off
    std::string http_listen;              // plain HTTP; empty: off
    std::string tls_cert_file;            // PEM chain, leaf first
    std::string tls_key_file;
    std::string client_ca_file;  // CA names sent in CertificateRequest (optional)
    size_t body_limit = 16 * 1024 * 1024;
    std::chrono::seconds read_timeout{30};   // a request must arrive whole within this
    std::chrono::seconds idle_timeout{120};  // keep-alive connections idle this long close
    int io_threads = 0;                      // 0: hardware concurrency
    int worker_threads = 0;                  // 0: max(32, 4 × hardware concurrency)
    size_t max_connections = 10000;          // beyond: accepted and closed at once
    InlineHandler inline_handler;            // optional
};

class HttpServer {
  public:
    HttpServer(ListenerOptions opts, RequestHandler handler);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Binds and starts the threads. kInvalid for a bad address or TLS file.
    Status start();
    // Stops accepting, lets in-flight requests finish within `grace`, then
    // closes everything and joins the threads. Idempotent.
    void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));
    // The bound ports (useful with port 0), 0 when that listener is off.
    uint16_t https_port() const;
    uint16_t http_port() const;
    size_t open_connections() const;

    struct Impl;  // opaque; public so the connection code in listener.cc can name it

  private:
    std::unique_ptr<Impl> impl_;
};

// "host:port" → host and port. IPv6 as "[::1]:8443".
bool split_host_port(const std::string& s, std::string* host, uint16_t* port);

}  // namespace courier::server
