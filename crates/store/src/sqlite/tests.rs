//! Tests of the SQLite machinery itself: batching, savepoints and texts, failures, schema
//! version.
//! The behaviour every back end shares is tested in `tests/contract`.

use std::sync::Arc;

use confab_domain::text::{RoomName, UserName};
use confab_protocol::{UserRef, Visibility};
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::client_ids;
use super::texts::Texts;
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
    run_one_with(conn, &mut Texts::default(), make)
}

/// Runs one command alone with the texts' memory of earlier batches (which only holds while
/// every write to the connection goes through it, as in the writer).
fn run_one_with<T>(
    conn: &mut Connection,
    texts: &mut Texts,
    make: impl FnOnce(writer::Reply<T>) -> Command,
) -> StoreResult<T> {
    let (tx, mut rx) = oneshot::channel();
    writer::run_batch(conn, vec![make(tx)], &Counters::default(), texts).answer(None);
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
    writer::run_batch(
        &mut conn,
        vec![c1, c2, c3, c4, c5],
        &counters,
        &mut Texts::default(),
    )
    .answer(None);

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
    writer::run_batch(
        &mut conn,
        vec![c1, c2, c3, c4, c5],
        &Counters::default(),
        &mut Texts::default(),
    )
    .answer(None);

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
fn what_texts_remember_between_batches_follows_membership_changes_and_rollbacks() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut conn = writer_conn(&dir);
    let (ada, bob, room) = setup(&mut conn);
    let mut texts = Texts::default();
    let stored_last = |conn: &Connection| -> u64 {
        conn.query_row("SELECT last_seq FROM rooms WHERE id = ?1", [&room], |r| {
            r.get(0)
        })
        .expect("reads")
    };
    assert_eq!(send(&mut conn, &mut texts, &room, &ada, "a"), (2, false));
    assert_eq!(stored_last(&conn), 2, "written at the batch's end");
    let (c, mut r) = append(&room, &bob, text("b"));
    writer::run_batch(&mut conn, vec![c], &Counters::default(), &mut texts).answer(None);
    assert!(matches!(
        r.try_recv().expect("answered"),
        Err(StoreError::Rule(_))
    ));

    // Bob joins, then ada removes him, in batches of their own: the next texts see both.
    let join = |user: &UserRef| {
        let (room_id, user) = (room.clone(), user.clone());
        move |reply| Command::Join {
            room_id,
            user,
            reply,
        }
    };
    run_one_with(&mut conn, &mut texts, join(&bob)).expect("joined");
    assert_eq!(send(&mut conn, &mut texts, &room, &bob, "b"), (4, false));
    let remove = |reply| Command::RemoveMember {
        room_id: room.clone(),
        actor: ada.clone(),
        target: bob.clone(),
        reply,
    };
    run_one_with(&mut conn, &mut texts, remove).expect("removed");
    let (c, mut r) = append(&room, &bob, text("c"));
    writer::run_batch(&mut conn, vec![c], &Counters::default(), &mut texts).answer(None);
    assert!(matches!(
        r.try_recv().expect("answered"),
        Err(StoreError::Rule(_))
    ));

    // A batch that does not commit forgets the seqs it took.
    conn.execute_batch(
        "CREATE TEMP TRIGGER boom BEFORE INSERT ON main.events WHEN NEW.body = 'boom' \
         BEGIN SELECT RAISE(ROLLBACK, 'boom'); END",
    )
    .expect("trigger");
    let (c1, mut r1) = append(&room, &ada, text("d"));
    let boom = Append::Text {
        client_id: "boom".into(),
        body: "boom".into(),
    };
    let (c2, mut r2) = append(&room, &ada, boom);
    writer::run_batch(&mut conn, vec![c1, c2], &Counters::default(), &mut texts).answer(None);
    assert!(r1.try_recv().expect("answered").is_err(), "rolled back");
    assert!(r2.try_recv().expect("answered").is_err());
    assert_eq!(stored_last(&conn), 5);
    assert_eq!(send(&mut conn, &mut texts, &room, &ada, "d"), (6, false));
    assert_eq!(stored_last(&conn), 6);
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
    writer::run_batch(
        &mut conn,
        vec![c1, c2],
        &Counters::default(),
        &mut Texts::default(),
    )
    .answer(None);
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
    writer::run_batch(
        &mut conn,
        vec![c3],
        &Counters::default(),
        &mut Texts::default(),
    )
    .answer(None);
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
        writer::run_batch(
            &mut conn,
            vec![c],
            &Counters::default(),
            &mut Texts::default(),
        )
        .answer(None);
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
    writer::run_batch(
        &mut conn,
        vec![c],
        &Counters::default(),
        &mut Texts::default(),
    )
    .answer(None);
    assert!(
        frames(&conn) > long,
        "without being asked the writer only appends"
    );

    reset.ask();
    reset.run_if_asked(&conn);
    let (c, _r) = append(&room, &ada, text("asked"));
    writer::run_batch(
        &mut conn,
        vec![c],
        &Counters::default(),
        &mut Texts::default(),
    )
    .answer(None);
    let restarted = frames(&conn);
    assert!(restarted < 10, "the WAL started over: {restarted} frames");
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("v.db");
    let conn = Connection::open(&path).expect("opens");
    conn.execute_batch(&format!(
        "PRAGMA user_version = {}",
        schema::SCHEMA_VERSION + 1
    ))
    .expect("set");
    drop(conn);
    let result = SqliteStore::open(&path, &StoreOptions::default()).await;
    assert!(matches!(result, Err(StoreError::Config(_))));
}

