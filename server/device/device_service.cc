#include "server/device/device_service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include "apns/push_service.h"
#include "common/encoding.h"
#include "db/command_finished_event.h"
#include "mdm/checkin.h"
#include "server/webhook/webhook_events.h"
#include "server/webhook/webhook_service.h"

namespace courier::server {

namespace {
// The superseded-identity alarm (log, timeline, webhook): once an hour per
// certificate at most; the counter counts every use.
constexpr std::chrono::hours kAlarmInterval{1};

std::string declarations_token() {
    return "courier-empty-1";
}

// Keeps the first db::kMaxFactBytes of a device fact, cut on a UTF-8
// character boundary; sets *cut when it cut anything.
std::string fact(const std::string& s, bool* cut) {
    if (s.size() <= db::kMaxFactBytes) return s;
    *cut = true;
    size_t n = db::kMaxFactBytes;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
    return s.substr(0, n);
}
}  // namespace

DeviceService::DeviceService(const Stores& stores, DeviceAuthenticator& auth,
                             apns::PushService* push, const Clock& clock, Metrics& metrics)
    : enrollments_(stores.enrollments),
      bindings_(stores.bindings),
      queue_(stores.queue),
      push_certs_(stores.push_certs),
      read_scopes_(stores.read_scopes),
      auth_(auth),
      push_(push),
      clock_(clock),
      metrics_(metrics) {
    metrics_.help("courier_checkins_total", "counter", "device messages by message type");
    metrics_.help("courier_commands_total", "counter",
                  "command targets by the status they reached (queued, sent, acknowledged, ...)");
    metrics_.help("courier_superseded_identity_total", "counter",
                  "requests presenting a superseded or revoked identity certificate (a takeover "
                  "signature, SPEC re-binding)");
    metrics_.counter("courier_superseded_identity_total");
}

DeviceResult DeviceService::refuse(const Request& req, const std::string& who,
                                   const std::string& why) {
    spdlog::warn("device request refused: {} {} from {} ({}): {}", req.method, req.path,
                 req.remote_address, who.empty() ? "unknown device" : who, why);
    metrics_.counter("courier_device_refusals_total").inc();
    DeviceResult r;
    r.kind = DeviceResult::Kind::kRefused;
    r.body = why;
    r.enrollment = who;
    return r;
}

DeviceResult DeviceService::superseded_use(const Request& req, const db::Binding& b,
                                           const std::string& claimed_id, SysTime now) {
    metrics_.counter("courier_superseded_identity_total").inc();
    DeviceResult refusal =
        refuse(req, claimed_id,
               b.state == db::BindingState::kRevoked
                   ? "identity certificate was revoked by an administrator"
                   : "identity certificate was superseded by a later enrollment");
    if (b.alarm_at && now - *b.alarm_at < kAlarmInterval) return refusal;  // alarmed this hour
    // The courier.identity.superseded webhook event, on the alarm's
    // once-an-hour schedule: written only when the alarm is.
    std::unique_ptr<db::EventAttachment> events;
    if (webhooks_ && webhooks_->wants("courier.identity.superseded")) {
        boost::json::object o;
        o["device_id"] = b.device_id;
        o["claimed_id"] = claimed_id;
        o["cert_sha256"] = b.cert_sha256;
        o["state"] = db::binding_state_name(b.state);
        o["remote_address"] = req.remote_address;
        auto ev = webhook::courier_event("courier.identity.superseded", b.device_id, std::move(o),
                                         clock_.now_ms());
        ev.only_if_effective = true;
        std::vector<db::OutboxEvent> evs;
        evs.push_back(std::move(ev));
        events = webhooks_->attach(std::move(evs));
    }
    auto noted = bindings_.note_superseded_use(b.cert_sha256, now);
    events.reset();
    if (!noted.is_ok() || !*noted) return refusal;
    spdlog::warn(
        "{} identity certificate sha256:{}… of device {} presented again by {} for {}: a "
        "takeover, or the device's old holder (refused; alarmed at most once an hour)",
        db::binding_state_name(b.state), b.cert_sha256.substr(0, 16), b.device_id,
        req.remote_address, claimed_id);
    return refusal;
}

std::optional<DeviceResult> DeviceService::require_binding(const Request& req,
                                                           const std::string& id,
                                                           const std::string& device_id,
                                                           const DeviceCredential& cred,
                                                           bool writes_allowed, bool* defer) {
    *defer = false;
    auto b = bindings_.binding(cred.cert_sha256);
    if (!b.is_ok()) return DeviceResult::failed(b.status(), "store");
    if (!b->has_value())
        return refuse(req, id, "certificate is not bound to this enrollment (Authenticate first)");
    const db::Binding& bound = **b;
    const auto now = clock_.now();
    if (bound.state == db::BindingState::kSuperseded || bound.state == db::BindingState::kRevoked) {
        bool alarm_due = !bound.alarm_at || now - *bound.alarm_at >= kAlarmInterval;
        if (!writes_allowed && alarm_due) {
            *defer = true;  // the alarm is a write: a worker does it
            return std::nullopt;
        }
        return superseded_use(req, bound, id, now);
    }
    if (bound.device_id != device_id)
        return refuse(req, id, "certificate is bound to another enrollment");
    if (bound.state != db::BindingState::kActive)
        return refuse(req, id,
                      "certificate is not bound to this enrollment yet: its re-binding awaits an "
                      "administrator's approval, then Authenticate");
    bindings_.touch_binding(cred.cert_sha256, now);
    return std::nullopt;
}

std::optional<DeviceResult> DeviceService::admit_authenticate(const Request& req,
                                                              const std::string& id,
                                                              const std::string& device_id,
                                                              const DeviceCredential& cred,
                                                              SysTime now) {
    auto b = bindings_.binding(cred.cert_sha256);
    if (!b.is_ok()) return DeviceResult::failed(b.status(), "store");
    if (b->has_value()) {
        const db::Binding& row = **b;
        if (row.state == db::BindingState::kSuperseded || row.state == db::BindingState::kRevoked)
            return superseded_use(req, row, id, now);
        if (row.device_id != device_id)
            return refuse(req, id,
                          "a bound certificate cannot move: it is bound to another "
                          "enrollment");
        if (row.state == db::BindingState::kActive) return std::nullopt;
    }
    // A binding to make (new certificate, or a pending/approved re-binding).
    if (!policy_.enroll_open && cred.enrollment_ca) {
        auto token = bindings_.issued_with_token(cred.cert_sha256);
        if (!token.is_ok()) return DeviceResult::failed(token.status(), "store");
        if (!token->has_value())
            return refuse(req, id,
                          "enrollment needs a token: this identity was not issued by a "
                          "token-gated /enroll");
    }
    // The approval rule (open enrollment, an identity from the built-in CA)
    // is decided by apply_authenticate in the binding's transaction.
    return std::nullopt;
}

std::vector<db::OutboxEvent> DeviceService::checkin_events(const Request& req,
                                                           const mdm::EnrollmentIdentity& ident,
                                                           std::string_view message_type) {
    std::vector<db::OutboxEvent> out;
    if (!webhooks_ || !webhooks_->wants(fmt::format("mdm.{}", message_type))) return out;
    out.push_back(
        webhook::checkin_event(message_type, {ident, req.query}, req.body, clock_.now_ms()));
    return out;
}

std::vector<db::OutboxEvent> DeviceService::report_events(
    const Request& req, const mdm::EnrollmentIdentity& ident, std::string_view status,
    const std::string& uuid, std::optional<db::TargetStatus> finished) {
    std::vector<db::OutboxEvent> out;
    if (!webhooks_) return out;
    if (webhooks_->wants("mdm.Connect"))
        out.push_back(webhook::acknowledge_event({ident, req.query}, status, uuid, req.body,
                                                 clock_.now_ms()));
    if (finished && webhooks_->wants(db::kCommandFinishedTopic)) {
        auto ev =
            db::command_finished_event(uuid, ident.enrollment_id(), *finished, clock_.now_ms());
        ev.only_if_effective = true;  // a repeated final report finishes nothing
        out.push_back(std::move(ev));
    }
    return out;
}

DeviceResult DeviceService::handle(Request& req, bool command_channel) {
    return *process(req, command_channel, true);
}

std::optional<DeviceResult> DeviceService::handle_idle_without_writes(Request& req) {
    if (req.body.size() > kInlineBodyMax) return std::nullopt;  // to a worker
    auto scope = read_scopes_.read_scope();  // its three reads in one transaction
    return process(req, true, false);
}

std::optional<DeviceResult> DeviceService::process(Request& req, bool command_channel,
                                                   bool writes_allowed) {
    auto cred = auth_.authenticate(req);
    if (!cred.is_ok()) return refuse(req, "", cred.status().message());

    auto decoded = mdm::decode_device_message(req.body);
    if (!decoded.is_ok()) {
        if (decoded.status().code() == Code::kTooLarge)
            return DeviceResult::failed(decoded.status());  // 413
        return refuse(req, "", decoded.status().message());
    }
    if (!writes_allowed &&
        (decoded->checkin || decoded->report->status != mdm::ReportStatus::kIdle))
        return std::nullopt;
    const auto& ident = decoded->checkin ? decoded->checkin->identity : decoded->report->identity;
    const std::string id = ident.enrollment_id();
    const std::string& device_id = ident.device_id;
    const auto now = clock_.now();

    // The reads before the message's write (enrollment, binding and, for an
    // Idle, whether a command waits) share one read transaction, said up
    // front (one round trip on PostgreSQL); it ends before any write. On the
    // Idle fast path the caller's scope covers them already (gives null).
    const bool idle_reads =
        !decoded->checkin && command_channel && decoded->report->status == mdm::ReportStatus::kIdle;
    std::unique_ptr<db::ReadScope> reads =
        read_scopes_.device_read_scope({id, cred->cert_sha256, idle_reads, now});
    auto existing = enrollments_.enrollment_state(id);
    if (!existing.is_ok() && existing.status().code() != Code::kNotFound)
        return DeviceResult::failed(existing.status(), "store");
    if (existing.is_ok() && existing->state == db::EnrollmentState::kRetired) {
        spdlog::info("retired device {} answered with com.apple.unrecognized.device", id);
        DeviceResult retired;
        retired.kind = DeviceResult::Kind::kRetired;
        return retired;
    }

    if (decoded->checkin) {
        auto& msg = *decoded->checkin;
        metrics_
            .counter("courier_checkins_total", {{"message_type", mdm::message_type_name(msg.type)}})
            .inc();
        // Only Authenticate binds; everything else needs the active binding.
        if (msg.type == mdm::MessageType::kAuthenticate) {
            if (auto refusal = admit_authenticate(req, id, device_id, *cred, now)) return refusal;
        } else {
            bool defer = false;
            if (auto refusal = require_binding(req, id, device_id, *cred, true, &defer))
                return refusal;
            // Seen before the message's transaction (a TokenUpdate clears the
            // pending push there), so a push outcome recorded after it finds
            // the touch (docs/apns.md "Pending push"). In memory only.
            enrollments_.touch_last_seen({id}, clock_.now_ms());
        }
        Status st;
        DeviceResult answer;  // an empty 200 unless the message says otherwise
        // The message's webhook event rides on its store write; the
        // messages that write nothing append it on their own (durable too).
        std::vector<db::OutboxEvent> events =
            checkin_events(req, ident, mdm::message_type_name(msg.type));
        std::unique_ptr<db::EventAttachment> attached;
        bool writes = msg.type == mdm::MessageType::kAuthenticate ||
                      msg.type == mdm::MessageType::kTokenUpdate ||
                      msg.type == mdm::MessageType::kCheckOut ||
                      msg.type == mdm::MessageType::kSetBootstrapToken;
        if (writes && !events.empty()) attached = webhooks_->attach(std::move(events));
        reads.reset();
        switch (msg.type) {
            case mdm::MessageType::kAuthenticate: {
                auto before = bindings_.active_binding(device_id);
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
                bool& cut = in.facts_truncated;  // docs/security.md "Input limits": 1 KiB each
                in.serial_number = fact(msg.facts.serial_number, &cut);
                in.model = fact(msg.facts.model, &cut);
                in.model_name = fact(msg.facts.model_name, &cut);
                in.product_name = fact(msg.facts.product_name, &cut);
                in.os_version = fact(msg.facts.os_version, &cut);
                in.build_version = fact(msg.facts.build_version, &cut);
                in.device_name = fact(msg.facts.device_name, &cut);
                in.imei = fact(msg.facts.imei, &cut);
                in.meid = fact(msg.facts.meid, &cut);
                if (cut) spdlog::warn("Authenticate from {}: device facts cut to 1 KiB each", id);
                in.cert_sha256 = cred->cert_sha256;
                in.cert_not_after = cred->not_after;
                if (policy_.enroll_open && cred->enrollment_ca)
                    in.approval_quiet_period = policy_.quiet_period;
                st = enrollments_.apply_authenticate(in, now);
                attached.reset();  // taken by that write, or dropped with it
                if (st.is_ok()) bindings_.touch_binding(cred->cert_sha256, now);
                if (st.is_ok() && before.is_ok() && before->has_value() &&
                    (*before)->cert_sha256 != cred->cert_sha256)
                    spdlog::warn(
                        "device {} re-binds to a new identity certificate sha256:{}… from {}: "
                        "sha256:{}… superseded, bootstrap, unlock and push tokens cleared",
                        device_id, cred->cert_sha256.substr(0, 16), req.remote_address,
                        (*before)->cert_sha256.substr(0, 16));
                if (st.code() == Code::kConflict) return refuse(req, id, st.message());
                if (st.code() == Code::kForbidden) {  // needs an administrator's approval
                    auto s = bindings_.request_binding(cred->cert_sha256, device_id,
                                                       cred->not_after, now);
                    if (s.code() == Code::kTooLarge) return refuse(req, id, s.message());
                    if (!s.is_ok() && s.code() != Code::kConflict)
                        return DeviceResult::failed(s, "store");
                    spdlog::warn(
                        "device {} asked to re-bind to a new identity sha256:{}… from {}: {}; "
                        "pending an administrator's approval",
                        device_id, cred->cert_sha256.substr(0, 16), req.remote_address,
                        st.message());
                    return refuse(req, id,
                                  "this device id is bound to another identity that was in use "
                                  "recently: the re-binding is pending an administrator's "
                                  "approval (POST /v1/devices/" +
                                      device_id + "/bindings/" + cred->cert_sha256 + "/approve)");
                }
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
                in.cert_not_after = cred->not_after;
                // Re-checked in the write's transaction: a revoke or re-binding
                // since require_binding wins (kConflict, nothing changed).
                in.cert_sha256 = cred->cert_sha256;
                if (!msg.topic.empty()) {
                    auto pc = push_certs_.active_push_cert(msg.topic);
                    if (pc.is_ok() && !pc->has_value())
                        spdlog::warn(
                            "TokenUpdate from {} names topic {} which has no push "
                            "certificate: no push can reach it",
                            id, msg.topic);
                }
                // Beyond kMaxUserChannels no new user channel (checked in the
                // store's transaction): 400.
                st = enrollments_.apply_token_update(in, now);
                attached.reset();
                if (st.code() == Code::kTooLarge || st.code() == Code::kConflict)
                    return refuse(req, id, st.message());
                if (st.is_ok() && push_) {
                    auto pending = queue_.has_pending(id, now);
                    if (pending.is_ok() && *pending) push_->push(id, [](const auto&) {});
                }
                break;
            }
            case mdm::MessageType::kCheckOut:
                st = enrollments_.apply_checkout(id, now);
                break;
            case mdm::MessageType::kSetBootstrapToken:
                st = enrollments_.set_bootstrap_token(device_id, msg.bootstrap_token.value_or(""),
                                                      cred->cert_sha256);
                if (st.code() == Code::kConflict) return refuse(req, id, st.message());
                break;
            case mdm::MessageType::kGetBootstrapToken: {
                auto tok = enrollments_.bootstrap_token(device_id);
                if (!tok.is_ok()) return DeviceResult::failed(tok.status(), "store");
                if (tok->has_value() && !(*tok)->empty()) {
                    plist::Dict d;
                    d.set("BootstrapToken", plist::Data{**tok});
                    answer.kind = DeviceResult::Kind::kPlist;
                    answer.body = plist::write_xml(plist::Value(std::move(d)));
                }
                break;
            }
            case mdm::MessageType::kUserAuthenticate:
                // Courier does not manage macOS user channels beyond their
                // TokenUpdate: decline the user (protocol doc §1).
                answer.kind = DeviceResult::Kind::kDeclined;
                break;
            case mdm::MessageType::kDeclarativeManagement:
                if (msg.endpoint == "tokens") {
                    answer.kind = DeviceResult::Kind::kJson;
                    answer.body = R"({"SyncTokens":{"DeclarationsToken":")" + declarations_token() +
                                  R"(","Timestamp":"2026-01-01T00:00:00Z"}})";
                } else if (msg.endpoint == "declaration-items") {
                    answer.kind = DeviceResult::Kind::kJson;
                    answer.body =
                        R"({"Declarations":{"Activations":[],"Assets":[],"Configurations":[],"Management":[]},"DeclarationsToken":")" +
                        declarations_token() + R"("})";
                } else if (msg.endpoint != "status") {  // status: an empty 200
                    answer.kind = DeviceResult::Kind::kNoSuchDeclaration;
                }
                break;
            case mdm::MessageType::kGetToken:
                return refuse(req, id, "GetToken is not supported by this server");
        }
        attached.reset();
        if (st.is_ok() && !writes && !events.empty()) st = webhooks_->append(std::move(events));
        if (!st.is_ok()) {
            spdlog::error("{} for {}: {}", mdm::message_type_name(msg.type), id, st.to_string());
            return DeviceResult::failed(std::move(st));
        }
        if (msg.type == mdm::MessageType::kAuthenticate)
            enrollments_.touch_last_seen({id}, clock_.now_ms());
        answer.enrollment = id;
        return answer;
    }

    // Command report.
    auto& rep = *decoded->report;
    bool defer = false;
    if (auto refusal = require_binding(req, id, device_id, *cred, writes_allowed, &defer))
        return refusal;
    if (!idle_reads) reads.reset();  // an Idle's has_pending below reads in it too
    if (defer) return std::nullopt;
    if (!existing.is_ok()) return refuse(req, id, "no enrollment " + id + " (Authenticate first)");
    // Seen before the transaction that reads the queue (and clears the
    // pending push): a push outcome recorded after that transaction, even in
    // the same write batch, finds the touch and leaves no mark (docs/apns.md
    // "Pending push"). In memory only: the read-only Idle stays free of writes.
    enrollments_.touch_last_seen({id}, clock_.now_ms());
    // Only the command channel's answer is read as a command: an Idle that
    // arrives on the check-in channel gets an empty 200 and hands nothing out.
    const std::string_view status_name = mdm::report_status_name(rep.status);
    if (!command_channel && rep.status == mdm::ReportStatus::kIdle) {
        if (webhooks_)  // hands nothing out: best effort, from memory
            for (auto& ev : report_events(req, ident, status_name, "", std::nullopt))
                webhooks_->send_from_memory(ev);
        DeviceResult r;
        r.enrollment = id;
        return r;
    }

    Result<std::optional<db::DeliveredCommand>> next = std::optional<db::DeliveredCommand>{};
    if (rep.status == mdm::ReportStatus::kIdle) {
        auto pending = queue_.has_pending(id, now);
        reads.reset();  // before any write
        if (!pending.is_ok()) return DeviceResult::failed(pending.status(), "store");
        // A pending (or armed) push is cleared in the transaction that reads
        // the queue (docs/apns.md "Pending push"); only an Idle that finds
        // one set writes.
        bool clear_push = existing->push_marked_at(now);
        if ((*pending || clear_push) && !writes_allowed) return std::nullopt;  // a write
        metrics_.counter("courier_checkins_total", {{"message_type", "Idle"}}).inc();
        if (*pending || clear_push) {
            std::unique_ptr<db::EventAttachment> attached;
            if (webhooks_)
                attached =
                    webhooks_->attach(report_events(req, ident, status_name, "", std::nullopt));
            next = queue_.next_command(id, true, now);
        } else if (webhooks_) {
            // An Idle that writes nothing (SPEC): best effort, from memory.
            for (auto& ev : report_events(req, ident, status_name, "", std::nullopt))
                webhooks_->send_from_memory(ev);
        }
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
        {
            std::optional<db::TargetStatus> finished;
            if (db::is_final(ts)) finished = ts;
            std::unique_ptr<db::EventAttachment> attached;
            if (webhooks_)
                attached = webhooks_->attach(
                    report_events(req, ident, status_name, rep.command_uuid, finished));
            next = queue_.apply_report(id, rep.command_uuid, ts, req.body, now);
        }
        if (next.is_ok())
            metrics_.counter("courier_commands_total", {{"status", db::target_status_name(ts)}})
                .inc();
        if (!next.is_ok() && next.status().code() == Code::kNotFound) {
            spdlog::warn("{} reported {} for unknown command {}; answering as Idle", id,
                         mdm::report_status_name(rep.status), rep.command_uuid);
            std::unique_ptr<db::EventAttachment> attached;
            if (webhooks_)
                attached = webhooks_->attach(
                    report_events(req, ident, status_name, rep.command_uuid, std::nullopt));
            next = queue_.next_command(id, true, now);
        }
    }
    if (!next.is_ok()) {
        spdlog::error("command channel for {}: {}", id, next.status().to_string());
        return DeviceResult::failed(next.status(), "store");
    }
    if (next->has_value()) metrics_.counter("courier_commands_total", {{"status", "sent"}}).inc();
    DeviceResult r;
    if (next->has_value()) {
        r.kind = DeviceResult::Kind::kPlist;
        r.body = std::move((*next)->plist);
    }
    r.enrollment = id;
    return r;
}

}  // namespace courier::server
