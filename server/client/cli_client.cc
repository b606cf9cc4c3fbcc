#include "server/client/cli_client.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <iostream>

#include "server/client/cli_common.h"

namespace courier::client {

namespace json = boost::json;

namespace cli {

Context::Context(int* exit_code) : opts_(std::make_shared<Options>()), exit_code_(exit_code) {}

void Context::add_common(CLI::App* sub) const {
    auto opts = opts_;
    sub->add_option("--url", opts->endpoint.url, "server URL (env COURIER_URL)")
        ->default_str("https://localhost:8443");
    sub->add_option("--api-key", opts->endpoint.api_key,
                    "API key (env COURIER_API_KEY; default: <data-dir>/api-key)");
    sub->add_option("--ca", opts->endpoint.ca_file,
                    "CA certificate to trust (env COURIER_CA; default: <data-dir>/tls/ca.crt)");
    sub->add_option("--data-dir", opts->data_dir, "server data dir to take key and CA from")
        ->capture_default_str();
    sub->add_flag("--json", opts->json_out, "print the server's JSON answer");
}

std::function<void()> Context::run(std::function<int(AdminClient&, const Options&)> fn) const {
    return [opts = opts_, exit_code = exit_code_, fn] {
        resolve(opts->endpoint, opts->data_dir);
        AdminClient c(opts->endpoint);
        *exit_code = fn(c, *opts);
    };
}

std::string str(const json::value& v) {
    if (v.is_string()) return std::string(v.as_string());
    if (v.is_null()) return "-";
    return json::serialize(v);
}

std::string field(const json::object& o, const char* k) {
    const auto* v = o.if_contains(k);
    return v ? str(*v) : "-";
}

int finish(const Options& o, const Answer& a,
           const std::function<void(const json::value&)>& pretty) {
    if (!a.error.empty()) {
        std::cerr << "courier: cannot reach " << o.endpoint.url << ": " << a.error << "\n";
        return 1;
    }
    boost::system::error_code ec;
    json::value v = json::parse(a.body, ec);
    if (a.status >= 400) {
        std::string msg = !ec && v.is_object() && v.as_object().if_contains("error")
                              ? str(v.as_object().at("error"))
                              : a.body;
        if (o.json_out && !ec) std::cout << a.body << "\n";
        std::cerr << "courier: HTTP " << a.status << ": " << msg << "\n";
        if (a.status == 401) std::cerr << "  (set --api-key or COURIER_API_KEY)\n";
        return 1;
    }
    if (o.json_out || ec) {
        std::cout << a.body << (a.body.empty() || a.body.back() == '\n' ? "" : "\n");
    } else {
        pretty(v);
    }
    return a.status == 207 ? 3 : 0;
}

void print_command(const json::value& v) {
    const auto& o = v.as_object();
    std::cout << fmt::format("{} {}  created {}\n", field(o, "request_type"),
                             field(o, "command_uuid"), field(o, "created_at"));
    if (const auto* t = o.if_contains("targets"); t && t->is_object()) {
        for (const auto& [id, s] : t->as_object()) {
            const auto& so = s.as_object();
            std::string line = fmt::format("  {:<40} {:<22} {}", std::string(id),
                                           field(so, "status"), field(so, "updated_at"));
            if (const auto* p = so.if_contains("push"); p && p->is_object())
                line += "  push: " + field(p->as_object(), "status") +
                        (p->as_object().if_contains("error")
                             ? " (" + field(p->as_object(), "error") + ")"
                             : "");
            std::cout << line << "\n";
        }
    }
}

void print_kv(const json::value& v) {
    for (const auto& [k, val] : v.as_object())
        std::cout << fmt::format("{:<24} {}\n", std::string(k), str(val));
}

}  // namespace cli

namespace {

// Every command group, in `courier --help` order. A new group is a new
// cli_<group>.cc with its add_*_commands, declared in cli_common.h and listed here.
constexpr void (*kGroups[])(CLI::App&, const cli::Context&) = {
    cli::add_device_commands,       cli::add_command_commands, cli::add_pushcert_commands,
    cli::add_enroll_token_commands, cli::add_webhook_commands,
};

}  // namespace

void register_client_commands(CLI::App& app, int* exit_code) {
    cli::Context ctx(exit_code);
    for (auto add : kGroups) add(app, ctx);
}

}  // namespace courier::client
