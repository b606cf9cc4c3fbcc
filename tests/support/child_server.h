// `courier serve` as a child process on 127.0.0.1 with a fake APNs in the
// test process: for tests that kill, restart or read the logs of the real
// binary. Devices get identities from the child's own enrollment CA.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "apns/fake/fake_apns.h"
#include "sim/device.h"
#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace courier::test {

class ChildServer {
  public:
    // A fake APNs and a data dir under `dir`; the server is not started yet.
    static std::unique_ptr<ChildServer> create(const std::filesystem::path& dir,
                                               std::string* error);
    ~ChildServer();

    // Starts `courier serve` on the data dir and port of the last start (a
    // free port the first time); waits until it serves. `extra` flags are
    // appended.
    bool start(std::vector<std::string> extra = {}, std::string* error = nullptr);
    // Pushes go to another APNs (e.g. the simulator's) from the next start.
    void use_apns(std::string url, std::filesystem::path ca_file) {
        apns_url_ = std::move(url);
        apns_ca_ = std::move(ca_file);
    }
    // SIGKILL, no grace.
    void kill();
    // SIGTERM; the exit status (-1 on timeout).
    int terminate();
    bool running() const { return proc_ != nullptr; }
    pid_t pid() const { return proc_ ? proc_->pid() : -1; }
    // Everything the child printed, over every start.
    std::string all_output() const;

    uint16_t port() const { return port_; }
    std::string url() const { return "https://127.0.0.1:" + std::to_string(port_); }
    const std::filesystem::path& data_dir() const { return data_; }
    std::string ca_file() const { return (data_ / "tls" / "ca.crt").string(); }
    std::string api_key() const;
    apns::FakeApns& apns() { return *apns_; }
    static std::string topic() {
        return "com.apple.mgmt.External.11111111-2222-3333-4444-555555555555";
    }

    HttpResult api(const std::string& method, const std::string& path,
                   const std::string& body = {});
    // Uploads a push certificate for topic().
    bool import_push_cert(std::string* error);
    // A device with an identity from the server's enrollment CA (not yet
    // checked in).
    std::unique_ptr<sim::SimDevice> device(const std::string& udid);

  private:
    ChildServer() = default;
    std::filesystem::path dir_, data_, apns_ca_;
    std::string apns_url_;
    std::unique_ptr<apns::FakeApns> apns_;
    std::unique_ptr<Process> proc_;
    std::string earlier_output_;
    uint16_t port_ = 0;
};

}  // namespace courier::test
