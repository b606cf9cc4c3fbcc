// `courier simulate` against the real binary: a fleet enrolls, drains queued
// commands (with NotNow and Error answers), wakes through the simulator's own
// fake APNs, and writes a wrk script whose signed Idle reports the server
// accepts.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <fstream>
#include <regex>
#include <sstream>

#include "certs/authority.h"
#include "tests/support/child_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"

namespace courier {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

class Simulate : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string err;
        server_ = test::ChildServer::create(dir_.path(), &err);
        ASSERT_TRUE(server_) << err;
    }

    void start() {
        std::string err;
        ASSERT_TRUE(server_->start({}, &err)) << err;
    }

    // Runs `courier simulate ARGS --json -q` against the server; the parsed
    // summary (null when there is none) and the whole output.
    json::value simulate(std::vector<std::string> args, int* status, std::string* output) {
        std::vector<std::string> argv{COURIER_BINARY, "simulate",   "--url",
                                      server_->url(), "--data-dir", server_->data_dir().string(),
                                      "--json",       "-q",         "--timeout-ms",
                                      "20000"};
        argv.insert(argv.end(), args.begin(), args.end());
        auto r = test::run_process(argv, {}, 240s);
        *status = r.status;
        *output = r.output;
        std::istringstream lines(r.output);
        std::string line, last;
        while (std::getline(lines, line))
            if (!line.empty() && line.front() == '{') last = line;
        boost::system::error_code ec;
        auto v = json::parse(last, ec);
        return ec ? json::value() : v;
    }

    static int64_t num(const json::value& v, std::initializer_list<const char*> path) {
        const json::value* at = &v;
        for (const char* k : path) {
            if (!at->is_object() || !at->as_object().contains(k)) return -1;
            at = &at->as_object().at(k);
        }
        return at->is_int64()    ? at->as_int64()
               : at->is_uint64() ? static_cast<int64_t>(at->as_uint64())
                                 : -1;
    }

    TempDir dir_;
    std::unique_ptr<test::ChildServer> server_;
};

TEST_F(Simulate, DrainsQueuedCommandsWithNotNowAndErrorAnswers) {
    start();
    int status = 0;
    std::string out;
    auto v = simulate({"--scenario", "drain", "--devices", "12", "--connections", "4",
                       "--commands-per-device", "5", "--notnow-share", "0.2", "--error-share",
                       "0.1", "--import-push-cert", "--udid-prefix", "DRAIN-"},
                      &status, &out);
    ASSERT_EQ(status, 0) << out;
    ASSERT_TRUE(v.is_object()) << out;
    EXPECT_TRUE(v.at("ok").as_bool());
    EXPECT_EQ(num(v, {"enroll", "devices"}), 12);
    EXPECT_EQ(num(v, {"drain", "queued"}), 60);
    // Every command ended Acknowledged or Error; NotNow ones came back.
    EXPECT_EQ(num(v, {"totals", "acknowledged"}) + num(v, {"totals", "error"}), 60) << out;
    EXPECT_EQ(num(v, {"totals", "commands"}), 60 + num(v, {"totals", "notnow"}));
    EXPECT_EQ(num(v, {"totals", "http_errors"}), 0);

    // The server agrees: nothing is left queued for the fleet, and a
    // device's DeviceInformation result is stored.
    auto dev = server_->api("GET", "/v1/devices/DRAIN-0000003");
    ASSERT_EQ(dev.status, 200) << dev.body;
    EXPECT_EQ(json::parse(dev.body).at("queued").as_int64(), 0) << dev.body;
    auto cmds = server_->api("GET", "/v1/devices/DRAIN-0000003/commands");
    ASSERT_EQ(cmds.status, 200);
    EXPECT_NE(cmds.body.find("DeviceInformation"), std::string::npos);
}

