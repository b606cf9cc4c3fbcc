// Private to apns/fake/: FakeApns::Impl, the state the io thread and the
// public methods share (fake_apns.cc), and what a Connection
// (fake_apns_connection.h) reaches into.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "apns/fake/fake_apns.h"

namespace courier::apns {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

struct Programmed {
    FakeApnsResponse response;
    int remaining;  // < 0: always
};

class Connection;

class FakeApns::Impl {
  public:
    explicit Impl(FakeApnsOptions o) : opts(std::move(o)), delay(opts.delay) {}

    Status init();
    void accept();
    void stop();
    // Runs fn on the io thread and waits for it.
    void run_on_io(std::function<void()> fn);

    // Decides the answer to a complete request (io thread), records it.
    FakeApnsResponse answer(FakeApnsRequest& req, bool duplicate_headers, bool too_large);
    void notify() { cv.notify_all(); }

    FakeApnsOptions opts;
    asio::io_context io;
    ssl::context ctx{ssl::context::tls_server};
    tcp::acceptor acceptor{io};
    uint16_t bound_port = 0;
    std::string url_host;  // the bound address, 127.0.0.1 for a wildcard bind
    std::thread thread;
    std::map<uint64_t, std::weak_ptr<Connection>> connections;  // io thread only
    // Frozen connections, kept alive (and their sockets open) until stop().
    std::vector<std::shared_ptr<Connection>> frozen;  // io thread only

    mutable std::mutex mu;
    mutable std::condition_variable cv;
    std::vector<FakeApnsRequest> requests;
    uint64_t accepted = 0;
    uint64_t open = 0;
    std::map<std::string, Programmed> programmed;
    std::chrono::milliseconds delay;
    std::function<void(const FakeApnsRequest&)> push_callback;
};

}  // namespace courier::apns
