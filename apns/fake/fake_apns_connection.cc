#include "apns/fake/fake_apns_connection.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstring>

#include "certs/x509.h"

namespace courier::apns {
namespace {
constexpr size_t kMaxPayload = 4096;  // APNs' limit for a notification payload
constexpr size_t kMaxWriteChunk = 64 * 1024;
}  // namespace

Connection::Connection(FakeApns::Impl& impl, tcp::socket socket)
    : impl_(impl), stream_(std::move(socket), impl.ctx) {}
Connection::~Connection() {
    if (session_ != nullptr) nghttp2_session_del(session_);
}

void Connection::start() {
    stream_.async_handshake(ssl::stream_base::server,
                            [self = shared_from_this()](boost::system::error_code ec) {
                                if (ec) return;  // a failed handshake never counts
                                self->on_handshake();
                            });
}
void Connection::freeze() {
    frozen_ = true;
}
void Connection::goaway() {
    if (closed_ || session_ == nullptr) return;
    nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
    flush();
}
void Connection::close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    stream_.lowest_layer().close(ec);
    if (id_ != 0) {
        impl_.connections.erase(id_);
        std::lock_guard lock(impl_.mu);
        --impl_.open;
        impl_.notify();
    }
}

void Connection::on_handshake() {
    const unsigned char* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(stream_.native_handle(), &alpn, &alpn_len);
    if (std::string_view(reinterpret_cast<const char*>(alpn), alpn_len) != "h2") {
        closed_ = true;
        return;  // APNs speaks HTTP/2 only
    }
    if (X509* peer = SSL_get1_peer_certificate(stream_.native_handle())) {
        certs::X509Ptr cert(peer);
        thumbprint_ = certs::cert_sha1_hex(cert.get());
        uid_ = certs::subject_attribute(cert.get(), "UID");
    }
    {
        std::lock_guard lock(impl_.mu);
        id_ = ++impl_.accepted;
        ++impl_.open;
        impl_.notify();
    }
    impl_.connections[id_] = weak_from_this();

    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    // libcurl answers every finished stream with RST_STREAM(STREAM_CLOSED);
    // nghttp2's rapid-reset guard would end the connection after 1000.
    nghttp2_option* option = nullptr;
    nghttp2_option_new(&option);
    nghttp2_option_set_stream_reset_rate_limit(option, UINT64_MAX, UINT64_MAX);
    nghttp2_session_server_new2(&session_, cbs, this, option);
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                              impl_.opts.max_concurrent_streams};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, &iv, 1);
    flush();
    read();
}

void Connection::read() {
    stream_.async_read_some(
        asio::buffer(rbuf_), [self = shared_from_this()](boost::system::error_code ec, size_t n) {
            if (self->closed_ || self->frozen_) return;
            if (ec || nghttp2_session_mem_recv(self->session_, self->rbuf_.data(), n) < 0) {
                self->close();
                return;
            }
            self->flush();
            if (!self->closed_) self->read();
        });
}

void Connection::flush() {
    if (writing_ || closed_ || frozen_) return;
    wbuf_.clear();
    while (wbuf_.size() < kMaxWriteChunk) {
        const uint8_t* data = nullptr;
        ssize_t n = nghttp2_session_mem_send(session_, &data);
        if (n < 0) {
            close();
            return;
        }
        if (n == 0) break;
        wbuf_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    if (wbuf_.empty()) {
        if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
            close();
        }
        return;
    }
    writing_ = true;
    asio::async_write(stream_, asio::buffer(wbuf_),
                      [self = shared_from_this()](boost::system::error_code ec, size_t) {
                          self->writing_ = false;
                          if (ec) {
                              self->close();
                              return;
                          }
                          self->flush();
                      });
}

