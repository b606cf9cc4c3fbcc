// SqliteStore internals shared by its translation units. Every function runs
// inside a transaction the caller holds and throws SqlError on SQLite errors.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "db/sqlite/sqlite_statement.h"
#include "db/store.h"

namespace courier::db::sqlite {

// Targets still waiting for a final report.
inline constexpr std::string_view kOpenStatuses = "('queued','sent','notnow')";

std::optional<EnrollmentState> parse_state(std::string_view s);

void add_event(Connection& c, const std::string& id, SysTime at, std::string_view kind,
               const std::string& detail);

// Marks every queued/sent/notnow target of the enrollment canceled; returns
// how many.
int64_t cancel_open_targets(Connection& c, const std::string& id, SysTime now);

// Targets in queued/sent/notnow for the enrollment.
int64_t open_target_count(Connection& c, const std::string& id);

// Drops the re-push schedule of an enrollment with nothing left to deliver.
void clear_repush_if_idle(Connection& c, const std::string& id);

// PushStore::arm_pushes inside the caller's transaction: a pending push
// stays pending (its mark is not replaced by an arm).
void arm_pushes(Connection& c, const std::vector<std::string>& ids, SysTime now);

// next_command inside the caller's transaction.
std::optional<DeliveredCommand> pick_next_command(Connection& c, const std::string& id,
                                                  bool include_notnow, SysTime now);

// Binding policy for bind_cert_in (docs/security.md "Re-binding"): with a quiet period, a
// new certificate binds only when the device's identity was not in use within
// it (see AuthenticateInput::approval_quiet_period); `last_used` gives a
// certificate's use not yet flushed (unix seconds, 0 if none).
struct BindPolicy {
    std::optional<std::chrono::seconds> quiet_period;
    std::function<int64_t(const std::string&)> last_used;
};

// BindingStore::bind_cert inside the caller's transaction.
// With policy.quiet_period set, kForbidden (and nothing changed) when the
// re-binding needs an administrator's approval.
Status bind_cert_in(Connection& c, const std::string& cert_sha256, const std::string& device_id,
                    std::optional<SysTime> not_after, SysTime now, const BindPolicy& policy = {});

// Called by a write closure whose write took no effect (a repeated final
// report, a superseded-use alarm within the hour, a push certificate with
// no predecessor): events attached with only_if_effective are not appended
// (WebhookStore::attach_events). Writer thread only.
void note_no_effect();
// Called by a write closure whose write took effect for these enrollments
// only (cancel_command: the targets it canceled): events attached with
// only_if_effective are appended only when their enrollment_id is one of
// them. `ids` must outlive the write. Writer thread only.
void note_effective_for(const std::vector<std::string>* ids);

// WebhookStore's outbox append inside the caller's transaction: each event
// fanned out to the enabled destinations that take its topic; an event no
// destination takes is not stored. `effective`: see note_no_effect.
// `effective_for`: see note_effective_for (nullptr: every enrollment).
void append_outbox(Connection& c, const std::vector<OutboxEvent>& events, bool effective,
                   const std::vector<std::string>* effective_for = nullptr);

// A delivery the running write job appended, or made due, as pending: the
// writer hands it to the delivery threads once the transaction commits
// (WebhookStore::take_committed). Dropped with the job when it rolls back.
// Writer thread only.
void note_fresh_delivery(ClaimedDelivery d);

// Page limits are clamped to 1..1000.
int64_t clamp_limit(int64_t limit);

inline std::optional<int64_t> opt_unix(const std::optional<SysTime>& t) {
    if (!t) return std::nullopt;
    return to_unix(*t);
}

}  // namespace courier::db::sqlite
