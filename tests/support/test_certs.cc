#include "tests/support/test_certs.h"

#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

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

void add_name(X509_NAME* name, const char* field, const std::string& value) {
    X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1, 0);
}

}  // namespace

certs::Identity make_push_identity(const std::string& topic, std::chrono::seconds not_before_offset,
                                   std::chrono::seconds not_after_offset) {
    certs::PkeyPtr key = must(certs::generate_rsa_key(2048), "push key");
    certs::X509Ptr cert(X509_new());
    X509* x = cert.get();
    X509_set_version(x, X509_VERSION_3);
    uint64_t serial = 0;
    std::memcpy(&serial, random_bytes(sizeof serial).data(), sizeof serial);
    ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), (serial >> 1) | 1);
    time_t now = static_cast<time_t>(to_unix(SystemClock::instance().now()));
    ASN1_TIME_set(X509_getm_notBefore(x), now + not_before_offset.count());
    ASN1_TIME_set(X509_getm_notAfter(x), now + not_after_offset.count());
    X509_NAME* name = X509_get_subject_name(x);
    if (!topic.empty()) add_name(name, "UID", topic);
    std::string uuid = random_uuid();
    for (auto& c : uuid) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    add_name(name, "CN", "APSP:" + uuid);
    add_name(name, "C", "US");
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key.get());
    if (X509_sign(x, key.get(), EVP_sha256()) <= 0) {
        std::fprintf(stderr, "test_certs: sign push cert: %s\n", certs::openssl_error().c_str());
        std::abort();
    }
    return certs::Identity{std::move(key), std::move(cert), {}};
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
