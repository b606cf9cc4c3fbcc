// A PostgreSQL database per test, on the one server a ctest run starts
// (tools/pg-test-server.sh, fixture "postgres"). The server's base URI is
// read from $COURIER_TEST_PG_URI, else from the file the fixture writes.
#pragma once

#include <optional>
#include <string>

namespace courier {

// The base URI, or nullopt when no server runs (PostgreSQL not installed, or
// the test was run outside ctest without starting one).
std::optional<std::string> pg_test_base_uri();

// Why PostgreSQL tests cannot run here, or empty when they can. Callers
// skip with it, except in CI (env CI=true), where they fail with it: CI
// installs PostgreSQL, so a missing server there is a broken setup.
std::string pg_test_unavailable();
bool pg_test_must_run();  // CI=true

// Creates a uniquely named database on the test server; drops it (closing
// any connection still open to it) when destroyed.
class PgTestDb {
  public:
    PgTestDb();
    ~PgTestDb();
    PgTestDb(const PgTestDb&) = delete;
    PgTestDb& operator=(const PgTestDb&) = delete;

    bool ok() const { return !uri_.empty(); }
    const std::string& error() const { return error_; }
    const std::string& uri() const { return uri_; }  // the new database's URI
    const std::string& name() const { return name_; }
    // Runs sql on the new database; returns the first column of the first
    // row ("" if none), or "ERROR: ..." on failure.
    std::string query(const std::string& sql) const;

  private:
    std::string base_, name_, uri_, error_;
};

}  // namespace courier
