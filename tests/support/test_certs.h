// Certificates for tests: Apple-like push certificates, a throwaway CA, and
// device identities issued by it. Everything is generated fresh (RSA 2048).
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

#include "certs/authority.h"
#include "certs/x509.h"
#include "common/clock.h"

namespace courier::test {

struct PemPair {
    std::string cert_pem;
    std::string key_pem;  // PKCS#8, unencrypted
};

// A self-signed certificate shaped like an APNs MDM push certificate (as
// NanoMDM's end-to-end tests make them): subject UID=<topic>,
// CN=APSP:<uuid>, C=US, valid from now+not_before_offset to
// now+not_after_offset. An empty topic leaves the UID out.
PemPair make_push_cert(const std::string& topic,
                       std::chrono::seconds not_before_offset = -std::chrono::hours(1),
                       std::chrono::seconds not_after_offset = std::chrono::days(365));

// The same as an Identity (key, certificate) for PKCS#12 and TLS tests.
certs::Identity make_push_identity(const std::string& topic,
                                   std::chrono::seconds not_before_offset = -std::chrono::hours(1),
                                   std::chrono::seconds not_after_offset = std::chrono::days(365));

// An in-memory CA; aborts the test binary if OpenSSL fails.
certs::CertificateAuthority make_test_ca(const std::string& common_name = "Courier Test CA");

// A device identity (CN = udid, EKU clientAuth, 2 years) issued by `ca`,
// chain = [ca]. `now` moves the validity window (expired identities).
certs::Identity make_device_identity(const certs::CertificateAuthority& ca, const std::string& udid,
                                     SysTime now = SystemClock::instance().now());

// Writes `content` to a new file in a fresh temporary directory (0700) and
// returns its path, named `name`. The caller removes it if it cares.
std::filesystem::path write_temp_file(std::string_view content, const std::string& name = "file");

}  // namespace courier::test
