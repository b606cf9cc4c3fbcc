// EnrollmentStore: enrollments (a device channel "<device id>" and its user
// channels "<device id>:<user id>"), their facts and tokens, retirement and
// each enrollment's timeline.
//
// Follows the storage contract in db/store.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "db/page.h"

namespace courier::db {

enum class EnrollmentState { kPending, kEnrolled, kUnenrolled, kRetired };
const char* state_name(EnrollmentState s);  // "pending", "enrolled", ...

struct Enrollment {
    std::string id;         // "<device id>" or "<device id>:<user id>"
    std::string device_id;  // UDID or EnrollmentID
    std::string user_id;    // empty on the device channel
    std::string type;       // mdm::enrollment_type_name
    std::string udid, serial_number, model, model_name, product_name, os_version, build_version,
        device_name, imei, meid;
    std::string topic;
    std::string push_token;  // raw bytes; empty until TokenUpdate
    std::string push_magic;
    bool has_unlock_token = false;  // the token itself is read with unlock_token()
    bool token_valid = false;       // false after APNs 400 BadDeviceToken / 410
    bool awaiting_configuration = false;
    EnrollmentState state = EnrollmentState::kPending;
    SysTime created_at{}, updated_at{};
    std::optional<SysTime> last_seen;
    std::optional<SysTime> identity_not_after;  // expiry of the bound identity certificate
    int64_t queued = 0;                         // targets in queued/sent/notnow
    bool facts_truncated = false;  // a fact of the last Authenticate was cut to kMaxFactBytes
    // The pending push (docs/apns.md "Pending push"): the apns-id of a push APNs
    // answered 200 that the device has not answered yet with a request. It
    // counts only while pending_push_until is in the future. With an empty
    // apns-id the push is only armed (PushStore::arm_pushes): sent or about
    // to be, its answer not yet recorded.
    std::string pending_push_apns_id;
    std::optional<SysTime> pending_push_until;
    bool push_pending_at(SysTime now) const {
        return push_marked_at(now) && !pending_push_apns_id.empty();
    }
    // Pending or armed: the device's next request clears the mark.
    bool push_marked_at(SysTime now) const {
        return pending_push_until && *pending_push_until > now;
    }
};

// Facts from an Authenticate or TokenUpdate, as the device service decided to
// store them.
struct AuthenticateInput {
    std::string id, device_id, user_id, type, topic;
    std::string udid, serial_number, model, model_name, product_name, os_version, build_version,
        device_name, imei, meid;
    std::string cert_sha256;  // identity certificate to bind (hex); may be empty
    std::optional<SysTime> cert_not_after;
    bool facts_truncated = false;  // the service cut a fact above to kMaxFactBytes
    // The approval rule (docs/security.md "Re-binding"), decided in the binding's
    // transaction: when set, a new certificate (not an approved one) binds
    // only if the device's identity was not in use within this period — its
    // active binding's bound_at/last_used, or the time its latest binding was
    // revoked. Else apply_authenticate fails with kForbidden and changes
    // nothing (the caller records the pending re-binding). nullopt: binds at
    // once (token-gated enrollment, --device-ca).
    std::optional<std::chrono::seconds> approval_quiet_period;
};
// Device facts (serial number, model, names, versions...) are stored up to
// this many bytes each (docs/security.md "Input limits").
constexpr size_t kMaxFactBytes = 1024;
// A device has at most this many user channels (docs/security.md "Input limits").
constexpr int64_t kMaxUserChannels = 1000;
struct TokenUpdateInput {
    std::string id, device_id, user_id, type, topic;
    std::string push_token, push_magic;
    std::optional<std::string> unlock_token;  // nullopt: keep the stored one
    bool awaiting_configuration = false;
    std::optional<SysTime> cert_not_after;  // expiry of the identity it came with
    // The identity certificate the TokenUpdate was presented with (hex). When
    // set, the write lands only while it is the active binding of device_id
    // (see apply_token_update). Empty: unchecked, for writers that are not a
    // device request (seeding, tests); the device service always sets it.
    std::string cert_sha256;
};

struct TimelineEvent {
    SysTime at{};
    std::string kind;    // "checkin", "push", "command", "report", "binding", ...
    std::string detail;  // human-readable, no secrets
};

struct EnrollmentFilter {
    std::optional<EnrollmentState> state;
    std::string topic, serial_number;
    std::optional<SysTime> seen_since;
    // Case-insensitive substring of the id, UDID, serial number or device
    // name (the console's search); empty: no condition.
    std::string query;
};

class EnrollmentStore {
  public:
    virtual ~EnrollmentStore() = default;

