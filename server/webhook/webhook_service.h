// Webhook delivery (SPEC "Webhooks", docs/webhooks.md): worker threads that
// claim due deliveries from the store's outbox (db/webhook_store.h) and POST
// them, off the request path; Courier's own expiry events; the Idle events
// delivered from memory.
//
// An attempt delivers on a 2xx answer within WebhookOptions::timeout;
// anything else is retried after backoff_base · 2^attempts (capped at an
// hour, ±20 % jitter) until the delivery's 24 h window runs out, then it is
// failed. Per destination and enrollment the store hands out one delivery at
// a time, in order, so retries keep the order. A slow or dead receiver
// occupies delivery threads only: check-ins never wait on it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/status.h"
#include "db/store.h"

namespace courier::server {

struct WebhookOptions {
    std::chrono::milliseconds backoff_base{5000};  // SPEC: from 5 s (tests shorten it)
    std::chrono::seconds retry_window{24 * 3600};  // then failed (tests shorten it)
    std::chrono::milliseconds timeout{10000};      // a 2xx within this delivers
    std::chrono::seconds lease{60};                // longer than timeout
    int workers = 4;
    size_t memory_queue_max = 10000;  // best-effort Idle events waiting, all destinations
    int cert_warn_days = 10;          // --cert-warn-days: one of the expiring warnings
    // How often the workers look for due deliveries when nothing woke them
    // (retries coming due, other nodes' events).
    std::chrono::milliseconds poll{1000};
    // A worker woken by new events (or with a batch smaller than a claim's
    // limit behind it) waits this long before it claims, so that one claim
    // and one outcome write carry the events of that window, not one each.
    std::chrono::milliseconds gather{10};
    // sweep() runs at start and this often; delivered deliveries are kept
    // this long for GET /v1/webhooks/{id}/deliveries.
    std::chrono::seconds sweep_interval{3600};
    std::chrono::seconds keep_delivered{7 * 24 * 3600};
};

// The body as posted and its signature header value: base64(HMAC-SHA256(key, body)).
std::string webhook_signature(std::string_view key, std::string_view body);

class WebhookService {
  public:
    WebhookService(db::Store& store, const Clock& clock, Metrics& metrics, WebhookOptions opts);
    ~WebhookService();
    WebhookService(const WebhookService&) = delete;
    WebhookService& operator=(const WebhookService&) = delete;

    void start();
    // Stops the workers; an attempt in flight ends within the timeout. Its
    // lease runs out and the delivery is claimed again after a restart.
    void stop();

    // Does any enabled destination take this topic? (Cached; refreshed by
    // refresh() and every few seconds.) Callers skip building events no one
    // takes.
    bool wants(std::string_view topic);
    // Attaches events to the calling thread's next store write (their
    // cause), as db::WebhookStore::attach_events; when the attachment ends
    // the workers are woken. Empty events: nullptr.
    std::unique_ptr<db::EventAttachment> attach(std::vector<db::OutboxEvent> events);
    // Events with no cause write of their own, in their own transaction.
    Status append(std::vector<db::OutboxEvent> events);
    // Reloads the destinations (after the API changed them).
    void refresh();
    // New durable events were committed: look for due deliveries now.
    void poke();
    // A best-effort event (an Idle that handed out nothing): posted once to
    // each destination taking its topic, from memory; dropped and counted
    // (courier_webhook_dropped_total) when the queue is full.
    void send_from_memory(const db::OutboxEvent& ev);
    // Courier's own time-driven events: push certificates expiring (30 days,
    // --cert-warn-days, 1 day before: once each) and expired (once), device
    // identities expiring within 30 days (once per certificate expiry).
    // Idempotent: the store keeps each once (OutboxEvent::once_key).
    Status sweep(SysTime now);

    // Delivery attempts finished (tests).
    uint64_t attempts() const;

  private:
    struct MemoryItem {
        std::string webhook_id, url, key, body, event_id;
    };
    void worker_loop();
    // Claims and posts up to one batch; how many it claimed.
    size_t deliver_one_batch();
    bool deliver_from_memory();
    db::DeliveryOutcome post(const std::string& url, const std::string& key,
                             const std::string& body, const std::string& event_id,
                             const db::Delivery& d, SysTime now);
    std::chrono::milliseconds backoff(int attempts);

    db::Store& store_;
    const Clock& clock_;
    Metrics& metrics_;
    const WebhookOptions opts_;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    uint64_t pokes_ = 0;
    int gathering_ = 0;  // workers waiting out `gather`: pokes need not wake another
    std::deque<MemoryItem> memory_;
    std::vector<db::Webhook> cache_;
    std::chrono::steady_clock::time_point cache_at_{};
    uint64_t attempts_ = 0;
    std::vector<std::thread> workers_;
    std::thread sweeper_;
};

}  // namespace courier::server
