#include "server/device/device_auth.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/encoding.h"

namespace courier::server {

namespace {
constexpr size_t kCacheLimit = 20000;      // per-message entries (sig, tls, hdr)
constexpr size_t kCertCacheLimit = 50000;  // certificates (crt): one per active device
constexpr std::chrono::seconds kCacheTtl{300};

std::string digest(std::string_view a, std::string_view b) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    const char sep = 0;
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    EVP_DigestUpdate(ctx, a.data(), a.size());
    EVP_DigestUpdate(ctx, &sep, 1);
    EVP_DigestUpdate(ctx, b.data(), b.size());
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    return std::string(reinterpret_cast<char*>(md), len);
}

Status refuse(std::string why) {
    return {Code::kUnauthorized, std::move(why)};
}

std::string url_unescape(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            if (auto b = hex_decode(s.substr(i + 1, 2))) {
                out += *b;
                i += 2;
                continue;
            }
        }
        out += s[i] == '+' ? ' ' : s[i];
    }
    return out;
}
}  // namespace

Result<certs::X509Ptr> cert_from_header_value(std::string_view v) {
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    if (v.size() >= 2 && v.front() == ':' && v.back() == ':') {
        auto der = base64_decode(v.substr(1, v.size() - 2));
        if (!der) return refuse("certificate header: bad base64");
        auto c = certs::cert_from_der(*der);
        if (!c.is_ok()) return refuse("certificate header: " + c.status().message());
        return std::move(*c);
    }
    auto c = certs::cert_from_pem(url_unescape(v));
    if (!c.is_ok()) return refuse("certificate header: " + c.status().message());
    return std::move(*c);
}

DeviceAuthenticator::DeviceAuthenticator(certs::TrustStore trust, std::string cert_header,
                                         const Clock& clock)
    : trust_(std::move(trust)), cert_header_(std::move(cert_header)), clock_(clock) {}

std::optional<DeviceAuthenticator::Verified> DeviceAuthenticator::cached(const std::string& key) {
    std::lock_guard lock(mu_);
    auto& cache = key.starts_with("crt") ? cert_cache_ : cache_;
    auto it = cache.find(key);
    if (it == cache.end()) return std::nullopt;
    auto now = clock_.now();
    if (now - it->second.checked_at > kCacheTtl || it->second.cred.not_after <= now) {
        cache.erase(it);
        return std::nullopt;
    }
    return it->second;
}

void DeviceAuthenticator::remember(const std::string& key, const DeviceCredential& cred) {
    std::lock_guard lock(mu_);
    // Freshly signed messages add an entry each to cache_; certificates have
    // their own map, so that churn does not evict them.
    auto& cache = key.starts_with("crt") ? cert_cache_ : cache_;
    if (cache.size() >= (&cache == &cache_ ? kCacheLimit : kCertCacheLimit))
        cache.clear();  // crude, bounded, rare
    cache[key] = Verified{cred, clock_.now()};
}

void DeviceAuthenticator::set_enrollment_ca(X509* ca) {
    enrollment_ca_key_.reset(X509_get_pubkey(ca));
}

Result<DeviceCredential> DeviceAuthenticator::trusted(
    certs::X509Ptr cert, const std::vector<certs::X509Ptr>& intermediates,
    const std::string& source) {
    // A certificate that chained to a trusted CA still does within the
    // cache's lifetime (the CA set is fixed at start; expiry is re-checked on
    // every hit): each device's identity is path-validated once, not on every
    // freshly signed message.
    const std::string sha256 = certs::cert_sha256_hex(cert.get());
    const std::string key = "crt" + sha256;
    if (auto hit = cached(key)) return hit->cred;
    chain_verifications_.fetch_add(1, std::memory_order_relaxed);
    if (auto s = trust_.verify(cert.get(), intermediates, clock_.now()); !s.is_ok())
        return refuse(source + ": " + s.message());
    DeviceCredential cred{sha256, certs::not_after(cert.get()), source};
    // Path validation succeeded; signed directly by the enrollment CA's key
    // means /enroll issued it (a --device-ca chain is gated by its own CA).
    cred.enrollment_ca =
        enrollment_ca_key_ && X509_verify(cert.get(), enrollment_ca_key_.get()) == 1;
    ERR_clear_error();  // a failed X509_verify leaves its reason queued
    remember(key, cred);
    return cred;
}

Result<DeviceCredential> DeviceAuthenticator::authenticate(const Request& req) {
    std::optional<DeviceCredential> found;
    auto agree = [&](DeviceCredential c) -> Status {
        if (found && found->cert_sha256 != c.cert_sha256)
            return refuse("identity sources disagree: " + found->source + " and " + c.source +
                          " carry different certificates");
        if (!found) found = std::move(c);
        return Status::ok();
    };

    if (!req.client_cert_der.empty()) {
        std::string key = "tls" + digest(req.client_cert_der, "");
        if (auto hit = cached(key)) {
            if (auto s = agree(hit->cred); !s.is_ok()) return s;
        } else {
            auto cert = certs::cert_from_der(req.client_cert_der);
            if (!cert.is_ok()) return refuse("TLS client certificate: " + cert.status().message());
            auto cred = trusted(std::move(*cert), {}, "TLS client certificate");
            if (!cred.is_ok()) return cred.status();
            cred->source = "tls";
            remember(key, *cred);
            if (auto s = agree(*cred); !s.is_ok()) return s;
        }
    }
    if (const std::string* sig = req.header("Mdm-Signature")) {
        std::string key = "sig" + digest(*sig, req.body);
        if (auto hit = cached(key)) {
            if (auto s = agree(hit->cred); !s.is_ok()) return s;
        } else {
            auto signed_by = certs::verify_mdm_signature(*sig, req.body, &signer_certs_);
            if (!signed_by.is_ok()) return refuse("Mdm-Signature: " + signed_by.status().message());
            auto cred =
                trusted(std::move(signed_by->signer), signed_by->intermediates, "Mdm-Signature");
            if (!cred.is_ok()) return cred.status();
            cred->source = "mdm-signature";
            remember(key, *cred);
            if (auto s = agree(*cred); !s.is_ok()) return s;
        }
    }
    if (!cert_header_.empty() && !req.tls) {
        if (const std::string* value = req.header(cert_header_)) {
            // The proxy sends the same value on every request of a device:
            // decoded and verified once (as the TLS certificate is).
            std::string key = "hdr" + digest(*value, "");
            if (auto hit = cached(key)) {
                if (auto s = agree(hit->cred); !s.is_ok()) return s;
            } else {
                auto cert = cert_from_header_value(*value);
                if (!cert.is_ok()) return cert.status();
                auto cred = trusted(std::move(*cert), {}, "certificate header");
                if (!cred.is_ok()) return cred.status();
                cred->source = "cert-header";
                remember(key, *cred);
                if (auto s = agree(*cred); !s.is_ok()) return s;
            }
        }
    }
    if (!found)
        return refuse("no device identity: no TLS client certificate, no Mdm-Signature header" +
                      std::string(cert_header_.empty() || req.tls ? "" : ", no " + cert_header_));
    return std::move(*found);
}

}  // namespace courier::server
