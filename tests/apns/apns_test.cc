// Both pushers (nghttp2's, the server's default, and libcurl's, used behind
// proxies) against FakeApns over real TLS + HTTP/2 on 127.0.0.1: every test
// runs once per sender.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <set>

#include "apns/fake_apns.h"
#include "apns/pusher.h"
#include "certs/authority.h"
#include "common/encoding.h"
#include "tests/support/test_certs.h"
#include "tests/support/tunnel_proxy.h"

namespace courier::apns {
namespace {

using namespace std::chrono_literals;

constexpr const char* kTopic = "com.apple.mgmt.External.1b5e2c4a-8f0d-4e3a-9c7b-2d6f1a0e5b3c";
constexpr const char* kToken = "3b0a1c9e5f7d2b4a6c8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c";
constexpr auto kWait = 15s;

class ApnsTest : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        ca_ = std::make_unique<certs::CertificateAuthority>(test::make_test_ca("APNs test CA"));
        server_ = issue_server_identity();
        ca_file_ = test::write_temp_file(certs::cert_to_pem(ca_->cert()), "ca.pem").string();

        // No client CA: the fake takes any client certificate and records its
        // thumbprint and UID (make_push_cert's certificates are self-signed).
        FakeApnsOptions fo;
        fo.cert_pem = server_.cert_pem;
        fo.key_pem = server_.key_pem;
        auto fake = FakeApns::start(fo);
        ASSERT_TRUE(fake) << fake.status().message();
        fake_ = std::move(*fake);

        HttpPusherOptions po;
        po.base_url = fake_->base_url();
        po.ca_file = ca_file_;
        po.timeout = 5s;
        pusher_ = make_sender(po);
        credentials_ = credentials_for(kTopic);
    }

    std::unique_ptr<Pusher> make_sender(const HttpPusherOptions& po) const {
        return GetParam() == "curl" ? make_http_pusher(po) : make_h2_pusher(po);
    }

    test::PemPair issue_server_identity() const {
        certs::IssueOptions server;
        server.common_name = "localhost";
        server.ip_addresses = {"127.0.0.1"};
        server.server_auth = true;
        auto id = ca_->issue(server);
        EXPECT_TRUE(id) << id.status().message();
        if (!id) return {};
        return {certs::cert_to_pem(id->cert.get()), certs::key_to_pem(id->key.get())};
    }

    static std::shared_ptr<const Credentials> credentials_for(const std::string& topic) {
        auto pem = test::make_push_cert(topic);
        auto cert = certs::cert_from_pem(pem.cert_pem);
        EXPECT_TRUE(cert) << cert.status().message();
        if (!cert) return nullptr;
        return std::make_shared<Credentials>(
            Credentials{topic, pem.cert_pem, pem.key_pem, certs::cert_sha1_hex(cert->get())});
    }

    PushRequest request(const std::string& token = kToken) const {
        PushRequest r;
        r.token_hex = token;
        r.push_magic = "8C9F1A2B-3D4E-4F50-9A1B-2C3D4E5F6A7B";
        r.topic = kTopic;
        r.expiration = from_unix(1900000000);
        r.credentials = credentials_;
        return r;
    }

    static PushResult push_and_wait(Pusher& pusher, PushRequest r) {
        auto promise = std::make_shared<std::promise<PushResult>>();
        auto result = promise->get_future();
        pusher.push(std::move(r),
                    [promise](PushResult res) { promise->set_value(std::move(res)); });
        if (result.wait_for(kWait) != std::future_status::ready) {
            ADD_FAILURE() << "push did not complete";
            return {};
        }
        return result.get();
    }
    PushResult push_and_wait(PushRequest r) { return push_and_wait(*pusher_, std::move(r)); }

    std::unique_ptr<certs::CertificateAuthority> ca_;
    test::PemPair server_;
    std::string ca_file_;
    std::unique_ptr<FakeApns> fake_;
    std::unique_ptr<Pusher> pusher_;
    std::shared_ptr<const Credentials> credentials_;
};

TEST_P(ApnsTest, PushPostsToDevicePathWithMdmHeadersAndBody) {
    auto res = push_and_wait(request());
    ASSERT_EQ(res.http_status, 200) << res.reason;
    auto reqs = fake_->requests();
    ASSERT_EQ(reqs.size(), 1u);
    const auto& r = reqs[0];
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, std::string("/3/device/") + kToken);
    EXPECT_EQ(r.body, R"({"mdm":"8C9F1A2B-3D4E-4F50-9A1B-2C3D4E5F6A7B"})");
    EXPECT_EQ(r.headers.at("apns-topic"), kTopic);
    EXPECT_EQ(r.headers.at("apns-push-type"), "mdm");
    EXPECT_EQ(r.headers.at("apns-priority"), "10");
    EXPECT_EQ(r.headers.at("apns-expiration"), "1900000000");
    EXPECT_EQ(r.headers.at("content-type"), "application/json");
}

