#include "sim/device.h"

#include <curl/curl.h>

#include "certs/pkcs.h"
#include "certs/x509.h"
#include "common/encoding.h"

namespace courier::sim {

namespace {

size_t collect(char* p, size_t size, size_t n, void* ud) {
    static_cast<std::string*>(ud)->append(p, size * n);
    return size * n;
}

void common_options(CURL* c, const std::string& ca_file, long timeout_ms, HttpReply* reply,
                    char* errbuf) {
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply->body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    if (!ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, ca_file.c_str());
}

void finish(CURL* c, CURLcode rc, HttpReply* reply, const char* errbuf) {
    if (rc != CURLE_OK) {
        reply->error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
        return;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply->status);
    char* ct = nullptr;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    if (ct) reply->content_type = ct;
}

}  // namespace

Connection::Connection() : handle_(curl_easy_init()) {}
Connection::~Connection() {
    if (handle_) curl_easy_cleanup(static_cast<CURL*>(handle_));
}

struct SimDevice::Impl {
    CURL* curl = nullptr;
    certs::Identity identity;  // for Mdm-Signature
    ~Impl() {
        if (curl) curl_easy_cleanup(curl);
    }
};

SimDevice::SimDevice(DeviceConfig cfg) : cfg_(std::move(cfg)), impl_(std::make_unique<Impl>()) {
    if (cfg_.token.empty()) cfg_.token = random_bytes(32);
    if (cfg_.push_magic.empty()) cfg_.push_magic = random_uuid();
    if (!cfg_.connection) impl_->curl = curl_easy_init();
    if (auto c = certs::cert_from_pem(cfg_.identity_cert_pem); c.is_ok())
        impl_->identity.cert = std::move(*c);
    if (auto k = certs::key_from_pem(cfg_.identity_key_pem); k.is_ok())
        impl_->identity.key = std::move(*k);
}

SimDevice::~SimDevice() = default;

std::string SimDevice::token_hex() const {
    return hex_encode(cfg_.token);
}

HttpReply SimDevice::put(const std::string& path, const std::string& body,
                         const std::string& content_type) {
    HttpReply reply;
    CURL* c = cfg_.connection ? static_cast<CURL*>(cfg_.connection->handle()) : impl_->curl;
    curl_easy_reset(c);
    char errbuf[CURL_ERROR_SIZE] = {0};
    common_options(c, cfg_.ca_file, cfg_.timeout_ms, &reply, errbuf);
    std::string url = cfg_.server_url + path;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, ("Content-Type: " + content_type).c_str());
    headers = curl_slist_append(headers, "Expect:");
    std::string sig_header;
    if (cfg_.auth == AuthMode::kMdmSignature) {
        auto sig = certs::make_mdm_signature(body, impl_->identity);
        if (!sig.is_ok()) {
            curl_slist_free_all(headers);
            reply.error = "signing: " + sig.status().message();
            return reply;
        }
        sig_header = "Mdm-Signature: " + *sig;
        headers = curl_slist_append(headers, sig_header.c_str());
    } else if (!cfg_.identity_cert_pem.empty()) {
        curl_blob cert{const_cast<char*>(cfg_.identity_cert_pem.data()),
                       cfg_.identity_cert_pem.size(), CURL_BLOB_NOCOPY};
        curl_blob key{const_cast<char*>(cfg_.identity_key_pem.data()), cfg_.identity_key_pem.size(),
                      CURL_BLOB_NOCOPY};
        curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cert);
        curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &key);
        curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    CURLcode rc = curl_easy_perform(c);
    finish(c, rc, &reply, errbuf);
    curl_slist_free_all(headers);
    return reply;
}

namespace {
plist::Dict identity_dict(const DeviceConfig& cfg) {
    plist::Dict d;
    d.set("UDID", cfg.udid);
    return d;
}
}  // namespace

HttpReply SimDevice::authenticate() {
    plist::Dict d = identity_dict(cfg_);
    d.set("MessageType", "Authenticate");
    d.set("Topic", cfg_.topic);
    d.set("SerialNumber", cfg_.serial_number);
    d.set("ProductName", "iPhone15,2");
    d.set("OSVersion", "18.1");
    d.set("BuildVersion", "22B83");
    return put("/checkin", plist::write_xml(plist::Value(std::move(d))),
               "application/x-apple-aspen-mdm-checkin");
}

HttpReply SimDevice::token_update() {
    plist::Dict d = identity_dict(cfg_);
    d.set("MessageType", "TokenUpdate");
    d.set("Topic", cfg_.topic);
    d.set("Token", plist::Data{cfg_.token});
    d.set("PushMagic", cfg_.push_magic);
    d.set("UnlockToken", plist::Data{"unlock-" + cfg_.udid});
    d.set("AwaitingConfiguration", false);
    return put("/checkin", plist::write_xml(plist::Value(std::move(d))),
               "application/x-apple-aspen-mdm-checkin");
}

HttpReply SimDevice::checkout() {
    plist::Dict d = identity_dict(cfg_);
    d.set("MessageType", "CheckOut");
    d.set("Topic", cfg_.topic);
    return put("/checkin", plist::write_xml(plist::Value(std::move(d))),
               "application/x-apple-aspen-mdm-checkin");
}

Result<ReceivedCommand> SimDevice::parse_command(const std::string& body) {
    auto d = plist::parse_dict(body);
    if (!d.is_ok()) return d.status();
    ReceivedCommand rc;
    rc.raw = body;
    const std::string* uuid = d->find_string("CommandUUID");
    const plist::Dict* cmd = d->find_dict("Command");
    if (!uuid || !cmd) return invalid("command plist without CommandUUID or Command");
    const std::string* rt = cmd->find_string("RequestType");
    if (!rt) return invalid("command without RequestType");
    rc.uuid = *uuid;
    rc.request_type = *rt;
    rc.command = *cmd;
    return rc;
}

HttpReply SimDevice::send_report(plist::Dict msg, std::optional<ReceivedCommand>* next) {
    HttpReply r = put("/mdm", plist::write_xml(plist::Value(std::move(msg))),
                      "application/x-apple-aspen-mdm; charset=UTF-8");
    if (next) {
        next->reset();
        if (r.error.empty() && r.status == 200 && !r.body.empty()) {
            auto parsed = parse_command(r.body);
            if (parsed.is_ok())
                *next = std::move(*parsed);
            else
                r.error = "unreadable command: " + parsed.status().message();
        }
    }
    return r;
}

HttpReply SimDevice::idle(std::optional<ReceivedCommand>* next) {
    plist::Dict d = identity_dict(cfg_);
    d.set("Status", "Idle");
    return send_report(std::move(d), next);
}

HttpReply SimDevice::report(const std::string& status, const std::string& uuid,
                            std::optional<ReceivedCommand>* next, plist::Dict extra) {
    plist::Dict d = identity_dict(cfg_);
    d.set("Status", status);
    d.set("CommandUUID", uuid);
    for (const auto& [k, v] : extra.entries()) d.set(k, v);
    return send_report(std::move(d), next);
}

HttpReply http_get(const std::string& url, const std::string& ca_file, long timeout_ms) {
    HttpReply reply;
    CURL* c = curl_easy_init();
    char errbuf[CURL_ERROR_SIZE] = {0};
    common_options(c, ca_file, timeout_ms, &reply, errbuf);
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    CURLcode rc = curl_easy_perform(c);
    finish(c, rc, &reply, errbuf);
    curl_easy_cleanup(c);
    return reply;
}

}  // namespace courier::sim
