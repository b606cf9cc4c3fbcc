#include "certs/pkcs.h"

#include <openssl/asn1.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/x509_vfy.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>

#include "common/encoding.h"
#include "common/file_io.h"

namespace courier::certs {

namespace {

struct StackFree {
    void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), StackFree>;
struct CmsFree {
    void operator()(CMS_ContentInfo* p) const { CMS_ContentInfo_free(p); }
};
using CmsPtr = std::unique_ptr<CMS_ContentInfo, CmsFree>;
struct Pkcs12Free {
    void operator()(PKCS12* p) const { PKCS12_free(p); }
};
using Pkcs12Ptr = std::unique_ptr<PKCS12, Pkcs12Free>;

// A new stack holding references to `certs`.
X509StackPtr to_stack(const std::vector<X509Ptr>& certs) {
    X509StackPtr stack(sk_X509_new_null());
    for (const auto& c : certs) {
        X509_up_ref(c.get());
        sk_X509_push(stack.get(), c.get());
    }
    return stack;
}

std::string cms_to_der(CMS_ContentInfo* cms) {
    int n = i2d_CMS_ContentInfo(cms, nullptr);
    if (n <= 0) return {};
    std::string out(static_cast<size_t>(n), '\0');
    auto* p = reinterpret_cast<unsigned char*>(out.data());
    i2d_CMS_ContentInfo(cms, &p);
    return out;
}

CmsPtr cms_from_der(std::string_view der) {
    auto* p = reinterpret_cast<const unsigned char*>(der.data());
    return CmsPtr(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(der.size())));
}

// One DER TLV: where its header starts, where its content starts and ends.
struct Tlv {
    const unsigned char* header;
    const unsigned char* content;
    const unsigned char* end;
    int tag;
    int xclass;
    bool constructed;
    bool is(int want_class, int want_tag) const { return xclass == want_class && tag == want_tag; }
    std::string_view whole() const {
        return {reinterpret_cast<const char*>(header), static_cast<size_t>(end - header)};
    }
};

// Reads the TLV at p (definite length, within end) and moves p past it.
std::optional<Tlv> read_tlv(const unsigned char*& p, const unsigned char* end) {
    const unsigned char* q = p;
    long length = 0;
    int tag = 0;
    int xclass = 0;
    int r = ASN1_get_object(&q, &length, &tag, &xclass, end - p);
    if (r & 0x80) {  // malformed, or longer than what is left
        ERR_clear_error();
        return std::nullopt;
    }
    if (r & 1) return std::nullopt;  // BER indefinite length
    Tlv t{p, q, q + length, tag, xclass, (r & V_ASN1_CONSTRUCTED) != 0};
    p = t.end;
    return t;
}

// A ContentInfo holding SignedData, split into the certificates its
// `certificates` field carries and the ContentInfo re-encoded without that
// field (the signature covers neither the field nor the outer headers).
struct SignedDataSplit {
    std::vector<std::string_view> certificates;  // each one's DER, in order
    std::string rest;
};

std::optional<SignedDataSplit> split_certificates(std::string_view der) {
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    const unsigned char* const end = p + der.size();
    // ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT SignedData }
    auto info = read_tlv(p, end);
    if (!info || p != end || !info->constructed || !info->is(V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE))
        return std::nullopt;
    const unsigned char* q = info->content;
    auto type = read_tlv(q, info->end);
    auto tagged = type ? read_tlv(q, info->end) : std::nullopt;
    if (!tagged || q != info->end || !type->is(V_ASN1_UNIVERSAL, V_ASN1_OBJECT) ||
        !tagged->constructed || !tagged->is(V_ASN1_CONTEXT_SPECIFIC, 0))
        return std::nullopt;
    const unsigned char* r = tagged->content;
    auto signed_data = read_tlv(r, tagged->end);
    if (!signed_data || r != tagged->end || !signed_data->constructed ||
        !signed_data->is(V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE))
        return std::nullopt;
    // SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo,
    //   certificates [0] IMPLICIT OPTIONAL, crls [1] IMPLICIT OPTIONAL, signerInfos }
    std::optional<Tlv> field;
    for (const unsigned char* c = signed_data->content; c < signed_data->end;) {
        auto child = read_tlv(c, signed_data->end);
        if (!child) return std::nullopt;
        if (child->is(V_ASN1_CONTEXT_SPECIFIC, 0)) {
            if (field) return std::nullopt;
            field = child;
        }
    }
    if (!field || !field->constructed) return std::nullopt;
    SignedDataSplit out;
    for (const unsigned char* c = field->content; c < field->end;) {
        auto cert = read_tlv(c, field->end);
        // Only plain certificates; attribute certificates and the like are
        // left to the whole parse.
        if (!cert || !cert->constructed || !cert->is(V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE))
            return std::nullopt;
        out.certificates.push_back(cert->whole());
    }
    const long without =
        static_cast<long>((signed_data->end - signed_data->content) - (field->end - field->header));
    const int inner = ASN1_object_size(1, static_cast<int>(without), V_ASN1_SEQUENCE);
    const int tagged_len = inner < 0 ? -1 : ASN1_object_size(1, inner, 0);
    const int info_len =
        tagged_len < 0 ? -1 : static_cast<int>(type->end - type->header) + tagged_len;
    const int total = info_len < 0 ? -1 : ASN1_object_size(1, info_len, V_ASN1_SEQUENCE);
    if (total < 0) return std::nullopt;
    out.rest.resize(static_cast<size_t>(total));
    auto* w = reinterpret_cast<unsigned char*>(out.rest.data());
    auto copy = [&w](const unsigned char* from, const unsigned char* to) {
        std::memcpy(w, from, static_cast<size_t>(to - from));
        w += to - from;
    };
    ASN1_put_object(&w, 1, info_len, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    copy(type->header, type->end);
    ASN1_put_object(&w, 1, inner, 0, V_ASN1_CONTEXT_SPECIFIC);
    ASN1_put_object(&w, 1, static_cast<int>(without), V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    copy(signed_data->content, field->header);
    copy(field->end, signed_data->end);
    if (w != reinterpret_cast<unsigned char*>(out.rest.data()) + total) return std::nullopt;
    return out;
}

OSSL_PROVIDER* g_default_provider = nullptr;
OSSL_PROVIDER* g_legacy_provider = nullptr;

// Unloading at exit keeps leak checkers quiet; OpenSSL's own atexit cleanup
// was registered earlier, so it runs after this.
void unload_providers() {
    if (g_legacy_provider) OSSL_PROVIDER_unload(g_legacy_provider);
    if (g_default_provider) OSSL_PROVIDER_unload(g_default_provider);
}

// Loads "legacy" (RC2-40 and friends, as macOS Keychain exports use) beside
// "default" once per process. Loading any provider explicitly stops OpenSSL
// from loading "default" implicitly, hence both.
bool legacy_provider_loaded() {
    static std::once_flag once;
    std::call_once(once, [] {
        g_default_provider = OSSL_PROVIDER_load(nullptr, "default");
        g_legacy_provider = OSSL_PROVIDER_load(nullptr, "legacy");
        ERR_clear_error();
        std::atexit(unload_providers);
    });
    return g_legacy_provider != nullptr;
}

Result<std::string> cms_sign(std::string_view content, const Identity& signer, unsigned flags) {
    BioPtr in = mem_bio(content);
    X509StackPtr chain = to_stack(signer.chain);
    CmsPtr cms(
        CMS_sign(signer.cert.get(), signer.key.get(), chain.get(), in.get(), flags | CMS_BINARY));
    if (!cms) return Result<std::string>(Code::kInternal, "CMS sign: " + openssl_error());
    return cms_to_der(cms.get());
}

}  // namespace

Result<std::string> make_pkcs12(const Identity& id, const std::string& password,
                                const std::string& friendly_name) {
    X509StackPtr chain = to_stack(id.chain);
    constexpr int kNid = NID_pbe_WithSHA1And3_Key_TripleDES_CBC;
    // mac_iter -1 leaves the MAC out so it can be added with SHA-1 below.
    Pkcs12Ptr p12(PKCS12_create(password.c_str(), friendly_name.c_str(), id.key.get(),
                                id.cert.get(), chain.get(), kNid, kNid, PKCS12_DEFAULT_ITER, -1,
                                0));
    if (!p12) return Result<std::string>(Code::kInternal, "PKCS#12: " + openssl_error());
    if (PKCS12_set_mac(p12.get(), password.c_str(), -1, nullptr, 0, PKCS12_DEFAULT_ITER,
                       EVP_sha1()) != 1)
        return Result<std::string>(Code::kInternal, "PKCS#12 MAC: " + openssl_error());
    int n = i2d_PKCS12(p12.get(), nullptr);
    std::string out(static_cast<size_t>(n > 0 ? n : 0), '\0');
    auto* p = reinterpret_cast<unsigned char*>(out.data());
    i2d_PKCS12(p12.get(), &p);
    return out;
}

Result<Identity> parse_pkcs12(std::string_view der, const std::string& password) {
    bool legacy = legacy_provider_loaded();
    auto* p = reinterpret_cast<const unsigned char*>(der.data());
    Pkcs12Ptr p12(d2i_PKCS12(nullptr, &p, static_cast<long>(der.size())));
    if (!p12) return Result<Identity>(Code::kInvalid, "not a PKCS#12 file: " + openssl_error());
    if (PKCS12_mac_present(p12.get()) &&
        PKCS12_verify_mac(p12.get(), password.c_str(), static_cast<int>(password.size())) != 1 &&
        !(password.empty() && PKCS12_verify_mac(p12.get(), nullptr, 0) == 1)) {
        ERR_clear_error();
        return Result<Identity>(Code::kInvalid, "wrong PKCS#12 password");
    }
    EVP_PKEY* key = nullptr;
    X509* cert = nullptr;
    STACK_OF(X509)* ca = nullptr;
    if (PKCS12_parse(p12.get(), password.c_str(), &key, &cert, &ca) != 1) {
        std::string msg = "cannot read PKCS#12: " + openssl_error();
        if (!legacy)
            msg +=
                " (OpenSSL's legacy provider is not available, so legacy RC2-40 PKCS#12 "
                "files cannot be read; re-export with AES or 3DES)";
        return Result<Identity>(Code::kInvalid, msg);
    }
    Identity id{PkeyPtr(key), X509Ptr(cert), {}};
    X509StackPtr chain(ca);
    while (chain && sk_X509_num(chain.get()) > 0) id.chain.emplace_back(sk_X509_shift(chain.get()));
    if (!id.cert) return Result<Identity>(Code::kInvalid, "the PKCS#12 file has no certificate");
    if (!id.key) return Result<Identity>(Code::kInvalid, "the PKCS#12 file has no private key");
    return id;
}

Result<std::string> cms_sign_attached(std::string_view content, const Identity& signer) {
    return cms_sign(content, signer, 0);
}

Result<std::string> cms_attached_content(std::string_view der) {
    CmsPtr cms = cms_from_der(der);
    if (!cms) return Result<std::string>(Code::kInvalid, "not CMS: " + openssl_error());
    BioPtr out(BIO_new(BIO_s_mem()));
    if (CMS_verify(cms.get(), nullptr, nullptr, nullptr, out.get(),
                   CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1)
        return Result<std::string>(Code::kInvalid, "CMS signature: " + openssl_error());
    return bio_contents(out.get());
}

TrustStore::TrustStore() : store_(X509_STORE_new()) {}
TrustStore::~TrustStore() {
    X509_STORE_free(store_);
}
TrustStore::TrustStore(TrustStore&& o) noexcept : store_(o.store_) {
    o.store_ = nullptr;
}
TrustStore& TrustStore::operator=(TrustStore&& o) noexcept {
    if (this != &o) {
        X509_STORE_free(store_);
        store_ = o.store_;
        o.store_ = nullptr;
    }
    return *this;
}

Status TrustStore::add(X509* ca) {
    if (!store_ || X509_STORE_add_cert(store_, ca) != 1)
        return internal_error("trust store: " + openssl_error());
    return Status::ok();
}

Status TrustStore::add_pem_file(const std::string& path) {
    auto pem = read_file(path);
    if (!pem) return invalid(pem.status().message());
    auto certs = certs_from_pem(*pem);
    if (!certs) return invalid(path + ": " + certs.status().message());
    for (const auto& c : *certs) {
        if (Status s = add(c.get()); !s) return s;
    }
    return Status::ok();
}

Status TrustStore::verify(X509* cert, const std::vector<X509Ptr>& intermediates,
                          SysTime now) const {
    if (!store_ || !cert) return Status(Code::kUnauthorized, "no certificate");
    std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(),
                                                                        X509_STORE_CTX_free);
    X509StackPtr untrusted = to_stack(intermediates);
    if (!ctx || X509_STORE_CTX_init(ctx.get(), store_, cert, untrusted.get()) != 1)
        return internal_error("verify context: " + openssl_error());
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()),
                               static_cast<time_t>(to_unix(now)));
    if (X509_get_extension_flags(cert) & EXFLAG_XKUSAGE)
        X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
    if (X509_verify_cert(ctx.get()) == 1) return Status::ok();
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return Status(Code::kUnauthorized, std::string("untrusted device certificate (") +
                                           subject_string(cert) +
                                           "): " + X509_verify_cert_error_string(err));
}

