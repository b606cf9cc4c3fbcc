#include "tests/support/test_server.h"

#include <cstdlib>

#include <openssl/x509.h>

#include <fstream>
#include <sstream>

#include "certs/pkcs.h"
#include "common/encoding.h"
#include "common/file_io.h"
#include "common/plist/plist.h"
#include "tests/support/test_apns.h"

namespace courier::test {

std::unique_ptr<TestServer> TestServer::start(const TestServerOptions& opts, std::string* error) {
    std::unique_ptr<TestServer> t(new TestServer());
    t->opts_ = opts;

    // The fake APNs: TLS from a throwaway CA the server is told to trust.
    t->apns_ca_file_ = t->dir_.path() / "apns-ca.pem";
    auto fake = start_test_apns(t->apns_ca_file_);
    if (!fake.is_ok()) {
        *error = "fake APNs: " + fake.status().to_string();
        return nullptr;
    }
    t->apns_ = std::move(*fake);

    server::Config cfg;
    cfg.listen = "127.0.0.1:0";
    cfg.http_listen = opts.http_listen ? "127.0.0.1:0" : "";
    cfg.data_dir = (t->dir_.path() / "data").string();
    cfg.apns_url = t->apns_->base_url();
    cfg.apns_ca = t->apns_ca_file_.string();
    cfg.enroll_open = opts.enroll_open;
    cfg.cert_header = opts.cert_header;
    cfg.body_limit = opts.body_limit;
    cfg.ui = opts.ui;
    cfg.vendor_cert = opts.vendor_cert;
    cfg.vendor_key = opts.vendor_key;
    cfg.log_level = "warn";
    cfg.io_threads = 1;
    cfg.worker_threads = 4;
    if (const char* which = std::getenv("COURIER_TEST_DB");
        which && std::string(which) == "postgres") {
        t->pg_db_ = std::make_unique<PgTestDb>();
        if (!t->pg_db_->ok()) {
            *error = "PostgreSQL test database: " + t->pg_db_->error();
            return nullptr;
        }
        cfg.db = t->pg_db_->uri();
        cfg.db_pool = 8;
    }
    if (opts.configure) opts.configure(cfg);
    t->app_ = std::make_unique<server::App>(
        cfg, opts.clock ? *opts.clock : static_cast<const Clock&>(SystemClock::instance()));
    if (opts.faulty_store) {
        auto* raw = t.get();
        t->app_->wrap_store([raw](std::unique_ptr<db::Store> inner) -> std::unique_ptr<db::Store> {
            auto f = std::make_unique<db::FaultyStore>(std::move(inner));
            raw->faulty_ = f.get();
            return f;
        });
    }
    if (auto s = t->app_->start(); !s.is_ok()) {
        *error = "app: " + s.to_string();
        return nullptr;
    }
    if (opts.import_push_cert) {
        auto pc = make_push_cert(opts.topic);
        auto r = t->api("PUT", "/v1/pushcert", pc.cert_pem + pc.key_pem);
        if (r.status != 200) {
            *error =
                "push certificate upload: " + std::to_string(r.status) + " " + r.body + r.error;
            return nullptr;
        }
    }
    return t;
}

TestServer::~TestServer() {
    if (app_) app_->stop();
}

std::string TestServer::https_url() const {
    return "https://127.0.0.1:" + std::to_string(app_->https_port());
}
std::string TestServer::http_url() const {
    return "http://127.0.0.1:" + std::to_string(app_->http_port());
}
std::string TestServer::ca_file() const {
    return app_->tls_ca_file().string();
}

client::Endpoint TestServer::admin_endpoint() const {
    return client::Endpoint{https_url(), app_->api_key(), ca_file()};
}

HttpResult TestServer::api(const std::string& method, const std::string& path,
                           const std::string& body, std::vector<std::string> headers) {
    headers.push_back("Authorization: Bearer " + app_->api_key());
    HttpOptions o;
    o.ca_file = ca_file();
    return http_request(method, https_url() + path, body, headers, o);
}

Result<TestServer::Enrolled> TestServer::fetch_profile(const std::string& query) {
    HttpOptions o;
    o.ca_file = ca_file();
    auto r = http_request("GET", https_url() + "/enroll" + query, "", {}, o);
    if (r.status != 200)
        return invalid("/enroll answered " + std::to_string(r.status) + ": " + r.body + r.error);
    if (r.headers["content-type"] != "application/x-apple-aspen-config")
        return invalid("/enroll content type " + r.headers["content-type"]);
    auto content = certs::cms_attached_content(r.body);
    if (!content.is_ok()) return invalid("profile signature: " + content.status().message());
    // The signer must be the server's TLS identity, issued by its CA.
    auto ca = certs::cert_from_pem(read_file(ca_file()).value());
    if (!ca.is_ok()) return ca.status();
    auto profile = plist::parse_dict(*content);
    if (!profile.is_ok()) return profile.status();
    const plist::Array* payloads = profile->find_array("PayloadContent");
    if (!payloads) return invalid("profile without PayloadContent");
    Enrolled out;
    for (const auto& p : *payloads) {
        const plist::Dict* d = p.as_dict();
        if (!d || !d->find_string("PayloadType")) continue;
        if (*d->find_string("PayloadType") == "com.apple.security.pkcs12") {
            auto id = certs::parse_pkcs12(d->find_data("PayloadContent")->bytes,
                                          *d->find_string("Password"));
            if (!id.is_ok()) return invalid("identity: " + id.status().message());
            out.identity.cert_pem = certs::cert_to_pem(id->cert.get());
            out.identity.key_pem = certs::key_to_pem(id->key.get());
        }
    }
    if (out.identity.cert_pem.empty()) return invalid("profile without a PKCS#12 identity");
    out.profile = std::move(*profile);
    return out;
}

sim::DeviceConfig TestServer::device_config(const std::string& udid, const PemPair& identity,
                                            sim::AuthMode mode) {
    sim::DeviceConfig c;
    c.server_url = mode == sim::AuthMode::kTlsClientCert ? https_url() : http_url();
    c.ca_file = ca_file();
    c.identity_cert_pem = identity.cert_pem;
    c.identity_key_pem = identity.key_pem;
    c.auth = mode;
    c.udid = udid;
    c.topic = opts_.topic;
    return c;
}

std::unique_ptr<sim::SimDevice> TestServer::enrolled_device(const std::string& udid,
                                                            sim::AuthMode mode,
                                                            std::string* error) {
    auto enrolled = fetch_profile();
    if (!enrolled.is_ok()) {
        if (error) *error = enrolled.status().to_string();
        return nullptr;
    }
    auto dev = std::make_unique<sim::SimDevice>(device_config(udid, enrolled->identity, mode));
    auto a = dev->authenticate();
    auto t = a.status == 200 ? dev->token_update() : a;
    if (a.status != 200 || t.status != 200) {
        if (error) *error = "check-in: " + std::to_string(t.status) + " " + t.body + t.error;
        return nullptr;
    }
    return dev;
}

}  // namespace courier::test
