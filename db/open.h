// Opening the store named by `courier serve --db URL`.
#pragma once

#include <memory>
#include <string>

#include "db/store.h"

namespace courier::db {

// "sqlite://PATH" or a bare PATH; an empty path (or "sqlite://") means
// <data_dir>/courier.db. Relative paths are relative to the working
// directory. "postgres://" and "postgresql://" are refused (kInvalid) until
// that backend exists; any other scheme is kInvalid too. Uses the system
// clock and default SqliteOptions.
Result<std::unique_ptr<Store>> open_store(const std::string& url, const std::string& data_dir);

}  // namespace courier::db
