#include "tests/support/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace courier::test {

namespace {

size_t collect(char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
}

size_t collect_header(char* data, size_t size, size_t n, void* out) {
    std::string line(data, size * n);
    auto* headers = static_cast<std::map<std::string, std::string>*>(out);
    if (line.rfind("HTTP/", 0) == 0) {
        headers->clear();  // a new response (after 100 Continue)
        return size * n;
    }
    auto colon = line.find(':');
    if (colon == std::string::npos) return size * n;
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.erase(0, 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
    (*headers)[name] = value;
    return size * n;
}

struct Upload {
    const std::string* body;
    size_t offset = 0;
};

size_t read_body(char* buf, size_t size, size_t n, void* in) {
    auto* up = static_cast<Upload*>(in);
    size_t left = up->body->size() - up->offset;
    size_t take = std::min(left, size * n);
    std::memcpy(buf, up->body->data() + up->offset, take);
    up->offset += take;
    return take;
}

struct CurlDeleter {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
    void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

HttpResult http_request(const std::string& method, const std::string& url, const std::string& body,
                        const std::vector<std::string>& headers, const HttpOptions& opts) {
    HttpResult out;
    std::unique_ptr<CURL, CurlDeleter> c(curl_easy_init());
    if (!c) {
        out.error = "curl_easy_init failed";
        return out;
    }
    CURL* h = c.get();
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, opts.timeout_ms);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out.body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, collect_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &out.headers);
    if (opts.ca_file.empty()) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        curl_easy_setopt(h, CURLOPT_CAINFO, opts.ca_file.c_str());
    }
    curl_blob cert{const_cast<char*>(opts.client_cert_pem.data()), opts.client_cert_pem.size(),
                   CURL_BLOB_COPY};
    curl_blob key{const_cast<char*>(opts.client_key_pem.data()), opts.client_key_pem.size(),
                  CURL_BLOB_COPY};
    if (!opts.client_cert_pem.empty()) {
        curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cert);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &key);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (!opts.user.empty()) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERPWD, opts.user.c_str());
    }
    std::unique_ptr<curl_slist, SlistDeleter> list;
    for (const auto& line : headers) list.reset(curl_slist_append(list.release(), line.c_str()));
    Upload upload{&body};
    if (opts.chunked) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, read_body);
        curl_easy_setopt(h, CURLOPT_READDATA, &upload);
        if (method != "PUT") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
    } else if (method == "HEAD") {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
        if (!body.empty() || method == "POST" || method == "PUT") {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
            // libcurl would add a form Content-Type; callers say what they send.
            list.reset(curl_slist_append(list.release(), "Content-Type:"));
        }
    }
    if (list) curl_easy_setopt(h, CURLOPT_HTTPHEADER, list.get());
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        out.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
        out.status = 0;
        return out;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    out.status = static_cast<int>(status);
    return out;
}

}  // namespace courier::test
