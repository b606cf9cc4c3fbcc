// docs/security.md "Re-binding", attacked end to end over real TLS on 127.0.0.1: a fresh
// identity sent for a victim's UDID, a TokenUpdate with no Authenticate, a
// superseded certificate still presented, identities from enrollment tokens
// (issue #11 item 2). Each refusal is 400 (never 401).
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "certs/authority.h"
#include "certs/pkcs.h"
#include "common/encoding.h"
#include "db/sqlite/sqlite_statement.h"
#include "db/store.h"
#include "tests/support/checkin_messages.h"
#include "tests/support/test_server.h"

namespace courier {
namespace {

using namespace std::chrono_literals;
using test::bootstrap_of;
using test::checkin;
using test::TestServer;
namespace json = boost::json;

class Rebinding : public ::testing::Test {
  protected:
    void SetUp() override { start({}); }
    void start(test::TestServerOptions o) {
        server_.reset();
        o.clock = &clock_;
        std::string err;
        server_ = TestServer::start(o, &err);
        ASSERT_TRUE(server_) << err;
    }
    db::Store& store() { return server_->app().store(); }

    test::PemPair fresh_identity(const std::string& query = "") {
        auto p = server_->fetch_profile(query);
        EXPECT_TRUE(p.is_ok()) << p.status().to_string();
        return p.is_ok() ? p->identity : test::PemPair{};
    }
    std::unique_ptr<sim::SimDevice> device(const std::string& udid, const test::PemPair& id) {
        return std::make_unique<sim::SimDevice>(
            server_->device_config(udid, id, sim::AuthMode::kTlsClientCert));
    }
    static std::string sha256_of(const test::PemPair& id) {
        auto c = certs::cert_from_pem(id.cert_pem);
        return c.is_ok() ? certs::cert_sha256_hex(c->get()) : "";
    }
    json::array bindings(const std::string& id) {
        auto r = server_->api("GET", "/v1/devices/" + id + "/bindings");
        EXPECT_EQ(r.status, 200) << r.body;
        auto v = json::parse(r.body);
        return v.as_object().at("items").as_array();
    }
    static const json::object* find(const json::array& items, const std::string& sha) {
        for (const auto& i : items)
            if (i.as_object().at("cert_sha256").as_string() == sha) return &i.as_object();
        return nullptr;
    }
    double superseded_total() {
        auto r = server_->api("GET", "/metrics");
        std::string key = "courier_superseded_identity_total ";
        auto at = r.body.find("\n" + key);
        if (at == std::string::npos) return 0;
        return std::stod(r.body.substr(at + 1 + key.size()));
    }
    int timeline_mentions(const std::string& id, const std::string& text) {
        int n = 0;
        auto events = store().timeline(id, 1000);
        for (const auto& e : events.value()) n += e.detail.find(text) != std::string::npos;
        return n;
    }

    ManualClock clock_{SystemClock::instance().now()};
    std::unique_ptr<TestServer> server_;
};

TEST_F(Rebinding, AFreshIdentityForAVictimsUdidIsPendingAndLeaksNothing) {
    auto victim = server_->enrolled_device("UDID-V");
    ASSERT_TRUE(victim);
    ASSERT_EQ(checkin(*victim, "SetBootstrapToken", "VICTIM-BOOTSTRAP").status, 200);
    std::string victim_token = store().enrollment("UDID-V")->push_token;

    auto attacker_id = fresh_identity();
    auto attacker = device("UDID-V", attacker_id);
    auto r = attacker->authenticate();
    EXPECT_EQ(r.status, 400) << r.body << r.error;
    EXPECT_NE(r.body.find("approval"), std::string::npos) << r.body;
    r = checkin(*attacker, "GetBootstrapToken");
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.body.find("VICTIM-BOOTSTRAP"), std::string::npos);
    EXPECT_EQ(bootstrap_of(r), "");
    EXPECT_EQ(attacker->token_update().status, 400);
    std::optional<sim::ReceivedCommand> next;
    EXPECT_EQ(attacker->idle(&next).status, 400);

