#include "db/command_finished_event.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <cstdint>

#include "common/encoding.h"

namespace courier::db {

std::string new_event_id() {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    std::string b = random_bytes(16);
    for (int i = 0; i < 6; ++i)
        b[static_cast<size_t>(i)] =
            static_cast<char>((static_cast<uint64_t>(ms) >> (40 - 8 * i)) & 0xff);
    b[6] = static_cast<char>((b[6] & 0x0f) | 0x70);
    b[8] = static_cast<char>((b[8] & 0x3f) | 0x80);
    std::string h = hex_encode(b);
    for (auto& c : h) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
           "-" + h.substr(20);
}

std::string format_event_time(SysTimeMs t) {
    auto secs = std::chrono::floor<std::chrono::seconds>(t);
    std::string base = format_rfc3339(secs);  // "...:SSZ"
    int64_t ms = (t - secs).count();
    if (ms == 0) return base;
    std::string frac = fmt::format("{:03d}", ms);
    while (!frac.empty() && frac.back() == '0') frac.pop_back();
    base.pop_back();  // 'Z'
    return base + "." + frac + "Z";
}

OutboxEvent command_finished_event(const std::string& command_uuid,
                                   const std::string& enrollment_id, TargetStatus status,
                                   SysTimeMs now) {
    OutboxEvent ev;
    ev.event_id = new_event_id();
    ev.topic = kCommandFinishedTopic;
    ev.enrollment_id = enrollment_id;
    ev.created_at = std::chrono::floor<std::chrono::seconds>(now);
    // Alphabetical, as NanoMDM's encoder writes an envelope.
    boost::json::object data;
    data["command_uuid"] = command_uuid;
    data["enrollment_id"] = enrollment_id;
    data["status"] = target_status_name(status);
    boost::json::object o;
    o["courier_event"] = std::move(data);
    o["created_at"] = format_event_time(now);
    o["event_id"] = ev.event_id;
    o["topic"] = ev.topic;
    ev.body = boost::json::serialize(o);
    return ev;
}

}  // namespace courier::db
