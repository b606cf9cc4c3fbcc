// StoreHealth: whether the database answers and takes writes (/healthz).
//
// Follows the storage contract in db/store.h.
#pragma once

#include "common/status.h"

namespace courier::db {

class StoreHealth {
  public:
    virtual ~StoreHealth() = default;

    // Health: a cheap round-trip to the database; and while writes fail with
    // a storage error (disk full, I/O error, locked), kUnavailable: after a
    // write failed so, ping probes with a small write until one succeeds.
    virtual Status ping() = 0;
};

}  // namespace courier::db
