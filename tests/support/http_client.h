// A blocking HTTP(S)/1.1 client for tests, over libcurl: what an
// administrator's script or a device would send.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace courier::test {

struct HttpOptions {
    std::string ca_file;          // trust this CA (PEM file); empty: no verification
    std::string client_cert_pem;  // TLS client identity, PEM text
    std::string client_key_pem;
    long timeout_ms = 15000;
    // Send the body with chunked transfer encoding and no length, as
    // `curl -T -` does when it reads standard input.
    bool chunked = false;
    std::string user;  // basic auth "user:password"
};

struct HttpResult {
    int status = 0;  // 0: no answer (see error)
    std::string body;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string error;
};

// `headers` are "Name: value" lines. A body is sent for any method when not
// empty; no Content-Type is added unless given.
HttpResult http_request(const std::string& method, const std::string& url,
                        const std::string& body = {}, const std::vector<std::string>& headers = {},
                        const HttpOptions& opts = {});

}  // namespace courier::test
