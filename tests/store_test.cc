// db/: the Store contract, run against every implementation (SqliteStore,
// and FaultyStore passing through to it), plus SQLite-specific behaviour:
// migrations, files, group commit, fault injection, open_store.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include "common/encoding.h"
#include "db/faulty_store.h"
#include "db/migrations.h"
#include "db/open.h"
#include "db/sqlite_internal.h"
#include "db/sqlite_statement.h"
#include "db/sqlite_store.h"

namespace courier::db {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const SysTime kT0 = from_unix(1767758686);  // 2026-01-07T04:04:46Z

class TempDir {
  public:
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "courier-store-XXXXXX").string();
        path_ = ::mkdtemp(tmpl.data());
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }

  private:
    fs::path path_;
};

std::unique_ptr<SqliteStore> open_sqlite(const fs::path& path, const Clock& clock) {
    auto s = SqliteStore::open(path.string(), SqliteOptions{}, clock);
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    return s ? std::move(s).value() : nullptr;
}

struct Impl {
    std::string name;
    std::function<std::unique_ptr<Store>(const fs::path&, const Clock&)> open;
};

// Test names in ctest's list say which implementation runs.
void PrintTo(const Impl& impl, std::ostream* os) {
    *os << impl.name;
}

AuthenticateInput auth_input(const std::string& udid) {
    AuthenticateInput in;
    in.id = in.device_id = in.udid = udid;
    in.type = "Device";
    in.topic = "com.apple.mgmt.External.test";
    in.serial_number = "SN-" + udid;
    in.model = "iPhone15,2";
    in.os_version = "17.2";
    return in;
}

TokenUpdateInput token_input(const std::string& id, const std::string& device_id) {
    TokenUpdateInput in;
    in.id = id;
    in.device_id = device_id;
    in.type = "Device";
    in.topic = "com.apple.mgmt.External.test";
    in.push_token = std::string("\x01\x02\x03\x00\xff", 5);
    in.push_magic = "MAGIC-" + id;
    return in;
}

class StoreTest : public ::testing::TestWithParam<Impl> {
  protected:
    void SetUp() override {
        store_ = GetParam().open(dir_.path() / "courier.db", clock_);
        ASSERT_NE(store_, nullptr);
    }

    void enroll(const std::string& udid) {
        ASSERT_TRUE(store_->apply_authenticate(auth_input(udid), now()));
        ASSERT_TRUE(store_->apply_token_update(token_input(udid, udid), now()));
    }
    std::string enqueue(const std::vector<std::string>& targets,
                        const std::string& type = "DeviceInformation",
                        std::optional<SysTime> expires = std::nullopt) {
        NewCommand cmd{random_uuid(), type, "<plist>" + type + "</plist>", expires};
        auto r = store_->enqueue(cmd, targets, now());
        EXPECT_TRUE(r.is_ok()) << r.status().to_string();
        return cmd.uuid;
    }
    std::string next_uuid(const std::string& id, bool idle) {
        auto r = store_->next_command(id, idle, now());
        EXPECT_TRUE(r.is_ok()) << r.status().to_string();
        return r.is_ok() && r->has_value() ? (*r)->uuid : "";
    }
    TargetStatus status_of(const std::string& uuid, const std::string& id) {
        auto c = store_->command(uuid);
        EXPECT_TRUE(c.is_ok());
        for (const auto& t : c->targets) {
            if (t.enrollment_id == id) return t.status;
        }
        ADD_FAILURE() << "no target " << id;
        return TargetStatus::kQueued;
    }
    SysTime now() const { return clock_.now(); }

    TempDir dir_;
    ManualClock clock_{kT0};
    std::unique_ptr<Store> store_;
};

TEST_P(StoreTest, PingAnswers) {
    EXPECT_TRUE(store_->ping());
}

TEST_P(StoreTest, AuthenticateCreatesPendingEnrollment) {
    ASSERT_TRUE(store_->apply_authenticate(auth_input("UDID-1"), now()));
    auto e = store_->enrollment("UDID-1");
    ASSERT_TRUE(e.is_ok());
    EXPECT_EQ(e->state, EnrollmentState::kPending);
    EXPECT_EQ(e->serial_number, "SN-UDID-1");
    EXPECT_EQ(e->model, "iPhone15,2");
    EXPECT_TRUE(e->push_token.empty());
    EXPECT_FALSE(e->token_valid);
    EXPECT_EQ(e->created_at, kT0);
}

TEST_P(StoreTest, UnknownEnrollmentIsNotFound) {
    EXPECT_EQ(store_->enrollment("nope").status().code(), Code::kNotFound);
}

TEST_P(StoreTest, TokenUpdateEnrollsWithValidToken) {
    enroll("UDID-1");
    auto e = store_->enrollment("UDID-1");
    ASSERT_TRUE(e.is_ok());
    EXPECT_EQ(e->state, EnrollmentState::kEnrolled);
    EXPECT_TRUE(e->token_valid);
    EXPECT_EQ(e->push_token, std::string("\x01\x02\x03\x00\xff", 5));
    EXPECT_EQ(e->push_magic, "MAGIC-UDID-1");
    EXPECT_EQ(e->topic, "com.apple.mgmt.External.test");
}

TEST_P(StoreTest, UserChannelTokenUpdateCreatesItsRowAndLeavesDeviceRowAlone) {
    enroll("UDID-1");
    auto user = token_input("UDID-1:USER-1", "UDID-1");
    user.user_id = "USER-1";
    user.push_token = "user-token";
    clock_.advance(10s);
    ASSERT_TRUE(store_->apply_token_update(user, now()));
    auto u = store_->enrollment("UDID-1:USER-1");
    ASSERT_TRUE(u.is_ok());
    EXPECT_EQ(u->device_id, "UDID-1");
    EXPECT_EQ(u->user_id, "USER-1");
    EXPECT_EQ(u->push_token, "user-token");
    auto d = store_->enrollment("UDID-1");
    ASSERT_TRUE(d.is_ok());
    EXPECT_EQ(d->push_token, std::string("\x01\x02\x03\x00\xff", 5));
    EXPECT_EQ(d->updated_at, kT0);
}

TEST_P(StoreTest, UserChannelsAreCountedPerDevice) {
    enroll("UDID-1");
    enroll("UDID-2");
    EXPECT_EQ(*store_->user_channel_count("UDID-1"), 0);
    for (const char* u : {"USER-1", "USER-2"}) {
        auto user = token_input(std::string("UDID-1:") + u, "UDID-1");
        user.user_id = u;
        ASSERT_TRUE(store_->apply_token_update(user, now()));
    }
    EXPECT_EQ(*store_->user_channel_count("UDID-1"), 2);
    EXPECT_EQ(*store_->user_channel_count("UDID-2"), 0);
    EXPECT_EQ(*store_->user_channel_count("UDID-none"), 0);
}

TEST_P(StoreTest, FactsTruncatedFlagIsStoredAndClearedByTheNextAuthenticate) {
    auto in = auth_input("UDID-1");
    in.facts_truncated = true;
    ASSERT_TRUE(store_->apply_authenticate(in, now()));
    EXPECT_TRUE(store_->enrollment("UDID-1")->facts_truncated);
    in.facts_truncated = false;
    ASSERT_TRUE(store_->apply_authenticate(in, now()));
    EXPECT_FALSE(store_->enrollment("UDID-1")->facts_truncated);
}

TEST_P(StoreTest, TokenUpdateWithoutUnlockTokenKeepsTheStoredOne) {
    enroll("UDID-1");
    auto with = token_input("UDID-1", "UDID-1");
    with.unlock_token = std::string("unlock\0bytes", 12);
    ASSERT_TRUE(store_->apply_token_update(with, now()));
    ASSERT_TRUE(store_->apply_token_update(token_input("UDID-1", "UDID-1"), now()));
    auto t = store_->unlock_token("UDID-1");
    ASSERT_TRUE(t.is_ok());
    ASSERT_TRUE(t->has_value());
    EXPECT_EQ(**t, std::string("unlock\0bytes", 12));
    EXPECT_TRUE(store_->enrollment("UDID-1")->has_unlock_token);
}

TEST_P(StoreTest, AuthenticateOfKnownIdStartsAfreshAndCancelsOpenCommands) {
    enroll("UDID-1");
    std::string acked = enqueue({"UDID-1"});
    std::string sent = enqueue({"UDID-1"});
    std::string notnow = enqueue({"UDID-1"});
    std::string queued = enqueue({"UDID-1"});
    ASSERT_EQ(next_uuid("UDID-1", true), acked);
    ASSERT_TRUE(store_->apply_report("UDID-1", acked, TargetStatus::kAcknowledged, "ok", now()));
    // The report handed `sent` over; NotNow it, then `notnow` is handed over.
    ASSERT_TRUE(store_->apply_report("UDID-1", sent, TargetStatus::kNotNow, "", now()));
    ASSERT_EQ(status_of(notnow, "UDID-1"), TargetStatus::kSent);
    ASSERT_TRUE(store_->apply_report("UDID-1", notnow, TargetStatus::kNotNow, "", now()));

    ASSERT_TRUE(store_->apply_authenticate(auth_input("UDID-1"), now()));
    auto e = store_->enrollment("UDID-1");
    EXPECT_EQ(e->state, EnrollmentState::kPending);
    EXPECT_TRUE(e->push_token.empty());
    EXPECT_FALSE(e->token_valid);
    EXPECT_EQ(e->queued, 0);
    EXPECT_EQ(status_of(acked, "UDID-1"), TargetStatus::kAcknowledged);
    EXPECT_EQ(status_of(sent, "UDID-1"), TargetStatus::kCanceled);
    EXPECT_EQ(status_of(notnow, "UDID-1"), TargetStatus::kCanceled);
    EXPECT_EQ(status_of(queued, "UDID-1"), TargetStatus::kCanceled);
    EXPECT_EQ(next_uuid("UDID-1", true), "");
}

TEST_P(StoreTest, AuthenticateBindsTheIdentityCertificate) {
    auto in = auth_input("UDID-1");
    in.cert_sha256 = std::string(64, 'a');
    in.cert_not_after = kT0 + std::chrono::days(730);
    ASSERT_TRUE(store_->apply_authenticate(in, now()));
    auto b = store_->binding(std::string(64, 'a'));
    ASSERT_TRUE(b.is_ok());
    ASSERT_TRUE(b->has_value());
    EXPECT_EQ((*b)->device_id, "UDID-1");
    EXPECT_EQ((*b)->state, BindingState::kActive);
    EXPECT_EQ((*b)->not_after, kT0 + std::chrono::days(730));
    EXPECT_EQ((*b)->bound_at, kT0);
    EXPECT_EQ(store_->active_binding("UDID-1")->value().cert_sha256, std::string(64, 'a'));
    EXPECT_EQ(store_->enrollment("UDID-1")->identity_not_after, kT0 + std::chrono::days(730));
}

TEST_P(StoreTest, CertificateBoundToAnotherDeviceIsAConflict) {
    ASSERT_TRUE(store_->bind_cert(std::string(64, 'b'), "UDID-1", std::nullopt, now()));
    ASSERT_TRUE(store_->bind_cert(std::string(64, 'b'), "UDID-1", std::nullopt, now()));
    EXPECT_EQ(store_->bind_cert(std::string(64, 'b'), "UDID-2", std::nullopt, now()).code(),
              Code::kConflict);
    auto in = auth_input("UDID-2");
    in.cert_sha256 = std::string(64, 'b');
    EXPECT_EQ(store_->apply_authenticate(in, now()).code(), Code::kConflict);
    EXPECT_EQ(store_->enrollment("UDID-2").status().code(), Code::kNotFound);
    EXPECT_EQ(store_->request_binding(std::string(64, 'b'), "UDID-2", std::nullopt, now()).code(),
              Code::kConflict);
    EXPECT_TRUE(store_->bindings("UDID-2")->empty());
}

