//! `release-pilot`: the one binary. Server subcommands run the product (all of it, or one
//! part); client subcommands talk HTTP to a running server for CI pipelines.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Release Pilot: an event-sourced, verifiable release ledger.
#[derive(Debug, Parser)]
#[command(name = "release-pilot", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Action,
}

/// Every subcommand the product offers.
#[derive(Debug, Subcommand)]
enum Action {
    /// Run the whole product in one process: command API, sealer, relay, projector, query API.
    Serve(stack::ServeAllArgs),
    /// Run the command (write) API with the ledger sealer and, with NATS_URL, the relay.
    CommandService(server_cli::ServeArgs),
    /// Create, list or revoke API tokens.
    Token(server_cli::TokenArgs),
    /// Run the projector: read models built from the sealed ledger.
    Projector(projector_cli::ProjectorArgs),
    /// Run only the query (read) API.
    QueryApi(query_cli::QueryArgs),
    /// Apply database migrations.
    Migrate(ledger_cli::DatabaseArgs),
    /// Verify the ledger's hash chain and signed checkpoints (database or export file).
    Verify(ledger_cli::VerifyArgs),
    /// Export the audit trail of a period as signed JSON Lines (verify with `verify FILE`).
    Export(ledger_cli::ExportArgs),
    /// Rebuild read models from ledger position 0 and swap them in while the projector runs.
    Replay(projector_cli::ReplayArgs),
    /// Run everything, seed a realistic 90-day history through the API, print the DORA summary.
    Demo(demo_cli::DemoArgs),
    /// Compute the next version and changelog from conventional commit messages.
    ///
    /// Reads one commit message per record from standard input, records separated by a
    /// line holding only `---`. Works today, with no server: it runs the same rule the
    /// ledger applies when a release is created without a version.
    NextVersion(next_version::Args),
    /// CI client: create a release from git commits.
    Release(client_cli::ReleaseArgs),
    /// CI client: record a quality gate (JUnit XML reports).
    Gate(client_cli::GateArgs),
    /// CI client: approve (or reject) a release for an environment.
    Approve(client_cli::ApproveArgs),
    /// CI client: start, advance, sample, complete or fail a deployment.
    Deploy(client_cli::DeployArgs),
    /// CI client: start or complete a rollback.
    Rollback(client_cli::RollbackArgs),
    /// CI client: open or resolve an incident.
    Incident(client_cli::IncidentArgs),
    /// CI client: would a deployment be cleared? Exit 0 allowed, 1 refused, 2 error.
    CanDeploy(client_cli::CanDeployArgs),
    /// CI client: the five DORA metrics.
    Dora(client_cli::DoraArgs),
    /// CI client: download a signed audit export.
    Audit(client_cli::AuditArgs),
}

mod client_cli;
mod demo_cli;
mod ledger_cli;
mod next_version;
mod projector_cli;
mod query_cli;
mod server_cli;
mod stack;

impl Action {
    /// The subcommand's name as typed.
    fn name(&self) -> &'static str {
        match self {
            Action::Serve(_) => "serve",
            Action::CommandService(_) => "command-service",
            Action::Token(_) => "token",
            Action::Projector(_) => "projector",
            Action::QueryApi(_) => "query-api",
            Action::Migrate(_) => "migrate",
            Action::Verify(_) => "verify",
            Action::Export(_) => "export",
            Action::Replay(_) => "replay",
            Action::Demo(_) => "demo",
            Action::NextVersion(_) => "next-version",
            Action::Release(_) => "release",
            Action::Gate(_) => "gate",
            Action::Approve(_) => "approve",
            Action::Deploy(_) => "deploy",
            Action::Rollback(_) => "rollback",
            Action::Incident(_) => "incident",
            Action::CanDeploy(_) => "can-deploy",
            Action::Dora(_) => "dora",
            Action::Audit(_) => "audit",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr (RUST_LOG filters, RELEASE_PILOT_LOG_FORMAT=json for JSON); traces
    // go to OTEL_EXPORTER_OTLP_ENDPOINT when set. Flushed when the subcommand returns.
    // The demo and the CI client print for people; their logs stay quiet unless asked.
    let quiet = matches!(
        cli.command,
        Action::Demo(_)
            | Action::Release(_)
            | Action::Gate(_)
            | Action::Approve(_)
            | Action::Deploy(_)
            | Action::Rollback(_)
            | Action::Incident(_)
            | Action::CanDeploy(_)
            | Action::Dora(_)
            | Action::Audit(_)
    );
    let telemetry = release_pilot_ledger::telemetry::init_with_filter(
        &format!("release-pilot-{}", cli.command.name()),
        if quiet { "warn" } else { "info" },
    );
    let code = match cli.command {
        Action::NextVersion(args) => next_version::run(args),
        Action::Migrate(args) => ledger_cli::migrate(args),
        Action::Verify(args) => ledger_cli::verify(args),
        Action::CommandService(args) => server_cli::command_service(args),
        Action::Token(args) => server_cli::token(args),
        Action::Projector(args) => projector_cli::projector(args),
        Action::Replay(args) => projector_cli::replay(args),
        Action::Export(args) => ledger_cli::export(args),
        Action::Serve(args) => stack::serve_all(args),
        Action::Demo(args) => demo_cli::demo(args),
        Action::Release(args) => client_cli::release(args),
        Action::Gate(args) => client_cli::gate(args),
        Action::Approve(args) => client_cli::approve(args),
        Action::Deploy(args) => client_cli::deploy(args),
        Action::Rollback(args) => client_cli::rollback(args),
        Action::Incident(args) => client_cli::incident(args),
        Action::CanDeploy(args) => client_cli::can_deploy(args),
        Action::Dora(args) => client_cli::dora(args),
        Action::Audit(args) => client_cli::audit(args),
        Action::QueryApi(args) => query_cli::query_api(args),
    };
    drop(telemetry);
    code
}