fn stored_ids(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM client_ids", [], |r| r.get(0))
        .expect("counts")
}

/// Runs one text in its own batch: (seq, duplicate).
fn send(
    conn: &mut Connection,
    ids: &mut Texts,
    room: &str,
    user: &UserRef,
    client_id: &str,
) -> (u64, bool) {
    let (c, mut r) = append(room, user, text(client_id));
    writer::run_batch(conn, vec![c], &Counters::default(), ids).answer(None);
    let a = r.try_recv().expect("answered").expect("stored");
    (a.event.seq, a.duplicate)
}

#[test]
fn a_retried_text_is_found_in_its_batch_in_memory_and_after_a_merge() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut conn = writer_conn(&dir);
    let mut ids = Texts::default();
    let (ada, bob, room) = setup(&mut conn);
    let (c1, mut r1) = append(&room, &ada, text("x"));
    let (c2, mut r2) = append(&room, &ada, text("x"));
    writer::run_batch(&mut conn, vec![c1, c2], &Counters::default(), &mut ids).answer(None);
    let first = r1.try_recv().expect("answered").expect("stored");
    let again = r2.try_recv().expect("answered").expect("stored");
    assert_eq!((first.event.seq, first.duplicate), (2, false));
    assert_eq!((again.event.seq, again.duplicate), (2, true), "same batch");
    assert_eq!(again.event.id, first.event.id);

    assert_eq!(
        send(&mut conn, &mut ids, &room, &ada, "x"),
        (2, true),
        "in memory"
    );
    assert_eq!(stored_ids(&conn), 0, "not merged yet");
    ids.ids().merge(&conn);
    assert_eq!(stored_ids(&conn), 1);
    assert_eq!(
        send(&mut conn, &mut ids, &room, &ada, "x"),
        (2, true),
        "from the table"
    );

    // The same id from another sender is another message.
    run_one_with(&mut conn, &mut ids, |reply| Command::Join {
        room_id: room.clone(),
        user: bob.clone(),
        reply,
    })
    .expect("joined");
    assert_eq!(send(&mut conn, &mut ids, &room, &bob, "x"), (4, false));
    let mark: u64 = conn
        .query_row(
            "SELECT client_ids_seq FROM rooms WHERE id = ?1",
            [&room],
            |r| r.get(0),
        )
        .expect("reads");
    assert_eq!(
        mark, 2,
        "the merge marked the room through its last seq then"
    );
}

#[test]
fn ids_committed_but_not_merged_are_recovered_at_start_up() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut conn = writer_conn(&dir);
    let (ada, _, room) = setup(&mut conn);
    let mut ids = Texts::default();
    assert_eq!(send(&mut conn, &mut ids, &room, &ada, "early"), (2, false));
    ids.ids().merge(&conn);
    assert_eq!(send(&mut conn, &mut ids, &room, &ada, "late"), (3, false));
    // The process stops here: "late" was committed and acknowledged, never merged.
    drop(ids);
    drop(conn);
    assert_eq!(
        stored_ids(&Connection::open(dir.path().join("t.db")).expect("opens")),
        1
    );

    let mut conn = writer_conn(&dir);
    assert_eq!(stored_ids(&conn), 2, "recovered from the events");
    let mut ids = Texts::default();
    assert_eq!(send(&mut conn, &mut ids, &room, &ada, "late"), (3, true));
    assert_eq!(send(&mut conn, &mut ids, &room, &ada, "early"), (2, true));
    assert_eq!(send(&mut conn, &mut ids, &room, &ada, "new"), (4, false));
    assert_eq!(stored_ids(&conn), 2, "\"new\" waits in memory");
    client_ids::recover(&conn).expect("recovers again");
    ids.ids().merge(&conn);
    assert_eq!(
        stored_ids(&conn),
        3,
        "an id recovered and merged is stored once"
    );
}

