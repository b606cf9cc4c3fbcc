// The administrators' command line (`courier lock`, `install-profile`,
// `command`, `pushcert renew`, ...) run as a real process against a running
// server over TLS; devices are simulated.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>

#include "common/encoding.h"
#include "tests/support/process.h"
#include "tests/support/test_server.h"

namespace courier {
namespace {

using namespace std::chrono_literals;
using test::run_process;
using test::RunResult;

// A real-world shaped configuration profile (a Wi-Fi payload).
const std::string kProfile = R"(<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PayloadContent</key>
	<array>
		<dict>
			<key>AutoJoin</key>
			<true/>
			<key>EncryptionType</key>
			<string>WPA2</string>
			<key>Password</key>
			<string>correct horse</string>
			<key>PayloadIdentifier</key>
			<string>com.example.wifi.office</string>
			<key>PayloadType</key>
			<string>com.apple.wifi.managed</string>
			<key>PayloadUUID</key>
			<string>5C6D9C2E-8E1B-4C55-9F0B-1A2B3C4D5E6F</string>
			<key>PayloadVersion</key>
			<integer>1</integer>
			<key>SSID_STR</key>
			<string>Office</string>
		</dict>
	</array>
	<key>PayloadDisplayName</key>
	<string>Office Wi-Fi</string>
	<key>PayloadIdentifier</key>
	<string>com.example.wifi</string>
	<key>PayloadType</key>
	<string>Configuration</string>
	<key>PayloadUUID</key>
	<string>0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0</string>
	<key>PayloadVersion</key>
	<integer>1</integer>
</dict>
</plist>
)";

class Cli : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string err;
        server_ = test::TestServer::start({}, &err);
        ASSERT_TRUE(server_) << err;
        dev_ = server_->enrolled_device("UDID-CLI", sim::AuthMode::kTlsClientCert, &err);
        ASSERT_TRUE(dev_) << err;
    }
    RunResult courier(std::vector<std::string> args, std::string key = {}) {
        std::vector<std::string> argv{COURIER_BINARY};
        argv.insert(argv.end(), args.begin(), args.end());
        argv.insert(argv.end(), {"--url", server_->https_url(), "--ca", server_->ca_file(),
                                 "--api-key", key.empty() ? server_->app().api_key() : key});
        return run_process(argv, {}, 60s);
    }
    std::string write(const std::string& name, const std::string& content) {
        auto p = server_->data_dir() / name;
        std::ofstream(p, std::ios::binary) << content;
        return p.string();
    }
    // The next command the device receives (it acknowledges the previous one).
    std::optional<sim::ReceivedCommand> next_command() {
        std::optional<sim::ReceivedCommand> next;
        EXPECT_EQ(dev_->idle(&next).status, 200);
        return next;
    }

    std::unique_ptr<test::TestServer> server_;
    std::unique_ptr<sim::SimDevice> dev_;
};

TEST_F(Cli, LockQueuesDeviceLockAndCommandShowsTheAcknowledgement) {
    auto r = courier({"lock", "UDID-CLI", "--pin", "123456", "--message", "Call IT"});
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(server_->apns().request_count(), 1u) << "the lock woke the device";
    auto cmd = next_command();
    ASSERT_TRUE(cmd);
    EXPECT_EQ(cmd->request_type, "DeviceLock");
    EXPECT_EQ(*cmd->command.find_string("PIN"), "123456");
    EXPECT_EQ(*cmd->command.find_string("Message"), "Call IT");
    EXPECT_NE(r.output.find(cmd->uuid), std::string::npos) << "the UUID is printed: " << r.output;

    std::optional<sim::ReceivedCommand> after;
    ASSERT_EQ(dev_->report("Acknowledged", cmd->uuid, &after).status, 200);
    auto status = courier({"command", cmd->uuid});
    ASSERT_EQ(status.status, 0) << status.output;
    EXPECT_NE(status.output.find("acknowledged"), std::string::npos) << status.output;
    auto js = courier({"command", cmd->uuid, "--json"});
    EXPECT_EQ(js.status, 0);
    EXPECT_NE(js.output.find("\"status\":\"acknowledged\""), std::string::npos) << js.output;
}

