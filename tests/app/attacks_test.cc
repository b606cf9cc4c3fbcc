// Issue #11 items 2 and 3 reproduced as an attacker would, against the real
// `courier` binary (tests/support/child_server.h): an enrollment takeover by a
// fresh identity, a TokenUpdate with no Authenticate, an identity from one
// enrollment token sent for another user's device, and commands built to
// wedge a device's queue. Each attack is checked for what the attacker gets
// and for what the server has stored afterwards (admin API, fake APNs, the
// victim's own view). The in-process versions are tests/device/rebinding_test.cc and
// tests/http/input_limits_test.cc (InputLimitsApi).
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "certs/pkcs.h"
#include "certs/x509.h"
#include "common/encoding.h"
#include "tests/support/checkin_messages.h"
#include "tests/support/child_server.h"
#include "tests/support/temp_dir.h"

namespace courier {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

using test::bootstrap_of;
using test::checkin;

constexpr char kBootstrap[] = "VICTIM-BOOTSTRAP-SECRET";

class Attacks : public ::testing::Test {
  protected:
    void start(std::vector<std::string> flags = {}) {
        std::string err;
        server_ = test::ChildServer::create(dir_.path(), &err);
        ASSERT_TRUE(server_) << err;
        ASSERT_TRUE(server_->start(std::move(flags), &err)) << err;
        ASSERT_TRUE(server_->import_push_cert(&err)) << err;
    }

    // Whether an answer carries the victim's bootstrap token in any form.
    static bool leaks_bootstrap(const sim::HttpReply& r) {
        if (r.body.find(kBootstrap) != std::string::npos) return true;
        if (r.body.find(base64_encode(kBootstrap)) != std::string::npos) return true;
        auto d = plist::parse_dict(r.body);
        return d.is_ok() && d->find_data("BootstrapToken") != nullptr;
    }
    static std::string sha256_of(const sim::SimDevice& d) {
        auto c = certs::cert_from_pem(d.config().identity_cert_pem);
        return c.is_ok() ? certs::cert_sha256_hex(c->get()) : "";
    }

    json::object get_json(const std::string& path) {
        auto r = server_->api("GET", path);
        EXPECT_EQ(r.status, 200) << path << ": " << r.body << r.error;
        auto v = json::parse(r.body);
        return v.is_object() ? v.as_object() : json::object{};
    }
    // The "items" of a list ([] when the answer has none).
    json::array items(const std::string& path) {
        json::object o = get_json(path);
        const json::value* v = o.if_contains("items");
        return v && v->is_array() ? v->as_array() : json::array{};
    }
    std::string binding_state(const std::string& id, const std::string& sha) {
        for (const auto& i : items("/v1/devices/" + id + "/bindings"))
            if (i.as_object().at("cert_sha256").as_string() == sha)
                return std::string(i.as_object().at("state").as_string());
        return "absent";
    }
    // POST /v1/commands of a DeviceLock to `id`; its CommandUUID.
    std::string lock(const std::string& id) {
        auto r = server_->api("POST", "/v1/commands",
                              R"({"targets":[")" + id +
                                  R"("],"command":{"RequestType":"DeviceLock","PIN":"123456",)"
                                  R"("Message":"Call IT"}})");
        EXPECT_EQ(r.status, 201) << r.body << r.error;
        if (r.status != 201) return "";
        return std::string(json::parse(r.body).as_object().at("command_uuid").as_string());
    }
    // Pushes the fake APNs has received, by token (hex).
    std::vector<std::string> pushed_tokens() {
        std::vector<std::string> out;
        for (const auto& p : server_->apns().requests()) out.push_back(p.token);
        return out;
    }

    // An identity from `GET /enroll?token=T` of the child, for `udid`.
    std::unique_ptr<sim::SimDevice> enroll_with_token(const std::string& token,
                                                      const std::string& udid) {
        auto r = sim::http_get(server_->url() + "/enroll?token=" + token, server_->ca_file());
        EXPECT_EQ(r.status, 200) << r.body << r.error;
        auto content = certs::cms_attached_content(r.body);
        EXPECT_TRUE(content.is_ok());
        if (!content.is_ok()) return nullptr;
        auto profile = plist::parse_dict(*content);
        EXPECT_TRUE(profile.is_ok());
        if (!profile.is_ok() || !profile->find_array("PayloadContent")) return nullptr;
        for (const auto& p : *profile->find_array("PayloadContent")) {
            const plist::Dict* d = p.as_dict();
            if (!d || !d->find_string("PayloadType") ||
                *d->find_string("PayloadType") != "com.apple.security.pkcs12")
                continue;
            auto id = certs::parse_pkcs12(d->find_data("PayloadContent")->bytes,
                                          *d->find_string("Password"));
            EXPECT_TRUE(id.is_ok());
            if (!id.is_ok()) return nullptr;
            sim::DeviceConfig cfg;
            cfg.server_url = server_->url();
            cfg.ca_file = server_->ca_file();
            cfg.identity_cert_pem = certs::cert_to_pem(id->cert.get());
            cfg.identity_key_pem = certs::key_to_pem(id->key.get());
            cfg.udid = udid;
            cfg.topic = server_->topic();
            return std::make_unique<sim::SimDevice>(cfg);
        }
        ADD_FAILURE() << "profile without a PKCS#12 identity";
        return nullptr;
    }
    std::string new_token() {
        auto r = server_->api("POST", "/v1/enrollment-tokens", R"({"uses":1})");
        EXPECT_EQ(r.status, 201) << r.body;
        return r.status == 201
                   ? std::string(json::parse(r.body).as_object().at("token").as_string())
                   : "";
    }

    TempDir dir_;
    std::unique_ptr<test::ChildServer> server_;
};

