// The fixture the Store contract suite shares (tests/db/store_*_test.cc):
// StoreTest runs each test against every implementation (Impl, instantiated
// in tests/db/store_impls.cc), plus helpers for the SQLite-specific tests.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/encoding.h"
#include "db/sqlite/sqlite_store.h"
#include "db/store.h"
#include "tests/support/temp_dir.h"

namespace courier::db::store_tests {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using courier::TempDir;

inline const SysTime kT0 = from_unix(1767758686);  // 2026-01-07T04:04:46Z

inline std::unique_ptr<SqliteStore> open_sqlite(const fs::path& path, const Clock& clock) {
    auto s = SqliteStore::open(path.string(), SqliteOptions{}, clock);
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    return s ? std::move(s).value() : nullptr;
}

struct Impl {
    std::string name;
    std::function<std::unique_ptr<Store>(const fs::path&, const Clock&)> open;
    // Why it cannot run here ("" when it can; unset: always can). The test
    // is skipped with the reason, or fails when it must run (CI).
    std::function<std::string()> unavailable;
    // Run after the store is destroyed (drops a test database).
    std::function<void(const fs::path&)> cleanup;
};

// Every implementation (tests/db/store_impls.cc), for suites with fixtures
// of their own.
const std::vector<Impl>& store_impls();
// Whether a test that cannot run here is a failure (CI=true) or a skip.
bool must_run_everywhere();

// Test names in ctest's list say which implementation runs.
inline void PrintTo(const Impl& impl, std::ostream* os) {
    *os << impl.name;
}

inline AuthenticateInput auth_input(const std::string& udid) {
    AuthenticateInput in;
    in.id = in.device_id = in.udid = udid;
    in.type = "Device";
    in.topic = "com.apple.mgmt.External.test";
    in.serial_number = "SN-" + udid;
    in.model = "iPhone15,2";
    in.os_version = "17.2";
    return in;
}

inline TokenUpdateInput token_input(const std::string& id, const std::string& device_id) {
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
        if (GetParam().unavailable) {
            std::string why = GetParam().unavailable();
            if (!why.empty()) {
                if (must_run_everywhere()) FAIL() << why;
                GTEST_SKIP() << why;
            }
        }
        store_ = GetParam().open(dir_.path() / "courier.db", clock_);
        ASSERT_NE(store_, nullptr);
    }
    void TearDown() override {
        store_.reset();
        if (GetParam().cleanup) GetParam().cleanup(dir_.path());
    }

    void enroll(const std::string& udid) {
        ASSERT_TRUE(store_->apply_authenticate(auth_input(udid), now()));
        ASSERT_TRUE(store_->apply_token_update(token_input(udid, udid), now()));
    }
    // UDID-1 authenticated with `cert_sha256`, with the secrets a binding
    // change clears: an unlock token, a bootstrap token, a user channel
    // (UDID-1:USER-1).
    void enroll_with_secrets(const std::string& cert_sha256) {
        auto in = auth_input("UDID-1");
        in.cert_sha256 = cert_sha256;
        ASSERT_TRUE(store_->apply_authenticate(in, now()));
        auto tu = token_input("UDID-1", "UDID-1");
        tu.unlock_token = "UNLOCK";
        ASSERT_TRUE(store_->apply_token_update(tu, now()));
        ASSERT_TRUE(store_->set_bootstrap_token("UDID-1", "BOOTSTRAP", ""));
        auto user = token_input("UDID-1:USER-1", "UDID-1");
        user.user_id = "USER-1";
        ASSERT_TRUE(store_->apply_token_update(user, now()));
    }
    // Neither a bootstrap token nor an unlock token is kept for `id`.
    void expect_no_secrets(const std::string& id) {
        EXPECT_FALSE(store_->bootstrap_token(id)->has_value()) << id;
        EXPECT_FALSE(store_->unlock_token(id)->has_value()) << id;
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

}  // namespace courier::db::store_tests
