#include "db/migrate.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "common/clock.h"
#include "db/postgres/pg_connection.h"
#include "db/postgres/pg_store.h"
#include "db/sqlite/migrations.h"
#include "db/sqlite/sqlite_statement.h"
#include "db/sqlite/sqlite_store.h"

namespace courier::db {

namespace {

enum class Kind { kText, kInt, kBool, kBytes };

struct Column {
    const char* name;
    Kind kind;
};

struct Table {
    const char* name;
    std::vector<Column> columns;
    const char* identity = nullptr;  // GENERATED ALWAYS column, kept as is
};

// Every table of the schema (SQLite version 9 = PostgreSQL version 2; 9 only
// changed an index), in
// an order that satisfies the foreign keys.
const std::vector<Table>& tables() {
    static const std::vector<Table> t = {
        {"enrollments",
         {{"id", Kind::kText},
          {"device_id", Kind::kText},
          {"user_id", Kind::kText},
          {"type", Kind::kText},
          {"udid", Kind::kText},
          {"serial_number", Kind::kText},
          {"model", Kind::kText},
          {"model_name", Kind::kText},
          {"product_name", Kind::kText},
          {"os_version", Kind::kText},
          {"build_version", Kind::kText},
          {"device_name", Kind::kText},
          {"imei", Kind::kText},
          {"meid", Kind::kText},
          {"topic", Kind::kText},
          {"push_token", Kind::kBytes},
          {"push_magic", Kind::kText},
          {"unlock_token", Kind::kBytes},
          {"bootstrap_token", Kind::kBytes},
          {"token_valid", Kind::kBool},
          {"awaiting_configuration", Kind::kBool},
          {"state", Kind::kText},
          {"created_at", Kind::kInt},
          {"updated_at", Kind::kInt},
          {"last_seen", Kind::kInt},
          {"identity_not_after", Kind::kInt},
          {"repush_at", Kind::kInt},
          {"repush_attempts", Kind::kInt},
          {"facts_truncated", Kind::kBool},
          {"pending_push_apns_id", Kind::kText},
          {"pending_push_until", Kind::kInt},
          {"token_update_tally", Kind::kInt}}},
        {"commands",
         {{"seq", Kind::kInt},
          {"uuid", Kind::kText},
          {"request_type", Kind::kText},
          {"plist", Kind::kBytes},
          {"created_at", Kind::kInt},
          {"expires_at", Kind::kInt}},
         "seq"},
        {"targets",
         {{"enrollment_id", Kind::kText},
          {"command_seq", Kind::kInt},
          {"status", Kind::kText},
          {"updated_at", Kind::kInt},
          {"result", Kind::kBytes},
          {"expires_at", Kind::kInt}}},
        {"cert_bindings",
         {{"cert_sha256", Kind::kText},
          {"device_id", Kind::kText},
          {"bound_at", Kind::kInt},
          {"state", Kind::kText},
          {"not_after", Kind::kInt},
          {"superseded_at", Kind::kInt},
          {"last_used", Kind::kInt},
          {"alarm_at", Kind::kInt}}},
        {"issued_identities",
         {{"cert_sha256", Kind::kText}, {"token_id", Kind::kText}, {"issued_at", Kind::kInt}}},
        {"push_certs",
         {{"id", Kind::kInt},
          {"topic", Kind::kText},
          {"cert_pem", Kind::kText},
          {"key_pem", Kind::kText},
          {"thumbprint_sha1", Kind::kText},
          {"not_before", Kind::kInt},
          {"not_after", Kind::kInt},
          {"uploaded_at", Kind::kInt},
          {"replaced_at", Kind::kInt},
          {"active", Kind::kBool},
          {"usable", Kind::kBool},
          {"unusable_reason", Kind::kText}},
         "id"},
        {"push_attempts",
         {{"id", Kind::kInt},
          {"enrollment_id", Kind::kText},
          {"at", Kind::kInt},
          {"http_status", Kind::kInt},
          {"apns_id", Kind::kText},
          {"reason", Kind::kText}},
         "id"},
        {"timeline",
         {{"id", Kind::kInt},
          {"enrollment_id", Kind::kText},
          {"at", Kind::kInt},
          {"kind", Kind::kText},
          {"detail", Kind::kText}},
         "id"},
        {"enrollment_tokens",
         {{"id", Kind::kText},
          {"token_sha256", Kind::kText},
          {"uses_left", Kind::kInt},
          {"expires_at", Kind::kInt},
          {"created_at", Kind::kInt},
          {"note", Kind::kText}}},
        {"webhooks",
         {{"id", Kind::kText},
          {"url", Kind::kText},
          {"topics", Kind::kText},
          {"hmac_key", Kind::kText},
          {"enabled", Kind::kBool},
          {"created_at", Kind::kInt}}},
        {"webhook_events",
         {{"seq", Kind::kInt},
          {"event_id", Kind::kText},
          {"topic", Kind::kText},
          {"enrollment_id", Kind::kText},
          {"body", Kind::kBytes},
          {"tally", Kind::kInt},
          {"created_at", Kind::kInt}},
         "seq"},
        {"webhook_deliveries",
         {{"webhook_id", Kind::kText},
          {"event_seq", Kind::kInt},
          {"enrollment_id", Kind::kText},
          {"status", Kind::kText},
          {"ordered", Kind::kBool},
          {"attempts", Kind::kInt},
          {"next_attempt", Kind::kInt},
          {"deadline", Kind::kInt},
          {"last_status", Kind::kInt},
          {"last_error", Kind::kText},
          {"lease", Kind::kText},
          {"lease_until", Kind::kInt}}},
        {"webhook_once", {{"key", Kind::kText}, {"at", Kind::kInt}}},
        {"console_sessions",
         {{"id_sha256", Kind::kText}, {"created_at", Kind::kInt}, {"expires_at", Kind::kInt}}},
        {"pending_push_keys",
         {{"id", Kind::kInt}, {"key_pem", Kind::kText}, {"created_at", Kind::kInt}},
         "id"},
    };
    return t;
}

const char* pg_type(Kind k) {
    switch (k) {
        case Kind::kText:
            return "text";
        case Kind::kInt:
            return "bigint";
        case Kind::kBool:
            return "boolean";
        case Kind::kBytes:
            return "bytea";
    }
    return "text";
}

// Rows are sent in batches of this many, one statement per batch, each
// column as an array (unnest).
constexpr int kBatch = 1000;

void append_element(std::string& lit, sqlite3_stmt* st, int col, Kind kind) {
    if (sqlite3_column_type(st, col) == SQLITE_NULL) {
        lit += "NULL";
        return;
    }
    std::string v;
    switch (kind) {
        case Kind::kInt:
            lit += std::to_string(sqlite3_column_int64(st, col));
            return;
        case Kind::kBool:
            lit += sqlite3_column_int64(st, col) != 0 ? "t" : "f";
            return;
        case Kind::kBytes: {
            const auto* p = static_cast<const unsigned char*>(sqlite3_column_blob(st, col));
            int n = sqlite3_column_bytes(st, col);
            static const char* hex = "0123456789abcdef";
            v = "\\x";
            for (int i = 0; i < n; ++i) {
                v += hex[p[i] >> 4];
                v += hex[p[i] & 15];
            }
            break;
        }
        case Kind::kText: {
            const auto* p = sqlite3_column_text(st, col);
            v.assign(reinterpret_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(st, col)));
            break;
        }
    }
    lit += '"';
    for (char ch : v) {
        if (ch == '"' || ch == '\\') lit += '\\';
        lit += ch;
    }
    lit += '"';
}

std::optional<std::string> read_whole(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    if (!f) return std::nullopt;
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

struct SqliteDb {
    sqlite3* db = nullptr;
    ~SqliteDb() { sqlite3_close(db); }
};

}  // namespace

Result<MigrateReport> migrate_sqlite_to_postgres(const std::string& sqlite_path,
                                                 const std::string& data_dir,
                                                 const std::string& pg_uri) {
    if (!std::filesystem::exists(sqlite_path))
        return invalid("no SQLite database at " + sqlite_path);
    {
        // Brings an older file up to this build's schema (and refuses a
        // newer one), as `courier serve` would; the copy expects version 9.
        auto s = SqliteStore::open(sqlite_path, SqliteOptions{}, SystemClock::instance());
        if (!s) return s.status();
        (*s)->close();
    }
    if (sqlite::latest_schema_version() != 9)
        return internal_error("courier migrate knows SQLite schema 9; update db/migrate.cc");
    SqliteDb src;
    if (sqlite3_open_v2(sqlite_path.c_str(), &src.db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK)
        return invalid("cannot open " + sqlite_path + ": " + sqlite3_errmsg(src.db));
    // One read transaction: a consistent snapshot of the source.
    sqlite3_exec(src.db, "BEGIN", nullptr, nullptr, nullptr);

    // Migrates the target's schema (under its advisory lock).
    {
        PgOptions o;
        o.pool_size = 1;
        auto store = PgStore::open(pg_uri, o, SystemClock::instance());
        if (!store) return store.status();
    }
    auto conn = pg::Connection::open(pg_uri);
    if (!conn) return conn.status();
    pg::Connection& c = **conn;
    MigrateReport report;
    try {
        c.exec("BEGIN");
        // Nothing else writes while we copy (nodes must not run yet; this
        // makes one that starts wait).
        for (const auto& t : tables())
            c.exec(fmt::format("LOCK TABLE {} IN EXCLUSIVE MODE", t.name));
        c.exec("LOCK TABLE secrets IN EXCLUSIVE MODE");
        for (const char* name : {"enrollments", "commands", "cert_bindings", "push_certs",
                                 "enrollment_tokens", "timeline", "secrets", "webhooks",
                                 "webhook_events", "console_sessions", "pending_push_keys"}) {
            if (!c.query(fmt::format("SELECT 1 FROM {} LIMIT 1", name)).empty()) {
                c.exec("ROLLBACK");
                return conflict(fmt::format(
                    "the target database is not empty ({} has rows): courier migrate copies "
                    "into an empty database only",
                    name));
            }
        }
        for (const auto& t : tables()) {
            std::string cols, types;
            for (size_t i = 0; i < t.columns.size(); ++i) {
                cols += (i ? ", " : "") + std::string(t.columns[i].name);
                types +=
                    fmt::format("{}${}::{}[]", i ? ", " : "", i + 1, pg_type(t.columns[i].kind));
            }
            std::string insert =
                fmt::format("INSERT INTO {} ({}) {} SELECT * FROM unnest({})", t.name, cols,
                            t.identity ? "OVERRIDING SYSTEM VALUE" : "", types);
            sqlite3_stmt* st = nullptr;
            std::string select = fmt::format("SELECT {} FROM {}", cols, t.name);
            if (sqlite3_prepare_v2(src.db, select.c_str(), -1, &st, nullptr) != SQLITE_OK) {
                std::string err = sqlite3_errmsg(src.db);
                c.exec("ROLLBACK");
                return invalid(fmt::format("reading {}: {}", t.name, err));
            }
            struct Finalize {
                sqlite3_stmt* st;
                ~Finalize() { sqlite3_finalize(st); }
            } finalize{st};
            int64_t copied = 0;
            std::vector<std::string> lits(t.columns.size());
            int in_batch = 0;
            auto flush = [&] {
                if (in_batch == 0) return;
                std::vector<const char*> values;
                for (auto& l : lits) {
                    l += '}';
                    values.push_back(l.c_str());
                }
                PGresult* r = PQexecParams(c.raw(), insert.c_str(), static_cast<int>(values.size()),
                                           nullptr, values.data(), nullptr, nullptr, 0);
                if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                    pg::PgError e = pg::error_from(c.raw(), r, std::string("copying ") + t.name);
                    PQclear(r);
                    throw e;
                }
                PQclear(r);
                in_batch = 0;
            };
            int rc;
            while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                for (size_t i = 0; i < t.columns.size(); ++i) {
                    std::string& l = lits[i];
                    if (in_batch == 0) l.clear();
                    l += in_batch == 0 ? '{' : ',';
                    append_element(l, st, static_cast<int>(i), t.columns[i].kind);
                }
                ++in_batch;
                ++copied;
                if (in_batch == kBatch) flush();
            }
            if (rc != SQLITE_DONE) {
                c.exec("ROLLBACK");
                return internal_error(
                    fmt::format("reading {}: {}", t.name, sqlite3_errmsg(src.db)));
            }
            flush();
            // Verify: the target holds as many rows as the source.
            int64_t have = c.query(fmt::format("SELECT count(*) FROM {}", t.name)).int64(0, 0);
            if (have != copied) {
                c.exec("ROLLBACK");
                return internal_error(
                    fmt::format("{}: {} rows read, {} in the target; nothing "
                                "was kept",
                                t.name, copied, have));
            }
            if (t.identity)
                c.exec(
                    fmt::format("SELECT setval(pg_get_serial_sequence('{0}', '{1}'), "
                                "coalesce((SELECT max({1}) FROM {0}), 0) + 1, false)",
                                t.name, t.identity));
            report.rows[t.name] = copied;
        }
        // Generated keys: the data dir's copies become every node's.
        const auto base = std::filesystem::path(data_dir);
        for (const char* name :
             {"api-key", "tls/ca.crt", "tls/ca.key", "enrollment-ca.crt", "enrollment-ca.key"}) {
            auto content = read_whole(base / name);
            report.files[name] = content.has_value();
            if (!content) continue;
            c.query("INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3)",
                    std::string(name), pg::Bytes{*content}, to_unix(SystemClock::instance().now()));
        }
        c.exec("COMMIT");
    } catch (const pg::PgError& e) {
        if (c.ok() && c.in_transaction()) (void)c.try_exec("ROLLBACK");
        return e.status();
    }
    return report;
}

}  // namespace courier::db
