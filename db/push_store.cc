#include "db/push_store.h"

namespace courier::db {

Status PushStore::record_push_outcomes(const std::vector<PushOutcomeRecord>& batch) {
    for (const auto& r : batch) {
        if (Status s = record_push_attempt(r.attempt); !s) return s;
        Status s = schedule_repush(r.attempt.enrollment_id, r.repush_at, r.attempts);
        if (!s && s.code() != Code::kNotFound) return s;
    }
    return Status::ok();
}

}  // namespace courier::db