Result<X509Ptr> CertCache::get(std::string_view der) {
    std::string key(der);
    {
        std::lock_guard lock(mu_);
        if (auto it = certs_.find(key); it != certs_.end()) return share(it->second.get());
    }
    auto cert = cert_from_der(der);
    if (!cert) return cert.status();
    std::lock_guard lock(mu_);
    ++decoded_;
    if (der.size() > max_bytes_) return std::move(*cert);
    if (bytes_ + der.size() > max_bytes_) {  // crude, bounded, rare
        certs_.clear();
        bytes_ = 0;
    }
    auto [it, inserted] = certs_.emplace(std::move(key), std::move(*cert));
    if (inserted) bytes_ += der.size();
    return share(it->second.get());
}

size_t CertCache::decoded() const {
    std::lock_guard lock(mu_);
    return decoded_;
}

size_t CertCache::bytes() const {
    std::lock_guard lock(mu_);
    return bytes_;
}

// Runs on every device request that authenticates with Mdm-Signature; the
// body is read in place. Callers may cache the result keyed by a digest of
// the signature (with the body's digest), since both are immutable inputs.
Result<SignedBy> verify_mdm_signature(std::string_view header_base64, std::string_view body,
                                      CertCache* cache) {
    auto fail = [](std::string why) {
        return Result<SignedBy>(Code::kUnauthorized, std::move(why));
    };
    std::optional<std::string> der = base64_decode(header_base64);
    if (!der || der->empty()) return fail("Mdm-Signature is not base64");
    // With a cache, the carried certificates come from it and only the rest
    // of the SignedData is decoded here.
    std::optional<SignedDataSplit> split = cache ? split_certificates(*der) : std::nullopt;
    std::vector<X509Ptr> carried;
    if (split) {
        for (std::string_view c : split->certificates) {
            auto cert = cache->get(c);
            if (!cert) return fail("Mdm-Signature is not a CMS message");
            carried.push_back(std::move(*cert));
        }
    }
    CmsPtr cms = cms_from_der(split ? split->rest : *der);
    if (!cms) {
        ERR_clear_error();
        return fail("Mdm-Signature is not a CMS message");
    }
    if (OBJ_obj2nid(CMS_get0_type(cms.get())) != NID_pkcs7_signed)
        return fail("Mdm-Signature is not CMS SignedData");
    STACK_OF(CMS_SignerInfo)* signer_infos = CMS_get0_SignerInfos(cms.get());
    if (!signer_infos || sk_CMS_SignerInfo_num(signer_infos) != 1)
        return fail("Mdm-Signature must have exactly one signer");
    // OpenSSL 3.0's CMS_verify copies a memory BIO into a temporary one and
    // leaks the copy when the SignedData names a digest it cannot set up
    // (found by fuzz_mdm_signature). Reading the body through a null filter
    // keeps CMS_verify off that path; the filter passes the bytes unchanged.
    BioPtr content(BIO_new(BIO_f_null()));
    if (!content) return fail("Mdm-Signature: out of memory");
    BIO_push(content.get(), mem_bio(body).release());
    X509StackPtr extra = split ? to_stack(carried) : nullptr;
    if (CMS_verify(cms.get(), extra.get(), nullptr, content.get(), nullptr,
                   CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) != 1)
        return fail("Mdm-Signature does not verify over the request body: " + openssl_error());
    STACK_OF(X509)* signers = CMS_get0_signers(cms.get());
    X509* signer = signers && sk_X509_num(signers) == 1 ? sk_X509_value(signers, 0) : nullptr;
    SignedBy out{share(signer), {}};
    sk_X509_free(signers);
    if (!out.signer) return fail("Mdm-Signature carries no signer certificate");
    if (split) {
        for (auto& c : carried) {
            if (X509_cmp(c.get(), out.signer.get()) != 0) out.intermediates.push_back(std::move(c));
        }
        return out;
    }
    X509StackPtr all(CMS_get1_certs(cms.get()));
    for (int i = 0; all && i < sk_X509_num(all.get()); ++i) {
        X509* c = sk_X509_value(all.get(), i);
        if (X509_cmp(c, out.signer.get()) != 0) out.intermediates.push_back(share(c));
    }
    return out;
}

Result<std::string> make_mdm_signature(std::string_view body, const Identity& id) {
    auto der = cms_sign(body, id, CMS_DETACHED);
    if (!der) return der.status();
    return base64_encode(*der);
}

}  // namespace courier::certs
