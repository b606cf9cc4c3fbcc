#include "certs/authority.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/encoding.h"
#include "common/file_io.h"

namespace courier::certs {

namespace fs = std::filesystem;

namespace {

using namespace std::chrono_literals;

// Validity starts this much before `now` so a device whose clock runs a little
// behind accepts a freshly issued certificate.
constexpr auto kClockSkew = 5min;
constexpr int kServerLeafDays = 825;  // Apple's limit for TLS server certificates
constexpr auto kRenewBefore = std::chrono::days(30);

Status set_random_serial(X509* x) {
    std::string bytes = random_bytes(16);
    bytes[0] = static_cast<char>((bytes[0] & 0x7f) | 0x40);  // positive, full length
    BIGNUM* bn = BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()), 16, nullptr);
    ASN1_INTEGER* serial = bn ? BN_to_ASN1_INTEGER(bn, nullptr) : nullptr;
    BN_free(bn);
    if (!serial) return internal_error("serial: " + openssl_error());
    X509_set_serialNumber(x, serial);
    ASN1_INTEGER_free(serial);
    return Status::ok();
}

Status add_ext(X509* x, X509V3_CTX* ctx, int nid, const std::string& value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
    if (!ext) return internal_error("extension " + value + ": " + openssl_error());
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (!ok) return internal_error("add extension: " + openssl_error());
    return Status::ok();
}

// Fills version, serial, validity, subject and public key of a new certificate.
Result<X509Ptr> new_cert(const std::string& common_name, EVP_PKEY* key, SysTime now, int days) {
    X509Ptr x(X509_new());
    if (!x) return Result<X509Ptr>(Code::kInternal, openssl_error());
    X509_set_version(x.get(), X509_VERSION_3);
    if (Status s = set_random_serial(x.get()); !s) return s;
    SysTime start = now - kClockSkew;
    SysTime end = start + std::chrono::days(days);
    ASN1_TIME_set(X509_getm_notBefore(x.get()), static_cast<time_t>(to_unix(start)));
    ASN1_TIME_set(X509_getm_notAfter(x.get()), static_cast<time_t>(to_unix(end)));
    X509_NAME* name = X509_get_subject_name(x.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                               0);
    X509_set_pubkey(x.get(), key);
    return x;
}

SysTime system_now() {
    return SystemClock::instance().now();
}

bool is_ip_address(const std::string& s) {
    unsigned char buf[16];
    return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

Result<CertificateAuthority> CertificateAuthority::create(const std::string& common_name,
                                                          int days) {
    auto key = generate_rsa_key(2048);
    if (!key) return key.status();
    auto x = new_cert(common_name, key->get(), system_now(), days);
    if (!x) return x.status();
    X509* c = x->get();
    X509_set_issuer_name(c, X509_get_subject_name(c));
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, c, c, nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                              {NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"},
                              {NID_subject_key_identifier, "hash"},
                              {NID_authority_key_identifier, "keyid:always"}}) {
        if (Status s = add_ext(c, &ctx, nid, value); !s) return s;
    }
    if (X509_sign(c, key->get(), EVP_sha256()) <= 0)
        return Result<CertificateAuthority>(Code::kInternal, "sign CA: " + openssl_error());
    return CertificateAuthority(std::move(key).value(), std::move(x).value());
}

Result<CertificateAuthority> CertificateAuthority::load_or_create(const fs::path& dir,
                                                                  const std::string& name,
                                                                  const std::string& common_name) {
    fs::path crt = dir / (name + ".crt"), key_path = dir / (name + ".key");
    std::error_code ec;
    bool have_crt = fs::exists(crt, ec), have_key = fs::exists(key_path, ec);
    if (have_crt && have_key) {
        auto pem = read_file(crt);
        if (!pem) return pem.status();
        auto key_pem = read_file(key_path);
        if (!key_pem) return key_pem.status();
        auto cert = cert_from_pem(*pem);
        if (!cert) return Status(Code::kInternal, crt.string() + ": " + cert.status().message());
        auto key = key_from_pem(*key_pem);
        if (!key) return Status(Code::kInternal, key_path.string() + ": " + key.status().message());
        if (!key_matches(cert->get(), key->get()))
            return Status(Code::kInternal, key_path.string() + " does not match " + crt.string());
        return CertificateAuthority(std::move(key).value(), std::move(cert).value());
    }
    if (have_crt || have_key) {
        return Status(Code::kInternal, "only one of " + crt.string() + " and " + key_path.string() +
                                           " exists; restore the other or remove both");
    }
    auto ca = create(common_name);
    if (!ca) return ca.status();
    if (Status s = write_private_file(key_path, key_to_pem(ca->key())); !s) return s;
    if (Status s = write_file(crt, cert_to_pem(ca->cert()), 0644); !s) return s;
    return ca;
}

