// ConsoleStore: what the web console's pages need beyond the other roles
// (SPEC "Web console": the overview's counts, and the private keys behind
// CSRs the server made). Follows the storage contract in db/store.h.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace courier::db {

struct Overview {
    std::map<std::string, int64_t> devices_by_state;  // state_name → count (absent: 0)
    int64_t queue_depth = 0;                          // targets queued, sent or notnow
    int64_t pushes = 0;                               // push attempts since `since`
    int64_t push_errors = 0;                          // of those, not answered 200 by APNs
};

// A private key the server generated for a push certificate CSR; the
// certificate Apple issues for that CSR completes it (PUT /v1/pushcert
// with the certificate alone). key_pem is a secret: never log it.
struct PendingPushKey {
    int64_t id = 0;
    std::string key_pem;
    SysTime created_at{};
};

class ConsoleStore {
  public:
    virtual ~ConsoleStore() = default;

    // One read transaction: device counts by state, queue depth, push
    // attempts recorded at or after `since`.
    virtual Result<Overview> overview(SysTime since) = 0;

    // Keeps a generated CSR key; at most kMaxPendingPushKeys are kept (the
    // oldest beyond are deleted in the same transaction). Returns its id.
    static constexpr int kMaxPendingPushKeys = 10;
    virtual Result<int64_t> put_pending_push_key(const std::string& key_pem, SysTime now) = 0;
    // Newest first.
    virtual Result<std::vector<PendingPushKey>> pending_push_keys() = 0;
    // Ok whether or not it existed.
    virtual Status delete_pending_push_key(int64_t id) = 0;
};

}  // namespace courier::db
