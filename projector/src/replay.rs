//! Rebuilding a projection from position 0 while the live one keeps serving.
//!
//! The projection's tables are recreated empty (same columns, constraints and indexes)
//! in a private schema, `rp_replay_<projection>`, with a checkpoint table of their own.
//! A pool whose `search_path` puts that schema first applies the whole ledger into them
//! with the projection's own code. Then, in one transaction holding the live
//! projection's lease (its checkpoint row), the last entries are applied, the live
//! tables are dropped, the rebuilt ones moved into their place and the live checkpoint
//! set to the rebuilt one. Readers wait only for that transaction; the live projector
//! finds its lease taken and carries on after the swap from the new checkpoint.
//!
//! On SQLite (the embedded backend, one writer at a time) the rebuild is one write
//! transaction instead: the tables are emptied and the whole ledger applied
//! again inside it. Readers keep seeing the old rows until it commits (WAL); writers —
//! commands, the sealer — wait for it, so a replay there suits ledgers of the size the
//! embedded backend is for.

use release_pilot_ledger::db::{entries_after, Db};
use release_pilot_ledger::on_tx;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::runner::{BatchError, Projection, ProjectionError, Projector, RunError};

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Entries applied into the new tables.
    pub applied: i64,
    /// The checkpoint the swapped-in tables stand at.
    pub position: i64,
}

/// Rebuilds `projection` from position 0 into fresh tables and swaps them in. `progress`
/// is called after each batch with (entries applied so far, ledger head when the replay
/// started).
pub async fn replay<P: Projection + Clone>(
    db: &Db,
    projection: P,
    batch: i64,
    mut progress: impl FnMut(i64, i64),
) -> Result<Replayed, RunError> {
    let pool = match db {
        Db::Postgres(pool) => pool,
        Db::Sqlite(_) => return replay_in_place(db, projection, batch, &mut progress).await,
    };
    let name = projection.name();
    let schema = format!("rp_replay_{name}");
    let live: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await?;
    // A replay that died half-way left its schema behind; start clean.
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(pool)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(pool)
        .await?;
    for table in projection
        .tables()
        .iter()
        .chain(std::iter::once(&"projection_checkpoints"))
    {
        sqlx::query(&format!(
            "CREATE TABLE {schema}.{table} (LIKE {live}.{table} INCLUDING ALL)"
        ))
        .execute(pool)
        .await?;
    }
    let options = (*pool.connect_options())
        .clone()
        .options([("search_path", format!("{schema},{live}"))]);
    let rebuild_pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await?;
    let result = rebuild_and_swap(
        pool,
        &rebuild_pool,
        projection,
        batch,
        &schema,
        &live,
        &mut progress,
    )
    .await;
    rebuild_pool.close().await;
    if result.is_err() {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(pool)
            .await;
    }
    result
}

async fn rebuild_and_swap<P: Projection + Clone>(
    pool: &PgPool,
    rebuild_pool: &PgPool,
    projection: P,
    batch: i64,
    schema: &str,
    live: &str,
    progress: &mut impl FnMut(i64, i64),
) -> Result<Replayed, RunError> {
    let name = projection.name();
    let tables = projection.tables();
    let head: i64 = sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM ledger")
        .fetch_one(pool)
        .await?;
    let rebuild = Projector::new(rebuild_pool.clone(), projection, batch);
    let mut applied = 0_i64;
    loop {
        let n = rebuild.apply_next().await?;
        applied += i64::try_from(n).unwrap_or(i64::MAX);
        progress(applied, head);
        if n == 0 {
            break;
        }
    }

    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO projection_checkpoints (projection, position) VALUES ($1, 0) ON CONFLICT DO NOTHING",
    )
    .bind(name)
    .execute(&mut *tx)
    .await?;
    // The live projection's lease: its projector waits until the swap commits.
    sqlx::query("SELECT position FROM projection_checkpoints WHERE projection = $1 FOR UPDATE")
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
    // What was sealed meanwhile.
    loop {
        let n = rebuild.apply_next().await?;
        if n == 0 {
            break;
        }
        applied += i64::try_from(n).unwrap_or(i64::MAX);
        progress(applied, head);
    }
    let position = rebuild.checkpoint().await?;
    // The ledger only grows: a rebuild short of the head it started from would swap in
    // tables with entries missing.
    if position < head {
        return Err(RunError::Incomplete {
            rebuilt: position,
            head,
        });
    }
    for table in tables {
        sqlx::query(&format!("DROP TABLE {live}.{table}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("ALTER TABLE {schema}.{table} SET SCHEMA {live}"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "UPDATE projection_checkpoints SET position = $2, failed_at_position = NULL, failure = NULL, \
         updated_at = clock_timestamp() WHERE projection = $1",
    )
    .bind(name)
    .bind(position)
    .execute(&mut *tx)
    .await?;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Replayed { applied, position })
}

/// The SQLite replay: one write transaction that empties the tables and applies the
/// ledger again.
async fn replay_in_place<P: Projection>(
    db: &Db,
    projection: P,
    batch: i64,
    progress: &mut impl FnMut(i64, i64),
) -> Result<Replayed, RunError> {
    let name = projection.name();
    let mut tx = db.begin().await?;
    let head: i64 = on_tx!(&mut tx, |conn| {
        sqlx::query_scalar("SELECT coalesce(max(position), 0) FROM ledger")
            .fetch_one(&mut *conn)
            .await?
    });
    for table in projection.tables() {
        on_tx!(&mut tx, |conn| {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut *conn)
                .await?;
        });
    }
    let mut position = 0_i64;
    while position < head {
        // Read through the pool: the ledger's rows are committed, and the write lock
        // this transaction holds keeps the head where it is.
        let entries: Vec<_> = entries_after(db, position, batch.min(head - position))
            .await?
            .into_iter()
            .map(|(entry, _)| entry)
            .collect();
        let Some(last) = entries.last().map(|e| e.position) else {
            break;
        };
        match projection.apply_batch(&mut tx, &entries).await {
            Ok(()) => {}
            Err(BatchError {
                position,
                error: ProjectionError::Poison(reason),
            }) => {
                return Err(RunError::Stopped {
                    projection: name,
                    position,
                    reason,
                })
            }
            Err(BatchError {
                error: ProjectionError::Database(e),
                ..
            }) => return Err(e.into()),
        }
        position = last;
        progress(position, head);
    }
    if position < head {
        return Err(RunError::Incomplete {
            rebuilt: position,
            head,
        });
    }
    on_tx!(&mut tx, |conn| {
        sqlx::query(
            "INSERT INTO projection_checkpoints (projection, position, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (projection) DO UPDATE SET position = $2, failed_at_position = NULL, \
             failure = NULL, updated_at = $3",
        )
        .bind(name)
        .bind(position)
        .bind(chrono::Utc::now())
        .execute(&mut *conn)
        .await?;
    });
    tx.commit().await?;
    Ok(Replayed {
        applied: position,
        position,
    })
}
