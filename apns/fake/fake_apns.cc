// FakeApns: the listener, the programmed answers and the public methods. One
// io thread runs everything; the public methods post to it or read shared
// state under the lock. Each connection: apns/fake/fake_apns_connection.h.
#include "apns/fake/fake_apns.h"

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <future>

#include "apns/fake/fake_apns_connection.h"
#include "apns/fake/fake_apns_impl.h"
#include "common/encoding.h"

namespace courier::apns {
namespace {

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

}  // namespace

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
