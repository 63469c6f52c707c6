-- Read model: the audit index, one row per ledger entry, for filtering the audit trail by
-- time, actor, aggregate and event type with keyset pagination on position.
CREATE TABLE rm_audit_index (
    position       bigint      PRIMARY KEY,
    recorded_at    timestamptz NOT NULL,
    actor          text,
    command        text,
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    event_type     text        NOT NULL
);
CREATE INDEX rm_audit_index_actor ON rm_audit_index (actor, position);
CREATE INDEX rm_audit_index_time ON rm_audit_index (recorded_at, position);
CREATE INDEX rm_audit_index_aggregate ON rm_audit_index (aggregate_type, aggregate_id, position);

-- A projection that cannot apply an entry stops there and says why.
ALTER TABLE projection_checkpoints ADD COLUMN failed_at_position bigint;
ALTER TABLE projection_checkpoints ADD COLUMN failure text;
