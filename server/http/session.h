// One connection of the listener (listener.cc): HTTP/1.1 keep-alive over
// TCP or TLS, its timers, limits and idle-list membership. Included only by
// listener.cc.
#pragma once

#include "server/http/listener_impl.h"

namespace courier::server::listener_detail {

// Request body bytes charged against max_buffered_bytes; released when
// destroyed (after the handler is done with the body).
class BodyCharge {
  public:
    BodyCharge() = default;
    BodyCharge(HttpServer::Impl* impl, size_t n) : impl_(impl), n_(n) {}
    BodyCharge(BodyCharge&& o) noexcept : impl_(o.impl_), n_(std::exchange(o.n_, 0)) {}
    BodyCharge& operator=(BodyCharge&&) = delete;
    ~BodyCharge() {
        if (impl_) impl_->release_body(n_);
    }

  private:
    HttpServer::Impl* impl_ = nullptr;
    size_t n_ = 0;
};

// One connection: reads requests one after another (HTTP/1.1 keep-alive),
// hands each to the worker pool, writes the response on the strand.
//
// One timer bounds every phase (PROXY header + handshake + first byte,
// header, body rate, idle, write, close); on expiry it cancels the pending
// socket operation, whose handler then closes. Connections the server
// closes after the handshake end with TLS close_notify.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>>, public IdleLink {
  public:
    Session(HttpServer::Impl& impl, Stream stream, std::string remote, std::string ip_key,
            bool proxy_header)
        : impl_(impl),
          stream_(std::move(stream)),
          deadline_(stream_.get_executor()),
          remote_(std::move(remote)),
          ip_key_(std::move(ip_key)),
          ip_counted_(!ip_key_.empty()),
          proxy_header_(proxy_header) {}
    ~Session() {
        release_ip();
        impl_.release_body(charged_);
        impl_.forget(this);
    }

    void run() {
        arm(impl_.opts.first_byte_timeout, Phase::kOpening);
        if (proxy_header_) return read_proxy_header();
        start();
    }

    bool post_evict() override {
        auto self = this->weak_from_this().lock();
        if (!self) return false;
        // Moved into the handler: the last reference must never be dropped
        // here, under idle_mu (the destructor takes it).
        net::post(stream_.get_executor(), [self = std::move(self)] { self->on_evicted(); });
        return true;
    }

  private:
    static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;
    enum class Phase { kOpening, kHeader, kBody, kIdle, kWrite, kClosing };

    beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

    void arm(std::chrono::milliseconds d, Phase phase) {
        phase_ = phase;
        unsigned gen = ++timer_gen_;
        deadline_.expires_after(d);
        deadline_.async_wait([weak = this->weak_from_this(), gen](error_code ec) {
            if (ec) return;
            if (auto self = weak.lock(); self && self->timer_gen_ == gen) self->on_deadline();
        });
    }
    void disarm() {
        ++timer_gen_;
        deadline_.cancel();
    }

    void on_deadline() {
        if (phase_ == Phase::kBody) {
            auto window = impl_.opts.body_rate_window;
            auto need = impl_.opts.min_body_rate * static_cast<size_t>(window.count()) / 1000;
            if (window_bytes_ >= need) {
                window_bytes_ = 0;
                return arm(window, Phase::kBody);
            }
            spdlog::info("{}: request body slower than {} bytes/s: closing", remote_,
                         impl_.opts.min_body_rate);
        }
        // The pending operation completes with operation_aborted and closes.
        timed_out_ = true;
        error_code ignored;
        lowest().socket().cancel(ignored);
    }

    void read_proxy_header() {
        proxy_buf_.resize(16);
        net::async_read(lowest(), net::buffer(proxy_buf_),
                        [self = this->shared_from_this()](error_code ec, size_t) {
                            if (ec) return self->refuse_without_proxy_header();
                            size_t len = proxy_v2_length(self->proxy_buf_);
                            if (len == 0) return self->refuse_without_proxy_header();
                            self->proxy_buf_.resize(len);
                            net::async_read(self->lowest(),
                                            net::buffer(self->proxy_buf_.data() + 16, len - 16),
                                            [self](error_code ec, size_t) {
                                                if (ec) return self->close_now();
                                                self->on_proxy_header();
                                            });
                        });
    }

    void refuse_without_proxy_header() {
        if (!timed_out_) impl_.note_refused(HttpServer::Impl::Refusal::kNoProxyHeader, remote_);
        close_now();
    }

