// The APNs sender on nghttp2's C API (the default; libcurl's is kept for
// proxies). One thread owns everything: a poll(2) loop over an eventfd that
// push() signals and one non-blocking TLS socket per connection. nghttp2 does
// the HTTP/2 framing; this file moves bytes between it and OpenSSL, writing
// the frames of many pushes with one SSL_write — where libcurl's per-transfer
// state machine and per-stream writes capped one connection near 20k pushes/s.
//
// Connections: one per credential (topic + certificate) in use, opened on the
// first push, kept while pushes flow; a renewed certificate is a new
// credential and so a new connection, and the old one is closed once idle.
// After GOAWAY or a dropped connection the next push opens a new one; pushes
// the server refused unprocessed (GOAWAY's REFUSED_STREAM) are sent again on
// it, once. At most one connection's streams are in flight per connection; the
// rest wait in order. Every push has a deadline (HttpPusherOptions::timeout
// from push()) covering connect, TLS and the answer; a push that moves off a
// dead connection gets one fresh deadline (timeout from the move).
//
// Liveness: a connection with pushes waiting that has received nothing for
// ping_interval gets an HTTP/2 PING — at once when a push goes onto a
// connection already silent that long, else at the next deadline scan; when
// nothing arrives within ping_timeout after it, the connection is dead (a
// half-open socket, a peer that stopped reading): it is closed and every push
// still waiting on it, unanswered or not sent, moves to a new connection once.
// So a dead connection is given up within ping_interval + ping_timeout of its
// last byte while pushes wait (4 s with the defaults), well inside a push's
// 10 s deadline. TCP keep-alive (and TCP_USER_TIMEOUT for unacknowledged data)
// backs this up below HTTP/2.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "apns/pusher.h"
#include "apns/wire.h"
#include "common/encoding.h"
#include "common/status.h"

namespace courier::apns {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kWriteBatch = 64 * 1024;  // frames gathered before one SSL_write
constexpr auto kIdleClose = std::chrono::hours(1);
constexpr auto kDeadlineScan = milliseconds(50);
// After a connection fails before it ever worked (DNS, refused, TLS), pushes
// for the same credentials fail at once with its reason for this long rather
// than each trying again (a fleet wake-up would otherwise be thousands of
// blocking lookups or handshakes against a server that is down).
constexpr auto kRetryPause = std::chrono::seconds(1);

std::string openssl_error_text() {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out;
}

struct Target {
    std::string host;       // for DNS, SNI and certificate checks (no brackets)
    std::string port;       // service for getaddrinfo
    std::string authority;  // :authority
    std::string prefix;     // path prefix from the base URL, no trailing '/'
    bool ip_literal = false;
};

// The base URL, read with libcurl's URL parser.
Result<Target> parse_base_url(const std::string& url) {
    CURLU* u = curl_url();
    auto cleanup = std::unique_ptr<CURLU, decltype(&curl_url_cleanup)>(u, curl_url_cleanup);
    if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) != CURLUE_OK)
        return Result<Target>(Code::kInvalid, "APNs URL is not a URL: " + url);
    auto part = [&](CURLUPart which, unsigned flags) -> std::string {
        char* v = nullptr;
        if (curl_url_get(u, which, &v, flags) != CURLUE_OK || v == nullptr) return {};
        std::string s(v);
        curl_free(v);
        return s;
    };
    if (part(CURLUPART_SCHEME, 0) != "https")
        return Result<Target>(Code::kInvalid, "APNs URL must be https: " + url);
    Target t;
    t.host = part(CURLUPART_HOST, 0);
    t.port = part(CURLUPART_PORT, CURLU_DEFAULT_PORT);
    if (t.host.empty()) return Result<Target>(Code::kInvalid, "APNs URL has no host: " + url);
    bool bracketed = t.host.front() == '[';
    std::string bare = bracketed ? t.host.substr(1, t.host.size() - 2) : t.host;
    t.authority = t.port == "443" ? t.host : t.host + ":" + t.port;
    t.host = bare;
    in6_addr a6{};
    in_addr a4{};
    t.ip_literal =
        inet_pton(AF_INET6, bare.c_str(), &a6) == 1 || inet_pton(AF_INET, bare.c_str(), &a4) == 1;
    t.prefix = part(CURLUPART_PATH, 0);
    while (!t.prefix.empty() && t.prefix.back() == '/') t.prefix.pop_back();
    return t;
}

