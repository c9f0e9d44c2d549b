//! PostgreSQL as several nodes see it: concurrent writers on the same databases, shards added
//! later, migrations racing at start-up, and what one batch costs.

use std::collections::BTreeSet;
use std::sync::Arc;

use confab_domain::text::{RoomName, UserName};
use confab_protocol::{Room, UserRef, Visibility};
use confab_store::postgres::PgStore;
use confab_store::{EventRange, Store, StoreError, StoreOptions};
use tokio::task::JoinSet;

use crate::pg::Databases;
use crate::{Backend, text, within};

/// Fresh databases, or `None` (having said so) when no test server is configured.
pub(crate) async fn databases(n: usize, test: &str) -> Option<Databases> {
    Backend::postgres(n, test)?;
    Some(Databases::create(n).await)
}

pub(crate) async fn node(urls: &[String]) -> Arc<PgStore> {
    Arc::new(
        PgStore::connect(urls, &StoreOptions::default())
            .await
            .expect("the node connects"),
    )
}

pub(crate) async fn user(store: &PgStore, name: &str) -> UserRef {
    let name = UserName::parse(name).expect("a valid name");
    store.create_user(&name, "h").await.expect("created")
}

pub(crate) async fn room(store: &PgStore, owner: &UserRef, name: &str) -> Room {
    let name = RoomName::parse(name).expect("a valid name");
    store
        .create_room(owner, &name, Visibility::Public)
        .await
        .expect("created")
        .room
}

