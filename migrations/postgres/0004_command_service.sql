-- API tokens: a subject and roles per token; only the SHA-256 of the token is stored.
CREATE TABLE api_tokens (
    id         uuid        PRIMARY KEY,
    subject    text        NOT NULL,
    roles      text[]      NOT NULL,
    token_hash bytea       NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    revoked_at timestamptz
);

-- Lookups the command service makes in the event store itself, so they can never
-- disagree with it: the environment stream of a deployment, a service's releases.
CREATE INDEX events_deployment_lookup
    ON events (((payload -> 'DeploymentStarted') ->> 'deployment_id'))
    WHERE event_type = 'DeploymentStarted';

-- One release per (service, version): a second ReleaseCreated for the same pair fails
-- its commit.
CREATE UNIQUE INDEX events_release_version
    ON events (((payload -> 'ReleaseCreated') ->> 'service'), ((payload -> 'ReleaseCreated') ->> 'version'))
    WHERE event_type = 'ReleaseCreated';

-- Idempotency rows start as pending claims and are completed with the first answer.
ALTER TABLE idempotency_keys ALTER COLUMN status DROP NOT NULL;
ALTER TABLE idempotency_keys ALTER COLUMN response DROP NOT NULL;
