#include "db/sqlite/sqlite_statement.h"

#include <fmt/format.h>

namespace courier::db::sqlite {

Status status_from_sqlite(int rc, sqlite3* db, std::string_view what) {
    std::string detail = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    std::string msg = fmt::format("{}: {}", what, detail);
    switch (rc & 0xff) {
        // The database cannot serve now (lock held, disk full, I/O error,
        // file gone or damaged): a storage failure, 503 to every client.
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
        case SQLITE_FULL:
        case SQLITE_IOERR:
        case SQLITE_CANTOPEN:
        case SQLITE_READONLY:
        case SQLITE_NOMEM:
        case SQLITE_PROTOCOL:
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
        case SQLITE_NOLFS:
        case SQLITE_PERM:
        case SQLITE_AUTH:
            return unavailable(std::move(msg));
        case SQLITE_CONSTRAINT:
            return conflict(std::move(msg));
        default:
            return internal_error(std::move(msg));
    }
}

Statement::~Statement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
}

void Statement::check(int rc, std::string_view what) const {
    if (rc != SQLITE_OK) throw SqlError(status_from_sqlite(rc, db_, what));
}

void Statement::bind_one(int i, int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v), "bind");
}

void Statement::bind_one(int i, std::string_view v) {
    check(sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8), "bind");
}

void Statement::bind_one(int i, Blob v) {
    // A zero-length blob must not bind as NULL: pass a valid pointer.
    static const char empty = 0;
    check(sqlite3_bind_blob64(stmt_, i, v.bytes.empty() ? &empty : v.bytes.data(), v.bytes.size(),
                              SQLITE_TRANSIENT),
          "bind");
}

void Statement::bind_one(int i, std::nullopt_t) {
    check(sqlite3_bind_null(stmt_, i), "bind");
}

bool Statement::step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw SqlError(status_from_sqlite(rc, db_, sqlite3_sql(stmt_)));
}

void Statement::run() {
    while (step()) {
    }
    sqlite3_reset(stmt_);
}

bool Statement::is_null(int col) const {
    return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

int64_t Statement::int64(int col) const {
    return sqlite3_column_int64(stmt_, col);
}

std::optional<int64_t> Statement::opt_int64(int col) const {
    if (is_null(col)) return std::nullopt;
    return int64(col);
}

std::string Statement::str(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    int n = sqlite3_column_bytes(stmt_, col);
    if (!p || n <= 0) return {};
    return std::string(static_cast<const char*>(p), static_cast<size_t>(n));
}

Result<std::unique_ptr<Connection>> Connection::open(const std::string& path, bool read_only,
                                                     int busy_timeout_ms) {
    sqlite3* db = nullptr;
    int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
    flags |= read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    if (rc != SQLITE_OK) {
        Status s = status_from_sqlite(rc, db, "open " + path);
        sqlite3_close_v2(db);
        return s;
    }
    sqlite3_extended_result_codes(db, 1);
    std::unique_ptr<Connection> conn(new Connection(db));
    Status s = conn->try_exec(fmt::format(
        "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
        busy_timeout_ms));
    if (!s) return s;
    return conn;
}

Connection::~Connection() {
    for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
}

Statement Connection::prepare(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it != cache_.end()) return Statement(it->second, db_);
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) throw SqlError(status_from_sqlite(rc, db_, "prepare " + sql));
    cache_.emplace(sql, stmt);
    return Statement(stmt, db_);
}

void Connection::exec(const std::string& sql) {
    Status s = try_exec(sql);
    if (!s) throw SqlError(std::move(s));
}

Status Connection::try_exec(const std::string& sql) {
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return status_from_sqlite(rc, db_, sql);
    return Status::ok();
}

Status Connection::try_run(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    if (auto it = cache_.find(sql); it != cache_.end()) {
        stmt = it->second;
    } else {
        int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
        if (rc != SQLITE_OK) return status_from_sqlite(rc, db_, sql);
        cache_.emplace(sql, stmt);
    }
    int rc = sqlite3_step(stmt);
    Status s =
        rc == SQLITE_DONE || rc == SQLITE_ROW ? Status::ok() : status_from_sqlite(rc, db_, sql);
    sqlite3_reset(stmt);
    return s;
}

int64_t Connection::changes() const {
    return sqlite3_changes64(db_);
}

int64_t Connection::last_insert_rowid() const {
    return sqlite3_last_insert_rowid(db_);
}

bool Connection::in_transaction() const {
    return sqlite3_get_autocommit(db_) == 0;
}

}  // namespace courier::db::sqlite
