// PgStore: a device request's reads in one round trip (db/read_scope.h
// DeviceReads). Its enrollment, its certificate's binding and, for an Idle,
// whether its queue holds a command come back from one statement, one
// snapshot; enrollment_state, binding and has_pending on the calling thread
// answer from it until the scope ends.
//
// Concurrent requests share that statement: a caller queues its reads and,
// while fewer than kBatchesInFlight statements run, takes the queue (at
// most kMaxBatch) and runs one statement for all of it; the others wait for
// it. Alone, a caller runs its own at once; under load each statement
// carries the reads that queued during the one before, so the database
// starts one statement per batch instead of one per request.
#include <fmt/format.h>

#include "db/postgres/pg_internal.h"
#include "db/postgres/pg_store.h"

namespace courier::db {

namespace {

thread_local const pg::DeviceSnapshot* tl_snapshot = nullptr;

class Prefetched : public ReadScope {
  public:
    explicit Prefetched(std::unique_ptr<pg::DeviceSnapshot> s) : snapshot_(std::move(s)) {
        tl_snapshot = snapshot_.get();
    }
    ~Prefetched() override { tl_snapshot = nullptr; }

  private:
    std::unique_ptr<pg::DeviceSnapshot> snapshot_;
};

// The request's place in the batch (1-based), its pending flag, then the
// binding's 8 columns, then the enrollment's: the NULLs of a missing row say
// it is missing.
constexpr int kPendingAt = 1;
constexpr int kBindingAt = 2;
constexpr int kEnrollmentAt = 10;

constexpr size_t kMaxBatch = 64;
constexpr int kBatchesInFlight = 2;

}  // namespace

struct PgStore::PendingDeviceRead {
    pg::DeviceSnapshot snapshot;
    bool ok = false;
    bool done = false;
};

const pg::DeviceSnapshot* pg::device_snapshot(const PgStore* store) {
    return tl_snapshot && tl_snapshot->store == store ? tl_snapshot : nullptr;
}

std::unique_ptr<ReadScope> PgStore::device_read_scope(const DeviceReads& reads) {
    if (tl_snapshot) return nullptr;  // one scope at a time on a thread
    PendingDeviceRead me;
    me.snapshot.store = this;
    me.snapshot.reads = reads;
    {
        std::unique_lock lk(reads_mu_);
        reads_queue_.push_back(&me);
        while (!me.done) {
            // Not done and nothing queued: this caller's reads are in a
            // statement another caller runs; wait for it (leading an empty
            // batch would cost the database a statement for nothing).
            if (reads_in_flight_ >= kBatchesInFlight || reads_queue_.empty()) {
                reads_cv_.wait(lk);
                continue;
            }
            // Lead a batch: the queue's oldest (this caller's own among them
            // unless more than kMaxBatch wait ahead of it).
            const size_t n = std::min(reads_queue_.size(), kMaxBatch);
            std::vector<PendingDeviceRead*> batch(reads_queue_.begin(), reads_queue_.begin() + n);
            reads_queue_.erase(reads_queue_.begin(), reads_queue_.begin() + n);
            ++reads_in_flight_;
            ++read_statements_;
            reads_batched_ += n;
            lk.unlock();
            try {
                run_device_reads(batch);
            } catch (...) {
                // Whatever went wrong, the batch is answered (each then
                // reads one by one and meets the failure itself): a thrown
                // exception must not leave the others waiting for ever.
                for (auto* p : batch) p->ok = false;
            }
            lk.lock();
            --reads_in_flight_;
            for (auto* p : batch) p->done = true;
            reads_cv_.notify_all();
        }
    }
    // Failed: no scope; the reads run one by one and say what failed.
    if (!me.ok) return nullptr;
    return std::make_unique<Prefetched>(
        std::make_unique<pg::DeviceSnapshot>(std::move(me.snapshot)));
}

PgStore::DeviceReadStats PgStore::device_read_stats() {
    std::lock_guard lk(reads_mu_);
    return {read_statements_, reads_batched_, reads_queue_.size(), reads_in_flight_};
}

void PgStore::run_device_reads(const std::vector<PendingDeviceRead*>& batch) {
    // Each key's rows through its primary key: LIMIT 1 (both are unique)
    // keeps the planner from joining the whole of a table it thinks small
    // (a generic plan hash-joined all of cert_bindings to the batch).
    static const std::string sql = fmt::format(
        "SELECT k.i, CASE WHEN k.pend <> 0 THEN EXISTS (SELECT 1 FROM targets t JOIN commands c "
        "ON c.seq = t.command_seq WHERE t.enrollment_id = k.eid AND t.status IN {} AND "
        "(c.expires_at IS NULL OR c.expires_at > k.now)) ELSE false END, bi.*, en.* "
        "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY "
        "AS k(eid, cert, pend, now, i) "
        "LEFT JOIN LATERAL (SELECT {} FROM cert_bindings WHERE cert_sha256 = k.cert LIMIT 1) AS bi "
        "ON true "
        "LEFT JOIN LATERAL (SELECT {} FROM enrollments e WHERE id = k.eid LIMIT 1) AS en ON true",
        pg::kOpenStatuses, pg::kBindingColumns, pg::enrollment_state_columns());
    std::vector<std::string> ids, certs;
    std::vector<int64_t> pending, nows;
    for (const auto* p : batch) {
        const DeviceReads& r = p->snapshot.reads;
        ids.push_back(r.enrollment_id);
        certs.push_back(r.cert_sha256);
        pending.push_back(r.has_pending ? 1 : 0);
        nows.push_back(to_unix(r.now));
    }
    Status s = run(
        [&](pg::Connection& c) {
            auto r = c.query(sql, pg::TextArray{&ids}, pg::TextArray{&certs},
                             pg::Int64Array{&pending}, pg::Int64Array{&nows});
            for (int row = 0; row < r.size(); ++row) {
                const int64_t i = r.int64(row, 0);
                if (i < 1 || static_cast<size_t>(i) > batch.size()) continue;
                pg::DeviceSnapshot& snap = batch[static_cast<size_t>(i) - 1]->snapshot;
                snap.pending = r.boolean(row, kPendingAt);
                snap.binding.reset();
                snap.enrollment.reset();
                if (!r.is_null(row, kBindingAt))
                    snap.binding = pg::binding_from_row(r, row, kBindingAt);
                if (!r.is_null(row, kEnrollmentAt))
                    snap.enrollment = pg::enrollment_row(r, row, kEnrollmentAt);
                batch[static_cast<size_t>(i) - 1]->ok = true;
            }
            return Status::ok();
        },
        true);
    if (!s)
        for (auto* p : batch) p->ok = false;
}

}  // namespace courier::db
