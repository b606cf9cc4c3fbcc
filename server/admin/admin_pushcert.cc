// PUT/GET /v1/pushcert: import and renewal of the yearly push certificate.
#include <spdlog/spdlog.h>

#include "apns/push_service.h"
#include "certs/push_cert.h"
#include "server/admin/admin_api.h"
#include "server/admin/admin_json.h"

namespace courier::server {

namespace json = boost::json;

namespace {
int64_t days_left(SysTime not_after, SysTime now) {
    auto secs = (not_after - now).count();
    return secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
}

json::object cert_json(const db::PushCert& c, SysTime now, int warn_days) {
    json::object o;
    int64_t left = days_left(c.not_after, now);
    bool expired = c.not_after <= now;
    o["topic"] = c.topic;
    o["not_before"] = format_rfc3339(c.not_before);
    o["not_after"] = format_rfc3339(c.not_after);
    o["days_left"] = left;
    o["thumbprint_sha1"] = c.thumbprint_sha1;
    o["expired"] = expired;
    o["expiring"] = !expired && left < warn_days;
    o["usable"] = c.usable && !expired;
    o["unusable_reason"] = c.usable ? (expired ? json::value("expired") : json::value(nullptr))
                                    : json::value(c.unusable_reason);
    o["uploaded_at"] = format_rfc3339(c.uploaded_at);
    return o;
}
}  // namespace

Response AdminApi::put_pushcert(Request& req) {
    std::string password = req.query_or("password");
    if (const std::string* h = req.header("X-Pkcs12-Password")) password = *h;
    auto now = clock_.now();
    auto parsed = certs::parse_push_cert(req.body, password, now);
    // The certificate alone, for a CSR the server made: its kept key completes it.
    int64_t pending_key = 0;
    if (!parsed.is_ok())
        if (auto completed = with_pending_key(req.body, &pending_key))
            parsed = certs::parse_push_cert(*completed, password, now);
    if (!parsed.is_ok()) return status_response(parsed.status());

    auto active = push_certs_.active_push_certs();
    if (!active.is_ok()) return status_response(active.status());
    bool renewal = false;
    for (const auto& c : *active) renewal |= c.topic == parsed->topic;
    bool add_topic = req.query_or("add_topic") == "1" || req.query_or("add_topic") == "true";
    if (!renewal && !active->empty() && !add_topic) {
        std::string topics;
        for (const auto& c : *active) topics += (topics.empty() ? "" : ", ") + c.topic;
        return Response::error(
            409, "this certificate's topic " + parsed->topic +
                     " differs from the stored topic(s) " + topics +
                     ": devices enrolled under the old topic would stop receiving pushes. "
                     "Renew the existing certificate with the same Apple ID at Apple's push "
                     "certificates portal, or add it as a second topic with ?add_topic=1");
    }
    db::PushCert pc;
    pc.topic = parsed->topic;
    pc.cert_pem = parsed->cert_pem;
    pc.key_pem = parsed->key_pem;
    pc.thumbprint_sha1 = parsed->thumbprint_sha1;
    pc.not_before = parsed->not_before;
    pc.not_after = parsed->not_after;
    pc.uploaded_at = now;
    pc.active = true;
    std::unique_ptr<db::EventAttachment> events;
    if (opts_.renewal_events) events = opts_.renewal_events(pc);
    auto id = push_certs_.put_push_cert(pc, now);
    events.reset();
    if (!id.is_ok()) return status_response(id.status());
    push_.reload_certificates();
    if (pending_key != 0 && console_) (void)console_->delete_pending_push_key(pending_key);
    spdlog::info("push certificate {} for topic {} (valid until {}) {}", pc.thumbprint_sha1,
                 pc.topic, format_rfc3339(pc.not_after), renewal ? "renewed" : "imported");
    json::object o;
    o["topic"] = pc.topic;
    o["not_before"] = format_rfc3339(pc.not_before);
    o["not_after"] = format_rfc3339(pc.not_after);
    o["thumbprint_sha1"] = pc.thumbprint_sha1;
    o["days_left"] = days_left(pc.not_after, now);
    o["renewed"] = renewal;
    return json_response(200, o);
}

Response AdminApi::get_pushcert(Request& req) {
    auto now = clock_.now();
    std::string topic = req.query_or("topic");
    if (!topic.empty()) {
        auto c = push_certs_.active_push_cert(topic);
        if (!c.is_ok()) return status_response(c.status());
        if (!c->has_value()) return Response::error(404, "no push certificate for topic " + topic);
        return json_response(200, cert_json(**c, now, opts_.cert_warn_days));
    }
    auto certs = push_certs_.active_push_certs();
    if (!certs.is_ok()) return status_response(certs.status());
    json::array arr;
    for (const auto& c : *certs) arr.push_back(cert_json(c, now, opts_.cert_warn_days));
    return json_response(200, json::object{{"certs", std::move(arr)}});
}

Response AdminApi::pushcert_history(Request&) {
    auto now = clock_.now();
    auto certs = push_certs_.push_cert_history();
    if (!certs.is_ok()) return status_response(certs.status());
    json::array arr;
    for (const auto& c : *certs) {
        auto o = cert_json(c, now, opts_.cert_warn_days);
        o["active"] = c.active;
        o["replaced_at"] = time_json(c.replaced_at);
        arr.push_back(std::move(o));
    }
    return json_response(200, json::object{{"certs", std::move(arr)}});
}

}  // namespace courier::server
