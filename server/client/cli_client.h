// `courier <command>`: the administrators' and helpdesk's command line. Each
// command speaks the REST API (docs/api.md) with libcurl.
//
// Exit codes (SPEC "Settled details: CLI"): 0 ok, 1 error, 2 usage,
// 3 partial (the server answered 207).
#pragma once

namespace CLI {
class App;
}

namespace courier::server {

// Adds the client subcommands to `app`; the chosen one's callback stores its
// exit code in *exit_code.
void register_client_commands(CLI::App& app, int* exit_code);

}  // namespace courier::server
