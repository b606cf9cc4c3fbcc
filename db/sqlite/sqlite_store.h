// SqliteStore: the Store contract on one SQLite file.
//
// Threads and transactions
// - One writer thread owns the only read-write connection. A write method
//   submits a closure and blocks until the transaction containing it has
//   committed (group commit): the writer takes every pending closure (up to
//   SqliteOptions::max_batch), runs them in one BEGIN IMMEDIATE ... COMMIT,
//   each inside its own SAVEPOINT (with the webhook events the caller
//   attached, appended in the same savepoint). A closure that fails is rolled back to its
//   savepoint and gets its own error; its batch-mates still commit. Only after
//   COMMIT returns (synchronous=FULL: the WAL is fsynced) is each caller woken
//   with its result, so "ok" means durable.
// - Reads run on read-only connections from a small pool, each read in its own
//   read transaction; WAL lets them proceed while the writer commits.
// - touch_last_seen() and touch_binding() only update in-memory maps; the
//   writer folds them into a transaction about once a second
//   (SqliteOptions::last_seen_flush) and at close. enrollment(),
//   list_enrollments() and the binding reads overlay the unflushed values.
//   Flushed last-seen times stay in memory a few seconds more (kKeepSeen),
//   so record_push_outcomes still tells them to the millisecond right after
//   a flush.
// - Locks are held only around queue/pool bookkeeping, never around user code
//   or while waiting for the disk on another caller's behalf.
// - close() (and the destructor) refuses new writes, lets the writer finish
//   everything submitted, flushes last-seen and joins the thread.
//
// Files: the database and its -wal/-shm are created 0600.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "db/store.h"

namespace courier::db {

namespace sqlite {
class Connection;
}

struct SqliteOptions {
    int busy_timeout_ms = 5000;  // another process holding the lock
    size_t max_batch = 1024;     // closures per group-commit transaction
    std::chrono::milliseconds last_seen_flush{1000};
    // Idle read connections kept open: enough for every request worker (32
    // by default) and I/O thread reading at once. Fewer made the busy path
    // open and close a connection (schema parse, statements re-prepared)
    // for most reads (docs/storage.md "Readers").
    size_t read_pool = 48;
};

class SqliteStore final : public Store {
  public:
    // Opens or creates the database at path and migrates it to the current
    // schema. kInvalid when the file's schema is newer than this build.
    // clock must outlive the store (used where a method takes no `now`).
    static Result<std::unique_ptr<SqliteStore>> open(const std::string& path,
                                                     const SqliteOptions& options,
                                                     const Clock& clock);
    ~SqliteStore() override;
    SqliteStore(const SqliteStore&) = delete;
    SqliteStore& operator=(const SqliteStore&) = delete;

    // Finishes submitted writes, flushes last-seen, stops the writer. Later
    // writes fail with kUnavailable. Idempotent.
    void close();

    // Runs fn inside the next group-commit transaction (in its own savepoint)
    // and returns once that transaction committed. For SQLite-specific
    // maintenance and tests; fn must not block on other store calls.
    Status write(std::function<Status(sqlite::Connection&)> fn);

    // Runs fn in a later group-commit transaction without waiting for it:
    // with the next batch of writes, or within kDeferredWait when none
    // comes; `done` gets the outcome on the writer thread after the commit
    // (kUnavailable when the store is closed). For work whose caller need
    // not wait (recording webhook delivery outcomes).
    void write_deferred(std::function<Status(sqlite::Connection&)> fn,
                        std::function<void(const Status&)> done);
    static constexpr std::chrono::milliseconds kDeferredWait{5};

    struct WriterStats {
        uint64_t transactions = 0;  // committed
        uint64_t writes = 0;        // closures that committed
        size_t largest_batch = 0;
    };
    WriterStats writer_stats() const;
    // Writes submitted and not yet taken by the writer.
    size_t pending_writes() const;

