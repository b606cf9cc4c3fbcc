// The `courier` binary as an operator runs it: no flags in an empty
// directory, flags and COURIER_* environment, --help, refusals, SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <regex>

#include "server/app/app.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace courier {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using test::Process;
using test::run_process;

const std::string kBinary = COURIER_BINARY;

unsigned mode_of(const fs::path& p) {
    struct stat st {};
    if (stat(p.c_str(), &st) != 0) return 0;
    return st.st_mode & 0777;
}

int port_from_log(const std::string& log) {
    std::smatch m;
    static const std::regex re(R"(\(port ([0-9]+)\))");
    return std::regex_search(log, m, re) ? std::stoi(m[1]) : 0;
}

TEST(CourierBinary, ServeWithoutFlagsCreatesItsDataDirAndAnswersOverHttps) {
    TempDir cwd;
    // Only the port comes from the environment (8443 may be taken on a CI
    // machine); everything else is the embedded default.
    Process p({kBinary, "serve"}, {{"COURIER_LISTEN", "127.0.0.1:0"}}, cwd.path().string());
    ASSERT_TRUE(p.started());
    ASSERT_TRUE(p.wait_for_output("courier serving", 60s)) << p.output();
    int port = port_from_log(p.output());
    ASSERT_GT(port, 0) << p.output();

    fs::path data = cwd.path() / "courier-data";
    EXPECT_EQ(mode_of(data), 0700u);
    EXPECT_EQ(mode_of(data / "api-key"), 0600u);
    EXPECT_EQ(mode_of(data / "courier.db"), 0600u);
    EXPECT_NE(p.output().find("api-key"), std::string::npos) << "the key's path is logged";

    test::HttpOptions o;
    o.ca_file = (data / "tls" / "ca.crt").string();
    auto r = test::http_request("GET", "https://localhost:" + std::to_string(port) + "/healthz", "",
                                {}, o);
    EXPECT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body, R"({"status":"ok"})");

    EXPECT_EQ(p.stop(SIGTERM, 30s), 0) << p.output();
    EXPECT_NE(p.output().find("courier stopped"), std::string::npos) << p.output();

    // A second start reuses the key and TLS identity it made.
    std::string key_before;
    {
        std::ifstream in(data / "api-key");
        std::getline(in, key_before);
    }
    Process again({kBinary, "serve", "--listen", "127.0.0.1:0"}, {}, cwd.path().string());
    ASSERT_TRUE(again.wait_for_output("courier serving", 60s)) << again.output();
    EXPECT_NE(again.output().find("read from"), std::string::npos) << again.output();
    std::string key_after;
    {
        std::ifstream in(data / "api-key");
        std::getline(in, key_after);
    }
    EXPECT_EQ(key_before, key_after);
    EXPECT_EQ(again.stop(SIGINT, 30s), 0);
}

TEST(CourierBinary, FlagWinsOverEnvironment) {
    TempDir dir;
    Process p({kBinary, "serve", "--listen", "127.0.0.1:0", "--data-dir",
               (dir.path() / "d").string(), "--log-format", "json"},
              {{"COURIER_LISTEN", "not-an-address"}, {"COURIER_LOG_FORMAT", "text"}});
    ASSERT_TRUE(p.wait_for_output("courier serving", 60s)) << p.output();
    // JSON lines, as the flag asked, not text as the environment did.
    EXPECT_NE(p.output().find("{\""), std::string::npos) << p.output();
    EXPECT_EQ(p.stop(SIGTERM, 30s), 0);
}

TEST(CourierBinary, EnvironmentConfiguresWhenNoFlagIsGiven) {
    TempDir dir;
    Process p({kBinary, "serve"}, {{"COURIER_LISTEN", "127.0.0.1:0"},
                                   {"COURIER_DATA_DIR", (dir.path() / "env-data").string()},
                                   {"COURIER_API_KEY", "key-from-env"}});
    ASSERT_TRUE(p.wait_for_output("courier serving", 60s)) << p.output();
    EXPECT_TRUE(fs::exists(dir.path() / "env-data" / "courier.db"));
    int port = port_from_log(p.output());
    test::HttpOptions o;
    o.ca_file = (dir.path() / "env-data" / "tls" / "ca.crt").string();
    auto r = test::http_request("GET", "https://localhost:" + std::to_string(port) + "/v1/devices",
                                "", {"Authorization: Bearer key-from-env"}, o);
    EXPECT_EQ(r.status, 200) << r.body << r.error;
    EXPECT_EQ(p.output().find("key-from-env"), std::string::npos) << "secret in the log";
    EXPECT_EQ(p.stop(SIGTERM, 30s), 0);
}

