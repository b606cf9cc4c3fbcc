// The admin REST API end to end: a whole Courier on 127.0.0.1 over TLS, a
// fake APNs over HTTP/2, simulated devices; NanoMDM's scripts run as the real
// curl command line. Every refusal is checked to change nothing.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <regex>
#include <set>

#include "certs/pkcs.h"
#include "common/encoding.h"
#include "db/store.h"
#include "tests/support/test_server.h"

namespace courier {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using test::HttpResult;
using test::TestServer;

json::object parse_object(const std::string& body) {
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    if (ec || !v.is_object()) {
        ADD_FAILURE() << "not a JSON object: " << body;
        return {};
    }
    return v.as_object();
}

std::string str(const json::object& o, const char* key) {
    auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// Runs a shell command, returns its standard output.
std::string run(const std::string& cmd, int* rc = nullptr) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int status = pclose(p);
    if (rc) *rc = WEXITSTATUS(status);
    return out;
}

// The key as "BEGIN RSA PRIVATE KEY" (PKCS#1), as `openssl genrsa` in
// OpenSSL 1.x and many push certificate guides produce it.
std::string pkcs1_pem(const std::string& pkcs8_pem) {
    auto key = certs::key_from_pem(pkcs8_pem);
    EXPECT_TRUE(key.is_ok());
    OSSL_ENCODER_CTX* ctx = OSSL_ENCODER_CTX_new_for_pkey(key->get(), OSSL_KEYMGMT_SELECT_KEYPAIR,
                                                          "PEM", "type-specific", nullptr);
    unsigned char* data = nullptr;
    size_t len = 0;
    EXPECT_EQ(OSSL_ENCODER_to_data(ctx, &data, &len), 1);
    std::string out(reinterpret_cast<char*>(data), len);
    OPENSSL_free(data);
    OSSL_ENCODER_CTX_free(ctx);
    return out;
}

// What NanoMDM's tools/cmdr.py prints for `DeviceLock` (XML declaration,
// Apple's DOCTYPE line, tabs).
std::string cmdr_plist(const std::string& uuid, const std::string& type = "DeviceLock") {
    std::string out =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
        "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
        "<plist version=\"1.0\">\n<dict>\n\t<key>Command</key>\n\t<dict>\n"
        "\t\t<key>RequestType</key>\n\t\t<string>" +
        type + "</string>\n\t</dict>\n";
    if (!uuid.empty()) out += "\t<key>CommandUUID</key>\n\t<string>" + uuid + "</string>\n";
    return out + "</dict>\n</plist>\n";
}

class AdminApi : public ::testing::Test {
  protected:
    void SetUp() override { start({}); }
    void start(const test::TestServerOptions& o) {
        server_.reset();
        std::string err;
        server_ = TestServer::start(o, &err);
        ASSERT_TRUE(server_) << err;
    }
    HttpResult api(const std::string& method, const std::string& path, const std::string& body = {},
                   std::vector<std::string> headers = {}) {
        return server_->api(method, path, body, std::move(headers));
    }
    std::unique_ptr<sim::SimDevice> device(const std::string& udid) {
        std::string err;
        auto d = server_->enrolled_device(udid, sim::AuthMode::kTlsClientCert, &err);
        EXPECT_TRUE(d) << err;
        return d;
    }
    std::string url(const std::string& path) const { return server_->https_url() + path; }
    // curl as an administrator's script runs it, reading the body from stdin.
    std::string curl(const std::string& stdin_file, const std::string& args, int* http_code) {
        std::string out =
            run("curl -sS -w '\\n%{http_code}' --cacert '" + server_->ca_file() + "' " + args +
                (stdin_file.empty() ? "" : " -T - < '" + stdin_file + "'"));
        auto nl = out.rfind('\n');
        *http_code = nl == std::string::npos ? 0 : std::atoi(out.c_str() + nl + 1);
        return nl == std::string::npos ? out : out.substr(0, nl);
    }
    std::string write(const std::string& name, const std::string& content) {
        auto p = server_->data_dir() / name;
        std::ofstream(p, std::ios::binary) << content;
        return p.string();
    }
    size_t queued(const std::string& id) {
        auto e = server_->app().store().enrollment(id);
        return e.is_ok() ? static_cast<size_t>(e->queued) : 0;
    }

