#include "common/log.h"

#include <fmt/chrono.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>

namespace courier {

namespace {
// Control characters escaped for one of the two log formats: inside a JSON
// string (quotes and backslashes too, \u00XX) or in a text line (\xXX, DEL
// included), so nothing a client sent can end a line or a string early.
std::string escape(std::string_view s, bool json) {
    std::string out;
    out.reserve(s.size() + 8);
    for (unsigned char c : s) {
        switch (c) {
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '"':
            case '\\':
                if (json) out += '\\';
                out += static_cast<char>(c);
                break;
            default:
                if (json && c < 0x20)
                    out += fmt::format("\\u{:04x}", c);
                else if (!json && (c < 0x20 || c == 0x7f))
                    out += fmt::format("\\x{:02x}", c);
                else
                    out += static_cast<char>(c);
        }
    }
    return out;
}
}  // namespace

std::string json_escape(const std::string& s) {
    return escape(s, true);
}

std::string log_escape(std::string_view s) {
    return escape(s, false);
}

namespace {

// The text format: spdlog's pattern, over the message with its control
// characters escaped.
class EscapingFormatter final : public spdlog::formatter {
  public:
    EscapingFormatter() : EscapingFormatter(make_pattern()) {}
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        std::string_view payload(msg.payload.data(), msg.payload.size());
        std::string escaped = log_escape(payload);
        spdlog::details::log_msg copy = msg;
        copy.payload = spdlog::string_view_t(escaped.data(), escaped.size());
        pattern_->format(copy, dest);
    }
    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<EscapingFormatter>(pattern_->clone());
    }
    explicit EscapingFormatter(std::unique_ptr<spdlog::formatter> pattern)
        : pattern_(std::move(pattern)) {}

  private:
    static std::unique_ptr<spdlog::formatter> make_pattern() {
        return std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%eZ %^%-5l%$ %v",
                                                           spdlog::pattern_time_type::utc);
    }
    std::unique_ptr<spdlog::formatter> pattern_;
};

class JsonFormatter final : public spdlog::formatter {
  public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        auto secs = std::chrono::time_point_cast<std::chrono::seconds>(msg.time);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time - secs).count();
        std::string line =
            fmt::format(R"({{"time":"{:%Y-%m-%dT%H:%M:%S}.{:03}Z","level":"{}","msg":"{}"}})",
                        fmt::gmtime(std::chrono::system_clock::to_time_t(secs)), ms,
                        spdlog::level::to_string_view(msg.level),
                        json_escape(std::string(msg.payload.data(), msg.payload.size())));
        line += '\n';
        dest.append(line.data(), line.data() + line.size());
    }
    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<JsonFormatter>();
    }
};

}  // namespace

Status init_logging(const std::string& level, const std::string& format) {
    auto lvl = spdlog::level::from_str(level);
    if (lvl == spdlog::level::off && level != "off")
        return invalid("unknown log level '" + level + "' (trace, debug, info, warn, error)");
    if (format != "text" && format != "json")
        return invalid("unknown log format '" + format + "' (text, json)");
    auto logger = std::make_shared<spdlog::logger>(
        "courier", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    if (format == "json") {
        logger->set_formatter(std::make_unique<JsonFormatter>());
    } else {
        logger->set_formatter(std::make_unique<EscapingFormatter>());
    }
    logger->set_level(lvl);
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(logger);
    return Status::ok();
}

}  // namespace courier
