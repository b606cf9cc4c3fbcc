// The HTTP(S) listener over real sockets on 127.0.0.1: TLS with optional
// client certificates, plain HTTP, framing errors, keep-alive, 100-continue,
// timeouts and graceful stop. Limits: listener_limits_test.cc; PROXY v2 and
// TLS details: listener_proxy_tls_test.cc.
#include "tests/http/listener_fixture.h"

namespace courier::server {
namespace {

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
