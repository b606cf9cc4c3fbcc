#include "certs/push_cert.h"

#include <cstring>
#include <ctime>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "certs/pkcs.h"
#include "common/encoding.h"
#include "common/plist/plist.h"

namespace courier::certs {

namespace {

constexpr std::string_view kTopicPrefix = "com.apple.mgmt.";

struct ReqFree {
    void operator()(X509_REQ* p) const { X509_REQ_free(p); }
};
using ReqPtr = std::unique_ptr<X509_REQ, ReqFree>;

// Certificate and key from a PEM upload: the certificate is the one the key
// belongs to when several are present (a chain), else the first.
Result<Identity> identity_from_pem(std::string_view pem) {
    std::vector<PemBlock> blocks = pem_blocks(pem);
    Identity id;
    std::vector<X509Ptr> certs;
    for (const PemBlock& b : blocks) {
        if (b.label == "CERTIFICATE") {
            auto cert = cert_from_pem(b.text);
            if (!cert) return cert.status();
            certs.push_back(std::move(cert).value());
        } else if (is_private_key_label(b.label) && !id.key) {
            auto key = key_from_pem(b.text);
            if (!key) return key.status();
            id.key = std::move(key).value();
        }
    }
    if (certs.empty()) return Result<Identity>(Code::kInvalid, "no certificate in the upload");
    if (!id.key) {
        return Result<Identity>(Code::kInvalid,
                                "no private key in the upload; send the certificate and its "
                                "unencrypted private key");
    }
    size_t leaf = 0;
    for (size_t i = 0; i < certs.size(); ++i) {
        if (key_matches(certs[i].get(), id.key.get())) {
            leaf = i;
            break;
        }
    }
    for (size_t i = 0; i < certs.size(); ++i) {
        if (i == leaf)
            id.cert = std::move(certs[i]);
        else
            id.chain.push_back(std::move(certs[i]));
    }
    return id;
}

Result<std::string> csr_der(std::string_view csr) {
    ReqPtr req;
    if (csr.find("-----BEGIN") != std::string_view::npos) {
        BioPtr bio = mem_bio(csr);
        req.reset(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
    } else {
        auto* p = reinterpret_cast<const unsigned char*>(csr.data());
        req.reset(d2i_X509_REQ(nullptr, &p, static_cast<long>(csr.size())));
    }
    if (!req) return Result<std::string>(Code::kInvalid, "not a CSR: " + openssl_error());
    int n = i2d_X509_REQ(req.get(), nullptr);
    std::string der(static_cast<size_t>(n > 0 ? n : 0), '\0');
    auto* p = reinterpret_cast<unsigned char*>(der.data());
    i2d_X509_REQ(req.get(), &p);
    return der;
}

Result<std::string> sign_sha256(EVP_PKEY* key, std::string_view data) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    size_t len = 0;
    auto* in = reinterpret_cast<const unsigned char*>(data.data());
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len, in, data.size()) != 1)
        return Result<std::string>(Code::kInternal, "sign: " + openssl_error());
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                       data.size()) != 1)
        return Result<std::string>(Code::kInternal, "sign: " + openssl_error());
    sig.resize(len);
    return sig;
}

}  // namespace

Result<std::string> push_topic(X509* cert) {
    std::string uid = subject_attribute(cert, "UID");
    if (uid.empty()) {
        return Result<std::string>(Code::kInvalid,
                                   "the certificate has no topic (subject UID); is it an APNs "
                                   "MDM push certificate?");
    }
    if (!uid.starts_with(kTopicPrefix)) {
        return Result<std::string>(Code::kInvalid, "the certificate's topic \"" + uid +
                                                       "\" does not start with " +
                                                       std::string(kTopicPrefix));
    }
    return uid;
}

Result<ParsedPushCert> parse_push_cert(std::string_view body, const std::string& password,
                                       SysTime now) {
    bool pem = body.find("-----BEGIN") != std::string_view::npos;
    auto id = pem ? identity_from_pem(body) : parse_pkcs12(body, password);
    if (!id) return id.status();
    X509* cert = id->cert.get();
    if (!key_matches(cert, id->key.get()))
        return Result<ParsedPushCert>(Code::kInvalid,
                                      "the private key does not match the certificate");
    auto topic = push_topic(cert);
    if (!topic) return topic.status();

    ParsedPushCert out;
    out.topic = std::move(topic).value();
    out.not_before = not_before(cert);
    out.not_after = not_after(cert);
    std::string validity =
        "valid from " + format_rfc3339(out.not_before) + " to " + format_rfc3339(out.not_after);
    if (now > out.not_after) {
        return Result<ParsedPushCert>(Code::kInvalid, "the push certificate expired on " +
                                                          format_rfc3339(out.not_after) + " (" +
                                                          validity + ")");
    }
    if (now < out.not_before) {
        return Result<ParsedPushCert>(Code::kInvalid, "the push certificate is not valid until " +
                                                          format_rfc3339(out.not_before) + " (" +
                                                          validity + ")");
    }
    out.cert_pem = cert_to_pem(cert);
    out.key_pem = key_to_pem(id->key.get());
    out.thumbprint_sha1 = cert_sha1_hex(cert);
    return out;
}

