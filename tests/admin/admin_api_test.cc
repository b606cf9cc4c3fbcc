// The admin REST API end to end: a whole Courier on 127.0.0.1 over TLS, a
// fake APNs over HTTP/2, simulated devices; NanoMDM's scripts run as the real
// curl command line. Every refusal is checked to change nothing. This file:
// authentication, the documented routes, browsers, storage failures,
// channels; one file per resource beside it (admin_*_test.cc).
#include "tests/admin/admin_fixture.h"

namespace courier {
namespace {

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

// ---- browsers (docs/security.md) ---------------------------------------

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

// ---- storage failures (docs/reliability.md "Guarantees") -------------------------------

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
