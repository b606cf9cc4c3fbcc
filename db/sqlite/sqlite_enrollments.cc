// SqliteStore: enrollments and the timeline (bindings: sqlite_bindings.cc).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "common/encoding.h"
#include "db/sqlite/sqlite_internal.h"
#include "db/sqlite/sqlite_store.h"

namespace courier::db {

using sqlite::Blob;
using sqlite::Connection;
using sqlite::opt_unix;
using sqlite::Statement;

namespace sqlite {

std::optional<EnrollmentState> parse_state(std::string_view s) {
    for (auto st : {EnrollmentState::kPending, EnrollmentState::kEnrolled,
                    EnrollmentState::kUnenrolled, EnrollmentState::kRetired}) {
        if (s == state_name(st)) return st;
    }
    return std::nullopt;
}

void add_event(Connection& c, const std::string& id, SysTime at, std::string_view kind,
               const std::string& detail) {
    c.prepare("INSERT INTO timeline (enrollment_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)")
        .bind(id, to_unix(at), kind, detail)
        .run();
}

int64_t cancel_open_targets(Connection& c, const std::string& id, SysTime now) {
    c.prepare(fmt::format("UPDATE targets SET status = 'canceled', updated_at = ?2 "
                          "WHERE enrollment_id = ?1 AND status IN {}",
                          kOpenStatuses))
        .bind(id, to_unix(now))
        .run();
    return c.changes();
}

int64_t open_target_count(Connection& c, const std::string& id) {
    auto st = c.prepare(fmt::format(
        "SELECT count(*) FROM targets WHERE enrollment_id = ?1 AND status IN {}", kOpenStatuses));
    st.bind(id);
    return st.step() ? st.int64(0) : 0;
}

void clear_repush_if_idle(Connection& c, const std::string& id) {
    if (open_target_count(c, id) > 0) return;
    c.prepare(
         "UPDATE enrollments SET repush_at = NULL, repush_attempts = 0 "
         "WHERE id = ?1 AND repush_at IS NOT NULL")
        .bind(id)
        .run();
}

int64_t clamp_limit(int64_t limit) {
    return std::clamp<int64_t>(limit, 1, 1000);
}

}  // namespace sqlite

namespace {

// One enrollment's secret (`column`: unlock_token or bootstrap_token), absent
// when NULL; kNotFound without the enrollment.
Status read_secret(Connection& c, std::string_view column, const std::string& id,
                   std::optional<std::string>* out) {
    auto st = c.prepare(fmt::format("SELECT {} FROM enrollments WHERE id = ?1", column));
    st.bind(id);
    if (!st.step()) return not_found("no enrollment " + id);
    if (!st.is_null(0)) *out = st.str(0);
    return Status::ok();
}

// The columns enrollment_from_row reads: head, the open-target count
// (`queued`), tail.
constexpr std::string_view kEnrollmentHead =
    "id, device_id, user_id, type, udid, serial_number, model, model_name, product_name, "
    "os_version, build_version, device_name, imei, meid, topic, push_token, push_magic, "
    "unlock_token IS NOT NULL, token_valid, awaiting_configuration, state, created_at, "
    "updated_at, last_seen, identity_not_after, ";
constexpr std::string_view kOpenTargetCount =
    "(SELECT count(*) FROM targets t WHERE t.enrollment_id = e.id AND "
    "t.status IN ('queued','sent','notnow'))";
constexpr std::string_view kEnrollmentTail =
    ", facts_truncated, pending_push_apns_id, pending_push_until";
const std::string kEnrollmentColumns =
    fmt::format("{}{}{}", kEnrollmentHead, kOpenTargetCount, kEnrollmentTail);

Enrollment enrollment_from_row(const Statement& st) {
    Enrollment e;
    int i = 0;
    for (std::string* f :
         {&e.id, &e.device_id, &e.user_id, &e.type, &e.udid, &e.serial_number, &e.model,
          &e.model_name, &e.product_name, &e.os_version, &e.build_version, &e.device_name, &e.imei,
          &e.meid, &e.topic, &e.push_token, &e.push_magic}) {
        *f = st.str(i++);
    }
    e.has_unlock_token = st.int64(i++) != 0;
    e.token_valid = st.int64(i++) != 0;
    e.awaiting_configuration = st.int64(i++) != 0;
    e.state = sqlite::parse_state(st.str(i++)).value_or(EnrollmentState::kPending);
    e.created_at = from_unix(st.int64(i++));
    e.updated_at = from_unix(st.int64(i++));
    if (auto v = st.opt_int64(i++)) e.last_seen = from_unix(*v);
    if (auto v = st.opt_int64(i++)) e.identity_not_after = from_unix(*v);
    e.queued = st.int64(i++);
    e.facts_truncated = st.int64(i++) != 0;
    e.pending_push_apns_id = st.str(i++);
    if (auto v = st.opt_int64(i++)) e.pending_push_until = from_unix(*v);
    return e;
}

}  // namespace

Status SqliteStore::apply_authenticate(const AuthenticateInput& in, SysTime now) {
    if (in.id.empty() || in.device_id.empty()) return invalid("enrollment id missing");
    return write([&](Connection& c) {
        auto existing = c.prepare("SELECT state FROM enrollments WHERE id = ?1");
        existing.bind(in.id);
        bool known = existing.step();
        existing.reset();
        // A retired enrollment stays retired: only an administrator lifts it.
        c.prepare(
             "INSERT INTO enrollments (id, device_id, user_id, type, udid, serial_number, model, "
             "model_name, product_name, os_version, build_version, device_name, imei, meid, "
             "topic, state, created_at, updated_at, identity_not_after) VALUES (?1, ?2, ?3, ?4, "
             "?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 'pending', ?16, ?16, ?17) "
             "ON CONFLICT(id) DO UPDATE SET device_id = excluded.device_id, user_id = "
             "excluded.user_id, type = excluded.type, udid = excluded.udid, serial_number = "
             "excluded.serial_number, model = excluded.model, model_name = excluded.model_name, "
             "product_name = excluded.product_name, os_version = excluded.os_version, "
             "build_version = excluded.build_version, device_name = excluded.device_name, "
             "imei = excluded.imei, meid = excluded.meid, topic = excluded.topic, "
             "push_token = NULL, push_magic = NULL, token_valid = 0, token_update_tally = 0, "
             "state = CASE WHEN state = 'retired' THEN 'retired' ELSE 'pending' END, "
             "updated_at = excluded.updated_at, repush_at = NULL, repush_attempts = 0, "
             "identity_not_after = coalesce(excluded.identity_not_after, identity_not_after)")
            .bind(in.id, in.device_id, in.user_id, in.type, in.udid, in.serial_number, in.model,
                  in.model_name, in.product_name, in.os_version, in.build_version, in.device_name,
                  in.imei, in.meid, in.topic, to_unix(now), opt_unix(in.cert_not_after))
            .run();
        c.prepare("UPDATE enrollments SET facts_truncated = ?2 WHERE id = ?1")
            .bind(in.id, in.facts_truncated)
            .run();
        int64_t canceled = sqlite::cancel_open_targets(c, in.id, now);
        std::string detail = known ? "Authenticate: enrollment started afresh" : "Authenticate";
        if (canceled > 0) detail += fmt::format(", {} pending command(s) canceled", canceled);
        sqlite::add_event(c, in.id, now, "checkin", detail);
        if (in.cert_sha256.empty()) return Status::ok();
        sqlite::BindPolicy policy;
        policy.quiet_period = in.approval_quiet_period;
        policy.last_used = [this](const std::string& cert) -> int64_t {
            std::lock_guard lk(seen_mu_);  // uses not flushed yet
            auto it = binding_used_.find(cert);
            return it == binding_used_.end() ? 0 : it->second;
        };
        return sqlite::bind_cert_in(c, in.cert_sha256, in.device_id, in.cert_not_after, now,
                                    policy);
    });
}

namespace {

// docs/security.md "Re-binding": a device request's write lands only while the
// certificate it presented is still the device's active binding, checked in
// the write's own transaction: a revoke or supersede that committed after the
// caller's check wins, and the write changes nothing.
Status require_active_binding(Connection& c, const std::string& cert_sha256,
                              const std::string& device_id) {
    if (cert_sha256.empty()) return Status::ok();  // not a device request
    auto st = c.prepare(
        "SELECT 1 FROM cert_bindings WHERE cert_sha256 = ?1 AND device_id = ?2 AND "
        "state = 'active'");
    st.bind(cert_sha256, device_id);
    if (st.step()) return Status::ok();
    return conflict("identity certificate is no longer the active binding of " + device_id +
                    " (revoked or superseded)");
}

}  // namespace

Status SqliteStore::apply_token_update(const TokenUpdateInput& in, SysTime now) {
    if (in.id.empty() || in.device_id.empty()) return invalid("enrollment id missing");
    std::optional<Blob> unlock;
    if (in.unlock_token) unlock = Blob{*in.unlock_token};
    return write([&](Connection& c) {
        if (Status b = require_active_binding(c, in.cert_sha256, in.device_id); !b.is_ok())
            return b;
        if (!in.user_id.empty()) {  // docs/security.md "Input limits": at most kMaxUserChannels
            auto known = c.prepare("SELECT 1 FROM enrollments WHERE id = ?1");
            known.bind(in.id);
            if (!known.step()) {
                known.reset();
                auto count = c.prepare(
                    "SELECT count(*) FROM enrollments WHERE device_id = ?1 AND user_id <> ''");
                count.bind(in.device_id);
                int64_t users = count.step() ? count.int64(0) : 0;
                if (users >= kMaxUserChannels)
                    return Status(Code::kTooLarge,
                                  fmt::format("device has {} user channels already (at most {}); "
                                              "no new one is made",
                                              users, kMaxUserChannels));
            }
        }
        c.prepare(
             "INSERT INTO enrollments (id, device_id, user_id, type, topic, push_token, "
             "push_magic, unlock_token, token_valid, awaiting_configuration, state, created_at, "
             "updated_at, identity_not_after, token_update_tally) VALUES (?1, ?2, ?3, ?4, ?5, "
             "?6, ?7, ?8, 1, ?9, 'enrolled', ?10, ?10, ?11, 1) "
             "ON CONFLICT(id) DO UPDATE SET token_update_tally = token_update_tally + 1, "
             "topic = excluded.topic, push_token = "
             "excluded.push_token, push_magic = excluded.push_magic, unlock_token = "
             "coalesce(excluded.unlock_token, unlock_token), token_valid = 1, "
             "awaiting_configuration = excluded.awaiting_configuration, "
             "type = CASE WHEN excluded.type <> '' THEN excluded.type ELSE type END, "
             "state = CASE WHEN state = 'retired' THEN 'retired' ELSE 'enrolled' END, "
             "updated_at = excluded.updated_at, "
             "identity_not_after = coalesce(excluded.identity_not_after, identity_not_after)")
            .bind(in.id, in.device_id, in.user_id, in.type, in.topic, Blob{in.push_token},
                  in.push_magic, unlock, in.awaiting_configuration, to_unix(now),
                  opt_unix(in.cert_not_after))
            .run();
        // A fresh token resets the backoff: anything undelivered is due now.
        bool open = sqlite::open_target_count(c, in.id) > 0;
        c.prepare(
             "UPDATE enrollments SET repush_attempts = 0, repush_at = ?2, "
             "pending_push_apns_id = NULL, pending_push_until = NULL WHERE id = ?1")
            .bind(in.id, open ? std::optional<int64_t>(to_unix(now)) : std::nullopt)
            .run();
        sqlite::add_event(c, in.id, now, "checkin",
                          in.unlock_token ? "TokenUpdate: push token and unlock token stored"
                                          : "TokenUpdate: push token stored");
        return Status::ok();
    });
}

Status SqliteStore::apply_checkout(const std::string& id, SysTime now) {
    return write([&](Connection& c) {
        c.prepare(
             "UPDATE enrollments SET state = 'unenrolled', updated_at = ?2, repush_at = NULL, "
             "repush_attempts = 0 WHERE id = ?1")
            .bind(id, to_unix(now))
            .run();
        if (c.changes() == 0) return not_found("no enrollment " + id);
        int64_t canceled = sqlite::cancel_open_targets(c, id, now);
        sqlite::add_event(
            c, id, now, "checkin",
            fmt::format("CheckOut: unenrolled, {} pending command(s) canceled", canceled));
        return Status::ok();
    });
}

Result<Enrollment> SqliteStore::enrollment(const std::string& id) {
    static const std::string sql =
        fmt::format("SELECT {} FROM enrollments e WHERE id = ?1", kEnrollmentColumns);
    return enrollment_by(sql, id);
}

Result<Enrollment> SqliteStore::enrollment_state(const std::string& id) {
    // 0 for the open-target count.
    static const std::string sql = fmt::format("SELECT {}0{} FROM enrollments e WHERE id = ?1",
                                               kEnrollmentHead, kEnrollmentTail);
    return enrollment_by(sql, id);
}

Result<Enrollment> SqliteStore::enrollment_by(const std::string& sql, const std::string& id) {
    Enrollment e;
    Status s = read([&](Connection& c) {
        auto st = c.prepare(sql);
        st.bind(id);
        if (!st.step()) return not_found("no enrollment " + id);
        e = enrollment_from_row(st);
        return Status::ok();
    });
    if (!s) return s;
    overlay_last_seen(e);
    return e;
}

Result<PageOf<Enrollment>> SqliteStore::list_enrollments(const EnrollmentFilter& f,
                                                         const Page& page) {
    std::string after;
    if (!page.cursor.empty()) {
        auto decoded = hex_decode(page.cursor);
        if (!decoded) return invalid("malformed cursor");
        after = *decoded;
    }
    int64_t limit = sqlite::clamp_limit(page.limit);
    // Fixed parameter numbers; an unused filter binds NULL and drops out.
    std::string sql = fmt::format(
        "SELECT {} FROM enrollments e WHERE id > ?1 AND (?2 IS NULL OR state = ?2) AND "
        "(?3 IS NULL OR topic = ?3) AND (?4 IS NULL OR serial_number = ?4) AND "
        "(?5 IS NULL OR last_seen >= ?5) AND (?7 IS NULL OR instr(lower(id), ?7) > 0 OR "
        "instr(lower(udid), ?7) > 0 OR instr(lower(serial_number), ?7) > 0 OR "
        "instr(lower(device_name), ?7) > 0) ORDER BY id LIMIT ?6",
        kEnrollmentColumns);
    auto opt_str = [](const std::string& v) {
        return v.empty() ? std::nullopt : std::optional<std::string>(v);
    };
    std::optional<std::string> state;
    if (f.state) state = state_name(*f.state);
    PageOf<Enrollment> out;
    Status s = read([&](Connection& c) {
        auto st = c.prepare(sql);
        std::string q = f.query;
        for (char& ch : q) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        st.bind(after, state, opt_str(f.topic), opt_str(f.serial_number), opt_unix(f.seen_since),
                limit + 1, opt_str(q));
        while (st.step()) out.items.push_back(enrollment_from_row(st));
        return Status::ok();
    });
    if (!s) return s;
    if (static_cast<int64_t>(out.items.size()) > limit) {
        out.items.pop_back();
        out.next_cursor = hex_encode(out.items.back().id);
    }
    for (auto& e : out.items) overlay_last_seen(e);
    return out;
}

Result<int64_t> SqliteStore::user_channel_count(const std::string& device_id) {
    int64_t n = 0;
    Status s = read([&](Connection& c) {
        auto st =
            c.prepare("SELECT count(*) FROM enrollments WHERE device_id = ?1 AND user_id <> ''");
        st.bind(device_id);
        if (st.step()) n = st.int64(0);
        return Status::ok();
    });
    if (!s) return s;
    return n;
}

Result<std::vector<std::string>> SqliteStore::existing_enrollments(
    const std::vector<std::string>& ids) {
    std::vector<std::string> out;
    Status s = read([&](Connection& c) {
        auto st = c.prepare("SELECT 1 FROM enrollments WHERE id = ?1");
        for (const auto& id : ids) {
            st.bind(id);
            if (st.step()) out.push_back(id);
            st.reset();
        }
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Result<std::optional<std::string>> SqliteStore::unlock_token(const std::string& id) {
    std::optional<std::string> out;
    Status s = read([&](Connection& c) { return read_secret(c, "unlock_token", id, &out); });
    if (!s) return s;
    return out;
}

Status SqliteStore::set_bootstrap_token(const std::string& id, const std::string& token,
                                        const std::string& cert_sha256) {
    return write([&](Connection& c) {
        if (!cert_sha256.empty()) {
            auto dev = c.prepare("SELECT device_id FROM enrollments WHERE id = ?1");
            dev.bind(id);
            if (!dev.step()) return not_found("no enrollment " + id);
            if (Status b = require_active_binding(c, cert_sha256, dev.str(0)); !b.is_ok()) return b;
        }
        c.prepare("UPDATE enrollments SET bootstrap_token = ?2, updated_at = ?3 WHERE id = ?1")
            .bind(id, Blob{token}, to_unix(clock_.now()))
            .run();
        if (c.changes() == 0) return not_found("no enrollment " + id);
        return Status::ok();
    });
}

Result<std::optional<std::string>> SqliteStore::bootstrap_token(const std::string& id) {
    std::optional<std::string> out;
    Status s = read([&](Connection& c) { return read_secret(c, "bootstrap_token", id, &out); });
    if (!s) return s;
    return out;
}

Status SqliteStore::set_retired(const std::string& id, bool retired, SysTime now) {
    return write([&](Connection& c) {
        auto st = c.prepare("SELECT state FROM enrollments WHERE id = ?1");
        st.bind(id);
        if (!st.step()) return not_found("no enrollment " + id);
        bool was_retired = st.str(0) == state_name(EnrollmentState::kRetired);
        st.reset();
        if (was_retired == retired) return Status::ok();
        if (!retired) {
            c.prepare("UPDATE enrollments SET state = 'pending', updated_at = ?2 WHERE id = ?1")
                .bind(id, to_unix(now))
                .run();
            sqlite::add_event(c, id, now, "retirement", "un-retired by an administrator");
            return Status::ok();
        }
        c.prepare(
             "UPDATE enrollments SET state = 'retired', updated_at = ?2, repush_at = NULL, "
             "repush_attempts = 0 WHERE id = ?1")
            .bind(id, to_unix(now))
            .run();
        int64_t canceled = sqlite::cancel_open_targets(c, id, now);
        sqlite::add_event(
            c, id, now, "retirement",
            fmt::format("retired by an administrator, {} pending command(s) canceled", canceled));
        return Status::ok();
    });
}

Status SqliteStore::append_timeline(const std::string& id, const TimelineEvent& e) {
    return write([&](Connection& c) {
        sqlite::add_event(c, id, e.at, e.kind, e.detail);
        return Status::ok();
    });
}

Result<std::vector<TimelineEvent>> SqliteStore::timeline(const std::string& id, size_t limit) {
    std::vector<TimelineEvent> out;
    Status s = read([&](Connection& c) {
        auto st = c.prepare(
            "SELECT at, kind, detail FROM timeline WHERE enrollment_id = ?1 "
            "ORDER BY at DESC, id DESC LIMIT ?2");
        st.bind(id, sqlite::clamp_limit(static_cast<int64_t>(std::min<size_t>(limit, 1000))));
        while (st.step()) out.push_back({from_unix(st.int64(0)), st.str(1), st.str(2)});
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

}  // namespace courier::db