TEST_F(Simulate, DevicesWakeWhenTheirPushReachesTheSimulatorsFakeApns) {
    // The simulator runs the APNs the server pushes to.
    auto ca = test::make_test_ca("Simulator APNs CA");
    auto leaf = ca.issue({.common_name = "127.0.0.1",
                          .dns_names = {"localhost"},
                          .ip_addresses = {"127.0.0.1"},
                          .server_auth = true});
    ASSERT_TRUE(leaf.is_ok());
    auto cert = dir_.path() / "sim-apns.crt", key = dir_.path() / "sim-apns.key",
         ca_file = dir_.path() / "sim-apns-ca.crt";
    std::ofstream(cert) << certs::cert_to_pem(leaf->cert.get());
    std::ofstream(key) << certs::key_to_pem(leaf->key.get());
    std::ofstream(ca_file) << certs::cert_to_pem(ca.cert());
    uint16_t port = 0;
    {
        // A free port for the simulator's fake: bind one, release it.
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
        ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
        port = ntohs(addr.sin_port);
        close(fd);
    }
    server_->use_apns("https://127.0.0.1:" + std::to_string(port), ca_file);
    start();

    int status = 0;
    std::string out;
    auto v =
        simulate({"--scenario", "wake", "--devices", "16", "--connections", "4", "--repeats", "5",
                  "--import-push-cert", "--apns-listen", "127.0.0.1:" + std::to_string(port),
                  "--apns-cert", cert.string(), "--apns-key", key.string()},
                 &status, &out);
    ASSERT_EQ(status, 0) << out;
    ASSERT_TRUE(v.is_object()) << out;
    EXPECT_EQ(num(v, {"wake", "one_device_ms", "n"}), 5);
    EXPECT_EQ(num(v, {"wake", "fleet", "acknowledged"}), 16);
    // Every wake-up came through a push: 5 single ones and the fleet's 16.
    EXPECT_GE(num(v, {"totals", "pushes_received"}), 21);
    EXPECT_EQ(num(v, {"totals", "acknowledged"}), 21);
}

TEST_F(Simulate, WrkScriptHoldsSignedIdleReportsTheServerAccepts) {
    start();
    auto script = dir_.path() / "idle.lua";
    int status = 0;
    std::string out;
    auto v = simulate({"--scenario", "enroll", "--devices", "6", "--auth", "signature",
                       "--import-push-cert", "--wrk-script", script.string()},
                      &status, &out);
    ASSERT_EQ(status, 0) << out;
    std::ifstream in(script);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string lua = ss.str();
    std::regex entry(
        R"re(bodies\[#bodies\+1\] = \[==\[([\s\S]*?)\]==\]\nsigs\[#sigs\+1\] = "([A-Za-z0-9+/=]+)")re");
    int n = 0;
    for (std::sregex_iterator it(lua.begin(), lua.end(), entry), end; it != end; ++it, ++n) {
        if (n > 1) continue;  // two are enough to send
        std::string body = (*it)[1], sig = (*it)[2];
        test::HttpOptions o;
        o.ca_file = server_->ca_file();
        auto r = test::http_request(
            "PUT", server_->url() + "/mdm", body,
            {"Mdm-Signature: " + sig, "Content-Type: application/x-apple-aspen-mdm"}, o);
        EXPECT_EQ(r.status, 200) << r.body << r.error;
    }
    EXPECT_EQ(n, 6);
}

TEST_F(Simulate, UsageErrorsExitTwoAndAnUnreachableServerExitsOne) {
    int status = 0;
    std::string out;
    simulate({"--scenario", "nonsense"}, &status, &out);
    EXPECT_EQ(status, 2) << out;
    simulate({"--notnow-share", "0.7", "--error-share", "0.6"}, &status, &out);
    EXPECT_EQ(status, 2) << out;
    // The server is not started: nothing answers at its URL.
    simulate({"--scenario", "enroll", "--devices", "2", "--topic", "com.apple.mgmt.x"}, &status,
             &out);
    EXPECT_EQ(status, 1) << out;
}

}  // namespace
}  // namespace courier
