// db/: the EnrollmentStore role of the Store contract (enrollments, facts,
// checkout, retirement, tokens of a device, listing, timeline), run against
// every implementation (tests/db/store_impls.cc).
#include "tests/db/store_fixture.h"

namespace courier::db {
namespace {

using namespace store_tests;

TEST_P(StoreTest, PingAnswers) {
    EXPECT_TRUE(store_->ping());
}

TEST_P(StoreTest, AuthenticateCreatesPendingEnrollment) {
    ASSERT_TRUE(store_->apply_authenticate(auth_input("UDID-1"), now()));
    auto e = store_->enrollment("UDID-1");
    ASSERT_TRUE(e.is_ok());
    EXPECT_EQ(e->state, EnrollmentState::kPending);
    EXPECT_EQ(e->serial_number, "SN-UDID-1");
    EXPECT_EQ(e->model, "iPhone15,2");
    EXPECT_TRUE(e->push_token.empty());
    EXPECT_FALSE(e->token_valid);
    EXPECT_EQ(e->created_at, kT0);
}

TEST_P(StoreTest, UnknownEnrollmentIsNotFound) {
    EXPECT_EQ(store_->enrollment("nope").status().code(), Code::kNotFound);
}

// The device path's read: every column of enrollment() but the open-target
// count, which it leaves 0 (the count grows with the queue).
TEST_P(StoreTest, EnrollmentStateIsTheEnrollmentWithoutItsOpenTargetCount) {
    enroll("UDID-1");
    enqueue({"UDID-1"});
    enqueue({"UDID-1"});
    auto full = store_->enrollment("UDID-1");
    auto state = store_->enrollment_state("UDID-1");
    ASSERT_TRUE(full.is_ok() && state.is_ok());
    EXPECT_EQ(full->queued, 2);
    EXPECT_EQ(state->queued, 0);
    EXPECT_EQ(state->id, full->id);
    EXPECT_EQ(state->device_id, full->device_id);
    EXPECT_EQ(state->state, full->state);
    EXPECT_EQ(state->push_token, full->push_token);
    EXPECT_EQ(state->push_magic, full->push_magic);
    EXPECT_EQ(state->topic, full->topic);
    EXPECT_EQ(state->token_valid, full->token_valid);
    EXPECT_EQ(state->serial_number, full->serial_number);
    EXPECT_EQ(state->created_at, full->created_at);
    EXPECT_EQ(state->last_seen, full->last_seen);
    EXPECT_EQ(state->pending_push_apns_id, full->pending_push_apns_id);
    EXPECT_EQ(state->pending_push_until, full->pending_push_until);
    EXPECT_EQ(state->facts_truncated, full->facts_truncated);
    EXPECT_EQ(store_->enrollment_state("nope").status().code(), Code::kNotFound);
}

TEST_P(StoreTest, TokenUpdateEnrollsWithValidToken) {
    enroll("UDID-1");
    auto e = store_->enrollment("UDID-1");
    ASSERT_TRUE(e.is_ok());
    EXPECT_EQ(e->state, EnrollmentState::kEnrolled);
    EXPECT_TRUE(e->token_valid);
    EXPECT_EQ(e->push_token, std::string("\x01\x02\x03\x00\xff", 5));
    EXPECT_EQ(e->push_magic, "MAGIC-UDID-1");
    EXPECT_EQ(e->topic, "com.apple.mgmt.External.test");
}

TEST_P(StoreTest, UserChannelTokenUpdateCreatesItsRowAndLeavesDeviceRowAlone) {
    enroll("UDID-1");
    auto user = token_input("UDID-1:USER-1", "UDID-1");
    user.user_id = "USER-1";
    user.push_token = "user-token";
    clock_.advance(10s);
    ASSERT_TRUE(store_->apply_token_update(user, now()));
    auto u = store_->enrollment("UDID-1:USER-1");
    ASSERT_TRUE(u.is_ok());
    EXPECT_EQ(u->device_id, "UDID-1");
    EXPECT_EQ(u->user_id, "USER-1");
    EXPECT_EQ(u->push_token, "user-token");
    auto d = store_->enrollment("UDID-1");
    ASSERT_TRUE(d.is_ok());
    EXPECT_EQ(d->push_token, std::string("\x01\x02\x03\x00\xff", 5));
    EXPECT_EQ(d->updated_at, kT0);
}

TEST_P(StoreTest, UserChannelsAreCountedPerDevice) {
    enroll("UDID-1");
    enroll("UDID-2");
    EXPECT_EQ(*store_->user_channel_count("UDID-1"), 0);
    for (const char* u : {"USER-1", "USER-2"}) {
        auto user = token_input(std::string("UDID-1:") + u, "UDID-1");
        user.user_id = u;
        ASSERT_TRUE(store_->apply_token_update(user, now()));
    }
    EXPECT_EQ(*store_->user_channel_count("UDID-1"), 2);
    EXPECT_EQ(*store_->user_channel_count("UDID-2"), 0);
    EXPECT_EQ(*store_->user_channel_count("UDID-none"), 0);
}

TEST_P(StoreTest, FactsTruncatedFlagIsStoredAndClearedByTheNextAuthenticate) {
    auto in = auth_input("UDID-1");
    in.facts_truncated = true;
    ASSERT_TRUE(store_->apply_authenticate(in, now()));
    EXPECT_TRUE(store_->enrollment("UDID-1")->facts_truncated);
    in.facts_truncated = false;
    ASSERT_TRUE(store_->apply_authenticate(in, now()));
    EXPECT_FALSE(store_->enrollment("UDID-1")->facts_truncated);
}

TEST_P(StoreTest, TokenUpdateWithoutUnlockTokenKeepsTheStoredOne) {
    enroll("UDID-1");
    auto with = token_input("UDID-1", "UDID-1");
    with.unlock_token = std::string("unlock\0bytes", 12);
    ASSERT_TRUE(store_->apply_token_update(with, now()));
    ASSERT_TRUE(store_->apply_token_update(token_input("UDID-1", "UDID-1"), now()));
    auto t = store_->unlock_token("UDID-1");
    ASSERT_TRUE(t.is_ok());
    ASSERT_TRUE(t->has_value());
    EXPECT_EQ(**t, std::string("unlock\0bytes", 12));
    EXPECT_TRUE(store_->enrollment("UDID-1")->has_unlock_token);
}

TEST_P(StoreTest, AuthenticateOfKnownIdStartsAfreshAndCancelsOpenCommands) {
    enroll("UDID-1");
    std::string acked = enqueue({"UDID-1"});
    std::string sent = enqueue({"UDID-1"});
    std::string notnow = enqueue({"UDID-1"});
    std::string queued = enqueue({"UDID-1"});
    ASSERT_EQ(next_uuid("UDID-1", true), acked);
    ASSERT_TRUE(store_->apply_report("UDID-1", acked, TargetStatus::kAcknowledged, "ok", now()));
    // The report handed `sent` over; NotNow it, then `notnow` is handed over.
    ASSERT_TRUE(store_->apply_report("UDID-1", sent, TargetStatus::kNotNow, "", now()));
    ASSERT_EQ(status_of(notnow, "UDID-1"), TargetStatus::kSent);
    ASSERT_TRUE(store_->apply_report("UDID-1", notnow, TargetStatus::kNotNow, "", now()));

    ASSERT_TRUE(store_->apply_authenticate(auth_input("UDID-1"), now()));
    auto e = store_->enrollment("UDID-1");
    EXPECT_EQ(e->state, EnrollmentState::kPending);
    EXPECT_TRUE(e->push_token.empty());
    EXPECT_FALSE(e->token_valid);
    EXPECT_EQ(e->queued, 0);
    EXPECT_EQ(status_of(acked, "UDID-1"), TargetStatus::kAcknowledged);
    EXPECT_EQ(status_of(sent, "UDID-1"), TargetStatus::kCanceled);
    EXPECT_EQ(status_of(notnow, "UDID-1"), TargetStatus::kCanceled);
    EXPECT_EQ(status_of(queued, "UDID-1"), TargetStatus::kCanceled);
    EXPECT_EQ(next_uuid("UDID-1", true), "");
}

TEST_P(StoreTest, CheckoutUnenrollsAndCancelsOpenCommands) {
    enroll("UDID-1");
    std::string uuid = enqueue({"UDID-1"});
    ASSERT_TRUE(store_->apply_checkout("UDID-1", now()));
    EXPECT_EQ(store_->enrollment("UDID-1")->state, EnrollmentState::kUnenrolled);
    EXPECT_EQ(status_of(uuid, "UDID-1"), TargetStatus::kCanceled);
}

TEST_P(StoreTest, CheckoutOfUnknownIdIsNotFound) {
    EXPECT_EQ(store_->apply_checkout("nope", now()).code(), Code::kNotFound);
}

TEST_P(StoreTest, RetireCancelsQueueAndUnretireReturnsToPending) {
    enroll("UDID-1");
    std::string uuid = enqueue({"UDID-1"});
    ASSERT_TRUE(store_->set_retired("UDID-1", true, now()));
    EXPECT_EQ(store_->enrollment("UDID-1")->state, EnrollmentState::kRetired);
    EXPECT_EQ(status_of(uuid, "UDID-1"), TargetStatus::kCanceled);
    // A TokenUpdate does not lift a retirement.
    ASSERT_TRUE(store_->apply_token_update(token_input("UDID-1", "UDID-1"), now()));
    EXPECT_EQ(store_->enrollment("UDID-1")->state, EnrollmentState::kRetired);
    ASSERT_TRUE(store_->set_retired("UDID-1", false, now()));
    EXPECT_EQ(store_->enrollment("UDID-1")->state, EnrollmentState::kPending);
}

TEST_P(StoreTest, RetireOfUnknownIdIsNotFound) {
    EXPECT_EQ(store_->set_retired("nope", true, now()).code(), Code::kNotFound);
}

TEST_P(StoreTest, BootstrapTokenRoundTrips) {
    enroll("UDID-1");
    EXPECT_FALSE(store_->bootstrap_token("UDID-1")->has_value());
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-1", "boot\0strap", ""));
    EXPECT_EQ(store_->bootstrap_token("UDID-1")->value_or(""), "boot\0strap");
    EXPECT_EQ(store_->set_bootstrap_token("nope", "x", "").code(), Code::kNotFound);
    EXPECT_EQ(store_->bootstrap_token("nope").status().code(), Code::kNotFound);
    EXPECT_EQ(store_->unlock_token("nope").status().code(), Code::kNotFound);
}

TEST_P(StoreTest, ExistingEnrollmentsListsOnlyKnownIds) {
    enroll("A");
    enroll("C");
    auto r = store_->existing_enrollments({"A", "B", "C"});
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(*r, (std::vector<std::string>{"A", "C"}));
}

TEST_P(StoreTest, ListEnrollmentsPagesInStableOrder) {
    std::set<std::string> all;
    for (int i = 0; i < 25; ++i) {
        std::string id = fmt::format("UDID-{:02}", 24 - i);
        enroll(id);
        all.insert(id);
    }
    std::vector<std::string> seen;
    Page page{10, ""};
    for (int round = 0; round < 10; ++round) {
        auto r = store_->list_enrollments({}, page);
        ASSERT_TRUE(r.is_ok());
        for (const auto& e : r->items) seen.push_back(e.id);
        if (r->next_cursor.empty()) break;
        page.cursor = r->next_cursor;
    }
    EXPECT_EQ(seen, std::vector<std::string>(all.begin(), all.end()));
}

TEST_P(StoreTest, ListEnrollmentsFiltersByStateAndSerial) {
    enroll("A");
    enroll("B");
    ASSERT_TRUE(store_->apply_authenticate(auth_input("C"), now()));
    EnrollmentFilter pending;
    pending.state = EnrollmentState::kPending;
    auto r = store_->list_enrollments(pending, {});
    ASSERT_TRUE(r.is_ok());
    ASSERT_EQ(r->items.size(), 1u);
    EXPECT_EQ(r->items[0].id, "C");
    EnrollmentFilter serial;
    serial.serial_number = "SN-B";
    r = store_->list_enrollments(serial, {});
    ASSERT_EQ(r->items.size(), 1u);
    EXPECT_EQ(r->items[0].id, "B");
}

TEST_P(StoreTest, ListLimitIsClampedAndABadCursorIsInvalid) {
    enroll("A");
    enroll("B");
    auto r = store_->list_enrollments({}, {0, ""});
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->items.size(), 1u);
    EXPECT_FALSE(r->next_cursor.empty());
    EXPECT_EQ(store_->list_enrollments({}, {10, "zz"}).status().code(), Code::kInvalid);
    EXPECT_EQ(store_->list_commands({}, {10, "zz"}).status().code(), Code::kInvalid);
}

TEST_P(StoreTest, TimelineTellsTheStoryNewestFirstWithoutSecrets) {
    auto auth = auth_input("A");
    auth.cert_sha256 = std::string(64, 'f');
    ASSERT_TRUE(store_->apply_authenticate(auth, now()));
    clock_.advance(1s);
    auto tu = token_input("A", "A");
    tu.unlock_token = "UNLOCK-SECRET";
    ASSERT_TRUE(store_->apply_token_update(tu, now()));
    clock_.advance(1s);
    std::string uuid = enqueue({"A"});
    ASSERT_EQ(next_uuid("A", true), uuid);
    ASSERT_TRUE(store_->apply_report("A", uuid, TargetStatus::kAcknowledged, "", now()));
    ASSERT_TRUE(store_->append_timeline("A", {now() + 1s, "note", "by hand"}));
    auto events = store_->timeline("A", 100);
    ASSERT_TRUE(events.is_ok());
    std::vector<std::string> kinds;
    for (const auto& e : *events) {
        kinds.push_back(e.kind);
        EXPECT_EQ(e.detail.find("MAGIC"), std::string::npos) << e.detail;
        EXPECT_EQ(e.detail.find("UNLOCK-SECRET"), std::string::npos) << e.detail;
    }
    EXPECT_EQ(kinds, (std::vector<std::string>{"note", "report", "command", "command", "checkin",
                                               "binding", "checkin"}));
}

TEST_P(StoreTest, TouchLastSeenIsVisibleAtOnce) {
    enroll("A");
    store_->touch_last_seen({"A"}, kT0 + 5s);
    EXPECT_EQ(store_->enrollment("A")->last_seen, kT0 + 5s);
}

}  // namespace
}  // namespace courier::db
