#include "server/listener.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace courier::server {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

namespace {
// Large enough for an Mdm-Signature (base64 CMS, a few KiB) or a proxy's
// URL-escaped certificate header.
constexpr uint32_t kHeaderLimit = 64 * 1024;
}  // namespace

struct HttpServer::Impl {
    ListenerOptions opts;
    RequestHandler handler;

    // Declared before the io_context: sessions still queued in it when it is
    // destroyed touch these from their destructors.
    std::atomic<size_t> connections{0};
    std::atomic<size_t> in_flight{0};
    std::atomic<bool> stopping{false};
    std::mutex mu;
    std::condition_variable idle_cv;
    std::optional<ssl::context> tls;
    std::optional<net::thread_pool> workers;

    net::io_context io;
    std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
    std::optional<tcp::acceptor> https_acceptor, http_acceptor;
    net::steady_timer accept_backoff{io};
    std::vector<std::thread> io_threads;
    uint16_t https_port = 0, http_port = 0;
    bool started = false, stopped = false;

    Impl(ListenerOptions o, RequestHandler h) : opts(std::move(o)), handler(std::move(h)) {}

    Status open_acceptor(const std::string& listen, std::optional<tcp::acceptor>* out,
                         uint16_t* port);
    Status make_tls_context();
    void accept(tcp::acceptor& acceptor, bool tls);
    void request_done() {
        if (in_flight.fetch_sub(1) == 1) {
            std::lock_guard lock(mu);
            idle_cv.notify_all();
        }
    }
};

namespace {

// One connection: reads requests one after another (HTTP/1.1 keep-alive),
// hands each to the worker pool, writes the response on the strand.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  public:
    Session(HttpServer::Impl& impl, Stream stream, std::string remote)
        : impl_(impl), stream_(std::move(stream)), remote_(std::move(remote)) {}
    ~Session() { impl_.connections.fetch_sub(1); }

    void run() {
        if constexpr (kTls) {
            lowest().expires_after(impl_.opts.read_timeout);
            stream_.async_handshake(
                ssl::stream_base::server,
                [self = this->shared_from_this()](error_code ec) { self->on_handshake(ec); });
        } else {
            read_header();
        }
    }

  private:
    static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

    beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

    void on_handshake(error_code ec) {
        if (ec) {
            spdlog::debug("TLS handshake from {} failed: {}", remote_, ec.message());
            return close();
        }
        if constexpr (kTls) {
            X509* cert = SSL_get_peer_certificate(stream_.native_handle());
            if (cert) {
                int len = i2d_X509(cert, nullptr);
                if (len > 0) {
                    client_cert_der_.resize(static_cast<size_t>(len));
                    auto* p = reinterpret_cast<unsigned char*>(client_cert_der_.data());
                    i2d_X509(cert, &p);
                }
                X509_free(cert);
            }
        }
        read_header();
    }

    void read_header() {
        parser_.emplace();
        parser_->body_limit(impl_.opts.body_limit);
        parser_->header_limit(kHeaderLimit);
        // The first request must come within the read timeout; later ones on a
        // kept-alive connection may wait up to the idle timeout.
        lowest().expires_after(first_ ? impl_.opts.read_timeout : impl_.opts.idle_timeout);
        first_ = false;
        http::async_read_header(
            stream_, buffer_, *parser_,
            [self = this->shared_from_this()](error_code ec, size_t) { self->on_header(ec); });
    }

    void on_header(error_code ec) {
        if (ec) return on_read_error(ec);
        started_ = std::chrono::steady_clock::now();
        lowest().expires_after(impl_.opts.read_timeout);
        const auto& req = parser_->get();
        auto expect = req[http::field::expect];
        if (beast::iequals(expect, "100-continue") && !parser_->is_done()) {
            // curl -T - waits for this before sending the body.
            continue_.emplace(http::status::continue_, req.version());
            http::async_write(stream_, *continue_,
                              [self = this->shared_from_this()](error_code ec, size_t) {
                                  if (ec) return self->close();
                                  self->read_body();
                              });
            return;
        }
        read_body();
    }

    void read_body() {
        http::async_read(
            stream_, buffer_, *parser_,
            [self = this->shared_from_this()](error_code ec, size_t) { self->on_body(ec); });
    }

