// PgStore: opening, the connection pool, the transaction runner and
// last-seen batching. The SQL of each role lives in pg_enrollments.cc,
// pg_bindings.cc, pg_queue.cc, pg_push.cc and pg_tokens.cc.
#include "db/postgres/pg_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "db/postgres/pg_connection.h"
#include "db/postgres/pg_internal.h"

namespace courier::db {

using pg::Connection;
using pg::Failure;
using pg::PgError;

namespace {
constexpr int kMaxAttempts = 5;
constexpr int64_t kKeepSeenMs = 5000;

// Events the calling thread attached (WebhookStore::attach_events), for the
// next write it makes through `store`.
struct AttachedEvents {
    const PgStore* store = nullptr;
    std::vector<OutboxEvent>* events = nullptr;
};
thread_local AttachedEvents tl_attached;
// Did the write fn being run take effect (pg::note_no_effect)?
thread_local bool tl_effective = true;
// The enrollments it took effect for, when it said (pg::note_effective_for);
// nullptr: all.
thread_local const std::vector<std::string>* tl_effective_for = nullptr;
}  // namespace

void pg::note_no_effect() {
    tl_effective = false;
}

void pg::note_effective_for(const std::vector<std::string>* ids) {
    tl_effective_for = ids;
}

class PgStore::Attachment : public EventAttachment {
  public:
    Attachment(const PgStore& store, std::vector<OutboxEvent> events)
        : events_(std::move(events)), previous_(tl_attached) {
        tl_attached = {&store, &events_};
    }
    ~Attachment() override { tl_attached = previous_; }

