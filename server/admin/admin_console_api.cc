// What the admin API gained for the web console (SPEC "Web console"):
// GET /v1/overview, POST /v1/pushcert/csr and its completion by a
// certificate uploaded alone.
#include <spdlog/spdlog.h>

#include "certs/push_cert.h"
#include "mdm/json_plist.h"
#include "server/admin/admin_api.h"
#include "server/admin/admin_json.h"

namespace courier::server {

namespace json = boost::json;

Response AdminApi::overview(Request&) {
    auto now = clock_.now();
    auto o = console_->overview(now - std::chrono::hours(1));
    if (!o.is_ok()) return status_response(o.status());
    auto certs = push_certs_.active_push_certs();
    if (!certs.is_ok()) return status_response(certs.status());
    json::object states;
    for (const char* s : {"pending", "enrolled", "unenrolled", "retired"}) {
        auto it = o->devices_by_state.find(s);
        states[s] = it == o->devices_by_state.end() ? 0 : it->second;
    }
    int64_t expiring = 0, expired = 0;
    for (const auto& c : *certs) {
        if (c.not_after <= now)
            ++expired;
        else if ((c.not_after - now) < std::chrono::days(opts_.cert_warn_days))
            ++expiring;
    }
    json::object out;
    out["devices"] = std::move(states);
    out["queue_depth"] = o->queue_depth;
    out["pushes_last_hour"] = o->pushes;
    out["push_errors_last_hour"] = o->push_errors;
    out["certificates"] = json::object{{"active", static_cast<int64_t>(certs->size())},
                                       {"expiring", expiring},
                                       {"expired", expired}};
    out["cert_warn_days"] = opts_.cert_warn_days;
    // The link devices enroll from: the --public-url devices reach, which
    // may differ from the address the console was opened at.
    out["enroll_url"] = opts_.public_url + "/enroll";
    out["generated_at"] = format_rfc3339(now);
    return json_response(200, out);
}

Response AdminApi::pushcert_csr(Request& req) {
    std::string cn = "Courier Push", email;
    if (!req.body.empty()) {
        auto v = mdm::parse_admin_json(req.body);
        if (!v.is_ok()) return status_response(v.status(), "body");
        if (!v->is_object()) return Response::error(400, "body: a JSON object or nothing");
        auto& o = v->as_object();
        for (const auto& [k, val] : o) {
            if (k != "common_name" && k != "email")
                return Response::error(400, "unknown key " + std::string(k));
            if (!val.is_string() || val.as_string().size() > 64)
                return Response::error(400, std::string(k) + ": a string of at most 64 characters");
        }
        if (auto* v2 = o.if_contains("common_name"); v2 && !v2->as_string().empty())
            cn = v2->as_string();
        if (auto* v2 = o.if_contains("email")) email = v2->as_string();
    }
    auto csr = certs::make_push_csr(cn, email);
    if (!csr.is_ok()) return status_response(csr.status(), "CSR");
    auto id = console_->put_pending_push_key(csr->key_pem, clock_.now());
    if (!id.is_ok()) return status_response(id.status());
    spdlog::info("push certificate CSR made (key {} kept until its certificate is uploaded)", *id);
    json::object out{{"csr_pem", csr->csr_pem},
                     {"key_kept", true},
                     {"filename", "courier-push.csr"},
                     {"vendor_request", nullptr}};
    if (!opts_.vendor_cert_pem.empty()) {
        auto signed_req = certs::make_vendor_signed_request(csr->csr_pem, opts_.vendor_cert_pem,
                                                            opts_.vendor_key_pem);
        if (!signed_req.is_ok()) return status_response(signed_req.status(), "vendor signing");
        out["vendor_request"] = *signed_req;
        out["vendor_filename"] = "courier-push-request.txt";
    }
    return json_response(201, out);
}

std::optional<std::string> AdminApi::with_pending_key(const std::string& body, int64_t* key_id) {
    if (!console_ || body.find("-----BEGIN CERTIFICATE-----") == std::string::npos ||
        body.find("PRIVATE KEY-----") != std::string::npos)
        return std::nullopt;
    auto keys = console_->pending_push_keys();
    if (!keys.is_ok()) return std::nullopt;
    auto cert = certs::certs_from_pem(body);
    if (!cert.is_ok() || cert->empty()) return std::nullopt;
    EVP_PKEY* cert_key = X509_get0_pubkey(cert->front().get());
    for (const auto& k : *keys) {
        auto key = certs::key_from_pem(k.key_pem);
        if (key.is_ok() && cert_key && EVP_PKEY_eq(cert_key, key->get()) == 1) {
            *key_id = k.id;
            return body + "\n" + k.key_pem;
        }
    }
    return std::nullopt;
}

}  // namespace courier::server
