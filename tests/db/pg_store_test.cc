// db/postgres/: PgStore beyond the Store contract — several stores ("nodes")
// on one database taking turns per enrollment, claims, migrations under an
// advisory lock, an unreachable database, shared key material.
#include <libpq-fe.h>

#include <map>

#include "db/postgres/pg_connection.h"
#include "db/postgres/pg_store.h"
#include "tests/db/store_fixture.h"
#include "tests/support/pg_test_db.h"
#include "tests/support/tcp_forward.h"

namespace courier::db {
namespace {

using namespace store_tests;

class PgStoreTest : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string why = pg_test_unavailable();
        if (!why.empty()) {
            if (pg_test_must_run()) FAIL() << why;
            GTEST_SKIP() << why;
        }
        db_ = std::make_unique<PgTestDb>();
        ASSERT_TRUE(db_->ok()) << db_->error();
    }
    void TearDown() override {
        nodes_.clear();
        db_.reset();
    }
    PgStore& node(const PgOptions& o = {}, const std::string& uri = "") {
        auto s = PgStore::open(uri.empty() ? db_->uri() : uri, o, clock_);
        EXPECT_TRUE(s.is_ok()) << s.status().to_string();
        if (!s) std::abort();
        nodes_.push_back(std::move(s).value());
        return *nodes_.back();
    }
    void enroll(Store& s, const std::string& id) {
        ASSERT_TRUE(s.apply_authenticate(auth_input(id), clock_.now()));
        ASSERT_TRUE(s.apply_token_update(token_input(id, id), clock_.now()));
    }
    SysTime now() const { return clock_.now(); }

    ManualClock clock_{kT0};
    std::unique_ptr<PgTestDb> db_;
    std::vector<std::unique_ptr<PgStore>> nodes_;
};

TEST_F(PgStoreTest, CommitsAreSynchronous) {
    auto& s = node();
    std::string value;
    ASSERT_TRUE(s.write([&](pg::Connection& c) {
        value = c.query("SHOW synchronous_commit").str(0, 0);
        return Status::ok();
    }));
    EXPECT_EQ(value, "on");
}

// Two nodes serve one device whose requests alternate between them and
// overlap: every command is reported once, in FIFO order, and none is handed
// out after its final report was acknowledged.
TEST_F(PgStoreTest, TwoNodesServingOneEnrollmentHandOutInOrderAndRecordEachResultOnce) {
    PgStore& a = node();
    PgStore& b = node();
    enroll(a, "DEV");
    constexpr int kCommands = 60;
    std::vector<std::string> uuids;
    for (int i = 0; i < kCommands; ++i) {
        NewCommand cmd{random_uuid(), "DeviceInformation", "<plist/>", std::nullopt};
        ASSERT_TRUE((i % 2 ? b : a).enqueue(cmd, {"DEV"}, now()).is_ok());
        uuids.push_back(cmd.uuid);
    }
    std::mutex mu;
    std::map<std::string, int64_t> acked_at;  // uuid → ack sequence number
    int64_t ack_seq = 0;
    std::vector<std::string> first_handout;
    std::atomic<int> errors{0}, handed_after_ack{0};
    auto worker = [&](int t) {
        Store& s = (t % 2) ? static_cast<Store&>(b) : static_cast<Store&>(a);
        for (int round = 0; round < 400; ++round) {
            int64_t started;
            {
                std::lock_guard lk(mu);
                started = ack_seq;
                if (static_cast<int>(acked_at.size()) == kCommands) return;
            }
            auto r = s.next_command("DEV", false, now());
            if (!r.is_ok()) {
                ++errors;
                continue;
            }
            if (!r->has_value()) continue;
            const std::string uuid = (*r)->uuid;
            {
                std::lock_guard lk(mu);
                auto it = acked_at.find(uuid);
                if (it != acked_at.end() && it->second < started) ++handed_after_ack;
                if (std::find(first_handout.begin(), first_handout.end(), uuid) ==
                    first_handout.end())
                    first_handout.push_back(uuid);
            }
            Store& reporter = (round % 2) ? static_cast<Store&>(a) : static_cast<Store&>(b);
            auto rep = reporter.apply_report("DEV", uuid, TargetStatus::kAcknowledged,
                                             "<result t=\"" + std::to_string(t) + "\"/>", now());
            if (!rep.is_ok()) {
                ++errors;
                continue;
            }
            std::lock_guard lk(mu);
            acked_at.emplace(uuid, ++ack_seq);
        }
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) threads.emplace_back(worker, t);
    for (auto& t : threads) t.join();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(handed_after_ack.load(), 0);
    ASSERT_EQ(static_cast<int>(acked_at.size()), kCommands);
    EXPECT_EQ(first_handout, uuids);  // FIFO
    // One result each, recorded once: one report event per command.
    auto tl = a.timeline("DEV", 1000);
    ASSERT_TRUE(tl.is_ok());
    int reports = 0;
    for (const auto& e : *tl) reports += e.kind == "report";
    EXPECT_EQ(reports, kCommands);
    for (const auto& u : uuids) {
        auto c = b.command(u);
        ASSERT_TRUE(c.is_ok());
        EXPECT_EQ(c->targets.at(0).status, TargetStatus::kAcknowledged);
    }
    EXPECT_EQ(*a.queue_depth(), 0);
}

