#include "server/admin/admin_json.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "common/plist/plist.h"
#include "mdm/json_plist.h"

namespace courier::server {

namespace json = boost::json;

json::value time_json(const std::optional<SysTime>& t) {
    if (!t) return nullptr;
    return json::value(format_rfc3339(*t));
}

json::object device_json(const db::Enrollment& e) {
    json::object o;
    o["id"] = e.id;
    o["udid"] = e.udid;
    o["device_id"] = e.device_id;
    o["user_id"] = e.user_id.empty() ? json::value(nullptr) : json::value(e.user_id);
    o["enrollment_type"] = e.type;
    o["serial_number"] = e.serial_number;
    o["model"] = e.model;
    o["model_name"] = e.model_name;
    o["product_name"] = e.product_name;
    o["device_name"] = e.device_name;
    o["os_version"] = e.os_version;
    o["build_version"] = e.build_version;
    o["topic"] = e.topic;
    o["state"] = db::state_name(e.state);
    o["push_token_present"] = !e.push_token.empty();
    o["token_valid"] = !e.push_token.empty() && e.token_valid;
    o["unlock_token_present"] = e.has_unlock_token;
    o["awaiting_configuration"] = e.awaiting_configuration;
    o["last_seen"] = time_json(e.last_seen);
    o["created_at"] = time_json(e.created_at);
    o["identity_expires_at"] = time_json(e.identity_not_after);
    o["queued"] = e.queued;
    o["facts_truncated"] = e.facts_truncated;
    return o;
}

json::object command_json(const db::CommandInfo& c, bool with_results) {
    json::object o;
    o["command_uuid"] = c.uuid;
    o["request_type"] = c.request_type;
    o["created_at"] = format_rfc3339(c.created_at);
    o["expires_at"] = time_json(c.expires_at);
    json::object targets;
    for (const auto& t : c.targets) {
        json::object to;
        to["status"] = db::target_status_name(t.status);
        to["updated_at"] = format_rfc3339(t.updated_at);
        if (with_results) {
            json::value result = nullptr;
            if (!t.result.empty()) {
                auto parsed = plist::parse(t.result);
                if (parsed.is_ok()) result = mdm::plist_to_json(*parsed);
            }
            to["result"] = std::move(result);
        }
        targets[t.enrollment_id] = std::move(to);
    }
    o["targets"] = std::move(targets);
    return o;
}

Response json_response(int status, const json::value& v) {
    return Response::json(status, json::serialize(v));
}

std::vector<std::string> split_ids(const std::string& s) {
    std::vector<std::string> out;
    std::set<std::string> seen;
    size_t start = 0;
    while (start <= s.size()) {
        size_t end = s.find(',', start);
        if (end == std::string::npos) end = s.size();
        std::string id = s.substr(start, end - start);
        if (!id.empty() && seen.insert(id).second) out.push_back(std::move(id));
        start = end + 1;
    }
    return out;
}

Result<db::Page> page_from(const Request& req) {
    db::Page p;
    std::string limit = req.query_or("limit");
    if (!limit.empty()) {
        int64_t n = 0;
        auto [ptr, ec] = std::from_chars(limit.data(), limit.data() + limit.size(), n);
        if (ec != std::errc() || ptr != limit.data() + limit.size() || n < 1 || n > 1000)
            return invalid("limit must be a whole number from 1 to 1000");
        p.limit = n;
    }
    p.cursor = req.query_or("cursor");
    return p;
}

json::object page_json(json::array items, const std::string& next_cursor) {
    json::object o;
    o["items"] = std::move(items);
    o["next_cursor"] = next_cursor.empty() ? json::value(nullptr) : json::value(next_cursor);
    return o;
}

}  // namespace courier::server