    std::unique_ptr<TestServer> server_;
};

// ---- authentication ---------------------------------------------------------

TEST_F(AdminApi, ApiKeyAsBasicPasswordOrBearerElse401) {
    test::HttpOptions o;
    o.ca_file = server_->ca_file();
    auto none = test::http_request("GET", url("/v1/devices"), "", {}, o);
    EXPECT_EQ(none.status, 401);
    EXPECT_FALSE(str(parse_object(none.body), "error").empty());
    // A Bearer challenge: a browser never prompts for (and caches) the key.
    EXPECT_EQ(none.headers["www-authenticate"], "Bearer realm=\"courier\"");
    auto wrong =
        test::http_request("GET", url("/v1/devices"), "", {"Authorization: Bearer nope"}, o);
    EXPECT_EQ(wrong.status, 401);
    o.user = "anyone:" + server_->app().api_key();
    EXPECT_EQ(test::http_request("GET", url("/v1/devices"), "", {}, o).status, 200);
    o.user = "nanomdm:" + server_->app().api_key() + "x";
    EXPECT_EQ(test::http_request("GET", url("/v1/devices"), "", {}, o).status, 401);
    EXPECT_EQ(api("GET", "/v1/devices").status, 200);
}

TEST_F(AdminApi, HealthzNeedsNoKeyAndMetricsDoes) {
    auto h = sim::http_get(url("/healthz"), server_->ca_file());
    EXPECT_EQ(h.status, 200);
    test::HttpOptions o;
    o.ca_file = server_->ca_file();
    auto unauth = test::http_request("GET", url("/metrics"), "", {}, o);
    EXPECT_EQ(unauth.status, 401);
    EXPECT_EQ(unauth.headers["www-authenticate"], "Bearer realm=\"courier\"");
    // Some traffic first: a check-in, a command queued, handed out, acknowledged.
    auto dev = device("UDID-M");
    auto q = api("POST", "/v1/commands",
                 R"({"targets":["UDID-M"],"command":{"RequestType":"ProfileList"}})");
    ASSERT_EQ(q.status, 201) << q.body;
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);
    ASSERT_TRUE(next);
    ASSERT_EQ(dev->report("Acknowledged", next->uuid, &next).status, 200);
    auto m = api("GET", "/metrics");
    ASSERT_EQ(m.status, 200);
    for (const char* name : {"courier_pushcert_expiry_seconds{topic=\"", "courier_queue_depth 0",
                             "courier_http_request_seconds_bucket", "courier_http_requests_total",
                             "courier_pushes_total{status=\"200\"} 1",
                             "courier_checkins_total{message_type=\"Authenticate\"} 1",
                             "courier_commands_total{status=\"queued\"} 1",
                             "courier_commands_total{status=\"sent\"} 1",
                             "courier_commands_total{status=\"acknowledged\"} 1"})
        EXPECT_NE(m.body.find(name), std::string::npos) << name << "\n" << m.body;
}

TEST_F(AdminApi, UnknownPathIs404AndWrongMethodIs405WithAllow) {
    auto r = api("GET", "/v1/nothing");
    EXPECT_EQ(r.status, 404);
    EXPECT_FALSE(str(parse_object(r.body), "error").empty());
    r = api("PATCH", "/v1/pushcert");
    EXPECT_EQ(r.status, 405);
    EXPECT_NE(r.headers["allow"].find("PUT"), std::string::npos);
}

// Courier serves no files, but odd paths must not reach another route:
// dot segments and encoded slashes are answered 400 or 404 (never resolved),
// even with the API key.
TEST_F(AdminApi, DotSegmentsAndEncodedSlashesNeverReachAnotherRoute) {
    std::string base = server_->http_url();  // http://127.0.0.1:PORT
    uint16_t port = static_cast<uint16_t>(std::stoi(base.substr(base.rfind(':') + 1)));
    for (std::string target :
         {"/enroll/../v1/devices", "/v1/../v1/devices", "/%2e%2e/v1/devices",
          "/v1/devices/..%2f..%2fetc%2fpasswd/timeline", "/../../etc/passwd", "/v1//devices"}) {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        timeval tv{5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        std::string req = "GET " + target + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                          server_->app().api_key() + "\r\nConnection: close\r\n\r\n";
        ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(req.size()));
        std::string resp;
        char buf[4096];
        for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
            resp.append(buf, static_cast<size_t>(n));
        ::close(fd);
        ASSERT_GE(resp.size(), 12u) << target;
        int status = std::stoi(resp.substr(9, 3));
        EXPECT_TRUE(status == 400 || status == 404) << target << ": " << resp.substr(0, 200);
        EXPECT_EQ(resp.find("\"items\""), std::string::npos) << target;
    }
}

// ---- push certificates ----------------------------------------------------

TEST_F(AdminApi, NanoMdmQuickstartUploadsPemWithPkcs1KeyThroughCurlStdin) {
    start({.import_push_cert = false});
    auto pc = test::make_push_cert(server_->topic());
    std::string file = write("push.pem+key", pc.cert_pem + pkcs1_pem(pc.key_pem));
    int code = 0;
    // cat push.pem push.key | curl -T - -u nanomdm:KEY https://…/v1/pushcert
    std::string body = curl(
        file, "-u 'nanomdm:" + server_->app().api_key() + "' '" + url("/v1/pushcert") + "'", &code);
    ASSERT_EQ(code, 200) << body;
    auto o = parse_object(body);
    EXPECT_EQ(str(o, "topic"), server_->topic());
    EXPECT_TRUE(std::regex_match(str(o, "thumbprint_sha1"), std::regex("[0-9a-f]{40}"))) << body;
    EXPECT_FALSE(str(o, "not_before").empty());
    EXPECT_FALSE(str(o, "not_after").empty());
    EXPECT_TRUE(o.contains("days_left"));
    EXPECT_EQ(o.at("renewed"), json::value(false));
    // And the enrollment profile now carries that topic.
    auto prof = server_->fetch_profile();
    ASSERT_TRUE(prof.is_ok()) << prof.status().to_string();
}

