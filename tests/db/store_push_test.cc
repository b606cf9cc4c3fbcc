// db/: the PushCertStore and PushStore roles of the Store contract (push
// certificates, push attempts, re-push schedule, pending push), run against
// every implementation (tests/db/store_impls.cc).
#include "tests/db/store_fixture.h"

namespace courier::db {
namespace {

using namespace store_tests;

PushCert push_cert(const std::string& topic, const std::string& thumb) {
    PushCert c;
    c.topic = topic;
    c.cert_pem = "-----BEGIN CERTIFICATE-----" + thumb;
    c.key_pem = "-----BEGIN PRIVATE KEY-----" + thumb;
    c.thumbprint_sha1 = thumb;
    c.not_before = kT0 - std::chrono::days(1);
    c.not_after = kT0 + std::chrono::days(365);
    return c;
}

TEST_P(StoreTest, PushCertRenewalReplacesTheActiveOneAndKeepsHistory) {
    auto first = store_->put_push_cert(push_cert("com.apple.mgmt.A", std::string(40, '1')), now());
    ASSERT_TRUE(first.is_ok());
    clock_.advance(60s);
    auto second = store_->put_push_cert(push_cert("com.apple.mgmt.A", std::string(40, '2')), now());
    ASSERT_TRUE(second.is_ok());
    ASSERT_TRUE(store_->put_push_cert(push_cert("com.apple.mgmt.B", std::string(40, '3')), now()));
    auto active = store_->active_push_cert("com.apple.mgmt.A");
    ASSERT_TRUE(active.is_ok());
    ASSERT_TRUE(active->has_value());
    EXPECT_EQ((*active)->id, *second);
    EXPECT_EQ((*active)->key_pem, "-----BEGIN PRIVATE KEY-----" + std::string(40, '2'));
    EXPECT_EQ(store_->active_push_certs()->size(), 2u);
    auto history = store_->push_cert_history();
    ASSERT_EQ(history->size(), 3u);
    const PushCert& old = history->back();
    EXPECT_EQ(old.id, *first);
    EXPECT_FALSE(old.active);
    EXPECT_EQ(old.replaced_at, kT0 + 60s);
    EXPECT_FALSE(store_->active_push_cert("com.apple.mgmt.C")->has_value());
}

TEST_P(StoreTest, PushCertMarkedUnusableSaysWhy) {
    auto id = store_->put_push_cert(push_cert("com.apple.mgmt.A", std::string(40, '1')), now());
    ASSERT_TRUE(store_->mark_push_cert_unusable(*id, "APNs 403 BadCertificate"));
    auto c = store_->active_push_cert("com.apple.mgmt.A");
    EXPECT_FALSE((*c)->usable);
    EXPECT_EQ((*c)->unusable_reason, "APNs 403 BadCertificate");
    EXPECT_EQ(store_->mark_push_cert_unusable(*id + 100, "x").code(), Code::kNotFound);
}

TEST_P(StoreTest, PushAttemptsAndInvalidTokensAreInTheTimeline) {
    enroll("A");
    ASSERT_TRUE(store_->record_push_attempt({"A", now(), 200, "apns-1", ""}));
    ASSERT_TRUE(store_->mark_token_invalid("A", now()));
    EXPECT_FALSE(store_->enrollment("A")->token_valid);
    EXPECT_EQ(store_->mark_token_invalid("nope", now()).code(), Code::kNotFound);
    auto events = store_->timeline("A", 2);
    ASSERT_TRUE(events.is_ok());
    ASSERT_EQ(events->size(), 2u);
    EXPECT_EQ((*events)[0].kind, "push");
    EXPECT_NE((*events)[0].detail.find("invalid"), std::string::npos);
    EXPECT_NE((*events)[1].detail.find("apns-1"), std::string::npos);
}

TEST_P(StoreTest, RepushesAreDueInTimeOrderAndBounded) {
    enroll("A");
    enroll("B");
    enroll("C");
    enroll("D");
    enqueue({"A", "B", "C", "D"});
    ASSERT_TRUE(store_->schedule_repush("A", kT0 + 30s, 2));
    ASSERT_TRUE(store_->schedule_repush("B", kT0 + 10s, 1));
    ASSERT_TRUE(store_->schedule_repush("C", kT0 + 90s, 1));
    EXPECT_EQ(store_->schedule_repush("nope", kT0, 1).code(), Code::kNotFound);
    auto due = store_->due_repushes(kT0 + 60s, 10);
    ASSERT_TRUE(due.is_ok());
    ASSERT_EQ(due->size(), 2u);
    EXPECT_EQ((*due)[0].enrollment_id, "B");
    EXPECT_EQ((*due)[1].enrollment_id, "A");
    EXPECT_EQ((*due)[1].attempts, 2);
    EXPECT_EQ(store_->due_repushes(kT0 + 60s, 1)->size(), 1u);
}

TEST_P(StoreTest, RepushIsNotScheduledWithoutOpenCommands) {
    enroll("A");
    ASSERT_TRUE(store_->schedule_repush("A", kT0 + 10s, 1));
    EXPECT_TRUE(store_->due_repushes(kT0 + 60s, 10)->empty());
}

TEST_P(StoreTest, RepushScheduleIsClearedWhenTheQueueEmpties) {
    enroll("A");
    std::string uuid = enqueue({"A"});
    ASSERT_TRUE(store_->schedule_repush("A", kT0 + 10s, 1));
    ASSERT_EQ(next_uuid("A", true), uuid);
    EXPECT_EQ(store_->due_repushes(kT0 + 60s, 10)->size(), 1u);
    ASSERT_TRUE(store_->apply_report("A", uuid, TargetStatus::kAcknowledged, "", now()));
    EXPECT_TRUE(store_->due_repushes(kT0 + 60s, 10)->empty());
}

TEST_P(StoreTest, TokenUpdateMakesUndeliveredCommandsDueAtOnce) {
    enroll("A");
    enqueue({"A"});
    ASSERT_TRUE(store_->schedule_repush("A", kT0 + 3600s, 7));
    ASSERT_TRUE(store_->apply_token_update(token_input("A", "A"), now()));
    auto due = store_->due_repushes(now(), 10);
    ASSERT_EQ(due->size(), 1u);
    EXPECT_EQ((*due)[0].attempts, 0);
}

// ---- Pending push (docs/apns.md "Pending push") -------------------------------------

PushOutcomeRecord accepted_push(const std::string& id, const std::string& apns_id, SysTime at,
                                SysTime until) {
    PushOutcomeRecord r;
    r.attempt = PushAttempt{id, at, 200, apns_id, ""};
    r.repush_at = at + 60s;
    r.attempts = 1;
    r.sent_at = at;
    r.pending_until = until;
    return r;
}

TEST_P(StoreTest, AcceptedPushIsPendingAndEnqueuesReportIt) {
    enroll("A");
    enroll("B");
    ASSERT_TRUE(store_->arm_pushes({"A"}, now()));
    ASSERT_TRUE(store_->record_push_outcomes({accepted_push("A", "apns-1", now(), now() + 60s)}));
    auto e = store_->enrollment("A");
    ASSERT_TRUE(e.is_ok());
    EXPECT_TRUE(e->push_pending_at(now()));
    EXPECT_EQ(e->pending_push_apns_id, "apns-1");
    EXPECT_FALSE(store_->enrollment("B")->push_pending_at(now()));

    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    auto r = store_->enqueue(cmd, {"A", "B"}, now());
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->queued.size(), 2u);
    EXPECT_EQ(r->pending_push, (std::map<std::string, std::string>{{"A", "apns-1"}}));
}

TEST_P(StoreTest, CoalescedEnqueueMakesTheRepushDueWhenThePendingPushEnds) {
    enroll("A");
    // Pushed with nothing queued (GET /v1/push): no re-push scheduled yet.
    ASSERT_TRUE(store_->arm_pushes({"A"}, now()));
    ASSERT_TRUE(store_->record_push_outcomes({accepted_push("A", "apns-1", now(), now() + 60s)}));
    ASSERT_TRUE(store_->due_repushes(now() + std::chrono::days(1), 10)->empty());
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    ASSERT_EQ(store_->enqueue(cmd, {"A"}, now())->pending_push.size(), 1u);
    EXPECT_TRUE(store_->due_repushes(now() + 59s, 10)->empty());
    auto due = store_->due_repushes(now() + 60s, 10);
    ASSERT_EQ(due->size(), 1u);
    EXPECT_EQ((*due)[0].attempts, 1);
}

TEST_P(StoreTest, PendingPushEndsAtItsDeadline) {
    enroll("A");
    ASSERT_TRUE(store_->arm_pushes({"A"}, now()));
    ASSERT_TRUE(store_->record_push_outcomes({accepted_push("A", "apns-1", now(), now() + 60s)}));
    clock_.advance(60s);
    EXPECT_FALSE(store_->enrollment("A")->push_pending_at(now()));
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    EXPECT_TRUE(store_->enqueue(cmd, {"A"}, now())->pending_push.empty());
}

TEST_P(StoreTest, DevicesRequestClearsThePendingPush) {
    enroll("A");
    enroll("B");
    enroll("C");
    std::string uuid = enqueue({"B"});
    ASSERT_TRUE(store_->arm_pushes({"A", "B", "C"}, now()));
    for (const char* id : {"A", "B", "C"})
        ASSERT_TRUE(store_->record_push_outcomes({accepted_push(id, "apns", now(), now() + 60s)}));
    // An Idle with nothing queued, a report, and a TokenUpdate each end it.
    ASSERT_EQ(next_uuid("A", true), "");
    ASSERT_TRUE(store_->apply_report("B", uuid, TargetStatus::kAcknowledged, "", now()));
    ASSERT_TRUE(store_->apply_token_update(token_input("C", "C"), now()));
    for (const char* id : {"A", "B", "C"}) {
        EXPECT_FALSE(store_->enrollment(id)->push_pending_at(now())) << id;
        NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
        EXPECT_TRUE(store_->enqueue(cmd, {id}, now())->pending_push.empty()) << id;
    }
}

TEST_P(StoreTest, PushIsNotPendingForADeviceSeenSinceItWasSent) {
    enroll("A");
    enroll("B");
    ASSERT_TRUE(store_->arm_pushes({"A", "B"}, now()));
    store_->touch_last_seen({"A"}, now() + 2s);  // came after the push was sent
    clock_.advance(3s);
    ASSERT_TRUE(store_->record_push_outcomes(
        {accepted_push("A", "a", kT0, now() + 60s), accepted_push("B", "b", kT0, now() + 60s)}));
    EXPECT_FALSE(store_->enrollment("A")->push_pending_at(now()));
    EXPECT_TRUE(store_->enrollment("B")->push_pending_at(now()));
}

TEST_P(StoreTest, RefusedPushOrInvalidTokenIsNotPending) {
    enroll("A");
    enroll("B");
    PushOutcomeRecord refused;
    refused.attempt = PushAttempt{"A", now(), 429, "", "TooManyRequests"};
    refused.repush_at = now() + 15s;
    refused.attempts = 1;
    ASSERT_TRUE(store_->record_push_outcomes({refused}));
    EXPECT_FALSE(store_->enrollment("A")->push_pending_at(now()));
    // A mark on an enrollment APNs no longer takes pushes for is not reported.
    ASSERT_TRUE(store_->arm_pushes({"B"}, now()));
    ASSERT_TRUE(store_->record_push_outcomes({accepted_push("B", "b", now(), now() + 60s)}));
    ASSERT_TRUE(store_->mark_token_invalid("B", now()));
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    EXPECT_TRUE(store_->enqueue(cmd, {"B"}, now())->pending_push.empty());
}

TEST_P(StoreTest, EnqueueArmsThePushesItNeedsWithoutCoalescingOnThem) {
    enroll("A");
    enqueue({"A"});
    auto e = store_->enrollment("A");
    EXPECT_TRUE(e->push_marked_at(now()));
    EXPECT_FALSE(e->push_pending_at(now()));  // armed, not pending
    // An armed push is not pending: the next enqueue pushes too.
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    EXPECT_TRUE(store_->enqueue(cmd, {"A"}, now())->pending_push.empty());
    // A queue-only enqueue (nopush) arms nothing.
    enroll("B");
    NewCommand quiet{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    quiet.will_push = false;
    ASSERT_TRUE(store_->enqueue(quiet, {"B"}, now()).is_ok());
    EXPECT_FALSE(store_->enrollment("B")->push_marked_at(now()));
}

TEST_P(StoreTest, UnarmedPushIsNotMarkedPending) {
    enroll("A");
    ASSERT_TRUE(store_->record_push_outcomes({accepted_push("A", "apns-1", now(), now() + 60s)}));
    EXPECT_FALSE(store_->enrollment("A")->push_marked_at(now()));
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    EXPECT_TRUE(store_->enqueue(cmd, {"A"}, now())->pending_push.empty());
}

// The two-node race of benchmark C: the push's answer is recorded after the
// device already came for its command (on another node, in the same second,
// so neither a memory of the visit nor last_seen tells). The device's
// request disarmed the push, so the answer marks nothing and the next
// enqueue pushes at once instead of waiting for the re-push.
TEST_P(StoreTest, PushAnsweredAfterTheDeviceCameIsNotPending) {
    enroll("A");
    enqueue({"A"});  // arms A's push
    EXPECT_NE(next_uuid("A", true), "");
    EXPECT_FALSE(store_->enrollment("A")->push_marked_at(now()));
    ASSERT_TRUE(store_->record_push_outcomes({accepted_push("A", "apns-1", now(), now() + 60s)}));
    EXPECT_FALSE(store_->enrollment("A")->push_pending_at(now()));
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    EXPECT_TRUE(store_->enqueue(cmd, {"A"}, now())->pending_push.empty());
}

TEST_P(StoreTest, ArmingKeepsAPendingPushAndReplacesAnEndedOne) {
    enroll("A");
    ASSERT_TRUE(store_->arm_pushes({"A"}, now()));
    ASSERT_TRUE(store_->record_push_outcomes({accepted_push("A", "apns-1", now(), now() + 60s)}));
    ASSERT_TRUE(store_->arm_pushes({"A", "no-such-enrollment"}, now()));
    auto e = store_->enrollment("A");
    EXPECT_TRUE(e->push_pending_at(now()));
    EXPECT_EQ(e->pending_push_apns_id, "apns-1");
    clock_.advance(61s);
    ASSERT_TRUE(store_->arm_pushes({"A"}, now()));
    e = store_->enrollment("A");
    EXPECT_FALSE(e->push_pending_at(now()));
    EXPECT_TRUE(e->push_marked_at(now()));
}

// An armed push whose outcome never comes (its send failed, or the node
// died) ends with its window: an Idle stops taking the write path for it,
// and an enqueue still pushes meanwhile (armed is not pending).
TEST_P(StoreTest, AnArmedPushWithNoOutcomeEndsWithItsWindow) {
    enroll("A");
    ASSERT_TRUE(store_->arm_pushes({"A"}, now()));
    NewCommand cmd{random_uuid(), "DeviceInformation", "<plist/>", std::nullopt};
    auto q = store_->enqueue(cmd, {"A"}, now());
    ASSERT_TRUE(q.is_ok());
    EXPECT_TRUE(q->pending_push.empty());
    EXPECT_EQ(q->to_push(), std::vector<std::string>{"A"});
    clock_.advance(kPushArmWindow - 1s);
    EXPECT_TRUE(store_->enrollment("A")->push_marked_at(now()));
    clock_.advance(1s);
    EXPECT_FALSE(store_->enrollment("A")->push_marked_at(now()));
    EXPECT_FALSE(store_->enrollment("A")->push_pending_at(now()));
}

}  // namespace
}  // namespace courier::db
