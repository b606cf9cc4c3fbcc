// The HTTP(S) listener over real sockets on 127.0.0.1: TLS with optional
// client certificates, plain HTTP, limits, framing errors, keep-alive,
// 100-continue, connection limit and graceful stop.
#include "server/listener.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "certs/authority.h"
#include "tests/support/http_client.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"

namespace courier::server {
namespace {

using namespace std::chrono_literals;

// A plain TCP client for what libcurl will not send.
class RawConn {
  public:
    explicit RawConn(uint16_t port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        timeval tv{5, 0};
        setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    }
    ~RawConn() { ::close(fd_); }
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

TEST_F(ListenerTest, HttpsPassesMethodPathQueryHeadersAndBody) {
    start(echo);
    auto r = test::http_request("PUT", https("/a%20b/c?x=1&y=%2F"), "payload", {"X-Test: hi"},
                                trusted());
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body, "PUT /a b/c tls=1 cert=0 q:x=1 q:y=/ h:hi body:payload");
    EXPECT_EQ(r.headers["x-reply"], "yes");
    EXPECT_EQ(r.headers["content-type"], "application/json");
}

TEST_F(ListenerTest, ServerCertificateVerifiesAgainstItsCa) {
    start(echo);
    test::HttpOptions o = trusted();
    auto ok = test::http_request(
        "GET", "https://localhost:" + std::to_string(server_->https_port()) + "/", "", {}, o);
    EXPECT_EQ(ok.status, 200) << ok.error;
    // Another CA's trust store refuses it.
    TempDir other;
    auto files =
        certs::ensure_server_tls(other.path(), {"localhost"}, SystemClock::instance().now());
    ASSERT_TRUE(files.is_ok());
    o.ca_file = files->ca_pem.string();
    auto bad = test::http_request("GET", https("/"), "", {}, o);
    EXPECT_EQ(bad.status, 0);
    EXPECT_FALSE(bad.error.empty());
}

TEST_F(ListenerTest, ClientCertificateReachesTheHandlerAsDer) {
    auto ca = test::make_test_ca();
    auto id = test::make_device_identity(ca, "UDID-1");
    std::string want(static_cast<size_t>(i2d_X509(id.cert.get(), nullptr)), '\0');
    auto* p = reinterpret_cast<unsigned char*>(want.data());
    i2d_X509(id.cert.get(), &p);
    std::mutex mu;
    std::string got;
    start([&](Request& r) {
        std::lock_guard lock(mu);
        got = r.client_cert_der;
        return Response::empty(204);
    });
    test::HttpOptions o = trusted();
    o.client_cert_pem = certs::cert_to_pem(id.cert.get());
    o.client_key_pem = certs::key_to_pem(id.key.get());
    auto r = test::http_request("GET", https("/"), "", {}, o);
    ASSERT_EQ(r.status, 204) << r.error;
    std::lock_guard lock(mu);
    EXPECT_EQ(got, want);
}

TEST_F(ListenerTest, PlainHttpListenerMarksRequestsAsNotTls) {
    start(echo);
    auto r = test::http_request("GET", http("/x"));
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body, "GET /x tls=0 cert=0 body:");
}

TEST_F(ListenerTest, BodyOverTheLimitIs413AndNeverReachesTheHandler) {
    opts_.body_limit = 1024;
    std::atomic<int> calls{0};
    start([&](Request&) {
        calls++;
        return Response::empty(200);
    });
    auto r = test::http_request("PUT", http("/"), std::string(4096, 'x'));
    EXPECT_EQ(r.status, 413);
    EXPECT_NE(r.body.find("1024"), std::string::npos) << r.body;
    auto small = test::http_request("PUT", http("/"), std::string(1024, 'x'));
    EXPECT_EQ(small.status, 200);
    EXPECT_EQ(calls.load(), 1);
}

TEST_F(ListenerTest, ChunkedUploadLikeCurlStdinIsRead) {
    start(echo);
    test::HttpOptions o = trusted();
    o.chunked = true;
    std::string body(200000, 'z');
    auto r = test::http_request("PUT", https("/up"), body, {}, o);
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body.size(), std::string("PUT /up tls=1 cert=0 body:").size() + body.size());
}

