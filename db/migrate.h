// `courier migrate --from sqlite://PATH --to postgres://…`: moving a
// single-node installation onto PostgreSQL (SPEC "Moving up").
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "common/status.h"

namespace courier::db {

struct MigrateReport {
    std::map<std::string, int64_t> rows;  // table → rows copied (and verified)
    std::map<std::string, bool> files;    // generated key file → copied
};

// Copies every table of the SQLite database at sqlite_path (enrollments,
// bindings, issued identities, push certificates and their history, push
// attempts, commands, targets and results, timeline, enrollment tokens,
// webhook destinations with their pending events and deliveries, console
// sessions and the kept CSR keys) and
// the generated keys in data_dir (api-key, tls/ca.*, enrollment-ca.*) into
// the PostgreSQL database at pg_uri, migrated to this build's schema first,
// in one transaction; then counts every table on both sides. kConflict, and
// nothing written, when the target holds any Courier data already;
// kInvalid when the SQLite file is missing or its schema is not this
// build's; a count mismatch rolls everything back (kInternal).
Result<MigrateReport> migrate_sqlite_to_postgres(const std::string& sqlite_path,
                                                 const std::string& data_dir,
                                                 const std::string& pg_uri);

}  // namespace courier::db
