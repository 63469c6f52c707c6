//! Invariant 6 across an outage: while NATS is unreachable, commands keep succeeding
//! and sealing continues; when it returns, every entry reaches the stream once, in order.
//!
//! The outage is real: the relay talks to the real NATS server through a loopback TCP
//! proxy that the test cuts (closing every connection and refusing new ones) and restores
//! on the same port.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use release_pilot_domain::ids::{Person, RequirementId};
use release_pilot_domain::requirement::{RegisterRequirement, Requirement, RequirementCommand};
use release_pilot_ledger::metadata::EventMetadata;
use release_pilot_ledger::relay::Relay;
use release_pilot_ledger::signing::LedgerKey;
use release_pilot_ledger::store::EventStore;
use release_pilot_ledger::testkit::{nats_url, TestDatabase, TestStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A proxy to the NATS server on a fixed loopback port.
struct Proxy {
    address: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(address: Option<SocketAddr>) -> Self {
        let listener =
            TcpListener::bind(address.unwrap_or_else(|| "127.0.0.1:0".parse().expect("addr")))
                .await
                .expect("bind proxy");
        let address = listener.local_addr().expect("address");
        let upstream = nats_url().trim_start_matches("nats://").to_owned();
        let task = tokio::spawn(async move {
            // A JoinSet aborts its tasks when dropped, so aborting this task cuts them all.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self {
            address,
            task: Some(task),
        }
    }

    /// Cuts every connection and stops listening: aborting the accept task drops the
    /// listener and the set of connection tasks, which aborts them.
    fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entries_appended_during_an_outage_reach_the_stream_once_afterwards() {
    let db = TestDatabase::create().await;
    let test_stream = TestStream::new();
    let direct = test_stream.jetstream().await;
    let key = LedgerKey::generate();
    let sealer = common::sealer(&db.pool, &key);

    let mut proxy = Proxy::start(None).await;
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_millis(500))
        .connect(format!("nats://{}", proxy.address))
        .await
        .expect("connect through the proxy");
    let relay = Relay::new(
        db.pool.clone(),
        async_nats::jetstream::new(client),
        test_stream.config.clone(),
    );
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let relay_task = tokio::spawn(relay.clone().run(shutdown));

    let before = common::load(&db.pool, "before-", 4, 300, 2).await;
    common::seal_all(&sealer, &db.pool, Duration::from_secs(20)).await;
    common::wait_relayed(&relay, before, Duration::from_secs(20)).await;

    // NATS goes away: appends and sealing go on; the relay cannot publish.
    proxy.cut();
    let during = common::load(&db.pool, "during-", 4, 500, 2).await;
    let store = EventStore::new(db.pool.clone(), 100);
    let command = RequirementCommand::Register(RegisterRequirement {
        id: RequirementId::parse("REQ-7").expect("valid"),
        title: "Audit export".into(),
        category: "compliance".into(),
        actor: Person::parse("pm@example.com").expect("valid"),
        requested_at: chrono::Utc::now(),
    });
    let metadata = EventMetadata {
        actor: "pm@example.com".into(),
        actor_roles: vec!["admin".into()],
        command: "RegisterRequirement".into(),
        correlation_id: uuid::Uuid::now_v7(),
        causation_id: None,
        idempotency_key: None,
        traceparent: None,
    };
    store
        .execute::<Requirement>("REQ-7", command, &metadata)
        .await
        .expect("commands succeed while NATS is down");
    let total = common::seal_all(&sealer, &db.pool, Duration::from_secs(20)).await;
    assert_eq!(total, before + during + 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        relay.checkpoint().await.expect("checkpoint") < total,
        "nothing can be relayed while NATS is unreachable"
    );

    // NATS comes back on the same address; the relay catches up by itself.
    let _restored = Proxy::start(Some(proxy.address)).await;
    common::wait_relayed(&relay, total, Duration::from_secs(60)).await;
    stop.send(true).expect("stop");
    relay_task.await.expect("relay stops");

    common::assert_stream_holds(&direct, &test_stream.config.stream, total).await;
}