#[test]
fn a_version_1_database_is_upgraded_and_keeps_its_client_ids() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut conn = writer_conn(&dir);
    let (ada, _, room) = setup(&mut conn);
    let mut ids = Texts::default();
    assert_eq!(send(&mut conn, &mut ids, &room, &ada, "old"), (2, false));
    // Back to version 1: ids only in an index on events.
    events_as_in_version_2(&conn);
    conn.execute_batch(
        "DROP TABLE client_ids;
         ALTER TABLE rooms DROP COLUMN client_ids_seq;
         CREATE UNIQUE INDEX events_client_id
             ON events (room_id, from_id, client_id) WHERE client_id IS NOT NULL;
         PRAGMA user_version = 1;",
    )
    .expect("downgraded");
    drop(conn);

    let mut conn = writer_conn(&dir);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("reads");
    assert_eq!(version, schema::SCHEMA_VERSION);
    let old_index: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'events_client_id'",
            [],
            |r| r.get(0),
        )
        .expect("reads");
    assert_eq!(old_index, 0, "the old index is gone");
    let mut ids = Texts::default();
    assert_eq!(send(&mut conn, &mut ids, &room, &ada, "old"), (2, true));
}

#[test]
fn with_the_id_filter_retries_are_still_found_and_new_ids_are_new() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut conn = writer_conn(&dir);
    let (ada, _, room) = setup(&mut conn);
    let mut ids = Texts::default();
    assert_eq!(send(&mut conn, &mut ids, &room, &ada, "old"), (2, false));
    ids.ids().merge(&conn);

    let mut ids = Texts::new(client_ids::ClientIds::with_filter(&dir.path().join("t.db")));
    // Likely sent while the scan runs; kept for the filter either way.
    assert_eq!(send(&mut conn, &mut ids, &room, &ada, "during"), (3, false));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ids.ids().filter_ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "the filter was never built"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    ids.ids().merge(&conn);
    assert_eq!(send(&mut conn, &mut ids, &room, &ada, "old"), (2, true));
    assert_eq!(send(&mut conn, &mut ids, &room, &ada, "during"), (3, true));
    assert_eq!(send(&mut conn, &mut ids, &room, &ada, "new"), (4, false));
    ids.ids().merge(&conn);
    assert_eq!(send(&mut conn, &mut ids, &room, &ada, "new"), (4, true));
}

/// Turns the events table back into the `WITHOUT ROWID` table of versions 1 and 2.
fn events_as_in_version_2(conn: &Connection) {
    conn.execute_batch(
        "ALTER TABLE events RENAME TO events_v3;
         DROP INDEX events_seq;
         DROP INDEX events_edits;
         CREATE TABLE events (
             room_id TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL,
             from_id TEXT NOT NULL, from_name TEXT NOT NULL, by_id TEXT, by_name TEXT,
             body TEXT, target INTEGER, deleted INTEGER NOT NULL DEFAULT 0,
             ts INTEGER NOT NULL, client_id TEXT,
             PRIMARY KEY (room_id, seq)
         ) WITHOUT ROWID;
         INSERT INTO events SELECT room_id, seq, id, kind, from_id, from_name, by_id, by_name,
             body, target, deleted, ts, client_id FROM events_v3;
         DROP TABLE events_v3;
         CREATE INDEX events_edits ON events (room_id, target) WHERE kind = 'edit';
         PRAGMA user_version = 2;",
    )
    .expect("back to version 2");
}

