// FakeApns: nghttp2's server session fed from an Asio TLS stream. One io
// thread runs everything; the public methods post to it or read shared state
// under the lock.
#include "apns/fake/fake_apns.h"

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/json.hpp>
#include <cctype>
#include <condition_variable>
#include <cstring>
#include <future>
#include <thread>

#include "certs/x509.h"
#include "common/encoding.h"

namespace courier::apns {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr size_t kMaxPayload = 4096;  // APNs' limit for a notification payload
constexpr size_t kMaxWriteChunk = 64 * 1024;

int select_h2(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
              unsigned int inlen, void*) {
    unsigned char* o = nullptr;
    if (nghttp2_select_next_protocol(&o, outlen, in, inlen) != 1) return SSL_TLSEXT_ERR_NOACK;
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

Result<tcp::endpoint> parse_listen(const std::string& listen) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos) return invalid("listen address must be HOST:PORT");
    std::string host = listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    if (host.empty() || host == "localhost") host = "127.0.0.1";
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(host, ec);
    if (ec) return invalid("listen host must be an IP address: " + host);
    int port = 0;
    try {
        port = std::stoi(listen.substr(colon + 1));
    } catch (const std::exception&) {
        return invalid("bad listen port in " + listen);
    }
    if (port < 0 || port > 65535) return invalid("bad listen port in " + listen);
    return tcp::endpoint(addr, static_cast<uint16_t>(port));
}

FakeApnsResponse refusal(int status, const char* reason) {
    FakeApnsResponse r;
    r.status = status;
    r.reason = reason;
    return r;
}

struct Programmed {
    FakeApnsResponse response;
    int remaining;  // < 0: always
};

}  // namespace

class Connection;

class FakeApns::Impl {
  public:
    explicit Impl(FakeApnsOptions o) : opts(std::move(o)), delay(opts.delay) {}

    Status init();
    void accept();
    void stop();
    // Runs fn on the io thread and waits for it.
    void run_on_io(std::function<void()> fn);

    // Decides the answer to a complete request (io thread), records it.
    FakeApnsResponse answer(FakeApnsRequest& req, bool duplicate_headers, bool too_large);
    void notify() { cv.notify_all(); }

    FakeApnsOptions opts;
    asio::io_context io;
    ssl::context ctx{ssl::context::tls_server};
    tcp::acceptor acceptor{io};
    uint16_t bound_port = 0;
    std::string url_host;  // the bound address, 127.0.0.1 for a wildcard bind
    std::thread thread;
    std::map<uint64_t, std::weak_ptr<Connection>> connections;  // io thread only
    // Frozen connections, kept alive (and their sockets open) until stop().
    std::vector<std::shared_ptr<Connection>> frozen;  // io thread only

    mutable std::mutex mu;
    mutable std::condition_variable cv;
    std::vector<FakeApnsRequest> requests;
    uint64_t accepted = 0;
    uint64_t open = 0;
    std::map<std::string, Programmed> programmed;
    std::chrono::milliseconds delay;
    std::function<void(const FakeApnsRequest&)> push_callback;
};

// One HTTP/2 connection, owned by the handlers in flight (shared_from_this).
class Connection : public std::enable_shared_from_this<Connection> {
  public:
    Connection(FakeApns::Impl& impl, tcp::socket socket)
        : impl_(impl), stream_(std::move(socket), impl.ctx) {}
    ~Connection() {
        if (session_ != nullptr) nghttp2_session_del(session_);
    }

