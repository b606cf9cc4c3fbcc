// PgStore: push certificates, push attempts, the pending push and the
// re-push schedule, whose sweep is claimed (FOR UPDATE SKIP LOCKED) so each
// due push is sent by one node.
#include <fmt/format.h>

#include <map>

#include "db/postgres/pg_internal.h"
#include "db/postgres/pg_store.h"

namespace courier::db {

using pg::Connection;
using pg::Rows;

namespace {

constexpr const char* kPushCertColumns =
    "id, topic, cert_pem, key_pem, thumbprint_sha1, not_before, not_after, uploaded_at, "
    "replaced_at, active, usable, unusable_reason";

PushCert push_cert_from_row(const Rows& r, int i) {
    PushCert p;
    p.id = r.int64(i, 0);
    p.topic = r.str(i, 1);
    p.cert_pem = r.str(i, 2);
    p.key_pem = r.str(i, 3);
    p.thumbprint_sha1 = r.str(i, 4);
    p.not_before = from_unix(r.int64(i, 5));
    p.not_after = from_unix(r.int64(i, 6));
    p.uploaded_at = from_unix(r.int64(i, 7));
    if (auto v = r.opt_int64(i, 8)) p.replaced_at = from_unix(*v);
    p.active = r.boolean(i, 9);
    p.usable = r.boolean(i, 10);
    p.unusable_reason = r.str(i, 11);
    return p;
}

std::string push_attempt_detail(const PushAttempt& a) {
    if (a.http_status == 0) return fmt::format("push not delivered: {}", a.reason);
    if (a.http_status == 200) return fmt::format("push sent, apns-id {}", a.apns_id);
    return fmt::format("push refused by APNs: {} {}", a.http_status, a.reason);
}

std::vector<PushCert> certs_of(const Rows& r) {
    std::vector<PushCert> out;
    for (int i = 0; i < r.size(); ++i) out.push_back(push_cert_from_row(r, i));
    return out;
}

}  // namespace

Result<int64_t> PgStore::put_push_cert(const PushCert& cert, SysTime now) {
    if (cert.topic.empty()) return invalid("push certificate topic missing");
    int64_t id = 0;
    Status s = write([&](Connection& c) {
        // Renewals of one topic from two nodes take turns.
        c.query("SELECT pg_advisory_xact_lock(1668248179, hashtext($1))", cert.topic);
        auto replaced = c.query(
            "UPDATE push_certs SET active = false, replaced_at = $2 WHERE topic = $1 AND active",
            cert.topic, to_unix(now));
        if (replaced.affected() == 0) pg::note_no_effect();  // no predecessor: not a renewal
        id = c.query(
                  "INSERT INTO push_certs (topic, cert_pem, key_pem, thumbprint_sha1, not_before, "
                  "not_after, uploaded_at, active, usable, unusable_reason) "
                  "VALUES ($1, $2, $3, $4, $5, $6, $7, true, true, '') RETURNING id",
                  cert.topic, cert.cert_pem, cert.key_pem, cert.thumbprint_sha1,
                  to_unix(cert.not_before), to_unix(cert.not_after), to_unix(now))
                 .int64(0, 0);
        return Status::ok();
    });
    if (!s) return s;
    return id;
}

Result<std::vector<PushCert>> PgStore::active_push_certs() {
    std::vector<PushCert> out;
    Status s = run(
        [&](Connection& c) {
            static const std::string sql = fmt::format(
                "SELECT {} FROM push_certs WHERE active ORDER BY uploaded_at DESC, id DESC",
                kPushCertColumns);
            out = certs_of(c.query(sql));
            return Status::ok();
        },
        true);
    if (!s) return s;
    return out;
}

Result<std::optional<PushCert>> PgStore::active_push_cert(const std::string& topic) {
    std::optional<PushCert> out;
    Status s = run(
        [&](Connection& c) {
            static const std::string sql = fmt::format(
                "SELECT {} FROM push_certs WHERE active AND topic = $1", kPushCertColumns);
            auto r = c.query(sql, topic);
            out.reset();
            if (!r.empty()) out = push_cert_from_row(r, 0);
            return Status::ok();
        },
        true);
    if (!s) return s;
    return out;
}

Result<std::vector<PushCert>> PgStore::push_cert_history() {
    std::vector<PushCert> out;
    Status s = run(
        [&](Connection& c) {
            static const std::string sql =
                fmt::format("SELECT {} FROM push_certs ORDER BY id DESC", kPushCertColumns);
            out = certs_of(c.query(sql));
            return Status::ok();
        },
        true);
    if (!s) return s;
    return out;
}

Status PgStore::mark_push_cert_unusable(int64_t id, const std::string& reason) {
    return write([&](Connection& c) {
        auto r = c.query("UPDATE push_certs SET usable = false, unusable_reason = $2 WHERE id = $1",
                         id, reason);
        if (r.affected() == 0) return not_found(fmt::format("no push certificate {}", id));
        return Status::ok();
    });
}

namespace {

// An enrollment whose queue emptied meanwhile leaves the schedule instead.
// Rows changed.
int64_t set_repush(Connection& c, const std::string& id, SysTime at, int attempts) {
    static const std::string sql = fmt::format(
        "UPDATE enrollments e SET "
        "repush_at = CASE WHEN o.open THEN $2::bigint ELSE NULL END, "
        "repush_attempts = CASE WHEN o.open THEN $3::integer ELSE 0 END "
        "FROM (SELECT EXISTS (SELECT 1 FROM targets WHERE enrollment_id = $1 AND status IN {}) "
        "AS open) o WHERE e.id = $1",
        pg::kOpenStatuses);
    return c.query(sql, id, to_unix(at), attempts).affected();
}

void insert_attempt(Connection& c, const PushAttempt& a) {
    c.query(
        "INSERT INTO push_attempts (enrollment_id, at, http_status, apns_id, reason) "
        "VALUES ($1, $2, $3, $4, $5)",
        a.enrollment_id, to_unix(a.at), a.http_status, a.apns_id, a.reason);
    pg::add_event(c, a.enrollment_id, a.at, "push", push_attempt_detail(a));
}

}  // namespace

Status PgStore::record_push_attempt(const PushAttempt& a) {
    return write([&](Connection& c) {
        insert_attempt(c, a);
        return Status::ok();
    });
}

Status PgStore::mark_token_invalid(const std::string& id, SysTime now) {
    return write([&](Connection& c) {
        auto r = c.query(
            "UPDATE enrollments SET token_valid = false, updated_at = $2, repush_at = NULL, "
            "repush_attempts = 0 WHERE id = $1",
            id, to_unix(now));
        if (r.affected() == 0) return not_found("no enrollment " + id);
        pg::add_event(c, id, now, "push",
                      "push token marked invalid; no pushes until the next TokenUpdate");
        return Status::ok();
    });
}

namespace pg {

void arm_pushes(Connection& c, const std::vector<std::string>& ids, SysTime now) {
    if (ids.empty()) return;
    c.query(
        "UPDATE enrollments e SET pending_push_apns_id = '', pending_push_until = $2 FROM "
        "(SELECT id FROM enrollments WHERE id = ANY($1::text[]) AND (pending_push_until IS NULL "
        "OR pending_push_until <= $3 OR pending_push_apns_id IS NULL OR pending_push_apns_id = '') "
        "ORDER BY id FOR NO KEY UPDATE) d WHERE e.id = d.id",
        pg::TextArray{&ids}, to_unix(now + kPushArmWindow), to_unix(now));
}

}  // namespace pg

Status PgStore::arm_pushes(const std::vector<std::string>& ids, SysTime now) {
    if (ids.empty()) return Status::ok();
    return write([&](Connection& c) {
        pg::arm_pushes(c, ids, now);
        return Status::ok();
    });
}

Status PgStore::record_push_outcomes(const std::vector<PushOutcomeRecord>& batch) {
    if (batch.empty()) return Status::ok();
    // Enrollment rows are updated in id order, so batches from several
    // nodes (and last-seen flushes) lock them in one order.
    std::vector<size_t> order(batch.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return batch[a].attempt.enrollment_id < batch[b].attempt.enrollment_id;
    });
    return write([&](Connection& c) {
        // A device seen after its push was sent has already come: on any
        // node, its request disarmed the push (PushStore::arm_pushes), so
        // only armed rows are marked; also, as SqliteStore does, to the
        // millisecond from this node's memory, else by whole seconds from
        // the row (a later second).
        std::vector<bool> seen_since(batch.size(), false);
        {
            std::lock_guard lk(seen_mu_);
            for (size_t i = 0; i < batch.size(); ++i) {
                if (!batch[i].pending_until) continue;
                seen_since[i] = seen_ms_locked(batch[i].attempt.enrollment_id) >
                                batch[i].sent_at.time_since_epoch().count();
            }
        }
        // A handful of statements for the whole batch (each column an
        // array), not four round trips per answer: waking 1,000 devices
        // records its answers in one short transaction.
        std::vector<std::string> ids, apns_ids, reasons, details;
        std::vector<int64_t> ats, statuses;
        for (size_t i : order) {
            const auto& a = batch[i].attempt;
            ids.push_back(a.enrollment_id);
            apns_ids.push_back(a.apns_id);
            reasons.push_back(a.reason);
            details.push_back(push_attempt_detail(a));
            ats.push_back(to_unix(a.at));
            statuses.push_back(a.http_status);
        }
        c.query(
            "INSERT INTO push_attempts (enrollment_id, at, http_status, apns_id, reason) "
            "SELECT * FROM unnest($1::text[], $2::bigint[], $3::integer[], $4::text[], "
            "$5::text[])",
            pg::TextArray{&ids}, pg::Int64Array{&ats}, pg::Int64Array{&statuses},
            pg::TextArray{&apns_ids}, pg::TextArray{&reasons});
        c.query(
            "INSERT INTO timeline (enrollment_id, at, kind, detail) "
            "SELECT id, at, 'push', d FROM unnest($1::text[], $2::bigint[], $3::text[]) AS "
            "v(id, at, d)",
            pg::TextArray{&ids}, pg::Int64Array{&ats}, pg::TextArray{&details});
        // Schedules and marks: as if applied one record after another, the
        // last record of an enrollment sets its schedule, the last marking
        // one its pending push.
        std::map<std::string, size_t> last_schedule, last_mark;
        for (size_t i : order) {
            last_schedule[batch[i].attempt.enrollment_id] = i;
            if (batch[i].pending_until && !seen_since[i])
                last_mark[batch[i].attempt.enrollment_id] = i;
        }
        std::vector<std::string> s_ids;
        std::vector<int64_t> s_at, s_attempts;
        for (const auto& [id, i] : last_schedule) {
            s_ids.push_back(id);
            s_at.push_back(to_unix(batch[i].repush_at));
            s_attempts.push_back(batch[i].attempts);
        }
        static const std::string schedule_sql = fmt::format(
            "UPDATE enrollments e SET "
            "repush_at = CASE WHEN o.open THEN v.at ELSE NULL END, "
            "repush_attempts = CASE WHEN o.open THEN v.attempts::integer ELSE 0 END "
            "FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v(id, at, attempts) "
            "CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM targets t WHERE "
            "t.enrollment_id = v.id AND t.status IN {}) AS open) o WHERE e.id = v.id",
            pg::kOpenStatuses);
        c.query(schedule_sql, pg::TextArray{&s_ids}, pg::Int64Array{&s_at},
                pg::Int64Array{&s_attempts});
        if (!last_mark.empty()) {
            std::vector<std::string> m_ids, m_apns;
            std::vector<int64_t> m_until, m_sent;
            for (const auto& [id, i] : last_mark) {
                m_ids.push_back(id);
                m_apns.push_back(batch[i].attempt.apns_id);
                m_until.push_back(to_unix(*batch[i].pending_until));
                m_sent.push_back(
                    to_unix(std::chrono::floor<std::chrono::seconds>(batch[i].sent_at)));
            }
            c.query(
                "UPDATE enrollments e SET pending_push_apns_id = v.apns_id, "
                "pending_push_until = v.until FROM unnest($1::text[], $2::text[], $3::bigint[], "
                "$4::bigint[]) AS v(id, apns_id, until, sent) WHERE e.id = v.id AND "
                "e.pending_push_until IS NOT NULL AND (e.last_seen IS NULL OR e.last_seen <= "
                "v.sent)",
                pg::TextArray{&m_ids}, pg::TextArray{&m_apns}, pg::Int64Array{&m_until},
                pg::Int64Array{&m_sent});
        }
        return Status::ok();
    });
}

