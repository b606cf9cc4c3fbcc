// Administrator input: raw command plists (PUT /v1/enqueue) and JSON
// commands (POST /v1/commands). Whatever is accepted is a valid envelope.
#include <boost/json.hpp>
#include <cstdint>
#include <string_view>

#include "mdm/command.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    if (auto c = courier::mdm::command_from_raw_plist(in); c.is_ok()) {
        if (!courier::plist::parse_dict(c->plist).is_ok() || c->uuid.empty()) __builtin_trap();
    }
    boost::system::error_code ec;
    auto v = boost::json::parse(in, ec);
    if (!ec && v.is_object()) {
        auto c = courier::mdm::command_from_json(v.as_object(), size % 2 == 0);
        if (c.is_ok() && !courier::plist::parse_dict(c->plist).is_ok()) __builtin_trap();
    }
    return 0;
}
