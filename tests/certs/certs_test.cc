// certs/: the local CA, server TLS files, PKCS#12, CMS and device trust.
#include <gtest/gtest.h>
#include <openssl/cms.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "certs/authority.h"
#include "certs/pkcs.h"
#include "certs/x509.h"
#include "common/encoding.h"
#include "common/file_io.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"

namespace courier::certs {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace std::string_literals;

SysTime now() {
    return SystemClock::instance().now();
}

unsigned mode_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 0777;
}

std::string slurp(const fs::path& p) {
    auto r = read_file(p);
    return r ? *r : std::string();
}

bool has_eku(X509* cert, uint32_t xku) {
    return (X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) &&
           (X509_get_extended_key_usage(cert) & xku);
}

bool signed_by(X509* cert, X509* issuer) {
    return X509_verify(cert, X509_get0_pubkey(issuer)) == 1;
}

// --- CertificateAuthority --------------------------------------------------

TEST(CertificateAuthority, LoadOrCreateWritesCaWithPrivateKeyMode0600) {
    TempDir dir;
    auto ca = CertificateAuthority::load_or_create(dir.path(), "enroll", "Enrollment CA");
    ASSERT_TRUE(ca) << ca.status().to_string();
    EXPECT_EQ(mode_of(dir.path() / "enroll.key"), 0600u);
    EXPECT_EQ(subject_attribute(ca->cert(), "CN"), "Enrollment CA");
    EXPECT_GE(X509_check_ca(ca->cert()), 1);
    auto lifetime = not_after(ca->cert()) - not_before(ca->cert());
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::days>(lifetime).count(), 3650);
}

TEST(CertificateAuthority, LoadOrCreateReloadsTheSameCa) {
    TempDir dir;
    auto first = CertificateAuthority::load_or_create(dir.path(), "ca", "CA");
    ASSERT_TRUE(first);
    auto second = CertificateAuthority::load_or_create(dir.path(), "ca", "ignored");
    ASSERT_TRUE(second) << second.status().to_string();
    EXPECT_EQ(cert_sha256_hex(first->cert()), cert_sha256_hex(second->cert()));
    EXPECT_TRUE(key_matches(second->cert(), first->key()));
}

TEST(CertificateAuthority, LoadOrCreateRefusesWhenTheKeyIsMissing) {
    TempDir dir;
    ASSERT_TRUE(CertificateAuthority::load_or_create(dir.path(), "ca", "CA"));
    fs::remove(dir.path() / "ca.key");
    auto again = CertificateAuthority::load_or_create(dir.path(), "ca", "CA");
    EXPECT_FALSE(again);
    EXPECT_FALSE(fs::exists(dir.path() / "ca.key"));
}

TEST(CertificateAuthority, IssuesServerCertificateWithSansAndServerAuth) {
    auto ca = test::make_test_ca();
    IssueOptions opts{.common_name = "mdm.example.com",
                      .days = 825,
                      .dns_names = {"mdm.example.com", "localhost"},
                      .ip_addresses = {"127.0.0.1", "::1"},
                      .server_auth = true};
    auto id = ca.issue(opts);
    ASSERT_TRUE(id) << id.status().to_string();
    X509* c = id->cert.get();
    EXPECT_EQ(subject_alt_names(c),
              (std::vector<std::string>{"mdm.example.com", "localhost", "127.0.0.1", "::1"}));
    EXPECT_TRUE(has_eku(c, XKU_SSL_SERVER));
    EXPECT_FALSE(has_eku(c, XKU_SSL_CLIENT));
    EXPECT_EQ(X509_check_ca(c), 0);
    EXPECT_TRUE(signed_by(c, ca.cert()));
    EXPECT_TRUE(key_matches(c, id->key.get()));
    ASSERT_EQ(id->chain.size(), 1u);
    EXPECT_EQ(X509_cmp(id->chain[0].get(), ca.cert()), 0);
    EXPECT_LE(not_after(c) - not_before(c), std::chrono::days(825));
}

