#include "tests/support/tls_conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "common/openssl_error.h"

namespace courier::test {

int tcp_connect(uint16_t port, const std::string& from) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    if (inet_pton(AF_INET, from.c_str(), &local.sin_addr) != 1 ||
        ::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
        ::close(fd);
        return -1;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

namespace {
std::string ssl_errors() {
    return openssl_error_text();
}
}  // namespace

TlsConn::TlsConn(uint16_t port, const TlsClientOptions& opts) {
    // OpenSSL writes with send(): a server that closes must not kill the test.
    ::signal(SIGPIPE, SIG_IGN);
    fd_ = tcp_connect(port, opts.from);
    if (fd_ < 0) {
        error_ = "connect failed";
        return;
    }
    if (!opts.prefix.empty() && ::send(fd_, opts.prefix.data(), opts.prefix.size(), MSG_NOSIGNAL) !=
                                    static_cast<ssize_t>(opts.prefix.size())) {
        error_ = "sending the prefix failed";
        return;
    }
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    if (opts.tls12_only) SSL_CTX_set_max_proto_version(ctx_, TLS1_2_VERSION);
    // Level 0: the client must be able to offer what the server should refuse.
    SSL_CTX_set_security_level(ctx_, 0);
    if (!opts.tls12_ciphers.empty() &&
        SSL_CTX_set_cipher_list(ctx_, opts.tls12_ciphers.c_str()) != 1) {
        error_ = "client cipher list: " + ssl_errors();
        return;
    }
    SSL* ssl = SSL_new(ctx_);
    SSL_set_fd(ssl, fd_);
    ERR_clear_error();
    if (SSL_connect(ssl) != 1) {
        error_ = "handshake failed: " + ssl_errors();
        SSL_free(ssl);
        return;
    }
    ssl_ = ssl;
}

TlsConn::~TlsConn() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
}

std::string TlsConn::cipher() const {
    return ssl_ ? SSL_get_cipher_name(ssl_) : "";
}

bool TlsConn::send(std::string_view data) {
    if (!ssl_) return false;
    while (!data.empty()) {
        int n = SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
        if (n <= 0) return false;
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

std::string TlsConn::read_until(const std::string& needle) {
    while (ssl_ && !closed_ && buf_.find(needle) == std::string::npos) {
        char tmp[4096];
        int n = SSL_read(ssl_, tmp, sizeof tmp);
        if (n > 0) {
            buf_.append(tmp, static_cast<size_t>(n));
            continue;
        }
        int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_ZERO_RETURN) {
            close_notify_ = true;
            closed_ = true;
        } else if (err == SSL_ERROR_WANT_READ ||
                   (err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))) {
            // our 5 s receive timeout: neither closed nor found
        } else {
            closed_ = true;
        }
        break;
    }
    return buf_;
}

}  // namespace courier::test
