//! PostgreSQL only: a batch's statements probe indexes, whatever plan PostgreSQL keeps for
//! them. A sequential scan of `members` or `events` per batch grows with the tables: on a
//! few-thousand-row table the kept plan of `IN (SELECT * FROM UNNEST(..))` was one.

use std::time::{Duration, Instant};

use confab_protocol::Visibility;
use confab_store::Append;
use sqlx::{Connection, PgConnection};

use crate::{Fixture, text, within};

/// Sequential scans of `members` and `events` so far, read once the store's backends have
/// ended (a backend reports its counts when it exits, or whenever it likes while idle).
async fn seq_scans(db: &mut PgConnection) -> (i64, i64) {
    let read = async |db: &mut PgConnection| -> (i64, i64) {
        // A fresh snapshot: statistics are cached for the transaction otherwise.
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&mut *db)
            .await
            .expect("the snapshot is cleared");
        sqlx::query_as(
            "SELECT COALESCE(SUM(seq_scan) FILTER (WHERE relname = 'members'), 0)::bigint, \
             COALESCE(SUM(seq_scan) FILTER (WHERE relname = 'events'), 0)::bigint \
             FROM pg_stat_user_tables",
        )
        .fetch_one(db)
        .await
        .expect("the statistics are readable")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = read(db).await;
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = read(db).await;
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[tokio::test]
async fn batches_probe_indexes_on_tables_of_a_few_thousand_rows() {
    let Some(backend) =
        crate::Backend::postgres(1, "batches_probe_indexes_on_tables_of_a_few_thousand_rows")
    else {
        return;
    };
    let mut f = Fixture::open(backend).await;
    let mut db = PgConnection::connect(f.url())
        .await
        .expect("a test connection");
    // Other rooms' members and events: a few thousand rows, as on a small deployment.
    sqlx::raw_sql(
        "INSERT INTO members (room_id, user_id, user_name, read_seq) \
         SELECT 'other' || (i % 50), 'u' || i, 'u' || i, 0 FROM generate_series(1, 4000) i; \
         INSERT INTO events (room_id, seq, id, kind, from_id, from_name, body, ts, client_id) \
         SELECT 'other0', i, 'e' || i, 'text', 'u1', 'u1', 'x', 0, 'c' || i \
         FROM generate_series(1, 4000) i",
    )
    .execute(&mut db)
    .await
    .expect("the filler rows are written");

    sqlx::query("ANALYZE")
        .execute(&mut db)
        .await
        .expect("analyzed, as autovacuum would");

    let owner = f.user("owner").await;
    let other = f.user("other").await;
    let room = f.room(&owner, "plans", Visibility::Public).await;
    f.store.join(&room.id, &other).await.expect("joined");
    let mut senders = Vec::new();
    for i in 0..24 {
        let user = f.user(&format!("sender{i}")).await;
        f.store.join(&room.id, &user).await.expect("joined");
        senders.push(user);
    }
    // Counted with the setup's backends gone; `reopen` closes again, which is harmless.
    f.store.close().await;
    let before = seq_scans(&mut db).await;
    f.reopen().await;
    let store = f.store.clone();

    within(async {
        // More than the five executions after which PostgreSQL may keep a generic plan.
        for i in 0..12 {
            let (client_id, body) = (format!("c{i}"), format!("hello {i}"));
            let sent = store
                .append(&room.id, &other, text(&client_id, &body))
                .await
                .expect("sent");
            let retried = store
                .append(&room.id, &other, text(&client_id, &body))
                .await
                .expect("retried");
            assert!(retried.duplicate);
            let edit = Append::Edit {
                target: sent.event.seq,
                body: "edited".into(),
            };
            store.append(&room.id, &other, edit).await.expect("edited");
            let delete = Append::Delete {
                target: sent.event.seq,
            };
            store
                .append(&room.id, &other, delete)
                .await
                .expect("deleted");
            store
                .set_read(&room.id, &other.id, sent.event.seq)
                .await
                .expect("read marker");
            store.leave(&room.id, &other).await.expect("left");
            store.join(&room.id, &other).await.expect("joined again");
        }
        // Batches of many senders: a plan made for many keys is where a scan wins on cost.
        for round in 0..6 {
            let sends = senders.iter().map(|user| {
                let store = store.clone();
                let room = room.id.clone();
                let user = user.clone();
                async move {
                    for retry in [false, true] {
                        let sent = store
                            .append(&room, &user, text(&format!("r{round}"), "hi"))
                            .await
                            .expect("sent");
                        assert_eq!(sent.duplicate, retry);
                    }
                }
            });
            futures_util::future::join_all(sends).await;
        }
    })
    .await;

    store.close().await;
    let after = seq_scans(&mut db).await;
    let _ = db.close().await;
    assert_eq!(
        after, before,
        "sequential scans of (members, events) during the batches"
    );
}