TEST_P(ApnsTest, UnsetExpirationIsSentAsSevenDaysAheadNotZero) {
    auto req = request();
    req.expiration = SysTime{};
    ASSERT_EQ(push_and_wait(req).http_status, 200);
    int64_t sent = std::stoll(fake_->requests().at(0).headers.at("apns-expiration"));
    int64_t week_ahead = to_unix(SystemClock::instance().now()) + 7 * 86400;
    EXPECT_NEAR(sent, week_ahead, 60);
}

TEST_P(ApnsTest, PushMagicIsJsonEscapedInBody) {
    auto req = request();
    req.push_magic = "a\"b\\c";
    ASSERT_EQ(push_and_wait(req).http_status, 200);
    EXPECT_EQ(fake_->requests().at(0).body, R"({"mdm":"a\"b\\c"})");
}

TEST_P(ApnsTest, PushAuthenticatesWithTheCredentialsCertificate) {
    ASSERT_EQ(push_and_wait(request()).http_status, 200);
    auto r = fake_->requests().at(0);
    EXPECT_EQ(r.client_thumbprint_sha1, credentials_->thumbprint_sha1);
    EXPECT_EQ(r.client_uid, kTopic);
}

TEST_P(ApnsTest, AcceptedPushReturnsTheApnsId) {
    auto res = push_and_wait(request());
    ASSERT_EQ(res.http_status, 200);
    EXPECT_FALSE(res.apns_id.empty());
    EXPECT_EQ(res.apns_id, fake_->requests().at(0).apns_id);
}

TEST_P(ApnsTest, UnregisteredTokenSurfacesAs410WithReason) {
    fake_->set_response(kToken, {410, "Unregistered", ""});
    auto res = push_and_wait(request());
    EXPECT_EQ(res.http_status, 410);
    EXPECT_EQ(res.reason, "Unregistered");
    EXPECT_TRUE(res.apns_id.empty());
}

TEST_P(ApnsTest, BadDeviceTokenSurfacesAs400WithReason) {
    fake_->set_response(kToken, {400, "BadDeviceToken", ""});
    auto res = push_and_wait(request());
    EXPECT_EQ(res.http_status, 400);
    EXPECT_EQ(res.reason, "BadDeviceToken");
}

TEST_P(ApnsTest, ServerErrorSurfacesWithoutRetryByThePusher) {
    fake_->set_response(kToken, {500, "InternalServerError", ""}, 1);
    auto res = push_and_wait(request());
    EXPECT_EQ(res.http_status, 500);
    EXPECT_EQ(res.reason, "InternalServerError");
    EXPECT_EQ(fake_->request_count(), 1u);
}

TEST_P(ApnsTest, TooManyRequestsSurfacesWithRetryAfter) {
    fake_->set_response(kToken, {429, "TooManyRequests", "30"});
    auto res = push_and_wait(request());
    EXPECT_EQ(res.http_status, 429);
    EXPECT_EQ(res.reason, "TooManyRequests");
    EXPECT_EQ(res.retry_after, 30s);
    EXPECT_EQ(fake_->request_count(), 1u);
}

TEST_P(ApnsTest, ProgrammedFailureEndsAfterItsCount) {
    fake_->set_response(kToken, {410, "Unregistered", ""}, 1);
    EXPECT_EQ(push_and_wait(request()).http_status, 410);
    EXPECT_EQ(push_and_wait(request()).http_status, 200);
}

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

// SPEC "APNs connections": a connection that stops answering is noticed
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

TEST_P(ApnsTest, APushThatOutlivesItsTimeoutFailsWithTheReason) {
    HttpPusherOptions po;
    po.base_url = fake_->base_url();
    po.ca_file = ca_file_;
    po.timeout = 300ms;
    auto pusher = make_sender(po);
    ASSERT_EQ(push_and_wait(*pusher, request()).http_status, 200);
    fake_->set_delay(3s);
    auto r = push_and_wait(*pusher, request());
    EXPECT_EQ(r.http_status, 0);
    EXPECT_NE(r.reason.find("timed out"), std::string::npos) << r.reason;
    fake_->set_delay(0ms);
    EXPECT_EQ(push_and_wait(*pusher, request()).http_status, 200);
    pusher->shutdown();
}

