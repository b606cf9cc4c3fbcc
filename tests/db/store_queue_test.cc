// db/: the CommandQueue role of the Store contract (enqueue, hand-over,
// reports, cancel, listing, depth), run against every implementation
// (tests/db/store_impls.cc).
#include "tests/db/store_fixture.h"

namespace courier::db {
namespace {

using namespace store_tests;

TEST_P(StoreTest, NextCommandIsFifoAndMarksSent) {
    enroll("UDID-1");
    std::string first = enqueue({"UDID-1"}, "DeviceLock");
    std::string second = enqueue({"UDID-1"});
    auto next = store_->next_command("UDID-1", true, now());
    ASSERT_TRUE(next.is_ok());
    ASSERT_TRUE(next->has_value());
    EXPECT_EQ((*next)->uuid, first);
    EXPECT_EQ((*next)->request_type, "DeviceLock");
    EXPECT_EQ((*next)->plist, "<plist>DeviceLock</plist>");
    EXPECT_EQ(status_of(first, "UDID-1"), TargetStatus::kSent);
    EXPECT_EQ(status_of(second, "UDID-1"), TargetStatus::kQueued);
}

TEST_P(StoreTest, SentCommandIsOfferedAgainOnTheNextIdle) {
    enroll("UDID-1");
    std::string first = enqueue({"UDID-1"});
    enqueue({"UDID-1"});
    ASSERT_EQ(next_uuid("UDID-1", true), first);
    // The connection dropped before a report: the next Idle gets it again.
    EXPECT_EQ(next_uuid("UDID-1", true), first);
}

TEST_P(StoreTest, NotNowIsSkippedWithinTheSessionAndOfferedOnIdle) {
    enroll("UDID-1");
    std::string first = enqueue({"UDID-1"});
    std::string second = enqueue({"UDID-1"});
    ASSERT_EQ(next_uuid("UDID-1", true), first);
    auto r = store_->apply_report("UDID-1", first, TargetStatus::kNotNow, "<notnow/>", now());
    ASSERT_TRUE(r.is_ok());
    ASSERT_TRUE(r->has_value());
    EXPECT_EQ((*r)->uuid, second);
    EXPECT_EQ(status_of(first, "UDID-1"), TargetStatus::kNotNow);
    r = store_->apply_report("UDID-1", second, TargetStatus::kAcknowledged, "<ok/>", now());
    ASSERT_TRUE(r.is_ok());
    EXPECT_FALSE(r->has_value());
    EXPECT_EQ(next_uuid("UDID-1", false), "");
    EXPECT_EQ(next_uuid("UDID-1", true), first);
}

TEST_P(StoreTest, ExpiredCommandsAreSkippedAndMarkedExpired) {
    enroll("UDID-1");
    std::string stale = enqueue({"UDID-1"}, "DeviceLock", kT0 + 60s);
    std::string fresh = enqueue({"UDID-1"});
    clock_.advance(61s);
    EXPECT_EQ(next_uuid("UDID-1", true), fresh);
    EXPECT_EQ(status_of(stale, "UDID-1"), TargetStatus::kExpired);
}

TEST_P(StoreTest, HasPendingSeesOpenUnexpiredCommands) {
    enroll("UDID-1");
    EXPECT_FALSE(store_->has_pending("UDID-1", now()).value());
    enqueue({"UDID-1"}, "DeviceLock", kT0 + 60s);
    EXPECT_TRUE(store_->has_pending("UDID-1", now()).value());
    EXPECT_FALSE(store_->has_pending("UDID-1", now() + 61s).value());
}

TEST_P(StoreTest, FinalReportIsRecordedOnce) {
    enroll("UDID-1");
    std::string uuid = enqueue({"UDID-1"});
    ASSERT_EQ(next_uuid("UDID-1", true), uuid);
    ASSERT_TRUE(store_->apply_report("UDID-1", uuid, TargetStatus::kAcknowledged, "first", now()));
    clock_.advance(5s);
    ASSERT_TRUE(store_->apply_report("UDID-1", uuid, TargetStatus::kError, "second", now()));
    auto c = store_->command(uuid);
    ASSERT_TRUE(c.is_ok());
    ASSERT_EQ(c->targets.size(), 1u);
    EXPECT_EQ(c->targets[0].status, TargetStatus::kAcknowledged);
    EXPECT_EQ(c->targets[0].result, "first");
    EXPECT_EQ(c->targets[0].updated_at, kT0);
    EXPECT_EQ(next_uuid("UDID-1", true), "");
}

TEST_P(StoreTest, ReportForAnUnknownTargetIsNotFound) {
    enroll("UDID-1");
    enroll("UDID-2");
    std::string uuid = enqueue({"UDID-1"});
    EXPECT_EQ(store_->apply_report("UDID-2", uuid, TargetStatus::kAcknowledged, "", now())
                  .status()
                  .code(),
              Code::kNotFound);
    EXPECT_EQ(store_->apply_report("UDID-1", random_uuid(), TargetStatus::kAcknowledged, "", now())
                  .status()
                  .code(),
              Code::kNotFound);
}

TEST_P(StoreTest, ReportWithANonReportStatusIsInvalid) {
    enroll("UDID-1");
    std::string uuid = enqueue({"UDID-1"});
    EXPECT_EQ(
        store_->apply_report("UDID-1", uuid, TargetStatus::kCanceled, "", now()).status().code(),
        Code::kInvalid);
}

TEST_P(StoreTest, ReportForACanceledTargetRecordsWhatTheDeviceDid) {
    enroll("UDID-1");
    std::string uuid = enqueue({"UDID-1"});
    ASSERT_EQ(next_uuid("UDID-1", true), uuid);
    ASSERT_TRUE(store_->cancel_command(uuid, now()).is_ok());
    ASSERT_TRUE(store_->apply_report("UDID-1", uuid, TargetStatus::kAcknowledged, "ran", now()));
    auto c = store_->command(uuid);
    EXPECT_EQ(c->targets[0].status, TargetStatus::kAcknowledged);
    EXPECT_EQ(c->targets[0].result, "ran");
}

TEST_P(StoreTest, CancelCancelsOnlyOpenTargets) {
    enroll("A");
    enroll("B");
    enroll("C");
    std::string uuid = enqueue({"A", "B", "C"});
    ASSERT_EQ(next_uuid("A", true), uuid);
    ASSERT_TRUE(store_->apply_report("A", uuid, TargetStatus::kAcknowledged, "", now()));
    ASSERT_EQ(next_uuid("B", true), uuid);
    auto canceled = store_->cancel_command(uuid, now());
    ASSERT_TRUE(canceled.is_ok());
    EXPECT_EQ(*canceled, (std::vector<std::string>{"B", "C"}));
    EXPECT_EQ(status_of(uuid, "A"), TargetStatus::kAcknowledged);
    EXPECT_EQ(next_uuid("B", true), "");
    auto again = store_->cancel_command(uuid, now());
    ASSERT_TRUE(again.is_ok());
    EXPECT_TRUE(again->empty());
}

TEST_P(StoreTest, CancelOfUnknownCommandIsNotFound) {
    EXPECT_EQ(store_->cancel_command(random_uuid(), now()).status().code(), Code::kNotFound);
}

TEST_P(StoreTest, EnqueueOfAnExistingUuidIsAConflict) {
    enroll("A");
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    ASSERT_TRUE(store_->enqueue(cmd, {"A"}, now()).is_ok());
    EXPECT_EQ(store_->enqueue(cmd, {"A"}, now()).status().code(), Code::kConflict);
}

TEST_P(StoreTest, EnqueueReportsUnknownTargetsAndQueuesTheRest) {
    enroll("A");
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    auto r = store_->enqueue(cmd, {"A", "X", "A"}, now());
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->queued, (std::vector<std::string>{"A"}));
    EXPECT_EQ(r->unknown, (std::vector<std::string>{"X"}));
    EXPECT_EQ(store_->command(cmd.uuid)->targets.size(), 1u);
}

TEST_P(StoreTest, EnqueueWithOnlyUnknownTargetsWritesNothing) {
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    auto r = store_->enqueue(cmd, {"X"}, now());
    ASSERT_TRUE(r.is_ok());
    EXPECT_TRUE(r->queued.empty());
    EXPECT_EQ(store_->command(cmd.uuid).status().code(), Code::kNotFound);
    enroll("X");
    EXPECT_TRUE(store_->enqueue(cmd, {"X"}, now()).is_ok());
}

TEST_P(StoreTest, EnqueueRefusesMissingUuidOrType) {
    EXPECT_EQ(store_->enqueue({"", "DeviceLock", "", {}}, {"A"}, now()).status().code(),
              Code::kInvalid);
    EXPECT_EQ(store_->enqueue({random_uuid(), "", "", {}}, {"A"}, now()).status().code(),
              Code::kInvalid);
}

// One command to 10,000 targets queues it for each. How long the commit
// takes is benchmark D's (docs/BENCHMARKS.md), not a test's: a loaded CI
// machine is no clock.
TEST_P(StoreTest, EnqueueForTenThousandTargetsQueuesEveryOne) {
    std::vector<std::string> ids;
    for (int i = 0; i < 10000; ++i) ids.push_back(fmt::format("UDID-{:05}", i));
    // Seed through the store in parallel so group commit batches them.
    std::vector<std::thread> seeders;
    for (int t = 0; t < 4; ++t) {
        seeders.emplace_back([&, t] {
            for (size_t i = t; i < ids.size(); i += 4) {
                EXPECT_TRUE(store_->apply_token_update(token_input(ids[i], ids[i]), now()));
            }
        });
    }
    for (auto& t : seeders) t.join();
    NewCommand cmd{random_uuid(), "DeviceInformation", "<plist/>", std::nullopt};
    auto r = store_->enqueue(cmd, ids, now());
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->queued.size(), 10000u);
    EXPECT_TRUE(r->unknown.empty());
    EXPECT_EQ(store_->queue_depth().value(), 10000);
}

