// SessionStore: the web console's sign-in sessions (SPEC "Web console").
//
// Sessions live in the store so that any node serves them. Only a digest of
// the session id is stored: someone who reads the database cannot sign in
// with what they find there. Follows the storage contract in db/store.h.
#pragma once

#include <optional>
#include <string>

#include "common/clock.h"
#include "common/status.h"

namespace courier::db {

struct ConsoleSession {
    std::string id_sha256;  // 64 lowercase hex: SHA-256 of the id in the cookie
    SysTime created_at{}, expires_at{};
};

class SessionStore {
  public:
    virtual ~SessionStore() = default;

    // Stores a new session; kConflict when one with that digest exists.
    // Sessions that expired before s.created_at are deleted in the same
    // transaction, so the table holds only live sessions and recent ones.
    virtual Status put_session(const ConsoleSession& s) = 0;
    // The session, or nullopt when there is none or it expired at `now`.
    virtual Result<std::optional<ConsoleSession>> session(const std::string& id_sha256,
                                                          SysTime now) = 0;
    // Ends a session (sign-out). Ok whether or not it existed.
    virtual Status delete_session(const std::string& id_sha256) = 0;
};

}  // namespace courier::db
