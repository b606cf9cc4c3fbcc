// APNs push certificates: import, inspection, and CSRs for renewal.
#pragma once

#include <chrono>
#include <string>

#include "certs/x509.h"

namespace courier::certs {

struct ParsedPushCert {
    std::string topic;            // subject UID, starts with "com.apple.mgmt."
    std::string cert_pem;         // leaf certificate
    std::string key_pem;          // PKCS#8, unencrypted
    std::string thumbprint_sha1;  // 40 lowercase hex
    SysTime not_before{}, not_after{};
};

// Reads an uploaded push certificate. The format is detected from the bytes:
// PEM (certificate + unencrypted key, PKCS#1 or PKCS#8, in any order) or
// PKCS#12 DER (with `password`). kInvalid with a message for: no
// certificate, no key, encrypted key, key not matching, no UID, UID not
// starting with com.apple.mgmt., expired or not yet valid at `now`.
Result<ParsedPushCert> parse_push_cert(std::string_view body, const std::string& password,
                                       SysTime now);

// A topic read from a certificate alone (fixtures, diagnostics).
Result<std::string> push_topic(X509* cert);

// A self-signed certificate shaped like an APNs MDM push certificate:
// subject UID=<topic> (left out when empty), CN=APSP:<uuid>, C=US, RSA 2048,
// valid from now+not_before_offset to now+not_after_offset. Apple never
// issues these: they are for the fake APNs, the simulator and tests.
Result<Identity> make_self_signed_push_identity(const std::string& topic,
                                                std::chrono::seconds not_before_offset,
                                                std::chrono::seconds not_after_offset);

struct CsrFiles {
    std::string key_pem;  // new RSA 2048 key
    std::string csr_pem;
};
// A CSR for the push certificate portal (subject CN given, e.g. "Courier Push").
Result<CsrFiles> make_push_csr(const std::string& common_name, const std::string& email);

// The request Apple's push certificate portal takes from an MDM vendor: a
// base64-encoded XML plist with PushCertRequestCSR (base64 CSR DER),
// PushCertCertificateChain (vendor certificate PEM, then `apple_chain_pem`,
// the Apple intermediate and root PEMs, as given) and PushCertSignature
// (base64 RSA PKCS#1 v1.5 SHA-256 signature of the CSR DER by the vendor
// key). The CSR may be PEM or DER; the vendor key must match the first
// certificate of `vendor_cert_pem`.
Result<std::string> make_vendor_signed_request(std::string_view csr_der_or_pem,
                                               std::string_view vendor_cert_pem,
                                               std::string_view vendor_key_pem,
                                               std::string_view apple_chain_pem = {});

}  // namespace courier::certs