  private:
    std::vector<OutboxEvent> events_;
    AttachedEvents previous_;
};

std::unique_ptr<EventAttachment> PgStore::attach_events(std::vector<OutboxEvent> events) {
    return std::make_unique<Attachment>(*this, std::move(events));
}

int PgStore::latest_schema_version() {
    return pg::latest_schema_version();
}

Result<std::unique_ptr<PgStore>> PgStore::open(const std::string& uri, const PgOptions& options,
                                               const Clock& clock) {
    if (options.pool_size == 0) return invalid("--db-pool must be at least 1");
    auto conn = Connection::open(uri, {options.connect_timeout_s});
    if (!conn) return conn.status();
    if (Status s = pg::migrate(**conn); !s) return s;
    auto store = std::unique_ptr<PgStore>(new PgStore(uri, options, clock));
    store->give_back(std::move(conn).value());
    {
        std::lock_guard lk(store->pool_mu_);
        ++store->open_;  // the migrating connection joins the pool
    }
    return store;
}

PgStore::PgStore(std::string uri, const PgOptions& options, const Clock& clock)
    : uri_(std::move(uri)), options_(options), clock_(clock) {
    flusher_ = std::thread([this] { flush_loop(); });
}

PgStore::~PgStore() {
    close();
}

void PgStore::close() {
    {
        std::lock_guard lk(flush_mu_);
        if (stop_flush_ && !flusher_.joinable()) return;
        stop_flush_ = true;
    }
    flush_cv_.notify_one();
    if (flusher_.joinable()) flusher_.join();
    std::vector<std::unique_ptr<Connection>> idle;
    {
        std::lock_guard lk(pool_mu_);
        closed_ = true;
        idle.swap(idle_);
        open_ -= idle.size();
    }
    pool_cv_.notify_all();
}

size_t PgStore::open_connections() const {
    std::lock_guard lk(pool_mu_);
    return open_;
}

Result<std::unique_ptr<Connection>> PgStore::take() {
    using Steady = std::chrono::steady_clock;
    std::unique_lock lk(pool_mu_);
    const auto deadline = Steady::now() + options_.pool_wait;
    for (;;) {
        if (closed_) return unavailable("store is closed");
        if (!idle_.empty()) {
            auto c = std::move(idle_.back());
            idle_.pop_back();
            return c;
        }
        if (open_ < options_.pool_size) {
            if (Steady::now() < next_connect_)
                return unavailable("database unreachable: " + last_connect_error_.message());
            ++open_;
            lk.unlock();
            auto c = Connection::open(uri_, {options_.connect_timeout_s});
            lk.lock();
            if (c) {
                if (backoff_.count() > 0) spdlog::info("store: database reachable again");
                backoff_ = std::chrono::milliseconds(0);
                return c;
            }
            --open_;
            pool_cv_.notify_one();
            // Reconnect with backoff: 100 ms doubling to 2 s, so a database
            // that comes back is used again within seconds.
            backoff_ = backoff_.count() == 0
                           ? std::chrono::milliseconds(100)
                           : std::min(backoff_ * 2, std::chrono::milliseconds(2000));
            next_connect_ = Steady::now() + backoff_;
            if (last_connect_error_.message() != c.status().message())
                spdlog::warn("store: {}", c.status().message());
            last_connect_error_ = c.status();
            return c.status();
        }
        if (pool_cv_.wait_until(lk, deadline) == std::cv_status::timeout && idle_.empty() &&
            open_ >= options_.pool_size)
            return unavailable("no database connection free in time (--db-pool)");
    }
}

void PgStore::give_back(std::unique_ptr<Connection> conn) {
    {
        std::lock_guard lk(pool_mu_);
        if (closed_ || !conn->ok() || conn->in_transaction()) {
            --open_;
            conn.reset();
        } else {
            idle_.push_back(std::move(conn));
        }
    }
    pool_cv_.notify_one();
}

Status PgStore::run(const Work& fn, Mode mode) {
    const bool read_only = mode == Mode::kRead;
    Status last;
    bool fresh_retry_used = false;
    // One write takes the attached events (appended in its transaction).
    std::vector<OutboxEvent> events;
    if (!read_only && tl_attached.store == this && tl_attached.events)
        events.swap(*tl_attached.events);
    // With events to append, a device call needs a transaction around its
    // function's statement.
    if (mode == Mode::kDevice && !events.empty()) mode = Mode::kWrite;
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
        auto conn = take();
        if (!conn) return conn.status();
        bool commit_sent = false;
        try {
            // Reads run without BEGIN/COMMIT: each statement is its own
            // snapshot (two round trips fewer per read; the reads of one
            // call are an enrollment or a command with its targets, where a
            // commit landing between two statements is harmless).
            if (read_only) {
                Status s = fn(**conn);
                give_back(std::move(*conn));
                return s;
            }
            // kDevice: the function statement commits by itself. A broken
            // connection during it leaves its outcome unknown, and running
            // it again on a fresh connection is safe: a repeated report
            // changes nothing and the command handed out is handed out
            // again, as when the device retries.
            if (mode == Mode::kWrite) (*conn)->exec("BEGIN");
            tl_effective = true;
            tl_effective_for = nullptr;
            Status s = fn(**conn);
            if (s && !events.empty())
                pg::append_outbox(**conn, events, tl_effective, tl_effective_for);
            if (!s) {
                if ((*conn)->in_transaction()) (*conn)->exec("ROLLBACK");
                give_back(std::move(*conn));
                return s;
            }
            if ((*conn)->in_transaction()) {
                commit_sent = true;
                (*conn)->exec("COMMIT");
            }
            give_back(std::move(*conn));
            return Status::ok();
        } catch (const PgError& e) {
            last = e.status();
            if ((*conn)->ok() && (*conn)->in_transaction()) (void)(*conn)->try_exec("ROLLBACK");
            give_back(std::move(*conn));
            if (e.failure() == Failure::kRetry) continue;
            if (e.failure() == Failure::kConnection) {
                // The server restarted or failed over: every idle connection
                // is as dead as this one. Drop them; one more try on a fresh
                // connection, unless COMMIT was sent (its outcome is unknown:
                // the caller sees kUnavailable and retries, as devices do).
                std::vector<std::unique_ptr<Connection>> idle;
                {
                    std::lock_guard lk(pool_mu_);
                    idle.swap(idle_);
                    open_ -= idle.size();
                }
                if (!commit_sent && !fresh_retry_used) {
                    fresh_retry_used = true;
                    continue;
                }
            }
            return last;
        }
    }
    return last;
}

Status PgStore::write(const Work& fn) {
    return run(fn, false);
}

Status PgStore::ping() {
    return run(
        [](Connection& c) {
            c.query("SELECT 1");
            return Status::ok();
        },
        true);
}

// ---- last seen -------------------------------------------------------------

void PgStore::touch_last_seen(const std::vector<std::string>& ids, SysTimeMs now) {
    std::lock_guard lk(seen_mu_);
    for (const auto& id : ids) {
        int64_t& at_ms = last_seen_[id];
        at_ms = std::max(at_ms, static_cast<int64_t>(now.time_since_epoch().count()));
    }
}

