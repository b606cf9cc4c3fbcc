#include "common/status.h"

namespace courier {

const char* code_name(Code c) {
    switch (c) {
        case Code::kOk:
            return "ok";
        case Code::kInvalid:
            return "invalid";
        case Code::kNotFound:
            return "not_found";
        case Code::kConflict:
            return "conflict";
        case Code::kTooLarge:
            return "too_large";
        case Code::kUnauthorized:
            return "unauthorized";
        case Code::kForbidden:
            return "forbidden";
        case Code::kUnavailable:
            return "unavailable";
        case Code::kInternal:
            return "internal";
    }
    return "unknown";
}

std::string Status::to_string() const {
    if (is_ok()) return "ok";
    return std::string(code_name(code_)) + ": " + message_;
}

}  // namespace courier