Status PgStore::schedule_repush(const std::string& id, SysTime at, int attempts) {
    return write([&](Connection& c) {
        if (set_repush(c, id, at, attempts) == 0) return not_found("no enrollment " + id);
        return Status::ok();
    });
}

Result<std::vector<RepushDue>> PgStore::due_repushes(SysTime now, size_t limit) {
    std::vector<RepushDue> out;
    Status s = run(
        [&](Connection& c) {
            out.clear();
            auto r = c.query(
                "SELECT id, repush_attempts FROM enrollments WHERE repush_at IS NOT NULL AND "
                "repush_at <= $1 ORDER BY repush_at, id LIMIT $2",
                to_unix(now), static_cast<int64_t>(std::min<size_t>(limit, 100000)));
            for (int i = 0; i < r.size(); ++i)
                out.push_back({r.str(i, 0), static_cast<int>(r.int64(i, 1))});
            return Status::ok();
        },
        true);
    if (!s) return s;
    return out;
}

Result<std::vector<RepushDue>> PgStore::claim_due_repushes(SysTime now, size_t limit) {
    std::vector<RepushDue> out;
    Status s = write([&](Connection& c) {
        out.clear();
        // Rows another node is claiming right now are skipped, not waited
        // for; a claimed row's due time moves past the lease, so no node
        // claims it again until its push's outcome reschedules it (or the
        // lease runs out: the node that claimed it died).
        auto r = c.query(
            "UPDATE enrollments e SET repush_at = $3 FROM (SELECT id FROM enrollments WHERE "
            "repush_at IS NOT NULL AND repush_at <= $1 ORDER BY repush_at, id LIMIT $2 "
            "FOR UPDATE SKIP LOCKED) d WHERE e.id = d.id RETURNING e.id, e.repush_attempts",
            to_unix(now), static_cast<int64_t>(std::min<size_t>(limit, 100000)),
            to_unix(now + options_.repush_lease));
        for (int i = 0; i < r.size(); ++i)
            out.push_back({r.str(i, 0), static_cast<int>(r.int64(i, 1))});
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

}  // namespace courier::db
