#include "server/webhook/webhook_service.h"

#include <curl/curl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <random>

#include "common/encoding.h"
#include "server/webhook/webhook_events.h"

namespace courier::server {

namespace {

constexpr auto kCacheTtl = std::chrono::seconds(5);
constexpr size_t kClaimBatch = 64;
constexpr size_t kMaxErrorChars = 200;
constexpr std::chrono::hours kMaxBackoff{1};

void init_curl_once() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t discard_body(char*, size_t size, size_t n, void* userdata) {
    auto* total = static_cast<size_t*>(userdata);
    *total += size * n;
    if (*total > 64 * 1024) return 0;  // a receiver's answer is not read beyond 64 KiB
    return size * n;
}

// The host of a URL without credentials or path, for logs.
std::string url_for_log(const std::string& url) {
    auto scheme = url.find("://");
    auto start = scheme == std::string::npos ? 0 : scheme + 3;
    auto end = url.find_first_of("/?#", start);
    std::string host =
        url.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (auto at = host.rfind('@'); at != std::string::npos) host = host.substr(at + 1);
    return url.substr(0, start) + host;
}

}  // namespace

std::string webhook_signature(std::string_view key, std::string_view body) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
    return base64_encode(std::string_view(reinterpret_cast<const char*>(mac), len));
}

WebhookService::WebhookService(db::Store& store, const Clock& clock, Metrics& metrics,
                               WebhookOptions opts)
    : store_(store), clock_(clock), metrics_(metrics), opts_(opts) {
    init_curl_once();
    metrics_.help("courier_webhook_deliveries_total", "counter",
                  "webhook delivery attempts by destination and result (delivered, retry, "
                  "failed, memory_delivered, memory_failed)");
    metrics_.help("courier_webhook_backlog", "gauge", "webhook deliveries pending per destination");
    metrics_.help("courier_webhook_dropped_total", "counter",
                  "best-effort (Idle) webhook events dropped because a destination fell behind");
    metrics_.gauge("courier_webhook_backlog", [this] {
        std::vector<std::pair<Labels, double>> out;
        auto b = store_.webhook_backlog();
        if (b.is_ok())
            for (const auto& [id, n] : *b)
                out.push_back({{{"webhook", id}}, static_cast<double>(n)});
        return out;
    });
}

WebhookService::~WebhookService() {
    stop();
}

void WebhookService::start() {
    std::lock_guard lk(mu_);
    if (!workers_.empty()) return;
    stopping_ = false;
    for (int i = 0; i < std::max(1, opts_.workers); ++i)
        workers_.emplace_back([this] { worker_loop(); });
    sweeper_ = std::thread([this] {
        for (;;) {
            if (auto s = sweep(clock_.now()); !s.is_ok())
                spdlog::warn("webhooks: expiry sweep failed: {}", s.message());
            if (auto p = store_.prune_deliveries(clock_.now() - opts_.keep_delivered); !p.is_ok())
                spdlog::warn("webhooks: pruning deliveries failed: {}", p.status().message());
            std::unique_lock lk(mu_);
            if (cv_.wait_for(lk, opts_.sweep_interval, [&] { return stopping_; })) return;
        }
    });
}

void WebhookService::stop() {
    std::vector<std::thread> ws;
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
        ws.swap(workers_);
    }
    cv_.notify_all();
    for (auto& t : ws) t.join();
    if (sweeper_.joinable()) sweeper_.join();
}

uint64_t WebhookService::attempts() const {
    std::lock_guard lk(mu_);
    return attempts_;
}

void WebhookService::refresh() {
    auto list = store_.webhooks();
    std::lock_guard lk(mu_);
    if (list.is_ok()) cache_ = std::move(*list);
    cache_at_ = std::chrono::steady_clock::now();
}

bool WebhookService::wants(std::string_view topic) {
    bool stale;
    {
        std::lock_guard lk(mu_);
        stale = std::chrono::steady_clock::now() - cache_at_ > kCacheTtl;
    }
    if (stale) refresh();
    std::lock_guard lk(mu_);
    for (const auto& w : cache_)
        if (w.enabled && db::topic_matches(w.topics, topic)) return true;
    return false;
}

