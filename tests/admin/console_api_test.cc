// What the admin API gained for the web console (SPEC "Web console"):
// sign-in sessions with a CSRF token, the overview, device search, CSRs the
// server makes, and the console's files. A whole Courier on 127.0.0.1 over
// TLS; every refusal is checked to change nothing.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <boost/json.hpp>
#include <fstream>
#include <regex>

#include "certs/push_cert.h"
#include "certs/x509.h"
#include "common/encoding.h"
#include "tests/support/test_server.h"

namespace courier {
namespace {

namespace json = boost::json;
using test::HttpResult;
using test::TestServer;

json::object object_of(const std::string& body) {
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    if (ec || !v.is_object()) {
        ADD_FAILURE() << "not a JSON object: " << body;
        return {};
    }
    return v.as_object();
}

class ConsoleApi : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string err;
        server_ = TestServer::start({}, &err);
        ASSERT_TRUE(server_) << err;
    }
    // A request as the browser sends it: no Authorization, same-origin.
    HttpResult browser(const std::string& method, const std::string& path,
                       const std::string& body = {}, std::vector<std::string> headers = {}) {
        test::HttpOptions o;
        o.ca_file = server_->ca_file();
        headers.push_back("Sec-Fetch-Site: same-origin");
        if (method != "GET") headers.push_back("Origin: " + server_->https_url());
        return test::http_request(method, server_->https_url() + path, body, headers, o);
    }
    struct Session {
        std::string cookie;  // "name=value" for a Cookie header
        std::string csrf;
        std::string set_cookie;
    };
    Session sign_in() {
        auto r =
            browser("POST", "/ui/session", R"({"api_key":")" + server_->app().api_key() + R"("})");
        EXPECT_EQ(r.status, 201) << r.body;
        Session s;
        s.set_cookie = r.headers["set-cookie"];
        s.cookie = s.set_cookie.substr(0, s.set_cookie.find(';'));
        s.csrf = std::string(object_of(r.body)["csrf_token"].as_string());
        return s;
    }
    std::string enroll(const std::string& udid) {
        std::string err;
        devices_.push_back(server_->enrolled_device(udid, sim::AuthMode::kTlsClientCert, &err));
        EXPECT_TRUE(devices_.back()) << err;
        return udid;
    }
    std::unique_ptr<TestServer> server_;
    std::vector<std::unique_ptr<sim::SimDevice>> devices_;
};

TEST_F(ConsoleApi, SignInSetsAStrictSessionCookieWithoutTheKey) {
    Session s = sign_in();
    EXPECT_NE(s.set_cookie.find("__Host-courier_session="), std::string::npos);
    for (const char* attr : {"; HttpOnly", "; Secure", "; SameSite=Strict", "; Path=/"})
        EXPECT_NE(s.set_cookie.find(attr), std::string::npos) << attr << " in " << s.set_cookie;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(s.set_cookie, m, std::regex("Max-Age=([0-9]+)")));
    EXPECT_LE(std::stoll(m[1]), 12 * 3600);
    EXPECT_EQ(s.set_cookie.find(server_->app().api_key()), std::string::npos);
    EXPECT_FALSE(s.csrf.empty());
}

TEST_F(ConsoleApi, WrongKeyIsRefusedWithoutACookieOrABasicChallenge) {
    auto r = browser("POST", "/ui/session", R"({"api_key":"not-the-key"})");
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(r.headers.count("set-cookie"), 0u);
    EXPECT_EQ(r.headers["www-authenticate"], "Bearer realm=\"courier\"");
    EXPECT_EQ(browser("POST", "/ui/session", "{}").status, 400);
    EXPECT_EQ(browser("POST", "/ui/session", "not json").status, 400);
    // Duplicate keys are 400, as everywhere in the API (the second must not win).
    EXPECT_EQ(browser("POST", "/ui/session",
                      R"({"api_key":"x","api_key":")" + server_->app().api_key() + R"("})")
                  .status,
              400);
}

