#include "server/admin/admin_webhooks.h"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include "common/encoding.h"
#include "mdm/json_plist.h"
#include "server/admin/admin_api.h"
#include "server/admin/admin_json.h"
#include "server/webhook/webhook_service.h"

namespace courier::server {

namespace json = boost::json;

namespace {

constexpr size_t kMaxUrl = 2048, kMaxTopics = 64, kMaxTopic = 128, kMaxKey = 1024, kMaxId = 64;

bool id_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
}

json::object webhook_json(const db::Webhook& w) {
    json::object o;
    o["id"] = w.id;
    o["url"] = w.url;
    json::array topics;
    for (const auto& t : w.topics) topics.push_back(json::string(t));
    o["topics"] = std::move(topics);
    o["hmac_key_set"] = !w.hmac_key.empty();
    o["enabled"] = w.enabled;
    o["created_at"] = format_rfc3339(w.created_at);
    return o;
}

json::object delivery_json(const db::Delivery& d) {
    json::object o;
    o["event_id"] = d.event_id;
    o["topic"] = d.topic;
    o["enrollment_id"] = d.enrollment_id;
    o["status"] = db::delivery_status_name(d.status);
    o["attempts"] = d.attempts;
    o["last_status"] = d.last_status;
    o["last_error"] = d.last_error;
    o["created_at"] = format_rfc3339(d.created_at);
    if (d.status == db::DeliveryStatus::kPending)
        o["next_attempt"] = format_rfc3339(d.next_attempt);
    else
        o["next_attempt"] = nullptr;
    return o;
}

// Applies the JSON fields to w; the reason when a field is malformed.
std::string apply_fields(const json::object& o, db::Webhook* w, bool create) {
    for (const auto& kv : o) {
        std::string_view k = kv.key();
        const json::value& v = kv.value();
        if (k == "id") {
            if (!create) return "id cannot be changed";
            if (!v.is_string()) return "id must be a string";
            w->id = std::string(v.as_string());
        } else if (k == "url") {
            if (!v.is_string()) return "url must be a string";
            w->url = std::string(v.as_string());
        } else if (k == "topics") {
            if (!v.is_array()) return "topics must be an array of topic prefixes";
            w->topics.clear();
            for (const auto& t : v.as_array()) {
                if (!t.is_string()) return "topics must be an array of strings";
                w->topics.emplace_back(t.as_string());
            }
        } else if (k == "hmac_key") {
            if (v.is_null()) {
                w->hmac_key.clear();
            } else if (v.is_string()) {
                w->hmac_key = std::string(v.as_string());
            } else {
                return "hmac_key must be a string (or null to remove it)";
            }
        } else if (k == "enabled") {
            if (!v.is_bool()) return "enabled must be true or false";
            w->enabled = v.as_bool();
        } else if (k == "hmac_key_set" || k == "created_at") {
            // read-only fields echoed back by a client: ignored
        } else {
            return "unknown field " + std::string(k) + " (id, url, topics, hmac_key, enabled)";
        }
    }
    return {};
}

}  // namespace

std::string webhook_invalid(const db::Webhook& w) {
    if (w.id.empty() || w.id.size() > kMaxId || !std::all_of(w.id.begin(), w.id.end(), id_char))
        return "id must be 1-64 characters of A-Z a-z 0-9 . _ -";
    if (w.url.empty()) return "url is required";
    if (w.url.size() > kMaxUrl) return "url longer than 2048 characters";
    if (!w.url.starts_with("http://") && !w.url.starts_with("https://"))
        return "url must start with http:// or https://";
    if (w.url.size() <= 8 || w.url.find_first_of(" \t\r\n") != std::string::npos)
        return "url is malformed";
    if (w.topics.empty()) return "topics must name at least one prefix (e.g. \"mdm.\")";
    if (w.topics.size() > kMaxTopics) return "at most 64 topic prefixes";
    for (const auto& t : w.topics) {
        if (t.empty() || t.size() > kMaxTopic) return "a topic prefix must be 1-128 characters";
        for (char c : t)
            if (static_cast<unsigned char>(c) < 0x21 || c == ',' || c == 0x7f)
                return "a topic prefix must not contain spaces, control characters or commas";
    }
    if (w.hmac_key.size() > kMaxKey) return "hmac_key longer than 1024 bytes";
    return {};
}

