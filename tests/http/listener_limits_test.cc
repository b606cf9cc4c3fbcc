// The listener's limits over real sockets: bodies refused from the header,
// the buffered-body cap, per-address and total connection limits, idle
// eviction at the limit, slow bodies, and how refusals are logged.
#include "tests/http/listener_fixture.h"

namespace courier::server {
namespace {

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

}  // namespace
}  // namespace courier::server