TEST(CertificateAuthority, IssuesClientCertificateWithClientAuthAndKeyIds) {
    auto ca = test::make_test_ca();
    auto id = ca.issue({.common_name = "device"});
    ASSERT_TRUE(id);
    X509* c = id->cert.get();
    EXPECT_TRUE(has_eku(c, XKU_SSL_CLIENT));
    EXPECT_FALSE(has_eku(c, XKU_SSL_SERVER));
    const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(c);
    const ASN1_OCTET_STRING* ca_ski = X509_get0_subject_key_id(ca.cert());
    ASSERT_NE(aki, nullptr);
    ASSERT_NE(ca_ski, nullptr);
    EXPECT_EQ(ASN1_OCTET_STRING_cmp(aki, ca_ski), 0);
    EXPECT_NE(X509_get0_subject_key_id(c), nullptr);
}

TEST(CertificateAuthority, IssuesDistinctRandomSerials) {
    auto ca = test::make_test_ca();
    auto a = ca.issue({.common_name = "a"});
    auto b = ca.issue({.common_name = "b"});
    ASSERT_TRUE(a && b);
    EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(a->cert.get()),
                               X509_get0_serialNumber(b->cert.get())),
              0);
}

// --- ensure_server_tls -----------------------------------------------------

TEST(ServerTls, CreatesDataDirCaAndLeafWithPrivateModes) {
    TempDir dir;
    fs::path data = dir.path() / "data";
    auto files = ensure_server_tls(data, {"mdm.example.com", "10.1.2.3"}, now());
    ASSERT_TRUE(files) << files.status().to_string();
    EXPECT_TRUE(files->generated);
    EXPECT_EQ(mode_of(data), 0700u);
    EXPECT_EQ(mode_of(data / "tls" / "ca.key"), 0600u);
    EXPECT_EQ(mode_of(files->key_pem), 0600u);
    EXPECT_EQ(files->ca_pem, data / "tls" / "ca.crt");

    auto chain = certs_from_pem(slurp(files->cert_chain_pem));
    ASSERT_TRUE(chain);
    ASSERT_EQ(chain->size(), 2u);
    X509* leaf = (*chain)[0].get();
    auto ca = cert_from_pem(slurp(files->ca_pem));
    ASSERT_TRUE(ca);
    EXPECT_EQ(X509_cmp((*chain)[1].get(), ca->get()), 0);
    EXPECT_TRUE(signed_by(leaf, ca->get()));
    EXPECT_EQ(subject_alt_names(leaf),
              (std::vector<std::string>{"mdm.example.com", "localhost", "10.1.2.3", "127.0.0.1"}));
    EXPECT_TRUE(has_eku(leaf, XKU_SSL_SERVER));
    EXPECT_LE(not_after(leaf) - not_before(leaf), std::chrono::days(825));
    EXPECT_GE(not_after(ca->get()) - not_before(ca->get()), std::chrono::days(3650));
    auto key = key_from_pem(slurp(files->key_pem));
    ASSERT_TRUE(key);
    EXPECT_TRUE(key_matches(leaf, key->get()));
}

TEST(ServerTls, ReusesAValidLeaf) {
    TempDir dir;
    ASSERT_TRUE(ensure_server_tls(dir.path(), {"mdm.example.com"}, now()));
    std::string before = slurp(dir.path() / "tls" / "server.crt");
    auto again = ensure_server_tls(dir.path(), {"mdm.example.com"}, now() + std::chrono::days(1));
    ASSERT_TRUE(again);
    EXPECT_FALSE(again->generated);
    EXPECT_EQ(slurp(again->cert_chain_pem), before);
}

TEST(ServerTls, RenewsTheLeafWithin30DaysOfExpiryKeepingTheCa) {
    TempDir dir;
    ASSERT_TRUE(ensure_server_tls(dir.path(), {"mdm.example.com"}, now()));
    std::string ca_before = slurp(dir.path() / "tls" / "ca.crt");
    auto old_leaf = cert_from_pem(slurp(dir.path() / "tls" / "server.crt"));
    ASSERT_TRUE(old_leaf);

    SysTime later = not_after(old_leaf->get()) - std::chrono::days(29);
    auto renewed = ensure_server_tls(dir.path(), {"mdm.example.com"}, later);
    ASSERT_TRUE(renewed);
    EXPECT_TRUE(renewed->generated);
    auto new_leaf = cert_from_pem(slurp(renewed->cert_chain_pem));
    ASSERT_TRUE(new_leaf);
    EXPECT_GT(not_after(new_leaf->get()), later + std::chrono::days(800));
    EXPECT_EQ(slurp(renewed->ca_pem), ca_before);
}

