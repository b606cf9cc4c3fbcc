// The HTTP(S) front door: Beast over Asio. Only this component and the fake
// APNs see Asio types; handlers get server::Request (server/http/http.h).
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
#include <string_view>

#include "common/status.h"
#include "server/http/http.h"

namespace courier::server {

// Called once per request on a worker thread. `log` gets the request line.
using RequestHandler = std::function<Response(Request&)>;
// Tried first, on the I/O thread: an answer is written at once, without the
// two thread hand-offs of a worker; nullopt sends the request on to the
// RequestHandler. It must never block (no store writes, no network).
using InlineHandler = std::function<std::optional<Response>(Request&)>;

// Called on the I/O thread once the header of a request with a body has
// arrived, before any of the body is read (and before `100 Continue`). The
// Request has everything but the body. A Response is written at once and the
// connection closed (the unread body is never buffered); nullopt reads the
// body and goes on. It must never block.
using BeforeBodyHandler = std::function<std::optional<Response>(const Request&)>;

struct ListenerOptions {
    std::string listen = "0.0.0.0:8443";  // HTTPS; empty: off
    std::string http_listen;              // plain HTTP; empty: off
    std::string tls_cert_file;            // PEM chain, leaf first
    std::string tls_key_file;
    std::string client_ca_file;  // CA names sent in CertificateRequest (optional)
    size_t body_limit = 16 * 1024 * 1024;
    // Request bodies held in memory across all connections; a body that would
    // go beyond gets 503 and its connection is closed.
    size_t max_buffered_bytes = size_t{256} * 1024 * 1024;
    // On `listen` only: connections from one source address that are not
    // served keep-alive connections waiting idle (those are reclaimed by
    // eviction at max_connections instead). A new connection beyond is closed
    // at once; so is a served one whose next request starts beyond it. A
    // served connection counts again from its next request's first byte until
    // that response is written. 0: no limit.
    size_t max_conns_per_ip = 1000;
    // On `listen` only: every connection starts with HAProxy's PROXY v2 header,
    // whose source address is the client's; a connection without one is closed.
    bool proxy_protocol = false;
    // The PROXY header, the TLS handshake and the first request byte must
    // arrive within this of the connection being accepted.
    std::chrono::milliseconds first_byte_timeout{10000};
    // A request header must arrive whole within this of its first byte.
    std::chrono::milliseconds read_timeout{30000};
    // A request body must keep arriving at `min_body_rate` bytes/s, measured
    // over windows of `body_rate_window` (no fixed deadline for the whole body).
    size_t min_body_rate = 1024;
    std::chrono::milliseconds body_rate_window{10000};
    // Keep-alive connections idle this long are closed.
    std::chrono::milliseconds idle_timeout{60000};
    // A response must be taken by the client within this.
    std::chrono::milliseconds write_timeout{30000};
    // Closing: TLS close_notify exchange, or (plain HTTP) draining what the
    // client still sends after our FIN, for at most this long.
    std::chrono::milliseconds close_timeout{2000};
    int io_threads = 0;      // 0: hardware concurrency
    int worker_threads = 0;  // 0: max(32, 4 × hardware concurrency)
    // Beyond: the connection idle the longest (served, waiting for its next
    // request) is closed to make room; when none is idle, the new connection
    // is accepted and closed at once.
    size_t max_connections = 10000;
    // Evicted connections still closing, at most (beyond, newcomers at the
    // limit are refused): the total stays <= max_connections + this. 0: no
    // eviction. An evicted (or otherwise idle) connection gets close_notify
    // and is closed after evict_close_timeout, answered or not.
    size_t max_evictions_in_flight = 32;
    std::chrono::milliseconds evict_close_timeout{100};
    InlineHandler inline_handler;   // optional
    BeforeBodyHandler before_body;  // optional
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
    // The most open at once since start.
    size_t peak_connections() const;
    // Of those, served keep-alive connections waiting for their next request.
    size_t idle_connections() const;
    // Bytes of request bodies held in memory now (at most max_buffered_bytes).
    size_t buffered_body_bytes() const;
    // Request body bytes read since start (a body refused before reading adds
    // nothing).
    uint64_t body_bytes_read() const;
    // Connections refused since start (connection or per-address limit,
    // missing PROXY header).
    uint64_t refused_connections() const;
    // Idle keep-alive connections closed since start to make room for a new
    // connection at max_connections.
    uint64_t evicted_connections() const;

    struct Impl;  // opaque; public so the connection code in listener.cc can name it

  private:
    std::unique_ptr<Impl> impl_;
};

// HAProxy's PROXY protocol v2 header (binary form; the text v1 is not read).
struct ProxyHeader {
    bool local = false;   // LOCAL command (the proxy's own health check), or
                          // an unspecified family: use the connection's address
    std::string address;  // the client's address ("192.0.2.1", "2001:db8::1")
    uint16_t port = 0;
};
// The header's whole length from its first 16 bytes; 0 when they do not start
// a v2 header or it is longer than `max`.
size_t proxy_v2_length(std::string_view first16, size_t max = 4096);
// A whole header (as long as proxy_v2_length said); nullopt when invalid: bad
// signature, version or command, a family other than TCP over IPv4/IPv6 or
// unspecified, or addresses longer than the header.
std::optional<ProxyHeader> parse_proxy_v2(std::string_view header);

// "host:port" → host and port. IPv6 as "[::1]:8443".
bool split_host_port(const std::string& s, std::string* host, uint16_t* port);

}  // namespace courier::server
