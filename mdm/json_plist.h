// JSON ↔ plist, as the admin API uses it (Settled details, "JSON ↔ plist"):
// data ↔ standard padded base64; date ↔ RFC 3339; integer/real kept as typed.
#pragma once

#include <boost/json/fwd.hpp>
#include <boost/json/value.hpp>

#include "mdm/plist.h"

namespace courier::mdm {

// For results shown to administrators (a device's report as JSON).
boost::json::value plist_to_json(const plist::Value& v);

}  // namespace courier::mdm
