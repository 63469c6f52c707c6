-- Events, as postgres-es appends them, plus what the ledger needs to seal them in commit
-- order without skipping a late-committing transaction:
--   global_position: insertion order within a transaction;
--   tx_id:           the inserting transaction's id. The sealer reads only rows whose
--                    transaction id is below the oldest transaction still running, so a
--                    row that becomes visible later always sorts after everything sealed.
--   recorded_at:     the database server's clock when the row was written (UTC); never
--                    supplied by a client.
-- payload and metadata are `json` (not `jsonb`): they keep the exact text written and
-- stream faster, and the hash chain canonicalises them anyway (RFC 8785).
CREATE TABLE events (
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL CHECK (sequence >= 1),
    event_type      text        NOT NULL,
    event_version   text        NOT NULL,
    payload         json        NOT NULL,
    metadata        json        NOT NULL,
    global_position bigserial   NOT NULL UNIQUE,
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

-- The sealer's scan order.
CREATE INDEX events_seal_order ON events (tx_id, global_position);

-- Aggregate snapshots (postgres-es); a cache, so it may be updated.
CREATE TABLE snapshots (
    aggregate_type   text   NOT NULL,
    aggregate_id     text   NOT NULL,
    last_sequence    bigint NOT NULL CHECK (last_sequence >= 0),
    current_snapshot bigint NOT NULL CHECK (current_snapshot >= 0),
    payload          json   NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);