    Status ping() override;
    std::unique_ptr<ReadScope> read_scope() override;

    Status apply_authenticate(const AuthenticateInput& in, SysTime now) override;
    Status apply_token_update(const TokenUpdateInput& in, SysTime now) override;
    Status apply_checkout(const std::string& id, SysTime now) override;
    Result<Enrollment> enrollment(const std::string& id) override;
    Result<Enrollment> enrollment_state(const std::string& id) override;
    Result<PageOf<Enrollment>> list_enrollments(const EnrollmentFilter& f,
                                                const Page& page) override;
    Result<int64_t> user_channel_count(const std::string& device_id) override;
    Result<std::vector<std::string>> existing_enrollments(
        const std::vector<std::string>& ids) override;
    Result<std::optional<std::string>> unlock_token(const std::string& id) override;
    Status set_bootstrap_token(const std::string& id, const std::string& token,
                               const std::string& cert_sha256) override;
    Result<std::optional<std::string>> bootstrap_token(const std::string& id) override;
    Status set_retired(const std::string& id, bool retired, SysTime now) override;
    void touch_last_seen(const std::vector<std::string>& ids, SysTimeMs now) override;
    Status append_timeline(const std::string& id, const TimelineEvent& e) override;
    Result<std::vector<TimelineEvent>> timeline(const std::string& id, size_t limit) override;

    Result<std::optional<Binding>> binding(const std::string& cert_sha256) override;
    Result<std::vector<Binding>> bindings(const std::string& device_id) override;
    Result<std::optional<Binding>> active_binding(const std::string& device_id) override;
    Status bind_cert(const std::string& cert_sha256, const std::string& device_id,
                     std::optional<SysTime> not_after, SysTime now) override;
    Status request_binding(const std::string& cert_sha256, const std::string& device_id,
                           std::optional<SysTime> not_after, SysTime now) override;
    Status approve_binding(const std::string& device_id, const std::string& cert_sha256,
                           SysTime now) override;
    Status revoke_binding(const std::string& device_id, const std::string& cert_sha256,
                          SysTime now) override;
    Result<bool> note_superseded_use(const std::string& cert_sha256, SysTime now) override;
    void touch_binding(const std::string& cert_sha256, SysTime now) override;
    Status record_issued_identity(const std::string& cert_sha256, const std::string& token_sha256,
                                  SysTime now) override;
    Result<std::optional<std::string>> issued_with_token(const std::string& cert_sha256) override;

    Result<EnqueueResult> enqueue(const NewCommand& cmd, const std::vector<std::string>& targets,
                                  SysTime now) override;
    Result<std::optional<DeliveredCommand>> next_command(const std::string& id, bool include_notnow,
                                                         SysTime now) override;
    Result<bool> has_pending(const std::string& id, SysTime now) override;
    Result<std::optional<DeliveredCommand>> apply_report(const std::string& id,
                                                         const std::string& uuid,
                                                         TargetStatus status,
                                                         const std::string& report,
                                                         SysTime now) override;
    Result<CommandInfo> command(const std::string& uuid) override;
    Result<std::vector<std::string>> cancel_command(const std::string& uuid, SysTime now) override;
    Result<PageOf<CommandInfo>> list_commands(const CommandFilter& f, const Page& page) override;
    Result<int64_t> queue_depth() override;

    Result<int64_t> put_push_cert(const PushCert& cert, SysTime now) override;
    Result<std::vector<PushCert>> active_push_certs() override;
    Result<std::optional<PushCert>> active_push_cert(const std::string& topic) override;
    Result<std::vector<PushCert>> push_cert_history() override;
    Status mark_push_cert_unusable(int64_t id, const std::string& reason) override;

    Status record_push_attempt(const PushAttempt& a) override;
    Status mark_token_invalid(const std::string& id, SysTime now) override;
    Status schedule_repush(const std::string& id, SysTime at, int attempts) override;
    Status arm_pushes(const std::vector<std::string>& ids, SysTime now) override;
    Status record_push_outcomes(const std::vector<PushOutcomeRecord>& batch) override;
    Result<std::vector<RepushDue>> due_repushes(SysTime now, size_t limit) override;

