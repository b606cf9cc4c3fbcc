// Issue #11 items 4 and 5 reproduced against the real `courier` binary: an
// unauthenticated admin body is refused from its header and never read,
// bodies beyond --max-buffered-mb get 503, and a flood of silent connections
// from one address neither refuses another address's /healthz nor writes a
// log line per refusal.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <memory>
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

// Served keep-alive connections no longer count against their address, so
// one client could fill --max-connections with idle ones: the connection
// idle the longest is closed (close_notify) to serve another address.
TEST_F(ResourceLimits, IdleConnectionsFromOneAddressMakeRoomForAnother) {
    constexpr size_t kLimit = 10;
    start({"--max-connections", std::to_string(kLimit)});
    auto healthz = [](test::TlsConn& c) {
        c.clear();
        return c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") &&
               c.read_until("}").find("200 OK") != std::string::npos;
    };
    std::vector<std::unique_ptr<test::TlsConn>> idle;
    for (size_t i = 0; i < kLimit; ++i) {
        idle.push_back(std::make_unique<test::TlsConn>(server_->port()));
        ASSERT_TRUE(idle.back()->ok()) << i << ": " << idle.back()->error();
        ASSERT_TRUE(healthz(*idle.back())) << i;
    }
    test::TlsConn other(server_->port(), [] {
        test::TlsClientOptions o;
        o.from = "127.0.0.2";
        return o;
    }());
    ASSERT_TRUE(other.ok()) << other.error();
    EXPECT_TRUE(healthz(other));
    // The first served is the one idle the longest: closed, cleanly.
    idle.front()->read_until("never-sent");
    EXPECT_TRUE(idle.front()->closed());
    EXPECT_TRUE(idle.front()->got_close_notify());
    for (size_t i = 1; i < kLimit; ++i) EXPECT_TRUE(healthz(*idle[i])) << i;
    idle.clear();
    ASSERT_TRUE(eventually([&] {
        return server_->all_output().find("closed 1 idle keep-alive connection(s)") !=
               std::string::npos;
    })) << server_->all_output();
    EXPECT_EQ(metric("courier_connections_refused_total"), 0);
    EXPECT_GE(metric("courier_connections_evicted_total"), 1);
}

// A figure from /proc/<pid>/status ("VmRSS", "VmHWM"), in bytes; -1 when
// absent.
long long proc_status_bytes(pid_t pid, const std::string& field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(field + ":", 0) == 0)
            return std::stoll(line.substr(field.size() + 1)) * 1024;
    }
    return -1;
}

constexpr long long kMiB = 1024 * 1024;

// docs/security.md, "Unauthenticated bodies": RSS stays within the buffered-body cap plus a
// working margin, and memory is given back after a burst. 40 clients × 4 MiB
// = 160 MiB of bodies against a 32 MiB cap.
TEST_F(ResourceLimits, BurstOfLargeBodiesStaysWithinTheCapAndMemoryIsGivenBack) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "under AddressSanitizer RSS measures its quarantine of freed memory and its "
                    "shadow memory, not glibc's allocator: this test runs in the release build";
