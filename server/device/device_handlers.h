// The thin HTTP handlers of the device endpoints: PUT /checkin, PUT /mdm and
// GET /enroll. The services decide (server/device/device_service.h,
// enroll_service.h); these turn their results into responses, with the one
// Status → HTTP mapping (server/http/http.h, Audience::kDevice on the device
// channel: devices are never answered 401).
#pragma once

#include <optional>

#include "server/device/device_service.h"
#include "server/device/enroll_service.h"
#include "server/http/http.h"

namespace courier::server {

// kEmpty → 200, kDeclined → 410, kPlist → 200 application/xml, kJson → 200
// application/json, kNoSuchDeclaration → 404, kRefused → 400 {"error": ...},
// kRetired → 403 com.apple.unrecognized.device, kFailed → status_response.
// The enrollment goes into Response::log_enrollment.
Response device_response(DeviceResult r);
// kProfile → 200 application/x-apple-aspen-config with a Content-Disposition,
// kHead → 200 with that Content-Type, kNoPushCert → 503, kFailed →
// status_response (the admin mapping: a browser fetches /enroll).
Response enroll_response(EnrollResult r);

// PUT /mdm (command_channel) and PUT /checkin.
Response handle_device_message(DeviceService& s, Request& req, bool command_channel);
// The I/O thread's answer to an Idle with nothing queued, or nullopt: the
// request goes to a worker (DeviceService::handle_idle_without_writes).
std::optional<Response> handle_idle_inline(DeviceService& s, Request& req);
// GET (and HEAD) /enroll.
Response handle_enroll(EnrollService& s, Request& req);

}  // namespace courier::server