    // Nothing changed for the victim; the attempt is shown for an admin.
    auto e = store().enrollment("UDID-V");
    EXPECT_EQ(e->push_token, victim_token);
    EXPECT_TRUE(e->token_valid);
    auto items = bindings("UDID-V");
    ASSERT_EQ(items.size(), 2u);
    const json::object* pending = find(items, sha256_of(attacker_id));
    ASSERT_NE(pending, nullptr);
    EXPECT_EQ(pending->at("state").as_string(), "pending");
    EXPECT_TRUE(pending->at("pending").as_bool());
    EXPECT_EQ(timeline_mentions("UDID-V", "pending an administrator's approval"), 1);
    EXPECT_EQ(victim->idle(&next).status, 200);
    EXPECT_EQ(bootstrap_of(checkin(*victim, "GetBootstrapToken")), "VICTIM-BOOTSTRAP");
}

TEST_F(Rebinding, ApprovedRebindingSupersedesAndTheOldCertificateIsRefusedAndCounted) {
    auto old_id = fresh_identity();
    auto old_dev = device("UDID-W", old_id);
    ASSERT_EQ(old_dev->authenticate().status, 200);
    ASSERT_EQ(old_dev->token_update().status, 200);
    ASSERT_EQ(checkin(*old_dev, "SetBootstrapToken", "OLD-BOOTSTRAP").status, 200);

    auto new_id = fresh_identity();
    std::string new_sha = sha256_of(new_id);
    auto new_dev = device("UDID-W", new_id);
    ASSERT_EQ(new_dev->authenticate().status, 400);
    EXPECT_EQ(
        server_->api("POST", "/v1/devices/UDID-W/bindings/" + std::string(64, 'f') + "/approve")
            .status,
        404);
    EXPECT_EQ(server_->api("POST", "/v1/devices/UDID-W/bindings/not-hex/approve").status, 400);
    EXPECT_EQ(server_->api("POST", "/v1/devices/NOPE/bindings/" + new_sha + "/approve").status,
              404);
    auto a = server_->api("POST", "/v1/devices/UDID-W/bindings/" + new_sha + "/approve");
    ASSERT_EQ(a.status, 200) << a.body;
    ASSERT_EQ(new_dev->authenticate().status, 200);
    ASSERT_EQ(new_dev->token_update().status, 200);
    EXPECT_EQ(bootstrap_of(checkin(*new_dev, "GetBootstrapToken")), "")
        << "the old identity's bootstrap token never reaches the new one";
    EXPECT_EQ(hex_encode(store().enrollment("UDID-W")->push_token), new_dev->token_hex());

    // The old certificate: refused, counted on every use, alarmed once.
    double before = superseded_total();
    std::optional<sim::ReceivedCommand> next;
    EXPECT_EQ(old_dev->idle(&next).status, 400);
    EXPECT_EQ(old_dev->token_update().status, 400);
    EXPECT_EQ(old_dev->authenticate().status, 400);
    EXPECT_EQ(superseded_total() - before, 3);
    EXPECT_EQ(timeline_mentions("UDID-W", "presented again"), 1);
    EXPECT_EQ(hex_encode(store().enrollment("UDID-W")->push_token), new_dev->token_hex())
        << "the superseded certificate cannot re-point pushes";
    auto items = bindings("UDID-W");
    const json::object* old_b = find(items, sha256_of(old_id));
    ASSERT_NE(old_b, nullptr);
    EXPECT_EQ(old_b->at("state").as_string(), "superseded");
    EXPECT_TRUE(old_b->at("superseded_at").is_string());
    EXPECT_EQ(find(items, new_sha)->at("state").as_string(), "active");
    EXPECT_EQ(new_dev->idle(&next).status, 200);
}

TEST_F(Rebinding, TokenUpdateWithoutAuthenticateIs400AndCreatesNothing) {
    auto dev = device("UDID-NEW", fresh_identity());
    auto r = dev->token_update();
    EXPECT_EQ(r.status, 400) << r.body << r.error;
    EXPECT_EQ(checkin(*dev, "SetBootstrapToken", "X").status, 400);
    EXPECT_EQ(store().enrollment("UDID-NEW").status().code(), Code::kNotFound);
    EXPECT_EQ(server_->api("GET", "/v1/devices/UDID-NEW").status, 404);
    EXPECT_EQ(server_->api("GET", "/v1/devices/UDID-NEW/bindings").status, 404);
    // Authenticate, and only then the same TokenUpdate works.
    ASSERT_EQ(dev->authenticate().status, 200);
    EXPECT_EQ(dev->token_update().status, 200);
}

TEST_F(Rebinding, AWipedDeviceWhoseOldIdentityWasSilentSevenDaysRebindsAtOnce) {
    auto old_dev = device("UDID-S", fresh_identity());
    ASSERT_EQ(old_dev->authenticate().status, 200);
    ASSERT_EQ(old_dev->token_update().status, 200);
    clock_.advance(std::chrono::hours(24 * 7) - 1min);
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(old_dev->idle(&next).status, 200);  // used: the seven days start again
    clock_.advance(std::chrono::hours(24 * 7) - 1min);
    auto early = device("UDID-S", fresh_identity());
    EXPECT_EQ(early->authenticate().status, 400) << "used 7 days minus a minute ago";
    clock_.advance(2min);
    auto wiped = device("UDID-S", fresh_identity());
    EXPECT_EQ(wiped->authenticate().status, 200);
    EXPECT_EQ(old_dev->idle(&next).status, 400);
}

TEST_F(Rebinding, ARevokedBindingIsRefused) {
    auto dev = server_->enrolled_device("UDID-R");
    ASSERT_TRUE(dev);
    ASSERT_EQ(checkin(*dev, "SetBootstrapToken", "VICTIM-BOOTSTRAP").status, 200);
    std::string sha = bindings("UDID-R").at(0).as_object().at("cert_sha256").as_string().c_str();
    EXPECT_EQ(server_->api("DELETE", "/v1/devices/UDID-R/bindings/" + std::string(64, 'e')).status,
              404);
    auto r = server_->api("DELETE", "/v1/devices/UDID-R/bindings/" + sha);
    ASSERT_EQ(r.status, 200) << r.body;
    double before = superseded_total();
    std::optional<sim::ReceivedCommand> next;
    EXPECT_EQ(dev->idle(&next).status, 400);
    EXPECT_EQ(dev->authenticate().status, 400);
    EXPECT_EQ(superseded_total() - before, 2);
    EXPECT_EQ(bindings("UDID-R").at(0).as_object().at("state").as_string(), "revoked");

    // Review #1: a fresh identity for the UDID does not bind at once (the
    // latest binding was revoked just now: like one in use recently) ...
    auto fresh_id = fresh_identity();
    auto fresh = device("UDID-R", fresh_id);
    auto a = fresh->authenticate();
    EXPECT_EQ(a.status, 400) << a.body;
    EXPECT_NE(a.body.find("approval"), std::string::npos) << a.body;
    auto g = checkin(*fresh, "GetBootstrapToken");
    EXPECT_EQ(g.status, 400);
    EXPECT_EQ(bootstrap_of(g), "");
    EXPECT_EQ(find(bindings("UDID-R"), sha256_of(fresh_id))->at("state").as_string(), "pending");
    // ... and once an administrator approves it, it gets none of the secrets.
    ASSERT_EQ(
        server_->api("POST", "/v1/devices/UDID-R/bindings/" + sha256_of(fresh_id) + "/approve")
            .status,
        200);
    ASSERT_EQ(fresh->authenticate().status, 200);
    g = checkin(*fresh, "GetBootstrapToken");
    EXPECT_EQ(g.status, 200);
    EXPECT_EQ(bootstrap_of(g), "");
    EXPECT_FALSE(store().unlock_token("UDID-R")->has_value());
}

// Review #7: revoking the active binding clears its push token at once, so
// no push goes out to the revoked holder.
TEST_F(Rebinding, ARevokedActiveBindingGetsNoPush) {
    auto dev = server_->enrolled_device("UDID-P");
    ASSERT_TRUE(dev);
    auto q = server_->api("POST", "/v1/commands",
                          R"({"targets":["UDID-P"],"command":{"RequestType":"ProfileList"}})");
    ASSERT_EQ(q.status, 201) << q.body;
    size_t pushes = server_->apns().request_count();
    ASSERT_GE(pushes, 1u) << "the fake APNs sees pushes to this device";
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);  // the device came: no push is pending
    ASSERT_TRUE(next.has_value());
    std::string sha = bindings("UDID-P").at(0).as_object().at("cert_sha256").as_string().c_str();
    ASSERT_EQ(server_->api("DELETE", "/v1/devices/UDID-P/bindings/" + sha).status, 200);
    EXPECT_TRUE(store().enrollment("UDID-P")->push_token.empty());
    q = server_->api("POST", "/v1/commands",
                     R"({"targets":["UDID-P"],"command":{"RequestType":"ProfileList"}})");
    ASSERT_EQ(q.status, 201) << q.body;
    auto push = json::parse(q.body).at("targets").at("UDID-P").at("push").as_object();
    EXPECT_EQ(push.at("status").as_string(), "error") << q.body;
    EXPECT_EQ(server_->apns().request_count(), pushes) << "nothing reached APNs";
    // An explicit push (GET, the route's one method) is refused: no token.
    auto p = server_->api("GET", "/v1/push/UDID-P");
    EXPECT_EQ(p.status, 502) << p.body;  // every id enrolled, none pushed
    auto answer = json::parse(p.body).as_object();
    const auto& err = answer.at("status").at("UDID-P").as_object().at("push_error");
    EXPECT_NE(std::string(err.as_string()).find("no push token"), std::string::npos) << p.body;
    EXPECT_EQ(server_->apns().request_count(), pushes) << p.body;
}

