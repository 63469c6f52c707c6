//! Test fixtures on the real services: a fresh PostgreSQL database per test (migrated,
//! dropped afterwards), or a fresh SQLite file for the suites that run on both backends,
//! and JetStream stream names no other test uses.
//!
//! The server addresses come from `RELEASE_PILOT_TEST_DATABASE_URL` (an admin URL,
//! default `postgres://postgres@127.0.0.1:5432/postgres`) and
//! `RELEASE_PILOT_TEST_NATS_URL` (default `nats://127.0.0.1:4222`).

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::db::Db;
use crate::relay::RelayConfig;

/// The admin URL of the test PostgreSQL server.
pub fn admin_url() -> String {
    std::env::var("RELEASE_PILOT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The URL of the test NATS server.
pub fn nats_url() -> String {
    std::env::var("RELEASE_PILOT_TEST_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

fn with_database(admin: &str, name: &str) -> String {
    match admin.rfind('/') {
        Some(slash) => format!("{}/{name}", &admin[..slash]),
        None => format!("{admin}/{name}"),
    }
}

/// A fresh, migrated database that is dropped when the value is dropped.
pub struct TestDatabase {
    /// A pool on it.
    pub pool: PgPool,
    /// Its URL.
    pub url: String,
    name: String,
}

impl TestDatabase {
    /// Creates and migrates a database named `rp_test_<uuid>`.
    pub async fn create() -> Self {
        Self::create_with(32).await
    }

    /// As [`TestDatabase::create`], with a pool of `max_connections`.
    pub async fn create_with(max_connections: u32) -> Self {
        let name = format!("rp_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url())
            .await
            .expect("the test PostgreSQL server is reachable");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let url = with_database(&admin_url(), &name);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect(&url)
            .await
            .expect("connect to test database");
        crate::db::migrate(&pool.clone().into())
            .await
            .expect("migrations apply");
        Self { pool, url, name }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database as the ledger's handle.
    pub fn db(&self) -> Db {
        Db::Postgres(self.pool.clone())
    }
}

/// A backend the backend-sensitive suites run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL, a fresh database on the test server.
    Postgres,
    /// SQLite, a fresh file in a temporary directory.
    Sqlite,
}

/// A fresh, migrated database on either backend, removed when the value is dropped.
pub struct TestDb {
    /// The database.
    pub db: Db,
    /// Its URL (`postgres://…` or `sqlite://…`).
    pub url: String,
    _postgres: Option<TestDatabase>,
    directory: Option<std::path::PathBuf>,
}

impl TestDb {
    /// Creates and migrates a database on `backend`.
    pub async fn create(backend: Backend) -> Self {
        Self::create_with(backend, 32).await
    }

    /// As [`TestDb::create`], with a pool of up to `max_connections`.
    pub async fn create_with(backend: Backend, max_connections: u32) -> Self {
        match backend {
            Backend::Postgres => {
                let database = TestDatabase::create_with(max_connections).await;
                Self {
                    db: database.db(),
                    url: database.url.clone(),
                    _postgres: Some(database),
                    directory: None,
                }
            }
            Backend::Sqlite => {
                let directory =
                    std::env::temp_dir().join(format!("rp_test_{}", Uuid::new_v4().simple()));
                std::fs::create_dir_all(&directory).expect("create test directory");
                let file = directory.join("ledger.db");
                let db = Db::open_sqlite(&file, 8)
                    .await
                    .expect("open test SQLite database");
                crate::db::migrate(&db).await.expect("migrations apply");
                Self {
                    db,
                    url: format!("sqlite://{}", file.display()),
                    _postgres: None,
                    directory: Some(directory),
                }
            }
        }
    }
}

impl TestDb {
    /// The PostgreSQL database's name (`None` on SQLite).
    pub fn postgres_name(&self) -> Option<&str> {
        self._postgres.as_ref().map(TestDatabase::name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(directory) = &self.directory {
            let _ = std::fs::remove_dir_all(directory);
        }
    }
}

/// Runs an async test body once on PostgreSQL and once on SQLite: `both_backends!(name,
/// |db| async move { … })` defines the tests `name::postgres` and `name::sqlite`, each
/// handing the body a fresh [`TestDb`].
#[macro_export]
macro_rules! both_backends {
    ($(#[$meta:meta])* $name:ident, |$db:ident| $body:expr) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($db: $crate::testkit::TestDb) {
                $body.await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                body($crate::testkit::TestDb::create($crate::testkit::Backend::Postgres).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                body($crate::testkit::TestDb::create($crate::testkit::Backend::Sqlite).await).await;
            }
        }
    };
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside the test's runtime, which is blocked while we wait: a
        // short-lived thread with its own runtime drops the database, and `WITH (FORCE)`
        // ends the pool's connections server-side (closing the pool here would wait on
        // the blocked runtime).
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A relay configuration with a stream and subject prefix of its own; the stream is
/// deleted when the value is dropped.
pub struct TestStream {
    /// The relay configuration using the stream.
    pub config: RelayConfig,
}

impl TestStream {
    /// Unique streams `LEDGER_T<uuid>` on `t<uuid>.ledger.>` and `DECISIONS_T<uuid>` on
    /// `t<uuid>.decisions.>`.
    pub fn new() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        Self {
            config: RelayConfig {
                name: format!("test-{id}"),
                stream: format!("LEDGER_T{id}"),
                subject_prefix: format!("t{id}.ledger"),
                decisions_stream: format!("DECISIONS_T{id}"),
                decisions_prefix: format!("t{id}.decisions"),
                ..RelayConfig::default()
            },
        }
    }

    /// Connects to the test NATS server.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        let client = async_nats::connect(nats_url())
            .await
            .expect("the test NATS server is reachable");
        async_nats::jetstream::new(client)
    }
}

impl Default for TestStream {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let streams = [
            self.config.stream.clone(),
            self.config.decisions_stream.clone(),
        ];
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(client) = async_nats::connect(nats_url()).await {
                    let jetstream = async_nats::jetstream::new(client);
                    for stream in streams {
                        let _ = jetstream.delete_stream(&stream).await;
                    }
                }
            });
        })
        .join();
    }
}

/// Seals until the ledger holds every committed event (another test's open transaction
/// may hold the sealing horizon back for a moment); returns the number of entries.
pub async fn seal_everything(
    db: impl Into<Db>,
    key: &crate::signing::LedgerKey,
    timeout: std::time::Duration,
) -> i64 {
    let db = db.into();
    let sealer = crate::sealer::Sealer::new(
        db.clone(),
        key.clone(),
        crate::sealer::SealerConfig::default(),
    );
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let committed: i64 = crate::on!(&db, |pool| {
            sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(pool)
                .await
                .expect("count events")
        });
        let outcome = sealer.seal_batch().await.expect("seal");
        if outcome.head >= committed {
            return outcome.head;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sealing did not catch up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
