// PUT /v1/pushcert bodies: PEM or PKCS#12 detection and parsing on arbitrary
// bytes (the first byte picks whether a password is tried).
#include <cstdint>
#include <string_view>

#include "certs/push_cert.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::string password = data[0] & 1 ? "secret" : "";
    std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    auto now = courier::SysTime(std::chrono::seconds(1800000000));
    (void)courier::certs::parse_push_cert(in, password, now);
    return 0;
}
