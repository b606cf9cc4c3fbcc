// db/sqlite/: SqliteStore beyond the Store contract — the file and its modes,
// prepared statements, group commit, last-seen flushing, storage failures,
// read scopes — plus FaultyStore over it and open_store. The migrations:
// sqlite_migrations_test.cc.
#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <set>
#include <thread>

#include "db/command_finished_event.h"
#include "db/open.h"
#include "db/sqlite/migrations.h"
#include "db/sqlite/sqlite_internal.h"
#include "db/sqlite/sqlite_statement.h"
#include "tests/db/sqlite_test_fixture.h"
#include "tests/support/faulty_store.h"
#include "tests/support/sqlite_query.h"

namespace courier::db {
namespace {

using namespace sqlite_tests;

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
    ASSERT_TRUE(store->arm_pushes({"A", "B"}, now()));
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

// Review 2 #3: a flush does not take the millisecond away. A came 300 ms
// after its push was sent, in the same second, and its touch is flushed
// before the push's outcome is recorded: still no mark (by the flushed whole
// seconds it got one). B came 100 ms before its push: marked. Once the
// flushed touch is older than a few seconds it is dropped from memory
// (bounded) and only the column's whole seconds are left: C, pushed at the
// same instant as A, is then marked.
TEST_F(SqliteStoreTest, ADeviceSeenMillisecondsAfterItsPushLeavesNoMarkAfterAFlushToo) {
    SqliteOptions options;
    options.last_seen_flush = 20ms;
    auto opened = SqliteStore::open(db_path().string(), options, clock_);
    ASSERT_TRUE(opened.is_ok());
    auto& store = *opened;
    for (const char* id : {"A", "B", "C", "D"})
        ASSERT_TRUE(store->apply_token_update(token_input(id, id), now()));
    auto await_last_seen = [&](const std::string& id, SysTime want) {
        std::string sql = "SELECT last_seen FROM enrollments WHERE id = '" + id + "'";
        auto deadline = std::chrono::steady_clock::now() + 5s;
        while (query(db_path(), sql) != std::to_string(to_unix(want)) &&
               std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(5ms);
        }
        ASSERT_EQ(query(db_path(), sql), std::to_string(to_unix(want))) << id << " flushed";
    };
    const SysTimeMs sent = SysTimeMs(kT0) + 400ms;
    auto accepted = [&](const std::string& id) {
        PushOutcomeRecord r;
        r.attempt = PushAttempt{id, now(), 200, "apns-" + id, ""};
        r.repush_at = now() + 60s;
        r.attempts = 1;
        r.sent_at = sent;
        r.pending_until = now() + 60s;
        return r;
    };
    ASSERT_TRUE(store->arm_pushes({"A", "B", "C"}, now()));
    store->touch_last_seen({"A", "C"}, sent + 300ms);
    store->touch_last_seen({"B"}, sent - 100ms);
    await_last_seen("A", kT0);
    await_last_seen("B", kT0);
    ASSERT_TRUE(store->record_push_outcomes({accepted("A"), accepted("B")}));
    EXPECT_FALSE(store->enrollment("A")->push_pending_at(now()));
    EXPECT_TRUE(store->enrollment("B")->push_pending_at(now()));

    // 6 s on, the next flush (D's touch) drops the old times.
    clock_.advance(6s);
    store->touch_last_seen({"D"}, clock_.now_ms());
    await_last_seen("D", kT0 + 6s);
    ASSERT_TRUE(store->record_push_outcomes({accepted("C")}));
    EXPECT_TRUE(store->enrollment("C")->push_pending_at(now()));
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

// postgres:// opens PgStore (tests/db/pg_store_test.cc); a server that is
// not there is kUnavailable, an unknown scheme kInvalid.
TEST(OpenStore, PostgresUrlOpensPgStoreAndUnknownSchemesAreRefused) {
    TempDir dir;
    auto s = open_store("postgres://user:secret@127.0.0.1:1/courier", dir.path().string());
    ASSERT_FALSE(s.is_ok());
    EXPECT_EQ(s.status().code(), Code::kUnavailable) << s.status().to_string();
    EXPECT_EQ(open_store("mysql://x", dir.path().string()).status().code(), Code::kInvalid);
}

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

// Webhook deliveries the writer committed are handed to the delivery
// threads from memory (take_committed): leased, once, never alongside a
// claim; the next one in an enrollment's line follows when the first one's
// outcome commits; a rolled-back write hands nothing over.
OutboxEvent webhook_event(const std::string& enrollment) {
    OutboxEvent e;
    e.event_id = new_event_id();
    e.topic = "mdm.Connect";
    e.enrollment_id = enrollment;
    e.body = "{\"e\":\"" + e.event_id + "\"}";
    e.created_at = kT0;
    return e;
}

TEST_F(SqliteStoreTest, CommittedDeliveriesAreHandedOverLeasedOnceAndClaimsSkipThem) {
    auto store = open();
    Webhook w;
    w.id = "h";
    w.url = "http://127.0.0.1:9/h";
    w.topics = {"mdm."};
    ASSERT_TRUE(store->put_webhook(w, now()));
    OutboxEvent a = webhook_event("E1"), b = webhook_event("E1"), c = webhook_event("E2");
    ASSERT_TRUE(store->append_events({a, b, c}));

    auto taken = store->take_committed(now(), 60s, 100);
    ASSERT_EQ(taken.size(), 2u);  // b waits behind a
    EXPECT_EQ(taken[0].delivery.event_id, a.event_id);
    EXPECT_EQ(taken[0].body, a.body);
    EXPECT_EQ(taken[0].url, w.url);
    EXPECT_FALSE(taken[0].lease.empty());
    EXPECT_EQ(taken[1].delivery.event_id, c.event_id);
    EXPECT_TRUE(store->take_committed(now(), 60s, 100).empty());
    auto claimed = store->claim_deliveries(now(), 60s, 100);
    ASSERT_TRUE(claimed.is_ok());
    EXPECT_TRUE(claimed->empty());

    DeliveryOutcome ok;
    ok.delivered = true;
    ok.http_status = 200;
    ASSERT_TRUE(store->finish_deliveries({{taken[0], ok}, {taken[1], ok}}, now()));
    // Recorded in a later commit; then b, now due, is handed over.
    std::vector<ClaimedDelivery> next;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (next.empty() && std::chrono::steady_clock::now() < deadline) {
        next = store->take_committed(now(), 60s, 100);
        if (next.empty()) std::this_thread::yield();
    }
    ASSERT_EQ(next.size(), 1u);
    EXPECT_EQ(next[0].delivery.event_id, b.event_id);
    claimed = store->claim_deliveries(now(), 60s, 100);
    ASSERT_TRUE(claimed.is_ok());
    EXPECT_TRUE(claimed->empty());
    auto delivered = store->list_deliveries("h", DeliveryStatus::kDelivered, {});
    ASSERT_TRUE(delivered.is_ok());
    EXPECT_EQ(delivered->items.size(), 2u);
}

// At most 4,096 committed deliveries wait in memory (kHandoffMax,
// docs/webhooks.md); the ones past it are left to claims, not lost.
TEST_F(SqliteStoreTest, DeliveriesPastTheHandOverCapAreLeftToClaims) {
    auto store = open();
    Webhook w;
    w.id = "h";
    w.url = "http://127.0.0.1:9/h";
    w.topics = {"mdm."};
    ASSERT_TRUE(store->put_webhook(w, now()));
    std::vector<OutboxEvent> events;
    for (int i = 0; i < 4097; ++i) events.push_back(webhook_event(fmt::format("E{}", i)));
    ASSERT_TRUE(store->append_events(events));
    auto taken = store->take_committed(now(), 60s, 10'000);
    EXPECT_EQ(taken.size(), 4096u);
    auto claimed = store->claim_deliveries(now(), 60s, 100);
    ASSERT_TRUE(claimed.is_ok());
    ASSERT_EQ(claimed->size(), 1u);
    EXPECT_EQ(claimed->front().delivery.event_id, events.back().event_id);
}

TEST_F(SqliteStoreTest, ARolledBackWriteHandsNoDeliveryOver) {
    auto store = open();
    Webhook w;
    w.id = "h";
    w.url = "http://127.0.0.1:9/h";
    w.topics = {"mdm."};
    ASSERT_TRUE(store->put_webhook(w, now()));
    {
        auto attached = store->attach_events({webhook_event("E1")});
        EXPECT_FALSE(store->write([](sqlite::Connection&) { return invalid("refused"); }));
    }
    EXPECT_TRUE(store->take_committed(now(), 60s, 100).empty());
    auto claimed = store->claim_deliveries(now(), 60s, 100);
    ASSERT_TRUE(claimed.is_ok());
    EXPECT_TRUE(claimed->empty());
}

// Event ids are UUIDs in the version 7 layout: unique, and in the order
// they were made once the millisecond changes (the outbox's event_id index
// grows at its end).
TEST(EventIds, AreVersionSevenUuidsInTimeOrder) {
    std::set<std::string> seen;
    const std::string first = new_event_id();
    std::string later = first;
    for (int i = 0; i < 1000000 && later.substr(0, 13) == first.substr(0, 13); ++i) {
        later = new_event_id();
        seen.insert(later);
    }
    ASSERT_NE(later.substr(0, 13), first.substr(0, 13)) << "the millisecond never changed";
    EXPECT_GT(later, first);
    EXPECT_EQ(seen.count(first), 0u);
    for (const std::string& id : {first, later}) {
        ASSERT_EQ(id.size(), 36u) << id;
        EXPECT_EQ(id[8], '-');
        EXPECT_EQ(id[14], '7') << id;
        EXPECT_NE(std::string("89AB").find(id[19]), std::string::npos) << id;
    }
}

}  // namespace
}  // namespace courier::db