namespace {
class PokingAttachment : public db::EventAttachment {
  public:
    PokingAttachment(std::unique_ptr<db::EventAttachment> inner, WebhookService& svc)
        : inner_(std::move(inner)), svc_(svc) {}
    ~PokingAttachment() override {
        inner_.reset();
        svc_.poke();
    }

  private:
    std::unique_ptr<db::EventAttachment> inner_;
    WebhookService& svc_;
};
}  // namespace

std::unique_ptr<db::EventAttachment> WebhookService::attach(std::vector<db::OutboxEvent> events) {
    if (events.empty()) return nullptr;
    return std::make_unique<PokingAttachment>(store_.attach_events(std::move(events)), *this);
}

Status WebhookService::append(std::vector<db::OutboxEvent> events) {
    if (events.empty()) return Status::ok();
    Status s = store_.append_events(events);
    if (s.is_ok()) poke();
    return s;
}

void WebhookService::poke() {
    {
        std::lock_guard lk(mu_);
        ++pokes_;
        if (gathering_ > 0) return;  // that worker claims these too
    }
    cv_.notify_one();
}

void WebhookService::send_from_memory(const db::OutboxEvent& ev) {
    (void)wants(ev.topic);  // refreshes a stale cache
    std::lock_guard lk(mu_);
    for (const auto& w : cache_) {
        if (!w.enabled || !db::topic_matches(w.topics, ev.topic)) continue;
        if (memory_.size() >= opts_.memory_queue_max) {
            metrics_.counter("courier_webhook_dropped_total", {{"webhook", w.id}}).inc();
            continue;
        }
        memory_.push_back({w.id, w.url, w.hmac_key, ev.body, ev.event_id});
    }
    cv_.notify_one();
}

std::chrono::milliseconds WebhookService::backoff(int attempts) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    double base = static_cast<double>(opts_.backoff_base.count());
    double d = base * std::pow(2.0, std::min(attempts, 20));
    d = std::min(d, static_cast<double>(std::chrono::milliseconds(kMaxBackoff).count()));
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    return std::chrono::milliseconds(static_cast<int64_t>(d * jitter(rng)));
}

db::DeliveryOutcome WebhookService::post(const std::string& url, const std::string& key,
                                         const std::string& body, const std::string& event_id,
                                         const db::Delivery& d, SysTime now) {
    db::DeliveryOutcome out;
    // One handle per delivery thread: its connection cache keeps the
    // receiver's connection alive between events. The options every request
    // shares are set once; each request sets all the others.
    struct Handle {
        CURL* e = curl_easy_init();
        bool ready = false;
        ~Handle() {
            if (e) curl_easy_cleanup(e);
        }
    };
    thread_local Handle handle;
    CURL* e = handle.e;
    if (e && !handle.ready) {
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.timeout.count()));
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "Courier-Webhook/1");
        handle.ready = true;
    }
    if (!e) {
        out.error = "curl_easy_init failed";
    } else {
        curl_slist* headers = nullptr;
        headers = curl_slist_append(headers, "Content-Type: application/json; charset=utf-8");
        headers = curl_slist_append(headers, ("X-Courier-Event-Id: " + event_id).c_str());
        if (!key.empty())
            headers = curl_slist_append(
                headers, ("X-Hmac-Signature: " + webhook_signature(key, body)).c_str());
        headers = curl_slist_append(headers, "Expect:");
        size_t answer_bytes = 0;
        curl_easy_setopt(e, CURLOPT_URL, url.c_str());
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &answer_bytes);
        CURLcode rc = curl_easy_perform(e);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, nullptr);  // freed below
        long code = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        out.http_status = static_cast<int>(code);
        if (rc == CURLE_OK && code >= 200 && code < 300) {
            out.delivered = true;
        } else if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && code != 0)) {
            out.error = fmt::format("HTTP {}", code);
            out.delivered = rc == CURLE_WRITE_ERROR && code >= 200 && code < 300;
        } else {
            out.error = curl_easy_strerror(rc);
        }
        curl_slist_free_all(headers);
    }
    if (out.error.size() > kMaxErrorChars) out.error.resize(kMaxErrorChars);
    if (!out.delivered) {
        auto delay = backoff(d.attempts);
        SysTime at = std::chrono::ceil<std::chrono::seconds>(SysTimeMs(clock_.now_ms()) + delay);
        SysTime end = std::min(d.deadline, d.created_at + opts_.retry_window);
        if (at <= end) out.retry_at = at;
    }
    (void)now;
    return out;
}

