// `courier webhooks …`: the webhook destinations and their deliveries from the
// command line (docs/webhooks.md), over the REST API.
#pragma once

#include <boost/json/value.hpp>
#include <functional>
#include <string>

namespace CLI {
class App;
}

namespace courier::server {

// What the client commands share, handed over by register_client_commands.
struct CliRequester {
    // Adds --url, --api-key, --ca, --data-dir, --json to a subcommand.
    std::function<void(CLI::App*)> common;
    // Makes the request (JSON body when not empty), prints the answer (as
    // is with --json, else through `pretty`), returns the exit code.
    std::function<int(const std::string& method, const std::string& path, const std::string& body,
                      const std::function<void(const boost::json::value&)>& pretty)>
        request;
};

void register_webhook_commands(CLI::App& app, int* exit_code, const CliRequester& cli);

}  // namespace courier::server
