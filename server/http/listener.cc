#include "server/listener.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
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

namespace listener_detail {
// A served keep-alive connection waiting for its next request: a link in the
// listener's list of idle connections, oldest first. At the connection limit
// the oldest is closed to make room for a new connection. `prev`, `next` and
// `linked` are guarded by HttpServer::Impl::idle_mu.
class IdleLink {
  public:
    IdleLink* prev = nullptr;
    IdleLink* next = nullptr;
    bool linked = false;
    // Set once the listener chose this connection to close; it never reads
    // another request (one whose first bytes raced the eviction is dropped).
    std::atomic<bool> evicted{false};
    // Counted in HttpServer::Impl::evicting until the connection is gone.
    bool eviction_counted = false;
    // Called under idle_mu: hands the eviction to the connection's strand;
    // false when the connection is already being destroyed.
    virtual bool post_evict() = 0;

  protected:
    ~IdleLink() = default;
};
}  // namespace listener_detail
using listener_detail::IdleLink;

struct HttpServer::Impl {
    ListenerOptions opts;
    RequestHandler handler;

    // Declared before the io_context: sessions still queued in it when it is
    // destroyed touch these from their destructors.
    std::atomic<size_t> connections{0};
    std::atomic<size_t> in_flight{0};
    std::atomic<size_t> buffered{0};  // request body bytes held now
    std::atomic<uint64_t> body_read{0};
    std::atomic<uint64_t> refused{0};
    std::atomic<uint64_t> evicted_total{0};
    std::atomic<bool> stopping{false};
    std::mutex mu;
    std::condition_variable idle_cv;
    std::optional<ssl::context> tls;
    std::optional<net::thread_pool> workers;
    // Per source address: connections that are not served keep-alive ones
    // waiting idle (see Session::count_ip_again).
    std::mutex ip_mu;
    std::unordered_map<std::string, size_t> pending_by_ip;
    // Served keep-alive connections waiting for their next request, oldest
    // first (an intrusive list: O(1) to join, leave and evict).
    std::mutex idle_mu;
    IdleLink* idle_head = nullptr;
    IdleLink* idle_tail = nullptr;
    std::atomic<size_t> idle_count{0};
    // Evicted connections not yet gone (each still in `connections`), at most
    // opts.max_evictions_in_flight; and the most connections open at once.
    // Both guarded by idle_mu, as is every change to `connections`, so
    // connections <= max_connections + evicting always holds.
    size_t evicting = 0;
    std::atomic<size_t> peak{0};
    // Refusals are logged as counts, at most once a second.
    std::mutex refuse_mu;
    size_t refused_at_total = 0, refused_per_ip = 0, refused_no_proxy = 0, evicted_idle = 0;
    std::string last_refused;
    bool refuse_log_armed = false;
    std::mutex trim_mu;
    bool trim_armed = false;

    net::io_context io;
    std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
    std::optional<tcp::acceptor> https_acceptor, http_acceptor;
    net::steady_timer accept_backoff{io};
    net::steady_timer refuse_log_timer{io};
    net::steady_timer trim_timer{io};
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

    // Counts `ip` as one more connection that is not idle; false
    // (and nothing counted) when it already has max_conns_per_ip.
    bool acquire_ip(const std::string& ip) {
        std::lock_guard lock(ip_mu);
        size_t& n = pending_by_ip[ip];
        if (opts.max_conns_per_ip > 0 && n >= opts.max_conns_per_ip) {
            if (n == 0) pending_by_ip.erase(ip);
            return false;
        }
        ++n;
        return true;
    }
    void release_ip(const std::string& ip) {
        std::lock_guard lock(ip_mu);
        auto it = pending_by_ip.find(ip);
        if (it != pending_by_ip.end() && --it->second == 0) pending_by_ip.erase(it);
    }

    // The idle list. enter_idle is false (and nothing changes) for a
    // connection already chosen for eviction.
    bool enter_idle(IdleLink* l) {
        std::lock_guard lock(idle_mu);
        if (l->linked) return true;
        if (l->evicted.load()) return false;
        l->prev = idle_tail;
        l->next = nullptr;
        (idle_tail ? idle_tail->next : idle_head) = l;
        idle_tail = l;
        l->linked = true;
        idle_count.fetch_add(1);
        return true;
    }
    void leave_idle(IdleLink* l) {
        std::lock_guard lock(idle_mu);
        unlink_idle(l);
    }
    // From a connection's destructor: it no longer counts (nor, if it was
    // evicted, its eviction).
    void forget(IdleLink* l) {
        std::lock_guard lock(idle_mu);
        unlink_idle(l);
        connections.fetch_sub(1);
        if (std::exchange(l->eviction_counted, false)) --evicting;
    }
    void unlink_idle(IdleLink* l) {  // under idle_mu
        if (!l->linked) return;
        (l->prev ? l->prev->next : idle_head) = l->next;
        (l->next ? l->next->prev : idle_tail) = l->prev;
        l->prev = l->next = nullptr;
        l->linked = false;
        idle_count.fetch_sub(1);
    }
    // A new connection: counted, or refused at max_connections. At the limit
    // the connection idle the longest is closed (on its strand: close_notify,
    // then closed after opts.evict_close_timeout) to make room, unless
    // max_evictions_in_flight evicted ones are still closing. So the total
    // stays <= max_connections + max_evictions_in_flight, each of the extra
    // ones closing within about evict_close_timeout.
    enum class Admission { kAdmitted, kAfterEviction, kRefused };
    Admission admit() {
        std::lock_guard lock(idle_mu);
        Admission a = Admission::kAdmitted;
        if (connections.load() >= opts.max_connections) {
            if (evicting >= opts.max_evictions_in_flight || !evict_oldest_idle())
                return Admission::kRefused;
            a = Admission::kAfterEviction;
        }
        size_t now = connections.fetch_add(1) + 1;
        if (now > peak.load()) peak.store(now);
        return a;
    }
    bool evict_oldest_idle() {  // under idle_mu
        while (IdleLink* l = idle_head) {
            unlink_idle(l);
            l->evicted.store(true);
            if (l->post_evict()) {
                l->eviction_counted = true;
                ++evicting;
                evicted_total.fetch_add(1);
                return true;
            }
        }
        return false;
    }

