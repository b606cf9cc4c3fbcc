// The courier.command.finished event (SPEC "Webhooks", docs/webhooks.md): a
// target reached a final status, by the device's report, an administrator's
// cancel or the command's expiry. One builder for every place that makes it:
// the device service (a final report), the admin API (cancel) and the
// backends (expiry, which happens inside a queue transaction: the store
// appends the event there itself).
#pragma once

#include <string>

#include "common/clock.h"
#include "db/command_queue.h"
#include "db/webhook_store.h"

namespace courier::db {

inline constexpr const char* kCommandFinishedTopic = "courier.command.finished";

// "2026-12-01T04:41:21.12Z": Go's RFC 3339 with nanoseconds, trailing zeros
// trimmed (NanoMDM's created_at).
std::string format_event_time(SysTimeMs t);

// A new event_id: a UUID whose first 48 bits are the Unix time in
// milliseconds (UUID version 7 layout, RFC 9562), 74 random bits after it.
// Unique as a random UUID, and the outbox's event_id index grows at its end
// instead of taking a write on a random page per event.
std::string new_event_id();

// {"courier_event":{"command_uuid","enrollment_id","status"},"created_at",
// "event_id","topic":"courier.command.finished"}, ordered with the
// enrollment's events. Sets nothing else (the caller sets only_if_effective).
OutboxEvent command_finished_event(const std::string& command_uuid,
                                   const std::string& enrollment_id, TargetStatus status,
                                   SysTimeMs now);

}  // namespace courier::db
