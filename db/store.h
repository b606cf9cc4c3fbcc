// The storage contract: enrollments, the command queue, push certificates,
// push attempts and enrollment tokens.
//
// Every method is thread-safe and synchronous; it may block on disk I/O, so
// the HTTP layer calls it from worker threads, never from an I/O thread.
// A method that returns ok has committed: its effect survives kill -9 and
// power loss. A method that fails has changed nothing. Methods shaped like a
// device request (apply_checkin, next_command, apply_report) do all their
// work in one transaction.
//
// Implementations: SqliteStore (db/sqlite_store.h). The suite in
// tests/store_test.cc runs against every implementation.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

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
    // The pending push (SPEC "pending push"): the apns-id of a push APNs
    // answered 200 that the device has not answered yet with a request. It
    // counts only while pending_push_until is in the future.
    std::string pending_push_apns_id;
    std::optional<SysTime> pending_push_until;
    bool push_pending_at(SysTime now) const {
        return pending_push_until && *pending_push_until > now && !pending_push_apns_id.empty();
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
    // The approval rule (SPEC "re-binding"), decided in the binding's
    // transaction: when set, a new certificate (not an approved one) binds
    // only if the device's identity was not in use within this period — its
    // active binding's bound_at/last_used, or the time its latest binding was
    // revoked. Else apply_authenticate fails with kForbidden and changes
    // nothing (the caller records the pending re-binding). nullopt: binds at
    // once (token-gated enrollment, --device-ca).
    std::optional<std::chrono::seconds> approval_quiet_period;
};
// Device facts (serial number, model, names, versions...) are stored up to
// this many bytes each (SPEC "input limits").
constexpr size_t kMaxFactBytes = 1024;
// A device has at most this many user channels (SPEC "input limits").
constexpr int64_t kMaxUserChannels = 1000;
struct TokenUpdateInput {
    std::string id, device_id, user_id, type, topic;
    std::string push_token, push_magic;
    std::optional<std::string> unlock_token;  // nullopt: keep the stored one
    bool awaiting_configuration = false;
    std::optional<SysTime> cert_not_after;  // expiry of the identity it came with
};

// An identity certificate's relation to a device id (SPEC "re-binding").
enum class BindingState {
    kActive,      // the device's current identity: accepted
    kPending,     // a re-binding asked for by Authenticate, awaiting approval
    kApproved,    // approved by an administrator; the next Authenticate binds it
    kSuperseded,  // replaced by a later binding: refused
    kRevoked,     // revoked by an administrator: refused
};
const char* binding_state_name(BindingState s);  // "active", "pending", ...

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

// Queue state of one command for one enrollment.
enum class TargetStatus {
    kQueued,
    kSent,
    kAcknowledged,
    kError,
    kCommandFormatError,
    kNotNow,
    kCanceled,
    kExpired
};
const char* target_status_name(TargetStatus s);  // "queued", "sent", ...
std::optional<TargetStatus> parse_target_status(std::string_view s);
inline bool is_final(TargetStatus s) {
    return s == TargetStatus::kAcknowledged || s == TargetStatus::kError ||
           s == TargetStatus::kCommandFormatError || s == TargetStatus::kCanceled ||
           s == TargetStatus::kExpired;
}

struct NewCommand {
    std::string uuid, request_type;
    std::string plist;  // envelope bytes handed to the device
    std::optional<SysTime> expires_at;
};

struct EnqueueResult {
    std::vector<std::string> queued;   // targets the command was queued for
    std::vector<std::string> unknown;  // ids with no enrollment (nothing queued for them)
    // Queued targets that have a pending push (see Store::enqueue): id → the
    // pending push's apns-id. They need no push of their own.
    std::map<std::string, std::string> pending_push;
};

// A command handed to a device.
struct DeliveredCommand {
    std::string uuid, request_type, plist;
};

struct TargetInfo {
    std::string enrollment_id;
    TargetStatus status = TargetStatus::kQueued;
    SysTime updated_at{};
    std::string result;  // the device's last report, plist bytes; empty if none
};
struct CommandInfo {
    std::string uuid, request_type, plist;
    SysTime created_at{};
    std::optional<SysTime> expires_at;
    std::vector<TargetInfo> targets;
};

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

struct PushAttempt {
    std::string enrollment_id;
    SysTime at{};
    int http_status = 0;  // 0: no answer (connection error, timeout, no certificate)
    std::string apns_id, reason;
};

struct TimelineEvent {
    SysTime at{};
    std::string kind;    // "checkin", "push", "command", "report", "binding", ...
    std::string detail;  // human-readable, no secrets
};

struct EnrollmentToken {
    std::string id;  // public id for listing/revoking
    std::string token_sha256;
    int64_t uses_left = 1;  // -1: unlimited
    std::optional<SysTime> expires_at;
    SysTime created_at{};
    std::string note;
};

struct Page {
    int64_t limit = 100;
    std::string cursor;  // opaque; empty for the first page
};
template <class T>
struct PageOf {
    std::vector<T> items;
    std::string next_cursor;  // empty at the end
};

