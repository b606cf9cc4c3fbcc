// Typed MDM messages decoded from plists: check-ins (CheckInURL) and command
// reports (ServerURL). Plain data and parsing: no I/O here.
//
// Decoding checks only what the server cannot do without (Settled details,
// "device reports"): identity keys, MessageType/Status and their types, and a
// TokenUpdate's Token and PushMagic. Every other key is kept verbatim in
// `raw` and never refused; real devices omit keys the schema calls required.
#pragma once

#include <optional>
#include <string>

#include "common/plist/plist.h"
#include "common/status.h"

namespace courier::mdm {

enum class EnrollmentType {
    kDevice,                // UDID
    kUser,                  // UDID + UserID (macOS user channel)
    kSharedIPad,            // UDID + UserID FFFFFFFF-… → UserShortName
    kUserEnrollmentDevice,  // EnrollmentID
    kUserEnrollmentUser,    // EnrollmentID + EnrollmentUserID
};
const char* enrollment_type_name(EnrollmentType t);

// Who a message is from, resolved per docs/device-endpoints.md "How a device proves who it is".
struct EnrollmentIdentity {
    EnrollmentType type = EnrollmentType::kDevice;
    std::string device_id;  // UDID or EnrollmentID: the device channel's id
    std::string user_id;    // empty on the device channel

    bool is_user_channel() const { return !user_id.empty(); }
    // "<device_id>" or "<device_id>:<user_id>".
    std::string enrollment_id() const {
        return user_id.empty() ? device_id : device_id + ":" + user_id;
    }
};

// Reads UDID/EnrollmentID/UserID/UserShortName/EnrollmentUserID. kInvalid
// when no device identifier is present or an identity key is not a string.
Result<EnrollmentIdentity> resolve_identity(const plist::Dict& msg);

enum class MessageType {
    kAuthenticate,
    kTokenUpdate,
    kCheckOut,
    kSetBootstrapToken,
    kGetBootstrapToken,
    kUserAuthenticate,
    kDeclarativeManagement,
    kGetToken,
};
const char* message_type_name(MessageType t);  // Apple's spelling

struct DeviceFacts {  // from Authenticate
    std::string serial_number, model, model_name, product_name, os_version, build_version,
        device_name, imei, meid;
};

// A Topic longer than this (docs/security.md "Input limits": device facts are kept to
// 1 KiB) makes the message carrying it a 400 and nothing is stored. Topics are
// push certificate topics, `com.apple.mgmt.` and a short name (docs/api.md "Push
// certificates"): a real device never sends one this long, so it is
// refused rather than cut (a cut topic would name no certificate anyway).
constexpr size_t kMaxTopicBytes = 1024;

struct CheckinMessage {
    MessageType type = MessageType::kAuthenticate;
    EnrollmentIdentity identity;
    std::string topic;  // may be empty where devices omit it; at most kMaxTopicBytes

    DeviceFacts facts;  // Authenticate

    // TokenUpdate. Empty strings (MicroMDM's re-encoded captures) mean absent
    // for unlock_token; token and push_magic must be non-empty.
    std::string token;  // raw bytes
    std::string push_magic;
    std::optional<std::string> unlock_token;  // raw bytes; nullopt = keep stored
    bool awaiting_configuration = false;

    std::optional<std::string> bootstrap_token;  // SetBootstrapToken; empty = delete
    std::string endpoint;                        // DeclarativeManagement
    std::optional<std::string> data;             // DeclarativeManagement Data bytes
    std::string token_service_type;              // GetToken
    std::optional<std::string> digest_response;  // UserAuthenticate

    plist::Dict raw;  // the whole message as received
};

// msg must carry MessageType. kInvalid for an unknown MessageType, a missing
// or mistyped identity, or a TokenUpdate without Token/PushMagic.
Result<CheckinMessage> decode_checkin(plist::Dict msg);

enum class ReportStatus { kIdle, kAcknowledged, kError, kCommandFormatError, kNotNow };
const char* report_status_name(ReportStatus s);  // Apple's spelling
inline bool is_final(ReportStatus s) {
    return s == ReportStatus::kAcknowledged || s == ReportStatus::kError ||
           s == ReportStatus::kCommandFormatError;
}

struct CommandReport {
    EnrollmentIdentity identity;
    ReportStatus status = ReportStatus::kIdle;
    std::string command_uuid;  // empty for Idle
    plist::Dict raw;
};

// msg must carry Status. kInvalid for an unknown Status, a missing or
// mistyped identity, or a non-Idle report without a string CommandUUID.
Result<CommandReport> decode_report(plist::Dict msg);

// A request body on /mdm or /checkin, told apart by its keys: MessageType →
// check-in, Status → report. Both or neither: kInvalid.
struct DeviceMessage {
    std::optional<CheckinMessage> checkin;
    std::optional<CommandReport> report;
};
Result<DeviceMessage> decode_device_message(std::string_view body,
                                            const plist::ParseLimits& limits = {});

}  // namespace courier::mdm