#endif
    constexpr long long kCap = 32 * kMiB;
    constexpr size_t kClients = 40;
    constexpr size_t kBody = 4 * kMiB;
    // Peak RSS may exceed the baseline by the cap (bodies held) plus:
    // - one more cap: a handler parsing a body works on a copy of it (pugixml
    //   copies its input) while the body, still charged, is held;
    // - kFixedMargin for the 40 connections' TLS and read buffers, worker
    //   stacks and allocator slack.
    // Measured: baseline + 61 MiB (cap 32), + 16 MiB (cap 8); without a cap
    // (--max-buffered-mb 1024) + 188 MiB, far beyond this bound.
    constexpr long long kFixedMargin = 16 * kMiB;
    // After the burst RSS returns to within this of the baseline. Measured:
    // + 1 MiB; + 33 MiB before large blocks were kept out of glibc's arenas.
    constexpr long long kReleaseMargin = 8 * kMiB;

    start({"--max-buffered-mb", "32"});
    const pid_t pid = server_->pid();
    const std::string auth = "Authorization: Bearer " + server_->api_key() + "\r\n";
    // Warm the paths a body takes (TLS, the admin key, the handler) with a
    // small one, then take the baseline and reset the peak.
    {
        test::TlsConn warm(server_->port());
        ASSERT_TRUE(warm.ok()) << warm.error();
        ASSERT_TRUE(warm.send("PUT /v1/enqueue/dev-1 HTTP/1.1\r\nHost: x\r\n" + auth +
                              "Content-Length: 5\r\n\r\nhello"));
        ASSERT_EQ(warm.read_until("}").rfind("HTTP/1.1 400", 0), 0u);
    }
    const long long baseline = proc_status_bytes(pid, "VmRSS");
    ASSERT_GT(baseline, 0);
    {
        std::ofstream clear("/proc/" + std::to_string(pid) + "/clear_refs");
        clear << "5";  // VmHWM := VmRSS
        ASSERT_TRUE(clear.flush().good());
    }
    ASSERT_LT(proc_status_bytes(pid, "VmHWM"), baseline + 4 * kMiB);

    // Every client sends all but the last byte of its body, one after the
    // other, and the server's decision on each is awaited before the next: the
    // cap holds 8 such bodies (8 x (4 MiB - 1) leaves 8 bytes, less than the
    // next one's declared length), so the first 8 are held and the other 32
    // get 503 from their header. Then the 8 send their last byte together.
    // Without the cap the server would hold all 160 MiB at once.
    const std::string head = "PUT /v1/enqueue/dev-1 HTTP/1.1\r\nHost: x\r\n" + auth +
                             "Content-Length: " + std::to_string(kBody) + "\r\n\r\n";
    const std::string body(kBody, 'x');
    const size_t fits = static_cast<size_t>(kCap) / kBody;
    std::vector<std::unique_ptr<test::TlsConn>> held;
    for (size_t i = 0; i < kClients; ++i) {
        auto c = std::make_unique<test::TlsConn>(server_->port());
        ASSERT_TRUE(c->ok()) << c->error();
        bool sent = c->send(head);
        for (size_t off = 0; sent && off < kBody - 1; off += 64 * 1024)
            sent = c->send(
                std::string_view(body).substr(off, std::min<size_t>(64 * 1024, kBody - 1 - off)));
        if (i < fits) {
            ASSERT_TRUE(sent) << "client " << i;
            const double want = static_cast<double>((i + 1) * (kBody - 1));
            ASSERT_TRUE(eventually([&] {
                return metric("courier_http_body_bytes_buffered") == want;
            })) << "client "
                << i << ": " << metric("courier_http_body_bytes_buffered")
                << " bytes buffered, expected " << want;
            held.push_back(std::move(c));
        } else {
            // Refused from its header (its body may or may not have been
            // written into the socket before the server closed it).
            std::string got = c->read_until("}");
            EXPECT_TRUE(got.rfind("HTTP/1.1 503", 0) == 0 || (got.empty() && c->closed()))
                << "client " << i << ": " << got.substr(0, 80);
        }
    }
    EXPECT_EQ(metric("courier_http_body_bytes_buffered"), static_cast<double>(fits * (kBody - 1)));
    for (auto& c : held) ASSERT_TRUE(c->send("x"));
    size_t handled = 0;
    for (auto& c : held)  // the handler's answer: the body is no plist
        handled += c->read_until("}").rfind("HTTP/1.1 400", 0) == 0;
    EXPECT_EQ(handled, fits);
    held.clear();
    const long long peak = proc_status_bytes(pid, "VmHWM");
    EXPECT_LT(peak, baseline + kCap + kCap + kFixedMargin)
        << "baseline " << baseline / kMiB << " MiB, peak " << peak / kMiB << " MiB";
    // Every connection is closed; the memory goes back.
    long long now = proc_status_bytes(pid, "VmRSS");
    for (int i = 0; i < 500 && now > baseline + kReleaseMargin; ++i) {
        std::this_thread::sleep_for(20ms);
        now = proc_status_bytes(pid, "VmRSS");
    }
    EXPECT_LE(now, baseline + kReleaseMargin)
        << "baseline " << baseline / kMiB << " MiB, after the burst " << now / kMiB << " MiB";
}

}  // namespace
}  // namespace courier
