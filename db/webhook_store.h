// WebhookStore: webhook destinations, the durable outbox of events and each
// destination's deliveries (SPEC "Webhooks").
//
// Follows the storage contract in db/store.h.
//
// Outbox. An event is written in the same transaction as what caused it, so
// a committed cause always has its event and a failed one never does. A
// caller attaches the events to the store write that is their cause
// (attach_events, then the role's write method, e.g. apply_report); events
// with no write of their own to ride on (a GetBootstrapToken, an expiry
// warning) are appended in a transaction of their own (append_events).
// Appending an event fans it out: one pending delivery per enabled
// destination whose topic prefixes match the event's topic, due at once.
//
// Deliveries. Per destination and enrollment, events go out in the order
// they were appended: claim_deliveries hands out a pending delivery only when
// no earlier ordered delivery of the same destination and enrollment is
// still pending (leased or not), so a failing event holds back that
// enrollment's later events until it is delivered or has failed for good.
// Events without an enrollment are not ordered. A claim is a lease: until it
// runs out, no other claimer (thread or node) gets the delivery; a claimer
// that dies leaves it to be claimed again after the lease (at least once).
// finish_delivery records the outcome only while the caller's lease is the
// delivery's current one.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "db/page.h"

namespace courier::db {

struct Webhook {
    std::string id;  // "default" (--webhook-url) or chosen by the API
    std::string url;
    // Topic prefixes ("mdm.", "courier.pushcert.", ...); an event goes to the
    // destination when its topic starts with one of them.
    std::vector<std::string> topics;
    std::string hmac_key;  // a secret: never log or return it; empty: unsigned
    bool enabled = true;
    SysTime created_at{};
};
// Does a destination with these prefixes take the topic?
bool topic_matches(const std::vector<std::string>& prefixes, std::string_view topic);
// A destination's topic prefixes as the backends store them: one per line.
std::string join_topics(const std::vector<std::string>& topics);
std::vector<std::string> split_topics(const std::string& stored);

struct OutboxEvent {
    std::string event_id;       // unique per event (kConflict on a repeat)
    std::string topic;          // "mdm.Authenticate", "courier.pushcert.expiring", ...
    std::string enrollment_id;  // the ordering key; empty: not ordered
    std::string body;           // the JSON delivered (see with_tally)
    SysTime created_at{};
    // Stored with the TokenUpdate tally of enrollment_id as the write it
    // rides on left it (ClaimedDelivery::tally): TokenUpdates since the
    // enrollment's last Authenticate.
    bool with_tally = false;
    // Appended only when the write it rides on took effect: a repeated final
    // report, or a superseded-use alarm within the hour, writes nothing and
    // appends no such event.
    bool only_if_effective = false;
    // Non-empty: appended at most once per key, for ever (the expiry
    // warnings); a later event with a key already used is skipped.
    std::string once_key;
};

// Events attached to the calling thread's next write (see attach_events).
class EventAttachment {
  public:
    virtual ~EventAttachment() = default;
};

enum class DeliveryStatus { kPending, kDelivered, kFailed };
const char* delivery_status_name(DeliveryStatus s);  // "pending", "delivered", "failed"
std::optional<DeliveryStatus> parse_delivery_status(std::string_view s);

struct Delivery {
    std::string webhook_id, event_id, topic, enrollment_id;
    int64_t seq = 0;  // the event's place in the outbox (its order)
    DeliveryStatus status = DeliveryStatus::kPending;
    int attempts = 0;
    SysTime created_at{}, next_attempt{};
    SysTime deadline{};   // after this it fails for good (created_at + 24 h)
    int last_status = 0;  // HTTP status of the last attempt, 0: no answer
    std::string last_error;
    bool ordered = true;  // false after a manual retry (outside the order)
};

struct ClaimedDelivery {
    Delivery delivery;
    std::string url, hmac_key, body;
    std::optional<int64_t> tally;  // OutboxEvent::with_tally
    std::string lease;             // identifies this claim
};

struct DeliveryOutcome {
    bool delivered = false;
    int http_status = 0;
    std::string error;
    // Not delivered: when to try again; nullopt: failed for good.
    std::optional<SysTime> retry_at;
};

class WebhookStore {
  public:
    virtual ~WebhookStore() = default;

