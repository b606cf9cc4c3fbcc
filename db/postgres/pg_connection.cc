#include "db/postgres/pg_connection.h"

#include <fmt/format.h>

#include <charconv>
#include <cstring>

namespace courier::db::pg {

namespace {

// Array literal element: double-quoted, with " and \ escaped.
void append_quoted(std::string& out, std::string_view s) {
    out += '"';
    for (char ch : s) {
        if (ch == '"' || ch == '\\') out += '\\';
        out += ch;
    }
    out += '"';
}

// libpq's message ends with a newline; keep one line.
std::string one_line(const char* msg) {
    std::string s = msg ? msg : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    for (char& ch : s)
        if (ch == '\n') ch = ' ';
    return s;
}

}  // namespace

PgError error_from(PGconn* conn, const PGresult* r, std::string_view what) {
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    std::string sqlstate = state ? state : "";
    std::string msg = one_line(r ? PQresultErrorMessage(r) : nullptr);
    if (msg.empty()) msg = one_line(PQerrorMessage(conn));
    std::string text = fmt::format("postgres: {}: {}", what, msg);
    bool broken = PQstatus(conn) != CONNECTION_OK;
    if (broken || sqlstate.empty() || sqlstate.rfind("08", 0) == 0 ||
        sqlstate.rfind("57P", 0) == 0 || sqlstate == "25006" /* read-only transaction */) {
        return PgError(unavailable(text), Failure::kConnection, sqlstate);
    }
    if (sqlstate == "40001" || sqlstate == "40P01")
        return PgError(unavailable(text), Failure::kRetry, sqlstate);
    // Insufficient resources (disk full, too many connections), operator
    // intervention: the database cannot serve now.
    if (sqlstate.rfind("53", 0) == 0 || sqlstate.rfind("57", 0) == 0)
        return PgError(unavailable(text), Failure::kFatal, sqlstate);
    if (sqlstate.rfind("23", 0) == 0) return PgError(conflict(text), Failure::kFatal, sqlstate);
    return PgError(internal_error(text), Failure::kFatal, sqlstate);
}

std::string Rows::str(int row, int col) const {
    if (PQgetisnull(r_, row, col)) return {};
    return std::string(PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col)));
}

int64_t Rows::int64(int row, int col) const {
    const char* v = PQgetvalue(r_, row, col);
    int64_t out = 0;
    std::from_chars(v, v + std::strlen(v), out);
    return out;
}

std::optional<int64_t> Rows::opt_int64(int row, int col) const {
    if (is_null(row, col)) return std::nullopt;
    return int64(row, col);
}

bool Rows::boolean(int row, int col) const {
    const char* v = PQgetvalue(r_, row, col);
    return v[0] == 't' || v[0] == '1';
}

std::string Rows::bytes(int row, int col) const {
    if (PQgetisnull(r_, row, col)) return {};
    size_t n = 0;
    unsigned char* raw =
        PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(r_, row, col)), &n);
    if (!raw) return {};
    std::string out(reinterpret_cast<const char*>(raw), n);
    PQfreemem(raw);
    return out;
}

int64_t Rows::affected() const {
    const char* v = PQcmdTuples(r_);
    int64_t out = 0;
    if (v && *v) std::from_chars(v, v + std::strlen(v), out);
    return out;
}

void Connection::Params::add(TextArray a) {
    std::string lit = "{";
    for (size_t i = 0; i < a.items->size(); ++i) {
        if (i) lit += ',';
        append_quoted(lit, (*a.items)[i]);
    }
    lit += '}';
    push(std::move(lit));
}

void Connection::Params::add(Int64Array a) {
    std::string lit = "{";
    for (size_t i = 0; i < a.items->size(); ++i) {
        if (i) lit += ',';
        lit += std::to_string((*a.items)[i]);
    }
    lit += '}';
    push(std::move(lit));
}

Result<std::unique_ptr<Connection>> Connection::open(const std::string& uri,
                                                     const ConnectOptions& options) {
    // The URI's own settings win; these fill in what it leaves out: give up
    // on an unreachable server in seconds, and notice a dead one (keepalives,
    // TCP user timeout) instead of waiting for the kernel's minutes.
    std::string timeout = std::to_string(options.connect_timeout_s);
    const char* keys[] = {"connect_timeout",     "keepalives",       "keepalives_idle",
                          "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                          "application_name",    "dbname",           nullptr};
    const char* values[] = {timeout.c_str(), "1",       "5",         "2",    "3",
                            "10000",         "courier", uri.c_str(), nullptr};
    // expand_dbname: the last "dbname" holding a URI expands and overrides.
    PGconn* c = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
    if (!c) return unavailable("postgres: out of memory connecting");
    if (PQstatus(c) != CONNECTION_OK) {
        std::string msg = one_line(PQerrorMessage(c));
        PQfinish(c);
        if (msg.find("invalid") != std::string::npos && msg.find("URI") != std::string::npos)
            return invalid("postgres: " + msg);
        return unavailable("postgres: cannot connect: " + msg);
    }
    auto conn = std::unique_ptr<Connection>(new Connection(c));
    // Every commit waits for its WAL to be flushed (and, with a synchronous
    // standby configured, for the standby): ok means durable. Times are
    // stored as Unix seconds, so the session time zone does not matter.
    Status s = conn->try_exec(
        "SET synchronous_commit = on; SET client_min_messages = warning; "
        "SET idle_in_transaction_session_timeout = '60s'");
    if (!s) return s;
    return conn;
}

Connection::~Connection() {
    if (conn_) PQfinish(conn_);
}

bool Connection::ok() const {
    return PQstatus(conn_) == CONNECTION_OK;
}

bool Connection::in_transaction() const {
    return PQtransactionStatus(conn_) != PQTRANS_IDLE;
}

void Connection::fail(PGresult* r, std::string_view what) {
    PgError e = error_from(conn_, r, what);
    if (r) PQclear(r);
    throw e;
}

void Connection::exec(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(r, sql.substr(0, 60));
    PQclear(r);
}

Status Connection::try_exec(const std::string& sql) {
    try {
        exec(sql);
        return Status::ok();
    } catch (const PgError& e) {
        return e.status();
    }
}

Rows Connection::run_prepared(const std::string& sql, const Params& p) {
    auto it = prepared_.find(sql);
    if (it == prepared_.end()) {
        std::string name = fmt::format("c{}", prepared_.size() + 1);
        PGresult* r = PQprepare(conn_, name.c_str(), sql.c_str(), 0, nullptr);
        if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) fail(r, "prepare " + sql.substr(0, 60));
        PQclear(r);
        it = prepared_.emplace(sql, std::move(name)).first;
    }
    std::vector<const char*> values(p.values.size());
    std::vector<int> lengths(p.values.size());
    for (size_t i = 0; i < p.values.size(); ++i) {
        values[i] = p.values[i] ? p.values[i]->data() : nullptr;
        lengths[i] = p.values[i] ? static_cast<int>(p.values[i]->size()) : 0;
    }
    PGresult* r = PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(values.size()),
                                 values.data(), lengths.data(), p.formats.data(), 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(r, sql.substr(0, 60));
    return Rows(r);
}

}  // namespace courier::db::pg
