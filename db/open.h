// Opening the store named by `courier serve --db URL`.
#pragma once

#include <memory>
#include <string>

#include "db/store.h"

namespace courier::db {

struct OpenOptions {
    size_t pg_pool = 16;  // --db-pool: PostgreSQL connections per node
};

// "sqlite://PATH" or a bare PATH; an empty path (or "sqlite://") means
// <data_dir>/courier.db. Relative paths are relative to the working
// directory. "postgres://…" and "postgresql://…" (a libpq connection URI,
// multi-host with target_session_attrs=read-write allowed) open a PgStore;
// any other scheme is kInvalid. Uses the system clock.
Result<std::unique_ptr<Store>> open_store(const std::string& url, const std::string& data_dir,
                                          const OpenOptions& options = {});

// Whether url names a PostgreSQL database.
bool is_postgres_url(const std::string& url);

}  // namespace courier::db