    Status put_enrollment_token(const EnrollmentToken& t) override;
    Result<std::vector<EnrollmentToken>> enrollment_tokens() override;
    Status delete_enrollment_token(const std::string& id) override;
    Status consume_enrollment_token(const std::string& token_sha256, SysTime now) override;
    Status release_enrollment_token(const std::string& token_sha256) override;

    Status put_session(const ConsoleSession& s) override;
    Result<std::optional<ConsoleSession>> session(const std::string& id_sha256,
                                                  SysTime now) override;
    Status delete_session(const std::string& id_sha256) override;
    Result<Overview> overview(SysTime since) override;
    Result<int64_t> put_pending_push_key(const std::string& key_pem, SysTime now) override;
    Result<std::vector<PendingPushKey>> pending_push_keys() override;
    Status delete_pending_push_key(int64_t id) override;
    Result<std::vector<Webhook>> webhooks() override;
    Result<Webhook> webhook(const std::string& id) override;
    Status put_webhook(const Webhook& w, SysTime now) override;
    Status delete_webhook(const std::string& id) override;
    std::unique_ptr<EventAttachment> attach_events(std::vector<OutboxEvent> events) override;
    Status append_events(const std::vector<OutboxEvent>& events) override;
    Result<std::vector<ClaimedDelivery>> claim_deliveries(SysTime now, std::chrono::seconds lease,
                                                          size_t limit) override;
    std::vector<ClaimedDelivery> take_committed(SysTime now, std::chrono::seconds lease,
                                                size_t limit) override;
    Status finish_delivery(const ClaimedDelivery& claim, const DeliveryOutcome& outcome,
                           SysTime now) override;
    Status finish_deliveries(const std::vector<std::pair<ClaimedDelivery, DeliveryOutcome>>& batch,
                             SysTime now) override;
    Result<PageOf<Delivery>> list_deliveries(const std::string& webhook_id,
                                             std::optional<DeliveryStatus> status,
                                             const Page& page) override;
    Status retry_delivery(const std::string& webhook_id, const std::string& event_id,
                          SysTime now) override;
    Result<std::map<std::string, int64_t>> webhook_backlog() override;
    Result<int64_t> prune_deliveries(SysTime before) override;

  private:
    struct WriteJob;
    class Attachment;
    using Work = std::function<Status(sqlite::Connection&)>;

    SqliteStore(std::string path, const SqliteOptions& options, const Clock& clock,
                std::unique_ptr<sqlite::Connection> writer);

    // Runs fn in a read transaction on a pooled read-only connection (the
    // thread's read scope's, when one is open).
    Status read(const Work& fn);
    Result<std::unique_ptr<sqlite::Connection>> take_reader();
    void return_reader(std::unique_ptr<sqlite::Connection> conn);
    class Scope;
    void writer_loop();
    void commit_batch(std::vector<WriteJob*>& batch,
                      std::unordered_map<std::string, int64_t>& last_seen,
                      std::unordered_map<std::string, int64_t>& binding_used);
    // The newest in-memory last-seen time of id in ms (unflushed or flushed
    // within kKeepSeen), 0 if none. seen_mu_ held.
    int64_t seen_ms_locked(const std::string& id) const;
    // Applies the unflushed last-seen time to e.
    void overlay_last_seen(Enrollment& e) const;
    // Applies the unflushed last-used time to b.
    void overlay_binding_used(Binding& b) const;

    const std::string path_;
    const SqliteOptions options_;
    const Clock& clock_;
    std::unique_ptr<sqlite::Connection> writer_conn_;

