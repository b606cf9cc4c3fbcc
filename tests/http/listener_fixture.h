// What the listener tests share (listener_test.cc, listener_limits_test.cc,
// listener_proxy_tls_test.cc): a raw TCP client, the fixture around an
// HttpServer on 127.0.0.1 with a fresh TLS identity, and small helpers.
#pragma once

#include "server/http/listener.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/x509.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include "certs/authority.h"
#include "tests/support/http_client.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"
#include "tests/support/tls_conn.h"

namespace courier::server {

using namespace std::chrono_literals;

// A plain TCP client for what libcurl will not send.
class RawConn {
  public:
    explicit RawConn(uint16_t port, const std::string& from = "127.0.0.1") {
        fd_ = test::tcp_connect(port, from);
        connected_ = fd_ >= 0;
    }
    ~RawConn() {
        if (fd_ >= 0) ::close(fd_);
    }
    bool connected() const { return connected_; }
    bool send(const std::string& s) {
        return ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
    }
    // Reads until `needle` appears, the peer closes, or 5 s pass (then
    // closed() stays false).
    std::string read_until(const std::string& needle) {
        while (buf_.find(needle) == std::string::npos) {
            char tmp[4096];
            ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
            if (n <= 0) {
                // Closed by the peer (EOF or reset), not our 5 s receive timeout.
                closed_ = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
                break;
            }
            buf_.append(tmp, static_cast<size_t>(n));
        }
        return buf_;
    }
    bool closed() const { return closed_; }
    void clear() { buf_.clear(); }

  private:
    int fd_ = -1;
    bool connected_ = false;
    bool closed_ = false;
    std::string buf_;
};

class ListenerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        auto files =
            certs::ensure_server_tls(dir_.path(), {"localhost"}, SystemClock::instance().now());
        ASSERT_TRUE(files.is_ok()) << files.status().to_string();
        tls_ = *files;
        opts_.listen = "127.0.0.1:0";
        opts_.http_listen = "127.0.0.1:0";
        opts_.tls_cert_file = tls_.cert_chain_pem.string();
        opts_.tls_key_file = tls_.key_pem.string();
        opts_.io_threads = 2;
        opts_.worker_threads = 2;
    }
    void start(RequestHandler h) {
        server_ = std::make_unique<HttpServer>(opts_, std::move(h));
        auto s = server_->start();
        ASSERT_TRUE(s.is_ok()) << s.to_string();
    }
    std::string https(const std::string& path) const {
        return "https://127.0.0.1:" + std::to_string(server_->https_port()) + path;
    }
    std::string http(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(server_->http_port()) + path;
    }
    test::HttpOptions trusted() const {
        test::HttpOptions o;
        o.ca_file = tls_.ca_pem.string();
        return o;
    }
    static Response echo(Request& r) {
        std::string out = r.method + " " + r.path + " tls=" + (r.tls ? "1" : "0") +
                          " cert=" + std::to_string(r.client_cert_der.size() > 0);
        for (const auto& [k, v] : r.query) out += " q:" + k + "=" + v;
        if (auto* h = r.header("x-test")) out += " h:" + *h;
        out += " body:" + r.body;
        Response resp = Response::json(200, out);
        resp.headers["X-Reply"] = "yes";
        return resp;
    }

    TempDir dir_;
    certs::ServerTlsFiles tls_;
    ListenerOptions opts_;
    std::unique_ptr<HttpServer> server_;
};

// Polls `cond` until it holds or 10 s pass.
template <class F>
bool eventually(F cond) {
    for (int i = 0; i < 1000; ++i) {
        if (cond()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return cond();
}

inline test::TlsClientOptions tls_from(const std::string& address) {
    test::TlsClientOptions o;
    o.from = address;
    return o;
}
inline test::TlsClientOptions tls_prefix(const std::string& bytes) {
    test::TlsClientOptions o;
    o.prefix = bytes;
    return o;
}
inline test::TlsClientOptions tls12(const std::string& ciphers) {
    test::TlsClientOptions o;
    o.tls12_only = true;
    o.tls12_ciphers = ciphers;
    return o;
}

// A request handler that refuses, from the header, a request without X-Key.
inline std::optional<Response> key_check(const Request& r) {
    if (r.header("x-key")) return std::nullopt;
    return Response::error(401, "no key");
}

// Collects what the listener logs.
class LogCapture {
  public:
    LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)) {
        spdlog::default_logger()->sinks().push_back(sink_);
    }
    ~LogCapture() {
        auto& sinks = spdlog::default_logger()->sinks();
        sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    }
    std::string text() {
        sink_->flush();
        std::lock_guard lock(mu_);
        return out_.str();
    }

  private:
    std::mutex mu_;
    std::ostringstream out_;
    std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

inline size_t count_of(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
    return n;
}

}  // namespace courier::server
