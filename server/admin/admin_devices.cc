// Devices, their timelines, explicit pushes, retirement (docs/api.md).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "apns/push_service.h"
#include "certs/x509.h"
#include "common/encoding.h"
#include "mdm/json_plist.h"
#include "server/admin/admin_api.h"
#include "server/admin/admin_json.h"

namespace courier::server {

namespace json = boost::json;

Response AdminApi::list_devices(Request& req) {
    db::EnrollmentFilter f;
    if (std::string s = req.query_or("state"); !s.empty()) {
        for (auto st : {db::EnrollmentState::kPending, db::EnrollmentState::kEnrolled,
                        db::EnrollmentState::kUnenrolled, db::EnrollmentState::kRetired})
            if (s == db::state_name(st)) f.state = st;
        if (!f.state)
            return Response::error(400, "state: one of pending, enrolled, unenrolled, retired");
    }
    if (std::string s = req.query_or("enrolled"); !s.empty()) {
        if (s != "true" && s != "1")
            return Response::error(400, "enrolled: only true is supported");
        f.state = db::EnrollmentState::kEnrolled;
    }
    f.topic = req.query_or("topic");
    f.serial_number = req.query_or("serial_number");
    f.query = req.query_or("q");
    if (f.query.size() > 256) return Response::error(400, "q: at most 256 characters");
    if (std::string s = req.query_or("seen_since"); !s.empty()) {
        f.seen_since = parse_rfc3339(s);
        if (!f.seen_since) return Response::error(400, "seen_since: not an RFC 3339 time");
    }
    auto page = page_from(req);
    if (!page.is_ok()) return status_response(page.status());
    auto list = enrollments_.list_enrollments(f, *page);
    if (!list.is_ok()) return status_response(list.status());
    json::array items;
    for (const auto& e : list->items) items.push_back(device_json(e));
    return json_response(200, page_json(std::move(items), list->next_cursor));
}

Response AdminApi::get_device(Request& req) {
    auto e = enrollments_.enrollment(req.params["id"]);
    if (!e.is_ok()) return status_response(e.status());
    return json_response(200, device_json(*e));
}

Response AdminApi::device_commands(Request& req) {
    auto e = enrollments_.enrollment(req.params["id"]);
    if (!e.is_ok()) return status_response(e.status());
    db::CommandFilter f;
    f.enrollment_id = req.params["id"];
    if (std::string s = req.query_or("status"); !s.empty()) {
        f.status = db::parse_target_status(s);
        if (!f.status) return Response::error(400, "status: unknown status " + s);
    }
    auto page = page_from(req);
    if (!page.is_ok()) return status_response(page.status());
    auto list = queue_.list_commands(f, *page);
    if (!list.is_ok()) return status_response(list.status());
    json::array items;
    for (const auto& c : list->items) items.push_back(command_json(c, true));
    return json_response(200, page_json(std::move(items), list->next_cursor));
}

Response AdminApi::device_timeline(Request& req) {
    auto e = enrollments_.enrollment(req.params["id"]);
    if (!e.is_ok()) return status_response(e.status());
    auto page = page_from(req);
    if (!page.is_ok()) return status_response(page.status());
    auto events = enrollments_.timeline(req.params["id"], static_cast<size_t>(page->limit));
    if (!events.is_ok()) return status_response(events.status());
    json::array items;
    for (const auto& ev : *events)
        items.push_back(
            json::object{{"at", format_rfc3339(ev.at)}, {"kind", ev.kind}, {"detail", ev.detail}});
    return json_response(200, json::object{{"items", std::move(items)}});
}

Response AdminApi::retire(Request& req, bool retired) {
    const std::string& id = req.params["id"];
    auto s = enrollments_.set_retired(id, retired, clock_.now());
    if (!s.is_ok()) return status_response(s);
    spdlog::warn("enrollment {} {} by an administrator", id, retired ? "retired" : "un-retired");
    auto e = enrollments_.enrollment(id);
    if (!e.is_ok()) return status_response(e.status());
    return json_response(200, device_json(*e));
}

namespace {
json::object binding_json(const db::Binding& b) {
    return json::object{{"cert_sha256", b.cert_sha256},
                        {"state", db::binding_state_name(b.state)},
                        {"pending", b.state == db::BindingState::kPending ||
                                        b.state == db::BindingState::kApproved},
                        {"not_after", time_json(b.not_after)},
                        {"bound_at", format_rfc3339(b.bound_at)},
                        {"superseded_at", time_json(b.superseded_at)},
                        {"last_used", time_json(b.last_used)}};
}

// The device id whose bindings /v1/devices/{id}/bindings… names: a user
// channel "<device>:<user>" shares its device's. 404 when unknown.
Result<std::string> binding_device(db::EnrollmentStore& store, const std::string& id) {
    auto e = store.enrollment(id);
    if (!e.is_ok()) return e.status();
    return e->device_id;
}

bool is_sha256_hex(const std::string& s) {
    return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}
}  // namespace

Response AdminApi::list_bindings(Request& req) {
    auto device = binding_device(enrollments_, req.params["id"]);
    if (!device.is_ok()) return status_response(device.status());
    auto list = bindings_.bindings(*device);
    if (!list.is_ok()) return status_response(list.status());
    json::array items;
    int active = 0;
    for (const auto& b : *list) {
        items.push_back(binding_json(b));
        active += b.state == db::BindingState::kActive;
    }
    // Bindings made before migration 5 could leave a device with several
    // active identities (a planted one among them): flagged for an admin.
    return json_response(
        200, json::object{{"items", std::move(items)}, {"multiple_active", active > 1}});
}

namespace {
// POST …/approve and DELETE …/bindings/{sha256}: the same checks and answer
// around one store change; `what` completes the warn line.
template <class Change>
Response change_binding(db::EnrollmentStore& enrollments, db::BindingStore& bindings, Request& req,
                        const char* what, Change change) {
    const std::string& sha = req.params["sha256"];
    if (!is_sha256_hex(sha))
        return Response::error(400, "sha256: 64 lowercase hex digits (cert_sha256 of a binding)");
    auto device = binding_device(enrollments, req.params["id"]);
    if (!device.is_ok()) return status_response(device.status());
    auto s = change(*device, sha);
    if (!s.is_ok()) return status_response(s);
    spdlog::warn("identity sha256:{}… of device {} {} by an administrator", sha.substr(0, 16),
                 *device, what);
    auto b = bindings.binding(sha);
    if (!b.is_ok()) return status_response(b.status());
    if (!b->has_value())
        return status_response(internal_error("binding vanished after the change"));
    return json_response(200, binding_json(**b));
}
}  // namespace

Response AdminApi::approve_binding(Request& req) {
    return change_binding(enrollments_, bindings_, req, "approved for re-binding",
                          [&](const std::string& device, const std::string& sha) {
                              return bindings_.approve_binding(device, sha, clock_.now());
                          });
}

Response AdminApi::revoke_binding(Request& req) {
    return change_binding(enrollments_, bindings_, req, "revoked",
                          [&](const std::string& device, const std::string& sha) {
                              return bindings_.revoke_binding(device, sha, clock_.now());
                          });
}

Response AdminApi::push_now(Request& req) {
    if (req.target.size() > 8192) return Response::error(414, "too many ids for a URL");
    auto ids = split_ids(req.params["ids"]);
    if (ids.empty()) return Response::error(400, "no enrollment id in the path");
    auto known = enrollments_.existing_enrollments(ids);
    if (!known.is_ok()) return status_response(known.status());
    std::set<std::string> known_set(known->begin(), known->end());
    json::object status;
    std::vector<std::string> to_push;
    for (const auto& id : ids) {
        if (known_set.count(id))
            to_push.push_back(id);
        else
            status[id] = json::object{{"push_error", "no enrollment with this id"}};
    }
    if (to_push.empty())
        return json_response(404, json::object{{"error", "none of the ids is enrolled"},
                                               {"status", std::move(status)}});
    auto outcomes = push_.push_and_wait(to_push, opts_.push_wait);
    size_t pushed = 0;
    for (const auto& id : to_push) {
        const auto& o = outcomes[id];
        if (o.pushed) {
            ++pushed;
            status[id] = json::object{{"push_result", o.apns_id}};
        } else {
            status[id] = json::object{{"push_error", o.error}};
        }
    }
    int code =
        pushed == ids.size() ? 200 : (pushed == 0 && to_push.size() == ids.size() ? 502 : 207);
    return json_response(code, json::object{{"status", std::move(status)}});
}

}  // namespace courier::server
