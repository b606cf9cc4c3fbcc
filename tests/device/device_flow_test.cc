// End to end over real TLS on 127.0.0.1: a simulated device enrolls from
// /enroll, checks in, receives queued commands in order and reports on them;
// every refusal answers 400 (never 401) and changes nothing.
#include <gtest/gtest.h>

#include "apns/push_service.h"
#include "certs/pkcs.h"
#include "common/encoding.h"
#include "db/store.h"
#include "tests/support/server_test.h"

namespace courier {
namespace {

using namespace std::chrono_literals;
using test::TestServer;

class DeviceFlow : public test::ServerTest {
  protected:
    db::Store& store() { return server_->app().store(); }

    // Queues a command straight into the store (the API has its own tests).
    std::string queue(const std::string& id, const std::string& request_type) {
        std::string uuid = random_uuid();
        plist::Dict cmd;
        cmd.set("RequestType", request_type);
        plist::Dict env;
        env.set("CommandUUID", uuid);
        env.set("Command", std::move(cmd));
        db::NewCommand nc{uuid, request_type, plist::write_xml(plist::Value(std::move(env))),
                          std::nullopt};
        auto r = store().enqueue(nc, {id}, SystemClock::instance().now());
        EXPECT_TRUE(r.is_ok()) << r.status().to_string();
        return uuid;
    }
    db::TargetStatus status_of(const std::string& uuid, const std::string& id) {
        auto c = store().command(uuid);
        EXPECT_TRUE(c.is_ok());
        for (const auto& t : c->targets)
            if (t.enrollment_id == id) return t.status;
        ADD_FAILURE() << "no target " << id;
        return db::TargetStatus::kCanceled;
    }
    int64_t queued(const std::string& id) {
        auto e = store().enrollment(id);
        return e.is_ok() ? e->queued : -1;
    }
};

TEST_F(DeviceFlow, ProfileIsSignedAndCarriesTheMdmPayload) {
    auto enrolled = server_->fetch_profile();
    ASSERT_TRUE(enrolled.is_ok()) << enrolled.status().to_string();
    const plist::Dict* mdm = nullptr;
    bool root = false;
    for (const auto& p : *enrolled->profile.find_array("PayloadContent")) {
        const auto& d = *p.as_dict();
        if (*d.find_string("PayloadType") == "com.apple.mdm") mdm = &d;
        if (*d.find_string("PayloadType") == "com.apple.security.root") root = true;
    }
    ASSERT_NE(mdm, nullptr);
    EXPECT_TRUE(root) << "self-issued TLS: the CA travels in the profile";
    EXPECT_EQ(*mdm->find_string("Topic"), server_->topic());
    EXPECT_EQ(*mdm->find_string("ServerURL"), server_->https_url() + "/mdm");
    EXPECT_EQ(*mdm->find_string("CheckInURL"), server_->https_url() + "/checkin");
    EXPECT_EQ(*mdm->find_integer("AccessRights"), 8191);
    EXPECT_TRUE(*mdm->find_bool("CheckOutWhenRemoved"));
    const plist::Array* caps = mdm->find_array("ServerCapabilities");
    ASSERT_NE(caps, nullptr);
    EXPECT_EQ(*(*caps)[0].as_string(), "com.apple.mdm.per-user-connections");
}

TEST_F(DeviceFlow, EnrollWithoutPushCertificateIs503) {
    start({.import_push_cert = false});
    auto r = sim::http_get(server_->https_url() + "/enroll", server_->ca_file());
    EXPECT_EQ(r.status, 503);
    EXPECT_NE(r.body.find("push certificate"), std::string::npos) << r.body;
}

TEST_F(DeviceFlow, EnrollAuthenticateTokenUpdateOverTls) {
    std::string err;
    auto dev = server_->enrolled_device("UDID-TLS-1", sim::AuthMode::kTlsClientCert, &err);
    ASSERT_TRUE(dev) << err;
    auto e = store().enrollment("UDID-TLS-1");
    ASSERT_TRUE(e.is_ok());
    EXPECT_EQ(e->state, db::EnrollmentState::kEnrolled);
    EXPECT_EQ(e->topic, server_->topic());
    EXPECT_EQ(hex_encode(e->push_token), dev->token_hex());
    EXPECT_TRUE(e->token_valid);
    EXPECT_TRUE(e->has_unlock_token);
    EXPECT_TRUE(e->identity_not_after.has_value());
}

TEST_F(DeviceFlow, CommandsArriveInOrderAndResultsAreStored) {
    std::string err;
    auto dev = server_->enrolled_device("UDID-1", sim::AuthMode::kTlsClientCert, &err);
    ASSERT_TRUE(dev) << err;
    std::string lock = queue("UDID-1", "DeviceLock");
    std::string info = queue("UDID-1", "ProfileList");

    std::optional<sim::ReceivedCommand> next;
    auto r = dev->idle(&next);
    ASSERT_EQ(r.status, 200) << r.body << r.error;
    ASSERT_TRUE(next);
    EXPECT_EQ(next->uuid, lock);
    EXPECT_EQ(next->request_type, "DeviceLock");
    EXPECT_EQ(status_of(lock, "UDID-1"), db::TargetStatus::kSent);

    plist::Dict extra;
    extra.set("MessageResult", "Success");
    r = dev->report("Acknowledged", lock, &next, extra);
    ASSERT_EQ(r.status, 200);
    ASSERT_TRUE(next) << "the next command comes in the same answer";
    EXPECT_EQ(next->uuid, info);
    r = dev->report("Acknowledged", info, &next);
    ASSERT_EQ(r.status, 200);
    EXPECT_FALSE(next);
    EXPECT_TRUE(r.body.empty()) << "nothing left is a zero-byte 200";

    auto c = store().command(lock);
    ASSERT_TRUE(c.is_ok());
    EXPECT_EQ(c->targets.at(0).status, db::TargetStatus::kAcknowledged);
    auto report = plist::parse_dict(c->targets.at(0).result);
    ASSERT_TRUE(report.is_ok());
    EXPECT_EQ(*report->find_string("MessageResult"), "Success");
}

TEST_F(DeviceFlow, SameFlowWithMdmSignatureOverPlainHttp) {
    std::string err;
    auto dev = server_->enrolled_device("UDID-SIG-1", sim::AuthMode::kMdmSignature, &err);
    ASSERT_TRUE(dev) << err;
    std::string uuid = queue("UDID-SIG-1", "DeviceLock");
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);
    ASSERT_TRUE(next);
    EXPECT_EQ(next->uuid, uuid);
    ASSERT_EQ(dev->report("Acknowledged", uuid, &next).status, 200);
    EXPECT_EQ(status_of(uuid, "UDID-SIG-1"), db::TargetStatus::kAcknowledged);
}

TEST_F(DeviceFlow, RepeatedReportIsRecordedOnce) {
    auto dev = server_->enrolled_device("UDID-R");
    ASSERT_TRUE(dev);
    std::string uuid = queue("UDID-R", "DeviceLock");
    std::optional<sim::ReceivedCommand> next;
    dev->idle(&next);
    plist::Dict first;
    first.set("Attempt", 1);
    ASSERT_EQ(dev->report("Acknowledged", uuid, &next, first).status, 200);
    plist::Dict second;
    second.set("Attempt", 2);
    ASSERT_EQ(dev->report("Acknowledged", uuid, &next, second).status, 200);
    auto c = store().command(uuid);
    auto report = plist::parse_dict(c->targets.at(0).result);
    EXPECT_EQ(*report->find_integer("Attempt"), 1);
}

TEST_F(DeviceFlow, NotNowWaitsForTheNextIdleWhileOthersProceed) {
    auto dev = server_->enrolled_device("UDID-NN");
    ASSERT_TRUE(dev);
    std::string a = queue("UDID-NN", "InstalledApplicationList");
    std::string b = queue("UDID-NN", "ProfileList");
    std::optional<sim::ReceivedCommand> next;
    dev->idle(&next);
    ASSERT_TRUE(next);
    ASSERT_EQ(next->uuid, a);
    dev->report("NotNow", a, &next);
    ASSERT_TRUE(next) << "a different command may follow a NotNow";
    EXPECT_EQ(next->uuid, b);
    dev->report("Acknowledged", b, &next);
    EXPECT_FALSE(next) << "the NotNow'd command is not offered in the same session";
    EXPECT_EQ(status_of(a, "UDID-NN"), db::TargetStatus::kNotNow);
    dev->idle(&next);
    ASSERT_TRUE(next) << "offered again at the next Idle";
    EXPECT_EQ(next->uuid, a);
}

TEST_F(DeviceFlow, CommandHandedOutButNeverAnsweredIsResentAtNextIdle) {
    auto dev = server_->enrolled_device("UDID-DROP");
    ASSERT_TRUE(dev);
    std::string a = queue("UDID-DROP", "DeviceLock");
    std::optional<sim::ReceivedCommand> next;
    dev->idle(&next);
    ASSERT_TRUE(next);
    // The connection "dropped": the device never reports, and asks again.
    dev->idle(&next);
    ASSERT_TRUE(next);
    EXPECT_EQ(next->uuid, a);
}

TEST_F(DeviceFlow, ReAuthenticateCancelsWhatWasQueued) {
    auto dev = server_->enrolled_device("UDID-WIPE");
    ASSERT_TRUE(dev);
    std::string erase = queue("UDID-WIPE", "EraseDevice");
    ASSERT_EQ(dev->authenticate().status, 200);
    EXPECT_EQ(status_of(erase, "UDID-WIPE"), db::TargetStatus::kCanceled);
    ASSERT_EQ(dev->token_update().status, 200);
    std::optional<sim::ReceivedCommand> next;
    dev->idle(&next);
    EXPECT_FALSE(next) << "a stale EraseDevice must never reach a freshly set-up device";
}

TEST_F(DeviceFlow, CheckOutUnenrolls) {
    auto dev = server_->enrolled_device("UDID-CO");
    ASSERT_TRUE(dev);
    std::string a = queue("UDID-CO", "DeviceLock");
    ASSERT_EQ(dev->checkout().status, 200);
    EXPECT_EQ(store().enrollment("UDID-CO")->state, db::EnrollmentState::kUnenrolled);
    EXPECT_EQ(status_of(a, "UDID-CO"), db::TargetStatus::kCanceled);
}

TEST_F(DeviceFlow, QueuedCommandWakesTheDeviceThroughApns) {
    auto dev = server_->enrolled_device("UDID-PUSH");
    ASSERT_TRUE(dev);
    auto out = server_->app().push_service().push_and_wait({"UDID-PUSH"}, 5s);
    ASSERT_TRUE(out["UDID-PUSH"].pushed) << out["UDID-PUSH"].error;
    auto reqs = server_->apns().requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].token, dev->token_hex());
    EXPECT_EQ(reqs[0].headers["apns-topic"], server_->topic());
    EXPECT_EQ(reqs[0].headers["apns-push-type"], "mdm");
    EXPECT_EQ(reqs[0].body, "{\"mdm\":\"" + dev->config().push_magic + "\"}");
}

