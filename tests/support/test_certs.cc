#include "tests/support/test_certs.h"

#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "certs/push_cert.h"
#include "common/encoding.h"

namespace courier::test {

namespace {

// Test setup cannot meaningfully continue without its certificates.
template <class T>
T must(Result<T> r, const char* what) {
    if (!r) {
        std::fprintf(stderr, "test_certs: %s: %s\n", what, r.status().to_string().c_str());
        std::abort();
    }
    return std::move(r).value();
}

}  // namespace

certs::Identity make_push_identity(const std::string& topic, std::chrono::seconds not_before_offset,
                                   std::chrono::seconds not_after_offset) {
    return must(certs::make_self_signed_push_identity(topic, not_before_offset, not_after_offset),
                "push certificate");
}

PemPair make_push_cert(const std::string& topic, std::chrono::seconds not_before_offset,
                       std::chrono::seconds not_after_offset) {
    certs::Identity id = make_push_identity(topic, not_before_offset, not_after_offset);
    return {certs::cert_to_pem(id.cert.get()), certs::key_to_pem(id.key.get())};
}

certs::CertificateAuthority make_test_ca(const std::string& common_name) {
    return must(certs::CertificateAuthority::create(common_name), "test CA");
}

certs::Identity make_device_identity(const certs::CertificateAuthority& ca, const std::string& udid,
                                     SysTime now) {
    certs::IssueOptions opts;
    opts.common_name = udid;
    opts.now = now;
    return must(ca.issue(opts), "device identity");
}

std::filesystem::path write_temp_file(std::string_view content, const std::string& name) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "courier-test-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) {
        std::perror("test_certs: mkdtemp");
        std::abort();
    }
    std::filesystem::path path = std::filesystem::path(tmpl) / name;
    std::ofstream(path, std::ios::binary) << content;
    return path;
}

}  // namespace courier::test
