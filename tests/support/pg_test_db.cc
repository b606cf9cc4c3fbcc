#include "tests/support/pg_test_db.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>

namespace courier {

#ifndef COURIER_PG_URI_FILE
#define COURIER_PG_URI_FILE ""
#endif

namespace {

std::string run_sql(const std::string& uri, const std::string& sql) {
    PGconn* c = PQconnectdb(uri.c_str());
    std::string out;
    if (PQstatus(c) != CONNECTION_OK) {
        out = std::string("ERROR: ") + PQerrorMessage(c);
    } else {
        PGresult* r = PQexec(c, sql.c_str());
        auto st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            out = std::string("ERROR: ") + PQresultErrorMessage(r);
        } else if (PQntuples(r) > 0 && PQnfields(r) > 0) {
            out = PQgetvalue(r, 0, 0);
        }
        PQclear(r);
    }
    PQfinish(c);
    return out;
}

// "postgresql://user@host:port/postgres" → the same with /name.
std::string with_database(const std::string& base, const std::string& name) {
    auto q = base.find('?');
    std::string head = base.substr(0, q), tail = q == std::string::npos ? "" : base.substr(q);
    auto slash = head.rfind('/');
    if (slash == std::string::npos || slash < head.find("://") + 3) return head + "/" + name + tail;
    return head.substr(0, slash + 1) + name + tail;
}

}  // namespace

std::optional<std::string> pg_test_base_uri() {
    if (const char* env = std::getenv("COURIER_TEST_PG_URI"); env && *env) return std::string(env);
    std::ifstream f(COURIER_PG_URI_FILE);
    std::string uri;
    if (f && std::getline(f, uri) && !uri.empty()) return uri;
    return std::nullopt;
}

bool pg_test_must_run() {
    const char* ci = std::getenv("CI");
    return ci && std::string(ci) == "true";
}

std::string pg_test_unavailable() {
    auto base = pg_test_base_uri();
    if (!base)
        return "no PostgreSQL test server: run through ctest (fixture postgres, "
               "tools/pg-test-server.sh) or set COURIER_TEST_PG_URI";
    std::string r = run_sql(*base, "SELECT 1");
    if (r != "1") return "PostgreSQL test server not answering: " + r;
    return "";
}

PgTestDb::PgTestDb() {
    auto base = pg_test_base_uri();
    if (!base) {
        error_ = pg_test_unavailable();
        return;
    }
    base_ = *base;
    static std::atomic<int> counter{0};
    name_ = "courier_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    std::string r = run_sql(base_, "CREATE DATABASE " + name_ + " STRATEGY FILE_COPY");
    if (r.rfind("ERROR", 0) == 0) {
        error_ = r;
        return;
    }
    uri_ = with_database(base_, name_);
}

PgTestDb::~PgTestDb() {
    if (!uri_.empty()) (void)run_sql(base_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
}

std::string PgTestDb::query(const std::string& sql) const {
    return run_sql(uri_, sql);
}

}  // namespace courier
