// SqliteStore: push certificates, push attempts, the re-push schedule and
// enrollment tokens.
#include <fmt/format.h>

#include "db/sqlite/sqlite_internal.h"
#include "db/sqlite/sqlite_store.h"

namespace courier::db {

using sqlite::Connection;
using sqlite::Statement;

namespace {

constexpr const char* kPushCertColumns =
    "id, topic, cert_pem, key_pem, thumbprint_sha1, not_before, not_after, uploaded_at, "
    "replaced_at, active, usable, unusable_reason";

PushCert push_cert_from_row(const Statement& st) {
    PushCert p;
    p.id = st.int64(0);
    p.topic = st.str(1);
    p.cert_pem = st.str(2);
    p.key_pem = st.str(3);
    p.thumbprint_sha1 = st.str(4);
    p.not_before = from_unix(st.int64(5));
    p.not_after = from_unix(st.int64(6));
    p.uploaded_at = from_unix(st.int64(7));
    if (auto v = st.opt_int64(8)) p.replaced_at = from_unix(*v);
    p.active = st.int64(9) != 0;
    p.usable = st.int64(10) != 0;
    p.unusable_reason = st.str(11);
    return p;
}

std::string push_attempt_detail(const PushAttempt& a) {
    if (a.http_status == 0) return fmt::format("push not delivered: {}", a.reason);
    if (a.http_status == 200) return fmt::format("push sent, apns-id {}", a.apns_id);
    return fmt::format("push refused by APNs: {} {}", a.http_status, a.reason);
}

}  // namespace

Result<int64_t> SqliteStore::put_push_cert(const PushCert& cert, SysTime now) {
    if (cert.topic.empty()) return invalid("push certificate topic missing");
    int64_t id = 0;
    Status s = write([&](Connection& c) {
        c.prepare(
             "UPDATE push_certs SET active = 0, replaced_at = ?2 WHERE topic = ?1 AND "
             "active = 1")
            .bind(cert.topic, to_unix(now))
            .run();
        if (c.changes() == 0) sqlite::note_no_effect();  // no predecessor: not a renewal
        c.prepare(
             "INSERT INTO push_certs (topic, cert_pem, key_pem, thumbprint_sha1, not_before, "
             "not_after, uploaded_at, active, usable, unusable_reason) "
             "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, 1, '')")
            .bind(cert.topic, cert.cert_pem, cert.key_pem, cert.thumbprint_sha1,
                  to_unix(cert.not_before), to_unix(cert.not_after), to_unix(now))
            .run();
        id = c.last_insert_rowid();
        return Status::ok();
    });
    if (!s) return s;
    return id;
}

Result<std::vector<PushCert>> SqliteStore::active_push_certs() {
    std::vector<PushCert> out;
    Status s = read([&](Connection& c) {
        auto st = c.prepare(fmt::format(
            "SELECT {} FROM push_certs WHERE active = 1 ORDER BY uploaded_at DESC, id DESC",
            kPushCertColumns));
        while (st.step()) out.push_back(push_cert_from_row(st));
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Result<std::optional<PushCert>> SqliteStore::active_push_cert(const std::string& topic) {
    std::optional<PushCert> out;
    Status s = read([&](Connection& c) {
        auto st = c.prepare(fmt::format("SELECT {} FROM push_certs WHERE active = 1 AND topic = ?1",
                                        kPushCertColumns));
        st.bind(topic);
        if (st.step()) out = push_cert_from_row(st);
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Result<std::vector<PushCert>> SqliteStore::push_cert_history() {
    std::vector<PushCert> out;
    Status s = read([&](Connection& c) {
        auto st =
            c.prepare(fmt::format("SELECT {} FROM push_certs ORDER BY id DESC", kPushCertColumns));
        while (st.step()) out.push_back(push_cert_from_row(st));
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Status SqliteStore::mark_push_cert_unusable(int64_t id, const std::string& reason) {
    return write([&](Connection& c) {
        c.prepare("UPDATE push_certs SET usable = 0, unusable_reason = ?2 WHERE id = ?1")
            .bind(id, reason)
            .run();
        if (c.changes() == 0) return not_found(fmt::format("no push certificate {}", id));
        return Status::ok();
    });
}

namespace {
// An enrollment whose queue emptied meanwhile (the device fetched its commands
// while the push was in flight) leaves the schedule instead. Rows changed.
int64_t set_repush(Connection& c, const std::string& id, SysTime at, int attempts) {
    static const std::string sql = fmt::format(
        "UPDATE enrollments SET "
        "repush_at = CASE WHEN EXISTS (SELECT 1 FROM targets WHERE enrollment_id = ?1 AND "
        "status IN {0}) THEN ?2 ELSE NULL END, "
        "repush_attempts = CASE WHEN EXISTS (SELECT 1 FROM targets WHERE enrollment_id = ?1 "
        "AND status IN {0}) THEN ?3 ELSE 0 END WHERE id = ?1",
        sqlite::kOpenStatuses);
    c.prepare(sql).bind(id, to_unix(at), attempts).run();
    return c.changes();
}

void insert_attempt(Connection& c, const PushAttempt& a) {
    c.prepare(
         "INSERT INTO push_attempts (enrollment_id, at, http_status, apns_id, reason) "
         "VALUES (?1, ?2, ?3, ?4, ?5)")
        .bind(a.enrollment_id, to_unix(a.at), a.http_status, a.apns_id, a.reason)
        .run();
    sqlite::add_event(c, a.enrollment_id, a.at, "push", push_attempt_detail(a));
}
}  // namespace

Status SqliteStore::record_push_attempt(const PushAttempt& a) {
    return write([&](Connection& c) {
        insert_attempt(c, a);
        return Status::ok();
    });
}

Status SqliteStore::mark_token_invalid(const std::string& id, SysTime now) {
    return write([&](Connection& c) {
        c.prepare(
             "UPDATE enrollments SET token_valid = 0, updated_at = ?2, repush_at = NULL, "
             "repush_attempts = 0 WHERE id = ?1")
            .bind(id, to_unix(now))
            .run();
        if (c.changes() == 0) return not_found("no enrollment " + id);
        sqlite::add_event(c, id, now, "push",
                          "push token marked invalid; no pushes until the next TokenUpdate");
        return Status::ok();
    });
}

namespace sqlite {

void arm_pushes(Connection& c, const std::vector<std::string>& ids, SysTime now) {
    if (ids.empty()) return;
    // A mark whose apns-id is set and still running is a pending push: left
    // as it is (GET /v1/push pushes anyway; its answer replaces the mark).
    auto arm = c.prepare(
        "UPDATE enrollments SET pending_push_apns_id = '', pending_push_until = ?2 "
        "WHERE id = ?1 AND (pending_push_until IS NULL OR pending_push_until <= ?3 OR "
        "pending_push_apns_id IS NULL OR pending_push_apns_id = '')");
    for (const auto& id : ids) arm.bind(id, to_unix(now + kPushArmWindow), to_unix(now)).run();
}

}  // namespace sqlite

Status SqliteStore::arm_pushes(const std::vector<std::string>& ids, SysTime now) {
    if (ids.empty()) return Status::ok();
    return write([&](Connection& c) {
        sqlite::arm_pushes(c, ids, now);
        return Status::ok();
    });
}

Status SqliteStore::record_push_outcomes(const std::vector<PushOutcomeRecord>& batch) {
    if (batch.empty()) return Status::ok();
    return write([&](Connection& c) {
        // A device seen after its push was sent has already come: its push
        // is not left pending. In this node's memory (unflushed, or flushed
        // within the last few seconds) last_seen is to the millisecond;
        // otherwise (or written by another node) it is whole seconds, and
        // only a later second counts (see docs/apns.md "Pending push"). Read
        // here, inside the transaction that marks, so a touch until just
        // before the mark is seen.
        std::vector<bool> seen_since(batch.size(), false);
        {
            std::lock_guard lk(seen_mu_);
            for (size_t i = 0; i < batch.size(); ++i) {
                if (!batch[i].pending_until) continue;
                seen_since[i] = seen_ms_locked(batch[i].attempt.enrollment_id) >
                                batch[i].sent_at.time_since_epoch().count();
            }
        }
        auto mark = c.prepare(
            "UPDATE enrollments SET pending_push_apns_id = ?2, pending_push_until = ?3 "
            "WHERE id = ?1 AND pending_push_until IS NOT NULL AND "
            "(last_seen IS NULL OR last_seen <= ?4)");
        for (size_t i = 0; i < batch.size(); ++i) {
            const auto& r = batch[i];
            insert_attempt(c, r.attempt);
            set_repush(c, r.attempt.enrollment_id, r.repush_at, r.attempts);
            if (r.pending_until && !seen_since[i])
                mark.bind(r.attempt.enrollment_id, r.attempt.apns_id, to_unix(*r.pending_until),
                          to_unix(std::chrono::floor<std::chrono::seconds>(r.sent_at)))
                    .run();
        }
        return Status::ok();
    });
}

Status SqliteStore::schedule_repush(const std::string& id, SysTime at, int attempts) {
    return write([&](Connection& c) {
        if (set_repush(c, id, at, attempts) == 0) return not_found("no enrollment " + id);
        return Status::ok();
    });
}

Result<std::vector<RepushDue>> SqliteStore::due_repushes(SysTime now, size_t limit) {
    std::vector<RepushDue> out;
    Status s = read([&](Connection& c) {
        auto st = c.prepare(
            "SELECT id, repush_attempts FROM enrollments WHERE repush_at IS NOT NULL AND "
            "repush_at <= ?1 ORDER BY repush_at, id LIMIT ?2");
        st.bind(to_unix(now), static_cast<int64_t>(std::min<size_t>(limit, 100000)));
        while (st.step()) out.push_back({st.str(0), static_cast<int>(st.int64(1))});
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Status SqliteStore::put_enrollment_token(const EnrollmentToken& t) {
    if (t.id.empty() || t.token_sha256.empty()) return invalid("enrollment token id missing");
    return write([&](Connection& c) {
        auto exists =
            c.prepare("SELECT 1 FROM enrollment_tokens WHERE id = ?1 OR token_sha256 = ?2");
        exists.bind(t.id, t.token_sha256);
        if (exists.step()) return conflict("enrollment token " + t.id + " already exists");
        exists.reset();
        c.prepare(
             "INSERT INTO enrollment_tokens (id, token_sha256, uses_left, expires_at, "
             "created_at, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .bind(t.id, t.token_sha256, t.uses_left,
                  t.expires_at ? std::optional<int64_t>(to_unix(*t.expires_at)) : std::nullopt,
                  to_unix(t.created_at), t.note)
            .run();
        return Status::ok();
    });
}

Result<std::vector<EnrollmentToken>> SqliteStore::enrollment_tokens() {
    std::vector<EnrollmentToken> out;
    Status s = read([&](Connection& c) {
        auto st = c.prepare(
            "SELECT id, token_sha256, uses_left, expires_at, created_at, note "
            "FROM enrollment_tokens ORDER BY created_at, id");
        while (st.step()) {
            EnrollmentToken t;
            t.id = st.str(0);
            t.token_sha256 = st.str(1);
            t.uses_left = st.int64(2);
            if (auto v = st.opt_int64(3)) t.expires_at = from_unix(*v);
            t.created_at = from_unix(st.int64(4));
            t.note = st.str(5);
            out.push_back(std::move(t));
        }
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Status SqliteStore::delete_enrollment_token(const std::string& id) {
    return write([&](Connection& c) {
        c.prepare("DELETE FROM enrollment_tokens WHERE id = ?1").bind(id).run();
        if (c.changes() == 0) return not_found("no enrollment token " + id);
        return Status::ok();
    });
}

Status SqliteStore::consume_enrollment_token(const std::string& token_sha256, SysTime now) {
    return write([&](Connection& c) {
        // One statement: the check and the use cannot be separated.
        c.prepare(
             "UPDATE enrollment_tokens SET uses_left = CASE WHEN uses_left < 0 THEN uses_left "
             "ELSE uses_left - 1 END WHERE token_sha256 = ?1 AND uses_left <> 0 AND "
             "(expires_at IS NULL OR expires_at > ?2)")
            .bind(token_sha256, to_unix(now))
            .run();
        if (c.changes() == 0) {
            return Status(Code::kForbidden, "enrollment token unknown, expired or used up");
        }
        return Status::ok();
    });
}

Status SqliteStore::release_enrollment_token(const std::string& token_sha256) {
    return write([&](Connection& c) {
        c.prepare(
             "UPDATE enrollment_tokens SET uses_left = uses_left + 1 WHERE token_sha256 = ?1 "
             "AND uses_left >= 0")
            .bind(token_sha256)
            .run();
        return Status::ok();
    });
}

}  // namespace courier::db