// Review #18: a superseded holder cannot make or re-point a user channel.
TEST_F(Rebinding, ASupersededHoldersUserChannelTokenUpdateIsRefused) {
    auto old_dev = device("UDID-U", fresh_identity());
    ASSERT_EQ(old_dev->authenticate().status, 200);
    ASSERT_EQ(old_dev->token_update().status, 200);
    auto user_update = [&](sim::SimDevice& d, const std::string& user, const std::string& token) {
        plist::Dict m;
        m.set("MessageType", "TokenUpdate");
        m.set("UDID", "UDID-U");
        m.set("UserID", user);
        m.set("UserShortName", user);
        m.set("Topic", server_->topic());
        m.set("Token", plist::Data{token});
        m.set("PushMagic", "magic");
        return d.put("/checkin", plist::write_xml(plist::Value(std::move(m))),
                     "application/x-apple-aspen-mdm-checkin");
    };
    ASSERT_EQ(user_update(*old_dev, "user-1", "old-user-token").status, 200);
    clock_.advance(std::chrono::hours(24 * 8));  // the old identity went quiet
    auto new_dev = device("UDID-U", fresh_identity());
    ASSERT_EQ(new_dev->authenticate().status, 200);
    ASSERT_EQ(user_update(*new_dev, "user-1", "new-user-token").status, 200);
    EXPECT_EQ(user_update(*old_dev, "user-1", "evil-token").status, 400);
    EXPECT_EQ(user_update(*old_dev, "user-2", "evil-token").status, 400);
    EXPECT_EQ(store().enrollment("UDID-U:user-1")->push_token, "new-user-token");
    EXPECT_EQ(store().enrollment("UDID-U:user-2").status().code(), Code::kNotFound);
}

