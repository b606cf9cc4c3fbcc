// `courier serve` configuration: the flags (README.md, `courier serve --help`), each also
// COURIER_<FLAG> from the environment (a flag wins over the environment).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace courier::server {

struct Config {
    std::string listen = "0.0.0.0:8443";
    std::string http_listen;
    std::string data_dir = "./courier-data";
    std::string db;       // default sqlite://<data-dir>/courier.db
    size_t db_pool = 16;  // PostgreSQL connections per node
    std::string tls_cert, tls_key;
    std::string public_url;  // default https://<hostname>:<port>
    std::string api_key;     // default generated into <data-dir>/api-key
    std::vector<std::string> device_ca;
    std::string cert_header;
    std::string apns_url = "https://api.push.apple.com";
    std::string apns_ca;
    std::string apns_proxy;
    int cert_warn_days = 10;
    std::string log_level = "info";
    std::string log_format = "text";
    bool metrics_public = false;
    bool enroll_open = true;
    bool sign_message = false;  // SignMessage in enrollment profiles
    size_t body_limit = 16 * 1024 * 1024;
    int io_threads = 0, worker_threads = 0;
    size_t max_connections = 10000;
    size_t max_buffered_mb = 256;    // request bodies held in memory, all connections
    size_t max_conns_per_ip = 1000;  // connections not idle, per address
    bool proxy_protocol = false;     // PROXY v2 header on --listen
    bool ui = true;                  // the web console under /ui/
    // MDM vendor identity (PEM files): CSRs also come out vendor-signed.
    std::string vendor_cert, vendor_key;
    // The webhook destination "default", created or updated at start.
    std::string webhook_url, webhook_hmac_key;
    std::vector<std::string> webhook_topics{"mdm."};
    // Hidden (tests): the first retry's delay and the retry window.
    int64_t webhook_backoff_ms = 5000;
    int64_t webhook_retry_window_s = 24 * 3600;
    int64_t webhook_timeout_ms = 10000;
};

}  // namespace courier::server
