#include "db/sqlite/migrations.h"

#include <fmt/format.h>

#include <array>

namespace courier::db::sqlite {
namespace {

// migrations[i] takes the schema from version i to version i + 1. Append
// only: a shipped entry is never edited. Times are Unix seconds (INTEGER).
constexpr std::array<const char*, 9> kMigrations = {
    R"sql(
CREATE TABLE enrollments (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    user_id TEXT NOT NULL DEFAULT '',
    type TEXT NOT NULL DEFAULT '',
    udid TEXT NOT NULL DEFAULT '',
    serial_number TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    model_name TEXT NOT NULL DEFAULT '',
    product_name TEXT NOT NULL DEFAULT '',
    os_version TEXT NOT NULL DEFAULT '',
    build_version TEXT NOT NULL DEFAULT '',
    device_name TEXT NOT NULL DEFAULT '',
    imei TEXT NOT NULL DEFAULT '',
    meid TEXT NOT NULL DEFAULT '',
    topic TEXT NOT NULL DEFAULT '',
    push_token BLOB,
    push_magic TEXT,
    unlock_token BLOB,
    bootstrap_token BLOB,
    token_valid INTEGER NOT NULL DEFAULT 0,
    awaiting_configuration INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_seen INTEGER,
    identity_not_after INTEGER,
    repush_at INTEGER,
    repush_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX enrollments_push_token ON enrollments(push_token) WHERE push_token IS NOT NULL;
CREATE INDEX enrollments_repush ON enrollments(repush_at) WHERE repush_at IS NOT NULL;
CREATE INDEX enrollments_serial ON enrollments(serial_number);

CREATE TABLE commands (
    seq INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    request_type TEXT NOT NULL,
    plist BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
);

CREATE TABLE targets (
    enrollment_id TEXT NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    command_seq INTEGER NOT NULL REFERENCES commands(seq) ON DELETE CASCADE,
    status TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    result BLOB,
    PRIMARY KEY (enrollment_id, command_seq)
) WITHOUT ROWID;
-- The hot path: the next command for an enrollment.
CREATE INDEX targets_queue ON targets(enrollment_id, status, command_seq);
CREATE INDEX targets_command ON targets(command_seq);
CREATE INDEX targets_status ON targets(status);

CREATE TABLE cert_bindings (
    cert_sha256 TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    bound_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX cert_bindings_device ON cert_bindings(device_id);

CREATE TABLE push_certs (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    cert_pem TEXT NOT NULL,
    key_pem TEXT NOT NULL,
    thumbprint_sha1 TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    uploaded_at INTEGER NOT NULL,
    replaced_at INTEGER,
    active INTEGER NOT NULL,
    usable INTEGER NOT NULL DEFAULT 1,
    unusable_reason TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX push_certs_active_topic ON push_certs(topic) WHERE active = 1;

CREATE TABLE push_attempts (
    id INTEGER PRIMARY KEY,
    enrollment_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    http_status INTEGER NOT NULL,
    apns_id TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX push_attempts_enrollment ON push_attempts(enrollment_id, id);

CREATE TABLE timeline (
    id INTEGER PRIMARY KEY,
    enrollment_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX timeline_enrollment ON timeline(enrollment_id, at, id);

CREATE TABLE enrollment_tokens (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    uses_left INTEGER NOT NULL,
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
)sql",
    // 2: each target carries its command's expiry, so finding an
    // enrollment's expired open targets is one probe of a small partial
    // index instead of a join over its whole open queue.
    R"sql(
ALTER TABLE targets ADD COLUMN expires_at INTEGER;
UPDATE targets SET expires_at = (SELECT c.expires_at FROM commands c WHERE c.seq = targets.command_seq)
 WHERE command_seq IN (SELECT seq FROM commands WHERE expires_at IS NOT NULL);
CREATE INDEX targets_expiring ON targets(enrollment_id, expires_at)
 WHERE expires_at IS NOT NULL AND status IN ('queued', 'sent', 'notnow');
)sql",
    // 3: no index on status alone. No lookup used it (the queue is found
    // through targets_queue, a command's targets through targets_command),
    // yet every status change moved an entry between two distant parts of
    // it: two more pages written per hand-over and per report. Counting the
    // open queue (a metric) scans targets_queue instead.
    R"sql(
DROP INDEX IF EXISTS targets_status;
)sql",
    // 4: device facts are kept to 1 KiB each; the flag says one was cut
    // (docs/security.md "Input limits"). User channels of a device are counted (at most
    // 1,000) through a partial index holding user channels only.
    R"sql(
ALTER TABLE enrollments ADD COLUMN facts_truncated INTEGER NOT NULL DEFAULT 0;
CREATE INDEX enrollments_user_channels ON enrollments(device_id) WHERE user_id <> '';
)sql",
    // 5: re-binding (docs/security.md "Re-binding"). A binding has a state; superseded
    // and revoked rows are kept so their certificate never binds again.
    // Rows from before are all active: which of several was the real
    // device's is unknown, and the next binding supersedes them all.
    // issued_identities: identities a token-gated /enroll issued, with the
    // token's id. Only adds.
    R"sql(
ALTER TABLE cert_bindings ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
ALTER TABLE cert_bindings ADD COLUMN not_after INTEGER;
ALTER TABLE cert_bindings ADD COLUMN superseded_at INTEGER;
ALTER TABLE cert_bindings ADD COLUMN last_used INTEGER;
ALTER TABLE cert_bindings ADD COLUMN alarm_at INTEGER;
CREATE TABLE issued_identities (
    cert_sha256 TEXT PRIMARY KEY,
    token_id TEXT NOT NULL,
    issued_at INTEGER NOT NULL
) WITHOUT ROWID;
)sql",
    // 6: the pending push (docs/apns.md "Pending push"): the apns-id of a push APNs
    // accepted and until when it stands for the device's next wake-up. On
    // the enrollment row, so every node shares it; additive.
    R"sql(
ALTER TABLE enrollments ADD COLUMN pending_push_apns_id TEXT;
ALTER TABLE enrollments ADD COLUMN pending_push_until INTEGER;
)sql",
    // 7: webhooks (SPEC "Webhooks"): destinations, the outbox of events
    // (written in their cause's transaction), one delivery per destination
    // and event (claimed with a lease), the keys of once-only events, and
    // each enrollment's TokenUpdate tally since its last Authenticate.
    // A delivery behind an earlier one of its destination and enrollment
    // is 'waiting' (not in the due index) until that one is done, so a
    // claim reads only the heads of each enrollment's line. Only adds.
    R"sql(
ALTER TABLE enrollments ADD COLUMN token_update_tally INTEGER NOT NULL DEFAULT 0;
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    topics TEXT NOT NULL,
    hmac_key TEXT NOT NULL DEFAULT '',
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE webhook_events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    enrollment_id TEXT NOT NULL DEFAULT '',
    body BLOB NOT NULL,
    tally INTEGER,
    created_at INTEGER NOT NULL
);
CREATE TABLE webhook_deliveries (
    webhook_id TEXT NOT NULL,
    event_seq INTEGER NOT NULL,
    enrollment_id TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    ordered INTEGER NOT NULL DEFAULT 1,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    deadline INTEGER NOT NULL,
    last_status INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    lease TEXT,
    lease_until INTEGER,
    PRIMARY KEY (webhook_id, event_seq)
) WITHOUT ROWID;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_line ON webhook_deliveries(webhook_id, enrollment_id, status,
 event_seq);
CREATE INDEX webhook_deliveries_status ON webhook_deliveries(webhook_id, status, event_seq);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries(event_seq);
CREATE TABLE webhook_once (
    key TEXT PRIMARY KEY,
    at INTEGER NOT NULL
) WITHOUT ROWID;
)sql",
    // 8: the web console (SPEC "Web console"): sign-in sessions, stored as
    // the SHA-256 of their id so that any node serves them; the private keys
    // of CSRs the server made, kept until Apple's certificate completes them.
    // Only adds.
    R"sql(
CREATE TABLE console_sessions (
    id_sha256 TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX console_sessions_expiry ON console_sessions(expires_at);
CREATE TABLE pending_push_keys (
    id INTEGER PRIMARY KEY,
    key_pem TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX push_attempts_at ON push_attempts(at);
)sql",
    // 9: fewer index writes per webhook event. webhook_deliveries_line holds
    // only the deliveries still in an enrollment's line (pending or waiting,
    // ordered), webhook_deliveries_backlog only the undelivered ones: a few
    // hot pages instead of a random page of a large index per event, at its
    // append and again at its delivery. webhook_deliveries_status (used by
    // the backlog count only) and webhook_deliveries_event (pruning, which
    // now looks deliveries up by primary key) go. Queries name the partial
    // indexes' conditions as written here.
    R"sql(
DROP INDEX webhook_deliveries_line;
DROP INDEX webhook_deliveries_status;
DROP INDEX webhook_deliveries_event;
CREATE INDEX webhook_deliveries_line ON webhook_deliveries(webhook_id, enrollment_id, event_seq)
    WHERE status IN ('pending', 'waiting') AND ordered = 1;
CREATE INDEX webhook_deliveries_backlog ON webhook_deliveries(webhook_id)
    WHERE status IN ('pending', 'waiting');
)sql",
};

