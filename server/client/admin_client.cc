#include "server/client/admin_client.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>

#include "common/file_io.h"

namespace courier::client {

namespace {

std::string env_or(const char* name, std::string fallback) {
    const char* v = std::getenv(name);
    return v && *v ? std::string(v) : fallback;
}

size_t collect(char* p, size_t size, size_t n, void* ud) {
    static_cast<std::string*>(ud)->append(p, size * n);
    return size * n;
}

}  // namespace

void resolve(Endpoint& e, const std::string& data_dir) {
    if (e.url.empty()) e.url = env_or("COURIER_URL", "https://localhost:8443");
    while (!e.url.empty() && e.url.back() == '/') e.url.pop_back();
    if (e.api_key.empty()) e.api_key = env_or("COURIER_API_KEY", "");
    if (e.api_key.empty()) {
        if (auto k = read_file(data_dir + "/api-key"); k.is_ok()) {
            e.api_key = *k;
            while (!e.api_key.empty() && (e.api_key.back() == '\n' || e.api_key.back() == '\r'))
                e.api_key.pop_back();
        }
    }
    if (e.ca_file.empty()) e.ca_file = env_or("COURIER_CA", "");
    if (e.ca_file.empty() && std::filesystem::exists(data_dir + "/tls/ca.crt"))
        e.ca_file = data_dir + "/tls/ca.crt";
}

AdminClient::AdminClient(Endpoint e, long timeout_ms)
    : e_(std::move(e)), timeout_ms_(timeout_ms), curl_(curl_easy_init()) {}

AdminClient::~AdminClient() {
    if (curl_) curl_easy_cleanup(curl_);
}

Answer AdminClient::call(const std::string& method, const std::string& path, std::string_view body,
                         const std::string& content_type, long timeout_ms) {
    Answer a;
    if (!curl_) return {0, "", "curl_easy_init failed"};
    CURL* c = curl_;
    curl_easy_reset(c);
    std::string url = e_.url + path;
    char err[CURL_ERROR_SIZE] = {0};
    curl_slist* headers = nullptr;
    std::string auth = "Authorization: Bearer " + e_.api_key;
    headers = curl_slist_append(headers, auth.c_str());
    if (!content_type.empty())
        headers = curl_slist_append(headers, ("Content-Type: " + content_type).c_str());
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : timeout_ms_);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a.body);
    if (!e_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, e_.ca_file.c_str());
    if (method != "GET" && method != "DELETE") {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        a.error = err[0] ? err : curl_easy_strerror(rc);
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
    }
    curl_slist_free_all(headers);
    return a;
}

std::string url_escape(std::string_view s) {
    std::string out;
    for (unsigned char ch : s) {
        if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~' || ch == ':' ||
            ch == ',')
            out += static_cast<char>(ch);
        else
            out += fmt::format("%{:02X}", ch);
    }
    return out;
}

}  // namespace courier::client