    void on_proxy_header() {
        auto h = parse_proxy_v2(proxy_buf_);
        std::string().swap(proxy_buf_);
        if (!h) return refuse_without_proxy_header();
        if (!h->local) {
            auto addr = net::ip::make_address(h->address);
            remote_ = addr.is_v6() ? "[" + h->address + "]:" + std::to_string(h->port)
                                   : h->address + ":" + std::to_string(h->port);
            if (!impl_.acquire_ip(h->address)) {
                impl_.note_refused(HttpServer::Impl::Refusal::kPerIp, h->address);
                return close_now();
            }
            ip_key_ = h->address;
            ip_counted_ = true;
        }
        start();
    }

    void start() {
        if constexpr (kTls) {
            stream_.async_handshake(
                ssl::stream_base::server,
                [self = this->shared_from_this()](error_code ec) { self->on_handshake(ec); });
        } else {
            wait_request();
        }
    }

    void on_handshake(error_code ec) {
        if (ec) {
            spdlog::debug("TLS handshake from {} failed: {}", remote_,
                          timed_out_ ? "timed out" : ec.message());
            return close_now();
        }
        handshake_done_ = true;
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
        wait_request();
    }

    // Waits for the first byte of the next request: on a new connection within
    // the opening deadline (already running), on a kept-alive one within the
    // idle timeout.
    void wait_request() {
        parser_.emplace();
        parser_->body_limit(impl_.opts.body_limit);
        parser_->header_limit(kHeaderLimit);
        if (buffer_.size() > 0) {  // pipelined
            if (!first_ && !count_ip_again()) {
                short_close_ = true;
                return close_gracefully();
            }
            return read_header();
        }
        buffer_.shrink_to_fit();  // a large header's buffer is not kept while idle
        if (!first_) {
            // Served: idle until the next request starts, and the first to
            // be closed for a new connection at the connection limit.
            if (!impl_.enter_idle(this)) return close_gracefully();
            idle_reading_ = true;
            arm(impl_.opts.idle_timeout, Phase::kIdle);
        }
        first_ = false;
        stream_.async_read_some(buffer_.prepare(4096),
                                [self = this->shared_from_this()](error_code ec, size_t n) {
                                    self->buffer_.commit(n);
                                    if (std::exchange(self->idle_reading_, false))
                                        return self->on_idle_read(ec);
                                    if (ec) return self->on_read_error(ec);
                                    self->read_header();
                                });
    }

    // A served connection's wait for its next request ended: its first bytes
    // came, the client closed, the idle timeout expired, or it was evicted.
    // A new request counts against the address again (before leaving the idle
    // list, so whoever sees it leave sees it counted): one address holds at
    // most max_conns_per_ip connections that are not idle, however slowly
    // their requests arrive; beyond, the connection is closed. A connection
    // closed from idle waits only evict_close_timeout for the client's
    // close_notify: it was doing nothing, and an evicted one must make room.
    void on_idle_read(error_code ec) {
        bool refused = !ec && !evicted.load() && !count_ip_again();
        impl_.leave_idle(this);
        short_close_ = true;
        if (ec) return on_read_error(ec);
        if (refused || evicted.load()) return close_gracefully();
        short_close_ = false;
        read_header();
    }

    // A served connection starts a new request: counted against its address
    // until the response is written (or, without keep-alive, until it is
    // gone). False, with the refusal noted, at max_conns_per_ip.
    bool count_ip_again() {
        if (ip_key_.empty() || ip_counted_) return true;
        if (!impl_.acquire_ip(ip_key_)) {
            impl_.note_refused(HttpServer::Impl::Refusal::kPerIp, ip_key_);
            return false;
        }
        ip_counted_ = true;
        return true;
    }

    void read_header() {
        first_ = false;
        arm(impl_.opts.read_timeout, Phase::kHeader);
        http::async_read_header(
            stream_, buffer_, *parser_,
            [self = this->shared_from_this()](error_code ec, size_t) { self->on_header(ec); });
    }

