//! A generated, realistic history (several services, canaries, blue-green, automatic and
//! manual rollbacks, incidents, hotfixes, approvals, bypasses) sent through the command
//! API while every projection runs as a process that is killed again and again; the
//! read models it ends with must equal a replay from position 0, table by table.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::Rng;
use release_pilot_client::history::{generate, HistoryConfig, Tokens, AUTHOR_APPROVER};
use release_pilot_client::Api;
use release_pilot_command_service::auth::TokenStore;
use release_pilot_command_service::{App, AppState, CommandConfig};
use release_pilot_domain::ids::Person;
use release_pilot_domain::roles::Role;
use release_pilot_ledger::both_backends;
use release_pilot_ledger::db::Db;
use release_pilot_ledger::on;
use release_pilot_ledger::sealer::{Sealer, SealerConfig};
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::testkit::seal_everything;
use release_pilot_projector::catalogue::AnyProjection;
use release_pilot_projector::replay::replay;
use release_pilot_projector::{Projection, Projector, RunError};
use tokio::sync::watch;

async fn token(db: &Db, subject: &str, role: Role) -> String {
    TokenStore::new(db.clone())
        .create(
            &Person::parse(subject).expect("valid"),
            &BTreeSet::from([role]),
        )
        .await
        .expect("token")
        .1
}

/// Every row of every table a projection owns, as text, in a stable order.
async fn snapshot(db: &Db, projection: AnyProjection) -> Vec<(String, Vec<String>)> {
    let mut tables = Vec::new();
    for table in projection.tables() {
        let rows: Vec<String> = match db {
            Db::Postgres(pool) => {
                sqlx::query_scalar(&format!("SELECT t::text FROM {table} t ORDER BY 1"))
                    .fetch_all(pool)
                    .await
                    .expect("rows")
            }
            // SQLite has no row-to-text cast: every column quoted (blobs as X'…').
            Db::Sqlite(pool) => {
                let columns: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                        .fetch_all(pool)
                        .await
                        .expect("columns");
                let row = columns
                    .iter()
                    .map(|c| format!("quote({c})"))
                    .collect::<Vec<_>>()
                    .join(" || ',' || ");
                sqlx::query_scalar(&format!("SELECT {row} AS r FROM {table} ORDER BY 1"))
                    .fetch_all(pool)
                    .await
                    .expect("rows")
            }
        };
        tables.push(((*table).to_owned(), rows));
    }
    tables
}

async fn catch_up(db: &Db, projection: AnyProjection) {
    let projector = Projector::new(db.clone(), projection, 500);
    // A killed run may hold the lease until its connection is closed: wait it out.
    loop {
        match projector.apply_next().await {
            Ok(0) => break,
            Ok(_) => {}
            Err(RunError::Busy) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(error) => panic!("{} catching up: {error}", projection.name()),
        }
    }
}

async fn count(db: &Db, sql: &str) -> i64 {
    on!(db, |pool| sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect(sql))
}

