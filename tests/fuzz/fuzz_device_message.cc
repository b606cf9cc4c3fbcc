// A device's request body on /mdm or /checkin: any bytes decode to a message
// or a clear error, never a crash.
#include <cstdint>
#include <string_view>

#include "mdm/checkin.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto m = courier::mdm::decode_device_message(in);
    if (m.is_ok() && m->checkin.has_value() == m->report.has_value()) __builtin_trap();
    return 0;
}
