-- Read model: which version was live in each service × environment, and when — in world
-- time (valid_from/valid_to: when deployments and rollbacks finished, as reported) and in
-- ledger time (recorded_at: when the ledger learned it). A backfilled deployment lands
-- in its place in world time without rewriting what was recorded when.
CREATE TABLE rm_environment_history (
    service       text        NOT NULL,
    environment   text        NOT NULL,
    position      bigint      NOT NULL,
    deployment_id uuid        NOT NULL,
    release_id    uuid        NOT NULL,
    version       text        NOT NULL,
    valid_from    timestamptz NOT NULL,
    valid_to      timestamptz,
    recorded_at   timestamptz NOT NULL,
    cause         text        NOT NULL CHECK (cause IN ('deployment', 'rollback')),
    PRIMARY KEY (service, environment, position)
);
CREATE INDEX rm_environment_history_valid ON rm_environment_history (service, environment, valid_from);