struct Submission {
    PushRequest req;
    Pusher::Callback done;
    Clock::time_point deadline;
    bool resent = false;  // refused unprocessed once already
    bool moved = false;   // taken off a dead connection once already
};

struct Connection;
class H2Pusher;

struct Stream {
    Submission sub;
    std::string body;
    size_t body_sent = 0;
    PushResult result;
    std::string response_body;
};

struct Connection {
    enum class State { kConnecting, kHandshaking, kReady, kClosed };

    H2Pusher* owner = nullptr;
    std::shared_ptr<const Credentials> creds;
    State state = State::kConnecting;
    int fd = -1;
    SSL_CTX* ctx = nullptr;
    SSL* ssl = nullptr;
    nghttp2_session* session = nullptr;
    bool ever_ready = false;
    bool goaway = false;           // no new streams: the server is going away
    bool ssl_wants_write = false;  // the last SSL call asked for POLLOUT
    std::string out;               // frames nghttp2 produced, not yet written
    size_t out_off = 0;
    std::deque<Submission> backlog;  // waiting for this connection or a free stream
    std::unordered_map<int32_t, std::unique_ptr<Stream>> streams;
    Clock::time_point last_active = Clock::now();
    Clock::time_point last_read = Clock::now();  // bytes last came from the server
    std::optional<Clock::time_point> ping_sent;  // a PING nothing has answered yet
    std::string label;                           // for logs: the topic
    Clock::time_point closed_at;
    std::string closed_reason;

    ~Connection() {
        if (session != nullptr) nghttp2_session_del(session);
        if (ssl != nullptr) SSL_free(ssl);
        if (ctx != nullptr) SSL_CTX_free(ctx);
        if (fd >= 0) ::close(fd);
    }
};