    void on_read_error(error_code ec) {
        if (ec == http::error::end_of_stream || ec == net::error::eof ||
            ec == beast::error::timeout || ec == net::error::operation_aborted ||
            ec == net::error::connection_reset || ec == ssl::error::stream_truncated)
            return close();
        if (ec == http::error::body_limit)
            return reply_error(413, "request body larger than " +
                                        std::to_string(impl_.opts.body_limit) + " bytes");
        if (ec == http::error::header_limit)
            return reply_error(
                431, "request headers larger than " + std::to_string(kHeaderLimit) + " bytes");
        if (ec.category() == http::make_error_code(http::error::bad_target).category())
            return reply_error(400, "malformed HTTP request: " + ec.message());
        close();
    }

    // An answer the connection gives on its own (framing errors); closes after.
    void reply_error(int status, const std::string& message) {
        spdlog::info("{} {} {}: {}", remote_, status, "(unparsed request)", message);
        Response r = Response::error(status, message);
        keep_alive_ = false;
        head_ = false;
        in_flight_counted_ = false;
        write(std::move(r), 11);
    }

    void on_body(error_code ec) {
        if (ec) return on_read_error(ec);
        auto msg = parser_->release();
        Request req;
        req.method = std::string(msg.method_string());
        req.target = std::string(msg.target());
        if (!parse_target(req.target, &req.path, &req.query)) {
            keep_alive_ = false;
            head_ = false;
            in_flight_counted_ = false;
            return write(Response::error(400, "malformed request target"), msg.version());
        }
        for (const auto& f : msg) req.headers.emplace(std::string(f.name_string()), f.value());
        req.body = std::move(msg.body());
        req.tls = kTls;
        req.client_cert_der = client_cert_der_;
        req.remote_address = remote_;
        keep_alive_ = msg.keep_alive() && !impl_.stopping.load();
        head_ = req.method == "HEAD";
        unsigned version = msg.version();

        impl_.in_flight.fetch_add(1);
        in_flight_counted_ = true;
        if (impl_.opts.inline_handler) {
            std::optional<Response> quick;
            try {
                quick = impl_.opts.inline_handler(req);
            } catch (const std::exception& e) {
                spdlog::error("{} {}: handler threw: {}", req.method, req.path, e.what());
                quick = Response::error(500, "internal error");
            }
            if (quick) {
                log(req, *quick);
                return write(std::move(*quick), version);
            }
        }
        lowest().expires_never();  // the handler's time is not the client's
        net::post(*impl_.workers,
                  [self = this->shared_from_this(), req = std::move(req), version]() mutable {
                      Response resp;
                      try {
                          resp = self->impl_.handler(req);
                      } catch (const std::exception& e) {
                          spdlog::error("{} {}: handler threw: {}", req.method, req.path, e.what());
                          resp = Response::error(500, "internal error");
                      }
                      self->log(req, resp);
                      net::post(self->stream_.get_executor(),
                                [self, resp = std::move(resp), version]() mutable {
                                    self->write(std::move(resp), version);
                                });
                  });
    }

    void log(const Request& req, const Response& resp) {
        if (!spdlog::should_log(spdlog::level::info)) return;
        double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_)
                .count();
        // The path only: query strings may carry tokens or passwords.
        spdlog::info("{} {} {} {:.2f}ms enrollment={} remote={}", req.method, req.path, resp.status,
                     ms, resp.log_enrollment.empty() ? "-" : resp.log_enrollment, remote_);
    }

    void write(Response r, unsigned version) {
        res_.emplace();
        res_->version(version ? version : 11);
        res_->result(static_cast<unsigned>(r.status));
        for (auto& [k, v] : r.headers) res_->set(k, v);
        size_t size = r.body.size();
        if (!head_) res_->body() = std::move(r.body);
        res_->content_length(size);
        res_->keep_alive(keep_alive_ && !impl_.stopping.load());
        lowest().expires_after(impl_.opts.read_timeout);
        http::async_write(stream_, *res_, [self = this->shared_from_this()](error_code ec, size_t) {
            self->on_write(ec);
        });
    }

    void on_write(error_code ec) {
        bool keep = res_ && res_->keep_alive();
        res_.reset();
        if (in_flight_counted_) {
            in_flight_counted_ = false;
            impl_.request_done();
        }
        if (ec || !keep) return close();
        read_header();
    }

    void close() {
        error_code ignored;
        lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
        lowest().close();
    }

    HttpServer::Impl& impl_;
    Stream stream_;
    std::string remote_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::optional<http::response<http::empty_body>> continue_;
    std::optional<http::response<http::string_body>> res_;
    std::string client_cert_der_;
    std::chrono::steady_clock::time_point started_;
    bool first_ = true;
    bool keep_alive_ = true;
    bool head_ = false;
    bool in_flight_counted_ = false;
};

