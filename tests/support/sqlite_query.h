// Reads a SQLite database file on a separate connection, as the tests that
// check what a store left on disk do.
#pragma once

#include <filesystem>
#include <string>

namespace courier::test {

// Runs `sql` on a new connection to `path` and returns the first column of
// the first row as text (NULL as ""), or `if_no_row` when there is no row.
std::string sqlite_query(const std::filesystem::path& path, const std::string& sql,
                         const std::string& if_no_row = {});

}  // namespace courier::test
