// A webhook receiver for tests: plain HTTP/1.1 on 127.0.0.1 (port 0), one
// request per connection. Records every request it read and answers with the
// status the test's policy gives it, or holds the connection open without an
// answer (a hanging receiver) until released.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace courier::test {

class WebhookReceiver {
  public:
    struct Request {
        std::string method, target, body;
        std::map<std::string, std::string> headers;  // names lower case
        int answered = 0;                            // status sent; 0: held, then dropped
    };
    // Given the request (and how many came before it), the status to answer
    // with; 0 holds the connection without an answer until release().
    using Policy = std::function<int(const Request&, size_t index)>;

    static std::unique_ptr<WebhookReceiver> start();
    ~WebhookReceiver();

    std::string url(const std::string& path = "/hook") const;
    void set_policy(Policy p);
    // Drops every held connection (unanswered) and stops holding new ones
    // (they get 200) until the policy is set again.
    void release();
    std::vector<Request> requests() const;
    // Waits (bounded) until pred holds for the requests so far.
    bool wait_for(const std::function<bool(const std::vector<Request>&)>& pred,
                  std::chrono::milliseconds deadline = std::chrono::seconds(30)) const;

  private:
    WebhookReceiver() = default;
    void accept_loop();
    void serve(int fd);

    int listen_fd_ = -1;
    uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    mutable std::mutex mu_;
    mutable std::condition_variable cv_;
    Policy policy_;
    bool released_ = false;
    std::vector<Request> requests_;
    std::thread acceptor_;
    std::vector<std::thread> conns_;
};

}  // namespace courier::test
