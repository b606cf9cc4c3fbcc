// Opening an APNs connection: resolve, connect, TLS with the push
// certificate (h2_internal.h).
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "apns/h2_internal.h"
#include "apns/pusher.h"
#include "apns/submission_queue.h"
#include "apns/wire.h"
#include "common/encoding.h"
#include "common/status.h"

namespace courier::apns::h2 {

void H2Pusher::open(Connection& c) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    // Blocking, on this thread: a new connection is rare (start, GOAWAY,
    // renewal) and the pushes waiting for it wait for DNS either way.
    int rc = getaddrinfo(target_.host.c_str(), target_.port.c_str(), &hints, &res);
    if (rc != 0) {
        fail(c, "cannot resolve " + target_.host + ": " + gai_strerror(rc));
        return;
    }
    std::string why = "no address";
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
        int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                          ai->ai_protocol);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        // Below HTTP/2's PING: probes after 5 s of silence, 3 × 2 s apart,
        // and data left unacknowledged for 15 s ends the connection.
        int idle = 5, interval = 2, count = 3;
        unsigned user_timeout_ms = 15000;
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
        if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
            c.fd = fd;
            break;
        }
        why = std::strerror(errno);
        ::close(fd);
    }
    freeaddrinfo(res);
    if (c.fd < 0) {
        fail(c, "cannot connect to " + target_.authority + ": " + why);
        return;
    }
    c.state = Connection::State::kConnecting;
}

void H2Pusher::connected(Connection& c) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
        fail(c, "cannot connect to " + target_.authority + ": " + std::strerror(err));
        return;
    }
    if (std::string why = start_tls(c); !why.empty()) {
        fail(c, why);
        return;
    }
    c.state = Connection::State::kHandshaking;
    handshake(c);
}

std::string H2Pusher::start_tls(Connection& c) {
    c.ctx = SSL_CTX_new(TLS_client_method());
    if (c.ctx == nullptr) return "SSL: " + openssl_error_text();
    SSL_CTX_set_min_proto_version(c.ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(c.ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    static const unsigned char kAlpn[] = {2, 'h', '2'};
    SSL_CTX_set_alpn_protos(c.ctx, kAlpn, sizeof kAlpn);
    if (opts_.verify_peer) {
        SSL_CTX_set_verify(c.ctx, SSL_VERIFY_PEER, nullptr);
        int ok = opts_.ca_file.empty()
                     ? SSL_CTX_set_default_verify_paths(c.ctx)
                     : SSL_CTX_load_verify_locations(c.ctx, opts_.ca_file.c_str(), nullptr);
        if (ok != 1)
            return "SSL: cannot load APNs CA " + opts_.ca_file + ": " + openssl_error_text();
    }
    if (c.creds) {
        if (std::string why = use_credentials(c.ctx, *c.creds); !why.empty()) return why;
    }
    c.ssl = SSL_new(c.ctx);
    if (c.ssl == nullptr) return "SSL: " + openssl_error_text();
    SSL_set_fd(c.ssl, c.fd);
    SSL_set_mode(c.ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (!target_.ip_literal) SSL_set_tlsext_host_name(c.ssl, target_.host.c_str());
    if (opts_.verify_peer) {
        X509_VERIFY_PARAM* param = SSL_get0_param(c.ssl);
        int ok = target_.ip_literal ? X509_VERIFY_PARAM_set1_ip_asc(param, target_.host.c_str())
                                    : X509_VERIFY_PARAM_set1_host(param, target_.host.c_str(), 0);
        if (ok != 1) return "SSL: cannot check the server name " + target_.host;
    }
    SSL_set_connect_state(c.ssl);
    return {};
}

std::string H2Pusher::use_credentials(SSL_CTX* ctx, const Credentials& creds) {
    auto bio_of = [](const std::string& s) {
        return std::unique_ptr<BIO, decltype(&BIO_free)>(
            BIO_new_mem_buf(s.data(), static_cast<int>(s.size())), BIO_free);
    };
    auto cert_bio = bio_of(creds.cert_pem);
    X509* leaf = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr);
    if (leaf == nullptr) return "SSL: push certificate is not PEM: " + openssl_error_text();
    int ok = SSL_CTX_use_certificate(ctx, leaf);
    X509_free(leaf);
    if (ok != 1) return "SSL: push certificate refused: " + openssl_error_text();
    while (X509* extra = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)) {
        if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) X509_free(extra);
    }
    ERR_clear_error();  // the loop ends on "no start line"
    auto key_bio = bio_of(creds.key_pem);
    EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr);
    if (key == nullptr) return "SSL: push key is not PEM: " + openssl_error_text();
    ok = SSL_CTX_use_PrivateKey(ctx, key);
    EVP_PKEY_free(key);
    if (ok != 1 || SSL_CTX_check_private_key(ctx) != 1)
        return "SSL: push key does not match its certificate: " + openssl_error_text();
    return {};
}

void H2Pusher::handshake(Connection& c) {
    ERR_clear_error();
    int rc = SSL_do_handshake(c.ssl);
    if (rc != 1) {
        int err = SSL_get_error(c.ssl, rc);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            c.ssl_wants_write = err == SSL_ERROR_WANT_WRITE;
            return;
        }
        std::string why = "SSL handshake with " + target_.authority + " failed";
        long verify = SSL_get_verify_result(c.ssl);
        if (verify != X509_V_OK) {
            why += std::string(": certificate verify failed: ") +
                   X509_verify_cert_error_string(verify);
        } else if (std::string e = openssl_error_text(); !e.empty()) {
            why += ": " + e;
        } else if (err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) {
            why += ": connection closed";
        }
        fail(c, why);
        return;
    }
    c.ssl_wants_write = false;
    const unsigned char* alpn = nullptr;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(c.ssl, &alpn, &alpn_len);
    if (std::string_view(reinterpret_cast<const char*>(alpn), alpn_len) != "h2") {
        fail(c, "APNs server at " + target_.authority + " did not agree to HTTP/2");
        return;
    }
    nghttp2_session_client_new(&c.session, callbacks_, &c);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    nghttp2_submit_settings(c.session, NGHTTP2_FLAG_NONE, iv, 1);
    c.state = Connection::State::kReady;
    c.ever_ready = true;
    c.last_read = Clock::now();
    spdlog::debug("apns: connected to {} for {}", target_.authority, c.label);
    pump(c);
}

}  // namespace courier::apns::h2