// The re-push sweep on three nodes at once: each due enrollment is claimed
// by exactly one of them.
TEST_F(PgStoreTest, DueRepushesAreClaimedByOneNodeEach) {
    PgStore& a = node();
    PgStore& b = node();
    PgStore& c = node();
    constexpr int kDevices = 120;
    std::vector<std::string> ids;
    for (int i = 0; i < kDevices; ++i) ids.push_back(fmt::format("D{:03}", i));
    for (const auto& id : ids) enroll(a, id);
    NewCommand cmd{random_uuid(), "DeviceInformation", "<plist/>", std::nullopt};
    ASSERT_TRUE(a.enqueue(cmd, ids, now()).is_ok());
    for (const auto& id : ids) ASSERT_TRUE(a.schedule_repush(id, now(), 1));
    std::mutex mu;
    std::multiset<std::string> claimed;
    auto sweep = [&](PgStore& s) {
        for (int i = 0; i < 40; ++i) {
            auto r = s.claim_due_repushes(now(), 7);
            ASSERT_TRUE(r.is_ok()) << r.status().to_string();
            std::lock_guard lk(mu);
            for (const auto& d : *r) claimed.insert(d.enrollment_id);
        }
    };
    std::thread ta(sweep, std::ref(a)), tb(sweep, std::ref(b)), tc(sweep, std::ref(c));
    ta.join();
    tb.join();
    tc.join();
    EXPECT_EQ(claimed.size(), static_cast<size_t>(kDevices));
    for (const auto& id : ids) EXPECT_EQ(claimed.count(id), 1u) << id;
    // Claimed ones are withheld for the lease, then due again (a node that
    // claimed them died before its push's outcome rescheduled them).
    EXPECT_TRUE(a.claim_due_repushes(now(), 1000)->empty());
    clock_.advance(61s);
    EXPECT_EQ(b.claim_due_repushes(now(), 1000)->size(), static_cast<size_t>(kDevices));
}