// Review #9: bindings from before migration 5 can leave a device with several
// active identities; GET …/bindings flags it for an administrator.
TEST_F(Rebinding, SeveralActiveBindingsAreFlagged) {
    auto dev = server_->enrolled_device("UDID-M");
    ASSERT_TRUE(dev);
    auto r = json::parse(server_->api("GET", "/v1/devices/UDID-M/bindings").body).as_object();
    EXPECT_EQ(r.at("multiple_active"), json::value(false));
    {  // as version 4 allowed: a second active row
        auto c = db::sqlite::Connection::open(
            (server_->data_dir() / "data" / "courier.db").string(), false, 5000);
        ASSERT_TRUE(c.is_ok()) << c.status().to_string();
        (*c)->exec("INSERT INTO cert_bindings (cert_sha256, device_id, bound_at, state) VALUES ('" +
                   std::string(64, 'd') + "', 'UDID-M', 1, 'active')");
    }
    r = json::parse(server_->api("GET", "/v1/devices/UDID-M/bindings").body).as_object();
    EXPECT_EQ(r.at("multiple_active"), json::value(true));
    EXPECT_EQ(r.at("items").as_array().size(), 2u);
}

// ---- Token-gated enrollment (--enroll-open=false) ------------------------

class TokenGatedRebinding : public Rebinding {
  protected:
    void SetUp() override { start({.enroll_open = false}); }
    std::string new_token() {
        auto r = server_->api("POST", "/v1/enrollment-tokens", R"({"uses":1})");
        EXPECT_EQ(r.status, 201) << r.body;
        return std::string(json::parse(r.body).as_object().at("token").as_string());
    }
};

TEST_F(TokenGatedRebinding, AnIdentityFromOneTokenBindsOnlyOneDeviceId) {
    auto id_a = fresh_identity("?token=" + new_token());
    ASSERT_EQ(device("UDID-A", id_a)->authenticate().status, 200);
    EXPECT_EQ(device("UDID-B", id_a)->authenticate().status, 400);
    EXPECT_EQ(store().enrollment("UDID-B").status().code(), Code::kNotFound);
    // Not even once its binding to UDID-A is revoked.
    ASSERT_EQ(server_->api("DELETE", "/v1/devices/UDID-A/bindings/" + sha256_of(id_a)).status, 200);
    EXPECT_EQ(device("UDID-B", id_a)->authenticate().status, 400);
    EXPECT_EQ(store().enrollment("UDID-B").status().code(), Code::kNotFound);
}

