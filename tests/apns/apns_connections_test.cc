// Both pushers' connections against FakeApns: streams multiplexed on one
// connection, GOAWAY, dropped and dead connections, renewed certificates.
// Every test runs once per sender.
#include "tests/apns/apns_fixture.h"

namespace courier::apns {
namespace {

TEST_P(ApnsTest, ConcurrentPushesMultiplexOnOneConnection) {
    constexpr int kPushes = 200;
    std::atomic<int> ok{0}, done{0};
    std::promise<void> all;
    for (int i = 0; i < kPushes; ++i) {
        char token[9];
        std::snprintf(token, sizeof token, "%08x", i);
        pusher_->push(request(token), [&](PushResult r) {
            if (r.http_status == 200) ++ok;
            if (++done == kPushes) all.set_value();
        });
    }
    ASSERT_EQ(all.get_future().wait_for(kWait), std::future_status::ready);
    EXPECT_EQ(ok.load(), kPushes);
    EXPECT_EQ(fake_->connections_accepted(), 1u);
    std::set<uint64_t> connections;
    for (const auto& r : fake_->requests()) connections.insert(r.connection_id);
    EXPECT_EQ(connections.size(), 1u);
}

TEST_P(ApnsTest, AFleetWideWakeUpWaitsForStreamsInsteadOfOpeningConnections) {
    // Far more pushes at once than the server allows streams: they queue
    // for free streams on the one connection (a new TLS connection per
    // overflowing push would look like an attack to APNs, and was slow).
    FakeApnsOptions fo;
    fo.cert_pem = server_.cert_pem;
    fo.key_pem = server_.key_pem;
    fo.max_concurrent_streams = 100;
    auto fake = FakeApns::start(fo);
    ASSERT_TRUE(fake) << fake.status().message();
    HttpPusherOptions po;
    po.base_url = (*fake)->base_url();
    po.ca_file = ca_file_;
    po.max_streams_per_connection = 100;
    auto pusher = make_sender(po);
    constexpr int kPushes = 3000;
    std::atomic<int> ok{0}, done{0};
    std::promise<void> all;
    for (int i = 0; i < kPushes; ++i) {
        char token[9];
        std::snprintf(token, sizeof token, "%08x", i);
        pusher->push(request(token), [&](PushResult r) {
            if (r.http_status == 200) ++ok;
            if (++done == kPushes) all.set_value();
        });
    }
    ASSERT_EQ(all.get_future().wait_for(kWait), std::future_status::ready);
    EXPECT_EQ(ok.load(), kPushes);
    EXPECT_EQ((*fake)->connections_accepted(), 1u);
    pusher->shutdown();
}

TEST_P(ApnsTest, ThousandsOfSequentialStreamsStayOnOneConnection) {
    // libcurl resets every finished stream; the fake must not take that for
    // a rapid-reset attack and close the connection.
    constexpr int kPushes = 2500, kWindow = 50;
    std::mutex mu;
    std::condition_variable cv;
    int in_flight = 0, done = 0, ok = 0;
    for (int i = 0; i < kPushes; ++i) {
        {
            std::unique_lock lock(mu);
            ASSERT_TRUE(cv.wait_for(lock, kWait, [&] { return in_flight < kWindow; }));
            ++in_flight;
        }
        pusher_->push(request(), [&](PushResult r) {
            std::lock_guard lock(mu);
            --in_flight;
            ++done;
            if (r.http_status == 200) ++ok;
            cv.notify_all();
        });
    }
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kWait, [&] { return done == kPushes; }));
    EXPECT_EQ(ok, kPushes);
    EXPECT_EQ(fake_->connections_accepted(), 1u);
}

TEST_P(ApnsTest, PushesAfterGoawayUseANewConnection) {
    ASSERT_EQ(push_and_wait(request()).http_status, 200);
    fake_->send_goaway();
    ASSERT_TRUE(
        fake_->wait_for([](const FakeApnsState& s) { return s.connections_open == 0; }, kWait));
    EXPECT_EQ(push_and_wait(request()).http_status, 200);
    EXPECT_EQ(fake_->connections_accepted(), 2u);
    EXPECT_EQ(fake_->requests().back().connection_id, 2u);
}

