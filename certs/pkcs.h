// PKCS#12 and CMS: identity bundles for profiles, signed profiles, and the
// Mdm-Signature header.
#pragma once

#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "certs/x509.h"

namespace courier::certs {

// PKCS#12 with 3DES/SHA-1 PBE and SHA-1 MAC (iOS refuses OpenSSL 3's default
// AES/PBKDF2).
Result<std::string> make_pkcs12(const Identity& id, const std::string& password,
                                const std::string& friendly_name);
// Reads PKCS#12 (modern or legacy RC2-40 through the legacy provider).
Result<Identity> parse_pkcs12(std::string_view der, const std::string& password);

// CMS SignedData (DER) with the content attached, signed by `signer` and
// carrying its certificate and chain: the signed enrollment profile.
Result<std::string> cms_sign_attached(std::string_view content, const Identity& signer);
// Verifies an attached SignedData's signature (not the chain) and returns its content.
Result<std::string> cms_attached_content(std::string_view der);

// A trust store for device identities: the enrollment CA plus --device-ca.
// add() during setup; verify() may then run on many threads at once.
class TrustStore {
  public:
    TrustStore();
    ~TrustStore();
    TrustStore(TrustStore&&) noexcept;
    TrustStore& operator=(TrustStore&&) noexcept;
    TrustStore(const TrustStore&) = delete;
    TrustStore& operator=(const TrustStore&) = delete;

    Status add(X509* ca);
    Status add_pem_file(const std::string& path);
    // Path validation of cert (with optional intermediates) to a trusted CA at
    // `now`, EKU clientAuth when the certificate has an EKU. kUnauthorized
    // with the reason on failure.
    Status verify(X509* cert, const std::vector<X509Ptr>& intermediates, SysTime now) const;

  private:
    X509_STORE* store_;
};

// Mdm-Signature: base64 DER CMS SignedData, detached, over `body`. Verifies
// the signature and returns the single signer certificate (and any other
// certificates the message carries as intermediates). Chain trust is a
// separate TrustStore::verify. kUnauthorized with the reason on failure.
// Runs on every signed device request; callers may cache results keyed by a
// digest of the header and body.
struct SignedBy {
    X509Ptr signer;
    std::vector<X509Ptr> intermediates;
};

// Certificates decoded once, by their DER bytes. A device signs every message
// with the same identity, and decoding the certificate a SignedData carries
// (OpenSSL 3 builds a key decoder for its public key) costs more than
// checking the signature. Thread-safe. What it keeps arrives before any
// trust check, so it is bounded by bytes: at most `max_bytes` of DER (8 MiB
// by default, ~8,000 device identities); it starts afresh when full, and a
// certificate larger than that is decoded and not kept. A certificate's trust
// is not recorded here.
class CertCache {
  public:
    explicit CertCache(size_t max_bytes = 8u << 20) : max_bytes_(max_bytes) {}
    CertCache(const CertCache&) = delete;
    CertCache& operator=(const CertCache&) = delete;

    // The certificate `der` encodes (a shared reference), decoded on first use.
    Result<X509Ptr> get(std::string_view der);
    size_t decoded() const;  // how many decodes get() has made: for tests
    size_t bytes() const;    // DER bytes kept now

  private:
    size_t max_bytes_;
    mutable std::mutex mu_;
    std::unordered_map<std::string, X509Ptr> certs_;
    size_t bytes_ = 0;
    size_t decoded_ = 0;
};

// With `cache`, the certificates the SignedData carries come from it
// (decoded on first sight) and the SignedData is parsed without them; the
// result is the same as without. A SignedData in a shape the split does not
// take (BER indefinite lengths, attribute certificates, trailing bytes) is
// parsed whole.
Result<SignedBy> verify_mdm_signature(std::string_view header_base64, std::string_view body,
                                      CertCache* cache = nullptr);
// Creates an Mdm-Signature header value (the device side: tests, simulator).
Result<std::string> make_mdm_signature(std::string_view body, const Identity& id);

}  // namespace courier::certs