TEST_P(StoreTest, UnboundCertificateLookupIsEmpty) {
    EXPECT_FALSE(store_->binding(std::string(64, 'c'))->has_value());
    EXPECT_FALSE(store_->active_binding("UDID-1")->has_value());
    EXPECT_TRUE(store_->bindings("UDID-1")->empty());
}

TEST_P(StoreTest, TokenUpdateBindsNothing) {
    ASSERT_TRUE(store_->apply_authenticate(auth_input("UDID-1"), now()));
    auto in = token_input("UDID-1", "UDID-1");
    in.cert_not_after = kT0 + std::chrono::days(1);
    ASSERT_TRUE(store_->apply_token_update(in, now()));
    EXPECT_TRUE(store_->bindings("UDID-1")->empty());
}

// SPEC "re-binding": a binding that takes effect supersedes the old one and
// clears the secrets stored for the id.
TEST_P(StoreTest, ABindingSupersedesTheOldOneAndClearsTheDevicesSecrets) {
    const std::string old_cert(64, 'a'), new_cert(64, 'b');
    auto in = auth_input("UDID-1");
    in.cert_sha256 = old_cert;
    ASSERT_TRUE(store_->apply_authenticate(in, now()));
    auto tu = token_input("UDID-1", "UDID-1");
    tu.unlock_token = "UNLOCK";
    ASSERT_TRUE(store_->apply_token_update(tu, now()));
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-1", "BOOTSTRAP"));
    auto user = token_input("UDID-1:USER-1", "UDID-1");
    user.user_id = "USER-1";
    ASSERT_TRUE(store_->apply_token_update(user, now()));
    ASSERT_TRUE(store_->apply_token_update(token_input("UDID-2", "UDID-2"), now()));
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-2", "OTHER-BOOTSTRAP"));

    clock_.advance(60s);
    ASSERT_TRUE(store_->bind_cert(new_cert, "UDID-1", kT0 + std::chrono::days(9), now()));

    auto old_b = store_->binding(old_cert)->value();
    EXPECT_EQ(old_b.state, BindingState::kSuperseded);
    EXPECT_EQ(old_b.superseded_at, kT0 + 60s);
    auto new_b = store_->binding(new_cert)->value();
    EXPECT_EQ(new_b.state, BindingState::kActive);
    EXPECT_EQ(new_b.not_after, kT0 + std::chrono::days(9));
    EXPECT_EQ(store_->active_binding("UDID-1")->value().cert_sha256, new_cert);
    EXPECT_FALSE(store_->bootstrap_token("UDID-1")->has_value());
    EXPECT_FALSE(store_->unlock_token("UDID-1")->has_value());
    for (const char* id : {"UDID-1", "UDID-1:USER-1"}) {
        auto e = store_->enrollment(id);
        ASSERT_TRUE(e.is_ok());
        EXPECT_TRUE(e->push_token.empty()) << id;
        EXPECT_FALSE(e->token_valid) << id;
        EXPECT_FALSE(e->has_unlock_token) << id;
    }
    // Another device is untouched.
    EXPECT_EQ(store_->bootstrap_token("UDID-2")->value_or(""), "OTHER-BOOTSTRAP");
    EXPECT_TRUE(store_->enrollment("UDID-2")->token_valid);
    // The superseded certificate never binds again, here or elsewhere.
    EXPECT_EQ(store_->bind_cert(old_cert, "UDID-1", std::nullopt, now()).code(), Code::kConflict);
    EXPECT_EQ(store_->bind_cert(old_cert, "UDID-3", std::nullopt, now()).code(), Code::kConflict);
    in.cert_sha256 = old_cert;
    EXPECT_EQ(store_->apply_authenticate(in, now()).code(), Code::kConflict);
    EXPECT_EQ(store_->active_binding("UDID-1")->value().cert_sha256, new_cert);
    auto events = store_->timeline("UDID-1", 1);
    ASSERT_EQ(events->size(), 1u);
    EXPECT_EQ((*events)[0].kind, "binding");
    EXPECT_NE((*events)[0].detail.find("superseding"), std::string::npos) << (*events)[0].detail;
}

TEST_P(StoreTest, BindingTheActiveCertificateAgainKeepsTheSecrets) {
    auto in = auth_input("UDID-1");
    in.cert_sha256 = std::string(64, 'a');
    ASSERT_TRUE(store_->apply_authenticate(in, now()));
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-1", "BOOTSTRAP"));
    ASSERT_TRUE(store_->apply_authenticate(in, now()));
    ASSERT_TRUE(store_->bind_cert(std::string(64, 'a'), "UDID-1", std::nullopt, now()));
    EXPECT_EQ(store_->bootstrap_token("UDID-1")->value_or(""), "BOOTSTRAP");
    EXPECT_EQ(store_->bindings("UDID-1")->size(), 1u);
}

TEST_P(StoreTest, PendingBindingIsListedApprovedAndThenBinds) {
    const std::string old_cert(64, 'a'), new_cert(64, 'b');
    ASSERT_TRUE(store_->apply_authenticate(auth_input("UDID-1"), now()));
    ASSERT_TRUE(store_->bind_cert(old_cert, "UDID-1", std::nullopt, now()));
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-1", "BOOTSTRAP"));
    clock_.advance(1s);
    ASSERT_TRUE(store_->request_binding(new_cert, "UDID-1", std::nullopt, now()));
    ASSERT_TRUE(store_->request_binding(new_cert, "UDID-1", std::nullopt, now()));
    auto list = store_->bindings("UDID-1");
    ASSERT_EQ(list->size(), 2u);
    EXPECT_EQ((*list)[0].cert_sha256, new_cert);  // newest first
    EXPECT_EQ((*list)[0].state, BindingState::kPending);
    EXPECT_EQ((*list)[1].state, BindingState::kActive);
    // Pending changes nothing about the current binding or the secrets.
    EXPECT_EQ(store_->active_binding("UDID-1")->value().cert_sha256, old_cert);
    EXPECT_EQ(store_->bootstrap_token("UDID-1")->value_or(""), "BOOTSTRAP");
    EXPECT_EQ(store_->timeline("UDID-1", 1)->at(0).kind, "binding");

    EXPECT_EQ(store_->approve_binding("UDID-2", new_cert, now()).code(), Code::kNotFound);
    EXPECT_EQ(store_->approve_binding("UDID-1", std::string(64, 'c'), now()).code(),
              Code::kNotFound);
    EXPECT_EQ(store_->approve_binding("UDID-1", old_cert, now()).code(), Code::kConflict);
    ASSERT_TRUE(store_->approve_binding("UDID-1", new_cert, now()));
    ASSERT_TRUE(store_->approve_binding("UDID-1", new_cert, now()));
    EXPECT_EQ(store_->binding(new_cert)->value().state, BindingState::kApproved);
    EXPECT_EQ(store_->active_binding("UDID-1")->value().cert_sha256, old_cert);

    ASSERT_TRUE(store_->bind_cert(new_cert, "UDID-1", std::nullopt, now()));
    EXPECT_EQ(store_->binding(new_cert)->value().state, BindingState::kActive);
    EXPECT_EQ(store_->binding(old_cert)->value().state, BindingState::kSuperseded);
    EXPECT_FALSE(store_->bootstrap_token("UDID-1")->has_value());
    EXPECT_EQ(store_->request_binding(old_cert, "UDID-1", std::nullopt, now()).code(),
              Code::kConflict);
}

TEST_P(StoreTest, PendingBindingsPerDeviceAreBounded) {
    ASSERT_TRUE(store_->bind_cert(std::string(64, 'a'), "UDID-1", std::nullopt, now()));
    for (int i = 0; i < 16; ++i) {
        clock_.advance(1s);
        ASSERT_TRUE(
            store_->request_binding(fmt::format("{:064x}", i + 1), "UDID-1", std::nullopt, now()));
    }
    // Full: a new request is refused, never evicting an earlier one (an
    // attacker's requests cannot push the real device's out).
    for (int i = 16; i < 40; ++i)
        EXPECT_EQ(
            store_->request_binding(fmt::format("{:064x}", i + 1), "UDID-1", std::nullopt, now())
                .code(),
            Code::kTooLarge);
    EXPECT_TRUE(store_->request_binding(fmt::format("{:064x}", 1), "UDID-1", std::nullopt, now()))
        << "asking again for a recorded one is still ok";
    auto list = store_->bindings("UDID-1");
    EXPECT_EQ(list->size(), 17u);  // 16 pending and the active one
    EXPECT_EQ(store_->binding(fmt::format("{:064x}", 1))->value().state, BindingState::kPending)
        << "the first stays";
    EXPECT_FALSE(store_->binding(fmt::format("{:064x}", 17))->has_value());
    EXPECT_EQ(store_->active_binding("UDID-1")->value().cert_sha256, std::string(64, 'a'));
    // An administrator deleting one makes room.
    ASSERT_TRUE(store_->revoke_binding("UDID-1", fmt::format("{:064x}", 2), now()));
    EXPECT_TRUE(store_->request_binding(fmt::format("{:064x}", 41), "UDID-1", std::nullopt, now()));
}

TEST_P(StoreTest, RevokedBindingIsKeptAndNeverBindsAgain) {
    const std::string cert(64, 'a');
    ASSERT_TRUE(store_->bind_cert(cert, "UDID-1", std::nullopt, now()));
    EXPECT_EQ(store_->revoke_binding("UDID-2", cert, now()).code(), Code::kNotFound);
    EXPECT_EQ(store_->revoke_binding("UDID-1", std::string(64, 'c'), now()).code(),
              Code::kNotFound);
    clock_.advance(5s);
    ASSERT_TRUE(store_->revoke_binding("UDID-1", cert, now()));
    ASSERT_TRUE(store_->revoke_binding("UDID-1", cert, now() + 5s));
    auto b = store_->binding(cert)->value();
    EXPECT_EQ(b.state, BindingState::kRevoked);
    EXPECT_EQ(b.superseded_at, kT0 + 5s);
    EXPECT_FALSE(store_->active_binding("UDID-1")->has_value());
    EXPECT_EQ(store_->bind_cert(cert, "UDID-1", std::nullopt, now()).code(), Code::kConflict);
    EXPECT_EQ(store_->request_binding(cert, "UDID-1", std::nullopt, now()).code(), Code::kConflict);
    // A new identity binds at once: nothing active to supersede.
    ASSERT_TRUE(store_->bind_cert(std::string(64, 'b'), "UDID-1", std::nullopt, now()));
}

