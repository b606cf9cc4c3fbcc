// PgStore internals shared by its translation units. Every function runs
// inside a transaction the caller holds and throws pg::PgError on errors.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "db/postgres/pg_connection.h"
#include "db/store.h"

namespace courier::db {
class PgStore;
}

namespace courier::db::pg {

// Targets still waiting for a final report.
inline constexpr std::string_view kOpenStatuses = "('queued','sent','notnow')";

std::optional<EnrollmentState> parse_state(std::string_view s);

void add_event(Connection& c, const std::string& id, SysTime at, std::string_view kind,
               const std::string& detail);

// Marks every queued/sent/notnow target of the enrollment canceled; returns
// how many.
int64_t cancel_open_targets(Connection& c, const std::string& id, SysTime now);

int64_t open_target_count(Connection& c, const std::string& id);

void clear_repush_if_idle(Connection& c, const std::string& id);

// Locks the enrollment's row (FOR UPDATE) for the rest of the transaction:
// device requests for one enrollment, on any node, take turns. False when
// there is no such row.
bool lock_enrollment(Connection& c, const std::string& id);
// lock_enrollment that also says whether a pending push is marked (nullopt:
// no such row); one round trip for a device request's lock and check.
std::optional<bool> lock_enrollment_pending(Connection& c, const std::string& id);

// PushStore::arm_pushes inside the caller's transaction, locking the rows
// in id order (as enqueue's FOR KEY SHARE and record_push_outcomes do); a
// pending push stays pending.
void arm_pushes(Connection& c, const std::vector<std::string>& ids, SysTime now);

// Serializes the binding changes of one device id across nodes for the rest
// of the transaction (an advisory lock on the id).
void lock_device_bindings(Connection& c, const std::string& device_id);

// next_command inside the caller's transaction (the enrollment row locked;
// pending: whether it has a pending push to clear).
std::optional<DeliveredCommand> pick_next_command(Connection& c, const std::string& id,
                                                  bool include_notnow, SysTime now,
                                                  bool pending = true);

struct BindPolicy {
    std::optional<std::chrono::seconds> quiet_period;
    std::function<int64_t(const std::string&)> last_used;
};

Status bind_cert_in(Connection& c, const std::string& cert_sha256, const std::string& device_id,
                    std::optional<SysTime> not_after, SysTime now, const BindPolicy& policy = {});

// SPEC "re-binding": the write lands only while the certificate is still the
// device's active binding (empty: not a device request, unchecked).
Status require_active_binding(Connection& c, const std::string& cert_sha256,
                              const std::string& device_id);

int64_t clamp_limit(int64_t limit);

// Row readers shared by the files that select these columns: an
// enrollment without its open-target count (EnrollmentStore::
// enrollment_state) and a binding, starting at column `col`.
const std::string& enrollment_state_columns();
Enrollment enrollment_row(const Rows& r, int row, int col);
extern const char* const kBindingColumns;
Binding binding_from_row(const Rows& r, int i, int col = 0);

// A device request's reads fetched at once (PgStore::device_read_scope):
// the calling thread's snapshot for `store`, or null outside its scope.
struct DeviceSnapshot {
    const PgStore* store = nullptr;
    DeviceReads reads;
    std::optional<Enrollment> enrollment;  // none: no such enrollment
    std::optional<Binding> binding;        // none: the certificate is not bound
    bool pending = false;                  // reads.has_pending asked for it
};
const DeviceSnapshot* device_snapshot(const PgStore* store);

// Called by a write whose effect did not happen (a repeated final report, a
// superseded-use alarm within the hour, a push certificate with no
// predecessor): events attached with only_if_effective are not appended
// (WebhookStore::attach_events). Calling thread only.
void note_no_effect();
// Called by a write whose effect reached these enrollments only
// (cancel_command: the targets it canceled): events attached with
// only_if_effective are appended only when their enrollment_id is one of
// them. `ids` must outlive the write. Calling thread only.
void note_effective_for(const std::vector<std::string>* ids);

// WebhookStore's outbox append inside the caller's transaction: each event
// fanned out to the enabled destinations that take its topic; an event no
// destination takes is not stored. `effective`: see note_no_effect;
// `effective_for`: see note_effective_for (nullptr: every enrollment).
void append_outbox(Connection& c, const std::vector<OutboxEvent>& events, bool effective,
                   const std::vector<std::string>* effective_for = nullptr);

inline std::optional<int64_t> opt_unix(const std::optional<SysTime>& t) {
    if (!t) return std::nullopt;
    return to_unix(*t);
}

// Migrations: brings the database to this build's schema under an advisory
// lock (one node migrates, the others wait). kInvalid when the database's
// schema is newer than this build can work with.
Status migrate(Connection& c);
int latest_schema_version();

}  // namespace courier::db::pg