TEST_F(AdminApi, RenewalWithTheSameTopicSwapsInAndDifferentTopicIs409) {
    auto renewed = test::make_push_cert(server_->topic(), -1h, std::chrono::days(400));
    auto r = api("PUT", "/v1/pushcert", renewed.cert_pem + renewed.key_pem);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(parse_object(r.body).at("renewed"), json::value(true));
    auto list = parse_object(api("GET", "/v1/pushcert").body);
    ASSERT_EQ(list.at("certs").as_array().size(), 1u);
    EXPECT_GE(list.at("certs").as_array()[0].as_object().at("days_left").as_int64(), 398);

    auto other = test::make_push_cert("com.apple.mgmt.External.other");
    r = api("PUT", "/v1/pushcert", other.cert_pem + other.key_pem);
    EXPECT_EQ(r.status, 409);
    EXPECT_NE(r.body.find("topic"), std::string::npos) << r.body;
    EXPECT_EQ(parse_object(api("GET", "/v1/pushcert").body).at("certs").as_array().size(), 1u);
    r = api("PUT", "/v1/pushcert?add_topic=1", other.cert_pem + other.key_pem);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(parse_object(api("GET", "/v1/pushcert").body).at("certs").as_array().size(), 2u);

    auto one = api("GET", "/v1/pushcert?topic=" + server_->topic());
    ASSERT_EQ(one.status, 200);
    EXPECT_EQ(str(parse_object(one.body), "topic"), server_->topic());
    EXPECT_EQ(api("GET", "/v1/pushcert?topic=com.apple.mgmt.none").status, 404);
    auto hist = api("GET", "/v1/pushcert/history");
    EXPECT_EQ(hist.status, 200);
}

TEST_F(AdminApi, BadPushCertificatesAre400AndChangeNothing) {
    // Thumbprints and upload times: days_left may tick over during the test.
    auto certs_now = [&] {
        std::string out;
        auto list = parse_object(api("GET", "/v1/pushcert").body);
        for (const auto& c : list.at("certs").as_array())
            out += str(c.as_object(), "thumbprint_sha1") + str(c.as_object(), "uploaded_at") + ";";
        return out;
    };
    std::string before = certs_now();
    auto expired = test::make_push_cert(server_->topic(), -std::chrono::days(400), -24h);
    auto no_uid = test::make_push_cert("");
    auto a = test::make_push_cert(server_->topic());
    auto b = test::make_push_cert(server_->topic());
    struct Case {
        std::string name, body, want;
    };
    std::vector<Case> cases{
        {"expired", expired.cert_pem + expired.key_pem, "expired"},
        {"no topic", no_uid.cert_pem + no_uid.key_pem, "UID"},
        {"key mismatch", a.cert_pem + b.key_pem, "match"},
        {"no key", a.cert_pem, "key"},
        {"garbage", "hello", ""},
        {"empty", "", ""},
    };
    for (const auto& c : cases) {
        auto r = api("PUT", "/v1/pushcert", c.body);
        EXPECT_EQ(r.status, 400) << c.name << ": " << r.body;
        std::string err = str(parse_object(r.body), "error");
        EXPECT_FALSE(err.empty()) << c.name;
        EXPECT_NE(err.find(c.want), std::string::npos) << c.name << ": " << err;
    }
    EXPECT_EQ(certs_now(), before);
}

TEST_F(AdminApi, Pkcs12UploadWithPasswordInQueryOrHeader) {
    auto id = test::make_push_identity(server_->topic(), -1h, std::chrono::days(300));
    auto p12 = certs::make_pkcs12(id, "s3cret", "push");
    ASSERT_TRUE(p12.is_ok());
    auto r =
        api("PUT", "/v1/pushcert?password=s3cret", *p12, {"Content-Type: application/x-pkcs12"});
    EXPECT_EQ(r.status, 200) << r.body;
    r = api("PUT", "/v1/pushcert", *p12, {"X-Pkcs12-Password: s3cret"});
    EXPECT_EQ(r.status, 200) << r.body;
    r = api("PUT", "/v1/pushcert?password=wrong", *p12);
    EXPECT_EQ(r.status, 400) << r.body;
}

// ---- raw enqueue (NanoMDM) --------------------------------------------------

