// Enrollment tokens: create (shown once), list, revoke (docs/api.md
// "Enrollment tokens").
#include <boost/json.hpp>

#include "certs/x509.h"
#include "common/encoding.h"
#include "mdm/json_plist.h"
#include "server/admin/admin_api.h"
#include "server/admin/admin_json.h"

namespace courier::server {

namespace json = boost::json;

Response AdminApi::create_token(Request& req) {
    db::EnrollmentToken t;
    t.uses_left = 1;
    if (!req.body.empty()) {
        auto parsed = mdm::parse_admin_json(req.body);
        if (!parsed.is_ok()) return Response::error(400, parsed.status().message());
        if (!parsed->is_object()) return Response::error(400, "body must be a JSON object");
        const auto& o = parsed->as_object();
        if (const auto* u = o.if_contains("uses")) {
            if (!u->is_int64() || (u->as_int64() < 1 && u->as_int64() != -1))
                return Response::error(400, "uses: a positive number, or -1 for unlimited");
            t.uses_left = u->as_int64();
        }
        if (const auto* e = o.if_contains("expires_at"); e && !e->is_null()) {
            if (e->is_string()) t.expires_at = parse_rfc3339(std::string(e->as_string()));
            if (!t.expires_at) return Response::error(400, "expires_at: not an RFC 3339 time");
            if (*t.expires_at <= clock_.now())
                return Response::error(400, "expires_at: in the past; the token would be dead");
        }
        if (const auto* n = o.if_contains("note")) {
            if (!n->is_string()) return Response::error(400, "note: must be a string");
            t.note = std::string(n->as_string());
        }
    }
    std::string token = random_token(24);
    t.id = random_token(8);
    t.token_sha256 = certs::sha256_hex(token);
    t.created_at = clock_.now();
    if (auto s = tokens_.put_enrollment_token(t); !s.is_ok()) return status_response(s);
    json::object o{{"id", t.id},
                   {"token", token},
                   {"uses_left", t.uses_left},
                   {"expires_at", time_json(t.expires_at)},
                   {"note", t.note},
                   {"enroll_url", opts_.public_url + "/enroll?token=" + token}};
    return json_response(201, o);
}

Response AdminApi::list_tokens(Request&) {
    auto list = tokens_.enrollment_tokens();
    if (!list.is_ok()) return status_response(list.status());
    json::array items;
    for (const auto& t : *list)
        items.push_back(json::object{{"id", t.id},
                                     {"uses_left", t.uses_left},
                                     {"expires_at", time_json(t.expires_at)},
                                     {"created_at", format_rfc3339(t.created_at)},
                                     {"note", t.note}});
    return json_response(200, json::object{{"items", std::move(items)}});
}

Response AdminApi::delete_token(Request& req) {
    auto s = tokens_.delete_enrollment_token(req.params["id"]);
    if (!s.is_ok()) return status_response(s);
    return json_response(200, json::object{{"deleted", req.params["id"]}});
}

}  // namespace courier::server