// ---- item 2: enrollment takeover ------------------------------------------------

TEST_F(Attacks, TakeoverByAFreshIdentityGetsNoSecretNoCommandAndNoPush) {
    start();
    auto victim = server_->device("UDID-VICTIM");
    ASSERT_EQ(victim->authenticate().status, 200);
    ASSERT_EQ(victim->token_update().status, 200);
    ASSERT_EQ(checkin(*victim, "SetBootstrapToken", kBootstrap).status, 200);
    std::string serial =
        std::string(get_json("/v1/devices/UDID-VICTIM").at("serial_number").as_string());

    // The attacker: another identity from /enroll, sent for the victim's UDID.
    auto attacker = server_->device("UDID-VICTIM");
    ASSERT_NE(sha256_of(*attacker), sha256_of(*victim));
    auto r = attacker->authenticate();
    EXPECT_EQ(r.status, 400) << r.body << r.error;
    EXPECT_FALSE(leaks_bootstrap(r));
    r = checkin(*attacker, "GetBootstrapToken");
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_FALSE(leaks_bootstrap(r)) << r.body;
    r = attacker->token_update();
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_FALSE(leaks_bootstrap(r));
    std::optional<sim::ReceivedCommand> next;
    r = attacker->idle(&next);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_FALSE(leaks_bootstrap(r));
    EXPECT_FALSE(next.has_value());

    // Stored: the attacker's certificate pending, the victim's active; the
    // device's facts are the victim's; the attempt is on the timeline.
    EXPECT_EQ(binding_state("UDID-VICTIM", sha256_of(*attacker)), "pending");
    EXPECT_EQ(binding_state("UDID-VICTIM", sha256_of(*victim)), "active");
    auto dev = get_json("/v1/devices/UDID-VICTIM");
    EXPECT_EQ(dev.at("serial_number").as_string(), serial);
    EXPECT_EQ(dev.at("token_valid"), json::value(true));
    EXPECT_NE(server_->api("GET", "/v1/devices/UDID-VICTIM/timeline")
                  .body.find("pending an administrator's approval"),
              std::string::npos);

    // The victim keeps working: its command and its push, none for the attacker.
    EXPECT_EQ(victim->idle(&next).status, 200);
    EXPECT_FALSE(next.has_value());
    std::string uuid = lock("UDID-VICTIM");
    ASSERT_TRUE(server_->apns().wait_for([](const auto& s) { return !s.requests.empty(); }, 20s));
    for (const auto& token : pushed_tokens()) {
        EXPECT_EQ(token, victim->token_hex());
        EXPECT_NE(token, attacker->token_hex());
    }
    // The attacker polls again after the push: still nothing.
    EXPECT_EQ(attacker->idle(&next).status, 400);
    EXPECT_FALSE(next.has_value());
    ASSERT_EQ(victim->idle(&next).status, 200);
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(next->request_type, "DeviceLock");
    EXPECT_EQ(next->uuid, uuid);
    ASSERT_EQ(victim->report("Acknowledged", uuid, &next).status, 200);
    EXPECT_EQ(get_json("/v1/commands/" + uuid)
                  .at("targets")
                  .as_object()
                  .at("UDID-VICTIM")
                  .as_object()
                  .at("status")
                  .as_string(),
              "acknowledged");
    EXPECT_EQ(bootstrap_of(checkin(*victim, "GetBootstrapToken")), kBootstrap)
        << "the victim's bootstrap token is still stored for it";
    EXPECT_EQ(binding_state("UDID-VICTIM", sha256_of(*attacker)), "pending");
}

