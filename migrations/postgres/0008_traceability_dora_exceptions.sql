-- Read model: the traceability graph. Nodes are requirements, commits, releases, gates,
-- test cases, approvals, deployments, environments and incidents; edges join them in the
-- direction "depends on" (a commit implements a requirement, a release contains a
-- commit, a deployment deploys a release, ...). Queries walk it both ways.
CREATE TABLE rm_trace_nodes (
    kind          text   NOT NULL,
    id            text   NOT NULL,
    attrs         jsonb  NOT NULL DEFAULT '{}',
    last_position bigint NOT NULL,
    PRIMARY KEY (kind, id)
);

CREATE TABLE rm_trace_edges (
    from_kind text   NOT NULL,
    from_id   text   NOT NULL,
    relation  text   NOT NULL,
    to_kind   text   NOT NULL,
    to_id     text   NOT NULL,
    position  bigint NOT NULL,
    PRIMARY KEY (from_kind, from_id, relation, to_kind, to_id)
);
CREATE INDEX rm_trace_edges_to ON rm_trace_edges (to_kind, to_id, relation);

-- Read model: DORA facts. One row per deployment with its domain times and what became
-- of it; the commits of each release with their commit times; incidents with their
-- declared deployment; environment tiers as policies define them. Attribution of
-- incidents without a declared deployment and every aggregate are computed at query time,
-- so a backfilled deployment changes them the moment it is recorded.
CREATE TABLE rm_dora_deployments (
    deployment_id      uuid        PRIMARY KEY,
    service            text        NOT NULL,
    environment        text        NOT NULL,
    production         boolean     NOT NULL,
    release_id         uuid        NOT NULL,
    version            text        NOT NULL,
    strategy           text        NOT NULL,
    started_at         timestamptz NOT NULL,
    completed_at       timestamptz,
    finished_at        timestamptz,
    status             text        NOT NULL CHECK (status IN ('in_progress', 'succeeded', 'failed', 'rolled_back')),
    failed_at          timestamptz,
    restored_at        timestamptz,
    remediates_incident uuid,
    planned            boolean     NOT NULL,
    recorded_at        timestamptz NOT NULL,
    last_position      bigint      NOT NULL
);
CREATE INDEX rm_dora_deployments_finished ON rm_dora_deployments (production, service, finished_at);
CREATE INDEX rm_dora_deployments_completed ON rm_dora_deployments (production, service, environment, completed_at);
CREATE INDEX rm_dora_deployments_release ON rm_dora_deployments (release_id);

CREATE TABLE rm_dora_release_commits (
    release_id   uuid        NOT NULL,
    sha          text        NOT NULL,
    service      text        NOT NULL,
    committed_at timestamptz NOT NULL,
    PRIMARY KEY (release_id, sha)
);
CREATE INDEX rm_dora_release_commits_sha ON rm_dora_release_commits (service, sha);

CREATE TABLE rm_dora_incidents (
    incident_id   uuid        PRIMARY KEY,
    service       text        NOT NULL,
    environment   text        NOT NULL,
    production    boolean     NOT NULL,
    severity      text        NOT NULL,
    opened_at     timestamptz NOT NULL,
    resolved_at   timestamptz,
    deployment_id uuid,
    last_position bigint      NOT NULL
);
CREATE INDEX rm_dora_incidents_service ON rm_dora_incidents (production, service, opened_at);

CREATE TABLE rm_dora_environment_tiers (
    environment text   PRIMARY KEY,
    tier        text   NOT NULL,
    position    bigint NOT NULL
);

-- Read model: exceptions — production changes that left the regular path (bypassed
-- gates, the hotfix lane), approvals the ledger refused, and hotfixes whose retroactive
-- approvals are due; whether one is overdue depends on the clock, so it is decided when
-- the report is read.
CREATE TABLE rm_exceptions (
    position      bigint      NOT NULL,
    kind          text        NOT NULL,
    service       text        NOT NULL,
    environment   text,
    release_id    uuid,
    deployment_id uuid,
    actor         text,
    at            timestamptz NOT NULL,
    detail        jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (position, kind)
);
CREATE INDEX rm_exceptions_kind ON rm_exceptions (kind, at);

CREATE TABLE rm_exception_hotfixes (
    deployment_id       uuid        PRIMARY KEY,
    release_id          uuid        NOT NULL,
    service             text        NOT NULL,
    environment         text        NOT NULL,
    started_at          timestamptz NOT NULL,
    due                 timestamptz NOT NULL,
    approvals_required  integer     NOT NULL,
    approvers           jsonb       NOT NULL DEFAULT '[]',
    completed_at        timestamptz,
    last_position       bigint      NOT NULL
);
CREATE INDEX rm_exception_hotfixes_release ON rm_exception_hotfixes (release_id, environment);

CREATE TABLE rm_exception_policies (
    environment        text    PRIMARY KEY,
    approvals_required integer NOT NULL
);

-- Releases and their services, as the exceptions projection needs them.
CREATE TABLE rm_exception_releases (
    release_id uuid PRIMARY KEY,
    service    text NOT NULL
);
