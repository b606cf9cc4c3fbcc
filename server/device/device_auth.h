// Who is this device? Finds the identity certificate of a device request and
// checks that it chains to a trusted CA (docs/device-endpoints.md).
//
// Sources: the TLS client certificate, the Mdm-Signature header (detached CMS
// over the exact body), and — on the plain-HTTP listener only — the
// --cert-header set by a TLS-terminating proxy. When several are present they
// must name the same certificate. Every failure is kUnauthorized with the
// reason; the caller answers 400 (never 401: that unenrolls the device).
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "certs/pkcs.h"
#include "certs/x509.h"
#include "common/clock.h"
#include "server/http/http.h"

namespace courier::server {

struct DeviceCredential {
    std::string cert_sha256;  // binding key (hex SHA-256 of the DER)
    SysTime not_after{};
    std::string source;  // "tls", "mdm-signature", "cert-header"
    // Issued by the built-in enrollment CA (/enroll), not by a --device-ca.
    bool enrollment_ca = false;
};

class DeviceAuthenticator {
  public:
    // cert_header: header name, empty when --cert-header is off.
    DeviceAuthenticator(certs::TrustStore trust, std::string cert_header, const Clock& clock);

    Result<DeviceCredential> authenticate(const Request& req);
    // The built-in enrollment CA, to tell its identities (enrollment_ca)
    // from --device-ca ones. Set once during setup, before requests.
    void set_enrollment_ca(X509* ca);
    // How many certificates were path-validated (each certificate once per
    // cache lifetime, however many messages it signs): for tests.
    size_t chain_verifications() const { return chain_verifications_.load(); }

  private:
    struct Verified {
        DeviceCredential cred;
        SysTime checked_at{};
    };
    Result<DeviceCredential> trusted(certs::X509Ptr cert,
                                     const std::vector<certs::X509Ptr>& intermediates,
                                     const std::string& source);
    std::optional<Verified> cached(const std::string& key);
    void remember(const std::string& key, const DeviceCredential& cred);

    certs::TrustStore trust_;
    certs::PkeyPtr enrollment_ca_key_;
    std::string cert_header_;
    const Clock& clock_;
    std::atomic<size_t> chain_verifications_{0};
    std::mutex mu_;
    // Verification results by digest of (signature, body), of the TLS
    // certificate or of the certificate header's value ("sig", "tls", "hdr"),
    // and path validation by certificate ("crt"): devices send the same Idle
    // body with the same signature again and again, and a freshly signed
    // message needs only its CMS signature checked. Every entry lives at most
    // kCacheTtl and never past the certificate's notAfter.
    std::unordered_map<std::string, Verified> cache_;
    std::unordered_map<std::string, Verified> cert_cache_;  // "crt" keys
    // The certificates Mdm-Signatures carry, decoded once each: a freshly
    // signed message then costs its signature check, not a certificate parse.
    certs::CertCache signer_certs_;
};

// Decodes a --cert-header value: RFC 9440 ":base64-DER:" or URL-escaped PEM.
Result<certs::X509Ptr> cert_from_header_value(std::string_view value);

}  // namespace courier::server
