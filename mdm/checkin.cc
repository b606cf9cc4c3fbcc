#include "mdm/checkin.h"

#include <fmt/format.h>

namespace courier::mdm {

namespace {
constexpr std::string_view kSharedIPadUser = "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF";

// A string key: nullptr when absent; kInvalid when present with another type.
Status optional_string(const plist::Dict& d, std::string_view key, const std::string** out) {
    *out = nullptr;
    const plist::Value* v = d.find(key);
    if (!v) return Status::ok();
    *out = v->as_string();
    if (!*out)
        return invalid(
            fmt::format("{} must be a string, not {}", key, plist::type_name(v->type())));
    return Status::ok();
}

std::string string_or_empty(const plist::Dict& d, std::string_view key) {
    const std::string* s = d.find_string(key);
    return s ? *s : std::string();
}
}  // namespace

const char* enrollment_type_name(EnrollmentType t) {
    switch (t) {
        case EnrollmentType::kDevice:
            return "device";
        case EnrollmentType::kUser:
            return "user";
        case EnrollmentType::kSharedIPad:
            return "shared_ipad";
        case EnrollmentType::kUserEnrollmentDevice:
            return "user_enrollment_device";
        case EnrollmentType::kUserEnrollmentUser:
            return "user_enrollment_user";
    }
    return "unknown";
}

Result<EnrollmentIdentity> resolve_identity(const plist::Dict& msg) {
    const std::string *udid, *enrollment_id, *user_id, *short_name, *enrollment_user_id;
    for (auto [key, out] : {std::pair{"UDID", &udid}, std::pair{"EnrollmentID", &enrollment_id},
                            std::pair{"UserID", &user_id}, std::pair{"UserShortName", &short_name},
                            std::pair{"EnrollmentUserID", &enrollment_user_id}}) {
        if (auto s = optional_string(msg, key, out); !s.is_ok()) return s;
    }
    EnrollmentIdentity id;
    if (udid && !udid->empty()) {
        id.device_id = *udid;
        if (user_id && !user_id->empty()) {
            if (*user_id == kSharedIPadUser) {
                if (!short_name || short_name->empty())
                    return invalid("Shared iPad user channel without UserShortName");
                id.type = EnrollmentType::kSharedIPad;
                id.user_id = *short_name;
            } else {
                id.type = EnrollmentType::kUser;
                id.user_id = *user_id;
            }
        }
    } else if (enrollment_id && !enrollment_id->empty()) {
        id.device_id = *enrollment_id;
        id.type = EnrollmentType::kUserEnrollmentDevice;
        if (enrollment_user_id && !enrollment_user_id->empty()) {
            id.type = EnrollmentType::kUserEnrollmentUser;
            id.user_id = *enrollment_user_id;
        }
    } else {
        return invalid("no device identifier: neither UDID nor EnrollmentID is present");
    }
    if (id.device_id.find(':') != std::string::npos || id.user_id.find(':') != std::string::npos)
        return invalid("identifiers must not contain ':'");
    if (id.device_id.size() > 256 || id.user_id.size() > 256)
        return invalid("identifier longer than 256 characters");
    return id;
}

const char* message_type_name(MessageType t) {
    switch (t) {
        case MessageType::kAuthenticate:
            return "Authenticate";
        case MessageType::kTokenUpdate:
            return "TokenUpdate";
        case MessageType::kCheckOut:
            return "CheckOut";
        case MessageType::kSetBootstrapToken:
            return "SetBootstrapToken";
        case MessageType::kGetBootstrapToken:
            return "GetBootstrapToken";
        case MessageType::kUserAuthenticate:
            return "UserAuthenticate";
        case MessageType::kDeclarativeManagement:
            return "DeclarativeManagement";
        case MessageType::kGetToken:
            return "GetToken";
    }
    return "unknown";
}

const char* report_status_name(ReportStatus s) {
    switch (s) {
        case ReportStatus::kIdle:
            return "Idle";
        case ReportStatus::kAcknowledged:
            return "Acknowledged";
        case ReportStatus::kError:
            return "Error";
        case ReportStatus::kCommandFormatError:
            return "CommandFormatError";
        case ReportStatus::kNotNow:
            return "NotNow";
    }
    return "unknown";
}

Result<CheckinMessage> decode_checkin(plist::Dict msg) {
    const plist::Value* mt = msg.find("MessageType");
    if (!mt) return invalid("MessageType is missing");
    const std::string* name = mt->as_string();
    if (!name) return invalid("MessageType must be a string");
    CheckinMessage m;
    static const std::pair<const char*, MessageType> kTypes[] = {
        {"Authenticate", MessageType::kAuthenticate},
        {"TokenUpdate", MessageType::kTokenUpdate},
        {"CheckOut", MessageType::kCheckOut},
        {"SetBootstrapToken", MessageType::kSetBootstrapToken},
        {"GetBootstrapToken", MessageType::kGetBootstrapToken},
        {"UserAuthenticate", MessageType::kUserAuthenticate},
        {"DeclarativeManagement", MessageType::kDeclarativeManagement},
        {"GetToken", MessageType::kGetToken},
    };
    bool known = false;
    for (const auto& [n, t] : kTypes) {
        if (*name == n) {
            m.type = t;
            known = true;
        }
    }
    if (!known) return invalid(fmt::format("unknown MessageType '{}'", name->substr(0, 60)));

    auto ident = resolve_identity(msg);
    if (!ident.is_ok()) return ident.status();
    m.identity = std::move(*ident);
    m.topic = string_or_empty(msg, "Topic");
    if (m.topic.size() > kMaxTopicBytes)
        return invalid(
            fmt::format("Topic is {} bytes, over the limit of {} (a push topic is "
                        "com.apple.mgmt. and a short name)",
                        m.topic.size(), kMaxTopicBytes));

    switch (m.type) {
        case MessageType::kAuthenticate:
            m.facts.serial_number = string_or_empty(msg, "SerialNumber");
            m.facts.model = string_or_empty(msg, "Model");
            m.facts.model_name = string_or_empty(msg, "ModelName");
            m.facts.product_name = string_or_empty(msg, "ProductName");
            m.facts.os_version = string_or_empty(msg, "OSVersion");
            m.facts.build_version = string_or_empty(msg, "BuildVersion");
            m.facts.device_name = string_or_empty(msg, "DeviceName");
            m.facts.imei = string_or_empty(msg, "IMEI");
            m.facts.meid = string_or_empty(msg, "MEID");
            break;
        case MessageType::kTokenUpdate: {
            const plist::Value* tok = msg.find("Token");
            if (!tok) return invalid("TokenUpdate without Token");
            if (!tok->as_data()) return invalid("TokenUpdate Token must be data");
            if (tok->as_data()->bytes.empty()) return invalid("TokenUpdate Token is empty");
            m.token = tok->as_data()->bytes;
            const plist::Value* magic = msg.find("PushMagic");
            if (!magic) return invalid("TokenUpdate without PushMagic");
            if (!magic->as_string()) return invalid("TokenUpdate PushMagic must be a string");
            if (magic->as_string()->empty()) return invalid("TokenUpdate PushMagic is empty");
            m.push_magic = *magic->as_string();
            // MicroMDM's re-encoded captures carry <data></data> for a token the
            // device never sent: empty means absent, keep the stored one.
            if (const plist::Data* u = msg.find_data("UnlockToken"); u && !u->bytes.empty())
                m.unlock_token = u->bytes;
            if (const bool* a = msg.find_bool("AwaitingConfiguration"))
                m.awaiting_configuration = *a;
            break;
        }
        case MessageType::kSetBootstrapToken:
            if (const plist::Data* b = msg.find_data("BootstrapToken"))
                m.bootstrap_token = b->bytes;
            else
                m.bootstrap_token = std::string();  // missing = delete
            if (const bool* a = msg.find_bool("AwaitingConfiguration"))
                m.awaiting_configuration = *a;
            break;
        case MessageType::kGetBootstrapToken:
            if (const bool* a = msg.find_bool("AwaitingConfiguration"))
                m.awaiting_configuration = *a;
            break;
        case MessageType::kDeclarativeManagement: {
            const std::string* ep = msg.find_string("Endpoint");
            if (!ep) return invalid("DeclarativeManagement without a string Endpoint");
            m.endpoint = *ep;
            if (const plist::Data* d = msg.find_data("Data")) m.data = d->bytes;
            break;
        }
        case MessageType::kGetToken:
            m.token_service_type = string_or_empty(msg, "TokenServiceType");
            break;
        case MessageType::kUserAuthenticate:
            if (const std::string* d = msg.find_string("DigestResponse")) m.digest_response = *d;
            break;
        case MessageType::kCheckOut:
            break;
    }
    m.raw = std::move(msg);
    return m;
}

Result<CommandReport> decode_report(plist::Dict msg) {
    const plist::Value* st = msg.find("Status");
    if (!st) return invalid("Status is missing");
    const std::string* name = st->as_string();
    if (!name) return invalid("Status must be a string");
    CommandReport r;
    if (*name == "Idle")
        r.status = ReportStatus::kIdle;
    else if (*name == "Acknowledged")
        r.status = ReportStatus::kAcknowledged;
    else if (*name == "Error")
        r.status = ReportStatus::kError;
    else if (*name == "CommandFormatError")
        r.status = ReportStatus::kCommandFormatError;
    else if (*name == "NotNow")
        r.status = ReportStatus::kNotNow;
    else
        return invalid(fmt::format("unknown Status '{}'", name->substr(0, 60)));
    auto ident = resolve_identity(msg);
    if (!ident.is_ok()) return ident.status();
    r.identity = std::move(*ident);
    if (r.status != ReportStatus::kIdle) {
        const plist::Value* u = msg.find("CommandUUID");
        if (!u) return invalid(fmt::format("{} report without CommandUUID", *name));
        if (!u->as_string() || u->as_string()->empty())
            return invalid("CommandUUID must be a non-empty string");
        r.command_uuid = *u->as_string();
    }
    r.raw = std::move(msg);
    return r;
}

Result<DeviceMessage> decode_device_message(std::string_view body,
                                            const plist::ParseLimits& limits) {
    auto dict = plist::parse_dict(body, limits);
    if (!dict.is_ok()) return dict.status();
    bool has_type = dict->contains("MessageType");
    bool has_status = dict->contains("Status");
    if (has_type && has_status) return invalid("message has both MessageType and Status");
    if (!has_type && !has_status) return invalid("message has neither MessageType nor Status");
    DeviceMessage m;
    if (has_type) {
        auto c = decode_checkin(std::move(*dict));
        if (!c.is_ok()) return c.status();
        m.checkin = std::move(*c);
    } else {
        auto r = decode_report(std::move(*dict));
        if (!r.is_ok()) return r.status();
        m.report = std::move(*r);
    }
    return m;
}

}  // namespace courier::mdm
