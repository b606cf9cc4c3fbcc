#include "tests/support/tunnel_proxy.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <optional>

namespace courier::test {
namespace {

constexpr int kPollMs = 100;
constexpr int kIdlePolls = 300;  // a tunnel silent for 30 s is closed

// Reads exactly n bytes (bounded by kIdlePolls polls); false on EOF or error.
bool read_exact(int fd, void* out, size_t n, const std::atomic<bool>& stop) {
    auto* p = static_cast<uint8_t*>(out);
    for (int polls = 0; n > 0 && polls < kIdlePolls && !stop; ++polls) {
        pollfd pfd{fd, POLLIN, 0};
        if (::poll(&pfd, 1, kPollMs) <= 0) continue;
        ssize_t got = ::recv(fd, p, n, 0);
        if (got <= 0) return false;
        p += got;
        n -= static_cast<size_t>(got);
        polls = 0;
    }
    return n == 0;
}

bool write_all(int fd, const void* data, size_t n) {
    auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
        ssize_t put = ::send(fd, p, n, MSG_NOSIGNAL);
        if (put <= 0) return false;
        p += put;
        n -= static_cast<size_t>(put);
    }
    return true;
}

int connect_to(const std::string& host, uint16_t port) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return -1;
    int fd = ::socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    if (fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        ::close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

// "CONNECT host:port HTTP/1.1" and headers up to the blank line.
std::optional<std::pair<std::string, uint16_t>> read_connect(int fd,
                                                             const std::atomic<bool>& stop) {
    std::string head;
    char c;
    while (head.size() < 8192 && head.find("\r\n\r\n") == std::string::npos) {
        if (!read_exact(fd, &c, 1, stop)) return std::nullopt;
        head += c;
    }
    if (!head.starts_with("CONNECT ")) return std::nullopt;
    auto end = head.find(' ', 8);
    std::string target = head.substr(8, end - 8);
    auto colon = target.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    return std::make_pair(target.substr(0, colon),
                          static_cast<uint16_t>(std::stoi(target.substr(colon + 1))));
}

// RFC 1928 without authentication: greeting, then one CONNECT request.
std::optional<std::pair<std::string, uint16_t>> read_socks5(int fd, const std::atomic<bool>& stop) {
    uint8_t hello[2];
    if (!read_exact(fd, hello, 2, stop) || hello[0] != 5) return std::nullopt;
    std::vector<uint8_t> methods(hello[1]);
    if (!read_exact(fd, methods.data(), methods.size(), stop)) return std::nullopt;
    const uint8_t no_auth[2] = {5, 0};
    if (!write_all(fd, no_auth, 2)) return std::nullopt;
    uint8_t req[4];
    if (!read_exact(fd, req, 4, stop) || req[0] != 5 || req[1] != 1) return std::nullopt;
    std::string host;
    if (req[3] == 1) {
        uint8_t ip[4];
        if (!read_exact(fd, ip, 4, stop)) return std::nullopt;
        char text[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, ip, text, sizeof text);
        host = text;
    } else if (req[3] == 3) {
        uint8_t len;
        if (!read_exact(fd, &len, 1, stop)) return std::nullopt;
        host.resize(len);
        if (!read_exact(fd, host.data(), len, stop)) return std::nullopt;
    } else {
        return std::nullopt;
    }
    uint8_t port[2];
    if (!read_exact(fd, port, 2, stop)) return std::nullopt;
    return std::make_pair(host, static_cast<uint16_t>(port[0] << 8 | port[1]));
}

void relay(int a, int b, const std::atomic<bool>& stop) {
    std::array<char, 16384> buf;
    for (int idle = 0; idle < kIdlePolls && !stop;) {
        pollfd pfds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
        int n = ::poll(pfds, 2, kPollMs);
        if (n <= 0) {
            ++idle;
            continue;
        }
        idle = 0;
        for (int i = 0; i < 2; ++i) {
            if (pfds[i].revents == 0) continue;
            int from = i == 0 ? a : b, to = i == 0 ? b : a;
            ssize_t got = ::recv(from, buf.data(), buf.size(), 0);
            if (got <= 0 || !write_all(to, buf.data(), static_cast<size_t>(got))) return;
        }
    }
}

}  // namespace

std::unique_ptr<TunnelProxy> TunnelProxy::start(Kind kind) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(fd);
        return nullptr;
    }
    return std::unique_ptr<TunnelProxy>(new TunnelProxy(kind, fd, ntohs(addr.sin_port)));
}

TunnelProxy::TunnelProxy(Kind kind, int listen_fd, uint16_t port)
    : kind_(kind), listen_fd_(listen_fd), port_(port) {
    acceptor_ = std::thread([this] { accept_loop(); });
}

TunnelProxy::~TunnelProxy() {
    stop_ = true;
    acceptor_.join();
    for (auto& t : workers_) t.join();
    ::close(listen_fd_);
}

std::string TunnelProxy::url() const {
    return std::string(kind_ == Kind::kSocks5 ? "socks5://" : "http://") +
           "127.0.0.1:" + std::to_string(port_);
}

std::vector<std::string> TunnelProxy::tunnels() const {
    std::lock_guard lock(mu_);
    return tunnels_;
}

void TunnelProxy::accept_loop() {
    while (!stop_) {
        pollfd pfd{listen_fd_, POLLIN, 0};
        if (::poll(&pfd, 1, kPollMs) <= 0) continue;
        int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) continue;
        std::lock_guard lock(mu_);
        workers_.emplace_back([this, client] {
            serve(client);
            ::close(client);
        });
    }
}

void TunnelProxy::serve(int client) {
    auto target = kind_ == Kind::kSocks5 ? read_socks5(client, stop_) : read_connect(client, stop_);
    if (!target) return;
    int upstream = connect_to(target->first, target->second);
    {
        std::lock_guard lock(mu_);
        tunnels_.push_back(target->first + ":" + std::to_string(target->second));
    }
    if (kind_ == Kind::kSocks5) {
        const uint8_t reply[10] = {
            5, static_cast<uint8_t>(upstream >= 0 ? 0 : 5), 0, 1, 0, 0, 0, 0, 0, 0};
        if (!write_all(client, reply, sizeof reply) || upstream < 0) {
            if (upstream >= 0) ::close(upstream);
            return;
        }
    } else {
        std::string reply = upstream >= 0 ? "HTTP/1.1 200 Connection established\r\n\r\n"
                                          : "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n";
        if (!write_all(client, reply.data(), reply.size()) || upstream < 0) {
            if (upstream >= 0) ::close(upstream);
            return;
        }
    }
    relay(client, upstream, stop_);
    ::close(upstream);
}

}  // namespace courier::test
