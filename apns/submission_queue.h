// The hand-off both APNs senders (h2_pusher.cc, http_pusher.cc) make between
// push(), on any thread, and their run loop, on its own thread.
#pragma once

#include <deque>
#include <mutex>
#include <optional>

#include "apns/pusher.h"

namespace courier::apns {

// What a sender answers a push it will not send because it is stopping.
inline PushResult shutting_down() {
    return PushResult{0, {}, "shutting down", {}};
}

// Submission: any type with a `Pusher::Callback done`.
template <class Submission>
class SubmissionQueue {
  public:
    // Queues `s`, unless stopping (false: the caller answers shutting_down()).
    // wake() runs under the lock, once per take(): the loop takes everything
    // queued before it runs.
    template <class Wake>
    bool submit(Submission&& s, Wake&& wake) {
        std::lock_guard lock(mu_);
        if (stopping_) return false;
        items_.push_back(std::move(s));
        if (!wake_pending_) {
            wake_pending_ = true;
            wake();
        }
        return true;
    }

    // Refuses every later submit() and wakes the loop to see it.
    template <class Wake>
    void stop(Wake&& wake) {
        std::lock_guard lock(mu_);
        stopping_ = true;
        wake();
    }

    // The run loop's prologue: what was submitted since the last take, or,
    // once stopping, nullopt after answering each of those shutting_down().
    std::optional<std::deque<Submission>> take() {
        std::deque<Submission> batch;
        bool stopping;
        {
            std::lock_guard lock(mu_);
            batch.swap(items_);
            stopping = stopping_;
            wake_pending_ = false;
        }
        if (stopping) {
            for (auto& s : batch) s.done(shutting_down());
            return std::nullopt;
        }
        return batch;
    }

  private:
    std::mutex mu_;
    std::deque<Submission> items_;
    bool stopping_ = false;
    bool wake_pending_ = false;
};

}  // namespace courier::apns
