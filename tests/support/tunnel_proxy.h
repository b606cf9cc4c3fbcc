// A small outbound proxy for tests of --apns-proxy: HTTP CONNECT or SOCKS5
// (no authentication, IPv4 and domain-name requests) on 127.0.0.1, relaying
// bytes both ways and recording where each tunnel went. Loopback only; every
// wait is bounded.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace courier::test {

class TunnelProxy {
  public:
    enum class Kind { kHttpConnect, kSocks5 };

    // Listens on 127.0.0.1 with an ephemeral port; null if that fails.
    static std::unique_ptr<TunnelProxy> start(Kind kind);
    ~TunnelProxy();

    // http://127.0.0.1:PORT or socks5://127.0.0.1:PORT
    std::string url() const;
    // "host:port" of every tunnel opened, in order.
    std::vector<std::string> tunnels() const;

  private:
    TunnelProxy(Kind kind, int listen_fd, uint16_t port);
    void accept_loop();
    void serve(int client);

    Kind kind_;
    int listen_fd_;
    uint16_t port_;
    std::atomic<bool> stop_{false};
    std::thread acceptor_;
    mutable std::mutex mu_;
    std::vector<std::string> tunnels_;
    std::vector<std::thread> workers_;
};

}  // namespace courier::test
