// db/: the implementations the Store contract suite (tests/db/store_*_test.cc)
// runs against, SqliteStore and FaultyStore passing through to it, and
// storage faults injected through the contract.
#include <map>
#include <mutex>

#include "db/postgres/pg_store.h"
#include "tests/db/store_fixture.h"
#include "tests/support/faulty_store.h"
#include "tests/support/pg_test_db.h"

namespace courier::db {

namespace store_tests {
bool must_run_everywhere() {
    return pg_test_must_run();
}
}  // namespace store_tests

namespace {

using namespace store_tests;

// PostgreSQL: a database per test on the run's one server, named by the
// test's temp dir, dropped after the store closed.
std::mutex pg_mu;
std::map<fs::path, std::unique_ptr<PgTestDb>> pg_dbs;

std::unique_ptr<Store> open_postgres(const fs::path& dir, const Clock& clock) {
    auto db = std::make_unique<PgTestDb>();
    if (!db->ok()) {
        ADD_FAILURE() << db->error();
        return nullptr;
    }
    auto s = PgStore::open(db->uri(), PgOptions{}, clock);
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    std::lock_guard lk(pg_mu);
    pg_dbs[dir] = std::move(db);
    return s ? std::move(s).value() : nullptr;
}

void drop_postgres(const fs::path& dir) {
    std::unique_ptr<PgTestDb> db;
    {
        std::lock_guard lk(pg_mu);
        auto it = pg_dbs.find(dir);
        if (it == pg_dbs.end()) return;
        db = std::move(it->second);
        pg_dbs.erase(it);
    }
}

std::string postgres_unavailable() {
    static const std::string why = pg_test_unavailable();
    return why;
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
     [](const fs::path& p, const Clock& c) -> std::unique_ptr<Store> { return open_sqlite(p, c); },
     {},
     {}},
    {"faulty_passthrough",
     [](const fs::path& p, const Clock& c) -> std::unique_ptr<Store> {
         auto inner = open_sqlite(p, c);
         if (!inner) return nullptr;
         return std::make_unique<FaultyStore>(std::move(inner));
     },
     {},
     {}},
    {"postgres", open_postgres, postgres_unavailable, drop_postgres},
    {"faulty_postgres",
     [](const fs::path& p, const Clock& c) -> std::unique_ptr<Store> {
         auto inner = open_postgres(p, c);
         if (!inner) return nullptr;
         return std::make_unique<FaultyStore>(std::move(inner));
     },
     postgres_unavailable, drop_postgres},
};

}  // namespace

const std::vector<store_tests::Impl>& store_tests::store_impls() {
    static const std::vector<Impl> impls(std::begin(kImpls), std::end(kImpls));
    return impls;
}

namespace {

INSTANTIATE_TEST_SUITE_P(Impls, StoreTest, ::testing::ValuesIn(kImpls),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace courier::db
