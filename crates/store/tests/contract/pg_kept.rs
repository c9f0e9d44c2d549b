//! What a PostgreSQL writer keeps from batch to batch, seen from other nodes: the senders it
//! knows to be members (true only while the room's seq has not moved), and client ids it no
//! longer looks up before inserting (a repeat runs its batch again).

use std::sync::Arc;

use tokio::task::JoinSet;

use crate::pg_cluster::{databases, node, room, stored_seqs, user};
use crate::{is_forbidden, text, within};
use confab_store::postgres::PgStore;
use confab_store::{Store, StoreOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_through_another_node_can_no_longer_send_through_the_first() {
    let Some(dbs) = databases(1, "a_member_removed_through_another_node…").await else {
        return;
    };
    let urls = dbs.urls();
    let (a, b) = (node(&urls).await, node(&urls).await);
    let (ada, bob, cy) = (
        user(&a, "ada").await,
        user(&a, "bob").await,
        user(&a, "cy").await,
    );
    let r = room(&a, &ada, "kept").await;
    a.join(&r.id, &bob).await.expect("joined");
    a.append(&r.id, &bob, text("b1", "hi"))
        .await
        .expect("a member sends");
    assert!(
        is_forbidden(a.append(&r.id, &cy, text("c1", "hi")).await),
        "not a member yet"
    );
    // Node a now knows bob is a member and cy is not; b changes both.
    b.remove_member(&r.id, &ada, &bob).await.expect("removed");
    b.join(&r.id, &cy).await.expect("joined through b");
    assert!(
        is_forbidden(a.append(&r.id, &bob, text("b2", "hi")).await),
        "a removed member is refused by the node that knew him as a member"
    );
    let sent = a
        .append(&r.id, &cy, text("c2", "hi"))
        .await
        .expect("a new member sends through the node that knew her as a stranger");
    assert!(!sent.duplicate);
    // ada's join, bob's join, b1, bob's removal, cy's join, c2.
    assert_eq!(stored_seqs(&a, &r.id).await, (1..=6).collect::<Vec<_>>());
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_sent_through_another_node_do_not_make_a_member_a_stranger() {
    let Some(dbs) = databases(1, "texts_sent_through_another_node…").await else {
        return;
    };
    let urls = dbs.urls();
    let (a, b) = (node(&urls).await, node(&urls).await);
    let ada = user(&a, "ada").await;
    let r = room(&a, &ada, "busy").await;
    for i in 0..6 {
        let store = if i % 2 == 0 { &a } else { &b };
        let sent = store
            .append(&r.id, &ada, text(&format!("t{i}"), "hi"))
            .await
            .expect("stored");
        assert_eq!(sent.event.seq, i + 2);
    }
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeated_client_id_runs_its_batch_again_and_gets_the_first_ack() {
    let Some(dbs) = databases(1, "a_repeated_client_id_runs_its_batch_again…").await else {
        return;
    };
    let urls = dbs.urls();
    let (a, b) = (node(&urls).await, node(&urls).await);
    let ada = user(&a, "ada").await;
    let r = room(&a, &ada, "again").await;
    let first = a
        .append(&r.id, &ada, text("once", "hi"))
        .await
        .expect("stored");
    let before = b.writer_stats();
    // The repeat goes through another node, in batches with new texts around it.
    let mut tasks = JoinSet::new();
    for i in 0..40 {
        let (store, room_id, ada) = (Arc::clone(&b), r.id.clone(), ada.clone());
        let client = if i == 20 {
            "once".into()
        } else {
            format!("n{i}")
        };
        tasks.spawn(async move { (i, store.append(&room_id, &ada, text(&client, "hi")).await) });
    }
    while let Some(done) = within(tasks.join_next()).await {
        let (i, result) = done.expect("the task finished");
        let sent = result.expect("stored or found");
        if i == 20 {
            assert!(sent.duplicate);
            assert_eq!(sent.event, first.event, "the first ack, not a new event");
        } else {
            assert!(!sent.duplicate);
        }
    }
    let after = b.writer_stats();
    assert_eq!(after.repeated_batches - before.repeated_batches, 1);
    assert_eq!(after.failed_batches, before.failed_batches);
    assert_eq!(after.events - before.events, 39);
    // The room's join, the first text, then 39 new ones: no seq taken by the repeat.
    assert_eq!(stored_seqs(&a, &r.id).await, (1..=41).collect::<Vec<_>>());
    // Now looked up first: another repeat finds it without running a batch twice.
    let again = b
        .append(&r.id, &ada, text("n3", "hi"))
        .await
        .expect("found");
    assert!(again.duplicate);
    assert_eq!(b.writer_stats().repeated_batches, after.repeated_batches);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_of_known_members_commit_in_one_statement_guarded_by_the_rooms_seq() {
    let Some(dbs) = databases(1, "texts_of_known_members_commit_in_one_statement…").await else {
        return;
    };
    let urls = dbs.urls();
    let (a, b) = (node(&urls).await, node(&urls).await);
    let ada = user(&a, "ada").await;
    let r = room(&a, &ada, "fast").await;
    // The first text reads the room and ada's membership; the next ones need not.
    a.append(&r.id, &ada, text("a1", "hi"))
        .await
        .expect("stored");
    let before = a.writer_stats();
    for i in 2..=4 {
        let sent = a
            .append(&r.id, &ada, text(&format!("a{i}"), "hi"))
            .await
            .expect("stored");
        assert_eq!(sent.event.seq, i + 1);
    }
    let after = a.writer_stats();
    assert_eq!(after.fast_commits - before.fast_commits, 3);
    assert_eq!(after.commits - before.commits, 3);
    // Another node moves the room: a's next statement finds its guard broken, writes nothing,
    // and the text goes through a batch that reads the room first.
    let other = b
        .append(&r.id, &ada, text("b1", "hi"))
        .await
        .expect("stored");
    assert_eq!(other.event.seq, 6);
    let sent = a
        .append(&r.id, &ada, text("a5", "hi"))
        .await
        .expect("stored");
    assert_eq!(sent.event.seq, 7);
    let last = a.writer_stats();
    assert_eq!(
        last.fast_commits, after.fast_commits,
        "the guard held nothing"
    );
    assert_eq!(last.commits - after.commits, 1);
    assert_eq!(stored_seqs(&b, &r.id).await, (1..=7).collect::<Vec<_>>());
    // A repeat of a stored id through the one statement: nothing written, the first ack.
    let again = a
        .append(&r.id, &ada, text("a2", "hi"))
        .await
        .expect("found");
    assert!(again.duplicate);
    assert_eq!(again.event.seq, 3);
    assert_eq!(stored_seqs(&b, &r.id).await, (1..=7).collect::<Vec<_>>());
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_over_rooms_some_moved_by_another_node_writes_each_text_once_in_order() {
    let Some(dbs) = databases(1, "a_batch_over_rooms_some_moved_by_another_node…").await else {
        return;
    };
    let urls = dbs.urls();
    // One writer, so that texts to both rooms share batches.
    let options = StoreOptions {
        pg_writers: 1,
        ..StoreOptions::default()
    };
    let a = Arc::new(PgStore::connect(&urls, &options).await.expect("connects"));
    let b = node(&urls).await;
    let ada = user(&a, "ada").await;
    let rooms = [room(&a, &ada, "one").await, room(&a, &ada, "two").await];
    for r in &rooms {
        a.append(&r.id, &ada, text(&format!("warm-{}", r.id), "hi"))
            .await
            .expect("stored");
    }
    for round in 0..5 {
        // The other node moves the first room only, then a batch goes to both.
        b.append(&rooms[0].id, &ada, text(&format!("b{round}"), "hi"))
            .await
            .expect("stored");
        let mut tasks = JoinSet::new();
        for i in 0..20 {
            let (store, room_id, ada) = (Arc::clone(&a), rooms[i % 2].id.clone(), ada.clone());
            let client = format!("a{round}-{i}");
            tasks.spawn(async move { store.append(&room_id, &ada, text(&client, "hi")).await });
        }
        while let Some(done) = within(tasks.join_next()).await {
            let sent = done.expect("the task finished").expect("stored");
            assert!(!sent.duplicate);
        }
    }
    // Room one: ada's join, the warm-up text, then 5 × (1 from b + 10 from a); room two: the
    // join, the warm-up, 5 × 10.
    assert_eq!(
        stored_seqs(&b, &rooms[0].id).await,
        (1..=57).collect::<Vec<_>>()
    );
    assert_eq!(
        stored_seqs(&b, &rooms[1].id).await,
        (1..=52).collect::<Vec<_>>()
    );
    assert!(
        a.writer_stats().fast_commits > 0,
        "room two went the one-statement way"
    );
    a.close().await;
    b.close().await;
}
