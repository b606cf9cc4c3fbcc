#include "apns/push_service.h"

#include <spdlog/spdlog.h>

#include <random>

#include "common/encoding.h"

namespace courier::apns {

std::chrono::seconds repush_interval(int attempts) {
    using namespace std::chrono_literals;
    static constexpr std::chrono::seconds kSteps[] = {60s, 300s, 1800s, 7200s};
    if (attempts < 1) attempts = 1;
    if (attempts <= 4) return kSteps[attempts - 1];
    return 21600s;
}

PushService::PushService(const Stores& stores, Pusher& pusher, const Clock& clock, Metrics& metrics,
                         PushServiceOptions opts)
    : pushes_(stores.pushes),
      push_certs_(stores.push_certs),
      enrollments_(stores.enrollments),
      queue_(stores.queue),
      pusher_(pusher),
      clock_(clock),
      metrics_(metrics),
      opts_(opts) {
    metrics_.help("courier_pushes_total", "counter", "APNs pushes by outcome");
    metrics_.help("courier_pushes_coalesced_total", "counter",
                  "enqueues answered with a pending push instead of a new one");
}

PushService::~PushService() {
    stop();
}

void PushService::start() {
    std::lock_guard lock(task_mu_);
    if (!workers_.empty()) return;
    stopping_ = false;
    for (int i = 0; i < std::max(1, opts_.result_threads); ++i)
        workers_.emplace_back([this] { worker_loop(); });
    if (opts_.background_sweep) sweeper_ = std::thread([this] { sweep_loop(); });
}

void PushService::stop() {
    {
        std::lock_guard lock(task_mu_);
        if (stopping_ && workers_.empty()) return;
        stopping_ = true;
    }
    task_cv_.notify_all();
    sweep_cv_.notify_all();
    if (sweeper_.joinable()) sweeper_.join();
    for (auto& t : workers_) t.join();
    workers_.clear();
    // Whatever is still in flight will never be answered by us now.
    std::unordered_map<std::string, Inflight> left;
    {
        std::lock_guard lock(mu_);
        left.swap(inflight_);
    }
    for (auto& [id, f] : left)
        for (auto& w : f.waiters) w(PushOutcome{false, "", "shutting down"});
}

void PushService::post_answer(Answer a) {
    {
        std::lock_guard lock(task_mu_);
        if (!stopping_ && !workers_.empty()) {
            answers_.push_back(std::move(a));
            task_cv_.notify_one();
            return;
        }
    }
    std::vector<Answer> one;  // not started (tests driving it synchronously) or stopping
    one.push_back(std::move(a));
    handle_answers(one);
}

void PushService::worker_loop() {
    std::vector<Answer> batch;
    for (;;) {
        batch.clear();
        {
            std::unique_lock lock(task_mu_);
            task_cv_.wait(lock, [&] { return stopping_ || !answers_.empty(); });
            if (answers_.empty()) return;
            while (!answers_.empty() && batch.size() < opts_.answer_batch) {
                batch.push_back(std::move(answers_.front()));
                answers_.pop_front();
            }
        }
        handle_answers(batch);
    }
}

void PushService::sweep_loop() {
    std::unique_lock lock(task_mu_);
    while (!stopping_) {
        sweep_cv_.wait_for(lock, opts_.sweep_interval, [&] { return stopping_; });
        if (stopping_) break;
        lock.unlock();
        sweep_once();
        lock.lock();
    }
}

size_t PushService::sweep_once() {
    auto due = pushes_.claim_due_repushes(clock_.now(), opts_.sweep_batch);
    if (!due.is_ok()) {
        spdlog::warn("re-push sweep: {}", due.status().to_string());
        return 0;
    }
    std::vector<const db::RepushDue*> to_push;
    for (const auto& d : *due) {
        auto pending = queue_.has_pending(d.enrollment_id, clock_.now());
        if (pending.is_ok() && *pending) to_push.push_back(&d);
    }
    std::vector<std::string> ids;
    ids.reserve(to_push.size());
    for (const auto* d : to_push) ids.push_back(d->enrollment_id);
    arm(ids);
    for (const auto* d : to_push)
        push_impl(
            d->enrollment_id, [](const PushOutcome&) {}, std::nullopt, d->attempts + 1);
    return to_push.size();
}

size_t PushService::in_flight() {
    std::lock_guard lock(mu_);
    return inflight_.size();
}

SysTime PushService::next_repush(std::chrono::seconds base) const {
    static thread_local std::mt19937 rng{std::random_device{}()};
    std::uniform_int_distribution<int64_t> jitter(-base.count() / 10, base.count() / 10);
    return clock_.now() + base + std::chrono::seconds(jitter(rng));
}

void PushService::schedule_next(const std::string& id, int attempts, std::chrono::seconds base) {
    if (auto s = pushes_.schedule_repush(id, next_repush(base), attempts); !s.is_ok())
        spdlog::warn("re-push schedule for {}: {}", id, s.to_string());
}

void PushService::reload_certificates() {
    std::lock_guard lock(mu_);
    creds_.clear();
}

Result<std::shared_ptr<const Credentials>> PushService::credentials(const std::string& topic,
                                                                    int64_t* cert_id) {
    {
        std::lock_guard lock(mu_);
        if (auto it = creds_.find(topic); it != creds_.end()) {
            *cert_id = it->second.first;
            return it->second.second;
        }
    }
    auto cert = push_certs_.active_push_cert(topic);
    if (!cert.is_ok()) return cert.status();
    if (!cert->has_value()) return not_found("no push certificate for topic " + topic);
    const db::PushCert& pc = **cert;
    if (!pc.usable)
        return invalid("push certificate for " + topic + " is unusable: " + pc.unusable_reason);
    if (pc.not_after <= clock_.now())
        return invalid("push certificate for " + topic + " expired at " +
                       format_rfc3339(pc.not_after));
    auto c = std::make_shared<Credentials>(
        Credentials{pc.topic, pc.cert_pem, pc.key_pem, pc.thumbprint_sha1});
    std::lock_guard lock(mu_);
    creds_[topic] = {pc.id, c};
    *cert_id = pc.id;
    return std::shared_ptr<const Credentials>(c);
}

void PushService::arm(const std::vector<std::string>& ids) {
    if (ids.empty()) return;
    if (auto s = pushes_.arm_pushes(ids, clock_.now()); !s.is_ok())
        spdlog::warn("arming {} push(es): {}", ids.size(), s.to_string());
}

void PushService::push(const std::string& id, Done done, std::optional<SysTime> command_expiry) {
    arm({id});
    push_impl(id, std::move(done), command_expiry, 1);
}

void PushService::push_impl(const std::string& id, Done done, std::optional<SysTime> command_expiry,
                            int attempts) {
    {
        std::lock_guard lock(mu_);
        auto [it, fresh] = inflight_.try_emplace(id);
        it->second.waiters.push_back(std::move(done));
        if (!fresh) return;  // joins the push already in flight
    }
    auto e = enrollments_.enrollment(id);
    if (!e.is_ok()) return fail_now(id, attempts, e.status().message());
    if (e->state != db::EnrollmentState::kEnrolled)
        return fail_now(id, attempts, std::string("enrollment is ") + db::state_name(e->state));
    if (e->push_token.empty()) return fail_now(id, attempts, "no push token yet (no TokenUpdate)");
    if (!e->token_valid)
        return fail_now(id, attempts,
                        "push token marked invalid by APNs; waiting for a TokenUpdate");
    int64_t cert_id = 0;
    auto creds = credentials(e->topic, &cert_id);
    if (!creds.is_ok()) return fail_now(id, attempts, creds.status().message());

    PushRequest req;
    req.token_hex = hex_encode(e->push_token);
    req.push_magic = e->push_magic;
    req.topic = e->topic;
    auto expiry = clock_.now() + std::chrono::days(7);
    if (command_expiry && *command_expiry < expiry) expiry = *command_expiry;
    if (expiry <= clock_.now()) expiry = clock_.now() + std::chrono::seconds(60);
    req.expiration = expiry;
    req.credentials = std::move(*creds);
    pusher_.push(std::move(req),
                 [this, id, cert_id, attempts, sent_at = clock_.now_ms()](PushResult r) {
                     post_answer(Answer{id, cert_id, attempts, sent_at, std::move(r)});
                 });
}

void PushService::fail_now(const std::string& id, int attempts, const std::string& reason) {
    metrics_.counter("courier_pushes_total", {{"status", "not_sent"}}).inc();
    db::PushAttempt a{id, clock_.now(), 0, "", reason};
    if (auto s = pushes_.record_push_attempt(a); !s.is_ok())
        spdlog::warn("recording push attempt for {}: {}", id, s.to_string());
    spdlog::info("push to {} not sent: {}", id, reason);
    // Commands keep waiting; the schedule tries again (a certificate may be
    // uploaded, a TokenUpdate may arrive).
    schedule_next(id, attempts, repush_interval(attempts));
    finish(id, PushOutcome{false, "", reason});
}

void PushService::handle_answers(std::vector<Answer>& batch) {
    std::vector<db::PushOutcomeRecord> records;
    std::vector<PushOutcome> outcomes;
    records.reserve(batch.size());
    outcomes.reserve(batch.size());
    for (Answer& ans : batch) {
        const std::string& id = ans.id;
        const PushResult& r = ans.result;
        metrics_
            .counter("courier_pushes_total",
                     {{"status", r.http_status ? std::to_string(r.http_status) : "error"}})
            .inc();
        PushOutcome out;
        auto next = repush_interval(ans.attempts);
        if (r.http_status == 200) {
            out.pushed = true;
            out.apns_id = r.apns_id;
        } else {
            out.error = r.http_status ? fmt::format("APNs {} {}", r.http_status, r.reason)
                                      : "APNs unreachable: " + r.reason;
            if ((r.http_status == 400 && r.reason == "BadDeviceToken") || r.http_status == 410) {
                spdlog::warn(
                    "APNs says the push token of {} is invalid ({}); not pushing until "
                    "its next TokenUpdate",
                    id, r.reason);
                std::unique_ptr<db::EventAttachment> events;
                if (token_invalid_events_)
                    events = token_invalid_events_(id, r.http_status, r.reason);
                (void)pushes_.mark_token_invalid(id, clock_.now());
            } else if (r.http_status == 403) {
                spdlog::error("APNs refused push certificate #{} ({}); marked unusable",
                              ans.cert_id, r.reason);
                (void)push_certs_.mark_push_cert_unusable(ans.cert_id, "APNs 403 " + r.reason);
                reload_certificates();
            } else if (r.http_status == 429 || r.http_status >= 500 || r.http_status == 0) {
                // Retried through the re-push schedule with backoff and jitter:
                // 15 s, 30 s, 60 s … capped by the normal interval.
                next = std::min(next, std::chrono::seconds(15LL << std::min(ans.attempts - 1, 6)));
                if (r.retry_after.count() > 0)
                    next = std::max(
                        next, std::chrono::duration_cast<std::chrono::seconds>(r.retry_after));
                spdlog::info("push to {} deferred: {}", id, out.error);
            } else {
                spdlog::warn("push to {} refused: {}", id, out.error);
            }
        }
        db::PushOutcomeRecord rec;
        rec.attempt = db::PushAttempt{id, clock_.now(), r.http_status, r.apns_id, r.reason};
        rec.repush_at = next_repush(next);
        rec.attempts = ans.attempts;
        if (r.http_status == 200 && !r.apns_id.empty()) {
            // Pending until the device comes or the schedule's first step
            // (1 min ± 10 %) comes due — never past repush_at, so the re-push
            // never fires while the push still counts as pending. After a
            // first push the two are the same instant.
            rec.sent_at = ans.sent_at;
            rec.pending_until = next == repush_interval(1)
                                    ? rec.repush_at
                                    : std::min(rec.repush_at, next_repush(repush_interval(1)));
        }
        records.push_back(std::move(rec));
        outcomes.push_back(std::move(out));
    }
    // One transaction for the whole batch: a fleet-wide wake-up's answers
    // cost a few commits, not two per device.
    if (auto s = pushes_.record_push_outcomes(records); !s.is_ok())
        spdlog::warn("recording {} push answers: {}", records.size(), s.to_string());
    for (size_t i = 0; i < batch.size(); ++i) finish(batch[i].id, outcomes[i]);
}

void PushService::finish(const std::string& id, const PushOutcome& outcome) {
    std::vector<Done> waiters;
    {
        std::lock_guard lock(mu_);
        auto it = inflight_.find(id);
        if (it == inflight_.end()) return;
        waiters.swap(it->second.waiters);
        inflight_.erase(it);
    }
    for (auto& w : waiters) w(outcome);
}

std::map<std::string, PushOutcome> PushService::enqueue_pushes(
    const db::EnqueueResult& q, std::chrono::milliseconds timeout,
    std::optional<SysTime> command_expiry) {
    const std::vector<std::string> to_push = q.to_push();
    auto out = to_push.empty() ? std::map<std::string, PushOutcome>{}
                               : send_and_wait(to_push, timeout, command_expiry);
    for (const auto& [id, apns_id] : q.pending_push) {
        metrics_.counter("courier_pushes_coalesced_total").inc();
        out[id] = PushOutcome{true, apns_id, ""};
    }
    return out;
}

std::map<std::string, PushOutcome> PushService::push_and_wait(
    const std::vector<std::string>& ids, std::chrono::milliseconds timeout,
    std::optional<SysTime> command_expiry) {
    arm(ids);
    return send_and_wait(ids, timeout, command_expiry);
}

std::map<std::string, PushOutcome> PushService::send_and_wait(
    const std::vector<std::string>& ids, std::chrono::milliseconds timeout,
    std::optional<SysTime> command_expiry) {
    struct Shared {
        std::mutex mu;
        std::condition_variable cv;
        std::map<std::string, PushOutcome> results;
    };
    auto shared = std::make_shared<Shared>();
    for (const auto& id : ids)
        push_impl(
            id,
            [shared, id](const PushOutcome& o) {
                std::lock_guard lock(shared->mu);
                shared->results[id] = o;
                shared->cv.notify_all();
            },
            command_expiry, 1);
    std::unique_lock lock(shared->mu);
    shared->cv.wait_for(lock, timeout, [&] { return shared->results.size() >= ids.size(); });
    auto out = shared->results;
    for (const auto& id : ids)
        if (!out.count(id)) out[id] = PushOutcome{false, "", "timed out waiting for APNs"};
    return out;
}

}  // namespace courier::apns
