// PgStore: identity certificate bindings and the provenance of issued
// identities (SPEC "re-binding"). Every change to a device id's bindings
// holds that id's advisory lock for its transaction, so nodes take turns.
#include <fmt/format.h>

#include <algorithm>

#include "db/postgres/pg_internal.h"
#include "db/postgres/pg_store.h"

namespace courier::db {

using pg::binding_from_row;
using pg::Connection;
using pg::kBindingColumns;
using pg::opt_unix;
using pg::Rows;

namespace {

constexpr int64_t kMaxPendingPerDevice = 16;
constexpr int64_t kAlarmIntervalSeconds = 3600;

std::optional<Binding> find_binding(Connection& c, const std::string& cert_sha256) {
    static const std::string sql =
        fmt::format("SELECT {} FROM cert_bindings WHERE cert_sha256 = $1", kBindingColumns);
    auto r = c.query(sql, cert_sha256);
    if (r.empty()) return std::nullopt;
    return binding_from_row(r, 0);
}

std::string short_hash(const std::string& cert_sha256) {
    return "sha256:" + cert_sha256.substr(0, 16) + "…";
}

}  // namespace

namespace pg {

const char* const kBindingColumns =
    "cert_sha256, device_id, state, not_after, bound_at, superseded_at, last_used, alarm_at";

Binding binding_from_row(const Rows& r, int i, int col) {
    Binding b;
    b.cert_sha256 = r.str(i, col);
    b.device_id = r.str(i, col + 1);
    // An unknown state (a newer build's) is refused like a revoked one.
    b.state = parse_binding_state(r.str(i, col + 2)).value_or(BindingState::kRevoked);
    if (auto v = r.opt_int64(i, col + 3)) b.not_after = from_unix(*v);
    b.bound_at = from_unix(r.int64(i, col + 4));
    if (auto v = r.opt_int64(i, col + 5)) b.superseded_at = from_unix(*v);
    if (auto v = r.opt_int64(i, col + 6)) b.last_used = from_unix(*v);
    if (auto v = r.opt_int64(i, col + 7)) b.alarm_at = from_unix(*v);
    return b;
}

void lock_device_bindings(Connection& c, const std::string& device_id) {
    // Two keys: a class for bindings, and the id's hash.
    c.query("SELECT pg_advisory_xact_lock(1668248178, hashtext($1))", device_id);
}

namespace {

// The secrets belonged to the identity's holder: never hand them to the next
// one. Device channel and user channels ("<device>:<user>"; ':' sorts just
// before ';' bytewise, COLLATE "C"). Their open commands are canceled too.
int64_t clear_device_secrets(Connection& c, const std::string& device_id, SysTime now) {
    c.query(
        "UPDATE enrollments SET bootstrap_token = NULL, unlock_token = NULL, push_token = NULL, "
        "push_magic = NULL, token_valid = false, repush_at = NULL, repush_attempts = 0, "
        "pending_push_apns_id = NULL, pending_push_until = NULL "
        "WHERE id = $1 OR (id > $1 || ':' AND id < $1 || ';')",
        device_id);
    static const std::string sql = fmt::format(
        "UPDATE targets SET status = 'canceled', updated_at = $2 "
        "WHERE (enrollment_id = $1 OR (enrollment_id > $1 || ':' AND "
        "enrollment_id < $1 || ';')) AND status IN {}",
        kOpenStatuses);
    return c.query(sql, device_id, to_unix(now)).affected();
}

std::optional<int64_t> identity_last_used(Connection& c, const std::string& device_id,
                                          const BindPolicy& policy) {
    std::optional<int64_t> used;
    auto r = c.query(
        "SELECT cert_sha256, bound_at, last_used, CASE WHEN state = 'revoked' THEN "
        "superseded_at END FROM cert_bindings WHERE device_id = $1 AND state IN "
        "('active', 'revoked')",
        device_id);
    for (int i = 0; i < r.size(); ++i) {
        int64_t t = r.int64(i, 1);
        if (auto v = r.opt_int64(i, 2)) t = std::max(t, *v);
        if (auto v = r.opt_int64(i, 3)) t = std::max(t, *v);
        if (policy.last_used) t = std::max(t, policy.last_used(r.str(i, 0)));
        used = std::max(used.value_or(t), t);
    }
    return used;
}

}  // namespace

Status bind_cert_in(Connection& c, const std::string& cert_sha256, const std::string& device_id,
                    std::optional<SysTime> not_after, SysTime now, const BindPolicy& policy) {
    lock_device_bindings(c, device_id);
    bool approved = false;
    if (auto row = find_binding(c, cert_sha256)) {
        if (row->device_id != device_id)
            return conflict("identity certificate is bound to another enrollment");
        if (row->state == BindingState::kActive) {
            if (not_after)
                c.query("UPDATE cert_bindings SET not_after = $2 WHERE cert_sha256 = $1",
                        cert_sha256, to_unix(*not_after));
            return Status::ok();
        }
        if (row->state != BindingState::kApproved && row->state != BindingState::kPending)
            return conflict(fmt::format("identity certificate is {} for this enrollment",
                                        binding_state_name(row->state)));
        approved = row->state == BindingState::kApproved;
    }
    if (policy.quiet_period && !approved) {
        auto used = identity_last_used(c, device_id, policy);
        if (used && to_unix(now) - *used < policy.quiet_period->count())
            return Status(Code::kForbidden,
                          fmt::format("this device id's identity was in use at {}: the re-binding "
                                      "needs an administrator's approval",
                                      format_rfc3339(from_unix(*used))));
    }
    std::vector<std::string> old;
    bool earlier = false;
    {
        auto r = c.query(
            "SELECT cert_sha256, state FROM cert_bindings WHERE device_id = $1 AND "
            "cert_sha256 <> $2 AND state IN ('active', 'superseded', 'revoked') "
            "ORDER BY cert_sha256",
            device_id, cert_sha256);
        for (int i = 0; i < r.size(); ++i) {
            earlier = true;
            if (r.str(i, 1) == "active") old.push_back(r.str(i, 0));
        }
    }
    c.query(
        "UPDATE cert_bindings SET state = 'superseded', superseded_at = $2 "
        "WHERE device_id = $1 AND state = 'active'",
        device_id, to_unix(now));
    c.query(
        "INSERT INTO cert_bindings (cert_sha256, device_id, bound_at, state, not_after) "
        "VALUES ($1, $2, $3, 'active', $4) ON CONFLICT (cert_sha256) DO UPDATE SET "
        "state = 'active', bound_at = excluded.bound_at, "
        "not_after = coalesce(excluded.not_after, cert_bindings.not_after)",
        cert_sha256, device_id, to_unix(now), opt_unix(not_after));
    if (!earlier) {
        add_event(c, device_id, now, "binding",
                  fmt::format("identity certificate {} bound", short_hash(cert_sha256)));
        return Status::ok();
    }
    int64_t canceled = clear_device_secrets(c, device_id, now);
    std::string superseded;
    for (const auto& h : old) superseded += (superseded.empty() ? "" : ", ") + short_hash(h);
    add_event(
        c, device_id, now, "binding",
        fmt::format("identity certificate {} bound{}{}; bootstrap, unlock and push tokens "
                    "cleared{}",
                    short_hash(cert_sha256), old.empty() ? " after an earlier identity" : "",
                    old.empty() ? "" : ", superseding " + superseded,
                    canceled > 0 ? fmt::format(", {} open command(s) canceled", canceled) : ""));
    return Status::ok();
}

}  // namespace pg

Result<std::optional<Binding>> PgStore::binding(const std::string& cert_sha256) {
    std::optional<Binding> out;
    if (auto* snap = pg::device_snapshot(this); snap && snap->reads.cert_sha256 == cert_sha256) {
        out = snap->binding;
        if (out) overlay_binding_used(*out);
        return out;
    }
    Status s = run(
        [&](Connection& c) {
            out = find_binding(c, cert_sha256);
            return Status::ok();
        },
        true);
    if (!s) return s;
    if (out) overlay_binding_used(*out);
    return out;
}

Result<std::vector<Binding>> PgStore::bindings(const std::string& device_id) {
    std::vector<Binding> out;
    Status s = run(
        [&](Connection& c) {
            out.clear();
            static const std::string sql = fmt::format(
                "SELECT {} FROM cert_bindings WHERE device_id = $1 ORDER BY bound_at DESC, "
                "cert_sha256",
                kBindingColumns);
            auto r = c.query(sql, device_id);
            for (int i = 0; i < r.size(); ++i) out.push_back(binding_from_row(r, i));
            return Status::ok();
        },
        true);
    if (!s) return s;
    for (auto& b : out) overlay_binding_used(b);
    return out;
}

Result<std::optional<Binding>> PgStore::active_binding(const std::string& device_id) {
    std::optional<Binding> out;
    Status s = run(
        [&](Connection& c) {
            static const std::string sql = fmt::format(
                "SELECT {} FROM cert_bindings WHERE device_id = $1 AND state = 'active' "
                "ORDER BY bound_at DESC LIMIT 1",
                kBindingColumns);
            auto r = c.query(sql, device_id);
            out.reset();
            if (!r.empty()) out = binding_from_row(r, 0);
            return Status::ok();
        },
        true);
    if (!s) return s;
    if (out) overlay_binding_used(*out);
    return out;
}

Status PgStore::bind_cert(const std::string& cert_sha256, const std::string& device_id,
                          std::optional<SysTime> not_after, SysTime now) {
    if (cert_sha256.empty() || device_id.empty()) return invalid("certificate or device missing");
    return write(
        [&](Connection& c) { return pg::bind_cert_in(c, cert_sha256, device_id, not_after, now); });
}

Status PgStore::request_binding(const std::string& cert_sha256, const std::string& device_id,
                                std::optional<SysTime> not_after, SysTime now) {
    if (cert_sha256.empty() || device_id.empty()) return invalid("certificate or device missing");
    return write([&](Connection& c) {
        pg::lock_device_bindings(c, device_id);
        if (auto row = find_binding(c, cert_sha256)) {
            if (row->device_id != device_id)
                return conflict("identity certificate is bound to another enrollment");
            if (row->state == BindingState::kPending || row->state == BindingState::kApproved)
                return Status::ok();
            return conflict(fmt::format("identity certificate is {} for this enrollment",
                                        binding_state_name(row->state)));
        }
        int64_t pending =
            c.query("SELECT count(*) FROM cert_bindings WHERE device_id = $1 AND state = 'pending'",
                    device_id)
                .int64(0, 0);
        if (pending >= kMaxPendingPerDevice)
            return Status(Code::kTooLarge,
                          fmt::format("this device id has {} re-bindings pending an "
                                      "administrator's decision already (at most {}): no new one "
                                      "is recorded",
                                      pending, kMaxPendingPerDevice));
        c.query(
            "INSERT INTO cert_bindings (cert_sha256, device_id, bound_at, state, not_after) "
            "VALUES ($1, $2, $3, 'pending', $4)",
            cert_sha256, device_id, to_unix(now), opt_unix(not_after));
        pg::add_event(c, device_id, now, "binding",
                      fmt::format("re-binding to a new identity certificate {} refused: "
                                  "pending an administrator's approval",
                                  short_hash(cert_sha256)));
        return Status::ok();
    });
}

Status PgStore::approve_binding(const std::string& device_id, const std::string& cert_sha256,
                                SysTime now) {
    return write([&](Connection& c) {
        pg::lock_device_bindings(c, device_id);
        auto row = find_binding(c, cert_sha256);
        if (!row || row->device_id != device_id)
            return not_found("no binding of this certificate for " + device_id);
        if (row->state == BindingState::kApproved) return Status::ok();
        if (row->state != BindingState::kPending)
            return conflict(
                fmt::format("the binding is {}, not pending", binding_state_name(row->state)));
        c.query("UPDATE cert_bindings SET state = 'approved' WHERE cert_sha256 = $1", cert_sha256);
        pg::add_event(c, device_id, now, "binding",
                      fmt::format("re-binding to identity certificate {} approved by an "
                                  "administrator: its next Authenticate binds it",
                                  short_hash(cert_sha256)));
        return Status::ok();
    });
}

Status PgStore::revoke_binding(const std::string& device_id, const std::string& cert_sha256,
                               SysTime now) {
    return write([&](Connection& c) {
        pg::lock_device_bindings(c, device_id);
        auto row = find_binding(c, cert_sha256);
        if (!row || row->device_id != device_id)
            return not_found("no binding of this certificate for " + device_id);
        if (row->state == BindingState::kRevoked) return Status::ok();
        c.query(
            "UPDATE cert_bindings SET state = 'revoked', superseded_at = "
            "coalesce(superseded_at, $2) WHERE cert_sha256 = $1",
            cert_sha256, to_unix(now));
        std::string cleared;
        if (row->state == BindingState::kActive) {
            int64_t canceled = pg::clear_device_secrets(c, device_id, now);
            cleared = fmt::format(
                "; bootstrap, unlock and push tokens cleared{}",
                canceled > 0 ? fmt::format(", {} open command(s) canceled", canceled) : "");
        }
        pg::add_event(
            c, device_id, now, "binding",
            fmt::format("identity certificate {} ({}) revoked by an administrator{}",
                        short_hash(cert_sha256), binding_state_name(row->state), cleared));
        return Status::ok();
    });
}

Result<bool> PgStore::note_superseded_use(const std::string& cert_sha256, SysTime now) {
    bool noted = false;
    Status s = write([&](Connection& c) {
        noted = false;
        // One alarm an hour, across nodes: the row is locked while deciding.
        static const std::string sql = fmt::format(
            "SELECT {} FROM cert_bindings WHERE cert_sha256 = $1 FOR UPDATE", kBindingColumns);
        auto r = c.query(sql, cert_sha256);
        if (r.empty()) return not_found("no binding of this certificate");
        Binding row = binding_from_row(r, 0);
        if (row.alarm_at && to_unix(now) - to_unix(*row.alarm_at) < kAlarmIntervalSeconds) {
            pg::note_no_effect();
            return Status::ok();
        }
        c.query("UPDATE cert_bindings SET alarm_at = $2 WHERE cert_sha256 = $1", cert_sha256,
                to_unix(now));
        pg::add_event(c, row.device_id, now, "binding",
                      fmt::format("{} identity certificate {} presented again: refused "
                                  "(a takeover, or the old holder of this device id)",
                                  binding_state_name(row.state), short_hash(cert_sha256)));
        noted = true;
        return Status::ok();
    });
    if (!s) return s;
    return noted;
}

Status PgStore::record_issued_identity(const std::string& cert_sha256,
                                       const std::string& token_sha256, SysTime now) {
    if (cert_sha256.empty() || token_sha256.empty()) return invalid("certificate or token missing");
    return write([&](Connection& c) {
        auto tok =
            c.query("SELECT id FROM enrollment_tokens WHERE token_sha256 = $1", token_sha256);
        if (tok.empty()) return not_found("no such enrollment token");
        auto r = c.query(
            "INSERT INTO issued_identities (cert_sha256, token_id, issued_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (cert_sha256) DO NOTHING",
            cert_sha256, tok.str(0, 0), to_unix(now));
        if (r.affected() == 0) return conflict("identity already recorded");
        return Status::ok();
    });
}

Result<std::optional<std::string>> PgStore::issued_with_token(const std::string& cert_sha256) {
    std::optional<std::string> out;
    Status s = run(
        [&](Connection& c) {
            auto r = c.query("SELECT token_id FROM issued_identities WHERE cert_sha256 = $1",
                             cert_sha256);
            out.reset();
            if (!r.empty()) out = r.str(0, 0);
            return Status::ok();
        },
        true);
    if (!s) return s;
    return out;
}

}  // namespace courier::db
