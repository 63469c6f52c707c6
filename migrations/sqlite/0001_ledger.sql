-- The embedded backend's ledger: the same tables as migrations/postgres/0001-0004, in
-- SQLite's terms. SQLite has one writer at a time, so rows become visible in the order
-- their global_position was assigned and the sealer needs no transaction ids:
--   global_position: AUTOINCREMENT, never reused, assigned in commit order;
--   recorded_at:     the database's clock when the row was written (UTC, RFC 3339);
--   uuids are 16-byte BLOBs, timestamps RFC 3339 TEXT in UTC, JSON is TEXT.
CREATE TABLE events (
    global_position INTEGER PRIMARY KEY AUTOINCREMENT,
    aggregate_type  TEXT    NOT NULL,
    aggregate_id    TEXT    NOT NULL,
    sequence        INTEGER NOT NULL CHECK (sequence >= 1),
    event_type      TEXT    NOT NULL,
    event_version   TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    metadata        TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    UNIQUE (aggregate_type, aggregate_id, sequence)
);

-- Lookups the command service makes in the event store itself.
CREATE INDEX events_deployment_lookup
    ON events ((payload -> 'DeploymentStarted') ->> 'deployment_id')
    WHERE event_type = 'DeploymentStarted';

-- One release per (service, version): a second ReleaseCreated for the same pair fails.
CREATE UNIQUE INDEX events_release_version
    ON events ((payload -> 'ReleaseCreated') ->> 'service', (payload -> 'ReleaseCreated') ->> 'version')
    WHERE event_type = 'ReleaseCreated';

-- Aggregate snapshots (sqlite-es); a cache, so it may be updated.
CREATE TABLE snapshots (
    aggregate_type   TEXT    NOT NULL,
    aggregate_id     TEXT    NOT NULL,
    last_sequence    INTEGER NOT NULL CHECK (last_sequence >= 0),
    current_snapshot INTEGER NOT NULL CHECK (current_snapshot >= 0),
    payload          TEXT    NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

-- The ledger: positions 1, 2, 3, ... with hash_n = SHA-256(hash_{n-1} || JCS(entry_n)).
CREATE TABLE ledger (
    position        INTEGER PRIMARY KEY CHECK (position >= 1),
    global_position INTEGER NOT NULL UNIQUE REFERENCES events (global_position),
    hash            BLOB    NOT NULL CHECK (length(hash) = 32),
    sealed_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);

CREATE TABLE ledger_checkpoints (
    position  INTEGER PRIMARY KEY REFERENCES ledger (position),
    hash      BLOB    NOT NULL CHECK (length(hash) = 32),
    signed_at TEXT    NOT NULL,
    key_id    TEXT    NOT NULL,
    signature BLOB    NOT NULL CHECK (length(signature) = 64)
);

CREATE TABLE relay_checkpoints (
    relay      TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL CHECK (position >= 0),
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
);

CREATE TABLE projection_checkpoints (
    projection         TEXT    PRIMARY KEY,
    position           INTEGER NOT NULL CHECK (position >= 0),
    updated_at         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    failed_at_position INTEGER,
    failure            TEXT
);

CREATE TABLE idempotency_keys (
    subject      TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash BLOB    NOT NULL,
    status       INTEGER,
    response     TEXT,
    created_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    PRIMARY KEY (subject, key)
);

-- API tokens; roles is a JSON array of role names.
CREATE TABLE api_tokens (
    id         BLOB    PRIMARY KEY,
    subject    TEXT    NOT NULL,
    roles      TEXT    NOT NULL,
    token_hash BLOB    NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')),
    revoked_at TEXT
);

-- Write transactions that read before they write take SQLite's one write lock first by
-- writing here (a statement that changes nothing), so they never fail to upgrade a read.
CREATE TABLE write_lock (held INTEGER);

-- Append-only: committed events, ledger entries and checkpoints are never updated or
-- deleted. Only someone who drops these triggers can alter them, and
-- `release-pilot verify` then names the altered position.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'release pilot: events is append-only; UPDATE refused'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'release pilot: events is append-only; DELETE refused'); END;
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'release pilot: ledger is append-only; UPDATE refused'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'release pilot: ledger is append-only; DELETE refused'); END;
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON ledger_checkpoints
BEGIN SELECT RAISE(ABORT, 'release pilot: ledger_checkpoints is append-only; UPDATE refused'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON ledger_checkpoints
BEGIN SELECT RAISE(ABORT, 'release pilot: ledger_checkpoints is append-only; DELETE refused'); END;
