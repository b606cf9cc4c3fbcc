// Every captured plist in tests/fixtures (copied from ../shared/conformance)
// sent to a running Courier over TLS: check-ins and reports are accepted
// with the stored state they imply; captured command envelopes are accepted
// by the raw enqueue and reach the device byte for byte.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "db/store.h"
#include "mdm/checkin.h"
#include "tests/support/test_server.h"

namespace courier {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<fs::path> captures() {
    std::vector<fs::path> out;
    for (const auto& e : fs::recursive_directory_iterator(COURIER_FIXTURES_DIR))
        if (e.path().extension() == ".plist") out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

class Captures : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string err;
        server_ = test::TestServer::start({}, &err);
        ASSERT_TRUE(server_) << err;
    }
    // A device with its own identity from /enroll (not checked in).
    std::unique_ptr<sim::SimDevice> device(const std::string& udid) {
        auto enrolled = server_->fetch_profile();
        EXPECT_TRUE(enrolled.is_ok()) << enrolled.status().to_string();
        if (!enrolled.is_ok()) return nullptr;
        return std::make_unique<sim::SimDevice>(
            server_->device_config(udid, enrolled->identity, sim::AuthMode::kTlsClientCert));
    }
    db::Store& store() { return server_->app().store(); }
    std::unique_ptr<test::TestServer> server_;
};

TEST_F(Captures, CheckinCapturesAreAcceptedAndStored) {
    size_t checked = 0;
    std::map<std::string, std::unique_ptr<sim::SimDevice>> devices;
    // Authenticate before TokenUpdate before CheckOut, as a device sends them.
    for (auto type : {mdm::MessageType::kAuthenticate, mdm::MessageType::kTokenUpdate,
                      mdm::MessageType::kCheckOut}) {
        for (const auto& path : captures()) {
            std::string body = read(path);
            auto m = mdm::decode_device_message(body);
            if (!m.is_ok() || !m->checkin || m->checkin->type != type) continue;
            const auto& msg = *m->checkin;
            std::string id = msg.identity.enrollment_id();
            SCOPED_TRACE(path.string() + " (" + id + ")");
            auto& dev = devices[msg.identity.device_id];
            if (!dev) {
                dev = device(msg.identity.device_id);
                ASSERT_TRUE(dev);
                if (type != mdm::MessageType::kAuthenticate) {
                    ASSERT_EQ(dev->authenticate().status, 200);
                }
                if (type == mdm::MessageType::kCheckOut) {
                    ASSERT_EQ(dev->token_update().status, 200);
                }
            }
            auto r = dev->put("/checkin", body, "application/x-apple-aspen-mdm-checkin");
            ASSERT_EQ(r.status, 200) << r.body << r.error;
            auto e = store().enrollment(id);
            ASSERT_TRUE(e.is_ok()) << e.status().to_string();
            switch (type) {
                case mdm::MessageType::kAuthenticate:
                    EXPECT_EQ(e->serial_number, msg.facts.serial_number);
                    EXPECT_EQ(e->os_version, msg.facts.os_version);
                    break;
                case mdm::MessageType::kTokenUpdate:
                    EXPECT_EQ(e->state, db::EnrollmentState::kEnrolled);
                    EXPECT_TRUE(e->token_valid);
                    EXPECT_EQ(e->push_token, msg.token);
                    EXPECT_EQ(e->push_magic, msg.push_magic);
                    break;
                default:
                    EXPECT_EQ(e->state, db::EnrollmentState::kUnenrolled);
            }
            ++checked;
        }
    }
    EXPECT_GE(checked, 7u) << "the fixtures hold 3 Authenticate, 3 TokenUpdate, 1 CheckOut";
}

TEST_F(Captures, ReportCapturesAreStoredVerbatim) {
    size_t checked = 0;
    for (const auto& path : captures()) {
        std::string body = read(path);
        auto m = mdm::decode_device_message(body);
        if (!m.is_ok() || !m->report || m->report->status == mdm::ReportStatus::kIdle) continue;
        const auto& rep = *m->report;
        SCOPED_TRACE(path.string());
        auto dev = device(rep.identity.device_id);
        ASSERT_TRUE(dev);
        ASSERT_EQ(dev->authenticate().status, 200);
        ASSERT_EQ(dev->token_update().status, 200);
        // Queue the command the capture answers, with its UUID.
        std::string cmd =
            "<plist><dict><key>Command</key><dict><key>RequestType</key><string>"
            "DeviceInformation</string><key>Queries</key><array><string>UDID</string></array>"
            "</dict><key>CommandUUID</key><string>" +
            rep.command_uuid + "</string></dict></plist>";
        auto q = server_->api("PUT", "/v1/enqueue/" + rep.identity.device_id + "?nopush=1", cmd);
        ASSERT_EQ(q.status, 200) << q.body;
        std::optional<sim::ReceivedCommand> next;
        ASSERT_EQ(dev->idle(&next).status, 200);
        ASSERT_TRUE(next);
        ASSERT_EQ(next->uuid, rep.command_uuid);
        auto r = dev->put("/mdm", body, "application/x-apple-aspen-mdm");
        ASSERT_EQ(r.status, 200) << r.body << r.error;

        auto c = server_->api("GET", "/v1/commands/" + rep.command_uuid);
        ASSERT_EQ(c.status, 200);
        auto target = json::parse(c.body).at("targets").at(rep.identity.device_id).as_object();
        EXPECT_EQ(target.at("status").as_string(),
                  mdm::report_status_name(rep.status) == std::string("Acknowledged")
                      ? "acknowledged"
                      : "error");
        // The device's report as JSON carries what it sent.
        ASSERT_TRUE(target.at("result").is_object()) << c.body;
        EXPECT_EQ(target.at("result").at("CommandUUID").as_string(), rep.command_uuid);
        ++checked;
    }
    EXPECT_GE(checked, 1u);
}

TEST_F(Captures, CommandCapturesPassTheRawEnqueueUnchanged) {
    std::string err;
    auto dev = server_->enrolled_device("UDID-CAPTURES", sim::AuthMode::kTlsClientCert, &err);
    ASSERT_TRUE(dev) << err;
    size_t checked = 0;
    for (const auto& path : captures()) {
        std::string body = read(path);
        auto parsed = plist::parse_dict(body);
        if (!parsed.is_ok() || !parsed->find_dict("Command")) continue;
        SCOPED_TRACE(path.string());
        auto q = server_->api("PUT", "/v1/enqueue/UDID-CAPTURES?nopush=1", body);
        ASSERT_EQ(q.status, 200) << q.body;
        std::optional<sim::ReceivedCommand> next;
        ASSERT_EQ(dev->idle(&next).status, 200);
        ASSERT_TRUE(next);
        EXPECT_EQ(next->raw, body);
        std::optional<sim::ReceivedCommand> after;
        ASSERT_EQ(dev->report("Acknowledged", next->uuid, &after).status, 200);
        ++checked;
    }
    EXPECT_GE(checked, 4u);
}

}  // namespace
}  // namespace courier
