//! Traceability: from a requirement or a deployment, both directions; the matrix as JSON
//! or CSV; coverage and orphan commits.

use release_pilot_ledger::db::Db;
use release_pilot_ledger::on;
use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use release_pilot_http::error::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::params::{csv_field, uuid_or_404, Params};
use crate::state::QueryState;

/// Routes under `/v1/trace`.
pub fn router() -> Router<QueryState> {
    Router::new()
        .route("/v1/trace/requirements/{id}", get(requirement))
        .route("/v1/trace/deployments/{id}", get(deployment))
        .route("/v1/trace/matrix", get(matrix))
        .route("/v1/trace/coverage", get(coverage))
}

/// Nodes joined to `(kind, id)` by `relation`: those pointing at it (`incoming`) or
/// those it points at.
async fn neighbours(
    state: &QueryState,
    kind: &str,
    id: &str,
    relation: &str,
    incoming: bool,
) -> Result<Vec<(String, Value)>, ApiError> {
    let sql = if incoming {
        "SELECT n.id, n.attrs FROM rm_trace_edges e JOIN rm_trace_nodes n ON n.kind = e.from_kind AND n.id = e.from_id \
         WHERE e.to_kind = $1 AND e.to_id = $2 AND e.relation = $3 ORDER BY e.position"
    } else {
        "SELECT n.id, n.attrs FROM rm_trace_edges e JOIN rm_trace_nodes n ON n.kind = e.to_kind AND n.id = e.to_id \
         WHERE e.from_kind = $1 AND e.from_id = $2 AND e.relation = $3 ORDER BY e.position"
    };
    Ok(on!(&state.db, |pool| sqlx::query_as(sql)
        .bind(kind)
        .bind(id)
        .bind(relation)
        .fetch_all(pool)
        .await)?)
}

/// Pointed-at nodes whose ids may not have a node row (a requirement never registered).
async fn targets(
    state: &QueryState,
    kind: &str,
    id: &str,
    relation: &str,
) -> Result<Vec<(String, Option<Value>)>, ApiError> {
    Ok(on!(&state.db, |pool| sqlx::query_as(
        "SELECT e.to_id, n.attrs FROM rm_trace_edges e \
         LEFT JOIN rm_trace_nodes n ON n.kind = e.to_kind AND n.id = e.to_id \
         WHERE e.from_kind = $1 AND e.from_id = $2 AND e.relation = $3 ORDER BY e.position",
    )
    .bind(kind)
    .bind(id)
    .bind(relation)
    .fetch_all(pool)
    .await)?)
}

async fn node(state: &QueryState, kind: &str, id: &str) -> Result<Option<Value>, ApiError> {
    Ok(on!(&state.db, |pool| sqlx::query_scalar(
        "SELECT attrs FROM rm_trace_nodes WHERE kind = $1 AND id = $2"
    )
    .bind(kind)
    .bind(id)
    .fetch_optional(pool)
    .await)?)
}

fn with_id(id: &str, key: &str, attrs: Value) -> Value {
    let mut value = attrs;
    if let Value::Object(map) = &mut value {
        map.insert(key.to_owned(), json!(id));
    }
    value
}

/// A release with its gates, tests, approvals and deployments (and their incidents).
async fn release_view(state: &QueryState, release: &str) -> Result<Value, ApiError> {
    let attrs = node(state, "release", release).await?.unwrap_or(json!({}));
    let mut gates = Vec::new();
    for (gate_id, gate) in neighbours(state, "release", release, "evaluates", true).await? {
        let tests = neighbours(state, "gate", &gate_id, "part_of", true).await?;
        let mut tests_out = Vec::new();
        for (test_id, test) in tests {
            let verifies: Vec<String> = targets(state, "test", &test_id, "verifies")
                .await?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            let mut t = test;
            t["verifies"] = json!(verifies);
            tests_out.push(t);
        }
        let mut g = gate;
        g["tests"] = json!(tests_out);
        gates.push(g);
    }
    let approvals: Vec<Value> = neighbours(state, "release", release, "approves", true)
        .await?
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    let mut deployments = Vec::new();
    for (deployment_id, d) in neighbours(state, "release", release, "deploys", true).await? {
        deployments.push(deployment_summary(state, &deployment_id, d).await?);
    }
    let mut out = with_id(release, "release_id", attrs);
    out["gates"] = json!(gates);
    out["approvals"] = json!(approvals);
    out["deployments"] = json!(deployments);
    Ok(out)
}