TEST(ServerTls, ReissuesTheLeafWhenHostNamesChange) {
    TempDir dir;
    ASSERT_TRUE(ensure_server_tls(dir.path(), {"old.example.com"}, now()));
    auto files = ensure_server_tls(dir.path(), {"new.example.com"}, now());
    ASSERT_TRUE(files);
    EXPECT_TRUE(files->generated);
    auto leaf = cert_from_pem(slurp(files->cert_chain_pem));
    ASSERT_TRUE(leaf);
    EXPECT_EQ(subject_alt_names(leaf->get()).front(), "new.example.com");
}

// --- keys ------------------------------------------------------------------

TEST(Keys, EncryptedPemKeyIsRefusedSayingSo) {
    auto key = generate_rsa_key();
    ASSERT_TRUE(key);
    BioPtr bio(BIO_new(BIO_s_mem()));
    ASSERT_EQ(PEM_write_bio_PrivateKey(bio.get(), key->get(), EVP_aes_128_cbc(), nullptr, 0,
                                       nullptr, const_cast<char*>("secret")),
              1);
    auto parsed = key_from_pem(bio_contents(bio.get()));
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.status().code(), Code::kInvalid);
    EXPECT_EQ(parsed.status().message(), "the private key is encrypted; upload it unencrypted");
}

TEST(Keys, EcKeyRoundTripsThroughPem) {
    auto key = generate_ec_key();
    ASSERT_TRUE(key);
    auto back = key_from_pem(key_to_pem(key->get()));
    ASSERT_TRUE(back);
    EXPECT_EQ(EVP_PKEY_eq(key->get(), back->get()), 1);
}

// --- PKCS#12 -----------------------------------------------------------------

TEST(Pkcs12, RoundTripsKeyCertificateAndChain) {
    auto ca = test::make_test_ca();
    Identity id = test::make_device_identity(ca, "UDID-1");
    auto p12 = make_pkcs12(id, "pw", "Device");
    ASSERT_TRUE(p12) << p12.status().to_string();
    auto back = parse_pkcs12(*p12, "pw");
    ASSERT_TRUE(back) << back.status().to_string();
    EXPECT_EQ(X509_cmp(back->cert.get(), id.cert.get()), 0);
    EXPECT_TRUE(key_matches(back->cert.get(), back->key.get()));
    ASSERT_EQ(back->chain.size(), 1u);
    EXPECT_EQ(X509_cmp(back->chain[0].get(), ca.cert()), 0);
}

TEST(Pkcs12, UsesTripleDesPbeAndSha1Mac) {
    auto ca = test::make_test_ca();
    auto p12der = make_pkcs12(test::make_device_identity(ca, "UDID-2"), "pw", "Device");
    ASSERT_TRUE(p12der);
    auto* p = reinterpret_cast<const unsigned char*>(p12der->data());
    std::unique_ptr<PKCS12, decltype(&PKCS12_free)> p12(
        d2i_PKCS12(nullptr, &p, static_cast<long>(p12der->size())), PKCS12_free);
    ASSERT_TRUE(p12);

    const X509_ALGOR* mac_alg = nullptr;
    PKCS12_get0_mac(nullptr, &mac_alg, nullptr, nullptr, p12.get());
    ASSERT_NE(mac_alg, nullptr);
    const ASN1_OBJECT* mac_obj = nullptr;
    X509_ALGOR_get0(&mac_obj, nullptr, nullptr, mac_alg);
    EXPECT_EQ(OBJ_obj2nid(mac_obj), NID_sha1);

    std::vector<int> pbes;
    STACK_OF(PKCS7)* safes = PKCS12_unpack_authsafes(p12.get());
    ASSERT_NE(safes, nullptr);
    for (int i = 0; i < sk_PKCS7_num(safes); ++i) {
        PKCS7* safe = sk_PKCS7_value(safes, i);
        if (OBJ_obj2nid(safe->type) == NID_pkcs7_encrypted) {
            pbes.push_back(OBJ_obj2nid(safe->d.encrypted->enc_data->algorithm->algorithm));
            continue;
        }
        STACK_OF(PKCS12_SAFEBAG)* bags = PKCS12_unpack_p7data(safe);
        for (int j = 0; bags && j < sk_PKCS12_SAFEBAG_num(bags); ++j) {
            const PKCS12_SAFEBAG* bag = sk_PKCS12_SAFEBAG_value(bags, j);
            if (PKCS12_SAFEBAG_get_nid(bag) != NID_pkcs8ShroudedKeyBag) continue;
            const X509_ALGOR* alg = nullptr;
            X509_SIG_get0(PKCS12_SAFEBAG_get0_pkcs8(bag), &alg, nullptr);
            const ASN1_OBJECT* obj = nullptr;
            X509_ALGOR_get0(&obj, nullptr, nullptr, alg);
            pbes.push_back(OBJ_obj2nid(obj));
        }
        sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
    }
    sk_PKCS7_pop_free(safes, PKCS7_free);
    EXPECT_EQ(pbes, (std::vector<int>{NID_pbe_WithSHA1And3_Key_TripleDES_CBC,
                                      NID_pbe_WithSHA1And3_Key_TripleDES_CBC}));
}

