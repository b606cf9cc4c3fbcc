// The web console's sign-in (SPEC "Web console"): the API key exchanged for
// a session cookie and a CSRF token.
//
// The cookie is `__Host-courier_session=<id>.<expiry>.<mac>`: a random id,
// its expiry (Unix seconds, at most 12 h after sign-in) and an HMAC-SHA256
// of both keyed with the API key. The CSRF token is an HMAC of the id under
// the same key. Both are checked from the request header alone, without the
// store (Router::check_header runs before a body is read, on an I/O thread):
// only a cookie this server (or another node with the same key) issued gets
// its body read. The store keeps the SHA-256 of each live id, so sign-out
// ends a session on every node; that is checked on a worker before a
// handler runs (ended()). Changing the API key ends every session.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "common/clock.h"
#include "db/session_store.h"
#include "server/http/http.h"

namespace courier::server {

struct UiSessionOptions {
    std::string api_key;
    std::chrono::seconds lifetime{12 * 3600};
};

class UiSessions {
  public:
    UiSessions(db::SessionStore& store, const Clock& clock, UiSessionOptions opts);

    // POST /ui/session, GET /ui/session, DELETE /ui/session. `cross_site`
    // is the admin API's Origin check (AdminApi::cross_site).
    using CrossSite = std::function<std::optional<std::string>(const Request&)>;
    void register_routes(Router& router, CrossSite cross_site);

    // The request carries a session cookie (valid or not).
    bool has_cookie(const Request& req) const;
    // From the header alone: nullopt when the cookie is one this server
    // issued, unexpired, and (where needed) the X-CSRF-Token matches; else
    // 401, or 403 for a good cookie without its CSRF token.
    std::optional<Response> header_refusal(const Request& req) const;
    // Reads the store: 401 when the cookie's session was ended or is
    // unknown, 503 when the store fails, nullopt when it is live.
    std::optional<Response> ended(const Request& req) const;

    // Whether SPEC asks for the CSRF token: everything but a side-effect-free
    // GET (GET /v1/push pushes).
    static bool changes_something(const Request& req);

    static constexpr const char* kCookie = "__Host-courier_session";

  private:
    struct Presented {
        std::string id;
        SysTime expires{};
    };
    std::optional<Presented> presented(const Request& req) const;
    std::string mac(std::string_view data) const;
    std::string csrf_for(const std::string& id) const;

    Response sign_in(Request& req);
    Response current(Request& req);
    Response sign_out(Request& req);

    db::SessionStore& store_;
    const Clock& clock_;
    UiSessionOptions opts_;
};

}  // namespace courier::server