void Connection::on_request(int32_t stream_id) {
    auto it = streams_.find(stream_id);
    if (it == streams_.end()) return;
    Stream& s = *it->second;
    s.req.client_thumbprint_sha1 = thumbprint_;
    s.req.client_uid = uid_;
    s.req.connection_id = id_;
    s.req.received = std::chrono::system_clock::now();
    FakeApnsResponse r = impl_.answer(s.req, s.duplicate_headers, s.too_large);
    std::chrono::milliseconds delay;
    {
        std::lock_guard lock(impl_.mu);
        delay = impl_.delay;
    }
    if (delay.count() <= 0) {
        respond(stream_id, r, s.req.apns_id);
        return;
    }
    auto timer = std::make_shared<asio::steady_timer>(impl_.io, delay);
    timer->async_wait([self = shared_from_this(), timer, stream_id, r,
                       apns_id = s.req.apns_id](boost::system::error_code ec) {
        if (ec || self->closed_) return;
        self->respond(stream_id, r, apns_id);
        self->flush();
    });
}

void Connection::respond(int32_t stream_id, const FakeApnsResponse& r, const std::string& apns_id) {
    auto it = streams_.find(stream_id);
    if (it == streams_.end()) return;  // reset by the client meanwhile
    Stream& s = *it->second;
    std::string status = std::to_string(r.status);
    std::vector<nghttp2_nv> nv;
    auto add = [&nv](const std::string& name, const std::string& value) {
        nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                      value.size(), NGHTTP2_NV_FLAG_NONE});
    };
    static const std::string kStatus = ":status", kApnsId = "apns-id", kType = "content-type",
                             kJson = "application/json", kRetryAfter = "retry-after";
    add(kStatus, status);
    add(kApnsId, apns_id);
    if (!r.retry_after.empty()) add(kRetryAfter, r.retry_after);
    if (r.status == 200) {
        nghttp2_submit_response(session_, stream_id, nv.data(), nv.size(), nullptr);
        return;
    }
    boost::json::object body{{"reason", r.reason}};
    if (r.status == 410) {
        body["timestamp"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
    }
    s.response_body = boost::json::serialize(body);
    add(kType, kJson);
    nghttp2_data_provider prd;
    prd.source.ptr = &s;
    prd.read_callback = read_body;
    nghttp2_submit_response(session_, stream_id, nv.data(), nv.size(), &prd);
}

ssize_t Connection::read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                              uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* s = static_cast<Stream*>(source->ptr);
    size_t n = std::min(length, s->response_body.size() - s->sent);
    std::memcpy(buf, s->response_body.data() + s->sent, n);
    s->sent += n;
    if (s->sent == s->response_body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
}

int Connection::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* c = static_cast<Connection*>(user);
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        c->streams_[frame->hd.stream_id] = std::make_unique<Stream>();
    }
    return 0;
}

int Connection::on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                          size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                          void* user) {
    auto* c = static_cast<Connection*>(user);
    auto it = c->streams_.find(frame->hd.stream_id);
    if (it == c->streams_.end()) return 0;
    Stream& s = *it->second;
    std::string n(reinterpret_cast<const char*>(name), namelen);
    std::string v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":method") {
        s.req.method = v;
    } else if (n == ":path") {
        s.req.path = v;
    } else if (!n.starts_with(":")) {
        if (!s.req.headers.emplace(n, v).second) s.duplicate_headers = true;
    }
    return 0;
}

int Connection::on_data(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                        size_t len, void* user) {
    auto* c = static_cast<Connection*>(user);
    auto it = c->streams_.find(stream_id);
    if (it == c->streams_.end()) return 0;
    Stream& s = *it->second;
    if (s.req.body.size() + len > kMaxPayload) {
        s.too_large = true;
        return 0;
    }
    s.req.body.append(reinterpret_cast<const char*>(data), len);
    return 0;
}

int Connection::on_frame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* c = static_cast<Connection*>(user);
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
        c->on_request(frame->hd.stream_id);
    }
    return 0;
}

int Connection::on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t, void* user) {
    static_cast<Connection*>(user)->streams_.erase(stream_id);
    return 0;
}

}  // namespace courier::apns