// A boolean flag alone turns it on (`--metrics-public`, `--proxy-protocol`
// as README and docker/haproxy.cfg use them); `=false` turns it off; a value
// that is not a boolean is a usage error.
TEST(CourierBinary, ABooleanFlagAloneTurnsItOnAndTakesAValue) {
    TempDir dir;
    auto metrics_status = [&](const std::string& value, const std::string& next = "") {
        std::vector<std::string> argv{kBinary,
                                      "serve",
                                      "--listen",
                                      "127.0.0.1:0",
                                      "--data-dir",
                                      (dir.path() / "d").string(),
                                      "--metrics-public" + value};
        if (!next.empty()) argv.push_back(next);
        Process p(argv);
        EXPECT_TRUE(p.wait_for_output("courier serving", 60s)) << p.output();
        test::HttpOptions o;
        o.ca_file = (dir.path() / "d" / "tls" / "ca.crt").string();
        auto r = test::http_request(
            "GET", "https://localhost:" + std::to_string(port_from_log(p.output())) + "/metrics",
            "", {}, o);
        EXPECT_EQ(p.stop(SIGTERM, 30s), 0);
        return r.status;
    };
    EXPECT_EQ(metrics_status(""), 200);
    EXPECT_EQ(metrics_status("=true"), 200);
    EXPECT_EQ(metrics_status("=false"), 401);
    // As it was before it was a flag: the value as the next argument.
    EXPECT_EQ(metrics_status("", "true"), 200);
    EXPECT_EQ(metrics_status("", "false"), 401);
    auto r = run_process({kBinary, "serve", "--enroll-open=maybe"});
    EXPECT_EQ(r.status, 2) << r.output;
}

TEST(CourierBinary, HelpListsEverySpecFlagWithDefaults) {
    auto top = run_process({kBinary, "--help"});
    EXPECT_EQ(top.status, 0);
    for (const char* sub : {"serve", "devices", "lock", "pushcert", "enroll-token", "fake-apns"})
        EXPECT_NE(top.output.find(sub), std::string::npos) << sub << "\n" << top.output;
    auto serve = run_process({kBinary, "serve", "--help"});
    EXPECT_EQ(serve.status, 0);
    for (const char* flag : {"--listen",
                             "--http-listen",
                             "--data-dir",
                             "--db",
                             "--tls-cert",
                             "--tls-key",
                             "--public-url",
                             "--api-key",
                             "--device-ca",
                             "--cert-header",
                             "--apns-url",
                             "--apns-ca",
                             "--apns-proxy",
                             "--cert-warn-days",
                             "--log-level",
                             "--log-format",
                             "0.0.0.0:8443",
                             "./courier-data",
                             "https://api.push.apple.com",
                             "COURIER_LISTEN"})
        EXPECT_NE(serve.output.find(flag), std::string::npos) << flag << "\n" << serve.output;
}

TEST(CourierBinary, UsageErrorsExitTwoWithAMessage) {
    auto r = run_process({kBinary, "serve", "--no-such-flag"});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.output.find("no-such-flag"), std::string::npos) << r.output;
    r = run_process({kBinary, "serve", "--log-format", "xml"});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.output.find("xml"), std::string::npos) << r.output;
    r = run_process({kBinary});
    EXPECT_EQ(r.status, 2);
}

TEST(CourierBinary, StartupRefusalsExitOneAndSayWhy) {
    TempDir dir;
    auto r = run_process({kBinary, "serve", "--listen", "127.0.0.1:0", "--data-dir",
                          (dir.path() / "d").string(), "--db",
                          "postgres://courier@127.0.0.1:1/courier?connect_timeout=2"});
    EXPECT_EQ(r.status, 1);  // no database there: says so, exits 1
    EXPECT_NE(r.output.find("postgres: cannot connect"), std::string::npos) << r.output;
    r = run_process({kBinary, "serve", "--listen", "127.0.0.1:0", "--data-dir",
                     (dir.path() / "d1").string(), "--db", "mysql://db/courier"});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.output.find("unsupported --db URL scheme"), std::string::npos) << r.output;
    r = run_process(
        {kBinary, "serve", "--listen", "nonsense", "--data-dir", (dir.path() / "d2").string()});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.output.find("nonsense"), std::string::npos) << r.output;
}

TEST(UrlHost, NamesTheHostWithoutPortOrIpv6Brackets) {
    EXPECT_EQ(server::url_host("https://mdm.example.com:8443/x"), "mdm.example.com");
    EXPECT_EQ(server::url_host("https://mdm.example.com"), "mdm.example.com");
    EXPECT_EQ(server::url_host("https://[::1]:8443/x"), "::1");
    EXPECT_EQ(server::url_host("https://[2001:db8::1]"), "2001:db8::1");
    EXPECT_EQ(server::url_host("https://[::1"), "");
    EXPECT_EQ(server::url_host("http://10.0.0.1:80"), "10.0.0.1");
}

}  // namespace
}  // namespace courier