Result<Identity> CertificateAuthority::issue(const IssueOptions& opts) const {
    auto key = opts.ec_key ? generate_ec_key() : generate_rsa_key(2048);
    if (!key) return key.status();
    auto x = new_cert(opts.common_name, key->get(), opts.now.value_or(system_now()), opts.days);
    if (!x) return x.status();
    X509* c = x->get();
    X509_set_issuer_name(c, X509_get_subject_name(cert_.get()));
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, cert_.get(), c, nullptr, nullptr, 0);
    std::string san;
    for (const auto& d : opts.dns_names) san += (san.empty() ? "DNS:" : ",DNS:") + d;
    for (const auto& ip : opts.ip_addresses) san += (san.empty() ? "IP:" : ",IP:") + ip;
    std::vector<std::pair<int, std::string>> exts = {
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage,
         opts.ec_key ? "critical,digitalSignature" : "critical,digitalSignature,keyEncipherment"},
        {NID_ext_key_usage, opts.server_auth ? "serverAuth" : "clientAuth"},
        {NID_subject_key_identifier, "hash"},
        {NID_authority_key_identifier, "keyid:always"},
    };
    if (!san.empty()) exts.emplace_back(NID_subject_alt_name, san);
    for (const auto& [nid, value] : exts) {
        if (Status s = add_ext(c, &ctx, nid, value); !s) return s;
    }
    if (X509_sign(c, key_.get(), EVP_sha256()) <= 0)
        return Result<Identity>(Code::kInternal, "sign certificate: " + openssl_error());
    Identity id{std::move(key).value(), std::move(x).value(), {}};
    id.chain.push_back(share(cert_.get()));
    return id;
}

Identity CertificateAuthority::identity() const {
    return Identity{share(key_.get()), share(cert_.get()), {}};
}

namespace {

// Why the existing server leaf must be replaced, or empty when it may stay.
std::string leaf_problem(const fs::path& crt, const fs::path& key_path,
                         const CertificateAuthority& ca, const IssueOptions& want, SysTime now) {
    auto pem = read_file(crt);
    auto key_pem = read_file(key_path);
    if (!pem || !key_pem) return "missing";
    auto leaf = cert_from_pem(*pem);
    auto key = key_from_pem(*key_pem);
    if (!leaf || !key) return "unreadable";
    X509* c = leaf->get();
    if (!key_matches(c, key->get())) return "key does not match";
    if (X509_verify(c, X509_get0_pubkey(ca.cert())) != 1) {
        ERR_clear_error();
        return "not issued by the local CA";
    }
    if (not_before(c) > now) return "not yet valid";
    if (not_after(c) - now < kRenewBefore) return "expires within 30 days";
    std::vector<std::string> have = subject_alt_names(c);
    for (const auto* names : {&want.dns_names, &want.ip_addresses}) {
        for (const auto& n : *names) {
            if (std::find(have.begin(), have.end(), n) == have.end()) return "host names changed";
        }
    }
    return {};
}

}  // namespace

Result<ServerTlsFiles> ensure_server_tls(const fs::path& data_dir,
                                         const std::vector<std::string>& host_names, SysTime now) {
    std::error_code ec;
    fs::path tls_dir = data_dir / "tls";
    for (const fs::path& d : {data_dir, tls_dir}) {
        if (fs::exists(d, ec)) continue;
        if (::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST)
            return Status(Code::kInternal, "mkdir " + d.string() + ": " + std::strerror(errno));
    }

    IssueOptions want;
    want.days = kServerLeafDays;
    want.server_auth = true;
    want.now = now;
    for (const auto& h : host_names) {
        auto& list = is_ip_address(h) ? want.ip_addresses : want.dns_names;
        if (std::find(list.begin(), list.end(), h) == list.end()) list.push_back(h);
    }
    for (auto [list, dflt] :
         {std::pair{&want.dns_names, "localhost"}, {&want.ip_addresses, "127.0.0.1"}}) {
        if (std::find(list->begin(), list->end(), dflt) == list->end()) list->push_back(dflt);
    }
    want.common_name = want.dns_names.front();

    auto ca = CertificateAuthority::load_or_create(tls_dir, "ca",
                                                   "Courier Local CA (" + want.common_name + ")");
    if (!ca) return ca.status();

    ServerTlsFiles files{tls_dir / "server.crt", tls_dir / "server.key", tls_dir / "ca.crt", false};
    if (leaf_problem(files.cert_chain_pem, files.key_pem, *ca, want, now).empty()) return files;

    auto leaf = ca->issue(want);
    if (!leaf) return leaf.status();
    if (Status s = write_private_file(files.key_pem, key_to_pem(leaf->key.get())); !s) return s;
    std::string chain = cert_to_pem(leaf->cert.get()) + cert_to_pem(ca->cert());
    if (Status s = write_file(files.cert_chain_pem, chain, 0644); !s) return s;
    files.generated = true;
    return files;
}

}  // namespace courier::certs
