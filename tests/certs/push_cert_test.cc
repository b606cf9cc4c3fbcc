// certs/push_cert: importing APNs push certificates (PEM or PKCS#12), CSRs,
// and the vendor-signed request for Apple's portal.
#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <fstream>
#include <pugixml.hpp>
#include <sstream>

#include "certs/pkcs.h"
#include "certs/push_cert.h"
#include "certs/x509.h"
#include "common/encoding.h"
#include "tests/support/test_certs.h"

namespace courier::certs {
namespace {

using namespace std::chrono_literals;

constexpr char kNanoTopic[] = "com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9";
constexpr char kTopic[] = "com.apple.mgmt.External.5e3b6a4f-1b0a-4f7e-9c39-2f7d0b2a9c11";

SysTime now() {
    return SystemClock::instance().now();
}

X509Ptr fixture_cert(const std::string& relative) {
    std::ifstream in(std::string(COURIER_FIXTURES_DIR) + "/" + relative, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    auto cert = cert_from_pem(ss.str());
    EXPECT_TRUE(cert) << relative << ": " << cert.status().to_string();
    return cert ? std::move(cert).value() : nullptr;
}

std::string pkcs1_pem(const std::string& pkcs8_pem) {
    auto key = key_from_pem(pkcs8_pem);
    EXPECT_TRUE(key);
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_PrivateKey_traditional(bio.get(), key->get(), nullptr, nullptr, 0, nullptr,
                                         nullptr);
    return bio_contents(bio.get());
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

// --- fixtures --------------------------------------------------------------

TEST(PushCertFixtures, NanoMdmPushPemHasItsTopicThumbprintAndIsExpired) {
    X509Ptr cert = fixture_cert("nanomdm/test/e2e/testdata/push.pem");
    ASSERT_TRUE(cert);
    auto topic = push_topic(cert.get());
    ASSERT_TRUE(topic) << topic.status().to_string();
    EXPECT_EQ(*topic, kNanoTopic);
    EXPECT_EQ(cert_sha1_hex(cert.get()), "d00cb3c5932b4f41b053600879252322a22c13cf");
    EXPECT_LT(not_after(cert.get()), now());
    EXPECT_EQ(format_rfc3339(not_after(cert.get())), "2022-02-10T17:44:47Z");
}

TEST(PushCertFixtures, MicroMdmMockPushCertHasItsTopic) {
    X509Ptr cert = fixture_cert("micromdm/pkg/crypto/testdata/mock_push_cert.pem");
    ASSERT_TRUE(cert);
    auto topic = push_topic(cert.get());
    ASSERT_TRUE(topic);
    EXPECT_EQ(*topic, "com.apple.mgmt.External.18a16429-886b-41f1-9c30-2bd04ae4fc37");
}

TEST(PushCertFixtures, CertificateWithoutUidIsRefused) {
    X509Ptr cert = fixture_cert("micromdm/pkg/crypto/testdata/mock_push_cert_no_uid.pem");
    ASSERT_TRUE(cert);
    auto topic = push_topic(cert.get());
    ASSERT_FALSE(topic);
    EXPECT_EQ(topic.status().code(), Code::kInvalid);
    EXPECT_TRUE(contains(topic.status().message(), "UID"));
}

TEST(PushCertFixtures, TopicWithWrongPrefixIsRefused) {
    X509Ptr cert = fixture_cert("micromdm/pkg/crypto/testdata/mock_push_cert_wrong_uid_prefix.pem");
    ASSERT_TRUE(cert);
    auto topic = push_topic(cert.get());
    ASSERT_FALSE(topic);
    EXPECT_TRUE(contains(topic.status().message(), "com.apple.mgmt."));
}

// --- parse_push_cert -------------------------------------------------------

TEST(ParsePushCert, PemCertificateThenPkcs1Key) {
    test::PemPair pair = test::make_push_cert(kTopic);
    std::string body = pair.cert_pem + pkcs1_pem(pair.key_pem);
    ASSERT_TRUE(contains(body, "BEGIN RSA PRIVATE KEY"));
    auto parsed = parse_push_cert(body, "", now());
    ASSERT_TRUE(parsed) << parsed.status().to_string();
    EXPECT_EQ(parsed->topic, kTopic);
    auto cert = cert_from_pem(pair.cert_pem);
    ASSERT_TRUE(cert);
    EXPECT_EQ(parsed->thumbprint_sha1, cert_sha1_hex(cert->get()));
    EXPECT_EQ(parsed->thumbprint_sha1.size(), 40u);
    EXPECT_EQ(parsed->thumbprint_sha1.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_EQ(parsed->not_before, not_before(cert->get()));
    EXPECT_EQ(parsed->not_after, not_after(cert->get()));
    EXPECT_EQ(parsed->cert_pem, pair.cert_pem);
    EXPECT_TRUE(contains(parsed->key_pem, "BEGIN PRIVATE KEY"));
}

TEST(ParsePushCert, PemCertificateThenPkcs8Key) {
    test::PemPair pair = test::make_push_cert(kTopic);
    auto parsed = parse_push_cert(pair.cert_pem + pair.key_pem, "", now());
    ASSERT_TRUE(parsed) << parsed.status().to_string();
    EXPECT_EQ(parsed->topic, kTopic);
}

TEST(ParsePushCert, PemKeyBeforeCertificate) {
    test::PemPair pair = test::make_push_cert(kTopic);
    auto parsed = parse_push_cert(pair.key_pem + "\n" + pair.cert_pem, "", now());
    ASSERT_TRUE(parsed) << parsed.status().to_string();
    EXPECT_EQ(parsed->topic, kTopic);
}

TEST(ParsePushCert, Pkcs12WithPassword) {
    Identity id = test::make_push_identity(kTopic);
    auto p12 = make_pkcs12(id, "s3cret", "push");
    ASSERT_TRUE(p12);
    auto parsed = parse_push_cert(*p12, "s3cret", now());
    ASSERT_TRUE(parsed) << parsed.status().to_string();
    EXPECT_EQ(parsed->topic, kTopic);
    EXPECT_EQ(parsed->thumbprint_sha1, cert_sha1_hex(id.cert.get()));
}

TEST(ParsePushCert, Pkcs12WithWrongPasswordIsRefused) {
    auto p12 = make_pkcs12(test::make_push_identity(kTopic), "s3cret", "push");
    ASSERT_TRUE(p12);
    auto parsed = parse_push_cert(*p12, "guess", now());
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.status().code(), Code::kInvalid);
    EXPECT_TRUE(contains(parsed.status().message(), "password"));
}

TEST(ParsePushCert, KeyOfAnotherCertificateIsRefused) {
    test::PemPair a = test::make_push_cert(kTopic);
    test::PemPair b = test::make_push_cert(kTopic);
    auto parsed = parse_push_cert(a.cert_pem + b.key_pem, "", now());
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.status().code(), Code::kInvalid);
    EXPECT_EQ(parsed.status().message(), "the private key does not match the certificate");
}

TEST(ParsePushCert, ExpiredCertificateIsRefusedWithItsDates) {
    test::PemPair pair =
        test::make_push_cert(kTopic, -std::chrono::days(400), -std::chrono::days(35));
    auto cert = cert_from_pem(pair.cert_pem);
    ASSERT_TRUE(cert);
    auto parsed = parse_push_cert(pair.cert_pem + pair.key_pem, "", now());
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.status().code(), Code::kInvalid);
    EXPECT_TRUE(contains(parsed.status().message(), "expired"));
    EXPECT_TRUE(contains(parsed.status().message(), format_rfc3339(not_after(cert->get()))));
}

TEST(ParsePushCert, NotYetValidCertificateIsRefusedWithItsDates) {
    test::PemPair pair = test::make_push_cert(kTopic, std::chrono::days(2), std::chrono::days(367));
    auto cert = cert_from_pem(pair.cert_pem);
    ASSERT_TRUE(cert);
    auto parsed = parse_push_cert(pair.cert_pem + pair.key_pem, "", now());
    ASSERT_FALSE(parsed);
    EXPECT_TRUE(contains(parsed.status().message(), "not valid until"));
    EXPECT_TRUE(contains(parsed.status().message(), format_rfc3339(not_before(cert->get()))));
}

TEST(ParsePushCert, EncryptedKeyIsRefusedSayingSo) {
    test::PemPair pair = test::make_push_cert(kTopic);
    auto key = key_from_pem(pair.key_pem);
    ASSERT_TRUE(key);
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_PKCS8PrivateKey(bio.get(), key->get(), EVP_aes_256_cbc(), nullptr, 0, nullptr,
                                  const_cast<char*>("pw"));
    auto parsed = parse_push_cert(pair.cert_pem + bio_contents(bio.get()), "", now());
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.status().message(), "the private key is encrypted; upload it unencrypted");
}

TEST(ParsePushCert, CertificateWithoutKeyIsRefused) {
    test::PemPair pair = test::make_push_cert(kTopic);
    auto parsed = parse_push_cert(pair.cert_pem, "", now());
    ASSERT_FALSE(parsed);
    EXPECT_TRUE(contains(parsed.status().message(), "no private key"));
}

TEST(ParsePushCert, CertificateWithoutTopicIsRefused) {
    test::PemPair pair = test::make_push_cert("");
    auto parsed = parse_push_cert(pair.cert_pem + pair.key_pem, "", now());
    ASSERT_FALSE(parsed);
    EXPECT_TRUE(contains(parsed.status().message(), "UID"));
}

TEST(ParsePushCert, BytesThatAreNeitherPemNorPkcs12AreRefused) {
    auto parsed = parse_push_cert("hello, this is not a certificate", "", now());
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.status().code(), Code::kInvalid);
}

