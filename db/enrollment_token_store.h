// EnrollmentTokenStore: the tokens that gate /enroll, stored by their hash.
//
// Follows the storage contract in db/store.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace courier::db {

struct EnrollmentToken {
    std::string id;  // public id for listing/revoking
    std::string token_sha256;
    int64_t uses_left = 1;  // -1: unlimited
    std::optional<SysTime> expires_at;
    SysTime created_at{};
    std::string note;
};

class EnrollmentTokenStore {
  public:
    virtual ~EnrollmentTokenStore() = default;

    virtual Status put_enrollment_token(const EnrollmentToken& t) = 0;
    virtual Result<std::vector<EnrollmentToken>> enrollment_tokens() = 0;
    virtual Status delete_enrollment_token(const std::string& id) = 0;
    // Atomically checks and uses one (the claim: two concurrent calls for the
    // last use cannot both succeed): kForbidden when unknown, expired or used up.
    virtual Status consume_enrollment_token(const std::string& token_sha256, SysTime now) = 0;
    // Gives back the use a consume_enrollment_token call took, when what it
    // was claimed for failed (the profile could not be built). Ok, and
    // nothing changes, for an unlimited token or one deleted meanwhile.
    virtual Status release_enrollment_token(const std::string& token_sha256) = 0;
};

}  // namespace courier::db
