#include "server/device/device_handlers.h"

#include <utility>

namespace courier::server {

namespace {
// The answer a retired device gets (docs/device-endpoints.md): it unenrolls.
constexpr std::string_view kRetiredBody =
    R"({"code":"com.apple.unrecognized.device","description":"This device was retired by its administrator.","message":"This device is no longer managed by this organization."})";
constexpr std::string_view kProfileType = "application/x-apple-aspen-config";
}  // namespace

Response device_response(DeviceResult r) {
    Response out;
    switch (r.kind) {
        case DeviceResult::Kind::kEmpty:
            out = Response::empty(200);
            break;
        case DeviceResult::Kind::kDeclined:
            out = Response::empty(410);
            break;
        case DeviceResult::Kind::kPlist:
            out = Response::plist(std::move(r.body));
            break;
        case DeviceResult::Kind::kJson:
            out = Response::json(200, std::move(r.body));
            break;
        case DeviceResult::Kind::kNoSuchDeclaration:
            out = Response::error(404, "no such declaration");
            break;
        case DeviceResult::Kind::kRefused:
            out = Response::error(400, r.body);
            break;
        case DeviceResult::Kind::kRetired:
            return Response::json(403, std::string(kRetiredBody));
        case DeviceResult::Kind::kFailed:
            return status_response(r.status, r.context, Audience::kDevice);
    }
    out.log_enrollment = std::move(r.enrollment);
    return out;
}

Response enroll_response(EnrollResult r) {
    switch (r.kind) {
        case EnrollResult::Kind::kProfile: {
            Response out;
            out.status = 200;
            out.headers["Content-Type"] = kProfileType;
            out.headers["Content-Disposition"] = "attachment; filename=\"courier.mobileconfig\"";
            out.body = std::move(r.profile);
            return out;
        }
        case EnrollResult::Kind::kHead: {
            Response head;
            head.status = 200;
            head.headers["Content-Type"] = kProfileType;
            return head;
        }
        case EnrollResult::Kind::kNoPushCert:
            return Response::error(503,
                                   "no push certificate yet: import one (PUT /v1/pushcert or "
                                   "`courier pushcert import`) before enrolling devices");
        case EnrollResult::Kind::kFailed:
            break;
    }
    return status_response(r.status);
}

Response handle_device_message(DeviceService& s, Request& req, bool command_channel) {
    return device_response(s.handle(req, command_channel));
}

std::optional<Response> handle_idle_inline(DeviceService& s, Request& req) {
    auto r = s.handle_idle_without_writes(req);
    if (!r) return std::nullopt;  // to a worker
    return device_response(std::move(*r));
}

Response handle_enroll(EnrollService& s, Request& req) {
    return enroll_response(s.handle(req));
}

}  // namespace courier::server