TEST_P(ApnsTest, DroppedConnectionFailsOrRetriesInFlightPushAndPusherRecovers) {
    ASSERT_EQ(push_and_wait(request()).http_status, 200);
    fake_->set_delay(2s);
    auto in_flight = std::make_shared<std::promise<PushResult>>();
    auto result = in_flight->get_future();
    pusher_->push(request(), [in_flight](PushResult r) { in_flight->set_value(std::move(r)); });
    ASSERT_TRUE(
        fake_->wait_for([](const FakeApnsState& s) { return s.requests.size() == 2; }, kWait));
    fake_->set_delay(0ms);
    fake_->drop_connections();
    ASSERT_EQ(result.wait_for(kWait), std::future_status::ready);
    auto r = result.get();
    EXPECT_TRUE(r.http_status == 0 || r.http_status == 200) << r.http_status;
    if (r.http_status == 0) {
        EXPECT_FALSE(r.reason.empty());
    }
    EXPECT_EQ(push_and_wait(request()).http_status, 200);
    EXPECT_GE(fake_->connections_accepted(), 2u);
}

TEST_P(ApnsTest, RenewedCertificateIsUsedByTheNextPush) {
    ASSERT_EQ(push_and_wait(request()).http_status, 200);
    auto renewed = credentials_for(kTopic);
    ASSERT_NE(renewed->thumbprint_sha1, credentials_->thumbprint_sha1);
    auto req = request();
    req.credentials = renewed;
    ASSERT_EQ(push_and_wait(req).http_status, 200);
    auto last = fake_->requests().back();
    EXPECT_EQ(last.client_thumbprint_sha1, renewed->thumbprint_sha1);
    EXPECT_EQ(last.connection_id, 2u);
}

TEST_P(ApnsTest, TheOldConnectionClosesOnceARenewedCertificateTakesOver) {
    if (GetParam() == "curl") GTEST_SKIP() << "libcurl keeps idle connections until their max age";
    ASSERT_EQ(push_and_wait(request()).http_status, 200);
    credentials_ = credentials_for(kTopic);  // nobody holds the old credentials now
    ASSERT_EQ(push_and_wait(request()).http_status, 200);
    EXPECT_EQ(fake_->connections_accepted(), 2u);
    ASSERT_TRUE(
        fake_->wait_for([](const FakeApnsState& s) { return s.connections_open == 1; }, kWait));
    ASSERT_EQ(push_and_wait(request()).http_status, 200);
    EXPECT_EQ(fake_->requests().back().connection_id, 2u);
}

TEST_P(ApnsTest, GoawayWithPushesInFlightEndsEveryOneAndTheNextGoOnANewConnection) {
    ASSERT_EQ(push_and_wait(request()).http_status, 200);
    fake_->set_delay(2s);
    constexpr int kPushes = 20;
    std::mutex mu;
    std::condition_variable cv;
    std::vector<PushResult> results;
    for (int i = 0; i < kPushes; ++i) {
        pusher_->push(request(), [&](PushResult r) {
            std::lock_guard lock(mu);
            results.push_back(std::move(r));
            cv.notify_all();
        });
    }
    ASSERT_TRUE(fake_->wait_for(
        [](const FakeApnsState& s) { return s.requests.size() == 1 + kPushes; }, kWait));
    fake_->set_delay(0ms);
    fake_->send_goaway();
    {
        std::unique_lock lock(mu);
        ASSERT_TRUE(cv.wait_for(lock, kWait, [&] { return results.size() == kPushes; }));
        for (const auto& r : results) {
            EXPECT_TRUE(r.http_status == 200 || (r.http_status == 0 && !r.reason.empty()))
                << r.http_status << " " << r.reason;
        }
    }
    EXPECT_EQ(push_and_wait(request()).http_status, 200);
    EXPECT_EQ(fake_->requests().back().connection_id, 2u);
}

