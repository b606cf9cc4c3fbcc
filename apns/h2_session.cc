// The HTTP/2 session on an open connection: reading, writing, submitting
// pushes, PINGs, and nghttp2's callbacks (h2_internal.h).
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

void H2Pusher::on_ready(Connection& c) {
    switch (c.state) {
        case Connection::State::kConnecting:
            connected(c);
            break;
        case Connection::State::kHandshaking:
            handshake(c);
            break;
        case Connection::State::kReady:
            // Read on any event: an SSL_read that wanted to write resumes
            // on POLLOUT, and reading when nothing came costs one EAGAIN.
            c.ssl_wants_write = false;
            read(c);
            pump(c);
            break;
        case Connection::State::kClosed:
            break;
    }
}

void H2Pusher::read(Connection& c) {
    std::array<uint8_t, kReadChunk> buf;
    for (;;) {
        ERR_clear_error();
        int n = SSL_read(c.ssl, buf.data(), static_cast<int>(buf.size()));
        if (n > 0) {
            c.last_active = c.last_read = Clock::now();
            c.ping_sent.reset();  // anything at all shows the server is there
            ssize_t used = nghttp2_session_mem_recv(c.session, buf.data(), static_cast<size_t>(n));
            if (used < 0) {
                fail(c, std::string("HTTP/2 error from APNs: ") +
                            nghttp2_strerror(static_cast<int>(used)));
                return;
            }
            continue;
        }
        int err = SSL_get_error(c.ssl, n);
        if (err == SSL_ERROR_WANT_READ) return;
        if (err == SSL_ERROR_WANT_WRITE) {
            c.ssl_wants_write = true;
            return;
        }
        std::string e = openssl_error_text();
        fail(c, e.empty() ? "APNs closed the connection" : "connection to APNs lost: SSL: " + e);
        return;
    }
}

void H2Pusher::pump(Connection& c) {
    if (c.state != Connection::State::kReady) return;
    if (!c.goaway) {
        uint32_t remote =
            nghttp2_session_get_remote_settings(c.session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        size_t limit = std::min<size_t>(
            remote, static_cast<size_t>(std::max(1L, opts_.max_streams_per_connection)));
        while (!c.backlog.empty() && c.streams.size() < limit) {
            Submission s = std::move(c.backlog.front());
            c.backlog.pop_front();
            submit(c, std::move(s));
        }
    } else if (!c.backlog.empty()) {
        // A new connection takes over what this one will not send.
        auto waiting = std::move(c.backlog);
        c.backlog.clear();
        for (auto& s : waiting) enqueue(c.creds, std::move(s));
    }
    flush(c);
}

void H2Pusher::submit(Connection& c, Submission s) {
    auto st = std::make_unique<Stream>();
    st->body = wire::push_body(s.req.push_magic);
    std::string path = target_.prefix + "/3/device/" + s.req.token_hex;
    std::string expiration = std::to_string(wire::expiration_seconds(s.req));
    std::string length = std::to_string(st->body.size());
    auto nv = [](std::string_view name, std::string_view value) {
        return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                          value.size(), NGHTTP2_NV_FLAG_NONE};
    };
    const nghttp2_nv headers[] = {
        nv(":method", "POST"),
        nv(":scheme", "https"),
        nv(":authority", target_.authority),
        nv(":path", path),
        nv("apns-topic", s.req.topic),
        nv("apns-push-type", "mdm"),
        nv("apns-priority", "10"),
        nv("apns-expiration", expiration),
        nv("content-type", "application/json"),
        nv("content-length", length),
    };
    nghttp2_data_provider body{};
    body.read_callback = read_body;
    st->sub = std::move(s);
    int32_t id = nghttp2_submit_request(c.session, nullptr, headers,
                                        sizeof headers / sizeof headers[0], &body, st.get());
    if (id < 0) {
        complete(std::move(st->sub.done),
                 PushResult{0, {}, std::string("HTTP/2: ") + nghttp2_strerror(id), {}});
        return;
    }
    c.last_active = Clock::now();
    c.streams.emplace(id, std::move(st));
    // On a connection silent for ping_interval (a long-lived idle one,
    // perhaps dead for a while), the PING leaves with the push.
    start_ping(c, c.last_active);
}

void H2Pusher::start_ping(Connection& c, Clock::time_point now) {
    if (c.ping_sent || now - c.last_read < opts_.ping_interval) return;
    if (nghttp2_submit_ping(c.session, NGHTTP2_FLAG_NONE, nullptr) == 0) c.ping_sent = now;
}

