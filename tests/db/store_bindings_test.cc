// db/: the BindingStore role of the Store contract (identity certificate
// bindings, issued identities), run against every implementation
// (tests/db/store_impls.cc).
#include "tests/db/store_fixture.h"

namespace courier::db {
namespace {

using namespace store_tests;

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

// docs/security.md "Re-binding": a binding that takes effect supersedes the old one and
// clears the secrets stored for the id.
TEST_P(StoreTest, ABindingSupersedesTheOldOneAndClearsTheDevicesSecrets) {
    const std::string old_cert(64, 'a'), new_cert(64, 'b');
    ASSERT_NO_FATAL_FAILURE(enroll_with_secrets(old_cert));
    ASSERT_TRUE(store_->apply_token_update(token_input("UDID-2", "UDID-2"), now()));
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-2", "OTHER-BOOTSTRAP", ""));

    clock_.advance(60s);
    ASSERT_TRUE(store_->bind_cert(new_cert, "UDID-1", kT0 + std::chrono::days(9), now()));

    auto old_b = store_->binding(old_cert)->value();
    EXPECT_EQ(old_b.state, BindingState::kSuperseded);
    EXPECT_EQ(old_b.superseded_at, kT0 + 60s);
    auto new_b = store_->binding(new_cert)->value();
    EXPECT_EQ(new_b.state, BindingState::kActive);
    EXPECT_EQ(new_b.not_after, kT0 + std::chrono::days(9));
    EXPECT_EQ(store_->active_binding("UDID-1")->value().cert_sha256, new_cert);
    expect_no_secrets("UDID-1");
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
    auto in = auth_input("UDID-1");
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
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-1", "BOOTSTRAP", ""));
    ASSERT_TRUE(store_->apply_authenticate(in, now()));
    ASSERT_TRUE(store_->bind_cert(std::string(64, 'a'), "UDID-1", std::nullopt, now()));
    EXPECT_EQ(store_->bootstrap_token("UDID-1")->value_or(""), "BOOTSTRAP");
    EXPECT_EQ(store_->bindings("UDID-1")->size(), 1u);
}

TEST_P(StoreTest, PendingBindingIsListedApprovedAndThenBinds) {
    const std::string old_cert(64, 'a'), new_cert(64, 'b');
    ASSERT_TRUE(store_->apply_authenticate(auth_input("UDID-1"), now()));
    ASSERT_TRUE(store_->bind_cert(old_cert, "UDID-1", std::nullopt, now()));
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-1", "BOOTSTRAP", ""));
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
    ASSERT_NO_FATAL_FAILURE(enroll_with_secrets(cert));
    enroll("UDID-2");
    std::string uuid = enqueue({"UDID-1", "UDID-1:USER-1", "UDID-2"});
    ASSERT_TRUE(store_->schedule_repush("UDID-1", now() + 60s, 1));

    ASSERT_TRUE(store_->revoke_binding("UDID-1", cert, now()));
    expect_no_secrets("UDID-1");
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

// Review 2 #2: TokenUpdate and SetBootstrapToken carry the certificate the
// device service checked; the store re-checks it in the write's transaction,
// so a request that passed the check before a revoke or supersede committed
// changes nothing after it (kConflict): the old holder's push token is not
// restored, its bootstrap token not handed to the new holder.
TEST_P(StoreTest, DeviceWritesWithARevokedOrSupersededCertificateChangeNothing) {
    const std::string old_cert(64, 'a'), new_cert(64, 'b'), revoked(64, 'c');
    for (const char* udid : {"UDID-1", "UDID-2"}) {
        auto in = auth_input(udid);
        in.cert_sha256 = udid == std::string("UDID-1") ? old_cert : revoked;
        ASSERT_TRUE(store_->apply_authenticate(in, now()));
    }
    // While active, the writes land (a user channel uses its device's binding).
    auto tu = token_input("UDID-1", "UDID-1");
    tu.cert_sha256 = old_cert;
    ASSERT_TRUE(store_->apply_token_update(tu, now()));
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-1", "OLD-BOOTSTRAP", old_cert));
    auto user = token_input("UDID-1:USER-1", "UDID-1");
    user.user_id = "USER-1";
    user.cert_sha256 = old_cert;
    ASSERT_TRUE(store_->apply_token_update(user, now()));
    // Another device's active certificate is not this device's binding.
    auto other = token_input("UDID-1", "UDID-1");
    other.cert_sha256 = revoked;
    EXPECT_EQ(store_->apply_token_update(other, now()).code(), Code::kConflict);
    EXPECT_EQ(store_->set_bootstrap_token("UDID-1", "X", revoked).code(), Code::kConflict);
    EXPECT_EQ(store_->bootstrap_token("UDID-1")->value_or(""), "OLD-BOOTSTRAP");

    clock_.advance(60s);
    ASSERT_TRUE(store_->bind_cert(new_cert, "UDID-1", std::nullopt, now()));  // supersedes
    ASSERT_TRUE(store_->revoke_binding("UDID-2", revoked, now()));
    auto events_before = store_->timeline("UDID-1", 1000)->size();
    clock_.advance(1s);
    // The superseded holder's in-flight writes.
    EXPECT_EQ(store_->apply_token_update(tu, now()).code(), Code::kConflict);
    EXPECT_EQ(store_->apply_token_update(user, now()).code(), Code::kConflict);
    auto new_user = token_input("UDID-1:USER-2", "UDID-1");
    new_user.user_id = "USER-2";
    new_user.cert_sha256 = old_cert;
    EXPECT_EQ(store_->apply_token_update(new_user, now()).code(), Code::kConflict);
    EXPECT_EQ(store_->set_bootstrap_token("UDID-1", "OLD-BOOTSTRAP", old_cert).code(),
              Code::kConflict);
    for (const char* id : {"UDID-1", "UDID-1:USER-1"}) {
        auto e = store_->enrollment(id);
        ASSERT_TRUE(e.is_ok());
        EXPECT_TRUE(e->push_token.empty()) << id;
        EXPECT_TRUE(e->push_magic.empty()) << id;
        EXPECT_FALSE(e->token_valid) << id;
    }
    EXPECT_EQ(store_->enrollment("UDID-1:USER-2").status().code(), Code::kNotFound);
    EXPECT_FALSE(store_->bootstrap_token("UDID-1")->has_value());
    EXPECT_EQ(store_->timeline("UDID-1", 1000)->size(), events_before);
    // The revoked holder's in-flight writes.
    auto tu2 = token_input("UDID-2", "UDID-2");
    tu2.cert_sha256 = revoked;
    EXPECT_EQ(store_->apply_token_update(tu2, now()).code(), Code::kConflict);
    EXPECT_EQ(store_->set_bootstrap_token("UDID-2", "B", revoked).code(), Code::kConflict);
    EXPECT_FALSE(store_->enrollment("UDID-2")->token_valid);
    EXPECT_FALSE(store_->bootstrap_token("UDID-2")->has_value());
    // The new holder's land.
    tu.cert_sha256 = new_cert;
    EXPECT_TRUE(store_->apply_token_update(tu, now()));
    EXPECT_TRUE(store_->set_bootstrap_token("UDID-1", "NEW-BOOTSTRAP", new_cert));
    EXPECT_TRUE(store_->enrollment("UDID-1")->token_valid);
    EXPECT_EQ(store_->bootstrap_token("UDID-1")->value_or(""), "NEW-BOOTSTRAP");
}

// Review #1: a certificate binding after an earlier identity that was revoked
// (no active binding left) still gets none of the secrets stored meanwhile.
TEST_P(StoreTest, ABindingAfterARevokedOneGetsNoneOfTheSecrets) {
    ASSERT_TRUE(store_->apply_authenticate(auth_input("UDID-1"), now()));
    ASSERT_TRUE(store_->bind_cert(std::string(64, 'a'), "UDID-1", std::nullopt, now()));
    ASSERT_TRUE(store_->revoke_binding("UDID-1", std::string(64, 'a'), now()));
    // Secrets stored while no identity is active (e.g. a database that
    // revoked before revoking cleared them).
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-1", "BOOTSTRAP", ""));
    ASSERT_TRUE(store_->apply_token_update(token_input("UDID-1", "UDID-1"), now()));
    ASSERT_TRUE(store_->bind_cert(std::string(64, 'b'), "UDID-1", std::nullopt, now()));
    EXPECT_FALSE(store_->bootstrap_token("UDID-1")->has_value());
    EXPECT_FALSE(store_->enrollment("UDID-1")->token_valid);
    // The very first binding of a device clears nothing.
    ASSERT_TRUE(store_->apply_authenticate(auth_input("UDID-2"), now()));
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-2", "FIRST", ""));
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
    ASSERT_TRUE(store_->set_bootstrap_token("UDID-1", "BOOTSTRAP", ""));
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

}  // namespace
}  // namespace courier::db
