// FaultyStore: a Store decorator for reliability tests. It forwards every call
// to the wrapped store, except that it can be told to fail the next N write
// calls the way a sick database does, or every call (an unreachable
// database), without calling the wrapped store. Test code: it lives in
// tests/support and is linked only into the tests (App::wrap_store puts it
// around a server's store).
//
// ping() models SqliteStore::ping: a read round trip (fails while the
// database is unreachable); and only after a write failed with an injected
// fault (and no write has succeeded since), a write probe, which consumes a
// pending fault like any write.
#pragma once

#include <memory>
#include <mutex>

#include "db/store.h"

namespace courier::db {

enum class StoreFault {
    kLocked,    // kUnavailable "database is locked"
    kDiskFull,  // kUnavailable "disk full"
};

class FaultyStore final : public Store {
  public:
    explicit FaultyStore(std::unique_ptr<Store> inner) : inner_(std::move(inner)) {}

    // The next n write calls fail with `fault` and change nothing. Thread-safe.
    void fail_next_writes(int n, StoreFault fault);
    // While set, every call, reads included, fails with kUnavailable
    // "database unreachable" (not counted in injected_failures). Thread-safe.
    void set_unreachable(bool unreachable);
    // Write calls failed so far.
    int64_t injected_failures() const;
    Store& inner() { return *inner_; }