void H2Pusher::flush(Connection& c) {
    if (c.state != Connection::State::kReady) return;
    for (;;) {
        if (c.out_off == c.out.size()) {
            c.out.clear();
            c.out_off = 0;
            while (c.out.size() < kWriteBatch) {
                const uint8_t* data = nullptr;
                ssize_t n = nghttp2_session_mem_send(c.session, &data);
                if (n < 0) {
                    fail(c, std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n)));
                    return;
                }
                if (n == 0) break;
                c.out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
            }
            if (c.out.empty()) break;
        }
        ERR_clear_error();
        int n =
            SSL_write(c.ssl, c.out.data() + c.out_off, static_cast<int>(c.out.size() - c.out_off));
        if (n > 0) {
            c.out_off += static_cast<size_t>(n);
            c.ssl_wants_write = false;
            continue;
        }
        int err = SSL_get_error(c.ssl, n);
        if (err == SSL_ERROR_WANT_WRITE) {
            c.ssl_wants_write = true;
            return;
        }
        if (err == SSL_ERROR_WANT_READ) return;
        std::string e = openssl_error_text();
        fail(c, e.empty() ? "connection to APNs lost while writing"
                          : "connection to APNs lost: SSL: " + e);
        return;
    }
    if (!nghttp2_session_want_read(c.session) && !nghttp2_session_want_write(c.session)) {
        close(c, "APNs ended the connection");
    }
}

void H2Pusher::stream_closed(Connection& c, int32_t id, uint32_t error_code) {
    auto it = c.streams.find(id);
    if (it == c.streams.end()) return;
    std::unique_ptr<Stream> st = std::move(it->second);
    c.streams.erase(it);
    if (!st->sub.done) return;  // timed out earlier
    PushResult r = std::move(st->result);
    if (r.http_status > 0 && error_code == NGHTTP2_NO_ERROR) {
        r.reason = wire::reason_from_body(st->response_body);
        if (r.http_status != 200) r.apns_id.clear();
    } else if (r.http_status == 0 && error_code == NGHTTP2_REFUSED_STREAM && !st->sub.resent) {
        // Refused before processing (GOAWAY, or the server's stream
        // limit): safe to send again, on whichever connection is open.
        st->sub.resent = true;
        c.backlog.push_front(std::move(st->sub));
        return;
    } else {
        r = PushResult{
            0, {}, std::string("APNs reset the push: ") + nghttp2_http2_strerror(error_code), {}};
    }
    spdlog::debug("apns push to {}: {} {}", redact(st->sub.req.token_hex), r.http_status, r.reason);
    complete(std::move(st->sub.done), std::move(r));
}

ssize_t H2Pusher::read_body(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                            size_t length, uint32_t* flags, nghttp2_data_source*, void*) {
    auto* st = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
    if (st == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = std::min(length, st->body.size() - st->body_sent);
    std::memcpy(buf, st->body.data() + st->body_sent, n);
    st->body_sent += n;
    if (st->body_sent == st->body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
}

int H2Pusher::on_header(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                        size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void*) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    auto* st =
        static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
    if (st == nullptr) return 0;
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    // nghttp2 hands header names over lowercased (HTTP/2 requires it).
    if (n == ":status") {
        int status = 0;
        for (char ch : v.substr(0, 3)) status = status * 10 + (ch - '0');
        st->result.http_status = status;
    } else if (n == "apns-id") {
        st->result.apns_id = std::string(v);
    } else if (n == "retry-after") {
        st->result.retry_after = wire::parse_retry_after(v);
    }
    return 0;
}

int H2Pusher::on_data(nghttp2_session* session, uint8_t, int32_t stream_id, const uint8_t* data,
                      size_t len, void*) {
    auto* st = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
    if (st == nullptr) return 0;
    size_t room =
        wire::kMaxResponseBody - std::min(wire::kMaxResponseBody, st->response_body.size());
    st->response_body.append(reinterpret_cast<const char*>(data), std::min(len, room));
    return 0;
}

int H2Pusher::on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                              void* user) {
    auto* c = static_cast<Connection*>(user);
    c->owner->stream_closed(*c, stream_id, error_code);
    return 0;
}

int H2Pusher::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* c = static_cast<Connection*>(user);
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        c->goaway = true;
        spdlog::info("apns: {} sent GOAWAY ({}); new pushes go to a new connection", c->label,
                     nghttp2_http2_strerror(frame->goaway.error_code));
    }
    return 0;
}

}  // namespace courier::apns::h2
