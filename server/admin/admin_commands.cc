// Queuing commands and reading their results.
#include <spdlog/spdlog.h>

#include <set>

#include "apns/push_service.h"
#include "mdm/command.h"
#include "mdm/json_plist.h"
#include "server/admin/admin_api.h"
#include "server/admin/admin_json.h"

namespace courier::server {

namespace json = boost::json;

namespace {
constexpr size_t kMaxEnqueueTarget = 8192;  // Settled details: "unknown targets"

bool flag(const Request& req, const char* name) {
    std::string v = req.query_or(name);
    return v == "1" || v == "true" || v == "yes";
}

// Commands that act on many devices at once are worth an audit line.
void audit(const std::string& request_type, size_t targets, const std::string& uuid) {
    if ((request_type == "EraseDevice" || request_type == "DeviceLock") && targets > 1)
        spdlog::warn("{} {} queued for {} devices", request_type, uuid, targets);
}
}  // namespace

Response AdminApi::enqueue(Request& req) {
    if (req.target.size() > kMaxEnqueueTarget)
        return Response::error(414,
                               "too many ids for a URL: use POST /v1/commands for large "
                               "fan-out");
    auto ids = split_ids(req.params["ids"]);
    if (ids.empty()) return Response::error(400, "no enrollment id in the path");
    auto cmd = mdm::command_from_raw_plist(req.body);
    if (!cmd.is_ok()) return status_response(cmd.status());

    db::NewCommand nc{cmd->uuid, cmd->request_type, cmd->plist, std::nullopt};
    if (std::string e = req.query_or("expires"); !e.empty()) {
        nc.expires_at = parse_rfc3339(e);
        if (!nc.expires_at) return Response::error(400, "expires: not an RFC 3339 time");
        if (*nc.expires_at <= clock_.now())
            return Response::error(400, "expires: in the past; nothing was queued");
    }
    bool nopush = flag(req, "nopush");
    nc.will_push = !nopush;
    auto now = clock_.now();
    auto res = queue_.enqueue(nc, ids, now);
    if (!res.is_ok()) {
        if (res.status().code() == Code::kConflict)
            return Response::error(409,
                                   "a command with CommandUUID " + cmd->uuid + " already exists");
        return status_response(res.status());
    }
    json::object status;
    for (const auto& id : res->unknown)
        status[id] = json::object{{"command_error", "no enrollment with this id"}};
    if (res->queued.empty()) {
        json::object o{{"error", "none of the ids is enrolled"},
                       {"command_uuid", cmd->uuid},
                       {"request_type", cmd->request_type},
                       {"status", std::move(status)},
                       {"no_push", nopush}};
        return json_response(404, o);
    }
    audit(cmd->request_type, res->queued.size(), cmd->uuid);
    metrics_.counter("courier_commands_total", {{"status", "queued"}})
        .inc(static_cast<double>(res->queued.size()));
    bool all_ok = res->unknown.empty();
    if (nopush) {
        for (const auto& id : res->queued) status[id] = json::object{};
    } else {
        auto outcomes = push_.enqueue_pushes(*res, opts_.push_wait, nc.expires_at);
        for (const auto& id : res->queued) {
            const auto& o = outcomes[id];
            if (o.pushed) {
                status[id] = json::object{{"push_result", o.apns_id}};
            } else {
                status[id] = json::object{{"push_error", o.error}};
                all_ok = false;
            }
        }
    }
    json::object o{{"command_uuid", cmd->uuid},
                   {"request_type", cmd->request_type},
                   {"status", std::move(status)},
                   {"no_push", nopush}};
    return json_response(all_ok ? 200 : 207, o);
}

Response AdminApi::post_command(Request& req) {
    auto parsed = mdm::parse_admin_json(req.body);
    if (!parsed.is_ok()) return Response::error(400, parsed.status().message());
    if (!parsed->is_object())
        return Response::error(400,
                               "body must be a JSON object: {\"targets\":[…],\"command\":{…}}");
    const auto& o = parsed->as_object();
    const auto* targets_v = o.if_contains("targets");
    const auto* command_v = o.if_contains("command");
    if (!targets_v || !targets_v->is_array() || targets_v->as_array().empty())
        return Response::error(400, "targets: a non-empty array of enrollment ids is required");
    if (!command_v || !command_v->is_object())
        return Response::error(400, "command: an object with RequestType is required");
    std::vector<std::string> targets;
    std::set<std::string> seen;
    for (const auto& t : targets_v->as_array()) {
        if (!t.is_string() || t.as_string().empty())
            return Response::error(400, "targets: every id must be a non-empty string");
        std::string id(t.as_string());
        if (seen.insert(id).second) targets.push_back(std::move(id));
    }
    bool do_push = true;
    if (const auto* p = o.if_contains("push")) {
        if (!p->is_bool()) return Response::error(400, "push: must be true or false");
        do_push = p->as_bool();
    }
    std::optional<SysTime> expires;
    if (const auto* e = o.if_contains("expires_at"); e && !e->is_null()) {
        if (e->is_string()) expires = parse_rfc3339(std::string(e->as_string()));
        if (!expires) return Response::error(400, "expires_at: not an RFC 3339 time");
        if (*expires <= clock_.now())
            return Response::error(400, "expires_at: in the past; nothing was queued");
    }
    std::optional<std::string> uuid;
    if (const auto* u = o.if_contains("command_uuid"); u && !u->is_null()) {
        if (!u->is_string() || u->as_string().empty())
            return Response::error(400, "command_uuid: must be a non-empty string");
        uuid = std::string(u->as_string());
    }
    auto cmd = mdm::command_from_json(command_v->as_object(), false, uuid);
    if (!cmd.is_ok()) return status_response(cmd.status());

    auto existing = enrollments_.existing_enrollments(targets);
    if (!existing.is_ok()) return status_response(existing.status());
    if (existing->size() != targets.size()) {
        std::set<std::string> known(existing->begin(), existing->end());
        json::array unknown;
        for (const auto& t : targets)
            if (!known.count(t)) unknown.push_back(json::value(t));
        json::object err{{"error", "unknown enrollment id(s); nothing was queued"},
                         {"unknown", std::move(unknown)}};
        return json_response(404, err);
    }
    db::NewCommand nc{cmd->uuid, cmd->request_type, cmd->plist, expires};
    nc.will_push = do_push;
    auto res = queue_.enqueue(nc, targets, clock_.now());
    if (!res.is_ok()) {
        if (res.status().code() == Code::kConflict)
            return Response::error(409, "a command with uuid " + cmd->uuid + " already exists");
        return status_response(res.status());
    }
    audit(cmd->request_type, res->queued.size(), cmd->uuid);
    metrics_.counter("courier_commands_total", {{"status", "queued"}})
        .inc(static_cast<double>(res->queued.size()));
    json::object tj;
    std::map<std::string, apns::PushOutcome> outcomes;
    if (do_push) outcomes = push_.enqueue_pushes(*res, opts_.push_wait, expires);
    for (const auto& id : res->queued) {
        json::object p;
        if (!do_push) {
            p["status"] = "skipped";
        } else if (const auto& out = outcomes[id]; out.pushed) {
            p["status"] = "pushed";
            p["apns_id"] = out.apns_id;
        } else {
            p["status"] = "error";
            p["error"] = out.error;
        }
        tj[id] = json::object{{"push", std::move(p)}};
    }
    json::object answer{{"command_uuid", cmd->uuid},
                        {"request_type", cmd->request_type},
                        {"targets", std::move(tj)}};
    return json_response(201, answer);
}

Response AdminApi::get_command(Request& req) {
    auto c = queue_.command(req.params["uuid"]);
    if (!c.is_ok()) return status_response(c.status());
    return json_response(200, command_json(*c, true));
}

Response AdminApi::delete_command(Request& req) {
    const std::string& uuid = req.params["uuid"];
    std::unique_ptr<db::EventAttachment> events;
    if (opts_.cancel_events) {
        auto cmd = queue_.command(uuid);
        if (!cmd.is_ok()) return status_response(cmd.status());
        events = opts_.cancel_events(*cmd);
    }
    auto canceled = queue_.cancel_command(uuid, clock_.now());
    events.reset();
    if (!canceled.is_ok()) return status_response(canceled.status());
    if (canceled->empty())
        return Response::error(409, "every target already received or finished this command");
    json::array ids;
    for (const auto& id : *canceled) ids.push_back(json::value(id));
    spdlog::info("command {} canceled for {} target(s)", uuid, canceled->size());
    return json_response(200, json::object{{"canceled", std::move(ids)}});
}

Response AdminApi::list_commands(Request& req) {
    db::CommandFilter f;
    if (std::string s = req.query_or("status"); !s.empty()) {
        f.status = db::parse_target_status(s);
        if (!f.status) return Response::error(400, "status: unknown status " + s);
    }
    f.request_type = req.query_or("request_type");
    f.enrollment_id = req.query_or("device");
    if (std::string s = req.query_or("since"); !s.empty()) {
        f.since = parse_rfc3339(s);
        if (!f.since) return Response::error(400, "since: not an RFC 3339 time");
    }
    auto page = page_from(req);
    if (!page.is_ok()) return status_response(page.status());
    auto list = queue_.list_commands(f, *page);
    if (!list.is_ok()) return status_response(list.status());
    json::array items;
    for (const auto& c : list->items) items.push_back(command_json(c, false));
    return json_response(200, page_json(std::move(items), list->next_cursor));
}

}  // namespace courier::server