TEST(Pkcs12, WrongPasswordIsRefused) {
    auto ca = test::make_test_ca();
    auto p12 = make_pkcs12(test::make_device_identity(ca, "UDID-3"), "right", "Device");
    ASSERT_TRUE(p12);
    auto back = parse_pkcs12(*p12, "wrong");
    ASSERT_FALSE(back);
    EXPECT_EQ(back.status().code(), Code::kInvalid);
    EXPECT_NE(back.status().message().find("password"), std::string::npos);
}

// macOS Keychain exports RC2-40 PKCS#12; OpenSSL 3 reads it only through its
// legacy provider, which parse_pkcs12 loads itself.
TEST(Pkcs12, LegacyRc2Pkcs12IsReadable) {
    TempDir dir;
    test::PemPair pair = test::make_push_cert("com.apple.mgmt.External.legacy");
    fs::path pem = dir.path() / "in.pem", out = dir.path() / "legacy.p12";
    std::ofstream(pem) << pair.cert_pem << pair.key_pem;
    std::string cmd = "openssl pkcs12 -export -legacy -in '" + pem.string() + "' -out '" +
                      out.string() + "' -passout pass:keychain 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::string der = slurp(out);
    ASSERT_FALSE(der.empty());

    auto id = parse_pkcs12(der, "keychain");
    ASSERT_TRUE(id) << id.status().to_string();
    EXPECT_EQ(subject_attribute(id->cert.get(), "UID"), "com.apple.mgmt.External.legacy");
    EXPECT_TRUE(key_matches(id->cert.get(), id->key.get()));
}

// --- CMS -------------------------------------------------------------------

TEST(Cms, AttachedSignatureRoundTripsItsContent) {
    auto ca = test::make_test_ca();
    IssueOptions opts{.common_name = "Profile Signer"};
    auto signer = ca.issue(opts);
    ASSERT_TRUE(signer);
    std::string content = "<plist>profile</plist>\n\r\x00\xff binary"s;
    auto der = cms_sign_attached(content, *signer);
    ASSERT_TRUE(der) << der.status().to_string();
    auto back = cms_attached_content(*der);
    ASSERT_TRUE(back) << back.status().to_string();
    EXPECT_EQ(*back, content);
}

TEST(Cms, TamperedAttachedContentIsRefused) {
    auto ca = test::make_test_ca();
    auto signer = ca.issue({.common_name = "Profile Signer"});
    ASSERT_TRUE(signer);
    auto der = cms_sign_attached("original profile", *signer);
    ASSERT_TRUE(der);
    std::string tampered = *der;
    size_t at = tampered.find("original");
    ASSERT_NE(at, std::string::npos);
    tampered[at] = 'O';
    EXPECT_FALSE(cms_attached_content(tampered));
}

// --- TrustStore ------------------------------------------------------------

class TrustStoreTest : public ::testing::Test {
  protected:
    void SetUp() override { ASSERT_TRUE(store.add(ca.cert())); }
    CertificateAuthority ca = test::make_test_ca("Enrollment CA");
    TrustStore store;
};

TEST_F(TrustStoreTest, AcceptsAnIdentityIssuedByTheCa) {
    Identity id = test::make_device_identity(ca, "UDID-OK");
    EXPECT_TRUE(store.verify(id.cert.get(), {}, now()));
}

