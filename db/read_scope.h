// ReadScopes: sharing one read transaction among the reads a request makes.
//
// Follows the storage contract in db/store.h.
#pragma once

#include <memory>

namespace courier::db {

// While a ReadScope lives, the reads its thread makes through the store that
// made it share one read transaction: one snapshot, one lock round trip,
// instead of one each. For request paths that only read (the Idle fast
// path): writes made meanwhile are not seen inside the scope.
class ReadScope {
  public:
    virtual ~ReadScope() = default;
};

class ReadScopes {
  public:
    virtual ~ReadScopes() = default;

    // A read scope for the calling thread (see ReadScope); null where the
    // implementation has nothing to share. It covers the reads of every role
    // of the same store object (db/store.h).
    virtual std::unique_ptr<ReadScope> read_scope() { return nullptr; }
};

}  // namespace courier::db
