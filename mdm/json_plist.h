// JSON ↔ plist, as the admin API uses it (Settled details, "JSON ↔ plist"):
// data ↔ standard padded base64; date ↔ RFC 3339; integer/real kept as typed.
#pragma once

#include <boost/json/fwd.hpp>
#include <boost/json/value.hpp>

#include <string_view>

#include "common/plist/plist.h"
#include "common/status.h"

namespace courier::mdm {

// For results shown to administrators (a device's report as JSON).
boost::json::value plist_to_json(const plist::Value& v);

// Parses a JSON body of the admin API, holding it to the rules plists are
// held to (docs/security.md "Input limits"): a key twice in one object, more than
// 10,000 keys in one object, nesting deeper than 64, or a string or key with
// a character XML 1.0 forbids (see plist::is_xml_text) is kInvalid with a
// message naming it; so is anything that is not JSON. Linear in the input.
Result<boost::json::value> parse_admin_json(std::string_view text);

}  // namespace courier::mdm