TEST_F(TrustStoreTest, RefusesASelfSignedCertificate) {
    Identity self = test::make_push_identity("com.apple.mgmt.self");
    Status s = store.verify(self.cert.get(), {}, now());
    EXPECT_EQ(s.code(), Code::kUnauthorized);
    EXPECT_NE(s.message().find("self-signed"), std::string::npos) << s.message();
}

TEST_F(TrustStoreTest, RefusesAnIdentityOfAnotherCa) {
    auto other = test::make_test_ca("Other CA");
    Identity id = test::make_device_identity(other, "UDID-OTHER");
    Status s = store.verify(id.cert.get(), {}, now());
    EXPECT_EQ(s.code(), Code::kUnauthorized);
    EXPECT_NE(s.message().find("unable to get local issuer certificate"), std::string::npos)
        << s.message();
}

TEST_F(TrustStoreTest, RefusesAnExpiredIdentity) {
    Identity id = test::make_device_identity(ca, "UDID-OLD");
    Status s = store.verify(id.cert.get(), {}, now() + std::chrono::days(731));
    EXPECT_EQ(s.code(), Code::kUnauthorized);
    EXPECT_NE(s.message().find("expired"), std::string::npos) << s.message();
}

TEST_F(TrustStoreTest, RefusesACertificateWhoseEkuIsServerAuthOnly) {
    auto server = ca.issue({.common_name = "server", .server_auth = true});
    ASSERT_TRUE(server);
    EXPECT_EQ(store.verify(server->cert.get(), {}, now()).code(), Code::kUnauthorized);
}

TEST_F(TrustStoreTest, AddPemFileTrustsEveryCaInIt) {
    auto extra = test::make_test_ca("Device CA");
    fs::path file = test::write_temp_file(cert_to_pem(extra.cert()), "device-ca.pem");
    TrustStore other;
    ASSERT_TRUE(other.add_pem_file(file.string()));
    fs::remove_all(file.parent_path());
    Identity id = test::make_device_identity(extra, "UDID-EXTRA");
    EXPECT_TRUE(other.verify(id.cert.get(), {}, now()));
}

// --- Mdm-Signature ---------------------------------------------------------

TEST_F(TrustStoreTest, MdmSignatureRoundTripNamesTheSignerAndItsChain) {
    Identity id = test::make_device_identity(ca, "UDID-SIG");
    std::string body = "<plist><dict><key>MessageType</key></dict></plist>";
    auto header = make_mdm_signature(body, id);
    ASSERT_TRUE(header) << header.status().to_string();
    auto signed_by = verify_mdm_signature(*header, body);
    ASSERT_TRUE(signed_by) << signed_by.status().to_string();
    EXPECT_EQ(X509_cmp(signed_by->signer.get(), id.cert.get()), 0);
    ASSERT_EQ(signed_by->intermediates.size(), 1u);
    EXPECT_EQ(X509_cmp(signed_by->intermediates[0].get(), ca.cert()), 0);
    EXPECT_TRUE(store.verify(signed_by->signer.get(), signed_by->intermediates, now()));
}

TEST_F(TrustStoreTest, MdmSignatureOverAnotherBodyIsRefused) {
    Identity id = test::make_device_identity(ca, "UDID-SIG");
    auto header = make_mdm_signature("the body that was signed", id);
    ASSERT_TRUE(header);
    auto r = verify_mdm_signature(*header, "a different body");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.status().code(), Code::kUnauthorized);
    EXPECT_NE(r.status().message().find("does not verify"), std::string::npos);
}

TEST(MdmSignature, GarbageHeaderIsRefused) {
    for (std::string_view header : {"!!!not base64!!!", "", "aGVsbG8gd29ybGQ="}) {
        auto r = verify_mdm_signature(header, "body");
        ASSERT_FALSE(r) << header;
        EXPECT_EQ(r.status().code(), Code::kUnauthorized) << header;
        EXPECT_NE(r.status().message().find("Mdm-Signature"), std::string::npos);
    }
}