TEST_F(Attacks, TokenUpdateWithNoAuthenticateCreatesNoEnrollment) {
    start();
    auto attacker = server_->device("UDID-NEVER-AUTHENTICATED");
    auto r = attacker->token_update();
    EXPECT_EQ(r.status, 400) << r.body << r.error;
    EXPECT_EQ(server_->api("GET", "/v1/devices/UDID-NEVER-AUTHENTICATED").status, 404);
    EXPECT_EQ(server_->api("GET", "/v1/devices/UDID-NEVER-AUTHENTICATED/bindings").status, 404);
    EXPECT_EQ(items("/v1/devices").size(), 0u);
}

TEST_F(Attacks, AnIdentityFromOneTokenCannotTakeAnotherUsersDevice) {
    start({"--enroll-open=false"});
    std::string token_a = new_token(), token_b = new_token();
    // User B's device, enrolled with token B.
    auto victim = enroll_with_token(token_b, "UDID-USER-B");
    ASSERT_TRUE(victim);
    ASSERT_EQ(victim->authenticate().status, 200);
    ASSERT_EQ(victim->token_update().status, 200);
    ASSERT_EQ(checkin(*victim, "SetBootstrapToken", kBootstrap).status, 200);
    // User A enrolls their own device X with token A, then sends that
    // identity for user B's device and for a new id.
    auto own = enroll_with_token(token_a, "UDID-USER-A");
    ASSERT_TRUE(own);
    ASSERT_EQ(own->authenticate().status, 200);
    for (const std::string target : {"UDID-USER-B", "UDID-USER-A-2"}) {
        sim::DeviceConfig cfg = own->config();
        cfg.udid = target;
        sim::SimDevice attacker(cfg);
        auto r = attacker.authenticate();
        EXPECT_EQ(r.status, 400) << target << ": " << r.body << r.error;
        r = checkin(attacker, "GetBootstrapToken");
        EXPECT_EQ(r.status, 400) << target;
        EXPECT_FALSE(leaks_bootstrap(r)) << r.body;
        EXPECT_EQ(attacker.token_update().status, 400) << target;
    }
    // An identity from the enrollment CA that no token-gated /enroll issued
    // (one handed out while enrollment was still open) binds nothing either.
    auto untokened = server_->device("UDID-USER-B");
    auto r = untokened->authenticate();
    EXPECT_EQ(r.status, 400) << r.body << r.error;
    EXPECT_NE(r.body.find("token"), std::string::npos) << r.body;
    r = checkin(*untokened, "GetBootstrapToken");
    EXPECT_EQ(r.status, 400);
    EXPECT_FALSE(leaks_bootstrap(r)) << r.body;
    // Stored: B's device bound to B's identity only, no enrollment for the new
    // id, A's identity still A's.
    auto b_bindings = items("/v1/devices/UDID-USER-B/bindings");
    ASSERT_EQ(b_bindings.size(), 1u);
    EXPECT_EQ(b_bindings.at(0).as_object().at("cert_sha256").as_string(), sha256_of(*victim));
    EXPECT_EQ(b_bindings.at(0).as_object().at("state").as_string(), "active");
    EXPECT_EQ(server_->api("GET", "/v1/devices/UDID-USER-A-2").status, 404);
    EXPECT_EQ(binding_state("UDID-USER-A", sha256_of(*own)), "active");
    std::optional<sim::ReceivedCommand> next;
    EXPECT_EQ(victim->idle(&next).status, 200);
    EXPECT_EQ(bootstrap_of(checkin(*victim, "GetBootstrapToken")), kBootstrap);
}

