// RAII wrappers over the SQLite C API for SqliteStore: a connection owning a
// cache of prepared statements, and a borrowed statement that is reset when it
// goes out of scope.
//
// Error handling inside db/: the wrappers throw SqlError on any SQLite
// failure. SqliteStore catches it where a transaction or savepoint ends and
// turns it into a Status, so no exception ever leaves db/. Domain refusals
// (not found, conflict) are returned as Status by the store's closures.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

namespace courier::db::sqlite {

// kUnavailable when the database cannot serve (busy/locked, disk full, I/O
// error, cannot open, read-only, corrupt), kConflict for constraint
// violations, kInternal otherwise (SQL errors and misuse: bugs).
Status status_from_sqlite(int rc, sqlite3* db, std::string_view what);

class SqlError : public std::exception {
  public:
    explicit SqlError(Status s) : status_(std::move(s)) {}
    const Status& status() const { return status_; }
    const char* what() const noexcept override { return status_.message().c_str(); }

  private:
    Status status_;
};

// Bound as a BLOB rather than TEXT (push tokens, plists: arbitrary bytes).
struct Blob {
    std::string_view bytes;
};

class Statement {
  public:
    Statement(sqlite3_stmt* stmt, sqlite3* db) : stmt_(stmt), db_(db) {}
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    ~Statement();

    // Binds parameters ?1, ?2, ... in order.
    template <class... Args>
    Statement& bind(const Args&... args) {
        int i = 1;
        (bind_one(i++, args), ...);
        return *this;
    }
    // Advances; true when a row is available.
    bool step();
    // Steps to completion, ignoring rows, and resets so it can be re-bound.
    void run();
    // Rewinds a statement stepped part-way so it can be re-bound.
    void reset() { sqlite3_reset(stmt_); }

    bool is_null(int col) const;
    int64_t int64(int col) const;
    std::optional<int64_t> opt_int64(int col) const;
    std::string str(int col) const;  // TEXT or BLOB bytes; "" for NULL

  private:
    void bind_one(int i, int64_t v);
    void bind_one(int i, int v) { bind_one(i, static_cast<int64_t>(v)); }
    void bind_one(int i, uint64_t v) { bind_one(i, static_cast<int64_t>(v)); }
    void bind_one(int i, bool v) { bind_one(i, static_cast<int64_t>(v ? 1 : 0)); }
    void bind_one(int i, std::string_view v);
    void bind_one(int i, const std::string& v) { bind_one(i, std::string_view(v)); }
    void bind_one(int i, const char* v) { bind_one(i, std::string_view(v)); }
    void bind_one(int i, Blob v);
    void bind_one(int i, std::nullopt_t);
    template <class T>
    void bind_one(int i, const std::optional<T>& v) {
        if (v) {
            bind_one(i, *v);
        } else {
            bind_one(i, std::nullopt);
        }
    }
    void check(int rc, std::string_view what) const;

    sqlite3_stmt* stmt_;
    sqlite3* db_;
};

class Connection {
  public:
    // Opens (creating when !read_only) and applies the per-connection pragmas:
    // busy_timeout, foreign_keys, synchronous=FULL.
    static Result<std::unique_ptr<Connection>> open(const std::string& path, bool read_only,
                                                    int busy_timeout_ms);
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection();

    // A cached prepared statement for sql; the same text yields the same
    // statement, prepared once per connection. Throws SqlError.
    Statement prepare(const std::string& sql);
    // Runs one or more statements without caching. Throws SqlError.
    void exec(const std::string& sql);
    // exec() without throwing.
    Status try_exec(const std::string& sql);
    // One statement that returns no rows (BEGIN, COMMIT, SAVEPOINT x, ...),
    // prepared once per connection like prepare(): no parse per call, which
    // try_exec does. Does not throw.
    Status try_run(const std::string& sql);

    int64_t changes() const;
    int64_t last_insert_rowid() const;
    bool in_transaction() const;
    sqlite3* handle() const { return db_; }
    size_t cached_statements() const { return cache_.size(); }

  private:
    explicit Connection(sqlite3* db) : db_(db) {}

    sqlite3* db_;
    std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

}  // namespace courier::db::sqlite
