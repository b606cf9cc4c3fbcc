// server/device_auth: the credential names its source as the header
// promises ("tls", "mdm-signature", "cert-header").
#include <gtest/gtest.h>

#include "certs/pkcs.h"
#include "server/device/device_auth.h"
#include "tests/support/test_certs.h"

namespace courier {
namespace {

TEST(DeviceAuthenticator, ATlsClientCertificateIsSourceTls) {
    auto ca = test::make_test_ca("Device Auth Test CA");
    certs::TrustStore trust;
    ASSERT_TRUE(trust.add(ca.cert()));
    server::DeviceAuthenticator auth(std::move(trust), "", SystemClock::instance());
    auto id = test::make_device_identity(ca, "UDID-T");
    server::Request req;
    req.method = "PUT";
    req.path = "/mdm";
    req.tls = true;
    req.client_cert_der = certs::cert_to_der(id.cert.get());
    for (int i = 0; i < 2; ++i) {  // verified, then from the cache
        auto cred = auth.authenticate(req);
        ASSERT_TRUE(cred.is_ok()) << cred.status().to_string();
        EXPECT_EQ(cred->source, "tls");
        EXPECT_EQ(cred->cert_sha256, certs::cert_sha256_hex(id.cert.get()));
    }
}

}  // namespace
}  // namespace courier