// Regression (fuzz_mdm_signature, leak): a SignedData whose digest algorithm
// OpenSSL cannot set up made CMS_verify leak its copy of the body. The
// answer must be a refusal; the ASan build's leak check fails this test if
// anything is left behind.
TEST_F(TrustStoreTest, MdmSignatureWithAnUnknownDigestIsRefusedWithoutLeaking) {
    Identity id = test::make_device_identity(ca, "UDID-SIG");
    auto header = make_mdm_signature("body", id);
    ASSERT_TRUE(header);
    std::optional<std::string> der = base64_decode(*header);
    ASSERT_TRUE(der);
    // SHA-256's OID 2.16.840.1.101.3.4.2.1 in DER. Its first appearance is
    // the SignedData's digestAlgorithms set (the signer's own entry comes
    // later and is left alone, so the signer info still checks out): turn
    // its 840 into an arc no digest has.
    const std::string sha256("\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01", 11);
    size_t at = der->find(sha256);
    ASSERT_NE(at, std::string::npos) << "the signature no longer names SHA-256";
    (*der)[at + 3] = '\x2c';
    auto r = verify_mdm_signature(base64_encode(*der), "body");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.status().code(), Code::kUnauthorized);
}

TEST_F(TrustStoreTest, MdmSignatureByAnUntrustedKeyVerifiesButIsNotTrusted) {
    Identity stranger = test::make_push_identity("com.apple.mgmt.stranger");
    auto header = make_mdm_signature("body", stranger);
    ASSERT_TRUE(header);
    auto r = verify_mdm_signature(*header, "body");
    ASSERT_TRUE(r) << r.status().to_string();
    EXPECT_EQ(store.verify(r->signer.get(), r->intermediates, now()).code(), Code::kUnauthorized);
}

// A device signs every message with the same identity: with a CertCache the
// certificates a SignedData carries are decoded once, and what comes back is
// what the whole parse gives.
TEST_F(TrustStoreTest, MdmSignaturesThroughACacheDecodeEachCarriedCertificateOnce) {
    Identity id = test::make_device_identity(ca, "UDID-SIG");
    CertCache cache;
    for (int i = 0; i < 3; ++i) {
        std::string body = "<plist>" + std::to_string(i) + "</plist>";
        auto header = make_mdm_signature(body, id);
        ASSERT_TRUE(header);
        auto cached = verify_mdm_signature(*header, body, &cache);
        auto whole = verify_mdm_signature(*header, body);
        ASSERT_TRUE(cached) << cached.status().to_string();
        ASSERT_TRUE(whole) << whole.status().to_string();
        EXPECT_EQ(X509_cmp(cached->signer.get(), id.cert.get()), 0);
        ASSERT_EQ(cached->intermediates.size(), whole->intermediates.size());
        ASSERT_EQ(cached->intermediates.size(), 1u);
        EXPECT_EQ(X509_cmp(cached->intermediates[0].get(), ca.cert()), 0);
    }
    EXPECT_EQ(cache.decoded(), 2u);  // the identity and the CA it carries
    // The body is still checked, and another identity is its own signer.
    auto header = make_mdm_signature("signed", id);
    ASSERT_TRUE(header);
    auto r = verify_mdm_signature(*header, "not signed", &cache);
    ASSERT_FALSE(r);
    EXPECT_NE(r.status().message().find("does not verify"), std::string::npos);
    Identity other = test::make_device_identity(ca, "UDID-OTHER");
    auto other_header = make_mdm_signature("body", other);
    ASSERT_TRUE(other_header);
    auto by_other = verify_mdm_signature(*other_header, "body", &cache);
    ASSERT_TRUE(by_other) << by_other.status().to_string();
    EXPECT_EQ(X509_cmp(by_other->signer.get(), other.cert.get()), 0);
    EXPECT_EQ(cache.decoded(), 3u);
}

