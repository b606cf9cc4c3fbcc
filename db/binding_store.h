// BindingStore: identity certificate bindings (docs/security.md "Re-binding") and the
// provenance of identities a token-gated /enroll issued.
//
// Follows the storage contract in db/store.h.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace courier::db {

// An identity certificate's relation to a device id (docs/security.md "Re-binding").
enum class BindingState {
    kActive,      // the device's current identity: accepted
    kPending,     // a re-binding asked for by Authenticate, awaiting approval
    kApproved,    // approved by an administrator; the next Authenticate binds it
    kSuperseded,  // replaced by a later binding: refused
    kRevoked,     // revoked by an administrator: refused
};
const char* binding_state_name(BindingState s);  // "active", "pending", ...
// The state binding_state_name names; nullopt for any other text.
std::optional<BindingState> parse_binding_state(std::string_view name);

struct Binding {
    std::string cert_sha256;  // hex SHA-256 of the DER
    std::string device_id;
    BindingState state = BindingState::kActive;
    std::optional<SysTime> not_after;
    SysTime bound_at{};                    // when bound; for pending/approved, when first asked for
    std::optional<SysTime> superseded_at;  // superseded or revoked
    std::optional<SysTime> last_used;      // last request presenting it (batched)
    std::optional<SysTime> alarm_at;       // last superseded-use alarm
};

// Identity certificates are named by the hex SHA-256 of their DER.
class BindingStore {
  public:
    virtual ~BindingStore() = default;

    // A certificate has at most one binding row, to one device id, for ever:
    // superseded and revoked rows are kept, so such a certificate can never
    // bind again, to this device or another. A device has at most one active
    // binding. The user channel "<device>:<user>" shares its device's.
    //
    // The certificate's binding row in any state, or nullopt. last_used
    // includes uses not yet flushed (see touch_binding).
    virtual Result<std::optional<Binding>> binding(const std::string& cert_sha256) = 0;
    // The device id's rows in every state, newest bound_at first.
    virtual Result<std::vector<Binding>> bindings(const std::string& device_id) = 0;
    // The device's active binding, or nullopt.
    virtual Result<std::optional<Binding>> active_binding(const std::string& device_id) = 0;
    // Binds the certificate to the device as its active binding, and
    // supersedes (superseded_at = now) every other active binding of the
    // device. When the device had any earlier binding (active, superseded or
    // revoked), the bootstrap, unlock and push tokens and push magic of every
    // enrollment of the device (device and user channels) are cleared, its
    // re-push schedule and pending push dropped and its open commands
    // (queued, sent, notnow) canceled: they belonged to an earlier identity.
    // The very first binding of a device clears nothing. Ok and nothing
    // changed when the certificate is already the device's active binding;
    // a pending or approved row becomes active (whether a re-binding needed
    // approval is the caller's policy).
    // kConflict, and nothing changed, when the certificate has a row for
    // another device, or a superseded or revoked row for this one. Records a
    // timeline event.
    virtual Status bind_cert(const std::string& cert_sha256, const std::string& device_id,
                             std::optional<SysTime> not_after, SysTime now) = 0;
    // Records a pending re-binding of the certificate to the device (a
    // timeline event the first time). Ok when it is already pending or
    // approved for this device; kConflict, and nothing changed, when the
    // certificate has a row in any other state or for another device. A
    // device keeps at most 16 pending rows: with 16 pending, a new one is
    // refused with kTooLarge and nothing changed (none is evicted, so
    // requests from an attacker cannot push the real device's out; an
    // administrator revokes rows to make room).
    virtual Status request_binding(const std::string& cert_sha256, const std::string& device_id,
                                   std::optional<SysTime> not_after, SysTime now) = 0;
    // Pending → approved (a timeline event). kNotFound when the device has no
    // row for the certificate; kConflict when the row is not pending (ok when
    // already approved).
    virtual Status approve_binding(const std::string& device_id, const std::string& cert_sha256,
                                   SysTime now) = 0;
    // Any state → revoked (superseded_at = now unless already set, a timeline
    // event). Revoking the active binding also clears, in the same
    // transaction, the device's bootstrap, unlock and push tokens and push
    // magic (device and user channels), drops its re-push schedule and
    // pending push and cancels its open commands, as a supersede does: no
    // push reaches the revoked holder. kNotFound when the device has no row
    // for the certificate; revoking a revoked row is ok and changes nothing.
    virtual Status revoke_binding(const std::string& device_id, const std::string& cert_sha256,
                                  SysTime now) = 0;
    // Records that a superseded or revoked certificate was presented, at most
    // once an hour per certificate: true (alarm_at = now, a timeline event
    // on its device) when the last one is older than an hour or absent,
    // false and nothing written otherwise. kNotFound when the certificate has
    // no row.
    virtual Result<bool> note_superseded_use(const std::string& cert_sha256, SysTime now) = 0;
    // Records that the certificate was presented at `now` (last_used). Like
    // EnrollmentStore::touch_last_seen: may be batched, durable within a
    // second, not per call.
    virtual void touch_binding(const std::string& cert_sha256, SysTime now) = 0;
    // Provenance of identities a token-gated /enroll issued: the certificate
    // and the id of the enrollment token (named by its hash) it was issued
    // with. kConflict when the certificate is already recorded.
    virtual Status record_issued_identity(const std::string& cert_sha256,
                                          const std::string& token_sha256, SysTime now) = 0;
    // The id of the token the certificate was issued with, or nullopt when
    // no token-gated /enroll issued it.
    virtual Result<std::optional<std::string>> issued_with_token(
        const std::string& cert_sha256) = 0;
};

}  // namespace courier::db
