// PgStore: enrollments and the timeline (bindings: pg_bindings.cc).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <unordered_set>

#include "common/encoding.h"
#include "db/postgres/pg_internal.h"
#include "db/postgres/pg_store.h"

namespace courier::db {

using pg::Bytes;
using pg::Connection;
using pg::opt_unix;
using pg::Rows;

namespace pg {

std::optional<EnrollmentState> parse_state(std::string_view s) {
    for (auto st : {EnrollmentState::kPending, EnrollmentState::kEnrolled,
                    EnrollmentState::kUnenrolled, EnrollmentState::kRetired}) {
        if (s == state_name(st)) return st;
    }
    return std::nullopt;
}

void add_event(Connection& c, const std::string& id, SysTime at, std::string_view kind,
               const std::string& detail) {
    c.query("INSERT INTO timeline (enrollment_id, at, kind, detail) VALUES ($1, $2, $3, $4)", id,
            to_unix(at), kind, detail);
}

int64_t cancel_open_targets(Connection& c, const std::string& id, SysTime now) {
    static const std::string sql = fmt::format(
        "UPDATE targets SET status = 'canceled', updated_at = $2 "
        "WHERE enrollment_id = $1 AND status IN {}",
        kOpenStatuses);
    return c.query(sql, id, to_unix(now)).affected();
}

int64_t open_target_count(Connection& c, const std::string& id) {
    static const std::string sql = fmt::format(
        "SELECT count(*) FROM targets WHERE enrollment_id = $1 AND status IN {}", kOpenStatuses);
    return c.query(sql, id).int64(0, 0);
}

void clear_repush_if_idle(Connection& c, const std::string& id) {
    if (open_target_count(c, id) > 0) return;
    c.query(
        "UPDATE enrollments SET repush_at = NULL, repush_attempts = 0 "
        "WHERE id = $1 AND repush_at IS NOT NULL",
        id);
}

bool lock_enrollment(Connection& c, const std::string& id) {
    return !c.query("SELECT 1 FROM enrollments WHERE id = $1 FOR UPDATE", id).empty();
}

std::optional<bool> lock_enrollment_pending(Connection& c, const std::string& id) {
    auto r = c.query(
        "SELECT pending_push_until IS NOT NULL FROM enrollments WHERE id = $1 FOR UPDATE", id);
    if (r.empty()) return std::nullopt;
    return r.boolean(0, 0);
}

Status require_active_binding(Connection& c, const std::string& cert_sha256,
                              const std::string& device_id) {
    if (cert_sha256.empty()) return Status::ok();  // not a device request
    // FOR SHARE: a revoke or supersede of this binding waits for this
    // transaction, or this one sees its commit.
    if (!c.query("SELECT 1 FROM cert_bindings WHERE cert_sha256 = $1 AND device_id = $2 AND "
                 "state = 'active' FOR SHARE",
                 cert_sha256, device_id)
             .empty())
        return Status::ok();
    return conflict("identity certificate is no longer the active binding of " + device_id +
                    " (revoked or superseded)");
}

int64_t clamp_limit(int64_t limit) {
    return std::clamp<int64_t>(limit, 1, 1000);
}

}  // namespace pg

namespace {

// The columns enrollment_from_row reads: head, the open-target count
// (`queued`), tail.
constexpr std::string_view kEnrollmentHead =
    "id, device_id, user_id, type, udid, serial_number, model, model_name, product_name, "
    "os_version, build_version, device_name, imei, meid, topic, push_token, push_magic, "
    "unlock_token IS NOT NULL, token_valid, awaiting_configuration, state, created_at, "
    "updated_at, last_seen, identity_not_after, ";
constexpr std::string_view kEnrollmentTail =
    ", facts_truncated, pending_push_apns_id, pending_push_until";
const std::string kEnrollmentColumns = fmt::format(
    "{}(SELECT count(*) FROM targets t WHERE t.enrollment_id = e.id AND "
    "t.status IN ('queued','sent','notnow')){}",
    kEnrollmentHead, kEnrollmentTail);
// Without the count (left 0): the device request path's read.
const std::string kEnrollmentStateColumns =
    fmt::format("{}0::bigint{}", kEnrollmentHead, kEnrollmentTail);

Enrollment enrollment_from_row(const Rows& r, int row, int col = 0) {
    Enrollment e;
    int i = col;
    for (std::string* f : {&e.id, &e.device_id, &e.user_id, &e.type, &e.udid, &e.serial_number,
                           &e.model, &e.model_name, &e.product_name, &e.os_version,
                           &e.build_version, &e.device_name, &e.imei, &e.meid, &e.topic}) {
        *f = r.str(row, i++);
    }
    e.push_token = r.bytes(row, i++);
    e.push_magic = r.str(row, i++);
    e.has_unlock_token = r.boolean(row, i++);
    e.token_valid = r.boolean(row, i++);
    e.awaiting_configuration = r.boolean(row, i++);
    e.state = pg::parse_state(r.str(row, i++)).value_or(EnrollmentState::kPending);
    e.created_at = from_unix(r.int64(row, i++));
    e.updated_at = from_unix(r.int64(row, i++));
    if (auto v = r.opt_int64(row, i++)) e.last_seen = from_unix(*v);
    if (auto v = r.opt_int64(row, i++)) e.identity_not_after = from_unix(*v);
    e.queued = r.int64(row, i++);
    e.facts_truncated = r.boolean(row, i++);
    e.pending_push_apns_id = r.str(row, i++);
    if (auto v = r.opt_int64(row, i++)) e.pending_push_until = from_unix(*v);
    return e;
}

}  // namespace

const std::string& pg::enrollment_state_columns() {
    return kEnrollmentStateColumns;
}

Enrollment pg::enrollment_row(const Rows& r, int row, int col) {
    return enrollment_from_row(r, row, col);
}

Status PgStore::apply_authenticate(const AuthenticateInput& in, SysTime now) {
    if (in.id.empty() || in.device_id.empty()) return invalid("enrollment id missing");
    return write([&](Connection& c) {
        // The device's bindings first (every binding path takes this lock
        // first), then the row: one order for every writer.
        if (!in.cert_sha256.empty()) pg::lock_device_bindings(c, in.device_id);
        bool known = pg::lock_enrollment(c, in.id);
        // A retired enrollment stays retired: only an administrator lifts it.
        c.query(
            "INSERT INTO enrollments (id, device_id, user_id, type, udid, serial_number, model, "
            "model_name, product_name, os_version, build_version, device_name, imei, meid, "
            "topic, state, created_at, updated_at, identity_not_after, facts_truncated) VALUES "
            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'pending', $16, "
            "$16, $17, $18) "
            "ON CONFLICT (id) DO UPDATE SET device_id = excluded.device_id, user_id = "
            "excluded.user_id, type = excluded.type, udid = excluded.udid, serial_number = "
            "excluded.serial_number, model = excluded.model, model_name = excluded.model_name, "
            "product_name = excluded.product_name, os_version = excluded.os_version, "
            "build_version = excluded.build_version, device_name = excluded.device_name, "
            "imei = excluded.imei, meid = excluded.meid, topic = excluded.topic, "
            "push_token = NULL, push_magic = NULL, token_valid = false, token_update_tally = 0, "
            "state = CASE WHEN enrollments.state = 'retired' THEN 'retired' ELSE 'pending' END, "
            "updated_at = excluded.updated_at, repush_at = NULL, repush_attempts = 0, "
            "identity_not_after = coalesce(excluded.identity_not_after, "
            "enrollments.identity_not_after), facts_truncated = excluded.facts_truncated",
            in.id, in.device_id, in.user_id, in.type, in.udid, in.serial_number, in.model,
            in.model_name, in.product_name, in.os_version, in.build_version, in.device_name,
            in.imei, in.meid, in.topic, to_unix(now), opt_unix(in.cert_not_after),
            in.facts_truncated);
        int64_t canceled = pg::cancel_open_targets(c, in.id, now);
        std::string detail = known ? "Authenticate: enrollment started afresh" : "Authenticate";
        if (canceled > 0) detail += fmt::format(", {} pending command(s) canceled", canceled);
        pg::add_event(c, in.id, now, "checkin", detail);
        if (in.cert_sha256.empty()) return Status::ok();
        pg::BindPolicy policy;
        policy.quiet_period = in.approval_quiet_period;
        policy.last_used = [this](const std::string& cert) { return unflushed_binding_use(cert); };
        return pg::bind_cert_in(c, in.cert_sha256, in.device_id, in.cert_not_after, now, policy);
    });
}

Status PgStore::apply_token_update(const TokenUpdateInput& in, SysTime now) {
    if (in.id.empty() || in.device_id.empty()) return invalid("enrollment id missing");
    return write([&](Connection& c) {
        if (Status b = pg::require_active_binding(c, in.cert_sha256, in.device_id); !b.is_ok())
            return b;
        bool known = pg::lock_enrollment(c, in.id);
        if (!known && !in.user_id.empty()) {  // SPEC "input limits": at most kMaxUserChannels
            // Serialized per device, so two nodes cannot both add the last one.
            pg::lock_device_bindings(c, in.device_id);
            int64_t users = c.query(
                                 "SELECT count(*) FROM enrollments WHERE device_id = $1 AND "
                                 "user_id <> ''",
                                 in.device_id)
                                .int64(0, 0);
            if (users >= kMaxUserChannels)
                return Status(Code::kTooLarge,
                              fmt::format("device has {} user channels already (at most {}); "
                                          "no new one is made",
                                          users, kMaxUserChannels));
        }
        std::optional<Bytes> unlock;
        if (in.unlock_token) unlock = Bytes{*in.unlock_token};
        c.query(
            "INSERT INTO enrollments (id, device_id, user_id, type, topic, push_token, "
            "push_magic, unlock_token, token_valid, awaiting_configuration, state, created_at, "
            "updated_at, identity_not_after, token_update_tally) VALUES ($1, $2, $3, $4, $5, $6, "
            "$7, $8, true, $9, 'enrolled', $10, $10, $11, 1) "
            "ON CONFLICT (id) DO UPDATE SET token_update_tally = enrollments.token_update_tally "
            "+ 1, topic = excluded.topic, push_token = "
            "excluded.push_token, push_magic = excluded.push_magic, unlock_token = "
            "coalesce(excluded.unlock_token, enrollments.unlock_token), token_valid = true, "
            "awaiting_configuration = excluded.awaiting_configuration, "
            "type = CASE WHEN excluded.type <> '' THEN excluded.type ELSE enrollments.type END, "
            "state = CASE WHEN enrollments.state = 'retired' THEN 'retired' ELSE 'enrolled' END, "
            "updated_at = excluded.updated_at, "
            "identity_not_after = coalesce(excluded.identity_not_after, "
            "enrollments.identity_not_after)",
            in.id, in.device_id, in.user_id, in.type, in.topic, Bytes{in.push_token}, in.push_magic,
            unlock, in.awaiting_configuration, to_unix(now), opt_unix(in.cert_not_after));
        // A fresh token resets the backoff: anything undelivered is due now.
        bool open = pg::open_target_count(c, in.id) > 0;
        c.query(
            "UPDATE enrollments SET repush_attempts = 0, repush_at = $2, "
            "pending_push_apns_id = NULL, pending_push_until = NULL WHERE id = $1",
            in.id, open ? std::optional<int64_t>(to_unix(now)) : std::nullopt);
        pg::add_event(c, in.id, now, "checkin",
                      in.unlock_token ? "TokenUpdate: push token and unlock token stored"
                                      : "TokenUpdate: push token stored");
        return Status::ok();
    });
}

Status PgStore::apply_checkout(const std::string& id, SysTime now) {
    return write([&](Connection& c) {
        if (!pg::lock_enrollment(c, id)) return not_found("no enrollment " + id);
        c.query(
            "UPDATE enrollments SET state = 'unenrolled', updated_at = $2, repush_at = NULL, "
            "repush_attempts = 0 WHERE id = $1",
            id, to_unix(now));
        int64_t canceled = pg::cancel_open_targets(c, id, now);
        pg::add_event(
            c, id, now, "checkin",
            fmt::format("CheckOut: unenrolled, {} pending command(s) canceled", canceled));
        return Status::ok();
    });
}

Result<Enrollment> PgStore::enrollment(const std::string& id) {
    static const std::string sql =
        fmt::format("SELECT {} FROM enrollments e WHERE id = $1", kEnrollmentColumns);
    return enrollment_by(sql, id);
}

Result<Enrollment> PgStore::enrollment_state(const std::string& id) {
    if (auto* snap = pg::device_snapshot(this); snap && snap->reads.enrollment_id == id) {
        if (!snap->enrollment) return not_found("no enrollment " + id);
        Enrollment e = *snap->enrollment;
        overlay_last_seen(e);
        return e;
    }
    static const std::string sql =
        fmt::format("SELECT {} FROM enrollments e WHERE id = $1", kEnrollmentStateColumns);
    return enrollment_by(sql, id);
}

Result<Enrollment> PgStore::enrollment_by(const std::string& sql, const std::string& id) {
    Enrollment e;
    Status s = run(
        [&](Connection& c) {
            auto r = c.query(sql, id);
            if (r.empty()) return not_found("no enrollment " + id);
            e = enrollment_from_row(r, 0);
            return Status::ok();
        },
        true);
    if (!s) return s;
    overlay_last_seen(e);
    return e;
}

Result<PageOf<Enrollment>> PgStore::list_enrollments(const EnrollmentFilter& f, const Page& page) {
    std::string after;
    if (!page.cursor.empty()) {
        auto decoded = hex_decode(page.cursor);
        if (!decoded) return invalid("malformed cursor");
        after = *decoded;
    }
    int64_t limit = pg::clamp_limit(page.limit);
    static const std::string sql = fmt::format(
        "SELECT {} FROM enrollments e WHERE id > $1 AND ($2::text IS NULL OR state = $2) AND "
        "($3::text IS NULL OR topic = $3) AND ($4::text IS NULL OR serial_number = $4) AND "
        "($5::bigint IS NULL OR last_seen >= $5) AND ($7::text IS NULL OR "
        "strpos(lower(id COLLATE \"C\"), $7) > 0 OR strpos(lower(udid COLLATE \"C\"), $7) > 0 OR "
        "strpos(lower(serial_number COLLATE \"C\"), $7) > 0 OR "
        "strpos(lower(device_name COLLATE \"C\"), $7) > 0) "
        "ORDER BY id LIMIT $6",
        kEnrollmentColumns);
    auto opt_str = [](const std::string& v) {
        return v.empty() ? std::nullopt : std::optional<std::string>(v);
    };
    std::optional<std::string> state;
    if (f.state) state = state_name(*f.state);
    // Lowered here, ASCII only, as SqliteStore does (lower() of the text).
    std::string query = f.query;
    for (char& ch : query) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    PageOf<Enrollment> out;
    Status s = run(
        [&](Connection& c) {
            out.items.clear();
            auto r = c.query(sql, after, state, opt_str(f.topic), opt_str(f.serial_number),
                             opt_unix(f.seen_since), limit + 1, opt_str(query));
            for (int i = 0; i < r.size(); ++i) out.items.push_back(enrollment_from_row(r, i));
            return Status::ok();
        },
        true);
    if (!s) return s;
    if (static_cast<int64_t>(out.items.size()) > limit) {
        out.items.pop_back();
        out.next_cursor = hex_encode(out.items.back().id);
    }
    for (auto& e : out.items) overlay_last_seen(e);
    return out;
}

Result<int64_t> PgStore::user_channel_count(const std::string& device_id) {
    int64_t n = 0;
    Status s = run(
        [&](Connection& c) {
            n = c.query("SELECT count(*) FROM enrollments WHERE device_id = $1 AND user_id <> ''",
                        device_id)
                    .int64(0, 0);
            return Status::ok();
        },
        true);
    if (!s) return s;
    return n;
}

Result<std::vector<std::string>> PgStore::existing_enrollments(
    const std::vector<std::string>& ids) {
    std::vector<std::string> out;
    Status s = run(
        [&](Connection& c) {
            out.clear();
            auto r = c.query("SELECT id FROM enrollments WHERE id = ANY($1::text[])",
                             pg::TextArray{&ids});
            std::unordered_set<std::string> found;
            for (int i = 0; i < r.size(); ++i) found.insert(r.str(i, 0));
            for (const auto& id : ids)
                if (found.count(id)) out.push_back(id);
            return Status::ok();
        },
        true);
    if (!s) return s;
    return out;
}

Result<std::optional<std::string>> PgStore::unlock_token(const std::string& id) {
    std::optional<std::string> out;
    Status s = run(
        [&](Connection& c) {
            auto r = c.query("SELECT unlock_token FROM enrollments WHERE id = $1", id);
            if (r.empty()) return not_found("no enrollment " + id);
            if (!r.is_null(0, 0)) out = r.bytes(0, 0);
            return Status::ok();
        },
        true);
    if (!s) return s;
    return out;
}

Status PgStore::set_bootstrap_token(const std::string& id, const std::string& token,
                                    const std::string& cert_sha256) {
    return write([&](Connection& c) {
        if (!cert_sha256.empty()) {
            auto dev = c.query("SELECT device_id FROM enrollments WHERE id = $1", id);
            if (dev.empty()) return not_found("no enrollment " + id);
            if (Status b = pg::require_active_binding(c, cert_sha256, dev.str(0, 0)); !b.is_ok())
                return b;
        }
        auto r =
            c.query("UPDATE enrollments SET bootstrap_token = $2, updated_at = $3 WHERE id = $1",
                    id, Bytes{token}, to_unix(clock_.now()));
        if (r.affected() == 0) return not_found("no enrollment " + id);
        return Status::ok();
    });
}

Result<std::optional<std::string>> PgStore::bootstrap_token(const std::string& id) {
    std::optional<std::string> out;
    Status s = run(
        [&](Connection& c) {
            auto r = c.query("SELECT bootstrap_token FROM enrollments WHERE id = $1", id);
            if (r.empty()) return not_found("no enrollment " + id);
            if (!r.is_null(0, 0)) out = r.bytes(0, 0);
            return Status::ok();
        },
        true);
    if (!s) return s;
    return out;
}

Status PgStore::set_retired(const std::string& id, bool retired, SysTime now) {
    return write([&](Connection& c) {
        auto r = c.query("SELECT state FROM enrollments WHERE id = $1 FOR UPDATE", id);
        if (r.empty()) return not_found("no enrollment " + id);
        bool was_retired = r.str(0, 0) == state_name(EnrollmentState::kRetired);
        if (was_retired == retired) return Status::ok();
        if (!retired) {
            c.query("UPDATE enrollments SET state = 'pending', updated_at = $2 WHERE id = $1", id,
                    to_unix(now));
            pg::add_event(c, id, now, "retirement", "un-retired by an administrator");
            return Status::ok();
        }
        c.query(
            "UPDATE enrollments SET state = 'retired', updated_at = $2, repush_at = NULL, "
            "repush_attempts = 0 WHERE id = $1",
            id, to_unix(now));
        int64_t canceled = pg::cancel_open_targets(c, id, now);
        pg::add_event(
            c, id, now, "retirement",
            fmt::format("retired by an administrator, {} pending command(s) canceled", canceled));
        return Status::ok();
    });
}

Status PgStore::append_timeline(const std::string& id, const TimelineEvent& e) {
    return write([&](Connection& c) {
        pg::add_event(c, id, e.at, e.kind, e.detail);
        return Status::ok();
    });
}

Result<std::vector<TimelineEvent>> PgStore::timeline(const std::string& id, size_t limit) {
    std::vector<TimelineEvent> out;
    Status s = run(
        [&](Connection& c) {
            out.clear();
            auto r = c.query(
                "SELECT at, kind, detail FROM timeline WHERE enrollment_id = $1 "
                "ORDER BY at DESC, id DESC LIMIT $2",
                id, pg::clamp_limit(static_cast<int64_t>(std::min<size_t>(limit, 1000))));
            for (int i = 0; i < r.size(); ++i)
                out.push_back({from_unix(r.int64(i, 0)), r.str(i, 1), r.str(i, 2)});
            return Status::ok();
        },
        true);
    if (!s) return s;
    return out;
}

}  // namespace courier::db
