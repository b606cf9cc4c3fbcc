// The listener's PROXY v2 header (--proxy-protocol) and TLS details: TLS 1.2
// cipher suites, close_notify on connections the server closes.
#include "tests/http/listener_fixture.h"

namespace courier::server {
namespace {

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

}  // namespace
}  // namespace courier::server