TEST_F(AdminApi, CmdrPlistThroughCurlStdinIsQueuedPushedAndDelivered) {
    auto dev = device("UDID-A");
    ASSERT_TRUE(dev);
    std::string uuid = "0b1f6a3e-2c55-4d1e-9a2c-000000000001";
    std::string file = write("cmd.plist", cmdr_plist(uuid));
    int code = 0;
    std::string body = curl(
        file, "-u 'nanomdm:" + server_->app().api_key() + "' '" + url("/v1/enqueue/UDID-A") + "'",
        &code);
    ASSERT_EQ(code, 200) << body;
    auto o = parse_object(body);
    EXPECT_EQ(str(o, "command_uuid"), uuid);
    EXPECT_EQ(str(o, "request_type"), "DeviceLock");
    EXPECT_EQ(o.at("no_push"), json::value(false));
    auto st = o.at("status").as_object().at("UDID-A").as_object();
    EXPECT_FALSE(str(st, "push_result").empty()) << body;
    ASSERT_EQ(server_->apns().request_count(), 1u);
    EXPECT_EQ(server_->apns().requests()[0].token, dev->token_hex());

    // The device receives the exact bytes that were enqueued.
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);
    ASSERT_TRUE(next);
    EXPECT_EQ(next->uuid, uuid);
    EXPECT_EQ(next->raw, cmdr_plist(uuid));
}

TEST_F(AdminApi, EnqueueGeneratesAMissingUuidAndHonoursNopush) {
    auto dev = device("UDID-A");
    auto r = api("PUT", "/v1/enqueue/UDID-A?nopush=1", cmdr_plist("", "DeviceInformation"));
    ASSERT_EQ(r.status, 200) << r.body;
    auto o = parse_object(r.body);
    EXPECT_TRUE(std::regex_match(str(o, "command_uuid"), std::regex("[0-9A-Fa-f-]{36}")));
    EXPECT_EQ(o.at("no_push"), json::value(true));
    EXPECT_EQ(server_->apns().request_count(), 0u);
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);
    ASSERT_TRUE(next);
    EXPECT_EQ(next->uuid, str(o, "command_uuid"));
}

TEST_F(AdminApi, EnqueueToKnownAndUnknownIs207AndNoneKnownIs404) {
    auto dev = device("UDID-A");
    auto r = api("PUT", "/v1/enqueue/UDID-A,UDID-NOPE", cmdr_plist(""));
    ASSERT_EQ(r.status, 207) << r.body;
    auto answer = parse_object(r.body);
    auto& st = answer.at("status").as_object();
    EXPECT_FALSE(str(st.at("UDID-NOPE").as_object(), "command_error").empty());
    EXPECT_FALSE(str(st.at("UDID-A").as_object(), "push_result").empty());
    r = api("PUT", "/v1/enqueue/UDID-X,UDID-Y", cmdr_plist(""));
    EXPECT_EQ(r.status, 404) << r.body;
    EXPECT_EQ(queued("UDID-A"), 1u);
}

TEST_F(AdminApi, BadRawCommandsAre400DuplicatesAre409AndNothingIsQueued) {
    auto dev = device("UDID-A");
    std::string uuid = "0b1f6a3e-2c55-4d1e-9a2c-000000000002";
    ASSERT_EQ(api("PUT", "/v1/enqueue/UDID-A?nopush=1", cmdr_plist(uuid)).status, 200);
    EXPECT_EQ(api("PUT", "/v1/enqueue/UDID-A", cmdr_plist(uuid)).status, 409);
    for (std::string bad :
         {std::string("not a plist"), std::string("<plist><array/></plist>"),
          std::string("<plist><dict><key>Command</key><string>x</string></dict></plist>"),
          std::string("<plist><dict><key>Command</key><dict/></dict></plist>"),
          std::string("<!DOCTYPE plist [<!ENTITY a \"b\">]><plist><dict/></plist>")}) {
        auto r = api("PUT", "/v1/enqueue/UDID-A", bad);
        EXPECT_EQ(r.status, 400) << bad << " → " << r.body;
        EXPECT_FALSE(str(parse_object(r.body), "error").empty());
    }
    EXPECT_EQ(queued("UDID-A"), 1u);
}

// ---- POST /v1/commands and command status ------------------------------------

TEST_F(AdminApi, PostCommandValidatesQueuesPushesAndReportsResults) {
    auto dev = device("UDID-A");
    auto r = api("POST", "/v1/commands",
                 R"({"targets":["UDID-A"],"command":{"RequestType":"DeviceLock",
                     "Message":"Lost","PIN":"123456"}})");
    ASSERT_EQ(r.status, 201) << r.body;
    auto o = parse_object(r.body);
    std::string uuid = str(o, "command_uuid");
    EXPECT_EQ(str(o, "request_type"), "DeviceLock");
    EXPECT_TRUE(o.at("targets").as_object().contains("UDID-A"));
    EXPECT_EQ(server_->apns().request_count(), 1u);

    auto c = parse_object(api("GET", "/v1/commands/" + uuid).body);
    EXPECT_EQ(str(c.at("targets").as_object().at("UDID-A").as_object(), "status"), "queued");

    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);
    ASSERT_TRUE(next);
    EXPECT_EQ(next->request_type, "DeviceLock");
    EXPECT_EQ(*next->command.find_string("PIN"), "123456");
    plist::Dict extra;
    extra.set("MessageResult", plist::Value(std::string("locked")));
    ASSERT_EQ(dev->report("Acknowledged", uuid, &next, extra).status, 200);

    c = parse_object(api("GET", "/v1/commands/" + uuid).body);
    auto& t = c.at("targets").as_object().at("UDID-A").as_object();
    EXPECT_EQ(str(t, "status"), "acknowledged");
    ASSERT_TRUE(t.at("result").is_object()) << json::serialize(c);
    EXPECT_EQ(str(t.at("result").as_object(), "MessageResult"), "locked");
    EXPECT_EQ(api("GET", "/v1/commands/00000000-0000-0000-0000-000000000000").status, 404);
}