// Benchmark C's two-node delay: node A queues a command and pushes; the
// device comes to node B within the same second and fetches it; then A
// records APNs's 200. A knows nothing of the visit (not in its memory, and
// last_seen has whole seconds), but B's request disarmed the push, so the
// answer marks nothing and the next command is pushed at once rather than
// coalesced onto a push the device already answered.
TEST_F(PgStoreTest, APushAnsweredAfterTheDeviceCameToAnotherNodeIsNotPending) {
    PgStore& a = node();
    PgStore& b = node();
    enroll(a, "A");
    NewCommand first{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    ASSERT_TRUE(a.enqueue(first, {"A"}, now()).is_ok());
    const SysTimeMs sent = clock_.now_ms();
    b.touch_last_seen({"A"}, sent + 300ms);
    auto got = b.next_command("A", true, now());
    ASSERT_TRUE(got.is_ok() && got->has_value());
    PushOutcomeRecord r;
    r.attempt = PushAttempt{"A", now(), 200, "apns-1", ""};
    r.repush_at = now() + 60s;
    r.attempts = 1;
    r.sent_at = sent;
    r.pending_until = now() + 60s;
    ASSERT_TRUE(a.record_push_outcomes({r}));
    EXPECT_FALSE(a.enrollment("A")->push_pending_at(now()));
    NewCommand second{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    auto q = a.enqueue(second, {"A"}, now());
    ASSERT_TRUE(q.is_ok());
    EXPECT_TRUE(q->pending_push.empty());
}

// A device request's reads said up front come back in one statement: inside
// the scope enrollment_state, binding and has_pending answer from that
// snapshot (a write by another node meanwhile is not seen), the same values
// the reads give one by one; reads of other keys still go to the database;
// after the scope the database answers again.
TEST_F(PgStoreTest, ADeviceRequestsReadsComeFromOneSnapshotWhileItsScopeLives) {
    PgStore& a = node();
    PgStore& b = node();
    enroll(a, "A");
    enroll(a, "B");
    const std::string cert(64, 'c');
    ASSERT_TRUE(a.bind_cert(cert, "A", std::nullopt, now()));
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    ASSERT_TRUE(a.enqueue(cmd, {"A"}, now()).is_ok());
    const auto one_by_one = a.enrollment_state("A");
    ASSERT_TRUE(one_by_one.is_ok());
    {
        auto scope = a.device_read_scope({"A", cert, true, now()});
        ASSERT_TRUE(scope);
        EXPECT_EQ(a.device_read_scope({"A", cert, true, now()}), nullptr);  // one at a time
        // Another node changes all three (revoking the binding clears the
        // push token and cancels the queue).
        ASSERT_TRUE(b.set_retired("A", true, now()));
        ASSERT_TRUE(b.revoke_binding("A", cert, now()));

        auto e = a.enrollment_state("A");
        ASSERT_TRUE(e.is_ok());
        EXPECT_EQ(e->state, one_by_one->state);
        EXPECT_EQ(e->device_id, "A");
        EXPECT_EQ(e->push_magic, one_by_one->push_magic);
        EXPECT_EQ(e->push_token, one_by_one->push_token);
        EXPECT_EQ(e->topic, one_by_one->topic);
        auto bound = a.binding(cert);
        ASSERT_TRUE(bound.is_ok() && bound->has_value());
        EXPECT_EQ((*bound)->state, BindingState::kActive);
        EXPECT_EQ((*bound)->device_id, "A");
        auto pending = a.has_pending("A", now());
        ASSERT_TRUE(pending.is_ok());
        EXPECT_TRUE(*pending);
        // Other keys are read from the database.
        auto later = a.has_pending("A", now() + 1s);
        ASSERT_TRUE(later.is_ok());
        EXPECT_FALSE(*later);
        EXPECT_TRUE(a.enrollment_state("B").is_ok());
        auto other = a.binding(std::string(64, 'd'));
        ASSERT_TRUE(other.is_ok());
        EXPECT_FALSE(other->has_value());
    }
    EXPECT_EQ(a.enrollment_state("A")->state, EnrollmentState::kRetired);
    EXPECT_EQ((*a.binding(cert))->state, BindingState::kRevoked);
    auto after = a.has_pending("A", now());
    ASSERT_TRUE(after.is_ok());
    EXPECT_FALSE(*after);

    // Missing rows are missing inside the scope too; the pending flag is
    // false unless asked for.
    auto scope = a.device_read_scope({"NONE", std::string(64, 'e'), false, now()});
    ASSERT_TRUE(scope);
    EXPECT_EQ(a.enrollment_state("NONE").status().code(), Code::kNotFound);
    auto none = a.binding(std::string(64, 'e'));
    ASSERT_TRUE(none.is_ok());
    EXPECT_FALSE(none->has_value());
    auto none_pending = a.has_pending("NONE", now());
    ASSERT_TRUE(none_pending.is_ok());
    EXPECT_FALSE(*none_pending);
}

// Concurrent requests' reads share statements, at most two at once and at
// most 64 requests each: two readers' statements are held up (another
// session holds an exclusive lock on cert_bindings), 66 more queue behind
// them, and two statements then carry those (64, then 2); every request
// gets its own rows (an enrollment with a command queued, one without, one
// missing; bound and unbound certificates).
TEST_F(PgStoreTest, ConcurrentDeviceReadsShareStatementsAndEachGetsItsOwnRows) {
    PgStore& a = node();
    constexpr int kHeld = 2;     // statements running at once
    constexpr int kBehind = 66;  // more than one statement's 64
    constexpr int kReaders = kHeld + kBehind;
    auto id_of = [](int i) { return fmt::format("R{}", i); };
    auto cert_of = [](int i) { return fmt::format("{:064x}", i); };
    // i % 3 == 0: enrolled with a command queued; 1: enrolled, nothing
    // queued; 2: not enrolled. Even i: the certificate is bound to it.
    for (int i = 0; i < kReaders; ++i) {
        if (i % 3 == 2) continue;
        enroll(a, id_of(i));
        if (i % 2 == 0) {
            ASSERT_TRUE(a.bind_cert(cert_of(i), id_of(i), std::nullopt, now()));
        }
        if (i % 3 == 0) {
            NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
            ASSERT_TRUE(a.enqueue(cmd, {id_of(i)}, now()).is_ok());
        }
    }
    PGconn* blocker = PQconnectdb(db_->uri().c_str());
    ASSERT_EQ(PQstatus(blocker), CONNECTION_OK) << PQerrorMessage(blocker);
    auto exec = [&](const char* sql) {
        PGresult* r = PQexec(blocker, sql);
        const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        return ok;
    };
    ASSERT_TRUE(exec("BEGIN"));
    ASSERT_TRUE(exec("LOCK TABLE cert_bindings IN ACCESS EXCLUSIVE MODE"));

    const auto before = a.device_read_stats();
    auto reached = [&](auto cond) {
        for (int i = 0; i < 1000; ++i) {
            if (cond(a.device_read_stats())) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return false;
    };
    std::atomic<int> wrong{0};
    std::vector<std::thread> readers;
    auto start_reader = [&](int i) {
        readers.emplace_back([&, i] {
            auto scope = a.device_read_scope({id_of(i), cert_of(i), true, now()});
            if (!scope) {
                ++wrong;
                return;
            }
            auto e = a.enrollment_state(id_of(i));
            auto bound = a.binding(cert_of(i));
            auto pending = a.has_pending(id_of(i), now());
            const bool enrolled = i % 3 != 2;
            bool right = e.is_ok() == enrolled && bound.is_ok() && pending.is_ok() &&
                         bound->has_value() == (enrolled && i % 2 == 0) && *pending == (i % 3 == 0);
            if (right && enrolled) right = e->device_id == id_of(i);
            if (right && bound->has_value()) right = (*bound)->device_id == id_of(i);
            if (!right) ++wrong;
        });
    };
    // One reader at a time until two statements wait on the lock, each
    // with its own reader alone.
    for (int i = 0; i < kHeld; ++i) {
        start_reader(i);
        EXPECT_TRUE(reached([&](const PgStore::DeviceReadStats& st) {
            return st.in_flight == i + 1 && st.reads - before.reads == uint64_t(i + 1);
        })) << "reader "
            << i;
    }
    // The rest queue: no third statement starts.
    for (int i = kHeld; i < kReaders; ++i) start_reader(i);
    const bool all_waiting = reached([&](const PgStore::DeviceReadStats& st) {
        return st.in_flight == kHeld && st.reads - before.reads + st.queued == kReaders;
    });
    EXPECT_TRUE(all_waiting);
    EXPECT_EQ(a.device_read_stats().queued, static_cast<size_t>(kBehind));
    ASSERT_TRUE(exec("COMMIT"));
    PQfinish(blocker);
    for (auto& t : readers) t.join();
    EXPECT_EQ(wrong.load(), 0);
    const auto after = a.device_read_stats();
    EXPECT_EQ(after.reads - before.reads, static_cast<uint64_t>(kReaders));
    // The two held up, then 64 of those queued behind them, then the last 2.
    EXPECT_EQ(after.statements - before.statements, 4u);
    EXPECT_EQ(after.queued, 0u);
}

TEST_F(PgStoreTest, ASingleUseEnrollmentTokenIsUsedOnceAcrossNodes) {
    PgStore& a = node();
    PgStore& b = node();
    EnrollmentToken t{"tok-1", std::string(64, 'a'), 1, std::nullopt, now(), ""};
    ASSERT_TRUE(a.put_enrollment_token(t));
    std::atomic<int> ok{0}, forbidden{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&, i] {
            Status s = (i % 2 ? a : b).consume_enrollment_token(t.token_sha256, now());
            (s.is_ok() ? ok : forbidden)++;
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(ok.load(), 1);
    EXPECT_EQ(forbidden.load(), 7);
}

TEST_F(PgStoreTest, NodesStartingTogetherMigrateOnce) {
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&] {
            auto s = PgStore::open(db_->uri(), PgOptions{}, clock_);
            if (!s.is_ok()) ++failures;
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(db_->query("SELECT version FROM courier_schema"),
              std::to_string(PgStore::latest_schema_version()));
    EXPECT_EQ(db_->query("SELECT count(*) FROM courier_schema"), "1");
}

TEST_F(PgStoreTest, ASchemaMoreThanOneReleaseNewerIsRefused) {
    node();
    nodes_.clear();
    const int latest = PgStore::latest_schema_version();
    // One release newer, keeping this one working: starts.
    db_->query(
        fmt::format("UPDATE courier_schema SET version = {}, works_from = {}", latest + 1, latest));
    EXPECT_TRUE(PgStore::open(db_->uri(), PgOptions{}, clock_).is_ok());
    // Newer than that: refused, with a message saying what to do.
    db_->query(fmt::format("UPDATE courier_schema SET version = {}, works_from = {}", latest + 2,
                           latest + 1));
    auto s = PgStore::open(db_->uri(), PgOptions{}, clock_);
    ASSERT_FALSE(s.is_ok());
    EXPECT_EQ(s.status().code(), Code::kInvalid);
    EXPECT_NE(s.status().message().find("newer"), std::string::npos) << s.status().message();
    EXPECT_EQ(db_->query("SELECT version FROM courier_schema"), std::to_string(latest + 2));
}

// The database goes away and comes back: calls fail with kUnavailable (never
// kNotFound) meanwhile, and succeed again once it is back, on the same store.
TEST_F(PgStoreTest, AnUnreachableDatabaseIsUnavailableAndIsUsedAgainWhenBack) {
    auto base = pg_test_base_uri();
    auto colon = base->rfind(':');
    uint16_t port = static_cast<uint16_t>(std::stoi(base->substr(colon + 1)));
    auto fwd = test::TcpForward::start(port);
    ASSERT_NE(fwd, nullptr);
    std::string uri = db_->uri();
    uri.replace(uri.find(std::to_string(port)), std::to_string(port).size(),
                std::to_string(fwd->port()));
    PgStore& s = node({}, uri);
    enroll(s, "DEV");
    fwd->set_down(true);
    EXPECT_EQ(s.ping().code(), Code::kUnavailable);
    EXPECT_EQ(s.enrollment("DEV").status().code(), Code::kUnavailable);
    NewCommand cmd{random_uuid(), "DeviceLock", "<plist/>", std::nullopt};
    EXPECT_EQ(s.enqueue(cmd, {"DEV"}, now()).status().code(), Code::kUnavailable);
    EXPECT_EQ(s.next_command("DEV", true, now()).status().code(), Code::kUnavailable);
    fwd->set_down(false);
    // Reconnects with a backoff of at most 2 s: bounded wait.
    auto deadline = std::chrono::steady_clock::now() + 15s;
    while (!s.ping().is_ok() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(100ms);
    ASSERT_TRUE(s.ping());
    EXPECT_TRUE(s.enqueue(cmd, {"DEV"}, now()).is_ok());
    auto next = s.next_command("DEV", true, now());
    ASSERT_TRUE(next.is_ok());
    ASSERT_TRUE(next->has_value());
    EXPECT_EQ((*next)->uuid, cmd.uuid);
}

TEST_F(PgStoreTest, ThePoolIsBounded) {
    PgOptions o;
    o.pool_size = 3;
    PgStore& s = node(o);
    enroll(s, "DEV");
    std::vector<std::thread> threads;
    for (int i = 0; i < 12; ++i)
        threads.emplace_back([&] {
            for (int j = 0; j < 20; ++j) ASSERT_TRUE(s.enrollment("DEV").is_ok());
        });
    for (auto& t : threads) t.join();
    EXPECT_LE(s.open_connections(), 3u);
}

// Generated key material: the first node's files are stored; a second node
// with an empty data dir gets the same ones (and generates nothing).
TEST_F(PgStoreTest, GeneratedFilesAreSharedThroughTheDatabase) {
    TempDir d1, d2;
    PgStore& a = node();
    PgStore& b = node();
    int generated = 0;
    auto gen = [&](const fs::path& dir) {
        return [&, dir]() -> Status {
            if (!fs::exists(dir / "api-key")) {
                ++generated;
                std::ofstream(dir / "api-key") << "secret-" << generated;
            }
            return Status::ok();
        };
    };
    ASSERT_TRUE(a.share_files(d1.path().string(), {"api-key", "tls/ca.crt"}, gen(d1.path())));
    ASSERT_TRUE(b.share_files(d2.path().string(), {"api-key", "tls/ca.crt"}, gen(d2.path())));
    EXPECT_EQ(generated, 1);
    std::ifstream f(d2.path() / "api-key");
    std::string key;
    std::getline(f, key);
    EXPECT_EQ(key, "secret-1");
    EXPECT_EQ(fs::status(d2.path() / "api-key").permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write);
    EXPECT_EQ(db_->query("SELECT count(*) FROM secrets"), "1");
}

}  // namespace
}  // namespace courier::db
