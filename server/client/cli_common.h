// What the CLI's command groups (cli_*.cc) share: the connection options
// every command takes, running a command, and printing the server's answer.
#pragma once

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server/client/admin_client.h"

namespace courier::client::cli {

struct Options {
    Endpoint endpoint;
    std::string data_dir = "./courier-data";
    bool json_out = false;
};

class Context {
  public:
    explicit Context(int* exit_code);
    // --url, --api-key, --ca, --data-dir, --json on `sub`.
    void add_common(CLI::App* sub) const;
    // A callback that fills in the options, connects and stores fn's exit code.
    std::function<void()> run(std::function<int(AdminClient&, const Options&)> fn) const;
    int* exit_code() const { return exit_code_; }

  private:
    std::shared_ptr<Options> opts_;
    int* exit_code_;
};

// Prints the answer: JSON as is with --json, else `pretty`; returns the exit code.
int finish(const Options& o, const Answer& a,
           const std::function<void(const boost::json::value&)>& pretty);

std::string str(const boost::json::value& v);
std::string field(const boost::json::object& o, const char* k);
void print_kv(const boost::json::value& v);
void print_command(const boost::json::value& v);

// The command groups, one file each (cli_<group>.cc).
void add_device_commands(CLI::App& app, const Context& ctx);
void add_command_commands(CLI::App& app, const Context& ctx);
void add_pushcert_commands(CLI::App& app, const Context& ctx);
void add_enroll_token_commands(CLI::App& app, const Context& ctx);
void add_webhook_commands(CLI::App& app, const Context& ctx);

}  // namespace courier::client::cli
