// SqliteStore internals shared by its translation units. Every function runs
// inside a transaction the caller holds and throws SqlError on SQLite errors.
#pragma once

#include <string>
#include <string_view>

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

// next_command inside the caller's transaction.
std::optional<DeliveredCommand> pick_next_command(Connection& c, const std::string& id,
                                                  bool include_notnow, SysTime now);

// BindingStore::bind_cert inside the caller's transaction.
Status bind_cert_in(Connection& c, const std::string& cert_sha256, const std::string& device_id,
                    std::optional<SysTime> not_after, SysTime now);

// Page limits are clamped to 1..1000.
int64_t clamp_limit(int64_t limit);

}  // namespace courier::db::sqlite
