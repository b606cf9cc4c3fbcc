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
constexpr std::array<Migration, 2> kMigrations = {{
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