TEST_P(ApnsTest, AnUnreachableServerFailsThePushWithTheReason) {
    HttpPusherOptions po;
    po.base_url = "https://127.0.0.1:1";  // nothing listens on port 1
    po.ca_file = ca_file_;
    auto pusher = make_sender(po);
    auto r = push_and_wait(*pusher, request());
    EXPECT_EQ(r.http_status, 0);
    EXPECT_FALSE(r.reason.empty());
}

TEST_P(ApnsTest, ShutdownFailsPendingPushesAndJoins) {
    fake_->set_delay(10s);
    auto pending = std::make_shared<std::promise<PushResult>>();
    auto result = pending->get_future();
    pusher_->push(request(), [pending](PushResult r) { pending->set_value(std::move(r)); });
    ASSERT_TRUE(
        fake_->wait_for([](const FakeApnsState& s) { return s.requests.size() == 1; }, kWait));
    auto started = std::chrono::steady_clock::now();
    pusher_->shutdown();
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
    ASSERT_EQ(result.wait_for(0s), std::future_status::ready);
    auto r = result.get();
    EXPECT_EQ(r.http_status, 0);
    EXPECT_EQ(r.reason, "shutting down");
}

TEST_P(ApnsTest, PushAfterShutdownFailsAtOnce) {
    pusher_->shutdown();
    pusher_->shutdown();
    std::optional<PushResult> result;
    pusher_->push(request(), [&](PushResult r) { result = std::move(r); });
    ASSERT_TRUE(result.has_value());
    EXPECT_EQ(result->http_status, 0);
    EXPECT_EQ(fake_->request_count(), 0u);
}

TEST_P(ApnsTest, UntrustedServerCertificateFailsWithTlsError) {
    auto other = test::make_test_ca("Unrelated CA");
    HttpPusherOptions po;
    po.base_url = fake_->base_url();
    po.ca_file = test::write_temp_file(certs::cert_to_pem(other.cert()), "other-ca.pem").string();
    auto pusher = make_sender(po);
    auto r = push_and_wait(*pusher, request());
    EXPECT_EQ(r.http_status, 0);
    EXPECT_NE(r.reason.find("SSL"), std::string::npos) << r.reason;
    EXPECT_EQ(fake_->request_count(), 0u);
}

TEST_P(ApnsTest, NonHexTokenIsRefusedWithoutARequest) {
    auto r = push_and_wait(request("../admin"));
    EXPECT_EQ(r.http_status, 0);
    EXPECT_EQ(fake_->request_count(), 0u);
}

TEST_P(ApnsTest, FakeRefusesTopicOtherThanTheCertificatesUid) {
    auto req = request();
    req.topic = "com.apple.mgmt.External.another";
    auto r = push_and_wait(req);
    EXPECT_EQ(r.http_status, 400);
    EXPECT_EQ(r.reason, "TopicDisallowed");
}

TEST_P(ApnsTest, FakeRefusesEmptyPushMagic) {
    auto req = request();
    req.push_magic = "";
    auto r = push_and_wait(req);
    EXPECT_EQ(r.http_status, 400);
    EXPECT_EQ(r.reason, "PayloadEmpty");
}

TEST_P(ApnsTest, FakeRefusesPushWithoutClientCertificateWhenRequired) {
    auto req = request();
    req.credentials = nullptr;
    auto r = push_and_wait(req);
    EXPECT_EQ(r.http_status, 0);
    EXPECT_EQ(fake_->request_count(), 0u);
}

TEST_P(ApnsTest, FakeRefusesClientCertificateFromAnotherCa) {
    FakeApnsOptions fo;
    fo.cert_pem = server_.cert_pem;
    fo.key_pem = server_.key_pem;
    fo.client_ca_pem = certs::cert_to_pem(ca_->cert());  // the push certificate is self-signed
    auto strict = FakeApns::start(fo);
    ASSERT_TRUE(strict) << strict.status().message();
    HttpPusherOptions po;
    po.base_url = (*strict)->base_url();
    po.ca_file = ca_file_;
    auto pusher = make_sender(po);
    auto r = push_and_wait(*pusher, request());
    EXPECT_EQ(r.http_status, 0);
    EXPECT_EQ((*strict)->request_count(), 0u);
}

