// db/: the EnrollmentTokenStore role of the Store contract, run against
// every implementation (tests/db/store_impls.cc).
#include "tests/db/store_fixture.h"

namespace courier::db {
namespace {

using namespace store_tests;

EnrollmentToken token(const std::string& id, int64_t uses, std::optional<SysTime> expires) {
    return {id, std::string(64, id[0]), uses, expires, kT0, "for " + id};
}

TEST_P(StoreTest, SingleUseEnrollmentTokenIsConsumedOnce) {
    ASSERT_TRUE(store_->put_enrollment_token(token("a", 1, std::nullopt)));
    EXPECT_TRUE(store_->consume_enrollment_token(std::string(64, 'a'), now()));
    EXPECT_EQ(store_->consume_enrollment_token(std::string(64, 'a'), now()).code(),
              Code::kForbidden);
}

TEST_P(StoreTest, UnlimitedEnrollmentTokenStaysUsable) {
    ASSERT_TRUE(store_->put_enrollment_token(token("u", -1, std::nullopt)));
    for (int i = 0; i < 3; ++i)
        EXPECT_TRUE(store_->consume_enrollment_token(std::string(64, 'u'), now()));
    EXPECT_EQ(store_->enrollment_tokens()->at(0).uses_left, -1);
}

TEST_P(StoreTest, ExpiredOrUnknownEnrollmentTokenIsForbidden) {
    ASSERT_TRUE(store_->put_enrollment_token(token("e", 5, kT0 + 10s)));
    EXPECT_EQ(store_->consume_enrollment_token(std::string(64, 'e'), kT0 + 10s).code(),
              Code::kForbidden);
    EXPECT_EQ(store_->consume_enrollment_token(std::string(64, 'z'), now()).code(),
              Code::kForbidden);
}

TEST_P(StoreTest, EnrollmentTokensAreListedAndDeleted) {
    ASSERT_TRUE(store_->put_enrollment_token(token("a", 1, std::nullopt)));
    EXPECT_EQ(store_->put_enrollment_token(token("a", 1, std::nullopt)).code(), Code::kConflict);
    auto list = store_->enrollment_tokens();
    ASSERT_EQ(list->size(), 1u);
    EXPECT_EQ(list->at(0).note, "for a");
    ASSERT_TRUE(store_->delete_enrollment_token("a"));
    EXPECT_EQ(store_->delete_enrollment_token("a").code(), Code::kNotFound);
    EXPECT_EQ(store_->consume_enrollment_token(std::string(64, 'a'), now()).code(),
              Code::kForbidden);
}

TEST_P(StoreTest, AReleasedEnrollmentTokenUseCanBeClaimedAgain) {
    EnrollmentToken t;
    t.id = "once";
    t.token_sha256 = std::string(64, 'b');
    t.uses_left = 1;
    t.created_at = now();
    ASSERT_TRUE(store_->put_enrollment_token(t));
    ASSERT_TRUE(store_->consume_enrollment_token(t.token_sha256, now()));
    EXPECT_EQ(store_->consume_enrollment_token(t.token_sha256, now()).code(), Code::kForbidden);
    ASSERT_TRUE(store_->release_enrollment_token(t.token_sha256));
    ASSERT_TRUE(store_->consume_enrollment_token(t.token_sha256, now()));
    EXPECT_EQ(store_->consume_enrollment_token(t.token_sha256, now()).code(), Code::kForbidden);
    // Unlimited and unknown tokens: nothing to give back, and ok.
    t.id = "many";
    t.token_sha256 = std::string(64, 'c');
    t.uses_left = -1;
    ASSERT_TRUE(store_->put_enrollment_token(t));
    ASSERT_TRUE(store_->release_enrollment_token(t.token_sha256));
    EXPECT_TRUE(store_->release_enrollment_token(std::string(64, 'd')));
    auto list = store_->enrollment_tokens();
    ASSERT_TRUE(list.is_ok());
    for (const auto& x : *list) EXPECT_EQ(x.uses_left, x.id == "many" ? -1 : 0) << x.id;
}

}  // namespace
}  // namespace courier::db