TEST_F(ConsoleApi, SignInFromAnotherOriginIsRefused) {
    test::HttpOptions o;
    o.ca_file = server_->ca_file();
    auto r = test::http_request("POST", server_->https_url() + "/ui/session",
                                R"({"api_key":")" + server_->app().api_key() + R"("})",
                                {"Origin: https://evil.example"}, o);
    EXPECT_EQ(r.status, 403);
    EXPECT_EQ(r.headers.count("set-cookie"), 0u);
}

TEST_F(ConsoleApi, SessionCookieAuthenticatesReadsOfTheApi) {
    EXPECT_EQ(browser("GET", "/v1/devices").status, 401);
    Session s = sign_in();
    EXPECT_EQ(browser("GET", "/v1/devices", "", {"Cookie: " + s.cookie}).status, 200);
    auto again = browser("GET", "/ui/session", "", {"Cookie: " + s.cookie});
    EXPECT_EQ(again.status, 200);
    EXPECT_EQ(std::string(object_of(again.body)["csrf_token"].as_string()), s.csrf);
}

TEST_F(ConsoleApi, ChangesNeedTheCsrfTokenEvenFromTheSameOrigin) {
    std::string udid = enroll("CSRF-DEVICE");
    Session s = sign_in();
    std::string lock = R"({"targets":["CSRF-DEVICE"],"command":{"RequestType":"DeviceLock"}})";
    auto none = browser("POST", "/v1/commands", lock, {"Cookie: " + s.cookie});
    EXPECT_EQ(none.status, 403) << none.body;
    auto wrong = browser("POST", "/v1/commands", lock,
                         {"Cookie: " + s.cookie, "X-CSRF-Token: " + std::string(43, 'A')});
    EXPECT_EQ(wrong.status, 403);
    EXPECT_EQ(browser("GET", "/v1/push/" + udid, "", {"Cookie: " + s.cookie}).status, 403);
    // Nothing was queued by the refused requests.
    auto cmds = server_->api("GET", "/v1/devices/" + udid + "/commands");
    auto listed = object_of(cmds.body);
    EXPECT_TRUE(listed["items"].as_array().empty()) << cmds.body;
    auto ok =
        browser("POST", "/v1/commands", lock, {"Cookie: " + s.cookie, "X-CSRF-Token: " + s.csrf});
    EXPECT_EQ(ok.status, 201) << ok.body;
}

TEST_F(ConsoleApi, AForgedOrTamperedCookieIsRefused) {
    Session s = sign_in();
    std::string tampered = s.cookie;
    tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
    EXPECT_EQ(browser("GET", "/v1/devices", "", {"Cookie: " + tampered}).status, 401);
    // A later expiry with the old MAC.
    auto dot1 = s.cookie.find('.');
    auto dot2 = s.cookie.rfind('.');
    std::string later = s.cookie.substr(0, dot1 + 1) + "9999999999" + s.cookie.substr(dot2);
    EXPECT_EQ(browser("GET", "/v1/devices", "", {"Cookie: " + later}).status, 401);
    EXPECT_EQ(browser("GET", "/v1/devices", "", {"Cookie: __Host-courier_session=x.1.y"}).status,
              401);
}

TEST_F(ConsoleApi, SignOutEndsTheSessionOnTheServer) {
    Session s = sign_in();
    EXPECT_EQ(browser("DELETE", "/ui/session", "", {"Cookie: " + s.cookie}).status, 403);
    auto out =
        browser("DELETE", "/ui/session", "", {"Cookie: " + s.cookie, "X-CSRF-Token: " + s.csrf});
    EXPECT_EQ(out.status, 204);
    EXPECT_NE(out.headers["set-cookie"].find("Max-Age=0"), std::string::npos);
    // The same cookie, replayed: its MAC is still good, the session is not.
    EXPECT_EQ(browser("GET", "/v1/devices", "", {"Cookie: " + s.cookie}).status, 401);
    EXPECT_EQ(browser("GET", "/ui/session", "", {"Cookie: " + s.cookie}).status, 401);
}

