// HttpServer's state (listener.h), shared by the listener (listener.cc) and
// its connections (session.h). Included only by listener.cc.
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "server/http/listener.h"

namespace courier::server {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

namespace listener_detail {
// Large enough for an Mdm-Signature (base64 CMS, a few KiB) or a proxy's
// URL-escaped certificate header.
constexpr uint32_t kHeaderLimit = 64 * 1024;

// A served keep-alive connection waiting for its next request: a link in the
// listener's list of idle connections, oldest first. At the connection limit
// the oldest is closed to make room for a new connection. `prev`, `next` and
// `linked` are guarded by HttpServer::Impl::idle_mu.
class IdleLink {
  public:
    IdleLink* prev = nullptr;
    IdleLink* next = nullptr;
    bool linked = false;
    // Set once the listener chose this connection to close; it never reads
    // another request (one whose first bytes raced the eviction is dropped).
    std::atomic<bool> evicted{false};
    // Counted in HttpServer::Impl::evicting until the connection is gone.
    bool eviction_counted = false;
    // Called under idle_mu: hands the eviction to the connection's strand;
    // false when the connection is already being destroyed.
    virtual bool post_evict() = 0;

  protected:
    ~IdleLink() = default;
};
}  // namespace listener_detail
using listener_detail::IdleLink;
using listener_detail::kHeaderLimit;

struct HttpServer::Impl {
    ListenerOptions opts;
    RequestHandler handler;

    // Declared before the io_context: sessions still queued in it when it is
    // destroyed touch these from their destructors.
    std::atomic<size_t> connections{0};
    std::atomic<size_t> in_flight{0};
    std::atomic<size_t> buffered{0};  // request body bytes held now
    std::atomic<uint64_t> body_read{0};
    std::atomic<uint64_t> refused{0};
    std::atomic<uint64_t> evicted_total{0};
    std::atomic<bool> stopping{false};
    std::mutex mu;
    std::condition_variable idle_cv;
    std::optional<ssl::context> tls;
    std::optional<net::thread_pool> workers;
    // Per source address: connections that are not served keep-alive ones
    // waiting idle (see Session::count_ip_again).
    std::mutex ip_mu;
    std::unordered_map<std::string, size_t> pending_by_ip;
    // Served keep-alive connections waiting for their next request, oldest
    // first (an intrusive list: O(1) to join, leave and evict).
    std::mutex idle_mu;
    IdleLink* idle_head = nullptr;
    IdleLink* idle_tail = nullptr;
    std::atomic<size_t> idle_count{0};
    // Evicted connections not yet gone (each still in `connections`), at most
    // opts.max_evictions_in_flight; and the most connections open at once.
    // Both guarded by idle_mu, as is every change to `connections`, so
    // connections <= max_connections + evicting always holds.
    size_t evicting = 0;
    std::atomic<size_t> peak{0};
    // Refusals are logged as counts, at most once a second.
    std::mutex refuse_mu;
    size_t refused_at_total = 0, refused_per_ip = 0, refused_no_proxy = 0, evicted_idle = 0;
    std::string last_refused;
    bool refuse_log_armed = false;
    std::mutex trim_mu;
    bool trim_armed = false;

    net::io_context io;
    std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
    std::optional<tcp::acceptor> https_acceptor, http_acceptor;
    net::steady_timer accept_backoff{io};
    net::steady_timer refuse_log_timer{io};
    net::steady_timer trim_timer{io};
    std::vector<std::thread> io_threads;
    uint16_t https_port = 0, http_port = 0;
    bool started = false, stopped = false;

    Impl(ListenerOptions o, RequestHandler h) : opts(std::move(o)), handler(std::move(h)) {}

    Status open_acceptor(const std::string& listen, std::optional<tcp::acceptor>* out,
                         uint16_t* port);
    Status make_tls_context();
    void accept(tcp::acceptor& acceptor, bool tls);
    void request_done() {
        if (in_flight.fetch_sub(1) == 1) {
            std::lock_guard lock(mu);
            idle_cv.notify_all();
        }
    }

    // Counts `ip` as one more connection that is not idle; false
    // (and nothing counted) when it already has max_conns_per_ip.
    bool acquire_ip(const std::string& ip) {
        std::lock_guard lock(ip_mu);
        size_t& n = pending_by_ip[ip];
        if (opts.max_conns_per_ip > 0 && n >= opts.max_conns_per_ip) {
            if (n == 0) pending_by_ip.erase(ip);
            return false;
        }
        ++n;
        return true;
    }
    void release_ip(const std::string& ip) {
        std::lock_guard lock(ip_mu);
        auto it = pending_by_ip.find(ip);
        if (it != pending_by_ip.end() && --it->second == 0) pending_by_ip.erase(it);
    }

