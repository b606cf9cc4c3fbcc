// Push scheduling: when and to whom Courier sends wake-ups, and what it does
// with APNs' answers. Sits between the store and a Pusher.
//
// Rules (docs/apns.md "What answers mean"):
// - at most one push in flight per enrollment: a push asked for while one is
//   in flight joins it and reports its outcome (and its apns-id);
// - 200 records the apns-id; 400 BadDeviceToken / 410 Unregistered mark the
//   token invalid until the next TokenUpdate; 403 marks the certificate
//   unusable; 429, 5xx and transport errors are retried through the re-push
//   schedule with backoff and jitter;
// - every attempt, including ones that never reach APNs (no certificate,
//   expired certificate), is stored with its reason;
// - a push APNs accepted (200) is *pending* until the device's next request
//   or for repush_interval(1) (docs/apns.md "Pending push"); the store keeps the
//   mark, enqueues read it (db::EnqueueResult::pending_push) and report the
//   pending push instead of pushing again (enqueue_pushes below);
// - an enrollment whose commands stay undelivered is pushed again after
//   1 min, 5 min, 30 min, 2 h, then every 6 h (± 10 % jitter) until its queue
//   is empty; the sweep takes at most `sweep_batch` enrollments per round.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "apns/pusher.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "db/command_queue.h"
#include "db/enrollment_store.h"
#include "db/push_cert_store.h"
#include "db/push_store.h"
#include "db/webhook_store.h"

namespace courier::apns {

struct PushOutcome {
    bool pushed = false;  // APNs answered 200
    std::string apns_id;
    std::string error;  // why not, when !pushed
};

struct PushServiceOptions {
    size_t sweep_batch = 500;
    std::chrono::milliseconds sweep_interval{5000};
    // Threads that store APNs answers; each takes every answer waiting (up to
    // answer_batch) and records them in one store call.
    int result_threads = 2;
    size_t answer_batch = 512;
    bool background_sweep = true;
};

// The re-push interval after `attempts` pushes (without jitter).
std::chrono::seconds repush_interval(int attempts);

class PushService {
  public:
    // The storage roles it uses (in the server, all one db::Store: server/app/app.cc).
    struct Stores {
        db::PushStore& pushes;
        db::PushCertStore& push_certs;
        db::EnrollmentStore& enrollments;
        db::CommandQueue& queue;
    };
    PushService(const Stores& stores, Pusher& pusher, const Clock& clock, Metrics& metrics,
                PushServiceOptions opts = {});
    ~PushService();
    PushService(const PushService&) = delete;
    PushService& operator=(const PushService&) = delete;

    void start();
    // Stops the sweep and result threads; pending callbacks get "shutting down".
    void stop();

    using Done = std::function<void(const PushOutcome&)>;
    // Wakes one enrollment. `done` runs once, on an internal thread. The
    // push is armed first (db::PushStore::arm_pushes), so an answer recorded
    // after the device came leaves no pending mark.
    void push(const std::string& enrollment_id, Done done,
              std::optional<SysTime> command_expiry = std::nullopt);
    // Pushes to each id and waits up to `timeout` for the answers; ids whose
    // answer did not come in time get error "timed out waiting for APNs".
    // Arms the pushes first, as push() does.
    std::map<std::string, PushOutcome> push_and_wait(
        const std::vector<std::string>& ids, std::chrono::milliseconds timeout,
        std::optional<SysTime> command_expiry = std::nullopt);

    // The pushes a just-queued command needs: targets with a pending push
    // (q.pending_push) report its apns-id and are not pushed again; the
    // others are pushed as push_and_wait does, without arming them again
    // (the enqueue armed them in its own transaction).
    std::map<std::string, PushOutcome> enqueue_pushes(
        const db::EnqueueResult& q, std::chrono::milliseconds timeout,
        std::optional<SysTime> command_expiry = std::nullopt);

    // Drops cached credentials (after a push certificate upload or renewal).
    void reload_certificates();
    // One round of due re-pushes; returns how many were started (or joined
    // a push still in flight).
    size_t sweep_once();
    // Enrollments with a push sent and its answer not yet handled.
    size_t in_flight();
    // Webhook events for a push token APNs called invalid: called before
    // mark_token_invalid, the attachment it returns (the events) lives across
    // that write (db::WebhookStore::attach_events). Set before start().
    using TokenInvalidEvents = std::function<std::unique_ptr<db::EventAttachment>(
        const std::string& enrollment_id, int http_status, const std::string& reason)>;
    void set_token_invalid_events(TokenInvalidEvents f) { token_invalid_events_ = std::move(f); }

  private:
    struct Inflight {
        std::vector<Done> waiters;
    };
    void push_impl(const std::string& id, Done done, std::optional<SysTime> command_expiry,
                   int attempts);
    // Arms the pushes about to be sent (db::PushStore::arm_pushes); a failure
    // is logged and the pushes go anyway (their answers then mark nothing).
    void arm(const std::vector<std::string>& ids);
    // push_and_wait without arming.
    std::map<std::string, PushOutcome> send_and_wait(const std::vector<std::string>& ids,
                                                     std::chrono::milliseconds timeout,
                                                     std::optional<SysTime> command_expiry);
    Result<std::shared_ptr<const Credentials>> credentials(const std::string& topic,
                                                           int64_t* cert_id);
    void finish(const std::string& id, const PushOutcome& outcome);
    struct Answer {
        std::string id;
        int64_t cert_id = 0;
        int attempts = 0;
        SysTimeMs sent_at{};
        PushResult result;
    };
    void post_answer(Answer a);
    void handle_answers(std::vector<Answer>& batch);
    void fail_now(const std::string& id, int attempts, const std::string& reason);
    // The next re-push: `after` from now, ±10 %.
    SysTime next_repush(std::chrono::seconds after) const;
    // Puts the enrollment back on the re-push schedule `after` from now (±10 %).
    void schedule_next(const std::string& id, int attempts, std::chrono::seconds after);
    void worker_loop();
    void sweep_loop();

    db::PushStore& pushes_;
    db::PushCertStore& push_certs_;
    db::EnrollmentStore& enrollments_;
    db::CommandQueue& queue_;
    Pusher& pusher_;
    const Clock& clock_;
    Metrics& metrics_;
    TokenInvalidEvents token_invalid_events_;
    PushServiceOptions opts_;

    std::mutex mu_;
    std::unordered_map<std::string, Inflight> inflight_;
    std::unordered_map<std::string, std::pair<int64_t, std::shared_ptr<const Credentials>>> creds_;

    std::mutex task_mu_;
    std::condition_variable task_cv_;
    std::deque<Answer> answers_;
    bool stopping_ = false;
    std::vector<std::thread> workers_;
    std::thread sweeper_;
    std::condition_variable sweep_cv_;
};

}  // namespace courier::apns
