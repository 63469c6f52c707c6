-- The read models of migrations/postgres/0005-0009 in SQLite's terms (uuids as BLOB,
-- timestamps as RFC 3339 TEXT in UTC, JSON as TEXT, booleans as 0/1).
CREATE TABLE rm_audit_index (
    position       INTEGER PRIMARY KEY,
    recorded_at    TEXT    NOT NULL,
    actor          TEXT,
    command        TEXT,
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    event_type     TEXT    NOT NULL
);
CREATE INDEX rm_audit_index_actor ON rm_audit_index (actor, position);
CREATE INDEX rm_audit_index_time ON rm_audit_index (recorded_at, position);
CREATE INDEX rm_audit_index_aggregate ON rm_audit_index (aggregate_type, aggregate_id, position);

CREATE TABLE rm_environment_history (
    service       TEXT    NOT NULL,
    environment   TEXT    NOT NULL,
    position      INTEGER NOT NULL,
    deployment_id BLOB    NOT NULL,
    release_id    BLOB    NOT NULL,
    version       TEXT    NOT NULL,
    valid_from    TEXT    NOT NULL,
    valid_to      TEXT,
    recorded_at   TEXT    NOT NULL,
    cause         TEXT    NOT NULL CHECK (cause IN ('deployment', 'rollback')),
    actor         TEXT,
    PRIMARY KEY (service, environment, position)
);
CREATE INDEX rm_environment_history_valid ON rm_environment_history (service, environment, valid_from);

CREATE TABLE rm_release_timeline (
    release_id  BLOB    NOT NULL,
    position    INTEGER NOT NULL,
    recorded_at TEXT    NOT NULL,
    event_type  TEXT    NOT NULL,
    actor       TEXT,
    detail      TEXT    NOT NULL,
    PRIMARY KEY (release_id, position)
);

CREATE TABLE rm_releases (
    release_id     BLOB    PRIMARY KEY,
    service        TEXT    NOT NULL,
    version        TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    created_by     TEXT    NOT NULL,
    gates          TEXT    NOT NULL DEFAULT '{}',
    approvals      TEXT    NOT NULL DEFAULT '{}',
    withdrawn      INTEGER NOT NULL DEFAULT 0,
    last_position  INTEGER NOT NULL
);
CREATE INDEX rm_releases_service ON rm_releases (service, created_at);

CREATE TABLE rm_trace_nodes (
    kind          TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    attrs         TEXT    NOT NULL DEFAULT '{}',
    last_position INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);

CREATE TABLE rm_trace_edges (
    from_kind TEXT    NOT NULL,
    from_id   TEXT    NOT NULL,
    relation  TEXT    NOT NULL,
    to_kind   TEXT    NOT NULL,
    to_id     TEXT    NOT NULL,
    position  INTEGER NOT NULL,
    PRIMARY KEY (from_kind, from_id, relation, to_kind, to_id)
);
CREATE INDEX rm_trace_edges_to ON rm_trace_edges (to_kind, to_id, relation);

CREATE TABLE rm_dora_deployments (
    deployment_id       BLOB    PRIMARY KEY,
    service             TEXT    NOT NULL,
    environment         TEXT    NOT NULL,
    production          INTEGER NOT NULL,
    release_id          BLOB    NOT NULL,
    version             TEXT    NOT NULL,
    strategy            TEXT    NOT NULL,
    started_at          TEXT    NOT NULL,
    completed_at        TEXT,
    finished_at         TEXT,
    status              TEXT    NOT NULL CHECK (status IN ('in_progress', 'succeeded', 'failed', 'rolled_back')),
    failed_at           TEXT,
    restored_at         TEXT,
    remediates_incident BLOB,
    planned             INTEGER NOT NULL,
    recorded_at         TEXT    NOT NULL,
    last_position       INTEGER NOT NULL
);
CREATE INDEX rm_dora_deployments_finished ON rm_dora_deployments (production, service, finished_at);
CREATE INDEX rm_dora_deployments_completed ON rm_dora_deployments (production, service, environment, completed_at);
CREATE INDEX rm_dora_deployments_release ON rm_dora_deployments (release_id);

CREATE TABLE rm_dora_release_commits (
    release_id   BLOB NOT NULL,
    sha          TEXT NOT NULL,
    service      TEXT NOT NULL,
    committed_at TEXT NOT NULL,
    PRIMARY KEY (release_id, sha)
);
CREATE INDEX rm_dora_release_commits_sha ON rm_dora_release_commits (service, sha);

CREATE TABLE rm_dora_incidents (
    incident_id   BLOB    PRIMARY KEY,
    service       TEXT    NOT NULL,
    environment   TEXT    NOT NULL,
    production    INTEGER NOT NULL,
    severity      TEXT    NOT NULL,
    opened_at     TEXT    NOT NULL,
    resolved_at   TEXT,
    deployment_id BLOB,
    last_position INTEGER NOT NULL
);
CREATE INDEX rm_dora_incidents_service ON rm_dora_incidents (production, service, opened_at);

CREATE TABLE rm_dora_environment_tiers (
    environment TEXT    PRIMARY KEY,
    tier        TEXT    NOT NULL,
    position    INTEGER NOT NULL
);

CREATE TABLE rm_exceptions (
    position      INTEGER NOT NULL,
    kind          TEXT    NOT NULL,
    service       TEXT    NOT NULL,
    environment   TEXT,
    release_id    BLOB,
    deployment_id BLOB,
    actor         TEXT,
    at            TEXT    NOT NULL,
    detail        TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (position, kind)
);
CREATE INDEX rm_exceptions_kind ON rm_exceptions (kind, at);

CREATE TABLE rm_exception_hotfixes (
    deployment_id       BLOB    PRIMARY KEY,
    release_id          BLOB    NOT NULL,
    service             TEXT    NOT NULL,
    environment         TEXT    NOT NULL,
    started_at          TEXT    NOT NULL,
    due                 TEXT    NOT NULL,
    approvals_required  INTEGER NOT NULL,
    approvers           TEXT    NOT NULL DEFAULT '[]',
    completed_at        TEXT,
    last_position       INTEGER NOT NULL
);
CREATE INDEX rm_exception_hotfixes_release ON rm_exception_hotfixes (release_id, environment);

CREATE TABLE rm_exception_policies (
    environment        TEXT    PRIMARY KEY,
    approvals_required INTEGER NOT NULL
);

CREATE TABLE rm_exception_releases (
    release_id BLOB PRIMARY KEY,
    service    TEXT NOT NULL
);
