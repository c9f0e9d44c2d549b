//! Tests of the SQLite machinery itself: batching, savepoints and texts, failures, schema
//! version.
//! The behaviour every back end shares is tested in `tests/contract`.

use std::sync::Arc;

use confab_domain::text::{RoomName, UserName};
use confab_protocol::{UserRef, Visibility};
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::writer::{self, Command, Counters};
use super::{SqliteStore, checkpoint, schema};
use crate::{Append, Store, StoreError, StoreOptions, StoreResult};

fn writer_conn(dir: &tempfile::TempDir) -> Connection {
    schema::open_writer(&dir.path().join("t.db"), "FULL").expect("opens")
}

/// Runs one command alone and returns its answer.
fn run_one<T>(
    conn: &mut Connection,
    make: impl FnOnce(writer::Reply<T>) -> Command,
) -> StoreResult<T> {
    let (tx, mut rx) = oneshot::channel();
    writer::run_batch(conn, vec![make(tx)], &Counters::default());
    rx.try_recv().expect("answered")
}

fn setup(conn: &mut Connection) -> (UserRef, UserRef, String) {
    let mut user = |name: &str| {
        let name = name.to_owned();
        run_one(conn, |reply| Command::CreateUser {
            name,
            password_hash: "h".into(),
            reply,
        })
        .expect("created")
    };
    let (ada, bob) = (user("ada"), user("bob"));
    let owner = ada.clone();
    let change = run_one(conn, |reply| Command::CreateRoom {
        owner,
        name: "general".into(),
        visibility: Visibility::Public,
        reply,
    })
    .expect("created");
    (ada, bob, change.room.id)
}

fn append(
    room_id: &str,
    user: &UserRef,
    append: Append,
) -> (Command, oneshot::Receiver<StoreResult<crate::Appended>>) {
    let (reply, rx) = oneshot::channel();
    let command = Command::Append {
        room_id: room_id.to_owned(),
        user: user.clone(),
        append,
        reply,
    };
    (command, rx)
}

fn text(client_id: &str) -> Append {
    Append::Text {
        client_id: client_id.into(),
        body: "hi".into(),
    }
}

#[test]
fn a_refused_write_rolls_back_only_its_own_savepoint_in_a_shared_transaction() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut conn = writer_conn(&dir);
    let (ada, bob, room) = setup(&mut conn);
    let counters = Counters::default();
    let (c1, mut r1) = append(&room, &ada, text("a"));
    // Bob is no member of the room: refused after nothing, but in the middle of the batch.
    let (c2, mut r2) = append(&room, &bob, text("b"));
    let (c3, mut r3) = append(
        &room,
        &ada,
        Append::Edit {
            target: 1,
            body: "x".into(),
        },
    );
    let (c4, mut r4) = append(&room, &ada, text("a"));
    let (c5, mut r5) = append(&room, &ada, text("c"));
    writer::run_batch(&mut conn, vec![c1, c2, c3, c4, c5], &counters);

    let seq = |r: StoreResult<crate::Appended>| r.map(|a| (a.event.seq, a.duplicate));
    assert_eq!(
        seq(r1.try_recv().expect("answered")).expect("stored"),
        (2, false)
    );
    assert!(matches!(
        r2.try_recv().expect("answered"),
        Err(StoreError::Rule(_))
    ));
    assert!(matches!(
        r3.try_recv().expect("answered"),
        Err(StoreError::Rule(_))
    ));
    assert_eq!(
        seq(r4.try_recv().expect("answered")).expect("a duplicate"),
        (2, true)
    );
    assert_eq!(
        seq(r5.try_recv().expect("answered")).expect("stored"),
        (3, false)
    );
    assert_eq!(
        counters.commits.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        counters.writes.load(std::sync::atomic::Ordering::Relaxed),
        5
    );
    let last: u64 = conn
        .query_row("SELECT last_seq FROM rooms WHERE id = ?1", [&room], |r| {
            r.get(0)
        })
        .expect("reads");
    assert_eq!(last, 3);
}

#[test]
fn texts_around_a_membership_change_in_one_batch_see_it_and_keep_seqs_contiguous() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut conn = writer_conn(&dir);
    let (ada, bob, room) = setup(&mut conn);
    let (c1, mut r1) = append(&room, &ada, text("a"));
    let (c2, mut r2) = append(&room, &bob, text("b"));
    let (join, mut joined) = oneshot::channel();
    let c3 = Command::Join {
        room_id: room.clone(),
        user: bob.clone(),
        reply: join,
    };
    let (c4, mut r4) = append(&room, &bob, text("b"));
    let (c5, mut r5) = append(&room, &ada, text("c"));
    writer::run_batch(&mut conn, vec![c1, c2, c3, c4, c5], &Counters::default());

    let seq = |r: StoreResult<crate::Appended>| r.map(|a| a.event.seq).expect("stored");
    assert_eq!(seq(r1.try_recv().expect("answered")), 2);
    assert!(matches!(
        r2.try_recv().expect("answered"),
        Err(StoreError::Rule(_))
    ));
    let change = joined.try_recv().expect("answered").expect("joined");
    assert_eq!(
        change.events[0].seq, 3,
        "the join follows the text before it"
    );
    assert_eq!(seq(r4.try_recv().expect("answered")), 4);
    assert_eq!(seq(r5.try_recv().expect("answered")), 5);
    let (last, events): (u64, u64) = conn
        .query_row(
            "SELECT last_seq, (SELECT count(*) FROM events WHERE room_id = ?1) \
             FROM rooms WHERE id = ?1",
            [&room],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("reads");
    assert_eq!((last, events), (5, 5));
}

