// ReadScopes: sharing one read transaction among the reads a request makes.
//
// Follows the storage contract in db/store.h.
#pragma once

#include <memory>
#include <string>

#include "common/clock.h"

namespace courier::db {

// While a ReadScope lives, the reads its thread makes through the store that
// made it share one read transaction: one snapshot, one lock round trip,
// instead of one each. For request paths that only read (the Idle fast
// path): writes made meanwhile are not seen inside the scope.
class ReadScope {
  public:
    virtual ~ReadScope() = default;
};

// The reads a device request is about to make, said up front: its
// enrollment (EnrollmentStore::enrollment_state), its certificate's binding
// (BindingStore::binding) and, for an Idle on the command channel, whether
// its queue holds a command (CommandQueue::has_pending at `now`). A store
// whose reads are round trips (PostgreSQL) fetches them in one and answers
// those calls from that snapshot while the scope lives.
struct DeviceReads {
    std::string enrollment_id;
    std::string cert_sha256;
    bool has_pending = false;
    SysTime now{};
};

class ReadScopes {
  public:
    virtual ~ReadScopes() = default;

    // A read scope for the calling thread (see ReadScope); null where the
    // implementation has nothing to share. It covers the reads of every role
    // of the same store object (db/store.h).
    virtual std::unique_ptr<ReadScope> read_scope() { return nullptr; }
    // As read_scope(), knowing which reads follow (see DeviceReads).
    virtual std::unique_ptr<ReadScope> device_read_scope(const DeviceReads& reads) {
        (void)reads;
        return read_scope();
    }
};

}  // namespace courier::db
