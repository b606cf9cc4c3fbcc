// common/log: text logs escape control characters from requests, so a
// device cannot forge a log line or drive an operator's terminal.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>

#include "common/log.h"

namespace courier {
namespace {

TEST(LogEscape, ControlCharactersBecomeVisibleEscapes) {
    EXPECT_EQ(log_escape("plain UDID-1 é"), "plain UDID-1 é");
    EXPECT_EQ(log_escape("a\nb\rc\td"), "a\\nb\\rc\\td");
    EXPECT_EQ(log_escape(std::string("\x1b[2J\x7f\0z", 7)), "\\x1b[2J\\x7f\\x00z");
}

TEST(TextLog, ADeviceSuppliedNewlineAndEscCannotForgeALine) {
    ASSERT_TRUE(init_logging("info", "text"));
    const std::string udid =
        "UDID-1\n2026-01-07T04:04:46.000Z info  enrollment UDID-ADMIN retired\x1b[1A\x1b[2K";
    testing::internal::CaptureStderr();
    spdlog::warn("device request refused: PUT /mdm from 127.0.0.1 ({}): bad", udid);
    spdlog::default_logger()->flush();
    std::string out = testing::internal::GetCapturedStderr();
    ASSERT_FALSE(out.empty());
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;  // one line, its own
    EXPECT_EQ(out.back(), '\n');
    EXPECT_EQ(out.find('\x1b'), std::string::npos) << out;
    EXPECT_NE(out.find("UDID-1\\n2026-01-07T04:04:46.000Z info  enrollment UDID-ADMIN "
                       "retired\\x1b[1A\\x1b[2K"),
              std::string::npos)
        << out;
    ASSERT_TRUE(init_logging("info", "json"));  // and JSON lines stay one line too
    testing::internal::CaptureStderr();
    spdlog::warn("device {}", udid);
    spdlog::default_logger()->flush();
    out = testing::internal::GetCapturedStderr();
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
    EXPECT_EQ(out.find('\x1b'), std::string::npos) << out;
}

}  // namespace
}  // namespace courier
