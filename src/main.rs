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

/// Every subcommand the product offers. Those whose issue has not landed yet say so and
/// exit with status 2; none pretends to work.
#[derive(Debug, Subcommand)]
enum Action {
    /// Run the whole product in one process (embedded SQLite when no DATABASE_URL).
    Serve,
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
    /// Seed a realistic 90-day history and print the DORA summary.
    Demo,
    /// Compute the next version and changelog from conventional commit messages.
    ///
    /// Reads one commit message per record from standard input, records separated by a
    /// line holding only `---`. Works today, with no server: it runs the same rule the
    /// ledger applies when a release is created without a version.
    NextVersion(next_version::Args),
}

mod ledger_cli;
mod next_version;
mod projector_cli;
mod query_cli;
mod server_cli;

impl Action {
    /// The subcommand's name as typed.
    fn name(&self) -> &'static str {
        match self {
            Action::Serve => "serve",
            Action::CommandService(_) => "command-service",
            Action::Token(_) => "token",
            Action::Projector(_) => "projector",
            Action::QueryApi(_) => "query-api",
            Action::Migrate(_) => "migrate",
            Action::Verify(_) => "verify",
            Action::Export(_) => "export",
            Action::Replay(_) => "replay",
            Action::Demo => "demo",
            Action::NextVersion(_) => "next-version",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr (RUST_LOG filters, RELEASE_PILOT_LOG_FORMAT=json for JSON); traces
    // go to OTEL_EXPORTER_OTLP_ENDPOINT when set. Flushed when the subcommand returns.
    let telemetry =
        release_pilot_ledger::telemetry::init(&format!("release-pilot-{}", cli.command.name()));
    let code = match cli.command {
        Action::NextVersion(args) => next_version::run(args),
        Action::Migrate(args) => ledger_cli::migrate(args),
        Action::Verify(args) => ledger_cli::verify(args),
        Action::CommandService(args) => server_cli::command_service(args),
        Action::Token(args) => server_cli::token(args),
        Action::Projector(args) => projector_cli::projector(args),
        Action::Replay(args) => projector_cli::replay(args),
        Action::Export(args) => ledger_cli::export(args),
        Action::QueryApi(args) => query_cli::query_api(args),
        other => not_yet_available(&other),
    };
    drop(telemetry);
    code
}

/// The honest answer of a subcommand whose implementation has not landed.
fn not_yet_available(command: &Action) -> ExitCode {
    eprintln!(
        "release-pilot: `{}` is not yet available in this build",
        command.name()
    );
    ExitCode::from(2)
}
