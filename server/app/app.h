// The whole server, wired: store, certificates, push service, device and
// admin services, HTTP listeners. `courier serve` runs one; tests run one
// in-process on port 0.
#pragma once

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/status.h"
#include "server/app/config.h"

namespace courier::db {
class Store;
}
namespace courier::certs {
class CertificateAuthority;
}
namespace courier::apns {
class Pusher;
class PushService;
}  // namespace courier::apns

namespace courier::server {

class HttpServer;
class Router;
class DeviceAuthenticator;
class DeviceService;
class EnrollService;
class AdminApi;
class UiSessions;
class WebhookService;

class App {
  public:
    explicit App(Config cfg, const Clock& clock = SystemClock::instance());
    ~App();
    App(const App&) = delete;
    App& operator=(const App&) = delete;

    // Wraps the store start() opens (before anything uses it): the fault
    // injection tests put a db::FaultyStore (tests/support/faulty_store.h) around it.
    using StoreWrapper = std::function<std::unique_ptr<db::Store>(std::unique_ptr<db::Store>)>;
    void wrap_store(StoreWrapper w) { wrap_store_ = std::move(w); }
    // Creates the data dir and whatever is missing in it (API key, TLS
    // identity, enrollment CA, database), then starts listening.
    Status start();
    // Graceful: stops accepting, finishes in-flight requests (≤ 5 s), stops
    // the push service, closes the store. Idempotent.
    void stop();

    uint16_t https_port() const;
    uint16_t http_port() const;
    const std::string& api_key() const { return api_key_; }
    const std::string& public_url() const { return public_url_; }
    // The CA behind the generated TLS certificate (clients trust it); empty
    // with --tls-cert.
    const std::filesystem::path& tls_ca_file() const { return tls_ca_file_; }
    const certs::CertificateAuthority& enrollment_ca() const { return *enrollment_ca_; }
    db::Store& store() { return *store_; }
    apns::PushService& push_service() { return *push_; }
    Metrics& metrics() { return metrics_; }
    WebhookService& webhooks() { return *webhooks_; }
    // "METHOD /pattern" for every route served (the OpenAPI coverage test).
    std::vector<std::string> routes() const;

  private:
    Status prepare_data_dir();
    Status load_api_key();
    void warn_expiring_certificates();
    void maintenance_loop();

    Config cfg_;
    const Clock& clock_;
    Metrics metrics_;
    std::string api_key_;
    std::string public_url_;
    std::filesystem::path tls_ca_file_;

    std::unique_ptr<db::Store> store_;
    StoreWrapper wrap_store_;
    std::unique_ptr<certs::CertificateAuthority> enrollment_ca_;
    std::unique_ptr<apns::Pusher> pusher_;
    std::unique_ptr<apns::PushService> push_;
    std::unique_ptr<WebhookService> webhooks_;
    std::unique_ptr<DeviceAuthenticator> device_auth_;
    std::unique_ptr<DeviceService> devices_;
    std::unique_ptr<EnrollService> enroll_;
    std::unique_ptr<AdminApi> admin_;
    std::unique_ptr<UiSessions> ui_sessions_;
    std::unique_ptr<Router> router_;
    std::unique_ptr<HttpServer> http_;

    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    bool started_ = false;
    std::thread maintenance_;
};

// The host of a URL, for the server certificate's names: "https://h:1/x" →
// "h", "https://[::1]:8443/" → "::1" (no brackets); "" when malformed.
std::string url_host(const std::string& url);

}  // namespace courier::server
