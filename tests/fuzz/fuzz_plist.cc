// The plist codec on arbitrary bytes: never crashes, and whatever it accepts
// writes back to a plist that parses to the same value.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/plist/plist.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto v = courier::plist::parse(in);
    if (!v.is_ok()) return 0;
    std::string out = courier::plist::write_xml(*v);
    auto again = courier::plist::parse(out);
    if (!again.is_ok() || !(*again == *v)) std::abort();
    return 0;
}