TEST_F(AdminApi, InvalidCommandsAndUnknownTargetsQueueNothing) {
    auto dev = device("UDID-A");
    struct Case {
        std::string body, want;
        int status;
    };
    std::vector<Case> cases{
        {R"({"targets":["UDID-A"],"command":{"RequestType":"DeviceLock","PIN":"12"}})", "PIN", 400},
        {R"({"targets":["UDID-A"],"command":{"RequestType":"InstallProfile"}})", "Payload", 400},
        {R"({"targets":["UDID-A"],"command":{"RequestType":"NoSuchCommand"}})", "NoSuchCommand",
         400},
        {R"({"targets":[],"command":{"RequestType":"DeviceLock"}})", "targets", 400},
        {R"({"command":{"RequestType":"DeviceLock"}})", "targets", 400},
        {R"({"targets":["UDID-A"]})", "command", 400},
        {R"(not json)", "JSON", 400},
        {R"({"targets":["UDID-A","UDID-GHOST"],"command":{"RequestType":"DeviceLock"}})", "unknown",
         404},
    };
    for (const auto& c : cases) {
        auto r = api("POST", "/v1/commands", c.body);
        EXPECT_EQ(r.status, c.status) << c.body << " → " << r.body;
        EXPECT_NE(r.body.find(c.want), std::string::npos) << c.body << " → " << r.body;
    }
    EXPECT_EQ(queued("UDID-A"), 0u);
    EXPECT_EQ(server_->apns().request_count(), 0u);
    auto list = parse_object(api("GET", "/v1/commands").body);
    EXPECT_TRUE(list.at("items").as_array().empty());
}

TEST_F(AdminApi, DeleteCancelsUndeliveredTargetsThen409) {
    auto a = device("UDID-A");
    auto r = api("POST", "/v1/commands",
                 R"({"targets":["UDID-A"],"command":{"RequestType":"DeviceInformation",
                     "Queries":["UDID"]},"push":false})");
    ASSERT_EQ(r.status, 201) << r.body;
    std::string uuid = str(parse_object(r.body), "command_uuid");
    auto d = api("DELETE", "/v1/commands/" + uuid);
    ASSERT_EQ(d.status, 200) << d.body;
    EXPECT_EQ(json::serialize(parse_object(d.body).at("canceled")), R"(["UDID-A"])");
    EXPECT_EQ(api("DELETE", "/v1/commands/" + uuid).status, 409);
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(a->idle(&next).status, 200);
    EXPECT_FALSE(next);
}

// ---- devices, push, retirement, tokens -----------------------------------------

TEST_F(AdminApi, DevicesArePagedWithTheSettledKeys) {
    auto a = device("UDID-A");
    auto b = device("UDID-B");
    auto p1 = parse_object(api("GET", "/v1/devices?limit=1").body);
    ASSERT_EQ(p1.at("items").as_array().size(), 1u);
    ASSERT_TRUE(p1.at("next_cursor").is_string()) << json::serialize(p1);
    auto p2 = parse_object(api("GET", "/v1/devices?limit=1&cursor=" + str(p1, "next_cursor")).body);
    ASSERT_EQ(p2.at("items").as_array().size(), 1u);
    std::set<std::string> ids{str(p1.at("items").as_array()[0].as_object(), "id"),
                              str(p2.at("items").as_array()[0].as_object(), "id")};
    EXPECT_EQ(ids, (std::set<std::string>{"UDID-A", "UDID-B"}));
    EXPECT_TRUE(p2.at("next_cursor").is_null()) << "the end of the list";

    auto one = parse_object(api("GET", "/v1/devices/UDID-A").body);
    for (const char* k : {"id", "udid", "serial_number", "model", "os_version", "topic", "state",
                          "token_valid", "last_seen", "queued"})
        EXPECT_TRUE(one.contains(k)) << k << " missing in " << json::serialize(one);
    EXPECT_EQ(str(one, "state"), "enrolled");
    EXPECT_EQ(str(one, "topic"), server_->topic());
    EXPECT_EQ(one.at("token_valid"), json::value(true));
    std::string raw = api("GET", "/v1/devices/UDID-A").body;
    EXPECT_EQ(raw.find("unlock_token\""), std::string::npos) << "secrets leak: " << raw;
    EXPECT_EQ(api("GET", "/v1/devices/UDID-NONE").status, 404);
    EXPECT_EQ(api("GET", "/v1/devices?limit=abc").status, 400);

    auto tl = parse_object(api("GET", "/v1/devices/UDID-A/timeline").body);
    EXPECT_FALSE(tl.at("items").as_array().empty());
    auto cmds = api("GET", "/v1/devices/UDID-A/commands");
    EXPECT_EQ(cmds.status, 200);
}