TEST_P(StoreTest, QueueDepthAndQueuedCountCountOpenTargets) {
    enroll("A");
    enroll("B");
    std::string one = enqueue({"A", "B"});
    enqueue({"A"});
    EXPECT_EQ(store_->queue_depth().value(), 3);
    EXPECT_EQ(store_->enrollment("A")->queued, 2);
    ASSERT_EQ(next_uuid("A", true), one);
    ASSERT_TRUE(store_->apply_report("A", one, TargetStatus::kAcknowledged, "", now()));
    EXPECT_EQ(store_->queue_depth().value(), 2);
    EXPECT_EQ(store_->enrollment("A")->queued, 1);
}

TEST_P(StoreTest, ListCommandsPagesNewestFirstAndFilters) {
    enroll("A");
    enroll("B");
    std::vector<std::string> uuids;
    for (int i = 0; i < 5; ++i) uuids.push_back(enqueue({"A"}, i % 2 ? "DeviceLock" : "Other"));
    std::string for_b = enqueue({"B"});
    std::vector<std::string> seen;
    Page page{2, ""};
    for (int round = 0; round < 10; ++round) {
        auto r = store_->list_commands({}, page);
        ASSERT_TRUE(r.is_ok());
        for (const auto& c : r->items) seen.push_back(c.uuid);
        if (r->next_cursor.empty()) break;
        page.cursor = r->next_cursor;
    }
    EXPECT_EQ(seen,
              (std::vector<std::string>{for_b, uuids[4], uuids[3], uuids[2], uuids[1], uuids[0]}));
    CommandFilter locks;
    locks.request_type = "DeviceLock";
    EXPECT_EQ(store_->list_commands(locks, {})->items.size(), 2u);
    CommandFilter of_b;
    of_b.enrollment_id = "B";
    auto b = store_->list_commands(of_b, {});
    ASSERT_EQ(b->items.size(), 1u);
    EXPECT_EQ(b->items[0].uuid, for_b);
    ASSERT_EQ(next_uuid("A", true), uuids[0]);
    CommandFilter sent;
    sent.status = TargetStatus::kSent;
    auto s = store_->list_commands(sent, {});
    ASSERT_EQ(s->items.size(), 1u);
    EXPECT_EQ(s->items[0].uuid, uuids[0]);
}