// --- CSR and vendor request ------------------------------------------------

TEST(PushCsr, CsrIsSignedByItsKeyAndNamesTheSubject) {
    auto files = make_push_csr("Courier Push", "admin@example.com");
    ASSERT_TRUE(files) << files.status().to_string();
    BioPtr bio = mem_bio(files->csr_pem);
    std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(
        PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr), X509_REQ_free);
    ASSERT_TRUE(req);
    auto key = key_from_pem(files->key_pem);
    ASSERT_TRUE(key);
    EXPECT_EQ(EVP_PKEY_eq(X509_REQ_get0_pubkey(req.get()), key->get()), 1);
    EXPECT_EQ(X509_REQ_verify(req.get(), key->get()), 1);
    EXPECT_EQ(EVP_PKEY_get_bits(key->get()), 2048);
    char cn[64] = {};
    X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req.get()), NID_commonName, cn, sizeof cn);
    EXPECT_STREQ(cn, "Courier Push");
}

std::string plist_string(const pugi::xml_document& doc, const char* key) {
    for (pugi::xml_node k : doc.child("plist").child("dict").children("key")) {
        if (std::string_view(k.text().get()) == key) return k.next_sibling("string").text().get();
    }
    return {};
}

TEST(VendorRequest, DecodesToAPlistWithCsrChainAndVerifiableSignature) {
    auto csr = make_push_csr("Courier Push", "");
    ASSERT_TRUE(csr);
    auto ca = test::make_test_ca("Apple Stand-in Root");
    Identity vendor = test::make_device_identity(ca, "MDM Vendor");
    std::string vendor_pem = cert_to_pem(vendor.cert.get());
    std::string apple_pem = cert_to_pem(ca.cert());

    auto request = make_vendor_signed_request(csr->csr_pem, vendor_pem,
                                              key_to_pem(vendor.key.get()), apple_pem);
    ASSERT_TRUE(request) << request.status().to_string();
    auto xml = base64_decode(*request);
    ASSERT_TRUE(xml);
    pugi::xml_document doc;
    ASSERT_TRUE(doc.load_string(xml->c_str()));

    EXPECT_EQ(plist_string(doc, "PushCertCertificateChain"), vendor_pem + apple_pem);
    auto csr_der = base64_decode(plist_string(doc, "PushCertRequestCSR"));
    ASSERT_TRUE(csr_der);
    BioPtr bio = mem_bio(csr->csr_pem);
    std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(
        PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr), X509_REQ_free);
    ASSERT_TRUE(req);
    unsigned char* der = nullptr;
    int n = i2d_X509_REQ(req.get(), &der);
    EXPECT_EQ(*csr_der, std::string(reinterpret_cast<char*>(der), static_cast<size_t>(n)));
    OPENSSL_free(der);

    auto sig = base64_decode(plist_string(doc, "PushCertSignature"));
    ASSERT_TRUE(sig);
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    ASSERT_EQ(EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                                   X509_get0_pubkey(vendor.cert.get())),
              1);
    EXPECT_EQ(EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig->data()),
                               sig->size(), reinterpret_cast<const unsigned char*>(csr_der->data()),
                               csr_der->size()),
              1);
}

TEST(VendorRequest, VendorKeyNotMatchingItsCertificateIsRefused) {
    auto csr = make_push_csr("Courier Push", "");
    ASSERT_TRUE(csr);
    test::PemPair a = test::make_push_cert(kTopic), b = test::make_push_cert(kTopic);
    auto request = make_vendor_signed_request(csr->csr_pem, a.cert_pem, b.key_pem);
    ASSERT_FALSE(request);
    EXPECT_EQ(request.status().code(), Code::kInvalid);
}

}  // namespace
}  // namespace courier::certs