// Review #7: revoking the active binding clears the secrets and push tokens
// (device and user channels) in the same transaction, as a supersede does:
// nothing is pushed to the revoked holder's token any more.
TEST_P(StoreTest, RevokingTheActiveBindingClearsTheDevicesSecrets) {
    const std::string cert(64, 'a');
    auto in = auth_input("UDID-1");
    in.cert_sha256 = cert;
    ASSERT_TRUE(store_->apply_authenticate(in, now()));
    auto tu = token_input("UDID-1", "UDID-1");
    tu.unlock_token = "UNLOCK";
    ASSERT_TRUE(store_->apply_token_update(tu, now()));
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-1", "BOOTSTRAP"));
    auto user = token_input("UDID-1:USER-1", "UDID-1");
    user.user_id = "USER-1";
    ASSERT_TRUE(store_->apply_token_update(user, now()));
    enroll("UDID-2");
    std::string uuid = enqueue({"UDID-1", "UDID-1:USER-1", "UDID-2"});
    ASSERT_TRUE(store_->schedule_repush("UDID-1", now() + 60s, 1));

    ASSERT_TRUE(store_->revoke_binding("UDID-1", cert, now()));
    EXPECT_FALSE(store_->bootstrap_token("UDID-1")->has_value());
    EXPECT_FALSE(store_->unlock_token("UDID-1")->has_value());
    for (const char* id : {"UDID-1", "UDID-1:USER-1"}) {
        auto e = store_->enrollment(id);
        ASSERT_TRUE(e.is_ok());
        EXPECT_TRUE(e->push_token.empty()) << id;
        EXPECT_TRUE(e->push_magic.empty()) << id;
        EXPECT_FALSE(e->token_valid) << id;
        EXPECT_EQ(status_of(uuid, id), TargetStatus::kCanceled) << id;
    }
    EXPECT_TRUE(store_->due_repushes(now() + 1h, 10)->empty());
    EXPECT_TRUE(store_->enrollment("UDID-2")->token_valid) << "another device is untouched";
    EXPECT_EQ(status_of(uuid, "UDID-2"), TargetStatus::kQueued);
    EXPECT_NE(store_->timeline("UDID-1", 1)->at(0).detail.find("tokens cleared"),
              std::string::npos);
}

// Review #1: a certificate binding after an earlier identity that was revoked
// (no active binding left) still gets none of the secrets stored meanwhile.
TEST_P(StoreTest, ABindingAfterARevokedOneGetsNoneOfTheSecrets) {
    ASSERT_TRUE(store_->apply_authenticate(auth_input("UDID-1"), now()));
    ASSERT_TRUE(store_->bind_cert(std::string(64, 'a'), "UDID-1", std::nullopt, now()));
    ASSERT_TRUE(store_->revoke_binding("UDID-1", std::string(64, 'a'), now()));
    // Secrets stored while no identity is active (e.g. a database that
    // revoked before revoking cleared them).
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-1", "BOOTSTRAP"));
    ASSERT_TRUE(store_->apply_token_update(token_input("UDID-1", "UDID-1"), now()));
    ASSERT_TRUE(store_->bind_cert(std::string(64, 'b'), "UDID-1", std::nullopt, now()));
    EXPECT_FALSE(store_->bootstrap_token("UDID-1")->has_value());
    EXPECT_FALSE(store_->enrollment("UDID-1")->token_valid);
    // The very first binding of a device clears nothing.
    ASSERT_TRUE(store_->apply_authenticate(auth_input("UDID-2"), now()));
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-2", "FIRST"));
    ASSERT_TRUE(store_->bind_cert(std::string(64, 'c'), "UDID-2", std::nullopt, now()));
    EXPECT_EQ(store_->bootstrap_token("UDID-2")->value_or(""), "FIRST");
}

// Review #8: a supersede cancels the open commands of the user channels too.
TEST_P(StoreTest, ASupersedeCancelsOpenCommandsOnUserChannels) {
    auto in = auth_input("UDID-1");
    in.cert_sha256 = std::string(64, 'a');
    ASSERT_TRUE(store_->apply_authenticate(in, now()));
    auto user = token_input("UDID-1:USER-1", "UDID-1");
    user.user_id = "USER-1";
    ASSERT_TRUE(store_->apply_token_update(user, now()));
    enroll("UDID-10");  // "UDID-10" sorts after "UDID-1:" but is another device
    std::string uuid = enqueue({"UDID-1:USER-1", "UDID-10"});
    ASSERT_TRUE(store_->bind_cert(std::string(64, 'b'), "UDID-1", std::nullopt, now()));
    EXPECT_EQ(status_of(uuid, "UDID-1:USER-1"), TargetStatus::kCanceled);
    EXPECT_EQ(status_of(uuid, "UDID-10"), TargetStatus::kQueued);
    EXPECT_EQ(next_uuid("UDID-1:USER-1", true), "");
}

// Review #20: the approval rule is decided in the binding's transaction.
TEST_P(StoreTest, AuthenticateWithAQuietPeriodBindsOnlyAQuietDevice) {
    auto in = auth_input("UDID-1");
    in.approval_quiet_period = std::chrono::hours(24 * 7);
    in.cert_sha256 = std::string(64, 'a');
    ASSERT_TRUE(store_->apply_authenticate(in, now()));  // first: binds
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-1", "BOOTSTRAP"));
    clock_.advance(1h);
    in.cert_sha256 = std::string(64, 'b');  // a second one, one after the other
    EXPECT_EQ(store_->apply_authenticate(in, now()).code(), Code::kForbidden);
    EXPECT_EQ(store_->active_binding("UDID-1")->value().cert_sha256, std::string(64, 'a'));
    EXPECT_EQ(store_->bindings("UDID-1")->size(), 1u) << "nothing changed";
    EXPECT_EQ(store_->bootstrap_token("UDID-1")->value_or(""), "BOOTSTRAP");
    // A use not flushed yet counts.
    clock_.advance(std::chrono::hours(24 * 7));
    store_->touch_binding(std::string(64, 'a'), now() - 1min);
    EXPECT_EQ(store_->apply_authenticate(in, now()).code(), Code::kForbidden);
    // An approved row binds.
    ASSERT_TRUE(store_->request_binding(in.cert_sha256, "UDID-1", std::nullopt, now()));
    ASSERT_TRUE(store_->approve_binding("UDID-1", in.cert_sha256, now()));
    ASSERT_TRUE(store_->apply_authenticate(in, now()));
    EXPECT_EQ(store_->active_binding("UDID-1")->value().cert_sha256, std::string(64, 'b'));
    // Revoked: counts as used when revoked (review #1).
    ASSERT_TRUE(store_->revoke_binding("UDID-1", in.cert_sha256, now()));
    clock_.advance(std::chrono::hours(24 * 6));
    in.cert_sha256 = std::string(64, 'c');
    EXPECT_EQ(store_->apply_authenticate(in, now()).code(), Code::kForbidden);
    clock_.advance(std::chrono::hours(24));
    ASSERT_TRUE(store_->apply_authenticate(in, now()));
    EXPECT_EQ(store_->active_binding("UDID-1")->value().cert_sha256, std::string(64, 'c'));
}

// Review #20: the user-channel limit is checked in the write's transaction,
// so concurrent TokenUpdates cannot pass it.
TEST_P(StoreTest, NoNewUserChannelBeyondTheLimitEvenConcurrently) {
    enroll("UDID-1");
    auto user = [](int i) {
        auto in = token_input("UDID-1:user-" + std::to_string(i), "UDID-1");
        in.user_id = "user-" + std::to_string(i);
        return in;
    };
    {
        std::vector<std::thread> fill;
        for (int t = 0; t < 8; ++t)
            fill.emplace_back([&, t] {
                for (int i = t; i < kMaxUserChannels - 1; i += 8)
                    EXPECT_TRUE(store_->apply_token_update(user(i), now()));
            });
        for (auto& th : fill) th.join();
    }
    ASSERT_EQ(*store_->user_channel_count("UDID-1"), kMaxUserChannels - 1);
    std::atomic<int> ok{0}, too_large{0};
    {
        std::vector<std::thread> race;
        for (int t = 0; t < 4; ++t)
            race.emplace_back([&, t] {
                auto s = store_->apply_token_update(user(5000 + t), now());
                if (s.is_ok()) ++ok;
                if (s.code() == Code::kTooLarge) ++too_large;
            });
        for (auto& th : race) th.join();
    }
    EXPECT_EQ(ok.load(), 1);
    EXPECT_EQ(too_large.load(), 3);
    EXPECT_EQ(*store_->user_channel_count("UDID-1"), kMaxUserChannels);
    EXPECT_TRUE(store_->apply_token_update(user(7), now())) << "an existing channel still updates";
    EXPECT_TRUE(store_->apply_token_update(token_input("UDID-1", "UDID-1"), now()));
}

TEST_P(StoreTest, SupersededUseIsNotedAtMostOnceAnHour) {
    ASSERT_TRUE(store_->bind_cert(std::string(64, 'a'), "UDID-1", std::nullopt, now()));
    ASSERT_TRUE(store_->bind_cert(std::string(64, 'b'), "UDID-1", std::nullopt, now()));
    auto count_events = [&] {
        int n = 0;
        auto events = store_->timeline("UDID-1", 100);
        for (const auto& e : events.value())
            n += e.detail.find("presented again") != std::string::npos;
        return n;
    };
    EXPECT_TRUE(store_->note_superseded_use(std::string(64, 'a'), now()).value());
    EXPECT_FALSE(store_->note_superseded_use(std::string(64, 'a'), now()).value());
    clock_.advance(59min);
    EXPECT_FALSE(store_->note_superseded_use(std::string(64, 'a'), now()).value());
    EXPECT_EQ(count_events(), 1);
    clock_.advance(1min);
    EXPECT_TRUE(store_->note_superseded_use(std::string(64, 'a'), now()).value());
    EXPECT_EQ(count_events(), 2);
    EXPECT_EQ(store_->binding(std::string(64, 'a'))->value().alarm_at, now());
    EXPECT_EQ(store_->note_superseded_use(std::string(64, 'c'), now()).status().code(),
              Code::kNotFound);
}

TEST_P(StoreTest, TouchBindingIsVisibleAtOnce) {
    ASSERT_TRUE(store_->bind_cert(std::string(64, 'a'), "UDID-1", std::nullopt, now()));
    EXPECT_FALSE(store_->binding(std::string(64, 'a'))->value().last_used.has_value());
    store_->touch_binding(std::string(64, 'a'), kT0 + 5s);
    store_->touch_binding(std::string(64, 'a'), kT0 + 3s);
    EXPECT_EQ(store_->binding(std::string(64, 'a'))->value().last_used, kT0 + 5s);
    EXPECT_EQ(store_->active_binding("UDID-1")->value().last_used, kT0 + 5s);
    EXPECT_EQ(store_->bindings("UDID-1")->at(0).last_used, kT0 + 5s);
}

TEST_P(StoreTest, IssuedIdentityRecordsItsToken) {
    EnrollmentToken t;
    t.id = "tok-A";
    t.token_sha256 = std::string(64, '7');
    t.created_at = now();
    ASSERT_TRUE(store_->put_enrollment_token(t));
    EXPECT_FALSE(store_->issued_with_token(std::string(64, 'a'))->has_value());
    ASSERT_TRUE(store_->record_issued_identity(std::string(64, 'a'), t.token_sha256, now()));
    EXPECT_EQ(store_->issued_with_token(std::string(64, 'a'))->value_or(""), "tok-A");
    EXPECT_EQ(store_->record_issued_identity(std::string(64, 'a'), t.token_sha256, now()).code(),
              Code::kConflict);
    EXPECT_EQ(
        store_->record_issued_identity(std::string(64, 'b'), std::string(64, '8'), now()).code(),
        Code::kNotFound);
    EXPECT_FALSE(store_->issued_with_token(std::string(64, 'b'))->has_value());
}

TEST_P(StoreTest, CheckoutUnenrollsAndCancelsOpenCommands) {
    enroll("UDID-1");
    std::string uuid = enqueue({"UDID-1"});
    ASSERT_TRUE(store_->apply_checkout("UDID-1", now()));
    EXPECT_EQ(store_->enrollment("UDID-1")->state, EnrollmentState::kUnenrolled);
    EXPECT_EQ(status_of(uuid, "UDID-1"), TargetStatus::kCanceled);
}

TEST_P(StoreTest, CheckoutOfUnknownIdIsNotFound) {
    EXPECT_EQ(store_->apply_checkout("nope", now()).code(), Code::kNotFound);
}