    enum class Refusal { kTotal, kPerIp, kNoProxyHeader };
    void note_refused(Refusal why, const std::string& from) {
        refused.fetch_add(1);
        std::lock_guard lock(refuse_mu);
        (why == Refusal::kTotal   ? refused_at_total
         : why == Refusal::kPerIp ? refused_per_ip
                                  : refused_no_proxy)++;
        last_refused = from;
        arm_refusal_log();
    }
    // An idle connection closed to make room (in `evicted_total` already).
    void note_evicted() {
        std::lock_guard lock(refuse_mu);
        ++evicted_idle;
        arm_refusal_log();
    }
    void arm_refusal_log() {  // under refuse_mu
        if (refuse_log_armed) return;
        refuse_log_armed = true;
        refuse_log_timer.expires_after(std::chrono::seconds(1));
        refuse_log_timer.async_wait([this](error_code) { log_refusals(); });
    }
    void log_refusals() {
        std::lock_guard lock(refuse_mu);
        refuse_log_armed = false;
        size_t total = refused_at_total + refused_per_ip + refused_no_proxy;
        if (total > 0) {
            spdlog::warn(
                "refused {} connection(s) in the last second: {} at the connection limit ({}), {} "
                "over the per-address limit ({}), {} without a PROXY header; the last from {}{}",
                total, refused_at_total, opts.max_connections, refused_per_ip,
                opts.max_conns_per_ip, refused_no_proxy, last_refused,
                evicted_idle == 0 ? std::string()
                                  : "; closed " + std::to_string(evicted_idle) +
                                        " idle keep-alive connection(s) to make room");
        } else if (evicted_idle > 0) {
            spdlog::warn(
                "closed {} idle keep-alive connection(s) in the last second to make room for new "
                "ones at the connection limit ({})",
                evicted_idle, opts.max_connections);
        }
        refused_at_total = refused_per_ip = refused_no_proxy = evicted_idle = 0;
    }

    // Request body memory: charged as it arrives, released when the request
    // is done with it.
    bool charge_body(size_t n) {
        size_t now = buffered.fetch_add(n) + n;
        if (now <= opts.max_buffered_bytes) return true;
        buffered.fetch_sub(n);
        return false;
    }
    void release_body(size_t n) {
        if (n == 0) return;
        buffered.fetch_sub(n);
        // Large bodies may live in memory malloc keeps after free (its mmap
        // threshold rises with them unless fixed, as `courier serve` does in
        // main.cc): give it back to the system once a burst has passed, at
        // most every half second.
        if (n < 256 * 1024) return;
        std::lock_guard lock(trim_mu);
        if (trim_armed || stopping.load()) return;
        trim_armed = true;
        trim_timer.expires_after(std::chrono::milliseconds(500));
        trim_timer.async_wait([this](error_code ec) {
            {
                std::lock_guard lock(trim_mu);
                trim_armed = false;
            }
#ifdef __GLIBC__
            if (!ec && !stopping.load()) net::post(*workers, [] { malloc_trim(0); });
#else
            (void)ec;
#endif
        });
    }
};

namespace {

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

namespace {
constexpr unsigned char kProxyV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
}  // namespace

size_t proxy_v2_length(std::string_view first16, size_t max) {
    if (first16.size() < 16 || std::memcmp(first16.data(), kProxyV2Signature, 12) != 0) return 0;
    if ((static_cast<unsigned char>(first16[12]) >> 4) != 2) return 0;
    size_t len = (static_cast<size_t>(static_cast<unsigned char>(first16[14])) << 8) |
                 static_cast<unsigned char>(first16[15]);
    return 16 + len <= max ? 16 + len : 0;
}

std::optional<ProxyHeader> parse_proxy_v2(std::string_view h) {
    if (h.size() < 16 || proxy_v2_length(h, h.size()) != h.size()) return std::nullopt;
    auto byte = [&](size_t i) { return static_cast<unsigned char>(h[i]); };
    unsigned command = byte(12) & 0x0F;
    unsigned family = byte(13);
    ProxyHeader out;
    if (command == 0x0) {  // LOCAL: the proxy speaking for itself
        out.local = true;
        return out;
    }
    if (command != 0x1) return std::nullopt;
    size_t len = h.size() - 16;
    auto port_at = [&](size_t i) { return static_cast<uint16_t>((byte(i) << 8) | byte(i + 1)); };
    if (family == 0x11) {  // TCP over IPv4: src, dst, src port, dst port
        if (len < 12) return std::nullopt;
        net::ip::address_v4::bytes_type b;
        std::memcpy(b.data(), h.data() + 16, 4);
        out.address = net::ip::address_v4(b).to_string();
        out.port = port_at(24);
        return out;
    }
    if (family == 0x21) {  // TCP over IPv6
        if (len < 36) return std::nullopt;
        net::ip::address_v6::bytes_type b;
        std::memcpy(b.data(), h.data() + 16, 16);
        out.address = net::ip::address_v6(b).to_string();
        out.port = port_at(48);
        return out;
    }
    if (family == 0x00) {  // unspecified: the receiver uses the connection's address
        out.local = true;
        return out;
    }
    return std::nullopt;  // UDP, UNIX sockets: not what sits in front of Courier
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
