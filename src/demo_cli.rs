//! `release-pilot demo`: every component in one process, a realistic generated history sent
//! through the public API, then the DORA summary per service and where to look next.

use std::collections::BTreeSet;
use std::time::Duration;

use release_pilot_client::history::{generate, HistoryConfig, Tokens, AUTHOR_APPROVER};
use release_pilot_client::Api;
use release_pilot_command_service::auth::TokenStore;
use release_pilot_domain::ids::Person;
use release_pilot_domain::roles::Role;
use serde_json::Value;
use tokio::sync::watch;

use crate::stack::{print_addresses, run_stack, Stack, StackArgs};

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Days of history, ending yesterday.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// The services.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "checkout,payments,search,catalog"
    )]
    services: Vec<String>,
    /// Seed of the generated history (the same seed gives the same history).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Stop after printing the summary instead of serving until Ctrl-C.
    #[arg(long)]
    exit: bool,
}

async fn token(stack: &Stack, subject: &str, role: Role) -> Result<String, String> {
    let subject = Person::parse(subject).map_err(|e| e.to_string())?;
    Ok(TokenStore::new(stack.pool.clone())
        .create(&subject, &BTreeSet::from([role]))
        .await
        .map_err(|e| e.to_string())?
        .1)
}

/// Waits until every committed event is sealed and every projection has applied it.
async fn settled(stack: &Stack) -> Result<(), String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let (committed, sealed, slowest): (i64, i64, Option<i64>) =
            release_pilot_ledger::on!(&stack.pool, |pool| sqlx::query_as(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM ledger), \
                        (SELECT min(position) FROM projection_checkpoints)",
            )
            .fetch_one(pool)
            .await)
            .map_err(|e| e.to_string())?;
        if committed == sealed && slowest == Some(sealed) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "the read models did not catch up: {sealed} of {committed} events sealed, slowest projection at {slowest:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn minutes(value: &Value) -> String {
    match value.as_f64() {
        None => "—".to_owned(),
        Some(m) if m < 120.0 => format!("{m:.0} min"),
        Some(m) if m < 48.0 * 60.0 => format!("{:.1} h", m / 60.0),
        Some(m) => format!("{:.1} d", m / 1440.0),
    }
}

fn rate(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "—".to_owned(), |r| format!("{:.0} %", r * 100.0))
}

fn tier(value: &Value) -> String {
    value.as_str().unwrap_or("—").to_owned()
}

/// Seeds the history and prints the summary.
pub fn demo(args: DemoArgs) -> std::process::ExitCode {
    let DemoArgs {
        stack: stack_args,
        days,
        services,
        seed,
        exit,
    } = args;
    run_stack(&stack_args, |stack| async move {
        let tokens = Tokens {
            ci: token(&stack, "ci-bot", Role::Ci).await?,
            approvers: [
                token(&stack, "ann@example.com", Role::Approver).await?,
                token(&stack, "bob@example.com", Role::Approver).await?,
            ],
            author_approver: token(&stack, AUTHOR_APPROVER, Role::Approver).await?,
            incident_commander: token(&stack, "ivy@example.com", Role::IncidentCommander).await?,
            admin: token(&stack, "demo-admin", Role::Admin).await?,
        };
        let names: Vec<&str> = services.iter().map(String::as_str).collect();
        let config = HistoryConfig::ending_now(&names, days, seed);
        let from = config.start;
        let api = Api::new(format!("http://{}", stack.command));
        let bar = indicatif::ProgressBar::new(u64::from(days)).with_style(
            indicatif::ProgressStyle::with_template(
                "seeding {bar:30} day {pos}/{len} · {msg} commands · eta {eta}",
            )
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
        );
        let summary = generate(&api, &tokens, &config, |p| {
            bar.set_position(u64::from(p.day));
            bar.set_message(p.commands.to_string());
        })
        .await
        .map_err(|e| format!("seeding failed: {e}"))?;
        bar.finish_and_clear();
        println!(
            "seeded {days} days: {} releases, {} production deployments, {} rollbacks, {} incidents, {} hotfixes ({} commands, {} refused as policy requires)",
            summary.releases,
            summary.production_deployments,
            summary.rollbacks,
            summary.incidents,
            summary.hotfixes,
            summary.commands,
            summary.refused
        );
        settled(&stack).await?;

        let query = Api::new(format!("http://{}", stack.query));
        println!();
        println!("DORA over the last {days} days (production; tiers: DORA 2023; docs/metrics.md)");
        println!(
            "{:<12} {:>10} {:>12} {:>11} {:>12} {:>8}  tiers (freq/lead/fail/recovery)",
            "service", "deploys/d", "lead (p50)", "fail rate", "recovery", "rework"
        );
        let window = format!(
            "from={}",
            from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        for service in &services {
            let r = query
                .get(
                    &tokens.admin,
                    &format!("/v1/dora?service={service}&{window}"),
                )
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{:<12} {:>10} {:>12} {:>11} {:>12} {:>8}  {}/{}/{}/{}",
                service,
                r["deployment_frequency"]["value"]["per_day"]
                    .as_f64()
                    .map_or_else(|| "—".to_owned(), |v| format!("{v:.2}")),
                minutes(&r["change_lead_time"]["value"]["median_minutes"]),
                rate(&r["change_fail_rate"]["value"]["rate"]),
                minutes(&r["failed_deployment_recovery_time"]["value"]["median_minutes"]),
                rate(&r["deployment_rework_rate"]["value"]["rate"]),
                tier(&r["deployment_frequency"]["tier"]),
                tier(&r["change_lead_time"]["tier"]),
                tier(&r["change_fail_rate"]["tier"]),
                tier(&r["failed_deployment_recovery_time"]["tier"]),
            );
        }
        println!();
        print_addresses(&stack);
        println!("demo admin token: {}", tokens.admin);
        println!("where to look next:");
        println!(
            "  curl -H 'Authorization: Bearer {}' 'http://{}/v1/dora?service={}&details=true'",
            tokens.admin,
            stack.query,
            services.first().map_or("checkout", String::as_str)
        );
        println!(
            "  curl -H 'Authorization: Bearer {}' http://{}/v1/environments",
            tokens.admin, stack.query
        );
        println!(
            "  curl -H 'Authorization: Bearer {}' http://{}/v1/exceptions",
            tokens.admin, stack.query
        );
        println!(
            "  curl -H 'Authorization: Bearer {}' http://{}/v1/trace/coverage",
            tokens.admin, stack.query
        );
        if !exit {
            println!("serving until Ctrl-C");
            let (stop, mut stopped) = watch::channel(false);
            tokio::spawn(crate::server_cli::shutdown_signal(stop));
            let _ = stopped.wait_for(|s| *s).await;
        }
        Ok(stack)
    })
}
