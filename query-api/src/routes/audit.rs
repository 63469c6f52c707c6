//! The audit trail (auditors and admins): entries filtered by time, actor, aggregate and
//! event type, in pages by position; signed exports; the latest checkpoint and the
//! ledger's public key.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use release_pilot_domain::roles::Role;
use release_pilot_http::auth::allow;
use release_pilot_http::error::ApiError;
use release_pilot_ledger::export::{self, ExportLine, PlanProblem};
use release_pilot_ledger::on;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::params::{check_window, csv_field, limit, Params, Time};
use crate::state::QueryState;

/// Who may read the audit trail.
const AUDITORS: &[Role] = &[Role::Auditor, Role::Admin];

/// Routes under `/v1/audit` and `/v1/ledger`.
pub fn router() -> Router<QueryState> {
    Router::new()
        .route("/v1/audit", get(list))
        .route("/v1/audit/export", get(export_period))
        .route_layer(allow(AUDITORS))
        .route("/v1/ledger/checkpoint", get(checkpoint))
        .route("/v1/ledger/public-key", get(public_key))
}

/// One audit trail entry.
#[derive(Debug, sqlx::FromRow, serde::Serialize)]
struct AuditRow {
    position: i64,
    recorded_at: DateTime<Utc>,
    actor: Option<String>,
    command: Option<String>,
    aggregate_type: String,
    aggregate_id: String,
    event_type: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    /// Only entries after this position (the previous page's `next`).
    after: Option<i64>,
    /// Page size (1–1000, default 100).
    limit: Option<i64>,
    /// Only this actor.
    actor: Option<String>,
    /// Recorded at or after.
    #[param(value_type = Option<String>)]
    from: Option<Time>,
    /// Recorded before.
    #[param(value_type = Option<String>)]
    to: Option<Time>,
    /// Only this aggregate type (release, environment, incident, policy, requirement).
    aggregate_type: Option<String>,
    /// Only this aggregate.
    aggregate_id: Option<String>,
    /// Only this event type.
    event_type: Option<String>,
}

#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditParams),
    summary = "Audit trail entries by position, filtered (auditor or admin).",
    responses((status = 200, description = "a page of entries", body = Object), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<QueryState>,
    Params(p): Params<AuditParams>,
) -> Result<Json<Value>, ApiError> {
    check_window(p.from, p.to)?;
    let limit = limit(p.limit)?;
    if p.after.is_some_and(|a| a < 0) {
        return Err(ApiError::bad_request(
            "invalid_cursor",
            "after must be a position, 0 or more",
        ));
    }
    let rows: Vec<AuditRow> = on!(&state.db, |pool| {
        sqlx::query_as(
        "SELECT position, recorded_at, actor, command, aggregate_type, aggregate_id, event_type \
             FROM rm_audit_index WHERE position > $1 \
               AND ($2 IS NULL OR actor = $2) \
               AND ($3 IS NULL OR recorded_at >= $3) AND ($4 IS NULL OR recorded_at < $4) \
               AND ($5 IS NULL OR aggregate_type = $5) AND ($6 IS NULL OR aggregate_id = $6) \
               AND ($7 IS NULL OR event_type = $7) \
             ORDER BY position LIMIT $8",
    )
    .bind(p.after.unwrap_or(0))
    .bind(&p.actor)
    .bind(p.from.map(|t| t.0))
    .bind(p.to.map(|t| t.0))
    .bind(&p.aggregate_type)
    .bind(&p.aggregate_id)
    .bind(&p.event_type)
    .bind(limit)
    .fetch_all(pool)
    .await
    })?;
    let next = (i64::try_from(rows.len()).unwrap_or(0) == limit)
        .then(|| rows.last().map(|r| r.position))
        .flatten();
    Ok(Json(json!({"items": rows, "next": next})))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportParams {
    /// Entries recorded at or after (default: the beginning).
    #[param(value_type = Option<String>)]
    from: Option<Time>,
    /// Entries recorded before (default: now).
    #[param(value_type = Option<String>)]
    to: Option<Time>,
    /// `jsonl` (default; verifiable with `release-pilot verify FILE`) or `csv` (the
    /// manifest is in the `Release-Pilot-Manifest` header).
    format: Option<String>,
}

/// CSV columns of an export.
const CSV_HEADER: &str = "position,recorded_at,aggregate_type,aggregate_id,sequence,event_type,event_version,actor,payload,metadata,hash\n";

fn csv_chunk(jsonl: &str) -> String {
    let mut out = String::new();
    for line in jsonl.lines() {
        let Ok(ExportLine { entry, hash }) = serde_json::from_str::<ExportLine>(line) else {
            continue;
        };
        let actor = entry.metadata["actor"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            entry.position,
            entry.recorded_at,
            csv_field(&entry.aggregate_type),
            csv_field(&entry.aggregate_id),
            entry.sequence,
            csv_field(&entry.event_type),
            csv_field(&entry.event_version),
            csv_field(&actor),
            csv_field(&entry.payload.to_string()),
            csv_field(&entry.metadata.to_string()),
            hash
        ));
    }
    out
}

