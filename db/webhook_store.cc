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

std::vector<ClaimedDelivery> WebhookStore::take_committed(SysTime, std::chrono::seconds, size_t) {
    return {};
}

Status WebhookStore::finish_deliveries(
    const std::vector<std::pair<ClaimedDelivery, DeliveryOutcome>>& batch, SysTime now) {
    for (const auto& [claim, outcome] : batch) {
        Status s = finish_delivery(claim, outcome, now);
        if (!s.is_ok() && s.code() != Code::kConflict) return s;
    }
    return Status::ok();
}

std::string join_topics(const std::vector<std::string>& topics) {
    std::string out;
    for (const auto& t : topics) {
        if (!out.empty()) out += '\n';
        out += t;
    }
    return out;
}

std::vector<std::string> split_topics(const std::string& stored) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= stored.size() && !stored.empty()) {
        size_t nl = stored.find('\n', start);
        if (nl == std::string::npos) nl = stored.size();
        out.push_back(stored.substr(start, nl - start));
        start = nl + 1;
    }
    return out;
}

}  // namespace courier::db