TEST_P(StoreTest, RetireCancelsQueueAndUnretireReturnsToPending) {
    enroll("UDID-1");
    std::string uuid = enqueue({"UDID-1"});
    ASSERT_TRUE(store_->set_retired("UDID-1", true, now()));
    EXPECT_EQ(store_->enrollment("UDID-1")->state, EnrollmentState::kRetired);
    EXPECT_EQ(status_of(uuid, "UDID-1"), TargetStatus::kCanceled);
    // A TokenUpdate does not lift a retirement.
    ASSERT_TRUE(store_->apply_token_update(token_input("UDID-1", "UDID-1"), now()));
    EXPECT_EQ(store_->enrollment("UDID-1")->state, EnrollmentState::kRetired);
    ASSERT_TRUE(store_->set_retired("UDID-1", false, now()));
    EXPECT_EQ(store_->enrollment("UDID-1")->state, EnrollmentState::kPending);
}

TEST_P(StoreTest, RetireOfUnknownIdIsNotFound) {
    EXPECT_EQ(store_->set_retired("nope", true, now()).code(), Code::kNotFound);
}

TEST_P(StoreTest, BootstrapTokenRoundTrips) {
    enroll("UDID-1");
    EXPECT_FALSE(store_->bootstrap_token("UDID-1")->has_value());
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-1", "boot\0strap"));
    EXPECT_EQ(store_->bootstrap_token("UDID-1")->value_or(""), "boot\0strap");
    EXPECT_EQ(store_->set_bootstrap_token("nope", "x").code(), Code::kNotFound);
    EXPECT_EQ(store_->bootstrap_token("nope").status().code(), Code::kNotFound);
    EXPECT_EQ(store_->unlock_token("nope").status().code(), Code::kNotFound);
}

TEST_P(StoreTest, ExistingEnrollmentsListsOnlyKnownIds) {
    enroll("A");
    enroll("C");
    auto r = store_->existing_enrollments({"A", "B", "C"});
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(*r, (std::vector<std::string>{"A", "C"}));
}

TEST_P(StoreTest, NextCommandIsFifoAndMarksSent) {
    enroll("UDID-1");
    std::string first = enqueue({"UDID-1"}, "DeviceLock");
    std::string second = enqueue({"UDID-1"});
    auto next = store_->next_command("UDID-1", true, now());
    ASSERT_TRUE(next.is_ok());
    ASSERT_TRUE(next->has_value());
    EXPECT_EQ((*next)->uuid, first);
    EXPECT_EQ((*next)->request_type, "DeviceLock");
    EXPECT_EQ((*next)->plist, "<plist>DeviceLock</plist>");
    EXPECT_EQ(status_of(first, "UDID-1"), TargetStatus::kSent);
    EXPECT_EQ(status_of(second, "UDID-1"), TargetStatus::kQueued);
}

TEST_P(StoreTest, SentCommandIsOfferedAgainOnTheNextIdle) {
    enroll("UDID-1");
    std::string first = enqueue({"UDID-1"});
    enqueue({"UDID-1"});
    ASSERT_EQ(next_uuid("UDID-1", true), first);
    // The connection dropped before a report: the next Idle gets it again.
    EXPECT_EQ(next_uuid("UDID-1", true), first);
}

TEST_P(StoreTest, NotNowIsSkippedWithinTheSessionAndOfferedOnIdle) {
    enroll("UDID-1");
    std::string first = enqueue({"UDID-1"});
    std::string second = enqueue({"UDID-1"});
    ASSERT_EQ(next_uuid("UDID-1", true), first);
    auto r = store_->apply_report("UDID-1", first, TargetStatus::kNotNow, "<notnow/>", now());
    ASSERT_TRUE(r.is_ok());
    ASSERT_TRUE(r->has_value());
    EXPECT_EQ((*r)->uuid, second);
    EXPECT_EQ(status_of(first, "UDID-1"), TargetStatus::kNotNow);
    r = store_->apply_report("UDID-1", second, TargetStatus::kAcknowledged, "<ok/>", now());
    ASSERT_TRUE(r.is_ok());
    EXPECT_FALSE(r->has_value());
    EXPECT_EQ(next_uuid("UDID-1", false), "");
    EXPECT_EQ(next_uuid("UDID-1", true), first);
}

TEST_P(StoreTest, ExpiredCommandsAreSkippedAndMarkedExpired) {
    enroll("UDID-1");
    std::string stale = enqueue({"UDID-1"}, "DeviceLock", kT0 + 60s);
    std::string fresh = enqueue({"UDID-1"});
    clock_.advance(61s);
    EXPECT_EQ(next_uuid("UDID-1", true), fresh);
    EXPECT_EQ(status_of(stale, "UDID-1"), TargetStatus::kExpired);
}

TEST_P(StoreTest, HasPendingSeesOpenUnexpiredCommands) {
    enroll("UDID-1");
    EXPECT_FALSE(store_->has_pending("UDID-1", now()).value());
    enqueue({"UDID-1"}, "DeviceLock", kT0 + 60s);
    EXPECT_TRUE(store_->has_pending("UDID-1", now()).value());
    EXPECT_FALSE(store_->has_pending("UDID-1", now() + 61s).value());
}

TEST_P(StoreTest, FinalReportIsRecordedOnce) {
    enroll("UDID-1");
    std::string uuid = enqueue({"UDID-1"});
    ASSERT_EQ(next_uuid("UDID-1", true), uuid);
    ASSERT_TRUE(store_->apply_report("UDID-1", uuid, TargetStatus::kAcknowledged, "first", now()));
    clock_.advance(5s);
    ASSERT_TRUE(store_->apply_report("UDID-1", uuid, TargetStatus::kError, "second", now()));
    auto c = store_->command(uuid);
    ASSERT_TRUE(c.is_ok());
    ASSERT_EQ(c->targets.size(), 1u);
    EXPECT_EQ(c->targets[0].status, TargetStatus::kAcknowledged);
    EXPECT_EQ(c->targets[0].result, "first");
    EXPECT_EQ(c->targets[0].updated_at, kT0);
    EXPECT_EQ(next_uuid("UDID-1", true), "");
}

TEST_P(StoreTest, ReportForAnUnknownTargetIsNotFound) {
    enroll("UDID-1");
    enroll("UDID-2");
    std::string uuid = enqueue({"UDID-1"});
    EXPECT_EQ(store_->apply_report("UDID-2", uuid, TargetStatus::kAcknowledged, "", now())
                  .status()
                  .code(),
              Code::kNotFound);
    EXPECT_EQ(store_->apply_report("UDID-1", random_uuid(), TargetStatus::kAcknowledged, "", now())
                  .status()
                  .code(),
              Code::kNotFound);
}

TEST_P(StoreTest, ReportWithANonReportStatusIsInvalid) {
    enroll("UDID-1");
    std::string uuid = enqueue({"UDID-1"});
    EXPECT_EQ(
        store_->apply_report("UDID-1", uuid, TargetStatus::kCanceled, "", now()).status().code(),
        Code::kInvalid);
}

TEST_P(StoreTest, ReportForACanceledTargetRecordsWhatTheDeviceDid) {
    enroll("UDID-1");
    std::string uuid = enqueue({"UDID-1"});
    ASSERT_EQ(next_uuid("UDID-1", true), uuid);
    ASSERT_TRUE(store_->cancel_command(uuid, now()).is_ok());
    ASSERT_TRUE(store_->apply_report("UDID-1", uuid, TargetStatus::kAcknowledged, "ran", now()));
    auto c = store_->command(uuid);
    EXPECT_EQ(c->targets[0].status, TargetStatus::kAcknowledged);
    EXPECT_EQ(c->targets[0].result, "ran");
}

TEST_P(StoreTest, CancelCancelsOnlyOpenTargets) {
    enroll("A");
    enroll("B");
    enroll("C");
    std::string uuid = enqueue({"A", "B", "C"});
    ASSERT_EQ(next_uuid("A", true), uuid);
    ASSERT_TRUE(store_->apply_report("A", uuid, TargetStatus::kAcknowledged, "", now()));
    ASSERT_EQ(next_uuid("B", true), uuid);
    auto canceled = store_->cancel_command(uuid, now());
    ASSERT_TRUE(canceled.is_ok());
    EXPECT_EQ(*canceled, (std::vector<std::string>{"B", "C"}));
    EXPECT_EQ(status_of(uuid, "A"), TargetStatus::kAcknowledged);
    EXPECT_EQ(next_uuid("B", true), "");
    auto again = store_->cancel_command(uuid, now());
    ASSERT_TRUE(again.is_ok());
    EXPECT_TRUE(again->empty());
}

TEST_P(StoreTest, CancelOfUnknownCommandIsNotFound) {
    EXPECT_EQ(store_->cancel_command(random_uuid(), now()).status().code(), Code::kNotFound);
}

TEST_P(StoreTest, EnqueueOfAnExistingUuidIsAConflict) {
    enroll("A");
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    ASSERT_TRUE(store_->enqueue(cmd, {"A"}, now()).is_ok());
    EXPECT_EQ(store_->enqueue(cmd, {"A"}, now()).status().code(), Code::kConflict);
}

TEST_P(StoreTest, EnqueueReportsUnknownTargetsAndQueuesTheRest) {
    enroll("A");
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    auto r = store_->enqueue(cmd, {"A", "X", "A"}, now());
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->queued, (std::vector<std::string>{"A"}));
    EXPECT_EQ(r->unknown, (std::vector<std::string>{"X"}));
    EXPECT_EQ(store_->command(cmd.uuid)->targets.size(), 1u);
}

TEST_P(StoreTest, EnqueueWithOnlyUnknownTargetsWritesNothing) {
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    auto r = store_->enqueue(cmd, {"X"}, now());
    ASSERT_TRUE(r.is_ok());
    EXPECT_TRUE(r->queued.empty());
    EXPECT_EQ(store_->command(cmd.uuid).status().code(), Code::kNotFound);
    enroll("X");
    EXPECT_TRUE(store_->enqueue(cmd, {"X"}, now()).is_ok());
}

TEST_P(StoreTest, EnqueueRefusesMissingUuidOrType) {
    EXPECT_EQ(store_->enqueue({"", "DeviceLock", "", {}}, {"A"}, now()).status().code(),
              Code::kInvalid);
    EXPECT_EQ(store_->enqueue({random_uuid(), "", "", {}}, {"A"}, now()).status().code(),
              Code::kInvalid);
}

TEST_P(StoreTest, EnqueueForTenThousandTargetsTakesWellUnderASecond) {
    std::vector<std::string> ids;
    for (int i = 0; i < 10000; ++i) ids.push_back(fmt::format("UDID-{:05}", i));
    // Seed through the store in parallel so group commit batches them.
    std::vector<std::thread> seeders;
    for (int t = 0; t < 4; ++t) {
        seeders.emplace_back([&, t] {
            for (size_t i = t; i < ids.size(); i += 4) {
                EXPECT_TRUE(store_->apply_token_update(token_input(ids[i], ids[i]), now()));
            }
        });
    }
    for (auto& t : seeders) t.join();
    auto start = std::chrono::steady_clock::now();
    NewCommand cmd{random_uuid(), "DeviceInformation", "<plist/>", std::nullopt};
    auto r = store_->enqueue(cmd, ids, now());
    auto took = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->queued.size(), 10000u);
    EXPECT_LT(took, 1s);
    EXPECT_EQ(store_->queue_depth().value(), 10000);
}

TEST_P(StoreTest, QueueDepthAndQueuedCountCountOpenTargets) {
    enroll("A");
    enroll("B");
    std::string one = enqueue({"A", "B"});
    enqueue({"A"});
    EXPECT_EQ(store_->queue_depth().value(), 3);
    EXPECT_EQ(store_->enrollment("A")->queued, 2);
    ASSERT_EQ(next_uuid("A", true), one);
    ASSERT_TRUE(store_->apply_report("A", one, TargetStatus::kAcknowledged, "", now()));
    EXPECT_EQ(store_->queue_depth().value(), 2);
    EXPECT_EQ(store_->enrollment("A")->queued, 1);
}

