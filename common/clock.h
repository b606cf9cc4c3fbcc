// Time as Courier sees it: an injectable clock so schedules are testable
// without sleeping, and RFC 3339 formatting for the API.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace courier {

using SysTime = std::chrono::sys_seconds;
// Finer, for the few "which came first" questions a second cannot answer.
using SysTimeMs = std::chrono::sys_time<std::chrono::milliseconds>;

class Clock {
  public:
    virtual ~Clock() = default;
    // Wall-clock time, whole seconds (the store's resolution).
    virtual SysTime now() const = 0;
    // The same clock to the millisecond (now() is this, floored).
    virtual SysTimeMs now_ms() const { return now(); }
};

// The real clock. Thread-safe.
class SystemClock final : public Clock {
  public:
    SysTime now() const override;
    SysTimeMs now_ms() const override;
    static SystemClock& instance();
};

// A clock tests move by hand, to the millisecond. Thread-safe.
class ManualClock final : public Clock {
  public:
    explicit ManualClock(SysTime start) { set(start); }
    SysTime now() const override { return std::chrono::floor<std::chrono::seconds>(now_ms()); }
    SysTimeMs now_ms() const override { return SysTimeMs(std::chrono::milliseconds(now_.load())); }
    void advance(std::chrono::milliseconds d) { now_ += d.count(); }
    void set(SysTimeMs t) { now_ = t.time_since_epoch().count(); }

  private:
    std::atomic<int64_t> now_;  // ms since the epoch
};

// "2026-01-07T04:04:46Z".
std::string format_rfc3339(SysTime t);
// Accepts "YYYY-MM-DDTHH:MM:SS" with optional fraction and "Z" or "±HH:MM".
std::optional<SysTime> parse_rfc3339(std::string_view s);

inline int64_t to_unix(SysTime t) {
    return t.time_since_epoch().count();
}
inline SysTime from_unix(int64_t s) {
    return SysTime(std::chrono::seconds(s));
}

}  // namespace courier
