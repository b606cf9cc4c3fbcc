// The admin-API client (server/client/admin_client.h) against an in-process
// server over TLS: what the CLI and the simulator send through it.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/json.hpp>
#include <fstream>

#include "server/client/admin_client.h"
#include "tests/support/server_test.h"
#include "tests/support/temp_dir.h"

namespace courier {
namespace {

namespace json = boost::json;

using AdminClientTest = test::ServerTest;

TEST_F(AdminClientTest, CallsWithTheKeyAndTrustsTheGivenCa) {
    client::AdminClient c(server_->admin_endpoint());
    auto a = c.call("GET", "/v1/devices?limit=5");
    ASSERT_TRUE(a.error.empty()) << a.error;
    EXPECT_EQ(a.status, 200) << a.body;
    EXPECT_TRUE(json::parse(a.body).as_object().contains("items")) << a.body;

    // The same connection again, with a JSON body: an enrollment token.
    a = c.call("POST", "/v1/enrollment-tokens", R"({"uses":1,"note":"client test"})",
               "application/json");
    EXPECT_EQ(a.status, 201) << a.body;
    std::string id(json::parse(a.body).as_object().at("id").as_string());
    EXPECT_EQ(c.call("DELETE", "/v1/enrollment-tokens/" + client::url_escape(id)).status, 200);
}

TEST_F(AdminClientTest, AWrongKeyIs401AndAnUntrustedServerATransportError) {
    auto e = server_->admin_endpoint();
    e.api_key = "not-the-key";
    EXPECT_EQ(client::AdminClient(e).call("GET", "/v1/devices").status, 401);

    e = server_->admin_endpoint();
    e.ca_file.clear();  // the system's CAs do not know the test CA
    auto a = client::AdminClient(e).call("GET", "/v1/devices");
    EXPECT_EQ(a.status, 0);
    EXPECT_FALSE(a.error.empty());
}

TEST(AdminClientResolve, TakesKeyAndCaFromTheDataDirAndDropsTrailingSlashes) {
    ::unsetenv("COURIER_URL");
    ::unsetenv("COURIER_API_KEY");
    ::unsetenv("COURIER_CA");
    TempDir dir;
    std::filesystem::create_directories(dir / "tls");
    std::ofstream(dir / "api-key") << "the-key\r\n";
    std::ofstream(dir / "tls/ca.crt") << "pem";
    client::Endpoint e{"https://127.0.0.1:9/", "", ""};
    client::resolve(e, dir.path().string());
    EXPECT_EQ(e.url, "https://127.0.0.1:9");
    EXPECT_EQ(e.api_key, "the-key");
    EXPECT_EQ(e.ca_file, (dir / "tls/ca.crt").string());

    client::Endpoint given{"", "given-key", "given.pem"};
    client::resolve(given, dir.path().string());
    EXPECT_EQ(given.url, "https://localhost:8443");
    EXPECT_EQ(given.api_key, "given-key");
    EXPECT_EQ(given.ca_file, "given.pem");
}

TEST(AdminClientUrlEscape, KeepsUnreservedAndEscapesTheRest) {
    EXPECT_EQ(client::url_escape("A-z_0.9~:,"), "A-z_0.9~:,");
    EXPECT_EQ(client::url_escape("a b/c?d&e"), "a%20b%2Fc%3Fd%26e");
}

}  // namespace
}  // namespace courier