TEST_P(StoreTest, ListEnrollmentsPagesInStableOrder) {
    std::set<std::string> all;
    for (int i = 0; i < 25; ++i) {
        std::string id = fmt::format("UDID-{:02}", 24 - i);
        enroll(id);
        all.insert(id);
    }
    std::vector<std::string> seen;
    Page page{10, ""};
    for (int round = 0; round < 10; ++round) {
        auto r = store_->list_enrollments({}, page);
        ASSERT_TRUE(r.is_ok());
        for (const auto& e : r->items) seen.push_back(e.id);
        if (r->next_cursor.empty()) break;
        page.cursor = r->next_cursor;
    }
    EXPECT_EQ(seen, std::vector<std::string>(all.begin(), all.end()));
}

TEST_P(StoreTest, ListEnrollmentsFiltersByStateAndSerial) {
    enroll("A");
    enroll("B");
    ASSERT_TRUE(store_->apply_authenticate(auth_input("C"), now()));
    EnrollmentFilter pending;
    pending.state = EnrollmentState::kPending;
    auto r = store_->list_enrollments(pending, {});
    ASSERT_TRUE(r.is_ok());
    ASSERT_EQ(r->items.size(), 1u);
    EXPECT_EQ(r->items[0].id, "C");
    EnrollmentFilter serial;
    serial.serial_number = "SN-B";
    r = store_->list_enrollments(serial, {});
    ASSERT_EQ(r->items.size(), 1u);
    EXPECT_EQ(r->items[0].id, "B");
}

TEST_P(StoreTest, ListLimitIsClampedAndABadCursorIsInvalid) {
    enroll("A");
    enroll("B");
    auto r = store_->list_enrollments({}, {0, ""});
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->items.size(), 1u);
    EXPECT_FALSE(r->next_cursor.empty());
    EXPECT_EQ(store_->list_enrollments({}, {10, "zz"}).status().code(), Code::kInvalid);
    EXPECT_EQ(store_->list_commands({}, {10, "zz"}).status().code(), Code::kInvalid);
}

TEST_P(StoreTest, ListCommandsPagesNewestFirstAndFilters) {
    enroll("A");
    enroll("B");
    std::vector<std::string> uuids;
    for (int i = 0; i < 5; ++i) uuids.push_back(enqueue({"A"}, i % 2 ? "DeviceLock" : "Other"));
    std::string for_b = enqueue({"B"});
    std::vector<std::string> seen;
    Page page{2, ""};
    for (int round = 0; round < 10; ++round) {
        auto r = store_->list_commands({}, page);
        ASSERT_TRUE(r.is_ok());
        for (const auto& c : r->items) seen.push_back(c.uuid);
        if (r->next_cursor.empty()) break;
        page.cursor = r->next_cursor;
    }
    EXPECT_EQ(seen,
              (std::vector<std::string>{for_b, uuids[4], uuids[3], uuids[2], uuids[1], uuids[0]}));
    CommandFilter locks;
    locks.request_type = "DeviceLock";
    EXPECT_EQ(store_->list_commands(locks, {})->items.size(), 2u);
    CommandFilter of_b;
    of_b.enrollment_id = "B";
    auto b = store_->list_commands(of_b, {});
    ASSERT_EQ(b->items.size(), 1u);
    EXPECT_EQ(b->items[0].uuid, for_b);
    ASSERT_EQ(next_uuid("A", true), uuids[0]);
    CommandFilter sent;
    sent.status = TargetStatus::kSent;
    auto s = store_->list_commands(sent, {});
    ASSERT_EQ(s->items.size(), 1u);
    EXPECT_EQ(s->items[0].uuid, uuids[0]);
}

PushCert push_cert(const std::string& topic, const std::string& thumb) {
    PushCert c;
    c.topic = topic;
    c.cert_pem = "-----BEGIN CERTIFICATE-----" + thumb;
    c.key_pem = "-----BEGIN PRIVATE KEY-----" + thumb;
    c.thumbprint_sha1 = thumb;
    c.not_before = kT0 - std::chrono::days(1);
    c.not_after = kT0 + std::chrono::days(365);
    return c;
}

TEST_P(StoreTest, PushCertRenewalReplacesTheActiveOneAndKeepsHistory) {
    auto first = store_->put_push_cert(push_cert("com.apple.mgmt.A", std::string(40, '1')), now());
    ASSERT_TRUE(first.is_ok());
    clock_.advance(60s);
    auto second = store_->put_push_cert(push_cert("com.apple.mgmt.A", std::string(40, '2')), now());
    ASSERT_TRUE(second.is_ok());
    ASSERT_TRUE(store_->put_push_cert(push_cert("com.apple.mgmt.B", std::string(40, '3')), now()));
    auto active = store_->active_push_cert("com.apple.mgmt.A");
    ASSERT_TRUE(active.is_ok());
    ASSERT_TRUE(active->has_value());
    EXPECT_EQ((*active)->id, *second);
    EXPECT_EQ((*active)->key_pem, "-----BEGIN PRIVATE KEY-----" + std::string(40, '2'));
    EXPECT_EQ(store_->active_push_certs()->size(), 2u);
    auto history = store_->push_cert_history();
    ASSERT_EQ(history->size(), 3u);
    const PushCert& old = history->back();
    EXPECT_EQ(old.id, *first);
    EXPECT_FALSE(old.active);
    EXPECT_EQ(old.replaced_at, kT0 + 60s);
    EXPECT_FALSE(store_->active_push_cert("com.apple.mgmt.C")->has_value());
}

TEST_P(StoreTest, PushCertMarkedUnusableSaysWhy) {
    auto id = store_->put_push_cert(push_cert("com.apple.mgmt.A", std::string(40, '1')), now());
    ASSERT_TRUE(store_->mark_push_cert_unusable(*id, "APNs 403 BadCertificate"));
    auto c = store_->active_push_cert("com.apple.mgmt.A");
    EXPECT_FALSE((*c)->usable);
    EXPECT_EQ((*c)->unusable_reason, "APNs 403 BadCertificate");
    EXPECT_EQ(store_->mark_push_cert_unusable(*id + 100, "x").code(), Code::kNotFound);
}

TEST_P(StoreTest, PushAttemptsAndInvalidTokensAreInTheTimeline) {
    enroll("A");
    ASSERT_TRUE(store_->record_push_attempt({"A", now(), 200, "apns-1", ""}));
    ASSERT_TRUE(store_->mark_token_invalid("A", now()));
    EXPECT_FALSE(store_->enrollment("A")->token_valid);
    EXPECT_EQ(store_->mark_token_invalid("nope", now()).code(), Code::kNotFound);
    auto events = store_->timeline("A", 2);
    ASSERT_TRUE(events.is_ok());
    ASSERT_EQ(events->size(), 2u);
    EXPECT_EQ((*events)[0].kind, "push");
    EXPECT_NE((*events)[0].detail.find("invalid"), std::string::npos);
    EXPECT_NE((*events)[1].detail.find("apns-1"), std::string::npos);
}

TEST_P(StoreTest, TimelineTellsTheStoryNewestFirstWithoutSecrets) {
    auto auth = auth_input("A");
    auth.cert_sha256 = std::string(64, 'f');
    ASSERT_TRUE(store_->apply_authenticate(auth, now()));
    clock_.advance(1s);
    auto tu = token_input("A", "A");
    tu.unlock_token = "UNLOCK-SECRET";
    ASSERT_TRUE(store_->apply_token_update(tu, now()));
    clock_.advance(1s);
    std::string uuid = enqueue({"A"});
    ASSERT_EQ(next_uuid("A", true), uuid);
    ASSERT_TRUE(store_->apply_report("A", uuid, TargetStatus::kAcknowledged, "", now()));
    ASSERT_TRUE(store_->append_timeline("A", {now() + 1s, "note", "by hand"}));
    auto events = store_->timeline("A", 100);
    ASSERT_TRUE(events.is_ok());
    std::vector<std::string> kinds;
    for (const auto& e : *events) {
        kinds.push_back(e.kind);
        EXPECT_EQ(e.detail.find("MAGIC"), std::string::npos) << e.detail;
        EXPECT_EQ(e.detail.find("UNLOCK-SECRET"), std::string::npos) << e.detail;
    }
    EXPECT_EQ(kinds, (std::vector<std::string>{"note", "report", "command", "command", "checkin",
                                               "binding", "checkin"}));
}

TEST_P(StoreTest, RepushesAreDueInTimeOrderAndBounded) {
    enroll("A");
    enroll("B");
    enroll("C");
    enroll("D");
    enqueue({"A", "B", "C", "D"});
    ASSERT_TRUE(store_->schedule_repush("A", kT0 + 30s, 2));
    ASSERT_TRUE(store_->schedule_repush("B", kT0 + 10s, 1));
    ASSERT_TRUE(store_->schedule_repush("C", kT0 + 90s, 1));
    EXPECT_EQ(store_->schedule_repush("nope", kT0, 1).code(), Code::kNotFound);
    auto due = store_->due_repushes(kT0 + 60s, 10);
    ASSERT_TRUE(due.is_ok());
    ASSERT_EQ(due->size(), 2u);
    EXPECT_EQ((*due)[0].enrollment_id, "B");
    EXPECT_EQ((*due)[1].enrollment_id, "A");
    EXPECT_EQ((*due)[1].attempts, 2);
    EXPECT_EQ(store_->due_repushes(kT0 + 60s, 1)->size(), 1u);
}

TEST_P(StoreTest, RepushIsNotScheduledWithoutOpenCommands) {
    enroll("A");
    ASSERT_TRUE(store_->schedule_repush("A", kT0 + 10s, 1));
    EXPECT_TRUE(store_->due_repushes(kT0 + 60s, 10)->empty());
}

TEST_P(StoreTest, RepushScheduleIsClearedWhenTheQueueEmpties) {
    enroll("A");
    std::string uuid = enqueue({"A"});
    ASSERT_TRUE(store_->schedule_repush("A", kT0 + 10s, 1));
    ASSERT_EQ(next_uuid("A", true), uuid);
    EXPECT_EQ(store_->due_repushes(kT0 + 60s, 10)->size(), 1u);
    ASSERT_TRUE(store_->apply_report("A", uuid, TargetStatus::kAcknowledged, "", now()));
    EXPECT_TRUE(store_->due_repushes(kT0 + 60s, 10)->empty());
}

TEST_P(StoreTest, TokenUpdateMakesUndeliveredCommandsDueAtOnce) {
    enroll("A");
    enqueue({"A"});
    ASSERT_TRUE(store_->schedule_repush("A", kT0 + 3600s, 7));
    ASSERT_TRUE(store_->apply_token_update(token_input("A", "A"), now()));
    auto due = store_->due_repushes(now(), 10);
    ASSERT_EQ(due->size(), 1u);
    EXPECT_EQ((*due)[0].attempts, 0);
}

// ---- Pending push (SPEC "pending push") -------------------------------------

PushOutcomeRecord accepted_push(const std::string& id, const std::string& apns_id, SysTime at,
                                SysTime until) {
    PushOutcomeRecord r;
    r.attempt = PushAttempt{id, at, 200, apns_id, ""};
    r.repush_at = at + 60s;
    r.attempts = 1;
    r.sent_at = at;
    r.pending_until = until;
    return r;
}

