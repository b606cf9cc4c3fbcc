// SqliteStore: webhook destinations, the outbox and deliveries
// (db/webhook_store.h).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <memory>

#include "common/encoding.h"
#include "db/sqlite/sqlite_internal.h"
#include "db/sqlite/sqlite_store.h"

namespace courier::db {

using sqlite::Blob;
using sqlite::Connection;

namespace {

constexpr int64_t kDeliveryWindowSeconds = 24 * 3600;  // SPEC: retried for 24 h

const char kWebhookColumns[] = "id, url, topics, hmac_key, enabled, created_at";

Webhook webhook_row(sqlite::Statement& st) {
    Webhook w;
    w.id = st.str(0);
    w.url = st.str(1);
    w.topics = split_topics(st.str(2));
    w.hmac_key = st.str(3);
    w.enabled = st.int64(4) != 0;
    w.created_at = from_unix(st.int64(5));
    return w;
}

const char kDeliveryColumns[] =
    "d.webhook_id, e.event_id, e.topic, d.enrollment_id, d.event_seq, d.status, d.attempts, "
    "e.created_at, d.next_attempt, d.deadline, d.last_status, d.last_error, d.ordered";

Delivery delivery_row(sqlite::Statement& st) {
    Delivery d;
    d.webhook_id = st.str(0);
    d.event_id = st.str(1);
    d.topic = st.str(2);
    d.enrollment_id = st.str(3);
    d.seq = st.int64(4);
    d.status = parse_delivery_status(st.str(5)).value_or(DeliveryStatus::kPending);
    d.attempts = static_cast<int>(st.int64(6));
    d.created_at = from_unix(st.int64(7));
    d.next_attempt = from_unix(st.int64(8));
    d.deadline = from_unix(st.int64(9));
    d.last_status = static_cast<int>(st.int64(10));
    d.last_error = st.str(11);
    d.ordered = st.int64(12) != 0;
    return d;
}

// The enabled destinations as of the last change through this process
// (put_webhook and delete_webhook bump the version), cached per writer
// connection: an append reads no webhooks row. One process owns a data dir.
std::atomic<uint64_t> g_webhooks_version{1};
struct DestinationCache {
    const Connection* conn = nullptr;
    uint64_t version = 0;
    std::vector<Webhook> enabled;
};
thread_local DestinationCache tl_destinations;

const std::vector<Webhook>& enabled_destinations(Connection& c) {
    const uint64_t v = g_webhooks_version.load();
    if (tl_destinations.conn != &c || tl_destinations.version != v) {
        std::vector<Webhook> dests;
        auto st =
            c.prepare(fmt::format("SELECT {} FROM webhooks WHERE enabled = 1", kWebhookColumns));
        while (st.step()) dests.push_back(webhook_row(st));
        st.reset();
        tl_destinations = {&c, v, std::move(dests)};
    }
    return tl_destinations.enabled;
}

const std::string& claim_row_sql() {
    static const std::string sql = fmt::format(
        "SELECT {}, w.url, w.hmac_key, e.body, e.tally FROM webhook_deliveries d "
        "JOIN webhook_events e ON e.seq = d.event_seq JOIN webhooks w ON w.id = "
        "d.webhook_id WHERE d.webhook_id = ?1 AND d.event_seq = ?2",
        kDeliveryColumns);
    return sql;
}

// A delivery with what posting it needs (claim_row_sql), unleased.
std::optional<ClaimedDelivery> claim_row(sqlite::Statement& row, const std::string& hook,
                                         int64_t seq) {
    std::optional<ClaimedDelivery> out;
    row.bind(hook, seq);
    if (row.step()) {
        ClaimedDelivery cd;
        cd.delivery = delivery_row(row);
        cd.url = row.str(13);
        cd.hmac_key = row.str(14);
        cd.body = row.str(15);
        cd.tally = row.opt_int64(16);
        out = std::move(cd);
    }
    row.reset();
    return out;
}

}  // namespace

void sqlite::append_outbox(Connection& c, const std::vector<OutboxEvent>& events, bool effective,
                           const std::vector<std::string>* effective_for) {
    const std::vector<Webhook>& dests = enabled_destinations(c);
    if (dests.empty()) return;
    for (const auto& ev : events) {
        if (ev.only_if_effective && !effective) continue;
        if (ev.only_if_effective && effective_for &&
            std::find(effective_for->begin(), effective_for->end(), ev.enrollment_id) ==
                effective_for->end())
            continue;
        std::vector<const Webhook*> to;
        for (const auto& w : dests)
            if (topic_matches(w.topics, ev.topic)) to.push_back(&w);
        if (to.empty()) continue;
        if (!ev.once_key.empty()) {
            c.prepare("INSERT OR IGNORE INTO webhook_once (key, at) VALUES (?1, ?2)")
                .bind(ev.once_key, to_unix(ev.created_at))
                .run();
            if (c.changes() == 0) continue;  // sent once already
        }
        std::optional<int64_t> tally;
        if (ev.with_tally) {
            auto st = c.prepare("SELECT token_update_tally FROM enrollments WHERE id = ?1");
            st.bind(ev.enrollment_id);
            if (st.step()) tally = st.int64(0);
        }
        c.prepare(
             "INSERT INTO webhook_events (event_id, topic, enrollment_id, body, tally, "
             "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .bind(ev.event_id, ev.topic, ev.enrollment_id, Blob{ev.body}, tally,
                  to_unix(ev.created_at))
            .run();
        int64_t seq = c.last_insert_rowid();
        // Behind an earlier delivery of the same destination and enrollment:
        // waiting, until that one is done (finish_delivery promotes it).
        auto behind = c.prepare(
            "SELECT 1 FROM webhook_deliveries INDEXED BY webhook_deliveries_line WHERE "
            "webhook_id = ?1 AND enrollment_id = ?2 AND status IN ('pending', 'waiting') AND "
            "ordered = 1 LIMIT 1");
        auto ins = c.prepare(
            "INSERT INTO webhook_deliveries (webhook_id, event_seq, enrollment_id, status, "
            "next_attempt, deadline) VALUES (?1, ?2, ?3, ?6, ?4, ?5)");
        for (const Webhook* w : to) {
            bool waiting = false;
            if (!ev.enrollment_id.empty()) {
                behind.bind(w->id, ev.enrollment_id);
                waiting = behind.step();
                behind.reset();
            }
            ins.bind(w->id, seq, ev.enrollment_id, to_unix(ev.created_at),
                     to_unix(ev.created_at) + kDeliveryWindowSeconds,
                     waiting ? "waiting" : "pending")
                .run();
            if (waiting) continue;
            // Due at once: handed to the delivery threads after the commit.
            ClaimedDelivery cd;
            Delivery& d = cd.delivery;
            d.webhook_id = w->id;
            d.event_id = ev.event_id;
            d.topic = ev.topic;
            d.enrollment_id = ev.enrollment_id;
            d.seq = seq;
            d.created_at = d.next_attempt = from_unix(to_unix(ev.created_at));
            d.deadline = from_unix(to_unix(ev.created_at) + kDeliveryWindowSeconds);
            cd.url = w->url;
            cd.hmac_key = w->hmac_key;
            cd.body = ev.body;
            cd.tally = tally;
            sqlite::note_fresh_delivery(std::move(cd));
        }
    }
}

Result<std::vector<Webhook>> SqliteStore::webhooks() {
    std::vector<Webhook> out;
    Status s = read([&](Connection& c) {
        auto st = c.prepare(fmt::format("SELECT {} FROM webhooks ORDER BY id", kWebhookColumns));
        while (st.step()) out.push_back(webhook_row(st));
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Result<Webhook> SqliteStore::webhook(const std::string& id) {
    std::optional<Webhook> out;
    Status s = read([&](Connection& c) {
        auto st = c.prepare(fmt::format("SELECT {} FROM webhooks WHERE id = ?1", kWebhookColumns));
        st.bind(id);
        if (st.step()) out = webhook_row(st);
        return Status::ok();
    });
    if (!s) return s;
    if (!out) return not_found("no webhook " + id);
    return *out;
}

Status SqliteStore::put_webhook(const Webhook& w, SysTime now) {
    if (w.id.empty() || w.url.empty()) return invalid("webhook id and url are required");
    // Bumped in the write (appends after it in its transaction see the
    // change) and after it (a rolled-back change is read again).
    struct Bump {
        ~Bump() { ++g_webhooks_version; }
    } bump;
    return write([&](Connection& c) {
        ++g_webhooks_version;
        c.prepare(
             "INSERT INTO webhooks (id, url, topics, hmac_key, enabled, created_at) VALUES "
             "(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO UPDATE SET url = excluded.url, "
             "topics = excluded.topics, hmac_key = excluded.hmac_key, enabled = "
             "excluded.enabled")
            .bind(w.id, w.url, join_topics(w.topics), w.hmac_key, w.enabled, to_unix(now))
            .run();
        return Status::ok();
    });
}

Status SqliteStore::delete_webhook(const std::string& id) {
    struct Bump {
        ~Bump() { ++g_webhooks_version; }
    } bump;
    return write([&](Connection& c) {
        ++g_webhooks_version;
        c.prepare("DELETE FROM webhooks WHERE id = ?1").bind(id).run();
        if (c.changes() == 0) return not_found("no webhook " + id);
        c.prepare("DELETE FROM webhook_deliveries WHERE webhook_id = ?1").bind(id).run();
        return Status::ok();
    });
}

Status SqliteStore::append_events(const std::vector<OutboxEvent>& events) {
    if (events.empty()) return Status::ok();
    return write([&](Connection& c) {
        sqlite::append_outbox(c, events, true);
        return Status::ok();
    });
}

Result<std::vector<ClaimedDelivery>> SqliteStore::claim_deliveries(SysTime now,
                                                                   std::chrono::seconds lease,
                                                                   size_t limit) {
    uint64_t began = 0;
    size_t held = 0;
    {
        std::lock_guard lk(lease_mu_);
        began = finish_gen_;
        claims_in_flight_.insert(began);
        // Marks no claim can need any more (every claim in flight began
        // after their commit), and leases long run out.
        const uint64_t oldest = *claims_in_flight_.begin();
        const int64_t t = to_unix(now);
        for (auto it = leases_.begin(); it != leases_.end();) {
            const auto& l = it->second;
            if ((l.finished != 0 && l.finished <= oldest) ||
                (l.finished == 0 && l.until + 3600 < t))
                it = leases_.erase(it);
            else
                ++it;
        }
        held = leases_.size();
    }
    // Due rows' keys (index only), the ones under a lease (or just
    // finished) among them: enough to fill `limit` past those; then the
    // chosen rows, bodies and all, in the same snapshot.
    std::vector<ClaimedDelivery> out;
    const int64_t t = to_unix(now);
    Status s = read([&](Connection& c) {
        out.clear();
        std::vector<std::pair<std::string, int64_t>> due;
        {
            auto st = c.prepare(
                "SELECT d.webhook_id, d.event_seq FROM webhook_deliveries d JOIN webhooks w ON "
                "w.id = d.webhook_id WHERE d.status = 'pending' AND d.next_attempt <= ?1 AND "
                "w.enabled = 1 ORDER BY d.next_attempt, d.webhook_id, d.event_seq LIMIT ?2");
            st.bind(t, static_cast<int64_t>(limit + held));
            while (st.step()) due.emplace_back(st.str(0), st.int64(1));
        }
        std::vector<std::pair<std::string, int64_t>> mine;
        {
            std::lock_guard lk(lease_mu_);
            for (const auto& key : due) {
                if (mine.size() >= limit) break;
                auto it = leases_.find(key);
                if (it != leases_.end()) {
                    const auto& l = it->second;
                    if (l.finished == 0 && l.until > t) continue;         // leased
                    if (l.finished != 0 && l.finished > began) continue;  // finished since
                }
                mine.push_back(key);
            }
        }
        auto row = c.prepare(claim_row_sql());
        for (const auto& [hook, seq] : mine)
            if (auto cd = claim_row(row, hook, seq)) out.push_back(std::move(*cd));
        return Status::ok();
    });
    std::lock_guard lk(lease_mu_);
    claims_in_flight_.erase(claims_in_flight_.find(began));
    if (!s) return s;
    // Leased now, unless another claimer took one meanwhile.
    std::vector<ClaimedDelivery> taken;
    for (auto& cd : out) {
        auto [it, fresh] =
            leases_.try_emplace({cd.delivery.webhook_id, cd.delivery.seq}, DeliveryLease{});
        DeliveryLease& l = it->second;
        if (!fresh) {
            if (l.finished == 0 && l.until > t) continue;
            if (l.finished != 0 && l.finished > began) continue;
        }
        cd.lease = random_token(12);
        l = {cd.lease, to_unix(now + lease), 0};
        taken.push_back(std::move(cd));
    }
    return taken;
}

void SqliteStore::hand_off(std::vector<ClaimedDelivery> fresh) {
    const auto at = std::chrono::steady_clock::now();
    const uint64_t version = g_webhooks_version.load();
    std::lock_guard lk(lease_mu_);
    // Not taken within kHandoffAge (no delivery threads, or they are busy
    // with a slow receiver): left to claims.
    while (!handoff_.empty() && at - handoff_.front().at > kHandoffAge) {
        drop_handoff_locked(handoff_.front());
        handoff_.pop_front();
    }
    for (auto& cd : fresh) {
        if (handoff_.size() >= kHandoffMax) break;  // the rest: claims find them
        claims_in_flight_.insert(finish_gen_);
        handoff_.push_back({std::move(cd), finish_gen_, version, at});
    }
}

void SqliteStore::drop_handoff_locked(const Handoff& h) {
    claims_in_flight_.erase(claims_in_flight_.find(h.gen));
}

std::vector<ClaimedDelivery> SqliteStore::take_committed(SysTime now, std::chrono::seconds lease,
                                                         size_t limit) {
    std::vector<ClaimedDelivery> out;
    const uint64_t version = g_webhooks_version.load();
    const int64_t t = to_unix(now);
    std::lock_guard lk(lease_mu_);
    while (!handoff_.empty() && out.size() < limit) {
        Handoff h = std::move(handoff_.front());
        handoff_.pop_front();
        drop_handoff_locked(h);
        // A destination changed since its commit: claims decide.
        if (h.webhooks_version != version) continue;
        auto [it, fresh] = leases_.try_emplace({h.claim.delivery.webhook_id, h.claim.delivery.seq});
        DeliveryLease& l = it->second;
        if (!fresh) {
            if (l.finished == 0 && l.until > t) continue;  // a claim holds it
            if (l.finished > h.gen) continue;              // a claim delivered it since
        }
        // Unique among this process's leases (all there are on SQLite).
        h.claim.lease = fmt::format("m{}", ++handoff_leases_);
        l = {h.claim.lease, to_unix(now + lease), 0};
        out.push_back(std::move(h.claim));
    }
    return out;
}

void SqliteStore::leases_finished(const std::vector<const ClaimedDelivery*>& done) {
    std::lock_guard lk(lease_mu_);
    const uint64_t gen = ++finish_gen_;
    for (const ClaimedDelivery* c : done) {
        auto it = leases_.find({c->delivery.webhook_id, c->delivery.seq});
        if (it != leases_.end() && it->second.finished == 0 && it->second.lease == c->lease)
            it->second.finished = gen;
    }
}

namespace {

// finish_delivery inside the caller's transaction (the lease checked by the
// caller); false when the delivery is gone (its destination was deleted).
// (INDEXED BY: without statistics SQLite would walk the primary key's
// webhook_id prefix, every delivery of the destination, for each event.)
bool finish_in(Connection& c, const ClaimedDelivery& claim, const DeliveryOutcome& outcome,
               SysTime now) {
    const char* status = outcome.delivered ? "delivered" : outcome.retry_at ? "pending" : "failed";
    int64_t next = outcome.retry_at ? to_unix(*outcome.retry_at) : to_unix(now);
    c.prepare(
         "UPDATE webhook_deliveries SET status = ?3, attempts = attempts + 1, "
         "next_attempt = ?4, last_status = ?5, last_error = ?6 WHERE webhook_id = ?1 AND "
         "event_seq = ?2 AND status = 'pending'")
        .bind(claim.delivery.webhook_id, claim.delivery.seq, status, next, outcome.http_status,
              outcome.error)
        .run();
    if (c.changes() == 0) return false;
    // Done with this one: the next in its enrollment's line is due.
    if (!outcome.retry_at && claim.delivery.ordered && !claim.delivery.enrollment_id.empty()) {
        auto promote = c.prepare(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt = ?3 WHERE "
            "webhook_id = ?1 AND event_seq = (SELECT min(event_seq) FROM "
            "webhook_deliveries INDEXED BY webhook_deliveries_line WHERE webhook_id = ?1 AND "
            "enrollment_id = ?2 AND status IN ('pending', 'waiting') AND ordered = 1 AND "
            "status = 'waiting') RETURNING event_seq");
        promote.bind(claim.delivery.webhook_id, claim.delivery.enrollment_id, to_unix(now));
        std::optional<int64_t> promoted;
        if (promote.step()) promoted = promote.int64(0);
        promote.reset();
        // Due now: handed to the delivery threads after the commit.
        if (promoted) {
            auto row = c.prepare(claim_row_sql());
            if (auto cd = claim_row(row, claim.delivery.webhook_id, *promoted))
                sqlite::note_fresh_delivery(std::move(*cd));
        }
    }
    return true;
}

}  // namespace

Status SqliteStore::finish_delivery(const ClaimedDelivery& claim, const DeliveryOutcome& outcome,
                                    SysTime now) {
    std::vector<std::pair<ClaimedDelivery, DeliveryOutcome>> one{{claim, outcome}};
    bool recorded = false;
    Status s = finish_batch(one, now, &recorded);
    if (!s) return s;
    if (!recorded) return conflict("delivery lease lost");
    return Status::ok();
}

Status SqliteStore::finish_deliveries(
    const std::vector<std::pair<ClaimedDelivery, DeliveryOutcome>>& batch, SysTime now) {
    if (batch.empty()) return Status::ok();
    // Recorded in the next group commit, without waiting for it: the leases
    // stay held (no claim sends these again) until it committed; if it
    // fails they run out and the deliveries are claimed again (at least
    // once). Only what recording needs is kept (no bodies).
    auto mine = std::make_shared<std::vector<std::pair<ClaimedDelivery, DeliveryOutcome>>>();
    {
        std::lock_guard lk(lease_mu_);
        for (const auto& [claim, outcome] : batch) {
            auto it = leases_.find({claim.delivery.webhook_id, claim.delivery.seq});
            if (it == leases_.end() || it->second.finished != 0 || it->second.lease != claim.lease)
                continue;
            ClaimedDelivery slim;
            slim.delivery = claim.delivery;
            slim.lease = claim.lease;
            mine->emplace_back(std::move(slim), outcome);
        }
    }
    if (mine->empty()) return Status::ok();
    auto done = std::make_shared<std::vector<const ClaimedDelivery*>>();
    write_deferred(
        [mine, done, now](Connection& c) {
            done->clear();
            for (const auto& [claim, outcome] : *mine)
                if (finish_in(c, claim, outcome, now)) done->push_back(&claim);
            return Status::ok();
        },
        [this, mine, done](const Status& s) {
            if (s) {
                leases_finished(*done);
            } else {
                spdlog::warn("webhooks: recording {} delivery outcomes failed: {}", mine->size(),
                             s.message());
            }
        });
    return Status::ok();
}

Status SqliteStore::finish_batch(
    const std::vector<std::pair<ClaimedDelivery, DeliveryOutcome>>& batch, SysTime now,
    bool* all_recorded) {
    // Only the claims whose lease is still the delivery's current one.
    std::vector<const std::pair<ClaimedDelivery, DeliveryOutcome>*> mine;
    {
        std::lock_guard lk(lease_mu_);
        for (const auto& item : batch) {
            auto it = leases_.find({item.first.delivery.webhook_id, item.first.delivery.seq});
            if (it != leases_.end() && it->second.finished == 0 &&
                it->second.lease == item.first.lease)
                mine.push_back(&item);
        }
    }
    std::vector<const ClaimedDelivery*> done;
    Status s = write([&](Connection& c) {
        done.clear();
        for (const auto* item : mine)
            if (finish_in(c, item->first, item->second, now)) done.push_back(&item->first);
        return Status::ok();
    });
    if (!s) return s;
    leases_finished(done);
    if (all_recorded) *all_recorded = done.size() == batch.size();
    return Status::ok();
}

Result<PageOf<Delivery>> SqliteStore::list_deliveries(const std::string& webhook_id,
                                                      std::optional<DeliveryStatus> status,
                                                      const Page& page) {
    std::optional<int64_t> before;
    if (!page.cursor.empty()) {
        auto decoded = hex_decode(page.cursor);
        int64_t v = 0;
        if (!decoded || decoded->empty() ||
            std::from_chars(decoded->data(), decoded->data() + decoded->size(), v).ec !=
                std::errc())
            return invalid("malformed cursor");
        before = v;
    }
    int64_t limit = sqlite::clamp_limit(page.limit);
    std::optional<std::string> want;
    if (status) want = delivery_status_name(*status);
    PageOf<Delivery> out;
    bool known = false;
    Status s = read([&](Connection& c) {
        auto k = c.prepare("SELECT 1 FROM webhooks WHERE id = ?1");
        k.bind(webhook_id);
        known = k.step();
        k.reset();
        if (!known) return Status::ok();
        auto st = c.prepare(fmt::format(
            "SELECT {} FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq "
            "WHERE d.webhook_id = ?1 AND (?2 IS NULL OR d.status = ?2 OR (?2 = 'pending' AND "
            "d.status = 'waiting')) AND (?3 IS NULL OR "
            "d.event_seq < ?3) ORDER BY d.event_seq DESC LIMIT ?4",
            kDeliveryColumns));
        st.bind(webhook_id, want, before, limit + 1);
        while (st.step()) out.items.push_back(delivery_row(st));
        return Status::ok();
    });
    if (!s) return s;
    if (!known) return not_found("no webhook " + webhook_id);
    if (static_cast<int64_t>(out.items.size()) > limit) {
        out.items.pop_back();
        out.next_cursor = hex_encode(std::to_string(out.items.back().seq));
    }
    return out;
}

Status SqliteStore::retry_delivery(const std::string& webhook_id, const std::string& event_id,
                                   SysTime now) {
    return write([&](Connection& c) {
        auto st = c.prepare(
            "SELECT d.event_seq, d.status FROM webhook_deliveries d JOIN webhook_events e ON "
            "e.seq = d.event_seq WHERE d.webhook_id = ?1 AND e.event_id = ?2");
        st.bind(webhook_id, event_id);
        if (!st.step()) return not_found("no delivery of event " + event_id + " to " + webhook_id);
        int64_t seq = st.int64(0);
        std::string status = st.str(1);
        st.reset();
        if (status != "failed")
            return conflict("delivery of event " + event_id + " is " + status +
                            ", not failed: nothing to retry");
        c.prepare(
             "UPDATE webhook_deliveries SET status = 'pending', ordered = 0, next_attempt = ?3, "
             "deadline = ?4, lease = NULL, lease_until = NULL WHERE webhook_id = ?1 AND "
             "event_seq = ?2")
            .bind(webhook_id, seq, to_unix(now), to_unix(now) + kDeliveryWindowSeconds)
            .run();
        return Status::ok();
    });
}

Result<std::map<std::string, int64_t>> SqliteStore::webhook_backlog() {
    std::map<std::string, int64_t> out;
    Status s = read([&](Connection& c) {
        auto st = c.prepare(
            "SELECT w.id, (SELECT count(*) FROM webhook_deliveries d INDEXED BY "
            "webhook_deliveries_backlog WHERE d.webhook_id = w.id AND d.status IN ('pending', "
            "'waiting')) FROM webhooks w");
        while (st.step()) out[st.str(0)] = st.int64(1);
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Result<int64_t> SqliteStore::prune_deliveries(SysTime before) {
    int64_t pruned = 0;
    Status s = write([&](Connection& c) {
        // Every delivery's destination is in webhooks (delete_webhook drops
        // both): the IN lets SQLite find deliveries by their primary key.
        c.prepare(
             "DELETE FROM webhook_deliveries WHERE status = 'delivered' AND webhook_id IN "
             "(SELECT id FROM webhooks) AND event_seq IN (SELECT seq FROM webhook_events "
             "WHERE created_at < ?1)")
            .bind(to_unix(before))
            .run();
        pruned = c.changes();
        c.prepare(
             "DELETE FROM webhook_events WHERE created_at < ?1 AND NOT EXISTS (SELECT 1 FROM "
             "webhook_deliveries d WHERE d.webhook_id IN (SELECT id FROM webhooks) AND "
             "d.event_seq = webhook_events.seq)")
            .bind(to_unix(before))
            .run();
        return Status::ok();
    });
    if (!s) return s;
    return pruned;
}

}  // namespace courier::db
