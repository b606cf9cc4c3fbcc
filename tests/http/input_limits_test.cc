// docs/security.md "Input limits" held over HTTP: hostile bodies from a device and from an
// administrator are refused with a 400 that says why, change nothing, and
// never stall other connections. The attacks of issue #11 run against the
// real `courier` binary; the admin API refusals against an in-process server.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <future>
#include <string>

#include "tests/support/child_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_server.h"

namespace courier {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

// An Idle report padded with `keys` extra keys: the shape that took 33 s on
// an I/O thread when Dict::set scanned the dict on every insert.
std::string wide_idle(const std::string& udid, size_t keys) {
    std::string body =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>"
        "<key>Status</key><string>Idle</string><key>UDID</key><string>" +
        udid + "</string>";
    body.reserve(keys * 28 + 256);
    for (size_t i = 0; i < keys; ++i) body += "<key>pad" + std::to_string(i) + "</key><true/>";
    return body + "</dict></plist>\n";
}

// ---- against the real binary ------------------------------------------------

TEST(InputLimitsAttack, WideIdleIs400AndHealthzAnswersMeanwhile) {
    TempDir dir;
    std::string err;
    auto server = test::ChildServer::create(dir.path(), &err);
    ASSERT_TRUE(server) << err;
    // One I/O thread: an Idle parsed there would hold every other connection.
    ASSERT_TRUE(server->start({"--io-threads", "1"}, &err)) << err;
    ASSERT_TRUE(server->import_push_cert(&err)) << err;
    auto dev = server->device("UDID-WIDE");
    ASSERT_EQ(dev->authenticate().status, 200);
    ASSERT_EQ(dev->token_update().status, 200);

    std::string body = wide_idle("UDID-WIDE", 200'000);
    auto attack = std::async(std::launch::async, [&] {
        return dev->put("/mdm", body, "application/x-apple-aspen-mdm");
    });
    // Bounded waits, not timings: each request gets up to 20 s to answer.
    auto health = sim::http_get(server->url() + "/healthz", server->ca_file(), 20'000);
    EXPECT_EQ(health.status, 200) << health.error;
    ASSERT_EQ(attack.wait_for(60s), std::future_status::ready);
    auto r = attack.get();
    EXPECT_EQ(r.status, 400) << r.error << r.body;
    EXPECT_NE(r.body.find("more than 10000 keys"), std::string::npos) << r.body;
    // The device is still served normally afterwards.
    std::optional<sim::ReceivedCommand> next;
    EXPECT_EQ(dev->idle(&next).status, 200);
}

// ---- the admin API -----------------------------------------------------------

class InputLimitsApi : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string err;
        server_ = test::TestServer::start({}, &err);
        ASSERT_TRUE(server_) << err;
        std::string e2;
        dev_ = server_->enrolled_device("UDID-LIM", sim::AuthMode::kTlsClientCert, &e2);
        ASSERT_TRUE(dev_) << e2;
    }
    test::HttpResult api(const std::string& method, const std::string& path,
                         const std::string& body = {}) {
        return server_->api(method, path, body);
    }
    int64_t queued() {
        auto e = server_->app().store().enrollment("UDID-LIM");
        return e.is_ok() ? e->queued : -1;
    }
    std::unique_ptr<test::TestServer> server_;
    std::unique_ptr<sim::SimDevice> dev_;
};

std::string raw_command(const std::string& uuid, const std::string& extra = "") {
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>"
           "<key>Command</key><dict><key>RequestType</key><string>ProfileList</string>" +
           extra + "</dict><key>CommandUUID</key><string>" + uuid + "</string></dict></plist>\n";
}

TEST_F(InputLimitsApi, ForbiddenCharactersAre400AndNothingIsQueued) {
    auto r = api(
        "POST", "/v1/commands",
        R"({"targets":["UDID-LIM"],"push":false,)"
        R"("command":{"RequestType":"Settings","Settings":[{"Item":"DeviceName","DeviceName":"a\u0000b"}]}})");
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("XML 1.0 forbids"), std::string::npos) << r.body;
    for (const char* bad : {"&#1;", "&#0;", "&#xFFFF;"}) {
        auto e =
            api("PUT", "/v1/enqueue/UDID-LIM?nopush=1",
                raw_command("u-1", std::string("<key>Message</key><string>a") + bad + "</string>"));
        EXPECT_EQ(e.status, 400) << bad << ": " << e.body;
    }
    EXPECT_EQ(queued(), 0);
}

