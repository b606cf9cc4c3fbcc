// RAII wrappers over libpq for PgStore: a connection with a cache of
// prepared statements (one server-side statement per SQL text), a result
// set, and typed parameters.
//
// Error handling follows db/sqlite/sqlite_statement.h: the wrappers throw
// PgError on any failure; PgStore catches it where a transaction ends and
// turns it into a Status, so no exception leaves db/.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace courier::db::pg {

// How a failure should be treated by the transaction runner.
enum class Failure {
    kFatal,      // a bug or a refusal: report it
    kRetry,      // serialization failure or deadlock: run the transaction again
    kConnection  // the connection broke or the server is going away
};

class PgError : public std::exception {
  public:
    PgError(Status s, Failure f, std::string sqlstate = {})
        : status_(std::move(s)), failure_(f), sqlstate_(std::move(sqlstate)) {}
    const Status& status() const { return status_; }
    Failure failure() const { return failure_; }
    const std::string& sqlstate() const { return sqlstate_; }
    const char* what() const noexcept override { return status_.message().c_str(); }

  private:
    Status status_;
    Failure failure_;
    std::string sqlstate_;
};

// Bound as binary bytea (push tokens, plists: arbitrary bytes).
struct Bytes {
    std::string_view bytes;
};
// Bound as a text[] (enqueue's targets, last-seen flushes).
struct TextArray {
    const std::vector<std::string>* items;
};
struct Int64Array {
    const std::vector<int64_t>* items;
};

class Rows {
  public:
    explicit Rows(PGresult* r) : r_(r) {}
    Rows(Rows&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
    Rows& operator=(Rows&&) = delete;
    Rows(const Rows&) = delete;
    ~Rows() {
        if (r_) PQclear(r_);
    }
    int size() const { return PQntuples(r_); }
    bool empty() const { return size() == 0; }
    bool is_null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
    std::string str(int row, int col) const;
    int64_t int64(int row, int col) const;
    std::optional<int64_t> opt_int64(int row, int col) const;
    bool boolean(int row, int col) const;
    // A bytea column (text format, hex): its bytes.
    std::string bytes(int row, int col) const;
    // Rows an INSERT/UPDATE/DELETE touched.
    int64_t affected() const;

  private:
    PGresult* r_;
};

struct ConnectOptions {
    int connect_timeout_s = 5;
};

class Connection {
  public:
    // Connects with the libpq URI (or key=value string); kUnavailable when the
    // server cannot be reached, kInvalid for a malformed URI.
    static Result<std::unique_ptr<Connection>> open(const std::string& uri,
                                                    const ConnectOptions& options = {});
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Runs a prepared statement (prepared on first use on this connection).
    template <class... Args>
    Rows query(const std::string& sql, const Args&... args) {
        Params p;
        p.values.reserve(sizeof...(Args));
        (p.add(args), ...);
        return run_prepared(sql, p);
    }
    // Runs one or more statements without parameters (simple protocol).
    void exec(const std::string& sql);
    // As exec, returning the failure instead of throwing.
    Status try_exec(const std::string& sql);
    // The connection is usable (not broken).
    bool ok() const;
    bool in_transaction() const;
    // Statements prepared on this connection.
    size_t prepared_count() const { return prepared_.size(); }
    PGconn* raw() { return conn_; }

  private:
    struct Params {
        std::vector<std::optional<std::string>> values;
        std::vector<int> formats;
        void push(std::optional<std::string> v, int format = 0) {
            values.push_back(std::move(v));
            formats.push_back(format);
        }
        void add(const std::string& v) { push(v); }
        void add(std::string_view v) { push(std::string(v)); }
        void add(const char* v) { push(std::string(v)); }
        void add(bool v) { push(std::string(v ? "t" : "f")); }
        void add(Bytes b) { push(std::string(b.bytes), 1); }
        void add(std::nullopt_t) { push(std::nullopt); }
        void add(TextArray a);
        void add(Int64Array a);
        template <class T, std::enable_if_t<std::is_integral_v<T>, int> = 0>
        void add(T v) {
            push(std::to_string(v));
        }
        template <class T>
        void add(const std::optional<T>& v) {
            if (v) {
                add(*v);
            } else {
                push(std::nullopt);
            }
        }
    };

    explicit Connection(PGconn* c) : conn_(c) {}
    Rows run_prepared(const std::string& sql, const Params& p);
    [[noreturn]] void fail(PGresult* r, std::string_view what);

    PGconn* conn_;
    std::unordered_map<std::string, std::string> prepared_;  // SQL → statement name
};

// The SQLSTATE of a failed result → Status and how to treat it.
PgError error_from(PGconn* conn, const PGresult* r, std::string_view what);

}  // namespace courier::db::pg