// ---- Refusals: each is 400 (never 401), nothing is written, and the server
// keeps serving.

class DeviceRefusals : public DeviceFlow {
  protected:
    void SetUp() override {
        DeviceFlow::SetUp();
        dev_ = server_->enrolled_device("UDID-OK");
        ASSERT_TRUE(dev_);
        uuid_ = queue("UDID-OK", "DeviceLock");
    }
    void expect_unchanged() {
        EXPECT_EQ(status_of(uuid_, "UDID-OK"), db::TargetStatus::kQueued);
        EXPECT_EQ(queued("UDID-OK"), 1);
        std::optional<sim::ReceivedCommand> next;
        auto r = dev_->idle(&next);
        EXPECT_EQ(r.status, 200) << "server still serves";
        EXPECT_TRUE(next);
    }
    std::unique_ptr<sim::SimDevice> dev_;
    std::string uuid_;
};

TEST_F(DeviceRefusals, NoCertificate) {
    auto cfg = server_->device_config("UDID-OK", {}, sim::AuthMode::kTlsClientCert);
    sim::SimDevice anon(cfg);
    std::optional<sim::ReceivedCommand> next;
    auto r = anon.idle(&next);
    EXPECT_EQ(r.status, 400) << r.body << r.error;
    expect_unchanged();
}

