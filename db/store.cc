#include "db/store.h"

namespace courier::db {

const char* state_name(EnrollmentState s) {
    switch (s) {
        case EnrollmentState::kPending:
            return "pending";
        case EnrollmentState::kEnrolled:
            return "enrolled";
        case EnrollmentState::kUnenrolled:
            return "unenrolled";
        case EnrollmentState::kRetired:
            return "retired";
    }
    return "pending";
}

const char* binding_state_name(BindingState s) {
    switch (s) {
        case BindingState::kActive:
            return "active";
        case BindingState::kPending:
            return "pending";
        case BindingState::kApproved:
            return "approved";
        case BindingState::kSuperseded:
            return "superseded";
        case BindingState::kRevoked:
            return "revoked";
    }
    return "active";
}

const char* target_status_name(TargetStatus s) {
    switch (s) {
        case TargetStatus::kQueued:
            return "queued";
        case TargetStatus::kSent:
            return "sent";
        case TargetStatus::kAcknowledged:
            return "acknowledged";
        case TargetStatus::kError:
            return "error";
        case TargetStatus::kCommandFormatError:
            return "command_format_error";
        case TargetStatus::kNotNow:
            return "notnow";
        case TargetStatus::kCanceled:
            return "canceled";
        case TargetStatus::kExpired:
            return "expired";
    }
    return "queued";
}

std::optional<TargetStatus> parse_target_status(std::string_view s) {
    for (auto st : {TargetStatus::kQueued, TargetStatus::kSent, TargetStatus::kAcknowledged,
                    TargetStatus::kError, TargetStatus::kCommandFormatError, TargetStatus::kNotNow,
                    TargetStatus::kCanceled, TargetStatus::kExpired}) {
        if (s == target_status_name(st)) return st;
    }
    return std::nullopt;
}

Status Store::record_push_outcomes(const std::vector<PushOutcomeRecord>& batch) {
    for (const auto& r : batch) {
        if (Status s = record_push_attempt(r.attempt); !s) return s;
        Status s = schedule_repush(r.attempt.enrollment_id, r.repush_at, r.attempts);
        if (!s && s.code() != Code::kNotFound) return s;
    }
    return Status::ok();
}

}  // namespace courier::db