// SPEC "pending push": an enqueue while a push is pending reports that push.
TEST_F(AdminApi, CommandsInABurstShareOnePendingPush) {
    auto dev = device("UDID-A");
    ASSERT_TRUE(dev);
    auto push_result = [](const HttpResult& r) {
        EXPECT_EQ(r.status, 200) << r.body;
        auto o = parse_object(r.body);
        return str(o.at("status").as_object().at("UDID-A").as_object(), "push_result");
    };
    std::string first = push_result(api("PUT", "/v1/enqueue/UDID-A", cmdr_plist(random_uuid())));
    ASSERT_FALSE(first.empty());
    for (int i = 0; i < 4; ++i)
        EXPECT_EQ(push_result(api("PUT", "/v1/enqueue/UDID-A", cmdr_plist(random_uuid()))), first)
            << i;
    EXPECT_EQ(server_->apns().request_count(), 1u);

    // The device's request ends the pending push: the next command pushes.
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);
    ASSERT_TRUE(next);
    std::string second = push_result(api("PUT", "/v1/enqueue/UDID-A", cmdr_plist(random_uuid())));
    EXPECT_NE(second, first);
    EXPECT_EQ(server_->apns().request_count(), 2u);
    auto r = api("POST", "/v1/commands",
                 R"({"targets":["UDID-A"],"command":{"RequestType":"DeviceLock","PIN":"123456"}})");
    ASSERT_EQ(r.status, 201) << r.body;
    auto push = parse_object(r.body).at("targets").as_object().at("UDID-A").as_object();
    auto p = push.at("push").as_object();
    EXPECT_EQ(str(p, "status"), "pushed");
    EXPECT_EQ(str(p, "apns_id"), second);
    EXPECT_EQ(server_->apns().request_count(), 2u);

    // GET /v1/push is an explicit request: it pushes anyway.
    EXPECT_EQ(api("GET", "/v1/push/UDID-A").status, 200);
    EXPECT_EQ(server_->apns().request_count(), 3u);
}

// An Idle with nothing queued is answered without a write, except when it
// has a pending push to end.
TEST_F(AdminApi, AnEmptyIdleEndsThePendingPush) {
    auto dev = device("UDID-A");
    ASSERT_TRUE(dev);
    ASSERT_EQ(api("GET", "/v1/push/UDID-A").status, 200);
    ASSERT_TRUE(server_->app().store().enrollment("UDID-A")->push_pending_at(
        SystemClock::instance().now()));
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);
    ASSERT_FALSE(next);
    EXPECT_FALSE(server_->app().store().enrollment("UDID-A")->push_pending_at(
        SystemClock::instance().now()));
    EXPECT_EQ(api("PUT", "/v1/enqueue/UDID-A", cmdr_plist(random_uuid())).status, 200);
    EXPECT_EQ(server_->apns().request_count(), 2u);
}

TEST_F(AdminApi, PushNowKeepsNanoMdmShape) {
    auto a = device("UDID-A");
    auto r = api("GET", "/v1/push/UDID-A");
    ASSERT_EQ(r.status, 200) << r.body;
    auto answer = parse_object(r.body);
    auto& st = answer.at("status").as_object();
    EXPECT_FALSE(str(st.at("UDID-A").as_object(), "push_result").empty());
    EXPECT_EQ(server_->apns().request_count(), 1u);
    r = api("GET", "/v1/push/UDID-A,UDID-NOPE");
    EXPECT_EQ(r.status, 207) << r.body;
    EXPECT_EQ(api("GET", "/v1/push/UDID-NOPE").status, 404);
    // APNs refusing every push is a 502.
    server_->apns().set_response(a->token_hex(),
                                 {.status = 400, .reason = "BadTopic", .retry_after = ""});
    EXPECT_EQ(api("GET", "/v1/push/UDID-A").status, 502);
}

TEST_F(AdminApi, RetiredDevicesAreRefusedUntilUnretired) {
    auto a = device("UDID-A");
    auto r = api("POST", "/v1/devices/UDID-A/retire");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(str(parse_object(r.body), "state"), "retired");
    std::optional<sim::ReceivedCommand> next;
    EXPECT_EQ(a->idle(&next).status, 403);
    r = api("POST", "/v1/devices/UDID-A/unretire");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(a->idle(&next).status, 200);
    EXPECT_EQ(api("POST", "/v1/devices/UDID-NONE/retire").status, 404);
}

