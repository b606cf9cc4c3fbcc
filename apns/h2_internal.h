// The nghttp2 APNs sender's parts (h2_pusher.cc describes it), shared by its
// files: the pusher and its loop (h2_pusher.cc), connecting (h2_connect.cc),
// the HTTP/2 session (h2_session.cc).
#pragma once

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "apns/pusher.h"
#include "apns/submission_queue.h"
#include "common/openssl_error.h"
#include "common/status.h"

namespace courier::apns::h2 {

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

struct Target {
    std::string host;       // for DNS, SNI and certificate checks (no brackets)
    std::string port;       // service for getaddrinfo
    std::string authority;  // :authority
    std::string prefix;     // path prefix from the base URL, no trailing '/'
    bool ip_literal = false;
};

// The base URL, read with libcurl's URL parser.
Result<Target> parse_base_url(const std::string& url);

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
    explicit H2Pusher(HttpPusherOptions opts);

    ~H2Pusher() override;

    void push(PushRequest req, Callback done) override;

    void shutdown() override;

  private:
    void wake();

    // --- the loop ------------------------------------------------------------

    void run();

    // Picks (or opens) the connection for a push's credentials.
    void route(Submission s);

    // Queues a push on the connection for its credentials, or fails it with
    // the reason that connection could not be opened.
    void enqueue(const std::shared_ptr<const Credentials>& creds, Submission s);

    // The open connection for these credentials; a new one if there is none,
    // unless one failed to open less than kRetryPause ago (then that one,
    // closed, so the caller fails the push with its reason).
    Connection& connection_for(const std::shared_ptr<const Credentials>& creds);

    // --- connecting ------------------------------------------------------------

    void open(Connection& c);

    void connected(Connection& c);

    std::string start_tls(Connection& c);

    // The push certificate and its key (PEM; certificates after the first
    // are sent as the chain).
    static std::string use_credentials(SSL_CTX* ctx, const Credentials& creds);

    void handshake(Connection& c);

    // --- the HTTP/2 connection -------------------------------------------------

    void on_ready(Connection& c);

    void read(Connection& c);

    // Starts waiting pushes on free streams and writes what nghttp2 has.
    void pump(Connection& c);

    void submit(Connection& c, Submission s);

    // Sends a PING when none is outstanding and nothing came for ping_interval.
    void start_ping(Connection& c, Clock::time_point now);

    void flush(Connection& c);

    // --- nghttp2 callbacks -----------------------------------------------------

    static ssize_t read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                             uint32_t* flags, nghttp2_data_source*, void*);
    static int on_header(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                         const uint8_t*, size_t, uint8_t, void*);
    static int on_data(nghttp2_session*, uint8_t, int32_t, const uint8_t*, size_t, void*);
    static int on_stream_close(nghttp2_session*, int32_t, uint32_t, void*);
    static int on_frame_recv(nghttp2_session*, const nghttp2_frame*, void*);

    void stream_closed(Connection& c, int32_t id, uint32_t error_code);

    // --- endings -------------------------------------------------------------

    // Callbacks run after the I/O step that produced them, never inside
    // nghttp2's or while a connection is half-updated.
    void complete(Callback done, PushResult r);

    void deliver();

    // A connection that failed: in-flight pushes fail with the reason; pushes
    // that never went out move to a fresh connection if this one had worked
    // (a dropped connection), and fail too if it never did (nothing to gain
    // from reconnecting in a loop to a server that refuses us).
    void fail(Connection& c, const std::string& why);

    // dead: the connection stopped answering; pushes still unanswered on it
    // (sent or not) move to a new connection, once.
    void close(Connection& c, const std::string& why, bool dead = false);

    // A push leaving a dead connection starts over on the next one: its
    // deadline is timeout from now (once; so its callback runs within
    // ping_interval + ping_timeout + timeout of push(), under twice the
    // timeout with sane options).
    void move_off_dead(Submission& s, Clock::time_point now) const;

    void expire(Clock::time_point now);

    // PING with a deadline while pushes wait (see the top of this file).
    void check_alive(Connection& c, Clock::time_point now);

    PushResult timed_out(const Connection& c) const;

    // Drops closed connections, and idle ones whose certificate was renewed
    // (nobody holds their credentials any more) or that idled for an hour.
    void reap(Clock::time_point now);

    void abort_all();

    HttpPusherOptions opts_;
    Target target_;
    std::string config_error_;
    int wake_fd_ = -1;
    nghttp2_session_callbacks* callbacks_ = nullptr;
    std::thread thread_;
    std::mutex join_mu_;

    SubmissionQueue<Submission> queue_;

    // Owned by the pusher thread.
    std::vector<std::unique_ptr<Connection>> conns_;
    std::vector<std::pair<Callback, PushResult>> finished_;
};

}  // namespace courier::apns::h2