TEST_F(Cli, BadPinIsRefusedByTheServerAndExitsOne) {
    auto r = courier({"lock", "UDID-CLI", "--pin", "12"});
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("PIN"), std::string::npos) << r.output;
    EXPECT_FALSE(next_command());
}

TEST_F(Cli, InstallProfileDeliversTheFileBytesUnchanged) {
    std::string file = write("wifi.mobileconfig", kProfile);
    auto r = courier({"install-profile", "UDID-CLI", file});
    ASSERT_EQ(r.status, 0) << r.output;
    auto cmd = next_command();
    ASSERT_TRUE(cmd);
    EXPECT_EQ(cmd->request_type, "InstallProfile");
    const plist::Data* payload = cmd->command.find_data("Payload");
    ASSERT_NE(payload, nullptr);
    EXPECT_EQ(payload->bytes, kProfile);

    auto rm = courier({"remove-profile", "UDID-CLI", "com.example.wifi"});
    ASSERT_EQ(rm.status, 0) << rm.output;
    std::optional<sim::ReceivedCommand> after;
    ASSERT_EQ(dev_->report("Acknowledged", cmd->uuid, &after).status, 200);
    ASSERT_TRUE(after);
    EXPECT_EQ(after->request_type, "RemoveProfile");
    EXPECT_EQ(*after->command.find_string("Identifier"), "com.example.wifi");
}

TEST_F(Cli, PushcertRenewKeepsTheTopicAndRefusesAnother) {
    auto before = courier({"pushcert", "show", "--json"});
    ASSERT_EQ(before.status, 0) << before.output;
    // Half a day past a whole number of days: days_left cannot tick over mid-test.
    auto renewed = test::make_push_cert(server_->topic(), -1h, std::chrono::days(390) + 12h);
    auto r = courier({"pushcert", "renew", write("new.pem", renewed.cert_pem),
                      write("new.key", renewed.key_pem)});
    ASSERT_EQ(r.status, 0) << r.output;
    auto after = courier({"pushcert", "show", "--json"});
    EXPECT_NE(after.output, before.output);
    EXPECT_NE(after.output.find("\"days_left\":390"), std::string::npos) << after.output;

    auto other = test::make_push_cert("com.apple.mgmt.External.someone-else");
    auto bad = courier(
        {"pushcert", "renew", write("o.pem", other.cert_pem), write("o.key", other.key_pem)});
    EXPECT_EQ(bad.status, 1) << bad.output;
    EXPECT_NE(bad.output.find("same Apple ID"), std::string::npos) << bad.output;
    EXPECT_EQ(courier({"pushcert", "show", "--json"}).output, after.output);
}

TEST_F(Cli, ExitCodesMeanSomething) {
    EXPECT_EQ(courier({"push", "UDID-CLI"}).status, 0);
    EXPECT_EQ(courier({"push", "UDID-CLI", "UDID-NOPE"}).status, 3) << "partial: 207";
    EXPECT_EQ(courier({"push", "UDID-NOPE"}).status, 1);
    auto unauth = courier({"devices"}, "wrong-key");
    EXPECT_EQ(unauth.status, 1);
    EXPECT_NE(unauth.output.find("API key"), std::string::npos) << unauth.output;
    EXPECT_EQ(run_process({COURIER_BINARY, "lock"}).status, 2) << "usage";
    auto list = courier({"devices"});
    EXPECT_EQ(list.status, 0);
    EXPECT_NE(list.output.find("UDID-CLI"), std::string::npos) << list.output;
}

TEST_F(Cli, CsrWritesAPrivateKeyAndARequest) {
    std::string out = (server_->data_dir() / "push").string();
    auto r =
        run_process({COURIER_BINARY, "pushcert", "csr", "--out", out, "--email", "it@example.com"});
    ASSERT_EQ(r.status, 0) << r.output;
    struct stat st {};
    ASSERT_EQ(stat((out + ".key").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    std::ifstream csr(out + ".csr");
    std::string first;
    std::getline(csr, first);
    EXPECT_EQ(first, "-----BEGIN CERTIFICATE REQUEST-----");
}

}  // namespace
}  // namespace courier
