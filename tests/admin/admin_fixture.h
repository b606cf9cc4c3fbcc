// What the admin API tests share (admin_*_test.cc): a whole Courier on
// 127.0.0.1 over TLS with a fake APNs (TestServer), and helpers to act as an
// administrator's script.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <regex>
#include <set>

#include "certs/pkcs.h"
#include "common/encoding.h"
#include "db/store.h"
#include "tests/support/server_test.h"

namespace courier {

namespace json = boost::json;
using namespace std::chrono_literals;
using test::HttpResult;
using test::TestServer;

inline json::object parse_object(const std::string& body) {
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    if (ec || !v.is_object()) {
        ADD_FAILURE() << "not a JSON object: " << body;
        return {};
    }
    return v.as_object();
}

inline std::string str(const json::object& o, const char* key) {
    auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// Runs a shell command, returns its standard output.
inline std::string run(const std::string& cmd, int* rc = nullptr) {
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int status = pclose(p);
    if (rc) *rc = WEXITSTATUS(status);
    return out;
}

// The key as "BEGIN RSA PRIVATE KEY" (PKCS#1), as `openssl genrsa` in
// OpenSSL 1.x and many push certificate guides produce it.
inline std::string pkcs1_pem(const std::string& pkcs8_pem) {
    auto key = certs::key_from_pem(pkcs8_pem);
    EXPECT_TRUE(key.is_ok());
    OSSL_ENCODER_CTX* ctx = OSSL_ENCODER_CTX_new_for_pkey(key->get(), OSSL_KEYMGMT_SELECT_KEYPAIR,
                                                          "PEM", "type-specific", nullptr);
    unsigned char* data = nullptr;
    size_t len = 0;
    EXPECT_EQ(OSSL_ENCODER_to_data(ctx, &data, &len), 1);
    std::string out(reinterpret_cast<char*>(data), len);
    OPENSSL_free(data);
    OSSL_ENCODER_CTX_free(ctx);
    return out;
}

// What NanoMDM's tools/cmdr.py prints for `DeviceLock` (XML declaration,
// Apple's DOCTYPE line, tabs).
inline std::string cmdr_plist(const std::string& uuid, const std::string& type = "DeviceLock") {
    std::string out =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
        "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
        "<plist version=\"1.0\">\n<dict>\n\t<key>Command</key>\n\t<dict>\n"
        "\t\t<key>RequestType</key>\n\t\t<string>" +
        type + "</string>\n\t</dict>\n";
    if (!uuid.empty()) out += "\t<key>CommandUUID</key>\n\t<string>" + uuid + "</string>\n";
    return out + "</dict>\n</plist>\n";
}

class AdminApi : public test::ServerTest {
  protected:
    HttpResult api(const std::string& method, const std::string& path, const std::string& body = {},
                   std::vector<std::string> headers = {}) {
        return server_->api(method, path, body, std::move(headers));
    }
    std::unique_ptr<sim::SimDevice> device(const std::string& udid) {
        std::string err;
        auto d = server_->enrolled_device(udid, sim::AuthMode::kTlsClientCert, &err);
        EXPECT_TRUE(d) << err;
        return d;
    }
    std::string url(const std::string& path) const { return server_->https_url() + path; }
    // curl as an administrator's script runs it, reading the body from stdin.
    std::string curl(const std::string& stdin_file, const std::string& args, int* http_code) {
        std::string out =
            run("curl -sS -w '\\n%{http_code}' --cacert '" + server_->ca_file() + "' " + args +
                (stdin_file.empty() ? "" : " -T - < '" + stdin_file + "'"));
        auto nl = out.rfind('\n');
        *http_code = nl == std::string::npos ? 0 : std::atoi(out.c_str() + nl + 1);
        return nl == std::string::npos ? out : out.substr(0, nl);
    }
    std::string write(const std::string& name, const std::string& content) {
        auto p = server_->data_dir() / name;
        std::ofstream(p, std::ios::binary) << content;
        return p.string();
    }
    size_t queued(const std::string& id) {
        auto e = server_->app().store().enrollment(id);
        return e.is_ok() ? static_cast<size_t>(e->queued) : 0;
    }
};

}  // namespace courier
