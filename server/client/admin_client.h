// The admin-API client (docs/api.md): one blocking HTTPS connection to a
// running server, authenticated with its API key (Bearer). Used by the
// `courier` command line (server/client/cli/), the simulator (sim/) and the
// tests.
#pragma once

#include <string>
#include <string_view>

typedef void CURL;

namespace courier::client {

struct Answer {
    long status = 0;  // 0: no answer (see error)
    std::string body;
    std::string error;  // transport error
};

// Where the server is and how to trust and authenticate to it.
struct Endpoint {
    std::string url;  // "https://localhost:8443", no trailing slash needed
    std::string api_key;
    std::string ca_file;  // CA to trust (PEM file); empty: the system's
};

// Fills what `e` leaves empty from the environment (COURIER_URL,
// COURIER_API_KEY, COURIER_CA) and, beside a server, from its data dir
// (<data-dir>/api-key, <data-dir>/tls/ca.crt); drops trailing slashes.
void resolve(Endpoint& e, const std::string& data_dir);

class AdminClient {
  public:
    explicit AdminClient(Endpoint e, long timeout_ms = 30000);
    ~AdminClient();
    AdminClient(const AdminClient&) = delete;
    AdminClient& operator=(const AdminClient&) = delete;

    const Endpoint& endpoint() const { return e_; }

    // `method` `path` (with its query) and, except for GET and DELETE, the
    // body (with `content_type` when given). timeout_ms 0: the client's.
    Answer call(const std::string& method, const std::string& path, std::string_view body = {},
                const std::string& content_type = {}, long timeout_ms = 0);

  private:
    Endpoint e_;
    long timeout_ms_;
    CURL* curl_;
};

// Percent-encodes everything but unreserved characters and ':' ','.
std::string url_escape(std::string_view s);

}  // namespace courier::client
