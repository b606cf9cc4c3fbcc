// `courier webhooks list|add|show|update|delete|deliveries|retry`: webhook
// destinations and their deliveries (/v1/webhooks, docs/webhooks.md).
#include <fmt/format.h>

#include <iostream>
#include <memory>

#include "server/client/cli_common.h"

namespace courier::client::cli {

namespace json = boost::json;

namespace {

void print_webhook(const json::object& o) {
    std::string topics;
    if (const auto* t = o.if_contains("topics"); t && t->is_array())
        for (const auto& x : t->as_array()) topics += (topics.empty() ? "" : ",") + str(x);
    std::cout << fmt::format("{:<24} {:<8} {:<7} {:<30} {}\n", field(o, "id"),
                             field(o, "enabled") == "true" ? "enabled" : "disabled",
                             field(o, "hmac_key_set") == "true" ? "signed" : "-", topics,
                             field(o, "url"));
}

// Options shared by add and update.
struct Fields {
    std::string url, key, topics;
    bool no_key = false, enable = false, disable = false;
};

void add_fields(CLI::App* sub, Fields* f, bool create) {
    if (create)
        sub->add_option("target", f->url, "where events are POSTed (http:// or https://)")
            ->required();
    else
        sub->add_option("--target", f->url, "where events are POSTed (http:// or https://)");
    sub->add_option("--hmac-key", f->key, "sign requests: X-Hmac-Signature");
    sub->add_option("--topics", f->topics,
                    "comma-separated topic prefixes (default for add: mdm.)");
    if (!create) {
        sub->add_flag("--no-hmac-key", f->no_key, "stop signing");
        sub->add_flag("--enable", f->enable, "deliver again");
        sub->add_flag("--disable", f->disable, "stop delivering (events are not kept meanwhile)");
    }
}

json::object fields_json(const Fields& f) {
    json::object b;
    if (!f.url.empty()) b["url"] = f.url;
    if (!f.key.empty()) b["hmac_key"] = f.key;
    if (f.no_key) b["hmac_key"] = nullptr;
    if (!f.topics.empty()) {
        json::array a;
        size_t start = 0;
        while (start <= f.topics.size()) {
            size_t comma = f.topics.find(',', start);
            if (comma == std::string::npos) comma = f.topics.size();
            a.push_back(json::string(f.topics.substr(start, comma - start)));
            start = comma + 1;
        }
        b["topics"] = std::move(a);
    }
    if (f.enable) b["enabled"] = true;
    if (f.disable) b["enabled"] = false;
    return b;
}

}  // namespace

void add_webhook_commands(CLI::App& app, const Context& ctx) {
    auto* wh = app.add_subcommand("webhooks",
                                  "webhook destinations: list, add, show, update, delete, "
                                  "deliveries, retry");
    wh->require_subcommand(1);
    // A request with a JSON body (none when empty), its answer printed.
    auto request = [](AdminClient& c, const Options& o, const std::string& method,
                      const std::string& path, const std::string& body,
                      const std::function<void(const json::value&)>& pretty) {
        return finish(o, c.call(method, path, body, body.empty() ? "" : "application/json"),
                      pretty);
    };
    auto show_one = [](const json::value& v) { print_webhook(v.as_object()); };
    {
        auto* sub = wh->add_subcommand("list", "every destination");
        ctx.add_common(sub);
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            return request(c, o, "GET", "/v1/webhooks", "", [](const json::value& v) {
                for (const auto& w : v.as_object().at("webhooks").as_array())
                    print_webhook(w.as_object());
            });
        }));
    }
    {
        auto* sub = wh->add_subcommand("add", "add a destination");
        ctx.add_common(sub);
        auto id = std::make_shared<std::string>();
        auto f = std::make_shared<Fields>();
        sub->add_option("id", *id, "its name (A-Z a-z 0-9 . _ -)")->required();
        add_fields(sub, f.get(), true);
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            auto b = fields_json(*f);
            b["id"] = *id;
            return request(c, o, "POST", "/v1/webhooks", json::serialize(b), show_one);
        }));
    }
    {
        auto* sub = wh->add_subcommand("show", "one destination");
        ctx.add_common(sub);
        auto id = std::make_shared<std::string>();
        sub->add_option("id", *id, "destination id")->required();
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            return request(c, o, "GET", "/v1/webhooks/" + url_escape(*id), "", show_one);
        }));
    }
    {
        auto* sub = wh->add_subcommand("update", "change a destination");
        ctx.add_common(sub);
        auto id = std::make_shared<std::string>();
        auto f = std::make_shared<Fields>();
        sub->add_option("id", *id, "destination id")->required();
        add_fields(sub, f.get(), false);
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            return request(c, o, "PATCH", "/v1/webhooks/" + url_escape(*id),
                           json::serialize(fields_json(*f)), show_one);
        }));
    }
    {
        auto* sub = wh->add_subcommand("delete", "remove a destination and its deliveries");
        ctx.add_common(sub);
        auto id = std::make_shared<std::string>();
        sub->add_option("id", *id, "destination id")->required();
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            return request(c, o, "DELETE", "/v1/webhooks/" + url_escape(*id), "",
                           [&](const json::value&) { std::cout << "deleted " << *id << "\n"; });
        }));
    }
    {
        auto* sub = wh->add_subcommand("deliveries", "a destination's deliveries, newest first");
        ctx.add_common(sub);
        auto id = std::make_shared<std::string>();
        auto status = std::make_shared<std::string>();
        auto limit = std::make_shared<int>(100);
        auto cursor = std::make_shared<std::string>();
        sub->add_option("id", *id, "destination id")->required();
        sub->add_option("--status", *status, "pending, delivered or failed")
            ->check(CLI::IsMember({"pending", "delivered", "failed"}));
        sub->add_option("--limit", *limit, "page size (1-1000)")->capture_default_str();
        sub->add_option("--cursor", *cursor, "next page (from the previous answer)");
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            std::string path =
                fmt::format("/v1/webhooks/{}/deliveries?limit={}", url_escape(*id), *limit);
            if (!status->empty()) path += "&status=" + *status;
            if (!cursor->empty()) path += "&cursor=" + url_escape(*cursor);
            return request(c, o, "GET", path, "", [](const json::value& v) {
                std::cout << fmt::format("{:<36} {:<28} {:<9} {:>8} {:>6}  {}\n", "EVENT", "TOPIC",
                                         "STATUS", "ATTEMPTS", "HTTP", "LAST ERROR / NEXT");
                for (const auto& d : v.as_object().at("items").as_array()) {
                    const auto& o = d.as_object();
                    std::cout << fmt::format(
                        "{:<36} {:<28} {:<9} {:>8} {:>6}  {}\n", field(o, "event_id"),
                        field(o, "topic"), field(o, "status"), field(o, "attempts"),
                        field(o, "last_status"),
                        field(o, "status") == "pending" ? field(o, "next_attempt")
                                                        : field(o, "last_error"));
                }
                if (const auto* c = v.as_object().if_contains("next_cursor"); c && c->is_string())
                    std::cout << "(more: --cursor " << str(*c) << ")\n";
            });
        }));
    }
    {
        auto* sub = wh->add_subcommand("retry", "deliver a failed event again (outside the order)");
        ctx.add_common(sub);
        auto id = std::make_shared<std::string>();
        auto event = std::make_shared<std::string>();
        sub->add_option("id", *id, "destination id")->required();
        sub->add_option("event_id", *event, "the failed event")->required();
        sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
            return request(
                c, o, "POST",
                "/v1/webhooks/" + url_escape(*id) + "/deliveries/" + url_escape(*event) + "/retry",
                "{}", [&](const json::value&) { std::cout << "retrying " << *event << "\n"; });
        }));
    }
}

}  // namespace courier::client::cli
