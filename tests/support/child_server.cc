#include "tests/support/child_server.h"

#include <signal.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "certs/authority.h"
#include "tests/support/test_apns.h"
#include "tests/support/test_certs.h"

namespace courier::test {

using namespace std::chrono_literals;

std::unique_ptr<ChildServer> ChildServer::create(const std::filesystem::path& dir,
                                                 std::string* error) {
    std::unique_ptr<ChildServer> c(new ChildServer());
    c->dir_ = dir;
    c->data_ = dir / "data";
    c->apns_ca_ = dir / "apns-ca.pem";
    auto fake = start_test_apns(c->apns_ca_);
    if (!fake.is_ok()) {
        *error = "fake APNs: " + fake.status().to_string();
        return nullptr;
    }
    c->apns_ = std::move(*fake);
    c->apns_url_ = c->apns_->base_url();
    return c;
}

ChildServer::~ChildServer() {
    kill();
}

bool ChildServer::start(std::vector<std::string> extra, std::string* error) {
    // A restart takes the port of the first start, so devices keep their URL.
    std::string listen = "127.0.0.1:" + std::to_string(port_);
    std::vector<std::string> argv{
        COURIER_BINARY, "serve",           "--listen",     listen,
        "--data-dir",   data_.string(),    "--apns-url",   apns_url_,
        "--apns-ca",    apns_ca_.string(), "--public-url", "https://127.0.0.1:1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    proc_ = std::make_unique<Process>(argv);
    if (!proc_->wait_for_output("courier serving", 60s)) {
        if (error) *error = "server did not start:\n" + proc_->output();
        earlier_output_ += proc_->output();
        proc_.reset();
        return false;
    }
    std::smatch m;
    static const std::regex re(R"(\(port ([0-9]+)\))");
    const std::string& out = proc_->output();
    if (!std::regex_search(out, m, re)) {
        if (error) *error = "no port in:\n" + out;
        return false;
    }
    port_ = static_cast<uint16_t>(std::stoi(m[1]));
    return true;
}

void ChildServer::kill() {
    if (!proc_) return;
    proc_->stop(SIGKILL, 30s);
    earlier_output_ += proc_->output();
    proc_.reset();
}

int ChildServer::terminate() {
    if (!proc_) return -1;
    int rc = proc_->stop(SIGTERM, 30s);
    earlier_output_ += proc_->output();
    proc_.reset();
    return rc;
}

std::string ChildServer::all_output() const {
    return earlier_output_ + (proc_ ? proc_->output() : std::string());
}

std::string ChildServer::api_key() const {
    std::ifstream in(data_ / "api-key");
    std::string key;
    std::getline(in, key);
    return key;
}

HttpResult ChildServer::api(const std::string& method, const std::string& path,
                            const std::string& body) {
    HttpOptions o;
    o.ca_file = ca_file();
    o.timeout_ms = 20000;
    return http_request(method, url() + path, body, {"Authorization: Bearer " + api_key()}, o);
}

bool ChildServer::import_push_cert(std::string* error) {
    auto pc = make_push_cert(topic());
    auto r = api("PUT", "/v1/pushcert", pc.cert_pem + pc.key_pem);
    if (r.status != 200 && error) *error = std::to_string(r.status) + " " + r.body + r.error;
    return r.status == 200;
}

std::unique_ptr<sim::SimDevice> ChildServer::device(const std::string& udid) {
    auto ca = certs::CertificateAuthority::load_or_create(data_, "enrollment-ca", "unused");
    if (!ca.is_ok()) return nullptr;
    auto id = make_device_identity(*ca, udid);
    sim::DeviceConfig cfg;
    cfg.server_url = url();
    cfg.ca_file = ca_file();
    cfg.identity_cert_pem = certs::cert_to_pem(id.cert.get());
    cfg.identity_key_pem = certs::key_to_pem(id.key.get());
    cfg.udid = udid;
    cfg.topic = topic();
    return std::make_unique<sim::SimDevice>(cfg);
}

}  // namespace courier::test
