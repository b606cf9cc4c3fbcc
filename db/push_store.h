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

// How long an armed push (see PushStore::arm_pushes) waits for its answer;
// the re-push schedule's first step.
inline constexpr std::chrono::seconds kPushArmWindow{60};

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
    // Pushes to these enrollments are about to be sent: each is *armed*
    // (pending_push_until = now + kPushArmWindow, pending_push_apns_id
    // empty; a pending push stays as it is).
    // The device's next request disarms it, in the transaction that reads
    // its queue, as it clears a pending push; record_push_outcomes marks a
    // push pending only where it is still armed. So an answer recorded after
    // the device came, on this node or another, never leaves a stale mark
    // that would hold back the next enqueue's push. enqueue() arms the
    // enrollments it will push in its own transaction; PushService arms the
    // others (GET /v1/push, the re-push sweep, a TokenUpdate with commands
    // waiting). An armed push is not pending: enqueues still push. The
    // default keeps no marks.
    virtual Status arm_pushes(const std::vector<std::string>& ids, SysTime now) {
        (void)ids;
        (void)now;
        return Status::ok();
    }
    // Many APNs answers at once: each attempt recorded and its enrollment's
    // schedule set as schedule_repush does (an enrollment that no longer
    // exists is skipped). The default does it one call at a time; SqliteStore
    // does the whole batch in one transaction, so a fleet-wide wake-up costs
    // a few commits instead of two per device. A record with pending_until
    // (a 200) marks the push pending — pending_push_apns_id/_until — only if
    // the enrollment is still armed (arm_pushes) and was not seen after
    // sent_at: a device that came between the push and its recorded answer
    // has woken. The arm tells that on any node; SqliteStore also tells it to
    // the millisecond while the touch is still in memory, and by whole
    // seconds (seen in a later second) once it was flushed. The default
    // implementation keeps no pending mark.
    virtual Status record_push_outcomes(const std::vector<PushOutcomeRecord>& batch);
};

}  // namespace courier::db