class H2Pusher final : public Pusher {
  public:
    explicit H2Pusher(HttpPusherOptions opts) : opts_(std::move(opts)) {
        auto target = parse_base_url(opts_.base_url);
        if (target) {
            target_ = std::move(*target);
        } else {
            config_error_ = target.status().message();
        }
        if (opts_.ping_interval + opts_.ping_timeout >= opts_.timeout)
            spdlog::warn(
                "apns: ping interval {} ms + ping timeout {} ms is not under the push timeout {} "
                "ms: pushes on a connection that stopped answering time out before they can "
                "move to a new one",
                opts_.ping_interval.count(), opts_.ping_timeout.count(), opts_.timeout.count());
        wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        nghttp2_session_callbacks_new(&callbacks_);
        nghttp2_session_callbacks_set_on_header_callback(callbacks_, on_header);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks_, on_data);
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks_, on_stream_close);
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks_, on_frame_recv);
        thread_ = std::thread([this] { run(); });
    }

    ~H2Pusher() override {
        shutdown();
        nghttp2_session_callbacks_del(callbacks_);
        if (wake_fd_ >= 0) ::close(wake_fd_);
    }

    void push(PushRequest req, Callback done) override {
        {
            std::lock_guard lock(mu_);
            if (!stopping_) {
                submitted_.push_back(
                    {std::move(req), std::move(done), Clock::now() + opts_.timeout});
                if (!wake_pending_) {
                    wake_pending_ = true;
                    wake();
                }
                return;
            }
        }
        done(PushResult{0, {}, "shutting down", {}});
    }

    void shutdown() override {
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
            wake();
        }
        std::lock_guard join_lock(join_mu_);
        if (thread_.joinable()) thread_.join();
    }

  private:
    void wake() {
        uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }

    // --- the loop ------------------------------------------------------------

    void run() {
        // OpenSSL writes with plain send(2): a peer that went away would
        // raise SIGPIPE. Blocked on this thread, the write fails with EPIPE.
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
        std::vector<pollfd> fds;
        std::vector<Connection*> polled;
        auto next_scan = Clock::now();
        for (;;) {
            std::deque<Submission> batch;
            bool stopping;
            {
                std::lock_guard lock(mu_);
                batch.swap(submitted_);
                stopping = stopping_;
                wake_pending_ = false;
            }
            if (stopping) {
                for (auto& s : batch) s.done(PushResult{0, {}, "shutting down", {}});
                abort_all();
                return;
            }
            for (auto& s : batch) route(std::move(s));
            // By index: pumping can open a connection (after GOAWAY).
            for (size_t i = 0; i < conns_.size(); ++i) pump(*conns_[i]);
            deliver();
            auto now = Clock::now();
            if (now >= next_scan) {
                expire(now);
                next_scan = now + kDeadlineScan;
            }
            reap(now);
            deliver();

            fds.clear();
            polled.clear();
            fds.push_back({wake_fd_, POLLIN, 0});
            bool busy = false;
            for (auto& c : conns_) {
                if (c->fd < 0 || c->state == Connection::State::kClosed) continue;
                short events = POLLIN;
                if (c->state == Connection::State::kConnecting) events = POLLOUT;
                if (c->ssl_wants_write) events |= POLLOUT;
                fds.push_back({c->fd, events, 0});
                polled.push_back(c.get());
                busy = busy || !c->streams.empty() || !c->backlog.empty();
            }
            int timeout = busy ? static_cast<int>(kDeadlineScan.count()) : 1000;
            int n = ::poll(fds.data(), fds.size(), timeout);
            if (n < 0 && errno != EINTR) {
                spdlog::error("apns: poll failed: {}", std::strerror(errno));
                std::this_thread::sleep_for(milliseconds(10));
                continue;
            }
            if (n <= 0) continue;
            if (fds[0].revents & POLLIN) {
                uint64_t v;
                [[maybe_unused]] auto r = ::read(wake_fd_, &v, sizeof v);
            }
            for (size_t i = 1; i < fds.size(); ++i) {
                if (fds[i].revents != 0) on_ready(*polled[i - 1]);
            }
            deliver();
        }
    }

    // Picks (or opens) the connection for a push's credentials.
    void route(Submission s) {
        if (!config_error_.empty()) {
            complete(std::move(s.done), PushResult{0, {}, config_error_, {}});
            return;
        }
        if (!wire::is_hex_token(s.req.token_hex)) {
            complete(std::move(s.done), PushResult{0, {}, "device token is not hex", {}});
            return;
        }
        auto creds = s.req.credentials;
        enqueue(creds, std::move(s));
    }

    // Queues a push on the connection for its credentials, or fails it with
    // the reason that connection could not be opened.
    void enqueue(const std::shared_ptr<const Credentials>& creds, Submission s) {
        Connection& c = connection_for(creds);
        if (c.state == Connection::State::kClosed) {
            complete(std::move(s.done), PushResult{0, {}, c.closed_reason, {}});
            return;
        }
        c.backlog.push_back(std::move(s));
    }

    // The open connection for these credentials; a new one if there is none,
    // unless one failed to open less than kRetryPause ago (then that one,
    // closed, so the caller fails the push with its reason).
    Connection& connection_for(const std::shared_ptr<const Credentials>& creds) {
        for (auto& c : conns_) {
            if (c->creds == creds && !c->goaway && c->state != Connection::State::kClosed)
                return *c;
        }
        auto now = Clock::now();
        for (auto& c : conns_) {
            if (c->creds == creds && c->state == Connection::State::kClosed && !c->ever_ready &&
                now - c->closed_at < kRetryPause)
                return *c;
        }
        auto c = std::make_unique<Connection>();
        c->owner = this;
        c->creds = creds;
        c->label = creds ? creds->topic : std::string("(no client certificate)");
        Connection& ref = *c;
        conns_.push_back(std::move(c));
        open(ref);
        return ref;
    }

    // --- connecting ------------------------------------------------------------

    void open(Connection& c) {
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* res = nullptr;
        // Blocking, on this thread: a new connection is rare (start, GOAWAY,
        // renewal) and the pushes waiting for it wait for DNS either way.
        int rc = getaddrinfo(target_.host.c_str(), target_.port.c_str(), &hints, &res);
        if (rc != 0) {
            fail(c, "cannot resolve " + target_.host + ": " + gai_strerror(rc));
            return;
        }
        std::string why = "no address";
        for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
            int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                              ai->ai_protocol);
            if (fd < 0) continue;
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
            // Below HTTP/2's PING: probes after 5 s of silence, 3 × 2 s apart,
            // and data left unacknowledged for 15 s ends the connection.
            int idle = 5, interval = 2, count = 3;
            unsigned user_timeout_ms = 15000;
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
            setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
            if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
                c.fd = fd;
                break;
            }
            why = std::strerror(errno);
            ::close(fd);
        }
        freeaddrinfo(res);
        if (c.fd < 0) {
            fail(c, "cannot connect to " + target_.authority + ": " + why);
            return;
        }
        c.state = Connection::State::kConnecting;
    }

    void connected(Connection& c) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            fail(c, "cannot connect to " + target_.authority + ": " + std::strerror(err));
            return;
        }
        if (std::string why = start_tls(c); !why.empty()) {
            fail(c, why);
            return;
        }
        c.state = Connection::State::kHandshaking;
        handshake(c);
    }

    std::string start_tls(Connection& c) {
        c.ctx = SSL_CTX_new(TLS_client_method());
        if (c.ctx == nullptr) return "SSL: " + openssl_error_text();
        SSL_CTX_set_min_proto_version(c.ctx, TLS1_2_VERSION);
        SSL_CTX_set_options(c.ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
        static const unsigned char kAlpn[] = {2, 'h', '2'};
        SSL_CTX_set_alpn_protos(c.ctx, kAlpn, sizeof kAlpn);
        if (opts_.verify_peer) {
            SSL_CTX_set_verify(c.ctx, SSL_VERIFY_PEER, nullptr);
            int ok = opts_.ca_file.empty()
                         ? SSL_CTX_set_default_verify_paths(c.ctx)
                         : SSL_CTX_load_verify_locations(c.ctx, opts_.ca_file.c_str(), nullptr);
            if (ok != 1)
                return "SSL: cannot load APNs CA " + opts_.ca_file + ": " + openssl_error_text();
        }
        if (c.creds) {
            if (std::string why = use_credentials(c.ctx, *c.creds); !why.empty()) return why;
        }
        c.ssl = SSL_new(c.ctx);
        if (c.ssl == nullptr) return "SSL: " + openssl_error_text();
        SSL_set_fd(c.ssl, c.fd);
        SSL_set_mode(c.ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        if (!target_.ip_literal) SSL_set_tlsext_host_name(c.ssl, target_.host.c_str());
        if (opts_.verify_peer) {
            X509_VERIFY_PARAM* param = SSL_get0_param(c.ssl);
            int ok = target_.ip_literal
                         ? X509_VERIFY_PARAM_set1_ip_asc(param, target_.host.c_str())
                         : X509_VERIFY_PARAM_set1_host(param, target_.host.c_str(), 0);
            if (ok != 1) return "SSL: cannot check the server name " + target_.host;
        }
        SSL_set_connect_state(c.ssl);
        return {};
    }

    // The push certificate and its key (PEM; certificates after the first
    // are sent as the chain).
    static std::string use_credentials(SSL_CTX* ctx, const Credentials& creds) {
        auto bio_of = [](const std::string& s) {
            return std::unique_ptr<BIO, decltype(&BIO_free)>(
                BIO_new_mem_buf(s.data(), static_cast<int>(s.size())), BIO_free);
        };
        auto cert_bio = bio_of(creds.cert_pem);
        X509* leaf = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr);
        if (leaf == nullptr) return "SSL: push certificate is not PEM: " + openssl_error_text();
        int ok = SSL_CTX_use_certificate(ctx, leaf);
        X509_free(leaf);
        if (ok != 1) return "SSL: push certificate refused: " + openssl_error_text();
        while (X509* extra = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)) {
            if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) X509_free(extra);
        }
        ERR_clear_error();  // the loop ends on "no start line"
        auto key_bio = bio_of(creds.key_pem);
        EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr);
        if (key == nullptr) return "SSL: push key is not PEM: " + openssl_error_text();
        ok = SSL_CTX_use_PrivateKey(ctx, key);
        EVP_PKEY_free(key);
        if (ok != 1 || SSL_CTX_check_private_key(ctx) != 1)
            return "SSL: push key does not match its certificate: " + openssl_error_text();
        return {};
    }

    void handshake(Connection& c) {
        ERR_clear_error();
        int rc = SSL_do_handshake(c.ssl);
        if (rc != 1) {
            int err = SSL_get_error(c.ssl, rc);
            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
                c.ssl_wants_write = err == SSL_ERROR_WANT_WRITE;
                return;
            }
            std::string why = "SSL handshake with " + target_.authority + " failed";
            long verify = SSL_get_verify_result(c.ssl);
            if (verify != X509_V_OK) {
                why += std::string(": certificate verify failed: ") +
                       X509_verify_cert_error_string(verify);
            } else if (std::string e = openssl_error_text(); !e.empty()) {
                why += ": " + e;
            } else if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
                why += ": connection closed";
            }
            fail(c, why);
            return;
        }
        c.ssl_wants_write = false;
        const unsigned char* alpn = nullptr;
        unsigned alpn_len = 0;
        SSL_get0_alpn_selected(c.ssl, &alpn, &alpn_len);
        if (std::string_view(reinterpret_cast<const char*>(alpn), alpn_len) != "h2") {
            fail(c, "APNs server at " + target_.authority + " did not agree to HTTP/2");
            return;
        }
        nghttp2_session_client_new(&c.session, callbacks_, &c);
        nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
        nghttp2_submit_settings(c.session, NGHTTP2_FLAG_NONE, iv, 1);
        c.state = Connection::State::kReady;
        c.ever_ready = true;
        c.last_read = Clock::now();
        spdlog::debug("apns: connected to {} for {}", target_.authority, c.label);
        pump(c);
    }

    // --- the HTTP/2 connection -------------------------------------------------

    void on_ready(Connection& c) {
        switch (c.state) {
            case Connection::State::kConnecting:
                connected(c);
                break;
            case Connection::State::kHandshaking:
                handshake(c);
                break;
            case Connection::State::kReady:
                // Read on any event: an SSL_read that wanted to write resumes
                // on POLLOUT, and reading when nothing came costs one EAGAIN.
                c.ssl_wants_write = false;
                read(c);
                pump(c);
                break;
            case Connection::State::kClosed:
                break;
        }
    }

    void read(Connection& c) {
        std::array<uint8_t, kReadChunk> buf;
        for (;;) {
            ERR_clear_error();
            int n = SSL_read(c.ssl, buf.data(), static_cast<int>(buf.size()));
            if (n > 0) {
                c.last_active = c.last_read = Clock::now();
                c.ping_sent.reset();  // anything at all shows the server is there
                ssize_t used =
                    nghttp2_session_mem_recv(c.session, buf.data(), static_cast<size_t>(n));
                if (used < 0) {
                    fail(c, std::string("HTTP/2 error from APNs: ") +
                                nghttp2_strerror(static_cast<int>(used)));
                    return;
                }
                continue;
            }
            int err = SSL_get_error(c.ssl, n);
            if (err == SSL_ERROR_WANT_READ) return;
            if (err == SSL_ERROR_WANT_WRITE) {
                c.ssl_wants_write = true;
                return;
            }
            std::string e = openssl_error_text();
            fail(c,
                 e.empty() ? "APNs closed the connection" : "connection to APNs lost: SSL: " + e);
            return;
        }
    }

    // Starts waiting pushes on free streams and writes what nghttp2 has.
    void pump(Connection& c) {
        if (c.state != Connection::State::kReady) return;
        if (!c.goaway) {
            uint32_t remote = nghttp2_session_get_remote_settings(
                c.session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
            size_t limit = std::min<size_t>(
                remote, static_cast<size_t>(std::max(1L, opts_.max_streams_per_connection)));
            while (!c.backlog.empty() && c.streams.size() < limit) {
                Submission s = std::move(c.backlog.front());
                c.backlog.pop_front();
                submit(c, std::move(s));
            }
        } else if (!c.backlog.empty()) {
            // A new connection takes over what this one will not send.
            auto waiting = std::move(c.backlog);
            c.backlog.clear();
            for (auto& s : waiting) enqueue(c.creds, std::move(s));
        }
        flush(c);
    }

    void submit(Connection& c, Submission s) {
        auto st = std::make_unique<Stream>();
        st->body = wire::push_body(s.req.push_magic);
        std::string path = target_.prefix + "/3/device/" + s.req.token_hex;
        std::string expiration = std::to_string(wire::expiration_seconds(s.req));
        std::string length = std::to_string(st->body.size());
        auto nv = [](std::string_view name, std::string_view value) {
            return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                              reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())),
                              name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
        };
        const nghttp2_nv headers[] = {
            nv(":method", "POST"),
            nv(":scheme", "https"),
            nv(":authority", target_.authority),
            nv(":path", path),
            nv("apns-topic", s.req.topic),
            nv("apns-push-type", "mdm"),
            nv("apns-priority", "10"),
            nv("apns-expiration", expiration),
            nv("content-type", "application/json"),
            nv("content-length", length),
        };
        nghttp2_data_provider body{};
        body.read_callback = read_body;
        st->sub = std::move(s);
        int32_t id = nghttp2_submit_request(c.session, nullptr, headers,
                                            sizeof headers / sizeof headers[0], &body, st.get());
        if (id < 0) {
            complete(std::move(st->sub.done),
                     PushResult{0, {}, std::string("HTTP/2: ") + nghttp2_strerror(id), {}});
            return;
        }
        c.last_active = Clock::now();
        c.streams.emplace(id, std::move(st));
        // On a connection silent for ping_interval (a long-lived idle one,
        // perhaps dead for a while), the PING leaves with the push.
        start_ping(c, c.last_active);
    }

    // Sends a PING when none is outstanding and nothing came for ping_interval.
    void start_ping(Connection& c, Clock::time_point now) {
        if (c.ping_sent || now - c.last_read < opts_.ping_interval) return;
        if (nghttp2_submit_ping(c.session, NGHTTP2_FLAG_NONE, nullptr) == 0) c.ping_sent = now;
    }

    void flush(Connection& c) {
        if (c.state != Connection::State::kReady) return;
        for (;;) {
            if (c.out_off == c.out.size()) {
                c.out.clear();
                c.out_off = 0;
                while (c.out.size() < kWriteBatch) {
                    const uint8_t* data = nullptr;
                    ssize_t n = nghttp2_session_mem_send(c.session, &data);
                    if (n < 0) {
                        fail(c, std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n)));
                        return;
                    }
                    if (n == 0) break;
                    c.out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
                }
                if (c.out.empty()) break;
            }
            ERR_clear_error();
            int n = SSL_write(c.ssl, c.out.data() + c.out_off,
                              static_cast<int>(c.out.size() - c.out_off));
            if (n > 0) {
                c.out_off += static_cast<size_t>(n);
                c.ssl_wants_write = false;
                continue;
            }
            int err = SSL_get_error(c.ssl, n);
            if (err == SSL_ERROR_WANT_WRITE) {
                c.ssl_wants_write = true;
                return;
            }
            if (err == SSL_ERROR_WANT_READ) return;
            std::string e = openssl_error_text();
            fail(c, e.empty() ? "connection to APNs lost while writing"
                              : "connection to APNs lost: SSL: " + e);
            return;
        }
        if (!nghttp2_session_want_read(c.session) && !nghttp2_session_want_write(c.session)) {
            close(c, "APNs ended the connection");
        }
    }

    // --- nghttp2 callbacks -----------------------------------------------------

    static ssize_t read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                             uint32_t* flags, nghttp2_data_source*, void*);
    static int on_header(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                         const uint8_t*, size_t, uint8_t, void*);
    static int on_data(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
    static int on_stream_close(nghttp2_session*, int32_t, uint32_t, void*);
    static int on_frame_recv(nghttp2_session*, const nghttp2_frame*, void*);

    void stream_closed(Connection& c, int32_t id, uint32_t error_code) {
        auto it = c.streams.find(id);
        if (it == c.streams.end()) return;
        std::unique_ptr<Stream> st = std::move(it->second);
        c.streams.erase(it);
        if (!st->sub.done) return;  // timed out earlier
        PushResult r = std::move(st->result);
        if (r.http_status > 0 && error_code == NGHTTP2_NO_ERROR) {
            r.reason = wire::reason_from_body(st->response_body);
            if (r.http_status != 200) r.apns_id.clear();
        } else if (r.http_status == 0 && error_code == NGHTTP2_REFUSED_STREAM && !st->sub.resent) {
            // Refused before processing (GOAWAY, or the server's stream
            // limit): safe to send again, on whichever connection is open.
            st->sub.resent = true;
            c.backlog.push_front(std::move(st->sub));
            return;
        } else {
            r = PushResult{
                0,
                {},
                std::string("APNs reset the push: ") + nghttp2_http2_strerror(error_code),
                {}};
        }
        spdlog::debug("apns push to {}: {} {}", redact(st->sub.req.token_hex), r.http_status,
                      r.reason);
        complete(std::move(st->sub.done), std::move(r));
    }

    // --- endings -------------------------------------------------------------

    // Callbacks run after the I/O step that produced them, never inside
    // nghttp2's or while a connection is half-updated.
    void complete(Callback done, PushResult r) {
        if (done) finished_.emplace_back(std::move(done), std::move(r));
    }

    void deliver() {
        while (!finished_.empty()) {
            auto batch = std::move(finished_);
            finished_.clear();
            for (auto& [done, r] : batch) done(std::move(r));
        }
    }

    // A connection that failed: in-flight pushes fail with the reason; pushes
    // that never went out move to a fresh connection if this one had worked
    // (a dropped connection), and fail too if it never did (nothing to gain
    // from reconnecting in a loop to a server that refuses us).
    void fail(Connection& c, const std::string& why) {
        if (c.state == Connection::State::kClosed) return;
        // A connection ending after GOAWAY, or idle, is routine.
        bool routine = c.goaway || (c.ever_ready && c.streams.empty());
        spdlog::log(routine ? spdlog::level::info : spdlog::level::warn,
                    "apns: connection to {} for {}: {}", target_.authority, c.label, why);
        // Consume a SIGPIPE the failed write left pending on this thread.
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        timespec zero{};
        while (sigtimedwait(&pipe, nullptr, &zero) == SIGPIPE) {
        }
        close(c, why);
    }

    // dead: the connection stopped answering; pushes still unanswered on it
    // (sent or not) move to a new connection, once.
    void close(Connection& c, const std::string& why, bool dead = false) {
        if (c.state == Connection::State::kClosed) return;
        bool worked = c.ever_ready;
        c.state = Connection::State::kClosed;
        auto now = Clock::now();
        c.closed_at = now;
        c.closed_reason = why;
        auto streams = std::move(c.streams);
        c.streams.clear();
        for (auto& [id, st] : streams) {
            if (!st->sub.done) continue;
            if (dead && st->result.http_status == 0 && !st->sub.moved) {
                move_off_dead(st->sub, now);
                c.backlog.push_back(std::move(st->sub));
                continue;
            }
            if (st->result.http_status == 0 && st->body_sent == 0 && !st->sub.resent && worked) {
                st->sub.resent = true;  // never left this machine: send it again
                c.backlog.push_back(std::move(st->sub));
                continue;
            }
            complete(std::move(st->sub.done), PushResult{0, {}, why, {}});
        }
        if (c.session != nullptr) {
            nghttp2_session_del(c.session);
            c.session = nullptr;
        }
        if (c.ssl != nullptr) {
            SSL_free(c.ssl);
            c.ssl = nullptr;
        }
        if (c.fd >= 0) {
            ::close(c.fd);
            c.fd = -1;
        }
        auto waiting = std::move(c.backlog);
        c.backlog.clear();
        if (waiting.empty()) return;
        if (!worked) {
            for (auto& s : waiting) complete(std::move(s.done), PushResult{0, {}, why, {}});
            return;
        }
        for (auto& s : waiting) {
            if (dead && !s.moved) move_off_dead(s, now);
            enqueue(c.creds, std::move(s));
        }
    }

    // A push leaving a dead connection starts over on the next one: its
    // deadline is timeout from now (once; so its callback runs within
    // ping_interval + ping_timeout + timeout of push(), under twice the
    // timeout with sane options).
    void move_off_dead(Submission& s, Clock::time_point now) const {
        s.moved = true;
        s.deadline = now + opts_.timeout;
    }

    void expire(Clock::time_point now) {
        for (size_t i = 0; i < conns_.size(); ++i) {
            Connection* c = conns_[i].get();
            for (auto it = c->backlog.begin(); it != c->backlog.end();) {
                if (it->deadline > now) {
                    ++it;
                    continue;
                }
                complete(std::move(it->done), timed_out(*c));
                it = c->backlog.erase(it);
            }
            for (auto& [id, st] : c->streams) {
                if (!st->sub.done || st->sub.deadline > now) continue;
                complete(std::move(st->sub.done), timed_out(*c));
                st->sub.done = nullptr;  // on_stream_close drops it
                if (c->session != nullptr)
                    nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
            }
            if (c->state == Connection::State::kReady) check_alive(*c, now);
            if (c->state == Connection::State::kReady) flush(*c);
        }
    }

    // PING with a deadline while pushes wait (see the top of this file).
    void check_alive(Connection& c, Clock::time_point now) {
        if (c.streams.empty()) return;
        if (!c.ping_sent) {
            start_ping(c, now);
            return;
        }
        if (now - *c.ping_sent < opts_.ping_timeout) return;
        std::string why = "APNs stopped answering (no reply to PING within " +
                          std::to_string(opts_.ping_timeout.count()) + " ms)";
        spdlog::warn("apns: connection to {} for {}: {}; {} push(es) move to a new connection",
                     target_.authority, c.label, why, c.streams.size() + c.backlog.size());
        close(c, why, /*dead=*/true);
    }

    PushResult timed_out(const Connection& c) const {
        std::string stage = c.state == Connection::State::kReady ? "waiting for APNs's answer"
                            : c.state == Connection::State::kHandshaking ? "in the TLS handshake"
                                                                         : "connecting";
        return PushResult{0,
                          {},
                          "timed out after " + std::to_string(opts_.timeout.count()) + " ms " +
                              stage + " (" + target_.authority + ")",
                          {}};
    }

    // Drops closed connections, and idle ones whose certificate was renewed
    // (nobody holds their credentials any more) or that idled for an hour.
    void reap(Clock::time_point now) {
        for (size_t i = 0; i < conns_.size(); ++i) {
            Connection* c = conns_[i].get();
            bool idle = c->streams.empty() && c->backlog.empty();
            if (!idle || c->state != Connection::State::kReady) continue;
            bool stale = c->creds && c->creds.use_count() == 1;
            if (stale || now - c->last_active > kIdleClose) {
                nghttp2_session_terminate_session(c->session, NGHTTP2_NO_ERROR);
                flush(*c);
                close(*c, "idle");
            }
        }
        std::erase_if(conns_, [now](const std::unique_ptr<Connection>& c) {
            return c->state == Connection::State::kClosed && c->backlog.empty() &&
                   c->streams.empty() && (c->ever_ready || now - c->closed_at >= kRetryPause);
        });
    }

    void abort_all() {
        for (auto& c : conns_) {
            for (auto& s : c->backlog)
                complete(std::move(s.done), PushResult{0, {}, "shutting down", {}});
            c->backlog.clear();
            for (auto& [id, st] : c->streams)
                complete(std::move(st->sub.done), PushResult{0, {}, "shutting down", {}});
            c->streams.clear();
        }
        conns_.clear();
        deliver();
    }

    HttpPusherOptions opts_;
    Target target_;
    std::string config_error_;
    int wake_fd_ = -1;
    nghttp2_session_callbacks* callbacks_ = nullptr;
    std::thread thread_;
    std::mutex join_mu_;

    std::mutex mu_;  // guards submitted_, stopping_, wake_pending_
    std::deque<Submission> submitted_;
    bool stopping_ = false;
    bool wake_pending_ = false;

    // Owned by the pusher thread.
    std::vector<std::unique_ptr<Connection>> conns_;
    std::vector<std::pair<Callback, PushResult>> finished_;
};

