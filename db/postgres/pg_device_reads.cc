// PgStore: a device request's reads in one round trip (db/read_scope.h
// DeviceReads). Its enrollment, its certificate's binding and, for an Idle,
// whether its queue holds a command come back from one statement, one
// snapshot; enrollment_state, binding and has_pending on the calling thread
// answer from it until the scope ends.
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

// The pending flag first, then the binding's 8 columns, then the
// enrollment's: the NULLs of a missing row say it is missing.
constexpr int kBindingAt = 1;
constexpr int kEnrollmentAt = 9;

}  // namespace

const pg::DeviceSnapshot* pg::device_snapshot(const PgStore* store) {
    return tl_snapshot && tl_snapshot->store == store ? tl_snapshot : nullptr;
}

std::unique_ptr<ReadScope> PgStore::device_read_scope(const DeviceReads& reads) {
    if (tl_snapshot) return nullptr;  // one scope at a time on a thread
    static const std::string sql = fmt::format(
        "SELECT CASE WHEN $3::boolean THEN EXISTS (SELECT 1 FROM targets t JOIN commands c ON "
        "c.seq = t.command_seq WHERE t.enrollment_id = $1 AND t.status IN {} AND "
        "(c.expires_at IS NULL OR c.expires_at > $4::bigint)) ELSE false END, bi.*, en.* "
        "FROM (SELECT 1) AS one "
        "LEFT JOIN (SELECT {} FROM cert_bindings WHERE cert_sha256 = $2) AS bi ON true "
        "LEFT JOIN (SELECT {} FROM enrollments e WHERE id = $1::text) AS en ON true",
        pg::kOpenStatuses, pg::kBindingColumns, pg::enrollment_state_columns());
    auto snap = std::make_unique<pg::DeviceSnapshot>();
    snap->store = this;
    snap->reads = reads;
    Status s = run(
        [&](pg::Connection& c) {
            auto r = c.query(sql, reads.enrollment_id, reads.cert_sha256, reads.has_pending,
                             to_unix(reads.now));
            snap->pending = r.boolean(0, 0);
            if (!r.is_null(0, kBindingAt)) snap->binding = pg::binding_from_row(r, 0, kBindingAt);
            if (!r.is_null(0, kEnrollmentAt))
                snap->enrollment = pg::enrollment_row(r, 0, kEnrollmentAt);
            return Status::ok();
        },
        true);
    // Failed: no scope; the reads run one by one and say what failed.
    if (!s) return nullptr;
    return std::make_unique<Prefetched>(std::move(snap));
}

}  // namespace courier::db