// docs/apns.md "Connections": a connection that stops answering is noticed
// (PING with a deadline) and replaced; the pushes waiting on it move over.
// Once with short PING options, once with the defaults (which must notice
// it before the pushes' own 10 s timeout: with the former 5 s + 10 s the
// pushes failed "timed out" and nothing moved).
TEST_P(ApnsTest, AConnectionThatStopsAnsweringIsReplacedAndItsPushesMove) {
    if (GetParam() == "curl")
        GTEST_SKIP() << "libcurl has no HTTP/2 PING with a deadline (only idle upkeep PINGs whose "
                        "answer it does not await); the nghttp2 sender is the default";
    HttpPusherOptions fast;
    fast.timeout = 10s;  // far beyond the liveness deadline below
    fast.ping_interval = 200ms;
    fast.ping_timeout = 300ms;
    HttpPusherOptions defaults;  // timeout, ping_interval and ping_timeout as shipped
    for (HttpPusherOptions po : {fast, defaults}) {
        SCOPED_TRACE(testing::Message()
                     << "ping " << po.ping_interval.count() << " ms + " << po.ping_timeout.count()
                     << " ms, timeout " << po.timeout.count() << " ms");
        po.base_url = fake_->base_url();
        po.ca_file = ca_file_;
        auto pusher = make_sender(po);
        size_t before = fake_->requests().size();
        ASSERT_EQ(push_and_wait(*pusher, request()).http_status, 200);
        uint64_t frozen_id = fake_->connections_accepted();
        fake_->freeze_connections();

        constexpr int kPushes = 3;
        std::vector<std::future<PushResult>> results;
        for (int i = 0; i < kPushes; ++i) {
            auto p = std::make_shared<std::promise<PushResult>>();
            results.push_back(p->get_future());
            pusher->push(request(), [p](PushResult r) { p->set_value(std::move(r)); });
        }
        for (auto& f : results) {
            ASSERT_EQ(f.wait_for(kWait), std::future_status::ready);
            auto r = f.get();
            EXPECT_EQ(r.http_status, 200) << r.reason;
        }
        EXPECT_EQ(fake_->connections_accepted(), frozen_id + 1);
        auto reqs = fake_->requests();
        ASSERT_EQ(reqs.size(), before + 1 + kPushes);
        EXPECT_EQ(reqs[before].connection_id, frozen_id);
        for (size_t i = before + 1; i < reqs.size(); ++i)
            EXPECT_EQ(reqs[i].connection_id, frozen_id + 1) << i;
        pusher->shutdown();
    }
}

// A push that moves off a dead connection gets a fresh timeout on the new
// one. Here the move comes at least 1 s (ping_timeout) after push() and the
// new connection answers after 2.2 s: past the push's first 3 s deadline,
// inside the fresh one.
TEST_P(ApnsTest, APushMovedOffADeadConnectionGetsAFreshDeadline) {
    if (GetParam() == "curl") GTEST_SKIP() << "no PING with a deadline in the libcurl sender";
    HttpPusherOptions po;
    po.base_url = fake_->base_url();
    po.ca_file = ca_file_;
    po.timeout = 3s;
    po.ping_interval = 0ms;  // every push onto the connection sends a PING with it
    po.ping_timeout = 1s;
    auto pusher = make_sender(po);
    ASSERT_EQ(push_and_wait(*pusher, request()).http_status, 200);
    fake_->freeze_connections();
    fake_->set_delay(2200ms);
    auto r = push_and_wait(*pusher, request());
    EXPECT_EQ(r.http_status, 200) << r.reason;
    EXPECT_EQ(fake_->connections_accepted(), 2u);
    pusher->shutdown();
}

INSTANTIATE_TEST_SUITE_P(Senders, ApnsTest, ::testing::Values("nghttp2", "curl"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace courier::apns
