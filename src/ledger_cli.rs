//! `release-pilot migrate` and `release-pilot verify`: the ledger's operator commands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use release_pilot_ledger::signing::{public_key_from_pem, LedgerKey};
use release_pilot_ledger::verify::verify_database;
use release_pilot_ledger::{db, LedgerError, VerifyingKey};

/// Where the database is.
#[derive(Debug, clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL (`postgres://USER@HOST/DB`) or `sqlite://PATH`. Without it Release
    /// Pilot uses its embedded SQLite database, `release-pilot.db` in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// The embedded database's file name in the data directory.
pub const EMBEDDED_DATABASE: &str = "release-pilot.db";

impl DatabaseArgs {
    /// The URL: `DATABASE_URL`, or the embedded database in the data directory named by
    /// `RELEASE_PILOT_DATA_DIR` (default `./data`).
    pub fn url(&self) -> Result<String, String> {
        let data_dir = std::env::var_os("RELEASE_PILOT_DATA_DIR")
            .map_or_else(|| PathBuf::from("./data"), PathBuf::from);
        Ok(self.url_in(&data_dir))
    }

    /// The URL: `DATABASE_URL`, or the embedded database in `data_dir`.
    pub fn url_in(&self, data_dir: &std::path::Path) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", data_dir.join(EMBEDDED_DATABASE).display()),
        }
    }
}

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// An audit export (JSON Lines, from /v1/audit/export) to verify offline; needs only
    /// the public key.
    file: Option<PathBuf>,
    /// The ledger's public key (SPKI PEM, as served at /v1/ledger/public-key).
    #[arg(long)]
    public_key: Option<PathBuf>,
    /// The sealer's signing key (PKCS#8 PEM); its public half is used when no
    /// --public-key is given.
    #[arg(long, env = "RELEASE_PILOT_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    /// The data directory holding the generated signing key.
    #[arg(long, env = "RELEASE_PILOT_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
}

/// The signing key's default location in a data directory.
pub fn default_signing_key(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("ledger-signing-key.pem")
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

pub(crate) fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("release-pilot: {message}");
    ExitCode::from(2)
}

/// Applies the migrations.
pub fn migrate(args: DatabaseArgs) -> ExitCode {
    let result = (|| -> Result<(), String> {
        let url = args.url()?;
        runtime()?.block_on(async {
            let pool = db::connect(&url, 2).await.map_err(|e| e.to_string())?;
            db::migrate(&pool).await.map_err(|e| e.to_string())
        })
    })();
    match result {
        Ok(()) => {
            println!("migrations applied");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn public_key(args: &VerifyArgs) -> Result<VerifyingKey, String> {
    if let Some(path) = &args.public_key {
        let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        return public_key_from_pem(&pem).map_err(|e| e.to_string());
    }
    let path = args
        .signing_key
        .clone()
        .unwrap_or_else(|| default_signing_key(&args.data_dir));
    let pem = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "no public key: give --public-key FILE, or a signing key at {} ({e})",
            path.display()
        )
    })?;
    Ok(LedgerKey::from_pem(&pem)
        .map_err(|e| e.to_string())?
        .verifying_key())
}

