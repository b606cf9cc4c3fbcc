// SqliteStore: opening, the group-commit writer, the read pool and last-seen
// batching. The SQL of each area lives in sqlite_enrollments.cc,
// sqlite_queue.cc and sqlite_push.cc.
#include "db/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "db/sqlite/migrations.h"
#include "db/sqlite/sqlite_internal.h"
#include "db/sqlite/sqlite_statement.h"

namespace courier::db {

using sqlite::Connection;
using sqlite::SqlError;

struct SqliteStore::WriteJob {
    Work fn;
    std::vector<OutboxEvent> events;  // attached by the caller (attach_events)
    Status result;
    bool done = false;
    std::condition_variable cv;
    // A deferred write (write_deferred): no caller waits; the writer calls
    // this after the commit (or failure) and deletes the job.
    std::function<void(const Status&)> on_done;
};

namespace {

// SQLite creates -wal and -shm with the database file's permission bits, so
// creating (or tightening) the database file 0600 covers all three.
Status create_private_file(const std::string& path) {
    if (path.empty() || path == ":memory:" || path.rfind("file:", 0) == 0) return Status::ok();
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        return internal_error("cannot create database file " + path + ": " + std::strerror(errno));
    }
    int rc = ::fchmod(fd, 0600);
    int err = errno;
    ::close(fd);
    if (rc != 0) return internal_error("cannot chmod 0600 " + path + ": " + std::strerror(err));
    return Status::ok();
}

// Events the calling thread attached (WebhookStore::attach_events), for the
// next write it makes through `store`.
struct AttachedEvents {
    const SqliteStore* store = nullptr;
    std::vector<OutboxEvent>* events = nullptr;
};
thread_local AttachedEvents tl_attached;
// Writer thread: did the closure being run take effect (sqlite::note_no_effect)?
thread_local bool tl_effective = true;
// Writer thread: the enrollments the closure took effect for, when it said
// (sqlite::note_effective_for); nullptr: all.
thread_local const std::vector<std::string>* tl_effective_for = nullptr;

// The running job's fresh deliveries (sqlite::note_fresh_delivery); nullptr
// outside a job.
thread_local std::vector<ClaimedDelivery>* tl_fresh = nullptr;

// Runs fn, turning a thrown SqlError into its Status.
Status guarded(const std::function<Status(Connection&)>& fn, Connection& conn) {
    try {
        return fn(conn);
    } catch (const SqlError& e) {
        return e.status();
    }
}

}  // namespace

void sqlite::note_fresh_delivery(ClaimedDelivery d) {
    if (tl_fresh) tl_fresh->push_back(std::move(d));
}

void sqlite::note_no_effect() {
    tl_effective = false;
}

void sqlite::note_effective_for(const std::vector<std::string>* ids) {
    tl_effective_for = ids;
}

class SqliteStore::Attachment : public EventAttachment {
  public:
    Attachment(const SqliteStore& store, std::vector<OutboxEvent> events)
        : events_(std::move(events)), previous_(tl_attached) {
        tl_attached = {&store, &events_};
    }
    ~Attachment() override { tl_attached = previous_; }

  private:
    std::vector<OutboxEvent> events_;
    AttachedEvents previous_;
};

