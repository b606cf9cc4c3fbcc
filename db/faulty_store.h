// FaultyStore: a Store decorator for reliability tests. It forwards every call
// to the wrapped store, except that it can be told to fail the next N write
// calls the way a sick database does, without calling the wrapped store.
#pragma once

#include <memory>
#include <mutex>

#include "db/store.h"

namespace courier::db {

enum class StoreFault {
    kLocked,    // kUnavailable "database is locked"
    kDiskFull,  // kInternal "disk full"
};

class FaultyStore final : public Store {
  public:
    explicit FaultyStore(std::unique_ptr<Store> inner) : inner_(std::move(inner)) {}

    // The next n write calls fail with `fault` and change nothing. Thread-safe.
    void fail_next_writes(int n, StoreFault fault);
    // Write calls failed so far.
    int64_t injected_failures() const;
    Store& inner() { return *inner_; }

    Status ping() override { return inner_->ping(); }
    Status apply_authenticate(const AuthenticateInput& in, SysTime now) override;
    Status apply_token_update(const TokenUpdateInput& in, SysTime now) override;
    Status apply_checkout(const std::string& id, SysTime now) override;
    Result<Enrollment> enrollment(const std::string& id) override { return inner_->enrollment(id); }
    Result<PageOf<Enrollment>> list_enrollments(const EnrollmentFilter& f,
                                                const Page& page) override {
        return inner_->list_enrollments(f, page);
    }
    Result<std::vector<std::string>> existing_enrollments(
        const std::vector<std::string>& ids) override {
        return inner_->existing_enrollments(ids);
    }
    Result<std::optional<std::string>> unlock_token(const std::string& id) override {
        return inner_->unlock_token(id);
    }
    Status set_bootstrap_token(const std::string& id, const std::string& token) override;
    Result<std::optional<std::string>> bootstrap_token(const std::string& id) override {
        return inner_->bootstrap_token(id);
    }
    Status set_retired(const std::string& id, bool retired, SysTime now) override;
    void touch_last_seen(const std::vector<std::string>& ids, SysTime now) override {
        inner_->touch_last_seen(ids, now);
    }
    Status append_timeline(const std::string& id, const TimelineEvent& e) override;
    Result<std::vector<TimelineEvent>> timeline(const std::string& id, size_t limit) override {
        return inner_->timeline(id, limit);
    }
    Result<std::optional<std::string>> cert_binding(const std::string& cert_sha256) override {
        return inner_->cert_binding(cert_sha256);
    }
    Status bind_cert(const std::string& cert_sha256, const std::string& device_id,
                     SysTime now) override;
    Result<bool> has_binding(const std::string& device_id) override {
        return inner_->has_binding(device_id);
    }
    Result<EnqueueResult> enqueue(const NewCommand& cmd, const std::vector<std::string>& targets,
                                  SysTime now) override;
    Result<std::optional<DeliveredCommand>> next_command(const std::string& id, bool include_notnow,
                                                         SysTime now) override;
    Result<bool> has_pending(const std::string& id, SysTime now) override {
        return inner_->has_pending(id, now);
    }
    Result<std::optional<DeliveredCommand>> apply_report(const std::string& id,
                                                         const std::string& uuid,
                                                         TargetStatus status,
                                                         const std::string& report,
                                                         SysTime now) override;
    Result<CommandInfo> command(const std::string& uuid) override { return inner_->command(uuid); }
    Result<std::vector<std::string>> cancel_command(const std::string& uuid, SysTime now) override;
    Result<PageOf<CommandInfo>> list_commands(const CommandFilter& f, const Page& page) override {
        return inner_->list_commands(f, page);
    }
    Result<int64_t> queue_depth() override { return inner_->queue_depth(); }
    Result<int64_t> put_push_cert(const PushCert& cert, SysTime now) override;
    Result<std::vector<PushCert>> active_push_certs() override {
        return inner_->active_push_certs();
    }
    Result<std::optional<PushCert>> active_push_cert(const std::string& topic) override {
        return inner_->active_push_cert(topic);
    }
    Result<std::vector<PushCert>> push_cert_history() override {
        return inner_->push_cert_history();
    }
    Status mark_push_cert_unusable(int64_t id, const std::string& reason) override;
    Status record_push_attempt(const PushAttempt& a) override;
    Status mark_token_invalid(const std::string& id, SysTime now) override;
    Status schedule_repush(const std::string& id, SysTime at, int attempts) override;
    Status record_push_outcomes(const std::vector<PushOutcomeRecord>& batch) override;
    Result<std::vector<RepushDue>> due_repushes(SysTime now, size_t limit) override {
        return inner_->due_repushes(now, limit);
    }
    Status put_enrollment_token(const EnrollmentToken& t) override;
    Result<std::vector<EnrollmentToken>> enrollment_tokens() override {
        return inner_->enrollment_tokens();
    }
    Status delete_enrollment_token(const std::string& id) override;
    Status consume_enrollment_token(const std::string& token_sha256, SysTime now) override;

  private:
    // The injected failure for this write call, or ok to forward it.
    Status take_fault();

    std::unique_ptr<Store> inner_;
    mutable std::mutex mu_;
    int remaining_ = 0;
    StoreFault fault_ = StoreFault::kLocked;
    int64_t injected_ = 0;
};

}  // namespace courier::db
