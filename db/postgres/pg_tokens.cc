// PgStore: the enrollment tokens that gate /enroll. A use is claimed by one
// conditional UPDATE: of two nodes racing for the last use, the second
// re-checks the row after the first commits and finds it used up.
#include "db/postgres/pg_internal.h"
#include "db/postgres/pg_store.h"

namespace courier::db {

using pg::Connection;

Status PgStore::put_enrollment_token(const EnrollmentToken& t) {
    if (t.id.empty() || t.token_sha256.empty()) return invalid("enrollment token id missing");
    return write([&](Connection& c) {
        auto r = c.query(
            "INSERT INTO enrollment_tokens (id, token_sha256, uses_left, expires_at, created_at, "
            "note) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            t.id, t.token_sha256, t.uses_left, pg::opt_unix(t.expires_at), to_unix(t.created_at),
            t.note);
        if (r.affected() == 0) return conflict("enrollment token " + t.id + " already exists");
        return Status::ok();
    });
}

Result<std::vector<EnrollmentToken>> PgStore::enrollment_tokens() {
    std::vector<EnrollmentToken> out;
    Status s = run(
        [&](Connection& c) {
            out.clear();
            auto r = c.query(
                "SELECT id, token_sha256, uses_left, expires_at, created_at, note "
                "FROM enrollment_tokens ORDER BY created_at, id");
            for (int i = 0; i < r.size(); ++i) {
                EnrollmentToken t;
                t.id = r.str(i, 0);
                t.token_sha256 = r.str(i, 1);
                t.uses_left = r.int64(i, 2);
                if (auto v = r.opt_int64(i, 3)) t.expires_at = from_unix(*v);
                t.created_at = from_unix(r.int64(i, 4));
                t.note = r.str(i, 5);
                out.push_back(std::move(t));
            }
            return Status::ok();
        },
        true);
    if (!s) return s;
    return out;
}

Status PgStore::delete_enrollment_token(const std::string& id) {
    return write([&](Connection& c) {
        if (c.query("DELETE FROM enrollment_tokens WHERE id = $1", id).affected() == 0)
            return not_found("no enrollment token " + id);
        return Status::ok();
    });
}

Status PgStore::consume_enrollment_token(const std::string& token_sha256, SysTime now) {
    return write([&](Connection& c) {
        auto r = c.query(
            "UPDATE enrollment_tokens SET uses_left = CASE WHEN uses_left < 0 THEN uses_left "
            "ELSE uses_left - 1 END WHERE token_sha256 = $1 AND uses_left <> 0 AND "
            "(expires_at IS NULL OR expires_at > $2)",
            token_sha256, to_unix(now));
        if (r.affected() == 0)
            return Status(Code::kForbidden, "enrollment token unknown, expired or used up");
        return Status::ok();
    });
}

Status PgStore::release_enrollment_token(const std::string& token_sha256) {
    return write([&](Connection& c) {
        c.query(
            "UPDATE enrollment_tokens SET uses_left = uses_left + 1 WHERE token_sha256 = $1 AND "
            "uses_left >= 0",
            token_sha256);
        return Status::ok();
    });
}

}  // namespace courier::db