    Status ping() override;
    Status apply_authenticate(const AuthenticateInput& in, SysTime now) override;
    Status apply_token_update(const TokenUpdateInput& in, SysTime now) override;
    Status apply_checkout(const std::string& id, SysTime now) override;
    Result<Enrollment> enrollment(const std::string& id) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->enrollment(id);
    }
    Result<Enrollment> enrollment_state(const std::string& id) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->enrollment_state(id);
    }
    Result<PageOf<Enrollment>> list_enrollments(const EnrollmentFilter& f,
                                                const Page& page) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->list_enrollments(f, page);
    }
    Result<int64_t> user_channel_count(const std::string& device_id) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->user_channel_count(device_id);
    }
    Result<std::vector<std::string>> existing_enrollments(
        const std::vector<std::string>& ids) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->existing_enrollments(ids);
    }
    Result<std::optional<std::string>> unlock_token(const std::string& id) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->unlock_token(id);
    }
    Status set_bootstrap_token(const std::string& id, const std::string& token,
                               const std::string& cert_sha256) override;
    Result<std::optional<std::string>> bootstrap_token(const std::string& id) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->bootstrap_token(id);
    }
    Status set_retired(const std::string& id, bool retired, SysTime now) override;
    void touch_last_seen(const std::vector<std::string>& ids, SysTimeMs now) override {
        inner_->touch_last_seen(ids, now);
    }
    Status append_timeline(const std::string& id, const TimelineEvent& e) override;
    Result<std::vector<TimelineEvent>> timeline(const std::string& id, size_t limit) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->timeline(id, limit);
    }
    Result<std::optional<Binding>> binding(const std::string& cert_sha256) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->binding(cert_sha256);
    }
    Result<std::vector<Binding>> bindings(const std::string& device_id) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->bindings(device_id);
    }
    Result<std::optional<Binding>> active_binding(const std::string& device_id) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->active_binding(device_id);
    }
    Status bind_cert(const std::string& cert_sha256, const std::string& device_id,
                     std::optional<SysTime> not_after, SysTime now) override;
    Status request_binding(const std::string& cert_sha256, const std::string& device_id,
                           std::optional<SysTime> not_after, SysTime now) override;
    Status approve_binding(const std::string& device_id, const std::string& cert_sha256,
                           SysTime now) override;
    Status revoke_binding(const std::string& device_id, const std::string& cert_sha256,
                          SysTime now) override;
    Result<bool> note_superseded_use(const std::string& cert_sha256, SysTime now) override;
    void touch_binding(const std::string& cert_sha256, SysTime now) override {
        inner_->touch_binding(cert_sha256, now);
    }
    Status record_issued_identity(const std::string& cert_sha256, const std::string& token_sha256,
                                  SysTime now) override;
    Result<std::optional<std::string>> issued_with_token(const std::string& cert_sha256) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->issued_with_token(cert_sha256);
    }
    Result<EnqueueResult> enqueue(const NewCommand& cmd, const std::vector<std::string>& targets,
                                  SysTime now) override;
    Result<std::optional<DeliveredCommand>> next_command(const std::string& id, bool include_notnow,
                                                         SysTime now) override;
    Result<bool> has_pending(const std::string& id, SysTime now) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->has_pending(id, now);
    }
    Result<std::optional<DeliveredCommand>> apply_report(const std::string& id,
                                                         const std::string& uuid,
                                                         TargetStatus status,
                                                         const std::string& report,
                                                         SysTime now) override;
    Result<CommandInfo> command(const std::string& uuid) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->command(uuid);
    }
    Result<std::vector<std::string>> cancel_command(const std::string& uuid, SysTime now) override;
    Result<PageOf<CommandInfo>> list_commands(const CommandFilter& f, const Page& page) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->list_commands(f, page);
    }
    Result<int64_t> queue_depth() override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->queue_depth();
    }
    Result<int64_t> put_push_cert(const PushCert& cert, SysTime now) override;
    Result<std::vector<PushCert>> active_push_certs() override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->active_push_certs();
    }
    Result<std::optional<PushCert>> active_push_cert(const std::string& topic) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->active_push_cert(topic);
    }
    Result<std::vector<PushCert>> push_cert_history() override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->push_cert_history();
    }
    Status mark_push_cert_unusable(int64_t id, const std::string& reason) override;
    Status record_push_attempt(const PushAttempt& a) override;
    Status mark_token_invalid(const std::string& id, SysTime now) override;
    Status schedule_repush(const std::string& id, SysTime at, int attempts) override;
    Status arm_pushes(const std::vector<std::string>& ids, SysTime now) override;
    Status record_push_outcomes(const std::vector<PushOutcomeRecord>& batch) override;
    Result<std::vector<RepushDue>> due_repushes(SysTime now, size_t limit) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->due_repushes(now, limit);
    }
    Result<std::vector<RepushDue>> claim_due_repushes(SysTime now, size_t limit) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->claim_due_repushes(now, limit);
    }
    Status put_enrollment_token(const EnrollmentToken& t) override;
    Result<std::vector<EnrollmentToken>> enrollment_tokens() override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->enrollment_tokens();
    }
    Status delete_enrollment_token(const std::string& id) override;
    Status consume_enrollment_token(const std::string& token_sha256, SysTime now) override;
    Status release_enrollment_token(const std::string& token_sha256) override;
    Status put_session(const ConsoleSession& s) override;
    Result<std::optional<ConsoleSession>> session(const std::string& id_sha256,
                                                  SysTime now) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->session(id_sha256, now);
    }
    Status delete_session(const std::string& id_sha256) override;
    Result<Overview> overview(SysTime since) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->overview(since);
    }
    Result<int64_t> put_pending_push_key(const std::string& key_pem, SysTime now) override;
    Result<std::vector<PendingPushKey>> pending_push_keys() override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->pending_push_keys();
    }
    Status delete_pending_push_key(int64_t id) override;

    Result<std::vector<Webhook>> webhooks() override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->webhooks();
    }
    Result<Webhook> webhook(const std::string& id) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->webhook(id);
    }
    Status put_webhook(const Webhook& w, SysTime now) override;
    Status delete_webhook(const std::string& id) override;
    // Attaching writes nothing: the attached events ride on the next write,
    // which a fault refuses whole.
    std::unique_ptr<EventAttachment> attach_events(std::vector<OutboxEvent> events) override {
        return inner_->attach_events(std::move(events));
    }
    Status append_events(const std::vector<OutboxEvent>& events) override;
    Result<std::vector<ClaimedDelivery>> claim_deliveries(SysTime now, std::chrono::seconds lease,
                                                          size_t limit) override;
    Status finish_delivery(const ClaimedDelivery& claim, const DeliveryOutcome& outcome,
                           SysTime now) override;
    Status finish_deliveries(const std::vector<std::pair<ClaimedDelivery, DeliveryOutcome>>& batch,
                             SysTime now) override;
    Result<PageOf<Delivery>> list_deliveries(const std::string& webhook_id,
                                             std::optional<DeliveryStatus> status,
                                             const Page& page) override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->list_deliveries(webhook_id, status, page);
    }
    Status retry_delivery(const std::string& webhook_id, const std::string& event_id,
                          SysTime now) override;
    Result<std::map<std::string, int64_t>> webhook_backlog() override {
        if (Status f = read_fault(); !f.is_ok()) return f;
        return inner_->webhook_backlog();
    }
    Result<int64_t> prune_deliveries(SysTime before) override;

  private:
    // The injected failure for this write call, or ok to forward it.
    Status take_fault();
    // kUnavailable while unreachable, else ok.
    Status read_fault() const;
    // A forwarded write succeeded: writes are healthy again.
    void note_write_ok();

    std::unique_ptr<Store> inner_;
    mutable std::mutex mu_;
    int remaining_ = 0;
    StoreFault fault_ = StoreFault::kLocked;
    int64_t injected_ = 0;
    bool unreachable_ = false;
    bool write_failed_ = false;  // an injected write fault since the last good write
};

}  // namespace courier::db