struct EnrollmentFilter {
    std::optional<EnrollmentState> state;
    std::string topic, serial_number;
    std::optional<SysTime> seen_since;
};
struct CommandFilter {
    std::optional<TargetStatus> status;
    std::string request_type, enrollment_id;
    std::optional<SysTime> since;
};

// A due re-push: an enrollment with undelivered commands whose backoff ran out.
struct RepushDue {
    std::string enrollment_id;
    int attempts = 0;
};

// While a ReadScope lives, the reads its thread makes through the store that
// made it share one read transaction: one snapshot, one lock round trip,
// instead of one each. For request paths that only read (the Idle fast
// path): writes made meanwhile are not seen inside the scope.
class ReadScope {
  public:
    virtual ~ReadScope() = default;
};

struct PushOutcomeRecord {
    PushAttempt attempt;
    SysTime repush_at{};
    int attempts = 0;
    // For a 200: when the push was handed to APNs (to the millisecond), and
    // until when it counts as pending (nullopt: it does not mark a pending
    // push; PushService sets it no later than repush_at).
    SysTimeMs sent_at{};
    std::optional<SysTime> pending_until;
};

class Store {
  public:
    virtual ~Store() = default;

    // Health: a cheap round-trip to the database; and while writes fail with
    // a storage error (disk full, I/O error, locked), kUnavailable: after a
    // write failed so, ping probes with a small write until one succeeds.
    virtual Status ping() = 0;
    // A read scope for the calling thread (see ReadScope); null where the
    // implementation has nothing to share.
    virtual std::unique_ptr<ReadScope> read_scope() { return nullptr; }

    // ---- Enrollments -----------------------------------------------------
    // Authenticate starts the enrollment afresh: state pending, push token
    // cleared, every command still queued/sent/notnow for the id canceled;
    // when cert_sha256 is given, binds it in the same transaction as
    // bind_cert does (superseding the device's old binding; kConflict, and
    // nothing changed, where bind_cert refuses). A stored unlock token is
    // kept until a TokenUpdate replaces it (or a binding supersedes the old
    // identity); a retired enrollment stays retired.
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
    virtual Status apply_token_update(const TokenUpdateInput& in, SysTime now) = 0;
    // Unenrolled; pending commands canceled.
    virtual Status apply_checkout(const std::string& id, SysTime now) = 0;
    virtual Result<Enrollment> enrollment(const std::string& id) = 0;
    // Ordered by id; paging as for list_commands.
    virtual Result<PageOf<Enrollment>> list_enrollments(const EnrollmentFilter& f,
                                                        const Page& page) = 0;
    // Which of ids have an enrollment row.
    virtual Result<std::vector<std::string>> existing_enrollments(
        const std::vector<std::string>& ids) = 0;
    // How many user-channel enrollments (user_id not empty) device_id has.
    virtual Result<int64_t> user_channel_count(const std::string& device_id) = 0;
    virtual Result<std::optional<std::string>> unlock_token(const std::string& id) = 0;
    virtual Status set_bootstrap_token(const std::string& id, const std::string& token) = 0;
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

    // ---- Identity certificate bindings (hex SHA-256 of the DER) ------------
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
    // device. When one was superseded, the bootstrap, unlock and push tokens
    // of every enrollment of the device (device and user channels) are
    // cleared and its re-push schedule dropped: they belonged to the old
    // identity. Ok and nothing changed when the certificate is already the
    // device's active binding; a pending or approved row becomes active
    // (whether a re-binding needed approval is the caller's policy).
    // kConflict, and nothing changed, when the certificate has a row for
    // another device, or a superseded or revoked row for this one. Records a
    // timeline event.
    virtual Status bind_cert(const std::string& cert_sha256, const std::string& device_id,
                             std::optional<SysTime> not_after, SysTime now) = 0;
    // Records a pending re-binding of the certificate to the device (a
    // timeline event the first time). Ok when it is already pending or
    // approved for this device; kConflict, and nothing changed, when the
    // certificate has a row in any other state or for another device. A
    // device keeps at most 16 pending rows: the oldest goes first.
    virtual Status request_binding(const std::string& cert_sha256, const std::string& device_id,
                                   std::optional<SysTime> not_after, SysTime now) = 0;
    // Pending → approved (a timeline event). kNotFound when the device has no
    // row for the certificate; kConflict when the row is not pending (ok when
    // already approved).
    virtual Status approve_binding(const std::string& device_id, const std::string& cert_sha256,
                                   SysTime now) = 0;
    // Any state → revoked (superseded_at = now unless already set, a timeline
    // event). kNotFound when the device has no row for the certificate;
    // revoking a revoked row is ok and changes nothing.
    virtual Status revoke_binding(const std::string& device_id, const std::string& cert_sha256,
                                  SysTime now) = 0;
    // Records that a superseded or revoked certificate was presented, at most
    // once an hour per certificate: true (alarm_at = now, a timeline event
    // on its device) when the last one is older than an hour or absent,
    // false and nothing written otherwise. kNotFound when the certificate has
    // no row.
    virtual Result<bool> note_superseded_use(const std::string& cert_sha256, SysTime now) = 0;
    // Records that the certificate was presented at `now` (last_used). Like
    // touch_last_seen: may be batched, durable within a second, not per call.
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

