//! Invariant 1: committed events, ledger entries and checkpoints are never updated,
//! deleted or truncated — the database itself refuses.

mod common;

use std::time::Duration;

use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::testkit::TestDatabase;

#[tokio::test]
async fn the_database_refuses_to_update_delete_or_truncate_history() {
    let db = TestDatabase::create().await;
    common::write_events(&db.pool, "a", 1, 3, Duration::ZERO, true)
        .await
        .expect("insert");
    let key = LedgerKey::generate();
    let sealer = common::sealer(&db.pool, &key);
    common::seal_all(&sealer, &db.pool, Duration::from_secs(10)).await;
    sealer.checkpoint_now().await.expect("checkpoint");

    let attempts = [
        "UPDATE events SET payload = '{}' WHERE sequence = 1",
        "DELETE FROM events WHERE sequence = 2",
        "TRUNCATE events CASCADE",
        "UPDATE ledger SET hash = decode(repeat('00', 32), 'hex') WHERE position = 1",
        "DELETE FROM ledger WHERE position = 3",
        "TRUNCATE ledger CASCADE",
        "UPDATE ledger_checkpoints SET key_id = 'x'",
        "DELETE FROM ledger_checkpoints",
        "TRUNCATE ledger_checkpoints",
    ];
    for sql in attempts {
        let error = sqlx::query(sql).execute(&db.pool).await.expect_err(sql);
        let code = error
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {error}");
    }
    assert_eq!(common::assert_sealed_exactly_once(&db.pool).await, 3);
}
