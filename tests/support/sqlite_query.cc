#include "tests/support/sqlite_query.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

namespace courier::test {

std::string sqlite_query(const std::filesystem::path& path, const std::string& sql,
                         const std::string& if_no_row) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    std::string out = if_no_row;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char* t = sqlite3_column_text(st, 0);
        out = t ? reinterpret_cast<const char*>(t) : "";
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

}  // namespace courier::test