TEST_P(StoreTest, AcceptedPushIsPendingAndEnqueuesReportIt) {
    enroll("A");
    enroll("B");
    ASSERT_TRUE(store_->record_push_outcomes({accepted_push("A", "apns-1", now(), now() + 60s)}));
    auto e = store_->enrollment("A");
    ASSERT_TRUE(e.is_ok());
    EXPECT_TRUE(e->push_pending_at(now()));
    EXPECT_EQ(e->pending_push_apns_id, "apns-1");
    EXPECT_FALSE(store_->enrollment("B")->push_pending_at(now()));

    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    auto r = store_->enqueue(cmd, {"A", "B"}, now());
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->queued.size(), 2u);
    EXPECT_EQ(r->pending_push, (std::map<std::string, std::string>{{"A", "apns-1"}}));
}

TEST_P(StoreTest, CoalescedEnqueueMakesTheRepushDueWhenThePendingPushEnds) {
    enroll("A");
    // Pushed with nothing queued (GET /v1/push): no re-push scheduled yet.
    ASSERT_TRUE(store_->record_push_outcomes({accepted_push("A", "apns-1", now(), now() + 60s)}));
    ASSERT_TRUE(store_->due_repushes(now() + std::chrono::days(1), 10)->empty());
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    ASSERT_EQ(store_->enqueue(cmd, {"A"}, now())->pending_push.size(), 1u);
    EXPECT_TRUE(store_->due_repushes(now() + 59s, 10)->empty());
    auto due = store_->due_repushes(now() + 60s, 10);
    ASSERT_EQ(due->size(), 1u);
    EXPECT_EQ((*due)[0].attempts, 1);
}

TEST_P(StoreTest, PendingPushEndsAtItsDeadline) {
    enroll("A");
    ASSERT_TRUE(store_->record_push_outcomes({accepted_push("A", "apns-1", now(), now() + 60s)}));
    clock_.advance(60s);
    EXPECT_FALSE(store_->enrollment("A")->push_pending_at(now()));
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    EXPECT_TRUE(store_->enqueue(cmd, {"A"}, now())->pending_push.empty());
}

TEST_P(StoreTest, DevicesRequestClearsThePendingPush) {
    enroll("A");
    enroll("B");
    enroll("C");
    std::string uuid = enqueue({"B"});
    for (const char* id : {"A", "B", "C"})
        ASSERT_TRUE(store_->record_push_outcomes({accepted_push(id, "apns", now(), now() + 60s)}));
    // An Idle with nothing queued, a report, and a TokenUpdate each end it.
    ASSERT_EQ(next_uuid("A", true), "");
    ASSERT_TRUE(store_->apply_report("B", uuid, TargetStatus::kAcknowledged, "", now()));
    ASSERT_TRUE(store_->apply_token_update(token_input("C", "C"), now()));
    for (const char* id : {"A", "B", "C"}) {
        EXPECT_FALSE(store_->enrollment(id)->push_pending_at(now())) << id;
        NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
        EXPECT_TRUE(store_->enqueue(cmd, {id}, now())->pending_push.empty()) << id;
    }
}

TEST_P(StoreTest, PushIsNotPendingForADeviceSeenSinceItWasSent) {
    enroll("A");
    enroll("B");
    store_->touch_last_seen({"A"}, now() + 2s);  // came after the push was sent
    clock_.advance(3s);
    ASSERT_TRUE(store_->record_push_outcomes(
        {accepted_push("A", "a", kT0, now() + 60s), accepted_push("B", "b", kT0, now() + 60s)}));
    EXPECT_FALSE(store_->enrollment("A")->push_pending_at(now()));
    EXPECT_TRUE(store_->enrollment("B")->push_pending_at(now()));
}

TEST_P(StoreTest, RefusedPushOrInvalidTokenIsNotPending) {
    enroll("A");
    enroll("B");
    PushOutcomeRecord refused;
    refused.attempt = PushAttempt{"A", now(), 429, "", "TooManyRequests"};
    refused.repush_at = now() + 15s;
    refused.attempts = 1;
    ASSERT_TRUE(store_->record_push_outcomes({refused}));
    EXPECT_FALSE(store_->enrollment("A")->push_pending_at(now()));
    // A mark on an enrollment APNs no longer takes pushes for is not reported.
    ASSERT_TRUE(store_->record_push_outcomes({accepted_push("B", "b", now(), now() + 60s)}));
    ASSERT_TRUE(store_->mark_token_invalid("B", now()));
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    EXPECT_TRUE(store_->enqueue(cmd, {"B"}, now())->pending_push.empty());
}

EnrollmentToken token(const std::string& id, int64_t uses, std::optional<SysTime> expires) {
    return {id, std::string(64, id[0]), uses, expires, kT0, "for " + id};
}

TEST_P(StoreTest, SingleUseEnrollmentTokenIsConsumedOnce) {
    ASSERT_TRUE(store_->put_enrollment_token(token("a", 1, std::nullopt)));
    EXPECT_TRUE(store_->consume_enrollment_token(std::string(64, 'a'), now()));
    EXPECT_EQ(store_->consume_enrollment_token(std::string(64, 'a'), now()).code(),
              Code::kForbidden);
}

TEST_P(StoreTest, UnlimitedEnrollmentTokenStaysUsable) {
    ASSERT_TRUE(store_->put_enrollment_token(token("u", -1, std::nullopt)));
    for (int i = 0; i < 3; ++i)
        EXPECT_TRUE(store_->consume_enrollment_token(std::string(64, 'u'), now()));
    EXPECT_EQ(store_->enrollment_tokens()->at(0).uses_left, -1);
}

TEST_P(StoreTest, ExpiredOrUnknownEnrollmentTokenIsForbidden) {
    ASSERT_TRUE(store_->put_enrollment_token(token("e", 5, kT0 + 10s)));
    EXPECT_EQ(store_->consume_enrollment_token(std::string(64, 'e'), kT0 + 10s).code(),
              Code::kForbidden);
    EXPECT_EQ(store_->consume_enrollment_token(std::string(64, 'z'), now()).code(),
              Code::kForbidden);
}

TEST_P(StoreTest, EnrollmentTokensAreListedAndDeleted) {
    ASSERT_TRUE(store_->put_enrollment_token(token("a", 1, std::nullopt)));
    EXPECT_EQ(store_->put_enrollment_token(token("a", 1, std::nullopt)).code(), Code::kConflict);
    auto list = store_->enrollment_tokens();
    ASSERT_EQ(list->size(), 1u);
    EXPECT_EQ(list->at(0).note, "for a");
    ASSERT_TRUE(store_->delete_enrollment_token("a"));
    EXPECT_EQ(store_->delete_enrollment_token("a").code(), Code::kNotFound);
    EXPECT_EQ(store_->consume_enrollment_token(std::string(64, 'a'), now()).code(),
              Code::kForbidden);
}

TEST_P(StoreTest, TouchLastSeenIsVisibleAtOnce) {
    enroll("A");
    store_->touch_last_seen({"A"}, kT0 + 5s);
    EXPECT_EQ(store_->enrollment("A")->last_seen, kT0 + 5s);
}

TEST_P(StoreTest, NotNowReportIsTheResultUntilTheFinalReportReplacesIt) {
    enroll("UDID-1");
    std::string uuid = enqueue({"UDID-1"});
    ASSERT_EQ(next_uuid("UDID-1", true), uuid);
    ASSERT_TRUE(store_->apply_report("UDID-1", uuid, TargetStatus::kNotNow, "<notnow/>", now()));
    auto result_of = [&] {
        auto c = store_->command(uuid);
        EXPECT_TRUE(c.is_ok());
        return c.is_ok() && c->targets.size() == 1 ? c->targets[0].result : std::string("?");
    };
    EXPECT_EQ(status_of(uuid, "UDID-1"), TargetStatus::kNotNow);
    EXPECT_EQ(result_of(), "<notnow/>");
    ASSERT_EQ(next_uuid("UDID-1", true), uuid);
    ASSERT_TRUE(store_->apply_report("UDID-1", uuid, TargetStatus::kAcknowledged, "<ack/>", now()));
    EXPECT_EQ(status_of(uuid, "UDID-1"), TargetStatus::kAcknowledged);
    EXPECT_EQ(result_of(), "<ack/>");
    // Recorded once: neither a repeated final report nor a late NotNow changes it.
    ASSERT_TRUE(store_->apply_report("UDID-1", uuid, TargetStatus::kError, "<err/>", now()));
    ASSERT_TRUE(store_->apply_report("UDID-1", uuid, TargetStatus::kNotNow, "<late/>", now()));
    EXPECT_EQ(status_of(uuid, "UDID-1"), TargetStatus::kAcknowledged);
    EXPECT_EQ(result_of(), "<ack/>");
}

TEST_P(StoreTest, AReleasedEnrollmentTokenUseCanBeClaimedAgain) {
    EnrollmentToken t;
    t.id = "once";
    t.token_sha256 = std::string(64, 'b');
    t.uses_left = 1;
    t.created_at = now();
    ASSERT_TRUE(store_->put_enrollment_token(t));
    ASSERT_TRUE(store_->consume_enrollment_token(t.token_sha256, now()));
    EXPECT_EQ(store_->consume_enrollment_token(t.token_sha256, now()).code(), Code::kForbidden);
    ASSERT_TRUE(store_->release_enrollment_token(t.token_sha256));
    ASSERT_TRUE(store_->consume_enrollment_token(t.token_sha256, now()));
    EXPECT_EQ(store_->consume_enrollment_token(t.token_sha256, now()).code(), Code::kForbidden);
    // Unlimited and unknown tokens: nothing to give back, and ok.
    t.id = "many";
    t.token_sha256 = std::string(64, 'c');
    t.uses_left = -1;
    ASSERT_TRUE(store_->put_enrollment_token(t));
    ASSERT_TRUE(store_->release_enrollment_token(t.token_sha256));
    EXPECT_TRUE(store_->release_enrollment_token(std::string(64, 'd')));
    auto list = store_->enrollment_tokens();
    ASSERT_TRUE(list.is_ok());
    for (const auto& x : *list) EXPECT_EQ(x.uses_left, x.id == "many" ? -1 : 0) << x.id;
}

// The faulty_* runs inject storage faults through the contract: each write
// refused with the store's error (kUnavailable, so 503 upstream) changes
// nothing, and the same write succeeds once the fault is gone.
TEST_P(StoreTest, InjectedStorageFaultsAreUnavailableAndChangeNothing) {
    auto* faulty = dynamic_cast<FaultyStore*>(store_.get());
    if (!faulty) GTEST_SKIP() << "no fault injection in this implementation";
    enroll("UDID-1");
    std::string uuid = enqueue({"UDID-1"});
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", {}};
    for (StoreFault fault : {StoreFault::kLocked, StoreFault::kDiskFull}) {
        faulty->fail_next_writes(1, fault);
        EXPECT_EQ(store_->enqueue(cmd, {"UDID-1"}, now()).status().code(), Code::kUnavailable);
        EXPECT_EQ(store_->command(cmd.uuid).status().code(), Code::kNotFound);
        faulty->fail_next_writes(1, fault);
        EXPECT_EQ(store_->next_command("UDID-1", true, now()).status().code(), Code::kUnavailable);
        EXPECT_EQ(status_of(uuid, "UDID-1"), TargetStatus::kQueued);
        faulty->fail_next_writes(1, fault);
        EXPECT_EQ(store_->apply_checkout("UDID-1", now()).code(), Code::kUnavailable);
        EXPECT_EQ(store_->enrollment("UDID-1")->state, EnrollmentState::kEnrolled);
        faulty->fail_next_writes(1, fault);
        EXPECT_EQ(store_->ping().code(), Code::kUnavailable);  // the write probe fails too
        EXPECT_TRUE(store_->ping());
    }
    // Unreachable: reads fail as well, as kUnavailable, never kNotFound.
    faulty->set_unreachable(true);
    EXPECT_EQ(store_->enrollment("UDID-1").status().code(), Code::kUnavailable);
    EXPECT_EQ(store_->list_enrollments({}, {}).status().code(), Code::kUnavailable);
    EXPECT_EQ(store_->list_commands({}, {}).status().code(), Code::kUnavailable);
    EXPECT_EQ(store_->user_channel_count("UDID-1").status().code(), Code::kUnavailable);
    EXPECT_EQ(store_->ping().code(), Code::kUnavailable);
    faulty->set_unreachable(false);
    EXPECT_EQ(faulty->injected_failures(), 8);
    // Like SqliteStore, ping probes writes only after a write failed: faults
    // no write met yet leave it ok and are not consumed (review #17).
    faulty->fail_next_writes(1, StoreFault::kDiskFull);
    EXPECT_TRUE(store_->ping());
    EXPECT_EQ(faulty->injected_failures(), 8);
    faulty->fail_next_writes(0, StoreFault::kDiskFull);
    ASSERT_TRUE(store_->enqueue(cmd, {"UDID-1"}, now()).is_ok());
    EXPECT_EQ(next_uuid("UDID-1", true), uuid);
}

