// PgStore's schema: forward-only migrations, applied at open under an
// advisory lock so that of several nodes starting together one migrates and
// the others wait, then find the work done.
//
// courier_schema holds one row: the version, and the oldest schema version
// whose code still works on it (`works_from`). Each migration keeps the
// previous release working (add first, remove a release later), so nodes can
// be upgraded one at a time: a node whose latest version is older than the
// database's starts as long as its version is at least works_from, and
// refuses (kInvalid, a clear message) otherwise.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>

#include "db/postgres/pg_internal.h"

namespace courier::db::pg {
namespace {

// Any 64-bit number unlikely to be used by someone else on the database.
constexpr int64_t kMigrationLockKey = 0x636f757269657201;  // "courier\x01"

struct Migration {
    const char* sql;
    int works_from;  // the oldest schema version whose code works after this
};

// migrations[i] takes the schema from version i to i + 1. Append only: a
// shipped entry is never edited. Times are Unix seconds (bigint). Ids that
// are sorted or compared as ranges are COLLATE "C": bytewise, as in SQLite,
// whatever the database's locale.
constexpr std::array<Migration, 4> kMigrations = {{
    {R"sql(
CREATE TABLE enrollments (
    id text COLLATE "C" PRIMARY KEY,
    device_id text COLLATE "C" NOT NULL,
    user_id text COLLATE "C" NOT NULL DEFAULT '',
    type text NOT NULL DEFAULT '',
    udid text NOT NULL DEFAULT '',
    serial_number text NOT NULL DEFAULT '',
    model text NOT NULL DEFAULT '',
    model_name text NOT NULL DEFAULT '',
    product_name text NOT NULL DEFAULT '',
    os_version text NOT NULL DEFAULT '',
    build_version text NOT NULL DEFAULT '',
    device_name text NOT NULL DEFAULT '',
    imei text NOT NULL DEFAULT '',
    meid text NOT NULL DEFAULT '',
    topic text NOT NULL DEFAULT '',
    push_token bytea,
    push_magic text,
    unlock_token bytea,
    bootstrap_token bytea,
    token_valid boolean NOT NULL DEFAULT false,
    awaiting_configuration boolean NOT NULL DEFAULT false,
    state text NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    last_seen bigint,
    identity_not_after bigint,
    repush_at bigint,
    repush_attempts integer NOT NULL DEFAULT 0,
    facts_truncated boolean NOT NULL DEFAULT false,
    pending_push_apns_id text,
    pending_push_until bigint
);
CREATE INDEX enrollments_push_token ON enrollments(push_token) WHERE push_token IS NOT NULL;
CREATE INDEX enrollments_repush ON enrollments(repush_at) WHERE repush_at IS NOT NULL;
CREATE INDEX enrollments_serial ON enrollments(serial_number);
CREATE INDEX enrollments_user_channels ON enrollments(device_id) WHERE user_id <> '';

CREATE TABLE commands (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uuid text COLLATE "C" NOT NULL UNIQUE,
    request_type text NOT NULL,
    plist bytea NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint
);

CREATE TABLE targets (
    enrollment_id text COLLATE "C" NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    command_seq bigint NOT NULL REFERENCES commands(seq) ON DELETE CASCADE,
    status text NOT NULL,
    updated_at bigint NOT NULL,
    result bytea,
    expires_at bigint,
    PRIMARY KEY (enrollment_id, command_seq)
);
-- The hot path: the next command for an enrollment.
CREATE INDEX targets_queue ON targets(enrollment_id, status, command_seq);
CREATE INDEX targets_command ON targets(command_seq);
CREATE INDEX targets_expiring ON targets(enrollment_id, expires_at)
 WHERE expires_at IS NOT NULL AND status IN ('queued', 'sent', 'notnow');

CREATE TABLE cert_bindings (
    cert_sha256 text COLLATE "C" PRIMARY KEY,
    device_id text COLLATE "C" NOT NULL,
    bound_at bigint NOT NULL,
    state text NOT NULL DEFAULT 'active',
    not_after bigint,
    superseded_at bigint,
    last_used bigint,
    alarm_at bigint
);
CREATE INDEX cert_bindings_device ON cert_bindings(device_id);

CREATE TABLE issued_identities (
    cert_sha256 text COLLATE "C" PRIMARY KEY,
    token_id text NOT NULL,
    issued_at bigint NOT NULL
);

CREATE TABLE push_certs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic text NOT NULL,
    cert_pem text NOT NULL,
    key_pem text NOT NULL,
    thumbprint_sha1 text NOT NULL,
    not_before bigint NOT NULL,
    not_after bigint NOT NULL,
    uploaded_at bigint NOT NULL,
    replaced_at bigint,
    active boolean NOT NULL,
    usable boolean NOT NULL DEFAULT true,
    unusable_reason text NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX push_certs_active_topic ON push_certs(topic) WHERE active;

CREATE TABLE push_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    enrollment_id text COLLATE "C" NOT NULL,
    at bigint NOT NULL,
    http_status integer NOT NULL,
    apns_id text NOT NULL DEFAULT '',
    reason text NOT NULL DEFAULT ''
);
CREATE INDEX push_attempts_enrollment ON push_attempts(enrollment_id, id);

CREATE TABLE timeline (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    enrollment_id text COLLATE "C" NOT NULL,
    at bigint NOT NULL,
    kind text NOT NULL,
    detail text NOT NULL
);
CREATE INDEX timeline_enrollment ON timeline(enrollment_id, at, id);

CREATE TABLE enrollment_tokens (
    id text COLLATE "C" PRIMARY KEY,
    token_sha256 text COLLATE "C" NOT NULL UNIQUE,
    uses_left bigint NOT NULL,
    expires_at bigint,
    created_at bigint NOT NULL,
    note text NOT NULL DEFAULT ''
);

-- Generated key material shared by every node (TLS CA, enrollment CA, API
-- key): SPEC "Secrets in the database".
CREATE TABLE secrets (
    name text COLLATE "C" PRIMARY KEY,
    value bytea NOT NULL,
    created_at bigint NOT NULL
);
)sql",
     1},
    // 2: webhooks (SPEC "Webhooks") and the web console (SPEC "Web console"),
    // as SQLite's migrations 7 and 8: destinations, the outbox of events
    // (written in their cause's transaction), one delivery per destination
    // and event (claimed with a lease, FOR UPDATE SKIP LOCKED), the keys of
    // once-only events, each enrollment's TokenUpdate tally since its last
    // Authenticate; console sessions (by id digest) and the private keys of
    // CSRs the server made. A delivery behind an earlier one of its
    // destination and enrollment is 'waiting' until that one is done. Only
    // adds.
    {R"sql(
ALTER TABLE enrollments ADD COLUMN token_update_tally bigint NOT NULL DEFAULT 0;
CREATE TABLE webhooks (
    id text COLLATE "C" PRIMARY KEY,
    url text NOT NULL,
    topics text NOT NULL,
    hmac_key text NOT NULL DEFAULT '',
    enabled boolean NOT NULL DEFAULT true,
    created_at bigint NOT NULL
);
CREATE TABLE webhook_events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id text COLLATE "C" NOT NULL UNIQUE,
    topic text NOT NULL,
    enrollment_id text COLLATE "C" NOT NULL DEFAULT '',
    body bytea NOT NULL,
    tally bigint,
    created_at bigint NOT NULL
);
CREATE TABLE webhook_deliveries (
    webhook_id text COLLATE "C" NOT NULL,
    event_seq bigint NOT NULL,
    enrollment_id text COLLATE "C" NOT NULL DEFAULT '',
    status text NOT NULL,
    ordered boolean NOT NULL DEFAULT true,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt bigint NOT NULL,
    deadline bigint NOT NULL,
    last_status integer NOT NULL DEFAULT 0,
    last_error text NOT NULL DEFAULT '',
    lease text,
    lease_until bigint,
    PRIMARY KEY (webhook_id, event_seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt, event_seq)
 WHERE status = 'pending';
CREATE INDEX webhook_deliveries_line ON webhook_deliveries(webhook_id, enrollment_id, status,
 event_seq);
CREATE INDEX webhook_deliveries_status ON webhook_deliveries(webhook_id, status, event_seq);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries(event_seq);
CREATE TABLE webhook_once (
    key text COLLATE "C" PRIMARY KEY,
    at bigint NOT NULL
);
CREATE TABLE console_sessions (
    id_sha256 text COLLATE "C" PRIMARY KEY,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions(expires_at);
CREATE TABLE pending_push_keys (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_pem text NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX push_attempts_at ON push_attempts(at);
)sql",
     1},
    // 3: a device request's queue work as one statement each (pg_queue.cc):
    // courier_next_v1 (next_command) and courier_report_v1 (apply_report)
    // lock the enrollment's row, record the report and hand out the next
    // command in one call: a round trip is one network round trip and one
    // commit instead of eight, and four statements inside instead of nine.
    // They change what the C++ path changes (same rows, same timeline
    // events in the same order). When a target of the enrollment is due to
    // expire they change nothing and answer 'slow': the C++ path expires it
    // and writes its webhook event. Each statement after the row lock takes
    // a new snapshot (READ COMMITTED), so it sees what the previous holder
    // of the lock committed. Functions only: a node of the previous release
    // does not call them.
    {R"sql(
-- Hands out command_seq p_next (status p_next_status, command p_uuid,
-- p_type) and records p_report on command_seq p_seq (when p_seq is not
-- null), in one UPDATE and one INSERT of the timeline events (report first);
-- clears the pending push; with nothing handed out, clears the re-push when
-- nothing is open.
CREATE FUNCTION courier_apply_v1(p_id text, p_now bigint, p_pending boolean, p_seq bigint,
    p_status text, p_report bytea, p_report_detail text, p_next bigint, p_next_status text,
    p_uuid text, p_type text) RETURNS void
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
BEGIN
    IF p_pending THEN
        UPDATE enrollments SET pending_push_apns_id = NULL, pending_push_until = NULL
         WHERE id = p_id AND pending_push_until IS NOT NULL;
    END IF;
    IF p_seq IS NOT NULL OR p_next IS NOT NULL THEN
        UPDATE targets
           SET status = CASE WHEN command_seq = p_seq THEN p_status ELSE 'sent' END,
               updated_at = p_now,
               result = CASE WHEN command_seq = p_seq THEN p_report ELSE result END
         WHERE enrollment_id = p_id AND command_seq IN (p_seq, p_next);
        INSERT INTO timeline (enrollment_id, at, kind, detail)
        SELECT p_id, p_now, v.kind, v.detail
          FROM (VALUES (1, 'report', CASE WHEN p_seq IS NOT NULL THEN p_report_detail END),
                       (2, 'command', CASE WHEN p_next IS NOT NULL THEN
                            p_type || ' ' || p_uuid || ' handed over' ||
                            CASE WHEN p_next_status <> 'queued' THEN ' again' ELSE '' END END))
               AS v(o, kind, detail)
         WHERE v.detail IS NOT NULL ORDER BY v.o;
    END IF;
    IF p_next IS NULL THEN
        UPDATE enrollments SET repush_at = NULL, repush_attempts = 0
         WHERE id = p_id AND repush_at IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM targets WHERE enrollment_id = p_id
               AND status IN ('queued', 'sent', 'notnow'));
    END IF;
END
$fn$;

-- r_outcome: 'ok', 'none' (no such enrollment) or 'slow'.
CREATE FUNCTION courier_next_v1(p_id text, p_include_notnow boolean, p_now bigint,
    OUT r_outcome text, OUT r_uuid text, OUT r_request_type text, OUT r_plist bytea)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
    v_pending boolean;
    v_due boolean;
    v_next bigint;
    v_next_status text;
BEGIN
    SELECT pending_push_until IS NOT NULL INTO v_pending FROM enrollments WHERE id = p_id
       FOR UPDATE;
    IF NOT FOUND THEN
        r_outcome := 'none';
        RETURN;
    END IF;
    SELECT EXISTS (SELECT 1 FROM targets WHERE enrollment_id = p_id AND expires_at IS NOT NULL
                    AND expires_at <= p_now AND status IN ('queued', 'sent', 'notnow')),
           n.command_seq, n.status, n.uuid, n.request_type, n.plist
      INTO v_due, v_next, v_next_status, r_uuid, r_request_type, r_plist
      FROM (SELECT 1) AS one LEFT JOIN LATERAL (
            SELECT t.command_seq, t.status, c.uuid, c.request_type, c.plist
              FROM targets t JOIN commands c ON c.seq = t.command_seq
             WHERE t.enrollment_id = p_id AND t.command_seq = least(
                (SELECT min(command_seq) FROM targets WHERE enrollment_id = p_id
                    AND status = 'queued'),
                (SELECT min(command_seq) FROM targets WHERE enrollment_id = p_id
                    AND status = 'sent'),
                (SELECT min(command_seq) FROM targets WHERE enrollment_id = p_id
                    AND status = 'notnow' AND p_include_notnow))) AS n ON true;
    IF v_due THEN
        r_outcome := 'slow';
        r_uuid := NULL;
        r_request_type := NULL;
        r_plist := NULL;
        RETURN;
    END IF;
    PERFORM courier_apply_v1(p_id, p_now, v_pending, NULL, NULL, NULL, NULL, v_next,
                             v_next_status, r_uuid, r_request_type);
    r_outcome := 'ok';
END
$fn$;

-- r_outcome: 'ok', 'not_found' (no such enrollment or target; nothing
-- written) or 'slow'. r_effective: false when the report changed nothing (a
-- repeated final report, a NotNow for a canceled or expired target). The
-- next command is picked in the statement that reads the reported target,
-- leaving that target out: after the report it is final or notnow, neither
-- of which a report's pick hands out.
CREATE FUNCTION courier_report_v1(p_id text, p_uuid text, p_status text, p_report_name text,
    p_report bytea, p_now bigint, OUT r_outcome text, OUT r_effective boolean,
    OUT r_uuid text, OUT r_request_type text, OUT r_plist bytea)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
    v_pending boolean;
    v_seq bigint;
    v_current text;
    v_type text;
    v_due boolean;
    v_next bigint;
    v_next_status text;
    v_detail text;
BEGIN
    r_effective := true;
    SELECT pending_push_until IS NOT NULL INTO v_pending FROM enrollments WHERE id = p_id
       FOR UPDATE;
    IF NOT FOUND THEN
        r_outcome := 'not_found';
        RETURN;
    END IF;
    SELECT t.command_seq, t.status, c.request_type,
           EXISTS (SELECT 1 FROM targets x WHERE x.enrollment_id = p_id
                    AND x.expires_at IS NOT NULL AND x.expires_at <= p_now
                    AND x.status IN ('queued', 'sent', 'notnow')),
           n.command_seq, n.status, n.uuid, n.request_type, n.plist
      INTO v_seq, v_current, v_type, v_due, v_next, v_next_status, r_uuid, r_request_type,
           r_plist
      FROM targets t JOIN commands c ON c.seq = t.command_seq
      LEFT JOIN LATERAL (
            SELECT nt.command_seq, nt.status, nc.uuid, nc.request_type, nc.plist
              FROM targets nt JOIN commands nc ON nc.seq = nt.command_seq
             WHERE nt.enrollment_id = p_id AND nt.command_seq = least(
                (SELECT min(command_seq) FROM targets WHERE enrollment_id = p_id
                    AND status = 'queued' AND command_seq <> t.command_seq),
                (SELECT min(command_seq) FROM targets WHERE enrollment_id = p_id
                    AND status = 'sent' AND command_seq <> t.command_seq))) AS n ON true
     WHERE c.uuid = p_uuid AND t.enrollment_id = p_id;
    IF NOT FOUND THEN
        r_outcome := 'not_found';
        RETURN;
    END IF;
    IF v_due THEN
        r_outcome := 'slow';
        r_uuid := NULL;
        r_request_type := NULL;
        r_plist := NULL;
        RETURN;
    END IF;
    IF v_current IN ('acknowledged', 'error', 'command_format_error')
       OR (p_status = 'notnow' AND v_current IN ('canceled', 'expired')) THEN
        r_effective := false;
        v_seq := NULL;
    ELSE
        v_detail := v_type || ' ' || p_uuid || ' ' || p_report_name ||
            CASE WHEN v_current IN ('canceled', 'expired')
                 THEN ' (after it was ' || v_current || ')' ELSE '' END;
    END IF;
    PERFORM courier_apply_v1(p_id, p_now, v_pending, v_seq, p_status, p_report, v_detail,
                             v_next, v_next_status, r_uuid, r_request_type);
    r_outcome := 'ok';
END
$fn$;
)sql",
     1},
    // 4: courier_report_v1 with courier_apply_v1's writes inlined, and the
    // two target rows' update and the timeline insert as one statement (a
    // data-modifying WITH): two statements and a nested call fewer per
    // command round trip (pg_stat_statements showed each statement's
    // executor start-up as a large part of the function's time). Same
    // signature, rows and events: a node of the previous release calls it
    // unchanged.
    {R"sql(
CREATE OR REPLACE FUNCTION courier_report_v1(p_id text, p_uuid text, p_status text,
    p_report_name text, p_report bytea, p_now bigint, OUT r_outcome text,
    OUT r_effective boolean, OUT r_uuid text, OUT r_request_type text, OUT r_plist bytea)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
    v_pending boolean;
    v_seq bigint;
    v_current text;
    v_type text;
    v_due boolean;
    v_next bigint;
    v_next_status text;
    v_detail text;
BEGIN
    r_effective := true;
    SELECT pending_push_until IS NOT NULL INTO v_pending FROM enrollments WHERE id = p_id
       FOR UPDATE;
    IF NOT FOUND THEN
        r_outcome := 'not_found';
        RETURN;
    END IF;
    SELECT t.command_seq, t.status, c.request_type,
           EXISTS (SELECT 1 FROM targets x WHERE x.enrollment_id = p_id
                    AND x.expires_at IS NOT NULL AND x.expires_at <= p_now
                    AND x.status IN ('queued', 'sent', 'notnow')),
           n.command_seq, n.status, n.uuid, n.request_type, n.plist
      INTO v_seq, v_current, v_type, v_due, v_next, v_next_status, r_uuid, r_request_type,
           r_plist
      FROM targets t JOIN commands c ON c.seq = t.command_seq
      LEFT JOIN LATERAL (
            SELECT nt.command_seq, nt.status, nc.uuid, nc.request_type, nc.plist
              FROM targets nt JOIN commands nc ON nc.seq = nt.command_seq
             WHERE nt.enrollment_id = p_id AND nt.command_seq = least(
                (SELECT min(command_seq) FROM targets WHERE enrollment_id = p_id
                    AND status = 'queued' AND command_seq <> t.command_seq),
                (SELECT min(command_seq) FROM targets WHERE enrollment_id = p_id
                    AND status = 'sent' AND command_seq <> t.command_seq))) AS n ON true
     WHERE c.uuid = p_uuid AND t.enrollment_id = p_id;
    IF NOT FOUND THEN
        r_outcome := 'not_found';
        RETURN;
    END IF;
    IF v_due THEN
        r_outcome := 'slow';
        r_uuid := NULL;
        r_request_type := NULL;
        r_plist := NULL;
        RETURN;
    END IF;
    IF v_current IN ('acknowledged', 'error', 'command_format_error')
       OR (p_status = 'notnow' AND v_current IN ('canceled', 'expired')) THEN
        r_effective := false;
        v_seq := NULL;
    ELSE
        v_detail := v_type || ' ' || p_uuid || ' ' || p_report_name ||
            CASE WHEN v_current IN ('canceled', 'expired')
                 THEN ' (after it was ' || v_current || ')' ELSE '' END;
    END IF;
    IF v_pending THEN
        UPDATE enrollments SET pending_push_apns_id = NULL, pending_push_until = NULL
         WHERE id = p_id AND pending_push_until IS NOT NULL;
    END IF;
    IF v_seq IS NOT NULL OR v_next IS NOT NULL THEN
        -- The WITH's update runs to completion although nothing reads it.
        WITH moved AS (
            UPDATE targets
               SET status = CASE WHEN command_seq = v_seq THEN p_status ELSE 'sent' END,
                   updated_at = p_now,
                   result = CASE WHEN command_seq = v_seq THEN p_report ELSE result END
             WHERE enrollment_id = p_id AND command_seq IN (v_seq, v_next))
        INSERT INTO timeline (enrollment_id, at, kind, detail)
        SELECT p_id, p_now, v.kind, v.detail
          FROM (VALUES (1, 'report', CASE WHEN v_seq IS NOT NULL THEN v_detail END),
                       (2, 'command', CASE WHEN v_next IS NOT NULL THEN
                            r_request_type || ' ' || r_uuid || ' handed over' ||
                            CASE WHEN v_next_status <> 'queued' THEN ' again' ELSE '' END END))
               AS v(o, kind, detail)
         WHERE v.detail IS NOT NULL ORDER BY v.o;
    END IF;
    IF v_next IS NULL THEN
        UPDATE enrollments SET repush_at = NULL, repush_attempts = 0
         WHERE id = p_id AND repush_at IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM targets WHERE enrollment_id = p_id
               AND status IN ('queued', 'sent', 'notnow'));
    END IF;
    r_outcome := 'ok';
END
$fn$;
)sql",
     1},
}};