    // Authenticate starts the enrollment afresh: state pending, push token
    // cleared, every command still queued/sent/notnow for the id canceled;
    // when cert_sha256 is given, binds it in the same transaction as
    // BindingStore::bind_cert does (superseding the device's old binding;
    // kConflict, and nothing changed, where bind_cert refuses). A stored
    // unlock token is kept until a TokenUpdate replaces it (or a binding
    // supersedes the old identity); a retired enrollment stays retired.
    virtual Status apply_authenticate(const AuthenticateInput& in, SysTime now) = 0;
    // A TokenUpdate that would make a new user channel on a device that has
    // kMaxUserChannels already fails with kTooLarge and changes nothing
    // (checked in the write's transaction).
    // Stores token/magic/topic, keeps a stored unlock token when in.unlock_token
    // is nullopt, marks it enrolled with a valid token. The enrollment row is
    // created when missing (a user channel's first TokenUpdate); only the row
    // `in.id` is touched. Binds nothing: the device service admits a
    // TokenUpdate only with the device's active binding, which only
    // Authenticate makes. Resets the re-push backoff: attempts 0, due now if
    // anything is undelivered. A retired enrollment stays retired. Clears the
    // pending push (it went to the old token).
    // When in.cert_sha256 is set and is not the active binding of
    // in.device_id (revoked or superseded since the caller checked it),
    // fails with kConflict and changes nothing: checked in the write's
    // transaction, so a revoke or re-binding that commits first wins and the
    // old holder's push token is not restored (docs/security.md "Re-binding").
    virtual Status apply_token_update(const TokenUpdateInput& in, SysTime now) = 0;
    // Unenrolled; pending commands canceled.
    virtual Status apply_checkout(const std::string& id, SysTime now) = 0;
    virtual Result<Enrollment> enrollment(const std::string& id) = 0;
    // enrollment() without `queued` (left 0), which counts the enrollment's
    // open targets: for the device request path, which reads the state and
    // the pending push on every request. By default, enrollment().
    virtual Result<Enrollment> enrollment_state(const std::string& id) { return enrollment(id); }
    // Ordered by id; paging as for CommandQueue::list_commands.
    virtual Result<PageOf<Enrollment>> list_enrollments(const EnrollmentFilter& f,
                                                        const Page& page) = 0;
    // Which of ids have an enrollment row.
    virtual Result<std::vector<std::string>> existing_enrollments(
        const std::vector<std::string>& ids) = 0;
    // How many user-channel enrollments (user_id not empty) device_id has.
    virtual Result<int64_t> user_channel_count(const std::string& device_id) = 0;
    virtual Result<std::optional<std::string>> unlock_token(const std::string& id) = 0;
    // Stores the bootstrap token of enrollment `id` (kNotFound when there is
    // none). When cert_sha256 (hex) is set and is not the active binding of
    // the enrollment's device id (revoked or superseded since the caller
    // checked it), fails with kConflict and changes nothing: checked in the
    // write's transaction, so the old holder's token never lands after a
    // re-binding cleared the secrets. Empty: unchecked (not a device request).
    virtual Status set_bootstrap_token(const std::string& id, const std::string& token,
                                       const std::string& cert_sha256) = 0;
    virtual Result<std::optional<std::string>> bootstrap_token(const std::string& id) = 0;
    // Retire: state retired, queue canceled. Unretire: back to pending.
    virtual Status set_retired(const std::string& id, bool retired, SysTime now) = 0;
    // Records that these enrollments were seen at `now`. May be batched by the
    // implementation: durable within a second, not per call.
    // `now` to the millisecond: kept so in memory (record_push_outcomes
    // compares with it); last_seen is stored in whole seconds.
    virtual void touch_last_seen(const std::vector<std::string>& ids, SysTimeMs now) = 0;
    // The store itself records events for check-ins, bindings, queuing,
    // hand-over, reports, expiry, cancel, retirement and pushes; details
    // never contain secrets.
    virtual Status append_timeline(const std::string& id, const TimelineEvent& e) = 0;
    // Newest first (ties: most recently recorded first), at most `limit`
    // (clamped to 1..1000).
    virtual Result<std::vector<TimelineEvent>> timeline(const std::string& id, size_t limit) = 0;
};

}  // namespace courier::db
