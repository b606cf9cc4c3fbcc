// The admin API's commands end to end: NanoMDM's raw enqueue (run as the
// real curl command line) and POST /v1/commands with command status.
#include "tests/admin/admin_fixture.h"

namespace courier {
namespace {

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

}  // namespace
}  // namespace courier