async fn deployment_summary(
    state: &QueryState,
    deployment: &str,
    attrs: Value,
) -> Result<Value, ApiError> {
    let caused: Vec<Value> = neighbours(state, "deployment", deployment, "caused_by", true)
        .await?
        .into_iter()
        .map(|(id, i)| with_id(&id, "incident_id", i))
        .collect();
    let remediates: Vec<Value> = targets(state, "deployment", deployment, "remediates")
        .await?
        .into_iter()
        .map(|(id, i)| with_id(&id, "incident_id", i.unwrap_or(json!({}))))
        .collect();
    let mut out = with_id(deployment, "deployment_id", attrs);
    out["incidents_caused"] = json!(caused);
    out["remediates"] = json!(remediates);
    Ok(out)
}

#[utoipa::path(get, path = "/v1/trace/requirements/{id}", tag = "traceability", params(("id" = String, Path)),
    summary = "From a requirement: the commits implementing it, the tests verifying it, and the releases, gates, approvals, deployments and incidents that followed.",
    responses((status = 200, description = "the graph from the requirement", body = Object), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn requirement(
    State(state): State<QueryState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let attrs = node(&state, "requirement", &id).await?;
    let commits = neighbours(&state, "requirement", &id, "implements", true).await?;
    let tests = neighbours(&state, "requirement", &id, "verifies", true).await?;
    let declaring = neighbours(&state, "requirement", &id, "declares", true).await?;
    if attrs.is_none() && commits.is_empty() && tests.is_empty() && declaring.is_empty() {
        return Err(ApiError::not_found(
            "requirement_not_found",
            format!("no requirement {id:?} is registered or referenced"),
        ));
    }
    // Releases: containing an implementing commit, or declaring the requirement.
    let mut releases: BTreeMap<String, ()> = BTreeMap::new();
    let mut commits_out = Vec::new();
    for (sha, commit) in &commits {
        for (release, _) in neighbours(&state, "commit", sha, "contains", true).await? {
            releases.insert(release, ());
        }
        commits_out.push(with_id(sha, "sha", commit.clone()));
    }
    for (release, _) in &declaring {
        releases.insert(release.clone(), ());
    }
    let tests_out: Vec<Value> = tests
        .into_iter()
        .map(|(test_id, t)| {
            let release = test_id.split('/').next().unwrap_or_default().to_owned();
            let mut t = t;
            t["release_id"] = json!(release);
            t
        })
        .collect();
    let mut releases_out = Vec::new();
    for release in releases.keys() {
        releases_out.push(release_view(&state, release).await?);
    }
    Ok(Json(json!({
        "requirement": with_id(&id, "id", attrs.unwrap_or(json!({"registered": false}))),
        "commits": commits_out,
        "tests": tests_out,
        "releases": releases_out,
    })))
}

#[utoipa::path(get, path = "/v1/trace/deployments/{id}", tag = "traceability", params(("id" = String, Path)),
    summary = "From a deployment: its environment, release, commits and the requirements they implement, gates and tests, approvals, and incidents.",
    responses((status = 200, description = "the graph from the deployment", body = Object), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn deployment(
    State(state): State<QueryState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let uuid = uuid_or_404(&id, "deployment_not_found", "deployment")?;
    let id = uuid.to_string();
    let attrs = node(&state, "deployment", &id).await?.ok_or_else(|| {
        ApiError::not_found("deployment_not_found", format!("no deployment {id}"))
    })?;
    let environment: Vec<String> = targets(&state, "deployment", &id, "targets")
        .await?
        .into_iter()
        .map(|(env, _)| env)
        .collect();
    let mut out = deployment_summary(&state, &id, attrs).await?;
    out["environment"] = json!(environment.first());
    if let Some((release, _)) = targets(&state, "deployment", &id, "deploys").await?.first() {
        let mut release_out = release_view(&state, release).await?;
        let mut commits = Vec::new();
        for (sha, commit) in neighbours(&state, "release", release, "contains", false).await? {
            let requirements: Vec<String> = targets(&state, "commit", &sha, "implements")
                .await?
                .into_iter()
                .map(|(r, _)| r)
                .collect();
            let mut c = with_id(&sha, "sha", commit);
            c["requirements"] = json!(requirements);
            commits.push(c);
        }
        release_out["commits"] = json!(commits);
        release_out["requirements_declared"] =
            json!(targets(&state, "release", release, "declares")
                .await?
                .into_iter()
                .map(|(r, _)| r)
                .collect::<Vec<_>>());
        out["release"] = release_out;
    }
    Ok(Json(out))
}

/// One row of the matrix.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: String,
    title: Option<String>,
    category: Option<String>,
    commits: i64,
    tests_passed: i64,
    tests_failed: i64,
    releases: i64,
    production_versions: Vec<String>,
}

/// The matrix query; `{release_match}` joins a deployment to a release node id and
/// `{versions}` aggregates the distinct production versions (PostgreSQL and SQLite
/// spell both differently).
const MATRIX_SQL: &str = "WITH reqs AS ( \
       SELECT id FROM rm_trace_nodes WHERE kind = 'requirement' \
       UNION SELECT to_id FROM rm_trace_edges WHERE to_kind = 'requirement'), \
     commits AS ( \
       SELECT to_id AS req, from_id AS sha FROM rm_trace_edges WHERE relation = 'implements'), \
     releases AS ( \
       SELECT c.req, e.from_id AS release FROM commits c \
         JOIN rm_trace_edges e ON e.relation = 'contains' AND e.to_kind = 'commit' AND e.to_id = c.sha \
       UNION SELECT to_id, from_id FROM rm_trace_edges WHERE relation = 'declares'), \
     tests AS ( \
       SELECT e.to_id AS req, n.attrs ->> 'status' AS status FROM rm_trace_edges e \
         JOIN rm_trace_nodes n ON n.kind = 'test' AND n.id = e.from_id WHERE e.relation = 'verifies'), \
     prod AS ( \
       SELECT r.req, d.version, d.completed_at FROM releases r \
         JOIN rm_dora_deployments d ON {release_match} \
        WHERE d.production AND d.completed_at IS NOT NULL) \
     SELECT q.id, n.attrs ->> 'title' AS title, n.attrs ->> 'category' AS category, \
       (SELECT count(DISTINCT sha) FROM commits c WHERE c.req = q.id) AS commits, \
       (SELECT count(*) FROM tests t WHERE t.req = q.id AND t.status = 'passed') AS tests_passed, \
       (SELECT count(*) FROM tests t WHERE t.req = q.id AND t.status = 'failed') AS tests_failed, \
       (SELECT count(DISTINCT release) FROM releases r WHERE r.req = q.id) AS releases, \
       {versions} AS production_versions \
     FROM reqs q LEFT JOIN rm_trace_nodes n ON n.kind = 'requirement' AND n.id = q.id ORDER BY q.id";

/// A matrix row as SQLite returns it: the versions as a JSON array.
#[derive(Debug, sqlx::FromRow)]
struct SqliteMatrixRow {
    id: String,
    title: Option<String>,
    category: Option<String>,
    commits: i64,
    tests_passed: i64,
    tests_failed: i64,
    releases: i64,
    production_versions: String,
}

async fn matrix_rows(state: &QueryState) -> Result<Vec<Row>, ApiError> {
    match &state.db {
        Db::Postgres(pool) => {
            let sql = MATRIX_SQL
                .replace("{release_match}", "d.release_id::text = r.release")
                .replace(
                    "{versions}",
                    "coalesce((SELECT array_agg(DISTINCT p.version) FROM prod p WHERE p.req = q.id), '{}')",
                );
            Ok(sqlx::query_as(&sql).fetch_all(pool).await?)
        }
        Db::Sqlite(pool) => {
            let sql = MATRIX_SQL
                .replace(
                    "{release_match}",
                    "lower(hex(d.release_id)) = replace(r.release, '-', '')",
                )
                .replace(
                    "{versions}",
                    "(SELECT json_group_array(DISTINCT p.version) FROM prod p WHERE p.req = q.id)",
                );
            let rows: Vec<SqliteMatrixRow> = sqlx::query_as(&sql).fetch_all(pool).await?;
            Ok(rows
                .into_iter()
                .map(|r| {
                    let mut versions: Vec<String> =
                        serde_json::from_str(&r.production_versions).unwrap_or_default();
                    versions.sort();
                    Row {
                        id: r.id,
                        title: r.title,
                        category: r.category,
                        commits: r.commits,
                        tests_passed: r.tests_passed,
                        tests_failed: r.tests_failed,
                        releases: r.releases,
                        production_versions: versions,
                    }
                })
                .collect())
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatrixParams {
    /// `json` (default) or `csv`.
    format: Option<String>,
}

#[utoipa::path(get, path = "/v1/trace/matrix", tag = "traceability", params(MatrixParams),
    summary = "The traceability matrix: per requirement, commits, tests passed and failed, releases and production versions.",
    responses((status = 200, description = "the matrix as JSON or CSV", body = Object), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn matrix(
    State(state): State<QueryState>,
    Params(p): Params<MatrixParams>,
) -> Result<Response, ApiError> {
    let csv = match p.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_format",
                format!("format {other:?} is not json or csv"),
            ))
        }
    };
    let rows = matrix_rows(&state).await?;
    if csv {
        let mut out = String::from(
            "requirement,title,category,commits,tests_passed,tests_failed,releases,production_versions\n",
        );
        for r in &rows {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                csv_field(&r.id),
                csv_field(r.title.as_deref().unwrap_or_default()),
                csv_field(r.category.as_deref().unwrap_or_default()),
                r.commits,
                r.tests_passed,
                r.tests_failed,
                r.releases,
                csv_field(&r.production_versions.join(" "))
            ));
        }
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response());
    }
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"requirement": r.id, "title": r.title, "category": r.category, "commits": r.commits,
                   "tests_passed": r.tests_passed, "tests_failed": r.tests_failed, "releases": r.releases,
                   "production_versions": r.production_versions})
        })
        .collect();
    Ok(Json(json!({"items": items})).into_response())
}

