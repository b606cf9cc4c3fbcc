#include "common/openssl_error.h"

#include <openssl/err.h>

namespace courier {

std::string openssl_error_text() {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out;
}

}  // namespace courier
