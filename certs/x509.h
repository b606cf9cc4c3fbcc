// Small RAII layer over OpenSSL for Courier's certificate work. Everything
// returns Status/Result; OpenSSL's error queue is drained into messages.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace courier::certs {

struct X509Free {
    void operator()(X509* p) const { X509_free(p); }
};
struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct BioFree {
    void operator()(BIO* p) const { BIO_free_all(p); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

// A read-only memory BIO over `bytes` (no copy; `bytes` must outlive it).
BioPtr mem_bio(std::string_view bytes);
// Everything written to a memory BIO.
std::string bio_contents(BIO* bio);

// Shared ownership (X509_up_ref) for caches and identities.
X509Ptr share(X509* cert);
PkeyPtr share(EVP_PKEY* key);

// The last OpenSSL errors as one line, and clears the queue.
std::string openssl_error();

Result<X509Ptr> cert_from_pem(std::string_view pem);
Result<std::vector<X509Ptr>> certs_from_pem(std::string_view pem);  // all certificates in it
Result<X509Ptr> cert_from_der(std::string_view der);
// Unencrypted PEM key: PKCS#1 ("RSA PRIVATE KEY"), SEC1 ("EC PRIVATE KEY") or
// PKCS#8 ("PRIVATE KEY"). An encrypted key is kInvalid saying so.
Result<PkeyPtr> key_from_pem(std::string_view pem);

// One "-----BEGIN <label>----- ... -----END <label>-----" block of a PEM text.
struct PemBlock {
    std::string label;       // "CERTIFICATE", "RSA PRIVATE KEY", "PRIVATE KEY", ...
    std::string_view text;   // the whole block, BEGIN to END line
    bool encrypted = false;  // "ENCRYPTED PRIVATE KEY" or a Proc-Type: 4,ENCRYPTED header
};
// The blocks of `pem` in order; text outside blocks is ignored.
std::vector<PemBlock> pem_blocks(std::string_view pem);
inline bool is_private_key_label(std::string_view label) {
    return label.ends_with("PRIVATE KEY");
}

std::string cert_to_pem(X509* cert);
std::string cert_to_der(X509* cert);
std::string key_to_pem(EVP_PKEY* key);  // PKCS#8, unencrypted

std::string sha1_hex(std::string_view bytes);
std::string sha256_hex(std::string_view bytes);
std::string cert_sha1_hex(X509* cert);    // thumbprint of the DER
std::string cert_sha256_hex(X509* cert);  // binding key of device identities

SysTime not_before(X509* cert);
SysTime not_after(X509* cert);
SysTime from_asn1_time(const ASN1_TIME* t);
// Subject attribute by OID or short name ("UID", "CN"); empty when absent.
std::string subject_attribute(X509* cert, const char* name);
std::string subject_string(X509* cert);  // one line, RFC 2253
bool key_matches(X509* cert, EVP_PKEY* key);
// Subject Alternative Names of type DNS and IP (IPs as text).
std::vector<std::string> subject_alt_names(X509* cert);

// New keys. RSA 2048 by default; P-256 where noted by callers.
Result<PkeyPtr> generate_rsa_key(int bits = 2048);
Result<PkeyPtr> generate_ec_key();

// A key and its certificate (plus chain certificates, leaf's issuer first).
struct Identity {
    PkeyPtr key;
    X509Ptr cert;
    std::vector<X509Ptr> chain;
};

}  // namespace courier::certs
