// server/device_auth: the credential names its source as the header
// promises ("tls", "mdm-signature", "cert-header").
#include <gtest/gtest.h>

#include "certs/pkcs.h"
#include "common/encoding.h"
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

// RFC 9440's ":base64-DER:" (built with appends: GCC 12's -Wrestrict
// misfires on a chain of + here).
std::string header_value(const certs::Identity& id) {
    std::string v = ":";
    v += base64_encode(certs::cert_to_der(id.cert.get()));
    v += ':';
    return v;
}

server::Request signed_request(const certs::Identity& id, const std::string& body) {
    server::Request req;
    req.method = "PUT";
    req.path = "/mdm";
    req.body = body;
    auto sig = certs::make_mdm_signature(body, id);
    EXPECT_TRUE(sig.is_ok()) << sig.status().to_string();
    if (sig.is_ok()) req.headers.emplace("Mdm-Signature", *sig);
    return req;
}

// Real devices sign every message afresh: the CMS signature is checked on
// each, the certificate's chain once per cache lifetime.
TEST(DeviceAuthenticator, FreshSignaturesFromOneIdentityValidateItsChainOnce) {
    auto ca = test::make_test_ca("Device Auth Test CA");
    certs::TrustStore trust;
    ASSERT_TRUE(trust.add(ca.cert()));
    ManualClock clock(SystemClock::instance().now());
    server::DeviceAuthenticator auth(std::move(trust), "", clock);
    auto id = test::make_device_identity(ca, "UDID-S");
    for (int i = 0; i < 3; ++i) {
        auto cred =
            auth.authenticate(signed_request(id, "<plist>" + std::to_string(i) + "</plist>"));
        ASSERT_TRUE(cred.is_ok()) << cred.status().to_string();
        EXPECT_EQ(cred->source, "mdm-signature");
        EXPECT_EQ(cred->cert_sha256, certs::cert_sha256_hex(id.cert.get()));
    }
    EXPECT_EQ(auth.chain_verifications(), 1u);
    // A signature that does not match its body is still refused.
    auto forged = signed_request(id, "<plist>a</plist>");
    forged.body = "<plist>b</plist>";
    EXPECT_FALSE(auth.authenticate(forged).is_ok());
    // The cached path validation lasts minutes, then is done again...
    clock.advance(std::chrono::minutes(6));
    ASSERT_TRUE(auth.authenticate(signed_request(id, "<plist>later</plist>")).is_ok());
    EXPECT_EQ(auth.chain_verifications(), 2u);
    // ...and never outlives the certificate (2 years).
    clock.advance(std::chrono::hours(24 * 800));
    EXPECT_FALSE(auth.authenticate(signed_request(id, "<plist>expired</plist>")).is_ok());
}

// Only successes are cached: an identity from an unknown CA is refused
// every time, and its chain is checked every time.
TEST(DeviceAuthenticator, AnUntrustedIdentityIsRefusedEveryTime) {
    auto ca = test::make_test_ca("Device Auth Test CA");
    auto other = test::make_test_ca("Somebody Else's CA");
    certs::TrustStore trust;
    ASSERT_TRUE(trust.add(ca.cert()));
    server::DeviceAuthenticator auth(std::move(trust), "X-Client-Cert", SystemClock::instance());
    auto id = test::make_device_identity(other, "UDID-U");
    for (int i = 0; i < 2; ++i)
        EXPECT_FALSE(auth.authenticate(signed_request(id, "<plist/>")).is_ok());
    EXPECT_EQ(auth.chain_verifications(), 2u);
}

// Behind a TLS-terminating proxy the same header value arrives on every
// request of a device: decoded and validated once.
TEST(DeviceAuthenticator, ACertificateHeaderIsValidatedOnce) {
    auto ca = test::make_test_ca("Device Auth Test CA");
    certs::TrustStore trust;
    ASSERT_TRUE(trust.add(ca.cert()));
    server::DeviceAuthenticator auth(std::move(trust), "X-Client-Cert", SystemClock::instance());
    auto id = test::make_device_identity(ca, "UDID-H");
    server::Request req;
    req.method = "PUT";
    req.path = "/mdm";
    req.headers.emplace("X-Client-Cert", header_value(id));
    for (int i = 0; i < 3; ++i) {
        auto cred = auth.authenticate(req);
        ASSERT_TRUE(cred.is_ok()) << cred.status().to_string();
        EXPECT_EQ(cred->source, "cert-header");
    }
    EXPECT_EQ(auth.chain_verifications(), 1u);
    // A header naming an untrusted certificate is still refused.
    auto stranger = test::make_device_identity(test::make_test_ca("Other CA"), "UDID-X");
    req.headers["X-Client-Cert"] = header_value(stranger);
    EXPECT_FALSE(auth.authenticate(req).is_ok());
}

}  // namespace
}  // namespace courier
