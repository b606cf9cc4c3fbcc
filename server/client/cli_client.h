// `courier <command>`: the administrators' and helpdesk's command line. Each
// command speaks the REST API (docs/api.md) through client::AdminClient; one
// file per command group (cli_*.cc), listed in kGroups (cli_client.cc).
//
// Exit codes (README.md "Administering"): 0 ok, 1 error, 2 usage,
// 3 partial (the server answered 207).
#pragma once

namespace CLI {
class App;
}

namespace courier::client {

// Adds the client subcommands to `app`; the chosen one's callback stores its
// exit code in *exit_code.
void register_client_commands(CLI::App& app, int* exit_code);

}  // namespace courier::client
