// GET /enroll and enrollment tokens (docs/reliability.md "Guarantees"): a token is
// claimed atomically before the profile is built and given back when building
// fails. EnrollService over a real SqliteStore and a real CA.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "certs/pkcs.h"
#include "db/sqlite/sqlite_store.h"
#include "server/device/device_handlers.h"
#include "server/device/enroll_service.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"

namespace courier {
namespace {

const std::string kTopic = "com.apple.mgmt.External.enroll-test";

class EnrollTokens : public ::testing::Test {
  protected:
    void SetUp() override {
        auto s = db::SqliteStore::open((dir_.path() / "courier.db").string(), {}, clock_);
        ASSERT_TRUE(s.is_ok()) << s.status().to_string();
        store_ = std::move(s).value();
        db::PushCert pc;
        pc.topic = kTopic;
        pc.cert_pem = "cert";
        pc.key_pem = "key";
        pc.thumbprint_sha1 = std::string(40, 'a');
        pc.not_before = clock_.now();
        pc.not_after = clock_.now() + std::chrono::hours(24 * 365);
        pc.uploaded_at = clock_.now();
        pc.active = true;
        ASSERT_TRUE(store_->put_push_cert(pc, clock_.now()).is_ok());
        db::EnrollmentToken t;
        t.id = "t1";
        t.token_sha256 = certs::sha256_hex(kToken);
        t.uses_left = 1;
        t.created_at = clock_.now();
        ASSERT_TRUE(store_->put_enrollment_token(t));
    }
    // signer: the profile signer; a key that does not match its certificate
    // makes signing (the last step of building the profile) fail.
    std::unique_ptr<server::EnrollService> service(bool working_signer) {
        auto a = test::make_device_identity(ca_, "signer-a");
        auto b = test::make_device_identity(ca_, "signer-b");
        certs::Identity signer{std::move(working_signer ? a.key : b.key), std::move(a.cert), {}};
        server::EnrollOptions o;
        o.public_url = "https://127.0.0.1:1";
        o.enroll_open = false;
        return std::make_unique<server::EnrollService>(
            server::EnrollService::Stores{
                .bindings = *store_, .push_certs = *store_, .tokens = *store_},
            ca_, std::move(signer), o, clock_);
    }
    server::Response enroll(server::EnrollService& s) {
        server::Request req;
        req.method = "GET";
        req.path = "/enroll";
        req.query["token"] = kToken;
        return server::handle_enroll(s, req);
    }
    int64_t uses_left() {
        auto list = store_->enrollment_tokens();
        EXPECT_TRUE(list.is_ok());
        return list.is_ok() && list->size() == 1 ? list->at(0).uses_left : -99;
    }

    const std::string kToken = "single-use-token";
    TempDir dir_;
    ManualClock clock_{SystemClock::instance().now()};
    certs::CertificateAuthority ca_ = test::make_test_ca("Enroll Test CA");
    std::unique_ptr<db::SqliteStore> store_;
};

TEST_F(EnrollTokens, AFailedProfileBuildLeavesTheTokenUsable) {
    auto broken = service(false);
    auto r = enroll(*broken);
    EXPECT_EQ(r.status, 500) << r.body;
    EXPECT_NE(r.body.find("could not sign"), std::string::npos) << r.body;
    EXPECT_EQ(uses_left(), 1);
    auto fixed = service(true);
    auto ok = enroll(*fixed);
    EXPECT_EQ(ok.status, 200) << ok.body;
    EXPECT_EQ(ok.headers["Content-Type"], "application/x-apple-aspen-config");
    EXPECT_EQ(uses_left(), 0);
    EXPECT_EQ(enroll(*fixed).status, 403);
}

TEST_F(EnrollTokens, ConcurrentUsesOfASingleUseTokenYieldOneProfile) {
    auto s = service(true);
    std::atomic<int> ok{0}, refused{0}, other{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 6; ++i)
        threads.emplace_back([&] {
            int status = enroll(*s).status;
            (status == 200 ? ok : status == 403 ? refused : other)++;
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok.load(), 1);
    EXPECT_EQ(refused.load(), 5);
    EXPECT_EQ(other.load(), 0);
    EXPECT_EQ(uses_left(), 0);
}

}  // namespace
}  // namespace courier
