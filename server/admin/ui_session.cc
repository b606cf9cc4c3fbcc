#include "server/admin/ui_session.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include "certs/x509.h"
#include "common/encoding.h"
#include "mdm/json_plist.h"
#include "server/admin/admin_json.h"

namespace courier::server {

namespace json = boost::json;

namespace {

std::string base64url(std::string_view bytes) {
    std::string s = base64_encode(bytes);
    for (char& c : s) {
        if (c == '+') c = '-';
        if (c == '/') c = '_';
    }
    while (!s.empty() && s.back() == '=') s.pop_back();
    return s;
}

Response unauthorized(std::string_view message) {
    Response r = Response::error(401, message);
    r.headers["WWW-Authenticate"] = "Bearer realm=\"courier\"";
    return r;
}

// The value of cookie `name` in a Cookie header, or nullopt.
std::optional<std::string_view> cookie_value(std::string_view header, std::string_view name) {
    while (!header.empty()) {
        auto semi = header.find(';');
        std::string_view part = header.substr(0, semi);
        header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
        while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
        auto eq = part.find('=');
        if (eq != std::string_view::npos && part.substr(0, eq) == name) return part.substr(eq + 1);
    }
    return std::nullopt;
}

std::string set_cookie(std::string_view value, int64_t max_age) {
    return std::string(UiSessions::kCookie) + "=" + std::string(value) +
           "; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(max_age);
}

}  // namespace

UiSessions::UiSessions(db::SessionStore& store, const Clock& clock, UiSessionOptions opts)
    : store_(store), clock_(clock), opts_(std::move(opts)) {}

std::string UiSessions::mac(std::string_view data) const {
    unsigned char out[EVP_MAX_MD_SIZE];
    size_t len = 0;
    if (!EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, opts_.api_key.data(),
                   opts_.api_key.size(), reinterpret_cast<const unsigned char*>(data.data()),
                   data.size(), out, sizeof out, &len))
        return {};
    return base64url(std::string_view(reinterpret_cast<const char*>(out), len));
}

std::string UiSessions::csrf_for(const std::string& id) const {
    return mac("courier csrf|" + id);
}

bool UiSessions::changes_something(const Request& req) {
    if (req.method == "GET" || req.method == "HEAD") return req.path.starts_with("/v1/push/");
    return true;
}

bool UiSessions::has_cookie(const Request& req) const {
    const std::string* h = req.header("Cookie");
    return h && cookie_value(*h, kCookie).has_value();
}

