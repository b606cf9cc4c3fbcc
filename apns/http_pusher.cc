// The APNs sender over libcurl's multi interface: one thread owns the multi
// handle and every easy handle; other threads only append to a queue and wake
// it. Connections are curl's: it multiplexes transfers with equal TLS
// settings (the client certificate blob included) on one HTTP/2 connection and
// opens a new one after GOAWAY, a dropped connection, or a renewed certificate.
#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "apns/pusher.h"
#include "apns/submission_queue.h"
#include "apns/wire.h"
#include "common/encoding.h"

namespace courier::apns {
namespace {

constexpr size_t kMaxIdleHandles = 1024;
constexpr long kMaxHostConnections = 4;
using wire::kMaxResponseBody;

void init_curl_once() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// One request in flight, and between requests an idle, configured easy handle
// (curl keeps its connection cache in the multi handle, not here).
struct Transfer {
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    std::string headers_key;  // topic + expiration the header list was built for
    std::shared_ptr<const Credentials> applied_credentials;
    bool credentials_applied = false;

    std::string token_redacted;
    std::string body;
    std::string response_body;
    PushResult result;
    Pusher::Callback done;
    char error[CURL_ERROR_SIZE] = {};

    ~Transfer() {
        if (easy != nullptr) curl_easy_cleanup(easy);
        curl_slist_free_all(headers);
    }
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    size_t len = size * n;
    if (t->response_body.size() < kMaxResponseBody) {
        t->response_body.append(data, std::min(len, kMaxResponseBody - t->response_body.size()));
    }
    return len;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    std::string_view line(data, size * n);
    if (line.starts_with("HTTP/")) {  // a new response (curl retried the request)
        t->result.apns_id.clear();
        t->result.retry_after = {};
        t->response_body.clear();
        return line.size();
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return line.size();
    auto name = trim(line.substr(0, colon));
    auto value = trim(line.substr(colon + 1));
    if (iequals(name, "apns-id")) {
        t->result.apns_id = std::string(value);
    } else if (iequals(name, "retry-after")) {
        t->result.retry_after = wire::parse_retry_after(value);
    }
    return line.size();
}

class HttpPusher final : public Pusher {
  public:
    explicit HttpPusher(HttpPusherOptions opts) : opts_(std::move(opts)) {
        init_curl_once();
        while (!opts_.base_url.empty() && opts_.base_url.back() == '/') opts_.base_url.pop_back();
        multi_ = curl_multi_init();
        curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
        curl_multi_setopt(multi_, CURLMOPT_MAX_CONCURRENT_STREAMS,
                          opts_.max_streams_per_connection);
        // Without a cap, curl opens a new connection for every transfer that
        // finds the others' streams all taken: a fleet-wide wake-up became
        // thousands of TLS handshakes. A few connections per host (topics,
        // reconnects); beyond them transfers wait in curl for a free stream.
        curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, kMaxHostConnections);
        thread_ = std::thread([this] { run(); });
    }

    ~HttpPusher() override {
        shutdown();
        curl_multi_cleanup(multi_);
    }

    void push(PushRequest req, Callback done) override {
        Submission s{std::move(req), std::move(done)};
        if (!queue_.submit(std::move(s), [this] { curl_multi_wakeup(multi_); }))
            s.done(shutting_down());
    }

    void shutdown() override {
        queue_.stop([this] { curl_multi_wakeup(multi_); });
        std::lock_guard join_lock(join_mu_);
        if (thread_.joinable()) thread_.join();
    }

  private:
    struct Submission {
        PushRequest req;
        Callback done;
    };

    void run() {
        for (;;) {
            auto batch = queue_.take();
            if (!batch) {
                abort_active();
                break;
            }
            // At most one connection's worth of streams in flight; the rest
            // wait here, in order, and start as answers come in.
            for (auto& s : *batch) backlog_.push_back(std::move(s));
            start_from_backlog();
            int running = 0;
            curl_multi_perform(multi_, &running);
            finish_completed();
            if (start_from_backlog() > 0) continue;  // perform again before sleeping
            curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
        }
        idle_.clear();
    }

    std::unique_ptr<Transfer> take_idle() {
        if (!idle_.empty()) {
            auto t = std::move(idle_.back());
            idle_.pop_back();
            return t;
        }
        auto t = std::make_unique<Transfer>();
        t->easy = curl_easy_init();
        configure(t.get());
        return t;
    }