    // ---- Commands and the queue --------------------------------------------
    // One transaction for all targets; unknown ids are reported, not queued
    // (duplicates count once). When no target is known nothing is written,
    // so the uuid stays free. kConflict when the uuid already exists.
    // Pending push: in the same transaction, each queued target that is
    // enrolled with a valid token and has a pending push (pending_push_until
    // > now) is reported in pending_push with that push's apns-id, and its
    // re-push is made due no later than pending_push_until (attempts 1) so
    // the command never waits on a push that did not wake the device.
    // Because the device's request clears the mark in the transaction that
    // reads its queue (next_command, apply_report), either that transaction
    // came first (no mark: the caller pushes) or it comes after this commit
    // (it sees the command).
    virtual Result<EnqueueResult> enqueue(const NewCommand& cmd,
                                          const std::vector<std::string>& targets, SysTime now) = 0;
    // The oldest eligible command for the enrollment, marked sent, or nullopt.
    // Eligible: queued and sent; and notnow too when include_notnow (an Idle).
    // Targets whose command expired are marked expired on the way. Clears
    // the enrollment's pending push (the device is here).
    virtual Result<std::optional<DeliveredCommand>> next_command(const std::string& id,
                                                                 bool include_notnow,
                                                                 SysTime now) = 0;
    // Read-only: does the enrollment have anything an Idle would receive?
    virtual Result<bool> has_pending(const std::string& id, SysTime now) = 0;
    // Records a report for (id, uuid): final statuses set the target's status
    // and store `report` verbatim, once (a repeated report returns ok and
    // changes nothing); NotNow sets notnow and stores `report` as the
    // result, which the final report replaces. kNotFound when the enrollment has
    // no such target. Then, in the same transaction, picks the next command
    // like next_command(id, include_notnow=false). A final report for a
    // canceled or expired target is still recorded (status and result): the
    // device did run it. A NotNow for a final target changes nothing.
    // kInvalid for a status a device cannot report. Clears the pending push
    // as next_command does (unless kNotFound/kInvalid: nothing changes).
    virtual Result<std::optional<DeliveredCommand>> apply_report(const std::string& id,
                                                                 const std::string& uuid,
                                                                 TargetStatus status,
                                                                 const std::string& report,
                                                                 SysTime now) = 0;
    virtual Result<CommandInfo> command(const std::string& uuid) = 0;
    // Cancels targets in queued/sent/notnow; returns the ids canceled.
    virtual Result<std::vector<std::string>> cancel_command(const std::string& uuid,
                                                            SysTime now) = 0;
    // Newest first. With f.enrollment_id, each item's targets hold only that
    // enrollment's. Page limits are clamped to 1..1000; a cursor not from
    // this store is kInvalid.
    virtual Result<PageOf<CommandInfo>> list_commands(const CommandFilter& f, const Page& page) = 0;
    virtual Result<int64_t> queue_depth() = 0;

    // ---- Push certificates --------------------------------------------------
    // Stores cert as the active one for its topic; the previous active one
    // (if any) gets replaced_at and stays in history. Returns the new id.
    virtual Result<int64_t> put_push_cert(const PushCert& cert, SysTime now) = 0;
    virtual Result<std::vector<PushCert>> active_push_certs() = 0;
    virtual Result<std::optional<PushCert>> active_push_cert(const std::string& topic) = 0;
    virtual Result<std::vector<PushCert>> push_cert_history() = 0;
    virtual Status mark_push_cert_unusable(int64_t id, const std::string& reason) = 0;

    // ---- Pushes ---------------------------------------------------------
    virtual Status record_push_attempt(const PushAttempt& a) = 0;
    virtual Status mark_token_invalid(const std::string& id, SysTime now) = 0;
    // Re-push schedule: the next time an enrollment with undelivered commands
    // should be pushed again (cleared when its queue empties, on CheckOut,
    // retirement and mark_token_invalid). schedule_repush sets it only while
    // the enrollment has queued/sent/notnow targets, and clears it otherwise.
    // due_repushes: ordered by due time.
    virtual Status schedule_repush(const std::string& id, SysTime at, int attempts) = 0;
    virtual Result<std::vector<RepushDue>> due_repushes(SysTime now, size_t limit) = 0;
    // Many APNs answers at once: each attempt recorded and its enrollment's
    // schedule set as schedule_repush does (an enrollment that no longer
    // exists is skipped). The default does it one call at a time; SqliteStore
    // does the whole batch in one transaction, so a fleet-wide wake-up costs
    // a few commits instead of two per device. A record with pending_until
    // (a 200) marks the push pending — pending_push_apns_id/_until — unless
    // the enrollment was seen after sent_at: a device that came between the
    // push and its recorded answer has woken. SqliteStore tells that to the
    // millisecond while the touch is still in memory, and by whole seconds
    // (seen in a later second) once it was flushed or came from another node.
    // The default implementation keeps no pending mark.
    virtual Status record_push_outcomes(const std::vector<PushOutcomeRecord>& batch);

    // ---- Enrollment tokens ----------------------------------------------
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
