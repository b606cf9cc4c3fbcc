// The HTTP(S) listener over real sockets on 127.0.0.1: TLS with optional
// client certificates, plain HTTP, limits, framing errors, keep-alive,
// 100-continue, connection limit and graceful stop.
#include "server/listener.h"

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
namespace {

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
    opts_.body_rate_window = 1s;  // 10 bytes in a second is far below 1 KiB/s
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

// Polls `cond` until it holds or 10 s pass.
template <class F>
bool eventually(F cond) {
    for (int i = 0; i < 1000; ++i) {
        if (cond()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return cond();
}

test::TlsClientOptions tls_from(const std::string& address) {
    test::TlsClientOptions o;
    o.from = address;
    return o;
}
test::TlsClientOptions tls_prefix(const std::string& bytes) {
    test::TlsClientOptions o;
    o.prefix = bytes;
    return o;
}
test::TlsClientOptions tls12(const std::string& ciphers) {
    test::TlsClientOptions o;
    o.tls12_only = true;
    o.tls12_ciphers = ciphers;
    return o;
}

// A request handler that refuses, from the header, a request without X-Key.
std::optional<Response> key_check(const Request& r) {
    if (r.header("x-key")) return std::nullopt;
    return Response::error(401, "no key");
}

TEST_F(ListenerTest, RefusedBeforeTheBodyMeansNo100ContinueAndNoBodyRead) {
    opts_.before_body = key_check;
    std::atomic<int> calls{0};
    start([&](Request& r) {
        calls++;
        return echo(r);
    });
    const std::string head =
        "PUT /admin HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\nExpect: 100-continue\r\n";
    // Without the key: the final answer comes first, no 100, and the
    // connection is closed without the body being read.
    RawConn c(server_->http_port());
    ASSERT_TRUE(c.send(head + "\r\n"));
    std::string got = c.read_until("\"}");
    EXPECT_EQ(got.rfind("HTTP/1.1 401", 0), 0u) << got;
    EXPECT_EQ(got.find("100 Continue"), std::string::npos) << got;
    c.read_until("never-sent");
    EXPECT_TRUE(c.closed());
    // A client that sends the body right away (no Expect) gets the same 401
    // over TLS, and none of its megabyte lands in a request body.
    test::TlsConn t(server_->https_port());
    ASSERT_TRUE(t.ok()) << t.error();
    ASSERT_TRUE(t.send("PUT /admin HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"));
    t.send(std::string(64 * 1024, 'b'));
    EXPECT_EQ(t.read_until("\"}").rfind("HTTP/1.1 401", 0), 0u);
    EXPECT_EQ(server_->body_bytes_read(), 0u);
    EXPECT_EQ(calls.load(), 0);
    // With the key: 100 Continue, then the body is read and handled.
    RawConn k(server_->http_port());
    ASSERT_TRUE(
        k.send("PUT /admin HTTP/1.1\r\nHost: x\r\nX-Key: 1\r\nContent-Length: 5\r\nExpect: "
               "100-continue\r\n\r\n"));
    EXPECT_NE(k.read_until("\r\n\r\n").find("HTTP/1.1 100 Continue"), std::string::npos);
    ASSERT_TRUE(k.send("hello"));
    EXPECT_NE(k.read_until("body:hello").find("200 OK"), std::string::npos);
    EXPECT_EQ(server_->body_bytes_read(), 5u);
}

TEST_F(ListenerTest, BodiesBeyondTheBufferedCapAre503AndTheMemoryIsReleased) {
    opts_.max_buffered_bytes = 64 * 1024;
    start(echo);
    // One client holds 50,000 body bytes (of 60,000 announced).
    RawConn holder(server_->http_port());
    ASSERT_TRUE(holder.send("PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n" +
                            std::string(50000, 'a')));
    ASSERT_TRUE(eventually([&] { return server_->buffered_body_bytes() == 50000; }))
        << server_->buffered_body_bytes();
    // A body announced beyond what is left is refused from its header...
    auto r = test::http_request("PUT", http("/other"), std::string(20000, 'b'));
    EXPECT_EQ(r.status, 503) << r.error;
    // ...and a chunked body (no length) once it grows beyond the cap.
    test::HttpOptions chunked;
    chunked.chunked = true;
    r = test::http_request("PUT", http("/other"), std::string(20000, 'c'), {}, chunked);
    EXPECT_EQ(r.status, 503) << r.error;
    EXPECT_LE(server_->buffered_body_bytes(), 64u * 1024);
    // The holder finishes: served, and its bytes are released after the request.
    ASSERT_TRUE(holder.send(std::string(10000, 'a')));
    EXPECT_NE(holder.read_until("200 OK").find("200 OK"), std::string::npos);
    ASSERT_TRUE(eventually([&] { return server_->buffered_body_bytes() == 0; }));
    r = test::http_request("PUT", http("/other"), std::string(20000, 'b'));
    EXPECT_EQ(r.status, 200) << r.error;
}

TEST_F(ListenerTest, PerAddressLimitSparesOtherAddressesServedConnectionsAndPlainHttp) {
    opts_.max_conns_per_ip = 3;
    start(echo);
    // A served keep-alive connection waiting idle does not count against its
    // address.
    test::TlsConn served(server_->https_port());
    ASSERT_TRUE(served.ok()) << served.error();
    ASSERT_TRUE(served.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_NE(served.read_until("body:").find("200 OK"), std::string::npos);
    ASSERT_TRUE(eventually([&] { return server_->idle_connections() == 1; }));
    // Three silent connections from 127.0.0.1 take its three slots...
    std::vector<std::unique_ptr<RawConn>> silent;
    for (int i = 0; i < 3; ++i) {
        silent.push_back(std::make_unique<RawConn>(server_->https_port()));
        ASSERT_TRUE(silent.back()->connected());
    }
    ASSERT_TRUE(eventually([&] { return server_->open_connections() == 4; }));
    // ...the next ones from it are closed at once...
    for (int i = 0; i < 5; ++i) {
        RawConn extra(server_->https_port());
        extra.read_until("never-sent");
        EXPECT_TRUE(extra.closed());
    }
    EXPECT_EQ(server_->refused_connections(), 5u);
    // ...while another address and plain HTTP are served.
    test::TlsConn other(server_->https_port(), tls_from("127.0.0.2"));
    ASSERT_TRUE(other.ok()) << other.error();
    ASSERT_TRUE(other.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_NE(other.read_until("body:").find("200 OK"), std::string::npos);
    EXPECT_EQ(test::http_request("GET", http("/plain")).status, 200);
    // A silent connection that goes away frees its slot: the served
    // connection's next request takes it while it lasts (a served connection
    // with a request in progress counts again; see
    // ServedConnectionsTricklingTheirNextRequestCountAgainstTheirAddress)...
    silent.pop_back();
    ASSERT_TRUE(eventually([&] { return server_->open_connections() == 4; }));
    served.clear();
    ASSERT_TRUE(served.send("GET /again HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_NE(served.read_until("body:").find("200 OK"), std::string::npos);
    // ...and gives it back once answered and idle.
    ASSERT_TRUE(eventually([&] { return server_->idle_connections() == 2; }));  // and `other`
    test::TlsConn again(server_->https_port());
    ASSERT_TRUE(again.ok()) << again.error();
    ASSERT_TRUE(again.send("GET /new HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_NE(again.read_until("body:").find("200 OK"), std::string::npos);
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

size_t count_of(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
    return n;
}

TEST_F(ListenerTest, RefusedConnectionsAreLoggedAsOneCount) {
    opts_.max_conns_per_ip = 1;
    LogCapture logs;
    start(echo);
    RawConn hold(server_->https_port());
    ASSERT_TRUE(eventually([&] { return server_->open_connections() == 1; }));
    for (int i = 0; i < 20; ++i) {
        RawConn extra(server_->https_port());
        extra.read_until("never-sent");
    }
    EXPECT_EQ(server_->refused_connections(), 20u);
    ASSERT_TRUE(eventually([&] { return logs.text().find("refused 20 ") != std::string::npos; }))
        << logs.text();
    EXPECT_EQ(count_of(logs.text(), "refused"), 1u) << logs.text();
}

TEST_F(ListenerTest, SlowBodyIsCutWhileASteadySlowBodySurvivesPastTheHeaderTimeout) {
    opts_.read_timeout = 500ms;
    opts_.body_rate_window = 500ms;
    opts_.min_body_rate = 4000;  // 2,000 bytes per window
    start(echo);
    // A trickle: 100 bytes, then nothing. Closed without an answer.
    RawConn trickle(server_->http_port());
    ASSERT_TRUE(trickle.send("PUT /t HTTP/1.1\r\nHost: x\r\nContent-Length: 30000\r\n\r\n" +
                             std::string(100, 't')));
    // A steady sender at ~20,000 bytes/s for well over the header timeout.
    RawConn steady(server_->http_port());
    ASSERT_TRUE(steady.send("PUT /s HTTP/1.1\r\nHost: x\r\nContent-Length: 30000\r\n\r\n"));
    for (int i = 0; i < 30; ++i) {
        ASSERT_TRUE(steady.send(std::string(1000, 's')));
        std::this_thread::sleep_for(50ms);  // the pace is what is tested
    }
    EXPECT_NE(steady.read_until("body:").find("200 OK"), std::string::npos);
    EXPECT_EQ(trickle.read_until("HTTP/1.1"), "");
    EXPECT_TRUE(trickle.closed());
}

// A PROXY v2 header as HAProxy sends it: TCP over IPv4.
std::string proxy_v2(const std::string& src, uint16_t port) {
    std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
    h += '\x21';  // version 2, PROXY
    h += '\x11';  // TCP over IPv4
    h += std::string("\0\x0c", 2);
    in_addr a{};
    inet_pton(AF_INET, src.c_str(), &a);
    h.append(reinterpret_cast<const char*>(&a), 4);
    inet_pton(AF_INET, "127.0.0.1", &a);
    h.append(reinterpret_cast<const char*>(&a), 4);
    h += static_cast<char>(port >> 8);
    h += static_cast<char>(port & 0xff);
    h += std::string("\x20\xfb", 2);  // 8443
    return h;
}

TEST_F(ListenerTest, ProxyHeaderGivesTheClientAddressAndIsRequired) {
    opts_.proxy_protocol = true;
    opts_.max_conns_per_ip = 1;
    std::mutex mu;
    std::string seen;
    start([&](Request& r) {
        std::lock_guard lock(mu);
        seen = r.remote_address;
        return echo(r);
    });
    test::TlsConn c(server_->https_port(), tls_prefix(proxy_v2("192.0.2.7", 4242)));
    ASSERT_TRUE(c.ok()) << c.error();
    ASSERT_TRUE(c.send("GET /p HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_NE(c.read_until("body:").find("200 OK"), std::string::npos);
    {
        std::lock_guard lock(mu);
        EXPECT_EQ(seen, "192.0.2.7:4242");
    }
    // The per-address limit counts the address from the header.
    RawConn silent(server_->https_port());
    ASSERT_TRUE(silent.send(proxy_v2("192.0.2.8", 1)));
    ASSERT_TRUE(eventually([&] { return server_->open_connections() == 2; }));
    test::TlsConn same(server_->https_port(), tls_prefix(proxy_v2("192.0.2.8", 2)));
    EXPECT_FALSE(same.ok());
    test::TlsConn other(server_->https_port(), tls_prefix(proxy_v2("192.0.2.9", 3)));
    EXPECT_TRUE(other.ok()) << other.error();
    // Without a header: refused.
    uint64_t before = server_->refused_connections();
    test::TlsConn bare(server_->https_port());
    EXPECT_FALSE(bare.ok());
    EXPECT_EQ(server_->refused_connections(), before + 1);
}

TEST(ProxyV2, ParsesIpv4Ipv6AndLocalAndRefusesTheRest) {
    auto whole = proxy_v2("203.0.113.5", 50000);
    ASSERT_EQ(proxy_v2_length(whole), whole.size());
    auto h = parse_proxy_v2(whole);
    ASSERT_TRUE(h);
    EXPECT_FALSE(h->local);
    EXPECT_EQ(h->address, "203.0.113.5");
    EXPECT_EQ(h->port, 50000);

    std::string v6("\r\n\r\n\0\r\nQUIT\n\x21\x21\0\x24", 16);
    std::string src(16, '\0');
    src[0] = '\x20';
    src[1] = '\x01';
    src[2] = '\x0d';
    src[3] = '\xb8';
    src[15] = '\x01';
    v6 += src + std::string(16, '\0') + "\x01\xbb" + "\x20\xfb";
    h = parse_proxy_v2(v6);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->address, "2001:db8::1");
    EXPECT_EQ(h->port, 443);

    std::string local("\r\n\r\n\0\r\nQUIT\n\x20\x00\0\0", 16);
    h = parse_proxy_v2(local);
    ASSERT_TRUE(h);
    EXPECT_TRUE(h->local);

    std::string bad_sig = whole;
    bad_sig[3] = 'x';
    EXPECT_EQ(proxy_v2_length(bad_sig), 0u);
    EXPECT_FALSE(parse_proxy_v2(bad_sig));
    std::string v1 = whole;
    v1[12] = '\x11';  // version 1 in the binary form
    EXPECT_FALSE(parse_proxy_v2(v1));
    std::string cmd = whole;
    cmd[12] = '\x22';  // unknown command
    EXPECT_FALSE(parse_proxy_v2(cmd));
    std::string unix_family = whole;
    unix_family[13] = '\x31';
    EXPECT_FALSE(parse_proxy_v2(unix_family));
    std::string short_v6("\r\n\r\n\0\r\nQUIT\n\x21\x21\0\x0c", 16);
    short_v6 += std::string(12, '\0');  // IPv6 needs 36 bytes
    EXPECT_FALSE(parse_proxy_v2(short_v6));
    std::string huge("\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff", 16);
    EXPECT_EQ(proxy_v2_length(huge), 0u);  // beyond the 4 KiB the listener reads
    EXPECT_EQ(proxy_v2_length(whole.substr(0, 10)), 0u);
}

TEST_F(ListenerTest, Tls12OffersOnlyEcdheWithAead) {
    start(echo);
    for (const char* refused : {"AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA",
                                "ECDHE-RSA-AES256-SHA384", "DHE-RSA-AES128-GCM-SHA256"}) {
        test::TlsConn c(server_->https_port(), tls12(refused));
        EXPECT_FALSE(c.ok()) << refused << " was accepted";
    }
    for (const char* accepted : {"ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"}) {
        test::TlsConn c(server_->https_port(), tls12(accepted));
        ASSERT_TRUE(c.ok()) << accepted << ": " << c.error();
        EXPECT_EQ(c.cipher(), accepted);
    }
    test::TlsConn tls13(server_->https_port());
    EXPECT_TRUE(tls13.ok()) << tls13.error();
}

TEST_F(ListenerTest, ConnectionsTheServerClosesEndWithCloseNotify) {
    opts_.idle_timeout = 300ms;
    start(echo);
    // Closed after the response it asked for.
    test::TlsConn once(server_->https_port());
    ASSERT_TRUE(once.ok()) << once.error();
    ASSERT_TRUE(once.send("GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    once.read_until("never-sent");
    EXPECT_TRUE(once.got_close_notify());
    // Closed when idle.
    test::TlsConn idle(server_->https_port());
    ASSERT_TRUE(idle.ok()) << idle.error();
    ASSERT_TRUE(idle.send("GET /i HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_NE(idle.read_until("body:").find("200 OK"), std::string::npos);
    idle.read_until("never-sent");
    EXPECT_TRUE(idle.closed());
    EXPECT_TRUE(idle.got_close_notify());
    // Closed after an error that leaves the request unread (413).
    test::TlsConn big(server_->https_port());
    ASSERT_TRUE(big.ok()) << big.error();
    ASSERT_TRUE(big.send("PUT /b HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n"));
    EXPECT_NE(big.read_until("never-sent").find("413"), std::string::npos);
    EXPECT_TRUE(big.got_close_notify());
}

// Issue #11: served keep-alive connections do not count against their
// address, so one client could fill max_connections with idle ones and lock
// everyone out. At the limit the connection idle the longest is closed (with
// close_notify) to make room; one in the middle of a request is not.
TEST_F(ListenerTest, AtTheConnectionLimitTheOldestIdleConnectionMakesRoom) {
    constexpr size_t kLimit = 20;
    opts_.max_connections = kLimit;
    LogCapture logs;
    start(echo);
    auto get = [](test::TlsConn& c, const std::string& path) {
        c.clear();
        if (!c.send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")) return false;
        return c.read_until("body:").find("200 OK") != std::string::npos;
    };
    // The oldest connection was served, then started a request whose body is
    // still arriving: busy, not idle.
    test::TlsConn busy(server_->https_port());
    ASSERT_TRUE(busy.ok()) << busy.error();
    ASSERT_TRUE(get(busy, "/busy"));
    ASSERT_TRUE(busy.send("PUT /b HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n0123456789"));
    ASSERT_TRUE(eventually([&] { return server_->buffered_body_bytes() == 10; }));
    ASSERT_EQ(server_->idle_connections(), 0u);
    // The rest of the slots: served keep-alive connections from the same
    // address, idle one after the other.
    std::vector<std::unique_ptr<test::TlsConn>> idle;
    for (size_t i = 1; i < kLimit; ++i) {
        idle.push_back(std::make_unique<test::TlsConn>(server_->https_port()));
        ASSERT_TRUE(idle.back()->ok()) << i << ": " << idle.back()->error();
        ASSERT_TRUE(get(*idle.back(), "/idle"));
        ASSERT_TRUE(eventually([&] { return server_->idle_connections() == i; }));
    }
    ASSERT_EQ(server_->open_connections(), kLimit);
    // Another address is served...
    test::TlsConn other(server_->https_port(), tls_from("127.0.0.2"));
    ASSERT_TRUE(other.ok()) << other.error();
    ASSERT_TRUE(get(other, "/healthz"));
    EXPECT_EQ(server_->refused_connections(), 0u);
    EXPECT_EQ(server_->evicted_connections(), 1u);
    // ...because the connection idle the longest was closed, cleanly.
    idle.front()->read_until("never-sent");
    EXPECT_TRUE(idle.front()->closed());
    EXPECT_TRUE(idle.front()->got_close_notify());
    ASSERT_TRUE(eventually([&] { return server_->open_connections() == kLimit; }));
    // The busy connection finishes its request; the other idle ones still serve.
    busy.clear();
    ASSERT_TRUE(busy.send("0123456789"));
    EXPECT_NE(busy.read_until("body:").find("200 OK"), std::string::npos);
    for (size_t i = 1; i < idle.size(); ++i) EXPECT_TRUE(get(*idle[i], "/again")) << i;
    EXPECT_EQ(server_->evicted_connections(), 1u);
    ASSERT_TRUE(eventually([&] {
        return logs.text().find("closed 1 idle keep-alive connection(s)") != std::string::npos;
    })) << logs.text();
}

// With no connection idle, the new one is refused (the busy ones are kept).
TEST_F(ListenerTest, AtTheConnectionLimitWithNothingIdleTheNewcomerIsRefused) {
    opts_.max_connections = 2;
    start(echo);
    test::TlsConn busy(server_->https_port());
    ASSERT_TRUE(busy.ok()) << busy.error();
    ASSERT_TRUE(busy.send("PUT /b HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n0123456789"));
    ASSERT_TRUE(eventually([&] { return server_->buffered_body_bytes() == 10; }));
    RawConn silent(server_->https_port());  // not yet served: not idle either
    ASSERT_TRUE(eventually([&] { return server_->open_connections() == 2; }));
    RawConn refused(server_->https_port(), "127.0.0.2");
    refused.read_until("never-sent");
    EXPECT_TRUE(refused.closed());
    EXPECT_EQ(server_->refused_connections(), 1u);
    EXPECT_EQ(server_->evicted_connections(), 0u);
    ASSERT_TRUE(busy.send("0123456789"));
    EXPECT_NE(busy.read_until("body:").find("200 OK"), std::string::npos);
}

// Review 2, finding 1: a served connection is neither idle (evictable) nor,
// before the fix, counted against its address once it starts its next
// request, so one address could hold every slot by trickling next requests.
// Now such a connection counts again: the (K+1)-th from one address is closed.
TEST_F(ListenerTest, ServedConnectionsTricklingTheirNextRequestCountAgainstTheirAddress) {
    constexpr size_t kLimit = 6, kPerIp = 2;
    opts_.max_connections = kLimit;
    opts_.max_conns_per_ip = kPerIp;
    start(echo);
    // kLimit served keep-alive connections from 127.0.0.1 (each done before
    // the next opens, so the per-address limit does not refuse them).
    std::vector<std::unique_ptr<test::TlsConn>> conns;
    for (size_t i = 0; i < kLimit; ++i) {
        conns.push_back(std::make_unique<test::TlsConn>(server_->https_port()));
        auto& c = *conns.back();
        ASSERT_TRUE(c.ok()) << i << ": " << c.error();
        ASSERT_TRUE(c.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n"));
        ASSERT_NE(c.read_until("body:").find("200 OK"), std::string::npos) << i;
        ASSERT_TRUE(eventually([&] { return server_->idle_connections() == i + 1; }));
    }
    ASSERT_EQ(server_->open_connections(), kLimit);
    // Each starts its next request and trickles the header: the first kPerIp
    // are counted (and kept)...
    for (size_t i = 0; i < kLimit; ++i) {
        auto& c = *conns[i];
        c.clear();
        ASSERT_TRUE(c.send("GET /slow HTTP/1.1\r\n"));
        if (i < kPerIp) {
            ASSERT_TRUE(eventually([&] { return server_->idle_connections() == kLimit - i - 1; }));
            ASSERT_TRUE(c.send("Host: x\r\n"));  // still arriving
            continue;
        }
        // ...the rest are over the address's limit and closed (close_notify).
        c.read_until("never-sent");
        EXPECT_TRUE(c.closed()) << i;
        EXPECT_TRUE(c.got_close_notify()) << i;
    }
    EXPECT_EQ(server_->refused_connections(), kLimit - kPerIp);
    ASSERT_TRUE(eventually([&] { return server_->open_connections() == kPerIp; }));
    // Another address is answered.
    test::TlsConn other(server_->https_port(), tls_from("127.0.0.2"));
    ASSERT_TRUE(other.ok()) << other.error();
    ASSERT_TRUE(other.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_NE(other.read_until("body:").find("200 OK"), std::string::npos);
    // The counted ones finish their requests and are idle (uncounted) again,
    // so the address may open a new connection.
    for (size_t i = 0; i < kPerIp; ++i) {
        ASSERT_TRUE(conns[i]->send("\r\n"));
        EXPECT_NE(conns[i]->read_until("body:").find("GET /slow"), std::string::npos) << i;
    }
    ASSERT_TRUE(
        eventually([&] { return server_->idle_connections() == kPerIp + 1; }));  // and `other`
    test::TlsConn fresh(server_->https_port());
    ASSERT_TRUE(fresh.ok()) << fresh.error();
    ASSERT_TRUE(fresh.send("GET /fresh HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_NE(fresh.read_until("body:").find("200 OK"), std::string::npos);
}

// Review 2, finding 4: an evicted connection stayed counted through its
// close_notify exchange (2 s when the client never answers) while each
// newcomer was counted at once, so a burst went far beyond the limit. Now at
// most max_evictions_in_flight are closing at once (newcomers beyond are
// refused) and each closes after evict_close_timeout.
TEST_F(ListenerTest, ABurstAtTheConnectionLimitStaysWithinTheEvictionBound) {
    constexpr size_t kLimit = 10, kInFlight = 2, kBurst = 30;
    opts_.max_connections = kLimit;
    opts_.max_evictions_in_flight = kInFlight;
    start(echo);
    // Served idle connections that never answer close_notify (never read).
    std::vector<std::unique_ptr<test::TlsConn>> idle;
    for (size_t i = 0; i < kLimit; ++i) {
        idle.push_back(std::make_unique<test::TlsConn>(server_->https_port()));
        auto& c = *idle.back();
        ASSERT_TRUE(c.ok()) << i << ": " << c.error();
        ASSERT_TRUE(c.send("GET /idle HTTP/1.1\r\nHost: x\r\n\r\n"));
        ASSERT_NE(c.read_until("body:").find("200 OK"), std::string::npos) << i;
        ASSERT_TRUE(eventually([&] { return server_->idle_connections() == i + 1; }));
    }
    // A burst of silent newcomers from another address.
    std::vector<std::unique_ptr<RawConn>> burst;
    for (size_t i = 0; i < kBurst; ++i) {
        burst.push_back(std::make_unique<RawConn>(server_->https_port(), "127.0.0.2"));
        ASSERT_TRUE(burst.back()->connected()) << i;
    }
    // Every newcomer was either admitted (evicting an idle one) or refused.
    ASSERT_TRUE(eventually([&] {
        return server_->evicted_connections() + server_->refused_connections() == kBurst;
    })) << server_->evicted_connections()
        << " evicted, " << server_->refused_connections() << " refused";
    EXPECT_GE(server_->evicted_connections(), kInFlight);
    EXPECT_GT(server_->refused_connections(), 0u);
    EXPECT_LE(server_->peak_connections(), kLimit + kInFlight);
    // The evicted ones are gone though they never answered close_notify (it
    // was sent), and the total is back at the limit.
    ASSERT_TRUE(eventually([&] { return server_->open_connections() == kLimit; }));
    size_t evicted = server_->evicted_connections();
    for (size_t i = 0; i < evicted; ++i) {
        idle[i]->read_until("never-sent");
        EXPECT_TRUE(idle[i]->closed()) << i;
        EXPECT_TRUE(idle[i]->got_close_notify()) << i;
    }
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
