//! Many writers at once, group commit, and durability across a close.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use confab_protocol::{EventKind, Visibility};
use confab_store::{Append, EventRange, StoreError};
use tokio::task::JoinSet;

use crate::{Backend, Fixture, text, within};

async fn seqs_are_contiguous_under_concurrent_appends(b: Backend) {
    let f = Fixture::open(b).await;
    let mut users = Vec::new();
    for i in 0..20 {
        users.push(f.user(&format!("user{i}")).await);
    }
    let rooms = [
        f.room(&users[0], "one", Visibility::Public).await,
        f.room(&users[0], "two", Visibility::Public).await,
    ];
    for room in &rooms {
        for user in &users[1..] {
            f.store.join(&room.id, user).await.expect("joined");
        }
    }
    let mut tasks = JoinSet::new();
    for user in users.clone() {
        let store = Arc::clone(&f.store);
        let rooms = rooms.clone();
        tasks.spawn(async move {
            let mut acked = Vec::new();
            for i in 0..10 {
                let room = &rooms[i % 2];
                let sent = store
                    .append(&room.id, &user, text(&format!("c{i}"), "hi"))
                    .await
                    .expect("stored");
                assert!(!sent.duplicate);
                acked.push((room.id.clone(), sent.event.seq));
            }
            acked
        });
    }
    let mut acked: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    while let Some(result) = within(tasks.join_next()).await {
        for (room, seq) in result.expect("the task finished") {
            acked.entry(room).or_default().push(seq);
        }
    }
    for room in &rooms {
        let mut seqs = acked.remove(&room.id).expect("acks in every room");
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (21..=120).collect::<Vec<u64>>(),
            "after the 20 joins, no gap, no repeat"
        );
        let events = f.all_events(&room.id).await;
        let stored: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(stored, (1..=120).collect::<Vec<u64>>());
        let keys: BTreeSet<_> = events
            .iter()
            .filter(|e| e.kind == EventKind::Text)
            .map(|e| (e.from.id.clone(), e.client_id.clone()))
            .collect();
        assert_eq!(keys.len(), 100, "each (user, client_id) once");
        let info = f.store.room(&room.id).await.expect("reads").expect("found");
        assert_eq!(info.room.last_seq, 120);
    }
}

async fn many_concurrent_writes_all_complete_while_reads_go_on(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    let room = f.room(&ada, "busy", Visibility::Public).await;
    let mut tasks = JoinSet::new();
    for i in 0..500 {
        let (store, room_id, ada) = (Arc::clone(&f.store), room.id.clone(), ada.clone());
        tasks.spawn(async move {
            store
                .append(&room_id, &ada, text(&format!("c{i}"), "hi"))
                .await
                .map(|a| a.event.seq)
        });
    }
    // Reads are answered while the writer is busy.
    for _ in 0..20 {
        f.store
            .events(&room.id, EventRange::Newest, 10)
            .await
            .expect("reads");
    }
    let mut seqs = Vec::new();
    while let Some(result) = within(tasks.join_next()).await {
        seqs.push(result.expect("the task finished").expect("stored"));
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=501).collect::<Vec<u64>>());
}

async fn a_refused_write_does_not_fail_its_concurrent_neighbours(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, bob) = (f.user("ada").await, f.user("bob").await);
    let room = f.room(&ada, "general", Visibility::Public).await;
    f.store.join(&room.id, &bob).await.expect("joined");
    let target = f.say(&room, &ada, "first").await.event.seq;
    let mut tasks = JoinSet::new();
    for i in 0..100 {
        let (store, room_id) = (Arc::clone(&f.store), room.id.clone());
        let (ada, bob) = (ada.clone(), bob.clone());
        tasks.spawn(async move {
            if i % 2 == 0 {
                let sent = store
                    .append(&room_id, &ada, text(&format!("c{i}"), "ok"))
                    .await;
                (true, sent.map(|_| ()))
            } else {
                // Bob may not edit Ada's message.
                let body = "nope".to_owned();
                let edit = store
                    .append(&room_id, &bob, Append::Edit { target, body })
                    .await;
                (false, edit.map(|_| ()))
            }
        });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(result) = within(tasks.join_next()).await {
        match result.expect("the task finished") {
            (true, Ok(())) => ok += 1,
            (false, Err(StoreError::Rule(_))) => refused += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((ok, refused), (50, 50));
    let stored: Vec<u64> = f.all_events(&room.id).await.iter().map(|e| e.seq).collect();
    assert_eq!(stored, (1..=53).collect::<Vec<u64>>());
}

async fn data_survives_close_and_reopen_and_seqs_continue(b: Backend) {
    let mut f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    let room = f.room(&ada, "general", Visibility::Public).await;
    let first = f.say(&room, &ada, "c1").await.event;
    f.store
        .create_token("h", &ada.id, 42)
        .await
        .expect("stored");
    f.reopen().await;

    assert_eq!(
        f.store.find_user("ada").await.expect("reads"),
        Some(ada.clone())
    );
    assert_eq!(
        f.store
            .token("h")
            .await
            .expect("reads")
            .map(|t| t.expires_ts),
        Some(42)
    );
    assert_eq!(f.all_events(&room.id).await[1], first);
    let again = f
        .store
        .append(&room.id, &ada, text("c1", "again"))
        .await
        .expect("answered");
    assert!(again.duplicate, "client ids survive too");
    assert_eq!(f.say(&room, &ada, "c2").await.event.seq, 3);
    f.store.close().await;
}

crate::contract_tests!(
    seqs_are_contiguous_under_concurrent_appends,
    many_concurrent_writes_all_complete_while_reads_go_on,
    a_refused_write_does_not_fail_its_concurrent_neighbours,
    data_survives_close_and_reopen_and_seqs_continue,
);