TEST_F(ListenerTest, ExpectContinueIsAnsweredBeforeTheBodyIsSent) {
    start(echo);
    RawConn c(server_->http_port());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(
        c.send("PUT /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
    EXPECT_NE(c.read_until("\r\n\r\n").find("HTTP/1.1 100 Continue"), std::string::npos);
    ASSERT_TRUE(c.send("hello"));
    EXPECT_NE(c.read_until("body:hello").find("200 OK"), std::string::npos);
}

TEST_F(ListenerTest, MalformedRequestIs400AndCloses) {
    start(echo);
    RawConn c(server_->http_port());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send("GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::string got = c.read_until("\"}");
    EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u) << got;
    c.read_until("never-sent");
    EXPECT_TRUE(c.closed());
}

TEST_F(ListenerTest, OversizedHeadersAre431) {
    start(echo);
    auto r = test::http_request("GET", http("/"), "", {"X-Big: " + std::string(70000, 'a')});
    EXPECT_EQ(r.status, 431);
}

TEST_F(ListenerTest, KeepAliveServesPipelinedRequestsInOrder) {
    std::atomic<int> n{0};
    start([&](Request& r) { return Response::json(200, r.path + "#" + std::to_string(++n)); });
    RawConn c(server_->http_port());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send("GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::string got = c.read_until("/two#2");
    auto one = got.find("/one#1");
    auto two = got.find("/two#2");
    ASSERT_NE(one, std::string::npos) << got;
    ASSERT_NE(two, std::string::npos) << got;
    EXPECT_LT(one, two);
    EXPECT_FALSE(c.closed());
}

TEST_F(ListenerTest, HeadAnswersHeadersWithoutBody) {
    start([](Request& r) {
        EXPECT_EQ(r.method, "HEAD");
        return Response::json(200, "0123456789");
    });
    RawConn c(server_->http_port());
    ASSERT_TRUE(c.send("HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    std::string got = c.read_until("never-sent");
    EXPECT_NE(got.find("Content-Length: 10"), std::string::npos) << got;
    EXPECT_EQ(got.find("0123456789"), std::string::npos) << got;
}

TEST_F(ListenerTest, HandlerExceptionIs500AndTheServerGoesOn) {
    start([](Request& r) -> Response {
        if (r.path == "/boom") throw std::runtime_error("boom");
        return Response::empty(204);
    });
    auto r = test::http_request("GET", http("/boom"));
    EXPECT_EQ(r.status, 500);
    EXPECT_EQ(r.body.find("boom"), std::string::npos) << "internals leak: " << r.body;
    EXPECT_EQ(test::http_request("GET", http("/ok")).status, 204);
}

TEST_F(ListenerTest, ConnectionsBeyondTheLimitAreClosed) {
    opts_.max_connections = 1;
    start(echo);
    RawConn first(server_->http_port());
    ASSERT_TRUE(first.connected());
    for (int i = 0; i < 500 && server_->open_connections() < 1; ++i)
        std::this_thread::sleep_for(10ms);
    ASSERT_EQ(server_->open_connections(), 1u);
    RawConn second(server_->http_port());
    second.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    second.read_until("HTTP/1.1");
    EXPECT_TRUE(second.closed());
    // The first connection is still served.
    ASSERT_TRUE(first.send("GET /f HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_NE(first.read_until("body:").find("200 OK"), std::string::npos);
}

TEST_F(ListenerTest, SlowClientsAreCutOffByTheReadTimeoutWhileOthersAreServed) {
    opts_.read_timeout = 1s;
    opts_.idle_timeout = 1s;
    start(echo);
    // Slowloris: headers that never end; a body that never arrives whole;
    // a keep-alive connection that goes quiet.
    RawConn headers(server_->http_port()), body(server_->http_port()), idle(server_->http_port());
    ASSERT_TRUE(headers.send("GET /slow HTTP/1.1\r\nHost: x\r\nX-Drip: 1\r\n"));
    ASSERT_TRUE(
        body.send("PUT /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789"));
    ASSERT_TRUE(idle.send("GET /once HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_NE(idle.read_until("body:").find("200 OK"), std::string::npos);
    // Meanwhile a well-behaved client is served at once.
    auto r = test::http_request("GET", http("/fast"));
    EXPECT_EQ(r.status, 200) << r.error;
    // Each slow connection is closed by the server (RawConn gives up after
    // 5 s, well past the 1 s timeouts) without an answer to the half request.
    EXPECT_EQ(headers.read_until("HTTP/1.1"), "");
    EXPECT_TRUE(headers.closed());
    EXPECT_EQ(body.read_until("HTTP/1.1"), "");
    EXPECT_TRUE(body.closed());
    idle.clear();
    idle.read_until("never sent");
    EXPECT_TRUE(idle.closed());
    EXPECT_EQ(test::http_request("GET", http("/after")).status, 200);
}

TEST_F(ListenerTest, StopLetsTheInFlightRequestFinish) {
    std::mutex mu;
    std::condition_variable cv;
    bool entered = false, release = false;
    start([&](Request&) {
        std::unique_lock lock(mu);
        entered = true;
        cv.notify_all();
        cv.wait(lock, [&] { return release; });
        return Response::json(200, "finished");
    });
    auto pending =
        std::async(std::launch::async, [&] { return test::http_request("GET", http("/slow")); });
    {
        std::unique_lock lock(mu);
        ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return entered; }));
    }
    auto stopping = std::async(std::launch::async, [&] { server_->stop(10s); });
    // New connections are refused once the acceptor is closed.
    for (int i = 0; i < 500; ++i) {
        RawConn probe(server_->http_port());
        if (!probe.connected()) break;
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_FALSE(RawConn(server_->http_port()).connected());
    {
        std::lock_guard lock(mu);
        release = true;
    }
    cv.notify_all();
    auto r = pending.get();
    EXPECT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body, "finished");
    stopping.get();
}

TEST_F(ListenerTest, StartRefusesBadTlsFilesAndBusyPorts) {
    ListenerOptions bad = opts_;
    bad.tls_key_file = (dir_.path() / "missing.key").string();
    HttpServer s1(bad, echo);
    auto st = s1.start();
    EXPECT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find("missing.key"), std::string::npos) << st.message();

    start(echo);
    ListenerOptions busy = opts_;
    busy.listen = "127.0.0.1:" + std::to_string(server_->https_port());
    HttpServer s2(busy, echo);
    st = s2.start();
    EXPECT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find("cannot listen"), std::string::npos) << st.message();
}

TEST(SplitHostPort, AcceptsHostPortAndBracketedIpv6) {
    std::string h;
    uint16_t p = 0;
    ASSERT_TRUE(split_host_port("0.0.0.0:8443", &h, &p));
    EXPECT_EQ(h, "0.0.0.0");
    EXPECT_EQ(p, 8443);
    ASSERT_TRUE(split_host_port("[::1]:80", &h, &p));
    EXPECT_EQ(h, "::1");
    EXPECT_EQ(p, 80);
    ASSERT_TRUE(split_host_port(":9000", &h, &p));
    EXPECT_EQ(h, "");
    EXPECT_EQ(p, 9000);
    for (const char* bad : {"", "8443", "host:", "host:99999", "host:8x", "::1:80", "[::1]80"})
        EXPECT_FALSE(split_host_port(bad, &h, &p)) << bad;
}

}  // namespace
}  // namespace courier::server
