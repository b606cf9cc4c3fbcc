#include "server/webhook/webhook_events.h"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "common/encoding.h"
#include "db/command_finished_event.h"

namespace courier::server::webhook {

namespace json = boost::json;

namespace {

// NanoMDM's enrollment types (its "ids" object).
const char* ids_type(mdm::EnrollmentType t) {
    switch (t) {
        case mdm::EnrollmentType::kDevice:
            return "Device";
        case mdm::EnrollmentType::kUser:
            return "User";
        case mdm::EnrollmentType::kSharedIPad:
            return "Shared iPad";
        case mdm::EnrollmentType::kUserEnrollmentDevice:
            return "User Enrollment (Device)";
        case mdm::EnrollmentType::kUserEnrollmentUser:
            return "User Enrollment";
    }
    return "Device";
}

bool user_enrollment(mdm::EnrollmentType t) {
    return t == mdm::EnrollmentType::kUserEnrollmentDevice ||
           t == mdm::EnrollmentType::kUserEnrollmentUser;
}

// The fields check-in and acknowledge events share, in NanoMDM's order:
// enrollment_id, ids, raw_payload (then the caller's), udid, url_params.
json::object ids_of(const mdm::EnrollmentIdentity& id) {
    json::object ids;
    ids["id"] = id.enrollment_id();
    if (id.is_user_channel()) ids["parent_id"] = id.device_id;
    ids["type"] = ids_type(id.type);
    return ids;
}

void add_tail(json::object& o, const EventSubject& who) {
    if (!user_enrollment(who.identity.type)) o["udid"] = who.identity.device_id;
    if (!who.url_params.empty()) {
        json::object p;
        for (const auto& [k, v] : who.url_params) p[k] = v;
        o["url_params"] = std::move(p);
    }
}

db::OutboxEvent envelope(std::string_view topic, const std::string& enrollment_id,
                         std::string_view member, json::object inner, SysTimeMs now) {
    db::OutboxEvent ev;
    ev.event_id = db::new_event_id();
    ev.topic = std::string(topic);
    ev.enrollment_id = enrollment_id;
    ev.created_at = std::chrono::floor<std::chrono::seconds>(now);
    // Alphabetical, as NanoMDM writes them: acknowledge_event | checkin_event
    // | courier_event, created_at, event_id, topic.
    json::object o;
    o[member] = std::move(inner);
    o["created_at"] = format_created_at(now);
    o["event_id"] = ev.event_id;
    o["topic"] = ev.topic;
    ev.body = json::serialize(o);
    return ev;
}

}  // namespace

std::string format_created_at(SysTimeMs t) {
    return db::format_event_time(t);
}

db::OutboxEvent checkin_event(std::string_view message_type, const EventSubject& who,
                              std::string_view raw_body, SysTimeMs now) {
    json::object c;
    if (user_enrollment(who.identity.type)) c["enrollment_id"] = who.identity.device_id;
    c["ids"] = ids_of(who.identity);
    c["raw_payload"] = base64_encode(raw_body);
    add_tail(c, who);
    auto ev = envelope(fmt::format("mdm.{}", message_type), who.identity.enrollment_id(),
                       "checkin_event", std::move(c), now);
    ev.with_tally = message_type == "TokenUpdate";
    return ev;
}

db::OutboxEvent acknowledge_event(const EventSubject& who, std::string_view status,
                                  std::string_view command_uuid, std::string_view raw_body,
                                  SysTimeMs now) {
    json::object a;
    if (!command_uuid.empty()) a["command_uuid"] = command_uuid;
    if (user_enrollment(who.identity.type)) a["enrollment_id"] = who.identity.device_id;
    a["ids"] = ids_of(who.identity);
    a["raw_payload"] = base64_encode(raw_body);
    a["status"] = status;
    add_tail(a, who);
    return envelope("mdm.Connect", who.identity.enrollment_id(), "acknowledge_event", std::move(a),
                    now);
}

db::OutboxEvent courier_event(std::string_view topic, const std::string& enrollment_id,
                              json::object data, SysTimeMs now) {
    return envelope(topic, enrollment_id, "courier_event", std::move(data), now);
}

std::string add_tally(const std::string& body, int64_t tally) {
    boost::system::error_code ec;
    json::value v = json::parse(body, ec);
    if (ec || !v.is_object()) return body;
    auto* c = v.as_object().if_contains("checkin_event");
    if (!c || !c->is_object()) return body;
    json::object out;
    bool placed = false;
    for (auto& kv : c->as_object()) {
        if (!placed && kv.key() > std::string_view("token_update_tally")) {
            out["token_update_tally"] = tally;
            placed = true;
        }
        if (kv.key() != "token_update_tally") out[kv.key()] = kv.value();
    }
    if (!placed) out["token_update_tally"] = tally;
    *c = std::move(out);
    return json::serialize(v);
}

}  // namespace courier::server::webhook