void register_webhook_routes(Router& router, const AdminApi& admin, db::WebhookStore& store,
                             WebhookService& service, const Clock& clock) {
    HeaderCheck key_check = [&admin](const Request& req) -> std::optional<Response> {
        if (auto why = admin.cross_site(req))
            return Response::error(403, "cross-site request refused (" + *why + ")");
        if (!admin.authorized(req)) {
            Response r = Response::error(
                401, "missing or wrong API key (HTTP Basic password or Bearer token)");
            r.headers["WWW-Authenticate"] = "Bearer realm=\"courier\"";
            return r;
        }
        return std::nullopt;
    };
    auto add = [&](const char* method, const char* pattern, Handler h) {
        router.add(
            method, pattern,
            [key_check, h = std::move(h)](Request& req) {
                if (auto r = key_check(req)) return std::move(*r);
                return h(req);
            },
            key_check);
    };

    add("GET", "/v1/webhooks", [&store](Request&) {
        auto list = store.webhooks();
        if (!list.is_ok()) return status_response(list.status());
        json::array arr;
        for (const auto& w : *list) arr.push_back(webhook_json(w));
        json::object o;
        o["webhooks"] = std::move(arr);
        return json_response(200, o);
    });
    add("POST", "/v1/webhooks", [&store, &service, &clock](Request& req) {
        auto parsed = mdm::parse_admin_json(req.body);
        if (!parsed.is_ok()) return Response::error(400, parsed.status().message());
        if (!parsed->is_object()) return Response::error(400, "body must be a JSON object");
        db::Webhook w;
        w.topics = {"mdm."};
        if (auto why = apply_fields(parsed->as_object(), &w, true); !why.empty())
            return Response::error(400, why);
        if (w.id.empty()) w.id = random_uuid();
        if (auto why = webhook_invalid(w); !why.empty()) return Response::error(400, why);
        if (store.webhook(w.id).is_ok())
            return Response::error(409, "webhook " + w.id + " exists (PATCH it instead)");
        if (auto s = store.put_webhook(w, clock.now()); !s.is_ok()) return status_response(s);
        service.refresh();
        spdlog::info("webhook {} created ({} topic prefixes, {})", w.id, w.topics.size(),
                     w.hmac_key.empty() ? "unsigned" : "signed");
        auto stored = store.webhook(w.id);
        return json_response(201, webhook_json(stored.is_ok() ? *stored : w));
    });
    add("GET", "/v1/webhooks/{id}", [&store](Request& req) {
        auto w = store.webhook(req.params["id"]);
        if (!w.is_ok()) return status_response(w.status());
        return json_response(200, webhook_json(*w));
    });
    add("PATCH", "/v1/webhooks/{id}", [&store, &service, &clock](Request& req) {
        auto w = store.webhook(req.params["id"]);
        if (!w.is_ok()) return status_response(w.status());
        auto parsed = mdm::parse_admin_json(req.body);
        if (!parsed.is_ok()) return Response::error(400, parsed.status().message());
        if (!parsed->is_object()) return Response::error(400, "body must be a JSON object");
        db::Webhook updated = *w;
        if (auto why = apply_fields(parsed->as_object(), &updated, false); !why.empty())
            return Response::error(400, why);
        if (auto why = webhook_invalid(updated); !why.empty()) return Response::error(400, why);
        if (auto s = store.put_webhook(updated, clock.now()); !s.is_ok()) return status_response(s);
        service.refresh();
        return json_response(200, webhook_json(updated));
    });
    add("DELETE", "/v1/webhooks/{id}", [&store, &service](Request& req) {
        if (auto s = store.delete_webhook(req.params["id"]); !s.is_ok()) return status_response(s);
        service.refresh();
        return Response::empty(204);
    });
    add("GET", "/v1/webhooks/{id}/deliveries", [&store](Request& req) {
        auto page = page_from(req);
        if (!page.is_ok()) return Response::error(400, page.status().message());
        std::optional<db::DeliveryStatus> status;
        if (auto it = req.query.find("status"); it != req.query.end()) {
            status = db::parse_delivery_status(it->second);
            if (!status) return Response::error(400, "status must be pending, delivered or failed");
        }
        auto list = store.list_deliveries(req.params["id"], status, *page);
        if (!list.is_ok()) return status_response(list.status());
        json::array arr;
        for (const auto& d : list->items) arr.push_back(delivery_json(d));
        return json_response(200, page_json(std::move(arr), list->next_cursor));
    });
    add("POST", "/v1/webhooks/{id}/deliveries/{event_id}/retry",
        [&store, &service, &clock](Request& req) {
            auto s = store.retry_delivery(req.params["id"], req.params["event_id"], clock.now());
            if (!s.is_ok()) return status_response(s);
            service.poke();
            json::object o;
            o["retried"] = req.params["event_id"];
            return json_response(202, o);
        });
}

}  // namespace courier::server