size_t WebhookService::deliver_one_batch() {
    // What this process just committed comes from memory, leased, with no
    // read of the store; claims (a read) find the rest: retries coming due,
    // what memory did not keep, other nodes' events. A worker busy with
    // committed events still claims once per poll interval.
    thread_local std::chrono::steady_clock::time_point last_claim{};
    Result<std::vector<db::ClaimedDelivery>> claims =
        store_.take_committed(clock_.now(), opts_.lease, kClaimBatch);
    const auto steady = std::chrono::steady_clock::now();
    if (claims->size() < kClaimBatch && (claims->empty() || steady - last_claim >= opts_.poll)) {
        last_claim = steady;
        auto more =
            store_.claim_deliveries(clock_.now(), opts_.lease, kClaimBatch - claims->size());
        if (!more.is_ok())
            spdlog::warn("webhooks: claiming deliveries failed: {}", more.status().message());
        else
            for (auto& c : *more) claims->push_back(std::move(c));
    }
    if (claims->empty()) return 0;
    const size_t claimed = claims->size();
    std::vector<std::pair<db::ClaimedDelivery, db::DeliveryOutcome>> done;
    done.reserve(claims->size());
    // The claims' lease must outlast every attempt made under it: once
    // another attempt could run past it, the rest are handed back, due now,
    // unattempted (a slow receiver must not leave them to another claimer
    // while this one still holds them).
    const auto lease_end = std::chrono::steady_clock::now() + opts_.lease;
    for (auto& c : *claims) {
        if (std::chrono::steady_clock::now() + opts_.timeout + std::chrono::seconds(1) >=
            lease_end) {
            db::DeliveryOutcome back;
            back.error = "not attempted: handed back (an earlier receiver was slow)";
            back.retry_at = clock_.now();
            done.emplace_back(std::move(c), std::move(back));
            continue;
        }
        std::string body = c.tally ? webhook::add_tally(c.body, *c.tally) : c.body;
        auto outcome = post(c.url, c.hmac_key, body, c.delivery.event_id, c.delivery, clock_.now());
        const char* result = outcome.delivered  ? "delivered"
                             : outcome.retry_at ? "retry"
                                                : "failed";
        metrics_
            .counter("courier_webhook_deliveries_total",
                     {{"webhook", c.delivery.webhook_id}, {"result", result}})
            .inc();
        if (!outcome.delivered)
            spdlog::log(outcome.retry_at ? spdlog::level::info : spdlog::level::warn,
                        "webhook {} ({}): event {} {} attempt {} {}: {}", c.delivery.webhook_id,
                        url_for_log(c.url), c.delivery.event_id, c.delivery.topic,
                        c.delivery.attempts + 1, outcome.retry_at ? "will be retried" : "failed",
                        outcome.error);
        done.emplace_back(std::move(c), std::move(outcome));
    }
    // One transaction for the batch's outcomes (a lost lease skips its own).
    Status s = store_.finish_deliveries(done, clock_.now());
    if (!s.is_ok())
        spdlog::warn("webhooks: recording {} delivery outcomes failed: {}", done.size(),
                     s.message());
    std::lock_guard lk(mu_);
    attempts_ += done.size();
    return claimed;
}

bool WebhookService::deliver_from_memory() {
    MemoryItem item;
    {
        std::lock_guard lk(mu_);
        if (memory_.empty()) return false;
        item = std::move(memory_.front());
        memory_.pop_front();
    }
    db::Delivery d;
    d.deadline = d.created_at = SysTime{};  // no retry
    auto outcome = post(item.url, item.key, item.body, item.event_id, d, clock_.now());
    metrics_
        .counter("courier_webhook_deliveries_total",
                 {{"webhook", item.webhook_id},
                  {"result", outcome.delivered ? "memory_delivered" : "memory_failed"}})
        .inc();
    std::lock_guard lk(mu_);
    ++attempts_;
    return true;
}

