// SqliteStore: identity certificate bindings and the provenance of issued
// identities (docs/security.md "Re-binding").
#include <fmt/format.h>

#include <algorithm>

#include "db/sqlite/sqlite_internal.h"
#include "db/sqlite/sqlite_store.h"

namespace courier::db {

using sqlite::Connection;
using sqlite::opt_unix;
using sqlite::Statement;

namespace {

constexpr int64_t kMaxPendingPerDevice = 16;
constexpr int64_t kAlarmIntervalSeconds = 3600;

constexpr const char* kBindingColumns =
    "cert_sha256, device_id, state, not_after, bound_at, superseded_at, last_used, alarm_at";

Binding binding_from_row(const Statement& st) {
    Binding b;
    b.cert_sha256 = st.str(0);
    b.device_id = st.str(1);
    // An unknown state (a newer build's) is refused like a revoked one.
    b.state = parse_binding_state(st.str(2)).value_or(BindingState::kRevoked);
    if (auto v = st.opt_int64(3)) b.not_after = from_unix(*v);
    b.bound_at = from_unix(st.int64(4));
    if (auto v = st.opt_int64(5)) b.superseded_at = from_unix(*v);
    if (auto v = st.opt_int64(6)) b.last_used = from_unix(*v);
    if (auto v = st.opt_int64(7)) b.alarm_at = from_unix(*v);
    return b;
}

std::optional<Binding> find_binding(Connection& c, const std::string& cert_sha256) {
    auto st = c.prepare(
        fmt::format("SELECT {} FROM cert_bindings WHERE cert_sha256 = ?1", kBindingColumns));
    st.bind(cert_sha256);
    if (!st.step()) return std::nullopt;
    return binding_from_row(st);
}

std::string short_hash(const std::string& cert_sha256) {
    return "sha256:" + cert_sha256.substr(0, 16) + "…";
}

}  // namespace

namespace sqlite {

namespace {

// The secrets belonged to the identity's holder: never hand them to the
// next one. Device channel and user channels ("<device>:<user>"; ':' sorts
// just before ';', so this is a range of the primary key). Their open
// commands are canceled too: they were queued for that holder. Returns how
// many commands were canceled.
int64_t clear_device_secrets(Connection& c, const std::string& device_id, SysTime now) {
    c.prepare(
         "UPDATE enrollments SET bootstrap_token = NULL, unlock_token = NULL, push_token = NULL, "
         "push_magic = NULL, token_valid = 0, repush_at = NULL, repush_attempts = 0, "
         "pending_push_apns_id = NULL, pending_push_until = NULL "
         "WHERE id = ?1 OR (id > ?1 || ':' AND id < ?1 || ';')")
        .bind(device_id)
        .run();
    c.prepare(fmt::format("UPDATE targets SET status = 'canceled', updated_at = ?2 "
                          "WHERE (enrollment_id = ?1 OR (enrollment_id > ?1 || ':' AND "
                          "enrollment_id < ?1 || ';')) AND status IN {}",
                          kOpenStatuses))
        .bind(device_id, to_unix(now))
        .run();
    return c.changes();
}

// When the device's identity was last in use, for the approval rule: the
// active binding's bound_at/last_used; a revoked binding counts as used when
// it was revoked (docs/security.md "Re-binding": the ID's current binding).
std::optional<int64_t> identity_last_used(Connection& c, const std::string& device_id,
                                          const BindPolicy& policy) {
    std::optional<int64_t> used;
    auto st = c.prepare(
        "SELECT cert_sha256, bound_at, last_used, CASE WHEN state = 'revoked' THEN "
        "superseded_at END FROM cert_bindings WHERE device_id = ?1 AND state IN "
        "('active', 'revoked')");
    st.bind(device_id);
    while (st.step()) {
        int64_t t = st.int64(1);
        if (auto v = st.opt_int64(2)) t = std::max(t, *v);
        if (auto v = st.opt_int64(3)) t = std::max(t, *v);
        if (policy.last_used) t = std::max(t, policy.last_used(st.str(0)));
        used = std::max(used.value_or(t), t);
    }
    return used;
}

}  // namespace

Status bind_cert_in(Connection& c, const std::string& cert_sha256, const std::string& device_id,
                    std::optional<SysTime> not_after, SysTime now, const BindPolicy& policy) {
    bool approved = false;
    if (auto row = find_binding(c, cert_sha256)) {
        if (row->device_id != device_id)
            return conflict("identity certificate is bound to another enrollment");
        if (row->state == BindingState::kActive) {
            if (not_after)
                c.prepare("UPDATE cert_bindings SET not_after = ?2 WHERE cert_sha256 = ?1")
                    .bind(cert_sha256, to_unix(*not_after))
                    .run();
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
    bool earlier = false;  // any earlier binding: active, superseded or revoked
    {
        auto st = c.prepare(
            "SELECT cert_sha256, state FROM cert_bindings WHERE device_id = ?1 AND "
            "cert_sha256 <> ?2 AND state IN ('active', 'superseded', 'revoked')");
        st.bind(device_id, cert_sha256);
        while (st.step()) {
            earlier = true;
            if (st.str(1) == "active") old.push_back(st.str(0));
        }
    }
    c.prepare(
         "UPDATE cert_bindings SET state = 'superseded', superseded_at = ?2 "
         "WHERE device_id = ?1 AND state = 'active'")
        .bind(device_id, to_unix(now))
        .run();
    c.prepare(
         "INSERT INTO cert_bindings (cert_sha256, device_id, bound_at, state, not_after) "
         "VALUES (?1, ?2, ?3, 'active', ?4) ON CONFLICT(cert_sha256) DO UPDATE SET "
         "state = 'active', bound_at = excluded.bound_at, "
         "not_after = coalesce(excluded.not_after, not_after)")
        .bind(cert_sha256, device_id, to_unix(now), opt_unix(not_after))
        .run();
    if (!earlier) {
        add_event(c, device_id, now, "binding",
                  fmt::format("identity certificate {} bound", short_hash(cert_sha256)));
        return Status::ok();
    }
    // An earlier identity (superseded now, or before, or revoked) held the
    // device's secrets: the new one gets none of them.
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

}  // namespace sqlite

void SqliteStore::overlay_binding_used(Binding& b) const {
    std::lock_guard lk(seen_mu_);
    auto it = binding_used_.find(b.cert_sha256);
    if (it == binding_used_.end()) return;
    if (!b.last_used || to_unix(*b.last_used) < it->second) b.last_used = from_unix(it->second);
}

Result<std::optional<Binding>> SqliteStore::binding(const std::string& cert_sha256) {
    std::optional<Binding> out;
    Status s = read([&](Connection& c) {
        out = find_binding(c, cert_sha256);
        return Status::ok();
    });
    if (!s) return s;
    if (out) overlay_binding_used(*out);
    return out;
}

Result<std::vector<Binding>> SqliteStore::bindings(const std::string& device_id) {
    std::vector<Binding> out;
    Status s = read([&](Connection& c) {
        auto st = c.prepare(
            fmt::format("SELECT {} FROM cert_bindings WHERE device_id = ?1 ORDER BY bound_at DESC, "
                        "cert_sha256",
                        kBindingColumns));
        st.bind(device_id);
        while (st.step()) out.push_back(binding_from_row(st));
        return Status::ok();
    });
    if (!s) return s;
    for (auto& b : out) overlay_binding_used(b);
    return out;
}

Result<std::optional<Binding>> SqliteStore::active_binding(const std::string& device_id) {
    std::optional<Binding> out;
    Status s = read([&](Connection& c) {
        auto st = c.prepare(
            fmt::format("SELECT {} FROM cert_bindings WHERE device_id = ?1 AND state = 'active' "
                        "ORDER BY bound_at DESC LIMIT 1",
                        kBindingColumns));
        st.bind(device_id);
        if (st.step()) out = binding_from_row(st);
        return Status::ok();
    });
    if (!s) return s;
    if (out) overlay_binding_used(*out);
    return out;
}

Status SqliteStore::bind_cert(const std::string& cert_sha256, const std::string& device_id,
                              std::optional<SysTime> not_after, SysTime now) {
    if (cert_sha256.empty() || device_id.empty()) return invalid("certificate or device missing");
    return write([&](Connection& c) {
        return sqlite::bind_cert_in(c, cert_sha256, device_id, not_after, now);
    });
}

Status SqliteStore::request_binding(const std::string& cert_sha256, const std::string& device_id,
                                    std::optional<SysTime> not_after, SysTime now) {
    if (cert_sha256.empty() || device_id.empty()) return invalid("certificate or device missing");
    return write([&](Connection& c) {
        if (auto row = find_binding(c, cert_sha256)) {
            if (row->device_id != device_id)
                return conflict("identity certificate is bound to another enrollment");
            if (row->state == BindingState::kPending || row->state == BindingState::kApproved)
                return Status::ok();
            return conflict(fmt::format("identity certificate is {} for this enrollment",
                                        binding_state_name(row->state)));
        }
        auto count = c.prepare(
            "SELECT count(*) FROM cert_bindings WHERE device_id = ?1 AND state = 'pending'");
        count.bind(device_id);
        int64_t pending = count.step() ? count.int64(0) : 0;
        count.reset();
        // Full: refused, never evicting (an attacker's requests must not push
        // the real device's out); an administrator DELETEs rows to make room.
        if (pending >= kMaxPendingPerDevice)
            return Status(Code::kTooLarge,
                          fmt::format("this device id has {} re-bindings pending an "
                                      "administrator's decision already (at most {}): no new one "
                                      "is recorded",
                                      pending, kMaxPendingPerDevice));
        c.prepare(
             "INSERT INTO cert_bindings (cert_sha256, device_id, bound_at, state, not_after) "
             "VALUES (?1, ?2, ?3, 'pending', ?4)")
            .bind(cert_sha256, device_id, to_unix(now), opt_unix(not_after))
            .run();
        sqlite::add_event(c, device_id, now, "binding",
                          fmt::format("re-binding to a new identity certificate {} refused: "
                                      "pending an administrator's approval",
                                      short_hash(cert_sha256)));
        return Status::ok();
    });
}

Status SqliteStore::approve_binding(const std::string& device_id, const std::string& cert_sha256,
                                    SysTime now) {
    return write([&](Connection& c) {
        auto row = find_binding(c, cert_sha256);
        if (!row || row->device_id != device_id)
            return not_found("no binding of this certificate for " + device_id);
        if (row->state == BindingState::kApproved) return Status::ok();
        if (row->state != BindingState::kPending)
            return conflict(
                fmt::format("the binding is {}, not pending", binding_state_name(row->state)));
        c.prepare("UPDATE cert_bindings SET state = 'approved' WHERE cert_sha256 = ?1")
            .bind(cert_sha256)
            .run();
        sqlite::add_event(c, device_id, now, "binding",
                          fmt::format("re-binding to identity certificate {} approved by an "
                                      "administrator: its next Authenticate binds it",
                                      short_hash(cert_sha256)));
        return Status::ok();
    });
}

Status SqliteStore::revoke_binding(const std::string& device_id, const std::string& cert_sha256,
                                   SysTime now) {
    return write([&](Connection& c) {
        auto row = find_binding(c, cert_sha256);
        if (!row || row->device_id != device_id)
            return not_found("no binding of this certificate for " + device_id);
        if (row->state == BindingState::kRevoked) return Status::ok();
        c.prepare(
             "UPDATE cert_bindings SET state = 'revoked', superseded_at = "
             "coalesce(superseded_at, ?2) WHERE cert_sha256 = ?1")
            .bind(cert_sha256, to_unix(now))
            .run();
        std::string cleared;
        if (row->state == BindingState::kActive) {
            // Its holder's push token must not be pushed to any more, nor its
            // secrets handed on (docs/security.md "Re-binding": as a supersede does).
            int64_t canceled = sqlite::clear_device_secrets(c, device_id, now);
            cleared = fmt::format(
                "; bootstrap, unlock and push tokens cleared{}",
                canceled > 0 ? fmt::format(", {} open command(s) canceled", canceled) : "");
        }
        sqlite::add_event(
            c, device_id, now, "binding",
            fmt::format("identity certificate {} ({}) revoked by an administrator{}",
                        short_hash(cert_sha256), binding_state_name(row->state), cleared));
        return Status::ok();
    });
}

Result<bool> SqliteStore::note_superseded_use(const std::string& cert_sha256, SysTime now) {
    bool noted = false;
    Status s = write([&](Connection& c) {
        auto row = find_binding(c, cert_sha256);
        if (!row) return not_found("no binding of this certificate");
        if (row->alarm_at && to_unix(now) - to_unix(*row->alarm_at) < kAlarmIntervalSeconds) {
            sqlite::note_no_effect();
            return Status::ok();
        }
        c.prepare("UPDATE cert_bindings SET alarm_at = ?2 WHERE cert_sha256 = ?1")
            .bind(cert_sha256, to_unix(now))
            .run();
        sqlite::add_event(c, row->device_id, now, "binding",
                          fmt::format("{} identity certificate {} presented again: refused "
                                      "(a takeover, or the old holder of this device id)",
                                      binding_state_name(row->state), short_hash(cert_sha256)));
        noted = true;
        return Status::ok();
    });
    if (!s) return s;
    return noted;
}

void SqliteStore::touch_binding(const std::string& cert_sha256, SysTime now) {
    std::lock_guard lk(seen_mu_);
    int64_t& at = binding_used_[cert_sha256];
    at = std::max(at, to_unix(now));
}

Status SqliteStore::record_issued_identity(const std::string& cert_sha256,
                                           const std::string& token_sha256, SysTime now) {
    if (cert_sha256.empty() || token_sha256.empty()) return invalid("certificate or token missing");
    return write([&](Connection& c) {
        auto tok = c.prepare("SELECT id FROM enrollment_tokens WHERE token_sha256 = ?1");
        tok.bind(token_sha256);
        if (!tok.step()) return not_found("no such enrollment token");
        std::string token_id = tok.str(0);
        tok.reset();
        auto seen = c.prepare("SELECT 1 FROM issued_identities WHERE cert_sha256 = ?1");
        seen.bind(cert_sha256);
        if (seen.step()) return conflict("identity already recorded");
        seen.reset();
        c.prepare(
             "INSERT INTO issued_identities (cert_sha256, token_id, issued_at) VALUES (?1, ?2, "
             "?3)")
            .bind(cert_sha256, token_id, to_unix(now))
            .run();
        return Status::ok();
    });
}

Result<std::optional<std::string>> SqliteStore::issued_with_token(const std::string& cert_sha256) {
    std::optional<std::string> out;
    Status s = read([&](Connection& c) {
        auto st = c.prepare("SELECT token_id FROM issued_identities WHERE cert_sha256 = ?1");
        st.bind(cert_sha256);
        if (st.step()) out = st.str(0);
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

}  // namespace courier::db