TEST_F(ConsoleApi, BearerKeyIgnoresCookiesAndNeedsNoCsrfToken) {
    std::string udid = enroll("BEARER-DEVICE");
    auto r = server_->api(
        "POST", "/v1/commands",
        R"({"targets":["BEARER-DEVICE"],"command":{"RequestType":"DeviceInformation","Queries":["DeviceName"]}})",
        {"Cookie: __Host-courier_session=garbage"});
    EXPECT_EQ(r.status, 201) << r.body;
}

TEST_F(ConsoleApi, OverviewCountsDevicesQueueAndPushes) {
    enroll("OV-1");
    enroll("OV-2");
    ASSERT_EQ(server_->api("POST", "/v1/devices/OV-2/retire").status, 200);
    ASSERT_EQ(server_
                  ->api("POST", "/v1/commands",
                        R"({"targets":["OV-1"],"command":{"RequestType":"DeviceLock"}})")
                  .status,
              201);
    auto r = server_->api("GET", "/v1/overview");
    ASSERT_EQ(r.status, 200) << r.body;
    auto o = object_of(r.body);
    EXPECT_EQ(o["devices"].as_object()["enrolled"].as_int64(), 1);
    EXPECT_EQ(o["devices"].as_object()["retired"].as_int64(), 1);
    EXPECT_EQ(o["devices"].as_object()["pending"].as_int64(), 0);
    EXPECT_EQ(o["queue_depth"].as_int64(), 1);
    EXPECT_GE(o["pushes_last_hour"].as_int64(), 1);
    EXPECT_EQ(o["push_errors_last_hour"].as_int64(), 0);
    EXPECT_EQ(o["certificates"].as_object()["active"].as_int64(), 1);
    // The enrollment link is the public URL's, as in token links.
    auto t = server_->api("POST", "/v1/enrollment-tokens", R"({"uses":1})");
    ASSERT_EQ(t.status, 201) << t.body;
    std::string token_url(object_of(t.body)["enroll_url"].as_string());
    EXPECT_EQ(token_url.substr(0, token_url.find('?')), o["enroll_url"].as_string());
    EXPECT_EQ(browser("GET", "/v1/overview").status, 401);
}

TEST_F(ConsoleApi, DeviceSearchMatchesUdidSerialOrName) {
    enroll("SEARCH-AAAA");
    enroll("SEARCH-BBBB");
    auto ids = [&](const std::string& q) {
        auto r = server_->api("GET", "/v1/devices?q=" + q);
        EXPECT_EQ(r.status, 200) << r.body;
        std::vector<std::string> out;
        auto page = object_of(r.body);
        for (const auto& d : page["items"].as_array())
            out.emplace_back(d.as_object().at("id").as_string());
        return out;
    };
    EXPECT_EQ(ids("bbbb"), std::vector<std::string>{"SEARCH-BBBB"});
    EXPECT_EQ(ids("search-").size(), 2u);
    EXPECT_TRUE(ids("zzzz").empty());
    EXPECT_EQ(server_->api("GET", "/v1/devices?q=" + std::string(300, 'a')).status, 400);
}

// A push certificate for `topic` carrying the public key of `csr_pem`.
std::string cert_for_csr(const std::string& csr_pem, const std::string& topic) {
    BIO* bio = BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size()));
    X509_REQ* req = PEM_read_bio_X509_REQ(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    EXPECT_NE(req, nullptr);
    if (!req) return {};
    auto id = certs::make_self_signed_push_identity(topic, -std::chrono::hours(1),
                                                    std::chrono::hours(24 * 365));
    EXPECT_TRUE(id.is_ok());
    X509_set_pubkey(id->cert.get(), X509_REQ_get0_pubkey(req));
    X509_sign(id->cert.get(), id->key.get(), EVP_sha256());
    X509_REQ_free(req);
    return certs::cert_to_pem(id->cert.get());
}