/// The seqs of every event stored in a room, oldest first.
pub(crate) async fn stored_seqs(store: &PgStore, room_id: &str) -> Vec<u64> {
    let page = store
        .events(room_id, EventRange::After(0), 100_000)
        .await
        .expect("reads");
    page.events.iter().map(|e| e.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_appending_to_the_same_rooms_get_contiguous_seqs_without_repeats() {
    let Some(dbs) = databases(2, "two_nodes_appending…").await else {
        return;
    };
    let urls = dbs.urls();
    let (a, b) = (node(&urls).await, node(&urls).await);
    let (ada, bob) = (user(&a, "ada").await, user(&a, "bob").await);
    // One room on each shard.
    let mut rooms: Vec<Room> = Vec::new();
    for i in 0..64 {
        let r = room(&a, &ada, &format!("room{i}")).await;
        let shard = &r.id[..3];
        if !rooms.iter().any(|known| &known.id[..3] == shard) {
            rooms.push(r);
        }
        if rooms.len() == 2 {
            break;
        }
    }
    assert_eq!(rooms.len(), 2, "rooms on both shards");
    for r in &rooms {
        b.join(&r.id, &bob)
            .await
            .expect("joined through the other node");
    }
    let mut tasks = JoinSet::new();
    for (n, store) in [a.clone(), b.clone()].into_iter().enumerate() {
        for t in 0..30 {
            let (store, rooms) = (Arc::clone(&store), rooms.clone());
            let who = if t % 2 == 0 { ada.clone() } else { bob.clone() };
            tasks.spawn(async move {
                let mut acked = Vec::new();
                for i in 0..10 {
                    let r = &rooms[i % 2];
                    let client = format!("n{n}t{t}i{i}");
                    let sent = store
                        .append(&r.id, &who, text(&client, "hi"))
                        .await
                        .expect("stored");
                    assert!(!sent.duplicate);
                    acked.push((r.id.clone(), sent.event.seq));
                }
                acked
            });
        }
    }
    let mut acked = BTreeSet::new();
    while let Some(result) = within(tasks.join_next()).await {
        for pair in result.expect("the task finished") {
            assert!(acked.insert(pair.clone()), "seq {pair:?} acked twice");
        }
    }
    assert_eq!(acked.len(), 600);
    for r in &rooms {
        // seq 1 is ada's join, 2 bob's, then 300 appends.
        let mine: Vec<u64> = acked
            .iter()
            .filter(|(id, _)| id == &r.id)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(mine, (3..=302).collect::<Vec<u64>>());
        for store in [&a, &b] {
            assert_eq!(
                stored_seqs(store, &r.id).await,
                (1..=302).collect::<Vec<_>>()
            );
            let info = store.room(&r.id).await.expect("reads").expect("found");
            assert_eq!(info.room.last_seq, 302);
        }
    }
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_room_created_before_a_shard_was_added_still_works_with_two_shards() {
    let Some(dbs) = databases(2, "a_room_created_before_a_shard_was_added…").await else {
        return;
    };
    let urls = dbs.urls();
    let one = node(&urls[..1]).await;
    let ada = user(&one, "ada").await;
    let old = room(&one, &ada, "old").await;
    assert!(old.id.starts_with("r0_"), "{}", old.id);
    one.append(&old.id, &ada, text("c1", "before"))
        .await
        .expect("stored");
    one.close().await;

    let two = node(&urls).await;
    assert_eq!(two.shard_count(), 2);
    let sent = two
        .append(&old.id, &ada, text("c2", "after"))
        .await
        .expect("the old room takes writes");
    assert_eq!(sent.event.seq, 3);
    let again = two
        .append(&old.id, &ada, text("c1", "repeat"))
        .await
        .expect("answered");
    assert!(again.duplicate, "client ids from before are still known");
    let mut ids = vec![old.id.clone()];
    for i in 0..24 {
        ids.push(room(&two, &ada, &format!("new{i}")).await.id);
    }
    assert!(
        ids.iter().any(|id| id.starts_with("r1_")),
        "new rooms go to the new shard too"
    );
    ids.sort();
    let mine: Vec<String> = two
        .rooms_of(&ada.id)
        .await
        .expect("reads")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(mine, ids);
    assert_eq!(
        two.public_rooms("", 100).await.expect("reads").len(),
        25,
        "public rooms of every shard"
    );
    two.close().await;

    // The list may grow at the end, never change order.
    let swapped = vec![urls[1].clone(), urls[0].clone()];
    let refused = PgStore::connect(&swapped, &StoreOptions::default()).await;
    assert!(matches!(refused, Err(StoreError::Config(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_starting_at_once_on_new_databases_all_migrate() {
    let Some(dbs) = databases(2, "three_nodes_starting_at_once…").await else {
        return;
    };
    let urls = dbs.urls();
    let options = StoreOptions::default();
    for round in 0..2 {
        let (x, y, z) = tokio::join!(
            PgStore::connect(&urls, &options),
            PgStore::connect(&urls, &options),
            PgStore::connect(&urls, &options),
        );
        let nodes = [
            x.expect("node 1 starts"),
            y.expect("node 2 starts"),
            z.expect("node 3 starts"),
        ];
        let ada = user(&nodes[0], &format!("ada{round}")).await;
        assert_eq!(nodes[2].find_user(&ada.id).await.expect("reads"), Some(ada));
        for n in &nodes {
            n.close().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_commit_in_few_transactions_each_with_one_multi_row_insert() {
    let Some(dbs) = databases(1, "concurrent_appends_commit_in_few_transactions…").await else {
        return;
    };
    let store = node(&dbs.urls()).await;
    let ada = user(&store, "ada").await;
    let r = room(&store, &ada, "busy").await;
    let before = store.writer_stats();
    let mut tasks = JoinSet::new();
    for i in 0..300 {
        let (store, room_id, ada) = (Arc::clone(&store), r.id.clone(), ada.clone());
        tasks.spawn(async move {
            store
                .append(&room_id, &ada, text(&format!("c{i}"), "hi"))
                .await
                .map(|a| a.event.seq)
        });
    }
    while let Some(result) = within(tasks.join_next()).await {
        result.expect("the task finished").expect("stored");
    }
    let after = store.writer_stats();
    let commits = after.commits - before.commits;
    let statements = after.event_statements - before.event_statements;
    assert_eq!(after.writes - before.writes, 300);
    assert_eq!(after.events - before.events, 300);
    assert!(commits < 300, "{commits} commits for 300 appends");
    assert_eq!(statements, commits, "one events insert per transaction");
    assert_eq!(
        stored_seqs(&store, &r.id).await,
        (1..=301).collect::<Vec<_>>()
    );
    store.close().await;
}

#[tokio::test]
async fn migrating_ahead_of_start_up_is_idempotent_and_leaves_a_store_that_opens() {
    let Some(dbs) = databases(2, "migrating_ahead_of_start_up…").await else {
        return;
    };
    let options = StoreOptions::default();
    confab_store::migrate(&dbs.url_list(), &options)
        .await
        .expect("migrated");
    confab_store::migrate(&dbs.url_list(), &options)
        .await
        .expect("migrated again");
    let store = node(&dbs.urls()).await;
    let ada = user(&store, "ada").await;
    room(&store, &ada, "general").await;
    store.close().await;
}
