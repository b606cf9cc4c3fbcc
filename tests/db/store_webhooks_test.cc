// WebhookStore contract (db/webhook_store.h): destinations, the outbox written
// in its cause's transaction, ordered and leased deliveries. Runs against every
// implementation (tests/db/store_impls.cc).
#include "tests/db/store_fixture.h"

namespace courier::db {
namespace {

using namespace store_tests;

OutboxEvent event(const std::string& topic, const std::string& enrollment,
                  const std::string& body = "{}") {
    OutboxEvent e;
    e.event_id = random_uuid();
    e.topic = topic;
    e.enrollment_id = enrollment;
    e.body = body;
    e.created_at = kT0;
    return e;
}

class WebhookStoreTest : public StoreTest {
  protected:
    void add_webhook(const std::string& id, std::vector<std::string> topics = {"mdm."}) {
        Webhook w;
        w.id = id;
        w.url = "http://127.0.0.1:9/" + id;
        w.topics = std::move(topics);
        w.hmac_key = "k-" + id;
        ASSERT_TRUE(store_->put_webhook(w, now()));
    }
    std::vector<ClaimedDelivery> claim(size_t limit = 100, std::chrono::seconds lease = 60s) {
        auto r = store_->claim_deliveries(now(), lease, limit);
        EXPECT_TRUE(r.is_ok()) << r.status().to_string();
        return r.is_ok() ? *r : std::vector<ClaimedDelivery>{};
    }
    static std::vector<std::string> ids(const std::vector<ClaimedDelivery>& v) {
        std::vector<std::string> out;
        for (const auto& c : v) out.push_back(c.delivery.webhook_id + "/" + c.delivery.event_id);
        return out;
    }
    std::vector<Delivery> deliveries(const std::string& hook,
                                     std::optional<DeliveryStatus> st = std::nullopt) {
        auto r = store_->list_deliveries(hook, st, {});
        EXPECT_TRUE(r.is_ok()) << r.status().to_string();
        return r.is_ok() ? r->items : std::vector<Delivery>{};
    }
};

TEST_P(WebhookStoreTest, DestinationsAreCreatedReplacedListedAndDeleted) {
    add_webhook("b", {"mdm.", "courier.pushcert."});
    add_webhook("a");
    auto list = store_->webhooks();
    ASSERT_TRUE(list.is_ok());
    ASSERT_EQ(list->size(), 2u);
    EXPECT_EQ((*list)[0].id, "a");
    auto b = store_->webhook("b");
    ASSERT_TRUE(b.is_ok());
    EXPECT_EQ(b->topics, (std::vector<std::string>{"mdm.", "courier.pushcert."}));
    EXPECT_EQ(b->hmac_key, "k-b");
    EXPECT_TRUE(b->enabled);
    Webhook w = *b;
    w.enabled = false;
    w.url = "http://127.0.0.1:9/new";
    ASSERT_TRUE(store_->put_webhook(w, now()));
    EXPECT_FALSE(store_->webhook("b")->enabled);
    EXPECT_EQ(store_->webhook("b")->url, "http://127.0.0.1:9/new");
    ASSERT_TRUE(store_->delete_webhook("b"));
    EXPECT_EQ(store_->webhook("b").status().code(), Code::kNotFound);
    EXPECT_EQ(store_->delete_webhook("b").code(), Code::kNotFound);
    EXPECT_EQ(store_->list_deliveries("b", std::nullopt, {}).status().code(), Code::kNotFound);
}

TEST_P(WebhookStoreTest, AttachedEventsCommitWithTheirCauseAndOnlyWithIt) {
    add_webhook("h");
    enroll("UDID-1");
    {
        auto a = store_->attach_events({event("mdm.CheckOut", "UDID-1")});
        ASSERT_TRUE(store_->apply_checkout("UDID-1", now()));
    }
    EXPECT_EQ(deliveries("h").size(), 1u);
    {
        // The cause fails (no such enrollment): no event.
        auto a = store_->attach_events({event("mdm.CheckOut", "UDID-404")});
        EXPECT_EQ(store_->apply_checkout("UDID-404", now()).code(), Code::kNotFound);
    }
    {
        // Reads do not take them; unused events die with the attachment.
        auto a = store_->attach_events({event("mdm.CheckOut", "UDID-1")});
        (void)store_->enrollment("UDID-1");
    }
    ASSERT_TRUE(store_->apply_checkout("UDID-1", now()));  // no attachment now
    EXPECT_EQ(deliveries("h").size(), 1u);
}

TEST_P(WebhookStoreTest, EventsFanOutByTopicPrefixAndAreDroppedWhenNoOneListens) {
    ASSERT_TRUE(store_->append_events({event("mdm.Authenticate", "A")}));  // no destination yet
    add_webhook("mdm", {"mdm."});
    add_webhook("certs", {"courier.pushcert."});
    add_webhook("all", {"mdm.", "courier."});
    ASSERT_TRUE(store_->append_events({event("mdm.Authenticate", "A"),
                                       event("courier.pushcert.expiring", ""),
                                       event("courier.push.token_invalid", "A")}));
    EXPECT_EQ(deliveries("mdm").size(), 1u);
    EXPECT_EQ(deliveries("certs").size(), 1u);
    EXPECT_EQ(deliveries("all").size(), 3u);
    auto backlog = store_->webhook_backlog();
    ASSERT_TRUE(backlog.is_ok());
    EXPECT_EQ((*backlog)["all"], 3);
    EXPECT_EQ((*backlog)["mdm"], 1);
}

TEST_P(WebhookStoreTest, AnEnrollmentsEventsAreClaimedInOrderOneAtATime) {
    add_webhook("h");
    auto a1 = event("mdm.Authenticate", "A"), a2 = event("mdm.TokenUpdate", "A"),
         b1 = event("mdm.Authenticate", "B");
    ASSERT_TRUE(store_->append_events({a1, a2, b1}));
    auto first = claim();
    EXPECT_EQ(ids(first), (std::vector<std::string>{"h/" + a1.event_id, "h/" + b1.event_id}));
    EXPECT_TRUE(claim().empty()) << "leased, and a2 waits for a1";
    // a1 fails this time: a2 is still held back.
    DeliveryOutcome retry{false, 500, "HTTP 500", now() + 5s};
    ASSERT_TRUE(store_->finish_delivery(first[0], retry, now()));
    EXPECT_TRUE(claim().empty());
    clock_.advance(5s);
    auto again = claim();
    ASSERT_EQ(ids(again), (std::vector<std::string>{"h/" + a1.event_id}));
    EXPECT_EQ(again[0].delivery.attempts, 1);
    EXPECT_EQ(again[0].delivery.last_status, 500);
    // Failed for good: the next one goes.
    ASSERT_TRUE(store_->finish_delivery(again[0], {false, 0, "timeout", std::nullopt}, now()));
    EXPECT_EQ(ids(claim()), (std::vector<std::string>{"h/" + a2.event_id}));
    auto failed = deliveries("h", DeliveryStatus::kFailed);
    ASSERT_EQ(failed.size(), 1u);
    EXPECT_EQ(failed[0].event_id, a1.event_id);
    EXPECT_EQ(failed[0].attempts, 2);
    EXPECT_EQ(failed[0].last_error, "timeout");
}

TEST_P(WebhookStoreTest, ALeaseKeepsOthersOffUntilItRunsOutAndAStaleLeaseRecordsNothing) {
    add_webhook("h", {"courier."});
    auto e = event("courier.push.token_invalid", "");
    ASSERT_TRUE(store_->append_events({e}));
    auto c1 = claim(10, 30s);
    ASSERT_EQ(c1.size(), 1u);
    EXPECT_EQ(c1[0].url, "http://127.0.0.1:9/h");
    EXPECT_EQ(c1[0].hmac_key, "k-h");
    EXPECT_EQ(c1[0].body, "{}");
    EXPECT_TRUE(claim().empty());
    clock_.advance(30s);
    auto c2 = claim();
    ASSERT_EQ(c2.size(), 1u);
    EXPECT_EQ(store_->finish_delivery(c1[0], {true, 200, "", std::nullopt}, now()).code(),
              Code::kConflict);
    ASSERT_TRUE(store_->finish_delivery(c2[0], {true, 200, "", std::nullopt}, now()));
    EXPECT_EQ(deliveries("h", DeliveryStatus::kDelivered).size(), 1u);
    EXPECT_EQ(store_->webhook_backlog()->at("h"), 0);
    clock_.advance(60s);
    EXPECT_TRUE(claim().empty());
}

TEST_P(WebhookStoreTest, AManualRetryIsOutsideTheOrder) {
    add_webhook("h");
    auto a1 = event("mdm.Authenticate", "A"), a2 = event("mdm.TokenUpdate", "A");
    ASSERT_TRUE(store_->append_events({a1}));
    auto c = claim();
    ASSERT_TRUE(store_->finish_delivery(c[0], {false, 500, "HTTP 500", std::nullopt}, now()));
    EXPECT_EQ(store_->retry_delivery("h", a2.event_id, now()).code(), Code::kNotFound);
    ASSERT_TRUE(store_->append_events({a2}));
    EXPECT_EQ(store_->retry_delivery("h", a2.event_id, now()).code(), Code::kConflict);
    ASSERT_TRUE(store_->retry_delivery("h", a1.event_id, now()));
    // Both are due: the retried one holds nothing back.
    auto both = claim();
    EXPECT_EQ(both.size(), 2u);
}

TEST_P(WebhookStoreTest, TokenUpdateTallyCountsSinceTheLastAuthenticate) {
    add_webhook("h");
    auto tu = [&] {
        auto e = event("mdm.TokenUpdate", "UDID-1");
        e.with_tally = true;
        auto a = store_->attach_events({e});
        EXPECT_TRUE(store_->apply_token_update(token_input("UDID-1", "UDID-1"), now()));
    };
    ASSERT_TRUE(store_->apply_authenticate(auth_input("UDID-1"), now()));
    tu();
    tu();
    ASSERT_TRUE(store_->apply_authenticate(auth_input("UDID-1"), now()));
    tu();
    std::vector<int64_t> tallies;
    for (int i = 0; i < 3; ++i) {
        auto c = claim();
        ASSERT_EQ(c.size(), 1u);
        ASSERT_TRUE(c[0].tally.has_value());
        tallies.push_back(*c[0].tally);
        ASSERT_TRUE(store_->finish_delivery(c[0], {true, 200, "", std::nullopt}, now()));
    }
    EXPECT_EQ(tallies, (std::vector<int64_t>{1, 2, 1}));
}

TEST_P(WebhookStoreTest, EffectOnlyEventsSkipWritesThatChangedNothing) {
    add_webhook("h", {"courier."});
    enroll("UDID-1");
    std::string uuid = enqueue({"UDID-1"});
    ASSERT_EQ(next_uuid("UDID-1", true), uuid);
    auto report = [&] {
        auto e = event("courier.command.finished", "UDID-1");
        e.only_if_effective = true;
        auto a = store_->attach_events({e});
        EXPECT_TRUE(
            store_->apply_report("UDID-1", uuid, TargetStatus::kAcknowledged, "<plist/>", now())
                .is_ok());
    };
    report();
    report();  // a repeated final report: recorded once, one event
    EXPECT_EQ(deliveries("h").size(), 1u);
}

TEST_P(WebhookStoreTest, OnceKeysAppendAnEventOnlyOnce) {
    add_webhook("h", {"courier."});
    for (int i = 0; i < 3; ++i) {
        auto e = event("courier.pushcert.expiring", "");
        e.once_key = "pushcert-expiring:abc:30";
        ASSERT_TRUE(store_->append_events({e}));
    }
    EXPECT_EQ(deliveries("h").size(), 1u);
}

TEST_P(WebhookStoreTest, DeliveriesArePagedNewestFirst) {
    add_webhook("h");
    std::vector<OutboxEvent> evs;
    for (int i = 0; i < 5; ++i) evs.push_back(event("mdm.Authenticate", fmt::format("E{}", i)));
    ASSERT_TRUE(store_->append_events(evs));
    std::vector<std::string> seen;
    Page page{2, ""};
    for (int i = 0; i < 4; ++i) {
        auto r = store_->list_deliveries("h", DeliveryStatus::kPending, page);
        ASSERT_TRUE(r.is_ok());
        for (const auto& d : r->items) seen.push_back(d.event_id);
        if (r->next_cursor.empty()) break;
        page.cursor = r->next_cursor;
    }
    ASSERT_EQ(seen.size(), 5u);
    EXPECT_EQ(seen.front(), evs.back().event_id);
    EXPECT_EQ(store_->list_deliveries("h", std::nullopt, {10, "zz"}).status().code(),
              Code::kInvalid);
}

TEST_P(WebhookStoreTest, ConcurrentClaimersNeverHoldTheSameDelivery) {
    add_webhook("h");
    std::vector<OutboxEvent> evs;
    for (int i = 0; i < 200; ++i)
        evs.push_back(event("mdm.Authenticate", fmt::format("E{}", i % 20)));
    ASSERT_TRUE(store_->append_events(evs));
    std::mutex mu;
    std::set<std::string> held, done;
    std::atomic<bool> overlap{false};
    auto worker = [&] {
        for (int round = 0; round < 400; ++round) {
            auto r = store_->claim_deliveries(now(), 600s, 8);
            if (!r.is_ok()) continue;
            if (r->empty()) {
                std::lock_guard lk(mu);
                if (done.size() == evs.size()) return;
                continue;
            }
            for (const auto& c : *r) {
                std::lock_guard lk(mu);
                if (!held.insert(c.delivery.event_id).second) overlap = true;
            }
            for (const auto& c : *r) {
                {
                    std::lock_guard lk(mu);
                    held.erase(c.delivery.event_id);
                    if (!done.insert(c.delivery.event_id).second) overlap = true;
                }
                EXPECT_TRUE(store_->finish_delivery(c, {true, 200, "", std::nullopt}, now()));
            }
        }
    };
    std::thread t1(worker), t2(worker), t3(worker);
    t1.join();
    t2.join();
    t3.join();
    EXPECT_FALSE(overlap);
    EXPECT_EQ(done.size(), evs.size());
}

INSTANTIATE_TEST_SUITE_P(Impls, WebhookStoreTest, ::testing::ValuesIn(store_impls()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace courier::db
