// `courier lock`, `install-profile`, `remove-profile`, `command`, `cancel`, `push`: commands and
// wake-ups (/v1/commands, /v1/push).
#include <fmt/format.h>

#include <iostream>

#include "common/encoding.h"
#include "common/file_io.h"
#include "server/client/cli_common.h"

namespace courier::client::cli {

namespace json = boost::json;

namespace {

void print_push_status(const json::value& v) {
    const auto* st = v.as_object().if_contains("status");
    if (!st || !st->is_object()) return;
    for (const auto& [id, s] : st->as_object()) {
        const auto& so = s.as_object();
        if (so.if_contains("push_result"))
            std::cout << fmt::format("{:<40} pushed ({})\n", std::string(id),
                                     field(so, "push_result"));
        else if (so.if_contains("push_error"))
            std::cout << fmt::format("{:<40} NOT pushed: {}\n", std::string(id),
                                     field(so, "push_error"));
        else if (so.if_contains("command_error"))
            std::cout << fmt::format("{:<40} NOT queued: {}\n", std::string(id),
                                     field(so, "command_error"));
        else
            std::cout << fmt::format("{:<40} queued\n", std::string(id));
    }
}

std::string join_ids(const std::vector<std::string>& ids) {
    std::string out;
    for (const auto& id : ids) out += (out.empty() ? "" : ",") + id;
    return out;
}

int post_command(AdminClient& c, const Options& o, const std::vector<std::string>& targets,
                 json::object command, bool push) {
    json::array t;
    for (const auto& id : targets) t.push_back(json::value(id));
    json::object body{{"targets", std::move(t)}, {"command", std::move(command)}, {"push", push}};
    auto a = c.call("POST", "/v1/commands", json::serialize(body), "application/json");
    return finish(o, a, print_command);
}

}  // namespace

void add_command_commands(CLI::App& app, const Context& ctx) {
    {
        auto* sub = app.add_subcommand("lock", "DeviceLock one or more devices");
        ctx.add_common(sub);
        auto ids = std::make_shared<std::vector<std::string>>();
        auto message = std::make_shared<std::string>();
        auto phone = std::make_shared<std::string>();
        auto pin = std::make_shared<std::string>();
        sub->add_option("ids", *ids, "enrollment ids")->required();
        sub->add_option("--message", *message, "shown on the lock screen");
        sub->add_option("--phone", *phone, "phone number shown on the lock screen");
        sub->add_option("--pin", *pin, "six-digit Find My PIN (macOS)");
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            json::object cmd{{"RequestType", "DeviceLock"}};
            if (!message->empty()) cmd["Message"] = *message;
            if (!phone->empty()) cmd["PhoneNumber"] = *phone;
            if (!pin->empty()) cmd["PIN"] = *pin;
            return post_command(c, o, *ids, std::move(cmd), true);
        }));
    }
    {
        auto* sub = app.add_subcommand("install-profile", "InstallProfile: ids… FILE.mobileconfig");
        ctx.add_common(sub);
        auto args = std::make_shared<std::vector<std::string>>();
        sub->add_option("args", *args, "enrollment ids, then the profile file")
            ->required()
            ->expected(2, -1);
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            std::vector<std::string> ids(args->begin(), args->end() - 1);
            auto bytes = read_file(args->back());
            if (!bytes) {
                std::cerr << "courier: cannot read " << args->back() << "\n";
                return 1;
            }
            json::object cmd{{"RequestType", "InstallProfile"}, {"Payload", base64_encode(*bytes)}};
            return post_command(c, o, ids, std::move(cmd), true);
        }));
    }
    {
        auto* sub = app.add_subcommand("remove-profile", "RemoveProfile: ids… IDENTIFIER");
        ctx.add_common(sub);
        auto args = std::make_shared<std::vector<std::string>>();
        sub->add_option("args", *args, "enrollment ids, then the profile's PayloadIdentifier")
            ->required()
            ->expected(2, -1);
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            std::vector<std::string> ids(args->begin(), args->end() - 1);
            json::object cmd{{"RequestType", "RemoveProfile"}, {"Identifier", args->back()}};
            return post_command(c, o, ids, std::move(cmd), true);
        }));
    }
    {
        auto* sub = app.add_subcommand("command", "status and results of a command");
        ctx.add_common(sub);
        auto uuid = std::make_shared<std::string>();
        sub->add_option("uuid", *uuid, "command UUID")->required();
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            return finish(o, c.call("GET", "/v1/commands/" + url_escape(*uuid)),
                          [](const json::value& v) {
                              print_command(v);
                              for (const auto& [id, t] : v.as_object().at("targets").as_object()) {
                                  const auto* r = t.as_object().if_contains("result");
                                  if (r && !r->is_null())
                                      std::cout << "  " << std::string(id)
                                                << " result: " << json::serialize(*r) << "\n";
                              }
                          });
        }));
    }
    {
        auto* sub = app.add_subcommand("cancel", "cancel a command where not yet delivered");
        ctx.add_common(sub);
        auto uuid = std::make_shared<std::string>();
        sub->add_option("uuid", *uuid, "command UUID")->required();
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            return finish(
                o, c.call("DELETE", "/v1/commands/" + url_escape(*uuid)), [](const json::value& v) {
                    std::cout << "canceled for: " << json::serialize(v.as_object().at("canceled"))
                              << "\n";
                });
        }));
    }
    {
        auto* sub = app.add_subcommand("push", "send a wake-up push now");
        ctx.add_common(sub);
        auto ids = std::make_shared<std::vector<std::string>>();
        sub->add_option("ids", *ids, "enrollment ids")->required();
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            return finish(o, c.call("GET", "/v1/push/" + url_escape(join_ids(*ids))),
                          print_push_status);
        }));
    }
}

}  // namespace courier::client::cli
