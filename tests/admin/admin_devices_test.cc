// The admin API's devices end to end: listing, timelines, explicit pushes,
// retirement and enrollment tokens.
#include "tests/admin/admin_fixture.h"

namespace courier {
namespace {

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

// docs/apns.md "Pending push": an enqueue while a push is pending reports that push.
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

}  // namespace
}  // namespace courier