#[utoipa::path(get, path = "/v1/trace/coverage", tag = "traceability",
    summary = "Coverage gaps: requirements with no commit, no passing test, or never in production; commits that implement no requirement.",
    responses((status = 200, description = "the gaps", body = Object), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn coverage(State(state): State<QueryState>) -> Result<Json<Value>, ApiError> {
    let rows = matrix_rows(&state).await?;
    let ids = |keep: &dyn Fn(&Row) -> bool| -> Vec<&str> {
        rows.iter()
            .filter(|r| keep(r))
            .map(|r| r.id.as_str())
            .collect()
    };
    let orphans: Vec<(String, Value)> = on!(&state.db, |pool| {
        sqlx::query_as(
        "SELECT n.id, n.attrs FROM rm_trace_nodes n WHERE n.kind = 'commit' \
           AND NOT EXISTS (SELECT 1 FROM rm_trace_edges e WHERE e.from_kind = 'commit' AND e.from_id = n.id AND e.relation = 'implements') \
         ORDER BY n.attrs ->> 'committed_at', n.id",
    )
    .fetch_all(pool)
        .await
    })?;
    Ok(Json(json!({
        "requirements": rows.len(),
        "without_commit": ids(&|r| r.commits == 0),
        "without_passing_test": ids(&|r| r.tests_passed == 0),
        "never_in_production": ids(&|r| r.production_versions.is_empty()),
        "orphan_commits": orphans.into_iter().map(|(sha, c)| with_id(&sha, "sha", c)).collect::<Vec<_>>(),
    })))
}