void PgStore::touch_binding(const std::string& cert_sha256, SysTime now) {
    std::lock_guard lk(seen_mu_);
    int64_t& at = binding_used_[cert_sha256];
    at = std::max(at, to_unix(now));
}

int64_t PgStore::seen_ms_locked(const std::string& id) const {
    int64_t at_ms = 0;
    if (auto it = last_seen_.find(id); it != last_seen_.end()) at_ms = it->second;
    if (auto it = recent_seen_.find(id); it != recent_seen_.end())
        at_ms = std::max(at_ms, it->second);
    return at_ms;
}

void PgStore::overlay_last_seen(Enrollment& e) const {
    std::lock_guard lk(seen_mu_);
    auto it = last_seen_.find(e.id);
    if (it == last_seen_.end()) return;
    int64_t at = it->second / 1000;
    if (!e.last_seen || to_unix(*e.last_seen) < at) e.last_seen = from_unix(at);
}

void PgStore::overlay_binding_used(Binding& b) const {
    int64_t at = unflushed_binding_use(b.cert_sha256);
    if (at == 0) return;
    if (!b.last_used || to_unix(*b.last_used) < at) b.last_used = from_unix(at);
}

int64_t PgStore::unflushed_binding_use(const std::string& cert_sha256) const {
    std::lock_guard lk(seen_mu_);
    auto it = binding_used_.find(cert_sha256);
    return it == binding_used_.end() ? 0 : it->second;
}

void PgStore::flush_loop() {
    std::unique_lock lk(flush_mu_);
    while (!stop_flush_) {
        flush_cv_.wait_for(lk, options_.last_seen_flush, [&] { return stop_flush_; });
        lk.unlock();
        flush_seen();
        lk.lock();
    }
}

void PgStore::flush_seen() {
    std::unordered_map<std::string, int64_t> seen, used;
    {
        std::lock_guard lk(seen_mu_);
        seen.swap(last_seen_);
        used.swap(binding_used_);
        // Kept a few seconds, so a push outcome recorded right after this
        // flush still compares to the millisecond (record_push_outcomes).
        const int64_t now_ms = clock_.now_ms().time_since_epoch().count();
        std::erase_if(recent_seen_,
                      [&](const auto& kv) { return kv.second < now_ms - kKeepSeenMs; });
        for (const auto& [id, at] : seen) {
            int64_t& r = recent_seen_[id];
            r = std::max(r, at);
        }
    }
    if (seen.empty() && used.empty()) return;
    // Sorted, so concurrent flushes from several nodes lock rows in one order.
    std::vector<std::pair<std::string, int64_t>> s(seen.begin(), seen.end()),
        u(used.begin(), used.end());
    std::sort(s.begin(), s.end());
    std::sort(u.begin(), u.end());
    std::vector<std::string> ids, certs;
    std::vector<int64_t> at_s, used_s;
    for (const auto& [id, ms] : s) {
        ids.push_back(id);
        at_s.push_back(ms / 1000);
    }
    for (const auto& [cert, at] : u) {
        certs.push_back(cert);
        used_s.push_back(at);
    }
    Status st = write([&](Connection& c) {
        if (!ids.empty())
            c.query(
                "UPDATE enrollments e SET last_seen = v.at FROM (SELECT unnest($1::text[]) AS id, "
                "unnest($2::bigint[]) AS at) v WHERE e.id = v.id AND "
                "(e.last_seen IS NULL OR e.last_seen < v.at)",
                pg::TextArray{&ids}, pg::Int64Array{&at_s});
        if (!certs.empty())
            c.query(
                "UPDATE cert_bindings b SET last_used = v.at FROM (SELECT unnest($1::text[]) AS "
                "cert, unnest($2::bigint[]) AS at) v WHERE b.cert_sha256 = v.cert AND "
                "(b.last_used IS NULL OR b.last_used < v.at)",
                pg::TextArray{&certs}, pg::Int64Array{&used_s});
        return Status::ok();
    });
    if (st) return;
    // Not lost: merged back for the next flush (the database may be away).
    spdlog::warn("store: last-seen flush failed: {}", st.message());
    std::lock_guard lk(seen_mu_);
    for (const auto& [id, at] : seen) {
        int64_t& v = last_seen_[id];
        v = std::max(v, at);
    }
    for (const auto& [cert, at] : used) {
        int64_t& v = binding_used_[cert];
        v = std::max(v, at);
    }
}

}  // namespace courier::db
