// PgStore: commands and the per-enrollment queue. A device request
// (next_command, apply_report) locks its enrollment's row first, so requests
// for one enrollment on several nodes take turns: a command is handed out by
// one of them at a time, and a report is never lost between them.
#include <fmt/format.h>

#include <charconv>
#include <unordered_set>

#include "common/encoding.h"
#include "db/command_finished_event.h"
#include "db/postgres/pg_internal.h"
#include "db/postgres/pg_store.h"

namespace courier::db {

using pg::Bytes;
using pg::Connection;
using pg::kOpenStatuses;

namespace {

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
    auto r = c.query(
        "UPDATE targets t SET status = 'expired', updated_at = $2 FROM commands c "
        "WHERE c.seq = t.command_seq AND t.enrollment_id = $1 AND t.expires_at IS NOT NULL AND "
        "t.expires_at <= $2 AND t.status IN ('queued', 'sent', 'notnow') "
        "RETURNING c.uuid, c.request_type, t.command_seq",
        id, to_unix(now));
    std::vector<std::pair<int64_t, int>> order;
    for (int i = 0; i < r.size(); ++i) order.push_back({r.int64(i, 2), i});
    std::sort(order.begin(), order.end());
    std::vector<OutboxEvent> finished;
    for (const auto& [seq, i] : order) {
        pg::add_event(c, id, now, "command",
                      fmt::format("{} {} expired undelivered", r.str(i, 1), r.str(i, 0)));
        finished.push_back(command_finished_event(r.str(i, 0), id, TargetStatus::kExpired, now));
    }
    // A final status of a target: its webhook event in this transaction (an
    // expiry has no caller to attach it; append_outbox stores it only for
    // destinations that take the topic).
    if (!finished.empty()) pg::append_outbox(c, finished, true);
}

std::optional<int64_t> seq_of(Connection& c, const std::string& uuid) {
    auto r = c.query("SELECT seq FROM commands WHERE uuid = $1", uuid);
    if (r.empty()) return std::nullopt;
    return r.int64(0, 0);
}

std::vector<TargetInfo> targets_of(Connection& c, int64_t seq, const std::string& only_id) {
    auto r = c.query(
        "SELECT enrollment_id, status, updated_at, result FROM targets WHERE command_seq = $1 "
        "AND ($2::text IS NULL OR enrollment_id = $2) ORDER BY enrollment_id",
        seq, only_id.empty() ? std::nullopt : std::optional<std::string>(only_id));
    std::vector<TargetInfo> out;
    for (int i = 0; i < r.size(); ++i) {
        TargetInfo t;
        t.enrollment_id = r.str(i, 0);
        t.status = parse_target_status(r.str(i, 1)).value_or(TargetStatus::kQueued);
        t.updated_at = from_unix(r.int64(i, 2));
        t.result = r.bytes(i, 3);
        out.push_back(std::move(t));
    }
    return out;
}

}  // namespace

namespace pg {

std::optional<DeliveredCommand> pick_next_command(Connection& c, const std::string& id,
                                                  bool include_notnow, SysTime now, bool pending) {
    // The device is here: its pending push is answered. Cleared under the
    // row lock, so an enqueue that saw the mark (holding FOR KEY SHARE)
    // committed before this transaction read the queue below.
    if (pending)
        c.query(
            "UPDATE enrollments SET pending_push_apns_id = NULL, pending_push_until = NULL "
            "WHERE id = $1 AND pending_push_until IS NOT NULL",
            id);
    expire_due_targets(c, id, now);
    // The oldest open target: the smallest command_seq per eligible status,
    // each one probe of targets_queue; with its command, in one round trip.
    auto r = c.query(
        "SELECT t.command_seq, t.status, c.uuid, c.request_type, c.plist FROM targets t "
        "JOIN commands c ON c.seq = t.command_seq WHERE t.enrollment_id = $1 AND "
        "t.command_seq = least((SELECT min(command_seq) FROM targets WHERE enrollment_id = $1 "
        "AND status = 'queued'), (SELECT min(command_seq) FROM targets WHERE enrollment_id = $1 "
        "AND status = 'sent'), (SELECT min(command_seq) FROM targets WHERE enrollment_id = $1 "
        "AND status = 'notnow' AND $2::boolean))",
        id, include_notnow);
    if (r.empty()) {
        clear_repush_if_idle(c, id);
        return std::nullopt;
    }
    int64_t seq = r.int64(0, 0);
    bool again = r.str(0, 1) != "queued";
    DeliveredCommand out{r.str(0, 2), r.str(0, 3), r.bytes(0, 4)};
    // Marked sent and the hand-over recorded in one statement.
    c.query(
        "WITH u AS (UPDATE targets SET status = 'sent', updated_at = $3 "
        "WHERE enrollment_id = $1 AND command_seq = $2) "
        "INSERT INTO timeline (enrollment_id, at, kind, detail) VALUES ($1, $3, 'command', $4)",
        id, seq, to_unix(now),
        fmt::format("{} {} handed over{}", out.request_type, out.uuid, again ? " again" : ""));
    return out;
}

}  // namespace pg