TEST_P(ApnsTest, FakeAcceptsClientCertificateFromItsClientCa) {
    FakeApnsOptions fo;
    fo.cert_pem = server_.cert_pem;
    fo.key_pem = server_.key_pem;
    fo.client_ca_pem = credentials_->cert_pem;  // self-signed: its own CA
    auto strict = FakeApns::start(fo);
    ASSERT_TRUE(strict) << strict.status().message();
    HttpPusherOptions po;
    po.base_url = (*strict)->base_url();
    po.ca_file = ca_file_;
    auto pusher = make_sender(po);
    EXPECT_EQ(push_and_wait(*pusher, request()).http_status, 200);
}

TEST_P(ApnsTest, FakeRefusesNonMdmPushType) {
    CURL* easy = curl_easy_init();
    ASSERT_NE(easy, nullptr);
    std::string url = fake_->base_url() + "/3/device/" + kToken;
    std::string body = R"({"mdm":"x"})";
    curl_blob cert{const_cast<char*>(credentials_->cert_pem.data()), credentials_->cert_pem.size(),
                   CURL_BLOB_COPY};
    curl_blob key{const_cast<char*>(credentials_->key_pem.data()), credentials_->key_pem.size(),
                  CURL_BLOB_COPY};
    curl_slist* headers = curl_slist_append(nullptr, "apns-push-type: alert");
    headers = curl_slist_append(headers, (std::string("apns-topic: ") + kTopic).c_str());
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(easy, CURLOPT_CAINFO, ca_file_.c_str());
    curl_easy_setopt(easy, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(easy, CURLOPT_SSLKEY_BLOB, &key);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(easy, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(
        easy, CURLOPT_WRITEFUNCTION, +[](char*, size_t size, size_t n, void*) { return size * n; });
    CURLcode rc = curl_easy_perform(easy);
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(easy);
    ASSERT_EQ(rc, CURLE_OK);
    EXPECT_EQ(status, 400);
    EXPECT_EQ(fake_->requests().at(0).reason, "InvalidPushType");
}

TEST_P(ApnsTest, FakeCallsOnPushForAcceptedPushes) {
    std::promise<std::string> seen;
    fake_->on_push([&](const FakeApnsRequest& r) { seen.set_value(r.token); });
    ASSERT_EQ(push_and_wait(request()).http_status, 200);
    auto token = seen.get_future();
    ASSERT_EQ(token.wait_for(kWait), std::future_status::ready);
    EXPECT_EQ(token.get(), kToken);
    fake_->on_push(nullptr);
}

INSTANTIATE_TEST_SUITE_P(Senders, ApnsTest, ::testing::Values("nghttp2", "curl"),
                         [](const auto& info) { return info.param; });

// --apns-proxy: make_pusher hands proxied pushes to libcurl, which tunnels
// them through HTTP CONNECT or SOCKS5 to APNs.
class ApnsProxyTest : public ApnsTest {};

TEST_P(ApnsProxyTest, PushesTravelThroughTheConfiguredProxy) {
    auto proxy =
        test::TunnelProxy::start(GetParam() == "socks5" ? test::TunnelProxy::Kind::kSocks5
                                                        : test::TunnelProxy::Kind::kHttpConnect);
    ASSERT_TRUE(proxy);
    HttpPusherOptions po;
    po.base_url = fake_->base_url();
    po.ca_file = ca_file_;
    po.proxy = proxy->url();
    auto pusher = make_pusher(po);
    auto r = push_and_wait(*pusher, request());
    EXPECT_EQ(r.http_status, 200) << r.reason;
    EXPECT_EQ(fake_->requests().back().client_thumbprint_sha1, credentials_->thumbprint_sha1);
    auto tunnels = proxy->tunnels();
    ASSERT_EQ(tunnels.size(), 1u);
    EXPECT_EQ("https://" + tunnels[0], fake_->base_url());
    pusher->shutdown();
}

TEST_P(ApnsProxyTest, AProxyThatCannotReachApnsFailsThePushWithTheReason) {
    auto proxy =
        test::TunnelProxy::start(GetParam() == "socks5" ? test::TunnelProxy::Kind::kSocks5
                                                        : test::TunnelProxy::Kind::kHttpConnect);
    ASSERT_TRUE(proxy);
    HttpPusherOptions po;
    po.base_url = "https://127.0.0.1:1";  // the proxy cannot connect there
    po.ca_file = ca_file_;
    po.proxy = proxy->url();
    auto pusher = make_pusher(po);
    auto r = push_and_wait(*pusher, request());
    EXPECT_EQ(r.http_status, 0);
    EXPECT_FALSE(r.reason.empty());
    EXPECT_EQ(fake_->request_count(), 0u);
    pusher->shutdown();
}

INSTANTIATE_TEST_SUITE_P(Proxies, ApnsProxyTest, ::testing::Values("http_connect", "socks5"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace courier::apns