    // Options every push shares; set once per easy handle.
    void configure(Transfer* t) {
        CURL* e = t->easy;
        curl_easy_setopt(e, CURLOPT_PRIVATE, t);
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.timeout.count()));
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opts_.timeout.count()));
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
        // As the nghttp2 sender's socket: probes after 5 s of silence, 2 s
        // apart (libcurl has no HTTP/2 PING with a deadline; docs/apns.md).
        curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 5L);
        curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 2L);
        // APNs wants connections kept for hours, not curl's default two minutes.
        curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, 3600L);
        // Resolve afresh for each new connection (Apple rotates addresses).
        curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
        if (!opts_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, opts_.ca_file.c_str());
        if (!opts_.verify_peer) {
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        if (!opts_.proxy.empty()) {
            curl_easy_setopt(e, CURLOPT_PROXY, opts_.proxy.c_str());
            if (opts_.proxy.starts_with("http://") || opts_.proxy.starts_with("https://")) {
                curl_easy_setopt(e, CURLOPT_HTTPPROXYTUNNEL, 1L);
            }
        }
    }

    void apply_credentials(Transfer* t, const std::shared_ptr<const Credentials>& creds) {
        if (t->credentials_applied && t->applied_credentials == creds) return;
        if (creds) {
            // CURL_BLOB_COPY: curl owns a copy; a new blob is a new connection.
            curl_blob cert{const_cast<char*>(creds->cert_pem.data()), creds->cert_pem.size(),
                           CURL_BLOB_COPY};
            curl_blob key{const_cast<char*>(creds->key_pem.data()), creds->key_pem.size(),
                          CURL_BLOB_COPY};
            curl_easy_setopt(t->easy, CURLOPT_SSLCERT_BLOB, &cert);
            curl_easy_setopt(t->easy, CURLOPT_SSLKEY_BLOB, &key);
        } else {
            curl_easy_setopt(t->easy, CURLOPT_SSLCERT_BLOB, nullptr);
            curl_easy_setopt(t->easy, CURLOPT_SSLKEY_BLOB, nullptr);
        }
        t->applied_credentials = creds;
        t->credentials_applied = true;
    }

    void apply_headers(Transfer* t, const std::string& topic, int64_t expiration) {
        std::string key = topic + '\n' + std::to_string(expiration);
        if (t->headers != nullptr && t->headers_key == key) return;
        curl_slist_free_all(t->headers);
        curl_slist* h = nullptr;
        h = curl_slist_append(h, ("apns-topic: " + topic).c_str());
        h = curl_slist_append(h, "apns-push-type: mdm");
        h = curl_slist_append(h, "apns-priority: 10");
        h = curl_slist_append(h, ("apns-expiration: " + std::to_string(expiration)).c_str());
        h = curl_slist_append(h, "content-type: application/json");
        h = curl_slist_append(h, "accept:");  // drop curl's default "accept: */*"
        t->headers = h;
        t->headers_key = std::move(key);
        curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, h);
    }

    size_t start_from_backlog() {
        size_t limit = static_cast<size_t>(std::max(1L, opts_.max_streams_per_connection));
        // Until a connection has answered, one transfer at a time: PIPEWAIT
        // does not always hold back transfers started while the first
        // connection's handshake is still under way (a loaded machine saw
        // 4 connections for one burst); once it answered, curl multiplexes
        // the rest on it.
        if (!answered_) limit = 1;
        size_t started = 0;
        while (!backlog_.empty() && active_.size() < limit) {
            start(std::move(backlog_.front()));
            backlog_.pop_front();
            ++started;
        }
        return started;
    }

    void start(Submission s) {
        if (!wire::is_hex_token(s.req.token_hex)) {
            s.done(PushResult{0, {}, "device token is not hex", {}});
            return;
        }
        auto t = take_idle();
        int64_t expiration = wire::expiration_seconds(s.req);
        std::string url = opts_.base_url + "/3/device/" + s.req.token_hex;
        t->token_redacted = redact(s.req.token_hex);
        t->body = wire::push_body(s.req.push_magic);
        t->response_body.clear();
        t->result = PushResult{};
        t->error[0] = '\0';
        t->done = std::move(s.done);
        curl_easy_setopt(t->easy, CURLOPT_URL, url.c_str());
        curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->body.data());
        curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(t->body.size()));
        apply_credentials(t.get(), s.req.credentials);
        apply_headers(t.get(), s.req.topic, expiration);
        CURLMcode rc = curl_multi_add_handle(multi_, t->easy);
        if (rc != CURLM_OK) {
            auto done = std::move(t->done);
            done(PushResult{0, {}, curl_multi_strerror(rc), {}});
            return;
        }
        CURL* easy = t->easy;
        active_.emplace(easy, std::move(t));
    }

    void finish_completed() {
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL* easy = msg->easy_handle;
            CURLcode code = msg->data.result;
            curl_multi_remove_handle(multi_, easy);
            auto it = active_.find(easy);
            if (it == active_.end()) continue;
            auto t = std::move(it->second);
            active_.erase(it);
            PushResult r = std::move(t->result);
            if (code == CURLE_OK) {
                answered_ = true;
                long status = 0;
                curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
                r.http_status = static_cast<int>(status);
                r.reason = wire::reason_from_body(t->response_body);
                if (r.http_status != 200) r.apns_id.clear();
            } else {
                r = PushResult{
                    0, {}, t->error[0] != '\0' ? t->error : curl_easy_strerror(code), {}};
            }
            spdlog::debug("apns push to {}: {} {}", t->token_redacted, r.http_status, r.reason);
            auto done = std::move(t->done);
            t->done = nullptr;
            recycle(std::move(t));
            done(std::move(r));
        }
    }

    void recycle(std::unique_ptr<Transfer> t) {
        if (idle_.size() < kMaxIdleHandles) idle_.push_back(std::move(t));
    }

    void abort_active() {
        for (auto& s : backlog_) s.done(PushResult{0, {}, "shutting down", {}});
        backlog_.clear();
        for (auto& [easy, t] : active_) {
            curl_multi_remove_handle(multi_, easy);
            auto done = std::move(t->done);
            if (done) done(PushResult{0, {}, "shutting down", {}});
        }
        active_.clear();
    }

    HttpPusherOptions opts_;
    CURLM* multi_ = nullptr;
    std::thread thread_;
    std::mutex join_mu_;

    SubmissionQueue<Submission> queue_;

    // Owned by the pusher thread.
    std::unordered_map<CURL*, std::unique_ptr<Transfer>> active_;
    std::deque<Submission> backlog_;  // submitted, waiting for a free stream
    std::vector<std::unique_ptr<Transfer>> idle_;
    bool answered_ = false;  // a transfer got an HTTP answer: a connection is up
};

}  // namespace

std::unique_ptr<Pusher> make_http_pusher(const HttpPusherOptions& opts) {
    return std::make_unique<HttpPusher>(opts);
}

}  // namespace courier::apns