TEST_F(DeviceRefusals, AnotherDevicesCertificate) {
    auto other = server_->enrolled_device("UDID-OTHER");
    ASSERT_TRUE(other);
    auto cfg = other->config();
    cfg.udid = "UDID-OK";  // claims to be UDID-OK with UDID-OTHER's identity
    sim::SimDevice thief(cfg);
    std::optional<sim::ReceivedCommand> next;
    EXPECT_EQ(thief.idle(&next).status, 400);
    EXPECT_EQ(thief.report("Acknowledged", uuid_, &next).status, 400);
    EXPECT_EQ(thief.authenticate().status, 400) << "a bound certificate cannot move";
    expect_unchanged();
}

TEST_F(DeviceRefusals, UntrustedCertificate) {
    auto rogue_ca = test::make_test_ca("Rogue CA");
    auto id = test::make_device_identity(rogue_ca, "UDID-OK");
    test::PemPair pem{certs::cert_to_pem(id.cert.get()), certs::key_to_pem(id.key.get())};
    sim::SimDevice rogue(server_->device_config("UDID-OK", pem, sim::AuthMode::kTlsClientCert));
    auto r = rogue.authenticate();
    // The TLS layer takes any client certificate; the server refuses it.
    EXPECT_EQ(r.status, 400) << r.body << r.error;
    EXPECT_NE(r.body.find("TLS client certificate"), std::string::npos) << r.body;
    expect_unchanged();
}