    // enrollment() and enrollment_state(): one row by id, sql's columns.
    Result<Enrollment> enrollment_by(const std::string& sql, const std::string& id);
    mutable std::mutex mu_;  // guards pending_, stopping_, stats_
    std::condition_variable work_cv_;
    std::deque<WriteJob*> pending_;
    std::deque<WriteJob*> deferred_;                        // write_deferred's, owned here
    std::chrono::steady_clock::time_point deferred_since_;  // when deferred_ became non-empty
    bool stopping_ = false;
    WriterStats stats_;
    // The outcome of the last write batch: ok, or the storage error its
    // writes failed with (ping() reports it until a write succeeds).
    Status write_health_;
    std::thread writer_;

    mutable std::mutex seen_mu_;  // guards last_seen_, binding_used_
    // id → unix time in ms (flushed to the column as seconds).
    std::unordered_map<std::string, int64_t> last_seen_;
    std::unordered_map<std::string, int64_t> binding_used_;  // cert_sha256 → last_used
    // last_seen_ as flushed, one map per flush (a copy: O(flushed entries)),
    // oldest first; a map is dropped once its newest time is kKeepSeen old
    // (or beyond kMaxSeenGenerations maps, should the clock stand or go back).
    struct SeenGeneration {
        int64_t newest_ms = 0;
        std::unordered_map<std::string, int64_t> seen;
    };
    static constexpr int64_t kKeepSeenMs = 5000;
    static constexpr size_t kMaxSeenGenerations = 16;
    std::deque<SeenGeneration> recent_seen_;

    std::mutex pool_mu_;
    std::vector<std::unique_ptr<sqlite::Connection>> read_pool_;

    // Webhook delivery leases (WebhookStore::claim_deliveries). One process
    // owns a data dir, so a lease lives in memory only: a claim is a read
    // (no write per claim) and a restart voids every lease, which leaves
    // each delivery to be claimed again (at least once). A finished
    // delivery keeps a mark with the count of finishes committed when it
    // committed: a claim whose snapshot may predate that commit (it began
    // before) skips the row rather than sending it again.
    struct DeliveryLease {
        std::string lease;
        int64_t until = 0;      // unix seconds
        uint64_t finished = 0;  // 0: held; else finish_gen_ at its commit
    };
    std::mutex lease_mu_;
    std::map<std::pair<std::string, int64_t>, DeliveryLease> leases_;  // (webhook, seq)
    uint64_t finish_gen_ = 1;
    std::multiset<uint64_t> claims_in_flight_;  // finish_gen_ as each claim began
    // Deliveries the writer committed as pending, waiting for
    // take_committed (oldest first, at most kHandoffMax, each at most
    // kHandoffAge old). Each counts as a claim in flight that began at its
    // commit (gen), so finish marks newer than that stay until it is taken:
    // take_committed skips one finished meanwhile.
    struct Handoff {
        ClaimedDelivery claim;
        uint64_t gen = 0;               // finish_gen_ at its commit
        uint64_t webhooks_version = 0;  // destinations as of its commit
        std::chrono::steady_clock::time_point at;
    };
    static constexpr size_t kHandoffMax = 4096;
    static constexpr std::chrono::seconds kHandoffAge{10};
    std::deque<Handoff> handoff_;  // guarded by lease_mu_
    uint64_t handoff_leases_ = 0;  // take_committed's lease names (lease_mu_)
    // After a commit: the fresh deliveries of its jobs (writer thread).
    void hand_off(std::vector<ClaimedDelivery> fresh);
    // Drops a handed-off delivery (lease_mu_ held).
    void drop_handoff_locked(const Handoff& h);
    // Marks the claims' leases finished after their outcomes committed.
    void leases_finished(const std::vector<const ClaimedDelivery*>& done);
    // finish_delivery(ies): the claims still holding their lease, in one
    // write; *all_recorded: every one of them was.
    Status finish_batch(const std::vector<std::pair<ClaimedDelivery, DeliveryOutcome>>& batch,
                        SysTime now, bool* all_recorded);
};

}  // namespace courier::db
