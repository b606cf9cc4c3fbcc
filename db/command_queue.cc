#include "db/command_queue.h"

namespace courier::db {

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

}  // namespace courier::db