Result<EnqueueResult> PgStore::enqueue(const NewCommand& cmd,
                                       const std::vector<std::string>& targets, SysTime now) {
    if (cmd.uuid.empty()) return invalid("command uuid missing");
    if (cmd.request_type.empty()) return invalid("command request type missing");
    if (targets.empty()) return invalid("no targets");
    std::vector<std::string> unique;
    {
        std::unordered_set<std::string> seen;
        for (const auto& id : targets)
            if (seen.insert(id).second) unique.push_back(id);
    }
    EnqueueResult out;
    Status s = write([&](Connection& c) {
        out = {};
        if (seq_of(c, cmd.uuid)) return conflict("command " + cmd.uuid + " already exists");
        // FOR KEY SHARE on each target's row, in id order: a device request
        // for it (FOR UPDATE) waits for this commit, or committed first; so
        // the pending push read here is the one that request left (see
        // CommandQueue::enqueue).
        auto rows = c.query(
            "SELECT id, CASE WHEN pending_push_until > $2 AND pending_push_apns_id <> '' AND "
            "state = 'enrolled' AND token_valid THEN pending_push_apns_id END FROM enrollments "
            "WHERE id = ANY($1::text[]) ORDER BY id FOR KEY SHARE",
            pg::TextArray{&unique}, to_unix(now));
        std::unordered_map<std::string, std::optional<std::string>> known;
        for (int i = 0; i < rows.size(); ++i)
            known[rows.str(i, 0)] =
                rows.is_null(i, 1) ? std::nullopt : std::optional<std::string>(rows.str(i, 1));
        for (const auto& id : unique) {
            auto it = known.find(id);
            if (it == known.end()) {
                out.unknown.push_back(id);
                continue;
            }
            out.queued.push_back(id);
            if (it->second) out.pending_push[id] = *it->second;
        }
        if (out.queued.empty()) return Status::ok();
        std::optional<int64_t> expires =
            cmd.expires_at ? std::optional<int64_t>(to_unix(*cmd.expires_at)) : std::nullopt;
        int64_t seq = c.query(
                           "INSERT INTO commands (uuid, request_type, plist, created_at, "
                           "expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING seq",
                           cmd.uuid, cmd.request_type, Bytes{cmd.plist}, to_unix(now), expires)
                          .int64(0, 0);
        c.query(
            "INSERT INTO targets (enrollment_id, command_seq, status, updated_at, expires_at) "
            "SELECT unnest($1::text[]), $2, 'queued', $3, $4",
            pg::TextArray{&out.queued}, seq, to_unix(now), expires);
        c.query(
            "INSERT INTO timeline (enrollment_id, at, kind, detail) "
            "SELECT unnest($1::text[]), $2, 'command', $3",
            pg::TextArray{&out.queued}, to_unix(now),
            fmt::format("{} {} queued", cmd.request_type, cmd.uuid));
        if (!out.pending_push.empty()) {
            // A coalesced command leans on the pending push; if that push
            // does not bring the device, the schedule's first step pushes.
            std::vector<std::string> ids;
            for (const auto& [id, apns_id] : out.pending_push) ids.push_back(id);
            c.query(
                "UPDATE enrollments SET repush_at = pending_push_until, repush_attempts = 1 "
                "WHERE id = ANY($1::text[]) AND (repush_at IS NULL OR repush_at > "
                "pending_push_until)",
                pg::TextArray{&ids});
        }
        // The others will be pushed: armed in this transaction (see
        // PushStore::arm_pushes), so the device's next request, on any
        // node, disarms them.
        if (cmd.will_push) pg::arm_pushes(c, out.to_push(), now);
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Result<std::optional<DeliveredCommand>> PgStore::next_command(const std::string& id,
                                                              bool include_notnow, SysTime now) {
    std::optional<DeliveredCommand> out;
    Status s = run(
        [&](Connection& c) {
            out.reset();
            // One statement (migration 3's courier_next_v1): the row lock,
            // the pending push cleared, the pick and its hand-over.
            auto r = c.query("SELECT * FROM courier_next_v1($1, $2, $3)", id, include_notnow,
                             to_unix(now));
            const std::string outcome = r.str(0, 0);
            if (outcome == "none") return Status::ok();  // nothing queued for no one
            if (outcome == "ok") {
                if (!r.is_null(0, 1))
                    out = DeliveredCommand{r.str(0, 1), r.str(0, 2), r.bytes(0, 3)};
                return Status::ok();
            }
            // A target is due to expire: the statements below expire it (with
            // its webhook event) and pick, in one transaction.
            if (!c.in_transaction()) c.exec("BEGIN");
            auto pending = pg::lock_enrollment_pending(c, id);
            if (!pending) return Status::ok();
            out = pg::pick_next_command(c, id, include_notnow, now, *pending);
            return Status::ok();
        },
        Mode::kDevice);
    if (!s) return s;
    return out;
}

Result<bool> PgStore::has_pending(const std::string& id, SysTime now) {
    if (auto* snap = pg::device_snapshot(this); snap && snap->reads.has_pending &&
                                                snap->reads.enrollment_id == id &&
                                                snap->reads.now == now)
        return snap->pending;
    bool out = false;
    Status s = run(
        [&](Connection& c) {
            static const std::string sql = fmt::format(
                "SELECT 1 FROM targets t JOIN commands c ON c.seq = t.command_seq "
                "WHERE t.enrollment_id = $1 AND t.status IN {} AND "
                "(c.expires_at IS NULL OR c.expires_at > $2) LIMIT 1",
                kOpenStatuses);
            out = !c.query(sql, id, to_unix(now)).empty();
            return Status::ok();
        },
        true);
    if (!s) return s;
    return out;
}

Result<std::optional<DeliveredCommand>> PgStore::apply_report(const std::string& id,
                                                              const std::string& uuid,
                                                              TargetStatus status,
                                                              const std::string& report,
                                                              SysTime now) {
    if (!is_reported(status) && status != TargetStatus::kNotNow) {
        return invalid(std::string("not a device report status: ") + target_status_name(status));
    }
    // The C++ path: taken when a target of the enrollment is due to expire.
    auto classic = [&](Connection& c, std::optional<DeliveredCommand>& out) {
        out.reset();
        auto pending = pg::lock_enrollment_pending(c, id);
        if (!pending) return not_found("no command " + uuid + " for " + id);
        auto r = c.query(
            "SELECT t.command_seq, t.status, c.request_type FROM targets t JOIN commands c ON "
            "c.seq = t.command_seq WHERE c.uuid = $2 AND t.enrollment_id = $1",
            id, uuid);
        if (r.empty()) return not_found("no command " + uuid + " for " + id);
        int64_t seq = r.int64(0, 0);
        TargetStatus current = parse_target_status(r.str(0, 1)).value_or(TargetStatus::kQueued);
        std::string request_type = r.str(0, 2);
        if (is_reported(current)) pg::note_no_effect();
        if (!is_reported(current)) {
            bool after_final = is_final(current);
            if (status == TargetStatus::kNotNow && after_final) {
                // Canceled or expired meanwhile: the device did not run it.
                pg::note_no_effect();
            } else {
                // The result and its timeline event in one statement.
                c.query(
                    "WITH u AS (UPDATE targets SET status = $3, updated_at = $4, result = $5 "
                    "WHERE enrollment_id = $1 AND command_seq = $2) "
                    "INSERT INTO timeline (enrollment_id, at, kind, detail) "
                    "VALUES ($1, $4, 'report', $6)",
                    id, seq, target_status_name(status), to_unix(now), Bytes{report},
                    fmt::format("{} {} {}{}", request_type, uuid, report_name(status),
                                after_final
                                    ? fmt::format(" (after it was {})", target_status_name(current))
                                    : ""));
            }
        }
        out = pg::pick_next_command(c, id, /*include_notnow=*/false, now, *pending);
        return Status::ok();
    };
    std::optional<DeliveredCommand> out;
    Status s = run(
        [&](Connection& c) {
            out.reset();
            // One statement (migration 3's courier_report_v1) doing what
            // `classic` does, unless a target is due to expire.
            auto r = c.query("SELECT * FROM courier_report_v1($1, $2, $3, $4, $5, $6)", id, uuid,
                             target_status_name(status), report_name(status), Bytes{report},
                             to_unix(now));
            const std::string outcome = r.str(0, 0);
            if (outcome == "not_found") return not_found("no command " + uuid + " for " + id);
            if (outcome == "ok") {
                if (!r.boolean(0, 1)) pg::note_no_effect();
                if (!r.is_null(0, 2))
                    out = DeliveredCommand{r.str(0, 2), r.str(0, 3), r.bytes(0, 4)};
                return Status::ok();
            }
            if (!c.in_transaction()) c.exec("BEGIN");
            return classic(c, out);
        },
        Mode::kDevice);
    if (!s) return s;
    return out;
}

Result<CommandInfo> PgStore::command(const std::string& uuid) {
    CommandInfo out;
    Status s = run(
        [&](Connection& c) {
            auto r = c.query(
                "SELECT seq, uuid, request_type, plist, created_at, expires_at FROM commands "
                "WHERE uuid = $1",
                uuid);
            if (r.empty()) return not_found("no command " + uuid);
            int64_t seq = r.int64(0, 0);
            out.uuid = r.str(0, 1);
            out.request_type = r.str(0, 2);
            out.plist = r.bytes(0, 3);
            out.created_at = from_unix(r.int64(0, 4));
            out.expires_at.reset();
            if (auto v = r.opt_int64(0, 5)) out.expires_at = from_unix(*v);
            out.targets = targets_of(c, seq, "");
            return Status::ok();
        },
        true);
    if (!s) return s;
    return out;
}

Result<std::vector<std::string>> PgStore::cancel_command(const std::string& uuid, SysTime now) {
    std::vector<std::string> out;
    Status s = write([&](Connection& c) {
        out.clear();
        // Attached courier.command.finished events (only_if_effective) for
        // the targets canceled here only.
        pg::note_effective_for(&out);
        auto seq = seq_of(c, uuid);
        if (!seq) return not_found("no command " + uuid);
        static const std::string sql = fmt::format(
            "UPDATE targets SET status = 'canceled', updated_at = $2 "
            "WHERE command_seq = $1 AND status IN {} RETURNING enrollment_id",
            kOpenStatuses);
        auto r = c.query(sql, *seq, to_unix(now));
        for (int i = 0; i < r.size(); ++i) out.push_back(r.str(i, 0));
        std::sort(out.begin(), out.end());
        for (const auto& id : out) {
            pg::add_event(c, id, now, "command", fmt::format("{} canceled", uuid));
            pg::clear_repush_if_idle(c, id);
        }
        return Status::ok();
    });
    if (!s) return s;
    return out;
}

Result<PageOf<CommandInfo>> PgStore::list_commands(const CommandFilter& f, const Page& page) {
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
    int64_t limit = pg::clamp_limit(page.limit);
    auto opt_str = [](const std::string& v) {
        return v.empty() ? std::nullopt : std::optional<std::string>(v);
    };
    std::optional<std::string> status;
    if (f.status) status = target_status_name(*f.status);
    std::optional<int64_t> since;
    if (f.since) since = to_unix(*f.since);
    PageOf<CommandInfo> out;
    Status s = run(
        [&](Connection& c) {
            out = {};
            std::vector<int64_t> seqs;
            auto r = c.query(
                "SELECT seq, uuid, request_type, plist, created_at, expires_at FROM commands c "
                "WHERE ($1::bigint IS NULL OR seq < $1) AND ($2::text IS NULL OR request_type = "
                "$2) AND ($3::bigint IS NULL OR created_at >= $3) AND "
                "($4::text IS NULL OR EXISTS (SELECT 1 FROM targets t WHERE t.command_seq = "
                "c.seq AND t.enrollment_id = $4)) AND "
                "($5::text IS NULL OR EXISTS (SELECT 1 FROM targets t WHERE t.command_seq = "
                "c.seq AND t.status = $5 AND ($4::text IS NULL OR t.enrollment_id = $4))) "
                "ORDER BY seq DESC LIMIT $6",
                before, opt_str(f.request_type), since, opt_str(f.enrollment_id), status,
                limit + 1);
            for (int i = 0; i < r.size(); ++i) {
                CommandInfo ci;
                seqs.push_back(r.int64(i, 0));
                ci.uuid = r.str(i, 1);
                ci.request_type = r.str(i, 2);
                ci.plist = r.bytes(i, 3);
                ci.created_at = from_unix(r.int64(i, 4));
                if (auto v = r.opt_int64(i, 5)) ci.expires_at = from_unix(*v);
                out.items.push_back(std::move(ci));
            }
            if (static_cast<int64_t>(out.items.size()) > limit) {
                out.items.pop_back();
                seqs.pop_back();
                out.next_cursor = hex_encode(std::to_string(seqs.back()));
            }
            for (size_t i = 0; i < out.items.size(); ++i)
                out.items[i].targets = targets_of(c, seqs[i], f.enrollment_id);
            return Status::ok();
        },
        true);
    if (!s) return s;
    return out;
}

Result<int64_t> PgStore::queue_depth() {
    int64_t out = 0;
    Status s = run(
        [&](Connection& c) {
            static const std::string sql =
                fmt::format("SELECT count(*) FROM targets WHERE status IN {}", kOpenStatuses);
            out = c.query(sql).int64(0, 0);
            return Status::ok();
        },
        true);
    if (!s) return s;
    return out;
}

}  // namespace courier::db
