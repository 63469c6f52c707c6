-- The ledger: one row per sealed event, positions 1, 2, 3, … with no gaps, each with
-- hash_n = SHA-256(hash_{n-1} || JCS(entry_n)). The entry itself is never copied here:
-- verification recomputes it from the event row, so altering an event breaks the chain.
CREATE TABLE ledger (
    position        bigint      PRIMARY KEY CHECK (position >= 1),
    global_position bigint      NOT NULL UNIQUE REFERENCES events (global_position),
    hash            bytea       NOT NULL CHECK (octet_length(hash) = 32),
    sealed_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Signed checkpoints: Ed25519 over the canonical JSON of (position, hash, signed_at).
CREATE TABLE ledger_checkpoints (
    position  bigint      PRIMARY KEY REFERENCES ledger (position),
    hash      bytea       NOT NULL CHECK (octet_length(hash) = 32),
    signed_at timestamptz NOT NULL,
    key_id    text        NOT NULL,
    signature bytea       NOT NULL CHECK (octet_length(signature) = 64)
);

-- How far each relay has published the ledger.
CREATE TABLE relay_checkpoints (
    relay      text        PRIMARY KEY,
    position   bigint      NOT NULL CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- How far each projection has applied the ledger; written in the same transaction as
-- the projection's read-model changes.
CREATE TABLE projection_checkpoints (
    projection text        PRIMARY KEY,
    position   bigint      NOT NULL CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Idempotency: the first answer to a command, per caller and key.
CREATE TABLE idempotency_keys (
    subject      text        NOT NULL,
    key          text        NOT NULL,
    request_hash bytea       NOT NULL,
    status       smallint    NOT NULL,
    response     json        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (subject, key)
);