std::unique_ptr<EventAttachment> SqliteStore::attach_events(std::vector<OutboxEvent> events) {
    return std::make_unique<Attachment>(*this, std::move(events));
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path,
                                                       const SqliteOptions& options,
                                                       const Clock& clock) {
    // SQLite counts every allocation under one process-wide mutex unless
    // told not to; every connection's thread took it for each malloc and
    // free (docs/storage.md "Readers"). Nothing reads those counts. Only
    // possible before SQLite initializes: later it is refused, harmlessly.
    static std::once_flag no_memstatus;
    std::call_once(no_memstatus, [] { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
    if (Status s = create_private_file(path); !s) return s;
    auto conn = Connection::open(path, /*read_only=*/false, options.busy_timeout_ms);
    if (!conn) return conn.status();
    // journal_mode is persistent in the file; set before any transaction.
    Status s = (*conn)->try_exec("PRAGMA journal_mode = WAL");
    if (!s) return s;
    // Checkpoint every 10,000 WAL pages, not 1,000: hot pages rewritten by
    // many commits are copied back once. The writer's page cache is 32 MiB
    // (SQLite's default is 2 MiB): its working set is every busy
    // enrollment's queue and timeline pages (docs/storage.md).
    // temp_store MEMORY: each write's savepoint journal (the pages it changes
    // that earlier writes of its batch already changed) stays in memory; by
    // default one over 64 KiB spills to a temporary file, which a batch with
    // webhook deliveries' outcomes did at every commit (bench W).
    s = (*conn)->try_exec(
        "PRAGMA wal_autocheckpoint = 10000; PRAGMA cache_size = -32768; "
        "PRAGMA temp_store = MEMORY");
    if (!s) return s;
    if (s = sqlite::migrate(**conn); !s) return s;
    // Bindings made before migration 5 may leave a device with several
    // active identities (a planted one among them): said at every start, and
    // flagged in GET /v1/devices/{id}/bindings (multiple_active).
    try {
        auto st = (*conn)->prepare(
            "SELECT count(*) FROM (SELECT device_id FROM cert_bindings WHERE state = 'active' "
            "GROUP BY device_id HAVING count(*) > 1)");
        int64_t several = st.step() ? st.int64(0) : 0;
        st.reset();
        if (several > 0)
            spdlog::warn(
                "{} device(s) have more than one active identity certificate (bindings from "
                "before re-binding checks): each is accepted; review GET "
                "/v1/devices/{{id}}/bindings (multiple_active) and revoke the ones not yours",
                several);
    } catch (const sqlite::SqlError&) {
        spdlog::warn("store: could not count devices with several active identities");
    }
    return std::unique_ptr<SqliteStore>(
        new SqliteStore(path, options, clock, std::move(conn).value()));
}

SqliteStore::SqliteStore(std::string path, const SqliteOptions& options, const Clock& clock,
                         std::unique_ptr<Connection> writer)
    : path_(std::move(path)), options_(options), clock_(clock), writer_conn_(std::move(writer)) {
    writer_ = std::thread([this] { writer_loop(); });
}

SqliteStore::~SqliteStore() {
    close();
}

void SqliteStore::close() {
    {
        std::lock_guard lk(mu_);
        if (stopping_ && !writer_.joinable()) return;
        stopping_ = true;
    }
    work_cv_.notify_one();
    if (writer_.joinable()) writer_.join();
    std::lock_guard lk(pool_mu_);
    read_pool_.clear();
}

Status SqliteStore::write(Work fn) {
    WriteJob job;
    job.fn = std::move(fn);
    if (tl_attached.store == this && tl_attached.events) job.events.swap(*tl_attached.events);
    std::unique_lock lk(mu_);
    if (stopping_) return unavailable("store is closed");
    pending_.push_back(&job);
    work_cv_.notify_one();
    job.cv.wait(lk, [&] { return job.done; });
    return job.result;
}

void SqliteStore::write_deferred(Work fn, std::function<void(const Status&)> done) {
    auto* job = new WriteJob;
    job->fn = std::move(fn);
    job->on_done = std::move(done);
    std::unique_lock lk(mu_);
    if (stopping_) {
        lk.unlock();
        job->on_done(unavailable("store is closed"));
        delete job;
        return;
    }
    if (deferred_.empty()) deferred_since_ = std::chrono::steady_clock::now();
    deferred_.push_back(job);
    if (deferred_.size() == 1) work_cv_.notify_one();  // the writer sets its wake-up
}

SqliteStore::WriterStats SqliteStore::writer_stats() const {
    std::lock_guard lk(mu_);
    return stats_;
}

size_t SqliteStore::pending_writes() const {
    std::lock_guard lk(mu_);
    return pending_.size();
}

void SqliteStore::writer_loop() {
    using Steady = std::chrono::steady_clock;
    auto next_flush = Steady::now() + options_.last_seen_flush;
    std::unique_lock lk(mu_);
    for (;;) {
        // Deferred writes ride on the next batch, or go on their own once
        // the oldest has waited kDeferredWait.
        auto wake_at = next_flush;
        if (!deferred_.empty()) wake_at = std::min(wake_at, deferred_since_ + kDeferredWait);
        const bool had_deferred = !deferred_.empty();
        work_cv_.wait_until(lk, wake_at, [&] {
            return stopping_ || !pending_.empty() || (!had_deferred && !deferred_.empty());
        });
        const auto woke = Steady::now();
        bool flush_seen = stopping_ || woke >= next_flush;
        bool deferred_due = !deferred_.empty() && (stopping_ || flush_seen || !pending_.empty() ||
                                                   woke >= deferred_since_ + kDeferredWait);
        if (pending_.empty() && !flush_seen && !deferred_due) continue;
        std::vector<WriteJob*> batch;
        while (!pending_.empty() && batch.size() < options_.max_batch) {
            batch.push_back(pending_.front());
            pending_.pop_front();
        }
        if (deferred_due) {
            for (WriteJob* job : deferred_) batch.push_back(job);
            deferred_.clear();
        }
        lk.unlock();

        std::unordered_map<std::string, int64_t> seen, used;
        std::deque<SeenGeneration> expired;  // freed outside seen_mu_
        if (flush_seen) {
            SeenGeneration flushed;
            const int64_t now_ms = clock_.now_ms().time_since_epoch().count();
            std::lock_guard seen_lk(seen_mu_);
            seen.swap(last_seen_);
            used.swap(binding_used_);
            // Kept a few seconds more, so a push outcome recorded right after
            // this flush still compares to the millisecond (see
            // record_push_outcomes). Copied before the flush's transaction,
            // which may hold that outcome.
            if (!seen.empty()) {
                flushed.seen = seen;
                for (const auto& [id, at_ms] : seen)
                    flushed.newest_ms = std::max(flushed.newest_ms, at_ms);
                recent_seen_.push_back(std::move(flushed));
            }
            while (!recent_seen_.empty() &&
                   (recent_seen_.size() > kMaxSeenGenerations ||
                    recent_seen_.front().newest_ms < now_ms - kKeepSeenMs)) {
                expired.push_back(std::move(recent_seen_.front()));
                recent_seen_.pop_front();
            }
            next_flush = Steady::now() + options_.last_seen_flush;
        }
        expired.clear();
        if (!batch.empty() || !seen.empty() || !used.empty()) commit_batch(batch, seen, used);
        // Deferred writes: their callbacks, outside mu_; no one waits.
        size_t deferred_committed = 0;
        std::erase_if(batch, [&](WriteJob* job) {
            if (!job->on_done) return false;
            if (job->result) ++deferred_committed;
            job->on_done(job->result);
            delete job;
            return true;
        });

        lk.lock();
        size_t committed = deferred_committed;
        Status storage_failure;
        for (WriteJob* job : batch) {
            if (job->result) {
                ++committed;
            } else if (job->result.code() == Code::kUnavailable ||
                       job->result.code() == Code::kInternal) {
                storage_failure = job->result;
            }
            job->done = true;
            job->cv.notify_one();
        }
        if (committed > 0) {
            write_health_ = Status::ok();
        } else if (!storage_failure.is_ok()) {
            write_health_ = storage_failure;
        }
        if (committed > 0) {
            ++stats_.transactions;
            stats_.writes += committed;
            stats_.largest_batch = std::max(stats_.largest_batch, batch.size());
        }
        if (stopping_ && pending_.empty() && deferred_.empty()) break;
    }
}

void SqliteStore::commit_batch(std::vector<WriteJob*>& batch,
                               std::unordered_map<std::string, int64_t>& seen,
                               std::unordered_map<std::string, int64_t>& used) {
    Connection& conn = *writer_conn_;
    size_t next = 0;
    // Normally one pass; another only if SQLite aborted the transaction under
    // a closure (e.g. disk full), in which case the rest get a fresh one.
    while (next < batch.size() || !seen.empty() || !used.empty()) {
        if (Status s = conn.try_run("BEGIN IMMEDIATE"); !s) {
            for (; next < batch.size(); ++next) batch[next]->result = s;
            if (!seen.empty() || !used.empty())
                spdlog::warn("store: last-seen flush failed: {}", s.message());
            return;
        }
        if (!seen.empty() || !used.empty()) {
            Status s = conn.try_exec("SAVEPOINT seen");
            if (s) {
                s = guarded(
                    [&](Connection& c) {
                        auto st = c.prepare(
                            "UPDATE enrollments SET last_seen = ?2 WHERE id = ?1 AND "
                            "(last_seen IS NULL OR last_seen < ?2)");
                        for (const auto& [id, at_ms] : seen) {
                            st.bind(id, at_ms / 1000).run();
                        }
                        auto bu = c.prepare(
                            "UPDATE cert_bindings SET last_used = ?2 WHERE cert_sha256 = ?1 AND "
                            "(last_used IS NULL OR last_used < ?2)");
                        for (const auto& [cert, at] : used) {
                            bu.bind(cert, at).run();
                        }
                        return Status::ok();
                    },
                    conn);
                if (!s && conn.in_transaction()) (void)conn.try_exec("ROLLBACK TO seen");
                if (conn.in_transaction()) (void)conn.try_exec("RELEASE seen");
            }
            if (!s) spdlog::warn("store: last-seen flush failed: {}", s.message());
            seen.clear();
            used.clear();
        }
        std::vector<WriteJob*> done_in_tx;
        std::vector<ClaimedDelivery> fresh_in_tx, fresh_in_job;
        bool aborted = false;
        for (; next < batch.size() && !aborted; ++next) {
            WriteJob& job = *batch[next];
            Status s = conn.try_run("SAVEPOINT job");
            tl_effective = true;
            tl_effective_for = nullptr;
            fresh_in_job.clear();
            tl_fresh = &fresh_in_job;
            if (s) s = guarded(job.fn, conn);
            if (s && !job.events.empty()) {
                bool effective = tl_effective;
                const std::vector<std::string>* effective_for = tl_effective_for;
                s = guarded(
                    [&](Connection& c) {
                        sqlite::append_outbox(c, job.events, effective, effective_for);
                        return Status::ok();
                    },
                    conn);
            }
            tl_fresh = nullptr;
            if (s) s = conn.try_run("RELEASE job");
            if (s) {
                done_in_tx.push_back(&job);
                for (auto& d : fresh_in_job) fresh_in_tx.push_back(std::move(d));
                continue;
            }
            job.result = s;
            if (!conn.in_transaction() || !conn.try_run("ROLLBACK TO job") ||
                !conn.try_run("RELEASE job")) {
                aborted = true;
            }
        }
        Status commit =
            aborted ? unavailable("transaction aborted by a failed write") : conn.try_run("COMMIT");
        if (!commit && conn.in_transaction()) (void)conn.try_run("ROLLBACK");
        for (WriteJob* job : done_in_tx) job->result = commit;
        if (commit && !fresh_in_tx.empty()) hand_off(std::move(fresh_in_tx));
        if (!commit && !aborted) return;
    }
}

namespace {
// The read scope open on this thread, if any.
struct OpenScope {
    const SqliteStore* store = nullptr;
    Connection* conn = nullptr;
};
thread_local OpenScope tl_scope;
}  // namespace

class SqliteStore::Scope : public ReadScope {
  public:
    Scope(SqliteStore& s, std::unique_ptr<Connection> c) : store_(s), conn_(std::move(c)) {
        tl_scope = {&store_, conn_.get()};
    }
    ~Scope() override {
        tl_scope = {};
        if (conn_->in_transaction()) (void)conn_->try_run("COMMIT");
        store_.return_reader(std::move(conn_));
    }

  private:
    SqliteStore& store_;
    std::unique_ptr<Connection> conn_;
};

Result<std::unique_ptr<Connection>> SqliteStore::take_reader() {
    {
        std::lock_guard lk(pool_mu_);
        if (!read_pool_.empty()) {
            auto conn = std::move(read_pool_.back());
            read_pool_.pop_back();
            return conn;
        }
    }
    return Connection::open(path_, /*read_only=*/true, options_.busy_timeout_ms);
}

void SqliteStore::return_reader(std::unique_ptr<Connection> conn) {
    std::lock_guard lk(pool_mu_);
    if (read_pool_.size() < options_.read_pool) read_pool_.push_back(std::move(conn));
}

std::unique_ptr<ReadScope> SqliteStore::read_scope() {
    if (tl_scope.conn) return nullptr;  // already inside one: share it
    auto conn = take_reader();
    if (!conn) return nullptr;  // reads fall back to their own transactions
    if (!(*conn)->try_run("BEGIN")) {
        return_reader(std::move(*conn));
        return nullptr;
    }
    return std::make_unique<Scope>(*this, std::move(*conn));
}

Status SqliteStore::read(const Work& fn) {
    if (tl_scope.store == this && tl_scope.conn) return guarded(fn, *tl_scope.conn);
    auto conn = take_reader();
    if (!conn) return conn.status();
    Status s = (*conn)->try_run("BEGIN");
    if (s) {
        s = guarded(fn, **conn);
        if ((*conn)->in_transaction()) (void)(*conn)->try_run(s ? "COMMIT" : "ROLLBACK");
    }
    return_reader(std::move(*conn));
    return s;
}

Status SqliteStore::ping() {
    Status s = read([](Connection& c) {
        auto st = c.prepare("SELECT 1");
        if (!st.step()) return internal_error("ping: no row");
        return Status::ok();
    });
    if (!s) return s;
    Status health;
    {
        std::lock_guard lk(mu_);
        health = write_health_;
    }
    if (health) return Status::ok();
    // The last writes failed: probe with a small real write, committed and
    // fsynced, that needs pages of its own (64 KiB: more than the few free
    // pages a file keeps) — a table made, filled and dropped: nothing stays.
    Status probe = write([](Connection& c) {
        c.exec(
            "CREATE TABLE courier_write_probe (x); "
            "INSERT INTO courier_write_probe VALUES (zeroblob(65536)); "
            "DROP TABLE courier_write_probe;");
        return Status::ok();
    });
    if (!probe) return unavailable("writes fail: " + probe.message());
    return Status::ok();
}

void SqliteStore::touch_last_seen(const std::vector<std::string>& ids, SysTimeMs now) {
    std::lock_guard lk(seen_mu_);
    for (const auto& id : ids) {
        int64_t& at_ms = last_seen_[id];
        at_ms = std::max(at_ms, static_cast<int64_t>(now.time_since_epoch().count()));
    }
}

int64_t SqliteStore::seen_ms_locked(const std::string& id) const {
    int64_t at_ms = 0;
    if (auto it = last_seen_.find(id); it != last_seen_.end()) at_ms = it->second;
    for (const auto& gen : recent_seen_) {
        if (auto it = gen.seen.find(id); it != gen.seen.end()) at_ms = std::max(at_ms, it->second);
    }
    return at_ms;
}

void SqliteStore::overlay_last_seen(Enrollment& e) const {
    std::lock_guard lk(seen_mu_);
    auto it = last_seen_.find(e.id);
    if (it == last_seen_.end()) return;
    int64_t at = it->second / 1000;
    if (!e.last_seen || to_unix(*e.last_seen) < at) e.last_seen = from_unix(at);
}

}  // namespace courier::db
