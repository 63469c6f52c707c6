//! The traceability graph: requirements, commits, releases, gates, test cases, approvals,
//! deployments, environments and incidents as nodes, joined by edges that point from the
//! dependent to what it depends on:
//!
//! | from | relation | to |
//! |---|---|---|
//! | release | `contains` | commit |
//! | commit | `implements` | requirement |
//! | release | `declares` | requirement |
//! | gate | `evaluates` | release |
//! | test | `part_of` | gate |
//! | test | `verifies` | requirement |
//! | approval | `approves` | release |
//! | deployment | `deploys` | release |
//! | deployment | `targets` | environment |
//! | deployment | `remediates` | incident |
//! | incident | `caused_by` | deployment |
//! | incident | `affects` | environment |
//!
//! Node ids: requirement id, commit sha, release/deployment/incident UUID,
//! `release/gate`, `release/test name`, `release/environment/approver`,
//! `service/environment`. Attributes are merged, so a later event (a gate re-run, a
//! deployment finishing) updates the node in place.

use release_pilot_domain::environment::EnvironmentEvent;
use release_pilot_domain::incident::IncidentEvent;
use release_pilot_domain::release::ReleaseEvent;
use release_pilot_domain::requirement::RequirementEvent;
use release_pilot_ledger::db::Tx;
use release_pilot_ledger::entry::Entry;
use serde_json::{json, Value};

use crate::runner::{label, BatchError, EntryExt, Projection, ProjectionError};

/// The traceability projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Traceability;

/// The nodes and edges of a batch, merged in memory and written with two statements:
/// a node's attributes merge in event order (later keys win, as `||` does), its
/// `last_position` is the last event's; an edge keeps the position that first made it.
#[derive(Default)]
struct Graph {
    position: i64,
    nodes: std::collections::BTreeMap<(String, String), (Value, i64)>,
    edges: std::collections::BTreeMap<(String, String, String, String, String), i64>,
}

impl Graph {
    async fn node(&mut self, kind: &str, id: &str, attrs: Value) -> Result<(), ProjectionError> {
        let position = self.position;
        let slot = self
            .nodes
            .entry((kind.to_owned(), id.to_owned()))
            .or_insert_with(|| (json!({}), position));
        if let (Value::Object(merged), Value::Object(new)) = (&mut slot.0, attrs) {
            merged.extend(new);
        }
        slot.1 = position;
        Ok(())
    }

    async fn edge(
        &mut self,
        from: (&str, &str),
        relation: &str,
        to: (&str, &str),
    ) -> Result<(), ProjectionError> {
        let key = (
            from.0.to_owned(),
            from.1.to_owned(),
            relation.to_owned(),
            to.0.to_owned(),
            to.1.to_owned(),
        );
        self.edges.entry(key).or_insert(self.position);
        Ok(())
    }

