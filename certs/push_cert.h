// APNs push certificates: import, inspection, and CSRs for renewal.
#pragma once

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

struct CsrFiles {
    std::string key_pem;  // new RSA 2048 key
    std::string csr_pem;
};
// A CSR for the push certificate portal (subject CN given, e.g. "Courier Push").
Result<CsrFiles> make_push_csr(const std::string& common_name, const std::string& email);

}  // namespace courier::certs
