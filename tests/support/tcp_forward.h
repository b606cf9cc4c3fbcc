// A TCP forwarder on 127.0.0.1 for tests that take a dependency away (the
// PostgreSQL server "unreachable") and bring it back: set_down(true) closes
// every relayed connection and refuses new ones; set_down(false) relays
// again. Loopback only; every wait is bounded.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace courier::test {

class TcpForward {
  public:
    // Listens on 127.0.0.1 (ephemeral port) and relays to 127.0.0.1:target.
    static std::unique_ptr<TcpForward> start(uint16_t target);
    ~TcpForward();
    uint16_t port() const { return port_; }
    void set_down(bool down);
    int64_t connections() const { return accepted_.load(); }

  private:
    TcpForward(int fd, uint16_t port, uint16_t target);
    void accept_loop();
    void relay(int client, int server);

    int listen_fd_;
    uint16_t port_, target_;
    std::atomic<bool> stop_{false}, down_{false};
    std::atomic<int64_t> accepted_{0};
    std::atomic<uint64_t> generation_{0};  // bumped by set_down(true)
    std::thread acceptor_;
    std::mutex mu_;
    std::vector<std::thread> relays_;
};

}  // namespace courier::test