TEST_F(ConsoleApi, CsrKeyIsKeptAndTheCertificateAloneCompletesIt) {
    auto r = server_->api("POST", "/v1/pushcert/csr", R"({"common_name":"Helpdesk"})");
    ASSERT_EQ(r.status, 201) << r.body;
    std::string csr = std::string(object_of(r.body)["csr_pem"].as_string());
    EXPECT_NE(csr.find("BEGIN CERTIFICATE REQUEST"), std::string::npos);
    EXPECT_EQ(r.body.find("PRIVATE KEY"), std::string::npos);
    std::string cert = cert_for_csr(csr, server_->topic());
    auto put = server_->api("PUT", "/v1/pushcert", cert);
    ASSERT_EQ(put.status, 200) << put.body;
    EXPECT_TRUE(object_of(put.body)["renewed"].as_bool());
    // The key was used up; a certificate for a key the server never made is refused.
    EXPECT_EQ(server_->api("PUT", "/v1/pushcert", cert).status, 400);
    auto other = certs::make_self_signed_push_identity(server_->topic(), -std::chrono::hours(1),
                                                       std::chrono::hours(24));
    EXPECT_EQ(server_->api("PUT", "/v1/pushcert", certs::cert_to_pem(other->cert.get())).status,
              400);
    EXPECT_EQ(server_->api("POST", "/v1/pushcert/csr", R"({"colour":"red"})").status, 400);
}

TEST_F(ConsoleApi, CertificateAloneForAnotherTopicIsRefusedAndChangesNothing) {
    auto active = [&] {
        auto certs = object_of(server_->api("GET", "/v1/pushcert").body)["certs"].as_array();
        std::vector<std::string> out;
        for (const auto& c : certs)
            out.push_back(std::string(c.as_object().at("topic").as_string()) + " " +
                          std::string(c.as_object().at("thumbprint_sha1").as_string()));
        return out;
    };
    auto before = active();
    ASSERT_EQ(before.size(), 1u);
    auto r = server_->api("POST", "/v1/pushcert/csr");
    ASSERT_EQ(r.status, 201) << r.body;
    std::string cert = cert_for_csr(std::string(object_of(r.body)["csr_pem"].as_string()),
                                    "com.apple.mgmt.External.other");
    EXPECT_EQ(server_->api("PUT", "/v1/pushcert", cert).status, 409);
    EXPECT_EQ(active(), before);
    // The kept key was not used up by the refusal.
    EXPECT_EQ(server_->api("PUT", "/v1/pushcert?add_topic=1", cert).status, 200);
}

TEST_F(ConsoleApi, ConsoleFilesComeWithAStrictPolicy) {
    test::HttpOptions o;
    o.ca_file = server_->ca_file();
    auto root = test::http_request("GET", server_->https_url() + "/", "", {}, o);
    EXPECT_EQ(root.status, 302);
    EXPECT_EQ(root.headers["location"], "/ui/");
    auto page = test::http_request("GET", server_->https_url() + "/ui/", "", {}, o);
    ASSERT_EQ(page.status, 200);
    EXPECT_EQ(page.headers["content-type"], "text/html; charset=utf-8");
    EXPECT_EQ(page.headers["content-security-policy"].rfind("default-src 'self'", 0), 0u);
    EXPECT_EQ(page.headers["x-content-type-options"], "nosniff");
    EXPECT_EQ(page.headers["cache-control"], "no-cache");
    auto again = test::http_request("GET", server_->https_url() + "/ui/index.html", "",
                                    {"If-None-Match: " + page.headers["etag"]}, o);
    EXPECT_EQ(again.status, 304);
    EXPECT_EQ(test::http_request("GET", server_->https_url() + "/ui/nothing.js", "", {}, o).status,
              404);
}

