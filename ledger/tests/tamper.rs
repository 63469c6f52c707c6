//! Invariants 3 and 4: the hash chain and signed checkpoints make tampering evident.
//! `verify` recomputes every hash from the event rows and names the first position that
//! fails.

mod common;

use std::time::Duration;

use release_pilot_ledger::signing::CheckpointProblem;
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::testkit::TestDatabase;
use release_pilot_ledger::verify::{verify_database, VerifyFailure};
use sqlx::PgPool;

async fn sealed_ledger(events: i64) -> (TestDatabase, LedgerKey) {
    let db = TestDatabase::create().await;
    for i in 0..events {
        common::write_events(
            &db.pool,
            &format!("agg-{}", i % 7),
            i / 7 + 1,
            1,
            Duration::ZERO,
            true,
        )
        .await
        .expect("insert");
    }
    let key = LedgerKey::generate();
    let sealer = common::sealer(&db.pool, &key);
    common::seal_all(&sealer, &db.pool, Duration::from_secs(10)).await;
    sealer.checkpoint_now().await.expect("checkpoint");
    (db, key)
}

/// Runs `sql` as a superuser with triggers (and foreign keys) disabled, as an attacker
/// with database access would.
async fn tamper(pool: &PgPool, sql: &str) {
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .expect("disable triggers");
    sqlx::query(sql).execute(&mut *tx).await.expect(sql);
    tx.commit().await.expect("commit");
}

async fn verify(db: &TestDatabase, key: &LedgerKey) -> Result<i64, VerifyFailure> {
    verify_database(&db.db(), &key.verifying_key(), |_| {})
        .await
        .expect("verification runs")
        .map(|report| report.entries)
}

async fn position_of(pool: &PgPool, id: &str, sequence: i64) -> i64 {
    sqlx::query_scalar(
        "SELECT l.position FROM ledger l JOIN events e USING (global_position) \
         WHERE e.aggregate_id = $1 AND e.sequence = $2",
    )
    .bind(id)
    .bind(sequence)
    .fetch_one(pool)
    .await
    .expect("sealed")
}

#[tokio::test]
async fn an_untouched_ledger_verifies() {
    let (db, key) = sealed_ledger(1200).await;
    assert_eq!(verify(&db, &key).await, Ok(1200));
}

#[tokio::test]
async fn an_altered_payload_is_named_by_position() {
    let (db, key) = sealed_ledger(50).await;
    let position = position_of(&db.pool, "agg-3", 4).await;
    tamper(
        &db.pool,
        "UPDATE events SET payload = '{\"LoadEvent\": {\"n\": 999}}' WHERE aggregate_id = 'agg-3' AND sequence = 4",
    )
    .await;
    assert_eq!(
        verify(&db, &key).await,
        Err(VerifyFailure::HashMismatch { position })
    );
}

#[tokio::test]
async fn altered_metadata_or_recording_time_is_detected() {
    let (db, key) = sealed_ledger(20).await;
    let position = position_of(&db.pool, "agg-1", 2).await;
    tamper(
        &db.pool,
        "UPDATE events SET metadata = '{\"actor\": \"someone-else\"}' WHERE aggregate_id = 'agg-1' AND sequence = 2",
    )
    .await;
    assert_eq!(
        verify(&db, &key).await,
        Err(VerifyFailure::HashMismatch { position })
    );

    let (db, key) = sealed_ledger(20).await;
    let position = position_of(&db.pool, "agg-0", 1).await;
    tamper(
        &db.pool,
        "UPDATE events SET recorded_at = recorded_at - interval '1 day' WHERE aggregate_id = 'agg-0' AND sequence = 1",
    )
    .await;
    assert_eq!(
        verify(&db, &key).await,
        Err(VerifyFailure::HashMismatch { position })
    );
}

#[tokio::test]
async fn a_deleted_event_or_ledger_row_is_named() {
    let (db, key) = sealed_ledger(30).await;
    let position = position_of(&db.pool, "agg-2", 3).await;
    tamper(
        &db.pool,
        "DELETE FROM events WHERE aggregate_id = 'agg-2' AND sequence = 3",
    )
    .await;
    assert_eq!(
        verify(&db, &key).await,
        Err(VerifyFailure::MissingEvent { position })
    );

    let (db, key) = sealed_ledger(30).await;
    tamper(&db.pool, "DELETE FROM ledger WHERE position = 17").await;
    assert_eq!(
        verify(&db, &key).await,
        Err(VerifyFailure::Gap {
            expected: 17,
            found: 18
        })
    );
}

#[tokio::test]
async fn a_rewritten_chain_is_caught_by_the_signed_checkpoint() {
    let (db, key) = sealed_ledger(40).await;
    // An attacker rewrites event 40 and recomputes its hash, but cannot re-sign.
    tamper(&db.pool, "UPDATE events SET payload = '{\"LoadEvent\": {}}' WHERE global_position = (SELECT global_position FROM ledger WHERE position = 40)").await;
    let rehash: Vec<u8> = {
        use release_pilot_ledger::db::entries_after;
        let previous = entries_after(&db.db(), 38, 1).await.expect("read")[0].1;
        let (entry, _) = entries_after(&db.db(), 39, 1)
            .await
            .expect("read")
            .remove(0);
        entry.chain_hash(&previous).expect("hash").to_vec()
    };
    tamper(
        &db.pool,
        &format!(
            "UPDATE ledger SET hash = decode('{}', 'hex') WHERE position = 40",
            hex::encode(&rehash)
        ),
    )
    .await;
    assert_eq!(
        verify(&db, &key).await,
        Err(VerifyFailure::CheckpointMismatch { position: 40 })
    );
}

#[tokio::test]
async fn a_forged_checkpoint_signature_is_reported() {
    let (db, key) = sealed_ledger(10).await;
    tamper(
        &db.pool,
        "UPDATE ledger_checkpoints SET signature = decode(repeat('ab', 64), 'hex') WHERE position = 10",
    )
    .await;
    assert_eq!(
        verify(&db, &key).await,
        Err(VerifyFailure::CheckpointSignature {
            position: 10,
            problem: CheckpointProblem::BadSignature
        })
    );
    let other = LedgerKey::generate();
    let (db, _) = sealed_ledger(10).await;
    assert!(matches!(
        verify(&db, &other).await,
        Err(VerifyFailure::CheckpointSignature {
            problem: CheckpointProblem::UnknownKey(_),
            ..
        })
    ));
}