int user_version(Connection& conn) {
    auto st = conn.prepare("PRAGMA user_version");
    return st.step() ? static_cast<int>(st.int64(0)) : 0;
}

}  // namespace

int latest_schema_version() {
    return static_cast<int>(kMigrations.size());
}

Status migrate(Connection& conn) {
    try {
        int version = user_version(conn);
        if (version > latest_schema_version()) {
            return invalid(fmt::format(
                "database schema version {} is newer than this build of Courier understands "
                "({}); run a newer Courier or restore a backup",
                version, latest_schema_version()));
        }
        for (int v = version; v < latest_schema_version(); ++v) {
            conn.exec("BEGIN IMMEDIATE");
            // Re-read under the write lock: another process may have migrated.
            if (user_version(conn) != v) {
                conn.exec("ROLLBACK");
                return migrate(conn);
            }
            Status s = conn.try_exec(kMigrations[static_cast<size_t>(v)]);
            if (s) s = conn.try_exec(fmt::format("PRAGMA user_version = {}", v + 1));
            if (!s) {
                (void)conn.try_exec("ROLLBACK");
                return Status(s.code(), fmt::format("schema migration to version {} failed: {}",
                                                    v + 1, s.message()));
            }
            conn.exec("COMMIT");
        }
        return Status::ok();
    } catch (const SqlError& e) {
        if (conn.in_transaction()) (void)conn.try_exec("ROLLBACK");
        return e.status();
    }
}

}  // namespace courier::db::sqlite
