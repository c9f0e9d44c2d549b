//! PostgreSQL going away: the store answers `Unavailable` within seconds, never a false `Ok`,
//! and works again when the database is back.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_domain::text::{RoomName, UserName};
use confab_protocol::Visibility;
use confab_store::postgres::PgStore;
use confab_store::{EventRange, Store, StoreError, StoreOptions};
use tokio::task::JoinSet;

use crate::pg::Databases;
use crate::{Backend, text, within};

/// Ends every session of database `name` except the caller's.
fn terminate(name: &str) -> String {
    format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    )
}

#[tokio::test]
async fn a_server_that_cannot_be_reached_is_unavailable_at_connect_within_seconds() {
    if Backend::postgres(1, "a_server_that_cannot_be_reached…").is_none() {
        return;
    }
    let started = Instant::now();
    let result = confab_store::connect(
        "postgres://postgres@127.0.0.1:1/nothing",
        &StoreOptions::default(),
    )
    .await;
    assert!(matches!(result, Err(StoreError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_refusing_connections_is_unavailable_quickly_and_the_store_recovers() {
    if Backend::postgres(1, "a_database_refusing_connections…").is_none() {
        return;
    }
    let dbs = Databases::create(1).await;
    let store = PgStore::connect(&dbs.urls(), &StoreOptions::default())
        .await
        .expect("connects");
    let ada = store
        .create_user(&UserName::parse("ada").expect("valid"), "h")
        .await
        .expect("created");
    let name = RoomName::parse("general").expect("valid");
    let room = store
        .create_room(&ada, &name, Visibility::Public)
        .await
        .expect("created")
        .room;
    store
        .append(&room.id, &ada, text("c1", "before"))
        .await
        .expect("stored");

    let db = dbs.name(0).to_owned();
    dbs.admin(format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"))
        .await;
    dbs.admin(terminate(&db)).await;
    let started = Instant::now();
    let sent = store.append(&room.id, &ada, text("c2", "during")).await;
    assert!(matches!(sent, Err(StoreError::Unavailable(_))), "{sent:?}");
    let read = store.events(&room.id, EventRange::Newest, 10).await;
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "answered in {:?}",
        started.elapsed()
    );

    dbs.admin(format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .await;
    let sent = within(async {
        loop {
            match store.append(&room.id, &ada, text("c2", "after")).await {
                Ok(sent) => break sent,
                Err(StoreError::Unavailable(_)) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
    })
    .await;
    assert_eq!(sent.event.seq, 3, "the failed attempt wrote nothing");
    let page = store
        .events(&room.id, EventRange::After(0), 10)
        .await
        .expect("reads again");
    assert_eq!(page.events.len(), 3);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_killed_under_load_never_turn_a_failed_batch_into_an_ok() {
    if Backend::postgres(1, "sessions_killed_under_load…").is_none() {
        return;
    }
    let dbs = Databases::create(1).await;
    let store = Arc::new(
        PgStore::connect(&dbs.urls(), &StoreOptions::default())
            .await
            .expect("connects"),
    );
    let ada = store
        .create_user(&UserName::parse("ada").expect("valid"), "h")
        .await
        .expect("created");
    let name = RoomName::parse("general").expect("valid");
    let room = store
        .create_room(&ada, &name, Visibility::Public)
        .await
        .expect("created")
        .room;
    let mut tasks = JoinSet::new();
    for t in 0..8 {
        let (store, room_id, ada) = (Arc::clone(&store), room.id.clone(), ada.clone());
        tasks.spawn(async move {
            let mut answers = Vec::new();
            for i in 0..50 {
                let client = format!("t{t}i{i}");
                let sent = store.append(&room_id, &ada, text(&client, "x")).await;
                answers.push((client, sent.map(|a| a.event.seq)));
            }
            answers
        });
    }
    let db = dbs.name(0).to_owned();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        dbs.admin(terminate(&db)).await;
    }
    let mut acked = BTreeMap::new();
    let mut failed = Vec::new();
    while let Some(result) = within(tasks.join_next()).await {
        for (client, answer) in result.expect("the task finished") {
            match answer {
                Ok(seq) => {
                    acked.insert(client, seq);
                }
                Err(StoreError::Unavailable(_)) => failed.push(client),
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "under killed sessions: {} acked, {} unavailable",
        acked.len(),
        failed.len()
    );
    // Every acked event is stored under the seq it was acked with; seqs have no gap.
    let events = store
        .events(&room.id, EventRange::After(0), 1000)
        .await
        .expect("reads")
        .events;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    let stored: BTreeMap<String, u64> = events
        .iter()
        .filter_map(|e| Some((e.client_id.clone()?, e.seq)))
        .collect();
    for (client, seq) in &acked {
        assert_eq!(stored.get(client), Some(seq), "acked {client} is stored");
    }
    // A retry of a failed write stores it once.
    for client in &failed {
        store
            .append(&room.id, &ada, text(client, "x"))
            .await
            .expect("stored on retry");
    }
    let total = store
        .events(&room.id, EventRange::After(0), 1000)
        .await
        .expect("reads")
        .events
        .len();
    assert_eq!(total, 401, "the join and 400 messages, each once");
    store.close().await;
}