// Accepts any client certificate at the TLS layer: whether it identifies an
// enrolled device is decided by the device authenticator, which gives a
// precise error instead of a failed handshake.
int accept_any_client_cert(int, X509_STORE_CTX*) {
    return 1;
}

}  // namespace

Status HttpServer::Impl::open_acceptor(const std::string& listen, std::optional<tcp::acceptor>* out,
                                       uint16_t* port) {
    std::string host;
    uint16_t p = 0;
    if (!split_host_port(listen, &host, &p)) return invalid("bad listen address '" + listen + "'");
    error_code ec;
    tcp::endpoint ep;
    if (host.empty()) {
        ep = tcp::endpoint(tcp::v4(), p);
    } else {
        auto addr = net::ip::make_address(host, ec);
        if (ec) {
            tcp::resolver resolver(io);
            auto results = resolver.resolve(host, std::to_string(p), ec);
            if (ec || results.empty())
                return invalid("cannot resolve listen host '" + host + "': " + ec.message());
            ep = results.begin()->endpoint();
        } else {
            ep = tcp::endpoint(addr, p);
        }
    }
    out->emplace(io);
    auto& a = **out;
    a.open(ep.protocol(), ec);
    if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) a.bind(ep, ec);
    if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
        out->reset();
        return invalid("cannot listen on " + listen + ": " + ec.message());
    }
    *port = a.local_endpoint().port();
    return Status::ok();
}

Status HttpServer::Impl::make_tls_context() {
    tls.emplace(ssl::context::tls_server);
    auto& ctx = *tls;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                    ssl::context::single_dh_use);
    error_code ec;
    ctx.use_certificate_chain_file(opts.tls_cert_file, ec);
    if (ec) return invalid("TLS certificate " + opts.tls_cert_file + ": " + ec.message());
    ctx.use_private_key_file(opts.tls_key_file, ssl::context::pem, ec);
    if (ec) return invalid("TLS key " + opts.tls_key_file + ": " + ec.message());
    SSL_CTX* native = ctx.native_handle();
    if (SSL_CTX_check_private_key(native) != 1)
        return invalid("TLS key " + opts.tls_key_file + " does not match the certificate");
    SSL_CTX_set_verify(native, SSL_VERIFY_PEER, accept_any_client_cert);
    // Needed for session resumption once peer verification is on.
    static const unsigned char kSid[] = "courier";
    SSL_CTX_set_session_id_context(native, kSid, sizeof kSid - 1);
    if (!opts.client_ca_file.empty()) {
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(opts.client_ca_file.c_str());
        if (!names) return invalid("cannot read client CA file " + opts.client_ca_file);
        SSL_CTX_set_client_CA_list(native, names);
    }
    return Status::ok();
}

void HttpServer::Impl::accept(tcp::acceptor& acceptor, bool use_tls) {
    acceptor.async_accept(
        net::make_strand(io), [this, &acceptor, use_tls](error_code ec, tcp::socket socket) {
            if (stopping.load() || !acceptor.is_open()) return;
            if (ec) {
                // Out of descriptors or similar: back off instead of spinning.
                spdlog::warn("accept failed: {}", ec.message());
                accept_backoff.expires_after(std::chrono::milliseconds(100));
                accept_backoff.async_wait([this, &acceptor, use_tls](error_code) {
                    if (!stopping.load()) accept(acceptor, use_tls);
                });
                return;
            }
            if (connections.load() >= opts.max_connections) {
                spdlog::warn("connection limit ({}) reached: refusing a connection",
                             opts.max_connections);
                error_code ignored;
                socket.close(ignored);
            } else {
                connections.fetch_add(1);
                error_code ignored;
                socket.set_option(tcp::no_delay(true), ignored);
                std::string remote;
                auto ep = socket.remote_endpoint(ignored);
                if (!ignored) remote = ep.address().to_string() + ":" + std::to_string(ep.port());
                if (use_tls) {
                    std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
                        *this, beast::ssl_stream<beast::tcp_stream>(std::move(socket), *tls),
                        std::move(remote))
                        ->run();
                } else {
                    std::make_shared<Session<beast::tcp_stream>>(
                        *this, beast::tcp_stream(std::move(socket)), std::move(remote))
                        ->run();
                }
            }
            accept(acceptor, use_tls);
        });
}