    // The idle list. enter_idle is false (and nothing changes) for a
    // connection already chosen for eviction.
    bool enter_idle(IdleLink* l) {
        std::lock_guard lock(idle_mu);
        if (l->linked) return true;
        if (l->evicted.load()) return false;
        l->prev = idle_tail;
        l->next = nullptr;
        (idle_tail ? idle_tail->next : idle_head) = l;
        idle_tail = l;
        l->linked = true;
        idle_count.fetch_add(1);
        return true;
    }
    void leave_idle(IdleLink* l) {
        std::lock_guard lock(idle_mu);
        unlink_idle(l);
    }
    // From a connection's destructor: it no longer counts (nor, if it was
    // evicted, its eviction).
    void forget(IdleLink* l) {
        std::lock_guard lock(idle_mu);
        unlink_idle(l);
        connections.fetch_sub(1);
        if (std::exchange(l->eviction_counted, false)) --evicting;
    }
    void unlink_idle(IdleLink* l) {  // under idle_mu
        if (!l->linked) return;
        (l->prev ? l->prev->next : idle_head) = l->next;
        (l->next ? l->next->prev : idle_tail) = l->prev;
        l->prev = l->next = nullptr;
        l->linked = false;
        idle_count.fetch_sub(1);
    }
    // A new connection: counted, or refused at max_connections. At the limit
    // the connection idle the longest is closed (on its strand: close_notify,
    // then closed after opts.evict_close_timeout) to make room, unless
    // max_evictions_in_flight evicted ones are still closing. So the total
    // stays <= max_connections + max_evictions_in_flight, each of the extra
    // ones closing within about evict_close_timeout.
    enum class Admission { kAdmitted, kAfterEviction, kRefused };
    Admission admit() {
        std::lock_guard lock(idle_mu);
        Admission a = Admission::kAdmitted;
        if (connections.load() >= opts.max_connections) {
            if (evicting >= opts.max_evictions_in_flight || !evict_oldest_idle())
                return Admission::kRefused;
            a = Admission::kAfterEviction;
        }
        size_t now = connections.fetch_add(1) + 1;
        if (now > peak.load()) peak.store(now);
        return a;
    }
    bool evict_oldest_idle() {  // under idle_mu
        while (IdleLink* l = idle_head) {
            unlink_idle(l);
            l->evicted.store(true);
            if (l->post_evict()) {
                l->eviction_counted = true;
                ++evicting;
                evicted_total.fetch_add(1);
                return true;
            }
        }
        return false;
    }

    enum class Refusal { kTotal, kPerIp, kNoProxyHeader };
    void note_refused(Refusal why, const std::string& from) {
        refused.fetch_add(1);
        std::lock_guard lock(refuse_mu);
        (why == Refusal::kTotal   ? refused_at_total
         : why == Refusal::kPerIp ? refused_per_ip
                                  : refused_no_proxy)++;
        last_refused = from;
        arm_refusal_log();
    }
    // An idle connection closed to make room (in `evicted_total` already).
    void note_evicted() {
        std::lock_guard lock(refuse_mu);
        ++evicted_idle;
        arm_refusal_log();
    }
    void arm_refusal_log() {  // under refuse_mu
        if (refuse_log_armed) return;
        refuse_log_armed = true;
        refuse_log_timer.expires_after(std::chrono::seconds(1));
        refuse_log_timer.async_wait([this](error_code) { log_refusals(); });
    }
    void log_refusals() {
        std::lock_guard lock(refuse_mu);
        refuse_log_armed = false;
        size_t total = refused_at_total + refused_per_ip + refused_no_proxy;
        if (total > 0) {
            spdlog::warn(
                "refused {} connection(s) in the last second: {} at the connection limit ({}), {} "
                "over the per-address limit ({}), {} without a PROXY header; the last from {}{}",
                total, refused_at_total, opts.max_connections, refused_per_ip,
                opts.max_conns_per_ip, refused_no_proxy, last_refused,
                evicted_idle == 0 ? std::string()
                                  : "; closed " + std::to_string(evicted_idle) +
                                        " idle keep-alive connection(s) to make room");
        } else if (evicted_idle > 0) {
            spdlog::warn(
                "closed {} idle keep-alive connection(s) in the last second to make room for new "
                "ones at the connection limit ({})",
                evicted_idle, opts.max_connections);
        }
        refused_at_total = refused_per_ip = refused_no_proxy = evicted_idle = 0;
    }

    // Request body memory: charged as it arrives, released when the request
    // is done with it.
    bool charge_body(size_t n) {
        size_t now = buffered.fetch_add(n) + n;
        if (now <= opts.max_buffered_bytes) return true;
        buffered.fetch_sub(n);
        return false;
    }
    void release_body(size_t n) {
        if (n == 0) return;
        buffered.fetch_sub(n);
        // Large bodies may live in memory malloc keeps after free (its mmap
        // threshold rises with them unless fixed, as `courier serve` does in
        // main.cc): give it back to the system once a burst has passed, at
        // most every half second.
        if (n < 256 * 1024) return;
        std::lock_guard lock(trim_mu);
        if (trim_armed || stopping.load()) return;
        trim_armed = true;
        trim_timer.expires_after(std::chrono::milliseconds(500));
        trim_timer.async_wait([this](error_code ec) {
            {
                std::lock_guard lock(trim_mu);
                trim_armed = false;
            }
#ifdef __GLIBC__
            if (!ec && !stopping.load()) net::post(*workers, [] { malloc_trim(0); });
#else
            (void)ec;
#endif
        });
    }
};

}  // namespace courier::server
