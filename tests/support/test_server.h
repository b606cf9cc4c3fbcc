// A whole Courier in-process for end-to-end tests: App on 127.0.0.1 port 0
// with a fresh data dir, a FakeApns it pushes to, and helpers to act as an
// administrator or as an enrolling device.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "apns/fake/fake_apns.h"
#include "server/app/app.h"
#include "server/client/admin_client.h"
#include "sim/device.h"
#include "tests/support/faulty_store.h"
#include "tests/support/http_client.h"
#include "tests/support/pg_test_db.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"

namespace courier::test {

struct TestServerOptions {
    bool http_listen = true;  // also a plain-HTTP listener
    bool enroll_open = true;
    std::string cert_header{};
    bool import_push_cert = true;  // upload a push certificate for `topic`
    std::string topic = "com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9";
    size_t body_limit = 1 << 20;
    bool ui = true;                // the web console (--ui)
    bool faulty_store = false;     // the App's store inside a db::FaultyStore (faulty())
    const Clock* clock = nullptr;  // the App's clock (outlives the server); system when null
    // --vendor-cert/--vendor-key files
    std::string vendor_cert{}, vendor_key{};
    // Last word on the App's configuration (e.g. webhook flags).
    std::function<void(server::Config&)> configure{};
};
// The App's store is SQLite in the data dir; with COURIER_TEST_DB=postgres
// in the environment (ctest's *_postgres runs) a fresh database on the run's
// PostgreSQL server instead.

class TestServer {
  public:
    // Starts everything; on failure `error` says why and the result is null.
    static std::unique_ptr<TestServer> start(const TestServerOptions& opts, std::string* error);
    ~TestServer();

    server::App& app() { return *app_; }
    apns::FakeApns& apns() { return *apns_; }
    const std::string& topic() const { return opts_.topic; }
    std::string https_url() const;
    std::string http_url() const;
    std::string ca_file() const;
    const std::filesystem::path& data_dir() const { return dir_.path(); }
    // With TestServerOptions::faulty_store: the decorator around the store.
    db::FaultyStore* faulty() { return faulty_; }

    // Where the admin API is, for client::AdminClient (server/client/).
    client::Endpoint admin_endpoint() const;
    // An admin API call over HTTPS with the API key (Bearer), with the
    // answer's headers (tests/support/http_client.h).
    HttpResult api(const std::string& method, const std::string& path, const std::string& body = {},
                   std::vector<std::string> headers = {});

    // GET /enroll (+query), checks the CMS signature chains to the server's
    // CA, unpacks the com.apple.security.pkcs12 payload, and returns the
    // identity and the parsed profile.
    struct Enrolled {
        PemPair identity;
        plist::Dict profile;
    };
    Result<Enrolled> fetch_profile(const std::string& query = "");

    // A device with an identity from /enroll that has sent Authenticate and
    // TokenUpdate (auth over TLS or Mdm-Signature on the HTTP listener).
    std::unique_ptr<sim::SimDevice> enrolled_device(
        const std::string& udid, sim::AuthMode mode = sim::AuthMode::kTlsClientCert,
        std::string* error = nullptr);
    // A device config for an identity (not yet checked in).
    sim::DeviceConfig device_config(const std::string& udid, const PemPair& identity,
                                    sim::AuthMode mode);

  private:
    TestServer() = default;
    TestServerOptions opts_;
    TempDir dir_;
    std::unique_ptr<PgTestDb> pg_db_;  // dropped after the App is gone
    std::unique_ptr<apns::FakeApns> apns_;
    std::unique_ptr<server::App> app_;
    std::filesystem::path apns_ca_file_;
    db::FaultyStore* faulty_ = nullptr;
};

}  // namespace courier::test
