// `courier devices`, `device`, `timeline`, `retire`: enrollments (GET /v1/devices...).
#include <fmt/format.h>

#include <iostream>

#include "server/client/cli_common.h"

namespace courier::client::cli {

namespace json = boost::json;

namespace {

void print_devices(const json::value& v) {
    std::cout << fmt::format("{:<40} {:<14} {:<11} {:<6} {:<7} {}\n", "ID", "SERIAL", "STATE",
                             "TOKEN", "QUEUED", "LAST SEEN");
    const auto* items = v.as_object().if_contains("items");
    if (!items) return;
    for (const auto& d : items->as_array()) {
        const auto& o = d.as_object();
        std::cout << fmt::format("{:<40} {:<14} {:<11} {:<6} {:<7} {}\n", field(o, "id"),
                                 field(o, "serial_number"), field(o, "state"),
                                 field(o, "token_valid") == "true" ? "ok" : "no",
                                 field(o, "queued"), field(o, "last_seen"));
    }
    if (const auto* c = v.as_object().if_contains("next_cursor"); c && c->is_string())
        std::cout << "(more: --cursor " << str(*c) << ")\n";
}

}  // namespace

void add_device_commands(CLI::App& app, const Context& ctx) {
    {
        auto* sub = app.add_subcommand("devices", "list enrollments");
        ctx.add_common(sub);
        auto state = std::make_shared<std::string>();
        auto cursor = std::make_shared<std::string>();
        auto limit = std::make_shared<int>(100);
        sub->add_option("--state", *state, "pending, enrolled, unenrolled, retired");
        sub->add_option("--cursor", *cursor, "next page");
        sub->add_option("--limit", *limit, "page size")->capture_default_str();
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            std::string q = "?limit=" + std::to_string(*limit);
            if (!state->empty()) q += "&state=" + url_escape(*state);
            if (!cursor->empty()) q += "&cursor=" + url_escape(*cursor);
            return finish(o, c.call("GET", "/v1/devices" + q), print_devices);
        }));
    }
    {
        auto* sub = app.add_subcommand("device", "show one enrollment");
        ctx.add_common(sub);
        auto id = std::make_shared<std::string>();
        sub->add_option("id", *id, "enrollment id")->required();
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            return finish(o, c.call("GET", "/v1/devices/" + url_escape(*id)), print_kv);
        }));
    }
    {
        auto* sub = app.add_subcommand("timeline", "what happened to a device, in time order");
        ctx.add_common(sub);
        auto id = std::make_shared<std::string>();
        sub->add_option("id", *id, "enrollment id")->required();
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            return finish(o,
                          c.call("GET", "/v1/devices/" + url_escape(*id) + "/timeline?limit=1000"),
                          [](const json::value& v) {
                              for (const auto& e : v.as_object().at("items").as_array()) {
                                  const auto& eo = e.as_object();
                                  std::cout << fmt::format("{}  {:<9} {}\n", field(eo, "at"),
                                                           field(eo, "kind"), field(eo, "detail"));
                              }
                          });
        }));
    }
    {
        auto* sub =
            app.add_subcommand("retire", "retire a device: it unenrolls at its next request");
        ctx.add_common(sub);
        auto id = std::make_shared<std::string>();
        sub->add_option("id", *id, "enrollment id")->required();
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            return finish(o, c.call("POST", "/v1/devices/" + url_escape(*id) + "/retire"),
                          print_kv);
        }));
    }
}

}  // namespace courier::client::cli
