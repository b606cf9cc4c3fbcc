// PushStore: push attempts, invalid tokens, the pending push and the re-push
// schedule.
//
// Follows the storage contract in db/store.h.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace courier::db {

struct PushAttempt {
    std::string enrollment_id;
    SysTime at{};
    int http_status = 0;  // 0: no answer (connection error, timeout, no certificate)
    std::string apns_id, reason;
};

// A due re-push: an enrollment with undelivered commands whose backoff ran out.
struct RepushDue {
    std::string enrollment_id;
    int attempts = 0;
};

struct PushOutcomeRecord {
    PushAttempt attempt;
    SysTime repush_at{};
    int attempts = 0;
    // For a 200: when the push was handed to APNs (to the millisecond), and
    // until when it counts as pending (nullopt: it does not mark a pending
    // push; PushService sets it no later than repush_at).
    SysTimeMs sent_at{};
    std::optional<SysTime> pending_until;
};

class PushStore {
  public:
    virtual ~PushStore() = default;

    virtual Status record_push_attempt(const PushAttempt& a) = 0;
    virtual Status mark_token_invalid(const std::string& id, SysTime now) = 0;
    // Re-push schedule: the next time an enrollment with undelivered commands
    // should be pushed again (cleared when its queue empties, on CheckOut,
    // retirement and mark_token_invalid). schedule_repush sets it only while
    // the enrollment has queued/sent/notnow targets, and clears it otherwise.
    // due_repushes: ordered by due time.
    virtual Status schedule_repush(const std::string& id, SysTime at, int attempts) = 0;
    virtual Result<std::vector<RepushDue>> due_repushes(SysTime now, size_t limit) = 0;
    // The re-push sweep's claim: due_repushes, and each one returned is
    // withheld from every other caller (every node) for a lease, so a due
    // push is sent by one node. The default (one node) claims nothing
    // beyond due_repushes; PgStore locks the rows with FOR UPDATE SKIP
    // LOCKED and moves their due time past the lease in the same
    // transaction.
    virtual Result<std::vector<RepushDue>> claim_due_repushes(SysTime now, size_t limit) {
        return due_repushes(now, limit);
    }
    // Many APNs answers at once: each attempt recorded and its enrollment's
    // schedule set as schedule_repush does (an enrollment that no longer
    // exists is skipped). The default does it one call at a time; SqliteStore
    // does the whole batch in one transaction, so a fleet-wide wake-up costs
    // a few commits instead of two per device. A record with pending_until
    // (a 200) marks the push pending — pending_push_apns_id/_until — unless
    // the enrollment was seen after sent_at: a device that came between the
    // push and its recorded answer has woken. SqliteStore tells that to the
    // millisecond while the touch is still in memory, and by whole seconds
    // (seen in a later second) once it was flushed or came from another node.
    // The default implementation keeps no pending mark.
    virtual Status record_push_outcomes(const std::vector<PushOutcomeRecord>& batch);
};

}  // namespace courier::db
