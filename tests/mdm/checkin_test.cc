// Typed decoding of the real device captures and of the reports devices send.
#include "mdm/checkin.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "common/encoding.h"

namespace courier::mdm {
namespace {

std::string fixture(const std::string& rel) {
    std::ifstream in(std::string(COURIER_FIXTURES_DIR) + "/" + rel, std::ios::binary);
    EXPECT_TRUE(in) << rel;
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

CheckinMessage checkin(const std::string& rel) {
    auto m = decode_device_message(fixture(rel));
    EXPECT_TRUE(m.is_ok()) << rel << ": " << m.status().to_string();
    if (!m.is_ok() || !m->checkin) return {};
    return *m->checkin;
}

Status refusal(const std::string& body) {
    auto m = decode_device_message(body);
    EXPECT_FALSE(m.is_ok()) << body;
    return m.status();
}

std::string plist_of(plist::Dict d) {
    return plist::write_xml(plist::Value(std::move(d)));
}

const char* kTopic = "com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9";

TEST(Checkin, IosAuthenticate) {
    auto m = checkin("nanomdm/mdm/testdata/Authenticate.1.plist");
    EXPECT_EQ(m.type, MessageType::kAuthenticate);
    EXPECT_EQ(m.identity.enrollment_id(), "663b07bb783e9ade1dae4fbb92ea12afc0ce5b69");
    EXPECT_EQ(m.identity.type, EnrollmentType::kDevice);
    EXPECT_EQ(m.topic, kTopic);
    EXPECT_FALSE(m.facts.serial_number.empty());
    EXPECT_TRUE(m.facts.device_name.empty()) << "iOS sends no DeviceName";
}

TEST(Checkin, MacAuthenticateWithUnknownChallengeKey) {
    auto m = checkin("nanomdm/mdm/testdata/Authenticate.2.plist");
    EXPECT_EQ(m.identity.device_id, "66ADE930-5FDF-5EC4-8429-15640684C489");
    EXPECT_FALSE(m.facts.device_name.empty());
    EXPECT_FALSE(m.facts.model.empty());
    EXPECT_FALSE(m.facts.model_name.empty());
    EXPECT_TRUE(m.raw.contains("Challenge")) << "unknown keys are kept";
}

TEST(Checkin, IosTokenUpdateWithUnlockToken) {
    auto m = checkin("nanomdm/mdm/testdata/TokenUpdate.1.plist");
    EXPECT_EQ(m.type, MessageType::kTokenUpdate);
    EXPECT_EQ(hex_encode(m.token),
              "47e8eec062c2f729ec1703c1b3e18f1971d85f00be76445d34080baa701b5f51");
    EXPECT_FALSE(m.push_magic.empty());
    ASSERT_TRUE(m.unlock_token.has_value());
    EXPECT_EQ(m.unlock_token->size(), 1288u);
    EXPECT_FALSE(m.awaiting_configuration);
}

TEST(Checkin, MacTokenUpdateWithoutUnlockToken) {
    auto m = checkin("nanomdm/mdm/testdata/TokenUpdate.2.plist");
    EXPECT_EQ(hex_encode(m.token),
              "1ba7c90066c50f77689a24f3a425caf68a300f729e88e460a9416022d5d642cc");
    EXPECT_FALSE(m.unlock_token.has_value());
}

TEST(Checkin, MicroMdmReencodedCaptures) {
    auto a = checkin("micromdm-history/be837649b32d/mdm/checkin/testdata/Authenticate.plist");
    EXPECT_EQ(a.type, MessageType::kAuthenticate);
    EXPECT_EQ(a.topic.rfind("com.apple.mgmt.XServer.", 0), 0u) << a.topic;
    auto t = checkin("micromdm-history/be837649b32d/mdm/checkin/testdata/TokenUpdate.plist");
    EXPECT_EQ(hex_encode(t.token),
              "c4488d5c86b85d540eb3ef74900a6013c8133807c45501cf21444746724ebf96");
    EXPECT_FALSE(t.unlock_token.has_value()) << "an empty UnlockToken is not a token";
    auto c = checkin("micromdm-history/be837649b32d/mdm/checkin/testdata/CheckOut.plist");
    EXPECT_EQ(c.type, MessageType::kCheckOut);
    EXPECT_TRUE(c.token.empty()) << "CheckOut's empty Token is not read as push data";
}

TEST(Report, AcknowledgedDeviceInformation) {
    auto m = decode_device_message(fixture("nanomdm/mdm/testdata/DeviceInformation.1.plist"));
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    ASSERT_TRUE(m->report);
    EXPECT_EQ(m->report->status, ReportStatus::kAcknowledged);
    EXPECT_EQ(m->report->command_uuid, "76eda240-5488-4989-8339-f2ae160113c4");
    EXPECT_TRUE(m->report->raw.contains("QueryResponses"));
}

TEST(Report, IdleErrorNotNowAndFormatError) {
    plist::Dict idle;
    idle.set("UDID", "U1");
    idle.set("Status", "Idle");
    auto i = decode_device_message(plist_of(idle));
    ASSERT_TRUE(i.is_ok());
    EXPECT_EQ(i->report->status, ReportStatus::kIdle);
    EXPECT_TRUE(i->report->command_uuid.empty());

    plist::Dict err;
    err.set("UDID", "U1");
    err.set("Status", "Error");
    err.set("CommandUUID", "C1");
    plist::Dict chain;
    chain.set("ErrorCode", int64_t{-12021});
    chain.set("ErrorDomain", "MCProfileErrorDomain");
    chain.set("LocalizedDescription", "x");
    err.set("ErrorChain", plist::Array{plist::Value(chain)});
    auto e = decode_device_message(plist_of(err));
    ASSERT_TRUE(e.is_ok()) << e.status().to_string();
    EXPECT_EQ(e->report->status, ReportStatus::kError);
    EXPECT_TRUE(is_final(e->report->status));

    for (auto [name, st] : {std::pair{"NotNow", ReportStatus::kNotNow},
                            std::pair{"CommandFormatError", ReportStatus::kCommandFormatError}}) {
        plist::Dict d;
        d.set("UDID", "U1");
        d.set("Status", name);
        d.set("CommandUUID", "C1");
        auto r = decode_device_message(plist_of(d));
        ASSERT_TRUE(r.is_ok());
        EXPECT_EQ(r->report->status, st);
    }
}

TEST(Identity, UserChannelSharedIPadAndUserEnrollment) {
    plist::Dict d;
    d.set("UDID", "DEV");
    d.set("UserID", "B2A3-USER");
    auto u = resolve_identity(d);
    ASSERT_TRUE(u.is_ok());
    EXPECT_EQ(u->enrollment_id(), "DEV:B2A3-USER");
    EXPECT_EQ(u->type, EnrollmentType::kUser);

    d.set("UserID", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF");
    d.set("UserShortName", "jane@example.com");
    auto s = resolve_identity(d);
    ASSERT_TRUE(s.is_ok());
    EXPECT_EQ(s->enrollment_id(), "DEV:jane@example.com");
    EXPECT_EQ(s->type, EnrollmentType::kSharedIPad);

    plist::Dict ue;
    ue.set("EnrollmentID", "ENR");
    auto ued = resolve_identity(ue);
    ASSERT_TRUE(ued.is_ok());
    EXPECT_EQ(ued->enrollment_id(), "ENR");
    ue.set("EnrollmentUserID", "EU");
    auto ueu = resolve_identity(ue);
    ASSERT_TRUE(ueu.is_ok());
    EXPECT_EQ(ueu->enrollment_id(), "ENR:EU");
}

TEST(Refusal, UnknownMessageTypeAndStatus) {
    plist::Dict d;
    d.set("UDID", "U");
    d.set("MessageType", "Frobnicate");
    EXPECT_NE(refusal(plist_of(d)).message().find("unknown MessageType"), std::string::npos);
    plist::Dict r;
    r.set("UDID", "U");
    r.set("Status", "Maybe");
    EXPECT_NE(refusal(plist_of(r)).message().find("unknown Status"), std::string::npos);
}

TEST(Refusal, MissingOrMistypedIdentity) {
    plist::Dict d;
    d.set("MessageType", "Authenticate");
    EXPECT_NE(refusal(plist_of(d)).message().find("no device identifier"), std::string::npos);
    d.set("UDID", int64_t{5});
    EXPECT_NE(refusal(plist_of(d)).message().find("UDID must be a string"), std::string::npos);
}

TEST(Refusal, TokenUpdateNeedsTokenAndPushMagic) {
    plist::Dict d;
    d.set("UDID", "U");
    d.set("MessageType", "TokenUpdate");
    d.set("PushMagic", "m");
    EXPECT_NE(refusal(plist_of(d)).message().find("without Token"), std::string::npos);
    d.set("Token", "not data");
    EXPECT_NE(refusal(plist_of(d)).message().find("must be data"), std::string::npos);
    d.set("Token", plist::Data{"tok"});
    d.erase("PushMagic");
    EXPECT_NE(refusal(plist_of(d)).message().find("without PushMagic"), std::string::npos);
}

TEST(Refusal, ReportWithoutCommandUuidAndAmbiguousMessages) {
    plist::Dict d;
    d.set("UDID", "U");
    d.set("Status", "Acknowledged");
    EXPECT_NE(refusal(plist_of(d)).message().find("without CommandUUID"), std::string::npos);
    d.set("MessageType", "Authenticate");
    EXPECT_NE(refusal(plist_of(d)).message().find("both"), std::string::npos);
    plist::Dict none;
    none.set("UDID", "U");
    EXPECT_NE(refusal(plist_of(none)).message().find("neither"), std::string::npos);
}

TEST(Checkin, SchemaRequiredKeysAreNotDemanded) {
    // Apple's schema calls Topic required on TokenUpdate; devices omit some
    // "required" keys in practice, and a refused report is re-sent forever.
    plist::Dict d;
    d.set("UDID", "U");
    d.set("MessageType", "TokenUpdate");
    d.set("Token", plist::Data{"tok"});
    d.set("PushMagic", "m");
    auto m = decode_device_message(plist_of(d));
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    EXPECT_TRUE(m->checkin->topic.empty());
}

}  // namespace
}  // namespace courier::mdm
