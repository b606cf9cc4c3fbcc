#include "db/webhook_store.h"

namespace courier::db {

bool topic_matches(const std::vector<std::string>& prefixes, std::string_view topic) {
    for (const auto& p : prefixes)
        if (topic.substr(0, p.size()) == p) return true;
    return false;
}

const char* delivery_status_name(DeliveryStatus s) {
    switch (s) {
        case DeliveryStatus::kPending:
            return "pending";
        case DeliveryStatus::kDelivered:
            return "delivered";
        case DeliveryStatus::kFailed:
            return "failed";
    }
    return "pending";
}

std::optional<DeliveryStatus> parse_delivery_status(std::string_view s) {
    if (s == "pending") return DeliveryStatus::kPending;
    if (s == "delivered") return DeliveryStatus::kDelivered;
    if (s == "failed") return DeliveryStatus::kFailed;
    return std::nullopt;
}

Status WebhookStore::finish_deliveries(
    const std::vector<std::pair<ClaimedDelivery, DeliveryOutcome>>& batch, SysTime now) {
    for (const auto& [claim, outcome] : batch) {
        Status s = finish_delivery(claim, outcome, now);
        if (!s.is_ok() && s.code() != Code::kConflict) return s;
    }
    return Status::ok();
}

}  // namespace courier::db
