// SqliteStore: commands and the per-enrollment queue.
#include <fmt/format.h>

#include <charconv>
#include <unordered_set>

#include "common/encoding.h"
#include "db/command_finished_event.h"
#include "db/sqlite/sqlite_internal.h"
#include "db/sqlite/sqlite_store.h"

namespace courier::db {

using sqlite::Blob;
using sqlite::Connection;
using sqlite::kOpenStatuses;

namespace {

// Apple's spelling of a reported status, for the timeline.
const char* report_name(TargetStatus s) {
    switch (s) {
        case TargetStatus::kAcknowledged:
            return "Acknowledged";
        case TargetStatus::kError:
            return "Error";
        case TargetStatus::kCommandFormatError:
            return "CommandFormatError";
        case TargetStatus::kNotNow:
            return "NotNow";
        default:
            return target_status_name(s);
    }
}

bool is_reported(TargetStatus s) {
    return s == TargetStatus::kAcknowledged || s == TargetStatus::kError ||
           s == TargetStatus::kCommandFormatError;
}

void expire_due_targets(Connection& c, const std::string& id, SysTime now) {
    struct Due {
        int64_t seq;
        std::string uuid, request_type;
    };
    std::vector<Due> due;
    {
        // targets_expiring: open targets with an expiry only (migration 2).
        auto st = c.prepare(
            "SELECT t.command_seq, c.uuid, c.request_type FROM targets t JOIN commands c ON "
            "c.seq = t.command_seq WHERE t.enrollment_id = ?1 AND t.expires_at IS NOT NULL AND "
            "t.expires_at <= ?2 AND t.status IN ('queued', 'sent', 'notnow')");
        st.bind(id, to_unix(now));
        while (st.step()) due.push_back({st.int64(0), st.str(1), st.str(2)});
    }
    auto mark = c.prepare(
        "UPDATE targets SET status = 'expired', updated_at = ?3 "
        "WHERE enrollment_id = ?1 AND command_seq = ?2");
    std::vector<OutboxEvent> finished;
    for (const auto& d : due) {
        mark.bind(id, d.seq, to_unix(now)).run();
        sqlite::add_event(c, id, now, "command",
                          fmt::format("{} {} expired undelivered", d.request_type, d.uuid));
        finished.push_back(command_finished_event(d.uuid, id, TargetStatus::kExpired, now));
    }
    // A final status of a target: its webhook event in this transaction
    // (an expiry has no caller to attach it; append_outbox stores it only
    // for destinations that take the topic).
    if (!finished.empty()) sqlite::append_outbox(c, finished, true);
}

std::optional<int64_t> seq_of(Connection& c, const std::string& uuid) {
    auto st = c.prepare("SELECT seq FROM commands WHERE uuid = ?1");
    st.bind(uuid);
    if (!st.step()) return std::nullopt;
    return st.int64(0);
}

std::vector<TargetInfo> targets_of(Connection& c, int64_t seq, const std::string& only_id) {
    auto st = c.prepare(
        "SELECT enrollment_id, status, updated_at, result FROM targets WHERE command_seq = ?1 "
        "AND (?2 IS NULL OR enrollment_id = ?2) ORDER BY enrollment_id");
    st.bind(seq, only_id.empty() ? std::nullopt : std::optional<std::string>(only_id));
    std::vector<TargetInfo> out;
    while (st.step()) {
        TargetInfo t;
        t.enrollment_id = st.str(0);
        t.status = parse_target_status(st.str(1)).value_or(TargetStatus::kQueued);
        t.updated_at = from_unix(st.int64(2));
        t.result = st.str(3);
        out.push_back(std::move(t));
    }
    return out;
}

}  // namespace

namespace sqlite {

std::optional<DeliveredCommand> pick_next_command(Connection& c, const std::string& id,
                                                  bool include_notnow, SysTime now) {
    // The device is here: its pending push is answered. Cleared in the
    // transaction that reads the queue, so an enqueue that saw the mark
    // committed before this read and its command is seen below.
    c.prepare(
         "UPDATE enrollments SET pending_push_apns_id = NULL, pending_push_until = NULL "
         "WHERE id = ?1 AND pending_push_until IS NOT NULL")
        .bind(id)
        .run();
    expire_due_targets(c, id, now);
    // The oldest open target: the smallest command_seq per eligible status,
    // each one index probe (targets_queue), so the cost does not grow with
    // the enrollment's history or queue. (Ordering all open rows, or walking
    // the primary key past finished targets and their stored results, did.)
    auto first = c.prepare(
        "SELECT min(seq) FROM ("
        "SELECT min(command_seq) AS seq FROM targets WHERE enrollment_id = ?1 AND status = "
        "'queued' "
        "UNION ALL SELECT min(command_seq) FROM targets WHERE enrollment_id = ?1 AND status = "
        "'sent' "
        "UNION ALL SELECT min(command_seq) FROM targets WHERE enrollment_id = ?1 AND "
        "status = 'notnow' AND ?2)");
    first.bind(id, int64_t{include_notnow ? 1 : 0});
    bool found = first.step() && !first.is_null(0);
    int64_t seq_found = found ? first.int64(0) : 0;
    first.reset();
    if (!found) {
        clear_repush_if_idle(c, id);
        return std::nullopt;
    }
    auto st = c.prepare(
        "SELECT t.command_seq, t.status, c.uuid, c.request_type, c.plist FROM targets t "
        "JOIN commands c ON c.seq = t.command_seq WHERE t.enrollment_id = ?1 AND "
        "t.command_seq = ?2");
    st.bind(id, seq_found);
    if (!st.step()) {
        st.reset();
        return std::nullopt;
    }
    int64_t seq = st.int64(0);
    bool again = st.str(1) != "queued";
    DeliveredCommand out{st.str(2), st.str(3), st.str(4)};
    st.reset();
    c.prepare(
         "UPDATE targets SET status = 'sent', updated_at = ?3 "
         "WHERE enrollment_id = ?1 AND command_seq = ?2")
        .bind(id, seq, to_unix(now))
        .run();
    add_event(
        c, id, now, "command",
        fmt::format("{} {} handed over{}", out.request_type, out.uuid, again ? " again" : ""));
    return out;
}

}  // namespace sqlite

Result<EnqueueResult> SqliteStore::enqueue(const NewCommand& cmd,
                                           const std::vector<std::string>& targets, SysTime now) {
    if (cmd.uuid.empty()) return invalid("command uuid missing");
    if (cmd.request_type.empty()) return invalid("command request type missing");
    if (targets.empty()) return invalid("no targets");
    EnqueueResult out;
    Status s = write([&](Connection& c) {
        out = {};
        if (seq_of(c, cmd.uuid)) return conflict("command " + cmd.uuid + " already exists");
        std::unordered_set<std::string> seen;
        // The pending push is read here, in the enqueue's own transaction
        // (see CommandQueue::enqueue and docs/apns.md "Pending push").
        auto exists = c.prepare(
            "SELECT CASE WHEN pending_push_until > ?2 AND pending_push_apns_id <> '' AND "
            "state = 'enrolled' AND token_valid = 1 THEN pending_push_apns_id END "
            "FROM enrollments WHERE id = ?1");
        for (const auto& id : targets) {
            if (!seen.insert(id).second) continue;
            exists.bind(id, to_unix(now));
            bool known = exists.step();
            (known ? out.queued : out.unknown).push_back(id);
            if (known && !exists.is_null(0)) out.pending_push[id] = exists.str(0);
            exists.reset();
        }
        if (out.queued.empty()) return Status::ok();
        c.prepare(
             "INSERT INTO commands (uuid, request_type, plist, created_at, expires_at) "
             "VALUES (?1, ?2, ?3, ?4, ?5)")
            .bind(cmd.uuid, cmd.request_type, Blob{cmd.plist}, to_unix(now),
                  cmd.expires_at ? std::optional<int64_t>(to_unix(*cmd.expires_at)) : std::nullopt)
            .run();
        int64_t seq = c.last_insert_rowid();
        auto insert = c.prepare(
            "INSERT INTO targets (enrollment_id, command_seq, status, updated_at, expires_at) "
            "VALUES (?1, ?2, 'queued', ?3, ?4)");
        std::optional<int64_t> expires =
            cmd.expires_at ? std::optional<int64_t>(to_unix(*cmd.expires_at)) : std::nullopt;
        std::string detail = fmt::format("{} {} queued", cmd.request_type, cmd.uuid);
        for (const auto& id : out.queued) {
            insert.bind(id, seq, to_unix(now), expires).run();
            sqlite::add_event(c, id, now, "command", detail);
        }
        // A coalesced command leans on the pending push; if that push does
        // not bring the device, the schedule's first step pushes again.
        auto due = c.prepare(
            "UPDATE enrollments SET repush_at = pending_push_until, repush_attempts = 1 "
            "WHERE id = ?1 AND (repush_at IS NULL OR repush_at > pending_push_until)");
        for (const auto& [id, apns_id] : out.pending_push) due.bind(id).run();
        // The others will be pushed: armed in this transaction (see
        // PushStore::arm_pushes), so the device's next request disarms them.
        if (cmd.will_push) sqlite::arm_pushes(c, out.to_push(), now);
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Result<std::optional<DeliveredCommand>> SqliteStore::next_command(const std::string& id,
                                                                  bool include_notnow,
                                                                  SysTime now) {
    std::optional<DeliveredCommand> out;
    Status s = write([&](Connection& c) {
        out = sqlite::pick_next_command(c, id, include_notnow, now);
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Result<bool> SqliteStore::has_pending(const std::string& id, SysTime now) {
    bool out = false;
    Status s = read([&](Connection& c) {
        static const std::string sql = fmt::format(
            "SELECT 1 FROM targets t JOIN commands c ON c.seq = t.command_seq "
            "WHERE t.enrollment_id = ?1 AND t.status IN {} AND "
            "(c.expires_at IS NULL OR c.expires_at > ?2) LIMIT 1",
            kOpenStatuses);
        auto st = c.prepare(sql);
        st.bind(id, to_unix(now));
        out = st.step();
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Result<std::optional<DeliveredCommand>> SqliteStore::apply_report(const std::string& id,
                                                                  const std::string& uuid,
                                                                  TargetStatus status,
                                                                  const std::string& report,
                                                                  SysTime now) {
    if (!is_reported(status) && status != TargetStatus::kNotNow) {
        return invalid(std::string("not a device report status: ") + target_status_name(status));
    }
    std::optional<DeliveredCommand> out;
    Status s = write([&](Connection& c) {
        auto st = c.prepare(
            "SELECT t.command_seq, t.status, c.request_type FROM targets t JOIN commands c ON "
            "c.seq = t.command_seq WHERE c.uuid = ?2 AND t.enrollment_id = ?1");
        st.bind(id, uuid);
        if (!st.step()) return not_found("no command " + uuid + " for " + id);
        int64_t seq = st.int64(0);
        TargetStatus current = parse_target_status(st.str(1)).value_or(TargetStatus::kQueued);
        std::string request_type = st.str(2);
        st.reset();
        // A final report is recorded once; a NotNow after one is stale.
        if (is_reported(current)) sqlite::note_no_effect();
        if (!is_reported(current)) {
            bool after_final = is_final(current);
            if (status == TargetStatus::kNotNow && after_final) {
                // Canceled or expired meanwhile: the device did not run it.
                sqlite::note_no_effect();
            } else {
                // The report is the target's result, a NotNow's too (docs/storage.md
                // "Queue semantics"); the final report replaces it.
                c.prepare(
                     "UPDATE targets SET status = ?3, updated_at = ?4, result = ?5 "
                     "WHERE enrollment_id = ?1 AND command_seq = ?2")
                    .bind(id, seq, target_status_name(status), to_unix(now), Blob{report})
                    .run();
                sqlite::add_event(c, id, now, "report",
                                  fmt::format("{} {} {}{}", request_type, uuid, report_name(status),
                                              after_final ? fmt::format(" (after it was {})",
                                                                        target_status_name(current))
                                                          : ""));
            }
        }
        out = sqlite::pick_next_command(c, id, /*include_notnow=*/false, now);
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Result<CommandInfo> SqliteStore::command(const std::string& uuid) {
    CommandInfo out;
    Status s = read([&](Connection& c) {
        auto st = c.prepare(
            "SELECT seq, uuid, request_type, plist, created_at, expires_at FROM commands "
            "WHERE uuid = ?1");
        st.bind(uuid);
        if (!st.step()) return not_found("no command " + uuid);
        int64_t seq = st.int64(0);
        out.uuid = st.str(1);
        out.request_type = st.str(2);
        out.plist = st.str(3);
        out.created_at = from_unix(st.int64(4));
        if (auto v = st.opt_int64(5)) out.expires_at = from_unix(*v);
        out.targets = targets_of(c, seq, "");
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Result<std::vector<std::string>> SqliteStore::cancel_command(const std::string& uuid, SysTime now) {
    std::vector<std::string> out;
    Status s = write([&](Connection& c) {
        out.clear();
        // Attached courier.command.finished events (only_if_effective) for
        // the targets canceled here only.
        sqlite::note_effective_for(&out);
        auto seq = seq_of(c, uuid);
        if (!seq) return not_found("no command " + uuid);
        {
            auto st = c.prepare(fmt::format(
                "SELECT enrollment_id FROM targets WHERE command_seq = ?1 AND status IN {} "
                "ORDER BY enrollment_id",
                kOpenStatuses));
            st.bind(*seq);
            while (st.step()) out.push_back(st.str(0));
        }
        if (out.empty()) return Status::ok();
        c.prepare(fmt::format("UPDATE targets SET status = 'canceled', updated_at = ?2 "
                              "WHERE command_seq = ?1 AND status IN {}",
                              kOpenStatuses))
            .bind(*seq, to_unix(now))
            .run();
        for (const auto& id : out) {
            sqlite::add_event(c, id, now, "command", fmt::format("{} canceled", uuid));
            sqlite::clear_repush_if_idle(c, id);
        }
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Result<PageOf<CommandInfo>> SqliteStore::list_commands(const CommandFilter& f, const Page& page) {
    std::optional<int64_t> before;
    if (!page.cursor.empty()) {
        auto decoded = hex_decode(page.cursor);
        int64_t v = 0;
        if (!decoded || decoded->empty() ||
            std::from_chars(decoded->data(), decoded->data() + decoded->size(), v).ec !=
                std::errc()) {
            return invalid("malformed cursor");
        }
        before = v;
    }
    int64_t limit = sqlite::clamp_limit(page.limit);
    auto opt_str = [](const std::string& v) {
        return v.empty() ? std::nullopt : std::optional<std::string>(v);
    };
    std::optional<std::string> status;
    if (f.status) status = target_status_name(*f.status);
    std::optional<int64_t> since;
    if (f.since) since = to_unix(*f.since);
    PageOf<CommandInfo> out;
    std::vector<int64_t> seqs;
    Status s = read([&](Connection& c) {
        // Newest first; fixed parameter numbers, unused filters bind NULL.
        auto st = c.prepare(
            "SELECT seq, uuid, request_type, plist, created_at, expires_at FROM commands c "
            "WHERE (?1 IS NULL OR seq < ?1) AND (?2 IS NULL OR request_type = ?2) AND "
            "(?3 IS NULL OR created_at >= ?3) AND "
            "(?4 IS NULL OR EXISTS (SELECT 1 FROM targets t WHERE t.command_seq = c.seq AND "
            "t.enrollment_id = ?4)) AND "
            "(?5 IS NULL OR EXISTS (SELECT 1 FROM targets t WHERE t.command_seq = c.seq AND "
            "t.status = ?5 AND (?4 IS NULL OR t.enrollment_id = ?4))) "
            "ORDER BY seq DESC LIMIT ?6");
        st.bind(before, opt_str(f.request_type), since, opt_str(f.enrollment_id), status,
                limit + 1);
        while (st.step()) {
            CommandInfo ci;
            seqs.push_back(st.int64(0));
            ci.uuid = st.str(1);
            ci.request_type = st.str(2);
            ci.plist = st.str(3);
            ci.created_at = from_unix(st.int64(4));
            if (auto v = st.opt_int64(5)) ci.expires_at = from_unix(*v);
            out.items.push_back(std::move(ci));
        }
        st.reset();
        if (static_cast<int64_t>(out.items.size()) > limit) {
            out.items.pop_back();
            seqs.pop_back();
            out.next_cursor = hex_encode(std::to_string(seqs.back()));
        }
        for (size_t i = 0; i < out.items.size(); ++i) {
            out.items[i].targets = targets_of(c, seqs[i], f.enrollment_id);
        }
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Result<int64_t> SqliteStore::queue_depth() {
    int64_t out = 0;
    Status s = read([&](Connection& c) {
        auto st = c.prepare(
            fmt::format("SELECT count(*) FROM targets WHERE status IN {}", kOpenStatuses));
        if (st.step()) out = st.int64(0);
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

}  // namespace courier::db