    // Destinations, ordered by id. put_webhook creates or replaces (by id).
    virtual Result<std::vector<Webhook>> webhooks() = 0;
    virtual Result<Webhook> webhook(const std::string& id) = 0;  // kNotFound
    virtual Status put_webhook(const Webhook& w, SysTime now) = 0;
    // Drops the destination and its deliveries. kNotFound when absent.
    virtual Status delete_webhook(const std::string& id) = 0;

    // The events are appended in the transaction of the next write the
    // calling thread makes through this store (any role's write method)
    // while the returned attachment lives, and only if that write succeeds;
    // unused events are dropped with the attachment. One write takes them
    // all. Read methods do not take them.
    virtual std::unique_ptr<EventAttachment> attach_events(std::vector<OutboxEvent> events) = 0;
    // The events in one transaction of their own (with_tally and
    // only_if_effective are ignored: there is no cause write).
    virtual Status append_events(const std::vector<OutboxEvent>& events) = 0;

    // Up to `limit` due deliveries (pending, next_attempt <= now, not under
    // another lease, not held back by an earlier one of their enrollment,
    // see above), oldest due first, each leased until now + lease.
    virtual Result<std::vector<ClaimedDelivery>> claim_deliveries(SysTime now,
                                                                  std::chrono::seconds lease,
                                                                  size_t limit) = 0;
    // Deliveries made due by writes this process committed (an appended
    // event, the next one in an enrollment's line), handed over from memory
    // and leased to the caller as claim_deliveries would lease them, with no
    // read of the store; oldest first. A fast path only: whatever it does not
    // hand over (the backend keeps none, the memory is full or stale, a
    // destination changed meanwhile, a claim took it first) claim_deliveries
    // finds. The default hands over nothing; SqliteStore keeps what its
    // writer committed (bounded).
    virtual std::vector<ClaimedDelivery> take_committed(SysTime now, std::chrono::seconds lease,
                                                        size_t limit);
    // Records an attempt: delivered, pending again at retry_at, or failed.
    // attempts + 1, the lease released. kConflict (nothing changed) when the
    // lease is no longer the delivery's (it ran out and was claimed again,
    // or the destination was deleted).
    virtual Status finish_delivery(const ClaimedDelivery& claim, const DeliveryOutcome& outcome,
                                   SysTime now) = 0;
    // Many outcomes at once, each as finish_delivery (a lost lease skips
    // that one). The default does them one call at a time; SqliteStore in
    // one transaction.
    virtual Status finish_deliveries(
        const std::vector<std::pair<ClaimedDelivery, DeliveryOutcome>>& batch, SysTime now);
    // A destination's deliveries, newest event first; status filters when
    // set. Paging as CommandQueue::list_commands. kNotFound for no such
    // destination.
    virtual Result<PageOf<Delivery>> list_deliveries(const std::string& webhook_id,
                                                     std::optional<DeliveryStatus> status,
                                                     const Page& page) = 0;
    // A failed delivery becomes pending, due now, with a fresh deadline
    // (now + 24 h) and outside the order (it holds nothing back). kNotFound
    // when there is no such delivery; kConflict unless it is failed.
    virtual Status retry_delivery(const std::string& webhook_id, const std::string& event_id,
                                  SysTime now) = 0;
    // Pending deliveries per destination id (every destination listed).
    virtual Result<std::map<std::string, int64_t>> webhook_backlog() = 0;
    // Forgets delivered deliveries older than `before` (by event time) and
    // events no delivery refers to any more; returns how many deliveries.
    virtual Result<int64_t> prune_deliveries(SysTime before) = 0;
};

}  // namespace courier::db