Result<CsrFiles> make_push_csr(const std::string& common_name, const std::string& email) {
    auto key = generate_rsa_key(2048);
    if (!key) return key.status();
    ReqPtr req(X509_REQ_new());
    X509_NAME* name = X509_REQ_get_subject_name(req.get());
    auto add = [&](const char* field, const std::string& value) {
        X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                   0);
    };
    add("CN", common_name);
    if (!email.empty()) add("emailAddress", email);
    X509_REQ_set_version(req.get(), X509_REQ_VERSION_1);
    if (X509_REQ_set_pubkey(req.get(), key->get()) != 1 ||
        X509_REQ_sign(req.get(), key->get(), EVP_sha256()) <= 0)
        return Result<CsrFiles>(Code::kInternal, "CSR: " + openssl_error());
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509_REQ(bio.get(), req.get());
    return CsrFiles{key_to_pem(key->get()), bio_contents(bio.get())};
}

Result<std::string> make_vendor_signed_request(std::string_view csr_der_or_pem,
                                               std::string_view vendor_cert_pem,
                                               std::string_view vendor_key_pem,
                                               std::string_view apple_chain_pem) {
    auto der = csr_der(csr_der_or_pem);
    if (!der) return der.status();
    auto vendor_cert = cert_from_pem(vendor_cert_pem);
    if (!vendor_cert) return vendor_cert.status();
    auto vendor_key = key_from_pem(vendor_key_pem);
    if (!vendor_key) return vendor_key.status();
    if (!key_matches(vendor_cert->get(), vendor_key->get()))
        return Result<std::string>(Code::kInvalid,
                                   "the vendor key does not match the vendor certificate");
    if (EVP_PKEY_get_base_id(vendor_key->get()) != EVP_PKEY_RSA)
        return Result<std::string>(Code::kInvalid, "the vendor key must be RSA");
    auto sig = sign_sha256(vendor_key->get(), *der);
    if (!sig) return sig.status();

    std::string chain(vendor_cert_pem);
    if (!chain.empty() && chain.back() != '\n') chain += '\n';
    chain += apple_chain_pem;
    // Apple's portal takes the request as a base64 XML plist.
    plist::Dict request;
    request.set("PushCertCertificateChain", chain);
    request.set("PushCertRequestCSR", base64_encode(*der));
    request.set("PushCertSignature", base64_encode(*sig));
    return base64_encode(plist::write_xml(plist::Value(std::move(request))));
}

Result<Identity> make_self_signed_push_identity(const std::string& topic,
                                                std::chrono::seconds not_before_offset,
                                                std::chrono::seconds not_after_offset) {
    auto key = generate_rsa_key(2048);
    if (!key) return key.status();
    X509Ptr cert(X509_new());
    X509* x = cert.get();
    X509_set_version(x, X509_VERSION_3);
    uint64_t serial = 0;
    std::memcpy(&serial, random_bytes(sizeof serial).data(), sizeof serial);
    ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), (serial >> 1) | 1);
    time_t now = time(nullptr);
    ASN1_TIME_set(X509_getm_notBefore(x), now + not_before_offset.count());
    ASN1_TIME_set(X509_getm_notAfter(x), now + not_after_offset.count());
    X509_NAME* name = X509_get_subject_name(x);
    auto add = [name](const char* field, const std::string& value) {
        X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                   0);
    };
    if (!topic.empty()) add("UID", topic);
    std::string uuid = random_uuid();
    for (auto& c : uuid) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    add("CN", "APSP:" + uuid);
    add("C", "US");
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key->get());
    if (X509_sign(x, key->get(), EVP_sha256()) <= 0)
        return Status(Code::kInternal, "signing push certificate: " + openssl_error());
    return Identity{std::move(*key), std::move(cert), {}};
}

}  // namespace courier::certs