    void on_header(error_code ec) {
        if (ec) return on_read_error(ec);
        disarm();
        started_ = std::chrono::steady_clock::now();
        const auto& msg = parser_->get();
        version_ = msg.version();
        req_ = Request{};
        req_.method = std::string(msg.method_string());
        req_.target = std::string(msg.target());
        if (!parse_target(req_.target, &req_.path, &req_.query))
            return reply_error(400, "malformed request target");
        for (const auto& f : msg) req_.headers.emplace(std::string(f.name_string()), f.value());
        req_.tls = kTls;
        req_.client_cert_der = client_cert_der_;
        req_.remote_address = remote_;
        keep_alive_ = msg.keep_alive() && !impl_.stopping.load();
        head_ = req_.method == "HEAD";
        if (parser_->is_done()) return on_body();

        // A body follows. Decide from the header alone whether to read it.
        if (impl_.opts.before_body) {
            std::optional<Response> early;
            try {
                early = impl_.opts.before_body(req_);
            } catch (const std::exception& e) {
                spdlog::error("{} {}: before-body check threw: {}", req_.method, req_.path,
                              e.what());
                early = Response::error(500, "internal error");
            }
            if (early) {
                log(req_, *early);
                keep_alive_ = false;  // the body was not read
                return write(std::move(*early));
            }
        }
        auto declared = parser_->content_length();
        size_t held = impl_.buffered.load();
        if (held >= impl_.opts.max_buffered_bytes ||
            (declared && *declared > impl_.opts.max_buffered_bytes - held))
            return reply_error(503, "server busy: too many request bodies in memory, retry later");

        if (beast::iequals(msg[http::field::expect], "100-continue")) {
            // curl -T - waits for this before sending the body.
            continue_.emplace(http::status::continue_, version_);
            arm(impl_.opts.write_timeout, Phase::kWrite);
            http::async_write(stream_, *continue_,
                              [self = this->shared_from_this()](error_code ec, size_t) {
                                  self->continue_.reset();
                                  if (ec) return self->close_now();
                                  self->read_body();
                              });
            return;
        }
        read_body();
    }

    void read_body() {
        window_bytes_ = 0;
        arm(impl_.opts.body_rate_window, Phase::kBody);
        read_body_some();
    }

    void read_body_some() {
        http::async_read_some(stream_, buffer_, *parser_,
                              [self = this->shared_from_this()](error_code ec, size_t n) {
                                  self->on_body_some(ec, n);
                              });
    }

    void on_body_some(error_code ec, size_t n) {
        window_bytes_ += n;
        size_t now = parser_->get().body().size();
        if (now > charged_) {
            size_t more = now - charged_;
            impl_.body_read.fetch_add(more);
            if (!impl_.charge_body(more)) {
                parser_.reset();  // frees what was read
                impl_.release_body(charged_);
                charged_ = 0;
                return reply_error(503,
                                   "server busy: too many request bodies in memory, retry later");
            }
            charged_ = now;
        }
        if (ec) return on_read_error(ec);
        if (!parser_->is_done()) return read_body_some();
        disarm();
        on_body();
    }