struct Version {
    int version = 0;
    int works_from = 0;
};

Version read_version(Connection& c) {
    auto rows = c.query("SELECT version, works_from FROM courier_schema WHERE id = 1");
    if (rows.empty()) return {};
    return {static_cast<int>(rows.int64(0, 0)), static_cast<int>(rows.int64(0, 1))};
}

}  // namespace

int latest_schema_version() {
    return static_cast<int>(kMigrations.size());
}

Status migrate(Connection& c) {
    try {
        c.exec(fmt::format("SELECT pg_advisory_lock({})", kMigrationLockKey));
    } catch (const PgError& e) {
        return e.status();
    }
    Status out;
    try {
        c.exec(
            "CREATE TABLE IF NOT EXISTS courier_schema (id integer PRIMARY KEY CHECK (id = 1), "
            "version integer NOT NULL, works_from integer NOT NULL)");
        Version v = read_version(c);
        const int latest = latest_schema_version();
        if (v.version > latest) {
            if (v.works_from > latest) {
                out = invalid(fmt::format(
                    "database schema version {} is more than one release newer than this build "
                    "of Courier understands ({}; it needs {} or later): run a newer Courier",
                    v.version, latest, v.works_from));
            } else {
                spdlog::warn(
                    "database schema version {} is newer than this build's ({}); it keeps this "
                    "release working: upgrade this node soon",
                    v.version, latest);
            }
        }
        for (int at = v.version; out.is_ok() && at < latest; ++at) {
            const Migration& m = kMigrations[static_cast<size_t>(at)];
            c.exec("BEGIN");
            c.exec(m.sql);
            c.query(
                "INSERT INTO courier_schema (id, version, works_from) VALUES (1, $1, $2) "
                "ON CONFLICT (id) DO UPDATE SET version = excluded.version, "
                "works_from = excluded.works_from",
                at + 1, m.works_from);
            c.exec("COMMIT");
            spdlog::info("database schema migrated to version {}", at + 1);
        }
    } catch (const PgError& e) {
        if (c.in_transaction()) (void)c.try_exec("ROLLBACK");
        out = Status(e.status().code(), "schema migration failed: " + e.status().message());
    }
    (void)c.try_exec(fmt::format("SELECT pg_advisory_unlock({})", kMigrationLockKey));
    return out;
}

}  // namespace courier::db::pg