TEST_F(InputLimitsApi, CommandUuidOutsideTheAlphabetOrLengthIs400) {
    for (const std::string& bad : {std::string(129, 'a'), std::string(1 << 19, 'a'),
                                   std::string("a b"), std::string("a&#1;b")}) {
        EXPECT_EQ(api("PUT", "/v1/enqueue/UDID-LIM?nopush=1", raw_command(bad)).status, 400);
        json::object body{{"targets", json::array{"UDID-LIM"}},
                          {"push", false},
                          {"command_uuid", bad},
                          {"command", json::object{{"RequestType", "ProfileList"}}}};
        EXPECT_EQ(api("POST", "/v1/commands", json::serialize(body)).status, 400);
    }
    EXPECT_EQ(queued(), 0);
    EXPECT_EQ(
        api("PUT", "/v1/enqueue/UDID-LIM?nopush=1", raw_command(std::string(128, 'a'))).status,
        200);
    EXPECT_EQ(queued(), 1);
}

TEST_F(InputLimitsApi, DuplicateJsonKeysAre400) {
    auto r = api("POST", "/v1/commands",
                 R"({"targets":["UDID-LIM"],"push":false,"push":true,)"
                 R"("command":{"RequestType":"ProfileList"}})");
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("duplicate key 'push'"), std::string::npos) << r.body;
    EXPECT_EQ(api("POST", "/v1/enrollment-tokens", R"({"uses":1,"uses":5})").status, 400);
    EXPECT_EQ(queued(), 0);
}

TEST_F(InputLimitsApi, ListLimitOutsideOneToThousandIs400OnEveryPagedList) {
    for (std::string path : {"/v1/devices", "/v1/commands", "/v1/devices/UDID-LIM/commands",
                             "/v1/devices/UDID-LIM/timeline"}) {
        for (const char* bad : {"0", "-1", "1001", "99999999999999999999", "x"})
            EXPECT_EQ(api("GET", path + "?limit=" + bad).status, 400) << path << " " << bad;
        EXPECT_EQ(api("GET", path + "?limit=1").status, 200) << path;
        EXPECT_EQ(api("GET", path + "?limit=1000").status, 200) << path;
    }
}

TEST_F(InputLimitsApi, ExpiryInThePastIs400AndNothingIsQueued) {
    auto r = api("POST", "/v1/commands",
                 R"({"targets":["UDID-LIM"],"push":false,"expires_at":"2001-01-01T00:00:00Z",)"
                 R"("command":{"RequestType":"ProfileList"}})");
    EXPECT_EQ(r.status, 400) << r.body;
    auto e = api("PUT", "/v1/enqueue/UDID-LIM?nopush=1&expires=2001-01-01T00:00:00Z",
                 raw_command("past-1"));
    EXPECT_EQ(e.status, 400) << e.body;
    EXPECT_EQ(queued(), 0);
    auto t = api("POST", "/v1/enrollment-tokens", R"({"expires_at":"2001-01-01T00:00:00Z"})");
    EXPECT_EQ(t.status, 400) << t.body;
    auto list = api("GET", "/v1/enrollment-tokens");
    EXPECT_EQ(list.body.find("2001-01-01"), std::string::npos) << list.body;
    // The future is still fine.
    EXPECT_EQ(
        api("POST", "/v1/enrollment-tokens", R"({"expires_at":"2999-01-01T00:00:00Z"})").status,
        201);
}

