#include "tests/support/faulty_store.h"

namespace courier::db {

void FaultyStore::fail_next_writes(int n, StoreFault fault) {
    std::lock_guard lk(mu_);
    remaining_ = n;
    fault_ = fault;
}

void FaultyStore::set_unreachable(bool unreachable) {
    std::lock_guard lk(mu_);
    unreachable_ = unreachable;
}

Status FaultyStore::read_fault() const {
    std::lock_guard lk(mu_);
    if (unreachable_) return unavailable("database unreachable");
    return Status::ok();
}

Status FaultyStore::ping() {
    if (Status f = read_fault(); !f.is_ok()) return f;
    bool probe = false;
    {
        std::lock_guard lk(mu_);
        probe = write_failed_;
    }
    if (probe) {
        if (Status f = take_fault(); !f.is_ok()) return unavailable("writes fail: " + f.message());
        note_write_ok();
    }
    return inner_->ping();
}

void FaultyStore::note_write_ok() {
    std::lock_guard lk(mu_);
    write_failed_ = false;
}

int64_t FaultyStore::injected_failures() const {
    std::lock_guard lk(mu_);
    return injected_;
}

Status FaultyStore::take_fault() {
    std::lock_guard lk(mu_);
    if (unreachable_) return unavailable("database unreachable");
    if (remaining_ <= 0) return Status::ok();
    --remaining_;
    ++injected_;
    write_failed_ = true;
    if (fault_ == StoreFault::kDiskFull) return unavailable("disk full");
    return unavailable("database is locked");
}

// Each write forwards only when no fault is pending.
#define COURIER_FAULTY_WRITE(call)                 \
    do {                                           \
        if (Status f = take_fault(); !f) return f; \
        auto r = inner_->call;                     \
        if (r.is_ok()) note_write_ok();            \
        return r;                                  \
    } while (0)

Status FaultyStore::apply_authenticate(const AuthenticateInput& in, SysTime now) {
    COURIER_FAULTY_WRITE(apply_authenticate(in, now));
}
Status FaultyStore::apply_token_update(const TokenUpdateInput& in, SysTime now) {
    COURIER_FAULTY_WRITE(apply_token_update(in, now));
}
Status FaultyStore::apply_checkout(const std::string& id, SysTime now) {
    COURIER_FAULTY_WRITE(apply_checkout(id, now));
}
Status FaultyStore::set_bootstrap_token(const std::string& id, const std::string& token,
                                        const std::string& cert_sha256) {
    COURIER_FAULTY_WRITE(set_bootstrap_token(id, token, cert_sha256));
}
Status FaultyStore::set_retired(const std::string& id, bool retired, SysTime now) {
    COURIER_FAULTY_WRITE(set_retired(id, retired, now));
}
Status FaultyStore::append_timeline(const std::string& id, const TimelineEvent& e) {
    COURIER_FAULTY_WRITE(append_timeline(id, e));
}
Status FaultyStore::bind_cert(const std::string& cert_sha256, const std::string& device_id,
                              std::optional<SysTime> not_after, SysTime now) {
    COURIER_FAULTY_WRITE(bind_cert(cert_sha256, device_id, not_after, now));
}
Status FaultyStore::request_binding(const std::string& cert_sha256, const std::string& device_id,
                                    std::optional<SysTime> not_after, SysTime now) {
    COURIER_FAULTY_WRITE(request_binding(cert_sha256, device_id, not_after, now));
}
Status FaultyStore::approve_binding(const std::string& device_id, const std::string& cert_sha256,
                                    SysTime now) {
    COURIER_FAULTY_WRITE(approve_binding(device_id, cert_sha256, now));
}
Status FaultyStore::revoke_binding(const std::string& device_id, const std::string& cert_sha256,
                                   SysTime now) {
    COURIER_FAULTY_WRITE(revoke_binding(device_id, cert_sha256, now));
}
Result<bool> FaultyStore::note_superseded_use(const std::string& cert_sha256, SysTime now) {
    COURIER_FAULTY_WRITE(note_superseded_use(cert_sha256, now));
}
Status FaultyStore::record_issued_identity(const std::string& cert_sha256,
                                           const std::string& token_sha256, SysTime now) {
    COURIER_FAULTY_WRITE(record_issued_identity(cert_sha256, token_sha256, now));
}
Result<EnqueueResult> FaultyStore::enqueue(const NewCommand& cmd,
                                           const std::vector<std::string>& targets, SysTime now) {
    COURIER_FAULTY_WRITE(enqueue(cmd, targets, now));
}
Result<std::optional<DeliveredCommand>> FaultyStore::next_command(const std::string& id,
                                                                  bool include_notnow,
                                                                  SysTime now) {
    COURIER_FAULTY_WRITE(next_command(id, include_notnow, now));
}
Result<std::optional<DeliveredCommand>> FaultyStore::apply_report(const std::string& id,
                                                                  const std::string& uuid,
                                                                  TargetStatus status,
                                                                  const std::string& report,
                                                                  SysTime now) {
    COURIER_FAULTY_WRITE(apply_report(id, uuid, status, report, now));
}
Result<std::vector<std::string>> FaultyStore::cancel_command(const std::string& uuid, SysTime now) {
    COURIER_FAULTY_WRITE(cancel_command(uuid, now));
}
Result<int64_t> FaultyStore::put_push_cert(const PushCert& cert, SysTime now) {
    COURIER_FAULTY_WRITE(put_push_cert(cert, now));
}
Status FaultyStore::mark_push_cert_unusable(int64_t id, const std::string& reason) {
    COURIER_FAULTY_WRITE(mark_push_cert_unusable(id, reason));
}
Status FaultyStore::record_push_attempt(const PushAttempt& a) {
    COURIER_FAULTY_WRITE(record_push_attempt(a));
}
Status FaultyStore::mark_token_invalid(const std::string& id, SysTime now) {
    COURIER_FAULTY_WRITE(mark_token_invalid(id, now));
}
Status FaultyStore::schedule_repush(const std::string& id, SysTime at, int attempts) {
    COURIER_FAULTY_WRITE(schedule_repush(id, at, attempts));
}
Status FaultyStore::arm_pushes(const std::vector<std::string>& ids, SysTime now) {
    COURIER_FAULTY_WRITE(arm_pushes(ids, now));
}
Status FaultyStore::record_push_outcomes(const std::vector<PushOutcomeRecord>& batch) {
    COURIER_FAULTY_WRITE(record_push_outcomes(batch));
}
Status FaultyStore::put_enrollment_token(const EnrollmentToken& t) {
    COURIER_FAULTY_WRITE(put_enrollment_token(t));
}
Status FaultyStore::delete_enrollment_token(const std::string& id) {
    COURIER_FAULTY_WRITE(delete_enrollment_token(id));
}
Status FaultyStore::consume_enrollment_token(const std::string& token_sha256, SysTime now) {
    COURIER_FAULTY_WRITE(consume_enrollment_token(token_sha256, now));
}

Status FaultyStore::release_enrollment_token(const std::string& token_sha256) {
    COURIER_FAULTY_WRITE(release_enrollment_token(token_sha256));
}

Status FaultyStore::put_session(const ConsoleSession& s) {
    COURIER_FAULTY_WRITE(put_session(s));
}

Status FaultyStore::delete_session(const std::string& id_sha256) {
    COURIER_FAULTY_WRITE(delete_session(id_sha256));
}

Result<int64_t> FaultyStore::put_pending_push_key(const std::string& key_pem, SysTime now) {
    COURIER_FAULTY_WRITE(put_pending_push_key(key_pem, now));
}

Status FaultyStore::delete_pending_push_key(int64_t id) {
    COURIER_FAULTY_WRITE(delete_pending_push_key(id));
}

Status FaultyStore::put_webhook(const Webhook& w, SysTime now) {
    COURIER_FAULTY_WRITE(put_webhook(w, now));
}
Status FaultyStore::delete_webhook(const std::string& id) {
    COURIER_FAULTY_WRITE(delete_webhook(id));
}
Status FaultyStore::append_events(const std::vector<OutboxEvent>& events) {
    COURIER_FAULTY_WRITE(append_events(events));
}
Result<std::vector<ClaimedDelivery>> FaultyStore::claim_deliveries(SysTime now,
                                                                   std::chrono::seconds lease,
                                                                   size_t limit) {
    COURIER_FAULTY_WRITE(claim_deliveries(now, lease, limit));
}
Status FaultyStore::finish_delivery(const ClaimedDelivery& claim, const DeliveryOutcome& outcome,
                                    SysTime now) {
    COURIER_FAULTY_WRITE(finish_delivery(claim, outcome, now));
}
Status FaultyStore::finish_deliveries(
    const std::vector<std::pair<ClaimedDelivery, DeliveryOutcome>>& batch, SysTime now) {
    COURIER_FAULTY_WRITE(finish_deliveries(batch, now));
}
Status FaultyStore::retry_delivery(const std::string& webhook_id, const std::string& event_id,
                                   SysTime now) {
    COURIER_FAULTY_WRITE(retry_delivery(webhook_id, event_id, now));
}
Result<int64_t> FaultyStore::prune_deliveries(SysTime before) {
    COURIER_FAULTY_WRITE(prune_deliveries(before));
}

#undef COURIER_FAULTY_WRITE

}  // namespace courier::db
