// HttpServer (listener.h): acceptors, the TLS context, the worker pool,
// start and graceful stop. Connections are Session (session.h).
#include "server/http/listener.h"

#include "server/http/listener_impl.h"
#include "server/http/session.h"

namespace courier::server {

using listener_detail::Session;

namespace {

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
    // TLS 1.2: forward secrecy and AEAD only (no static RSA key exchange, no
    // CBC). TLS 1.3 suites are OpenSSL's defaults, all of them AEAD.
    if (SSL_CTX_set_cipher_list(native, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL") != 1)
        return invalid("TLS: no usable TLS 1.2 cipher suite");
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
    acceptor.async_accept(net::make_strand(io), [this, &acceptor, use_tls](error_code ec,
                                                                           tcp::socket socket) {
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
        error_code ignored;
        auto ep = socket.remote_endpoint(ignored);
        std::string ip = ignored ? std::string("?") : ep.address().to_string();
        std::string remote = ignored                ? ip
                             : ep.address().is_v6() ? "[" + ip + "]:" + std::to_string(ep.port())
                                                    : ip + ":" + std::to_string(ep.port());
        // Behind a PROXY header the address is known only once it is read;
        // plain HTTP is for a proxy in front, whose address is everyone's.
        bool proxy = use_tls && opts.proxy_protocol;
        std::string ip_key = use_tls && !proxy ? ip : std::string();
        Admission admission = Admission::kRefused;
        if (!ip_key.empty() && !acquire_ip(ip_key)) {
            note_refused(Refusal::kPerIp, ip);
            socket.close(ignored);
        } else if ((admission = admit()) == Admission::kRefused) {
            // At the limit and every connection busy (none idle to close
            // instead), or enough evicted ones still closing.
            if (!ip_key.empty()) release_ip(ip_key);
            note_refused(Refusal::kTotal, ip);
            socket.close(ignored);
        } else {
            if (admission == Admission::kAfterEviction) note_evicted();
            socket.set_option(tcp::no_delay(true), ignored);
            if (use_tls) {
                std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
                    *this, beast::ssl_stream<beast::tcp_stream>(std::move(socket), *tls),
                    std::move(remote), std::move(ip_key), proxy)
                    ->run();
            } else {
                std::make_shared<Session<beast::tcp_stream>>(
                    *this, beast::tcp_stream(std::move(socket)), std::move(remote), std::string(),
                    false)
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
        {
            std::lock_guard lock(m.trim_mu);
            m.trim_timer.cancel();
        }
        m.log_refusals();
        {
            std::lock_guard lock(m.refuse_mu);
            m.refuse_log_timer.cancel();
        }
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
size_t HttpServer::peak_connections() const {
    return impl_->peak.load();
}
size_t HttpServer::buffered_body_bytes() const {
    return impl_->buffered.load();
}
uint64_t HttpServer::body_bytes_read() const {
    return impl_->body_read.load();
}
uint64_t HttpServer::refused_connections() const {
    return impl_->refused.load();
}
size_t HttpServer::idle_connections() const {
    return impl_->idle_count.load();
}
uint64_t HttpServer::evicted_connections() const {
    return impl_->evicted_total.load();
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
