// Process-wide logging set-up. Everything logs through spdlog's default
// logger; secrets go through redact() (common/encoding.h) before they do.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace courier {

// level: trace|debug|info|warn|error; format: text|json. JSON lines carry
// "time", "level" and "msg". Invalid names are an error, nothing changes.
Status init_logging(const std::string& level, const std::string& format);

// Escapes s for inclusion inside a JSON string literal.
std::string json_escape(const std::string& s);

// A text log message made safe for one line: control characters (below
// 0x20, and DEL) become \n, \r, \t or \xHH, so request data (a UDID with a
// newline and ESC) cannot start a forged line or drive the terminal. The
// text format applies it to every message (docs/security.md).
std::string log_escape(std::string_view s);

}  // namespace courier
