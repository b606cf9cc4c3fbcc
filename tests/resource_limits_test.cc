// Issue #11 items 4 and 5 reproduced against the real `courier` binary: an
// unauthenticated admin body is refused from its header and never read,
// bodies beyond --max-buffered-mb get 503, and a flood of silent connections
// from one address neither refuses another address's /healthz nor writes a
// log line per refusal.
#include <gtest/gtest.h>
#include <unistd.h>

#include <regex>
#include <thread>

#include "tests/support/child_server.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tls_conn.h"

namespace courier {
namespace {

using namespace std::chrono_literals;

class ResourceLimits : public ::testing::Test {
  protected:
    void start(std::vector<std::string> flags) {
        std::string err;
        server_ = test::ChildServer::create(dir_.path(), &err);
        ASSERT_TRUE(server_) << err;
        ASSERT_TRUE(server_->start(std::move(flags), &err)) << err;
    }
    // A metric's value from /metrics (with the key); -1 when absent.
    double metric(const std::string& name) {
        auto r = server_->api("GET", "/metrics");
        std::smatch m;
        std::regex re("\n" + name + " ([0-9.e+]+)");
        std::string body = "\n" + r.body;
        return std::regex_search(body, m, re) ? std::stod(m[1]) : -1;
    }
    template <class F>
    bool eventually(F cond) {
        for (int i = 0; i < 500; ++i) {
            if (cond()) return true;
            std::this_thread::sleep_for(20ms);
        }
        return cond();
    }

    TempDir dir_;
    std::unique_ptr<test::ChildServer> server_;
};

TEST_F(ResourceLimits, UnauthenticatedAdminBodyGets401WithoutBeingRead) {
    start({});
    // curl's way: Expect: 100-continue. The 401 comes instead of the 100.
    test::TlsConn expect(server_->port());
    ASSERT_TRUE(expect.ok()) << expect.error();
    ASSERT_TRUE(
        expect.send("PUT /v1/pushcert HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n"
                    "Expect: 100-continue\r\n\r\n"));
    std::string got = expect.read_until("}");
    EXPECT_EQ(got.rfind("HTTP/1.1 401", 0), 0u) << got;
    expect.read_until("never-sent");
    EXPECT_TRUE(expect.closed());
    // A client that sends its megabyte at once: 401, and none of it is read.
    test::TlsConn eager(server_->port());
    ASSERT_TRUE(eager.ok()) << eager.error();
    ASSERT_TRUE(
        eager.send("PUT /v1/pushcert HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                   "wrong\r\nContent-Length: 1048576\r\n\r\n"));
    eager.send(std::string(1 << 20, 'x'));
    EXPECT_EQ(eager.read_until("}").rfind("HTTP/1.1 401", 0), 0u);
    EXPECT_EQ(metric("courier_http_body_bytes_read_total"), 0);
    // With the key the body is read (the metric counts).
    auto ok = server_->api("POST", "/v1/enrollment-tokens", "{}");
    EXPECT_EQ(ok.status, 201) << ok.body;
    EXPECT_GT(metric("courier_http_body_bytes_read_total"), 0);
}

TEST_F(ResourceLimits, MetricsAndBodylessRoutesRefuseBodiesFromTheHeader) {
    start({});
    // No GET takes a body, /metrics (the admin API's) and /healthz alike:
    // 413 from the header, key or not, and none of it is read.
    test::TlsConn metrics(server_->port());
    ASSERT_TRUE(metrics.ok()) << metrics.error();
    ASSERT_TRUE(
        metrics.send("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"));
    metrics.send(std::string(1 << 20, 'x'));
    std::string got = metrics.read_until("}");
    EXPECT_EQ(got.rfind("HTTP/1.1 413", 0), 0u) << got;
    test::TlsConn healthz(server_->port());
    ASSERT_TRUE(healthz.ok()) << healthz.error();
    ASSERT_TRUE(
        healthz.send("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"));
    healthz.send(std::string(1 << 20, 'x'));
    got = healthz.read_until("}");
    EXPECT_EQ(got.rfind("HTTP/1.1 413", 0), 0u) << got;
    double read = metric("courier_http_body_bytes_read_total");
    ASSERT_GE(read, 0) << "metric missing";
    EXPECT_EQ(read, 0);
}

TEST_F(ResourceLimits, BodiesBeyondTheBufferedCapGet503) {
    start({"--max-buffered-mb", "1"});
    std::string auth = "Authorization: Bearer " + server_->api_key() + "\r\n";
    test::TlsConn holder(server_->port());
    ASSERT_TRUE(holder.ok()) << holder.error();
    ASSERT_TRUE(holder.send("PUT /v1/pushcert HTTP/1.1\r\nHost: x\r\n" + auth +
                            "Content-Length: 1000000\r\n\r\n" + std::string(900000, 'a')));
    ASSERT_TRUE(eventually([&] { return metric("courier_http_body_bytes_buffered") >= 900000; }));
    test::TlsConn next(server_->port());
    ASSERT_TRUE(next.ok()) << next.error();
    ASSERT_TRUE(next.send("PUT /v1/pushcert HTTP/1.1\r\nHost: x\r\n" + auth +
                          "Content-Length: 200000\r\n\r\n"));
    std::string got = next.read_until("}");
    EXPECT_EQ(got.rfind("HTTP/1.1 503", 0), 0u) << got;
    EXPECT_LE(metric("courier_http_body_bytes_buffered"), 1 << 20);
}

TEST_F(ResourceLimits, FloodFromOneAddressLeavesHealthzToOthersAndLogsOneCount) {
    start({"--max-conns-per-ip", "50"});
    std::vector<int> flood;
    for (int i = 0; i < 80; ++i) {
        int fd = test::tcp_connect(server_->port(), "127.0.0.1");
        if (fd >= 0) flood.push_back(fd);
    }
    EXPECT_EQ(flood.size(), 80u);
    test::TlsConn other(server_->port(), [] {
        test::TlsClientOptions o;
        o.from = "127.0.0.2";
        return o;
    }());
    ASSERT_TRUE(other.ok()) << other.error();
    ASSERT_TRUE(other.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_NE(other.read_until("}").find("200 OK"), std::string::npos);
    for (int fd : flood) ::close(fd);
    ASSERT_TRUE(eventually([&] {
        return server_->all_output().find("refused 30 connection(s)") != std::string::npos;
    })) << server_->all_output();
    std::string out = server_->all_output();
    size_t lines = 0;
    for (auto p = out.find("refused"); p != std::string::npos; p = out.find("refused", p + 1))
        ++lines;
    EXPECT_EQ(lines, 1u) << out;
}

}  // namespace
}  // namespace courier
