// `courier enroll-token create|list|revoke`: enrollment tokens (/v1/enrollment-tokens).
#include <fmt/format.h>

#include <iostream>

#include "server/client/cli_common.h"

namespace courier::client::cli {

namespace json = boost::json;

void add_enroll_token_commands(CLI::App& app, const Context& ctx) {
    {
        auto* et = app.add_subcommand("enroll-token", "enrollment tokens: create, list, revoke");
        et->require_subcommand(1);
        {
            auto* sub = et->add_subcommand("create", "create a token (printed once)");
            ctx.add_common(sub);
            auto uses = std::make_shared<int64_t>(1);
            auto expires = std::make_shared<std::string>();
            auto note = std::make_shared<std::string>();
            sub->add_option("--uses", *uses, "how many enrollments (-1: unlimited)")
                ->capture_default_str();
            sub->add_option("--expires", *expires, "RFC 3339 expiry");
            sub->add_option("--note", *note, "what it is for");
            sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
                json::object body{{"uses", *uses}, {"note", *note}};
                if (!expires->empty()) body["expires_at"] = *expires;
                return finish(o,
                              c.call("POST", "/v1/enrollment-tokens", json::serialize(body),
                                     "application/json"),
                              print_kv);
            }));
        }
        {
            auto* sub = et->add_subcommand("list", "list tokens");
            ctx.add_common(sub);
            sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
                return finish(o, c.call("GET", "/v1/enrollment-tokens"), [](const json::value& v) {
                    for (const auto& t : v.as_object().at("items").as_array()) {
                        const auto& to = t.as_object();
                        std::cout << fmt::format("{}  uses left {}  expires {}  {}\n",
                                                 field(to, "id"), field(to, "uses_left"),
                                                 field(to, "expires_at"), field(to, "note"));
                    }
                });
            }));
        }
        {
            auto* sub = et->add_subcommand("revoke", "delete a token");
            ctx.add_common(sub);
            auto id = std::make_shared<std::string>();
            sub->add_option("id", *id, "token id")->required();
            sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
                return finish(o, c.call("DELETE", "/v1/enrollment-tokens/" + url_escape(*id)),
                              print_kv);
            }));
        }
    }
}

}  // namespace courier::client::cli
