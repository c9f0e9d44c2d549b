//! Properties of seq assignment and idempotency over random concurrent sends.

use std::collections::BTreeMap;
use std::sync::Arc;

use confab_protocol::{EventKind, Visibility};
use proptest::prelude::*;
use tokio::task::JoinSet;

use crate::{Backend, Fixture, text, within};

/// One send: which room, which user, which client id.
type Send = (usize, usize, u8);

/// Runs the sends all at once and checks what the store answered and kept.
async fn check(b: Backend, sends: Vec<Send>) -> Result<(), TestCaseError> {
    let f = Fixture::open(b).await;
    let users = [f.user("ada").await, f.user("bob").await];
    let rooms = [
        f.room(&users[0], "one", Visibility::Public).await,
        f.room(&users[0], "two", Visibility::Public).await,
    ];
    for room in &rooms {
        f.store.join(&room.id, &users[1]).await.expect("joined");
    }
    let mut tasks = JoinSet::new();
    for (room, user, client) in sends.iter().copied() {
        let store = Arc::clone(&f.store);
        let (room_id, user) = (rooms[room].id.clone(), users[user].clone());
        tasks.spawn(async move {
            let sent = store
                .append(&room_id, &user, text(&format!("c{client}"), "x"))
                .await
                .expect("stored");
            ((room, user.id, client), sent)
        });
    }
    // Every answer for one key names the same event, and exactly one wrote it.
    let mut by_key: BTreeMap<_, Vec<_>> = BTreeMap::new();
    while let Some(result) = within(tasks.join_next()).await {
        let (key, sent) = result.expect("the task finished");
        by_key.entry(key).or_default().push(sent);
    }
    for answers in by_key.values() {
        prop_assert_eq!(answers.iter().filter(|a| !a.duplicate).count(), 1);
        prop_assert!(answers.iter().all(|a| a.event == answers[0].event));
    }
    for (i, room) in rooms.iter().enumerate() {
        let events = f.all_events(&room.id).await;
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        let texts = by_key.keys().filter(|(r, _, _)| *r == i).count() as u64;
        prop_assert_eq!(seqs, (1..=2 + texts).collect::<Vec<u64>>());
        let stored = events.iter().filter(|e| e.kind == EventKind::Text).count() as u64;
        prop_assert_eq!(stored, texts);
    }
    f.store.close().await;
    Ok(())
}

/// Runs `check` on a runtime of its own (proptest cases are synchronous).
fn run(b: Backend, sends: Vec<Send>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(check(b, sends))
}

/// Random sends: room, user and client id drawn from small sets, so repeats are common.
fn sends() -> impl Strategy<Value = Vec<Send>> {
    prop::collection::vec((0usize..2, 0usize..2, 0u8..6), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn concurrent_sends_with_repeated_client_ids_store_each_once_with_contiguous_seqs_on_sqlite(
        sends in sends()
    ) {
        run(Backend::Sqlite, sends)?;
    }
}

proptest! {
    // Each case creates databases: fewer cases, the same property.
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn concurrent_sends_with_repeated_client_ids_store_each_once_with_contiguous_seqs_on_postgres(
        sends in sends()
    ) {
        if let Some(b) = Backend::postgres(1, "concurrent_sends_…_on_postgres") {
            run(b, sends)?;
        } else {
            return Ok(());
        }
    }

    #[test]
    fn concurrent_sends_with_repeated_client_ids_store_each_once_with_contiguous_seqs_on_two_shards(
        sends in sends()
    ) {
        if let Some(b) = Backend::postgres(2, "concurrent_sends_…_on_two_shards") {
            run(b, sends)?;
        } else {
            return Ok(());
        }
    }
}
