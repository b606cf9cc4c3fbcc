// db/sqlite/migrations.cc: each migration from the shape before it, and a
// newer schema refused.
#include "db/sqlite/migrations.h"
#include "tests/db/sqlite_test_fixture.h"

namespace courier::db {
namespace {

using namespace sqlite_tests;

// Takes a database back to the shape of schema `version`, undoing the
// migrations after it newest first (a migration that adds columns cannot run
// twice, so a migration test starts from the shape before it). A new
// migration adds its undo step here.
void rewind_schema(const fs::path& db, int version) {
    ASSERT_EQ(sqlite::latest_schema_version(), 9) << "add the new migration's undo step here";
    if (version < 9) {
        query(db, "DROP INDEX webhook_deliveries_line");
        query(db, "DROP INDEX webhook_deliveries_backlog");
        query(db,
              "CREATE INDEX webhook_deliveries_line ON webhook_deliveries(webhook_id, "
              "enrollment_id, status, event_seq)");
        query(db,
              "CREATE INDEX webhook_deliveries_status ON webhook_deliveries(webhook_id, status, "
              "event_seq)");
        query(db, "CREATE INDEX webhook_deliveries_event ON webhook_deliveries(event_seq)");
    }
    if (version < 8) {
        query(db, "DROP TABLE console_sessions");
        query(db, "DROP TABLE pending_push_keys");
        query(db, "DROP INDEX push_attempts_at");
    }
    if (version < 7) {
        for (const char* t : {"webhook_once", "webhook_deliveries", "webhook_events", "webhooks"})
            query(db, fmt::format("DROP TABLE {}", t));
        query(db, "ALTER TABLE enrollments DROP COLUMN token_update_tally");
    }
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

TEST_F(SqliteStoreTest, MigrationNineKeepsOnlyUndeliveredDeliveriesInTheLineAndBacklogIndexes) {
    open().reset();
    rewind_schema(db_path(), 8);
    EXPECT_EQ(query(db_path(),
                    "SELECT count(*) FROM sqlite_master WHERE name = 'webhook_deliveries_status'"),
              "1");
    auto store = open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(query(db_path(), "PRAGMA user_version"),
              std::to_string(sqlite::latest_schema_version()));
    EXPECT_EQ(query(db_path(),
                    "SELECT count(*) FROM sqlite_master WHERE name IN "
                    "('webhook_deliveries_status', 'webhook_deliveries_event')"),
              "0");
    EXPECT_EQ(query(db_path(),
                    "SELECT count(*) FROM sqlite_master WHERE name IN ('webhook_deliveries_line', "
                    "'webhook_deliveries_backlog') AND sql LIKE '%WHERE status IN%'"),
              "2");
    auto backlog = store->webhook_backlog();
    ASSERT_TRUE(backlog.is_ok()) << backlog.status().to_string();
}

TEST_F(SqliteStoreTest, MigrationSevenAddsWebhooksAndStartsTalliesAtZero) {
    {
        auto store = open();
        ASSERT_TRUE(store->apply_token_update(token_input("A", "A"), now()));
    }
    rewind_schema(db_path(), 6);
    EXPECT_EQ(query(db_path(), "SELECT count(*) FROM sqlite_master WHERE name LIKE 'webhook%'"),
              "0");
    auto store = open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(query(db_path(), "PRAGMA user_version"),
              std::to_string(sqlite::latest_schema_version()));
    EXPECT_EQ(query(db_path(), "SELECT token_update_tally FROM enrollments WHERE id = 'A'"), "0");
    auto hooks = store->webhooks();
    ASSERT_TRUE(hooks.is_ok()) << hooks.status().to_string();
    EXPECT_TRUE(hooks->empty());
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

}  // namespace
}  // namespace courier::db