// A session ends 12 h after sign-in on the server's clock, whatever the
// browser does with the cookie.
TEST(ConsoleClock, SessionExpiresAfterTwelveHours) {
    ManualClock clock{SystemClock::instance().now()};
    test::TestServerOptions o;
    o.clock = &clock;
    std::string err;
    auto server = TestServer::start(o, &err);
    ASSERT_TRUE(server) << err;
    test::HttpOptions h;
    h.ca_file = server->ca_file();
    auto in = test::http_request("POST", server->https_url() + "/ui/session",
                                 R"({"api_key":")" + server->app().api_key() + R"("})", {}, h);
    ASSERT_EQ(in.status, 201) << in.body;
    std::string set_cookie = in.headers["set-cookie"];
    std::string cookie = "Cookie: " + set_cookie.substr(0, set_cookie.find(';'));
    clock.advance(std::chrono::hours(12) - std::chrono::seconds(2));
    EXPECT_EQ(
        test::http_request("GET", server->https_url() + "/v1/devices", "", {cookie}, h).status,
        200);
    clock.advance(std::chrono::seconds(2));
    auto late = test::http_request("GET", server->https_url() + "/v1/devices", "", {cookie}, h);
    EXPECT_EQ(late.status, 401);
    EXPECT_EQ(late.headers["www-authenticate"], "Bearer realm=\"courier\"");
}

TEST(ConsoleVendor, CsrComesOutVendorSignedWithVendorCert) {
    TempDir dir;
    auto vendor = certs::make_self_signed_push_identity("", -std::chrono::hours(1),
                                                        std::chrono::hours(24 * 365));
    ASSERT_TRUE(vendor.is_ok());
    test::TestServerOptions o;
    o.vendor_cert = (dir.path() / "vendor.crt").string();
    o.vendor_key = (dir.path() / "vendor.key").string();
    std::ofstream(o.vendor_cert) << certs::cert_to_pem(vendor->cert.get());
    std::ofstream(o.vendor_key) << certs::key_to_pem(vendor->key.get());
    std::string err;
    auto server = TestServer::start(o, &err);
    ASSERT_TRUE(server) << err;
    auto r = server->api("POST", "/v1/pushcert/csr");
    ASSERT_EQ(r.status, 201) << r.body;
    auto body = object_of(r.body);
    ASSERT_TRUE(body["vendor_request"].is_string()) << r.body;
    auto plist = base64_decode(std::string(body["vendor_request"].as_string()));
    ASSERT_TRUE(plist);
    for (const char* key : {"PushCertRequestCSR", "PushCertCertificateChain", "PushCertSignature"})
        EXPECT_NE(plist->find(key), std::string::npos) << key;

    // Without a vendor identity there is no vendor request; a key that does
    // not match the certificate is refused at start.
    auto other =
        certs::make_self_signed_push_identity("", -std::chrono::hours(1), std::chrono::hours(24));
    std::ofstream(o.vendor_key, std::ios::trunc) << certs::key_to_pem(other->key.get());
    EXPECT_FALSE(TestServer::start(o, &err));
    EXPECT_NE(err.find("--vendor-key"), std::string::npos) << err;
}

TEST(ConsoleOff, NoUiServesNeitherTheFilesNorSessions) {
    std::string err;
    test::TestServerOptions o;
    o.ui = false;
    auto server = TestServer::start(o, &err);
    ASSERT_TRUE(server) << err;
    test::HttpOptions h;
    h.ca_file = server->ca_file();
    EXPECT_EQ(test::http_request("GET", server->https_url() + "/ui/", "", {}, h).status, 404);
    EXPECT_EQ(test::http_request("GET", server->https_url() + "/", "", {}, h).status, 404);
    EXPECT_EQ(test::http_request("POST", server->https_url() + "/ui/session",
                                 R"({"api_key":")" + server->app().api_key() + R"("})", {}, h)
                  .status,
              404);
    // The API still answers its key.
    EXPECT_EQ(server->api("GET", "/v1/overview").status, 200);
}

}  // namespace
}  // namespace courier