TEST_F(AdminApi, EnrollmentTokensGateEnrollWhenEnrollmentIsClosed) {
    start({.enroll_open = false});
    EXPECT_EQ(sim::http_get(url("/enroll"), server_->ca_file()).status, 403);
    auto r = api("POST", "/v1/enrollment-tokens", R"({"uses":1,"note":"laptop 7"})");
    ASSERT_EQ(r.status, 201) << r.body;
    auto o = parse_object(r.body);
    std::string token = str(o, "token");
    ASSERT_FALSE(token.empty());
    std::string id = str(o, "id");
    auto list = api("GET", "/v1/enrollment-tokens");
    EXPECT_EQ(list.body.find(token), std::string::npos) << "token secret listed: " << list.body;
    EXPECT_NE(list.body.find(id), std::string::npos);

    auto prof = server_->fetch_profile("?token=" + token);
    EXPECT_TRUE(prof.is_ok()) << prof.status().to_string();
    auto again = sim::http_get(url("/enroll?token=" + token), server_->ca_file());
    EXPECT_EQ(again.status, 403);
    EXPECT_EQ(api("POST", "/v1/enrollment-tokens", R"({"uses":0})").status, 400);
    EXPECT_EQ(api("DELETE", "/v1/enrollment-tokens/" + id).status, 200);
    EXPECT_EQ(api("DELETE", "/v1/enrollment-tokens/" + id).status, 404);
}

// ---- documentation matches what is served --------------------------------------

TEST_F(AdminApi, EveryRouteIsInOpenApiAndEveryOpenApiPathIsServed) {
    std::ifstream in(std::string(COURIER_SOURCE_DIR) + "/docs/openapi.yaml");
    ASSERT_TRUE(in) << "docs/openapi.yaml";
    std::set<std::string> documented;
    std::string line, path;
    std::regex path_re(R"(^  (/[^:]*):\s*$)"), method_re(R"(^    (get|put|post|delete|patch):)");
    std::smatch m;
    while (std::getline(in, line)) {
        if (std::regex_match(line, m, path_re)) {
            path = m[1];
        } else if (std::regex_search(line, m, method_re) && !path.empty()) {
            std::string method = m[1];
            std::transform(method.begin(), method.end(), method.begin(), ::toupper);
            documented.insert(method + " " + path);
        }
    }
    std::set<std::string> served;
    for (const auto& r : server_->app().routes()) served.insert(r);
    EXPECT_EQ(documented, served);
}

// ---- browsers (SPEC "logs and browsers") ---------------------------------------

TEST_F(AdminApi, CrossSiteRequestsAre403AndQueueNothing) {
    auto dev = device("UDID-X");
    const std::string body = R"({"targets":["UDID-X"],"command":{"RequestType":"DeviceLock"},)"
                             R"("push":false})";
    // A cross-origin text/plain form POST riding on cached Basic credentials.
    test::HttpOptions basic;
    basic.ca_file = server_->ca_file();
    basic.user = "admin:" + server_->app().api_key();
    auto forged = test::http_request(
        "POST", url("/v1/commands"), body,
        {"Origin: https://evil.example", "Content-Type: text/plain", "Sec-Fetch-Site: cross-site"},
        basic);
    EXPECT_EQ(forged.status, 403) << forged.body;
    EXPECT_FALSE(str(parse_object(forged.body), "error").empty());
    for (std::vector<std::string> h : std::vector<std::vector<std::string>>{
             {"Origin: https://evil.example"},
             {"Origin: null"},
             {"Sec-Fetch-Site: cross-site"},
             {"Sec-Fetch-Site: same-site"},
             {"Origin: " + server_->https_url(), "Sec-Fetch-Site: cross-site"}}) {
        auto r = api("POST", "/v1/commands", body, h);
        EXPECT_EQ(r.status, 403) << h.front() << " " << r.body;
    }
    EXPECT_EQ(api("GET", "/v1/devices", "", {"Origin: null"}).status, 403);
    EXPECT_EQ(queued("UDID-X"), 0u);
    // The server's own origin (--public-url; the listener's in tests), and a
    // browser's own navigation, are served; so is curl, which sends neither.
    EXPECT_EQ(api("GET", "/v1/devices", "",
                  {"Origin: " + server_->https_url(), "Sec-Fetch-Site: same-origin"})
                  .status,
              200);
    EXPECT_EQ(api("GET", "/v1/devices", "", {"Sec-Fetch-Site: none"}).status, 200);
    int code = 0;
    curl("", "-H 'Authorization: Bearer " + server_->app().api_key() + "' " + url("/v1/devices"),
         &code);
    EXPECT_EQ(code, 200);
    EXPECT_EQ(api("POST", "/v1/commands", body).status, 201);
    EXPECT_EQ(queued("UDID-X"), 1u);
}

// ---- storage failures (SPEC "errors of the store") -------------------------------