void WebhookService::worker_loop() {
    uint64_t seen_pokes = 0;
    bool gather = false;
    for (;;) {
        {
            std::unique_lock lk(mu_);
            if (stopping_) return;
            if (gather && opts_.gather.count() > 0) {
                // Let the window's events collect: one claim and one outcome
                // write for all of them.
                ++gathering_;
                cv_.wait_for(lk, opts_.gather, [&] { return stopping_; });
                --gathering_;
                if (stopping_) return;
            }
            seen_pokes = pokes_;
        }
        size_t claimed = 0;
        bool have_destinations = false;
        {
            // Without destinations there is nothing to claim.
            (void)wants("");  // refreshes a stale cache
            std::lock_guard lk(mu_);
            for (const auto& w : cache_) have_destinations |= w.enabled;
        }
        if (have_destinations) claimed = deliver_one_batch();
        bool memory = deliver_from_memory();
        if (claimed >= kClaimBatch || memory) {
            gather = false;  // more is waiting: at once
            continue;
        }
        if (claimed > 0) {
            // A short batch: its outcomes may have made an enrollment's next
            // event due (no poke for those); look again after a window.
            gather = true;
            continue;
        }
        std::unique_lock lk(mu_);
        gather = cv_.wait_for(lk, opts_.poll, [&] {
            return stopping_ || pokes_ != seen_pokes || !memory_.empty();
        }) && memory_.empty();
    }
}

Status WebhookService::sweep(SysTime now) {
    if (!wants("courier.pushcert.expiring") && !wants("courier.pushcert.expired") &&
        !wants("courier.identity.expiring"))
        return Status::ok();
    std::vector<db::OutboxEvent> events;
    const SysTimeMs now_ms = now;
    auto certs = store_.active_push_certs();
    if (!certs.is_ok()) return certs.status();
    for (const auto& c : *certs) {
        auto left = std::chrono::floor<std::chrono::days>(c.not_after - now).count();
        auto data = [&] {
            boost::json::object o;
            o["topic"] = c.topic;
            o["thumbprint_sha1"] = c.thumbprint_sha1;
            o["not_after"] = format_rfc3339(c.not_after);
            o["days_left"] = left;
            return o;
        };
        if (c.not_after <= now) {
            if (wants("courier.pushcert.expired")) {
                auto ev = webhook::courier_event("courier.pushcert.expired", "", data(), now_ms);
                ev.once_key = "pushcert.expired:" + c.thumbprint_sha1;
                events.push_back(std::move(ev));
            }
            continue;
        }
        if (!wants("courier.pushcert.expiring")) continue;
        // Each threshold once: the smallest one reached is the one sent;
        // larger ones never sent (a certificate uploaded late) are skipped.
        std::vector<int> thresholds{30, opts_.cert_warn_days, 1};
        std::sort(thresholds.begin(), thresholds.end());
        thresholds.erase(std::unique(thresholds.begin(), thresholds.end()), thresholds.end());
        for (int t : thresholds) {
            if (t <= 0 || left >= t) continue;
            auto o = data();
            o["threshold_days"] = t;
            auto ev = webhook::courier_event("courier.pushcert.expiring", "", std::move(o), now_ms);
            ev.once_key = fmt::format("pushcert.expiring:{}:{}", c.thumbprint_sha1, t);
            events.push_back(std::move(ev));
            break;
        }
    }
    if (wants("courier.identity.expiring")) {
        db::Page page{1000, ""};
        for (int pages = 0; pages < 10000; ++pages) {
            auto list = store_.list_enrollments({}, page);
            if (!list.is_ok()) break;
            for (const auto& e : list->items) {
                if (!e.user_id.empty() || !e.identity_not_after) continue;
                if (*e.identity_not_after - now > std::chrono::days(30)) continue;
                boost::json::object o;
                o["enrollment_id"] = e.id;
                o["not_after"] = format_rfc3339(*e.identity_not_after);
                o["days_left"] =
                    std::chrono::floor<std::chrono::days>(*e.identity_not_after - now).count();
                auto ev =
                    webhook::courier_event("courier.identity.expiring", e.id, std::move(o), now_ms);
                ev.once_key =
                    fmt::format("identity.expiring:{}:{}", e.id, to_unix(*e.identity_not_after));
                events.push_back(std::move(ev));
            }
            if (list->next_cursor.empty()) break;
            page.cursor = list->next_cursor;
        }
    }
    if (events.empty()) return Status::ok();
    Status s = store_.append_events(events);
    if (s.is_ok()) poke();
    return s;
}

}  // namespace courier::server
