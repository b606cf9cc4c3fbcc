// No secret reaches the log: the real binary at debug level runs a full flow
// (push certificate upload, check-ins with push token, PushMagic and
// UnlockToken, a command, a push, a report, a refused request with a wrong
// key) and its whole output is searched for every secret it saw.
#include <gtest/gtest.h>

#include "common/encoding.h"
#include "tests/support/child_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"

namespace courier {
namespace {

// The base64 body of a PEM block, without its armour lines.
std::vector<std::string> pem_body_lines(const std::string& pem) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < pem.size()) {
        size_t nl = pem.find('\n', pos);
        std::string line = pem.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        if (!line.empty() && line.rfind("-----", 0) != 0) out.push_back(line);
        if (nl == std::string::npos) break;
        pos = nl + 1;
    }
    return out;
}

TEST(LogSecrets, AFullFlowAtDebugLevelLogsNoSecret) {
    TempDir dir;
    std::string err;
    auto server = test::ChildServer::create(dir.path(), &err);
    ASSERT_TRUE(server) << err;
    ASSERT_TRUE(server->start({"--log-level", "debug"}, &err)) << err;

    auto pc = test::make_push_cert(test::ChildServer::topic());
    auto up = server->api("PUT", "/v1/pushcert?password=hunter2", pc.cert_pem + pc.key_pem);
    ASSERT_EQ(up.status, 200) << up.body;

    auto dev = server->device("UDID-SECRET");
    ASSERT_TRUE(dev);
    ASSERT_EQ(dev->authenticate().status, 200);
    ASSERT_EQ(dev->token_update().status, 200);
    auto q = server->api("POST", "/v1/commands",
                         R"({"targets":["UDID-SECRET"],"command":{"RequestType":"ProfileList"}})");
    ASSERT_EQ(q.status, 201) << q.body;
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);
    ASSERT_TRUE(next);
    ASSERT_EQ(dev->report("Acknowledged", next->uuid, &next).status, 200);
    test::HttpOptions o;
    o.ca_file = server->ca_file();
    auto wrong = test::http_request("GET", server->url() + "/v1/devices", "",
                                    {"Authorization: Bearer " + server->api_key() + "x"}, o);
    EXPECT_EQ(wrong.status, 401);
    EXPECT_EQ(server->terminate(), 0);

    std::string log = server->all_output();
    ASSERT_NE(log.find("UDID-SECRET"), std::string::npos) << "the flow was logged at all";
    const auto& cfg = dev->config();
    std::vector<std::pair<std::string, std::string>> secrets{
        {"API key", server->api_key()},
        {"push token (hex)", dev->token_hex()},
        {"push token (base64)", base64_encode(cfg.token)},
        {"PushMagic", cfg.push_magic},
        {"UnlockToken (base64)", base64_encode("unlock-UDID-SECRET")},
        {"PKCS#12 password", "hunter2"},
    };
    for (const auto& line : pem_body_lines(pc.key_pem))
        secrets.push_back({"push certificate key", line});
    for (const auto& line : pem_body_lines(cfg.identity_key_pem))
        secrets.push_back({"device key", line});
    for (const auto& [what, secret] : secrets) {
        ASSERT_FALSE(secret.empty()) << what;
        EXPECT_EQ(log.find(secret), std::string::npos) << what << " appears in the log";
    }
}

}  // namespace
}  // namespace courier
