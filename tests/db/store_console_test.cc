// db/: the SessionStore and ConsoleStore roles of the Store contract (the
// web console), run against every implementation (tests/db/store_impls.cc).
#include "tests/db/store_fixture.h"

namespace courier::db {
namespace {

using namespace store_tests;

ConsoleSession session_of(char c, SysTime created, std::chrono::seconds ttl) {
    return {std::string(64, c), created, created + ttl};
}

TEST_P(StoreTest, SessionIsFoundUntilItExpires) {
    ASSERT_TRUE(store_->put_session(session_of('a', kT0, 12h)));
    auto s = store_->session(std::string(64, 'a'), kT0 + 1h);
    ASSERT_TRUE(s.is_ok());
    ASSERT_TRUE(s->has_value());
    EXPECT_EQ((*s)->expires_at, kT0 + 12h);
    EXPECT_FALSE(store_->session(std::string(64, 'a'), kT0 + 12h)->has_value());
    EXPECT_FALSE(store_->session(std::string(64, 'b'), kT0)->has_value());
}

TEST_P(StoreTest, DeletedSessionIsGone) {
    ASSERT_TRUE(store_->put_session(session_of('a', kT0, 12h)));
    ASSERT_TRUE(store_->delete_session(std::string(64, 'a')));
    EXPECT_FALSE(store_->session(std::string(64, 'a'), kT0)->has_value());
    EXPECT_TRUE(store_->delete_session(std::string(64, 'a')));
}

TEST_P(StoreTest, DuplicateSessionIsAConflictAndMalformedDigestInvalid) {
    ASSERT_TRUE(store_->put_session(session_of('a', kT0, 12h)));
    EXPECT_EQ(store_->put_session(session_of('a', kT0, 1h)).code(), Code::kConflict);
    EXPECT_EQ(store_->session(std::string(64, 'a'), kT0)->value().expires_at, kT0 + 12h);
    EXPECT_EQ(store_->put_session({"short", kT0, kT0 + 1h}).code(), Code::kInvalid);
}

TEST_P(StoreTest, OverviewCountsStatesQueueAndRecentPushes) {
    enroll("A");
    enroll("B");
    ASSERT_TRUE(store_->apply_authenticate(auth_input("C"), now()));
    enqueue({"A", "B"});
    ASSERT_TRUE(store_->record_push_attempt({"A", kT0 - 2h, 200, "old", ""}));
    ASSERT_TRUE(store_->record_push_attempt({"A", kT0, 200, "id1", ""}));
    ASSERT_TRUE(store_->record_push_attempt({"B", kT0, 410, "", "Unregistered"}));
    auto o = store_->overview(kT0 - 1h);
    ASSERT_TRUE(o.is_ok()) << o.status().to_string();
    EXPECT_EQ(o->devices_by_state["enrolled"], 2);
    EXPECT_EQ(o->devices_by_state["pending"], 1);
    EXPECT_EQ(o->queue_depth, 2);
    EXPECT_EQ(o->pushes, 2);
    EXPECT_EQ(o->push_errors, 1);
}

TEST_P(StoreTest, PendingPushKeysKeepTheNewestTen) {
    int64_t first = 0;
    for (int i = 0; i < ConsoleStore::kMaxPendingPushKeys + 2; ++i) {
        auto id = store_->put_pending_push_key("key " + std::to_string(i), kT0);
        ASSERT_TRUE(id.is_ok());
        if (i == 0) first = *id;
    }
    auto keys = store_->pending_push_keys();
    ASSERT_TRUE(keys.is_ok());
    ASSERT_EQ(keys->size(), static_cast<size_t>(ConsoleStore::kMaxPendingPushKeys));
    EXPECT_EQ(keys->front().key_pem, "key 11");
    EXPECT_EQ(keys->back().key_pem, "key 2");
    ASSERT_TRUE(store_->delete_pending_push_key(keys->front().id));
    EXPECT_EQ(store_->pending_push_keys()->front().key_pem, "key 10");
    EXPECT_TRUE(store_->delete_pending_push_key(first));
}

TEST_P(StoreTest, DeviceQueryMatchesUdidSerialOrNameIgnoringCase) {
    auto in = auth_input("UDID-ONE");
    in.device_name = "Anna's iPhone";
    ASSERT_TRUE(store_->apply_authenticate(in, now()));
    ASSERT_TRUE(store_->apply_authenticate(auth_input("UDID-TWO"), now()));
    auto ids = [&](const std::string& q) {
        EnrollmentFilter f;
        f.query = q;
        std::vector<std::string> out;
        auto page = store_->list_enrollments(f, Page{100, ""});
        EXPECT_TRUE(page.is_ok());
        if (page.is_ok())
            for (const auto& e : page->items) out.push_back(e.id);
        return out;
    };
    EXPECT_EQ(ids("anna"), std::vector<std::string>{"UDID-ONE"});
    EXPECT_EQ(ids("sn-udid-two"), std::vector<std::string>{"UDID-TWO"});
    EXPECT_EQ(ids("udid-"), (std::vector<std::string>{"UDID-ONE", "UDID-TWO"}));
    EXPECT_TRUE(ids("nobody").empty());
    EXPECT_EQ(ids("%").size(), 0u);
}

}  // namespace
}  // namespace courier::db
