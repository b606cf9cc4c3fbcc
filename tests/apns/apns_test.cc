// Both pushers (nghttp2's, the server's default, and libcurl's, used behind
// proxies) against FakeApns over real TLS + HTTP/2 on 127.0.0.1: every test
// runs once per sender.
// Connections (multiplexing, GOAWAY, renewals, dead connections):
// apns_connections_test.cc.
#include "tests/apns/apns_fixture.h"

namespace courier::apns {
namespace {

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
