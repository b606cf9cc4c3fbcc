#include "server/device_service.h"

#include <spdlog/spdlog.h>

#include "apns/push_service.h"
#include "common/encoding.h"
#include "mdm/checkin.h"

namespace courier::server {

namespace {
const char kCommandContentType[] = "application/xml";

Response command_response(const db::DeliveredCommand& cmd) {
    Response r = Response::plist(cmd.plist);
    r.headers["Content-Type"] = kCommandContentType;
    return r;
}

std::string declarations_token() {
    return "courier-empty-1";
}
}  // namespace

DeviceService::DeviceService(db::Store& store, DeviceAuthenticator& auth, apns::PushService* push,
                             const Clock& clock, Metrics& metrics)
    : store_(store), auth_(auth), push_(push), clock_(clock), metrics_(metrics) {
    metrics_.help("courier_checkins_total", "counter", "device messages by message type");
    metrics_.help("courier_commands_total", "counter",
                  "command targets by the status they reached (queued, sent, acknowledged, ...)");
}

Response DeviceService::refuse(const Request& req, const std::string& who, const std::string& why) {
    spdlog::warn("device request refused: {} {} from {} ({}): {}", req.method, req.path,
                 req.remote_address, who.empty() ? "unknown device" : who, why);
    metrics_.counter("courier_device_refusals_total").inc();
    Response r = Response::error(400, why);
    r.log_enrollment = who;
    return r;
}

Response DeviceService::retired_answer() {
    Response r = Response::json(
        403,
        R"({"code":"com.apple.unrecognized.device","description":"This device was retired by its administrator.","message":"This device is no longer managed by this organization."})");
    return r;
}

Status DeviceService::check_binding(const std::string& device_id, const DeviceCredential& cred,
                                    bool may_bind, bool* unbound) {
    *unbound = false;
    auto bound = store_.cert_binding(cred.cert_sha256);
    if (!bound.is_ok()) return bound.status();
    if (bound->has_value()) {
        if (**bound == device_id) return Status::ok();
        return {Code::kUnauthorized, "certificate is bound to another enrollment"};
    }
    if (may_bind) {
        *unbound = true;
        return Status::ok();
    }
    return {Code::kUnauthorized, "certificate is not bound to this enrollment"};
}

Response DeviceService::handle(Request& req, bool command_channel) {
    return *process(req, command_channel, true);
}

std::optional<Response> DeviceService::handle_idle_without_writes(Request& req) {
    auto scope = store_.read_scope();  // its three reads in one transaction
    return process(req, true, false);
}

std::optional<Response> DeviceService::process(Request& req, bool command_channel,
                                               bool writes_allowed) {
    auto cred = auth_.authenticate(req);
    if (!cred.is_ok()) return refuse(req, "", cred.status().message());

    auto decoded = mdm::decode_device_message(req.body);
    if (!decoded.is_ok()) {
        if (decoded.status().code() == Code::kTooLarge)
            return Response::error(413, decoded.status().message());
        return refuse(req, "", decoded.status().message());
    }
    if (!writes_allowed &&
        (decoded->checkin || decoded->report->status != mdm::ReportStatus::kIdle))
        return std::nullopt;
    const auto& ident = decoded->checkin ? decoded->checkin->identity : decoded->report->identity;
    const std::string id = ident.enrollment_id();
    const std::string& device_id = ident.device_id;
    const auto now = clock_.now();

    auto existing = store_.enrollment(id);
    if (!existing.is_ok() && existing.status().code() != Code::kNotFound)
        return Response::error(503, "store unavailable");
    if (existing.is_ok() && existing->state == db::EnrollmentState::kRetired) {
        spdlog::info("retired device {} answered with com.apple.unrecognized.device", id);
        return retired_answer();
    }

    if (decoded->checkin) {
        auto& msg = *decoded->checkin;
        metrics_
            .counter("courier_checkins_total", {{"message_type", mdm::message_type_name(msg.type)}})
            .inc();
        bool is_auth = msg.type == mdm::MessageType::kAuthenticate;
        bool may_bind = is_auth;
        if (msg.type == mdm::MessageType::kTokenUpdate) {
            auto has = store_.has_binding(device_id);
            if (!has.is_ok()) return Response::error(503, "store unavailable");
            may_bind = !*has;
        }
        bool unbound = false;
        if (auto s = check_binding(device_id, *cred, may_bind, &unbound); !s.is_ok()) {
            if (s.code() == Code::kUnauthorized) return refuse(req, id, s.message());
            return Response::error(503, "store unavailable");
        }
        Status st;
        Response answer = Response::empty(200);
        switch (msg.type) {
            case mdm::MessageType::kAuthenticate: {
                if (unbound) {
                    auto has = store_.has_binding(device_id);
                    if (has.is_ok() && *has)
                        spdlog::warn(
                            "device {} binds a further identity certificate {} "
                            "(re-enrollment or renewed identity)",
                            device_id, cred->cert_sha256.substr(0, 16));
                }
                db::AuthenticateInput in;
                in.id = id;
                in.device_id = device_id;
                in.user_id = ident.user_id;
                in.type = mdm::enrollment_type_name(ident.type);
                in.topic = msg.topic;
                if (ident.type == mdm::EnrollmentType::kDevice ||
                    ident.type == mdm::EnrollmentType::kUser ||
                    ident.type == mdm::EnrollmentType::kSharedIPad)
                    in.udid = device_id;
                in.serial_number = msg.facts.serial_number;
                in.model = msg.facts.model;
                in.model_name = msg.facts.model_name;
                in.product_name = msg.facts.product_name;
                in.os_version = msg.facts.os_version;
                in.build_version = msg.facts.build_version;
                in.device_name = msg.facts.device_name;
                in.imei = msg.facts.imei;
                in.meid = msg.facts.meid;
                in.cert_sha256 = unbound ? cred->cert_sha256 : "";
                in.cert_not_after = cred->not_after;
                st = store_.apply_authenticate(in, now);
                break;
            }
            case mdm::MessageType::kTokenUpdate: {
                db::TokenUpdateInput in;
                in.id = id;
                in.device_id = device_id;
                in.user_id = ident.user_id;
                in.type = mdm::enrollment_type_name(ident.type);
                in.topic = msg.topic;
                in.push_token = msg.token;
                in.push_magic = msg.push_magic;
                in.unlock_token = msg.unlock_token;
                in.awaiting_configuration = msg.awaiting_configuration;
                in.cert_sha256 = unbound ? cred->cert_sha256 : "";
                in.cert_not_after = cred->not_after;
                if (!msg.topic.empty()) {
                    auto pc = store_.active_push_cert(msg.topic);
                    if (pc.is_ok() && !pc->has_value())
                        spdlog::warn(
                            "TokenUpdate from {} names topic {} which has no push "
                            "certificate: no push can reach it",
                            id, msg.topic);
                }
                st = store_.apply_token_update(in, now);
                if (st.is_ok() && push_) {
                    auto pending = store_.has_pending(id, now);
                    if (pending.is_ok() && *pending) push_->push(id, [](const auto&) {});
                }
                break;
            }
            case mdm::MessageType::kCheckOut:
                st = store_.apply_checkout(id, now);
                break;
            case mdm::MessageType::kSetBootstrapToken:
                st = store_.set_bootstrap_token(device_id, msg.bootstrap_token.value_or(""));
                break;
            case mdm::MessageType::kGetBootstrapToken: {
                auto tok = store_.bootstrap_token(device_id);
                if (!tok.is_ok()) return Response::error(503, "store unavailable");
                if (tok->has_value() && !(*tok)->empty()) {
                    plist::Dict d;
                    d.set("BootstrapToken", plist::Data{**tok});
                    answer = Response::plist(plist::write_xml(plist::Value(std::move(d))));
                }
                break;
            }
            case mdm::MessageType::kUserAuthenticate:
                // Courier does not manage macOS user channels beyond their
                // TokenUpdate: decline the user (protocol doc §1).
                answer = Response::empty(410);
                break;
            case mdm::MessageType::kDeclarativeManagement:
                if (msg.endpoint == "tokens") {
                    answer = Response::json(200, R"({"SyncTokens":{"DeclarationsToken":")" +
                                                     declarations_token() +
                                                     R"(","Timestamp":"2026-01-01T00:00:00Z"}})");
                } else if (msg.endpoint == "declaration-items") {
                    answer = Response::json(
                        200,
                        R"({"Declarations":{"Activations":[],"Assets":[],"Configurations":[],"Management":[]},"DeclarationsToken":")" +
                            declarations_token() + R"("})");
                } else if (msg.endpoint == "status") {
                    answer = Response::empty(200);
                } else {
                    answer = Response::error(404, "no such declaration");
                }
                break;
            case mdm::MessageType::kGetToken:
                return refuse(req, id, "GetToken is not supported by this server");
        }
        if (!st.is_ok()) {
            spdlog::error("{} for {}: {}", mdm::message_type_name(msg.type), id, st.to_string());
            return Response::error(st.code() == Code::kNotFound ? 400 : 503, st.message());
        }
        store_.touch_last_seen({id}, now);
        answer.log_enrollment = id;
        return answer;
    }

    // Command report.
    auto& rep = *decoded->report;
    bool unbound = false;
    if (auto s = check_binding(device_id, *cred, false, &unbound); !s.is_ok()) {
        if (s.code() == Code::kUnauthorized) return refuse(req, id, s.message());
        return Response::error(503, "store unavailable");
    }
    if (!existing.is_ok()) return refuse(req, id, "no enrollment " + id + " (Authenticate first)");
    (void)command_channel;

    Result<std::optional<db::DeliveredCommand>> next = std::optional<db::DeliveredCommand>{};
    if (rep.status == mdm::ReportStatus::kIdle) {
        auto pending = store_.has_pending(id, now);
        if (!pending.is_ok()) return Response::error(503, "store unavailable");
        // A pending push is cleared in the transaction that reads the queue
        // (SPEC "pending push"); only an Idle that finds one set writes.
        bool clear_push = existing->push_pending_at(now);
        if ((*pending || clear_push) && !writes_allowed) return std::nullopt;  // a write
        metrics_.counter("courier_checkins_total", {{"message_type", "Idle"}}).inc();
        if (*pending || clear_push) next = store_.next_command(id, true, now);
    } else {
        metrics_
            .counter("courier_checkins_total",
                     {{"message_type", mdm::report_status_name(rep.status)}})
            .inc();
        db::TargetStatus ts = db::TargetStatus::kAcknowledged;
        switch (rep.status) {
            case mdm::ReportStatus::kAcknowledged:
                ts = db::TargetStatus::kAcknowledged;
                break;
            case mdm::ReportStatus::kError:
                ts = db::TargetStatus::kError;
                break;
            case mdm::ReportStatus::kCommandFormatError:
                ts = db::TargetStatus::kCommandFormatError;
                break;
            case mdm::ReportStatus::kNotNow:
                ts = db::TargetStatus::kNotNow;
                break;
            case mdm::ReportStatus::kIdle:
                break;
        }
        next = store_.apply_report(id, rep.command_uuid, ts, req.body, now);
        if (next.is_ok())
            metrics_.counter("courier_commands_total", {{"status", db::target_status_name(ts)}})
                .inc();
        if (!next.is_ok() && next.status().code() == Code::kNotFound) {
            spdlog::warn("{} reported {} for unknown command {}; answering as Idle", id,
                         mdm::report_status_name(rep.status), rep.command_uuid);
            next = store_.next_command(id, true, now);
        }
    }
    if (!next.is_ok()) {
        spdlog::error("command channel for {}: {}", id, next.status().to_string());
        return Response::error(503, "store unavailable");
    }
    store_.touch_last_seen({id}, now);
    if (next->has_value()) metrics_.counter("courier_commands_total", {{"status", "sent"}}).inc();
    Response r = next->has_value() ? command_response(**next) : Response::empty(200);
    r.log_enrollment = id;
    return r;
}

}  // namespace courier::server
