// Process-wide logging set-up. Everything logs through spdlog's default
// logger; secrets go through redact() (common/encoding.h) before they do.
#pragma once

#include <string>

#include "common/status.h"

namespace courier {

// level: trace|debug|info|warn|error; format: text|json. JSON lines carry
// "time", "level" and "msg". Invalid names are an error, nothing changes.
Status init_logging(const std::string& level, const std::string& format);

// Escapes s for inclusion inside a JSON string literal.
std::string json_escape(const std::string& s);

}  // namespace courier