std::optional<UiSessions::Presented> UiSessions::presented(const Request& req) const {
    if (opts_.api_key.empty()) return std::nullopt;
    const std::string* h = req.header("Cookie");
    if (!h) return std::nullopt;
    auto v = cookie_value(*h, kCookie);
    if (!v || v->size() > 200) return std::nullopt;
    auto dot1 = v->find('.');
    auto dot2 = v->rfind('.');
    if (dot1 == std::string_view::npos || dot1 == dot2) return std::nullopt;
    std::string id(v->substr(0, dot1));
    std::string exp(v->substr(dot1 + 1, dot2 - dot1 - 1));
    std::string_view given = v->substr(dot2 + 1);
    if (id.empty() || exp.empty() || exp.size() > 12 ||
        exp.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    std::string want = mac("courier session|" + id + "|" + exp);
    if (want.empty() || !constant_time_equal(given, want)) return std::nullopt;
    SysTime expires = from_unix(std::stoll(exp));
    if (expires <= clock_.now()) return std::nullopt;
    return Presented{std::move(id), expires};
}

std::optional<Response> UiSessions::header_refusal(const Request& req) const {
    auto p = presented(req);
    if (!p) return unauthorized("session expired or not valid: sign in again");
    if (changes_something(req)) {
        const std::string* token = req.header("X-CSRF-Token");
        if (!token || !constant_time_equal(*token, csrf_for(p->id)))
            return Response::error(403, "missing or wrong X-CSRF-Token for this session");
    }
    return std::nullopt;
}

std::optional<Response> UiSessions::ended(const Request& req) const {
    auto p = presented(req);
    if (!p) return unauthorized("session expired or not valid: sign in again");
    auto s = store_.session(certs::sha256_hex(p->id), clock_.now());
    if (!s.is_ok()) return status_response(s.status(), "session");
    if (!s->has_value()) return unauthorized("session ended: sign in again");
    return std::nullopt;
}

void UiSessions::register_routes(Router& router, CrossSite cross_site) {
    HeaderCheck origin = [cross_site](const Request& req) -> std::optional<Response> {
        if (auto why = cross_site(req))
            return Response::error(403, "cross-site request refused (" + *why + ")");
        return std::nullopt;
    };
    // The sign-in body is {"api_key": …}: nothing larger is read.
    HeaderCheck sign_in_check = [origin](const Request& req) -> std::optional<Response> {
        if (auto r = origin(req)) return r;
        const std::string* len = req.header("Content-Length");
        if (len && (len->size() > 5 || std::atoi(len->c_str()) > 4096))
            return Response::error(413, "sign-in body: at most 4096 bytes");
        return std::nullopt;
    };
    HeaderCheck session_check = [this, origin](const Request& req) -> std::optional<Response> {
        if (auto r = origin(req)) return r;
        return header_refusal(req);
    };
    auto guard = [](HeaderCheck check, Handler h) -> Handler {
        return [check, h](Request& req) {
            if (auto r = check(req)) return std::move(*r);
            return h(req);
        };
    };
    router.add("POST", "/ui/session",
               guard(sign_in_check, [this](Request& r) { return sign_in(r); }), sign_in_check);
    router.add("GET", "/ui/session",
               guard(session_check, [this](Request& r) { return current(r); }), session_check);
    router.add("DELETE", "/ui/session",
               guard(session_check, [this](Request& r) { return sign_out(r); }), session_check);
}

Response UiSessions::sign_in(Request& req) {
    if (req.body.size() > 4096) return Response::error(413, "sign-in body: at most 4096 bytes");
    auto v = mdm::parse_admin_json(req.body);
    const json::string* key = nullptr;
    if (v.is_ok() && v->is_object())
        if (auto* k = v->as_object().if_contains("api_key"); k && k->is_string())
            key = &k->as_string();
    if (!key) return Response::error(400, "body must be {\"api_key\": \"…\"}");
    if (opts_.api_key.empty() ||
        !constant_time_equal(std::string_view(key->data(), key->size()), opts_.api_key)) {
        spdlog::warn("console sign-in refused from {}: wrong API key", req.remote_address);
        return unauthorized("wrong API key");
    }
    auto now = clock_.now();
    std::string id = base64url(random_bytes(32));
    SysTime expires = now + opts_.lifetime;
    auto s = store_.put_session({certs::sha256_hex(id), now, expires});
    if (!s) return status_response(s, "session");
    std::string exp = std::to_string(to_unix(expires));
    Response r = json_response(
        201, json::object{{"csrf_token", csrf_for(id)}, {"expires_at", format_rfc3339(expires)}});
    r.headers["Set-Cookie"] = set_cookie(
        id + "." + exp + "." + mac("courier session|" + id + "|" + exp), opts_.lifetime.count());
    r.headers["Cache-Control"] = "no-store";
    spdlog::info("console session started from {} (until {})", req.remote_address,
                 format_rfc3339(expires));
    return r;
}

// The CSRF token again, for a page loaded while the session lives (the
// console keeps the token in memory only).
Response UiSessions::current(Request& req) {
    if (auto r = ended(req)) return std::move(*r);
    auto p = presented(req);
    Response r = json_response(200, json::object{{"csrf_token", csrf_for(p->id)},
                                                 {"expires_at", format_rfc3339(p->expires)}});
    r.headers["Cache-Control"] = "no-store";
    return r;
}

Response UiSessions::sign_out(Request& req) {
    auto p = presented(req);
    if (!p) return unauthorized("session expired or not valid");
    auto s = store_.delete_session(certs::sha256_hex(p->id));
    if (!s) return status_response(s, "session");
    Response r = Response::empty(204);
    r.headers["Set-Cookie"] = set_cookie("", 0);
    spdlog::info("console session ended from {}", req.remote_address);
    return r;
}

}  // namespace courier::server
