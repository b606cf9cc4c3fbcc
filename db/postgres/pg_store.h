// PgStore: the Store contract on a PostgreSQL database, shared by any number
// of Courier nodes (SPEC "Scale-out on PostgreSQL").
//
// Threads and transactions
// - A pool of connections (PgOptions::pool_size). Every method takes one,
//   runs its statements in one transaction and gives it back; concurrent
//   callers commit concurrently (PostgreSQL groups their WAL flushes), so
//   there is no writer thread. synchronous_commit is on: ok means the
//   commit's WAL was flushed (and reached a synchronous standby, if one is
//   configured).
// - Writes run at READ COMMITTED with explicit row locks where the contract
//   needs an order: next_command and apply_report lock the enrollment's row
//   (SELECT ... FOR UPDATE) before touching its queue, so two nodes serving
//   one device take turns; enqueue takes FOR KEY SHARE on its targets'
//   rows, which orders it against a device request's FOR UPDATE (the
//   pending push: either the request's transaction cleared the mark first,
//   or it sees the command). Bindings of one device id are serialized by a
//   transaction-scoped advisory lock on the id; push certificates by one on
//   the topic. A serialization failure or deadlock runs the transaction
//   again (at most 5 times).
// - Webhook events attached to the calling thread's next write
//   (attach_events) are appended in that write's transaction, just before
//   COMMIT; a retried transaction appends them again with it. Deliveries
//   are claimed with FOR UPDATE SKIP LOCKED, so two nodes never lease one
//   delivery; the appends and completions of one destination's and
//   enrollment's line are serialized by an advisory lock on the pair.
// - Reads run without BEGIN/COMMIT: each statement is its own snapshot. A
//   device request's reads (device_read_scope) are one statement, shared
//   with the requests that queued while the one before it ran.
// - touch_last_seen() and touch_binding() update in-memory maps that a
//   background thread folds into one transaction about once a second, as
//   SqliteStore does; reads overlay this node's unflushed values.
// - Unreachable database: calls fail with kUnavailable, never kNotFound. A
//   broken connection is dropped; new connections are tried again with a
//   backoff (100 ms doubling to 2 s), so a database that comes back is used
//   again within seconds, without restart.
// - Schema: migrations (pg_migrations.cc) run at open under an advisory lock.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "db/store.h"

namespace courier::db {

namespace pg {
class Connection;
}

struct PgOptions {
    size_t pool_size = 16;  // connections at most (--db-pool)
    int connect_timeout_s = 5;
    // How long a caller waits for a free connection before kUnavailable.
    std::chrono::milliseconds pool_wait{5000};
    std::chrono::milliseconds last_seen_flush{1000};
    // A claimed re-push (claim_due_repushes) is not claimed again by any
    // node for this long, unless its push's outcome reschedules it first.
    std::chrono::seconds repush_lease{60};
};

class PgStore final : public Store {
  public:
    // Connects, migrates (under an advisory lock) and opens the pool.
    // kUnavailable when the server cannot be reached; kInvalid when the
    // schema is newer than this build can work with.
    static Result<std::unique_ptr<PgStore>> open(const std::string& uri, const PgOptions& options,
                                                 const Clock& clock);
    ~PgStore() override;
    PgStore(const PgStore&) = delete;
    PgStore& operator=(const PgStore&) = delete;

    // Flushes last-seen, stops the flusher, closes the pool. Later calls
    // fail with kUnavailable. Idempotent.
    void close();

    using Work = std::function<Status(pg::Connection&)>;
    // Runs fn in one read-write transaction (retried on serialization
    // failures; fn may run more than once). For maintenance and tests.
    Status write(const Work& fn);
    // Connections open now (idle and in use).
    size_t open_connections() const;
    // Schema version of the database.
    static int latest_schema_version();