// The carried certificates decide, not what the cache holds: a message that
// carries another identity's certificate instead of its signer's does not
// verify, though the signer's certificate sits in the cache.
TEST_F(TrustStoreTest, AMdmSignatureNotCarryingItsSignerDoesNotVerifyThroughTheCache) {
    Identity id = test::make_device_identity(ca, "UDID-SIG");
    Identity other = test::make_device_identity(ca, "UDID-OTHER");
    CertCache cache;
    auto header = make_mdm_signature("body", id);
    ASSERT_TRUE(header);
    ASSERT_TRUE(verify_mdm_signature(*header, "body", &cache));
    BioPtr in = mem_bio("body");
    STACK_OF(X509)* carried = sk_X509_new_null();
    ASSERT_TRUE(carried);
    sk_X509_push(carried, other.cert.get());
    std::unique_ptr<CMS_ContentInfo, decltype(&CMS_ContentInfo_free)> cms(
        CMS_sign(id.cert.get(), id.key.get(), carried, in.get(),
                 CMS_DETACHED | CMS_BINARY | CMS_NOCERTS),
        CMS_ContentInfo_free);
    sk_X509_free(carried);
    ASSERT_TRUE(cms);
    BioPtr out(BIO_new(BIO_s_mem()));
    ASSERT_EQ(i2d_CMS_bio(out.get(), cms.get()), 1);
    std::string der = bio_contents(out.get());
    ASSERT_NE(der.find(cert_to_der(other.cert.get())), std::string::npos);
    ASSERT_EQ(der.find(cert_to_der(id.cert.get())), std::string::npos);
    auto r = verify_mdm_signature(base64_encode(der), "body", &cache);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.status().code(), Code::kUnauthorized);
    EXPECT_FALSE(verify_mdm_signature(base64_encode(der), "body"));
}

// BER with indefinite lengths (what a streaming signer writes) is not split:
// it is parsed whole, and still verifies.
TEST_F(TrustStoreTest, AnIndefiniteLengthMdmSignatureIsParsedWhole) {
    Identity id = test::make_device_identity(ca, "UDID-BER");
    std::string body = "<plist>streamed</plist>";
    BioPtr in = mem_bio(body);
    const unsigned flags = CMS_DETACHED | CMS_BINARY | CMS_STREAM;
    std::unique_ptr<CMS_ContentInfo, decltype(&CMS_ContentInfo_free)> cms(
        CMS_sign(id.cert.get(), id.key.get(), nullptr, nullptr, flags), CMS_ContentInfo_free);
    ASSERT_TRUE(cms);
    BioPtr out(BIO_new(BIO_s_mem()));
    ASSERT_EQ(i2d_CMS_bio_stream(out.get(), cms.get(), in.get(), static_cast<int>(flags)), 1);
    std::string ber = bio_contents(out.get());
    ASSERT_GE(ber.size(), 2u);
    ASSERT_EQ(static_cast<unsigned char>(ber[1]), 0x80u) << "not indefinite-length";
    CertCache cache;
    auto r = verify_mdm_signature(base64_encode(ber), body, &cache);
    ASSERT_TRUE(r) << r.status().to_string();
    EXPECT_EQ(X509_cmp(r->signer.get(), id.cert.get()), 0);
    EXPECT_EQ(cache.decoded(), 0u);
}

// What the cache keeps arrives before any trust check: it holds at most its
// budget of DER bytes, and a certificate over the budget is not kept.
TEST_F(TrustStoreTest, ACertCacheKeepsAtMostItsBudgetOfBytes) {
    const size_t one = cert_to_der(test::make_device_identity(ca, "UDID-0").cert.get()).size();
    CertCache cache(3 * one);
    for (int i = 0; i < 8; ++i) {
        Identity id = test::make_device_identity(ca, "UDID-" + std::to_string(i));
        auto header = make_mdm_signature("body", id);
        ASSERT_TRUE(header);
        ASSERT_TRUE(verify_mdm_signature(*header, "body", &cache));
        EXPECT_LE(cache.bytes(), 3 * one);
        EXPECT_GT(cache.bytes(), 0u);
    }
    CertCache tiny(16);
    Identity id = test::make_device_identity(ca, "UDID-T");
    for (int i = 0; i < 2; ++i) {
        auto header = make_mdm_signature("body", id);
        ASSERT_TRUE(header);
        ASSERT_TRUE(verify_mdm_signature(*header, "body", &tiny));
    }
    EXPECT_EQ(tiny.bytes(), 0u);
    EXPECT_EQ(tiny.decoded(), 4u);  // the identity and the CA, each time
}

TEST(MdmSignature, GarbageHeaderIsRefusedThroughACache) {
    CertCache cache;
    for (std::string_view header :
         {"!!!not base64!!!", "", "aGVsbG8gd29ybGQ=", "MAA=", "MIAwAA=="}) {
        auto r = verify_mdm_signature(header, "body", &cache);
        ASSERT_FALSE(r) << header;
        EXPECT_EQ(r.status().code(), Code::kUnauthorized) << header;
    }
}

}  // namespace
}  // namespace courier::certs