    async fn flush(self, tx: &mut Tx) -> Result<(), sqlx::Error> {
        let tx = match tx {
            Tx::Postgres(tx) => &mut **tx,
            Tx::Sqlite(tx) => return self.flush_sqlite(tx).await,
        };
        if !self.nodes.is_empty() {
            let mut kinds = Vec::with_capacity(self.nodes.len());
            let mut ids = Vec::with_capacity(self.nodes.len());
            let mut attrs = Vec::with_capacity(self.nodes.len());
            let mut positions = Vec::with_capacity(self.nodes.len());
            for ((kind, id), (value, position)) in self.nodes {
                kinds.push(kind);
                ids.push(id);
                attrs.push(value);
                positions.push(position);
            }
            sqlx::query(
                "INSERT INTO rm_trace_nodes (kind, id, attrs, last_position) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::jsonb[], $4::int8[]) \
                 ON CONFLICT (kind, id) DO UPDATE \
                 SET attrs = rm_trace_nodes.attrs || EXCLUDED.attrs, last_position = EXCLUDED.last_position",
            )
            .bind(&kinds)
            .bind(&ids)
            .bind(&attrs)
            .bind(&positions)
            .execute(&mut *tx)
            .await?;
        }
        if !self.edges.is_empty() {
            let mut columns: [Vec<String>; 5] = Default::default();
            let mut positions = Vec::with_capacity(self.edges.len());
            for ((a, b, c, d, e), position) in self.edges {
                for (column, value) in columns.iter_mut().zip([a, b, c, d, e]) {
                    column.push(value);
                }
                positions.push(position);
            }
            sqlx::query(
                "INSERT INTO rm_trace_edges (from_kind, from_id, relation, to_kind, to_id, position) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[]) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&columns[0])
            .bind(&columns[1])
            .bind(&columns[2])
            .bind(&columns[3])
            .bind(&columns[4])
            .bind(&positions)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// As [`Graph::flush`] on SQLite, a row at a time; attributes merge as PostgreSQL's
    /// `jsonb || jsonb` does (top-level keys of the newer value win).
    async fn flush_sqlite(self, tx: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
        for ((kind, id), (value, position)) in self.nodes {
            let stored: Option<String> =
                sqlx::query_scalar("SELECT attrs FROM rm_trace_nodes WHERE kind = $1 AND id = $2")
                    .bind(&kind)
                    .bind(&id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let mut attrs = stored
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .filter(serde_json::Value::is_object)
                .unwrap_or_else(|| serde_json::json!({}));
            if let (Some(into), serde_json::Value::Object(from)) = (attrs.as_object_mut(), value) {
                into.extend(from);
            }
            sqlx::query(
                "INSERT INTO rm_trace_nodes (kind, id, attrs, last_position) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (kind, id) DO UPDATE SET attrs = excluded.attrs, last_position = excluded.last_position",
            )
            .bind(&kind)
            .bind(&id)
            .bind(attrs.to_string())
            .bind(position)
            .execute(&mut *tx)
            .await?;
        }
        for ((a, b, c, d, e), position) in self.edges {
            sqlx::query(
                "INSERT INTO rm_trace_edges (from_kind, from_id, relation, to_kind, to_id, position) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(a)
            .bind(b)
            .bind(c)
            .bind(d)
            .bind(e)
            .bind(position)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

impl Projection for Traceability {
    fn name(&self) -> &'static str {
        "traceability"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_trace_nodes", "rm_trace_edges"]
    }

    async fn apply(&self, tx: &mut Tx, entry: &Entry) -> Result<(), ProjectionError> {
        self.apply_batch(tx, std::slice::from_ref(entry))
            .await
            .map_err(|e| e.error)
    }

    /// The batch's nodes and edges, merged in memory, in two statements.
    async fn apply_batch(&self, tx: &mut Tx, entries: &[Entry]) -> Result<(), BatchError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let mut graph = Graph::default();
        for entry in entries {
            graph.position = entry.position;
            add(&mut graph, entry)
                .await
                .map_err(|e| BatchError::at(entry, e))?;
        }
        graph
            .flush(tx)
            .await
            .map_err(|e| BatchError::at(first, e.into()))
    }
}

/// Adds what one entry says to the graph.
async fn add(graph: &mut Graph, entry: &Entry) -> Result<(), ProjectionError> {
    let id = entry.aggregate_id.as_str();
    match entry.aggregate_type.as_str() {
        "requirement" => requirement(graph, id, entry.event()?).await,
        "release" => release(graph, id, entry.event()?).await,
        "environment" => environment(graph, id, entry.event()?).await,
        "incident" => incident(graph, id, entry.event()?).await,
        _ => Ok(()),
    }
}

async fn requirement(
    graph: &mut Graph,
    id: &str,
    event: RequirementEvent,
) -> Result<(), ProjectionError> {
    let (title, category) = match event {
        RequirementEvent::RequirementRegistered {
            title, category, ..
        }
        | RequirementEvent::RequirementUpdated {
            title, category, ..
        } => (title, category),
    };
    graph
        .node(
            "requirement",
            id,
            json!({"title": title, "category": category}),
        )
        .await
}

async fn release(
    graph: &mut Graph,
    release: &str,
    event: ReleaseEvent,
) -> Result<(), ProjectionError> {
    let this = ("release", release);
    match event {
        ReleaseEvent::ReleaseCreated {
            service,
            version,
            commits,
            requirements,
            ..
        } => {
            graph
                .node(
                    "release",
                    release,
                    json!({"service": service, "version": version.to_string()}),
                )
                .await?;
            for commit in &commits {
                let sha = commit.sha.as_str();
                let subject = commit.message.lines().next().unwrap_or_default();
                graph
                    .node(
                        "commit",
                        sha,
                        json!({"service": service, "author": commit.author,
                               "committed_at": commit.committed_at, "subject": subject}),
                    )
                    .await?;
                graph.edge(this, "contains", ("commit", sha)).await?;
                for requirement in &commit.requirements {
                    graph
                        .edge(
                            ("commit", sha),
                            "implements",
                            ("requirement", requirement.as_str()),
                        )
                        .await?;
                }
            }
            for requirement in &requirements {
                graph
                    .edge(this, "declares", ("requirement", requirement.as_str()))
                    .await?;
            }
        }
        ReleaseEvent::GateEvaluated {
            gate,
            evidence,
            verdict,
            ..
        } => {
            let gate_id = format!("{release}/{}", gate.as_str());
            graph
                .node(
                    "gate",
                    &gate_id,
                    json!({"gate": gate.as_str(), "status": label(&verdict.status)}),
                )
                .await?;
            graph.edge(("gate", &gate_id), "evaluates", this).await?;
            for test in &evidence.test_cases {
                let test_id = format!("{release}/{}", test.name);
                graph
                    .node(
                        "test",
                        &test_id,
                        json!({"name": test.name, "status": label(&test.status)}),
                    )
                    .await?;
                graph
                    .edge(("test", &test_id), "part_of", ("gate", &gate_id))
                    .await?;
                for requirement in &test.requirements {
                    graph
                        .edge(
                            ("test", &test_id),
                            "verifies",
                            ("requirement", requirement.as_str()),
                        )
                        .await?;
                }
            }
        }
        ReleaseEvent::GateBypassed { gate, reason, .. } => {
            let gate_id = format!("{release}/{}", gate.as_str());
            graph
                .node(
                    "gate",
                    &gate_id,
                    json!({"gate": gate.as_str(), "status": "bypassed", "reason": reason}),
                )
                .await?;
            graph.edge(("gate", &gate_id), "evaluates", this).await?;
        }
        ReleaseEvent::ApprovalGranted {
            environment,
            approver,
            ..
        } => {
            approval(
                graph,
                release,
                environment.as_str(),
                approver.as_str(),
                "approve",
            )
            .await?
        }
        ReleaseEvent::ApprovalRejected {
            environment,
            approver,
            ..
        } => {
            approval(
                graph,
                release,
                environment.as_str(),
                approver.as_str(),
                "reject",
            )
            .await?
        }
        ReleaseEvent::HotfixApproved {
            environment,
            approver,
            ..
        } => {
            approval(
                graph,
                release,
                environment.as_str(),
                approver.as_str(),
                "hotfix",
            )
            .await?
        }
        ReleaseEvent::ReleaseWithdrawn { .. } => {
            graph
                .node("release", release, json!({"withdrawn": true}))
                .await?;
        }
        ReleaseEvent::ApprovalRequested { .. } | ReleaseEvent::ApprovalRefused { .. } => {}
    }
    Ok(())
}

async fn approval(
    graph: &mut Graph,
    release: &str,
    environment: &str,
    approver: &str,
    decision: &str,
) -> Result<(), ProjectionError> {
    let id = format!("{release}/{environment}/{approver}");
    graph
        .node(
            "approval",
            &id,
            json!({"environment": environment, "approver": approver, "decision": decision}),
        )
        .await?;
    graph
        .edge(("approval", &id), "approves", ("release", release))
        .await
}

async fn environment(
    graph: &mut Graph,
    stream: &str,
    event: EnvironmentEvent,
) -> Result<(), ProjectionError> {
    use EnvironmentEvent as E;
    let (deployment, attrs) = match event {
        E::DeploymentStarted {
            deployment_id,
            service,
            environment,
            release_id,
            version,
            strategy,
            started_at,
            remediates_incident,
            ..
        } => {
            let deployment = deployment_id.to_string();
            let this = ("deployment", deployment.as_str());
            graph
                .node(
                    "environment",
                    stream,
                    json!({"service": service, "environment": environment}),
                )
                .await?;
            graph
                .node(
                    "deployment",
                    &deployment,
                    json!({"service": service, "environment": environment, "version": version.to_string(),
                           "strategy": label(&strategy), "status": "in_progress", "started_at": started_at}),
                )
                .await?;
            graph
                .edge(this, "deploys", ("release", &release_id.to_string()))
                .await?;
            graph.edge(this, "targets", ("environment", stream)).await?;
            if let Some(incident) = remediates_incident {
                graph
                    .edge(this, "remediates", ("incident", &incident.to_string()))
                    .await?;
            }
            return Ok(());
        }
        E::DeploymentCompleted {
            deployment_id,
            finished_at,
            ..
        } => (
            deployment_id,
            json!({"status": "succeeded", "finished_at": finished_at}),
        ),
        E::DeploymentFailed {
            deployment_id,
            finished_at,
            ..
        } => (
            deployment_id,
            json!({"status": "failed", "finished_at": finished_at}),
        ),
        E::RollbackTriggered { deployment_id, .. } | E::RollbackStarted { deployment_id, .. } => {
            (deployment_id, json!({"status": "rolling_back"}))
        }
        E::RollbackCompleted {
            deployment_id,
            finished_at,
            ..
        } => (
            deployment_id,
            json!({"status": "rolled_back", "rolled_back_at": finished_at}),
        ),
        E::CanaryAdvanced { .. }
        | E::HealthSampled { .. }
        | E::TrafficSwitched { .. }
        | E::FeatureFlagToggled { .. }
        | E::ChangeFreezeStarted { .. }
        | E::ChangeFreezeEnded { .. } => return Ok(()),
    };
    graph
        .node("deployment", &deployment.to_string(), attrs)
        .await
}

async fn incident(
    graph: &mut Graph,
    incident: &str,
    event: IncidentEvent,
) -> Result<(), ProjectionError> {
    match event {
        IncidentEvent::IncidentOpened {
            service,
            environment,
            severity,
            title,
            deployment_id,
            opened_at,
            ..
        } => {
            let this = ("incident", incident);
            let stream = format!("{service}/{environment}");
            graph
                .node(
                    "incident",
                    incident,
                    json!({"service": service, "environment": environment, "severity": label(&severity),
                           "title": title, "status": "open", "opened_at": opened_at}),
                )
                .await?;
            graph
                .node(
                    "environment",
                    &stream,
                    json!({"service": service, "environment": environment}),
                )
                .await?;
            graph
                .edge(this, "affects", ("environment", &stream))
                .await?;
            if let Some(deployment) = deployment_id {
                graph
                    .edge(this, "caused_by", ("deployment", &deployment.to_string()))
                    .await?;
            }
        }
        IncidentEvent::IncidentResolved { resolved_at, .. } => {
            graph
                .node(
                    "incident",
                    incident,
                    json!({"status": "resolved", "resolved_at": resolved_at}),
                )
                .await?;
        }
    }
    Ok(())
}
