// Webhook event bodies (SPEC "Webhooks", docs/webhooks.md): NanoMDM's
// MicroMDM-compatible JSON for check-ins and command reports, and Courier's
// own events in the same envelope under "courier_event".
//
// Field names, key order (alphabetical, as NanoMDM's encoder writes them)
// and encodings follow NanoMDM's service/webhook: raw_payload is the device's
// body byte for byte in standard base64; udid and enrollment_id are present
// only when the device sent them (enrollment_id: User Enrollment);
// url_params only when the request had a query; created_at is RFC 3339 with
// the fraction Go writes (trailing zeros trimmed).
#pragma once

#include <boost/json/object.hpp>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "db/webhook_store.h"
#include "mdm/checkin.h"

namespace courier::server::webhook {

// Who an event is about.
struct EventSubject {
    mdm::EnrollmentIdentity identity;
    std::map<std::string, std::string> url_params;  // the request's query; empty: none
};

// "2026-12-01T04:41:21.12Z" (Go's RFC 3339 with nanoseconds, zeros trimmed).
std::string format_created_at(SysTimeMs t);

// A check-in event: topic "mdm.<MessageType>". with_tally for TokenUpdate
// (the store records the tally; add_tally puts it into the body).
db::OutboxEvent checkin_event(std::string_view message_type, const EventSubject& who,
                              std::string_view raw_body, SysTimeMs now);
// A command report (Idle included): topic "mdm.Connect".
db::OutboxEvent acknowledge_event(const EventSubject& who, std::string_view status,
                                  std::string_view command_uuid, std::string_view raw_body,
                                  SysTimeMs now);
// One of Courier's own events ("courier.…"); data becomes courier_event.
// enrollment_id orders it with that enrollment's events (empty: unordered).
db::OutboxEvent courier_event(std::string_view topic, const std::string& enrollment_id,
                              boost::json::object data, SysTimeMs now);

// The body with checkin_event.token_update_tally set (NanoMDM's key order
// kept); the body unchanged when it is not a check-in event.
std::string add_tally(const std::string& body, int64_t tally);

}  // namespace courier::server::webhook