/// Verifies the ledger: exit 0 when it verifies, 1 when it does not (naming the first
/// failing position), 2 when verification could not run.
pub fn verify(args: VerifyArgs) -> ExitCode {
    if let Some(file) = &args.file {
        return verify_file(file, &args);
    }
    let url = match args.database.url() {
        Ok(url) => url.to_owned(),
        Err(e) => return fail(e),
    };
    let key = match public_key(&args) {
        Ok(key) => key,
        Err(e) => return fail(e),
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => return fail(e),
    };
    let started = Instant::now();
    let outcome = runtime.block_on(async {
        let pool = db::connect(&url, 2).await?;
        verify_database(&pool, &key, |n| {
            let rate = n as f64 / started.elapsed().as_secs_f64().max(1e-9);
            eprintln!("verified {n} entries ({rate:.0}/s)");
        })
        .await
    });
    match outcome {
        Ok(Ok(report)) => {
            println!(
                "ledger verified: {} entries, {} signed checkpoints, head {} ({}) in {:.2}s",
                report.entries,
                report.checkpoints,
                report.head,
                hex::encode(report.head_hash),
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Ok(Err(failure)) => {
            eprintln!("ledger verification FAILED: {failure}");
            ExitCode::from(1)
        }
        Err(LedgerError::Database(e)) => fail(format!("database: {e}")),
        Err(e) => fail(e),
    }
}

/// Verifies an export file offline: exit 0 when it verifies, 1 when it does not (naming
/// the line and position), 2 when it cannot be read or no key is given.
fn verify_file(file: &std::path::Path, args: &VerifyArgs) -> ExitCode {
    let key = match public_key(args) {
        Ok(key) => key,
        Err(e) => return fail(e),
    };
    let reader = match std::fs::File::open(file) {
        Ok(f) => std::io::BufReader::new(f),
        Err(e) => return fail(format!("{}: {e}", file.display())),
    };
    let started = Instant::now();
    match release_pilot_ledger::export::verify_export(reader, &key) {
        Ok(report) => {
            println!(
                "export verified: {} entries, positions {}..={}, ending at the signed checkpoint {} in {:.2}s",
                report.entries,
                report.first_position,
                report.last_position,
                report.checkpoint,
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(release_pilot_ledger::export::ExportFailure::Io(e)) => {
            fail(format!("{}: {e}", file.display()))
        }
        Err(failure) => {
            eprintln!("export verification FAILED: {failure}");
            ExitCode::from(1)
        }
    }
}

/// Arguments of `export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// Entries recorded at or after (RFC 3339 or YYYY-MM-DD; default: the beginning).
    #[arg(long)]
    from: Option<String>,
    /// Entries recorded before (default: now).
    #[arg(long)]
    to: Option<String>,
    /// Write here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        .map_err(|_| format!("{text:?} is not a time: use RFC 3339 or YYYY-MM-DD"))
}

/// Writes a signed audit export (JSON Lines) of a period, as `/v1/audit/export` serves it.
pub fn export(args: ExportArgs) -> ExitCode {
    use futures::TryStreamExt;
    use std::io::Write;
    let result = (|| -> Result<(), String> {
        let from = args.from.as_deref().map(parse_time).transpose()?;
        let to = args.to.as_deref().map(parse_time).transpose()?;
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return Err("--from must be before --to".to_owned());
            }
        }
        let url = args.database.url()?.to_owned();
        let mut out: Box<dyn Write> = match &args.output {
            Some(path) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        };
        runtime()?.block_on(async {
            let pool = db::connect(&url, 2).await.map_err(|e| e.to_string())?;
            let manifest = match release_pilot_ledger::export::plan(&pool, from, to)
                .await
                .map_err(|e| e.to_string())?
            {
                Ok(manifest) => manifest,
                Err(release_pilot_ledger::export::PlanProblem::Empty) => {
                    return Err("no ledger entry was recorded in that period".to_owned())
                }
                Err(release_pilot_ledger::export::PlanProblem::NotYetSigned { position }) => {
                    return Err(format!(
                        "position {position} is not covered by a signed checkpoint yet; retry when the sealer has signed one"
                    ))
                }
            };
            let head = serde_json::to_string(&release_pilot_ledger::export::ManifestLine {
                manifest: manifest.clone(),
            })
            .map_err(|e| e.to_string())?;
            writeln!(out, "{head}").map_err(|e| e.to_string())?;
            let mut lines = Box::pin(release_pilot_ledger::export::lines(pool, &manifest, 5000));
            let mut written = 0_i64;
            while let Some(chunk) = lines.try_next().await.map_err(|e| e.to_string())? {
                out.write_all(chunk.as_bytes()).map_err(|e| e.to_string())?;
                written += i64::try_from(chunk.lines().count()).unwrap_or(0);
                if args.output.is_some() {
                    eprint!("\rexported {written}/{} entries", manifest.entries);
                }
            }
            out.flush().map_err(|e| e.to_string())?;
            if args.output.is_some() {
                eprintln!();
            }
            eprintln!(
                "exported positions {}..={} ({} entries) ending at the signed checkpoint {}",
                manifest.first_position,
                manifest.last_position,
                manifest.entries,
                manifest.checkpoint.position
            );
            Ok(())
        })
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}