#[utoipa::path(get, path = "/v1/audit/export", tag = "audit", params(ExportParams),
    summary = "A signed export of a period as JSON Lines (manifest first) or CSV, streamed (auditor or admin).",
    responses((status = 200, description = "the export", content_type = "application/x-ndjson"), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn export_period(
    State(state): State<QueryState>,
    Params(p): Params<ExportParams>,
) -> Result<Response, ApiError> {
    check_window(p.from, p.to)?;
    let csv = match p.format.as_deref() {
        None | Some("jsonl") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_format",
                format!("format {other:?} is not jsonl or csv"),
            ))
        }
    };
    let manifest = match export::plan(&state.db, p.from.map(|t| t.0), p.to.map(|t| t.0)).await? {
        Ok(manifest) => manifest,
        Err(PlanProblem::Empty) => {
            return Err(ApiError::not_found(
                "nothing_to_export",
                "no ledger entry was recorded in that period",
            ))
        }
        Err(PlanProblem::NotYetSigned { position }) => {
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "checkpoint_pending",
                format!("position {position} is not covered by a signed checkpoint yet; the sealer signs one within its checkpoint interval, retry shortly"),
            ))
        }
    };
    let manifest_line = serde_json::to_string(&export::ManifestLine {
        manifest: manifest.clone(),
    })
    .map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            e.to_string(),
        )
    })?;
    let lines = export::lines(state.db.clone(), &manifest, 2000);
    let body = if csv {
        let head = futures::stream::once(async {
            Ok::<String, release_pilot_ledger::LedgerError>(CSV_HEADER.to_owned())
        });
        Body::from_stream(head.chain(lines.map(|chunk| chunk.map(|c| csv_chunk(&c)))))
    } else {
        let first = format!("{manifest_line}\n");
        let head =
            futures::stream::once(
                async move { Ok::<String, release_pilot_ledger::LedgerError>(first) },
            );
        Body::from_stream(head.chain(lines))
    };
    let (content_type, extension) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson", "jsonl")
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"audit-{}-{}.{extension}\"",
                    manifest.first_position, manifest.last_position
                ),
            ),
        ],
        body,
    )
        .into_response();
    if csv {
        if let Ok(value) = axum::http::HeaderValue::from_str(&manifest_line) {
            response
                .headers_mut()
                .insert("release-pilot-manifest", value);
        }
    }
    Ok(response)
}

#[utoipa::path(get, path = "/v1/ledger/checkpoint", tag = "ledger",
    summary = "The latest signed checkpoint.",
    responses((status = 200, description = "the checkpoint", body = Object), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn checkpoint(State(state): State<QueryState>) -> Result<Json<Value>, ApiError> {
    let checkpoints = release_pilot_ledger::verify::checkpoints(&state.db).await?;
    let latest = checkpoints.last().ok_or_else(|| {
        ApiError::not_found(
            "no_checkpoint",
            "the sealer has not signed a checkpoint yet",
        )
    })?;
    let head = release_pilot_ledger::db::head(&state.db).await?.0;
    Ok(Json(json!({
        "checkpoint": export::ExportedCheckpoint::from(latest),
        "ledger_head": head,
    })))
}

#[utoipa::path(get, path = "/v1/ledger/public-key", tag = "ledger",
    summary = "The ledger's Ed25519 public key (SPKI PEM), to verify checkpoints and exports.",
    responses((status = 200, description = "the key", content_type = "application/x-pem-file"), crate::openapi::ReadProblems),
    security(("bearer" = [])))]
pub(crate) async fn public_key(State(state): State<QueryState>) -> Result<Response, ApiError> {
    let key = state.config.public_key.ok_or_else(|| {
        ApiError::not_found(
            "public_key_not_configured",
            "this query API was started without the ledger's key (RELEASE_PILOT_SIGNING_KEY or --public-key)",
        )
    })?;
    let pem = release_pilot_ledger::signing::public_pem(&key)?;
    let mut response = ([(header::CONTENT_TYPE, "application/x-pem-file")], pem).into_response();
    if let Ok(value) =
        axum::http::HeaderValue::from_str(&release_pilot_ledger::signing::key_id(&key))
    {
        response.headers_mut().insert("release-pilot-key-id", value);
    }
    Ok(response)
}