    void start() {
        stream_.async_handshake(ssl::stream_base::server,
                                [self = shared_from_this()](boost::system::error_code ec) {
                                    if (ec) return;  // a failed handshake never counts
                                    self->on_handshake();
                                });
    }
    // Stops reading and writing; the socket stays open (freeze_connections).
    void freeze() { frozen_ = true; }
    void goaway() {
        if (closed_ || session_ == nullptr) return;
        nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
        flush();
    }
    void close() {
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

  private:
    struct Stream {
        FakeApnsRequest req;
        bool duplicate_headers = false;
        bool too_large = false;
        std::string response_body;
        size_t sent = 0;
    };

    void on_handshake() {
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

    void read() {
        stream_.async_read_some(asio::buffer(rbuf_), [self = shared_from_this()](
                                                         boost::system::error_code ec, size_t n) {
            if (self->closed_ || self->frozen_) return;
            if (ec || nghttp2_session_mem_recv(self->session_, self->rbuf_.data(), n) < 0) {
                self->close();
                return;
            }
            self->flush();
            if (!self->closed_) self->read();
        });
    }

    void flush() {
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

    void on_request(int32_t stream_id) {
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

    void respond(int32_t stream_id, const FakeApnsResponse& r, const std::string& apns_id) {
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

    static ssize_t read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                             uint32_t* flags, nghttp2_data_source* source, void*) {
        auto* s = static_cast<Stream*>(source->ptr);
        size_t n = std::min(length, s->response_body.size() - s->sent);
        std::memcpy(buf, s->response_body.data() + s->sent, n);
        s->sent += n;
        if (s->sent == s->response_body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
        return static_cast<ssize_t>(n);
    }

    static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
        auto* c = static_cast<Connection*>(user);
        if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
            c->streams_[frame->hd.stream_id] = std::make_unique<Stream>();
        }
        return 0;
    }

    static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
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

    static int on_data(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
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

    static int on_frame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
        auto* c = static_cast<Connection*>(user);
        if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
            (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
            c->on_request(frame->hd.stream_id);
        }
        return 0;
    }

    static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t, void* user) {
        static_cast<Connection*>(user)->streams_.erase(stream_id);
        return 0;
    }

    FakeApns::Impl& impl_;
    ssl::stream<tcp::socket> stream_;
    nghttp2_session* session_ = nullptr;
    uint64_t id_ = 0;
    std::string thumbprint_, uid_;
    std::array<uint8_t, 16 * 1024> rbuf_{};
    std::string wbuf_;
    bool writing_ = false;
    bool closed_ = false;
    bool frozen_ = false;
    std::map<int32_t, std::unique_ptr<Stream>> streams_;
};

Status FakeApns::Impl::init() {
    auto endpoint = parse_listen(opts.listen);
    if (!endpoint) return endpoint.status();
    boost::system::error_code ec;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ctx.use_certificate_chain(asio::buffer(opts.cert_pem), ec);
    if (ec) return invalid("fake APNs server certificate: " + ec.message());
    ctx.use_private_key(asio::buffer(opts.key_pem), ssl::context::pem, ec);
    if (ec) return invalid("fake APNs server key: " + ec.message());
    bool accept_any_client = opts.client_ca_pem.empty();
    if (!accept_any_client) {
        ctx.add_certificate_authority(asio::buffer(opts.client_ca_pem), ec);
        if (ec) return invalid("fake APNs client CA: " + ec.message());
    }
    ssl::verify_mode mode = ssl::verify_peer | ssl::verify_client_once;
    if (opts.client_cert == FakeApnsOptions::ClientCert::kRequired) {
        mode |= ssl::verify_fail_if_no_peer_cert;
    }
    ctx.set_verify_mode(mode);
    ctx.set_verify_callback([accept_any_client](bool preverified, ssl::verify_context&) {
        return accept_any_client || preverified;
    });
    SSL_CTX_set_alpn_select_cb(ctx.native_handle(), select_h2, nullptr);

    acceptor.open(endpoint->protocol(), ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor.bind(*endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return unavailable("fake APNs cannot listen on " + opts.listen + ": " + ec.message());
    bound_port = acceptor.local_endpoint().port();
    auto addr = acceptor.local_endpoint().address();
    if (addr.is_unspecified()) addr = asio::ip::make_address("127.0.0.1");
    url_host = addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string();
    accept();
    thread = std::thread([this] { io.run(); });
    return Status::ok();
}

void FakeApns::Impl::accept() {
    acceptor.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
        if (!ec) {
            socket.set_option(tcp::no_delay(true), ec);
            std::make_shared<Connection>(*this, std::move(socket))->start();
        }
        accept();
    });
}

void FakeApns::Impl::run_on_io(std::function<void()> fn) {
    std::promise<void> done;
    auto fut = done.get_future();
    asio::post(io, [&] {
        fn();
        done.set_value();
    });
    fut.wait();
}

void FakeApns::Impl::stop() {
    if (!thread.joinable()) return;
    asio::post(io, [this] {
        boost::system::error_code ec;
        acceptor.close(ec);
        for (auto& [id, weak] : std::map(connections)) {
            if (auto c = weak.lock()) c->close();
        }
        frozen.clear();
        io.stop();
    });
    thread.join();
}

FakeApnsResponse FakeApns::Impl::answer(FakeApnsRequest& req, bool duplicate_headers,
                                        bool too_large) {
    static constexpr std::string_view kPrefix = "/3/device/";
    if (req.path.starts_with(kPrefix)) req.token = req.path.substr(kPrefix.size());
    auto header = [&req](const char* name) -> const std::string* {
        auto it = req.headers.find(name);
        return it == req.headers.end() ? nullptr : &it->second;
    };
    FakeApnsResponse r;
    const std::string* push_type = header("apns-push-type");
    const std::string* topic = header("apns-topic");
    if (req.method != "POST") {
        r = refusal(405, "MethodNotAllowed");
    } else if (!req.path.starts_with(kPrefix) || req.token.find('/') != std::string::npos) {
        r = refusal(404, "BadPath");
    } else if (req.token.empty()) {
        r = refusal(400, "MissingDeviceToken");
    } else if (duplicate_headers) {
        r = refusal(400, "DuplicateHeaders");
    } else if (too_large) {
        r = refusal(413, "PayloadTooLarge");
    } else if (push_type == nullptr || *push_type != "mdm") {
        r = refusal(400, "InvalidPushType");
    } else if (topic == nullptr || topic->empty()) {
        r = refusal(400, "MissingTopic");
    } else if (!req.client_uid.empty() && *topic != req.client_uid) {
        // Apple: the certificate does not allow pushing to this topic.
        r = refusal(400, "TopicDisallowed");
    } else {
        boost::system::error_code ec;
        auto body = boost::json::parse(req.body, ec);
        const boost::json::value* mdm = nullptr;
        if (!ec && body.is_object()) mdm = body.as_object().if_contains("mdm");
        if (mdm == nullptr || !mdm->is_string() || mdm->as_string().empty()) {
            r = refusal(400, "PayloadEmpty");
        }
    }
    std::function<void(const FakeApnsRequest&)> cb;
    {
        std::lock_guard lock(mu);
        if (r.status == 200) {
            auto it = programmed.find(req.token);
            if (it != programmed.end()) {
                r = it->second.response;
                if (it->second.remaining > 0 && --it->second.remaining == 0) programmed.erase(it);
            }
        }
        req.status = r.status;
        req.reason = r.reason;
        req.apns_id = random_uuid();
        // APNs answers canonical lower-case UUIDs.
        std::transform(req.apns_id.begin(), req.apns_id.end(), req.apns_id.begin(),
                       [](unsigned char c) { return std::tolower(c); });
        requests.push_back(req);
        if (r.status == 200) cb = push_callback;
    }
    notify();
    if (cb) cb(req);
    return r;
}

Result<std::unique_ptr<FakeApns>> FakeApns::start(FakeApnsOptions opts) {
    auto impl = std::make_unique<Impl>(std::move(opts));
    Status st = impl->init();
    if (!st) return st;
    return std::unique_ptr<FakeApns>(new FakeApns(std::move(impl)));
}

FakeApns::FakeApns(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FakeApns::~FakeApns() {
    impl_->stop();
}

uint16_t FakeApns::port() const {
    return impl_->bound_port;
}
std::string FakeApns::base_url() const {
    return "https://" + impl_->url_host + ":" + std::to_string(impl_->bound_port);
}

void FakeApns::set_response(const std::string& token, FakeApnsResponse r, int times) {
    std::lock_guard lock(impl_->mu);
    if (times == 0) {
        impl_->programmed.erase(token);
        return;
    }
    impl_->programmed[token] = Programmed{std::move(r), times < 0 ? -1 : times};
}

void FakeApns::clear_responses() {
    std::lock_guard lock(impl_->mu);
    impl_->programmed.clear();
}

void FakeApns::set_delay(std::chrono::milliseconds d) {
    std::lock_guard lock(impl_->mu);
    impl_->delay = d;
}

void FakeApns::send_goaway() {
    impl_->run_on_io([this] {
        for (auto& [id, weak] : std::map(impl_->connections)) {
            if (auto c = weak.lock()) c->goaway();
        }
    });
}

void FakeApns::drop_connections() {
    impl_->run_on_io([this] {
        for (auto& [id, weak] : std::map(impl_->connections)) {
            if (auto c = weak.lock()) c->close();
        }
    });
}

void FakeApns::freeze_connections() {
    impl_->run_on_io([this] {
        for (auto& [id, weak] : impl_->connections) {
            if (auto c = weak.lock()) {
                c->freeze();
                impl_->frozen.push_back(std::move(c));
            }
        }
    });
}

void FakeApns::on_push(std::function<void(const FakeApnsRequest&)> cb) {
    std::lock_guard lock(impl_->mu);
    impl_->push_callback = std::move(cb);
}

std::vector<FakeApnsRequest> FakeApns::requests() const {
    std::lock_guard lock(impl_->mu);
    return impl_->requests;
}

size_t FakeApns::request_count() const {
    std::lock_guard lock(impl_->mu);
    return impl_->requests.size();
}

uint64_t FakeApns::connections_accepted() const {
    std::lock_guard lock(impl_->mu);
    return impl_->accepted;
}

uint64_t FakeApns::connections_open() const {
    std::lock_guard lock(impl_->mu);
    return impl_->open;
}

bool FakeApns::wait_for(const std::function<bool(const FakeApnsState&)>& pred,
                        std::chrono::milliseconds timeout) const {
    std::unique_lock lock(impl_->mu);
    return impl_->cv.wait_for(lock, timeout, [&] {
        return pred(FakeApnsState{impl_->requests, impl_->accepted, impl_->open});
    });
}

}  // namespace courier::apns
