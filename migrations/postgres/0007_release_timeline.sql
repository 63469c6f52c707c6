-- Read model: every release event in order — the release's timeline — with who did it
-- and the event's essentials, and one row per release with its current state.
CREATE TABLE rm_release_timeline (
    release_id  uuid        NOT NULL,
    position    bigint      NOT NULL,
    recorded_at timestamptz NOT NULL,
    event_type  text        NOT NULL,
    actor       text,
    detail      jsonb       NOT NULL,
    PRIMARY KEY (release_id, position)
);

CREATE TABLE rm_releases (
    release_id     uuid        PRIMARY KEY,
    service        text        NOT NULL,
    version        text        NOT NULL,
    created_at     timestamptz NOT NULL,
    created_by     text        NOT NULL,
    gates          jsonb       NOT NULL DEFAULT '{}',
    approvals      jsonb       NOT NULL DEFAULT '{}',
    withdrawn      boolean     NOT NULL DEFAULT false,
    last_position  bigint      NOT NULL
);
CREATE INDEX rm_releases_service ON rm_releases (service, created_at);