TEST_F(DeviceRefusals, ForgedMdmSignature) {
    auto enrolled = server_->fetch_profile();
    ASSERT_TRUE(enrolled.is_ok());
    plist::Dict d;
    d.set("UDID", "UDID-OK");
    d.set("Status", "Acknowledged");
    d.set("CommandUUID", uuid_);
    std::string body = plist::write_xml(plist::Value(d));
    // A valid signature, but over other bytes.
    auto key = certs::key_from_pem(enrolled->identity.key_pem);
    auto cert = certs::cert_from_pem(enrolled->identity.cert_pem);
    certs::Identity id{std::move(*key), std::move(*cert), {}};
    auto sig = certs::make_mdm_signature(body + " ", id);
    ASSERT_TRUE(sig.is_ok());
    test::HttpOptions o;
    auto r = test::http_request("PUT", server_->http_url() + "/mdm", body,
                                {"Mdm-Signature: " + *sig}, o);
    EXPECT_EQ(r.status, 400);
    r = test::http_request("PUT", server_->http_url() + "/mdm", body,
                           {"Mdm-Signature: bm90IGEgc2lnbmF0dXJl"}, o);
    EXPECT_EQ(r.status, 400);
    expect_unchanged();
}

TEST_F(DeviceRefusals, UnknownMessageTypeAndMalformedPlist) {
    plist::Dict d;
    d.set("UDID", "UDID-OK");
    d.set("MessageType", "Frobnicate");
    auto r = dev_->put("/checkin", plist::write_xml(plist::Value(d)),
                       "application/x-apple-aspen-mdm-checkin");
    EXPECT_EQ(r.status, 400);
    r = dev_->put("/mdm", "<plist><dict><key>UDID</key>", "application/x-apple-aspen-mdm");
    EXPECT_EQ(r.status, 400);
    r = dev_->put("/mdm", "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><plist/>",
                  "application/x-apple-aspen-mdm");
    EXPECT_EQ(r.status, 400);
    expect_unchanged();
}

TEST_F(DeviceRefusals, OversizedBodyIs413) {
    std::string big =
        "<plist><dict><key>UDID</key><string>UDID-OK</string><key>Status</key>"
        "<string>Idle</string><key>Pad</key><data>" +
        std::string(2 << 20, 'A') + "</data></dict></plist>";
    auto r = dev_->put("/mdm", big, "application/x-apple-aspen-mdm");
    EXPECT_TRUE(r.status == 413 || !r.error.empty()) << r.status;
    expect_unchanged();
}

TEST_F(DeviceRefusals, RetiredDeviceGetsUnrecognizedDevice) {
    auto r = server_->api("POST", "/v1/devices/UDID-OK/retire");
    ASSERT_EQ(r.status, 200) << r.body;
    std::optional<sim::ReceivedCommand> next;
    auto idle = dev_->idle(&next);
    EXPECT_EQ(idle.status, 403);
    EXPECT_NE(idle.body.find("com.apple.unrecognized.device"), std::string::npos);
    EXPECT_FALSE(next);
}

}  // namespace
}  // namespace courier