ssize_t H2Pusher::read_body(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                            size_t length, uint32_t* flags, nghttp2_data_source*, void*) {
    auto* st = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
    if (st == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = std::min(length, st->body.size() - st->body_sent);
    std::memcpy(buf, st->body.data() + st->body_sent, n);
    st->body_sent += n;
    if (st->body_sent == st->body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
}

int H2Pusher::on_header(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                        size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void*) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    auto* st =
        static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
    if (st == nullptr) return 0;
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    // nghttp2 hands header names over lowercased (HTTP/2 requires it).
    if (n == ":status") {
        int status = 0;
        for (char ch : v.substr(0, 3)) status = status * 10 + (ch - '0');
        st->result.http_status = status;
    } else if (n == "apns-id") {
        st->result.apns_id = std::string(v);
    } else if (n == "retry-after") {
        st->result.retry_after = wire::parse_retry_after(v);
    }
    return 0;
}

int H2Pusher::on_data(nghttp2_session* session, uint8_t, int32_t stream_id, const uint8_t* data,
                      size_t len, void*) {
    auto* st = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
    if (st == nullptr) return 0;
    size_t room =
        wire::kMaxResponseBody - std::min(wire::kMaxResponseBody, st->response_body.size());
    st->response_body.append(reinterpret_cast<const char*>(data), std::min(len, room));
    return 0;
}

int H2Pusher::on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                              void* user) {
    auto* c = static_cast<Connection*>(user);
    c->owner->stream_closed(*c, stream_id, error_code);
    return 0;
}

int H2Pusher::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* c = static_cast<Connection*>(user);
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        c->goaway = true;
        spdlog::info("apns: {} sent GOAWAY ({}); new pushes go to a new connection", c->label,
                     nghttp2_http2_strerror(frame->goaway.error_code));
    }
    return 0;
}

}  // namespace

std::unique_ptr<Pusher> make_h2_pusher(const HttpPusherOptions& opts) {
    return std::make_unique<H2Pusher>(opts);
}

std::unique_ptr<Pusher> make_pusher(const HttpPusherOptions& opts) {
    return opts.proxy.empty() ? make_h2_pusher(opts) : make_http_pusher(opts);
}

}  // namespace courier::apns
