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

#include "apns/h2_internal.h"
#include "apns/pusher.h"
#include "apns/submission_queue.h"
#include "apns/wire.h"
#include "common/encoding.h"
#include "common/status.h"

namespace courier::apns::h2 {

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

H2Pusher::H2Pusher(HttpPusherOptions opts) : opts_(std::move(opts)) {
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

H2Pusher::~H2Pusher() {
    shutdown();
    nghttp2_session_callbacks_del(callbacks_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
}

void H2Pusher::push(PushRequest req, Callback done) {
    Submission s{std::move(req), std::move(done), Clock::now() + opts_.timeout};
    if (!queue_.submit(std::move(s), [this] { wake(); })) s.done(shutting_down());
}

void H2Pusher::shutdown() {
    queue_.stop([this] { wake(); });
    std::lock_guard join_lock(join_mu_);
    if (thread_.joinable()) thread_.join();
}

void H2Pusher::wake() {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

void H2Pusher::run() {
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
        auto batch = queue_.take();
        if (!batch) {
            abort_all();
            return;
        }
        for (auto& s : *batch) route(std::move(s));
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

void H2Pusher::route(Submission s) {
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

void H2Pusher::enqueue(const std::shared_ptr<const Credentials>& creds, Submission s) {
    Connection& c = connection_for(creds);
    if (c.state == Connection::State::kClosed) {
        complete(std::move(s.done), PushResult{0, {}, c.closed_reason, {}});
        return;
    }
    c.backlog.push_back(std::move(s));
}

Connection& H2Pusher::connection_for(const std::shared_ptr<const Credentials>& creds) {
    for (auto& c : conns_) {
        if (c->creds == creds && !c->goaway && c->state != Connection::State::kClosed) return *c;
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

void H2Pusher::complete(Callback done, PushResult r) {
    if (done) finished_.emplace_back(std::move(done), std::move(r));
}

void H2Pusher::deliver() {
    while (!finished_.empty()) {
        auto batch = std::move(finished_);
        finished_.clear();
        for (auto& [done, r] : batch) done(std::move(r));
    }
}

void H2Pusher::fail(Connection& c, const std::string& why) {
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

void H2Pusher::close(Connection& c, const std::string& why, bool dead) {
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

void H2Pusher::move_off_dead(Submission& s, Clock::time_point now) const {
    s.moved = true;
    s.deadline = now + opts_.timeout;
}

void H2Pusher::expire(Clock::time_point now) {
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

void H2Pusher::check_alive(Connection& c, Clock::time_point now) {
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

PushResult H2Pusher::timed_out(const Connection& c) const {
    std::string stage = c.state == Connection::State::kReady         ? "waiting for APNs's answer"
                        : c.state == Connection::State::kHandshaking ? "in the TLS handshake"
                                                                     : "connecting";
    return PushResult{0,
                      {},
                      "timed out after " + std::to_string(opts_.timeout.count()) + " ms " + stage +
                          " (" + target_.authority + ")",
                      {}};
}

void H2Pusher::reap(Clock::time_point now) {
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
        return c->state == Connection::State::kClosed && c->backlog.empty() && c->streams.empty() &&
               (c->ever_ready || now - c->closed_at >= kRetryPause);
    });
}

void H2Pusher::abort_all() {
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

}  // namespace courier::apns::h2

namespace courier::apns {

std::unique_ptr<Pusher> make_h2_pusher(const HttpPusherOptions& opts) {
    return std::make_unique<h2::H2Pusher>(opts);
}

std::unique_ptr<Pusher> make_pusher(const HttpPusherOptions& opts) {
    return opts.proxy.empty() ? make_h2_pusher(opts) : make_http_pusher(opts);
}

}  // namespace courier::apns
