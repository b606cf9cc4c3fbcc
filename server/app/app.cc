#include "server/app/app.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <boost/json.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "apns/push_service.h"
#include "apns/pusher.h"
#include "certs/authority.h"
#include "certs/pkcs.h"
#include "certs/x509.h"
#include "common/encoding.h"
#include "common/file_io.h"
#include "db/command_finished_event.h"
#include "db/open.h"
#include "db/postgres/pg_store.h"
#include "db/store.h"
#include "server/admin/admin_api.h"
#include "server/admin/admin_console.h"
#include "server/admin/admin_webhooks.h"
#include "server/admin/ui_session.h"
#include "server/device/device_auth.h"
#include "server/device/device_handlers.h"
#include "server/device/device_service.h"
#include "server/device/enroll_service.h"
#include "server/http/http.h"
#include "server/http/listener.h"
#include "server/webhook/webhook_events.h"
#include "server/webhook/webhook_service.h"

namespace courier::server {

namespace fs = std::filesystem;

namespace {
std::string host_name() {
    char buf[256] = {0};
    if (gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
    return buf;
}

}  // namespace

std::string url_host(const std::string& url) {
    auto start = url.find("://");
    start = start == std::string::npos ? 0 : start + 3;
    if (start < url.size() && url[start] == '[') {
        auto close = url.find(']', start);
        if (close == std::string::npos) return {};
        return url.substr(start + 1, close - start - 1);
    }
    auto end = url.find_first_of(":/?#", start);
    return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

App::App(Config cfg, const Clock& clock) : cfg_(std::move(cfg)), clock_(clock) {}

App::~App() {
    stop();
}

Status App::prepare_data_dir() {
    std::error_code ec;
    fs::create_directories(cfg_.data_dir, ec);
    if (ec) return invalid("cannot create data dir " + cfg_.data_dir + ": " + ec.message());
    fs::permissions(cfg_.data_dir, fs::perms::owner_all, fs::perm_options::replace, ec);
    if (ec)
        return invalid("cannot restrict data dir " + cfg_.data_dir + " to 0700: " + ec.message());
    return Status::ok();
}

Status App::load_api_key() {
    if (!cfg_.api_key.empty()) {
        api_key_ = cfg_.api_key;
        return Status::ok();
    }
    fs::path path = fs::path(cfg_.data_dir) / "api-key";
    if (auto k = read_file(path)) {
        api_key_ = *k;
        while (!api_key_.empty() && (api_key_.back() == '\n' || api_key_.back() == '\r'))
            api_key_.pop_back();
        if (api_key_.empty()) return invalid(path.string() + " is empty");
        spdlog::info("API key: read from {}", path.string());
        return Status::ok();
    }
    api_key_ = random_token(32);
    if (auto s = write_private_file(path, api_key_ + "\n"); !s.is_ok()) return s;
    spdlog::info("API key: generated into {} (mode 0600)", path.string());
    return Status::ok();
}

Status App::start() {
    if (started_) return Status::ok();
    if (auto s = prepare_data_dir(); !s.is_ok()) return s;

    auto store = db::open_store(cfg_.db, cfg_.data_dir, {cfg_.db_pool});
    if (!store.is_ok()) return store.status();
    store_ = std::move(*store);
    if (auto* pg = dynamic_cast<db::PgStore*>(store_.get())) {
        // Several nodes, one database: generated keys (API key, TLS CA,
        // enrollment CA) are made once and kept in the database; each node
        // writes copies into its data dir (SPEC "Secrets in the database").
        Status s = pg->share_files(
            cfg_.data_dir,
            {"api-key", "tls/ca.crt", "tls/ca.key", "enrollment-ca.crt", "enrollment-ca.key"},
            [&]() -> Status {
                if (auto k = load_api_key(); !k.is_ok()) return k;
                if (cfg_.tls_cert.empty()) {
                    fs::path tls_dir = fs::path(cfg_.data_dir) / "tls";
                    if (::mkdir(tls_dir.c_str(), 0700) != 0 && errno != EEXIST)
                        return internal_error("mkdir " + tls_dir.string() + ": " +
                                              std::strerror(errno));
                    auto tls_ca = certs::CertificateAuthority::load_or_create(
                        fs::path(cfg_.data_dir) / "tls", "ca",
                        "Courier Local CA (" + host_name() + ")");
                    if (!tls_ca.is_ok()) return tls_ca.status();
                }
                auto ca = certs::CertificateAuthority::load_or_create(
                    cfg_.data_dir, "enrollment-ca", "Courier Enrollment CA");
                return ca.is_ok() ? Status::ok() : ca.status();
            });
        if (!s.is_ok()) return s;
    }
    if (auto s = load_api_key(); !s.is_ok()) return s;
    if (wrap_store_) store_ = wrap_store_(std::move(store_));

    // TLS identity: given, or generated (a local CA + leaf, renewed ahead of expiry).
    std::string listen_host;
    uint16_t listen_port = 0;
    if (!cfg_.listen.empty() && !split_host_port(cfg_.listen, &listen_host, &listen_port))
        return invalid("--listen must be HOST:PORT, got '" + cfg_.listen + "'");
    std::string tls_cert = cfg_.tls_cert, tls_key = cfg_.tls_key;
    std::optional<std::string> root_ca_der;
    if (tls_cert.empty() != tls_key.empty()) return invalid("--tls-cert and --tls-key go together");
    if (tls_cert.empty()) {
        std::vector<std::string> names{host_name()};
        if (!cfg_.public_url.empty()) names.push_back(url_host(cfg_.public_url));
        auto files = certs::ensure_server_tls(cfg_.data_dir, names, clock_.now());
        if (!files.is_ok()) return files.status();
        tls_cert = files->cert_chain_pem.string();
        tls_key = files->key_pem.string();
        tls_ca_file_ = files->ca_pem;
        auto ca_pem = read_file(files->ca_pem);
        auto ca = ca_pem ? certs::cert_from_pem(*ca_pem) : Result<certs::X509Ptr>(invalid("no CA"));
        if (!ca.is_ok()) return ca.status();
        root_ca_der = certs::cert_to_der(ca->get());
    }
    // The profile is signed with the server's TLS identity.
    certs::Identity signer;
    {
        auto chain_pem = read_file(tls_cert);
        auto key_pem = read_file(tls_key);
        if (!chain_pem || !key_pem) return invalid("cannot read the TLS certificate or key");
        auto chain = certs::certs_from_pem(*chain_pem);
        if (!chain.is_ok() || chain->empty())
            return invalid("TLS certificate file " + tls_cert + " holds no certificate");
        auto key = certs::key_from_pem(*key_pem);
        if (!key.is_ok()) return invalid("TLS key " + tls_key + ": " + key.status().message());
        signer.key = std::move(*key);
        signer.cert = std::move(chain->front());
        for (size_t i = 1; i < chain->size(); ++i) signer.chain.push_back(std::move((*chain)[i]));
    }

    auto ca = certs::CertificateAuthority::load_or_create(cfg_.data_dir, "enrollment-ca",
                                                          "Courier Enrollment CA");
    if (!ca.is_ok()) return ca.status();
    enrollment_ca_ = std::make_unique<certs::CertificateAuthority>(std::move(*ca));
    certs::TrustStore trust;
    if (auto s = trust.add(enrollment_ca_->cert()); !s.is_ok()) return s;
    for (const auto& f : cfg_.device_ca)
        if (auto s = trust.add_pem_file(f); !s.is_ok())
            return invalid("--device-ca " + f + ": " + s.message());

    apns::HttpPusherOptions po;
    po.base_url = cfg_.apns_url;
    po.ca_file = cfg_.apns_ca;
    po.proxy = cfg_.apns_proxy;
    pusher_ = apns::make_pusher(po);
    // The one store, handed to each component as the roles it uses.
    db::Store& storage = *store_;
    push_ = std::make_unique<apns::PushService>(
        apns::PushService::Stores{
            .pushes = storage, .push_certs = storage, .enrollments = storage, .queue = storage},
        *pusher_, clock_, metrics_);

    // Webhooks (SPEC "Webhooks"): the --webhook-url destination, then the
    // delivery workers; events ride on the writes that cause them.
    if (!cfg_.webhook_url.empty()) {
        db::Webhook w;
        w.id = "default";
        w.url = cfg_.webhook_url;
        w.topics = cfg_.webhook_topics;
        w.hmac_key = cfg_.webhook_hmac_key;
        if (auto why = webhook_invalid(w); !why.empty())
            return invalid("--webhook-url/--webhook-topics: " + why);
        if (auto s = storage.put_webhook(w, clock_.now()); !s.is_ok()) return s;
    }
    WebhookOptions wo;
    wo.cert_warn_days = cfg_.cert_warn_days;
    wo.backoff_base = std::chrono::milliseconds(cfg_.webhook_backoff_ms);
    wo.retry_window = std::chrono::seconds(cfg_.webhook_retry_window_s);
    wo.timeout = std::chrono::milliseconds(cfg_.webhook_timeout_ms);
    // A claim outlives its attempt; one left by a killed node is taken again after it.
    wo.lease = std::chrono::ceil<std::chrono::seconds>(2 * wo.timeout + std::chrono::seconds(1));
    webhooks_ = std::make_unique<WebhookService>(storage, clock_, metrics_, wo);
    push_->set_token_invalid_events(
        [this](const std::string& id, int http_status,
               const std::string& reason) -> std::unique_ptr<db::EventAttachment> {
            if (!webhooks_->wants("courier.push.token_invalid")) return nullptr;
            boost::json::object o;
            o["enrollment_id"] = id;
            o["apns_status"] = http_status;
            o["reason"] = reason;
            std::vector<db::OutboxEvent> evs;
            evs.push_back(webhook::courier_event("courier.push.token_invalid", id, std::move(o),
                                                 clock_.now_ms()));
            return webhooks_->attach(std::move(evs));
        });

    device_auth_ =
        std::make_unique<DeviceAuthenticator>(std::move(trust), cfg_.cert_header, clock_);
    device_auth_->set_enrollment_ca(enrollment_ca_->cert());
    devices_ = std::make_unique<DeviceService>(DeviceService::Stores{.enrollments = storage,
                                                                     .bindings = storage,
                                                                     .queue = storage,
                                                                     .push_certs = storage,
                                                                     .read_scopes = storage},
                                               *device_auth_, push_.get(), clock_, metrics_);
    devices_->set_binding_policy({.enroll_open = cfg_.enroll_open});
    devices_->set_webhooks(webhooks_.get());

    public_url_ = cfg_.public_url;
    if (public_url_.empty())
        public_url_ = "https://" + host_name() + ":" + std::to_string(listen_port);
    while (!public_url_.empty() && public_url_.back() == '/') public_url_.pop_back();

    EnrollOptions eo;
    eo.public_url = public_url_;
    eo.enroll_open = cfg_.enroll_open;
    eo.sign_message = cfg_.sign_message;
    eo.root_ca_der = root_ca_der;
    enroll_ = std::make_unique<EnrollService>(
        EnrollService::Stores{.bindings = storage, .push_certs = storage, .tokens = storage},
        *enrollment_ca_, std::move(signer), eo, clock_);

    AdminOptions ao;
    ao.api_key = api_key_;
    ao.cert_warn_days = cfg_.cert_warn_days;
    ao.metrics_public = cfg_.metrics_public;
    ao.public_url = public_url_;
    if (cfg_.vendor_cert.empty() != cfg_.vendor_key.empty())
        return invalid("--vendor-cert and --vendor-key go together");
    if (!cfg_.vendor_cert.empty()) {
        auto vc = read_file(cfg_.vendor_cert);
        auto vk = read_file(cfg_.vendor_key);
        if (!vc || !vk) return invalid("cannot read --vendor-cert or --vendor-key");
        auto certs = certs::certs_from_pem(*vc);
        if (!certs.is_ok() || certs->empty())
            return invalid("--vendor-cert " + cfg_.vendor_cert + " holds no certificate");
        auto key = certs::key_from_pem(*vk);
        if (!key.is_ok() || EVP_PKEY_eq(X509_get0_pubkey(certs->front().get()), key->get()) != 1)
            return invalid("--vendor-key does not hold the key of --vendor-cert");
        ao.vendor_cert_pem = std::move(*vc);
        ao.vendor_key_pem = std::move(*vk);
    }
    ao.renewal_events = [this](const db::PushCert& c) -> std::unique_ptr<db::EventAttachment> {
        if (!webhooks_->wants("courier.pushcert.renewed")) return nullptr;
        boost::json::object o;
        o["topic"] = c.topic;
        o["thumbprint_sha1"] = c.thumbprint_sha1;
        o["not_after"] = format_rfc3339(c.not_after);
        auto ev =
            webhook::courier_event("courier.pushcert.renewed", "", std::move(o), clock_.now_ms());
        ev.only_if_effective = true;  // a first upload renews nothing
        std::vector<db::OutboxEvent> evs;
        evs.push_back(std::move(ev));
        return webhooks_->attach(std::move(evs));
    };
    ao.cancel_events = [this](const db::CommandInfo& c) -> std::unique_ptr<db::EventAttachment> {
        if (!webhooks_->wants(db::kCommandFinishedTopic)) return nullptr;
        std::vector<db::OutboxEvent> evs;
        for (const auto& t : c.targets) {
            if (db::is_final(t.status)) continue;
            auto ev = db::command_finished_event(c.uuid, t.enrollment_id,
                                                 db::TargetStatus::kCanceled, clock_.now_ms());
            ev.only_if_effective = true;  // appended for the targets canceled only
            evs.push_back(std::move(ev));
        }
        return webhooks_->attach(std::move(evs));
    };
    admin_ = std::make_unique<AdminApi>(AdminApi::Stores{.enrollments = storage,
                                                         .bindings = storage,
                                                         .queue = storage,
                                                         .push_certs = storage,
                                                         .tokens = storage,
                                                         .console = &storage},
                                        *push_, clock_, metrics_, ao);

    router_ = std::make_unique<Router>();
    router_->add("GET", "/healthz", [this](Request&) {
        // Degraded while the store cannot read or write (StoreHealth::ping probes
        // writes after one failed), healthy again once they succeed.
        auto s = store_->ping();
        if (!s.is_ok())
            return Response::json(
                503, boost::json::serialize(boost::json::object{{"status", "degraded"},
                                                                {"why", "store: " + s.message()}}));
        return Response::json(200, R"({"status":"ok"})");
    });
    router_->add("GET", "/enroll", [this](Request& r) { return handle_enroll(*enroll_, r); });
    router_->add("PUT", "/mdm",
                 [this](Request& r) { return handle_device_message(*devices_, r, true); });
    router_->add("PUT", "/checkin",
                 [this](Request& r) { return handle_device_message(*devices_, r, false); });
    if (cfg_.ui) {  // the web console (server/ui_session.h, server/admin_console.h)
        ui_sessions_ =
            std::make_unique<UiSessions>(storage, clock_, UiSessionOptions{.api_key = api_key_});
        admin_->set_ui_sessions(ui_sessions_.get());
        ui_sessions_->register_routes(*router_,
                                      [this](const Request& r) { return admin_->cross_site(r); });
        register_console_files(*router_);
    }
    admin_->register_routes(*router_);
    register_webhook_routes(*router_, *admin_, storage, *webhooks_, clock_);

    metrics_.help("courier_http_request_seconds", "histogram", "HTTP request latency by route");
    metrics_.help("courier_http_requests_total", "counter", "HTTP requests by route and status");
    metrics_.help("courier_queue_depth", "gauge", "command targets queued, sent or notnow");
    metrics_.help("courier_pushcert_expiry_seconds", "gauge",
                  "seconds until each active push certificate expires");
    metrics_.gauge("courier_queue_depth", [this] {
        auto d = store_->queue_depth();
        return std::vector<std::pair<Labels, double>>{
            {{}, d.is_ok() ? static_cast<double>(*d) : -1.0}};
    });
    metrics_.gauge("courier_pushcert_expiry_seconds", [this] {
        std::vector<std::pair<Labels, double>> out;
        auto certs = store_->active_push_certs();
        if (certs.is_ok())
            for (const auto& c : *certs)
                out.push_back({{{"topic", c.topic}},
                               static_cast<double>((c.not_after - clock_.now()).count())});
        return out;
    });

    ListenerOptions lo;
    lo.listen = cfg_.listen;
    lo.http_listen = cfg_.http_listen;
    lo.tls_cert_file = tls_cert;
    lo.tls_key_file = tls_key;
    lo.body_limit = cfg_.body_limit;
    lo.io_threads = cfg_.io_threads;
    lo.worker_threads = cfg_.worker_threads;
    lo.max_connections = cfg_.max_connections;
    lo.max_buffered_bytes = cfg_.max_buffered_mb * 1024 * 1024;
    lo.max_conns_per_ip = cfg_.max_conns_per_ip;
    lo.proxy_protocol = cfg_.proxy_protocol;
    // Decided from the header, before a body is read (Router::check_header).
    lo.before_body = [this](const Request& req) { return router_->check_header(req); };
    auto observe = [this](const std::string& route, std::chrono::steady_clock::time_point t0,
                          int status) {
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        metrics_.histogram("courier_http_request_seconds", {{"route", route}}).observe(secs);
        metrics_
            .counter("courier_http_requests_total",
                     {{"route", route}, {"status", std::to_string(status)}})
            .inc();
    };
    // Idle check-ins with nothing queued are answered on the I/O thread
    // (reads only); everything else, and every store write, on a worker.
    lo.inline_handler = [this, observe](Request& req) -> std::optional<Response> {
        if (req.method != "PUT" || req.path != "/mdm" ||
            req.body.size() > DeviceService::kInlineBodyMax ||
            req.body.find("<string>Idle</string>") == std::string::npos)
            return std::nullopt;
        auto t0 = std::chrono::steady_clock::now();
        auto r = handle_idle_inline(*devices_, req);
        if (r) observe("/mdm", t0, r->status);
        return r;
    };
    // Not on PostgreSQL: its reads are network round trips, which must not
    // hold an I/O thread.
    if (db::is_postgres_url(cfg_.db)) lo.inline_handler = nullptr;
    http_ = std::make_unique<HttpServer>(lo, [this, observe](Request& req) {
        auto t0 = std::chrono::steady_clock::now();
        Response r = router_->dispatch(req);
        std::string route = router_->route_of(req);
        if (route.empty()) route = "unmatched";
        observe(route, t0, r.status);
        return r;
    });
    if (auto s = http_->start(); !s.is_ok()) return s;
    metrics_.help("courier_http_body_bytes_buffered", "gauge",
                  "request body bytes held in memory (at most --max-buffered-mb)");
    metrics_.help("courier_http_body_bytes_read_total", "counter",
                  "request body bytes read (bodies refused from their header add nothing)");
    metrics_.help("courier_connections_refused_total", "counter",
                  "connections refused (connection or per-address limit, no PROXY header)");
    metrics_.gauge("courier_http_body_bytes_buffered", [this] {
        return std::vector<std::pair<Labels, double>>{
            {{}, http_ ? static_cast<double>(http_->buffered_body_bytes()) : 0.0}};
    });
    metrics_.gauge("courier_http_body_bytes_read_total", [this] {
        return std::vector<std::pair<Labels, double>>{
            {{}, http_ ? static_cast<double>(http_->body_bytes_read()) : 0.0}};
    });
    metrics_.gauge("courier_connections_refused_total", [this] {
        return std::vector<std::pair<Labels, double>>{
            {{}, http_ ? static_cast<double>(http_->refused_connections()) : 0.0}};
    });
    metrics_.help("courier_connections_evicted_total", "counter",
                  "idle keep-alive connections closed to make room at --max-connections");
    metrics_.gauge("courier_connections_evicted_total", [this] {
        return std::vector<std::pair<Labels, double>>{
            {{}, http_ ? static_cast<double>(http_->evicted_connections()) : 0.0}};
    });
    if (cfg_.public_url.empty() && listen_port == 0 && https_port() != 0) {
        // Port 0 (tests): the real port is known only now.
        public_url_ = "https://127.0.0.1:" + std::to_string(https_port());
        enroll_->set_public_url(public_url_);
    }
    push_->start();
    webhooks_->start();
    warn_expiring_certificates();
    {
        std::lock_guard lock(mu_);
        stopping_ = false;
    }
    maintenance_ = std::thread([this] { maintenance_loop(); });
    started_ = true;
    spdlog::info("courier serving: https {} (port {}), http {}, data dir {}, public URL {}",
                 cfg_.listen, https_port(), cfg_.http_listen.empty() ? "off" : cfg_.http_listen,
                 cfg_.data_dir, public_url_);
    return Status::ok();
}

void App::warn_expiring_certificates() {
    auto certs = store_->active_push_certs();
    if (!certs.is_ok()) return;
    auto now = clock_.now();
    for (const auto& c : *certs) {
        auto left = std::chrono::duration_cast<std::chrono::days>(c.not_after - now).count();
        if (c.not_after <= now)
            spdlog::error(
                "push certificate for {} EXPIRED at {}: devices cannot be woken; renew "
                "it with the same Apple ID and upload it (PUT /v1/pushcert)",
                c.topic, format_rfc3339(c.not_after));
        else if (left < cfg_.cert_warn_days)
            spdlog::warn(
                "push certificate for {} expires in {} days ({}); renew it with the same "
                "Apple ID",
                c.topic, left, format_rfc3339(c.not_after));
    }
}

void App::maintenance_loop() {
    std::unique_lock lock(mu_);
    auto next = std::chrono::steady_clock::now() + std::chrono::hours(24);
    while (!stopping_) {
        if (cv_.wait_until(lock, next, [&] { return stopping_; })) break;
        lock.unlock();
        warn_expiring_certificates();
        lock.lock();
        next = std::chrono::steady_clock::now() + std::chrono::hours(24);
    }
}

void App::stop() {
    if (!started_) return;
    started_ = false;
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (maintenance_.joinable()) maintenance_.join();
    if (http_) http_->stop(std::chrono::milliseconds(5000));
    if (push_) push_->stop();
    if (webhooks_) webhooks_->stop();
    if (pusher_) pusher_->shutdown();
    http_.reset();
    store_.reset();  // closes: flushes last-seen
    spdlog::info("courier stopped");
}

std::vector<std::string> App::routes() const {
    return router_ ? router_->routes() : std::vector<std::string>{};
}

uint16_t App::https_port() const {
    return http_ ? http_->https_port() : 0;
}
uint16_t App::http_port() const {
    return http_ ? http_->http_port() : 0;
}

}  // namespace courier::server