#[test]
fn a_version_2_database_gets_its_events_moved_into_a_rowid_table() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut conn = writer_conn(&dir);
    let (ada, _, room) = setup(&mut conn);
    let mut texts = Texts::default();
    for n in 0..5 {
        send(&mut conn, &mut texts, &room, &ada, &format!("m{n}"));
    }
    let events = |conn: &Connection| -> Vec<(u64, String, Option<String>)> {
        let mut st = conn
            .prepare("SELECT seq, id, client_id FROM events WHERE room_id = ?1 ORDER BY seq")
            .expect("prepares");
        st.query_map([&room], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("reads")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let before = events(&conn);
    assert_eq!(before.len(), 6, "the room's creation and five texts");
    events_as_in_version_2(&conn);
    drop(conn);

    let mut conn = writer_conn(&dir);
    assert_eq!(events(&conn), before, "every event kept, in order");
    let sql = |name: &str| -> String {
        conn.query_row(
            "SELECT sql FROM sqlite_master WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .expect("exists")
    };
    assert!(!sql("events").contains("WITHOUT ROWID"));
    assert!(sql("events_seq").contains("UNIQUE"));
    assert!(sql("events_edits").contains("edit"));
    let old: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'events_v2'",
            [],
            |r| r.get(0),
        )
        .expect("reads");
    assert_eq!(old, 0);
    let mut texts = Texts::default();
    assert_eq!(send(&mut conn, &mut texts, &room, &ada, "m4"), (6, true));
    assert_eq!(send(&mut conn, &mut texts, &room, &ada, "m5"), (7, false));
    let dup = conn.execute(
        "INSERT INTO events (room_id, seq, id, kind, from_id, from_name, ts) \
         VALUES (?1, 7, 'x', 'text', 'u', 'u', 0)",
        [&room],
    );
    assert!(dup.is_err(), "(room, seq) is still unique");
}

#[test]
fn a_due_merge_goes_a_few_rooms_per_batch_and_a_rolled_back_slice_is_merged_again() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut conn = writer_conn(&dir);
    let (ada, _, first) = setup(&mut conn);
    let mut texts = Texts::default();
    let mut rooms = vec![first];
    for name in ["second", "third"] {
        let change = run_one_with(&mut conn, &mut texts, |reply| Command::CreateRoom {
            owner: ada.clone(),
            name: name.into(),
            visibility: Visibility::Public,
            reply,
        })
        .expect("created");
        rooms.push(change.room.id);
    }
    // 1,000 ids in each room: two rooms fit in a slice of 2,048, three do not.
    for room in &rooms {
        for chunk in 0..2 {
            let (commands, _answers): (Vec<_>, Vec<_>) = (0..500)
                .map(|n| append(room, &ada, text(&format!("c{}", chunk * 500 + n))))
                .unzip();
            writer::run_batch(&mut conn, commands, &Counters::default(), &mut texts).answer(None);
        }
    }
    assert_eq!((stored_ids(&conn), texts.ids().held()), (0, 3000));

    texts.ids().merge_soon();
    let marks = |conn: &Connection| -> Vec<u64> {
        rooms
            .iter()
            .map(|room| {
                conn.query_row(
                    "SELECT client_ids_seq FROM rooms WHERE id = ?1",
                    [room],
                    |r| r.get(0),
                )
                .expect("reads")
            })
            .collect()
    };
    // A slice rolled back with its batch stays in memory, and is found there.
    conn.execute_batch(
        "CREATE TEMP TRIGGER boom BEFORE INSERT ON main.events WHEN NEW.body = 'boom' \
         BEGIN SELECT RAISE(ROLLBACK, 'boom'); END",
    )
    .expect("trigger");
    let boom = Append::Text {
        client_id: "boom".into(),
        body: "boom".into(),
    };
    let (c, mut r) = append(&rooms[0], &ada, boom);
    writer::run_batch(&mut conn, vec![c], &Counters::default(), &mut texts).answer(None);
    assert!(r.try_recv().expect("answered").is_err());
    assert_eq!((stored_ids(&conn), texts.ids().held()), (0, 3000));
    assert_eq!(
        send(&mut conn, &mut texts, &rooms[1], &ada, "c5"),
        (7, true)
    );

    // The batch above merged one slice: two rooms, whose marks rose to their last seq.
    assert_eq!(stored_ids(&conn), 2000);
    assert_eq!(texts.ids().held(), 1000);
    let mut marked = marks(&conn);
    marked.sort_unstable();
    assert_eq!(marked, vec![0, 1001, 1001]);
    // The next batch merges the last room; its own new id waits for the next merge.
    assert_eq!(
        send(&mut conn, &mut texts, &rooms[2], &ada, "new"),
        (1002, false)
    );
    assert_eq!(stored_ids(&conn), 3000);
    assert_eq!(texts.ids().held(), 1);
    assert_eq!(marks(&conn)[2], 1001, "through the seq before the new id");
    for (room, seq) in rooms.iter().zip([2, 2, 2]) {
        assert_eq!(send(&mut conn, &mut texts, room, &ada, "c0"), (seq, true));
    }
}
