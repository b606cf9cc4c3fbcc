// CommandQueue: commands, their targets (one per enrollment) and the queue a
// device's requests read.
//
// Follows the storage contract in db/store.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "db/page.h"

namespace courier::db {

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
    // The caller pushes the targets that have no pending push
    // (apns::PushService::enqueue_pushes): enqueue arms those pushes in its
    // transaction (PushStore::arm_pushes). False for a queue-only enqueue
    // (`nopush`, `"push": false`): nothing is armed.
    bool will_push = true;
};

struct EnqueueResult {
    std::vector<std::string> queued;   // targets the command was queued for
    std::vector<std::string> unknown;  // ids with no enrollment (nothing queued for them)
    // Queued targets that have a pending push (see CommandQueue::enqueue):
    // id → the pending push's apns-id. They need no push of their own.
    std::map<std::string, std::string> pending_push;

    // The queued targets that need a push of their own (queued minus
    // pending_push), in queued's order.
    std::vector<std::string> to_push() const {
        std::vector<std::string> out;
        for (const auto& id : queued)
            if (!pending_push.count(id)) out.push_back(id);
        return out;
    }
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

struct CommandFilter {
    std::optional<TargetStatus> status;
    std::string request_type, enrollment_id;
    std::optional<SysTime> since;
};

class CommandQueue {
  public:
    virtual ~CommandQueue() = default;

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
    // (it sees the command). With cmd.will_push, the targets without a
    // pending push are armed (PushStore::arm_pushes) in the same transaction.
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
};

}  // namespace courier::db
