// Versioned, forward-only schema migrations, tracked in PRAGMA user_version.
#pragma once

#include "common/status.h"
#include "db/sqlite/sqlite_statement.h"

namespace courier::db::sqlite {

// The schema version this build writes and understands.
int latest_schema_version();

// Brings the database to latest_schema_version(), one transaction per step.
// A database newer than this build is refused (kInvalid) and left untouched.
Status migrate(Connection& conn);

}  // namespace courier::db::sqlite