TEST(InputLimitsEnroll, HeadNeverConsumesAToken) {
    std::string err;
    auto server = test::TestServer::start({.enroll_open = false}, &err);
    ASSERT_TRUE(server) << err;
    auto r = server->api("POST", "/v1/enrollment-tokens", R"({"uses":1})");
    ASSERT_EQ(r.status, 201) << r.body;
    std::string token(json::parse(r.body).as_object().at("token").as_string());
    test::HttpOptions o;
    o.ca_file = server->ca_file();
    for (int i = 0; i < 3; ++i) {
        auto head =
            test::http_request("HEAD", server->https_url() + "/enroll?token=" + token, {}, {}, o);
        EXPECT_EQ(head.status, 200) << head.error;
    }
    auto prof = server->fetch_profile("?token=" + token);
    EXPECT_TRUE(prof.is_ok()) << prof.status().to_string();
}

// ---- device facts and user channels ---------------------------------------------

std::string checkin(const std::string& message_type, const std::string& udid, plist::Dict extra) {
    plist::Dict d = std::move(extra);
    d.set("UDID", udid);
    d.set("MessageType", message_type);
    return plist::write_xml(plist::Value(std::move(d)));
}

TEST_F(InputLimitsApi, DeviceFactsAreKeptToOneKibAndFlagged) {
    plist::Dict facts;
    facts.set("Topic", server_->topic());
    // 600 KB of a two-byte character: the cut must not split one.
    std::string name;
    for (int i = 0; i < 300'000; ++i) name += "\xc3\xa9";
    facts.set("DeviceName", name);
    facts.set("SerialNumber", "C02FACTS0001");
    auto r = dev_->put("/checkin", checkin("Authenticate", "UDID-LIM", facts),
                       "application/x-apple-aspen-mdm-checkin");
    ASSERT_EQ(r.status, 200) << r.error << r.body;
    auto d = api("GET", "/v1/devices/UDID-LIM");
    ASSERT_EQ(d.status, 200);
    auto o = json::parse(d.body).as_object();
    std::string stored(o.at("device_name").as_string());
    EXPECT_EQ(stored.size(), 1024u);
    EXPECT_EQ(stored, name.substr(0, 1024));
    EXPECT_TRUE(plist::is_xml_text(stored)) << "cut inside a character";
    EXPECT_EQ(o.at("serial_number").as_string(), "C02FACTS0001");
    EXPECT_EQ(o.at("facts_truncated"), json::value(true));

    // An odd cut point: 1023 ASCII bytes then a two-byte character.
    facts.set("DeviceName", std::string(1023, 'n') + "\xc3\xa9" + std::string(10, 'x'));
    ASSERT_EQ(dev_->put("/checkin", checkin("Authenticate", "UDID-LIM", facts),
                        "application/x-apple-aspen-mdm-checkin")
                  .status,
              200);
    o = json::parse(api("GET", "/v1/devices/UDID-LIM").body).as_object();
    EXPECT_EQ(std::string(o.at("device_name").as_string()), std::string(1023, 'n'));

    // Facts within the limit clear the flag.
    facts.set("DeviceName", "Short name");
    ASSERT_EQ(dev_->put("/checkin", checkin("Authenticate", "UDID-LIM", facts),
                        "application/x-apple-aspen-mdm-checkin")
                  .status,
              200);
    o = json::parse(api("GET", "/v1/devices/UDID-LIM").body).as_object();
    EXPECT_EQ(o.at("device_name").as_string(), "Short name");
    EXPECT_EQ(o.at("facts_truncated"), json::value(false));
}

// A Topic over 1 KiB is refused with a 400 on the message that carries it
// (mdm::kMaxTopicBytes, docs/device-endpoints.md) and nothing is stored: a
// device cannot store megabytes per enrollment row through it.
TEST_F(InputLimitsApi, TopicOverOneKibIs400OnAuthenticateAndTokenUpdate) {
    const std::string huge = "com.apple.mgmt." + std::string(600'000, 't');
    const std::string just_over = "com.apple.mgmt." + std::string(1024 - 15 + 1, 't');
    auto topic_of = [&] {
        auto e = server_->app().store().enrollment("UDID-LIM");
        return e.is_ok() ? e->topic : std::string("<no enrollment>");
    };
    const std::string before = topic_of();
    ASSERT_EQ(before, server_->topic());
    for (const std::string& topic : {huge, just_over}) {
        plist::Dict a;
        a.set("Topic", topic);
        a.set("SerialNumber", "C02TOPIC0001");
        auto r = dev_->put("/checkin", checkin("Authenticate", "UDID-LIM", std::move(a)),
                           "application/x-apple-aspen-mdm-checkin");
        EXPECT_EQ(r.status, 400) << r.body.substr(0, 200);
        EXPECT_NE(r.body.find("Topic is"), std::string::npos) << r.body.substr(0, 200);
        plist::Dict t;
        t.set("Topic", topic);
        t.set("Token", plist::Data{"token-for-long-topic"});
        t.set("PushMagic", "magic");
        r = dev_->put("/checkin", checkin("TokenUpdate", "UDID-LIM", std::move(t)),
                      "application/x-apple-aspen-mdm-checkin");
        EXPECT_EQ(r.status, 400) << r.body.substr(0, 200);
        EXPECT_TRUE(topic_of() == before)
            << "nothing stored; topic now " << topic_of().size() << " bytes";
    }
    auto d = json::parse(api("GET", "/v1/devices/UDID-LIM").body).as_object();
    EXPECT_NE(d.at("serial_number"), json::value("C02TOPIC0001"));
    // Exactly 1 KiB is still a topic (none is that long, but the limit is the limit).
    plist::Dict ok;
    ok.set("Topic", "com.apple.mgmt." + std::string(1024 - 15, 't'));
    ok.set("Token", plist::Data{"token-at-the-limit"});
    ok.set("PushMagic", "magic");
    auto r = dev_->put("/checkin", checkin("TokenUpdate", "UDID-LIM", std::move(ok)),
                       "application/x-apple-aspen-mdm-checkin");
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(topic_of().size(), 1024u);
}

TEST_F(InputLimitsApi, NoNewUserChannelBeyondOneThousand) {
    auto& store = server_->app().store();
    auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    for (int i = 0; i < db::kMaxUserChannels; ++i) {
        db::TokenUpdateInput in;
        in.device_id = "UDID-LIM";
        in.user_id = "user-" + std::to_string(i);
        in.id = in.device_id + ":" + in.user_id;
        in.type = "user";
        in.topic = server_->topic();
        in.push_token = "tok" + std::to_string(i);
        in.push_magic = "magic";
        ASSERT_TRUE(store.apply_token_update(in, now).is_ok());
    }
    ASSERT_EQ(*store.user_channel_count("UDID-LIM"), db::kMaxUserChannels);
    auto user_update = [&](const std::string& user) {
        plist::Dict d;
        d.set("UserID", user);
        d.set("UserShortName", user);
        d.set("Topic", server_->topic());
        d.set("Token", plist::Data{"user-token"});
        d.set("PushMagic", "magic");
        return dev_->put("/checkin", checkin("TokenUpdate", "UDID-LIM", std::move(d)),
                         "application/x-apple-aspen-mdm-checkin");
    };
    auto fresh = user_update("user-new");
    EXPECT_EQ(fresh.status, 400) << fresh.body;
    EXPECT_NE(fresh.body.find("user channels"), std::string::npos) << fresh.body;
    EXPECT_EQ(api("GET", "/v1/devices/UDID-LIM:user-new").status, 404);
    EXPECT_EQ(user_update("user-7").status, 200) << "an existing channel keeps working";
    plist::Dict ua;
    ua.set("UserID", "user-new");
    ua.set("UserShortName", "user-new");
    EXPECT_EQ(dev_->put("/checkin", checkin("UserAuthenticate", "UDID-LIM", std::move(ua)),
                        "application/x-apple-aspen-mdm-checkin")
                  .status,
              410);
    EXPECT_EQ(*store.user_channel_count("UDID-LIM"), db::kMaxUserChannels);
}

}  // namespace
}  // namespace courier
