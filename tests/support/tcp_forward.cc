#include "tests/support/tcp_forward.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace courier::test {

namespace {
int connect_to(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
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
}  // namespace

std::unique_ptr<TcpForward> TcpForward::start(uint16_t target) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        ::close(fd);
        return nullptr;
    }
    return std::unique_ptr<TcpForward>(new TcpForward(fd, ntohs(a.sin_port), target));
}

TcpForward::TcpForward(int fd, uint16_t port, uint16_t target)
    : listen_fd_(fd), port_(port), target_(target) {
    acceptor_ = std::thread([this] { accept_loop(); });
}

TcpForward::~TcpForward() {
    stop_ = true;
    ++generation_;
    acceptor_.join();
    ::close(listen_fd_);
    std::lock_guard lk(mu_);
    for (auto& t : relays_) t.join();
}

void TcpForward::set_down(bool down) {
    if (down) ++generation_;
    down_ = down;
}

void TcpForward::accept_loop() {
    while (!stop_) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) continue;
        if (down_) {
            ::close(client);  // refused, as by a server that is away
            continue;
        }
        int server = connect_to(target_);
        if (server < 0) {
            ::close(client);
            continue;
        }
        ++accepted_;
        std::lock_guard lk(mu_);
        relays_.emplace_back([this, client, server] { relay(client, server); });
    }
}

void TcpForward::relay(int client, int server) {
    const uint64_t gen = generation_.load();
    char buf[16384];
    pollfd p[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    while (!stop_ && generation_.load() == gen) {
        if (::poll(p, 2, 50) <= 0) continue;
        bool closed = false;
        for (int i = 0; i < 2 && !closed; ++i) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t n = ::read(p[i].fd, buf, sizeof buf);
            if (n <= 0) {
                closed = true;
                break;
            }
            int to = p[1 - i].fd;
            for (ssize_t off = 0; off < n;) {
                ssize_t w = ::write(to, buf + off, static_cast<size_t>(n - off));
                if (w <= 0) {
                    closed = true;
                    break;
                }
                off += w;
            }
        }
        if (closed) break;
    }
    ::close(client);
    ::close(server);
}

}  // namespace courier::test
