// Mdm-Signature headers: base64 → CMS SignedData (DER) → detached signature
// over the body → signer certificate. Input: one mode byte, a two-byte
// length n, n bytes of signature, then the body. Mode bit 0 set: the n bytes
// are DER and are base64-encoded first, so the fuzzer explores CMS structure
// rather than base64 validity; clear: they are the header text as sent.
// Mode bit 1 set: verified through a CertCache (the split path the server
// takes), which must agree with the whole parse.
#include <cstdint>
#include <string>
#include <string_view>

#include "certs/pkcs.h"
#include "common/encoding.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 3) return 0;
    bool der = data[0] & 1;
    size_t n = (static_cast<size_t>(data[1]) << 8) | data[2];
    std::string_view rest(reinterpret_cast<const char*>(data + 3), size - 3);
    if (n > rest.size()) n = rest.size();
    std::string sig(rest.substr(0, n));
    std::string_view body = rest.substr(n);
    std::string header = der ? courier::base64_encode(sig) : sig;
    if (data[0] & 2) {
        static courier::certs::CertCache cache(64 << 10);
        auto cached = courier::certs::verify_mdm_signature(header, body, &cache);
        auto whole = courier::certs::verify_mdm_signature(header, body);
        if (cached.is_ok() != whole.is_ok()) __builtin_trap();
        return 0;
    }
    (void)courier::certs::verify_mdm_signature(header, body);
    return 0;
}