    void on_read_error(error_code ec) {
        if (ec == http::error::body_limit)
            return reply_error(413, "request body larger than " +
                                        std::to_string(impl_.opts.body_limit) + " bytes");
        if (ec == http::error::header_limit)
            return reply_error(
                431, "request headers larger than " + std::to_string(kHeaderLimit) + " bytes");
        if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
            ec != http::error::end_of_stream && ec != http::error::partial_message)
            return reply_error(400, "malformed HTTP request: " + ec.message());
        // The client went away, or a timeout cancelled the read.
        if (ec.category() == net::error::get_ssl_category() || ec == ssl::error::stream_truncated ||
            ec == net::error::connection_reset)
            tls_broken_ = true;
        close_gracefully();
    }

    // An answer the connection gives on its own; closes after.
    void reply_error(int status, const std::string& message) {
        spdlog::info("{} {} {}: {}", remote_, status,
                     req_.path.empty() ? "(unparsed request)" : req_.method + " " + req_.path,
                     message);
        keep_alive_ = false;
        head_ = false;
        write(Response::error(status, message));
    }

    void on_body() {
        Request req = std::move(req_);
        req_ = Request{};
        req.body = std::move(parser_->get().body());
        parser_.reset();
        BodyCharge charge(&impl_, std::exchange(charged_, 0));

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
                return write(std::move(*quick));
            }
        }
        net::post(*impl_.workers, [self = this->shared_from_this(), req = std::move(req),
                                   charge = std::move(charge)]() mutable {
            Response resp;
            try {
                resp = self->impl_.handler(req);
            } catch (const std::exception& e) {
                spdlog::error("{} {}: handler threw: {}", req.method, req.path, e.what());
                resp = Response::error(500, "internal error");
            }
            self->log(req, resp);
            std::string().swap(req.body);
            { BodyCharge done = std::move(charge); }
            net::post(self->stream_.get_executor(),
                      [self, resp = std::move(resp)]() mutable { self->write(std::move(resp)); });
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

    void write(Response r) {
        res_.emplace();
        res_->version(version_ ? version_ : 11);
        res_->result(static_cast<unsigned>(r.status));
        for (auto& [k, v] : r.headers) res_->set(k, v);
        size_t size = r.body.size();
        if (!head_) res_->body() = std::move(r.body);
        res_->content_length(size);
        res_->keep_alive(keep_alive_ && !impl_.stopping.load() && !evicted.load());
        arm(impl_.opts.write_timeout, Phase::kWrite);
        http::async_write(stream_, *res_, [self = this->shared_from_this()](error_code ec, size_t) {
            self->on_write(ec);
        });
    }

    void on_write(error_code ec) {
        disarm();
        bool keep = res_ && res_->keep_alive();
        res_.reset();
        if (in_flight_counted_) {
            in_flight_counted_ = false;
            impl_.request_done();
        }
        if (ec) return close_now();
        if (!keep) return close_gracefully();  // counted against its address until gone
        release_ip();  // served and kept alive: idle, no longer counted against its address
        wait_request();
    }

    // TLS: close_notify, then wait (briefly) for the client's. Plain HTTP:
    // FIN, then discard what the client still sends until it closes, so an
    // answer given before a body was read is not lost to a reset.
    void close_gracefully() {
        if (closing_) return;
        closing_ = true;
        parser_.reset();
        impl_.release_body(std::exchange(charged_, 0));
        arm(short_close_ ? impl_.opts.evict_close_timeout : impl_.opts.close_timeout,
            Phase::kClosing);
        if constexpr (kTls) {
            if (!handshake_done_ || tls_broken_) return close_now();
            stream_.async_shutdown(
                [self = this->shared_from_this()](error_code) { self->close_now(); });
        } else {
            error_code ignored;
            lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
            drain();
        }
    }

    void drain() {
        if (!scratch_) scratch_ = std::make_unique<std::array<char, 4096>>();
        lowest().async_read_some(net::buffer(*scratch_),
                                 [self = this->shared_from_this()](error_code ec, size_t) {
                                     if (ec) return self->close_now();
                                     self->drain();
                                 });
    }

    void close_now() {
        disarm();
        error_code ignored;
        lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
        lowest().close();
    }

    // Chosen to make room at the connection limit: the idle read is cancelled
    // and on_idle_read closes (close_notify, short wait). Not reading any
    // more: on_idle_read saw `evicted` and is closing already.
    void on_evicted() {
        if (!idle_reading_) return;
        error_code ignored;
        lowest().socket().cancel(ignored);
    }

    void release_ip() {
        if (!ip_counted_) return;
        impl_.release_ip(ip_key_);
        ip_counted_ = false;
    }

    HttpServer::Impl& impl_;
    Stream stream_;
    net::steady_timer deadline_;
    std::string remote_;
    std::string ip_key_;  // the address limited by max_conns_per_ip; empty: none
    bool ip_counted_;     // counted in pending_by_ip now (not idle)
    bool proxy_header_;
    std::string proxy_buf_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::optional<http::response<http::empty_body>> continue_;
    std::optional<http::response<http::string_body>> res_;
    std::unique_ptr<std::array<char, 4096>> scratch_;
    Request req_;  // the request whose header was read, before its body
    std::string client_cert_der_;
    std::chrono::steady_clock::time_point started_;
    size_t charged_ = 0;       // body bytes charged to impl_.buffered
    size_t window_bytes_ = 0;  // body bytes in the current rate window
    unsigned timer_gen_ = 0;
    unsigned version_ = 11;
    Phase phase_ = Phase::kOpening;
    bool first_ = true;
    bool keep_alive_ = true;
    bool head_ = false;
    bool in_flight_counted_ = false;
    bool handshake_done_ = false;
    bool tls_broken_ = false;
    bool timed_out_ = false;
    bool closing_ = false;
    bool short_close_ = false;   // closing from idle: wait evict_close_timeout only
    bool idle_reading_ = false;  // waiting for the next request, in the idle list
};

}  // namespace courier::server::listener_detail
