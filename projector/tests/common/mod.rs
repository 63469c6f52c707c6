//! Helpers shared by the projector's tests.

use release_pilot_projector::{Projection, Projector};
use sqlx::PgPool;

/// Empties `tables`, forgets `projection`'s checkpoint, and applies the whole ledger again
/// from position 0 in batches of `batch`.
pub async fn rebuild_from_zero<P: Projection>(
    pool: &PgPool,
    projection: P,
    tables: &str,
    batch: i64,
) {
    sqlx::query(&format!("TRUNCATE {tables}"))
        .execute(pool)
        .await
        .expect("truncate");
    sqlx::query("DELETE FROM projection_checkpoints WHERE projection = $1")
        .bind(projection.name())
        .execute(pool)
        .await
        .expect("reset");
    let projector = Projector::new(pool.clone(), projection, batch);
    while projector.apply_next().await.expect("rebuild") > 0 {}
}
