// common/status.h: misuse of Result is caught where it happens, never left
// as a Result whose is_ok() and status() disagree, nor as undefined behaviour.
#include <gtest/gtest.h>

#include <string>

#include "common/status.h"

namespace courier {
namespace {

TEST(Result, HoldsAValueOrTheStatusThatExplainsItsAbsence) {
    Result<int> v = 7;
    ASSERT_TRUE(v.is_ok());
    EXPECT_EQ(*v, 7);
    EXPECT_TRUE(v.status().is_ok());
    Result<int> e = not_found("no such thing");
    EXPECT_FALSE(e.is_ok());
    EXPECT_EQ(e.status().code(), Code::kNotFound);
    EXPECT_EQ(e.status().message(), "no such thing");
}

TEST(ResultDeathTest, ConstructingFromAnOkStatusAborts) {
    EXPECT_DEATH(
        {
            Result<int> r(Status::ok());
            (void)r;
        },
        "Result misuse: constructed from an ok");
    EXPECT_DEATH(
        {
            Result<std::string> r(Code::kOk, "x");
            (void)r;
        },
        "Result misuse");
}

TEST(ResultDeathTest, TheValueOfAnErrorAbortsWithItsStatus) {
    EXPECT_DEATH(
        {
            Result<int> r = invalid("bad input");
            (void)r.value();
        },
        "value of an error \\(invalid: bad input\\)");
    EXPECT_DEATH(
        {
            const Result<std::string> r = unavailable("down");
            (void)r->size();
        },
        "unavailable: down");
    EXPECT_DEATH(
        {
            Result<int> r = internal_error("x");
            (void)*r;
        },
        "Result misuse");
}

}  // namespace
}  // namespace courier
