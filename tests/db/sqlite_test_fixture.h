// The fixture of the SQLite backend's own tests (sqlite_store_test.cc,
// sqlite_migrations_test.cc): a store file in a fresh directory, a manual
// clock, and raw SQL on a separate connection.
#pragma once

#include <sys/stat.h>

#include "db/sqlite/sqlite_store.h"
#include "tests/db/store_fixture.h"
#include "tests/support/sqlite_query.h"

namespace courier::db::sqlite_tests {

using namespace store_tests;

class SqliteStoreTest : public ::testing::Test {
  protected:
    fs::path db_path() const { return dir_.path() / "courier.db"; }
    std::unique_ptr<SqliteStore> open() { return open_sqlite(db_path(), clock_); }
    SysTime now() const { return clock_.now(); }

    TempDir dir_;
    ManualClock clock_{kT0};
};

// Runs sql on a separate connection and returns the first column of the
// first row as text.
inline std::string query(const fs::path& path, const std::string& sql) {
    return test::sqlite_query(path, sql);
}

inline unsigned mode_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 0777;
}

}  // namespace courier::db::sqlite_tests
