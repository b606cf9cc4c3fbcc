// PgStore: the web console's sessions, overview and CSR keys.
#include "db/postgres/pg_internal.h"
#include "db/postgres/pg_store.h"

namespace courier::db {

using pg::Connection;

Status PgStore::put_session(const ConsoleSession& s) {
    if (s.id_sha256.size() != 64) return invalid("session digest must be 64 hex digits");
    return write([&](Connection& c) {
        c.query("DELETE FROM console_sessions WHERE expires_at <= $1", to_unix(s.created_at));
        auto r = c.query(
            "INSERT INTO console_sessions (id_sha256, created_at, expires_at) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING",
            s.id_sha256, to_unix(s.created_at), to_unix(s.expires_at));
        if (r.affected() == 0) return conflict("session exists");
        return Status::ok();
    });
}

Result<std::optional<ConsoleSession>> PgStore::session(const std::string& id_sha256, SysTime now) {
    std::optional<ConsoleSession> out;
    Status st = run(
        [&](Connection& c) {
            out.reset();
            auto r = c.query(
                "SELECT created_at, expires_at FROM console_sessions WHERE id_sha256 = $1 AND "
                "expires_at > $2",
                id_sha256, to_unix(now));
            if (!r.empty()) {
                ConsoleSession s;
                s.id_sha256 = id_sha256;
                s.created_at = from_unix(r.int64(0, 0));
                s.expires_at = from_unix(r.int64(0, 1));
                out = std::move(s);
            }
            return Status::ok();
        },
        true);
    if (!st) return st;
    return out;
}

Status PgStore::delete_session(const std::string& id_sha256) {
    return write([&](Connection& c) {
        c.query("DELETE FROM console_sessions WHERE id_sha256 = $1", id_sha256);
        return Status::ok();
    });
}

Result<Overview> PgStore::overview(SysTime since) {
    Overview o;
    static const std::string sql = std::string(
                                       "SELECT 's:' || state, count(*) FROM enrollments GROUP BY "
                                       "state UNION ALL SELECT 'depth', count(*) FROM targets "
                                       "WHERE status IN ") +
                                   std::string(pg::kOpenStatuses) +
                                   " UNION ALL SELECT 'pushes', count(*) FROM push_attempts WHERE "
                                   "at >= $1 UNION ALL SELECT 'errors', count(*) FROM "
                                   "push_attempts WHERE at >= $1 AND http_status <> 200";
    Status st = run(
        [&](Connection& c) {
            // One statement: one snapshot for every count.
            o = Overview{};
            auto r = c.query(sql, to_unix(since));
            for (int i = 0; i < r.size(); ++i) {
                std::string k = r.str(i, 0);
                int64_t n = r.int64(i, 1);
                if (k.rfind("s:", 0) == 0) {
                    o.devices_by_state[k.substr(2)] = n;
                } else if (k == "depth") {
                    o.queue_depth = n;
                } else if (k == "pushes") {
                    o.pushes = n;
                } else if (k == "errors") {
                    o.push_errors = n;
                }
            }
            return Status::ok();
        },
        true);
    if (!st) return st;
    return o;
}

Result<int64_t> PgStore::put_pending_push_key(const std::string& key_pem, SysTime now) {
    int64_t id = 0;
    Status st = write([&](Connection& c) {
        id = c.query(
                  "INSERT INTO pending_push_keys (key_pem, created_at) VALUES ($1, $2) "
                  "RETURNING id",
                  key_pem, to_unix(now))
                 .int64(0, 0);
        c.query(
            "DELETE FROM pending_push_keys WHERE id NOT IN (SELECT id FROM pending_push_keys "
            "ORDER BY id DESC LIMIT $1)",
            int64_t{kMaxPendingPushKeys});
        return Status::ok();
    });
    if (!st) return st;
    return id;
}

Result<std::vector<PendingPushKey>> PgStore::pending_push_keys() {
    std::vector<PendingPushKey> out;
    Status st = run(
        [&](Connection& c) {
            out.clear();
            auto r =
                c.query("SELECT id, key_pem, created_at FROM pending_push_keys ORDER BY id DESC");
            for (int i = 0; i < r.size(); ++i)
                out.push_back({r.int64(i, 0), r.str(i, 1), from_unix(r.int64(i, 2))});
            return Status::ok();
        },
        true);
    if (!st) return st;
    return out;
}

Status PgStore::delete_pending_push_key(int64_t id) {
    return write([&](Connection& c) {
        c.query("DELETE FROM pending_push_keys WHERE id = $1", id);
        return Status::ok();
    });
}

}  // namespace courier::db