// ---- item 3: commands that would wedge a device's queue ---------------------------

std::string raw_lock(const std::string& uuid, const std::string& message) {
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict>"
           "<key>Command</key><dict><key>RequestType</key><string>DeviceLock</string>"
           "<key>Message</key><string>" +
           message + "</string></dict><key>CommandUUID</key><string>" + uuid +
           "</string></dict></plist>\n";
}

TEST_F(Attacks, CommandsThatWouldWedgeTheQueueAre400AndTheNextCommandIsDelivered) {
    start();
    auto dev = server_->device("UDID-WEDGE");
    ASSERT_EQ(dev->authenticate().status, 200);
    ASSERT_EQ(dev->token_update().status, 200);
    const std::string target = R"({"targets":["UDID-WEDGE"],)";
    const std::string big_uuid(1 << 20, 'w');

    struct Attempt {
        const char* what;
        std::string method, path, body;
    };
    std::vector<Attempt> attempts{
        {"NUL in a JSON string", "POST", "/v1/commands",
         target + R"("command":{"RequestType":"DeviceLock","Message":"a\u0000b"}})"},
        {"&#1; in a raw plist", "PUT", "/v1/enqueue/UDID-WEDGE", raw_lock("wedge-ctl", "a&#1;b")},
        {"NUL in a JSON CommandUUID", "POST", "/v1/commands",
         target + R"("command_uuid":"wedge\u0000nul","command":{"RequestType":"DeviceLock"}})"},
        {"&#0; in a plist CommandUUID", "PUT", "/v1/enqueue/UDID-WEDGE",
         raw_lock("wedge&#0;nul", "hi")},
        {"raw NUL byte in a plist CommandUUID", "PUT", "/v1/enqueue/UDID-WEDGE",
         raw_lock(std::string("wedge\0raw", 9), "hi")},
        {"1 MB CommandUUID in a plist", "PUT", "/v1/enqueue/UDID-WEDGE", raw_lock(big_uuid, "hi")},
        {"1 MB CommandUUID in JSON", "POST", "/v1/commands",
         target + R"("command_uuid":")" + big_uuid +
             R"(","command":{"RequestType":"DeviceLock"}})"},
    };
    for (const auto& a : attempts) {
        auto r = server_->api(a.method, a.path, a.body);
        EXPECT_EQ(r.status, 400) << a.what << ": " << r.body.substr(0, 300) << r.error;
        EXPECT_NE(r.body.find("\"error\""), std::string::npos) << a.what;
    }

    // Stored: nothing queued, nothing in the history, nothing pushed.
    EXPECT_EQ(get_json("/v1/devices/UDID-WEDGE").at("queued"), json::value(0));
    EXPECT_EQ(items("/v1/commands?device=UDID-WEDGE").size(), 0u);
    EXPECT_EQ(items("/v1/devices/UDID-WEDGE/commands").size(), 0u);
    EXPECT_TRUE(server_->apns().requests().empty());

    // A valid command is the first the device receives.
    std::string uuid = lock("UDID-WEDGE");
    ASSERT_FALSE(uuid.empty());
    ASSERT_TRUE(server_->apns().wait_for([](const auto& s) { return !s.requests.empty(); }, 20s));
    std::optional<sim::ReceivedCommand> next;
    auto r = dev->idle(&next);
    ASSERT_EQ(r.status, 200) << r.body << r.error;
    ASSERT_TRUE(next.has_value()) << r.body;
    EXPECT_EQ(next->uuid, uuid);
    EXPECT_EQ(next->request_type, "DeviceLock");
    ASSERT_EQ(dev->report("Acknowledged", uuid, &next).status, 200);
    EXPECT_FALSE(next.has_value()) << "nothing else was queued";
    auto history = items("/v1/commands?device=UDID-WEDGE");
    ASSERT_EQ(history.size(), 1u);
    EXPECT_EQ(history.at(0).as_object().at("command_uuid").as_string(), uuid);
}

}  // namespace
}  // namespace courier