TEST_F(AdminApi, StoreFailuresAre503OnListsAndLookupsNever400Or404) {
    test::TestServerOptions o;
    o.faulty_store = true;
    start(o);
    auto dev = device("UDID-S");
    auto q = api("POST", "/v1/commands",
                 R"({"targets":["UDID-S"],"command":{"RequestType":"ProfileList"},"push":false})");
    ASSERT_EQ(q.status, 201) << q.body;
    std::string uuid = str(parse_object(q.body), "command_uuid");
    const std::vector<std::pair<std::string, std::string>> calls = {
        {"GET", "/v1/devices"},
        {"GET", "/v1/devices/UDID-S"},
        {"GET", "/v1/devices/UDID-S/commands"},
        {"GET", "/v1/devices/UDID-S/timeline"},
        {"GET", "/v1/commands"},
        {"GET", "/v1/commands/" + uuid},
        {"DELETE", "/v1/commands/" + uuid},
        {"GET", "/v1/enrollment-tokens"},
        {"POST", "/v1/enrollment-tokens"},
        {"GET", "/v1/pushcert"},
        {"GET", "/v1/pushcert/history"},
        {"POST", "/v1/devices/UDID-S/retire"},
        {"GET", "/v1/push/UDID-S"}};
    server_->faulty()->set_unreachable(true);
    for (const auto& [method, path] : calls) {
        auto r = api(method, path);
        EXPECT_EQ(r.status, 503) << method << " " << path << " " << r.body;
        EXPECT_FALSE(str(parse_object(r.body), "error").empty()) << method << " " << path;
    }
    std::optional<sim::ReceivedCommand> next;
    auto idle = dev->idle(&next);
    EXPECT_EQ(idle.status, 503) << idle.body;
    auto h = sim::http_get(url("/healthz"), server_->ca_file());
    EXPECT_EQ(h.status, 503);
    server_->faulty()->set_unreachable(false);
    EXPECT_EQ(api("GET", "/v1/devices").status, 200);
    EXPECT_EQ(api("GET", "/v1/devices/UDID-S/commands").status, 200);
    EXPECT_EQ(api("GET", "/v1/devices/UDID-NONE").status, 404);
    EXPECT_EQ(queued("UDID-S"), 1u);
}

TEST_F(AdminApi, HealthzIsDegradedWhileWritesFailAndHealthyOnceTheySucceed) {
    test::TestServerOptions o;
    o.faulty_store = true;
    start(o);
    EXPECT_EQ(sim::http_get(url("/healthz"), server_->ca_file()).status, 200);
    server_->faulty()->fail_next_writes(1000, db::StoreFault::kDiskFull);
    // As SqliteStore: healthz probes writes only after a write failed, so
    // faults that no write met yet leave it ok and untouched.
    EXPECT_EQ(sim::http_get(url("/healthz"), server_->ca_file()).status, 200);
    EXPECT_EQ(server_->faulty()->injected_failures(), 0);
    EXPECT_EQ(api("GET", "/v1/devices").status, 200);                   // reads still work
    EXPECT_EQ(api("POST", "/v1/enrollment-tokens", "{}").status, 503);  // a write fails
    auto h = sim::http_get(url("/healthz"), server_->ca_file());
    EXPECT_EQ(h.status, 503) << h.body;
    auto body = parse_object(h.body);
    EXPECT_EQ(str(body, "status"), "degraded");
    EXPECT_NE(str(body, "why").find("disk full"), std::string::npos) << h.body;
    EXPECT_EQ(sim::http_get(url("/healthz"), server_->ca_file()).status, 503);
    server_->faulty()->fail_next_writes(0, db::StoreFault::kDiskFull);
    h = sim::http_get(url("/healthz"), server_->ca_file());
    EXPECT_EQ(h.status, 200) << h.body;
    EXPECT_EQ(str(parse_object(h.body), "status"), "ok");
}

// ---- channels -----------------------------------------------------------------

TEST_F(AdminApi, IdleOnTheCheckinChannelHandsNothingOut) {
    auto dev = device("UDID-C");
    auto q = api("POST", "/v1/commands",
                 R"({"targets":["UDID-C"],"command":{"RequestType":"ProfileList"},"push":false})");
    ASSERT_EQ(q.status, 201) << q.body;
    std::string uuid = str(parse_object(q.body), "command_uuid");
    plist::Dict idle;
    idle.set("UDID", plist::Value(std::string("UDID-C")));
    idle.set("Status", plist::Value(std::string("Idle")));
    // A check-in answer is not read as a command: handing one out there
    // would mark it sent while the device never sees it.
    auto r = dev->put("/checkin", plist::write_xml(plist::Value(idle)),
                      "application/x-apple-aspen-mdm-checkin");
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_TRUE(r.body.empty()) << r.body;
    auto c = parse_object(api("GET", "/v1/commands/" + uuid).body);
    EXPECT_EQ(str(c.at("targets").as_object().at("UDID-C").as_object(), "status"), "queued");
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);
    ASSERT_TRUE(next);
    EXPECT_EQ(next->uuid, uuid);
}

}  // namespace
}  // namespace courier