TEST_P(StoreTest, NotNowReportIsTheResultUntilTheFinalReportReplacesIt) {
    enroll("UDID-1");
    std::string uuid = enqueue({"UDID-1"});
    ASSERT_EQ(next_uuid("UDID-1", true), uuid);
    ASSERT_TRUE(store_->apply_report("UDID-1", uuid, TargetStatus::kNotNow, "<notnow/>", now()));
    auto result_of = [&] {
        auto c = store_->command(uuid);
        EXPECT_TRUE(c.is_ok());
        return c.is_ok() && c->targets.size() == 1 ? c->targets[0].result : std::string("?");
    };
    EXPECT_EQ(status_of(uuid, "UDID-1"), TargetStatus::kNotNow);
    EXPECT_EQ(result_of(), "<notnow/>");
    ASSERT_EQ(next_uuid("UDID-1", true), uuid);
    ASSERT_TRUE(store_->apply_report("UDID-1", uuid, TargetStatus::kAcknowledged, "<ack/>", now()));
    EXPECT_EQ(status_of(uuid, "UDID-1"), TargetStatus::kAcknowledged);
    EXPECT_EQ(result_of(), "<ack/>");
    // Recorded once: neither a repeated final report nor a late NotNow changes it.
    ASSERT_TRUE(store_->apply_report("UDID-1", uuid, TargetStatus::kError, "<err/>", now()));
    ASSERT_TRUE(store_->apply_report("UDID-1", uuid, TargetStatus::kNotNow, "<late/>", now()));
    EXPECT_EQ(status_of(uuid, "UDID-1"), TargetStatus::kAcknowledged);
    EXPECT_EQ(result_of(), "<ack/>");
}

}  // namespace
}  // namespace courier::db
