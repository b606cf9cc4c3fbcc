// Raw TCP and TLS connections for tests of the transport: a chosen source
// address on the loopback range (127.0.0.2 is "another client"), bytes sent
// before the handshake (a PROXY header), a restricted TLS 1.2 offer, and how
// the server ended the connection (close_notify or not).
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace courier::test {

// A blocking TCP connection from `from` (any 127.x.y.z) to 127.0.0.1:port;
// -1 when it fails. Reads time out after 5 s.
int tcp_connect(uint16_t port, const std::string& from = "127.0.0.1");

struct TlsClientOptions {
    std::string from = "127.0.0.1";
    std::string prefix;         // sent in clear before the ClientHello
    bool tls12_only = false;    // offer TLS 1.2 only
    std::string tls12_ciphers;  // OpenSSL cipher list for TLS 1.2; empty: defaults
};

// No certificate verification: these tests are about the transport.
class TlsConn {
  public:
    TlsConn(uint16_t port, const TlsClientOptions& opts = {});
    ~TlsConn();
    TlsConn(const TlsConn&) = delete;
    TlsConn& operator=(const TlsConn&) = delete;

    bool ok() const { return ssl_ != nullptr; }  // connected and handshaken
    const std::string& error() const { return error_; }
    std::string cipher() const;
    bool send(std::string_view data);
    // Reads until `needle` appears, the server ends the connection, or 5 s
    // pass; everything read so far.
    std::string read_until(const std::string& needle);
    // The server ended the connection with TLS close_notify (SSL_read gave
    // SSL_ERROR_ZERO_RETURN), or without it (EOF or reset).
    bool got_close_notify() const { return close_notify_; }
    bool closed() const { return closed_; }
    void clear() { buf_.clear(); }

  private:
    int fd_ = -1;
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    std::string error_;
    std::string buf_;
    bool close_notify_ = false;
    bool closed_ = false;
};

}  // namespace courier::test