HttpServer::HttpServer(ListenerOptions opts, RequestHandler handler)
    : impl_(std::make_unique<Impl>(std::move(opts), std::move(handler))) {}

HttpServer::~HttpServer() {
    stop(std::chrono::milliseconds(0));
}

Status HttpServer::start() {
    auto& m = *impl_;
    if (m.started) return invalid("already started");
    if (m.opts.listen.empty() && m.opts.http_listen.empty())
        return invalid("no listener: give --listen or --http-listen");
    if (!m.opts.listen.empty()) {
        if (auto s = m.make_tls_context(); !s.is_ok()) return s;
        if (auto s = m.open_acceptor(m.opts.listen, &m.https_acceptor, &m.https_port); !s.is_ok())
            return s;
    }
    if (!m.opts.http_listen.empty()) {
        if (auto s = m.open_acceptor(m.opts.http_listen, &m.http_acceptor, &m.http_port);
            !s.is_ok())
            return s;
    }
    unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    int io_n = m.opts.io_threads > 0 ? m.opts.io_threads : static_cast<int>(hw);
    // Workers mostly wait for the store's group commit: the more requests
    // wait together, the more one fsync serves (docs/storage.md).
    int work_n =
        m.opts.worker_threads > 0 ? m.opts.worker_threads : std::max(32, static_cast<int>(4 * hw));
    m.workers.emplace(static_cast<size_t>(work_n));
    m.work.emplace(m.io.get_executor());
    if (m.https_acceptor) m.accept(*m.https_acceptor, true);
    if (m.http_acceptor) m.accept(*m.http_acceptor, false);
    for (int i = 0; i < io_n; ++i) m.io_threads.emplace_back([&m] { m.io.run(); });
    m.started = true;
    return Status::ok();
}

void HttpServer::stop(std::chrono::milliseconds grace) {
    auto& m = *impl_;
    if (!m.started || m.stopped) return;
    m.stopped = true;
    m.stopping.store(true);
    // Acceptors belong to the I/O threads: close them there.
    std::promise<void> closed;
    net::post(m.io, [&m, &closed] {
        error_code ignored;
        if (m.https_acceptor) m.https_acceptor->close(ignored);
        if (m.http_acceptor) m.http_acceptor->close(ignored);
        m.accept_backoff.cancel();
        closed.set_value();
    });
    closed.get_future().wait();
    {
        std::unique_lock lock(m.mu);
        m.idle_cv.wait_for(lock, grace, [&m] { return m.in_flight.load() == 0; });
    }
    m.work.reset();
    m.io.stop();
    for (auto& t : m.io_threads) t.join();
    m.io_threads.clear();
    if (m.workers) m.workers->join();
}

uint16_t HttpServer::https_port() const {
    return impl_->https_port;
}
uint16_t HttpServer::http_port() const {
    return impl_->http_port;
}
size_t HttpServer::open_connections() const {
    return impl_->connections.load();
}

bool split_host_port(const std::string& s, std::string* host, uint16_t* port) {
    std::string h;
    std::string_view rest;
    if (!s.empty() && s.front() == '[') {
        auto close = s.find(']');
        if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
            return false;
        h = s.substr(1, close - 1);
        rest = std::string_view(s).substr(close + 2);
    } else {
        auto colon = s.rfind(':');
        if (colon == std::string::npos) return false;
        h = s.substr(0, colon);
        if (h.find(':') != std::string::npos) return false;  // bare IPv6 needs brackets
        rest = std::string_view(s).substr(colon + 1);
    }
    if (rest.empty() || rest.size() > 5) return false;
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), value);
    if (ec != std::errc() || ptr != rest.data() + rest.size() || value > 65535) return false;
    *host = std::move(h);
    *port = static_cast<uint16_t>(value);
    return true;
}

}  // namespace courier::server