TEST_F(TokenGatedRebinding, AnEnrollmentCaIdentityNotIssuedWithATokenDoesNotBind) {
    auto ca = certs::CertificateAuthority::load_or_create(server_->data_dir() / "data",
                                                          "enrollment-ca", "Courier Enrollment CA");
    ASSERT_TRUE(ca.is_ok()) << ca.status().to_string();
    auto id = ca->issue({.common_name = "untokened", .days = 30, .server_auth = false});
    ASSERT_TRUE(id.is_ok());
    test::PemPair pem{certs::cert_to_pem(id->cert.get()), certs::key_to_pem(id->key.get())};
    auto r = device("UDID-C", pem)->authenticate();
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("token"), std::string::npos) << r.body;
    EXPECT_EQ(store().enrollment("UDID-C").status().code(), Code::kNotFound);
}

TEST_F(TokenGatedRebinding, ATokenIdentityRebindsAtOnceButGetsNoneOfTheOldSecrets) {
    auto victim = device("UDID-V", fresh_identity("?token=" + new_token()));
    ASSERT_EQ(victim->authenticate().status, 200);
    ASSERT_EQ(victim->token_update().status, 200);
    ASSERT_EQ(checkin(*victim, "SetBootstrapToken", "VICTIM-BOOTSTRAP").status, 200);
    auto other = device("UDID-V", fresh_identity("?token=" + new_token()));
    ASSERT_EQ(other->authenticate().status, 200);
    auto r = checkin(*other, "GetBootstrapToken");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(bootstrap_of(r), "");
    EXPECT_FALSE(store().unlock_token("UDID-V")->has_value());
    double before = superseded_total();
    std::optional<sim::ReceivedCommand> next;
    EXPECT_EQ(victim->idle(&next).status, 400);
    EXPECT_EQ(superseded_total() - before, 1);
    EXPECT_EQ(timeline_mentions("UDID-V", "presented again"), 1);
}

// ---- --cert-header: only on --http-listen; sources must agree -------------

class CertHeader : public Rebinding {
  protected:
    void SetUp() override { start({.cert_header = "X-Client-Cert"}); }
    static std::string header_value(const test::PemPair& id) {
        auto c = certs::cert_from_pem(id.cert_pem);
        std::string v = base64_encode(certs::cert_to_der(c->get()));
        v.insert(v.begin(), ':');
        v.push_back(':');
        return v;
    }
    static std::string idle_body(const std::string& udid) {
        plist::Dict d;
        d.set("UDID", udid);
        d.set("Status", "Idle");
        return plist::write_xml(plist::Value(std::move(d)));
    }
};

TEST_F(CertHeader, HonouredOnlyOnThePlainHttpListenerAndSourcesMustAgree) {
    auto id = fresh_identity();
    auto dev = std::make_unique<sim::SimDevice>(
        server_->device_config("UDID-H", id, sim::AuthMode::kMdmSignature));
    ASSERT_EQ(dev->authenticate().status, 200);
    std::string body = idle_body("UDID-H");
    std::vector<std::string> hdr{"X-Client-Cert: " + header_value(id),
                                 "Content-Type: application/x-apple-aspen-mdm"};
    test::HttpOptions plain;
    auto r = test::http_request("PUT", server_->http_url() + "/mdm", body, hdr, plain);
    EXPECT_EQ(r.status, 200) << r.body << r.error;

    test::HttpOptions tls;
    tls.ca_file = server_->ca_file();
    r = test::http_request("PUT", server_->https_url() + "/mdm", body, hdr, tls);
    EXPECT_EQ(r.status, 400) << "the header is not an identity on the HTTPS listener";

    // Header names one identity, Mdm-Signature another: refused.
    auto other = fresh_identity();
    auto key = certs::key_from_pem(other.key_pem);
    auto cert = certs::cert_from_pem(other.cert_pem);
    certs::Identity signer{std::move(*key), std::move(*cert), {}};
    auto sig = certs::make_mdm_signature(body, signer);
    ASSERT_TRUE(sig.is_ok());
    auto both = hdr;
    both.push_back("Mdm-Signature: " + *sig);
    r = test::http_request("PUT", server_->http_url() + "/mdm", body, both, plain);
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("disagree"), std::string::npos) << r.body;
}

}  // namespace
}  // namespace courier
