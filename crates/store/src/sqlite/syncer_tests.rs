//! The syncer against a real WAL: answers and reads wait for the sync; a failed sync stops
//! the store instead of answering.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use confab_domain::text::UserName;
use futures_util::FutureExt;
use tokio::sync::oneshot;

use super::Syncer;
use crate::sqlite::texts::Texts;
use crate::sqlite::writer::{self, Command, Counters};
use crate::sqlite::{SqliteStore, read, schema};
use crate::{Store, StoreError, StoreOptions};

#[tokio::test]
async fn a_commit_is_answered_and_read_only_once_synced() {
    let dir = tempfile::tempdir().expect("a directory");
    let db = dir.path().join("s.db");
    let mut conn = schema::open_writer(&db, schema::FULL).expect("opens");
    let counters = Arc::new(Counters::default());
    let (syncer, synced) =
        Syncer::start(Some(&schema::wal_path(&db)), Arc::clone(&counters)).expect("starts");

    let (reply, mut answer) = oneshot::channel();
    let command = Command::CreateUser {
        name: "ada".into(),
        password_hash: "h".into(),
        reply,
    };
    let batch = writer::run_batch(&mut conn, vec![command], &counters, &mut Texts::default());
    assert_eq!(counters.begun.load(Ordering::SeqCst), 1);

    // Committed, so another connection already sees it; but nobody has been answered, and a
    // read that may have seen it does not answer either.
    let reader = schema::open_reader(&db).expect("opens");
    assert!(read::user_by_name(&reader, "ada").expect("reads").is_some());
    assert!(answer.try_recv().is_err(), "answered before its sync");
    let mut settled = Box::pin(synced.settle());
    assert!(
        (&mut settled).now_or_never().is_none(),
        "a read answered before the sync"
    );

    // Through the sync thread (`alone: false`), as when more writes wait.
    syncer.hand(batch, false);
    tokio::time::timeout(Duration::from_secs(10), settled)
        .await
        .expect("the read settles once synced")
        .expect("synced");
    let user = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .expect("answered")
        .expect("a reply")
        .expect("created");
    assert_eq!(user.name, "ada");
    syncer.stop();
}

#[tokio::test]
async fn a_failed_sync_answers_unavailable_and_the_store_takes_no_more_writes() {
    let dir = tempfile::tempdir().expect("a directory");
    let db = dir.path().join("s.db");
    let store = SqliteStore::open(&db, &StoreOptions::default())
        .await
        .expect("opens");
    let name = |n: &str| UserName::parse(n).expect("a name");
    store.create_user(&name("ada"), "h").await.expect("created");

    // The WAL disappears under the store: its next sync cannot vouch for anything.
    std::fs::remove_file(schema::wal_path(&db)).expect("removed");
    let lost = store.create_user(&name("bob"), "h").await;
    assert!(matches!(lost, Err(StoreError::Unavailable(_))), "{lost:?}");
    // The next write is refused without running: no transaction is committed for it.
    let commits = store.writer_stats().commits;
    let refused = store.create_user(&name("cyd"), "h").await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert_eq!(store.writer_stats().commits, commits, "cyd was committed");
    // Bob's row is committed but not synced: no read may show it.
    let read = store.user_by_name("bob").await;
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    store.close().await;
}