both_backends!(
    a_killed_projector_over_a_generated_history_equals_a_replay_from_zero,
    |test| async move {
        let db = test.db.clone();
        let key = LedgerKey::generate();
        let state = AppState::new(db.clone(), CommandConfig::default());
        let app = App::build("127.0.0.1:0".parse().expect("addr"), state)
            .await
            .expect("bind");
        let api = Api::new(format!("http://{}", app.local_addr().expect("addr")));
        let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run(async move {
            let _ = http_stopped.await;
        }));
        let tokens = Tokens {
            ci: token(&db, "ci-bot", Role::Ci).await,
            approvers: [
                token(&db, "ann@example.com", Role::Approver).await,
                token(&db, "bob@example.com", Role::Approver).await,
            ],
            author_approver: token(&db, AUTHOR_APPROVER, Role::Approver).await,
            incident_commander: token(&db, "ivy@example.com", Role::IncidentCommander).await,
            admin: token(&db, "root@example.com", Role::Admin).await,
        };

        // The sealer runs as the command service runs it, while the history is written.
        let (stop_sealer, sealer_shutdown) = watch::channel(false);
        let sealer = tokio::spawn(
            Sealer::new(db.clone(), key.clone(), SealerConfig::default()).run(sealer_shutdown),
        );
        let services = [
            "checkout", "payments", "search", "catalog", "accounts", "billing",
        ];
        // A fixed calendar, so weekends (quiet days) and the event count do not depend on the
        // day the test runs.
        let config = HistoryConfig {
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            days: 140,
            start: "2026-01-05T00:00:00Z".parse().expect("date"),
            seed: 7,
        };
        let writer = tokio::spawn(async move { generate(&api, &tokens, &config, |_| {}).await });

        // Every projection runs as one process that is killed at random points: its own
        // connections, closed after the kill.
        let (_keep, shutdown) = watch::channel(false);
        let mut kills = 0;
        while !writer.is_finished() || kills < 20 {
            let process = Db::connect(&test.url, 6)
                .await
                .expect("the run's connections");
            let batch = rand::rng().random_range(1..80);
            let tasks: Vec<_> = AnyProjection::ALL
                .into_iter()
                .map(|p| {
                    tokio::spawn(
                        Projector::new(process.clone(), p, batch)
                            .run(shutdown.clone(), Duration::from_millis(2)),
                    )
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(rand::rng().random_range(20..250))).await;
            for task in &tasks {
                task.abort();
            }
            for task in tasks {
                let _ = task.await;
            }
            process.close().await;
            kills += 1;
        }
        let summary = writer.await.expect("writer").expect("the history");
        let _ = stop_http.send(());
        let _ = stop_sealer.send(true);
        sealer.await.expect("sealer");
        let head = seal_everything(&db, &key, Duration::from_secs(60)).await;
        eprintln!("{head} events, {kills} kills: {summary:?}");
        assert!(
            head >= 5000,
            "only {head} events in the history: {summary:?}"
        );
        assert!(kills >= 20);
        // The history is as varied as promised.
        assert!(summary.rollbacks >= 5, "{summary:?}");
        assert!(summary.hotfixes >= 3, "{summary:?}");
        assert!(summary.incidents >= 5, "{summary:?}");
        assert!(summary.refused >= 1, "{summary:?}");

        let mut incremental = Vec::new();
        for projection in AnyProjection::ALL {
            catch_up(&db, projection).await;
            incremental.push(snapshot(&db, projection).await);
        }
        // What the read models hold reflects the history.
        let pool = &db;
        assert_eq!(
            count(pool, "SELECT count(*) FROM rm_audit_index").await,
            head
        );
        assert!(
        count(
            pool,
            "SELECT count(*) FROM rm_dora_deployments WHERE production AND status = 'rolled_back'"
        )
        .await
            >= 5
    );
        assert!(
            count(
                pool,
                "SELECT count(*) FROM rm_dora_deployments WHERE production AND NOT planned"
            )
            .await
                >= 3
        );
        assert!(
            count(
                pool,
                "SELECT count(*) FROM rm_dora_incidents WHERE deployment_id IS NULL"
            )
            .await
                >= 1
        );
        assert!(count(pool, "SELECT count(*) FROM rm_dora_release_commits").await >= 500);
        for kind in ["gate_bypassed", "approval_refused", "hotfix_lane"] {
            assert!(
                count(
                    pool,
                    &format!("SELECT count(*) FROM rm_exceptions WHERE kind = '{kind}'")
                )
                .await
                    >= 1,
                "no {kind} exception"
            );
        }
        for relation in [
            "contains",
            "implements",
            "declares",
            "evaluates",
            "part_of",
            "verifies",
            "approves",
            "deploys",
            "targets",
            "remediates",
            "caused_by",
            "affects",
        ] {
            assert!(
                count(
                    pool,
                    &format!("SELECT count(*) FROM rm_trace_edges WHERE relation = '{relation}'")
                )
                .await
                    >= 1,
                "no {relation} edge"
            );
        }

        // Replays rebuild each projection from position 0 into fresh tables and swap them in.
        for (projection, built) in AnyProjection::ALL.into_iter().zip(&incremental) {
            let done = replay(&db, projection, 997, |_, _| {})
                .await
                .expect("replay");
            assert_eq!(done.position, head, "{}", projection.name());
            let rebuilt = snapshot(&db, projection).await;
            for ((table, incremental_rows), (_, rebuilt_rows)) in built.iter().zip(&rebuilt) {
                assert_eq!(
                    incremental_rows.len(),
                    rebuilt_rows.len(),
                    "{table}: row counts differ"
                );
                assert!(incremental_rows == rebuilt_rows, "{table}: rows differ");
            }
        }
    }
);
