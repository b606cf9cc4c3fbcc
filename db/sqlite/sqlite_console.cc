// SqliteStore: the web console's sessions, overview and CSR keys.
#include "db/sqlite/sqlite_internal.h"
#include "db/sqlite/sqlite_store.h"

namespace courier::db {

using sqlite::Connection;

Status SqliteStore::put_session(const ConsoleSession& s) {
    if (s.id_sha256.size() != 64) return invalid("session digest must be 64 hex digits");
    return write([&](Connection& c) {
        c.prepare("DELETE FROM console_sessions WHERE expires_at <= ?1")
            .bind(to_unix(s.created_at))
            .run();
        auto exists = c.prepare("SELECT 1 FROM console_sessions WHERE id_sha256 = ?1");
        exists.bind(s.id_sha256);
        if (exists.step()) return conflict("session exists");
        exists.reset();
        c.prepare(
             "INSERT INTO console_sessions (id_sha256, created_at, expires_at) VALUES (?1, ?2, ?3)")
            .bind(s.id_sha256, to_unix(s.created_at), to_unix(s.expires_at))
            .run();
        return Status::ok();
    });
}

Result<std::optional<ConsoleSession>> SqliteStore::session(const std::string& id_sha256,
                                                           SysTime now) {
    std::optional<ConsoleSession> out;
    Status st = read([&](Connection& c) {
        auto q = c.prepare(
            "SELECT created_at, expires_at FROM console_sessions WHERE id_sha256 = ?1 AND "
            "expires_at > ?2");
        q.bind(id_sha256, to_unix(now));
        if (q.step()) {
            ConsoleSession s;
            s.id_sha256 = id_sha256;
            s.created_at = from_unix(q.int64(0));
            s.expires_at = from_unix(q.int64(1));
            out = std::move(s);
        }
        return Status::ok();
    });
    if (!st) return st;
    return out;
}

Status SqliteStore::delete_session(const std::string& id_sha256) {
    return write([&](Connection& c) {
        c.prepare("DELETE FROM console_sessions WHERE id_sha256 = ?1").bind(id_sha256).run();
        return Status::ok();
    });
}

Result<Overview> SqliteStore::overview(SysTime since) {
    Overview o;
    Status st = read([&](Connection& c) {
        auto states = c.prepare("SELECT state, count(*) FROM enrollments GROUP BY state");
        while (states.step()) o.devices_by_state[states.str(0)] = states.int64(1);
        auto depth = c.prepare(std::string("SELECT count(*) FROM targets WHERE status IN ") +
                               std::string(sqlite::kOpenStatuses));
        if (depth.step()) o.queue_depth = depth.int64(0);
        auto pushes = c.prepare(
            "SELECT count(*), coalesce(sum(http_status <> 200), 0) FROM push_attempts WHERE "
            "at >= ?1");
        pushes.bind(to_unix(since));
        if (pushes.step()) {
            o.pushes = pushes.int64(0);
            o.push_errors = pushes.int64(1);
        }
        return Status::ok();
    });
    if (!st) return st;
    return o;
}

Result<int64_t> SqliteStore::put_pending_push_key(const std::string& key_pem, SysTime now) {
    int64_t id = 0;
    Status st = write([&](Connection& c) {
        c.prepare("INSERT INTO pending_push_keys (key_pem, created_at) VALUES (?1, ?2)")
            .bind(key_pem, to_unix(now))
            .run();
        id = c.last_insert_rowid();
        c.prepare(
             "DELETE FROM pending_push_keys WHERE id NOT IN (SELECT id FROM pending_push_keys "
             "ORDER BY id DESC LIMIT ?1)")
            .bind(int64_t{kMaxPendingPushKeys})
            .run();
        return Status::ok();
    });
    if (!st) return st;
    return id;
}

Result<std::vector<PendingPushKey>> SqliteStore::pending_push_keys() {
    std::vector<PendingPushKey> out;
    Status st = read([&](Connection& c) {
        auto q =
            c.prepare("SELECT id, key_pem, created_at FROM pending_push_keys ORDER BY id DESC");
        while (q.step()) out.push_back({q.int64(0), q.str(1), from_unix(q.int64(2))});
        return Status::ok();
    });
    if (!st) return st;
    return out;
}

Status SqliteStore::delete_pending_push_key(int64_t id) {
    return write([&](Connection& c) {
        c.prepare("DELETE FROM pending_push_keys WHERE id = ?1").bind(id).run();
        return Status::ok();
    });
}

}  // namespace courier::db
