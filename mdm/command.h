// MDM commands: the envelope sent to devices, and validation of commands
// administrators submit.
#pragma once

#include <boost/json/fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/plist/plist.h"
#include "common/status.h"

namespace courier::mdm {

// A command ready to queue: the exact plist bytes handed to the device.
struct Command {
    std::string uuid;
    std::string request_type;
    std::string plist;  // full envelope: {CommandUUID, Command{RequestType, ...}}
};

// A CommandUUID the server accepts (docs/security.md "Input limits"): 1–128 characters
// of A–Z a–z 0–9 . _ : - (so it is safe in a URL path, a log line and XML).
bool is_valid_command_uuid(std::string_view uuid);

// Structure-only check for PUT /v1/enqueue (Settled details): a dict plist,
// Command a dict with a string RequestType, CommandUUID a string if present
// (and is_valid_command_uuid).
// A missing CommandUUID is generated and the envelope re-written; otherwise
// the bytes are kept as given.
Result<Command> command_from_raw_plist(std::string_view body);

// Full validation for POST /v1/commands: `command` is the JSON object
// {"RequestType": ..., key: value...}. Known request types are checked
// against the schema table (required keys, types, nested dicts and arrays,
// DeviceLock.PIN six digits, InstallProfile.Payload a plist or CMS blob);
// data values arrive as base64 strings, dates as RFC 3339 strings; integer vs
// real is chosen by the schema. Unknown request types are refused unless
// allow_unknown. Error messages name the key: "DeviceLock.PIN: must be six digits".
// A given `uuid` must pass is_valid_command_uuid.
Result<Command> command_from_json(const boost::json::object& command, bool allow_unknown = false,
                                  std::optional<std::string> uuid = std::nullopt);

// Schema facts for one request type.
struct KeySpec {
    std::string key;
    plist::Type type = plist::Type::kString;
    bool any_type = false;  // schema type "any"
    bool required = false;
    std::vector<KeySpec> subkeys;  // dictionary keys, or one element spec for arrays
};
struct CommandSpec {
    std::string request_type;
    std::vector<KeySpec> keys;
};
// nullptr for request types not in Apple's schema.
const CommandSpec* find_command_spec(std::string_view request_type);
size_t command_spec_count();

}  // namespace courier::mdm
