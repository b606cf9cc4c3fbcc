// PushCertStore: APNs push certificates, one active per topic, with history.
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

struct PushCert {
    int64_t id = 0;
    std::string topic;
    std::string cert_pem, key_pem;  // key_pem is a secret: never log it
    std::string thumbprint_sha1;    // 40 lowercase hex
    SysTime not_before{}, not_after{};
    SysTime uploaded_at{};
    std::optional<SysTime> replaced_at;  // set when a renewal superseded it
    bool active = false;
    bool usable = true;
    std::string unusable_reason;
};

class PushCertStore {
  public:
    virtual ~PushCertStore() = default;

    // Stores cert as the active one for its topic; the previous active one
    // (if any) gets replaced_at and stays in history. Returns the new id.
    virtual Result<int64_t> put_push_cert(const PushCert& cert, SysTime now) = 0;
    virtual Result<std::vector<PushCert>> active_push_certs() = 0;
    virtual Result<std::optional<PushCert>> active_push_cert(const std::string& topic) = 0;
    virtual Result<std::vector<PushCert>> push_cert_history() = 0;
    virtual Status mark_push_cert_unusable(int64_t id, const std::string& reason) = 0;
};

}  // namespace courier::db
