#include "certs/x509.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include <ctime>

#include "common/encoding.h"
#include "common/openssl_error.h"

namespace courier::certs {

X509Ptr share(X509* cert) {
    if (cert) X509_up_ref(cert);
    return X509Ptr(cert);
}

PkeyPtr share(EVP_PKEY* key) {
    if (key) EVP_PKEY_up_ref(key);
    return PkeyPtr(key);
}

std::string openssl_error() {
    std::string out = openssl_error_text();
    return out.empty() ? "unknown OpenSSL error" : out;
}

BioPtr mem_bio(std::string_view bytes) {
    return BioPtr(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

std::string bio_contents(BIO* bio) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

std::vector<PemBlock> pem_blocks(std::string_view pem) {
    constexpr std::string_view kBegin = "-----BEGIN ", kEnd = "-----END ", kDashes = "-----";
    std::vector<PemBlock> out;
    size_t pos = 0;
    while ((pos = pem.find(kBegin, pos)) != std::string_view::npos) {
        size_t label_start = pos + kBegin.size();
        size_t label_end = pem.find(kDashes, label_start);
        if (label_end == std::string_view::npos) break;
        std::string label(pem.substr(label_start, label_end - label_start));
        std::string end_marker = std::string(kEnd) + label + std::string(kDashes);
        size_t end = pem.find(end_marker, label_end);
        if (end == std::string_view::npos) break;
        end += end_marker.size();
        std::string_view text = pem.substr(pos, end - pos);
        bool encrypted = label == "ENCRYPTED PRIVATE KEY" ||
                         text.find("Proc-Type: 4,ENCRYPTED") != std::string_view::npos;
        out.push_back({std::move(label), text, encrypted});
        pos = end;
    }
    return out;
}

Result<X509Ptr> cert_from_pem(std::string_view pem) {
    BioPtr bio = mem_bio(pem);
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) return Result<X509Ptr>(Code::kInvalid, "no PEM certificate: " + openssl_error());
    return cert;
}

Result<std::vector<X509Ptr>> certs_from_pem(std::string_view pem) {
    std::vector<X509Ptr> out;
    for (const PemBlock& b : pem_blocks(pem)) {
        if (b.label != "CERTIFICATE" && b.label != "TRUSTED CERTIFICATE") continue;
        auto cert = cert_from_pem(b.text);
        if (!cert) return cert.status();
        out.push_back(std::move(cert).value());
    }
    if (out.empty()) return Result<std::vector<X509Ptr>>(Code::kInvalid, "no PEM certificate");
    return out;
}

Result<X509Ptr> cert_from_der(std::string_view der) {
    auto* p = reinterpret_cast<const unsigned char*>(der.data());
    X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (!cert) return Result<X509Ptr>(Code::kInvalid, "bad DER certificate: " + openssl_error());
    return cert;
}

namespace {
// Refuses to prompt for a passphrase: keys must be uploaded unencrypted.
int no_passphrase(char*, int, int, void*) {
    return -1;
}
}  // namespace

Result<PkeyPtr> key_from_pem(std::string_view pem) {
    for (const PemBlock& b : pem_blocks(pem)) {
        if (!is_private_key_label(b.label)) continue;
        if (b.encrypted)
            return Result<PkeyPtr>(Code::kInvalid,
                                   "the private key is encrypted; upload it unencrypted");
        BioPtr bio = mem_bio(b.text);
        PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
        if (!key) {
            return Result<PkeyPtr>(Code::kInvalid,
                                   "unreadable " + b.label + ": " + openssl_error());
        }
        return key;
    }
    return Result<PkeyPtr>(Code::kInvalid, "no PEM private key");
}

std::string cert_to_pem(X509* cert) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(bio.get(), cert);
    return bio_contents(bio.get());
}

std::string cert_to_der(X509* cert) {
    int n = i2d_X509(cert, nullptr);
    if (n <= 0) return {};
    std::string out(static_cast<size_t>(n), '\0');
    auto* p = reinterpret_cast<unsigned char*>(out.data());
    i2d_X509(cert, &p);
    return out;
}

std::string key_to_pem(EVP_PKEY* key) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
    return bio_contents(bio.get());
}

namespace {
std::string digest_hex(const EVP_MD* md, std::string_view bytes) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(bytes.data(), bytes.size(), out, &n, md, nullptr);
    return hex_encode(std::string_view(reinterpret_cast<char*>(out), n));
}
}  // namespace

std::string sha1_hex(std::string_view bytes) {
    return digest_hex(EVP_sha1(), bytes);
}
std::string sha256_hex(std::string_view bytes) {
    return digest_hex(EVP_sha256(), bytes);
}
std::string cert_sha1_hex(X509* cert) {
    return sha1_hex(cert_to_der(cert));
}
std::string cert_sha256_hex(X509* cert) {
    return sha256_hex(cert_to_der(cert));
}

SysTime from_asn1_time(const ASN1_TIME* t) {
    struct tm tm {};
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return SysTime{};
    return SysTime(std::chrono::seconds(timegm(&tm)));
}

SysTime not_before(X509* cert) {
    return from_asn1_time(X509_get0_notBefore(cert));
}
SysTime not_after(X509* cert) {
    return from_asn1_time(X509_get0_notAfter(cert));
}

std::string subject_attribute(X509* cert, const char* name) {
    ASN1_OBJECT* obj = OBJ_txt2obj(name, 0);
    if (!obj) {
        ERR_clear_error();
        return {};
    }
    X509_NAME* subject = X509_get_subject_name(cert);
    int idx = X509_NAME_get_index_by_OBJ(subject, obj, -1);
    ASN1_OBJECT_free(obj);
    if (idx < 0) return {};
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    if (n < 0) {
        ERR_clear_error();
        return {};
    }
    std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
    OPENSSL_free(utf8);
    return out;
}

std::string subject_string(X509* cert) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    return bio_contents(bio.get());
}

bool key_matches(X509* cert, EVP_PKEY* key) {
    EVP_PKEY* pub = X509_get0_pubkey(cert);
    bool ok = pub && key && EVP_PKEY_eq(pub, key) == 1;
    ERR_clear_error();
    return ok;
}

std::vector<std::string> subject_alt_names(X509* cert) {
    std::vector<std::string> out;
    auto* names =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
    if (!names) return out;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
        const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type == GEN_DNS) {
            const ASN1_STRING* s = gn->d.dNSName;
            out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                             static_cast<size_t>(ASN1_STRING_length(s)));
        } else if (gn->type == GEN_IPADD) {
            const ASN1_OCTET_STRING* ip = gn->d.iPAddress;
            int len = ASN1_STRING_length(ip);
            char text[INET6_ADDRSTRLEN] = {};
            if ((len == 4 || len == 16) && inet_ntop(len == 4 ? AF_INET : AF_INET6,
                                                     ASN1_STRING_get0_data(ip), text, sizeof text))
                out.emplace_back(text);
        }
    }
    GENERAL_NAMES_free(names);
    return out;
}

Result<PkeyPtr> generate_rsa_key(int bits) {
    PkeyPtr key(EVP_RSA_gen(static_cast<unsigned int>(bits)));
    if (!key) return Result<PkeyPtr>(Code::kInternal, "RSA key generation: " + openssl_error());
    return key;
}

Result<PkeyPtr> generate_ec_key() {
    PkeyPtr key(EVP_EC_gen("P-256"));
    if (!key) return Result<PkeyPtr>(Code::kInternal, "EC key generation: " + openssl_error());
    return key;
}

}  // namespace courier::certs