const Impl kImpls[] = {
    {"sqlite",
     [](const fs::path& p, const Clock& c) -> std::unique_ptr<Store> { return open_sqlite(p, c); }},
    {"faulty_passthrough",
     [](const fs::path& p, const Clock& c) -> std::unique_ptr<Store> {
         auto inner = open_sqlite(p, c);
         if (!inner) return nullptr;
         return std::make_unique<FaultyStore>(std::move(inner));
     }},
};

INSTANTIATE_TEST_SUITE_P(Impls, StoreTest, ::testing::ValuesIn(kImpls),
                         [](const auto& info) { return info.param.name; });

// ---- SQLite-specific ------------------------------------------------------

class SqliteStoreTest : public ::testing::Test {
  protected:
    fs::path db_path() const { return dir_.path() / "courier.db"; }
    std::unique_ptr<SqliteStore> open() { return open_sqlite(db_path(), clock_); }
    SysTime now() const { return clock_.now(); }

    TempDir dir_;
    ManualClock clock_{kT0};
};

// Runs sql on a separate connection and returns the first column of the
// first row as text.
std::string query(const fs::path& path, const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char* t = sqlite3_column_text(st, 0);
        out = t ? reinterpret_cast<const char*>(t) : "";
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

unsigned mode_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 0777;
}

// Takes a database back to the shape of schema `version`, undoing the
// migrations after it newest first (a migration that adds columns cannot run
// twice, so a migration test starts from the shape before it). A new
// migration adds its undo step here.
void rewind_schema(const fs::path& db, int version) {
    ASSERT_EQ(sqlite::latest_schema_version(), 6) << "add the new migration's undo step here";
    if (version < 6) {
        query(db, "ALTER TABLE enrollments DROP COLUMN pending_push_apns_id");
        query(db, "ALTER TABLE enrollments DROP COLUMN pending_push_until");
    }
    if (version < 5) {
        query(db, "DROP TABLE issued_identities");
        for (const char* col : {"state", "not_after", "superseded_at", "last_used", "alarm_at"})
            query(db, fmt::format("ALTER TABLE cert_bindings DROP COLUMN {}", col));
        ASSERT_EQ(query(db, "SELECT count(*) FROM pragma_table_info('cert_bindings')"), "3");
    }
    if (version < 4) {
        query(db, "DROP INDEX enrollments_user_channels");
        query(db, "ALTER TABLE enrollments DROP COLUMN facts_truncated");
    }
    if (version < 3) query(db, "CREATE INDEX targets_status ON targets(status)");
    if (version < 2) {
        query(db, "DROP INDEX targets_expiring");
        query(db, "ALTER TABLE targets DROP COLUMN expires_at");
    }
    query(db, fmt::format("PRAGMA user_version = {}", version));
}

TEST_F(SqliteStoreTest, MigrationFiveKeepsExistingBindingsActiveUntilTheNextBinding) {
    open().reset();
    rewind_schema(db_path(), 4);
    // Two accumulated bindings, as version 4 allowed.
    query(db_path(), "INSERT INTO cert_bindings (cert_sha256, device_id, bound_at) VALUES ('" +
                         std::string(64, 'a') + "', 'UDID-1', 100), ('" + std::string(64, 'b') +
                         "', 'UDID-1', 200)");
    auto store = open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(query(db_path(), "PRAGMA user_version"),
              std::to_string(sqlite::latest_schema_version()));
    auto list = store->bindings("UDID-1");
    ASSERT_EQ(list->size(), 2u);
    for (const auto& b : *list) EXPECT_EQ(b.state, BindingState::kActive);
    ASSERT_TRUE(store->bind_cert(std::string(64, 'c'), "UDID-1", std::nullopt, now()));
    EXPECT_EQ(store->binding(std::string(64, 'a'))->value().state, BindingState::kSuperseded);
    EXPECT_EQ(store->binding(std::string(64, 'b'))->value().state, BindingState::kSuperseded);
}

TEST_F(SqliteStoreTest, BindingLastUsedIsWrittenAtClose) {
    {
        auto store = open();
        ASSERT_TRUE(store->bind_cert(std::string(64, 'a'), "UDID-1", std::nullopt, now()));
        store->touch_binding(std::string(64, 'a'), kT0 + 7s);
    }
    EXPECT_EQ(query(db_path(), "SELECT last_used FROM cert_bindings"),
              std::to_string(to_unix(kT0 + 7s)));
}

TEST_F(SqliteStoreTest, OpeningAnEmptyFileMigratesToTheLatestSchema) {
    auto store = open();
    ASSERT_NE(store, nullptr);
    store->close();
    EXPECT_EQ(query(db_path(), "PRAGMA user_version"),
              std::to_string(sqlite::latest_schema_version()));
    EXPECT_EQ(query(db_path(), "PRAGMA journal_mode"), "wal");
}

TEST_F(SqliteStoreTest, ReopeningKeepsTheData) {
    std::string uuid = random_uuid();
    {
        auto store = open();
        ASSERT_TRUE(store->apply_token_update(token_input("A", "A"), now()));
        ASSERT_TRUE(store->enqueue({uuid, "DeviceLock", "<plist/>", {}}, {"A"}, now()).is_ok());
    }
    auto store = open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->enrollment("A")->state, EnrollmentState::kEnrolled);
    EXPECT_EQ(store->command(uuid)->targets.size(), 1u);
}

// Takes a current database back to the version-5 shape (before the pending
// push columns), so tests of earlier migrations can replay them.
TEST_F(SqliteStoreTest, MigrationSixAddsThePendingPushUnmarked) {
    {
        auto store = open();
        ASSERT_TRUE(store->apply_token_update(token_input("A", "A"), now()));
    }
    rewind_schema(db_path(), 5);
    auto store = open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(query(db_path(), "PRAGMA user_version"),
              std::to_string(sqlite::latest_schema_version()));
    auto e = store->enrollment("A");
    ASSERT_TRUE(e.is_ok()) << e.status().to_string();
    EXPECT_FALSE(e->push_pending_at(now()));
    EXPECT_TRUE(e->pending_push_apns_id.empty());
}

TEST_F(SqliteStoreTest, MigrationTwoGivesExistingTargetsTheirCommandsExpiry) {
    std::string uuid = random_uuid();
    {
        auto store = open();
        ASSERT_TRUE(store->apply_token_update(token_input("A", "A"), now()));
        ASSERT_TRUE(
            store->enqueue({uuid, "DeviceLock", "<plist/>", now() + 1h}, {"A"}, now()).is_ok());
    }
    // Back to the version-1 shape: no targets.expires_at, no index on it.
    rewind_schema(db_path(), 1);

    auto store = open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(query(db_path(), "PRAGMA user_version"),
              std::to_string(sqlite::latest_schema_version()));
    EXPECT_EQ(query(db_path(), "SELECT expires_at FROM targets"),
              std::to_string(to_unix(now() + 1h)));
    clock_.advance(2h);
    auto next = store->next_command("A", true, now());
    ASSERT_TRUE(next.is_ok());
    EXPECT_FALSE(next->has_value());
    EXPECT_EQ(store->command(uuid)->targets.at(0).status, TargetStatus::kExpired);
}

TEST_F(SqliteStoreTest, MigrationThreeDropsTheStatusOnlyIndexAndTheQueueStillCounts) {
    {
        auto store = open();
        ASSERT_TRUE(store->apply_token_update(token_input("A", "A"), now()));
        ASSERT_TRUE(store->apply_token_update(token_input("B", "B"), now()));
        ASSERT_TRUE(store
                        ->enqueue({random_uuid(), "DeviceLock", "<plist/>", std::nullopt},
                                  {"A", "B"}, now())
                        .is_ok());
    }
    // Back to the version-2 shape, with the index on status alone.
    rewind_schema(db_path(), 2);
    ASSERT_EQ(query(db_path(), "SELECT count(*) FROM sqlite_master WHERE name = 'targets_status'"),
              "1");

    auto store = open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(query(db_path(), "PRAGMA user_version"),
              std::to_string(sqlite::latest_schema_version()));
    EXPECT_EQ(query(db_path(), "SELECT count(*) FROM sqlite_master WHERE name = 'targets_status'"),
              "0");
    EXPECT_EQ(store->queue_depth().value(), 2);
    auto next = store->next_command("A", true, now());
    ASSERT_TRUE(next.is_ok());
    ASSERT_TRUE(next->has_value());
    EXPECT_EQ(store->queue_depth().value(), 2);  // sent is still open
}

TEST_F(SqliteStoreTest, ANewerSchemaIsRefused) {
    open().reset();
    query(db_path(), "PRAGMA user_version = 999");
    auto store = SqliteStore::open(db_path().string(), {}, clock_);
    ASSERT_FALSE(store.is_ok());
    EXPECT_EQ(store.status().code(), Code::kInvalid);
    EXPECT_NE(store.status().message().find("newer"), std::string::npos);
    EXPECT_EQ(query(db_path(), "PRAGMA user_version"), "999");
}

TEST_F(SqliteStoreTest, DatabaseWalAndShmAreOwnerOnly) {
    mode_t old = ::umask(022);
    auto store = open();
    ::umask(old);
    ASSERT_TRUE(store->apply_token_update(token_input("A", "A"), now()));
    EXPECT_EQ(mode_of(db_path()), 0600u);
    EXPECT_EQ(mode_of(db_path().string() + "-wal"), 0600u);
    EXPECT_EQ(mode_of(db_path().string() + "-shm"), 0600u);
}

TEST_F(SqliteStoreTest, AnExistingDatabaseFileIsTightenedTo0600) {
    { std::ofstream(db_path()).flush(); }
    fs::permissions(db_path(), fs::perms(0644));
    auto store = open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(mode_of(db_path()), 0600u);
}

TEST_F(SqliteStoreTest, PreparedStatementsAreReused) {
    auto store = open();
    ASSERT_TRUE(store->apply_token_update(token_input("A", "A"), now()));
    auto cached = [&] {
        size_t n = 0;
        EXPECT_TRUE(store->write([&](sqlite::Connection& c) {
            n = c.cached_statements();
            return Status::ok();
        }));
        return n;
    };
    size_t before = cached();
    for (int i = 0; i < 20; ++i) {
        ASSERT_TRUE(store->apply_token_update(token_input("A", "A"), now()));
    }
    EXPECT_EQ(cached(), before);
}

