#include "server/admin/admin_api.h"

#include <spdlog/spdlog.h>

#include <cctype>

#include "apns/push_service.h"
#include "common/encoding.h"
#include "server/admin/admin_json.h"
#include "server/admin/ui_session.h"

namespace courier::server {

AdminApi::AdminApi(const Stores& stores, apns::PushService& push, const Clock& clock,
                   Metrics& metrics, AdminOptions opts)
    : enrollments_(stores.enrollments),
      bindings_(stores.bindings),
      queue_(stores.queue),
      push_certs_(stores.push_certs),
      tokens_(stores.tokens),
      console_(stores.console),
      push_(push),
      clock_(clock),
      metrics_(metrics),
      opts_(std::move(opts)) {}

bool AdminApi::authorized(const Request& req) const {
    const std::string* h = req.header("Authorization");
    if (!h || opts_.api_key.empty()) return false;
    std::string_view v = *h;
    auto starts = [&](std::string_view p) {
        return v.size() >= p.size() &&
               std::equal(p.begin(), p.end(), v.begin(), [](char a, char b) {
                   return std::tolower(static_cast<unsigned char>(a)) ==
                          std::tolower(static_cast<unsigned char>(b));
               });
    };
    if (starts("Bearer ")) {
        std::string_view key = v.substr(7);
        while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
        return constant_time_equal(key, opts_.api_key);
    }
    if (starts("Basic ")) {
        auto decoded = base64_decode(v.substr(6));
        if (!decoded) return false;
        auto colon = decoded->find(':');
        if (colon == std::string::npos) return false;
        return constant_time_equal(std::string_view(*decoded).substr(colon + 1), opts_.api_key);
    }
    return false;
}

namespace {
std::string lowered(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// "https://Host:443/x" → "https://host" (the form browsers send in Origin:
// scheme and host lower case, the scheme's default port left out).
std::string origin_of(std::string_view url) {
    auto sep = url.find("://");
    if (sep == std::string_view::npos) return {};
    std::string scheme = lowered(url.substr(0, sep));
    std::string_view rest = url.substr(sep + 3);
    rest = rest.substr(0, rest.find_first_of("/?#"));
    std::string host = lowered(rest);
    if ((scheme == "https" && host.ends_with(":443")) ||
        (scheme == "http" && host.ends_with(":80")))
        host.erase(host.rfind(':'));
    return scheme + "://" + host;
}

// 401 without a Basic challenge: a browser must never prompt for the key,
// nor cache it and send it along with a cross-site request.
Response unauthorized(std::string_view message) {
    Response r = Response::error(401, message);
    r.headers["WWW-Authenticate"] = "Bearer realm=\"courier\"";
    return r;
}
}  // namespace

std::optional<std::string> AdminApi::cross_site(const Request& req) const {
    if (const std::string* site = req.header("Sec-Fetch-Site")) {
        std::string v = lowered(*site);
        if (v != "same-origin" && v != "none") return "Sec-Fetch-Site: " + v;
    }
    const std::string* origin = req.header("Origin");
    if (!origin) return std::nullopt;
    std::string o = origin_of(*origin);
    if (o.empty()) return "Origin: " + *origin;  // "null" and anything malformed
    if (!opts_.public_url.empty() && o == origin_of(opts_.public_url)) return std::nullopt;
    if (const std::string* host = req.header("Host");
        host && o == origin_of((req.tls ? "https://" : "http://") + *host))
        return std::nullopt;
    return "Origin: " + *origin;
}

std::optional<Response> AdminApi::refusal(const Request& req, bool need_key) const {
    if (auto why = cross_site(req))
        return Response::error(403, "cross-site request refused (" + *why +
                                        "): the admin API answers its own origin only");
    if (need_key && !authorized(req)) {
        // The console's session cookie stands in for the key when no
        // Authorization header is sent (with one, cookies are ignored).
        if (ui_ && !req.header("Authorization") && ui_->has_cookie(req))
            return ui_->header_refusal(req);
        return unauthorized("missing or wrong API key (HTTP Basic password or Bearer token)");
    }
    return std::nullopt;
}

Handler AdminApi::guarded(Handler h) const {
    return [this, h = std::move(h)](Request& req) {
        if (auto r = refusal(req, true)) return std::move(*r);
        // A session cookie passed from the header alone; that it has not
        // been ended (sign-out) is read from the store, here on a worker.
        if (ui_ && !authorized(req))
            if (auto r = ui_->ended(req)) return std::move(*r);
        return h(req);
    };
}

void AdminApi::register_routes(Router& router) {
    // Every admin route checks origin and key twice: from the header, before
    // its body is read (docs/security.md, "Unauthenticated bodies"), and again in its handler.
    HeaderCheck key_check = [this](const Request& req) { return refusal(req, true); };
    auto add = [&](const char* method, const char* pattern, Handler h) {
        router.add(method, pattern, guarded(std::move(h)), key_check);
    };
    auto bind = [this](Response (AdminApi::*m)(Request&)) -> Handler {
        return [this, m](Request& req) { return (this->*m)(req); };
    };
    add("PUT", "/v1/pushcert", bind(&AdminApi::put_pushcert));
    add("GET", "/v1/pushcert", bind(&AdminApi::get_pushcert));
    add("GET", "/v1/pushcert/history", bind(&AdminApi::pushcert_history));
    if (console_) {
        add("POST", "/v1/pushcert/csr", bind(&AdminApi::pushcert_csr));
        add("GET", "/v1/overview", bind(&AdminApi::overview));
    }
    add("PUT", "/v1/enqueue/{ids}", bind(&AdminApi::enqueue));
    add("POST", "/v1/commands", bind(&AdminApi::post_command));
    add("GET", "/v1/commands", bind(&AdminApi::list_commands));
    add("GET", "/v1/commands/{uuid}", bind(&AdminApi::get_command));
    add("DELETE", "/v1/commands/{uuid}", bind(&AdminApi::delete_command));
    add("GET", "/v1/devices", bind(&AdminApi::list_devices));
    add("GET", "/v1/devices/{id}", bind(&AdminApi::get_device));
    add("GET", "/v1/devices/{id}/commands", bind(&AdminApi::device_commands));
    add("GET", "/v1/devices/{id}/timeline", bind(&AdminApi::device_timeline));
    add("POST", "/v1/devices/{id}/retire", [this](Request& req) { return retire(req, true); });
    add("POST", "/v1/devices/{id}/unretire", [this](Request& req) { return retire(req, false); });
    add("GET", "/v1/devices/{id}/bindings", bind(&AdminApi::list_bindings));
    add("POST", "/v1/devices/{id}/bindings/{sha256}/approve", bind(&AdminApi::approve_binding));
    add("DELETE", "/v1/devices/{id}/bindings/{sha256}", bind(&AdminApi::revoke_binding));
    add("GET", "/v1/push/{ids}", bind(&AdminApi::push_now));
    add("POST", "/v1/enrollment-tokens", bind(&AdminApi::create_token));
    add("GET", "/v1/enrollment-tokens", bind(&AdminApi::list_tokens));
    add("DELETE", "/v1/enrollment-tokens/{id}", bind(&AdminApi::delete_token));
    // /metrics: the key unless --metrics-public.
    HeaderCheck metrics_check = [this](const Request& req) {
        return refusal(req, !opts_.metrics_public);
    };
    router.add(
        "GET", "/metrics",
        [this, metrics_check](Request& req) {
            if (auto r = metrics_check(req)) return std::move(*r);
            return metrics(req);
        },
        metrics_check);
}

Response AdminApi::metrics(Request&) {
    Response r;
    r.status = 200;
    r.headers["Content-Type"] = "text/plain; version=0.0.4";
    r.body = metrics_.render();
    return r;
}

}  // namespace courier::server
