// PgStore: webhook destinations, the outbox and deliveries
// (db/webhook_store.h), with SqliteStore's semantics across nodes:
// - claims lock the rows they lease (FOR UPDATE OF d SKIP LOCKED), so two
//   nodes never lease one delivery, and neither waits for the other;
// - the line of one destination and enrollment ('waiting' behind its head)
//   is changed only under a transaction-scoped advisory lock on the pair:
//   an append deciding whether its delivery waits and a completion
//   promoting the next one take turns, so no delivery waits behind one that
//   is already done.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <set>

#include "common/encoding.h"
#include "db/postgres/pg_internal.h"
#include "db/postgres/pg_store.h"

namespace courier::db {

using pg::Bytes;
using pg::Connection;
using pg::Rows;

namespace {

constexpr int64_t kDeliveryWindowSeconds = 24 * 3600;  // SPEC: retried for 24 h

// The destinations' lock: appends hold it shared while they fan out, changes
// to destinations (put, delete) exclusive, so an append never fans out to a
// destination deleted or disabled before it committed (no orphan or
// unwanted delivery, as with SQLite's single writer).
constexpr int64_t kDestinationsLock = 0x636f757269657277;  // "courierw"

const char kWebhookColumns[] = "id, url, topics, hmac_key, enabled, created_at";

Webhook webhook_row(const Rows& r, int i) {
    Webhook w;
    w.id = r.str(i, 0);
    w.url = r.str(i, 1);
    w.topics = split_topics(r.str(i, 2));
    w.hmac_key = r.str(i, 3);
    w.enabled = r.boolean(i, 4);
    w.created_at = from_unix(r.int64(i, 5));
    return w;
}

const char kDeliveryColumns[] =
    "d.webhook_id, e.event_id, e.topic, d.enrollment_id, d.event_seq, d.status, d.attempts, "
    "e.created_at, d.next_attempt, d.deadline, d.last_status, d.last_error, d.ordered";

Delivery delivery_row(const Rows& r, int i) {
    Delivery d;
    d.webhook_id = r.str(i, 0);
    d.event_id = r.str(i, 1);
    d.topic = r.str(i, 2);
    d.enrollment_id = r.str(i, 3);
    d.seq = r.int64(i, 4);
    d.status = parse_delivery_status(r.str(i, 5)).value_or(DeliveryStatus::kPending);
    d.attempts = static_cast<int>(r.int64(i, 6));
    d.created_at = from_unix(r.int64(i, 7));
    d.next_attempt = from_unix(r.int64(i, 8));
    d.deadline = from_unix(r.int64(i, 9));
    d.last_status = static_cast<int>(r.int64(i, 10));
    d.last_error = r.str(i, 11);
    d.ordered = r.boolean(i, 12);
    return d;
}

// The advisory lock key of a destination's and enrollment's line: FNV-1a,
// the same on every node (std::hash is not promised to be).
int64_t line_key(const std::string& webhook_id, const std::string& enrollment_id) {
    uint64_t h = 14695981039346656037ull;
    auto mix = [&](std::string_view s) {
        for (unsigned char ch : s) {
            h ^= ch;
            h *= 1099511628211ull;
        }
    };
    mix("courier webhook line\n");
    mix(webhook_id);
    mix("\n");
    mix(enrollment_id);
    return static_cast<int64_t>(h);
}

// Takes the lines' locks in one order (ascending key), so two transactions
// locking several lines cannot deadlock on them.
void lock_lines(Connection& c, const std::set<int64_t>& keys) {
    if (keys.empty()) return;
    std::vector<int64_t> sorted(keys.begin(), keys.end());
    c.query("SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) k",
            pg::Int64Array{&sorted});
}

}  // namespace

void pg::append_outbox(Connection& c, const std::vector<OutboxEvent>& events, bool effective,
                       const std::vector<std::string>* effective_for) {
    std::vector<Webhook> dests;
    {
        // Its own statement: the read below takes its snapshot after the lock.
        c.query("SELECT pg_advisory_xact_lock_shared($1)", kDestinationsLock);
        static const std::string sql =
            fmt::format("SELECT {} FROM webhooks WHERE enabled ORDER BY id", kWebhookColumns);
        auto r = c.query(sql);
        for (int i = 0; i < r.size(); ++i) dests.push_back(webhook_row(r, i));
    }
    if (dests.empty()) return;
    // Which events go where; the lines they join locked first (before their
    // seq is drawn, so a line's seqs are in the order its appends commit).
    std::vector<std::vector<const Webhook*>> to(events.size());
    std::set<int64_t> lines;
    for (size_t i = 0; i < events.size(); ++i) {
        const OutboxEvent& ev = events[i];
        if (ev.only_if_effective && !effective) continue;
        if (ev.only_if_effective && effective_for &&
            std::find(effective_for->begin(), effective_for->end(), ev.enrollment_id) ==
                effective_for->end())
            continue;
        for (const auto& w : dests)
            if (topic_matches(w.topics, ev.topic)) to[i].push_back(&w);
        if (!ev.enrollment_id.empty())
            for (const Webhook* w : to[i]) lines.insert(line_key(w->id, ev.enrollment_id));
    }
    lock_lines(c, lines);
    for (size_t i = 0; i < events.size(); ++i) {
        const OutboxEvent& ev = events[i];
        if (to[i].empty()) continue;
        if (!ev.once_key.empty()) {
            auto r =
                c.query("INSERT INTO webhook_once (key, at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        ev.once_key, to_unix(ev.created_at));
            if (r.affected() == 0) continue;  // sent once already
        }
        std::optional<int64_t> tally;
        if (ev.with_tally) {
            auto r = c.query("SELECT token_update_tally FROM enrollments WHERE id = $1",
                             ev.enrollment_id);
            if (!r.empty()) tally = r.int64(0, 0);
        }
        int64_t seq = c.query(
                           "INSERT INTO webhook_events (event_id, topic, enrollment_id, body, "
                           "tally, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
                           ev.event_id, ev.topic, ev.enrollment_id, Bytes{ev.body}, tally,
                           to_unix(ev.created_at))
                          .int64(0, 0);
        for (const Webhook* w : to[i]) {
            // Behind an earlier delivery of the same destination and
            // enrollment: waiting, until that one is done (finish promotes).
            bool waiting = false;
            if (!ev.enrollment_id.empty())
                waiting = !c.query(
                                "SELECT 1 FROM webhook_deliveries WHERE webhook_id = $1 AND "
                                "enrollment_id = $2 AND status IN ('pending', 'waiting') AND "
                                "ordered LIMIT 1",
                                w->id, ev.enrollment_id)
                               .empty();
            c.query(
                "INSERT INTO webhook_deliveries (webhook_id, event_seq, enrollment_id, status, "
                "next_attempt, deadline) VALUES ($1, $2, $3, $6, $4, $5)",
                w->id, seq, ev.enrollment_id, to_unix(ev.created_at),
                to_unix(ev.created_at) + kDeliveryWindowSeconds, waiting ? "waiting" : "pending");
        }
    }
}

Result<std::vector<Webhook>> PgStore::webhooks() {
    std::vector<Webhook> out;
    Status s = run(
        [&](Connection& c) {
            out.clear();
            static const std::string sql =
                fmt::format("SELECT {} FROM webhooks ORDER BY id", kWebhookColumns);
            auto r = c.query(sql);
            for (int i = 0; i < r.size(); ++i) out.push_back(webhook_row(r, i));
            return Status::ok();
        },
        true);
    if (!s) return s;
    return out;
}

Result<Webhook> PgStore::webhook(const std::string& id) {
    std::optional<Webhook> out;
    Status s = run(
        [&](Connection& c) {
            out.reset();
            static const std::string sql =
                fmt::format("SELECT {} FROM webhooks WHERE id = $1", kWebhookColumns);
            auto r = c.query(sql, id);
            if (!r.empty()) out = webhook_row(r, 0);
            return Status::ok();
        },
        true);
    if (!s) return s;
    if (!out) return not_found("no webhook " + id);
    return *out;
}

Status PgStore::put_webhook(const Webhook& w, SysTime now) {
    if (w.id.empty() || w.url.empty()) return invalid("webhook id and url are required");
    return write([&](Connection& c) {
        c.query("SELECT pg_advisory_xact_lock($1)", kDestinationsLock);
        c.query(
            "INSERT INTO webhooks (id, url, topics, hmac_key, enabled, created_at) VALUES "
            "($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET url = excluded.url, "
            "topics = excluded.topics, hmac_key = excluded.hmac_key, enabled = "
            "excluded.enabled",
            w.id, w.url, join_topics(w.topics), w.hmac_key, w.enabled, to_unix(now));
        return Status::ok();
    });
}

Status PgStore::delete_webhook(const std::string& id) {
    return write([&](Connection& c) {
        c.query("SELECT pg_advisory_xact_lock($1)", kDestinationsLock);
        if (c.query("DELETE FROM webhooks WHERE id = $1", id).affected() == 0)
            return not_found("no webhook " + id);
        c.query("DELETE FROM webhook_deliveries WHERE webhook_id = $1", id);
        return Status::ok();
    });
}

Status PgStore::append_events(const std::vector<OutboxEvent>& events) {
    if (events.empty()) return Status::ok();
    return write([&](Connection& c) {
        pg::append_outbox(c, events, true);
        return Status::ok();
    });
}

Result<std::vector<ClaimedDelivery>> PgStore::claim_deliveries(SysTime now,
                                                               std::chrono::seconds lease,
                                                               size_t limit) {
    std::vector<ClaimedDelivery> out;
    static const std::string sql = fmt::format(
        "SELECT {}, w.url, w.hmac_key, e.body, e.tally FROM webhook_deliveries d "
        "JOIN webhook_events e ON e.seq = d.event_seq JOIN webhooks w ON w.id = d.webhook_id "
        "WHERE d.status = 'pending' AND d.next_attempt <= $1 AND "
        "(d.lease_until IS NULL OR d.lease_until <= $1) AND w.enabled "
        "ORDER BY d.next_attempt, d.event_seq LIMIT $2 FOR UPDATE OF d SKIP LOCKED",
        kDeliveryColumns);
    Status s = write([&](Connection& c) {
        out.clear();
        // Due and not leased; rows another claimer has locked are skipped
        // (it leases them). Held-back deliveries are 'waiting', not here.
        auto r = c.query(sql, to_unix(now), static_cast<int64_t>(limit));
        std::vector<std::string> ids, leases;
        std::vector<int64_t> seqs;
        for (int i = 0; i < r.size(); ++i) {
            ClaimedDelivery cd;
            cd.delivery = delivery_row(r, i);
            cd.url = r.str(i, 13);
            cd.hmac_key = r.str(i, 14);
            cd.body = r.bytes(i, 15);
            cd.tally = r.opt_int64(i, 16);
            cd.lease = random_token(12);
            ids.push_back(cd.delivery.webhook_id);
            seqs.push_back(cd.delivery.seq);
            leases.push_back(cd.lease);
            out.push_back(std::move(cd));
        }
        if (out.empty()) return Status::ok();
        c.query(
            "UPDATE webhook_deliveries d SET lease = v.lease, lease_until = $4 FROM (SELECT "
            "unnest($1::text[]) AS id, unnest($2::bigint[]) AS seq, unnest($3::text[]) AS lease) "
            "v WHERE d.webhook_id = v.id AND d.event_seq = v.seq",
            pg::TextArray{&ids}, pg::Int64Array{&seqs}, pg::TextArray{&leases},
            to_unix(now + lease));
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

namespace {

// finish_delivery inside the caller's transaction (the claim's line locked);
// false when the lease is lost.
bool finish_in(Connection& c, const ClaimedDelivery& claim, const DeliveryOutcome& outcome,
               SysTime now) {
    const char* status = outcome.delivered ? "delivered" : outcome.retry_at ? "pending" : "failed";
    int64_t next = outcome.retry_at ? to_unix(*outcome.retry_at) : to_unix(now);
    auto r = c.query(
        "UPDATE webhook_deliveries SET status = $4, attempts = attempts + 1, "
        "next_attempt = $5, last_status = $6, last_error = $7, lease = NULL, "
        "lease_until = NULL WHERE webhook_id = $1 AND event_seq = $2 AND lease = $3",
        claim.delivery.webhook_id, claim.delivery.seq, claim.lease, status, next,
        outcome.http_status, outcome.error);
    if (r.affected() == 0) return false;
    // Done with this one: the next in its enrollment's line is due.
    if (!outcome.retry_at && claim.delivery.ordered && !claim.delivery.enrollment_id.empty())
        c.query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt = $3 WHERE "
            "webhook_id = $1 AND event_seq = (SELECT min(event_seq) FROM webhook_deliveries "
            "WHERE webhook_id = $1 AND enrollment_id = $2 AND status = 'waiting' AND ordered)",
            claim.delivery.webhook_id, claim.delivery.enrollment_id, to_unix(now));
    return true;
}

std::set<int64_t> lines_of(const std::vector<const ClaimedDelivery*>& claims) {
    std::set<int64_t> keys;
    for (const ClaimedDelivery* cd : claims)
        if (!cd->delivery.enrollment_id.empty())
            keys.insert(line_key(cd->delivery.webhook_id, cd->delivery.enrollment_id));
    return keys;
}

}  // namespace

Status PgStore::finish_delivery(const ClaimedDelivery& claim, const DeliveryOutcome& outcome,
                                SysTime now) {
    return write([&](Connection& c) {
        lock_lines(c, lines_of({&claim}));
        if (!finish_in(c, claim, outcome, now)) return conflict("delivery lease lost");
        return Status::ok();
    });
}

Status PgStore::finish_deliveries(
    const std::vector<std::pair<ClaimedDelivery, DeliveryOutcome>>& batch, SysTime now) {
    if (batch.empty()) return Status::ok();
    std::vector<const ClaimedDelivery*> claims;
    for (const auto& [claim, outcome] : batch) claims.push_back(&claim);
    return write([&](Connection& c) {
        lock_lines(c, lines_of(claims));
        for (const auto& [claim, outcome] : batch) (void)finish_in(c, claim, outcome, now);
        return Status::ok();
    });
}

Result<PageOf<Delivery>> PgStore::list_deliveries(const std::string& webhook_id,
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
    int64_t limit = pg::clamp_limit(page.limit);
    std::optional<std::string> want;
    if (status) want = delivery_status_name(*status);
    static const std::string sql = fmt::format(
        "SELECT {} FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq "
        "WHERE d.webhook_id = $1 AND ($2::text IS NULL OR d.status = $2 OR ($2 = 'pending' AND "
        "d.status = 'waiting')) AND ($3::bigint IS NULL OR d.event_seq < $3) "
        "ORDER BY d.event_seq DESC LIMIT $4",
        kDeliveryColumns);
    PageOf<Delivery> out;
    bool known = false;
    Status s = run(
        [&](Connection& c) {
            out.items.clear();
            known = !c.query("SELECT 1 FROM webhooks WHERE id = $1", webhook_id).empty();
            if (!known) return Status::ok();
            auto r = c.query(sql, webhook_id, want, before, limit + 1);
            for (int i = 0; i < r.size(); ++i) out.items.push_back(delivery_row(r, i));
            return Status::ok();
        },
        true);
    if (!s) return s;
    if (!known) return not_found("no webhook " + webhook_id);
    if (static_cast<int64_t>(out.items.size()) > limit) {
        out.items.pop_back();
        out.next_cursor = hex_encode(std::to_string(out.items.back().seq));
    }
    return out;
}

Status PgStore::retry_delivery(const std::string& webhook_id, const std::string& event_id,
                               SysTime now) {
    return write([&](Connection& c) {
        auto r = c.query(
            "SELECT d.event_seq, d.status FROM webhook_deliveries d JOIN webhook_events e ON "
            "e.seq = d.event_seq WHERE d.webhook_id = $1 AND e.event_id = $2 FOR UPDATE OF d",
            webhook_id, event_id);
        if (r.empty()) return not_found("no delivery of event " + event_id + " to " + webhook_id);
        int64_t seq = r.int64(0, 0);
        std::string status = r.str(0, 1);
        if (status != "failed")
            return conflict("delivery of event " + event_id + " is " + status +
                            ", not failed: nothing to retry");
        c.query(
            "UPDATE webhook_deliveries SET status = 'pending', ordered = false, next_attempt = "
            "$3, deadline = $4, lease = NULL, lease_until = NULL WHERE webhook_id = $1 AND "
            "event_seq = $2",
            webhook_id, seq, to_unix(now), to_unix(now) + kDeliveryWindowSeconds);
        return Status::ok();
    });
}

Result<std::map<std::string, int64_t>> PgStore::webhook_backlog() {
    std::map<std::string, int64_t> out;
    Status s = run(
        [&](Connection& c) {
            out.clear();
            auto r = c.query(
                "SELECT w.id, (SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = "
                "w.id AND d.status IN ('pending', 'waiting')) FROM webhooks w");
            for (int i = 0; i < r.size(); ++i) out[r.str(i, 0)] = r.int64(i, 1);
            return Status::ok();
        },
        true);
    if (!s) return s;
    return out;
}

Result<int64_t> PgStore::prune_deliveries(SysTime before) {
    int64_t pruned = 0;
    Status s = write([&](Connection& c) {
        pruned = c.query(
                      "DELETE FROM webhook_deliveries WHERE status = 'delivered' AND event_seq IN "
                      "(SELECT seq FROM webhook_events WHERE created_at < $1)",
                      to_unix(before))
                     .affected();
        c.query(
            "DELETE FROM webhook_events e WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM "
            "webhook_deliveries d WHERE d.event_seq = e.seq)",
            to_unix(before));
        return Status::ok();
    });
    if (!s) return s;
    return pruned;
}

}  // namespace courier::db