TEST_F(SqliteStoreTest, ConcurrentEnqueuesAreAllCommitted) {
    auto store = open();
    ASSERT_TRUE(store->apply_token_update(token_input("A", "A"), now()));
    constexpr int kThreads = 8, kEach = 500;
    std::vector<std::vector<std::string>> uuids(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kEach; ++i) {
                std::string uuid = random_uuid();
                auto r = store->enqueue({uuid, "DeviceInformation", "<plist/>", {}}, {"A"}, now());
                if (r.is_ok()) uuids[t].push_back(uuid);
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(store->queue_depth().value(), kThreads * kEach);
    for (const auto& list : uuids) {
        ASSERT_EQ(list.size(), static_cast<size_t>(kEach));
        for (const auto& uuid : list) ASSERT_TRUE(store->command(uuid).is_ok()) << uuid;
    }
    EXPECT_GT(store->writer_stats().largest_batch, 1u);
}

TEST_F(SqliteStoreTest, AFailingWriteDoesNotFailItsBatchMates) {
    auto store = open();
    // Hold the writer inside a transaction until every write below is queued,
    // so they all land in the next batch.
    std::mutex mu;
    std::condition_variable cv;
    bool release = false, holding = false;
    std::thread blocker([&] {
        EXPECT_TRUE(store->write([&](sqlite::Connection&) {
            std::unique_lock lk(mu);
            holding = true;
            cv.notify_all();
            cv.wait_for(lk, 10s, [&] { return release; });
            return Status::ok();
        }));
    });
    {
        std::unique_lock lk(mu);
        ASSERT_TRUE(cv.wait_for(lk, 10s, [&] { return holding; }));
    }
    constexpr int kWrites = 10;
    std::vector<Status> results(kWrites);
    std::vector<std::thread> writers;
    for (int i = 0; i < kWrites; ++i) {
        writers.emplace_back([&, i] {
            results[i] = store->write([i](sqlite::Connection& c) {
                sqlite::add_event(c, "A", kT0, "test", std::to_string(i));
                if (i % 2) return conflict("odd write refused");
                return Status::ok();
            });
        });
    }
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (store->pending_writes() < kWrites && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
    }
    ASSERT_EQ(store->pending_writes(), static_cast<size_t>(kWrites));
    {
        std::lock_guard lk(mu);
        release = true;
    }
    cv.notify_all();
    blocker.join();
    for (auto& t : writers) t.join();
    for (int i = 0; i < kWrites; ++i) {
        EXPECT_EQ(results[i].code(), i % 2 ? Code::kConflict : Code::kOk) << i;
    }
    EXPECT_EQ(store->writer_stats().largest_batch, static_cast<size_t>(kWrites));
    auto events = store->timeline("A", 100);
    std::set<std::string> details;
    for (const auto& e : *events) details.insert(e.detail);
    EXPECT_EQ(details, (std::set<std::string>{"0", "2", "4", "6", "8"}));
}

TEST_F(SqliteStoreTest, LastSeenIsWrittenAtClose) {
    {
        auto store = open();
        ASSERT_TRUE(store->apply_token_update(token_input("A", "A"), now()));
        store->touch_last_seen({"A"}, kT0 + 42s);
    }
    EXPECT_EQ(query(db_path(), "SELECT last_seen FROM enrollments WHERE id = 'A'"),
              std::to_string(to_unix(kT0 + 42s)));
}

TEST_F(SqliteStoreTest, LastSeenIsFlushedWithinAboutASecond) {
    SqliteOptions options;
    options.last_seen_flush = 50ms;
    auto store = SqliteStore::open(db_path().string(), options, clock_);
    ASSERT_TRUE(store.is_ok());
    ASSERT_TRUE((*store)->apply_token_update(token_input("A", "A"), now()));
    (*store)->touch_last_seen({"A"}, kT0 + 7s);
    std::string want = std::to_string(to_unix(kT0 + 7s));
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (query(db_path(), "SELECT last_seen FROM enrollments WHERE id = 'A'") != want &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(query(db_path(), "SELECT last_seen FROM enrollments WHERE id = 'A'"), want);
}

// Review #12: "seen since the push was sent" is told to the millisecond
// while the touch is in memory. A came 300 ms after its push was sent, in
// the same second: no mark (by whole seconds it got one). B came 100 ms
// before its push: marked.
TEST_F(SqliteStoreTest, ADeviceSeenMillisecondsAfterItsPushLeavesNoPendingMark) {
    SqliteOptions options;
    options.last_seen_flush = std::chrono::hours(1);  // the touch stays in memory
    auto opened = SqliteStore::open(db_path().string(), options, clock_);
    ASSERT_TRUE(opened.is_ok());
    auto& store = *opened;
    ASSERT_TRUE(store->apply_token_update(token_input("A", "A"), now()));
    ASSERT_TRUE(store->apply_token_update(token_input("B", "B"), now()));
    const SysTimeMs sent = SysTimeMs(kT0) + 400ms;
    store->touch_last_seen({"A"}, sent + 300ms);
    store->touch_last_seen({"B"}, sent - 100ms);
    auto accepted = [&](const std::string& id) {
        PushOutcomeRecord r;
        r.attempt = PushAttempt{id, now(), 200, "apns-" + id, ""};
        r.repush_at = now() + 60s;
        r.attempts = 1;
        r.sent_at = sent;
        r.pending_until = now() + 60s;
        return r;
    };
    ASSERT_TRUE(store->record_push_outcomes({accepted("A"), accepted("B")}));
    EXPECT_FALSE(store->enrollment("A")->push_pending_at(now()));
    EXPECT_TRUE(store->enrollment("B")->push_pending_at(now()));
    // last_seen itself stays whole seconds.
    EXPECT_EQ(store->enrollment("A")->last_seen, kT0);
}

TEST_F(SqliteStoreTest, WritesAfterCloseAreUnavailable) {
    auto store = open();
    store->close();
    EXPECT_EQ(store->apply_checkout("A", now()).code(), Code::kUnavailable);
}

TEST_F(SqliteStoreTest, FaultyStoreFailsTheNextWritesAndChangesNothing) {
    FaultyStore store(open());
    ASSERT_TRUE(store.apply_token_update(token_input("A", "A"), now()));
    store.fail_next_writes(2, StoreFault::kLocked);
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", {}};
    auto r = store.enqueue(cmd, {"A"}, now());
    EXPECT_EQ(r.status().code(), Code::kUnavailable);
    EXPECT_EQ(r.status().message(), "database is locked");
    EXPECT_EQ(store.next_command("A", true, now()).status().code(), Code::kUnavailable);
    EXPECT_TRUE(store.queue_depth().is_ok());  // reads pass
    EXPECT_EQ(store.command(cmd.uuid).status().code(), Code::kNotFound);
    EXPECT_TRUE(store.enqueue(cmd, {"A"}, now()).is_ok());
    store.fail_next_writes(1, StoreFault::kDiskFull);
    Status s = store.apply_checkout("A", now());
    EXPECT_EQ(s.code(), Code::kUnavailable);
    EXPECT_EQ(s.message(), "disk full");
    EXPECT_EQ(store.injected_failures(), 3);
}

// A full database (SQLITE_FULL: here the writer's max_page_count pinned to
// the file's size, as a full disk refuses growth) is kUnavailable, and ping
// fails while writes do, healthy again once a write succeeds; a missing row
// stays kNotFound.
TEST_F(SqliteStoreTest, PingFailsWhileTheDatabaseIsFullAndRecoversOnceWritesSucceed) {
    auto store = open();
    ASSERT_TRUE(store->ping());
    ASSERT_TRUE(store->apply_token_update(token_input("A", "A"), now()));
    auto set_max_pages = [&](const std::string& n) {
        return store->write([n](sqlite::Connection& c) {
            c.exec("PRAGMA max_page_count = " + n);
            return Status::ok();
        });
    };
    ASSERT_TRUE(set_max_pages("1"));  // clamped to the current size: no growth
    NewCommand big{random_uuid(), "InstallProfile", std::string(256 * 1024, 'p'), {}};
    auto w = store->enqueue(big, {"A"}, now());
    EXPECT_EQ(w.status().code(), Code::kUnavailable) << w.status().to_string();
    Status p = store->ping();
    EXPECT_EQ(p.code(), Code::kUnavailable) << p.to_string();
    EXPECT_NE(p.message().find("writes fail"), std::string::npos) << p.to_string();
    EXPECT_EQ(store->ping().code(), Code::kUnavailable);  // still full: still degraded
    EXPECT_EQ(store->command(big.uuid).status().code(), Code::kNotFound);
    ASSERT_TRUE(set_max_pages("1073741823"));
    EXPECT_TRUE(store->ping());
    EXPECT_TRUE(store->enqueue(big, {"A"}, now()).is_ok());
}

TEST(SqliteStatus, StorageFailuresAreUnavailableConstraintsConflictsBugsInternal) {
    for (int rc : {SQLITE_BUSY, SQLITE_LOCKED, SQLITE_FULL, SQLITE_IOERR, SQLITE_IOERR_WRITE,
                   SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_CORRUPT, SQLITE_NOTADB})
        EXPECT_EQ(sqlite::status_from_sqlite(rc, nullptr, "x").code(), Code::kUnavailable) << rc;
    EXPECT_EQ(sqlite::status_from_sqlite(SQLITE_CONSTRAINT_UNIQUE, nullptr, "x").code(),
              Code::kConflict);
    EXPECT_EQ(sqlite::status_from_sqlite(SQLITE_MISUSE, nullptr, "x").code(), Code::kInternal);
}

TEST(OpenStore, SqliteUrlAndBarePathOpen) {
    TempDir dir;
    auto a = open_store("sqlite://" + (dir.path() / "a.db").string(), dir.path().string());
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    EXPECT_TRUE((*a)->ping());
    auto b = open_store((dir.path() / "b.db").string(), dir.path().string());
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    EXPECT_TRUE(fs::exists(dir.path() / "b.db"));
}

TEST(OpenStore, EmptyPathMeansCourierDbInTheDataDir) {
    TempDir dir;
    auto s = open_store("sqlite://", dir.path().string());
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    EXPECT_TRUE(fs::exists(dir.path() / "courier.db"));
}

TEST(OpenStore, PostgresIsRefusedUntilBuilt) {
    TempDir dir;
    auto s = open_store("postgres://user:secret@db/courier", dir.path().string());
    ASSERT_FALSE(s.is_ok());
    EXPECT_EQ(s.status().code(), Code::kInvalid);
    EXPECT_EQ(s.status().message(), "postgres:// is planned but not built yet; use sqlite://");
    EXPECT_EQ(open_store("mysql://x", dir.path().string()).status().code(), Code::kInvalid);
}

}  // namespace
TEST_F(SqliteStoreTest, ReadScopeSharesOneSnapshotUntilItCloses) {
    auto s = open();
    ASSERT_TRUE(s->apply_authenticate(auth_input("A"), now()));
    {
        auto scope = s->read_scope();
        ASSERT_TRUE(scope);
        EXPECT_TRUE(s->enrollment("A").is_ok());  // the snapshot starts here
        ASSERT_TRUE(s->apply_authenticate(auth_input("B"), now()));
        EXPECT_EQ(s->enrollment("B").status().code(), Code::kNotFound);  // not in the snapshot
        EXPECT_EQ(s->read_scope(), nullptr);  // a nested scope shares the open one
    }
    EXPECT_TRUE(s->enrollment("B").is_ok());
    // Connections go back to the pool: many scopes in a row do not leak.
    for (int i = 0; i < 100; ++i) {
        auto scope = s->read_scope();
        ASSERT_TRUE(scope);
        ASSERT_TRUE(s->enrollment("A").is_ok());
    }
}

}  // namespace courier::db
