#include "tests/support/webhook_receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstring>

namespace courier::test {

std::unique_ptr<WebhookReceiver> WebhookReceiver::start() {
    std::unique_ptr<WebhookReceiver> r(new WebhookReceiver());
    r->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->listen_fd_ < 0) return nullptr;
    int one = 1;
    ::setsockopt(r->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(r->listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(r->listen_fd_, 128) != 0)
        return nullptr;
    socklen_t len = sizeof a;
    ::getsockname(r->listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    r->port_ = ntohs(a.sin_port);
    r->acceptor_ = std::thread([p = r.get()] { p->accept_loop(); });
    return r;
}

WebhookReceiver::~WebhookReceiver() {
    stopping_ = true;
    {
        std::lock_guard lk(mu_);
        released_ = true;
    }
    cv_.notify_all();
    if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    for (auto& t : conns_) t.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
}

std::string WebhookReceiver::url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
}

void WebhookReceiver::set_policy(Policy p) {
    std::lock_guard lk(mu_);
    policy_ = std::move(p);
    released_ = false;
}

void WebhookReceiver::release() {
    {
        std::lock_guard lk(mu_);
        released_ = true;
    }
    cv_.notify_all();
}

std::vector<WebhookReceiver::Request> WebhookReceiver::requests() const {
    std::lock_guard lk(mu_);
    return requests_;
}

bool WebhookReceiver::wait_for(const std::function<bool(const std::vector<Request>&)>& pred,
                               std::chrono::milliseconds deadline) const {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, deadline, [&] { return pred(requests_); });
}

void WebhookReceiver::accept_loop() {
    while (!stopping_) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        std::lock_guard lk(mu_);
        conns_.emplace_back([this, fd] { serve(fd); });
    }
}

void WebhookReceiver::serve(int fd) {
    std::string buf;
    char chunk[16384];
    size_t header_end = std::string::npos;
    auto read_more = [&] {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 5000) <= 0) return false;
        ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n <= 0) return false;
        buf.append(chunk, static_cast<size_t>(n));
        return true;
    };
    while ((header_end = buf.find("\r\n\r\n")) == std::string::npos)
        if (!read_more()) {
            ::close(fd);
            return;
        }
    Request req;
    std::string head = buf.substr(0, header_end);
    size_t line_end = head.find("\r\n");
    std::string first = head.substr(0, line_end);
    auto sp1 = first.find(' '), sp2 = first.rfind(' ');
    req.method = first.substr(0, sp1);
    req.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
        size_t e = head.find("\r\n", pos);
        if (e == std::string::npos) e = head.size();
        std::string line = head.substr(pos, e - pos);
        auto colon = line.find(':');
        if (colon != std::string::npos) {
            std::string name = line.substr(0, colon);
            for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            std::string value = line.substr(colon + 1);
            while (!value.empty() && value.front() == ' ') value.erase(0, 1);
            req.headers[name] = value;
        }
        pos = e + 2;
    }
    size_t length = 0;
    if (auto it = req.headers.find("content-length"); it != req.headers.end())
        length = std::stoul(it->second);
    while (buf.size() - header_end - 4 < length)
        if (!read_more()) {
            ::close(fd);
            return;
        }
    req.body = buf.substr(header_end + 4, length);

    int status = 200;
    size_t index = 0;
    {
        std::unique_lock lk(mu_);
        index = requests_.size();
        if (policy_ && !released_) status = policy_(req, index);
        req.answered = status;
        requests_.push_back(req);
        cv_.notify_all();
        if (status == 0) {
            cv_.wait(lk, [&] { return released_ || stopping_.load(); });
        }
    }
    if (status != 0) {
        std::string answer = "HTTP/1.1 " + std::to_string(status) +
                             " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        (void)!::write(fd, answer.data(), answer.size());
    }
    ::close(fd);
}

}  // namespace courier::test