    // Generated key material shared by every node (SPEC "Secrets in the
    // database"). Under an advisory lock (one node at a time): each of
    // `files` (paths relative to dir) the database holds is written into dir
    // (keys 0600, .crt 0644), replacing a different local copy; then
    // generate() runs (it makes what is still missing, reading what is
    // there); then each file present in dir and absent from the database is
    // stored. kUnavailable when the database cannot be reached.
    Status share_files(const std::string& dir, const std::vector<std::string>& files,
                       const std::function<Status()>& generate);

    Status ping() override;
    // One statement reads the request's enrollment, binding and (for an
    // Idle) pending flag; enrollment_state, binding and has_pending on this
    // thread answer from it while the scope lives (one round trip instead
    // of three, one snapshot).
    std::unique_ptr<ReadScope> device_read_scope(const DeviceReads& reads) override;
    // device_read_scope's batching: statements started, the reads they
    // carried, callers queued now, statements running now.
    struct DeviceReadStats {
        uint64_t statements = 0;
        uint64_t reads = 0;
        size_t queued = 0;
        int in_flight = 0;
    };
    DeviceReadStats device_read_stats();

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
    Result<std::vector<RepushDue>> claim_due_repushes(SysTime now, size_t limit) override;

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
    class Attachment;
    struct PendingDeviceRead;
    PgStore(std::string uri, const PgOptions& options, const Clock& clock);

    enum class Mode {
        kRead,   // no transaction: each statement its own snapshot
        kWrite,  // BEGIN, fn, the attached events, COMMIT
        // A device request's queue call (next_command, apply_report): fn's
        // first statement is one server-side function that locks, writes
        // and commits by itself (autocommit: one network round trip). When
        // events are attached it runs as kWrite. fn may open a transaction
        // (BEGIN) for a slower path; run commits it.
        kDevice
    };
    // enrollment() and enrollment_state(): one row by id, sql's columns.
    Result<Enrollment> enrollment_by(const std::string& sql, const std::string& id);
    Status run(const Work& fn, Mode mode);
    Status run(const Work& fn, bool read_only) {
        return run(fn, read_only ? Mode::kRead : Mode::kWrite);
    }
    Result<std::unique_ptr<pg::Connection>> take();
    void give_back(std::unique_ptr<pg::Connection> conn);
    // One statement for a batch of device_read_scope callers' reads.
    void run_device_reads(const std::vector<PendingDeviceRead*>& batch);
    void flush_loop();
    void flush_seen();
    int64_t seen_ms_locked(const std::string& id) const;
    void overlay_last_seen(Enrollment& e) const;
    void overlay_binding_used(Binding& b) const;
    int64_t unflushed_binding_use(const std::string& cert_sha256) const;

    const std::string uri_;
    const PgOptions options_;
    const Clock& clock_;

    mutable std::mutex pool_mu_;
    std::condition_variable pool_cv_;
    std::vector<std::unique_ptr<pg::Connection>> idle_;
    size_t open_ = 0;  // connections open, idle or in use
    bool closed_ = false;
    // Connecting after a failure waits for the backoff to pass.
    std::chrono::steady_clock::time_point next_connect_{};
    std::chrono::milliseconds backoff_{0};
    Status last_connect_error_;

    // device_read_scope callers waiting for their reads; statements running.
    std::mutex reads_mu_;
    std::condition_variable reads_cv_;
    std::vector<PendingDeviceRead*> reads_queue_;
    int reads_in_flight_ = 0;
    uint64_t read_statements_ = 0;
    uint64_t reads_batched_ = 0;

    mutable std::mutex seen_mu_;
    std::unordered_map<std::string, int64_t> last_seen_;     // id → ms, unflushed
    std::unordered_map<std::string, int64_t> binding_used_;  // cert → unix s, unflushed
    // Flushed last-seen times kept a few seconds for record_push_outcomes.
    std::unordered_map<std::string, int64_t> recent_seen_;
    std::chrono::steady_clock::time_point recent_reset_{};

    std::mutex flush_mu_;
    std::condition_variable flush_cv_;
    bool stop_flush_ = false;
    std::thread flusher_;
};

}  // namespace courier::db
