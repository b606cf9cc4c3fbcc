#include <CLI/CLI.hpp>

#include "server/app/serve_flags.h"

namespace courier::server {

namespace {

// "--public-url" → "COURIER_PUBLIC_URL".
std::string env_name(const std::string& flag) {
    std::string out = "COURIER_";
    for (char c : flag.substr(2)) {
        out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

// A boolean is a flag that may take a value: `--proxy-protocol` alone turns
// it on; `--enroll-open=false`, `--enroll-open false` (as before it was a
// flag) and the environment variable set it either way.
template <class T>
CLI::Option* opt(CLI::App& app, const std::string& flag, T& value, const std::string& help) {
    if constexpr (std::is_same_v<T, bool>)
        return app.add_flag(flag, value, help)
            ->type_size(0, 1)
            ->expected(0, 1)
            ->envname(env_name(flag))
            ->capture_default_str();
    else
        return app.add_option(flag, value, help)->envname(env_name(flag))->capture_default_str();
}

}  // namespace

void add_serve_options(CLI::App& app, Config* c) {
    opt(app, "--listen", c->listen,
        "HTTPS listener (HOST:PORT) for devices, the admin API and /enroll; '' turns it off");
    opt(app, "--http-listen", c->http_listen,
        "plain-HTTP listener (HOST:PORT) for use behind a TLS-terminating proxy; off when empty");
    opt(app, "--data-dir", c->data_dir,
        "directory for the database, generated CA, TLS key and API key (created 0700)");
    opt(app, "--db", c->db,
        "storage URL: sqlite://PATH (default sqlite://<data-dir>/courier.db) or postgres://… "
        "(a libpq URI; every node on one database, docs/scaling.md)");
    opt(app, "--db-pool", c->db_pool, "PostgreSQL connections per node (with --db postgres://…)")
        ->check(CLI::Range(1, 1000));
    opt(app, "--tls-cert", c->tls_cert,
        "server TLS certificate chain (PEM, leaf first); default: generated into the data dir")
        ->check(CLI::ExistingFile);
    opt(app, "--tls-key", c->tls_key, "server TLS private key (PEM), with --tls-cert")
        ->check(CLI::ExistingFile);
    opt(app, "--public-url", c->public_url,
        "base URL written into enrollment profiles; default https://<hostname>:<port>");
    opt(app, "--api-key", c->api_key,
        "admin API secret (HTTP basic auth password, or Bearer); default: generated into "
        "<data-dir>/api-key");
    opt(app, "--device-ca", c->device_ca,
        "extra PEM CA file trusted for device identity certificates (repeatable; comma-separated "
        "in the environment); the built-in enrollment CA is always trusted")
        ->delimiter(',')
        ->check(CLI::ExistingFile);
    opt(app, "--cert-header", c->cert_header,
        "take the device certificate from this proxy header (RFC 9440 :base64: or URL-escaped "
        "PEM); honoured on --http-listen only");
    opt(app, "--apns-url", c->apns_url,
        "APNs endpoint (https://api.sandbox.push.apple.com for development)");
    opt(app, "--apns-ca", c->apns_ca,
        "CA bundle for verifying the APNs server; default: the system trust store")
        ->check(CLI::ExistingFile);
    opt(app, "--apns-proxy", c->apns_proxy,
        "outbound proxy for APNs (http:// CONNECT or socks5://); pushes then go through "
        "libcurl instead of the built-in nghttp2 sender");
    opt(app, "--cert-warn-days", c->cert_warn_days,
        "warn this many days before a push certificate expires")
        ->check(CLI::Range(0, 3650));
    opt(app, "--log-level", c->log_level, "trace, debug, info, warn, error, critical or off")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    opt(app, "--log-format", c->log_format, "text or json (one JSON object per line)")
        ->check(CLI::IsMember({"text", "json"}));
    opt(app, "--metrics-public", c->metrics_public,
        "serve /metrics without the API key (true/false)");
    opt(app, "--enroll-open", c->enroll_open,
        "serve /enroll without an enrollment token (true/false)");
    opt(app, "--sign-message", c->sign_message,
        "ask devices to sign every message (SignMessage in the enrollment profile; true/false)");
    opt(app, "--body-limit", c->body_limit,
        "largest request body accepted, in bytes (413 beyond); default 16 MiB")
        ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
    opt(app, "--io-threads", c->io_threads, "network I/O threads; 0: one per core")
        ->check(CLI::Range(0, 256));
    opt(app, "--worker-threads", c->worker_threads,
        "request handler threads (they wait on SQLite commits, which they share); 0: 32, or "
        "four per core where that is more")
        ->check(CLI::Range(0, 1024));
    opt(app, "--max-connections", c->max_connections,
        "open connections; beyond, the keep-alive connection idle the longest is closed to "
        "make room, or the new one when none is idle")
        ->check(CLI::Range(size_t{1}, size_t{1000000}));
    opt(app, "--max-buffered-mb", c->max_buffered_mb,
        "request bodies held in memory across all connections, in MiB; a body beyond gets 503")
        ->check(CLI::Range(size_t{1}, size_t{1} << 20));
    opt(app, "--max-conns-per-ip", c->max_conns_per_ip,
        "connections from one address that are not idle (on --listen: new ones until their "
        "first response, served ones while a next request is in progress; idle keep-alive "
        "connections do not count); more are closed at once")
        ->check(CLI::Range(size_t{1}, size_t{1000000}));
    opt(app, "--vendor-cert", c->vendor_cert,
        "MDM vendor certificate (PEM): CSRs made by POST /v1/pushcert/csr and the console also "
        "come out as the vendor-signed request Apple's push certificates portal takes")
        ->check(CLI::ExistingFile);
    opt(app, "--vendor-key", c->vendor_key, "the MDM vendor certificate's private key (PEM)")
        ->check(CLI::ExistingFile);
    app.add_flag("--ui,!--no-ui", c->ui,
                 "serve the web console under /ui/ (default on; --no-ui, COURIER_UI=false: off)")
        ->envname("COURIER_UI");
    opt(app, "--proxy-protocol", c->proxy_protocol,
        "every connection on --listen starts with HAProxy's PROXY v2 header (TCP passthrough), "
        "whose address is the client's; connections without one are refused (true/false)");
    opt(app, "--webhook-url", c->webhook_url,
        "webhook destination 'default' (http:// or https://), created or updated at start; "
        "more through /v1/webhooks (docs/webhooks.md)");
    opt(app, "--webhook-hmac-key", c->webhook_hmac_key,
        "sign the default destination's requests: X-Hmac-Signature = "
        "base64(HMAC-SHA256(key, body))");
    opt(app, "--webhook-topics", c->webhook_topics,
        "topic prefixes the default destination takes (comma-separated), e.g. "
        "mdm.,courier.pushcert.")
        ->delimiter(',');
    // Hidden: tests shorten the retry schedule.
    opt(app, "--webhook-backoff-ms", c->webhook_backoff_ms, "")
        ->check(CLI::Range(int64_t{1}, int64_t{3600000}))
        ->group("");
    opt(app, "--webhook-timeout-ms", c->webhook_timeout_ms, "")
        ->check(CLI::Range(int64_t{100}, int64_t{10000}))
        ->group("");
    opt(app, "--webhook-retry-window-seconds", c->webhook_retry_window_s, "")
        ->check(CLI::Range(int64_t{0}, int64_t{24 * 3600}))
        ->group("");
}

}  // namespace courier::server