#[test]
fn a_batch_that_cannot_begin_answers_every_write_unavailable() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut conn = writer_conn(&dir);
    let (ada, _, room) = setup(&mut conn);
    conn.busy_timeout(std::time::Duration::ZERO).expect("set");
    let other = Connection::open(dir.path().join("t.db")).expect("opens");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("takes the write lock");

    let (c1, mut r1) = append(&room, &ada, text("a"));
    let (c2, mut r2) = append(&room, &ada, text("b"));
    writer::run_batch(&mut conn, vec![c1, c2], &Counters::default());
    assert!(matches!(
        r1.try_recv().expect("answered"),
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        r2.try_recv().expect("answered"),
        Err(StoreError::Unavailable(_))
    ));

    other.execute_batch("ROLLBACK").expect("releases");
    let (c3, mut r3) = append(&room, &ada, text("a"));
    writer::run_batch(&mut conn, vec![c3], &Counters::default());
    let stored = r3.try_recv().expect("answered").expect("stored");
    assert_eq!(
        (stored.event.seq, stored.duplicate),
        (2, false),
        "nothing of the failed batch stayed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_writes_are_committed_together() {
    let dir = tempfile::tempdir().expect("a directory");
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("g.db"), &StoreOptions::default())
            .await
            .expect("opens"),
    );
    let name = UserName::parse("ada").expect("valid");
    let ada = store.create_user(&name, "h").await.expect("created");
    let room_name = RoomName::parse("busy").expect("valid");
    let room = store
        .create_room(&ada, &room_name, Visibility::Public)
        .await
        .expect("created")
        .room;
    let before = store.writer_stats();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let (store, room_id, ada) = (Arc::clone(&store), room.id.clone(), ada.clone());
        tasks.spawn(async move { store.append(&room_id, &ada, text(&format!("c{i}"))).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("finished").expect("stored");
    }
    let after = store.writer_stats();
    assert_eq!(after.writes - before.writes, 300);
    assert!(
        after.commits - before.commits < 300,
        "{before:?} → {after:?}"
    );
    store.close().await;
}

#[tokio::test]
async fn close_folds_the_wal_back_into_the_database() {
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("w.db");
    let store = SqliteStore::open(&path, &StoreOptions::default())
        .await
        .expect("opens");
    let name = UserName::parse("ada").expect("valid");
    store.create_user(&name, "h").await.expect("created");
    store.close().await;
    let wal = dir.path().join("w.db-wal");
    let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(size, 0);
}

#[tokio::test]
async fn the_wal_is_checkpointed_into_the_database_while_the_store_is_open() {
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("c.db");
    let store = SqliteStore::open(&path, &StoreOptions::default())
        .await
        .expect("opens");
    let before = std::fs::metadata(&path).map(|m| m.len()).expect("db file");
    let ada = store
        .create_user(&UserName::parse("ada").expect("valid"), "h")
        .await
        .expect("user");
    let room = store
        .create_room(
            &ada,
            &RoomName::parse("r").expect("valid"),
            Visibility::Public,
        )
        .await
        .expect("room")
        .room
        .id;
    for i in 0..300 {
        let a = Append::Text {
            client_id: format!("c{i}"),
            body: "x".repeat(200),
        };
        store.append(&room, &ada, a).await.expect("append");
    }
    // The checkpointer copies the WAL into the file by itself.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::metadata(&path).map(|m| m.len()).expect("db file") <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint while open"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    store.close().await;
}

#[test]
fn a_checkpoint_the_writer_was_asked_for_lets_the_wal_start_over() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut conn = writer_conn(&dir);
    let (ada, _, room) = setup(&mut conn);
    for i in 0..50 {
        let (c, _r) = append(&room, &ada, text(&format!("c{i}")));
        writer::run_batch(&mut conn, vec![c], &Counters::default());
    }
    // Columns: busy, frames in the WAL, frames copied. Reading it checkpoints nothing here:
    // the writer connection has `wal_autocheckpoint` off and nobody asked yet.
    let frames = |conn: &Connection| -> i64 {
        conn.query_row("PRAGMA wal_checkpoint(NOOP)", [], |r| r.get(1))
            .unwrap_or(-1)
    };
    let long = frames(&conn);
    assert!(long > 50, "{long} frames");
    let reset = checkpoint::WalReset::default();
    reset.run_if_asked(&conn);
    let (c, _r) = append(&room, &ada, text("not asked"));
    writer::run_batch(&mut conn, vec![c], &Counters::default());
    assert!(
        frames(&conn) > long,
        "without being asked the writer only appends"
    );

    reset.ask();
    reset.run_if_asked(&conn);
    let (c, _r) = append(&room, &ada, text("asked"));
    writer::run_batch(&mut conn, vec![c], &Counters::default());
    let restarted = frames(&conn);
    assert!(restarted < 10, "the WAL started over: {restarted} frames");
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("v.db");
    let conn = Connection::open(&path).expect("opens");
    conn.execute_batch("PRAGMA user_version = 2").expect("set");
    drop(conn);
    let result = SqliteStore::open(&path, &StoreOptions::default()).await;
    assert!(matches!(result, Err(StoreError::Config(_))));
}
