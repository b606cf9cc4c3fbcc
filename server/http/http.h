// Courier's HTTP model, free of Beast: handlers see Request and return
// Response, so the routing and handler code compiles and tests without Asio.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace courier::server {

struct CaseLess {
    bool operator()(std::string_view a, std::string_view b) const;
};
using Headers = std::map<std::string, std::string, CaseLess>;

struct Request {
    std::string method;                        // "GET", "PUT", ...
    std::string target;                        // as received, with the query string
    std::string path;                          // percent-decoded path, no query
    std::map<std::string, std::string> query;  // last value wins
    Headers headers;
    std::string body;
    bool tls = false;             // arrived on the HTTPS listener
    std::string client_cert_der;  // TLS client certificate, if one was presented
    std::string remote_address;
    std::map<std::string, std::string> params;  // path parameters set by the router

    const std::string* header(std::string_view name) const;
    std::string query_or(const std::string& key, std::string fallback = {}) const;
};

struct Response {
    int status = 200;
    Headers headers;
    std::string body;
    // Filled by handlers for the request log: the enrollment the request was for.
    std::string log_enrollment;

    static Response json(int status, std::string body);
    // {"error": message}
    static Response error(int status, std::string_view message);
    static Response empty(int status = 200);
    static Response plist(std::string body);
};

// Who gets the answer: devices act on 401 by unenrolling (docs/device-endpoints.md,
// "Refusals never say 401"), so on the device endpoints an identity failure is a 400.
enum class Audience { kAdmin, kDevice };

// The one mapping from Status to HTTP, used by every handler:
// kInvalid → 400, kUnauthorized → 401 (400 for devices), kForbidden → 403,
// kNotFound → 404 (400 for devices: no enrollment), kConflict → 409, kTooLarge → 413, kUnavailable
// → 503, kInternal → 500. A storage failure is kUnavailable, so 503 everywhere.
int http_status(Code code, Audience audience = Audience::kAdmin);

// {"error": context + ": " + s.message()} (or just the message without a
// context) with http_status(s.code()). 5xx answers are logged at error.
// s must not be ok.
Response status_response(const Status& s, std::string_view context = {},
                         Audience audience = Audience::kAdmin);

using Handler = std::function<Response(Request&)>;
// Decides from the request line and headers alone, before any of the body is
// read: a refusal, or nullopt to go on (see Router::check_header).
using HeaderCheck = std::function<std::optional<Response>(const Request&)>;

// Maps method + path pattern to handlers. Patterns are literal segments and
// "{name}" segments (one path segment, percent-decoded, into Request::params);
// a trailing "{name...}" takes the rest. Unknown path: 404; known path with
// another method: 405 with Allow. Both JSON errors.
class Router {
  public:
    // `check`, when given, runs in check_header() before the body is read
    // (the admin API's key check: docs/security.md, "Unauthenticated bodies").
    void add(std::string method, std::string pattern, Handler h, HeaderCheck check = {});
    Response dispatch(Request& req) const;
    // Called once the header is parsed, before a body is read or `100
    // Continue` sent. A refusal means the body is never read: no route
    // (404/405, no handler runs), a body declared for a GET, HEAD or DELETE
    // (413: none of them takes one), or the route's own HeaderCheck.
    std::optional<Response> check_header(const Request& req) const;
    // "GET /v1/devices/{id}" for every route (the OpenAPI coverage test).
    std::vector<std::string> routes() const;
    // The pattern that matched, for metrics labels ("" when none).
    std::string route_of(const Request& req) const;

  private:
    struct Route {
        std::string method, pattern;
        std::vector<std::string> segments;
        Handler handler;
        HeaderCheck check;
    };
    const Route* match(const Request& req, std::map<std::string, std::string>* params,
                       bool* path_known, std::string* allow) const;
    std::vector<Route> routes_;
};

// Splits a request target into decoded path and query (application/x-www-form-urlencoded).
// false when the target is malformed (bad percent escape, not starting with '/').
bool parse_target(std::string_view target, std::string* path,
                  std::map<std::string, std::string>* query);

}  // namespace courier::server
