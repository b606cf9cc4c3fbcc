// Certificates Courier makes for itself (Settled details, "certificates
// Courier makes"): a local CA behind the generated server TLS identity, the
// enrollment CA that signs device identities, and the server leaf.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "certs/x509.h"

namespace courier::certs {

struct IssueOptions {
    // Default member initializers keep designated initialization
    // ({.common_name = "x"}) free of -Wmissing-field-initializers.
    std::string common_name{};
    int days = 730;
    std::vector<std::string> dns_names{};  // SAN
    std::vector<std::string> ip_addresses{};
    bool server_auth = false;  // EKU serverAuth (else clientAuth)
    bool ec_key = false;       // P-256 instead of RSA 2048 (fast to make: the simulator)
    // Validity starts here (minus a few minutes for clock skew, counted in
    // `days`); default: the system clock.
    std::optional<SysTime> now{};
};

class CertificateAuthority {
  public:
    // Loads <dir>/<name>.crt and <name>.key, or creates a 10-year CA with the
    // given common name and writes them (key 0600).
    static Result<CertificateAuthority> load_or_create(const std::filesystem::path& dir,
                                                       const std::string& name,
                                                       const std::string& common_name);
    // A CA kept in memory only (tests).
    static Result<CertificateAuthority> create(const std::string& common_name, int days = 3650);

    // A new key + certificate signed by this CA.
    Result<Identity> issue(const IssueOptions& opts) const;

    X509* cert() const { return cert_.get(); }
    EVP_PKEY* key() const { return key_.get(); }
    Identity identity() const;

  private:
    CertificateAuthority(PkeyPtr key, X509Ptr cert)
        : key_(std::move(key)), cert_(std::move(cert)) {}
    PkeyPtr key_;
    X509Ptr cert_;
};

struct ServerTlsFiles {
    std::filesystem::path cert_chain_pem;  // leaf + CA
    std::filesystem::path key_pem;
    std::filesystem::path ca_pem;  // the local CA (for the profile's root payload and clients)
    bool generated = false;
};

// Ensures <data_dir>/tls/{ca.crt,ca.key,server.crt,server.key}: creates the
// local CA and a leaf (≤ 825 days, SAN host names + localhost + 127.0.0.1,
// EKU serverAuth) when missing, and renews the leaf 30 days before expiry.
Result<ServerTlsFiles> ensure_server_tls(const std::filesystem::path& data_dir,
                                         const std::vector<std::string>& host_names, SysTime now);

}  // namespace courier::certs
